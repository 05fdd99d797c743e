"""A LIVECell-sized copy built deterministically from the kit's synthetic sample (no real pixel in it).

Used by ``bench/livecell_scale.py``.  :func:`build_copy` writes, under ``<workdir>``::

    sample/                    livecell_kit.sample.make_sample(seed 0): frames and outlines to reuse
    frames/<Type>_<k>.tif      the sample's 24 frames as LZW TIFFs with a horizontal predictor (as LIVECell's)
    root/                      a data root in the real layout: flat image folders (hard links to frames/)
                               and annotations/livecell_coco_{train,val,test}.json
    server/                    the official server's layout for every name in download.REGISTRY:
                               images.zip (stored members, images/livecell_*_images/<name>), the three
                               JSONs (hard links), per-cell-type and training-set-size JSONs
    .livecell-scale.json       the stamp: settings, files and figures of the finished build

What is like LIVECell (figures from the registry and /work/shared/livecell-real-dev/README.md):
3,253 / 570 / 1,564 image records; 3,727 train/val and 1,512 test files; 65 train file names with two
records, 31 names in train and val, 52 test names annotated twice; 1.7 M cells; JSON files of
525.6 / 92.8 / 248.7 MiB written as the official ones (one line, ", " separators, key order,
annotation ids following their image id, 2-decimal polygon coordinates, float-noisy bbox and area).
Outlines are the sample's, moved to random places and resampled by arc length to the vertex count
that makes each file its official size (the mean is ~23 at 1.7 M cells); frames are the sample's
frames under new names.  ``scale`` shrinks record, cell and byte counts in proportion.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from livecell_kit import atomic, data, download, sample

BUILD_VERSION = 2
STAMP_NAME = ".livecell-scale.json"
SAMPLE_SEED = 0
#: One frame per cell type and split (24 frames): the copy reuses each of them some 200 times at
#: scale 1 anyway, and what the benchmark measures (file sizes, outlines) does not need more;
#: drawing the whole sample (64 frames) tripled the build time of a small copy.
SAMPLE_FRAMES = {"train": 1, "val": 1, "test": 1}
TOTAL_CELLS = 1_700_000
FILE_MIB = {"train": 525.6, "val": 92.8, "test": 248.7}  # official JSON sizes (registry.py)
RECORDS = {"train": 3253, "val": 570, "test": 1564}
TRAIN_REPEATED_NAMES, TRAIN_VAL_SHARED_NAMES, TEST_REPEATED_NAMES = 65, 31, 52
#: Relative density of cells per frame by type (BV2 crowds, SH-SY5Y is sparse), a rough LIVECell look.
TYPE_DENSITY = {"A172": 0.6, "BT474": 1.3, "BV2": 2.2, "Huh7": 0.5, "MCF7": 1.4, "SHSY5Y": 0.4,
                "SkBr3": 1.2, "SKOV3": 0.6}
NEARLY_UNANNOTATED_FRACTION = 0.005  # LIVECell issue #21: a few frames with 1-9 outlines
ZIP_DATE = (2021, 1, 19, 0, 0, 0)
_BYTES_PER_VERTEX = 15.6  # ", 593.93, 273.39": two 2-decimal numbers and separators


@dataclass(frozen=True)
class Record:
    """One image record of a split: ids from LIVECell's one counter (image id, then its cells' ids)."""

    split: str
    image_id: int
    file_name: str
    cells: int
    size_percent: float  # uniform 0..100: in a training-set-size file of p % when below p


def _scaled(n: int, scale: float, least: int) -> int:
    return max(least, round(n * scale))


def _names(rng, count: int, taken: set) -> list[str]:
    """New LIVECell-style file names <Type>_Phase_<Well>_<Loc>_<DDdHHhMMm>_<Crop>.tif."""
    names = []
    while len(names) < count:
        cell_type = data.CELL_TYPES[rng.integers(len(data.CELL_TYPES))]
        hours = 4 * int(rng.integers(0, 37))
        name = (f"{cell_type}_Phase_{'ABCDEFGH'[rng.integers(8)]}{rng.integers(1, 13)}_{rng.integers(1, 5)}_"
                f"{hours // 24:02d}d{hours % 24:02d}h00m_{rng.integers(1, 5)}.tif")
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def plan_records(scale: float) -> dict[str, list[Record]]:
    """Split -> its image records in file order, with LIVECell's repeated and shared names."""
    rng = np.random.default_rng([SAMPLE_SEED, 13])
    n = {s: _scaled(RECORDS[s], scale, 8) for s in data.SPLITS}
    repeated_train = min(_scaled(TRAIN_REPEATED_NAMES, scale, 1), n["train"] // 2)
    shared = min(_scaled(TRAIN_VAL_SHARED_NAMES, scale, 1), n["val"] // 2)
    repeated_test = min(_scaled(TEST_REPEATED_NAMES, scale, 1), n["test"] // 2)
    taken: set = set()
    train = _names(rng, n["train"] - repeated_train, taken)
    val = list(rng.choice(train, shared, replace=False)) + _names(rng, n["val"] - shared, taken)
    test = _names(rng, n["test"] - repeated_test, taken)
    lists = {"train": train + list(rng.choice(train, repeated_train, replace=False)), "val": val,
             "test": test + list(rng.choice(test, repeated_test, replace=False))}
    for split, names in lists.items():  # repeats anywhere in the file, as in LIVECell's
        lists[split] = [names[i] for i in rng.permutation(len(names))]
    # Cells per record: type density times a wide spread, a few frames nearly unannotated, sums exact.
    cells = {}
    for split, names in lists.items():
        weight = np.array([TYPE_DENSITY[data.cell_type_of(x)] for x in names]) * rng.lognormal(0, 0.5, len(names))
        total = round(TOTAL_CELLS * FILE_MIB[split] / sum(FILE_MIB.values()) * len(names) / RECORDS[split])
        sparse = rng.random(len(names)) < NEARLY_UNANNOTATED_FRACTION
        counts = np.where(sparse, rng.integers(1, 10, len(names)), 0)
        share = np.floor(weight * ~sparse / weight[~sparse].sum() * (total - counts.sum())).astype(int)
        counts = np.maximum(counts + share, 1)
        counts[np.argmax(counts)] += total - counts.sum()
        cells[split] = counts
    # Ids from one counter over all records in a shuffled order, as LIVECell's ids are.
    order = [(s, i) for s in data.SPLITS for i in range(len(lists[s]))]
    ids, counter = {}, 1
    for k in rng.permutation(len(order)):
        split, i = order[k]
        ids[split, i] = counter
        counter += 1 + int(cells[split][i])
    return {s: [Record(s, ids[s, i], lists[s][i], int(cells[s][i]), float(rng.uniform(0, 100)))
                for i in range(len(lists[s]))] for s in data.SPLITS}


def _outline_pools(sample_root: Path) -> dict[str, list[np.ndarray]]:
    """Cell type -> the sample's outlines as (V, 2) float arrays relative to their bbox corner."""
    pools: dict[str, list] = {t: [] for t in data.CELL_TYPES}
    for split in data.SPLITS:
        coco = json.loads(data.annotation_path(sample_root, split).read_text())
        type_of = {img["id"]: data.cell_type_of(img["file_name"]) for img in coco["images"]}
        for ann in coco["annotations"]:
            xy = np.asarray(ann["segmentation"][0], float).reshape(-1, 2)
            pools[type_of[ann["image_id"]]].append(xy - xy.min(axis=0))
    return pools


def _resample(outline: np.ndarray, vertices: int) -> np.ndarray:
    """``vertices`` points at equal arc length along a closed outline (V, 2)."""
    ring = np.vstack([outline, outline[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(ring, axis=0).T))])
    at = np.arange(vertices) * arc[-1] / vertices
    return np.stack([np.interp(at, arc, ring[:, 0]), np.interp(at, arc, ring[:, 1])], axis=1)


class _CellWriter:
    """Annotation text of one record; the vertex count per cell follows the file's byte budget."""

    def __init__(self, pools, budget_bytes: int, total_cells: int):
        self.pools, self.resampled = pools, {}
        self.budget, self.cells_left = budget_bytes, total_cells
        self.overhead = 170.0  # bytes of a cell besides its vertices; re-estimated as we go
        self.vertices = 0

    def _pool(self, cell_type: str, vertices: int) -> np.ndarray:
        key = (cell_type, vertices)
        if key not in self.resampled:
            self.resampled[key] = np.stack([_resample(o, vertices) for o in self.pools[cell_type]])
        return self.resampled[key]

    def text(self, record: Record) -> str:
        rng = np.random.default_rng([SAMPLE_SEED, 7, record.image_id])
        per_cell = self.budget / max(self.cells_left, 1)
        mean_v = int(np.clip(round((per_cell - self.overhead) / _BYTES_PER_VERTEX), 8, 60))
        spread = np.clip(mean_v + rng.integers(-4, 5, record.cells), 6, 64)
        cell_type = data.cell_type_of(record.file_name)
        anns = []
        for v in np.unique(spread):
            pool = self._pool(cell_type, int(v))
            picks = pool[rng.integers(len(pool), size=int((spread == v).sum()))]
            room = np.maximum(np.array([data.IMAGE_WIDTH, data.IMAGE_HEIGHT]) - picks.max(axis=1), 0)
            xy = np.round(picks + rng.uniform(0, 1, (len(picks), 1, 2)) * room[:, None, :], 2)
            x, y = xy[..., 0], xy[..., 1]
            area = 0.5 * np.abs((x * np.roll(y, -1, 1) - y * np.roll(x, -1, 1)).sum(axis=1))
            lo, hi = xy.min(axis=1), xy.max(axis=1)
            for k in range(len(xy)):
                anns.append({"segmentation": [xy[k].ravel().tolist()], "area": float(area[k]),
                             "bbox": [float(lo[k, 0]), float(lo[k, 1]), float(hi[k, 0] - lo[k, 0]),
                                      float(hi[k, 1] - lo[k, 1])]})
        text = json.dumps([{"id": record.image_id + 1 + k, "image_id": record.image_id, "category_id": 1, **a,
                            "iscrowd": 0} for k, a in enumerate(anns)])[1:-1]
        self.budget -= len(text) + 2
        self.cells_left -= record.cells
        self.vertices += int(spread.sum())
        self.overhead += 0.5 * ((len(text) - spread.sum() * _BYTES_PER_VERTEX) / record.cells - self.overhead)
        return text


def _image_entry(record: Record) -> dict:
    png = record.file_name[:-4] + ".png"
    return {"id": record.image_id, "width": data.IMAGE_WIDTH, "height": data.IMAGE_HEIGHT,
            "file_name": record.file_name, "original_filename": png,
            "url": f"https://livecell-kit.invalid/livecell-scale/{record.image_id}/original"}


def _head(description: str) -> str:
    """The official files' first keys, up to the opening of ``images``."""
    head = {"info": {"year": "2021", "version": "1.0", "description": description,
                     "contributor": "livecell-kit (synthetic, from the kit's sample)",
                     "url": "https://livecell-kit.invalid/", "date_created": "2021/01/19"},
            "licenses": [{"id": 1, "name": "synthetic sample of livecell-kit (MIT, as the kit)", "url": ""}],
            "categories": [{"supercategory": "cell", "id": 1, "name": "cell"}]}
    return json.dumps(head)[:-1] + ', "images": ['


def _json_outputs(records: dict, root: Path, server: Path) -> dict[Path, tuple[str, list[Record]]]:
    """File -> (split, its records): the three split files and each registry JSON derived from them."""
    outputs = {data.annotation_path(root, s): (s, records[s]) for s in data.SPLITS}
    for name in download.REGISTRY:
        parts = name.split("/")
        if name.startswith("annotations/LIVECell_single_cells/") and len(parts) == 4:
            split, wanted = parts[3][:-5], parts[2].lower()
            outputs[server / name] = (split, [r for r in records.get(split, [])
                                              if data.cell_type_of(r.file_name).lower() == wanted])
        elif name.startswith("annotations/LIVECell_dataset_size_split/"):
            percent = float(parts[-1].split("train")[1].split("percent")[0])
            outputs[server / name] = ("train", [r for r in records["train"] if r.size_percent < percent])
    return outputs


def write_annotations(records: dict, pools, root: Path, server: Path) -> dict:
    """Write every JSON in one pass per split (a cell's text is made once); returns per-split figures."""
    outputs = _json_outputs(records, root, server)
    figures = {}
    for split in data.SPLITS:
        members = {path: {r.image_id for r in recs} for path, (of, recs) in outputs.items() if of == split}
        with contextlib.ExitStack() as stack:
            files = {}
            for path in members:
                tmp = stack.enter_context(atomic.atomic_path(path))
                files[path] = stack.enter_context(open(tmp, "w", encoding="utf-8"))
                recs = [r for r in records[split] if r.image_id in members[path]]
                files[path].write(_head(f"livecell-kit LIVECell-scale copy ({path.name})")
                                  + ", ".join(json.dumps(_image_entry(r)) for r in recs) + '], "annotations": [')
            main = data.annotation_path(root, split)
            budget = round(FILE_MIB[split] * 2**20 * len(records[split]) / RECORDS[split]) - files[main].tell() - 3
            writer = _CellWriter(pools, budget, sum(r.cells for r in records[split]))
            started = set()
            for record in records[split]:
                text = writer.text(record)
                for path, ids in members.items():
                    if record.image_id in ids:
                        files[path].write((", " if path in started else "") + text)
                        started.add(path)
            for f in files.values():
                f.write("]}")
        figures[split] = {"records": len(records[split]), "cells": sum(r.cells for r in records[split]),
                          "mean_vertices": round(writer.vertices / max(1, sum(r.cells for r in records[split])), 1),
                          "mib": round(main.stat().st_size / 2**20, 1)}
    return figures


def _lzw_frames(sample_root: Path, frames: Path) -> dict[str, list[Path]]:
    """Cell type -> the sample's frames of that type re-written as LZW TIFFs (horizontal predictor)."""
    by_type: dict[str, list[Path]] = {t: [] for t in data.CELL_TYPES}
    for tif in sorted(sample_root.glob("images/*/*.tif")):
        cell_type = data.cell_type_of(tif.name)
        out = frames / f"{cell_type}_{len(by_type[cell_type])}.tif"
        with atomic.atomic_path(out, suffix=".tif") as tmp:
            tifffile.imwrite(tmp, tifffile.imread(tif), compression="lzw", predictor=True,
                             photometric="minisblack", metadata=None)
        by_type[cell_type].append(out)
    return by_type


def _frame_for(name: str, by_type) -> Path:
    choices = by_type[data.cell_type_of(name)]
    return choices[zlib.crc32(name.encode()) % len(choices)]


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system: copy
        shutil.copyfile(src, dst)


def layout_images(records: dict, by_type, root: Path, server: Path) -> list[str]:
    """Flat image folders under root (hard links) and server/images.zip; returns root-relative paths."""
    names = {"train": sorted({r.file_name for s in ("train", "val") for r in records[s]}),
             "test": sorted({r.file_name for r in records["test"]})}
    written = []
    with atomic.atomic_path(server / "images.zip") as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for split, files in names.items():
            folder = data.split_image_dir(Path(), split)
            for name in files:
                rel = (folder / name).as_posix()
                _link(_frame_for(name, by_type), root / rel)
                info = zipfile.ZipInfo(rel, date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                archive.writestr(info, _frame_for(name, by_type).read_bytes(), zipfile.ZIP_STORED)
                written.append(rel)
    return written


def build_copy(workdir, scale: float = 1.0, log=print) -> dict:
    """Build (or reuse) the copy under ``workdir``; returns the stamp: settings, files, figures, seconds."""
    workdir = Path(workdir)
    settings = {"build_version": BUILD_VERSION, "scale": scale, "sample_seed": SAMPLE_SEED,
                "registry": sorted(download.REGISTRY)}  # a file added to the registry is served after a rebuild
    stamp = atomic.read_stamp(workdir / STAMP_NAME)
    if stamp and stamp.get("settings") == settings and all((workdir / f).is_file() for f in stamp["files"]):
        log(f"reusing the copy in {workdir} (built in {stamp['seconds']:.0f} s)")
        return stamp
    start = time.perf_counter()
    root, server = workdir / "root", workdir / "server"
    for stale in (root, server, workdir / "frames"):
        shutil.rmtree(stale, ignore_errors=True)
    sample_root = sample.make_sample(workdir / "sample", seed=SAMPLE_SEED, images_per_type=SAMPLE_FRAMES)
    records = plan_records(scale)
    log(f"building the copy in {workdir} (scale {scale:g}): "
        + ", ".join(f"{len(v)} {k}" for k, v in records.items()) + " records")
    figures = write_annotations(records, _outline_pools(sample_root), root, server)
    for split in data.SPLITS:  # the server's copies of the three split files
        _link(data.annotation_path(root, split), server / "annotations" / "LIVECell" / f"livecell_coco_{split}.json")
    images = layout_images(records, _lzw_frames(sample_root, workdir / "frames"), root, server)
    files = [f"root/{p}" for p in [data.annotation_path(Path(), s).as_posix() for s in data.SPLITS] + images]
    unserved = [name for name in download.REGISTRY if not (server / name).is_file()]
    if unserved:
        log(f"the local server will answer 404 for {len(unserved)} registry file(s) it cannot derive: {unserved}")
    figures["images"] = {"train_val_files": sum(p.startswith("images/livecell_train") for p in images),
                         "test_files": sum(p.startswith("images/livecell_test") for p in images),
                         "zip_mib": round((server / "images.zip").stat().st_size / 2**20, 1)}
    stamp = {"complete": True, "settings": settings, "seconds": round(time.perf_counter() - start, 1),
             "figures": figures, "files": files}
    atomic.write_stamp(workdir / STAMP_NAME, stamp)
    log(f"built in {stamp['seconds']:.0f} s")
    return stamp
