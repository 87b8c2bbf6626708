"""The JSON API of ``tastemaker serve`` through FastAPI's TestClient (in-process, offline)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from tastemaker.data.dataset import Split
from tastemaker.data.interactions import Interactions
from tastemaker.models.base import Recommender
from tastemaker.serve.app import create_app
from tastemaker.serve.settings import Limits, ServeSettings, read_api_key
from tastemaker.serve.state import ModelSet

from .serve_data import COLD_ITEM, ServeFolders, group_of


@contextmanager
def running(settings: ServeSettings, **client: Any) -> Iterator[TestClient]:
    """A client of a started app whose models have loaded."""
    with TestClient(create_app(settings), **client) as c:
        for _ in range(200):
            if c.get("/ready").status_code == 200:
                break
            time.sleep(0.02)
        yield c


def settings_for(folders: ServeFolders, tmp: Path, **overrides: Any) -> ServeSettings:
    return ServeSettings(data=folders.data, model_dir=folders.models, state_dir=tmp, **overrides)


@pytest.fixture
def client(serve_folders: ServeFolders, tmp_path: Path) -> Iterator[TestClient]:
    with running(settings_for(serve_folders, tmp_path)) as c:
        yield c


def ids(answer: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in answer["items"]]


def assert_problem(response: Any, status: int, *words: str) -> None:
    """An error answer: the status, exactly {"error", "fix"}, one line each, no trace."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "fix"}
    assert "\n" not in body["error"] and "Traceback" not in response.text
    for word in words:
        assert word in body["error"], body


def test_health_ready_models_and_the_page(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {
        "ready": True,
        "models": ["bpr", "most_popular", "sasrec"],
    }
    models = {m["name"]: m for m in client.get("/models").json()}
    assert models["bpr"]["default"] and not models["sasrec"]["default"]
    assert all(m["fold_in"] for m in models.values())
    assert "<html" in client.get("/").text.lower()
    assert "/users/{user_id}/recommendations" in client.get("/openapi.json").json()["paths"]


def test_ready_is_503_before_the_models_load(serve_folders: ServeFolders, tmp_path: Path) -> None:
    app = create_app(settings_for(serve_folders, tmp_path))
    assert TestClient(app).get("/ready").status_code == 503  # no lifespan: nothing loaded
    assert_problem(TestClient(app).get("/models"), 503, "starting")


def test_recommendations_for_known_users_exclude_their_history(
    client: TestClient, serve_folders: ServeFolders
) -> None:
    train = Split.load(serve_folders.data)
    known = Interactions.concat([train.train, train.valid]).frame
    seen = set(known.filter(user_id="u1_3")["item_id"])
    for model in ("bpr", "most_popular", "sasrec"):
        answer = client.get(f"/users/u1_3/recommendations?k=5&model={model}").json()
        assert answer["user_id"] == "u1_3" and answer["model"] == model
        assert len(answer["items"]) == 5 and not set(ids(answer)) & seen
        scores = [item["score"] for item in answer["items"]]
        assert scores == sorted(scores, reverse=True)
    bpr = client.get("/users/u1_3/recommendations?k=5").json()
    assert bpr["model"] == "bpr" and sum(group_of(i) == 1 for i in ids(bpr)) >= 3
    with_seen = client.get("/users/u1_3/recommendations?k=40&exclude_seen=false&model=bpr").json()
    assert seen <= set(ids(with_seen))
    poster = next(i for i in with_seen["items"] if i["image_url"])
    assert client.get(poster["image_url"]).content.startswith(b"\x89PNG")


def test_ad_hoc_history_folds_in_and_a_model_that_cannot_is_a_409(
    client: TestClient, serve_folders: ServeFolders
) -> None:
    for model in ("bpr", "sasrec", "most_popular"):
        answer = client.post(
            "/recommendations", json={"items": ["i24", "i25", "i26"], "k": 4, "model": model}
        ).json()
        assert answer["user_id"] is None and len(answer["items"]) == 4
        assert not {"i24", "i25", "i26"} & set(ids(answer))
    bpr = client.post("/recommendations", json={"items": ["i24", "i25", "i26"], "k": 4}).json()
    assert sum(group_of(i) == 2 for i in ids(bpr)) >= 3
    state = client.app.state.state
    split = Split.load(serve_folders.data)
    models = dict(state.current().models, fixed=PopularOnly().fit(split.train))
    state._models = ModelSet(models, "bpr", serve_folders.models)
    refused = client.post("/recommendations", json={"items": ["i1"], "model": "fixed"})
    assert_problem(refused, 409, "fixed")
    assert "bpr" in refused.json()["fix"] and "sasrec" in refused.json()["fix"]
    assert client.get("/users/u0_1/recommendations?model=fixed").status_code == 200


class PopularOnly(Recommender):
    """A model that scores only its training users (no fold-in)."""

    name = "popular_only"

    def _fit(self, train: Interactions, valid: Interactions | None) -> None:
        self.counts = torch.from_numpy(np.bincount(train.indices()[1], minlength=self.n_items))

    def _score_indices(self, user_idx: np.ndarray, context: Interactions | None) -> torch.Tensor:
        return self.counts.float().repeat(len(user_idx), 1)

    def _state(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts}

    def _load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        self.counts = tensors["counts"]


def test_users_items_search_similar_and_explanations(client: TestClient) -> None:
    page = client.get("/users?limit=5&offset=2").json()
    assert [u["user_id"] for u in page] == ["u0_2", "u0_3", "u0_4", "u0_5", "u0_6"]
    user = client.get("/users/u0_2").json()
    assert user["history_length"] == len(user["items"]) == page[0]["history_length"]
    assert all(item["title"].startswith("The space story") for item in user["items"])
    item = client.get("/items/i13").json()
    assert item["genres"] == ["G1"] and item["tags"] == ["river", "tag1"]
    assert "image" not in item and item["image_url"] is None
    found = client.get("/items?query=castle&k=50").json()
    assert {f["item_id"] for f in found} == {f"i{i}" for i in range(24, 36)}
    mine = client.get("/items?query=story&k=12&user_id=u1_0").json()
    assert sum(group_of(f["item_id"]) == 1 for f in mine) >= 8  # taste orders the matches
    similar = client.get("/items/i13/similar?k=5").json()
    assert len(similar) == 5 and sum(group_of(s["item_id"]) == 1 for s in similar) >= 4
    assert {s["basis"] for s in similar} == {"co-occurrence"}
    cold = client.get(f"/items/{COLD_ITEM}/similar?k=5").json()  # no one interacted with it
    assert len(cold) == 5 and {s["basis"] for s in cold} == {"text"}
    assert all(group_of(s["item_id"]) == 1 for s in cold)  # its text: river, G1
    why = client.get("/users/u1_0/explanations/i13").json()
    assert why["method"] == "statistical" and why["because"] and "liked" in why["text"]
    assert {a["value"] for a in why["attributes"]} <= {"G1", "river", "tag1"}
    history = {i["item_id"] for i in client.get("/users/u1_0").json()["items"]}
    assert {b["item_id"] for b in why["because"]} <= history


def test_errors_are_4xx_with_a_one_line_fix(client: TestClient) -> None:
    assert_problem(client.get("/users/nobody/recommendations"), 404, "nobody")
    assert_problem(client.get("/items/nothing"), 404, "nothing")
    assert_problem(client.get("/items/i1/image"), 404, "poster")
    assert_problem(client.get("/items/../../etc/passwd/image"), 404)
    assert_problem(client.get("/users/u0_1/recommendations?model=nope"), 422, "nope")
    assert_problem(client.get("/users/u0_1/recommendations?k=zero"), 422, "k")
    assert_problem(client.get("/users/u0_1/recommendations?k=100000"), 422, "k=100000")
    assert_problem(client.get("/items?query=the"), 422, "no searchable words")
    assert_problem(client.post("/recommendations", json={"items": ["nope"]}), 404, "nope")
    assert_problem(client.post("/recommendations", content=b"{not json"), 422)
    assert_problem(client.post("/recommendations", json={"items": []}), 422, "items")
    assert_problem(client.get("/no/such/endpoint"), 404)
    assert_problem(client.delete("/health"), 405)
    assert_problem(client.get("/users/u0_1/explanations/zzz"), 404, "zzz")


def test_an_unexpected_error_is_a_generic_500_without_a_trace(
    serve_folders: ServeFolders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("tastemaker.serve.api_users.recommendations", broken)
    with running(settings_for(serve_folders, tmp_path), raise_server_exceptions=False) as c:
        response = c.get("/users/u0_1/recommendations")
    assert response.status_code == 500 and "secret" not in response.text
    assert set(response.json()) == {"error", "fix"}


def test_limits_on_body_size_history_length_and_events(
    serve_folders: ServeFolders, tmp_path: Path
) -> None:
    limits = Limits(max_body_bytes=2_000, max_history=3, max_k=20, max_events=2)
    with running(settings_for(serve_folders, tmp_path, limits=limits)) as c:
        big = {"items": ["i1"] * 500}
        assert_problem(c.post("/recommendations", json=big), 413, "2000 bytes")
        assert_problem(
            c.post("/recommendations", json={"items": ["i1", "i2", "i3", "i4"]}), 422, "at most 3"
        )
        assert c.post("/recommendations", json={"items": ["i1", "i2", "i3"]}).status_code == 200
        assert_problem(c.get("/items/i1/similar?k=21"), 422, "k=21")
        events = [{"event_id": f"e{n}", "user_id": "u0_0", "item_id": "i1"} for n in range(3)]
        assert_problem(c.post("/feedback", json={"events": events}), 422, "at most 2")


def test_writes_need_the_api_key_when_one_is_set(
    serve_folders: ServeFolders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = {"events": [{"event_id": "k1", "user_id": "u0_0", "item_id": "i1"}]}
    with running(settings_for(serve_folders, tmp_path, api_key="s3cret")) as c:
        assert_problem(c.post("/feedback", json=event), 401, "API key")
        wrong = {"Authorization": "Bearer s3cre"}
        assert_problem(c.post("/feedback", json=event, headers=wrong), 401)
        assert_problem(c.post("/admin/reload"), 401)
        good = {"Authorization": "Bearer s3cret"}
        assert c.post("/feedback", json=event, headers=good).json() == {
            "stored": 1,
            "duplicates": 0,
        }
        assert c.post("/admin/reload", headers=good).status_code == 200
        assert c.get("/users/u0_0/recommendations").status_code == 200  # reads stay open
    with running(settings_for(serve_folders, tmp_path / "open")) as c:
        assert c.post("/feedback", json=event).status_code == 200
    key_file = tmp_path / "key.txt"
    key_file.write_text("from-file\n")
    monkeypatch.setenv("TASTEMAKER_API_KEY", "from-env")
    assert read_api_key(key_file) == "from-file" and read_api_key(None) == "from-env"


def test_feedback_is_idempotent_and_seen_at_once(client: TestClient) -> None:
    before = client.get("/users/u2_4/recommendations?k=6&model=most_popular").json()
    top = ids(before)[0]
    events = [
        {"event_id": "a", "user_id": "u2_4", "item_id": top, "rating": 5.0},
        {"event_id": "b", "user_id": "newcomer", "item_id": "i0", "timestamp": 1_700_000_000},
    ]
    bpr_before = ids(client.get("/users/u2_4/recommendations?k=10").json())
    assert client.post("/feedback", json={"events": events}).json() == {
        "stored": 2,
        "duplicates": 0,
    }
    assert client.post("/feedback", json={"events": events}).json() == {
        "stored": 0,
        "duplicates": 2,
    }
    after = client.get("/users/u2_4/recommendations?k=5&model=most_popular").json()
    scores = [i["score"] for i in after["items"]]
    assert top not in ids(after) and scores == [i["score"] for i in before["items"][1:6]]
    assert client.get("/users/u2_4").json()["items"][0]["item_id"] == top  # newest first
    bpr_after = ids(client.get("/users/u2_4/recommendations?k=10").json())
    assert bpr_after != bpr_before and top not in bpr_after  # the fold-in saw the event
    new = client.get("/users/newcomer/recommendations?k=3&model=sasrec").json()
    assert len(new["items"]) == 3 and "i0" not in ids(new)
    assert client.get("/users?limit=1000").json()[-1]["user_id"] == "u2_9"
    assert {"user_id": "newcomer", "history_length": 1} in client.get("/users?limit=1000").json()
    bad = {
        "events": [
            {"event_id": "c", "user_id": "u0_0", "item_id": "i0"},
            {"event_id": "d", "user_id": "u0_0", "item_id": "zz"},
        ]
    }
    assert_problem(client.post("/feedback", json=bad), 404, "zz")
    assert (
        client.post("/feedback", json={"events": bad["events"][:1]}).json()["stored"] == 1
    )  # nothing of the refused request was stored


def test_reload_swaps_the_model_set_and_requests_in_flight_keep_theirs(
    serve_folders: ServeFolders, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(serve_folders.models, models)
    settings = ServeSettings(data=serve_folders.data, model_dir=models, state_dir=tmp_path / "s")
    with running(settings) as c:
        state = c.app.state.state
        in_flight = state.current()
        shutil.copytree(models / "most_popular", models / "popular_copy")
        reloaded = c.post("/admin/reload").json()
        assert reloaded["models"] == ["bpr", "most_popular", "popular_copy", "sasrec"]
        assert state.current() is not in_flight
        assert list(in_flight.models) == ["bpr", "most_popular", "sasrec"]  # untouched
        n_items = len(state.catalog.frame)
        assert in_flight.models["bpr"].score_indices(np.array([0])).shape == (1, n_items)
        answer = c.get("/users/u0_0/recommendations?model=popular_copy&k=3").json()
        assert answer["model"] == "popular_copy"
        shutil.rmtree(models / "bpr")
        (models / "bpr").mkdir()
        (models / "bpr" / "config.json").write_text("{broken")
        assert c.post("/admin/reload").status_code == 422  # a bad folder keeps the old set
        assert "bpr" in c.get("/ready").json()["models"]
