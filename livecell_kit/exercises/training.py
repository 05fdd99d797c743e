"""Notebook 04's exercises: crops seen in training, the all-background baseline, and the Dice loss."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from livecell_kit.exercises.core import NotYet, call_student, close, exercise, ok, require_number


@exercise
def check_background_accuracy(answer, masks: Sequence[np.ndarray]) -> str:
    """Exercise 04: pixel accuracy of a model that predicts "no cell" everywhere, on ``masks`` (0/1)."""
    got = require_number(answer, "answer")
    total = sum(int(np.asarray(m).size) for m in masks)
    background = sum(int(np.count_nonzero(np.asarray(m) == 0)) for m in masks)
    expected = background / total
    if not 0.0 <= got <= 1.0:
        raise NotYet("give accuracy as a fraction between 0 and 1, not a percentage")
    if close(got, expected, rel=1e-3):
        return ok(f"{expected:.1%} accuracy without finding a single cell — "
                   "that is why the kit reports IoU and Dice next to accuracy.")
    if close(got, 1 - expected, rel=1e-3):
        raise NotYet("that is the foreground fraction: the all-background model is right on background pixels")
    raise NotYet(f"{got:.4f} is {'too high' if got > expected else 'too low'}: "
                 "count background pixels (mask == 0) over all pixels of all masks")


@exercise
def check_crops_seen(answer, epochs: int, steps_per_epoch: int, batch_size: int) -> str:
    """Exercise 04b: training crops the network sees in a run of ``epochs`` × ``steps_per_epoch`` batches."""
    got = require_number(answer, "answer")
    updates = epochs * steps_per_epoch
    expected = updates * batch_size
    if close(got, expected):
        return ok(f"{updates} weight updates (one per batch) × {batch_size} crops per batch: "
                   f"every crop is drawn afresh, so no two of them are quite the same.")
    if close(got, updates):
        raise NotYet("that counts batches (weight updates); each batch holds several crops")
    if close(got, steps_per_epoch * batch_size):
        raise NotYet("that is one epoch; the run trains for several")
    raise NotYet(f"{got:g} is {'too high' if got > expected else 'too low'}: "
                 "multiply epochs, batches per epoch and crops per batch")


def _dice_cases(seed: int = 4, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Four fresh (truth, prediction) crops, float32 (4, size, size, 1), that the Dice checker tries.

    0: random boxes of cells, random probabilities; 1: no cell, predicted empty (0 everywhere);
    2: random boxes, a good prediction; 3: no cell, a few false alarms.
    """
    rng = np.random.default_rng(seed)
    truth = np.zeros((4, size, size, 1), np.float32)
    for image in (0, 2):
        for _ in range(3):
            top, left = rng.integers(0, size - 6, 2)
            height, width = rng.integers(3, 8, 2)
            truth[image, top:top + height, left:left + width] = 1.0
    prediction = rng.uniform(0.0, 1.0, truth.shape).astype(np.float32)
    prediction[1] = 0.0
    prediction[2] = np.clip(0.8 * truth[2] + rng.uniform(0.0, 0.2, truth[2].shape), 0.0, 1.0)
    prediction[3] = np.where(rng.uniform(size=truth[3].shape) < 0.05, 0.7, 0.0)
    return truth, prediction


def _soft_dice(truth: np.ndarray, prediction: np.ndarray, smooth: float = 1.0, reduce=np.sum, twice: float = 2.0):
    """Soft Dice score per image (B,) of (B, H, W, 1) arrays, with a variant's ``smooth``, ``reduce`` or factor."""
    axes = (1, 2, 3)
    overlap = reduce(truth * prediction, axis=axes)
    total = reduce(truth, axis=axes) + reduce(prediction, axis=axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (twice * overlap + smooth) / (total + smooth)


@exercise
def check_dice_loss(dice_loss) -> str:
    """Exercise 04c: ``dice_loss(y_true, y_pred)`` → 1 − soft Dice per image, shape (B,).

    Tried on four fresh crops (:func:`_dice_cases`: empty ones included) as float32 tensors,
    eagerly and inside a ``tf.function`` (training runs the loss in a graph), against the kit's
    :func:`livecell_kit.train.losses.dice_loss` (smoothing 1, sums over each image's pixels), here
    recomputed in NumPy (:func:`_soft_dice`) so that the checkers load without TensorFlow;
    tests/test_exercises.py holds the two equal.
    """
    import tensorflow as tf  # here, not at the top: the data notebooks import the checkers without TensorFlow

    truth, prediction = _dice_cases()
    y_true, y_pred = tf.constant(truth), tf.constant(prediction)
    what = "dice_loss(y_true, y_pred)"
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        result = call_student(dice_loss, y_true, y_pred, what=what)
        if not tf.is_tensor(result):
            result = tf.constant(np.asarray(result, np.float32))  # a NumPy answer: its shape and values are still checked
        total = tf.reduce_sum(tf.cast(result, tf.float32))
    gradient = tape.gradient(total, y_pred)
    got = np.asarray(result, np.float64)
    expected = 1.0 - _soft_dice(truth.astype(np.float64), prediction.astype(np.float64))  # = train.dice_loss
    if got.size == 1:
        raise NotYet("your loss is one number for the whole batch: give one loss per image, shape (B,) — "
                     "sum over each image's pixels, axes (1, 2, 3), not over the batch (axis 0)")
    if got.shape != expected.shape:
        raise NotYet(f"return one loss per image, shape {expected.shape} for these {len(expected)} images; "
                     f"got shape {got.shape} (sum over axes (1, 2, 3): height, width and channel)")
    if not np.isfinite(got).all():
        raise NotYet("your loss is nan or inf on a crop without cells that is predicted empty (0 / 0): "
                     "add the smoothing term 1 to the numerator and the denominator")
    if np.allclose(got, expected, atol=1e-5):
        if gradient is None:
            raise NotYet("the values are right, but training cannot follow them: use TensorFlow operations "
                         "(tf.reduce_sum, ...) on the tensors, not NumPy, so the loss has a gradient")
        try:
            graph_result = np.asarray(tf.function(dice_loss)(y_true, y_pred), np.float64)
        except Exception as error:  # the student's code, traced into a graph as model.fit will do
            raise NotYet("your function works on its own but not inside a TensorFlow graph, where training runs "
                         f"it ({type(error).__name__}): use tf operations (tf.reduce_sum, ...), not NumPy "
                         "or Python ifs on tensor values") from None
        if not np.allclose(graph_result, expected, atol=1e-5):
            raise NotYet("your function gives other values inside a TensorFlow graph: use tf operations only")
        return ok(f"Your Dice loss equals the kit's on {len(expected)} fresh crops, empty ones included: 0 for a "
                   "perfect prediction, towards 1 without overlap. The notebook now trains with it.")
    if np.allclose(got, 1.0 - expected, atol=1e-5):
        raise NotYet("that is the Dice score, which is 1 for a perfect prediction; a loss must fall as the "
                     "prediction gets better: return 1 − Dice")
    only_below = 1.0 - (2.0 * np.sum(truth * prediction, axis=(1, 2, 3))) / (
        np.sum(truth, axis=(1, 2, 3)) + np.sum(prediction, axis=(1, 2, 3)) + 1.0)
    if np.allclose(got, only_below, atol=1e-5):
        raise NotYet("a crop without cells that is predicted empty should cost 0, yours costs 1: "
                     "add the smoothing term 1 to the numerator (2 · overlap + 1) as well")
    if np.allclose(got, 1.0 - _soft_dice(truth, prediction, smooth=1e-6), atol=1e-3):
        raise NotYet("close, but use the kit's smoothing term 1 (not a tiny epsilon): it keeps the loss of crops "
                     "with few cell pixels from jumping between 0 and 1")
    if np.allclose(got, 1.0 - _soft_dice(truth, prediction, reduce=np.mean), atol=1e-5):
        raise NotYet("sum each image's pixels (tf.reduce_sum), do not average them: the smoothing term 1 is "
                     "one pixel's worth")
    if np.allclose(got, 1.0 - _soft_dice(truth, prediction, twice=1.0), atol=1e-5):
        raise NotYet("Dice counts the overlap twice: 2 · Σ y·p over (Σ y + Σ p)")
    if gradient is None or not np.any(np.asarray(gradient)):
        raise NotYet("your loss does not change with the probabilities y_pred: use them as they are (soft Dice), "
                     "not thresholded, so training has a gradient to follow")
    wrong = int(np.sum(~np.isclose(got, expected, atol=1e-5)))
    raise NotYet(f"your loss differs from the kit's on {wrong} of {len(expected)} test crops: "
                 "1 − (2 · Σ y·p + 1) / (Σ y + Σ p + 1), each sum over one image's pixels")
