"""Stage 3, visual and text prompting: coloured boxes on the image, names in the prompt.

`colour_assignment` decides each concept's colour once; `annotate` draws with it and
`build_prompt` names it, so the image and the text always agree.

Example:
    >>> import numpy as np
    >>> from pekit.types import Detections
    >>> dets = Detections(xyxy=[[4, 4, 40, 40]], score=[0.8], name=["Bo"])
    >>> colours = colour_assignment(dets)
    >>> image = annotate(np.zeros((48, 48, 3), np.uint8), dets)
    >>> build_prompt("caption", concepts_in_image=[("Bo", colours["Bo"], "")])
    'The entity in the red box is called Bo.\\nDescribe this image in one or two sentences, \
calling Bo by name. Do not mention the boxes or their colours.'
"""

from __future__ import annotations

from pekit.prompt.choice import parse_choice, split_options
from pekit.prompt.overlay import PALETTE, annotate, colour_assignment, colour_rgb
from pekit.prompt.question import MAX_QUESTION_CHARS, mentioned_names, validate_question
from pekit.prompt.text import PromptTemplate, available_templates, build_prompt, load_template

__all__ = [
    "MAX_QUESTION_CHARS",
    "PALETTE",
    "PromptTemplate",
    "annotate",
    "available_templates",
    "build_prompt",
    "colour_assignment",
    "colour_rgb",
    "load_template",
    "mentioned_names",
    "parse_choice",
    "split_options",
    "validate_question",
]
