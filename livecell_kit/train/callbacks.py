"""Keras callbacks of a training run: checkpoints, resume, history files, prediction snapshots.

:func:`run_callbacks` gives the callbacks that make a run folder (see
:mod:`livecell_kit.train.run`) resumable after a kill::

    out_dir/history.json     per-epoch loss/metrics, train and val, merged across resumes
    out_dir/history.csv      the same, one row per epoch (CSVLogger)
    out_dir/checkpoints/     best.keras and last.keras, updated every epoch
    out_dir/backup/          BackupAndRestore state: a killed run resumes here
"""
from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from livecell_kit import atomic


def read_history(out_dir) -> dict:
    """history.json of a run: {"epoch": [0, 1, ...], "loss": [...], "val_iou": [...], ...}."""
    path = Path(out_dir) / "history.json"
    if not path.exists():
        return {"epoch": []}
    with open(path) as f:
        return json.load(f)


class JsonHistory(keras.callbacks.Callback):
    """Writes out_dir/history.json after every epoch, keeping earlier runs' epochs.

    An epoch trained again after a resume replaces its old entry, so every
    epoch appears once, in order.
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path = Path(path)

    def on_epoch_end(self, epoch, logs=None):
        old = read_history(self.path.parent)
        rows = {e: {k: v[i] for k, v in old.items() if k != "epoch" and i < len(v)}
                for i, e in enumerate(old.get("epoch", []))}
        rows[int(epoch)] = {k: float(v) for k, v in (logs or {}).items()}
        rows[int(epoch)]["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        epochs = sorted(rows)
        keys = sorted({k for r in rows.values() for k in r})
        hist = {"epoch": epochs, **{k: [rows[e].get(k, float("nan")) for e in epochs] for k in keys}}
        atomic.write_json(self.path, hist)


def best_val_loss(out_dir) -> float | None:
    """Lowest val_loss in the run's history.json (earlier, interrupted sessions), or None."""
    return min((v for v in read_history(out_dir).get("val_loss", []) if v == v), default=None)


def run_callbacks(out_dir, early_stopping_patience: int | None = None) -> list[keras.callbacks.Callback]:
    """The callbacks that write and resume the run folder ``out_dir`` (pass them to ``model.fit``).

    early_stopping_patience: epochs without val-loss improvement before stopping, or None.
    A resumed run continues at the epoch it stopped, and must beat its earlier best
    val_loss to replace checkpoints/best.keras.
    """
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    prior_best = best_val_loss(out_dir)
    callbacks = [
        # Restores weights, optimizer state and the epoch counter after a kill;
        # kept until finish_run marks the run finished (not deleted by fit itself).
        keras.callbacks.BackupAndRestore(str(out_dir / "backup"), delete_checkpoint=False),
        # initial_value_threshold: a resumed run must beat the earlier runs' best, not start afresh.
        keras.callbacks.ModelCheckpoint(str(ckpt / "best.keras"), monitor="val_loss", save_best_only=True,
                                        initial_value_threshold=prior_best),
        keras.callbacks.ModelCheckpoint(str(ckpt / "last.keras")),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
        JsonHistory(out_dir / "history.json"),
    ]
    if early_stopping_patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=early_stopping_patience,
                                                       baseline=prior_best))
    return callbacks


class PredictionSnapshots(keras.callbacks.Callback):
    """Predict a few fixed images at the end of every epoch: watch the network learn.

    images: sequence of (H, W) grey frames, 0..255, H and W multiples of ``2**depth``
        (crops keep this cheap: about a second per epoch on a CPU for two 256×256 crops).
    After training, ``epochs`` lists the epoch numbers (1-based) and ``probabilities``
    one (N, H, W) float32 array per epoch.
    """

    def __init__(self, images):
        super().__init__()
        self.images = np.stack([np.asarray(i) for i in images])[..., None]
        self.epochs: list[int] = []
        self.probabilities: list[np.ndarray] = []

    def on_epoch_end(self, epoch, logs=None):
        out = self.model.predict(self.images, verbose=0)
        self.epochs.append(epoch + 1)
        self.probabilities.append(np.asarray(out[..., 0], np.float32))
