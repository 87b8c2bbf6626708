"""``tastemaker serve`` as a real process: uvicorn on a free loopback port.

The durability test SIGKILLs the server in the middle of a burst of feedback: every
event it acknowledged must be in the SQLite file afterwards (acknowledged = stored).
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tastemaker.data.sources.events import read_events

from .serve_data import ServeFolders, wait_until_ready

CLI = "from tastemaker.cli.app import main; main()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_stderr(process: subprocess.Popen[bytes]) -> str:
    return process.stderr.read().decode()[-2000:] if process.stderr else ""


@contextmanager
def server(folders: ServeFolders, state: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    args = ["serve", "--data", str(folders.data), "--model-dir", str(folders.models)]
    process = subprocess.Popen(
        [sys.executable, "-c", CLI, *args, "--port", str(port), "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, 60, lambda: read_stderr(process))
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def test_a_real_server_recommends_stores_feedback_and_stops_on_sigterm(
    serve_folders: ServeFolders, tmp_path: Path
) -> None:
    with server(serve_folders, tmp_path) as (process, url):
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        answer = httpx.get(f"{url}/users/u0_1/recommendations?k=3").json()
        assert answer["model"] == "bpr" and len(answer["items"]) == 3
        event = {"event_id": "x1", "user_id": "u0_1", "item_id": answer["items"][0]["item_id"]}
        assert httpx.post(f"{url}/feedback", json={"events": [event]}).json()["stored"] == 1
        after = httpx.get(f"{url}/users/u0_1/recommendations?k=3").json()
        assert event["item_id"] not in [i["item_id"] for i in after["items"]]
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down (lifespan exit), then re-raises the signal it caught.
        assert process.wait(30) in (0, -signal.SIGTERM)
        assert process.stderr is not None
        assert "Application shutdown complete" in process.stderr.read().decode()
    assert read_events(tmp_path / "feedback.sqlite")["item_id"].to_list() == [event["item_id"]]


def test_sigkill_during_a_feedback_burst_loses_no_acknowledged_event(
    serve_folders: ServeFolders, tmp_path: Path
) -> None:
    acknowledged: list[str] = []
    with server(serve_folders, tmp_path) as (process, url):

        def kill_after_some() -> None:
            while len(acknowledged) < 40:
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)

        killer = threading.Thread(target=kill_after_some)
        killer.start()
        with httpx.Client(base_url=url, timeout=5) as client:
            for n in range(100_000):
                event = {"event_id": f"burst-{n}", "user_id": "u0_2", "item_id": f"i{n % 36}"}
                try:
                    response = client.post("/feedback", json={"events": [event]})
                except httpx.TransportError:
                    break  # the server is gone
                if response.status_code == 200 and response.json()["stored"] == 1:
                    acknowledged.append(event["event_id"])
        killer.join()
        assert process.wait(10) == -signal.SIGKILL
    assert len(acknowledged) >= 40
    with sqlite3.connect(tmp_path / "feedback.sqlite") as db:
        stored = {row[0] for row in db.execute("SELECT event_id FROM events")}
    assert set(acknowledged) <= stored


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "needs --data and --model-dir"),
        (["--demo", "--data", "x"], "--demo serves the demo's folder"),
        (["--data", "nowhere", "--model-dir", "nowhere"], "not a data folder"),
        (["--port", "0"], "--port"),
        (["--explain-method", "poem"], "unknown --explain-method 'poem'"),
        (["--explain-method", "llm-grounded"], "needs a language model"),
        (["--keep-jobs", "0"], "--keep-jobs"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    from typer.testing import CliRunner

    from tastemaker.cli.app import app

    result = CliRunner().invoke(app, ["serve", *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_missing_model_folder_is_refused_before_the_server_starts(
    serve_folders: ServeFolders, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from tastemaker.cli.app import app

    args = ["serve", "--data", str(serve_folders.data), "--model-dir", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "holds no saved model" in result.output
