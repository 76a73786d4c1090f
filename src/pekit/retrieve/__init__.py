"""Stage 2, retrieval: proposals, matching, verification, assignment, NMS."""

from pekit.retrieve.match import Gallery, part_scores, similarity
from pekit.retrieve.nms import box_iou, nms
from pekit.retrieve.proposals import Proposals, box_proposals, saliency_proposals, window_proposals

__all__ = ["Gallery", "Proposals", "box_iou", "box_proposals", "nms", "part_scores",
           "saliency_proposals", "similarity", "window_proposals"]
