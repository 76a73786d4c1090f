"""``pekit eval ...`` end to end (fake pipeline / LVLM), reports and error messages."""

from __future__ import annotations

import itertools
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
    best = res["sweep"]["best"]["saliency/k=1"]  # a tie for the best τ is reported as a range
    assert best["plateau"][0] < best["threshold"] < best["plateau"][1]
    assert f"saliency/k=1: τ = {best['threshold']:.2f} (all of {best['plateau'][0]:.2f}–" in readme
    # a second run reads every grid from the cache
    assert main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--out", str(out),
                 "--cache", str(tmp_path / "cache"), "--quiet"]) == 0
    assert fake[-1].encodes == 0


def test_a_report_inside_the_dataset_is_refused(folder_dataset: Path, tmp_path: Path, fake, capsys):
    # its sweep.png and refs.png would be read as photos of a concept 'report' on the next run
    before = sorted(p.name for p in folder_dataset.iterdir())
    code = main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--out",
                 str(folder_dataset / "report"), "--no-cache", "--quiet"])
    assert code == 2 and "is inside the dataset folder" in capsys.readouterr().err and not fake
    assert sorted(p.name for p in folder_dataset.iterdir()) == before


def test_a_run_where_no_concept_can_be_scored_is_an_error(folder_dataset: Path, tmp_path: Path, fake, capsys):
    code = main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--refs", "8,9", "--out",
                 str(tmp_path / "r"), "--no-cache", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--refs 8,9: every concept has fewer usable photos than that" in err, err
    # a k that fits no concept beside one that fits some: that k is skipped and said so, the run goes on
    out = tmp_path / "r2"
    assert main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--refs", "1,9", "--seeds", "1",
                 "--out", str(out), "--no-cache", "--quiet"]) == 0
    assert any(w.startswith("k=9: skipped 4 concept(s)") for w in strict_json(out / "results.json")["warnings"])


def test_a_gallery_larger_than_the_dataset_is_said_to_be_all(folder_dataset: Path, tmp_path: Path, fake):
    out = tmp_path / "r"
    assert main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--refs", "1", "--seeds", "1",
                 "--gallery", "8", "--out", str(out), "--no-cache", "--quiet"]) == 0
    assert any("gallery 8: the dataset has 4 concepts" in w for w in strict_json(out / "results.json")["warnings"])


def test_ablate_command(folder_dataset: Path, tmp_path: Path, fake, capsys):
    code = main(["eval", "ablate", "--dataset", f"folder:{folder_dataset}", "--refs", "1,2", "--seeds", "1",
                 "--extractor", "saliency,full", "--top-k", "1", "--out", str(tmp_path / "r"), "--no-cache", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| extractor | k |" in out and "| full | 2 |" in out and "P@1" in out and "R@1" in out


def test_vqa_command(yollava_dataset: Path, tmp_path: Path, fake, monkeypatch, capsys):
    import pekit.answer

    lvlm = FakeLVLM([("What colour", "A")], default="B")
    loaded: list[dict] = []
    monkeypatch.setattr(pekit.answer, "load_lvlm", lambda name, **options: loaded.append(options) or lvlm)
    code = main(["eval", "vqa", "--dataset", f"yollava:{yollava_dataset}", "--refs", "2", "--lvlm", "fake",
                 "--lvlm-option", "timeout=300", "--out", str(tmp_path / "v"), "--no-cache", "--quiet"])
    assert code == 0 and loaded == [{"timeout": 300}]  # what an error's hint says to raise, from the command line
    assert "| 2 | 3 | 100.0 ± 0.0 |" in capsys.readouterr().out
    assert strict_json(tmp_path / "v" / "results.json")["rows"][0]["unparsable"] == 0


def test_vqa_answers_are_cached_under_the_model_name_until_asked_afresh(yollava_dataset: Path, tmp_path: Path,
                                                                        fake, monkeypatch, capsys):
    import pekit.answer

    served = {"lvlm": FakeLVLM([], default="A")}
    monkeypatch.setattr(pekit.answer, "load_lvlm", lambda name: served["lvlm"])
    argv = ["eval", "vqa", "--dataset", f"yollava:{yollava_dataset}", "--refs", "2", "--lvlm", "fake",
            "--out", str(tmp_path / "v"), "--cache", str(tmp_path / "cache"), "--quiet"]

    def accuracy() -> float:
        return strict_json(tmp_path / "v" / "results.json")["rows"][0]["metrics"]["accuracy"]["mean"]

    assert main(argv) == 0 and served["lvlm"].calls == 3
    first = accuracy()
    served["lvlm"] = FakeLVLM([], default="B")  # the same name, another model behind it
    assert main(argv) == 0 and served["lvlm"].calls == 0 and accuracy() == first  # the cached answers
    assert main([*argv, "--fresh-answers"]) == 0 and served["lvlm"].calls == 3 and accuracy() != first
    served["lvlm"] = FakeLVLM([], default="B")
    assert main(argv) == 0 and served["lvlm"].calls == 0 and accuracy() != first  # the fresh ones, kept


@pytest.mark.parametrize(("argv", "message"), [
    (["eval", "recognition", "--dataset", "myvlm:{db}"], "expected the myvlm layout"),
    (["eval", "recognition", "--dataset", "folder:{missing}"], "expected the folder layout"),
    (["eval", "vqa", "--dataset", "folder:{db}", "--lvlm", "none"], "needs an LVLM"),
    (["eval", "vqa", "--dataset", "folder:{db}", "--refs", "1,2", "--lvlm", "x"], "one number of references"),
    (["eval", "recognition", "--dataset", "folder:{db}", "--seeds", "0"], "--seeds must be >= 1"),
    (["eval", "ablate", "--dataset", "folder:{db}", "--extractor", "magic"], "unknown extractor"),
    (["eval", "recognition", "--dataset", "folder:{db}", "--concepts", ","], "no concept named to keep"),
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


def test_refs_plot_draws_one_line_per_gallery_mode(tmp_path: Path, monkeypatch):
    """--gallery all,single: refs.png had one line per extractor zig-zagging through both modes."""
    from pekit.eval import report

    figures = []
    make = report._figure
    monkeypatch.setattr(report, "_figure", lambda n: figures.append(make(n)) or figures[-1])
    rows = [{"extractor": "saliency", "k": k, "gallery": g,
             "metrics": {m: {"mean": v, "std": 0.0} for m in ("positive", "negative", "weighted")}}
            for k in (1, 2) for g, v in (("all", 0.9 + k / 100), ("single", 0.5 + k / 100))]
    report.plot_refs({"rows": rows}, tmp_path / "refs.png")
    ax = figures[0][1][0]
    lines = {label: [round(y) for y in bars.lines[0].get_ydata()]
             for bars, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    assert lines == {"gallery all (weighted)": [91, 92], "gallery single (weighted)": [51, 52]}


@pytest.mark.parametrize(("task", "dataset", "extra"), [
    ("recognition", "folder:{db}", []),
    ("ablate", "folder:{db}", []),
    ("vqa", "yollava:{qa}", ["--refs", "2", "--lvlm", "fake"]),
    ("captions", "folder:{db}", ["--lvlm", "fake"]),
])
@pytest.mark.parametrize("option", ["--out", "--cache"])
def test_a_file_given_as_out_or_cache_is_refused_before_any_work(folder_dataset: Path, yollava_dataset: Path,
                                                                 tmp_path: Path, fake, monkeypatch, capsys,
                                                                 task, dataset, extra, option):
    import pekit.answer

    monkeypatch.setattr(pekit.answer, "load_lvlm", lambda name: pytest.fail("an LVLM was loaded"))
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    paths = {"--out": str(tmp_path / "o"), "--cache": str(tmp_path / "c")}
    for target, why in ((afile, "is a file, not a folder"),
                        (afile / "sub", f"is inside '{afile}', which is a file, not a folder")):
        argv = ["eval", task, "--dataset", dataset.format(db=folder_dataset, qa=yollava_dataset), *extra,
                *(a for k, v in {**paths, option: str(target)}.items() for a in (k, v)), "--quiet"]
        assert main(argv) == 11  # an output error, like any file in the way of an output
        err = capsys.readouterr().err
        assert f"{option} '{target}' {why}; pass {option} a folder path" in err and "Traceback" not in err
    assert not fake  # refused before the pipeline was built
    assert afile.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["afile", "db", "yollava"])


def test_a_cache_folder_that_cannot_be_made_is_an_output_error(folder_dataset: Path, tmp_path: Path, fake,
                                                                capsys, monkeypatch):
    import errno

    import pekit.eval.cache as cache_mod

    real_mkdir = Path.mkdir

    def full(self, *a, **k):
        if "grids" in self.parts:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(cache_mod.Path, "mkdir", full)
    argv = ["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--out", str(tmp_path / "o"),
            "--cache", str(tmp_path / "c"), "--quiet"]
    assert main(argv) == 11
    err = capsys.readouterr().err
    assert f"cannot create the cache folder '{tmp_path / 'c'}': the disk is full" in err
    assert "pass --cache another folder" in err and "Traceback" not in err


def test_an_unwritable_out_folder_is_refused_before_any_work(folder_dataset: Path, tmp_path: Path, fake, capsys,
                                                             monkeypatch):
    import os

    import pekit.eval.cli as eval_cli

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # what a read-only folder answers (the tests may run as root, who may write anywhere)
    monkeypatch.setattr(eval_cli.os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    assert main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--out", str(locked / "r"),
                 "--no-cache", "--quiet"]) == 11
    assert f"no permission to write in '{locked}'" in capsys.readouterr().err and not fake
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["eval", "recognition", "--threshold", "7"], "--threshold must be a cosine score in [-1, 1]"),
    (["eval", "ablate", "--threshold", "-1.5"], "--threshold must be a cosine score in [-1, 1]"),
    (["eval", "recognition", "--threshold", "nan"], "--threshold must be a cosine score in [-1, 1]"),
    (["eval", "vqa", "--threshold", "7", "--lvlm", "x"], "--threshold must be a cosine score in [-1, 1]"),
    (["eval", "recognition", "--seed", "-1"], "--seed must be a whole number >= 0"),
    (["eval", "captions", "--seed", "-3", "--lvlm", "x"], "--seed must be a whole number >= 0"),
    (["eval", "captions", "--max-new-tokens", "0", "--lvlm", "x"], "--max-new-tokens must be >= 1"),
    (["eval", "vqa", "--max-new-tokens", "-5", "--lvlm", "x"], "--max-new-tokens must be >= 1"),
])
def test_numeric_options_are_checked_before_any_work(folder_dataset: Path, tmp_path: Path, fake, monkeypatch,
                                                     capsys, argv, message):
    import pekit.answer

    monkeypatch.setattr(pekit.answer, "load_lvlm", lambda name: pytest.fail("an LVLM was loaded"))
    code = main([*argv, "--dataset", f"folder:{folder_dataset}", "--out", str(tmp_path / "o"), "--no-cache",
                 "--quiet"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not fake and not (tmp_path / "o").exists()


@pytest.mark.parametrize("text", ["1-1000000000", "5000", "1,2,1001"])
def test_refs_and_top_k_are_bounded_before_a_range_is_expanded(text):
    import argparse
    import time

    start = time.perf_counter()
    with pytest.raises(argparse.ArgumentTypeError, match="expected numbers from 1 to 1000"):
        eval_cli._int_list(text)
    assert time.perf_counter() - start < 1.0
    assert eval_cli._int_list("1-1000")[-1] == 1000


def test_library_checks_threshold_and_seed(folder_dataset: Path, fake_pipeline):
    from pekit.errors import InvalidInputError
    from pekit.eval.datasets import load_dataset
    from pekit.eval.recognition import check_gallery, run_recognition

    ds = load_dataset(f"folder:{folder_dataset}")
    with pytest.raises(InvalidInputError, match=r"threshold must be a cosine score in \[-1, 1\].*got 7"):
        run_recognition(ds, fake_pipeline, threshold=7, progress=False)
    with pytest.raises(InvalidInputError, match="seed must be a whole number >= 0"):
        run_recognition(ds, fake_pipeline, seed=-2, progress=False)
    assert fake_pipeline.encodes == 0
    with pytest.raises(InvalidInputError, match="unknown gallery mode"):
        check_gallery("²")


@pytest.mark.parametrize("fail", ["text", "plot"])
def test_a_full_disk_while_writing_the_report_is_a_clear_error_and_keeps_the_old_report(
        folder_dataset: Path, tmp_path: Path, fake, monkeypatch, capsys, fail):
    import errno

    from matplotlib.figure import Figure

    from pekit.eval import report

    out = tmp_path / "report"
    argv = ["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--out", str(out), "--no-cache", "--quiet"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"results.json", "README.md", "sweep.png", "refs.png"}
    capsys.readouterr()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if fail == "text":
        monkeypatch.setattr(report, "_write_bytes", full)
        name = "results.json"
    else:
        monkeypatch.setattr(Figure, "savefig", full)
        name = "sweep.png"
    assert main(argv) == 11  # OutputError: the disk, not the input
    err = capsys.readouterr().err
    assert f"cannot write the report file '{out / name}': the disk is full" in err and "free some space" in err
    assert "Traceback" not in err and "Errno" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old report whole, no temporary files


def test_a_permission_error_while_writing_the_report_names_the_file(tmp_path: Path, monkeypatch):
    import errno

    from pekit.errors import InvalidInputError
    from pekit.eval import report

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(report, "_write_bytes", denied)
    with pytest.raises(InvalidInputError, match=r"cannot write the report file '.*results.json': permission denied"):
        report.write_report(tmp_path / "r", {"x": 1}, "# r\n")
    assert list((tmp_path / "r").iterdir()) == []


def test_a_strangers_report_sweeps_the_share_of_photos_named(folder_dataset: Path, tmp_path: Path, fake):
    out = tmp_path / "r"
    assert main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--refs", "1", "--seeds", "1",
                 "--gallery", "strangers", "--out", str(out), "--no-cache", "--quiet"]) == 0
    results = strict_json(out / "results.json")
    row = results["rows"][0]
    assert row["gallery"] == "strangers" and row["metrics"]["stranger named"]["mean"] == 1.0
    curve = results["sweep"]["curves"]["saliency/k=1/strangers"]["stranger named"]
    # every stranger is named at τ = 0 and fewer (never more) as τ rises: nobody at τ = 1 (the fake's best is 0.707)
    assert curve[0] == 1.0 and curve[-1] == 0.0 and all(a >= b for a, b in itertools.pairwise(curve))
    assert results["sweep"]["best"] == {}  # no positives: no weighted accuracy to choose τ by
    assert (out / "refs.png").exists() and (out / "sweep.png").exists()
    text = (out / "README.md").read_text()
    assert "strangers named saliency/k=1/strangers" in text


@pytest.mark.parametrize(("task", "module"), [("recognition", "matplotlib"), ("captions", "sacrebleu")])
def test_a_missing_eval_extra_is_said_before_any_work_and_leaves_no_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], task: str,
        module: str) -> None:
    """Its plots (recognition) or BLEU (captions) need the [eval] extra: said at once, not after
    a run of minutes, and the --out folder is not made."""
    import sys

    from pekit.cli import main

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    out = tmp_path / "report"
    assert main(["eval", task, "--dataset", f"folder:{tmp_path}", "--out", str(out)]) == 9
    assert "pip install 'pekit-vlm[eval]'" in capsys.readouterr().err and not out.exists()


def test_a_photo_in_two_concept_folders_and_a_k_with_nothing_left_are_said(tmp_path: Path, fake, capsys, caplog):
    from .conftest import make_folder

    root = make_folder(tmp_path / "db", {"dog": ["red"] * 2, "cat": ["green"] * 2})
    (root / "cat" / "09.png").write_bytes((root / "dog" / "00.png").read_bytes())  # a dog photo copied into cat/
    out = tmp_path / "report"
    code = main(["eval", "recognition", "--dataset", f"folder:{root}", "--refs", "2,99", "--seeds", "1",
                 "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet"])
    assert code == 0
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "1 photo(s) are in the folders of several concepts" in said and ".png (cat, dog)" in said
    res = strict_json(out / "results.json")
    row99 = next(r for r in res["rows"] if r["k"] == 99)
    assert row99["concepts"] == 0 and row99["test_photos"] == 0  # nothing drawn: nothing tested
    (root / "cat" / "09.png").unlink()
    code = main(["eval", "recognition", "--dataset", f"folder:{root}", "--refs", "2", "--seeds", "1",
                 "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 0 and "k=2: no photo is left to test" in caplog.text and "Traceback" not in err
    assert "No artists with labels" not in err + caplog.text  # matplotlib's own warning, for a plot with no line
    assert f"replacing the report in {out}" in err


def test_a_vqa_report_over_a_recognition_report_leaves_no_stale_plot(folder_dataset: Path, yollava_dataset: Path,
                                                                     tmp_path: Path, fake, monkeypatch, capsys):
    out = tmp_path / "report"
    assert main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--refs", "1", "--seeds", "1",
                 "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet"]) == 0
    assert (out / "sweep.png").is_file()
    monkeypatch.setattr("pekit.answer.load_lvlm", lambda name, **kw: FakeLVLM([], default="A"))
    assert main(["eval", "vqa", "--dataset", f"yollava:{yollava_dataset}", "--refs", "2", "--lvlm", "fake",
                 "--out", str(out), "--no-cache", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "results.json"]
    assert "replacing the report" in capsys.readouterr().err


def test_the_box_extractor_says_why_it_skips_a_concept(tmp_path: Path, fake, caplog):
    from .conftest import make_folder

    root = make_folder(tmp_path / "db", {"dog": ["red"] * 3, "cat": ["green"] * 3})
    (root / "boxes.csv").write_text("subject,file,x0,y0,x1,y1\n" + "".join(f"dog,{i:02d}.png,1,1,12,10\n"
                                                                          for i in range(3)))
    code = main(["eval", "ablate", "--dataset", f"folder:{root}", "--refs", "1", "--seeds", "1",
                 "--extractor", "saliency,box", "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c"),
                 "--quiet"])
    assert code == 0
    assert "k=1, extractor box: skipped 1 concept(s) with fewer than 1 photos with a box" in caplog.text
    assert "its box rows compare other draws" in caplog.text


def test_a_boxes_csv_box_off_its_photo_is_named(tmp_path: Path, fake, caplog):
    from .conftest import make_folder

    root = make_folder(tmp_path / "db", {"dog": ["red"] * 2, "cat": ["green"] * 2})
    (root / "boxes.csv").write_text("subject,file,x0,y0,x1,y1\ndog,00.png,5000,5000,9000,9000\n"
                                    "dog,01.png,1,1,12,10\ncat,00.png,1,1,12,10\ncat,01.png,1,1,12,10\n")
    assert main(["eval", "recognition", "--dataset", f"folder:{root}", "--refs", "2", "--seeds", "1",  # all drawn
                 "--extractor", "box", "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c"), "--quiet"]) == 0
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "boxes.csv, 'dog':" in said and "lies outside the 16x12 photo" in said


def test_files_of_the_users_own_in_out_are_not_removed(folder_dataset: Path, tmp_path: Path, fake, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    for name in ("README.md", "sweep.png", "refs.png", "notes.txt"):
        (out / name).write_text("mine")
    assert main(["eval", "recognition", "--dataset", f"folder:{folder_dataset}", "--refs", "1", "--seeds", "1",
                 "--out", str(out), "--cache", str(tmp_path / "cache"), "--quiet"]) == 0
    assert f"{out / 'README.md'} is replaced by the report" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine" and (out / "results.json").is_file()


def test_a_double_photo_is_not_a_strangers_wrong_name(tmp_path: Path):
    from types import SimpleNamespace

    import numpy as np

    from pekit.eval.photos import Photo
    from pekit.eval.summary import stranger_named

    photos = [Photo(tmp_path / "a.jpg", "a", frozenset({"car"})), Photo(tmp_path / "b.jpg", "b", frozenset({"car"}),
                                                                       shared=True)]
    run = SimpleNamespace(threshold=0.6, photos=photos)
    trial = SimpleNamespace(photos=np.array([0, 1]), scores=np.array([[0.1], [0.9]], np.float32))
    assert stranger_named(run, trial) == 0.0  # the double's name may be its second concept's: not counted


def test_a_top_k_that_reaches_every_concept_in_memory_is_noted(folder_dataset: Path, tmp_path: Path, fake, capsys):
    # at k = 2 blue (1 photo) is skipped: 3 concepts in memory, so P@3 retrieves all of them
    assert main(["eval", "ablate", "--dataset", f"folder:{folder_dataset}", "--refs", "2", "--top-k", "3",
                 "--seeds", "1", "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c"), "--quiet"]) == 0
    assert "--top-k 3 reaches every concept in memory at k=2" in capsys.readouterr().err
    assert main(["eval", "ablate", "--dataset", f"folder:{folder_dataset}", "--refs", "2", "--top-k", "2",
                 "--seeds", "1", "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "c"), "--quiet"]) == 0
    assert "reaches every concept" not in capsys.readouterr().err
