"""Instance AP under LIVECell's COCO protocol, with pycocotools and (when installed) faster-coco-eval."""
from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from skimage.draw import disk

from livecell_kit.evaluate import cocoeval
from livecell_kit.instances import instances_to_coco_results


def _gt_from_labels(labels_per_image):
    images, anns = [], []
    for img_id, labels in labels_per_image.items():
        h, w = labels.shape
        images.append({"id": img_id, "file_name": f"img{img_id}.tif", "height": h, "width": w})
        for r in instances_to_coco_results(labels, img_id):
            rle = dict(r["segmentation"])
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": 1,
                         "segmentation": rle, "area": float(mask_utils.area(rle)),
                         "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": 0})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cell"}]}


def _scene(seed, n=6, shape=(64, 96), radii=(4, 9)):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for k in range(1, n + 1):
        cy, cx, r = rng.integers(8, shape[0] - 8), rng.integers(8, shape[1] - 8), rng.integers(*radii)
        rr, cc = disk((cy, cx), r, shape=shape)
        free = labels[rr, cc] == 0
        labels[rr[free], cc[free]] = k
    return labels


def test_coco_ap_ground_truth_as_prediction_is_one_and_empty_is_zero():
    scenes = {1: _scene(1), 2: _scene(2), 3: _scene(3)}
    gt = _gt_from_labels(scenes)
    results = [r for i, lab in scenes.items() for r in instances_to_coco_results(lab, i)]
    types = {1: "A172", 2: "A172", 3: "BV2"}
    out = cocoeval.coco_instance_ap(gt, results, per_cell_type=types)
    assert out["AP"] == pytest.approx(1.0) and out["AP50"] == pytest.approx(1.0) and out["AP75"] == pytest.approx(1.0)
    assert out["per_cell_type"]["BV2"]["AP"] == pytest.approx(1.0)
    assert out["per_cell_type"]["A172"]["AP50"] == pytest.approx(1.0)

    empty = cocoeval.coco_instance_ap(gt, [], per_cell_type=types)
    assert empty["AP"] == 0.0 and empty["AP50"] == 0.0 and empty["per_cell_type"]["BV2"]["AP"] == 0.0

    # wrong answers on image 3 only: BV2 drops to 0, A172 stays perfect
    shifted = [r for r in results if r["image_id"] != 3]
    shifted += instances_to_coco_results(np.roll(scenes[3], 30, axis=1), 3)
    part = cocoeval.coco_instance_ap(gt, shifted, per_cell_type=types)
    assert part["per_cell_type"]["A172"]["AP"] == pytest.approx(1.0)
    assert part["per_cell_type"]["BV2"]["AP50"] < 0.5
    assert part["AP"] < 1.0


def test_coco_ap_is_silent_unless_verbose(capsys):
    scenes = {1: _scene(4)}
    gt = _gt_from_labels(scenes)
    res = instances_to_coco_results(scenes[1], 1)
    cocoeval.coco_instance_ap(gt, res)
    assert capsys.readouterr().out == ""
    cocoeval.coco_instance_ap(gt, res, verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def _overlapping_detections(seed=0):
    """Ground truth and crowded, overlapping detections: 2 per cell, some below IoU 0.5, cells of
    all three LIVECell area ranges (radius 4-24 px: 50-1800 px)."""
    rng = np.random.default_rng(seed)
    scenes = {i: _scene(seed + i, n=25, shape=(128, 128), radii=(4, 25)) for i in (1, 2, 3)}
    gt = _gt_from_labels(scenes)
    results = []
    for i, labels in scenes.items():
        for shift in ((0, 1), (2, -3)):
            moved = np.roll(labels, shift, axis=(0, 1))
            for r in instances_to_coco_results(moved, i, scores={k: rng.random() for k in range(1, 26)}):
                results.append(r)
    return gt, results, {1: "A172", 2: "A172", 3: "BV2"}


def test_area_ranges_are_livecells():
    assert cocoeval.LIVECELL_AREA_RNG[1:] == ((0, 324), (324, 961), (961, 1e10))
    assert cocoeval.LIVECELL_MAX_DETS[-1] == 2000


def test_faster_coco_eval_gives_pycocotools_numbers():
    pytest.importorskip("faster_coco_eval")
    gt, results, types = _overlapping_detections()
    stock = cocoeval.coco_instance_ap(gt, results, per_cell_type=types, backend="pycocotools")
    fast = cocoeval.coco_instance_ap(gt, results, per_cell_type=types, backend="faster-coco-eval")
    assert 0.05 < stock["AP"] < 0.95  # a case with real matching decisions
    assert all(stock[key] is not None for key in cocoeval.AP_KEYS)  # every area range has cells
    for key in cocoeval.AP_KEYS:
        assert fast[key] == pytest.approx(stock[key], abs=1e-12), key
    for cell_type, aps in stock["per_cell_type"].items():
        assert fast["per_cell_type"][cell_type] == pytest.approx(aps, abs=1e-12), cell_type


def test_per_cell_type_ap_equals_evaluating_that_type_alone():
    gt, results, types = _overlapping_detections(seed=5)
    both = cocoeval.coco_instance_ap(gt, results, per_cell_type=types, backend="pycocotools")
    alone = cocoeval.coco_instance_ap(gt, results, img_ids=[3], backend="pycocotools")
    assert both["per_cell_type"]["BV2"] == pytest.approx({k: alone[k] for k in ("AP", "AP50", "AP75")})


def test_backend_names_and_missing_faster_coco_eval(monkeypatch):
    gt, results, _ = _overlapping_detections()
    with pytest.raises(ValueError, match="backend"):
        cocoeval.coco_instance_ap(gt, results, backend="fast")
    monkeypatch.setattr(cocoeval, "_faster_coco_eval", lambda: None)
    with pytest.raises(ImportError, match="pip install faster-coco-eval"):
        cocoeval.coco_instance_ap(gt, results, backend="faster-coco-eval")
    auto = cocoeval.coco_instance_ap(gt, results)  # falls back to pycocotools
    assert auto["AP"] == cocoeval.coco_instance_ap(gt, results, backend="pycocotools")["AP"]
