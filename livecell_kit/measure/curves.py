"""Growth curves from ``wells.csv``: confluence and cell count against elapsed hours.

One PNG per quantity (``growth_confluence.png``, ``growth_cells.png``), one panel per cell
type, one line per well (markers at the time points, a band of ± one standard deviation over
the well's frames where there are several).  A model without an instance head has no cell
counts, so only the confluence figure is drawn.
"""
from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure  # not pyplot: draws without a display, in any thread

from livecell_kit import atomic
from livecell_kit.measure.tables import read_wells

#: (file name, wells.csv column prefix, axis label)
CURVES = (("growth_confluence.png", "confluence_pct", "confluence (%)"),
          ("growth_cells.png", "cells", "cells per frame"))
FIGURE_NAMES = tuple(name for name, _, _ in CURVES)
PANEL_INCHES = (4.5, 3.2)
#: Panels per row: LIVECell's eight cell types make two rows of four.
PANELS_PER_ROW = 4


def _draw(rows: list[dict], column: str, label: str):
    """A matplotlib Figure: one panel per cell type, one line per well."""
    cell_types = sorted({row["cell_type"] for row in rows})
    columns = min(len(cell_types), PANELS_PER_ROW)
    rows_of_panels = math.ceil(len(cell_types) / columns)
    fig = Figure(figsize=(PANEL_INCHES[0] * columns, PANEL_INCHES[1] * rows_of_panels), layout="constrained")
    axes = fig.subplots(rows_of_panels, columns, squeeze=False).ravel()
    for ax in axes[len(cell_types):]:
        ax.set_visible(False)
    for ax, cell_type in zip(axes, cell_types):
        wells = sorted({row["well"] for row in rows if row["cell_type"] == cell_type})
        for well in wells:
            points = sorted((row["time_h"], row[f"{column}_mean"], row[f"{column}_std"])
                            for row in rows if row["cell_type"] == cell_type and row["well"] == well)
            hours, means, stds = zip(*points)
            line, = ax.plot(hours, means, marker="o", markersize=3, label=well)
            if any(not math.isnan(s) for s in stds):
                spread = [0.0 if math.isnan(s) else s for s in stds]
                ax.fill_between(hours, [m - s for m, s in zip(means, spread)],
                                [m + s for m, s in zip(means, spread)], color=line.get_color(), alpha=0.15)
        ax.set_title(cell_type or "all frames")
        ax.set_xlabel("elapsed time (h)")
        ax.set_ylabel(label)
        ax.legend(title="well", fontsize="small", ncol=2 if len(wells) > 6 else 1)
    return fig


def growth_curves(wells_csv, out_dir) -> list[Path]:
    """Write the growth-curve PNGs of a ``wells.csv`` into ``out_dir``; returns their paths
    (none when the table is empty; no cell-count figure when no frame has a count)."""
    rows = read_wells(wells_csv)
    written = []
    for name, column, label in CURVES:
        if not any(not math.isnan(row[f"{column}_mean"]) for row in rows):
            continue
        fig = _draw([row for row in rows if not math.isnan(row[f"{column}_mean"])], column, label)
        path = Path(out_dir) / name
        with atomic.atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120)
        written.append(path)
    return written
