"""The ``seed`` preset is the seed project (jaimec00/CSC452_Project), exactly.

The reference below restates the seed's ``setup_model(input_shape, num_layers=3,
initial_filters=16)`` (model.py): per level two 3x3 ReLU convs ("same"), 2x2 max
pooling; a bottleneck of two convs; per decoder level a 2x2 stride-2 transposed
conv, concatenation with the skip, two 3x3 ReLU convs; a 1x1 sigmoid conv.  Keras
defaults everywhere else (glorot-uniform kernels, zero biases, no BN, no dropout).
"""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import layers

from livecell_kit import evaluate
from livecell_kit.model import build_unet, count_params
from livecell_kit.presets import PRESETS


def seed_reference_unet(input_shape=(None, None, 1), num_layers=3, initial_filters=16):
    inputs = keras.Input(shape=input_shape)
    x, skips, filters = inputs, [], initial_filters
    for _ in range(num_layers):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
        filters *= 2
    x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
    x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
    for level in reversed(range(num_layers)):
        filters //= 2
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
        x = layers.Concatenate()([x, skips[level]])
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
    return keras.Model(inputs, layers.Conv2D(1, 1, activation="sigmoid")(x))


def _weighted(model):
    """(kind, filters, kernel, strides, initializer) of every layer that holds weights."""
    rows = []
    for layer in model.layers:
        if layer.weights:
            rows.append((type(layer).__name__, layer.filters, tuple(layer.kernel_size), tuple(layer.strides),
                         type(layer.kernel_initializer).__name__))
    return rows


def test_seed_model_has_the_seeds_layers_and_weights():
    cfg = PRESETS["seed"].model
    kit, ref = build_unet(cfg), seed_reference_unet()
    assert _weighted(kit) == _weighted(ref)
    assert [r[1] for r in _weighted(kit) if r[0] == "Conv2D"][:8] == [16, 16, 32, 32, 64, 64, 128, 128]
    assert {r[4] for r in _weighted(kit)} == {"GlorotUniform"}
    assert not any(isinstance(layer, (layers.BatchNormalization, layers.Dropout)) for layer in kit.layers)
    assert kit.count_params() == ref.count_params() == count_params(cfg) == 481_745
    # same function: with the reference's weights, the kit's model (which divides by 255
    # itself) maps raw 0..255 frames to what the seed computed on frames / 255
    kit.set_weights(ref.get_weights())
    x = np.random.default_rng(0).integers(0, 256, (1, 32, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(kit(x)), keras.ops.convert_to_numpy(ref(x / 255.0)),
                               rtol=1e-5, atol=1e-6)


def test_seed_metric_is_keras_binary_accuracy_and_bce():
    rng = np.random.default_rng(1)
    prob = rng.uniform(size=(2, 20, 30)).astype(np.float32)
    prob[0, 0, :5] = 0.5  # exactly 0.5 is "background" for Keras (p > 0.5)
    truth = rng.integers(0, 2, (2, 20, 30))
    acc = evaluate.MetricAccumulator(0.5, strict=True)
    for p, t in zip(prob, truth):
        acc.add(p, t)
    got = acc.result()
    want_acc = float(keras.metrics.binary_accuracy(truth[..., None].astype(np.float32), prob[..., None]).numpy().mean())
    want_bce = float(keras.losses.BinaryCrossentropy()(truth[..., None].astype(np.float32), prob[..., None]))
    assert got["pixel_accuracy"] == pytest.approx(want_acc, abs=1e-6)  # Keras means in float32
    assert got["bce"] == pytest.approx(want_bce, rel=1e-5)
    non_strict = evaluate.MetricAccumulator(0.5).add(prob[0], truth[0]).result()["pixel_accuracy"]
    strict = evaluate.MetricAccumulator(0.5, strict=True).add(prob[0], truth[0]).result()["pixel_accuracy"]
    assert non_strict != strict  # the five 0.5 pixels count differently


def test_seed_comparison_table():
    results = {"seed_metrics": {"pixel_accuracy": 0.93456, "bce": 0.1876}, "threshold": 0.45,
               "iou": 0.81, "dice": 0.895, "n_images": 512, "split": "test"}
    table = evaluate.seed_comparison(results)
    lines = table.splitlines()
    assert "seed reported" in lines[0] and "512 test images" in lines[0]
    assert "92.19%" in lines[2] and "93.46%" in lines[2]
    assert "0.2043" in lines[3] and "0.1876" in lines[3]
