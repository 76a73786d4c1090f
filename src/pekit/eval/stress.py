"""The stress split: DreamBooth-style photos made hard on purpose, with exact boxes.

`make_stress_split` reads a ``folder:`` dataset that has a ``boxes.csv`` (one box of the
subject per photo, e.g. ``../shared/data/dreambooth``) and writes, deterministically from
``seed`` and the file names:

* **composites**: each original photo's object, cut out with a feathered rectangle around
  its box (plus a small margin), shrunk so that its box covers 3-20 % of the new frame (the
  fraction drawn uniformly in log space), and pasted into another subject's photo (where it
  hides as little of that subject's box as possible; that subject is an owner of the photo
  too, with its box cut down where the paste covers a whole side) or into a scikit-image
  sample scene (`SCENES`), away from its main object where it can;
* **downscaled** copies: each original photo at 320 px on the long side.

Layout written (also browsable as plain folders)::

    OUT/manifest.json            settings and one record per stress photo (kind, sources, ...)
    OUT/classes.csv              subject,class
    OUT/boxes.csv                subject,file,x0,y0,x1,y1,note (references and stress photos)
    OUT/_references/<subject>/   byte copies of the original photos (the references)
    OUT/<subject>/               the stress photos showing <subject>'s object

``load_dataset("stress:OUT")`` gives per subject: ``references`` = the originals,
``holdout=False``, ``positives`` = every stress photo showing it (composites appear under
both their pasted subject and their background subject), ``boxes`` for all of them and
``sources`` mapping each stress photo to the originals it was made from.

Example:
    >>> out = make_stress_split("../shared/data/dreambooth", "/tmp/stress", small=True)  # doctest: +SKIP
    >>> load_dataset(f"stress:{out}").concepts[0].positives[:1]                           # doctest: +SKIP
    (PosixPath('/tmp/stress/cat/00_320px.jpg'),)

CLI: ``python -m pekit.eval.stress SRC OUT [--small] [--seed N] [--subjects a,b,...] [--reuse]``.
The bytes are the same for the same seed and options (on the same Pillow / libjpeg build).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import logging
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pekit.errors import InvalidInputError, MissingDependencyError, PekitError
from pekit.eval.compose import box_area, composite, downscale, overlap, visible_box
from pekit.eval.datasets import Box, ConceptData, load_dataset
from pekit.images import load_image

log = logging.getLogger(__name__)

__all__ = ["GENERATOR", "SCENES", "SMALL_SUBJECTS", "main", "make_stress_split"]

GENERATOR = "pekit-stress/1"
#: Natural RGB photos that ship inside the scikit-image wheel (no download): name -> loader.
SCENES = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle")
# The main object of each scene, by eye (xyxy px): where pastes should not go. Placement
# only, never ground truth (chelsea is a cat's face filling the frame: no free spot).
_SCENE_AVOID: dict[str, Box | None] = {
    "astronaut": (150.0, 20.0, 300.0, 200.0),    # her face
    "coffee": (75.0, 55.0, 480.0, 395.0),        # cup and saucer
    "chelsea": None,
    "rocket": (285.0, 120.0, 345.0, 427.0),      # the rocket
    "motorcycle": (95.0, 75.0, 690.0, 455.0),    # the motorcycle
}
#: The CI-size split: two subjects of one category (dog, dog2) plus a cat and a teapot.
SMALL_SUBJECTS = ("cat", "dog", "dog2", "teapot")
_MANIFEST = "manifest.json"
_REFS = "_references"


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode("utf-8")) for n in names)])


def _scene(name: str) -> np.ndarray:
    try:
        from skimage import data
    except ImportError as exc:
        raise MissingDependencyError("the stress split pastes objects into scikit-image sample scenes: "
                                     "pip install scikit-image (or pass scenes=() / --no-scenes)") from exc
    if name == "motorcycle":
        return np.ascontiguousarray(data.stereo_motorcycle()[0])
    if name not in SCENES:
        raise InvalidInputError(f"unknown scene '{name}'; choose from {', '.join(SCENES)}")
    return np.ascontiguousarray(getattr(data, name)())


def _jpeg(image: np.ndarray, path: Path, quality: int) -> None:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def _prepare(out: Path) -> None:
    """Empty ``out`` if it holds an earlier stress split; refuse any other non-empty folder."""
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"'{out}' is a file; give a folder for the stress split")
    if out.is_dir() and any(out.iterdir()):
        try:
            ours = json.loads((out / _MANIFEST).read_text(encoding="utf-8")).get("generator") == GENERATOR
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise InvalidInputError(f"'{out}' is not empty and holds no stress split; give a new or empty folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _source_digest(src: Path) -> str:
    """What a reused split must have been made from: the source's concept folders (each file's
    name and size) and the bytes of its ``boxes.csv`` and ``classes.csv``. Two sources of the
    same folder name (a subset copy of ``dreambooth`` and the whole set) differ here."""
    h = hashlib.sha1()
    if not src.is_dir():
        return ""  # no source: load_dataset below says what is missing
    for folder in sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            h.update(f"{folder.name}/{f.name}:{f.stat().st_size}\n".encode())
    for name in ("boxes.csv", "classes.csv"):
        h.update(f"{name}\0".encode())
        if (src / name).is_file():
            h.update((src / name).read_bytes())
    return h.hexdigest()


def _same_split(out: Path, settings: dict) -> bool:
    try:
        manifest = json.loads((out / _MANIFEST).read_text(encoding="utf-8"))
        same = all(manifest.get(k) == v for k, v in settings.items())
        return same and all((out / r["file"]).is_file() for r in manifest["photos"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _fmt(box: Sequence[float]) -> list[str]:
    return [f"{v:.1f}" for v in box]


def make_stress_split(source_root: str | Path, out_dir: str | Path, *, seed: int = 0,
                      subjects: Sequence[str] | None = None, small: bool = False, per_photo: int = 1,
                      scene_share: float = 0.5, scenes: Sequence[str] = SCENES,
                      area: tuple[float, float] = (0.03, 0.20), downscale_to: int | None = 320,
                      max_sources: int | None = None, quality: int = 90, reuse: bool = False,
                      progress: Callable[[str], None] | None = None) -> Path:
    """Write the stress split of ``source_root`` (a ``folder:`` dataset with ``boxes.csv``) to ``out_dir``.

    Args:
        seed: every draw comes from ``seed`` and the file names: same inputs, same bytes.
        subjects: only these subjects (all when ``None``); ``small=True`` picks `SMALL_SUBJECTS`
            with ``max_sources=3`` (24 stress photos, the CI size) unless given.
        per_photo: composites made from each original photo.
        scene_share: chance that a composite's background is a scikit-image scene rather
            than another subject's photo (``0`` or ``scenes=()`` needs no scikit-image).
        area: range of the pasted box's share of the frame (log-uniform).
        downscale_to: also write each original at this long side (``None``: no such copies).
        max_sources: make stress photos from only the first N originals of each subject
            (all originals stay references and backgrounds).
        quality: JPEG quality of the written photos.
        reuse: return ``out_dir`` untouched when it already holds a split made with the same
            settings from the same source (the same photo names and sizes, ``boxes.csv`` and
            ``classes.csv``) and every listed photo is present.

    Returns:
        ``out_dir``; load it with ``load_dataset(f"stress:{out_dir}")``.

    Raises:
        DatasetLayoutError: ``source_root`` is not a folder dataset.
        InvalidInputError: no usable boxes, unknown subjects, bad options, ``out_dir`` is a
            non-empty folder that is not a stress split.
        MissingDependencyError: scenes are asked for and scikit-image is not installed.
    """
    t0 = time.perf_counter()
    if per_photo < 0 or not 0.0 <= scene_share <= 1.0 or not 0 < area[0] <= area[1] < 1:
        raise InvalidInputError(f"bad stress options: per_photo={per_photo} (>= 0), scene_share={scene_share} "
                                f"(0..1), area={area} (0 < low <= high < 1)")
    if small:
        subjects = SMALL_SUBJECTS if subjects is None else subjects
        max_sources = 3 if max_sources is None else max_sources
    src = Path(source_root).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    settings = {"generator": GENERATOR, "source": src.name, "source_digest": _source_digest(src), "seed": seed,
                "requested_subjects": None if subjects is None else list(subjects), "per_photo": per_photo,
                "scene_share": scene_share, "scenes": list(scenes) if scene_share > 0 else [], "area": list(area),
                "downscale_to": downscale_to, "max_sources": max_sources, "quality": quality}
    if reuse and _same_split(out, settings):
        log.info("stress split at %s is up to date; reused", out)
        return out
    ds = load_dataset(f"folder:{src}", concepts=subjects)
    concepts = [c for c in ds.concepts if c.boxes]
    if not concepts:
        raise InvalidInputError(f"'{src}' has no boxes.csv with boxes of the chosen subjects; the stress split "
                                "needs one box per photo (subject,file,x0,y0,x1,y1)")
    skipped = [c.name for c in ds.concepts if not c.boxes]
    scenes = tuple(scenes) if scene_share > 0 else ()
    scene_images = {name: _scene(name) for name in scenes}
    use_scenes = bool(scene_images) and scene_share > 0
    _prepare(out)

    box_rows: list[list[str]] = []
    records: list[dict] = []
    ref_of: dict[Path, str] = {}
    for c in concepts:
        for p in c.references:
            rel = f"{_REFS}/{c.name}/{p.name}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, out / rel)
            ref_of[p] = rel
            if p in c.boxes:
                box_rows.append([c.name, rel, *_fmt(c.boxes[p]), "original"])
    backgrounds = [(c, p) for c in concepts for p in c.references if p in c.boxes]

    def write(c: ConceptData, name: str, image: np.ndarray, record: dict, boxes: dict[str, Box]) -> None:
        rel = f"{c.name}/{name}"
        _jpeg(image, out / rel, quality)
        for owner, b in boxes.items():
            file = name if owner == c.name else rel
            note = "pasted object" if owner == c.name and record["kind"] == "composite" else record["kind"]
            box_rows.append([owner, file, *_fmt(b), note])
        records.append({"file": rel, "subject": c.name, "owners": list(boxes), **record})

    for c in concepts:
        originals = [p for p in c.references if p in c.boxes][:max_sources]
        for p in originals:
            photo = load_image(p)
            box = c.boxes[p]
            stem = p.stem
            for j in range(per_photo):
                rng = _rng(seed, c.name, p.name, str(j))
                others = [(o, q) for o, q in backgrounds if o.name != c.name]
                if use_scenes and (not others or rng.random() < scene_share):
                    scene = scenes[int(rng.integers(len(scenes)))]
                    image, place = composite(scene_images[scene], photo, box, rng, area=area,
                                             avoid=_SCENE_AVOID.get(scene))
                    suffix = f"_{j}" if j else ""
                    write(c, f"{stem}_in_{scene}{suffix}.jpg", image,
                          {"kind": "composite", "background": f"skimage:{scene}",
                           "sources": [ref_of[p]], "area_fraction": round(place.area_fraction, 4),
                           "scale": round(place.scale, 4)}, {c.name: place.box})
                    continue
                if not others:
                    continue
                best = None
                for _ in range(8):      # a background whose subject stays mostly visible
                    o, q = others[int(rng.integers(len(others)))]
                    image, place = composite(load_image(q), photo, box, rng, area=area, avoid=o.boxes[q])
                    seen = visible_box(o.boxes[q], place.rect)
                    share = overlap(place.rect, o.boxes[q]) / box_area(o.boxes[q])
                    if best is None or share < best[0]:
                        best = (share, o, q, image, place, seen)
                    if share <= 0.25:
                        break
                assert best is not None
                _, o, q, image, place, seen = best
                boxes = {c.name: place.box}
                if seen is not None:
                    boxes[o.name] = seen
                suffix = f"_{j}" if j else ""
                write(c, f"{stem}_in_{o.name}_{q.stem}{suffix}.jpg", image,
                      {"kind": "composite", "background": ref_of[q], "sources": [ref_of[p], ref_of[q]],
                       "area_fraction": round(place.area_fraction, 4), "scale": round(place.scale, 4)}, boxes)
            if downscale_to:
                small_img, small_box = downscale(photo, box, long_side=downscale_to)
                write(c, f"{stem}_{downscale_to}px.jpg", small_img,
                      {"kind": "downscaled", "sources": [ref_of[p]],
                       "area_fraction": round(box_area(small_box) / (small_img.shape[0] * small_img.shape[1]), 4),
                       "scale": round(small_img.shape[1] / photo.shape[1], 4)}, {c.name: small_box})
        if progress is not None:
            progress(c.name)

    with (out / "boxes.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["subject", "file", "x0", "y0", "x1", "y1", "note"])
        writer.writerows(box_rows)
    with (out / "classes.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["subject", "class"])
        writer.writerows([c.name, c.category] for c in concepts)
    manifest = {**settings, "subjects": [c.name for c in concepts], "skipped_subjects": skipped,
                "photos": records}
    (out / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    log.info("stress split: %d photos of %d subjects in %.1f s -> %s", len(records), len(concepts),
             time.perf_counter() - t0, out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pekit.eval.stress SRC OUT [--small] [--seed N] [--subjects a,b] [--no-scenes] [--reuse]``."""
    ap = argparse.ArgumentParser(prog="python -m pekit.eval.stress", description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="a folder dataset with boxes.csv, e.g. ../shared/data/dreambooth")
    ap.add_argument("out", help="folder to write the split to (emptied if it holds an earlier split)")
    ap.add_argument("--small", action="store_true", help=f"CI size: {', '.join(SMALL_SUBJECTS)}, 3 photos each")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--subjects", help="comma-separated subjects (default: all)")
    ap.add_argument("--per-photo", type=int, default=1, help="composites per original photo (default 1)")
    ap.add_argument("--no-scenes", action="store_true", help="paste into subjects' photos only (no scikit-image)")
    ap.add_argument("--reuse", action="store_true", help="keep OUT when it already holds this very split")
    args = ap.parse_args(argv)
    subjects = [s.strip() for s in args.subjects.split(",") if s.strip()] if args.subjects else None
    t0 = time.perf_counter()
    try:
        out = make_stress_split(args.source, args.out, seed=args.seed, subjects=subjects, small=args.small,
                                per_photo=args.per_photo, scene_share=0.0 if args.no_scenes else 0.5,
                                reuse=args.reuse)
    except PekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    n = len(json.loads((out / _MANIFEST).read_text(encoding="utf-8"))["photos"])
    print(f"{n} stress photos in {out} ({time.perf_counter() - t0:.1f} s); "
          f"evaluate with --dataset stress:{out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
