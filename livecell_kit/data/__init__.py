"""LIVECell on disk, in pipeline order; each module has one job (:mod:`livecell_kit.download` fetches it):

* :mod:`~livecell_kit.data.layout` — where files live under a data root, file-name rules, a download's stamps;
* :mod:`~livecell_kit.data.images` — read one frame as uint8 (H, W): formats, colour, pages;
* :mod:`~livecell_kit.data.intensity` — the rule that maps any pixel type to uint8;
* :mod:`~livecell_kit.data.image_check` — image files vs their records (headers only), before work;
* :mod:`~livecell_kit.data.validation` — the rules an annotation file must follow;
* :mod:`~livecell_kit.data.coco_stream` — one streaming pass over a COCO JSON (ijson);
* :mod:`~livecell_kit.data.index_writer` — that pass into checked column arrays on disk;
* :mod:`~livecell_kit.data.index` — the on-disk annotation index, built once per file, memory-mapped;
* :mod:`~livecell_kit.data.annotations` — a :class:`Split` (or subset) served from the index;
* :mod:`~livecell_kit.data.subsets` — reproducible subsets, manifests, nearly unannotated frames.

The names below are re-exported so callers write ``data.load_split(root, "train")``;
``data.read_image`` is :func:`livecell_kit.data.images.read_image`.
"""
from livecell_kit.data.annotations import (Split, available_splits, cell_outlines, load_annotations, load_split,
                                          to_coco)
from livecell_kit.data.image_check import ImageCheckError, check_image_files, read_header
from livecell_kit.data.images import ImageReadError, read_image
from livecell_kit.data.index import AnnotationIndex, file_sha256, index_root, open_index
from livecell_kit.data.layout import (CELL_TYPES, IMAGE_HEIGHT, IMAGE_WIDTH, SPLITS,
                                      annotation_path, cell_type_of, default_workdir,
                                      split_image_dir)
from livecell_kit.data.subsets import (DEFAULT_SUBSET_SIZES, NEARLY_UNANNOTATED_CELLS, SUBSET_RULES,
                                       load_subset, nearly_unannotated, read_manifest,
                                       select_subset, write_manifest)
from livecell_kit.data.validation import (POLYGON_TOLERANCE_PX, AnnotationError, segmentation_problem,
                                          validate_annotations)

__all__ = [
    "CELL_TYPES", "DEFAULT_SUBSET_SIZES", "IMAGE_HEIGHT", "IMAGE_WIDTH", "NEARLY_UNANNOTATED_CELLS",
    "POLYGON_TOLERANCE_PX", "SPLITS", "SUBSET_RULES", "AnnotationError", "AnnotationIndex",
    "ImageCheckError", "ImageReadError", "Split", "annotation_path", "available_splits",
    "cell_outlines", "cell_type_of", "check_image_files", "default_workdir", "file_sha256",
    "index_root", "load_annotations", "load_split", "load_subset", "nearly_unannotated",
    "open_index", "read_header", "read_image", "read_manifest", "segmentation_problem",
    "select_subset", "split_image_dir", "to_coco", "validate_annotations", "write_manifest",
]
