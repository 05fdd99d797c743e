"""livecell-kit export: a bioimage.io package that bioimageio.core tests green for every weight format.

The package tests need the `export` extra (bioimageio.core, tf2onnx, onnx, onnxruntime) and skip
without it (`make export-test` installs it in .venv-export and fails if it is missing); the
training-data/licence rules need nothing beyond the kit.
"""
import importlib
import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import yaml

from livecell_kit import atomic, cli, sample
from livecell_kit.export import provenance
from livecell_kit.export.package import export_model
from livecell_kit.export.weights import standalone_copy
from livecell_kit.model import build_unet
from livecell_kit.presets import ModelConfig
from livecell_kit.train.losses import get_loss, make_metrics


def _run_folder(root, data_root, outputs="semantic+border"):
    """A tiny trained-looking run: model.keras compiled with the kit's loss/metrics, config.json."""
    run = root / "run"
    run.mkdir(parents=True)
    model = build_unet(ModelConfig(depth=2, base_filters=4, batch_norm=True, outputs=outputs))
    model.compile(optimizer="adam", loss=get_loss("bce_dice"), metrics=make_metrics())
    model.save(run / "model.keras")
    atomic.write_json(run / "config.json", {"preset": {"name": "quick"}, "data_root": str(data_root)})
    return run


def _sample_root(root):
    folder = root / "sample-data"
    folder.mkdir()
    atomic.write_stamp(folder / sample.STAMP_NAME, {"complete": True})
    return folder


def _livecell_root(root):
    folder = root / "livecell-data"
    (folder / "annotations").mkdir(parents=True)
    (folder / "annotations" / "livecell_coco_train.json").write_text("{}")
    return folder


# ------------------------------------------------------------------ training data and licence

def test_a_run_on_the_sample_is_mit_and_one_on_livecell_is_cc_by_nc(tmp_path):
    on_sample = provenance.training_data(_run_folder(tmp_path / "a", _sample_root(tmp_path)) / "model.keras")
    assert (on_sample.kind, on_sample.licence, on_sample.preset) == ("sample", "MIT", "quick")
    on_livecell = provenance.training_data(_run_folder(tmp_path / "b", _livecell_root(tmp_path)))
    assert (on_livecell.kind, on_livecell.licence) == ("livecell", "CC-BY-NC-4.0")
    assert "non-commercial" in on_livecell.licence_note


def test_unknown_training_data_is_refused_naming_the_flag_until_declared(tmp_path):
    run = _run_folder(tmp_path, tmp_path / "moved-away")
    with pytest.raises(ValueError, match="--training-data livecell or --training-data sample"):
        provenance.training_data(run / "model.keras")
    (run / "config.json").unlink()
    with pytest.raises(ValueError, match="no readable config.json"):
        provenance.training_data(run / "model.keras")
    declared = provenance.training_data(run / "model.keras", "livecell")
    assert (declared.licence, declared.how_known) == ("CC-BY-NC-4.0", "declared with --training-data")


def test_export_command_without_known_training_data_exits_2_naming_the_flag(tmp_path, capsys):
    run = _run_folder(tmp_path, tmp_path / "moved-away")
    assert cli.main(["export", "--model", str(run), "--out", str(tmp_path / "pkg")]) == 2
    assert "--training-data" in capsys.readouterr().err
    assert not (tmp_path / "pkg").exists()


def test_output_channels_are_named_by_their_count():
    assert provenance.channel_names(1) == ["cell"]
    assert provenance.channel_names(2) == ["cell", "border"]
    assert provenance.channel_names(3) == ["foreground", "centre_distance", "boundary_distance"]
    assert provenance.channel_names(4) == ["channel0", "channel1", "channel2", "channel3"]


def test_standalone_copy_of_a_mixed_precision_model_is_float32_with_the_same_weights():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = build_unet(ModelConfig(depth=1, base_filters=2))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    copy = standalone_copy(mixed)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    assert "mixed_bfloat16" in {layer.dtype_policy.name for layer in mixed.layers}
    for ours, theirs in zip(copy.get_weights(), mixed.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    x = np.random.default_rng(0).uniform(0, 255, (1, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(copy.predict(x, verbose=0), mixed.predict(x, verbose=0), atol=0.02)


# ------------------------------------------------------------------ the package (export extra)

@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    for module in ("bioimageio.core", "tf2onnx", "onnx", "onnxruntime"):
        if os.environ.get("LIVECELL_KIT_REQUIRE_EXPORT"):  # make export-test: a missing extra fails
            importlib.import_module(module)
        pytest.importorskip(module, reason="the `export` extra is not installed (pip install -e '.[export]')")
    root = tmp_path_factory.mktemp("export")
    run = _run_folder(root, _sample_root(root))
    return run, export_model(run / "model.keras", root / "pkg", author="Test Author")


def test_bioimageio_core_reproduces_the_test_output_with_every_weight_format(exported, tmp_path, monkeypatch):
    from bioimageio.core import test_model

    monkeypatch.chdir(tmp_path)  # its TensorFlow backend unzips the SavedModel into the working folder
    _, package = exported
    summary = test_model(package / "rdf.yaml")
    assert summary.status == "passed", summary.format()
    tested = " ".join(detail.name for detail in summary.details)
    for weight_format in ("keras_v3", "tensorflow_saved_model_bundle", "onnx"):
        assert weight_format in tested, f"{weight_format} was not run: {tested}"


def test_package_states_axes_preprocessing_licence_and_citations(exported):
    _, package = exported
    rdf = yaml.safe_load((package / "rdf.yaml").read_text())
    assert rdf["format_version"].startswith("0.5") and rdf["license"] == "MIT"
    (tensor_in,), (tensor_out,) = rdf["inputs"], rdf["outputs"]
    assert [axis["type"] for axis in tensor_in["axes"]] == ["batch", "space", "space", "channel"]
    assert tensor_in["axes"][1]["size"] == {"min": 4, "step": 4}  # 2**depth for depth 2
    assert tensor_in["preprocessing"] == [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}]
    assert tensor_out["axes"][3]["channel_names"] == ["cell", "border"]
    assert {"10.1038/s41592-021-01249-6"} <= {c.get("doi") for c in rdf["cite"]}
    assert rdf["weights"]["onnx"]["opset_version"] in (15, 16, 17)
    readme = (package / "README.md").read_text()
    assert "0..255" in readme and "MIT" in readme and "synthetic" in readme
    for name in ("test_input.npy", "test_output.npy", "cover.png", "model.keras", "model.onnx",
                 "tf_saved_model.zip"):
        assert (package / name).is_file(), name
    assert np.load(package / "test_output.npy").shape[-1] == 2
    with zipfile.ZipFile(package / "pkg.zip") as zf:
        assert {"rdf.yaml", "model.onnx", "tf_saved_model.zip"} <= set(zf.namelist())


def test_keras_weights_load_in_plain_keras_without_the_kit(exported):
    run, package = exported
    with zipfile.ZipFile(package / "model.keras") as zf:
        config = zf.read("config.json").decode()
    assert "livecell_kit>" not in config and not json.loads(config).get("compile_config")
    with zipfile.ZipFile(run / "model.keras") as zf:  # the training file does need the kit
        assert "livecell_kit>" in zf.read("config.json").decode()
    code = ("import sys, keras, numpy as np; m = keras.models.load_model(sys.argv[1]); "
            "x = np.load(sys.argv[2]); y = np.load(sys.argv[3]); "
            "assert 'livecell_kit' not in sys.modules; print(float(np.abs(m.predict(x, verbose=0) - y).max()))")
    result = subprocess.run([sys.executable, "-c", code, str(package / "model.keras"),
                             str(package / "test_input.npy"), str(package / "test_output.npy")],
                            capture_output=True, text=True, cwd=package, env={"PATH": "", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.split()[-1]) < 1e-5


def test_export_refuses_a_folder_of_other_files_and_replaces_an_earlier_export(exported, tmp_path):
    run, package = exported
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        export_model(run, busy)
    assert (busy / "notes.txt").read_text() == "mine"
    again = export_model(run, package)
    assert (again / "rdf.yaml").is_file() and not list(package.parent.glob(".pkg.*"))
