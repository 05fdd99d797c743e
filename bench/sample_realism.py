"""Real LIVECell frames beside the kit's synthetic sample: intensities, noise, texture, cells.

    python bench/sample_realism.py [--data DIR] [--sample DIR] [--seed 0] [--json FILE]

DIR is a LIVECell data root (default ``../shared/livecell-real-dev`` next to the repository:
37 real frames of all 8 types, 5 of them annotated).  ``--sample`` is a folder for the sample
(default: a fresh temporary one, drawn now and timed).  Per cell type, real beside sample,
all numbers in grey levels (0..255) or pixels, each the median over the type's frames:

* level: background level (median grey outside the dilated cells; on unannotated frames the
  frame's median), the frame's std and its intensity percentiles p1 / p50 / p99;
* noise: ``hf`` = std of (frame - its 1.5 px Gaussian blur) in the background (camera noise and
  fine texture), ``ac1x`` / ``ac1y`` = its lag-1 autocorrelation along rows / columns (0 = white),
  ``rows`` / ``cols`` = std of the row-mean / column-mean profile after removing its slow trend
  (horizontal banding makes ``rows`` > ``cols``);
* texture: local std in 5×5 windows, median and 90th percentile over the frame
  (and inside cells / in the background where annotated);
* cells (annotated frames only): coverage (share of pixels in cells), cell area p10 / p50 / p90,
  mean grey inside cells minus background (``body``), the brightest ring mean just outside the
  outlines minus background (``halo``, 1-3 px out) and the darkest ring just inside (``rim``);
* shared borders (annotated frames only): ``touch`` = share of cells within 2 px of another cell,
  ``gap`` = share of the border band that is background between the two outlines (not cell),
  ``seam`` = mean grey of the band (the 2 px where two cells meet, or the gap between them)
  minus the cells' interior 3-5 px from it, ``seam_tex`` = median 3×3 local std in the band
  over that in the interior 3-5 px away (> 1: the seam is a visible line), and the profile
  of grey minus background by distance to the shared border (0 = the band; only pixels that
  are nearer to it than to a cell-background outline).

Unannotated real frames contribute the frame-level figures only.  The sample's cell figures come
from its own annotations.  Not a test: it describes two data sets; nothing is copied from one into
the other.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from livecell_kit import atomic, data, masks, sample

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "livecell-real-dev"
SUFFIXES = (".tif", ".tiff", ".png")
RING_PX = 6  # signed distances -RING_PX..RING_PX around an outline are profiled
SEAM_INTERIOR_PX = (3, 5)  # a seam is compared with the cells' grey this far from it


def frame_stats(img: np.ndarray, labels: np.ndarray | None) -> dict:
    """Frame-level figures of one uint8 (H, W) frame; ``labels`` int (H, W) cells when annotated."""
    f = img.astype(np.float32)
    cells = None if labels is None else labels > 0
    if cells is not None:
        background = ~ndimage.binary_dilation(cells, iterations=8)
    else:  # no outlines: the flattest half of the frame stands in for the background
        background = _local_std(f) <= np.median(_local_std(f))
    out = {"bg": float(np.median(f[background])) if cells is not None else float(np.median(f))}
    out["std"] = float(f.std())
    out.update({f"p{q}": float(v) for q, v in zip((1, 50, 99), np.percentile(f, (1, 50, 99)))})
    hf = f - ndimage.gaussian_filter(f, 1.5)
    out["hf"] = float(hf[background].std())
    inner = background[1:, 1:] & background[:-1, 1:] & background[1:, :-1]
    a, right, down = hf[1:, 1:][inner], hf[1:, :-1][inner], hf[:-1, 1:][inner]
    out["ac1x"] = float(np.corrcoef(a, right)[0, 1])
    out["ac1y"] = float(np.corrcoef(a, down)[0, 1])
    for name, axis in (("rows", 1), ("cols", 0)):
        profile = np.median(f, axis=axis)  # median: cells do not dominate the profile
        out[name] = float((profile - ndimage.gaussian_filter1d(profile, 15, mode="nearest")).std())
    local = _local_std(f)
    out["tex50"], out["tex90"] = (float(v) for v in np.percentile(local, (50, 90)))
    if cells is not None:
        out["tex_in"] = float(np.median(local[cells])) if cells.any() else np.nan
        out["tex_bg"] = float(np.median(local[background]))
        out.update(_outline_profile(f, cells, out["bg"]))
        out.update(_seam_profile(f, labels, out["bg"]))
        out["cover"] = float(cells.mean())
    return out


def _local_std(f: np.ndarray, size: int = 5) -> np.ndarray:
    mean = ndimage.uniform_filter(f, size)
    return np.sqrt(np.maximum(ndimage.uniform_filter(f * f, size) - mean * mean, 0.0))


def _outline_profile(f: np.ndarray, cells: np.ndarray, bg: float) -> dict:
    """Mean grey by signed distance to the cells' outlines (inside < 0), relative to ``bg``."""
    inside = ndimage.distance_transform_edt(cells)
    outside = ndimage.distance_transform_edt(~cells)
    signed = np.where(cells, -np.ceil(inside), np.ceil(outside)).astype(int)
    prof = {d: float(f[signed == d].mean()) - bg for d in range(-RING_PX, RING_PX + 1)
            if d != 0 and np.any(signed == d)}
    return {"body": float(f[cells].mean()) - bg if cells.any() else np.nan,
            "halo": max(prof.get(d, np.nan) for d in (1, 2, 3)),
            "rim": min(prof.get(d, np.nan) for d in (-1, -2, -3)),
            "profile": prof}


def _seam_profile(f: np.ndarray, labels: np.ndarray, bg: float) -> dict:
    """Figures of the borders shared by touching cells (see the module docstring)."""
    band = masks.touching_border_mask(labels, 2).astype(bool)
    cells = labels > 0
    n_cells = np.unique(labels[cells]).size
    out = {"touch": np.unique(labels[band & cells]).size / n_cells if n_cells else np.nan,
           "gap": float((band & ~cells).sum() / band.sum()) if band.any() else np.nan,
           "seam": np.nan, "seam_tex": np.nan, "seam_profile": {}}
    if not band.any():
        return out
    # a cell pixel next to background that is not a gap between two cells: an outline on background
    open_bg = ~cells & ~band
    outline = cells & (ndimage.binary_dilation(open_bg) | ~ndimage.binary_erosion(np.ones_like(cells)))
    to_seam = np.ceil(ndimage.distance_transform_edt(~band)).astype(int)
    to_outline = ndimage.distance_transform_edt(~outline)
    near = band | (cells & (to_seam < to_outline))
    prof = {d: float(f[near & (to_seam == d)].mean()) - bg for d in range(RING_PX + 1)
            if np.any(near & (to_seam == d))}
    lo, hi = SEAM_INTERIOR_PX
    interior = near & ~band & (to_seam >= lo) & (to_seam <= hi)
    if interior.any():
        local = _local_std(f, 3)
        out["seam"] = float(f[band].mean() - f[interior].mean())
        out["seam_tex"] = float(np.median(local[band]) / max(np.median(local[interior]), 1e-6))
    out["seam_profile"] = prof
    return out


def collect(root: Path) -> list[dict]:
    """Per frame under ``root/images``: its cell type, frame figures and (when annotated) cell areas."""
    truth: dict[str, tuple] = {}
    for split_name in data.available_splits(root):
        split = data.load_split(root, split_name)
        for rec in split.images:
            truth[rec["file_name"]] = (split, rec)
    rows = []
    for path in sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in SUFFIXES):
        img = data.read_image(path)
        labels, areas = None, []
        if path.name in truth:
            split, rec = truth[path.name]
            anns = split.annotations_for(rec["id"])
            labels = masks.instance_labels(anns, *img.shape, source=split.annotation_file)
            areas = [float(a["area"]) for a in anns]
        rows.append({"file": path.name, "type": data.cell_type_of(path.name), "annotated": labels is not None,
                     "areas": areas, **frame_stats(img, labels)})
    return rows


COLUMNS = ("bg", "std", "p1", "p50", "p99", "hf", "ac1x", "ac1y", "rows", "cols", "tex50", "tex90",
           "tex_in", "tex_bg", "cover", "body", "halo", "rim", "touch", "gap", "seam", "seam_tex")


def summarise(rows: list[dict]) -> dict:
    """Per cell type: frames, annotated frames, medians of each column, cell-area percentiles."""
    out = {}
    for t in data.CELL_TYPES:
        rs = [r for r in rows if r["type"] == t]
        if not rs:
            continue
        s = {"frames": len(rs), "annotated": sum(r["annotated"] for r in rs)}
        for c in COLUMNS:
            vals = [r[c] for r in rs if c in r and np.isfinite(r[c])]
            s[c] = float(np.median(vals)) if vals else None
        covers = [r["cover"] for r in rs if "cover" in r]
        s["cover_range"] = [float(min(covers)), float(max(covers))] if covers else None
        areas = [a for r in rs for a in r["areas"]]
        s["area_p10"], s["area_p50"], s["area_p90"] = (
            (float(v) for v in np.percentile(areas, (10, 50, 90))) if areas else (None,) * 3)
        out[t] = s
    return out


def print_side_by_side(real: dict, synth: dict) -> None:
    cols = ("frames", "annotated") + COLUMNS + ("area_p10", "area_p50", "area_p90")
    head = f"{'type':8s} {'src':6s} " + " ".join(f"{c[:8]:>8s}" for c in cols)
    print(head + "\n" + "-" * len(head))
    for t in data.CELL_TYPES:
        for src, table in (("real", real), ("sample", synth)):
            s = table.get(t)
            if s is None:
                continue
            cells = []
            for c in cols:
                v = s.get(c)
                cells.append(f"{'-':>8s}" if v is None else f"{v:8d}" if isinstance(v, int) else f"{v:8.2f}")
            print(f"{t:8s} {src:6s} " + " ".join(cells))
    print("\ncoverage range per type (annotated frames): " + "; ".join(
        f"{t} real {_rng(real.get(t))} sample {_rng(synth.get(t))}" for t in data.CELL_TYPES))


def _rng(s) -> str:
    r = s and s.get("cover_range")
    return f"{100 * r[0]:.0f}-{100 * r[1]:.0f}%" if r else "-"


def mean_profile(rows: list[dict], key: str = "profile") -> dict:
    """Mean ``key`` profile (grey minus background by distance) over annotated frames."""
    acc: dict[int, list] = {}
    for r in rows:
        for d, v in r.get(key, {}).items():
            acc.setdefault(d, []).append(v)
    return {d: float(np.mean(v)) for d, v in sorted(acc.items())}


def print_profiles(real_rows: list[dict], synth_rows: list[dict], key: str, title: str) -> dict:
    """Print the mean ``key`` profile, real beside sample, over all and per annotated cell type."""
    profiles = {"real": mean_profile(real_rows, key), "sample": mean_profile(synth_rows, key)}
    print("\n" + title)
    for src, prof in profiles.items():
        print(f"  {'all':7s} {src:6s} " + " ".join(f"{d:+d}:{v:+5.1f}" for d, v in prof.items()))
    for t in sorted({r["type"] for r in real_rows if r["annotated"]}):
        for src, rows in (("real", real_rows), ("sample", synth_rows)):
            prof = mean_profile([r for r in rows if r["type"] == t], key)
            profiles[f"{src} {t}"] = prof
            print(f"  {t:7s} {src:6s} " + " ".join(f"{d:+d}:{v:+5.1f}" for d, v in prof.items()))
    return profiles


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LIVECell data root with real frames")
    ap.add_argument("--sample", type=Path, default=None, help="sample folder (default: a fresh temporary one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=ROOT / "build" / "bench" / "sample_realism.json")
    args = ap.parse_args(argv)
    if not (args.data / "images").is_dir():
        print(f"skipped: no real frames at {args.data}; pass --data DIR (a LIVECell data root)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        sample_root = sample.make_sample(args.sample or Path(tmp) / "sample", seed=args.seed)
        seconds = time.perf_counter() - t
        print(f"sample: {sample_root} (seed {args.seed}, generator v{sample.GENERATOR_VERSION}), "
              f"ready in {seconds:.1f} s")
        synth_rows = collect(sample_root)
    real_rows = collect(args.data)
    real, synth = summarise(real_rows), summarise(synth_rows)
    print(f"real: {args.data}, {len(real_rows)} frames ({sum(r['annotated'] for r in real_rows)} annotated); "
          f"sample: {len(synth_rows)} frames\n")
    print_side_by_side(real, synth)
    profiles = print_profiles(
        real_rows, synth_rows, "profile",
        "mean grey minus background by distance to the outline (px, inside < 0), all types"
        " and each type with annotated real frames:")
    seams = print_profiles(
        real_rows, synth_rows, "seam_profile",
        "mean grey minus background by distance to a border shared by two touching cells (px,"
        " 0 = the band where they meet), pixels nearer to it than to an outline on background:")
    report = {"data": str(args.data), "seed": args.seed, "generator_version": sample.GENERATOR_VERSION,
              "sample_seconds": seconds, "real": real, "sample": synth, "outline_profile": profiles,
              "seam_profile": seams}
    atomic.write_json(args.json, report)
    print(f"\njson: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
