"""Figures of notebook 06: cells as labels, the instance targets, the watershed's steps, counts.

Every function returns the matplotlib figure.  Images are (H, W) uint8 grey frames, label
images (H, W) int (0 = background, k = cell k); whole 520×704 frames hold hundreds of small
cells, so the panels show the ``window``×``window`` px square where cells are densest.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from skimage import segmentation

from livecell_kit.figures.concepts import _finish, densest_window, instance_colours
from livecell_kit.masks.overlay import grey_rgb

#: Side of the zoomed square the panels show, in pixels.
WINDOW = 160


def _outlined(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(h, w, 3) RGB: the grey image with every cell's outline in yellow."""
    return segmentation.mark_boundaries(grey_rgb(image), labels, color=(1.0, 0.85, 0.0), mode="inner")


def label_panels(image: np.ndarray, panels: Mapping[str, np.ndarray], window: int = WINDOW,
                 suptitle: str | None = None):
    """The image and each label image of ``panels`` ({title: labels}), one colour per cell,
    zoomed to the densest ``window`` px square of the first label image; titles give the counts."""
    first = next(iter(panels.values()))
    rows, cols = densest_window(first > 0, window)
    fig, axes = plt.subplots(1, 1 + len(panels), figsize=(4.2 * (1 + len(panels)), 4.4))
    axes[0].imshow(grey_rgb(image[rows, cols]))
    axes[0].set_title("image (zoomed)")
    for ax, (title, labels) in zip(axes[1:], panels.items()):
        ax.imshow(_outlined(image[rows, cols], labels[rows, cols]))
        ax.imshow(instance_colours(labels[rows, cols]), alpha=0.45)
        ax.set_title(f"{title}\n{int(labels.max())} cells in the whole frame")
    for ax in axes:
        ax.axis("off")
    return _finish(fig, suptitle)


def targets(image: np.ndarray, labels: np.ndarray, maps: np.ndarray, outline: np.ndarray | None = None,
            window: int = WINDOW, title: str = "target"):
    """The three instance maps (H, W, 3: foreground, centre distance, boundary distance) beside the
    cells, each with a colourbar; ``outline`` (H, W) 0/1 adds the simpler border target."""
    rows, cols = densest_window(labels > 0, window)
    names = ["foreground", "centre distance", "boundary distance (inverted)"]
    shown = [(f"{title}: {name}", maps[rows, cols, c]) for c, name in enumerate(names)]
    if outline is not None:
        shown.append((f"{title}: outlines (border target)", outline[rows, cols]))
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(3.6 * (1 + len(shown)), 3.9))
    axes[0].imshow(_outlined(image[rows, cols], labels[rows, cols]))
    axes[0].set_title("annotated cells (zoomed)")
    for ax, (name, values) in zip(axes[1:], shown):
        picture = ax.imshow(values, cmap="magma", vmin=0.0, vmax=1.0)
        ax.set_title(name, fontsize=9)
        fig.colorbar(picture, ax=ax, fraction=0.046, pad=0.03)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def watershed_steps(image: np.ndarray, boundary: np.ndarray, seeds: np.ndarray, found: np.ndarray,
                    window: int = WINDOW):
    """Seeds on the smoothed boundary map (the landscape), then the flooded cells on the image."""
    rows, cols = densest_window(found > 0, window)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    axes[0].imshow(grey_rgb(image[rows, cols]))
    axes[0].set_title("image (zoomed)")
    landscape = axes[1].imshow(boundary[rows, cols], cmap="magma", vmin=0.0, vmax=1.0)
    axes[1].contour(seeds[rows, cols] > 0, levels=[0.5], colors="cyan", linewidths=1.2)
    axes[1].set_title(f"boundary map and seeds (cyan)\n{int(seeds.max())} seeds in the frame")
    fig.colorbar(landscape, ax=axes[1], fraction=0.046, pad=0.03)
    axes[2].imshow(_outlined(image[rows, cols], found[rows, cols]))
    axes[2].imshow(instance_colours(found[rows, cols]), alpha=0.45)
    axes[2].set_title(f"flooded from the seeds\n{int(found.max())} cells in the frame")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def counts_and_confluence(per_frame: Sequence[Mapping], title: str = "", band: float = 0.15):
    """Per frame: cells found against cells annotated (grey: within ±``band``), and confluence
    found against annotated (% of the frame), coloured by cell type."""
    types = sorted({f["cell_type"] for f in per_frame})
    colours = dict(zip(types, plt.cm.tab10(np.arange(len(types)) % 10)))
    fig, (ax_count, ax_conf) = plt.subplots(1, 2, figsize=(11, 4.6))
    top = max([1] + [max(f["cells_true"], f["cells_found"]) for f in per_frame]) * 1.08
    line = np.array([0, top])
    ax_count.fill_between(line, line * (1 - band), line * (1 + band), color="0.88", label=f"±{band:.0%}")
    ax_conf.plot([0, 100], [0, 100], color="0.6", lw=1)
    ax_count.plot(line, line, color="0.6", lw=1)
    for f in per_frame:
        c = colours[f["cell_type"]]
        ax_count.scatter(f["cells_true"], f["cells_found"], color=c, s=22)
        ax_conf.scatter(f["confluence_true_pct"], f["confluence_found_pct"], color=c, s=22)
    ax_count.set(xlabel="cells annotated", ylabel="cells found", xlim=(0, top), ylim=(0, top),
                 title="cell count per frame")
    ax_conf.set(xlabel="annotated confluence (% of frame)", ylabel="found confluence (% of frame)",
                xlim=(0, 100), ylim=(0, 100), title="confluence per frame")
    handles = [plt.Line2D([], [], marker="o", ls="", color=colours[t], label=t) for t in types]
    ax_conf.legend(handles=handles, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return _finish(fig, title)
