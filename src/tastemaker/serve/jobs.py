"""Generation jobs of the service: a queue, one worker thread, every step kept on disk.

PMG generation (Shen et al., WWW 2024, arXiv 2404.08677) takes seconds with the tiny
generator and minutes with Stable Diffusion on a CPU, so ``POST /generations`` only
queues a job and answers at once; a single worker thread runs the jobs in order
(the machine's cores go to one generation at a time, and the request threads stay
free). Each job lives in ``<state>/generations/<job_id>/``:

- ``job.json``: the request, status (``queued``, ``running``, ``done``, ``failed``,
  ``interrupted``), stage and progress, the stages with their times, the error, the
  user's pick, and the API's view of the result; rewritten atomically on every change;
- ``result/``: :meth:`GenerationResult.save`'s folder (``result.json`` with every
  intermediate: history, LLM prompts and replies, keywords, prompts, weights, seeds,
  d_p / d_t / z; the candidate PNGs; ``index.html``), or for a dry job (keywords only,
  for the page's toggles) ``prepared.json``.

A job reads the user's history from the served data plus what the user liked since
(feedback events) or the request's ad-hoc ``history`` (:mod:`~tastemaker.serve.job_data`).
Without ``--generation-config`` the jobs run :data:`DEFAULT_CONFIG` (offline: statistical
keywords, the tiny random generator, no scorer), and every job's ``config`` says which.
Editing keywords and regenerating is a new job whose ``parent`` is the previous one, so
each step of a session stays on disk. Restart: jobs found ``queued``, ``running`` (the
process died) or ``interrupted`` (shutdown could not wait for them) are queued again
in their order of submission (its images depend only on the request, the data and the
seeded models, so rerunning it from the start loses only time); one interrupted
:data:`MAX_RESTARTS` times is marked failed instead, so a job that kills the server
cannot do so forever.

Retention: the newest ``keep_jobs`` finished jobs (``done``, ``failed``) stay in memory,
with every unfinished one; an older job is answered from its ``job.json`` (status,
images, a pick) and left out of the list of recent jobs. Job folders are never deleted:
they are the user's outputs.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tastemaker.atomic import ensure_writable_dir, write_text
from tastemaker.errors import ConfigError, DataError, TastemakerError
from tastemaker.serve.job_request import GenerationRequest
from tastemaker.serve.job_views import dry_view, result_view

if TYPE_CHECKING:
    from tastemaker.generation.data import Data
    from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
    from tastemaker.generation.result import Prepared
    from tastemaker.serve.settings import ServeSettings
    from tastemaker.serve.state import ServeState

log = logging.getLogger("tastemaker.serve.jobs")

JOB_FILE = "job.json"
RESULT_DIR = "result"
PREPARED_FILE = "prepared.json"
ACTIVE = ("queued", "running")
FINISHED = ("done", "failed")
JOB_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: what submit names a job
MAX_RESTARTS = 2
MAX_QUEUED = 32
DEFAULT_CONFIG = {  # offline and fast: what a server without --generation-config runs
    "keywords": {"extractor": "statistical", "statistical": {"mmr_lambda": 1.0}},
    "generator": {"model": "tiny", "num_inference_steps": 4, "num_images": 2},
    "scorer": {"kind": "none"},
}
DEFAULT_NOTE = (
    "built-in default: statistical keywords, the tiny random generator (noise-like images), "
    "no scorer; start the server with --generation-config for real images and d_p / d_t / z"
)


class UnknownJob(DataError):
    """No job has that id (the router answers 404)."""


class QueueFull(ConfigError):
    """Too many jobs are waiting, or the server is shutting down (the router answers 503)."""


class JobManager:
    """Queued PMG generations run one at a time by a worker thread, persisted per job."""

    def __init__(self, settings: ServeSettings, state: ServeState) -> None:
        self.settings, self.state = settings, state
        self.folder = ensure_writable_dir(settings.state / "generations")
        self._jobs: dict[str, dict[str, Any]] = {}
        self._pending: deque[str] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.pipeline = self._configured()  # configs only: models load in the first job
        self._recover()
        self._thread = threading.Thread(
            target=self._work, name="tastemaker-generation", daemon=True
        )
        self._thread.start()

    # --- the API's side ------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> dict[str, Any]:
        """Queue a job and return its record (status ``queued``)."""
        if request.parent is not None:
            self.get(request.parent)  # an unknown parent is the caller's mistake: 404
        with self._cond:
            if self._stopping:
                raise QueueFull("the server is shutting down", "submit again after it restarts")
            if len(self._pending) >= MAX_QUEUED:
                raise QueueFull(
                    f"{len(self._pending)} generation jobs are already waiting",
                    "wait for some to finish (poll their status_url), then submit again",
                )
            job_id = uuid.uuid4().hex
            job = {
                "job_id": job_id,
                "status": "queued",
                "stage": "queued",
                "progress": 0.0,
                "stages": [],
                "request": request.model_dump(mode="json"),
                "parent": request.parent,
                "created": time.time(),
                "restarts": 0,
                "config": self.config_description(),
                "error": None,
                "choice": None,
                "result": None,
            }
            self._jobs[job_id] = job
            self._save(job)
            self._pending.append(job_id)
            self._cond.notify_all()
            return dict(job)

    def get(self, job_id: str) -> dict[str, Any]:
        """A job's record, as its ``job.json`` holds it (from disk once out of memory)."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is not None:
                return json.loads(json.dumps(job))
        return self._stored(job_id)  # finished, so nothing changes it but a pick

    def _stored(self, job_id: str) -> dict[str, Any]:
        """A job no longer held in memory, read from its folder; 404 when there is none."""
        path = self.folder / job_id / JOB_FILE
        try:
            if JOB_ID.fullmatch(job_id) and path.is_file():
                return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("cannot read the generation job %s (%s)", job_id, exc)
        raise UnknownJob(
            f"no generation job '{job_id}'", "use the job_id that POST /generations returned"
        )

    def image_path(self, job_id: str, index: int) -> Path:
        """The PNG of candidate ``index`` of a finished job (never a path from the request)."""
        return self._image_of(self.get(job_id), index)

    def _image_of(self, job: dict[str, Any], index: int) -> Path:
        job_id = job["job_id"]
        candidates = (job["result"] or {}).get("candidates", [])
        if not 0 <= index < len(candidates) or candidates[index]["file"] is None:
            raise UnknownJob(
                f"job '{job_id}' has no image {index} (status {job['status']})",
                f"use an index below {len(candidates)} of a job whose status is done",
            )
        return self.folder / job_id / RESULT_DIR / candidates[index]["file"]

    def choose(self, job_id: str, index: int) -> dict[str, Any]:
        """Record the user's pick among a finished job's candidates."""
        found = self.get(job_id)  # a stored job is read outside the lock
        self._image_of(found, index)
        with self._cond:
            job = self._jobs.get(job_id) or found
            job["choice"] = {"index": index, "at": time.time()}
            self._save(job)
            return json.loads(json.dumps(job))

    def jobs(self) -> list[dict[str, Any]]:
        """The records held in memory (unfinished, and the newest finished), oldest first."""
        with self._cond:
            return sorted((dict(j) for j in self._jobs.values()), key=lambda j: j["created"])

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Stop taking jobs; wait up to ``timeout`` s for the running one. True when it
        finished; otherwise it is persisted as ``interrupted`` (rerun on restart)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        with self._cond:
            for job in self._jobs.values():
                if job["status"] == "running":
                    self._update(job, status="interrupted", stage="interrupted by shutdown")
        return False

    def _configured(self) -> PersonalizedGenerationPipeline:
        """The pipeline of the configured scenario, or of :data:`DEFAULT_CONFIG`."""
        from tastemaker.generation.pipeline import PersonalizedGenerationPipeline
        from tastemaker.generation.scenario import PipelineConfig, load_scenario

        config = self.settings.generation_config
        if config:
            return PersonalizedGenerationPipeline(load_scenario(config).pipeline)
        return PersonalizedGenerationPipeline(PipelineConfig.model_validate(DEFAULT_CONFIG))

    def config_description(self) -> str:
        """Which generation config the jobs run with, in words for the result."""
        config = self.settings.generation_config
        return f"scenario {config}" if config else DEFAULT_NOTE

    # --- the worker's side ---------------------------------------------------------------

    def check(self, request: GenerationRequest) -> None:
        """Refuse at once what would fail in the worker: an unknown user or item, a user
        without liked items (a :class:`DataError` saying which)."""
        self.pipeline.describe(self.data(request), request.user, request.item_id)

    def data(self, request: GenerationRequest) -> Data:
        """The server's data, plus what the user liked since: their feedback events (rated
        at least the history's ``min_rating``, or unrated) and the request's ``history``,
        appended as the newest liked interactions in that order."""
        from tastemaker.serve.job_data import with_history

        threshold = self.pipeline.config.history.min_rating
        liked = [
            event.item_id
            for event in self.state.feedback.for_user(request.user)
            if event.rating is None or threshold is None or event.rating >= threshold
        ]
        extra = [*liked, *(request.history or [])]
        return with_history(self.state.data, request.user, extra) if extra else self.state.data

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._jobs[self._pending.popleft()]
            self._run(job)

    def _run(self, job: dict[str, Any]) -> None:
        """One job: prepare (history, keywords), edits, render, save; any failure recorded."""
        request = GenerationRequest.model_validate(job["request"])
        started = time.perf_counter()
        self._stage(job, "history and keywords", 0.05, status="running")
        try:
            pipe = self.pipeline
            prepared = self._edited(
                pipe.prepare(self.data(request), request.user, request.item_id), request
            )
            if request.dry_run:
                view = dry_view(prepared)
                write_text(self.folder / job["job_id"] / PREPARED_FILE, json.dumps(view, indent=1))
            else:
                result = self._renderer(pipe, request.seed).render(
                    prepared,
                    weights=request.weights,
                    on_stage=lambda name: self._stage(job, name, RENDER_PROGRESS[name]),
                )
                self._stage(job, "save", 0.95)
                result.save(self.folder / job["job_id"] / RESULT_DIR)
                view = result_view(result, job["job_id"])
        except TastemakerError as exc:
            self._fail(job, exc.problem, exc.fix)
            return
        except Exception as exc:  # a worker must outlive any job; the server log has the trace
            log.exception("generation job %s failed", job["job_id"])
            self._fail(job, f"generation failed ({type(exc).__name__})", "see the server log")
            return
        view["seconds"] = round(time.perf_counter() - started, 3)
        with self._cond:
            self._stage_entry(job, "done")
            self._update(job, status="done", stage="done", progress=1.0, result=view)
            self._retain()
        log.info("generation job %s done in %.1f s", job["job_id"], view["seconds"])

    def _edited(self, prepared: Prepared, request: GenerationRequest) -> Prepared:
        """``prepared`` with the request's keywords in place of the extracted ones, noted."""
        from dataclasses import replace

        notes = list(prepared.notes)
        changes: dict[str, Any] = {}
        for field, given in (
            ("preference", request.preference_keywords),
            ("item_keywords", request.item_keywords),
        ):
            extracted = getattr(prepared, field)
            if given is None or given == extracted.keywords:
                continue
            kind = "preference" if extracted.kind == "user" else "item"
            notes.append(f"{kind} keywords set by the request (extracted: {extracted.text})")
            changes[field] = replace(
                extracted, keywords=given, scores=[], extractor="request", fallback=None
            )
        return replace(prepared, notes=notes, **changes) if changes else prepared

    def _renderer(
        self, pipe: PersonalizedGenerationPipeline, seed: int
    ) -> PersonalizedGenerationPipeline:
        """``pipe`` drawing from ``seed``: its loaded generator and scorer, shared, not reloaded."""
        from tastemaker.generation.generator import ImageGenerator
        from tastemaker.generation.pipeline import PersonalizedGenerationPipeline

        generator = pipe.generator
        if generator is None:  # a dry-run scenario: prompts only
            return pipe
        seeded = ImageGenerator(
            generator.config.model_copy(update={"seed": seed}), pipeline=generator.pipeline
        )
        config = pipe.config.model_copy(update={"generator": seeded.config})
        return PersonalizedGenerationPipeline(
            config, generator=seeded, scorer=pipe.scorer, soft=pipe.soft
        )

    def _stage(self, job: dict[str, Any], name: str, progress: float, **fields: Any) -> None:
        with self._cond:
            self._stage_entry(job, name)
            self._update(job, stage=name, progress=progress, **fields)

    def _stage_entry(self, job: dict[str, Any], name: str) -> None:
        job["stages"] = [*job["stages"], {"name": name, "at": time.time()}]

    def _fail(self, job: dict[str, Any], problem: str, fix: str) -> None:
        with self._cond:
            self._update(job, status="failed", stage="failed", error={"error": problem, "fix": fix})
            self._retain()
        log.warning("generation job %s failed: %s", job["job_id"], problem)

    def _update(self, job: dict[str, Any], **fields: Any) -> None:
        """Change a job's record and persist it (the caller holds the lock)."""
        job.update(fields)
        self._save(job)

    def _retain(self) -> None:
        """Drop from memory all but the newest ``keep_jobs`` finished jobs (their folders
        stay; :meth:`get` reads them back). The caller holds the lock."""
        finished = sorted(
            (j for j in self._jobs.values() if j["status"] in FINISHED), key=lambda j: j["created"]
        )
        for job in finished[: max(0, len(finished) - self.settings.keep_jobs)]:
            del self._jobs[job["job_id"]]

    def _save(self, job: dict[str, Any]) -> None:
        folder = ensure_writable_dir(self.folder / job["job_id"])
        write_text(folder / JOB_FILE, json.dumps(job, indent=1) + "\n")

    def _recover(self) -> None:
        """Load every job on disk; queue again those a previous process left unfinished."""
        for path in sorted(self.folder.glob(f"*/{JOB_FILE}")):
            try:
                job = json.loads(path.read_text(encoding="utf-8"))
                job_id = job["job_id"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("skipping the unreadable generation job %s (%s)", path.parent.name, exc)
                continue
            self._jobs[job_id] = job
        unfinished = [j for j in self._jobs.values() if j["status"] in (*ACTIVE, "interrupted")]
        for job in sorted(unfinished, key=lambda j: j["created"]):
            if job["restarts"] >= MAX_RESTARTS:
                problem = f"interrupted {job['restarts'] + 1} times by a stop of the server"
                self._update(
                    job,
                    status="failed",
                    stage="failed",
                    error={"error": problem, "fix": "submit it again"},
                )
                continue
            self._update(
                job,
                status="queued",
                stage="queued again after a restart",
                progress=0.0,
                restarts=job["restarts"] + 1,
            )
            self._pending.append(job["job_id"])
        self._retain()
        if unfinished:
            log.info("%d unfinished generation jobs found on disk", len(unfinished))


RENDER_PROGRESS = {"conditions": 0.3, "generate": 0.35, "score": 0.85}

__all__ = ["JobManager", "QueueFull", "UnknownJob"]
