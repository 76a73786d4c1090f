"""Stage 3 of a `Personalizer`: recognize, then ask the LVLM about a photo or a clip.

What `Personalizer.ask` and `Personalizer.caption` run: the photo is recognized against
the namespace (`Personalizer._recognize`: objects and persons) and `respond` draws the
named boxes, builds the prompt with the concepts' contexts and asks the LVLM; a clip is
recognized frame by frame and answered from key frames (or a contact sheet) and the
tracks' timeline (`pekit.video.answer.respond_video`). Each function takes the
`Personalizer` first.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from pekit.answer.base import check_generation_options
from pekit.answer.respond import respond
from pekit.errors import InvalidInputError
from pekit.images import ImageInput, load_image
from pekit.prompt.question import check_options, mentioned_names, validate_question
from pekit.types import Answer, check_threshold

if TYPE_CHECKING:
    from pekit.personalizer import Personalizer

__all__ = ["ask", "caption"]


def ask(p: Personalizer, image: ImageInput, question: str, /, *, options: dict[str, str] | None = None,
        threshold: float | None = None, **generation: Any) -> Answer:
    """`Personalizer.ask`: ``question`` about ``image`` (a photo or a video path), asked
    with the recognized concepts' names (see there)."""
    if question is None:
        raise InvalidInputError("ask needs a question, e.g. 'What is Bo doing?'; for a caption use caption()")
    return _respond(p, image, question=question, options=options, threshold=threshold, **generation)


def caption(p: Personalizer, image: ImageInput, /, *, threshold: float | None = None, **generation: Any) -> Answer:
    """`Personalizer.caption`: a caption of ``image`` (a photo or a video path) that calls
    the recognized concepts by name (see there)."""
    if "question" in generation or "options" in generation:
        raise InvalidInputError("caption takes no question or options; for a question use ask(image, question)")
    return _respond(p, image, question=None, options=None, threshold=threshold, **generation)


def _respond(p: Personalizer, image: ImageInput, /, *, question: str | None, options: dict[str, str] | None,
             threshold: float | None, **generation: Any) -> Answer:
    if question is not None:
        question = validate_question(question)  # fail before the backbone pass
    threshold = check_threshold(threshold)
    if options is not None and (not isinstance(options, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in options.items())):
        raise InvalidInputError('options must be a dict of letter -> answer text, e.g. {"A": "a dog", '
                                f'"B": "a cat"}}, got {type(options).__name__}')
    if options:
        check_options(options)  # fail before the backbone pass and the LVLM's loading
    if isinstance(image, (str, os.PathLike)):
        from pekit.video.decode import is_video

        if is_video(image):
            if options:
                raise InvalidInputError("multiple-choice options are for photos; ask a clip a plain question")
            check_generation_options(generation, video=True)
            return _respond_video(p, image, question=question, threshold=threshold, **generation)
    check_generation_options(generation, video=False)
    img = load_image(image)
    entry = p.galleries.get(p.namespace)
    dets = p._recognize(img, entry, threshold)
    listed = _listing(p)
    answer = respond(p.lvlm, img, dets, question=question, options=options,
                     contexts={c.name: c.context for c in listed if c.context},
                     known_names=[c.name for c in listed],
                     persons=[c.name for c in entry.others], **generation)
    return answer


def _listing(p: Personalizer) -> list[Any]:
    """Names and contexts of the namespace without vectors (`MemoryStore.summaries`)."""
    return list(p.memory.summaries(namespace=p.namespace))


def _respond_video(p: Personalizer, video: str | os.PathLike, *, question: str | None, threshold: float | None,
                   fps: float = 2.0, max_frames: int | None = None, **generation: Any) -> Answer:
    """`ask` / `caption` on a clip: key frames (or a contact sheet) + the track timeline
    (``fps`` samples per second, at most ``max_frames``: a long clip costs a pass per sample)."""
    from pekit.video.answer import respond_video
    from pekit.video.run import recognize_video

    entry = p.galleries.get(p.namespace)
    step, confirm = p._video_steps(entry, threshold)
    listed = _listing(p)
    said = mentioned_names(question or "", [c.name for c in listed])  # "Is Red here?": no box is red
    result = recognize_video(step, video, fps=fps, max_frames=max_frames, keep_sheet=True, confirm=confirm,
                             avoid=said)
    return respond_video(p.lvlm, result, question=question, contexts={c.name: c.context for c in listed if c.context},
                         persons=[c.name for c in entry.others], **generation)
