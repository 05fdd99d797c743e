"""LIVECell annotation files: load, normalise, validate, and view one split.

Annotations are COCO instance polygons in pixel xy (x = column, y = row); the official
files store ``annotations`` as a list, the Kaggle copies as a dict keyed by id — both
load.  LIVECell's known quirks, each handled by a documented rule:

* a file listed by more than one image record (65 names in the train JSON with two
  ids, LIVECell issue #26; test images annotated twice, issue #14): the **first**
  record in file order is kept with its annotations, later ones are dropped and
  counted (``dataset["kit_duplicate_records"]``, and a warning);
* images in both the train and the val JSON (issue #26): :func:`load_split` drops
  them from train, so no subset ever trains on a validation image.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from livecell_kit.data.layout import FIX_DATA, SPLITS, annotation_path, cell_type_of, split_image_dir


class AnnotationError(ValueError):
    """An annotation file is malformed; the message names the file, the id and the fix."""


#: px: how far a polygon vertex may lie outside its image.  LIVECell polygons trace
#: pixel edges, so x == width (one past the last column) is legitimate.
POLYGON_TOLERANCE_PX = 1.0

_ANN_FIX = "fix or drop that entry, or replace the file: " + FIX_DATA
_IMAGE_KEYS = ("id", "file_name", "width", "height")
_ANN_KEYS = ("id", "image_id", "category_id", "segmentation")

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
        raise FileNotFoundError(f"annotation file {path} does not exist; {FIX_DATA}") from None
    key = (str(resolved), stat.st_size, stat.st_mtime_ns, bool(validate))
    cached = _ANNOTATION_CACHE.get(key)
    if cached is not None:
        return cached
    try:
        with open(resolved, "rb") as f:
            raw = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{path} is not valid JSON ({exc}); the file is probably truncated "
                              f"or corrupt: {FIX_DATA}") from None
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
                              f"object with 'images' and 'annotations'; {FIX_DATA}")
    for key in ("images", "annotations"):
        if key not in raw:
            raise AnnotationError(f"{path}: missing top-level key {key!r} — not a COCO "
                                  f"annotation file; {FIX_DATA}")
    dataset = dict(raw)
    anns = raw["annotations"]
    if isinstance(anns, dict):
        # LIVECell stores {"<id>": {...}}; pycocotools wants a list ("string indices must be integers").
        anns = [{**ann, "id": _int_key(key, path)} if isinstance(ann, dict) and "id" not in ann
                else ann for key, ann in anns.items()]
    if not isinstance(anns, list) or not isinstance(raw["images"], list):
        raise AnnotationError(f"{path}: 'images' must be a list and 'annotations' a list or a "
                              f"dict keyed by id; {FIX_DATA}")
    dataset["annotations"] = anns
    if not dataset.get("categories"):
        dataset["categories"] = [{"id": 1, "name": "cell", "supercategory": "cell"}]
    return dataset


def _int_key(key, path) -> int:
    try:
        return int(key)
    except ValueError:
        raise AnnotationError(f"{path}: annotation key {key!r} is not an integer id and the "
                              f"entry has no 'id'; {_ANN_FIX}") from None


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


def validate_annotations(dataset: dict, path="<dataset>") -> None:
    """Raise :class:`AnnotationError` at the first malformed image or annotation.

    Checks: required keys, unique ids, annotations pointing at known images, and each
    segmentation by :func:`segmentation_problem`.  Fills ``iscrowd``/``area``/``bbox``
    in place where missing.
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
        problem = segmentation_problem(ann["segmentation"], size)
        if problem:
            raise AnnotationError(f"{path}: annotation id {aid}: {problem}; {_ANN_FIX}")
        if "iscrowd" not in ann:
            ann["iscrowd"] = 0
        if "bbox" not in ann or "area" not in ann:
            _fill_geometry(ann)


def segmentation_problem(seg, size) -> str | None:
    """What is wrong with one COCO segmentation, as a short phrase; None when it is fine.

    seg: a list of polygons ``[[x0, y0, x1, y1, ...], ...]`` in pixel xy (x = column,
        y = row), or an RLE dict ``{"size": [height, width], "counts": ...}``.
    size: ``(height, width)`` of its image in px.
    Polygons must be flat lists of an even number (>= 6, i.e. >= 3 points) of finite
    numbers, every vertex within :data:`POLYGON_TOLERANCE_PX` (1 px) of the image:
    ``-1 <= x <= width + 1`` and ``-1 <= y <= height + 1``.  RLEs must have ``counts``
    (a list or a compressed string) and ``size == [height, width]``; their runs are not
    decoded here.  The phrase is meant to follow "annotation id N: " in an error.
    """
    height, width = size
    if isinstance(seg, dict):
        if not isinstance(seg.get("counts"), (list, str, bytes)) or "size" not in seg:
            return "RLE segmentation needs 'counts' (a list or a compressed string) and 'size'"
        if list(seg["size"]) != [height, width]:
            return f"RLE size {seg['size']} does not match its image ({height} x {width})"
        return None
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
        xs, ys = poly[0::2], poly[1::2]
        lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
        if lo_x < -tol or lo_y < -tol or hi_x > width + tol or hi_y > height + tol:
            return (f"polygon {k} spans x {lo_x:g}..{hi_x:g}, y {lo_y:g}..{hi_y:g}, outside its "
                    f"{width} x {height} image (x is the column, y the row)")
    return None


def _fill_geometry(ann: dict) -> None:
    """bbox [x, y, w, h] in px and area in px² (shoelace for polygons) where missing."""
    seg = ann["segmentation"]
    if isinstance(seg, dict):
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


def to_coco(dataset: dict) -> COCO:
    """A ``pycocotools.coco.COCO`` over an already loaded dict — no second read of the file.

    ``dataset`` must be normalised (annotations as a list), as :func:`load_annotations` returns.
    """
    if not isinstance(dataset.get("annotations"), list):
        raise AnnotationError("to_coco needs annotations as a list; load the file with "
                              "data.load_annotations(path), which normalises LIVECell's dict")
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress lines
        coco.createIndex()
    return coco


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
    dataset = load_annotations(annotation_path(root, split))
    val_path = annotation_path(root, "val")
    if split == "train" and val_path.is_file():
        val_names = {img["file_name"] for img in load_annotations(val_path)["images"]}
        kept = [img for img in dataset["images"] if img["file_name"] not in val_names]
        # A new dict: the memoised one is shared and stays as the file says.
        dataset = {**dataset, "kit_val_overlap_dropped": len(dataset["images"]) - len(kept)}
        if dataset["kit_val_overlap_dropped"]:
            kept_ids = {img["id"] for img in kept}
            dataset["images"] = kept
            dataset["annotations"] = [a for a in dataset["annotations"] if a["image_id"] in kept_ids]
    return Split(root=root, name=split, dataset=dataset)


def available_splits(root) -> list[str]:
    """The splits of :data:`SPLITS` whose annotation JSON exists under ``root``."""
    return [s for s in SPLITS if annotation_path(root, s).is_file()]
