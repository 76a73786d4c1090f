"""Stage 1, view extraction: isolate the object in each reference image.

Sources, in order of preference: a user-given mask or box (refined by saliency), an
open-vocabulary detector from the category (+ SAM), class-agnostic saliency from the
backbone pass itself.
"""

from pekit.extract.saliency import grid_saliency, object_weights

__all__ = ["DETECTOR_TYPES", "SEGMENTER_TYPES", "HFDetector", "HFSegmenter", "grid_saliency", "object_weights"]


def __getattr__(name: str):
    if name in ("HFDetector", "HFSegmenter", "DETECTOR_TYPES", "SEGMENTER_TYPES"):
        from pekit.extract import hf

        return getattr(hf, name)
    raise AttributeError(name)
