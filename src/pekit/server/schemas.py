"""Response bodies of the HTTP API (pydantic), shown in the OpenAPI schema at ``/docs``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from pekit.memory import MAX_CATEGORY_LENGTH, MAX_CONTEXT_LENGTH, MAX_NAME_LENGTH

__all__ = ["AnswerOut", "ConceptOut", "ContextIn", "DetectionOut", "ErrorBody", "ErrorOut", "Forgotten",
           "Health", "RecognizeOut", "concept_out", "detections_out"]

#: Longest concept name, category, and context/question text the API accepts.
NAME_MAX, CATEGORY_MAX, TEXT_MAX = MAX_NAME_LENGTH, MAX_CATEGORY_LENGTH, MAX_CONTEXT_LENGTH  # the library's limits


class AlikeOut(BaseModel):
    name: str = Field(description="the other concept's name")
    agreement: float = Field(description="how well their parts agree, in the units of a recognition score (for "
                             "a person: 1 - the distance between their closest faces, a person's score)")
    over_threshold: bool = Field(description="at or above the recognition threshold (a person: within the face "
                                 "tolerance): look-alikes may take either name (a correction keeps one from "
                                 "happening again; a person under two names: forget one)")


class ConceptOut(BaseModel):
    name: str = Field(description="what the user calls it, e.g. 'Bo'")
    category: str = Field(description="its class, e.g. 'dog' (may be empty)")
    context: str = Field(description="what the LVLM is told about it (may be empty)")
    views: int = Field(description="number of reference views stored")
    kind: str = Field(default="object", description="'object', or 'person' (recognized by face)")
    corrections: int = Field(default=0, description="corrections it holds ('that was not it': `pekit correct`)")
    threshold: float | None = Field(description="the concept's own recognition threshold, or null for the global one")
    created: float = Field(description="seconds since the epoch")
    updated: float = Field(description="seconds since the epoch")
    boxes: list[list[float]] | None = Field(default=None, description="the object's box in each reference photo "
                                            "(x0, y0, x1, y1 pixels), as pekit outlined the object: a box sent "
                                            "is refined to the object in it; only when one concept is asked for")
    consistency: float | None = Field(default=None, description="how well its reference photos recognize one "
                                      "another (introduced from two or more); only when one concept is asked for")
    consistency_low: bool | None = Field(default=None, description="true: so low that new photos unlike these "
                                          "may be missed (add photos from other angles)")
    same_pictures: list[list[int]] | None = Field(default=None, description="pairs of reference photos (numbered "
                                                  "from 1) that are the same picture, a copy adds nothing; only "
                                                  "when one concept is asked for")
    most_alike: AlikeOut | None = Field(default=None, description="the other thing in memory it looks most like "
                                        "(introduce's answer only); at or above the threshold, a thing of their "
                                        "kind that was never introduced may be named after either")


class ContextIn(BaseModel):
    """New text for a stored concept; fields left out are kept."""

    model_config = {"extra": "forbid"}
    context: str | None = Field(default=None, max_length=TEXT_MAX, description="what the LVLM should know about it")
    category: str | None = Field(default=None, max_length=CATEGORY_MAX, description="its class, e.g. 'dog'")
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX, description="a new name for it "
                             "(views and corrections stay); 409 when another concept has it")


class DetectionOut(BaseModel):
    name: str
    score: float = Field(description="match score; higher is surer")
    box: list[float] = Field(description="x0, y0, x1, y1 in pixels of the uploaded photo (EXIF-rotated)")


class RecognizeOut(BaseModel):
    detections: list[DetectionOut] = Field(description="the caller's concepts found in the photo, best first")
    width: int
    height: int
    annotated: str | None = Field(default=None, description="the photo with the boxes drawn, as a "
                                  "data:image/jpeg;base64 URL (when annotate=true)")


class AnswerOut(BaseModel):
    text: str = Field(description="the LVLM's answer ('' with the 'none' backend)")
    choice: str | None = Field(default=None, description="the parsed letter of a multiple-choice question")
    detections: list[DetectionOut]
    prompt: str = Field(description="the exact prompt the LVLM got (or would get)")
    backend: str | None = None
    annotated: str | None = Field(default=None, description="the annotated photo the LVLM saw, as a data URL")


class Forgotten(BaseModel):
    forgotten: str


class Health(BaseModel):
    status: str
    version: str


class ErrorBody(BaseModel):
    type: str = Field(description="error class, e.g. ConceptNotFoundError")
    status: int
    message: str = Field(description="what went wrong and what to do")
    detail: Any = None


class ErrorOut(BaseModel):
    error: ErrorBody
    request_id: str


def concept_out(c: Any, *, boxes: bool = False, personalizer: Any = None) -> ConceptOut:
    """From a `Concept` or a `ConceptSummary`; ``boxes``: with the details of one concept
    (its boxes, its consistency and, given its ``personalizer``, whether that is low)."""
    views = c.views if isinstance(c.views, int) else len(c.views)
    from pekit.extract.views import SAME_PICTURES
    from pekit.personalizer import stored_consistency

    meta = c.meta if boxes and isinstance(getattr(c, "meta", None), dict) else {}
    from pekit.faces import concept_kind

    kind = getattr(c, "kind", None) or concept_kind(c)  # a summary says it; a Concept's meta does
    fixes = getattr(c, "corrections", None)  # a summary counts them; a Concept records them
    if fixes is None:
        record = c.meta.get("corrections") if isinstance(getattr(c, "meta", None), dict) else None
        fixes = len(record) if isinstance(record, list) else 0
    return ConceptOut(name=c.name, category=c.category, context=c.context, views=views, kind=kind,
                      corrections=int(fixes),
                      threshold=c.threshold, created=c.created, updated=c.updated, boxes=meta.get("boxes"),
                      consistency=stored_consistency(c) if meta else None,
                      consistency_low=personalizer.low_consistency(c) if personalizer is not None and meta else None,
                      same_pictures=meta.get(SAME_PICTURES) or None)


def detections_out(dets: Any) -> list[DetectionOut]:
    return [DetectionOut(name=d["name"], score=d["score"], box=d["box"]) for d in dets.to_list()]
