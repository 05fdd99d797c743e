"""Notebook 04's exercises: crops seen in training, and the all-background baseline."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from livecell_kit.exercises.core import NotYet, close, exercise, ok, require_number


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
