"""LIVECell splits served from the annotation index: image records, cells per image, subsets.

Annotations are COCO instance polygons in pixel xy (x = column, y = row); the official
files store ``annotations`` as a list, the Kaggle copies as a dict keyed by id — both
load.  Each file is parsed once into an on-disk index (:mod:`~livecell_kit.data.index`);
a :class:`Split` is a view on it: which image records, in which order.  LIVECell's known
quirks, each handled by a documented rule:

* a file listed by more than one image record (65 names in the train JSON with two
  ids, LIVECell issue #26; test images annotated twice, issue #14): the **first**
  record in file order is kept with its annotations, later ones are dropped
  (``split.duplicate_records``, and a warning);
* images in both the train and the val JSON (issue #26): :func:`load_split` drops
  them from train (``split.val_overlap_dropped``), so no subset ever trains on a
  validation image.  Only val's image table is read for that.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from livecell_kit.data.index import AnnotationIndex, open_index
from livecell_kit.data.layout import SPLITS, annotation_path, cell_type_of, split_image_dir
from livecell_kit.data.validation import AnnotationError


def load_annotations(path, progress: bool | None = None) -> AnnotationIndex:
    """The :class:`~livecell_kit.data.index.AnnotationIndex` of any COCO/LIVECell annotation file.

    Parsed once into an on-disk index (reused by every later call, in any process);
    validated while parsing (raises :class:`AnnotationError` naming the file, the id and
    the fix).  ``index.images`` lists every record as in the file,
    ``index.first_rows`` the first record of each file name (warned about here when some
    names repeat); ``index.annotations_for(image_id)`` gives one image's cells.
    progress: show a progress bar while indexing (None: for files over 64 MiB).
    """
    index = open_index(path, progress=progress)
    _warn_duplicates(index, _duplicate_records(index))
    return index


def _duplicate_records(index: AnnotationIndex) -> tuple[dict, ...]:
    """``{"file_name", "kept_id", "dropped_id"}`` for each record after the first of its file name."""
    kept = set(index.first_rows)
    first_id = {index.images[r]["file_name"]: index.images[r]["id"] for r in index.first_rows}
    return tuple({"file_name": img["file_name"], "kept_id": first_id[img["file_name"]], "dropped_id": img["id"]}
                 for r, img in enumerate(index.images) if r not in kept)


def _warn_duplicates(index: AnnotationIndex, dropped) -> None:
    if not dropped:
        return
    n_cells = int(index.cell_counts([index.row_of(d["dropped_id"]) for d in dropped]).sum())
    warnings.warn(f"{index.source}: {len(dropped)} file name(s) appear in more than one image record "
                  f"(e.g. {dropped[0]['file_name']}, ids {dropped[0]['kept_id']} and "
                  f"{dropped[0]['dropped_id']}); kept the first record of each and dropped "
                  f"{len(dropped)} record(s) with {n_cells} annotations", stacklevel=3)


def to_coco(dataset: dict) -> COCO:
    """A ``pycocotools.coco.COCO`` over a COCO dict such as :meth:`Split.coco_dataset` returns."""
    if not isinstance(dataset.get("annotations"), list):
        raise AnnotationError("to_coco needs annotations as a list; build the dict with "
                              "split.coco_dataset(image_ids), which gives the list form")
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints progress lines
        coco.createIndex()
    return coco


@dataclass(frozen=True, eq=False)
class Split:
    """A LIVECell split, or a subset of one: some image records of an annotation index.

    root: the data root; name: ``"train"``, ``"val"`` or ``"test"``; index: its
    :class:`~livecell_kit.data.index.AnnotationIndex`; rows: positions of the split's
    image records in ``index.images``, in the split's order.
    duplicate_records: records dropped because their file name came earlier
    (``{"file_name", "kept_id", "dropped_id"}``); val_overlap_dropped: train records
    dropped because val lists their file (None for other splits).
    """

    root: Path
    name: str
    index: AnnotationIndex = field(repr=False)
    rows: tuple = field(repr=False)
    duplicate_records: tuple = field(default=(), repr=False)
    val_overlap_dropped: int | None = None

    @cached_property
    def images(self) -> list[dict]:
        """Image records: ``{"id", "file_name", "width", "height", ...}``, in the split's order."""
        return [self.index.images[r] for r in self.rows]

    @cached_property
    def _row_of_id(self) -> dict:
        return {self.index.images[r]["id"]: r for r in self.rows}

    @property
    def image_ids(self) -> list:
        return [img["id"] for img in self.images]

    @property
    def annotation_file(self) -> Path:
        return annotation_path(self.root, self.name)

    def annotations_for(self, image_id) -> list[dict]:
        """Annotations (cells) of one image as COCO dicts, in file order; [] if it has none
        or is not in this split.  ``image_id``: the image's id, or its record (``split.images[k]``)."""
        row = self._row_of_id.get(_image_id(image_id))
        return [] if row is None else [self.index.annotation(int(k)) for k in self.index.annotation_rows(row)]

    def cell_counts(self) -> np.ndarray:
        """Annotated cells per image, int64 aligned with :attr:`images`."""
        return self.index.cell_counts(self.rows)

    def cell_areas(self, image_id) -> np.ndarray:
        """Areas (px², float64) of one image's cells, in file order, without building the cells.
        ``image_id``: the image's id, or its record."""
        row = self._row_of_id.get(_image_id(image_id))
        return np.zeros(0) if row is None else self.index.areas(row)

    def coco_dataset(self, image_ids=None) -> dict:
        """A pycocotools-ready COCO dict of ``image_ids`` (default: every image of the split)
        and their annotations only — for evaluation (see :func:`to_coco`)."""
        return self.index.coco_dataset(self.rows if image_ids is None else self._rows(image_ids))

    def subset(self, image_ids) -> Split:
        """This split restricted to ``image_ids``, in that order: a view on the same index."""
        return replace(self, rows=tuple(self._rows(image_ids)))

    def _rows(self, image_ids) -> list[int]:
        wanted = list(image_ids)
        unknown = [i for i in wanted if i not in self._row_of_id]
        if unknown:
            raise KeyError(f"image ids {unknown[:5]}{'...' if len(unknown) > 5 else ''} are not in "
                           f"{self.annotation_file}; was the subset drawn from another data set?")
        return [self._row_of_id[i] for i in wanted]

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


def _image_id(image):
    """The id of an image given by its id or by its record: passing ``split.images[k]`` itself is
    the natural slip, and looking a dict up by value would fail with "unhashable type: 'dict'"."""
    if isinstance(image, Mapping):
        if "id" not in image:
            raise KeyError(f"this image record has no 'id' (keys {sorted(image)}); pass the image's id")
        return image["id"]
    return image


def cell_outlines(split, image_id) -> list[np.ndarray]:
    """Every polygon of one image's cells: float64 (N, 2) arrays of x (column), y (row) in pixels.

    One array per polygon, annotation by annotation in file order (a COCO segmentation is a
    list of polygons ``[[x0, y0, x1, y1, ...], ...]``; LIVECell's cells have one each).
    RLE segmentations have no polygon and are left out.  ``split``: anything with
    ``annotations_for(image_id)``, such as a :class:`Split`.
    """
    return [np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
            for ann in split.annotations_for(image_id) if not isinstance(ann["segmentation"], Mapping)
            for polygon in ann["segmentation"]]


def load_split(root, split: str) -> Split:
    """``root/annotations/livecell_coco_{split}.json`` as a :class:`Split` (indexed on first use).

    Keeps the first record of each file name.  The train split also leaves out every file
    that the val JSON lists (LIVECell issue #26), so training never sees a validation
    image; how many is ``split.val_overlap_dropped``.
    """
    root = Path(root)
    index = load_annotations(annotation_path(root, split))
    rows = index.first_rows
    dropped_overlap = None
    val_path = annotation_path(root, "val")
    if split == "train" and val_path.is_file():
        val_names = {img["file_name"] for img in open_index(val_path).images}
        kept = [r for r in rows if index.images[r]["file_name"] not in val_names]
        rows, dropped_overlap = kept, len(rows) - len(kept)
    return Split(root=root, name=split, index=index, rows=tuple(rows),
                 duplicate_records=_duplicate_records(index), val_overlap_dropped=dropped_overlap)


def available_splits(root) -> list[str]:
    """The splits of :data:`SPLITS` whose annotation JSON exists under ``root``."""
    return [s for s in SPLITS if annotation_path(root, s).is_file()]
