"""UniMP's user state as soft conditioning for PMG's image generator (UniMP task 6).

UniMP (Wei et al., ICLR 2024, arXiv 2403.10667) conditions image generation on
what its personalization model knows of the user. Here the state is the one its
retrieval head reads: the frozen model's final hidden state at the last position
of the recommendation prompt over the user's history (:func:`user_states`). A
small trainable map (:class:`StateTokens`, one linear layer drawn from a local
generator seeded by ``seed``) turns it into K soft tokens in the generator's
text-encoder width, which join the condition exactly as PMG's soft preference
tokens do (Shen et al., WWW 2024, section 3.3):

- ``replace``: the UniMP tokens instead of PMG's;
- ``join``: ``[PMG tokens ; UniMP tokens]``, PMG's from its trained, frozen model.

The map trains by PMG's diffusion loss on the same leak-free next-item examples
(:class:`~tastemaker.generation.soft_training.DiffusionTokenTrainer`,
:func:`~tastemaker.generation.soft_examples.soft_examples`: the history before an
item, that item's image as the target), with PMG's checkpoints (safetensors,
resumable). The frozen models read are fingerprinted into the config, so a
checkpoint made over another UniMP (or, joined, another PMG) model is refused.
A pipeline uses the tokens through :meth:`UniMPImageConditioner.condition` on its
prepared stages, then renders with method ``soft`` or ``both``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import torch
from pydantic import BaseModel, ConfigDict, Field

from tastemaker.config import validate
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.soft_checkpoint import (
    STATE_FILE,
    checkpoint_folder,
    load_parameters,
    saved_config,
)
from tastemaker.generation.soft_training import (
    DiffusionTokenTrainer,
    SoftPromptRun,
    train_on_users,
)
from tastemaker.pretrain.alignment.heads import seeded_linear
from tastemaker.unimp.batching import Example, collate, encode
from tastemaker.unimp.serialize import ItemDescriber, Piece, serialize_history
from tastemaker.unimp.tasks import QUESTIONS

if TYPE_CHECKING:
    from tastemaker.data.dataset import Dataset
    from tastemaker.generation.components import PipelineComponents
    from tastemaker.generation.data import Data
    from tastemaker.generation.generator import ImageGenerator
    from tastemaker.generation.result import Prepared
    from tastemaker.generation.soft_examples import SoftPromptExample
    from tastemaker.generation.soft_prompt import SoftPreferenceModel
    from tastemaker.unimp.model import UniMP

MODES = ("replace", "join")


class UniMPConditionConfig(BaseModel):
    """How UniMP's state becomes soft tokens, and how the map trains (PMG's fields)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["replace", "join"] = Field("replace", description="instead of / after PMG's")
    num_tokens: int = Field(4, ge=1, description="K tokens from the UniMP state")
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    steps: int = Field(200, ge=1)
    batch_size: int = Field(4, ge=1, description="images per step")
    seed: int = Field(0, ge=0)
    checkpoint_every: int = Field(100, ge=1, description="steps between checkpoints")
    source: str = Field("", description="fingerprint of the frozen models (set when built)")


class StateTokens(torch.nn.Module):
    """The trainable map: one linear layer from a (B, S) state to (B, K, width) tokens.

    The state is standardized first (a layer norm without parameters): a backbone's final
    hidden states are not at unit scale (SmolLM2's reach the tens), and unscaled they put
    the initial tokens far outside the text encoder's range. Weights are drawn from
    ``generator`` (torch's default initialisation); without one they are left for
    ``load_state_dict``.
    """

    def __init__(
        self, state_dim: int, num_tokens: int, width: int, generator: torch.Generator | None
    ) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.proj = seeded_linear(state_dim, num_tokens * width, generator)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        unit = torch.nn.functional.layer_norm(states, states.shape[-1:])
        return self.proj(unit).view(states.shape[0], self.num_tokens, -1)


@torch.no_grad()
def user_states(
    model: UniMP, describer: ItemDescriber, histories: Sequence[Sequence[str]], batch: int = 16
) -> torch.Tensor:
    """(B, S) float states: the final hidden state at the recommendation prompt's last
    position (what the retrieval head reads), one per history of item IDs (oldest first;
    the last ``config.history`` are read)."""
    vocab, parts = model.bank.vocab, []
    for lo in range(0, len(histories), batch):
        rows = []
        for items in histories[lo : lo + batch]:
            sentence = serialize_history(
                describer, [(item, None) for item in items], limit=model.config.history
            ).then(Piece(QUESTIONS["recommend"]))
            example = Example("recommend", sentence, "", "")
            rows.append(encode(model.tokenizer, example, vocab, answer=False))
        tensors = collate(rows, model.tokenizer.pad_token_id, model.device)
        out = model.run(
            tensors["input_ids"], tensors["token_slots"], tensors["slot_items"],
            tensors["attention_mask"],
        )  # fmt: skip
        index = torch.arange(len(rows), device=out.hidden.device)
        parts.append(out.hidden[index, tensors["last"]].float().cpu())
    return torch.cat(parts)


def _fingerprint(unimp: UniMP, pmg: SoftPreferenceModel | None) -> str:
    """SHA-256 of the frozen models read: UniMP's config and trained weights (and PMG's)."""
    digest = hashlib.sha256(unimp.config.model_dump_json().encode())
    named = sorted(unimp.trainable().items())
    if pmg is not None:
        digest.update(pmg.config.model_dump_json().encode())
        named += sorted((f"pmg.{k}", v) for k, v in pmg.encoder.state_dict().items())
    for name, tensor in named:
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


class UniMPImageConditioner(DiffusionTokenTrainer):
    """Soft tokens from a frozen UniMP's user state for ``generator`` (frozen), trainable.

    ``describer`` renders items as the model was trained to read them; ``pmg`` is the
    trained PMG soft-token model, needed (and only read) in ``join`` mode.
    """

    def __init__(
        self,
        unimp: UniMP,
        describer: ItemDescriber,
        generator: ImageGenerator,
        config: UniMPConditionConfig | None = None,
        *,
        pmg: SoftPreferenceModel | None = None,
        **params: Any,
    ) -> None:
        config = config or validate(UniMPConditionConfig, params, where="unimp conditioning")
        if config.mode == "join" and pmg is None:
            raise ConfigError(
                "join mode needs PMG's trained soft tokens", "set [soft] checkpoint (--soft DIR)"
            )
        self.pmg = pmg if config.mode == "join" else None
        source = _fingerprint(unimp, self.pmg)
        if config.source and config.source != source:
            raise ConfigError(
                "this conditioning was trained over another UniMP model"
                + (" or PMG checkpoint" if self.pmg is not None else ""),
                "use the models it was trained with, or train it for these",
            )
        self.config = config.model_copy(update={"source": source})
        self.unimp, self.describer, self.generator = unimp, describer, generator
        self.checkpoint: Path | None = None  # the folder loaded from, named in results
        self._known = set(unimp.bank.vocab.ids)
        width = int(generator.encode_prompt([""]).shape[-1])
        state_dim = int(unimp.lm.get_input_embeddings().weight.shape[1])
        init = torch.Generator("cpu").manual_seed(self.config.seed)  # never the global RNG
        self.encoder = StateTokens(state_dim, self.config.num_tokens, width, init)
        self.encoder.to(generator.device)

    @property
    def soft_token_count(self) -> int:
        pmg = self.pmg.config.num_tokens if self.pmg is not None else 0
        return self.config.num_tokens + pmg

    # --- inputs -------------------------------------------------------------------------

    def states(self, histories: Sequence[Sequence[str]]) -> torch.Tensor:
        """(B, S) UniMP states of histories given as PMG lists them (newest first)."""
        ordered = []
        for items in histories:
            kept = [str(i) for i in reversed(list(items)) if str(i) in self._known]
            if not kept:
                raise DataError(
                    "no item of this history is among the UniMP model's items",
                    "use the data set the UniMP model was trained on",
                )
            ordered.append(kept)
        return user_states(self.unimp, self.describer, ordered)

    def _example_input(self, example: SoftPromptExample) -> tuple[torch.Tensor, Any]:
        if example.item_id is not None and example.item_id in example.history_ids:
            raise DataError(
                f"example of item '{example.item_id}' has it in its history",
                "build examples with soft_examples (the history before the item)",
            )
        state = self.states([example.history_ids])[0]
        pmg = None
        if self.pmg is not None:
            pmg = self.pmg.soft_tokens(example.history).float().cpu()
        return state, pmg

    def _soft_batch(self, inputs: list[Any]) -> torch.Tensor:
        device = next(self.encoder.parameters()).device
        own = self.encoder(torch.stack([state for state, _ in inputs]).to(device))
        if self.pmg is None:
            return own
        pmg = torch.stack([tokens for _, tokens in inputs]).to(own)
        return torch.cat([pmg, own], dim=1)

    # --- use ----------------------------------------------------------------------------

    @torch.no_grad()
    def soft_tokens(
        self,
        history_ids: Sequence[str],
        history_text: str | None = None,
        pmg_tokens: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(K, D) tokens for a history (item IDs newest first), ``join`` mode after PMG's:
        ``pmg_tokens`` when given (the pipeline's), else PMG's model reads ``history_text``."""
        tokens = self.encoder(self.states([history_ids]).to(next(self.encoder.parameters())))[0]
        if self.pmg is not None:
            if pmg_tokens is None:
                if history_text is None:
                    raise DataError("join mode needs the history's text", "pass history_text")
                pmg_tokens = self.pmg.soft_tokens(history_text)
            tokens = torch.cat([pmg_tokens.to(tokens), tokens])
        return tokens.to(self.generator.device, self.generator.dtype)

    def condition(self, prepared: Prepared) -> Prepared:
        """``prepared`` with its soft tokens replaced by (or joined with) UniMP's."""
        if self.pmg is not None and prepared.soft_tokens is None:
            raise ConfigError(
                "join mode needs the pipeline's PMG soft tokens", "set [soft] checkpoint (--soft)"
            )
        history = prepared.history
        tokens = self.soft_tokens(history.item_ids, history.text, prepared.soft_tokens)
        note = f"soft tokens: UniMP user state, {self.config.mode} ({self.config.num_tokens})"
        if self.checkpoint is not None:
            note += f" from {self.checkpoint}"
        return dataclasses.replace(prepared, soft_tokens=tokens, notes=[*prepared.notes, note])

    # --- checkpoints --------------------------------------------------------------------

    def load(self, folder: Path) -> Self:
        """Trained parameters from a checkpoint folder (or the run folder holding one)."""
        load_parameters(folder, self.encoder, self.config)
        self.checkpoint = checkpoint_folder(folder)
        return self

    @classmethod
    def from_checkpoint(
        cls,
        folder: Path,
        unimp: UniMP,
        describer: ItemDescriber,
        generator: ImageGenerator,
        *,
        pmg: SoftPreferenceModel | None = None,
    ) -> Self:
        """The conditioning a run saved, over the models it was trained with."""
        path = checkpoint_folder(folder)
        saved = saved_config(path)
        config = validate(UniMPConditionConfig, saved, where=str(path / STATE_FILE))
        return cls(unimp, describer, generator, config, pmg=pmg).load(path)


def load_for_conditioning(
    model_dir: Path, dataset: Dataset, *, device: str = "cpu", progress: bool = False
) -> tuple[UniMP, ItemDescriber]:
    """A saved UniMP (``OUT/model``) rebuilt on ``dataset`` as it was trained, and its items'
    describer (poster features come through the embedding store, computed once)."""
    from tastemaker.unimp.pipeline import load_unimp, prepare
    from tastemaker.unimp.saved import read_config

    config = read_config(Path(model_dir))
    data = prepare(dataset, config, device=device, progress=progress)
    return load_unimp(Path(model_dir), data, device=device), data.describer


def train_unimp_conditioning(
    components: PipelineComponents,
    data: Data,
    users: Sequence[object],
    unimp: UniMP,
    describer: ItemDescriber,
    out_dir: Path | str,
    config: UniMPConditionConfig | dict[str, Any] | None = None,
    *,
    heldout: float = 0.0,
    per_user: int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[UniMPImageConditioner, SoftPromptRun]:
    """Train the map on ``users``' next-item examples for ``components``' generator (and, in
    ``join`` mode, after their PMG soft tokens); held-out users as in ``train_on_users``."""
    if not isinstance(config, UniMPConditionConfig):
        config = validate(UniMPConditionConfig, dict(config or {}), where="unimp conditioning")
    pmg = None
    if config.mode == "join":
        if components.config.soft.checkpoint is None:
            raise ConfigError(
                "join mode needs PMG's trained soft tokens", "set [soft] checkpoint (--soft DIR)"
            )
        pmg = components.soft
    generator = components.require_generator("UniMP soft tokens")
    extra = pmg.config.num_tokens if pmg is not None else 0
    return train_on_users(
        components, data, users, out_dir,
        lambda: UniMPImageConditioner(unimp, describer, generator, config, pmg=pmg),
        num_tokens=config.num_tokens + extra, seed=config.seed, heldout=heldout,
        per_user=per_user, resume=resume, progress=progress,
    )  # fmt: skip


__all__ = [
    "MODES",
    "StateTokens",
    "UniMPConditionConfig",
    "UniMPImageConditioner",
    "load_for_conditioning",
    "train_unimp_conditioning",
    "user_states",
]
