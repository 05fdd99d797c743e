"""Numerics of mixed precision: the quick preset trained in float32 and in the automatic precision.

    python bench/precision.py [--work DIR] [--force bfloat16|float16]

Trains the ``quick`` preset twice on the same sample with the same seed — once in
float32, once in the precision ``train.choose_precision("auto")`` picks on this machine
(or ``--force``: on a CPU without bf16 support "auto" is float32, so force bfloat16 to
check its numerics anyway, emulated and slow) — then evaluates both on the test split
at threshold 0.5 and prints IoU, Dice, wall time and the IoU difference (target: ≤ 0.01).
Not a test: it trains two models (minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="folder for the sample and the two runs")
    parser.add_argument("--force", choices=["bfloat16", "float16"], default=None,
                        help="compare float32 with this precision instead of the automatic choice")
    args = parser.parse_args()

    from livecell_kit import evaluate, sample, train

    work = args.work or Path(tempfile.mkdtemp(prefix="livecell-precision-"))
    root = sample.make_sample(work / "sample-seed0")
    auto = train.choose_precision("auto")
    other = args.force or auto
    print(f"automatic precision on this machine: {auto}; comparing float32 with {other}")
    rows = {}
    for precision in ("float32", other):
        start = time.perf_counter()
        run = train.train(root, "quick", out_dir=work / f"run-{precision}", verbose=0, precision=precision)
        seconds = time.perf_counter() - start
        res = evaluate.evaluate_model(run.model, root, split="test", threshold=0.5, instance=False, progress=False)
        rows[precision] = res
        print(f"{run.precision:15s} train {seconds:6.1f} s   test IoU {res['iou']:.4f}   Dice {res['dice']:.4f}")
    if other != "float32":
        diff = abs(rows["float32"]["iou"] - rows[other]["iou"])
        print(f"|IoU difference| = {diff:.4f}  (target <= 0.01: {'ok' if diff <= 0.01 else 'MISSED'})")
    else:
        print("automatic precision is float32 here: nothing to compare (use --force bfloat16)")


if __name__ == "__main__":
    main()
