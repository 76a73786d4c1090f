"""The docs site's generated parts: the CLI reference hook and the committed figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pekit.cli import build_parser

DOCS = Path(__file__).parents[1] / "docs"


@pytest.fixture(scope="module")
def hook():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks" / "cli_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_has_every_subcommand(hook):
    text = hook.render()
    progs = [sub.prog for _, sub in hook.subcommands(build_parser())]
    assert "pekit introduce" in progs and "pekit doctor" in progs and "pekit eval recognition" in progs
    for prog in progs:
        assert f"`{prog}`" in text, prog
    assert "--replace" in text and "--json" in text


def test_hook_replaces_only_the_marker(hook):
    page = f"# CLI\n\n{hook.MARKER}\n"
    out = hook.on_page_markdown(page, page=None, config=None, files=None)
    assert hook.MARKER not in out and out.startswith("# CLI") and "usage: pekit" in out
    assert hook.on_page_markdown("# other page\n", page=None, config=None, files=None) == "# other page\n"


@pytest.mark.parametrize("name", ["1-reference.jpg", "2-proposals.jpg", "3-heatmap.jpg", "4-answer.jpg"])
def test_figures_are_committed_small(name):
    path = DOCS / "figures" / name
    assert path.is_file(), f"run `python docs/make_figures.py` to make {name}"
    assert path.stat().st_size < 150 * 1024


def test_every_docstring_example_runs() -> None:
    """The ``>>>`` examples in pekit's docstrings (the API pages show them) give what they
    say. Examples marked ``# doctest: +SKIP`` need a model or a file and are not run."""
    import doctest
    import importlib
    import pkgutil

    import pekit

    finder, attempted, failures = doctest.DocTestFinder(), 0, []
    for info in pkgutil.walk_packages(pekit.__path__, "pekit."):
        module = importlib.import_module(info.name)
        for test in finder.find(module, info.name):
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
            out: list[str] = []
            result = runner.run(test, out=out.append)
            attempted += result.attempted
            if result.failed:
                failures.append(f"{test.name} ({test.filename}:{test.lineno}):\n{''.join(out)}")
    assert not failures, "\n".join(failures)
    assert attempted >= 100  # the finder did reach the examples
