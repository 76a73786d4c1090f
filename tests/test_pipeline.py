"""`Pipeline`: reference views and recognition from one backbone pass per image (real backbone)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from pekit.embed.pooling import pool_boxes
from pekit.errors import InvalidInputError
from pekit.pipeline import Pipeline, View, summarize_parts
from pekit.presets import RecognitionConfig
from pekit.retrieve.match import Gallery
from pekit.retrieve.nms import box_iou
from pekit.types import Concept, Detections

CAT_BOX = (0.0, 0.0, 400.0, 300.0)  # chelsea(): the cat's face


@pytest.fixture(scope="module")
def cat_grid(pipeline: Pipeline, chelsea: np.ndarray) -> Any:
    return pipeline.encode(chelsea)


@pytest.fixture(scope="module")
def cat_view(pipeline: Pipeline, cat_grid: Any) -> View:
    return pipeline.reference(cat_grid)


@pytest.fixture(scope="module")
def gallery(pipeline: Pipeline, cat_view: View, coffee: np.ndarray) -> Gallery:
    cup = pipeline.reference(pipeline.encode(coffee))
    return Gallery.from_concepts([
        Concept("cat", cat_view.embedding, id=1, parts=cat_view.parts),
        Concept("coffee", cup.embedding, id=2, parts=cup.parts),
    ])


@pytest.fixture(scope="module")
def flipped_grid(pipeline: Pipeline, chelsea: np.ndarray) -> Any:
    return pipeline.encode(np.ascontiguousarray(chelsea[:, ::-1]))


def test_encode_is_one_pass_with_saliency(pipeline: Pipeline, grid_cache: Any, chelsea: np.ndarray) -> None:
    before = grid_cache.calls
    grid = pipeline.encode(chelsea)
    assert grid_cache.calls - before == 1
    assert grid.saliency is not None and grid.backbone == pipeline.fingerprint


def test_reference_view_isolates_the_cat(cat_view: View, cat_grid: Any) -> None:
    assert cat_view.embedding.shape == (384,)
    assert np.linalg.norm(cat_view.embedding) == pytest.approx(1.0, abs=1e-5)
    assert cat_view.weights.shape == cat_grid.shape
    assert 1 <= len(cat_view.parts) <= RecognitionConfig().max_parts
    np.testing.assert_allclose(np.linalg.norm(cat_view.parts, axis=1), 1.0, atol=1e-5)
    assert box_iou(cat_view.xyxy[None], np.array([CAT_BOX]))[0, 0] > 0.6


def test_reference_with_a_box_stays_inside_it(pipeline: Pipeline, cat_grid: Any) -> None:
    box = np.array([150, 50, 350, 250], np.float32)  # around the eyes and nose
    view = pipeline.reference(cat_grid, box=box)
    cw, ch = cat_grid.cell_size
    assert view.xyxy[0] >= box[0] - cw and view.xyxy[2] <= box[2] + cw
    assert view.xyxy[1] >= box[1] - ch and view.xyxy[3] <= box[3] + ch
    assert not np.allclose(view.embedding, pipeline.reference(cat_grid).embedding)


def test_reference_with_a_mask(pipeline: Pipeline, cat_grid: Any) -> None:
    mask = np.zeros((300, 451), bool)
    mask[100:200, 100:300] = True
    view = pipeline.reference(cat_grid, mask=mask)
    np.testing.assert_allclose(view.embedding, pipeline.region_embedding(cat_grid, mask=mask), atol=1e-6)
    cw, ch = cat_grid.cell_size  # the cells it touches
    np.testing.assert_allclose(view.xyxy, [100 // cw * cw, 100 // ch * ch, np.ceil(300 / cw) * cw,
                                           np.ceil(200 / ch) * ch], atol=1.0)


@pytest.mark.parametrize(("n", "max_parts", "expected"), [(5, 32, 5), (40, 32, 32), (40, 8, 8), (1, 4, 1)])
def test_summarize_parts_caps_the_prototypes(n: int, max_parts: int, expected: int) -> None:
    rng = np.random.default_rng(0)
    patches = rng.normal(size=(n, 16)).astype(np.float32)
    patches /= np.linalg.norm(patches, axis=1, keepdims=True)
    parts = summarize_parts(patches, max_parts)
    assert parts.shape == (expected, 16) and parts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(parts, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(parts, summarize_parts(patches, max_parts))  # seeded: deterministic


def test_match_scores_every_concept(pipeline: Pipeline, gallery: Gallery, flipped_grid: Any) -> None:
    scores, boxes, found = pipeline.match(flipped_grid, gallery)
    assert scores.shape == (2,) and boxes.shape == (2, 4) and found.shape == (2,)
    assert scores[0] > 0.8 and found[0]
    assert scores[1] < 0.6  # no cup in a cat photo
    flipped_cat = [451 - CAT_BOX[2], 0, 451 - CAT_BOX[0], 300]
    assert box_iou(boxes[:1], np.array([flipped_cat]))[0, 0] > 0.6


def test_match_with_an_empty_gallery(pipeline: Pipeline, flipped_grid: Any) -> None:
    scores, boxes, found = pipeline.match(flipped_grid, Gallery.from_concepts([]))
    assert scores.shape == (0,) and boxes.shape == (0, 4) and found.shape == (0,)
    assert len(pipeline.recognize(flipped_grid, Gallery.from_concepts([]))) == 0


def test_recognize_returns_named_unit_embeddings(pipeline: Pipeline, gallery: Gallery, flipped_grid: Any) -> None:
    dets = pipeline.recognize(flipped_grid, gallery)
    assert isinstance(dets, Detections)
    assert dets.name.tolist() == ["cat"] and dets.concept_id.tolist() == [1]
    assert dets.embedding.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(dets.embedding, axis=1), 1.0, atol=1e-5)
    # pooled from the object's extent (a mask inside the box), so close to the box's own embedding
    assert float((dets.embedding * pool_boxes(flipped_grid, dets.xyxy)).sum()) > 0.8


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (None, ["cat"]),  # the preset's 0.6
        (0.99, []),
        (0.0, ["cat"]),
        # a concept with no candidate region (score -1) is never a detection, at any threshold
        (-1.0, ["cat"]),
    ],
)
def test_recognize_threshold(pipeline: Pipeline, gallery: Gallery, flipped_grid: Any, threshold: float | None,
                             expected: list[str]) -> None:
    dets = pipeline.recognize(flipped_grid, gallery, threshold=threshold)
    assert dets.name.tolist() == expected
    assert np.all(dets.area > 0)


def test_per_concept_threshold_applies_without_an_explicit_one(
    pipeline: Pipeline, cat_view: View, flipped_grid: Any
) -> None:
    strict = Gallery.from_concepts([Concept("cat", cat_view.embedding, id=1, parts=cat_view.parts,
                                            threshold=0.99)])
    assert len(pipeline.recognize(flipped_grid, strict)) == 0
    assert len(pipeline.recognize(flipped_grid, strict, threshold=0.6)) == 1  # explicit wins


def test_region_embedding_box_and_mask(pipeline: Pipeline, cat_grid: Any) -> None:
    by_box = pipeline.region_embedding(cat_grid, xyxy=np.array([[0, 0, 451, 300]]))
    mask = np.ones((300, 451), bool)
    by_mask = pipeline.region_embedding(cat_grid, mask=mask)
    assert by_box.shape == (384,)
    np.testing.assert_allclose(by_box, by_mask, atol=1e-5)


def test_a_concept_is_named_once_unless_more_are_allowed(pipeline: Pipeline, gallery: Gallery) -> None:
    from skimage import data

    cat = data.chelsea()
    twins = np.concatenate([cat, cat[:, ::-1]], axis=1)  # the same cat twice, side by side
    grid = pipeline.encode(twins)
    once = pipeline.recognize(grid, gallery)
    assert once.name.tolist().count(gallery.names[0]) == 1
    twice = Pipeline(pipeline.backbone, replace(pipeline.config, max_per_concept=2)).recognize(grid, gallery)
    cats = twice[twice.name == gallery.names[0]]
    assert len(cats) == 2
    centres = (cats.xyxy[:, 0] + cats.xyxy[:, 2]) / 2
    assert centres.min() < cat.shape[1] < centres.max()  # one on each side


def test_a_large_gallery_verifies_a_shortlist_and_finds_the_same(pipeline: Pipeline, gallery: Gallery,
                                                                   flipped_grid: Any) -> None:
    """Beyond ``shortlist`` concepts only those that can win are verified at the patch level
    (parts fetched lazily): the result equals verifying every concept."""
    rng = np.random.default_rng(0)
    cat = gallery.subset([0])
    d = cat.views.shape[1]

    def noisy(a: np.ndarray, scale: float) -> np.ndarray:
        b = a + scale * rng.normal(size=a.shape).astype(np.float32) / np.sqrt(d)
        return (b / np.linalg.norm(b, axis=-1, keepdims=True)).astype(np.float32)

    # look-alikes of the cat at several distances, and unrelated concepts
    crowd = [Concept(f"near{i}", noisy(cat.views, 0.4 + 0.02 * i), id=100 + i, parts=noisy(cat.parts[0], 1.0))
             for i in range(40)]
    crowd += [Concept(f"far{i}", noisy(np.zeros((1, d), np.float32), 1.0), id=500 + i,
                      parts=noisy(np.zeros((4, d), np.float32), 1.0)) for i in range(200)]
    real = [Concept(n, gallery.views[gallery.owner == k], id=int(gallery.ids[k]), parts=gallery.parts[k])
            for k, n in enumerate(gallery.names)]
    concepts = real + crowd
    exact = Pipeline(pipeline.backbone, replace(pipeline.config, shortlist=10_000))
    short = Pipeline(pipeline.backbone, replace(pipeline.config, shortlist=8))
    asked: list[int] = []

    def fetch(ids: Any) -> dict[int, np.ndarray]:
        asked.extend(ids)
        return {c.id: c.parts for c in concepts if c.id in set(ids) and c.parts is not None}

    want = exact.recognize(flipped_grid, Gallery.from_concepts(concepts), threshold=0.5)
    got = short.recognize(flipped_grid, Gallery.from_concepts(concepts, fetch=fetch), threshold=0.5)
    assert "cat" in list(want.name) and list(got.name) == list(want.name)
    np.testing.assert_allclose(got.score, want.score, atol=1e-5)
    np.testing.assert_allclose(got.xyxy, want.xyxy)
    assert 0 < len(asked) <= 8  # parts of the shortlist only


def _second(pipeline: Pipeline, **fields: Any) -> Pipeline:
    """The pipeline with a second look whose only rules are the ones the test sets."""
    rules: dict[str, Any] = {"second_look_small": 0.03, "second_look_small_band": None, "second_look_min_zoom": 1.0,
                             "second_looks": 1, "second_look_contested": False}
    return Pipeline(pipeline.backbone, replace(pipeline.config, second_look=True, **{**rules, **fields}))


def _cat_in_a_room(chelsea: np.ndarray) -> np.ndarray:
    """The (flipped) cat at half size in the middle of a larger grey photo."""
    from PIL import Image

    small = np.asarray(Image.fromarray(np.ascontiguousarray(chelsea[:, ::-1])).resize((225, 150)))
    image = np.full((450, 675, 3), 110, np.uint8)
    image[150:300, 225:450] = small
    return image


def test_second_look_re_scores_a_borderline_candidate_on_one_crop(pipeline: Pipeline, gallery: Gallery,
                                                                   chelsea: np.ndarray) -> None:
    image = _cat_in_a_room(chelsea)
    grid = pipeline.encode(image)
    one_look = Pipeline(pipeline.backbone, replace(pipeline.config, second_look=False))
    first, boxes, _ = one_look.match(grid, gallery, image=image)
    # a threshold right at the cat's first score puts it in the band: one crop is embedded
    looker = _second(pipeline, threshold=float(first[0]) - 0.01, second_look_band=0.05, second_look_above=0.05)
    again, again_boxes, found = looker.match(grid, gallery, image=image)
    assert looker.second_look_passes == 1 and found[0]
    assert again[0] != first[0] and again[0] > 0.6  # re-scored on the crop: still clearly the cat
    assert box_iou(again_boxes[:1], boxes[:1])[0, 0] > 0.5  # the box maps back into the photo
    assert box_iou(again_boxes[:1], np.array([[225, 150, 450, 300]], np.float32))[0, 0] > 0.6
    # far from the threshold and not small: no second look; without the photo: none either
    calm = _second(pipeline, threshold=0.2)
    assert np.array_equal(calm.match(grid, gallery, image=image)[0], first) and calm.second_look_passes == 0
    looker.match(grid, gallery)
    assert looker.second_look_passes == 1


def test_a_crop_pass_computes_borrows_or_skips_the_saliency_map(pipeline: Pipeline, gallery: Gallery,
                                                                chelsea: np.ndarray) -> None:
    image = _cat_in_a_room(chelsea)
    grid = pipeline.encode(image)
    one_look = Pipeline(pipeline.backbone, replace(pipeline.config, second_look=False))
    first = one_look.match(grid, gallery, image=image)[0]
    near = {"threshold": float(first[0]) - 0.01, "second_look_band": 0.05, "second_look_above": 0.05}
    results = {}
    for mode in ("pass", "photo", "none"):
        looker = _second(pipeline, look_saliency=mode, **near)
        looker.crop_grids = {}
        scores, boxes, found = looker.match(grid, gallery, image=image)
        ((key, crop),) = looker.crop_grids.items()
        results[mode] = crop, scores[0], boxes[0], key[2]
        assert found[0] and scores[0] > 0.6  # the crop finds the cat whatever its saliency map
    assert results["pass"][0].saliency is not None and results["none"][0].saliency is None
    # "photo": the part of the photo's own map under the crop (no saliency head on the crop's pass)
    borrowed, photo_map = results["photo"][0].saliency, grid.saliency
    x0, y0, x1, y1 = results["photo"][3]  # the crop box in photo pixels (450 x 675)
    assert borrowed is not None and photo_map is not None
    assert abs(borrowed.shape[0] - photo_map.shape[0] * (y1 - y0) / 450) <= 2
    assert abs(borrowed.shape[1] - photo_map.shape[1] * (x1 - x0) / 675) <= 2
    assert borrowed.max() > 0.5 * photo_map.max()  # the cat is under the crop
    for mode in ("photo", "none"):
        assert abs(results[mode][1] - results["pass"][1]) < 0.05
        assert box_iou(results[mode][2][None], results["pass"][2][None])[0, 0] > 0.7
    with pytest.raises(InvalidInputError, match="look_saliency"):
        replace(pipeline.config, look_saliency="crop")


def test_the_crop_is_a_second_look_for_every_concept(pipeline: Pipeline, gallery: Gallery, chelsea: np.ndarray,
                                                     coffee: np.ndarray) -> None:
    from PIL import Image

    image = np.full((1000, 1500, 3), 110, np.uint8)       # a small cat and a small cup side by side:
    image[400:520, 500:680] = np.asarray(Image.fromarray(np.ascontiguousarray(chelsea[:, ::-1])).resize((180, 120)))
    image[420:500, 700:820] = np.asarray(Image.fromarray(coffee).resize((120, 80)))
    grid = pipeline.encode(image)                         # one first-look region spans both
    wide = {"second_look_band": 1.0, "second_look_above": 1.0}
    alone = _second(pipeline, second_look_min_zoom=1.5, second_look_others=False, **wide)
    scores, _, found = alone.match(grid, gallery, image=image)
    assert alone.second_look_passes == 1 and found.sum() == 1  # the crop re-scores its own concept only
    own = int(np.argmax(found))
    shared = _second(pipeline, second_look_min_zoom=1.5, second_look_others=True, **wide)
    again, boxes, found = shared.match(grid, gallery, image=image)
    assert shared.second_look_passes == 1 and found.all()  # the same crop finds the other one too
    assert again[own] == scores[own]
    truth = np.array([[500, 400, 680, 520], [700, 420, 820, 500]], np.float32)  # the cat, the cup
    assert box_iou(boxes, truth).diagonal().min() > 0.5
    cands = shared.candidates(grid, gallery, image=image, concepts=np.array([own]))
    assert [c.concept for c in cands] == [own]            # asked for one concept: that one only
    cup = next(c for c in shared.candidates(grid, gallery, image=image) if c.concept == 1)
    assert cup.region.shape == grid.shape and 0 < cup.region.sum() <= 12  # on the photo's grid, cup-sized


def test_second_look_spends_crops_only_where_they_magnify(pipeline: Pipeline, gallery: Gallery,
                                                         chelsea: np.ndarray) -> None:
    image = _cat_in_a_room(chelsea)                      # the cat: a quarter of the photo's side
    grid = pipeline.encode(image)
    one_look = Pipeline(pipeline.backbone, replace(pipeline.config, second_look=False))
    first = one_look.match(grid, gallery, image=image)[0]
    wide = {"second_look_band": 2.0, "second_look_above": 2.0}  # every candidate is "near"
    looker = _second(pipeline, second_look_min_zoom=1.4, second_look_core=False, **wide)
    looker.match(grid, gallery, image=image)
    assert looker.second_look_passes == 1                # its crop (with context) magnifies it ~1.5x
    whole = np.ascontiguousarray(chelsea[:, ::-1])       # the cat fills the photo: the crop would too
    looker.match(pipeline.encode(whole), gallery, image=whole)
    assert looker.second_look_passes == 1                # skipped: nothing new to see
    # with second_look_core, the crop that magnifies 1.5x around the cat's most cat-like patch
    core = _second(pipeline, second_look_min_zoom=1.5, second_look_core=True, **wide)
    scores, boxes, found = core.match(pipeline.encode(whole), gallery, image=whole)
    assert core.second_look_passes == 1 and found[0] and scores[0] > 0.6
    h, w = whole.shape[:2]
    assert boxes[0][2] - boxes[0][0] <= w / 1.5 + 1 and boxes[0][3] - boxes[0][1] <= h / 1.5 + 1  # inside the crop
    # a small candidate far below the threshold: looked at only within the small band
    below = float(first[0]) + 0.06
    tight = _second(pipeline, threshold=below, second_look_band=0.01, second_look_small=0.5)
    tight.match(grid, gallery, image=image)
    assert tight.second_look_passes == 0
    loose = _second(pipeline, threshold=below, second_look_band=0.01, second_look_small=0.5,
                    second_look_small_band=0.08)
    loose.match(grid, gallery, image=image)
    assert loose.second_look_passes == 1


def test_second_looks_are_bounded_per_image_or_per_concept_alone(pipeline: Pipeline, gallery: Gallery,
                                                                  chelsea: np.ndarray) -> None:
    image = np.ascontiguousarray(chelsea[:, ::-1])
    grid = pipeline.encode(image)
    wide = _second(pipeline, second_look_band=2.0, second_look_above=2.0)  # every candidate is "near"
    wide.match(grid, gallery, image=image)
    assert wide.second_look_passes == 1  # concepts compete: one look per image
    wide.match(grid, gallery, image=image, competitive=False)
    assert wide.second_look_passes == 1 + 2  # each concept as if alone: one look each
    wide.crop_grids = {}
    wide.match(grid, gallery, image=image, competitive=False)
    wide.match(grid, gallery, image=image, competitive=False)
    assert len(wide.crop_grids) == 2  # memoised crops: the same photo is embedded once per crop


def test_queries_skip_the_saliency_head_when_no_proposal_needs_it(pipeline: Pipeline, gallery: Gallery,
                                                                  flipped_grid: Any, chelsea: np.ndarray) -> None:
    assert pipeline.query_saliency  # the offline preset's proposals include saliency components
    windows = Pipeline(pipeline.backbone, replace(pipeline.config, proposals=("windows",)))
    assert not windows.query_saliency
    plain = windows.encode(np.ascontiguousarray(chelsea[:, ::-1]), saliency=windows.query_saliency)
    assert plain.saliency is None
    # the same detections as from the grid that has the map (window proposals ignore it)
    a, b = windows.recognize(plain, gallery), windows.recognize(flipped_grid, gallery)
    assert a.name.tolist() == b.name.tolist() == ["cat"]
    np.testing.assert_allclose(a.score, b.score, atol=1e-3)


# ---- encode_many: batches of photos --------------------------------------------------
def test_encode_many_keeps_order_and_reports_unreadable_photos(pipeline: Pipeline, chelsea: np.ndarray,
                                                                coffee: np.ndarray, tmp_path: Any) -> None:
    from pekit.errors import ImageError

    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    out = list(pipeline.encode_many([chelsea, bad, coffee]))
    assert isinstance(out[1], ImageError) and "notes.jpg" in str(out[1])
    for result, img in ((out[0], chelsea), (out[2], coffee)):
        assert not isinstance(result, ImageError)
        rgb, grid = result
        assert rgb.shape == img.shape
        np.testing.assert_allclose(grid.features, pipeline.encode(img).features, atol=1e-5)


def test_encode_many_in_parallel_gives_the_same_grids(offline_pipeline: Pipeline, chelsea: np.ndarray,
                                                      coffee: np.ndarray) -> None:
    """Two passes at a time (the ONNX backbone splits the cores): same tokens, per-photo saliency."""
    images = [chelsea, coffee, np.ascontiguousarray(chelsea[:, ::-1])]
    out = list(offline_pipeline.encode_many(images, saliency=[True, False, True], workers=2))
    assert [r[1].saliency is None for r in out] == [False, True, False]  # type: ignore[index]
    for (_rgb, grid), img in zip(out, images, strict=True):  # type: ignore[misc]
        np.testing.assert_allclose(grid.features, offline_pipeline.encode(img, saliency=False).features, atol=1e-4)


def test_encode_many_stops_when_the_caller_does(pipeline: Pipeline, chelsea: np.ndarray, grid_cache: Any) -> None:
    def endless():
        while True:
            yield chelsea

    stream = pipeline.encode_many(endless(), workers=1)
    first = next(stream)
    stream.close()  # returns: the pool is shut down, nothing keeps reading the generator
    assert first[1].features.shape[:2] == pipeline.encode(chelsea).features.shape[:2]  # type: ignore[index]


def test_encode_many_gives_what_came_before_a_failing_stream_then_its_error(pipeline: Pipeline, chelsea: np.ndarray,
                                                                             grid_cache: Any) -> None:
    """A generator of photos that fails after three: the three are yielded (they were being
    embedded ahead), then its error; nothing read before it is lost."""
    def three_then_fail():
        yield from (chelsea, chelsea, chelsea)
        raise ValueError("the album went away")

    got = []
    with pytest.raises(ValueError, match="album went away"):
        for result in pipeline.encode_many(three_then_fail(), workers=1):
            got.append(result)
    assert len(got) == 3 and all(r[0].shape == chelsea.shape for r in got)  # type: ignore[index]


def test_encode_many_refuses_zero_workers(pipeline: Pipeline, chelsea: np.ndarray) -> None:
    with pytest.raises(InvalidInputError, match="workers"):
        next(pipeline.encode_many([chelsea], workers=0))


def test_part_seeds_give_a_small_object_that_wins_no_proposal_a_candidate(
        pipeline: Pipeline, gallery: Gallery, chelsea: np.ndarray, coffee: np.ndarray) -> None:
    """One whole-image window, won by the cup: the small cat pasted in the corner gets a
    region grown from its most cat-like patches (and only with ``part_seeds``)."""
    from PIL import Image

    query = coffee.copy()
    query[190:400, 320:600] = np.asarray(Image.fromarray(chelsea[:300, :400]).resize((280, 210)))
    grid = pipeline.encode(query)
    found = {}
    for seeds in (False, True):
        cfg = replace(pipeline.config, proposals=("windows",), window_scales=(1.0,), part_seeds=seeds)
        found[seeds] = {c.concept: c for c in Pipeline(pipeline.backbone, cfg).candidates(grid, gallery)}
    assert set(found[False]) == {1}  # the cup wins the only proposal; the cat has nothing
    assert set(found[True]) == {0, 1}
    assert found[True][1].score == found[False][1].score  # a concept that wins a proposal is unchanged
    cat_box = np.array([[320, 190, 600, 400]], np.float32)
    assert box_iou(found[True][0].xyxy[None], cat_box)[0, 0] >= 0.5
    # a seed is only grown when its score could reach the threshold (an exact bound)
    strict = replace(pipeline.config, proposals=("windows",), window_scales=(1.0,), threshold=0.99)
    assert {c.concept for c in Pipeline(pipeline.backbone, strict).candidates(grid, gallery)} == {1}


# -- zoomed-out reference views (`RecognitionConfig.reference_zoom_out`) -------------------

def _zoomer(pipeline: Pipeline, n: int = 2) -> Pipeline:
    return Pipeline(pipeline.backbone, replace(pipeline.config, reference_zoom_out=n))


def test_zoom_out_image_tiles_the_photo_shrunk(pipeline: Pipeline, chelsea: np.ndarray) -> None:
    tiled = _zoomer(pipeline).zoom_out_image(chelsea)
    h, w = chelsea.shape[:2]
    assert tiled.shape == (h // 2 * 2, w // 2 * 2, 3) and tiled.dtype == np.uint8
    top_left = tiled[: h // 2, : w // 2]
    assert np.array_equal(top_left, tiled[h // 2:, w // 2:])                  # n x n copies of one tile
    assert abs(float(top_left.mean()) - float(chelsea.mean())) < 3.0          # of the whole photo, shrunk


def test_a_zoomed_view_is_one_more_pass_and_a_second_part_group(pipeline: Pipeline, grid_cache: Any,
                                                                 chelsea: np.ndarray, cat_grid: Any) -> None:
    from pekit.pipeline import PART_GROUPS, concept_from_views

    zoomer = _zoomer(pipeline)
    before = grid_cache.calls
    view = zoomer.reference(cat_grid, image=chelsea)
    assert grid_cache.calls - before == 1                                    # the tiled photo's pass
    assert view.zoomed is not None and 2 <= len(view.zoomed.parts) <= zoomer.config.max_parts
    plain = _zoomer(pipeline, 0).reference(cat_grid, image=chelsea)          # zoom off: no pass, no twin
    assert plain.zoomed is None and np.allclose(plain.parts, view.parts)
    concept = concept_from_views("Mochi", [view, view], meta={"note": 1})
    n, z = 2 * len(view.parts), 2 * len(view.zoomed.parts)
    assert {k: v for k, v in concept.meta.items() if k != "colours"} == {"note": 1, PART_GROUPS: [n, z]}
    assert len(concept.meta["colours"]) == 2 and concept.parts.shape == (n + z, 384)  # one colour per view
    assert concept.views.shape == (2, 384)                                   # one view per photo still
    segments = Gallery.from_concepts([concept]).part_segments()
    assert segments[1].tolist() == [n, z] and segments[2].tolist() == [0, 0]


def test_part_groups_are_scored_apart_and_the_best_group_counts() -> None:
    from pekit.retrieve.match import PART_GROUPS, part_agreement, part_groups

    rng = np.random.default_rng(3)
    full, zoom = np.eye(4, 8, dtype=np.float32), np.eye(4, 8, 4, dtype=np.float32)
    grouped = Concept("a", views=np.ones((1, 8), np.float32), parts=np.concatenate([full, zoom]),
                      meta={PART_GROUPS: [4, 4]})
    pooled = Concept("a", views=np.ones((1, 8), np.float32), parts=np.concatenate([full, zoom]))
    region = zoom + 0.01 * rng.standard_normal(zoom.shape).astype(np.float32)  # looks like the zoomed parts only
    region /= np.linalg.norm(region, axis=1, keepdims=True)
    scores = []
    for c in (grouped, pooled):
        g = Gallery.from_concepts([c])
        flat, _ = g.parts_matrix()
        scores.append(float(part_agreement(region @ flat.T, *g.part_segments(), 1)[0]))
    assert scores[0] > 0.95 and scores[1] < 0.8     # grouped: the zoomed group alone; pooled: half the parts missing
    assert part_groups(grouped) == [4, 4] and part_groups(pooled) == [8]
    bad = Concept("a", views=np.ones((1, 8), np.float32), parts=np.concatenate([full, zoom]),
                  meta={PART_GROUPS: [3, 4]})  # does not add up: one group
    assert part_groups(bad) == [8] and Gallery.from_concepts([bad]).part_segments()[1].tolist() == [8]


def test_merge_parts_keeps_each_group_together(cat_view: View) -> None:
    from pekit.pipeline import merge_parts

    twin = View(cat_view.embedding, cat_view.parts[:3], cat_view.xyxy, cat_view.weights)
    zoomed = View(cat_view.embedding, cat_view.parts, cat_view.xyxy, cat_view.weights, zoomed=twin)
    parts, groups = merge_parts(None, None, [cat_view])                       # no zoomed view: one group
    assert groups == [len(cat_view.parts)]
    parts, groups = merge_parts(parts, groups, [zoomed])                      # add one with a twin
    n = len(cat_view.parts)
    assert groups == [2 * n, 3] and np.allclose(parts[2 * n:], cat_view.parts[:3])
    parts, groups = merge_parts(parts, groups, [zoomed])
    assert groups == [3 * n, 6] and np.allclose(parts[:n], cat_view.parts)
    assert np.allclose(parts[3 * n:], np.tile(cat_view.parts[:3], (2, 1)))


def test_zoom_out_grid_runs_at_half_size_or_tiles(pipeline: Pipeline, chelsea: np.ndarray, cat_grid: Any) -> None:
    from pekit.embed.base import ScalableBackbone

    zoomer = _zoomer(pipeline)
    assert isinstance(pipeline.backbone, ScalableBackbone)
    small = zoomer.zoom_out_grid(chelsea)                      # the photo at 1/2 of the input size
    h, w = cat_grid.shape
    assert abs(small.shape[0] - h / 2) <= 1 and abs(small.shape[1] - w / 2) <= 1
    assert small.backbone == cat_grid.backbone
    assert small.saliency is None                              # features only

    class Fixed:  # a backbone that cannot change its input size: the n x n tiling instead
        def __init__(self, inner: Any) -> None:
            self.inner, self.name, self.fingerprint, self.dim = inner, inner.name, inner.fingerprint, inner.dim

        def embed(self, image: np.ndarray, *, saliency: bool = True) -> Any:
            return self.inner.embed(image, saliency=saliency)

    tiler = Pipeline(Fixed(pipeline.backbone), zoomer.config)
    tiled = tiler.zoom_out_grid(chelsea)
    assert abs(tiled.shape[0] - h) <= 1 and abs(tiled.shape[1] - w) <= 1
    view = pipeline.reference(cat_grid)
    a, b = zoomer.zoomed_view(view, small), tiler.zoomed_view(view, tiled)
    assert a is not None and b is not None
    assert (b.weights > 0.5).sum() > 2 * (a.weights > 0.5).sum()  # four copies of the object vs one
    assert float(a.embedding @ b.embedding) > 0.7                   # the same object, seen as small


def test_a_contested_region_is_never_named_without_a_crop_that_finds_it(pipeline: Pipeline, gallery: Gallery,
                                                                        chelsea: np.ndarray) -> None:
    from PIL import Image

    from pekit.retrieve.candidates import first_look

    image = np.full((1000, 1500, 3), 110, np.uint8)       # a small cat alone in a large grey photo
    image[400:520, 500:680] = np.asarray(Image.fromarray(np.ascontiguousarray(chelsea[:, ::-1])).resize((180, 120)))
    grid = pipeline.encode(image)
    looker = _second(pipeline, second_look_contested=True, second_look_small=0.1, second_look_small_band=1.0)
    first = first_look(looker.config, looker.scan(grid), gallery, contested=True)
    assert [(c.concept, c.contested) for c in first] == [(0, False), (1, True)]  # the cup's parts lost to the cat's
    cands = looker.candidates(grid, gallery, image=image)
    assert looker.second_look_passes >= 1
    assert [(c.concept, c.contested) for c in cands] == [(0, False)]  # no crop found a cup: no cup
    assert [c.concept for c in looker.candidates(grid, gallery)] == [0]  # no photo to crop: never returned


# ---- what a plugged-in backbone, detector or segmenter returns is checked ------------------
class _Backbone:
    fingerprint, dim = "toy/1", 8

    def __init__(self, make: Any) -> None:
        self.make = make

    def embed(self, image: np.ndarray) -> Any:
        from pekit.types import PatchGrid

        features = self.make(np.random.default_rng(0).normal(size=(8, 8, 8)).astype(np.float32))
        if not isinstance(features, np.ndarray):
            return features
        return PatchGrid(features=features, image_size=(image.shape[1], image.shape[0]), backbone=self.fingerprint)


def _nan(f: np.ndarray) -> np.ndarray:
    f[0, 0, 0] = np.nan
    return f


@pytest.mark.parametrize(("make", "match"), [
    (_nan, "not finite numbers.*float32"),
    (lambda f: f[..., :5], "declares dim=8 but returned 5-wide"),
    (lambda f: (f,), "returned tuple, not a pekit.types.PatchGrid"),
], ids=["nan", "width", "type"])
def test_a_backbone_that_returns_the_wrong_thing_is_named(make: Any, match: str, chelsea: np.ndarray) -> None:
    from pekit.errors import BackendError

    with pytest.raises(BackendError, match=match):
        Pipeline(_Backbone(make), RecognitionConfig()).encode(chelsea)


class _Detector:
    def __init__(self, found: Any) -> None:
        self.found = found

    def detect(self, image: np.ndarray, labels: list[str]) -> Any:
        return self.found


class _Segmenter:
    def segment(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return np.zeros((len(boxes), image.shape[0], image.shape[1]), bool)


@pytest.mark.parametrize(("found", "segmenter", "match"), [
    (Detections(xyxy=[[0.1, 0.1, 0.6, 0.7]], score=[0.9]), None, r"look like 0-1 fractions.*in pixels"),
    (Detections(xyxy=[[900, 900, 990, 990]], score=[0.9]), None, r"outside the \d+x\d+ photo"),
    ([[10, 10, 200, 200]], None, "returned list, not a pekit.types.Detections"),
    (Detections(xyxy=[[50, 50, 50, 300]], score=[0.9]), None, "not an x0, y0, x1, y1 box"),
    (Detections(xyxy=[[60, 40, 400, 300]], score=[0.9]), _Segmenter(), "gave an empty mask for the 'cat'"),
], ids=["fractions", "outside", "list", "flat", "empty-mask"])
def test_a_detector_or_segmenter_that_returns_the_wrong_thing_is_named(pipeline: Pipeline, cat_grid: Any,
                                                                        chelsea: np.ndarray, found: Any,
                                                                        segmenter: Any, match: str) -> None:
    from pekit.errors import BackendError

    p = Pipeline(pipeline.backbone, pipeline.config, detector=_Detector(found), segmenter=segmenter)
    with pytest.raises(BackendError, match=match):
        p.reference(cat_grid, image=chelsea, category="cat")


def test_a_detected_object_too_small_to_describe_says_so(pipeline: Pipeline, cat_grid: Any,
                                                         chelsea: np.ndarray) -> None:
    from pekit.errors import NothingFoundError

    found = Detections(xyxy=[[100, 100, 110, 110]], score=[0.9])  # 10 px: under a patch
    p = Pipeline(pipeline.backbone, pipeline.config, detector=_Detector(found))
    with pytest.raises(NothingFoundError, match=r"the 'cat' the detector found covers 0\.\d patch\(es\).*pass a box"):
        p.reference(cat_grid, image=chelsea, category="cat")


def test_without_saliency_a_reference_asks_for_a_box_or_a_category(pipeline: Pipeline, cat_grid: Any,
                                                                    chelsea: np.ndarray) -> None:
    from pekit.errors import NothingFoundError

    bare = replace(cat_grid, saliency=None)
    with pytest.raises(NothingFoundError, match=r"needs a box or a mask.*or a preset with a detector"):
        pipeline.reference(bare, image=chelsea)
    found = Detections(xyxy=[[60, 40, 400, 300]], score=[0.9])
    p = Pipeline(pipeline.backbone, pipeline.config, detector=_Detector(found))
    with pytest.raises(NothingFoundError, match=r"or a category \(e.g. category='dog'; CLI: --category dog\)"):
        p.reference(bare, image=chelsea)
    assert p.reference(bare, image=chelsea, category="cat").embedding.shape == (pipeline.backbone.dim,)


def test_a_weak_detection_kept_by_a_margin_never_removes_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clip keeps detections a margin under each threshold to extend tracks. One of them
    may score higher than another concept's hit on the same box (against a higher threshold
    of its own): the overlap removal keeps the hit that clears its threshold."""
    from pekit.retrieve.candidates import Candidate
    from pekit.retrieve.match import Gallery

    gallery = Gallery.from_concepts([Concept("A", np.eye(1, 4, dtype=np.float32), threshold=0.60),
                                     Concept("B", np.eye(1, 4, 1, dtype=np.float32), threshold=0.40)])
    box, region = np.array([10, 10, 50, 50], np.float32), np.ones((2, 2), bool)
    found = [Candidate(0, 0.55, box, region), Candidate(1, 0.45, box, region)]  # A weak, B strong
    pipeline = Pipeline(None, RecognitionConfig())  # type: ignore[arg-type]  # no pass: candidates are given
    monkeypatch.setattr(pipeline, "scan", lambda grid, image=None, labels=None: grid)
    monkeypatch.setattr(pipeline, "candidates", lambda scan, gallery, **kw: list(found))
    for margin in (0.0, 0.1):
        _, named = pipeline.named(None, gallery, margin=margin)  # type: ignore[arg-type]
        assert [gallery.names[c.concept] for c in named] == ["B"]


def test_a_crop_is_compared_by_colour_as_its_photo_is(pipeline: Pipeline, chelsea: np.ndarray) -> None:
    """A black-and-white print in a colour photo: its crop is grey, yet the photo holds colour
    evidence, so the crop's regions keep the colour term the first look gave them; a coloured
    corner of a black-and-white photo gets none."""
    from pekit.embed.colour import achromatic

    assert pipeline.config.colour_weight > 0
    photo = np.ascontiguousarray(np.concatenate([chelsea, np.repeat(chelsea.mean(-1, keepdims=True), 3, -1)
                                                 .astype(np.uint8)], axis=1))  # colour | grey
    grey = (451, 0, 902, 300)
    assert not achromatic(photo) and achromatic(photo[:, 451:])
    photo_grid = pipeline.encode(photo, saliency=False)
    assert photo_grid.colours is not None
    crop = pipeline._crop_grid(photo, grey, colours=pipeline._photo_colours(photo_grid))
    assert crop.colours is not None  # as its photo: compared by colour
    assert pipeline._crop_grid(photo, (0, 0, 451, 300), colours=False).colours is None
