"""Hub ids fail in seconds with one line, against a real HTTP server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tastemaker.hub import ModelUnavailable, check_hub_model

KNOWN = "org/known-model"


class Hub(BaseHTTPRequestHandler):
    """Knows one model; records each path asked for."""

    asked: ClassVar[list[str]] = []

    def do_HEAD(self) -> None:
        Hub.asked.append(self.path)
        self.send_response(200 if self.path == f"/api/models/{KNOWN}" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:  # keep test output clean
        return


@pytest.fixture
def hub() -> Iterator[str]:
    Hub.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def closed_port() -> str:
    """An address on loopback where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def cached(cache: Path, repo_id: str) -> Path:
    """The hub cache layout huggingface_hub reads: refs/main → snapshots/<rev>/config.json."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    return cache


def test_a_known_id_on_a_reachable_hub_passes(hub: str, tmp_path: Path) -> None:
    check_hub_model(KNOWN, endpoint=hub, cache_dir=tmp_path)
    assert Hub.asked == [f"/api/models/{KNOWN}"]


def test_an_unknown_id_is_one_config_error(hub: str, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=r"the hub has no model 'org/typo' \(HTTP 404"):
        check_hub_model("org/typo", endpoint=hub, cache_dir=tmp_path)


def test_an_unreachable_hub_fails_at_once_not_after_retries(tmp_path: Path) -> None:
    """An OSError, as the loaders' own misses are: each turns it into its one-line error."""
    assert issubclass(ModelUnavailable, OSError)
    start = time.monotonic()
    with pytest.raises(ModelUnavailable, match="not cached and the hub cannot be reached"):
        check_hub_model("org/anything", endpoint=closed_port(), cache_dir=tmp_path)
    assert time.monotonic() - start < 5


def test_local_paths_and_cached_ids_ask_nothing(tmp_path: Path) -> None:
    nowhere = closed_port()  # any request would fail
    check_hub_model(str(tmp_path), endpoint=nowhere)
    check_hub_model("org/cached", endpoint=nowhere, cache_dir=cached(tmp_path / "c", "org/cached"))


def test_offline_mode_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="HF_HUB_OFFLINE is set"):
        check_hub_model("org/anything", endpoint=closed_port(), cache_dir=tmp_path)
