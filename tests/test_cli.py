"""The livecell-kit command line, end to end on a tiny sample; its errors, flags and Ctrl-C."""
import errno
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from livecell_kit import cli, data, masks, presets
from livecell_kit.cli import commands
from livecell_kit.cli import errors as cli_errors


@pytest.fixture(scope="module")
def tiny_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    assert cli.main(["sample", "--out", str(out), "--seed", "3", "--train-per-type", "1",
                     "--val-per-type", "1", "--test-per-type", "1"]) == 0
    return out


def test_sample_command_writes_the_livecell_layout(tiny_sample):
    for split in data.SPLITS:
        assert data.annotation_path(tiny_sample, split).exists()
        assert len(data.load_split(tiny_sample, split).images) == len(data.CELL_TYPES)


def test_masks_command_writes_one_png_per_image_named_after_the_stem(tiny_sample, tmp_path):
    ann = data.annotation_path(tiny_sample, "val")
    assert cli.main(["masks", "--annotations", str(ann), "--out", str(tmp_path / "m")]) == 0
    split = data.load_split(tiny_sample, "val")
    for image in split.images:
        png = tmp_path / "m" / (image["file_name"].rsplit(".", 1)[0] + ".png")
        values = np.unique(np.asarray(Image.open(png)))
        assert set(values.tolist()) <= {0, 255} and 255 in values


def test_bad_input_gives_one_clear_error_and_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "nowhere.json"
    assert cli.main(["masks", "--annotations", str(missing), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "nowhere.json" in err and "error" in err


@pytest.mark.parametrize("argv, flag", [
    (["predict", "--model", "m.keras", "--out", "OUT", "--threshold", "2", "a.tif"], "--threshold"),
    (["predict", "--model", "m.keras", "--out", "OUT", "--threshold", "nan", "a.tif"], "--threshold"),
    (["predict", "--model", "m.keras", "--out", "OUT", "--threshold", "-0.1", "a.tif"], "--threshold"),
    (["predict", "--model", "m.keras", "--out", "OUT", "--threshold", "half", "a.tif"], "--threshold"),
    (["evaluate", "--model", "m.keras", "--data", "D", "--out", "OUT", "--threshold", "1.5"], "--threshold"),
    (["evaluate", "--model", "m.keras", "--data", "D", "--out", "OUT", "--images", "0"], "--images"),
    (["train", "--data", "D", "--out", "OUT", "--batch-size", "0"], "--batch-size"),
    (["train", "--data", "D", "--out", "OUT", "--epochs", "0"], "--epochs"),
    (["train", "--data", "D", "--out", "OUT", "--epochs", "1.5"], "--epochs"),
    (["sample", "--out", "OUT", "--seed", "-1"], "--seed"),
    (["sample", "--out", "OUT", "--train-per-type", "-2"], "--train-per-type"),
    (["train", "--data", "D", "--out", "OUT", "--preset", "nope"], "--preset"),
])
def test_out_of_range_flags_are_refused_before_any_work_naming_the_flag(argv, flag, tmp_path, capsys):
    argv = [str(tmp_path / "out") if a == "OUT" else a for a in argv]
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_threshold_and_counts_accept_their_whole_range():
    assert [commands.probability(t) for t in ("0", "0.5", "1")] == [0.0, 0.5, 1.0]
    assert commands.whole_number(1)("1") == 1 and commands.whole_number(0)("0") == 0


def test_unknown_preset_or_setting_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown preset 'nope'.*quick"):
        presets.get_preset("nope")
    with pytest.raises(ValueError, match="did you mean 'quick'"):
        presets.get_preset("quik")
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        presets.get_preset("quick", epoch=3)


def _broken_model_files(folder: Path) -> dict:
    """Files named .keras that are not models: text, empty, a zip without config.json."""
    (folder / "text.keras").write_text("not a model")
    (folder / "empty.keras").write_bytes(b"")
    with zipfile.ZipFile(folder / "noconfig.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    with zipfile.ZipFile(folder / "badconfig.keras", "w") as archive:
        archive.writestr("config.json", "{not json")
        archive.writestr("metadata.json", "{}")
    return {name: folder / f"{name}.keras" for name in ("text", "empty", "noconfig", "badconfig")}


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_file_that_is_not_a_model_gets_a_message_naming_it(command, tiny_sample, tmp_path, capsys):
    image = data.load_split(tiny_sample, "test").image_path(data.load_split(tiny_sample, "test").images[0])
    for name, model in _broken_model_files(tmp_path).items():
        argv = (["predict", "--model", str(model), "--out", str(tmp_path / "pred"), str(image)]
                if command == "predict" else
                ["evaluate", "--model", str(model), "--data", str(tiny_sample), "--out", str(tmp_path / "m.json")])
        assert cli.main(argv) == 2, name
        err = capsys.readouterr().err
        assert str(model) in err and "livecell-kit train" in err and "Traceback" not in err, err
        assert ("config.json" in err) == (name == "noconfig"), err
    assert not (tmp_path / "pred").exists() and not (tmp_path / "m.json").exists()


def _fill_dev_full(*args, **kwargs):
    """Write to /dev/full: the operating system's own "disk full" error, which names no file."""
    with open("/dev/full", "wb") as full:
        full.write(b"0" * 65536)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_names_the_folders_written_and_the_fix(tiny_sample, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(masks, "write_masks", _fill_dev_full)
    out = tmp_path / "m"
    assert cli.main(["masks", "--annotations", str(data.annotation_path(tiny_sample, "val")),
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "[Errno" not in err and "no space left on device" in err and str(out) in err
    assert "MB free" in err and "free some space" in err and len(err.splitlines()) == 1


def test_an_os_error_names_its_file_and_the_fix(tiny_sample, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cli.main(["masks", "--annotations", str(data.annotation_path(tiny_sample, "val")),
                     "--out", str(blocker / "masks")]) == 2
    err = capsys.readouterr().err
    assert str(blocker / "masks") in err and "not a directory" in err and "check the path" in err
    assert "[Errno" not in err


@pytest.mark.parametrize("err, status, expected", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/run"), 2,
     "livecell-kit train: error: /data/run: permission denied; check its permissions, or choose another folder"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/run/model.keras"), 2,
     "livecell-kit train: error: no space left on device writing /data/run/model.keras ("),
    (FileNotFoundError("no trained model at x; train one first"), 2,
     "livecell-kit train: error: no trained model at x; train one first"),
    (MemoryError(), 2, "livecell-kit train: error: out of memory; close other programs"),
    (RecursionError("maximum recursion depth exceeded"), 1,
     "livecell-kit train: internal error (a bug in livecell-kit): RecursionError: maximum recursion"),
])
def test_each_kind_of_error_gets_its_message_and_status(err, status, expected):
    message, got = cli_errors.describe(err, "train")
    assert got == status and message.startswith(expected) and "[Errno" not in message


def _raise_a_bug(*args, **kwargs):
    return {}["segmentation"]


def test_a_bug_says_so_and_debug_shows_the_traceback(tiny_sample, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(masks, "write_masks", _raise_a_bug)
    argv = ["masks", "--annotations", str(data.annotation_path(tiny_sample, "val")), "--out", str(tmp_path)]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "bug in livecell-kit" in err and "KeyError: 'segmentation'" in err and "--debug" in err
    with pytest.raises(KeyError):
        cli.main(["--debug"] + argv)
    with pytest.raises(KeyError):
        cli.main(argv + ["--debug"])
    monkeypatch.setenv(cli_errors.DEBUG_ENV, "1")
    with pytest.raises(KeyError):
        cli.main(argv)


def test_a_bad_image_inside_tensorflows_pipeline_is_reported_as_bad_input():
    """tf.data wraps a Python error in an OpError whose message holds the whole traceback."""
    import tensorflow as tf

    def read(_):
        raise data.ImageReadError("image x.tif is corrupt or truncated; re-download it")

    dataset = tf.data.Dataset.range(1).map(lambda i: tf.py_function(read, [i], tf.float32))
    with pytest.raises(tf.errors.OpError) as caught:
        next(iter(dataset))
    assert "Traceback" in str(caught.value)  # what the user saw before
    message, status = cli_errors.describe(caught.value, "train")
    assert status == 2 and "Traceback" not in message and "{{node" not in message
    assert message == "livecell-kit train: error: image x.tif is corrupt or truncated; re-download it"


def _command() -> list[str]:
    """The installed ``livecell-kit`` script next to this Python, else ``python -m livecell_kit.cli``."""
    script = Path(sys.executable).with_name("livecell-kit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "livecell_kit.cli"]


def test_help_prints_no_tensorflow_logs():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(_command() + ["--help"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and "train" in done.stdout and done.stderr == ""


def _many_images_json(path: Path, n_images: int) -> Path:
    """A COCO file of ``n_images`` 520x704 frames with 20 square cells each (seconds of mask writing)."""
    images, annotations = [], []
    for i in range(n_images):
        images.append({"id": i + 1, "width": 704, "height": 520,
                       "file_name": f"A172_Phase_A1_1_00d00h00m_{i}.tif"})
        for k in range(20):
            x, y = 30 * k + 5, 20 + 20 * (k % 5)
            annotations.append({"id": 20 * i + k + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                                "area": 225.0, "bbox": [x, y, 15, 15],
                                "segmentation": [[x, y, x + 15, y, x + 15, y + 15, x, y + 15]]})
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "cell"}]}))
    return path


def _interrupt_when(argv, ready, tmp_path, timeout=240):
    """Start ``livecell-kit argv``, send SIGINT once ``ready()`` is true; returns (exit status, stderr)."""
    with open(tmp_path / "stdout", "wb") as out, open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen(_command() + argv, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + timeout
            while not ready() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, "the command ended before it could be interrupted"
            proc.send_signal(signal.SIGINT)
            status = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    return status, (tmp_path / "stderr").read_text()


def test_ctrl_c_in_masks_ends_with_one_line_and_leaves_only_complete_files(tmp_path):
    ann = _many_images_json(tmp_path / "many.json", 400)
    out = tmp_path / "masks"
    status, err = _interrupt_when(["masks", "--annotations", str(ann), "--out", str(out)],
                                  lambda: out.is_dir() and any(out.glob("*.png")), tmp_path)
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # minus tqdm's bar
    assert status == cli_errors.EXIT_INTERRUPTED and "Traceback" not in err and "KeyboardInterrupt" not in err
    assert lines == [cli_errors.interrupted_message("masks")] and "rerun the same command" in lines[0]
    written = sorted(out.iterdir())
    assert 0 < len(written) < 400 and all(p.suffix == ".png" for p in written)  # no temporary files left
    for png in written:
        assert np.asarray(Image.open(png)).shape == (520, 704)


def test_ctrl_c_in_train_ends_with_one_line_saying_how_to_resume(tiny_sample, tmp_path):
    run = tmp_path / "run"
    started = tmp_path / "stdout"
    argv = ["train", "--data", str(tiny_sample), "--out", str(run), "--epochs", "50", "--precision", "float32"]
    status, err = _interrupt_when(argv, lambda: started.exists() and b"Epoch 1/" in started.read_bytes(),
                                  tmp_path)
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert status == cli_errors.EXIT_INTERRUPTED and "Traceback" not in err and "KeyboardInterrupt" not in err
    assert lines[-1] == cli_errors.interrupted_message("train") and "resume" in lines[-1]
    assert not (run / "model.keras").exists()


def test_train_evaluate_predict_commands(tiny_sample, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "--data", str(tiny_sample), "--preset", "quick", "--out", str(run),
                     "--epochs", "1", "--precision", "float32"]) == 0
    assert (run / "model.keras").exists() and (run / "history.json").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["precision"] == "float32"

    metrics = tmp_path / "metrics.json"
    assert cli.main(["evaluate", "--model", str(run), "--data", str(tiny_sample), "--split", "test",
                     "--out", str(metrics)]) == 0
    results = json.loads(metrics.read_text())
    for key in ("pixel_accuracy", "bce", "iou", "dice", "precision", "recall", "threshold",
                "per_cell_type", "baselines", "instance", "seed_metrics"):
        assert key in results
    assert set(results["seed_metrics"]) == {"pixel_accuracy", "bce", "rule"}
    assert results["seed_metrics"]["bce"] == pytest.approx(results["bce"])  # BCE needs no threshold
    assert results["subset_rule"] == "stratified"  # the quick run's rule, read from its config.json
    out = capsys.readouterr().out
    assert "seed reported" in out and "92.19%" in out and "0.2043" in out
    assert set(results["baselines"]) == {"all_background", "otsu"}
    assert {"AP", "AP50", "AP75", "per_cell_type"} <= set(results["instance"])
    assert results["instance_source"] == "watershed on the semantic mask (no instance head)"
    assert "cells (watershed on the semantic mask (no instance head)): AP" in out
    assert len(results["cells"]["per_frame"]) == results["n_images"]

    image = data.load_split(tiny_sample, "test").images[0]
    path = data.load_split(tiny_sample, "test").image_path(image)
    assert cli.main(["predict", "--model", str(run / "model.keras"), "--out", str(tmp_path / "pred"), str(path)]) == 0
    stem = path.stem
    assert {p.name for p in (tmp_path / "pred").iterdir()} >= {f"{stem}_mask.png", f"{stem}_labels.tif",
                                                               f"{stem}_overlay.png", "cells.csv"}
    assert "no instance head" in capsys.readouterr().out  # the quick preset: semantic only, said once

    truncated = tmp_path / "truncated.keras"  # a copy cut short, as by a full disk or a kill
    truncated.write_bytes((run / "model.keras").read_bytes()[:5000])
    assert cli.main(["predict", "--model", str(truncated), "--out", str(tmp_path / "p2"), str(path)]) == 2
    err = capsys.readouterr().err
    assert str(truncated) in err and "truncated" in err and "Traceback" not in err


def test_evaluate_picks_test_images_with_the_runs_subset_rule(tiny_sample, tmp_path, capsys):
    """A seed run is scored on the first N test images in file order, as the seed was."""
    run = tmp_path / "seed-run"
    assert cli.main(["train", "--data", str(tiny_sample), "--preset", "seed", "--out", str(run),
                     "--epochs", "1", "--batch-size", "2", "--precision", "float32"]) == 0
    metrics = tmp_path / "m.json"
    assert cli.main(["evaluate", "--model", str(run), "--data", str(tiny_sample), "--split", "test",
                     "--images", "3", "--no-instance", "--threshold", "0.5", "--out", str(metrics)]) == 0
    results = json.loads(metrics.read_text())
    assert results["subset_rule"] == "first" and results["n_images"] == 3
    first3 = {r["file_name"] for r in data.load_split(tiny_sample, "test").images[:3]}
    assert set(results["per_cell_type"]) == {data.cell_type_of(n) for n in first3}
    # evaluating the val split itself: the threshold is not tuned on the images scored
    assert cli.main(["evaluate", "--model", str(run), "--data", str(tiny_sample), "--split", "val",
                     "--no-instance", "--out", str(metrics)]) == 0
    assert json.loads(metrics.read_text())["threshold"] == 0.5


def test_ctrl_c_while_the_cli_loads_is_one_line(monkeypatch, capsys):
    import importlib.abc
    import sys

    from livecell_kit.cli import launch

    class InterruptedImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "livecell_kit.cli.commands":
                raise KeyboardInterrupt  # what Ctrl-C does in the middle of the import
            return None

    monkeypatch.delitem(sys.modules, "livecell_kit.cli.commands")
    monkeypatch.delattr("livecell_kit.cli.commands", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    assert launch.main(["--help"]) == launch.EXIT_INTERRUPTED == cli_errors.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.strip() == "livecell-kit: interrupted while starting; nothing was done"


def test_the_console_script_starts_at_the_launcher():
    import tomllib

    from livecell_kit.cli import launch

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert tomllib.loads(pyproject.read_text())["project"]["scripts"]["livecell-kit"] == "livecell_kit.cli.launch:main"
    with pytest.raises(SystemExit) as done:  # argparse's --help: the real CLI ran
        launch.main(["--help"])
    assert done.value.code == 0


def test_threshold_data_errors_speak_in_flags(tiny_sample, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = ["evaluate", "--model", str(tmp_path / "m.keras"), "--data", str(tiny_sample), "--out", str(tmp_path / "o.json")]
    assert cli.main(base + ["--threshold-data", str(empty)]) == 2
    err = capsys.readouterr().err
    assert f"--threshold-data {empty} has no val split" in err and "--threshold" in err
    assert "threshold=None" not in err and "livecell-kit sample" not in err
    assert cli.main(base + ["--threshold-data", str(tmp_path / "typo"), "--threshold", "0.5"]) == 2
    assert "drop one of the two flags" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def _grey_conv_model(path, channels_in=1, dense=False):
    import keras

    if dense:
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    else:
        model = keras.Sequential([keras.Input((None, None, channels_in)),
                                  keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")])
    model.save(path)
    return path


@pytest.mark.parametrize("kind", ["dense", "rgb"])
def test_a_model_that_is_not_a_grey_unet_is_named_with_the_fix(tiny_sample, tmp_path, capsys, kind):
    model = _grey_conv_model(tmp_path / f"{kind}.keras", channels_in=3, dense=kind == "dense")
    image = data.load_split(tiny_sample, "test")
    path = image.image_path(image.images[0])
    assert cli.main(["predict", "--model", str(model), "--out", str(tmp_path / "p"), str(path)]) == 2
    assert cli.main(["evaluate", "--model", str(model), "--data", str(tiny_sample), "--threshold", "0.5",
                     "--no-instance", "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert err.count(f"{model} is not a segmentation model the kit can run") == 2
    assert "livecell-kit train" in err and "in user code" not in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["rle", "category"])
def test_a_corrupt_rle_or_unknown_category_in_the_test_json_names_the_file(tiny_sample, tmp_path, capsys, damage):
    import shutil

    root = shutil.copytree(tiny_sample, tmp_path / "data")
    path = data.annotation_path(root, "test")
    coco = json.loads(path.read_text())
    ann = coco["annotations"][0] if isinstance(coco["annotations"], list) else next(iter(coco["annotations"].values()))
    if damage == "rle":
        image = next(i for i in coco["images"] if i["id"] == ann["image_id"])
        ann["segmentation"] = {"counts": "garbage!!~~", "size": [image["height"], image["width"]]}
    else:
        ann["category_id"] = 99
    path.write_text(json.dumps(coco))
    model = _grey_conv_model(tmp_path / "m.keras")
    assert cli.main(["evaluate", "--model", str(model), "--data", str(root), "--threshold", "0.5",
                     "--no-instance", "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and f"annotation {ann['id']}" in err
    assert ("RLE string is corrupt" if damage == "rle" else "category_id 99") in err
