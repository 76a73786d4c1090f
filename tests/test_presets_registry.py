"""Presets as data, backends by name, and a light ``import pekit``."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import nullcontext as does_not_raise
from typing import Any

import numpy as np
import pytest

import pekit
from pekit import registry
from pekit.errors import BackendNotFoundError, InvalidInputError
from pekit.presets import PRESETS, Preset, RecognitionConfig, get_preset
from pekit.registry import available, create, register


# ---- presets ------------------------------------------------------------------------------------
def test_the_presets() -> None:
    assert list(PRESETS) == ["offline", "offline-thorough", "offline-fast", "cpu", "paper"]
    offline = get_preset()
    assert offline.name == "offline" and offline.backbone == "onnx-dinov2-s" and offline.lvlm == "none"
    assert offline.detector is None and "detector" not in offline.recognition.proposals
    assert get_preset("paper").backbone == "hf:facebook/dinov2-large"
    assert get_preset(offline) is offline


def test_unknown_preset_lists_the_names() -> None:
    names = "offline, offline-thorough, offline-fast, cpu, paper"
    with pytest.raises(InvalidInputError, match=f"unknown preset 'turbo'; available: {names}"):
        get_preset("turbo")


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"threshold": 0.7}, lambda p: p.recognition.threshold == 0.7),
        ({"lvlm": "openai:http://x/v1#m"}, lambda p: p.lvlm == "openai:http://x/v1#m"),
        ({"backbone": "hf:facebook/dinov2-small", "verify_weight": 0.0},
         lambda p: p.backbone == "hf:facebook/dinov2-small" and p.recognition.verify_weight == 0.0),
        ({"proposals": ("windows",)}, lambda p: p.recognition.proposals == ("windows",)),
        ({}, lambda p: p == get_preset("offline")),
    ],
)
def test_with_options_returns_a_changed_copy(changes: dict, check: Any) -> None:
    original = get_preset("offline")
    changed = original.with_options(**changes)
    assert check(changed)
    assert original == PRESETS["offline"] and original.recognition.threshold == 0.6  # untouched


@pytest.mark.parametrize(
    ("changes", "expected", "message"),
    [
        ({"treshold": 0.7}, pytest.raises(InvalidInputError), r"unknown preset option\(s\) \['treshold'\]"),
        ({"threshold": 1.5}, pytest.raises(InvalidInputError), r"threshold must be a cosine score in \[-1, 1\]"),
        ({"proposals": ("saliency", "magic")}, pytest.raises(InvalidInputError), r"unknown proposal source"),
        ({"verify_weight": 2.0}, pytest.raises(InvalidInputError), r"verify_weight must be in \[0, 1\]"),
        ({"tiled_look": 1}, pytest.raises(InvalidInputError), r"tiled_look must be 0 \(off\) or at least 2"),
        ({"tiled_look": 2, "tiled_look_cover": 0.4}, pytest.raises(InvalidInputError),
         r"the tiles must cover the photo"),
        ({"tiled_look_cover": 1.0}, pytest.raises(InvalidInputError), r"tiled_look_cover must be in \(0, 1\)"),
        ({"threshold": -1.0}, does_not_raise(), None),
    ],
)
def test_with_options_validates(changes: dict, expected: Any, message: str | None) -> None:
    with expected as info:
        get_preset("offline").with_options(**changes)
    if message is not None:
        assert info.match(message)


def test_presets_are_frozen_data() -> None:
    with pytest.raises(AttributeError):
        get_preset("offline").lvlm = "x"  # type: ignore[misc]
    assert isinstance(RecognitionConfig(), RecognitionConfig) and isinstance(get_preset("cpu"), Preset)


# ---- registry ----------------------------------------------------------------------------------
def test_available_lists_built_in_backends() -> None:
    assert {"onnx-dinov2-s", "hf:"} <= set(available("backbone"))
    assert {"none", "hf:", "openai:"} <= set(available("lvlm"))
    assert all(isinstance(h, str) and h for h in available("backbone").values())
    assert available("no-such-kind") == {}


@pytest.mark.parametrize(
    ("kind", "name", "error", "message"),
    [
        ("backbone", "resnet", BackendNotFoundError, "unknown backbone 'resnet'; available: onnx-dinov2-s, hf:<...>"),
        ("lvlm", "gpt", BackendNotFoundError, "none"),
        ("detector", "yolo", BackendNotFoundError, "hf:<...>"),
        ("no-such-kind", "x", BackendNotFoundError, r"\(none registered\)"),
        ("backbone", "", InvalidInputError, "non-empty string; choose one of: hf:, onnx-dinov2-s"),
        ("backbone", "  ", InvalidInputError, "non-empty string"),
        ("backbone", "hf:", InvalidInputError, "hub id|needs something after"),  # a bare prefix
    ],
)
def test_unknown_backends_list_the_names(kind: str, name: str, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        create(kind, name)


def test_register_exact_and_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTRY, "toy", {})
    register("toy", "echo", "builtins:dict", "a dict")
    register("toy", "json:", "json:loads", "parses the rest")
    assert available("toy") == {"echo": "a dict", "json:": "parses the rest"}
    assert create("toy", "echo", a=1) == {"a": 1}
    assert create("toy", 'json:{"b": 2}') == json.loads('{"b": 2}')
    assert create("lvlm", "none").generate.__name__ == "generate"


class _Toy:
    def __init__(self, spec: str, *, layer: int = 7) -> None:
        self.spec, self.layer = spec, layer


def test_options_a_backend_does_not_take_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry._REGISTRY, "backbone", dict(registry._REGISTRY["backbone"]))
    register("backbone", "toy:", f"{__name__}:_Toy", "a toy")
    assert create("backbone", "toy:x", layer=3).layer == 3
    with pytest.raises(InvalidInputError, match=r"backbone 'toy:x' takes no option 'int8'; its options: layer "
                                                r"\(a preset's options were made for the preset's own backbone"):
        create("backbone", "toy:x", int8=True, layer=2)  # only the option it does not take is named


@pytest.mark.parametrize(("changes", "match"), [
    ({"proposals": "windows"}, "proposals must be a tuple"),
    ({"proposals": ()}, "at least one source"),
    ({"window_scales": ()}, "window_scales must hold fractions"),
    ({"saliency_levels": (2,)}, "saliency_levels must hold fractions"),
    ({"max_parts": 0}, "max_parts must be a whole number >= 1"),
    ({"second_looks": -1}, "second_looks must be a whole number >= 0"),
    ({"reference_zoom_out": 1}, "reference_zoom_out must be 0"),
    ({"nms_iou": 5}, r"nms_iou must be in \(0, 1\]"),
])
def test_recognition_settings_that_would_fail_later_are_refused_now(changes: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        get_preset("offline").with_options(**changes)


@pytest.mark.parametrize(("changes", "match"), [
    ({"max_per_concept": 2.5}, r"max_per_concept must be a whole number >= 1, got 2\.5"),
    ({"max_per_concept": "2"}, r"max_per_concept must be a whole number >= 1, got '2'"),
    ({"shortlist": float("nan")}, r"shortlist must be a whole number >= 2, got nan"),
    ({"tiled_look": 2.5}, r"tiled_look must be a whole number >= 0, got 2\.5"),
    ({"margin": "0.1"}, r"margin must be a finite number \(e\.g\. 0\.0\), got '0\.1'"),
    ({"nms_iou": None}, r"nms_iou must be a finite number"),
    ({"second_look_band": float("nan")}, r"second_look_band must be a finite number"),
    ({"second_look_above": "x"}, r"second_look_above must be a finite number or None"),
    ({"competitive": "no"}, r"competitive must be True or False, got 'no'"),
    ({"second_look_small": -1.0}, r"second_look_small must be in \[0, 1\]"),
    ({"second_look_band": -0.1}, r"second_look_band must be in \[0, 2\]"),
    ({"second_look_small_band": 5.0}, r"second_look_small_band must be in \[0, 2\]"),
    ({"second_look_min_zoom": 0.5}, r"second_look_min_zoom must be at least 1"),
])
def test_recognition_settings_of_the_wrong_kind_are_refused_by_name(changes: dict, match: str) -> None:
    # text, None and NaN were a TypeError here, or one in the middle of recognize after the
    # backbone pass (max_per_concept=2.5: slice indices), or passed unseen ("no" is truthy)
    with pytest.raises(InvalidInputError, match=match):
        get_preset("offline").with_options(**changes)
    assert RecognitionConfig(second_look_above=None, competitive=np.bool_(False), max_per_concept=np.int64(2),
                             margin=0).max_per_concept == 2


def test_numpy_numbers_and_a_device_of_none_are_welcome() -> None:
    config = RecognitionConfig(max_parts=np.int64(16), window_scales=(np.float32(0.5), 1.0))
    assert config.max_parts == 16
    assert get_preset("offline").with_options(device=None).device == "auto"


def test_a_preset_is_checked_when_built_and_found_ignoring_case() -> None:
    with pytest.raises(InvalidInputError, match=r"recognition must be a pekit\.presets\.RecognitionConfig"):
        Preset("mine", "", recognition={"threshold": 0.5})  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="needs a detector"):
        pekit.Pipeline(object(), RecognitionConfig(proposals=("detector",)))  # type: ignore[arg-type]
    assert get_preset(" Offline ") is PRESETS["offline"]


def test_another_backbone_starts_without_the_presets_backbone_options() -> None:
    fast = get_preset("offline-fast")
    assert fast.backbone_options  # int8 and the rest, for its ONNX backbone
    assert fast.with_options(backbone="hf:facebook/dinov2-small").backbone_options == {}
    assert fast.with_options(backbone="hf:x", backbone_options={"layer": 9}).backbone_options == {"layer": 9}
    assert fast.with_options(backbone=fast.backbone).backbone_options == fast.backbone_options


# ---- import stays light ------------------------------------------------------------------------
HEAVY = ("torch", "transformers", "onnxruntime", "onnx")


@pytest.mark.parametrize(
    "code",
    [
        "import pekit",
        "import pekit; pekit.Detections; pekit.get_preset('offline'); pekit.available('backbone')",
        "from pekit import Personalizer; Personalizer(memory='memory://').concepts()",
        "import pekit.cli; pekit.cli.build_parser()",
    ],
    ids=["import", "types-presets-registry", "personalizer-before-first-use", "cli-parser"],
)
def test_import_does_not_load_model_runtimes(code: str) -> None:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_lazy_attributes() -> None:
    assert pekit.__version__
    assert "Personalizer" in dir(pekit)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pekit.nope  # noqa: B018


def test_offline_fast_runs_int8_and_skips_the_saliency_head_on_queries(chelsea: Any) -> None:
    from pekit import Personalizer

    p = Personalizer("offline-fast", memory="memory://")
    assert p.pipeline.fingerprint.endswith("/int8") and not p.pipeline.query_saliency
    p.introduce("cat", chelsea)  # references still use the saliency map
    assert p.recognize(np.ascontiguousarray(chelsea[:, ::-1])).name.tolist() == ["cat"]


def test_offline_thorough_finds_a_small_thing_the_offline_preset_misses(chelsea: Any) -> None:
    from skimage import data, transform

    from pekit import Personalizer

    offline = Personalizer("offline", memory="memory://")
    offline.introduce("cat", chelsea)
    thorough = Personalizer("offline-thorough", memory=offline.memory)  # the same vectors: one memory
    assert thorough.pipeline.fingerprint == offline.pipeline.fingerprint
    scene = data.astronaut()
    w = 102  # the cat a fifth of the photo wide: ~3 % of its area
    h = round(w * chelsea.shape[0] / chelsea.shape[1])
    photo = scene.copy()
    photo[307:307 + h, 332:332 + w] = (transform.resize(chelsea, (h, w), anti_aliasing=True) * 255).astype(np.uint8)
    assert len(offline.recognize(photo)) == 0
    before = thorough.pipeline.tiled_look_passes
    found = thorough.recognize(photo)
    assert found.name.tolist() == ["cat"] and found.score[0] >= 0.6
    x0, y0, x1, y1 = found.xyxy[0]
    assert x0 >= 320 and y0 >= 300 and x1 <= 450 and y1 <= 390  # its box on the pasted cat
    assert thorough.pipeline.tiled_look_passes - before == 4  # the four tiles
    # a thing that fills the photo: the tiles see only its parts, which leave its name and box as they were
    flipped = np.ascontiguousarray(chelsea[:, ::-1])
    whole, again = offline.recognize(flipped), thorough.recognize(flipped)
    assert again.name.tolist() == ["cat"] and whole.name.tolist() == ["cat"]
    assert np.allclose(again.xyxy, whole.xyxy) and np.allclose(again.score, whole.score)
