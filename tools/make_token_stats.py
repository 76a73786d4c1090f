"""Compute the generic token mean used to centre the offline backbone's features.

    python tools/make_token_stats.py   # writes src/pekit/embed/stats/onnx-dinov2-s.npz

Cosine similarity between mean-pooled DINOv2 tokens is dominated by what *all* image
regions share; subtracting a generic mean token makes similarities reflect what is
specific to an object. The mean is computed from scikit-image's bundled sample photos
(public, shipped with a PyPI package; none of them is an evaluation image), for every
block at the default resolution, after per-token standardisation — exactly the features
`OnnxDinov2` produces before centring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pekit.embed import onnx as eo
from pekit.embed.base import input_size, preprocess
from pekit.images import load_image

SAMPLES = ["astronaut", "chelsea", "coffee", "rocket", "cat", "hubble_deep_field", "immunohistochemistry",
           "retina", "skin", "lily", "camera", "coins", "moon", "page", "text", "brick", "grass", "gravel",
           "eagle"]
OUT = Path(__file__).resolve().parents[1] / "src" / "pekit" / "embed" / "stats" / "onnx-dinov2-s.npz"


def main() -> None:
    from skimage import data

    images, used = [], []
    for name in SAMPLES:
        try:
            images.append(load_image(getattr(data, name)()))
            used.append(name)
        except (ModuleNotFoundError, OSError):  # not bundled in the wheel (needs a download)
            continue
    layers = [*range(12), -1]
    session = eo._session(eo.model_path(), 0, tuple(eo.token_output(layer) for layer in layers))
    sums = {layer: np.zeros(384, np.float64) for layer in layers}
    count = 0
    for image in images:
        h, w = image.shape[:2]
        outputs = session.run(None, {"input_image": preprocess(image, input_size(w, h, 448))})
        for layer, tokens in zip(layers, outputs, strict=True):
            t = tokens[0, 1:].astype(np.float64)
            t = (t - t.mean(-1, keepdims=True)) / (t.std(-1, keepdims=True) + 1e-6)
            sums[layer] += t.sum(0)
        count += outputs[0].shape[1] - 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez(OUT, **{f"mean_layer{layer}": (sums[layer] / count).astype(np.float32) for layer in layers},
             samples=np.array(used), tokens=np.int64(count), resolution=np.int64(448))
    print(f"wrote {OUT} from {len(images)} images ({', '.join(used)}), {count} tokens")


if __name__ == "__main__":
    main()
