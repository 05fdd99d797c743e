"""Notebook 02's exercises: the area of a mask from its run lengths, and decoding the runs."""
from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np
from pycocotools import mask as mask_utils

from livecell_kit.exercises.core import NotYet, call_student, close, exercise, ok, require_number
from livecell_kit.masks import uncompressed_rle

#: Masks the RLE checkers build (rows, columns, seed, cell fraction): not on the student's screen,
#: none square but the empty one, plus (in :func:`_fresh_rles`) one starting with a cell pixel.
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



def _decode_problem(got, rle: dict, where: str) -> str | None:
    """Why ``got`` (what the student's decoder returned for ``rle``) is not pycocotools' mask, or None."""
    height, width = rle["size"]
    expected = mask_utils.decode(mask_utils.frPyObjects(dict(rle), height, width))
    runs = np.repeat(np.arange(len(rle["counts"])) % 2, rle["counts"]).astype(np.uint8)
    row_major = runs.reshape(height, width)
    got = np.asarray(got)
    if got.shape != (height, width):
        if got.shape == (width, height) and np.array_equal(got, expected.T):
            return (f"on {where} your mask is (W, H) = {got.shape}, transposed: after reshaping to "
                    "(width, height) take .T, or reshape((height, width), order=\"F\")")
        if got.ndim == 1:
            return f"on {where} your mask is flat, shape {got.shape}: reshape it to rle[\"size\"] = [height, width]"
        return (f"on {where} your mask has shape {got.shape}, not (H, W) = ({height}, {width}): "
                "take the size from rle[\"size\"], which is [height, width]")
    if got.dtype == bool or np.isin(got, (0, 1)).all():
        values = got.astype(np.uint8)
    elif np.array_equal(got, 255 * expected):
        return "use 1 for a cell pixel and 0 for background (255 is for PNG files, not masks)"
    else:
        return "a mask holds 0 (background) and 1 (cell), nothing else"
    if np.array_equal(values, expected):
        if got.dtype != np.uint8:
            return (f"the pixels are right; return them as uint8 (.astype(np.uint8)), as pycocotools' "
                    f"decode does, not {got.dtype}")
        return None
    if np.array_equal(values, row_major):
        return (f"on {where} you filled the mask row by row; COCO's runs go column by column "
                "(top to bottom, then the next column): reshape((height, width), order=\"F\")")
    if np.array_equal(values, 1 - expected):
        return (f"on {where} cell and background are swapped: the first run is background "
                "(it can be empty, counts[0] == 0), then cell, background, …")
    if np.array_equal(values, 1 - row_major):
        return (f"on {where} two things differ: the first run is background (not cell), and the runs "
                "fill the mask column by column (order=\"F\"), not row by row")
    n_got, n_expected = int(values.sum()), int(expected.sum())
    amount = ("too many cell pixels" if n_got > n_expected else "too few cell pixels" if n_got < n_expected
              else "the right number of cell pixels, in the wrong places")
    return (f"on {where} your mask has {amount}: each count is the length of a run (not a position), "
            "and runs alternate background, cell, background, …")


def _calls_pycocotools(function) -> bool:
    """True when ``function``'s source calls pycocotools (the checker's own reference)."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    return any(name in source for name in ("pycocotools", "mask_utils", "frPyObjects", "decode("))


@exercise
def check_decode_rle(decode_rle, rle: Mapping) -> str:
    """Exercise 02b: ``decode_rle(rle)`` turns an uncompressed RLE into its uint8 (H, W) 0/1 mask.

    ``rle`` is the notebook cell's ``{"size": [h, w], "counts": [c0, c1, ...]}``; the student's
    function is also tried on small RLEs built here (none square but an empty one, one whose
    first pixel is a cell) and compared with pycocotools' ``decode``.  Typical mistakes get their
    own message: row-major order, a first run of cells, (W, H) shape, 255 for cells, bool dtype.
    """
    if isinstance(rle["counts"], (bytes, str)):
        raise NotYet("this RLE is compressed; use the uncompressed counts list shown in the notebook")
    if _calls_pycocotools(decode_rle):
        raise NotYet("write the decoding with numpy (np.repeat, reshape): pycocotools' decode is "
                     "what the checker compares your mask with")
    cases = [*_fresh_rles(), dict(rle)]
    for case in cases:
        where = ("the notebook's cell" if case is cases[-1]
                 else f"a {case['size'][0]}×{case['size'][1]} test RLE")
        got = call_student(decode_rle, {"size": list(case["size"]), "counts": list(case["counts"])},
                           what="decode_rle(rle)")
        problem = _decode_problem(got, case, where)
        if problem:
            raise NotYet(problem)
    return ok(f"your masks equal pycocotools' decode on {len(cases) - 1} test RLEs (one starts with a cell "
               f"pixel, one has no cell) and on this cell's {rle['size'][0]}×{rle['size'][1]} RLE.")
