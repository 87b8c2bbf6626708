"""Next-item examples for soft preference tokens, and the users they come from.

PMG (Shen et al., WWW 2024, arXiv 2404.08677, section 3.3) learns soft tokens from a
user's history to condition the generation of what they like next. An example here
is leak-free: the history a user had *before* an item (:func:`build_history` with
``before``: that item and everything later left out), that item's image as the
target, and no text of the target beside the soft tokens (the domain's prefix
alone), so the answer is never in the input. :func:`split_users` holds out users
whose examples never train, to measure the tokens on people they have not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.components import PipelineComponents
from tastemaker.generation.data import Data, data_parts, item_image
from tastemaker.generation.history import build_history, liked_items

if TYPE_CHECKING:
    from PIL.Image import Image


@dataclass(frozen=True)
class SoftPromptExample:
    """One training image: a serialized history, the image to predict from it, the text
    prompt beside the soft tokens, and (for checks) the target's and the history's items."""

    history: str
    image: Image
    prompt: str = ""
    item_id: str | None = None
    history_ids: tuple[str, ...] = ()


def split_users(
    users: Sequence[object], heldout: float, seed: int = 0
) -> tuple[list[str], list[str]]:
    """(training users, held-out users): a seeded share ``heldout`` of ``users`` is held out
    (at least one when the share is positive and two or more users are given)."""
    if not 0.0 <= heldout < 1.0:
        raise ConfigError(f"the held-out share must lie in [0, 1), got {heldout}", "pass e.g. 0.2")
    names = sorted({str(u) for u in users})
    n_out = max(1, round(heldout * len(names))) if heldout > 0 and len(names) > 1 else 0
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    out = {names[i] for i in order[:n_out]}
    return [u for u in names if u not in out], [u for u in names if u in out]


def soft_examples(
    components: PipelineComponents,
    data: Data,
    users: Sequence[object],
    *,
    num_tokens: int = 4,
    per_user: int | None = None,
) -> list[SoftPromptExample]:
    """Next-item examples of soft tokens (PMG section 3.3), leak-free: for each item a user
    liked (oldest first, those with an image), the history they had *before* it (the item
    and everything later left out) and that item's image as the target.

    The prompt beside the ``num_tokens`` soft tokens is the domain's prefix alone
    ("a movie poster"): no title, genre or tag of the target, so the tokens must carry
    what the history says about the next image. ``per_user`` keeps each user's latest
    examples only.
    """
    from PIL import Image as PILImage

    catalog, interactions = data_parts(data)
    generator = components.require_generator("soft tokens")
    config = components.config
    prompt = config.condition.style.prefix
    if (n := generator.count_tokens(prompt)) > generator.max_length - 2 - num_tokens:
        raise ConfigError(
            f"the prompt prefix takes {n} tokens, too many beside {num_tokens} soft tokens",
            "shorten [condition] prefix or use fewer soft tokens",
        )
    examples = []
    for user in users:
        targets = [
            (item, path)
            for item in liked_items(interactions, user, config.history)[1:]
            if (path := item_image(catalog, item)) is not None
        ]
        for item, path in targets[-per_user:] if per_user else targets:
            try:
                history = build_history(catalog, interactions, user, config.history, before=item)
            except DataError:  # nothing liked before this item: no history to learn from
                continue
            with PILImage.open(path) as image:
                examples.append(
                    SoftPromptExample(
                        history.text, image.convert("RGB"), prompt, item, tuple(history.item_ids)
                    )
                )
    if not examples:
        raise DataError(
            "none of these users liked an item with an image after liking another",
            "load the data with images (e.g. --posters) or choose users with longer histories",
        )
    return examples


__all__ = ["SoftPromptExample", "soft_examples", "split_users"]
