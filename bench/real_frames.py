"""Real-data check: the kit on real LIVECell frames — reading, masks, and a model's pixel metrics.

    .venv/bin/python bench/real_frames.py [--data DIR] [--model PATH] [--figure PNG] [--json FILE]

DIR is a LIVECell data root (``images/``, ``annotations/``); default ``../shared/livecell-real-dev``
next to the repository when it exists.  What it measures:

1. reading: every ``DIR/images/**/*.tif|tiff|png`` through ``data.read_image`` — count, shapes,
   dtypes, time per frame, and each failure (printed with its error; the run goes on);
2. masks: ``masks.semantic_mask`` for every image record of the ``livecell_coco_{train,val,test}.json``
   files present (cells, fraction of pixels inside cells);
3. a model — ``--model`` (model.keras or run folder), else the ``quick`` preset trained on the kit's
   synthetic sample (trained once, ~2 min on 2 cores, reused from the work folder, default
   ``build/work`` as under make) — predicts each annotated frame; Dice, IoU, pixel accuracy,
   precision and recall are pooled over all annotated frames (``metrics.MetricAccumulator``),
   per cell type and per frame, at threshold 0.5 and at the best-IoU threshold chosen on the
   *sample's* val split.  Nothing is tuned on the real frames.

Writes a figure (image | truth outlines | prediction overlay per annotated frame; ``--figure``, default
``build/bench/real_frames.png``) and all figures as JSON (``--json``, default ``build/bench/real_frames.json``).
Not a test: the numbers describe a model and a data set.  Exit status 1 when any frame
could not be read (or its truth could not be built), 2 when ``--data`` holds no ``images/``;
without ``--data`` and without the default root it prints "skipped" and exits 0 (``make bench``).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "livecell-real-dev"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("LIVECELL_KIT_WORKDIR", str(ROOT / "build" / "work"))  # as make does

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from livecell_kit import atomic, course, data, evaluate, figures, masks  # noqa: E402
from livecell_kit.masks import overlay  # noqa: E402
from livecell_kit.evaluate import metrics  # noqa: E402

course.import_tensorflow_quietly()  # TensorFlow's C++ start-up chatter silenced before train imports it
from livecell_kit import predict, train  # noqa: E402

SUFFIXES = (".tif", ".tiff", ".png")
METRICS = ("dice", "iou", "pixel_accuracy", "precision", "recall")


def rss_mb() -> float:
    """Peak resident memory of this process in MB (VmHWM on Linux, else getrusage)."""
    with contextlib.suppress(OSError):
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def read_all(root: Path) -> tuple[list[dict], list[dict]]:
    """Read every image file under ``root/images``; returns (frames read, failures)."""
    paths = sorted(p for p in (root / "images").rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    ok, failed = [], []
    for p in paths:
        t = time.perf_counter()
        try:
            a = data.read_image(p)
        except Exception as exc:  # report and go on: one bad file must not hide the others
            failed.append({"file": str(p), "error": f"{type(exc).__name__}: {exc}"})
            print(f"  READ FAILED {p}: {type(exc).__name__}: {exc}")
            continue
        ok.append({"file": str(p), "shape": list(a.shape), "dtype": str(a.dtype),
                   "seconds": time.perf_counter() - t})
    return ok, failed


def annotated_records(root: Path) -> list[tuple]:
    """(split, Split, image record) for every image record of the annotation JSONs present."""
    out = []
    for name in data.SPLITS:
        if data.annotation_path(root, name).is_file():
            split = data.load_split(root, name)
            out += [(name, split, rec) for rec in split.images]
    return out


def sample_model(model_arg):
    """(model, description, sample root); the quick preset on the sample unless ``model_arg``."""
    sample_root = course.sample_root()  # the sample, not $LIVECELL_KIT_DATA_ROOT
    if model_arg:
        print(f"model: {model_arg}")
        return train.load_model(model_arg, compile=False), str(model_arg), sample_root
    t = time.perf_counter()
    try:
        run = course.quick_run(sample_root)
    except ValueError as exc:  # a run of older preset settings sits in the work folder
        raise SystemExit(f"{exc}\n-> delete that run folder to retrain the quick preset, or pass --model PATH")
    print(f"model: quick preset on the sample, run folder {run.out_dir} "
          f"(ready in {time.perf_counter() - t:.0f} s)")
    return run.model, f"quick preset, {run.out_dir}", sample_root


def sample_threshold(model, sample_root: Path) -> tuple[float, dict]:
    """Best-IoU threshold on the sample's val split (ThresholdSweep), and the sweep's figures there."""
    sweep = evaluate.sweep_split(model, sample_root, "val")
    best = sweep.best("iou")
    tab = sweep.table()
    i = tab["threshold"].index(best)
    n_images = len(data.load_split(sample_root, "val").images)
    return best, {"threshold": best, "n_images": n_images, **{k: tab[k][i] for k in METRICS}}


def score(model, records, thresholds, keep: int):
    """Per-frame metrics and pooled accumulators (all / per type) at each threshold; failures."""
    frames, failures, shown = [], [], []
    pooled = {t: metrics.MetricAccumulator(t) for t in thresholds}
    per_type: dict = {t: {} for t in thresholds}
    for split_name, split, rec in records:
        path = split.image_path(rec)
        anns = split.annotations_for(rec["id"])
        try:
            image = data.read_image(path)
            if image.shape != (int(rec["height"]), int(rec["width"])):
                raise ValueError(f"image is {image.shape}, its record says {rec['height']} x {rec['width']}")
            truth = masks.semantic_mask(anns, *image.shape, source=split.annotation_file)
        except Exception as exc:
            failures.append({"file": str(path), "error": f"{type(exc).__name__}: {exc}"})
            print(f"  FRAME FAILED {path}: {type(exc).__name__}: {exc}")
            continue
        t0 = time.perf_counter()
        prob = predict.predict_image(model, image)
        seconds = time.perf_counter() - t0
        ctype = split.cell_type(rec)
        row = {"file_name": rec["file_name"], "split": split_name, "image_id": rec["id"], "cell_type": ctype,
               "cells": len(anns), "truth_cover": float(truth.mean()), "predict_seconds": seconds}
        for t in thresholds:
            one = metrics.MetricAccumulator(t).add(prob, truth)
            pooled[t].merge(one)
            per_type[t].setdefault(ctype, metrics.MetricAccumulator(t)).merge(one)
            row[f"t={t:g}"] = {"pred_cover": float((prob >= t).mean()), **one.result()}
        frames.append(row)
        if len(shown) < keep:
            shown.append((row, image, anns, prob))
    return frames, failures, pooled, per_type, shown


def print_table(thr: float, frames, pooled, per_type) -> None:
    head = (f"{'frame / group':38s} {'cells':>5s} {'truth%':>6s} {'pred%':>6s} "
            + " ".join(f"{m[:9]:>9s}" for m in METRICS))
    print(f"\n--- threshold {thr:g} ---\n{head}\n{'-' * len(head)}")
    key = f"t={thr:g}"
    for f in frames:
        r = f[key]
        print(f"{f['file_name'][:38]:38s} {f['cells']:5d} {100 * f['truth_cover']:6.1f} "
              f"{100 * r['pred_cover']:6.1f} " + " ".join(f"{r[m]:9.4f}" for m in METRICS))
    groups = [(f"cell type {c}", a, [f for f in frames if f["cell_type"] == c]) for c, a in sorted(per_type.items())]
    for name, acc, fs in groups + [(f"ALL ({pooled.n_images} frames, pooled)", pooled, frames)]:
        r = acc.result()
        cover_t = (acc.tp + acc.fn) / max(acc.n_pixels, 1)
        cover_p = (acc.tp + acc.fp) / max(acc.n_pixels, 1)
        print(f"{name[:38]:38s} {sum(f['cells'] for f in fs):5d} {100 * cover_t:6.1f} {100 * cover_p:6.1f} "
              + " ".join(f"{r[m]:9.4f}" for m in METRICS))


def save_figure(path: Path, shown, thr: float) -> None:
    fig, axes = plt.subplots(len(shown), 3, figsize=(15, 3.6 * len(shown)), squeeze=False)
    for ax_row, (row, image, anns, prob) in zip(axes, shown):
        r = row[f"t={thr:g}"]
        ax_row[0].imshow(overlay.grey_rgb(image))
        ax_row[0].set_title(f"{row['file_name']} ({row['cell_type']})")
        ax_row[1].imshow(overlay.grey_rgb(image))
        figures.draw_polygons(ax_row[1], anns, linewidth=0.6)
        ax_row[1].set_title(f"truth: {row['cells']} cells, {100 * row['truth_cover']:.0f}% of pixels")
        ax_row[2].imshow(overlay.overlay_image(image, prob >= thr))
        figures.draw_polygons(ax_row[2], anns, linewidth=0.4)
        ax_row[2].set_title(f"prediction (t={thr:.2f}): {100 * r['pred_cover']:.0f}% px, "
                            f"Dice {r['dice']:.3f}, IoU {r['iou']:.3f}")
        for ax in ax_row:  # outlines reach x = width: keep the image's extent
            ax.set(xlim=(-0.5, image.shape[1] - 0.5), ylim=(image.shape[0] - 0.5, -0.5))
            ax.axis("off")
    fig.tight_layout()
    with atomic.atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help=f"LIVECell data root (default {DEFAULT_DATA})")
    ap.add_argument("--model", type=Path, default=None, help="model.keras or run folder (default: quick on the sample)")
    ap.add_argument("--figure", type=Path, default=ROOT / "build" / "bench" / "real_frames.png")
    ap.add_argument("--json", type=Path, default=ROOT / "build" / "bench" / "real_frames.json")
    ap.add_argument("--figure-frames", type=int, default=8, help="annotated frames shown in the figure")
    args = ap.parse_args(argv)
    if args.data is None and not DEFAULT_DATA.is_dir():  # e.g. `make bench` on a machine without it
        print(f"skipped: no real frames at {DEFAULT_DATA}; pass --data DIR (a LIVECell data root)")
        return 0
    root = args.data or DEFAULT_DATA
    if not (root / "images").is_dir():
        print(f"no images/ folder under {root}: not a LIVECell data root")
        return 2
    print(f"data root: {root}")
    t = time.perf_counter()
    ok, read_failed = read_all(root)
    n = len(ok) + len(read_failed)
    secs = [f["seconds"] for f in ok]
    print(f"read_image: {len(ok)}/{n} frames read in {time.perf_counter() - t:.2f} s"
          + (f" ({1e3 * np.mean(secs):.1f} ms/frame mean, {1e3 * max(secs):.1f} max)" if secs else "")
          + f"; {len(read_failed)} failed")
    kinds = sorted({(tuple(f["shape"]), f["dtype"]) for f in ok})
    for shape, dtype in kinds:
        print(f"  {sum(tuple(f['shape']) == shape and f['dtype'] == dtype for f in ok):4d} x {shape} {dtype}")
    records = annotated_records(root)
    print(f"annotated frames: {len(records)} image records in "
          f"{sorted({s for s, _, _ in records}) or 'no annotation JSON'}")
    report = {"data_root": str(root), "read": {"n_files": n, "ok": ok, "failed": read_failed}}
    frame_failed: list = []
    if records:
        model, model_desc, sample_root = sample_model(args.model)
        thr, sample_val = sample_threshold(model, sample_root)
        print(f"threshold chosen on the sample's val split ({sample_val['n_images']} frames): {thr:g} "
              f"(sample val there: Dice {sample_val['dice']:.4f}, IoU {sample_val['iou']:.4f})")
        thresholds = sorted({0.5, thr})
        frames, frame_failed, pooled, per_type, shown = score(model, records, thresholds, args.figure_frames)
        for t_ in thresholds:
            print_table(t_, frames, pooled[t_], per_type[t_])
        if frames:
            print(f"\npredict_image: {1e3 * np.mean([f['predict_seconds'] for f in frames]):.0f} ms/frame")
        report.update(model=model_desc, sample_val=sample_val, thresholds=thresholds, frames=frames,
                      frame_failures=frame_failed,
                      pooled={f"t={t_:g}": {"n_images": pooled[t_].n_images, **pooled[t_].result()}
                              for t_ in thresholds},
                      per_cell_type={f"t={t_:g}": {c: {"n_images": a.n_images, **a.result()}
                                                   for c, a in sorted(per_type[t_].items())}
                                     for t_ in thresholds})
        if shown:
            save_figure(args.figure, shown, thr)
            print(f"figure: {args.figure}")
    report["peak_rss_mb"] = rss_mb()
    atomic.write_json(args.json, report)
    print(f"json: {args.json}\npeak RSS: {report['peak_rss_mb']:.0f} MB")
    bad = len(read_failed) + len(frame_failed)
    if bad:
        print(f"FAILED: {len(read_failed)} unreadable file(s), {len(frame_failed)} annotated frame(s) not scored")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
