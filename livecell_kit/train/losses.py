"""Losses and Keras metrics of the segmentation training.

Shapes: ``y_true`` (B, H, W, C) float 0/1 targets, ``y_pred`` (B, H, W, C)
sigmoid probabilities.  ``weighted_bce`` takes one more ``y_true`` channel,
the per-pixel weight map.  ``cells_loss`` and ``cells_l1_loss`` take the instance
head's three channels (C = 3: foreground, centre distance, boundary distance, each
0..1, :func:`livecell_kit.masks.distance_targets`).

Everything here is registered with Keras under ``livecell_kit>NAME`` (e.g.
``livecell_kit>bce_dice``, ``livecell_kit>PixelAccuracy``): a saved
``model.keras`` names its loss and metrics that way, so it loads wherever this
module is imported, whichever module defined them when it was saved.  Keep the
names.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from livecell_kit.presets import CELLS_DISTANCE_WEIGHTS


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


@keras.saving.register_keras_serializable(package="livecell_kit")
def weighted_bce(y_true, y_pred):
    """The U-Net paper's border-weighted BCE: w(x) · BCE(x) per pixel → (B, H, W).

    y_true: (B, H, W, C + 1), the C 0/1 targets followed by the weight map w(x)
    (:func:`livecell_kit.masks.border_weight_map`, Ronneberger et al. 2015, eq. 2),
    which makes mistakes in the narrow gaps between cells cost up to 1 + w0 times more.

    The weights ride in ``y_true`` rather than as Keras sample weights so that they
    go through the same crop, flip and rotation as the masks (one stacked tensor in
    the pipeline), the validation loss is weighted the same way, and a saved model
    names one self-contained loss.  Keras' metrics read channel 0 only, so they are
    unaffected by the extra channel.
    """
    y_true = tf.cast(y_true, tf.float32)
    return y_true[..., -1] * bce(y_true[..., :-1], y_pred)


def _masked_distance_error(y_true, y_pred, power: int):
    """Mean |error|**power of channels 1.. over the truth's cell pixels (channel 0 >= 0.5), per image → (B,).

    Background pixels are left out: there the distances are 1 by convention and the
    foreground channel already decides.  An image with no cell pixels scores 0.
    """
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    inside = tf.cast(y_true[..., :1] >= 0.5, tf.float32)
    error = tf.abs(y_true[..., 1:] - y_pred[..., 1:]) ** power
    total = tf.reduce_sum(inside * error, axis=(1, 2, 3))
    count = tf.reduce_sum(inside, axis=(1, 2, 3)) * tf.cast(tf.shape(error)[-1], tf.float32)
    return total / tf.maximum(count, 1.0)


def _cells(y_true, y_pred, name: str, power: int):
    foreground = bce_dice(y_true[..., :1], y_pred[..., :1])
    return foreground + CELLS_DISTANCE_WEIGHTS[name] * _masked_distance_error(y_true, y_pred, power)


@keras.saving.register_keras_serializable(package="livecell_kit")
def cells_loss(y_true, y_pred):
    """The instance head's loss, per image → (B,): BCE + Dice on the foreground (channel 0)
    plus ``presets.CELLS_DISTANCE_WEIGHTS["cells_loss"]`` × the mean squared error of the
    two distance maps (channels 1-2) over the truth's cell pixels."""
    return _cells(y_true, y_pred, "cells_loss", 2)


@keras.saving.register_keras_serializable(package="livecell_kit")
def cells_l1_loss(y_true, y_pred):
    """As :func:`cells_loss`, with the mean absolute error of the distance maps
    (weight ``presets.CELLS_DISTANCE_WEIGHTS["cells_l1_loss"]``)."""
    return _cells(y_true, y_pred, "cells_l1_loss", 1)


LOSSES = {"bce": bce, "bce_dice": bce_dice, "weighted_bce": weighted_bce, "cells_loss": cells_loss,
          "cells_l1_loss": cells_l1_loss}
#: Losses whose targets carry the weight map as an extra last channel.
WEIGHT_MAP_LOSSES = ("weighted_bce",)
#: Losses of the instance head (ModelConfig.outputs "cells"); the others are for the semantic outputs.
CELLS_LOSSES = ("cells_loss", "cells_l1_loss")


def get_loss(name: str):
    """Loss function for ``TrainConfig.loss``."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}") from None


def needs_weight_map(loss_name: str) -> bool:
    """True when loss ``loss_name`` expects the weight map as the targets' last channel."""
    get_loss(loss_name)  # unknown names fail here, with the choices
    return loss_name in WEIGHT_MAP_LOSSES


def check_loss_fits(loss_name: str, outputs: str) -> None:
    """ValueError unless loss ``loss_name`` suits a model with ``outputs`` (ModelConfig.outputs):
    the instance head ("cells") trains with a cells loss, every other output with another loss."""
    get_loss(loss_name)  # unknown names fail here, with the choices
    if (outputs == "cells") != (loss_name in CELLS_LOSSES):
        fits = (f"one of {', '.join(CELLS_LOSSES)}" if outputs == "cells" else
                f"one of {', '.join(sorted(set(LOSSES) - set(CELLS_LOSSES)))}")
        raise ValueError(f"loss {loss_name!r} does not fit a model with outputs {outputs!r}: choose {fits} "
                         f"(or the preset 'cells' for the instance head)")


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
