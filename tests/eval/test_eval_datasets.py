"""Loaders on tiny synthetic trees of each published layout."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pekit.errors import InvalidInputError
from pekit.eval.datasets import DatasetLayoutError, category_from_name, detect_layout, load_dataset, parse_spec

from .conftest import make_folder, write_photo


def test_folder_layout_with_classes(folder_dataset: Path):
    ds = load_dataset(f"folder:{folder_dataset}")
    assert ds.layout == "folder"
    assert [c.name for c in ds.concepts] == ["amber", "blue", "green", "red"]
    red = ds.concept("red")
    assert red.category == "warm" and len(red.references) == 3 and red.holdout and red.positives == ()
    assert ds.num_photos == 9


def test_folder_categories_from_name_and_override(tmp_path: Path):
    root = make_folder(tmp_path / "db", {"dog3": ["red"], "small_penguin": ["green"]})
    ds = load_dataset(f"folder:{root}")
    assert {c.name: c.category for c in ds.concepts} == {"dog3": "dog", "small_penguin": "small penguin"}
    csv = tmp_path / "cats.csv"
    csv.write_text("concept,category\nsmall_penguin,penguin\n")
    ds = load_dataset(f"folder:{root}", categories=csv)
    assert ds.concept("small_penguin").category == "penguin"


def test_folder_skips_empty_subfolders_and_filters_concepts(tmp_path: Path):
    root = make_folder(tmp_path / "db", {"a": ["red"], "b": ["green"]})
    (root / "empty").mkdir()
    ds = load_dataset(str(root))                          # bare path: detected
    assert ds.layout == "folder" and [c.name for c in ds.concepts] == ["a", "b"]
    assert any("empty" in w for w in ds.warnings)
    assert [c.name for c in load_dataset(f"folder:{root}", concepts=["b"]).concepts] == ["b"]
    with pytest.raises(InvalidInputError, match="unknown concept"):
        load_dataset(f"folder:{root}", concepts=["zzz"])


def test_a_folder_name_decomposed_as_macos_writes_it_matches_the_csv_and_the_command_line(tmp_path: Path):
    import unicodedata

    root = tmp_path / "db"
    decomposed = unicodedata.normalize("NFD", "ñandú")
    for i in range(2):
        write_photo(root / decomposed / unicodedata.normalize("NFD", f"pequeño{i}.jpg"), "red", i + 1)
        write_photo(root / "blue_toy" / f"{i}.jpg", "blue", i + 1)
    (root / "classes.csv").write_text("subject,class\nñandú,bird\n")
    (root / "boxes.csv").write_text("subject,file,x0,y0,x1,y1\nñandú,pequeño0.jpg,1,1,10,10\n")
    ds = load_dataset(f"folder:{root}", concepts=["ñandú"])  # typed composed
    (c,) = ds.concepts
    assert c.category == "bird" and len(c.boxes) == 1 and not ds.warnings


def test_myvlm_layout(tmp_path: Path):
    root = tmp_path / "MyVLM"
    head = root / "data_concept_head"
    for i in range(3):
        write_photo(head / "positives" / "small_penguin" / f"{i}.jpg", "red", i + 1)
        write_photo(head / "positives" / "asian_doll" / f"{i}.jpg", "green", i + 1)
    write_photo(head / "negatives" / "small_penguin" / "n0.jpg", "blue", 1)
    emb = root / "data_concept_embedding" / "small_penguin"
    write_photo(emb / "0.jpg", "red", 1)
    (emb / "captions.json").write_text(json.dumps({"0.jpg": ["small_penguin on a rock"],
                                                   "1.jpg": ["small_penguin swims", "a penguin swims"],
                                                   "missing.jpg": ["x"]}))
    (emb / "captions_augmented.json").write_text(json.dumps({"0.jpg": ["aug 1", "aug 2"]}))
    ds = load_dataset(f"myvlm:{root}")
    assert [c.name for c in ds.concepts] == ["asian_doll", "small_penguin"]
    penguin = ds.concept("small_penguin")
    assert penguin.negatives == ((head / "negatives" / "small_penguin" / "n0.jpg", "negatives"),)
    assert ds.concept("asian_doll").negatives == ()
    # captions_augmented.json wins over captions.json, as in MyVLM
    assert [(c.concept, c.image.name, c.references) for c in ds.captions] == [("small_penguin", "0.jpg",
                                                                              ("aug 1", "aug 2"))]
    (emb / "captions_augmented.json").unlink()
    ds = load_dataset(f"myvlm:{root}")
    # a caption key missing from the embedding folder falls back to the positives folder
    assert [(c.image.name, len(c.references)) for c in ds.captions] == [("0.jpg", 1), ("1.jpg", 2)]
    assert any("missing.jpg" in w for w in ds.warnings)
    # negatives that no concept reads are said so, not silently dropped
    write_photo(head / "negatives" / "loose.jpg", "blue", 2)
    write_photo(head / "negatives" / "teddy" / "n0.jpg", "blue", 3)
    warnings = load_dataset(f"myvlm:{root}").warnings
    assert any("1 photo(s) directly in negatives/ are not read" in w for w in warnings)
    assert any("negatives/teddy matches no positives/ concept" in w for w in warnings)


def test_yollava_layout_and_questions(yollava_dataset: Path):
    ds = load_dataset(f"yollava:{yollava_dataset}")
    bo = ds.concept("bo")
    assert not bo.holdout and len(bo.references) == 3 and len(bo.positives) == 2
    assert len(ds.vqa) == 3
    q = next(q for q in ds.vqa if q.question.startswith("What colour"))
    assert q.question == "What colour is bo?" and q.options == {"A": "Red", "B": "Blue"} and q.answer == "A"
    # "./yollava-data/test/bo/0.png" resolves under the dataset root whatever its prefix
    assert q.image == yollava_dataset / "test" / "bo" / "0.png"
    assert detect_layout(yollava_dataset) == "yollava"


def test_yollava_answer_that_is_no_option_is_reported_and_skipped(yollava_dataset: Path):
    qa = json.loads((yollava_dataset / "yollava-visual-qa.json").read_text())
    qa["mam"]["yollava-data/test/mam/0.png"]["correct_answer"] = "C"  # options A and B only
    (yollava_dataset / "yollava-visual-qa.json").write_text(json.dumps(qa))
    ds = load_dataset(f"yollava:{yollava_dataset}")
    assert len(ds.vqa) == 2 and any("the answer 'C'" in w and "none of its options ['A', 'B']" in w
                                    for w in ds.warnings)


def test_yollava_missing_image_is_reported(yollava_dataset: Path):
    qa = json.loads((yollava_dataset / "yollava-visual-qa.json").read_text())
    qa["bo"]["./yollava-data/test/bo/99.png"] = {"question": "q", "options": {"A": "a", "B": "b"},
                                                 "correct_answer": "A"}
    (yollava_dataset / "yollava-visual-qa.json").write_text(json.dumps(qa))
    ds = load_dataset(f"yollava:{yollava_dataset}")
    assert len(ds.vqa) == 3 and any("99.png" in w for w in ds.warnings)


def test_thisismy_layout(tmp_path: Path):
    root = tmp_path / "tim"
    single = root / "Single-concept"
    for i in range(2):
        write_photo(single / "Reference Images" / "mug" / f"{i}.jpg", "red", i + 1)
        write_photo(single / "Reference Images" / "cap" / f"{i}.jpg", "green", i + 1)
    write_photo(single / "Validation" / "positive" / "mug" / "p.jpg", "red", 9)
    write_photo(single / "Validation" / "Negative (Hard)" / "mug" / "h.jpg", "yellow", 1)
    write_photo(single / "Validation" / "Negative (Other)" / "mug" / "o.jpg", "blue", 1)
    write_photo(single / "Validation" / "Fake" / "cap" / "f.jpg", "white", 1)
    write_photo(single / "Validation" / "positive" / "ghost" / "g.jpg", "white", 2)
    write_photo(single / "Validation" / "positive" / "mug" / "12_double.jpg", "red", 10)  # the mug and the cap
    multi = root / "Multi-concept"  # a separate benchmark (the papers'): named, not mixed in
    write_photo(multi / "Reference Images" / "mug" / "m.jpg", "red", 20)
    write_photo(multi / "Reference Images" / "Anas cup" / "a.jpg", "blue", 20)
    write_photo(multi / "Validation" / "mug_and_Anas cup" / "both.jpg", "white", 20)
    ds = load_dataset(f"thisismy:{root}")
    mug = ds.concept("mug")
    assert len(mug.references) == 2 and not mug.holdout
    assert [p.name for p in mug.positives] == ["12_double.jpg", "p.jpg"] and [p.name for p in mug.shared] == [
        "12_double.jpg"]
    assert sorted((p.name, s) for p, s in mug.negatives) == [("h.jpg", "Negative (Hard)"),
                                                             ("o.jpg", "Negative (Other)")]
    assert [(p.name, s) for p, s in ds.concept("cap").negatives] == [("f.jpg", "Fake")]
    assert [c.name for c in ds.concepts] == ["cap", "mug"]
    assert any("ghost" in w for w in ds.warnings)
    assert any(f"--dataset thisismy:{multi}" in w for w in ds.warnings)
    write_photo(multi / "Reference Images" / "Sherry-woman" / "s.jpg", "green", 20)
    write_photo(multi / "Validation" / "Sherry_and_mug" / "two.jpg", "yellow", 20)  # a person's folder by her name
    both = load_dataset(f"thisismy:{multi}")  # the multi-concept subset, named: a photo of two is both's
    assert [c.name for c in both.concepts] == ["Anas cup", "Sherry-woman", "mug"]
    assert [p.name for p in both.concept("Anas cup").positives] == ["both.jpg"]
    assert sorted(p.name for p in both.concept("mug").positives) == ["both.jpg", "two.jpg"]
    assert [p.name for p in both.concept("Sherry-woman").positives] == ["two.jpg"] and not both.warnings


def test_thisismy_as_pekits_evaluation_reads_it(tmp_path: Path):
    """PeKit's own copy: Single-concept/train/<concept>/ and test/<split>/<concept>/."""
    single = tmp_path / "This-is-My-Img" / "Single-concept"
    for i in range(2):
        write_photo(single / "train" / "Sherrys road bike" / f"{i}.png", "red", i + 1)
        write_photo(single / "train" / "cap" / f"{i}.png", "green", i + 1)
    write_photo(single / "test" / "Positive" / "Sherrys road bike" / "p.webp", "red", 9)
    write_photo(single / "test" / "Negative (Hard)" / "cap-hat" / "h.jpeg", "yellow", 1)  # "<concept>-<category>"
    for spec in (f"thisismy:{tmp_path / 'This-is-My-Img'}", str(tmp_path / "This-is-My-Img"), str(single)):
        ds = load_dataset(spec)
        assert ds.layout == "thisismy" and [c.name for c in ds.concepts] == ["Sherrys road bike", "cap"], spec
        assert [p.name for p in ds.concept("Sherrys road bike").positives] == ["p.webp"]
        assert [(p.name, s) for p, s in ds.concept("cap").negatives] == [("h.jpeg", "Negative (Hard)")]


def test_a_double_photo_is_no_other_concepts_negative(tmp_path: Path):
    """A *_double positive shows its concept and an unnamed second one: counted as a positive
    of its own concept, and as a negative of none (it may be the other's positive)."""
    import numpy as np

    from pekit.eval.photos import collect_photos
    from pekit.eval.summary import OTHER, trial_masks

    single = tmp_path / "tim" / "Single-concept"
    for name, colour in (("car", "red"), ("bag", "green")):
        write_photo(single / "Reference Images" / name / "0.jpg", colour, 1)
        write_photo(single / "Validation" / "positive" / name / "1.jpg", colour, 2)
    write_photo(single / "Validation" / "positive" / "car" / "2_double.jpg", "white", 3)
    ds = load_dataset(f"thisismy:{tmp_path / 'tim'}")
    photos, index = collect_photos(ds, progress=False)

    rows = [index[single / "Validation" / "positive" / n / f] for n, f in (("car", "1.jpg"), ("bag", "1.jpg"),
                                                                             ("car", "2_double.jpg"))]
    run = SimpleNamespace(categories={"car": "car", "bag": "bag"}, photos=photos)  # what trial_masks reads
    trial = SimpleNamespace(concepts=["car", "bag"], scores=np.zeros((3, 2), np.float32), gallery="all",
                            photos=np.array(rows))
    positive, negative, subsets = trial_masks(run, trial)  # type: ignore[arg-type]
    assert positive.tolist() == [[True, False], [False, True], [True, False]]
    assert negative.tolist() == [[False, True], [True, False], [False, False]]  # the double: no one's negative
    assert subsets[OTHER][2].tolist() == [False, False]


def test_myvlm_as_released(tmp_path: Path):
    """MyVLM's release: a folder per concept with its photos and captions.json (under data/ in
    PeKit's copy); every photo a reference candidate, the rest positives."""
    data = tmp_path / "myvlm" / "data"
    for i in range(3):
        write_photo(data / "colorful_teapot" / f"{i}.jpg", "red", i + 1)
        write_photo(data / "asian_doll" / f"{i}.JPG", "green", i + 1)
    (data / "colorful_teapot" / "captions.json").write_text(json.dumps({"0.jpg": ["colorful_teapot on a shelf"],
                                                                         "1.jpg": ["a teapot", "x"]}))
    (data / "asian_doll" / "captions_augmented.json").write_text(json.dumps({"2.JPG": ["asian_doll sits"]}))
    for spec in (f"myvlm:{tmp_path / 'myvlm'}", f"myvlm:{data}", str(tmp_path / "myvlm")):
        ds = load_dataset(spec)
        assert ds.layout == "myvlm" and [c.name for c in ds.concepts] == ["asian_doll", "colorful_teapot"], spec
        teapot = ds.concept("colorful_teapot")
        assert teapot.holdout and len(teapot.references) == 3 and teapot.category == "colorful teapot"
        assert sorted((c.concept, c.image.name, len(c.references)) for c in ds.captions) == [
            ("asian_doll", "2.JPG", 1), ("colorful_teapot", "0.jpg", 1), ("colorful_teapot", "1.jpg", 2)]


@pytest.mark.parametrize(("layout", "expected"), [
    ("myvlm", "<concept>/captions.json, or data_concept_head/positives"),
    ("yollava", "train/<concept>"),
    ("thisismy", "Single-concept/Reference Images"),
    ("folder", "<concept>/\\*.jpg"),
])
def test_missing_folder_says_what_was_expected(tmp_path: Path, layout: str, expected: str):
    with pytest.raises(DatasetLayoutError, match=expected):
        load_dataset(f"{layout}:{tmp_path / 'nowhere'}")


def test_wrong_layout_names_the_one_found(folder_dataset: Path):
    with pytest.raises(DatasetLayoutError) as info:
        load_dataset(f"myvlm:{folder_dataset}")
    msg = str(info.value)
    assert "expected the myvlm layout" in msg and "amber/" in msg and f"folder:{folder_dataset}" in msg


def test_unknown_layout_and_undetectable_path(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="unknown dataset layout 'coco'"):
        parse_spec(f"coco:{tmp_path}")
    with pytest.raises(DatasetLayoutError, match="cannot tell the layout"):
        load_dataset(str(tmp_path))


def test_category_from_name():
    assert category_from_name("dog8") == "dog"
    assert category_from_name("grey-sloth_plushie") == "grey sloth plushie"


def test_folder_reads_boxes_csv_and_warns_on_malformed_rows(tmp_path: Path):
    root = make_folder(tmp_path / "db", {"a": ["red", "red"], "b": ["green"]})
    (root / "boxes.csv").write_text(
        "subject,file,x0,y0,x1,y1,note\n"
        "a,00.png,1,2,10,11,\n"
        "a,01.png,0.5,0,16,12,cut by the frame\n"
        "b,00.png,3,3,9\n"                     # too few columns
        "b,00.png,3,x,9,9,\n"                  # not a number
        "b,00.png,9,3,3,9,\n"                  # empty box
        "b,07.png,1,1,5,5,\n"                  # no such photo
        "a,00.png,0,0,4,4,\n"                  # a second box for a/00.png
        "zebra,00.png,0,0,4,4,\n"              # no such subject
    )
    ds = load_dataset(f"folder:{root}")
    a, b = ds.concept("a"), ds.concept("b")
    assert dict(a.boxes) == {root / "a" / "00.png": (1.0, 2.0, 10.0, 11.0),
                             root / "a" / "01.png": (0.5, 0.0, 16.0, 12.0)}
    assert dict(b.boxes) == {}
    text = "\n".join(ds.warnings)
    for needle in ("line 4: expected subject,file", "line 5: the coordinates", "line 6: the box",
                   "line 7: no photo '07.png'", "line 8: a second box", "'zebra'"):
        assert needle in text
    assert len(ds.warnings) == 6


def test_folder_without_boxes_csv_has_no_boxes(folder_dataset: Path):
    ds = load_dataset(f"folder:{folder_dataset}")
    assert all(len(c.boxes) == 0 and len(c.sources) == 0 for c in ds.concepts) and ds.warnings == []


def test_concept_data_freezes_boxes_and_stays_hashable_and_picklable():
    import pickle

    from pekit.eval.datasets import ConceptData, FrozenMap

    c = ConceptData("a", "thing", (Path("x.jpg"),), boxes={"x.jpg": [1, 2, 3, 4]},
                    sources={"s.jpg": ["x.jpg"]})
    assert isinstance(c.boxes, FrozenMap) and c.boxes[Path("x.jpg")] == (1.0, 2.0, 3.0, 4.0)
    assert c.sources == {Path("s.jpg"): (Path("x.jpg"),)}
    assert hash(c) == hash(pickle.loads(pickle.dumps(c))) and pickle.loads(pickle.dumps(c)) == c
    with pytest.raises(TypeError):
        c.boxes[Path("y.jpg")] = (0, 0, 1, 1)  # type: ignore[index]
    assert ConceptData("a", "thing", ()) == ConceptData("a", "thing", (), boxes={})


def test_dreambooth_boxes_cover_every_photo(dreambooth: Path):
    ds = load_dataset(f"folder:{dreambooth}")
    assert ds.warnings == []
    assert all(set(c.boxes) == set(c.references) for c in ds.concepts)


def test_a_categories_file_that_is_not_text_or_names_unknown_concepts(folder_dataset: Path, tmp_path: Path):
    binary = tmp_path / "cats.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(InvalidInputError, match="cannot be read as UTF-8 CSV text"):
        load_dataset(f"folder:{folder_dataset}", categories=binary)
    with pytest.raises(InvalidInputError, match="is a folder; give the CSV file"):
        load_dataset(f"folder:{folder_dataset}", categories=tmp_path)
    typo = tmp_path / "typo.csv"
    typo.write_text("concept,class\nrde,warm\nred,warm\nred,hot\n")
    ds = load_dataset(f"folder:{folder_dataset}", categories=typo)
    assert any("names 1 concept(s) the dataset does not have: 'rde'" in w for w in ds.warnings)
    assert any("gives 'red' twice ('warm', then 'hot'); the last is used" in w for w in ds.warnings)
    assert ds.concept("red").category == "hot"


def test_a_json_file_of_bytes_that_are_not_text_is_a_layout_error(yollava_dataset: Path):
    (yollava_dataset / "yollava-visual-qa.json").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DatasetLayoutError, match="is not valid JSON"):
        load_dataset(f"yollava:{yollava_dataset}")


def test_thisismy_test_folders_match_their_concept_before_any_cut_at_a_hyphen(tmp_path: Path):
    single = tmp_path / "tim" / "Single-concept"
    for name, colour in (("cat", "red"), ("cat-2", "green"), ("marie-cat", "blue")):
        write_photo(single / "Reference Images" / name / "0.jpg", colour, 1)
    write_photo(single / "Validation" / "positive" / "cat" / "1.jpg", "red", 2)
    write_photo(single / "Validation" / "positive" / "Cat-2" / "1.jpg", "green", 2)  # case differs, no cut
    write_photo(single / "Validation" / "positive" / "Marie-Cat" / "1.jpg", "blue", 2)
    write_photo(single / "Validation" / "positive" / "cat-dog" / "2.jpg", "red", 3)  # "<concept>-<category>"
    ds = load_dataset(f"thisismy:{tmp_path / 'tim'}")
    got = {c.name: sorted(f"{p.parent.name}/{p.name}" for p in c.positives) for c in ds.concepts}
    assert got == {"cat": ["cat-dog/2.jpg", "cat/1.jpg"], "cat-2": ["Cat-2/1.jpg"], "marie-cat": ["Marie-Cat/1.jpg"]}
    assert not ds.warnings


def test_a_folder_dataset_with_one_caption_file_is_still_a_folder_dataset(tmp_path: Path):
    root = make_folder(tmp_path / "db", {"dog": ["red"] * 2, "cat": ["green"] * 2},
                       classes={"dog": "pet", "cat": "pet"})
    (root / "dog" / "captions.json").write_text(json.dumps({"00.png": ["a dog"]}))
    assert detect_layout(root) == "folder"
    assert load_dataset(str(root)).concept("dog").category == "pet"
    (root / "classes.csv").unlink()  # every concept captioned, nothing of a folder dataset: MyVLM as released
    (root / "cat" / "captions.json").write_text(json.dumps({"00.png": ["a cat"]}))
    assert detect_layout(root) == "myvlm"
