"""`pekit` command line: thin — parse, build a `Personalizer`, call it, print.

    pekit introduce "Bo" dog/00.jpg dog/01.jpg --category dog --context "my parents' dog"
    pekit list
    pekit recognize photo.jpg --out annotated.jpg [--json]
    pekit recognize clip.mp4 --out annotated.mp4 [--fps 2] [--sheet sheet.png] [--json]
    pekit ask photo.jpg "What is Bo doing?" [--lvlm openai:http://localhost:8000/v1#model]
    pekit caption photo.jpg
    pekit forget "Bo"
    pekit eval recognition --dataset folder:../shared/data/dreambooth --refs 2

Every command takes ``--memory PATH`` (default ``$PEKIT_MEMORY`` or the user data dir),
``--preset``, ``--namespace`` and ``--json``. Errors print one line and exit with the
error's code (see `pekit.errors`), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from pekit import __version__
from pekit.errors import InvalidInputError, PekitError

__all__ = ["main"]


def _box(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a box is x0,y0,x1,y1 in pixels, got '{text}'") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"a box is x0,y0,x1,y1 in pixels, got '{text}'")
    return values


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory", metavar="PATH", help="memory file or URI (default: $PEKIT_MEMORY or the user data dir)")
    p.add_argument("--namespace", default="default", help="user whose concepts to use (default: default)")
    p.add_argument("--preset", default="offline", help="offline (default), cpu or paper")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _threshold(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=float, help="recognition threshold (default: the preset's)")


def _answer_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lvlm", help="none, hf:<id or dir> or openai:<base url>#<model> (default: the preset's)")
    p.add_argument("--out", metavar="PATH", help="write the annotated image here (a folder for several images)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pekit", description="Personalize vision-language models without training.")
    parser.add_argument("--version", action="version", version=f"pekit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("introduce", help="add a concept from reference photos")
    p.add_argument("name")
    p.add_argument("images", nargs="+", help="reference photos or folders of photos")
    p.add_argument("--category", default="", help="what it is, e.g. dog")
    p.add_argument("--context", default="", help="what the LVLM should know, e.g. \"my parents' dog\"")
    p.add_argument("--box", type=_box, action="append", metavar="X0,Y0,X1,Y1",
                   help="box around the object, once per image in order (default: found by saliency)")
    p.add_argument("--replace", action="store_true", help="overwrite a concept of the same name")
    p.add_argument("--kind", default="object", choices=["object", "person"],
                   help="person: recognized by face (one face per photo; --box picks one of several)")
    _common(p)

    p = sub.add_parser("list", help="list concepts")
    _common(p)

    p = sub.add_parser("forget", help="remove a concept")
    p.add_argument("name")
    _common(p)

    p = sub.add_parser("recognize", help="find your concepts in photos")
    p.add_argument("images", nargs="+", help="photos or folders, or one video")
    p.add_argument("--out", metavar="PATH", help="annotated image path (a folder for several images)")
    p.add_argument("--fps", type=float, default=2.0, help="video: frames sampled per second (default 2)")
    p.add_argument("--max-frames", type=int, help="video: at most this many sampled frames")
    p.add_argument("--sheet", metavar="PNG", help="video: contact sheet of the best frame per track")
    p.add_argument("--scene-cut", type=float, metavar="DIFF", help="video: also sample after cuts (e.g. 30)")
    _threshold(p)
    _common(p)

    p = sub.add_parser("ask", help="ask an LVLM about a photo, using your concepts' names")
    p.add_argument("image")
    p.add_argument("question")
    p.add_argument("--option", action="append", metavar="LETTER=TEXT", help="multiple-choice option, e.g. A=Cat")
    _answer_opts(p)
    _threshold(p)
    _common(p)

    p = sub.add_parser("caption", help="caption photos, calling your concepts by name")
    p.add_argument("images", nargs="+", help="photos or folders")
    _answer_opts(p)
    _threshold(p)
    _common(p)

    try:
        from pekit.eval.cli import add_eval_parser
    except ImportError:  # pragma: no cover - eval is part of the package
        pass
    else:
        add_eval_parser(sub)
    return parser


def _personalizer(args: argparse.Namespace, **extra: Any):
    from pekit.personalizer import Personalizer

    kwargs: dict[str, Any] = {}
    if getattr(args, "threshold", None) is not None:
        kwargs["threshold"] = args.threshold
    if getattr(args, "lvlm", None):
        kwargs["lvlm"] = args.lvlm
    return Personalizer(args.preset, memory=args.memory, namespace=args.namespace, **kwargs, **extra)


def _save(image: Any, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(image).save(path)
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInputError(f"cannot write '{path}': {exc}; check the folder and the file suffix") from exc


def _out_path(out: str | None, image: Path, many: bool, suffix: str = "_pekit") -> Path | None:
    if not out:
        return None
    target = Path(out)
    if many or target.is_dir():
        return target / f"{image.stem}{suffix}.jpg"
    return target


def _progress(items: list[Path], desc: str):
    if len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, disable=not sys.stderr.isatty())


def _cmd_introduce(args: argparse.Namespace) -> int:
    from pekit.images import list_images

    images = list_images(args.images)
    if args.box and len(args.box) != len(images):
        raise InvalidInputError(f"got {len(args.box)} --box for {len(images)} images; give one per image, in order")
    with _personalizer(args) as p:
        c = p.introduce(args.name, [str(i) for i in images], category=args.category, context=args.context,
                        boxes=args.box, replace=args.replace, kind=args.kind)
    record = {"name": c.name, "id": c.id, "kind": args.kind, "category": c.category, "context": c.context,
              "views": len(c.views), "memory": p.memory.uri}
    if args.json:
        print(json.dumps(record))
    else:
        print(f"introduced '{c.name}' ({c.category or 'no category'}) from {len(c.views)} view(s) "
              f"into {p.memory.uri}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from pekit.memory import open_memory

    with open_memory(args.memory) as memory:
        concepts = memory.concepts(namespace=args.namespace)
        rows = [{"name": c.name, "id": c.id, "category": c.category, "context": c.context,
                 "views": len(c.views), "threshold": c.threshold} for c in concepts]
        uri = memory.uri
    if args.json:
        print(json.dumps(rows))
    elif not rows:
        print(f"no concepts in {uri} (namespace '{args.namespace}'); add one with `pekit introduce`")
    else:
        width = max(len(str(r["name"])) for r in rows)
        for r in rows:
            extra = f" — {r['context']}" if r["context"] else ""
            print(f"{r['name']:<{width}}  {r['category'] or '-':<14} {r['views']} view(s){extra}")
    return 0


def _cmd_forget(args: argparse.Namespace) -> int:
    from pekit.memory import open_memory

    with open_memory(args.memory) as memory:
        memory.remove(args.name, namespace=args.namespace)
    print(json.dumps({"forgotten": args.name}) if args.json else f"forgot '{args.name}'")
    return 0


def _cmd_recognize_video(args: argparse.Namespace) -> int:
    with _personalizer(args) as p:
        result = p.recognize_video(args.images[0], fps=args.fps, max_frames=args.max_frames, out=args.out,
                                   sheet=args.sheet, scene_cut=args.scene_cut)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(result.timeline())
    t = result.timings
    print(f"{len(result.frames)} frames sampled at {result.fps:g} fps in {t['total']:.1f} s "
          f"(decode {t['decode']:.1f}, backbone {t['backbone']:.1f}, faces {t['faces']:.1f}, "
          f"tracking {t['tracking']:.2f}, render {t['render']:.1f})")
    for label, path in (("annotated video (no audio)", result.annotated), ("contact sheet", result.sheet)):
        if path:
            print(f"{label}: {path}")
    return 0


def _cmd_recognize(args: argparse.Namespace) -> int:
    from pekit.images import list_images
    from pekit.video.decode import is_video

    if len(args.images) == 1 and is_video(args.images[0]):
        return _cmd_recognize_video(args)
    if any(is_video(p) for p in args.images):
        raise InvalidInputError("give one video at a time (photos can be many): pekit recognize clip.mp4 --out a.mp4")
    images = list_images(args.images)
    results = []
    with _personalizer(args) as p:
        for path in _progress(images, "recognize"):
            dets = p.recognize(str(path))
            out = _out_path(args.out, path, len(images) > 1)
            if out is not None:
                _save(p.annotate(str(path), dets), out)
            results.append({"image": str(path), "detections": dets.to_list(),
                            **({"annotated": str(out)} if out else {})})
    if args.json:
        print(json.dumps(results[0]["detections"] if len(results) == 1 else results))
        return 0
    for r in results:
        found = ", ".join(f"{d['name']} ({d['score']:.2f}) at {[round(v) for v in d['box']]}"
                          for d in r["detections"]) or "none of your concepts"
        print(f"{r['image']}: {found}" + (f"  -> {r['annotated']}" if "annotated" in r else ""))
    return 0


def _options(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    out = {}
    for v in values:
        letter, sep, text = v.partition("=")
        if not sep or not letter.strip() or not text.strip():
            raise InvalidInputError(f"--option must look like A=Cat, got '{v}'")
        out[letter.strip().upper()] = text.strip()
    return out


def _print_answer(args: argparse.Namespace, path: Path, answer: Any, out: Path | None, many: bool) -> dict:
    record = {"image": str(path), "text": answer.text, "choice": answer.choice,
              "detections": answer.detections.to_list(), "prompt": answer.prompt,
              "backend": answer.meta.get("backend"), **({"annotated": str(out)} if out else {})}
    if not args.json:
        if many:
            print(f"== {path}")
        if answer.meta.get("backend") == "none":
            found = ", ".join(f"{d['name']} ({d['score']:.2f})" for d in record["detections"]) or "none"
            print(f"recognized: {found}")
            print("no LVLM configured (use --lvlm); the prompt it would get:")
            print(answer.prompt)
        else:
            print(answer.text)
        if out:
            print(f"annotated image: {out}")
    return record


def _cmd_answer(args: argparse.Namespace, question: str | None, images: list[Path]) -> int:
    gen = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed}
    options = _options(getattr(args, "option", None))
    records = []
    many = len(images) > 1
    with _personalizer(args) as p:
        for path in _progress(images, "caption" if question is None else "ask"):
            answer = (p.caption(str(path), **gen) if question is None
                      else p.ask(str(path), question, options=options, **gen))
            out = _out_path(args.out, path, many)
            if out is None and answer.meta.get("backend") == "none" and not args.json:
                out = Path(f"{path.stem}_pekit.jpg")
            if out is not None and answer.image is not None:
                _save(answer.image, out)
            records.append(_print_answer(args, path, answer, out, many))
    if args.json:
        print(json.dumps(records[0] if len(records) == 1 else records))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pekit`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "introduce":
            return _cmd_introduce(args)
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "forget":
            return _cmd_forget(args)
        if args.command == "recognize":
            return _cmd_recognize(args)
        if args.command == "ask":
            return _cmd_answer(args, args.question, [Path(args.image)])
        if args.command == "caption":
            from pekit.images import list_images

            return _cmd_answer(args, None, list_images(args.images))
        if args.command == "eval":
            from pekit.eval.cli import run_eval

            return run_eval(args)
        parser.error(f"unknown command {args.command}")  # pragma: no cover
    except PekitError as exc:
        print(f"pekit {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
