"""The stress split: deterministic composites and downscaled copies with exact boxes."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pekit.errors import InvalidInputError, MissingDependencyError
from pekit.eval.datasets import load_dataset
from pekit.eval.stress import main, make_stress_split
from pekit.images import load_image

# subject -> category; "b" and "b2" share one, as dog and dog2 do
SUBJECTS = {"a": "thing", "b": "pet", "b2": "pet"}


def _photo(seed: int, size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """A smooth gradient with random 16-px colour blocks inside ``box`` (x0, y0, x1, y1)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 200 // w, yy * 200 // h, np.full_like(xx, 60 + 10 * seed)], -1).astype(np.uint8)
    x0, y0, x1, y1 = box
    blocks = rng.integers(0, 256, ((y1 - y0) // 16 + 1, (x1 - x0) // 16 + 1, 3)).astype(np.uint8)
    img[y0:y1, x0:x1] = np.kron(blocks, np.ones((16, 16, 1), np.uint8))[:y1 - y0, :x1 - x0]
    return img


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """3 subjects x 3 photos (200x150 or 150x200) with boxes.csv and classes.csv."""
    root = tmp_path / "src"
    rows = ["subject,file,x0,y0,x1,y1,note"]
    for s, (name, _) in enumerate(SUBJECTS.items()):
        for i in range(3):
            size = (200, 150) if i < 2 else (150, 200)
            box = (20 + 10 * i, 15 + 5 * s, 120 + 10 * i, 130)
            path = root / name / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_photo(10 * s + i, size, box)).save(path)
            rows.append(f"{name},{path.name},{','.join(map(str, box))},")
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    (root / "classes.csv").write_text("subject,class\n" + "".join(f"{k},{v}\n" for k, v in SUBJECTS.items()))
    return root


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _records(out: Path) -> list[dict]:
    return json.loads((out / "manifest.json").read_text())["photos"]


def _boxes(out: Path) -> dict[tuple[str, str], tuple[float, ...]]:
    """(subject, root-relative file) -> box, from the written boxes.csv."""
    with (out / "boxes.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    found = {}
    for r in rows:
        rel = r["file"] if (out / r["file"]).is_file() else f"{r['subject']}/{r['file']}"
        found[(r["subject"], rel)] = tuple(float(r[k]) for k in ("x0", "y0", "x1", "y1"))
    return found


def test_same_seed_same_bytes_other_seed_other_photos(source: Path, tmp_path: Path):
    one = make_stress_split(source, tmp_path / "one", seed=3)
    two = make_stress_split(source, tmp_path / "two", seed=3)
    assert _tree(one) == _tree(two) and len(_tree(one)) > 20
    other = _tree(make_stress_split(source, tmp_path / "other", seed=4))
    stress = [k for k in _tree(one) if k.endswith(".jpg") and "_references" not in k and "px" not in k]
    assert any(other.get(k) != _tree(one)[k] for k in stress)


def test_boxes_inside_the_frame_and_area_in_range(source: Path, tmp_path: Path):
    out = make_stress_split(source, tmp_path / "s", per_photo=2, area=(0.03, 0.20))
    boxes = _boxes(out)
    records = _records(out)
    assert {r["kind"] for r in records} == {"composite", "downscaled"}
    assert len(records) == 9 * 3                       # 2 composites + 1 downscaled per original
    for r in records:
        w, h = Image.open(out / r["file"]).size
        for owner in r["owners"]:
            x0, y0, x1, y1 = boxes[(owner, r["file"])]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (r["file"], owner)
        if r["kind"] == "composite":
            x0, y0, x1, y1 = boxes[(r["subject"], r["file"])]
            assert 0.03 - 1e-3 <= (x1 - x0) * (y1 - y0) / (w * h) <= 0.20 + 1e-3
            assert r["area_fraction"] == pytest.approx((x1 - x0) * (y1 - y0) / (w * h), abs=1e-3)
        else:                                      # originals under 320 px are never enlarged
            assert (w, h) == Image.open(out / r["sources"][0]).size


def test_pasted_box_holds_the_resized_object(source: Path, tmp_path: Path):
    out = make_stress_split(source, tmp_path / "s", per_photo=2)
    boxes = _boxes(out)
    checked = 0
    for r in (r for r in _records(out) if r["kind"] == "composite"):
        fg = r["sources"][0]
        ox0, oy0, ox1, oy1 = (int(v) for v in boxes[(r["subject"], fg)])
        obj = Image.fromarray(load_image(out / fg)[oy0:oy1, ox0:ox1])
        x0, y0, x1, y1 = (round(v) for v in boxes[(r["subject"], r["file"])])
        want = np.asarray(obj.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS), dtype=float)[2:-2, 2:-2]
        got = load_image(out / r["file"]).astype(float)[y0 + 2:y1 - 2, x0 + 2:x1 - 2]
        if r["background"].startswith("skimage:"):
            continue
        before = load_image(out / r["background"]).astype(float)[y0 + 2:y1 - 2, x0 + 2:x1 - 2]
        err, was = np.abs(got - want).mean(), np.abs(before - want).mean()
        assert err < 20 and err < 0.3 * was, (r["file"], err, was)
        checked += 1
    assert checked >= 3


def test_loader_gives_originals_as_references_and_stress_photos_as_positives(source: Path, tmp_path: Path):
    out = make_stress_split(source, tmp_path / "s", scene_share=0.0)
    ds = load_dataset(f"stress:{out}")
    assert ds.layout == "stress" and ds.warnings == [] and load_dataset(str(out)).layout == "stress"
    assert [c.name for c in ds.concepts] == list(SUBJECTS)
    assert {c.name: c.category for c in ds.concepts} == SUBJECTS
    records = {out / r["file"]: r for r in _records(out)}
    for c in ds.concepts:
        assert not c.holdout and len(c.references) == 3
        for ref in c.references:     # byte copies of the originals
            assert ref.read_bytes() == (source / c.name / ref.name).read_bytes() and ref in c.boxes
        assert c.positives and all(p in records and c.name in records[p]["owners"] for p in c.positives)
        assert all(p in c.boxes for p in c.positives)
        assert set(c.sources) == set(c.positives)
    refs = {p for c in ds.concepts for p in c.references}
    for path, r in records.items():
        srcs = ds.concept(r["subject"]).sources[path]
        assert srcs and set(srcs) <= refs
        if r["kind"] == "composite":              # background is another subject's photo here
            bg = out / r["background"]
            assert len(srcs) == 2 and srcs[1] == bg and bg.parent.name != r["subject"]
            owner = bg.parent.name
            if owner in r["owners"]:               # the background subject is a positive too
                assert path in ds.concept(owner).positives and ds.concept(owner).sources[path] == srcs
    assert ds.sources == {p: ds.concept(r["subject"]).sources[p] for p, r in records.items()}
    two = next(p for p, r in records.items() if len(r["owners"]) == 2)
    assert set(ds.boxes_in(two)) == set(records[two]["owners"])
    # the originals are not positives anywhere (holdout=False, never test photos)
    assert not refs & {p for c in ds.concepts for p in c.positives}


def test_small_split_of_dreambooth(dreambooth: Path, tmp_path: Path):
    pytest.importorskip("skimage")
    out = make_stress_split(dreambooth, tmp_path / "small", small=True)
    ds = load_dataset(f"stress:{out}")
    assert [c.name for c in ds.concepts] == ["cat", "dog", "dog2", "teapot"] and ds.warnings == []
    assert ds.concept("dog").category == ds.concept("dog2").category == "dog"
    records = _records(out)
    assert len(records) == 24 and sum(r["background"].startswith("skimage:") for r in records
                                      if r["kind"] == "composite") >= 1
    for c in ds.concepts:
        assert len(c.references) == len(list((dreambooth / c.name).glob("*.jpg")))
    again = make_stress_split(dreambooth, tmp_path / "again", small=True)
    assert _tree(out) == _tree(again)


def test_folder_browsing_of_a_stress_split(source: Path, tmp_path: Path):
    out = make_stress_split(source, tmp_path / "s", scene_share=0.0)
    ds = load_dataset(f"folder:{out}")                   # subject folders hold the stress photos
    assert [c.name for c in ds.concepts] == list(SUBJECTS) and ds.warnings == []
    assert all(set(c.boxes) == set(c.references) for c in ds.concepts)


def test_bad_inputs(source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    with pytest.raises(InvalidInputError, match="not empty"):
        make_stress_split(source, busy)
    assert (busy / "mine.txt").read_text() == "keep me"
    with pytest.raises(InvalidInputError, match="unknown concept"):
        make_stress_split(source, tmp_path / "x", subjects=["zebra"])
    with pytest.raises(InvalidInputError, match="per_photo"):
        make_stress_split(source, tmp_path / "x", area=(0.3, 0.1))
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "skimage", None)
        with pytest.raises(MissingDependencyError, match="pip install scikit-image"):
            make_stress_split(source, tmp_path / "z", scene_share=0.5)
    assert not (tmp_path / "z").exists()
    (source / "boxes.csv").unlink()
    with pytest.raises(InvalidInputError, match=r"boxes\.csv"):
        make_stress_split(source, tmp_path / "y")


def test_rerun_replaces_an_earlier_split(source: Path, tmp_path: Path):
    out = make_stress_split(source, tmp_path / "s", scene_share=0.0, subjects=["a", "b"])
    make_stress_split(source, out, scene_share=0.0, subjects=["b"])
    assert not (out / "a").exists() and [c.name for c in load_dataset(f"stress:{out}").concepts] == ["b"]


def test_reuse_keeps_an_up_to_date_split_and_remakes_a_changed_one(source: Path, tmp_path: Path):
    out = make_stress_split(source, tmp_path / "s", scene_share=0.0)
    before = _tree(out)
    victim = out / _records(out)[0]["file"]
    stamp = victim.stat().st_mtime_ns
    assert make_stress_split(source, out, scene_share=0.0, reuse=True) == out
    assert victim.stat().st_mtime_ns == stamp                    # nothing rewritten
    make_stress_split(source, out, scene_share=0.0, seed=1, reuse=True)
    assert _tree(out) != before                                   # other settings: made again
    victim = out / _records(out)[0]["file"]
    victim.unlink()
    make_stress_split(source, out, scene_share=0.0, seed=1, reuse=True)
    assert victim.is_file()                                       # a missing photo: made again


def test_reuse_remakes_a_split_of_another_source_of_the_same_name(source: Path, tmp_path: Path):
    """A subset copy named like the source, then the whole source, into one folder (what
    benchmarks/recognition.py does with its cache): the subset's split was reused."""
    import shutil

    subset = tmp_path / "copy" / source.name
    shutil.copytree(source / "a", subset / "a")
    shutil.copy(source / "boxes.csv", subset / "boxes.csv")
    out = make_stress_split(subset, tmp_path / "s", scene_share=0.0, reuse=True)
    assert [c.name for c in load_dataset(f"stress:{out}").concepts] == ["a"]
    make_stress_split(source, out, scene_share=0.0, reuse=True)
    assert [c.name for c in load_dataset(f"stress:{out}").concepts] == ["a", "b", "b2"]
    (source / "boxes.csv").write_text((source / "boxes.csv").read_text().replace(",130,", ",131,"))
    victim = out / _records(out)[0]["file"]
    stamp = victim.stat().st_mtime_ns
    make_stress_split(source, out, scene_share=0.0, reuse=True)
    assert victim.stat().st_mtime_ns != stamp                     # a box corrected: made again


def test_cli(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main([str(source), str(tmp_path / "s"), "--no-scenes", "--subjects", "a,b"]) == 0
    assert main([str(source), str(tmp_path / "s"), "--no-scenes", "--subjects", "a,b", "--reuse"]) == 0
    assert "stress:" in capsys.readouterr().out
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "t"), "--no-scenes"]) == 2
    assert "expected the folder layout" in capsys.readouterr().err


@pytest.mark.slow
def test_small_stress_split_end_to_end_with_the_offline_backbone(dreambooth: Path, tmp_path: Path,
                                                                 pipeline) -> None:
    """The CI-size stress split through the real recognition runner: no reference leaks into
    a test photo, and every row carries the box metrics against the exact pasted boxes."""
    from pekit.eval.recognition import run_recognition
    from pekit.eval.summary import summarize

    ds = load_dataset(f"stress:{make_stress_split(dreambooth, tmp_path / 'small', small=True)}")
    run = run_recognition(ds, pipeline, refs=(1,), seeds=2, galleries=("all", "single"), progress=False)
    for trial in run.trials:
        refs = {Path(p) for paths in trial.references.values() for p in paths}
        for i in trial.photos:
            photo = run.photos[int(i)]
            assert not (photo.sources & refs) and photo.path not in refs
            assert photo.boxes                                   # every stress photo has exact boxes
    rows = {r["gallery"]: r for r in summarize(run)}
    assert set(rows) == {"all", "single"}
    for row in rows.values():
        assert row["test_photos"] > 0
        assert row["metrics"]["box iou>=0.5"]["mean"] is not None
    # alone, a concept has nobody to lose to: never fewer detections than among all
    assert rows["single"]["metrics"]["positive"]["mean"] >= rows["all"]["metrics"]["positive"]["mean"]
