"""The CLI commands that look at photos and clips: ``recognize``, ``ask`` and ``caption``
(`pekit.cli` dispatches to them): the photos read in a stream (an unreadable one skipped in a
batch), the outputs checked before any work, one record per photo for ``--json``, and an
LVLM's text shown safe for a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pekit.cli_memory import open_personalizer, shown_line
from pekit.cli_output import asked_batch, check_outputs, failure, out_path, save, save_beside, skipped
from pekit.errors import InvalidInputError

__all__ = ["cmd_answer", "cmd_caption", "cmd_recognize"]


def _note_if_empty(p: Any, args: argparse.Namespace) -> None:
    """Say on stderr (not in ``--json``'s output) when the memory holds no concept yet: every
    photo would read "none of your concepts" for a reason the user can fix."""
    if p.memory.count(p.namespace) == 0:
        print(f"pekit {args.command}: note: no concepts in {p.memory.uri} (namespace '{shown_line(p.namespace)}') yet, "
              "so nothing can be recognized; add one with `pekit introduce NAME PHOTO...`", file=sys.stderr)
        from pekit.recognizing import told_empty

        told_empty(p)  # the library's own warning would say it twice


#: what an answer may not send to a terminal: control characters (escape sequences, bells)
#: and the bidi embeddings, overrides and isolates that reorder what follows on the line;
#: joiners, direction marks and every script's letters are text and stay as they are
_UNSAFE = {chr(c) for c in (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), *range(0x202A, 0x202F),
                            *range(0x2066, 0x206A))} - {"\n", "\t"}


def _shown_text(text: Any) -> str:
    """An LVLM's answer safe for a terminal: its lines and words kept, escapes and other
    controls shown (``\\x1b``), not run."""
    text = str(text).replace("\r\n", "\n").replace("\t", "    ")
    return "".join(ch.encode("unicode_escape").decode("ascii") if ch in _UNSAFE else ch for ch in text)


def _progress(items: list[Path], desc: str) -> Iterable[Path]:
    """``items``, with a progress bar on a terminal when there are several."""
    if len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, disable=not sys.stderr.isatty())


def _cmd_recognize_video(args: argparse.Namespace) -> int:
    clip = Path(args.images[0])
    check_outputs(args, [clip], photos=False)  # the video's own checks name its --out and --sheet suffixes
    # a folder (existing, or written with a trailing slash) gets a free name inside it, as for photos
    out = out_path(args.out, clip, False, "_pekit", ".mp4")
    sheet = out_path(args.sheet, clip, False, "_sheet", ".png")
    with open_personalizer(args) as p:
        _note_if_empty(p, args)
        result = p.recognize_video(clip, fps=args.fps, max_frames=args.max_frames, out=out, sheet=sheet,
                                   scene_cut=args.scene_cut, audio=args.audio, max_pixels=args.max_pixels)
    if sheet is not None and result.sheet is None:
        print(f"pekit {args.command}: note: nothing was recognized in {shown_line(clip)}, so no contact sheet was "
              "written", file=sys.stderr)
    if args.json:
        record = result.to_dict()
        record["written"] = [w for w in (result.annotated, result.sheet) if w]
        print(json.dumps(record))
        return 0
    print(result.timeline())
    if result.looked_until is not None and result.tracks:  # (the timeline says it when nothing was found)
        print(_partial_clip(result.span))
    t = result.timings
    print(f"{len(result.frames)} frames sampled at {result.fps:g} fps in {t['total']:.1f} s "
          f"(decode {t['decode']:.1f}, backbone {t['backbone']:.1f}, faces {t['faces']:.1f}, "
          f"tracking {t['tracking']:.2f}, render {t['render']:.1f})")
    sound = {"kept": "audio kept", "dropped": "audio dropped", None: "no audio in the source"}[result.audio]
    for label, path in ((f"annotated video ({sound})", result.annotated), ("contact sheet", result.sheet)):
        if path:
            print(f"{label}: {path}")
    return 0


def cmd_recognize(args: argparse.Namespace) -> int:
    from pekit.images import list_images
    from pekit.video.decode import is_video

    if len(args.images) == 1 and is_video(args.images[0]):
        if args.explain:
            raise InvalidInputError("--explain draws the heat maps of one photo; for a clip use --sheet "
                                    "(the best frame of each track)")
        return _cmd_recognize_video(args)
    if any(is_video(p) for p in args.images):
        raise InvalidInputError("give one video at a time (photos can be many): pekit recognize clip.mp4 --out a.mp4")
    if args.sheet:
        raise InvalidInputError("--sheet is the contact sheet of a video; for a photo use --out (and --explain)")
    images = list_images(args.images)
    if args.explain and len(images) != 1:
        raise InvalidInputError(f"--explain takes one photo, got {len(images)}")
    many = len(images) > 1
    batch = many or asked_batch(args.images)  # a folder: --out is a folder, --json a list, however many photos
    check_outputs(args, images, batch=batch)
    results: list[dict] = []
    with open_personalizer(args) as p:
        _note_if_empty(p, args)
        # passes overlap decoding and drawing; in a batch an unreadable photo is skipped, not fatal
        stream = p._recognize_stream((str(path) for path in images), skip_bad=many)
        for path, (img, dets) in zip(_progress(images, "recognize"), stream, strict=True):
            if img is None:
                results.append(skipped(path, dets, "recognize"))
                continue
            out = out_path(args.out, path, batch)
            if out is not None:
                save(p.annotate(img, dets), out)
            written = [str(out)] if out else []
            if args.explain:  # a folder (existing, or a name ending in /) gets photo_explain.png
                explain = out_path(os.path.expanduser(args.explain), path, False, suffix="_explain", ext=".png")
                assert explain is not None
                save(p.explain(str(path), dets), explain, "--explain")
                written.append(str(explain))
            results.append({"image": str(path), "detections": dets.to_list(),
                            **({"annotated": str(out)} if out else {}), "written": written})
    status = next((r["exit_code"] for r in results if "error" in r), 0)
    if args.json:  # a batch: a list of records; one photo: its record, or just its detections if nothing was written
        payload: Any = results if batch else results[0] if args.out or args.explain else results[0]["detections"]
        print(json.dumps(payload))
        return status
    for r in results:
        if "error" in r:
            print(f"{r['image']}: skipped, not read (the error is above)")
            continue
        found = ", ".join(f"{shown_line(d['name'])} ({d['score']:.2f}) at {[round(v) for v in d['box']]}"
                          for d in r["detections"]) or "none of your concepts"
        extra = [w for w in r["written"] if w != r.get("annotated")]
        print(f"{r['image']}: {found}" + (f"  -> {r['annotated']}" if "annotated" in r else "")
              + "".join(f"  (explained in {w})" for w in extra))
    return status


#: a batch stops when the LVLM fails on this many photos in a row: it is down, not one photo
_LVLM_FAILURES = 2


def _options(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out: dict[str, str] = {}
    for v in values:
        letter, sep, text = v.partition("=")
        if not sep or not letter.strip() or not text.strip():
            raise InvalidInputError(f"--option must look like A=Cat, got '{v}'")
        key = letter.strip().upper()
        if key in out:
            raise InvalidInputError(f"--option {key} is given twice ({key}={out[key]}, {v}); give each letter once")
        out[key] = text.strip()
    from pekit.prompt.question import check_options

    return check_options(out)  # two letters at least, A-Z: before any photo is looked at


def _print_answer(args: argparse.Namespace, path: Path, answer: Any, out: Path | None, many: bool) -> dict:
    scenes = answer.meta.get("scenes") if answer.meta.get("kind") == "video-caption" else None
    clip = str(answer.meta.get("kind", "")).startswith("video-")
    what = "sheet" if clip else "annotated"  # a clip's --out (ask or caption) is its contact sheet
    record = {"image": str(path), "text": answer.text, "choice": answer.choice,
              "detections": answer.detections.to_list(), "prompt": answer.prompt,
              "backend": answer.meta.get("backend"), **({what: str(out)} if out else {}),
              "written": [str(out)] if out else []}
    if scenes is not None:
        record["scenes"] = [{k: sc[k] for k in ("scene", "start", "end", "caption", "tracks", "timeline")}
                            for sc in scenes]
    if clip:
        record.update({k: answer.meta.get(k) for k in ("duration", "looked_until")})
    if not args.json:
        if many:
            print(f"== {path}")
        if scenes is not None:  # a clip: scene by scene, the caption or (no LVLM) the scene's timeline
            if answer.meta.get("backend") == "none":
                print("no LVLM configured (use --lvlm); the timeline of each scene:")
            for sc in scenes:
                print(f"scene {sc['scene']} ({sc['start']:.1f}-{sc['end']:.1f} s): {_shown_text(sc['caption'])}"
                      if sc["caption"] else f"scene {sc['scene']} ({sc['start']:.1f}-{sc['end']:.1f} s):")
                if answer.meta.get("backend") == "none":
                    print("\n".join("  " + line.strip() for line in sc["timeline"].splitlines()))
        elif answer.meta.get("backend") == "none":
            found = ", ".join(f"{shown_line(d['name'])} ({d['score']:.2f})" for d in record["detections"]) or "none"
            print(f"recognized: {found}")
            print("no LVLM configured (--lvlm none; pass e.g. --lvlm openai:URL#MODEL); the prompt it would get:")
            print(_shown_text(answer.prompt))  # it quotes names and contexts from the memory
        else:
            print(_shown_text(answer.text))
        if clip and answer.meta.get("looked_until") is not None:
            print(_partial_clip(answer.meta["span"]))
        if out:
            print(f"{'contact sheet' if clip else 'annotated image'}: {out}")
    return record


def _partial_clip(span: str) -> str:
    """The line that says a clip was cut short by ``--max-frames`` (`VideoResult.span`)."""
    return f"looked at {span}: raise --max-frames (or lower --fps) to look at all of it"


def cmd_answer(args: argparse.Namespace, question: str | None, images: list[Path], batch: bool = False) -> int:
    gen = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed}
    clip_options = {k: v for k, v in (("fps", args.fps), ("max_frames", args.max_frames)) if v is not None}
    if clip_options:
        from pekit.video.decode import is_video

        if not (len(images) == 1 and is_video(images[0])):
            raise InvalidInputError(f"--{next(iter(clip_options)).replace('_', '-')} is for a video clip; "
                                    "photos are looked at whole")
        gen.update(clip_options)
    options = _options(getattr(args, "option", None))
    from pekit.errors import BackendError, ImageError

    records = []
    many = len(images) > 1
    batch = batch or many  # a folder: --out is a folder, --json a list, however many photos it held
    check_outputs(args, images, batch=batch)
    command = "caption" if question is None else "ask"
    failed = 0  # the LVLM's failures in a row: one photo's (too large, refused), or the LVLM's own
    with open_personalizer(args) as p:
        _note_if_empty(p, args)
        for done, path in enumerate(_progress(images, command)):
            try:
                answer = (p.caption(str(path), **gen) if question is None
                          else p.ask(str(path), question, options=options, **gen))
            except ImageError as exc:
                if not many:
                    raise
                records.append(skipped(path, exc, command))
                continue
            except BackendError as exc:  # the answers already paid for are kept, and said
                if not many:
                    raise
                failed += 1
                if failed < _LVLM_FAILURES:
                    records.append(skipped(path, exc, command))
                    continue
                records.append(failure(path, exc))
                print(f"pekit {command}: error: {exc} ({path}); the LVLM failed on {failed} photos in a row, so the "
                      f"other {len(images) - done - 1} were not asked (the answers before are kept)", file=sys.stderr)
                break
            failed = 0
            out = out_path(args.out, path, batch)
            if answer.image is None:
                out = None
            elif out is not None:
                save(answer.image, out)
            elif answer.meta.get("backend") == "none" and not args.json:
                out = save_beside(answer.image, path, command)  # the annotated image the LVLM would get
            records.append(_print_answer(args, path, answer, out, batch))
    if args.json:
        print(json.dumps(records if batch else records[0]))
    return next((r["exit_code"] for r in records if "error" in r), 0)


def cmd_caption(args: argparse.Namespace) -> int:
    """``pekit caption PHOTO...`` (or a folder), or ``pekit caption CLIP`` (scene by scene)."""
    from pekit.images import list_images
    from pekit.video.decode import is_video

    if len(args.images) == 1 and is_video(args.images[0]):
        return cmd_answer(args, None, [Path(args.images[0])])
    if any(is_video(i) for i in args.images):
        raise InvalidInputError("give one video at a time (photos can be many): pekit caption clip.mp4")
    return cmd_answer(args, None, list_images(args.images), asked_batch(args.images))
