"""Stage 1, view extraction: isolate the object in each reference image.

Sources, in order of preference: a user-given mask or box (refined by saliency), an
open-vocabulary detector from the category (+ SAM), class-agnostic saliency from the
backbone pass itself (`saliency`). `views` turns the chosen region of a reference grid into
the concept's view embedding and part prototypes (`View`, `concept_from_views`). `boxes`
checks the boxes a user draws around the object. `reference` (`ViewExtractor`, which
`pekit.pipeline.Pipeline` extends) runs it on a reference photo's pass.
"""

from pekit.extract.saliency import grid_saliency, object_weights
from pekit.extract.views import View, concept_from_views, view_from_weights

__all__ = ["DETECTOR_TYPES", "SEGMENTER_TYPES", "HFDetector", "HFSegmenter", "View", "concept_from_views",
           "grid_saliency", "object_weights", "view_from_weights"]


def __getattr__(name: str):
    if name in ("HFDetector", "HFSegmenter", "DETECTOR_TYPES", "SEGMENTER_TYPES"):
        from pekit.extract import hf

        return getattr(hf, name)
    raise AttributeError(name)
