"""Figures for the notebooks: galleries, overlays, statistics, learning curves, metrics, a viewer.

Every function draws with matplotlib and returns the figure, so notebooks render
on GitHub and under nbval; :func:`viewer` adds ipywidgets controls when a live
kernel has them and falls back to a static figure otherwise.
Images are (H, W) uint8 arrays; masks are (H, W) 0/1 arrays.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from livecell_kit import data
from livecell_kit.evaluate.cocoeval import AREA_LARGE_MIN, AREA_SMALL_MAX
from livecell_kit.figures.browse import outcome_legend
from livecell_kit.masks.overlay import COLOURS, error_layers, grey_rgb, overlay

def show_images(images: Sequence[np.ndarray], titles: Sequence[str] | None = None, ncols: int = 4,
                size: float = 3.2, suptitle: str | None = None):
    """A grid of images (grey arrays or RGB overlays) with optional titles."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols * 704 / 520, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.flat[i]
        ax.imshow(image if np.ndim(image) == 3 else grey_rgb(image))
        if titles:
            ax.set_title(titles[i])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def gallery(split, per_type: int = 1, ncols: int = 4, suptitle: str | None = None):
    """The first ``per_type`` images of every cell type in ``split`` (a ``data.Split``).

    ``suptitle``: a title over the grid, e.g. saying the images are the synthetic sample.
    """
    chosen = []
    counts = dict(zip(split.image_ids, split.cell_counts()))
    for cell_type in data.CELL_TYPES:
        of_type = [img for img in split.images if split.cell_type(img) == cell_type][:per_type]
        chosen += of_type
    images = [data.read_image(split.image_path(img)) for img in chosen]
    titles = [f"{split.cell_type(img)}: {counts[img['id']]} cells" for img in chosen]
    return show_images(images, titles, ncols=ncols, suptitle=suptitle)


def draw_polygons(ax, annotations: Sequence[Mapping], colour=COLOURS["truth"], linewidth: float = 1.0):
    """Outline every polygon of ``annotations`` (COCO, pixel xy) on a matplotlib axis."""
    for ann in annotations:
        segmentation = ann["segmentation"]
        if isinstance(segmentation, Mapping):  # RLE: no polygon to draw
            continue
        for poly in segmentation:
            xy = np.asarray(poly, dtype=float).reshape(-1, 2)
            ax.plot(np.r_[xy[:, 0], xy[0, 0]], np.r_[xy[:, 1], xy[0, 1]], color=colour, lw=linewidth)


def annotation_stats(split, suptitle: str | None = None):
    """Cells per image and cell area (px) per cell type: two panels of box plots / histograms.

    Reads counts and areas from the split's index: no cell polygon is built. The area panel
    marks and names LIVECell's size classes (small < 324 px ≤ medium ≤ 961 px < large).
    """
    per_image: dict[str, list[int]] = {t: [] for t in data.CELL_TYPES}
    areas: dict[str, list[float]] = {t: [] for t in data.CELL_TYPES}
    for img, n_cells in zip(split.images, split.cell_counts()):
        cell_type = split.cell_type(img)
        per_image.setdefault(cell_type, []).append(int(n_cells))
        areas.setdefault(cell_type, []).extend(split.cell_areas(img["id"]).tolist())
    types = [t for t in per_image if per_image[t]]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    ax1.boxplot([per_image[t] for t in types], tick_labels=types)
    ax1.set_ylabel("cells per image")
    ax1.tick_params(axis="x", rotation=45)
    lo, hi = 10.0, 10**4.5
    bins = np.logspace(np.log10(lo), np.log10(hi), 40)
    for t in types:
        ax2.hist(areas[t], bins=bins, histtype="step", label=t)
    ax2.set_xscale("log")
    ax2.set_xlim(lo, hi)
    ax2.set_xlabel("cell area (px, log scale)")
    ax2.set_ylabel("cells")
    for edge in (AREA_SMALL_MAX, AREA_LARGE_MIN):  # LIVECell's small | medium | large cells
        ax2.axvline(edge, color="k", ls=":", lw=0.8)
    classes = ((lo, AREA_SMALL_MAX, f"small\n< {AREA_SMALL_MAX} px"),
               (AREA_SMALL_MAX, AREA_LARGE_MIN, f"medium\n{AREA_SMALL_MAX}–{AREA_LARGE_MIN} px"),
               (AREA_LARGE_MIN, hi, f"large\n> {AREA_LARGE_MIN} px"))
    for left, right, label in classes:  # name each class above the panel, centred on a log axis
        ax2.text(np.sqrt(left * right), 1.01, label, transform=ax2.get_xaxis_transform(),
                 ha="center", va="bottom", fontsize=8)
    ax2.legend(fontsize=7, ncol=2, loc="upper left")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


#: Plain names of the metrics Keras logs during training: (panel title, y-axis label).
METRIC_LABELS = {
    "loss": ("Loss", "loss (lower is better)"),
    "pixel_accuracy": ("Pixel accuracy", "fraction of pixels right"),
    "iou": ("IoU", "IoU (0–1, higher is better)"),
    "dice": ("Dice", "Dice (0–1, higher is better)"),
}


def metric_label(metric: str) -> tuple[str, str]:
    """(title, y-axis label) for a logged metric key: ``"pixel_accuracy"`` -> ("Pixel accuracy", ...)."""
    plain = metric.replace("_", " ")
    return METRIC_LABELS.get(metric, (plain[:1].upper() + plain[1:], plain))


def learning_curves(history: Mapping[str, Sequence[float]], metrics: Sequence[str] = ("loss", "pixel_accuracy", "iou"),
                    title: str = ""):
    """Train vs validation curves for each metric in ``history`` (keys ``m`` and ``val_m``).

    Train values are averages over each epoch's batches (augmented crops, weights still
    changing); validation values are measured after the epoch, on whole frames. Each panel
    is titled with the metric's plain name and labels its axes (x: epoch, 1-based).
    """
    present = [m for m in metrics if m in history]
    fig, axes = plt.subplots(1, len(present), figsize=(4.2 * len(present), 3.2), squeeze=False)
    for ax, metric in zip(axes.flat, present):
        epochs = np.arange(1, len(history[metric]) + 1)
        ax.plot(epochs, history[metric], "o-", label="train")
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "s-", label="val")
        panel_title, ylabel = metric_label(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs, no "epoch 1.5"
        ax.set_ylabel(ylabel)
        ax.set_title(panel_title)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_snapshots(snapshots, images, max_columns: int = 5, truths=None):
    """Rows: the snapshot images; columns: the image, its ground truth, then the cell
    probability after selected epochs, with one colourbar (0–1) for the probabilities.

    ``snapshots`` is a :class:`livecell_kit.train.PredictionSnapshots` that ran during training;
    ``images`` the same (H, W) crops it predicted; ``truths`` their (H, W) 0/1 masks, by default
    the ones the snapshots were given (no ground-truth column when neither has them).
    """
    if not snapshots.epochs:
        print("No snapshots: the run was loaded, not trained in this session "
              "(delete its run folder to watch it train).")
        return None
    truths = getattr(snapshots, "truths", None) if truths is None else truths
    picks = np.unique(np.linspace(0, len(snapshots.epochs) - 1, min(max_columns, len(snapshots.epochs))).astype(int))
    n, first = len(images), 1 if truths is None else 2  # first: the column of the first probability map
    fig, axes = plt.subplots(n, len(picks) + first, figsize=(2.4 * (len(picks) + first) + 0.8, 2.4 * n),
                             squeeze=False, layout="constrained")
    for row in range(n):
        axes[row, 0].imshow(grey_rgb(images[row]))
        axes[row, 0].set_title("image")
        if truths is not None:
            axes[row, 1].imshow(overlay(images[row], {"truth": truths[row]}))
            axes[row, 1].set_title("ground truth")
        for col, k in enumerate(picks, start=first):
            shown = axes[row, col].imshow(snapshots.probabilities[k][row], vmin=0, vmax=1, cmap="magma")
            axes[row, col].set_title(f"after epoch {snapshots.epochs[k]}")
    for ax in axes.flat:
        ax.axis("off")
    fig.colorbar(shown, ax=axes[:, first:].ravel().tolist(), shrink=0.8, label="cell probability")
    return fig


def prediction_grid(images, truths, probabilities, threshold: float = 0.5, titles=None):
    """Rows: image, ground truth, probability, errors (FP red / FN blue) for each example."""
    n = len(images)
    fig, axes = plt.subplots(n, 4, figsize=(14, 2.6 * n), squeeze=False)
    for i in range(n):
        pred = np.asarray(probabilities[i]) >= threshold
        panels = [
            (grey_rgb(images[i]), titles[i] if titles else "image"),
            (overlay(images[i], {"truth": truths[i]}), "ground truth"),
            (probabilities[i], "probability"),
            (overlay(images[i], error_layers(truths[i], pred)), "errors: FP red, FN blue"),
        ]
        for ax, (panel, title) in zip(axes[i], panels):
            ax.imshow(panel, vmin=0, vmax=1, cmap="magma" if np.ndim(panel) == 2 else None)
            ax.set_title(title)
            ax.axis("off")
    fig.tight_layout()
    return fig


def metric_bars(per_group: Mapping[str, Mapping[str, float]], metrics: Sequence[str] = ("iou", "dice", "pixel_accuracy"),
                title: str | None = None):
    """Grouped bars: one group per key of ``per_group`` (cell type or model), one bar per metric.

    Every bar carries its value, and a value of 0 gets a thick stub at zero: a bar of
    height 0 would otherwise draw nothing, and "missing" and "zero" would look the same.
    """
    groups = list(per_group)
    x = np.arange(len(groups))
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(groups)), 3.6))
    for i, metric in enumerate(metrics):
        values = np.array([per_group[g].get(metric, np.nan) for g in groups], dtype=float)
        bars = ax.bar(x + i * width, values, width, label=metric, color=f"C{i}")
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.2f}" for v in values], fontsize=6, padding=1)
        zero = np.flatnonzero(np.nan_to_num(values, nan=1.0) < 0.005)
        ax.hlines(np.zeros(len(zero)), x[zero] + i * width - width / 2, x[zero] + i * width + width / 2,
                  colors=f"C{i}", lw=4)
    ax.set_xticks(x + width * (len(metrics) - 1) / 2, groups, rotation=30)
    ax.set_ylim(-0.02, 1.08)  # below 0: room for the zero stubs above the axis line
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def threshold_sweep(sweep: Mapping[str, Sequence[float]], chosen: float | None = None, title: str = ""):
    """Metrics vs the probability threshold; ``sweep`` has ``threshold`` and one list per metric.

    Left: precision and recall, the trade-off a threshold makes.  Right: the overall scores
    (IoU, Dice, pixel accuracy), the y axis zoomed on the values between thresholds 0.1 and
    0.9, where a good threshold lies; ``chosen`` and 0.5 are marked with their IoU.
    """
    t = np.asarray(sweep["threshold"], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for metric in ("precision", "recall"):
        if metric in sweep:
            left.plot(t, sweep[metric], label=metric)
    left.set_title("higher threshold: more precise, fewer cells found")
    overall = [m for m in ("iou", "dice", "pixel_accuracy") if m in sweep]
    for metric in overall:
        right.plot(t, sweep[metric], label=metric)
    middle = (t >= 0.1) & (t <= 0.9)
    if middle.any() and overall:
        low = min(np.min(np.asarray(sweep[m])[middle]) for m in overall)
        high = max(np.max(sweep[m]) for m in overall)
        right.set_ylim(max(0.0, low - 0.02), min(1.0, high + 0.02) + 0.01)
    right.set_title("overall scores (y axis zoomed)")
    if "iou" in sweep:
        iou = np.asarray(sweep["iou"], dtype=float)
        for where, style, name in ((0.5, "o", "threshold"), (chosen, "*", "chosen")):
            if where is not None:
                value = float(np.interp(where, t, iou))
                right.plot([where], [value], style, color="k", ms=9 if style == "*" else 6,
                           label=f"{name} {where:.2f}: IoU {value:.3f}")
    for ax in (left, right):
        if chosen is not None:
            ax.axvline(chosen, color="k", ls="--", lw=0.8)
        ax.set_xlabel("threshold on cell probability")
        ax.set_xlim(0, 1)
    left.legend(fontsize=8, loc="lower left")
    right.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))  # beside: curves fill the zoom
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def augmented_crops(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], ncols: int = 4, size: float = 2.2,
                    title: str = "augmented training crops"):
    """Training crops (h, w) with their cells in green, all on one grey scale, titled by cell fraction.

    One shared scale (the pooled 1–99 percentiles) shows the crops as the network gets them:
    an empty background crop looks flat, instead of its noise being stretched to black and white.
    """
    value_range = tuple(np.percentile(np.concatenate([np.ravel(i) for i in images]), [1, 99]))
    shown = [overlay(i, {"truth": m}, value_range=value_range) for i, m in zip(images, masks)]
    titles = [f"{np.mean(np.asarray(m) > 0):.0%} cell" for m in masks]
    return show_images(shown, titles, ncols=ncols, size=size, suptitle=f"{title}; cells in green")


def learning_rate_schedule(rates: Sequence[float], steps_per_epoch: int, title: str = "learning rate"):
    """The learning rate at every weight update (one per batch), epochs marked by dotted lines."""
    rates = np.asarray(rates, dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    ax.plot(np.arange(1, len(rates) + 1), rates)
    for boundary in range(steps_per_epoch, len(rates), steps_per_epoch):
        ax.axvline(boundary + 0.5, color="grey", ls=":", lw=0.8)
    ax.set_xlabel(f"weight update (one per batch; dotted: end of each epoch of {steps_per_epoch} batches)")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def iou_hits(shifts: Sequence[int] = (2, 6, 12), radius: int = 16, iou_thresholds: Sequence[float] = (0.5, 0.75)):
    """How AP50 and AP75 judge a found cell: one annotated disc, predicted discs shifted by ``shifts`` px.

    Each panel gives the IoU of the two discs and whether the prediction counts as a hit at
    each IoU threshold (AP50: IoU ≥ 0.5, AP75: IoU ≥ 0.75).
    """
    size = 2 * radius + max(shifts) + 8
    yy, xx = np.mgrid[:size, :size]
    centre = radius + 4

    def disc(dx):
        return (yy - centre) ** 2 + (xx - centre - dx) ** 2 <= radius ** 2

    truth = disc(0)
    fig, axes = plt.subplots(1, len(shifts), figsize=(3.2 * len(shifts), 3.4), squeeze=False)
    for ax, dx in zip(axes.flat, shifts):
        prediction = disc(dx)
        iou = np.count_nonzero(truth & prediction) / np.count_nonzero(truth | prediction)
        layers = {"true_positive": truth & prediction, "false_positive": prediction & ~truth,
                  "false_negative": truth & ~prediction}
        ax.imshow(overlay(np.full(truth.shape, 128.0), layers, alpha=0.8, value_range=(0, 255)))
        verdicts = ", ".join(f"AP{round(100 * q)} {'hit' if iou >= q else 'miss'}" for q in iou_thresholds)
        ax.set_title(f"shifted {dx} px: IoU {iou:.2f}\n{verdicts}")
        ax.axis("off")
    outcome_legend(axes.flat[-1], loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def draw_unet(levels: Sequence[tuple[int, int, int]], title: str = "U-Net"):
    """Sketch a U-Net from ``(level, filters, downsampling factor)`` rows (see ``model.describe_unet``).

    Boxes are feature maps after two 3×3 convolutions (height ∝ resolution, width ∝ filters);
    labelled arrows show the 2×2 max-pool down, the 2×2 up-convolution up and the skip
    connections that are concatenated in the decoder; a legend names them.
    """
    depth = len(levels) - 1
    step_x, step_y = 1.2, 2.0
    arrow_styles = {"down": ("tab:red", "-"), "up": ("tab:green", "-"), "skip": ("grey", "--")}
    fig, ax = plt.subplots(figsize=(10, 5.5))
    boxes = {}  # (side, level) -> (left x, centre y, width, height)
    for level, filters, factor in levels:
        h = 2.4 / factor
        w = 0.25 + 0.12 * np.log2(filters)
        y = -level * step_y
        sides = ("bottom",) if level == depth else ("encoder", "decoder")
        for side in sides:
            x = (level if side != "decoder" else 2 * depth - level) * step_x
            boxes[side, level] = (x, y, w, h)
            ax.add_patch(plt.Rectangle((x, y - h / 2), w, h, color=plt.cm.viridis(level / max(depth, 1)), alpha=0.8))
            ax.text(x + w / 2, y - h / 2 - 0.1, f"{filters}\n1/{factor}", ha="center", va="top", fontsize=8)

    def arrow(start, end, kind, label, **text):
        colour, style = arrow_styles[kind]
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=colour, ls=style, lw=1.5))
        middle = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
        ax.text(*middle, label, color=colour, fontsize=8, **text)

    for level in range(depth):
        inside = level < depth - 1  # label inside the "U" where there is room, else outside it
        x, y, w, h = boxes["encoder", level]
        lower = boxes.get(("encoder", level + 1)) or boxes["bottom", level + 1]
        arrow((x + w, y - h / 4), (lower[0] + lower[2] / 2, lower[1] + lower[3] / 2), "down",
              "  max-pool ↓" if inside else "max-pool ↓  ", ha="left" if inside else "right",
              va="bottom" if inside else "top")
        dx, dy, dw, dh = boxes["decoder", level]
        below = boxes.get(("decoder", level + 1)) or boxes["bottom", level + 1]
        arrow((below[0] + below[2] / 2, below[1] + below[3] / 2), (dx, dy - dh / 4), "up",
              "up-conv ↑  " if inside else "  up-conv ↑", ha="right" if inside else "left",
              va="bottom" if inside else "top")
        arrow((x + w + 0.05, y), (dx - 0.05, y), "skip", "skip → concatenate\n", ha="center", va="bottom")
    x, y, w, h = boxes["encoder", 0]
    ax.text(x - 0.1, y, "input\nimage", ha="right", va="center", fontsize=8)
    dx, dy, dw, dh = boxes["decoder", 0]
    ax.text(dx + dw + 0.1, dy, "1×1 conv +\nsigmoid →\nprobability\nmap", ha="left", va="center", fontsize=8)
    legend = [Patch(color=plt.cm.viridis(0.5), alpha=0.8, label="feature maps: two 3×3 conv + ReLU"),
              Line2D([], [], color=arrow_styles["down"][0], label="2×2 max-pool: half the size"),
              Line2D([], [], color=arrow_styles["up"][0], label="2×2 up-convolution: twice the size"),
              Line2D([], [], color=arrow_styles["skip"][0], ls="--", label="skip connection, concatenated")]
    ax.legend(handles=legend, loc="lower right", fontsize=8)
    ax.set_xlim(-1.0, 2 * depth * step_x + 1.8)
    ax.set_ylim(-depth * step_y - 1.0, 1.6)
    ax.axis("off")
    ax.set_title(f"{title}: encoder (left) → bottleneck → decoder (right); labels: filters, resolution")
    fig.tight_layout()
    return fig
