"""With no network, hub models load from the cache at once or fail at once (`pekit._hf.hub_options`).

huggingface_hub retries each file for about 25 s before giving up; these tests point the hub
at a closed local port and count what is asked of it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
huggingface_hub = pytest.importorskip("huggingface_hub")

from pekit import _hf  # noqa: E402
from pekit.embed.hf import HFBackbone  # noqa: E402
from pekit.errors import BackendError  # noqa: E402

REVISION = "0123456789abcdef0123456789abcdef01234567"
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 56,
        "patch_size": 14}


@pytest.fixture()
def dead_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """The hub is a closed port, the cache an empty folder, HF_HUB_OFFLINE unset."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(_hf, "_REACHABLE", {})
    probes: list[str] = []
    real = _hf.hub_reachable

    def counted(timeout: float = _hf.PROBE_TIMEOUT) -> tuple[bool, str]:
        probes.append(constants.ENDPOINT)
        return real(timeout)

    monkeypatch.setattr(_hf, "hub_reachable", counted)
    return {"cache": cache, "probes": probes}


def _cache_model(cache: Path, repo: str) -> None:
    """Write a tiny DINOv2 into the cache layout huggingface_hub reads (refs/main -> snapshot)."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(REVISION)
    torch.manual_seed(0)
    transformers.Dinov2Model(transformers.Dinov2Config(**TINY)).eval().save_pretrained(str(snapshot))


def test_the_probe_reports_a_closed_port_and_asks_again_only_after_a_while(
        dead_hub: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.utils import _http

    asked: list[str] = []
    session = _http.get_session()
    real_head = session.head
    monkeypatch.setattr(session, "head", lambda url, **kw: (asked.append(url), real_head(url, **kw))[1])
    assert _hf.hub_reachable()[0] is False
    reachable, why = _hf.hub_reachable()
    assert not reachable and why and len(asked) == 1  # the second answer came from memory
    monkeypatch.setattr(_hf, "RETRY_AFTER", 0.0)
    assert _hf.hub_reachable()[0] is False and len(asked) == 2  # a stale "no" is asked again


def test_a_model_missing_from_the_cache_fails_at_once_saying_what_to_do(
        dead_hub: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("transformers was asked to reach the hub")

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", never)
    monkeypatch.setattr(transformers.utils, "cached_file", never)
    with pytest.raises(BackendError) as info:
        HFBackbone("pekit-tests/not-cached")
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message
    assert "hf download pekit-tests/not-cached" in message and "127.0.0.1:9" in message
    assert dead_hub["probes"] == ["http://127.0.0.1:9"]


def test_a_cached_model_loads_from_the_cache_when_the_hub_is_down(
        dead_hub: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    _cache_model(dead_hub["cache"], "pekit-tests/tiny")
    with caplog.at_level("WARNING", logger="pekit._hf"):
        backbone = HFBackbone("pekit-tests/tiny", layer=1)
    assert re.fullmatch(r"hf:pekit-tests/tiny@w[0-9a-f]{12}/layer1/res448/ln", backbone.fingerprint)
    assert "cannot be reached" in caplog.text and "local cache" in caplog.text
    grid = backbone.embed(np.zeros((56, 56, 3), np.uint8))
    assert grid.dim == 32


def test_a_new_upstream_commit_with_the_same_weights_keeps_the_memory(
        dead_hub: dict[str, Any], tmp_path: Path) -> None:
    """A hub model is told by its weights' values: a commit that edits only the README (or
    converts the weights to another file format) is the same backbone; new weights are not.
    A memory made when the fingerprint named the snapshot's commit is read by the same model."""
    from pekit import Personalizer
    from pekit.errors import BackboneMismatchError
    from pekit.memory import open_memory, same_backbone

    folder = dead_hub["cache"] / "models--pekit-tests--tiny"
    _cache_model(dead_hub["cache"], "pekit-tests/tiny")
    before = HFBackbone("pekit-tests/tiny", layer=1, resolution=112).fingerprint
    snapshot = folder / "snapshots" / REVISION
    readme = "f" * 40  # the same weights, under a new commit (a README edit upstream)
    (folder / "snapshots" / readme).mkdir()
    for path in snapshot.iterdir():
        (folder / "snapshots" / readme / path.name).write_bytes(path.read_bytes())
    (folder / "refs" / "main").write_text(readme)
    assert HFBackbone("pekit-tests/tiny", layer=1, resolution=112).fingerprint == before

    retrained = "e" * 40  # new weights
    (folder / "snapshots" / retrained).mkdir()
    torch.manual_seed(1)
    transformers.Dinov2Model(transformers.Dinov2Config(**TINY)).save_pretrained(str(folder / "snapshots" / retrained))
    (folder / "refs" / "main").write_text(retrained)
    after = HFBackbone("pekit-tests/tiny", layer=1, resolution=112).fingerprint
    assert after != before and not same_backbone(before, after)

    old = f"hf:pekit-tests/tiny@{REVISION[:12]}/layer1/res112/ln"  # a memory made before weights digests
    assert same_backbone(old, after) and not same_backbone(old, after.replace("layer1", "layer0"))
    assert not same_backbone(old.replace("tiny", "other"), after)

    memory = str(tmp_path / "m.db")
    options = {"layer": 1, "resolution": 112}
    photo = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    with Personalizer(backbone="hf:pekit-tests/tiny", backbone_options=options, memory=memory) as p:
        p.introduce("Bo", photo, boxes=[[20, 20, 140, 100]])
    other_weights = re.sub(r"@w[0-9a-f]{12}", "@w" + "0" * 12, p.pipeline.fingerprint)
    for recorded, refused in ((old, None), (old.replace("tiny", "other"), "use the same backbone"),
                              (other_weights, "the model's weights changed since the memory was made")):
        with open_memory(memory) as store, store._db.transaction("test", write=True) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'backbone'", (recorded,))  # as an older pekit did
        with Personalizer(backbone="hf:pekit-tests/tiny", backbone_options=options, memory=memory) as p:
            if refused is None:
                assert "Bo" in p.recognize(photo, threshold=0.0).name.tolist()
            else:
                with pytest.raises(BackboneMismatchError, match=refused):
                    p.recognize(photo)
    # an old memory records the weights at its first write: other weights are refused from then on
    with open_memory(memory) as store, store._db.transaction("test", write=True) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'backbone'", (old,))
    with Personalizer(backbone="hf:pekit-tests/tiny", backbone_options=options, memory=memory) as p:
        p.update("Bo", context="written once")  # no vector written: nothing to record
        assert p.memory.backbone == old
        p.add_view("Bo", photo, box=[20, 20, 140, 100])
        assert p.memory.backbone == p.pipeline.fingerprint
        assert not same_backbone(p.memory.backbone, other_weights)


def test_weights_the_checkpoint_lacks_are_not_in_the_fingerprint(dead_hub: dict[str, Any]) -> None:
    """A classifier's checkpoint read as its base model has no pooler, which transformers draws
    at random at each load: told by the weights it does hold, the model keeps one fingerprint."""
    folder = dead_hub["cache"] / "models--pekit-tests--vit-classifier"
    snapshot = folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(REVISION)
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                                    image_size=56, patch_size=14, num_labels=3)
    transformers.ViTForImageClassification(config).save_pretrained(str(snapshot))
    prints = {HFBackbone("pekit-tests/vit-classifier", layer=1).fingerprint for _ in range(3)}
    assert len(prints) == 1


def test_the_detector_and_the_lvlm_fail_at_once_too(dead_hub: dict[str, Any]) -> None:
    from pekit.registry import create

    for kind, spec in (("detector", "IDEA-Research/grounding-dino-tiny"),
                       ("lvlm", "llava-hf/llava-1.5-7b-hf")):
        with pytest.raises(BackendError, match=f"'{spec}': it is not in the local Hugging Face cache"):
            create(kind, f"hf:{spec}", device="cpu")
    assert len(set(dead_hub["probes"])) == 1


def test_local_folders_and_hf_hub_offline_never_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(timeout: float = 0) -> tuple[bool, str]:
        raise AssertionError("probed")

    monkeypatch.setattr(_hf, "hub_reachable", boom)
    assert _hf.hub_options("./models/dinov2", "backbone") == {}


def test_hf_hub_offline_reads_the_cache_and_says_where_it_looked(dead_hub: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, a cached model loads without a probe; one not cached is named with the cache
    folder and HF_HUB_OFFLINE, not transformers' "check your internet connection"."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _cache_model(dead_hub["cache"], "facebook/dinov2-small")
    assert _hf.hub_options("facebook/dinov2-small", "backbone") == {}
    with pytest.raises(BackendError, match=r"'facebook/dinov2-base': it is not in the local Hugging Face cache "
                                           rf"\({re.escape(str(dead_hub['cache']))}\) .*HF_HUB_OFFLINE is set.*"
                                           "What to do: unset HF_HUB_OFFLINE to let it download, or "):
        _hf.hub_options("facebook/dinov2-base", "backbone")
    assert dead_hub["probes"] == []


@pytest.mark.parametrize("offline", [False, True])
@pytest.mark.parametrize(("kind", "spec"), [
    ("backbone", "facebook/dinov2-small@main"), ("backbone", "my dinov2"),
    ("detector", "IDEA-Research/grounding-dino-tiny@v1"), ("segmenter", "sam vit base"),
])
def test_a_misspelled_hub_id_is_named_before_the_hub_or_the_cache_is_asked(
        dead_hub: dict[str, Any], monkeypatch: pytest.MonkeyPatch, offline: bool, kind: str, spec: str) -> None:
    """Not huggingface_hub's HFValidationError from the cache look-up: the spec, why, what to do."""
    from huggingface_hub import constants

    from pekit.errors import InvalidInputError
    from pekit.registry import create

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    example = {"backbone": "facebook/dinov2-small", "detector": "IDEA-Research/grounding-dino-tiny",
               "segmenter": "facebook/sam-vit-base"}[kind]  # a hub id of that kind of model
    with pytest.raises(InvalidInputError, match=rf"the {kind} '{re.escape(spec)}' is neither an existing local "
                                                 rf"folder nor a valid Hugging Face hub id .*'{example}'"):
        create(kind, f"hf:{spec}", device="cpu")
    assert dead_hub["probes"] == []
