"""Dataset loaders for the published personalization benchmarks, as released.

A dataset spec is ``<layout>:<path>`` (or a bare path, whose layout is detected):

* ``folder:`` any ``<concept>/*.jpg`` tree with an optional ``classes.csv``
  (``subject,class``) and an optional ``boxes.csv`` (``subject,file,x0,y0,x1,y1,note``: the
  box of the subject in each photo), e.g. ``../shared/data/dreambooth``;
* ``myvlm:`` the MyVLM release: ``<concept>/*.jpg`` with ``<concept>/captions.json`` (or
  ``captions_augmented.json``), under ``data/`` in PeKit's copy; or split for MyVLM's concept
  heads: ``data_concept_head/positives/<concept>/*.jpg``, optional
  ``data_concept_head/negatives/<concept>/*.jpg`` and ``data_concept_embedding/<concept>/``
  with the captions;
* ``yollava:`` the Yo'LLaVA release: ``train/<concept>/*.png``, ``test/<concept>/*.png`` and
  ``yollava-visual-qa.json`` (A/B questions, ``sks`` stands for the concept's name);
* ``thisismy:`` This-Is-My-Img: ``Single-concept/Reference Images/<concept>/`` and
  ``Single-concept/Validation/{positive,Negative (Hard),Negative (Other),Fake}/<concept>/``, or
  as PeKit's evaluation reads it, ``Single-concept/train/<concept>/`` and
  ``Single-concept/test/{Positive,...}/<concept>/``; a ``*_double`` positive shows a second
  concept too. ``thisismy:<path>/Multi-concept`` reads the multi-concept subset (a
  ``Validation/<A>_and_<B>/`` photo shows both), a separate benchmark in the papers;
* ``stress:`` a split written by `pekit.eval.stress.make_stress_split` (``manifest.json``,
  ``_references/<concept>/`` originals, ``<concept>/`` stress photos, ``boxes.csv``).

Every loader returns the same `Dataset`: per concept, the photos references are drawn
from, the fixed test positives and the dataset's own negatives (with their split name),
plus VQA and caption items where the release has them.

Example:
    >>> ds = load_dataset("folder:../shared/data/dreambooth")      # doctest: +SKIP
    >>> ds.concepts[0].name, ds.concepts[0].category              # doctest: +SKIP
    ('backpack', 'backpack')
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pekit.errors import InvalidInputError
from pekit.eval.folders import category_from_name, images, listing, nfc, read_categories, subdirs

log = logging.getLogger(__name__)

__all__ = [
    "LAYOUTS",
    "MYVLM_CAPTIONS",
    "CaptionItem",
    "ConceptData",
    "Dataset",
    "DatasetLayoutError",
    "FrozenMap",
    "VQAItem",
    "category_from_name",
    "detect_layout",
    "load_dataset",
    "myvlm_flat_base",
]

LAYOUTS = ("folder", "myvlm", "yollava", "thisismy", "stress")

#: A box ``(x0, y0, x1, y1)`` in pixels of the photo as loaded with EXIF orientation.
Box = tuple[float, float, float, float]

K = TypeVar("K")
V = TypeVar("V")


class DatasetLayoutError(InvalidInputError):
    """The folder does not hold the expected dataset layout; the message says what was found."""


class FrozenMap(Mapping[K, V]):
    """An immutable, hashable and picklable mapping (the dict-valued fields of `ConceptData`).

    >>> m = FrozenMap({"a": 1})
    >>> m["a"], len(m), hash(m) == hash(FrozenMap({"a": 1})), m == {"a": 1}
    (1, 1, True, True)
    """

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self._data) == dict(other)

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._data,))


@dataclass(frozen=True)
class ConceptData:
    """One concept of a dataset.

    Attributes:
        name: the concept's name (its folder name).
        category: semantic class ("dog"); used for same-category negatives and detectors.
        references: photos references are drawn from (per seed).
        positives: photos that are always test positives (Yo'LLaVA ``test/``, This-Is-My-Img
            ``Validation/positive``, the stress photos of a ``stress:`` split).
        holdout: reference photos not drawn in a seed are test positives too (folder, MyVLM).
        negatives: the dataset's own negatives of this concept as ``(path, split)``.
        boxes: photo -> the box ``(x0, y0, x1, y1)`` of THIS concept in it, in pixels of the
            photo as loaded with EXIF orientation (`pekit.images.load_image`); for references
            and positives, where the dataset has them (``boxes.csv``). May be empty.
        shared: positives that show another of the dataset's concepts too, not named
            (This-Is-My-Img's ``*_double`` photos): a positive of this concept, and a negative
            of no other (it may be the other's positive).
        sources: derived photo (a stress composite or a downscaled copy) -> the original
            photos it was made from, as they appear in the dataset's ``references``: first
            the photo its pasted object was cut from, then (composites into another
            subject's photo) the background photo. A trial whose references include one of
            them must not test that photo (leakage).

    Plain dicts given for ``boxes`` / ``sources`` are frozen into `FrozenMap`.
    """

    name: str
    category: str
    references: tuple[Path, ...]
    positives: tuple[Path, ...] = ()
    holdout: bool = True
    negatives: tuple[tuple[Path, str], ...] = ()
    shared: tuple[Path, ...] = ()
    boxes: Mapping[Path, Box] = field(default_factory=FrozenMap)
    sources: Mapping[Path, tuple[Path, ...]] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        if not isinstance(self.boxes, FrozenMap):
            object.__setattr__(self, "boxes", FrozenMap(
                {Path(p): tuple(float(v) for v in b) for p, b in self.boxes.items()}))
        if not isinstance(self.sources, FrozenMap):
            object.__setattr__(self, "sources", FrozenMap(
                {Path(p): tuple(Path(s) for s in src) for p, src in self.sources.items()}))


@dataclass(frozen=True)
class VQAItem:
    """One multiple-choice question about ``image``; ``sks`` already replaced by the name."""

    concept: str
    image: Path
    question: str
    options: dict[str, str]
    answer: str


@dataclass(frozen=True)
class CaptionItem:
    """Reference captions of one photo of ``concept``."""

    concept: str
    image: Path
    references: tuple[str, ...]


@dataclass
class Dataset:
    """A loaded benchmark (see the module docstring for the layouts)."""

    spec: str
    layout: str
    root: Path
    concepts: list[ConceptData]
    vqa: list[VQAItem] = field(default_factory=list)
    captions: list[CaptionItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def concept(self, name: str) -> ConceptData:
        for c in self.concepts:
            if c.name == name:
                return c
        raise InvalidInputError(f"no concept '{name}' in {self.spec}; it has: "
                                f"{', '.join(c.name for c in self.concepts)}")

    @property
    def sources(self) -> dict[Path, tuple[Path, ...]]:
        """Every derived photo -> the originals it was made from (`ConceptData.sources` of all concepts).

        A trial must not test a photo one of whose sources is among its references.
        """
        return {p: s for c in self.concepts for p, s in c.sources.items()}

    def boxes_in(self, photo: Path) -> dict[str, Box]:
        """``{concept: box}`` of every concept with a ground-truth box in ``photo``."""
        return {c.name: c.boxes[photo] for c in self.concepts if photo in c.boxes}

    @property
    def num_photos(self) -> int:
        paths = {p for c in self.concepts for p in (*c.references, *c.positives, *(n for n, _ in c.negatives))}
        return len(paths)


def detect_layout(root: Path) -> str | None:
    """Which of `LAYOUTS` a folder looks like, or ``None``.

    >>> detect_layout(Path("/nonexistent")) is None
    True
    """
    root = Path(root)
    if not root.is_dir():
        return None
    if (root / "manifest.json").is_file() and (root / "_references").is_dir():
        return "stress"
    for base in (root, *subdirs(root)):
        if (base / "data_concept_head").is_dir():
            return "myvlm"
        if base is root and myvlm_flat_base(root, every=True) is not None:  # MyVLM as released: captions per concept
            return "myvlm"
        if (base / "train").is_dir() and (base / "test").is_dir():  # This-Is-My-Img's test/ holds splits
            splits = {" ".join(d.name.lower().split()) for d in subdirs(base / "test")}
            return "thisismy" if splits & {"positive", "negative (hard)", "negative (other)", "fake"} else "yollava"
        if any((base / name).is_dir() for name in ("Single-concept", "Multi-concept", "Reference Images")):
            return "thisismy"
    if any(images(d) for d in subdirs(root)):
        return "folder"
    return None


#: the caption files of a MyVLM concept folder, the augmented one first (as MyVLM reads them)
MYVLM_CAPTIONS = ("captions_augmented.json", "captions.json")


def myvlm_flat_base(root: Path, *, every: bool = False) -> Path | None:
    """Where the concept folders of MyVLM's release lie (``<concept>/*.jpg`` beside
    ``captions.json``): ``root``, ``root/data`` or another direct subfolder of ``root``; None
    when no concept folder there holds a caption file (``every``: when one of them holds none,
    or a ``classes.csv`` or ``boxes.csv`` says it is a `folder` dataset: how a bare path is told)."""
    for base in (root, root / "data", *subdirs(root)):
        concepts = [d for d in subdirs(base) if images(d)]
        captioned = [d for d in concepts if any((d / name).is_file() for name in MYVLM_CAPTIONS)]
        if every and (len(captioned) < len(concepts) or (base / "classes.csv").is_file()
                      or (base / "boxes.csv").is_file()):
            continue
        if captioned:
            return base
    return None


def _layout_error(layout: str, root: Path, expected: str) -> DatasetLayoutError:
    found = detect_layout(root)
    hint = f"; it looks like the '{found}' layout: use --dataset {found}:{root}" if found and found != layout \
        else ""
    return DatasetLayoutError(f"expected the {layout} layout ({expected}) under '{root}', but found "
                              f"{listing(root)}{hint}")


def parse_spec(spec: str) -> tuple[str, Path]:
    """``"myvlm:/data/MyVLM"`` -> ``("myvlm", Path("/data/MyVLM"))``; bare paths are detected.

    >>> parse_spec("folder:data/db")
    ('folder', PosixPath('data/db'))
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInputError(f"a dataset is <layout>:<path> with layout one of {', '.join(LAYOUTS)}")
    head, sep, rest = spec.partition(":")
    if sep and head in LAYOUTS:
        return head, Path(rest).expanduser()
    if sep and re.fullmatch(r"[a-z][a-z0-9_-]+", head) and not Path(spec).exists():
        raise InvalidInputError(f"unknown dataset layout '{head}'; choose one of: {', '.join(LAYOUTS)}")
    root = Path(spec).expanduser()
    layout = detect_layout(root)
    if layout is None:
        raise DatasetLayoutError(f"cannot tell the layout of '{root}' (found {listing(root)}); "
                                 f"write it as <layout>:<path> with layout one of {', '.join(LAYOUTS)}")
    return layout, root


def load_dataset(spec: str, *, categories: str | Path | None = None,
                 concepts: Sequence[str] | None = None) -> Dataset:
    """Load a benchmark from ``<layout>:<path>`` (see the module docstring).

    Args:
        spec: ``folder:``, ``myvlm:``, ``yollava:``, ``thisismy:`` or ``stress:`` followed by the path.
        categories: optional CSV (``subject,class``) giving each concept's category; otherwise
            ``classes.csv`` of a folder dataset, else `category_from_name`.
        concepts: keep only these concepts (all when ``None``).

    Raises:
        DatasetLayoutError: the folder is missing or holds another layout (the message says
            which layout was expected and what was found).

    Example:
        >>> ds = load_dataset("yollava:/data/yollava")     # doctest: +SKIP
        >>> ds.vqa[0].question                              # doctest: +SKIP
        'What animal does bo resemble?'
    """
    layout, root = parse_spec(spec)
    if concepts is not None and not any(str(c).strip() for c in concepts):
        raise InvalidInputError(f"no concept named to keep in {spec} (--concepts {','.join(concepts)!r}); name "
                                "some, e.g. --concepts dog,cat, or leave the option out for all of them")
    warnings: list[str] = []
    table = read_categories(Path(categories), warnings) if categories else {}
    vqa: list[VQAItem] = []
    caps: list[CaptionItem] = []
    from pekit.eval import layouts

    if layout == "folder":
        items = layouts.load_folder(root, table, warnings)
    elif layout == "myvlm":
        items, caps = layouts.load_myvlm(root, table, warnings)
    elif layout == "yollava":
        items, vqa = layouts.load_yollava(root, table, warnings)
    elif layout == "stress":
        items = layouts.load_stress(root, table, warnings)
    else:
        items = layouts.load_thisismy(root, table, warnings)
    unknown = sorted(set(table) - {nfc(i.name) for i in items})
    if unknown:  # a typo there silently gives a concept its folder name's category
        warnings.append(f"the categories file names {len(unknown)} concept(s) the dataset does not have: "
                        f"{', '.join(map(repr, unknown[:8]))}{' ...' if len(unknown) > 8 else ''}; their rows are "
                        "not used (check the spelling against the concept folders)")
    if concepts is not None:
        wanted = {nfc(c) for c in concepts}
        missing = sorted(wanted - {nfc(i.name) for i in items})
        if missing:
            raise InvalidInputError(f"unknown concept(s) {missing} in {spec}; it has: "
                                    f"{', '.join(i.name for i in items)}")
        items = [i for i in items if nfc(i.name) in wanted]
        vqa = [q for q in vqa if nfc(q.concept) in wanted]
        caps = [c for c in caps if nfc(c.concept) in wanted]
    for w in warnings:
        log.warning(w)
    return Dataset(spec, layout, root, items, vqa, caps, warnings)
