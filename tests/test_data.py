"""Reading side of livecell_kit.data: paths, images, annotations, splits, subsets."""
from __future__ import annotations

import contextlib
import io
import json
import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from livecell_kit import data
from livecell_kit.data import index as data_index, subsets

W, H = data.IMAGE_WIDTH, data.IMAGE_HEIGHT


def _ann(aid, image_id, seg=None):
    return {"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "segmentation": seg if seg is not None else [[10, 10, 40, 10, 40, 30, 10, 30]],
            "area": 600.0, "bbox": [10, 10, 30, 20]}


def _dataset(dict_style=True):
    images = [{"id": 1, "file_name": "A172_Phase_C7_1_00d00h00m_1.tif", "width": W, "height": H},
              {"id": 2, "file_name": "BV2_Phase_B4_2_01d00h00m_3.tif", "width": W, "height": H}]
    anns = [_ann(11, 1), _ann(12, 1, [[100, 100, 120, 100, 110, 130]]), _ann(21, 2)]
    return {"info": {}, "categories": [{"id": 1, "name": "cell", "supercategory": "cell"}],
            "images": images,
            "annotations": {str(a["id"]): a for a in anns} if dict_style else anns}


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture(autouse=True)
def _own_workdir(tmp_path, monkeypatch):
    """Annotation indexes (and masks) go to this test's work folder."""
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))


# --------------------------------------------------------------------------- paths

def test_paths_and_cell_types(tmp_path, monkeypatch):
    monkeypatch.delenv("LIVECELL_KIT_WORKDIR")
    assert data.split_image_dir(tmp_path, "val") == tmp_path / "images/livecell_train_val_images"
    assert data.split_image_dir(tmp_path, "test") == tmp_path / "images/livecell_test_images"
    assert data.annotation_path(tmp_path, "train") == tmp_path / "annotations/livecell_coco_train.json"
    with pytest.raises(ValueError, match="unknown split"):
        data.annotation_path(tmp_path, "training")
    assert data.cell_type_of("SHSY5Y_Phase_A10_1_00d04h00m_2.tif") == "SHSY5Y"
    assert data.cell_type_of("some/dir/skbr3_Phase_C7_1_00d00h00m_1.tif") == "SkBr3"
    with pytest.raises(ValueError, match="HeLa_Phase"):
        data.cell_type_of("HeLa_Phase_C7_1_00d00h00m_1.tif")
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "w"))
    assert data.default_workdir() == tmp_path / "w"
    monkeypatch.delenv("LIVECELL_KIT_WORKDIR")
    assert data.default_workdir().parts[-2:] == (".cache", "livecell-kit")


# --------------------------------------------------------------------------- images

def test_read_image_tiff_png_and_errors(tmp_path):
    frame = np.arange(H * W, dtype=np.uint32).reshape(H, W).astype(np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", frame)
    Image.fromarray(frame).save(tmp_path / "a.png")
    Image.fromarray(np.stack([frame] * 3, -1)).save(tmp_path / "rgb.png")
    for name in ("a.tif", "a.png", "rgb.png"):
        got = data.read_image(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (H, W)
        np.testing.assert_array_equal(got, frame)
    with pytest.raises(data.ImageReadError, match="missing.tif.*does not exist"):
        data.read_image(tmp_path / "missing.tif")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(data.ImageReadError, match="bad.tif.*corrupt"):
        data.read_image(tmp_path / "bad.tif")
    tifffile.imwrite(tmp_path / "u16.tif", frame.astype(np.uint16) * 256)
    got = data.read_image(tmp_path / "u16.tif")  # 16-bit is stretched to uint8 (tests/test_images.py)
    assert got.dtype == np.uint8 and got.shape == (H, W) and got.min() == 0 and got.max() == 255


# --------------------------------------------------------------------------- annotations

@pytest.mark.parametrize("dict_style", [True, False])
def test_load_annotations_reads_both_styles(tmp_path, dict_style):
    path = _write(tmp_path / "a.json", _dataset(dict_style))
    index = data.load_annotations(path)
    assert [a["id"] for img in index.images for a in index.annotations_for(img["id"])] == [11, 12, 21]
    assert [i["id"] for i in index.images] == [1, 2]
    assert index.summary["annotations_form"] == ("dict" if dict_style else "list")
    assert index.coco_dataset([0, 1])["annotations"] == _dataset(dict_style=False)["annotations"]


def test_dict_entries_without_id_take_their_key(tmp_path):
    raw = _dataset()
    del raw["annotations"]["12"]["id"]
    raw["annotations"]["12"].pop("area"), raw["annotations"]["12"].pop("bbox")
    index = data.load_annotations(_write(tmp_path / "a.json", raw))
    ann = next(a for a in index.annotations_for(1) if a["id"] == 12)
    # Filled-in geometry: triangle (100,100) (120,100) (110,130) -> area 300 px².
    assert ann["area"] == pytest.approx(300.0)
    assert ann["bbox"] == [100, 100, 20, 30]


def _break(mutate):
    raw = _dataset(dict_style=False)
    mutate(raw)
    return raw


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["annotations"][1].pop("segmentation"), r"annotation id 12 lacks \['segmentation'\]"),
    (lambda d: d["annotations"][1].update(image_id=99), "annotation id 12 points to image id 99"),
    (lambda d: d["annotations"][1].update(segmentation=[[1, 2, 3, 4, 5, 6, 7]]),
     "annotation id 12: polygon 0 has an odd number"),
    (lambda d: d["annotations"][1].update(segmentation=[[1, 2, 3, 4]]),
     "annotation id 12: polygon 0 has 2 points"),
    (lambda d: d["annotations"][1].update(segmentation=[[1, 1, 5, 1, 5, H + 5]]),
     "annotation id 12: polygon 0 spans"),
    (lambda d: d["annotations"][1].update(segmentation=[[1, 1, W + 3, 1, 5, 5]]),
     "annotation id 12: polygon 0 spans"),
    (lambda d: d["annotations"][1].update(segmentation=[]), "annotation id 12: segmentation is empty"),
    (lambda d: d["annotations"][1].update(segmentation=[[1, 1, 5, 1, "x", 5]]),
     "annotation id 12: polygon 0 holds non-numeric"),
    # NaN and Infinity are not JSON (Python's json module writes them anyway); 1e999 overflows
    (lambda d: d["annotations"][1].update(segmentation=[[1, 1, float("nan"), 1, 5, 5]]),
     "broken.json is not valid JSON"),
    (lambda d: d["annotations"][1].update(segmentation=[[1, 1, float("inf"), 1, 5, 5]]),
     "broken.json is not valid JSON"),
    (lambda d: d["annotations"][1].update(id=11), "annotation id 11 is a duplicate"),
    (lambda d: d["annotations"][1].update(segmentation={"counts": "abc", "size": [10, 10]}),
     "annotation id 12: RLE size"),
    (lambda d: d["images"][1].pop("height"), r"image id 2 lacks \['height'\]"),
    (lambda d: d.pop("images"), "missing top-level key 'images'"),
])
def test_validation_errors_name_file_and_id(tmp_path, mutate, message):
    path = _write(tmp_path / "broken.json", _break(mutate))
    with pytest.raises(data.AnnotationError, match=message) as err:
        data.load_annotations(path)
    text = str(err.value)
    assert str(path) in text and "livecell-kit" in text  # names the file and the fix
    assert not any(data.index_root().iterdir())  # and leaves no index behind


def test_tolerance_and_rle_pass(tmp_path):
    def mutate(d):
        d["annotations"][0]["segmentation"] = [[-0.5, 0, W + 0.9, 0, W + 0.9, H + 1]]
        d["annotations"][1]["segmentation"] = {"counts": [0, 5, H * W - 5], "size": [H, W]}
    index = data.load_annotations(_write(tmp_path / "ok.json", _break(mutate)))
    assert index.summary["counts"]["annotations"] == 3
    assert index.annotations_for(1)[1]["segmentation"] == {"counts": [0, 5, H * W - 5], "size": [H, W]}


def test_in_memory_rules_reject_non_finite_coordinates():
    raw = _break(lambda d: d["annotations"][1].update(segmentation=[[1, 1, float("nan"), 1, 5, 5]]))
    with pytest.raises(data.AnnotationError, match="annotation id 12: polygon 0 holds non-numeric or non-finite"):
        data.validate_annotations(raw, "mem")


@pytest.mark.parametrize("poly, ok", [
    ([-1, -1, W + 1, -1, W + 1, H + 1], True),      # 1 px outside on every side: tolerated
    ([-1.01, 0, 5, 0, 5, 5], False), ([0, 0, W + 1.01, 0, 5, 5], False),
    ([0, 0, 5, 0, 5, H + 1.01], False), ([0, -1.01, 5, 0, 5, 5], False),
])
def test_segmentation_problem_tolerates_one_pixel(poly, ok):
    assert data.POLYGON_TOLERANCE_PX == 1.0
    problem = data.segmentation_problem([poly], (H, W))
    assert (problem is None) == ok, problem
    if not ok:
        assert problem.startswith("polygon 0 spans") and f"{W} x {H} image" in problem
    assert data.segmentation_problem({"counts": "x", "size": [H, W]}, (H, W)) is None
    assert "does not match" in data.segmentation_problem({"counts": [], "size": [W, H]}, (H, W))


def test_malformed_json_names_file_and_fix(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(_dataset())[:-40])
    with pytest.raises(data.AnnotationError, match="cut.json is not valid JSON.*truncated"):
        data.load_annotations(path)
    with pytest.raises(FileNotFoundError, match="livecell-kit sample"):
        data.load_annotations(tmp_path / "absent.json")


def test_load_annotations_parses_a_file_once(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.json", _dataset())
    calls = []
    real = data_index.stream_coco
    monkeypatch.setattr(data_index, "stream_coco", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = data.load_annotations(path)
    assert data.load_annotations(tmp_path / "." / "a.json").folder == first.folder
    assert data.load_split(_layout(tmp_path / "root"), "val").index.folder != first.folder
    assert len(calls) == 2  # a.json once, the layout's val once
    # A changed file is another file: indexed again.
    raw = _dataset()
    raw["images"].append({"id": 3, "file_name": "MCF7_Phase_A1_1_00d00h00m_1.tif",
                          "width": W, "height": H})
    _write(path, raw)
    assert len(data.load_annotations(path).images) == 3
    assert len(calls) == 3


def test_to_coco_works_with_pycocotools(tmp_path, capsys):
    raw = _dataset()
    raw["annotations"]["21"]["segmentation"] = {"counts": [H * 5 + 3, 4, H * W - H * 5 - 7],
                                                "size": [H, W]}
    index = data.load_annotations(_write(tmp_path / "a.json", raw))
    coco = data.to_coco(index.coco_dataset([0, 1]))
    assert capsys.readouterr().out == ""  # createIndex's chatter is silenced
    assert sorted(coco.getAnnIds(imgIds=[1])) == [11, 12]
    mask = coco.annToMask(coco.loadAnns([11])[0])
    assert mask.shape == (H, W)
    assert mask[15, 20] == 1 and mask[0, 0] == 0 and mask[50, 50] == 0
    rle_mask = coco.annToMask(coco.loadAnns([21])[0])  # column-major RLE: column 5, rows 3..6
    assert rle_mask.sum() == 4 and rle_mask[3:7, 5].all()
    with pytest.raises(data.AnnotationError, match="coco_dataset"):
        data.to_coco(_dataset(dict_style=True))


# --------------------------------------------------------------------------- splits

def _layout(root, per_type=None, split_sizes=None):
    """Write annotation files for all splits; ``per_type`` = {cell type: n images} per split."""
    per_type = per_type or {t: 2 for t in data.CELL_TYPES}
    next_id = 1
    for s_index, split in enumerate(data.SPLITS):
        images, anns = [], {}
        for cell_type, n in (split_sizes or {}).get(split, per_type).items():
            for k in range(n):
                images.append({"id": next_id, "file_name": f"{cell_type}_Phase_A1_{k}_00d00h00m_{s_index}.tif",
                               "width": W, "height": H})
                anns[str(next_id * 100)] = _ann(next_id * 100, next_id)
                next_id += 1
        _write(data.annotation_path(root, split),
               {"categories": [{"id": 1, "name": "cell"}], "images": images, "annotations": anns})
    return root


def test_split_paths_and_annotations(tmp_path):
    root = _layout(tmp_path)
    train = data.load_split(root, "train")
    assert train.annotation_file == data.annotation_path(root, "train")
    rec = train.images[0]
    assert train.cell_type(rec) == "A172"
    nested = data.split_image_dir(root, "train") / "A172" / rec["file_name"]
    flat = data.split_image_dir(root, "train") / rec["file_name"]
    assert train.image_path(rec) == flat  # neither exists yet: the official images.zip place
    flat.parent.mkdir(parents=True)
    flat.write_bytes(b"")
    assert train.image_path(rec) == flat
    nested.parent.mkdir(parents=True)
    nested.write_bytes(b"")
    assert train.image_path(rec) == nested
    assert [a["id"] for a in train.annotations_for(rec["id"])] == [rec["id"] * 100]
    assert train.annotations_for(-1) == []


def test_a_split_takes_an_image_record_where_it_wants_an_id(tmp_path):
    """Passing ``split.images[k]`` itself, the natural slip, gives what its id gives (not
    "unhashable type: 'dict'" from inside the kit)."""
    index_path = _write(tmp_path / "annotations" / "livecell_coco_test.json", _dataset(dict_style=False))
    split = data.load_split(tmp_path, "test")
    assert index_path == split.annotation_file
    record = split.images[0]
    assert [a["id"] for a in split.annotations_for(record)] == [11, 12]
    assert np.array_equal(split.cell_areas(record), split.cell_areas(record["id"]))
    with pytest.raises(KeyError, match="pass the image's id"):
        split.annotations_for({"file_name": record["file_name"]})


def test_cell_outlines_are_xy_rows_of_every_polygon(tmp_path):
    _write(tmp_path / "annotations" / "livecell_coco_test.json", _dataset(dict_style=False))
    split = data.load_split(tmp_path, "test")
    outlines = data.cell_outlines(split, 1)
    assert [xy.shape for xy in outlines] == [(4, 2), (3, 2)]
    assert outlines[1].tolist() == [[100, 100], [120, 100], [110, 130]]  # (x, y) rows, in file order
    assert data.cell_outlines(split, -1) == []


def test_subset_restricts_images_and_annotations(tmp_path):
    train = data.load_split(_layout(tmp_path), "train")
    ids = [train.images[3]["id"], train.images[0]["id"]]
    sub = train.subset(ids)
    assert [i["id"] for i in sub.images] == ids and sub.index is train.index  # a view, no copy
    assert sorted(a["image_id"] for a in sub.coco_dataset()["annotations"]) == sorted(ids)
    assert sub.annotations_for(train.images[1]["id"]) == []  # not in the subset
    assert sub.cell_counts().tolist() == [1, 1]
    assert len(train.images) == 16  # the original is untouched
    with pytest.raises(KeyError, match="9999"):
        train.subset([9999])
    coco = sub.coco_dataset([ids[1]])
    assert [i["id"] for i in coco["images"]] == [ids[1]] and coco["categories"][0]["name"] == "cell"
    assert [a["image_id"] for a in coco["annotations"]] == [ids[1]]


# --------------------------------------------------------------------------- subsets

COUNTS = {"A172": 10, "BT474": 20, "BV2": 30, "Huh7": 40, "MCF7": 5, "SHSY5Y": 15,
          "SkBr3": 25, "SKOV3": 55}


def test_select_subset_is_stratified_and_reproducible(tmp_path):
    root = _layout(tmp_path, per_type=COUNTS)
    subset = data.select_subset(root, sizes={"train": 50, "val": 20}, seed=3)
    train = Counter(e["cell_type"] for e in subset if e["split"] == "train")
    # 50 of 200 -> quotas 2.5 5 7.5 10 1.25 3.75 6.25 13.75: floors sum to 47, the three
    # largest remainders (.75, .75, then the first .5) get one more each.
    assert train == {"A172": 3, "BT474": 5, "BV2": 7, "Huh7": 10, "MCF7": 1, "SHSY5Y": 4,
                     "SkBr3": 6, "SKOV3": 14}
    assert sum(1 for e in subset if e["split"] == "val") == 20
    assert not any(e["split"] == "test" for e in subset)
    assert data.select_subset(root, sizes={"train": 50, "val": 20}, seed=3) == subset
    other = data.select_subset(root, sizes={"train": 50, "val": 20}, seed=4)
    assert [e["image_id"] for e in other] != [e["image_id"] for e in subset]
    split = data.load_split(root, "train")
    by_id = {i["id"]: i for i in split.images}
    for e in subset:
        assert set(e) == {"split", "image_id", "file_name", "cell_type"}
        if e["split"] == "train":
            assert by_id[e["image_id"]]["file_name"] == e["file_name"]
            assert data.cell_type_of(e["file_name"]) == e["cell_type"]
    assert len({(e["split"], e["image_id"]) for e in subset}) == len(subset)


def test_select_subset_takes_all_and_warns_when_short(tmp_path):
    root = _layout(tmp_path)  # 16 images per split
    with pytest.warns(UserWarning, match="only 16 images"):
        subset = data.select_subset(root, sizes={"test": 100})
    assert len(subset) == 16


def test_manifest_round_trip(tmp_path):
    root = _layout(tmp_path / "d")
    subset = data.select_subset(root, sizes={"train": 8, "val": 4, "test": 4}, seed=0)
    path = data.write_manifest(subset, tmp_path / "m" / "subset.json")
    assert path == tmp_path / "m" / "subset.json"
    assert data.read_manifest(path) == subset
    assert [p.name for p in path.parent.iterdir()] == ["subset.json"]  # no temp file left
    (tmp_path / "bad.json").write_text(json.dumps({"entries": [{"split": "train"}]}))
    with pytest.raises(ValueError, match="bad.json"):
        data.read_manifest(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="write_manifest"):
        data.read_manifest(tmp_path / "none.json")
    sub = data.load_split(root, "val").subset([e["image_id"] for e in subset if e["split"] == "val"])
    assert len(sub.images) == 4


def test_splits_share_one_index_and_hold_no_parsed_file(tmp_path):
    root = _layout(tmp_path)
    a, b = data.load_split(root, "val"), data.load_split(root, "val")
    assert a.index.folder == b.index.folder
    assert not hasattr(a, "dataset")  # no whole-file dict: cells come from memory-mapped arrays
    assert all(isinstance(v, np.ndarray) and not v.flags.owndata for v in a.index.arrays.values())


def test_load_subset_reads_its_split_once(tmp_path, monkeypatch):
    root = _layout(tmp_path, per_type=COUNTS)
    calls = []
    real = subsets.load_split
    monkeypatch.setattr(subsets, "load_split", lambda *a: calls.append(a) or real(*a))
    assert len(data.load_subset(root, "train", limit=50, seed=3).images) == 50
    assert len(calls) == 1


def test_load_subset_matches_the_manifest_and_keeps_small_splits_whole(tmp_path):
    root = _layout(tmp_path, per_type=COUNTS)
    sub = data.load_subset(root, "train", limit=50, seed=3)
    expected = [e["image_id"] for e in data.select_subset(root, sizes={"train": 50}, seed=3)]
    assert sorted(i["id"] for i in sub.images) == sorted(expected)
    assert {a["image_id"] for a in sub.coco_dataset()["annotations"]} <= set(expected)
    full = data.load_split(root, "train")
    assert len(data.load_subset(root, "train", limit=None).images) == len(full.images)
    assert len(data.load_subset(root, "train", limit=10_000).images) == len(full.images)


# --------------------------------------------------------------------------- LIVECell's quirks

def _official_split(root, split, records, anns):
    """A split JSON as the official S3 files store it: annotations as a list."""
    return _write(data.annotation_path(root, split),
                  {"info": {}, "categories": [{"id": 1, "name": "cell", "supercategory": "cell"}],
                   "images": records, "annotations": anns})


def _rec(image_id, name):
    return {"id": image_id, "file_name": name, "width": W, "height": H,
            "original_filename": name[:-4] + ".png", "url": f"https://example.invalid/{image_id}"}


def test_a_file_listed_twice_keeps_its_first_record(tmp_path):
    # LIVECell issue #26: 65 train names carry two ids (e.g. 742297 and 1012330); #14: test doubles.
    dup = "Huh7_Phase_A10_2_00d16h00m_4.tif"
    records = [_rec(742297, dup), _rec(5, "A172_Phase_C7_1_00d00h00m_1.tif"), _rec(1012330, dup)]
    anns = [_ann(1, 742297), _ann(2, 742297), _ann(3, 5), _ann(4, 1012330)]
    path = _official_split(tmp_path, "test", records, anns)
    with pytest.warns(UserWarning, match=r"1 file name\(s\).*Huh7_Phase_A10_2_00d16h00m_4.*742297 and 1012330"
                                         r".*dropped 1 record\(s\) with 1 annotations"):
        split = data.load_split(tmp_path, "test")
    assert [r["id"] for r in split.images] == [742297, 5]
    # the dropped record's cell is gone
    assert [a["id"] for a in split.coco_dataset()["annotations"]] == [1, 2, 3]
    assert split.duplicate_records == ({"file_name": dup, "kept_id": 742297, "dropped_id": 1012330},)
    assert split.val_overlap_dropped is None
    with pytest.warns(UserWarning, match="1 file name"):
        assert [r["id"] for r in data.load_annotations(path).images] == [742297, 5, 1012330]  # as in the file
    # masks key by file name: one record per name means no collision
    from livecell_kit import masks
    cache = masks.build_mask_cache(split, cache_root=tmp_path / "masks", progress=False)
    assert masks.load_mask(cache, dup).sum() > 0


def test_train_never_holds_a_val_image(tmp_path):
    shared = "BV2_Phase_B4_2_01d00h00m_3.tif"  # LIVECell issue #26: listed in train and val
    _official_split(tmp_path, "train", [_rec(1, "A172_Phase_C7_1_00d00h00m_1.tif"), _rec(2, shared),
                                        _rec(3, "MCF7_Phase_E4_2_00d08h00m_4.tif")],
                    [_ann(10, 1), _ann(20, 2), _ann(30, 3)])
    _official_split(tmp_path, "val", [_rec(9, shared)], [_ann(90, 9)])
    train = data.load_split(tmp_path, "train")
    assert [r["file_name"] for r in train.images] == ["A172_Phase_C7_1_00d00h00m_1.tif",
                                                       "MCF7_Phase_E4_2_00d08h00m_4.tif"]
    assert {a["image_id"] for a in train.coco_dataset()["annotations"]} == {1, 3}
    assert train.val_overlap_dropped == 1 and train.duplicate_records == ()
    for rule in ("first", "stratified"):
        subset = data.select_subset(tmp_path, sizes={"train": 2, "val": 1}, rule=rule)
        assert shared not in {e["file_name"] for e in subset if e["split"] == "train"}
    assert [r["file_name"] for r in data.load_split(tmp_path, "val").images] == [shared]


def test_first_rule_takes_the_first_ids_in_file_order(tmp_path):
    # the seed project: COCO(json).getImgIds()[:n] — file order, not sorted ids, not stratified
    names = [f"{t}_Phase_A1_{k}_00d00h00m_1.tif" for k in range(3) for t in ("SKOV3", "A172", "BV2")]
    ids = [900, 15, 47, 3, 1200, 8, 77, 5, 600]
    _official_split(tmp_path, "test", [_rec(i, n) for i, n in zip(ids, names)],
                    [_ann(10_000 + i, i) for i in ids])
    subset = data.select_subset(tmp_path, sizes={"test": 4}, rule="first", seed=123)
    assert [e["image_id"] for e in subset] == [900, 15, 47, 3]
    from pycocotools.coco import COCO
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(data.annotation_path(tmp_path, "test")))
    assert [e["image_id"] for e in subset] == list(coco.getImgIds())[:4]
    sub = data.load_subset(tmp_path, "test", limit=4, rule="first")
    assert [r["id"] for r in sub.images] == [900, 15, 47, 3]
    with pytest.raises(ValueError, match="unknown subset rule"):
        data.select_subset(tmp_path, sizes={"test": 4}, rule="random")


def test_nearly_unannotated_images_are_flagged(tmp_path):
    records = [_rec(1, "A172_Phase_D7_1_01d20h00m_1.tif"), _rec(2, "BV2_Phase_D4_1_00d12h00m_2.tif"),
               _rec(3, "MCF7_Phase_E4_2_00d08h00m_4.tif")]
    anns = [_ann(100 + k, 2) for k in range(12)] + [_ann(200 + k, 3) for k in range(3)]
    _official_split(tmp_path, "train", records, anns)
    flagged = data.nearly_unannotated(data.load_split(tmp_path, "train"))
    assert flagged == [
        {"image_id": 1, "file_name": records[0]["file_name"], "cell_type": "A172", "n_cells": 0},
        {"image_id": 3, "file_name": records[2]["file_name"], "cell_type": "MCF7", "n_cells": 3}]
    assert data.available_splits(tmp_path) == ["train"]


# --------------------------------------------------------------------------- the package itself

def test_data_modules_import_siblings_at_the_top_and_never_the_package():
    # livecell_kit/data/__init__.py imports every submodule, so a submodule that imports
    # the package (``from livecell_kit import data``) would be a cycle.
    folder = Path(data.__file__).parent
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # module level, including platform fallbacks in a top-level try/except
        top = {id(n) for stmt in tree.body for n in ast.walk(stmt)
               if stmt is n or isinstance(stmt, ast.Try)}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            assert id(node) in top, f"{path.name}:{node.lineno}: import inside a function"
            if path.name == "__init__.py":
                continue
            names = [a.name for a in node.names]
            module = node.module if isinstance(node, ast.ImportFrom) else None
            assert module != "livecell_kit.data" and not (module == "livecell_kit" and "data" in names) \
                and "livecell_kit.data" not in names, f"{path.name}:{node.lineno} imports the package"


def test_importing_data_stays_light():
    code = ("import sys, livecell_kit.data; "
            "print(sorted(m for m in ('tensorflow', 'matplotlib.pyplot') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(data.__file__).parents[2])
    assert out.stdout.strip() == "[]"
