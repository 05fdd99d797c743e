"""Metrics, thresholds, baselines and instance AP on hand-made arrays with known answers."""
from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

from livecell_kit import evaluate as ev


def _disc(shape, cy, cx, r):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r


# --- pixel metrics --------------------------------------------------------------------------

def test_perfect_prediction():
    truth = np.zeros((20, 30), np.uint8)
    truth[5:12, 4:20] = 1
    m = ev.pixel_metrics(truth.astype(np.float32), truth)
    assert m["iou"] == m["dice"] == m["pixel_accuracy"] == m["precision"] == m["recall"] == 1.0
    assert m["bce"] == pytest.approx(-math.log(1 - 1e-7), abs=1e-6)  # clipped at eps, so ~1e-7
    assert set(m) == set(ev.METRIC_KEYS)


def test_all_background_prediction():
    truth = np.zeros((10, 10), np.uint8)
    truth[:3] = 1  # 30 % cells
    m = ev.pixel_metrics(np.zeros((10, 10), np.float32), truth)
    assert m["iou"] == 0.0 and m["dice"] == 0.0 and m["recall"] == 0.0 and m["precision"] == 0.0
    assert m["pixel_accuracy"] == pytest.approx(0.7)
    assert m["bce"] == pytest.approx(0.3 * -math.log(1e-7) + 0.7 * -math.log(1 - 1e-7), rel=1e-6)


def test_half_overlap_known_iou_and_dice():
    truth = np.zeros((10, 10), np.uint8)
    truth[:, 0:4] = 1            # 40 px
    prob = np.zeros((10, 10), np.float32)
    prob[:, 2:6] = 0.9           # 40 px, 20 shared
    m = ev.pixel_metrics(prob, truth)
    assert m["iou"] == pytest.approx(20 / 60)
    assert m["dice"] == pytest.approx(2 * 20 / 80)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["pixel_accuracy"] == pytest.approx(60 / 100)
    expected_bce = -(20 * math.log(0.9) + 20 * math.log(1e-7) + 20 * math.log(0.1) + 40 * math.log(1 - 1e-7)) / 100
    assert m["bce"] == pytest.approx(expected_bce, rel=1e-6)


def test_empty_truth_and_prediction_conventions():
    empty = np.zeros((4, 4))
    both = ev.pixel_metrics(empty, empty)
    assert both["iou"] == both["dice"] == both["precision"] == both["recall"] == 1.0
    fp_only = ev.pixel_metrics(np.ones((4, 4)), empty)
    assert fp_only["iou"] == fp_only["precision"] == fp_only["recall"] == 0.0
    assert fp_only["pixel_accuracy"] == 0.0


def test_threshold_is_inclusive_and_shape_mismatch_is_explained():
    truth = np.array([[1, 0]])
    assert ev.pixel_metrics(np.array([[0.5, 0.49]]), truth, threshold=0.5)["pixel_accuracy"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        ev.pixel_metrics(np.zeros((2, 2)), np.zeros((2, 3)))


def test_accumulator_pools_like_one_big_image():
    rng = np.random.default_rng(1)
    probs = [rng.random((8, 9)).astype(np.float32) for _ in range(3)] + [rng.random((5, 9))]
    truths = [(rng.random(p.shape) < f).astype(np.uint8) for p, f in zip(probs, (0.1, 0.5, 0.9, 0.0))]
    acc = ev.MetricAccumulator(0.4)
    for p, t in zip(probs, truths):
        acc.add(p, t)
    pooled = ev.pixel_metrics(np.concatenate(probs), np.concatenate(truths), threshold=0.4)
    got = acc.result()
    for k in ev.METRIC_KEYS:
        assert got[k] == pytest.approx(pooled[k], rel=1e-9), k
    # pooled (micro) differs from the mean of per-image IoUs here: pooling is a real choice
    per_image = np.mean([ev.pixel_metrics(p, t, 0.4)["iou"] for p, t in zip(probs, truths)])
    assert abs(per_image - got["iou"]) > 1e-3
    # merging two partial accumulators gives the same totals
    a, b = ev.MetricAccumulator(0.4), ev.MetricAccumulator(0.4)
    for i, (p, t) in enumerate(zip(probs, truths)):
        (a if i % 2 else b).add(p, t)
    assert a.merge(b).result() == pytest.approx(got)
    assert a.n_images == 4


def test_metrics_table_markdown_and_optional_pandas():
    table = ev.MetricsTable.from_groups({"BV2": {"n_images": 2, "iou": 0.5, "dice": 2 / 3},
                                         "A172": {"n_images": 1, "iou": 0.25, "dice": 0.4}})
    text = table.to_markdown(digits=3)
    lines = text.splitlines()
    assert lines[0] == "| cell_type | n_images | iou | dice |"
    assert lines[2] == "| A172 | 1 | 0.250 | 0.400 |"  # rows sorted by name
    assert repr(table) == table.to_markdown()
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pandas"):
            table.to_pandas()
    else:
        assert table.to_pandas().loc["BV2", "iou"] == 0.5


# --- threshold sweep --------------------------------------------------------------------------

def test_threshold_sweep_finds_the_separating_threshold():
    # cells score 0.62..0.9, background 0.1..0.58 (exclusive): any t in [0.58, 0.62] separates;
    # ties go to the threshold nearest 0.5
    rng = np.random.default_rng(0)
    truth = (rng.random((40, 50)) < 0.3).astype(np.uint8)
    prob = np.where(truth, rng.uniform(0.62, 0.9, truth.shape), rng.uniform(0.1, 0.58, truth.shape))
    sweep = ev.threshold_sweep([prob[:20], prob[20:]], [truth[:20], truth[20:]])
    best = sweep.best("iou")
    assert best == pytest.approx(0.58)
    assert ev.pixel_metrics(prob, truth, best)["iou"] == 1.0
    tab = sweep.table()
    assert tab["threshold"][0] == pytest.approx(0.05) and tab["threshold"][-1] == pytest.approx(0.95)
    # the histogram counts agree exactly with thresholding the pixels
    i = tab["threshold"].index(pytest.approx(0.3))
    assert tab["iou"][i] == pytest.approx(ev.pixel_metrics(prob, truth, tab["threshold"][i])["iou"])


def test_threshold_sweep_prefers_lower_threshold_for_underconfident_model():
    truth = np.zeros((10, 10), np.uint8)
    truth[:5] = 1
    prob = np.where(truth, 0.35, 0.1)  # cells never reach 0.5
    assert ev.threshold_sweep([prob], [truth]).best() == pytest.approx(0.35)


# --- Otsu baseline ----------------------------------------------------------------------------

def test_otsu_threshold_splits_bimodal_values():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(50, 5, 5000), rng.normal(200, 10, 2000)])
    t = ev.otsu_threshold(values)
    assert np.mean((values >= t) == (np.arange(values.size) >= 5000)) > 0.995
    assert ev.otsu_threshold(np.full(10, 3.0)) == 3.0


def test_otsu_segment_finds_dark_and_bright_textured_cells():
    rng = np.random.default_rng(0)
    img = rng.normal(128, 2, (120, 160))                # flat background, camera noise
    cell1 = _disc(img.shape, 40, 40, 15)
    cell2 = _disc(img.shape, 80, 110, 18)
    img[cell1] = rng.normal(90, 25, cell1.sum())         # darker, textured
    img[cell2] = rng.normal(170, 25, cell2.sum())        # brighter, textured
    mask = ev.otsu_segment(np.clip(img, 0, 255).astype(np.uint8))
    truth = cell1 | cell2
    assert ev.pixel_metrics(mask.astype(float), truth)["iou"] > 0.85
    # thresholding raw intensity instead would find only one of the two cells
    assert ev.pixel_metrics((img < 110).astype(float), truth)["iou"] < 0.6


# --- instances --------------------------------------------------------------------------------

def test_separated_blobs_give_two_labels():
    prob = np.zeros((60, 80), np.float32)
    prob[_disc(prob.shape, 20, 20, 8)] = 0.9
    prob[_disc(prob.shape, 40, 60, 10)] = 0.8
    prob[2:4, 70:72] = 0.9  # 4-pixel speck: below min_size
    for method in ("components", "watershed"):
        labels = ev.semantic_to_instances(prob, 0.5, min_size=10, method=method)
        assert labels.dtype == np.int32
        assert sorted(np.unique(labels)) == [0, 1, 2]


def test_watershed_splits_two_touching_discs():
    shape = (80, 120)
    a, b = _disc(shape, 40, 40, 20), _disc(shape, 40, 75, 20)
    prob = (a | b).astype(np.float32)
    assert ev.semantic_to_instances(prob, 0.5, method="components").max() == 1
    labels = ev.semantic_to_instances(prob, 0.5)
    assert labels.max() == 2
    la, lb = np.bincount(labels[a]).argmax(), np.bincount(labels[b]).argmax()
    assert la != lb and la > 0 and lb > 0
    # the split runs along the neck: each disc is (almost) one label
    assert np.mean(labels[a & ~b] == la) > 0.95 and np.mean(labels[b & ~a] == lb) > 0.95


def test_border_channel_separates_cells():
    shape = (40, 60)
    prob = np.zeros(shape, np.float32)
    prob[10:30, 10:50] = 0.9
    border = np.zeros(shape, np.float32)
    border[10:30, 29:31] = 0.9  # a border line across the blob
    labels = ev.semantic_to_instances(prob, 0.5, border_prob=border, min_size=5)
    assert labels.max() == 2
    assert (labels[10:30, 10:50] > 0).all()  # border pixels are given back to a cell
    assert labels[20, 15] != labels[20, 45]


def _gt_from_labels(labels_per_image):
    images, anns = [], []
    for img_id, labels in labels_per_image.items():
        h, w = labels.shape
        images.append({"id": img_id, "file_name": f"img{img_id}.tif", "height": h, "width": w})
        for r in ev.instances_to_coco_results(labels, img_id):
            from pycocotools import mask as mu
            rle = dict(r["segmentation"])
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": 1,
                         "segmentation": rle, "area": float(mu.area(rle)),
                         "bbox": [float(v) for v in mu.toBbox(rle)], "iscrowd": 0})
    return {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cell"}]}


def _scene(seed, n=6, shape=(64, 96)):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for k in range(1, n + 1):
        cy, cx, r = rng.integers(8, shape[0] - 8), rng.integers(8, shape[1] - 8), rng.integers(4, 9)
        labels[_disc(shape, cy, cx, r) & (labels == 0)] = k
    return labels


def test_rle_results_are_json_and_scored_by_mean_probability():
    labels = np.zeros((10, 12), np.int32)
    labels[1:4, 1:4] = 1
    labels[6:9, 5:11] = 7
    prob = np.where(labels == 1, 0.8, 0.6).astype(np.float32)
    res = ev.instances_to_coco_results(labels, image_id=5, scores=prob)
    assert len(res) == 2 and {r["image_id"] for r in res} == {5}
    assert res[0]["score"] == pytest.approx(0.8) and res[1]["score"] == pytest.approx(0.6)
    json.dumps(res)  # counts decoded to str
    from pycocotools import mask as mu
    decoded = mu.decode(res[1]["segmentation"])
    assert decoded.shape == (10, 12) and np.array_equal(decoded.astype(bool), labels == 7)


def test_coco_ap_ground_truth_as_prediction_is_one_and_empty_is_zero():
    scenes = {1: _scene(1), 2: _scene(2), 3: _scene(3)}
    gt = _gt_from_labels(scenes)
    results = [r for i, lab in scenes.items() for r in ev.instances_to_coco_results(lab, i)]
    types = {1: "A172", 2: "A172", 3: "BV2"}
    out = ev.coco_instance_ap(gt, results, per_cell_type=types)
    assert out["AP"] == pytest.approx(1.0) and out["AP50"] == pytest.approx(1.0) and out["AP75"] == pytest.approx(1.0)
    assert out["per_cell_type"]["BV2"]["AP"] == pytest.approx(1.0)
    assert out["per_cell_type"]["A172"]["AP50"] == pytest.approx(1.0)

    empty = ev.coco_instance_ap(gt, [], per_cell_type=types)
    assert empty["AP"] == 0.0 and empty["AP50"] == 0.0 and empty["per_cell_type"]["BV2"]["AP"] == 0.0

    # wrong answers on image 3 only: BV2 drops to 0, A172 stays perfect
    shifted = [r for r in results if r["image_id"] != 3]
    shifted += ev.instances_to_coco_results(np.roll(scenes[3], 30, axis=1), 3)
    part = ev.coco_instance_ap(gt, shifted, per_cell_type=types)
    assert part["per_cell_type"]["A172"]["AP"] == pytest.approx(1.0)
    assert part["per_cell_type"]["BV2"]["AP50"] < 0.5
    assert part["AP"] < 1.0


def test_coco_ap_is_silent_unless_verbose(capsys):
    scenes = {1: _scene(4)}
    gt = _gt_from_labels(scenes)
    res = ev.instances_to_coco_results(scenes[1], 1)
    ev.coco_instance_ap(gt, res)
    assert capsys.readouterr().out == ""
    ev.coco_instance_ap(gt, res, verbose=True)
    assert "Average Precision" in capsys.readouterr().out


def test_fast_matching_equals_pycocotools():
    """The candidate-only matching loop must reproduce COCOeval exactly (boxes overlap a lot here)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    images = [{"id": i, "height": 100, "width": 100, "file_name": f"{i}.tif"} for i in (1, 2)]
    anns, dets = [], []
    for img in (1, 2):
        for _ in range(25):
            x, y, w, h = rng.uniform(0, 70), rng.uniform(0, 70), rng.uniform(3, 30), rng.uniform(3, 30)
            anns.append({"id": len(anns) + 1, "image_id": img, "category_id": 1, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": 0})
            for _ in range(2):
                dx, dy = rng.normal(0, 3, 2)
                dets.append({"image_id": img, "category_id": 1, "bbox": [x + dx, y + dy, w, h],
                             "score": float(rng.random())})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cell"}]}
        gt.createIndex()
        evals = []
        for cls in (COCOeval, ev._FastCOCOeval.get()):
            E = cls(gt, gt.loadRes(dets), iouType="bbox")
            ev._livecell_params(E, [1, 2])
            E.params.areaRng = [[0, 1e10], [0, 100], [100, 400], [400, 1e10]]  # exercise ignore flags
            E.evaluate()
            E.accumulate()
            evals.append(E)
    ref, fast = evals
    for a, b in zip(ref.evalImgs, fast.evalImgs):
        assert np.array_equal(a["dtMatches"], b["dtMatches"]) and np.array_equal(a["dtIgnore"], b["dtIgnore"])
        assert np.array_equal(a["gtMatches"], b["gtMatches"])
    assert np.array_equal(ref.eval["precision"], fast.eval["precision"])


def test_write_metrics_json_is_atomic_and_strict(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    ev.write_metrics_json({"iou": np.float32(0.5), "bce": float("nan"), "n": np.int64(3)}, path)
    assert json.loads(path.read_text()) == {"iou": 0.5, "bce": None, "n": 3}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp files left


# --- evaluate_model on a tiny LIVECell-layout data set ------------------------------------------

def _tiny_livecell(root, shape=(64, 96)):
    """2 val + 2 test images of bright polygon 'cells' on grey; returns the root."""
    import tifffile
    from pycocotools import mask as mu

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
    for k in ev.METRIC_KEYS + ("threshold", "per_cell_type", "baselines", "instance", "n_images", "split", "model"):
        assert k in res, k
    assert res["n_images"] == 2 and res["split"] == "test"
    assert res["threshold_source"] == "best IoU on val" and 0.05 <= res["threshold"] <= 0.95
    assert res["iou"] > 0.9 and res["pixel_accuracy"] > 0.98
    assert sorted(res["per_cell_type"]) == ["A172", "BV2"]
    assert set(res["per_cell_type"]["BV2"]) >= set(ev.METRIC_KEYS)
    bg = res["baselines"]["all_background"]
    from pycocotools import mask as mu
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
    assert set(res["baselines"]["otsu"]) >= set(ev.METRIC_KEYS)
    assert res["instance"]["AP50"] > 0.95 and res["instance"]["AP"] > 0.8
    assert sorted(res["instance"]["per_cell_type"]) == ["A172", "BV2"]
    out = ev.write_metrics_json(res, tmp_path / "metrics.json")
    assert json.loads(out.read_text())["iou"] == pytest.approx(res["iou"])
    assert "| A172 |" in ev.per_cell_type_table(res).to_markdown()

    fixed = ev.evaluate_model(model, root, threshold=0.5, instance=False, progress=False, max_images=1)
    assert fixed["threshold"] == 0.5 and fixed["threshold_source"] == "given"
    assert fixed["n_images"] == 1 and "instance" not in fixed
