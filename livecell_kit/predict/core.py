"""Run a trained U-Net on images of any size: the forward pass, padding and tiling.

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

The files ``livecell-kit predict`` writes: :mod:`livecell_kit.predict`; many images with their
cells, overlapped with the forward pass: :mod:`livecell_kit.predict.stream`.
"""
from __future__ import annotations

import math
import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from livecell_kit.predict.fold import fold_batch_norm
from livecell_kit.presets import AUTO_TILE, AUTO_TILE_PIXELS, PREDICT_BATCHES, TILE_OVERLAP

# TensorFlow and Keras are imported by the functions that run a model, not here: they take
# seconds to load and Keras imports matplotlib.pyplot, which reading, writing and drawing
# predictions (and `import livecell_kit.predict`) do not need.

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
    """Images per forward pass for full frames (:data:`~livecell_kit.presets.PREDICT_BATCHES`)."""
    import tensorflow as tf  # see the note on imports at the top

    return PREDICT_BATCHES.frames_gpu if tf.config.list_physical_devices("GPU") else PREDICT_BATCHES.frames_cpu


def concurrent_passes() -> int:
    """Forward passes to run at once: ``PREDICT_BATCHES.passes_cpu`` on a CPU, 1 on a GPU."""
    import tensorflow as tf  # see the note on imports at the top

    return 1 if tf.config.list_physical_devices("GPU") else max(1, PREDICT_BATCHES.passes_cpu)


def _predict_fn(model, jit_compile: bool = False):
    """A tf.function: uint8/float (N, H, W, 1) → float32 (N, H, W, C), cached per model."""
    import tensorflow as tf  # see the note on imports at the top

    try:
        per_model = _FN_CACHE.setdefault(model, {})
    except TypeError:  # not weak-referenceable: no cache, still correct
        per_model = {}
    if jit_compile not in per_model:
        scale = input_scale(model)
        net = fold_batch_norm(model)  # the same function, faster on CPU; shares the model's weights

        def run(x):
            x = tf.cast(x, tf.float32) * scale
            y = net(x, training=False)
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

def as_model_input(image: np.ndarray, what: str = "image") -> np.ndarray:
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


def _run(model, batch: np.ndarray, batch_size: int, jit_compile: bool, passes: int = 1) -> np.ndarray:
    """(N, H, W) → (N, H, W, C) float32, in chunks of batch_size, up to ``passes`` chunks at once."""
    fn = _predict_fn(model, jit_compile)

    def chunk(start: int) -> np.ndarray:
        return np.asarray(fn(batch[start:start + batch_size, ..., None]), dtype=np.float32)

    starts = range(0, len(batch), batch_size)
    if passes > 1 and len(starts) > 1:
        with ThreadPoolExecutor(max_workers=min(passes, len(starts)), thread_name_prefix="predict") as pool:
            return np.concatenate(list(pool.map(chunk, starts)), axis=0)
    return np.concatenate([chunk(start) for start in starts], axis=0)


def _squeeze(y: np.ndarray) -> np.ndarray:
    return y[..., 0] if y.shape[-1] == 1 else y


def predict_batch(model, images, batch_size: int = PREDICT_BATCHES.tiles, tile: int | None = None, overlap: int = TILE_OVERLAP,
                  jit_compile: bool = False) -> np.ndarray:
    """Probabilities for several same-size grey images.

    images: (N, H, W) array or a list of (H, W) arrays, uint8 0–255.
    Returns float32 (N, H, W) for a one-channel model, else (N, H, W, C).
    """
    imgs = [as_model_input(im, f"image {i}") for i, im in enumerate(images)]
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
    return _squeeze(_run(model, stack, batch_size, jit_compile, concurrent_passes())[:, :h, :w])


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


def predict_image(model, image: np.ndarray, tile: int | None = None, overlap: int = TILE_OVERLAP,
                  batch_size: int = PREDICT_BATCHES.tiles, jit_compile: bool = False) -> np.ndarray:
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
    img = as_model_input(image)
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
