"""Every named setting of the kit, in one place.

A *preset* bundles the U-Net's architecture (:class:`ModelConfig`), how it is
trained (:class:`TrainConfig`) and which data it sees (:class:`DataConfig`).

* ``seed``  — the student project the kit grew out of (jaimec00/CSC452_Project:
  ``model.py`` ``setup_model``, ``data_loader.py``, ``train_colab.ipynb``), reproduced
  faithfully:

  - data: the **first** 1024 / 256 / 512 image ids in file order of the official
    train / val / test JSONs (``COCO.getImgIds()[:n]``; not stratified, not random);
    full 520×704 frames divided by 255; no augmentation.
  - model: U-Net with 16-32-64 filters and a 128-filter bottleneck, two 3×3 ReLU
    convolutions per level ("same" padding), 2×2 max pooling, ``Conv2DTranspose``
    (kernel 2, stride 2, linear) up-sampling, **no** batch normalisation, no
    dropout, Keras' default glorot-uniform initialisation, 1×1 sigmoid output
    (481,745 weights).
  - training: Adam at 5e-5, binary cross-entropy, 50 epochs, batch 32, no callbacks.
  - metric: Keras ``binary_accuracy`` (``p > 0.5``) and BCE over all pixels of the
    512 test images: it reported **92.19 %** and **0.2043**.

  Deviations, both forced by LIVECell's own files and neither touching the test
  split: a train image that is also in the val JSON (LIVECell issue #26) is skipped
  before the first 1024 are counted, and a file listed twice keeps its first record
  (see :mod:`livecell_kit.data`).  The kit's checkpoints, history and resume
  callbacks do not change the training mathematics.
* ``kit``   — the kit's better settings at the seed's scale (a GPU job): stratified
  subset, batch-normalised U-Net with 32 base filters and He initialisation,
  augmentation, BCE + Dice, cosine learning-rate decay, early stopping.
* ``quick`` — a small, batch-normalised U-Net trained on random crops, sized to
  learn the bundled sample data set on a laptop CPU; it asks for the sample's whole
  splits (32 / 16 / 16 images), which on LIVECell is a stratified draw of as many.
* ``cells`` — ``quick``'s size with the instance head: besides "cell / not cell" the
  U-Net predicts each cell's centre and boundary distance maps, from which a seeded
  watershed splits touching cells; ``kit-cells`` — the same at ``kit``'s scale (GPU);
  ``cells-border`` — the same network predicting a touching-border channel instead of
  the distance maps, to compare the two ways (notebook 06's experiment).
* ``borders`` — ``quick`` with the U-Net paper's border-weighted BCE
  (Ronneberger et al. 2015, eq. 2): background pixels in the narrow gaps between
  cells weigh up to 1 + w0 = 11 times more, to teach the network to keep
  touching cells apart.

The settings live in four files of this folder, all importable from here
(``from livecell_kit import presets; presets.CELL_SPLITTING``):

* :mod:`~livecell_kit.presets.configs` — what a preset holds (:class:`ModelConfig`,
  :class:`TrainConfig`, :class:`DataConfig`) and the training details every preset
  shares (batch normalisation's momentum, the augmentation ranges, the RAM cache limit);
* :mod:`~livecell_kit.presets.named` — the presets above and :func:`get_preset`;
* :mod:`~livecell_kit.presets.inference` — after training: splitting the output into
  cells, the classical baseline, tiling big frames, the export and the shipped model;
* :mod:`~livecell_kit.presets.session` — the notebook session: Binder's memory, idle-kernel
  culling, the kernel's malloc settings.

Students read these files; change a preset with :func:`get_preset` overrides,
e.g. ``get_preset("quick", epochs=5, batch_size=4)``.
"""
from livecell_kit.presets.configs import (AUGMENTATION, BATCH_NORM_MOMENTUM, CACHE_LIMIT_BYTES,
                                          CELLS_DISTANCE_WEIGHTS, Augmentation, DataConfig, ModelConfig, Preset,
                                          TrainConfig)
from livecell_kit.presets.inference import (AUTO_TILE, AUTO_TILE_PIXELS, CELL_SPLITTING, EXPORT, OTSU_BASELINE,
                                            OVERLAY_STRIP_ROWS, PREDICT_BATCHES, PRETRAINED_MODEL,
                                            SEMANTIC_WATERSHED, SPLIT_TILE, SPLIT_TILE_MARGIN, SPLIT_TILE_PIXELS,
                                            STREAM_PENDING_PIXELS, THRESHOLD_SWEEP, TILE_OVERLAP, CellSplitting, ExportConfig,
                                            OtsuBaseline, PredictBatches, SemanticWatershed, ThresholdSweepRange)
from livecell_kit.presets.named import PRESETS, SEED_REPORTED, get_preset, override, resolve
from livecell_kit.presets.session import (BINDER_MEMORY_MB, KERNEL_CULL_IDLE_S, KERNEL_CULL_INTERVAL_S,
                                          KERNEL_MALLOC_ARENAS, KERNEL_MALLOC_MMAP_THRESHOLD, OTHER_KERNELS_WARN_MB)

__all__ = [
    "BINDER_MEMORY_MB", "KERNEL_CULL_IDLE_S", "KERNEL_CULL_INTERVAL_S", "KERNEL_MALLOC_ARENAS",
    "KERNEL_MALLOC_MMAP_THRESHOLD", "OTHER_KERNELS_WARN_MB",
    "AUGMENTATION", "AUTO_TILE", "AUTO_TILE_PIXELS", "BATCH_NORM_MOMENTUM", "CACHE_LIMIT_BYTES", "CELLS_DISTANCE_WEIGHTS",
    "CELL_SPLITTING", "EXPORT", "OTSU_BASELINE", "OVERLAY_STRIP_ROWS", "PREDICT_BATCHES", "PRESETS",
    "PRETRAINED_MODEL", "SEED_REPORTED", "SEMANTIC_WATERSHED", "SPLIT_TILE", "SPLIT_TILE_MARGIN", "SPLIT_TILE_PIXELS",
    "STREAM_PENDING_PIXELS", "THRESHOLD_SWEEP", "TILE_OVERLAP", "Augmentation", "CellSplitting", "DataConfig", "ExportConfig",
    "ModelConfig", "OtsuBaseline", "PredictBatches", "Preset", "SemanticWatershed", "ThresholdSweepRange", "TrainConfig", "get_preset", "override", "resolve",
]
