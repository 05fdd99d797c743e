"""LIVECell on disk: where files live, how to read them, how to fetch them.

One layout for everything (the real data set and :mod:`livecell_kit.sample`)::

    root/
      images/livecell_train_val_images/<file_name>              (official images.zip: flat)
      images/livecell_train_val_images/<CellType>/<file_name>   (images_per_celltype.zip)
      images/livecell_test_images/...                           (same two forms)
      annotations/livecell_coco_{train,val,test}.json

File names read ``<CellType>_Phase_<Well>_<Loc>_<Time>_<Crop>.tif``.  Both image
layouts are read; the rule (:meth:`Split.image_path`): the per-type sub-folder when the
file is there, else the flat folder.  Images are 8-bit grayscale phase-contrast
frames of 520 rows x 704 columns, LZW-compressed TIFF as shipped
(:mod:`livecell_kit.images` reads them).  Annotations are COCO instance polygons in
pixel xy (x = column, y = row); the official files store ``annotations`` as a list,
the Kaggle copies as a dict keyed by id — both load.

LIVECell's known quirks, each handled by a documented rule:

* a file listed by more than one image record (65 names in the train JSON with two
  ids, LIVECell issue #26; test images annotated twice, issue #14): the **first**
  record in file order is kept with its annotations, later ones are dropped and
  counted (``dataset["kit_duplicate_records"]``, and a warning);
* images in both the train and the val JSON (issue #26): :func:`load_split` drops
  them from train, so no subset ever trains on a validation image;
* nearly unannotated images (issue #21): :func:`nearly_unannotated` lists them.

Reading: :func:`load_split`, :func:`load_annotations`, :func:`to_coco`;
:func:`read_image` is :func:`livecell_kit.images.read_image`, re-exported here.
Fetching: :func:`download_livecell` (pooch with sha256, retries, resumable
transfers and atomic writes), :func:`safe_extract_zip`.
Subsets: :func:`select_subset`, :func:`write_manifest`, :func:`read_manifest`,
:func:`subset_dataset`.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from livecell_kit import atomic
from livecell_kit.images import ImageReadError, read_image  # noqa: F401  (data.read_image)

CELL_TYPES = ("A172", "BT474", "BV2", "Huh7", "MCF7", "SHSY5Y", "SkBr3", "SKOV3")
SPLITS = ("train", "val", "test")
IMAGE_HEIGHT, IMAGE_WIDTH = 520, 704

_FIX_DATA = ("recreate it with `livecell-kit sample --out DIR` or fetch it again with "
             "`livecell-kit download --out DIR`")


# --------------------------------------------------------------------------- paths

def default_workdir() -> Path:
    """Folder for artifacts the notebooks share: env ``LIVECELL_KIT_WORKDIR``, else ~/.cache/livecell-kit."""
    env = os.environ.get("LIVECELL_KIT_WORKDIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "livecell-kit"


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    return split


def split_image_dir(root, split: str) -> Path:
    """Image folder of ``split``: train and val share ``livecell_train_val_images``; test has its own."""
    sub = "livecell_test_images" if _check_split(split) == "test" else "livecell_train_val_images"
    return Path(root) / "images" / sub


def annotation_path(root, split: str) -> Path:
    """``root/annotations/livecell_coco_{split}.json``."""
    return Path(root) / "annotations" / f"livecell_coco_{_check_split(split)}.json"


_CELL_TYPE_BY_LOWER = {t.lower(): t for t in CELL_TYPES}


def cell_type_of(file_name: str) -> str:
    """Cell type from a LIVECell file name, e.g. ``"A172_Phase_C7_1_00d00h00m_1.tif"`` -> ``"A172"``.

    The type is the prefix before ``"_Phase"``, returned in :data:`CELL_TYPES` spelling.
    """
    name = PurePosixPath(str(file_name).replace("\\", "/")).name
    prefix, sep, _ = name.partition("_Phase")
    canonical = _CELL_TYPE_BY_LOWER.get(prefix.lower()) if sep else None
    if canonical is None:
        raise ValueError(f"{file_name!r} is not a LIVECell file name: expected "
                         f"'<CellType>_Phase_...' with CellType one of {CELL_TYPES}")
    return canonical


# --------------------------------------------------------------------------- annotations

class AnnotationError(ValueError):
    """An annotation file is malformed; the message names the file, the id and the fix."""


_ANN_FIX = ("fix or drop that entry, or replace the file: " + _FIX_DATA)
_IMAGE_KEYS = ("id", "file_name", "width", "height")
_ANN_KEYS = ("id", "image_id", "category_id", "segmentation")
_TOLERANCE = 1.0  # px: LIVECell polygons trace pixel edges, so x == width is legitimate

# (resolved path, size, mtime_ns, validate) -> normalised dataset.  Few entries: the
# LIVECell train file alone takes GBs in memory once parsed.
_ANNOTATION_CACHE: dict[tuple, dict] = {}
_ANNOTATION_CACHE_MAX = 4


def clear_annotation_cache() -> None:
    """Forget memoised annotation files (e.g. after editing one in place within the same second)."""
    _ANNOTATION_CACHE.clear()


def load_annotations(path, validate: bool = True) -> dict:
    """Read a COCO/LIVECell annotation file into a normalised, validated dict.

    Returns ``{"images": [...], "annotations": [...], "categories": [...], ...}``;
    ``annotations`` is a list as in the official files, also when a Kaggle copy stores a
    dict keyed by id.  A file name listed by several image records keeps its first
    record (see the module docstring); the dropped ones are listed under
    ``"kit_duplicate_records"``.
    Missing ``iscrowd``/``area``/``bbox`` are filled in (0 / polygon area in px² /
    [x, y, w, h] in px).  Memoised per (resolved path, size, mtime): the big train
    file is parsed once per process.  Treat the result as read-only — it is shared.
    ``validate=False`` skips the per-annotation checks (faster, for trusted files).
    """
    path = Path(path)
    try:
        resolved = path.resolve(strict=True)
        stat = resolved.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"annotation file {path} does not exist; {_FIX_DATA}") from None
    key = (str(resolved), stat.st_size, stat.st_mtime_ns, bool(validate))
    cached = _ANNOTATION_CACHE.get(key)
    if cached is not None:
        return cached
    try:
        with open(resolved, "rb") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path} is not valid JSON ({exc}); the file is probably truncated "
                              f"or corrupt: {_FIX_DATA}") from None
    dataset = _normalise(raw, path)
    if validate:
        validate_annotations(dataset, path)
    _drop_duplicate_records(dataset, path)
    # Drop stale versions of the same file and keep the cache small.
    for old in [k for k in _ANNOTATION_CACHE if k[0] == key[0]]:
        del _ANNOTATION_CACHE[old]
    while len(_ANNOTATION_CACHE) >= _ANNOTATION_CACHE_MAX:
        del _ANNOTATION_CACHE[next(iter(_ANNOTATION_CACHE))]
    _ANNOTATION_CACHE[key] = dataset
    return dataset


def _normalise(raw, path) -> dict:
    """LIVECell dict-of-annotations -> COCO list; check the top-level keys."""
    if not isinstance(raw, dict):
        raise AnnotationError(f"{path}: top level is a {type(raw).__name__}, expected a COCO "
                              f"object with 'images' and 'annotations'; {_FIX_DATA}")
    for key in ("images", "annotations"):
        if key not in raw:
            raise AnnotationError(f"{path}: missing top-level key {key!r} — not a COCO "
                                  f"annotation file; {_FIX_DATA}")
    dataset = dict(raw)
    anns = raw["annotations"]
    if isinstance(anns, dict):
        # LIVECell stores {"<id>": {...}}; pycocotools wants a list ("string indices must be integers").
        normalised = []
        for key, ann in anns.items():
            if isinstance(ann, dict) and "id" not in ann:
                ann = {**ann, "id": _int_key(key, path)}
            normalised.append(ann)
        anns = normalised
    if not isinstance(anns, list) or not isinstance(raw["images"], list):
        raise AnnotationError(f"{path}: 'images' must be a list and 'annotations' a list or a "
                              f"dict keyed by id; {_FIX_DATA}")
    dataset["annotations"] = anns
    if not dataset.get("categories"):
        dataset["categories"] = [{"id": 1, "name": "cell", "supercategory": "cell"}]
    return dataset


def _drop_duplicate_records(dataset: dict, path) -> None:
    """Keep the first image record per file name, in file order; drop later ones and their cells.

    Masks, manifests and predictions are keyed by file name, and a file annotated twice
    (LIVECell issues #14, #26) would otherwise be drawn, trained and scored twice.
    Records the dropped ones in ``dataset["kit_duplicate_records"]`` and warns once.
    """
    first_id: dict = {}
    kept, dropped = [], []
    for img in dataset["images"]:
        name = img.get("file_name")
        if name in first_id:
            dropped.append({"file_name": name, "kept_id": first_id[name], "dropped_id": img.get("id")})
        else:
            first_id[name] = img.get("id")
            kept.append(img)
    dataset["kit_duplicate_records"] = dropped
    if not dropped:
        return
    gone = {d["dropped_id"] for d in dropped} - set(first_id.values())
    n_anns = len(dataset["annotations"])
    dataset["images"] = kept
    dataset["annotations"] = [a for a in dataset["annotations"] if a.get("image_id") not in gone]
    warnings.warn(f"{path}: {len(dropped)} file name(s) appear in more than one image record "
                  f"(e.g. {dropped[0]['file_name']}, ids {dropped[0]['kept_id']} and "
                  f"{dropped[0]['dropped_id']}); kept the first record of each and dropped "
                  f"{len(dropped)} record(s) with {n_anns - len(dataset['annotations'])} annotations",
                  stacklevel=3)


def _int_key(key, path):
    try:
        return int(key)
    except ValueError:
        raise AnnotationError(f"{path}: annotation key {key!r} is not an integer id and the "
                              f"entry has no 'id'; {_ANN_FIX}") from None


def validate_annotations(dataset: dict, path="<dataset>") -> None:
    """Raise :class:`AnnotationError` at the first malformed image or annotation.

    Checks: required keys, unique ids, annotations pointing at known images, and
    segmentations — polygons must be flat ``[x0, y0, x1, y1, ...]`` lists with an even
    number (>= 6) of finite coordinates inside the image (±1 px); RLE dicts must have
    ``counts`` (list or string) and ``size == [height, width]`` of their image.
    Fills ``iscrowd``/``area``/``bbox`` in place where missing.
    """
    sizes: dict = {}
    for i, img in enumerate(dataset["images"]):
        if not isinstance(img, dict):
            raise AnnotationError(f"{path}: images[{i}] is not an object; {_ANN_FIX}")
        missing = [k for k in _IMAGE_KEYS if k not in img]
        if missing:
            raise AnnotationError(f"{path}: image id {img.get('id', f'at index {i}')} lacks "
                                  f"{missing}; {_ANN_FIX}")
        if img["id"] in sizes:
            raise AnnotationError(f"{path}: duplicate image id {img['id']}; {_ANN_FIX}")
        sizes[img["id"]] = (img["height"], img["width"])
    seen: set = set()
    # Hot loop (about a million cells in LIVECell's train file): messages are built
    # only on failure.
    for i, ann in enumerate(dataset["annotations"]):
        if not isinstance(ann, dict):
            raise AnnotationError(f"{path}: annotation at index {i} is not an object; {_ANN_FIX}")
        aid = ann.get("id", f"at index {i}")
        if not ("id" in ann and "image_id" in ann and "category_id" in ann
                and "segmentation" in ann):
            missing = [k for k in _ANN_KEYS if k not in ann]
            raise AnnotationError(f"{path}: annotation id {aid} lacks {missing}; {_ANN_FIX}")
        if aid in seen:
            raise AnnotationError(f"{path}: annotation id {aid} is a duplicate id; {_ANN_FIX}")
        seen.add(aid)
        size = sizes.get(ann["image_id"])
        if size is None:
            raise AnnotationError(f"{path}: annotation id {aid} points to image id "
                                  f"{ann['image_id']}, which is not in 'images'; {_ANN_FIX}")
        problem = _segmentation_problem(ann["segmentation"], size)
        if problem:
            raise AnnotationError(f"{path}: annotation id {aid}: {problem}; {_ANN_FIX}")
        if "iscrowd" not in ann:
            ann["iscrowd"] = 0
        if "bbox" not in ann or "area" not in ann:
            _fill_geometry(ann)


def _segmentation_problem(seg, size) -> str | None:
    """What is wrong with one segmentation for an image of ``size`` = (height, width), or None."""
    height, width = size
    if isinstance(seg, dict):
        if not isinstance(seg.get("counts"), (list, str)) or "size" not in seg:
            return "RLE segmentation needs 'counts' (list or string) and 'size'"
        if list(seg["size"]) != [height, width]:
            return f"RLE size {seg['size']} does not match its image ({height} x {width})"
        return None
    if not isinstance(seg, list) or not seg:
        return "segmentation is empty or not a list of polygons"
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
        xs, ys = poly[0::2], poly[1::2]
        lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
        if (lo_x < -_TOLERANCE or lo_y < -_TOLERANCE
                or hi_x > width + _TOLERANCE or hi_y > height + _TOLERANCE):
            return (f"polygon {k} spans x {lo_x:g}..{hi_x:g}, y {lo_y:g}..{hi_y:g}, outside its "
                    f"{width} x {height} image (x is the column, y the row)")
    return None


def _fill_geometry(ann: dict) -> None:
    """bbox [x, y, w, h] and shoelace area in px² for polygon annotations lacking them."""
    seg = ann["segmentation"]
    if isinstance(seg, dict):
        from pycocotools import mask as mask_utils

        rle = seg if isinstance(seg["counts"], str) else mask_utils.frPyObjects(seg, *seg["size"])
        ann.setdefault("area", float(mask_utils.area(rle)))
        ann.setdefault("bbox", [float(v) for v in mask_utils.toBbox(rle)])
        return
    xs = [x for poly in seg for x in poly[0::2]]
    ys = [y for poly in seg for y in poly[1::2]]
    ann.setdefault("bbox", [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)])
    area = 0.0
    for poly in seg:
        px, py = np.asarray(poly[0::2], float), np.asarray(poly[1::2], float)
        area += 0.5 * abs(float(np.dot(px, np.roll(py, -1)) - np.dot(py, np.roll(px, -1))))
    ann.setdefault("area", area)


def to_coco(dataset: dict):
    """A ``pycocotools.coco.COCO`` over an already loaded dict — no second read of the file.

    ``dataset`` must be normalised (annotations as a list), as :func:`load_annotations` returns.
    """
    from pycocotools.coco import COCO

    if not isinstance(dataset.get("annotations"), list):
        raise AnnotationError("to_coco needs annotations as a list; load the file with "
                              "data.load_annotations(path), which normalises LIVECell's dict")
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress lines
        coco.createIndex()
    return coco


# --------------------------------------------------------------------------- splits

@dataclass
class Split:
    """One LIVECell split on disk: its root folder, name and normalised COCO dict."""

    root: Path
    name: str
    dataset: dict
    _anns_by_image: dict | None = field(default=None, init=False, repr=False)

    @property
    def images(self) -> list[dict]:
        """Image records: ``{"id", "file_name", "width", "height", ...}``."""
        return self.dataset["images"]

    @property
    def annotation_file(self) -> Path:
        return annotation_path(self.root, self.name)

    def annotations_for(self, image_id) -> list[dict]:
        """Annotations (cells) of one image, in file order; [] if it has none."""
        if self._anns_by_image is None:
            index: dict = {}
            for ann in self.dataset["annotations"]:
                index.setdefault(ann["image_id"], []).append(ann)
            self._anns_by_image = index
        return self._anns_by_image.get(image_id, [])

    def image_path(self, image_record: dict) -> Path:
        """Where the frame of ``image_record`` lies: ``split_image_dir/<CellType>/<file_name>``
        (images_per_celltype.zip, the sample) when that file exists, else the flat
        ``split_image_dir/<file_name>`` (the official images.zip).

        Returns the flat path when neither exists, so the read error names the official place.
        """
        base = split_image_dir(self.root, self.name)
        name = image_record["file_name"]
        nested = base / cell_type_of(name) / name
        if nested.exists():
            return nested
        return nested if nested.exists() else base / name

    def cell_type(self, image_record: dict) -> str:
        return cell_type_of(image_record["file_name"])


def load_split(root, split: str) -> Split:
    """Load ``root/annotations/livecell_coco_{split}.json`` (memoised) as a :class:`Split`.

    The train split leaves out every file that the val JSON also lists (LIVECell issue
    #26), so training never sees a validation image; how many were left out is in
    ``split.dataset["kit_val_overlap_dropped"]``.
    """
    root = Path(root)
    split_obj = Split(root=root, name=split, dataset=load_annotations(annotation_path(root, split)))
    val_path = annotation_path(root, "val")
    if split == "train" and val_path.is_file():
        val_names = {img["file_name"] for img in load_annotations(val_path)["images"]}
        keep = [img["id"] for img in split_obj.images if img["file_name"] not in val_names]
        dropped = len(split_obj.images) - len(keep)
        if dropped:
            split_obj = subset_dataset(split_obj, keep)
        split_obj.dataset["kit_val_overlap_dropped"] = dropped
    return split_obj


def available_splits(root) -> list[str]:
    """The splits of :data:`SPLITS` whose annotation JSON exists under ``root``."""
    return [s for s in SPLITS if annotation_path(root, s).is_file()]


#: Fewer annotated cells than this flags an image as nearly unannotated (LIVECell
#: issue #21 lists images with 1-9 outlines where hundreds of cells are visible).
NEARLY_UNANNOTATED_CELLS = 10


def nearly_unannotated(split: Split, min_cells: int = NEARLY_UNANNOTATED_CELLS) -> list[dict]:
    """Image records of ``split`` with fewer than ``min_cells`` annotated cells, in file order.

    Each entry: ``{"image_id", "file_name", "cell_type", "n_cells"}``.  Such frames teach
    the model that visible cells are background; look at them before training on them.
    """
    counts: dict = {}
    for ann in split.dataset["annotations"]:
        counts[ann["image_id"]] = counts.get(ann["image_id"], 0) + 1
    return [{"image_id": img["id"], "file_name": img["file_name"],
             "cell_type": split.cell_type(img), "n_cells": counts.get(img["id"], 0)}
            for img in split.images if counts.get(img["id"], 0) < min_cells]


def subset_dataset(split: Split, image_ids) -> Split:
    """A :class:`Split` restricted to ``image_ids`` (in that order) and their annotations."""
    by_id = {img["id"]: img for img in split.images}
    wanted = list(image_ids)
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise KeyError(f"image ids {unknown[:5]}{'...' if len(unknown) > 5 else ''} are not in "
                       f"{split.annotation_file}; was the subset drawn from another data set?")
    keep = set(wanted)
    dataset = {k: v for k, v in split.dataset.items() if k not in ("images", "annotations")}
    dataset["images"] = [by_id[i] for i in wanted]
    dataset["annotations"] = [a for a in split.dataset["annotations"] if a["image_id"] in keep]
    return Split(root=split.root, name=split.name, dataset=dataset)


def load_subset(root, split: str, limit: int | None = None, seed: int = 0,
                rule: str = "stratified") -> Split:
    """``load_split(root, split)``, restricted to :func:`select_subset`'s ``limit`` images when it has more.

    The same (root, limit, seed, rule) gives the same images as the manifest notebook 01
    writes, so training (``DataConfig``) and evaluation see the same subset.
    """
    full = load_split(root, split)
    if limit is None or len(full.images) <= limit:
        return full
    ids = [e["image_id"] for e in select_subset(root, sizes={split: limit}, seed=seed, rule=rule)]
    return subset_dataset(full, ids)


def _allocate(total: int, counts: dict) -> dict:
    """Split ``total`` over groups proportionally to ``counts`` (largest-remainder rounding)."""
    available = sum(counts.values())
    quotas = {k: total * c / available for k, c in counts.items()}
    alloc = {k: int(math.floor(q)) for k, q in quotas.items()}
    leftover = total - sum(alloc.values())
    # Largest fractional part first; ties go to the group listed first (CELL_TYPES order).
    order = sorted(counts, key=lambda k: -(quotas[k] - alloc[k]))
    for k in order[:leftover]:
        alloc[k] += 1
    return alloc


def select_subset(root, sizes=None, seed: int = 0, rule: str = "stratified") -> list[dict]:
    """Pick a reproducible subset of images per split.

    sizes: images per split, default the seed project's ``{"train": 1024, "val": 256, "test": 512}``.
    rule: ``"stratified"`` — a seeded draw in which each cell type gets a share
        proportional to its image count in that split (largest-remainder rounding);
        entries ordered by split, cell type, image id.  ``"first"`` — the first N
        image records in file order, as the seed project took them
        (``COCO.getImgIds()[:N]``); ``seed`` is ignored.
    A split with fewer images than asked is taken whole, with a warning.  Returns
    entries ``{"split", "image_id", "file_name", "cell_type"}``.  Same data, rule and
    seed -> same list.
    """
    if rule not in ("stratified", "first"):
        raise ValueError(f"unknown subset rule {rule!r}; choose 'stratified' or 'first'")
    sizes = dict(sizes or {"train": 1024, "val": 256, "test": 512})
    entries: list[dict] = []
    for split_name in SPLITS:
        if split_name not in sizes:
            continue
        want = int(sizes[split_name])
        split = load_split(root, split_name)
        if want > len(split.images):
            warnings.warn(f"split {split_name!r} has only {len(split.images)} images, fewer than the "
                          f"{want} asked for; taking all of them", stacklevel=2)
        if rule == "first":
            entries.extend({"split": split_name, "image_id": img["id"], "file_name": img["file_name"],
                            "cell_type": cell_type_of(img["file_name"])} for img in split.images[:want])
            continue
        groups: dict = {}
        for img in sorted(split.images, key=lambda r: r["id"]):
            groups.setdefault(cell_type_of(img["file_name"]), []).append(img)
        groups = {t: groups[t] for t in CELL_TYPES if t in groups}
        total = sum(len(g) for g in groups.values())
        if want >= total:
            alloc = {t: len(g) for t, g in groups.items()}
        else:
            alloc = _allocate(want, {t: len(g) for t, g in groups.items()})
        # One stream per split so changing one split's size leaves the others' picks alone.
        rng = np.random.default_rng([seed, zlib.crc32(split_name.encode())])
        for cell_type, group in groups.items():
            picks = sorted(rng.choice(len(group), size=alloc[cell_type], replace=False).tolist())
            for i in picks:
                img = group[i]
                entries.append({"split": split_name, "image_id": img["id"],
                                "file_name": img["file_name"], "cell_type": cell_type})
    return entries


_MANIFEST_KEYS = ("split", "image_id", "file_name", "cell_type")


def write_manifest(entries, path) -> Path:
    """Save subset entries as JSON (atomically); returns ``Path(path)``."""
    path = Path(path)
    atomic.write_json(path, {"format": "livecell-kit subset", "version": 1,
                            "entries": [dict(e) for e in entries]}, indent=1)
    return path


def read_manifest(path) -> list[dict]:
    """Entries written by :func:`write_manifest` (or a bare JSON list of such entries)."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"manifest {path} does not exist; write one with "
                                f"data.write_manifest(data.select_subset(root), path)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"manifest {path} is not valid JSON ({exc}); delete it and write it "
                         f"again with data.write_manifest") from None
    entries = obj.get("entries") if isinstance(obj, dict) else obj
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and all(k in e for k in _MANIFEST_KEYS) for e in entries):
        raise ValueError(f"manifest {path} does not hold a list of entries with keys "
                         f"{_MANIFEST_KEYS}; delete it and write it again with data.write_manifest")
    return entries


# --------------------------------------------------------------------------- download

BASE_URL = "http://livecell-dataset.s3.eu-central-1.amazonaws.com/LIVECell_dataset_2021/"
_SINGLE_CELL_DIRS = {"A172": "a172", "BT474": "bt474", "BV2": "bv2", "Huh7": "huh7",
                     "MCF7": "mcf7", "SHSY5Y": "shsy5y", "SkBr3": "skbr3", "SKOV3": "skov3"}
SIZE_SPLITS = ("0_train2percent", "1_train4percent", "2_train5percent",
               "3_train25percent", "4_train50percent")

# Path under BASE_URL -> "sha256:<hex>" or None.  Sartorius publishes no checksums and
# nobody here could fetch the files, so all start as None; the hash of the first
# complete download is recorded in <cache>/registry-recorded.json and enforced after.
REGISTRY: dict[str, str | None] = {"images.zip": None}
REGISTRY.update({f"annotations/LIVECell/livecell_coco_{s}.json": None for s in SPLITS})
REGISTRY.update({f"annotations/LIVECell_single_cells/{d}/{s}.json": None
                 for d in _SINGLE_CELL_DIRS.values() for s in SPLITS})
REGISTRY.update({f"annotations/LIVECell_dataset_size_split/{n}.json": None for n in SIZE_SPLITS})

RECORDED_HASHES = "registry-recorded.json"


class DownloadError(OSError):
    """A download failed or a checksum did not match; the message says what to do."""


class _HTTPStatusError(DownloadError):
    """Non-retryable HTTP error (e.g. 404): subclasses neither ValueError nor
    RequestException, so pooch gives up at once instead of retrying."""


def _resolve_base_url(base_url=None) -> str:
    url = base_url or os.environ.get("LIVECELL_BASE_URL") or BASE_URL
    return url if url.endswith("/") else url + "/"


def _resolve_cache_dir(cache_dir=None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("LIVECELL_KIT_DATA")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("livecell-kit"))


class ResumableDownloader:
    """pooch downloader that keeps partial data in ``<file>.part`` and resumes it.

    pooch calls ``downloader(url, output_file, pooch)`` with a temp file next to the
    final path and only moves it into place after the sha256 check, which keeps the
    final path atomic.  We stream into ``part_path`` instead, asking for the missing
    tail with an HTTP ``Range`` request when a previous attempt (this run's retry or an
    earlier, interrupted run) left bytes behind, and hand the finished file to pooch
    by renaming it onto ``output_file`` (same folder, so the rename is atomic).
    A cut transfer raises a ``requests`` exception so pooch's ``retry_if_failed``
    retries it — and the retry resumes.
    """

    def __init__(self, part_path, progressbar: bool = True, timeout: float = 60.0,
                 chunk_size: int = 1 << 16):
        self.part_path = Path(part_path)
        self.progressbar = progressbar
        self.timeout = timeout
        self.chunk_size = chunk_size

    def __call__(self, url, output_file, pooch=None, check_only=False):
        import requests

        if check_only:
            response = requests.head(url, timeout=self.timeout, allow_redirects=True)
            return response.status_code == 200
        self.part_path.parent.mkdir(parents=True, exist_ok=True)
        have = self.part_path.stat().st_size if self.part_path.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if response.status_code == 416 and have:
                # Our partial file is not a prefix the server recognises: start over.
                self.part_path.unlink()
                return self(url, output_file, pooch)
            if response.status_code >= 400:
                retryable = response.status_code >= 500 or response.status_code in (408, 429)
                if retryable:
                    response.raise_for_status()  # RequestException: pooch retries
                raise _HTTPStatusError(f"HTTP {response.status_code} {response.reason} for {url}")
            if response.status_code == 206:
                start = _content_range_start(response.headers.get("Content-Range"))
                if start != have:
                    raise requests.exceptions.ContentDecodingError(
                        f"server resumed {url} at byte {start}, expected {have}")
                mode = "ab"
            else:  # 200: server ignored the Range header; the whole file comes again
                have, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length is not None else None
            bar = None
            if self.progressbar:
                from tqdm.auto import tqdm

                bar = tqdm(total=expected, initial=have, unit="B", unit_scale=True,
                           unit_divisor=1024, desc=self.part_path.name[:-5], leave=True)
            # Let a short body end quietly instead of urllib3 raising mid-chunk and
            # dropping that chunk's bytes; the size check below turns it into an error.
            response.raw.enforce_content_length = False
            try:
                with open(self.part_path, mode) as f:
                    for chunk in response.iter_content(chunk_size=self.chunk_size):
                        f.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
        got = self.part_path.stat().st_size
        if expected is not None and got != expected:
            raise requests.exceptions.ChunkedEncodingError(
                f"transfer of {url} ended at {got} of {expected} bytes")
        os.replace(self.part_path, output_file)


def _content_range_start(value) -> int | None:
    # "bytes 100-199/200" -> 100
    try:
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def _read_recorded(cache: Path) -> dict:
    try:
        return json.loads((cache / RECORDED_HASHES).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _forget_recorded(cache: Path, name: str) -> None:
    recorded = _read_recorded(cache)
    if recorded.pop(name, None) is not None:
        atomic.write_json(cache / RECORDED_HASHES, recorded, indent=1)


def fetch(name: str, cache_dir=None, base_url=None, progressbar: bool = True,
          retries: int = 3) -> Path:
    """Download one registry file (path under the base URL) into the cache; return its path.

    A cached file whose sha256 matches (registry, else the hash recorded at its first
    download) is returned without touching the network.  Transfers are retried
    ``retries`` times, resume where they stopped, and only appear at the final path
    once complete and verified.  Cache: ``cache_dir``, else env ``LIVECELL_KIT_DATA``,
    else pooch's OS cache.  Base URL: ``base_url``, else env ``LIVECELL_BASE_URL``, else
    :data:`BASE_URL`.
    """
    import pooch
    import requests

    if name not in REGISTRY:
        raise KeyError(f"{name!r} is not a LIVECell file this kit knows; see data.REGISTRY")
    cache = _resolve_cache_dir(cache_dir)
    url_base = _resolve_base_url(base_url)
    recorded = _read_recorded(cache)
    known = REGISTRY[name] or recorded.get(name)
    store = pooch.create(path=cache, base_url=url_base, registry={name: known},
                         retry_if_failed=retries)
    final = cache / name
    downloader = ResumableDownloader(final.with_name(final.name + ".part"), progressbar=progressbar)
    url = url_base + name
    try:
        path = Path(store.fetch(name, downloader=downloader))
    except _HTTPStatusError as exc:
        raise DownloadError(f"could not download {name}: {exc}. Check the base URL "
                            f"(--base-url / LIVECELL_BASE_URL, now {url_base}) and your connection.") from None
    except ValueError as exc:  # pooch: hash mismatch after all retries
        raise DownloadError(
            f"{name} from {url} does not match its expected checksum ({exc}). The server's copy "
            f"differs from the one recorded earlier or the transfer was corrupted. Rerun to try "
            f"again; if the file changed upstream on purpose, delete the entry for {name!r} in "
            f"{cache / RECORDED_HASHES}.") from None
    except requests.exceptions.RequestException as exc:
        raise DownloadError(
            f"download of {name} from {url} failed after {retries + 1} attempt(s) ({exc}). "
            f"Rerun the same command: it resumes from {downloader.part_path}.") from None
    if known is None:
        recorded = _read_recorded(cache)
        recorded[name] = "sha256:" + pooch.file_hash(str(path), alg="sha256")
        atomic.write_json(cache / RECORDED_HASHES, recorded, indent=1)
    return path


def _check_member(name: str, zip_path) -> PurePosixPath:
    """Reject zip members that would land outside the target (zip-slip)."""
    norm = name.replace("\\", "/")
    member = PurePosixPath(norm)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in member.parts:
        raise ValueError(f"{zip_path} contains the unsafe member {name!r} (absolute path or '..'), "
                         f"which would be written outside the target folder; refusing to extract. "
                         f"Delete the archive and download it from a trusted source.")
    return member


def safe_extract_zip(zip_path, dest, delete_bad: bool = True) -> Path:
    """Extract ``zip_path`` into ``dest`` safely and at most once; return ``dest``.

    Members with absolute paths or ``..`` are refused (zip-slip).  Extraction goes to a
    temp folder inside ``dest`` whose top-level entries are then moved into place, so an
    interrupted run never leaves a half-extracted tree that looks done; a stamp file
    ``dest/.<zip name>.extracted`` (zip size and mtime) skips repeat runs.  A truncated or
    corrupt archive raises ``DownloadError`` and, with ``delete_bad``, deletes the archive
    so the next download fetches it again.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    stamp = dest / f".{zip_path.name}.extracted"
    st = zip_path.stat()
    signature = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        if atomic.read_stamp(stamp) == signature:
            return dest
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".extract-"))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                members = archive.infolist()
                for info in members:
                    _check_member(info.filename, zip_path)
                for info in members:
                    archive.extract(info, tmp)  # raises BadZipFile on CRC errors
        except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
            if delete_bad:
                zip_path.unlink(missing_ok=True)
                fix = "it has been deleted; rerun the download to fetch it again"
            else:
                fix = "delete it and rerun the download"
            raise DownloadError(f"{zip_path} is not a complete zip archive ({exc}); {fix}.") from None
        for entry in sorted(tmp.iterdir()):
            target = dest / entry.name
            if target.is_dir() and entry.is_dir():
                _merge_dir(entry, target)
            else:
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic.write_stamp(stamp, signature)
    return dest


def _merge_dir(src: Path, dst: Path) -> None:
    """Move ``src``'s children into existing ``dst``, replacing same-named entries."""
    for entry in src.iterdir():
        target = dst / entry.name
        if entry.is_dir() and target.is_dir():
            _merge_dir(entry, target)
            continue
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)


def _place(cached: Path, target: Path) -> None:
    """Put a cached file at ``target`` atomically: hard link if possible (no second copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and os.path.samefile(cached, target):
        return
    tmp = target.with_name(f".{target.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(cached, tmp)
    except OSError:  # other file system, or links not allowed
        shutil.copyfile(cached, tmp)
    os.replace(tmp, target)


DOWNLOAD_PARTS = ("images", "annotations", "single_cells", "size_splits")


def download_livecell(dest, files=("images", "annotations"), base_url=None, cell_types=None,
                      cache_dir=None, progressbar: bool = True, retries: int = 3) -> Path:
    """Fetch LIVECell and lay it out under ``dest`` the way the whole kit reads it.

    files: any of ``"images"`` (images.zip, 1.3 GB, extracted to ``dest/images/``),
        ``"annotations"`` (``dest/annotations/livecell_coco_{train,val,test}.json``),
        ``"single_cells"`` (``dest/annotations/LIVECell_single_cells/<type>/{split}.json``)
        and ``"size_splits"`` (``dest/annotations/LIVECell_dataset_size_split/*.json``).
    cell_types: restrict ``single_cells`` to these types (e.g. ``["A172"]``); giving it
        implies ``"single_cells"``.
    base_url: mirror of ``LIVECell_dataset_2021/``; default env ``LIVECELL_BASE_URL``, else S3.
    cache_dir: where downloads are kept; default env ``LIVECELL_KIT_DATA``, else pooch's cache.
    Rerunning is cheap: cached files are reused and the zip is extracted only once.
    Returns ``Path(dest)``.
    """
    dest = Path(dest)
    parts = [files] if isinstance(files, str) else list(files)
    if cell_types and "single_cells" not in parts:
        parts.append("single_cells")
    unknown = [p for p in parts if p not in DOWNLOAD_PARTS]
    if unknown:
        raise ValueError(f"unknown download part(s) {unknown}; choose from {DOWNLOAD_PARTS}")
    types = [_canonical_type(t) for t in (cell_types or CELL_TYPES)]
    cache = _resolve_cache_dir(cache_dir)
    kw = dict(cache_dir=cache, base_url=base_url, progressbar=progressbar, retries=retries)

    if "annotations" in parts:
        for split in SPLITS:
            path = fetch(f"annotations/LIVECell/livecell_coco_{split}.json", **kw)
            _place(path, annotation_path(dest, split))
    if "single_cells" in parts:
        for cell_type in types:
            sub = _SINGLE_CELL_DIRS[cell_type]
            for split in SPLITS:
                name = f"annotations/LIVECell_single_cells/{sub}/{split}.json"
                _place(fetch(name, **kw), dest / name)
    if "size_splits" in parts:
        for stem in SIZE_SPLITS:
            name = f"annotations/LIVECell_dataset_size_split/{stem}.json"
            _place(fetch(name, **kw), dest / name)
    if "images" in parts:
        _download_images(dest, cache, kw)
    return dest


def _download_images(dest: Path, cache: Path, kw: dict) -> None:
    expected = [split_image_dir(dest, "train"), split_image_dir(dest, "test")]
    stamps = [dest / ".images.zip.extracted", dest / "images" / ".images.zip.extracted"]
    if any(s.exists() for s in stamps) and all(p.is_dir() for p in expected):
        return  # extracted before: no need to hash 1.3 GB or touch the network
    zip_path = fetch("images.zip", **kw)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        names = []  # safe_extract_zip reports it (and cleans up) below
    # The official zip holds images/livecell_*; a mirror that zipped the two folders
    # without the top-level images/ is laid out the same way.
    nested = not names or any(n.replace("\\", "/").startswith("images/") for n in names)
    try:
        safe_extract_zip(zip_path, dest if nested else dest / "images")
    except DownloadError:
        _forget_recorded(cache, "images.zip")  # the recorded hash may be the bad file's
        raise
    missing = [str(p) for p in expected if not p.is_dir()]
    if missing:
        raise DownloadError(f"{zip_path} did not contain the expected folders {missing}; is the "
                            f"base URL a LIVECell mirror? Delete {zip_path} and rerun.")


def _canonical_type(name: str) -> str:
    key = str(name).lower().replace("-", "")
    for cell_type, sub in _SINGLE_CELL_DIRS.items():
        if key in (cell_type.lower(), sub):
            return cell_type
    raise ValueError(f"unknown cell type {name!r}; choose from {CELL_TYPES}")
