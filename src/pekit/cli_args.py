"""The `pekit` command line's arguments: `build_parser` (every subcommand and its options).

`pekit.cli` runs the commands; the ``eval``, ``doctor``, ``serve`` and ``keys`` subcommands
add their own parsers (`pekit.eval.cli`, `pekit.doctor`, `pekit.server.cli`). The docs'
CLI reference page is generated from this parser (``docs/hooks/cli_reference.py``).

Example:
    >>> args = build_parser().parse_args(glue_negative_boxes(["add-view", "Bo", "b.jpg", "--box", "-5,0,90,80"]))
    >>> args.command, args.box
    ('add-view', [-5.0, 0.0, 90.0, 80.0])
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from pekit import __version__

__all__ = ["build_parser", "glue_negative_boxes", "lvlm_option"]


def _box(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a box is x0,y0,x1,y1 in pixels, got '{text}'") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"a box is x0,y0,x1,y1 in pixels, got '{text}'")
    return values


_NEGATIVE_BOX = re.compile(r"-\s*[\d.]")


def glue_negative_boxes(argv: list[str]) -> list[str]:
    """``--box -50,0,10,10`` -> ``--box=-50,0,10,10``: argparse takes a leading '-' for an option."""
    out: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--box":
            value = next(it, None)
            if value is not None and _NEGATIVE_BOX.match(value):
                out.append(f"--box={value}")
                continue
            out.append(arg)
            if value is not None:
                out.append(value)
            continue
        out.append(arg)
    return out


def _common(p: argparse.ArgumentParser, *, reads: bool = False, batch: bool = False) -> None:
    p.add_argument("--memory", metavar="PATH", help="memory file or URI (default: $PEKIT_MEMORY or the user data dir)")
    p.add_argument("--namespace", default="default", help="user whose concepts to use (default: default)")
    p.add_argument("--preset", default="offline",
                   help="offline (default), offline-thorough, offline-fast, cpu or paper")
    p.add_argument("--json", action="store_true", help="machine-readable output" + (
        " (several photos or a folder: a list of records, one per photo)" if batch else ""))
    if reads:
        p.add_argument("--skip-damaged", action="store_true",
                       help="leave out concepts whose stored rows are damaged (see `pekit repair`)")


def _threshold(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threshold", type=float, help="recognition threshold of objects (default: the preset's); "
                   "people are matched by face distance instead (--face-tolerance)")


def lvlm_option(text: str) -> tuple[str, Any]:
    """``"timeout=300"`` -> ``("timeout", 300)``: a number, true/false, none, or the text.

    >>> lvlm_option("timeout=300"), lvlm_option("api_key_env=none"), lvlm_option("stream=True")
    (('timeout', 300), ('api_key_env', None), ('stream', True))
    """
    key, sep, value = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (e.g. timeout=300)")
    value = value.strip()
    words = {"none": None, "null": None, "true": True, "false": False}
    if value.lower() in words:
        return key, words[value.lower()]
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def _faces(p: argparse.ArgumentParser) -> None:
    p.add_argument("--faces", metavar="MODEL", help="face model of people: dlib (default: frontal faces, fast), "
                   "dlib-cnn (turned and small faces too, 7-10 s a 640x360 frame on a 2-core CPU; the same "
                   "vectors, so it reads people introduced with dlib) or onnx:<path> (see docs/backends.md)")
    p.add_argument("--face-tolerance", type=float, metavar="D",
                   help="how far a face may be from a person's faces and still be them (default: the face "
                   "model's, 0.6 for dlib; lower is stricter)")


def _answer_opts(p: argparse.ArgumentParser, *, many: bool) -> None:
    p.add_argument("--lvlm", help="none, hf:<id or dir> or openai:<base url>#<model> (default: the preset's)")
    p.add_argument("--lvlm-option", action="append", type=lvlm_option, metavar="KEY=VALUE",
                   help="an option of the LVLM, e.g. timeout=300, retries=5, max_image_side=1024, "
                   "api_key_env=MY_KEY or none, stream=true (openai:); dtype=float16 (hf:); repeatable")
    p.add_argument("--out", metavar="PATH", help="write the annotated image here" + (
        " (a folder for several images)" if many else " (a file, or a folder)"))
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--fps", type=float, help="video: frames sampled per second (default 2)")
    p.add_argument("--max-frames", type=int, help="video: at most this many sampled frames (each is a backbone pass)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pekit", description="Personalize vision-language models without training.")
    parser.add_argument("--version", action="version", version=f"pekit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("introduce", help="add a concept from reference photos")
    p.add_argument("name")
    p.add_argument("images", nargs="+", help="reference photos or folders of photos")
    p.add_argument("--category", help="what it is, e.g. dog (with --replace: kept unless given)")
    p.add_argument("--context", help="what the LVLM should know, e.g. \"my parents' dog\" (with --replace: kept "
                   "unless given)")
    p.add_argument("--box", type=_box, action="append", metavar="X0,Y0,X1,Y1",
                   help="box around the object, once per image in order (default: found by saliency)")
    p.add_argument("--replace", action="store_true", help="overwrite a concept of the same name")
    p.add_argument("--kind", default="object", choices=["object", "person"],
                   help="person: recognized by face (one face per photo; --box picks one of several)")
    _faces(p)
    _common(p)

    p = sub.add_parser("list", help="list concepts")
    _common(p, reads=True)

    p = sub.add_parser("forget", help="remove a concept")
    p.add_argument("name")
    _common(p)

    p = sub.add_parser("correct", help="say a detection was wrong: its region becomes a negative view of NAME",
                       description="pekit correct PHOTO --not NAME: NAME was recognized in PHOTO but it is "
                                   "not NAME; that region is kept as a negative view of NAME, so the same "
                                   "look-alike is not called NAME again. pekit correct --undo --not NAME "
                                   "takes the last correction back.")
    p.add_argument("image", nargs="?", help="the photo in which NAME was wrongly recognized")
    p.add_argument("--not", dest="name", required=True, metavar="NAME", help="the concept it is not")
    p.add_argument("--undo", action="store_true",
                   help="take back NAME's last correction instead (no PHOTO): pekit correct --undo --not NAME")
    p.add_argument("--box", type=_box, metavar="X0,Y0,X1,Y1",
                   help="which detection of NAME was wrong, when it was recognized more than once in PHOTO")
    p.add_argument("--threshold", type=float,
                   help="the threshold the wrong detection was shown at (recognize --threshold; default: the preset's)")
    _common(p)

    p = sub.add_parser("add-view", help="add one more reference photo to a concept",
                       description="pekit add-view NAME PHOTO [--box X0,Y0,X1,Y1]: one more reference photo of "
                                   "NAME (one backbone pass). pekit add-view NAME --undo takes the last one added "
                                   "back.")
    p.add_argument("name")
    p.add_argument("image", nargs="?", help="a photo of NAME")
    p.add_argument("--box", type=_box, metavar="X0,Y0,X1,Y1", help="box around the object (default: saliency)")
    p.add_argument("--undo", action="store_true",
                   help="take back the last photo added to NAME instead (no PHOTO): pekit add-view NAME --undo")
    _faces(p)
    _common(p)

    p = sub.add_parser("update", help="change a concept's context, category or name (its photos stay)",
                       description="pekit update NAME [--context TEXT] [--category TEXT] [--rename NEW]: change "
                                   "what the LVLM is told about NAME, its category or its name, without its photos "
                                   "or a backbone pass.")
    p.add_argument("name")
    p.add_argument("--context", help="what the LVLM should know, e.g. \"my parents' dog, loves the beach\"")
    p.add_argument("--category", help="what it is, e.g. dog")
    p.add_argument("--rename", metavar="NEW", help="call it NEW from now on (views and corrections stay)")
    _common(p)

    p = sub.add_parser("copy", help="copy concepts to another memory (a backup, or a move to a server)",
                       description="pekit copy DEST [NAME...]: copy every concept of the memory (--memory, else "
                                   "the default one), of one --namespace, or the NAMEs, into DEST (a file, created "
                                   "if missing, or a postgresql:// URI), in one transaction. Concepts keep their "
                                   "views, corrections and context; pekit does not keep the photos they were made "
                                   "from, so a copy is their only backup.")
    p.add_argument("destination", metavar="DEST", help="memory file or URI to copy into")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="copy only these concepts (of --namespace, else of the namespace 'default')")
    p.add_argument("--memory", metavar="PATH", help="memory to copy (default: $PEKIT_MEMORY or the user data dir)")
    p.add_argument("--namespace", help="copy only this user's concepts (default: every namespace)")
    p.add_argument("--to-namespace", metavar="NS", help="put every copy in this namespace (share a concept with "
                   "another user: DEST may then be the memory itself)")
    p.add_argument("--replace", action="store_true", help="overwrite concepts of the same name in DEST")
    p.add_argument("--skip-damaged", action="store_true",
                   help="leave out concepts of the memory copied whose stored rows are damaged (see `pekit repair`)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("repair", help="remove concepts whose stored rows are damaged, and report them")
    p.add_argument("--dry-run", action="store_true", help="only report the damaged concepts")
    _common(p)

    p = sub.add_parser("recognize", help="find your concepts in photos")
    p.add_argument("images", nargs="+", help="photos or folders, or one video")
    p.add_argument("--out", metavar="PATH", help="annotated image (or video) path; a folder (several images, or "
                   "a name ending in /) gets photo_pekit.jpg (clip_pekit.mp4) inside")
    p.add_argument("--explain", metavar="PNG", help="write, per detection, the patch similarity heat map over "
                   "the photo and the reference view it matched best (one image)")
    p.add_argument("--fps", type=float, default=2.0, help="video: frames sampled per second (default 2)")
    p.add_argument("--max-frames", type=int, help="video: at most this many sampled frames")
    p.add_argument("--sheet", metavar="PNG", help="video: contact sheet of the best frame per track (.png or "
                   ".jpg; a folder gets clip_sheet.png)")
    p.add_argument("--scene-cut", type=float, metavar="DIFF",
                   help="video: also sample the first frame of each scene, a cut being a mean frame difference "
                   "over DIFF (0-255; the default for scenes is 16)")
    p.add_argument("--audio", choices=("auto", "keep", "drop"), default="auto",
                   help="video: the source's audio in --out: copied (keep), left out (drop), or kept where the "
                   "container can hold its codec (auto, default)")
    p.add_argument("--max-pixels", type=int, metavar="N",
                   help="video: refuse frames over N pixels (default 8192*8192), checked before decoding")
    _threshold(p)
    _faces(p)
    _common(p, reads=True, batch=True)

    p = sub.add_parser("ask", help="ask an LVLM about a photo, using your concepts' names")
    p.add_argument("image")
    p.add_argument("question")
    p.add_argument("--option", action="append", metavar="LETTER=TEXT", help="multiple-choice option, e.g. A=Cat")
    _answer_opts(p, many=False)
    _threshold(p)
    _faces(p)
    _common(p, reads=True)

    p = sub.add_parser("caption", help="caption photos (or a clip, scene by scene), calling your concepts by name")
    p.add_argument("images", nargs="+", help="photos or folders, or one video (a caption per scene)")
    _answer_opts(p, many=True)
    _threshold(p)
    _faces(p)
    _common(p, reads=True, batch=True)

    try:
        from pekit.eval.cli import add_eval_parser
    except ImportError:  # pragma: no cover - eval is part of the package
        pass
    else:
        add_eval_parser(sub)
    from pekit.doctor import add_doctor_parser
    from pekit.server.cli import add_keys_parser, add_serve_parser

    add_doctor_parser(sub)
    add_serve_parser(sub)
    add_keys_parser(sub)
    return parser
