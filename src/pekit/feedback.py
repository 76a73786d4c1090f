"""Corrections, the user's own lever: "that was not Bo", and taking it back.

A correction turns the wrongly named region into *negative parts* of the concept
(``Concept.negatives``): from then on a region whose patches agree with them at least as
well as with the concept's own parts is not given its name (`pekit.retrieve.candidates`).
Each correction is recorded in ``meta["corrections"]`` with the photo, the box, the score
and how many negative rows it added, so that the last one can be taken back exactly.

`corrected` and `uncorrected` are pure steps ``Concept -> Concept``; `Personalizer.correct`
(which finds the region with the same look as `recognize`) and
`Personalizer.undo_correction` store what they return. (One more positive view:
`pekit.extract.views.with_view`. The simulated user of the evaluation: `pekit.eval.feedback`.)

Example:
    >>> import numpy as np
    >>> from pekit.types import Concept
    >>> bo = Concept("Bo", views=np.ones((1, 4), np.float32))
    >>> once = corrected(bo, np.ones((3, 4), np.float32), image="park.jpg", box=[1, 2, 30, 40], score=0.63)
    >>> once.negatives.shape, once.meta["corrections"][0]["negatives"]
    ((3, 4), 3)
    >>> uncorrected(once).negatives is None
    True
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError
from pekit.types import Concept

__all__ = ["CORRECTIONS", "corrected", "uncorrected"]

#: ``Concept.meta`` key: one record per correction, oldest first.
CORRECTIONS = "corrections"


def corrected(concept: Concept, negative: np.ndarray, *, image: str, box: Any, score: float) -> Concept:
    """``concept`` with ``negative`` (``(n, d)`` part prototypes of the region wrongly named
    after it) appended to its negatives, and the correction recorded (``image``: the photo as
    shown to the user; ``box`` and ``score``: the wrong detection's)."""
    stacked = negative if concept.negatives is None else np.concatenate([concept.negatives, negative])
    meta = dict(concept.meta)
    meta[CORRECTIONS] = [*meta.get(CORRECTIONS, []),
                         {"image": image, "box": [round(float(v), 1) for v in box], "score": round(float(score), 4),
                          "negatives": len(negative)}]
    return replace(concept, negatives=stacked, meta=meta)


def uncorrected(concept: Concept) -> Concept:
    """``concept`` without its last correction: that correction's negative rows and record
    removed, the earlier ones kept. A correction stored by an older pekit (without its row
    count) is taken back whole when it is the only one.

    Raises:
        InvalidInputError: no correction to undo, or several older ones that cannot be told
            apart (nothing is changed).
    """
    done = list(concept.meta.get(CORRECTIONS, []))
    stored = concept.negatives  # None, never empty (`Concept` drops an empty array)
    if not done or stored is None:
        raise InvalidInputError(f"'{concept.name}' has no correction to undo; the memory was not changed")
    rows = len(stored)
    last = done[-1].get("negatives") if isinstance(done[-1], dict) else None
    if not isinstance(last, int) or not 0 < last <= rows:
        if len(done) > 1:  # stored before corrections recorded their size: cannot split them
            raise InvalidInputError(
                f"the corrections of '{concept.name}' were stored by an older pekit without their sizes, so the "
                f"last one cannot be told apart; introduce it again with --replace (replace=True) to start "
                "over (the memory was not changed)")
        last = rows
    meta = dict(concept.meta)
    meta[CORRECTIONS] = done[:-1]
    return replace(concept, negatives=stored[:rows - last] if rows > last else None, meta=meta)
