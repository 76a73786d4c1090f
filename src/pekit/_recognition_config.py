"""`RecognitionConfig`: how regions are found, matched and looked at again (stage 2), one
field per switch, each checked when a config is made. `pekit.presets` re-exports it (its
public home) and builds the presets' recipes from it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from pekit.errors import InvalidInputError
from pekit.types import check_threshold, finite_number, whole_number

__all__ = ["RecognitionConfig"]


@dataclass(frozen=True)
class RecognitionConfig:
    """How regions are found and matched (retrieval, stage 2).

    Attributes:
        threshold: global score threshold a concept must reach to be recognized.
        proposals: candidate sources: ``saliency``, ``windows``, ``detector``.
        window_scales: sliding-window sizes as fractions of the grid sides.
        saliency_levels: relative saliency levels for component proposals.
        reference_level: relative saliency level of the object core in reference photos.
        verify_weight: weight of the patch-level (part) score in the final score; 0 = the
            global cosine only. Default 1: the global cosine picks the region and the winning
            concept (category-level evidence); the score that is thresholded is the
            instance-level agreement of the object's patches with the concept's parts.
        extent: grow each matched region to the whole object (`retrieve.object_extent`)
            before scoring it and drawing its box.
        extent_alpha: where between the background's and the object's similarity level a
            patch starts to belong to the object (lower grows more).
        salient_box: after the looks, each box is grown to the connected component of the
            query's saliency map (at half its range) that it lies on, when at least 80 % of
            that component is already inside it: the extent, read at patch resolution, often
            stops short of an object's rim (paws, a handle), and the component outlines the
            whole object; a component that merges the object with a neighbour or the
            background is mostly outside the box and grows nothing (`retrieve.salient_boxes`).
            The box only: regions and scores are unchanged. Needs a query pass with saliency.
        max_parts: part prototypes kept per reference view.
        competitive: a region is named only after its best-matching concept.
        proposal_competition: with ``competitive``, a proposal is also assigned to its
            best-matching concept by the global cosine before any region is grown (False:
            every concept grows its own best proposals and only region-level competition
            decides).
        region_competition: also after growing it to the object: the grown region is not
            named after a concept whose parts agree with it less than another concept's.
        margin: required lead of the best concept over the runner-up (competitive mode).
        nms_iou: overlap above which weaker detections of different concepts are dropped.
        max_per_concept: how many regions one concept may claim in an image (1: each
            concept at most once; raise it for look-alike sets, e.g. two identical mugs).
        part_seeds: a concept that wins no proposal gets one region anyway, grown from the
            patches most like its parts (a small object inside windows that are mostly
            background); region-level competition and the threshold still decide.
        part_seeds_also: a concept that wins proposals also grows a region from its most
            part-like patch; it is kept instead of a proposal's region only if it lies
            elsewhere (no patch shared with any) and scores higher (the object is small and
            the proposals it won are a look-alike elsewhere).
        reference_zoom_out: n >= 2: each reference photo is also embedded shrunk n times
            (one more, features-only backbone pass when introducing: at 1/n of the input
            size where the backbone allows it, else the photo shrunk and tiled n x n), and the
            object's parts there are kept as a second part group, scored on its own: an
            object that is small in a query photo (few patches, each mixing in more context)
            meets parts seen at its scale. 0 or 1: off.
        second_look: re-score near-threshold or small candidates on a crop embedded at
            full resolution (one more backbone pass each; `pekit.retrieve.second_look`).
        second_look_band: how far below the threshold a score may be for a second look.
        second_look_above: how far above it (None: the same as ``second_look_band``).
        second_look_small: share of the grid under which a candidate counts as small.
        second_look_small_band: how far below the threshold a *small* candidate may be
            for a second look (None: ``second_look_band``): a small object spans few
            patches, so its first score is the least reliable and its crop gains most.
        second_look_min_zoom: no crop of a candidate's box that would magnify it less than
            this (`pekit.retrieve.second_look.magnification`): re-embedding nearly the
            whole photo sees little new (with ``second_look_core``, the crop around its most
            concept-like patch that magnifies this much instead).
        second_looks: at most this many crops per image (per concept when each is scored
            alone).
        second_look_others: with several concepts competing, a crop also re-scores every
            other concept on it (one more look at that part of the photo, magnified, for all
            of them: a small object beside the candidate that triggered the crop); no extra
            pass.
        second_look_core: a candidate whose crop would magnify it less than
            ``second_look_min_zoom`` (its region grew over much of the photo: a large object,
            or a small one merged with its surroundings) is looked at on the crop that
            magnifies that much, centred on its most concept-like patch, after every
            candidate whose whole box can be magnified: when it is at or above its
            threshold (the crop re-judges a name it would get) or small (under
            ``second_look_small`` of the grid).
        second_look_core_below: with ``second_look_core``, a large candidate under its
            threshold gets that crop too. Off by default: a partial view of a large region
            raises look-alikes about as often as the object itself (`docs/results.md`).
        second_look_contested: a small region (under ``second_look_small`` of the grid)
            that region-level competition would drop (another concept's parts agree better
            with it: at a few patches a small object is easily taken for a look-alike) is
            kept as a reason for a crop, never as a name: magnified, the crop's pass decides
            (with the same competition); a contested region that gets no crop, or whose
            crop does not find its concept, is dropped.
        second_look_skip_named: no pass for a candidate already named with confidence (at
            or above the band above the threshold), nor for one whose most concept-like
            patch lies on such a candidate's region (that patch is explained: another look
            at it would re-score an object already named).
        second_look_seen: no crop for a candidate whose box lies (at least 80 % of it) in a
            crop already taken for its concept (with ``second_look_others`` and competition:
            for any concept, since that crop matched them all) that its own crop would not
            magnify ``second_look_min_zoom`` times more: that part of the photo was already
            seen about as magnified, and the concept was not found better there.
        look_saliency: where the saliency map of a second-look crop or a tiled-look tile
            comes from (when the proposals use one). "pass": its own pass computes it (a full
            pass). "photo" (the ``offline`` presets): the part of the photo's own map under
            it, so the crop's pass stops after the feature block, about 40 % cheaper with the
            offline backbone; its saliency components are as coarse as the photo's but still
            part two small things side by side (a photo encoded without a map lends none: its
            crops then have none either). "none": no map, candidates from windows and part
            seeds only (as cheap; a box on a crop may then span two neighbours).
        tiled_look: n >= 2: after the first look, the photo is looked at again as ``n x n``
            overlapping tiles (``n * n`` more backbone passes, each matched against every
            concept, before the second look): every object is magnified about
            ``1 / tiled_look_cover`` times, found or not. For photos where your things are
            small in clutter (the first pass gives an object of a few patches no candidate
            at all, so no second look reaches it); ``offline-thorough`` turns it on. 0: off.
            No tile under `pekit.retrieve.second_look.MIN_CROP_SIDE` pixels on its long side
            is embedded (at a cover of 0.6, a photo under 106 px on its long side gets none).
        tiled_look_cover: each tile's share of the photo's width and height (tiles overlap
            where ``n * cover > 1``, so an object cut by one tile's edge is whole in another).
        colour_weight: w > 0: a region's score also gets ``w * (c - colour_neutral)``,
            where ``c`` is the Bhattacharyya coefficient of its colour histogram with the
            closest reference view's (`pekit.embed.colour`); the backbone's tokens match
            texture more than colour, while people's things are often told apart by it.
            A concept stored without colours (introduced before, or with it off) scores
            as if ``c = colour_neutral``. 0: off (no query colours are computed; reference
            views keep theirs, so a concept can be scored with colour later).
        colour_neutral: the colour agreement that leaves a score unchanged.
        colour_competition: region-level competition also compares colour (the combined
            score, not the parts alone, decides which concept a region belongs to).
        shortlist: galleries of more than twice this many concepts (or read lazily from a
            large namespace) verify at the patch level only the ``shortlist`` concepts that
            can win (those that win a proposal, best first, then the closest runners-up), so
            the cost stays flat at 10^5 concepts; smaller galleries verify every concept
            that wins a proposal, against all of them (exact).
    """

    threshold: float = 0.6
    proposals: tuple[str, ...] = ("saliency", "windows")
    window_scales: tuple[float, ...] = (0.35, 0.5, 0.7, 1.0)
    saliency_levels: tuple[float, ...] = (0.3, 0.5, 0.7)
    reference_level: float = 0.7
    verify_weight: float = 1.0
    extent: bool = True
    extent_alpha: float = 0.5
    salient_box: bool = False
    max_parts: int = 32
    competitive: bool = True
    proposal_competition: bool = True
    region_competition: bool = True
    margin: float = 0.0
    nms_iou: float = 0.7
    max_per_concept: int = 1
    shortlist: int = 32
    part_seeds: bool = True
    part_seeds_also: bool = False
    reference_zoom_out: int = 0
    second_look: bool = False
    second_look_band: float = 0.05
    second_look_above: float | None = None
    second_look_small: float = 0.03
    second_look_small_band: float | None = None
    second_look_min_zoom: float = 1.0
    second_looks: int = 1
    second_look_others: bool = False
    second_look_core: bool = False
    second_look_core_below: bool = False
    second_look_contested: bool = False
    second_look_skip_named: bool = False
    second_look_seen: bool = False
    look_saliency: str = "pass"
    tiled_look: int = 0
    tiled_look_cover: float = 0.6
    colour_weight: float = 0.0
    colour_neutral: float = 0.85
    colour_competition: bool = False

    def __post_init__(self) -> None:
        check_threshold(self.threshold)
        self._check_kinds()
        for key in ("proposals", "window_scales", "saliency_levels"):
            if isinstance(getattr(self, key), (str, bytes)) or not isinstance(getattr(self, key), (tuple, list)):
                raise InvalidInputError(f"{key} must be a tuple, e.g. {getattr(RecognitionConfig, key)!r}, "
                                        f"got {getattr(self, key)!r}")
        unknown = set(self.proposals) - {"saliency", "windows", "detector"}
        if unknown or not self.proposals:
            raise InvalidInputError(
                f"unknown proposal source(s) {sorted(unknown)}; choose from saliency, windows, detector"
                if unknown else "proposals must name at least one source: saliency, windows, detector"
            )
        fractions = {"window_scales": self.window_scales, "saliency_levels": self.saliency_levels}
        for key, values in fractions.items():
            if not values or not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                     and 0.0 < v <= 1.0 for v in values):
                raise InvalidInputError(f"{key} must hold fractions in (0, 1], e.g. "
                                        f"{getattr(RecognitionConfig, key)!r}, got {values!r}")
        if self.look_saliency not in ("pass", "photo", "none"):
            raise InvalidInputError(f"look_saliency must be 'pass', 'photo' or 'none', got {self.look_saliency!r}")
        if not 0.0 < self.reference_level < 1.0:
            raise InvalidInputError(f"reference_level must be in (0, 1), got {self.reference_level}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise InvalidInputError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        counts = {"max_parts": (self.max_parts, 1), "second_looks": (self.second_looks, 0),
                  "reference_zoom_out": (self.reference_zoom_out, 0), "max_per_concept": (self.max_per_concept, 1),
                  "shortlist": (self.shortlist, 2), "tiled_look": (self.tiled_look, 0)}
        for key, (value, least) in counts.items():
            if not whole_number(value) or value < least:
                raise InvalidInputError(f"{key} must be a whole number >= {least}, got {value!r}")
        if self.reference_zoom_out == 1:
            raise InvalidInputError("reference_zoom_out must be 0 (off) or at least 2 (the object n times smaller)")
        if not 0.0 <= self.margin < 1.0:
            raise InvalidInputError(f"margin must be in [0, 1), got {self.margin}")
        if not 0.0 < self.extent_alpha < 1.0:
            raise InvalidInputError(f"extent_alpha must be in (0, 1), got {self.extent_alpha}")
        if not 0.0 <= self.verify_weight <= 1.0:
            raise InvalidInputError(f"verify_weight must be in [0, 1], got {self.verify_weight}")
        if self.tiled_look == 1:
            raise InvalidInputError(f"tiled_look must be 0 (off) or at least 2 (n x n tiles), got {self.tiled_look}")
        if not 0.0 < self.tiled_look_cover < 1.0 or (self.tiled_look and self.tiled_look * self.tiled_look_cover < 1.0):
            raise InvalidInputError(
                f"tiled_look_cover must be in (0, 1) and tiled_look * tiled_look_cover >= 1 (the tiles must cover the "
                f"photo), got {self.tiled_look_cover} with tiled_look = {self.tiled_look}"
            )
        if not 0.0 <= self.colour_weight <= 1.0:
            raise InvalidInputError(f"colour_weight must be in [0, 1], got {self.colour_weight}")
        if not 0.0 <= self.colour_neutral <= 1.0:
            raise InvalidInputError(f"colour_neutral must be in [0, 1], got {self.colour_neutral}")
        bands = {"second_look_band": self.second_look_band, "second_look_above": self.second_look_above,
                 "second_look_small_band": self.second_look_small_band}
        for key, band in bands.items():  # distances from the threshold, in score units
            if band is not None and not 0.0 <= band <= 2.0:
                raise InvalidInputError(f"{key} must be in [0, 2] (a distance from the threshold), got {band}")
        if not 0.0 <= self.second_look_small <= 1.0:
            raise InvalidInputError(f"second_look_small must be in [0, 1] (a share of the grid), got "
                                    f"{self.second_look_small}")
        if self.second_look_min_zoom < 1.0:
            raise InvalidInputError(f"second_look_min_zoom must be at least 1 (a magnification), got "
                                    f"{self.second_look_min_zoom}")

    def _check_kinds(self) -> None:
        """Each switch is True or False and each fraction or score a finite number, before
        any range is compared (whole numbers are the counts'): text, None or NaN would
        otherwise fail as a TypeError here or in the middle of a `recognize`, or pass unseen
        (``competitive="no"`` is truthy)."""
        for spec in fields(self):
            default, value = spec.default, getattr(self, spec.name)
            if isinstance(default, bool):
                if not isinstance(value, (bool, np.bool_)):
                    raise InvalidInputError(f"{spec.name} must be True or False, got {value!r}")
            elif (isinstance(default, float) or default is None) and not (
                    finite_number(value) or (default is None and value is None)):
                raise InvalidInputError(f"{spec.name} must be a finite number"
                                        f"{' or None' if default is None else f' (e.g. {default})'}, got {value!r}")
