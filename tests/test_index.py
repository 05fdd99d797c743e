"""The annotation index: one streaming parse per file, the same content as json.load, on disk."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from livecell_kit import data, masks, sample
from livecell_kit.data import coco_stream, index as index_module

W, H = data.IMAGE_WIDTH, data.IMAGE_HEIGHT
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _own_workdir(tmp_path, monkeypatch):
    """Indexes go to this test's work folder."""
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))


def _ann(aid, image_id, seg=None, **extra):
    return {"id": aid, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "segmentation": seg if seg is not None else [[10.25, 10.5, 40.75, 10, 40, 30.01, 10, 30]],
            "area": 600.125, "bbox": [10.25, 10.0, 30.5, 20.01], **extra}


def _img(image_id, name="A172_Phase_C7_1_00d00h00m_1.tif"):
    return {"id": image_id, "file_name": name, "width": W, "height": H, "url": f"https://x.invalid/{image_id}"}


def _write(path, obj=None, text=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else json.dumps(obj))
    return path


def _grouped(raw):
    anns = raw["annotations"]
    by_image: dict = {}
    for ann in (anns.values() if isinstance(anns, dict) else anns):
        by_image.setdefault(ann["image_id"], []).append(ann)
    return by_image


def _leftovers():
    root = index_module.index_root()
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# --------------------------------------------------------------------------- same as json.load

def test_sample_index_equals_json_load_and_gives_identical_masks(small_samples, tmp_path):
    root = small_samples(1, tmp_path / "s")
    for split in data.SPLITS:
        path = data.annotation_path(root, split)
        raw = json.loads(path.read_text())
        index = data.open_index(path)
        assert index.meta["coords_scale"] == 100  # two-decimal polygons: int32 centi-pixels
        assert index.images == raw["images"]
        assert index.top_level == {k: v for k, v in raw.items() if k not in ("images", "annotations")}
        by_image = _grouped(raw)
        for img in raw["images"]:
            got = index.annotations_for(img["id"])
            expected = by_image.get(img["id"], [])
            assert got == expected  # ids, numbers, polygons: equal exactly
            assert [type(v) for a in got for p in a["segmentation"] for v in p] == \
                   [type(v) for a in expected for p in a["segmentation"] for v in p]
            for kind in masks.KINDS:
                a, b = (masks.render(kind, anns, H, W) for anns in (got, expected))
                assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
        out = masks.write_masks(path, tmp_path / "m" / split, kind="instance", progress=False)
        for rec, png in zip(raw["images"], out):
            again = tmp_path / "ref.png"
            masks.cache._save_atomic(masks.render("instance", by_image.get(rec["id"], []), H, W), "instance", again)
            assert png.read_bytes() == again.read_bytes()


def test_a_second_open_reuses_the_index_in_this_and_other_processes(tmp_path, monkeypatch):
    path = _write(tmp_path / "a.json", {"images": [_img(1)], "annotations": [_ann(5, 1)]})
    first = data.open_index(path)
    calls = []
    monkeypatch.setattr(index_module, "stream_coco", lambda *a, **k: calls.append(a))
    again = data.open_index(tmp_path / "." / "a.json")
    assert again.folder == first.folder and calls == []
    code = ("from livecell_kit.data import index; index.stream_coco = None; "
            f"print(len(index.open_index({str(path)!r}).annotations_for(1)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "1"  # read from disk: stream_coco was never called
    # an edited file is another file: a new index
    monkeypatch.undo()
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    _write(path, {"images": [_img(1)], "annotations": [_ann(5, 1), _ann(6, 1)]})
    index_module._DIGESTS.clear()
    assert len(data.open_index(path).annotations_for(1)) == 2


def test_two_processes_indexing_one_file_at_once(tmp_path):
    images = [_img(i, f"A172_Phase_C7_1_00d{i:02d}h00m_1.tif") for i in range(1, 41)]
    anns = [_ann(k, 1 + k % 40) for k in range(20_000)]
    path = _write(tmp_path / "big.json", {"images": images, "annotations": anns})
    code = ("import sys; from livecell_kit import data; "
            "i = data.open_index(sys.argv[1]); print(i.meta['annotations'], len(i.annotations_for(1)))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and outs == ["20000 500"] * 2
    assert len(_leftovers()) == 1 and not _leftovers()[0].startswith(".")  # one index, no temp folders
    assert data.open_index(path).annotations_for(3) == [a for a in anns if a["image_id"] == 3]


# --------------------------------------------------------------------------- forms and rare content

def test_dict_form_list_form_rle_extras_and_structure(tmp_path):
    rle_str = {"size": [H, W], "counts": "PT]1;e0]j0"}  # a compressed RLE may hold ']' and ';'
    rle_list = {"size": [H, W], "counts": [5, 3, H * W - 8]}
    anns = [_ann(11, 1), _ann(12, 1, [[100, 100, 120, 100, 110, 130], [1, 1, 5, 1, 5, 5]]),
            {**_ann(13, 2, rle_list)}, _ann(14, 2, note="kept"), {**_ann(15, 2, rle_str), "iscrowd": 1}]
    raw = {"info": {"v": 1}, "images": [_img(1), _img(2, "BV2_Phase_B4_2_01d00h00m_3.tif")],
           "annotations": anns, "categories": [{"id": 1, "name": "cell"}], "licenses": []}
    listed = data.open_index(_write(tmp_path / "list.json", raw))
    keyed = data.open_index(_write(tmp_path / "dict.json",
                                   {**raw, "annotations": {str(a["id"]): a for a in anns}}))
    for index in (listed, keyed):
        assert index.annotations_for(1) == anns[:2] and index.annotations_for(2) == anns[2:]
        assert index.top_level == {"info": {"v": 1}, "categories": [{"id": 1, "name": "cell"}], "licenses": []}
        assert index.summary["top_level_keys"] == ["info", "images", "annotations", "categories", "licenses"]
        assert index.summary["first_annotation"] == anns[0] and index.summary["first_image"] == raw["images"][0]
        assert index.summary["counts"]["annotations"] == 5
        assert index.cell_counts([0, 1]).tolist() == [2, 3]
    assert listed.summary["annotations_form"] == "list" and keyed.summary["annotations_form"] == "dict"


def test_missing_optional_keys_and_ids_from_dict_keys_are_filled(tmp_path):
    tri = {"image_id": 1, "category_id": 1, "segmentation": [[100, 100, 120, 100, 110, 130]]}
    index = data.open_index(_write(tmp_path / "a.json", {"images": [_img(1)], "annotations": {"7": tri}}))
    (ann,) = index.annotations_for(1)
    assert ann == {**tri, "id": 7, "iscrowd": 0, "area": 300.0, "bbox": [100, 100, 20, 30]}


@pytest.mark.parametrize("batch", [2, 2048])
def test_more_than_two_decimals_switch_to_float64_exactly(tmp_path, monkeypatch, batch):
    monkeypatch.setattr(coco_stream, "BATCH_SIZE", batch)
    anns = [_ann(k, 1) for k in range(1, 6)] + [_ann(9, 1, [[1.125, 2.5, 7.3333333, 2, 7, 9.999]])]
    index = data.open_index(_write(tmp_path / "a.json", {"images": [_img(1)], "annotations": anns}))
    assert index.meta["coords_scale"] == 1 and index.arrays["coords"].dtype == np.float64
    assert index.annotations_for(1) == anns


def test_members_after_the_annotations_are_kept(tmp_path):
    anns = [_ann(k, 1) for k in range(1, 300)]
    tail = ', "categories": [{"id": 1, "name": "]}"}], "x": {"y": [1, [2]]}}'
    text = json.dumps({"images": [_img(1)], "annotations": anns})[:-1] + tail
    index = data.open_index(_write(tmp_path / "a.json", text=text))
    assert index.top_level == {"categories": [{"id": 1, "name": "]}"}], "x": {"y": [1, [2]]}}
    keyed = json.dumps({"images": [_img(1)], "annotations": {str(a["id"]): a for a in anns}})[:-1] + tail
    assert data.open_index(_write(tmp_path / "b.json", text=keyed)).top_level == index.top_level
    empty = data.open_index(_write(tmp_path / "c.json", {"images": [_img(1)], "annotations": [], "z": 1}))
    assert empty.annotations_for(1) == [] and empty.top_level == {"z": 1}


# --------------------------------------------------------------------------- errors leave nothing behind

@pytest.mark.parametrize("text, message", [
    ('{"images": [], "annotations": [{"id": 1', "is not valid JSON.*truncated"),
    ('{"images": [], "annotations": [NaN]}', "is not valid JSON"),
    ('[1, 2]', "top level is a list"),
    ('{"images": [], "annotations": null}', "'annotations' is a null, expected a list or a dict"),
    ('{"images": []}', "missing top-level key 'annotations'"),
    ('{"images": {}, "annotations": []}', "'images' must be a list"),
    ('{"images": [], "annotations": {"x": {"image_id": 1}}}', "annotation key 'x' is not an integer"),
])
def test_malformed_files_name_the_file_and_leave_no_index(tmp_path, text, message):
    path = _write(tmp_path / "bad.json", text=text)
    with pytest.raises(data.AnnotationError, match=message) as err:
        data.open_index(path)
    assert str(path) in str(err.value) and "livecell-kit" in str(err.value)
    assert _leftovers() == []


def test_record_errors_found_in_a_batch_or_at_the_end_name_the_id(tmp_path, monkeypatch):
    monkeypatch.setattr(coco_stream, "BATCH_SIZE", 4)
    good = [_ann(k, 1) for k in range(1, 10)]
    cases = [
        (good + [{**_ann(50, 1), "id": "50"}], "annotation id 50: id '50' is not an integer"),
        (good + [{**_ann(50, 1), "bbox": [1, 2, 3]}], r"annotation id 50: bbox \[1, 2, 3\] is not four"),
        (good + [{**_ann(50, 1), "area": "big"}], "annotation id 50: area 'big' is not a number"),
        (good + [_ann(50, 1, [[1, 1, 5, 1, "5", 5]])], "annotation id 50: polygon 0 holds non-numeric"),
        (good + [_ann(50, 1, [[1, 1, 5, 1, 5]])], "annotation id 50: polygon 0 has an odd number"),
        (good + [_ann(50, 1, [[1, 1, 5, 1, 5, 5], []])], "annotation id 50: polygon 1 is empty"),
        (good + [_ann(5, 1)], "annotation id 5 is a duplicate id"),
        (good + [_ann(50, 3)], "annotation id 50 points to image id 3"),
        (good + [_ann(50, 1, [[1, 1, 5, 1, 5, H + 1.5]])], "annotation id 50: polygon 0 spans x 1..5, y 1..521.5"),
        (good + [_ann(50, 1, {"counts": "abc", "size": [10, 10]})], "annotation id 50: RLE size"),
        (good + ["oops"], "annotation at index 9 is not an object"),
    ]
    for k, (anns, message) in enumerate(cases):
        path = _write(tmp_path / f"bad{k}.json", {"images": [_img(1)], "annotations": anns})
        with pytest.raises(data.AnnotationError, match=message):
            data.open_index(path)
        with pytest.raises(data.AnnotationError, match=message):  # the in-memory rules agree
            data.validate_annotations({"images": [_img(1)], "annotations": anns}, path)
    assert _leftovers() == []


# --------------------------------------------------------------------------- malformed values (issue 16)

@pytest.mark.parametrize("image, message", [
    ({"id": [1]}, r"image id \[1\] is not an integer"),  # unhashable ids
    ({"id": {"a": 1}}, r"image id \{'a': 1\} is not an integer"),
    ({"width": "704"}, "width '704' is not a positive whole number of pixels"),
    ({"height": None}, "height None is not a positive whole number"),
    ({"width": 0}, "width 0 is not a positive whole number"),
    ({"width": True}, "width True is not a positive whole number"),
    ({"file_name": 7}, "file_name 7 is not a file name"),
    ({"file_name": None}, "file_name None is not a file name"),
    ({"file_name": " "}, "file_name ' ' is not a file name"),
    ({"width": 200000, "height": 200000}, "declared size 200000 x 200000 px is larger than"),
])
def test_malformed_image_values_are_refused_while_indexing(tmp_path, image, message):
    path = _write(tmp_path / "bad.json", {"images": [{**_img(1), **image}], "annotations": [_ann(5, 1)]})
    with pytest.raises(data.AnnotationError, match=message) as err:
        data.open_index(path)
    assert str(path) in str(err.value) and "livecell-kit" in str(err.value)
    assert _leftovers() == []


@pytest.mark.parametrize("ann, message", [
    ({"id": [5]}, r"id \[5\] is not an integer"),
    ({"image_id": {"x": 1}}, r"image_id \{'x': 1\} is not an integer"),
    ({"segmentation": {"size": H, "counts": [0, H * W]}}, "RLE size 520 is not"),
    ({"segmentation": {"size": None, "counts": [0, H * W]}}, "RLE size None is not"),
    ({"segmentation": {"size": ["520", "704"], "counts": [0, H * W]}}, r"RLE size \['520', '704'\] is not"),
    ({"segmentation": {"size": [H, W], "counts": [10, -5, H * W - 5]}}, "RLE counts hold -5"),
    ({"segmentation": {"size": [H, W], "counts": [10, 2.5]}}, "RLE counts hold 2.5"),
    ({"segmentation": {"size": [H, W], "counts": [10, 5]}}, "adding up to 520 x 704 = 366080 pixels"),
])
def test_malformed_annotation_values_are_refused_while_indexing(tmp_path, ann, message):
    anns = [{**_ann(5, 1), **ann}]
    path = _write(tmp_path / "bad.json", {"images": [_img(1)], "annotations": anns})
    with pytest.raises(data.AnnotationError, match=message):
        data.open_index(path)
    with pytest.raises(data.AnnotationError, match=message):  # the in-memory rules agree
        data.validate_annotations({"images": [_img(1)], "annotations": anns}, path)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("where", ["images", "annotation", "segmentation", "tail"])
def test_deep_nesting_is_refused_before_ijson_builds_it(tmp_path, where):
    """100 000 levels used to take ijson ~50 GB (its prefixes grow with the depth); now one
    message, in well under a second."""
    deep = _nested(100_000)
    good = json.dumps({"images": [_img(1)], "annotations": [_ann(5, 1)]})
    text = {"images": '{"images": ' + deep + ', "annotations": []}',
            "annotation": good.replace('"annotations": [', '"annotations": [' + deep + ", "),
            "segmentation": good.replace('"segmentation": [', '"segmentation": [' + deep + ", "),
            "tail": good[:-1] + ', "zz": ' + deep + "}"}[where]
    path = _write(tmp_path / "deep.json", text=text)
    with pytest.raises(data.AnnotationError, match=f"nested more than {coco_stream.MAX_DEPTH} levels") as err:
        data.open_index(path)
    assert str(path) in str(err.value)
    assert _leftovers() == []


def _reference_depth(text: str) -> tuple[int, int]:
    """(deepest, final) nesting of JSON text, character by character."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest, depth


def test_depth_guard_ignores_brackets_in_strings_across_any_block_cut():
    rng = np.random.default_rng(0)
    pieces = ['"a[{"', '"\\"[["', '"]]\\\\"', '"\\\\\\"{"', "[", "]", "{", "}", "1", '"x"', ",", '"\\u005b"']
    for _ in range(300):
        tokens = rng.choice(pieces, size=int(rng.integers(1, 40)))
        text = "[" + "".join(tokens) + "]"
        raw = text.encode()
        cuts = sorted(set(rng.integers(1, max(len(raw), 2), size=5).tolist()))
        guard = coco_stream.DepthGuard("x.json", limit=10**9)
        for a, b in zip([0] + cuts, cuts + [len(raw)]):
            if a < b:
                guard.feed(raw[a:b])
        want_deepest, want_final = _reference_depth(text)
        assert guard.depth == want_final, text
        limited = coco_stream.DepthGuard("x.json", limit=want_deepest)
        limited.feed(raw)  # exactly at the limit: accepted
        with pytest.raises(data.AnnotationError, match="nested more than"):
            coco_stream.DepthGuard("x.json", limit=want_deepest - 1).feed(raw)


# --------------------------------------------------------------------------- an index that checks itself

def _two_images(tmp_path):
    return _write(tmp_path / "a.json", {"images": [_img(1), _img(2, "A172_Phase_C7_1_00d04h00m_1.tif")],
                                        "annotations": [_ann(5, 1), _ann(6, 2, [[100, 100, 150, 100, 150, 140]])]})


def _damage_then_reopen(path, damage, note):
    """Build, damage the index folder, open again: rebuilt with a note, the right annotations."""
    index = data.open_index(path)
    expected = {i: index.annotations_for(i) for i in (1, 2)}
    damage(index.folder)
    index_module._VERIFIED.clear()  # as a new process would
    with pytest.warns(UserWarning, match=f"annotation index of {re.escape(str(path))}.*{note}.*rebuilding it"):
        again = data.open_index(path)
    assert again.folder == index.folder
    assert {i: again.annotations_for(i) for i in (1, 2)} == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.open_index(path)  # intact now: no note
    assert _leftovers() == [index.folder.name]


def test_a_truncated_column_is_rebuilt_with_a_note_not_an_mmap_error(tmp_path):
    def truncate(folder):
        column = folder / "coords.npy"
        column.write_bytes(column.read_bytes()[:-8])
    _damage_then_reopen(_two_images(tmp_path), truncate, "coords.npy is 176 bytes, not the 184 .*truncated")


def test_zeroed_offsets_are_noticed_by_their_checksum_and_rebuilt(tmp_path):
    def zero(folder):
        column = folder / "image_ann_offsets.npy"
        raw = column.read_bytes()
        column.write_bytes(raw[:128] + bytes(len(raw) - 128))  # same size, offsets all 0
    _damage_then_reopen(_two_images(tmp_path), zero, "image_ann_offsets.npy changed .*checksum")


@pytest.mark.parametrize("damage, note", [
    (lambda folder: (folder / "images.json").unlink(), "images.json is missing"),
    (lambda folder: (folder / index_module.STAMP_NAME).unlink(), "done-stamp is missing"),
    (lambda folder: (folder / "ann_by_image.npy").write_bytes(b""), "ann_by_image.npy is 0 bytes"),
])
def test_missing_or_emptied_parts_are_rebuilt(tmp_path, damage, note):
    _damage_then_reopen(_two_images(tmp_path), damage, note)


def test_an_index_without_part_records_is_rebuilt_once(tmp_path):
    def old_stamp(folder):
        stamp = json.loads((folder / index_module.STAMP_NAME).read_text())
        del stamp["parts"]  # as written before the index checked itself
        (folder / index_module.STAMP_NAME).write_text(json.dumps(stamp))
    _damage_then_reopen(_two_images(tmp_path), old_stamp, "no record of its files")


def test_a_process_meeting_a_damaged_index_rebuilds_it_in_place(tmp_path):
    path = _two_images(tmp_path)
    folder = data.open_index(path).folder
    (folder / "bbox.npy").write_bytes(b"\0" * 10)
    code = (f"import warnings; warnings.simplefilter('ignore'); from livecell_kit import data; "
            f"print([len(data.open_index({str(path)!r}).annotations_for(i)) for i in (1, 2)])")
    runs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(2)]
    assert [r.communicate()[0].strip() for r in runs] == ["[1, 1]", "[1, 1]"]
    assert all(r.returncode == 0 for r in runs)
    index_module._VERIFIED.clear()
    assert index_module.index_problem(folder, {"version": index_module.INDEX_VERSION,
                                               "sha256": index_module.file_sha256(path)}) is None
    assert _leftovers() == [folder.name]


# --------------------------------------------------------------------------- what editors write

def test_a_json_with_a_utf8_bom_is_indexed_like_the_same_json_without(tmp_path):
    obj = {"info": {"x": 1}, "images": [_img(1)], "annotations": [_ann(5, 1), _ann(6, 1)], "after": [1]}
    plain = _write(tmp_path / "plain.json", obj)
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    a, b = data.open_index(plain), data.open_index(bom)
    assert b.images == a.images and b.top_level == a.top_level == {"info": {"x": 1}, "after": [1]}
    assert b.annotations_for(1) == a.annotations_for(1) == obj["annotations"]
    empty = tmp_path / "empty.json"  # no annotations: the other reading path
    empty.write_bytes(b"\xef\xbb\xbf" + json.dumps({"images": [_img(1)], "annotations": [], "z": 2}).encode())
    assert data.open_index(empty).top_level == {"z": 2}


@pytest.mark.parametrize("payload, message, unwanted", [
    (b'{"images": [], "annotations": [{"id": 1', "truncated", None),
    (b'{"images": [], "annotations": [NaN]}', "not valid JSON .*if you edited it, correct", "truncated"),
    ('{"images": [], "annotations": []}'.encode("utf-16"), "UTF-16 text, not UTF-8: save it again as UTF-8",
     "truncated"),
])
def test_broken_json_is_called_truncated_only_when_it_is_and_the_fix_keeps_the_file(tmp_path, payload, message,
                                                                                       unwanted):
    path = tmp_path / "bad.json"
    path.write_bytes(payload)
    with pytest.raises(data.AnnotationError, match=message) as err:
        data.open_index(path)
    text = str(err.value)
    assert str(path) in text and "recreate it" not in text and "delete" not in text
    assert unwanted is None or unwanted not in text
