"""The recognition runner end to end with a fake fast pipeline (hand-computed outcomes).

Dataset (`folder_dataset`): red x3, green x3, blue x1, amber (yellow) x2; categories
red/amber = warm. Fake scores: same colour 1.0, red/green vs yellow 0.707, otherwise ~0.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pekit.errors import InvalidInputError
from pekit.eval.cache import GridCache
from pekit.eval.datasets import load_dataset
from pekit.eval.recognition import check_extractor, check_gallery, run_recognition
from pekit.eval.summary import per_concept, summarize, sweep, trial_masks
from pekit.pipeline import NO_SCORE

from .conftest import FakePipeline, make_folder

nan = float("nan")


def metric(row: dict, name: str) -> float:
    return row["metrics"][name]["mean"]


@pytest.fixture
def run_k123(folder_dataset: Path):
    pipe = FakePipeline(threshold=0.6)
    run = run_recognition(load_dataset(f"folder:{folder_dataset}"), pipe, refs=(1, 2, 3), seeds=3, progress=False)
    return run, pipe


def test_one_backbone_pass_per_photo_for_the_whole_run(run_k123):
    run, pipe = run_k123
    assert pipe.encodes == 9 == len(run.photos) == run.timing["backbone_passes"]
    assert len(run.trials) == 3 * 3


def test_k1_metrics_by_hand(run_k123):
    run, _ = run_k123
    row = next(r for r in summarize(run) if r["k"] == 1)
    # red:   2 pos hit; neg green x2 (TN), amber x1 (0.707 -> FP)      pos 1, neg 2/3, prec 2/3
    # green: same as red                                               pos 1, neg 2/3, prec 2/3
    # blue:  no positives (1 photo = the reference); 5 negatives all TN pos -, neg 1, prec -
    # amber: 1 pos hit; neg red x2 + green x2 all 0.707 -> FP          pos 1, neg 0, prec 1/5
    assert row["concepts"] == 4 and row["skipped"] == [] and row["test_photos"] == 5
    assert metric(row, "positive") == pytest.approx(1.0)
    assert metric(row, "negative") == pytest.approx((2 / 3 + 2 / 3 + 1 + 0) / 4)
    assert metric(row, "precision") == pytest.approx((2 / 3 + 2 / 3 + 1 / 5) / 3)
    assert metric(row, "weighted") == pytest.approx((5 / 6 + 5 / 6 + 1 / 2) / 3)
    # same category: red vs amber photos (FP), amber vs red photos (FP)
    assert metric(row, "same category") == pytest.approx(0.0)
    assert row["metrics"]["positive"]["std"] == pytest.approx(0.0)   # every seed is alike here
    concepts = per_concept(run)["saliency/k=1"]
    assert np.isnan(concepts["blue"]["positive"]) and concepts["blue"]["negative"] == pytest.approx(1.0)
    assert concepts["amber"]["precision"] == pytest.approx(0.2)


def test_k2_skips_concepts_with_too_few_photos(run_k123):
    run, _ = run_k123
    row = next(r for r in summarize(run) if r["k"] == 2)
    # blue (1 photo) is skipped; its photo is a negative of every concept in memory.
    # red/green: 1 pos hit, 2 negatives TN; amber: no positives, neg red FP, green FP, blue TN
    assert row["skipped"] == ["blue"] and row["concepts"] == 3
    assert metric(row, "positive") == pytest.approx(1.0)
    assert metric(row, "negative") == pytest.approx((1 + 1 + 1 / 3) / 3)
    assert metric(row, "precision") == pytest.approx((1 + 1 + 0) / 3)
    assert metric(row, "weighted") == pytest.approx(1.0)
    assert any("k=2: skipped 1 concept(s)" in w and "blue" in w for w in run.warnings)


def test_k3_concepts_without_positives(run_k123):
    run, _ = run_k123
    row = next(r for r in summarize(run) if r["k"] == 3)
    # red and green use all their photos as references -> no positives, weighted undefined
    assert row["skipped"] == ["amber", "blue"]
    assert np.isnan(metric(row, "positive")) and np.isnan(metric(row, "weighted"))
    assert metric(row, "negative") == pytest.approx(1 / 3)   # blue TN, amber x2 FP
    assert metric(row, "precision") == pytest.approx(0.0)


def test_threshold_changes_need_no_reembedding(run_k123):
    run, pipe = run_k123
    before = pipe.encodes
    row = next(r for r in summarize(run, threshold=0.75) if r["k"] == 1)
    assert pipe.encodes == before
    assert metric(row, "negative") == pytest.approx(1.0) and metric(row, "precision") == pytest.approx(1.0)
    sw = sweep(run, [0.6, 0.75])
    assert sw["curves"]["saliency/k=1"]["negative"] == pytest.approx([(2 / 3 + 2 / 3 + 1) / 4 + 0, 1.0])
    assert sw["best"]["saliency/k=1"]["threshold"] == pytest.approx(0.75)


def test_best_threshold_is_the_middle_of_its_plateau(run_k123):
    run, _ = run_k123
    best = sweep(run)["best"]["saliency/k=1"]
    # every τ in (0.707, 1.0) keeps the yellow look-alikes out and the same colours in: the
    # edge just above 0.707 is where a look-alike scoring a little higher would be let in
    assert best["plateau"] == [0.71, 0.99] and best["threshold"] == pytest.approx(0.85)
    assert best["weighted"] == pytest.approx(1.0)


def test_sweep_agrees_with_fixed_threshold_summary(run_k123):
    run, _ = run_k123
    sw = sweep(run)
    i = sw["thresholds"].index(0.6)
    for row in summarize(run):
        for m in ("positive", "negative", "precision", "weighted"):
            expected = row["metrics"][m]["mean"]
            got = sw["curves"][row["label"]][m][i]
            assert got == pytest.approx(expected, nan_ok=True)


def test_same_seed_same_draws_and_nested_references(folder_dataset: Path):
    ds = load_dataset(f"folder:{folder_dataset}")
    a = run_recognition(ds, FakePipeline(), refs=(1, 2), seeds=4, seed=7, progress=False)
    b = run_recognition(ds, FakePipeline(), refs=(1, 2), seeds=4, seed=7, progress=False)
    assert [t.references for t in a.trials] == [t.references for t in b.trials]
    for t in a.trials:
        assert np.array_equal(t.scores, next(u.scores for u in b.trials if (u.k, u.seed) == (t.k, t.seed)))
    k1 = {t.seed: t.references for t in a.trials if t.k == 1}
    k2 = {t.seed: t.references for t in a.trials if t.k == 2}
    assert all(k2[s]["red"][:1] == k1[s]["red"] for s in k1)           # nested in k
    assert len({tuple(k1[s]["red"]) for s in k1}) > 1                 # seeds differ


def test_resumes_from_the_disk_cache(folder_dataset: Path, tmp_path: Path):
    ds = load_dataset(f"folder:{folder_dataset}")
    crashing = FakePipeline(fail_after=4)
    cache = GridCache(tmp_path / "cache", crashing.fingerprint)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_recognition(ds, crashing, refs=(1,), cache=cache, progress=False)
    resumed = FakePipeline()
    run = run_recognition(ds, resumed, refs=(1,), cache=GridCache(tmp_path / "cache", resumed.fingerprint),
                          progress=False)
    assert resumed.encodes == 9 - 4                                    # the first 4 photos are not redone
    again = FakePipeline()
    rerun = run_recognition(ds, again, refs=(1,), cache=GridCache(tmp_path / "cache", again.fingerprint),
                            progress=False)
    assert again.encodes == 0
    fresh = run_recognition(ds, FakePipeline(), refs=(1,), progress=False)  # in-memory cache
    assert np.array_equal(rerun.trials[0].scores, fresh.trials[0].scores)
    assert np.array_equal(run.trials[0].scores, fresh.trials[0].scores)


def test_a_cache_that_cannot_be_written_warns_once_and_the_run_goes_on(folder_dataset: Path, tmp_path: Path,
                                                                        monkeypatch, caplog):
    import errno

    import pekit.eval.cache as cache_mod

    ds = load_dataset(f"folder:{folder_dataset}")
    pipe = FakePipeline()
    cache = GridCache(tmp_path / "cache", pipe.fingerprint)
    tries = []

    def full(path, write):
        tries.append(path)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod, "atomic_write", full)
    with caplog.at_level("WARNING", logger="pekit.eval.cache"):
        run = run_recognition(ds, pipe, refs=(1,), cache=cache, progress=False)
    fresh = run_recognition(ds, FakePipeline(), refs=(1,), progress=False)
    assert np.array_equal(run.trials[0].scores, fresh.trials[0].scores)  # the whole run, same results
    assert pipe.encodes == 9                                              # each grid kept in memory
    assert len(tries) == 1                                                # no write tried after the failure
    warned = [r.getMessage() for r in caplog.records if "cannot write the grid cache" in r.getMessage()]
    assert len(warned) == 1 and "No space left on device" in warned[0] and "--cache" in warned[0]


def test_grids_that_cannot_be_written_are_not_evicted_from_memory(folder_dataset: Path, tmp_path: Path, monkeypatch):
    """More photos than the in-memory LRU holds, on a full disk: the run still has every grid
    (it crashed on `assert grid is not None` once the 33rd photo evicted the first)."""
    import errno

    import pekit.eval.cache as cache_mod

    def full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    ds = load_dataset(f"folder:{folder_dataset}")
    cache = GridCache(tmp_path / "cache", FakePipeline.fingerprint, memory_items=2)
    monkeypatch.setattr(cache_mod, "atomic_write", full)
    run = run_recognition(ds, FakePipeline(), refs=(1,), cache=cache, progress=False)
    fresh = run_recognition(ds, FakePipeline(), refs=(1,), progress=False)
    assert np.array_equal(run.trials[0].scores, fresh.trials[0].scores)


def test_an_answer_cache_that_cannot_be_written_keeps_answers_in_memory(tmp_path: Path, monkeypatch):
    import pekit.eval.cache as cache_mod
    from pekit.eval.cache import AnswerCache

    def denied(path, write):
        raise PermissionError(13, "Permission denied")

    answers = AnswerCache(tmp_path)
    monkeypatch.setattr(cache_mod, "atomic_write", denied)
    key = answers.key("fake", "Describe.", b"img")
    answers.put(key, "A dog.")
    assert answers.get(key) == "A dog."


def test_single_concept_has_empty_negative_set(tmp_path: Path):
    root = make_folder(tmp_path / "one", {"solo": ["red", "red", "red"]})
    run = run_recognition(load_dataset(f"folder:{root}"), FakePipeline(), refs=(1,), progress=False)
    row = summarize(run)[0]
    assert metric(row, "positive") == pytest.approx(1.0)
    assert np.isnan(metric(row, "negative")) and np.isnan(metric(row, "weighted"))


def test_dataset_negatives_count_only_for_their_concept(tmp_path: Path):
    from .conftest import write_photo

    # PNG: two near-identical JPEGs can encode to the same bytes and count as one photo
    head = tmp_path / "MyVLM" / "data_concept_head"
    for i in range(2):
        write_photo(head / "positives" / "r" / f"{i}.png", "red", i + 1)
        write_photo(head / "positives" / "g" / f"{i}.png", "green", i + 1)
    write_photo(head / "negatives" / "r" / "n.png", "yellow", 1)       # 0.707 to both r and g
    run = run_recognition(load_dataset(f"myvlm:{tmp_path / 'MyVLM'}"), FakePipeline(), refs=(1,), progress=False)
    trial = run.trials[0]
    positive, negative, _subsets = trial_masks(run, trial)
    neg_row = next(i for i, idx in enumerate(trial.photos) if run.photos[int(idx)].path.name == "n.png")
    assert negative[neg_row].tolist() == [False, True] and not positive[neg_row].any()   # columns g, r
    row = summarize(run)[0]
    # r: negatives = g's test photo (TN) + its own negative (FP) -> 1/2; g: r's test photo (TN) -> 1
    assert metric(row, "negative") == pytest.approx((0.5 + 1.0) / 2)
    assert metric(row, "negative: negatives") == pytest.approx(0.0)
    # strangers: r's photo against g alone, g's against r alone (~0: unnamed), and the negative
    # (of no concept) against both, named at 0.707: one of the three photos gets a (wrong) name
    from pekit.eval.summary import NAMED

    strangers = run_recognition(load_dataset(f"myvlm:{tmp_path / 'MyVLM'}"), FakePipeline(), refs=(1,),
                                galleries=("strangers",), progress=False)
    assert metric(summarize(strangers)[0], NAMED) == pytest.approx(1 / 3)


def test_bad_arguments():
    with pytest.raises(InvalidInputError, match="unknown extractor"):
        check_extractor("magic")
    assert check_extractor("box") == "box" and check_extractor("detector:hf:x") == "detector:hf:x"
    for bad in ("none", "1", "0", "-3", "many"):
        with pytest.raises(InvalidInputError, match="gallery mode"):
            check_gallery(bad)
    assert ([check_gallery(g) for g in ("ALL", " single", 8, "08", "Strangers")]
            == ["all", "single", "8", "8", "strangers"])


def test_box_extractor_needs_ground_truth_boxes(folder_dataset: Path):
    with pytest.raises(InvalidInputError, match="ground-truth box"):
        run_recognition(load_dataset(f"folder:{folder_dataset}"), FakePipeline(), refs=(1,),
                        extractors=("box",), progress=False)


def test_full_extractor_runs(folder_dataset: Path):
    run = run_recognition(load_dataset(f"folder:{folder_dataset}"), FakePipeline(), refs=(1,),
                          extractors=("saliency", "full"), progress=False)
    assert [r["label"] for r in summarize(run, top_k=(1,))] == ["saliency/k=1", "full/k=1"]
    row = summarize(run, top_k=(1, 2))[0]
    # retrieval over photos with a concept: red x2, green x2 top-1 correct; amber photo: amber 1.0 > red 0.707
    assert metric(row, "P@1") == pytest.approx(1.0) and metric(row, "R@1") == pytest.approx(1.0)
    assert metric(row, "P@2") == pytest.approx(0.5)


def test_separate_test_split_is_used_alone(yollava_dataset: Path):
    # Yo'LLaVA: references come from train/, test photos only from test/ (unused train photos are not tests)
    run = run_recognition(load_dataset(f"yollava:{yollava_dataset}"), FakePipeline(), refs=(2,), seeds=2,
                          progress=False)
    for trial in run.trials:
        assert sorted(run.photos[int(i)].path.parent.parent.name for i in trial.photos) == ["test"] * 4
    row = summarize(run)[0]
    assert metric(row, "positive") == pytest.approx(1.0) and metric(row, "negative") == pytest.approx(1.0)


def test_gallery_modes_side_by_side(folder_dataset: Path):
    pipe = FakePipeline(threshold=0.6)
    run = run_recognition(load_dataset(f"folder:{folder_dataset}"), pipe, refs=(1,), seeds=2,
                          galleries=("all", "single", 2), progress=False)
    assert pipe.encodes == len(run.photos)                       # still one pass per photo
    rows = summarize(run)
    assert [r["label"] for r in rows] == ["saliency/k=1", "saliency/k=1/single", "saliency/k=1/2"]
    assert [r["gallery"] for r in rows] == ["all", "single", "2"]
    by = {r["gallery"]: r for r in rows}
    # the fake scores each concept alone in "all" and "single" alike ...
    assert metric(by["single"], "negative") == pytest.approx(metric(by["all"], "negative"))
    # ... but in galleries of 2 a concept is only found where it beats its companion: amber's
    # red photos (0.707) are lost to red whenever red is amber's companion, so fewer false positives
    assert metric(by["2"], "negative") >= metric(by["single"], "negative")
    assert metric(by["2"], "positive") == pytest.approx(1.0)


class LookingPipeline(FakePipeline):
    """A fake with the second look on: each `candidates` call with the photo embeds one crop."""

    def __init__(self) -> None:
        super().__init__(threshold=0.6)
        self.config = replace(self.config, second_look=True)
        self.second_look_passes = 0
        self.crop_calls: list[bool] = []

    def candidates(self, grid, gallery, *, concepts=None, **kw):
        self.crop_calls.append(kw.get("image") is not None)
        self.second_look_passes += kw.get("image") is not None
        return super().candidates(grid, gallery, concepts=concepts, **kw)


def test_random_galleries_get_the_second_look_each_user_would(folder_dataset: Path):
    pipe = LookingPipeline()
    run = run_recognition(load_dataset(f"folder:{folder_dataset}"), pipe, refs=(1,), seeds=1,
                          galleries=(2,), progress=False)
    assert pipe.crop_calls and all(pipe.crop_calls)       # every gallery's match had the photo
    # one crop per call, and each concept in its own gallery is one user: 2 passes per photo each
    assert run.timing["passes_per_image"] == {"2": 2.0}


class TilingPipeline(FakePipeline):
    """A fake with the tiled look on: each match with the photo embeds 4 tiles."""

    def __init__(self) -> None:
        super().__init__(threshold=0.6)
        self.config = replace(self.config, tiled_look=2)
        self.second_look_passes = 0
        self.tiled_look_passes = 0
        self.had_image: list[bool] = []

    def match(self, grid, gallery, *, image=None, labels=None, competitive=None):
        self.had_image.append(image is not None)
        self.tiled_look_passes += 4 * (image is not None)
        return super().match(grid, gallery, image=image, labels=labels, competitive=competitive)


def test_every_user_pays_the_tiles_even_when_one_call_scores_each_concept_alone(folder_dataset: Path):
    pipe = TilingPipeline()
    run = run_recognition(load_dataset(f"folder:{folder_dataset}"), pipe, refs=(1,), seeds=1,
                          galleries=("all", "single"), progress=False)
    assert pipe.had_image and all(pipe.had_image)  # the tiles are cut from the photo
    # all concepts: one user, 1 + 4 passes; each concept alone: every concept is a user whose photo is tiled
    assert run.timing["passes_per_image"] == {"all": 5.0, "single": 5.0}


def test_box_metrics_against_ground_truth(tmp_path: Path):
    root = make_folder(tmp_path / "db", {"red": ["red"] * 3, "green": ["green"] * 3})
    # the fake boxes the whole 16 x 12 photo; ground truth: the whole photo for red, its left half for green
    lines = ["subject,file,x0,y0,x1,y1,note"]
    lines += [f"red,{i:02d}.png,0,0,16,12," for i in range(3)] + [f"green,{i:02d}.png,0,0,8,12," for i in range(3)]
    (root / "boxes.csv").write_text("\n".join(lines) + "\n")
    run = run_recognition(load_dataset(f"folder:{root}"), FakePipeline(), refs=(1,), seeds=1,
                          extractors=("saliency", "box"), progress=False)
    rows = {r["extractor"]: r for r in summarize(run)}
    assert set(rows) == {"saliency", "box"}
    # red hits: IoU 1; green hits: IoU 0.5 (>= 0.5 counts) -> all hits count, median of [1, 1, .5, .5] = 0.75
    assert metric(rows["saliency"], "box iou>=0.5") == pytest.approx(1.0)
    assert metric(rows["saliency"], "box iou median") == pytest.approx(0.75)
    assert metric(rows["saliency"], "box holds>=0.9") == pytest.approx(1.0)  # the whole photo holds both


def test_the_box_holds_metric_tells_a_box_that_cuts_the_object_from_one_that_holds_it(tmp_path: Path):
    from pekit.eval.summary import box_covers, box_ious

    root = make_folder(tmp_path / "db", {"red": ["red"] * 3, "green": ["green"] * 3})
    # the fake boxes the whole 16 x 12 photo; truth: red a box larger than the photo (the box
    # cuts it: covers 16 * 12 of 32 * 12 = half), green a small box inside the photo (held whole)
    lines = ["subject,file,x0,y0,x1,y1,note"]
    lines += [f"red,{i:02d}.png,0,0,32,12," for i in range(3)] + [f"green,{i:02d}.png,4,3,12,9," for i in range(3)]
    (root / "boxes.csv").write_text("\n".join(lines) + "\n")
    run = run_recognition(load_dataset(f"folder:{root}"), FakePipeline(), refs=(1,), seeds=1, progress=False)
    trial = run.trials[0]
    ious, covers = box_ious(run, trial), box_covers(run, trial)
    assert len(ious) == len(covers) == 4                                  # two test photos of each
    assert sorted(covers.round(3).tolist()) == [0.5, 0.5, 1.0, 1.0]
    assert sorted(ious.round(3).tolist()) == [0.25, 0.25, 0.5, 0.5]      # green: 48 / 192; red: 192 / 384
    assert metric(summarize(run)[0], "box holds>=0.9") == pytest.approx(0.5)


def test_grids_cached_before_colours_were_kept_gain_them_without_a_pass(folder_dataset: Path, tmp_path: Path):
    from dataclasses import replace

    from pekit.embed.colour import colour_agreement, region_colour
    from pekit.eval.recognition import collect_photos, embed_photos
    from pekit.pipeline import Pipeline

    class ColourPipeline(FakePipeline):
        with_colours = Pipeline.with_colours

        def __init__(self) -> None:
            super().__init__()
            self.config = replace(self.config, colour_weight=0.2)

    photos, _ = collect_photos(load_dataset(f"folder:{folder_dataset}"), progress=False)
    old = FakePipeline()
    embed_photos(photos, old, GridCache(tmp_path / "c", old.fingerprint), progress=False)
    assert all(GridCache(tmp_path / "c", old.fingerprint).get(p.sha1).colours is None for p in photos)
    new = ColourPipeline()
    readable, _ = embed_photos(photos, new, GridCache(tmp_path / "c", new.fingerprint), progress=False)
    assert new.encodes == 0 and len(readable) == len(photos)                 # colours only: no backbone pass
    reread = [GridCache(tmp_path / "c", new.fingerprint).get(p.sha1) for p in photos]  # from disk
    assert all(g.colours is not None and g.colours.shape == (*g.shape, 196) for g in reread)
    whole = np.ones((2, 2), bool)
    red = [region_colour(g.colours, whole) for g, p in zip(reread, photos, strict=True) if "red" in str(p.path)]
    green = [region_colour(g.colours, whole) for g, p in zip(reread, photos, strict=True) if "green" in str(p.path)]
    assert colour_agreement(red[0], np.stack(red[1:])) > 0.9 > colour_agreement(red[0], np.stack(green))


def test_a_dataset_without_shared_categories_says_how_to_get_the_hard_negatives(tmp_path: Path):
    root = make_folder(tmp_path / "db", {"red": ["red"] * 2, "green": ["green"] * 2})  # classes from the names
    run = run_recognition(load_dataset(f"folder:{root}"), FakePipeline(threshold=0.6), refs=(1,), seeds=1,
                          progress=False)
    assert any("no same-category negative accuracy" in w and "--categories" in w for w in run.warnings)
    shared = make_folder(tmp_path / "db2", {"red": ["red"] * 2, "amber": ["yellow"] * 2},
                         {"red": "warm", "amber": "warm"})
    run = run_recognition(load_dataset(f"folder:{shared}"), FakePipeline(threshold=0.6), refs=(1,), seeds=1,
                          progress=False)
    assert not any("same-category" in w for w in run.warnings)


def test_reference_views_are_made_from_the_photo_as_introduce_makes_them(folder_dataset: Path):
    """Each reference view gets its photo (not the cached grid alone), as `introduce` gives it:
    a black-and-white reference then takes no part in colour, and a segmenter sees the box."""

    class Recording(FakePipeline):
        def __init__(self) -> None:
            super().__init__(threshold=0.6)
            self.images: list = []

        def reference(self, grid, *, box=None, mask=None, image=None, category=""):
            self.images.append(image)
            return super().reference(grid, box=box, mask=mask, image=image, category=category)

    pipe = Recording()
    run_recognition(load_dataset(f"folder:{folder_dataset}"), pipe, refs=(1,), seeds=1, progress=False)
    assert pipe.images and all(isinstance(im, np.ndarray) and im.shape == (12, 16, 3) for im in pipe.images)
    reds = [im for im in pipe.images if (im[1:, 1:] == (255, 0, 0)).all()]
    assert reds, "the red concept's reference photo itself reached reference()"


class DetectingPipeline(FakePipeline):
    """A fake with a detector: records the labels each scored memory prompts it with."""

    def __init__(self) -> None:
        super().__init__(threshold=0.6)
        self.detector = object()
        self.asked: list[tuple[str, ...] | None] = []
        self.inside = False  # the fake's candidates call its match: one memory, one prompt

    def match(self, grid, gallery, *, image=None, labels=None, competitive=None):
        if not self.inside:
            self.asked.append(None if labels is None else tuple(labels))
        return super().match(grid, gallery, image=image, labels=labels, competitive=competitive)

    def candidates(self, grid, gallery, *, concepts=None, **kw):
        labels = kw.get("labels")
        self.asked.append(None if labels is None else tuple(labels))
        self.inside = True
        try:
            return super().candidates(grid, gallery, concepts=concepts)
        finally:
            self.inside = False


def test_a_detector_is_prompted_with_the_categories_of_the_memory_it_serves(folder_dataset: Path):
    every = ("plant", "sky", "warm")
    single = DetectingPipeline()
    run_recognition(load_dataset(f"folder:{folder_dataset}"), single, refs=(1,), seeds=1, galleries=("single",),
                    progress=False)
    # each concept alone: that user's detector is asked for its one category, never for all of them
    assert single.asked and set(single.asked) == {("plant",), ("sky",), ("warm",)}
    together = DetectingPipeline()
    run_recognition(load_dataset(f"folder:{folder_dataset}"), together, refs=(1,), seeds=1, galleries=("all",),
                    progress=False)
    assert together.asked and set(together.asked) == {every}
    pairs = DetectingPipeline()
    run_recognition(load_dataset(f"folder:{folder_dataset}"), pairs, refs=(1,), seeds=1, galleries=(2,),
                    progress=False)
    asked = set(pairs.asked)
    assert asked and all(labels and 1 <= len(labels) <= 2 and set(labels) <= set(every) for labels in asked)
    strangers = DetectingPipeline()
    run_recognition(load_dataset(f"folder:{folder_dataset}"), strangers, refs=(1,), seeds=1,
                    galleries=("strangers",), progress=False)
    # a green photo's memory is red, blue and amber (no plant); a red or amber photo's still has a
    # warm concept (the other one) and green
    assert set(strangers.asked) == {every, ("sky", "warm")}


def test_strangers_gallery_holds_every_concept_but_the_photos_own(folder_dataset: Path, tmp_path: Path):
    from pekit.eval.recognition import STRANGERS
    from pekit.eval.report import recognition_markdown, recognition_results
    from pekit.eval.summary import NAMED

    pipe = FakePipeline(threshold=0.6)
    run = run_recognition(load_dataset(f"folder:{folder_dataset}"), pipe, refs=(1,), seeds=2,
                          galleries=("all", STRANGERS), progress=False)
    assert pipe.encodes == len(run.photos)  # still one pass per photo
    for trial in (t for t in run.trials if t.gallery == STRANGERS):
        for row, idx in enumerate(trial.photos):
            owners = run.photos[int(idx)].owners
            for col, name in enumerate(trial.concepts):  # its own concept was not in that memory
                assert (trial.scores[row, col] == NO_SCORE) == (name in owners)
    by = {r["gallery"]: r for r in summarize(run)}
    # red and green photos: amber (0.707) is the only name near them -> named; amber's photo:
    # red and green (0.707) -> named. Every test photo of a stranger gets a (wrong) name
    assert metric(by[STRANGERS], NAMED) == pytest.approx(1.0)
    assert not {"positive", "precision", "weighted"} & set(by[STRANGERS]["metrics"])
    # the fake does not compete, so each concept's negatives are the same as with every concept in memory
    assert metric(by[STRANGERS], "negative") == pytest.approx(metric(by["all"], "negative"))
    assert NAMED not in by["all"]["metrics"]
    swept = sweep(run)
    assert "saliency/k=1/strangers" not in swept["best"]  # no weighted accuracy to choose a τ by
    named = swept["curves"]["saliency/k=1/strangers"]["stranger named"]
    assert named[60] == pytest.approx(1.0) and named[71] == pytest.approx(0.0)  # the look-alikes score 0.707
    results = recognition_results(run, config={"galleries": ["all", STRANGERS]})
    text = recognition_markdown(results)
    assert "strangers named" in text and "| strangers | 1 |" in text
    from pekit.eval.report import plot_refs

    plot_refs(results, tmp_path / "refs.png")  # the strangers row has no weighted line to draw; no error


class CompetingPipeline(FakePipeline):
    """Only the best concept of the memory is scored (as competition does): a photo's own concept
    hides every look-alike when it is in memory."""

    def match(self, grid, gallery, *, image=None, labels=None, competitive=None):
        scores, boxes, ids = super().match(grid, gallery)
        if len(scores):
            scores = np.where(scores >= scores.max(), scores, NO_SCORE).astype(np.float32)
        return scores, boxes, ids


def test_strangers_expose_the_look_alike_that_competition_hides(folder_dataset: Path):
    from pekit.eval.recognition import STRANGERS
    from pekit.eval.summary import NAMED

    run = run_recognition(load_dataset(f"folder:{folder_dataset}"), CompetingPipeline(threshold=0.6), refs=(1,),
                          seeds=1, galleries=("all", STRANGERS), progress=False)
    by = {r["gallery"]: r for r in summarize(run)}
    assert metric(by["all"], "negative") == pytest.approx(1.0)  # every photo's own concept wins
    # without it, red and green photos are named amber and amber's photo red or green
    assert metric(by[STRANGERS], NAMED) == pytest.approx(1.0)
    assert metric(by[STRANGERS], "negative") < 1.0
