"""Pixel metrics of a segmentation, pooled over images, and the threshold that maximises them.

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

:class:`ThresholdSweep` collects, in one pass, histograms of predicted
probabilities separately for truth-background and truth-cell pixels; the
confusion counts at every threshold follow from cumulative sums.
:class:`MetricsTable` prints rows of metrics (e.g. per cell type) as Markdown.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np

from livecell_kit.presets import THRESHOLD_SWEEP

EPS = 1e-7
METRIC_KEYS = ("pixel_accuracy", "bce", "iou", "dice", "precision", "recall")


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


# ---------------------------------------------------------------------------- table

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
            import pandas as pd  # optional: the kit does not depend on pandas
        except ImportError as err:
            raise ImportError("MetricsTable.to_pandas needs pandas (pip install pandas); "
                              "print the table or use .rows instead") from err
        return pd.DataFrame(self.rows).set_index(self.name_key)


# ---------------------------------------------------------------------------- threshold sweep

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

    bins: int = THRESHOLD_SWEEP.bins
    lo: float = THRESHOLD_SWEEP.lo
    hi: float = THRESHOLD_SWEEP.hi
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
