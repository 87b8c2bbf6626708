"""What every keyword extractor shares: the result type, its error, and the interface.

One result type (:class:`Keywords`) keeps everything intermediate, the text read,
every prompt and raw LLM reply, the parsed keywords and their scores, so a user
can see why an image came out as it did, whichever extractor produced it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from tastemaker.errors import DataError
from tastemaker.generation.history import ItemText, UserHistory
from tastemaker.llm.base import ChatMessage

Kind = Literal["user", "item"]


@dataclass(frozen=True)
class Attempt:
    """One LLM call: the chat sent, the raw reply, and what parsing kept of it."""

    messages: list[ChatMessage]
    raw: str
    parsed: list[str]
    truncated: bool  # the reply ran out of tokens
    temperature: float
    seed: int
    dropped: dict[str, str] = field(default_factory=dict)  # keyword -> what it copied


@dataclass(frozen=True)
class Keywords:
    """Keywords of a user (preferences) or an item, with how they were obtained."""

    subject: str  # the user or item ID
    kind: Kind
    keywords: list[str]
    extractor: str  # "llm:hf:SmolLM2-135M-Instruct", "statistical", ...
    source_text: str  # the history or item text the extractor read
    scores: list[float] = field(default_factory=list)  # relevance per keyword (statistical)
    score_label: str = ""  # what ``scores`` measure, in words a page can show
    attempts: list[Attempt] = field(default_factory=list)  # LLM calls, in order
    complete: bool = True  # False: fewer than the extractor's minimum (strict=False only)
    fallback: str | None = None  # why another extractor's keywords replaced these

    def __len__(self) -> int:
        return len(self.keywords)

    @property
    def text(self) -> str:
        """The keywords as one comma-separated phrase (what a text encoder or prompt reads)."""
        return ", ".join(self.keywords)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class KeywordExtractionError(DataError):
    """Too few usable keywords after every retry; ``result`` keeps what was tried."""

    def __init__(self, problem: str, fix: str, result: Keywords) -> None:
        super().__init__(problem, fix)
        self.result = result


class KeywordExtractor(ABC):
    """Anything that finds preference keywords of a history and visual keywords of an item."""

    name: str

    @abstractmethod
    def extract_user(self, history: UserHistory) -> Keywords:
        """Preference keywords of one user's serialized history."""

    @abstractmethod
    def extract_item(self, item: ItemText) -> Keywords:
        """Keywords describing one target item."""

    def extract_users(
        self, histories: Sequence[UserHistory], *, progress: bool = True
    ) -> list[Keywords]:
        """Keywords of many users, in order (the LLM extractor batches its calls)."""
        from tqdm.auto import tqdm

        return [
            self.extract_user(h)
            for h in tqdm(histories, desc=f"keywords ({self.name})", disable=not progress)
        ]

    def extract_items(self, items: Sequence[ItemText], *, progress: bool = True) -> list[Keywords]:
        """Keywords of many target items, in order (the LLM extractor batches its calls)."""
        from tqdm.auto import tqdm

        return [
            self.extract_item(i)
            for i in tqdm(items, desc=f"item keywords ({self.name})", disable=not progress)
        ]
