"""Which explanation a request gets: statistical, template or llm-grounded.

* ``statistical`` (:mod:`tastemaker.serve.explanations`): evidence counted in the data
  (co-occurrence neighbours in the history, shared genres and tags); no text model.
* ``template`` and ``llm-grounded``: the text package's explanations
  (:class:`tastemaker.text.dataset_explainer.DatasetExplainer`) over the served data,
  with the user's history (feedback included) as their profile and a faithfulness
  check in the answer. ``llm-grounded`` needs a language model (``serve --explain-llm``):
  loaded once, in a thread at start-up; generation runs in the request's worker thread
  (the route is sync, so off the event loop), one generation at a time, since a local
  model's forward passes would only contend for the same cores.

The server's default (``--explain-method``) applies when a request names none.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from tastemaker.serve import explanations
from tastemaker.serve.background import in_background
from tastemaker.serve.problems import ApiError, unknown_item, unknown_user
from tastemaker.serve.state import ServeState

if TYPE_CHECKING:
    from tastemaker.llm.base import LLM
    from tastemaker.text.dataset_explainer import DatasetExplainer

log = logging.getLogger("tastemaker.serve")

LLM_METHODS = ("llm-grounded",)


def create_explanation_llm(model: str) -> LLM:
    """The language model named on the command line: an OpenAI-compatible server's base
    URL, or a Hugging Face id, folder or ``.gguf`` file."""
    from tastemaker.llm import create_llm

    if model.startswith(("http://", "https://")):
        return create_llm(backend="openai", base_url=model, model="default")
    return create_llm(model=model)


class Explainers:
    """The explanation methods of one service; the text explainer is built on first use."""

    def __init__(self, state: ServeState, default: str, llm_model: str | None) -> None:
        self.state = state
        self.default = default
        self.llm_model = llm_model
        self.llm: LLM | None = None
        self.llm_error: str | None = None  # why the language model failed to load
        self._text: DatasetExplainer | None = None
        self._build_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    def load_llm(self) -> threading.Thread | None:
        """Load the configured language model in a thread (None when none is configured)."""
        if self.llm_model is None:
            return None
        model = self.llm_model

        def load() -> None:
            llm = create_explanation_llm(model)
            warm = getattr(llm, "load", None)  # a local model: its weights now, not per request
            if callable(warm):
                warm()
            self.llm = llm
            log.info("explanation language model %s loaded", model)

        def failed(reason: str) -> None:
            self.llm_error = reason

        return in_background("explanation language model", load, failed)

    def text(self) -> DatasetExplainer:
        """The text package's explainer over the served catalog (built once)."""
        with self._build_lock:
            if self._text is None:
                from tastemaker.text.dataset_explainer import DatasetExplainer
                from tastemaker.text.sources import read_user_tags

                state = self.state
                self._text = DatasetExplainer(
                    state.data_name, state.catalog.frame, read_user_tags(state.settings.data)
                )
            return self._text

    def explain(self, user_id: str, item_id: str, method: str | None) -> dict[str, Any]:
        """The API's explanation of ``item_id`` for ``user_id`` by ``method``."""
        chosen = method or self.default
        if chosen == "statistical":
            return {**explanations.explain(self.state, user_id, item_id), **no_text_fields()}
        llm = self.ready_llm() if chosen in LLM_METHODS else None
        if item_id not in self.state.item_index:
            raise unknown_item(item_id)
        history = self.state.rated_history(user_id)
        if history.is_empty():
            raise unknown_user(user_id)
        explainer = self.text()
        if llm is None:
            checked = explainer.explain(user_id, item_id, history, method=chosen)
        else:
            with self._generate_lock:
                checked = explainer.explain(user_id, item_id, history, method=chosen, llm=llm)
        result = checked.explanation
        because = [
            {"item_id": e.item_id, "title": self.state.item_view(e.item_id)["title"]}
            for e in result.profile
        ]
        return {
            "user_id": user_id,
            "item_id": item_id,
            "text": result.text,
            "because": because,
            "attributes": [],
            "method": chosen,
            "model": llm.name if llm is not None else None,
            "fallback": result.fallback,
            "faithfulness": checked.faithfulness.as_dict(),
        }

    def ready_llm(self) -> LLM:
        """The loaded language model, or a 4xx/503 that says why there is none."""
        if self.llm is not None:
            return self.llm
        if self.llm_model is None:
            raise ApiError(
                409,
                "method 'llm-grounded' needs a language model, and this server has none",
                "use method statistical or template, or start the server with --explain-llm",
            )
        if self.llm_error is not None:
            raise ApiError(
                503,
                f"the explanation language model failed to load: {self.llm_error}",
                "use method statistical or template, or fix --explain-llm and restart",
            )
        raise ApiError(503, "the explanation language model is still loading", "retry in a moment")


def no_text_fields() -> dict[str, Any]:
    """What a statistical answer leaves empty: no text model, nothing to check."""
    return {"model": None, "fallback": None, "faithfulness": None}


__all__ = ["Explainers", "create_explanation_llm"]
