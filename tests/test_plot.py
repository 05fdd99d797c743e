"""Figures and the viewer: they draw without error and the viewer's controls work."""
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from livecell_kit import overlay, plot


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


def test_static_viewer_draws_one_panel_per_cell_type():
    images, truths, probs = _examples()
    fig = plot.viewer(images, truths, probs, ["a", "b", "c"], ["A172", "BV2", "A172"], static=True)
    assert len([ax for ax in fig.axes if ax.images]) == 2


def test_interactive_viewer_filters_images_by_cell_type():
    pytest.importorskip("ipywidgets")
    images, truths, probs = _examples()
    ui = plot.viewer(images, truths, probs, ["a", "b", "c"], ["A172", "BV2", "A172"], static=False)
    type_box, image_box = ui.children[0].children
    assert [label for label, _ in image_box.options] == ["a", "b", "c"]
    type_box.value = "A172"
    assert [label for label, _ in image_box.options] == ["a", "c"]


def test_learning_curves_and_snapshot_grid():
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "iou": [0.2, 0.6], "val_iou": [0.1, 0.5]}
    fig = plot.learning_curves(history, metrics=("loss", "iou", "dice"))
    assert len(fig.axes) == 2  # "dice" is not in the history and is skipped

    class Snap:
        epochs = [1, 2, 3]
        probabilities = [np.zeros((2, 8, 8), np.float32)] * 3

    fig = plot.training_snapshots(Snap(), [np.zeros((8, 8), np.uint8)] * 2)
    assert len(fig.axes) == 2 * 4


def test_importing_plot_does_not_load_tensorflow():
    """Notebook 01 draws with plot before any model exists: TensorFlow must not load with it."""
    code = ("import sys, livecell_kit.plot; "
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unet_sketch_labels_its_arrows_and_has_a_legend():
    fig = plot.draw_unet([(0, 16, 1), (1, 32, 2), (2, 64, 4)], title="tiny")
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
    fig = plot.annotation_stats(_StatsSplit(), suptitle="synthetic sample: train split")
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert any("small" in t and "< 324 px" in t for t in texts)
    assert any("medium" in t and "324–961 px" in t for t in texts)
    assert any("large" in t and "> 961 px" in t for t in texts)
    assert fig._suptitle.get_text() == "synthetic sample: train split"
