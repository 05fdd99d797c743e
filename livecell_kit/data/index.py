"""The annotation index: each COCO/LIVECell JSON parsed once, kept on disk, read by memory map.

:func:`open_index` returns an :class:`AnnotationIndex` for an annotation file, building it
on first use: one streaming pass (:mod:`~livecell_kit.data.coco_stream`) writes column
arrays (:mod:`~livecell_kit.data.index_writer`) into
``data.default_workdir()/index/<stem>-<sha256[:16]>-v<INDEX_VERSION>/``, checked as it
reads (the rules of :mod:`~livecell_kit.data.validation`).  Keyed by the sha256 of the
file's bytes, so an edited or replaced file gets
a new index and an unchanged one is never parsed again, in any process.

The folder is built under a temporary name and renamed into place after its done-stamp
(:func:`livecell_kit.atomic.write_stamp`) is written: a crash leaves no half index, and two
processes indexing one file at once each build their own and the first rename wins.

The index checks itself when opened, since its files can be truncated or changed after it
was built (a full disk, a sync tool, a user tidying up): the stamp records the size and
CRC-32 of every file in the folder, and :func:`open_index` compares them (sizes always,
checksums once per process and folder state) before mapping anything.  An index that does
not match is rebuilt with a one-line warning naming the file and what was wrong.  The
checksums cost a read of the index (``bench/integrity_checks.py`` measures it), once per
process; later opens compare sizes only while the files keep their mtimes.

Reading: arrays open with ``mmap_mode="r"``, so only the pages of the images asked for
are read; per-image annotations come back as COCO dicts on demand
(:meth:`AnnotationIndex.annotations_for`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from livecell_kit.progress import progress_bar
from livecell_kit import atomic
from livecell_kit.data.coco_stream import stream_coco
from livecell_kit.data.index_writer import IndexWriter, check_images, group_and_check
from livecell_kit.data.layout import FIX_DATA, default_workdir
from livecell_kit.data.validation import AnnotationError

#: Bump when the index's files or their meaning change: older indexes are then rebuilt.
INDEX_VERSION = 1
#: The done-stamp inside an index folder, written last.
STAMP_NAME = "index.json"
#: Files larger than this show a progress bar while they are indexed (when progress=None).
PROGRESS_MIN_BYTES = 64 << 20
#: s: a temporary build folder this old was left by a killed process (far longer than a build takes).
STALE_BUILD_S = 3600
_DEFAULT_CATEGORIES = [{"id": 1, "name": "cell", "supercategory": "cell"}]
_ARRAYS = ("ann_id", "image_id", "category_id", "iscrowd", "area", "bbox", "ann_polygons",
           "polygon_coords", "coords", "ann_by_image", "image_ann_offsets")

_JSON_PARTS = ("images.json", "top_level.json", "rle.json", "extras.json", "summary.json")
_PARTS = tuple(f"{name}.npy" for name in _ARRAYS) + _JSON_PARTS

_HASH_CHUNK = 1 << 20
_DIGESTS: dict[tuple, str] = {}
#: Index folders whose checksums matched in this process, keyed by their files' sizes and mtimes.
_VERIFIED: set[tuple] = set()


def sha256(path, progressbar: bool = True) -> str:
    """``"sha256:<hex>"`` of the file at ``path``, with a progress bar (bytes)."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                     unit_divisor=1024, desc=f"checking {path.name}",
                                     disable=not progressbar, leave=False) as bar:
        for block in iter(lambda: f.read(_HASH_CHUNK), b""):
            digest.update(block)
            bar.update(len(block))
    return "sha256:" + digest.hexdigest()


def file_sha256(path) -> str:
    """Hex sha256 of a file's bytes; memoised per (resolved path, size, mtime) in this process."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256(path, progressbar=False).removeprefix("sha256:")
    return _DIGESTS[key]


def index_root() -> Path:
    """Where indexes live: ``data.default_workdir() / "index"``."""
    return default_workdir() / "index"


def open_index(path, progress: bool | None = None, root=None) -> AnnotationIndex:
    """The :class:`AnnotationIndex` of the annotation file ``path``, built on first use.

    progress: show a progress bar while building; None shows one for files over
        :data:`PROGRESS_MIN_BYTES` (64 MiB).
    root: folder holding indexes, default :func:`index_root`.
    Raises FileNotFoundError when ``path`` is missing and
    :class:`~livecell_kit.data.validation.AnnotationError` when it is malformed (no
    index is left behind then).
    """
    path = Path(path)
    try:
        digest = file_sha256(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file {path} does not exist; {FIX_DATA}") from None
    root = Path(root) if root is not None else index_root()
    folder = root / f"{path.stem}-{digest[:16]}-v{INDEX_VERSION}"
    expected = {"version": INDEX_VERSION, "sha256": digest}
    problem = index_problem(folder, expected)
    if problem is not None:
        if problem != _NOT_BUILT:
            warnings.warn(f"the annotation index of {path} ({folder}) does not match what was built: "
                          f"{problem}; rebuilding it", stacklevel=2)
        if progress is None:
            progress = path.stat().st_size > PROGRESS_MIN_BYTES
        _build(path, folder, expected, progress)
    return AnnotationIndex(folder, path)


_NOT_BUILT = "not built yet"


def _file_state(path: Path) -> tuple:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns


def index_problem(folder: Path, expected: dict) -> str | None:
    """What is wrong with the index ``folder`` (None when it is complete and intact): its stamp
    names another source or version, or a file's size or CRC-32 differs from the stamp's record."""
    stamp = atomic.read_stamp(folder / STAMP_NAME)
    if stamp is None:
        return _NOT_BUILT if not folder.exists() else "its done-stamp is missing or unreadable"
    wrong = [k for k, v in expected.items() if stamp.get(k) != v]
    if wrong:
        return f"its stamp names another {' and '.join(wrong)}"
    parts = stamp.get("parts")
    problem = atomic.part_problem(folder, parts, checksums=False)
    if problem is not None:
        return problem
    state = (str(folder.resolve()),) + tuple(_file_state(folder / name) for name in sorted(parts))
    if state not in _VERIFIED:
        problem = atomic.part_problem(folder, parts)
        if problem is not None:
            return problem
        _VERIFIED.add(state)
    return None


def _build(path: Path, folder: Path, expected: dict, progress: bool) -> None:
    """Index ``path`` into a temporary folder next to ``folder``, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}.*"):  # left by a killed build, long ago
        with contextlib.suppress(OSError):  # another process may remove it first
            if time.time() - stale.stat().st_mtime > STALE_BUILD_S:
                shutil.rmtree(stale, ignore_errors=True)
    tmp = atomic.make_temp_dir(folder.parent, prefix=f".{folder.name}.")
    try:
        _write_index(path, tmp, expected, progress)
        for _ in range(3):  # each try loses only to another process installing its index
            try:
                os.rename(tmp, folder)
                return
            except OSError:  # another process finished first, or an unusable old folder is in the way
                if not folder.exists():
                    raise
                if index_problem(folder, expected) is None:
                    return
                _discard(folder)
        raise OSError(f"could not put the index of {path} in place at {folder}: other processes kept "
                      f"replacing it; rerun the same command")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename


def _discard(folder: Path) -> None:
    """Move a damaged index folder out of the way (one rename), then delete it."""
    trash = atomic.make_temp_dir(folder.parent, prefix=f".{folder.name}.old.")
    with contextlib.suppress(FileNotFoundError):  # another process moved it first
        os.replace(folder, trash / "old")
    shutil.rmtree(trash, ignore_errors=True)


def _write_index(path: Path, out: Path, expected: dict, progress: bool) -> None:
    size = path.stat().st_size
    bar = progress_bar(total=size, unit="B", unit_scale=True, desc=f"indexing {path.name}") if progress else None
    writer = IndexWriter(out, path)
    try:
        top = stream_coco(path, writer.add, on_bytes=(lambda n: bar.update(n - bar.n)) if bar else None)
        counts = writer.finish()
    finally:
        writer.abort()
        if bar is not None:
            bar.close()
    if "images" not in top.members:
        raise AnnotationError(f"{path}: missing top-level key 'images' — not a COCO annotation file; "
                              f"{FIX_DATA}")
    images = top.members.pop("images")
    image_ids = check_images(images, path)
    group_and_check(out, images, image_ids, writer.rle, counts["coords_scale"], path)
    atomic.write_json(out / "images.json", images, indent=None)
    atomic.write_json(out / "top_level.json", top.members, indent=None)
    atomic.write_json(out / "rle.json", {str(k): v for k, v in writer.rle.items()}, indent=None)
    atomic.write_json(out / "extras.json", {str(k): v for k, v in writer.extras.items()}, indent=None)
    summary = {"top_level_keys": top.keys, "annotations_form": top.form,
               "counts": {"images": len(images), **counts,
                          **{k: len(v) for k, v in top.members.items() if isinstance(v, (list, dict))}},
               "first_image": images[0] if images else None,
               "first_annotation": writer.first_annotation}
    atomic.write_json(out / "summary.json", summary, indent=1)
    atomic.write_stamp(out / STAMP_NAME, {**expected, "source": str(path), "bytes": size, **counts,
                                          "parts": atomic.part_records(out, _PARTS)})


class AnnotationIndex:
    """One annotation file, served from its index: image records, per-image annotations, summary.

    ``images`` are the file's records, all of them and as in the file; annotation rows
    are in file order.  Nothing here holds the file's polygons in Python objects: they are
    read from memory-mapped arrays when a caller asks for an image's annotations.
    """

    def __init__(self, folder: Path, source: Path):
        self.folder, self.source = Path(folder), Path(source)
        self.meta = atomic.read_stamp(self.folder / STAMP_NAME)
        # plain ndarray views of the memory maps: slicing them is faster than slicing np.memmap
        self.arrays = {name: np.asarray(np.load(self.folder / f"{name}.npy", mmap_mode="r"))
                       for name in _ARRAYS}
        self.scale = self.meta["coords_scale"]

    def _json(self, name):
        return json.loads((self.folder / name).read_text(encoding="utf-8"))

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    @cached_property
    def images(self) -> list[dict]:
        """Every image record of the file, in file order, as in the file."""
        return self._json("images.json")

    @cached_property
    def top_level(self) -> dict:
        """The file's other top-level parts (info, licenses, categories, ...), as in the file."""
        return self._json("top_level.json")

    @property
    def categories(self) -> list[dict]:
        """The file's categories; LIVECell's one ``cell`` category when it has none."""
        return self.top_level.get("categories") or _DEFAULT_CATEGORIES

    @cached_property
    def summary(self) -> dict:
        """The file's structure: ``top_level_keys`` (file order), ``annotations_form`` (list |
        dict), ``counts``, ``first_image`` and ``first_annotation`` (as in the file)."""
        return self._json("summary.json")

    @cached_property
    def _side(self) -> tuple[dict, dict]:
        rle, extras = self._json("rle.json"), self._json("extras.json")
        return {int(k): v for k, v in rle.items()}, {int(k): v for k, v in extras.items()}

    @cached_property
    def _row_of_id(self) -> dict:
        return {img["id"]: r for r, img in enumerate(self.images)}

    def row_of(self, image_id) -> int | None:
        """Position of image ``image_id`` in :attr:`images`, None when the file has no such image."""
        return self._row_of_id.get(image_id)

    @cached_property
    def first_rows(self) -> list[int]:
        """Rows of the first record of each file name, in file order (LIVECell's repeated
        names: see :mod:`~livecell_kit.data.annotations`)."""
        seen: set = set()
        rows = []
        for r, img in enumerate(self.images):
            if img["file_name"] not in seen:
                seen.add(img["file_name"])
                rows.append(r)
        return rows

    def annotation_rows(self, row: int) -> np.ndarray:
        """Annotation rows of image record ``row``, in file order."""
        offsets = self.arrays["image_ann_offsets"]
        return np.asarray(self.arrays["ann_by_image"][offsets[row]:offsets[row + 1]])

    def cell_counts(self, rows) -> np.ndarray:
        """Number of annotations of each image record in ``rows``: int64 (len(rows),)."""
        offsets = np.asarray(self.arrays["image_ann_offsets"])
        rows = np.asarray(rows, np.int64)
        return offsets[rows + 1] - offsets[rows]

    def annotation(self, k: int) -> dict:
        """Annotation row ``k`` as the COCO dict ``json.load`` gives (numbers as floats)."""
        a = self.arrays
        rle, extras = self._side
        if k in rle:
            seg = rle[k]
        else:
            coords, bounds = a["coords"], a["polygon_coords"]
            seg = [(coords[bounds[p]:bounds[p + 1]] / self.scale).tolist()
                   for p in range(int(a["ann_polygons"][k]), int(a["ann_polygons"][k + 1]))]
        ann = {"id": int(a["ann_id"][k]), "image_id": int(a["image_id"][k]),
               "category_id": int(a["category_id"][k]), "segmentation": seg,
               "area": float(a["area"][k]), "bbox": a["bbox"][k].tolist(), "iscrowd": int(a["iscrowd"][k])}
        return {**ann, **extras[k]} if k in extras else ann

    def annotations_for(self, image_id) -> list[dict]:
        """Annotations of image ``image_id`` as COCO dicts, in file order; [] when it has none."""
        row = self.row_of(image_id)
        return [] if row is None else [self.annotation(int(k)) for k in self.annotation_rows(row)]

    def areas(self, row: int) -> np.ndarray:
        """Areas (px², float64) of the annotations of image record ``row``, in file order."""
        return np.asarray(self.arrays["area"])[self.annotation_rows(row)]

    def coco_dataset(self, rows) -> dict:
        """A pycocotools-ready dict of image records ``rows`` and their annotations only."""
        return {**{k: v for k, v in self.top_level.items() if k != "categories"},
                "categories": self.categories,
                "images": [self.images[r] for r in rows],
                "annotations": [self.annotation(int(k)) for r in rows for k in self.annotation_rows(r)]}
