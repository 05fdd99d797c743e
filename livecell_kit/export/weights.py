"""The exported model's three weight files (written into the package's staging folder): Keras v3, TensorFlow SavedModel and ONNX.

All three compute the same function, (B, H, W, 1) float32 grey values 0..255 →
(B, H, W, C) float32, with the model's own ``Rescaling`` inside, and none needs the kit:

* ``model.keras``: an uncompiled float32 copy of the trained model. The kit's training file
  also stores its loss and metrics, registered under ``livecell_kit>...``, which Keras can
  only load with the kit installed; the copy has no compile settings, so plain
  ``keras.models.load_model`` reads it. Layers of a mixed-precision run become float32
  (ONNX, deepImageJ and QuPath run float32 graphs).
* ``tf_saved_model.zip``: a SavedModel (zipped, as the BioImage Model Zoo stores it) whose
  ``serve`` and ``serving_default`` signatures return a dict ``{output_id: tensor}``:
  bioimageio.core's TensorFlow backend and TF Java (deepImageJ, QuPath) read outputs by name.
* ``model.onnx``: the same graph through Keras' ONNX export (tf2onnx), opset
  :attr:`~livecell_kit.presets.ExportConfig.onnx_opset`, with dynamic batch, height and width.
"""
from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path

import keras
import tensorflow as tf

try:  # the `export` extra: tf2onnx (which Keras' ONNX export calls) and onnx
    import onnx
except ImportError:
    onnx = None

#: Written into every weight file's input and output names (bioimageio tensor ids).
INPUT_ID = "image"
OUTPUT_ID = "prediction"
KIT_OBJECT_PREFIX = "livecell_kit>"


def _float32_policies(config):
    """``config`` (a model's JSON config) with every mixed-precision dtype policy made float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and str(config.get("config", {}).get("name", "")).startswith("mixed_"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(value) for value in config]
    return config


def standalone_copy(model: keras.Model) -> keras.Model:
    """An uncompiled float32 copy of ``model`` with the same weights, loadable without the kit.

    Raises ValueError when the architecture itself uses objects registered by the kit
    (a ``livecell_kit>`` layer): Keras could not load such a file anywhere else.
    """
    config = _float32_policies(model.get_config())
    if KIT_OBJECT_PREFIX in json.dumps(config):
        raise ValueError(f"the model's layers include objects of the kit ({KIT_OBJECT_PREFIX}...), so its "
                         "exported file would need the kit to load; export supports plain Keras layers only")
    copy = type(model).from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def write_keras(model: keras.Model, path: Path) -> Path:
    """Save ``model`` (a :func:`standalone_copy`) as a .keras file at ``path``."""
    model.save(path)
    return path


def _serving_fn(model: keras.Model):
    def serve(image):
        return {OUTPUT_ID: model(image, training=False)}

    return serve


def _input_spec() -> tf.TensorSpec:
    return tf.TensorSpec((None, None, None, 1), tf.float32, name=INPUT_ID)


def write_saved_model_zip(model: keras.Model, path: Path, scratch: Path) -> Path:
    """A SavedModel of ``model`` whose signatures return ``{OUTPUT_ID: (B, H, W, C)}``, zipped to ``path``.

    scratch: an empty folder for the unzipped SavedModel (removed afterwards).
    """
    folder = scratch / "saved_model"
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", _serving_fn(model), input_signature=[_input_spec()])
    archive.write_out(str(folder), verbose=False)  # also writes "serving_default" = "serve"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(folder).as_posix())
    shutil.rmtree(folder)
    return path


def write_onnx(model: keras.Model, path: Path, opset: int) -> Path:
    """``model`` as ONNX (input ``image``, dynamic batch/height/width) at ``path``."""
    spec = keras.InputSpec(shape=(None, None, None, 1), dtype="float32", name=INPUT_ID)
    with warnings.catch_warnings():  # Keras' numpy-2 patch of tf2onnx probes np.object: a FutureWarning
        warnings.simplefilter("ignore", FutureWarning)
        model.export(str(path), format="onnx", input_signature=[spec], opset_version=opset, verbose=False)
    _rename_output(path, OUTPUT_ID)
    return path


def _rename_output(path: Path, name: str) -> None:
    """Name the ONNX graph's one output ``name`` (tf2onnx calls it after a TF node, "Identity:0")."""
    graph_model = onnx.load(str(path))
    old = graph_model.graph.output[0].name
    for node in graph_model.graph.node:
        node.output[:] = [name if out == old else out for out in node.output]
        node.input[:] = [name if inp == old else inp for inp in node.input]
    graph_model.graph.output[0].name = name
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))
