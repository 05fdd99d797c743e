"""Notebook 05's exercises: IoU and Dice from pixel confusion counts, and the share of cells found."""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from livecell_kit.exercises.core import NotYet, call_student, close, exercise, ok, require_number

#: Fresh (TP, FP, FN) cases for :func:`check_iou_dice`, each scored with two TN counts.
_COUNT_CASES = ((63_674, 5_231, 7_796), (120, 0, 35), (7, 93, 0), (0, 412, 0), (0, 0, 58), (1, 1, 1))
_TNS = (250_000, 9)


def _expected_iou_dice(tp: int, fp: int, fn: int) -> tuple[float, float]:
    """The kit's rule (:func:`livecell_kit.evaluate.confusion_metrics`): both 1.0 when nothing is
    annotated and nothing predicted."""
    if tp + fp + fn == 0:
        return 1.0, 1.0
    return tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


def _pair(function, tp, fp, fn, tn) -> tuple[float, float]:
    """The student's ``(iou, dice)`` for one case, as two floats."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # 0/0 with numpy ints: nan, said below
        warnings.simplefilter("ignore")
        result = call_student(function, tp, fp, fn, tn, what="iou_dice(tp, fp, fn, tn)")
    if isinstance(result, (str, bytes, Mapping)) or np.ndim(result) != 1 or len(result) != 2:
        raise NotYet(f"iou_dice should return two numbers, iou and dice (return iou, dice), got {result!r}")
    return require_number(result[0], "the IoU it returns"), require_number(result[1], "the Dice it returns")


@exercise
def check_iou_dice(function) -> str:
    """Exercise 05: ``function(tp, fp, fn, tn) -> (iou, dice)`` of the cell class from pixel counts.

    Tried on fresh counts (Python and numpy integers, each case with a large and a small TN)
    and on a frame with no cell annotated and none predicted, where the kit scores 1.0.
    """
    for tp, fp, fn in _COUNT_CASES:
        iou, dice = _expected_iou_dice(tp, fp, fn)
        got = [_pair(function, tp, fp, fn, tn) for tn in _TNS]
        if any(not close(g, e, rel=1e-6) for pair in got for g, e in zip(pair, (iou, dice))):
            _explain(got, tp, fp, fn, iou, dice)
    for kind in (int, np.int64):  # a frame without cells, nothing predicted: both are empty
        try:
            got = _pair(function, *(kind(v) for v in (0, 0, 0, 250_000)))
        except NotYet as reason:
            if "ZeroDivisionError" not in str(reason):
                raise
            got = (math.nan, math.nan)
        if not (close(got[0], 1.0) and close(got[1], 1.0)):
            raise NotYet("a frame with no cell, where none is predicted, has TP = FP = FN = 0, and 0 / 0 "
                         f"has no value (yours gave {got[0]:g}, {got[1]:g}): nothing was missed and nothing "
                         "invented, a perfect answer, so return 1.0 for both then, as the kit does")
    return ok(f"IoU = TP / (TP + FP + FN) and Dice = 2·TP / (2·TP + FP + FN) on {len(_COUNT_CASES)} fresh "
              "cases and an empty frame. Neither counts TN, so a sea of background cannot flatter them, "
              "and Dice = 2·IoU / (1 + IoU) is never below IoU.")


def _explain(got, tp, fp, fn, iou, dice) -> None:
    """Raise the :class:`NotYet` that names the student's mistake (never the expected value)."""
    (iou_1, dice_1), (iou_2, dice_2) = got
    if not (close(iou_1, iou_2) and close(dice_1, dice_2)):
        raise NotYet("your IoU or Dice changes when only TN changes: leave TN out. Both score the cell "
                     "class alone, so the background pixels that make pixel accuracy look good do not count")
    same = lambda a, b: close(a, b, rel=1e-6)  # noqa: E731 - a short name keeps the rules below readable
    if same(iou_1, dice) and same(dice_1, iou):
        raise NotYet("IoU and Dice are swapped: IoU divides by the union (TP + FP + FN), Dice counts TP twice")
    if tp and same(iou_1, tp / (2 * tp + fp + fn)):
        raise NotYet("your IoU divides by the two masks' sizes added, (TP + FP) + (TP + FN), which counts the "
                     "overlap twice: the union counts each pixel once, TP + FP + FN")
    if tp and same(dice_1, 2 * tp / (tp + fp + fn)):
        raise NotYet("your Dice doubles TP above the line only: Dice = 2·TP / (2·TP + FP + FN)")
    if not same(iou_1, iou):
        raise NotYet(f"your IoU is {'too high' if iou_1 > iou else 'too low'} (for TP={tp}, FP={fp}, FN={fn}): "
                     "IoU = pixels both masks call cell / pixels either mask calls cell")
    raise NotYet(f"your IoU is right, your Dice is {'too high' if dice_1 > dice else 'too low'} "
                 f"(for TP={tp}, FP={fp}, FN={fn}): Dice = 2·TP / (size of truth + size of prediction)")


@exercise
def check_hit_fractions(answer: Mapping[float, float], best_ious: Sequence[float]) -> str:
    """Exercise 05b: share of predicted cells that count as found at each IoU threshold.

    ``best_ious``: for every predicted cell, its IoU with the best-matching annotated cell.
    ``answer``: ``{0.5: share, 0.75: share}``, shares between 0 and 1.
    """
    ious = np.asarray(best_ious, dtype=float)
    if not isinstance(answer, Mapping):
        raise NotYet(f"answer should be a dict {{0.5: share, 0.75: share}}, got {type(answer).__name__}")
    texts = [k for k in answer if isinstance(k, (str, bytes))]
    if texts:
        raise NotYet(f"the keys must be numbers, not text: write {{0.5: ..., 0.75: ...}} without quotes "
                     f"(yours has {texts[0]!r})")
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
