"""Run-length encodings (RLE) as COCO stores masks, read and written with numpy.

A mask of ``H`` rows and ``W`` columns is read **column by column** (Fortran
order) as alternating runs of 0s and 1s that always start with a (possibly
empty) run of 0s; ``counts`` lists the runs' lengths in pixels and adds up to
``H * W``.  pycocotools stores ``counts`` as a compact string (5 bits per
character, counts after the second stored as differences to the count two
before) and has no call that returns the plain list, so this module reads the
string itself:

* :func:`uncompressed_rle` — a 0/1 mask → ``{"size": [H, W], "counts": [...]}``;
* :func:`compressed_counts` — many compressed strings → their counts, at once;
* :func:`foreground_runs` — many compressed RLEs → the runs of 1s (owner, start, length).

Why own code beside pycocotools' ``decode``: :func:`foreground_runs` lets
:func:`livecell_kit.masks.instance_labels` paint all cells of an image without
decoding each cell to a full H × W image (about 12× faster on real frames, see
:func:`livecell_kit.masks.instance_labels` and ``bench/masks.py``), and
:func:`compressed_counts` checks a string before pycocotools reads it
(pycocotools does not check them and can hang on a corrupt one).
"""
from __future__ import annotations

import numpy as np

#: pycocotools writes at most 7 characters per count (35 bits hold any uint32 difference).
_MAX_CHARS_PER_COUNT = 7


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


def _as_bytes(counts) -> bytes:
    return counts.encode("ascii") if isinstance(counts, str) else bytes(counts)


def compressed_counts(strings: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The run lengths of many pycocotools compressed ``counts`` strings, in one pass.

    ``strings``: str or bytes, as pycocotools' ``encode``/``frPyObjects``/``merge``
    write them (JSON files hold str).  Returns three int64 arrays of equal
    length, one entry per run: ``counts`` (the run length in pixels),
    ``owner`` (the index of its string in ``strings``) and ``position`` (its
    index within that string's counts; odd positions are runs of 1s).  Raises
    ``ValueError`` on characters outside the code, numbers longer than
    pycocotools writes, or a string that ends in the middle of a number; the
    counts are not checked against an image size here.
    """
    encoded = [_as_bytes(s) for s in strings]
    chars = np.frombuffer(b"".join(encoded), np.uint8).astype(np.int64) - 48
    if chars.size and (chars.min() < 0 or chars.max() > 63):
        p = int(np.flatnonzero((chars < 0) | (chars > 63))[0])
        raise ValueError(f"byte {chr(chars[p] + 48)!r} is not an RLE character")
    string_ends = np.cumsum([len(s) for s in encoded], dtype=np.int64)
    last = string_ends[string_ends > 0] - 1
    if last.size and (chars[last] & 0x20).any():
        raise ValueError("compressed RLE string ends in the middle of a number")
    ends = np.flatnonzero((chars & 0x20) == 0)          # last character of every number
    first = np.concatenate(([0], ends[:-1] + 1))        # first character of every number
    width_chars = ends - first + 1
    if width_chars.size and width_chars.max() > _MAX_CHARS_PER_COUNT:
        raise ValueError(f"a number spans {int(width_chars.max())} characters "
                         f"(pycocotools writes at most {_MAX_CHARS_PER_COUNT})")
    digit = np.arange(chars.size) - np.repeat(first, width_chars)
    values = np.add.reduceat((chars & 0x1F) << (5 * digit), first) if chars.size else chars
    negative = (chars[ends] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * width_chars[negative])  # sign extension
    # Which string each number belongs to, and its position within that string.
    per_string = np.diff(np.concatenate(([0], np.searchsorted(ends, string_ends - 1, side="right"))))
    owner = np.repeat(np.arange(len(encoded)), per_string)
    position = np.arange(values.size) - np.repeat(np.cumsum(per_string) - per_string, per_string)
    # Counts from the third on are stored as differences to the count two before:
    # cumulative sums over the odd positions (from 1) and the even ones (from 2).
    counts = values.copy()
    for parity in (1, 0):
        sel = np.flatnonzero((position % 2 == parity) & (position >= 1))
        counts[sel] = _segmented_cumsum(values[sel], owner[sel])
    return counts, owner, position


def foreground_runs(rles: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The runs of 1s of many compressed RLEs at once, without decoding to images.

    ``rles``: pycocotools RLE dicts of one image size with compressed ``counts``.
    Returns int64 arrays ``(owner, start, length)``: for each run of 1s, the
    index of its RLE in ``rles``, its first pixel as a column-major (Fortran)
    index and its length in pixels.
    """
    counts, owner, position = compressed_counts([r["counts"] for r in rles])
    start = _segmented_cumsum(counts, owner) - counts  # exclusive cumulative sum per RLE
    cell = (position % 2 == 1) & (counts > 0)
    return owner[cell], start[cell], counts[cell]


def _segmented_cumsum(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting wherever ``segment`` (sorted ids) changes."""
    if values.size == 0:
        return values.copy()
    total = np.cumsum(values)
    new = np.flatnonzero(np.concatenate(([True], segment[1:] != segment[:-1])))
    before = (total - values)[new]
    sizes = np.diff(np.concatenate((new, [values.size])))
    return total - np.repeat(before, sizes)
