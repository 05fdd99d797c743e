"""Cells of outputs too big to split at once: :func:`split_cells` tile by tile, bounded memory.

Each tile is split with ``margin`` px of context on every side; a cell is kept by the tile
that holds its centroid, whole (its pixels in the margin too), so cells smaller than the
margin come out as in one piece.  Where two tiles' cells claim a pixel, the first tile's
keeps it (tiles go row by row).
"""
from __future__ import annotations

import numpy as np

from livecell_kit.instances.distances import split_cells, split_labels
from livecell_kit.presets import CELL_SPLITTING, SPLIT_TILE, SPLIT_TILE_MARGIN, SPLIT_TILE_PIXELS, CellSplitting


def split_any_size(output: np.ndarray, params: CellSplitting = CELL_SPLITTING, threshold: float | None = None,
                   scores: bool = True) -> tuple[np.ndarray, dict[int, float]]:
    """:func:`split_cells`, tile by tile (:func:`split_cells_tiled`) above ``SPLIT_TILE_PIXELS`` pixels;
    ``scores=False``: no scores (an empty dict), a third faster (:func:`split_labels`)."""
    height, width = np.shape(output)[:2]
    if height * width > SPLIT_TILE_PIXELS:
        return split_cells_tiled(output, params, threshold, scores=scores)
    return _split(output, params, threshold, scores)


def _split(output, params, threshold, scores: bool) -> tuple[np.ndarray, dict[int, float]]:
    return split_cells(output, params, threshold) if scores else (split_labels(output, params, threshold), {})


def split_cells_tiled(output: np.ndarray, params: CellSplitting = CELL_SPLITTING, threshold: float | None = None,
                      tile: int = SPLIT_TILE, margin: int = SPLIT_TILE_MARGIN,
                      scores: bool = True) -> tuple[np.ndarray, dict[int, float]]:
    """:func:`split_cells` of an (H, W) or (H, W, C) output in ``tile``-px tiles with ``margin`` px of context.

    Returns ``(labels int32 (H, W), {label: score})`` like :func:`split_cells` (which it is,
    when the output fits in one tile and its margins; ``scores=False``: an empty dict);
    memory beyond the output and the labels: one tile's split.
    """
    out = np.asarray(output, np.float32)
    out = out[..., None] if out.ndim == 2 else out
    height, width = out.shape[:2]
    tile, margin = max(int(tile), 1), max(int(margin), 0)
    if height <= tile + 2 * margin and width <= tile + 2 * margin:
        return _split(out, params, threshold, scores)
    labels = np.zeros((height, width), np.int32)
    found: dict[int, float] = {}  # new label -> score (None without scores)
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            ya, xa = max(y0 - margin, 0), max(x0 - margin, 0)
            yb, xb = min(y0 + tile + margin, height), min(x0 + tile + margin, width)
            cells, cell_score = _split(out[ya:yb, xa:xb], params, threshold, scores)
            owned = _owned(cells, (y0 - ya, x0 - xa, min(tile, height - y0), min(tile, width - x0)))
            region = labels[ya:yb, xa:xb]  # a view: writes go into labels
            paste = owned[cells] & (region == 0)
            kept = owned & (np.bincount(cells[paste], minlength=len(owned)) > 0)  # not all taken already
            new_id = np.zeros(len(owned), np.int32)
            new_id[kept] = np.arange(len(found) + 1, len(found) + 1 + int(kept.sum()))
            region[paste] = new_id[cells[paste]]
            found.update({int(new_id[i]): cell_score.get(int(i)) for i in np.flatnonzero(kept)})
    return labels, found if scores else {}


def _owned(cells: np.ndarray, core: tuple[int, int, int, int]) -> np.ndarray:
    """bool per label 0..max: the cell's centroid lies in ``core`` = (top, left, height, width)."""
    n = int(cells.max(initial=0)) + 1
    flat = cells.ravel()
    count = np.bincount(flat, minlength=n).astype(np.float64)
    rows, cols = np.divmod(np.arange(flat.size), cells.shape[1])
    cy = np.bincount(flat, weights=rows, minlength=n) / np.maximum(count, 1)
    cx = np.bincount(flat, weights=cols, minlength=n) / np.maximum(count, 1)
    top, left, h, w = core
    owned = (count > 0) & (cy >= top) & (cy < top + h) & (cx >= left) & (cx < left + w)
    owned[0] = False
    return owned
