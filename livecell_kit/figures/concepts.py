"""Figures that teach one idea each, for notebooks 02 (masks) and 03 (the U-Net).

Touching borders with a zoomed inset, the border weight map with a colourbar, a
convolution worked out in numbers, ReLU and sigmoid, max-pooling and up-sampling,
batch normalisation and receptive fields. numpy, scipy and matplotlib only: no
TensorFlow, so notebook 02 stays light. Images are (H, W) uint8 arrays, masks (H, W)
0/1 arrays, ``labels`` (H, W) int instance labels (0 = background). Every function
returns its matplotlib figure; ``suptitle`` (e.g. "synthetic sample") goes over it.
"""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from scipy import ndimage

from livecell_kit.masks.overlay import COLOURS, grey_rgb, overlay

#: Kernels of the convolution figure: what each one responds to.
EXAMPLE_KERNELS = {
    "blur (mean of 3×3)": np.full((3, 3), 1 / 9),
    "vertical edges": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float),
    "horizontal edges": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], float),
}


def instance_colours(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float RGB: one random bright colour per instance, background black."""
    colours = np.random.default_rng(seed).uniform(0.2, 1.0, (int(labels.max()) + 1, 3))
    colours[0] = 0
    return colours[labels]


def densest_window(mask: np.ndarray, size: int) -> tuple[slice, slice]:
    """The ``size``×``size`` window (rows, columns) holding the most pixels of ``mask``."""
    size = min(size, *mask.shape)
    density = ndimage.uniform_filter(np.asarray(mask, float), size=size, mode="constant")
    row, col = np.unravel_index(np.argmax(density), mask.shape)
    top = int(np.clip(row - size // 2, 0, mask.shape[0] - size))
    left = int(np.clip(col - size // 2, 0, mask.shape[1] - size))
    return slice(top, top + size), slice(left, left + size)


def _finish(fig, suptitle: str | None):
    """Put ``suptitle`` over ``fig``, leaving room so it does not cover the panels' titles."""
    if suptitle:
        fig.suptitle(suptitle)
        height = fig.get_size_inches()[1]
        fig.subplots_adjust(top=min(fig.subplotpars.top, 1 - 0.75 / height))  # 0.75 in: two title lines
    return fig


def touching_borders(image: np.ndarray, labels: np.ndarray, border: np.ndarray, window: int = 80,
                     suptitle: str | None = None):
    """Instances, and the touching-border pixels (magenta) with a zoomed inset where they are densest.

    Border pixels are a fraction of a percent of a frame: only the inset (the ``window``×``window``
    px square with the most of them, magnified) shows them between neighbouring cells.
    """
    rows, cols = densest_window(border, window)
    fig, (ax_instances, ax_border) = plt.subplots(1, 2, figsize=(13, 4.2),
                                                  gridspec_kw={"right": 0.64, "wspace": 0.08})
    ax_instances.imshow(instance_colours(labels))
    ax_instances.set_title(f"instances ({int(labels.max())} cells)")
    semantic = labels > 0
    ax_border.imshow(overlay(image, {"truth": semantic, "border": border}))
    ax_border.set_title(f"touching borders: {int(border.sum())} px in all")
    inset = ax_border.inset_axes([1.1, 0.0, 1.0 * image.shape[0] / image.shape[1] * 1.35, 1.0])
    extent = (cols.start - 0.5, cols.stop - 0.5, rows.stop - 0.5, rows.start - 0.5)
    inset.imshow(overlay(image[rows, cols], {"truth": semantic[rows, cols], "border": border[rows, cols]},
                         alpha=0.6), extent=extent)
    inset.set_title(f"zoom: {int(border[rows, cols].sum())} border px (magenta)")
    inset.set_xticks([]), inset.set_yticks([])
    ax_border.indicate_inset_zoom(inset, edgecolor="yellow")
    for ax in (ax_instances, ax_border):
        ax.axis("off")
    return _finish(fig, suptitle)


def border_weights(image: np.ndarray, labels: np.ndarray, border: np.ndarray, weights: np.ndarray,
                   window: int = 80, suptitle: str | None = None):
    """The U-Net weight map w(x): the whole frame and a close-up of its heaviest gaps, with colourbars.

    ``weights`` (H, W) float: how many times a pixel's cross-entropy counts (1 = plain BCE).
    """
    rows, cols = densest_window(np.asarray(weights) - 1.0, window)  # where the extra weight piles up
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [1.35, 1, 1]})
    scale = dict(cmap="inferno", vmin=1.0, vmax=float(weights.max()))
    shown = axes[0].imshow(weights, **scale)
    axes[0].add_patch(Rectangle((cols.start, rows.start), cols.stop - cols.start, rows.stop - rows.start,
                                fill=False, edgecolor="cyan", lw=1.2))
    axes[0].set_title("weight map w(x), whole frame (cyan: close-up)")
    axes[1].imshow(overlay(image[rows, cols], {"truth": labels[rows, cols] > 0, "border": border[rows, cols]}))
    axes[1].set_title("close-up: cells and touching borders")
    axes[2].imshow(weights[rows, cols], **scale)
    axes[2].set_title("close-up: weight map")
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    bar = fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.03)
    bar.set_label("w(x): × the pixel's plain BCE")
    fig.colorbar(shown, ax=axes[0], fraction=0.035, pad=0.02).set_label("w(x)")
    return _finish(fig, suptitle)


def _number_grid(ax, values: np.ndarray, title: str, cmap="gray", highlight=None, fmt="{:.1f}", **scale):
    """Show a small array as coloured cells with each value written in it."""
    shown = ax.imshow(values, cmap=cmap, **scale)
    for (r, c), value in np.ndenumerate(values):
        red, green, blue, _ = shown.cmap(shown.norm(value))
        dark = 0.3 * red + 0.6 * green + 0.1 * blue < 0.5  # white digits on dark cells
        ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=7,
                color="white" if dark else "black")
    if highlight is not None:
        top, left, size = highlight
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor="red", lw=2))
    ax.set_title(title)
    ax.set_xticks([]), ax.set_yticks([])


def convolution(crop: np.ndarray, kernels: Mapping[str, np.ndarray] | None = None, suptitle: str | None = None):
    """How a 3×3 convolution works, in numbers, then what three kernels pick out of ``crop``.

    Top row: an 8×8 patch of ``crop`` (grey levels stretched to 0–1, taken at a cell's outline),
    the vertical-edge kernel and the 6×6 result; the red 3×3 window times the kernel, summed,
    gives the red output value. Bottom row: ``crop`` and its response ("feature map") to each kernel.
    """
    kernels = dict(kernels or EXAMPLE_KERNELS)
    image = grey_rgb(crop)[..., 0].astype(float)  # grey levels stretched to 0-1, so the digits differ
    smooth = ndimage.gaussian_filter(image, 2.0)  # find a cell's outline, not the speckle inside it
    edges = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    edges[:4], edges[-4:], edges[:, :4], edges[:, -4:] = 0, 0, 0, 0
    row, col = np.unravel_index(np.argmax(ndimage.uniform_filter(edges, 8)), edges.shape)
    patch = np.round(image[row - 4:row + 4, col - 4:col + 4], 1)
    kernel_name, kernel = list(kernels.items())[1 if len(kernels) > 1 else 0]
    result = ndimage.correlate(patch, kernel, mode="constant")[1:-1, 1:-1]  # "valid": 6×6

    fig = plt.figure(figsize=(12, 6.4))
    grid = fig.add_gridspec(2, 1 + len(kernels), height_ratios=[1, 1])
    top = [fig.add_subplot(grid[0, i]) for i in range(3)]
    _number_grid(top[0], patch, "8×8 patch (grey levels as 0–1)", highlight=(2, 3, 3), vmin=0, vmax=1)
    _number_grid(top[1], kernel, f"3×3 kernel: {kernel_name}", cmap="coolwarm", fmt="{:g}", vmin=-2, vmax=2)
    bound = float(np.abs(result).max()) or 1.0
    _number_grid(top[2], result, "output: Σ red window × kernel", cmap="coolwarm", highlight=(2, 3, 1),
                 vmin=-bound, vmax=bound)
    fig.add_subplot(grid[1, 0]).imshow(grey_rgb(crop))
    fig.axes[-1].set_title("image crop")
    for i, (name, k) in enumerate(kernels.items(), start=1):
        ax = fig.add_subplot(grid[1, i])
        response = ndimage.correlate(image, k, mode="nearest")
        bound = float(np.percentile(np.abs(response), 99)) or 1.0  # a few speckles would wash out the rest
        ax.imshow(response, cmap="coolwarm" if k.min() < 0 else "gray",
                  vmin=-bound if k.min() < 0 else None, vmax=bound if k.min() < 0 else None)
        ax.set_title(f"feature map: {name}")
    for ax in fig.axes[3:]:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return _finish(fig, suptitle)


def activations():
    """ReLU (after every hidden convolution) and sigmoid (the last layer): output against input."""
    x = np.linspace(-6, 6, 241)
    fig, (ax_relu, ax_sigmoid) = plt.subplots(1, 2, figsize=(8, 2.8))
    ax_relu.plot(x, np.maximum(x, 0))
    ax_relu.set_title("ReLU: max(0, x)")
    ax_sigmoid.plot(x, 1 / (1 + np.exp(-x)), color="tab:orange")
    ax_sigmoid.axhline(0.5, color="grey", ls=":", lw=0.8)
    ax_sigmoid.set_title("sigmoid: 1 / (1 + e^-x), a probability")
    for ax in (ax_relu, ax_sigmoid):
        ax.axhline(0, color="k", lw=0.5), ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel("input x")
    ax_relu.set_ylabel("output")
    fig.tight_layout()
    return fig


def pooling_and_upsampling(values: np.ndarray | None = None):
    """2×2 max-pooling of a 4×4 array (keep each block's largest value) and 2× up-sampling back.

    The up-sampling shown copies each value over a 2×2 block; the U-Net's transposed
    convolution does the same move but learns the 2×2 pattern it spreads.
    """
    values = np.random.default_rng(3).integers(0, 10, (4, 4)) if values is None else np.asarray(values)
    if values.shape != (4, 4):
        raise ValueError(f"pooling_and_upsampling draws a 4×4 array, got shape {values.shape}")
    pooled = values.reshape(2, 2, 2, 2).max(axis=(1, 3))
    upsampled = np.kron(pooled, np.ones((2, 2), int))
    fig, axes = plt.subplots(1, 3, figsize=(8.5, 3))
    scale = dict(cmap="Blues", fmt="{:d}", vmin=0, vmax=int(values.max()) or 1)
    _number_grid(axes[0], values, "feature map 4×4", **scale)
    axes[0].axhline(1.5, color="k", lw=2), axes[0].axvline(1.5, color="k", lw=2)  # the 2×2 blocks
    _number_grid(axes[1], pooled, "2×2 max-pool → 2×2", **scale)
    _number_grid(axes[2], upsampled, "2× up-sampling → 4×4", **scale)
    fig.tight_layout()
    return fig


def batch_normalisation(values: np.ndarray, suptitle: str | None = None):
    """One channel's values over a batch, before and after batch normalisation ((x − mean) / std).

    The histograms span the 0.5–99.5 percentiles, so a few extreme pixels do not squash them.
    """
    values = np.asarray(values, float).ravel()
    normalised = (values - values.mean()) / max(values.std(), 1e-12)  # Keras adds a small ε; left out here
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.8))
    for ax, v, title in ((axes[0], values, "before"), (axes[1], normalised, "after")):
        ax.hist(v, bins=40, range=tuple(np.percentile(v, [0.5, 99.5])), color="tab:blue")
        ax.axvline(v.mean(), color="k", ls="--", lw=0.8)
        ax.set_title(f"{title}: mean {v.mean():.2f}, std {v.std():.2f}")
        ax.set_xlabel("feature value")
    axes[0].set_ylabel("pixels in the batch")
    fig.tight_layout()
    return _finish(fig, suptitle)


def receptive_fields(image: np.ndarray, sizes: Mapping[str, int], centre: tuple[int, int] | None = None,
                     suptitle: str | None = None):
    """Squares of the given receptive-field sizes (px), centred on one pixel of ``image``.

    ``sizes`` maps a label (e.g. "two 3×3 convs") to a side in pixels; ``centre`` is the
    (row, column) of the output pixel, default the frame's centre. The figure shows how much
    of the frame, and how many cells, that one output pixel can see.
    """
    height, width = image.shape[:2]
    side = min(height, width, 2 * max(sizes.values()) + 40)
    row, col = centre if centre is not None else (height // 2, width // 2)
    top = int(np.clip(row - side // 2, 0, height - side))
    left = int(np.clip(col - side // 2, 0, width - side))
    crop = image[top:top + side, left:left + side]
    cy, cx = row - top, col - left
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.imshow(grey_rgb(crop))
    colours = plt.cm.plasma(np.linspace(0.1, 0.8, len(sizes)))
    for colour, (label, size) in zip(colours, sizes.items()):
        ax.add_patch(Rectangle((cx - size / 2, cy - size / 2), size, size, fill=False,
                               edgecolor=colour, lw=2, label=f"{label}: {size} px"))
    ax.plot(cx, cy, "+", color=COLOURS["border"], ms=10, label="the output pixel")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.85)
    ax.set_title("what one output pixel can see")
    ax.axis("off")
    fig.tight_layout()
    return _finish(fig, suptitle)
