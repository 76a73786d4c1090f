"""The notebooks under examples/ are committed clean: no outputs, no execution counts.

CI executes them (`pytest --nbmake examples/`); a committed output would be stale the
moment the code changes, so it is refused here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_the_three_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "evaluation.ipynb", "bring_your_own_model.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_no_outputs(path: Path):
    book = json.loads(path.read_text(encoding="utf-8"))
    assert book["nbformat"] == 4
    dirty = [i for i, cell in enumerate(book["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} carry outputs; strip them "
                       "(e.g. `jupyter nbconvert --clear-output --inplace`) before committing")
    assert any(cell["cell_type"] == "code" for cell in book["cells"])
