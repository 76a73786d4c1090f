"""Stage 3 in one call: draw the recognized concepts, build the prompt, ask the LVLM.

`respond` is what ``Personalizer.ask`` / ``caption`` run after recognition; it is a pure
function of its inputs and the LVLM, so it can be used without a `Personalizer` too.

Example:
    >>> import numpy as np
    >>> from pekit.answer.none import NoneLVLM
    >>> from pekit.types import Detections
    >>> dets = Detections(xyxy=[[8, 8, 40, 40]], score=[0.9], name=["Bo"])
    >>> ans = respond(NoneLVLM(), np.zeros((64, 64, 3), np.uint8), dets,
    ...               question="What is Bo doing?", contexts={"Bo": "my parents' dog"})
    >>> print(ans.prompt)
    The entity in the red box is called Bo. About Bo: my parents' dog.
    What is Bo doing?
    Answer using the names above where relevant, without mentioning the boxes or their colours.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from pekit.answer.base import DEFAULT_MAX_NEW_TOKENS, LVLM
from pekit.errors import BackendError, InvalidInputError
from pekit.prompt.choice import parse_choice, split_options
from pekit.prompt.overlay import Colour, annotate, colour_assignment, on_photo
from pekit.prompt.question import mentioned_names, validate_question
from pekit.prompt.text import PromptTemplate, build_prompt, load_template
from pekit.types import Answer, Detections

__all__ = ["respond"]


def respond(
    lvlm: LVLM,
    image: Any,
    detections: Detections,
    *,
    question: str | None = None,
    options: Mapping[str, str] | None = None,
    contexts: Mapping[str, str] | None = None,
    known_names: Iterable[str] = (),
    persons: Iterable[str] = (),
    template: str | PromptTemplate = "default",
    palette: Sequence[Colour] | Sequence[str] | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = 0.0,
    seed: int | None = None,
) -> Answer:
    """Annotate ``image`` with ``detections``, prompt ``lvlm`` and return an `Answer`.

    The kind of prompt follows the inputs: no ``question`` -> caption; ``options`` given,
    or lettered options written in the question ("... A. Bo B. Mochi") -> multiple
    choice (``Answer.choice`` holds the parsed letter); otherwise VQA.

    Args:
        lvlm: any `LVLM` (``load_lvlm("none")``, ``"hf:..."``, ``"openai:...#..."``).
        image: ``(H, W, 3) uint8`` RGB array (or a PIL image).
        detections: recognized regions; named ones are drawn and named in the prompt.
        question: the user's question; ``None`` for a caption.
        options: ``{"A": "...", "B": "..."}`` for multiple choice.
        contexts: ``{concept name: context text}`` (concepts without context may be left out).
        known_names: every concept name in the user's memory (to flag absent ones).
        persons: the names that are people (named "the person in the red box").
        template: prompt template name, path or `PromptTemplate`.
        palette: colours for the boxes (see `pekit.prompt.annotate`).
        max_new_tokens, temperature, seed: generation options passed to ``lvlm.generate``.

    Returns:
        `Answer` with the text, the detections, the exact prompt, the annotated image,
        the parsed choice (multiple choice only) and ``meta`` (backend, kind, template,
        colours, seconds, usage).
    """
    if question is not None:
        question = validate_question(question)
    if options is None and question is not None:
        split = split_options(question)
        if split is not None:
            question, options = split
    kind = "caption" if question is None else ("choice" if options else "vqa")
    if kind == "caption" and options:
        raise InvalidInputError("options need a question; pass question='...' with options")
    if not isinstance(image, np.ndarray):
        from PIL import Image

        if not isinstance(image, Image.Image):
            raise InvalidInputError(
                f"image must be an (H, W, 3) uint8 array or a PIL image, got {type(image).__name__}; "
                "load files with pekit.images.load_image"
            )
        from pekit.images import load_image

        image = load_image(image)  # upright (EXIF) and on white, as recognize saw it
    tpl = template if isinstance(template, PromptTemplate) else load_template(template)
    shown = on_photo(detections, image.shape[1], image.shape[0])  # a box off the photo is drawn nowhere
    # a known name the question mentions ("Is Red here too?") is no box's colour: "the red box" would be ambiguous
    known_names = [str(n) for n in known_names]
    said = mentioned_names(" ".join([str(question or ""), *map(str, (options or {}).values())]), known_names)
    colours = colour_assignment(shown, palette=palette, warn=False, avoid=said)  # annotate says it, once
    annotated = annotate(image, shown, palette=palette, avoid=said)
    contexts = dict(contexts or {})
    concepts = [(name, colour, contexts.get(name, "")) for name, colour in colours.items()]
    known = list(dict.fromkeys([*known_names, *colours]))
    assert shown.name is not None  # filled by Detections
    unmarked = [n for n in dict.fromkeys(str(n or "").strip() for n in shown.name) if n and n not in colours]
    prompt = build_prompt(kind, question=question, concepts_in_image=concepts, known_names=known,  # type: ignore[arg-type]
                          options=options, template=tpl, persons=persons, unmarked=unmarked)
    start = time.perf_counter()
    text = lvlm.generate(annotated, prompt, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    if not isinstance(text, str):
        raise BackendError(f"the LVLM {getattr(lvlm, 'name', type(lvlm).__name__)} answered {type(text).__name__}, "
                           "not text: its generate() must return a str")
    seconds = time.perf_counter() - start
    choice = parse_choice(text, options) if kind == "choice" and options else None
    meta: dict[str, Any] = {
        "backend": getattr(lvlm, "name", type(lvlm).__name__),
        "kind": kind,
        "template": tpl.id,
        "colours": colours,
        "seconds": round(seconds, 4),
    }
    if kind == "choice" and options:
        meta["options"] = {str(k).upper(): v for k, v in options.items()}
    usage = getattr(lvlm, "last_usage", None)
    if usage:
        meta["usage"] = dict(usage)
    return Answer(text=text, detections=detections, prompt=prompt, image=annotated, choice=choice, meta=meta)
