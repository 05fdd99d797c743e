"""Instance-segmentation AP under LIVECell's COCO protocol.

:func:`coco_instance_ap` scores predicted cells (COCO results with RLE masks,
see :func:`livecell_kit.instances.instances_to_coco_results`) with
pycocotools' ``COCOeval`` (segm IoU) and LIVECell's parameters: up to 2000
detections per image and area ranges small < 324 px ≤ medium ≤ 961 px < large
(Edlund et al. 2021), defined once here (:data:`AREA_SMALL_MAX`,
:data:`AREA_LARGE_MIN`).

Speed: pycocotools matches detections to cells in Python, which is slow on LIVECell's
crowded frames (hundreds of cells each).  When the maintained package ``faster-coco-eval``
is installed (``pip install faster-coco-eval``; not a dependency of the kit), its C++
``COCOeval_faster`` is used instead: the same numbers (tests compare both), about 26×
faster on 5 annotated real frames.
"""
from __future__ import annotations

import contextlib
import copy
import io
from typing import Mapping, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

#: LIVECell's area ranges in pixels: small < 324 <= medium <= 961 < large.
AREA_SMALL_MAX = 324
AREA_LARGE_MIN = 961
# many cells per image, so up to 2000 detections
LIVECELL_MAX_DETS = (100, 500, 2000)
LIVECELL_AREA_RNG = ((0, 1e10), (0, AREA_SMALL_MAX), (AREA_SMALL_MAX, AREA_LARGE_MIN), (AREA_LARGE_MIN, 1e10))
LIVECELL_AREA_LBL = ("all", "small", "medium", "large")

AP_KEYS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
BACKENDS = ("auto", "pycocotools", "faster-coco-eval")


def _faster_coco_eval():
    """faster-coco-eval's ``(COCO, COCOeval_faster)``, or None when it is not installed."""
    try:
        from faster_coco_eval import COCO as FasterCOCO, COCOeval_faster  # optional speed-up
    except ImportError:
        return None
    return FasterCOCO, COCOeval_faster


def _backend(name: str):
    """``(COCO class, COCOeval class, extra COCOeval arguments, restrictable)`` for a backend name.

    restrictable: its ``evalImgs`` can be sliced per image group (:func:`_restrict_eval`).
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    faster = _faster_coco_eval() if name != "pycocotools" else None
    if faster is None and name == "faster-coco-eval":
        raise ImportError("backend 'faster-coco-eval' needs the package: pip install faster-coco-eval")
    if faster is None:
        return COCO, COCOeval, {}, True
    return faster[0], faster[1], {"print_function": print}, False


def _livecell_params(E, img_ids) -> None:
    p = E.params
    p.imgIds = sorted(int(i) for i in img_ids)
    p.maxDets = list(LIVECELL_MAX_DETS)
    p.areaRng = [list(r) for r in LIVECELL_AREA_RNG]
    p.areaRngLbl = list(LIVECELL_AREA_LBL)


def _evaluated(evaluator, kwargs, coco_gt, coco_dt, img_ids):
    """A COCOeval of ``img_ids`` with LIVECell's parameters, evaluated and accumulated."""
    E = evaluator(coco_gt, coco_dt, iouType="segm", **kwargs)
    _livecell_params(E, img_ids)
    E.evaluate()
    E.accumulate()
    return E


def _ap_from_eval(E) -> dict:
    """AP (IoU .50:.95), AP50, AP75 and per-area AP at maxDets 2000 from ``E.eval``.

    Mirrors ``COCOeval.summarize`` but returns numbers instead of printing.
    ``None`` when undefined (no ground truth in the selection).
    """
    prec = E.eval["precision"]  # [T iou thresholds, R recall thresholds, K cats, A areas, M maxDets]
    thrs = E.params.iouThrs
    m = len(E.params.maxDets) - 1

    def mean(s):
        s = s[s > -1]
        return float(s.mean()) if s.size else None

    out = {"AP": mean(prec[:, :, :, 0, m]),
           "AP50": mean(prec[np.isclose(thrs, 0.5), :, :, 0, m]),
           "AP75": mean(prec[np.isclose(thrs, 0.75), :, :, 0, m])}
    for a, lbl in enumerate(LIVECELL_AREA_LBL[1:], start=1):
        out[f"AP_{lbl}"] = mean(prec[:, :, :, a, m])
    return out


def _restrict_eval(E, ids):
    """A shallow copy of an evaluated pycocotools COCOeval limited to images ``ids``.

    ``COCOeval.accumulate(p)`` with a subset of ``imgIds`` indexes
    ``evalImgs`` by the subset's positions (a known pycocotools bug), so we
    slice ``evalImgs`` ourselves and present the subset as what was evaluated.
    """
    pe = E._paramsEval
    all_ids = list(pe.imgIds)
    pos = {i: n for n, i in enumerate(all_ids)}
    ids = sorted(i for i in ids if i in pos)
    I0, A0 = len(all_ids), len(pe.areaRng)
    K = len(pe.catIds) if pe.useCats else 1
    sub = copy.copy(E)
    sub.params = copy.deepcopy(E.params)
    sub._paramsEval = copy.deepcopy(pe)
    sub.params.imgIds = ids
    sub._paramsEval.imgIds = ids
    sub.evalImgs = [E.evalImgs[k * A0 * I0 + a * I0 + pos[i]]
                    for k in range(K) for a in range(A0) for i in ids]
    return sub


def _ground_truth(coco_class, gt_dataset, img_ids):
    """A COCO index of the ground truth on copies (COCOeval marks annotations).

    A ``data.Split`` gives only ``img_ids``' records and cells (all its images when None).
    """
    if hasattr(gt_dataset, "coco_dataset"):
        dataset = gt_dataset.coco_dataset(img_ids)  # fresh dicts, built for these images only
    else:
        dataset = gt_dataset.dataset if hasattr(gt_dataset, "dataset") else gt_dataset
        anns = dataset["annotations"]
        dataset = {**dataset, "annotations": [dict(a) for a in (anns.values() if isinstance(anns, dict) else anns)]}
    coco_gt = coco_class()
    coco_gt.dataset = dataset
    coco_gt.createIndex()
    return coco_gt


def coco_instance_ap(gt_dataset, results: list[dict], per_cell_type: Mapping | None = None,
                     img_ids: Sequence[int] | None = None, verbose: bool = False,
                     backend: str = "auto") -> dict:
    """Instance-segmentation AP under LIVECell's COCO protocol.

    gt_dataset: a ``data.Split`` (a COCO index is built for the images scored only), a
        COCO dict (``"images"``, ``"annotations"`` as a list or LIVECell's dict keyed by
        id, ``"categories"``) or a ``pycocotools.coco.COCO``.
    results: COCO result dicts (see :func:`livecell_kit.instances.instances_to_coco_results`).
    per_cell_type: ``None`` or a mapping ``{image_id: cell_type}``; adds AP per type.
    img_ids: images to score (default: all images of ``gt_dataset``).
    verbose: let the evaluator print its progress and summary table.
    backend: ``"auto"`` (faster-coco-eval when installed, else pycocotools),
        ``"pycocotools"`` or ``"faster-coco-eval"``.

    Returns ``{"AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "n_detections", "per_cell_type": {type: {"AP", "AP50", "AP75"}}}``.
    AP is averaged over IoU 0.50:0.95, with up to 2000 detections per image.
    With ground truth but no detections AP is 0.0 (pycocotools would report
    -1 or fail to load an empty result list); with no ground truth it is None.
    """
    coco_class, evaluator, kwargs, restrictable = _backend(backend)
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        coco_gt = _ground_truth(coco_class, gt_dataset, None if img_ids is None else [int(i) for i in img_ids])
    img_ids = sorted(int(i) for i in (coco_gt.getImgIds() if img_ids is None else img_ids))
    keep = set(img_ids)
    per_type_ids: dict[str, list[int]] = {}
    for i, t in (per_cell_type or {}).items():
        if int(i) in keep:
            per_type_ids.setdefault(str(t), []).append(int(i))
    results = [r for r in results if int(r["image_id"]) in keep]

    if not results:
        def empty(ids, keys):
            has_gt = any(coco_gt.getAnnIds(imgIds=[i], iscrowd=None) for i in ids)
            return {k: 0.0 if has_gt else None for k in keys}

        return {**empty(img_ids, AP_KEYS), "n_detections": 0,
                "per_cell_type": {t: empty(ids, AP_KEYS[:3]) for t, ids in sorted(per_type_ids.items())}}

    with sink:
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))  # loadRes adds fields to the dicts
        E = _evaluated(evaluator, kwargs, coco_gt, coco_dt, img_ids)
        if verbose:
            E.summarize()
        out = {**_ap_from_eval(E), "n_detections": len(results), "per_cell_type": {}}
        for t, ids in sorted(per_type_ids.items()):
            if restrictable:
                sub = _restrict_eval(E, ids)
                sub.accumulate()
            else:  # faster-coco-eval keeps per-image results in C++: evaluate the type again
                sub = _evaluated(evaluator, kwargs, coco_gt, coco_dt, ids)
            r = _ap_from_eval(sub)
            out["per_cell_type"][t] = {k: r[k] for k in AP_KEYS[:3]}
    return out
