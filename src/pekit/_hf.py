"""Helpers shared by every transformers backend (backbone, detector, segmenter, LVLM).

One place for: hub id vs local folder, whether the hub can be reached (`hub_options`),
device names (``auto`` -> CUDA, MPS or CPU) and dtype names (``bf16``, ``float16``...).
torch is imported only inside the functions.

Why `hub_options`: with no network, every file transformers asks the hub for is retried
for about 25 s (huggingface_hub's backoff) before it falls back on the cache or fails, so
an air-gapped machine waited minutes for a cached LLaVA and 25 s for a clear "not cached".
One quick request per process now decides: hub answers -> load as usual; it does not ->
load from the cache at once (``local_files_only``), or fail at once saying what to do.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from pekit.errors import BackendError, InvalidInputError, require

__all__ = ["DTYPES", "PROBE_TIMEOUT", "RETRY_AFTER", "check_hub_id", "dtype_option", "hub_offline", "hub_options",
           "hub_reachable", "looks_like_path", "resolve_device", "resolve_dtype"]

logger = logging.getLogger(__name__)

#: Seconds the hub has to answer the one request `hub_reachable` makes.
PROBE_TIMEOUT = 3.0

#: Seconds a "cannot be reached" answer is trusted before the hub is asked again.
RETRY_AFTER = 60.0

_REACHABLE: dict[str, tuple[bool, str, float]] = {}   # endpoint -> (reachable, why not, when asked)
_PROBE_LOCK = threading.Lock()

#: dtype spellings users type -> torch attribute names.
DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
}


def looks_like_path(spec: str) -> bool:
    """True when ``spec`` names a local folder rather than a hub id (``org/name``).

    >>> looks_like_path("facebook/dinov2-small"), looks_like_path("./models/dinov2")
    (False, True)
    """
    return spec.startswith(("/", ".", "~")) or os.path.isabs(spec) or os.path.exists(spec) \
        or spec.count("/") > 1 or "\\" in spec


def hub_offline() -> bool:
    """True when the user asked for the local cache only (``HF_HUB_OFFLINE=1``)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return False
    return bool(constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    """``(True, "")`` when the hub answers one HTTP request, else ``(False, why)``.

    Asked once per process and endpoint (``HF_ENDPOINT``), through huggingface_hub's own
    session, so proxies and certificates are the ones downloads would use. Any HTTP
    answer, even an error status, means the network reaches the hub. "Not reachable" is
    asked again after `RETRY_AFTER` seconds (a server started during a network outage).
    """
    import time

    from huggingface_hub import constants, get_session

    endpoint = constants.ENDPOINT
    with _PROBE_LOCK:
        known = _REACHABLE.get(endpoint)
        if known is None or (not known[0] and time.monotonic() - known[2] > RETRY_AFTER):
            try:
                get_session().head(endpoint, timeout=timeout)
                known = (True, "", time.monotonic())
            except Exception as exc:  # DNS, refused, timeout, TLS, proxy: all mean "not reachable"
                why = " ".join(str(exc).split()) or type(exc).__name__
                known = (False, why, time.monotonic())
            _REACHABLE[endpoint] = known
        return known[0], known[1]


def _in_cache(spec: str, revision: str | None) -> bool:
    from huggingface_hub import constants, try_to_load_from_cache

    found = try_to_load_from_cache(spec, "config.json", cache_dir=constants.HF_HUB_CACHE,
                                   revision=revision)
    return isinstance(found, str)


def hub_options(spec: str, what: str, revision: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained(spec, ...)`` that never wait on a dead network.

    ``{}`` for a local folder, under ``HF_HUB_OFFLINE`` when ``spec`` is cached (transformers
    then reads the cache itself) and when the hub answers; ``{"local_files_only": True}``
    when it does not answer but ``spec`` is in the local cache. Raises `BackendError` at
    once when it is in neither place (or offline and not cached), naming what to do.

    >>> hub_options("./models/dinov2", "backbone")
    {}
    """
    if looks_like_path(spec):
        return {}
    check_hub_id(spec, what)
    if hub_offline():
        if _in_cache(spec, revision):
            return {}
        reachable, why = False, "HF_HUB_OFFLINE is set: the hub is not asked"
    else:
        reachable, why = hub_reachable()
    if reachable:
        return {}
    if _in_cache(spec, revision):
        logger.warning("the Hugging Face hub cannot be reached (%s); loading the %s '%s' from the "
                       "local cache", why, what, spec)
        return {"local_files_only": True}
    from huggingface_hub import constants

    offline = "unset HF_HUB_OFFLINE to let it download, or " if hub_offline() else ""
    raise BackendError(
        f"cannot load the {what} '{spec}': it is not in the local Hugging Face cache "
        f"({constants.HF_HUB_CACHE}) and {constants.ENDPOINT} cannot be reached ({why}). "
        f"What to do: {offline}on a machine with network run `hf download {spec}` and copy its cache "
        "folder (HF_HOME) here, or pass a local directory written by save_pretrained; "
        "check the spelling of the hub id"
    )


#: a hub id of each kind of model, for the messages that ask for one
_EXAMPLE_IDS = {"backbone": "facebook/dinov2-small", "LVLM": "HuggingFaceTB/SmolVLM-256M-Instruct",
                "detector": "IDEA-Research/grounding-dino-tiny", "segmenter": "facebook/sam-vit-base"}


def check_hub_id(spec: str, what: str) -> None:
    """`InvalidInputError` unless ``spec`` is spelled as a hub id can be (``org/name`` or
    ``name``), so that a typo or a revision suffix (``org/name@main``) is named here, not in a
    ``HFValidationError`` from huggingface_hub.

    >>> check_hub_id("facebook/dinov2-small", "backbone")
    """
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(spec)
    except HFValidationError as exc:
        raise InvalidInputError(
            f"the {what} '{spec}' is neither an existing local folder nor a valid Hugging Face hub id "
            f"({exc}). What to do: give a hub id such as '{_EXAMPLE_IDS.get(what, 'org/model-name')}' (letters, "
            "digits, '-', '_' and '.', no '@revision'), or the path of a folder written by save_pretrained"
        ) from None


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if available, else ``"mps"``, else ``"cpu"``; others are checked.

    >>> resolve_device("cpu")
    'cpu'
    """
    if isinstance(device, str):
        device = device.strip().lower()
    if device == "cpu":
        return "cpu"
    torch = require("torch", "hf")
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(
            f"unknown device '{device}'; use 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'"
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device '{device}' was asked for but CUDA is not available; "
                                "use device='cpu'")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise InvalidInputError(f"device '{device}' was asked for but Apple MPS is not available (a Mac with "
                                "Apple silicon and a torch build with MPS); use device='cpu'")
    if dev.type == "meta":  # shapes only, no data: every pass would fail
        raise InvalidInputError("device 'meta' holds no weights and cannot run a model; use 'auto', 'cpu', "
                                "'cuda' or 'mps'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InvalidInputError(f"device '{device}' names GPU {dev.index}, but this machine has "
                                f"{torch.cuda.device_count()} (numbered from 0); use 'cuda' or 'cuda:0'")
    if dev.type not in ("cpu", "cuda", "mps"):  # xpu...: torch says whether it is there; a plug-in's (xla) is tried
        available = getattr(getattr(torch, dev.type, None), "is_available", None)
        try:
            there = bool(available()) if callable(available) else True
        except Exception:  # a backend half installed: not there
            there = False
        if not there:
            raise InvalidInputError(f"device '{device}' is not available with this torch build "
                                    f"({getattr(torch, '__version__', '?')}); use 'auto', 'cpu', 'cuda' or 'mps'")
    return str(dev)


def resolve_dtype(dtype: Any = "auto", device: str = "cpu") -> Any:
    """``"auto"``/None -> bfloat16 (or float16) on CUDA, float16 on MPS, float32 on CPU;
    names (`DTYPES`) or torch dtypes pass through.

    >>> str(resolve_dtype("bf16"))
    'torch.bfloat16'
    """
    torch = require("torch", "hf")
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "", "auto"):
        if device.startswith("cuda"):  # bf16 in hardware from Ampere (8.0) on; emulated before (T4, V100): fp16
            return torch.bfloat16 if torch.cuda.get_device_capability(torch.device(device)) >= (8, 0) \
                else torch.float16
        return torch.float16 if device.startswith("mps") else torch.float32
    key = str(dtype).lower().removeprefix("torch.")
    if key not in DTYPES:
        raise InvalidInputError(f"unknown dtype '{dtype}'; use 'auto', 'float32', 'bfloat16' or 'float16'")
    return getattr(torch, DTYPES[key])


def dtype_option(transformers: Any, dtype: Any) -> dict[str, Any]:
    """``from_pretrained``'s keyword for ``dtype``: ``dtype`` from transformers 4.56 on,
    ``torch_dtype`` before (where ``dtype`` would reach the model's constructor)."""
    from packaging.version import Version

    try:
        recent = Version(str(transformers.__version__)) >= Version("4.56")
    except Exception:  # an unreadable version: the current name
        recent = True
    return {"dtype": dtype} if recent else {"torch_dtype": dtype}
