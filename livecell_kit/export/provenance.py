"""What an exported model was trained on, and what follows: licence, citations, README text.

The licence of a trained model follows its **training data**: LIVECell (Edlund et al. 2021)
is CC BY-NC 4.0, so a model trained on it may be shared for non-commercial use only, with
attribution; the kit's synthetic sample is drawn from random numbers and is MIT, as the kit.

The run folder that :func:`livecell_kit.train.train` writes tells which it was: its
``config.json`` records the data root, and the sample's data root holds the sample's stamp
(:data:`livecell_kit.sample.STAMP_NAME`). When that cannot be read (a model file copied
alone, or the data moved away), export refuses rather than guess; ``--training-data``
then says it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from livecell_kit import sample
from livecell_kit.data import annotation_path

#: The values of ``--training-data``.
TRAINING_DATA = ("livecell", "sample")

LIVECELL_DOI = "10.1038/s41592-021-01249-6"
LIVECELL_CITATION = ("Edlund C, Jackson TR, Khalid N, et al. LIVECell—A large-scale dataset for label-free "
                     "live cell segmentation. Nature Methods 18, 1038–1045 (2021).")


@dataclass(frozen=True)
class TrainingData:
    """Where the model's training images came from.

    kind: "livecell" or "sample". licence: SPDX id of the package. how_known: one line for
    the README ("recorded in RUN/config.json" or "declared with --training-data").
    preset: the kit's preset name when the run folder records it, else None.
    """

    kind: str
    licence: str
    how_known: str
    preset: str | None = None

    @property
    def description(self) -> str:
        if self.kind == "livecell":
            return "LIVECell (Edlund et al. 2021), real phase-contrast microscopy of 8 cell lines"
        return "the synthetic LIVECell-like sample livecell-kit draws (no real microscopy)"

    @property
    def licence_note(self) -> str:
        if self.kind == "livecell":
            return ("CC-BY-NC-4.0: trained on LIVECell, which is licensed CC BY-NC 4.0, so these weights are "
                    "for non-commercial use only, with attribution to LIVECell (Edlund et al. 2021).")
        return ("MIT, as livecell-kit: trained only on the kit's synthetic sample, which contains no "
                "LIVECell pixels or annotations, so LIVECell's licence does not apply.")


def _licence(kind: str) -> str:
    return "CC-BY-NC-4.0" if kind == "livecell" else "MIT"


def _run_config(model_path: Path) -> tuple[Path, dict | None]:
    """(path of config.json beside the model, its content or None when missing or unreadable)."""
    run_dir = model_path if model_path.is_dir() else model_path.parent
    path = run_dir / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return path, None
    return path, config if isinstance(config, dict) else None


def _recorded_kind(config: dict | None) -> str | None:
    """"sample" or "livecell" from a run's config.json, None when its data root is gone or unknown."""
    root = Path(str((config or {}).get("data_root", "")))
    if not str(root) or str(root) == "." or not root.is_dir():
        return None
    if (root / sample.STAMP_NAME).is_file():
        return "sample"
    if any(annotation_path(root, split).is_file() for split in ("train", "val", "test")):
        return "livecell"
    return None


def training_data(model_path, declared: str | None = None) -> TrainingData:
    """What ``model_path`` (a model.keras or its run folder) was trained on.

    declared: "livecell" or "sample" from ``--training-data``; it wins over the run folder's
        record (with a printed note when they disagree). Without it the record must say.
    Raises ValueError naming the run folder and the flag when neither tells.
    """
    model_path = Path(model_path)
    config_path, config = _run_config(model_path)
    preset = ((config or {}).get("preset") or {}).get("name") if config else None
    recorded = _recorded_kind(config)
    if declared is not None:
        if declared not in TRAINING_DATA:
            raise ValueError(f"--training-data must be one of {', '.join(TRAINING_DATA)}, got {declared!r}")
        if recorded is not None and recorded != declared:
            print(f"note: {config_path} records training on {recorded} data; exporting as "
                  f"--training-data {declared}, as asked")
        return TrainingData(declared, _licence(declared), "declared with --training-data", preset)
    if recorded is None:
        why = ("has no readable config.json beside it" if config is None
               else f"was trained on {config.get('data_root')!r}, which is gone or is neither the kit's sample "
                    "nor a LIVECell folder")
        raise ValueError(
            f"cannot tell what {model_path} was trained on: it {why}. The licence of the package depends on it "
            "(LIVECell: CC BY-NC 4.0; the kit's synthetic sample: MIT); rerun with "
            "--training-data livecell or --training-data sample")
    return TrainingData(recorded, _licence(recorded), f"recorded in {config_path}", preset)


def channel_names(count: int) -> list[str]:
    """Names of the model's output channels, by how many there are."""
    known = {1: ["cell"], 2: ["cell", "border"], 3: ["foreground", "centre_distance", "boundary_distance"]}
    return known.get(count, [f"channel{i}" for i in range(count)])


_CHANNEL_MEANING = {
    1: "channel 0 `cell`: probability that the pixel belongs to a cell (threshold 0.5 for a mask)",
    2: ("channel 0 `cell`: probability that the pixel belongs to a cell; channel 1 `border`: probability "
        "that it lies on the narrow border between two touching cells (subtract it to split them)"),
    3: ("channel 0 `foreground`: cell probability; channel 1 `centre_distance` and channel 2 "
        "`boundary_distance`: the kit's distance maps for splitting cells into instances"),
}


def readme_text(name: str, data: TrainingData, channels: int, multiple: int, weights: list[str],
                repository: str) -> str:
    """The package's README.md (Markdown)."""
    meaning = _CHANNEL_MEANING.get(channels, f"{channels} float32 channels")
    preset = f" (preset `{data.preset}`)" if data.preset else ""
    return f"""# {name}

A U-Net for label-free **phase-contrast** microscopy: it marks the cells in a grey image.
Trained with [livecell-kit]({repository}){preset} on {data.description}
({data.how_known}).

## Input
One grey image, axes (batch, y, x, channel=1), **raw grey values 0..255** as an 8-bit phase-contrast
camera gives them, as float32 (the package's preprocessing casts uint8 to float32). The model divides
by 255 itself (a Rescaling layer inside it): **do not normalise** or scale the image to 0..1 first,
or it looks black to the model. Height and width must be multiples of {multiple} (pad or crop);
any size that is works. Frames of about 0.5 µm per pixel (LIVECell's 10× objective) suit it best.

## Output
float32, axes (batch, y, x, channel) with the input's height and width, {channels} channel(s):
{meaning}.

## Weights
{", ".join(f"`{w}`" for w in weights)}: the same network in each format; `keras_v3` is the
original (an uncompiled copy of the trained model, loadable with plain Keras 3).
deepImageJ (Fiji) runs the TensorFlow SavedModel or ONNX weights, QuPath the SavedModel,
napari and Python (bioimageio.core) any of them.

## Licence
{data.licence_note}

## Citation
- {LIVECELL_CITATION} doi:{LIVECELL_DOI}
- livecell-kit, {repository}
"""
