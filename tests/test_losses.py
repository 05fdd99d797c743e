"""Losses and metrics: known values, the border-weighted BCE, names that saved models load by."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from livecell_kit import masks, presets
from livecell_kit import train as T
from livecell_kit.model import build_unet
from livecell_kit.presets import ModelConfig


def test_losses_known_values():
    y = np.zeros((2, 4, 4, 1), np.float32)
    y[:, :2] = 1.0
    np.testing.assert_allclose(T.dice_loss(y, y).numpy(), 0.0, atol=1e-7)
    assert float(np.max(T.bce(y, y).numpy())) < 1e-5
    half = np.full_like(y, 0.5)
    np.testing.assert_allclose(T.bce(y, half).numpy(), np.log(2), rtol=1e-5)
    # all-zero prediction on 8 true pixels per image: dice = smooth / (8 + smooth) = 1/9
    np.testing.assert_allclose(T.dice_loss(y, np.zeros_like(y)).numpy(), 1 - 1 / 9, rtol=1e-6)
    np.testing.assert_allclose(T.bce_dice(y, half).numpy(),
                               np.log(2) + T.dice_loss(y, half).numpy(), rtol=1e-5)


def test_metrics_pool_counts_over_batches():
    truth = np.array([1, 1, 0, 0], np.float32).reshape(1, 2, 2, 1)
    prob = np.array([0.9, 0.2, 0.7, 0.1], np.float32).reshape(1, 2, 2, 1)  # tp fn fp tn
    acc, iou, dice = T.make_metrics()
    for m in (acc, iou, dice):
        m.update_state(truth, prob)
        m.update_state(truth, truth)  # second batch: perfect, 2 tp + 2 tn
    assert float(acc.result()) == pytest.approx(6 / 8)
    assert float(iou.result()) == pytest.approx(3 / 5)       # tp 3, fp 1, fn 1
    assert float(dice.result()) == pytest.approx(6 / 8)
    iou.reset_state()
    iou.update_state(np.zeros_like(truth), np.zeros_like(prob))
    assert float(iou.result()) == 1.0  # both empty: perfect, as in evaluate


def _touching_discs(h=32, w=44, radius=9.0, gap=1):
    """Instance labels of two discs side by side, ``gap`` background columns apart."""
    yy, xx = np.mgrid[:h, :w]
    left_cx = w / 2 - radius - gap / 2 - 0.5
    right_cx = w / 2 + radius + gap / 2 - 0.5
    labels = np.zeros((h, w), np.int32)
    labels[(yy - h / 2) ** 2 + (xx - left_cx) ** 2 < radius ** 2] = 1
    labels[(yy - h / 2) ** 2 + (xx - right_cx) ** 2 < radius ** 2] = 2
    return labels


def test_weighted_bce_makes_merging_touching_cells_cost_more_than_plain_bce():
    labels = _touching_discs()
    weights = masks.border_weight_map(labels, w0=10.0, sigma=5.0)
    cell = (labels > 0).astype(np.float32)
    y_true = np.stack([cell, weights], axis=-1)[None]  # (1, H, W, 2): target, then weight map
    separate = (0.05 + 0.9 * cell)[None, ..., None]      # right everywhere, not sure anywhere
    gap = (labels == 0) & (weights > 5)                   # background between the two cells
    assert gap.sum() > 0 and not gap[:, :8].any()         # in the middle, not at the frame's edge
    merged = separate.copy()
    merged[0, gap, 0] = 0.95                              # the gap called cell: two cells become one

    plain_cost = float(np.mean(T.bce(cell[None, ..., None], merged)) - np.mean(T.bce(cell[None, ..., None], separate)))
    weighted_cost = float(np.mean(T.weighted_bce(y_true, merged)) - np.mean(T.weighted_bce(y_true, separate)))
    assert plain_cost > 0
    assert weighted_cost > 5 * plain_cost  # gap pixels weigh 1 + w0·exp(-(d1+d2)²/2σ²) ≈ 10

    # per pixel: w(x) · BCE(x); where w = 1 (inside cells, far background) it is plain BCE
    per_pixel = T.weighted_bce(y_true, merged).numpy()[0]
    plain = T.bce(cell[None, ..., None], merged).numpy()[0]
    np.testing.assert_allclose(per_pixel, weights * plain, rtol=1e-6)
    unweighted = weights == 1.0
    assert unweighted[labels > 0].all() and unweighted[labels == 0].any()
    np.testing.assert_allclose(per_pixel[unweighted], plain[unweighted], rtol=1e-6)


def _cell_targets():
    """(1, H, W, 3) instance targets of the two touching discs, and their labels."""
    labels = _touching_discs()
    return masks.distance_targets(labels)[None], labels


def test_cells_loss_is_bce_dice_on_the_foreground_plus_weighted_distance_error_inside_cells():
    y, labels = _cell_targets()
    assert float(T.cells_loss(y, y)[0]) == pytest.approx(float(T.bce_dice(y[..., :1], y[..., :1])[0]), abs=1e-6)
    off = y.copy()
    off[..., 1:] = np.clip(off[..., 1:] + 0.2, 0, 1)  # distances wrong by up to 0.2 ...
    off[0, labels == 0, 1:] = 0.0                      # ... and background distances all wrong
    inside = labels > 0
    sq = np.mean((off[0, inside, 1:] - y[0, inside, 1:]) ** 2)
    ab = np.mean(np.abs(off[0, inside, 1:] - y[0, inside, 1:]))
    fg = float(T.bce_dice(y[..., :1], y[..., :1])[0])
    # the background does not count: distances there are 1 by convention, the foreground decides
    assert float(T.cells_loss(y, off)[0]) == pytest.approx(fg + presets.CELLS_DISTANCE_WEIGHTS["cells_loss"] * sq,
                                                         rel=1e-5)
    assert float(T.cells_l1_loss(y, off)[0]) == pytest.approx(
        fg + presets.CELLS_DISTANCE_WEIGHTS["cells_l1_loss"] * ab, rel=1e-5)
    # a foreground mistake costs BCE + Dice, as bce_dice does
    worse = y.copy()
    worse[..., 0] = 0.5
    assert float(T.cells_loss(y, worse)[0]) == pytest.approx(float(T.bce_dice(y[..., :1], worse[..., :1])[0]),
                                                            rel=1e-5)
    # an image without cells: the distance part is 0, not NaN
    empty = np.zeros_like(y)
    empty[..., 1:] = 1.0
    assert np.isfinite(float(T.cells_loss(empty, np.full_like(y, 0.5))[0]))
    # the metrics read the cell channel only
    acc, iou, dice = T.make_metrics()
    dice.update_state(y, off)
    assert float(dice.result()) == 1.0


def test_cells_losses_fit_only_the_instance_head():
    T.check_loss_fits("cells_loss", "cells")
    T.check_loss_fits("bce_dice", "semantic")
    with pytest.raises(ValueError, match="loss 'bce_dice' does not fit a model with outputs 'cells'.*cells_loss"):
        T.check_loss_fits("bce_dice", "cells")
    with pytest.raises(ValueError, match="loss 'cells_loss' does not fit a model with outputs 'semantic'"):
        T.check_loss_fits("cells_loss", "semantic")
    with pytest.raises(ValueError, match="choose one of"):
        T.check_loss_fits("focal", "cells")


def test_loss_names_and_weight_map_needs():
    assert T.get_loss("weighted_bce") is T.weighted_bce
    assert T.needs_weight_map("weighted_bce") and not T.needs_weight_map("bce_dice")
    with pytest.raises(ValueError, match="choose one of"):
        T.needs_weight_map("focal")


def test_saved_models_find_the_losses_and_metrics_by_their_registered_names():
    """model.keras files name these objects "livecell_kit>NAME": moving them must not rename them."""
    names = {f: keras.saving.get_registered_name(f) for f in
             (T.bce, T.dice_loss, T.bce_dice, T.weighted_bce, T.cells_loss, T.cells_l1_loss,
              T.PixelAccuracy, T.ForegroundIoU, T.Dice)}
    assert names == {T.bce: "livecell_kit>bce", T.dice_loss: "livecell_kit>dice_loss",
                     T.bce_dice: "livecell_kit>bce_dice", T.weighted_bce: "livecell_kit>weighted_bce",
                     T.cells_loss: "livecell_kit>cells_loss", T.cells_l1_loss: "livecell_kit>cells_l1_loss",
                     T.PixelAccuracy: "livecell_kit>PixelAccuracy", T.ForegroundIoU: "livecell_kit>ForegroundIoU",
                     T.Dice: "livecell_kit>Dice"}


def test_model_compiled_with_weighted_bce_trains_saves_and_loads(tmp_path):
    labels = _touching_discs(32, 48)
    cell = (labels > 0).astype(np.float32)
    x = np.where(cell > 0, 200, 40).astype(np.float32)[None, ..., None].repeat(2, axis=0)
    y = np.stack([cell, masks.border_weight_map(labels)], axis=-1)[None].repeat(2, axis=0)
    keras.utils.set_random_seed(0)
    model = build_unet(ModelConfig(depth=1, base_filters=4, batch_norm=True))
    model.compile(keras.optimizers.Adam(1e-2), loss=T.weighted_bce, metrics=T.make_metrics())
    logs = model.fit(x, y, batch_size=2, epochs=2, verbose=0).history
    assert {"loss", "iou", "dice", "pixel_accuracy"} <= set(logs)  # metrics read the target channel only
    model.save(tmp_path / "model.keras")
    loaded = T.load_model(tmp_path / "model.keras")
    assert loaded.loss is T.weighted_bce
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert np.isfinite(loaded.evaluate(x, y, verbose=0, return_dict=True)["loss"])


def test_instance_head_compiled_with_cells_loss_trains_saves_and_loads(tmp_path):
    y, labels = _cell_targets()
    x = np.where(labels > 0, 200, 40).astype(np.float32)[None, ..., None].repeat(2, axis=0)
    y = y.repeat(2, axis=0)
    keras.utils.set_random_seed(0)
    model = build_unet(ModelConfig(depth=1, base_filters=4, batch_norm=True, outputs="cells"))
    model.compile(keras.optimizers.Adam(1e-2), loss=T.cells_loss, metrics=T.make_metrics())
    logs = model.fit(x, y, batch_size=2, epochs=3, verbose=0).history
    assert logs["loss"][-1] < logs["loss"][0]
    model.save(tmp_path / "model.keras")
    loaded = T.load_model(tmp_path / "model.keras")
    assert loaded.loss is T.cells_loss and loaded.output.shape[-1] == 3
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_a_model_trained_with_a_notebooks_own_bce_dice_loads_with_the_kits(tmp_path):
    """Notebook 04 compiles with the student's ``bce_dice``, a plain function Keras saves by its bare
    name; loading resolves that name to the kit's registered ``livecell_kit>bce_dice`` (notebook 05
    loads the run in a kernel that never saw the student's function)."""
    def bce_dice(y_true, y_pred):  # the notebook's, unregistered
        return tf.reduce_mean(T.bce(y_true, y_pred), axis=(1, 2)) + T.dice_loss(y_true, y_pred)

    x = np.zeros((2, 8, 8, 1), np.float32)
    model = build_unet(ModelConfig(depth=1, base_filters=2))
    model.compile(keras.optimizers.Adam(1e-3), loss=bce_dice)
    model.fit(x, x, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    assert T.load_model(tmp_path / "model.keras").loss is T.bce_dice
