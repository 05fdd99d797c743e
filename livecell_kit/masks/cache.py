"""Masks on disk: one PNG per image, in a cache folder keyed by the annotation file.

:func:`build_mask_cache` writes the masks of the images of a split — or of a subset of
one — into a folder named after the annotation file's content and the mask kind, one
PNG per image, each written atomically, so a later call for a larger image set (the full
split after the seed subset) renders only the images it lacks.  :func:`load_mask` reads
one back; :func:`write_masks` writes the masks of any annotation file (the
``livecell-kit masks`` command).  :func:`render` makes the mask of one kind.

The cache checks itself rather than trusting its stamp, since a mask can be truncated,
deleted or replaced after it was written (a full disk, a sync tool, a user tidying up, a
border mask copied over a semantic one):

* every mask the cache writes gets a line ``<file>\t<bytes>\t<CRC-32>`` appended to the
  folder's :data:`SUMS_NAME` (one ``O_APPEND`` write, so builders running at once never
  mix their lines; the last line of a file wins);
* :func:`build_mask_cache` checks every mask it would reuse from its header — a PNG of
  the record's size and the kind's bit depth that ends with its IEND chunk
  (:func:`mask_is_intact`) — and its recorded size and CRC-32, and renders again the ones
  that fail (a folder in a mask's place is removed: the cache is derived);
* :func:`read_mask_file` (used by :func:`load_mask` and the training pipeline) decodes
  the mask, checks its size and, in a cache folder, its checksum; a bad mask of a cache
  folder is rebuilt on the spot, from the annotation file the folder's stamp names.

The checksum costs a small fraction of decoding the mask (``bench/integrity_checks.py``).
"""
from __future__ import annotations

import io
import os
import shutil
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from livecell_kit.progress import progress_bar
from livecell_kit import atomic
from livecell_kit.data import AnnotationError, default_workdir, file_sha256, load_annotations, open_index
from livecell_kit.data.image_check import png_is_complete
from livecell_kit.masks.borders import touching_border_mask
from livecell_kit.masks.cells import cell_labels
from livecell_kit.masks.rasterise import instance_labels, semantic_mask
from livecell_kit.masks.segmentations import MaskError

#: Mask kinds the cache and :func:`write_masks` know.
KINDS = ("semantic", "instance", "border", "cells")
#: Written into a cache folder before its first mask: which masks (version, kind, annotation
#: file) the folder holds.  A folder with another version is emptied and filled again.
STAMP_NAME = ".livecell-kit-masks.json"
#: The cache's record of what it wrote: one ``<file>\t<bytes>\t<CRC-32>`` line per mask written.
SUMS_NAME = ".livecell-kit-masks.sums"
#: Bump when the masks' content or file format changes, so old caches are rebuilt.
CACHE_VERSION = 1
#: 16-bit PNGs hold instance labels, so an image may have at most this many cells.
MAX_INSTANCES = 65535
#: Pillow's mode of each kind's PNG: 8-bit grey 0/255, or 16-bit labels.
_PNG_MODES = {"semantic": ("L",), "border": ("L",), "instance": ("I;16", "I"), "cells": ("I;16", "I")}
#: Kinds stored as 16-bit label images.
_LABEL_KINDS = ("instance", "cells")


class MaskFileError(OSError):
    """A mask file is missing or damaged and cannot be rebuilt here; the message names it and the fix."""


def render(kind: str, anns, height: int, width: int, source=None) -> np.ndarray:
    """The ``kind`` mask of one image: semantic / border → uint8 0/1, instance / cells → int32
    (cells: the non-overlapping labels of :func:`~livecell_kit.masks.cell_labels`)."""
    if kind == "semantic":
        return semantic_mask(anns, height, width, source)
    if kind == "instance":
        return instance_labels(anns, height, width, source)
    if kind == "cells":
        return cell_labels(anns, height, width, source)
    if kind == "border":
        return touching_border_mask(instance_labels(anns, height, width, source))
    raise ValueError(f"unknown mask kind {kind!r}; choose one of {KINDS}")


def _encode_png(mask: np.ndarray, kind: str):
    """Pillow image of a mask: 0/255 8-bit for semantic/border, 16-bit labels for instance/cells."""
    if kind in _LABEL_KINDS:
        if mask.size and int(mask.max()) > MAX_INSTANCES:
            raise MaskError(f"{int(mask.max())} cells in one image do not fit a 16-bit PNG "
                            f"(at most {MAX_INSTANCES})")
        return Image.fromarray(mask.astype(np.uint16))
    return Image.fromarray((mask != 0).astype(np.uint8) * np.uint8(255))


def _save_atomic(mask: np.ndarray, kind: str, path: Path) -> bytes:
    """Write the PNG to a temporary file next to ``path``, then rename: never a half file.
    Returns the PNG's bytes."""
    buf = io.BytesIO()
    _encode_png(mask, kind).save(buf, format="PNG")
    atomic.write_bytes(path, buf.getvalue())
    return buf.getvalue()


def _save_cached(mask: np.ndarray, kind: str, path: Path) -> None:
    """Write a mask of a cache folder and record its size and checksum in :data:`SUMS_NAME`.

    A folder in the mask's place is removed first: everything in a cache folder is derived.
    """
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    payload = _save_atomic(mask, kind, path)
    line = f"{path.name}\t{len(payload)}\t{zlib.crc32(payload)}\n".encode()
    fd = os.open(path.parent / SUMS_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)  # one O_APPEND write: lines of builders running at once never interleave
    finally:
        os.close(fd)


_SUMS: dict[tuple, dict] = {}


def recorded_sums(cache_dir) -> dict[str, tuple[int, int]]:
    """``{mask file name: (bytes, CRC-32)}`` as the cache recorded them (the last record wins);
    {} when the folder has no record.  Parsed once per state of the record file."""
    path = Path(cache_dir) / SUMS_NAME
    try:
        st = path.stat()
    except OSError:
        return {}
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    sums = _SUMS.get(key)
    if sums is None:
        sums = {}
        for line in path.read_bytes().decode("utf-8", "replace").splitlines():
            name, _, rest = line.partition("\t")
            size, _, crc = rest.partition("\t")
            if size.isdigit() and crc.isdigit():  # a torn line (a crash mid-write) is no record
                sums[name] = (int(size), int(crc))
        _SUMS.clear()  # one cache folder at a time is the common case
        _SUMS[key] = sums
    return sums


def _content_problem(path: Path, payload: bytes) -> str | None:
    """Whether the bytes of the cached mask ``path`` are the ones the cache recorded for it."""
    recorded = recorded_sums(path.parent).get(path.name)
    if recorded is None:
        return "has no recorded checksum (written by an older livecell-kit or an interrupted build)"
    if recorded != (len(payload), zlib.crc32(payload)):
        return "differs from the mask the cache wrote (checksum mismatch: replaced or edited)"
    return None


def mask_file(cache_dir, file_name: str) -> Path:
    """Path of the mask of image ``file_name`` in a mask folder: ``<stem>.png``."""
    return Path(cache_dir) / (Path(file_name).stem + ".png")


def load_mask(cache_dir, file_name: str) -> np.ndarray:
    """Read the mask of image ``file_name`` from a folder made by :func:`build_mask_cache`
    or :func:`write_masks` (checked, and rebuilt when damaged: :func:`read_mask_file`).

    Returns uint8 (H, W) 0/1 for semantic and border masks (stored 0/255), int32
    (H, W) labels for instance and cells masks (stored as 16-bit PNG).
    """
    arr = read_mask_file(mask_file(cache_dir, file_name), image=file_name)
    if arr.dtype == np.uint8:
        return (arr > 127).astype(np.uint8)
    return arr.astype(np.int32)


def mask_is_intact(path, height: int, width: int, kind: str) -> bool:
    """Cheap check of a stored mask, from its header and its last bytes: a PNG of
    ``height`` x ``width`` px in ``kind``'s bit depth that ends with its IEND chunk."""
    try:
        with Image.open(path) as im:
            ok = im.format == "PNG" and im.size == (width, height) and im.mode in _PNG_MODES[kind]
        return ok and png_is_complete(path)
    except (OSError, ValueError, SyntaxError):  # missing, unreadable, not a PNG
        return False


def _decode_png(path: Path, payload: bytes | None = None) -> np.ndarray:
    with Image.open(path if payload is None else io.BytesIO(payload)) as im:
        return np.asarray(im)  # decodes now: a truncated or corrupt file raises here


def _is_cache(folder: Path) -> bool:
    return (folder / STAMP_NAME).is_file()


def read_mask_file(path, shape=None, image=None) -> np.ndarray:
    """The stored array of one mask PNG, decoded and checked: uint8 (H, W) 0/255
    (semantic, border) or uint16 (H, W) labels (instance, cells).

    shape: (H, W) the mask must have (its image's), or None.  image: the image it belongs
    to, named in errors.  A mask of a :func:`build_mask_cache` folder that is missing,
    undecodable or of the wrong size is rendered again from the annotation file named in
    the folder's stamp (with a warning); anywhere else — or when that file is gone or
    changed — :class:`MaskFileError` (FileNotFoundError for a missing one) names the
    file and the fix.
    """
    path = Path(path)
    cached = _is_cache(path.parent)
    try:
        payload = path.read_bytes()
        arr = _decode_png(path, payload)
    except FileNotFoundError:
        problem = "does not exist"
    except IsADirectoryError:
        problem = "is a folder, not a PNG"
    except (OSError, ValueError, SyntaxError) as exc:
        problem = f"cannot be decoded ({type(exc).__name__}: {str(exc)[:120]})"
    else:
        problem = None if shape is None or arr.shape == tuple(shape) else \
            f"is {arr.shape[1]} x {arr.shape[0]} px, not {shape[1]} x {shape[0]}"
        if problem is None and cached:
            problem = _content_problem(path, payload)
        if problem is None:
            return arr
    for_image = f" (image {image})" if image is not None else ""
    source = _rebuild(path)
    if source is None:
        missing = problem == "does not exist"
        fix = (f"{'run' if missing else 'delete it and run'} again: the cache draws missing masks "
               f"(masks.build_mask_cache, run by every `livecell-kit train`)"
               if cached else
               "write the masks again (`livecell-kit masks --annotations JSON --out DIR`) or build "
               "them with masks.build_mask_cache(split)")
        error = FileNotFoundError if missing else MaskFileError
        raise error(f"mask {path}{for_image} {problem}; {fix}")
    warnings.warn(f"mask {path}{for_image} {problem}; rebuilt it from {source}", stacklevel=2)
    arr = _decode_png(path)
    if shape is not None and arr.shape != tuple(shape):
        raise MaskFileError(f"mask {path} is {arr.shape[1]} x {arr.shape[0]} px as {source} declares, "
                            f"but its image{for_image} is {shape[1]} x {shape[0]}: the image file was "
                            f"padded, cropped or replaced; check the images with "
                            f"data.check_image_files(split) and restore the original frame")
    return arr


def _rebuild(path: Path) -> Path | None:
    """Render the mask at ``path`` again when its folder is a cache whose stamp names an
    annotation file that still has the content the cache was made from; returns that file."""
    stamp = atomic.read_stamp(path.parent / STAMP_NAME) or {}
    if stamp.get("version") != CACHE_VERSION or stamp.get("kind") not in KINDS or "annotation_file" not in stamp:
        return None
    source = Path(stamp["annotation_file"])
    try:
        index = open_index(source, progress=False)
    except (OSError, AnnotationError):
        return None
    if index.sha256[:16] != stamp.get("annotations_sha256_16"):
        return None
    for row in index.first_rows:
        rec = index.images[row]
        if mask_file("", rec["file_name"]).name == path.name:
            h, w = _image_size(rec, source)
            _save_cached(render(stamp["kind"], index.annotations_for(rec["id"]), h, w, source),
                         stamp["kind"], path)
            return source
    return None


def annotation_hash(path) -> str:
    """First 16 hex digits of the sha256 of the file's bytes (memoised per path, size, mtime)."""
    return file_sha256(path)[:16]


def _progress(iterable, enabled: bool, desc: str, total: int):
    if not enabled:
        return iterable
    return progress_bar(iterable, desc=desc, total=total, unit="image")


def _image_size(rec: dict, source) -> tuple[int, int]:
    try:
        return int(rec["height"]), int(rec["width"])
    except (KeyError, TypeError, ValueError):
        raise MaskError(f"image {rec.get('id', '?')} ({rec.get('file_name', '?')}) in {source} has "
                        f"no valid 'height'/'width'; add them to the image record") from None


def _check_stems(records, source) -> None:
    """Masks are named after the image's file-name stem: two records must not share one."""
    stems: dict[str, str] = {}
    for rec in records:
        name = mask_file("", rec["file_name"]).name
        if name in stems:
            raise MaskError(f"images {stems[name]!r} and {rec['file_name']!r} in {source} "
                            f"would share the mask file {name}; file-name stems must be unique")
        stems[name] = rec["file_name"]


def _write_all(records, anns_for, out_dir: Path, kind: str, source, progress: bool,
               desc: str, save=_save_atomic) -> list[Path]:
    """Render and atomically write (with ``save``) one mask per image record; returns the paths."""
    paths = []
    for rec in _progress(records, progress, desc, len(records)):
        path = mask_file(out_dir, rec["file_name"])
        h, w = _image_size(rec, source)
        save(render(kind, anns_for(rec["id"]), h, w, source), kind, path)
        paths.append(path)
    return paths


def _reuse_problem(path: Path, rec: dict, kind: str, source) -> str | None:
    """Why the cached mask ``path`` of image record ``rec`` cannot be reused, or None."""
    if path.is_dir() and not path.is_symlink():
        return "a folder in a mask's place (removed)"
    if not mask_is_intact(path, *_image_size(rec, source), kind):
        return None if not path.exists() else "truncated, wrong size or not a PNG"
    try:
        payload = path.read_bytes()
    except OSError:
        return "unreadable"
    return _content_problem(path, payload)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown mask kind {kind!r}; choose one of {KINDS}")


def build_mask_cache(split, kind: str = "semantic", cache_root=None, progress: bool = True) -> Path:
    """Write the ``kind`` masks of the images of ``split`` (a ``data.Split`` or subset) that the
    cache lacks; return the folder.

    Folder: ``cache_root/<split>-<kind>-<hash>/`` with one ``<image stem>.png`` per image
    (see :func:`load_mask`), where ``<hash>`` is the first 16 hex digits of the sha256 of
    the annotation file: editing the JSON gives a new folder.  The folder is shared by
    every image set of that file, so the seed subset and the full split reuse each
    other's masks.  Each PNG is written atomically (an interrupted build leaves only
    complete ones, and the next call renders the rest); each one reused is checked first
    (:func:`mask_is_intact`) and drawn again when missing or damaged.  ``cache_root`` defaults to
    ``data.default_workdir() / "masks"``.
    """
    _check_kind(kind)
    source = split.annotation_file
    root = Path(cache_root) if cache_root is not None else default_workdir() / "masks"
    digest = split.index.sha256[:16]
    cache_dir = root / f"{split.name}-{kind}-{digest}"
    stamp = cache_dir / STAMP_NAME
    expected = {"version": CACHE_VERSION, "kind": kind, "annotations_sha256_16": digest}
    found = atomic.read_stamp(stamp) or {}
    annotation_file = str(Path(source).resolve())  # read_mask_file rebuilds damaged masks from it
    if {k: found.get(k) for k in expected} != expected:
        cache_dir.mkdir(parents=True, exist_ok=True)
        for old in [*cache_dir.glob("*.png"), cache_dir / SUMS_NAME]:  # another cache version's, if any
            if old.is_file():
                old.unlink()
    if found != {**found, **expected, "annotation_file": annotation_file}:
        atomic.write_stamp(stamp, {**expected, "annotation_file": annotation_file})
    atomic.sweep_temp_files(cache_dir)  # left by a build that was killed mid-write
    _check_stems(split.images, source)
    todo, problems = [], {}
    for rec in split.images:
        path = mask_file(cache_dir, rec["file_name"])
        problem = _reuse_problem(path, rec, kind, source)
        if problem is not None or not path.is_file():
            todo.append(rec)
        if problem is not None:
            problems.setdefault(problem, []).append(path.name)
    for problem, names in problems.items():
        warnings.warn(f"{len(names)} damaged mask(s) in {cache_dir} (e.g. {names[0]}: {problem}) "
                      f"are drawn again", stacklevel=2)
    _write_all(todo, split.annotations_for, cache_dir, kind, source, progress,
               desc=f"{kind} masks ({split.name})", save=_save_cached)
    return cache_dir


def write_masks(annotations_json, out_dir, kind: str = "semantic", progress: bool = True) -> list[Path]:
    """Write one mask per image of a COCO/LIVECell annotation file into ``out_dir``.

    Files are named after the image's file-name stem: ``<stem>.png`` — 8-bit
    0 = background / 255 = cell for ``semantic`` and ``border``, 16-bit labels
    (0 = background, k = k-th annotation of the image) for ``instance`` and ``cells``.
    A file name listed by several image records gets the first record's masks.
    Returns the written paths in the file's image order.
    """
    _check_kind(kind)
    index = load_annotations(annotations_json)
    records = [index.images[r] for r in index.first_rows]
    _check_stems(records, annotations_json)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic.sweep_temp_files(out)  # left by a run that was killed mid-write
    for rec in records:
        if mask_file(out, rec["file_name"]).is_dir():
            raise MaskError(f"{mask_file(out, rec['file_name'])} is a folder, where the mask of "
                            f"{rec['file_name']} goes; move or rename that folder, or choose another --out")
    return _write_all(records, index.annotations_for, out, kind, Path(annotations_json), progress,
                      desc=f"{kind} masks")
