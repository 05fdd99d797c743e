"""How good is a segmentation? Pixel metrics, baselines, thresholds and instance AP.

Pixel metrics
    :func:`pixel_metrics` compares a probability map with a 0/1 truth mask:
    ``pixel_accuracy``, ``bce`` (mean binary cross-entropy, probabilities
    clipped to ``[1e-7, 1 - 1e-7]``), and — for the foreground ("cell") class —
    ``iou``, ``dice``, ``precision`` and ``recall``.  Over a split they are
    **pooled over all pixels** (micro average): a :class:`MetricAccumulator`
    adds each image's confusion counts (TP, FP, FN, TN) and BCE sum, and the
    metrics are computed once from the totals.  Big, crowded images therefore
    weigh more than sparse ones, exactly as if all images were one mosaic.

    Edge cases (documented conventions): a ratio whose denominator is 0 means
    one side is empty.  If truth *and* prediction are both empty, iou, dice,
    precision and recall are all 1.0 (a perfect answer); if only one of them
    is empty they are all 0.0 (e.g. predicting nothing on an image with cells
    gives precision 0 and recall 0, not "undefined").

Baselines (same images, same metric keys)
    ``all_background`` predicts no cell anywhere; ``otsu`` is classical image
    processing — see :func:`otsu_segment`.  Hard 0/1 predictions are scored as
    probabilities 0/1, so their BCE is large wherever they are wrong
    (``-log(1e-7) ≈ 16``).

Threshold
    :class:`ThresholdSweep` collects, in one pass, histograms of predicted
    probabilities separately for truth-background and truth-cell pixels; the
    confusion counts at every threshold follow from cumulative sums.  The
    threshold with the best IoU on the *validation* split is then applied to
    the test split (choosing it on test would flatter the model).

Instances
    :func:`semantic_to_instances` splits the foreground into cells (watershed
    on the distance transform, or the model's border channel);
    :func:`coco_instance_ap` scores them with pycocotools' ``COCOeval`` under
    LIVECell's protocol (segm IoU, up to 2000 detections per image, area
    ranges small < 324 px ≤ medium ≤ 961 px < large).

:func:`evaluate_model` runs all of it on a split, streaming one batch of images
at a time, and :func:`write_metrics_json` saves the result.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy import ndimage

from livecell_kit import atomic
from livecell_kit.presets import SEED_REPORTED

EPS = 1e-7
METRIC_KEYS = ("pixel_accuracy", "bce", "iou", "dice", "precision", "recall")

# LIVECell's COCO protocol (Edlund et al. 2021): many cells per image, so up to
# 2000 detections, and area ranges in pixels adapted to cell sizes.
LIVECELL_MAX_DETS = [100, 500, 2000]
LIVECELL_AREA_RNG = [[0, 1e10], [0, 324], [324, 961], [961, 1e10]]
LIVECELL_AREA_LBL = ["all", "small", "medium", "large"]


# ----------------------------------------------------------------------------
# Pixel metrics
# ----------------------------------------------------------------------------

def _check_pair(prob: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prob = np.asarray(prob)
    truth = np.asarray(truth)
    if prob.shape != truth.shape:
        raise ValueError(f"probability map has shape {prob.shape} but truth mask has shape "
                         f"{truth.shape}; they must match pixel for pixel")
    return prob, truth.astype(bool)


def _ratio(num: float, den: float, both_empty: bool) -> float:
    """num/den with the module's convention for den == 0 (see module docstring)."""
    if den == 0:
        return 1.0 if both_empty else 0.0
    return float(num) / float(den)


@dataclass
class MetricAccumulator:
    """Pooled (micro-averaged) pixel metrics, added one image at a time.

    Holds only counts, never images: ``tp, fp, fn, tn`` are pixel counts at
    ``threshold`` (a pixel is "cell" when ``prob >= threshold``, or ``prob >
    threshold`` with ``strict=True`` — Keras' ``binary_accuracy`` rule, which the seed
    project reported) and ``bce_sum`` is the summed per-pixel binary cross-entropy in nats.
    """

    threshold: float = 0.5
    strict: bool = False
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    bce_sum: float = 0.0
    n_images: int = 0

    def add(self, prob: np.ndarray, truth: np.ndarray) -> "MetricAccumulator":
        """Add one image: ``prob`` float (H, W) in [0, 1], ``truth`` (H, W) 0/1."""
        prob, truth = _check_pair(prob, truth)
        p = prob.astype(np.float64)
        pred = p > self.threshold if self.strict else p >= self.threshold
        tp = int(np.count_nonzero(pred & truth))
        fp = int(np.count_nonzero(pred)) - tp
        npos = int(np.count_nonzero(truth))
        self.tp += tp
        self.fp += fp
        self.fn += npos - tp
        self.tn += truth.size - npos - fp
        pc = np.clip(p, EPS, 1.0 - EPS)
        # -[y log p + (1-y) log(1-p)], summed; float64 so millions of pixels add exactly enough
        self.bce_sum += float(-np.log(np.where(truth, pc, 1.0 - pc)).sum())
        self.n_images += 1
        return self

    def merge(self, other: "MetricAccumulator") -> "MetricAccumulator":
        """Add another accumulator's counts (same threshold) into this one."""
        if (other.threshold, other.strict) != (self.threshold, self.strict):
            raise ValueError(f"cannot pool metrics at threshold {other.threshold} into {self.threshold}")
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn
        self.bce_sum += other.bce_sum
        self.n_images += other.n_images
        return self

    @property
    def n_pixels(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    def result(self) -> dict:
        """The metrics as a dict of floats (keys :data:`METRIC_KEYS`)."""
        return confusion_metrics(self.tp, self.fp, self.fn, self.tn,
                                 bce_sum=self.bce_sum)


def confusion_metrics(tp, fp, fn, tn, bce_sum: float | None = None) -> dict:
    """Metrics from pixel confusion counts (scalars).  ``bce`` needs ``bce_sum``."""
    tp, fp, fn, tn = (int(v) for v in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    if n == 0:
        raise ValueError("no pixels were scored (empty image list?)")
    both_empty = tp + fp + fn == 0  # no true and no predicted cell pixel
    return {
        "pixel_accuracy": (tp + tn) / n,
        "bce": float("nan") if bce_sum is None else bce_sum / n,
        "iou": _ratio(tp, tp + fp + fn, both_empty),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, both_empty),
        "precision": _ratio(tp, tp + fp, both_empty),
        "recall": _ratio(tp, tp + fn, both_empty),
    }


def pixel_metrics(prob: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> dict:
    """Pixel metrics of one probability map against a 0/1 truth mask.

    prob: float array (H, W) of cell probabilities in [0, 1] (a 0/1 mask works too).
    truth: array (H, W), nonzero = cell.
    threshold: a pixel is predicted "cell" when ``prob >= threshold``.
    Returns {pixel_accuracy, bce, iou, dice, precision, recall} (floats; bce in nats).
    """
    return MetricAccumulator(threshold).add(prob, truth).result()


# ----------------------------------------------------------------------------
# Per-cell-type table
# ----------------------------------------------------------------------------

@dataclass
class MetricsTable:
    """Rows of metrics, one per group (e.g. cell type): a list of dicts.

    ``rows[i]`` holds ``name_key`` (e.g. "cell_type"), ``n_images`` and the
    metric keys.  Prints as a Markdown table; ``to_pandas()`` if pandas is
    installed (it is not required).
    """

    rows: list[dict]
    name_key: str = "cell_type"
    columns: Sequence[str] = ("n_images",) + METRIC_KEYS

    @classmethod
    def from_groups(cls, groups: Mapping[str, Mapping], name_key: str = "cell_type",
                    columns: Sequence[str] | None = None) -> "MetricsTable":
        """From ``{group: {metric: value}}`` (e.g. ``results["per_cell_type"]``)."""
        rows = [{name_key: g, **dict(m)} for g, m in sorted(groups.items())]
        if columns is None:
            columns = [c for c in ("n_images",) + METRIC_KEYS + ("AP", "AP50", "AP75")
                       if any(c in r for r in rows)]
        return cls(rows, name_key, tuple(columns))

    def to_markdown(self, digits: int = 4) -> str:
        cols = [self.name_key, *self.columns]

        def fmt(v):
            if v is None:
                return "–"
            if isinstance(v, float):
                return "nan" if math.isnan(v) else f"{v:.{digits}f}"
            return str(v)

        lines = ["| " + " | ".join(cols) + " |",
                 "|" + "|".join("---" if c == self.name_key else "---:" for c in cols) + "|"]
        for r in self.rows:
            lines.append("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_markdown()

    def _repr_markdown_(self) -> str:  # Jupyter renders it as a table
        return self.to_markdown()

    def to_pandas(self):
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("MetricsTable.to_pandas needs pandas (pip install pandas); "
                              "print the table or use .rows instead") from err
        return pd.DataFrame(self.rows).set_index(self.name_key)


# ----------------------------------------------------------------------------
# Threshold sweep
# ----------------------------------------------------------------------------

@dataclass
class ThresholdSweep:
    """Metrics at many thresholds from one pass over the images.

    Keeps two histograms of predicted probabilities with ``bins`` equal bins
    on [0, 1]: one for truth-background pixels and one for truth-cell pixels.
    The candidate thresholds are the bin edges between ``lo`` and ``hi``; at
    threshold ``t = edge[k]`` every pixel in bins ``>= k`` is predicted cell,
    which equals ``prob >= t`` exactly (bins are assigned with the same
    comparison).
    """

    bins: int = 100
    lo: float = 0.05
    hi: float = 0.95
    hist_bg: np.ndarray = field(default=None, repr=False)
    hist_fg: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        # k / bins is correctly rounded (linspace gives 0.35000000000000003 for 35/100)
        self.edges = np.arange(self.bins + 1) / self.bins
        if self.hist_bg is None:
            self.hist_bg = np.zeros(self.bins, np.int64)
            self.hist_fg = np.zeros(self.bins, np.int64)

    def add(self, prob: np.ndarray, truth: np.ndarray) -> "ThresholdSweep":
        """Add one image: ``prob`` (H, W) in [0, 1], ``truth`` (H, W) 0/1."""
        prob, truth = _check_pair(prob, truth)
        # bin k holds edges[k] <= p < edges[k+1]; p == 1 goes in the last bin
        idx = np.searchsorted(self.edges, prob.astype(np.float64).ravel(), side="right") - 1
        idx = np.clip(idx, 0, self.bins - 1)
        t = truth.ravel()
        self.hist_fg += np.bincount(idx[t], minlength=self.bins)
        self.hist_bg += np.bincount(idx[~t], minlength=self.bins)
        return self

    def _k_range(self) -> np.ndarray:
        k = np.arange(1, self.bins)
        e = self.edges[k]
        return k[(e >= self.lo - 1e-12) & (e <= self.hi + 1e-12)]

    @property
    def thresholds(self) -> np.ndarray:
        return self.edges[self._k_range()]

    def table(self) -> dict:
        """``{"threshold": [...], metric: [...]}`` for iou, dice, precision, recall, pixel_accuracy."""
        k = self._k_range()
        # pixels predicted cell at edge k = those in bins >= k: reverse cumulative sums
        fg_above = np.cumsum(self.hist_fg[::-1])[::-1]
        bg_above = np.cumsum(self.hist_bg[::-1])[::-1]
        out = {"threshold": [float(t) for t in self.edges[k]]}
        rows = [confusion_metrics(fg_above[i], bg_above[i], self.hist_fg.sum() - fg_above[i],
                                  self.hist_bg.sum() - bg_above[i]) for i in k]
        for key in ("iou", "dice", "precision", "recall", "pixel_accuracy"):
            out[key] = [r[key] for r in rows]
        return out

    def best(self, metric: str = "iou") -> float:
        """Threshold maximising ``metric``; ties go to the one nearest 0.5."""
        tab = self.table()
        vals = np.asarray(tab[metric])
        thr = np.asarray(tab["threshold"])
        cand = np.flatnonzero(vals >= vals.max() - 1e-12)
        return float(thr[cand[np.argmin(np.abs(thr[cand] - 0.5))]])


def threshold_sweep(probs: Iterable[np.ndarray], truths: Iterable[np.ndarray], **kw) -> ThresholdSweep:
    """A :class:`ThresholdSweep` over pairs of (H, W) probability maps and truth masks."""
    sweep = ThresholdSweep(**kw)
    for p, t in zip(probs, truths):
        sweep.add(p, t)
    return sweep


# ----------------------------------------------------------------------------
# Classical baseline: Otsu
# ----------------------------------------------------------------------------

def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (any shape, any float/int units).

    Histogram with ``bins`` bins over [min, max]; returns the value t that
    maximises the between-class variance of ``values < t`` vs ``values >= t``
    (in the units of ``values``).  A constant array returns its value.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)          # pixels in bins 0..k (class "below")
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    k = int(np.argmax(between[:-1]))                 # split after bin k
    return float(edges[k + 1])


def remove_small_objects(mask: np.ndarray, min_size: int) -> np.ndarray:
    """Drop 8-connected foreground components smaller than ``min_size`` pixels."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return mask.astype(bool)
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[lab]


def otsu_segment(image: np.ndarray, window: int = 7, sigma: float = 1.0,
                 min_size: int = 30) -> np.ndarray:
    """Classical cell/background segmentation of a phase-contrast image.

    Phase-contrast cells are both darker *and* brighter than the flat grey
    background (dark bodies, bright halos), so thresholding raw intensity
    finds only half of each cell.  What cells have and background lacks is
    *texture*, so we threshold the local standard deviation:

    1. Gaussian blur (``sigma`` px) to suppress camera noise;
    2. local standard deviation in a ``window`` × ``window`` box;
    3. Otsu's threshold on that texture image;
    4. clean-up: binary opening (3×3) removes specks, closing (5×5) bridges
       gaps, fill holes (cell interiors can be flat), erosion by the
       window's half-width (the window widened every cell by that much),
       remove components smaller than ``min_size`` px.

    image: (H, W) uint8 or float.  Returns a bool mask (H, W), True = cell.
    """
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"otsu_segment expects a 2-D grey image, got shape {img.shape}")
    img = ndimage.gaussian_filter(img, sigma)
    mean = ndimage.uniform_filter(img, window)
    mean_sq = ndimage.uniform_filter(img * img, window)
    texture = np.sqrt(np.maximum(mean_sq - mean * mean, 0))
    mask = texture >= otsu_threshold(texture)
    mask = ndimage.binary_opening(mask, structure=np.ones((3, 3)))
    mask = ndimage.binary_closing(mask, structure=np.ones((5, 5)), border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    # a window straddling a cell edge sees the edge's contrast, so the texture
    # mask is the cells dilated by the window's half-width: erode that back
    mask = ndimage.binary_erosion(mask, structure=np.ones((window, window)), border_value=1)
    return remove_small_objects(mask, min_size)


# ----------------------------------------------------------------------------
# Instances
# ----------------------------------------------------------------------------

def _max3x3(a: np.ndarray, low) -> np.ndarray:
    """Maximum over each pixel's 3×3 neighbourhood (outside counts as ``low``).

    Plain numpy slicing: on the small per-cell crops used here it is several
    times faster than ``ndimage.grey_dilation``'s per-call overhead.
    """
    p = np.pad(a, 1, constant_values=low)
    rows = np.maximum(np.maximum(p[:-2], p[1:-1]), p[2:])
    return np.maximum(np.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])


def _reconstruct_by_dilation(marker: np.ndarray, mask: np.ndarray, max_iter: int = 100_000) -> np.ndarray:
    """Grey-scale morphological reconstruction of ``marker`` under ``mask`` (8-connected)."""
    rec = np.minimum(marker, mask)
    low = min(float(rec.min()), 0.0) - 1.0
    for _ in range(max_iter):
        nxt = np.minimum(_max3x3(rec, low), mask)
        if np.array_equal(nxt, rec):
            break
        rec = nxt
    return rec


def h_maxima(image: np.ndarray, h: float) -> np.ndarray:
    """Bool mask of the h-maxima of ``image``: peaks rising at least ``h`` above their surroundings.

    Computed as the regional tops of the "h-dome" ``image - R(image - h)`` where
    R is reconstruction by dilation under ``image``.  Every connected
    foreground blob keeps at least one marker (its highest peak).
    """
    f = np.asarray(image, dtype=np.float32)
    dome = f - _reconstruct_by_dilation(f - h, f)
    return dome >= h - 1e-3


def semantic_to_instances(prob: np.ndarray, threshold: float = 0.5,
                          border_prob: np.ndarray | None = None, border_threshold: float = 0.5,
                          min_size: int = 20, method: str = "watershed",
                          h: float = 2.0, sigma: float = 1.0) -> np.ndarray:
    """Split a cell-probability map into individual cells.

    prob: (H, W) cell probability in [0, 1].
    threshold: pixels with ``prob >= threshold`` are foreground.
    border_prob: optional (H, W) probability of "border between touching
        cells" (the model's second output).  If given, border pixels are
        removed from the foreground, the remaining cores are labelled, and
        every foreground pixel is then given the label of its nearest core.
    method (without border_prob): ``"components"`` labels 8-connected
        components; ``"watershed"`` (default) splits touching cells with a
        marker-based watershed on the distance transform: markers are the
        h-maxima (height ``h`` px) of the Gaussian-smoothed (``sigma`` px)
        distance to background, flooded by :func:`flood_from_markers`.
    min_size: instances smaller than this (pixels) are dropped.
    Returns int32 labels (H, W): 0 = background, 1..n = cells.
    """
    prob = np.asarray(prob)
    if prob.ndim != 2:
        raise ValueError(f"semantic_to_instances expects a 2-D probability map, got {prob.shape}")
    fg = prob >= threshold
    eight = np.ones((3, 3), bool)
    if border_prob is not None:
        cores = fg & ~(np.asarray(border_prob) >= border_threshold)
        cores = remove_small_objects(cores, max(1, min_size // 4))
        core_lab, n = ndimage.label(cores, structure=eight)
        if n == 0:
            labels = np.zeros(prob.shape, np.int32)
        else:
            # nearest core for every pixel: EDT with indices of the closest core pixel
            _, (ii, jj) = ndimage.distance_transform_edt(core_lab == 0, return_indices=True)
            labels = np.where(fg, core_lab[ii, jj], 0)
    elif method == "components":
        labels, _ = ndimage.label(fg, structure=eight)
    elif method == "watershed":
        labels = _watershed_split(fg, h=h, sigma=sigma, min_size=min_size)
    else:
        raise ValueError(f"method must be 'watershed' or 'components', got {method!r}")
    return _relabel(labels, min_size)


def _watershed_split(fg: np.ndarray, h: float, sigma: float, min_size: int = 20) -> np.ndarray:
    if not fg.any():
        return np.zeros(fg.shape, np.int32)
    dist = ndimage.distance_transform_edt(fg).astype(np.float32)
    if sigma > 0:
        # smoothing removes the one-pixel bumps of the EDT along elongated cells
        dist = ndimage.gaussian_filter(dist, sigma) * fg
    eight = np.ones((3, 3), bool)
    comps, n_comp = ndimage.label(fg, structure=eight)
    # Count local-maximum plateaus per component in one vectorised pass: a component
    # with a single one is a single cell and needs no watershed (most of them).
    peak_lab, _ = ndimage.label((dist == ndimage.maximum_filter(dist, size=3)) & fg, structure=eight)
    on_peak = peak_lab > 0
    pairs = np.unique(comps[on_peak].astype(np.int64) * (peak_lab.max() + 1) + peak_lab[on_peak])
    n_peaks = np.bincount(pairs // (peak_lab.max() + 1), minlength=n_comp + 1)
    sizes = np.bincount(comps.ravel(), minlength=n_comp + 1)
    # fragments too small to hold two cells are not split (keeps noisy maps fast)
    to_split = np.flatnonzero((n_peaks > 1) & (sizes >= 2 * max(min_size, 1)))
    labels = comps.astype(np.int32)
    next_id = n_comp + 1
    objects = ndimage.find_objects(comps)
    for c in to_split:
        sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in objects[c - 1])  # background rim
        in_c = comps[sl] == c
        d = np.where(in_c, dist[sl], 0)
        markers, n_markers = ndimage.label(h_maxima(d, h) & in_c, structure=eight)
        if n_markers <= 1:
            continue
        flooded = flood_from_markers(d, markers + (next_id - 1) * (markers > 0), in_c)
        labels[sl][in_c] = flooded[in_c]
        next_id += n_markers
    return labels


def flood_from_markers(height: np.ndarray, markers: np.ndarray, mask: np.ndarray,
                       step: float = 1.0) -> np.ndarray:
    """Marker-based watershed: flood ``mask`` from ``markers``, highest ``height`` first.

    height: float (H, W), e.g. distance to background (cell centres high).
    markers: int (H, W), 0 = unlabelled, k > 0 = seed of region k.
    Water levels go down from ``height.max()`` in ``step`` units; at each
    level every region grows (4-connected, one pixel per iteration, so ties
    are settled by geodesic distance) into unlabelled mask pixels at or above
    the level.  Where regions meet is the watershed line between cells.

    (``scipy.ndimage.watershed_ift`` was tried first; on this data it lets
    one marker flood over the ridge into its neighbour's basin, so the kit
    floods level by level itself.)
    Returns int32 labels (H, W); mask pixels never reached stay 0.
    """
    # work on a zero-padded copy so the 4 neighbours are plain slices
    lab = np.pad(np.where(mask, markers, 0).astype(np.int32), 1)
    core = lab[1:-1, 1:-1]
    top = float(height[mask].max()) if mask.any() else 0.0
    for level in np.arange(top, -step, -step):
        allowed = mask & (height >= level) & (core == 0)
        while allowed.any():
            grown = np.maximum(np.maximum(lab[:-2, 1:-1], lab[2:, 1:-1]),
                               np.maximum(lab[1:-1, :-2], lab[1:-1, 2:]))
            new = allowed & (grown > 0)
            if not new.any():
                break
            core[new] = grown[new]
            allowed &= ~new
    return core.copy()


def _relabel(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Drop labels smaller than ``min_size`` px and renumber 1..n (int32)."""
    labels = np.asarray(labels)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(min_size, 1)
    keep[0] = False
    new_ids = np.zeros(len(sizes), np.int32)
    new_ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return new_ids[labels]


def instances_to_coco_results(labels: np.ndarray, image_id: int, scores=None,
                              category_id: int = 1) -> list[dict]:
    """COCO "results" entries (RLE masks) for each instance of a label image.

    labels: int (H, W), 0 = background.
    scores: None (every instance scores 1.0), a probability map (H, W) —
        each instance's score is its mean probability — or a mapping
        ``{label: score}``.
    Returns ``[{"image_id", "category_id", "segmentation": {"size": [H, W],
    "counts": str}, "score"}, ...]`` — JSON-serialisable.
    """
    from pycocotools import mask as mask_utils

    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return []
    if scores is None:
        score_of = {int(i): 1.0 for i in ids}
    elif isinstance(scores, Mapping):
        score_of = {int(k): float(v) for k, v in scores.items()}
    else:
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != labels.shape:
            raise ValueError(f"scores map has shape {s.shape}, labels {labels.shape}")
        means = ndimage.mean(s, labels, ids)
        score_of = {int(i): float(m) for i, m in zip(ids, means)}
    # one reusable Fortran-order buffer: RLE runs down columns, and allocating
    # an (H, W, n) stack for thousands of cells would take gigabytes
    buf = np.zeros(labels.shape, dtype=np.uint8, order="F")
    objects = ndimage.find_objects(labels.astype(np.int32, copy=False))
    out = []
    for lab in ids:
        sl = objects[int(lab) - 1]
        buf[sl] = labels[sl] == lab
        rle = mask_utils.encode(buf)
        buf[sl] = 0
        counts = rle["counts"]
        out.append({
            "image_id": int(image_id),
            "category_id": int(category_id),
            "segmentation": {"size": [int(x) for x in rle["size"]],
                             "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts},
            "score": float(score_of[int(lab)]),
        })
    return out


class _FastCOCOeval:
    """Factory for a ``COCOeval`` whose per-image matching visits only plausible pairs.

    pycocotools' ``evaluateImg`` loops over iou-thresholds × detections × ground
    truths in Python: with hundreds of cells per image that takes seconds per
    image.  A detection can only match a ground truth with IoU >= the lowest
    threshold (0.5), so we loop over those candidates only; everything else
    (ordering, ignore flags, tie-breaking) is the original algorithm, so the
    results are identical (tests compare both).
    """

    _cls = None

    @classmethod
    def get(cls):
        if cls._cls is None:
            from pycocotools.cocoeval import COCOeval

            class FastCOCOeval(COCOeval):
                def evaluateImg(self, imgId, catId, aRng, maxDet):
                    p = self.params
                    if p.useCats:
                        gt = self._gts[imgId, catId]
                        dt = self._dts[imgId, catId]
                    else:
                        gt = [g for c in p.catIds for g in self._gts[imgId, c]]
                        dt = [d for c in p.catIds for d in self._dts[imgId, c]]
                    if len(gt) == 0 and len(dt) == 0:
                        return None
                    for g in gt:
                        g["_ignore"] = int(bool(g["ignore"] or g["area"] < aRng[0] or g["area"] > aRng[1]))
                    gtind = np.argsort([g["_ignore"] for g in gt], kind="mergesort")
                    gt = [gt[i] for i in gtind]
                    dtind = np.argsort([-d["score"] for d in dt], kind="mergesort")
                    dt = [dt[i] for i in dtind[0:maxDet]]
                    iscrowd = [int(o["iscrowd"]) for o in gt]
                    ious = self.ious[imgId, catId]
                    ious = ious[:, gtind] if len(ious) > 0 else ious
                    T, G, D = len(p.iouThrs), len(gt), len(dt)
                    gtm = np.zeros((T, G))
                    dtm = np.zeros((T, D))
                    gtIg = np.array([g["_ignore"] for g in gt])
                    dtIg = np.zeros((T, D))
                    if len(ious) != 0:
                        lowest = min(min(p.iouThrs), 1 - 1e-10)
                        cands = [np.flatnonzero(ious[d] >= lowest) for d in range(D)]
                        for tind, t in enumerate(p.iouThrs):
                            for dind in range(D):
                                iou = min([t, 1 - 1e-10])
                                m = -1
                                for gind in cands[dind]:
                                    if gtm[tind, gind] > 0 and not iscrowd[gind]:
                                        continue
                                    if m > -1 and gtIg[m] == 0 and gtIg[gind] == 1:
                                        break
                                    if ious[dind, gind] < iou:
                                        continue
                                    iou = ious[dind, gind]
                                    m = gind
                                if m == -1:
                                    continue
                                dtIg[tind, dind] = gtIg[m]
                                dtm[tind, dind] = gt[m]["id"]
                                gtm[tind, m] = dt[dind]["id"]
                    a = np.array([d["area"] < aRng[0] or d["area"] > aRng[1] for d in dt]).reshape((1, D))
                    dtIg = np.logical_or(dtIg, np.logical_and(dtm == 0, np.repeat(a, T, 0)))
                    return {"image_id": imgId, "category_id": catId, "aRng": aRng, "maxDet": maxDet,
                            "dtIds": [d["id"] for d in dt], "gtIds": [g["id"] for g in gt],
                            "dtMatches": dtm, "gtMatches": gtm,
                            "dtScores": [d["score"] for d in dt],
                            "gtIgnore": gtIg, "dtIgnore": dtIg}

            cls._cls = FastCOCOeval
        return cls._cls


def _livecell_params(E, img_ids):
    p = E.params
    p.imgIds = sorted(int(i) for i in img_ids)
    p.maxDets = list(LIVECELL_MAX_DETS)
    p.areaRng = [list(r) for r in LIVECELL_AREA_RNG]
    p.areaRngLbl = list(LIVECELL_AREA_LBL)


def _ap_from_eval(E) -> dict:
    """AP (IoU .50:.95), AP50, AP75 and per-area AP at maxDets 2000 from ``E.eval``.

    Mirrors ``COCOeval.summarize`` but returns numbers instead of printing.
    ``None`` when undefined (no ground truth in the selection).
    """
    prec = E.eval["precision"]  # [T iou thresholds, R recall thresholds, K cats, A areas, M maxDets]
    thrs = E.params.iouThrs
    m = len(E.params.maxDets) - 1

    def mean(s):
        s = s[s > -1]
        return float(s.mean()) if s.size else None

    out = {"AP": mean(prec[:, :, :, 0, m]),
           "AP50": mean(prec[np.isclose(thrs, 0.5), :, :, 0, m]),
           "AP75": mean(prec[np.isclose(thrs, 0.75), :, :, 0, m])}
    for a, lbl in enumerate(LIVECELL_AREA_LBL[1:], start=1):
        out[f"AP_{lbl}"] = mean(prec[:, :, :, a, m])
    return out


def coco_instance_ap(gt_dataset, results: list[dict], per_cell_type=None,
                     img_ids: Sequence[int] | None = None, verbose: bool = False) -> dict:
    """Instance-segmentation AP under LIVECell's COCO protocol.

    gt_dataset: a COCO dict (``"images"``, ``"annotations"`` list,
        ``"categories"``) or a ``pycocotools.coco.COCO``.
    results: COCO result dicts (see :func:`instances_to_coco_results`).
    per_cell_type: ``None``, a mapping ``{image_id: cell_type}``, or ``True``
        to read the type from each image's file name (``data.cell_type_of``).
    img_ids: images to score (default: all images of ``gt_dataset``).
    verbose: let pycocotools print its progress and summary table.

    Returns ``{"AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "n_detections", "per_cell_type": {type: {"AP", "AP50", "AP75"}}}``.
    AP is averaged over IoU 0.50:0.95, with up to 2000 detections per image.
    With ground truth but no detections AP is 0.0 (pycocotools would report
    -1 or fail to load an empty result list); with no ground truth it is None.
    """
    from pycocotools.coco import COCO

    if isinstance(gt_dataset, COCO):
        coco_gt = gt_dataset
    else:
        coco_gt = COCO()
        coco_gt.dataset = {k: v for k, v in gt_dataset.items()}
        coco_gt.dataset["annotations"] = [dict(a) for a in _ann_list(gt_dataset["annotations"])]
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt.createIndex()
    if img_ids is None:
        img_ids = coco_gt.getImgIds()
    img_ids = sorted(int(i) for i in img_ids)
    types: dict[int, str] = {}
    if per_cell_type is True:
        from livecell_kit.data import cell_type_of

        types = {i: cell_type_of(coco_gt.imgs[i]["file_name"]) for i in img_ids}
    elif per_cell_type:
        types = {int(i): str(t) for i, t in per_cell_type.items() if int(i) in set(img_ids)}

    keep = set(img_ids)
    results = [r for r in results if int(r["image_id"]) in keep]
    n_gt = {i: len(coco_gt.getAnnIds(imgIds=[i], iscrowd=None)) for i in img_ids}

    def empty_result(ids):
        has_gt = sum(n_gt[i] for i in ids) > 0
        v = 0.0 if has_gt else None
        return {k: v for k in ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")}

    per_type_ids: dict[str, list[int]] = {}
    for i, t in types.items():
        per_type_ids.setdefault(t, []).append(i)

    if not results:
        out = empty_result(img_ids)
        out["n_detections"] = 0
        out["per_cell_type"] = {t: {k: empty_result(ids)[k] for k in ("AP", "AP50", "AP75")}
                                for t, ids in sorted(per_type_ids.items())}
        return out

    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        E = _FastCOCOeval.get()(coco_gt, coco_dt, iouType="segm")
        _livecell_params(E, img_ids)
        E.evaluate()
        E.accumulate()
        if verbose:
            E.summarize()
        out = _ap_from_eval(E)
        out["n_detections"] = len(results)
        out["per_cell_type"] = {}
        for t, ids in sorted(per_type_ids.items()):
            sub = _restrict_eval(E, ids)
            sub.accumulate()
            r = _ap_from_eval(sub)
            out["per_cell_type"][t] = {k: r[k] for k in ("AP", "AP50", "AP75")}
    # evaluated images without detections but with cells count as misses
    # (handled inside COCOeval); only "no ground truth at all" stays None.
    return out


def _restrict_eval(E, ids):
    """A shallow copy of an evaluated COCOeval limited to images ``ids``.

    ``COCOeval.accumulate(p)`` with a subset of ``imgIds`` indexes
    ``evalImgs`` by the subset's positions (a known pycocotools bug), so we
    slice ``evalImgs`` ourselves and present the subset as what was evaluated.
    """
    pe = E._paramsEval
    all_ids = list(pe.imgIds)
    pos = {i: n for n, i in enumerate(all_ids)}
    ids = sorted(i for i in ids if i in pos)
    I0, A0 = len(all_ids), len(pe.areaRng)
    K = len(pe.catIds) if pe.useCats else 1
    sub = copy.copy(E)
    sub.params = copy.deepcopy(E.params)
    sub._paramsEval = copy.deepcopy(pe)
    sub.params.imgIds = ids
    sub._paramsEval.imgIds = ids
    sub.evalImgs = [E.evalImgs[k * A0 * I0 + a * I0 + pos[i]]
                    for k in range(K) for a in range(A0) for i in ids]
    return sub


def _ann_list(anns):
    """LIVECell stores annotations as a dict keyed by id; COCO wants a list."""
    return list(anns.values()) if isinstance(anns, dict) else list(anns)


# ----------------------------------------------------------------------------
# Whole-model evaluation
# ----------------------------------------------------------------------------

def model_info(model) -> dict:
    """Name, parameter count, input/output shapes and input handling of a Keras model (JSON-ready)."""
    from livecell_kit import predict

    def shape(s):
        if isinstance(s, (list, tuple)) and s and isinstance(s[0], (list, tuple)):
            return [shape(x) for x in s]
        return None if s is None else [None if d is None else int(d) for d in s]

    info = {"name": getattr(model, "name", type(model).__name__)}
    with contextlib.suppress(Exception):
        info["n_params"] = int(model.count_params())
    with contextlib.suppress(Exception):
        info["input_shape"] = shape(model.input_shape)
    with contextlib.suppress(Exception):
        info["output_shape"] = shape(model.output_shape)
    info["size_multiple"] = predict.size_multiple(model)
    info["input_scale"] = predict.input_scale(model)
    return info


def _default_batch_size() -> int:
    import tensorflow as tf

    return 8 if tf.config.list_physical_devices("GPU") else 1


def _stream(model, split, batch_size: int, progress: bool, desc: str, jit_compile: bool = False):
    """Yield (image record, uint8 image, model output, 0/1 truth) one image at a time.

    Reads and predicts ``batch_size`` images at a time, so memory holds one
    batch, never the split.
    """
    from livecell_kit import data, masks, predict

    records = list(split.images)
    if not records:
        raise ValueError(f"split {split.name!r} under {split.root} has no images to evaluate")
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(records), desc=desc, unit="image")
    try:
        for i in range(0, len(records), batch_size):
            chunk = records[i:i + batch_size]
            images = [data.read_image(split.image_path(r)) for r in chunk]
            # LIVECell frames all share one size; group anyway so odd sizes still work
            outputs = [None] * len(chunk)
            by_shape: dict[tuple, list[int]] = {}
            for j, im in enumerate(images):
                by_shape.setdefault(im.shape, []).append(j)
            for idx in by_shape.values():
                pred = predict.predict_batch(model, [images[j] for j in idx], batch_size=batch_size,
                                             jit_compile=jit_compile)
                for j, p in zip(idx, pred):
                    outputs[j] = p
            for rec, im, out in zip(chunk, images, outputs):
                h, w = im.shape
                truth = masks.semantic_mask(split.annotations_for(rec["id"]), h, w)
                yield rec, im, out, truth
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _channels(out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Model output (H, W) or (H, W, C) → (cell probability, border probability or None)."""
    if out.ndim == 2:
        return out, None
    return out[..., 0], (out[..., 1] if out.shape[-1] > 1 else None)


def _grouped(accs: Mapping[str, MetricAccumulator]) -> dict:
    return {k: {"n_images": a.n_images, **a.result()} for k, a in sorted(accs.items())}


def sweep_split(model, data_root, split: str = "val", max_images: int | None = None,
                subset_rule: str = "stratified", batch_size: int | None = None, progress: bool = False,
                jit_compile: bool = False) -> ThresholdSweep:
    """A :class:`ThresholdSweep` of ``model`` over one split (streamed, one batch in memory).

    Its ``.best("iou")`` is how :func:`evaluate_model` chooses the threshold on val.
    """
    from livecell_kit import data

    try:
        images = data.load_subset(data_root, split, max_images, rule=subset_rule)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}\nthreshold=None picks the threshold on the {split!r} split; "
                                f"provide that split or pass a threshold (e.g. 0.5)") from err
    sweep = ThresholdSweep()
    for _, _, out, truth in _stream(model, images, batch_size or _default_batch_size(), progress,
                                    f"threshold on {split}", jit_compile=jit_compile):
        sweep.add(_channels(out)[0], truth)
    return sweep


def evaluate_model(model, data_root, split: str = "test", threshold: float | None = None,
                   val_split: str = "val", batch_size: int | None = None, instance: bool = True,
                   progress: bool = True, max_images: int | None = None, min_size: int = 20,
                   jit_compile: bool = False, verbose: bool = False, subset_rule: str = "stratified",
                   threshold_data=None) -> dict:
    """Evaluate a segmentation model on a split of a LIVECell-layout data set.

    model: Keras model, (N, H, W, 1) grey images → sigmoid (N, H, W, C).
    data_root: folder with ``images/`` and ``annotations/`` (sample or LIVECell).
    threshold: cell-probability cut-off; ``None`` chooses the best-IoU
        threshold on ``val_split`` of ``threshold_data`` (default ``data_root``) in one
        streaming pass (see :class:`ThresholdSweep`).  When that would be the very split
        being evaluated, 0.5 is used instead: a threshold tuned on the images it is
        scored on flatters the model.
    threshold_data: data root whose ``val_split`` picks the threshold, e.g. the sample a
        model was trained on when ``data_root`` holds real frames to measure.
    instance: also split predictions into cells and compute COCO AP.
    max_images: evaluate at most N images of each split, picked by
        :func:`livecell_kit.data.load_subset` with ``subset_rule`` ("stratified", or
        "first" — the seed project's first 512 test and 256 val images).
    batch_size: images per forward pass; default 1 on CPU (full frames are
        memory-bound there, bigger batches were slower) and 8 on a GPU.
    jit_compile: XLA-compile the forward pass (see :func:`predict.predict_image`).

    Returns a JSON-serialisable dict: pooled pixel metrics (``pixel_accuracy,
    bce, iou, dice, precision, recall``), ``threshold`` (+ ``threshold_source``
    and the ``threshold_sweep`` table when chosen on val), ``seed_metrics``
    {pixel_accuracy, bce} computed the seed project's way (Keras binary accuracy,
    ``p > 0.5``, over all pixels), ``per_cell_type`` {type: metrics + n_images},
    ``baselines`` {all_background, otsu}: same keys + per_cell_type, ``instance``
    {AP, AP50, AP75, AP_small/medium/large, per_cell_type: {type: {AP, AP50, AP75}}}
    (AP over IoU .50:.95), ``n_images``, ``n_pixels``, ``split``, ``model`` info and
    ``seconds``.
    """
    from livecell_kit import data

    t0 = time.time()
    if batch_size is None:
        batch_size = _default_batch_size()
    stream_kw = {"jit_compile": jit_compile}
    results: dict = {"split": split, "data_root": str(data_root), "subset_rule": subset_rule,
                     "model": model_info(model)}
    threshold_root = Path(threshold_data) if threshold_data is not None else Path(data_root)
    same_images = (split == val_split and threshold_root.resolve() == Path(data_root).resolve())
    if threshold is None and same_images:
        threshold = 0.5
        results["threshold_source"] = (f"default 0.5: the {split!r} split is the one evaluated, "
                                       f"so choosing the threshold on it would flatter the model")
    elif threshold is None:
        sweep = sweep_split(model, threshold_root, val_split, max_images, subset_rule, batch_size,
                            progress, jit_compile)
        threshold = sweep.best("iou")
        where = "" if threshold_root == Path(data_root) else f" of {threshold_root}"
        results["threshold_source"] = f"best IoU on {val_split}{where}"
        results["threshold_sweep"] = sweep.table()
    else:
        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
        results["threshold_source"] = "given"

    test = data.load_subset(data_root, split, max_images, rule=subset_rule)
    names = ("model", "all_background", "otsu")
    overall = {n: MetricAccumulator(threshold) for n in names}
    seed_way = MetricAccumulator(0.5, strict=True)
    per_type: dict[str, dict[str, MetricAccumulator]] = {n: {} for n in names}
    coco_results: list[dict] = []
    cell_type_of_id: dict[int, str] = {}
    for rec, image, out, truth in _stream(model, test, batch_size, progress, f"evaluate {split}",
                                           **stream_kw):
        prob, border = _channels(out)
        ctype = test.cell_type(rec)
        cell_type_of_id[int(rec["id"])] = ctype
        preds = {"model": prob,
                 "all_background": np.zeros(truth.shape, np.float32),
                 "otsu": otsu_segment(image).astype(np.float32)}
        seed_way.add(prob, truth)
        for n, p in preds.items():
            one = MetricAccumulator(threshold).add(p, truth)  # counted once, pooled twice
            overall[n].merge(one)
            per_type[n].setdefault(ctype, MetricAccumulator(threshold)).merge(one)
        if instance:
            labels = semantic_to_instances(prob, threshold, border_prob=border, min_size=min_size)
            coco_results.extend(instances_to_coco_results(labels, rec["id"], prob))

    results.update(overall["model"].result())
    results["threshold"] = threshold
    seed_result = seed_way.result()
    results["seed_metrics"] = {"pixel_accuracy": seed_result["pixel_accuracy"], "bce": seed_result["bce"],
                               "rule": "Keras binary_accuracy (p > 0.5) and binary cross-entropy "
                                       "(p clipped to [1e-7, 1 - 1e-7]), pooled over all pixels"}
    results["per_cell_type"] = _grouped(per_type["model"])
    results["baselines"] = {n: {**overall[n].result(), "per_cell_type": _grouped(per_type[n])}
                            for n in ("all_background", "otsu")}
    results["n_images"] = overall["model"].n_images
    results["n_pixels"] = overall["model"].n_pixels
    if instance:
        t1 = time.time()
        results["instance"] = coco_instance_ap(test.dataset, coco_results, per_cell_type=cell_type_of_id,
                                               img_ids=sorted(cell_type_of_id), verbose=verbose)
        results["instance"]["seconds"] = round(time.time() - t1, 2)
    results["seconds"] = round(time.time() - t0, 2)
    return results


def seed_comparison(results: Mapping) -> str:
    """A side-by-side text table: what the seed project reported vs this evaluation.

    Rows: test pixel accuracy and BCE the seed's way (:data:`presets.SEED_REPORTED`),
    then the kit's own IoU and Dice at its chosen threshold for context.
    """
    seed = results["seed_metrics"]
    rows = [("pixel accuracy (p > 0.5)", f"{SEED_REPORTED['pixel_accuracy']:.2%}", f"{seed['pixel_accuracy']:.2%}"),
            ("BCE", f"{SEED_REPORTED['bce']:.4f}", f"{seed['bce']:.4f}"),
            (f"IoU (threshold {results['threshold']:.2f})", "not reported", f"{results['iou']:.4f}"),
            (f"Dice (threshold {results['threshold']:.2f})", "not reported", f"{results['dice']:.4f}")]
    head = ("metric", "seed reported", f"this run ({results['n_images']} {results['split']} images)")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(3)]
    lines = [head, tuple("-" * w for w in widths), *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


def per_cell_type_table(results: Mapping, which: str = "model") -> MetricsTable:
    """The per-cell-type metrics of :func:`evaluate_model` as a :class:`MetricsTable`.

    which: ``"model"``, a baseline name (``"all_background"``, ``"otsu"``) or
    ``"instance"`` (AP per type).
    """
    if which == "model":
        groups = results["per_cell_type"]
    elif which == "instance":
        groups = results["instance"]["per_cell_type"]
    else:
        groups = results["baselines"][which]["per_cell_type"]
    return MetricsTable.from_groups(groups)


def write_metrics_json(results: Mapping, path) -> Path:
    """Save :func:`evaluate_model`'s results as JSON, atomically (NaN is written as null)."""
    return atomic.write_json(path, results)
