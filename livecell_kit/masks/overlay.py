"""Masks drawn onto grey images as RGB arrays: numpy only, no matplotlib.

:mod:`livecell_kit.figures` shows these arrays in figures and
:mod:`livecell_kit.predict` writes them as PNG files, so the command line's
``predict`` needs no plotting library.  Images are (H, W) grey arrays; masks
are (H, W) 0/1 arrays; results are float RGB (H, W, 3) in [0, 1] unless stated.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

#: Colours used for overlays everywhere, so students learn one code.
COLOURS = {
    "truth": (0.1, 0.8, 0.2),        # green: annotated cells
    "true_positive": (0.1, 0.8, 0.2),    # green: annotated and found
    "prediction": (0.95, 0.6, 0.1),  # orange: predicted cells
    "false_positive": (0.9, 0.1, 0.1),   # red: predicted, not a cell
    "false_negative": (0.2, 0.4, 1.0),   # blue: a cell the model missed
    "border": (1.0, 0.0, 1.0),       # magenta: touching borders
}

#: Legend text for the layers of :func:`outcome_layers`, in drawing order.
OUTCOME_LABELS = {"true_positive": "cell found (true positive)",
                  "false_positive": "not a cell (false positive)",
                  "false_negative": "missed cell (false negative)"}


def grey_rgb(image: np.ndarray, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """(H, W) image → (H, W, 3) float RGB in [0, 1], grey levels ``value_range`` → black..white.

    Default range: the image's own 1–99 percentiles.  Pass one shared range to show several
    crops alike: stretched on its own, an empty background crop turns its few grey levels
    of noise into full black-and-white static.
    """
    image = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(image, [1, 99]) if value_range is None else value_range
    grey = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1)
    return np.repeat(grey[..., None], 3, axis=2)


def overlay(image: np.ndarray, layers: Mapping[str, np.ndarray], alpha: float = 0.45,
            value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Blend 0/1 masks onto a grey image; ``layers`` maps a :data:`COLOURS` key to an (H, W) mask.

    Later layers are blended over earlier ones; ``value_range`` as in :func:`grey_rgb`.
    """
    rgb = grey_rgb(image, value_range)
    for name, mask in layers.items():
        m = np.asarray(mask).astype(bool)
        rgb[m] = (1 - alpha) * rgb[m] + alpha * np.asarray(COLOURS[name])
    return rgb


def error_layers(truth: np.ndarray, prediction: np.ndarray) -> dict[str, np.ndarray]:
    """False positives (predicted, not annotated) and false negatives (annotated, missed) as 0/1 masks."""
    truth, prediction = np.asarray(truth).astype(bool), np.asarray(prediction).astype(bool)
    return {"false_positive": prediction & ~truth, "false_negative": truth & ~prediction}


def outcome_layers(truth: np.ndarray, prediction: np.ndarray) -> dict[str, np.ndarray]:
    """Every pixel either mask marks, in exactly one class: true positive, false positive, missed.

    Disjoint, so each keeps its own colour (green, red, blue): blending "missed" blue over
    the green of all annotated cells would turn it teal.
    """
    truth, prediction = np.asarray(truth).astype(bool), np.asarray(prediction).astype(bool)
    return {"true_positive": truth & prediction, **error_layers(truth, prediction)}


def overlay_image(image: np.ndarray, mask: np.ndarray, labels: np.ndarray | None = None,
                  alpha: float = 0.35, value_range: tuple[float, float] | None = None) -> np.ndarray:
    """uint8 RGB (H, W, 3): grey image, predicted cells tinted, instance outlines drawn opaque;
    ``value_range`` as in :func:`grey_rgb`."""
    rgb = overlay(np.asarray(image, np.float32), {"prediction": mask}, alpha=alpha, value_range=value_range)
    if labels is not None:
        # outline = labelled pixels with a differently-labelled 8-neighbour
        lab = np.asarray(labels)
        edge = (ndimage.grey_erosion(lab, size=(3, 3)) != ndimage.grey_dilation(lab, size=(3, 3))) & (lab > 0)
        rgb[edge] = COLOURS["prediction"]
    return (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
