"""People benchmark: leave-one-out face identification over ``../shared/data/people``.

    PYTHONPATH=src python benchmarks/people.py [--data ../shared/data/people] [--tolerance 0.5]
        [--faces dlib | onnx:/path/model.onnx]

Prints, for k = 1 and 2 reference photos per person (when a person has that many besides
the query): rank-1 accuracy, and how many queries are named at the tolerance; false names
on the group scenes (faces named as someone not in the scene: target 0); unknown faces
(each person removed from memory in turn, their photos and scene faces queried) named as
someone (target 0); and the same-person / different-person distance ranges that justify
the tolerance. Uses the same `pekit.faces` functions `Personalizer.recognize` uses.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _data import missing

from pekit.faces import FACE_TOLERANCE, FaceGallery, distances, load_faces, match_faces
from pekit.images import list_images, load_image
from pekit.types import Concept

SCENES = {"kit_with_rose": {"kit_harington", "rose_leslie"}, "obama_and_biden": {"obama", "biden"},
          "two_people": {"obama", "biden"}}


def _gallery(refs: dict[str, list[np.ndarray]], fp: str) -> FaceGallery:
    concepts = [Concept(name, np.ones((1, 4)), id=i, meta={"kind": "person", "faces": [v.tolist() for v in vs],
                                                          "face_model": fp})
                for i, (name, vs) in enumerate(refs.items()) if vs]
    return FaceGallery.from_concepts(concepts, fp)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(Path(__file__).parents[1] / ".." / "shared" / "data" / "people"))
    ap.add_argument("--tolerance", type=float, help=f"default: the face model's (dlib: {FACE_TOLERANCE})")
    ap.add_argument("--faces", default="dlib", help="face model: dlib, or onnx:<path> (see pekit.faces.onnx)")
    args = ap.parse_args()
    root = Path(args.data)
    if missing(root):
        return
    faces = load_faces(args.faces)
    if args.tolerance is None:
        args.tolerance = float(faces.tolerance)
    start = time.perf_counter()
    people: dict[str, list[np.ndarray]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "scenes"):
        for path in list_images([folder]):
            img = load_image(str(path))
            found = faces.detect(img)
            if len(found) != 1:
                print(f"  skip {path.name} of {folder.name}: {len(found)} faces")
                continue
            people.setdefault(folder.name, []).append(faces.embed(img, found.xyxy)[0])
    scenes = {}
    for path in list_images([root / "scenes"]):
        img = load_image(str(path))
        found = faces.detect(img)
        scenes[path.stem] = (found, faces.embed(img, found.xyxy))
    seconds = time.perf_counter() - start
    n_faces = sum(len(v) for v in people.values()) + sum(len(f) for f, _ in scenes.values())
    print(f"{len(people)} people, {sum(len(v) for v in people.values())} portraits, {len(scenes)} scenes "
          f"({sum(len(f) for f, _ in scenes.values())} faces); detect+embed {seconds / n_faces:.2f} s/face")

    same = [float(np.linalg.norm(a - b)) for vs in people.values() for i, a in enumerate(vs) for b in vs[i + 1:]]
    diff = [float(np.linalg.norm(a - b)) for n1, v1 in people.items() for n2, v2 in people.items() if n1 < n2
            for a in v1 for b in v2]
    print(f"same-person distance: max {max(same):.3f} (mean {np.mean(same):.3f}, n={len(same)}); "
          f"different people: min {min(diff):.3f} (mean {np.mean(diff):.3f}, n={len(diff)}); "
          f"tolerance {args.tolerance}")

    fp = faces.fingerprint
    for k in (1, 2):
        correct = named = total = 0
        for name, vs in people.items():
            for q in range(len(vs)):
                others = [v for j, v in enumerate(vs) if j != q]
                if len(others) < k:
                    continue
                refs = {n: (others[:k] if n == name else v[:k]) for n, v in people.items()}
                g = _gallery(refs, fp)
                d = distances(vs[q][None], g)[0]
                total += 1
                correct += g.names[int(np.argmin(d))] == name
                named += float(d.min()) <= args.tolerance
        print(f"k={k}: rank-1 {correct}/{total} = {correct / max(total, 1):.3f}; named within tolerance "
              f"{named}/{total}")

    for k in (1, 2):
        g = _gallery({n: v[:k] for n, v in people.items()}, fp)
        false = hits = 0
        for scene, (found, vecs) in scenes.items():
            dets = match_faces(found, vecs, g, tolerance=args.tolerance)
            truth = SCENES.get(scene, set())
            false += sum(str(n) not in truth for n in dets.name)
            hits += sum(str(n) in truth for n in dets.name)
            print(f"  k={k} {scene}: {len(found)} faces, named {sorted(str(n) for n in dets.name)}")
        print(f"k={k} scenes: people found {hits}/{sum(len(SCENES.get(s, ())) for s in scenes)}, false names {false}")

    for k in (1, 2):
        false = queries = 0
        for left in people:
            g = _gallery({n: v[:k] for n, v in people.items() if n != left}, fp)
            for v in people[left]:
                queries += 1
                d = distances(v[None], g)[0]
                false += float(d.min()) <= args.tolerance
            for scene, (found, vecs) in scenes.items():
                if left not in SCENES.get(scene, set()):
                    continue
                dets = match_faces(found, vecs, g, tolerance=args.tolerance)
                truth = SCENES[scene] - {left}
                queries += 1
                false += sum(str(n) not in truth for n in dets.name)
        print(f"k={k} unknown person (left out of memory): named as someone {false} times in {queries} queries")


if __name__ == "__main__":
    main()
