"""Frames per second on CPU, side by side in one run: the kit's prediction against a plain
compiled tf.function and ONNX Runtime, and prediction + cells end to end, serial against
:func:`livecell_kit.predict.stream_cells`; then peak memory of one 4000×4000 frame.

    .venv/bin/python bench/throughput.py [--model MODEL] [--images DIR] [--frames N] [--skip-big]

--model: a trained ``cells`` model (model.keras or run folder; the post-processing's speed
depends on what the model finds, so use a trained one); without it the shipped pretrained
``cells`` model (:mod:`livecell_kit.pretrained`).  --images: grey frames (default
``../shared/livecell-real-dev/images``, else the kit's sample), cycled to N frames and cut or
padded to 520×704.  ONNX Runtime is timed when it and tf2onnx are importable (the ``export``
extra).  The machine's load average is printed first: on a shared machine prefer the ratios
of rows measured in the same run.  Not a test: the numbers describe a machine.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = next((p / "shared" / "livecell-real-dev" / "images" for p in (ROOT.parent, ROOT.parent.parent)
                       if (p / "shared" / "livecell-real-dev" / "images").is_dir()), None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LIVECELL_KIT_WORKDIR", str(ROOT / "build" / "work"))  # as make does

import numpy as np  # noqa: E402

from livecell_kit import course, data, predict, presets  # noqa: E402
from livecell_kit.instances import split_cells, split_labels  # noqa: E402

tf, _ = course.import_tensorflow_quietly()
import keras  # noqa: E402

FRAME_SHAPE = (520, 704)
BIG_SIDE = 4000


def load_model(path: str | None):
    if path is None:
        from livecell_kit import pretrained
        return pretrained.load_pretrained(), pretrained.describe().split(" (")[0]
    path = Path(path)
    path = path / "model.keras" if path.is_dir() else path
    from livecell_kit import train
    return train.load_model(path, compile=False), str(path)


def frames(folder: Path | None, n: int) -> list[np.ndarray]:
    """n uint8 (520, 704) frames cycled from ``folder``'s images (reflect-padded or cut to size)."""
    if folder is None:
        folder = course.sample_root() / "images"
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".tif", ".tiff", ".png"))
    if not files:
        sys.exit(f"no .tif/.png images under {folder}; pass --images DIR")
    out = []
    for f in files[:n]:
        im = data.read_image(f)[:FRAME_SHAPE[0], :FRAME_SHAPE[1]]
        pad = [(0, FRAME_SHAPE[0] - im.shape[0]), (0, FRAME_SHAPE[1] - im.shape[1])]
        out.append(np.pad(im, pad, mode="reflect"))
    return [out[i % len(out)] for i in range(n)]


def compare(runs: dict, n: int, rounds: int = 3) -> dict:
    """{label: (best frames/s, CPU seconds per frame of all threads in that round)} of ``runs``
    ({label: run() processing n frames, or None}), after a warm-up each, timed round-robin so
    that a change in the machine's load hits every row alike."""
    for run in runs.values():
        if run is not None:
            run()
    best: dict = {label: None for label in runs}
    for _ in range(rounds):
        for label, run in runs.items():
            if run is not None:
                wall, cpu = _timed(run)
                if best[label] is None or n / wall > best[label][0]:
                    best[label] = (n / wall, cpu / n)
    return best


def _timed(run) -> tuple[float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - start, time.process_time() - start_cpu


def onnx_runner(model, batch_size: int):
    """A function running ONNX Runtime on (N, H, W) uint8 frames, or (None, why)."""
    try:
        import onnxruntime as ort
        from livecell_kit.export.weights import standalone_copy, write_onnx
    except ImportError as err:
        return None, f"not importable ({err.name}; pip install 'livecell-kit[export]')"
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    write_onnx(standalone_copy(model), path, presets.ExportConfig().onnx_opset)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(images):
        for i in range(0, len(images), batch_size):
            session.run(None, {name: images[i:i + batch_size, ..., None].astype(np.float32)})
    return run, f"onnxruntime {ort.__version__}"


def measure_runner(model, images: np.ndarray):
    """A function running :func:`livecell_kit.measure.measure_frames` end to end on ``images``
    written once as LIVECell-named TIFFs (files read, cells found, record, tables and growth
    curves written), into a fresh output folder each time."""
    import tifffile
    from livecell_kit.measure import measure_frames
    folder = Path(tempfile.mkdtemp(prefix="throughput-measure-"))
    (folder / "frames").mkdir()
    for i, image in enumerate(images):  # 2 wells x 4 time points x crops
        name = f"A172_Phase_{'AB'[i % 2]}1_1_{(i // 2) % 4:02d}d00h00m_{i // 8 + 1}.tif"
        tifffile.imwrite(folder / "frames" / name, image)
    runs = iter(range(10**6))

    def run():
        measure_frames(model, [folder / "frames"], folder / f"out{next(runs)}", progress=False)
    return run


BIG_FRAME_CODE = """
import sys, time
import numpy as np
sys.path.insert(0, {bench!r})
import throughput as t
def peak_mb():  # this process's own high-water mark (ru_maxrss would include the parent's at fork)
    return next(int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
model, _ = t.load_model({model!r})
image = np.tile(t.frames(t.DEFAULT_IMAGES, 1)[0], (8, 6))[:{side}, :{side}]
loaded, start = peak_mb(), time.perf_counter()
(frame,) = t.predict.stream_cells(model, [("big", image)], scores=False)
print(loaded, peak_mb(), round(time.perf_counter() - start, 1), frame.labels.max())
"""


def big_frame_rss(model_path: str | None) -> None:
    """Peak RSS of one 4000×4000 frame through stream_cells (tiled prediction and cells) in a fresh process."""
    code = BIG_FRAME_CODE.format(bench=str(ROOT / "bench"), model=model_path, side=BIG_SIDE)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    if result.returncode:
        print(f"{BIG_SIDE}x{BIG_SIDE}: failed\n{result.stderr[-2000:]}")
        return
    loaded, peak, seconds, cells = result.stdout.split()[-4:]
    print(f"{BIG_SIDE}x{BIG_SIDE} frame through stream_cells in a fresh process: {seconds} s, {cells} cells; "
          f"peak RSS {peak} MB ({loaded} MB with TensorFlow and the model loaded)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} cores "
          f"(TensorFlow {tf.__version__}, Keras {keras.__version__})")
    model, name = load_model(args.model)
    images = np.stack(frames(args.images, args.frames))
    n = len(images)
    batch = predict.default_batch_size()
    policies = "/".join(sorted({layer.dtype_policy.name for layer in model.layers}))
    print(f"model {name} (layers {policies}); {n} frames {FRAME_SHAPE[0]}x{FRAME_SHAPE[1]}, "
          f"batch {batch}")

    plain = tf.function(lambda x: model(tf.cast(x, tf.float32), training=False))
    xla = tf.function(lambda x: model(tf.cast(x, tf.float32), training=False), jit_compile=True)

    def tf_run(fn):
        return lambda: [fn(images[i:i + batch, ..., None]).numpy() for i in range(0, n, batch)]

    runner, why = onnx_runner(model, batch)
    rows = compare({"kit predict_batch": lambda: predict.predict_batch(model, images, batch_size=batch),
                    "plain tf.function": tf_run(plain), "tf.function(jit_compile=True)": tf_run(xla),
                    f"ONNX Runtime ({why})": (lambda: runner(images)) if runner else None}, n)
    best = max(r[0] for label, r in rows.items() if r and label != "kit predict_batch")
    print(f"\n{'prediction':<46}{'frames/s':>9}{'CPU s/frame':>12}{'vs best other':>15}")
    for label, r in rows.items():
        print(f"{label:<46}" + (f"{r[0]:9.2f}{r[1]:12.3f}{r[0] / best:14.0%} " if r else f"{'-':>9}"))

    outputs = predict.predict_batch(model, images, batch_size=batch)

    def serial(split):
        def run():
            for image in images:
                split(predict.predict_batch(model, image[None], batch_size=batch)[0], presets.CELL_SPLITTING)
        return run

    measure_run = measure_runner(model, images)

    def streamed(workers, scores=False):
        return lambda: sum(1 for _ in predict.stream_cells(model, enumerate(images), batch_size=batch,
                                                           workers=workers, scores=scores))
    e2e = compare({"split_cells alone": lambda: [split_cells(o, presets.CELL_SPLITTING) for o in outputs],
                   "split_labels alone (no scores)": lambda: [split_labels(o, presets.CELL_SPLITTING) for o in outputs],
                   "serial: predict then split_cells": serial(split_cells),
                   "serial: predict then split_labels": serial(split_labels),
                   "stream_cells, 1 worker, with scores": streamed(1, scores=True),
                   "stream_cells, 1 worker, no scores": streamed(1),
                   "stream_cells, 2 workers, no scores": streamed(2),
                   "measure: TIFF files -> frames.csv, wells.csv, curves": measure_run}, n)
    note = ""
    print(f"\n{'end to end (prediction + cells)':<46}{'frames/s':>9}{'CPU s/frame':>12}{note}")
    for label, (r, cpu) in e2e.items():
        print(f"{label:<46}{r:9.2f}{cpu:12.3f}")
    print(f"\npeak RSS of this process (TensorFlow, XLA and ONNX Runtime loaded together): "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if not args.skip_big:
        big_frame_rss(args.model)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
