"""UniMP: a causal LM reading user sentences, with item-masked visual cross-attention.

Wei et al., "Towards Unified Multi-Modal Personalization" (ICLR 2024): every task
is an instruction answered by next-token prediction over one shared model.
:class:`UniMP` joins the pieces: the backbone (:mod:`.backbone`, LoRA or frozen),
the perceiver resampler turning each slot's image regions into visual tokens,
the gated cross-attention blocks reading them under the item mask, and a
retrieval head (the final state of the prompt against item vectors built from
an ID embedding, the title's token embeddings and the poster) for full ranking.
Only the added modules and LoRA train; the losses are in :mod:`.loss`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from tastemaker.errors import ConfigError
from tastemaker.unimp.backbone import (
    ContextSlot,
    add_cross_attention,
    load_backbone,
    truncate,
)
from tastemaker.unimp.config import UniMPConfig
from tastemaker.unimp.cross_attention import GatedCrossAttention, VisualContext, item_mask
from tastemaker.unimp.resampler import PerceiverResampler
from tastemaker.unimp.serialize import NO_SLOT
from tastemaker.unimp.visual import VisualBank


@dataclass
class Pass:
    """What one forward pass returns: final hidden states (B, T, D) and the LM cache."""

    hidden: torch.Tensor
    cache: Any


class UniMP(nn.Module):
    """The multimodal, multi-task personalization model."""

    def __init__(
        self,
        config: UniMPConfig,
        lm: Any,
        tokenizer: Any,
        bank: VisualBank,
        titles: list[str],
        item_table: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.bank = bank
        self.slot = ContextSlot()
        truncate(lm, config.lm_layers)
        self.lm = lm
        for parameter in lm.parameters():
            parameter.requires_grad_(False)
        if config.lora_rank:
            self._add_lora()
        weight = lm.get_input_embeddings().weight
        width = int(weight.shape[1])
        self.blocks: list[GatedCrossAttention] = []
        if config.fusion != "none":
            self.blocks = add_cross_attention(lm, config.cross_every, config.heads, self.slot)
        self.resampler = PerceiverResampler(
            bank.dim, width, bank.regions, config.latents, config.heads, config.resampler_layers
        )
        self.register_buffer("features", torch.from_numpy(bank.features), persistent=False)
        self.register_buffer("rows", torch.from_numpy(bank.rows), persistent=False)
        n_items, r = len(bank.vocab), config.retrieval_dim
        self.user_head = nn.Linear(width, r)
        self.item_ids = nn.Embedding(n_items, r)
        if item_table is None:
            nn.init.normal_(self.item_ids.weight, std=0.02)
        else:
            self._set_item_table(item_table)
        self.title_head = nn.Linear(width, r, bias=False)
        self.poster_head = nn.Linear(bank.dim, r, bias=False)
        self.register_buffer("title_vectors", self._title_vectors(titles), persistent=False)
        self.register_buffer("poster_means", self._poster_means(), persistent=False)
        self.to(device=weight.device)
        for module in (self.resampler, self.user_head, self.item_ids, self.title_head,
                       self.poster_head):  # fmt: skip
            module.to(dtype=weight.dtype)

    @torch.no_grad()
    def _set_item_table(self, table: torch.Tensor) -> None:
        """Start the per-item ID table from ``table`` (items, R), e.g. an ID model's factors."""
        if tuple(table.shape) != tuple(self.item_ids.weight.shape):
            raise ConfigError(
                f"item table of shape {tuple(table.shape)} does not fit "
                f"{tuple(self.item_ids.weight.shape)}",
                "build it on the model's items with retrieval_dim columns",
            )
        self.item_ids.weight.copy_(table)

    def _add_lora(self) -> None:
        from tastemaker.text.finetune import FinetuneConfig, with_lora

        lora = FinetuneConfig(
            rank=self.config.lora_rank, alpha=2.0 * self.config.lora_rank, seed=self.config.seed
        )
        with_lora(self.lm, lora)  # injects LoRA layers into self.lm in place

    @torch.no_grad()
    def _title_vectors(self, titles: list[str]) -> torch.Tensor:
        """Mean input embedding of each item's title tokens (frozen; rebuilt on load)."""
        embed = self.lm.get_input_embeddings()
        weight = embed.weight
        out = torch.zeros(len(titles), weight.shape[1], dtype=weight.dtype, device=weight.device)
        for lo in range(0, len(titles), 512):
            ids = self.tokenizer(titles[lo : lo + 512], add_special_tokens=False)["input_ids"]
            for row, tokens in enumerate(ids):
                if tokens:
                    out[lo + row] = embed(torch.tensor(tokens, device=weight.device)).mean(0)
        return out

    def _poster_means(self) -> torch.Tensor:
        """(items, C): each item's regions averaged (zeros without a poster), computed once."""
        if not len(self.features):
            return torch.zeros(len(self.rows), 0)
        means = torch.zeros(len(self.rows), self.features.shape[2])
        has = self.rows >= 0
        means[has] = self.features[self.rows[has]].float().mean(1)
        return means

    @property
    def device(self) -> torch.device:
        return self.item_ids.weight.device

    def trainable(self) -> dict[str, nn.Parameter]:
        """Name -> parameter of everything that trains (added modules and LoRA)."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    def visual_context(
        self, token_slots: torch.Tensor, slot_items: torch.Tensor
    ) -> VisualContext | None:
        """Visual tokens of each row's slots (B, S·L, D) and the item mask for its tokens."""
        if not self.blocks:
            return None
        b, s = slot_items.shape
        latents = self.config.latents
        rows = torch.where(slot_items >= 0, self.rows[slot_items.clamp(min=0)], -1)
        has = rows >= 0
        width = self.resampler.latents.shape[1]
        keys = torch.zeros(
            b, s, latents, width, device=self.device, dtype=self.resampler.latents.dtype
        )
        if has.any():
            keys[has] = self.resampler(self.features[rows[has]].to(keys.dtype))
        slots = torch.arange(s, device=self.device).expand(b, s)
        key_slots = torch.where(has, slots, NO_SLOT).repeat_interleave(latents, dim=1)
        allowed = item_mask(token_slots, key_slots, coarse=self.config.fusion == "coarse")
        return VisualContext(keys.view(b, s * latents, width), allowed)

    def run(
        self,
        input_ids: torch.Tensor,
        token_slots: torch.Tensor,
        slot_items: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool = False,
    ) -> Pass:
        """Final hidden states of the decoder with the visual context of these rows."""
        self.slot.value = self.visual_context(token_slots, slot_items)
        try:
            out = self.lm.get_decoder()(
                input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=use_cache
            )
        finally:
            self.slot.value = None
        return Pass(out.last_hidden_state, getattr(out, "cache", None))

    def logits(self, hidden: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits of ``hidden`` (..., D), over all tokens or only ``tokens``."""
        weight = self.lm.get_output_embeddings().weight
        if tokens is not None:
            weight = weight[tokens]
        return hidden @ weight.T

    def item_vectors(self) -> torch.Tensor:
        """(items, R): ID embedding + title tokens + poster (when the item has one)."""
        vectors = self.item_ids.weight + self.title_head(self.title_vectors)
        if self.poster_means.shape[1]:
            vectors = vectors + self.poster_head(self.poster_means.to(vectors.dtype))
        return vectors

    def user_vectors(
        self, hidden: torch.Tensor, last: torch.Tensor, slot_items: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, R) from each row's final state at its ``last`` prompt position.

        With ``pool_history``, plus the mean ID-table row of the row's history items
        (``slot_items``, -1 = padding): FISM's item-to-item term (Kabbur et al., KDD 2013).
        """
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        user = self.user_head(hidden[rows, last])
        if self.config.pool_history and slot_items is not None:
            has = (slot_items >= 0).to(user.dtype)
            table = self.item_ids(slot_items.clamp(min=0)) * has.unsqueeze(-1)
            user = user + table.sum(1) / has.sum(1, keepdim=True).clamp(min=1.0)
        return user

    def retrieval_scores(
        self,
        hidden: torch.Tensor,
        last: torch.Tensor,
        slot_items: torch.Tensor | None = None,
        items: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, items) scores of the retrieval head: ``user_vectors @ item_vectors().T``,
        over every item or only ``items`` (the sampled softmax's columns).

        Computed as u·e + (u W_t)·t + (u W_p)·p, so the title and poster projections act
        on the B user vectors rather than on every item (a third of a training step
        otherwise, for a batch's one or two recommendation rows).
        """
        user = self.user_vectors(hidden, last, slot_items)
        ids, titles, posters = self.item_ids.weight, self.title_vectors, self.poster_means
        if items is not None:
            ids, titles, posters = ids[items], titles[items], posters[items]
        scores = user @ ids.T + (user @ self.title_head.weight) @ titles.T
        if posters.shape[1]:
            scores = scores + (user @ self.poster_head.weight) @ posters.to(user.dtype).T
        return scores


def build_model(
    config: UniMPConfig, bank: VisualBank, titles: list[str], *, device: str = "cpu",
    dtype: str = "float32", item_table: torch.Tensor | None = None,
) -> UniMP:  # fmt: skip
    """Load the backbone and build a seeded UniMP on it (its ID table from ``item_table``)."""
    tokenizer, lm = load_backbone(config, device, dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = UniMP(config, lm, tokenizer, bank, titles, item_table)
    return model
