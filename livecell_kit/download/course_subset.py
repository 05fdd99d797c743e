"""The course subset: a few real frames per cell type and split, cut from LIVECell's smaller files.

``livecell-kit download --subset course`` takes :data:`COURSE_FRAMES` frames of each of the
8 cell types per split — 4 / 2 / 2, as the offline sample — so a class works on 64 real frames.

**Which frames** (reproducible, no randomness): per split and cell type, the type's image
records in file order, leaving out file names listed twice in that split (LIVECell issue
#14; the repeated train names) and, for train, names the val JSON lists (issue #26: the kit
leaves them out of train anyway), are cut into ``k`` equal stretches.  Each stretch gives
its middle frame — or, when that frame has fewer than ``NEARLY_UNANNOTATED_CELLS`` outlines
(issue #21), the first of the next ``WINDOW - 1`` frames that has enough (else the one with
the most).  Evenly spaced frames span wells and time points instead of one time lapse.

**Which files** (sizes on the official server): val and test come from
``livecell_coco_val.json`` (92.8 MiB) and ``livecell_coco_test.json`` (248.7 MiB) — the
per-cell-type val/test files add up to the same bytes, and these stay cached for a later
``--subset seed`` or ``full``.  Train comes from the smallest size-split file of the paper's
training-set-size study that holds ``k`` frames of every type (``0_train2percent.json``, about
2 % of the 525.6 MiB train JSON), else the next size split, else the full train JSON.
About 350 MiB of JSON and 15 MB of frames in all.

The written ``annotations/livecell_coco_{split}.json`` hold only the chosen images and
their annotations (key ``kit_subset`` says so and names the source file).  The source
files are read through the kit's streaming annotation index
(:func:`~livecell_kit.data.index.open_index`): parsed once, never held whole in memory,
and reused by a later ``--subset seed`` or ``full`` run.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath

from livecell_kit.data.index import open_index
from livecell_kit.data.layout import CELL_TYPES, cell_type_of
from livecell_kit.data.subsets import NEARLY_UNANNOTATED_CELLS

#: Frames per cell type and split of ``--subset course`` (like the offline sample).
COURSE_FRAMES = {"train": 4, "val": 2, "test": 2}
#: Frames looked at per slot when its middle frame is nearly unannotated.
WINDOW = 4


def file_names(path, progressbar: bool = True) -> frozenset[str]:
    """The image file names an annotation JSON lists (base names)."""
    return frozenset(PurePosixPath(img["file_name"]).name
                     for img in open_index(path, progress=progressbar).images)


def candidate_windows(images, per_type: int, exclude=frozenset()) -> dict[str, list[list[dict]]]:
    """Per cell type, ``per_type`` windows of image records (the slot's middle frame first).

    See the module docstring for the rule; a type with fewer than ``per_type`` eligible
    frames gets one window per frame.
    """
    names = Counter(PurePosixPath(img["file_name"]).name for img in images)
    by_type: dict[str, list[dict]] = {}
    for img in images:
        name = PurePosixPath(img["file_name"]).name
        if names[name] == 1 and name not in exclude:
            by_type.setdefault(cell_type_of(name), []).append(img)
    windows = {}
    for cell_type, frames in by_type.items():
        slots = min(per_type, len(frames))
        starts = [int((i + 0.5) * len(frames) / slots) for i in range(slots)]
        windows[cell_type] = [frames[s: s + WINDOW] for s in starts]
    return windows


def course_subset(path, per_type: int, exclude=frozenset(), require_all: bool = False,
                  source: str = "", progressbar: bool = True) -> dict | None:
    """The COCO dataset of ``path`` restricted to the course frames (rule: module docstring).

    exclude: file names never to pick (train: the val JSON's names).
    require_all: return None, before reading any annotation, when a cell type has fewer
        than ``per_type`` eligible frames (the caller then tries a bigger file).
    source: the registry name of ``path``, recorded under ``kit_subset``.
    """
    index = open_index(Path(path), progress=progressbar)
    windows = candidate_windows(index.images, per_type, exclude)
    short = [t for t in CELL_TYPES if len(windows.get(t, [])) < per_type]
    if require_all and short:
        return None
    candidates = [img for slots in windows.values() for window in slots for img in window]
    rows = {img["id"]: index.row_of(img["id"]) for img in candidates}
    counts = dict(zip(rows, index.cell_counts(list(rows.values())).tolist()))
    chosen = []
    for cell_type in CELL_TYPES:
        taken: set = set()
        for window in windows.get(cell_type, []):
            free = [img for img in window if img["id"] not in taken]
            good = [img for img in free if counts[img["id"]] >= NEARLY_UNANNOTATED_CELLS]
            pick = good[0] if good else max(free, key=lambda img: counts[img["id"]], default=None)
            if pick is not None:
                taken.add(pick["id"])
                chosen.append(pick)
    dataset = index.coco_dataset([rows[img["id"]] for img in chosen])
    dataset["kit_subset"] = {"subset": "course", "source": source or Path(path).name,
                             "frames_per_cell_type": per_type, "cell_types_short": short}
    return dataset
