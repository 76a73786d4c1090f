"""What a `Personalizer` checks before it spends a backbone pass or writes: that the memory's
vectors came from its backbone (`check_backbone`), that the memory may be written
(`check_writable`), and whether reference photos agree too little (`low_agreement`,
`stored_consistency`: what `introduce` and `add_view` warn of).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pekit.extract.views import CONSISTENCY

if TYPE_CHECKING:
    from pekit.personalizer import Personalizer
    from pekit.types import Concept

__all__ = ["CONSISTENCY_MARGIN", "check_backbone", "check_writable", "low_agreement", "stamped", "stored_consistency"]

#: `introduce` warns when the consistency (`CONSISTENCY`) is this far below the threshold.
#: Each photo is scored against a concept with one photo fewer than a new photo meets, so it
#: reads low: on the dev set (k = 2) a concept's median positive score sits 0.02-0.04 above
#: it (`benchmarks/calibration.py`); 0.05 below the threshold, a typical new photo is
#: expected under it.
CONSISTENCY_MARGIN = 0.05


def stored_consistency(concept: Any) -> float | None:
    """The `CONSISTENCY` recorded in a concept's meta, or None (one photo, `add_view`
    since, or a value that is not a number)."""
    meta = getattr(concept, "meta", None)
    value = meta.get(CONSISTENCY) if isinstance(meta, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def low_agreement(p: Personalizer, agreement: float, own_threshold: float | None) -> bool:
    """Whether ``agreement`` is `CONSISTENCY_MARGIN` under the threshold (the concept's own
    ``own_threshold``, else the preset's)."""
    threshold = p.pipeline.config.threshold if own_threshold is None else float(own_threshold)
    return agreement < threshold - CONSISTENCY_MARGIN


def check_backbone(p: Personalizer) -> None:
    """`BackboneMismatchError` when ``p``'s memory holds vectors of another backbone (an
    emptied store keeps its old fingerprint but holds no vectors: any backbone may refill it)."""
    from pekit.memory import same_backbone
    from pekit.presets import presets_for

    stored = p.memory.backbone
    if (stored is not None and not same_backbone(stored, p.pipeline.fingerprint)
            and p.memory.count() > 0):
        from pekit.errors import BackboneMismatchError

        made = presets_for(stored)
        if _weights_only(stored, p.pipeline.fingerprint):  # one model and recipe, other weights (a new release)
            use = ("the model's weights changed since the memory was made (a new release of it, or another "
                   "cache); point the backbone at the weights that made it, or introduce the concepts again")
        elif made:
            use = f"use the preset that made it ({' or '.join(made)}; CLI: --preset {made[0]})"
        else:
            use = "use the same backbone"
        raise BackboneMismatchError(
            f"the memory '{p.memory.uri}' holds vectors from backbone '{stored}', but this "
            f"Personalizer uses '{p.pipeline.fingerprint}'; {use}, or another memory file"
        )


def check_writable(p: Personalizer, action: str) -> None:
    """Refuse a write the store would refuse (read-only, or a file nobody may write) before
    any backbone pass."""
    check = getattr(p.memory, "check_writable", None)
    if check is not None:
        check(action)
    elif getattr(p.memory, "read_only", False):
        from pekit.errors import MemoryStoreError

        raise MemoryStoreError(f"the memory '{p.memory.uri}' is read-only; cannot {action}")


def _weights_only(stored: str, current: str) -> bool:
    """Whether two fingerprints differ only in the weights they name, not in the model or how
    its tokens are read (`pekit.memory._codec.fingerprint_parts`)."""
    from pekit.memory._fingerprints import fingerprint_parts

    (model, weights, recipe), (model2, weights2, recipe2) = fingerprint_parts(stored), fingerprint_parts(current)
    return bool(weights) and (model, recipe) == (model2, recipe2) and weights != weights2


def stamped(p: Personalizer, concept: Concept) -> Concept:
    """``concept``, holding vectors of ``p``'s backbone now (a view or correction added), as
    made by it: a memory that named a hub model by its snapshot's commit records it by its
    weights from this write on (`pekit.memory.upgraded_backbone`)."""
    import dataclasses

    return dataclasses.replace(concept, backbone=p.pipeline.fingerprint)
