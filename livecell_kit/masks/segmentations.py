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

import itertools

import numpy as np
from pycocotools import mask as mask_utils

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
    """Validate an RLE segmentation; return it in pycocotools' compressed form.

    pycocotools hangs or crashes on inconsistent RLEs (counts that do not add up
    to H × W, corrupt strings), so they are checked here first.
    """
    size = seg.get("size")
    counts = seg.get("counts")
    if size is None or counts is None:
        raise MaskError(f"{where}: RLE segmentation needs 'size' and 'counts'")
    if list(size) != [height, width]:
        raise MaskError(f"{where}: RLE size {list(size)} does not match the image "
                        f"({height} x {width}); check the image's height/width in the JSON")
    if isinstance(counts, list):
        ok = all(isinstance(c, (int, np.integer)) and c >= 0 for c in counts)
        if not ok or sum(counts) != height * width:
            raise MaskError(f"{where}: uncompressed RLE counts must be non-negative integers "
                            f"adding up to {height} x {width} = {height * width} pixels "
                            f"(they add up to {sum(c for c in counts if isinstance(c, (int, np.integer)))})")
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(counts, (str, bytes)):
        try:
            runs, _, _ = compressed_counts([counts])
        except ValueError as exc:
            raise MaskError(f"{where}: compressed RLE string is corrupt ({exc})") from None
        if runs.min(initial=0) < 0 or int(runs.sum()) != height * width:
            raise MaskError(f"{where}: compressed RLE decodes to runs adding up to {int(runs.sum())} "
                            f"pixels, not {height} x {width} = {height * width}; the string is "
                            f"corrupt or belongs to another image size")
        return {"size": [height, width],
                "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise MaskError(f"{where}: RLE 'counts' must be a list of ints or a compressed string, "
                    f"got {type(counts).__name__}")


def annotation_parts(anns, height: int, width: int, source=None):
    """Every annotation's pieces as pycocotools RLEs, with one frPyObjects call for all polygons.

    Returns ``(rles, owner)``: a list of RLE dicts and, for each, the index of the
    annotation it belongs to (an annotation with k polygons owns k entries).
    Polygons are checked first because pycocotools misreads or hangs on bad
    ones: a 2-point polygon (4 numbers) is taken for a bounding box, NaN or huge
    coordinates never return.
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
        if isinstance(seg, dict):
            other.append((i, _check_rle(seg, height, width, _where(ann, i, source))))
            continue
        if not isinstance(seg, list) or not seg:
            raise MaskError(f"{_where(ann, i, source)}: segmentation must be a non-empty list of "
                            f"polygons [[x0, y0, x1, y1, ...], ...] or an RLE dict, got {seg!r:.60}")
        for k, poly in enumerate(seg):
            # len() only in this loop: it runs for every cell of every image.
            if not isinstance(poly, (list, tuple)) or len(poly) < 6 or len(poly) % 2:
                n = len(poly) if isinstance(poly, (list, tuple)) else None
                raise MaskError(
                    f"{_where(ann, i, source)}: polygon {k} has "
                    + (f"{n} coordinates ({n // 2} points)" if n is not None else f"type {type(poly).__name__}")
                    + "; a polygon is a flat list [x0, y0, x1, y1, ...] of at least 3 points "
                    "(6 numbers, an even count) — fix or delete this annotation")
        polys.extend(seg)
        poly_owner.extend([i] * len(seg))
    rles: list = []
    owner: list[int] = []
    if polys:
        _check_coordinates(polys, poly_owner, anns, height, width, source)
        rles = mask_utils.frPyObjects(polys, height, width)
        owner = poly_owner
    for i, rle in other:
        rles.append(rle)
        owner.append(i)
    return rles, owner


def _check_coordinates(polys, poly_owner, anns, height, width, source) -> None:
    """Reject non-numeric, non-finite, far-away and entirely-outside polygons, vectorised."""
    lengths = np.fromiter((len(p) for p in polys), np.int64, len(polys))
    try:
        flat = np.fromiter(itertools.chain.from_iterable(polys), np.float64, int(lengths.sum()))
    except (TypeError, ValueError):
        flat = None
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))

    def culprit(bad_poly: int) -> str:
        i = poly_owner[bad_poly]
        k = bad_poly - poly_owner.index(i)
        return f"{_where(anns[i], i, source)}: polygon {k}"

    if flat is None:
        for j, p in enumerate(polys):
            try:
                np.asarray(p, np.float64)
            except (TypeError, ValueError):
                raise MaskError(f"{culprit(j)} holds non-numeric coordinates") from None
    xs, ys = flat[0::2], flat[1::2]
    # Far-away points: pycocotools walks every edge at 1/5 px steps (and hangs on NaN).
    margin = max(height, width)
    bad = ~(np.isfinite(xs) & np.isfinite(ys) & (xs >= -margin) & (xs <= width + margin)
            & (ys >= -margin) & (ys <= height + margin))
    if bad.any():
        j = int(np.searchsorted(starts // 2, np.flatnonzero(bad)[0], side="right") - 1)
        raise MaskError(f"{culprit(j)} has a non-finite coordinate or one far outside the "
                        f"{width} x {height} image (x is the column, y the row); fix the annotation")
    # Entirely outside: a sign the annotation belongs to another image or the size is wrong.
    pstarts = starts // 2
    lo_x, hi_x = np.minimum.reduceat(xs, pstarts), np.maximum.reduceat(xs, pstarts)
    lo_y, hi_y = np.minimum.reduceat(ys, pstarts), np.maximum.reduceat(ys, pstarts)
    outside = (hi_x <= 0) | (lo_x >= width) | (hi_y <= 0) | (lo_y >= height)
    if outside.any():
        owners = np.asarray(poly_owner)
        for i in np.unique(owners[outside]):
            mine = owners == i
            if outside[mine].all():
                raise MaskError(
                    f"{_where(anns[i], i, source)} lies entirely outside its {width} x {height} "
                    f"image (x {lo_x[mine].min():g}..{hi_x[mine].max():g}, "
                    f"y {lo_y[mine].min():g}..{hi_y[mine].max():g}); it belongs to another "
                    f"image or the image's width/height in the JSON is wrong")


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

