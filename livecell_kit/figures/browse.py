"""Browse a model's predictions image by image: what it found, what it invented, what it missed.

:func:`viewer` gives a live Jupyter kernel ipywidgets controls (cell type, image, threshold,
which outcomes to colour, opacity) over one picture that is redrawn on every change, the
first image drawn at once.  The picture is a PNG rendered off-screen (matplotlib's Agg
canvas, no pyplot), shown in an ``ipywidgets.Image``, so it works with any matplotlib
backend.  Where widgets cannot run (nbval, nbconvert, GitHub, ``LIVECELL_KIT_STATIC_PLOTS``)
it draws a static figure instead: the first image of each cell type.  A widget lives in the
running kernel only: a saved notebook reopened later shows "Error displaying widget: model not
found" in its place, so the viewer's stored output also says to run the cell again
(:data:`RERUN_HINT`, under the widget and as its plain-text form).
Images are (H, W) grey arrays, truths (H, W) 0/1 masks, probabilities (H, W) floats in [0, 1].
"""
from __future__ import annotations

import html
import importlib.util
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from IPython.display import HTML, display  # ipywidgets, a runtime dependency, brings IPython

from livecell_kit.masks.overlay import COLOURS, OUTCOME_LABELS, outcome_layers, overlay

#: Checkbox text for each outcome layer (the legend spells them out in full).
_SHORT_LABELS = {"true_positive": "found", "false_positive": "false positive", "false_negative": "missed"}

#: Stored with the widget: a reopened notebook's widget is gone until its cell runs again.
RERUN_HINT = ("Interactive viewer: it runs in the live kernel. Reopened this notebook and see "
              "\"Error displaying widget: model not found\" (or no viewer)? Run this cell again.")


def outcome_legend(ax, outcomes: Sequence[str] = tuple(OUTCOME_LABELS), **kwargs):
    """Add a legend of the outcome colours (green found, red false positive, blue missed) to ``ax``."""
    handles = [Patch(facecolor=COLOURS[k], label=OUTCOME_LABELS[k]) for k in outcomes]
    return ax.legend(handles=handles, **{"fontsize": 8, "loc": "lower right", "framealpha": 0.85, **kwargs})


def foreground_iou(truth: np.ndarray, prediction: np.ndarray) -> float:
    """IoU of the cell class of two 0/1 masks; 1.0 when both are empty."""
    truth, prediction = np.asarray(truth).astype(bool), np.asarray(prediction).astype(bool)
    union = np.count_nonzero(truth | prediction)
    return 1.0 if union == 0 else np.count_nonzero(truth & prediction) / union


def draw_outcomes(ax, image, truth, probability, threshold: float,
                  outcomes: Sequence[str] = tuple(OUTCOME_LABELS), alpha: float = 0.45, title: str = ""):
    """Draw ``image`` with the chosen outcome layers of ``probability >= threshold`` vs ``truth`` on ``ax``."""
    prediction = np.asarray(probability) >= threshold
    layers = {k: v for k, v in outcome_layers(truth, prediction).items() if k in outcomes}
    ax.imshow(overlay(image, layers, alpha=alpha))
    ax.set_title(f"{title}{': ' if title else ''}IoU {foreground_iou(truth, prediction):.2f} "
                 f"at threshold {threshold:.2f}")
    ax.axis("off")


def render_png(image, truth, probability, threshold: float, outcomes: Sequence[str] = tuple(OUTCOME_LABELS),
               alpha: float = 0.45, title: str = "", width_in: float = 8.0, dpi: int = 90) -> bytes:
    """PNG bytes of :func:`draw_outcomes` with a legend, drawn off-screen (no pyplot figure left open)."""
    height, width = np.shape(image)
    fig = Figure(figsize=(width_in, width_in * height / width + 0.4), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1 - 0.4 / (width_in * height / width + 0.4)))
    draw_outcomes(ax, image, truth, probability, threshold, outcomes, alpha, title)
    if outcomes:
        outcome_legend(ax, outcomes)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


@dataclass(frozen=True)
class Viewer:
    """The interactive viewer's widgets; ``box`` holds them all and is what Jupyter displays."""

    box: object
    cell_type: object
    image: object
    threshold: object
    outcomes: dict
    opacity: object
    picture: object

    def _repr_mimebundle_(self, **kwargs):
        """The widget, with :data:`RERUN_HINT` as its plain-text form (what a page without widgets shows)."""
        bundle = self.box._repr_mimebundle_(**kwargs)
        return {**bundle, "text/plain": RERUN_HINT} if isinstance(bundle, dict) else bundle


def viewer(images: Sequence[np.ndarray], truths: Sequence[np.ndarray], probabilities: Sequence[np.ndarray],
           names: Sequence[str], cell_types: Sequence[str], threshold: float = 0.5, static: bool | None = None,
           source: str = ""):
    """Browse predictions: cell-type filter, image, threshold, outcome toggles and opacity.

    In a live Jupyter kernel with ipywidgets this displays and returns a :class:`Viewer`
    showing the first image at once, and under it a one-line note (:data:`RERUN_HINT`) that
    stays in the saved notebook, where the widget itself does not survive a reopening.
    With ``static=True`` (or without a widget front end) it returns a matplotlib figure of
    the first image of each cell type instead.
    ``source`` (e.g. "synthetic sample") is added to the titles.
    """
    if not (len(images) == len(truths) == len(probabilities) == len(names) == len(cell_types)) or not images:
        raise ValueError(f"viewer needs the same number (> 0) of images, truths, probabilities, names and "
                         f"cell types; got {len(images)}, {len(truths)}, {len(probabilities)}, "
                         f"{len(names)}, {len(cell_types)}")
    if static is None:
        static = not _widgets_available()
    if static:
        return _static_figure(images, truths, probabilities, cell_types, threshold, source)
    shown = _interactive(images, truths, probabilities, names, cell_types, threshold, source)
    # ipywidgets 8 widgets have _repr_mimebundle_ (the Viewer adds its text/plain hint to it);
    # ipywidgets 7, Colab's, displays a widget only through its own _ipython_display_
    display(shown if hasattr(shown.box, "_repr_mimebundle_") else shown.box)
    display(HTML(f'<p style="color:#666;font-size:90%;margin:2px 0">{html.escape(RERUN_HINT)}</p>'))
    return shown


def _static_figure(images, truths, probabilities, cell_types, threshold: float, source: str):
    """The first image of each cell type with all outcome layers and one legend (a pyplot figure)."""
    firsts: dict[str, int] = {}
    for i, cell_type in enumerate(cell_types):
        firsts.setdefault(cell_type, i)
    ncols = min(4, len(firsts))
    nrows = int(np.ceil(len(firsts) / ncols))
    panel = 4.3 if len(firsts) > 1 else 7.5  # inches wide; a single image gets a larger panel
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, (panel * 0.74 + 0.75) * nrows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (cell_type, i) in zip(axes.flat, firsts.items()):
        draw_outcomes(ax, images[i], truths[i], probabilities[i], threshold, title=cell_type)
    handles = [Patch(facecolor=COLOURS[k], label=v) for k, v in OUTCOME_LABELS.items()]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    heading = "first image of each cell type" if len(firsts) > 1 else ""
    if heading or source:
        fig.suptitle(f"{heading} ({source})" if heading and source else heading or source)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


def _interactive(images, truths, probabilities, names, cell_types, threshold: float, source: str) -> Viewer:
    import ipywidgets as w

    types = ["all"] + sorted(set(cell_types))
    type_box = w.Dropdown(options=types, value="all", description="cell type")
    image_box = w.Dropdown(options=[(n, i) for i, n in enumerate(names)], value=0, description="image",
                           layout=w.Layout(width="30em"))  # LIVECell file names are long
    threshold_box = w.FloatSlider(value=round(float(threshold), 2), min=0.05, max=0.95, step=0.01,
                                  description="threshold", continuous_update=False)
    toggles = {k: w.Checkbox(value=True, description=_SHORT_LABELS[k], indent=False) for k in OUTCOME_LABELS}
    opacity = w.FloatSlider(value=0.45, min=0.0, max=1.0, step=0.05, description="opacity",
                            continuous_update=False)
    picture = w.Image(format="png", layout=w.Layout(max_width="100%"))
    refreshing = False  # no drawing while the image list is being replaced

    def redraw(*_):
        index = image_box.value
        if refreshing or index is None:
            return
        title = f"{names[index]} ({cell_types[index]}{', ' + source if source else ''})"
        outcomes = [k for k, box in toggles.items() if box.value]
        picture.value = render_png(images[index], truths[index], probabilities[index], threshold_box.value,
                                   outcomes, opacity.value, title)

    def pick_cell_type(*_):
        nonlocal refreshing
        wanted = [i for i, t in enumerate(cell_types) if type_box.value in ("all", t)]
        keep = image_box.value if image_box.value in wanted else wanted[0]
        refreshing = True
        try:  # ipywidgets 8 leaves a dropdown unselected when its options change: select again
            image_box.options = [(names[i], i) for i in wanted]
            image_box.value = keep
        finally:
            refreshing = False
        redraw()

    type_box.observe(pick_cell_type, "value")
    for control in (image_box, threshold_box, opacity, *toggles.values()):
        control.observe(redraw, "value")
    redraw()
    box = w.VBox([w.HBox([type_box, image_box]), w.HBox([threshold_box, opacity]),
                  w.HBox(list(toggles.values())), picture])
    return Viewer(box, type_box, image_box, threshold_box, toggles, opacity, picture)


def _widgets_available() -> bool:
    """True in a live kernel whose front end can show widgets (not under nbval / nbconvert)."""
    if os.environ.get("LIVECELL_KIT_STATIC_PLOTS"):
        return False
    if importlib.util.find_spec("ipywidgets") is None:
        return False
    try:
        from IPython import get_ipython  # present wherever a kernel runs
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ == "ZMQInteractiveShell"
