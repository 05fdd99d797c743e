"""Cells, not pixels: a non-overlapping label image and the instance U-Net's training targets.

LIVECell's outlines overlap (neighbours share pixels; some cells are outlined twice,
LIVECell issue #30), but a network predicts one value per pixel, so
:func:`cell_labels` first gives every pixel to one cell, by this rule:

1. outlines are taken smallest area first (equal areas: annotation order); one whose
   pixels are >= 75 % covered by outlines already kept is **dropped** (a duplicate, or a
   cell hidden under smaller ones);
2. a pixel covered by several kept outlines goes to the one whose **centre** is nearest
   (ties: the smaller cell).  A cell's centre is its own pixel farthest from its outline
   (the argmax of its inside distance transform), always inside the cell, unlike the
   centroid of a crescent;
3. a pixel covered only by dropped outlines goes to the cell of the nearest pixel that is
   inside the same dropped outline and already labelled (in practice the kept outline
   that covers >= 75 % of it), so the label image's foreground equals
   :func:`~livecell_kit.masks.semantic_mask`.

From a label image (int (H, W), 0 = background, k = cell k), with distances in pixels
between pixel centres and pixels beyond the frame counted as outside every cell:

* :func:`distance_targets` — float32 (H, W, 3): foreground, per-cell normalised centre
  distance, inverted per-cell normalised boundary distance (torch-em's
  ``PerObjectDistanceTransform`` convention), the instance U-Net's three channels;
* :func:`boundary_target` — uint8 (H, W), 1 on every cell's outline, the simpler
  target, for teaching and comparison.

Per-cell work happens inside the cell's bounding box grown by 1 px, as
:func:`~livecell_kit.masks.border_weight_map` does (``bench/masks.py`` times it on real frames).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.segmentation import find_boundaries

from livecell_kit.masks.rle import foreground_runs
from livecell_kit.masks.segmentations import annotation_rles

#: An outline whose pixels are at least this fraction covered by smaller kept outlines is dropped.
DUPLICATE_COVER = 0.75


def _check_labels(labels) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer (H, W) label image, got {labels.dtype} "
                         f"of shape {labels.shape}")
    return labels


def _centre(rows: np.ndarray, cols: np.ndarray) -> tuple[int, int]:
    """(row, col) of the pixel of a cell (given by its pixels' rows and columns) farthest from its outline."""
    r0, c0 = rows.min() - 1, cols.min() - 1  # a 1-px border of outside around the cell
    inside = np.zeros((rows.max() - r0 + 2, cols.max() - c0 + 2), bool)
    inside[rows - r0, cols - c0] = True
    r, c = np.unravel_index(np.argmax(ndimage.distance_transform_edt(inside)), inside.shape)
    return int(r + r0), int(c + c0)


def _fill_from_neighbours(labels: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    """Rule 3, in place: unlabelled pixels of one dropped outline take the label of the
    nearest labelled pixel inside that outline."""
    r0, c0 = rows.min(), cols.min()
    window = labels[r0:rows.max() + 1, c0:cols.max() + 1]  # a view: written in place
    outline = np.zeros(window.shape, bool)
    outline[rows - r0, cols - c0] = True
    todo = outline & (window == 0)
    source = outline & (window > 0)
    if not todo.any() or not source.any():
        return
    _, (near_r, near_c) = ndimage.distance_transform_edt(~source, return_indices=True)
    window[todo] = window[near_r[todo], near_c[todo]]


def cell_labels(anns, height: int, width: int, source=None) -> np.ndarray:
    """Non-overlapping label image of one image: int32 (height, width), 0 = background,
    k = ``anns[k - 1]`` (as :func:`~livecell_kit.masks.instance_labels`; dropped
    duplicates' labels do not appear).

    Every pixel goes to one cell by the module's rule (smallest outlines first, >= 75 %
    covered ones dropped, shared pixels to the nearest centre), so ``cell_labels(...) > 0``
    equals :func:`~livecell_kit.masks.semantic_mask`.  ``source`` (e.g. the JSON path)
    goes into error messages.
    """
    height, width = int(height), int(width)
    rles = annotation_rles(anns, height, width, source)
    labels = np.zeros(height * width, np.int32)  # column-major, like the RLEs
    if not rles:
        return labels.reshape(height, width)
    owner, start, length = foreground_runs(rles)  # runs grouped by annotation, in order
    n = len(rles)
    offsets = np.cumsum(length) - length
    pixels = np.arange(int(length.sum()), dtype=np.int64) + np.repeat(start - offsets, length)
    pixel_owner = np.repeat(owner, length)
    areas = np.bincount(pixel_owner, minlength=n)
    bounds = np.concatenate(([0], np.cumsum(areas)))

    covered = np.zeros(height * width, bool)
    keep = np.zeros(n, bool)
    order = np.lexsort((np.arange(n), areas))  # smallest first, then annotation order
    for i in order[areas[order] > 0]:
        own = pixels[bounds[i]:bounds[i + 1]]
        if np.count_nonzero(covered[own]) >= DUPLICATE_COVER * own.size:
            continue
        keep[i] = True
        covered[own] = True

    kept = keep[pixel_owner]
    kept_pixels, kept_owner = pixels[kept], pixel_owner[kept]
    cover_count = np.bincount(kept_pixels, minlength=height * width)
    labels[kept_pixels] = kept_owner + 1  # right wherever one kept outline covers the pixel
    shared = cover_count[kept_pixels] > 1
    if shared.any():
        sp, so = kept_pixels[shared], kept_owner[shared]
        centres = np.zeros((n, 2), np.int64)
        for i in np.unique(so):
            own = pixels[bounds[i]:bounds[i + 1]]
            centres[i] = _centre(own % height, own // height)
        d2 = (sp % height - centres[so, 0]) ** 2 + (sp // height - centres[so, 1]) ** 2
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n)
        pick = np.lexsort((rank[so], d2, sp))  # per pixel: nearest centre, then the smaller cell
        first = np.concatenate(([True], sp[pick][1:] != sp[pick][:-1]))
        labels[sp[pick][first]] = so[pick][first] + 1

    labels = np.ascontiguousarray(labels.reshape(width, height).T)
    for i in np.flatnonzero(~keep & (areas > 0)):
        own = pixels[bounds[i]:bounds[i + 1]]
        _fill_from_neighbours(labels, own % height, own // height)
    return labels


def distance_targets(labels) -> np.ndarray:
    """The instance U-Net's targets: float32 (H, W, 3), every value in 0..1.

    ``labels``: int (H, W) non-overlapping labels (0 = background), as :func:`cell_labels`.
    Channels, each normalised per cell so they do not change when a crop is zoomed:

    0. foreground: 1 inside a cell, 0 on background;
    1. centre distance: Euclidean distance (px) to the cell's centre (its pixel farthest
       from its outline) divided by the largest one in the cell: 0 at the centre, 1 at the
       cell's farthest pixel; 1 on background;
    2. boundary distance, inverted: ``1 - d / d_max`` with d the distance (px) to the
       nearest pixel outside the cell (another cell, background or beyond the frame):
       0 at the innermost pixel, largest (``1 - 1 / d_max``) on the outline; 1 on background.

    A cell of one pixel (or one pixel thick) is 0 in both distance channels.
    """
    labels = _check_labels(labels)
    height, width = labels.shape
    padded = np.pad(labels, 1)  # every box grown by 1 px stays inside; the frame's edge is outside
    out = np.ones((height + 2, width + 2, 3), np.float32)
    out[..., 0] = padded > 0
    for k, box in enumerate(ndimage.find_objects(padded), start=1):
        if box is None:
            continue
        ys, xs = box
        window = np.s_[ys.start - 1:ys.stop + 1, xs.start - 1:xs.stop + 1]
        inside = padded[window] == k
        depth = ndimage.distance_transform_edt(inside)
        r, c = np.unravel_index(np.argmax(depth), depth.shape)
        rr, cc = np.nonzero(inside)
        to_centre = np.hypot(rr - r, cc - c)
        reach = to_centre.max()
        target = out[window]  # a view: written in place
        target[rr, cc, 1] = to_centre / reach if reach > 0 else 0.0
        target[rr, cc, 2] = 1.0 - depth[rr, cc] / depth[r, c]
    return np.ascontiguousarray(out[1:-1, 1:-1])


def boundary_target(labels) -> np.ndarray:
    """Outline of every cell: uint8 (H, W), 1 on a cell's own pixels that touch another label
    (background or another cell; skimage ``find_boundaries(mode="inner")``), else 0.
    Where two cells touch both sides of the contact are marked."""
    labels = _check_labels(labels)
    return find_boundaries(labels, mode="inner").astype(np.uint8)
