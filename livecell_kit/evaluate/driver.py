"""The evaluation driver: one trained model on one split, model against baselines.

:func:`evaluate_model` streams a split one batch of images at a time and
reports, for the model and two baselines (``all_background`` predicts no cell
anywhere; ``otsu`` is classical image processing,
:func:`~livecell_kit.evaluate.baselines.otsu_segment`):

* pooled pixel metrics (:mod:`livecell_kit.evaluate.metrics`), overall and per cell type;
  hard 0/1 baseline predictions are scored as probabilities 0/1, so their BCE is
  large wherever they are wrong (``-log(1e-7) ≈ 16``);
* the threshold: the one with the best IoU on the *validation* split
  (:func:`sweep_split`), then applied to the evaluated split (choosing it on
  test would flatter the model);
* instance AP: predictions split into cells (:func:`livecell_kit.instances.split_cells`:
  distance maps, border channel or — a model without an instance head — a watershed on the
  semantic mask, said in ``instance_source``) and scored with COCOeval under LIVECell's
  protocol (:mod:`livecell_kit.evaluate.cocoeval`);
* cells: per frame, cells found against annotated and confluence found against true
  (:mod:`livecell_kit.evaluate.cells`).

:func:`write_metrics_json` saves the result; :func:`seed_comparison` and
:func:`per_cell_type_table` present it.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from livecell_kit.progress import progress_bar
from livecell_kit import atomic, data, masks, predict
from livecell_kit.evaluate.baselines import otsu_segment
from livecell_kit.evaluate.cells import frame_cells, summarise_cells
from livecell_kit.evaluate.cocoeval import coco_instance_ap
from livecell_kit.instances import instance_source, instances_to_coco_results, split_cells
from livecell_kit.evaluate.metrics import MetricAccumulator, MetricsTable, ThresholdSweep
from livecell_kit.presets import CELL_SPLITTING, SEED_REPORTED, CellSplitting


def model_info(model) -> dict:
    """Name, parameter count, input/output shapes and input handling of a Keras model (JSON-ready)."""

    def shape(s):
        if isinstance(s, (list, tuple)) and s and isinstance(s[0], (list, tuple)):
            return [shape(x) for x in s]
        return None if s is None else [None if d is None else int(d) for d in s]

    info = {"name": getattr(model, "name", type(model).__name__)}
    with contextlib.suppress(Exception):
        info["n_params"] = int(model.count_params())
    with contextlib.suppress(Exception):
        info["input_shape"] = shape(model.input_shape)
    with contextlib.suppress(Exception):
        info["output_shape"] = shape(model.output_shape)
    info["size_multiple"] = predict.size_multiple(model)
    info["input_scale"] = predict.input_scale(model)
    return info


def _stream(model, split, batch_size: int, progress: bool, desc: str, jit_compile: bool = False):
    """Yield (image record, uint8 image, model output, 0/1 truth) one image at a time.

    Reads and predicts ``batch_size`` images at a time, so memory holds one
    batch, never the split.  Every image file is checked against its record first
    (:func:`livecell_kit.data.check_image_files`: exists, intact, the declared size).
    """
    records = list(split.images)
    if not records:
        raise ValueError(f"split {split.name!r} under {split.root} has no images to evaluate")
    # headers against the records first: a frame padded or cropped to another size than
    # its JSON record would be scored against masks of the wrong size (wrong metrics)
    data.check_image_files(split, purpose="evaluation")
    bar = progress_bar(total=len(records), desc=desc, unit="image") if progress else None
    try:
        for i in range(0, len(records), batch_size):
            chunk = records[i:i + batch_size]
            images = [data.read_image(split.image_path(r)) for r in chunk]
            # LIVECell frames all share one size; group anyway so odd sizes still work
            outputs = [None] * len(chunk)
            by_shape: dict[tuple, list[int]] = {}
            for j, im in enumerate(images):
                by_shape.setdefault(im.shape, []).append(j)
            for idx in by_shape.values():
                pred = predict.predict_batch(model, [images[j] for j in idx], batch_size=batch_size,
                                             jit_compile=jit_compile)
                for j, p in zip(idx, pred):
                    outputs[j] = p
            for rec, im, out in zip(chunk, images, outputs):
                h, w = im.shape
                anns = split.annotations_for(rec["id"])
                _check_categories(anns, split)
                truth = masks.semantic_mask(anns, h, w, split.index.source)
                yield rec, im, out, truth
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def _foreground(out: np.ndarray) -> np.ndarray:
    """Model output (H, W) or (H, W, C) → cell probability (H, W): channel 0."""
    return out if out.ndim == 2 else out[..., 0]


def _check_categories(anns: list[dict], split) -> None:
    """ValueError naming the annotation file when an annotation's category is not among its categories:
    COCOeval would leave such cells out of AP while the pixel metrics count them."""
    known = {c.get("id") for c in split.index.categories if isinstance(c, dict)}
    unknown = [a for a in anns if a.get("category_id") not in known]
    if unknown:
        a = unknown[0]
        raise ValueError(f"{split.index.source}: annotation {a.get('id')} (image {a.get('image_id')}) has "
                         f"category_id {a.get('category_id')!r}, which is not among the file's categories "
                         f"{sorted(known, key=str)} ({len(unknown)} such annotation(s) on this image); set it to "
                         f"one of those ids (LIVECell: 1, 'cell') or add its category to \"categories\"")



def _grouped(accs: Mapping[str, MetricAccumulator]) -> dict:
    return {k: {"n_images": a.n_images, **a.result()} for k, a in sorted(accs.items())}


def sweep_split(model, data_root, split: str = "val", max_images: int | None = None,
                subset_rule: str = "stratified", batch_size: int | None = None, progress: bool = False,
                jit_compile: bool = False) -> ThresholdSweep:
    """A :class:`ThresholdSweep` of ``model`` over one split (streamed, one batch in memory).

    Its ``.best("iou")`` is how :func:`evaluate_model` chooses the threshold on val.
    """
    try:
        images = data.load_subset(data_root, split, max_images, rule=subset_rule)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}\nchoosing the threshold needs the {split!r} split of {data_root}: "
                                f"pass threshold_data, a data root with that split, or a fixed threshold "
                                f"(e.g. 0.5)") from err
    sweep = ThresholdSweep()
    for _, _, out, truth in _stream(model, images, batch_size or predict.default_batch_size(), progress,
                                    f"threshold on {split}", jit_compile=jit_compile):
        sweep.add(_foreground(out), truth)
    return sweep


def evaluate_model(model, data_root, split: str = "test", threshold: float | None = None,
                   val_split: str = "val", batch_size: int | None = None, instance: bool = True,
                   progress: bool = True, max_images: int | None = None,
                   splitting: CellSplitting = CELL_SPLITTING,
                   jit_compile: bool = False, verbose: bool = False, subset_rule: str = "stratified",
                   threshold_data=None) -> dict:
    """Evaluate a segmentation model on a split of a LIVECell-layout data set.

    model: Keras model, (N, H, W, 1) grey images → sigmoid (N, H, W, C).
    data_root: folder with ``images/`` and ``annotations/`` (sample or LIVECell).
    threshold: cell-probability cut-off; ``None`` chooses the best-IoU
        threshold on ``val_split`` of ``threshold_data`` (default ``data_root``) in one
        streaming pass (see :class:`ThresholdSweep`).  When that would be the very split
        being evaluated, 0.5 is used instead: a threshold tuned on the images it is
        scored on flatters the model.
    threshold_data: data root whose ``val_split`` picks the threshold, e.g. the sample a
        model was trained on when ``data_root`` holds real frames to measure.
    instance: also split predictions into cells (``splitting``: the settings of
        :func:`livecell_kit.instances.split_cells`, its foreground threshold replaced by
        ``threshold``), compute COCO AP and count cells.
    max_images: evaluate at most N images of each split, picked by
        :func:`livecell_kit.data.load_subset` with ``subset_rule`` ("stratified", or
        "first" — the seed project's first 512 test and 256 val images).
    batch_size: images per forward pass; default 1 on CPU (full frames are
        memory-bound there, bigger batches were slower) and 8 on a GPU.
    jit_compile: XLA-compile the forward pass (see :func:`predict.predict_image`).

    Returns a JSON-serialisable dict: pooled pixel metrics (``pixel_accuracy,
    bce, iou, dice, precision, recall``), ``threshold`` (+ ``threshold_source``
    and the ``threshold_sweep`` table when chosen on val), ``seed_metrics``
    {pixel_accuracy, bce} computed the seed project's way (Keras binary accuracy,
    ``p > 0.5``, over all pixels), ``per_cell_type`` {type: metrics + n_images},
    ``baselines`` {all_background, otsu}: same keys + per_cell_type, ``instance``
    {AP, AP50, AP75, AP_small/medium/large, per_cell_type: {type: {AP, AP50, AP75}}}
    (AP over IoU .50:.95), ``instance_source`` (how cells were found: "distance maps",
    "border channel" or "watershed on the semantic mask (no instance head)"), ``cells``
    {count_median_abs_error_pct, confluence_mae_pp, confluence_max_pp, per_cell_type,
    per_frame: [{file, cell_type, cells_true, cells_found, count_error_pct,
    confluence_true_pct, confluence_found_pct, confluence_error_pp}],
    split_cpu_seconds_per_frame} (see :mod:`livecell_kit.evaluate.cells`; with ``instance``
    only), ``n_images``, ``n_pixels``, ``split``, ``model`` info and ``seconds``.
    """
    if threshold is not None and threshold_data is not None:
        raise ValueError(f"threshold_data={str(threshold_data)!r} chooses a threshold, but threshold={threshold} "
                         f"is given: pass one of them")
    t0 = time.time()
    if batch_size is None:
        batch_size = predict.default_batch_size()
    stream_kw = {"jit_compile": jit_compile}
    results: dict = {"split": split, "data_root": str(data_root), "subset_rule": subset_rule,
                     "model": model_info(model)}
    threshold_root = Path(threshold_data) if threshold_data is not None else Path(data_root)
    same_images = (split == val_split and threshold_root.resolve() == Path(data_root).resolve())
    if threshold is None and same_images:
        threshold = 0.5
        results["threshold_source"] = (f"default 0.5: the {split!r} split is the one evaluated, "
                                       f"so choosing the threshold on it would flatter the model")
    elif threshold is None:
        sweep = sweep_split(model, threshold_root, val_split, max_images, subset_rule, batch_size,
                            progress, jit_compile)
        threshold = sweep.best("iou")
        where = "" if threshold_root == Path(data_root) else f" of {threshold_root}"
        results["threshold_source"] = f"best IoU on {val_split}{where}"
        results["threshold_sweep"] = sweep.table()
    else:
        threshold = float(threshold)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be a probability in [0, 1], got {threshold}")
        results["threshold_source"] = "given"

    test = data.load_subset(data_root, split, max_images, rule=subset_rule)
    names = ("model", "all_background", "otsu")
    overall = {n: MetricAccumulator(threshold) for n in names}
    seed_way = MetricAccumulator(0.5, strict=True)
    per_type: dict[str, dict[str, MetricAccumulator]] = {n: {} for n in names}
    coco_results: list[dict] = []
    cell_frames: list[dict] = []
    n_channels, split_seconds = None, 0.0
    cell_type_of_id: dict[int, str] = {}
    for rec, image, out, truth in _stream(model, test, batch_size, progress, f"evaluate {split}",
                                           **stream_kw):
        prob = _foreground(out)
        ctype = test.cell_type(rec)
        cell_type_of_id[int(rec["id"])] = ctype
        preds = {"model": prob,
                 "all_background": np.zeros(truth.shape, np.float32),
                 "otsu": otsu_segment(image).astype(np.float32)}
        seed_way.add(prob, truth)
        for n, p in preds.items():
            one = MetricAccumulator(threshold).add(p, truth)  # counted once, pooled twice
            overall[n].merge(one)
            per_type[n].setdefault(ctype, MetricAccumulator(threshold)).merge(one)
        if instance:
            n_channels = 1 if out.ndim == 2 else out.shape[-1]
            t_split = time.process_time()  # CPU seconds: steady when other jobs share the machine
            labels, scores = split_cells(out, splitting, threshold=threshold)
            split_seconds += time.process_time() - t_split
            coco_results.extend(instances_to_coco_results(labels, rec["id"], scores))
            cell_frames.append(frame_cells(rec["file_name"], ctype, len(test.annotations_for(rec["id"])),
                                           labels, prob >= threshold, truth))

    results.update(overall["model"].result())
    results["threshold"] = threshold
    seed_result = seed_way.result()
    results["seed_metrics"] = {"pixel_accuracy": seed_result["pixel_accuracy"], "bce": seed_result["bce"],
                               "rule": "Keras binary_accuracy (p > 0.5) and binary cross-entropy "
                                       "(p clipped to [1e-7, 1 - 1e-7]), pooled over all pixels"}
    results["per_cell_type"] = _grouped(per_type["model"])
    results["baselines"] = {n: {**overall[n].result(), "per_cell_type": _grouped(per_type[n])}
                            for n in ("all_background", "otsu")}
    results["n_images"] = overall["model"].n_images
    results["n_pixels"] = overall["model"].n_pixels
    if instance:
        t1 = time.time()
        results["instance"] = coco_instance_ap(test, coco_results, per_cell_type=cell_type_of_id,
                                               img_ids=sorted(cell_type_of_id), verbose=verbose)
        results["instance"]["seconds"] = round(time.time() - t1, 2)
        results["instance_source"] = instance_source(n_channels)
        results["cells"] = {**summarise_cells(cell_frames),
                            "split_cpu_seconds_per_frame": split_seconds / max(len(cell_frames), 1)}
    results["seconds"] = round(time.time() - t0, 2)
    return results


def seed_comparison(results: Mapping) -> str:
    """A side-by-side text table: what the seed project reported vs this evaluation.

    Rows: test pixel accuracy and BCE the seed's way (:data:`presets.SEED_REPORTED`),
    then the kit's own IoU and Dice at its chosen threshold for context.
    """
    seed = results["seed_metrics"]
    rows = [("pixel accuracy (p > 0.5)", f"{SEED_REPORTED['pixel_accuracy']:.2%}", f"{seed['pixel_accuracy']:.2%}"),
            ("BCE", f"{SEED_REPORTED['bce']:.4f}", f"{seed['bce']:.4f}"),
            (f"IoU (threshold {results['threshold']:.2f})", "not reported", f"{results['iou']:.4f}"),
            (f"Dice (threshold {results['threshold']:.2f})", "not reported", f"{results['dice']:.4f}")]
    head = ("metric", "seed reported", f"this run ({results['n_images']} {results['split']} images)")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(3)]
    lines = [head, tuple("-" * w for w in widths), *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines)


def per_cell_type_table(results: Mapping, which: str = "model") -> MetricsTable:
    """The per-cell-type metrics of :func:`evaluate_model` as a :class:`MetricsTable`.

    which: ``"model"``, a baseline name (``"all_background"``, ``"otsu"``) or
    ``"instance"`` (AP per type).
    """
    if which == "model":
        groups = results["per_cell_type"]
    elif which == "instance":
        groups = results["instance"]["per_cell_type"]
    else:
        groups = results["baselines"][which]["per_cell_type"]
    return MetricsTable.from_groups(groups)


def write_metrics_json(results: Mapping, path) -> Path:
    """Save :func:`evaluate_model`'s results as JSON, atomically (NaN is written as null)."""
    return atomic.write_json(path, results)
