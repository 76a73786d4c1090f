"""Linking per-frame detections into tracks; one name per track by score-weighted vote.

Pure logic over `Detections` (no images): a detection joins the live track it overlaps
most (IoU) and looks like (cosine of its region embedding to the track's running mean
appearance), or the live track of the same concept (a concept is one thing, so a jump or
a cut keeps its track); two objects whose boxes cross keep their own tracks when their
appearances differ, and a detection that looks like a track (cosine >= ``similar``)
joins it after a jump too; a track stays live for ``max_gap`` seconds without
detections, so short misses are bridged. The track's name is the score-weighted majority of its
frames' names, so one wrong frame does not rename it.

Hysteresis over time: each detection is *strong* (at or above its concept's threshold)
or *weak* (a little below it; see ``strong`` in `Tracker.update`). Only a strong
detection confirms a track; a weak one only continues a track of its own name that it
overlaps (IoU), before or after the strong frames. So an object whose score hovers near
the threshold is followed from the frame it appears, not from the first frame it clears
the threshold, while a weak look-alike somewhere else never becomes a track.

Example:
    >>> import numpy as np
    >>> from pekit.types import Detections
    >>> t = Tracker(max_gap=1.0)
    >>> for i, name in enumerate(["Bo", "Rex", "Bo"]):
    ...     _ = t.update(i, i * 0.5, Detections(xyxy=[[0, 0, 10, 10]], score=[0.8], name=[name]))
    >>> [(tr.name, tr.start, tr.end) for tr in t.finish()]
    [('Bo', 0.0, 1.0)]
    >>> t = Tracker(max_gap=1.0)  # weak, weak, strong: the track starts at the first weak frame
    >>> for i, strong in enumerate([False, False, True]):
    ...     _ = t.update(i, i * 0.5, Detections(xyxy=[[0, 0, 10, 10]], score=[0.5], name=["Bo"]), strong=[strong])
    >>> [(tr.name, tr.start, tr.end) for tr in t.finish()]
    [('Bo', 0.0, 1.0)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pekit.errors import InvalidInputError
from pekit.retrieve.nms import box_iou
from pekit.types import Detections

__all__ = ["WEAK_MARGIN", "Track", "Tracker"]

#: how far under its threshold a detection may score and still extend a track (weak)
WEAK_MARGIN = 0.1


@dataclass
class Track:
    """One appearance of a concept: ``start``/``end`` (s), ``score`` (mean over the frames
    that carry the track's name), ``best_frame`` (sample index of the best detection).

    ``key`` is the number `Tracker.update` reports while streaming; ``id`` is the final
    number (1, 2, ... in order of first appearance) that `Tracker.finish` gives the
    confirmed tracks. ``confirmed``: at least one strong detection.
    """

    key: int
    id: int = 0
    name: str = ""
    concept_id: int = -1
    start: float = 0.0
    end: float = 0.0
    score: float = 0.0
    best_frame: int = -1
    best_time: float = 0.0
    best_box: list[float] = field(default_factory=list)
    frames: int = 0
    votes: dict[str, float] = field(default_factory=dict, repr=False)
    scores: dict[str, list[float]] = field(default_factory=dict, repr=False)
    ids: dict[str, int] = field(default_factory=dict, repr=False)
    last_box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float32), repr=False)
    best_score: float = field(default=-np.inf, repr=False)
    confirmed: bool = False
    appearance: np.ndarray | None = field(default=None, repr=False)  # running mean unit embedding

    @property
    def when(self) -> str:
        """When it was seen, in words: ``"0.4-3.2 s"``, or ``"1.0 s"`` for a track of one
        sample (or of samples within a tenth of a second).

        >>> Track(0, start=0.42, end=3.2).when, Track(0, start=1.0, end=1.0).when
        ('0.4-3.2 s', '1.0 s')
        """
        start, end = f"{self.start:.1f}", f"{self.end:.1f}"
        return f"{start} s" if start == end else f"{start}-{end} s"

    def leader(self) -> str:
        """The name with the most votes so far."""
        return max(self.votes, key=lambda n: (self.votes[n], n)) if self.votes else ""

    def add(self, index: int, time: float, box: np.ndarray, name: str, score: float, concept_id: int,
            embedding: np.ndarray | None = None) -> bool:
        """Record one detection; True when it is the track's best so far."""
        if embedding is not None and np.all(np.isfinite(embedding)) and np.linalg.norm(embedding) > 0:
            e = embedding / np.linalg.norm(embedding)
            mean = e if self.appearance is None else self.appearance * min(self.frames, 9) + e
            self.appearance = (mean / np.linalg.norm(mean)).astype(np.float32)
        if self.frames == 0:
            self.start = time
        self.end, self.last_box, self.frames = time, box, self.frames + 1
        self.votes[name] = self.votes.get(name, 0.0) + max(score, 1e-6)
        self.scores.setdefault(name, []).append(score)
        self.ids[name] = concept_id
        if score > self.best_score:
            self.best_score, self.best_frame, self.best_time = score, index, time
            self.best_box = [round(float(v), 1) for v in box]
            return True
        return False

    def settle(self) -> None:
        """Fix the name (vote), concept id and score."""
        self.name = self.leader()
        self.concept_id = self.ids.get(self.name, -1)
        self.score = float(np.mean(self.scores[self.name])) if self.name in self.scores else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"track": self.id, "name": self.name, "concept_id": self.concept_id, "start": round(self.start, 3),
                "end": round(self.end, 3), "score": round(self.score, 4), "frames": self.frames,
                "best_frame": self.best_frame, "best_time": round(self.best_time, 3), "best_box": self.best_box}


class Tracker:
    """Streaming linker: call `update` per sampled frame, `finish` at the end.

    Args:
        iou: a detection continues a track of another name (or, when weak, of its own
            name) only above this overlap with the track's last box.
        max_gap: seconds a track survives without detections (bridged gaps).
        similar: cosine of a detection's embedding to a track's appearance at which it
            continues the track without overlapping it (a jump, a cut).
        dissimilar: cosine under which an overlapping detection of another name does not
            continue a track (two objects crossing).
    """

    def __init__(self, *, iou: float = 0.3, max_gap: float = 1.0, similar: float = 0.85,
                 dissimilar: float = 0.5) -> None:
        self.iou = float(iou)
        self.max_gap = float(max_gap)
        self.similar = float(similar)
        self.dissimilar = float(dissimilar)
        self.tracks: list[Track] = []
        self._live: list[Track] = []
        self._seen: dict[int, float] = {}  # track key -> the clock of its last detection

    def update(self, index: int, time: float, dets: Detections,
               strong: np.ndarray | list[bool] | None = None, *, clock: float | None = None) -> list[tuple[int, bool]]:
        """Link one frame's detections: ``[(track key, is the track's best so far)]`` per detection.

        ``clock``: the time gaps are measured in (default ``time``): `recognize_video` lets it
        run slower than the clip's time across a stretch where the clip has no frame at all (a
        variable-rate clip, a screen recording of a still screen): the picture before it stayed
        on screen, so that stretch is no gap in what was seen.

        ``strong (n,) bool``: which detections reach their concept's threshold (default:
        all). A strong detection joins a confirmed live track of its name, or one it
        overlaps, and confirms a new track otherwise; a weak one joins only a live track
        of its name that it overlaps, or opens an unconfirmed one that a later strong
        detection may confirm (`finish` drops those that never are).
        """
        now = time if clock is None else float(clock)
        self._live = [t for t in self._live if now - self._seen[t.key] <= self.max_gap + 1e-6]
        names = [str(n) for n in dets.name] if dets.name is not None else [""] * len(dets)
        scores = np.asarray(dets.score, np.float32)
        cids = np.asarray(dets.concept_id, np.int64)
        sure = np.ones(len(dets), bool) if strong is None else np.asarray(strong, bool).reshape(-1)
        if len(sure) != len(dets):
            raise InvalidInputError(f"strong must have one flag per detection ({len(dets)}), got {len(sure)}")
        assigned: dict[int, Track] = {}
        emb = None if dets.embedding is None else np.asarray(dets.embedding, np.float32)
        if self._live and len(dets):
            ious = box_iou(dets.xyxy, np.stack([t.last_box for t in self._live]))
            pairs = []
            for i in range(len(dets)):
                for j, tr in enumerate(self._live):
                    same = bool(names[i]) and names[i] == tr.leader()
                    sim = _cosine(None if emb is None else emb[i], tr.appearance)
                    near = ious[i, j] >= self.iou and (sim is None or same or sim >= self.dissimilar)
                    alike = sim is not None and sim >= self.similar
                    if (same or near or alike) if (sure[i] and tr.confirmed) else (same and (near or alike)):
                        pairs.append((float(ious[i, j]) + (1.0 if same else 0.0) + (sim or 0.0), i, j))
            taken: set[int] = set()
            for _, i, j in sorted(pairs, reverse=True):
                if i in assigned or j in taken:
                    continue
                assigned[i] = self._live[j]
                taken.add(j)
        out = []
        for i in range(len(dets)):
            track = assigned.get(i)
            if track is None:
                track = Track(key=len(self.tracks) + 1)
                self.tracks.append(track)
                self._live.append(track)
            track.confirmed = track.confirmed or bool(sure[i])
            best = track.add(index, time, dets.xyxy[i].copy(), names[i], float(scores[i]), int(cids[i]),
                             None if emb is None else emb[i])
            self._seen[track.key] = now
            out.append((track.key, best))
        return out

    def discarded(self) -> set[int]:
        """Keys of unconfirmed tracks that are no longer live: `finish` will drop them."""
        live = {t.key for t in self._live}
        return {t.key for t in self.tracks if not t.confirmed and t.key not in live}

    def finish(self) -> list[Track]:
        """The confirmed tracks, names settled, numbered 1, 2, ... in order of first appearance."""
        kept = sorted((t for t in self.tracks if t.confirmed), key=lambda t: (t.start, t.key))
        for n, t in enumerate(kept, 1):
            t.settle()
            t.id = n
        return kept


def _cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Cosine of two vectors, or None when either is missing (faces without region vectors)."""
    if a is None or b is None or a.shape != b.shape:
        return None
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b) / (na * nb) if na > 0 and nb > 0 else None
