"""Cross-modal alignment: a shared image-text space learned from the catalog's own items.

Two projection heads, one over frozen image features (EfficientNet-Lite0 posters,
1280-d by default) and one over frozen text features (all-MiniLM-L6-v2, 384-d),
map both into one ``dim``-wide space of unit vectors. They are trained with
CLIP's symmetric InfoNCE loss (Radford et al. 2021, "Learning Transferable Visual
Models From Natural Language Supervision", Fig. 3): for a batch of N pairs,

    logits = exp(t) * I_e @ T_e^T          (I_e, T_e: L2-normalised embeddings)
    loss   = (CE(logits, arange(N)) + CE(logits^T, arange(N))) / 2

with the log inverse temperature ``t`` learned, initialised at log(1 / 0.07) and
capped at log(100) as in CLIP. A pair is an item whose image *and* text masks are
both True. Items are split (seeded) into train, valid (early stopping on the
valid InfoNCE loss) and test (reported once, never used for any choice).

Two baselines are reported on the same test items, because raw features of
different widths cannot be compared at all:

* *untrained heads*: the same architecture at its random initialisation (the
  "unaligned" space; near chance);
* *ridge map*: a linear least-squares map from standardised image features to
  text features fitted on the train items (its ridge penalty chosen on valid),
  compared by cosine in the text space; the usual non-contrastive alignment.

With no CLIP weights available offline, the resulting :class:`AlignedSpace` is
tastemaker's default image-text scorer (:mod:`tastemaker.generation.scoring`).

One concept per module: ``config`` (:class:`AlignmentConfig`), ``heads`` (the
torch modules; imported only when heads are built), ``retrieval`` (Recall@k,
chance, InfoNCE), ``space`` (:class:`AlignedSpace` and its folder), ``training``
(pairs, split, epoch loop), ``baselines`` (ridge map), ``report`` (table, plot).
Importing this package does not import torch.
"""

from tastemaker.pretrain.alignment.baselines import ridge_retrieval
from tastemaker.pretrain.alignment.config import AlignmentConfig
from tastemaker.pretrain.alignment.report import metric_table, retrieval_markdown, training_plot
from tastemaker.pretrain.alignment.retrieval import (
    Retrieval,
    chance_retrieval,
    info_nce,
    retrieval_metrics,
)
from tastemaker.pretrain.alignment.space import AlignedSpace
from tastemaker.pretrain.alignment.training import paired, split_items, train_alignment

__all__ = [
    "AlignedSpace",
    "AlignmentConfig",
    "Retrieval",
    "chance_retrieval",
    "info_nce",
    "metric_table",
    "paired",
    "retrieval_markdown",
    "retrieval_metrics",
    "ridge_retrieval",
    "split_items",
    "train_alignment",
    "training_plot",
]
