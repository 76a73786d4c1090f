"""Schemathesis fuzzes every operation of the OpenAPI schema: no request may get a 5xx.

Requests carry a valid key (so they reach the routes, not only the key check) and the
caller owns one concept, so routes on ``{name}`` are exercised on a real row too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402 - after the skip
from schemathesis.checks import not_a_server_error  # noqa: E402

from .conftest import CAT_BOX  # noqa: E402

KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, bytes]) -> Iterator[Any]:
    from pekit.personalizer import Personalizer
    from pekit.server.app import create_app

    folder: Path = tmp_path_factory.mktemp("fuzz")
    personalizer = Personalizer(memory=str(folder / "memory.db"))
    app = create_app(personalizer, keys=str(folder / "keys.db"), workers=1, queue=4)
    KEY["Authorization"] = "Bearer " + app.state.service.keys.create("fuzz")
    personalizer.for_namespace("fuzz").introduce("Tom", [photos["cat"]], boxes=[CAT_BOX])
    yield app


@pytest.mark.slow
def test_no_request_gets_a_server_error(fuzzed_app: Any) -> None:
    # one hypothesis run per operation, driven here: schemathesis' lazy pytest loader
    # (`schemathesis.pytest.from_fixture`) does not run under pytest 9
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def run(case: Any) -> None:
            case.call_and_validate(headers=KEY, checks=[not_a_server_error])

        run()
    assert {"POST /v1/concepts", "DELETE /v1/concepts/{name}", "POST /v1/recognize", "POST /v1/ask"} <= set(labels)
