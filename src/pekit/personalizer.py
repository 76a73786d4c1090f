"""`Personalizer`: the one entry point — introduce, recognize, ask, caption, forget.

Example:
    >>> from pekit import Personalizer                                  # doctest: +SKIP
    >>> p = Personalizer(memory="memory://")                            # doctest: +SKIP
    >>> p.introduce("Bo", ["dog/00.jpg", "dog/01.jpg"], category="dog",
    ...             context="my parents' dog, loves the beach")        # doctest: +SKIP
    >>> p.recognize("photo.jpg").to_list()                              # doctest: +SKIP
    [{'name': 'Bo', 'score': 0.71, 'box': [...], 'concept_id': 1}]
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, overload

import numpy as np

from pekit import feedback, introducing, recognizing
from pekit._guards import CONSISTENCY_MARGIN, low_agreement, stored_consistency
from pekit._models import SharedModels, build_faces, build_lvlm, check_specs
from pekit.embed.stream import check_workers
from pekit.errors import ImageError, InvalidInputError
from pekit.extract.boxes import MIN_BOX_PATCHES, MIN_BOX_SIDE
from pekit.extract.views import CONSISTENCY, View
from pekit.images import ImageInput, image_list, list_images, load_image
from pekit.memory import MemoryStore, clean_namespace, open_memory
from pekit.pipeline import Pipeline
from pekit.presets import Preset, get_preset
from pekit.retrieve.cache import GalleryCache, NamespaceGallery
from pekit.retrieve.match import Gallery
from pekit.types import Answer, Concept, Detections, PatchGrid, check_threshold

__all__ = ["CONSISTENCY", "CONSISTENCY_MARGIN", "MIN_BOX_PATCHES", "MIN_BOX_SIDE", "Personalizer", "build_pipeline",
           "stored_consistency"]

#: what `Personalizer.recognize_many` takes: photos, or a folder's path
Photos = Iterable[ImageInput] | str | os.PathLike


def build_pipeline(preset: str | Preset = "offline", **overrides: Any) -> Pipeline:
    """The `Pipeline` a preset describes: `Pipeline.from_preset` (kept as the facade's name)."""
    return Pipeline.from_preset(preset, **overrides)


class Personalizer:
    """Personal concepts in memory + recognition + (optionally) an LVLM.

    Args:
        preset: a name in `pekit.presets.PRESETS` (``offline``, the default;
            ``offline-fast``, ``offline-thorough``, ``cpu``, ``paper``...) or a `Preset`.
        memory: a `MemoryStore` or a URI/path for `open_memory` (default: ``$PEKIT_MEMORY``
            or the user data dir). A path that does not exist is an empty memory, created by
            the first `introduce` (``open_memory(path, must_exist=True)`` refuses it instead);
            `close` closes only a store opened from a path or URI here.
        namespace: the user whose concepts are used.
        lvlm: LVLM backend name (``none``, ``hf:<id>``, ``openai:<url>#<model>``) or object;
            default: the preset's. ``lvlm_options``: what `pekit.answer.load_lvlm` passes to
            it (``{"timeout": 300, "retries": 5}`` for ``openai:``; CLI: ``--lvlm-option``).
        threshold: override the preset's recognition threshold.
        faces: face model for person concepts (``"dlib"``, default, loaded on first use;
            ``"onnx:<path>"``, an ONNX embedder, see `pekit.faces.onnx`) or object.
        face_tolerance: Euclidean distance under which a face is a stored person
            (default: the face model's ``tolerance``, dlib's `pekit.faces.FACE_TOLERANCE` 0.6).
        own_memory: whether `close` closes the memory store (default: only one opened here
            from a path or URI, not a store passed in).
        **overrides: other preset/recognition fields (``backbone=``, ``proposals=``...).
    """

    def __init__(self, preset: str | Preset = "offline", *, memory: MemoryStore | str | os.PathLike | None = None,
                 namespace: str = "default", lvlm: Any = None, threshold: float | None = None,
                 faces: Any = "dlib", face_tolerance: float | None = None, own_memory: bool | None = None,
                 lvlm_options: Mapping[str, Any] | None = None, **overrides: Any) -> None:
        if threshold is not None:
            overrides["threshold"] = threshold
        self.preset = get_preset(preset).with_options(**overrides) if overrides else get_preset(preset)
        namespace = clean_namespace(namespace)
        self.memory: MemoryStore = memory if isinstance(memory, MemoryStore) else open_memory(memory)
        # `close` closes only what it opened, unless told the store is its to close
        self._owns_memory = not isinstance(memory, MemoryStore) if own_memory is None else bool(own_memory)
        self.namespace = namespace
        check_specs(lvlm, faces, face_tolerance, lvlm_options)
        self._lvlm_spec = lvlm if lvlm is not None else self.preset.lvlm
        self._lvlm_options = dict(lvlm_options or {})
        self._faces_spec = faces
        # lazily built models, shared with `for_namespace` siblings (one store, many owners)
        self._models = SharedModels()
        self.face_tolerance = None if face_tolerance is None else float(face_tolerance)

    def for_namespace(self, namespace: str) -> Personalizer:
        """A Personalizer of another owner that shares this one's models and memory store.

        Loading models is the expensive part; a service keeps one Personalizer and serves
        each user (namespace) with ``for_namespace(user)``, which costs nothing. Every
        store read and write of the sibling is filtered on its namespace.
        """
        namespace = clean_namespace(namespace)
        sibling = copy.copy(self)
        sibling.namespace = namespace
        sibling._owns_memory = False  # closing a sibling leaves the shared store open
        return sibling

    # -- lazily built parts -------------------------------------------------------------
    @property
    def pipeline(self) -> Pipeline:
        pipeline: Pipeline = self._models.get("pipeline", lambda: build_pipeline(self.preset))
        return pipeline

    @property
    def faces(self) -> Any:
        """The face model of person concepts (`pekit.faces.load_faces`), loaded on first use."""
        return self._models.get("faces", lambda: build_faces(self._faces_spec))

    @property
    def lvlm(self) -> Any:
        """The LVLM that answers (`pekit.answer.load_lvlm`), loaded on first use."""
        return self._models.get("lvlm", lambda: build_lvlm(self._lvlm_spec, self.preset.device, self._lvlm_options))

    # -- stage 1: introduce --------------------------------------------------------------
    def views(self, images: ImageInput | Sequence[ImageInput], *, category: str = "",
              boxes: Sequence[Any] | None = None, masks: Sequence[Any] | None = None) -> list[View]:
        """Reference views of ``images`` (one photo or several, as `introduce` takes them; one
        backbone pass each, plus the zoomed-out copy's when the preset keeps zoomed-out views),
        without storing anything."""
        return introducing.reference_views(self, image_list(images), category=category, boxes=boxes, masks=masks)

    def introduce(self, name: str, images: ImageInput | Sequence[ImageInput], *, category: str | None = None,
                  context: str | None = None, boxes: Sequence[Any] | None = None,
                  masks: Sequence[Any] | None = None, replace: bool = False, kind: str = "object") -> Concept:
        """Add a concept from one or more reference photos.

        Args:
            name: what the user calls it ("Bo"); stored in Unicode NFC and unique per
                namespace ignoring case ("bo" is "Bo"); control characters are refused.
            images: one image or a list (paths, bytes, PIL, numpy).
            category: its class ("dog"), used by detector-based extraction and prompts;
                None keeps the replaced concept's (empty for a new one).
            context: free text for the LVLM ("my parents' dog"); None keeps the replaced
                concept's (empty for a new one).
            boxes: optional ``[x0, y0, x1, y1]`` (or None) per image around the object.
            masks: optional mask (or None) per image: ``(H, W)`` True/False, 0/1 or 0/255
                integers, or 0-1 float weights, of the photo's size or any size of its shape;
                an image has a box or a mask, not both.
            replace: overwrite an existing concept of that name instead of raising
                `DuplicateConceptError`.
            kind: ``"object"`` (default) or ``"person"``: one face per photo (a box picks one
                of several), recognized by face identity (see `pekit.faces`).
        """
        return introducing.introduce(self, name, images, category=category, context=context, boxes=boxes,
                                     masks=masks, replace=replace, kind=kind)

    def low_consistency(self, concept: Concept) -> bool | None:
        """Whether ``concept``'s reference photos match one another so little (`CONSISTENCY`,
        `CONSISTENCY_MARGIN` under the threshold) that new photos of it unlike them may be
        missed; None when it was introduced from one photo (or before this was measured)."""
        agreement = stored_consistency(concept)
        return None if agreement is None else low_agreement(self, agreement, concept.threshold)

    def most_alike(self, name: str) -> tuple[str, float] | None:
        """The other object in memory that ``name`` looks most like, by its parts: ``(its
        name, agreement)`` in the units of a recognition score, or None (nothing else). At or
        above the threshold (`introduce` warns), a thing of their kind that was never
        introduced may be named after either of them. For a person, the other person whose
        faces come closest, with 1 − their face distance (a person's score; `introduce` warns
        within the face tolerance: the same person under two names?)."""
        return introducing.most_alike(self, name)

    # -- stage 2: recognize ----------------------------------------------------------------
    @property
    def galleries(self) -> GalleryCache:
        """The per-namespace matching galleries (`pekit.retrieve.cache.GalleryCache`), shared
        with `for_namespace` siblings: read once, rebuilt only after a write to the namespace."""
        from pekit.faces import PERSON, concept_kind

        cache: GalleryCache = self._models.get("galleries", lambda: GalleryCache(
            self.memory, select=lambda c: concept_kind(c) != PERSON))
        return cache

    def gallery(self) -> Gallery:
        """The object concepts flattened for matching (persons match by face: `pekit.faces.FaceGallery`)."""
        return self.galleries.get(self.namespace).gallery

    def recognize(self, image: ImageInput, *, threshold: float | None = None) -> Detections:
        """Find the namespace's concepts in one image: named boxes, best first.

        Costs one backbone pass, every proposal pooled from it, plus a crop's pass (about 0.6
        of one) where a candidate is near the threshold or small (at most two per photo in
        ``offline``; ``offline-thorough`` adds four tiles). The namespace is read from memory
        once and kept until something writes to it.
        """
        threshold = check_threshold(threshold)
        return self._recognize(load_image(image), self.galleries.get(self.namespace), threshold)

    @overload
    def recognize_many(self, images: Photos, *, threshold: float | None = None, workers: int | None = None,
                       errors: Literal["raise"] = "raise") -> Iterator[Detections]: ...
    @overload
    def recognize_many(self, images: Photos, *, threshold: float | None = None, workers: int | None = None,
                       errors: Literal["return"] | str) -> Iterator[Detections | ImageError]: ...
    def recognize_many(self, images: Photos, *, threshold: float | None = None, workers: int | None = None,
                       errors: str = "raise") -> Iterator[Detections | ImageError]:
        """`recognize` a stream of photos (a list of them, an album, or a folder's path: its
        images, sorted, as the CLI takes a folder), in order, faster than a loop.

        Decoding, the backbone passes of the next photos and the matching of this one
        overlap (`Pipeline.encode_many`); results are the same as `recognize`'s, and each
        photo is matched against the memory as it is when its turn comes (a concept
        forgotten meanwhile is not named in the photos after). ``workers``: passes at a
        time (default: one per core, up to 4). An unreadable photo raises its `ImageError`
        when its turn comes; with ``errors="return"`` that error is yielded in the photo's
        place and the rest go on (results stay aligned with ``images``).

        >>> for photo, d in zip(album, p.recognize_many(album, errors="return")):  # doctest: +SKIP
        ...     print(photo, d if isinstance(d, ImageError) else d.name)
        """
        if isinstance(images, (str, os.PathLike)) and os.path.isdir(os.path.expanduser(images)):
            images = list_images([images])
        recognizing.check_photos(images)  # one photo's path (not a folder) is refused here
        assert not isinstance(images, (str, os.PathLike))
        if errors not in ("raise", "return"):
            raise InvalidInputError(f"errors must be 'raise' or 'return', got {errors!r}")
        threshold = check_threshold(threshold)
        check_workers(workers)  # now, not at the first photo
        return (dets for _, dets in self._recognize_stream(images, threshold=threshold, workers=workers,
                                                           skip_bad=errors == "return"))

    def _recognize_stream(self, images: Iterable[ImageInput], *, threshold: float | None = None,
                          workers: int | None = None, skip_bad: bool = False) -> Iterator[Any]:
        """``(rgb, detections)`` per photo (`pekit.recognizing.recognize_stream`)."""
        return recognizing.recognize_stream(self, images, threshold=threshold, workers=workers, skip_bad=skip_bad)

    def _recognize(self, img: np.ndarray, entry: NamespaceGallery, threshold: float | None,
                   timings: dict[str, float] | None = None, *, grid: PatchGrid | None = None,
                   blas: int | None = None, margin: float = 0.0) -> Detections:
        """`recognize` against a namespace's cached gallery (`pekit.recognizing.recognize_in`)."""
        return recognizing.recognize_in(self, img, entry, threshold, timings, grid=grid, blas=blas, margin=margin)

    def recognize_video(self, video: str | os.PathLike, *, fps: float = 2.0, max_frames: int | None = None,
                        out: str | os.PathLike | None = None, sheet: str | os.PathLike | None = None,
                        threshold: float | None = None, progress: bool | None = None,
                        scene_cut: float | None = None, audio: str = "auto", max_pixels: int | None = None) -> Any:
        """Find the namespace's concepts through a clip -> `pekit.video.VideoResult`.

        Samples ``fps`` frames per second of video (at most ``max_frames``), runs the same
        per-image recognition as `recognize` on each, links detections into tracks (one
        name per track by vote) and optionally writes an annotated video ``out`` (H.264;
        ``audio``: ``"auto"`` keeps the source's audio where the container can hold it,
        ``"keep"``, ``"drop"``) and a contact sheet ``sheet`` (PNG, best frame per track).
        ``scene_cut`` (e.g. 16) also samples the first frame of each scene; ``max_pixels``
        raises the frame-size limit (`pekit.video.decode.MAX_FRAME_PIXELS`).
        """
        from pekit.video import recognize_video

        step, confirm = self._video_steps(self.galleries.get(self.namespace), check_threshold(threshold))
        return recognize_video(step, video, fps=fps, max_frames=max_frames, out=out, sheet=sheet, progress=progress,
                               scene_cut=scene_cut, confirm=confirm, audio=audio, max_pixels=max_pixels)

    def _video_steps(self, entry: Any, threshold: float | None) -> tuple[Any, Any]:
        """Per-sample recognition for a clip and its ``confirm`` (`pekit.recognizing.video_steps`)."""
        return recognizing.video_steps(self, entry, threshold)

    def annotate(self, image: ImageInput, detections: Detections) -> np.ndarray:
        """Draw the detections (distinct colours, names, scores) on a copy of the image."""
        from pekit.prompt.overlay import annotate

        return annotate(load_image(image), detections)

    # -- stage 3: answer ----------------------------------------------------------------------
    def ask(self, image: ImageInput, question: str, *, options: dict[str, str] | None = None,
            threshold: float | None = None, **generation: Any) -> Answer:
        """Recognize, draw coloured boxes, and ask the LVLM ``question`` using the names.

        With nothing recognized the question goes to the LVLM plainly (the prompt says which
        of the user's concepts the question names are not visible). Multiple-choice
        questions (``options={"A": ..., "B": ...}`` or "A. x B. y" in the text) get the
        parsed letter in ``Answer.choice``. ``generation``: ``max_new_tokens``,
        ``temperature``, ``seed``; for a clip also ``fps`` (default 2) and ``max_frames``.

        ``image`` may be a video path: the LVLM then gets a few annotated key frames (one
        contact sheet for single-image models) and the timeline of the tracks
        (`pekit.video.answer`).

        With no LVLM (``lvlm="none"``, the offline presets' default) ``Answer.text`` is
        empty: ``Answer.prompt`` and ``Answer.image`` are what an LVLM would get.
        """
        from pekit.answer.ask import ask

        return ask(self, image, question, options=options, threshold=threshold, **generation)

    def caption(self, image: ImageInput, *, threshold: float | None = None, **generation: Any) -> Answer:
        """A caption that calls the recognized concepts by name (of a photo, or of a video path:
        one caption per scene, in ``Answer.text`` as ``"start-end s: caption"`` lines and in
        ``Answer.meta["scenes"]``)."""
        from pekit.answer.ask import caption

        return caption(self, image, threshold=threshold, **generation)

    # -- memory ------------------------------------------------------------------------------
    def concepts(self) -> list[Concept]:
        return self.memory.concepts(namespace=self.namespace)

    def get(self, name: str) -> Concept:
        """The concept called ``name`` (ignoring case: ``bo`` is ``Bo``); `ConceptNotFoundError` if none."""
        return self.memory.get(name, namespace=self.namespace)

    def update(self, name: str, *, context: str | None = None, category: str | None = None,
               rename: str | None = None) -> Concept:
        """Change what is told about a concept: its ``context`` (said to the LVLM),
        ``category`` or name (``rename``: what it is called from now on, e.g. "Bo" to
        "Bobby"; photos are not kept, so this is the way to rename); None keeps one as it
        is. No backbone pass; the views and corrections stay.

        Read and written in one transaction (a view added meanwhile by another process stays);
        when nothing changes, nothing is written.

        >>> p.update("Bo", context="my parents' dog, loves the beach and tennis balls")  # doctest: +SKIP

        Raises:
            ConceptNotFoundError: no concept ``name``.
            DuplicateConceptError: ``rename`` is another concept's name (ignoring case).
            InvalidInputError: text with control characters, or longer than
                `pekit.memory.MAX_CONTEXT_LENGTH` / `MAX_CATEGORY_LENGTH` / `MAX_NAME_LENGTH`
                (nothing changed).
        """
        return introducing.update(self, name, context=context, category=category, rename=rename)

    def explain(self, image: ImageInput, detections: Detections | None = None) -> np.ndarray:
        """Per detection, the patch similarity heat map over the photo and the reference view
        it matched best: ``(H', W, 3) uint8`` (see `pekit.retrieve.explain`).

        ``detections``: from `recognize` on the same image (recognized again when omitted;
        the backbone pass is the only cost).
        """
        return recognizing.explain(self, image, detections)

    # -- feedback ------------------------------------------------------------------------------
    def correct(self, image: ImageInput, name: str, *, box: Any = None, threshold: float | None = None) -> Concept:
        """"That was not ``name``": the region recognized as ``name`` in ``image`` becomes a
        negative view of ``name``.

        The wrong region's part prototypes are stored; from then on a region whose patches
        agree with them at least as well as with ``name``'s own parts is not called ``name``
        (the same stranger's dog, the neighbour's identical backpack). Finds the region as
        `recognize` does (the same candidates, second look and overlap removal), so it costs
        what `recognize` costs and corrects what the user was shown.

        Args:
            box: which detection was wrong when ``name`` was recognized more than once in the
                photo (``max_per_concept`` > 1): the one whose box overlaps it most.
            threshold: the threshold the wrong detection was shown at, when `recognize` was
                given one (default: the concept's, else the preset's).

        Raises:
            ConceptNotFoundError: no concept ``name``.
            NothingFoundError: ``name`` was not recognized in ``image``, or not in ``box``
                (nothing changed).
            InvalidInputError: ``name`` is a person (matched by face, which corrections do not
                change), recognized several times without a ``box``, or a bad ``box``.
        """
        return feedback.correct(self, image, name, box=box, threshold=threshold)

    def undo_correction(self, name: str) -> Concept:
        """Take back the last `correct` of ``name`` (a photo of the real one was given by
        mistake): its negative view is removed, the earlier corrections stay. No backbone pass.

        Raises:
            ConceptNotFoundError: no concept ``name``.
            InvalidInputError: ``name`` has no correction to undo (nothing changed).
        """
        return feedback.undo_correction(self, name)

    def add_view(self, name: str, image: ImageInput, *, box: Any = None, mask: Any = None) -> Concept:
        """One more reference view of an existing concept (one backbone pass).

        ``box``/``mask`` as in `introduce`; without them the object is found by saliency.
        A photo the concept hardly recognizes (`view_agreement` `CONSISTENCY_MARGIN` under
        its threshold, the rule `introduce` warns by) is added with a warning: it is probably
        of something else (a person's: a face further than the face tolerance from theirs).

        Raises:
            ConceptNotFoundError: no concept ``name``.
            InvalidInputError, NothingFoundError: a bad box, or nothing found (nothing changed;
                the error says how to pass the photo's box: ``box=`` / ``--box``).
        """
        return feedback.add_view(self, name, image, box=box, mask=mask)

    def undo_view(self, name: str) -> Concept:
        """Take back the last `add_view` of ``name`` (a photo of something else was added by
        mistake): that view's embedding, parts, colour and reference go; views added earlier,
        the photos it was introduced from and its corrections stay. No backbone pass.

        Raises:
            ConceptNotFoundError: no concept ``name``.
            InvalidInputError: no view was added to ``name`` since it was introduced (nothing changed).
        """
        return feedback.undo_view(self, name)

    def forget(self, name: str) -> str:
        """Remove a concept (its name compared ignoring case); returns its name as stored.
        `ConceptNotFoundError` if it does not exist."""
        return self.memory.remove(name, namespace=self.namespace)

    def close(self) -> None:
        """Close the memory store if this Personalizer opened it (from a path or URI); a store
        passed in, or shared with `for_namespace` siblings, stays open for its owner."""
        if self._owns_memory:
            self.memory.close()

    def __enter__(self) -> Personalizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Personalizer(preset={self.preset.name!r}, memory={self.memory.uri!r}, namespace={self.namespace!r})"
