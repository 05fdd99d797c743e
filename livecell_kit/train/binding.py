"""A run folder is bound to the data it trains on: a fingerprint in config.json, checked on every rerun.

The fingerprint (:func:`data_fingerprint`) records, per split the preset trains on
(train, val): the annotation file's size and sha256, and the sha256 of the sorted
``(file name, bytes)`` list of the image files the preset picks.  The sha256 of an
annotation file is the one the annotation index is keyed by, computed once per process,
so fingerprinting costs one stat per image on top of what training reads anyway.

:func:`check_same_data` compares a run folder's recorded fingerprint with the data of the
rerun: resuming or reusing a run with other data is refused (``--out`` elsewhere, or
``--restart``), so two data sets are never mixed in one run.  :func:`clear_run` is what
``--restart`` does.
"""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from livecell_kit import data
from livecell_kit.presets import Preset
from livecell_kit.train.backup import BACKUP_DIR, CHECKPOINT_DIR, remove_temporary_files
from livecell_kit.train.history import HISTORY_CSV, HISTORY_JSON

#: The splits a run trains (train) and validates (val) on.
TRAINING_SPLITS = ("train", "val")
#: What the kit writes in a run folder; ``--restart`` removes these and nothing else.
RUN_FILES = ("config.json", "model.keras", HISTORY_JSON, HISTORY_CSV, CHECKPOINT_DIR, BACKUP_DIR)


def data_fingerprint(data_root, preset: Preset) -> dict:
    """What ``preset`` trains on under ``data_root`` (JSON-ready).

    Returns ``{"root": resolved path, "train": {...}, "val": {...}}``; each split is
    ``{"annotations": {"bytes", "sha256"}, "images": {"count", "sha256"}}``, or
    ``{"annotations": None}`` when its annotation file is missing (training then stops
    with its own message).
    """
    root = Path(data_root).expanduser().resolve()
    found: dict = {"root": str(root)}
    dc = preset.data
    for split, limit in zip(TRAINING_SPLITS, (dc.train_images, dc.val_images)):
        path = data.annotation_path(root, split)
        if not path.is_file():
            found[split] = {"annotations": None}
            continue
        subset = data.load_subset(root, split, limit, dc.subset_seed, rule=dc.subset)
        listing = hashlib.sha256()
        files = sorted(subset.image_path(r) for r in subset.images)
        for f in files:
            listing.update(f"{f.relative_to(root).as_posix()}\t{f.stat().st_size if f.is_file() else -1}\n"
                           .encode("utf-8"))
        found[split] = {"annotations": {"bytes": path.stat().st_size, "sha256": data.file_sha256(path)},
                        "images": {"count": len(files), "sha256": listing.hexdigest()}}
    return found


def same_data(recorded: dict, current: dict) -> bool:
    """True when two fingerprints name the same annotation files and images (the root may have moved)."""
    return all(recorded.get(split) == current.get(split) for split in TRAINING_SPLITS)


def describe(fingerprint: dict) -> str:
    """One line: the root, then per split its annotation bytes, sha256 prefix and image count."""
    parts = []
    for split in TRAINING_SPLITS:
        entry = fingerprint.get(split) or {}
        ann, images = entry.get("annotations"), entry.get("images") or {}
        parts.append(f"{split}: no annotation file" if not ann else
                     f"{split}: {ann['bytes']} bytes of annotations (sha256 {ann['sha256'][:12]}), "
                     f"{images.get('count', '?')} images (list sha256 {images.get('sha256', '?')[:12]})")
    return f"{fingerprint.get('root', '?')} ({'; '.join(parts)})"


def other_data_message(out_dir: Path, recorded: dict, current: dict) -> str:
    """The refusal of a rerun of the run in ``out_dir`` on other data: both data sets and the fixes."""
    return (f"{out_dir} holds a run trained on other data, so it is neither resumed nor reused:\n"
            f"  the run's data:  {describe(recorded)}\n"
            f"  this command's:  {describe(current)}\n"
            f"Rerun with the run's --data, train into a new --out folder, or pass --restart to start this "
            f"folder afresh on the new data (its model, history and checkpoints are deleted)")


def clear_run(out_dir) -> list[Path]:
    """Delete what the kit wrote in run folder ``out_dir`` (:data:`RUN_FILES`, temporary files).

    Files the kit did not write (e.g. an evaluation's metrics.json) are kept; returns them.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    remove_temporary_files(out_dir)
    for name in RUN_FILES:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return sorted(p for p in out_dir.iterdir() if not p.name.startswith("."))
