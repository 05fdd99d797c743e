"""Training crops and their augmentation: random zoom, flips, 90° turns and grey-level changes.

Works on one stacked (H, W, 1 + C) tensor of image and targets, as the input pipeline
(:mod:`~livecell_kit.train.pipeline`) reads it, so a crop, flip or turn moves them
together and cannot misalign.  Every random op is stateless and takes its seed, so the
same run seed gives the same crops in whatever order the parallel ``tf.data`` map finishes.
:class:`~livecell_kit.presets.Augmentation` holds the ranges (``presets.AUGMENTATION``;
``TrainConfig.augment`` switches them on);
:func:`crop_and_augment` is the map applied to each training frame, :func:`split_xy`
the split into ``x`` and ``y`` that validation frames get alone.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from livecell_kit.presets import AUGMENTATION, Augmentation


def split_xy(stack, augment: bool = False, target_levels: int = 1):
    """x: the grey channel (uint8, or float32 for jitter); y: the targets as float32,
    divided by ``target_levels`` (the stored full-scale value: 1, or the pipeline's ``CELL_TARGET_LEVELS``)."""
    x = tf.cast(stack[..., :1], tf.float32 if augment else tf.uint8)  # float stacks hold whole 0..255
    y = tf.cast(stack[..., 1:], tf.float32)
    return x, (y / target_levels if target_levels != 1 else y)




def _log_uniform(seed, bounds):
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    return tf.exp(tf.random.stateless_uniform([], seed, lo, hi))


def zoomed_crop(stack, crop_size: int, scale, seed):
    """A random square window of ``crop_size`` × a random zoom, resized to ``crop_size``.

    stack: (H, W, 1 + C) image + targets.  The image is resampled bilinearly (antialiased
    when shrinking), the targets by nearest neighbour, so masks stay 0/1 and weights keep
    their values.  Returns float32 (crop_size, crop_size, 1 + C).
    """
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    shape = tf.shape(stack)
    window = tf.cast(tf.round(crop_size * _log_uniform(seeds[0], scale)), tf.int32)
    window = tf.minimum(window, tf.minimum(shape[0], shape[1]))
    crop = tf.image.stateless_random_crop(stack, tf.stack([window, window, shape[2]]), seeds[1])
    size = [crop_size, crop_size]
    image = tf.image.resize(tf.cast(crop[..., :1], tf.float32), size, method="bilinear", antialias=True)
    targets = tf.cast(tf.image.resize(crop[..., 1:], size, method="nearest"), tf.float32)
    return tf.concat([image, targets], axis=-1)


def _blur(x):
    """Gaussian blur (σ = 1 px) of x (h, w, 1), edges mirrored."""
    taps = np.exp(-0.5 * np.arange(-2, 3) ** 2)
    taps = tf.constant(taps / taps.sum(), tf.float32)
    padded = tf.pad(x[None], [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    rows = tf.nn.conv2d(padded, tf.reshape(taps, [5, 1, 1, 1]), 1, "VALID")
    return tf.nn.conv2d(rows, tf.reshape(taps, [1, 5, 1, 1]), 1, "VALID")[0]


def vary_intensity(x, seed, settings: Augmentation = AUGMENTATION):
    """x (h, w, 1) float32 grey levels 0..255 with a random gamma, contrast, brightness,
    sharpness, illumination ramp and noise (ranges in ``settings``), clipped to 0..255."""
    seeds = tf.random.experimental.stateless_split(seed, num=8)
    x = 255.0 * tf.pow(x / 255.0, _log_uniform(seeds[0], settings.gamma))
    mean = tf.reduce_mean(x)
    x = (x - mean) * _log_uniform(seeds[1], settings.contrast) + mean
    x += tf.random.stateless_uniform([], seeds[2], -settings.brightness, settings.brightness)
    if settings.sharpness != (0.0, 0.0):  # settings are Python values: skipped ops cost nothing
        x += tf.random.stateless_uniform([], seeds[3], *settings.sharpness) * (x - _blur(x))
    if settings.gradient:  # a linear ramp across the crop, in a random direction
        angle = tf.random.stateless_uniform([], seeds[4], 0.0, 2 * np.pi)
        h, w = tf.shape(x)[0], tf.shape(x)[1]
        rows = tf.cast(tf.range(h), tf.float32)[:, None] / tf.cast(h, tf.float32) - 0.5
        cols = tf.cast(tf.range(w), tf.float32)[None, :] / tf.cast(w, tf.float32) - 0.5
        ramp = tf.sin(angle) * rows + tf.cos(angle) * cols
        x += (tf.random.stateless_uniform([], seeds[5], -settings.gradient, settings.gradient) * ramp)[..., None]
    if settings.noise:
        noise = tf.random.stateless_uniform([], seeds[6], 0.0, settings.noise)
        x += noise * tf.random.stateless_normal(tf.shape(x), seeds[7])
    return tf.clip_by_value(x, 0.0, 255.0)


def crop_and_augment(stack, seed, crop_size: int | None = None, augment: bool = False,
                     settings: Augmentation = AUGMENTATION, target_levels: int = 1):
    """Crop a stacked (H, W, 1 + C) image+targets tensor; with ``augment``, also zoom, flip
    and turn it (image and targets together), then vary the image's look (:func:`vary_intensity`).

    seed: int (2,) for the stateless random ops, so the same run seed gives the same
    crops in any order the parallel map finishes them.  target_levels: the stored targets'
    full-scale value (the pipeline's ``CELL_TARGET_LEVELS`` for the instance targets), y is divided by it.
    Returns x (h, w, 1), y (h, w, C).
    """
    seeds = tf.random.experimental.stateless_split(seed, num=5)
    if crop_size and augment:
        stack = zoomed_crop(stack, crop_size, settings.scale, seeds[0])
    elif crop_size:
        stack = tf.image.stateless_random_crop(stack, [crop_size, crop_size, stack.shape[-1]], seeds[0])
    if augment:
        stack = tf.image.stateless_random_flip_left_right(stack, seeds[1])
        stack = tf.image.stateless_random_flip_up_down(stack, seeds[2])
        if crop_size:  # 90° turns swap H and W: only for square crops
            k = tf.random.stateless_uniform([], seeds[3], 0, 4, dtype=tf.int32)
            stack = tf.image.rot90(stack, k)
    x, y = split_xy(stack, augment, target_levels)
    if augment:
        x = vary_intensity(x, seeds[4], settings)
    return x, y
