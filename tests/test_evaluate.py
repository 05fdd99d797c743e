"""evaluate_model end to end on a tiny LIVECell-layout data set, and the metrics file it writes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from pycocotools import mask as mu

from livecell_kit import evaluate as ev
from livecell_kit.evaluate.metrics import METRIC_KEYS


def test_write_metrics_json_is_atomic_and_strict(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    ev.write_metrics_json({"iou": np.float32(0.5), "bce": float("nan"), "n": np.int64(3)}, path)
    assert json.loads(path.read_text()) == {"iou": 0.5, "bce": None, "n": 3}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp files left


# --- evaluate_model on a tiny LIVECell-layout data set ------------------------------------------

def _tiny_livecell(root, shape=(64, 96)):
    """2 val + 2 test images of bright polygon 'cells' on grey; returns the root."""
    h, w = shape
    rng = np.random.default_rng(0)
    next_ann = 1
    for split, folder in (("val", "livecell_train_val_images"), ("test", "livecell_test_images")):
        images, anns = [], {}
        for k, ctype in enumerate(("A172", "BV2")):
            img_id = 10 * (split == "test") + k + 1
            name = f"{ctype}_Phase_C7_1_00d00h00m_{img_id}.tif"
            img = np.full(shape, 60, np.uint8)
            for cy, cx in ((16, 20), (42, 50), (20, 76)):  # far apart: cells do not touch
                cy, cx, r = cy + rng.uniform(-3, 3), cx + rng.uniform(-3, 3), rng.uniform(5, 9)
                t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
                poly = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1).ravel().round(2).tolist()
                img[mu.decode(mu.frPyObjects([poly], h, w)).any(-1) > 0] = 200
                anns[str(next_ann)] = {"id": next_ann, "image_id": img_id, "category_id": 1,
                                       "segmentation": [poly], "iscrowd": 0}
                next_ann += 1
            path = root / "images" / folder / ctype / name
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, img)
            images.append({"id": img_id, "file_name": name, "height": h, "width": w})
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"livecell_coco_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cell"}]}))
    return root


def _bright_is_cell_model():
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(1, 1, activation="sigmoid")])
    model.layers[-1].set_weights([np.array([[[[20.0]]]], np.float32), np.array([-10.0], np.float32)])
    return model


def test_evaluate_model_end_to_end(tmp_path):
    root = _tiny_livecell(tmp_path / "data")
    model = _bright_is_cell_model()
    res = ev.evaluate_model(model, root, split="test", progress=False)
    for k in METRIC_KEYS + ("threshold", "per_cell_type", "baselines", "instance", "n_images", "split", "model"):
        assert k in res, k
    assert res["n_images"] == 2 and res["split"] == "test"
    assert res["threshold_source"] == "best IoU on val" and 0.05 <= res["threshold"] <= 0.95
    assert res["iou"] > 0.9 and res["pixel_accuracy"] > 0.98
    assert sorted(res["per_cell_type"]) == ["A172", "BV2"]
    assert set(res["per_cell_type"]["BV2"]) >= set(METRIC_KEYS)
    bg = res["baselines"]["all_background"]
    test = json.loads((root / "annotations" / "livecell_coco_test.json").read_text())
    union = {}
    for a in test["annotations"].values():
        m = mu.decode(mu.frPyObjects(a["segmentation"], 64, 96)).any(-1)
        union[a["image_id"]] = union.get(a["image_id"], False) | m
    cell_px = sum(int(m.sum()) for m in union.values())
    assert res["n_pixels"] == 2 * 64 * 96
    assert bg["iou"] == 0.0 and bg["recall"] == 0.0
    # predicting "no cell" is right exactly on the background pixels
    assert bg["pixel_accuracy"] == pytest.approx(1 - cell_px / res["n_pixels"], abs=0.01)
    assert set(res["baselines"]["otsu"]) >= set(METRIC_KEYS)
    assert res["instance"]["AP50"] > 0.95 and res["instance"]["AP"] > 0.8
    assert sorted(res["instance"]["per_cell_type"]) == ["A172", "BV2"]
    assert res["instance_source"] == "watershed on the semantic mask (no instance head)"
    cells = res["cells"]
    assert [f["cells_true"] for f in cells["per_frame"]] == [3, 3]
    assert [f["cells_found"] for f in cells["per_frame"]] == [3, 3]
    assert cells["count_median_abs_error_pct"] == 0.0 and cells["confluence_max_pp"] < 1.0
    assert sorted(cells["per_cell_type"]) == ["A172", "BV2"]
    out = ev.write_metrics_json(res, tmp_path / "metrics.json")
    assert json.loads(out.read_text())["iou"] == pytest.approx(res["iou"])
    assert "| A172 |" in ev.per_cell_type_table(res).to_markdown()

    fixed = ev.evaluate_model(model, root, threshold=0.5, instance=False, progress=False, max_images=1)
    assert fixed["threshold"] == 0.5 and fixed["threshold_source"] == "given"
    assert fixed["n_images"] == 1 and "instance" not in fixed and "cells" not in fixed


def test_a_cells_model_is_split_by_its_distance_maps_and_counted(tmp_path, bright_cells_model):
    root = _tiny_livecell(tmp_path / "data")
    res = ev.evaluate_model(bright_cells_model, root, split="test", threshold=0.5, progress=False)
    assert res["instance_source"] == "distance maps"
    assert res["instance"]["AP50"] > 0.95 and res["iou"] > 0.9
    frames = res["cells"]["per_frame"]
    assert [(f["file"].split("_")[0], f["cell_type"], f["cells_found"]) for f in frames] == [
        ("A172", "A172", 3), ("BV2", "BV2", 3)]
    for f in frames:  # the found foreground is the truth up to the polygons' edge pixels
        assert f["count_error_pct"] == 0.0 and abs(f["confluence_error_pp"]) < 1.0
        assert f["confluence_found_pct"] == pytest.approx(f["confluence_true_pct"] + f["confluence_error_pp"])
        assert 3.0 < f["confluence_true_pct"] < 15.0
    assert res["cells"]["confluence_mae_pp"] == pytest.approx(np.mean([abs(f["confluence_error_pp"]) for f in frames]))


def test_summarise_cells_leaves_frames_without_annotations_out_of_the_count_median():
    labels = np.zeros((10, 10), np.int32)
    labels[:2, :5], labels[5:, :5] = 1, 2
    truth = np.zeros((10, 10), bool)
    truth[:5, :] = True
    frames = [ev.frame_cells("a.tif", "A172", 4, labels, labels > 0, truth),   # 2 of 4: -50 %
              ev.frame_cells("b.tif", "A172", 0, labels, labels > 0, truth),   # no annotation
              ev.frame_cells("c.tif", "BV2", 2, labels, truth, truth)]        # exact
    assert [f["count_error_pct"] for f in frames] == [-50.0, None, 0.0]
    assert frames[0]["confluence_found_pct"] == 35.0 and frames[0]["confluence_error_pp"] == -15.0
    s = ev.summarise_cells(frames)
    assert s["count_median_abs_error_pct"] == 25.0  # median of 50 and 0
    assert s["confluence_mae_pp"] == pytest.approx(10.0) and s["confluence_max_pp"] == 15.0
    assert s["per_cell_type"]["BV2"]["count_median_abs_error_pct"] == 0.0 and len(s["per_frame"]) == 3


def test_a_frame_of_another_size_than_its_record_stops_evaluate_before_scoring(tmp_path):
    """A padded frame used to be scored silently against masks of its padded size
    (IoU 0.960 -> 0.881 in the issue); now the file, both sizes and the fix are named."""
    from livecell_kit import data

    root = _tiny_livecell(tmp_path / "data")
    test = data.load_split(root, "test")
    frame = test.image_path(test.images[1])
    tifffile.imwrite(frame, np.pad(tifffile.imread(frame), ((0, 16), (0, 0)), constant_values=60))
    with pytest.raises(data.ImageCheckError, match="declares 96 x 64") as err:
        ev.evaluate_model(_bright_is_cell_model(), root, split="test", threshold=0.5, progress=False)
    assert str(frame) in str(err.value) and "is 96 x 80 px" in str(err.value)
    assert "cannot be used for evaluation" in str(err.value)
