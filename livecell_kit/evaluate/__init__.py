"""Evaluation: how good is a trained U-Net, and compared with what.

* :mod:`~livecell_kit.evaluate.metrics` — pixel metrics pooled over many images, the
  per-group table, the threshold sweep (numpy only);
* :mod:`~livecell_kit.evaluate.baselines` — the classical Otsu baseline;
* :mod:`~livecell_kit.evaluate.cocoeval` — instance AP under LIVECell's COCO protocol;
* :mod:`~livecell_kit.evaluate.cells` — cells counted and confluence, per frame, against the truth;
* :mod:`~livecell_kit.evaluate.driver` — :func:`evaluate_model`: a model on a split, all of the above.

Cells are split out of a probability map by :mod:`livecell_kit.instances` (it serves
``predict`` too). The names below are re-exported so callers write
``evaluate.evaluate_model(model, root, "test")``.
"""
from livecell_kit.evaluate.baselines import otsu_segment
from livecell_kit.evaluate.cells import frame_cells, summarise_cells
from livecell_kit.evaluate.cocoeval import coco_instance_ap
from livecell_kit.evaluate.driver import (evaluate_model, model_info, per_cell_type_table,
                                          seed_comparison, sweep_split, write_metrics_json)
from livecell_kit.evaluate.metrics import (METRIC_KEYS, MetricAccumulator, MetricsTable, ThresholdSweep,
                                           confusion_metrics, pixel_metrics, threshold_sweep)

__all__ = [
    "METRIC_KEYS", "MetricAccumulator", "MetricsTable", "ThresholdSweep", "coco_instance_ap",
    "confusion_metrics", "evaluate_model", "frame_cells", "model_info", "otsu_segment", "per_cell_type_table",
    "pixel_metrics", "seed_comparison", "summarise_cells", "sweep_split", "threshold_sweep", "write_metrics_json",
]
