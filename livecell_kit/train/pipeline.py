"""Input pipeline: image and mask files → shuffled, cropped, augmented ``tf.data`` batches.

:func:`training_dataset` and :func:`validation_dataset` work on parallel lists
of image files and mask files.  Files are read inside ``tf.data`` maps (TIFF
through :func:`livecell_kit.data.read_image` via ``tf.numpy_function``), so
only the images in flight are in memory — unless the whole decoded data set is
smaller than ``cache_limit_bytes`` (the sample is ~23 MB), in which case it is
decoded once and kept in RAM.  Image and mask(s) travel stacked in one tensor
(H, W, 1 + C), so a random crop, flip or rotation moves them together and
cannot misalign.  Elements: ``x`` (B, h, w, 1) raw intensities 0..255 (uint8,
or float32 when augmented: :mod:`~livecell_kit.train.augment`), ``y`` (B, h, w, C) float32.
The model rescales to [0, 1] itself (see :mod:`livecell_kit.model`).

With :class:`BorderWeights`, ``y``'s last channel is the U-Net paper's
per-pixel loss weight (for the ``weighted_bce`` loss), computed on the whole
frame from its instance labels before cropping, so gaps to cells outside the
crop still count.

With ``cell_targets`` (the instance head, ModelConfig.outputs "cells") the one mask
file per image is its non-overlapping label PNG (mask kind "cells") and ``y`` holds
:func:`livecell_kit.masks.distance_targets`' three channels, computed on the whole
frame when it is read and kept as uint8 0..255 (``CELL_TARGET_LEVELS``; 1/255 ≈ 0.004
resolution) so a data set cached in RAM stays a quarter of the float32 size.  They are
normalised per cell, so a zoomed crop (nearest-neighbour resampled, like every target)
keeps them right; ``y`` is float32 0..1.

The steps, one function each, as notebook 04 assembles them by hand: :func:`preset_files`
(or :func:`split_files`) finds the images and cached masks; :func:`read_frames` reads them;
``.cache()``, ``.shuffle()``, ``.repeat()``; :func:`with_seeds` gives each frame its random
seed; :func:`~livecell_kit.train.augment.crop_and_augment` (itself
:func:`~livecell_kit.train.augment.zoomed_crop`, flips, turns and
:func:`~livecell_kit.train.augment.vary_intensity`) makes one training example of each;
``.batch()`` and ``.prefetch()``.  :func:`training_dataset` and :func:`validation_dataset` are
those steps in one call, and :func:`preset_datasets` builds both data sets of a preset, as
:func:`livecell_kit.train.train` uses them.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf

from livecell_kit import data, masks
from livecell_kit.presets import CACHE_LIMIT_BYTES, Preset, TrainConfig
from livecell_kit.train.augment import crop_and_augment, split_xy
from livecell_kit.train.losses import check_loss_fits, needs_weight_map

AUTOTUNE = tf.data.AUTOTUNE
#: Full-scale value of the stored instance targets: 0..1 distances kept as uint8 0..255.
CELL_TARGET_LEVELS = 255
#: Channels of the instance targets (foreground, centre distance, boundary distance).
CELL_TARGET_CHANNELS = 3


@dataclass(frozen=True)
class BorderWeights:
    """Settings of the weight map channel: ``masks.border_weight_map(labels, w0, sigma)``.

    w0: extra weight of background pixels in the narrowest gaps between cells.
    sigma: how fast that extra weight falls off with the gap's width, in pixels.
    The class-balance term w_c of the paper is 1: the loss then differs from plain
    BCE only near neighbouring cells.

    masks.border_weight_map is cheap enough (``bench/masks.py``) to compute in the
    parallel ``tf.data`` map when a frame is read rather than to precompute: a data set
    cached in RAM (the sample; anything under ``CACHE_LIMIT_BYTES``) pays it once, a
    streamed one every epoch.  Precomputing would also need a float mask kind in the
    mask cache.
    """

    w0: float = TrainConfig.border_weight_w0
    sigma: float = TrainConfig.border_weight_sigma


def _decode(path) -> str:
    return path.decode() if isinstance(path, bytes) else str(path)


def _read_mask(path: str, image_path: str, shape) -> np.ndarray:
    """The stored mask array, checked against its image's (H, W); a damaged cached mask is
    rebuilt on the spot (:func:`livecell_kit.masks.read_mask_file`)."""
    return masks.read_mask_file(path, shape, image=image_path)


def _read_labels(path: str, image_path: str, shape) -> np.ndarray:
    labels = _read_mask(path, image_path, shape)
    if labels.dtype == np.uint8:
        raise ValueError(f"{path} is an 8-bit mask, not instance labels (a 16-bit label PNG); pass the "
                         "instance mask cache (split_files(..., instance_labels=True)) or, for the "
                         "instance head, the cells mask cache (split_files(..., outputs='cells'))")
    return labels.astype(np.int32)


def read_stack(image_path, *mask_paths, border_weights: BorderWeights | None = None,
               cell_targets: bool = False) -> np.ndarray:
    """Read one image and its masks into one (H, W, 1 + C) array: grey values, then targets.

    Without ``border_weights``: uint8, the C masks as 0/1 (any value > 0 is foreground).
    With them: float32, and the last of the C mask files is an instance-label PNG
    (mask kind "instance") whose channel holds the weight map instead.
    With ``cell_targets``: uint8 (H, W, 4), the one mask file is a label PNG (mask kind
    "cells") and the targets are its :func:`livecell_kit.masks.distance_targets`
    × ``CELL_TARGET_LEVELS``, rounded.
    """
    image_path = _decode(image_path)
    image = data.read_image(image_path)
    paths = [_decode(p) for p in mask_paths]
    if cell_targets:
        if len(paths) != 1:
            raise ValueError(f"cell targets come from one label image per frame, got {len(paths)} mask files "
                             f"for {image_path}")
        targets = masks.distance_targets(_read_labels(paths[0], image_path, image.shape))
        quantised = np.rint(targets * CELL_TARGET_LEVELS).astype(np.uint8)
        return np.concatenate([image[..., None].astype(np.uint8), quantised], axis=-1)
    label_path = paths.pop() if border_weights is not None else None
    planes = [image] + [(_read_mask(p, image_path, image.shape) > 0).astype(np.uint8) for p in paths]
    if label_path is None:
        return np.stack(planes, axis=-1)
    labels = _read_labels(label_path, image_path, image.shape)
    weights = masks.border_weight_map(labels, w0=border_weights.w0, sigma=border_weights.sigma)
    return np.stack([p.astype(np.float32) for p in planes] + [weights], axis=-1)


def _as_mask_lists(mask_paths) -> list[list[str]]:
    """Accept one mask path per image or a sequence of them (one per output channel)."""
    return [[str(m)] if isinstance(m, (str, os.PathLike)) else [str(p) for p in m] for m in mask_paths]


def _file_dataset(image_paths, mask_paths):
    images = [str(p) for p in image_paths]
    mask_lists = _as_mask_lists(mask_paths)
    if len(images) != len(mask_lists):
        raise ValueError(f"{len(images)} images but {len(mask_lists)} mask entries; give one per image")
    if not images:
        raise ValueError("no images given to the input pipeline")
    n_ch = {len(m) for m in mask_lists}
    if len(n_ch) != 1:
        raise ValueError("every image needs the same number of mask files (one per output channel)")
    channels = n_ch.pop()
    columns = [tf.constant(images)] + [tf.constant([m[c] for m in mask_lists]) for c in range(channels)]
    return tf.data.Dataset.from_tensor_slices(tuple(columns)), len(images), channels


def _target_channels(mask_files: int, cell_targets: bool) -> int:
    return CELL_TARGET_CHANNELS if cell_targets else mask_files


def _loader(channels: int, border_weights: BorderWeights | None, cell_targets: bool = False):
    read = functools.partial(read_stack, border_weights=border_weights, cell_targets=cell_targets)
    dtype = tf.uint8 if border_weights is None else tf.float32

    def load(*paths):
        stack = tf.numpy_function(read, list(paths), dtype, stateful=False)
        stack.set_shape([None, None, 1 + _target_channels(channels, cell_targets)])
        return stack
    return load


def read_frames(image_paths: Sequence, mask_paths: Sequence, border_weights: BorderWeights | None = None,
                cell_targets: bool = False) -> tf.data.Dataset:
    """Step 1 of the pipeline, *read*: one stacked (H, W, 1 + C) array per image, in file order.

    Each element is :func:`read_stack`'s grey values and targets (uint8; float32 with
    ``border_weights``), decoded by parallel ``tf.data`` workers when the data set is iterated.
    image_paths, mask_paths: as in :func:`training_dataset`.
    """
    files, _, channels = _file_dataset(image_paths, mask_paths)
    return files.map(_loader(channels, border_weights, cell_targets), num_parallel_calls=AUTOTUNE)


def with_seeds(ds: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """Pair each element of ``ds`` with its own random seed, int64 (2,), drawn from a stream seeded by ``seed``.

    The stateless random ops of :func:`~livecell_kit.train.augment.crop_and_augment` take it, so the
    crops depend on the run seed only, not on which parallel worker finishes first.
    """
    return tf.data.Dataset.zip((ds, tf.data.Dataset.random(seed=seed).batch(2)))


def _should_cache(cache, image_paths, channels: int, limit: int, bytes_per_value: int = 1) -> bool:
    """cache: True, False or "auto" (cache when the decoded data set is under ``limit`` bytes)."""
    if cache != "auto":
        return bool(cache)
    h, w = data.read_image(str(image_paths[0])).shape  # assume one frame size (LIVECell: 520×704)
    return len(image_paths) * h * w * (1 + channels) * bytes_per_value <= limit


def training_dataset(image_paths: Sequence, mask_paths: Sequence, batch_size: int,
                     crop_size: int | None = None, augment: bool = False, seed: int = 0,
                     cache="auto", cache_limit_bytes: int = CACHE_LIMIT_BYTES,
                     border_weights: BorderWeights | None = None,
                     cell_targets: bool = False) -> tf.data.Dataset:
    """Endless, shuffled, batched training data.

    image_paths: N image files (TIFF/PNG, grey).  mask_paths: N mask PNGs
        (any value > 0 is foreground), or N tuples of C PNGs for C channels
        (with ``border_weights`` the last is an instance-label PNG, see :func:`read_stack`;
        with ``cell_targets`` one label PNG of mask kind "cells" each, for the 3 instance targets).
    crop_size: side of random square crops, or None for whole frames
        (then all frames must have one size).
    Yields x (B, h, w, 1) — uint8, or float32 0..255 when ``augment`` — and
    y (B, h, w, C) float32.  Set ``steps_per_epoch`` in ``fit``.
    """
    files, n, channels = _file_dataset(image_paths, mask_paths)
    value_bytes = 1 if border_weights is None else 4
    if _should_cache(cache, image_paths, _target_channels(channels, cell_targets), cache_limit_bytes,
                     value_bytes):
        ds = read_frames(image_paths, mask_paths, border_weights, cell_targets).cache()
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        # Shuffle the file names (tiny), not decoded frames: memory stays flat as N grows.
        ds = files.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.map(_loader(channels, border_weights, cell_targets), num_parallel_calls=AUTOTUNE)
    levels = CELL_TARGET_LEVELS if cell_targets else 1
    ds = with_seeds(ds, seed).map(lambda s, sd: crop_and_augment(s, sd, crop_size, augment, target_levels=levels),
                                  num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def validation_dataset(image_paths: Sequence, mask_paths: Sequence, batch_size: int,
                       cache="auto", cache_limit_bytes: int = CACHE_LIMIT_BYTES,
                       border_weights: BorderWeights | None = None,
                       cell_targets: bool = False) -> tf.data.Dataset:
    """Whole frames in file order, one pass: x (B, H, W, 1) uint8, y (B, H, W, C) float32
    (``cell_targets``: as in :func:`training_dataset`)."""
    _, _, channels = _file_dataset(image_paths, mask_paths)
    ds = read_frames(image_paths, mask_paths, border_weights, cell_targets)
    value_bytes = 1 if border_weights is None else 4
    if _should_cache(cache, image_paths, _target_channels(channels, cell_targets), cache_limit_bytes,
                     value_bytes):
        ds = ds.cache()
    levels = CELL_TARGET_LEVELS if cell_targets else 1
    ds = ds.map(lambda s: split_xy(s, target_levels=levels), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def split_files(data_root, split: str, outputs: str = "semantic", limit: int | None = None,
                subset_seed: int = 0, progress: bool = False, subset_rule: str = "stratified",
                instance_labels: bool = False) -> tuple[list[Path], list]:
    """Image files of a LIVECell split and their cached mask files (built on first use).

    limit: use at most this many images, picked by :func:`livecell_kit.data.select_subset`
        with ``subset_rule`` ("stratified" or the seed's "first") and ``subset_seed``
        (same seed → same images as its manifest).
    instance_labels: also give each image's instance-label mask (for :class:`BorderWeights`).
    Returns (image_paths, mask_paths); a mask entry is one path, or a tuple
    (semantic[, border][, instance]) when ``outputs == "semantic+border"`` or
    ``instance_labels``; for ``outputs == "cells"`` one path, the non-overlapping
    label image (mask kind "cells").
    Checks every image file first (:func:`livecell_kit.data.check_image_files`: exists,
    intact header, the record's size), raising one ``data.ImageCheckError`` that lists
    the bad files.
    """
    sp = data.load_subset(data_root, split, limit, subset_seed, rule=subset_rule)
    # every frame's header against its record now, before masks are drawn or tf.data runs:
    # a missing, truncated or resized frame is named here, not in a TensorFlow traceback
    data.check_image_files(sp, purpose="training")
    records = sorted(sp.images, key=lambda r: r["file_name"])
    kinds = (["cells"] if outputs == "cells" else
             ["semantic"] + (["border"] if outputs == "semantic+border" else [])
             + (["instance"] if instance_labels else []))
    caches = [masks.build_mask_cache(sp, kind=k, progress=progress) for k in kinds]
    images = [sp.image_path(r) for r in records]
    mask_lists = [tuple(masks.mask_file(c, r["file_name"]) for c in caches) for r in records]
    if len(kinds) == 1:
        mask_lists = [m[0] for m in mask_lists]
    return images, mask_lists


def _border_weights(tc) -> BorderWeights | None:
    """The weight map settings of TrainConfig ``tc``, or None when its loss needs no weight map."""
    return BorderWeights(tc.border_weight_w0, tc.border_weight_sigma) if needs_weight_map(tc.loss) else None


def preset_files(data_root, preset: Preset, split: str, progress: bool = False) -> tuple[list[Path], list]:
    """The image files of ``split`` ("train", "val" or "test") that ``preset`` uses, and their cached masks.

    :func:`split_files` with the preset's number of images, subset rule and seed, its model's
    outputs and, when its loss needs the weight map, the instance labels.
    """
    dc = preset.data
    limit = {"train": dc.train_images, "val": dc.val_images, "test": dc.test_images}[split]
    return split_files(data_root, split, outputs=preset.model.outputs, limit=limit, subset_seed=dc.subset_seed,
                       progress=progress, subset_rule=dc.subset,
                       instance_labels=_border_weights(preset.train) is not None)


def preset_datasets(data_root, preset: Preset, progress: bool = False) -> tuple[tf.data.Dataset, tf.data.Dataset, int]:
    """The training and validation data of ``preset`` on ``data_root``, and its steps per epoch.

    Returns (train_ds, val_ds, steps_per_epoch): :func:`training_dataset` over the
    preset's training images (its crops, augmentation and seed), :func:`validation_dataset`
    over its validation images; both carry the weight map channel when the preset's
    loss needs it, the instance targets when its model has the instance head (outputs "cells").
    steps_per_epoch: the preset's, else one pass over the training images.
    """
    mc, tc = preset.model, preset.train
    check_loss_fits(tc.loss, mc.outputs)
    weights = _border_weights(tc)
    cells = mc.outputs == "cells"
    train_images, train_masks = preset_files(data_root, preset, "train", progress)
    val_images, val_masks = preset_files(data_root, preset, "val", progress)
    steps = tc.steps_per_epoch or max(1, len(train_images) // tc.batch_size)
    train_ds = training_dataset(train_images, train_masks, tc.batch_size, tc.crop_size, tc.augment, tc.seed,
                                border_weights=weights, cell_targets=cells)
    val_ds = validation_dataset(val_images, val_masks, validation_batch_size(tc), border_weights=weights,
                                cell_targets=cells)
    return train_ds, val_ds, steps


def validation_batch_size(tc) -> int:
    """Frames per validation batch for TrainConfig ``tc``: no more pixels than a training batch (>= 1).

    Validation runs on whole 520×704 frames, 22× the pixels of a 128×128 crop: at the training
    batch size (8) the quick preset's kernel peaked ~0.2 GB higher while validating than while
    training (Binder allows 2 GB for all kernels). The validation metrics count pixels over the
    whole split, so they do not depend on this batch size.
    """
    if tc.crop_size is None:
        return tc.batch_size
    frame_pixels = data.IMAGE_HEIGHT * data.IMAGE_WIDTH
    return max(1, min(tc.batch_size, tc.batch_size * tc.crop_size ** 2 // frame_pixels))
