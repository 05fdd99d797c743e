"""Where LIVECell files live on disk: one layout for the real data set and the sample.

::

    root/
      images/livecell_train_val_images/<file_name>              (official images.zip: flat)
      images/livecell_train_val_images/<CellType>/<file_name>   (images_per_celltype.zip)
      images/livecell_test_images/...                           (same two forms)
      annotations/livecell_coco_{train,val,test}.json

File names read ``<CellType>_Phase_<Well>_<Loc>_<Time>_<Crop>.tif``.  Frames are 8-bit
grayscale phase contrast, :data:`IMAGE_HEIGHT` x :data:`IMAGE_WIDTH` px.
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

CELL_TYPES = ("A172", "BT474", "BV2", "Huh7", "MCF7", "SHSY5Y", "SkBr3", "SKOV3")
SPLITS = ("train", "val", "test")
IMAGE_HEIGHT, IMAGE_WIDTH = 520, 704  # px: rows, columns of every LIVECell frame

#: The fix every "your data is missing or broken" message offers.
FIX_DATA = ("recreate it with `livecell-kit sample --out DIR` or fetch it again with "
            "`livecell-kit download --out DIR`")

#: Written into a data root (or its images/ folder) once all of images.zip is extracted there.
FULL_STAMP = ".images.zip.extracted"

_CELL_TYPE_BY_LOWER = {t.lower(): t for t in CELL_TYPES}


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


def frames_stamp(subset: str) -> str:
    """Name of the stamp in ``<root>/images/`` listing the frames ``download --subset <subset>`` wrote."""
    return f".{subset}-frames.fetched"


def download_command(path) -> str:
    """The ``livecell-kit download`` command that wrote the frame at ``path``, and so repairs it.

    Looks for the stamps a download leaves in the data root above ``path``
    (``<root>/images/<folder>/...``); the latest subset written wins.  Without one: the
    general form, ``livecell-kit download --out DIR``.
    """
    for images in Path(path).parents:
        if images.name != "images":
            continue
        root = images.parent
        stamps = [(images / frames_stamp(s), f" --subset {s}") for s in ("seed", "course")]
        stamps += [(folder / FULL_STAMP, "") for folder in (root, images)]
        found = [(stamp.stat().st_mtime_ns, flag) for stamp, flag in stamps if stamp.is_file()]
        if found:
            return f"livecell-kit download --out {root}{max(found)[1]}"
    return "livecell-kit download --out DIR"
