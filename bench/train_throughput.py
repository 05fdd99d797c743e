"""Training throughput of the kit versus the seed project's way, on this machine.

Prints, for the seed preset's U-Net (depth 3, 16 filters) at one batch size:

1. training images/s at full 520×704 frames
   (a) seed style: every image and mask loaded into numpy arrays, ``model.fit(x, y)``, float32;
   (b) the kit: ``train.training_dataset`` (uint8 frames cached or streamed from disk,
       parallel decode, prefetch) with the kit's best CPU settings (XLA when it helps);
2. the input pipeline alone: images/s it delivers (full frames; quick-preset crops);
3. peak RSS of the streaming pipeline when the data set grows 4× (one subprocess per size,
   ``resource.getrusage``), at full frames and at the quick preset's crop size;
4. prediction images/s on full frames;
5. projected wall time of the seed preset (50 epochs × 1024 train + 256 val images).

Not a test: figures depend on the machine.  Default run: a few minutes on 2 cores.
Usage::

    python bench/train_throughput.py [--batch 4] [--steps 4] [--work DIR] [--seed-batch]

``--seed-batch`` uses the seed's batch of 32 (≈20 GB of activations in float32).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _rss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux: VmHWM of /proc/self/status, because getrusage's ru_maxrss survives
    exec and would report the parent's peak in a child started after big work.
    Elsewhere: resource.getrusage (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _samples(work: Path) -> tuple[Path, Path]:
    """The default sample (32 train frames) and one with 4× the images; cached in ``work``."""
    from livecell_kit import sample

    base = {"train": 4, "val": 2, "test": 2}
    big = {k: 4 * v for k, v in base.items()}
    return (sample.make_sample(work / "sample-1x", images_per_type=base),
            sample.make_sample(work / "sample-4x", images_per_type=big))


def rss_child(root: str, crop: int | None, batch: int) -> None:
    """Run one pass of the streaming training pipeline over all train images; print peak RSS."""
    from livecell_kit import train as T

    images, masks = T.split_files(root, "train")
    before = _rss_mb()
    ds = T.training_dataset(images, masks, batch, crop_size=crop, augment=crop is not None, cache=False)
    steps = max(1, len(images) // batch)
    for _ in ds.take(steps):
        pass
    print(json.dumps({"images": len(images), "rss_before_mb": before, "peak_rss_mb": _rss_mb()}))


def _measure_rss(root: Path, crop, batch, env) -> dict:
    cmd = [sys.executable, __file__, "--rss-child", str(root), "--batch", str(batch)]
    if crop:
        cmd += ["--crop", str(crop)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _fit_rate(model, n_images: int, warm: dict, timed: dict) -> float:
    """Images/s of ``model.fit(**timed)`` after a ``model.fit(**warm)`` call (tracing/compiling excluded)."""
    model.fit(epochs=1, verbose=0, **warm)
    t = time.perf_counter()
    model.fit(epochs=1, verbose=0, **timed)
    return n_images / (time.perf_counter() - t)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=4, help="batch size for every training figure")
    ap.add_argument("--seed-batch", action="store_true", help="use the seed's batch of 32 (needs ~20 GB)")
    ap.add_argument("--steps", type=int, default=4, help="timed training steps per variant")
    ap.add_argument("--work", type=Path, default=None, help="folder for the bench's samples and masks")
    ap.add_argument("--no-rss", action="store_true", help="skip the 4x-data memory measurement")
    ap.add_argument("--rss-only", action="store_true", help="only the 4x-data memory measurement")
    ap.add_argument("--rss-child", help=argparse.SUPPRESS)
    ap.add_argument("--crop", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        return rss_child(args.rss_child, args.crop, args.batch)

    batch = 32 if args.seed_batch else args.batch
    from livecell_kit import data as D

    work = args.work or D.default_workdir() / "bench"
    os.environ["LIVECELL_KIT_WORKDIR"] = str(work)  # mask caches of the bench samples live here too
    import keras
    import numpy as np
    import tensorflow as tf

    from livecell_kit import masks as M
    from livecell_kit import train as T
    from livecell_kit.model import build_unet
    from livecell_kit.presets import PRESETS

    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
          f"precision auto -> {T.choose_precision('auto')}; batch {batch}, {args.steps} timed steps")
    t = time.perf_counter()
    small, big = _samples(work)
    images, masks = T.split_files(small, "train")
    T.split_files(big, "train")  # build its mask cache outside the timed child runs
    print(f"samples ready in {time.perf_counter() - t:.0f} s: {len(images)} and "
          f"{4 * len(images)} train frames under {work}")
    if args.rss_only:
        return _rss_report(small, big, batch, PRESETS["quick"], images)
    steps, n = args.steps, args.steps * batch
    seed_cfg = PRESETS["seed"].model
    quick = PRESETS["quick"]
    res = {}

    # (a) seed style: everything in RAM as float32 arrays, fit on numpy
    keras.utils.set_random_seed(0)
    idx = [i % len(images) for i in range(n)]
    x = np.stack([D.read_image(images[i]) for i in idx])[..., None].astype(np.float32) / 255.0
    y = np.stack([(np.asarray(M.load_mask(Path(masks[i]).parent, Path(images[i]).name)) > 0) for i in idx])
    y = y[..., None].astype(np.float32)
    seed_model = build_unet(seed_cfg)
    # the seed fed [0,1] floats to a model without rescaling: bypass ours so the FLOPs match
    seed_model = keras.Model(seed_model.get_layer("rescale").output, seed_model.output)
    seed_model.compile(keras.optimizers.Adam(5e-5), loss="binary_crossentropy")
    res["a_seed_numpy"] = _fit_rate(seed_model, n,
                                    warm={"x": x[:batch], "y": y[:batch], "batch_size": batch},
                                    timed={"x": x, "y": y, "batch_size": batch})
    del x, y
    print(f"(a) seed style, numpy arrays, float32:      {res['a_seed_numpy']:.2f} images/s")

    # (b) the kit's pipeline, full frames, with and without XLA
    ds = T.training_dataset(images, masks, batch, crop_size=None, augment=False)
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = build_unet(seed_cfg)
        model.compile(keras.optimizers.Adam(5e-5), loss=T.bce, jit_compile=jit)
        key = f"b_kit_pipeline_{'xla' if jit else 'nojit'}"
        res[key] = _fit_rate(model, n, warm={"x": ds, "steps_per_epoch": 1},
                             timed={"x": ds, "steps_per_epoch": steps})
        print(f"(b) kit pipeline, full frames, jit={jit!s:5}: {res[key]:.2f} images/s")
        if jit:
            pred_model = model
    best_b = max(res["b_kit_pipeline_nojit"], res["b_kit_pipeline_xla"])
    print(f"    kit / seed style: {best_b / res['a_seed_numpy']:.2f}x")

    # input pipeline alone
    def pipe_rate(ds, k):
        it = iter(ds)
        next(it)  # warm-up: fills caches and prefetch buffers
        t = time.perf_counter()
        for _ in range(k):
            next(it)
        return k * batch / (time.perf_counter() - t)

    for name, kw in [("full frames, cached", dict(crop_size=None, cache=True)),
                     ("full frames, streamed", dict(crop_size=None, cache=False)),
                     (f"{quick.train.crop_size}px crops+augment, streamed",
                      dict(crop_size=quick.train.crop_size, augment=True, cache=False))]:
        k = f"pipeline {name}"
        res[k] = pipe_rate(T.training_dataset(images, masks, batch, **kw), 4 * len(images) // batch)
        print(f"input pipeline alone, {name}: {res[k]:.0f} images/s")

    # prediction on full frames (XLA-compiled seed model)
    frames = np.stack([D.read_image(p) for p in images[:batch]])[..., None]
    pred_model.predict(frames, batch_size=batch, verbose=0)
    t = time.perf_counter()
    reps = 3
    for _ in range(reps):
        pred_model.predict(frames, batch_size=batch, verbose=0)
    res["predict"] = reps * batch / (time.perf_counter() - t)
    print(f"prediction, seed U-Net, full frames:        {res['predict']:.2f} images/s")

    # projection of the seed preset: 50 epochs x (1024 train images + 256 val images)
    tc, dc = PRESETS["seed"].train, PRESETS["seed"].data
    for label, rate in [("seed style", res["a_seed_numpy"]), ("kit", best_b)]:
        hours = tc.epochs * (dc.train_images / rate + dc.val_images / res["predict"]) / 3600
        print(f"projected seed preset ({tc.epochs} epochs x {dc.train_images}+{dc.val_images} images), "
              f"{label}: {hours:.1f} h")

    if not args.no_rss:
        _rss_report(small, big, batch, quick, images)


def _rss_report(small, big, batch, quick, images) -> None:
    from livecell_kit import data as D
    from livecell_kit import train as T

    if True:
        env = {**os.environ}
        for crop in (None, quick.train.crop_size):
            r1 = _measure_rss(small, crop, batch, env)
            r4 = _measure_rss(big, crop, batch, env)
            label = "full frames" if crop is None else f"{crop}px crops"
            print(f"streaming pipeline peak RSS, {label}: {r1['images']} images {r1['peak_rss_mb']:.0f} MB "
                  f"(+{r1['peak_rss_mb'] - r1['rss_before_mb']:.0f} over imports+annotations), "
                  f"{r4['images']} images {r4['peak_rss_mb']:.0f} MB "
                  f"(+{r4['peak_rss_mb'] - r4['rss_before_mb']:.0f}); ratio x{r4['peak_rss_mb'] / r1['peak_rss_mb']:.2f}")
        print(f"(the auto cache keeps decoded frames in RAM only below "
              f"{T.CACHE_LIMIT_BYTES / 2**20:.0f} MB: {len(images)} frames take "
              f"{len(images) * D.IMAGE_HEIGHT * D.IMAGE_WIDTH * 2 / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
