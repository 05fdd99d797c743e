"""A BioImage Model Zoo package (bioimage.io, spec 0.5) of a trained model: :func:`export_model`.

    livecell-kit export --model RUN/model.keras --out DIR [--training-data livecell|sample]

writes ``DIR/`` (rdf.yaml and the files it names; napari, QuPath and bioimageio.core open
``DIR/rdf.yaml``) and ``DIR/<DIR name>.zip``, the same package zipped (deepImageJ installs it)::

    rdf.yaml            the description: axes, preprocessing, weights, licence, citations
    README.md           what the model expects and returns, its training data and licence
    model.keras         keras_v3 weights, the original (see livecell_kit.export.weights)
    tf_saved_model.zip  TensorFlow SavedModel, signatures returning {"prediction": ...}
    model.onnx          ONNX, opset presets.EXPORT.onnx_opset
    test_input.npy      (1, H, W, 1) float32: a synthetic frame the kit draws (no LIVECell pixels)
    test_output.npy     (1, H, W, C) float32: the original model's output for it
    cover.png           that frame beside the predicted cells (H × 2W)

The package is assembled in a hidden folder beside ``DIR`` and moved into place at the end,
so an interrupted export leaves no half package; a ``DIR`` that holds an earlier export is
replaced, any other non-empty ``DIR`` is refused. Needs the ``export`` extra
(``pip install 'livecell-kit[export]'``: bioimageio.core, tf2onnx, onnx, onnxruntime).
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from livecell_kit import __version__, atomic, predict
from livecell_kit.data import CELL_TYPES
from livecell_kit.export import provenance, weights
from livecell_kit.masks.overlay import overlay_image
from livecell_kit.presets import EXPORT
from livecell_kit.sample.cells import MORPHOLOGIES, place_cells
from livecell_kit.sample.optics import render_frame
from livecell_kit.train import load_model

try:  # the `export` extra
    from bioimageio.spec import save_bioimageio_package, save_bioimageio_package_as_folder
    from bioimageio.spec.model import v0_5 as bio
except ImportError:
    bio = None

RDF_NAME = "rdf.yaml"
INSTALL_HINT = "pip install 'livecell-kit[export]'"


def kit_repository() -> str:
    """The kit's repository URL, from its installed metadata (pyproject.toml's [project.urls] Repository)."""
    try:
        urls = importlib.metadata.metadata("livecell-kit").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return url.strip()
    raise ValueError("livecell-kit's installed metadata names no repository (pyproject.toml [project.urls]); "
                     "install the kit with pip (pip install -e .) before exporting")


def test_frame(multiple: int) -> np.ndarray:
    """(1, S, S, 1) float32 grey 0..255: a synthetic LIVECell-like frame, S = test_side rounded down to ``multiple``."""
    rng = np.random.default_rng(EXPORT.test_seed)
    morph = MORPHOLOGIES[CELL_TYPES[0]]
    labels, _, rounded = place_cells(rng, morph, float(np.mean(morph.coverage)), rounded_share=0.2)
    frame = render_frame(rng, morph, labels, rounded, crowding=0.5)
    side = min(EXPORT.test_side, *frame.shape) // multiple * multiple
    if side == 0:
        raise ValueError(f"the model needs sizes in multiples of {multiple} pixels, more than a "
                         f"{frame.shape[0]}x{frame.shape[1]} test frame offers")
    return frame[None, :side, :side, None].astype(np.float32)


def _cover(frame: np.ndarray, output: np.ndarray, path: Path) -> None:
    """The test frame beside it with its first output channel > 0.5 tinted, as a PNG at ``path``."""
    grey = np.clip(frame[0, ..., 0], 0, 255).astype(np.uint8)
    tinted = overlay_image(grey, output[0, ..., 0] > 0.5)
    Image.fromarray(np.concatenate([np.repeat(grey[..., None], 3, axis=2), tinted], axis=1)).save(path)


def _axes_in(multiple: int):
    size = bio.ParameterizedSize(min=multiple, step=multiple)
    return [bio.BatchAxis(), bio.SpaceInputAxis(id=bio.AxisId("y"), size=size),
            bio.SpaceInputAxis(id=bio.AxisId("x"), size=size),
            bio.ChannelAxis(channel_names=[bio.Identifier("grey")])]


def _axes_out(channels: int):
    def same_as_input(axis: str):
        return bio.SizeReference(tensor_id=bio.TensorId(weights.INPUT_ID), axis_id=bio.AxisId(axis))

    return [bio.BatchAxis(), bio.SpaceOutputAxis(id=bio.AxisId("y"), size=same_as_input("y")),
            bio.SpaceOutputAxis(id=bio.AxisId("x"), size=same_as_input("x")),
            bio.ChannelAxis(channel_names=[bio.Identifier(n) for n in provenance.channel_names(channels)])]


def _description(folder: Path, name: str, data: provenance.TrainingData, multiple: int, channels: int,
                 author: str, repository: str):
    """The bioimageio ModelDescr of the files in ``folder``."""
    tf_version = bio.Version(tf.__version__)
    original = "keras_v3"  # the parent of the converted weights
    converted = f"converted from keras_v3 by livecell-kit {__version__}"
    return bio.ModelDescr(
        name=name,
        description=(f"U-Net segmenting cells in phase-contrast microscopy; input raw grey 0..255, output "
                     f"{channels} channel(s) ({', '.join(provenance.channel_names(channels))}). "
                     f"Trained on {data.description}."),
        authors=[bio.Author(name=author)],
        cite=[bio.CiteEntry(text=provenance.LIVECELL_CITATION, doi=bio.Doi(provenance.LIVECELL_DOI)),
              bio.CiteEntry(text="livecell-kit: a course kit for U-Net segmentation of LIVECell", url=repository)],
        license=bio.LicenseId(data.licence),
        documentation=bio.FileDescr(source=folder / "README.md"),
        covers=[bio.FileDescr(source=folder / "cover.png")],
        tags=["unet", "segmentation", "phase-contrast", "label-free", "2d", "cells", "livecell", "tensorflow"],
        git_repo=repository,
        inputs=[bio.InputTensorDescr(
            id=bio.TensorId(weights.INPUT_ID), axes=_axes_in(multiple),
            description="raw grey values 0..255 (8-bit phase contrast); the model rescales by 1/255 itself",
            test_tensor=bio.FileDescr(source=folder / "test_input.npy"),
            data=bio.IntervalOrRatioDataDescr(type="float32", range=(0.0, 255.0)),
            preprocessing=[bio.EnsureDtypeDescr(kwargs=bio.EnsureDtypeKwargs(dtype="float32"))])],
        outputs=[bio.OutputTensorDescr(
            id=bio.TensorId(weights.OUTPUT_ID), axes=_axes_out(channels),
            description=f"{channels} float32 channel(s): {', '.join(provenance.channel_names(channels))}",
            test_tensor=bio.FileDescr(source=folder / "test_output.npy"),
            data=bio.IntervalOrRatioDataDescr(type="float32"))],
        weights=bio.WeightsDescr(
            keras_v3=bio.KerasV3WeightsDescr(
                source=folder / "model.keras", keras_version=bio.Version(keras.__version__),
                backend=("tensorflow", tf_version), comment="the trained model, uncompiled, float32"),
            tensorflow_saved_model_bundle=bio.TensorflowSavedModelBundleWeightsDescr(
                source=folder / "tf_saved_model.zip", tensorflow_version=tf_version, parent=original,
                comment=converted + "; signatures serve/serving_default return a dict"),
            onnx=bio.OnnxWeightsDescr(source=folder / "model.onnx", opset_version=EXPORT.onnx_opset,
                                      parent=original, comment=converted + " (Keras' ONNX export, tf2onnx)")),
        config={"livecell_kit": {"version": __version__, "training_data": data.kind, "preset": data.preset,
                                 "size_multiple": multiple}},
    )


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder for the package")
    if out.is_dir() and any(out.iterdir()) and not (out / RDF_NAME).is_file():
        raise ValueError(f"--out {out} is not empty and holds no earlier export ({RDF_NAME}); "
                         "pass a new or empty folder")


def _replace_folder(new: Path, out: Path) -> None:
    """Move ``new`` to ``out``; an earlier export at ``out`` is moved aside first and then removed."""
    old = None
    if out.exists():
        old = atomic.make_temp_dir(out.parent, f".{out.name}.old-")
        out.rename(old / out.name)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old)


def export_model(model_path, out, training_data: str | None = None, author: str = "livecell-kit user",
                 name: str | None = None) -> Path:
    """Write the bioimage.io package of the model at ``model_path`` (model.keras or its run folder) to ``out``.

    training_data: "livecell" or "sample" when the run folder does not record it (see
        :func:`livecell_kit.export.provenance.training_data`). author: the model's author in
        rdf.yaml. name: the model's name (default from the preset and outputs).
    Returns ``Path(out)``; the zipped package is ``out / (out.name + ".zip")``.
    """
    out = Path(out).expanduser()
    _check_out(out)
    data = provenance.training_data(model_path, training_data)
    if bio is None:
        raise ValueError(f"export needs the packages of the kit's `export` extra; install them with {INSTALL_HINT}")
    model = weights.standalone_copy(load_model(model_path, compile=False))
    multiple = predict.size_multiple(model)
    frame = test_frame(multiple)
    output = np.asarray(model.predict(frame, verbose=0), np.float32)
    channels = int(output.shape[-1])
    name = name or f"livecell-kit U-Net {data.preset or 'model'} {'+'.join(provenance.channel_names(channels))}"

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = atomic.make_temp_dir(out.parent, f".{out.name}.files-")
    package = atomic.make_temp_dir(out.parent, f".{out.name}.part-")
    try:
        np.save(staging / "test_input.npy", frame)
        np.save(staging / "test_output.npy", output)
        _cover(frame, output, staging / "cover.png")
        weights.write_keras(model, staging / "model.keras")
        weights.write_saved_model_zip(model, staging / "tf_saved_model.zip", staging)
        weights.write_onnx(model, staging / "model.onnx", EXPORT.onnx_opset)
        formats = ["keras_v3", "tensorflow_saved_model_bundle", "onnx"]
        repository = kit_repository()
        (staging / "README.md").write_text(provenance.readme_text(name, data, channels, multiple, formats,
                                                                  repository))
        descr = _description(staging, name, data, multiple, channels, author, repository)
        save_bioimageio_package_as_folder(descr, output_path=package)
        save_bioimageio_package(descr, output_path=package / f"{out.name}.zip")
        _replace_folder(package, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(package)
    return out
