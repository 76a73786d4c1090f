"""Stage 2, retrieval: proposals, matching, verification, assignment, NMS."""

from pekit.retrieve.candidates import Candidate, Scan, first_look
from pekit.retrieve.match import Gallery, part_scores, similarity
from pekit.retrieve.nms import box_iou, nms
from pekit.retrieve.proposals import Proposals, box_proposals, saliency_proposals, window_proposals
from pekit.retrieve.second_look import second_look

__all__ = ["Candidate", "Gallery", "Proposals", "Scan", "box_iou", "box_proposals", "first_look", "nms",
           "part_scores", "saliency_proposals", "second_look", "similarity", "window_proposals"]
