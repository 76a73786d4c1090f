"""``pekit eval ...`` end to end (fake pipeline / LVLM), reports and error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pekit.cli import main
from pekit.eval import cli as eval_cli
from pekit.eval.report import clean_json, format_value

from .conftest import FakeLVLM, FakePipeline


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[FakePipeline]:
    made: list[FakePipeline] = []

    def build(preset: str) -> FakePipeline:
        made.append(FakePipeline())
        return made[-1]

    monkeypatch.setattr(eval_cli, "_build_pipeline", build)
    return made


def strict_json(path: Path) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_recognition_command_writes_report(folder_dataset: Path, tmp_path: Path, fake, capsys):
    out = tmp_path / "report"
    code = main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--refs", "1-3", "--seeds", "2",
                 "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet", "--sweep-threshold"])
    assert code == 0
    printed = capsys.readouterr()
    assert "| k | concepts | test photos | positive acc. |" in printed.out
    assert "| 1 | 4 | 5 | 100.0 ± 0.0 | 58.3 ± 0.0 |" in printed.out
    assert "| τ | weighted saliency/k=1 |" in printed.out
    assert "wall time" in printed.err
    for name in ("results.json", "README.md", "sweep.png", "refs.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    res = strict_json(out / "results.json")
    assert [r["k"] for r in res["rows"]] == [1, 2, 3] and res["config"]["seeds"] == 2
    assert res["rows"][2]["metrics"]["weighted"]["mean"] is None          # k=3: no positives left
    assert res["per_concept"]["saliency/k=1"]["blue"]["positive"] is None
    assert res["timing"]["backbone_passes"] == 9 and "wall_s" in res["timing"]
    readme = (out / "README.md").read_text()
    assert "![sweep](sweep.png)" in readme and "Skipped (fewer photos than k): saliency/k=2: blue" in readme
    assert "positive accuracy = recall" in readme
    # a second run reads every grid from the cache
    assert main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--out", str(out),
                 "--cache", str(tmp_path / "cache"), "--quiet"]) == 0
    assert fake[-1].encodes == 0


def test_ablate_command(folder_dataset: Path, tmp_path: Path, fake, capsys):
    code = main(["eval", "ablate", "--dataset", f"folder:{folder_dataset}", "--refs", "1,2", "--seeds", "1",
                 "--extractor", "saliency,full", "--top-k", "1", "--out", str(tmp_path / "r"), "--no-cache", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| extractor | k |" in out and "| full | 2 |" in out and "P@1" in out and "R@1" in out


def test_vqa_command(yollava_dataset: Path, tmp_path: Path, fake, monkeypatch, capsys):
    import pekit.answer

    lvlm = FakeLVLM([("What colour", "A")], default="B")
    monkeypatch.setattr(pekit.answer, "load_lvlm", lambda name: lvlm)
    code = main(["eval", "vqa", "--dataset", f"yollava:{yollava_dataset}", "--refs", "2", "--lvlm", "fake",
                 "--out", str(tmp_path / "v"), "--no-cache", "--quiet"])
    assert code == 0
    assert "| 2 | 3 | 100.0 ± 0.0 |" in capsys.readouterr().out
    assert strict_json(tmp_path / "v" / "results.json")["rows"][0]["unparsable"] == 0


@pytest.mark.parametrize(("argv", "message"), [
    (["eval", "recognition", "--dataset", "myvlm:{db}"], "expected the myvlm layout"),
    (["eval", "recognition", "--dataset", "folder:{missing}"], "expected the folder layout"),
    (["eval", "vqa", "--dataset", "folder:{db}", "--lvlm", "none"], "needs an LVLM"),
    (["eval", "vqa", "--dataset", "folder:{db}", "--refs", "1,2", "--lvlm", "x"], "one number of references"),
    (["eval", "recognition", "--dataset", "folder:{db}", "--seeds", "0"], "--seeds must be >= 1"),
    (["eval", "ablate", "--dataset", "folder:{db}", "--extractor", "magic"], "unknown extractor"),
])
def test_bad_input_messages(folder_dataset: Path, tmp_path: Path, fake, capsys, argv, message):
    argv = [a.format(db=folder_dataset, missing=tmp_path / "missing") for a in argv]
    code = main([*argv, "--out", str(tmp_path / "o"), "--no-cache", "--quiet"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_refs_parsing():
    assert eval_cli._int_list("1,3-4, 2") == [1, 2, 3, 4]
    import argparse

    for bad in ("0", "a", "", "2-x"):
        with pytest.raises(argparse.ArgumentTypeError):
            eval_cli._int_list(bad)


def test_report_helpers():
    assert format_value({"mean": 0.5, "std": None}) == "50.0"
    assert format_value(float("nan")) == "n/a"
    assert clean_json({"x": [float("inf"), Path("a/b")]}) == {"x": [None, "a/b"]}
