"""VQA and caption runners with a fake pipeline and a fake LVLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pekit.errors import InvalidInputError
from pekit.eval.cache import AnswerCache, GridCache
from pekit.eval.captions import caption_markdown, caption_results, run_captions
from pekit.eval.datasets import load_dataset
from pekit.eval.metrics import corpus_bleu
from pekit.eval.vqa import run_vqa, vqa_markdown, vqa_results

from .conftest import FakeLVLM, FakePipeline, write_photo


def vqa_lvlm() -> FakeLVLM:
    return FakeLVLM([("What colour", "A"),            # right
                     ("Is bo a cat", "I cannot tell"),  # unparsable -> wrong
                     ("Where is mam", "The answer is A")])  # wrong (B is correct)


def test_vqa_accuracy_and_unparsable(yollava_dataset: Path, tmp_path: Path):
    ds = load_dataset(f"yollava:{yollava_dataset}")
    lvlm = vqa_lvlm()
    pipe = FakePipeline()
    run = run_vqa(ds, pipe, lvlm, refs=2, cache=GridCache(tmp_path / "c", pipe.fingerprint),
                  answers=AnswerCache(tmp_path / "c"), progress=False)
    assert lvlm.calls == 3 and len(run.records) == 3
    res = vqa_results(run)
    row = res["rows"][0]
    assert row["metrics"]["accuracy"]["mean"] == pytest.approx(1 / 3)
    assert row["unparsable"] == 1 and row["questions"] == 3
    assert row["metrics"]["recognized"]["mean"] == pytest.approx(1.0)
    assert res["per_concept"]["bo"]["mean"] == pytest.approx(0.5) and res["per_concept"]["mam"]["mean"] == 0.0
    # sks was replaced by the name, and the prompt names the drawn concept
    assert any("The entity in the red box is called bo." in p and "What colour is bo?" in p for p in lvlm.prompts)
    assert "| 2 | 3 | 33.3 ± 0.0 | 100.0 ± 0.0 | 1 |" in vqa_markdown(res)
    json.dumps(res, allow_nan=False)
    # resumable: a second run answers from the cache
    again = vqa_lvlm()
    run2 = run_vqa(ds, FakePipeline(), again, refs=2, cache=GridCache(tmp_path / "c", pipe.fingerprint),
                   answers=AnswerCache(tmp_path / "c"), progress=False)
    assert again.calls == 0 and [r.text for r in run2.records] == [r.text for r in run.records]
    assert run2.timing["backbone_passes"] == 0


def test_vqa_skips_concepts_with_too_few_references(yollava_dataset: Path):
    ds = load_dataset(f"yollava:{yollava_dataset}")
    for i in range(3, 5):
        write_photo(yollava_dataset / "train" / "bo" / f"{i}.png", "red", i + 1)
    ds = load_dataset(f"yollava:{yollava_dataset}")
    run = run_vqa(ds, FakePipeline(), vqa_lvlm(), refs=4, progress=False)
    assert run.skipped == ["mam"] and {r.concept for r in run.records} == {"bo"}
    assert any("mam" in w for w in run.warnings)


def test_vqa_needs_questions(folder_dataset: Path):
    with pytest.raises(InvalidInputError, match="no multiple-choice questions"):
        run_vqa(load_dataset(f"folder:{folder_dataset}"), FakePipeline(), vqa_lvlm())


@pytest.fixture
def myvlm_captions(tmp_path: Path) -> Path:
    root = tmp_path / "MyVLM"
    for i in range(3):
        write_photo(root / "data_concept_head" / "positives" / "small_penguin" / f"{i}.png", "red", i + 1)
        write_photo(root / "data_concept_head" / "positives" / "asian_doll" / f"{i}.png", "green", i + 1)
    emb = root / "data_concept_embedding" / "small_penguin"
    write_photo(emb / "blue.png", "blue", 1)          # captioned, but not a photo of the concept's memory
    caps = {f"{i}.png": ["small_penguin on a rock"] for i in range(3)}
    caps["blue.png"] = ["small_penguin on a rock", "a penguin on a rock"]
    emb.mkdir(parents=True, exist_ok=True)
    (emb / "captions.json").write_text(json.dumps(caps))
    return root


def test_captions_metrics(myvlm_captions: Path):
    ds = load_dataset(f"myvlm:{myvlm_captions}")
    lvlm = FakeLVLM([("called small_penguin", "small_penguin on a rock")], default="a blue square")
    run = run_captions(ds, FakePipeline(), lvlm, refs=1, seeds=2, progress=False)
    # per seed: 2 red photos (the third is the reference) recognized + the blue one (not recognized)
    assert len(run.records) == 6
    res = caption_results(run)
    m = res["rows"][0]["metrics"]
    assert m["exact_match"]["mean"] == pytest.approx(2 / 3)
    assert m["recall"]["mean"] == pytest.approx(2 / 3)
    assert m["recognized"]["mean"] == pytest.approx(2 / 3)
    expected = corpus_bleu(["small_penguin on a rock"] * 2 + ["a blue square"],
                           [["small_penguin on a rock"]] * 2 + [["small_penguin on a rock", "a penguin on a rock"]])
    assert m["bleu"]["mean"] == pytest.approx(expected / 100)
    assert 0 < expected < 100
    assert res["per_concept"]["small_penguin"]["mean"] == pytest.approx(2 / 3)
    assert "concept recall" in caption_markdown(res)
    json.dumps(res, allow_nan=False)


def test_captions_need_reference_captions(folder_dataset: Path):
    with pytest.raises(InvalidInputError, match="no reference captions"):
        run_captions(load_dataset(f"folder:{folder_dataset}"), FakePipeline(), FakeLVLM([]))
