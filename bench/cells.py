"""Cells, not pixels: instance AP, cell counts and confluence of models, on real frames and on the sample.

    .venv/bin/python bench/cells.py --model RUN [--model RUN ...] [--real DIR] [--sample DIR] [--json FILE]

Each ``--model`` (model.keras or a run folder; a semantic-only model works too, so before
and after print side by side) is evaluated by ``evaluate.evaluate_model`` on

1. the annotated real frames of ``--real`` (default ``../shared/livecell-real-dev``: 5 frames,
   its ``livecell_coco_val.json``) — the threshold is chosen on the *sample's* val split and
   nothing is tuned on the real frames;
2. the sample's test split (``--sample``, default the kit's seed-0 sample).

Printed per cell type and overall: AP, AP50, AP75 (LIVECell's COCO protocol), median absolute
cell-count error (%), confluence mean / worst absolute error (percentage points), pixel Dice,
and the CPU seconds ``instances.split_cells`` takes per frame (post-processing only; CPU time,
as wall time swings with other jobs on a shared machine).  Two ceilings
on the same frames, from the truth instead of a model: "perfect semantic mask + today's
watershed" (what a semantic-only model could reach at best) and "perfect distance maps + new
watershed" (``masks.cell_labels`` → ``masks.distance_targets`` → ``split_cells``).
Not a test: the numbers describe models and data.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# ../shared next to the repository (or next to the folder of git worktrees)
DEFAULT_REAL = next((p / "shared" / "livecell-real-dev" for p in (ROOT.parent, ROOT.parent.parent)
                     if (p / "shared" / "livecell-real-dev").is_dir()), ROOT.parent / "shared" / "livecell-real-dev")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LIVECELL_KIT_WORKDIR", str(ROOT / "build" / "work"))  # as make does

import numpy as np  # noqa: E402

from livecell_kit import atomic, course, data, evaluate, instances, masks  # noqa: E402

course.import_tensorflow_quietly()
from livecell_kit import train  # noqa: E402

SHORT_SOURCE = {"distance maps": "distances", "border channel": "border",
                "watershed on the semantic mask (no instance head)": "semantic only"}
COLUMNS = ("AP", "AP50", "AP75", "count err %", "confl. MAE pp", "confl. max pp", "Dice", "split cpu s/frame")


def truth_output(kind: str, anns, height: int, width: int, source) -> np.ndarray:
    """What a perfect model would output: the semantic mask (H, W), or the distance maps (H, W, 3)."""
    if kind == "semantic":
        return masks.semantic_mask(anns, height, width, source=source).astype(np.float32)
    return masks.distance_targets(masks.cell_labels(anns, height, width, source=source))


def ceiling(root: Path, split_name: str, kind: str) -> dict:
    """evaluate_model's instance, cells and Dice figures for a perfect output of ``kind``."""
    split = data.load_split(root, split_name)
    coco, frames, type_of, seconds = [], [], {}, 0.0
    dice = evaluate.MetricAccumulator(0.5)
    per_type: dict[str, evaluate.MetricAccumulator] = {}
    for rec in split.images:
        anns = split.annotations_for(rec["id"])
        h, w = int(rec["height"]), int(rec["width"])
        out = truth_output(kind, anns, h, w, split.annotation_file)
        truth = masks.semantic_mask(anns, h, w, source=split.annotation_file)
        t = time.process_time()
        labels, scores = instances.split_cells(out)
        seconds += time.process_time() - t
        fg = (out if out.ndim == 2 else out[..., 0]) >= 0.5
        ctype = type_of[int(rec["id"])] = split.cell_type(rec)
        coco += instances.instances_to_coco_results(labels, rec["id"], scores)
        frames.append(evaluate.frame_cells(rec["file_name"], ctype, len(anns), labels, fg, truth))
        one = evaluate.MetricAccumulator(0.5).add(fg.astype(np.float32), truth)
        dice.merge(one)
        per_type.setdefault(ctype, evaluate.MetricAccumulator(0.5)).merge(one)
    return {"instance": evaluate.coco_instance_ap(split, coco, per_cell_type=type_of, img_ids=sorted(type_of)),
            "cells": {**evaluate.summarise_cells(frames), "split_cpu_seconds_per_frame": seconds / len(frames)},
            "dice": dice.result()["dice"], "per_cell_type": {t: a.result() for t, a in per_type.items()},
            "instance_source": kind}


def rows(name: str, res: dict) -> list[tuple]:
    """Table rows (entry, cell type, n frames, figures...) of one evaluation: all, then per type."""
    ap, cells = res["instance"], res["cells"]
    seconds = cells["split_cpu_seconds_per_frame"]

    def figures(a, c, d):
        return (a["AP"], a["AP50"], a["AP75"], c["count_median_abs_error_pct"], c["confluence_mae_pp"],
                c["confluence_max_pp"], d)

    out = [(name, "all", cells["n_frames"], *figures(ap, cells, res["dice"]), seconds)]
    for t in sorted(cells["per_cell_type"]):
        out.append(("", t, cells["per_cell_type"][t]["n_frames"],
                    *figures(ap["per_cell_type"][t], cells["per_cell_type"][t], res["per_cell_type"][t]["dice"]),
                    None))
    return out


def print_table(title: str, table: list[tuple]) -> None:
    def cell(v, digits):
        return "" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

    digits = (3, 3, 3, 1, 1, 1, 3, 3)
    text = [("entry", "type", "n", *COLUMNS)] + [
        (r[0], r[1], str(r[2]), *(cell(v, d) for v, d in zip(r[3:], digits))) for r in table]
    widths = [max(len(r[i]) for r in text) for i in range(len(text[0]))]
    print(f"\n== {title} ==")
    for r in text:
        print("  ".join(c.ljust(wd) if i < 2 else c.rjust(wd) for i, (c, wd) in enumerate(zip(r, widths))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", action="append", type=Path, required=True,
                   help="model.keras or run folder; repeat to compare models side by side")
    p.add_argument("--real", type=Path, default=DEFAULT_REAL, help="data root of annotated real frames")
    p.add_argument("--real-split", default="val", help="split of --real holding the annotations (default val)")
    p.add_argument("--sample", type=Path, default=None, help="the sample data root (default: the kit's seed-0 sample)")
    p.add_argument("--json", type=Path, default=ROOT / "build" / "bench" / "cells.json")
    args = p.parse_args(argv)
    sample_root = args.sample or course.sample_root()
    datasets = {}
    if (args.real / "annotations").is_dir():
        datasets[f"real frames ({args.real}, {args.real_split})"] = (args.real, args.real_split)
    else:
        print(f"no annotated real frames under {args.real}: real-frame figures skipped")
    datasets[f"sample test split ({sample_root})"] = (sample_root, "test")
    report: dict = {}
    for title, (root, split) in datasets.items():
        table, report[title] = [], {}
        for path in args.model:
            model = train.load_model(path, compile=False)
            t = time.perf_counter()
            res = evaluate.evaluate_model(model, root, split=split, threshold_data=sample_root, progress=False)
            name = f"{path.name} ({SHORT_SOURCE[res['instance_source']]}, t {res['threshold']:.2f})"
            print(f"{path}: {res['instance_source']}, threshold {res['threshold']:.2f} ({res['threshold_source']}); "
                  f"{res['n_images']} frames of {root} in {time.perf_counter() - t:.0f} s")
            report[title][str(path)] = res
            table += rows(name, res)
        for kind, name in (("semantic", "perfect semantic mask + today's watershed"),
                           ("distances", "perfect distance maps + new watershed")):
            res = report[title][name] = ceiling(root, split, kind)
            table += rows(name, res)
        print_table(title, table)
    atomic.write_json(args.json, report)
    print(f"\nall figures: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
