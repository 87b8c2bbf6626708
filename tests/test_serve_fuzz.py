"""Property-based fuzzing of the service from its own OpenAPI schema: no input is a 5xx.

Schemathesis generates requests for every operation the schema declares (paths,
queries, bodies, valid and invalid) and sends them to the app in-process with its
lifespan started; the only check is that no answer is a server error. The number of
examples per operation is bounded so the whole run stays under a minute.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from tastemaker.serve.app import create_app
from tastemaker.serve.settings import ServeSettings

from .serve_data import ServeFolders

EXAMPLES = 12


@pytest.fixture(scope="module")
def api_schema(serve_folders: ServeFolders, tmp_path_factory: pytest.TempPathFactory) -> Any:
    state = tmp_path_factory.mktemp("fuzz-state")
    app = create_app(
        ServeSettings(data=serve_folders.data, model_dir=serve_folders.models, state_dir=state)
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with asgi.get_client(app) as client:  # the lifespan starts; wait for the models
        for _ in range(300):
            if client.get(f"http://{asgi.HOST}/ready").status_code == 200:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the app did not get ready")
    return schema


def test_no_request_gets_a_server_error(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy(), known=st.booleans())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any, known: bool) -> None:
            if known:
                with_known_ids(case)
            case.call_and_validate(checks=[not_a_server_error])

        fuzz()


def with_known_ids(case: Any) -> None:
    """Half the cases name a real user and real items, so the fuzzer gets past the 404s
    into scoring, search, explanations and feedback with its other values random."""
    for name, value in (("user_id", "u0_1"), ("item_id", "i3")):
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = value
    if case.query and "user_id" in case.query:
        case.query["user_id"] = "u1_2"
    body = case.body if isinstance(case.body, dict) else {}
    if isinstance(body.get("items"), list):
        body["items"] = [f"i{n % 36}" for n in range(len(body["items"]))]
    for event in body.get("events") or []:
        if isinstance(event, dict):
            event["item_id"] = "i5"


def test_the_fuzzed_schema_covers_the_api(api_schema: Any) -> None:
    paths = set(api_schema.raw_schema["paths"])
    expected = {"/feedback", "/recommendations", "/users/{user_id}/recommendations", "/items"}
    assert expected <= paths and Path("/admin/reload").as_posix() in paths
