"""The ``livecell-kit`` command: the notebooks' pipeline from a shell.

    livecell-kit sample   --out DIR [--seed N]                 # offline LIVECell-like data
    livecell-kit download --out DIR [--subset seed|course|full] [--base-url URL]  # the real LIVECell
    livecell-kit masks    --annotations JSON --out DIR [--kind semantic|instance|border|cells]
    livecell-kit train    --data DIR --preset quick|seed|kit|cells|kit-cells --out RUN_DIR [--epochs N] [--xla] [--restart]
    livecell-kit evaluate --model MODEL --data DIR --split test --out metrics.json
    livecell-kit predict  [--model MODEL] --out DIR IMAGE_OR_DIR... [--channels auto|grey|separate]
    livecell-kit measure  [--model MODEL] --out DIR IMAGE_OR_DIR... [--pattern REGEX] [--labels]  # growth curves
    livecell-kit export   --model MODEL --out DIR [--training-data livecell|sample]  # bioimage.io package
    livecell-kit student  --out DIR                            # notebooks without solutions

Only the ``train`` stage (TensorFlow, seconds to import) is imported by the
commands that run a model, so that ``sample``, ``download`` and ``masks`` start at once.

Errors: a few lines on stderr, no traceback (see :mod:`livecell_kit.cli.errors`); exit status
0 done, 1 a bug in the kit, 2 bad input or usage, 130 interrupted (Ctrl-C; rerun to resume).
``livecell-kit --debug COMMAND ...`` (or env ``LIVECELL_KIT_DEBUG=1``) shows the full traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from livecell_kit import course, data, download, evaluate, masks, predict, presets, sample
from livecell_kit.cli import errors as cli_errors
from livecell_kit.data.channels import CHANNEL_READINGS
from livecell_kit.export import provenance


def _cmd_sample(args) -> None:
    sizes = {"train": args.train_per_type, "val": args.val_per_type, "test": args.test_per_type}
    out = sample.make_sample(args.out, seed=args.seed, images_per_type=sizes)
    print(f"sample data set (seed {args.seed}) in {out}")


def _cmd_download(args) -> None:
    out = download.download_livecell(args.out, files=tuple(args.files), base_url=args.base_url,
                                 subset=args.subset)
    print(f"LIVECell files in {out} (subset {args.subset})")


def _cmd_masks(args) -> None:
    written = masks.write_masks(args.annotations, args.out, kind=args.kind)
    print(f"wrote {len(written)} {args.kind} masks to {args.out}")


def _cmd_train(args) -> None:
    from livecell_kit import train

    overrides = {}
    if args.precision:
        overrides["precision"] = args.precision
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    if args.xla:
        overrides["jit_compile"] = True
    result = train.train(args.data, preset=args.preset, out_dir=args.out, epochs=args.epochs,
                         restart=args.restart, **overrides)
    print(f"model: {Path(result.out_dir) / 'model.keras'}")


def _run_subset_rule(model_path: Path) -> str:
    """The subset rule of the run that trained ``model_path`` (its config.json), else "stratified"."""
    run_dir = model_path if model_path.is_dir() else model_path.parent
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8-sig"))
        return config["preset"]["data"]["subset"]
    except (OSError, ValueError, KeyError, TypeError):
        return "stratified"


def _check_threshold_data(args) -> None:
    """Before the model loads: --threshold and --threshold-data exclude each other, and the
    threshold's data root has a val split when the threshold is to be chosen."""
    if args.threshold is not None and args.threshold_data is not None:
        raise ValueError(f"--threshold-data {args.threshold_data} chooses the threshold on its val split, but "
                         f"--threshold {args.threshold:g} fixes it: drop one of the two flags")
    if args.threshold is not None or (args.threshold_data is None and args.split == "val"):
        return  # a fixed threshold, or val evaluated itself (0.5 is used, see evaluate_model)
    root = args.threshold_data if args.threshold_data is not None else args.data
    flag = "--threshold-data" if args.threshold_data is not None else "--data"
    path = data.annotation_path(root, "val")
    if not path.is_file():
        raise FileNotFoundError(
            f"{flag} {root} has no val split to choose the threshold on ({path} does not exist); pass "
            f"--threshold-data DIR, a data root with a val split (e.g. the one the model was trained on), "
            f"or a fixed --threshold (e.g. 0.5)")


def _cmd_evaluate(args) -> None:
    from livecell_kit import train

    _check_threshold_data(args)
    model = train.load_model(args.model)
    train.check_segmentation_model(model, args.model)
    rule = args.subset or _run_subset_rule(args.model)
    results = evaluate.evaluate_model(model, args.data, split=args.split, threshold=args.threshold,
                                      instance=not args.no_instance, max_images=args.images,
                                      subset_rule=rule, threshold_data=args.threshold_data)
    evaluate.write_metrics_json(results, args.out)
    summary = {k: results[k] for k in ("pixel_accuracy", "bce", "iou", "dice", "threshold",
                                       "threshold_source")}
    print(json.dumps(summary, indent=2))
    print(evaluate.seed_comparison(results))
    if "cells" in results:
        cells, ap = results["cells"], results["instance"]
        print(f"cells ({results['instance_source']}): AP {ap['AP']:.3f}, AP50 {ap['AP50']:.3f}; count "
              f"median abs. error {cells['count_median_abs_error_pct']:.1f} %; confluence error "
              f"mean {cells['confluence_mae_pp']:.1f}, worst {cells['confluence_max_pp']:.1f} points")
    print(f"metrics written to {args.out}")


def _model_or_pretrained(args):
    """The model of ``--model``, or the shipped pretrained one (said in one line) without it."""
    from livecell_kit import pretrained, train

    if args.model is None:
        print(f"no --model: using the {pretrained.describe()} (--model RUN for your own)")
        return pretrained.load_pretrained()
    model = train.load_model(args.model)
    train.check_segmentation_model(model, args.model)
    return model


def _cmd_predict(args) -> None:
    model = _model_or_pretrained(args)
    try:
        written = predict.predict_paths(model, args.images, args.out, threshold=args.threshold,
                                        channels=args.channels)
    except predict.PredictionError as err:  # some inputs failed: say what was written, then exit non-zero
        print(f"wrote predictions for {len(err.written)} images to {args.out}")
        raise
    print(f"wrote predictions for {len(written)} images to {args.out}")


def _cmd_measure(args) -> None:
    from livecell_kit.measure import measure_frames, name_reader

    name_reader(args.pattern)  # a bad --pattern fails before the model loads
    model = _model_or_pretrained(args)
    measure_frames(model, args.images, args.out, pattern=args.pattern, threshold=args.threshold,
                   channels=args.channels, labels=args.labels)


def _cmd_export(args) -> None:
    from livecell_kit.export.package import export_model

    out = export_model(args.model, args.out, training_data=args.training_data, author=args.author)
    print(f"bioimage.io package in {out} (open {out / 'rdf.yaml'}; zipped: {out / (out.name + '.zip')})")


def _cmd_student(args) -> None:
    written = course.make_student_notebooks(args.source, args.out)
    for path in written:
        print(path)


def whole_number(minimum: int):
    """argparse ``type=``: an integer >= ``minimum``; argparse names the flag in its error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def probability(text: str) -> float:
    """argparse ``type=``: a number in [0, 1] (a cell-probability threshold); NaN is refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"must be between 0 and 1 (a cell probability; 0.5 is the usual choice), got {text!r}")
    return value


def _add_image_flags(p: argparse.ArgumentParser) -> None:
    """--threshold, the image arguments and --channels: what predict and measure share."""
    p.add_argument("--threshold", type=probability, default=None,
                   help="cell-probability cut-off in [0, 1] (default "
                        f"{presets.CELL_SPLITTING.foreground_threshold}: presets.CELL_SPLITTING)")
    p.add_argument("images", nargs="+", type=Path, help="TIFF/PNG files or folders")
    p.add_argument("--channels", choices=CHANNEL_READINGS, default="auto",
                   help="colour files whose channels differ (grey saved as RGB is always grey): grey = one "
                        "frame, blended by luma; separate = each channel its own frame (a stack saved as "
                        "RGB planes); auto (default) = separate for TIFFs with separate planes, else grey; "
                        "the reading used is printed")


_PRETRAINED_HELP = (f"model.keras or a run folder (default: the shipped {presets.PRETRAINED_MODEL!r} model, "
                    "trained on the synthetic sample only: see the README before trusting its counts)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livecell-kit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true",
                        help=f"show full tracebacks on errors (also env {cli_errors.DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="generate the offline LIVECell-like sample data set")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--seed", type=whole_number(0), default=0, help="same seed -> identical files (default 0)")
    p.add_argument("--train-per-type", type=whole_number(0), default=4, help="train images per cell type")
    p.add_argument("--val-per-type", type=whole_number(0), default=2, help="val images per cell type")
    p.add_argument("--test-per-type", type=whole_number(0), default=2, help="test images per cell type")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("download", help="download the real LIVECell data set (needs internet)")
    p.add_argument("--out", required=True, type=Path, help="folder to lay the data set out in")
    p.add_argument("--base-url", default=None,
                   help="mirror of LIVECell_dataset_2021/ (default: env LIVECELL_BASE_URL or the S3 bucket)")
    p.add_argument("--files", nargs="+", default=["images", "annotations"], choices=download.DOWNLOAD_PARTS,
                   help="what to fetch (default: images annotations)")
    p.add_argument("--subset", choices=download.DOWNLOAD_SUBSETS, default="full",
                   help="full: all of images.zip (1.24 GB) and the JSONs (0.9 GB); seed: the seed "
                        "project's 1,792 frames (about 0.4 GB, by HTTP range requests) and the JSONs; "
                        "course: 4/2/2 frames per cell type with JSONs cut to them (under 400 MB)")
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("masks", help="write one mask file per image from a COCO/LIVECell JSON")
    p.add_argument("--annotations", required=True, type=Path, help="livecell_coco_*.json")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--kind", choices=masks.KINDS, default="semantic")
    p.set_defaults(func=_cmd_masks)

    p = sub.add_parser("train", help="train a U-Net preset; rerun the same command to resume")
    p.add_argument("--data", required=True, type=Path, help="data set root (sample or LIVECell)")
    p.add_argument("--preset", default="quick", choices=list(presets.PRESETS),
                   help="quick (CPU minutes), borders (quick, border-weighted BCE), seed (the seed project) or kit (GPU)")
    p.add_argument("--out", required=True, type=Path, help="run folder (model.keras, history.json)")
    p.add_argument("--epochs", type=whole_number(1), default=None, help="override the preset's epochs")
    p.add_argument("--batch-size", type=whole_number(1), default=None, help="override the preset's batch size")
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16", "float16"], default=None,
                   help="compute precision (default auto: bfloat16 on CPUs with AMX/AVX512-BF16, "
                        "float16 on GPUs with tensor cores, else float32)")
    p.add_argument("--xla", action="store_true",
                   help="compile training steps with XLA (about 2x faster for the seed U-Net on a CPU)")
    p.add_argument("--restart", action="store_true",
                   help="start the --out folder afresh: delete the run there (model, history, checkpoints) "
                        "instead of resuming or reusing it; other files in it are kept")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="pixel, per-cell-type, baseline and instance metrics")
    p.add_argument("--model", required=True, type=Path, help="model.keras or a run folder")
    p.add_argument("--data", required=True, type=Path, help="data set root")
    p.add_argument("--split", default="test", choices=data.SPLITS)
    p.add_argument("--out", required=True, type=Path, help="metrics JSON to write")
    p.add_argument("--threshold", type=probability, default=None,
                   help="cell-probability cut-off in [0, 1] (default: the best on val)")
    p.add_argument("--no-instance", action="store_true", help="skip instance AP (COCOeval)")
    p.add_argument("--images", type=whole_number(1), default=None,
                   help="at most N images per split (the seed project: 512 test, 256 val)")
    p.add_argument("--subset", choices=data.SUBSET_RULES, default=None,
                   help="how --images picks them: 'first' N in file order (the seed's rule) or a "
                        "stratified draw (default: the rule of the run that trained the model)")
    p.add_argument("--threshold-data", type=Path, default=None,
                   help="data root whose val split picks the threshold (default: --data)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="masks, cell labels and overlays for images, and cells.csv")
    p.add_argument("--model", type=Path, help=_PRETRAINED_HELP)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    _add_image_flags(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("measure", help="cells and confluence per frame, per well and time point, "
                                       "and growth curves; rerun the same command to resume")
    p.add_argument("--model", type=Path, help=_PRETRAINED_HELP + "; a cells model counts cells")
    p.add_argument("--out", required=True, type=Path,
                   help="output folder: frames.csv, wells.csv, growth_*.png, measured.jsonl (the resume record)")
    p.add_argument("--pattern", default=None,
                   help="regular expression for your file names, searched in each name, with named groups "
                        "well and time (hours) and optionally cell_type, location, crop, ...: e.g. "
                        r"'(?P<well>[A-H]\d+)_t(?P<time>[\d.]+)h' (default: LIVECell names "
                        "<CellType>_Phase_<Well>_<Location>_<DDdHHhMMm>_<Crop>.tif)")
    p.add_argument("--labels", action="store_true", help="also write labels/<name>_labels.tif (16-bit cell labels)")
    _add_image_flags(p)
    p.set_defaults(func=_cmd_measure)

    p = sub.add_parser("export", help="a BioImage Model Zoo package (Fiji/deepImageJ, QuPath, napari)")
    p.add_argument("--model", required=True, type=Path, help="model.keras or a run folder")
    p.add_argument("--out", required=True, type=Path, help="package folder to write (rdf.yaml and its files)")
    p.add_argument("--training-data", choices=provenance.TRAINING_DATA, default=None,
                   help="what the model was trained on, which sets the licence (LIVECell: CC BY-NC 4.0; "
                        "the kit's sample: MIT); default: what the run folder's config.json records")
    p.add_argument("--author", default="livecell-kit user", help="the model's author named in rdf.yaml")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("student", help="student notebooks: solutions replaced by 'your turn'")
    p.add_argument("--source", type=Path, default=Path("notebooks"), help="solution notebooks")
    p.add_argument("--out", type=Path, default=Path("build/student"), help="output folder")
    p.set_defaults(func=_cmd_student)

    for command_parser in sub.choices.values():
        # --debug also after the command; SUPPRESS keeps "livecell-kit --debug train" set.
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                    help="show full tracebacks on errors")
    return parser


#: Commands that run a model: TensorFlow is imported up front, with its C++ start-up logs silenced.
_TENSORFLOW_COMMANDS = {"train", "evaluate", "predict", "measure", "export"}


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get(cli_errors.DEBUG_ENV, "") not in ("", "0")
    with cli_errors.noting_ctrl_c() as ctrl_c:
        try:
            if args.command in _TENSORFLOW_COMMANDS:
                course.import_tensorflow_quietly()
            return args.func(args) or 0
        except (Exception, KeyboardInterrupt) as err:  # a message, not a traceback, unless --debug
            if debug:
                raise
            if isinstance(err, KeyboardInterrupt) or ctrl_c:  # ctrl_c: a library turned it into another error
                print(f"\n{cli_errors.interrupted_message(args.command)}", file=sys.stderr)
                return cli_errors.EXIT_INTERRUPTED
            message, status = cli_errors.describe(err, args.command, out=getattr(args, "out", None))
            print(message, file=sys.stderr)
            return status

if __name__ == "__main__":
    sys.exit(main())
