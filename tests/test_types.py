"""Core data types: `Detections`, `PatchGrid`, `Concept` validate on construction and index like numpy."""

from __future__ import annotations

import json
from contextlib import nullcontext as does_not_raise
from typing import Any

import numpy as np
import pytest

from pekit.errors import InvalidInputError, PekitError
from pekit.types import Concept, Detections, PatchGrid


def dets3(**extra: Any) -> Detections:
    return Detections(
        xyxy=np.array([[0, 0, 10, 10], [5, 5, 20, 25], [30, 0, 40, 8]], np.float32),
        score=np.array([0.9, 0.4, 0.7]),
        concept_id=np.array([1, -1, 2]),
        name=np.array(["Bo", "", "Mochi"], dtype=object),
        **extra,
    )


# ---- Detections: validation ---------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "expected", "message"),
    [
        ({"xyxy": [[0, 0, 10, 10]]}, does_not_raise(), None),
        ({"xyxy": np.zeros((0, 4))}, does_not_raise(), None),
        ({"xyxy": []}, does_not_raise(), None),  # empty input -> (0, 4)
        ({"xyxy": np.zeros(3)}, pytest.raises(InvalidInputError), r"shape \(_, 4\), but got shape \(3,\)"),
        ({"xyxy": np.zeros((2, 5))}, pytest.raises(InvalidInputError), r"but got shape \(2, 5\)"),
        ({"xyxy": np.zeros((1, 2, 4))}, pytest.raises(InvalidInputError), r"but got shape \(1, 2, 4\)"),
        ({"xyxy": [[0, 0, np.nan, 1]]}, pytest.raises(InvalidInputError), "finite"),
        ({"xyxy": [[0, 0, np.inf, 1]]}, pytest.raises(InvalidInputError), "finite"),
        ({"xyxy": [[10, 0, 5, 5]]}, pytest.raises(InvalidInputError), "x1 >= x0"),
        ({"xyxy": [[0, 10, 5, 5]]}, pytest.raises(InvalidInputError), "y1 >= y0"),
        ({"xyxy": [["a", 0, 1, 1]]}, pytest.raises(InvalidInputError), "xyxy must be array-like"),
        ({"xyxy": [[0, 0, 1, 1]], "score": [0.5, 0.6]}, pytest.raises(InvalidInputError),
         r"score must have shape \(1,\), but got shape \(2,\)"),
        ({"xyxy": [[0, 0, 1, 1]] * 2, "concept_id": [1]}, pytest.raises(InvalidInputError),
         r"concept_id must have shape \(2,\), but got shape \(1,\)"),
        ({"xyxy": [[0, 0, 1, 1]], "name": ["a", "b"]}, pytest.raises(InvalidInputError),
         r"name must have shape \(1,\)"),
        ({"xyxy": [[0, 0, 1, 1]], "mask": np.zeros((2, 4, 4))}, pytest.raises(InvalidInputError),
         r"mask must be a 3D np.ndarray with shape \(1, H, W\), but got shape \(2, 4, 4\)"),
        ({"xyxy": [[0, 0, 1, 1]], "mask": np.zeros((4, 4))}, pytest.raises(InvalidInputError),
         r"but got shape \(4, 4\)"),
        ({"xyxy": [[0, 0, 1, 1]], "embedding": np.zeros(8)}, pytest.raises(InvalidInputError),
         r"embedding must be a 2D np.ndarray with shape \(1, d\), but got shape \(8,\)"),
    ],
)
def test_detections_validation(kwargs: dict, expected: Any, message: str | None) -> None:
    with expected as info:
        Detections(**kwargs)
    if message is not None:
        assert info.match(message)


def test_detections_defaults_and_dtypes() -> None:
    d = Detections(xyxy=[[0, 0, 10, 10], [1, 2, 3, 4]])
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (2, 4)
    assert d.score.tolist() == [1.0, 1.0] and d.score.dtype == np.float32
    assert d.concept_id.tolist() == [-1, -1] and d.concept_id.dtype == np.int64
    assert d.name.tolist() == ["", ""] and d.name.dtype == object
    assert d.mask is None and d.embedding is None
    assert d.area.tolist() == [100.0, 4.0]


def test_detections_errors_are_pekit_and_value_errors() -> None:
    with pytest.raises(PekitError):
        Detections(xyxy=np.zeros(3))
    with pytest.raises(ValueError):
        Detections(xyxy=np.zeros(3))


# ---- Detections: indexing -----------------------------------------------------------
@pytest.mark.parametrize(
    ("index", "expected_names"),
    [
        (0, ["Bo"]),
        (-1, ["Mochi"]),
        (np.int64(1), [""]),
        (slice(1, None), ["", "Mochi"]),
        (slice(None, None, -1), ["Mochi", "", "Bo"]),
        (np.array([True, False, True]), ["Bo", "Mochi"]),
        (np.array([False, False, False]), []),
        ([2, 0], ["Mochi", "Bo"]),
    ],
)
def test_detections_indexing_returns_new_detections(index: Any, expected_names: list[str]) -> None:
    d = dets3(mask=np.zeros((3, 50, 60), bool), embedding=np.eye(3, 4))
    out = d[index]
    assert isinstance(out, Detections)
    assert out.name.tolist() == expected_names
    n = len(expected_names)
    assert out.xyxy.shape == (n, 4) and out.score.shape == (n,) and out.concept_id.shape == (n,)
    assert out.mask.shape == (n, 50, 60) and out.embedding.shape == (n, 4)


def test_detections_boolean_filter_like_supervision() -> None:
    d = dets3()
    high = d[d.score > 0.5]
    assert high.name.tolist() == ["Bo", "Mochi"]
    assert high.score.tolist() == pytest.approx([0.9, 0.7])
    assert high.concept_id.tolist() == [1, 2]
    assert len(d) == 3  # the original is untouched


def test_detections_iterates_single_rows() -> None:
    rows = list(dets3())
    assert [len(r) for r in rows] == [1, 1, 1]
    assert [r.name[0] for r in rows] == ["Bo", "", "Mochi"]


def test_detections_index_out_of_range_raises_index_error() -> None:
    with pytest.raises(IndexError):
        dets3()[3]


# ---- Detections: empty, merge, to_list -----------------------------------------------
def test_empty_detections() -> None:
    e = Detections.empty()
    assert len(e) == 0 and e.xyxy.shape == (0, 4)
    assert e.score.shape == (0,) and e.name.shape == (0,)
    assert e.to_list() == []
    assert list(e) == []
    assert len(e[e.score > 0.5]) == 0


@pytest.mark.parametrize(
    ("items", "expected_len", "has_mask"),
    [
        ([], 0, False),
        ([Detections.empty(), Detections.empty()], 0, False),
        ([Detections(xyxy=[[0, 0, 1, 1]]), Detections.empty()], 1, False),
        ([Detections(xyxy=[[0, 0, 1, 1]], mask=np.ones((1, 4, 4))),
          Detections(xyxy=[[0, 0, 2, 2]] * 2, mask=np.zeros((2, 4, 4)))], 3, True),
        # optional arrays survive only when every item has them
        ([Detections(xyxy=[[0, 0, 1, 1]], mask=np.ones((1, 4, 4))), Detections(xyxy=[[0, 0, 2, 2]])], 2, False),
    ],
)
def test_merge(items: list[Detections], expected_len: int, has_mask: bool) -> None:
    merged = Detections.merge(items)
    assert len(merged) == expected_len
    assert (merged.mask is not None) == has_mask


def test_merge_keeps_order_and_values() -> None:
    a, b = dets3()[:2], dets3()[2:]
    merged = Detections.merge([a, b])
    assert merged.name.tolist() == ["Bo", "", "Mochi"]
    np.testing.assert_array_equal(merged.xyxy, dets3().xyxy)
    np.testing.assert_array_equal(merged.concept_id, [1, -1, 2])


def test_to_list_is_json_ready() -> None:
    d = Detections(
        xyxy=np.array([[1.234, 2.0, 30.06, 40.0]], np.float32), score=np.array([0.876543], np.float32),
        concept_id=np.array([7]), name=np.array(["Bo"], dtype=object), embedding=np.ones((1, 3)),
    )
    records = d.to_list()
    assert records == [{"name": "Bo", "score": 0.8765, "box": [1.2, 2.0, 30.1, 40.0], "concept_id": 7}]
    assert json.loads(json.dumps(records)) == records
    rec = records[0]
    assert type(rec["score"]) is float and type(rec["concept_id"]) is int
    assert all(type(v) is float for v in rec["box"]) and type(rec["name"]) is str


# ---- PatchGrid -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "expected", "message"),
    [
        ({"features": np.zeros((2, 3, 4), np.float32), "image_size": (30, 20)}, does_not_raise(), None),
        ({"features": np.zeros((2, 3, 4), np.float32), "image_size": (30, 20),
          "saliency": np.zeros((7, 9), np.float32)}, does_not_raise(), None),
        ({"features": np.zeros((6, 4), np.float32), "image_size": (30, 20)}, pytest.raises(InvalidInputError),
         r"shape \(h, w, d\), but got shape \(6, 4\)"),
        ({"features": [[[0.0]]], "image_size": (30, 20)}, pytest.raises(InvalidInputError), "3D np.ndarray"),
        ({"features": np.zeros((2, 3, 4)), "image_size": (0, 20)}, pytest.raises(InvalidInputError),
         r"image_size must be \(W, H\) > 0"),
        ({"features": np.zeros((2, 3, 4)), "image_size": (30, 20, 3)}, pytest.raises(InvalidInputError),
         "image_size"),
        ({"features": np.zeros((2, 3, 4)), "image_size": (30, 20), "saliency": np.zeros((1, 7, 9))},
         pytest.raises(InvalidInputError), r"saliency must be a 2D np.ndarray, but got shape \(1, 7, 9\)"),
    ],
)
def test_patch_grid_validation(kwargs: dict, expected: Any, message: str | None) -> None:
    with expected as info:
        PatchGrid(**kwargs)
    if message is not None:
        assert info.match(message)


def test_patch_grid_geometry() -> None:
    g = PatchGrid(np.zeros((2, 3, 4), np.float32), image_size=(30, 20))
    assert g.shape == (2, 3)
    assert g.dim == 4
    assert g.cell_size == (10.0, 10.0)


# ---- Concept ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "expected", "message"),
    [
        ({"name": "Bo", "views": np.ones((2, 4))}, does_not_raise(), None),
        ({"name": "", "views": np.ones((1, 4))}, pytest.raises(InvalidInputError), "non-empty string"),
        ({"name": "   ", "views": np.ones((1, 4))}, pytest.raises(InvalidInputError), "non-empty string"),
        ({"name": None, "views": np.ones((1, 4))}, pytest.raises(InvalidInputError), "non-empty string"),
        ({"name": "Bo", "views": np.zeros((0, 4))}, pytest.raises(InvalidInputError),
         r"shape \(k>0, d\), but got shape \(0, 4\)"),
        ({"name": "Bo", "views": np.zeros((1, 2, 4))}, pytest.raises(InvalidInputError),
         r"but got shape \(1, 2, 4\)"),
        ({"name": "Bo", "views": np.ones((2, 4)), "parts": np.ones((3, 4))}, does_not_raise(), None),
        ({"name": "Bo", "views": np.ones((2, 4)), "parts": np.ones((3, 5))}, pytest.raises(InvalidInputError),
         r"parts must have shape \(m, 4\), but got \(3, 5\)"),
        ({"name": "Bo", "views": np.ones((2, 4)), "parts": np.ones(4)}, pytest.raises(InvalidInputError),
         r"parts must have shape \(m, 4\)"),
    ],
)
def test_concept_validation(kwargs: dict, expected: Any, message: str | None) -> None:
    with expected as info:
        Concept(**kwargs)
    if message is not None:
        assert info.match(message)


def test_concept_promotes_one_view_and_strips_name() -> None:
    c = Concept("  Bo ", np.arange(4))
    assert c.name == "Bo"
    assert c.views.shape == (1, 4) and c.views.dtype == np.float32
    assert c.dim == 4
    assert c.id == -1 and c.namespace == "default" and c.threshold is None


# ---- supervision interop ------------------------------------------------------------------------
def _full(n: int = 3) -> Detections:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (n, 2))
    return Detections(xyxy=np.hstack([xy, xy + 10]), score=rng.uniform(0, 1, n), concept_id=np.arange(n) - 1,
                      name=np.array(["", "Bo", "Mochi"][:n], dtype=object),
                      mask=rng.uniform(size=(n, 64, 64)) > 0.5, embedding=rng.normal(size=(n, 8)))


@pytest.mark.parametrize("dets", [_full(), _full(1), Detections.empty(),
                                  Detections(xyxy=[[0, 0, 4, 4]], name=["Bo"])], ids=["full", "one", "empty", "bare"])
def test_supervision_round_trip(dets: Detections) -> None:
    sv = pytest.importorskip("supervision")
    converted = dets.to_supervision()
    assert isinstance(converted, sv.Detections) and len(converted) == len(dets)
    np.testing.assert_array_equal(converted.confidence, dets.score)
    np.testing.assert_array_equal(converted.class_id, dets.concept_id)
    assert list(converted.data["class_name"]) == list(dets.name)
    back = Detections.from_supervision(converted)
    for field in ("xyxy", "score", "concept_id", "name", "mask", "embedding"):
        a, b = getattr(dets, field), getattr(back, field)
        assert (a is None and b is None) or np.array_equal(a, b), field
    assert [d["name"] for d in back[converted.confidence >= 0].to_list()] == list(dets.name)


def test_from_supervision_fills_what_supervision_leaves_out() -> None:
    sv = pytest.importorskip("supervision")
    back = Detections.from_supervision(sv.Detections(xyxy=np.array([[1.0, 2.0, 3.0, 4.0]])))
    assert back.score.tolist() == [1.0] and back.concept_id.tolist() == [-1] and back.name.tolist() == [""]
    with pytest.raises(InvalidInputError, match=r"needs a supervision\.Detections"):
        Detections.from_supervision([[1, 2, 3, 4]])


def test_to_supervision_without_the_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from pekit.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "supervision", None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'pekit-vlm\[supervision\]'"):
        Detections(xyxy=[[0, 0, 4, 4]]).to_supervision()


def test_a_missing_core_dependency_names_an_install_command_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    """onnxruntime, numpy... are dependencies of pekit-vlm itself: the hint reinstalls it,
    not an extra ``[core]`` that pyproject.toml does not have."""
    import sys

    from pekit.errors import MissingDependencyError, require

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(MissingDependencyError) as missing:
        require("onnxruntime", "core")
    assert "`pip install pekit-vlm`" in str(missing.value) and "[core]" not in str(missing.value)


def test_printing_detections_shows_names_scores_boxes_not_vectors() -> None:
    dets = Detections(xyxy=[[0, 0, 10, 20], [5, 5, 9.6, 9], [1, 1, 2, 2]], score=[0.812, 0.4, 0.5],
                      name=["Bo", "", "dog"], concept_id=[3, -1, -1],
                      embedding=np.full((3, 384), 0.123456, np.float32))
    text = repr(dets)
    assert text == ("Detections(3: 'Bo' (id 3) 0.81 at [0, 0, 10, 20]; unmatched 0.40 at [5, 5, 10, 9]; "
                    "'dog' 0.50 at [1, 1, 2, 2]; embedding (3, 384))")
    assert "0.1234" not in str(dets)                        # print() shows the same line
    many = Detections(xyxy=np.tile([0, 0, 4, 4], (11, 1)), score=np.ones(11), name=["x"] * 11, concept_id=[1] * 11)
    assert repr(many).count("'x'") == 8 and repr(many).endswith("; ... 3 more)")
    assert repr(Detections.empty()) == "Detections(0)"


def test_printing_a_concept_shows_shapes_not_vectors() -> None:
    c = Concept("Bo", np.eye(2, 384), category="dog", parts=np.eye(5, 384))
    assert repr(c) == "Concept('Bo', category='dog', id=-1, namespace='default', views (2, 384), parts (5, 384))"


def test_numbers_of_any_size_are_numbers_and_out_of_range_is_a_clear_error() -> None:
    from pekit.errors import InvalidInputError
    from pekit.types import check_threshold, finite_number

    assert finite_number(2**80) and finite_number(np.int64(3)) and finite_number(np.float32(0.5))
    assert not any(finite_number(v) for v in (True, "0.5", float("nan"), float("inf"), None, [1]))
    with pytest.raises(InvalidInputError, match="cosine score in"):
        check_threshold(2**64)


def test_results_compare_by_value_as_a_user_compares_them() -> None:
    """``==``, ``in`` and ``list.index`` on detections, concepts and answers: by value, arrays
    included (the generated equality raised numpy's "truth value is ambiguous")."""
    from pekit.types import Answer

    a, b = Detections(xyxy=[[0, 0, 10, 10]], score=[0.7], name=["Bo"]), Detections(xyxy=[[0, 0, 10, 10]],
                                                                                   score=[0.7], name=["Bo"])
    assert a == b and a in [Detections.empty(), b] and [Detections.empty(), b].index(a) == 1
    assert a != Detections(xyxy=[[0, 0, 10, 11]], score=[0.7], name=["Bo"]) and a != Detections.empty()
    assert Detections.empty() == Detections.empty() and a != "Bo"
    bo = Concept("Bo", np.eye(2, 8), meta={"boxes": [[1.0, 2.0, 3.0, 4.0]]})
    assert bo == Concept("Bo", np.eye(2, 8), meta={"boxes": [[1.0, 2.0, 3.0, 4.0]]})
    assert bo != Concept("Bo", np.eye(2, 8) * 0.5) and bo != Concept("Rex", np.eye(2, 8))
    assert Answer("hi", a, "prompt") == Answer("hi", b, "prompt") != Answer("ho", b, "prompt")


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"xyxy": np.zeros((2, 0))}, r"shape \(_, 4\), but got shape \(2, 0\)"),
    ({"xyxy": [[0, 0, 10, 10]], "concept_id": [1.7]}, "whole numbers"),
])
def test_detections_refuse_what_would_be_silently_changed(kwargs: dict, words: str) -> None:
    with pytest.raises(InvalidInputError, match=words):
        Detections(**kwargs)
    assert len(Detections(xyxy=[])) == len(Detections(xyxy=np.zeros((0, 4)))) == 0
    assert Detections(xyxy=[[0, 0, 1, 1]], concept_id=[3.0]).concept_id.tolist() == [3]
