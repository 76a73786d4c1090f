"""Readers of each published dataset layout (used by `pekit.eval.datasets.load_dataset`).

Each ``load_<layout>(root, categories, warnings)`` returns the concepts (and the VQA or
caption items where the release has them) and appends what it skipped to ``warnings``.

Example:
    >>> warnings = []
    >>> concepts = load_folder(Path("../shared/data/dreambooth"), {}, warnings)   # doctest: +SKIP
    >>> concepts[0].name, concepts[0].category                                    # doctest: +SKIP
    ('backpack', 'backpack')
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from pekit.eval.datasets import (
    MYVLM_CAPTIONS,
    Box,
    CaptionItem,
    ConceptData,
    DatasetLayoutError,
    VQAItem,
    _layout_error,
    myvlm_flat_base,
)
from pekit.eval.folders import category_of, images, nfc, read_categories, subdirs

__all__ = ["load_folder", "load_myvlm", "load_stress", "load_thisismy", "load_yollava", "read_boxes"]

_TIM_SPLITS = {"positive": None, "negative (hard)": "Negative (Hard)", "negative (other)": "Negative (Other)",
               "fake": "Fake"}


def _find_base(root: Path, marker: str) -> Path | None:
    """``root`` or one of its direct subfolders that contains ``marker``."""
    for base in (root, *subdirs(root)):
        if (base / marker).exists():
            return base
    return None


def read_boxes(path: Path, root: Path, warnings: list[str]) -> dict[str, dict[Path, Box]]:
    """``{subject: {photo path: (x0, y0, x1, y1)}}`` from a ``boxes.csv``.

    The CSV has a header ``subject,file,x0,y0,x1,y1[,note]``; ``file`` is relative to
    ``root/<subject>/`` or, when that file does not exist, to ``root``. A malformed row (too
    few columns, a coordinate that is not a number, an empty box, a photo that does not
    exist, a second box for the same photo) is skipped with a line in ``warnings``.

    >>> read_boxes(Path("/nonexistent/boxes.csv"), Path("/nonexistent"), [])
    {}
    """
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        warnings.append(f"boxes file '{path}' cannot be read ({exc}); no boxes loaded")
        return {}
    out: dict[str, dict[Path, Box]] = {}
    folders = {nfc(d.name): d.name for d in subdirs(root)}  # a folder copied from macOS may be NFD
    header = [c.strip().lower() for c in rows[0]] if rows else []
    start = 1 if header[:2] == ["subject", "file"] else 0
    for line, row in enumerate(rows[start:], start=start + 1):
        if not row or not any(c.strip() for c in row):
            continue
        where = f"boxes file '{path.name}' line {line}"
        if len(row) < 6:
            warnings.append(f"{where}: expected subject,file,x0,y0,x1,y1[,note], got {row}; row skipped")
            continue
        subject, file = row[0].strip(), row[1].strip()
        subject = folders.get(nfc(subject), subject)
        try:
            x0, y0, x1, y1 = (float(v) for v in row[2:6])
        except ValueError:
            warnings.append(f"{where}: the coordinates {row[2:6]} are not numbers; row skipped")
            continue
        if not all(abs(v) < float("inf") for v in (x0, y0, x1, y1)) or not (x1 > x0 and y1 > y0):
            warnings.append(f"{where}: the box {row[2:6]} is empty (needs x1 > x0 and y1 > y0); row skipped")
            continue
        photo = next((p for p in (root / subject / file, root / file) if p.is_file()), None)
        if photo is None and (root / subject).is_dir():  # a file name decomposed (NFD) on disk
            photo = next((p for p in (root / subject).iterdir() if nfc(p.name) == nfc(file)), None)
        if photo is None:
            warnings.append(f"{where}: no photo '{file}' of '{subject}' under '{root}'; row skipped")
            continue
        boxes = out.setdefault(subject, {})
        if photo in boxes:
            warnings.append(f"{where}: a second box for '{subject}/{file}'; the first one is kept")
            continue
        boxes[photo] = (x0, y0, x1, y1)
    return out


def load_folder(root: Path, table: dict[str, str], warnings: list[str]) -> list[ConceptData]:
    if not root.is_dir():
        raise _layout_error("folder", root, "<concept>/*.jpg")
    table = {**(read_categories(root / "classes.csv") if (root / "classes.csv").is_file() else {}), **table}
    boxes = read_boxes(root / "boxes.csv", root, warnings)
    concepts = []
    for d in subdirs(root):
        photos = images(d)
        if not photos:
            warnings.append(f"folder '{d.name}' holds no images; skipped")
            continue
        listed = set(photos)
        mine = {p: b for p, b in boxes.pop(d.name, {}).items() if p in listed}
        concepts.append(ConceptData(d.name, category_of(d.name, table), tuple(photos), boxes=mine))
    for name in sorted(boxes):
        warnings.append(f"boxes.csv names '{name}', which is not a concept folder here; its boxes are ignored")
    if not concepts:
        raise _layout_error("folder", root, "<concept>/*.jpg")
    return concepts


def load_myvlm(root: Path, table: dict[str, str], warnings: list[str]) -> tuple[list[ConceptData], list[CaptionItem]]:
    """MyVLM as released (``<concept>/*.jpg`` and ``captions.json`` per concept, under ``data/``
    in PeKit's copy: every photo of a concept is a reference candidate, the others its test
    positives, other concepts' photos its negatives), or split for its concept heads
    (``data_concept_head/positives|negatives/<concept>/``, ``data_concept_embedding/<concept>/``
    for the captions)."""
    base = _find_base(root, "data_concept_head/positives")
    if base is None:
        flat = myvlm_flat_base(root)
        if flat is None:
            raise _layout_error("myvlm", root, "<concept>/*.jpg with <concept>/captions.json, or "
                                "data_concept_head/positives/<concept>/*.jpg")
        return _load_myvlm_flat(flat, table, warnings)
    pos_root = base / "data_concept_head" / "positives"
    neg_root = base / "data_concept_head" / "negatives"
    emb_root = base / "data_concept_embedding"
    concepts, captions = [], []
    for d in subdirs(pos_root):
        photos = images(d)
        if not photos:
            warnings.append(f"myvlm: positives/{d.name} holds no images; skipped")
            continue
        negatives = tuple((p, "negatives") for p in images(neg_root / d.name))
        concepts.append(ConceptData(d.name, category_of(d.name, table), tuple(photos), negatives=negatives))
        captions.extend(_myvlm_captions(emb_root / d.name, d.name, d, warnings))
    if not concepts:
        raise _layout_error("myvlm", pos_root, "<concept>/*.jpg")
    loose = images(neg_root)
    if loose:  # negatives are read per concept; photos straight in negatives/ belong to none
        warnings.append(f"myvlm: {len(loose)} photo(s) directly in negatives/ are not read: negatives go in "
                        "negatives/<concept>/, the concept they were chosen against")
    known = {c.name for c in concepts}
    for d in subdirs(neg_root):
        if d.name not in known:
            warnings.append(f"myvlm: negatives/{d.name} matches no positives/ concept; not read")
    return concepts, captions


def _load_myvlm_flat(base: Path, table: dict[str, str], warnings: list[str]) -> tuple[list[ConceptData],
                                                                                      list[CaptionItem]]:
    concepts, captions = [], []
    for d in subdirs(base):
        photos = images(d)
        if not photos:
            warnings.append(f"myvlm: {d.name}/ holds no images; skipped")
            continue
        if not any((d / name).is_file() for name in MYVLM_CAPTIONS):
            warnings.append(f"myvlm: {d.name}/ has no captions.json; its photos are read, it has no captions")
        concepts.append(ConceptData(d.name, category_of(d.name, table), tuple(photos)))
        captions.extend(_myvlm_captions(d, d.name, d, warnings))
    return concepts, captions


def _json_object(path: Path, what: str) -> dict:
    """A JSON file holding one object (``what`` says what it should map, for the error)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # (JSONDecodeError, and UnicodeDecodeError for bytes that are not text)
        raise DatasetLayoutError(f"'{path}' is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetLayoutError(f"'{path}' must map {what}, got {type(data).__name__}")
    return data


def _myvlm_captions(folder: Path, concept: str, positives: Path, warnings: list[str]) -> list[CaptionItem]:
    for name in MYVLM_CAPTIONS:
        path = folder / name
        if path.is_file():
            break
    else:
        return []
    data = _json_object(path, "image names to lists of captions")
    items = []
    for key, caps in data.items():
        caps = [caps] if isinstance(caps, str) else list(caps or [])
        image = next((p for p in (folder / key, positives / Path(key).name) if p.is_file()), None)
        if image is None:
            warnings.append(f"myvlm: {path.name} of '{concept}' names a missing image '{key}'; skipped")
            continue
        if caps:
            items.append(CaptionItem(concept, image, tuple(str(c) for c in caps)))
    return items


def load_yollava(root: Path, table: dict[str, str], warnings: list[str]) -> tuple[list[ConceptData], list[VQAItem]]:
    base = _find_base(root, "train")
    if base is None or not (base / "test").is_dir():
        raise _layout_error("yollava", root, "train/<concept>/*.png and test/<concept>/*.png")
    concepts = []
    for d in subdirs(base / "train"):
        refs = images(d)
        tests = images(base / "test" / d.name)
        if not refs:
            warnings.append(f"yollava: train/{d.name} holds no images; skipped")
            continue
        if not tests:
            warnings.append(f"yollava: '{d.name}' has no test/{d.name} photos")
        concepts.append(ConceptData(d.name, category_of(d.name, table), tuple(refs), tuple(tests), holdout=False))
    if not concepts:
        raise _layout_error("yollava", base / "train", "<concept>/*.png")
    names = {c.name for c in concepts}
    qa = next((p for p in (base / "yollava-visual-qa.json", root / "yollava-visual-qa.json") if p.is_file()), None)
    items = _yollava_vqa(qa, base, names, warnings) if qa else []
    return concepts, items


def _resolve(base: Path, raw: str, concept: str) -> Path | None:
    """A release path such as ``./yollava-data/test/bo/3.png`` under ``base``, whatever its prefix."""
    parts = [p for p in Path(raw.replace("\\", "/")).parts if p not in (".", "/")]
    for i in range(len(parts)):
        candidate = base.joinpath(*parts[i:])
        if candidate.is_file():
            return candidate
    fallback = base / "test" / concept / Path(raw).name
    return fallback if fallback.is_file() else None


def _yollava_vqa(path: Path, base: Path, names: set[str], warnings: list[str]) -> list[VQAItem]:
    data = _json_object(path, "concepts to {image: question}")
    items = []
    sks = re.compile(r"<sks>|\bsks\b")  # the release writes "<sks>"; older copies a bare "sks"
    for concept, questions in data.items():
        if concept not in names:
            warnings.append(f"yollava: questions about unknown concept '{concept}' skipped")
            continue
        for raw, q in (questions or {}).items():
            qs = q if isinstance(q, list) else [q]
            image = _resolve(base, raw, concept)
            if image is None:
                warnings.append(f"yollava: image '{raw}' of a '{concept}' question not found; skipped")
                continue
            for one in qs:
                try:
                    options = {str(k).strip().upper(): sks.sub(concept, str(v)) for k, v in one["options"].items()}
                    answer = str(one["correct_answer"]).strip().upper()
                    if answer not in options:
                        warnings.append(f"yollava: the answer '{answer}' of a '{concept}' question on '{raw}' is none "
                                        f"of its options {sorted(options)}; skipped")
                        continue
                    items.append(VQAItem(concept, image, sks.sub(concept, str(one["question"])), options, answer))
                except (KeyError, TypeError, AttributeError) as exc:
                    raise DatasetLayoutError(
                        f"'{path}': the question for '{raw}' needs 'question', 'options' and 'correct_answer', "
                        f"got {one!r}") from exc
    return items


def _norm(name: str) -> str:
    return " ".join(name.lower().split())


#: a This-Is-My-Img positive that shows a second concept too (PeKit's evaluation reads its name)
_TIM_DOUBLE = re.compile(r"_double$", re.IGNORECASE)


def _tim_subset(root: Path, warnings: list[str]) -> Path | None:
    """The This-Is-My-Img subset to read: ``root`` itself when it is one (it holds ``Reference
    Images/`` or ``train/``: ``thisismy:.../Multi-concept``), else the ``Single-concept`` of
    ``root`` or of one of its subfolders (the ``Multi-concept`` beside it is said, not read)."""
    if {_norm(d.name) for d in subdirs(root)} & {"reference images", "train"}:
        return root
    base = _find_base(root, "Single-concept")
    if base is None:
        multi = _find_base(root, "Multi-concept")
        return None if multi is None else multi / "Multi-concept"
    if (base / "Multi-concept").is_dir():
        warnings.append(f"thisismy: the multi-concept subset is a separate benchmark, not read with the "
                        f"single-concept one; evaluate it with --dataset thisismy:{base / 'Multi-concept'}")
    return base / "Single-concept"


def load_thisismy(root: Path, table: dict[str, str], warnings: list[str]) -> list[ConceptData]:
    """This-Is-My-Img's single-concept subset (or the subset ``root`` names): references from
    ``Reference Images/`` (``train/`` in PeKit's copy), test photos from ``Validation/`` (``test/``)
    by split: ``positive/<concept>/`` (a ``*_double`` photo shows a second concept too),
    ``Negative (Hard)``, ``Negative (Other)`` and ``Fake``, and, in the multi-concept subset,
    ``<A>_and_<B>/`` (photos of both)."""
    expected = ("Single-concept/Reference Images/<concept>/ and Single-concept/Validation/<split>/<concept>/ "
                "(or Single-concept/train/ and test/)")
    subset = _tim_subset(root, warnings)
    if subset is None:
        raise _layout_error("thisismy", root, expected)
    dirs = {_norm(d.name): d for d in subdirs(subset)}
    refs_dir = dirs.get("reference images") or dirs.get("train")
    tests_dir = dirs.get("validation") or dirs.get("test") or subset / "Validation"
    if refs_dir is None:
        raise _layout_error("thisismy", subset, "Reference Images/<concept>/ (or train/<concept>/)")
    refs = {d.name: images(d) for d in subdirs(refs_dir)}
    known = {_norm(n): n for n in refs}
    # a reference folder named "<concept>-<kind>" ("Sherry-woman") where a pair folder says "Sherry"
    cut = [(_norm(n.rsplit("-", 1)[0]), n) for n in refs if "-" in n]
    known.update({key: n for key, n in cut if key not in known and [k for k, _ in cut].count(key) == 1})
    positives: dict[str, list[Path]] = {}
    negatives: dict[str, list[tuple[Path, str]]] = {}
    shared: dict[str, list[Path]] = {}
    for split_dir in subdirs(tests_dir):
        key = _norm(split_dir.name)
        if key in _TIM_SPLITS:
            for d in subdirs(split_dir):
                photos = images(d)
                # a test folder named "<concept>-<category>" (PeKit's loader cuts at the "-"): its concept
                name = d.name if d.name in refs else known.get(_norm(d.name)) or known.get(
                    _norm(d.name.rsplit("-", 1)[0]), d.name)
                if _TIM_SPLITS[key] is None:
                    positives.setdefault(name, []).extend(photos)
                    shared.setdefault(name, []).extend(p for p in photos if _TIM_DOUBLE.search(p.stem))
                else:
                    negatives.setdefault(name, []).extend((p, _TIM_SPLITS[key]) for p in photos)  # type: ignore[misc]
            continue
        pair = [known.get(_norm(n), "") for n in split_dir.name.split("_and_")]
        if len(pair) < 2 or not all(pair):
            warnings.append(f"thisismy: unknown validation split '{split_dir.name}' skipped")
            continue
        photos = images(split_dir)  # a multi-concept photo: a positive of each concept it names
        for member in pair:
            positives.setdefault(member, []).extend(photos)
    for name in sorted((set(positives) | set(negatives)) - set(refs)):
        warnings.append(f"thisismy: '{name}' has validation photos but no Reference Images; skipped")
    concepts = [ConceptData(n, category_of(n, table), tuple(sorted(set(r))), tuple(sorted(set(positives.get(n, [])))),
                            holdout=False, negatives=tuple(sorted(set(negatives.get(n, [])))),
                            shared=tuple(sorted(set(shared.get(n, [])))))
                for n, r in sorted(refs.items()) if r]
    if not concepts:
        raise _layout_error("thisismy", refs_dir, "<concept>/*.jpg")
    return concepts


def load_stress(root: Path, table: dict[str, str], warnings: list[str]) -> list[ConceptData]:
    """A split written by `pekit.eval.stress.make_stress_split` (see that module).

    References are the originals in ``_references/<concept>/`` (``holdout=False``: an
    original that is not drawn is not a test photo); positives are the stress photos whose
    ``boxes.csv`` rows name the concept; ``sources`` come from ``manifest.json``.
    """
    refs_root = root / "_references"
    if not (root / "manifest.json").is_file() or not refs_root.is_dir():
        raise _layout_error("stress", root, "manifest.json and _references/<concept>/*.jpg, as written by "
                            "python -m pekit.eval.stress")
    manifest = _json_object(root / "manifest.json", "the stress split's settings and photos")
    table = {**(read_categories(root / "classes.csv") if (root / "classes.csv").is_file() else {}), **table}
    boxes = read_boxes(root / "boxes.csv", root, warnings)
    sources: dict[Path, tuple[Path, ...]] = {}
    for rec in manifest.get("photos") or []:
        try:
            sources[root / rec["file"]] = tuple(root / s for s in rec.get("sources", ()))
        except (KeyError, TypeError) as exc:
            raise DatasetLayoutError(f"'{root / 'manifest.json'}': every photo record needs a 'file', "
                                     f"got {rec!r}") from exc
    concepts = []
    for d in subdirs(refs_root):
        refs = images(d)
        if not refs:
            warnings.append(f"stress: _references/{d.name} holds no images; skipped")
            continue
        mine = boxes.pop(d.name, {})
        positives = sorted(p for p in mine if p.parent != d)
        unboxed = [p for p in images(root / d.name) if p not in mine]
        if unboxed:
            warnings.append(f"stress: {len(unboxed)} photo(s) in '{d.name}/' have no box in boxes.csv; "
                            "they are positives without a box")
        positives = sorted({*positives, *unboxed})
        if not positives:
            warnings.append(f"stress: '{d.name}' has no stress photos")
        concepts.append(ConceptData(d.name, category_of(d.name, table), tuple(refs), tuple(positives), holdout=False,
                                    boxes=mine, sources={p: sources[p] for p in positives if p in sources}))
    for name in sorted(boxes):
        warnings.append(f"stress: boxes.csv names '{name}', which has no _references/{name}/; its boxes are ignored")
    if not concepts:
        raise _layout_error("stress", refs_root, "<concept>/*.jpg")
    return concepts
