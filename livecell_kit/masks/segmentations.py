"""COCO segmentations of one image → pycocotools RLEs, checked first.

An annotation's ``segmentation`` is a list of polygons ``[[x0, y0, x1, y1, ...], ...]``
in pixel coordinates (x is the column, y the row) or an RLE dict (``counts`` a
list of ints or pycocotools' compressed string).  pycocotools misreads or hangs
on bad input (a 2-point polygon is taken for a bounding box; NaN, far-away
coordinates or corrupt RLE strings never return), so everything is checked here
and a :class:`MaskError` names the annotation, what is wrong and the fix.

Rasterisation is pycocotools' own (``mask.frPyObjects``): a polygon with integer
corners ``(x0, y0)``–``(x1, y1)`` covers columns ``x0 .. x1-1`` and rows
``y0 .. y1-1``, so the masks match what COCO tools (and LIVECell's authors) see.
"""
from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from livecell_kit.data import segmentation_problem
from livecell_kit.masks.rle import compressed_counts


class MaskError(ValueError):
    """An annotation cannot be turned into a mask; the message names it and the fix."""


def _where(ann, index, source) -> str:
    """'annotation 17 (image 3) in file.json' for error messages."""
    aid = ann.get("id", f"at index {index}") if isinstance(ann, dict) else f"at index {index}"
    text = f"annotation {aid}"
    if isinstance(ann, dict) and "image_id" in ann:
        text += f" (image {ann['image_id']})"
    if source is not None:
        text += f" in {source}"
    return text



def _check_rle(seg: dict, height: int, width: int, where: str) -> dict:
    """Check an RLE's runs (its keys and size are already checked); return pycocotools' compressed form.

    pycocotools hangs or crashes on inconsistent RLEs (counts that do not add up
    to H × W, corrupt strings), so they are checked here first.
    """
    counts = seg["counts"]  # keys, type and size checked by segmentation_problem
    if isinstance(counts, list):
        ok = all(isinstance(c, (int, np.integer)) and c >= 0 for c in counts)
        if not ok or sum(counts) != height * width:
            raise MaskError(f"{where}: uncompressed RLE counts must be non-negative integers "
                            f"adding up to {height} x {width} = {height * width} pixels "
                            f"(they add up to {sum(c for c in counts if isinstance(c, (int, np.integer)))}); "
                            f"fix or delete this annotation")
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    try:  # a compressed string (str or bytes)
        runs, _, _ = compressed_counts([counts])
    except ValueError as exc:
        raise MaskError(f"{where}: compressed RLE string is corrupt ({exc}); fix or delete "
                        f"this annotation") from None
    if runs.min(initial=0) < 0 or int(runs.sum()) != height * width:
        raise MaskError(f"{where}: compressed RLE decodes to runs adding up to {int(runs.sum())} "
                        f"pixels, not {height} x {width} = {height * width}; the string is "
                        f"corrupt or belongs to another image size: fix or delete this annotation")
    return {"size": [height, width],
            "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def annotation_parts(anns, height: int, width: int, source=None):
    """Every annotation's pieces as pycocotools RLEs, with one frPyObjects call for all polygons.

    Returns ``(rles, owner)``: a list of RLE dicts and, for each, the index of the
    annotation it belongs to (an annotation with k polygons owns k entries).
    Every segmentation is checked first, by the kit's one check
    (:func:`livecell_kit.data.segmentation_problem`: at least 3 finite points, every vertex
    within 1 px of the image), because pycocotools misreads or hangs on bad ones: a
    2-point polygon (4 numbers) is taken for a bounding box, NaN or huge coordinates
    never return.
    """
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise MaskError(f"image size must be positive, got height={height}, width={width}"
                        + (f" ({source})" if source else ""))
    polys: list = []
    poly_owner: list[int] = []
    other: list[tuple[int, dict]] = []
    for i, ann in enumerate(anns):
        seg = ann.get("segmentation") if isinstance(ann, dict) else None
        # The kit's one segmentation check, the same the annotation loader applies.
        problem = segmentation_problem(seg, (height, width))
        if problem:
            raise MaskError(f"{_where(ann, i, source)}: {problem}; fix or delete this annotation")
        if isinstance(seg, dict):
            other.append((i, _check_rle(seg, height, width, _where(ann, i, source))))
            continue
        polys.extend(seg)
        poly_owner.extend([i] * len(seg))
    rles: list = []
    owner: list[int] = []
    if polys:
        rles = mask_utils.frPyObjects(polys, height, width)
        owner = poly_owner
    for i, rle in other:
        rles.append(rle)
        owner.append(i)
    return rles, owner


def annotation_rles(anns, height: int, width: int, source=None) -> list[dict]:
    """One compressed pycocotools RLE per annotation, in annotation order.

    Multi-polygon annotations are merged (union) into one RLE.  Each RLE is
    ``{"size": [height, width], "counts": b"..."}``; decode one with
    ``pycocotools.mask.decode`` to a uint8 (H, W) 0/1 array, or read its runs
    with :func:`livecell_kit.masks.rle.foreground_runs`.  ``source`` (e.g. the
    JSON path) goes into error messages.
    """
    rles, owner = annotation_parts(anns, height, width, source)
    per_ann: list[list] = [[] for _ in anns]
    for rle, i in zip(rles, owner):
        per_ann[i].append(rle)
    return [parts[0] if len(parts) == 1 else mask_utils.merge(parts) for parts in per_ann]

