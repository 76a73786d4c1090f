"""The HTTP service on the PostgreSQL + pgvector memory: the same API, two app instances
(as two worker processes would be) sharing one database, users kept apart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .conftest import CAT_BOX, auth, introduce


def test_two_apps_on_one_postgres_memory(make_app: Any, postgres_uri: str, photos: dict[str, bytes],
                                         tmp_path: Path) -> None:
    sep = "&" if "?" in postgres_uri else "?"
    uri = f"{postgres_uri}{sep}schema=server_{os.getpid()}"
    one, two = make_app(memory=uri), make_app(memory=uri)
    assert type(one.app.state.service.personalizer.memory).__name__ == "PgvectorMemory"
    alice = auth(one.app.state.service.keys.create("alice"))
    bob = auth(one.app.state.service.keys.create("bob"))
    photo = {"photo": ("q.jpg", photos["cat"], "image/jpeg")}

    assert two.post("/v1/recognize", headers=alice, files=photo).json()["detections"] == []  # gallery built
    assert introduce(one, alice, "Tom", photos["cat"], CAT_BOX, category="cat").status_code == 201
    # the other instance sees the write (the store's write counter), the other user does not
    assert [d["name"] for d in two.post("/v1/recognize", headers=alice, files=photo).json()["detections"]] == ["Tom"]
    assert two.post("/v1/recognize", headers=bob, files=photo).json()["detections"] == []
    assert two.get("/v1/concepts", headers=bob).json() == []
    assert two.delete("/v1/concepts/Tom", headers=bob).status_code == 404
    assert two.delete("/v1/concepts/Tom", headers=alice).status_code == 200
    assert one.post("/v1/recognize", headers=alice, files=photo).json()["detections"] == []
