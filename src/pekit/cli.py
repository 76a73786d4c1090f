"""`pekit` command line: thin — parse, build a `Personalizer`, call it, print. This module
parses and dispatches; the commands live in `pekit.cli_memory` (introduce ... copy, repair)
and `pekit.cli_look` (recognize, ask, caption).

    pekit introduce "Bo" dog/00.jpg dog/01.jpg --category dog --context "my parents' dog"
    pekit list
    pekit recognize photo.jpg --out annotated.jpg [--json]
    pekit recognize clip.mp4 --out annotated.mp4 [--fps 2] [--sheet sheet.png] [--audio keep|drop] [--json]
    pekit ask photo.jpg "What is Bo doing?" [--lvlm openai:http://localhost:8000/v1#model]
    pekit caption photo.jpg
    pekit caption clip.mp4                 # a caption per scene, names in it
    pekit forget "Bo"
    pekit repair [--dry-run]
    pekit copy backup.db                   # every concept into another memory (file or postgresql://)
    pekit eval recognition --dataset folder:../shared/data/dreambooth --refs 2
    pekit keys create alice && pekit serve      # the HTTP service and web page (pekit.server)

Every command takes ``--memory PATH`` (default ``$PEKIT_MEMORY`` or the user data dir),
``--preset``, ``--namespace`` and ``--json``. Errors print one line and exit with the
error's code (see `pekit.errors`), never a traceback. Only ``introduce`` creates a memory
file; other commands refuse a ``--memory`` / ``$PEKIT_MEMORY`` file that does not exist.
Images are written where ``--out`` says or beside the input photo, never over an existing
file unless ``--out`` names it; ``--json`` lists every file written (``"written"``).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from pathlib import Path

from pekit.cli_args import build_parser, glue_negative_boxes
from pekit.cli_look import cmd_answer, cmd_caption, cmd_recognize
from pekit.cli_memory import (
    cmd_add_view,
    cmd_copy,
    cmd_correct,
    cmd_forget,
    cmd_introduce,
    cmd_list,
    cmd_repair,
    cmd_update,
)
from pekit.errors import PekitError

__all__ = ["build_parser", "main"]


class CommandFormatter(logging.Formatter):
    """A warning as the command's own line, ``pekit introduce: warning: 'Rex' looks much like
    'Bo' ...``, beside its ``pekit introduce: error: ...`` lines; with ``-v``, every record
    with its level and logger (``WARNING pekit.personalizer: ...``), as a log reads.

    >>> record = logging.LogRecord("pekit.personalizer", logging.WARNING, "", 0, "'Rex' looks like 'Bo'", None, None)
    >>> CommandFormatter("introduce").format(record)
    "pekit introduce: warning: 'Rex' looks like 'Bo'"
    >>> CommandFormatter("introduce", verbose=True).format(record)
    "WARNING pekit.personalizer: 'Rex' looks like 'Bo'"
    """

    def __init__(self, command: str, *, verbose: bool = False) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")
        self.command, self.verbose = command, verbose

    def format(self, record: logging.LogRecord) -> str:
        if self.verbose or record.levelno < logging.WARNING:
            return super().format(record)
        text = f"pekit {self.command}: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class PrintedElsewhere(logging.Filter):
    """Drops a record whose logger (or a parent on its way to the root) has a handler of its
    own: that library prints it already (huggingface_hub does, and propagates too: each of
    its download retries would show twice)."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None and logger is not logging.getLogger():
            if logger.handlers:
                return False
            if not logger.propagate:
                break
            logger = logger.parent
        return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pekit`` console script; returns the exit code."""
    parser = build_parser()
    argv = glue_negative_boxes(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if exc.code:  # argparse refused the arguments (not --help): it has printed its usage and error
            _hint_forgotten_name(argv)
        raise
    stderr = logging.StreamHandler()
    stderr.setFormatter(CommandFormatter(args.command, verbose=args.verbose > 0))
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 2), handlers=[stderr])
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, PrintedElsewhere) for f in handler.filters):
            handler.addFilter(PrintedElsewhere())
    try:
        code = _run(args, parser)
        sys.stdout.flush()  # here, not at exit: a reader that went away (| head) is handled below
        return code
    except PekitError as exc:  # (the library's advice in the spelling of the command line)
        message = str(exc).replace("pass replace=True (CLI: --replace)", "pass --replace")
        print(f"pekit {args.command}: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # pragma: no cover
        resume = "; the same command again goes on from what its cache kept" if args.command == "eval" else ""
        print(f"interrupted{resume}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output closed it (pekit list | head): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's last flush goes nowhere
        return 141  # 128 + SIGPIPE, what a shell reports for a writer cut off this way


def _hint_forgotten_name(argv: list[str]) -> None:
    """After argparse refused ``pekit introduce PHOTO`` (the photo taken as the name, so no
    photo left), say that the name comes first."""
    if not argv or argv[0] != "introduce":
        return
    first = next((a for a in argv[1:] if not a.startswith("-")), "")  # what argparse took as the name
    if first and Path(first).is_file():
        print(f"pekit introduce: hint: {first!r} is a photo; the name comes first: "
              f"pekit introduce NAME PHOTO... (e.g. pekit introduce Bo {shlex.quote(first)})", file=sys.stderr)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Run the command ``args`` names; its exit code."""
    if args.command == "introduce":
        return cmd_introduce(args)
    if args.command == "list":
        return cmd_list(args)
    if args.command == "forget":
        return cmd_forget(args)
    if args.command == "repair":
        return cmd_repair(args)
    if args.command == "copy":
        return cmd_copy(args)
    if args.command == "correct":
        return cmd_correct(args)
    if args.command == "add-view":
        return cmd_add_view(args)
    if args.command == "update":
        return cmd_update(args)
    if args.command == "recognize":
        return cmd_recognize(args)
    if args.command == "ask":
        return cmd_answer(args, args.question, [Path(args.image)])
    if args.command == "caption":
        return cmd_caption(args)
    if args.command == "eval":
        from pekit.eval.cli import run_eval

        return run_eval(args)
    if args.command in ("serve", "keys"):
        from pekit.server import cli as server_cli

        return server_cli.run_serve(args) if args.command == "serve" else server_cli.run_keys(args)
    if args.command == "doctor":
        from pekit.doctor import run_doctor

        return run_doctor(args)
    parser.error(f"unknown command {args.command}")  # pragma: no cover
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
