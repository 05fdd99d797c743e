"""Benchmark: semantic masks of a split, the naive way vs the kit's way, and the mask cache.

    python bench/masks.py [--root DATA_ROOT] [--split train] [--repeat 3]

Without ``--root`` it uses (and makes on first use, a few seconds) the bundled sample
in the work folder (``LIVECELL_KIT_WORKDIR``, else ``~/.cache/livecell-kit``).

* naive — what most COCO code does (``COCO.annToMask``): per annotation
  ``frPyObjects`` → ``decode`` to a full H×W image → OR into the mask;
* kit — ``masks.semantic_mask``: one ``frPyObjects`` for all polygons of the
  image, ``merge`` on the runs, one ``decode``.

Both must give pixel-identical masks (checked).  Then ``build_mask_cache`` is run
into a fresh folder (build: render + write PNGs) and once more (served from cache).
Target: kit ≥ 5× naive images/s.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from livecell_kit import data, masks


def naive_semantic(anns, height, width):
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


def timed(fn, jobs, repeat):
    """Best-of-``repeat`` seconds for running ``fn`` on every job, and the last results."""
    best, results = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        results = [fn(anns, h, w) for anns, h, w in jobs]
        best = min(best, time.perf_counter() - t)
    return best, results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None, help="data root (default: the sample)")
    ap.add_argument("--split", default="train")
    ap.add_argument("--repeat", type=int, default=3, help="timing runs; the best is reported")
    args = ap.parse_args(argv)

    root = args.root
    if root is None:
        from livecell_kit import sample

        root = sample.make_sample(data.default_workdir() / "sample-seed0", seed=0)
    split = data.load_split(root, args.split)
    jobs = [(split.annotations_for(r["id"]), int(r["height"]), int(r["width"])) for r in split.images]
    cells = sum(len(a) for a, _, _ in jobs)
    print(f"data: {root} split {args.split!r}: {len(jobs)} images, {cells} cells "
          f"({cells / max(len(jobs), 1):.0f} per image)")

    t_naive, naive = timed(naive_semantic, jobs, args.repeat)
    t_kit, kit = timed(masks.semantic_mask, jobs, args.repeat)
    same = all(np.array_equal(a, b) for a, b in zip(naive, kit))
    n = len(jobs)
    naive_ips, kit_ips = n / t_naive, n / t_kit
    ratio = kit_ips / naive_ips
    print(f"naive  (decode each cell, OR): {naive_ips:8.1f} images/s  ({1e3 * t_naive / n:6.2f} ms/image)")
    print(f"kit    (merge RLEs, decode 1): {kit_ips:8.1f} images/s  ({1e3 * t_kit / n:6.2f} ms/image)")
    print(f"speed-up: {ratio:.1f}x  (target >= 5x: {'met' if ratio >= 5 else 'NOT met'})")
    print(f"pixel-identical: {same}")

    t_inst, _ = timed(masks.instance_labels, jobs, 1)
    print(f"instance labels:               {n / t_inst:8.1f} images/s  ({1e3 * t_inst / n:6.2f} ms/image)")

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
        cache_ok = again == cache and all(np.array_equal(a, b) for a, b in zip(loaded, kit))
    print(f"build_mask_cache, first run:   {t_build:8.3f} s  ({n / t_build:.1f} images/s, PNGs written)")
    print(f"build_mask_cache, second run:  {t_cached * 1e3:8.3f} ms (served from cache)")
    print(f"load_mask, all images:         {t_load:8.3f} s  ({n / t_load:.1f} images/s); "
          f"match computed: {cache_ok}")
    return 0 if same and cache_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
