"""Reproducible subsets of a split, their manifests, and frames to look at before training.

:func:`select_subset` picks images per split (stratified by cell type, or the first N
as the seed project did); :func:`write_manifest` / :func:`read_manifest` keep the pick
on disk so notebooks, training and evaluation use the same images;
:func:`load_subset` is a :class:`~livecell_kit.data.annotations.Split` restricted to it
(a view on the split's annotation index: nothing is copied or parsed again).
:func:`nearly_unannotated` lists frames with almost no outlines (LIVECell issue #21).
"""
from __future__ import annotations

import json
import math
import warnings
import zlib
from pathlib import Path

import numpy as np

from livecell_kit import atomic
from livecell_kit.data.annotations import Split, load_split
from livecell_kit.data.layout import CELL_TYPES, SPLITS, cell_type_of

#: Fewer annotated cells than this flags an image as nearly unannotated (LIVECell
#: issue #21 lists images with 1-9 outlines where hundreds of cells are visible).
NEARLY_UNANNOTATED_CELLS = 10

#: Images per split when :func:`select_subset` is given no sizes: the seed project's.
DEFAULT_SUBSET_SIZES = {"train": 1024, "val": 256, "test": 512}

#: How a subset of a split is drawn: a seeded draw in proportion to cell types, or the first N.
SUBSET_RULES = ("stratified", "first")
_MANIFEST_KEYS = ("split", "image_id", "file_name", "cell_type")


def nearly_unannotated(split: Split, min_cells: int = NEARLY_UNANNOTATED_CELLS) -> list[dict]:
    """Image records of ``split`` with fewer than ``min_cells`` annotated cells, in file order.

    Each entry: ``{"image_id", "file_name", "cell_type", "n_cells"}``.  Such frames teach
    the model that visible cells are background; look at them before training on them.
    """
    counts = split.cell_counts()
    return [{"image_id": img["id"], "file_name": img["file_name"],
             "cell_type": split.cell_type(img), "n_cells": int(n)}
            for img, n in zip(split.images, counts) if n < min_cells]


def load_subset(root, split: str, limit: int | None = None, seed: int = 0,
                rule: str = "stratified") -> Split:
    """``load_split(root, split)``, restricted to :func:`select_subset`'s ``limit`` images when it has more.

    The same (root, limit, seed, rule) gives the same images as the manifest notebook 01
    writes, so training (``DataConfig``) and evaluation see the same subset.
    """
    _check_rule(rule)
    full = load_split(root, split)
    if limit is None or len(full.images) <= limit:
        return full
    return full.subset([e["image_id"] for e in _pick(full, limit, seed, rule)])


def select_subset(root, sizes=None, seed: int = 0, rule: str = "stratified") -> list[dict]:
    """Pick a reproducible subset of images per split.

    sizes: images per split, default :data:`DEFAULT_SUBSET_SIZES` (the seed project's).
    rule: ``"stratified"`` — a seeded draw in which each cell type gets a share
        proportional to its image count in that split (largest-remainder rounding);
        entries ordered by split, cell type, image id.  ``"first"`` — the first N
        image records in file order, as the seed project took them
        (``COCO.getImgIds()[:N]``); ``seed`` is ignored.
    A split with fewer images than asked is taken whole, with a warning.  Returns
    entries ``{"split", "image_id", "file_name", "cell_type"}``.  Same data, rule and
    seed -> same list.
    """
    _check_rule(rule)
    sizes = dict(sizes or DEFAULT_SUBSET_SIZES)
    entries: list[dict] = []
    for split_name in SPLITS:
        if split_name not in sizes:
            continue
        split = load_split(root, split_name)
        want = int(sizes[split_name])
        if want > len(split.images):
            warnings.warn(f"split {split_name!r} has only {len(split.images)} images, fewer than the "
                          f"{want} asked for; taking all of them", stacklevel=2)
        entries.extend(_pick(split, want, seed, rule))
    return entries


def _check_rule(rule: str) -> None:
    if rule not in SUBSET_RULES:
        raise ValueError(f"unknown subset rule {rule!r}; choose one of {SUBSET_RULES}")


def _entry(split: Split, img: dict) -> dict:
    return {"split": split.name, "image_id": img["id"], "file_name": img["file_name"],
            "cell_type": cell_type_of(img["file_name"])}


def _pick(split: Split, want: int, seed: int, rule: str) -> list[dict]:
    """``want`` entries of one loaded split by ``rule`` (see :func:`select_subset`)."""
    if rule == "first":
        return [_entry(split, img) for img in split.images[:want]]
    groups: dict = {}
    for img in sorted(split.images, key=lambda r: r["id"]):
        groups.setdefault(cell_type_of(img["file_name"]), []).append(img)
    sizes = {t: len(groups[t]) for t in CELL_TYPES if t in groups}
    alloc = sizes if want >= sum(sizes.values()) else _allocate(want, sizes)
    # One stream per split so changing one split's size leaves the others' picks alone.
    rng = np.random.default_rng([seed, zlib.crc32(split.name.encode())])
    entries = []
    for cell_type in sizes:
        picks = sorted(rng.choice(sizes[cell_type], size=alloc[cell_type], replace=False).tolist())
        entries.extend(_entry(split, groups[cell_type][i]) for i in picks)
    return entries


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
        obj = json.loads(path.read_text(encoding="utf-8-sig"))  # -sig: Notepad adds a BOM
    except FileNotFoundError:
        raise FileNotFoundError(f"manifest {path} does not exist; write one with "
                                f"data.write_manifest(data.select_subset(root), path)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"manifest {path} is not valid JSON ({exc}); correct it there, or write "
                         f"it again with data.write_manifest(data.select_subset(root), path)") from None
    entries = obj.get("entries") if isinstance(obj, dict) else obj
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and all(k in e for k in _MANIFEST_KEYS) for e in entries):
        raise ValueError(f"manifest {path} does not hold a list of entries with keys "
                         f"{_MANIFEST_KEYS}; delete it and write it again with data.write_manifest")
    return entries
