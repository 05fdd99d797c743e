"""Annotations of one image → semantic mask and instance label image.

Both take the annotations of **one image** (COCO dicts, see
:mod:`livecell_kit.masks.segmentations`) and that image's ``height`` and
``width`` in pixels, and return ``(height, width)`` numpy arrays in C order.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from livecell_kit.masks.rle import foreground_runs
from livecell_kit.masks.segmentations import annotation_parts, annotation_rles


def semantic_mask(anns, height: int, width: int, source=None) -> np.ndarray:
    """Union of all cells: uint8 (height, width), 1 = cell, 0 = background.

    Pixel-identical to decoding every annotation on its own and OR-ing, but every
    polygon is rasterised in one ``frPyObjects`` call, the RLEs are merged on
    their runs (cheap) and only the union is decoded — one full-size decode per
    image instead of one per cell.  No annotations → all zeros.
    """
    rles, _ = annotation_parts(anns, height, width, source)
    if not rles:
        return np.zeros((int(height), int(width)), np.uint8)
    union = rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=0)
    # decode returns a Fortran-ordered view; C order is what PIL and numpy users expect.
    return np.ascontiguousarray(mask_utils.decode(union))


def instance_labels(anns, height: int, width: int, source=None) -> np.ndarray:
    """Instance label image: int32 (height, width), 0 = background, k = ``anns[k - 1]``.

    Labels are 1..N in annotation order (not the annotations' ``id`` fields,
    which in LIVECell run into the millions); an annotation with no pixels in
    the image simply does not appear.  **Overlaps:** where cells overlap, the
    smaller cell (fewer pixels) gets the pixel, so small cells lying on big ones
    are not swallowed; equal areas go to the earlier annotation.  Hence
    ``instance_labels(...) > 0`` equals :func:`semantic_mask`.
    """
    height, width = int(height), int(width)
    rles = annotation_rles(anns, height, width, source)
    if not rles:
        return np.zeros((height, width), np.int32)
    # Own run reader, not pycocotools' decode per cell (one H×W image each): 6–8 ms vs
    # 91–97 ms per real 520×704 frame (5 LIVECell val frames, 249 cells each on average;
    # 10 vs 48 ms on the sample's train frames), same labels — bench/masks.py.
    owner, start, length = foreground_runs(rles)
    n = len(rles)
    areas = np.bincount(owner, weights=length, minlength=n)
    # Paint priority: bigger cells low, smaller cells high, so smaller cells win overlaps;
    # among equal areas the earlier annotation ranks higher.
    order = np.lexsort((-np.arange(n), -areas))
    rank = np.empty(n, np.int32)
    rank[order] = np.arange(1, n + 1, dtype=np.int32)
    # Every cell pixel as a column-major index, with its annotation's rank.
    offsets = np.cumsum(length) - length
    pixels = np.arange(int(length.sum()), dtype=np.int64) + np.repeat(start - offsets, length)
    best = np.zeros(height * width, np.int32)
    np.maximum.at(best, pixels, np.repeat(rank[owner], length))  # overlaps: highest rank wins
    label_of_rank = np.zeros(n + 1, np.int32)
    label_of_rank[rank] = np.arange(1, n + 1, dtype=np.int32)
    return np.ascontiguousarray(label_of_rank[best].reshape(width, height).T)

