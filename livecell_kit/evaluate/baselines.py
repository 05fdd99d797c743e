"""A classical baseline for the U-Net: Otsu's threshold on local texture.

:func:`evaluate.evaluate_model` scores it next to the model (and next to
"all background"), so a student sees what a few lines of image processing
already reach.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from livecell_kit.instances import remove_small_objects
from livecell_kit.presets import OTSU_BASELINE, OtsuBaseline


def local_std(image: np.ndarray, window: int = OTSU_BASELINE.window,
              sigma: float = OTSU_BASELINE.sigma) -> np.ndarray:
    """Local standard deviation (grey levels) of ``image`` in a ``window`` × ``window`` box,
    after a Gaussian blur of ``sigma`` px that suppresses camera noise; float32 (H, W)."""
    img = ndimage.gaussian_filter(np.asarray(image, dtype=np.float32), sigma)
    mean = ndimage.uniform_filter(img, window)
    mean_sq = ndimage.uniform_filter(img * img, window)
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0))


def otsu_segment(image: np.ndarray, settings: OtsuBaseline = OTSU_BASELINE) -> np.ndarray:
    """Classical cell/background segmentation of a phase-contrast image.

    Phase-contrast cells are both darker *and* brighter than the flat grey
    background (dark bodies, bright halos), so thresholding raw intensity
    finds only half of each cell.  What cells have and background lacks is
    *texture*, so we threshold the local standard deviation:

    1. Gaussian blur (``sigma`` px) to suppress camera noise;
    2. local standard deviation in a ``window`` × ``window`` box (:func:`local_std`);
    3. Otsu's threshold on that texture image (``skimage.filters.threshold_otsu``);
    4. clean-up: binary opening (``opening`` px square) removes specks, closing
       (``closing`` px) bridges gaps, fill holes (cell interiors can be flat), erosion by
       the window's half-width (the window widened every cell by that much),
       remove components smaller than ``min_size`` px.

    image: (H, W) uint8 or float.  settings: the sizes above
    (:data:`~livecell_kit.presets.OTSU_BASELINE`).  Returns a bool mask (H, W), True = cell;
    an image without texture (constant) has no cell.
    """
    if np.ndim(image) != 2:
        raise ValueError(f"otsu_segment expects a 2-D grey image, got shape {np.shape(image)}")
    s = settings
    texture = local_std(image, s.window, s.sigma)
    mask = texture > threshold_otsu(texture)
    mask = ndimage.binary_opening(mask, structure=np.ones((s.opening, s.opening)))
    mask = ndimage.binary_closing(mask, structure=np.ones((s.closing, s.closing)), border_value=0)
    mask = ndimage.binary_fill_holes(mask)
    # a window straddling a cell edge sees the edge's contrast, so the texture
    # mask is the cells dilated by the window's half-width: erode that back
    mask = ndimage.binary_erosion(mask, structure=np.ones((s.window, s.window)), border_value=1)
    return remove_small_objects(mask, s.min_size)
