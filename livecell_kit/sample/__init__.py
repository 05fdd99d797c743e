"""The kit's built-in data set: a small, LIVECell-like synthetic sample.

:func:`make_sample` draws phase-contrast-looking frames of the eight LIVECell
cell types and writes them in LIVECell's own layout and JSON format, so every
notebook runs offline, and later on the real data set without changes::

    out/images/livecell_train_val_images/<CellType>_Phase_C7_1_00d04h00m_2.tif   (flat, as images.zip)
    out/images/livecell_test_images/...
    out/annotations/livecell_coco_{train,val,test}.json

The JSON is what the official S3 files hold: ``annotations`` as a list, large
non-contiguous image and annotation ids, ``original_filename`` ending in .png and
a ``url`` per image (here under the reserved, never-resolving ``.invalid`` domain).

Each frame is 704×520 (W×H) pixels, single-channel uint8, drawn to match real
LIVECell frames (figures in :mod:`livecell_kit.sample.cells`): a flat grey
background at 128 with fine noise, faint streaks and debris; cells about as bright
as the background but textured, each inside a bright halo, round and sparse in a
type's early frames, packed into flat sheets in its late ones
(:mod:`livecell_kit.sample.optics` draws them).  Every cell is a star-shaped
polygon; the polygon *is* the annotation, so the masks decoded from the JSON
describe exactly the cells that were drawn.

The folder's stamp records how it was drawn (generator version, seed, frames per type)
and the size and CRC-32 of every file; :func:`make_sample` compares them each time it is
asked for the sample and draws
it again, with a one-line warning, when a file is missing, truncated or changed.

Same ``seed`` -> byte-identical files.  The default sample has 4/2/2 images per
type and split, 64 frames.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import tifffile
from pycocotools import mask as mask_utils

from livecell_kit import atomic
from livecell_kit.data import (CELL_TYPES, IMAGE_HEIGHT, IMAGE_WIDTH, SPLITS, annotation_path,
                               split_image_dir)
from livecell_kit.sample.cells import MORPHOLOGIES, place_cells
from livecell_kit.sample.optics import render_frame

DEFAULT_IMAGES_PER_TYPE = {"train": 4, "val": 2, "test": 2}
#: Written last; its presence with the same settings means the sample is complete.
STAMP_NAME = ".livecell-kit-sample.json"
#: Bump when the drawing changes, so cached samples are regenerated.
GENERATOR_VERSION = 4


# --------------------------------------------------------------------------- files

def _write_tiff(path: Path, img: np.ndarray) -> None:
    buf = io.BytesIO()
    # no compression, no time stamp, no shape description: same pixels -> same bytes
    tifffile.imwrite(buf, img, photometric="minisblack", compression=None, metadata=None,
                     software="livecell-kit")
    atomic.write_bytes(path, buf.getvalue())


def _file_names(rng: np.random.Generator, cell_type: str, count: int, seen: set[str]) -> list[str]:
    """Distinct LIVECell-style names: <type>_Phase_<well>_<location>_<time>_<crop>.tif.

    ``seen`` holds the names already given (all splits): train and val frames share one
    folder, and a name in two splits would be LIVECell's train/val overlap quirk.
    """
    names: list[str] = []
    while len(names) < count:
        well = f"{'ABCDEFGH'[rng.integers(8)]}{rng.integers(1, 13)}"
        hours = 4 * int(rng.integers(0, 19))  # frames every 4 h over three days
        time = f"{hours // 24:02d}d{hours % 24:02d}h00m"
        name = f"{cell_type}_Phase_{well}_{rng.integers(1, 5)}_{time}_{rng.integers(1, 5)}.tif"
        if name not in seen:
            seen.add(name)
            names.append(name)
    # in time order: frame k of a type is drawn sparser than frame k + 1, as cells grow
    return sorted(names, key=lambda n: n.split("_")[-2])


def _check_sizes(images_per_type) -> dict[str, int]:
    sizes = dict(DEFAULT_IMAGES_PER_TYPE if images_per_type is None else images_per_type)
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"images_per_type has unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
    out = {}
    for split in SPLITS:
        v = sizes.get(split, 0)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"images_per_type[{split!r}] must be a whole number >= 0, got {v!r}")
        out[split] = int(v)
    return out


def make_sample(out, seed: int = 0, images_per_type: dict[str, int] | None = None) -> Path:
    """Write the synthetic LIVECell-like sample to ``out`` and return ``Path(out)``.

    out: folder to write into; created if missing.
    seed: same seed -> byte-identical files; another seed -> other images.
    images_per_type: frames per cell type and split, default
        ``{"train": 4, "val": 2, "test": 2}`` (32/16/16 frames over 8 types).

    Returns at once, without drawing anything, when ``out`` already holds a
    complete sample made with the same settings whose files have the sizes and
    checksums recorded when they were written; a sample that does not match is
    drawn again with a warning.  Refuses to write into a folder holding a data
    set it did not make (e.g. the real LIVECell).
    """
    out = Path(out).expanduser()
    sizes = _check_sizes(images_per_type)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    seed = int(seed)
    settings = {"generator_version": GENERATOR_VERSION, "seed": seed, "images_per_type": sizes}
    stamp_path = out / STAMP_NAME
    stamp = atomic.read_stamp(stamp_path)
    if stamp is not None:
        _sweep(out)
    if stamp is not None and stamp.get("complete") and stamp.get("settings") == settings:
        problem = atomic.part_problem(out, stamp.get("parts"))
        if problem is None:
            return out
        warnings.warn(f"sample {out} does not match what was drawn: {problem}; drawing it again "
                      f"(seed {seed}, generator v{GENERATOR_VERSION})", stacklevel=2)
    if stamp is None and (out / "annotations").is_dir() and any((out / "annotations").iterdir()):
        raise FileExistsError(
            f"{out} already holds a data set that make_sample did not write (no {STAMP_NAME}); "
            "pass an empty or new folder as out")

    # Mark the folder as an unfinished sample first: an interrupted run is then
    # redrawn next time, never mistaken for a complete one.
    old_files = set(stamp.get("files", [])) if stamp else set()
    atomic.write_stamp(stamp_path, {"complete": False, "settings": settings})

    written: list[str] = []
    # Ids like LIVECell's: large, increasing, with gaps (its image ids run to ~1.6 M).
    id_rng = np.random.default_rng([seed, 4242])
    image_id, ann_id = 100_000, 1_000_000
    names_taken: set[str] = set()
    for s_index, split in enumerate(SPLITS):
        images, annotations = [], []
        for t_index, cell_type in enumerate(CELL_TYPES):
            morph = MORPHOLOGIES[cell_type]
            count = sizes[split]
            names = _file_names(np.random.default_rng([seed, t_index, 1000 + s_index]), cell_type, count,
                                 names_taken)
            for k, name in enumerate(names):
                # one stream per frame: a frame does not change when others are added
                rng = np.random.default_rng([seed, t_index, s_index, k])
                # spread confluence from sparse (round, fresh cells) to confluent (flat sheets)
                q = (k + rng.uniform()) / max(count, 1)
                lo, hi = morph.coverage
                coverage = lo * (hi / lo) ** q
                labels, polygons, rounded = place_cells(rng, morph, coverage,
                                                        rounded_share=morph.rounded * (1.0 - q) ** 2)
                # debris, optics and background from a stream of their own: they stay put when
                # the drawing of the cells changes
                scene = np.random.default_rng([seed, t_index, s_index, k, 1])
                img = render_frame(rng, morph, labels, rounded, crowding=q, scene_rng=scene)
                rel = split_image_dir(Path(), split) / name
                _write_tiff(out / rel, img)
                written.append(rel.as_posix())
                image_id += int(id_rng.integers(1, 5000))
                png = name.rsplit(".", 1)[0] + ".png"
                images.append({"id": image_id, "width": IMAGE_WIDTH, "height": IMAGE_HEIGHT,
                               "file_name": name, "original_filename": png,
                               "url": f"https://livecell-kit.invalid/sample/seed{seed}/{png}"})
                for pts in polygons:
                    seg = [pts.ravel().tolist()]
                    rle = mask_utils.merge(mask_utils.frPyObjects(seg, IMAGE_HEIGHT, IMAGE_WIDTH))
                    area = int(mask_utils.area(rle))
                    if area == 0:
                        continue
                    ann_id += int(id_rng.integers(1, 40))
                    annotations.append({
                        "segmentation": seg,
                        "area": float(area),
                        "iscrowd": 0,
                        "image_id": image_id,
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "category_id": 1,
                        "id": ann_id,
                    })
        dataset = {
            "info": {"description": "livecell-kit synthetic LIVECell-like sample", "version": "1.0",
                     "year": 2021, "contributor": "livecell-kit", "seed": seed,
                     "generator_version": GENERATOR_VERSION},
            # Synthetic: drawn from random numbers, no LIVECell pixel or outline in it.
            "licenses": [{"id": 1, "name": "synthetic sample of livecell-kit (MIT, as the kit)",
                          "url": ""}],
            "categories": [{"id": 1, "name": "cell", "supercategory": "cell"}],
            "images": images,
            "annotations": annotations,
        }
        rel = annotation_path(Path(), split)
        atomic.write_json(out / rel, dataset, indent=None)
        written.append(rel.as_posix())

    # frames left over from an earlier sample with more images per type
    for stale in sorted(old_files - set(written)):
        if not (stale.startswith("images/") and stale.endswith(".tif") and ".." not in stale):
            continue
        try:
            (out / stale).unlink()
        except OSError:
            pass
    atomic.write_stamp(stamp_path, {"complete": True, "settings": settings, "files": written,
                                    "parts": atomic.part_records(out, written)})
    return out


def _sweep(out: Path) -> None:
    """Remove temporary files of writes that were killed, in the folders a sample writes to."""
    for folder in (out, annotation_path(out, "train").parent,
                   *{split_image_dir(out, split) for split in SPLITS}):
        atomic.sweep_temp_files(folder)
