"""Instances as COCO sees them: best-match IoUs and COCO "results" (RLE mask + score).

:func:`instances_to_coco_results` encodes each cell of a label image for
:func:`livecell_kit.evaluate.cocoeval.coco_instance_ap`.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage


def best_match_ious(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """For each predicted cell, its IoU with the annotated cell it overlaps most.

    predicted, truth: (H, W) int label images, 0 = background, cells 1..n (as from
    :func:`semantic_to_instances` and ``masks.instance_labels``).  Returns float (n,)
    for labels 1..predicted.max(); 0 for a predicted cell touching no annotated one.
    """
    predicted, truth = np.asarray(predicted, np.int64), np.asarray(truth, np.int64)
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted {predicted.shape} and truth {truth.shape} label images differ in shape")
    n_pred, n_truth = int(predicted.max(initial=0)), int(truth.max(initial=0))
    # one pass: pixel counts of every (predicted label, truth label) pair
    pairs = np.bincount((predicted * (n_truth + 1) + truth).ravel(), minlength=(n_pred + 1) * (n_truth + 1))
    pairs = pairs.reshape(n_pred + 1, n_truth + 1)
    if n_pred == 0 or n_truth == 0:
        return np.zeros(n_pred)
    inter = pairs[1:, 1:]
    union = pairs[1:].sum(axis=1)[:, None] + pairs[:, 1:].sum(axis=0)[None, :] - inter
    return (inter / np.maximum(union, 1)).max(axis=1)


def instances_to_coco_results(labels: np.ndarray, image_id: int, scores=None,
                              category_id: int = 1) -> list[dict]:
    """COCO "results" entries (RLE masks) for each instance of a label image.

    labels: int (H, W), 0 = background.
    scores: None (every instance scores 1.0), a probability map (H, W) —
        each instance's score is its mean probability — or a mapping
        ``{label: score}``.
    Returns ``[{"image_id", "category_id", "segmentation": {"size": [H, W],
    "counts": str}, "score"}, ...]`` — JSON-serialisable.
    """
    labels = np.asarray(labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) == 0:
        return []
    if scores is None:
        score_of = {int(i): 1.0 for i in ids}
    elif isinstance(scores, Mapping):
        score_of = {int(k): float(v) for k, v in scores.items()}
    else:
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != labels.shape:
            raise ValueError(f"scores map has shape {s.shape}, labels {labels.shape}")
        means = ndimage.mean(s, labels, ids)
        score_of = {int(i): float(m) for i, m in zip(ids, means)}
    # one reusable Fortran-order buffer: RLE runs down columns, and allocating
    # an (H, W, n) stack for thousands of cells would take gigabytes
    buf = np.zeros(labels.shape, dtype=np.uint8, order="F")
    objects = ndimage.find_objects(labels.astype(np.int32, copy=False))
    out = []
    for lab in ids:
        sl = objects[int(lab) - 1]
        buf[sl] = labels[sl] == lab
        rle = mask_utils.encode(buf)
        buf[sl] = 0
        counts = rle["counts"]
        out.append({
            "image_id": int(image_id),
            "category_id": int(category_id),
            "segmentation": {"size": [int(x) for x in rle["size"]],
                             "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts},
            "score": float(score_of[int(lab)]),
        })
    return out
