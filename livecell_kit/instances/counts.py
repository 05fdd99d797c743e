"""What a biologist reads off a frame: how many cells, how large, and confluence.

Confluence is the share of the frame's pixels covered by cells, in percent; for a
prediction it is the foreground mask (not the union of the labelled cells, which
leaves out fragments under ``min_size``), for the truth the semantic mask.
"""
from __future__ import annotations

import numpy as np


def confluence_pct(mask: np.ndarray) -> float:
    """Percent of the frame's pixels inside cells; mask (H, W), nonzero = cell."""
    mask = np.asarray(mask)
    return 100.0 * float(np.count_nonzero(mask)) / max(mask.size, 1)


def cell_statistics(labels: np.ndarray, foreground: np.ndarray) -> dict:
    """``{"cells", "confluence_pct", "mean_area_px", "median_area_px"}`` of one frame.

    labels: int (H, W), 0 = background, cells 1..n (numbering may have gaps).
    foreground: (H, W) mask of cell pixels, nonzero = cell (the confluence).
    Areas are in pixels; with no cell they are 0.
    """
    labels = np.asarray(labels)
    if labels.shape != np.shape(foreground):
        raise ValueError(f"labels {labels.shape} and foreground {np.shape(foreground)} differ in shape")
    areas = np.bincount(labels.ravel().astype(np.int64))[1:]
    areas = areas[areas > 0]
    return {"cells": int(len(areas)), "confluence_pct": confluence_pct(foreground),
            "mean_area_px": float(areas.mean()) if len(areas) else 0.0,
            "median_area_px": float(np.median(areas)) if len(areas) else 0.0}
