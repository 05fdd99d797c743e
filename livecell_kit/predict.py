"""Run a trained U-Net on images of any size.

Input units — the one place they are decided: images go in as uint8 grey
values 0–255 (what :func:`livecell_kit.data.read_image` returns) and stay
uint8 in memory until the compiled predict function casts them to float32
and, unless the model contains a ``keras.layers.Rescaling`` layer of its
own, divides by 255 — see :func:`input_scale`.  Float arrays are accepted
in the same 0–255 units; a float array already scaled to 0–1 is refused
with an explanation rather than silently mis-predicted.

Sizes: a U-Net with ``d`` max-pool down-samplings needs heights and widths
divisible by ``2**d``; images are padded by reflection up to the next
multiple and the prediction is cropped back.  Large images (or any image,
with ``tile=``) are cut into overlapping tiles that are predicted in
batches and blended with a smooth window, so tile edges — where the network
sees zero padding instead of context — barely contribute.

Outputs are float32 probabilities: (H, W) for a one-channel model, (H, W, C)
for a model with C sigmoid channels (e.g. cell + touching border).

Command line::

    livecell-kit predict --model MODEL --out DIR IMAGE_OR_DIR...

writes ``<stem>_mask.png`` (0/255), ``<stem>_labels.tif`` (16-bit cell labels, from
:func:`livecell_kit.instances.split_cells`) and ``<stem>_overlay.png`` per image,
mirroring input sub-folders, never two inputs into one name, and going on past
unreadable files (:func:`predict_paths`); and one table, ``cells.csv``, of cells and
confluence per frame (:mod:`livecell_kit.cell_table`).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from livecell_kit.progress import progress_bar
from livecell_kit import atomic, cell_table
from livecell_kit.data.images import ImageReadError, iter_pages
from livecell_kit.instances import cell_statistics, instance_source, split_cells
from livecell_kit.predict_inputs import (  # list_images: kept here for callers of predict
    OUTPUT_SUFFIXES, PredictionError, expand_inputs, list_images, output_stems)
from livecell_kit.overlay import overlay_image
from livecell_kit.presets import CELL_SPLITTING, CellSplitting

# TensorFlow and Keras are imported by the functions that run a model, not here: they take
# seconds to load and Keras imports matplotlib.pyplot, which reading, writing and drawing
# predictions (and `import livecell_kit.predict`) do not need.

#: Images with more pixels than this are tiled automatically (memory, not accuracy).
AUTO_TILE_PIXELS = 2048 * 2048
AUTO_TILE = 1024

_FN_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------
# Model introspection
# ----------------------------------------------------------------------------

def _all_layers(model) -> list:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if hasattr(layer, "layers"):
            out.extend(_all_layers(layer))
    return out


def input_scale(model) -> float:
    """Factor applied to 0–255 pixel values before the model: 1/255, or 1 if the model rescales itself."""
    import keras  # see the note on imports at the top

    has_rescaling = any(isinstance(l, keras.layers.Rescaling) for l in _all_layers(model))
    return 1.0 if has_rescaling else 1.0 / 255.0


def size_multiple(model) -> int:
    """Height/width multiple the model needs: 2 ** (number of 2× pooling layers)."""
    import keras  # see the note on imports at the top

    n = 0
    for layer in _all_layers(model):
        if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            pool = layer.pool_size if isinstance(layer.pool_size, (tuple, list)) else (layer.pool_size,)
            n += int(round(math.log2(max(int(pool[0]), 1))))
    return 2 ** n


def default_batch_size() -> int:
    """Images per forward pass for full frames: 8 on a GPU, 1 on a CPU (memory-bound there:
    bigger batches were slower)."""
    import tensorflow as tf  # see the note on imports at the top

    return 8 if tf.config.list_physical_devices("GPU") else 1


def _predict_fn(model, jit_compile: bool = False):
    """A tf.function: uint8/float (N, H, W, 1) → float32 (N, H, W, C), cached per model."""
    import tensorflow as tf  # see the note on imports at the top

    try:
        per_model = _FN_CACHE.setdefault(model, {})
    except TypeError:  # not weak-referenceable: no cache, still correct
        per_model = {}
    if jit_compile not in per_model:
        scale = input_scale(model)

        def run(x):
            x = tf.cast(x, tf.float32) * scale
            y = model(x, training=False)
            if isinstance(y, dict):
                y = [y[k] for k in sorted(y)]
            if isinstance(y, (list, tuple)):
                y = tf.concat([tf.cast(t, tf.float32) for t in y], axis=-1)
            return tf.cast(y, tf.float32)

        per_model[jit_compile] = tf.function(run, jit_compile=jit_compile, reduce_retracing=True)
    return per_model[jit_compile]


# ----------------------------------------------------------------------------
# Core prediction
# ----------------------------------------------------------------------------

def _as_model_input(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate and return (H, W) uint8 or float32 (0–255 units)."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"{what}: expected a grey image of shape (H, W), got {a.shape}; "
                         "convert colour images to grey first")
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_ or np.issubdtype(a.dtype, np.integer):
        if a.size and (a.min() < 0 or a.max() > 255):
            raise ValueError(f"{what}: integer pixel values must lie in 0–255 (got {a.min()}–{a.max()}); "
                             "rescale to uint8 first")
        return a.astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if a.size and float(np.nanmax(a)) <= 1.0 and float(np.nanmax(a)) > 0:
            raise ValueError(f"{what}: float values are at most 1, so they look scaled to 0–1; "
                             "predict expects 0–255 grey values (pass image * 255 or the uint8 image)")
        return a.astype(np.float32)
    raise ValueError(f"{what}: unsupported pixel type {a.dtype}")


def _pad_to(a: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad (N, H, W) at the bottom/right to (N, height, width)."""
    ph, pw = height - a.shape[-2], width - a.shape[-1]
    if ph == 0 and pw == 0:
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(0, ph), (0, pw)]
    mode = "reflect" if min(a.shape[-2:]) > 1 else "edge"  # reflect needs >= 2 pixels
    return np.pad(a, pad, mode=mode)


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _run(model, batch: np.ndarray, batch_size: int, jit_compile: bool) -> np.ndarray:
    """(N, H, W) → (N, H, W, C) float32, in chunks of batch_size."""
    fn = _predict_fn(model, jit_compile)
    outs = []
    for i in range(0, len(batch), batch_size):
        x = batch[i:i + batch_size, ..., None]
        outs.append(np.asarray(fn(x), dtype=np.float32))
    return np.concatenate(outs, axis=0)


def _squeeze(y: np.ndarray) -> np.ndarray:
    return y[..., 0] if y.shape[-1] == 1 else y


def predict_batch(model, images, batch_size: int = 4, tile: int | None = None, overlap: int = 32,
                  jit_compile: bool = False) -> np.ndarray:
    """Probabilities for several same-size grey images.

    images: (N, H, W) array or a list of (H, W) arrays, uint8 0–255.
    Returns float32 (N, H, W) for a one-channel model, else (N, H, W, C).
    """
    imgs = [_as_model_input(im, f"image {i}") for i, im in enumerate(images)]
    if not imgs:
        raise ValueError("predict_batch got no images")
    shapes = {im.shape for im in imgs}
    if len(shapes) > 1:
        raise ValueError(f"predict_batch needs same-size images, got shapes {sorted(shapes)}; "
                         "use predict_image per image")
    h, w = imgs[0].shape
    if tile is not None or h * w > AUTO_TILE_PIXELS:
        return np.stack([predict_image(model, im, tile=tile, overlap=overlap, batch_size=batch_size,
                                       jit_compile=jit_compile) for im in imgs])
    m = size_multiple(model)
    stack = _pad_to(np.stack(imgs), _round_up(h, m), _round_up(w, m))
    return _squeeze(_run(model, stack, batch_size, jit_compile)[:, :h, :w])


def _window_1d(n: int, overlap: int) -> np.ndarray:
    """Weights for one tile axis: raised-cosine ramps over ``overlap`` px at each end, 1 in between.

    Strictly positive, so pixels covered by a single tile keep that tile's value.
    """
    w = np.ones(n, np.float32)
    r = min(overlap, n // 2)
    if r > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)
        w[:r] = ramp
        w[n - r:] = ramp[::-1]
    return w


def _starts(size: int, tile: int, stride: int) -> list[int]:
    starts = list(range(0, max(size - tile, 0) + 1, stride))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def predict_image(model, image: np.ndarray, tile: int | None = None, overlap: int = 32,
                  batch_size: int = 4, jit_compile: bool = False) -> np.ndarray:
    """Cell probability map of one grey image of any size.

    image: (H, W) (or (H, W, 1)) uint8, 0–255.
    tile: tile side in pixels (rounded up to the model's size multiple), or
        None to predict the whole image at once (images above
        ``AUTO_TILE_PIXELS`` are tiled with ``AUTO_TILE`` anyway).
    overlap: pixels shared by neighbouring tiles; blended with a raised-cosine window.
    batch_size: tiles (or images) per forward pass.
    jit_compile: XLA-compile the predict function (cached per model; each
        new input shape compiles once — worth it for many same-size images).
    Returns float32 (H, W) probabilities, or (H, W, C) for a C-channel model.
    """
    img = _as_model_input(image)
    h, w = img.shape
    if tile is None and h * w > AUTO_TILE_PIXELS:
        tile = AUTO_TILE
    m = size_multiple(model)
    if tile is None:
        padded = _pad_to(img[None], _round_up(h, m), _round_up(w, m))
        return _squeeze(_run(model, padded, 1, jit_compile)[0, :h, :w])

    tile = _round_up(max(int(tile), m), m)
    overlap = max(0, min(int(overlap), tile // 2))
    th, tw = min(tile, _round_up(h, m)), min(tile, _round_up(w, m))
    canvas = _pad_to(img[None], max(th, h), max(tw, w))[0]
    H, W = canvas.shape
    stride_h, stride_w = max(th - overlap, m), max(tw - overlap, m)
    corners = [(y, x) for y in _starts(H, th, stride_h) for x in _starts(W, tw, stride_w)]
    weight = _window_1d(th, overlap)[:, None] * _window_1d(tw, overlap)[None, :]
    acc = None
    wsum = np.zeros((H, W), np.float32)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i:i + batch_size]
        tiles = np.stack([canvas[y:y + th, x:x + tw] for y, x in chunk])
        pred = _run(model, tiles, batch_size, jit_compile)
        if acc is None:
            acc = np.zeros((H, W, pred.shape[-1]), np.float32)
        for (y, x), p in zip(chunk, pred):
            acc[y:y + th, x:x + tw] += p * weight[..., None]
            wsum[y:y + th, x:x + tw] += weight
    return _squeeze(acc[:h, :w] / wsum[:h, :w, None])


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


def predict_array(model, image: np.ndarray, threshold: float | None = None, out_dir=None,
                  stem: str = "image", tile: int | None = None,
                  splitting: CellSplitting = CELL_SPLITTING) -> Prediction:
    """Predict one in-memory image; with ``out_dir``, also write its three files (:func:`write_prediction`).
    Cells: :func:`livecell_kit.instances.split_cells` with ``splitting``, ``threshold`` (default
    ``splitting.foreground_threshold``) cutting the foreground."""
    out = predict_image(model, image, tile=tile)
    out = out[..., None] if out.ndim == 2 else out
    threshold = splitting.foreground_threshold if threshold is None else float(threshold)
    labels, _ = split_cells(out, splitting, threshold=threshold)
    pred = Prediction(prob=out[..., 0], mask=(out[..., 0] >= threshold).astype(np.uint8), labels=labels,
                      threshold=threshold, border=out[..., 1] if out.shape[-1] == 2 else None,
                      method=instance_source(out.shape[-1]))
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
    rgb = overlay_image(image, pred.mask, pred.labels)
    _atomic_write(paths["overlay"], lambda p: Image.fromarray(rgb).save(p, format="PNG"))
    return paths


def predict_paths(model, paths, out_dir, threshold: float | None = None, tile: int | None = None,
                  splitting: CellSplitting = CELL_SPLITTING, progress: bool = False) -> list[dict]:
    """Predict image files: three files per image (per page of a stack) under ``out_dir``, and
    ``cells.csv`` (:mod:`livecell_kit.cell_table`: this run's frames, earlier rows of others kept).

    paths: one TIFF/PNG/JPEG file or folder, or a list of them (folders are
        searched recursively for .tif/.tiff/.png/.jpg/.jpeg).
    Writes ``<stem>_mask.png`` (0/255), ``<stem>_labels.tif`` (cell labels) and
    ``<stem>_overlay.png``; input sub-folders are mirrored under ``out_dir`` and two
    inputs never share outputs (:func:`output_stems`); pages of a multi-page file get
    ``_p001``, ``_p002``… appended.  Files in ``out_dir`` named like these outputs (a
    rerun with ``out_dir`` inside an input folder) are not predicted again.
    threshold, splitting: as in :func:`predict_array`.  Returns one ``{"image", "page", "pages",
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
    written: list[dict] = []
    failed: list[tuple[Path, str]] = []
    claimed: dict[str, Path] = {}  # output file (casefolded) -> input that wrote it in this run
    for f, stem in progress_bar(inputs, desc="predict", unit="image", disable=not progress):
        try:
            written.extend(_predict_file(model, f, out_dir / stem, claimed, threshold, tile, splitting))
        except (ImageReadError, ValueError) as err:  # a bad input: note it, go on with the rest
            failed.append((f, str(err)))
    if written:
        cell_table.report_cells_table(written, out_dir)
    if failed:
        listed = "\n  ".join(message for _, message in failed)
        raise PredictionError(f"{len(failed)} of {len(inputs)} input files could not be predicted "
                              f"(the {len(written)} predictions of the others are in {out_dir}):\n  {listed}",
                              written, failed)
    return written


def _predict_file(model, f: Path, base: Path, claimed: dict, threshold, tile, splitting) -> list[dict]:
    """Predict every page of one file into ``<base>[_pNNN]_*``; refuses to overwrite an output
    another input wrote in this run (``claimed``)."""
    written, noted = [], False
    for image, info in iter_pages(f, allow_pages=True):  # (uint8 (H, W), ImageInfo) per page
        page = f" page {info.page + 1}/{info.pages}" if info.pages > 1 else ""
        stem = base.with_name(f"{base.name}_p{info.page + 1:03d}") if info.pages > 1 else base
        key = str(stem).casefold()
        if claimed.get(key, f) != f:
            raise ValueError(f"{f}{page}: its outputs {stem}_*.png would overwrite those of "
                             f"{claimed[key]}; rename one of them")
        claimed[key] = f
        if info.scaling and not noted:  # one line per file, not per page
            noted = True
            print(f"{f}{page}: {info.scaling}" + (" (each page scaled on its own)" if page else ""))
        try:
            pred = predict_array(model, image, threshold=threshold, tile=tile, splitting=splitting)
        except ValueError as err:
            raise ValueError(f"{f}{page}: {err}") from err
        written.append({"image": f, "page": info.page, "pages": info.pages, "scaling": info.scaling,
                        **write_prediction(pred, image, stem.parent, stem.name),
                        "cells": cell_statistics(pred.labels, pred.mask), "method": pred.method,
                        "threshold": pred.threshold})
    return written
