"""Measure every frame of a folder: cells, confluence and cell areas, streamed and resumable.

:func:`measure_frames` is what ``livecell-kit measure`` and the notebooks call.  Per image file
(each page of a stack is a frame) it predicts and finds cells with
:func:`livecell_kit.predict.stream_cells` (the watershed of one frame overlapped with the
prediction of the next) and keeps only numbers
(:func:`livecell_kit.instances.cell_statistics`): one line per file goes to the record
(:mod:`livecell_kit.measure.record`) as soon as the file is done, so memory does not grow with
the number of frames and a rerun of the same call measures only what is missing.  The tables
and figures are then made from the record (:mod:`~livecell_kit.measure.tables`,
:mod:`~livecell_kit.measure.curves`).

A model without an instance head (one output channel) gives confluence only: its cell columns
stay empty, ``method`` says why, and one line is printed.
"""
from __future__ import annotations

from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import tifffile

from livecell_kit import atomic
from livecell_kit.data.channels import CHANNEL_READINGS
from livecell_kit.data.images import ImageReadError, iter_pages
from livecell_kit.instances import (INSTANCE_SOURCES, cell_statistics, confluence_pct, instance_source,
                                   split_any_size)
from livecell_kit.measure import curves, record, tables
from livecell_kit.measure.names import name_reader
from livecell_kit.predict import predict_image, stream_cells
from livecell_kit.predict.inputs import PredictionError, expand_inputs, output_stems
from livecell_kit.presets import CELL_SPLITTING, CellSplitting
from livecell_kit.progress import progress_bar

#: Where label images go inside the output folder (``--labels``).
LABELS_DIR = "labels"
SEMANTIC_NOTE = ("cells not counted: the model has no instance head (one output channel), so frames.csv "
                 "and wells.csv give confluence only; train one with --preset cells")


@dataclass(frozen=True)
class MeasureResult:
    """What one :func:`measure_frames` call made: ``frames_csv``, ``wells_csv``, ``figures``
    (PNG paths); ``measured`` files this call, ``kept`` files taken from the record, ``frames``
    rows in frames.csv."""

    frames_csv: Path
    wells_csv: Path
    figures: tuple
    measured: int
    kept: int
    frames: int

    def summary(self, show=str) -> str:
        """One line on what was written; ``show`` turns a path into the text printed
        (the notebooks pass ``course.shown_path``, free of machine-specific folders)."""
        return (f"measured {self.measured} files ({self.kept} kept from earlier runs) into "
                f"{show(self.frames_csv.parent)}: {self.frames_csv.name} ({self.frames} frames), "
                f"{self.wells_csv.name} (per well and time point), growth curves "
                f"{', '.join(Path(p).name for p in self.figures)}")


def frame_statistics(output: np.ndarray, labels: np.ndarray | None, threshold: float):
    """``(statistics, labels or None, method)`` of one frame from the model's output and its cells.

    output: float32 (H, W, C) model output; labels: int32 (H, W) cells from
    :func:`livecell_kit.instances.split_any_size`.  statistics: ``instances.cell_statistics``
    keys; with a one-channel model (no instance head) ``cells``, ``mean_area_px`` and
    ``median_area_px`` are None and the labels are dropped.
    """
    out = output[..., None] if output.ndim == 2 else output
    foreground = out[..., 0] >= threshold
    method = instance_source(out.shape[-1])
    if out.shape[-1] == 1:
        return ({"cells": None, "confluence_pct": confluence_pct(foreground), "mean_area_px": None,
                 "median_area_px": None}, None, method)
    return cell_statistics(labels, foreground), labels, method


def measure_frame(model, image: np.ndarray, threshold: float, splitting: CellSplitting = CELL_SPLITTING):
    """:func:`frame_statistics` of one uint8 (H, W) frame, predicted and split here (one frame,
    no overlap: :func:`measure_frames` streams many)."""
    out = predict_image(model, image)
    out = out[..., None] if out.ndim == 2 else out
    labels = split_any_size(out, splitting, threshold=threshold, scores=False)[0] if out.shape[-1] > 1 else None
    return frame_statistics(out, labels, threshold)


def _write_labels(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = labels.astype(np.uint16 if labels.max(initial=0) <= 65535 else np.int32)
    with atomic.atomic_path(path, suffix=".tif") as tmp:
        tifffile.imwrite(tmp, labels, compression="zlib")


def _pages(todo, channels: str, notes: dict) -> Iterator[tuple[tuple, np.ndarray | BaseException]]:
    """``((file, stem, ImageInfo), uint8 (H, W) image)`` per page of every file still to measure,
    ``((file, stem, None), error)`` where a file cannot be read.  Reading notes (scaling, colour)
    are printed for the first file of each rule and counted per file in ``notes``."""
    for f, stem in todo:
        noted: set = set()
        try:
            for image, info in iter_pages(f, allow_pages=True, channels=channels):
                for note in filter(None, (info.scaling, info.reading)):
                    rule = note.split(" (")[0]  # without the file's own values, e.g. a stretch's range
                    if rule not in notes:
                        print(f"{f}: {note} (further files read this way are not listed)")
                    if rule not in noted:  # counted once per file, not per page
                        noted.add(rule)
                        notes[rule] = notes.get(rule, 0) + 1
                yield (f, stem, info), image
        except (ImageReadError, ValueError) as err:
            yield (f, stem, None), err


def _frame_row(out_dir: Path, stem: Path, info, stats: dict, labels, want_labels: bool) -> dict:
    """One frame's row of the record; its label image written first when ``want_labels``."""
    row = {"page": info.page + 1 if info.pages > 1 else "", **stats, "labels": ""}
    if want_labels and labels is not None:
        name = f"{stem.name}_p{info.page + 1:03d}" if info.pages > 1 else stem.name
        label_path = out_dir / LABELS_DIR / stem.parent / f"{name}_labels.tif"
        _write_labels(label_path, labels)
        row["labels"] = label_path.relative_to(out_dir).as_posix()
    return row


def _measure_files(model, todo, out_dir: Path, threshold: float, splitting: CellSplitting, channels: str,
                   want_labels: bool, workers: int, writer, failed: list, notes: dict, bar) -> None:
    """Measure ``todo`` ((file, stem) pairs) with the watershed overlapped with prediction
    (:func:`livecell_kit.predict.stream_cells`); one record line per file, appended as soon as
    its last page is done; unreadable files go to ``failed`` and the others go on."""
    frames = stream_cells(model, _pages(todo, channels, notes), workers=workers, splitting=splitting,
                          threshold=threshold, scores=False)
    rows: list[dict] = []  # the current file's pages
    with closing(frames):
        for (f, stem, info), output, labels, _, error in frames:
            if failed and failed[-1][0] == f:
                continue  # a later page of a file that failed
            if error is not None:  # a bad input: note it, go on with the rest
                failed.append((f, str(error) if str(f) in str(error) else f"{f}: {error}"))
                rows = []
                bar.update(1)
                continue
            stats, labels, method = frame_statistics(output, labels, threshold)
            rows.append(_frame_row(out_dir, stem, info, stats, labels, want_labels))
            if info.page == info.pages - 1:
                writer.append({"key": record.file_key(f), "file": str(f), "rows": rows, "method": method,
                               "labels_possible": method != INSTANCE_SOURCES[1]})
                rows = []
                bar.update(1)


def _own_output(f: Path, out_dir: Path) -> bool:
    """A growth-curve figure measure wrote into ``out_dir`` (its label images end in _labels.tif,
    which ``expand_inputs`` already leaves out)."""
    return f.name in curves.FIGURE_NAMES and f.resolve().parent == out_dir.resolve()


def measure_frames(model, images, out_dir, pattern: str | None = None, threshold: float | None = None,
                   splitting: CellSplitting = CELL_SPLITTING, channels: str = "auto", labels: bool = False,
                   progress: bool = True, workers: int = 1, quiet: bool = False) -> MeasureResult:
    """Measure image files into ``out_dir``: ``frames.csv``, ``wells.csv``, growth curves.

    images: files or folders (searched recursively for TIFF/PNG/JPEG), as ``predict`` takes.
    pattern: regular expression for the metadata in the file names (None: LIVECell's scheme;
        see :mod:`livecell_kit.measure.names`); every name is checked before any frame is measured.
    threshold: foreground cut-off (default ``splitting.foreground_threshold``).
    channels: how colour files whose channels differ are read (``data.channels.CHANNEL_READINGS``).
    labels: also write ``labels/<stem>_labels.tif`` (16-bit cell labels) per frame.
    workers: threads finding cells while the model predicts the next frames.
    quiet: leave out the closing line (:meth:`MeasureResult.summary`), for a caller printing its own.
    A rerun with the same settings measures only the files not yet in the record; files that
    cannot be read are listed after the others are done (:class:`PredictionError`).
    """
    if channels not in CHANNEL_READINGS:
        raise ValueError(f"--channels must be one of {', '.join(CHANNEL_READINGS)}, got {channels!r}")
    out_dir = Path(out_dir)
    threshold = splitting.foreground_threshold if threshold is None else float(threshold)
    reader = name_reader(pattern)
    found, _ = expand_inputs(images, out_dir)
    found = [(f, folder) for f, folder in found if not _own_output(f, out_dir)]
    if not found:
        raise FileNotFoundError(f"no images to measure besides measure's own outputs in {out_dir}")
    inputs = output_stems(found)
    names, misfits = {}, []  # every name checked before any work
    for f, _ in inputs:
        try:
            names[f] = reader.read(f)
        except ValueError as err:
            misfits.append(str(err))
    if misfits:
        more = f" (and {len(misfits) - 1} more files whose names do not fit)" if len(misfits) > 1 else ""
        raise ValueError(misfits[0] + more)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings = {"model": record.model_fingerprint(model), "threshold": threshold,
                "splitting": asdict(splitting), "channels": channels, "names": reader.describe()}
    done, record_path = record.open_record(out_dir, settings)
    todo = [(f, stem) for f, stem in inputs
            if not record.is_current(done.get(str(f.resolve())), record.file_key(f), labels, out_dir)]
    kept = len(inputs) - len(todo)
    if kept:
        print(f"{kept} of {len(inputs)} files already measured with these settings ({record_path}); "
              f"measuring the other {len(todo)}")
    del done  # the tables are streamed from the record below
    failed, notes = [], {}
    with record.RecordWriter(record_path) as writer, \
            progress_bar(total=len(todo), desc="measure", unit="file", disable=not progress) as bar:
        _measure_files(model, todo, out_dir, threshold, splitting, channels, labels, workers, writer, failed,
                       notes, bar)
    for note, count in notes.items():
        if count > 1:
            print(f"{count} files: {note}")
    wanted = {str(f.resolve()): (record.file_key(f), names[f]) for f, _ in inputs}
    frames_csv, wells_csv, frames, method = tables.write_tables(record_path, wanted, out_dir,
                                                                reader.extra_groups)
    if method == INSTANCE_SOURCES[1]:
        print(SEMANTIC_NOTE)
    figures = curves.growth_curves(wells_csv, out_dir)
    result = MeasureResult(frames_csv, wells_csv, tuple(figures), len(todo) - len(failed), kept, frames)
    if not quiet:
        print(result.summary())
    if failed:
        listed = "\n  ".join(message for _, message in failed)
        raise PredictionError(f"{len(failed)} of {len(inputs)} image files could not be measured (the "
                              f"others are in {frames_csv}):\n  {listed}", [], failed)
    return result
