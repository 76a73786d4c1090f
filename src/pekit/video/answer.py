"""Answers about a clip: one contact sheet of key frames + a text timeline of the tracks.

The LVLM gets the contact sheet (best frame of each track, boxes in the tracks' colours)
and a prompt with the timeline; with the ``none`` backend the answer is empty and the
prompt (which holds the timeline) is what the CLI prints.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from pekit.prompt.text import validate_question
from pekit.types import Answer, Detections
from pekit.video.run import VideoResult

__all__ = ["respond_video", "video_prompt"]


def video_prompt(result: VideoResult, *, question: str | None, contexts: Mapping[str, str] | None = None,
                 persons: Iterable[str] = ()) -> str:
    """The text sent with the contact sheet: what the image is, the timeline, context, the task.

    >>> from pekit.video.decode import VideoInfo
    >>> info = VideoInfo("clip.mp4", 25.0, 4.0, 64, 64, "h264", 100, False)
    >>> print(video_prompt(VideoResult(info, 2.0, [], []), question="Who is there?"))
    This image is a frame of a 4.0 s video. None of the user's people or things appear in it.
    Who is there?
    """
    people = set(persons)
    contexts = dict(contexts or {})
    if not result.tracks:
        head = (f"This image is a frame of a {result.info.duration:.1f} s video. None of the user's people or "
                "things appear in it.")
        task = validate_question(question) if question is not None else \
            "Describe what happens in this video in one or two sentences."
        return f"{head}\n{task}"
    lines = [f"This image shows key frames of a {result.info.duration:.1f} s video, one per appearance, each "
             "marked with a coloured box. Timeline:"]
    for t in result.tracks:
        what = "the person" if t.name in people else "the entity"
        lines.append(f"- {t.start:.1f}-{t.end:.1f} s: {t.name} ({what} in the {result.colours.get(t.name, 'red')} "
                     "box)")
    for name in dict.fromkeys(t.name for t in result.tracks):
        if contexts.get(name):
            lines.append(f"About {name}: {contexts[name]}")
    names = ", ".join(dict.fromkeys(t.name for t in result.tracks))
    if question is None:
        lines.append(f"Describe what happens in this video in a few sentences, calling {names} by name and saying "
                     "when they appear. Do not mention the boxes or their colours.")
    else:
        lines.append(validate_question(question))
        lines.append("Answer using the names and times above, without mentioning the boxes or their colours.")
    return "\n".join(lines)


def respond_video(lvlm: Any, result: VideoResult, *, question: str | None, contexts: Mapping[str, str] | None = None,
                  persons: Iterable[str] = (), max_new_tokens: int = 256, temperature: float = 0.0,
                  seed: int | None = None) -> Answer:
    """Ask ``lvlm`` about a recognized clip (``result`` from ``recognize_video(keep_sheet=True)``)."""
    prompt = video_prompt(result, question=question, contexts=contexts, persons=persons)
    image = result.sheet_image if result.sheet_image is not None else np.zeros((64, 64, 3), np.uint8)
    start = time.perf_counter()
    text = lvlm.generate(image, prompt, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    tracks = result.tracks
    dets = Detections(xyxy=np.array([t.best_box for t in tracks], np.float32).reshape(-1, 4),
                      score=np.array([t.score for t in tracks], np.float32),
                      concept_id=np.array([t.concept_id for t in tracks], np.int64),
                      name=np.array([t.name for t in tracks], dtype=object))
    meta = {"backend": getattr(lvlm, "name", type(lvlm).__name__), "kind": "video-" + ("caption" if question is None
                                                                                        else "vqa"),
            "timeline": result.timeline(), "tracks": [t.to_dict() for t in tracks],
            "colours": dict(result.colours), "seconds": round(time.perf_counter() - start, 4)}
    return Answer(text=text, detections=dets, prompt=prompt, image=image, meta=meta)
