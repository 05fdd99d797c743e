"""Training targets from COCO/LIVECell annotations: semantic, instance and border masks.

Every function here takes the annotations of **one image** (COCO dicts with a
``segmentation`` that is a list of polygons ``[[x0, y0, x1, y1, ...], ...]`` in
pixel coordinates — x is the column, y the row — or an RLE dict) and that image's
``height`` and ``width`` in pixels, and returns ``(height, width)`` numpy arrays:

* :func:`semantic_mask` — uint8 0/1, the union of all cells;
* :func:`instance_labels` — int32, 0 = background, ``k`` = the k-th annotation;
* :func:`touching_border_mask` — uint8 0/1, pixels where two different cells meet;
* :func:`border_weight_map` — float32, the U-Net paper's per-pixel loss weights;
* :func:`cell_labels` — int32, non-overlapping labels (overlaps resolved, duplicates
  dropped), and from them :func:`distance_targets` (float32 (H, W, 3), the instance
  U-Net's targets) and :func:`boundary_target` (uint8 0/1 cell outlines).

:func:`build_mask_cache` writes the masks of a split or subset to disk once (PNG per
image) in a folder keyed by the annotation file's content; :func:`load_mask` reads
one back (:func:`read_mask_file` checks it and rebuilds a damaged one).  :func:`write_masks` does the same for any annotation file (the
``livecell-kit masks`` command).

Modules, in pipeline order: :mod:`~livecell_kit.masks.rle` (run-length
encodings), :mod:`~livecell_kit.masks.segmentations` (annotations → checked
pycocotools RLEs), :mod:`~livecell_kit.masks.rasterise` (semantic mask, instance
labels), :mod:`~livecell_kit.masks.borders` (touching borders, weight map),
:mod:`~livecell_kit.masks.cells` (non-overlapping labels, instance targets),
:mod:`~livecell_kit.masks.cache` (PNG files and the cache folder).
"""
from livecell_kit.masks.borders import border_weight_map, touching_border_mask
from livecell_kit.masks.cache import (CACHE_VERSION, KINDS, MAX_INSTANCES, STAMP_NAME, MaskFileError,
                                      annotation_hash, build_mask_cache, load_mask, mask_file,
                                      mask_is_intact, read_mask_file, render, write_masks)
from livecell_kit.masks.cells import boundary_target, cell_labels, distance_targets
from livecell_kit.masks.rasterise import instance_labels, semantic_mask
from livecell_kit.masks.rle import uncompressed_rle
from livecell_kit.masks.segmentations import MaskError, annotation_rles

__all__ = [
    "CACHE_VERSION", "KINDS", "MAX_INSTANCES", "STAMP_NAME", "MaskError", "MaskFileError",
    "annotation_hash", "annotation_rles", "border_weight_map", "boundary_target", "build_mask_cache",
    "cell_labels", "distance_targets",
    "instance_labels", "load_mask", "mask_file", "mask_is_intact", "read_mask_file", "render",
    "semantic_mask",
    "touching_border_mask", "uncompressed_rle", "write_masks",
]
