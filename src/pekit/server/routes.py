"""The ``/v1`` routes: the library's verbs for the API key's owner.

Concepts are addressed by name inside the caller's namespace (``/v1/concepts/{name}``);
no route takes a namespace or a concept id, so there is nothing to guess. Backbone work
(introduce, add a view, recognize, ask, caption) goes through the bounded pool; store-only
work (list, get, update, forget) runs in FastAPI's thread pool.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Request, Response, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from pekit.errors import InvalidInputError, PekitError
from pekit.images import NamedImage
from pekit.server.keys import ApiKey
from pekit.server.limits import RequestError, check_filename, check_photo, check_url_name
from pekit.server.schemas import (
    CATEGORY_MAX,
    NAME_MAX,
    TEXT_MAX,
    AlikeOut,
    AnswerOut,
    ConceptOut,
    ContextIn,
    ErrorOut,
    Forgotten,
    RecognizeOut,
    concept_out,
    detections_out,
)
from pekit.server.service import Service, jpeg_data_url

__all__ = ["router"]

_bearer = HTTPBearer(auto_error=False, description="an API key from `pekit keys create USER`")
_ERROR_TEXT = {
    400: "a malformed request (multipart body, a path as a file name)", 401: "missing, invalid or revoked API key",
    404: "no such concept", 409: "name taken, or a memory made by another backbone", 413: "upload too large",
    415: "not an image", 422: "invalid input", 502: "the LVLM or another backend failed",
    503: "busy: retry after the Retry-After header's seconds",
    507: "the server's memory store has no room left (nothing stored was lost)",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI error responses: the ones every /v1 route may give plus ``codes``."""
    return {code: {"model": ErrorOut, "description": _ERROR_TEXT[code]} for code in sorted({401, 422, 503, *codes})}


router = APIRouter(prefix="/v1")


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


def current_user(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> ApiKey:
    """The key's owner; the only source of a namespace."""
    return service(request).user(credentials.credentials if credentials else None)


User = Annotated[ApiKey, Depends(current_user)]
Svc = Annotated[Service, Depends(service)]
ConceptName = Annotated[str, Path(min_length=1, max_length=NAME_MAX, description="the concept's name, e.g. Bo")]


def _name(svc: Service, name: str) -> str:
    return check_url_name(name, limits=svc.limits)


def _label(upload: UploadFile, what: str) -> str:
    """How errors name an upload: ``the photo (cat.jpg)``, ``photo 2 (b.png)``."""
    return f"{what} ({upload.filename or 'unnamed'})"


async def _read_photo(svc: Service, upload: UploadFile, label: str, request: Request | None = None) -> NamedImage:
    """The upload's bytes, checked, under its file name (what a concept records as its
    reference); errors call it ``label`` with the file name (`_label`), not ``<N bytes>``.
    With the ``request`` of a route that takes one ``photo``: refused when it sends several
    (which one would be used is not the client's choice)."""
    if request is not None:
        sent = (await request.form()).getlist("photo")
        if len(sent) > 1:
            raise RequestError(f"got {len(sent)} photos in the 'photo' field; this takes one: send one request per "
                               "photo (to introduce a concept from several photos: POST /v1/concepts with 'photos')")
    check_filename(upload.filename)
    # one byte over the limit tells a photo over it; a file read takes at most sys.maxsize (a limit
    # such as `pekit serve --max-photo-mb 1e13` would overflow it and fail every upload)
    data = await upload.read(min(svc.limits.max_photo_bytes + 1, sys.maxsize))
    shown = _label(upload, label)
    # Pillow's header parse is quick for a photo but not bounded for every format: off the event loop
    await run_in_threadpool(check_photo, data, limits=svc.limits, label=shown)
    return NamedImage(data, upload.filename or label, label=shown)


def _load_photo(svc: Service, photo: NamedImage) -> Any:
    """The decoded photo, within the server's pixel limit."""
    from pekit.images import load_image

    return load_image(photo, max_pixels=svc.limits.max_pixels)


def _json_field(text: str | None, what: str, example: str) -> Any:
    if text is None or not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(f"{what} must be JSON, e.g. {example}; got {text[:60]!r}") from exc
    except RecursionError:  # "[[[[..." nested past Python's limit
        raise InvalidInputError(f"{what} is nested too deeply to be what it should be, e.g. {example}") from None


# ---- concepts -------------------------------------------------------------------------
@router.get("/concepts", response_model=list[ConceptOut], summary="list your concepts",
             responses=_errors())
def list_concepts(svc: Svc, user: User) -> list[ConceptOut]:
    return [concept_out(s) for s in svc.personalizer.memory.summaries(namespace=user.namespace)]


@router.post("/concepts", response_model=ConceptOut, status_code=201, summary="introduce a concept from photos",
             responses=_errors(400, 409, 413, 415, 507))
async def introduce(
    svc: Svc, user: User,
    name: Annotated[str, Form(min_length=1, max_length=NAME_MAX, description="what you call it, e.g. Bo")],
    photos: Annotated[list[UploadFile], File(description="one or more reference photos of it")],
    category: Annotated[str | None, Form(max_length=CATEGORY_MAX, description="its class, e.g. dog (with "
                                         "replace: kept unless given)")] = None,
    context: Annotated[str | None, Form(max_length=TEXT_MAX, description="what the LVLM should know (with "
                                        "replace: kept unless given)")] = None,
    boxes: Annotated[str | None, Form(max_length=TEXT_MAX, description="JSON list, one [x0, y0, x1, y1] box "
                                      "(or null) per photo, in pixels; default: found by saliency")] = None,
    replace: Annotated[bool, Form(description="overwrite a concept of the same name")] = False,
    kind: Annotated[Literal["object", "person"], Form(description="'person': recognized by face (one face per "
                                                      "photo; needs pekit's [faces] extra on the server)")] = "object",
) -> ConceptOut:
    name = _name(svc, name)
    if len(photos) > svc.limits.max_photos:
        raise RequestError(f"got {len(photos)} photos; send at most {svc.limits.max_photos} per concept "
                           "(add more later with POST /v1/concepts/{name}/views)", status=413)
    box_list = _json_field(boxes, "boxes", "[[10, 20, 200, 220], null]")
    if box_list is not None and not isinstance(box_list, list):
        raise InvalidInputError("boxes must be a JSON list with one [x0, y0, x1, y1] (or null) per photo")
    datas = [await _read_photo(svc, p, f"photo {i + 1}") for i, p in enumerate(photos)]
    p = svc.personalizer_for(user)
    concept = await svc.pool.run(p.introduce, name, datas, category=category, context=context, boxes=box_list,
                                 replace=replace, kind=kind)
    out = concept_out(concept, boxes=True, personalizer=p)
    import anyio

    # no backbone pass (parts against parts), and not through the pool: a full queue must not
    # turn an introduce that was stored into a 503
    try:  # (introduce warned of it in the log; a DELETE in between leaves nothing to compare)
        alike = await anyio.to_thread.run_sync(p.most_alike, concept.name)
    except PekitError:
        alike = None
    if alike is not None:  # what introduce warns of in the log, said to the client too
        from pekit.introducing import lookalike_bar

        out.most_alike = AlikeOut(name=alike[0], agreement=round(float(alike[1]), 4),
                                  over_threshold=bool(alike[1] >= lookalike_bar(p, concept)))
    return out


@router.get("/concepts/{name}", response_model=ConceptOut, summary="one concept",
             responses=_errors(404))
def get_concept(svc: Svc, user: User, name: ConceptName) -> ConceptOut:
    p = svc.personalizer_for(user)
    return concept_out(p.get(_name(svc, name)), boxes=True, personalizer=p)


@router.patch("/concepts/{name}", response_model=ConceptOut, summary="change a concept's context, category or name",
             responses=_errors(404, 413, 507))
def update_concept(svc: Svc, user: User, name: ConceptName, body: ContextIn) -> ConceptOut:
    p = svc.personalizer_for(user)
    # read and written in one transaction (a view added meanwhile by another request stays); no change, no write
    changed = p.update(_name(svc, name), context=body.context, category=body.category,
                       rename=None if body.name is None else _name(svc, body.name))
    return concept_out(changed, boxes=True, personalizer=p)


@router.post("/concepts/{name}/views", response_model=ConceptOut, summary="add one more reference photo",
             responses=_errors(400, 404, 409, 413, 415, 507))
async def add_view(
    svc: Svc, user: User, name: ConceptName, request: Request,
    photo: Annotated[UploadFile, File(description="another photo of the concept")],
    box: Annotated[str | None, Form(max_length=200, description="JSON [x0, y0, x1, y1] in pixels; "
                                    "default: found by saliency")] = None,
) -> ConceptOut:
    name = _name(svc, name)
    xyxy = _json_field(box, "box", "[10, 20, 200, 220]")
    data = await _read_photo(svc, photo, "the photo", request)
    p = svc.personalizer_for(user)
    return concept_out(await svc.pool.run(p.add_view, name, data, box=xyxy), boxes=True, personalizer=p)


@router.delete("/concepts/{name}/views/last", response_model=ConceptOut,
               summary="take back the last photo added to a concept", responses=_errors(404, 422, 507))
def undo_view(svc: Svc, user: User, name: ConceptName) -> ConceptOut:
    # no backbone pass; 422 when no photo was added since the concept was introduced
    p = svc.personalizer_for(user)
    return concept_out(p.undo_view(_name(svc, name)), boxes=True, personalizer=p)


@router.delete("/concepts/{name}", response_model=Forgotten, summary="forget a concept",
             responses=_errors(404, 507))
def forget(svc: Svc, user: User, name: ConceptName) -> Forgotten:
    # the name as it was stored: DELETE /v1/concepts/bo forgets 'Bo'
    return Forgotten(forgotten=svc.personalizer_for(user).forget(_name(svc, name)))


# ---- photos -----------------------------------------------------------------------------
Threshold = Annotated[float | None, Form(ge=-1.0, le=1.0, allow_inf_nan=False, description="recognition threshold "
                                         "(default: the server's)")]
Annotate = Annotated[bool, Form(description="return the photo with the boxes drawn")]
MaxTokens = Annotated[int, Form(ge=1, le=2048, description="longest answer, in tokens")]


@router.post("/recognize", response_model=RecognizeOut, summary="find your concepts in a photo",
             responses=_errors(400, 409, 413, 415))
async def recognize(svc: Svc, user: User, request: Request, photo: Annotated[UploadFile, File(description="the photo")],
                    threshold: Threshold = None, annotate: Annotate = True) -> RecognizeOut:
    data = await _read_photo(svc, photo, "the photo", request)
    p = svc.personalizer_for(user)

    def work() -> RecognizeOut:
        img = _load_photo(svc, data)
        dets = p.recognize(img, threshold=threshold)
        shown = jpeg_data_url(p.annotate(img, dets)) if annotate else None
        return RecognizeOut(detections=detections_out(dets), width=img.shape[1], height=img.shape[0],
                            annotated=shown)

    return await svc.pool.run(work)


async def _respond(svc: Svc, user: ApiKey, request: Request, photo: UploadFile, question: str | None,
                   options: str | None, threshold: float | None, max_new_tokens: int) -> AnswerOut:
    data = await _read_photo(svc, photo, "the photo", request)
    choices = _json_field(options, "options", '{"A": "Bo", "B": "Mochi"}')
    if choices is not None and not (isinstance(choices, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in choices.items())):
        raise InvalidInputError('options must be a JSON object of letter -> text, e.g. {"A": "Bo", "B": "Mochi"}')
    p = svc.personalizer_for(user)

    def work() -> AnswerOut:
        img = _load_photo(svc, data)
        if question is None:
            answer = p.caption(img, threshold=threshold, max_new_tokens=max_new_tokens)
        else:
            answer = p.ask(img, question, options=choices, threshold=threshold, max_new_tokens=max_new_tokens)
        shown = jpeg_data_url(answer.image) if answer.image is not None else None
        return AnswerOut(text=answer.text, choice=answer.choice, detections=detections_out(answer.detections),
                         prompt=answer.prompt, backend=answer.meta.get("backend"), annotated=shown)

    return await svc.pool.run(work)


@router.post("/ask", response_model=AnswerOut, summary="ask the LVLM about a photo, using your concepts' names",
             responses=_errors(400, 409, 413, 415, 502))
async def ask(svc: Svc, user: User, request: Request, photo: Annotated[UploadFile, File(description="the photo")],
              question: Annotated[str, Form(min_length=1, max_length=TEXT_MAX, description="e.g. What is Bo doing?")],
              options: Annotated[str | None, Form(max_length=TEXT_MAX, description='JSON multiple-choice options, '
                                                  'e.g. {"A": "Bo", "B": "Mochi"}')] = None,
              threshold: Threshold = None, max_new_tokens: MaxTokens = 256) -> AnswerOut:
    return await _respond(svc, user, request, photo, question, options, threshold, max_new_tokens)


@router.post("/caption", response_model=AnswerOut, summary="caption a photo, calling your concepts by name",
             responses=_errors(400, 409, 413, 415, 502))
async def caption(svc: Svc, user: User, request: Request,
                  photo: Annotated[UploadFile, File(description="the photo")],
                  threshold: Threshold = None, max_new_tokens: MaxTokens = 256) -> AnswerOut:
    return await _respond(svc, user, request, photo, None, None, threshold, max_new_tokens)


@router.get("/me", summary="who the key belongs to",
            responses={200: {"description": "the key's user"}, 401: _errors()[401]})
def me(user: User, response: Response) -> dict[str, str]:
    response.headers["Cache-Control"] = "no-store"
    return {"user": user.namespace, "key_id": user.key_id}
