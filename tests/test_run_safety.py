"""Crash-safe run folders: kill -9 at any instant, torn files, bad counts, a second concurrent train."""
import csv
import errno
import json
import os
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from livecell_kit import atomic, presets
from livecell_kit import train as T
from livecell_kit.train import backup, history, lock

TINY = dict(depth=1, base_filters=4, batch_size=2, crop_size=32, steps_per_epoch=2, precision="float32")

# Trains the tiny model; SIGKILLs itself just before or after the os.replace that puts file
# KILL_NAME in place (the renames are where the run folder changes), like a kill -9 there.
_CHILD = textwrap.dedent("""
    import os, signal, sys
    import keras
    from livecell_kit import train

    root, out, kill_name, when = sys.argv[1:5]
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        hit = os.path.basename(os.fspath(dst)) == kill_name
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, *args, **kwargs)
        if hit and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            print("EPOCH_BEGIN", epoch, flush=True)

    train.train(root, preset="quick", out_dir=out, epochs=2, verbose=0, callbacks=[Record()],
                depth=1, base_filters=4, batch_size=2, crop_size=32, steps_per_epoch=2, precision="float32")
""")


def _child(root, out, kill_name="-", when="-"):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(root), str(out), kill_name, when],
                          capture_output=True, text=True, env=env, timeout=300)
    begun = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("EPOCH_BEGIN")]
    return proc, begun


def _csv_epochs(out):
    with open(out / "history.csv", newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.fixture
def tiny_root(small_sample, tmp_path, monkeypatch):
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    return small_sample


def test_kill_9_at_each_stage_resumes_with_every_epoch_once(tiny_root, tmp_path):
    out = tmp_path / "run"
    # 1. killed after epoch 0's history and best candidate, just before its backup commits it
    proc, begun = _child(tiny_root, out, "epoch-0001.weights.h5", "before")
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert begun == [0] and T.read_history(out)["epoch"] == [0] and _csv_epochs(out) == [0]
    assert list((out / "backup").glob(".epoch-0001.weights.h5.*"))  # the finished temporary file, never renamed
    assert not backup.generations(out)

    # 2. the uncommitted epoch 0 is trained again; killed just after epoch 1 committed, before its checkpoints
    proc, begun = _child(tiny_root, out, "epoch-0002.weights.h5", "after")
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert begun == [0, 1]
    assert T.read_history(out)["epoch"] == [0, 1] and _csv_epochs(out) == [0, 1]
    assert [n for n, _ in backup.generations(out)] == [2, 1]

    # 3. nothing left to train: the rerun completes the commit and finishes the run
    proc, begun = _child(tiny_root, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert begun == []
    hist = T.read_history(out)
    assert hist["epoch"] == [0, 1] and _csv_epochs(out) == [0, 1] and len(hist["val_loss"]) == 2
    config = json.loads((out / "config.json").read_text())
    assert config["finished"] is True and config["epochs_trained"] == 2
    assert (out / "checkpoints" / "best.keras").is_file() and not (out / "backup").exists()
    assert not [p for p in out.rglob(".*") if ".tmp" in p.name]

    # a finished run is loaded, not trained again; other settings are refused
    result = T.train(tiny_root, preset="quick", out_dir=out, epochs=2, verbose=0, **TINY)
    assert result.history["epoch"] == [0, 1] and result.model.output_shape == (None, None, None, 1)
    with pytest.raises(ValueError, match="other settings"):
        T.train(tiny_root, preset="quick", out_dir=out, epochs=3, verbose=0, **TINY)


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.Adam(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)  # as after training: its state is saved too
    return model


def _write_generation(model, out, epochs, value):
    for w in model.weights:
        w.assign(np.full(w.shape, value, "float32"))
    path = out / "backup" / f"epoch-{epochs:04d}.weights.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    return path


def test_torn_backup_falls_back_a_generation_and_names_the_file_when_none_is_left(tmp_path):
    model = _tiny_model()
    _write_generation(model, tmp_path, 1, 1.0)
    newest = _write_generation(model, tmp_path, 2, 2.0)
    newest.write_bytes(newest.read_bytes()[:100])  # torn by a full disk
    with pytest.warns(T.RunFileWarning, match="epoch-0002.weights.h5"):
        assert backup.restore(model, tmp_path) == 1
    assert float(model.weights[0].numpy().flat[0]) == 1.0
    (tmp_path / "backup" / "epoch-0001.weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"epoch-0002.weights.h5.*epoch-0001.weights.h5.*Delete the folder"):
        backup.restore(model, tmp_path)


def test_rerun_completes_an_interrupted_commit_and_drops_uncommitted_epochs(tmp_path):
    model = _tiny_model()
    _write_generation(model, tmp_path, 2, 0.5)
    for n in (2, 3):  # 2: committed but not moved into place; 3: an uncommitted epoch's
        (tmp_path / "backup" / f"best-{n:04d}.keras").write_bytes(b"best %d" % n)
    (tmp_path / "backup" / ".epoch-0003.weights.h5.abc.tmp.weights.h5").write_bytes(b"torn")
    history.write_history(tmp_path, {0: {"val_loss": 0.9}, 1: {"val_loss": 0.4}, 2: {"val_loss": 0.1}})
    cb = backup.RunCheckpoint(tmp_path)
    cb.set_model(model)
    cb.on_train_begin()
    assert model._initial_epoch == 2
    assert (tmp_path / "checkpoints" / "best.keras").read_bytes() == b"best 2"
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["epoch-0002.weights.h5"]
    assert T.read_history(tmp_path)["epoch"] == [0, 1] and _csv_epochs(tmp_path) == [0, 1]
    assert cb.best == 0.4  # a resumed run must beat the committed epochs' best


def test_truncated_best_keras_falls_back_to_the_trained_model(tmp_path):
    preset = presets.resolve("quick", epochs=1, **TINY)
    run = T.open_run(tmp_path / "data", preset, tmp_path / "run", verbose=0)
    best = run.out_dir / "checkpoints" / "best.keras"
    best.parent.mkdir()
    model = _tiny_model()
    model.save(best)
    best.write_bytes(best.read_bytes()[:200])
    with pytest.warns(T.RunFileWarning, match="best.keras is unreadable"):
        result = T.finish_run(run, model)
    assert result.model is model and T.load_model(run.out_dir).output_shape == (None, 2)
    assert T.is_finished(run.out_dir)


def test_unreadable_config_and_history_name_the_file_and_the_fix(tmp_path):
    preset = presets.resolve("quick", epochs=1, **TINY)
    (tmp_path / "config.json").write_text("")
    with pytest.raises(ValueError, match=r"config.json is not a readable run configuration.*Delete it"):
        T.open_run(tmp_path / "data", preset, tmp_path, verbose=0)
    (tmp_path / "history.json").write_text('{"epoch": [0, 1], "loss": [0.5]}')
    with pytest.raises(ValueError, match=r"history.json is not a readable training history.*Delete it"):
        T.read_history(tmp_path)


@pytest.mark.parametrize("setting", [{"epochs": 0}, {"batch_size": 0}, {"epochs": 2.5}, {"steps_per_epoch": -1}])
def test_bad_counts_are_refused_before_the_run_folder_is_written(tmp_path, setting):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=rf"{name} must be a whole number >= 1, got {setting[name]}"):
        T.train(tmp_path / "data", preset="quick", out_dir=tmp_path / "run", verbose=0,
                **{**TINY, **setting})
    assert not (tmp_path / "run").exists()


def test_a_run_that_finished_no_epoch_gives_way_to_the_corrected_command(tmp_path):
    out = tmp_path / "run"
    # a run that committed no epoch (killed or failed in its first): the corrected command may start here
    T.open_run(tmp_path / "data", presets.resolve("quick", epochs=0, **TINY), out, verbose=0)
    fixed = presets.resolve("quick", epochs=1, **TINY)
    assert not T.open_run(tmp_path / "data", fixed, out, verbose=0).finished
    assert json.loads((out / "config.json").read_text())["preset"]["train"]["epochs"] == 1
    # once an epoch is committed, the settings are the run's
    atomic.write_bytes(out / "backup" / "epoch-0001.weights.h5", b"")
    with pytest.raises(ValueError, match="other settings"):
        T.open_run(tmp_path / "data", presets.resolve("quick", epochs=2, **TINY), out, verbose=0)


def test_a_second_train_into_a_busy_folder_stops_at_once_naming_it(tmp_path):
    out = tmp_path / "run"
    with lock.run_lock(out):  # another open file description: the OS refuses it as it would another process
        with pytest.raises(T.RunFolderBusy, match=re.escape(f"{out} is in use by another `train` (pid {os.getpid()}")):
            T.train(tmp_path / "data", preset="quick", out_dir=out, epochs=1, verbose=0, **TINY)
    assert not (out / "config.json").exists()
    with lock.run_lock(out):  # released when its holder is done
        pass


def test_a_full_disk_at_the_epoch_end_names_the_run_and_commits_nothing(tmp_path, monkeypatch):
    model = _tiny_model()
    cb = backup.RunCheckpoint(tmp_path)
    cb.set_model(model)
    cb.on_train_begin()

    def no_space(self, path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save_weights", no_space)
    with pytest.raises(OSError, match=rf"epoch 0 of the run in {re.escape(str(tmp_path))} .*No space.*rerun"):
        cb.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})
    assert not backup.generations(tmp_path) and not [p for p in tmp_path.rglob(".*") if ".tmp" in p.name]
    assert backup.committed_epochs(tmp_path) == 0  # the rerun trains epoch 0 again


def test_a_full_disk_inside_hdf5_leaves_no_hdf5_file_open(tmp_path, monkeypatch):
    """A write that fails inside h5py (a full disk) must not leave its file open: h5py would
    print tracebacks from __dealloc__ later and the interpreter could crash at exit."""
    import h5py

    model = _tiny_model()
    cb = backup.RunCheckpoint(tmp_path)
    cb.set_model(model)
    cb.on_train_begin()
    open_before = len(h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE))
    real_create = h5py.Group.create_dataset

    calls = []

    def full_after_one(self, *args, **kwargs):  # the disk fills after the first dataset
        calls.append(args)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_create(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", full_after_one)
    with pytest.raises(OSError, match="could not save epoch 0"):
        cb.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0})
    assert len(h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)) == open_before
    assert not backup.generations(tmp_path)


# Trains a tiny preset into the 1 MB tmpfs mounted at argv[1] with the CLI and fills the disk just before
# the backup's weights are written (HDF5 then fails inside its own writes on a kit that lets it
# write to disk); exits with the CLI's status.
_FULL_DISK_CHILD = textwrap.dedent("""
    import dataclasses, os, subprocess, sys
    import keras
    from livecell_kit import cli, presets

    mount, root = sys.argv[1:3]
    tiny = dict(depth=2, base_filters=8, batch_size=2, crop_size=32, steps_per_epoch=2, precision="float32")
    presets.PRESETS["tiny"] = dataclasses.replace(presets.get_preset("quick", **tiny), name="tiny")
    real_save_weights = keras.Model.save_weights

    def fill_disk_then_save(self, *args, **kwargs):
        st = os.statvfs(mount)
        with open(os.path.join(mount, "filler"), "ab") as f:
            f.write(bytes(max(0, st.f_bavail * st.f_frsize - 8192)))
        return real_save_weights(self, *args, **kwargs)

    keras.Model.save_weights = fill_disk_then_save
    sys.exit(cli.main(["train", "--data", root, "--out", mount + "/run", "--preset", "tiny", "--epochs", "1"]))
""")


def test_a_full_disk_during_a_backup_is_a_clean_exit_2_on_a_small_tmpfs(tiny_root, tmp_path):
    if os.geteuid() != 0 or sys.platform != "linux":
        pytest.skip("mounting a tmpfs needs root on Linux")
    mount = tmp_path / "full"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:  # the child may crash (the fault tested): the mount is the parent's to remove
        proc = subprocess.run([sys.executable, "-c", _FULL_DISK_CHILD, str(mount), str(tiny_root)],
                              capture_output=True, text=True, env=env, timeout=300)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no space left on device" in proc.stderr and "rerun the same command" in proc.stderr
    assert "Traceback" not in proc.stderr and "h5py" not in proc.stderr


@pytest.fixture
def other_root(small_samples, tmp_path):
    return small_samples(1, tmp_path / "other")


def _interrupted_run(root, out, preset):
    """A run folder of ``preset`` on ``root`` killed after committing one epoch."""
    T.open_run(root, preset, out, verbose=0)
    atomic.write_bytes(out / "backup" / "epoch-0001.weights.h5", b"")
    return (out / "config.json").read_bytes()


def test_resuming_or_reusing_a_run_with_other_data_is_refused_before_anything_is_written(
        tiny_root, other_root, tmp_path):
    preset = presets.resolve("quick", epochs=2, **TINY)
    out = tmp_path / "run"
    config = _interrupted_run(tiny_root, out, preset)
    recorded = json.loads(config)["data"]
    assert recorded["root"] == str(tiny_root.resolve()) and recorded["train"]["images"]["count"] == 8
    with pytest.raises(ValueError, match="trained on other data") as err:
        T.open_run(other_root, preset, out, verbose=0)
    text = str(err.value)
    assert str(tiny_root.resolve()) in text and str(other_root.resolve()) in text
    assert "new --out folder" in text and "--restart" in text
    assert (out / "config.json").read_bytes() == config
    assert not T.open_run(tiny_root, preset, out, verbose=0).finished  # its own data resumes
    # finished: handed back only for its own data
    atomic.write_json(out / "config.json", {**json.loads(config), "finished": True})
    atomic.write_bytes(out / "model.keras", b"")
    with pytest.raises(ValueError, match="trained on other data"):
        T.open_run(other_root, preset, out, verbose=0)
    assert T.open_run(tiny_root, preset, out, verbose=0).finished


def test_a_changed_annotation_file_under_the_same_root_is_other_data(tiny_root, tmp_path):
    preset = presets.resolve("quick", epochs=2, **TINY)
    out = tmp_path / "run"
    _interrupted_run(tiny_root, out, preset)
    ann = tiny_root / "annotations" / "livecell_coco_val.json"
    ann.write_text(json.dumps({**json.loads(ann.read_text()), "info": {"edited": True}}))
    with pytest.raises(ValueError, match=r"other data(.|\n)*val: \d+ bytes of annotations"):
        T.open_run(tiny_root, preset, out, verbose=0)


def test_restart_starts_the_folder_afresh_on_the_new_data_and_keeps_other_files(tiny_root, other_root, tmp_path):
    out = tmp_path / "run"
    _interrupted_run(tiny_root, out, presets.resolve("quick", epochs=2, **TINY))
    (out / "metrics.json").write_text("{}")
    result = T.train(other_root, preset="quick", out_dir=out, epochs=1, verbose=0, restart=True, **TINY)
    config = json.loads((out / "config.json").read_text())
    assert config["finished"] and config["data"]["root"] == str(other_root.resolve())
    assert result.history["epoch"] == [0] and (out / "metrics.json").read_text() == "{}"
