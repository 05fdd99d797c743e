"""The rules a COCO/LIVECell annotation file must follow, one record at a time.

The annotation index (:mod:`~livecell_kit.data.index_writer`) checks whole batches with
numpy and falls back to these per-record rules to word the error, so a message reads the
same however the problem was found: the file, the id, what is wrong and the fix.
:func:`validate_annotations` applies them to a COCO dict already in memory.
"""
from __future__ import annotations

import math

import numpy as np
from pycocotools import mask as mask_utils

from livecell_kit.data.layout import FIX_DATA


class AnnotationError(ValueError):
    """An annotation file is malformed; the message names the file, the id and the fix."""


#: px: the largest image (width x height) a record may declare: 16384 x 16384.  Masks are
#: rendered at the declared size (an instance mask takes 4 bytes a pixel), so a typo such as
#: 200000 x 200000 would otherwise end in a MemoryError.  LIVECell frames are 704 x 520.
MAX_IMAGE_PIXELS = 1 << 28

#: px: how far a polygon vertex may lie outside its image.  LIVECell polygons trace
#: pixel edges, so x == width (one past the last column) is legitimate.
POLYGON_TOLERANCE_PX = 1.0

ANN_FIX = "fix or drop that entry, or replace the file: " + FIX_DATA
IMAGE_KEYS = ("id", "file_name", "width", "height")
ANN_KEYS = ("id", "image_id", "category_id", "segmentation")
#: Keys of a complete COCO annotation; missing optional ones are filled in (:func:`fill_geometry`).
ANN_ALL_KEYS = ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd")


def segmentation_problem(seg, size) -> str | None:
    """What is wrong with one COCO segmentation, as a short phrase; None when it is fine.

    seg: a list of polygons ``[[x0, y0, x1, y1, ...], ...]`` in pixel xy (x = column,
        y = row), or an RLE dict ``{"size": [height, width], "counts": ...}``.
    size: ``(height, width)`` of its image in px, or None to check the form only.
    Polygons must be flat lists of an even number (>= 6, i.e. >= 3 points) of finite
    numbers, every vertex within :data:`POLYGON_TOLERANCE_PX` (1 px) of the image:
    ``-1 <= x <= width + 1`` and ``-1 <= y <= height + 1``.  RLEs must have ``counts``
    (a list of non-negative integers adding up to height x width, or a compressed string,
    whose runs are checked when masks are made) and ``size == [height, width]``, two
    positive integers.  The phrase is meant to follow "annotation id N: " in an error.
    """
    if isinstance(seg, dict):
        return _rle_problem(seg, size)
    if not isinstance(seg, list) or not seg:
        return "segmentation is empty or not a list of polygons"
    tol = POLYGON_TOLERANCE_PX
    for k, poly in enumerate(seg):
        if not isinstance(poly, list) or not poly:
            return f"polygon {k} is empty or not a list"
        if len(poly) % 2:
            return (f"polygon {k} has an odd number ({len(poly)}) of coordinates; polygons are "
                    f"flat [x0, y0, x1, y1, ...]")
        if len(poly) < 6:
            return f"polygon {k} has {len(poly) // 2} points, a polygon needs at least 3"
        try:
            finite = math.isfinite(sum(poly))  # one NaN/inf anywhere makes the sum non-finite
        except TypeError:
            finite = False
        if not finite:
            return f"polygon {k} holds non-numeric or non-finite coordinates"
        if size is None:
            continue
        height, width = size
        xs, ys = poly[0::2], poly[1::2]
        lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
        if lo_x < -tol or lo_y < -tol or hi_x > width + tol or hi_y > height + tol:
            return (f"polygon {k} spans x {lo_x:g}..{hi_x:g}, y {lo_y:g}..{hi_y:g}, outside its "
                    f"{width} x {height} image (x is the column, y the row)")
    return None


def _rle_problem(seg: dict, size) -> str | None:
    counts, rle_size = seg.get("counts"), seg.get("size")
    if not isinstance(counts, (list, str, bytes)) or "size" not in seg:
        return "RLE segmentation needs 'counts' (a list or a compressed string) and 'size'"
    if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(is_int64(v) and v > 0 for v in rle_size)):
        return f"RLE size {rle_size!r} is not [height, width], two positive whole numbers of pixels"
    if size is not None and rle_size != [size[0], size[1]]:
        return f"RLE size {rle_size} does not match its image ({size[0]} x {size[1]})"
    if isinstance(counts, list):
        if not all(is_int64(c) and c >= 0 for c in counts):
            bad = next(c for c in counts if not (is_int64(c) and c >= 0))
            return f"RLE counts hold {bad!r}; runs are non-negative whole numbers of pixels"
        if sum(counts) != rle_size[0] * rle_size[1]:
            return (f"RLE counts must be runs adding up to {rle_size[0]} x {rle_size[1]} = "
                    f"{rle_size[0] * rle_size[1]} pixels (they add up to {sum(counts)})")
    return None


def annotation_problem(ann, position, size=None) -> str | None:
    """Everything wrong with one annotation on its own, as the start of an error; None when fine.

    position: its index in the file, named when it has no id.  size: ``(height, width)``
    of its image in px, or None to leave the polygon extent unchecked.  Cross-record
    rules (unique ids, known images) are the caller's.
    """
    if not isinstance(ann, dict):
        return f"annotation at index {position} is not an object"
    aid = ann.get("id", f"at index {position}")
    missing = [k for k in ANN_KEYS if k not in ann]
    if missing:
        return f"annotation id {aid} lacks {missing}"
    for key in ("id", "image_id", "category_id"):
        if not is_int64(ann[key]):
            return f"annotation id {aid}: {key} {ann[key]!r} is not an integer"
    if "iscrowd" in ann and not is_int64(ann["iscrowd"]):
        return f"annotation id {aid}: iscrowd {ann['iscrowd']!r} is not an integer (0 or 1)"
    problem = segmentation_problem(ann["segmentation"], size)
    if problem:
        return f"annotation id {aid}: {problem}"
    if "area" in ann and not _is_number(ann["area"]):
        return f"annotation id {aid}: area {ann['area']!r} is not a number (px²)"
    bbox = ann.get("bbox", [0, 0, 0, 0])
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(map(_is_number, bbox))):
        return f"annotation id {aid}: bbox {bbox!r} is not four numbers [x, y, width, height] in px"
    return None


def is_int64(value) -> bool:
    """A JSON integer that fits int64 (ids are stored as int64 arrays)."""
    return type(value) is int and -2**63 <= value < 2**63


def _is_number(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def image_problem(img, position) -> str | None:
    """What is wrong with one image record on its own, as the start of an error; None when fine."""
    if not isinstance(img, dict):
        return f"images[{position}] is not an object"
    missing = [k for k in IMAGE_KEYS if k not in img]
    if missing:
        return f"image id {img.get('id', f'at index {position}')} lacks {missing}"
    if not is_int64(img["id"]):
        return f"image id {img['id']!r} is not an integer"
    for key in ("width", "height"):
        value = img[key]
        whole = is_int64(value) or (type(value) is float and value.is_integer())
        if not whole or value < 1:
            return f"image id {img['id']}: {key} {value!r} is not a positive whole number of pixels"
    if img["width"] * img["height"] > MAX_IMAGE_PIXELS:
        return (f"image id {img['id']}: declared size {img['width']:g} x {img['height']:g} px is larger "
                f"than livecell_kit.data.validation.MAX_IMAGE_PIXELS ({MAX_IMAGE_PIXELS} px; LIVECell "
                f"frames are 704 x 520) — a typo? If the size is real, raise that limit")
    name = img["file_name"]
    if not isinstance(name, str) or not name.strip():
        return f"image id {img['id']}: file_name {name!r} is not a file name (a non-empty string)"
    return None


def fill_geometry(ann: dict) -> dict:
    """``ann`` with ``iscrowd`` (0), ``bbox`` ([x, y, w, h] in px) and ``area`` (px²; shoelace
    for polygons, pixel count for RLEs) filled in where missing; a new dict when any was."""
    if all(k in ann for k in ("iscrowd", "bbox", "area")):
        return ann
    ann = {**ann}
    ann.setdefault("iscrowd", 0)
    seg = ann["segmentation"]
    if isinstance(seg, dict):
        rle = seg if isinstance(seg["counts"], str) else mask_utils.frPyObjects(seg, *seg["size"])
        ann.setdefault("area", float(mask_utils.area(rle)))
        ann.setdefault("bbox", [float(v) for v in mask_utils.toBbox(rle)])
        return ann
    xs = [x for poly in seg for x in poly[0::2]]
    ys = [y for poly in seg for y in poly[1::2]]
    ann.setdefault("bbox", [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
    area = 0.0
    for poly in seg:
        px, py = np.asarray(poly[0::2], float), np.asarray(poly[1::2], float)
        area += 0.5 * abs(float(np.dot(px, np.roll(py, -1)) - np.dot(py, np.roll(px, -1))))
    ann.setdefault("area", area)
    return ann


def validate_annotations(dataset: dict, path="<dataset>") -> None:
    """Raise :class:`AnnotationError` at the first malformed image or annotation of a COCO dict.

    Checks: required keys, unique ids, annotations pointing at known images, and each
    segmentation by :func:`segmentation_problem`.  The annotation index applies the same
    rules to a file as it reads it (see :func:`livecell_kit.data.index.open_index`).
    """
    sizes: dict = {}
    for i, img in enumerate(dataset["images"]):
        problem = image_problem(img, i)
        if problem is None and img["id"] in sizes:
            problem = f"duplicate image id {img['id']}"
        if problem:
            raise AnnotationError(f"{path}: {problem}; {ANN_FIX}")
        sizes[img["id"]] = (img["height"], img["width"])
    anns = dataset["annotations"]
    seen: set = set()
    for i, ann in enumerate(anns.values() if isinstance(anns, dict) else anns):
        problem = annotation_problem(ann, i)
        if problem is None:
            if ann["id"] in seen:
                problem = f"annotation id {ann['id']} is a duplicate id"
            elif ann["image_id"] not in sizes:
                problem = (f"annotation id {ann['id']} points to image id {ann['image_id']}, "
                           f"which is not in 'images'")
            else:
                problem = annotation_problem(ann, i, sizes[ann["image_id"]])
        if problem:
            raise AnnotationError(f"{path}: {problem}; {ANN_FIX}")
        seen.add(ann["id"])
