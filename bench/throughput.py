"""Frames per second on CPU, side by side in one run: the kit's prediction against a plain
compiled tf.function and ONNX Runtime, and prediction + cells end to end, serial against
:func:`livecell_kit.predict.stream_cells`; then peak memory of one 4000×4000 frame.

    .venv/bin/python bench/throughput.py [--model MODEL] [--images DIR] [--frames N] [--skip-big]

--model: a trained ``cells`` model (model.keras or run folder; the post-processing's speed
depends on what the model finds, so use a trained one); without it an untrained ``cells``
U-Net is built and the end-to-end rows say so.  --images: grey frames (default
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
from livecell_kit.instances import split_cells  # noqa: E402

tf, _ = course.import_tensorflow_quietly()
import keras  # noqa: E402

FRAME_SHAPE = (520, 704)
BIG_SIDE = 4000


def load_model(path: str | None):
    if path is None:
        return presets_model(), "untrained cells U-Net"
    path = Path(path)
    path = path / "model.keras" if path.is_dir() else path
    from livecell_kit import train
    return train.load_model(path, compile=False), str(path)


def presets_model():
    from livecell_kit.model import build_unet
    return build_unet(presets.get_preset("cells").model)


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


def rate(run, n: int, repeats: int = 2) -> float:
    """Best frames/s of ``repeats`` timed calls of ``run()`` (which processes n frames), after a warm-up."""
    run()
    best = min(_timed(run) for _ in range(repeats))
    return n / best


def _timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


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


def big_frame_rss(model_path: str | None) -> None:
    """Peak RSS of predicting one 4000×4000 frame (and its cells) in a fresh process."""
    code = (f"import sys, resource, time; sys.argv = ['x'] + {[model_path] if model_path else []!r}\n"
            "sys.path.insert(0, %r)\n" % str(ROOT / "bench") +
            "import throughput as t, numpy as np\n"
            "m, _ = t.load_model(sys.argv[1] if len(sys.argv) > 1 else None)\n"
            f"img = np.tile(t.frames(t.DEFAULT_IMAGES, 1)[0], (8, 6))[:{BIG_SIDE}, :{BIG_SIDE}]\n"
            "mb = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
            "base = mb(); s = time.perf_counter(); out = t.predict.predict_image(m, img); p = time.perf_counter() - s\n"
            "after_predict = mb(); s = time.perf_counter(); labels, _ = t.split_cells(out, t.predict.CELL_SPLITTING)\n"
            "print(f'{base:.0f} {after_predict:.0f} {mb():.0f} {p:.1f} {time.perf_counter() - s:.1f} {labels.max()}')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    if result.returncode:
        print(f"4000x4000: failed\n{result.stderr[-2000:]}")
        return
    base, after_predict, after_cells, t_predict, t_cells, cells = result.stdout.split()[-6:]
    print(f"4000x4000 frame, fresh process: peak RSS {base} MB after loading the model, {after_predict} MB "
          f"after predict_image ({t_predict} s), {after_cells} MB after split_cells ({t_cells} s, {cells} cells)")


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
    print(f"model {name} ({model.dtype_policy.name}); {n} frames {FRAME_SHAPE[0]}x{FRAME_SHAPE[1]}, "
          f"batch {batch}")

    plain = tf.function(lambda x: model(tf.cast(x, tf.float32), training=False))
    xla = tf.function(lambda x: model(tf.cast(x, tf.float32), training=False), jit_compile=True)

    def tf_run(fn):
        return lambda: [fn(images[i:i + batch, ..., None]).numpy() for i in range(0, n, batch)]

    rows = [("kit predict_batch", rate(lambda: predict.predict_batch(model, images, batch_size=batch), n)),
            ("plain tf.function", rate(tf_run(plain), n)),
            ("tf.function(jit_compile=True)", rate(tf_run(xla), n))]
    runner, why = onnx_runner(model, batch)
    rows.append((f"ONNX Runtime ({why})", rate(lambda: runner(images), n) if runner else None))
    best = max(r for _, r in rows[1:] if r)
    print(f"\n{'prediction':<46}{'frames/s':>9}{'vs best other':>15}")
    for label, r in rows:
        print(f"{label:<46}" + (f"{r:9.2f}{r / best:14.0%} " if r else f"{'-':>9}   {why}"))

    outputs = predict.predict_batch(model, images, batch_size=batch)
    split_rate = rate(lambda: [split_cells(o, presets.CELL_SPLITTING) for o in outputs], n)

    def serial():
        for image in images:
            split_cells(predict.predict_batch(model, image[None], batch_size=batch)[0], presets.CELL_SPLITTING)

    def streamed(workers):
        return lambda: sum(1 for _ in predict.stream_cells(model, enumerate(images), batch_size=batch,
                                                           workers=workers))
    e2e = [("split_cells alone", split_rate), ("serial: predict then split_cells", rate(serial, n)),
           ("stream_cells, 1 split worker", rate(streamed(1), n)),
           ("stream_cells, 2 split workers", rate(streamed(2), n))]
    note = "" if args.model else "  (untrained model: cells unlike a trained one's)"
    print(f"\n{'end to end (prediction + cells)':<46}{'frames/s':>9}{note}")
    for label, r in e2e:
        print(f"{label:<46}{r:9.2f}")
    print(f"\npeak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if not args.skip_big:
        big_frame_rss(args.model)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
