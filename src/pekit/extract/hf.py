"""transformers backends for extraction: open-vocabulary detection and box-to-mask refinement.

`HFDetector` finds objects named by text with Grounding DINO (``grounding-dino``,
``mm-grounding-dino``) or OWL (``owlv2``, ``owlvit``); `HFSegmenter` turns boxes into masks
with SAM (``sam``). Both take a hub id (``IDEA-Research/grounding-dino-tiny``) or a local
directory written by ``save_pretrained`` (model *and* processor files), pick the model family
from the config's ``model_type``, and return everything in pixels of the original image.

torch and transformers are imported when a backend is built, never at ``import pekit``.
The registry names are ``hf:<spec>`` for kinds ``"detector"`` and ``"segmenter"``.

Example:
    >>> from pekit.registry import create
    >>> det = create("detector", "hf:IDEA-Research/grounding-dino-tiny")   # doctest: +SKIP
    >>> dets = det.detect(image, ["dog", "red mug"])                       # doctest: +SKIP
    >>> sam = create("segmenter", "hf:facebook/sam-vit-base")              # doctest: +SKIP
    >>> masks = sam.segment(image, dets.xyxy)      # (n, H, W) bool      # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from pekit._hf import looks_like_path
from pekit.errors import BackendError, ImageError, InvalidInputError, require
from pekit.types import Detections

__all__ = ["DETECTOR_TYPES", "SEGMENTER_TYPES", "HFDetector", "HFSegmenter"]

logger = logging.getLogger(__name__)

#: ``model_type`` -> detector family. Grounding models score text *tokens*; OWL models score
#: one text query per label.
DETECTOR_TYPES = {
    "grounding-dino": "grounding",
    "mm-grounding-dino": "grounding",
    "owlv2": "owl",
    "owlvit": "owl",
}
SEGMENTER_TYPES = ("sam",)

_OFFLINE_HINT = (
    "check that the hub id is spelled right and the network is reachable; if HF_HUB_OFFLINE=1 "
    "is set, the model must already be in the Hugging Face cache; or pass a local directory "
    "written by save_pretrained (config.json, weights and processor files)"
)

_DAMAGED_HINT = (
    "the folder must hold the whole checkpoint written by save_pretrained (config.json, the weights and "
    "the processor files); a weights file that was cut off or damaged (an interrupted copy or download) "
    "cannot be read: copy or download it again"
)


# ---- shared helpers ----------------------------------------------------------------------
def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise ImageError(
            f"expected an (H, W, 3) uint8 RGB array, but got {shape}; "
            "load files with pekit.images.load_image"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError("the image is empty (zero width or height)")
    if image.dtype != np.uint8:
        raise ImageError(f"expected a uint8 image, but got dtype {image.dtype}; use pekit.images.load_image")
    return image


def _check_spec(spec: Any, kind: str) -> str:
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInputError(f"the {kind} spec must be a hub id or a local directory, got {spec!r}")
    spec = spec.strip()
    expanded = os.path.expanduser(spec)
    if looks_like_path(spec) or os.path.exists(expanded):
        if not os.path.isdir(expanded):
            raise BackendError(
                f"cannot load the {kind} '{spec}': no such directory. Pass an existing directory "
                "written by save_pretrained, or a hub id such as 'IDEA-Research/grounding-dino-tiny'"
            )
        return str(Path(expanded).resolve())
    return spec


def _load(spec: str, kind: str, supported: tuple[str, ...], model_class: str, device: str) -> tuple[Any, ...]:
    """Load config, model and processor of ``spec``; -> ``(model, processor, model_type, torch)``."""
    torch = require("torch", "hf")
    transformers = require("transformers", "hf")
    from pekit._hf import hub_options, resolve_device

    dev = torch.device(resolve_device(device))
    kinds = ", ".join(supported)
    hub = hub_options(spec, kind)  # no network: the cache at once, or a clear error
    try:
        config = transformers.AutoConfig.from_pretrained(spec, **hub)
    except (OSError, ValueError, KeyError) as exc:
        raise BackendError(
            f"cannot load the {kind} '{spec}': {exc}\nWhat to do: {_OFFLINE_HINT}. "
            f"Supported model types: {kinds}"
        ) from exc
    model_type = getattr(config, "model_type", "")
    if model_type not in supported:
        raise BackendError(
            f"'{spec}' is a '{model_type}' model, which is not a supported {kind}; "
            f"supported model types: {kinds} (e.g. "
            + ("'facebook/sam-vit-base'" if kind == "segmenter" else
               "'IDEA-Research/grounding-dino-tiny', 'google/owlv2-base-patch16-ensemble'") + ")"
        )
    try:
        model = getattr(transformers, model_class).from_pretrained(spec, **hub)
        processor = transformers.AutoProcessor.from_pretrained(spec, **hub)
    except Exception as exc:  # OSError, ValueError... and safetensors' SafetensorError (a cut-off file)
        hint = _DAMAGED_HINT if os.path.isdir(spec) else _OFFLINE_HINT
        raise BackendError(f"cannot load the {kind} '{spec}' ({model_type}): {exc}\nWhat to do: {hint}") from exc
    try:
        model = model.to(dev).eval()
    except Exception as exc:  # e.g. "Torch not compiled with XPU enabled", "No module named 'torch.hpu'"
        raise BackendError(f"cannot run the {kind} '{spec}' on device '{device}': {exc}; "
                           "use device='cpu' or install a torch build for that device") from exc
    logger.info("loaded %s %s (%s) on %s", kind, spec, model_type, dev)
    return model, processor, model_type, torch


def _cxcywh_to_xyxy(boxes: np.ndarray, scale: tuple[float, float], size: tuple[int, int]) -> np.ndarray:
    """Normalised ``(n, 4)`` cx, cy, w, h -> pixel xyxy, scaled by ``(sx, sy)``, clipped to ``(W, H)``."""
    cx, cy, w, h = boxes.T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    xyxy *= np.array([scale[0], scale[1], scale[0], scale[1]], np.float32)
    np.clip(xyxy[:, 0::2], 0, size[0], out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, size[1], out=xyxy[:, 1::2])
    return xyxy.astype(np.float32)


# ---- detection ---------------------------------------------------------------------------
class HFDetector:
    """Open-vocabulary detector: find the objects named by ``labels`` in an image.

    Args:
        spec: hub id (``IDEA-Research/grounding-dino-tiny``, ``google/owlv2-base-patch16-ensemble``)
            or a local ``save_pretrained`` directory. The family comes from ``config.model_type``
            (one of `DETECTOR_TYPES`).
        box_threshold: keep boxes whose score is above this. OWL scores run lower than
            Grounding DINO's; 0.1 is a common choice for OWLv2.
        text_threshold: Grounding DINO only: the matched label's best token probability must
            also be above this (the official recipe's phrase threshold). With per-label scoring
            that probability *is* the score, so the effective floor is the larger threshold.
            Ignored by OWL models.
        device: torch device, ``"cpu"`` or ``"cuda"``.

    Example:
        >>> det = HFDetector("IDEA-Research/grounding-dino-tiny")      # doctest: +SKIP
        >>> dets = det.detect(image, ["dog", "red mug"])                # doctest: +SKIP
        >>> dets.xyxy.shape, dets.concept_id[:2], dets.name[:2]         # doctest: +SKIP
        ((3, 4), array([0, 1]), array(['dog', 'red mug'], dtype=object))
    """

    def __init__(self, spec: str, *, box_threshold: float = 0.25, text_threshold: float = 0.25,
                 device: str = "cpu") -> None:
        for key, value in (("box_threshold", box_threshold), ("text_threshold", text_threshold)):
            if not 0.0 <= float(value) <= 1.0:
                raise InvalidInputError(f"{key} must be in [0, 1], got {value}")
        self.spec = _check_spec(spec, "detector")
        self.name = f"hf:{self.spec}"
        self.box_threshold = float(box_threshold)
        self.text_threshold = float(text_threshold)
        self._model, self._processor, self.model_type, self._torch = _load(
            self.spec, "detector", tuple(DETECTOR_TYPES), "AutoModelForZeroShotObjectDetection", device)
        self.family = DETECTOR_TYPES[self.model_type]
        self.device = str(self._model.device)

    def __repr__(self) -> str:
        return f"HFDetector({self.spec!r}, model_type={self.model_type!r}, device={self.device!r})"

    def detect(self, image: np.ndarray, labels: list[str] | str) -> Detections:
        """Boxes of every object matching one of ``labels``, best first.

        Args:
            image: ``(H, W, 3) uint8`` RGB.
            labels: object names, e.g. ``["dog", "red mug"]`` (a single string is one label).

        Returns:
            `Detections` sorted by descending score: ``xyxy`` in original-image pixels
            (clipped to the image), ``score`` in [0, 1], ``concept_id`` = **index of the
            matched label** in ``labels`` (not a memory concept id), ``name`` = that label.
        """
        image = _check_image(image)
        labels = _check_labels(labels)
        if self.family == "grounding":
            parts = [self._detect_grounding(image, labels, group) for group in self._label_groups(labels)]
            xyxy, score, label = (np.concatenate(a) for a in zip(*parts, strict=True))
        else:
            xyxy, score, label = self._detect_owl(image, labels)
        keep = (score > self.box_threshold) & (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
        if self.family == "grounding":
            keep &= score > self.text_threshold
        order = np.flatnonzero(keep)[np.argsort(-score[keep], kind="stable")]
        return Detections(
            xyxy=xyxy[order], score=score[order], concept_id=label[order],
            name=np.array([labels[i] for i in label[order]], dtype=object).reshape(-1),
        )

    # Grounding DINO: one prompt "dog. red mug." whose tokens are scored per query ---------
    def _label_groups(self, labels: list[str]) -> list[list[int]]:
        """Split label indices into prompts that fit ``max_text_len`` tokens."""
        tokenizer = self._processor.tokenizer
        budget = int(getattr(self._model.config, "max_text_len", 256)) - 2  # [CLS] ... [SEP]
        groups: list[list[int]] = [[]]
        used = 0
        for i, phrase in enumerate(_phrases(labels)):
            cost = len(tokenizer(phrase, add_special_tokens=False)["input_ids"]) + 1  # + '.'
            if cost > budget:
                raise InvalidInputError(f"label {labels[i]!r} is too long for {self.spec} "
                                        f"({cost} tokens, at most {budget}); shorten it")
            if used + cost > budget:
                groups.append([])
                used = 0
            groups[-1].append(i)
            used += cost
        return groups

    def _detect_grounding(self, image: np.ndarray, labels: list[str],
                          group: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        phrases = [_phrases(labels)[i] for i in group]
        text = ". ".join(phrases) + "."
        spans, start = [], 0
        for phrase in phrases:
            spans.append((start, start + len(phrase)))
            start += len(phrase) + 2
        offsets = np.asarray(self._processor.tokenizer(text, return_offsets_mapping=True)["offset_mapping"])
        inputs = self._prepare(image, images=image, text=text, return_tensors="pt")
        if len(offsets) != inputs["input_ids"].shape[1]:
            raise BackendError(f"{self.spec}: tokenizer offsets do not match the processor's tokens")
        out = self._forward(inputs, image)
        probs = out.logits[0].float().sigmoid().cpu()  # (queries, max_text_len)
        per_label = []
        for lo, hi in spans:
            inside = (offsets[:, 0] < hi) & (offsets[:, 1] > lo) & (offsets[:, 1] > offsets[:, 0])
            tokens = np.flatnonzero(inside)
            if len(tokens) == 0:  # e.g. a label of unknown characters only
                per_label.append(torch.zeros(probs.shape[0]))
            else:
                per_label.append(probs[:, torch.as_tensor(tokens)].amax(dim=1))
        score, label = torch.stack(per_label, dim=1).max(dim=1)
        height, width = image.shape[:2]
        # boxes are normalised to the (unpadded) image, as post_process_grounded_object_detection
        # assumes with target_sizes=(H, W)
        xyxy = _cxcywh_to_xyxy(out.pred_boxes[0].float().cpu().numpy(), (width, height), (width, height))
        return xyxy, score.numpy().astype(np.float32), np.asarray(group, np.int64)[label.numpy()]

    # OWL: one text query per label ------------------------------------------------------
    def _detect_owl(self, image: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        max_len = int(getattr(self._model.config.text_config, "max_position_embeddings", 16))
        inputs = self._prepare(image, text=[label.strip() for label in labels], images=image, return_tensors="pt",
                               padding="max_length", truncation=True, max_length=max_len)
        out = self._forward(inputs, image)
        logits = out.logits[0].float().cpu()  # (patches, labels)
        best, label = logits.max(dim=1)
        height, width = image.shape[:2]
        # OWLv2 pads the image to a square (bottom/right) before resizing, so boxes are
        # normalised to the padded side; OWL-ViT resizes without padding.
        side = max(height, width)
        scale = (side, side) if self.model_type == "owlv2" else (width, height)
        xyxy = _cxcywh_to_xyxy(out.pred_boxes[0].float().cpu().numpy(), scale, (width, height))
        return xyxy, best.sigmoid().numpy().astype(np.float32), label.numpy().astype(np.int64)

    def _prepare(self, image: np.ndarray, **kwargs: Any) -> Any:
        """The processor's inputs; what it refuses (a 1 x 1 photo, a thin strip) is a `BackendError`."""
        try:
            return self._processor(**kwargs)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            h, w = image.shape[:2]
            raise BackendError(f"{self.spec} cannot prepare an image of size {w}x{h}: {exc}; pass a photo of "
                               "reasonable size and aspect ratio") from exc

    def _forward(self, inputs: Any, image: np.ndarray) -> Any:
        try:
            with self._torch.inference_mode():
                return self._model(**inputs.to(self._model.device))
        except (RuntimeError, ValueError) as exc:
            h, w = image.shape[:2]
            raise BackendError(f"{self.spec} failed on an image of size {w}x{h}: {exc}") from exc


def _phrases(labels: list[str]) -> list[str]:
    """Grounding DINO phrases: lowercase, no inner '.', since '.' ends each phrase of its prompt."""
    return [" ".join(label.replace(".", " ").split()).lower() for label in labels]


def _check_labels(labels: Any) -> list[str]:
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, (list, tuple)) or not labels:
        raise InvalidInputError(
            f"labels must be a non-empty list of object names, e.g. ['dog'], got {labels!r}")
    bad = [label for label in labels if not isinstance(label, str) or not label.strip(" .")]
    if bad:
        raise InvalidInputError(f"every label must be a non-empty string, e.g. 'red mug', got {bad!r}")
    return list(labels)


# ---- segmentation ------------------------------------------------------------------------
class HFSegmenter:
    """Box-prompted segmentation with SAM: one image encoding, one mask per box.

    Args:
        spec: hub id (``facebook/sam-vit-base``) or a local ``save_pretrained`` directory of a
            ``sam`` model with its processor.
        device: torch device, ``"cpu"`` or ``"cuda"``.
        multimask: ask SAM for its 3 candidate masks per box and keep the one with the
            highest predicted IoU (``False``: SAM's single-mask output).
        batch_size: boxes decoded per mask-decoder call.

    Example:
        >>> sam = HFSegmenter("facebook/sam-vit-base")                        # doctest: +SKIP
        >>> masks = sam.segment(image, np.array([[10, 20, 200, 180]]))        # doctest: +SKIP
        >>> masks.shape, masks.dtype                                          # doctest: +SKIP
        ((1, 480, 640), dtype('bool'))
    """

    def __init__(self, spec: str, *, device: str = "cpu", multimask: bool = True,
                 batch_size: int = 32) -> None:
        if int(batch_size) < 1:
            raise InvalidInputError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = _check_spec(spec, "segmenter")
        self.name = f"hf:{self.spec}"
        self.multimask = bool(multimask)
        self.batch_size = int(batch_size)
        self._model, self._processor, self.model_type, self._torch = _load(
            self.spec, "segmenter", SEGMENTER_TYPES, "SamModel", device)
        self.device = str(self._model.device)

    def __repr__(self) -> str:
        return f"HFSegmenter({self.spec!r}, device={self.device!r})"

    def segment(self, image: np.ndarray, boxes: np.ndarray | Detections) -> np.ndarray:
        """Masks of the objects in ``boxes``.

        Args:
            image: ``(H, W, 3) uint8`` RGB.
            boxes: ``(n, 4)`` xyxy in image pixels (or a `Detections`); clipped to the image.

        Returns:
            ``(n, H, W) bool`` masks at the original image size; ``(0, H, W)`` for no boxes.
        """
        image = _check_image(image)
        height, width = image.shape[:2]
        xyxy = _check_boxes(boxes.xyxy if isinstance(boxes, Detections) else boxes, width, height)
        masks = np.zeros((len(xyxy), height, width), bool)
        if len(xyxy) == 0:
            return masks
        torch = self._torch
        try:
            with torch.inference_mode():
                inputs = self._processor(images=image, input_boxes=[xyxy.tolist()], return_tensors="pt")
                device = self._model.device
                embeddings = self._model.get_image_embeddings(inputs["pixel_values"].to(device))
                for lo in range(0, len(xyxy), self.batch_size):
                    chunk = inputs["input_boxes"][:, lo:lo + self.batch_size].to(device)
                    out = self._model(image_embeddings=embeddings, input_boxes=chunk,
                                      multimask_output=self.multimask)
                    logits, iou = out.pred_masks[0], out.iou_scores[0]  # (k, m, h, w), (k, m)
                    best = iou.argmax(dim=1)
                    logits = logits[torch.arange(len(best)), best][:, None].float().cpu()  # (k, 1, h, w)
                    for j in range(0, len(logits), 4):  # upsample a few at a time: big photos
                        up = self._processor.post_process_masks(
                            [logits[j:j + 4]], inputs["original_sizes"], inputs["reshaped_input_sizes"])
                        masks[lo + j:lo + j + len(up[0])] = up[0][:, 0].numpy()
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"{self.spec} failed on an image of size {width}x{height}: {exc}") from exc
        return masks


def _check_boxes(boxes: Any, width: int, height: int) -> np.ndarray:
    try:
        xyxy = np.asarray(boxes, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"boxes must be an (n, 4) array of xyxy pixels: {exc}") from exc
    if xyxy.size == 0:
        return xyxy.reshape(0, 4)
    if xyxy.ndim == 1 and xyxy.shape[0] == 4:
        xyxy = xyxy[None]
    if xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise InvalidInputError(f"boxes must have shape (n, 4), but got shape {xyxy.shape}")
    if not np.all(np.isfinite(xyxy)) or np.any(xyxy[:, 2] < xyxy[:, 0]) or np.any(xyxy[:, 3] < xyxy[:, 1]):
        raise InvalidInputError("boxes must be finite xyxy with x1 >= x0 and y1 >= y0")
    xyxy[:, 0::2] = xyxy[:, 0::2].clip(0, width)
    xyxy[:, 1::2] = xyxy[:, 1::2].clip(0, height)
    return xyxy
