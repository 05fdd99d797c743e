"""Make the model the package ships (``livecell_kit/pretrained/``), measure it, and print its figures.

    .venv/bin/python bench/make_pretrained.py [--run RUN] [--real DIR]

1. Trains ``--preset cells`` on the seed-0 sample (synthetic frames only, so the weights are free
   of LIVECell's CC BY-NC 4.0 licence) with ``livecell-kit train``, unless ``--run`` names a
   finished run of that preset.
2. Copies its weights into a float32, uncompiled model (training may have used bfloat16, which
   some CPUs emulate slowly) and writes ``<PRETRAINED_MODEL>.keras``: no optimizer state, ~1/4
   of a run's ``model.keras``.
3. Measures that file with ``bench/cells.py`` on the annotated real frames of ``--real`` (never
   tuned on) and on the sample's test split, and writes the card ``<PRETRAINED_MODEL>.json``
   (command, data, licence, SHA-256, figures) that :mod:`livecell_kit.pretrained` reads.
Not a test: run it when the model, the sample or the post-processing change, and commit both files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("LIVECELL_KIT_WORKDIR", str(ROOT / "build" / "work"))  # as make does

import cells as cells_bench  # noqa: E402  (bench/cells.py)

from livecell_kit import atomic, course, presets, pretrained  # noqa: E402

PRESET = "cells"
COMMAND = "livecell-kit sample --out SAMPLE && livecell-kit train --data SAMPLE --preset cells --out RUN"


def train_run(run: Path) -> None:
    sample = course.sample_root()
    subprocess.run([sys.executable, "-m", "livecell_kit.cli", "train", "--data", str(sample), "--preset", PRESET,
                    "--out", str(run)], check=True)


def float32_copy(run: Path, target: Path) -> None:
    """The run's weights in a float32 U-Net of the same config, saved uncompiled to ``target``."""
    import keras

    from livecell_kit import train
    from livecell_kit.model import build_unet

    trained = train.load_model(run, compile=False)
    keras.mixed_precision.set_global_policy("float32")
    model = build_unet(presets.get_preset(PRESET).model)
    model.set_weights(trained.get_weights())
    with atomic.atomic_path(target, suffix=".keras") as tmp:
        model.save(tmp)


def figures(res: dict) -> dict:
    """The card's summary of one ``evaluate_model`` result."""
    ap, found = res["instance"], res["cells"]
    return {"frames": res["n_images"], "dice": round(res["dice"], 3), "AP": round(ap["AP"], 3),
            "AP50": round(ap["AP50"], 3), "AP75": round(ap["AP75"], 3),
            "count_median_abs_error_pct": round(found["count_median_abs_error_pct"], 1),
            "confluence_mae_pp": round(found["confluence_mae_pp"], 1),
            "confluence_max_pp": round(found["confluence_max_pp"], 1),
            "threshold": round(res["threshold"], 3)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, help="a finished `train --preset cells` run on the sample (default: train one)")
    p.add_argument("--real", type=Path, default=cells_bench.DEFAULT_REAL)
    args = p.parse_args(argv)
    run = args.run or ROOT / "build" / "runs" / "pretrained-cells"
    if args.run is None:
        train_run(run)
    config = json.loads((run / "config.json").read_text())
    if config["preset"]["name"] != PRESET or not config.get("finished"):
        sys.exit(f"{run}: not a finished `--preset {PRESET}` run")
    name = presets.PRETRAINED_MODEL
    target = pretrained.FOLDER / f"{name}.keras"
    float32_copy(run, target)
    report_path = Path(tempfile.mkdtemp()) / "cells.json"
    cells_bench.main(["--model", str(target), "--real", str(args.real), "--json", str(report_path)])
    report = json.loads(report_path.read_text())
    measured = {title: figures(entries[str(target)]) for title, entries in report.items()}
    real = next((v for k, v in measured.items() if k.startswith("real frames")), None)
    sample_test = next(v for k, v in measured.items() if k.startswith("sample test"))
    card = {
        "name": name, "file": target.name, "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "preset": PRESET, "made_by": COMMAND + f"; then bench/make_pretrained.py --run RUN",
        "trained_on": f"the kit's synthetic sample only (seed 0, {config['data']['train']['images']['count']} "
                      f"train frames; never a LIVECell pixel)",
        "licence": "the kit's own: trained on synthetic frames, so LIVECell's CC BY-NC 4.0 does not apply",
        "epochs": config["epochs_trained"], "training_precision": config["precision"],
        "kit_version": config["kit_version"], "keras": config["keras"], "tensorflow": config["tensorflow"],
        "real_dev": real, "real_dev_source": "5 annotated real LIVECell frames (shared/livecell-real-dev, val); "
                                             "threshold chosen on the sample's val split, nothing tuned on them",
        "sample_test": sample_test,
    }
    atomic.write_json(pretrained.FOLDER / f"{name}.json", card)
    print(f"\n{target} ({target.stat().st_size / 1e6:.1f} MB) and its card {name}.json written")
    print(pretrained.describe(name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
