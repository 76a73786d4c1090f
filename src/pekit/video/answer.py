"""Answers about a clip: a few annotated key frames (or one contact sheet) + a text timeline.

A backend that takes several images per prompt (``max_images > 1``: multi-image ``hf:``
models, ``openai:`` servers) gets up to `MAX_KEY_FRAMES` key frames as separate images,
in time order, each with every recognized track of that frame boxed in its colour; the
frames are chosen to show every track at its best (greedy cover of the tracks). A
single-image backend gets one contact sheet (best frame per track). The prompt carries
the timeline of the tracks. ``caption`` answers per scene (shots between cuts): one
caption for each, with that scene's key frames and timeline. With the ``none`` backend
the answers are empty and the prompts (timelines included) are what the CLI prints.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pekit.answer.base import images_per_prompt
from pekit.errors import BackendError
from pekit.prompt.question import validate_question
from pekit.types import Answer, Detections
from pekit.video.run import VideoResult
from pekit.video.track import Track

log = logging.getLogger(__name__)

__all__ = ["MAX_KEY_FRAMES", "KeyFrame", "key_frames", "respond_video", "video_prompt"]

#: key frames sent to a multi-image backend at most (fewer when the backend takes fewer)
MAX_KEY_FRAMES = 4
_LIMIT_WORDS = re.compile(r"at most|limit|only one|single image|too many|multiple images|one image", re.I)


@dataclass
class KeyFrame:
    """One key frame: ``time`` (s), ``image (H, W, 3) uint8`` with its tracks boxed, ``tracks`` (ids)."""

    time: float
    image: np.ndarray
    tracks: list[int]


def _rgb(jpeg: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def key_frames(result: VideoResult, *, scene: int | None = None, limit: int = MAX_KEY_FRAMES) -> list[KeyFrame]:
    """Up to ``limit`` annotated frames that together show every track (of ``scene``), in time order.

    Needs ``result`` from ``recognize_video(keep_sheet=True)``. A scene without tracks
    gives its first frame, unannotated; a clip without tracks gives its first frame.
    """
    from pekit.video.render import stable_annotate

    shots = {k: v for k, v in result.shots.items() if scene is None or k[0] == scene}
    candidates: dict[int, tuple[bytes, frozenset[int], float]] = {}  # sample -> (JPEG, tracks in it, best score)
    for score, index, jpeg in shots.values():
        before = candidates.get(index)
        candidates[index] = (jpeg, frozenset(result.frames[index].tracks),
                             score if before is None else max(before[2], score))
    uncovered = {track_id for _, track_id in shots}
    chosen: dict[int, bytes] = {}
    while uncovered and len(chosen) < limit:  # greedy: the frame showing most unshown tracks, best score first
        open_ = {i: c for i, c in candidates.items() if i not in chosen and c[1] & uncovered}
        if not open_:
            break
        index = max(open_, key=lambda i: (len(open_[i][1] & uncovered), open_[i][2], -i))
        chosen[index] = open_[index][0]
        uncovered -= open_[index][1]
    if not chosen:
        first = result.scene_frames.get(scene if scene is not None else 1)
        if first is None:
            return []
        index, jpeg = first
        return [KeyFrame(result.frames[index].time, _rgb(jpeg), [])]
    draw = stable_annotate(result.colours)
    frames: list[KeyFrame] = []
    for index in sorted(chosen):
        image = _rgb(chosen[index])
        frame = result.frames[index]
        scale = image.shape[1] / max(result.info.width, 1)
        dets = Detections(xyxy=frame.detections.xyxy * scale, score=frame.detections.score,
                          concept_id=frame.detections.concept_id, name=frame.detections.name)
        frames.append(KeyFrame(frame.time, draw(image, dets), list(frame.tracks)))
    return frames


def _timeline_lines(result: VideoResult, tracks: list[Track], people: set[str]) -> list[str]:
    lines = []
    for t in tracks:
        what = "the person" if t.name in people else "the entity"
        colour = result.colours.get(t.name)
        lines.append(f"- {t.when}: {t.name} ({what} in the {colour} box)" if colour else
                     f"- {t.when}: {t.name} (not marked: more names than box colours)")
    return lines


def video_prompt(result: VideoResult, *, question: str | None, contexts: Mapping[str, str] | None = None,
                 persons: Iterable[str] = (), frames: list[KeyFrame] | None = None, scene: int | None = None) -> str:
    """The text sent with the key frames (``frames``, several images) or the contact sheet (None):
    what the images are, the timeline, context, the task; with ``scene``, about that scene only.

    >>> from pekit.video.decode import VideoInfo
    >>> info = VideoInfo("clip.mp4", 25.0, 4.0, 64, 64, "h264", 100, False)
    >>> print(video_prompt(VideoResult(info, 2.0, [], []), question="Who is there?"))
    This image is a frame of a 4.0 s video. None of the user's people or things appear in it.
    Who is there?
    """
    people = set(persons)
    contexts = dict(contexts or {})
    tracks = result.tracks if scene is None else result.scene_tracks(scene)
    clip = result.span  # "a 4.0 s video", or only the part of it that was looked at
    if scene is not None:
        sc = result.scene(scene)
        clip = f"scene {scene} ({sc.start:.1f}-{sc.end:.1f} s) of {clip}"
    what = "this scene" if scene is not None else "this video"
    if frames is not None and len(frames) > 1:
        at = ", ".join(f"image {i} at {f.time:.1f} s" for i, f in enumerate(frames, 1))
        head = f"These {len(frames)} images are frames of {clip}, in time order ({at})."
        head += (" The user's people and things are marked with coloured boxes. Timeline:" if tracks else
                 " None of the user's people or things appear in them.")
    elif frames is not None and len(frames) == 1:
        head = f"This image is a frame of {clip} at {frames[0].time:.1f} s."
        head += (" The user's people and things are marked with coloured boxes. Timeline:" if tracks else
                 " None of the user's people or things appear in it.")
    elif tracks:
        head = (f"This image shows key frames of {clip}, one per appearance, each marked with a coloured box. "
                "Timeline:")
    else:
        head = f"This image is a frame of {clip}. None of the user's people or things appear in it."
    if not tracks:
        task = validate_question(question) if question is not None else \
            f"Describe what happens in {what} in one or two sentences."
        return f"{head}\n{task}"
    lines = [head, *_timeline_lines(result, tracks, people)]
    for name in dict.fromkeys(t.name for t in tracks):
        if contexts.get(name):
            lines.append(f"About {name}: {contexts[name]}")
    names = ", ".join(dict.fromkeys(t.name for t in tracks))
    if question is None:
        length = "one or two sentences" if scene is not None else "a few sentences"
        lines.append(f"Describe what happens in {what} in {length}, calling {names} by name and saying "
                     "when they appear. Do not mention the boxes or their colours.")
    else:
        lines.append(validate_question(question))
        lines.append("Answer using the names and times above, without mentioning the boxes or their colours.")
    return "\n".join(lines)


def _limit_error(exc: BackendError) -> bool:
    text = str(exc)
    return "image" in text.lower() and bool(_LIMIT_WORDS.search(text))


def _ask(lvlm: Any, result: VideoResult, *, question: str | None, scene: int | None, contexts: Mapping[str, str],
         persons: list[str], generation: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """One LVLM call: key frames when the backend takes several images, else the sheet."""
    n = min(images_per_prompt(lvlm), MAX_KEY_FRAMES)
    frames = key_frames(result, scene=scene, limit=n) if n > 1 else []
    if len(frames) > 1:
        prompt = video_prompt(result, question=question, contexts=contexts, persons=persons, frames=frames,
                              scene=scene)
        try:
            text = lvlm.generate([f.image for f in frames], prompt, **generation)
            return text, prompt, {"images": len(frames), "sent": "key frames", "times": [round(f.time, 3)
                                                                                       for f in frames]}
        except BackendError as exc:  # a server that takes one image per prompt: say so, send the sheet
            if not _limit_error(exc):
                raise
            log.warning("%s refused %d images in one prompt (%s); sending one contact sheet instead",
                        getattr(lvlm, "name", "the LVLM"), len(frames), exc)
    if scene is not None:
        frames = key_frames(result, scene=scene, limit=1)
        image = frames[0].image if frames else _blank()
        prompt = video_prompt(result, question=question, contexts=contexts, persons=persons, frames=frames[:1],
                              scene=scene)
        return lvlm.generate(image, prompt, **generation), prompt, {"images": 1, "sent": "key frame"}
    image = result.sheet_image if result.sheet_image is not None else _blank()
    prompt = video_prompt(result, question=question, contexts=contexts, persons=persons)
    return lvlm.generate(image, prompt, **generation), prompt, {"images": 1, "sent": "contact sheet"}


def _blank() -> np.ndarray:
    return np.zeros((64, 64, 3), np.uint8)


def respond_video(lvlm: Any, result: VideoResult, *, question: str | None, contexts: Mapping[str, str] | None = None,
                  persons: Iterable[str] = (), max_new_tokens: int = 256, temperature: float = 0.0,
                  seed: int | None = None) -> Answer:
    """Ask ``lvlm`` about a recognized clip (``result`` from ``recognize_video(keep_sheet=True)``).

    ``question`` None: a caption per scene; ``Answer.text`` holds one line per scene
    (``"0.9-1.5 s: ..."``) and ``meta["scenes"]`` the scenes with their captions,
    prompts and timelines. A question is answered once about the whole clip. ``meta`` also
    says how much of the clip was looked at: ``duration``, ``looked_until`` (None: all of it)
    and ``span`` in words (`VideoResult.span`).
    """
    generation = {"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed}
    contexts, people = dict(contexts or {}), list(persons)
    start = time.perf_counter()
    meta: dict[str, Any] = {"backend": getattr(lvlm, "name", type(lvlm).__name__),
                            "kind": "video-" + ("caption" if question is None else "vqa")}
    if question is None and len(result.scenes) > 1:
        scenes, texts, prompts = [], [], []
        for sc in result.scenes:
            text, prompt, sent = _ask(lvlm, result, question=None, scene=sc.index, contexts=contexts,
                                      persons=people, generation=generation)
            scenes.append(dict(sc.to_dict(), caption=text, prompt=prompt, timeline=result.timeline(sc.index),
                               tracks=[t.id for t in result.scene_tracks(sc.index)], **sent))
            texts.append(f"{sc.start:.1f}-{sc.end:.1f} s: {text}" if text else "")
            prompts.append(prompt)
        text, prompt = "\n".join(t for t in texts if t), "\n\n".join(prompts)
        meta["scenes"] = scenes
    else:
        text, prompt, sent = _ask(lvlm, result, question=question, scene=None, contexts=contexts, persons=people,
                                  generation=generation)
        meta.update(sent)
        if question is None:
            meta["scenes"] = [dict(only.to_dict(), caption=text, prompt=prompt, timeline=result.timeline(),
                                   tracks=[t.id for t in result.tracks], **sent) for only in result.scenes[:1]]
    tracks = result.tracks
    dets = Detections(xyxy=np.array([t.best_box for t in tracks], np.float32).reshape(-1, 4),
                      score=np.array([t.score for t in tracks], np.float32),
                      concept_id=np.array([t.concept_id for t in tracks], np.int64),
                      name=np.array([t.name for t in tracks], dtype=object))
    meta.update({"timeline": result.timeline(), "tracks": [t.to_dict() for t in tracks],
                 "colours": dict(result.colours), "duration": round(result.info.duration, 3),
                 "looked_until": None if result.looked_until is None else round(result.looked_until, 3),
                 "span": result.span, "seconds": round(time.perf_counter() - start, 4)})
    image = result.sheet_image if result.sheet_image is not None else _blank()
    return Answer(text=text, detections=dets, prompt=prompt, image=image, meta=meta)
