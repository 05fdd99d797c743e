"""``cells.csv``: one row per predicted frame — cells, confluence, cell areas — in predict's output folder.

Columns (:data:`COLUMNS`): ``file`` (the input image as given), ``page`` (1-based page of
a multi-page file, empty otherwise), ``labels`` (its ``_labels.tif``, relative to the
output folder), ``cells``, ``confluence_pct`` (% of the frame's pixels in the foreground
mask), ``mean_area_px``, ``median_area_px`` (cell areas in pixels), ``method`` (how the
cells were found: ``livecell_kit.instances.INSTANCE_SOURCES``), ``threshold`` (the
foreground cut-off) and ``predicted_at`` (when, ISO 8601, UTC).

A rerun into the same folder rewrites the rows of the frames it predicts and keeps the
rows of the others, so predicting more files into a folder grows one table for all of
them; a row whose ``_labels.tif`` is gone is dropped, and ``method`` / ``predicted_at``
tell apart frames predicted by different models.  The table is written atomically.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from pathlib import Path

from livecell_kit import atomic
from livecell_kit.instances import INSTANCE_SOURCES

TABLE_NAME = "cells.csv"
COLUMNS = ("file", "page", "labels", "cells", "confluence_pct", "mean_area_px", "median_area_px",
           "method", "threshold", "predicted_at")


def table_rows(written: list[dict], out_dir) -> list[dict]:
    """Rows of :data:`COLUMNS` for predict's outputs of one run.

    written: ``predict.predict_paths`` entries — ``image`` (Path), ``page`` (0-based),
    ``labels`` (Path of the written label image), ``cells`` (``instances.cell_statistics``
    of the frame), ``method`` and ``threshold``.
    """
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = []
    for w in written:
        stats = w["cells"]
        rows.append({"file": str(w["image"]), "page": "" if w.get("pages", 1) == 1 else w["page"] + 1,
                     "labels": Path(w["labels"]).relative_to(out_dir).as_posix(),
                     "cells": stats["cells"], "confluence_pct": f"{stats['confluence_pct']:.2f}",
                     "mean_area_px": f"{stats['mean_area_px']:.1f}",
                     "median_area_px": f"{stats['median_area_px']:.1f}",
                     "method": w["method"], "threshold": f"{w['threshold']:g}", "predicted_at": when})
    return rows


def _earlier_rows(path: Path, out_dir: Path) -> list[dict]:
    """The rows of an existing table whose label image still exists; [] if there is none.

    A file of other columns (another tool's) is replaced with a note.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        print(f"{path}: cannot be read as the cells table ({err}); writing it anew for this run's files")
        return []
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        print(f"{path}: its columns are not predict's ({', '.join(COLUMNS)}); "
              f"writing it anew for this run's files")
        return []
    return [row for row in reader if row["labels"] and (out_dir / row["labels"]).is_file()]


def write_cells_table(written: list[dict], out_dir) -> tuple[Path, int]:
    """Write ``out_dir/cells.csv`` for this run's outputs (see the module docstring).

    Returns the table's path and how many rows of earlier runs it kept.
    """
    out_dir = Path(out_dir)
    path = out_dir / TABLE_NAME
    rows = table_rows(written, out_dir)
    now = {row["labels"] for row in rows}
    kept = [row for row in _earlier_rows(path, out_dir) if row["labels"] not in now]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(kept + rows, key=lambda row: row["labels"]))
    atomic.write_bytes(path, buffer.getvalue().encode("utf-8"))
    return path, len(kept)


def report_cells_table(written: list[dict], out_dir) -> Path:
    """:func:`write_cells_table`, then say where it is and — for a model without an instance
    head — that its cells were counted by a watershed on the semantic mask (one line each)."""
    table, kept = write_cells_table(written, out_dir)
    earlier = f", and {kept} kept from earlier runs into {out_dir}" if kept else ""
    print(f"cells per frame: {table} ({len(written)} frame{'s' * (len(written) != 1)} of this run{earlier})")
    if any(w["method"] == INSTANCE_SOURCES[1] for w in written):
        print("cells counted by a watershed on the semantic mask: the model has no instance head, "
              "so touching cells may count as one (the cells preset trains one)")
    return table
