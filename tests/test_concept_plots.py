"""The teaching figures of notebooks 02-03 show their point: insets, colourbars, numbers that add up."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from livecell_kit import figures


def _two_touching_cells(shape=(60, 90)):
    labels = np.zeros(shape, np.int32)
    labels[10:30, 10:30], labels[10:30, 30:50] = 1, 2  # share an edge at column 30
    labels[40:50, 70:80] = 3  # alone
    border = np.zeros(shape, np.uint8)
    border[10:30, 29:31] = 1
    return labels, border


def test_densest_window_finds_the_border_pixels():
    _, border = _two_touching_cells()
    rows, cols = figures.densest_window(border, 24)
    assert border[rows, cols].sum() == border.sum() and rows.stop - rows.start == 24


def test_touching_borders_has_a_zoomed_inset_on_the_border():
    labels, border = _two_touching_cells()
    image = np.full(labels.shape, 120, np.uint8)
    fig = figures.touching_borders(image, labels, border, window=24, suptitle="synthetic sample")
    inset = fig.axes[1].child_axes
    assert len(inset) == 1 and inset[0].images
    assert "40 border px" in inset[0].get_title()  # every border pixel lies in the zoomed window
    assert fig._suptitle.get_text() == "synthetic sample"


def test_border_weights_has_colourbars_with_units():
    labels, border = _two_touching_cells()
    weights = np.ones(labels.shape, np.float32)
    weights[10:30, 29:31] = 11.0
    fig = figures.border_weights(np.zeros(labels.shape, np.uint8), labels, border, weights, window=20)
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 2 and any("BCE" in bar.get_ylabel() for bar in bars)


def test_convolution_output_is_the_sum_of_window_times_kernel():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (40, 40)).astype(np.uint8)
    fig = figures.convolution(crop)
    patch_ax, kernel_ax, out_ax = fig.axes[:3]
    patch = np.array([[float(t.get_text()) for t in patch_ax.texts[r * 8:(r + 1) * 8]] for r in range(8)])
    kernel = figures.EXAMPLE_KERNELS["vertical edges"]
    shown = float(out_ax.texts[2 * 6 + 3].get_text())  # the highlighted output pixel (row 2, column 3)
    assert shown == pytest.approx(float((patch[2:5, 3:6] * kernel).sum()), abs=0.051)
    assert len(fig.axes) == 3 + 1 + len(figures.EXAMPLE_KERNELS)


def test_pooling_keeps_each_blocks_maximum_and_upsampling_copies_it():
    values = np.array([[1, 2, 0, 0], [3, 4, 0, 9], [5, 0, 1, 1], [0, 0, 1, 2]])
    fig = figures.pooling_and_upsampling(values)
    assert [t.get_text() for t in fig.axes[1].texts] == ["4", "9", "5", "2"]
    assert len(fig.axes[2].texts) == 16
    with pytest.raises(ValueError, match="4×4"):
        figures.pooling_and_upsampling(np.zeros((3, 3), int))


def test_batch_normalisation_and_receptive_fields_say_what_they_show():
    values = np.random.default_rng(1).normal(5.0, 2.0, 1000)
    fig = figures.batch_normalisation(values)
    assert "mean 0.00, std 1.00" in fig.axes[1].get_title()
    image = np.zeros((120, 160), np.uint8)
    fig = figures.receptive_fields(image, {"one 3×3 conv": 3, "U-Net": 44}, centre=(10, 150))
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["one 3×3 conv: 3 px", "U-Net: 44 px", "the output pixel"]
