"""Training: U-Net presets on LIVECell, resumable, in a run folder.

* :mod:`~livecell_kit.train.precision` — number format and devices (``choose_precision``, ``model_scope``);
* :mod:`~livecell_kit.train.pipeline` — ``tf.data`` input: files → crops, augmentation, batches, one
  function per step (``preset_files``, ``read_frames``, ``with_seeds``) and all of them in one call;
* :mod:`~livecell_kit.train.augment` — the random crops and augmentation of each training frame;
* :mod:`~livecell_kit.train.losses` — losses (``bce``, ``bce_dice``, ``weighted_bce``, the instance
  head's ``cells_loss``) and pixel metrics;
* :mod:`~livecell_kit.train.history` — history.json and history.csv of a run;
* :mod:`~livecell_kit.train.backup` — crash-safe checkpoints and resume state (one rename commits an epoch);
* :mod:`~livecell_kit.train.lock` — one ``train`` at a time per run folder;
* :mod:`~livecell_kit.train.binding` — a run folder bound to its data (fingerprint, ``--restart``);
* :mod:`~livecell_kit.train.callbacks` — the callbacks of a run, and prediction snapshots;
* :mod:`~livecell_kit.train.run` — the run folder and :func:`train`, all of the above in one call.
"""
from livecell_kit.train.augment import Augmentation, crop_and_augment, split_xy, vary_intensity, zoomed_crop
from livecell_kit.train.backup import RunCheckpoint, RunFileWarning
from livecell_kit.train.callbacks import PredictionSnapshots, run_callbacks
from livecell_kit.train.history import read_history
from livecell_kit.train.lock import RunFolderBusy
from livecell_kit.train.losses import (CELLS_LOSSES, LOSSES, Dice, ForegroundIoU, PixelAccuracy, bce, bce_dice,
                                       cells_l1_loss, cells_loss, check_loss_fits, dice_loss, get_loss,
                                       make_metrics, needs_weight_map, weighted_bce)
from livecell_kit.train.pipeline import (CACHE_LIMIT_BYTES, CELL_TARGET_LEVELS, BorderWeights, preset_datasets,
                                         preset_files, read_frames, read_stack, split_files, training_dataset,
                                         validation_dataset, with_seeds)
from livecell_kit.train.precision import (PRECISIONS, choose_precision, choose_strategy, gpu_compute_capabilities,
                                          model_scope, read_cpu_flags)
from livecell_kit.train.run import (RunFolder, TrainResult, check_segmentation_model, finish_run, is_finished, learning_rate, load_model,
                                    open_run, reproduce_command, train)

__all__ = [
    "RunCheckpoint", "RunFileWarning", "PredictionSnapshots", "read_history", "run_callbacks", "RunFolderBusy",
    "CELLS_LOSSES", "LOSSES", "Dice", "ForegroundIoU", "PixelAccuracy", "bce", "bce_dice", "cells_l1_loss",
    "cells_loss", "check_loss_fits", "dice_loss", "get_loss",
    "make_metrics", "needs_weight_map", "weighted_bce",
    "Augmentation", "crop_and_augment", "split_xy", "vary_intensity", "zoomed_crop",
    "CACHE_LIMIT_BYTES", "CELL_TARGET_LEVELS", "BorderWeights", "preset_datasets", "preset_files", "read_frames",
    "read_stack", "split_files", "training_dataset", "validation_dataset", "with_seeds",
    "PRECISIONS", "choose_precision", "choose_strategy", "gpu_compute_capabilities", "model_scope",
    "read_cpu_flags",
    "RunFolder", "TrainResult", "check_segmentation_model", "finish_run", "is_finished", "learning_rate", "load_model", "open_run",
    "reproduce_command", "train",
]
