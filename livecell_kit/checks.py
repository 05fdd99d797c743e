"""Answer checkers for the notebooks' exercises.

Each ``check_*`` function recomputes the right answer from the same inputs, prints
a short confirmation when the student's answer matches, and otherwise raises
:class:`NotYet` explaining what differs and where to look. Checkers never reveal
the number itself before a genuine attempt: they say "too high"/"too low" and why.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


class NotYet(AssertionError):
    """The answer is not right yet; the message says why."""


def _close(answer, expected, rel=1e-6, abs_=1e-9) -> bool:
    return math.isclose(float(answer), float(expected), rel_tol=rel, abs_tol=abs_)


def _require_number(answer, what: str) -> float:
    if answer is None or isinstance(answer, (str, bytes)) or np.ndim(answer) != 0:
        raise NotYet(f"{what} should be a single number, got {type(answer).__name__}: {answer!r}")
    return float(answer)


def _ok(message: str) -> bool:
    print(f"Correct! {message}")
    return True


def check_cells_per_type(answer: Mapping[str, float], split) -> bool:
    """Exercise 01: mean number of annotated cells per image, for each cell type of ``split``."""
    counts: dict[str, list[int]] = {}
    for image, n_cells in zip(split.images, split.cell_counts()):
        counts.setdefault(split.cell_type(image), []).append(int(n_cells))
    expected = {t: float(np.mean(c)) for t, c in counts.items()}
    if not isinstance(answer, Mapping):
        raise NotYet(f"answer should be a dict {{cell type: mean cells per image}}, got {type(answer).__name__}")
    missing = sorted(set(expected) - set(answer))
    if missing:
        raise NotYet(f"cell types missing from your dict: {missing}")
    for cell_type, value in expected.items():
        got = _require_number(answer[cell_type], f"answer[{cell_type!r}]")
        if not _close(got, value, rel=1e-3):
            hint = "too high" if got > value else "too low"
            raise NotYet(f"{cell_type}: {got:.2f} is {hint}. Count annotations per image "
                         f"(split.annotations_for(image['id'])) and average over that type's images.")
    crowded = max(expected, key=expected.get)
    return _ok(f"{crowded} is the most crowded type here ({expected[crowded]:.1f} cells per image).")


def check_rle_area(area, rle: Mapping) -> bool:
    """Exercise 02: a cell's area in pixels from its (uncompressed) run-length encoding.

    ``rle`` is ``{"size": [h, w], "counts": [c0, c1, ...]}``: runs alternate
    background, foreground, background, … starting with background, in column-major order.
    """
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        raise NotYet("this RLE is compressed; decode it with pycocotools.mask.frPyObjects "
                     "or use the uncompressed counts list shown in the notebook")
    got = _require_number(area, "area")
    expected = float(sum(counts[1::2]))
    if _close(got, expected):
        return _ok(f"{int(expected)} px: the sum of every second run, starting at the second.")
    if _close(got, sum(counts[0::2])):
        raise NotYet("you summed the background runs: counts start with a background run")
    if _close(got, sum(counts)):
        raise NotYet("that is every pixel of the image: only every second run is cell")
    raise NotYet(f"{got:g} is {'too high' if got > expected else 'too low'}: "
                 "add up the foreground runs (counts[1], counts[3], …)")


def check_conv_params(answer, kernel: int = 3, in_channels: int = 1, filters: int = 16) -> bool:
    """Exercise 03: parameters of a ``kernel``×``kernel`` convolution with bias."""
    got = _require_number(answer, "answer")
    weights = kernel * kernel * in_channels * filters
    expected = weights + filters
    if _close(got, expected):
        return _ok(f"{kernel}×{kernel}×{in_channels}×{filters} weights + {filters} biases = {expected}.")
    if _close(got, weights):
        raise NotYet("close: each filter also has one bias")
    raise NotYet(f"{got:g} is {'too high' if got > expected else 'too low'}: each of the {filters} "
                 f"filters has a {kernel}×{kernel} kernel per input channel, plus a bias")


def check_background_accuracy(answer, masks: Sequence[np.ndarray]) -> bool:
    """Exercise 04: pixel accuracy of a model that predicts "no cell" everywhere, on ``masks`` (0/1)."""
    got = _require_number(answer, "answer")
    total = sum(int(np.asarray(m).size) for m in masks)
    background = sum(int(np.count_nonzero(np.asarray(m) == 0)) for m in masks)
    expected = background / total
    if not 0.0 <= got <= 1.0:
        raise NotYet("give accuracy as a fraction between 0 and 1, not a percentage")
    if _close(got, expected, rel=1e-3):
        return _ok(f"{expected:.1%} accuracy without finding a single cell — "
                   "that is why the kit reports IoU and Dice next to accuracy.")
    if _close(got, 1 - expected, rel=1e-3):
        raise NotYet("that is the foreground fraction: the all-background model is right on background pixels")
    raise NotYet(f"{got:.4f} is {'too high' if got > expected else 'too low'}: "
                 "count background pixels (mask == 0) over all pixels of all masks")


def check_iou(answer, truth: np.ndarray, prediction: np.ndarray) -> bool:
    """Exercise 05: foreground intersection over union of two 0/1 masks of the same shape."""
    truth, prediction = np.asarray(truth).astype(bool), np.asarray(prediction).astype(bool)
    got = _require_number(answer, "answer")
    inter = np.count_nonzero(truth & prediction)
    union = np.count_nonzero(truth | prediction)
    expected = 1.0 if union == 0 else inter / union
    if _close(got, expected, rel=1e-4):
        return _ok(f"IoU = TP / (TP + FP + FN) = {inter} / {union} = {expected:.4f}.")
    dice = 2 * inter / max(1, np.count_nonzero(truth) + np.count_nonzero(prediction))
    if _close(got, dice, rel=1e-4):
        raise NotYet("that is the Dice coefficient (2·TP / (2·TP + FP + FN)); IoU divides by the union")
    raise NotYet(f"{got:.4f} is {'too high' if got > expected else 'too low'}: "
                 "divide the pixels both masks mark by the pixels either mask marks")
