"""Training: input pipeline, losses, metrics, precision, and a resumable ``train()``.

Input pipeline (:func:`training_dataset`, :func:`validation_dataset`)
    Works on parallel lists of image files and mask files.  Files are read
    inside ``tf.data`` maps (TIFF through :func:`livecell_kit.data.read_image`
    via ``tf.numpy_function``), so only the images in flight are in memory —
    unless the whole decoded data set is smaller than ``cache_limit_bytes``
    (the sample is ~23 MB), in which case it is decoded once and kept in RAM.
    Image and mask(s) travel stacked in one uint8 tensor (H, W, 1 + C), so a
    random crop, flip or rotation moves them together and cannot misalign.
    Elements: ``x`` (B, h, w, 1) raw intensities 0..255 (uint8, or float32
    after brightness/contrast jitter), ``y`` (B, h, w, C) float32 0/1.
    The model rescales to [0, 1] itself (see :mod:`livecell_kit.model`).

Run folder written by :func:`train`::

    out_dir/config.json      preset, precision, data root, kit version, finished flag
    out_dir/history.json     per-epoch loss/metrics, train and val, merged across resumes
    out_dir/history.csv      the same, one row per epoch (CSVLogger)
    out_dir/model.keras      the best model (lowest val_loss), written at the end
    out_dir/checkpoints/     best.keras and last.keras, updated every epoch
    out_dir/backup/          BackupAndRestore state: a killed run resumes here

Rerunning the same ``train()`` call resumes an interrupted run at the epoch
it stopped, and returns at once (loading the model) when the run finished.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import tensorflow as tf
import keras

from livecell_kit import atomic
from livecell_kit import __version__
from livecell_kit.model import build_unet
from livecell_kit.presets import Preset, get_preset, override

AUTOTUNE = tf.data.AUTOTUNE
#: Decoded data sets smaller than this are cached in RAM; larger ones stream from disk.
CACHE_LIMIT_BYTES = 512 * 2**20
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
_PRECISION_ALIASES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "mixed_bfloat16": "mixed_bfloat16",
                      "float16": "mixed_float16", "mixed_float16": "mixed_float16"}
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


# ----------------------------------------------------------------------------
# Precision and distribution
# ----------------------------------------------------------------------------

def read_cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """CPU feature flags of the first core (empty set where /proc/cpuinfo is missing, e.g. macOS)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def gpu_compute_capabilities() -> list[tuple[int, int]]:
    """Compute capability (major, minor) of every GPU TensorFlow sees; [] on CPU-only machines."""
    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        caps.append(tuple(details.get("compute_capability", (0, 0))))
    return caps


def choose_precision(requested: str = "auto", cpu_flags=None, gpus=None) -> str:
    """Pick the Keras mixed-precision policy name for this machine.

    requested: "auto", "float32", "bfloat16"/"mixed_bfloat16" or "float16"/"mixed_float16";
        anything but "auto" is honoured as given.
    cpu_flags: CPU feature flags (default: read from /proc/cpuinfo).
    gpus: compute capabilities [(major, minor), ...] (default: ask TensorFlow).

    "auto" gives "mixed_float16" when there are GPUs, all with tensor cores
    (compute capability >= 7.0); on CPU-only machines "mixed_bfloat16" when the
    CPU computes bfloat16 natively (AMX or AVX512-BF16 — elsewhere bfloat16 is
    emulated and slower than float32); else "float32".
    """
    if requested != "auto":
        try:
            return _PRECISION_ALIASES[requested]
        except KeyError:
            raise ValueError(f"precision must be 'auto' or one of {sorted(_PRECISION_ALIASES)}, "
                             f"got {requested!r}") from None
    gpus = gpu_compute_capabilities() if gpus is None else [tuple(g) for g in gpus]
    if gpus:
        return "mixed_float16" if all(g >= (7, 0) for g in gpus) else "float32"
    flags = read_cpu_flags() if cpu_flags is None else set(cpu_flags)
    return "mixed_bfloat16" if flags.intersection(_BF16_CPU_FLAGS) else "float32"


def choose_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, else the default strategy."""
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


# ----------------------------------------------------------------------------
# Input pipeline
# ----------------------------------------------------------------------------

def _read_stack(image_path: bytes, *mask_paths: bytes) -> np.ndarray:
    """Read one image and its C masks → uint8 (H, W, 1 + C): grey values, then 0/1 masks."""
    from PIL import Image

    from livecell_kit.data import read_image

    image_path = image_path.decode()
    image = read_image(image_path)
    planes = [image]
    for mp in mask_paths:
        mp = mp.decode()
        try:
            with Image.open(mp) as im:
                mask = np.asarray(im)
        except (OSError, ValueError) as e:
            raise OSError(f"cannot read mask {mp}: {e}; rebuild the mask cache "
                          "(livecell-kit masks, or delete the cache folder)") from e
        if mask.shape != image.shape:
            raise ValueError(f"mask {mp} is {mask.shape[1]}x{mask.shape[0]} but image {image_path} "
                             f"is {image.shape[1]}x{image.shape[0]}; rebuild the mask cache")
        planes.append((mask > 0).astype(np.uint8))
    return np.stack(planes, axis=-1)


def _as_mask_lists(mask_paths) -> list[list[str]]:
    """Accept one mask path per image or a sequence of them (one per output channel)."""
    return [[str(m)] if isinstance(m, (str, os.PathLike)) else [str(p) for p in m] for m in mask_paths]


def _file_dataset(image_paths, mask_paths):
    images = [str(p) for p in image_paths]
    masks = _as_mask_lists(mask_paths)
    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images but {len(masks)} mask entries; give one per image")
    if not images:
        raise ValueError("no images given to the input pipeline")
    n_ch = {len(m) for m in masks}
    if len(n_ch) != 1:
        raise ValueError("every image needs the same number of mask files (one per output channel)")
    channels = n_ch.pop()
    columns = [tf.constant(images)] + [tf.constant([m[c] for m in masks]) for c in range(channels)]
    return tf.data.Dataset.from_tensor_slices(tuple(columns)), len(images), channels


def _loader(channels: int):
    def load(*paths):
        stack = tf.numpy_function(_read_stack, list(paths), tf.uint8, stateful=False)
        stack.set_shape([None, None, 1 + channels])
        return stack
    return load


def _should_cache(cache, image_paths, channels: int, limit: int) -> bool:
    """cache: True, False or "auto" (cache when the decoded data set is under ``limit`` bytes)."""
    if cache != "auto":
        return bool(cache)
    from livecell_kit.data import read_image

    h, w = read_image(str(image_paths[0])).shape  # assume one frame size (LIVECell: 520×704)
    return len(image_paths) * h * w * (1 + channels) <= limit


def _split_xy(stack, channels: int):
    x = stack[..., :1]
    y = tf.cast(stack[..., 1:], tf.float32)
    return x, y


def _augment(stack, seed, crop_size, augment: bool, channels: int):
    """Crop/flip/rotate the stacked (H, W, 1 + C) uint8 tensor; jitter the image's brightness/contrast.

    Stateless random ops seeded per element: the same run seed gives the
    same crops in any order the parallel map finishes them.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=6)
    if crop_size:
        stack = tf.image.stateless_random_crop(stack, [crop_size, crop_size, 1 + channels], seeds[0])
    if augment:
        stack = tf.image.stateless_random_flip_left_right(stack, seeds[1])
        stack = tf.image.stateless_random_flip_up_down(stack, seeds[2])
        if crop_size:  # 90° turns swap H and W: only for square crops
            k = tf.random.stateless_uniform([], seeds[3], 0, 4, dtype=tf.int32)
            stack = tf.image.rot90(stack, k)
    x, y = _split_xy(stack, channels)
    if augment:
        x = tf.cast(x, tf.float32)
        contrast = tf.random.stateless_uniform([], seeds[4], 0.8, 1.25)
        brightness = tf.random.stateless_uniform([], seeds[5], -0.1, 0.1) * 255.0
        mean = tf.reduce_mean(x)
        x = tf.clip_by_value((x - mean) * contrast + mean + brightness, 0.0, 255.0)
    return x, y


def training_dataset(image_paths: Sequence, mask_paths: Sequence, batch_size: int,
                     crop_size: int | None = None, augment: bool = False, seed: int = 0,
                     cache="auto", cache_limit_bytes: int = CACHE_LIMIT_BYTES) -> tf.data.Dataset:
    """Endless, shuffled, batched training data.

    image_paths: N image files (TIFF/PNG, grey).  mask_paths: N mask PNGs
        (any value > 0 is foreground), or N tuples of C PNGs for C channels.
    crop_size: side of random square crops, or None for whole frames
        (then all frames must have one size).
    Yields x (B, h, w, 1) — uint8, or float32 0..255 when ``augment`` — and
    y (B, h, w, C) float32 0/1.  Set ``steps_per_epoch`` in ``fit``.
    """
    files, n, channels = _file_dataset(image_paths, mask_paths)
    load = _loader(channels)
    if _should_cache(cache, image_paths, channels, cache_limit_bytes):
        ds = files.map(load, num_parallel_calls=AUTOTUNE).cache()
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        # Shuffle the file names (tiny), not decoded frames: memory stays flat as N grows.
        ds = files.shuffle(n, seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds))
    ds = ds.map(lambda s, sd: _augment(s, sd, crop_size, augment, channels), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def validation_dataset(image_paths: Sequence, mask_paths: Sequence, batch_size: int,
                       cache="auto", cache_limit_bytes: int = CACHE_LIMIT_BYTES) -> tf.data.Dataset:
    """Whole frames in file order, one pass: x (B, H, W, 1) uint8, y (B, H, W, C) float32 0/1."""
    files, n, channels = _file_dataset(image_paths, mask_paths)
    ds = files.map(_loader(channels), num_parallel_calls=AUTOTUNE)
    if _should_cache(cache, image_paths, channels, cache_limit_bytes):
        ds = ds.cache()
    ds = ds.map(lambda s: _split_xy(s, channels), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def split_files(data_root, split: str, outputs: str = "semantic", limit: int | None = None,
                subset_seed: int = 0, progress: bool = False,
                subset_rule: str = "stratified") -> tuple[list[Path], list]:
    """Image files of a LIVECell split and their cached mask files (built on first use).

    limit: use at most this many images, picked by :func:`livecell_kit.data.select_subset`
        with ``subset_rule`` ("stratified" or the seed's "first") and ``subset_seed``
        (same seed → same images as its manifest).
    Returns (image_paths, mask_paths); mask entries are tuples (semantic,
    border) when ``outputs == "semantic+border"``.
    """
    from livecell_kit import data, masks

    sp = data.load_subset(data_root, split, limit, subset_seed, rule=subset_rule)
    records = sorted(sp.images, key=lambda r: r["file_name"])
    kinds = ["semantic"] + (["border"] if outputs == "semantic+border" else [])
    caches = [masks.build_mask_cache(sp, kind=k, progress=progress) for k in kinds]
    images = [sp.image_path(r) for r in records]
    mask_lists = [tuple(masks.mask_file(c, r["file_name"]) for c in caches) for r in records]
    if len(kinds) == 1:
        mask_lists = [m[0] for m in mask_lists]
    return images, mask_lists


# ----------------------------------------------------------------------------
# Losses and metrics
# ----------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="livecell_kit")
def bce(y_true, y_pred):
    """Binary cross-entropy per pixel, averaged over channels → (B, H, W)."""
    y_pred = tf.cast(y_pred, tf.float32)
    return keras.losses.binary_crossentropy(tf.cast(y_true, tf.float32), y_pred)


@keras.saving.register_keras_serializable(package="livecell_kit")
def dice_loss(y_true, y_pred, smooth: float = 1.0):
    """1 − soft Dice per image, averaged over channels → (B,).  Perfect prediction → 0."""
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    inter = tf.reduce_sum(y_true * y_pred, axis=(1, 2))
    total = tf.reduce_sum(y_true, axis=(1, 2)) + tf.reduce_sum(y_pred, axis=(1, 2))
    return 1.0 - tf.reduce_mean((2.0 * inter + smooth) / (total + smooth), axis=-1)


@keras.saving.register_keras_serializable(package="livecell_kit")
def bce_dice(y_true, y_pred):
    """BCE (mean over pixels) + Dice loss, per image → (B,).

    Dice counts cells as a whole rather than pixel by pixel, so it does not
    let the majority background class dominate the gradient.
    """
    return tf.reduce_mean(bce(y_true, y_pred), axis=(1, 2)) + dice_loss(y_true, y_pred)


LOSSES = {"bce": bce, "bce_dice": bce_dice}


def get_loss(name: str):
    """Loss function for ``TrainConfig.loss``."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None


class _Confusion(keras.metrics.Metric):
    """Pixel confusion counts of one channel summed over the whole pass (not averaged per batch).

    Matches :mod:`livecell_kit.evaluate`: a pixel is "cell" when p >= threshold;
    pooled counts; both truth and prediction empty counts as a perfect score.
    """

    def __init__(self, name: str, threshold: float = 0.5, channel: int = 0, **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)
        self.channel = int(channel)
        # float64: a val pass over 256 full frames has ~9e7 pixels, beyond float32's exact integers
        self.counts = self.add_variable(shape=(4,), initializer="zeros", dtype="float64", name="counts")

    def update_state(self, y_true, y_pred, sample_weight=None):
        t = tf.cast(y_true[..., self.channel], tf.float32) >= 0.5
        p = tf.cast(y_pred[..., self.channel], tf.float32) >= self.threshold

        def count(a):
            return tf.reduce_sum(tf.cast(a, tf.float64))
        self.counts.assign_add(tf.stack([count(t & p), count(~t & p), count(t & ~p), count(~t & ~p)]))

    def reset_state(self):
        self.counts.assign(tf.zeros((4,), tf.float64))

    def _parts(self):
        tp, fp, fn, tn = (self.counts[i] for i in range(4))
        return tp, fp, fn, tn

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "channel": self.channel}


def _ratio(num, den):
    return tf.cast(tf.where(den > 0, num / tf.maximum(den, 1.0), 1.0), tf.float32)


@keras.saving.register_keras_serializable(package="livecell_kit")
class PixelAccuracy(_Confusion):
    """Fraction of pixels classified right."""

    def __init__(self, name="pixel_accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def result(self):
        tp, fp, fn, tn = self._parts()
        return _ratio(tp + tn, tp + fp + fn + tn)


@keras.saving.register_keras_serializable(package="livecell_kit")
class ForegroundIoU(_Confusion):
    """Intersection over union of the cell pixels: tp / (tp + fp + fn)."""

    def __init__(self, name="iou", **kwargs):
        super().__init__(name=name, **kwargs)

    def result(self):
        tp, fp, fn, _ = self._parts()
        return _ratio(tp, tp + fp + fn)


@keras.saving.register_keras_serializable(package="livecell_kit")
class Dice(_Confusion):
    """Dice (F1) of the cell pixels: 2tp / (2tp + fp + fn)."""

    def __init__(self, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)

    def result(self):
        tp, fp, fn, _ = self._parts()
        return _ratio(2 * tp, 2 * tp + fp + fn)


def make_metrics() -> list[keras.metrics.Metric]:
    """Pixel accuracy, foreground IoU and Dice of the cell channel at threshold 0.5."""
    return [PixelAccuracy(), ForegroundIoU(), Dice()]


# ----------------------------------------------------------------------------
# Run folder helpers
# ----------------------------------------------------------------------------

def _save_model_atomic(model: keras.Model, path: Path) -> None:
    with atomic.atomic_path(path, suffix=".keras") as tmp:  # Keras insists on the .keras suffix
        model.save(tmp)


def read_history(out_dir) -> dict:
    """history.json of a run: {"epoch": [0, 1, ...], "loss": [...], "val_iou": [...], ...}."""
    path = Path(out_dir) / "history.json"
    if not path.exists():
        return {"epoch": []}
    with open(path) as f:
        return json.load(f)


class JsonHistory(keras.callbacks.Callback):
    """Writes out_dir/history.json after every epoch, keeping earlier runs' epochs.

    An epoch trained again after a resume replaces its old entry, so every
    epoch appears once, in order.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        old = read_history(self.path.parent)
        rows = {e: {k: v[i] for k, v in old.items() if k != "epoch" and i < len(v)}
                for i, e in enumerate(old.get("epoch", []))}
        rows[int(epoch)] = {k: float(v) for k, v in (logs or {}).items()}
        rows[int(epoch)]["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        epochs = sorted(rows)
        keys = sorted({k for r in rows.values() for k in r})
        hist = {"epoch": epochs, **{k: [rows[e].get(k, float("nan")) for e in epochs] for k in keys}}
        atomic.write_json(self.path, hist)


@dataclass
class TrainResult:
    """What :func:`train` returns: the best model, its history, the run folder and the precision used."""

    model: keras.Model
    history: dict
    out_dir: Path
    precision: str


def _resolve_preset(preset, epochs, overrides) -> Preset:
    """Preset by name or object, with field overrides (as :func:`presets.get_preset`) and epochs."""
    if isinstance(preset, str):
        preset = get_preset(preset, **overrides)
    elif isinstance(preset, Preset):
        preset = override(preset, **overrides)
    else:
        raise TypeError(f"preset must be a name ('quick', 'seed') or a Preset, got {type(preset).__name__}")
    if epochs is not None:
        preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, epochs=int(epochs)))
    return preset


def _with_new_defaults(preset_dict):
    """A stored preset with settings added to the kit since it was written set to their defaults.

    New settings are added with defaults that keep the old behaviour, so a run folder
    written before (e.g. without ``kernel_initializer``) still matches its preset.
    """
    if not isinstance(preset_dict, dict):
        return preset_dict
    defaults = json.loads(json.dumps(Preset(name="", description="").to_dict()))
    return {k: {**defaults[k], **v} if isinstance(v, dict) and isinstance(defaults.get(k), dict) else v
            for k, v in preset_dict.items()}


def _lr(tc, steps_per_epoch: int):
    if tc.lr_schedule == "constant":
        return tc.learning_rate
    if tc.lr_schedule == "cosine":
        # Step-based, so a resumed run continues the curve (the optimizer's step counter is restored).
        return keras.optimizers.schedules.CosineDecay(tc.learning_rate, decay_steps=tc.epochs * steps_per_epoch,
                                                      alpha=0.01)
    raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {tc.lr_schedule!r}")


def load_model(run_dir_or_file, compile: bool = True) -> keras.Model:
    """Load ``model.keras`` (or a run folder holding it) with the kit's losses and metrics."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"no trained model at {path}; train one first "
                                "(livecell-kit train --out RUN_DIR) or pass model.keras")
    return keras.saving.load_model(path, compile=compile)


def _finished_result(out_dir: Path, config: dict) -> TrainResult:
    return TrainResult(model=load_model(out_dir), history=read_history(out_dir), out_dir=out_dir,
                       precision=config["precision"])


def train(data_root, preset="quick", out_dir=None, epochs: int | None = None, verbose: int = 1,
          callbacks: Sequence[keras.callbacks.Callback] = (), **overrides) -> TrainResult:
    """Train a U-Net preset on ``data_root``'s train split, validating on its val split.

    data_root: LIVECell folder (real or :func:`livecell_kit.sample.make_sample`).
    preset: "quick", "seed" or a :class:`~livecell_kit.presets.Preset`;
        ``overrides`` replace its fields (``batch_size=4``, ``precision="float32"``...).
    out_dir: run folder (see the module docstring).  Rerunning the same call
        resumes an interrupted run; a finished run is loaded, not retrained.
    epochs: overrides the preset's epochs.
    callbacks: extra Keras callbacks, run after the kit's own.
    """
    if out_dir is None:
        raise ValueError("train() needs out_dir, the run folder for checkpoints and the model")
    out_dir = Path(out_dir)
    preset = _resolve_preset(preset, epochs, overrides)
    mc, tc, dc = preset.model, preset.train, preset.data
    config_path = out_dir / "config.json"
    data_root = Path(data_root)
    if config_path.exists():
        with open(config_path) as f:
            prior = json.load(f)
        if _with_new_defaults(prior.get("preset")) != json.loads(json.dumps(preset.to_dict())):
            raise ValueError(f"{out_dir} holds a run with other settings (see {config_path}); "
                             "rerun with the same preset and options, or choose a new --out folder")
        if prior.get("finished") and (out_dir / "model.keras").exists():
            if verbose:
                print(f"{out_dir}: run already finished; loading model.keras")
            return _finished_result(out_dir, prior)

    precision = choose_precision(tc.precision)
    if verbose:
        print(f"precision: {precision}")
    out_dir.mkdir(parents=True, exist_ok=True)
    config = {"preset": preset.to_dict(), "precision": precision, "data_root": str(data_root.resolve()),
              "kit_version": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
              "finished": False}
    atomic.write_json(config_path, config)

    keras.utils.set_random_seed(tc.seed)
    train_images, train_masks = split_files(data_root, "train", mc.outputs, dc.train_images,
                                            dc.subset_seed, progress=verbose > 0, subset_rule=dc.subset)
    val_images, val_masks = split_files(data_root, "val", mc.outputs, dc.val_images,
                                        dc.subset_seed, progress=verbose > 0, subset_rule=dc.subset)
    steps = tc.steps_per_epoch or max(1, len(train_images) // tc.batch_size)
    train_ds = training_dataset(train_images, train_masks, tc.batch_size, tc.crop_size, tc.augment, tc.seed)
    val_ds = validation_dataset(val_images, val_masks, tc.batch_size)

    ckpt = out_dir / "checkpoints"
    ckpt.mkdir(exist_ok=True)
    history = read_history(out_dir)
    prior_best = min((v for v in history.get("val_loss", []) if v == v), default=None)
    kit_callbacks = [
        # Restores weights, optimizer state and the epoch counter after a kill;
        # kept until this function marks the run finished (not deleted by fit itself).
        keras.callbacks.BackupAndRestore(str(out_dir / "backup"), delete_checkpoint=False),
        # initial_value_threshold: a resumed run must beat the earlier runs' best, not start afresh.
        keras.callbacks.ModelCheckpoint(str(ckpt / "best.keras"), monitor="val_loss", save_best_only=True,
                                        initial_value_threshold=prior_best),
        keras.callbacks.ModelCheckpoint(str(ckpt / "last.keras")),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        JsonHistory(out_dir / "history.json"),
    ]
    if tc.early_stopping_patience is not None:
        kit_callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=tc.early_stopping_patience,
                                                           baseline=prior_best))

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        with choose_strategy().scope():
            model = build_unet(mc, name=f"unet_{preset.name}")
            model.compile(optimizer=keras.optimizers.Adam(_lr(tc, steps)), loss=get_loss(tc.loss),
                          metrics=make_metrics(), jit_compile=tc.jit_compile)
        model.fit(train_ds, epochs=tc.epochs, steps_per_epoch=steps, validation_data=val_ds,
                  callbacks=kit_callbacks + list(callbacks), verbose=verbose,
                  shuffle=False)  # the tf.data pipeline shuffles itself
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    best = ckpt / "best.keras"
    final = load_model(best) if best.exists() else model
    _save_model_atomic(final, out_dir / "model.keras")
    history = read_history(out_dir)
    config.update(finished=True, epochs_trained=len(history.get("epoch", [])))
    atomic.write_json(config_path, config)
    shutil.rmtree(out_dir / "backup", ignore_errors=True)
    return TrainResult(model=final, history=history, out_dir=out_dir, precision=precision)


def example_batch(data_root, preset="quick", split: str = "train", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One training batch exactly as the network sees it (crops, augmentation included).

    Returns x (B, h, w, 1) grey values 0..255 and y (B, h, w, C) float32 0/1, as numpy arrays.
    """
    preset = _resolve_preset(preset, None, {})
    tc = preset.train
    image_paths, mask_paths = split_files(data_root, split, preset.model.outputs)
    ds = training_dataset(image_paths, mask_paths, tc.batch_size, tc.crop_size, tc.augment, seed)
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def reproduce_command(preset: str = "seed", data_dir: str = "~/livecell", out_dir: str = "runs/seed") -> str:
    """The shell commands that download LIVECell, train ``preset`` on it and evaluate the result.

    ``evaluate`` picks the test images with the run's own subset rule (the seed: the first
    512 in file order) and prints the seed's reported figures beside this run's.
    ``make reproduce-seed`` runs exactly these commands.
    """
    tc, dc = get_preset(preset).train, get_preset(preset).data
    return "\n".join([
        f"livecell-kit download --out {data_dir}",
        f"livecell-kit train --data {data_dir} --preset {preset} --out {out_dir}"
        f"   # {dc.subset} {dc.train_images} train / {dc.val_images} val images, {tc.epochs} epochs, "
        f"batch {tc.batch_size}, lr {tc.learning_rate:g}",
        f"livecell-kit evaluate --model {out_dir} --data {data_dir} --split test --images {dc.test_images} "
        f"--out {out_dir}/metrics.json",
    ])


class PredictionSnapshots(keras.callbacks.Callback):
    """Predict a few fixed images at the end of every epoch: watch the network learn.

    images: sequence of (H, W) grey frames, 0..255, H and W multiples of ``2**depth``
        (crops keep this cheap: about a second per epoch on a CPU for two 256×256 crops).
    After training, ``epochs`` lists the epoch numbers (1-based) and ``probabilities``
    one (N, H, W) float32 array per epoch.
    """

    def __init__(self, images):
        super().__init__()
        self.images = np.stack([np.asarray(i) for i in images])[..., None]
        self.epochs: list[int] = []
        self.probabilities: list[np.ndarray] = []

    def on_epoch_end(self, epoch, logs=None):
        out = self.model.predict(self.images, verbose=0)
        self.epochs.append(epoch + 1)
        self.probabilities.append(np.asarray(out[..., 0], np.float32))
