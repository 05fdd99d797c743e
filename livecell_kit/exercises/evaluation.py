"""Notebook 05's exercises: IoU of two masks, and the share of cells found."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from livecell_kit.exercises.core import NotYet, close, exercise, ok, require_number


@exercise
def check_iou(answer, truth: np.ndarray, prediction: np.ndarray) -> str:
    """Exercise 05: foreground intersection over union of two 0/1 masks of the same shape."""
    truth, prediction = np.asarray(truth).astype(bool), np.asarray(prediction).astype(bool)
    got = require_number(answer, "answer")
    inter = np.count_nonzero(truth & prediction)
    union = np.count_nonzero(truth | prediction)
    expected = 1.0 if union == 0 else inter / union
    if close(got, expected, rel=1e-4):
        return ok(f"IoU = TP / (TP + FP + FN) = {inter} / {union} = {expected:.4f}.")
    dice = 2 * inter / max(1, np.count_nonzero(truth) + np.count_nonzero(prediction))
    if close(got, dice, rel=1e-4):
        raise NotYet("that is the Dice coefficient (2·TP / (2·TP + FP + FN)); IoU divides by the union")
    raise NotYet(f"{got:.4f} is {'too high' if got > expected else 'too low'}: "
                 "divide the pixels both masks mark by the pixels either mask marks")


# ---------------------------------------------------------------- notebooks 04 and 05, further exercises


@exercise
def check_hit_fractions(answer: Mapping[float, float], best_ious: Sequence[float]) -> str:
    """Exercise 05b: share of predicted cells that count as found at each IoU threshold.

    ``best_ious``: for every predicted cell, its IoU with the best-matching annotated cell.
    ``answer``: ``{0.5: share, 0.75: share}``, shares between 0 and 1.
    """
    ious = np.asarray(best_ious, dtype=float)
    if not isinstance(answer, Mapping):
        raise NotYet(f"answer should be a dict {{0.5: share, 0.75: share}}, got {type(answer).__name__}")
    missing = [q for q in (0.5, 0.75) if q not in answer]
    if missing:
        raise NotYet(f"thresholds missing from your dict: {missing}")
    for q in (0.5, 0.75):
        got = require_number(answer[q], f"answer[{q}]")
        expected = float(np.mean(ious >= q)) if ious.size else 0.0
        if close(got, expected, abs_=1e-6):
            continue
        if got > 1:
            raise NotYet(f"answer[{q}]: give a share between 0 and 1, not a count or a percentage")
        if close(got, float(np.mean(ious > q)) if ious.size else 0.0, abs_=1e-6):
            raise NotYet(f"answer[{q}]: a cell with IoU exactly {q} counts as found (>=, not >)")
        if close(got, 1 - expected, abs_=1e-6):
            raise NotYet(f"answer[{q}]: that is the share NOT found; count the cells with IoU >= {q}")
        raise NotYet(f"answer[{q}] is {'too high' if got > expected else 'too low'}: the share of "
                     f"best_ious that are >= {q}")
    drop = float(np.mean(ious >= 0.5) - np.mean(ious >= 0.75)) if ious.size else 0.0
    return ok(f"a stricter IoU threshold keeps fewer cells as found (here {100 * drop:.0f} percentage "
               "points fewer at 0.75 than at 0.5): "
               "that is why AP75 is lower than AP50.")


# ---------------------------------------------------------------- notebook 06
