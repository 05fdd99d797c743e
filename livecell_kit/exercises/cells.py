"""Notebook 06's exercise: the seeds of the watershed."""
from __future__ import annotations

import numpy as np
from skimage import measure

from livecell_kit import instances
from livecell_kit.exercises.core import NotYet, call_student, exercise, ok
from livecell_kit.masks import distance_targets


def _touching_cells(seed: int, size: int = 48) -> np.ndarray:
    """A small label image (size × size) of random discs that touch, as a crowded sheet does."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    for label in range(1, 6):
        cy, cx = rng.uniform(8, size - 8, 2)
        radius = rng.uniform(6, 11)
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2) & (labels == 0)] = label
    return labels


def _seed_cases(splitting) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(number of cells, foreground, centre, boundary) maps the seed checker tries: perfect targets of random
    touching cells, each with a patch of debris where the distances look like a cell's
    centre but the foreground says background."""
    cases = []
    for seed in (11, 12, 13):
        labels = _touching_cells(seed)
        targets = distance_targets(labels)
        foreground, centre, boundary = (targets[..., c].copy() for c in range(3))
        debris = (slice(0, 4), slice(0, 4))
        foreground[debris] = 0.0
        centre[debris] = boundary[debris] = 0.5 * min(splitting.centre_threshold, splitting.boundary_threshold)
        cases.append((len(np.unique(labels[labels > 0])), foreground, centre, boundary))
    return cases


@exercise
def check_seeds(find_seeds, splitting) -> str:
    """Exercise 06: ``find_seeds(foreground, centre, boundary, splitting)`` marks the watershed's seeds.

    Tried on fresh maps of random touching cells (:func:`_seed_cases`) against
    :func:`livecell_kit.instances.distance_seeds` with the same ``splitting`` thresholds.
    """
    cases = _seed_cases(splitting)
    n_seeds = n_cells = 0
    for cells, foreground, centre, boundary in cases:
        got = np.asarray(call_student(find_seeds, foreground, centre, boundary, splitting,
                                      what="find_seeds(...)"))
        expected = instances.distance_seeds(foreground, centre, boundary, splitting)
        if got.shape != expected.shape:
            raise NotYet(f"find_seeds should return one True/False value per pixel, shape {expected.shape}; "
                         f"got shape {got.shape}")
        if got.dtype != bool and not np.isin(got, (0, 1)).all():
            raise NotYet("return a True/False mask of seed pixels; numbering the seeds comes next (measure.label)")
        got = got.astype(bool)
        if np.array_equal(got, expected):
            n_seeds += int(measure.label(expected).max())
            n_cells += cells
            continue
        if (got & ~(foreground >= splitting.foreground_threshold)).any():
            raise NotYet("some of your seeds lie outside the foreground (debris looks like a cell's centre "
                         "in the distance maps): also require foreground >= splitting.foreground_threshold")
        if (got & (centre >= splitting.centre_threshold)).any():
            raise NotYet("some of your seeds are far from their cell's centre: the centre distance is 0 at the "
                         "centre and 1 at the cell's edge, so keep pixels *below* splitting.centre_threshold")
        if (got & (boundary >= splitting.boundary_threshold)).any():
            raise NotYet("some of your seeds lie near a cell's outline: the (inverted) boundary distance is 0 "
                         "deep inside a cell and 1 at its outline, so keep pixels *below* "
                         "splitting.boundary_threshold")
        raise NotYet("too few seed pixels: a pixel is a seed when all three tests pass — check each "
                     "comparison against its threshold in splitting")
    return ok(f"your seeds match the kit's on {len(cases)} fresh frames of touching cells: "
               f"{n_seeds} seeds for {n_cells} cells, one per cell where the maps are right.")
