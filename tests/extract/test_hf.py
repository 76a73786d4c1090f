"""HFDetector / HFSegmenter end to end on tiny, randomly initialised transformers models.

Nothing is downloaded: the models, tokenizers and processors are built from configs and a
small vocabulary written here, saved with ``save_pretrained`` and loaded back by path.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
import torch  # noqa: E402

from pekit.errors import BackendError, ImageError, InvalidInputError  # noqa: E402
from pekit.extract.hf import HFDetector, HFSegmenter  # noqa: E402
from pekit.registry import create  # noqa: E402
from pekit.types import Detections  # noqa: E402

LABELS = ["dog", "red mug"]
WORDS = ["dog", "red", "mug", "cat", "a", "photo", "of", "the", "blue", "cup", "toy", "car"]


@pytest.fixture(scope="session", autouse=True)
def offline():
    """No network: HF_HUB_OFFLINE, also for a huggingface_hub imported before this module."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        yield


def _image_processor(name: str, **kwargs):
    # transformers v5 names the torchvision-free processors *Pil; v4 has only the plain class
    cls = getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)
    return cls(**kwargs)


def _seed(seed: int = 0) -> None:
    torch.manual_seed(seed)


@pytest.fixture(scope="session")
def grounding_dir(tmp_path_factory):
    _seed()
    swin = transformers.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                                   num_heads=[1, 1, 1, 1], window_size=4,
                                   out_features=["stage2", "stage3", "stage4"])
    bert = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16, max_position_embeddings=64)
    config = transformers.GroundingDinoConfig(
        backbone_config=swin, text_config=bert, d_model=32, num_queries=10, encoder_layers=1,
        decoder_layers=2, encoder_ffn_dim=16, decoder_ffn_dim=16, encoder_attention_heads=2,
        decoder_attention_heads=2, num_feature_levels=3, encoder_n_points=1, decoder_n_points=1,
        max_text_len=32)
    path = tmp_path_factory.mktemp("grounding-dino")
    transformers.GroundingDinoForObjectDetection(config).save_pretrained(path)
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *WORDS])}
    tokenizer = transformers.BertTokenizer(vocab=vocab)
    image_processor = _image_processor("GroundingDinoImageProcessor",
                                       size={"shortest_edge": 64, "longest_edge": 96})
    processor = transformers.GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    processor.save_pretrained(path)
    return path


def _save_owl(path, version: str):
    """A tiny OWLv2 (``version="v2"``) or OWL-ViT (``"vit"``) with a character-level CLIP BPE."""
    _seed()
    vocab: dict[str, int] = {}
    for c in "abcdefghijklmnopqrstuvwxyz.":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    prefix = "Owlv2" if version == "v2" else "OwlViT"
    config = getattr(transformers, f"{prefix}Config")(
        text_config=dict(vocab_size=len(vocab), hidden_size=16, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=bos,
                         eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=16, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    getattr(transformers, f"{prefix}ForObjectDetection")(config).save_pretrained(path)
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    size = {"height": 32, "width": 32}
    kwargs = {"size": size} if version == "v2" else {"size": size, "crop_size": size}
    image_processor = _image_processor(f"{prefix}ImageProcessor", **kwargs)
    processor_cls = getattr(transformers, f"{prefix}Processor")
    processor = processor_cls(image_processor=image_processor, tokenizer=tokenizer)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def owlv2_dir(tmp_path_factory):
    return _save_owl(tmp_path_factory.mktemp("owlv2"), "v2")


@pytest.fixture(scope="session")
def owlvit_dir(tmp_path_factory):
    return _save_owl(tmp_path_factory.mktemp("owlvit"), "vit")


@pytest.fixture(scope="session")
def sam_dir(tmp_path_factory):
    _seed()
    config = transformers.SamConfig(
        vision_config=dict(hidden_size=16, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                           image_size=64, patch_size=8, window_size=4, global_attn_indexes=[1],
                           num_pos_feats=8, mlp_dim=16),
        prompt_encoder_config=dict(hidden_size=16, image_size=64, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=16, mlp_dim=16, num_hidden_layers=1, num_attention_heads=2,
                                 iou_head_hidden_dim=16))
    path = tmp_path_factory.mktemp("sam")
    transformers.SamModel(config).save_pretrained(path)
    image_processor = _image_processor("SamImageProcessor", size={"longest_edge": 64},
                                       pad_size={"height": 64, "width": 64}, mask_size={"longest_edge": 16},
                                       mask_pad_size={"height": 16, "width": 16})
    transformers.SamProcessor(image_processor=image_processor).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def grounding(grounding_dir):
    return HFDetector(str(grounding_dir), box_threshold=0.0, text_threshold=0.0)


@pytest.fixture(scope="session")
def owlv2(owlv2_dir):
    return HFDetector(str(owlv2_dir), box_threshold=0.0)


@pytest.fixture(scope="session")
def owlvit(owlvit_dir):
    return HFDetector(str(owlvit_dir), box_threshold=0.0)


@pytest.fixture(scope="session")
def sam(sam_dir):
    return HFSegmenter(str(sam_dir))


def _image(height: int = 50, width: int = 80) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _assert_valid(dets: Detections, image: np.ndarray, labels: list[str]) -> None:
    height, width = image.shape[:2]
    assert isinstance(dets, Detections) and len(dets) > 0
    assert np.all(dets.xyxy >= 0)
    assert np.all(dets.xyxy[:, [0, 2]] <= width) and np.all(dets.xyxy[:, [1, 3]] <= height)
    assert np.all((dets.score >= 0) & (dets.score <= 1))
    assert np.all(np.diff(dets.score) <= 0), "sorted by score, best first"
    assert np.all((dets.concept_id >= 0) & (dets.concept_id < len(labels)))
    assert dets.name.tolist() == [labels[i] for i in dets.concept_id]


def _sorted_rows(boxes: np.ndarray) -> np.ndarray:
    return boxes[np.lexsort(boxes.T[::-1])]


def _hf_boxes(det: HFDetector, image: np.ndarray) -> np.ndarray:
    """Boxes from transformers' own post-processing with ``target_sizes=(H, W)``, clipped."""
    height, width = image.shape[:2]
    if det.family == "grounding":
        inputs = det._processor(images=image, text="dog. red mug.", return_tensors="pt")
        extra = {"input_ids": inputs["input_ids"], "text_threshold": 0.0}
    else:
        inputs = det._processor(text=LABELS, images=image, return_tensors="pt")
        extra = {}
    with torch.no_grad():
        out = det._model(**inputs)
    result = det._processor.post_process_grounded_object_detection(
        out, threshold=-1.0, target_sizes=[(height, width)], **extra)
    boxes = result[0]["boxes"].numpy()
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


# ---- detection ----------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(50, 80), (90, 40)])
@pytest.mark.parametrize("which", ["grounding", "owlv2", "owlvit"])
def test_detect_returns_valid_detections(request, which, shape):
    det = request.getfixturevalue(which)
    image = _image(*shape)
    dets = det.detect(image, LABELS)
    _assert_valid(dets, image, LABELS)
    # the same boxes as transformers' post-processing with target_sizes=(H, W)
    expected = _hf_boxes(det, image)
    np.testing.assert_allclose(_sorted_rows(dets.xyxy), _sorted_rows(expected), atol=1e-3)


def test_detector_family_from_config(grounding, owlv2, owlvit):
    assert (grounding.model_type, grounding.family) == ("grounding-dino", "grounding")
    assert (owlv2.model_type, owlv2.family) == ("owlv2", "owl")
    assert (owlvit.model_type, owlvit.family) == ("owlvit", "owl")


def _fake_output(logits: torch.Tensor, n: int) -> SimpleNamespace:
    boxes = torch.tensor([[0.5, 0.5, 0.5, 0.5]]).repeat(n, 1)[None]  # centred, half the size
    return SimpleNamespace(logits=logits, pred_boxes=boxes)


def test_grounding_maps_tokens_to_label_index(grounding, monkeypatch):
    # prompt "dog. red mug." -> [CLS] dog . red mug . [SEP]; '.' and specials are no label
    def forward(inputs, image):
        ids = inputs["input_ids"][0].tolist()
        vocab = grounding._processor.tokenizer.get_vocab()
        logits = torch.full((1, 3, 32), -10.0)
        logits[0, 0, ids.index(vocab["mug"])] = 3.0
        logits[0, 1, ids.index(vocab["dog"])] = 1.0
        logits[0, 2, ids.index(vocab["."])] = 5.0
        return _fake_output(logits, 3)

    monkeypatch.setattr(grounding, "_forward", forward)
    monkeypatch.setattr(grounding, "box_threshold", 0.25)
    dets = grounding.detect(_image(50, 80), ["Dog", "Red Mug."])
    assert dets.concept_id.tolist() == [1, 0]
    assert dets.name.tolist() == ["Red Mug.", "Dog"]
    np.testing.assert_allclose(dets.score, torch.tensor([3.0, 1.0]).sigmoid().numpy(), rtol=1e-6)
    np.testing.assert_allclose(dets.xyxy[0], [20, 12.5, 60, 37.5])  # normalised to (W, H)


@pytest.mark.parametrize(("which", "box"), [
    ("owlv2", [20, 20, 60, 50]),  # normalised to the padded 80x80 square, clipped to 50 rows
    ("owlvit", [20, 12.5, 60, 37.5]),  # OWL-ViT stretches the image: normalised to (W, H)
])
def test_owl_boxes_in_original_pixels(request, which, box, monkeypatch):
    det = request.getfixturevalue(which)

    def forward(inputs, image):
        return _fake_output(torch.tensor([[[2.0, -1.0], [-3.0, 0.5]]]), 2)

    monkeypatch.setattr(det, "_forward", forward)
    dets = det.detect(_image(50, 80), LABELS)
    assert dets.concept_id.tolist() == [0, 1]
    np.testing.assert_allclose(dets.score, torch.tensor([2.0, 0.5]).sigmoid().numpy(), rtol=1e-6)
    np.testing.assert_allclose(dets.xyxy, [box] * 2)


def test_grounding_splits_long_label_lists(grounding):
    labels = [f"{a} {b}" for a in WORDS[:6] for b in WORDS[6:]]  # 36 labels, > 32 tokens
    groups = grounding._label_groups(labels)
    assert len(groups) > 1 and sorted(i for g in groups for i in g) == list(range(len(labels)))
    dets = grounding.detect(_image(), labels)
    _assert_valid(dets, _image(), labels)
    assert len(dets) == 10 * len(groups)  # every query of every prompt (thresholds are 0)


@pytest.mark.parametrize(("labels", "error"), [
    ([], InvalidInputError),
    ([""], InvalidInputError),
    (["dog", " . "], InvalidInputError),
    ([3], InvalidInputError),
    (None, InvalidInputError),
])
def test_detect_rejects_bad_labels(grounding, labels, error):
    with pytest.raises(error):
        grounding.detect(_image(), labels)


@pytest.mark.parametrize("image", [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), np.float32),
                                   np.zeros((0, 10, 3), np.uint8), "photo.jpg"])
def test_detect_rejects_bad_images(owlv2, image):
    with pytest.raises(ImageError):
        owlv2.detect(image, LABELS)


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 3000, 3)], ids=["1x1", "strip"])
def test_an_image_the_processor_cannot_prepare_is_named(grounding, shape):
    with pytest.raises(BackendError, match=rf"cannot prepare an image of size {shape[1]}x{shape[0]}"):
        grounding.detect(np.zeros(shape, np.uint8), LABELS)


def test_single_label_string(owlv2):
    dets = owlv2.detect(_image(), "dog")
    assert set(dets.concept_id.tolist()) == {0} and set(dets.name.tolist()) == {"dog"}


# ---- segmentation -----------------------------------------------------------------------
def test_segment_masks_at_original_size(sam):
    image = _image(50, 80)
    boxes = np.array([[1, 2, 30, 40], [10, 10, 70, 45], [-5, -5, 200, 200]], np.float32)
    masks = sam.segment(image, boxes)
    assert masks.shape == (3, 50, 80) and masks.dtype == bool
    dets = Detections(xyxy=boxes[:2].clip(0, 50))
    assert sam.segment(image, dets).shape == (2, 50, 80)


def test_segment_batches_like_one_call(sam_dir):
    image = _image(60, 45)
    boxes = np.array([[1, 2, 30, 40], [10, 10, 40, 55], [0, 0, 45, 60]], np.float32)
    one = HFSegmenter(str(sam_dir), batch_size=1).segment(image, boxes)
    assert np.array_equal(one, HFSegmenter(str(sam_dir), batch_size=8).segment(image, boxes))


def test_segment_no_boxes(sam):
    masks = sam.segment(_image(50, 80), np.zeros((0, 4)))
    assert masks.shape == (0, 50, 80) and masks.dtype == bool


@pytest.mark.parametrize("boxes", [np.zeros((2, 3)), [[10, 10, 5, 20]], [[0, 0, np.nan, 4]]])
def test_segment_rejects_bad_boxes(sam, boxes):
    with pytest.raises(InvalidInputError):
        sam.segment(_image(), boxes)


# ---- registry and loading errors ----------------------------------------------------------
def test_registry_builds_backends(grounding_dir, sam_dir):
    det = create("detector", f"hf:{grounding_dir}", box_threshold=0.0, text_threshold=0.0)
    assert isinstance(det, HFDetector) and len(det.detect(_image(), LABELS)) > 0
    assert isinstance(create("segmenter", f"hf:{sam_dir}"), HFSegmenter)


def test_missing_directory(tmp_path):
    with pytest.raises(BackendError, match="no such directory"):
        HFDetector(str(tmp_path / "nope"))


def test_unknown_hub_id_offline():
    with pytest.raises(BackendError, match="HF_HUB_OFFLINE") as info:
        HFDetector("pekit-tests/no-such-model")
    assert "pekit-tests/no-such-model" in str(info.value)


def test_not_a_detector(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert")
    transformers.BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=8).save_pretrained(path)
    with pytest.raises(BackendError, match="'bert' model") as info:
        HFDetector(str(path))
    for model_type in ("grounding-dino", "owlv2"):
        assert model_type in str(info.value)


def test_detector_is_not_a_segmenter(owlv2_dir):
    with pytest.raises(BackendError, match="supported model types: sam"):
        HFSegmenter(str(owlv2_dir))


@pytest.mark.parametrize(("which", "cls"), [("grounding_dir", HFDetector), ("sam_dir", HFSegmenter)])
def test_a_cut_off_weights_file_is_a_backend_error_saying_to_copy_it_again(request, tmp_path, which, cls):
    """An interrupted copy: safetensors' SafetensorError is not an OSError, it was let through raw."""
    import shutil

    folder = shutil.copytree(request.getfixturevalue(which), tmp_path / "copied")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(BackendError, match=r"cannot load the (detector|segmenter) .*copied.*\n"
                                           r"What to do: .*cut off or damaged .*copy or download it again"):
        cls(str(folder))


@pytest.mark.parametrize("kwargs", [{"box_threshold": 1.5}, {"text_threshold": -0.1}, {"device": "nonsense"}])
def test_bad_options(grounding_dir, kwargs):
    with pytest.raises(InvalidInputError):
        HFDetector(str(grounding_dir), **kwargs)


@pytest.mark.parametrize("device", ["hpu", "meta", "mps"])
@pytest.mark.parametrize(("which", "cls"), [("owlv2_dir", HFDetector), ("sam_dir", HFSegmenter)])
def test_a_device_this_machine_lacks_is_a_pekit_error(request, which, cls, device):
    """'hpu' was a raw ModuleNotFoundError from torch; 'meta' loaded and failed at every photo."""
    if (device == "mps" and torch.backends.mps.is_available()) or (device == "hpu" and hasattr(torch, "hpu")):
        pytest.skip(f"this machine has a '{device}' device")
    with pytest.raises((InvalidInputError, BackendError), match=rf"device '{device}'.*'cpu'"):
        cls(str(request.getfixturevalue(which)), device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch build without CUDA")
def test_unavailable_device(owlv2_dir):
    with pytest.raises(InvalidInputError, match=r"device=.cpu."):
        HFDetector(str(owlv2_dir), device="cuda")


def test_a_model_of_the_wrong_kind_is_named_with_examples_of_the_right_kind(grounding_dir, sam_dir):
    with pytest.raises(BackendError, match=r"'grounding-dino' model, which is not a supported segmenter; supported "
                                           r"model types: sam \(e\.g\. 'facebook/sam-vit-base'\)$"):
        HFSegmenter(str(grounding_dir))
    with pytest.raises(BackendError, match=r"'sam' model, which is not a supported detector; .*grounding-dino-tiny"):
        HFDetector(str(sam_dir))
