"""Training targets from COCO/LIVECell annotations: semantic, instance and border masks.

Every function here takes the annotations of **one image** (COCO dicts with a
``segmentation`` that is a list of polygons ``[[x0, y0, x1, y1, ...], ...]`` in
pixel coordinates — x is the column, y the row — or an RLE dict) and that image's
``height`` and ``width`` in pixels, and returns ``(height, width)`` numpy arrays:

* :func:`semantic_mask` — uint8 0/1, the union of all cells;
* :func:`instance_labels` — int32, 0 = background, ``k`` = the k-th annotation;
* :func:`touching_border_mask` — uint8 0/1, pixels where two different cells meet;
* :func:`border_weight_map` — float32, the U-Net paper's per-pixel loss weights.

Rasterisation is pycocotools' own (``mask.frPyObjects``): a polygon with integer
corners ``(x0, y0)``–``(x1, y1)`` covers columns ``x0 .. x1-1`` and rows
``y0 .. y1-1``, so the masks match what COCO tools (and LIVECell's authors) see.

:func:`build_mask_cache` writes the masks of a whole split to disk once (PNG per
image) in a folder keyed by the annotation file's content; :func:`load_mask` reads
one back.  :func:`write_masks` does the same for any annotation file (the
``livecell-kit masks`` command).
"""
from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from livecell_kit import atomic

#: Mask kinds the cache and :func:`write_masks` know.
KINDS = ("semantic", "instance", "border")
#: Written last into a cache folder; its presence (with this version) marks the folder complete.
STAMP_NAME = ".livecell-kit-masks.json"
#: Bump when the masks' content or file format changes, so old caches are rebuilt.
CACHE_VERSION = 1
#: 16-bit PNGs hold instance labels, so an image may have at most this many cells.
MAX_INSTANCES = 65535


class MaskError(ValueError):
    """An annotation cannot be turned into a mask; the message names it and the fix."""


# --------------------------------------------------------------------------- RLE helpers

def _where(ann, index, source) -> str:
    """'annotation 17 (image 3) in file.json' for error messages."""
    aid = ann.get("id", f"at index {index}") if isinstance(ann, dict) else f"at index {index}"
    text = f"annotation {aid}"
    if isinstance(ann, dict) and "image_id" in ann:
        text += f" (image {ann['image_id']})"
    if source is not None:
        text += f" in {source}"
    return text


def rle_counts(rle: dict) -> list[int]:
    """The run lengths of an RLE whose ``counts`` is pycocotools' compressed string.

    Reverses pycocotools' ``rleToString`` (LEB128-like, 5 bits per character,
    counts after the third stored as differences).  Returns a list of ints; it
    is not checked here — see :func:`_check_rle`.  Raises ``ValueError`` on
    characters outside the code's range.
    """
    counts = rle["counts"]
    s = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    out: list[int] = []
    p = 0
    while p < len(s):
        x = k = 0
        more = True
        while more:
            if p >= len(s):
                raise ValueError("compressed RLE string ends in the middle of a number")
            c = s[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"byte {s[p]!r} at position {p} is not an RLE character")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)  # sign-extend negative differences
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a 0/1 (H, W) mask: ``{"size": [H, W], "counts": [...]}``.

    Runs alternate background, cell, background, … read column by column
    (Fortran order) and always start with a (possibly empty) background run —
    the same convention as pycocotools.  ``sum(counts) == H * W``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    flat = mask.ravel(order="F") != 0
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size]))).tolist() if flat.size else []
    if flat.size and flat[0]:
        counts.insert(0, 0)  # the first run is always background, here an empty one
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def _check_rle(seg: dict, height: int, width: int, where: str) -> dict:
    """Validate an RLE segmentation; return it in pycocotools' compressed form.

    pycocotools hangs or crashes on inconsistent RLEs (counts that do not add up
    to H × W), so they are checked here in Python — RLE annotations are rare.
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
            runs = rle_counts(seg)
        except ValueError as exc:
            raise MaskError(f"{where}: compressed RLE string is corrupt ({exc})") from None
        if min(runs, default=0) < 0 or sum(runs) != height * width:
            raise MaskError(f"{where}: compressed RLE decodes to runs adding up to {sum(runs)} "
                            f"pixels, not {height} x {width} = {height * width}; the string is "
                            f"corrupt or belongs to another image size")
        return {"size": [height, width],
                "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    raise MaskError(f"{where}: RLE 'counts' must be a list of ints or a compressed string, "
                    f"got {type(counts).__name__}")


def _annotation_parts(anns, height: int, width: int, source=None):
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
    with :func:`rle_counts`.  ``source`` (e.g. the JSON path) goes into error messages.
    """
    rles, owner = _annotation_parts(anns, height, width, source)
    per_ann: list[list] = [[] for _ in anns]
    for rle, i in zip(rles, owner):
        per_ann[i].append(rle)
    return [parts[0] if len(parts) == 1 else mask_utils.merge(parts) for parts in per_ann]


# --------------------------------------------------------------------------- masks

def semantic_mask(anns, height: int, width: int, source=None) -> np.ndarray:
    """Union of all cells: uint8 (height, width), 1 = cell, 0 = background.

    Pixel-identical to decoding every annotation on its own and OR-ing, but every
    polygon is rasterised in one ``frPyObjects`` call, the RLEs are merged on
    their runs (cheap) and only the union is decoded — one full-size decode per
    image instead of one per cell.  No annotations → all zeros.
    """
    rles, _ = _annotation_parts(anns, height, width, source)
    if not rles:
        return np.zeros((int(height), int(width)), np.uint8)
    union = rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=0)
    # decode returns a Fortran-ordered view; C order is what PIL and numpy users expect.
    return np.ascontiguousarray(mask_utils.decode(union))


def instance_labels(anns, height: int, width: int, source=None) -> np.ndarray:
    """Instance label image: int32 (height, width), 0 = background, k = ``anns[k - 1]``.

    Labels are 1..N in annotation order (not the annotations' ``id`` fields,
    which in LIVECell run into the millions); an annotation with no pixels in
    the image simply does not appear.  **Overlaps:** where cells overlap, the
    smaller cell (fewer pixels) gets the pixel, so small cells lying on big ones
    are not swallowed; equal areas go to the earlier annotation.  Hence
    ``instance_labels(...) > 0`` equals :func:`semantic_mask`.
    """
    height, width = int(height), int(width)
    rles = annotation_rles(anns, height, width, source)
    if not rles:
        return np.zeros((height, width), np.int32)
    owner, start, length = _foreground_runs(rles)
    n = len(rles)
    areas = np.bincount(owner, weights=length, minlength=n)
    # Paint priority: bigger cells low, smaller cells high, so smaller cells win overlaps;
    # among equal areas the earlier annotation ranks higher.
    order = np.lexsort((-np.arange(n), -areas))
    rank = np.empty(n, np.int32)
    rank[order] = np.arange(1, n + 1, dtype=np.int32)
    # Every cell pixel as a column-major index, with its annotation's rank.
    offsets = np.cumsum(length) - length
    pixels = np.arange(int(length.sum()), dtype=np.int64) + np.repeat(start - offsets, length)
    best = np.zeros(height * width, np.int32)
    np.maximum.at(best, pixels, np.repeat(rank[owner], length))  # overlaps: highest rank wins
    label_of_rank = np.zeros(n + 1, np.int32)
    label_of_rank[rank] = np.arange(1, n + 1, dtype=np.int32)
    return np.ascontiguousarray(label_of_rank[best].reshape(width, height).T)


def _foreground_runs(rles: list):
    """The cell runs of many compressed RLEs at once, without decoding to images.

    Vectorised reading of pycocotools' compressed counts (see :func:`rle_counts`
    for the format).  Returns int64 arrays ``(owner, start, length)``: for each
    run of 1s, the index of its RLE in ``rles``, its first pixel as a
    column-major (Fortran) index and its length in pixels.  Decoding each cell
    to a full H×W image instead costs one image-sized write per cell.
    """
    strings = [r["counts"].encode("ascii") if isinstance(r["counts"], str) else r["counts"]
               for r in rles]
    chars = np.frombuffer(b"".join(strings), np.uint8).astype(np.int64) - 48
    ends = np.flatnonzero((chars & 0x20) == 0)          # last character of every number
    first = np.concatenate(([0], ends[:-1] + 1))        # first character of every number
    width_chars = ends - first + 1
    digit = np.arange(chars.size) - np.repeat(first, width_chars)
    values = np.add.reduceat((chars & 0x1F) << (5 * digit), first) if chars.size else chars
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * width_chars[negative])  # sign extension
    # Which RLE each number belongs to, and its position m within that RLE.
    string_ends = np.cumsum([len(x) for x in strings])
    per_string = np.diff(np.concatenate(([0], np.searchsorted(ends, string_ends - 1, side="right"))))
    owner = np.repeat(np.arange(len(rles)), per_string)
    m = np.arange(values.size) - np.repeat(np.cumsum(per_string) - per_string, per_string)
    # Counts from the third on are stored as differences to the count two before:
    # cumulative sums over the odd positions (from m = 1) and the even ones (from m = 2).
    counts = values.copy()
    for parity in (1, 0):
        sel = np.flatnonzero((m % 2 == parity) & (m >= 1))
        counts[sel] = _segmented_cumsum(values[sel], owner[sel])
    # Run starts: cumulative sum of counts within each RLE, exclusive.
    start = _segmented_cumsum(counts, owner) - counts
    fg = (m % 2 == 1) & (counts > 0)
    return owner[fg], start[fg], counts[fg]


def _segmented_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting wherever ``segment`` (sorted ids) changes."""
    if values.size == 0:
        return values.copy()
    total = np.cumsum(values)
    new = np.flatnonzero(np.concatenate(([True], segment[1:] != segment[:-1])))
    before = (total - values)[new]
    sizes = np.diff(np.concatenate((new, [values.size])))
    return total - np.repeat(before, sizes)


def _disk(radius: float) -> np.ndarray:
    """Boolean footprint of the pixels at Euclidean distance < ``radius`` from the centre."""
    r = int(np.ceil(radius)) - 1 if float(radius).is_integer() else int(np.floor(radius))
    r = max(r, 0)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) < radius * radius


def touching_border_mask(labels: np.ndarray, distance: float = 2) -> np.ndarray:
    """Pixels where two different cells meet: uint8 (H, W), 1 = border.

    A pixel is marked when pixels of **two different cells** both lie at a
    Euclidean distance (between pixel centres, in pixels) **smaller than**
    ``distance`` from it — it may be background in the gap or a cell's own
    pixel.  With the default ``distance=2`` that is the 3 × 3 neighbourhood:
    two cells that touch get a 2-px band (the outermost pixel of each at the
    contact), and a 1-px background gap between two cells is marked; cells
    further apart than that are left alone.  ``labels``: int (H, W) instance
    labels, 0 = background, as :func:`instance_labels` returns.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D (H, W) label image, got shape {labels.shape}")
    if distance <= 0:
        raise ValueError(f"distance must be > 0 pixels, got {distance}")
    footprint = _disk(distance)
    labels = labels.astype(np.int64, copy=False)
    # Max and min over the neighbourhood, background excluded from the min: they differ
    # exactly where two different non-zero labels are within reach.
    big = int(labels.max(initial=0)) + 1  # stands for "no cell"; small, so no overflow in cval
    hi = ndimage.maximum_filter(labels, footprint=footprint, mode="constant", cval=0)
    lo = ndimage.minimum_filter(np.where(labels > 0, labels, big), footprint=footprint,
                                mode="constant", cval=big)
    return ((hi > 0) & (lo != big) & (hi != lo)).astype(np.uint8)


def border_weight_map(labels: np.ndarray, w0: float = 10.0, sigma: float = 5.0,
                      class_weights=None, cutoff: float = 5.0) -> np.ndarray:
    """The U-Net paper's loss weights: float32 (H, W).

    ``w(x) = w_c(x) + w0 · exp(−(d1(x) + d2(x))² / (2σ²))`` on background pixels,
    ``w(x) = w_c(x)`` on cell pixels (Ronneberger et al. 2015, eq. 2): d1 and d2
    are the Euclidean distances in pixels (between pixel centres) from x to the
    nearest pixel of the nearest and of the second-nearest cell, so background
    in narrow gaps between cells weighs up to ``w_c + w0``.

    ``labels``: int (H, W) instance labels, 0 = background.  ``sigma`` is in
    pixels.  ``class_weights``: ``None`` → w_c = 1 everywhere; a pair
    ``(background, cell)``; or ``"balanced"`` → inverse class frequency,
    ``N / (2 · N_class)``, so both classes weigh the same in total.

    Efficient: each cell's distance transform is computed only inside its
    bounding box grown by ``cutoff · σ`` pixels; further away the term is below
    ``w0 · exp(−cutoff² / 2)`` (≈ 4e-6 · w0 for the default 5) and is dropped.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D (H, W) label image, got shape {labels.shape}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0 pixels, got {sigma}")
    cell = labels > 0
    weights = np.ones(labels.shape, np.float32)
    if class_weights is not None:
        if isinstance(class_weights, str):
            if class_weights != "balanced":
                raise ValueError(f"class_weights must be None, (background, cell) or "
                                 f"'balanced', got {class_weights!r}")
            n_cell = int(cell.sum())
            n_bg = cell.size - n_cell
            wb = cell.size / (2 * n_bg) if n_bg else 0.0
            wc = cell.size / (2 * n_cell) if n_cell else 0.0
        else:
            wb, wc = (float(v) for v in class_weights)
        weights = np.where(cell, np.float32(wc), np.float32(wb)).astype(np.float32)
    if w0 == 0:
        return weights
    reach = int(np.ceil(cutoff * sigma))
    d1 = np.full(labels.shape, np.inf)
    d2 = np.full(labels.shape, np.inf)
    H, W = labels.shape
    for k, box in enumerate(ndimage.find_objects(labels.astype(np.int64, copy=False)), start=1):
        if box is None:
            continue
        ys, xs = box
        y0, y1 = max(ys.start - reach, 0), min(ys.stop + reach, H)
        x0, x1 = max(xs.start - reach, 0), min(xs.stop + reach, W)
        # Distance to cell k is exact inside the crop: all of cell k lies in it.
        d = ndimage.distance_transform_edt(labels[y0:y1, x0:x1] != k)
        a1, a2 = d1[y0:y1, x0:x1], d2[y0:y1, x0:x1]
        # Keep the two smallest distances seen so far, in place.
        np.minimum(a2, np.maximum(a1, d), out=a2)
        np.minimum(a1, d, out=a1)
    gap = ~cell & np.isfinite(d2)
    s = d1[gap] + d2[gap]
    weights[gap] += (w0 * np.exp(-(s * s) / (2.0 * sigma * sigma))).astype(np.float32)
    return weights


def render(kind: str, anns, height: int, width: int, source=None) -> np.ndarray:
    """The ``kind`` mask of one image: semantic / border → uint8 0/1, instance → int32."""
    if kind == "semantic":
        return semantic_mask(anns, height, width, source)
    if kind == "instance":
        return instance_labels(anns, height, width, source)
    if kind == "border":
        return touching_border_mask(instance_labels(anns, height, width, source))
    raise ValueError(f"unknown mask kind {kind!r}; choose one of {KINDS}")


# --------------------------------------------------------------------------- files

def _encode_png(mask: np.ndarray, kind: str):
    """Pillow image of a mask: 0/255 8-bit for semantic/border, 16-bit labels for instance."""
    from PIL import Image

    if kind == "instance":
        if mask.size and int(mask.max()) > MAX_INSTANCES:
            raise MaskError(f"{int(mask.max())} cells in one image do not fit a 16-bit PNG "
                            f"(at most {MAX_INSTANCES})")
        return Image.fromarray(mask.astype(np.uint16))
    return Image.fromarray((mask != 0).astype(np.uint8) * np.uint8(255))


def _save_atomic(mask: np.ndarray, kind: str, path: Path) -> None:
    """Write the PNG to a temporary file next to ``path``, then rename: never a half file."""
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as f:
        _encode_png(mask, kind).save(f, format="PNG")


def mask_file(cache_dir, file_name: str) -> Path:
    """Path of the mask of image ``file_name`` in a mask folder: ``<stem>.png``."""
    return Path(cache_dir) / (Path(file_name).stem + ".png")


def load_mask(cache_dir, file_name: str) -> np.ndarray:
    """Read the mask of image ``file_name`` from a folder made by :func:`build_mask_cache`
    or :func:`write_masks`.

    Returns uint8 (H, W) 0/1 for semantic and border masks (stored 0/255), int32
    (H, W) labels for instance masks (stored as 16-bit PNG).
    """
    from PIL import Image

    path = mask_file(cache_dir, file_name)
    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except FileNotFoundError:
        raise FileNotFoundError(f"no mask {path} for image {file_name}; build the masks with "
                                f"masks.build_mask_cache(split) or `livecell-kit masks`") from None
    if arr.dtype == np.uint8:
        return (arr > 127).astype(np.uint8)
    return arr.astype(np.int32)


_HASHES: dict[tuple, str] = {}


def annotation_hash(path) -> str:
    """First 16 hex digits of the sha256 of the file's bytes (memoised per path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()[:16]
    return _HASHES[key]


def _progress(iterable, enabled: bool, desc: str, total: int):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="image")


def _image_size(rec: dict, source) -> tuple[int, int]:
    try:
        return int(rec["height"]), int(rec["width"])
    except (KeyError, TypeError, ValueError):
        raise MaskError(f"image {rec.get('id', '?')} ({rec.get('file_name', '?')}) in {source} has "
                        f"no valid 'height'/'width'; add them to the image record") from None


def _write_all(records, anns_for, out_dir: Path, kind: str, source, progress: bool,
               desc: str) -> list[Path]:
    """Render and atomically write one mask per image record; returns the paths."""
    stems: dict[str, str] = {}
    paths = []
    for rec in _progress(records, progress, desc, len(records)):
        path = mask_file(out_dir, rec["file_name"])
        if path.name in stems:
            raise MaskError(f"images {stems[path.name]!r} and {rec['file_name']!r} in {source} "
                            f"would share the mask file {path.name}; file-name stems must be unique")
        stems[path.name] = rec["file_name"]
        h, w = _image_size(rec, source)
        _save_atomic(render(kind, anns_for(rec["id"]), h, w, source), kind, path)
        paths.append(path)
    return paths


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {KINDS}")


def build_mask_cache(split, kind: str = "semantic", cache_root=None, progress: bool = True) -> Path:
    """Write the ``kind`` masks of every image of ``split`` (a ``data.Split``) once; return the folder.

    Folder: ``cache_root/<split>-<kind>-<hash>/`` with one ``<image stem>.png``
    per image (see :func:`load_mask`), where ``<hash>`` is the first 16 hex
    digits of the sha256 of the annotation file, so editing the JSON gives a new
    folder and the masks are rebuilt; otherwise later calls return at once.
    Each file is written atomically and a stamp file is written last, so an
    interrupted build is never mistaken for a complete one (it is redone).
    ``cache_root`` defaults to ``data.default_workdir() / "masks"``.
    """
    from livecell_kit import data

    _check_kind(kind)
    source = split.annotation_file
    root = Path(cache_root) if cache_root is not None else data.default_workdir() / "masks"
    digest = annotation_hash(source)
    cache_dir = root / f"{split.name}-{kind}-{digest}"
    stamp = cache_dir / STAMP_NAME
    expected = {"version": CACHE_VERSION, "kind": kind, "annotations_sha256_16": digest,
                "images": len(split.images)}
    if atomic.read_stamp(stamp) == expected:
        return cache_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    _write_all(split.images, split.annotations_for, cache_dir, kind, source, progress,
               desc=f"{kind} masks ({split.name})")
    atomic.write_stamp(stamp, expected)
    return cache_dir


def write_masks(annotations_json, out_dir, kind: str = "semantic", progress: bool = True) -> list[Path]:
    """Write one mask per image of a COCO/LIVECell annotation file into ``out_dir``.

    Files are named after the image's file-name stem: ``<stem>.png`` — 8-bit
    0 = background / 255 = cell for ``semantic`` and ``border``, 16-bit labels
    (0 = background, k = k-th annotation of the image) for ``instance``.
    Returns the written paths in the file's image order.
    """
    from livecell_kit import data

    _check_kind(kind)
    dataset = data.load_annotations(annotations_json)
    by_image: dict = {}
    for ann in dataset["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _write_all(dataset["images"], lambda i: by_image.get(i, []), out, kind,
                      Path(annotations_json), progress, desc=f"{kind} masks")
