"""Prompt templates for stage 3 (VQA, captioning, multiple choice), kept as versioned data.

A template set is a JSON file (``src/pekit/prompt/templates/<name>.json``, or any path)
with a ``version`` and one ``str.format`` pattern per part. `build_prompt` fills it from
the concepts drawn in the image (name, colour, context) so the text names exactly the
colours `pekit.prompt.overlay.colour_assignment` drew.

Rules the prompt follows:

* nothing recognized and no known concept named in the question -> the question as is;
* a known concept named in the question (or an option) but not in the image -> the prompt
  says it is not visible, so the LVLM does not invent it;
* each visible concept -> "The entity in the <colour> box is called <name>." plus its context;
* the LVLM is asked not to mention the boxes; multiple choice asks for the letter only.

Example:
    >>> print(build_prompt("vqa", question="What is Bo doing?",
    ...                    concepts_in_image=[("Bo", "blue", "Bo is my parents' dog.")],
    ...                    known_names=["Bo"]))
    The entity in the blue box is called Bo. Bo is my parents' dog.
    What is Bo doing?
    Answer using the names above where relevant, without mentioning the boxes or their colours.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

from pekit.errors import InvalidInputError
from pekit.prompt.question import check_options, join_names, mentioned_names, validate_question

__all__ = ["PromptTemplate", "available_templates", "build_prompt", "load_template"]

PromptKind = Literal["vqa", "caption", "choice"]
ConceptInImage = tuple[str, str, str]  # (name, colour, context)

_FIELDS: dict[str, set[str]] = {
    "concept": {"name", "colour"},
    "context": {"name", "context"},
    "context_named": {"name", "context"},
    "absent_one": {"names"},
    "absent_many": {"names"},
    "vqa": {"concepts", "absent", "question", "names"},
    "vqa_absent": {"absent", "question"},
    "vqa_plain": {"question"},
    "caption": {"concepts", "names"},
    "caption_plain": set(),
    "choice": {"concepts", "absent", "question", "options", "names"},
    "choice_plain": {"absent", "question", "options"},
    "option": {"letter", "text"},
    "and": set(),
}
#: the fields without which a part loses what it is for (the question never sent, a name
#: never tied to its colour); the others may be left out
_REQUIRED: dict[str, set[str]] = {
    "concept": {"name", "colour"}, "person": {"name", "colour"}, "context": {"context"},
    "context_named": {"context"}, "absent_one": {"names"}, "absent_many": {"names"},
    "vqa": {"concepts", "question"}, "vqa_absent": {"question"}, "vqa_plain": {"question"},
    "caption": {"concepts"}, "choice": {"concepts", "question", "options"},
    "choice_plain": {"question", "options"}, "option": {"letter", "text"}, "unmarked": {"names"},
}
#: parts a template may leave out (older templates): part -> (fields, what is used instead:
#: another part, or a pattern of its own)
_OPTIONAL: dict[str, tuple[set[str], str]] = {
    "person": ({"name", "colour"}, "concept"),
    "unmarked": ({"names"}, "Also in this image, not marked with a box: {names}."),
}


@dataclass(frozen=True)
class PromptTemplate:
    """One versioned template set; ``parts`` maps each part name to its pattern."""

    name: str
    version: str
    parts: Mapping[str, str] = field(repr=False)
    description: str = ""

    @property
    def id(self) -> str:
        """``name@version``, recorded with every answer."""
        return f"{self.name}@{self.version}"

    def fill(self, part: str, **values: str) -> str:
        """Format one part line by line, dropping lines that only held empty placeholders."""
        lines = []
        for line in self.parts[part].split("\n"):
            text = line.format(**values)
            if text.strip() or not _placeholders(line):
                lines.append(text)
        return "\n".join(lines).strip()


def _placeholders(pattern: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}


def _check_fields(origin: str, key: str, used: set[str], allowed: set[str]) -> None:
    if not used <= allowed:
        raise InvalidInputError(
            f"prompt template {origin}, part '{key}' uses unknown fields {sorted(used - allowed)}; "
            f"allowed: {sorted(allowed)}"
        )
    missing = _REQUIRED.get(key, set()) - used
    if missing:
        raise InvalidInputError(
            f"prompt template {origin}, part '{key}' lacks the fields {sorted(missing)}: without them "
            "the LVLM would not get what that part is for (add them, e.g. "
            + ", ".join("{" + f + "}" for f in sorted(missing)) + ")"
        )


def _validate(data: object, origin: str) -> PromptTemplate:
    if not isinstance(data, dict):
        raise InvalidInputError(f"prompt template {origin} must be a JSON object")
    version = data.get("version")
    if not isinstance(version, (str, int, float)) or not str(version).strip():
        raise InvalidInputError(f"prompt template {origin} needs a 'version' field, e.g. \"1.0\"")
    missing = [k for k in _FIELDS if not isinstance(data.get(k), str)]
    if missing:
        raise InvalidInputError(f"prompt template {origin} lacks the string parts: {', '.join(missing)}")
    for key, allowed in _FIELDS.items():
        try:
            used = _placeholders(data[key])
        except ValueError as exc:
            raise InvalidInputError(f"prompt template {origin}, part '{key}': {exc}") from exc
        _check_fields(origin, key, used, allowed)
    for key, (allowed, _) in _OPTIONAL.items():
        if key in data:
            if not isinstance(data[key], str):
                raise InvalidInputError(f"prompt template {origin}, part '{key}' must be a string")
            try:
                used = _placeholders(data[key])
            except ValueError as exc:
                raise InvalidInputError(f"prompt template {origin}, part '{key}': {exc}") from exc
            _check_fields(origin, key, used, allowed)
    parts = {k: data[k] for k in _FIELDS}
    parts.update({k: data[k] for k in _OPTIONAL if k in data})
    description = str(data.get("description", ""))
    return PromptTemplate(str(data.get("name", origin)), str(version), parts, description)


def available_templates() -> list[str]:
    """Names of the template sets shipped with pekit.

    >>> "default" in available_templates()
    True
    """
    folder = resources.files("pekit.prompt").joinpath("templates")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


@lru_cache(maxsize=16)
def load_template(name: str = "default") -> PromptTemplate:
    """Load a shipped template set by name, or any ``.json`` file by path.

    >>> load_template().id
    'default@1.1'
    """
    if name.endswith(".json") or "/" in name or "\\" in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise InvalidInputError(f"prompt template file '{name}' does not exist")
        text, origin = path.read_text(encoding="utf-8"), f"'{path}'"
    else:
        if name not in available_templates():
            raise InvalidInputError(
                f"unknown prompt template '{name}'; available: {', '.join(available_templates())} "
                "(or pass a path to a .json file)"
            )
        text = resources.files("pekit.prompt").joinpath("templates", f"{name}.json").read_text("utf-8")
        origin = f"'{name}'"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"prompt template {origin} is not valid JSON: {exc}") from exc
    return _validate(data, origin)


def _sentence(text: str) -> str:
    """``text`` on one line, ending as a sentence (a full stop added unless it has one, in any script).

    >>> _sentence("my cat"), _sentence("我们家的狗。"), _sentence("كلبي؟")
    ('my cat.', '我们家的狗。', 'كلبي؟')
    """
    text = " ".join(text.split())
    return text if not text or text[-1] in ".!?…\"')。！？．｡」』）”’؟۔।" else text + "."


def _check_concepts(concepts: Sequence[ConceptInImage]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for item in concepts:
        if len(item) != 3:
            raise InvalidInputError(
                f"each concept in the image must be (name, colour, context), got {item!r}"
            )
        name, colour, context = (str(v or "").strip() for v in item)
        if not name or not colour:
            raise InvalidInputError(f"a concept in the image needs a name and a colour, got {item!r}")
        out.append((name, colour, context))
    names = [n.lower() for n, _, _ in out]
    colours = [c.lower() for _, c, _ in out]
    if len(set(names)) != len(names):
        raise InvalidInputError(f"each concept may appear once in concepts_in_image, got names {names}")
    if len(set(colours)) != len(colours):
        raise InvalidInputError(
            f"each concept needs its own colour, got {colours}; use pekit.prompt.colour_assignment"
        )
    return out


def build_prompt(
    kind: PromptKind,
    *,
    question: str | None = None,
    concepts_in_image: Sequence[ConceptInImage] = (),
    known_names: Iterable[str] = (),
    options: Mapping[str, str] | None = None,
    template: str | PromptTemplate = "default",
    persons: Iterable[str] = (),
    unmarked: Iterable[str] = (),
) -> str:
    """Build the text prompt sent to the LVLM with the annotated image.

    Args:
        kind: ``"vqa"`` (answer ``question``), ``"caption"`` (no question) or ``"choice"``
            (``question`` with lettered ``options``; asks for the letter only).
        question: the user's question (``vqa`` / ``choice``); at most `MAX_QUESTION_CHARS`.
        concepts_in_image: ``(name, colour, context)`` per concept drawn, in drawing order;
            names and colours unique. ``context`` may be ``""``.
        known_names: every concept name in the user's memory; the ones the question names
            but that are not in the image are declared not visible.
        options: ``{"A": "Dog", "B": "Cat"}`` for ``choice``.
        template: shipped template name, a ``.json`` path, or a loaded `PromptTemplate`.
        persons: names (of ``concepts_in_image``) that are people: their line uses the
            template's ``person`` part ("The person in the red box is Lin.").
        unmarked: concepts recognized in the image but not drawn (more concepts than
            colours): the prompt says they are there, unmarked, and never calls them absent.

    Returns:
        The prompt text (no image tokens; the backend adds the image).

    Example:
        >>> build_prompt("vqa", question="Where is Mochi?", known_names=["Mochi"])
        'Mochi is not visible in this image.\\nWhere is Mochi?'
    """
    tpl = template if isinstance(template, PromptTemplate) else load_template(template)
    if kind not in ("vqa", "caption", "choice"):
        raise InvalidInputError(f"unknown prompt kind '{kind}'; choose one of: vqa, caption, choice")
    concepts = _check_concepts(concepts_in_image)
    conj = tpl.parts["and"]
    visible = [n for n, _, _ in concepts]
    lines = []
    people = set(persons)
    for name, colour, context in concepts:
        part = "person" if name in people and "person" in tpl.parts else "concept"
        line = tpl.fill(part, name=name, colour=colour)
        if context:
            part = "context_named" if mentioned_names(context, [name]) else "context"
            line += " " + _sentence(tpl.fill(part, name=name, context=context))
        lines.append(line)
    visible_lower = {n.lower() for n in visible}
    extra = [n for n in dict.fromkeys(str(u).strip() for u in unmarked) if n and n.lower() not in visible_lower]
    if extra and concepts:
        lines.append(tpl.parts.get("unmarked", _OPTIONAL["unmarked"][1]).format(names=join_names(extra, conj)))
    concept_text = "\n".join(lines)
    names_text = join_names(visible, conj)

    if kind == "caption":
        if question is not None:
            raise InvalidInputError("a caption takes no question; use kind='vqa' to ask something")
        return tpl.fill("caption", concepts=concept_text, names=names_text) if concepts else tpl.fill(
            "caption_plain")

    q = validate_question(question)
    opts = check_options(options) if kind == "choice" else {}
    searched = " ".join([q, *opts.values()])
    present = visible_lower | {n.lower() for n in extra}
    absent = [n for n in mentioned_names(searched, known_names) if n.strip().lower() not in present]
    absent_text = ""
    if absent:
        absent_text = tpl.fill("absent_one" if len(absent) == 1 else "absent_many",
                               names=join_names(absent, conj))
    values = {"concepts": concept_text, "absent": absent_text, "question": q, "names": names_text}
    if kind == "choice":
        values["options"] = "\n".join(tpl.fill("option", letter=k, text=v) for k, v in opts.items())
        return tpl.fill("choice" if concepts else "choice_plain", **values)
    if concepts:
        return tpl.fill("vqa", **values)
    if absent:
        return tpl.fill("vqa_absent", absent=absent_text, question=q)
    return tpl.fill("vqa_plain", question=q)
