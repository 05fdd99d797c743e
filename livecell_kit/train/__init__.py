"""Training: U-Net presets on LIVECell, resumable, in a run folder.

* :mod:`~livecell_kit.train.precision` — number format and devices (``choose_precision``, ``model_scope``);
* :mod:`~livecell_kit.train.pipeline` — ``tf.data`` input: files → crops, augmentation, batches;
* :mod:`~livecell_kit.train.losses` — losses (``bce``, ``bce_dice``, ``weighted_bce``) and pixel metrics;
* :mod:`~livecell_kit.train.callbacks` — checkpoints, resume and history files of a run;
* :mod:`~livecell_kit.train.run` — the run folder and :func:`train`, all of the above in one call.
"""
from livecell_kit.train.callbacks import JsonHistory, PredictionSnapshots, read_history, run_callbacks
from livecell_kit.train.losses import (LOSSES, Dice, ForegroundIoU, PixelAccuracy, bce, bce_dice, dice_loss,
                                       get_loss, make_metrics, needs_weight_map, weighted_bce)
from livecell_kit.train.pipeline import (CACHE_LIMIT_BYTES, BorderWeights, crop_and_augment, preset_datasets,
                                         read_stack, split_files, training_dataset, validation_dataset)
from livecell_kit.train.precision import (PRECISIONS, choose_precision, choose_strategy, gpu_compute_capabilities,
                                          model_scope, read_cpu_flags)
from livecell_kit.train.run import (RunFolder, TrainResult, finish_run, is_finished, learning_rate, load_model,
                                    open_run, reproduce_command, train)

__all__ = [
    "JsonHistory", "PredictionSnapshots", "read_history", "run_callbacks",
    "LOSSES", "Dice", "ForegroundIoU", "PixelAccuracy", "bce", "bce_dice", "dice_loss", "get_loss",
    "make_metrics", "needs_weight_map", "weighted_bce",
    "CACHE_LIMIT_BYTES", "BorderWeights", "crop_and_augment", "preset_datasets", "read_stack", "split_files",
    "training_dataset", "validation_dataset",
    "PRECISIONS", "choose_precision", "choose_strategy", "gpu_compute_capabilities", "model_scope",
    "read_cpu_flags",
    "RunFolder", "TrainResult", "finish_run", "is_finished", "learning_rate", "load_model", "open_run",
    "reproduce_command", "train",
]
