"""Every figure of the course, one module per kind; the notebooks call ``figures.gallery(...)``.

* :mod:`~livecell_kit.figures.pipeline` — the pipeline's figures: galleries, polygons, annotation
  statistics, augmented crops, learning curves and snapshots, metrics, the threshold sweep, the U-Net;
* :mod:`~livecell_kit.figures.concepts` — one idea each for notebooks 02 and 03: touching borders,
  border weights, a convolution, activations, pooling, batch normalisation, receptive fields;
* :mod:`~livecell_kit.figures.cells` — notebook 06: labels, instance targets, the watershed, counts;
* :mod:`~livecell_kit.figures.browse` — :func:`viewer`: a model's predictions image by image
  (ipywidgets in a live kernel, a static figure elsewhere).

Masks are painted onto images by :mod:`livecell_kit.masks.overlay` (numpy only, so the command
line's ``predict`` writes overlays without matplotlib); its colours and :func:`overlay` are
re-exported here. Every function returns its matplotlib figure. Importing this package imports
pyplot, never TensorFlow (tests/test_imports.py).
"""
from livecell_kit.figures.browse import outcome_legend, viewer
from livecell_kit.figures.cells import counts_and_confluence, label_panels, targets, watershed_steps
from livecell_kit.figures.concepts import (EXAMPLE_KERNELS, activations, batch_normalisation, border_weights,
                                           convolution, densest_window, instance_colours, pooling_and_upsampling,
                                           receptive_fields, touching_borders)
from livecell_kit.figures.pipeline import (METRIC_LABELS, annotation_stats, augmented_crops, draw_polygons,
                                           draw_unet, gallery, iou_hits, learning_curves, learning_rate_schedule,
                                           metric_bars, metric_label, prediction_grid, show_images,
                                           threshold_sweep, training_snapshots)
from livecell_kit.masks.overlay import COLOURS, OUTCOME_LABELS, error_layers, grey_rgb, outcome_layers, overlay

__all__ = [
    "COLOURS", "EXAMPLE_KERNELS", "METRIC_LABELS", "OUTCOME_LABELS", "activations", "annotation_stats",
    "augmented_crops", "batch_normalisation", "border_weights", "convolution", "counts_and_confluence",
    "densest_window", "draw_polygons", "draw_unet", "error_layers", "gallery", "grey_rgb", "instance_colours",
    "iou_hits", "label_panels", "learning_curves", "learning_rate_schedule", "metric_bars", "metric_label",
    "outcome_layers", "outcome_legend", "overlay", "pooling_and_upsampling", "prediction_grid",
    "receptive_fields", "show_images", "targets", "threshold_sweep", "touching_borders", "training_snapshots",
    "viewer", "watershed_steps",
]
