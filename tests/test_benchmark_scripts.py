"""The benchmark scripts without their data: a one-line message and exit 0, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(("script", "data", "absent"), [
    ("recognition.py", "dreambooth", ["dreambooth"]),
    ("feedback.py", "dreambooth", ["dreambooth"]),
    ("people.py", "people", ["people"]),
    ("video.py", "", ["dreambooth", "people"]),  # --data is the folder above both
])
def test_a_missing_data_folder_is_a_clean_skip(tmp_path: Path, script: str, data: str, absent: list[str]):
    folder = tmp_path / "shared" / "data" / data
    src = os.pathsep.join([str(BENCHMARKS.parent / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), "--data", str(folder)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for name in absent:
        assert f"dataset not found at {tmp_path / 'shared' / 'data' / name}" in done.stdout


def test_an_unknown_ablation_row_is_refused_before_any_row_runs(tmp_path: Path):
    src = os.pathsep.join([str(BENCHMARKS.parent / "src"), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run([sys.executable, str(BENCHMARKS / "ablation.py"), "--data", str(tmp_path / "none"),
                           "--rows", "default,layer5,nocolor"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": src}, timeout=120)
    assert done.returncode == 2
    assert done.stdout.startswith("unknown row(s) nocolor; choose from default,")
