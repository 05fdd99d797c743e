"""The U-Net: builder and the numbers notebook 03 discusses.

:func:`build_unet` turns a :class:`~livecell_kit.presets.ModelConfig` into a
``keras.Model``::

    image (B, H, W, 1), raw intensities 0..255 (uint8 or float)
      └ Rescaling(1/255)                       → [0, 1]
      └ encoder level l = 0..depth-1:  2 × (3×3 conv → [BN] → ReLU), 2×2 max pool
                                       (convs initialised by cfg.kernel_initializer)
      └ bottleneck:                    2 × (3×3 conv → [BN] → ReLU), [dropout]
      └ decoder level l = depth-1..0:  2×2 transposed conv (or bilinear ×2 + 1×1 conv),
                                       concatenate the encoder's level-l features,
                                       2 × (3×3 conv → [BN] → ReLU)
      └ 1×1 conv + sigmoid (float32)  → probabilities (B, H, W, C)

The blocks below (``_two_convs``, ``_encoder_block``, ``_decoder_block``) mirror the
plain Keras version notebook 03 writes for the seed preset; the notebook checks that
both networks agree (same weights' shapes, same output), so they cannot drift apart.

Why the rescaling is inside the model: the input pipeline can carry uint8
pixels (4× less memory than float32 in caches and prefetch buffers), and a
saved ``model.keras`` takes images exactly as :func:`livecell_kit.data.read_image`
returns them — no separate normalisation step to forget at prediction time.
Do **not** feed images already scaled to [0, 1]: they would look black.

Convolutions use ``"same"`` padding, so H and W must be multiples of
``2**depth`` (520×704 frames work for depth ≤ 3) and the output has the
input's size.  ``C`` is 1 for ``outputs="semantic"`` (cell probability),
2 for ``"semantic+border"`` (cell, touching-border probability) and 3 for
``"cells"``, the instance head (cell probability, then each cell's normalised
centre distance and inverted boundary distance, as
:func:`livecell_kit.masks.distance_targets` defines them).

The output layer is float32 even under a mixed-precision policy: sigmoid
probabilities and the loss stay accurate in bfloat16/float16 training.
"""
from __future__ import annotations

import math

import keras
from keras import layers

from livecell_kit.presets import BATCH_NORM_MOMENTUM, ModelConfig

#: What the model expects as input: raw grey values in this range.
INPUT_RANGE = (0, 255)

_OUTPUT_CHANNELS = {"semantic": 1, "semantic+border": 2, "cells": 3}
_UPSAMPLING = ("transpose", "bilinear")


def _check(cfg: ModelConfig) -> None:
    if cfg.depth < 1:
        raise ValueError(f"ModelConfig.depth must be >= 1, got {cfg.depth}")
    if cfg.base_filters < 1:
        raise ValueError(f"ModelConfig.base_filters must be >= 1, got {cfg.base_filters}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {cfg.dropout}")
    if cfg.upsampling not in _UPSAMPLING:
        raise ValueError(f"ModelConfig.upsampling must be one of {_UPSAMPLING}, got {cfg.upsampling!r}")
    if cfg.outputs not in _OUTPUT_CHANNELS:
        raise ValueError(f"ModelConfig.outputs must be one of {tuple(_OUTPUT_CHANNELS)}, "
                         f"got {cfg.outputs!r}")
    try:
        keras.initializers.get(cfg.kernel_initializer)
    except ValueError:
        raise ValueError(f"ModelConfig.kernel_initializer {cfg.kernel_initializer!r} is not a Keras "
                         f"initializer name (e.g. 'he_normal', 'glorot_uniform')") from None


def output_channels(cfg: ModelConfig) -> int:
    """Number of sigmoid output channels: 1 (semantic), 2 (semantic+border) or 3 (cells)."""
    _check(cfg)
    return _OUTPUT_CHANNELS[cfg.outputs]


def level_filters(cfg: ModelConfig) -> list[int]:
    """Filters per level, encoder level 0 first and the bottleneck (level ``depth``) last."""
    return [cfg.base_filters * 2**level for level in range(cfg.depth + 1)]


def _two_convs(x, filters: int, cfg: ModelConfig, prefix: str):
    """Two 3×3 'same' convolutions, each followed by optional BN and ReLU; (B, h, w, filters)."""
    for i in (1, 2):
        # No conv bias when BN follows: BN's beta does the same job.
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not cfg.batch_norm,
                          kernel_initializer=cfg.kernel_initializer, name=f"{prefix}_conv{i}")(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"{prefix}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{prefix}_relu{i}")(x)
    return x


def _encoder_block(x, filters: int, cfg: ModelConfig, level: int):
    """Encoder level ``level``: two convs, then a 2×2 max pool.

    Returns (skip, pooled): the features (B, h, w, filters) the decoder concatenates
    and their pool (B, h/2, w/2, filters) that the next level takes.
    """
    features = _two_convs(x, filters, cfg, f"enc{level}")
    return features, layers.MaxPooling2D(2, name=f"pool{level}")(features)


def _decoder_block(x, skip, filters: int, cfg: ModelConfig, level: int):
    """Decoder level ``level``: up-sample ``x`` (B, h/2, w/2, ·) ×2, concatenate ``skip``
    (B, h, w, filters) and convolve; returns (B, h, w, filters)."""
    if cfg.upsampling == "transpose":
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level}")(x)
    else:
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level}")(x)
        x = layers.Conv2D(filters, 1, name=f"up{level}_conv")(x)
    x = layers.Concatenate(name=f"dec{level}_concat")([x, skip])
    return _two_convs(x, filters, cfg, f"dec{level}")


def build_unet(cfg: ModelConfig, input_shape=(None, None, 1), name: str | None = None) -> keras.Model:
    """Build the U-Net described by ``cfg``.

    input_shape: (H, W, 1); ``None`` sizes accept any multiple of ``2**depth``.
    Returns a model mapping raw images (B, H, W, 1) in 0..255 to sigmoid
    probabilities (B, H, W, C) in float32, C = :func:`output_channels`.
    Layers follow the current ``keras.mixed_precision`` policy except the output.
    """
    _check(cfg)
    h, w = input_shape[0], input_shape[1]
    step = 2**cfg.depth
    for side in (h, w):
        if side is not None and side % step:
            raise ValueError(f"input size {h}x{w} is not a multiple of 2**depth = {step}; "
                             f"crop or pad the images, or lower ModelConfig.depth")
    filters = level_filters(cfg)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / INPUT_RANGE[1], name="rescale")(inputs)

    skips = []
    for level in range(cfg.depth):
        skip, x = _encoder_block(x, filters[level], cfg, level)
        skips.append(skip)

    x = _two_convs(x, filters[cfg.depth], cfg, "bottleneck")
    if cfg.dropout > 0:
        x = layers.Dropout(cfg.dropout, name="bottleneck_dropout")(x)

    for level in reversed(range(cfg.depth)):
        x = _decoder_block(x, skips[level], filters[level], cfg, level)

    outputs = layers.Conv2D(output_channels(cfg), 1, activation="sigmoid", dtype="float32",
                            name="output")(x)
    return keras.Model(inputs, outputs, name=name or f"unet_d{cfg.depth}_f{cfg.base_filters}")


def count_params(cfg: ModelConfig) -> int:
    """Number of weights of :func:`build_unet`'s model, by formula (no model is built).

    A k×k conv from c_in to c_out channels has k·k·c_in·c_out weights plus
    c_out biases (none when BN follows); BN keeps 4 numbers per channel
    (γ, β and the running mean and variance).  Matches ``model.count_params()``.
    """
    _check(cfg)
    f = level_filters(cfg)

    def conv(k, cin, cout, bias=True):
        return k * k * cin * cout + (cout if bias else 0)

    def block(cin, cout):
        bn = cfg.batch_norm
        n = conv(3, cin, cout, not bn) + conv(3, cout, cout, not bn)
        return n + (2 * 4 * cout if bn else 0)

    total, cin = 0, 1
    for level in range(cfg.depth + 1):  # encoder levels and the bottleneck
        total += block(cin, f[level])
        cin = f[level]
    for level in reversed(range(cfg.depth)):
        up_kernel = 2 if cfg.upsampling == "transpose" else 1
        total += conv(up_kernel, f[level + 1], f[level])
        total += block(2 * f[level], f[level])  # input: up-sampled ⊕ skip
    return total + conv(1, f[0], output_channels(cfg))


def _layer_rf(layer, rf: float, jump: float) -> tuple[float, float]:
    """Receptive field and pixel step (in input pixels) after ``layer``."""
    if isinstance(layer, (layers.Conv2D,)) and not isinstance(layer, layers.Conv2DTranspose):
        k, s, d = layer.kernel_size[0], layer.strides[0], layer.dilation_rate[0]
        return rf + (k - 1) * d * jump, jump * s
    if isinstance(layer, (layers.MaxPooling2D, layers.AveragePooling2D)):
        k, s = layer.pool_size[0], layer.strides[0]
        return rf + (k - 1) * jump, jump * s
    if isinstance(layer, layers.Conv2DTranspose):
        k, s = layer.kernel_size[0], layer.strides[0]
        # An output pixel sees ceil(k / s) input pixels of the coarse grid.
        return rf + (math.ceil(k / s) - 1) * jump, jump / s
    if isinstance(layer, layers.UpSampling2D):
        s = layer.size[0]
        # Bilinear interpolation mixes 2 neighbours; nearest copies one.
        extra = 1 if layer.interpolation == "bilinear" else 0
        return rf + extra * jump, jump / s
    return rf, jump  # point-wise layers (BN, ReLU, dropout, rescaling, ...)


def receptive_field(cfg_or_model) -> int:
    """Side in pixels of the input window that one output pixel depends on.

    Walks the model's layer graph (built from ``cfg`` if a ModelConfig is
    given), accumulating for every tensor its receptive field ``rf`` and
    ``jump`` (distance in input pixels between neighbouring feature pixels):
    a k×k layer adds (k-1)·jump, a stride-s layer multiplies jump by s, and a
    concatenation keeps the larger field.  The longest path, through the
    bottleneck, decides it.
    """
    model = build_unet(cfg_or_model) if isinstance(cfg_or_model, ModelConfig) else cfg_or_model
    state: dict[int, tuple[float, float]] = {}
    for inp in model.inputs:
        state[id(inp)] = (1.0, 1.0)
    for layer in model.layers:  # functional models list layers in topological order
        if isinstance(layer, keras.layers.InputLayer):
            continue
        ins = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        rf = max(state[id(t)][0] for t in ins)
        jump = state[id(ins[0])][1]
        state[id(layer.output)] = _layer_rf(layer, rf, jump)
    return int(round(max(state[id(o)][0] for o in model.outputs)))


def describe_unet(cfg: ModelConfig) -> list[tuple[int, int, int]]:
    """One row per level: (level, filters, down-sampling factor).

    Level 0 works at full resolution (factor 1); level ``depth`` is the
    bottleneck at 1/2**depth of the input size (65×88 for 520×704, depth 3).
    """
    return [(level, f, 2**level) for level, f in enumerate(level_filters(cfg))]
