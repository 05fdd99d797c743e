"""Settings used after training: cells from a model's output, the classical baseline, big frames,
the export, and the model shipped with the package."""
from __future__ import annotations

from dataclasses import dataclass

@dataclass(frozen=True)
class ExportConfig:
    """How ``livecell-kit export`` writes a BioImage Model Zoo package (:mod:`livecell_kit.export`).

    onnx_opset: ONNX operator set of the exported graph; 15-17 run in deepImageJ's and
        current ONNX Runtime releases (17 has every operator the U-Net uses).
    test_side: height and width in pixels of the package's test image (a synthetic frame
        the kit draws), rounded down to the model's size multiple; small keeps the
        package's test quick in every tool.
    test_seed: random seed of that frame, so two exports of one model hold the same test tensors.
    """

    onnx_opset: int = 17
    test_side: int = 256
    test_seed: int = 23


EXPORT = ExportConfig()


# --- splitting a cells model's output into cells (livecell_kit.instances) -------------------------

@dataclass(frozen=True)
class CellSplitting:
    """How :func:`livecell_kit.instances.split_cells` turns a model's output into cells.

    foreground_threshold: a pixel is inside a cell when its foreground probability is at
        least this (all three kinds of model).
    centre_threshold, boundary_threshold: seeds are the pixels whose smoothed centre
        distance and boundary distance (both 0 at a cell's middle, 1 at its outline) are
        below these (models with distance maps only).
    smoothing_sigma: Gaussian smoothing of the two distance maps before seeding, in pixels.
    min_size: cells smaller than this many pixels are dropped.
    scoring: each cell's confidence for COCO AP: ``"foreground"`` (its mean foreground
        probability), ``"foreground_seed"`` (that times 1 - its lowest centre distance:
        how clearly it has a centre) or ``"foreground_shape"`` (that times how well the
        predicted boundary distance matches the found cell's own shape).
    Chosen on the sample's val split only (``bench/cells_tuning.py`` prints the grid).
    """

    foreground_threshold: float = 0.5
    centre_threshold: float = 0.5
    boundary_threshold: float = 0.5
    smoothing_sigma: float = 1.6
    min_size: int = 20
    scoring: str = "foreground"


#: Chosen by bench/cells_tuning.py for the ``cells`` preset trained on the seed-0 sample (generator
#: v4), on its val split (16 frames): AP 0.50 there, against 0.42 at the defaults above (torch-em's).
#: No smoothing: the trained maps are smooth already, and blurring merged small neighbours.
CELL_SPLITTING = CellSplitting(foreground_threshold=0.6, centre_threshold=0.5, boundary_threshold=0.5,
                               smoothing_sigma=0.0, min_size=20, scoring="foreground_shape")



@dataclass(frozen=True)
class SemanticWatershed:
    """How :func:`livecell_kit.instances.watershed_split` splits touching cells of a one-channel
    (cell / not cell) model's foreground, which has no distance maps to seed from.

    peak_height: markers are the h-maxima of this height (px) of the distance to background:
        two bumps closer in height than this are one cell.
    smoothing_sigma: Gaussian smoothing (px) of that distance before the maxima are found,
        so a ragged outline does not seed a cell of its own.
    """

    peak_height: float = 2.0
    smoothing_sigma: float = 1.0


SEMANTIC_WATERSHED = SemanticWatershed()


@dataclass(frozen=True)
class ThresholdSweepRange:
    """The probability thresholds :class:`livecell_kit.evaluate.ThresholdSweep` tries.

    bins: equal bins of predicted probability on [0, 1]; their edges are the candidates.
    lo, hi: the lowest and highest candidate threshold.
    """

    bins: int = 100
    lo: float = 0.05
    hi: float = 0.95


THRESHOLD_SWEEP = ThresholdSweepRange()


# --- the classical baseline (livecell_kit.evaluate.baselines) -------------------------------------

@dataclass(frozen=True)
class OtsuBaseline:
    """Settings of :func:`livecell_kit.evaluate.otsu_segment`, Otsu's threshold on local texture.

    window: side (px) of the box the local standard deviation is taken in.
    sigma: Gaussian blur (px) before it, against camera noise.
    opening, closing: sides (px) of the square structuring elements that remove specks and
        bridge gaps.
    min_size: components smaller than this many pixels are dropped.
    """

    window: int = 7
    sigma: float = 1.0
    opening: int = 3
    closing: int = 5
    min_size: int = 30


OTSU_BASELINE = OtsuBaseline()


# --- big frames -----------------------------------------------------------------------------------
#: Outputs with more pixels than this are split into cells tile by tile
#: (:func:`livecell_kit.instances.split_cells_tiled`): a seeded watershed over a whole
#: 4000×4000 output takes ~0.6 GB on top of the output, tiles of ``SPLIT_TILE`` px ~50 MB each.
SPLIT_TILE_PIXELS = 2048 * 2048
#: Side of the tiles (px) and the context each sees on every side (px): a cell belongs to the
#: tile holding its centroid and is found whole when it is smaller than the margin.
SPLIT_TILE = 1024
SPLIT_TILE_MARGIN = 96
#: Image pixels :func:`livecell_kit.predict.stream_cells` holds in flight at most (a frame alone
#: always goes): ~23 frames of 520×704, while 4000×4000 frames go one at a time (each holds
#: ~0.3 GB: image, 3-channel output, labels).
STREAM_PENDING_PIXELS = 2 * 2048 * 2048
#: Images with more pixels than this are predicted tile by tile (:mod:`livecell_kit.predict.core`;
#: memory, not accuracy), in tiles of ``AUTO_TILE`` px unless a tile size is given.
AUTO_TILE_PIXELS = 2048 * 2048
AUTO_TILE = 1024
#: Pixels neighbouring prediction tiles share, blended with a raised-cosine window so tile
#: seams do not show.
TILE_OVERLAP = 32


@dataclass(frozen=True)
class PredictBatches:
    """Images per forward pass of the model (:mod:`livecell_kit.predict.core`).

    tiles: tiles (or same-size images) per pass of ``predict_image`` / ``predict_batch``.
    frames_gpu, frames_cpu: whole frames per pass when the caller names none; a CPU is
        memory-bound, where bigger batches were slower.
    passes_cpu: forward passes run at once on a CPU (threads; TensorFlow releases the GIL).
        One pass leaves cores idle between its operations and a second fills them. A GPU runs
        one pass at a time.
    """

    tiles: int = 4
    frames_gpu: int = 8
    frames_cpu: int = 1
    passes_cpu: int = 2  # 2 cores, real frames: 1.2-1.25x the frames/s of one pass (bench/throughput.py)


PREDICT_BATCHES = PredictBatches()
#: Rows of a frame's overlay drawn at a time by ``predict`` (memory of big frames).
OVERLAY_STRIP_ROWS = 1024


# --- the model shipped with the package (livecell_kit.pretrained) -----------------------------------
#: What ``predict`` and ``measure`` use when no ``--model`` is given, and notebooks 05/06 on Colab
#: instead of retraining: a ``cells`` model trained on the seed-0 sample only (no LIVECell pixels).
PRETRAINED_MODEL = "cells-sample"
