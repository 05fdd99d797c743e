"""Keras callbacks of a training run: checkpoints, resume, history files, prediction snapshots.

:func:`run_callbacks` gives the callbacks that make a run folder (see
:mod:`livecell_kit.train.run`) resumable after a kill at any instant::

    out_dir/history.json     per-epoch loss/metrics, train and val, merged across resumes
    out_dir/history.csv      the same, one row per epoch
    out_dir/checkpoints/     best.keras and last.keras, updated every epoch
    out_dir/backup/          the last two committed epochs: a killed run resumes here

Every file is written to a temporary name and renamed, the history before the backup
that commits its epoch (:mod:`livecell_kit.train.backup`).
"""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from livecell_kit.train.backup import RunCheckpoint, committed_epochs
from livecell_kit.train.history import best_val_loss


def run_callbacks(out_dir, early_stopping_patience: int | None = None) -> list[keras.callbacks.Callback]:
    """The callbacks that write and resume the run folder ``out_dir`` (pass them to ``model.fit``).

    early_stopping_patience: epochs without val-loss improvement before stopping, or None.
    A resumed run continues after its last committed epoch, and must beat the earlier
    epochs' best val_loss to replace checkpoints/best.keras.
    """
    out_dir = Path(out_dir)
    callbacks: list[keras.callbacks.Callback] = [RunCheckpoint(out_dir)]
    if early_stopping_patience is not None:
        prior_best = best_val_loss(out_dir, before_epoch=committed_epochs(out_dir))
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=early_stopping_patience,
                                                       baseline=prior_best))
    return callbacks


class PredictionSnapshots(keras.callbacks.Callback):
    """Predict a few fixed images at the end of every epoch: watch the network learn.

    images: sequence of (H, W) grey frames, 0..255, H and W multiples of ``2**depth``
        (crops keep this cheap: about a second per epoch on a CPU for two 256×256 crops).
    truths: optional (H, W) 0/1 masks of the same crops, kept for
        :func:`livecell_kit.figures.training_snapshots`' ground-truth column.
    After training, ``epochs`` lists the epoch numbers (1-based) and ``probabilities``
    one (N, H, W) float32 array per epoch.
    """

    def __init__(self, images, truths=None):
        super().__init__()
        self.images = np.stack([np.asarray(i) for i in images])[..., None]
        self.truths = None if truths is None else [np.asarray(t) for t in truths]
        self.epochs: list[int] = []
        self.probabilities: list[np.ndarray] = []

    def on_epoch_end(self, epoch, logs=None):
        out = self.model.predict(self.images, verbose=0)
        self.epochs.append(epoch + 1)
        self.probabilities.append(np.asarray(out[..., 0], np.float32))
