"""mkdocs hook: the CLI reference is rendered from `pekit.cli.build_parser()` at build time.

A page that contains the marker ``<!-- pekit-cli-reference -->`` gets, in its place, the
``--help`` of ``pekit`` and of every subcommand (nested ones such as ``pekit eval
recognition`` included), so the page cannot drift from the parser.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from typing import Any

MARKER = "<!-- pekit-cli-reference -->"


def subcommands(parser: argparse.ArgumentParser, depth: int = 0) -> Iterator[tuple[int, argparse.ArgumentParser]]:
    """Every subparser below ``parser`` (depth-first, in declaration order, aliases once)."""
    seen: set[int] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                if id(sub) in seen:
                    continue
                seen.add(id(sub))
                yield depth, sub
                yield from subcommands(sub, depth + 1)


def _help(parser: argparse.ArgumentParser) -> str:
    return "```text\n" + parser.format_help().rstrip() + "\n```\n"


def render() -> str:
    """Markdown for the whole command line: ``pekit --help`` then one section per subcommand."""
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width: fix it for the page
    from pekit.cli import build_parser

    parser = build_parser()
    out = ["## `pekit`\n", _help(parser)]
    for depth, sub in subcommands(parser):
        out.append(f"{'#' * (2 + min(depth, 2))} `{sub.prog}`\n")
        out.append(_help(sub))
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())
