"""Pixel metrics, pooling and the threshold sweep on hand-made arrays with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from livecell_kit.evaluate import metrics


# --- pixel metrics --------------------------------------------------------------------------

def test_perfect_prediction():
    truth = np.zeros((20, 30), np.uint8)
    truth[5:12, 4:20] = 1
    m = metrics.pixel_metrics(truth.astype(np.float32), truth)
    assert m["iou"] == m["dice"] == m["pixel_accuracy"] == m["precision"] == m["recall"] == 1.0
    assert m["bce"] == pytest.approx(-math.log(1 - 1e-7), abs=1e-6)  # clipped at eps, so ~1e-7
    assert set(m) == set(metrics.METRIC_KEYS)


def test_all_background_prediction():
    truth = np.zeros((10, 10), np.uint8)
    truth[:3] = 1  # 30 % cells
    m = metrics.pixel_metrics(np.zeros((10, 10), np.float32), truth)
    assert m["iou"] == 0.0 and m["dice"] == 0.0 and m["recall"] == 0.0 and m["precision"] == 0.0
    assert m["pixel_accuracy"] == pytest.approx(0.7)
    assert m["bce"] == pytest.approx(0.3 * -math.log(1e-7) + 0.7 * -math.log(1 - 1e-7), rel=1e-6)


def test_half_overlap_known_iou_and_dice():
    truth = np.zeros((10, 10), np.uint8)
    truth[:, 0:4] = 1            # 40 px
    prob = np.zeros((10, 10), np.float32)
    prob[:, 2:6] = 0.9           # 40 px, 20 shared
    m = metrics.pixel_metrics(prob, truth)
    assert m["iou"] == pytest.approx(20 / 60)
    assert m["dice"] == pytest.approx(2 * 20 / 80)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["pixel_accuracy"] == pytest.approx(60 / 100)
    expected_bce = -(20 * math.log(0.9) + 20 * math.log(1e-7) + 20 * math.log(0.1) + 40 * math.log(1 - 1e-7)) / 100
    assert m["bce"] == pytest.approx(expected_bce, rel=1e-6)


def test_empty_truth_and_prediction_conventions():
    empty = np.zeros((4, 4))
    both = metrics.pixel_metrics(empty, empty)
    assert both["iou"] == both["dice"] == both["precision"] == both["recall"] == 1.0
    fp_only = metrics.pixel_metrics(np.ones((4, 4)), empty)
    assert fp_only["iou"] == fp_only["precision"] == fp_only["recall"] == 0.0
    assert fp_only["pixel_accuracy"] == 0.0


def test_threshold_is_inclusive_and_shape_mismatch_is_explained():
    truth = np.array([[1, 0]])
    assert metrics.pixel_metrics(np.array([[0.5, 0.49]]), truth, threshold=0.5)["pixel_accuracy"] == 1.0
    with pytest.raises(ValueError, match="shape"):
        metrics.pixel_metrics(np.zeros((2, 2)), np.zeros((2, 3)))


def test_accumulator_pools_like_one_big_image():
    rng = np.random.default_rng(1)
    probs = [rng.random((8, 9)).astype(np.float32) for _ in range(3)] + [rng.random((5, 9))]
    truths = [(rng.random(p.shape) < f).astype(np.uint8) for p, f in zip(probs, (0.1, 0.5, 0.9, 0.0))]
    acc = metrics.MetricAccumulator(0.4)
    for p, t in zip(probs, truths):
        acc.add(p, t)
    pooled = metrics.pixel_metrics(np.concatenate(probs), np.concatenate(truths), threshold=0.4)
    got = acc.result()
    for k in metrics.METRIC_KEYS:
        assert got[k] == pytest.approx(pooled[k], rel=1e-9), k
    # pooled (micro) differs from the mean of per-image IoUs here: pooling is a real choice
    per_image = np.mean([metrics.pixel_metrics(p, t, 0.4)["iou"] for p, t in zip(probs, truths)])
    assert abs(per_image - got["iou"]) > 1e-3
    # merging two partial accumulators gives the same totals
    a, b = metrics.MetricAccumulator(0.4), metrics.MetricAccumulator(0.4)
    for i, (p, t) in enumerate(zip(probs, truths)):
        (a if i % 2 else b).add(p, t)
    assert a.merge(b).result() == pytest.approx(got)
    assert a.n_images == 4


def test_metrics_table_markdown_and_optional_pandas():
    table = metrics.MetricsTable.from_groups({"BV2": {"n_images": 2, "iou": 0.5, "dice": 2 / 3},
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
    sweep = metrics.threshold_sweep([prob[:20], prob[20:]], [truth[:20], truth[20:]])
    best = sweep.best("iou")
    assert best == pytest.approx(0.58)
    assert metrics.pixel_metrics(prob, truth, best)["iou"] == 1.0
    tab = sweep.table()
    assert tab["threshold"][0] == pytest.approx(0.05) and tab["threshold"][-1] == pytest.approx(0.95)
    # the histogram counts agree exactly with thresholding the pixels
    i = tab["threshold"].index(pytest.approx(0.3))
    assert tab["iou"][i] == pytest.approx(metrics.pixel_metrics(prob, truth, tab["threshold"][i])["iou"])


def test_threshold_sweep_prefers_lower_threshold_for_underconfident_model():
    truth = np.zeros((10, 10), np.uint8)
    truth[:5] = 1
    prob = np.where(truth, 0.35, 0.1)  # cells never reach 0.5
    assert metrics.threshold_sweep([prob], [truth]).best() == pytest.approx(0.35)
