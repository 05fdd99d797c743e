"""``frames.csv`` and ``wells.csv``: the measurements as tables that pandas, R and Prism read.

``frames.csv`` — one row per frame (:data:`FRAME_COLUMNS`, with a ``--pattern``'s extra named
groups after ``time_h``): ``file``, ``page`` (1-based page of a stack, else empty),
``cell_type``, ``well``, ``location``, ``crop``, ``time_h`` (elapsed hours, from the name),
``cells``, ``confluence_pct`` (% of the frame's pixels in the foreground), ``mean_area_px``,
``median_area_px`` (cell areas in pixels), ``method`` (how cells were found:
``instances.INSTANCE_SOURCES``; the cell columns are empty for a model without an instance
head) and ``labels`` (the label image, relative to the output folder, with ``--labels``).

``wells.csv`` — tidy (long) format, one row per cell type, well and time point
(:data:`WELL_COLUMNS`): ``n_frames`` (locations × crops × pages measured), the mean and the
spread (sample standard deviation, ddof 1; empty for a single frame) of confluence and of
the cell count over those frames.  Rows are sorted by cell type, well and time.

Both are streamed from the record (memory flat in the number of frames) and written atomically.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from livecell_kit import atomic

FRAMES_NAME, WELLS_NAME = "frames.csv", "wells.csv"
NAME_COLUMNS = ("file", "page", "cell_type", "well", "location", "crop", "time_h")
MEASURE_COLUMNS = ("cells", "confluence_pct", "mean_area_px", "median_area_px", "method", "labels")
FRAME_COLUMNS = NAME_COLUMNS + MEASURE_COLUMNS
WELL_COLUMNS = ("cell_type", "well", "time_h", "n_frames", "confluence_pct_mean", "confluence_pct_std",
                "cells_mean", "cells_std")


class Spread:
    """Running mean and sample standard deviation (Welford), one value at a time."""

    def __init__(self):
        self.n, self.mean, self._m2 = 0, 0.0, 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self._m2 += delta * (value - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else math.nan


def _number(value, digits: int) -> str:
    """A table cell: empty for None/NaN (no value), else ``value`` rounded to ``digits``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.{digits}f}"


def _chosen_lines(record_path: Path, wanted: dict) -> dict[str, int]:
    """Byte offset of the last record line per wanted file whose key still matches it."""
    offsets, offset = {}, 0
    with open(record_path, "rb") as fh:
        fh.readline()  # the header
        offset = fh.tell()
        for raw in iter(fh.readline, b""):
            if raw.endswith(b"\n"):
                line = json.loads(raw)
                path = line["key"][0]
                if path in wanted and wanted[path][0] == line["key"]:
                    offsets[path] = offset
            offset += len(raw)
    return offsets


def write_tables(record_path: Path, wanted: dict, out_dir, extra_groups=()) -> tuple[Path, Path, int, str]:
    """Write ``frames.csv`` and ``wells.csv`` for the files in ``wanted``.

    wanted: resolved path -> ``(record.file_key, names.FrameName)``, in input order.
    Returns both paths, the number of frame rows and the cells method ("" with no frame).
    """
    out_dir = Path(out_dir)
    offsets = _chosen_lines(record_path, wanted)
    columns = NAME_COLUMNS + tuple(extra_groups) + MEASURE_COLUMNS
    wells: dict[tuple, tuple[Spread, Spread]] = {}
    frames, method = 0, ""
    frames_path = out_dir / FRAMES_NAME
    with atomic.atomic_path(frames_path, suffix=".csv") as tmp, \
            open(tmp, "w", encoding="utf-8", newline="") as out, open(record_path, "rb") as rec:
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for path, (_, name) in wanted.items():
            if path not in offsets:
                continue  # not measured (it could not be read)
            rec.seek(offsets[path])
            line = json.loads(rec.readline())
            method = line["method"] or method
            for row in line["rows"]:
                frames += 1
                writer.writerow({"file": line["file"], "page": row["page"], "cell_type": name.cell_type,
                                 "well": name.well, "location": name.location, "crop": name.crop,
                                 "time_h": _number(name.time_h, 2), **dict(name.extra),
                                 "cells": "" if row["cells"] is None else row["cells"],
                                 "confluence_pct": _number(row["confluence_pct"], 2),
                                 "mean_area_px": _number(row["mean_area_px"], 1),
                                 "median_area_px": _number(row["median_area_px"], 1),
                                 "method": line["method"], "labels": row["labels"]})
                confluence, cells = wells.setdefault((name.cell_type, name.well, name.time_h),
                                                     (Spread(), Spread()))
                confluence.add(row["confluence_pct"])
                if row["cells"] is not None:
                    cells.add(row["cells"])
    wells_path = out_dir / WELLS_NAME
    with atomic.atomic_path(wells_path, suffix=".csv") as tmp, open(tmp, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(WELL_COLUMNS)
        for (cell_type, well, time_h), (confluence, cells) in sorted(wells.items()):
            writer.writerow([cell_type, well, _number(time_h, 2), confluence.n,
                             _number(confluence.mean, 2), _number(confluence.std, 2),
                             _number(cells.mean if cells.n else None, 1), _number(cells.std, 1)])
    return frames_path, wells_path, frames, method


def read_wells(path) -> list[dict]:
    """``wells.csv`` rows as dicts of floats (empty cells -> NaN) and strings (cell type, well)."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        for column in WELL_COLUMNS[2:]:
            row[column] = float(row[column]) if row[column] else math.nan
    return rows
