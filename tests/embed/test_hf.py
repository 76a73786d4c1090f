"""`HFBackbone` on tiny randomly initialised transformers models (no network, fast)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never touch the network
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pekit.embed import Backbone, load_backbone  # noqa: E402
from pekit.embed.base import input_size, preprocess  # noqa: E402
from pekit.embed.hf import HFBackbone  # noqa: E402
from pekit.errors import BackboneMismatchError, BackendError, InvalidInputError  # noqa: E402

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 56,
        "patch_size": 14}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    torch.set_num_threads(1)


def _save(model_cls: Any, config: Any, path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model_cls(config).eval().save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(transformers.Dinov2Model, transformers.Dinov2Config(**TINY),
                 tmp_path_factory.mktemp("tiny-dinov2"))


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8)


def _reference(model_dir: Path, image: np.ndarray, resolution: int, *, mean: Any = None, std: Any = None,
               **forward: Any) -> Any:
    """The model's own outputs for the pekit-preprocessed image (optionally other stats)."""
    model = transformers.AutoModel.from_pretrained(str(model_dir)).eval()
    size = input_size(image.shape[1], image.shape[0], resolution, model.config.patch_size)
    x = preprocess(image, size)
    if mean is not None:
        from pekit.embed.base import IMAGENET_MEAN, IMAGENET_STD

        pixels = x * IMAGENET_STD[None, :, None, None] + IMAGENET_MEAN[None, :, None, None]
        x = (pixels - np.asarray(mean, np.float32)[None, :, None, None]) / np.asarray(std, np.float32)[
            None, :, None, None]
    pixel_values = torch.from_numpy(x.astype(np.float32))
    with torch.inference_mode():
        return model(pixel_values=pixel_values, output_hidden_states=True, **forward)


def test_grid_shape_dim_and_fingerprint(tiny_dir: Path, image: np.ndarray) -> None:
    bb = HFBackbone(str(tiny_dir), layer=1, resolution=112)
    grid = bb.embed(image)
    w, h = input_size(150, 100, 112)
    assert (w, h) == (140, 98)  # 150 x 100 at about 112 x 112 pixels
    assert grid.shape == (h // 14, w // 14) == (7, 10)
    assert bb.dim == grid.dim == 32
    assert grid.features.dtype == np.float32
    assert grid.image_size == (150, 100)
    assert grid.saliency is None  # no saliency head, even when asked
    assert bb.embed(image, saliency=True).saliency is None
    assert grid.backbone == bb.fingerprint
    assert bb.fingerprint.startswith("hf:local:")
    assert bb.fingerprint.endswith("/layer1/res112/ln")
    assert isinstance(bb, Backbone)


def test_fingerprint_tracks_weights_and_recipe(tiny_dir: Path, tmp_path: Path) -> None:
    base = HFBackbone(str(tiny_dir), layer=0, resolution=112).fingerprint
    assert HFBackbone(str(tiny_dir), layer=0, resolution=112).fingerprint == base  # stable
    others = {
        HFBackbone(str(tiny_dir), layer=1, resolution=112).fingerprint,
        HFBackbone(str(tiny_dir), layer=0, resolution=140).fingerprint,
        HFBackbone(str(tiny_dir), layer=0, resolution=112, normalize_tokens=False).fingerprint,
        HFBackbone(str(_save(transformers.Dinov2Model, transformers.Dinov2Config(**TINY),
                             tmp_path / tiny_dir.name, seed=1)), layer=0, resolution=112).fingerprint,
    }
    assert base not in others and len(others) == 4


def test_a_model_folder_moved_elsewhere_reads_the_memories_it_made(tiny_dir: Path, tmp_path: Path) -> None:
    import shutil

    from pekit import Personalizer

    moved = shutil.copytree(tiny_dir, tmp_path / "deployed-under-another-name")
    photo = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    memory = str(tmp_path / "m.db")
    options = {"layer": 1, "resolution": 112}
    with Personalizer(backbone=f"hf:{tiny_dir}", backbone_options=options, memory=memory) as p:
        p.introduce("Bo", photo, boxes=[[20, 20, 140, 100]])
    with Personalizer(backbone=f"hf:{moved}", backbone_options=options, memory=memory) as p:
        assert p.pipeline.fingerprint != HFBackbone(str(tiny_dir), **options).fingerprint  # its own folder name
        assert "Bo" in p.recognize(photo, threshold=0.0).name.tolist()  # but the same weights
    retrained = _save(transformers.Dinov2Model, transformers.Dinov2Config(**TINY), tmp_path / "other", seed=1)
    with Personalizer(backbone=f"hf:{retrained}", backbone_options=options, memory=memory) as p, \
            pytest.raises(BackboneMismatchError):
        p.recognize(photo)


@pytest.mark.parametrize(("layer", "error"), [
    (-1, None), (0, None), (1, None), (2, InvalidInputError), (-2, InvalidInputError),
])
def test_layer_bounds(tiny_dir: Path, layer: int, error: type[Exception] | None) -> None:
    if error is None:
        assert HFBackbone(str(tiny_dir), layer=layer).layer == layer
    else:
        with pytest.raises(error, match=r"layer must be in -1\.\.1"):
            HFBackbone(str(tiny_dir), layer=layer)


@pytest.mark.parametrize("layer", [0, 1, -1])
def test_layer_semantics_match_transformers(tiny_dir: Path, image: np.ndarray, layer: int) -> None:
    """layer i == hidden_states[i + 1] (the early-exit hook), -1 == last_hidden_state; CLS dropped."""
    grid = HFBackbone(str(tiny_dir), layer=layer, resolution=112, normalize_tokens=False).embed(image)
    out = _reference(tiny_dir, image, 112)
    tokens = out.last_hidden_state if layer == -1 else out.hidden_states[layer + 1]
    expected = tokens[0, 1:].numpy().reshape(7, 10, 32)
    np.testing.assert_allclose(grid.features, expected, rtol=1e-5, atol=1e-5)


def test_normalize_tokens_standardises_each_token(tiny_dir: Path, image: np.ndarray) -> None:
    feats = HFBackbone(str(tiny_dir), layer=0, resolution=112).embed(image).features
    np.testing.assert_allclose(feats.mean(-1), 0.0, atol=1e-4)
    np.testing.assert_allclose(feats.std(-1), 1.0, atol=1e-3)


def test_register_tokens_are_dropped(tmp_path: Path, image: np.ndarray) -> None:
    config = transformers.Dinov2WithRegistersConfig(**TINY, num_register_tokens=4)
    model_dir = _save(transformers.Dinov2WithRegistersModel, config, tmp_path / "reg")
    grid = HFBackbone(str(model_dir), layer=0, resolution=112, normalize_tokens=False).embed(image)
    out = _reference(model_dir, image, 112)
    assert out.hidden_states[1].shape[1] == 1 + 4 + 7 * 10
    np.testing.assert_allclose(grid.features, out.hidden_states[1][0, 5:].numpy().reshape(7, 10, 32),
                               rtol=1e-5, atol=1e-5)


def test_plain_vit_with_its_own_mean_std(tmp_path: Path, image: np.ndarray) -> None:
    """ViT: patch 16, position embeddings interpolated, 0.5/0.5 normalisation honoured."""
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                    intermediate_size=64, image_size=64, patch_size=16)
    model_dir = _save(transformers.ViTModel, config, tmp_path / "vit")
    stats = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
    (model_dir / "preprocessor_config.json").write_text(json.dumps(stats))
    grid = HFBackbone(str(model_dir), layer=-1, resolution=128, normalize_tokens=False).embed(image)
    assert grid.shape == (7, 10)  # 160 x 112 input (about 128 x 128 pixels), 16-pixel patches
    out = _reference(model_dir, image, 128, mean=stats["image_mean"], std=stats["image_std"],
                     interpolate_pos_encoding=True)
    np.testing.assert_allclose(grid.features, out.last_hidden_state[0, 1:].numpy().reshape(7, 10, 32),
                               rtol=1e-4, atol=1e-4)


def test_bfloat16_features_are_float32_and_close(tiny_dir: Path, image: np.ndarray) -> None:
    ref = HFBackbone(str(tiny_dir), layer=1, resolution=112).embed(image).features
    low = HFBackbone(str(tiny_dir), layer=1, resolution=112, dtype="bfloat16").embed(image).features
    assert low.dtype == np.float32
    cos = (ref * low).sum(-1) / (np.linalg.norm(ref, axis=-1) * np.linalg.norm(low, axis=-1))
    assert cos.min() > 0.98
    with pytest.raises(InvalidInputError, match="unknown dtype"):
        HFBackbone(str(tiny_dir), layer=0, dtype="int3")
    with pytest.raises(InvalidInputError, match="unknown device 'no-such-device'; use 'auto', 'cpu'"):
        HFBackbone(str(tiny_dir), layer=0, device="no-such-device")
    assert str(HFBackbone(str(tiny_dir), layer=0, device=" CPU ").device) == "cpu"


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bfloat16"), (False, "float16")])
def test_auto_dtype_follows_the_resolved_device(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch, bf16: bool,
                                                expected: str) -> None:
    """dtype 'auto' is read against the device the model runs on (as the LVLM's 'auto' is): CUDA's
    half dtype there, not float32 because it was resolved before the device. No GPU needed:
    the device is pretended and the move recorded, not made."""
    import pekit._hf

    moved: dict[str, Any] = {}

    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        moved.update(kwargs)
        return self

    monkeypatch.setattr(pekit._hf, "resolve_device", lambda device="auto": "cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args, **kwargs: (8, 0) if bf16 else (7, 5))
    monkeypatch.setattr(transformers.PreTrainedModel, "to", to)
    bb = HFBackbone(str(tiny_dir), layer=0, device="auto", dtype="auto")
    assert bb.torch_dtype == getattr(torch, expected)
    assert moved == {"device": torch.device("cuda"), "dtype": getattr(torch, expected)}


def test_auto_dtype_is_float32_on_the_cpu(tiny_dir: Path) -> None:
    for dtype in ("auto", None):
        assert HFBackbone(str(tiny_dir), layer=0, device="cpu", dtype=dtype).torch_dtype == torch.float32


def _has_device(kind: str) -> bool:
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    module = getattr(torch, kind, None)
    return bool(module is not None and getattr(module, "is_available", lambda: False)())


@pytest.mark.parametrize(("device", "error", "match"), [
    ("mps", InvalidInputError, r"device 'mps' was asked for but Apple MPS is not available.*device='cpu'"),
    ("meta", InvalidInputError, r"device 'meta' holds no weights .*'cpu'"),
    ("hpu", BackendError, r"cannot run '.*' on device 'hpu': .*try device='cpu'"),  # no torch.hpu module
    ("xpu", InvalidInputError, r"device 'xpu' is not available with this torch build .*'cpu'"),
])
def test_a_device_this_machine_lacks_is_a_pekit_error(tiny_dir: Path, device: str, error: type[Exception],
                                                      match: str) -> None:
    """Not torch's ModuleNotFoundError ('hpu') nor a model that loads on 'meta' and fails at every photo."""
    if _has_device(device):
        pytest.skip(f"this machine has a '{device}' device")
    with pytest.raises(error, match=match):
        HFBackbone(str(tiny_dir), layer=0, device=device)


@pytest.mark.parametrize(("bad", "match"), [
    (np.zeros((20, 30), np.uint8), r"\(H, W, 3\) uint8"),
    (np.zeros((20, 30, 3), np.float32), r"\(H, W, 3\) uint8"),
])
def test_embed_rejects_non_images(tiny_dir: Path, bad: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        HFBackbone(str(tiny_dir), layer=0).embed(bad)


@pytest.mark.parametrize(("spec", "match"), [
    ("/definitely/not/a/model/dir", "does not exist"),
    ("./no-such-dir", "does not exist"),
    ("pekit-tests/no-such-model", "(?s)not in the local Hugging Face cache.*unset HF_HUB_OFFLINE.*local directory"),
])
def test_unloadable_models_raise_backend_error(spec: str, match: str) -> None:
    with pytest.raises(BackendError, match=match) as info:
        HFBackbone(spec)
    assert info.value.exit_code == 10


def test_non_vision_model_is_refused(tmp_path: Path) -> None:
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=100)
    model_dir = _save(transformers.BertModel, config, tmp_path / "bert")
    with pytest.raises(BackendError, match="not a ViT-like vision model"):
        HFBackbone(str(model_dir))


def test_through_the_registry(tiny_dir: Path, image: np.ndarray) -> None:
    bb = load_backbone("hf:" + str(tiny_dir), layer=0, resolution=112)
    assert isinstance(bb, HFBackbone)
    assert bb.name == f"hf:{tiny_dir}"
    assert bb.embed(image).shape == (7, 10)
    with pytest.raises(BackendError, match="does not exist"):
        load_backbone("hf:/no/such/model/dir")
