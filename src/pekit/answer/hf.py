"""`hf:<hub id or local dir>`: any transformers image-text-to-text model.

Loads ``AutoProcessor`` + ``AutoModelForImageTextToText`` (LLaVA-1.5/1.6, Qwen2/2.5-VL,
InternVL, SmolVLM/Idefics3, Gemma 3, ...) and formats every request with the model's own
chat template, so the image tokens land where the model expects them. Models trained
on several images per prompt (`MULTI_IMAGE_MODELS`: Idefics/SmolVLM, Qwen-VL, InternVL,
Gemma 3, LLaVA-OneVision...) take up to ``max_images`` images in one message (key
frames of a clip); the others take one (a clip goes as one contact sheet). torch and
transformers are imported only when a model is built (``pip install 'pekit-vlm[hf]'``).

Example:
    >>> lvlm = HFLVLM("llava-hf/llava-v1.6-mistral-7b-hf", device="cuda")  # doctest: +SKIP
    >>> lvlm.generate(image, "The entity in the red box is called Bo. What is Bo doing?")  # doctest: +SKIP
    'Bo is sleeping on the sofa.'
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import threading
import time
from typing import Any

import numpy as np

from pekit._hf import dtype_option, hub_options, resolve_device, resolve_dtype
from pekit._hf import looks_like_path as _looks_like_path
from pekit.answer.base import (
    DEFAULT_MAX_NEW_TOKENS,
    ThreadUsage,
    check_generation,
    check_images,
    check_max_image_side,
    check_prompt,
    shrink_to,
)
from pekit.errors import BackendError, InvalidInputError, require

log = logging.getLogger(__name__)

__all__ = ["HFLVLM", "MULTI_IMAGE_MODELS", "resolve_device", "resolve_dtype"]

_EXAMPLES = "LLaVA-1.6, Qwen2-VL, InternVL, SmolVLM or Gemma 3"
#: transformers ``model_type`` of models trained with several images per prompt (interleaved);
#: LLaVA-1.5/1.6 (``llava``, ``llava_next``) were trained on one and get a contact sheet
MULTI_IMAGE_MODELS = frozenset({
    "idefics2", "idefics3", "smolvlm", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe", "internvl",
    "gemma3", "llava_onevision", "mistral3", "aya_vision", "glm4v", "kimi_vl",
})
#: images per prompt for a multi-image model unless ``max_images`` says otherwise
DEFAULT_MAX_IMAGES = 4


class HFLVLM:
    """A transformers image-text-to-text model behind the `LVLM` protocol.

    Args:
        spec: hub id (``"HuggingFaceTB/SmolVLM-256M-Instruct"``) or a local directory
            saved with ``save_pretrained`` (model + processor).
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        dtype: ``"auto"`` (bf16/fp16 on GPU, fp32 on CPU), ``"float32"``, ``"bfloat16"``, ``"float16"``.
        revision: hub revision (branch, tag or commit).
        local_files_only: never touch the network; use the local cache or directory only.
        trust_remote_code: allow model code from the hub, for a model whose ``auto_map`` names an
            ``AutoModelForImageTextToText`` class. InternVL's original repos (``internvl_chat``)
            map none: use their ``-hf`` conversions (``OpenGVLab/InternVL3-1B-hf``).
        chat_template: Jinja chat template to use when the processor ships none.
        attn_implementation: e.g. ``"sdpa"``, ``"flash_attention_2"``, ``"eager"``.
        max_image_side: downscale images whose long side exceeds this (pixels) before processing.
        max_images: images one prompt may carry; default `DEFAULT_MAX_IMAGES` (4) for
            `MULTI_IMAGE_MODELS`, else 1.

    Attributes:
        name: ``"hf:<spec>"``.
        last_usage: ``{"prompt_tokens", "completion_tokens", "seconds"}`` of the last call.

    Example:
        >>> lvlm = HFLVLM("/models/smolvlm", device="cpu")  # doctest: +SKIP
    """

    last_usage = ThreadUsage()  # per thread: concurrent answers each read their own

    def __init__(
        self,
        spec: str = "",
        *,
        device: str | None = "auto",
        dtype: Any = "auto",
        revision: str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        chat_template: str | None = None,
        attn_implementation: str | None = None,
        max_image_side: int | None = None,
        max_images: int | None = None,
    ) -> None:
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidInputError(
                "hf: needs a hub id or a local directory, e.g. 'hf:llava-hf/llava-1.5-7b-hf'"
            )
        spec = spec.strip()
        self.name = f"hf:{spec}"
        self.spec = spec
        self.max_image_side = check_max_image_side(max_image_side)
        self._lock = threading.Lock()
        self._special_tokens: list[str] | None = None
        torch = require("torch", "hf")
        transformers = require("transformers", "hf")
        source = spec
        if _looks_like_path(spec):
            source = os.path.expanduser(spec)
            if not os.path.isdir(source):
                raise BackendError(
                    f"'{spec}' is not a directory; pass a folder saved with save_pretrained "
                    "(config.json, weights, processor files) or a hub id like 'org/model'"
                )
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if not local_files_only:  # no network: the cache at once, or a clear error
            local_files_only = bool(hub_options(spec, "LVLM", revision).get("local_files_only"))
        common: dict[str, Any] = {
            "local_files_only": local_files_only, "trust_remote_code": trust_remote_code,
        }
        if revision:
            common["revision"] = revision

        if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int)
                                       or max_images < 1):
            raise InvalidInputError(f"max_images must be an integer >= 1, got {max_images!r}")
        config = self._load("config", transformers.AutoConfig.from_pretrained, source, **common)
        self._check_architecture(config, transformers)
        self.max_images = max_images if max_images is not None else \
            DEFAULT_MAX_IMAGES if getattr(config, "model_type", "") in MULTI_IMAGE_MODELS else 1
        self.processor = self._load("processor", transformers.AutoProcessor.from_pretrained, source, **common)
        if getattr(self.processor, "image_processor", None) is None:
            raise BackendError(
                f"'{spec}' has no image processor (AutoProcessor gave {type(self.processor).__name__}); "
                f"it is not an image-text-to-text model. Use one such as {_EXAMPLES}."
            )
        if chat_template is not None:
            self.processor.chat_template = chat_template
        if not getattr(self.processor, "chat_template", None):
            raise BackendError(
                f"'{spec}' ships no chat template, so pekit cannot place the image in the prompt; "
                "pass chat_template='<Jinja template>' (see the model card) or use an -Instruct/-hf variant"
            )
        kwargs = dict(common, **dtype_option(transformers, self.dtype))
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        auto_model = transformers.AutoModelForImageTextToText
        model = self._load("model", auto_model.from_pretrained, source, **kwargs)
        try:
            self.model = model.to(self.device).eval()
        except Exception as exc:  # out of memory, or no such accelerator in this torch build
            hint = " or a smaller dtype ('bfloat16')" if "memory" in str(exc).lower() else ""
            raise BackendError(f"cannot run '{spec}' on device '{self.device}': {exc}; try device='cpu'{hint}") from exc
        self._torch = torch
        log.info("loaded %s on %s (%s)", self.name, self.device, self.dtype)

    def _load(self, what: str, fn: Any, source: str, **kwargs: Any) -> Any:
        try:
            return fn(source, **kwargs)
        except Exception as exc:  # hub, parsing and import errors: one clear error
            hint, msg = "", str(exc)
            video = any(k in msg.lower() for k in ("video_processor", "video processor", "torchvision"))
            if video and importlib.util.find_spec("torchvision") is None:
                hint = " This model's processor needs torchvision: `pip install torchvision`."
            elif os.path.isdir(source) and not os.path.isfile(os.path.join(source, "config.json")):
                hint = (" The folder has no config.json: give the folder that save_pretrained wrote (config.json, "
                        "the weights and the processor's files), or a hub id.")
            elif any(k in msg.lower() for k in ("deserializ", "header", "unexpected end", "truncated",
                                                "invalid load key")):
                hint = (" A weights file looks cut off or damaged (an interrupted download or copy): copy it again, "
                        "or remove the model from the Hugging Face cache and download it again.")
            elif os.path.isdir(source):
                hint = (" The folder needs what save_pretrained wrote: config.json, the weights (*.safetensors) and "
                        "the processor's files.")
            elif isinstance(exc, OSError):
                hint = (" Check the hub id (e.g. 'llava-hf/llava-v1.6-mistral-7b-hf') or the local "
                        "directory; offline or a gated model? download it first (`hf download <id>`) "
                        "or log in.")
            detail = " ".join(msg.split()).rstrip(".")
            raise BackendError(f"cannot load the {what} of '{self.spec}': {detail}.{hint}") from exc

    def _check_architecture(self, config: Any, transformers: Any) -> None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        model_type = getattr(config, "model_type", "")
        custom = "AutoModelForImageTextToText" in (getattr(config, "auto_map", None) or {})
        if model_type == "internvl_chat":  # InternVL's own repos: remote code with no image-text-to-text class
            raise BackendError(
                f"'{self.spec}' is InternVL in its original format ('internvl_chat', remote code), which "
                "transformers' image-text-to-text models do not read; use its '-hf' conversion, e.g. "
                "'OpenGVLab/InternVL3-1B-hf'")
        if model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and not custom:
            archs = ", ".join(getattr(config, "architectures", None) or []) or "unknown architecture"
            raise BackendError(
                f"'{self.spec}' is a '{model_type}' model ({archs}), not an image-text-to-text model "
                f"that transformers {transformers.__version__} knows; use a vision-language model "
                f"such as {_EXAMPLES}."
            )

    def _specials(self) -> list[str]:
        """The model's control tokens (``<image>``, ``<|im_end|>``...), longest first: text
        that spells one would be read as one (a second image slot, the end of the turn)."""
        if self._special_tokens is None:
            tok = getattr(self.processor, "tokenizer", None)
            found = {str(t) for t in getattr(tok, "all_special_tokens", None) or []}
            found |= {str(t) for t in getattr(tok, "added_tokens_encoder", None) or {}}
            found |= {str(getattr(self.processor, a)) for a in ("image_token", "video_token", "boi_token",
                                                                 "eoi_token", "fake_image_token")
                      if isinstance(getattr(self.processor, a, None), str)}
            self._special_tokens = sorted((t for t in found if len(t) >= 3 and not t.isalnum()), key=len, reverse=True)
        return self._special_tokens

    def _plain(self, text: str) -> str:
        """``text`` with every spelled control token broken by a space after its first
        character (``<image>`` -> ``< image>``): the user's words stay words."""
        for token in self._specials():
            if token in text:
                text = text.replace(token, f"{token[0]} {token[1:]}")
        return text

    def _inputs(self, images: list[np.ndarray], prompt: str) -> Any:
        messages = [{"role": "user", "content": [
            *({"type": "image", "image": shrink_to(image, self.max_image_side)} for image in images),
            {"type": "text", "text": self._plain(prompt)},
        ]}]
        try:
            inputs = self.processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            )
        except Exception as exc:  # processors raise anything; report it clearly
            shapes = ", ".join(str(i.shape) for i in images)
            if re.search(r"tokens? and \d+ images?|number of images|image tokens?", str(exc), re.IGNORECASE):
                # e.g. "Found total 2 <image> tokens and 1 images"
                raise BackendError(
                    f"the processor of '{self.spec}' could not place the image(s) in the prompt: "
                    f"{type(exc).__name__}: {exc}. Its chat template may not fit the prompt or the number "
                    f"of images ({len(images)})."
                ) from exc
            raise BackendError(
                f"the processor of '{self.spec}' rejected the image (shape {shapes}) or prompt: "
                f"{type(exc).__name__}: {exc}. Pass an RGB photo of reasonable size and aspect ratio "
                "(e.g. at least 28 px per side, not a thin strip)."
            ) from exc
        torch = self._torch
        out = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if torch.is_floating_point(value):
                    value = value.to(self.dtype)
            out[key] = value
        return out

    def generate(
        self,
        image: np.ndarray | list[np.ndarray],
        prompt: str,
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> str:
        """Answer ``prompt`` about ``image`` (``(H, W, 3) uint8``, or a list of up to ``max_images``
        images, in order); greedy when ``temperature == 0``."""
        images = check_images(image, self.max_images)
        prompt = check_prompt(prompt)
        check_generation(max_new_tokens, temperature, seed)
        torch = self._torch
        with self._lock:
            start = time.perf_counter()
            inputs = self._inputs(images, prompt)
            gen: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "do_sample": temperature > 0}
            if temperature > 0:
                gen["temperature"] = float(temperature)
            else:  # silence "temperature is set but do_sample=False" from the model's own defaults
                gen.update(temperature=None, top_p=None, top_k=None)
            tokenizer = getattr(self.processor, "tokenizer", None)
            if getattr(self.model.generation_config, "pad_token_id", None) is None and tokenizer is not None:
                gen["pad_token_id"] = tokenizer.pad_token_id if tokenizer.pad_token_id is not None \
                    else tokenizer.eos_token_id
            fork = contextlib.nullcontext()
            if seed is not None:
                devices = [torch.device(self.device)] if self.device.startswith("cuda") else []
                fork = torch.random.fork_rng(devices=devices)
            try:
                with fork, torch.inference_mode():
                    if seed is not None:
                        torch.manual_seed(int(seed))
                    output = self.model.generate(**inputs, **gen)
            except (RuntimeError, ValueError, IndexError) as exc:
                raise BackendError(
                    f"generation with '{self.spec}' failed: {type(exc).__name__}: {exc}"
                ) from exc
            n_prompt = int(inputs["input_ids"].shape[1])
            new_tokens = output[:, n_prompt:]
            text = self.processor.batch_decode(new_tokens, skip_special_tokens=True)[0]
            self.last_usage = {
                "prompt_tokens": n_prompt,
                "completion_tokens": int(new_tokens.shape[1]),
                "seconds": round(time.perf_counter() - start, 4),
            }
        return text.strip()

    def __repr__(self) -> str:
        return f"HFLVLM({self.spec!r}, device={self.device!r}, dtype={self.dtype})"
