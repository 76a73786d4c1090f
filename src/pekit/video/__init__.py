"""Video: decode with PyAV, sample frames, recognize each sample, link detections into tracks.

    >>> from pekit import Personalizer                                    # doctest: +SKIP
    >>> result = Personalizer().recognize_video("clip.mp4", out="annotated.mp4")  # doctest: +SKIP
    >>> print(result.timeline())                                          # doctest: +SKIP
       0.0-3.5 s  Lin (0.61)

Install with ``pip install 'pekit-vlm[video]'`` (the ``av`` wheel ships its own FFmpeg).
"""

from pekit.video.decode import VIDEO_SUFFIXES, Frame, VideoError, VideoInfo, is_video, probe, sample_frames
from pekit.video.run import VideoFrame, VideoResult, recognize_video
from pekit.video.track import WEAK_MARGIN, Track, Tracker

__all__ = [
    "VIDEO_SUFFIXES",
    "WEAK_MARGIN",
    "Frame",
    "Track",
    "Tracker",
    "VideoError",
    "VideoFrame",
    "VideoInfo",
    "VideoResult",
    "is_video",
    "probe",
    "recognize_video",
    "sample_frames",
]
