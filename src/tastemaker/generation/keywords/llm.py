"""Keywords from an LLM (PMG stages 2 and 3): prompted, parsed, retried, never silently empty.

The per-domain prompts come from :mod:`tastemaker.generation.prompts`; replies are
parsed defensively (:func:`~tastemaker.generation.keywords.parsing.parse_keywords`)
and cleared of what they copied from the prompt (:mod:`~tastemaker.generation.keywords.echo`:
titles, listed values for item keywords, names, near-duplicates); a subject with
too few usable keywords is retried with a firmer prompt, then
handed to a fallback extractor (recorded in the result) or reported as an error.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from tastemaker.config import validate
from tastemaker.errors import DataError
from tastemaker.generation.history import Domain, ItemText, UserHistory
from tastemaker.generation.keywords.base import (
    Attempt,
    KeywordExtractionError,
    KeywordExtractor,
    Keywords,
    Kind,
)
from tastemaker.generation.keywords.echo import (
    Echo,
    SourceVocabulary,
    drop_near_duplicates,
    echo_kinds,
)
from tastemaker.generation.keywords.few_shot import (
    example_copies,
    few_shot_messages,
    first_turn,
    shots,
)
from tastemaker.generation.keywords.parsing import parse_keywords
from tastemaker.generation.prompts import ITEM_PROMPTS, PREFERENCE_PROMPTS
from tastemaker.llm.base import LLM, ChatMessage

log = logging.getLogger("tastemaker.generation")

Fallback = Callable[[KeywordExtractor], Keywords]  # the same subject, asked of another extractor
_ALL = 1_000  # candidates parsed from one reply before filtering (replies are short)


class LLMExtractorConfig(BaseModel):
    """How many keywords to ask for, and how hard to try before giving up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: Domain | None = Field(None, description="prompt domain; None: the history's own")
    n: PositiveInt = Field(8, description="preference keywords (PMG uses 8)")
    item_n: int = Field(8, ge=5, le=10, description="target-item keywords (5-10)")
    min_keywords: PositiveInt | None = Field(None, description="None: half of n, rounded up")
    retries: int = Field(2, ge=0, description="firmer prompts after an unusable reply")
    max_new_tokens: PositiveInt | None = Field(
        None, description="reply length; None: the LLM's own ([llm] max_new_tokens)"
    )
    drop_listed: tuple[Kind, ...] = Field(
        ("item",),
        description="whose keywords lose values copied from the prompt's lists (genres, tags)",
    )
    drop_names: bool = Field(True, description="drop person and character names (heuristic)")
    retry_temperature: float = Field(
        0.7, ge=0.0, description="sampling from the second retry on (greedy before)"
    )
    layout: Literal["auto", "chat", "few-shot"] = Field(
        "auto",
        description="few-shot: worked examples as earlier turns, for base models without a "
        "chat template (e.g. Gemma 3 270M); their answers' keywords are not kept. auto: "
        "few-shot when the model has no chat template, chat otherwise",
    )

    @model_validator(mode="after")
    def _minimum_fits(self) -> LLMExtractorConfig:
        if self.min_keywords is not None and self.min_keywords > min(self.n, self.item_n):
            raise ValueError("min_keywords cannot exceed n or item_n")
        return self

    def minimum(self, n: int) -> int:
        return self.min_keywords or math.ceil(n / 2)


@dataclass
class _Job:
    """One subject's extraction in progress (a user or an item)."""

    subject: str
    kind: Kind
    domain: Domain
    text: str
    n: int
    exclude: list[str]
    titles: list[str]
    vocabulary: SourceVocabulary
    attempts: list[Attempt] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)


class LLMKeywordExtractor(KeywordExtractor):
    """Keywords from an LLM's reply to PMG-style prompts, parsed, retried, never silently empty.

    ``fallback`` (e.g. a
    :class:`~tastemaker.generation.keywords.statistical.StatisticalKeywordExtractor`)
    answers for a subject whose replies stay unusable; the result records that it did.
    """

    def __init__(
        self,
        llm: LLM,
        config: LLMExtractorConfig | None = None,
        *,
        fallback: KeywordExtractor | None = None,
        **params: Any,
    ) -> None:
        base = config.model_dump() if config is not None else {}
        self.config: LLMExtractorConfig = validate(
            LLMExtractorConfig, {**base, **params}, where="LLM keyword extractor"
        )
        self.llm = llm
        self.fallback = fallback
        self.name = f"llm:{llm.name}"

    @functools.cached_property
    def few_shot(self) -> bool:
        """Whether prompts carry worked examples: as configured, or under ``auto`` when the
        model has no chat template (a base model; asking loads a local model)."""
        if self.config.layout == "auto":
            return not self.llm.has_chat_template
        return self.config.layout == "few-shot"

    def extract_user(self, history: UserHistory) -> Keywords:
        return self.extract_users([history], progress=False)[0]

    def extract_item(self, item: ItemText) -> Keywords:
        return self.extract_items([item], progress=False)[0]

    def extract_users(
        self, histories: Sequence[UserHistory], *, progress: bool = True, strict: bool = True
    ) -> list[Keywords]:
        """Keywords of many users, generated in batches.

        With ``strict`` (default) a user whose replies stay unusable gets the
        fallback's keywords, or raises :class:`KeywordExtractionError`; without,
        their partial result comes back with ``complete=False`` (and a warning).
        """
        jobs = [self._user_job(h) for h in histories]
        self._run(jobs, progress=progress)
        return [
            self._finish(job, strict=strict, fallback=lambda other, h=h: other.extract_user(h))
            for job, h in zip(jobs, histories, strict=True)
        ]

    def extract_items(
        self, items: Sequence[ItemText], *, progress: bool = True, strict: bool = True
    ) -> list[Keywords]:
        """Keywords of many target items, generated in batches (``strict`` as for users)."""
        jobs = [self._item_job(item) for item in items]
        self._run(jobs, progress=progress)
        return [
            self._finish(job, strict=strict, fallback=lambda other, i=i: other.extract_item(i))
            for job, i in zip(jobs, items, strict=True)
        ]

    def _user_job(self, history: UserHistory) -> _Job:
        if not history.lines:
            raise DataError(
                f"the history of user '{history.user_id}' is empty",
                "build it with build_history, which refuses users without liked items",
            )
        return _Job(
            subject=history.user_id,
            kind="user",
            domain=self.config.domain or history.domain,
            text=history.text,
            n=self.config.n,
            exclude=history.lines,
            titles=history.titles,
            vocabulary=SourceVocabulary.from_text(history.text, history.titles),
        )

    def _item_job(self, item: ItemText) -> _Job:
        return _Job(
            subject=item.item_id,
            kind="item",
            domain=self.config.domain or item.domain,
            text=item.text,
            n=self.config.item_n,
            exclude=item.text.splitlines(),
            titles=[item.title],
            vocabulary=SourceVocabulary.from_text(item.text, [item.title]),
        )

    def _messages(self, job: _Job, firm: bool) -> list[ChatMessage]:
        template = (PREFERENCE_PROMPTS if job.kind == "user" else ITEM_PROMPTS)[job.domain]
        if self.few_shot:
            examples = shots(job.kind, job.domain)
            return few_shot_messages(template, examples, job.text, job.n, firm=firm)
        return template.messages(job.text, job.n, firm=firm)

    def _run(self, jobs: list[_Job], *, progress: bool) -> None:
        """First attempts for every job in one batch, then retry rounds for the short ones."""
        from tqdm.auto import tqdm

        cfg = self.config
        bar = tqdm(total=len(jobs), desc=f"keywords ({self.llm.name})", disable=not progress)
        pending = list(jobs)
        for attempt in range(cfg.retries + 1):
            if not pending:
                break
            temperature = cfg.retry_temperature if attempt >= 2 else 0.0
            seed = self.llm.config.seed + attempt
            size = self.llm.config.batch_size
            for lo in range(0, len(pending), size):
                chunk = pending[lo : lo + size]
                messages = [self._messages(job, firm=attempt > 0) for job in chunk]
                replies = self.llm.replies(
                    messages,
                    max_new_tokens=cfg.max_new_tokens,
                    temperature=temperature,
                    seed=seed,
                )
                for job, sent, reply in zip(chunk, messages, replies, strict=True):
                    parsed, dropped = self._keep(job, reply.text, reply.truncated)
                    job.attempts.append(
                        Attempt(
                            sent, reply.text, parsed, reply.truncated, temperature, seed, dropped
                        )
                    )
                    job.keywords = _merge(job.keywords, parsed, job.n)
                    if len(job.keywords) >= cfg.minimum(job.n):
                        bar.update(1)
            pending = [job for job in pending if len(job.keywords) < cfg.minimum(job.n)]
        bar.update(len(pending))
        bar.close()

    def _keep(self, job: _Job, text: str, truncated: bool) -> tuple[list[str], dict[str, Echo]]:
        """The reply's usable keywords (at most ``job.n``), and those dropped as copies of
        the prompt (titles always; listed values and names as configured; the few-shot
        examples' answers), with why."""
        few_shot = self.few_shot
        if few_shot:  # a base model goes on to write the next turn: the answer ends there
            answer = first_turn(text)
            truncated = truncated and answer == text.strip()
            text = answer
        candidates = parse_keywords(
            text, _ALL, exclude=job.exclude, titles=job.titles, truncated=truncated
        )
        candidates = drop_near_duplicates(candidates)
        drop: set[Echo] = {"title"}
        if job.kind in self.config.drop_listed:
            drop.add("value")
        if self.config.drop_names:
            drop.add("name")
        kinds = echo_kinds(candidates, job.vocabulary)
        if few_shot:
            drop.add("example")
            copied = example_copies(candidates, shots(job.kind, job.domain), job.vocabulary)
            kinds = ["example" if c else k for k, c in zip(kinds, copied, strict=True)]
        kept = [k for k, kind in zip(candidates, kinds, strict=True) if kind not in drop]
        dropped = {k: kind for k, kind in zip(candidates, kinds, strict=True) if kind in drop}
        return kept[: job.n], dropped

    def _finish(self, job: _Job, *, strict: bool, fallback: Fallback) -> Keywords:
        result = Keywords(
            subject=job.subject,
            kind=job.kind,
            keywords=job.keywords,
            extractor=self.name,
            source_text=job.text,
            attempts=job.attempts,
            complete=len(job.keywords) >= self.config.minimum(job.n),
        )
        if result.complete:
            return result
        problem = (
            f"{self.llm.name} gave {len(job.keywords)} usable keyword(s) for {job.kind} "
            f"'{job.subject}' (at least {self.config.minimum(job.n)} needed) in "
            f"{len(job.attempts)} attempt(s); last reply: {job.attempts[-1].raw[:200]!r}"
        )
        if self.fallback is not None:
            log.warning("%s; using %s instead", problem, self.fallback.name)
            return replace(fallback(self.fallback), attempts=job.attempts, fallback=problem)
        if not strict:
            log.warning("%s; keeping the partial result", problem)
            return result
        raise KeywordExtractionError(
            problem,
            "use a larger model (LLMConfig(model=...)), allow more retries or max_new_tokens, "
            "or pass fallback=StatisticalKeywordExtractor(...)",
            result,
        )


def _merge(kept: list[str], new: list[str], n: int) -> list[str]:
    """``kept`` then the new keywords it lacks (up to case, punctuation or a misspelling),
    at most ``n``."""
    return drop_near_duplicates([*kept, *new])[:n]
