"""Where the benchmarks find the DreamBooth development set, shared by every script that reads it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

#: ``../shared/data/dreambooth`` beside the repository (``$PEKIT_DREAMBOOTH`` overrides it).
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dreambooth"


def add_data_argument(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--data DIR``: the dataset folder (default `DEFAULT_DATA` or ``$PEKIT_DREAMBOOTH``)."""
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("PEKIT_DREAMBOOTH", DEFAULT_DATA)),
                        help=help)


def missing(data: Path) -> bool:
    """True (after saying so) when the dataset folder is absent: the script then exits 0."""
    if data.is_dir():
        return False
    print(f"dataset not found at {data}; nothing to benchmark (pass --data DIR)")
    return True
