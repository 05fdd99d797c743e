"""Synthetic cells for the kit's sample: how each LIVECell type looks, placed and drawn.

:func:`place_cells` scatters star-shaped cell outlines of one type over a
704×520 frame (polygons in pixel coordinates, x = column, y = row) and returns
their label image; :func:`render_frame` draws the phase-contrast-looking uint8
frame for those labels: dark textured bodies with a bright halo just outside
each outline, on a grey background with slow illumination drift and noise.
:mod:`livecell_kit.sample` writes the frames and annotations to disk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils
from scipy import ndimage

from livecell_kit.data import IMAGE_HEIGHT, IMAGE_WIDTH

#: Polygon vertices are snapped to this grid: exact in binary floating point,
#: short in JSON, and rasterised identically wherever the polygon is shifted.
_SNAP = 4.0
#: No cell keeps more than this share of its area on top of earlier cells.
_MAX_OVERLAP = 0.06
_MAX_CELLS = 300


@dataclass(frozen=True)
class Morphology:
    """How one cell type looks; lengths in pixels, intensities in grey levels.

    area: range of cell areas (log-uniform).
    aspect: range of length/width ratios.
    wobble: amplitude of the outline's low harmonics (0 = ellipse).
    harmonics: highest harmonic of the outline's wobble.
    spindle: taper exponent of a spindle-shaped cell's ends (> 1 pointed; 0 = not a spindle).
    neurites: range of thin protrusions per cell; neurite_length in cell radii.
    cluster: probability that a new cell is placed touching an earlier one.
    coverage: range of the frame share covered by cells (sparse .. crowded).
    body: darkness of the cell body below the background.
    halo: brightness of the ring just outside the outline.
    rounded: share of cells rounded up (mitotic), drawn bright with a strong halo.
    """

    area: tuple[float, float]
    aspect: tuple[float, float]
    wobble: float
    harmonics: int
    spindle: float = 0.0
    neurites: tuple[int, int] = (0, 0)
    neurite_length: float = 0.0
    cluster: float = 0.3
    coverage: tuple[float, float] = (0.05, 0.5)
    body: float = 22.0
    halo: float = 22.0
    rounded: float = 0.03


MORPHOLOGIES: dict[str, Morphology] = {
    # spread, irregular glioblastoma cells with a few broad protrusions
    "A172": Morphology(area=(600, 2800), aspect=(1.2, 2.2), wobble=0.22, harmonics=5,
                       cluster=0.25, coverage=(0.06, 0.5), body=16, halo=18, rounded=0.01),
    # compact breast-cancer cells growing in tight clusters
    "BT474": Morphology(area=(200, 600), aspect=(1.0, 1.4), wobble=0.08, harmonics=4,
                        cluster=0.85, coverage=(0.05, 0.4), body=26, halo=22),
    # small, round microglia with bright halos
    "BV2": Morphology(area=(100, 300), aspect=(1.0, 1.4), wobble=0.06, harmonics=3,
                      cluster=0.2, coverage=(0.03, 0.2), body=24, halo=30, rounded=0.12),
    # large, spread, polygonal hepatoma cells
    "Huh7": Morphology(area=(1000, 3000), aspect=(1.0, 1.6), wobble=0.12, harmonics=6,
                       cluster=0.5, coverage=(0.08, 0.6), body=15, halo=16, rounded=0.01),
    # epithelial breast-cancer cells in cobblestone clusters
    "MCF7": Morphology(area=(300, 1000), aspect=(1.0, 1.5), wobble=0.1, harmonics=5,
                       cluster=0.8, coverage=(0.06, 0.5), body=20, halo=20),
    # small neuroblastoma bodies with long thin neurites
    "SHSY5Y": Morphology(area=(120, 450), aspect=(1.1, 1.8), wobble=0.08, harmonics=3,
                         neurites=(1, 3), neurite_length=2.5, cluster=0.35,
                         coverage=(0.04, 0.3), body=26, halo=24),
    # round-ish breast-cancer cells in loose grape-like clusters
    "SkBr3": Morphology(area=(250, 800), aspect=(1.0, 1.3), wobble=0.07, harmonics=3,
                        cluster=0.7, coverage=(0.05, 0.45), body=24, halo=26, rounded=0.08),
    # elongated, spindle-shaped ovarian-cancer cells
    "SKOV3": Morphology(area=(400, 1600), aspect=(2.5, 5.0), wobble=0.1, harmonics=3,
                        spindle=1.4, cluster=0.3, coverage=(0.06, 0.5), body=20, halo=20),
}


# --------------------------------------------------------------------------- shapes
_THETA = {n: np.linspace(0.0, 2 * np.pi, n, endpoint=False) for n in (48, 96)}


def _outlines(rng: np.random.Generator, m: Morphology, k: int) -> np.ndarray:
    """``k`` cell outlines centred on (0, 0): (k, n, 2) xy vertices, in angular order.

    Drawn in batches because a numpy call per cell would dominate the run time.
    """
    theta = _THETA[96 if m.neurites[1] else 48]
    aspect = rng.uniform(*m.aspect, (k, 1))
    cos, sin = np.cos(theta), np.sin(theta)
    if m.spindle:
        # spindle: an ellipse whose half-width goes as |sin|**spindle, so that for
        # spindle > 1 both ends taper to points; a slight bend makes some banana-like
        x = aspect * cos
        y = np.sign(sin) * np.abs(sin) ** m.spindle + rng.normal(0.0, 0.08, (k, 1)) * (x ** 2 - aspect ** 2 / 2) / aspect
        r, ang = np.hypot(x, y), np.arctan2(y, x)
        harmonics = np.arange(3, m.harmonics + 1)
    else:
        # ellipse with semi-axes (aspect, 1) in polar form
        r = aspect / np.sqrt(cos ** 2 + (aspect * sin) ** 2)
        ang = np.broadcast_to(theta, r.shape)
        harmonics = np.arange(2, m.harmonics + 1)
    if harmonics.size:
        amp = rng.normal(0.0, m.wobble, (k, harmonics.size, 1)) / np.sqrt(harmonics - 1)[:, None]
        phase = rng.uniform(0, 2 * np.pi, (k, harmonics.size, 1))
        r = r * np.prod(1.0 + amp * np.cos(harmonics[:, None] * theta + phase), axis=1)
    r = np.maximum(r, 0.35 * r.mean(axis=1, keepdims=True))
    x, y = r * np.cos(ang), r * np.sin(ang)
    # scale to the drawn area (shoelace); neurites come after and add little area
    area = 0.5 * np.abs((x * np.roll(y, -1, axis=1) - y * np.roll(x, -1, axis=1)).sum(axis=1, keepdims=True))
    target = np.exp(rng.uniform(*np.log(m.area), (k, 1)))
    r = r * np.sqrt(target / area)
    if m.neurites[1]:
        body_radius = np.sqrt(target / np.pi)[:, :, None]
        most = m.neurites[1]
        active = np.arange(most)[None, :] < rng.integers(m.neurites[0], most + 1, (k, 1))
        centre = rng.uniform(0, 2 * np.pi, (k, most, 1))
        d = np.angle(np.exp(1j * (theta - centre)))
        # narrow in angle so that each neurite is a thin (2-3 px) process
        width = rng.uniform(0.035, 0.06, (k, most, 1))
        length = body_radius * m.neurite_length * rng.uniform(0.6, 1.4, (k, most, 1)) * active[:, :, None]
        r = r + (length * np.exp(-0.5 * (d / width) ** 2)).sum(axis=1)
    ang = ang + rng.uniform(0, 2 * np.pi, (k, 1))
    return np.stack([r * np.cos(ang), r * np.sin(ang)], axis=2)


def _support(xy: np.ndarray, direction: float) -> float:
    """How far the outline reaches from its centre along ``direction`` (radians)."""
    return float(np.max(xy @ np.array([np.cos(direction), np.sin(direction)])))


_FRAME = np.array([IMAGE_WIDTH, IMAGE_HEIGHT], float)


def _snap_and_clip(xy: np.ndarray, cx: float, cy: float) -> np.ndarray:
    """Outline moved to (cx, cy), snapped to the 1/_SNAP grid and clipped to the frame."""
    pts = np.rint((xy + (cx, cy)) * _SNAP) / _SNAP
    return np.clip(pts, 0.0, _FRAME, out=pts)


def _rasterise(pts: np.ndarray) -> tuple[tuple[int, int], np.ndarray] | None:
    """Local mask of a polygon as pycocotools decodes it: ((row0, col0), bool (h, w))."""
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    c0, r0 = max(int(lo[0]) - 1, 0), max(int(lo[1]) - 1, 0)
    c1, r1 = min(int(hi[0]) + 2, IMAGE_WIDTH), min(int(hi[1]) + 2, IMAGE_HEIGHT)
    if c1 - c0 < 2 or r1 - r0 < 2:
        return None
    # integer shifts of grid-snapped vertices are exact, so this local mask equals
    # the corresponding window of the full-frame decode
    local = (pts - (c0, r0)).ravel().tolist()
    rle = mask_utils.frPyObjects([local], r1 - r0, c1 - c0)
    m = mask_utils.decode(rle)[:, :, 0].view(bool)
    return (r0, c0), m


def place_cells(rng: np.random.Generator, m: Morphology, coverage: float):
    """Place cells until ``coverage`` of the frame is covered; some touch.

    A cell placed against an earlier one may overlap it by a few % of its area;
    others may not overlap at all.  Returns the instance label image int32
    (H, W), 0 = background, and per cell its polygon vertices (n, 2) in pixel xy.
    """
    labels = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH), np.int32)
    polygons: list[np.ndarray] = []
    centres: list[tuple[float, float, np.ndarray]] = []
    target = coverage * IMAGE_HEIGHT * IMAGE_WIDTH
    covered, failures = 0, 0
    pool: list[np.ndarray] = []
    while covered < target and len(polygons) < _MAX_CELLS and failures < 25:
        touching = bool(centres) and rng.random() < m.cluster
        if touching:
            if not pool:
                pool = list(_outlines(rng, m, 32))
            xy = pool.pop()
            # put it against a random earlier cell, from just inside contact outwards
            px, py, pxy = centres[rng.integers(len(centres))]
            direction = rng.uniform(0, 2 * np.pi)
            reach = _support(pxy, direction) + _support(xy, direction + np.pi)
            candidates = [(px + f * reach * np.cos(direction), py + f * reach * np.sin(direction))
                          for f in (0.85, 1.0)]
        else:
            # a free spot first (cheap), then an outline for it
            xs = rng.uniform(-10, IMAGE_WIDTH + 10, 4)
            ys = rng.uniform(-10, IMAGE_HEIGHT + 10, 4)
            free = labels[np.clip(ys.astype(int), 0, IMAGE_HEIGHT - 1), np.clip(xs.astype(int), 0, IMAGE_WIDTH - 1)] == 0
            if not free.any():
                failures += 1
                continue
            if not pool:
                pool = list(_outlines(rng, m, 32))
            xy = pool.pop()
            i = int(np.argmax(free))
            candidates = [(xs[i], ys[i])]
        placed = False
        for cx, cy in candidates:
            if labels[min(max(int(cy), 0), IMAGE_HEIGHT - 1), min(max(int(cx), 0), IMAGE_WIDTH - 1)]:
                continue  # centre inside a cell already: skip the costlier raster test
            pts = _snap_and_clip(xy, cx, cy)
            raster = _rasterise(pts)
            if raster is None:
                continue
            (r0, c0), cell = raster
            window = labels[r0:r0 + cell.shape[0], c0:c0 + cell.shape[1]]
            taken = window > 0
            overlap = np.count_nonzero(cell & taken)
            area = np.count_nonzero(cell)
            if area < 30 or overlap > (_MAX_OVERLAP * area if touching else 0):
                continue
            polygons.append(pts)
            centres.append((cx, cy, xy))
            window[cell & ~taken] = len(polygons)
            covered += area - overlap
            placed = True
            break
        failures = 0 if placed else failures + 1
    return labels, polygons


# --------------------------------------------------------------------------- drawing
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to unit standard deviation, float32.

    Uniform white noise is 4x cheaper to draw than normal noise and is just as
    Gaussian once filtered.
    """
    n = ndimage.gaussian_filter(rng.random(shape, np.float32) - 0.5, sigma, truncate=3.0)
    return n / (n.std() + 1e-6)


def render_frame(rng: np.random.Generator, m: Morphology, labels: np.ndarray) -> np.ndarray:
    """Phase-contrast-looking uint8 (H, W) frame of the cells in ``labels``."""
    h, w = labels.shape
    n = int(labels.max())
    cells = labels > 0
    # per-cell appearance, indexed by label (index 0 = background, unused)
    rounded = np.r_[False, rng.random(n) < m.rounded]
    body = np.r_[0.0, m.body * rng.uniform(0.7, 1.3, n)].astype(np.float32)
    halo = np.r_[0.0, m.halo * rng.uniform(0.7, 1.3, n)].astype(np.float32)
    halo[rounded] *= 1.5
    # pixels on a boundary between two touching cells
    between = np.zeros_like(cells)
    edge = (labels[1:, :] != labels[:-1, :]) & cells[1:, :] & cells[:-1, :]
    between[1:, :] |= edge
    between[:-1, :] |= edge
    edge = (labels[:, 1:] != labels[:, :-1]) & cells[:, 1:] & cells[:, :-1]
    between[:, 1:] |= edge
    between[:, :-1] |= edge
    # depth inside each cell in pixels (1 on its outline); chamfer distances are
    # 6x faster than Euclidean ones and look the same after the optical blur
    depth = ndimage.distance_transform_cdt(cells & ~between, metric="taxicab")
    signal = np.zeros((h, w), np.float32)

    # inside the cells, computed on their pixels only
    inside = np.flatnonzero(cells)
    lab = labels.ravel()[inside]
    d = depth.ravel()[inside].astype(np.float32)
    deepest = np.ones(n + 1, np.float32)
    np.maximum.at(deepest, lab, d)
    rel = d / deepest[lab]  # 0 at the outline .. 1 at the cell's thickest point
    thick = 1.0 - np.exp(-3.0 * rel)
    # mottled texture, drawn at half resolution (the optical blur smooths the blocks)
    texture = _smooth_noise(rng, (h // 2, w // 2), 0.6)
    texture = np.repeat(np.repeat(texture, 2, axis=0), 2, axis=1).ravel()[inside]
    b = body[lab]
    rim = (d <= 1).astype(np.float32)
    # cytoplasm: darker where thicker, mottled; the outline itself is a dark line
    value = -b * (0.35 + 0.65 * thick) * (1.0 + 0.35 * texture) - 10.0 * rim
    # nucleus: a lighter oval in the thick middle; dark granules around it
    nucleus = np.clip((rel - 0.55) / 0.15, 0.0, 1.0)
    value += b * 0.6 * nucleus
    # single dark pixels, which the optical blur below turns into granules
    specks = rng.random(inside.size, np.float32) < 0.02
    value -= b * 2.5 * specks * (1.0 - 0.5 * nucleus)
    # rounded-up (mitotic) cells look bright, not dark
    value = np.where(rounded[lab], 18.0 * thick * (1.0 + 0.2 * texture) - 8.0 * rim, value)
    # touching cells: a thin bright seam between them
    value += 8.0 * between.ravel()[inside]
    signal.ravel()[inside] = value

    # halo: bright just outside each outline, fading within a few pixels: the
    # blurred edge of each cell's own halo strength, so brighter cells glow more
    # and narrow gaps between cells glow brightest
    glow = ndimage.gaussian_filter(halo[labels], 1.8, truncate=3.0)
    outside = ~cells
    signal[outside] = 4.0 * glow[outside]

    # faint background texture (debris, dust), drawn at half resolution
    bg = _smooth_noise(rng, (h // 2, w // 2), 1.25)
    signal += 1.2 * np.repeat(np.repeat(bg, 2, axis=0), 2, axis=1)
    # optics blur the specimen; illumination drifts slowly; the camera adds noise
    signal = ndimage.gaussian_filter(signal, 0.8)
    # drift: a random smooth surface from the lowest 2-D cosine modes
    yy = np.cos(np.pi * np.arange(3)[None, :] * (np.arange(h)[:, None] + 0.5) / h)
    xx = np.cos(np.pi * np.arange(3)[:, None] * (np.arange(w)[None, :] + 0.5) / w)
    modes = rng.normal(0.0, 1.2, (3, 3))
    modes[0, 0] = rng.normal(0.0, 1.2)  # overall brightness offset
    signal += (128.0 + yy @ modes @ xx).astype(np.float32)
    # camera noise, std 2.5 grey levels (uniform: cheap, and indistinguishable once rounded)
    signal += (2.5 * np.sqrt(12.0)) * (rng.random((h, w), np.float32) - 0.5)
    return np.clip(np.rint(signal), 0, 255).astype(np.uint8)
