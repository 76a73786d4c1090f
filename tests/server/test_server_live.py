"""The real server (``pekit serve`` in a subprocess, real ONNX backbone): SIGKILL safety, and the
web page end to end in headless Chromium (Debian's ``chromium``, driven by Playwright).

Screenshots of each web step are kept in ``tests/artifacts/web/`` (git-ignored).
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .conftest import ARTIFACTS, CAT_BOX, LiveServer, auth

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_sigkill_during_introduces_loses_no_acknowledged_concept(live_server: Any, tmp_path: Path,
                                                                 photos: dict[str, bytes]) -> None:
    import httpx

    from pekit.memory import open_memory
    from pekit.server.keys import KeyStore

    server: LiveServer = live_server()
    token = KeyStore(server.keys).create("alice")
    acknowledged: list[str] = []
    stop = threading.Event()

    def stream(worker: int) -> None:
        with httpx.Client(base_url=server.url, headers=auth(token), timeout=60) as http:
            for i in range(1000):
                if stop.is_set():
                    return
                name = f"cat-{worker}-{i}"
                try:
                    r = http.post("/v1/concepts", data={"name": name, "boxes": f"[{CAT_BOX}]"},
                                  files=[("photos", ("c.jpg", photos["cat"], "image/jpeg"))])
                except httpx.HTTPError:
                    return  # the server died under this request: not acknowledged
                if r.status_code == 201:
                    acknowledged.append(name)

    threads = [threading.Thread(target=stream, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)  # mid-stream: two introduces are in flight
    server.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(60)
    assert len(acknowledged) >= 4

    with open_memory(str(server.memory), must_exist=True) as memory:  # readable, every acknowledged one there
        stored = {c.name: c for c in memory.concepts(namespace="alice")}
        assert set(acknowledged) <= set(stored)
        assert all(c.views.shape[0] == 1 and np.isfinite(c.views).all() for c in stored.values())
    again = LiveServer(server.memory, server.keys, server.log).start()
    try:
        listed = httpx.get(again.url + "/v1/concepts", headers=auth(token), timeout=30).json()
        assert set(acknowledged) <= {c["name"] for c in listed}
    finally:
        again.stop()


def _decode(data_url: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB"))


def test_the_web_page_end_to_end(live_server: Any, tmp_path: Path, photos: dict[str, bytes],
                                 chelsea: np.ndarray) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    expect = playwright.expect
    from pekit.server.keys import KeyStore

    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium; .ci/run does)"
    server: LiveServer = live_server()
    token = KeyStore(server.keys).create("alice")
    shots = ARTIFACTS / "web"
    shots.mkdir(parents=True, exist_ok=True)
    cat = tmp_path / "chelsea.jpg"
    cat.write_bytes(photos["cat"])
    copy = tmp_path / "chelsea-copy.jpg"
    copy.write_bytes(photos["cat"])
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    problems: list[str] = []

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=1)  # a phone
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("dialog", lambda d: d.accept())
        page.goto(server.url + "/")
        page.screenshot(path=str(shots / "01-sign-in.png"), full_page=True)

        page.fill("#key", "pk_000000000000_" + "A" * 43)
        page.click("#signin")
        page.wait_for_selector("#signin-status.error")
        assert "not valid" in page.inner_text("#signin-status")
        page.fill("#key", token)
        page.click("#signin")
        expect(page.locator("#who")).to_contain_text("alice", timeout=60_000)
        page.screenshot(path=str(shots / "02-signed-in.png"), full_page=True)

        page.fill("#name", "Tom")
        page.fill("#category", "cat")
        page.fill("#context", "my cat")
        page.set_input_files("#photos", str(cat))
        page.wait_for_selector("#boxes canvas[data-ready='1']")
        canvas = page.locator("#boxes canvas").first
        canvas.scroll_into_view_if_needed()
        rect = canvas.bounding_box()
        assert rect is not None and rect["width"] <= 390  # fits the phone screen
        sx, sy = rect["width"] / chelsea.shape[1], rect["height"] / chelsea.shape[0]
        page.mouse.move(rect["x"] + CAT_BOX[0] * sx, rect["y"] + CAT_BOX[1] * sy)
        page.mouse.down()
        page.mouse.move(rect["x"] + 200 * sx, rect["y"] + 150 * sy, steps=5)
        page.mouse.move(rect["x"] + CAT_BOX[2] * sx, rect["y"] + CAT_BOX[3] * sy, steps=5)
        page.mouse.up()
        drawn = [int(v) for v in (canvas.get_attribute("data-box") or "").split(",")]
        assert np.allclose(drawn, CAT_BOX, atol=3), drawn
        page.screenshot(path=str(shots / "03-box-drawn.png"), full_page=True)
        page.click("#introduce")
        expect(page.locator("#introduce-status")).to_contain_text("introduced", timeout=60_000)
        page.wait_for_selector("#concepts button.forget[data-name='Tom']")
        page.screenshot(path=str(shots / "04-introduced.png"), full_page=True)

        # the same name again: the advice names the page's own checkbox, which then replaces it; two
        # copies of one photo are warned of, as `pekit introduce` does
        page.fill("#name", "Tom")
        page.set_input_files("#photos", [str(cat), str(copy)])
        page.click("#introduce")
        expect(page.locator("#introduce-status")).to_contain_text('tick "Replace"', timeout=60_000)
        page.check("#replace")
        page.click("#introduce")
        expect(page.locator("#introduce-status")).to_contain_text("photos 1 and 2 are the same picture",
                                                                  timeout=60_000)
        # edit: a new name and context, and one more photo
        form = page.locator("#concepts li form.edit").first
        assert form.is_hidden()  # until Edit is clicked
        page.click("#concepts button.edit[data-name='Tom']")
        form.locator("input").nth(0).fill("Tommy")
        form.locator("input").nth(2).fill("my old cat")
        form.locator("input[type=file]").set_input_files(str(cat))
        form.locator("button.save").click()
        expect(page.locator("#concepts-status")).to_contain_text("saved Tommy", timeout=60_000)
        expect(page.locator("#concepts")).to_contain_text("Tommy (cat) — 3 view(s): my old cat")
        assert page.locator("#concepts li form.edit").first.is_hidden()  # the list drawn anew, its forms closed
        page.screenshot(path=str(shots / "04b-edited.png"), full_page=True)

        page.set_input_files("#query", str(cat))
        page.click("#recognize")
        expect(page.locator("#detections")).to_contain_text("Tom", timeout=60_000)
        page.locator("#result-img").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "05-recognized.png"), full_page=True)
        shown = _decode(page.get_attribute("#result-img", "src") or "")
        assert shown.shape == chelsea.shape
        box = [int(v) for v in (page.get_attribute("#detections li", "data-box") or "").split(",")]

        page.fill("#question", "What is Tommy doing?")
        page.click("#ask")
        expect(page.locator("#prompt")).to_contain_text("Tommy", timeout=60_000)
        assert page.inner_text("#prompt-label") == "Prompt an LVLM would get"  # none was sent: no LVLM
        page.screenshot(path=str(shots / "06-asked.png"), full_page=True)

        # a photo that fails: its error does not sit above the last photo's result
        page.set_input_files("#query", str(notes))
        page.click("#recognize")
        expect(page.locator("#ask-status.error")).to_contain_text("not an image", timeout=60_000)
        assert page.locator("#result").is_hidden() and page.inner_text("#detections") == ""
        # signing out leaves nothing of alice's for the next person on this device
        page.set_input_files("#query", str(cat))
        page.click("#recognize")
        expect(page.locator("#detections")).to_contain_text("Tommy", timeout=60_000)
        page.click("#signout")
        for hidden in ("#result", "#app"):
            assert page.locator(hidden).is_hidden()
        assert page.eval_on_selector("#query", "e => e.files.length") == 0
        assert page.inner_text("#detections") == "" and page.inner_text("#concepts") == ""
        # ... nor does an answer that arrives after the sign-out (a slow question, signed out meanwhile)
        page.fill("#key", token)
        page.click("#signin")
        page.wait_for_selector("#concepts button.forget[data-name='Tommy']", timeout=60_000)
        held: list[Any] = []

        def hold(route: Any) -> None:
            held.append(route)

        page.route("**/v1/recognize", hold)
        page.set_input_files("#query", str(cat))
        page.click("#recognize")
        while not held:
            page.wait_for_timeout(50)
        page.click("#signout")
        with page.expect_response("**/v1/recognize", timeout=60_000):
            held[0].continue_()
        page.wait_for_timeout(500)
        page.unroute("**/v1/recognize", hold)
        assert page.locator("#result").is_hidden() and page.inner_text("#detections") == ""
        assert page.inner_text("#ask-status") == "" and page.inner_text("#signin-status") == ""
        page.fill("#key", token)
        page.click("#signin")
        page.wait_for_selector("#concepts button.forget[data-name='Tommy']", timeout=60_000)

        page.click("#concepts button.forget[data-name='Tommy']")
        expect(page.locator("#concepts-status")).to_contain_text("forgot Tommy; no concepts", timeout=60_000)
        page.screenshot(path=str(shots / "07-forgotten.png"), full_page=True)
        browser.close()

    # no script error, no blocked request (CSP), no failed load but the wrong key's 401, the name taken
    # (409) and the photo that is not one (415 or 422)
    assert [p for p in problems if not any(f"status of {c}" in p for c in (401, 409, 415, 422))] == [], problems
    # the box is drawn on the result: the annotated photo differs from the photo along a rectangle's edges
    import httpx

    changed = np.abs(shown.astype(int) - chelsea.astype(int)).sum(axis=2) > 50
    x0, y0, x1, y1 = box
    h, w = changed.shape
    edges = {"left": changed[y0 + 20:y1 - 5, max(x0 - 3, 0):x0 + 3].any(axis=1),
             "right": changed[y0 + 20:y1 - 5, x1 - 3:min(x1 + 3, w)].any(axis=1),
             "bottom": changed[max(y1 - 3, 0):min(y1 + 3, h), x0 + 5:x1 - 5].any(axis=0)}
    assert all(e.mean() > 0.8 for e in edges.values()), {k: e.mean() for k, e in edges.items()}
    inside = changed[y0 + 30:y1 - 10, x0 + 10:x1 - 10]
    assert inside.mean() < 0.05  # the photo itself is not painted over
    assert httpx.get(server.url + "/v1/concepts", headers=auth(token)).json() == []
    print(f"screenshots in {shots}")


def test_the_api_reference_renders_with_no_request_leaving_the_machine(live_server: Any) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    expect = playwright.expect
    assert Path(CHROMIUM).exists(), "install Debian's chromium (apt-get install chromium; .ci/run does)"
    server: LiveServer = live_server()
    outside: list[str] = []
    problems: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:  # what a machine with no internet would see
            outside.append(route.request.url)
            route.abort()

    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.route("**/*", only_local)
        page.goto(server.url + "/docs")
        expect(page.locator(".opblock-summary-path[data-path='/v1/recognize']")).to_have_count(1, timeout=60_000)
        operations = page.locator(".opblock").count()
        browser.close()
    assert outside == [] and problems == [], (outside, problems)
    assert operations >= 8  # every route of the API is listed
