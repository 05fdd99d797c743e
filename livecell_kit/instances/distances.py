"""Cells from a model's output: a seeded watershed on distance maps, and one entry point for all models.

A "cells" model predicts three sigmoid channels per pixel (see ``ModelConfig.outputs``):
foreground probability, centre distance and boundary distance, both distances
normalised per cell — 0 at a cell's middle, 1 at its outline and on background.
:func:`watershed_from_distances` seeds one basin per cell where both distances are
small and floods the boundary-distance map from those seeds inside the foreground
(after torch-em's ``watershed_from_center_and_boundary_distances``).

:func:`split_cells` is what evaluate, predict and the notebooks call: it picks the
path from the number of channels (3: distance maps; 2: the border channel; 1: today's
watershed on the semantic mask, :mod:`livecell_kit.instances.semantic`) and returns
the labels with one score per cell for COCO AP.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from skimage import measure, segmentation

from livecell_kit.instances.semantic import relabel, semantic_to_instances
from livecell_kit.presets import CELL_SPLITTING, CellSplitting

#: How the cells were found, by number of output channels (evaluate's ``instance_source``,
#: predict's ``method`` column).
INSTANCE_SOURCES = {3: "distance maps", 2: "border channel",
                    1: "watershed on the semantic mask (no instance head)"}
SCORINGS = ("foreground", "foreground_seed", "foreground_shape")


def instance_source(n_channels: int) -> str:
    """How :func:`split_cells` finds cells in an output with ``n_channels`` channels (1, 2 or 3)."""
    if n_channels not in INSTANCE_SOURCES:
        raise ValueError(f"a model output has 1 (semantic), 2 (cell + border) or 3 (cells: "
                         f"foreground, centre and boundary distance) channels, got {n_channels}")
    return INSTANCE_SOURCES[n_channels]


def _smoothed(a: np.ndarray, sigma: float) -> np.ndarray:
    a = np.asarray(a, np.float32)
    return ndimage.gaussian_filter(a, sigma) if sigma > 0 else a


def distance_seeds(foreground: np.ndarray, centre: np.ndarray, boundary: np.ndarray,
                   params: CellSplitting = CELL_SPLITTING) -> np.ndarray:
    """Bool (H, W): the watershed's seed pixels — inside the foreground (``>= foreground_threshold``),
    near a cell's centre (``centre < centre_threshold``) and far from its outline (``boundary <
    boundary_threshold``).  The maps are taken as given (smooth them first; notebook 06's exercise)."""
    return ((np.asarray(foreground) >= params.foreground_threshold) & (np.asarray(centre) < params.centre_threshold)
            & (np.asarray(boundary) < params.boundary_threshold))


def watershed_from_distances(foreground: np.ndarray, centre: np.ndarray, boundary: np.ndarray,
                             params: CellSplitting = CELL_SPLITTING) -> np.ndarray:
    """Split the foreground into cells with a seeded watershed on the two distance maps.

    foreground, centre, boundary: float (H, W) in [0, 1] — the cells model's channels 0, 1, 2.
    Seeds: 4-connected components of ``(centre < centre_threshold) & (boundary <
    boundary_threshold) & (foreground >= foreground_threshold)``, after Gaussian smoothing
    (``smoothing_sigma`` px) of both distance maps.  Basins: the smoothed boundary map
    flooded from the seeds inside the foreground mask.  Foreground with no seed (a cell
    whose centre the network missed) keeps its own label per 8-connected piece.  Cells
    under ``min_size`` px are dropped and their pixels flooded by the neighbouring cells.
    Returns int32 labels (H, W): 0 = background, 1..n = cells.
    """
    foreground = np.asarray(foreground)
    if foreground.ndim != 2 or np.shape(centre) != foreground.shape or np.shape(boundary) != foreground.shape:
        raise ValueError(f"foreground {foreground.shape}, centre {np.shape(centre)} and boundary "
                         f"{np.shape(boundary)} must be three (H, W) maps of one size")
    fg = foreground >= params.foreground_threshold
    if not fg.any():
        return np.zeros(fg.shape, np.int32)
    height = _smoothed(boundary, params.smoothing_sigma)
    seeds = measure.label(distance_seeds(foreground, _smoothed(centre, params.smoothing_sigma), height, params),
                          connectivity=1)
    labels = segmentation.watershed(height, seeds, mask=fg).astype(np.int32)
    unreached = fg & (labels == 0)
    if unreached.any():
        labels[unreached] = measure.label(unreached, connectivity=2)[unreached] + labels.max()
    sizes = np.bincount(labels.ravel())
    small = sizes < params.min_size
    small[0] = False
    if small.any():  # the neighbours take over the pixels of a fragment (an isolated one goes)
        labels = _flood_fragments(height, labels, small[labels], fg)
    return relabel(labels, params.min_size)


def _flood_fragments(height: np.ndarray, labels: np.ndarray, fragments: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """``labels`` with the ``fragments`` pixels flooded (watershed on ``height``) from the cells beside them.

    The same as a watershed of the whole frame with those pixels unlabelled, but with the mask cut
    to the fragments and the ring of pixels touching them: the watershed queues every labelled
    pixel inside its mask, and only the ring can flood a fragment.
    """
    # Measured on the 37 real dev frames (13,562 cells): labels identical to the whole-frame
    # watershed, split_labels 1.7x as fast (0.092 -> 0.053 s per 520x704 frame, one core).
    ring = ndimage.binary_dilation(fragments, structure=ndimage.generate_binary_structure(2, 1))
    markers = np.where(fragments, 0, labels)
    flooded = segmentation.watershed(height, markers, mask=ring & fg)
    return np.where(fragments, flooded, markers).astype(np.int32)


def _outline_distance(labels: np.ndarray) -> np.ndarray:
    """Per cell, 1 - d / d_max with d the distance (px) to the nearest pixel outside the cell;
    float32 (H, W), 1 on background (the boundary-distance target of a label image)."""
    ids = np.arange(1, int(labels.max()) + 1)
    edge = segmentation.find_boundaries(labels, mode="inner") | (labels == 0)
    d = ndimage.distance_transform_edt(~edge) + 1.0
    d_max = np.zeros(len(ids) + 1)
    d_max[1:] = ndimage.maximum(d, labels, ids)
    return np.where(labels > 0, 1.0 - d / np.maximum(d_max[labels], 1.0), 1.0).astype(np.float32)


def cell_scores(labels: np.ndarray, output: np.ndarray, scoring: str = "foreground",
                smoothing_sigma: float = CELL_SPLITTING.smoothing_sigma) -> dict[int, float]:
    """A confidence in [0, 1] per cell, ``{label: score}``, for COCO AP's ranking.

    labels: int (H, W), 0 = background.  output: (H, W) or (H, W, C) model output.
    scoring (see :class:`~livecell_kit.presets.CellSplitting`): ``"foreground"`` — mean
    foreground probability; ``"foreground_seed"`` — that × (1 - the cell's lowest smoothed
    centre distance); ``"foreground_shape"`` — that × (1 - mean absolute difference between
    the predicted boundary distance and the one of the found cell's own outline).  The two
    products need distance maps (C == 3); other outputs score by foreground.
    """
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    out = np.asarray(output, np.float32)
    out = out[..., None] if out.ndim == 2 else out
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return {}
    score = np.asarray(ndimage.mean(out[..., 0], labels, ids))
    if out.shape[-1] == 3 and scoring == "foreground_seed":
        score = score * (1.0 - np.asarray(ndimage.minimum(_smoothed(out[..., 1], smoothing_sigma), labels, ids)))
    elif out.shape[-1] == 3 and scoring == "foreground_shape":
        mismatch = np.abs(out[..., 2] - _outline_distance(labels))
        score = score * (1.0 - np.asarray(ndimage.mean(mismatch, labels, ids)))
    return {int(i): float(np.clip(s, 0.0, 1.0)) for i, s in zip(ids, score)}


def split_cells(output: np.ndarray, params: CellSplitting = CELL_SPLITTING,
                threshold: float | None = None) -> tuple[np.ndarray, dict[int, float]]:
    """Cells from any model's output: ``(labels int32 (H, W), {label: score})``.

    output: float (H, W) or (H, W, C) sigmoid output of a U-Net.  C == 3 (a "cells"
        model): :func:`watershed_from_distances`; C == 2: the border channel splits the
        foreground; C == 1: today's watershed on the distance transform of the semantic
        mask (no instance head: callers say so, see :func:`instance_source`).
    params: the splitting settings (:data:`~livecell_kit.presets.CELL_SPLITTING`).
    threshold: foreground cut-off overriding ``params.foreground_threshold`` (e.g. the
        one evaluate chose on val), so cells and the foreground mask agree.
    Scores: :func:`cell_scores` with ``params.scoring``; :func:`split_labels` skips them
    (a third of the time with ``"foreground_shape"``).
    """
    out = np.asarray(output, np.float32)
    labels = split_labels(out, params, threshold)
    return labels, cell_scores(labels, out, params.scoring, params.smoothing_sigma)


def split_labels(output: np.ndarray, params: CellSplitting = CELL_SPLITTING,
                 threshold: float | None = None) -> np.ndarray:
    """The labels of :func:`split_cells` (int32 (H, W), 0 = background) without the scores."""
    out = np.asarray(output, np.float32)
    out = out[..., None] if out.ndim == 2 else out
    if out.ndim != 3:
        raise ValueError(f"split_cells expects a model output (H, W) or (H, W, C), got shape {out.shape}")
    n_channels = out.shape[-1]
    instance_source(n_channels)  # refuses other channel counts
    if threshold is not None:
        params = dataclasses.replace(params, foreground_threshold=float(threshold))
    if n_channels == 3:
        return watershed_from_distances(out[..., 0], out[..., 1], out[..., 2], params)
    return semantic_to_instances(out[..., 0], params.foreground_threshold,
                                 border_prob=out[..., 1] if n_channels == 2 else None,
                                 min_size=params.min_size)
