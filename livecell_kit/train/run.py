"""A training run and its folder: settings, resume, the finished model; :func:`train` in one call.

Run folder::

    out_dir/config.json      preset, precision, data root and fingerprint (the run's data:
                             :mod:`~livecell_kit.train.binding`), kit version, finished flag
    out_dir/model.keras      the best model (lowest val_loss), written at the end
    out_dir/history.json, history.csv, checkpoints/, backup/   written while fitting
                             (see :mod:`livecell_kit.train.backup`)
    out_dir/.train.lock      held while :func:`train` runs: one train per folder at a time

Every file is written to a temporary name and renamed into place, so a kill or a
full disk at any instant leaves the previous version, never a torn file.

A run takes three steps; :func:`train` takes them in one call and notebook 04
shows them one by one::

    run = open_run(data_root, preset, out_dir)          # config.json, or a finished run
    model.compile(...); model.fit(..., callbacks=run_callbacks(out_dir))
    result = finish_run(run, model)                     # model.keras; config.json "finished"

Rerunning the same ``train()`` call resumes an interrupted run after its last
finished epoch, and returns at once (loading the model) when the run finished.
"""
from __future__ import annotations

import json
import numbers
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import keras
import tensorflow as tf

from livecell_kit import __version__, atomic, kernels
from livecell_kit.model import build_unet
from livecell_kit.presets import Preset, get_preset, resolve
from livecell_kit.train import binding
from livecell_kit.train.backup import BACKUP_DIR, CHECKPOINT_DIR, RunFileWarning, committed_epochs, save_model
from livecell_kit.train.callbacks import run_callbacks
from livecell_kit.train.history import read_history
from livecell_kit.train.lock import run_lock
from livecell_kit.train.losses import check_loss_fits, get_loss, make_metrics
from livecell_kit.train.pipeline import preset_datasets
from livecell_kit.train.precision import choose_precision, model_scope


@dataclass(frozen=True)
class RunFolder:
    """A run folder opened by :func:`open_run`.

    precision: the Keras policy the run trains in (as recorded in config.json).
    finished: True when the folder holds the final model.keras: fit nothing,
        :func:`finish_run` loads it.
    """

    out_dir: Path
    preset: Preset
    precision: str
    finished: bool


@dataclass
class TrainResult:
    """What :func:`train` returns: the best model, its history, the run folder and the precision used."""

    model: keras.Model
    history: dict
    out_dir: Path
    precision: str


def _as_json(preset_dict):
    return json.loads(json.dumps(preset_dict))


def _read_config(out_dir: Path) -> dict | None:
    """config.json of the run folder, None when there is none; ValueError naming it when unreadable."""
    path = out_dir / "config.json"
    if not path.exists():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError(f"a JSON {type(config).__name__}, not an object")
    except ValueError as exc:  # also UnicodeDecodeError
        raise ValueError(f"{path} is not a readable run configuration ({exc}). Delete it and rerun the same "
                         f"command (an interrupted run still resumes from {out_dir / BACKUP_DIR}), or choose "
                         f"a new --out folder") from None
    return config


def is_finished(out_dir) -> bool:
    """True when ``out_dir`` holds a finished run (config.json says so and model.keras is there)."""
    out_dir = Path(out_dir)
    config = _read_config(out_dir)
    return bool(config and config.get("finished")) and (out_dir / "model.keras").exists()


def open_run(data_root, preset: Preset, out_dir, verbose: int = 1) -> RunFolder:
    """Start, resume or reopen the run of ``preset`` on ``data_root`` in folder ``out_dir``.

    A new or interrupted run gets (again) a config.json with ``"finished": false``, the
    precision chosen for this machine and the fingerprint of its data
    (:func:`~livecell_kit.train.binding.data_fingerprint`); a finished one is left as it is.
    Raises ValueError, before anything is written, when ``out_dir`` holds a run with other
    settings or on other data that finished an epoch; one that finished none (it failed or
    was stopped early) is replaced.
    """
    out_dir, data_root = Path(out_dir), Path(data_root)
    config_path = out_dir / "config.json"
    prior = _read_config(out_dir)
    fingerprint = binding.data_fingerprint(data_root, preset)
    if prior is not None:
        same = prior.get("preset") == _as_json(preset.to_dict())
        recorded = prior.get("data") or {}
        same_data = binding.same_data(recorded, fingerprint)
        if not (same and same_data) and not prior.get("finished") and committed_epochs(out_dir) == 0:
            if verbose:
                print(f"{out_dir}: the earlier run there finished no epoch; starting this one in its place")
        elif not same:
            raise ValueError(f"{out_dir} holds a run with other settings (see {config_path}); "
                             "rerun with the same preset and options, choose a new --out folder, or pass "
                             "--restart to start this folder afresh")
        elif not same_data:
            raise ValueError(binding.other_data_message(out_dir, recorded, fingerprint))
        if is_finished(out_dir):
            if verbose:
                print(f"{out_dir}: run already finished; loading model.keras")
            return RunFolder(out_dir, preset, prior["precision"], finished=True)
    precision = choose_precision(preset.train.precision)
    if verbose:
        print(f"precision: {precision}")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic.write_json(config_path, {
        "preset": preset.to_dict(), "precision": precision, "data_root": fingerprint["root"],
        "data": fingerprint, "kit_version": __version__, "tensorflow": tf.__version__,
        "keras": keras.__version__, "finished": False})
    return RunFolder(out_dir, preset, precision, finished=False)


def finish_run(run: RunFolder, model: keras.Model | None = None) -> TrainResult:
    """Close a run after ``model.fit``: the best epoch's model becomes model.keras.

    Writes model.keras (checkpoints/best.keras, else ``model`` as trained), marks
    config.json finished and removes the resume state.  A run that was already
    finished is only loaded (``model`` is ignored).  An unreadable best.keras is
    reported (:class:`RunFileWarning`) and ``model`` used instead.
    """
    out_dir = run.out_dir
    if run.finished:
        shutil.rmtree(out_dir / BACKUP_DIR, ignore_errors=True)  # left by a kill just after the run finished
        return TrainResult(model=load_model(out_dir), history=read_history(out_dir), out_dir=out_dir,
                           precision=run.precision)
    if model is None:
        raise ValueError(f"finish_run needs the trained model for the unfinished run in {out_dir}")
    final = _best_model(out_dir / CHECKPOINT_DIR / "best.keras", model)
    save_model(final, out_dir / "model.keras")
    history = read_history(out_dir)
    config = _read_config(out_dir)
    config.update(finished=True, epochs_trained=len(history.get("epoch", [])))
    atomic.write_json(out_dir / "config.json", config)
    shutil.rmtree(out_dir / BACKUP_DIR, ignore_errors=True)
    _drop_training_graphs(model)
    return TrainResult(model=final, history=history, out_dir=out_dir, precision=run.precision)


def _drop_training_graphs(model: keras.Model) -> None:
    """Free what ``fit`` compiled for ``model`` (its traced train, test and predict steps, rebuilt if
    it is trained again) and give the memory back: a notebook kernel keeps living after training
    (Binder's 2 GB hold all of a student's kernels; ``bench/notebooks.py``)."""
    for name in ("train_function", "test_function", "predict_function"):
        if getattr(model, name, None) is not None:
            setattr(model, name, None)
    kernels.give_back_freed_memory()


def _best_model(path: Path, trained: keras.Model) -> keras.Model:
    """The model in checkpoint ``path``, else (missing or unreadable) ``trained``."""
    if not path.exists():
        return trained
    try:
        return load_model(path)
    except Exception as exc:  # a torn zip: Keras raises ValueError, OSError or zipfile.BadZipFile
        warnings.warn(f"{path} is unreadable ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                      f"model.keras is the model as last trained instead", RunFileWarning, stacklevel=3)
        return trained


def learning_rate(tc, steps_per_epoch: int):
    """Adam's learning rate for TrainConfig ``tc``: a number, or a schedule over the run's steps."""
    if tc.lr_schedule == "constant":
        return tc.learning_rate
    if tc.lr_schedule == "cosine":
        # Step-based, so a resumed run continues the curve (the optimizer's step counter is restored).
        return keras.optimizers.schedules.CosineDecay(tc.learning_rate, decay_steps=tc.epochs * steps_per_epoch,
                                                      alpha=0.01)
    raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {tc.lr_schedule!r}")


def load_model(run_dir_or_file, compile: bool = True) -> keras.Model:
    """Load ``model.keras`` (or a run folder holding it) with the kit's losses and metrics."""
    path = Path(run_dir_or_file)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"no trained model at {path}; train one first "
                                "(livecell-kit train --out RUN_DIR) or pass model.keras")
    fix = "pass a model.keras written by livecell-kit train, or train again (livecell-kit train --out RUN_DIR)"
    _check_keras_archive(path, fix)
    try:
        return keras.saving.load_model(path, compile=compile)
    except (KeyError, TypeError, ValueError, OSError) as err:  # Keras' own messages name no file
        raise ValueError(f"{path} is not a model the kit can load ({type(err).__name__}: {err}); {fix}") from err


def check_segmentation_model(model: keras.Model, source) -> None:
    """ValueError naming ``source`` unless ``model`` maps grey images (N, H, W, 1) to per-pixel
    maps (N, H, W, C) of the same height and width, C = 1, 2 or 3 (semantic, semantic+border,
    cells), as the kit's U-Nets do."""
    try:
        inputs, outputs = tuple(model.input_shape), tuple(model.output_shape)
    except (AttributeError, TypeError, ValueError):  # several inputs/outputs, or never built
        inputs = outputs = None
    fits = (inputs is not None and len(inputs) == 4 and inputs[-1] in (1, None)
            and all(isinstance(d, int) or d is None for d in outputs) and len(outputs) == 4
            and outputs[-1] in (1, 2, 3) and all(o is None or i is None or o == i for i, o in zip(inputs[1:3], outputs[1:3])))
    if not fits:
        raise ValueError(f"{source} is not a segmentation model the kit can run: it maps "
                         f"{_shape_text(inputs)} to {_shape_text(outputs)}, but the kit needs a U-Net from grey "
                         f"images (N, H, W, 1) to per-pixel maps (N, H, W, 1, 2 or 3); pass a model.keras "
                         f"written by `livecell-kit train` (or its run folder)")


def _shape_text(shape) -> str:
    return "(several tensors)" if shape is None else "(" + ", ".join("N" if i == 0 else "?" if d is None else str(d)
                                                                     for i, d in enumerate(shape)) + ")"


def _check_keras_archive(path: Path, fix: str) -> None:
    """Refuse a ``.keras`` file that is not a zip holding a model's config.json (truncated, or not a model)."""
    if path.suffix != ".keras":
        return  # Keras names the formats it reads in its own error
    try:
        with zipfile.ZipFile(path) as archive:
            has_config = "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path} is not a Keras model file (not a readable .keras zip: {err}; "
                         f"it may be truncated); {fix}") from err
    if not has_config:
        raise ValueError(f"{path} is not a complete Keras model file: the zip has no config.json; {fix}")


def train(data_root, preset="quick", out_dir=None, epochs: int | None = None, verbose: int = 1,
          callbacks: Sequence[keras.callbacks.Callback] = (), restart: bool = False, **overrides) -> TrainResult:
    """Train a U-Net preset on ``data_root``'s train split, validating on its val split.

    data_root: LIVECell folder (real or :func:`livecell_kit.sample.make_sample`).
    preset: "quick", "seed", ... or a :class:`~livecell_kit.presets.Preset`;
        ``overrides`` replace its fields (``batch_size=4``, ``precision="float32"``...).
    out_dir: run folder (see the module docstring).  Rerunning the same call
        resumes an interrupted run; a finished run is loaded, not retrained.
    epochs: overrides the preset's epochs.
    callbacks: extra Keras callbacks, run after the kit's own.
    restart: start ``out_dir`` afresh: the files the kit wrote there (config, model, history,
        checkpoints, backup) are deleted first, others (e.g. metrics.json) are kept.
    Raises ValueError before anything is written when epochs, batch_size or steps_per_epoch
    is not a whole number >= 1, and :class:`~livecell_kit.train.lock.RunFolderBusy` when
    another ``train`` is running in ``out_dir``.
    """
    if out_dir is None:
        raise ValueError("train() needs out_dir, the run folder for checkpoints and the model")
    if epochs is not None:
        overrides["epochs"] = epochs
    preset = resolve(preset, **overrides)
    _check_counts(preset.train)
    check_loss_fits(preset.train.loss, preset.model.outputs)
    with run_lock(out_dir):
        if restart:
            kept = binding.clear_run(out_dir)
            if verbose:
                print(f"{out_dir}: --restart: the earlier run there is deleted" +
                      (f" (kept: {', '.join(p.name for p in kept)})" if kept else ""))
        return _train_locked(data_root, preset, out_dir, verbose, callbacks)


def _check_counts(tc) -> None:
    """ValueError naming the setting unless epochs, batch_size (and steps_per_epoch, if set) are ints >= 1."""
    for name, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size"), ("steps_per_epoch", None)):
        value = getattr(tc, name)
        if value is None and name == "steps_per_epoch":
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            how = f"pass {flag} 1 or more" if flag else f"set {name} to 1 or more, or None"
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}: {how}")


def _train_locked(data_root, preset: Preset, out_dir, verbose: int, callbacks) -> TrainResult:
    run = open_run(data_root, preset, out_dir, verbose)
    if run.finished:
        return finish_run(run)
    tc = preset.train
    keras.utils.set_random_seed(tc.seed)
    train_ds, val_ds, steps = preset_datasets(data_root, preset, progress=verbose > 0)
    with model_scope(run.precision):
        model = build_unet(preset.model, name=f"unet_{preset.name}")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate(tc, steps)), loss=get_loss(tc.loss),
                      metrics=make_metrics(), jit_compile=tc.jit_compile)
    model.fit(train_ds, epochs=int(tc.epochs), steps_per_epoch=steps, validation_data=val_ds,
              callbacks=run_callbacks(run.out_dir, tc.early_stopping_patience) + list(callbacks),
              verbose=verbose, shuffle=False)  # the tf.data pipeline shuffles itself
    return finish_run(run, model)


def reproduce_command(preset: str = "seed", data_dir: str = "~/livecell", out_dir: str = "runs/seed") -> str:
    """The shell commands that download LIVECell, train ``preset`` on it and evaluate the result.

    ``evaluate`` picks the test images with the run's own subset rule (the seed: the first
    512 in file order) and prints the seed's reported figures beside this run's.
    ``make reproduce-seed`` runs exactly these commands.
    """
    tc, dc = get_preset(preset).train, get_preset(preset).data
    return "\n".join([
        f"livecell-kit download --out {data_dir}",
        f"livecell-kit train --data {data_dir} --preset {preset} --out {out_dir}"
        f"   # {dc.subset} {dc.train_images} train / {dc.val_images} val images, {tc.epochs} epochs, "
        f"batch {tc.batch_size}, lr {tc.learning_rate:g}",
        f"livecell-kit evaluate --model {out_dir} --data {data_dir} --split test --images {dc.test_images} "
        f"--out {out_dir}/metrics.json",
    ])
