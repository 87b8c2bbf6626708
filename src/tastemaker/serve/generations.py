"""The ``/generations`` endpoints: submit a PMG job, poll it, fetch its images, pick one.

Thin HTTP over :class:`~tastemaker.serve.jobs.JobManager` (``request.app.state.jobs``):
submitting is a write (bearer key when configured) and rate-limited per key, since
one job keeps the worker busy for seconds to minutes; reading is open, as the rest
of the API. Images are served by job id and candidate index only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from tastemaker.errors import TastemakerError
from tastemaker.serve.context import served
from tastemaker.serve.job_request import GenerationRequest
from tastemaker.serve.jobs import JobManager, QueueFull, UnknownJob
from tastemaker.serve.problems import ApiError
from tastemaker.serve.security import generation_rate_limit, require_write_key

router = APIRouter(prefix="/generations", tags=["generation"])
JobId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="as POST /generations returned")]
STATUS_CODES: list[tuple[type[TastemakerError], int]] = [(UnknownJob, 404), (QueueFull, 503)]


class Choice(BaseModel):
    """The candidate the user picked."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, le=1000)


def jobs(request: Request) -> JobManager:
    """The job manager (started with the state: ``served`` answers 503 until then)."""
    served(request)
    return request.app.state.jobs


def answered(exc: TastemakerError) -> TastemakerError:
    """The job manager's error with the HTTP status that fits it (any other: 422)."""
    status = next((code for kind, code in STATUS_CODES if isinstance(exc, kind)), None)
    return exc if status is None else ApiError(status, exc.problem, exc.fix)


def status_view(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the status endpoint shows it (``job.json`` without internals)."""
    keys = ("job_id", "status", "progress", "stage", "stages", "parent", "request", "config")
    return {
        **{k: job[k] for k in keys},
        "status_url": f"/generations/{job['job_id']}",
        "error": job["error"],
        "choice": job["choice"],
        "result": job["result"],
    }


@router.post(
    "",
    status_code=202,
    dependencies=[Depends(generation_rate_limit)],  # checks the write key first
    summary="Queue a personalized generation for (user, item)",
)
def submit(body: GenerationRequest, request: Request) -> Any:
    manager = jobs(request)
    try:
        manager.check(body)
        job = manager.submit(body)
    except TastemakerError as exc:
        raise answered(exc) from None
    return {
        "job_id": job["job_id"],
        "status": job["status"],
        "status_url": status_view(job)["status_url"],
    }


@router.get("", summary="Recent generation jobs, newest first")
def list_jobs(request: Request, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Any:
    return [status_view(job) for job in reversed(jobs(request).jobs()[-limit:])]


@router.get("/{job_id}", summary="A job's status, progress and result")
def status(job_id: JobId, request: Request) -> Any:
    try:
        return status_view(jobs(request).get(job_id))
    except TastemakerError as exc:
        raise answered(exc) from None


@router.get(
    "/{job_id}/images/{index}",
    summary="A candidate's PNG",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}}},
)
def image(job_id: JobId, index: Annotated[int, Path(ge=0, le=1000)], request: Request) -> Any:
    try:
        path = jobs(request).image_path(job_id, index)
    except TastemakerError as exc:
        raise answered(exc) from None
    return FileResponse(path, media_type="image/png")


@router.post(
    "/{job_id}/choice",
    dependencies=[Depends(require_write_key)],
    summary="Record the candidate the user picked",
)
def choose(job_id: JobId, body: Choice, request: Request) -> Any:
    try:
        job = jobs(request).choose(job_id, body.index)
    except TastemakerError as exc:
        raise answered(exc) from None
    return {"job_id": job_id, "choice": job["choice"]}


__all__ = ["router"]
