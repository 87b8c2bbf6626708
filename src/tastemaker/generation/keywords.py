"""Preference keywords of a user and visual keywords of a target item (PMG stages 2 and 3).

Two extractors share one interface (:class:`KeywordExtractor`: ``extract_user``,
``extract_item``, batched ``extract_users``) and one result type
(:class:`Keywords`), which keeps everything intermediate: the text read, every
prompt and raw LLM reply, the parsed keywords and their scores, so a user can
see why an image came out as it did.

* :class:`LLMKeywordExtractor` asks an :class:`~tastemaker.llm.LLM` with the
  per-domain prompts of :mod:`tastemaker.generation.prompts`, parses the reply
  defensively (:func:`parse_keywords`), retries with a firmer prompt when too few
  keywords survive, and then fails loudly (or hands over to a fallback extractor,
  recorded in the result); it never returns an empty list silently.
* :class:`StatisticalKeywordExtractor` needs no LLM: the attribute values (genres,
  tags) over-represented in the user's items relative to the population, made
  diverse by maximal marginal relevance over sentence embeddings of the
  candidates. It is the baseline and the fallback.
"""

from __future__ import annotations

import logging
import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from tastemaker.config import validate
from tastemaker.data.catalog import ITEM_ID, Catalog
from tastemaker.data.dataset import Split
from tastemaker.data.interactions import Interactions
from tastemaker.errors import ConfigError, DataError
from tastemaker.generation.history import Domain, ItemText, UserHistory, known_interactions
from tastemaker.generation.prompts import item_messages, preference_messages
from tastemaker.llm.base import LLM, ChatMessage

log = logging.getLogger("tastemaker.generation")

Kind = Literal["user", "item"]
Embedder = Callable[[Sequence[str]], np.ndarray]

MAX_WORDS = 4  # a longer "keyword" is a sentence or an explanation
MAX_CHARS = 40

# ---------------------------------------------------------------------------- parsing

_SPECIAL_TOKENS = re.compile(r"<\|[^|>]*\|>|</?s>|\[/?INST\]|https?://\S+|www\.\S+")
_MARKUP = re.compile(r"\*\*|__|`|~~")
_BULLET = re.compile(r"^(?:[-*•+·▪►✓]|\(?\d{1,2}[.):]|#+)\s*")
_INLINE_NUMBER = re.compile(r"(?:^|\s)\(?\d{1,2}[.)]\s+")  # "1. cute 2. cartoon"
_SEPARATORS = re.compile(r"[,;:|/()\[\]{}]|\s[-–—]\s")
_EXPLANATION = re.compile(r"\s[-–—]\s")  # "sci-fi - films about space"
_EDGE = "\"'`“”‘’«»*_~.,:;!?-–— \t"
_LEADING_CONJUNCTION = re.compile(r"^(?:and|or|&|plus)\s+", re.IGNORECASE)
_PREAMBLE_WORDS = re.compile(
    r"\b(keywords?|here|answer|output|interests?|preferences?|taste|summary|list|"
    r"describe[sd]?|user|person|shopper|result)\b",
    re.IGNORECASE,
)
_PLACEHOLDER = re.compile(r"^(?:keyword|word|tag)\s*\d*$", re.IGNORECASE)
_CHATTER = re.compile(
    r"\b(?:keywords?|here|answer|output|sure|certainly|hope|i|me|my|we|you|your)\b|[!?]|\.\s",
    re.IGNORECASE,
)
_JUNK = {
    "etc", "n/a", "na", "none", "more", "others", "other", "misc", "various", "and", "or",
    "the", "a", "an", "of", "keywords", "keyword", "movie", "movies", "film", "films",
    "title", "titles", "genre", "genres", "tag", "tags", "description", "name",
    "system", "user", "assistant",
}  # fmt: skip


def _key(text: str) -> str:
    """Comparison form: case-folded words without punctuation ("Sci-Fi" == "sci fi")."""
    return " ".join(re.findall(r"[^\W_]+", text.casefold()))


def _clean(candidate: str) -> str | None:
    """A candidate stripped of quotes and punctuation, or None when it is no keyword."""
    text = " ".join(candidate.split()).strip(_EDGE.replace("!", "").replace("?", ""))
    if _CHATTER.search(text):  # "I hope this helps!", "Sure! Here you go", "Keywords are"
        return None
    text = _LEADING_CONJUNCTION.sub("", text).strip(_EDGE)
    if not text or not re.search(r"[^\W\d_]", text):  # nothing, or no letter at all
        return None
    if len(text) > MAX_CHARS or len(text.split()) > MAX_WORDS or len(text) < 2:
        return None
    if text.lower().startswith(("http", "www.")) or _PLACEHOLDER.match(text):
        return None
    return None if _key(text) in _JUNK else text


def _line_candidates(line: str) -> list[str]:
    """The keyword candidates of one line of an LLM reply."""
    line = line.strip()
    bulleted = bool(_BULLET.match(line))
    line = _BULLET.sub("", line, count=1).strip()
    head, sep, tail = line.partition(":")
    if sep and "," not in head:
        term = not _PREAMBLE_WORDS.search(head) and len(head.split()) <= MAX_WORDS
        if bulleted and term:
            line = head  # "1. **Noir**: dark crime films, often black and white"
        elif not term or "," in tail:
            line = tail  # "Here are the keywords: a, b", "Genres: a, b"
        else:
            line = head  # "Noir: dark crime films"
    elif bulleted:
        line = _EXPLANATION.split(line, maxsplit=1)[0]  # "- noir - dark crime films"
    pieces = [p for p in _INLINE_NUMBER.split(line) if p.strip()]
    return [c for piece in pieces for c in _SEPARATORS.split(piece)]


def parse_keywords(
    text: str,
    n: int,
    *,
    exclude: Iterable[str] = (),
    titles: Iterable[str] = (),
    truncated: bool = False,
) -> list[str]:
    """Up to ``n`` distinct keywords from an LLM reply, however it is formatted.

    Handles numbered lists (one per line, or inline as in "1. cute 2. cartoon"),
    bullets, comma / semicolon / slash / newline separated lists, quotes,
    markdown bold, chat-template tokens, preambles ("Keywords:", "Here are 8
    keywords:") and explanations after a ":" or " - " of a list entry. Drops
    junk (numbers, placeholders, links), phrases of more than four words,
    duplicates (case and punctuation insensitive), anything in ``exclude`` (the
    prompt lines a model may echo), and ``titles`` with any phrase of two or
    more words inside one ("Episode VI" of "Star Wars: Episode VI - Return of
    the Jedi"): a title is not a preference. Order is kept.
    A ``truncated`` reply (cut at the token limit) loses what follows its last
    separator, a keyword that may be cut mid-word.
    """
    if n < 1:
        return []
    if truncated and (cut := max(text.rfind(c) for c in ",;\n")) > 0:
        text = text[:cut]
    text = _MARKUP.sub("", _SPECIAL_TOKENS.sub("\n", text))
    titles = list(titles)
    for title in sorted(titles, key=len, reverse=True):
        if len(title.split()) > 1:  # "Girl, Interrupted" would split into two "keywords"
            text = re.sub(rf"(?<!\w){re.escape(title)}(?!\w)", ",", text, flags=re.IGNORECASE)
    title_keys = [f" {_key(t)} " for t in titles]
    excluded = {_key(e) for e in exclude} | {t.strip() for t in title_keys}
    keywords: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        for candidate in _line_candidates(line):
            keyword = _clean(candidate)
            if keyword is None or (key := _key(keyword)) in seen or key in excluded:
                continue
            if " " in key and any(f" {key} " in title for title in title_keys):
                continue
            seen.add(key)
            keywords.append(keyword)
            if len(keywords) == n:
                return keywords
    return keywords


# ---------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Attempt:
    """One LLM call: the chat sent, the raw reply, and what parsing kept of it."""

    messages: list[ChatMessage]
    raw: str
    parsed: list[str]
    truncated: bool  # the reply ran out of tokens
    temperature: float
    seed: int


@dataclass(frozen=True)
class Keywords:
    """Keywords of a user (preferences) or an item, with how they were obtained."""

    subject: str  # the user or item ID
    kind: Kind
    keywords: list[str]
    extractor: str  # "llm:hf:SmolLM2-135M-Instruct", "statistical", ...
    source_text: str  # the history or item text the extractor read
    scores: list[float] = field(default_factory=list)  # relevance per keyword (statistical)
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


# ---------------------------------------------------------------------------- LLM


class LLMExtractorConfig(BaseModel):
    """How many keywords to ask for, and how hard to try before giving up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: Domain | None = Field(None, description="prompt domain; None: the history's own")
    n: PositiveInt = Field(8, description="preference keywords (PMG uses 8)")
    item_n: int = Field(8, ge=5, le=10, description="target-item keywords (5-10)")
    min_keywords: PositiveInt | None = Field(None, description="None: half of n, rounded up")
    retries: int = Field(2, ge=0, description="firmer prompts after an unusable reply")
    max_new_tokens: PositiveInt = 48
    retry_temperature: float = Field(
        0.7, ge=0.0, description="sampling from the second retry on (greedy before)"
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
    attempts: list[Attempt] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)


class LLMKeywordExtractor(KeywordExtractor):
    """Keywords from an LLM's reply to PMG-style prompts, parsed, retried, never silently empty.

    ``fallback`` (e.g. a :class:`StatisticalKeywordExtractor`) answers for a
    subject whose replies stay unusable; the result records that it did.
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

    def extract_user(self, history: UserHistory) -> Keywords:
        return self.extract_users([history], progress=False)[0]

    def extract_item(self, item: ItemText) -> Keywords:
        job = self._item_job(item)
        self._run([job], progress=False)
        return self._finish(job, strict=True, fallback=lambda: self._fallback_item(item))

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
            self._finish(job, strict=strict, fallback=lambda h=h: self._fallback_user(h))
            for job, h in zip(jobs, histories, strict=True)
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
        )

    def _messages(self, job: _Job, firm: bool) -> list[ChatMessage]:
        build = preference_messages if job.kind == "user" else item_messages
        return build(job.domain, job.text, job.n, firm=firm)

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
                    parsed = parse_keywords(
                        reply.text,
                        job.n,
                        exclude=job.exclude,
                        titles=job.titles,
                        truncated=reply.truncated,
                    )
                    job.attempts.append(
                        Attempt(sent, reply.text, parsed, reply.truncated, temperature, seed)
                    )
                    job.keywords = _merge(job.keywords, parsed, job.n)
                    if len(job.keywords) >= cfg.minimum(job.n):
                        bar.update(1)
            pending = [job for job in pending if len(job.keywords) < cfg.minimum(job.n)]
        bar.update(len(pending))
        bar.close()

    def _finish(self, job: _Job, *, strict: bool, fallback: Callable[[], Keywords]) -> Keywords:
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
            return replace(fallback(), attempts=job.attempts, fallback=problem)
        if not strict:
            log.warning("%s; keeping the partial result", problem)
            return result
        raise KeywordExtractionError(
            problem,
            "use a larger model (LLMConfig(model=...)), allow more retries or max_new_tokens, "
            "or pass fallback=StatisticalKeywordExtractor(...)",
            result,
        )

    def _fallback_user(self, history: UserHistory) -> Keywords:
        assert self.fallback is not None
        return self.fallback.extract_user(history)

    def _fallback_item(self, item: ItemText) -> Keywords:
        assert self.fallback is not None
        return self.fallback.extract_item(item)


def _merge(kept: list[str], new: list[str], n: int) -> list[str]:
    """``kept`` then the new keywords it lacks, at most ``n``."""
    keys = {_key(k) for k in kept}
    merged = list(kept)
    for keyword in new:
        if _key(keyword) not in keys and len(merged) < n:
            keys.add(_key(keyword))
            merged.append(keyword)
    return merged


# ---------------------------------------------------------------------------- statistical


class StatisticalConfig(BaseModel):
    """Which attributes are keywords, and how relevance trades against diversity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[str, ...] | None = Field(None, description="None: every categorical field")
    n: PositiveInt = 8
    item_n: PositiveInt = 8
    mmr_lambda: float = Field(
        0.7, ge=0.0, le=1.0, description="1: by relevance alone; lower: more diverse"
    )
    candidates: PositiveInt = Field(40, description="top values by relevance that MMR picks from")
    min_support: PositiveInt = Field(
        2, description="a user's value must recur in this many items (while n such values exist)"
    )


class StatisticalKeywordExtractor(KeywordExtractor):
    """Distinctive attribute values of a user's items, made diverse with embeddings (no LLM).

    A value v (a genre, a tag) scores ``p_u(v) · log(p_u(v) / p(v))``: its share
    of the user's history items times its lift over its share ``p(v)`` of the
    population's interactions (of the catalog's items, without interactions).
    Frequent-and-distinctive values win; values as common for the user as for
    everyone score 0, rarer ones below. Only values in at least ``min_support``
    of the user's items compete while there are ``n`` of them: one rare tag on
    one liked film is an accident, not a preference. For an item, a value scores its inverse
    frequency ``log(1 / p(v))``: rare tags say more than "Drama". The top
    ``candidates`` are then picked by maximal marginal relevance (Carbonell &
    Goldstein, 1998): ``λ · relevance − (1 − λ) · max cosine to those picked``,
    over sentence embeddings (all-MiniLM-L6-v2 by default) of the values, so
    "sci-fi" and "science fiction" do not both take a slot.
    """

    name = "statistical"

    def __init__(
        self,
        catalog: Catalog,
        interactions: Interactions | Split | None = None,
        config: StatisticalConfig | None = None,
        *,
        embedder: Embedder | None = None,
        **params: Any,
    ) -> None:
        base = config.model_dump() if config is not None else {}
        self.config: StatisticalConfig = validate(
            StatisticalConfig, {**base, **params}, where="statistical keyword extractor"
        )
        fields = list(self.config.fields or catalog.categorical_fields)
        unknown = [f for f in fields if f not in catalog.categorical_fields]
        if unknown or not fields:
            raise ConfigError(
                f"no usable categorical item fields ({', '.join(unknown) or 'none in catalog'})",
                f"choose among the catalog's list fields: "
                f"{', '.join(catalog.categorical_fields) or 'none; use the LLM extractor'}",
            )
        self.fields = fields
        self._values = _item_values(catalog, fields)
        self._population = _population(self._values, catalog, interactions)
        self._embedder = embedder
        self._vectors: dict[str, np.ndarray] = {}

    def values(self, item_id: str) -> list[str]:
        """The distinct attribute values of one item (case-insensitive, first form kept)."""
        return self._values.get(str(item_id), [])

    def population_share(self, value: str) -> float:
        """p(v): the share of the population's interactions (or items) that carry ``value``."""
        floor = 1.0 / max(self._population.total, 1.0)
        return max(self._population.counts.get(_key(value), 0.0) / self._population.total, floor)

    def extract_user(self, history: UserHistory) -> Keywords:
        counts: Counter[str] = Counter()
        forms: dict[str, str] = {}
        for item_id in history.item_ids:
            for value in self.values(item_id):
                counts[_key(value)] += 1
                forms.setdefault(_key(value), value)
        if not counts:
            raise KeywordExtractionError(
                f"none of the {len(history)} history items of user '{history.user_id}' has a "
                f"value in {', '.join(self.fields)}",
                "use the LLM extractor, or a catalog with genres, tags or other list fields",
                Keywords(history.user_id, "user", [], self.name, history.text, complete=False),
            )
        size = len(history)
        recurring = [k for k, c in counts.items() if c >= self.config.min_support]
        keys = recurring if len(recurring) >= self.config.n else list(counts)
        relevance = {
            forms[k]: (counts[k] / size)
            * math.log((counts[k] / size) / self.population_share(forms[k]))
            for k in keys
        }
        return self._pick(history.user_id, "user", history.text, relevance, self.config.n)

    def extract_item(self, item: ItemText) -> Keywords:
        values = list(
            dict.fromkeys(v for f in self.fields for v in item.attributes.get(f, []) if v)
        )
        if not values:
            values = self.values(item.item_id)
        if not values:
            raise KeywordExtractionError(
                f"item '{item.item_id}' has no value in {', '.join(self.fields)}",
                "use the LLM extractor for items without attributes",
                Keywords(item.item_id, "item", [], self.name, item.text, complete=False),
            )
        relevance = {v: -math.log(self.population_share(v)) for v in values}
        return self._pick(item.item_id, "item", item.text, relevance, self.config.item_n)

    def _pick(
        self, subject: str, kind: Kind, text: str, relevance: dict[str, float], n: int
    ) -> Keywords:
        """The top candidates by relevance, then ``n`` of them by maximal marginal relevance."""
        ranked = sorted(relevance.items(), key=lambda kv: (-kv[1], kv[0]))[: self.config.candidates]
        names = [name for name, _ in ranked]
        scores = np.array([score for _, score in ranked], dtype=np.float64)
        picked = mmr(scores, self._embed(names), n, self.config.mmr_lambda)
        return Keywords(
            subject=subject,
            kind=kind,
            keywords=[names[i] for i in picked],
            extractor=self.name,
            source_text=text,
            scores=[float(scores[i]) for i in picked],
        )

    def _embed(self, texts: list[str]) -> np.ndarray | None:
        """Unit vectors of ``texts`` (cached), or None when MMR needs no similarities."""
        if self.config.mmr_lambda >= 1.0 or len(texts) < 2:
            return None
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            vectors = np.asarray(self._embedder_fn()(missing), dtype=np.float32)
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self._vectors.update(zip(missing, vectors, strict=True))
        return np.stack([self._vectors[t] for t in texts])

    def _embedder_fn(self) -> Embedder:
        if self._embedder is None:
            from tastemaker.encoders.text import TextEncoder

            encoder = TextEncoder()
            self._embedder = lambda texts: encoder.embed(list(texts))[0]
        return self._embedder


def mmr(scores: np.ndarray, vectors: np.ndarray | None, n: int, lam: float) -> list[int]:
    """Indices of ``n`` candidates chosen greedily by maximal marginal relevance.

    Relevance is ``scores`` rescaled to [0, 1]; each step takes the candidate
    maximising ``lam · relevance − (1 − lam) · max cosine to those already
    taken``. Without ``vectors`` (or with ``lam = 1``) it is the top ``n`` by score.
    """
    count = len(scores)
    if count == 0:
        return []
    low, high = float(scores.min()), float(scores.max())
    relevance = (scores - low) / (high - low) if high > low else np.ones(count)
    if vectors is None or lam >= 1.0:
        return [int(i) for i in np.argsort(-relevance, kind="stable")[:n]]
    similarity = vectors @ vectors.T
    chosen: list[int] = []
    closest = np.full(count, -np.inf)  # max similarity to the chosen ones
    available = np.ones(count, dtype=bool)
    while len(chosen) < min(n, count):
        penalty = np.where(np.isfinite(closest), closest, 0.0)
        gain = np.where(available, lam * relevance - (1 - lam) * penalty, -np.inf)
        best = int(np.argmax(gain))
        chosen.append(best)
        available[best] = False
        closest = np.maximum(closest, similarity[best])
    return chosen


@dataclass(frozen=True)
class _Population:
    counts: dict[str, float]  # value key -> interactions (or items) carrying it
    total: float  # interactions (or items) in all


def _item_values(catalog: Catalog, fields: list[str]) -> dict[str, list[str]]:
    """Item ID -> its distinct values over ``fields``, each in its commonest spelling."""
    rows = catalog.frame.select(ITEM_ID, *fields).iter_rows()
    raw = {
        row[0]: [v.strip() for col in row[1:] for v in col or [] if v and v.strip()] for row in rows
    }
    spellings = Counter(v for values in raw.values() for v in values)
    canonical: dict[str, str] = {}
    for spelling, _ in spellings.most_common():  # ties: the first seen
        canonical.setdefault(_key(spelling), spelling)
    return {
        item: list(dict.fromkeys(canonical[_key(v)] for v in values))
        for item, values in raw.items()
    }


def _population(
    values: dict[str, list[str]], catalog: Catalog, interactions: Interactions | Split | None
) -> _Population:
    """How often each value occurs: per interaction when given, else per catalog item."""
    if interactions is None:
        weights = dict.fromkeys(values, 1.0)
    else:
        frame = known_interactions(interactions).frame
        per_item = frame.group_by(ITEM_ID).len()
        weights = dict(zip(per_item[ITEM_ID].to_list(), per_item["len"].to_list(), strict=True))
    counts: Counter[str] = Counter()
    for item_id, weight in weights.items():
        for value in values.get(item_id, []):
            counts[_key(value)] += weight
    total = float(sum(weights.values())) or float(len(catalog))
    return _Population(dict(counts), total)


def popular_keywords(
    extractor: StatisticalKeywordExtractor, histories: Iterable[UserHistory], n: int
) -> list[str]:
    """The ``n`` values most frequent over the items of ``histories`` (a non-personal baseline)."""
    counts: Counter[str] = Counter()
    forms: dict[str, str] = {}
    for history in histories:
        for item_id in history.item_ids:
            for value in extractor.values(item_id):
                counts[_key(value)] += 1
                forms.setdefault(_key(value), value)
    return [forms[k] for k, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


__all__ = [
    "Attempt",
    "KeywordExtractionError",
    "KeywordExtractor",
    "Keywords",
    "LLMExtractorConfig",
    "LLMKeywordExtractor",
    "StatisticalConfig",
    "StatisticalKeywordExtractor",
    "mmr",
    "parse_keywords",
    "popular_keywords",
]
