"""Crash-safe resume state of a run folder: one rename commits an epoch.

:class:`RunCheckpoint` replaces Keras' ``BackupAndRestore`` + ``ModelCheckpoint`` +
``CSVLogger``, which write their files in place (a kill mid-write leaves a torn
``latest.weights.h5`` or an empty ``training_metadata.json`` that every rerun trips
over) and save the backup before the history.  Files it writes::

    out_dir/history.json, history.csv      one row per epoch (:mod:`~livecell_kit.train.history`)
    out_dir/backup/epoch-0003.weights.h5   weights and optimizer state after 3 finished epochs
                                           (this one and the one before are kept)
    out_dir/backup/best-0003.keras         for a moment: the improved model of epoch 3
    out_dir/checkpoints/best.keras         lowest val_loss so far;  last.keras: the latest epoch

At the end of epoch ``e`` it writes, each file to a temporary name then renamed:

1. the epoch's row in history.json and history.csv;
2. if val_loss improved, the model to backup/best-NNNN.keras (NNNN = e + 1);
3. backup/epoch-NNNN.weights.h5 — **this rename commits the epoch**;
4. backup/best-NNNN.keras onto checkpoints/best.keras, then last.keras; older generations go.

A kill before step 3 leaves the epoch uncommitted: the rerun trains it again and
replaces its history row.  A kill after step 3 is completed by the rerun (step 4
rolled forward).  So every epoch appears once, whenever the kill came.  A
generation that cannot be read (a disk fault) falls back to the one before.
"""
from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import h5py
import keras

from livecell_kit import atomic
from livecell_kit.train.history import best_val_loss, history_rows, keep_epochs_before, read_history, write_history

BACKUP_DIR = "backup"
CHECKPOINT_DIR = "checkpoints"
_GENERATION = re.compile(r"epoch-(\d+)\.weights\.h5")
_BEST_CANDIDATE = re.compile(r"best-(\d+)\.keras")
GENERATIONS_KEPT = 2


class RunFileWarning(UserWarning):
    """A run file could not be read and an older one is used instead."""


def _numbered(folder: Path, pattern: re.Pattern) -> list[tuple[int, Path]]:
    """(number, path) of the files in ``folder`` whose whole name matches ``pattern``, newest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]
    return sorted(found, reverse=True)


def generations(out_dir) -> list[tuple[int, Path]]:
    """The committed backups of a run: (epochs finished, weights file), newest first."""
    return _numbered(Path(out_dir) / BACKUP_DIR, _GENERATION)


def _unresumable(backup: Path, what: str) -> str:
    return (f"cannot resume the run in {backup.parent}: {what}. Delete the folder {backup} and rerun the same "
            f"command to train this run again from epoch 0 (or choose a new --out folder)")


def committed_epochs(out_dir) -> int:
    """Epochs the run's newest backup vouches for (0: none), without reading the weights."""
    found = generations(out_dir)
    return found[0][0] if found else 0


def _load_weights(model: keras.Model, path: Path) -> None:
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its variables must exist to be restored
    model.load_weights(path)


def restore(model: keras.Model, out_dir) -> int:
    """Load the newest readable backup of ``out_dir`` into ``model``; returns the epochs it finished (0: none).

    An unreadable generation is skipped with a :class:`RunFileWarning` naming it; ValueError
    (naming the files and the fix) when backups exist and none can be read.
    """
    backup = Path(out_dir) / BACKUP_DIR
    failures = []
    for epochs, path in generations(out_dir):
        try:
            _load_weights(model, path)
        except Exception as exc:  # h5py raises OSError, Keras ValueError/KeyError for a torn file
            failures.append(f"{path.name} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
            continue
        if failures:
            warnings.warn(f"unreadable backup {', '.join(failures)} in {backup}; resuming from {path.name} "
                          f"instead (after epoch {epochs})", RunFileWarning, stacklevel=2)
        return epochs
    if failures:
        raise ValueError(_unresumable(backup, "its backup weights are unreadable: " + ", ".join(failures)))
    return 0


@contextlib.contextmanager
def keras_file(path: Path, suffix: str) -> Iterator[Path]:
    """:func:`livecell_kit.atomic.atomic_path` for a Keras writer that cleans up after a failed write.

    Keras does not close its HDF5 files when a write fails (a full disk): h5py's flush then
    fails inside ``__dealloc__`` (tracebacks the CLI cannot catch), and a file left open
    crashes the interpreter at exit (a segmentation fault, exit 139).  On an error the HDF5
    files opened inside the block are closed, and h5py's failing ``__dealloc__`` is kept quiet
    while the write unwinds: the error itself still propagates.
    """
    before = _open_h5_files()
    outer_hook = sys.unraisablehook
    sys.unraisablehook = functools.partial(_quiet_h5py_dealloc, outer_hook)
    written = None
    try:
        with atomic.atomic_path(path, suffix=suffix) as tmp:
            written = tmp
            yield tmp
    except BaseException:
        for key, file_id in _open_h5_files().items():
            if key not in before:
                _close_h5_file(file_id, discard=str(written))
        raise
    finally:
        sys.unraisablehook = outer_hook


def _open_h5_files() -> dict:
    """{HDF5 identifier: FileID} of every HDF5 file open in this process."""
    return {fid.id: fid for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)}


def _quiet_h5py_dealloc(outer_hook, unraisable) -> None:
    """sys.unraisablehook that drops h5py's failed closes (reported by the write itself) and passes on the rest."""
    if "h5py" in repr(unraisable.object) or "ObjectID" in repr(unraisable.object):
        return
    outer_hook(unraisable)


def _close_h5_file(file_id, discard: str) -> None:
    """Close HDF5 file ``file_id`` and everything open in it, ignoring errors.

    When it is the temporary file ``discard`` its contents are thrown away first (truncated to
    0 bytes): on a full disk that frees the space HDF5's closing flush needs.
    """
    with contextlib.suppress(Exception):
        if file_id.name in (discard, os.fsencode(discard)):
            os.ftruncate(file_id.get_vfd_handle(), 0)
    for kinds in (~h5py.h5f.OBJ_FILE, h5py.h5f.OBJ_FILE):
        with contextlib.suppress(Exception):
            for obj in h5py.h5f.get_obj_ids(file_id, kinds):
                with contextlib.suppress(Exception):
                    while obj.valid:
                        h5py.h5i.dec_ref(obj)


class _WeightsBuffer(io.BytesIO):
    """An in-memory file that Keras' ``save_weights`` accepts (it checks the name's ending)."""

    def __str__(self) -> str:
        return "in-memory.weights.h5"


def save_weights(model: keras.Model, path: Path) -> None:
    """Save ``model``'s weights and optimizer state as a .weights.h5 file at ``path``, atomically.

    HDF5 writes into memory and Python writes the bytes: a full disk is then a plain OSError,
    never a failed HDF5 write (h5py cannot close such a file, and crashes at exit).
    """
    buffer = _WeightsBuffer()
    model.save_weights(buffer)
    atomic.write_bytes(path, buffer.getvalue())


def save_model(model: keras.Model, path: Path) -> None:
    """Save ``model`` as a .keras file at ``path``, atomically."""
    with keras_file(path, suffix=".keras") as tmp:  # Keras insists on the .keras suffix
        model.save(tmp)


def remove_temporary_files(out_dir) -> None:
    """Delete temporary files a killed writer left in the run folder (``.<name>.<random>.tmp...``)."""
    out_dir = Path(out_dir)
    for folder in (out_dir, out_dir / BACKUP_DIR, out_dir / CHECKPOINT_DIR):
        if folder.is_dir():
            for p in folder.glob(".*.tmp*"):
                p.unlink(missing_ok=True)


class RunCheckpoint(keras.callbacks.Callback):
    """Resume, history, checkpoints and backup of the run folder ``out_dir`` (see the module docstring).

    At the start of ``fit`` it restores the newest committed epoch (weights, optimizer
    state, epoch counter), drops history rows of uncommitted epochs and completes an
    interrupted commit.  A resumed run must beat the committed epochs' best val_loss to
    replace checkpoints/best.keras.
    """

    def __init__(self, out_dir):
        super().__init__()
        self.out_dir = Path(out_dir)
        self.backup = self.out_dir / BACKUP_DIR
        self.checkpoints = self.out_dir / CHECKPOINT_DIR
        self.best: float | None = None

    def on_train_begin(self, logs=None):
        remove_temporary_files(self.out_dir)
        done = restore(self.model, self.out_dir)
        # The epoch counter fit() starts from; Keras' own BackupAndRestore sets the same attribute.
        self.model._initial_epoch = done
        keep_epochs_before(self.out_dir, done)
        for number, path in _numbered(self.backup, _BEST_CANDIDATE):
            if number == done:  # committed, but not yet moved into place: finish step 4
                self.checkpoints.mkdir(parents=True, exist_ok=True)
                path.replace(self.checkpoints / "best.keras")
            else:  # an uncommitted epoch's (trained again), or an older leftover
                path.unlink()
        if done == 0:  # a fresh start: checkpoints of an earlier, abandoned attempt are not this run's
            for name in ("best.keras", "last.keras"):
                (self.checkpoints / name).unlink(missing_ok=True)
        self.best = best_val_loss(self.out_dir, before_epoch=done)

    def on_epoch_end(self, epoch, logs=None):
        try:
            self._save_epoch(epoch, dict(logs or {}))
        except OSError as exc:  # a full disk, a lost mount: name the run and the way back
            raise OSError(exc.errno, f"could not save epoch {epoch} of the run in {self.out_dir} ({exc}). Free "
                          f"disk space (or fix the folder) and rerun the same command: it resumes after the "
                          f"last saved epoch") from exc

    def _save_epoch(self, epoch: int, logs: dict) -> None:
        finished = epoch + 1
        rows = {e: r for e, r in history_rows(read_history(self.out_dir)).items() if e < epoch}
        rows[epoch] = {k: float(v) for k, v in logs.items()}
        rows[epoch]["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        write_history(self.out_dir, rows)                                            # step 1
        val_loss = logs.get("val_loss")
        improved = val_loss is not None and val_loss == val_loss and (self.best is None or val_loss < self.best)
        candidate = self.backup / f"best-{finished:04d}.keras"
        if improved:
            save_model(self.model, candidate)                                       # step 2
        save_weights(self.model, self.backup / f"epoch-{finished:04d}.weights.h5")  # step 3: commit
        if improved:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
            candidate.replace(self.checkpoints / "best.keras")                       # step 4
            self.best = float(val_loss)
        save_model(self.model, self.checkpoints / "last.keras")
        for _, old in generations(self.out_dir)[GENERATIONS_KEPT:]:
            old.unlink()
