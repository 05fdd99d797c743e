"""Run a trained U-Net on image files and write what it found.

The forward pass on arrays of any size (input units, padding, tiling):
:mod:`livecell_kit.predict.core`, whose public functions are re-exported here
(:func:`predict_image`, :func:`predict_batch`, :func:`default_batch_size`,
:func:`size_multiple`, :func:`input_scale`).  Many images with their cells, the
post-processing overlapped with the forward pass: :func:`stream_cells`
(:mod:`livecell_kit.predict.stream`).

Command line::

    livecell-kit predict --model MODEL --out DIR IMAGE_OR_DIR...

writes ``<stem>_mask.png`` (0/255), ``<stem>_labels.tif`` (16-bit cell labels, from
:func:`livecell_kit.instances.split_cells`) and ``<stem>_overlay.png`` per image,
mirroring input sub-folders, never two inputs into one name, and going on past
unreadable files (:func:`predict_paths`); and one table, ``cells.csv``, of cells and
confluence per frame (:mod:`livecell_kit.predict.cell_table`).
"""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import tifffile
from PIL import Image

from livecell_kit.progress import progress_bar
from livecell_kit import atomic
from livecell_kit.predict import cell_table
from livecell_kit.data.images import ImageReadError, iter_pages
from livecell_kit.instances import cell_statistics, instance_source, split_any_size
from livecell_kit.predict.inputs import OUTPUT_SUFFIXES, PredictionError, expand_inputs, output_stems
from livecell_kit.masks.overlay import overlay_image
from livecell_kit.predict.core import (  # noqa: F401  (re-exported: the public prediction functions)
    AUTO_TILE, AUTO_TILE_PIXELS, concurrent_passes, default_batch_size, input_scale, predict_batch, predict_image, size_multiple)
from livecell_kit.predict.stream import StreamedFrame, stream_cells  # noqa: F401  (re-exported)
from livecell_kit.presets import CELL_SPLITTING, OVERLAY_STRIP_ROWS, CellSplitting

# ----------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------

@dataclass
class Prediction:
    """One image's prediction.

    prob: float32 (H, W) cell probability; border: float32 (H, W) or None
    (two-channel models); mask: uint8 (H, W) 0/1 at ``threshold``;
    labels: int32 (H, W) instance labels (0 = background); method: how they were
    found (``instances.instance_source``).
    """

    prob: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    threshold: float
    border: np.ndarray | None = None
    method: str = ""


def _prediction(out: np.ndarray, labels: np.ndarray, threshold: float) -> Prediction:
    """A :class:`Prediction` from a model's (H, W, C) output and its cells."""
    return Prediction(prob=out[..., 0], mask=(out[..., 0] >= threshold).astype(np.uint8), labels=labels,
                      threshold=threshold, border=out[..., 1] if out.shape[-1] == 2 else None,
                      method=instance_source(out.shape[-1]))


def predict_array(model, image: np.ndarray, threshold: float | None = None, out_dir=None,
                  stem: str = "image", tile: int | None = None,
                  splitting: CellSplitting = CELL_SPLITTING) -> Prediction:
    """Predict one in-memory image; with ``out_dir``, also write its three files (:func:`write_prediction`).
    Cells: :func:`livecell_kit.instances.split_cells` with ``splitting``, ``threshold`` (default
    ``splitting.foreground_threshold``) cutting the foreground."""
    out = predict_image(model, image, tile=tile)
    out = out[..., None] if out.ndim == 2 else out
    threshold = splitting.foreground_threshold if threshold is None else float(threshold)
    labels, _ = split_any_size(out, splitting, threshold=threshold, scores=False)
    pred = _prediction(out, labels, threshold)
    if out_dir is not None:
        write_prediction(pred, image, out_dir, stem)
    return pred


def _atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename into place (see :mod:`livecell_kit.atomic`)."""
    with atomic.atomic_path(path, suffix=path.suffix) as tmp:
        write(tmp)


def write_prediction(pred: Prediction, image: np.ndarray, out_dir, stem: str) -> dict:
    """Write ``<stem>_mask.png`` (uint8 0/255), ``<stem>_labels.tif`` (uint16, or int32 above
    65535 cells) and ``<stem>_overlay.png`` (RGB) into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"mask": out_dir / f"{stem}_mask.png", "labels": out_dir / f"{stem}_labels.tif",
             "overlay": out_dir / f"{stem}_overlay.png"}
    mask255 = (pred.mask > 0).astype(np.uint8) * 255
    _atomic_write(paths["mask"], lambda p: Image.fromarray(mask255).save(p, format="PNG"))
    labels = pred.labels.astype(np.uint16 if pred.labels.max(initial=0) <= 65535 else np.int32)
    _atomic_write(paths["labels"], lambda p: tifffile.imwrite(p, labels, compression="zlib"))
    rgb = _overlay_in_strips(image, pred.mask, pred.labels)
    _atomic_write(paths["overlay"], lambda p: Image.fromarray(rgb).save(p, format="PNG"))
    return paths


def _overlay_in_strips(image: np.ndarray, mask: np.ndarray, labels: np.ndarray,
                       rows: int = OVERLAY_STRIP_ROWS) -> np.ndarray:
    """:func:`overlay_image` drawn ``rows`` rows at a time (one grey range for the whole image),
    so a 4000×4000 frame needs ~50 MB of float scratch rather than ~0.8 GB."""
    if image.shape[0] <= rows:
        return overlay_image(image, mask, labels)
    value_range = tuple(float(v) for v in np.percentile(image, [1, 99]))
    rgb = np.empty(image.shape + (3,), np.uint8)
    for top in range(0, image.shape[0], rows):
        a, b = max(top - 1, 0), min(top + rows + 1, image.shape[0])  # 1 row of context: outlines
        strip = overlay_image(image[a:b], mask[a:b], labels[a:b], value_range=value_range)
        rgb[top:top + rows] = strip[top - a:top - a + min(rows, image.shape[0] - top)]
    return rgb


def predict_paths(model, paths, out_dir, threshold: float | None = None, tile: int | None = None,
                  splitting: CellSplitting = CELL_SPLITTING, progress: bool = False,
                  workers: int = 1, channels: str = "auto") -> list[dict]:
    """Predict image files: three files per image (per page of a stack) under ``out_dir``, and
    ``cells.csv`` (:mod:`livecell_kit.predict.cell_table`: this run's frames, earlier rows of others kept).

    paths: one TIFF/PNG/JPEG file or folder, or a list of them (folders are
        searched recursively for .tif/.tiff/.png/.jpg/.jpeg).
    Writes ``<stem>_mask.png`` (0/255), ``<stem>_labels.tif`` (cell labels) and
    ``<stem>_overlay.png``; input sub-folders are mirrored under ``out_dir`` and two
    inputs never share outputs (:func:`output_stems`); pages of a multi-page file get
    ``_p001``, ``_p002``… appended.  Files in ``out_dir`` named like these outputs (a
    rerun with ``out_dir`` inside an input folder) are not predicted again.
    threshold, splitting: as in :func:`predict_array`.  workers: threads splitting cells
    while the model predicts the next frames and this thread writes (:func:`stream_cells`).
    channels: how colour channels that differ are read (:mod:`livecell_kit.data.channels`; the
    reading is printed).
    Returns one ``{"image", "page", "pages",
    "scaling", "mask", "labels", "overlay", "cells", "method", "threshold"}`` dict per page:
    ``page`` 0-based, ``scaling`` the rule that reached uint8 (16-bit/float inputs, printed once
    per file) or None, ``cells`` the frame's ``instances.cell_statistics``.
    An input that cannot be read or predicted does not stop the others: after the last
    one, :class:`PredictionError` lists every failed file (its ``written`` holds the
    outputs made).  Missing paths and output-name collisions raise before any work.
    """
    out_dir = Path(out_dir)
    found, skipped = expand_inputs(paths, out_dir)
    if skipped:
        print(f"skipped {skipped} earlier predict outputs in {out_dir} "
              f"(*{', *'.join(OUTPUT_SUFFIXES)})")
    inputs = output_stems(found)
    threshold = splitting.foreground_threshold if threshold is None else float(threshold)
    written: list[dict] = []
    failed: list[tuple[Path, str]] = []
    pages: list[dict] = []  # the current file's pages: kept once its last page is written
    frames = stream_cells(model, _pages(inputs, out_dir, channels), workers=workers, tile=tile,
                          splitting=splitting, threshold=threshold, scores=False)
    with closing(frames), progress_bar(total=len(inputs), desc="predict", unit="image", disable=not progress) as bar:
        for (f, stem, info, image), output, labels, _, error in frames:
            if failed and failed[-1][0] == f:
                continue  # a later page of a file that failed
            page = f" page {info.page + 1}/{info.pages}" if info and info.pages > 1 else ""
            if error is not None:  # a bad input: note it, go on with the rest
                failed.append((f, str(error) if info is None else f"{f}{page}: {error}"))
                pages = []
                bar.update(1)
                continue
            if info.reading and info.page == 0:  # colour channels that differ: say how they were read
                print(f"{f}: {info.reading}")
            if info.scaling and info.page == 0:  # one line per file, not per page
                print(f"{f}{page}: {info.scaling}" + (" (each page scaled on its own)" if page else ""))
            pred = _prediction(output, labels, threshold)
            pages.append({"image": f, "page": info.page, "pages": info.pages, "scaling": info.scaling,
                          **write_prediction(pred, image, stem.parent, stem.name),
                          "cells": cell_statistics(pred.labels, pred.mask), "method": pred.method,
                          "threshold": pred.threshold})
            if info.page == info.pages - 1:
                written.extend(pages)
                pages = []
                bar.update(1)
    if written:
        cell_table.report_cells_table(written, out_dir)
    if failed:
        listed = "\n  ".join(message for _, message in failed)
        raise PredictionError(f"{len(failed)} of {len(inputs)} input files could not be predicted "
                              f"(the {len(written)} predictions of the others are in {out_dir}):\n  {listed}",
                              written, failed)
    return written


def _pages(inputs, out_dir: Path,
           channels: str = "auto") -> Iterator[tuple[tuple, np.ndarray | BaseException]]:
    """``((file, output stem, ImageInfo, image), image)`` per page of every ``(file, stem under out_dir)``
    input;
    ``((file, None, None, None), error)`` where a file cannot be read (its message names it).
    Refuses to overwrite an output another input wrote in this run."""
    claimed: dict[str, Path] = {}  # output stem (casefolded) -> input that writes it in this run
    for f, relative in inputs:
        base = out_dir / relative
        try:
            for image, info in iter_pages(f, allow_pages=True, channels=channels):  # uint8 (H, W), ImageInfo
                stem = base.with_name(f"{base.name}_p{info.page + 1:03d}") if info.pages > 1 else base
                key = str(stem).casefold()
                if claimed.get(key, f) != f:
                    page = f" page {info.page + 1}/{info.pages}" if info.pages > 1 else ""
                    raise ValueError(f"{f}{page}: its outputs {stem}_*.png would overwrite those of "
                                     f"{claimed[key]}; rename one of them")
                claimed[key] = f
                yield (f, stem, info, image), image
        except (ImageReadError, ValueError) as err:
            yield (f, None, None, None), err
