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



def _modules() -> list[str]:
    import pkgutil

    import pekit

    return ["pekit", *(info.name for info in pkgutil.walk_packages(pekit.__path__, "pekit."))]


@pytest.mark.parametrize("name", _modules())
def test_every_docstring_example_runs(name: str) -> None:
    """The ``>>>`` examples in pekit's docstrings (the API pages show them) give what they
    say. Examples marked ``# doctest: +SKIP`` need a model, a file or a server and are not
    run. A module whose optional extra is not installed is skipped (CI installs them all)."""
    import doctest
    import importlib

    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "pekit":
            raise
        pytest.skip(f"{name} needs {exc.name}, an optional extra that is not installed")
    failures = []
    for test in doctest.DocTestFinder().find(module, name):
        out: list[str] = []
        result = doctest.DocTestRunner(verbose=False, optionflags=doctest.ELLIPSIS).run(test, out=out.append)
        if result.failed:
            failures.append(f"{test.name} ({test.filename}:{test.lineno}):\n{''.join(out)}")
    assert not failures, "\n".join(failures)


def test_the_docstring_examples_are_found() -> None:
    """`test_every_docstring_example_runs` reaches the examples (a finder that found none
    would pass every module)."""
    import doctest
    import importlib

    found = [sum(1 for t in doctest.DocTestFinder().find(importlib.import_module(n), n) for _ in t.examples)
             for n in ("pekit.feedback", "pekit.extract.views", "pekit.retrieve.second_look")]
    assert all(n > 0 for n in found) and sum(found) >= 5


def test_every_exit_code_has_its_troubleshooting_entry() -> None:
    """docs/troubleshooting.md has one heading per exit code, naming its error class."""
    import inspect

    from pekit import errors

    text = (Path(__file__).parents[1] / "docs" / "troubleshooting.md").read_text()
    own = {cls.exit_code: cls.__name__ for _, cls in inspect.getmembers(errors, inspect.isclass)
           if issubclass(cls, errors.PekitError) and "exit_code" in vars(cls) and cls.exit_code != 1}
    assert len(own) >= 10
    for code, name in own.items():
        assert f"## {code} — " in text and f"(`{name}`)" in text, (code, name)
