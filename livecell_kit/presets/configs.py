"""What a preset holds, and the training details that every preset shares.

:class:`ModelConfig`, :class:`TrainConfig` and :class:`DataConfig` make a
:class:`Preset` (the named ones are in :mod:`livecell_kit.presets.named`).  The
module-level settings below are not part of a preset: changing one changes every run.
"""
from __future__ import annotations

import dataclasses
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
    augment: random zoom, flips, 90° rotations and intensity changes (ranges: :data:`AUGMENTATION`).
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


#: Weight of the distance maps' error against the foreground's BCE + Dice in the instance head's
#: losses (``train.losses.cells_loss``: mean squared error; ``cells_l1_loss``: mean absolute error).
#: After training the squared error is ~0.02 and BCE + Dice ~0.2, so 20 makes the two parts
#: pull alike.  Chosen on the sample's val split (preset "cells", one seed): weights 5 / 10 / 20
#: gave distance MSE 0.031 / 0.024 / 0.020 and, with it, foreground BCE + Dice 0.30 / 0.24 / 0.21
#: (the distances teach the cell channel too); the L1 loss (weight 2, against MSE at 5) did no better.
CELLS_DISTANCE_WEIGHTS = {"cells_loss": 20.0, "cells_l1_loss": 2.0}

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



# --- details every preset shares ------------------------------------------------------------------
#: Momentum of batch normalisation's running mean and variance (Keras' default: 0.99).  At 0.9
#: they settle within tens of steps, so short runs (the quick preset) validate with sensible statistics.
BATCH_NORM_MOMENTUM = 0.9

#: Decoded training or validation sets smaller than this (bytes) are cached in RAM; larger ones
#: stream from disk (:mod:`livecell_kit.train.pipeline`).
CACHE_LIMIT_BYTES = 512 * 2**20


@dataclass(frozen=True)
class Augmentation:
    """Ranges of the random changes :func:`livecell_kit.train.augment.crop_and_augment` makes to each training crop.

    scale: zoom of a crop (> 1: a larger window shrunk, cells look smaller), log-uniform.
    contrast: factor on the grey levels' spread about the crop's mean, log-uniform.
    gamma: exponent on grey levels / 255, log-uniform.
    brightness: ± grey levels added.
    sharpness: -1 blurs (Gaussian, σ = 1 px), 0 leaves, +1 sharpens (unsharp mask).
    noise: largest std of added Gaussian noise, grey levels.
    gradient: largest ± grey levels of a linear illumination ramp across the crop.

    The defaults span what still separates the kit's synthetic sample from real
    LIVECell frames (``bench/sample_realism.py``): cell sizes within ~15 %, frame
    contrast and the balance of bright halos and dark granules.  Blur, noise and
    ramps are off: the sample already matches the real frames' noise (std 1.0-1.2
    grey levels) and flat background, and switching them on (sharpness ±0.3,
    noise 2, ramp ±4) cost about 0.01 Dice on the real frames (quick preset, 2 seeds).
    """

    scale: tuple[float, float] = (0.87, 1.15)
    contrast: tuple[float, float] = (0.8, 1.25)
    gamma: tuple[float, float] = (0.9, 1.1)
    brightness: float = 25.5
    sharpness: tuple[float, float] = (0.0, 0.0)
    noise: float = 0.0
    gradient: float = 0.0


#: The ranges every preset with ``TrainConfig.augment`` uses.
AUGMENTATION = Augmentation()
