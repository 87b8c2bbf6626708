"""The web page of ``tastemaker serve`` in a real browser (Debian's Chromium, driven by Playwright).

A real server (``tastemaker serve`` in a subprocess on a free loopback port) over a
small movie catalog with posters, two fold-in models and the tiny generator; the
browser clicks through: pick a user → recommendations → build a history by clicking
items → recommendations change → open the studio → toggle a keyword → generate →
candidates → pick one. A screenshot of each step is kept in ``TASTEMAKER_TEST_ARTIFACTS``
(else ``.test-artifacts/serve-page/`` in the repository, git-ignored).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from tastemaker import Catalog, Dataset, Interactions
from tastemaker.data.manifest import Manifest
from tastemaker.data.splits import make_split
from tastemaker.models import create_model

from .serve_data import wait_until_ready
from .test_encoders import tiny_clip  # noqa: F401 - fixture
from .test_pipeline import photo

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
GENRES = ["Sci-Fi", "Comedy", "Drama", "Horror", "Romance", "Animation"]
TAGS = ["space", "funny", "sad", "dark", "love", "cute", "robot", "city"]
WORDS = ["Star", "Night", "Moon", "Cat", "Love", "River", "Ghost", "Robot", "City", "Summer"]


def browser_path() -> Path:
    """Debian's Chromium, or skip (fail under CI=true, where it is promised)."""
    if CHROMIUM.is_file():
        return CHROMIUM
    reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true promises it", pytrace=False)
    pytest.skip(reason)


def artifacts() -> Path:
    folder = Path(os.environ.get("TASTEMAKER_TEST_ARTIFACTS") or REPO / ".test-artifacts")
    folder = folder / "serve-page"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def catalog_dataset(folder: Path) -> Dataset:
    """36 movies (two thirds with posters) and 12 users, each liking two genres."""
    rng = random.Random(7)
    n = 36
    posters = folder / "posters"
    posters.mkdir()
    images = []
    for k in range(n):
        if k % 3 == 2:
            images.append(None)
            continue
        photo(k % 12, (64, 96)).save(posters / f"m{k}.png")
        images.append(str(posters / f"m{k}.png"))
    genres = [[GENRES[k % 6], GENRES[(k // 6) % 6]] for k in range(n)]
    catalog = Catalog(
        pl.DataFrame(
            {
                "item_id": [f"m{k}" for k in range(n)],
                "title": [
                    f"{WORDS[k % 10]} {WORDS[(k * 3 + 1) % 10]} ({1970 + k})" for k in range(n)
                ],
                "image": images,
                "genres": genres,
                "tags": [[TAGS[k % 8], TAGS[(k * 5) % 8]] for k in range(n)],
            },
            schema_overrides={"genres": pl.List(pl.Utf8), "tags": pl.List(pl.Utf8)},
        )
    )
    rows = []
    for u in range(12):
        liked = {GENRES[u % 6], GENRES[(u + 2) % 6]}
        items = rng.sample(range(n), 14)
        for t, k in enumerate(items):
            rating = 5.0 if liked & set(genres[k]) else rng.choice([2.0, 3.0])
            rows.append((f"u{u}", f"m{k}", rating, 1000 * u + t))
    frame = pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row")
    return Dataset(catalog, Interactions(frame), Manifest(name="page-movies"))


def tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-2000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_clip: Path) -> Iterator[str]:  # noqa: F811
    """``tastemaker serve`` on a saved split, most_popular + itemknn, the tiny generator
    and a tiny random CLIP as the scorer."""
    folder = tmp_path_factory.mktemp("serve-page")
    split = make_split(catalog_dataset(folder), "loo")
    split.save(folder / "split")
    for name in ("itemknn", "most_popular"):
        model = create_model(name)
        model.fit(split.train)
        model.save(folder / "models" / name)
    scenario = folder / "tiny.toml"
    scenario.write_text(
        'weights = ["1:1"]\n[keywords]\nextractor = "statistical"\n'
        "[keywords.statistical]\nmmr_lambda = 1.0\n"
        '[generator]\nmodel = "tiny"\nnum_inference_steps = 2\nnum_images = 3\n'
        f'[scorer]\nkind = "clip"\nmodel = "{tiny_clip.as_posix()}"\n',
        encoding="utf-8",
    )
    port = free_port()
    command = [
        sys.executable, "-c", "from tastemaker.cli.app import main; main()", "serve",
        "--data", str(folder / "split"), "--model-dir", str(folder / "models"),
        "--generation-config", str(scenario), "--port", str(port),
    ]  # fmt: skip
    log = (folder / "server.log").open("w")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TASTEMAKER_API_KEY", None)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, 90, lambda: tail(folder / "server.log"))
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_click_through_history_recommendations_and_generation(server: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    executable = browser_path()
    shots = artifacts()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def shot(name: str) -> None:
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

        page.goto(server)
        expect(page.locator("#user option")).not_to_have_count(1)  # users loaded
        shot("1-start")

        # Pick a user: recommendations (with posters or titles) and explanations appear.
        page.select_option("#user", "u1")
        cards = page.locator("#recs .card")
        expect(cards.first).to_be_visible()
        expect(page.locator("#recs .why").first).not_to_be_empty()
        expect(page.locator("#recs .why .method").first).to_have_text("(statistical)")
        expect(page.locator("#history .thumb").first).to_be_visible()
        before = cards.evaluate_all("cs => cs.map(c => c.dataset.item)")
        assert before, "no recommendations for u1"
        shot("2-user-recommendations")

        # Build a history by clicking items: the recommendations follow it.
        page.click("#tab-build")
        picks = page.locator("#search-results .pick-item")
        expect(picks.first).to_be_visible()
        for k in range(3):
            picks.nth(k).click()
            expect(page.locator("#history .thumb")).to_have_count(k + 1)
        expect(cards.first).to_be_visible()
        after = cards.evaluate_all("cs => cs.map(c => c.dataset.item)")
        clicked = page.locator("#history .thumb").evaluate_all("ts => ts.map(t => t.dataset.item)")
        assert after and after != before, (before, after)
        shot("3-built-history")

        # Open the studio for a recommended item: keywords from a first dry job, as toggles.
        target = cards.first.get_attribute("data-item")
        cards.first.locator(".studio-open").click()
        chips = page.locator("#pref-keywords .chip")
        expect(chips.first).to_be_visible(timeout=30_000)
        expect(page.locator("#item-keywords .chip").first).to_be_visible()
        off = chips.first.inner_text()
        chips.first.click()
        expect(chips.first).to_have_attribute("aria-pressed", "false")
        page.fill("#new-keyword", "neon")
        page.click("#add-item")
        page.locator("#weight").fill("7")  # 3:1
        expect(page.locator("#weight-label")).to_have_text("3:1")
        shot("4-studio-keywords")

        # Generate: progress, then candidates with d_p / d_t / z; pick one.
        page.click("#generate")
        candidates = page.locator("#candidates .candidate")
        expect(candidates).to_have_count(3, timeout=60_000)
        expect(candidates.first.locator("img")).to_be_visible()
        for k in range(3):  # scored: d_p, d_t and z shown as numbers, the best by z marked
            expect(candidates.nth(k)).to_contain_text(
                re.compile(r"d_p 0\.\d{3} · d_t 0\.\d{3} · z -")
            )
        expect(page.locator("#candidates .candidate.best")).to_have_count(1)
        candidates.nth(1).locator(".pick").click()
        expect(candidates.nth(1)).to_have_class(re.compile(r"\bchosen\b"))
        expect(page.locator("#steps li")).to_have_count(1)
        expect(page.locator("#steps li .picked")).to_have_text(" · picked 1")
        shot("5-generated-and-picked")

        # The job the page ran carries its edits, and the pick is saved on the server.
        job_id = page.locator("#steps li").get_attribute("data-job")
        job = httpx.get(f"{server}/generations/{job_id}", timeout=5).json()
        request = job["request"]
        assert request["item_id"] == target and request["weights"] == [[3.0, 1.0]]
        assert off not in request["preference_keywords"] and "neon" in request["item_keywords"]
        assert request["history"] and request["user_id"] is None and len(request["history"]) == 3
        assert job["choice"]["index"] == 1 and job["parent"] is not None
        assert all("neon" in c["prompt"] for c in job["result"]["candidates"])
        best = job["result"]["best"]
        assert best == max(range(3), key=lambda i: job["result"]["candidates"][i]["z"])
        expect(candidates.nth(best)).to_contain_text("best z")
        # the history the job read: the clicked items, the last click first, as the page shows
        assert [h["item_id"] for h in job["result"]["history"]] == clicked
        browser.close()
    assert not errors, errors
    (shots / "job.json").write_text(json.dumps(job, indent=1), encoding="utf-8")


def test_page_static_files_and_popular_grid(tmp_path: Path) -> None:
    """Without a browser: the page asks for the key only when the server has one, static
    files are served by name from the fixed set, and the grid is the most-liked items."""
    from fastapi.testclient import TestClient

    from tastemaker.serve.app import create_app
    from tastemaker.serve.settings import ServeSettings

    data = catalog_dataset(tmp_path)
    data.save(tmp_path / "data")
    for key, hidden in ((None, True), ("k3y", False)):
        settings = ServeSettings(data=tmp_path / "data", model_dir=tmp_path / "models", api_key=key)
        with TestClient(create_app(settings)) as http:
            page = http.get("/")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            assert ('id="key-box" class="hidden"' in page.text) is hidden
            version = re.search(r'/static/app\.js\?v=(\w+)"', page.text)
            assert version and f"/static/style.css?v={version[1]}" in page.text
            script = http.get("/static/app.js")
            assert script.headers["content-type"].startswith("text/javascript")
            assert "textContent" in script.text and "innerHTML" not in script.text
            for bad in ("/static/../settings.py", "/static/jobs.py", "/static/%2e%2e%2fjobs.py"):
                answer = http.get(bad)
                assert answer.status_code == 404 and set(answer.json()) == {"error", "fix"}
            grid = http.get("/popular?k=5").json()
    counts = data.interactions.frame["item_id"].value_counts()
    expected = dict(zip(counts["item_id"], counts["count"], strict=True))
    assert [g["score"] for g in grid] == sorted(expected.values(), reverse=True)[:5]
    assert all(expected[g["item_id"]] == g["score"] for g in grid)
