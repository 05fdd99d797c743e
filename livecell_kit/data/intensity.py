"""Grey values of any pixel type to the kit's uint8 (0..255) — the one intensity rule.

Decided per frame by :func:`to_uint8` (:mod:`livecell_kit.data.images` applies it to
every frame it reads):

* uint8: kept as is.
* integer images (e.g. uint16) whose values all lie in 0..255: kept as is, so an 8-bit
  image saved as 16-bit keeps its grey values (a very dim 16-bit image therefore stays
  dim — no guessing at the camera's range).
* other integer and all float images: linear stretch of the :data:`STRETCH_PERCENTILES`
  (0.1th..99.9th percentile of the finite values) to 0..255, clipped; NaN and -inf
  count as low (0), +inf as high (255).  A flat image (both percentiles equal) gives 0
  at that value and 255 above.
* bool (1-bit): False/True -> 0/255.
"""
from __future__ import annotations

import numpy as np

STRETCH_PERCENTILES = (0.1, 99.9)


def to_uint8(grey: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Map a grey (H, W) array of any real dtype to uint8 by the module's rules.

    Returns ``(uint8 (H, W), scaling)``; scaling describes the rule applied, None if
    the values were kept.  Raises TypeError for non-numeric arrays (e.g. complex).
    """
    a = np.asarray(grey)
    if a.dtype == np.uint8:
        return a, None
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255, "bool -> uint8: False/True -> 0/255"
    if np.issubdtype(a.dtype, np.integer) and (a.size == 0 or (a.min() >= 0 and a.max() <= 255)):
        return a.astype(np.uint8), None
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"cannot map pixel type {a.dtype} to grey values")
    x = a.astype(np.float64)
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        return np.zeros(a.shape, np.uint8), f"{a.dtype} -> uint8: no finite values, all 0"
    lo, hi = (float(v) for v in np.percentile(finite, STRETCH_PERCENTILES))
    rule = (f"{a.dtype} -> uint8: linear stretch of the {STRETCH_PERCENTILES[0]:g}-"
            f"{STRETCH_PERCENTILES[1]:g} percentiles ({lo:.6g}..{hi:.6g}) to 0..255, clipped")
    if hi <= lo:  # flat image: only "above the level" carries information
        return np.where(x > lo, 255, 0).astype(np.uint8), rule
    y = np.nan_to_num((x - lo) * 255.0 / (hi - lo), nan=0.0, posinf=255.0, neginf=0.0)
    return np.rint(np.clip(y, 0, 255)).astype(np.uint8), rule
