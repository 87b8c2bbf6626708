"""Per-domain prompts for preference keywords and target-item keywords (PMG stages 2 and 3).

The method is PMG's (Shen et al., "PMG: Personalized Multimodal Generation with
Large Language Models", WWW 2024, arXiv 2404.08677): an LLM reads the serialized
history and answers with N keywords of the user's preferences (N = 8 in the
paper), and describes the target item in visual keywords. The wording here is
tastemaker's own, after the prompts of PMG's release
(``mindspore-lab/models``, ``research/huawei-noah/PMG/prompts.py``), which ask e.g.
"Please provide <Keyword_num/> keywords to describe his movie interests." and,
for a target movie, "Please design a poster for it (describe in 10 keywords
without explaining). Character names should be excluded."

Differences: each prompt is a chat (a system turn with the answer format, then
the request) rather than one "### Human: ... ### Assistant:" string, so any
chat model's own template applies; it carries no worked example, because small
models (SmolLM2-135M) copy an example's keywords into every answer (a base model
without a chat template needs examples: the few-shot layout of
:mod:`tastemaker.generation.keywords.few_shot` adds them and drops what is copied
from them); and a firmer wording exists for retries after an unusable answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from tastemaker.generation.history import Domain
from tastemaker.llm.base import ChatMessage


@dataclass(frozen=True)
class PromptTemplate:
    """A system turn and a request with ``{body}`` (history or item text) and ``{n}``."""

    system: str
    request: str
    firm: str = (
        "Answer with exactly {n} keywords on one line, separated by commas. "
        "Only keywords: no titles, no numbering, no sentences."
    )

    def messages(self, body: str, n: int, *, firm: bool = False) -> list[ChatMessage]:
        """The chat for ``body``, with the firmer instruction added on a retry."""
        request = self.request.format(body=body, n=n)
        if firm:
            request = f"{request}\n{self.firm.format(n=n)}"
        return [ChatMessage("system", self.system), ChatMessage("user", request)]


_KEYWORDS_ONLY = "Answer with a comma-separated list of keywords only, no titles and no sentences."

PREFERENCE_PROMPTS: dict[Domain, PromptTemplate] = {
    "movies": PromptTemplate(
        system=f"You describe people's taste in movies with short keywords. {_KEYWORDS_ONLY}",
        request=(
            "A person watched and liked these movies:\n{body}\n\n"
            "Give {n} keywords that describe this person's movie interests "
            "(genres, themes, moods, visual style)."
        ),
    ),
    "products": PromptTemplate(
        system=f"You describe shoppers' taste with short keywords. {_KEYWORDS_ONLY}",
        request=(
            "A shopper bought these products:\n{body}\n\n"
            "Give {n} distinctive keywords that describe the shopper's taste in theme, colour, "
            "material and style (not product types such as shoes or bags)."
        ),
    ),
    "conversation": PromptTemplate(
        system=f"You describe the sticker style a person would enjoy. {_KEYWORDS_ONLY}",
        request=(
            "Here is what a person wrote in recent chats:\n{body}\n\n"
            "Give {n} keywords for the stickers this person would like "
            "(character, mood, colours, drawing style)."
        ),
    ),
}

ITEM_PROMPTS: dict[Domain, PromptTemplate] = {
    "movies": PromptTemplate(
        system=f"You design movie posters and describe them with short keywords. {_KEYWORDS_ONLY}",
        request=(
            "Design a poster for this movie:\n{body}\n\n"
            "Describe the poster in {n} short visual keywords (objects, setting, colours, mood, "
            "art style). No character names."
        ),
    ),
    "products": PromptTemplate(
        system=f"You describe product photos with short visual keywords. {_KEYWORDS_ONLY}",
        request=(
            "Describe a product photo of this item:\n{body}\n\n"
            "Give {n} short visual keywords (shape, colour, material, setting, lighting)."
        ),
    ),
    "conversation": PromptTemplate(
        system=f"You design chat stickers and describe them with short keywords. {_KEYWORDS_ONLY}",
        request=(
            "Design a sticker that answers this chat:\n{body}\n\n"
            "Describe it in {n} short visual keywords (emotion, expression, pose, colours)."
        ),
    ),
}
