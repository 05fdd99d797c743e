"""livecell_kit.masks on hand-made annotations with known answers (tiny 32 x 40 images)."""
import json
import os

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from livecell_kit import data, masks
from livecell_kit.masks import cache as mask_cache
from livecell_kit.masks.rle import compressed_counts, foreground_runs

H, W = 32, 40


@pytest.fixture(autouse=True)
def _own_workdir(tmp_path, monkeypatch):
    """Annotation indexes go to this test's work folder."""
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))


def square(aid, x0, y0, x1, y1, image_id=1):
    """Axis-aligned square polygon with corners (x0, y0)-(x1, y1) in pixel coordinates."""
    return {"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}


def naive_union(anns, h, w):
    """The slow reference: decode each annotation alone with pycocotools, then OR."""
    out = np.zeros((h, w), np.uint8)
    for ann in anns:
        seg = ann["segmentation"]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else (
            mask_utils.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else seg)
        out |= mask_utils.decode(rle)
    return out


# --------------------------------------------------------------------------- rasterisation

def test_square_polygon_covers_half_open_pixel_range():
    m = masks.semantic_mask([square(5, 3, 4, 10, 9)], H, W)
    assert m.dtype == np.uint8 and m.shape == (H, W)
    expected = np.zeros((H, W), np.uint8)
    expected[4:9, 3:10] = 1  # rows y0..y1-1, columns x0..x1-1
    np.testing.assert_array_equal(m, expected)
    assert m.sum() == 7 * 5
    # ... which is pycocotools' own convention
    direct = mask_utils.decode(mask_utils.frPyObjects([[3, 4, 10, 4, 10, 9, 3, 9]], H, W))[:, :, 0]
    np.testing.assert_array_equal(m, direct)


def test_no_annotations_gives_empty_masks():
    assert masks.semantic_mask([], H, W).sum() == 0
    labels = masks.instance_labels([], H, W)
    assert labels.dtype == np.int32 and labels.shape == (H, W) and labels.max() == 0


def test_uncompressed_rle_counts_list():
    # column-major runs: 13 background, 3 cell (col 0, rows 13..15 of 32), 29 bg, 3 cell, rest bg
    counts = [13, 3, 29, 3, H * W - 48]
    ann = {"id": 2, "image_id": 1, "segmentation": {"size": [H, W], "counts": counts}, "iscrowd": 1}
    m = masks.semantic_mask([ann], H, W)
    expected = np.zeros((H, W), np.uint8)
    expected[13:16, 0] = 1
    expected[13:16, 1] = 1
    np.testing.assert_array_equal(m, expected)
    assert masks.uncompressed_rle(m) == {"size": [H, W], "counts": counts}


def test_compressed_string_rle_and_round_trip():
    rng = np.random.default_rng(1)
    mask = (rng.random((H, W)) < 0.3).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(mask))  # pycocotools needs Fortran order
    assert isinstance(rle["counts"], bytes)
    np.testing.assert_array_equal(mask_utils.decode(rle), mask)
    for counts in (rle["counts"], rle["counts"].decode("ascii")):  # JSON stores a str
        ann = {"id": 3, "image_id": 1, "segmentation": {"size": [H, W], "counts": counts}}
        np.testing.assert_array_equal(masks.semantic_mask([ann], H, W), mask)
    # the kit's own reading of the string agrees with the uncompressed runs
    counts, owner, position = compressed_counts([rle["counts"]])
    assert counts.tolist() == masks.uncompressed_rle(mask)["counts"]
    assert (owner == 0).all() and position.tolist() == list(range(len(counts)))
    assert int(counts[1::2].sum()) == int(mask.sum()) == mask_utils.area(rle)


def test_foreground_runs_of_several_rles_match_decoding():
    rng = np.random.default_rng(2)
    decoded = [(rng.random((H, W)) < p).astype(np.uint8) for p in (0.0, 0.2, 0.9, 1.0)]
    rles = [mask_utils.encode(np.asfortranarray(m)) for m in decoded]
    owner, start, length = foreground_runs(rles)
    for i, m in enumerate(decoded):
        flat = np.zeros(H * W, np.uint8)
        for s, n in zip(start[owner == i], length[owner == i]):
            flat[s:s + n] = 1
        np.testing.assert_array_equal(flat.reshape(W, H).T, m)  # starts are column-major


def test_annotation_rles_one_per_annotation_multi_polygon_merged():
    two_parts = {"id": 9, "image_id": 1,
                 "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4], [10, 10, 12, 10, 12, 12, 10, 12]]}
    rles = masks.annotation_rles([square(1, 20, 20, 25, 25), two_parts], H, W)
    assert len(rles) == 2
    assert [int(mask_utils.area(r)) for r in rles] == [25, 16 + 4]


@pytest.mark.parametrize("seed", range(5))
def test_semantic_equals_naive_or_on_random_polygons(seed):
    rng = np.random.default_rng(seed)
    anns = []
    for i in range(12):
        n = int(rng.integers(3, 9))
        cx, cy = rng.uniform(-2, W + 2), rng.uniform(-2, H + 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = rng.uniform(1, 9, n)
        # up to the 1 px margin the annotation check allows around the frame
        xs = np.clip(cx + radii * np.cos(angles), -1, W + 1)
        ys = np.clip(cy + radii * np.sin(angles), -1, H + 1)
        poly = np.stack([xs, ys], 1).ravel()
        anns.append({"id": i, "image_id": 1, "segmentation": [poly.tolist()]})
    anns = [a for a in anns if _inside_somewhat(a)]
    sem = masks.semantic_mask(anns, H, W)
    np.testing.assert_array_equal(sem, naive_union(anns, H, W))
    np.testing.assert_array_equal(masks.instance_labels(anns, H, W) > 0, sem.astype(bool))


@pytest.mark.parametrize("seed", range(3))
def test_instance_labels_match_per_cell_decoding_reference(seed):
    """Brute force: decode each cell alone, paint from biggest to smallest (earlier wins ties)."""
    rng = np.random.default_rng(seed)
    h, w = 45, 37  # odd sizes catch row/column mix-ups
    anns = []
    for i in range(25):
        x0, y0 = rng.integers(0, w - 3), rng.integers(0, h - 3)
        # corners up to the frame's edge (+1 px margin allowed by the annotation check)
        x1, y1 = min(x0 + rng.integers(2, 15), w), min(y0 + rng.integers(2, 15), h)
        anns.append({"id": 1000 + i, "image_id": 1, "segmentation": [[
            float(x0), float(y0), x1 + rng.random(), float(y0), float(x1), y1 + rng.random(),
            x0 - rng.random(), float(y1)]]})
    decoded = [mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(a["segmentation"], h, w)))
               for a in anns]
    areas = [int(d.sum()) for d in decoded]
    expected = np.zeros((h, w), np.int32)
    for i in sorted(range(len(anns)), key=lambda i: (-areas[i], -i)):
        expected[decoded[i] == 1] = i + 1
    np.testing.assert_array_equal(masks.instance_labels(anns, h, w), expected)
    # compressed RLEs of long, many-run masks go through the same fast reader
    big = (rng.random((h, w)) < 0.5).astype(np.uint8)
    rle = mask_utils.encode(np.asfortranarray(big))
    lab = masks.instance_labels([{"id": 1, "segmentation": {"size": [h, w], "counts": rle["counts"].decode()}}], h, w)
    np.testing.assert_array_equal(lab, big)


def _inside_somewhat(ann):
    xs, ys = ann["segmentation"][0][0::2], ann["segmentation"][0][1::2]
    return max(xs) > 0 and min(xs) < W and max(ys) > 0 and min(ys) < H


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("seg, words", [
    ([[1, 1, 5, 1]], "2 points"),                       # pycocotools would read this as a bbox
    ([[1, 1, 5, 1, 5]], "odd number"),
    ([], "empty"),
    ([[1, 1, 5, float("nan"), 5, 5]], "non-finite"),    # would hang pycocotools
    ([[1, 1, 5, "a", 5, 5]], "non-numeric"),
    ([[100, 100, 150, 100, 150, 150]], "outside"),
    ({"size": [H, W], "counts": [5, 3]}, "adding up"),
    ({"size": [H, W + 1], "counts": [H * (W + 1)]}, "does not match"),
    ({"size": [H, W], "counts": "abc"}, "corrupt"),     # would hang pycocotools' merge
    ({"size": [H, W], "counts": "0 1"}, "not an RLE character"),
    ({"size": [H, W], "counts": "oooooooo0"}, "spans 9 characters"),
    ({"size": [H, W], "counts": "@"}, "adding up"),      # a negative count (-16)
])
def test_bad_segmentations_raise_mask_error_naming_the_annotation(seg, words):
    anns = [square(1, 0, 0, 4, 4), {"id": 4242, "image_id": 7, "segmentation": seg}]
    with pytest.raises(masks.MaskError, match=f"annotation 4242.*{words}|{words}.*4242"):
        masks.semantic_mask(anns, H, W, source="cells.json")
    with pytest.raises(masks.MaskError, match="cells.json"):
        masks.instance_labels(anns, H, W, source="cells.json")
    assert issubclass(masks.MaskError, ValueError)


def test_polygons_may_touch_the_edge_within_1px_not_cross_it():
    # the same rule as the annotation loader (data.segmentation_problem)
    with pytest.raises(masks.MaskError, match="annotation 8 .*outside"):
        masks.semantic_mask([square(8, W + 1, 2, W + 6, 6)], H, W)
    with pytest.raises(masks.MaskError, match="annotation 8 .*outside"):
        masks.semantic_mask([square(8, W - 3, -2, W + 6, 3)], H, W)
    m = masks.semantic_mask([square(8, W - 3, -1, W + 1, 3)], H, W)  # clipped to the frame
    assert m.sum() == 3 * 3 and m[0:3, W - 3:].all()


# --------------------------------------------------------------------------- instances, borders

def test_instance_labels_follow_annotation_order_and_smaller_cell_wins():
    big = square(100, 0, 0, 20, 20)
    small = square(200, 15, 15, 25, 25)     # overlaps big's corner 5 x 5
    far = square(300, 30, 2, 35, 6)
    labels = masks.instance_labels([big, small, far], H, W)
    assert labels.dtype == np.int32
    assert (labels == 2).sum() == 100        # small keeps all its pixels, overlap included
    assert (labels == 1).sum() == 400 - 25
    assert (labels == 3).sum() == 20 and labels[2, 30] == 3
    # order of the list does not change who wins the overlap, only the ids
    swapped = masks.instance_labels([small, big, far], H, W)
    np.testing.assert_array_equal(swapped == 1, labels == 2)
    # equal areas: the earlier annotation wins
    a, b = square(1, 0, 0, 6, 6), square(2, 3, 0, 9, 6)
    tie = masks.instance_labels([a, b], H, W)
    assert (tie == 1).sum() == 36 and (tie == 2).sum() == 18


def test_touching_squares_give_a_two_pixel_band():
    left, right = square(1, 2, 4, 10, 12), square(2, 10, 4, 18, 12)   # share the line x = 10
    labels = masks.instance_labels([left, right], H, W)
    border = masks.touching_border_mask(labels, distance=2)
    assert border.dtype == np.uint8 and set(np.unique(border)) <= {0, 1}
    expected = np.zeros((H, W), np.uint8)
    expected[3:13, 9:11] = 1   # columns 9 (left's edge) and 10 (right's), plus the diagonal rows
    np.testing.assert_array_equal(border, expected)
    # a one-pixel gap: only the gap column, rows 4..11 plus corners reached diagonally
    gap = masks.instance_labels([square(1, 2, 4, 10, 12), square(2, 11, 4, 18, 12)], H, W)
    gb = masks.touching_border_mask(gap, distance=2)
    assert np.array_equal(np.flatnonzero(gb.any(0)), [10]) and gb[:, 10].sum() == 10
    # two pixels apart: not touching at distance 2, touching at distance 3
    apart = masks.instance_labels([square(1, 2, 4, 10, 12), square(2, 12, 4, 18, 12)], H, W)
    assert masks.touching_border_mask(apart, distance=2).sum() == 0
    assert masks.touching_border_mask(apart, distance=3).sum() > 0
    # a lone cell has no border
    assert masks.touching_border_mask(masks.instance_labels([left], H, W)).sum() == 0


def test_border_weight_map_matches_brute_force():
    labels = masks.instance_labels([square(1, 2, 4, 10, 12), square(2, 13, 4, 18, 12),
                                    square(3, 2, 15, 8, 20)], H, W)
    w = masks.border_weight_map(labels, w0=10.0, sigma=5.0)
    assert w.dtype == np.float32 and w.shape == (H, W)
    # brute force: full-image distance transform per cell
    from scipy import ndimage
    d = np.sort(np.stack([ndimage.distance_transform_edt(labels != k) for k in (1, 2, 3)]), 0)
    expected = 1.0 + 10.0 * np.exp(-(d[0] + d[1]) ** 2 / (2 * 5.0 ** 2))
    expected[labels > 0] = 1.0
    np.testing.assert_allclose(w, expected, atol=1e-4)
    # in the 3-px gap between cells 1 and 2 (columns 10..12) the weight is near 1 + w0
    assert w[8, 11] == pytest.approx(1 + 10 * np.exp(-16 / 50), rel=1e-5)
    bal = masks.border_weight_map(labels, w0=0.0, class_weights="balanced")
    n_cell = (labels > 0).sum()
    assert bal[labels > 0][0] == pytest.approx(labels.size / (2 * n_cell))
    assert (bal * (labels > 0)).sum() == pytest.approx((bal * (labels == 0)).sum(), rel=1e-5)
    fixed = masks.border_weight_map(labels, w0=0.0, class_weights=(0.5, 2.0))
    assert set(np.unique(fixed)) == {0.5, 2.0}


# --------------------------------------------------------------------------- files and cache

def _write_dataset(root, images=3, shift=0):
    """A LIVECell-style train split under root: dict-keyed annotations, no image files needed."""
    imgs, anns = [], {}
    for i in range(1, images + 1):
        imgs.append({"id": i, "file_name": f"A172_Phase_C7_1_00d0{i}h00m_1.tif", "width": W, "height": H})
        for j, (x0, y0) in enumerate([(2 + i + shift, 3), (12, 10), (25, 20)]):
            aid = i * 10 + j
            anns[str(aid)] = square(aid, x0, y0, x0 + 6, y0 + 6, image_id=i)
    path = data.annotation_path(root, "train")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": imgs, "annotations": anns,
                                "categories": [{"id": 1, "name": "cell"}]}))
    return path


def test_write_masks_one_png_per_image(tmp_path):
    path = _write_dataset(tmp_path)
    split = data.load_split(tmp_path, "train")
    for kind in masks.KINDS:
        out = tmp_path / kind
        written = masks.write_masks(path, out, kind=kind, progress=False)
        assert [p.name for p in written] == [f"A172_Phase_C7_1_00d0{i}h00m_1.png" for i in (1, 2, 3)]
        for rec, p in zip(split.images, written):
            with Image.open(p) as im:
                raw = np.asarray(im)
            expected = masks.render(kind, split.annotations_for(rec["id"]), H, W)
            if kind in ("instance", "cells"):
                assert raw.dtype == np.uint16
                np.testing.assert_array_equal(raw, expected)
            else:
                assert raw.dtype == np.uint8 and set(np.unique(raw)) <= {0, 255}
                np.testing.assert_array_equal(raw, expected * 255)
            loaded = masks.load_mask(out, rec["file_name"])
            assert loaded.dtype == (np.int32 if kind in ("instance", "cells") else np.uint8)
            np.testing.assert_array_equal(loaded, expected)


def test_cache_built_once_reused_and_rebuilt_after_json_change(tmp_path, monkeypatch):
    _write_dataset(tmp_path)
    split = data.load_split(tmp_path, "train")
    cache_root = tmp_path / "cache"
    first = masks.build_mask_cache(split, kind="semantic", cache_root=cache_root, progress=False)
    assert first.parent == cache_root and first.name.startswith("train-semantic-")
    assert len(first.name.rsplit("-", 1)[1]) == 16
    files = sorted(first.glob("*.png"))
    assert len(files) == 3 and (first / masks.STAMP_NAME).exists()
    mtimes = [f.stat().st_mtime_ns for f in files]
    rec = split.images[0]
    np.testing.assert_array_equal(masks.load_mask(first, rec["file_name"]),
                                  masks.semantic_mask(split.annotations_for(rec["id"]), H, W))

    calls = []
    real_render = mask_cache.render
    monkeypatch.setattr(mask_cache, "render", lambda *a, **k: calls.append(a) or real_render(*a, **k))
    again = masks.build_mask_cache(data.load_split(tmp_path, "train"), kind="semantic",
                                   cache_root=cache_root, progress=False)
    assert again == first and calls == []
    assert [f.stat().st_mtime_ns for f in files] == mtimes

    # another kind is another folder
    border = masks.build_mask_cache(split, kind="border", cache_root=cache_root, progress=False)
    assert border != first and len(calls) == 3

    # edit the JSON: a new hash, a new folder, masks rebuilt from the new annotations
    _write_dataset(tmp_path, shift=5)
    new_split = data.load_split(tmp_path, "train")
    rebuilt = masks.build_mask_cache(new_split, kind="semantic", cache_root=cache_root, progress=False)
    assert rebuilt != first and len(calls) == 6
    rec = new_split.images[0]
    np.testing.assert_array_equal(masks.load_mask(rebuilt, rec["file_name"]),
                                  masks.semantic_mask(new_split.annotations_for(rec["id"]), H, W))
    assert not np.array_equal(masks.load_mask(rebuilt, rec["file_name"]),
                              masks.load_mask(first, rec["file_name"]))


def test_interrupted_cache_build_leaves_no_partial_files_and_is_redone(tmp_path, monkeypatch):
    _write_dataset(tmp_path)
    split = data.load_split(tmp_path, "train")
    cache_root = tmp_path / "cache"
    real_encode = mask_cache._encode_png
    state = {"n": 0}

    class Image2:  # a PNG encoder that dies half-way through writing its second file
        def __init__(self, img):
            self.img = img

        def save(self, f, format):
            state["n"] += 1
            if state["n"] == 2:
                f.write(b"\x89PNG half a file")
                raise KeyboardInterrupt
            self.img.save(f, format=format)

    monkeypatch.setattr(mask_cache, "_encode_png", lambda m, k: Image2(real_encode(m, k)))
    with pytest.raises(KeyboardInterrupt):
        masks.build_mask_cache(split, kind="semantic", cache_root=cache_root, progress=False)
    (cache_dir,) = cache_root.iterdir()
    names = sorted(os.listdir(cache_dir))
    assert names == [masks.STAMP_NAME, mask_cache.SUMS_NAME,
                     mask_cache.mask_file("", split.images[0]["file_name"]).name]
    # ... the first, complete mask only: no temporary file left

    monkeypatch.setattr(mask_cache, "_encode_png", real_encode)
    calls = []
    real_render = mask_cache.render
    monkeypatch.setattr(mask_cache, "render", lambda *a, **k: calls.append(a) or real_render(*a, **k))
    done = masks.build_mask_cache(split, kind="semantic", cache_root=cache_root, progress=False)
    assert done == cache_dir and len(list(done.glob("*.png"))) == 3 and len(calls) == 2  # the rest only
    for rec in split.images:
        np.testing.assert_array_equal(masks.load_mask(done, rec["file_name"]),
                                      masks.semantic_mask(split.annotations_for(rec["id"]), H, W))


def test_a_subset_and_its_split_share_one_cache(tmp_path, monkeypatch):
    _write_dataset(tmp_path)
    split = data.load_split(tmp_path, "train")
    cache_root = tmp_path / "cache"
    calls = []
    real_render = mask_cache.render
    monkeypatch.setattr(mask_cache, "render", lambda *a, **k: calls.append(a) or real_render(*a, **k))
    seed = split.subset([split.images[2]["id"], split.images[0]["id"]])
    first = masks.build_mask_cache(seed, kind="semantic", cache_root=cache_root, progress=False)
    assert len(calls) == 2 and len(list(first.glob("*.png"))) == 2  # only the subset's images
    full = masks.build_mask_cache(split, kind="semantic", cache_root=cache_root, progress=False)
    assert full == first and len(calls) == 3  # the full split draws only the image it lacked
    masks.build_mask_cache(seed, kind="semantic", cache_root=cache_root, progress=False)
    assert len(calls) == 3
    for rec in split.images:
        np.testing.assert_array_equal(masks.load_mask(full, rec["file_name"]),
                                      masks.semantic_mask(split.annotations_for(rec["id"]), H, W))


def test_load_mask_missing_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_mask_cache"):
        masks.load_mask(tmp_path, "A172_Phase_C7_1_00d00h00m_1.tif")


def test_unknown_kind_rejected(tmp_path):
    path = _write_dataset(tmp_path)
    with pytest.raises(ValueError, match="unknown mask kind"):
        masks.write_masks(path, tmp_path / "out", kind="edges", progress=False)


# --------------------------------------------------------------------------- a cache that checks itself

def _cache(tmp_path, kind="semantic"):
    _write_dataset(tmp_path)
    split = data.load_split(tmp_path, "train")
    return split, masks.build_mask_cache(split, kind=kind, cache_root=tmp_path / "cache", progress=False)


def _truth(split, rec, kind="semantic"):
    return masks.render(kind, split.annotations_for(rec["id"]), H, W)


def test_build_redraws_truncated_deleted_and_resized_masks_only(tmp_path, monkeypatch):
    split, cache_dir = _cache(tmp_path)
    paths = [masks.mask_file(cache_dir, r["file_name"]) for r in split.images]
    paths[0].write_bytes(paths[0].read_bytes()[:40])                    # truncated
    paths[1].unlink()                                                   # deleted
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(paths[2])     # another size
    calls = []
    real_render = mask_cache.render
    monkeypatch.setattr(mask_cache, "render", lambda *a, **k: calls.append(a) or real_render(*a, **k))
    with pytest.warns(UserWarning, match="2 damaged mask"):
        assert masks.build_mask_cache(split, cache_root=tmp_path / "cache", progress=False) == cache_dir
    assert len(calls) == 3
    for rec in split.images:
        np.testing.assert_array_equal(masks.load_mask(cache_dir, rec["file_name"]), _truth(split, rec))
    masks.build_mask_cache(split, cache_root=tmp_path / "cache", progress=False)
    assert len(calls) == 3  # intact masks are trusted again


@pytest.mark.parametrize("kind", ["semantic", "instance", "cells"])
def test_reading_a_damaged_cached_mask_rebuilds_just_that_one(tmp_path, monkeypatch, kind):
    split, cache_dir = _cache(tmp_path, kind)
    rec = split.images[1]
    path = masks.mask_file(cache_dir, rec["file_name"])
    raw = bytearray(path.read_bytes())
    idat = raw.index(b"IDAT") + 8
    raw[idat:idat + 6] = b"\xff" * 6  # same length, intact header and IEND: only decoding notices
    path.write_bytes(bytes(raw))
    assert masks.mask_is_intact(path, H, W, kind)
    calls = []
    real_render = mask_cache.render
    monkeypatch.setattr(mask_cache, "render", lambda *a, **k: calls.append(a) or real_render(*a, **k))
    with pytest.warns(UserWarning, match=f"mask {path}.*cannot be decoded.*rebuilt it from"):
        loaded = masks.load_mask(cache_dir, rec["file_name"])
    np.testing.assert_array_equal(loaded, _truth(split, rec, kind))
    assert len(calls) == 1
    # the training pipeline's reader does the same, inside tf.data's workers
    path.write_bytes(b"")
    with pytest.warns(UserWarning, match="rebuilt"):
        stored = masks.read_mask_file(path, (H, W))
    np.testing.assert_array_equal(stored > 0, _truth(split, rec, kind) > 0)


def test_a_mask_that_cannot_be_rebuilt_names_a_fix_that_works(tmp_path):
    split, cache_dir = _cache(tmp_path)
    rec = split.images[0]
    path = masks.mask_file(cache_dir, rec["file_name"])
    path.write_bytes(b"\x89PNG broken")
    _write_dataset(tmp_path, shift=5)  # the JSON changed since: this cache cannot be redrawn from it
    with pytest.raises(masks.MaskFileError, match="delete it and run again") as err:
        masks.load_mask(cache_dir, rec["file_name"])
    assert str(path) in str(err.value)
    path.unlink()  # the advised fix: the next build draws it again
    masks.build_mask_cache(split, cache_root=tmp_path / "cache", progress=False)
    assert masks.load_mask(cache_dir, rec["file_name"]).shape == (H, W)
    # masks written by `livecell-kit masks` (no cache stamp): rerun that command
    out = tmp_path / "written"
    (first, *_) = masks.write_masks(data.annotation_path(tmp_path, "train"), out, progress=False)
    first.write_bytes(first.read_bytes()[:30])
    with pytest.raises(masks.MaskFileError, match="livecell-kit masks --annotations"):
        masks.load_mask(out, first.name)
    with pytest.raises(masks.MaskFileError, match=r"is 40 x 32 px, not 8 x 8"):
        masks.read_mask_file(out / masks.mask_file("", split.images[1]["file_name"]).name, (8, 8))


def test_a_mask_of_the_wrong_kind_copied_over_another_is_redrawn(tmp_path):
    split, cache_dir = _cache(tmp_path)
    border_dir = masks.build_mask_cache(split, kind="border", cache_root=tmp_path / "cache", progress=False)
    rec = split.images[0]
    path = masks.mask_file(cache_dir, rec["file_name"])
    path.write_bytes(masks.mask_file(border_dir, rec["file_name"]).read_bytes())  # same size and mode
    assert masks.mask_is_intact(path, H, W, "semantic")
    with pytest.warns(UserWarning, match=f"1 damaged mask.*{path.name}: differs from the mask the cache wrote"):
        masks.build_mask_cache(split, cache_root=tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(masks.load_mask(cache_dir, rec["file_name"]), _truth(split, rec))
    # read by training without a build first: noticed there too
    path.write_bytes(masks.mask_file(border_dir, rec["file_name"]).read_bytes())
    with pytest.warns(UserWarning, match=f"mask {path}.*checksum mismatch.*rebuilt it from"):
        stored = masks.read_mask_file(path, (H, W))
    np.testing.assert_array_equal(stored > 0, _truth(split, rec) > 0)


def test_a_folder_in_a_cached_masks_place_is_replaced_by_the_mask(tmp_path):
    split, cache_dir = _cache(tmp_path)
    rec = split.images[1]
    path = masks.mask_file(cache_dir, rec["file_name"])
    path.unlink()
    (path / "inner").mkdir(parents=True)
    with pytest.warns(UserWarning, match=f"{path.name}: a folder in a mask's place"):
        masks.build_mask_cache(split, cache_root=tmp_path / "cache", progress=False)
    assert path.is_file()
    np.testing.assert_array_equal(masks.load_mask(cache_dir, rec["file_name"]), _truth(split, rec))
    path.unlink()
    path.mkdir()  # read before any build
    with pytest.warns(UserWarning, match=f"mask {path}.*is a folder, not a PNG.*rebuilt it"):
        np.testing.assert_array_equal(masks.load_mask(cache_dir, rec["file_name"]), _truth(split, rec))


def test_write_masks_names_a_folder_in_a_masks_place_and_keeps_it(tmp_path):
    path = _write_dataset(tmp_path)
    out = tmp_path / "out"
    (out / "A172_Phase_C7_1_00d02h00m_1.png" / "notes").mkdir(parents=True)
    with pytest.raises(masks.MaskError, match="00d02h00m_1.png is a folder.*move or rename that folder.*--out"):
        masks.write_masks(path, out, progress=False)
    assert (out / "A172_Phase_C7_1_00d02h00m_1.png" / "notes").is_dir()  # the user's folder stays


def test_masks_of_a_bom_json_equal_those_of_the_same_json(tmp_path):
    path = _write_dataset(tmp_path)
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    plain = masks.write_masks(path, tmp_path / "plain", progress=False)
    with_bom = masks.write_masks(bom, tmp_path / "bom", progress=False)
    assert [p.read_bytes() for p in with_bom] == [p.read_bytes() for p in plain]


def _killed_write_leftover(folder, name):
    """A temp file as a writer killed inside atomic_path leaves it: unlocked, a minute old."""
    leftover = folder / f".{name}.0123abcd.tmp"
    leftover.write_bytes(b"\x89PNG half")
    os.utime(leftover, (leftover.stat().st_mtime - 60,) * 2)
    return leftover


def test_killed_writes_leave_no_temp_file_after_the_next_run(tmp_path):
    split, cache_dir = _cache(tmp_path)
    png = masks.mask_file(cache_dir, split.images[0]["file_name"]).name
    leftover = _killed_write_leftover(cache_dir, png)
    user_file = cache_dir / ".notes.tmp"  # not the kit's pattern: kept
    user_file.write_text("mine")
    masks.build_mask_cache(split, cache_root=tmp_path / "cache", progress=False)
    assert not leftover.exists() and user_file.exists()
    out = tmp_path / "out"
    out.mkdir()
    leftover = _killed_write_leftover(out, "A172_Phase_C7_1_00d01h00m_1.png")
    masks.write_masks(data.annotation_path(tmp_path, "train"), out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [f"A172_Phase_C7_1_00d0{i}h00m_1.png" for i in (1, 2, 3)]
