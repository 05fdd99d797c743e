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
their annotations (key ``kit_subset`` says so and names the source file).  JSONs are
streamed with ijson: the images list is read up to the annotations, then one pass over the
annotations keeps those of the candidate frames; no whole file is held in memory.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path, PurePosixPath

import ijson
from tqdm.auto import tqdm

from livecell_kit.data.layout import CELL_TYPES, cell_type_of
from livecell_kit.data.subsets import NEARLY_UNANNOTATED_CELLS

#: Frames per cell type and split of ``--subset course`` (like the offline sample).
COURSE_FRAMES = {"train": 4, "val": 2, "test": 2}
#: Frames looked at per slot when its middle frame is nearly unannotated.
WINDOW = 4


class _ProgressFile:
    """A binary file whose reads advance a tqdm bar (bytes)."""

    def __init__(self, handle, bar):
        self.handle, self.bar = handle, bar

    def read(self, n=-1):
        data = self.handle.read(n)
        self.bar.update(len(data))
        return data


def read_head(path) -> tuple[dict, str]:
    """The top-level values of the COCO JSON at ``path`` other than ``annotations``, and
    whether ``annotations`` is a list (``"start_array"``, official files) or a dict
    (``"start_map"``, Kaggle copies).  Reads only up to ``annotations`` when it comes last,
    as in LIVECell's files; a key that follows it costs a streaming pass.
    """
    head, key, builder, kind = {}, None, None, None
    with open(path, "rb") as f:
        for prefix, event, value in ijson.parse(f, use_float=True):
            if prefix == "":
                if builder is not None:
                    head[key], builder = builder.value, None
                if event == "map_key":
                    key = value
                continue
            if key == "annotations":
                kind = event
                break
            if builder is None:
                builder = ijson.ObjectBuilder()
            builder.event(event, value)
    if kind not in ("start_array", "start_map"):
        raise ValueError(f"{path} has no 'annotations' list or dict; is it a COCO annotation file?")
    for later in ("images", "categories"):
        if later not in head:
            with open(path, "rb") as f:
                found = next(ijson.items(f, later, use_float=True), None)
            if found is not None:
                head[later] = found
    return head, kind


def _annotations(path: Path, kind: str, progressbar: bool):
    """Every annotation record of the file, streamed, with a progress bar (bytes read)."""
    with open(path, "rb") as handle, tqdm(total=os.path.getsize(path), unit="B", unit_scale=True,
                                          unit_divisor=1024, desc=f"reading {path.name}",
                                          disable=not progressbar, leave=False) as bar:
        f = _ProgressFile(handle, bar)
        if kind == "start_array":
            yield from ijson.items(f, "annotations.item", use_float=True)
        else:
            for _, ann in ijson.kvitems(f, "annotations", use_float=True):
                yield ann


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
    path = Path(path)
    head, kind = read_head(path)
    windows = candidate_windows(head.get("images", []), per_type, exclude)
    short = [t for t in CELL_TYPES if len(windows.get(t, [])) < per_type]
    if require_all and short:
        return None
    wanted = {img["id"] for slots in windows.values() for window in slots for img in window}
    counts: Counter = Counter()
    kept = []
    for ann in _annotations(path, kind, progressbar):
        if ann["image_id"] in wanted:
            counts[ann["image_id"]] += 1
            kept.append(ann)
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
    ids = {img["id"] for img in chosen}
    dataset = {k: v for k, v in head.items() if k != "images"}
    dataset["images"] = chosen
    dataset["annotations"] = [ann for ann in kept if ann["image_id"] in ids]
    dataset["kit_subset"] = {"subset": "course", "source": source or path.name,
                             "frames_per_cell_type": per_type, "cell_types_short": short}
    return dataset
