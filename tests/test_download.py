"""Downloads against a real HTTP server on loopback: checksums, truncation, atomic unzip."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tastemaker.atomic import OUTPUT_MARKER
from tastemaker.data.sources import download, extract_zip, load_dataset, registry
from tastemaker.errors import DataError, OutputError

# The module, not the function of the same name that the package re-exports.
download_module = importlib.import_module("tastemaker.data.sources.download")


def make_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buffer.getvalue()


# A GroupLens-shaped archive: everything under one top folder.
ML_ZIP = make_zip(
    {
        "ml-100k/u.data": "1\t1\t5\t874965758\n2\t1\t3\t876893171\n2\t2\t4\t888550871\n",
        "ml-100k/u.item": "1|Toy Story (1995)|01-Jan-1995||x|0|0|0|1|1|1" + "|0" * 13 + "\n"
        "2|GoldenEye (1995)|01-Jan-1995||x|0|1|1" + "|0" * 13 + "|1|0|0\n",
        "ml-100k/README": "MovieLens 100K (test copy)\n",
    }
)
ML_MD5 = hashlib.md5(ML_ZIP).hexdigest()


class Server:
    """Serves ``routes`` (path -> bytes); ``/short/...`` promises more bytes than it sends."""

    def __init__(self, routes: dict[str, bytes]) -> None:
        self.routes = routes
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                body = server.routes.get(self.path.removeprefix("/short"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                sent = body[: len(body) // 2] if self.path.startswith("/short") else body
                self.wfile.write(sent)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries keep their count but not their wait."""
    monkeypatch.setattr(download_module, "BACKOFF_S", 0.001)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server(
        {
            "/ml-100k.zip": ML_ZIP,
            "/ml-100k.zip.md5": f"MD5 (ml-100k.zip) = {ML_MD5}\n".encode(),
            "/bad.md5": b"not a checksum\n",
        }
    )
    yield running
    running.close()


def test_download_verifies_and_reuses(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "dl" / "ml-100k.zip"
    sha = hashlib.sha256(ML_ZIP).hexdigest()
    assert download(f"{server.url}/ml-100k.zip", dest, md5=ML_MD5, sha256=sha) == dest
    assert dest.read_bytes() == ML_ZIP
    assert server.hits["/ml-100k.zip"] == 1
    download(f"{server.url}/ml-100k.zip", dest, md5=ML_MD5)  # complete and verified: reused
    assert server.hits["/ml-100k.zip"] == 1
    assert sorted(p.name for p in dest.parent.iterdir()) == ["ml-100k.zip"]


def test_checksum_mismatch_leaves_no_file(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "ml-100k.zip"
    with pytest.raises(DataError, match=rf"has md5 {ML_MD5}, expected 0{{32}}") as err:
        download(f"{server.url}/ml-100k.zip", dest, md5="0" * 32)
    assert "Fix:" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary is left


def test_stale_file_with_wrong_checksum_is_fetched_again(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "ml-100k.zip"
    dest.write_bytes(b"an older, different archive")
    download(f"{server.url}/ml-100k.zip", dest, md5=ML_MD5)
    assert dest.read_bytes() == ML_ZIP
    assert server.hits["/ml-100k.zip"] == 1


def test_truncated_download_is_retried_then_an_error(server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "ml-100k.zip"
    # httpx drops the bytes of a read that ends in the cut, so fewer than half may count.
    with pytest.raises(DataError, match=rf"stopped after \d+ of {len(ML_ZIP)} bytes"):
        download(f"{server.url}/short/ml-100k.zip", dest)
    assert server.hits["/short/ml-100k.zip"] == download_module.RETRIES + 1
    assert list(tmp_path.iterdir()) == []


def test_http_and_connection_errors(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="HTTP 404"):
        download(f"{server.url}/nothing.zip", tmp_path / "x.zip")
    port = server.httpd.server_address[1]
    server.close()
    with pytest.raises(DataError, match=rf"downloading http://127.0.0.1:{port}/ml-100k.zip failed"):
        download(f"http://127.0.0.1:{port}/ml-100k.zip", tmp_path / "x.zip")
    assert list(tmp_path.iterdir()) == []


def test_extract_zip_replaces_its_own_folder_atomically(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip({"ml-100k/old.txt": "earlier copy"}))
    into = tmp_path / "out"
    extract_zip(archive, into)
    archive.write_bytes(ML_ZIP)
    assert extract_zip(archive, into) == into
    assert sorted(p.relative_to(into).as_posix() for p in into.rglob("*")) == [
        OUTPUT_MARKER, "ml-100k", "ml-100k/README", "ml-100k/u.data", "ml-100k/u.item"
    ]  # fmt: skip
    assert (into / "ml-100k" / "README").read_text() == "MovieLens 100K (test copy)\n"


def test_extract_zip_never_deletes_files_it_did_not_write(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(ML_ZIP)
    into = tmp_path / "out"
    (into / "mine").mkdir(parents=True)
    with pytest.raises(OutputError, match="mine"):
        extract_zip(archive, into)
    assert sorted(p.name for p in into.iterdir()) == ["mine"]


def test_corrupt_or_unsafe_zip_leaves_nothing(tmp_path: Path) -> None:
    archive = tmp_path / "cut.zip"
    archive.write_bytes(ML_ZIP[: len(ML_ZIP) - 30])  # central directory cut off
    with pytest.raises(DataError, match=r"cut\.zip is not a valid zip archive"):
        extract_zip(archive, tmp_path / "out")
    evil = tmp_path / "evil.zip"
    evil.write_bytes(make_zip({"ok.txt": "fine", "../escape.txt": "bad"}))
    with pytest.raises(DataError, match=r"unsafe path '\.\./escape\.txt'"):
        extract_zip(evil, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.zip", "evil.zip"]


@pytest.fixture
def local_ml_100k(server: Server, monkeypatch: pytest.MonkeyPatch) -> registry.DatasetSpec:
    """The registry's ml-100k, pointed at the loopback server."""
    spec = dataclasses.replace(
        registry.SPECS["ml-100k"], url=f"{server.url}/ml-100k.zip", md5=ML_MD5, sha256=None
    )
    monkeypatch.setitem(registry.SPECS, "ml-100k", spec)
    return spec


def test_load_dataset_downloads_unpacks_and_caches(
    server: Server, local_ml_100k: registry.DatasetSpec, tmp_path: Path
) -> None:
    dataset = load_dataset("ml-100k", cache_dir=tmp_path)
    assert dataset.manifest.counts["interactions"] == 3
    assert dataset.catalog.item("2")["genres"] == ["Action", "Adventure", "Thriller"]
    assert dataset.manifest.source["location"] == str((tmp_path / "ml-100k" / "ml-100k").resolve())
    assert not (tmp_path / ".downloads" / "ml-100k.zip").exists()  # archive removed once unpacked
    again = load_dataset("ml-100k", cache_dir=tmp_path)
    assert server.hits["/ml-100k.zip"] == 1  # second load from the cache
    assert again.interactions.content_hash() == dataset.interactions.content_hash()
    status = {s.name: s.location for s in registry.list_datasets(tmp_path)}
    assert status["ml-100k"] == str(tmp_path / "ml-100k" / "ml-100k")


def test_published_md5_file_is_used_when_no_checksum_is_known(
    server: Server, local_ml_100k: registry.DatasetSpec, tmp_path: Path, monkeypatch
) -> None:
    spec = dataclasses.replace(local_ml_100k, md5=None, md5_url=f"{server.url}/ml-100k.zip.md5")
    monkeypatch.setitem(registry.SPECS, "ml-100k", spec)
    assert len(load_dataset("ml-100k", cache_dir=tmp_path).interactions) == 3
    assert server.hits["/ml-100k.zip.md5"] == 1
    monkeypatch.setitem(
        registry.SPECS, "ml-100k", dataclasses.replace(spec, md5_url=f"{server.url}/bad.md5")
    )
    with pytest.raises(DataError, match=r"bad\.md5 holds no md5 checksum"):
        load_dataset("ml-100k", cache_dir=tmp_path / "other")


class FlakyServer(Server):
    """Answers 503 to the first ``failures`` requests of each path, then serves normally."""

    def __init__(self, routes: dict[str, bytes], failures: int, status: int = 503) -> None:
        self.failures, self.status = failures, status
        super().__init__(routes)
        handler = self.httpd.RequestHandlerClass
        serve = handler.do_GET
        server = self

        def do_get(request: BaseHTTPRequestHandler) -> None:
            if server.hits[request.path] < server.failures:
                server.hits[request.path] += 1
                request.send_error(server.status)
                return
            serve(request)

        handler.do_GET = do_get  # type: ignore[method-assign]


def test_transient_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    flaky = FlakyServer({"/ml-100k.zip": ML_ZIP}, failures=2)
    try:
        dest = download(f"{flaky.url}/ml-100k.zip", tmp_path / "a.zip", md5=ML_MD5)
        assert dest.read_bytes() == ML_ZIP
        assert flaky.hits["/ml-100k.zip"] == 3  # two 503s, then the file
    finally:
        flaky.close()


def test_retries_run_out_and_client_errors_are_not_retried(tmp_path: Path) -> None:
    down = FlakyServer({"/ml-100k.zip": ML_ZIP}, failures=99)
    gone = FlakyServer({"/ml-100k.zip": ML_ZIP}, failures=99, status=404)
    try:
        with pytest.raises(DataError, match="HTTP 503"):
            download(f"{down.url}/ml-100k.zip", tmp_path / "a.zip")
        assert down.hits["/ml-100k.zip"] == download_module.RETRIES + 1
        with pytest.raises(DataError, match="HTTP 404"):
            download(f"{gone.url}/ml-100k.zip", tmp_path / "b.zip")
        assert gone.hits["/ml-100k.zip"] == 1
    finally:
        down.close()
        gone.close()
    assert list(tmp_path.iterdir()) == []
