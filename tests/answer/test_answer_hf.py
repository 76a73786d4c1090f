"""`hf:` backend end to end on tiny, randomly initialised image-text-to-text models.

Each model is built from a config (a few layers of width 32), saved with its processor
(byte-level tokenizer made here, image processor from its class, a chat template) to a
temp dir, and loaded back through `load_lvlm("hf:<dir>")` exactly as a user's would be.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from pekit.answer import load_lvlm, respond
from pekit.answer.hf import HFLVLM
from pekit.errors import BackendError, InvalidInputError
from pekit.types import Detections

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None

_ROLE_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
_IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% elif c['type'] == 'text' %} {{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
_QWEN2_VL_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer(specials: list[str], **kwargs: Any) -> Any:
    """Lossless byte-level BPE without merges: any text round-trips through it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs)


def _text_config(tok: Any, **extra: Any) -> dict[str, Any]:
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None, **extra)


def _clip_vision() -> Any:
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                            image_size=28, patch_size=14, projection_dim=16)


def build_llava(path: Path, next_: bool = False) -> None:
    """LLaVA-1.5 (``llava``) or LLaVA-1.6 (``llava_next``, any-resolution tiles)."""
    import transformers as tf

    tok = _tokenizer(["<image>", "<|endoftext|>", "<|user|>", "<|assistant|>"],
                     eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    common = dict(vision_config=_clip_vision(), text_config=tf.LlamaConfig(**_text_config(tok)),
                  image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                  vision_feature_select_strategy="default", image_seq_length=4)
    size = dict(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28})
    if next_:
        from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

        pins = [[28, 28], [28, 56], [56, 28]]
        image_processor = LlavaNextImageProcessorPil(image_grid_pinpoints=pins, **size)
        processor_cls, model = tf.LlavaNextProcessor, tf.LlavaNextForConditionalGeneration(
            tf.LlavaNextConfig(image_grid_pinpoints=pins, **common))
    else:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

        image_processor = CLIPImageProcessorPil(**size)
        processor_cls, model = tf.LlavaProcessor, tf.LlavaForConditionalGeneration(tf.LlavaConfig(**common))
    processor = processor_cls(image_processor=image_processor, tokenizer=tok, patch_size=14,
                              vision_feature_select_strategy="default", num_additional_image_tokens=1,
                              chat_template=_ROLE_TEMPLATE)
    model.save_pretrained(path)
    processor.save_pretrained(path)


def build_idefics3(path: Path) -> None:
    """Idefics3 (SmolVLM v1): pixel shuffle, <fake_token_around_image><global-img><image>."""
    import transformers as tf
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    rows = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tok = _tokenizer(["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>",
                      "<image>", "<global-img>", *rows],
                     eos_token="<end_of_utterance>", pad_token="<|endoftext|>", bos_token="<|im_start|>")
    image_processor = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 28},
                                                max_image_size={"longest_edge": 28})
    processor = tf.Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=1,
                                     chat_template=_IDEFICS3_TEMPLATE)
    config = tf.Idefics3Config(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        text_config=dict(model_type="llama", **_text_config(tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2, pad_token_id=tok.pad_token_id)
    tf.Idefics3ForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)


def build_qwen2_vl(path: Path) -> None:
    """Qwen2-VL: dynamic resolution, M-RoPE (its processor needs torchvision)."""
    import transformers as tf
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    tok = _tokenizer(specials, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {s: tok.convert_tokens_to_ids(s) for s in specials}
    processor = tf.Qwen2VLProcessor(image_processor=Qwen2VLImageProcessorPil(min_pixels=56 * 56,
                                                                             max_pixels=112 * 112),
                                    tokenizer=tok, chat_template=_QWEN2_VL_TEMPLATE)
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]}
    config = tf.Qwen2VLConfig(
        vision_config=dict(depth=1, embed_dim=16, hidden_size=32, num_heads=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, mlp_ratio=2),
        text_config=_text_config(tok, rope_parameters=rope),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    tf.Qwen2VLForConditionalGeneration(config).save_pretrained(path)
    processor.save_pretrained(path)


BUILDERS = {
    "llava": build_llava,
    "llava_next": lambda p: build_llava(p, next_=True),
    "idefics3": build_idefics3,
    "qwen2_vl": build_qwen2_vl,
}
# Qwen2-VL's processor needs torchvision, which has no build for the CPU torch used here;
# where torchvision is installed the Qwen2-VL variant runs too.
ARCHS = ["llava", "llava_next", "idefics3", *(["qwen2_vl"] if HAS_TORCHVISION else [])]


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_lvlms")
    dirs = {}
    for arch, build in BUILDERS.items():
        if arch == "qwen2_vl" and not HAS_TORCHVISION:
            continue
        torch.manual_seed(0)
        dirs[arch] = root / arch
        build(dirs[arch])
    return dirs


@pytest.fixture(scope="session")
def lvlms(model_dirs) -> dict[str, HFLVLM]:
    return {arch: load_lvlm(f"hf:{path}", device="cpu", dtype="float32") for arch, path in model_dirs.items()}


@pytest.fixture
def scene() -> tuple[np.ndarray, Detections]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    dets = Detections(xyxy=[[8, 8, 60, 80], [70, 20, 120, 90]], score=[0.91, 0.84],
                      name=np.array(["Bo", "Mochi"], dtype=object))
    return image, dets


def _spy(monkeypatch, lvlm: HFLVLM) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    real = lvlm.model.generate

    def generate(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(lvlm.model, "generate", generate)
    return calls


@pytest.mark.parametrize("arch", ARCHS)
def test_end_to_end_prompt_reaches_the_model(arch, lvlms, scene, monkeypatch):
    lvlm = lvlms[arch]
    assert lvlm.name.startswith("hf:") and lvlm.device == "cpu"
    calls = _spy(monkeypatch, lvlm)
    image, dets = scene
    answer = respond(lvlm, image, dets, question="What are Bo and Mochi doing?",
                     contexts={"Bo": "my parents' dog", "Mochi": "Mochi is our shy cat"},
                     known_names=["Bo", "Mochi", "Rex"], max_new_tokens=6)
    (call,) = calls
    tokenizer = lvlm.processor.tokenizer
    received = tokenizer.decode(call["input_ids"][0], skip_special_tokens=False)
    for expected in ["The entity in the red box is called Bo.", "The entity in the blue box is called Mochi.",
                     "About Bo: my parents' dog.", "Mochi is our shy cat.", "What are Bo and Mochi doing?",
                     "without mentioning the boxes"]:
        assert expected in received
    image_token_id = lvlm.model.config.image_token_id
    assert int((call["input_ids"] == image_token_id).sum()) >= 1  # the chat template placed the image
    assert call["pixel_values"].dtype == torch.float32 and call["pixel_values"].numel() > 0
    assert isinstance(answer.text, str) and answer.text
    assert 1 <= lvlm.last_usage["completion_tokens"] <= 6
    assert answer.meta["usage"]["prompt_tokens"] == call["input_ids"].shape[1]
    assert answer.meta["backend"] == lvlm.name and answer.image.shape == image.shape


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_control_tokens_in_user_text_stay_text(arch, lvlms, scene, monkeypatch):
    # a context or question that spells the image token (or the end of a turn) must not open
    # a second image slot or end the user's turn
    lvlm = lvlms[arch]
    calls = _spy(monkeypatch, lvlm)
    image, _ = scene
    lvlm.generate(image, "What is Bo doing?", max_new_tokens=2)
    specials = [t for t in lvlm.processor.tokenizer.all_special_tokens if len(t) > 2 and t != "<image>"][:3]
    lvlm.generate(image, "What is <image> Bo doing? " + " ".join(specials), max_new_tokens=2)
    clean, spelled = (c["input_ids"][0].tolist() for c in calls)
    special_ids = set(lvlm.processor.tokenizer.all_special_ids) | {lvlm.model.config.image_token_id}
    assert [t for t in spelled if t in special_ids] == [t for t in clean if t in special_ids]


@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_greedy_is_deterministic_and_seeded_sampling_repeats(arch, lvlms, scene):
    lvlm, (image, _) = lvlms[arch], scene
    assert lvlm.generate(image, "Describe.", max_new_tokens=4) == lvlm.generate(image, "Describe.",
                                                                                 max_new_tokens=4)
    state = torch.random.get_rng_state()
    a = lvlm.generate(image, "Describe.", max_new_tokens=8, temperature=1.5, seed=3)
    b = lvlm.generate(image, "Describe.", max_new_tokens=8, temperature=1.5, seed=3)
    assert a == b
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is left alone


def test_caption_and_plain_question(lvlms, scene, monkeypatch):
    lvlm, (image, dets) = lvlms["llava_next"], scene
    calls = _spy(monkeypatch, lvlm)
    caption = respond(lvlm, image, dets, max_new_tokens=3)
    assert caption.meta["kind"] == "caption" and "calling Bo and Mochi by name" in caption.prompt
    plain = respond(lvlm, image, Detections.empty(), question="Is Rex here?", known_names=["Rex"],
                    max_new_tokens=3)
    assert plain.prompt == "Rex is not visible in this image.\nIs Rex here?"
    received = lvlm.processor.tokenizer.decode(calls[-1]["input_ids"][0])
    assert "Rex is not visible in this image." in received


def _image_tokens(lvlm: HFLVLM, call: dict[str, Any]) -> int:
    return int((call["input_ids"] == lvlm.model.config.image_token_id).sum())


def test_multi_image_models_take_several_images_in_one_prompt(lvlms, model_dirs, scene, monkeypatch):
    image, _ = scene
    idefics = lvlms["idefics3"]
    assert idefics.max_images == 4 and lvlms["llava"].max_images == 1 and lvlms["llava_next"].max_images == 1
    calls = _spy(monkeypatch, idefics)
    idefics.generate(image, "Describe.", max_new_tokens=2)
    idefics.generate([image, np.ascontiguousarray(image[::-1]), image], "Describe.", max_new_tokens=2)
    one, three = calls
    assert _image_tokens(idefics, three) == 3 * _image_tokens(idefics, one) > 0
    assert three["pixel_values"].shape[:2] == (1, 3)  # (batch, images, C, H, W)
    with pytest.raises(InvalidInputError, match="5 images for a backend that takes at most 4"):
        idefics.generate([image] * 5, "Describe.")
    with pytest.raises(InvalidInputError, match="2 images for a backend that takes at most 1"):
        lvlms["llava"].generate([image, image], "Describe.")
    llava = HFLVLM(str(model_dirs["llava"]), device="cpu", dtype="float32", max_images=2)  # the user says so
    calls = _spy(monkeypatch, llava)
    llava.generate([image, image], "Describe.", max_new_tokens=2)
    llava.generate(image, "Describe.", max_new_tokens=2)
    assert _image_tokens(llava, calls[0]) == 2 * _image_tokens(llava, calls[1]) > 0
    with pytest.raises(InvalidInputError, match="max_images must be an integer >= 1"):
        HFLVLM(str(model_dirs["llava"]), device="cpu", max_images=0)


def _clip(path: Path) -> Path:
    """3 s at 10 fps, 64 x 96: a white square 0-0.9 s, a blue one 2.0-2.9 s."""
    from fractions import Fraction

    av = pytest.importorskip("av")
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(30):
            img = np.full((64, 96, 3), 60, np.uint8)
            if i < 10:
                img[10:30, 10:30] = 255
            if i >= 20:
                img[30:50, 60:80] = (0, 0, 255)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_a_clip_goes_to_a_multi_image_model_as_key_frames(lvlms, tmp_path, monkeypatch):
    from pekit.video import recognize_video
    from pekit.video.answer import respond_video

    def squares(image: np.ndarray, timings: dict[str, float]) -> Detections:
        found = [(n, np.nonzero(m)) for n, m in (("Bo", image.min(axis=2) > 240),
                                                 ("Rex", (image[..., 2] > 200) & (image[..., 0] < 50)))]
        found = [(n, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) for n, (ys, xs) in found if len(xs)]
        if not found:
            return Detections.empty()
        return Detections(xyxy=[b for _, b in found], score=[0.8] * len(found), name=[n for n, _ in found])

    result = recognize_video(squares, _clip(tmp_path / "clip.mp4"), fps=2.0, keep_sheet=True)
    assert [t.name for t in result.tracks] == ["Bo", "Rex"]
    for arch, images in (("idefics3", 2), ("llava", 1)):
        lvlm = lvlms[arch]
        calls = _spy(monkeypatch, lvlm)
        answer = respond_video(lvlm, result, question="Who comes first?", max_new_tokens=3)
        (call,) = calls
        assert answer.meta["images"] == images and isinstance(answer.text, str)
        received = lvlm.processor.tokenizer.decode(call["input_ids"][0])
        assert "Bo (the entity in the red box)" in received and "Who comes first?" in received
        if arch == "idefics3":
            assert call["pixel_values"].shape[:2] == (1, 2) and "These 2 images are frames" in received
        else:
            assert "This image shows key frames" in received


def test_text_only_model_is_refused(tmp_path):
    import transformers as tf

    tok = _tokenizer(["<|endoftext|>"], eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tf.LlamaForCausalLM(tf.LlamaConfig(**_text_config(tok))).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    with pytest.raises(BackendError, match=r"'llama' model \(LlamaForCausalLM\), not an image-text-to-text"):
        load_lvlm(f"hf:{tmp_path}", device="cpu")


def test_missing_directory_and_unknown_hub_id():
    with pytest.raises(BackendError, match=r"'/no/such/model' is not a directory"):
        load_lvlm("hf:/no/such/model")
    with pytest.raises(BackendError, match=r"cannot load the config of 'no-such-org/no-such-vlm'.*hub id"):
        load_lvlm("hf:no-such-org/no-such-vlm", local_files_only=True)


def test_a_folder_without_config_and_a_revision_suffix_say_what_to_give(tmp_path):
    with pytest.raises(BackendError, match=r"The folder has no config.json: give the folder that save_pretrained"):
        load_lvlm(f"hf:{tmp_path}")
    with pytest.raises(InvalidInputError, match=r"a hub id such as 'HuggingFaceTB/SmolVLM-256M-Instruct'"):
        load_lvlm("hf:org/name@main")  # an LVLM's example, not a backbone's


def test_missing_chat_template(model_dirs, tmp_path):
    import shutil

    copy = tmp_path / "llava"
    shutil.copytree(model_dirs["llava"], copy)
    (copy / "chat_template.jinja").unlink()
    with pytest.raises(BackendError, match=r"ships no chat template.*pass chat_template="):
        HFLVLM(str(copy), device="cpu")
    lvlm = HFLVLM(str(copy), device="cpu", chat_template=_ROLE_TEMPLATE)
    assert isinstance(lvlm.generate(np.zeros((30, 30, 3), np.uint8), "Hi", max_new_tokens=2), str)


def test_image_the_processor_rejects(lvlms, model_dirs):
    # Qwen2-VL's image processor (real transformers code) refuses aspect ratios over 200:1
    if HAS_TORCHVISION:
        lvlm = lvlms["qwen2_vl"]
    else:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        lvlm = HFLVLM(str(model_dirs["llava"]), device="cpu")
        lvlm.processor.image_processor = Qwen2VLImageProcessorPil()
    with pytest.raises(BackendError, match=r"processor of .* rejected the image \(shape \(2, 900, 3\)\).*"
                                           r"aspect ratio"):
        lvlm.generate(np.zeros((2, 900, 3), np.uint8), "Describe.")


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, im: m.generate(im, ""), "prompt is empty"),
        (lambda m, im: m.generate(im[:, :, 0], "Hi"), r"shape \(H, W, 3\)"),
        (lambda m, im: m.generate(im, "Hi", max_new_tokens=0), "max_new_tokens"),
        (lambda m, im: m.generate(im, "Hi", temperature=-1), "temperature"),
        (lambda m, im: respond(m, im, Detections.empty(), question=""), "question is empty"),
        (lambda m, im: respond(m, im, Detections.empty(), question="q" * 100_000), "limit is 10,000"),
    ],
)
def test_bad_input_is_refused_before_the_model(lvlms, scene, monkeypatch, call, match):
    lvlm, (image, _) = lvlms["llava"], scene
    calls = _spy(monkeypatch, lvlm)
    with pytest.raises(InvalidInputError, match=match):
        call(lvlm, image)
    assert calls == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"device": "tpu9"}, "unknown device 'tpu9'"),
    ({"device": "cuda"} if not torch.cuda.is_available() else {"dtype": "int3"},
     "CUDA is not available|dtype"),
    ({"dtype": "float8"}, "unknown dtype 'float8'"),
    ({"device": "xpu"} if not (hasattr(torch, "xpu") and torch.xpu.is_available()) else {"dtype": "int3"},
     "'xpu' is not available with this torch build|dtype"),
    ({"device": "cuda:7"} if torch.cuda.device_count() < 8 else {"dtype": "int3"},
     "CUDA is not available|names GPU 7, but this machine has|dtype"),
])
def test_bad_device_or_dtype(model_dirs, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        HFLVLM(str(model_dirs["llava"]), **kwargs)


def test_a_device_torch_has_no_module_for_is_a_backend_error_not_a_traceback(model_dirs):
    """'hpu' (no torch.hpu here): the move to it fails inside torch with ModuleNotFoundError."""
    if getattr(torch, "hpu", None) is not None:
        pytest.skip("this torch has an hpu module")
    with pytest.raises(BackendError, match=r"cannot run '.*' on device 'hpu': .*try device='cpu'"):
        HFLVLM(str(model_dirs["llava"]), device="hpu")


def test_the_dtype_keyword_follows_the_transformers_version() -> None:
    """transformers < 4.56 reads ``torch_dtype``; given ``dtype`` it passes it on to the
    model's constructor, which refuses it: every hf: LVLM failed to load there."""
    from types import SimpleNamespace

    from pekit._hf import dtype_option

    assert dtype_option(SimpleNamespace(__version__="4.55.4"), torch.float16) == {"torch_dtype": torch.float16}
    assert dtype_option(SimpleNamespace(__version__="4.56.0"), torch.float16) == {"dtype": torch.float16}
    assert dtype_option(SimpleNamespace(__version__="5.0.0.dev0"), "auto") == {"dtype": "auto"}


@pytest.mark.parametrize(("capability", "expected"), [((7, 5), "float16"), ((7, 0), "float16"),
                                                      ((8, 0), "bfloat16"), ((9, 0), "bfloat16")])
def test_auto_dtype_on_cuda_is_bf16_only_where_the_gpu_has_it(monkeypatch, capability, expected) -> None:
    """A T4 (7.5) or V100 (7.0) emulates bfloat16, slowly: float16 there."""
    from pekit._hf import resolve_dtype

    asked = []
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (asked.append(device), capability)[1])
    assert resolve_dtype("auto", "cuda:1") == getattr(torch, expected)
    assert str(asked[0]) == "cuda:1"  # the GPU asked for, not the current one


@pytest.mark.skipif(HAS_TORCHVISION, reason="only without torchvision")
def test_processor_needing_torchvision_says_so(model_dirs, tmp_path):
    import json
    import shutil

    import transformers as tf

    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(model_dirs["llava"] / name, tmp_path / name)
    text = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=4, num_key_value_heads=2)
    vision = dict(depth=1, embed_dim=16, hidden_size=32, num_heads=2)
    tf.Qwen2VLConfig(vision_config=vision, text_config=text).save_pretrained(tmp_path)
    (tmp_path / "processor_config.json").write_text(json.dumps({
        "processor_class": "Qwen2VLProcessor",
        "image_processor": {"image_processor_type": "Qwen2VLImageProcessor"}}))
    with pytest.raises(BackendError, match=r"cannot load the processor.*pip install torchvision"):
        load_lvlm(f"hf:{tmp_path}", device="cpu")


def test_internvl_in_its_original_format_is_pointed_to_its_hf_conversion():
    """OpenGVLab's own repos ('internvl_chat', remote code) map no image-text-to-text class."""
    from types import SimpleNamespace

    import transformers as tf

    me = SimpleNamespace(spec="OpenGVLab/InternVL3-1B")
    config = SimpleNamespace(model_type="internvl_chat", architectures=["InternVLChatModel"],
                             auto_map={"AutoModel": "modeling_internvl_chat.InternVLChatModel"})
    with pytest.raises(BackendError, match=r"original format .*use its '-hf' conversion, e\.g\. "
                                           r"'OpenGVLab/InternVL3-1B-hf'"):
        HFLVLM._check_architecture(me, config, tf)
