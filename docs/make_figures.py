"""Draw the "How it works" figures with pekit itself (the offline preset, no network).

    python docs/make_figures.py                  # DreamBooth photos if ../shared/data/dreambooth exists
    python docs/make_figures.py --source skimage # scikit-image's bundled sample photos

Writes into ``docs/figures/``: ``1-reference.jpg`` (a reference view's region),
``2-proposals.jpg`` (the class-agnostic proposals of a query photo), ``3-heatmap.jpg``
(cosine similarity of every query patch to the concept's view embedding),
``4-answer.jpg`` (the annotated image an LVLM gets), ``prompt.txt`` (the prompt that goes
with it) and ``source.txt`` (where the photos come from). The images are small JPEGs
(480 px wide, 720 for the two-panel heat map) committed to the repository, so building the docs needs no data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
DREAMBOOTH = ROOT / ".." / "shared" / "data" / "dreambooth"
OUT = ROOT / "docs" / "figures"
QUESTION = "What is Bo doing?"


def _box(root: Path, subject: str, file: str) -> list[float]:
    """The hand-drawn box of one photo from the dataset's ``boxes.csv``."""
    import csv

    with open(root / "boxes.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["subject"] == subject and row["file"] == file:
                return [float(row[k]) for k in ("x0", "y0", "x1", "y1")]
    raise KeyError(f"{subject}/{file} is not in {root / 'boxes.csv'}")


def dreambooth_photos(root: Path) -> dict:
    from pekit.images import load_image

    refs = ["00.jpg", "01.jpg"]
    return {
        "name": "Bo", "category": "dog", "context": "my parents' dog, loves the beach",
        "references": [load_image(root / "dog3" / f) for f in refs],
        "boxes": [_box(root, "dog3", f) for f in refs],
        "other": ("Pip", [load_image(root / "dog6" / f) for f in ("01.jpg", "02.jpg")], "dog"),
        "query": load_image(root / "dog3" / "03.jpg"),
        "source": "DreamBooth dataset (Ruiz et al., CVPR 2023, CC BY 4.0): Bo is introduced from dog3/00.jpg "
                  "and dog3/01.jpg with their boxes (photos by Yael Pritch), Pip, another dog, from "
                  "dog6/01.jpg and dog6/02.jpg (Unsplash, @alvannee); the query is dog3/03.jpg.",
    }


def skimage_photos() -> dict:
    from skimage import data

    cat = data.chelsea()
    scene = data.astronaut().copy()
    small = np.asarray(Image.fromarray(cat[:, ::-1]).resize((360, 240), Image.Resampling.LANCZOS))
    scene[260:500, 140:500] = small  # the same cat, mirrored and smaller, in another photo
    return {
        "name": "Bo", "category": "cat", "context": "my sister's cat, sleeps on the piano",
        "references": [cat], "boxes": None, "query": scene,
        "other": ("Mug", [data.coffee()], "cup"),
        "source": "scikit-image sample photos: Bo is introduced from `chelsea`, Mug from `coffee`; the "
                  "query is `chelsea` pasted, mirrored and smaller, into `astronaut`.",
    }


def _save(image: np.ndarray | Image.Image, path: Path, width: int = 480) -> None:
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    if pil.width > width:
        pil = pil.resize((width, round(pil.height * width / pil.width)), Image.Resampling.LANCZOS)
    pil.convert("RGB").save(path, quality=82, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


def _upsample(grid_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` float map -> ``(H, W)`` for an image of ``size`` = (W, H), bilinear."""
    pil = Image.fromarray(grid_map.astype(np.float32), mode="F")
    return np.asarray(pil.resize(size, Image.Resampling.BILINEAR), np.float32)


def _tint(image: np.ndarray, values: np.ndarray, *, lo: float, hi: float, alpha: float = 0.55) -> np.ndarray:
    """Blend a magma colour map of ``values`` (clipped to [lo, hi]) over ``image``."""
    from matplotlib import colormaps

    unit = np.clip((values - lo) / max(hi - lo, 1e-6), 0, 1)
    heat = colormaps["magma"](unit)[..., :3] * 255
    return (image * (1 - alpha) + heat * alpha).clip(0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=["auto", "dreambooth", "skimage"], default="auto")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    use_db = args.source == "dreambooth" or (args.source == "auto" and DREAMBOOTH.is_dir())
    photos = dreambooth_photos(DREAMBOOTH.resolve()) if use_db else skimage_photos()
    args.out.mkdir(parents=True, exist_ok=True)

    from pekit import Personalizer
    from pekit.embed.pooling import l2_normalize, pool
    from pekit.types import Detections

    p = Personalizer(memory="memory://")
    pipe = p.pipeline

    # 1. a reference view: the object's region on the reference photo's own patch grid
    ref = photos["references"][0]
    box = None if photos["boxes"] is None else np.asarray(photos["boxes"][0], np.float32)
    view = pipe.reference(pipe.encode(ref), box=box, image=ref, category=photos["category"])
    h, w = ref.shape[:2]
    region = _upsample(view.weights, (w, h))
    shown = (ref * (0.35 + 0.65 * region[..., None])).astype(np.uint8)  # outside the view is dimmed
    fig1 = Image.fromarray(shown)
    draw = ImageDraw.Draw(fig1)
    if box is not None:  # the user's box (white), then the region pekit keeps inside it (yellow)
        draw.rectangle([round(float(v)) for v in box], outline=(255, 255, 255), width=4)
    draw.rectangle([round(float(v)) for v in view.xyxy], outline=(255, 196, 0), width=4)
    _save(fig1, args.out / "1-reference.jpg", width=480)

    # introduce the concept from all reference photos (one pass each)
    concept = p.introduce(photos["name"], photos["references"], category=photos["category"],
                          context=photos["context"], boxes=photos["boxes"])
    other_name, other_refs, other_category = photos["other"]
    other = p.introduce(other_name, other_refs, category=other_category)

    # 2. proposals of the query photo, all from its one grid
    query = photos["query"]
    grid = pipe.encode(query)
    props = pipe.proposals(grid, image=query)
    # every proposal thin and grey; the five that match the concept best, thick and labelled
    scores = (pool(grid, props.weights) @ concept.views.T).max(1)
    best = np.argsort(-scores)[:5]
    fig2 = Image.fromarray((query * 0.8).astype(np.uint8))
    draw = ImageDraw.Draw(fig2)
    for box in props.xyxy:
        draw.rectangle([round(float(v)) for v in box], outline=(200, 200, 200), width=1)
    for rank, i in enumerate(best[::-1]):
        x0, y0, x1, y1 = (round(float(v)) for v in props.xyxy[i])
        colour = (255, 196, 0) if rank == len(best) - 1 else (0, 200, 255)
        draw.rectangle((x0, y0, x1, y1), outline=colour, width=4)
        draw.text((x0 + 6, y0 + 4), f"{scores[i]:.2f}", fill=colour, font_size=max(14, query.shape[0] // 30))
    _save(fig2, args.out / "2-proposals.jpg")

    # 3. the match heat map: each query patch's cosine similarity to the concept's views
    # (left: to the concept asked about; right: to the other concept in the memory, same scale)
    patches = l2_normalize(grid.features.reshape(-1, grid.dim))
    maps = [(patches @ c.views.T).max(1).reshape(grid.shape) for c in (concept, other)]
    qh, qw = query.shape[:2]
    top = float(max(m.max() for m in maps))
    panels = [_tint(query, _upsample(m, (qw, qh)), lo=0.0, hi=top) for m in maps]
    gap = np.full((qh, max(4, qw // 60), 3), 255, np.uint8)
    _save(np.concatenate([panels[0], gap, panels[1]], axis=1), args.out / "3-heatmap.jpg", width=720)

    # 4. the answer: coloured, named boxes and the prompt the LVLM gets
    answer = p.ask(query, QUESTION)
    assert answer.image is not None
    _save(answer.image, args.out / "4-answer.jpg")
    dets: Detections = answer.detections
    found = ", ".join(f"{n} {s:.2f}" for n, s in zip(dets.name, dets.score, strict=True)) or "nothing"
    (args.out / "prompt.txt").write_text(answer.prompt.strip() + "\n", encoding="utf-8")
    (args.out / "source.txt").write_text(
        f"{photos['source']} {len(props)} proposals; recognized: {found}; highest patch similarity "
        f"to {concept.name} {maps[0].max():.2f}, to {other.name} {maps[1].max():.2f}. "
        f"Made by `python docs/make_figures.py`.\n", encoding="utf-8")
    print(f"{len(props)} proposals; recognized {found}")
    p.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
