"""Choose ``presets.CELL_SPLITTING`` for a cells model on the sample's val split (never on real frames).

    .venv/bin/python bench/cells_tuning.py --model RUN [--sample DIR]

The model (3 output channels: foreground, centre and boundary distance) predicts the val
frames once; then ``instances.split_cells`` runs with each setting of a small staged grid:

1. scoring (``foreground``, ``foreground_seed``, ``foreground_shape``);
2. centre_threshold × boundary_threshold;
3. smoothing_sigma × min_size;
4. foreground_threshold;

each stage starting from the best AP (COCO, LIVECell's protocol, pooled over the val frames)
of the one before; settings within 0.002 AP of a stage's best count as ties, and the tie that
changes fewest settings wins.  The first stage starts from ``CellSplitting()``'s defaults.
Printed per setting: AP, AP50, AP75, median absolute cell-count error (%) and split CPU
seconds per frame; last, the best settings as a ``CellSplitting(...)`` line for presets/inference.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LIVECELL_KIT_WORKDIR", str(ROOT / "build" / "work"))  # as make does

import numpy as np  # noqa: E402

from livecell_kit import course, data, evaluate, instances, presets  # noqa: E402

course.import_tensorflow_quietly()
from livecell_kit import predict, train  # noqa: E402

STAGES = (
    {"scoring": instances.SCORINGS},
    {"centre_threshold": (0.3, 0.4, 0.5, 0.6, 0.7), "boundary_threshold": (0.3, 0.4, 0.5, 0.6, 0.7)},
    {"smoothing_sigma": (0.0, 1.0, 1.6, 2.4), "min_size": (10, 20, 40)},
    {"foreground_threshold": (0.4, 0.5, 0.6)},
)

MIN_GAIN = 0.002  # AP


def val_outputs(model, root: Path) -> tuple[data.Split, list[tuple[dict, np.ndarray]]]:
    """The val split and (record, model output (H, W, 3)) per frame."""
    split = data.load_split(root, "val")
    frames = []
    for rec in split.images:
        out = predict.predict_image(model, data.read_image(split.image_path(rec)))
        if out.ndim != 3 or out.shape[-1] != 3:
            raise SystemExit(f"the model outputs {1 if out.ndim == 2 else out.shape[-1]} channels; "
                             "CELL_SPLITTING is chosen for a cells model (3 channels: train the cells preset)")
        frames.append((rec, out))
    return split, frames


def score(split, frames, params: presets.CellSplitting) -> dict:
    """AP, AP50, AP75, median abs count error (%) and split seconds per frame at ``params``."""
    coco, counts, seconds = [], [], 0.0
    for rec, out in frames:
        t = time.process_time()  # CPU seconds: wall time swings with other jobs on a shared machine
        labels, scores = instances.split_cells(out, params)
        seconds += time.process_time() - t
        coco += instances.instances_to_coco_results(labels, rec["id"], scores)
        n_true = len(split.annotations_for(rec["id"]))
        counts.append(abs(100.0 * (int(labels.max()) - n_true) / n_true) if n_true else np.nan)
    ap = evaluate.coco_instance_ap(split, coco, img_ids=[rec["id"] for rec, _ in frames])
    return {"AP": ap["AP"], "AP50": ap["AP50"], "AP75": ap["AP75"],
            "count err %": float(np.nanmedian(counts)), "cpu s/frame": seconds / len(frames)}


def chosen(current: presets.CellSplitting, tried: list) -> presets.CellSplitting:
    """The stage's choice: of the settings within ``MIN_GAIN`` AP of its best (noise, on 16 frames),
    the one that changes fewest settings of ``current``, then the best AP."""
    top = max(r["AP"] for _, _, r in tried)

    def changed(params):
        return sum(getattr(params, f.name) != getattr(current, f.name) for f in dataclasses.fields(params))

    near = [(changed(params), -r["AP"], i) for i, (_, params, r) in enumerate(tried) if r["AP"] >= top - MIN_GAIN]
    return tried[min(near)[2]][1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", type=Path, required=True, help="a cells model: model.keras or run folder")
    p.add_argument("--sample", type=Path, default=None, help="sample data root (default: the kit's seed-0 sample)")
    args = p.parse_args(argv)
    split, frames = val_outputs(train.load_model(args.model, compile=False), args.sample or course.sample_root())
    best = presets.CellSplitting()  # torch-em's settings: a rerun retraces the choice from scratch
    print(f"{len(frames)} val frames of {split.root}; start: {best}; now in presets/inference.py: {presets.CELL_SPLITTING}")
    for stage in STAGES:
        names = list(stage)
        tried = []
        for values in itertools.product(*stage.values()):
            params = dataclasses.replace(best, **dict(zip(names, values)))
            tried.append((values, params, score(split, frames, params)))
        print("\n" + "  ".join(f"{n:>18}" for n in names) + "      AP    AP50    AP75  count err %  cpu s/frame")
        for values, _, r in tried:
            print("  ".join(f"{v!s:>18}" for v in values) + f"  {r['AP']:.4f}  {r['AP50']:.4f}  {r['AP75']:.4f}"
                  f"  {r['count err %']:11.1f}  {r['cpu s/frame']:11.3f}")
        best = chosen(best, tried)
    print(f"\nbest on the sample's val split (paste into presets/inference.py):\nCELL_SPLITTING = {best}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
