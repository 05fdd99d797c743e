"""The synthetic LIVECell-like sample: layout, determinism, looks and annotations."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy import ndimage

from livecell_kit import data, masks, presets, sample
from livecell_kit.sample.cells import MORPHOLOGIES
from livecell_kit.sample.optics import render_frame

SMALL = {"train": 1, "val": 1, "test": 1}
TINY = {"train": 1, "val": 0, "test": 0}
NAME = re.compile(r"^(?P<type>[A-Za-z0-9]+)_Phase_[A-H]\d{1,2}_\d_\d{2}d\d{2}h\d{2}m_\d\.tif$")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return sample.make_sample(tmp_path_factory.mktemp("sample") / "s0", seed=0, images_per_type=SMALL)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def decoded(root):
    """Per image: split, record, image, its annotations, and from pycocotools' decoding
    of their polygons: per-cell (area, bbox), cells covering each pixel (uint8 (H, W))
    and a label image (int32 (H, W), the last cell wins, 0 = background)."""
    out = []
    for split in data.SPLITS:
        s = data.load_split(root, split)
        coco = data.to_coco(s.coco_dataset())
        for rec in s.images:
            anns = s.annotations_for(rec["id"])
            count = np.zeros((520, 704), np.uint8)
            labels = np.zeros((520, 704), np.int32)
            geometry = []
            for i, ann in enumerate(anns, 1):
                rle = coco.annToRLE(ann)
                x, y, w, h = (int(v) for v in mask_utils.toBbox(rle))
                full = mask_utils.decode(rle)
                mask = full[y:y + h, x:x + w].view(bool)  # the box: cheaper than whole frames
                assert full.sum() == mask.sum() == mask_utils.area(rle)
                rows, cols = np.nonzero(mask)
                geometry.append((float(mask.sum()), [x + cols.min(), y + rows.min(), np.ptp(cols) + 1, np.ptp(rows) + 1]))
                count[y:y + h, x:x + w] += mask
                labels[y:y + h, x:x + w][mask] = i
            out.append(dict(split=split, rec=rec, img=data.read_image(s.image_path(rec)), anns=anns,
                            geometry=geometry, count=count, labels=labels))
    return out


def test_layout_names_and_cell_types(root):
    for split in data.SPLITS:
        raw = json.loads(data.annotation_path(root, split).read_text())
        assert len(raw["images"]) == len(data.CELL_TYPES) * SMALL[split]
        types = set()
        for rec in raw["images"]:
            m = NAME.match(rec["file_name"])
            assert m, rec["file_name"]
            types.add(m["type"])
            # flat, as in the official images.zip
            path = data.split_image_dir(root, split) / rec["file_name"]
            assert path.is_file(), path
            assert (rec["width"], rec["height"]) == (704, 520)
            assert rec["original_filename"] == rec["file_name"][:-4] + ".png"
            assert rec["url"].startswith("https://livecell-kit.invalid/")
        assert types == set(data.CELL_TYPES)
    assert not [p for p in (root / "images").rglob("*") if p.is_dir() and p.parent.name != "images"]
    # nothing half-written left behind
    assert not [p for p in root.rglob("*.tmp*")]


def test_same_seed_gives_identical_bytes_other_seed_differs(root, tmp_path):
    again = sample.make_sample(tmp_path / "again", seed=0, images_per_type=SMALL)
    first, second = _files(root), _files(again)
    assert first.keys() == second.keys()
    assert len([k for k in first if k.endswith(".tif")]) == 24
    for name in first:
        assert first[name] == second[name], name

    other = _files(sample.make_sample(tmp_path / "other", seed=1, images_per_type=TINY))
    tifs = [k for k in other if k.endswith(".tif")]
    assert len(tifs) == 8
    assert not {first[k] for k in first if k.endswith(".tif")} & {other[k] for k in tifs}


def _local_std(img, size=5):
    f = img.astype(np.float32)
    mean = ndimage.uniform_filter(f, size)
    return np.sqrt(np.maximum(ndimage.uniform_filter(f * f, size) - mean * mean, 0.0))


def test_images_look_like_phase_contrast(decoded):
    """As real LIVECell frames (bench/sample_realism.py): a flat grey background, cells about as
    bright as it on average but textured, and a bright halo just inside each drawn outline."""
    stds, rims = [], []
    for d in decoded:
        rec, img = d["rec"], d["img"]
        assert img.dtype == np.uint8 and img.shape == (520, 704)
        assert 122 <= np.median(img) <= 134, rec["file_name"]
        stds.append(img.std())
        cells = d["count"] > 0
        far = ~ndimage.binary_dilation(cells, iterations=8)
        bg = np.median(img[far])
        assert 123 <= bg <= 133 and img[far].std() < 6, rec["file_name"]
        assert abs(img[cells].mean() - bg) < 10, rec["file_name"]  # not dark blobs
        local = _local_std(img)
        assert np.median(local[cells]) > 2 * np.median(local[far]), rec["file_name"]
        rim = cells & ~ndimage.binary_erosion(cells, iterations=2)  # the outline's inner 2 px
        rims.append(img[rim].mean() - bg)
        assert rims[-1] > 0.5, rec["file_name"]  # faint for flat cells (Huh7: real +1), bright for round ones
    assert np.mean(rims) > 3
    # a flat frame, as LIVECell's: grey-level std of several levels (real frames: 6.2-31)
    assert 3 <= min(stds) and max(stds) <= 35


def test_annotations_are_official_lists_and_load_with_pycocotools(root, decoded):
    image_ids, ann_ids = set(), set()
    for split in data.SPLITS:
        raw = json.loads(data.annotation_path(root, split).read_text())
        assert raw["categories"] == [{"id": 1, "name": "cell", "supercategory": "cell"}]
        # the official S3 files: a list, large ids with gaps
        assert isinstance(raw["annotations"], list) and raw["annotations"]
        ids_in_order = [a["id"] for a in raw["annotations"]]
        assert ids_in_order == sorted(set(ids_in_order)) and min(ids_in_order) > 1_000_000
        assert len(ids_in_order) < max(ids_in_order) - min(ids_in_order)  # not contiguous
        assert min(r["id"] for r in raw["images"]) > 100_000
        for ann in raw["annotations"]:
            assert ann["category_id"] == 1 and ann["iscrowd"] == 0
            (poly,) = ann["segmentation"]
            xy = np.asarray(poly).reshape(-1, 2)
            assert len(poly) >= 6 and xy.min() >= 0
            assert xy[:, 0].max() <= 704 and xy[:, 1].max() <= 520
        ids = {r["id"] for r in raw["images"]}
        assert not ids & image_ids and not set(ids_in_order) & ann_ids  # unique across splits
        image_ids |= ids
        ann_ids |= set(ids_in_order)

    assert sum(len(d["anns"]) for d in decoded) == len(ann_ids)
    for d in decoded:
        for ann, (area, bbox) in zip(d["anns"], d["geometry"]):
            # the stored area and box are those of the decoded polygon
            assert ann["area"] == area and ann["bbox"] == bbox, (d["rec"]["file_name"], ann["id"])
            assert 30 <= area <= 15000  # real Huh7 cells reach 12,662 px


def _elongations(labels):
    """Per labelled cell: length / width, from the second moments of its pixels."""
    rows, cols = np.nonzero(labels)
    lab = labels[rows, cols]
    n = np.bincount(lab).astype(float)
    keep = n > 0
    mean = lambda v: np.bincount(lab, v)[keep] / n[keep]  # noqa: E731
    my, mx = mean(rows), mean(cols)
    cyy = mean(rows * rows.astype(float)) - my ** 2
    cxx = mean(cols * cols.astype(float)) - mx ** 2
    cxy = mean(rows * cols.astype(float)) - mx * my
    root = np.sqrt(((cxx - cyy) / 2) ** 2 + cxy ** 2)
    big, small = (cxx + cyy) / 2 + root, (cxx + cyy) / 2 - root
    return list(np.sqrt(big / np.maximum(small, 1e-9)))


def test_cells_touch_overlap_little_and_vary_in_shape_and_density(decoded):
    touching, coverage, area, elongation = 0, [], {}, {}
    for d in decoded:
        cell_type = data.cell_type_of(d["rec"]["file_name"])
        count, labels, anns = d["count"], d["labels"], d["anns"]
        covered = count > 0
        coverage.append(covered.mean())
        assert (count > 1).sum() < 0.03 * covered.sum(), d["rec"]["file_name"]  # limited overlap
        # two different cells side by side (4-neighbours) = touching
        touching += np.count_nonzero((labels[1:] != labels[:-1]) & (labels[1:] > 0) & (labels[:-1] > 0))
        area.setdefault(cell_type, []).extend(a["area"] for a in anns)
        elongation.setdefault(cell_type, []).extend(_elongations(labels))
    assert touching > 100
    assert min(coverage) < 0.1 and max(coverage) > 0.25  # sparse to crowded
    med = {t: np.median(v) for t, v in area.items()}
    assert med["BV2"] < med["Huh7"] and med["MCF7"] < med["Huh7"] and med["SHSY5Y"] < med["A172"]
    assert np.median(elongation["SKOV3"]) > np.median(elongation["BV2"]) + 0.5, (
        np.median(elongation["SKOV3"]), np.median(elongation["BV2"]))


def test_complete_sample_is_reused_and_interrupted_one_redrawn(tmp_path, monkeypatch):
    out = tmp_path / "s"
    reference = _files(sample.make_sample(tmp_path / "ref", seed=3, images_per_type=TINY))

    real_write = sample._write_tiff
    calls = []

    def failing_write(path, img):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real_write(path, img)

    monkeypatch.setattr(sample, "_write_tiff", failing_write)
    with pytest.raises(KeyboardInterrupt):
        sample.make_sample(out, seed=3, images_per_type=TINY)
    assert json.loads((out / sample.STAMP_NAME).read_text())["complete"] is False
    monkeypatch.setattr(sample, "_write_tiff", real_write)
    sample.make_sample(out, seed=3, images_per_type=TINY)
    assert _files(out) == reference

    def no_drawing(*args, **kwargs):
        raise AssertionError("a complete sample was drawn again")

    monkeypatch.setattr(sample, "render_frame", no_drawing)
    assert sample.make_sample(out, seed=3, images_per_type=TINY) == out
    with pytest.raises(AssertionError, match="drawn again"):  # other settings: redrawn
        sample.make_sample(out, seed=4, images_per_type=TINY)


@pytest.mark.parametrize("name", ["quick", "borders", "cells", "cells-border"])
def test_the_cpu_presets_ask_for_no_more_images_than_the_sample_has(name):
    has = {split: n * len(data.CELL_TYPES) for split, n in sample.DEFAULT_IMAGES_PER_TYPE.items()}
    dc = presets.get_preset(name).data
    asked = {"train": dc.train_images, "val": dc.val_images, "test": dc.test_images}
    assert all(asked[split] <= has[split] for split in has), f"{name} asks for {asked}; the sample has {has}"


def test_refuses_foreign_data_and_bad_sizes(tmp_path):
    foreign = tmp_path / "livecell"
    (foreign / "annotations").mkdir(parents=True)
    (foreign / "annotations" / "livecell_coco_train.json").write_text("{}")
    with pytest.raises(FileExistsError, match="empty or new folder"):
        sample.make_sample(foreign)
    with pytest.raises(ValueError, match="unknown split"):
        sample.make_sample(tmp_path / "x", images_per_type={"training": 2})
    with pytest.raises(ValueError, match="whole number"):
        sample.make_sample(tmp_path / "x", images_per_type={"train": -1})
    with pytest.raises(ValueError, match="seed"):
        sample.make_sample(tmp_path / "x", seed=1.5)


def test_a_changed_or_truncated_sample_file_is_drawn_again_with_a_note(tmp_path):
    out = sample.make_sample(tmp_path / "s", seed=2, images_per_type=TINY)
    reference = _files(out)
    frame = next((out / "images").rglob("*.tif"))
    raw = bytearray(frame.read_bytes())
    raw[-100:] = bytes(100)  # same size, other pixels
    frame.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=f"sample {re.escape(str(out))} does not match.*{frame.name} changed"):
        sample.make_sample(out, seed=2, images_per_type=TINY)
    assert _files(out) == reference
    train = data.annotation_path(out, "train")
    train.write_bytes(train.read_bytes()[:-10])
    with pytest.warns(UserWarning, match="livecell_coco_train.json is .* bytes, not the .*truncated"):
        sample.make_sample(out, seed=2, images_per_type=TINY)
    assert _files(out) == reference


def test_temp_files_of_killed_writes_are_swept_from_the_sample(tmp_path):
    import os
    out = sample.make_sample(tmp_path / "s", seed=2, images_per_type=TINY)
    reference = _files(out)
    leftovers = [out / "annotations" / ".livecell_coco_val.json.89abcdef.tmp",
                 data.split_image_dir(out, "train") / ".A172_x.tif.0a1b2c3d.tmp"]
    for p in leftovers:
        p.write_bytes(b"half")
        os.utime(p, (p.stat().st_mtime - 60,) * 2)
    fresh = out / "annotations" / ".livecell_coco_test.json.00000000.tmp"  # a writer may be at work
    fresh.write_bytes(b"")
    sample.make_sample(out, seed=2, images_per_type=TINY)
    assert not any(p.exists() for p in leftovers) and fresh.exists()
    fresh.unlink()
    assert _files(out) == reference


def test_touching_cells_meet_on_a_visible_seam(decoded):
    """Packed cells share their borders (LIVECell: 13-14 % of the band where MCF7 / BT474 cells
    meet is a background gap), and the seam differs from the cells beside it."""
    band_px = gap_px = 0
    for d in decoded:
        labels = d["labels"]
        band = masks.touching_border_mask(labels, 2).astype(bool)
        band_px += band.sum()
        gap_px += (band & (labels == 0)).sum()
    assert band_px > 1000 and gap_px < 0.3 * band_px, (gap_px, band_px)


def test_rendered_seam_between_two_touching_cells_is_a_bright_line_with_darker_sides():
    labels = np.zeros((60, 80), np.int32)
    labels[15:45, 10:40], labels[15:45, 40:70] = 1, 2  # two squares meeting on column 39 | 40
    rounded = np.zeros(2, bool)
    seam, beside = [], []
    for seed in range(4):
        img = render_frame(np.random.default_rng(seed), MORPHOLOGIES["MCF7"], labels, rounded,
                           crowding=0.5).astype(float)
        seam.append(img[20:40, 39:41].mean())
        beside.append(img[20:40, np.r_[34:37, 43:46]].mean())  # 3-5 px from the seam
    assert np.mean(seam) > np.mean(beside) + 5, (seam, beside)
    assert np.mean(beside) < 128 - 2  # darker than the background beside a shared border
