"""Preference keywords of a user and visual keywords of a target item (PMG stages 2 and 3).

Two extractors share one interface (:class:`KeywordExtractor`: ``extract_user``,
``extract_item``, batched ``extract_users``) and one result type
(:class:`Keywords`), both in :mod:`.base`:

* :class:`LLMKeywordExtractor` (:mod:`.llm`) asks an :class:`~tastemaker.llm.LLM`
  with the per-domain prompts of :mod:`tastemaker.generation.prompts`, parses the
  reply defensively (:func:`parse_keywords`, :mod:`.parsing`: loops cut, case
  duplicates merged), drops what the reply copied from the prompt (:mod:`.echo`:
  titles, misspelt ones too, always; listed genres and tags for item keywords;
  names), retries with a firmer prompt when too few keywords survive, and then
  fails loudly (or hands over to a fallback extractor, recorded in the result);
  it never returns an empty list silently. ``layout = "few-shot"`` (:mod:`.few_shot`)
  prompts a base model without a chat template (Gemma 3 270M) with worked examples.
* :class:`StatisticalKeywordExtractor` (:mod:`.statistical`) needs no LLM: the
  attribute values (genres, tags) over-represented in the user's items relative
  to the population, made diverse by maximal marginal relevance over sentence
  embeddings of the candidates. It is the baseline and the fallback.
"""

from tastemaker.generation.keywords.base import (
    Attempt,
    KeywordExtractionError,
    KeywordExtractor,
    Keywords,
)
from tastemaker.generation.keywords.echo import SourceVocabulary, echo_kind, echo_kinds
from tastemaker.generation.keywords.llm import LLMExtractorConfig, LLMKeywordExtractor
from tastemaker.generation.keywords.parsing import parse_keywords
from tastemaker.generation.keywords.statistical import (
    StatisticalConfig,
    StatisticalKeywordExtractor,
    mmr,
    popular_keywords,
)

__all__ = [
    "Attempt",
    "KeywordExtractionError",
    "KeywordExtractor",
    "Keywords",
    "LLMExtractorConfig",
    "LLMKeywordExtractor",
    "SourceVocabulary",
    "StatisticalConfig",
    "StatisticalKeywordExtractor",
    "echo_kind",
    "echo_kinds",
    "mmr",
    "parse_keywords",
    "popular_keywords",
]
