"""Generation jobs of the service, on tiny models built offline.

The job manager runs the real pipeline (statistical keywords, the tiny random Stable
Diffusion, a tiny random CLIP as the scorer) on eight movies with posters; the HTTP
tests go through the app ``create_app`` builds, as a client would.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tastemaker.errors import DataError
from tastemaker.serve.feedback import Event
from tastemaker.serve.job_request import GenerationRequest
from tastemaker.serve.jobs import JobManager, UnknownJob
from tastemaker.serve.settings import ServeSettings
from tastemaker.serve.state import ServeState

from .test_encoders import tiny_clip  # noqa: F401 - fixture
from .test_pipeline import movie_dataset

WEIGHTS = [[1.0, 1.0], [3.0, 1.0]]


@pytest.fixture(scope="module")
def movies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The eight movies with posters of tests/test_pipeline.py, saved as a data folder."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("movies")
    return movie_dataset(folder / "posters").save(folder / "data")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, tiny_clip: Path) -> Path:  # noqa: F811
    """Statistical keywords, the tiny generator (2 steps, 2 seeds), the tiny CLIP scorer."""
    path = tmp_path_factory.mktemp("scenario") / "tiny.toml"
    path.write_text(
        'weights = ["1:3", "1:1", "3:1"]\n'
        '[keywords]\nextractor = "statistical"\n[keywords.statistical]\nmmr_lambda = 1.0\n'
        '[generator]\nmodel = "tiny"\nnum_inference_steps = 2\nnum_images = 2\n'
        f'[scorer]\nkind = "clip"\nmodel = "{tiny_clip.as_posix()}"\n',
        encoding="utf-8",
    )
    return path


def settings(folder: Path, movies: Path, scenario: Path | None, **fields) -> ServeSettings:
    return ServeSettings(
        data=movies, model_dir=folder / "models", state_dir=folder,
        generation_config=scenario and str(scenario), **fields,
    )  # fmt: skip


def manager(folder: Path, movies: Path, scenario: Path | None) -> JobManager:
    """A job manager over the served data, keeping its state (jobs, feedback) in ``folder``."""
    config = settings(folder, movies, scenario)
    return JobManager(config, ServeState(config))


def wait(jobs: JobManager, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get(job_id)
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {jobs.get(job_id)['status']} after {timeout} s")


def run(jobs: JobManager, **request) -> dict:
    """Submit a job and wait for its end."""
    return wait(jobs, jobs.submit(GenerationRequest(**request))["job_id"])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, movies, scenario) -> dict:
    """One job run to the end with two weights, and the manager that ran it."""
    folder = tmp_path_factory.mktemp("state")
    jobs = manager(folder, movies, scenario)
    done = run(jobs, user_id="u1", item_id="m3", weights=WEIGHTS, seed=5)
    jobs.shutdown(5)
    return {"jobs": jobs, "job": done, "folder": folder}


def test_a_job_runs_every_stage_and_keeps_every_intermediate(finished: dict) -> None:
    job, folder = finished["job"], finished["folder"]
    assert job["status"] == "done" and job["progress"] == 1.0 and job["error"] is None
    stages = [s["name"] for s in job["stages"]]
    assert stages == ["history and keywords", "conditions", "generate", "score", "save", "done"]
    result = job["result"]
    # 2 weights x 2 seeds, the same seeds (5, 6: the request's) for every weight
    assert [(c["weights"], c["seed"]) for c in result["candidates"]] == [
        (w, s) for w in WEIGHTS for s in (5, 6)
    ]
    z = [0.5 * math.log(c["d_p"]) + 0.5 * math.log(c["d_t"]) for c in result["candidates"]]
    assert [c["z"] for c in result["candidates"]] == pytest.approx(z)
    assert result["best"] == int(np.argmax(z))
    # u1 liked m6, m4, m5, m1, m0 (newest first); m2 was rated 2
    assert [h["item_id"] for h in result["history"]] == ["m6", "m4", "m5", "m1", "m0"]
    assert result["keyword_sources"] == {"preference": "statistical", "item": "statistical"}
    saved = folder / "generations" / job["job_id"]
    on_disk = json.loads((saved / "job.json").read_text())
    assert on_disk["status"] == "done" and on_disk["result"] == result
    full = json.loads((saved / "result" / "result.json").read_text())
    assert (
        full["seeds"] == [5, 6]
        and full["preference_keywords"]["keywords"] == (result["preference_keywords"])
    )
    for c in result["candidates"]:
        assert c["image_url"] == f"/generations/{job['job_id']}/images/{c['index']}"
        image = Image.open(finished["jobs"].image_path(job["job_id"], c["index"]))
        assert image.format == "PNG" and image.size == (32, 32)


def test_keyword_overrides_reach_the_prompt_and_are_recorded(finished, movies, scenario) -> None:
    jobs = manager(finished["folder"], movies, scenario)
    parent = finished["job"]["job_id"]
    job = run(
        jobs, user_id="u1", item_id="m3", preference_keywords=["neon", "robot"],
        item_keywords=["cat"], weights=[[1, 1]], parent=parent,
    )  # fmt: skip
    jobs.shutdown(5)
    result = job["result"]
    assert job["parent"] == parent and result["preference_keywords"] == ["neon", "robot"]
    assert result["item_keywords"] == ["cat"] and result["keyword_sources"]["item"] == "request"
    for candidate in result["candidates"]:
        assert all(word in candidate["prompt"] for word in ("neon", "robot", "cat"))
    extracted = finished["job"]["result"]["preference_keywords"]
    assert any(", ".join(extracted) in note for note in result["notes"])
    full = json.loads(
        (finished["folder"] / "generations" / job["job_id"] / "result" / "result.json").read_text()
    )
    assert full["candidates"][0]["condition"]["keywords"]["preference"] == ["neon", "robot"]


def test_seeds_decide_the_images(finished, movies, scenario) -> None:
    jobs = manager(finished["folder"], movies, scenario)
    first = finished["job"]
    same = run(jobs, user_id="u1", item_id="m3", weights=WEIGHTS, seed=5)
    other = run(jobs, user_id="u1", item_id="m3", weights=WEIGHTS, seed=9)
    jobs.shutdown(5)

    def pixels(job: dict) -> np.ndarray:
        return np.asarray(Image.open(jobs.image_path(job["job_id"], 0)), dtype=np.int16)

    assert np.array_equal(pixels(first), pixels(same))
    assert np.abs(pixels(first) - pixels(other)).mean() > 1.0


def test_dry_job_and_ad_hoc_history(tmp_path, movies, scenario) -> None:
    jobs = manager(tmp_path, movies, scenario)
    dry = run(jobs, user_id="u2", item_id="m5", dry_run=True)
    assert dry["status"] == "done" and dry["result"]["candidates"] == []
    assert dry["result"]["preference_keywords"] and dry["result"]["item_keywords"]
    assert [s["name"] for s in dry["stages"]] == ["history and keywords", "done"]
    # An ad-hoc history (no user): the clicked items, the last click first.
    adhoc = run(jobs, item_id="m0", history=["m2", "m7", "m3"], dry_run=True)
    assert [h["item_id"] for h in adhoc["result"]["history"]] == ["m3", "m7", "m2"]
    # u3 rated one movie badly: nothing liked, refused before any job is queued.
    with pytest.raises(DataError, match="u3"):
        jobs.check(GenerationRequest(user_id="u3", item_id="m0"))
    with pytest.raises(DataError, match="unknown user"):
        jobs.check(GenerationRequest(user_id="nobody", item_id="m0"))
    with pytest.raises(DataError, match="unknown item IDs in the history: zz"):
        jobs.check(GenerationRequest(item_id="m0", history=["m1", "zz"]))
    jobs.shutdown(5)


def test_requests_are_checked() -> None:
    for bad in (
        {"item_id": "m0"},  # nobody
        {"user_id": "u1", "item_id": "m0", "weights": [[0, 0]]},
        {"user_id": "u1", "item_id": "m0", "preference_keywords": ["  "]},
        {"user_id": "u1", "item_id": "m0", "colour": "red"},
    ):
        with pytest.raises(ValueError):
            GenerationRequest.model_validate(bad)
    tidy = GenerationRequest(user_id="u1", item_id="m0", item_keywords=[" dark  noir", "dark noir"])
    assert tidy.item_keywords == ["dark noir"]


def test_the_pick_is_saved_and_a_restart_sees_every_job(finished, movies, scenario) -> None:
    jobs = manager(finished["folder"], movies, scenario)
    job_id = finished["job"]["job_id"]
    jobs.choose(job_id, 1)
    with pytest.raises(UnknownJob, match="no image 7"):
        jobs.choose(job_id, 7)
    with pytest.raises(UnknownJob, match="no generation job"):
        jobs.get("0" * 32)
    jobs.shutdown(5)
    again = manager(finished["folder"], movies, scenario)
    job = again.get(job_id)
    assert job["status"] == "done" and job["choice"]["index"] == 1
    assert job["result"] == finished["job"]["result"]
    assert again.image_path(job_id, 1).is_file()
    assert job_id in [j["job_id"] for j in again.jobs()]
    again.shutdown(5)


def test_only_the_newest_finished_jobs_stay_in_memory_the_rest_come_from_disk(
    finished, movies, scenario, tmp_path
) -> None:
    folder, old = tmp_path / "state", finished["job"]["job_id"]
    # That one finished job alone (the module's other tests add theirs to its folder).
    shutil.copytree(finished["folder"] / "generations" / old, folder / "generations" / old)
    config = settings(folder, movies, scenario, keep_jobs=1)
    jobs = JobManager(config, ServeState(config))
    assert [j["job_id"] for j in jobs.jobs()] == [old]
    newer = run(jobs, user_id="u2", item_id="m5", dry_run=True)["job_id"]
    assert [j["job_id"] for j in jobs.jobs()] == [newer]  # the older one left memory ...
    free = watch_lock_during_reads(jobs)
    stored = jobs.get(old)  # ... and is answered from its job.json
    assert stored["status"] == "done" and stored["result"] == finished["job"]["result"]
    assert jobs.image_path(old, 0).is_file()
    jobs.choose(old, 0)  # the pick test before this one chose 1
    on_disk = json.loads((folder / "generations" / old / "job.json").read_text())
    assert on_disk["choice"]["index"] == 0
    assert free and all(free)  # the disk reads held no lock: other requests went on
    with pytest.raises(UnknownJob, match="no generation job"):
        jobs.get(f"../{old}")
    jobs.shutdown(5)
    again = JobManager(config, ServeState(config))  # a restart keeps the same policy
    assert [j["job_id"] for j in again.jobs()] == [newer]
    assert again.get(old)["choice"]["index"] == 0
    again.shutdown(5)
    assert {p.name for p in (folder / "generations").iterdir()} == {old, newer}  # none deleted


def watch_lock_during_reads(jobs: JobManager) -> list[bool]:
    """Whether another thread could take the manager's lock during each read of a
    stored job (one entry per read)."""
    free: list[bool] = []
    read = jobs._stored

    def probe() -> None:
        taken = jobs._cond.acquire(blocking=False)
        if taken:
            jobs._cond.release()
        free.append(taken)

    def watched(job_id: str) -> dict:
        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        return read(job_id)

    jobs._stored = watched
    return free


class Gate:
    """Holds the worker inside a job (in ``prepare``) until the test opens it."""

    def __init__(self, jobs: JobManager) -> None:
        self.entered, self.opened = threading.Event(), threading.Event()
        prepare = jobs.pipeline.prepare

        def held(*args, **kwargs):
            self.entered.set()
            self.opened.wait(30)
            return prepare(*args, **kwargs)

        jobs.pipeline.prepare = held


def test_shutdown_finishes_the_running_job(tmp_path, movies, scenario) -> None:
    jobs = manager(tmp_path, movies, scenario)
    gate = Gate(jobs)
    running = jobs.submit(GenerationRequest(user_id="u1", item_id="m3", dry_run=True))
    waiting = jobs.submit(GenerationRequest(user_id="u2", item_id="m5", dry_run=True))
    assert gate.entered.wait(30)
    threading.Timer(0.2, gate.opened.set).start()
    assert jobs.shutdown(timeout=30) is True
    assert jobs.get(running["job_id"])["status"] == "done"
    assert jobs.get(waiting["job_id"])["status"] == "queued"  # not started: kept for later
    restarted = manager(tmp_path, movies, scenario)
    assert wait(restarted, waiting["job_id"])["status"] == "done"
    restarted.shutdown(5)


def test_shutdown_persists_a_job_it_cannot_wait_for(tmp_path, movies, scenario) -> None:
    jobs = manager(tmp_path, movies, scenario)
    gate = Gate(jobs)
    job = jobs.submit(GenerationRequest(user_id="u1", item_id="m3", dry_run=True))
    assert gate.entered.wait(30)
    assert jobs.shutdown(timeout=0.1) is False
    record = json.loads((tmp_path / "generations" / job["job_id"] / "job.json").read_text())
    assert record["status"] == "interrupted"
    # The next process queues it again (restarts 1) and finishes it.
    restarted = manager(tmp_path, movies, scenario)
    done = wait(restarted, job["job_id"])
    assert done["status"] == "done" and done["restarts"] == 1
    gate.opened.set()
    restarted.shutdown(5)


def test_the_default_config_runs_offline_without_a_scorer(tmp_path, movies) -> None:
    jobs = manager(tmp_path, movies, None)
    job = run(jobs, user_id="u2", item_id="m5", weights=[[1, 1]])
    jobs.shutdown(5)
    assert job["status"] == "done" and "built-in default" in job["config"]
    assert len(job["result"]["candidates"]) == 2 and job["result"]["best"] is None
    assert all(c["z"] is None and c["image_url"] for c in job["result"]["candidates"])


def test_feedback_given_since_joins_the_history(tmp_path, movies, scenario) -> None:
    jobs = manager(tmp_path, movies, scenario)
    jobs.state.feedback.add([Event("e1", "u2", "m4", 5.0, 100), Event("e2", "u2", "m1", 1.0, 101)])
    job = run(jobs, user_id="u2", item_id="m5", dry_run=True)
    jobs.shutdown(5)
    items = [h["item_id"] for h in job["result"]["history"]]
    # u2 liked m6, m0, m7, m3, m2 in the data; m4 is liked since (newest), m1 was rated 1
    assert items == ["m4", "m6", "m0", "m7", "m3", "m2"]


# --- over HTTP -------------------------------------------------------------------------------


@pytest.fixture
def client(tmp_path, movies, scenario):
    from fastapi.testclient import TestClient

    from tastemaker.serve.app import create_app

    app = create_app(settings(tmp_path, movies, scenario, api_key="s3cret", generation_burst=3))
    with TestClient(app) as http:
        yield http


KEY = {"Authorization": "Bearer s3cret"}


def poll(http, url: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = http.get(url).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish")


def test_submit_poll_fetch_and_pick_over_http(client) -> None:
    body = {"user_id": "u1", "item_id": "m3", "weights": [[1, 1]], "item_keywords": ["cat"]}
    refused = client.post("/generations", json=body)
    assert refused.status_code == 401 and set(refused.json()) == {"error", "fix"}
    submitted = client.post("/generations", json=body, headers=KEY)
    assert submitted.status_code == 202, submitted.text
    job = poll(client, submitted.json()["status_url"])
    assert job["status"] == "done" and job["progress"] == 1.0
    assert job["result"]["item_keywords"] == ["cat"] and len(job["result"]["candidates"]) == 2
    best = job["result"]["best"]
    assert job["result"]["candidates"][best]["z"] == max(
        c["z"] for c in job["result"]["candidates"]
    )
    png = client.get(job["result"]["candidates"][1]["image_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (32, 32)
    url = f"/generations/{job['job_id']}"
    assert client.post(f"{url}/choice", json={"index": 1}).status_code == 401
    assert client.post(f"{url}/choice", json={"index": 1}, headers=KEY).status_code == 200
    assert client.get(url).json()["choice"]["index"] == 1
    listed = client.get("/generations?limit=5").json()
    assert [j["job_id"] for j in listed] == [job["job_id"]]


def test_http_errors_say_what_to_fix(client) -> None:
    cases = [
        ("get", "/generations/" + "0" * 32, None, 404, "no generation job"),
        ("get", "/generations/../../etc", None, 404, None),
        ("get", "/generations/not-a-job", None, 422, "job_id"),
        ("post", "/generations", {"user_id": "u1", "item_id": "m3", "weights": [[0, 0]]}, 422,
         "weights"),
        ("post", "/generations", {"user_id": "nobody", "item_id": "m3"}, 422, "unknown user"),
        ("post", "/generations", {"user_id": "u1", "item_id": "nope"}, 422, "nope"),
    ]  # fmt: skip
    for method, url, body, status, words in cases:
        answer = client.request(method, url, json=body, headers=KEY)
        assert answer.status_code == status, (url, answer.text)
        assert set(answer.json()) == {"error", "fix"}
        if words:
            assert words in answer.json()["error"], answer.json()


def test_generation_is_rate_limited_per_key(client) -> None:
    body = {"user_id": "u1", "item_id": "m3", "dry_run": True}
    answers = [client.post("/generations", json=body, headers=KEY) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 202, 202, 429]
    assert "too many generation requests" in answers[3].json()["error"]
    assert int(answers[3].headers["Retry-After"]) >= 1
