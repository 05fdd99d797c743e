"""From a model's output to individual cells, their counts, and COCO results.

* :mod:`~livecell_kit.instances.distances` — :func:`split_cells`, the one entry point:
  a seeded watershed on the distance maps of a "cells" model
  (:func:`watershed_from_distances`), else the semantic paths below; per-cell scores.
* :mod:`~livecell_kit.instances.tiled` — :func:`split_cells_tiled`: the same on outputs too
  big to split at once (4000×4000 frames), tile by tile; :func:`split_any_size` picks.
* :mod:`~livecell_kit.instances.semantic` — :func:`semantic_to_instances`: the border
  channel, or a watershed on the distance transform of the semantic mask.
* :mod:`~livecell_kit.instances.counts` — cells per frame, their areas, confluence.
* :mod:`~livecell_kit.instances.coco` — :func:`instances_to_coco_results` for
  :func:`livecell_kit.evaluate.cocoeval.coco_instance_ap`, :func:`best_match_ious`.
"""
from livecell_kit.instances.coco import best_match_ious, instances_to_coco_results
from livecell_kit.instances.counts import cell_statistics, confluence_pct
from livecell_kit.instances.distances import (INSTANCE_SOURCES, SCORINGS, cell_scores, distance_seeds,
                                              instance_source, split_cells, split_labels,
                                              watershed_from_distances)
from livecell_kit.instances.semantic import (h_maxima_markers, relabel, remove_small_objects,
                                             semantic_to_instances, watershed_split)
from livecell_kit.instances.tiled import split_any_size, split_cells_tiled

__all__ = [
    "INSTANCE_SOURCES", "SCORINGS", "best_match_ious", "cell_scores", "cell_statistics", "distance_seeds",
    "confluence_pct", "h_maxima_markers", "instance_source", "instances_to_coco_results", "relabel",
    "remove_small_objects", "semantic_to_instances", "split_any_size", "split_cells", "split_cells_tiled",
    "split_labels", "watershed_from_distances", "watershed_split",
]
