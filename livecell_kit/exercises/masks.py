"""Notebook 02's exercise: the area of a mask from its run lengths."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from livecell_kit.exercises.core import NotYet, call_student, close, exercise, ok, require_number
from livecell_kit.masks import uncompressed_rle


_RLE_CASES = ((4, 5, 1, 0.4), (7, 3, 2, 0.6), (9, 11, 3, 0.3), (6, 6, 4, 0.0))


def _fresh_rles() -> list[dict]:
    """Uncompressed RLEs of small random masks, plus one whose first pixel is a cell."""
    rles = []
    for rows, cols, seed, fraction in _RLE_CASES:
        mask = np.random.default_rng(seed).random((rows, cols)) < fraction
        rles.append(uncompressed_rle(mask.astype(np.uint8)))
    starts_with_cell = np.zeros((5, 4), np.uint8)
    starts_with_cell[:3, 0] = starts_with_cell[2:, 2] = 1
    rles.append(uncompressed_rle(starts_with_cell))
    return rles


@exercise
def check_rle_area(rle_area, rle: Mapping, stored_area: float | None = None) -> str:
    """Exercise 02: ``rle_area(counts)`` returns a mask's area in pixels from its run lengths.

    ``rle`` is the notebook cell's uncompressed RLE ``{"size": [h, w], "counts": [c0, c1, ...]}``:
    runs alternate background, foreground, background, … starting with background, in
    column-major order. The student's function is tested on that cell and on small RLEs built
    here, so returning the annotation's stored ``area`` (or any constant) cannot pass.
    ``stored_area``: the annotation's ``area`` field, only quoted in the success message.
    """
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        raise NotYet("this RLE is compressed; use the uncompressed counts list shown in the notebook")
    cases = [*_fresh_rles(), dict(rle)]
    for case in cases:
        runs = list(case["counts"])
        got = require_number(call_student(rle_area, list(runs), what="rle_area(counts)"),
                              "what rle_area(counts) returns")
        expected = sum(runs[1::2])
        if close(got, expected):
            continue
        where = "the notebook's cell" if case is cases[-1] else f"a {case['size'][0]}×{case['size'][1]} test mask"
        if len(runs) > 1 and close(got, sum(runs[0::2])):
            raise NotYet(f"on {where} your function sums the background runs: counts start with a background run")
        if close(got, sum(runs)):
            raise NotYet(f"on {where} your function counts every pixel: only every second run is cell")
        if case is not cases[-1] and stored_area is not None and close(got, stored_area):
            raise NotYet("your function returns the annotation's stored area: compute it from counts, "
                         "the function's argument, so it works for any RLE")
        raise NotYet(f"on {where} the result is {'too high' if got > expected else 'too low'}: "
                     "add up the foreground runs of counts (runs alternate background, cell, background, …)")
    area = int(sum(counts[1::2]))
    note = ""
    if stored_area is not None:
        note = (" — the same as the annotation's area field." if close(area, stored_area)
                else f"; the annotation's area field says {float(stored_area):g} px (the polygon's area, "
                     "not its rasterised pixels).")
    return ok(f"right on {len(cases) - 1} test RLEs (one starts with a cell pixel, one has no cell) "
               f"and on this cell: {area} px{note}")


#: (kernel, in_channels, filters) the convolution checker tries, none of them the exercise's example.
