"""Cells counted and confluence measured against the truth, per frame and over a split.

:func:`frame_cells` compares one frame's found cells with its annotations: the count
error in percent of the annotated cells, and confluence (% of the frame's pixels covered
by cells: the truth's semantic mask against the model's foreground mask) in percent and
its error in percentage points.  :func:`summarise_cells` gives the figures a biologist
reads — the median absolute count error, the mean and worst absolute confluence error —
over all frames and per cell type (evaluate's ``cells`` key).
"""
from __future__ import annotations

import math

import numpy as np

from livecell_kit.instances import cell_statistics, confluence_pct


def frame_cells(file: str, cell_type: str, cells_true: int, labels: np.ndarray,
                found_mask: np.ndarray, truth_mask: np.ndarray) -> dict:
    """One frame's counts and confluence, JSON-ready.

    cells_true: the frame's number of annotations.  labels: int (H, W) cells found
    (0 = background).  found_mask, truth_mask: (H, W) foreground found / annotated.
    ``count_error_pct`` = 100 (found - true) / true, None for a frame with no annotation;
    ``confluence_error_pp`` = found - true confluence, in percentage points.
    """
    found = cell_statistics(labels, found_mask)
    true_pct = confluence_pct(truth_mask)
    return {"file": file, "cell_type": cell_type, "cells_true": int(cells_true),
            "cells_found": found["cells"],
            "count_error_pct": (100.0 * (found["cells"] - cells_true) / cells_true) if cells_true else None,
            "confluence_true_pct": true_pct, "confluence_found_pct": found["confluence_pct"],
            "confluence_error_pp": found["confluence_pct"] - true_pct}


def _summary(frames: list[dict]) -> dict:
    counts = [abs(f["count_error_pct"]) for f in frames if f["count_error_pct"] is not None]
    confluence = [abs(f["confluence_error_pp"]) for f in frames]
    return {"n_frames": len(frames),
            "count_median_abs_error_pct": float(np.median(counts)) if counts else math.nan,
            "confluence_mae_pp": float(np.mean(confluence)) if confluence else math.nan,
            "confluence_max_pp": float(np.max(confluence)) if confluence else math.nan}


def summarise_cells(per_frame: list[dict]) -> dict:
    """``{count_median_abs_error_pct, confluence_mae_pp, confluence_max_pp, n_frames,
    per_cell_type: {type: the same}, per_frame}`` from :func:`frame_cells` records.

    Frames without annotations have no count error and are left out of its median (NaN,
    written as null, when no frame has one).
    """
    by_type: dict[str, list[dict]] = {}
    for f in per_frame:
        by_type.setdefault(f["cell_type"], []).append(f)
    return {**_summary(per_frame),
            "per_cell_type": {t: _summary(frames) for t, frames in sorted(by_type.items())},
            "per_frame": list(per_frame)}
