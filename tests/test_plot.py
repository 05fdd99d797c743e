"""Figures and the viewer: they draw without error and the viewer's controls work."""
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from livecell_kit import figures
from livecell_kit.masks import overlay


def _examples(n=3, shape=(16, 24)):
    rng = np.random.default_rng(0)
    images = [rng.integers(100, 150, shape, dtype=np.uint8) for _ in range(n)]
    truths = [np.zeros(shape, np.uint8) for _ in range(n)]
    for t in truths:
        t[4:10, 5:12] = 1
    probs = [np.clip(t + rng.normal(0, 0.2, shape), 0, 1).astype(np.float32) for t in truths]
    return images, truths, probs


def test_error_layers_colour_false_positives_and_negatives():
    truth = np.array([[1, 1, 0, 0]], np.uint8)
    pred = np.array([[1, 0, 1, 0]], bool)
    layers = overlay.error_layers(truth, pred)
    assert layers["false_positive"].tolist() == [[False, False, True, False]]
    assert layers["false_negative"].tolist() == [[False, True, False, False]]
    rgb = overlay.overlay(np.full((1, 4), 128, np.uint8), layers, alpha=1.0)
    assert np.allclose(rgb[0, 2], overlay.COLOURS["false_positive"]) and np.allclose(rgb[0, 1], overlay.COLOURS["false_negative"])


def test_prediction_overlay_outlines_each_instance():
    labels = np.zeros((9, 12), np.int32)
    labels[1:8, 1:6], labels[1:8, 6:11] = 1, 2  # two touching cells
    rgb = overlay.overlay_image(np.full(labels.shape, 100, np.uint8), labels > 0, labels)
    assert rgb.dtype == np.uint8 and rgb.shape == (9, 12, 3)
    orange = (np.asarray(overlay.COLOURS["prediction"]) * 255 + 0.5).astype(np.uint8)
    assert (rgb[4, 5] == orange).all() and (rgb[4, 6] == orange).all()  # the shared edge is drawn
    assert not (rgb[4, 3] == orange).all()  # inside a cell: tinted, not outlined
    assert (rgb[0, 0] == rgb[0, 0, 0]).all()  # background stays grey


def test_learning_curves_have_plain_titles_and_labelled_axes():
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "pixel_accuracy": [0.8, 0.9],
               "val_pixel_accuracy": [0.7, 0.9], "iou": [0.2, 0.6], "val_iou": [0.1, 0.5], "border_iou": [0.1, 0.2]}
    fig = figures.learning_curves(history, metrics=("loss", "pixel_accuracy", "iou", "dice", "border_iou"))
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Pixel accuracy", "IoU", "Border iou"]  # no "dice" logged
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch"] * 4
    assert all(tick == int(tick) for tick in fig.axes[0].get_xticks())  # whole epochs only
    assert all(ax.get_ylabel() for ax in fig.axes) and "pixel_accuracy" not in fig.axes[1].get_ylabel()
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "val"]


class _Snap:
    """What training_snapshots reads from a PredictionSnapshots that ran three epochs on two crops."""
    epochs = [1, 2, 3]
    probabilities = [np.full((2, 8, 8), p, np.float32) for p in (0.2, 0.5, 0.9)]
    truths = None


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def test_training_snapshots_show_image_ground_truth_probabilities_and_a_colourbar():
    images, truths = [np.full((8, 8), 120, np.uint8)] * 2, [np.eye(8, dtype=np.uint8)] * 2
    fig = figures.training_snapshots(_Snap(), images, truths=truths)
    row = ["image", "ground truth", "after epoch 1", "after epoch 2", "after epoch 3"]
    assert _titles(fig)[:10] == row * 2
    colourbars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(fig.axes) == 2 * 5 + 1 and len(colourbars) == 1
    assert colourbars[0].get_ylabel() == "cell probability"
    assert fig.axes[1].images[0].get_array().shape == (8, 8, 3)  # the truth drawn over the image
    truth_pixel, background = fig.axes[1].images[0].get_array()[0, 0], fig.axes[1].images[0].get_array()[0, 1]
    assert not np.allclose(truth_pixel, background)


def test_training_snapshots_take_the_truths_the_callback_kept_and_work_without():
    from livecell_kit import train
    images, truths = [np.zeros((8, 8), np.uint8)] * 2, [np.ones((8, 8), np.uint8)] * 2
    callback = train.PredictionSnapshots(images, truths=truths)
    callback.epochs, callback.probabilities = _Snap.epochs, _Snap.probabilities
    assert "ground truth" in _titles(figures.training_snapshots(callback, images))
    fig = figures.training_snapshots(_Snap(), images)  # no truths anywhere: image and probabilities only
    assert "ground truth" not in _titles(fig) and len(fig.axes) == 2 * 4 + 1


def test_metric_bars_label_every_bar_and_mark_zeros():
    fig = figures.metric_bars({"model": {"iou": 0.8, "dice": 0.9}, "all background": {"iou": 0.0, "dice": 0.0}},
                           metrics=("iou", "dice"))
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["0.80", "0.00", "0.90", "0.00"]
    stubs = [c for c in ax.collections if len(c.get_segments())]
    assert sum(len(c.get_segments()) for c in stubs) == 2  # one visible stub per zero bar


def test_threshold_sweep_zooms_on_the_top_and_marks_the_choice():
    t = np.round(np.arange(0.05, 0.951, 0.01), 2)
    iou = 0.9 - 0.3 * (t - 0.6) ** 2                 # a flat top: all between 0.78 and 0.9
    sweep = {"threshold": t.tolist(), "iou": iou.tolist(), "dice": (iou + 0.05).tolist(),
             "precision": t.tolist(), "recall": (1 - t).tolist()}
    fig = figures.threshold_sweep(sweep, chosen=0.6)
    left, right = fig.axes
    assert right.get_ylim()[0] > 0.7 and right.get_ylim()[1] <= 1.0  # zoomed, not 0..1
    assert any("chosen 0.60: IoU 0.900" in t.get_text() for t in right.get_legend().get_texts())
    assert {line.get_label() for line in left.lines} >= {"precision", "recall"}


def test_augmented_crops_share_one_grey_scale():
    rng = np.random.default_rng(1)
    busy = rng.integers(0, 255, (16, 16)).astype(np.float32)
    empty = 120 + rng.normal(0, 1, (16, 16)).astype(np.float32)  # flat background, a little noise
    fig = figures.augmented_crops([busy, empty], [np.ones((16, 16)), np.zeros((16, 16))])
    shown_empty = fig.axes[1].images[0].get_array()
    assert np.ptp(shown_empty) < 0.2  # stretched on its own it would span black to white
    assert [ax.get_title() for ax in fig.axes[:2]] == ["100% cell", "0% cell"]


def test_learning_rate_schedule_marks_epochs_and_iou_hits_explains_ap():
    fig = figures.learning_rate_schedule(np.linspace(1e-3, 1e-5, 12), steps_per_epoch=4)
    assert len(fig.axes[0].lines) == 1 + 2  # the curve and two epoch boundaries
    fig = figures.iou_hits(shifts=(2, 12), radius=10)
    titles = [ax.get_title() for ax in fig.axes]
    assert "AP50 hit, AP75 hit" in titles[0] and "AP75 miss" in titles[1]


def test_importing_plot_does_not_load_tensorflow():
    """Notebook 01 draws with plot before any model exists: TensorFlow must not load with it."""
    code = ("import sys, livecell_kit.figures; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unet_sketch_labels_its_arrows_and_has_a_legend():
    fig = figures.draw_unet([(0, 16, 1), (1, 32, 2), (2, 64, 4)], title="tiny")
    ax = fig.axes[0]
    texts = [t.get_text().strip() for t in ax.texts]
    for label in ("max-pool ↓", "up-conv ↑", "skip → concatenate"):
        assert sum(label in t for t in texts) == 2, (label, texts)  # one per level above the bottleneck
    arrows = [child for child in ax.get_children() if type(child).__name__ == "Annotation"]
    assert len(arrows) == 3 * 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("max-pool" in t for t in legend) and any("skip" in t for t in legend)


class _StatsSplit:
    images = [{"id": 1, "file_name": "A172_Phase_1.tif"}, {"id": 2, "file_name": "BV2_Phase_1.tif"}]

    def cell_counts(self):
        return np.array([2, 3])

    def cell_type(self, image):
        return image["file_name"].split("_Phase")[0]

    def cell_areas(self, image_id):
        return np.array([100.0, 2000.0]) if image_id == 1 else np.array([50.0, 400.0, 600.0])


def test_annotation_stats_names_the_size_classes_and_their_thresholds():
    fig = figures.annotation_stats(_StatsSplit(), suptitle="synthetic sample: train split")
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert any("small" in t and "< 324 px" in t for t in texts)
    assert any("medium" in t and "324–961 px" in t for t in texts)
    assert any("large" in t and "> 961 px" in t for t in texts)
    assert fig._suptitle.get_text() == "synthetic sample: train split"
