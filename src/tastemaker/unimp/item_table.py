"""A start for the retrieval head's per-item ID table from a quickly trained ID model.

From a random start, the few recommendation examples a CPU budget affords cannot
teach the table which items go together; BPR (Rendle et al., UAI 2009) learns that
from every training interaction in seconds. Its item factors become the table's
first values (``item_init = "id"``); UniMP then trains them further. Only the
training users' train part is read, so neither valid nor test items leak in.
"""

from __future__ import annotations

import numpy as np
import torch

from tastemaker.data.interactions import USER_ID, Interactions
from tastemaker.data.vocab import Vocab
from tastemaker.errors import DataError

#: BPR epochs: a fixed number, no early stopping (that would read the valid part).
EPOCHS = 30


def id_item_table(
    train: Interactions, users: set[str], items: Vocab, dim: int, seed: int = 0
) -> torch.Tensor:
    """(items, ``dim``) BPR item factors fitted on ``users``' rows of ``train``."""
    from tastemaker.models import create_model

    if train.items != items:
        raise DataError(
            "the ID model's interactions use another item vocabulary than the model",
            "pass the train part of the split the model is built on",
        )
    keep = train.frame[USER_ID].is_in(sorted(users)).to_numpy()
    if not np.any(keep):
        raise DataError("no training interactions for the ID model", "train on some users")
    model = create_model("bpr", factors=dim, epochs=EPOCHS, seed=seed)
    model.fit(train.subset(keep))
    return model.item_embedding.detach().float().clone()
