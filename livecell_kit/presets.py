"""Every named setting of the kit, in one place.

A *preset* bundles the U-Net's architecture (:class:`ModelConfig`), how it is
trained (:class:`TrainConfig`) and which data it sees (:class:`DataConfig`).

* ``seed``  — the student project the kit grew out of (jaimec00/CSC452_Project:
  ``model.py`` ``setup_model``, ``data_loader.py``, ``train_colab.ipynb``), reproduced
  faithfully:

  - data: the **first** 1024 / 256 / 512 image ids in file order of the official
    train / val / test JSONs (``COCO.getImgIds()[:n]``; not stratified, not random);
    full 520×704 frames divided by 255; no augmentation.
  - model: U-Net with 16-32-64 filters and a 128-filter bottleneck, two 3×3 ReLU
    convolutions per level ("same" padding), 2×2 max pooling, ``Conv2DTranspose``
    (kernel 2, stride 2, linear) up-sampling, **no** batch normalisation, no
    dropout, Keras' default glorot-uniform initialisation, 1×1 sigmoid output
    (481,745 weights).
  - training: Adam at 5e-5, binary cross-entropy, 50 epochs, batch 32, no callbacks.
  - metric: Keras ``binary_accuracy`` (``p > 0.5``) and BCE over all pixels of the
    512 test images: it reported **92.19 %** and **0.2043**.

  Deviations, both forced by LIVECell's own files and neither touching the test
  split: a train image that is also in the val JSON (LIVECell issue #26) is skipped
  before the first 1024 are counted, and a file listed twice keeps its first record
  (see :mod:`livecell_kit.data`).  The kit's checkpoints, history and resume
  callbacks do not change the training mathematics.
* ``kit``   — the kit's better settings at the seed's scale (a GPU job): stratified
  subset, batch-normalised U-Net with 32 base filters and He initialisation,
  augmentation, BCE + Dice, cosine learning-rate decay, early stopping.
* ``quick`` — a small, batch-normalised U-Net trained on random crops, sized to
  learn the bundled sample data set in a couple of minutes on a 2-core CPU.
* ``cells`` — ``quick``'s size with the instance head: besides "cell / not cell" the
  U-Net predicts each cell's centre and boundary distance maps, from which a seeded
  watershed splits touching cells; ``kit-cells`` — the same at ``kit``'s scale (GPU);
  ``cells-border`` — the same network predicting a touching-border channel instead of
  the distance maps, to compare the two ways (notebook 06's experiment).
* ``borders`` — ``quick`` with the U-Net paper's border-weighted BCE
  (Ronneberger et al. 2015, eq. 2): background pixels in the narrow gaps between
  cells weigh up to 1 + w0 = 11 times more, to teach the network to keep
  touching cells apart.

Students read this file; change a preset with :func:`get_preset` overrides,
e.g. ``get_preset("quick", epochs=5, batch_size=4)``.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelConfig:
    """U-Net architecture.

    depth: number of 2×2 max-pool down-samplings (and as many up-samplings);
        inputs must be multiples of ``2**depth`` pixels (520 and 704 are
        multiples of 8).
    base_filters: convolution filters at the first level, doubled per level.
    batch_norm: batch normalisation after every 3×3 convolution.
    dropout: dropout rate in the bottleneck (0 disables it).
    upsampling: ``"transpose"`` (learned 2×2 transposed convolution) or
        ``"bilinear"`` (fixed bilinear up-sampling followed by a 1×1 conv).
    outputs: ``"semantic"`` (1 sigmoid channel: cell / not cell),
        ``"semantic+border"`` (2 sigmoid channels: cell, touching border) or
        ``"cells"`` (the instance head, 3 sigmoid channels: cell, each cell's
        normalised centre distance and inverted boundary distance; see
        ``masks.distance_targets``).
    kernel_initializer: initial weights of the convolutions, a Keras name:
        ``"he_normal"`` suits ReLU networks; ``"glorot_uniform"`` is Keras'
        default, which the seed project used.
    """

    depth: int = 3
    base_filters: int = 16
    batch_norm: bool = False
    dropout: float = 0.0
    upsampling: str = "transpose"
    outputs: str = "semantic"
    kernel_initializer: str = "he_normal"


@dataclass(frozen=True)
class TrainConfig:
    """How the model is trained.

    epochs, batch_size: as in ``keras.Model.fit``.
    learning_rate: Adam's initial learning rate.
    crop_size: side of the random square training crops in pixels, or
        ``None`` to train on whole 520×704 frames (the seed's way).
    augment: random zoom, flips, 90° rotations and intensity changes (``train.augment.Augmentation``).
    loss: ``"bce"`` (the seed's binary cross-entropy), ``"bce_dice"``
        (BCE + soft Dice, robust to the many background pixels) or
        ``"weighted_bce"`` (BCE weighted by the U-Net paper's border weight map);
        for ``outputs="cells"``: ``"cells_loss"`` (BCE + Dice on the cell channel,
        squared error of the distance maps inside cells) or ``"cells_l1_loss"``
        (the same with absolute error).
    border_weight_w0, border_weight_sigma: the weight map's w0 (extra weight in the
        narrowest gaps between cells) and σ (its fall-off, in pixels), the U-Net
        paper's 10 and 5; used by ``"weighted_bce"`` only.
    steps_per_epoch: batches per epoch, or ``None`` for one pass over the
        training images.
    early_stopping_patience: epochs without val-loss improvement before
        stopping, or ``None`` to never stop early.
    lr_schedule: ``"constant"`` or ``"cosine"`` decay to 1 % over the run.
    precision: ``"auto"`` (bfloat16 on CPUs with AMX/AVX512-BF16, float16 on
        GPUs with tensor cores, else float32), ``"float32"``, ``"bfloat16"``
        or ``"float16"``.
    seed: seeds Python, numpy and TensorFlow for a reproducible run.
    """

    epochs: int = 50
    batch_size: int = 32
    learning_rate: float = 5e-5
    crop_size: int | None = None
    augment: bool = False
    loss: str = "bce"
    steps_per_epoch: int | None = None
    early_stopping_patience: int | None = None
    lr_schedule: str = "constant"
    precision: str = "auto"
    jit_compile: bool = False
    seed: int = 0
    border_weight_w0: float = 10.0
    border_weight_sigma: float = 5.0


# --- instance head (issue 21, i21-core) -------------------------------------------------------
#: Weight of the distance maps' error against the foreground's BCE + Dice in the instance head's
#: losses (``train.losses.cells_loss``: mean squared error; ``cells_l1_loss``: mean absolute error).
#: After training the squared error is ~0.02 and BCE + Dice ~0.2, so 20 makes the two parts
#: pull alike.  Chosen on the sample's val split (preset "cells", one seed): weights 5 / 10 / 20
#: gave distance MSE 0.031 / 0.024 / 0.020 and, with it, foreground BCE + Dice 0.30 / 0.24 / 0.21
#: (the distances teach the cell channel too); the L1 loss (weight 2, against MSE at 5) did no better.
CELLS_DISTANCE_WEIGHTS = {"cells_loss": 20.0, "cells_l1_loss": 2.0}
# --- end instance head --------------------------------------------------------------------------


#: What the seed project reported on its 512 test images (Keras binary accuracy at 0.5, BCE).
SEED_REPORTED = {"pixel_accuracy": 0.9219, "bce": 0.2043}

@dataclass(frozen=True)
class DataConfig:
    """Which images: numbers per LIVECell split and how they are picked.

    subset: ``"stratified"`` (a seeded random draw, each cell type in proportion
        to its share of the split) or ``"first"`` (the first N image records in
        file order, the seed project's rule).
    subset_seed: seeds the stratified draw (ignored by ``"first"``).
    """

    train_images: int = 1024
    val_images: int = 256
    test_images: int = 512
    subset: str = "stratified"
    subset_seed: int = 0


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_QUICK = Preset(
    name="quick",
    description=(
        "Laptop-CPU preset: batch-normalised U-Net (depth 3, 8 filters) on random "
        "128x128 crops with augmentation, BCE + Dice, a couple of minutes on 2 cores."
    ),
    model=ModelConfig(depth=3, base_filters=8, batch_norm=True, dropout=0.0,
                      upsampling="transpose", outputs="semantic"),
    train=TrainConfig(epochs=8, batch_size=8, learning_rate=3e-3, crop_size=128,
                      augment=True, loss="bce_dice", steps_per_epoch=30,
                      early_stopping_patience=None, lr_schedule="cosine"),
    data=DataConfig(train_images=1024, val_images=256, test_images=512),
)

PRESETS: dict[str, Preset] = {
    "seed": Preset(
        name="seed",
        description=(
            "The seed student project, exactly: first 1024/256/512 images in file order, "
            "plain U-Net (16-32-64, 128 bottleneck, no BN, glorot init), BCE, full 520x704 "
            "frames, no augmentation, 50 epochs, batch 32, Adam 5e-5."
        ),
        model=ModelConfig(depth=3, base_filters=16, batch_norm=False, dropout=0.0,
                          upsampling="transpose", outputs="semantic",
                          kernel_initializer="glorot_uniform"),
        train=TrainConfig(epochs=50, batch_size=32, learning_rate=5e-5, crop_size=None,
                          augment=False, loss="bce", lr_schedule="constant"),
        data=DataConfig(train_images=1024, val_images=256, test_images=512, subset="first"),
    ),
    "kit": Preset(
        name="kit",
        description=(
            "The kit's settings at the seed's scale (GPU): stratified 1024/256/512 images, "
            "batch-normalised U-Net (depth 3, 32 filters, He init), augmentation, BCE + Dice, "
            "cosine decay, early stopping."
        ),
        model=ModelConfig(depth=3, base_filters=32, batch_norm=True, dropout=0.1,
                          upsampling="transpose", outputs="semantic"),
        train=TrainConfig(epochs=50, batch_size=16, learning_rate=1e-3, crop_size=256,
                          augment=True, loss="bce_dice", early_stopping_patience=10,
                          lr_schedule="cosine"),
        data=DataConfig(train_images=1024, val_images=256, test_images=512, subset="stratified"),
    ),
    "quick": _QUICK,
    "borders": dataclasses.replace(
        _QUICK, name="borders",
        description=(
            "The quick preset with the U-Net paper's border-weighted BCE instead of BCE + Dice: "
            "gaps between touching cells weigh up to 11 times more (w0 10, sigma 5 px)."
        ),
        train=dataclasses.replace(_QUICK.train, loss="weighted_bce"),
    ),
}

# --- presets that split touching cells ----------------------------------------------------------
PRESETS["cells"] = Preset(
    name="cells",
    description=(
        "Laptop-CPU instance head: batch-normalised U-Net (depth 3, 16 filters) predicting cell, "
        "centre-distance and boundary-distance maps on random 128x128 crops with augmentation, "
        "BCE + Dice plus the distances' squared error, 20 epochs of 30 steps; under 5 min on 2 cores."
    ),
    # 16 filters and 20 epochs (quick: 8 and 8): on the sample's val split 8 filters x 12 epochs
    # left the distance maps blurred (MSE 0.032 vs 0.020 at 16 x 20).
    model=dataclasses.replace(_QUICK.model, outputs="cells", base_filters=16),
    train=dataclasses.replace(_QUICK.train, loss="cells_loss", epochs=20),
    data=_QUICK.data,
)
PRESETS["kit-cells"] = dataclasses.replace(
    PRESETS["kit"], name="kit-cells",
    description=(
        "The kit preset with the instance head (GPU): cell, centre-distance and boundary-distance "
        "maps, BCE + Dice plus the distances' squared error."
    ),
    model=dataclasses.replace(PRESETS["kit"].model, outputs="cells"),
    train=dataclasses.replace(PRESETS["kit"].train, loss="cells_loss"),
)
PRESETS["cells-border"] = dataclasses.replace(
    PRESETS["cells"], name="cells-border",
    description=(
        "The cells preset with the older way to split cells, for comparison (notebook 06): the same "
        "U-Net predicting cell and touching-border maps (notebook 02's border mask), BCE + Dice."
    ),
    model=dataclasses.replace(PRESETS["cells"].model, outputs="semantic+border"),
    train=dataclasses.replace(PRESETS["cells"].train, loss="bce_dice"),
)


def get_preset(name: str, **overrides) -> Preset:
    """Return preset ``name`` with fields replaced by ``overrides``.

    Overrides are matched by field name against the model, train and data
    configs, e.g. ``get_preset("seed", epochs=3, base_filters=8)``.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}{_did_you_mean(name, PRESETS)}; "
                         f"choose one of {', '.join(PRESETS)} (see livecell_kit/presets.py)")
    return override(PRESETS[name], **overrides)


def override(preset: Preset, **overrides) -> Preset:
    """``preset`` with the named fields of its model, train or data config replaced."""
    parts = {"model": preset.model, "train": preset.train, "data": preset.data}
    changes: dict[str, dict] = {k: {} for k in parts}
    for key, value in overrides.items():
        owners = [k for k, cfg in parts.items() if key in {f.name for f in dataclasses.fields(cfg)}]
        if not owners:
            known = [f.name for cfg in parts.values() for f in dataclasses.fields(cfg)]
            raise ValueError(f"{key!r} is not a setting of any config{_did_you_mean(key, known)}; "
                             "see livecell_kit/presets.py for the settings")
        changes[owners[0]][key] = value
    return dataclasses.replace(
        preset, **{k: dataclasses.replace(parts[k], **v) for k, v in changes.items() if v}
    )


def _did_you_mean(name, known) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve(preset, **overrides) -> Preset:
    """A preset given by name or as a :class:`Preset`, with ``overrides`` as in :func:`get_preset`."""
    if isinstance(preset, str):
        return get_preset(preset, **overrides)
    if isinstance(preset, Preset):
        return override(preset, **overrides)
    raise TypeError(f"preset must be a name ({', '.join(PRESETS)}) or a Preset, got {type(preset).__name__}")


@dataclass(frozen=True)
class ExportConfig:
    """How ``livecell-kit export`` writes a BioImage Model Zoo package (:mod:`livecell_kit.export`).

    onnx_opset: ONNX operator set of the exported graph; 15-17 run in deepImageJ's and
        current ONNX Runtime releases (17 has every operator the U-Net uses).
    test_side: height and width in pixels of the package's test image (a synthetic frame
        the kit draws), rounded down to the model's size multiple; small keeps the
        package's test quick in every tool.
    test_seed: random seed of that frame, so two exports of one model hold the same test tensors.
    """

    onnx_opset: int = 17
    test_side: int = 256
    test_seed: int = 23


EXPORT = ExportConfig()


# --- splitting a cells model's output into cells (livecell_kit.instances) -------------------------

@dataclass(frozen=True)
class CellSplitting:
    """How :func:`livecell_kit.instances.split_cells` turns a model's output into cells.

    foreground_threshold: a pixel is inside a cell when its foreground probability is at
        least this (all three kinds of model).
    centre_threshold, boundary_threshold: seeds are the pixels whose smoothed centre
        distance and boundary distance (both 0 at a cell's middle, 1 at its outline) are
        below these (models with distance maps only).
    smoothing_sigma: Gaussian smoothing of the two distance maps before seeding, in pixels.
    min_size: cells smaller than this many pixels are dropped.
    scoring: each cell's confidence for COCO AP: ``"foreground"`` (its mean foreground
        probability), ``"foreground_seed"`` (that times 1 - its lowest centre distance:
        how clearly it has a centre) or ``"foreground_shape"`` (that times how well the
        predicted boundary distance matches the found cell's own shape).
    Chosen on the sample's val split only (``bench/cells_tuning.py`` prints the grid).
    """

    foreground_threshold: float = 0.5
    centre_threshold: float = 0.5
    boundary_threshold: float = 0.5
    smoothing_sigma: float = 1.6
    min_size: int = 20
    scoring: str = "foreground"


#: Chosen by bench/cells_tuning.py for the ``cells`` preset trained on the seed-0 sample (generator
#: v4), on its val split (16 frames): AP 0.50 there, against 0.42 at the defaults above (torch-em's).
#: No smoothing: the trained maps are smooth already, and blurring merged small neighbours.
CELL_SPLITTING = CellSplitting(foreground_threshold=0.6, centre_threshold=0.5, boundary_threshold=0.5,
                               smoothing_sigma=0.0, min_size=20, scoring="foreground_shape")


# --- big frames -----------------------------------------------------------------------------------
#: Outputs with more pixels than this are split into cells tile by tile
#: (:func:`livecell_kit.instances.split_cells_tiled`): a seeded watershed over a whole
#: 4000×4000 output takes ~0.6 GB on top of the output, tiles of ``SPLIT_TILE`` px ~50 MB each.
SPLIT_TILE_PIXELS = 2048 * 2048
#: Side of the tiles (px) and the context each sees on every side (px): a cell belongs to the
#: tile holding its centroid and is found whole when it is smaller than the margin.
SPLIT_TILE = 1024
SPLIT_TILE_MARGIN = 96
#: Image pixels :func:`livecell_kit.predict.stream_cells` holds in flight at most (a frame alone
#: always goes): ~23 frames of 520×704, while 4000×4000 frames go one at a time (each holds
#: ~0.3 GB: image, 3-channel output, labels).
STREAM_PENDING_PIXELS = 2 * 2048 * 2048
#: Rows of a frame's overlay drawn at a time by ``predict`` (memory of big frames).
OVERLAY_STRIP_ROWS = 1024


# --- the model shipped with the package (livecell_kit.pretrained) -----------------------------------
#: What ``predict`` and ``measure`` use when no ``--model`` is given, and notebooks 05/06 on Colab
#: instead of retraining: a ``cells`` model trained on the seed-0 sample only (no LIVECell pixels).
PRETRAINED_MODEL = "cells-sample"


# --- the notebook session's memory (livecell_kit.kernels, course.setup) ---------------------------
#: What mybinder.org gives one user's session in all (MB); above it the kernels are restarted.
BINDER_MEMORY_MB = 2048
#: ``course.setup()`` warns when the other kernels of the session hold more than this (MB): a
#: notebook with TensorFlow peaks near 1 GB, so beyond ~0.5 GB elsewhere the two no longer fit.
OTHER_KERNELS_WARN_MB = 500
#: Binder's Jupyter server shuts a kernel down after this many seconds without a cell run (its
#: notebook reruns from the top, reloading what earlier notebooks saved), checking every
#: ``KERNEL_CULL_INTERVAL_S``; a kernel busy training is never shut down.
KERNEL_CULL_IDLE_S = 20 * 60
KERNEL_CULL_INTERVAL_S = 60
# --- kernel memory (issue 24) -------------------------------------------------------------------
#: glibc malloc settings of a notebook kernel that loads TensorFlow (``course.setup``): at most this
#: many malloc heaps ("arenas") for all threads, instead of up to 8 per core, each hoarding what its
#: threads freed ...
KERNEL_MALLOC_ARENAS = 2
#: ... and blocks of this many bytes or more (training tensors: a 8×128×128×8 float32 activation is
#: 4 MiB) mapped on their own, so that freeing one returns it to the system at once; glibc would
#: otherwise raise this threshold to the largest block freed so far and keep such blocks in its heaps.
#: Measured on notebook 04's training (2 epochs of quick on the sample, 2 cores): the kernel's peak
#: resident memory 1193 MB with glibc's defaults, 1147 MB with 2 arenas, 1035 MB with both settings.
KERNEL_MALLOC_MMAP_THRESHOLD = 2**20
