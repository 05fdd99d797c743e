"""Benchmark: the kit's masks beside the plain pycocotools way, side by side, and the mask cache.

    python bench/masks.py [--root DATA_ROOT] [--split train] [--repeat 3] [--weight-frames 5]

Without ``--root`` it uses (and makes on first use, a few seconds) the bundled sample
in the work folder (``LIVECELL_KIT_WORKDIR``, else ``~/.cache/livecell-kit``).  Real
frames: ``--root /work/shared/livecell-real-dev --split val`` (or a full LIVECell root).

Each way runs in its own child process over every image of the split (best of
``--repeat``), which reports its time and its peak resident memory (VmHWM, Linux):

* semantic — pycocotools per cell (``COCO.annToMask``'s way: ``frPyObjects`` →
  ``decode`` to a full H×W image → OR) vs the kit's ``masks.semantic_mask`` (one
  ``frPyObjects`` for all polygons, ``merge`` on the runs, one ``decode``); target ≥ 5×;
* instance — pycocotools per cell (``area`` to order the cells, ``decode`` each,
  paint it inside its ``toBbox`` box, biggest first so smaller cells win overlaps)
  vs the kit's ``masks.instance_labels`` (reads the runs of all RLEs at once, no decode);
* weight map (first ``--weight-frames`` images) — the U-Net paper's formula by brute
  force (one full-image distance transform per cell) vs the kit's
  ``masks.border_weight_map`` (a distance transform per cell inside its window);
* cells (no reference way) — ``masks.cell_labels`` (non-overlapping labels: overlaps to
  the nearest centre, duplicates dropped; its foreground is checked against the semantic
  mask) and ``masks.distance_targets`` of those labels (the instance U-Net's 3 channels,
  a distance transform per cell inside its box + 1 px), on every image.

Masks must be identical, weight maps equal within float tolerance (both checked).
Then ``build_mask_cache`` is run into a fresh folder (render + write PNGs), once
more (served from cache), and every mask is loaded back.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from livecell_kit import data, masks, sample


def pycocotools_semantic(anns, height, width):
    """Reference: decode each annotation to a full image and OR them."""
    out = np.zeros((height, width), np.uint8)
    for ann in anns:
        seg = ann["segmentation"]
        if isinstance(seg, list):
            rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
        elif isinstance(seg["counts"], list):
            rle = mask_utils.frPyObjects(seg, height, width)
        else:
            rle = seg
        out |= mask_utils.decode(rle)
    return out


def pycocotools_instance_labels(anns, height, width):
    """Reference: the kit's label rule with pycocotools calls only, one decode per cell."""
    rles = masks.annotation_rles(anns, height, width)
    out = np.zeros((height, width), np.int32)
    if not rles:
        return out
    # pycocotools 2.0.11 + numpy 2: area() of more than 255 RLEs at once overflows a uint8.
    areas = np.concatenate([mask_utils.area(rles[i:i + 255]) for i in range(0, len(rles), 255)])
    boxes = mask_utils.toBbox(rles)
    n = len(rles)
    for i in np.lexsort((-np.arange(n), -areas.astype(np.int64))):  # biggest first, then later first
        if areas[i] == 0:
            continue
        x, y, w, h = (int(v) for v in boxes[i])
        window = mask_utils.decode(rles[i])[y:y + h, x:x + w].astype(bool)
        out[y:y + h, x:x + w][window] = i + 1
    return out


def brute_force_weights(labels, w0=10.0, sigma=5.0):
    """The paper's formula with no cutoff: a full-image distance transform for every cell."""
    d1 = np.full(labels.shape, np.inf)
    d2 = np.full(labels.shape, np.inf)
    for k in range(1, int(labels.max(initial=0)) + 1):
        d = ndimage.distance_transform_edt(labels != k)
        np.minimum(d2, np.maximum(d1, d), out=d2)
        np.minimum(d1, d, out=d1)
    weights = np.ones(labels.shape, np.float32)
    gap = (labels == 0) & np.isfinite(d2)
    weights[gap] += (w0 * np.exp(-(d1[gap] + d2[gap]) ** 2 / (2 * sigma ** 2))).astype(np.float32)
    return weights


#: name → (what it computes, function of one job, or of an instance label image for weights)
WAYS = {
    "semantic-pycocotools": ("semantic  pycocotools: decode each cell, OR", pycocotools_semantic),
    "semantic-kit": ("semantic  kit: merge the RLEs, decode once", masks.semantic_mask),
    "instance-pycocotools": ("instance  pycocotools: decode each cell, paint", pycocotools_instance_labels),
    "instance-kit": ("instance  kit: read the runs, no decode", masks.instance_labels),
    "weights-brute": ("weights   paper's formula, full-image EDT per cell", brute_force_weights),
    "weights-kit": ("weights   kit: EDT per cell in its window", masks.border_weight_map),
    "cells-kit": ("cells     kit: non-overlapping labels", masks.cell_labels),
    "targets-kit": ("targets   kit: 3 distance channels of the cells", masks.distance_targets),
}


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB (VmHWM; NaN where /proc is missing)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return float("nan")
    return next((int(line.split()[1]) / 1024 for line in status.splitlines()
                 if line.startswith("VmHWM:")), float("nan"))


def jobs_of(split, limit=None):
    records = split.images[:limit]
    return [(split.annotations_for(r["id"]), int(r["height"]), int(r["width"])) for r in records]


def run_child(args) -> int:
    """Time one way over the split; save its results to ``args.out``; print a JSON report."""
    split = data.load_split(args.root, args.split)
    weights = args.child.startswith("weights")
    jobs = jobs_of(split, args.weight_frames if weights else None)
    inputs = ([(masks.instance_labels(*job),) for job in jobs] if weights else
              [(masks.cell_labels(*job),) for job in jobs] if args.child == "targets-kit" else jobs)
    fn = WAYS[args.child][1]
    rss_before = peak_rss_mib()
    best, slowest, results = float("inf"), 0.0, []
    for _ in range(1 if args.child == "weights-brute" else args.repeat):
        results, times = [], []
        for x in inputs:
            t = time.perf_counter()
            results.append(fn(*x))
            times.append(time.perf_counter() - t)
        if sum(times) < best:
            best, slowest = sum(times), max(times)
    np.savez(args.out, *results)
    print(json.dumps({"seconds": best, "slowest": slowest, "images": len(jobs),
                      "cells": sum(len(a) for a, _, _ in jobs),
                      "rss_before_mib": rss_before, "peak_rss_mib": peak_rss_mib()}))
    return 0


def measure(way, root, args, out) -> dict:
    cmd = [sys.executable, __file__, "--child", way, "--root", str(root), "--split", args.split,
           "--repeat", str(args.repeat), "--weight-frames", str(args.weight_frames), "--out", str(out)]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    n, s = report["images"], report["seconds"]
    print(f"{WAYS[way][0]:50s} {1e3 * s / n:8.1f} {1e3 * report['slowest']:8.1f} "
          f"{report['peak_rss_mib']:5.0f} (+{report['peak_rss_mib'] - report['rss_before_mib']:.0f})")
    with np.load(out) as saved:
        report["results"] = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    return report


def compare(name, a, b, exact=True) -> bool:
    """Print whether two ways agree; returns the verdict."""
    speed_up = a["seconds"] / b["seconds"]
    if exact:
        same = all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(a["results"], b["results"]))
        print(f"  {name}: identical: {same}; kit {speed_up:.1f}x faster")
        return same
    diff = max(float(np.abs(x - y).max()) for x, y in zip(a["results"], b["results"]))
    ok = diff < 1e-4
    print(f"  {name}: max |difference| {diff:.2g} (tolerance 1e-4): {ok}; kit {speed_up:.1f}x faster "
          f"on {a['images']} images, {a['cells']} cells")
    return ok


def cache_round_trip(split, semantic_results) -> bool:
    n = len(split.images)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        cache = masks.build_mask_cache(split, kind="semantic", cache_root=tmp, progress=False)
        t_build = time.perf_counter() - t
        t = time.perf_counter()
        again = masks.build_mask_cache(split, kind="semantic", cache_root=tmp, progress=False)
        t_cached = time.perf_counter() - t
        t = time.perf_counter()
        loaded = [masks.load_mask(cache, r["file_name"]) for r in split.images]
        t_load = time.perf_counter() - t
        ok = again == cache and all(np.array_equal(a, b) for a, b in zip(loaded, semantic_results))
    print(f"build_mask_cache, first run:   {t_build:8.3f} s  ({n / t_build:.1f} images/s, PNGs written)")
    print(f"build_mask_cache, second run:  {t_cached * 1e3:8.3f} ms (served from cache)")
    print(f"load_mask, all images:         {t_load:8.3f} s  ({n / t_load:.1f} images/s); "
          f"match computed: {ok}")
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None, help="data root (default: the sample)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--repeat", type=int, default=3, help="timing runs; the best is reported")
    ap.add_argument("--weight-frames", type=int, default=5, help="images for the weight-map comparison")
    ap.add_argument("--child", choices=sorted(WAYS), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return run_child(args)

    root = args.root or sample.make_sample(data.default_workdir() / "sample-seed0", seed=0)
    split = data.load_split(root, args.split)
    cells = split.cell_counts().tolist()
    print(f"data: {root} split {args.split!r}: {len(cells)} images, {sum(cells)} cells "
          f"({np.mean(cells):.0f} per image, at most {max(cells)})")
    print(f"{'way':50s} {'ms/image':>8s} {'slowest':>8s}  peak RSS MiB (+ in the timed runs)")
    with tempfile.TemporaryDirectory() as tmp:
        r = {way: measure(way, root, args, Path(tmp) / f"{way}.npz") for way in WAYS}
    ok = [compare("semantic", r["semantic-pycocotools"], r["semantic-kit"]),
          compare("instance", r["instance-pycocotools"], r["instance-kit"]),
          compare("weights", r["weights-brute"], r["weights-kit"], exact=False)]
    same_foreground = all(np.array_equal(c > 0, m > 0) and np.array_equal(t[..., 0] > 0, m > 0)
                          for c, t, m in zip(r["cells-kit"]["results"], r["targets-kit"]["results"],
                                             r["semantic-kit"]["results"]))
    print(f"  cells: foreground of labels and targets equals the semantic mask: {same_foreground}; "
          f"labels + targets {1e3 * (r['cells-kit']['seconds'] + r['targets-kit']['seconds']) / len(cells):.0f} "
          f"ms per image on average")
    ok.append(same_foreground)
    ratio = r["semantic-pycocotools"]["seconds"] / r["semantic-kit"]["seconds"]
    print(f"  semantic speed-up target >= 5x: {'met' if ratio >= 5 else 'NOT met'}")
    ok.append(cache_round_trip(split, r["semantic-kit"]["results"]))
    return 0 if all(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
