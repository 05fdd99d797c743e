"""Synthetic cells for the kit's sample: how each LIVECell type is shaped, and where cells lie.

:func:`place_cells` scatters star-shaped outlines of one cell type over a 704×520
frame, packs the crowded ones against each other like cells in a sheet, and returns
their polygons (pixel coordinates, x = column, y = row) and label image;
:func:`livecell_kit.sample.optics.render_frame` draws the phase-contrast frame
for those labels, and :mod:`livecell_kit.sample` writes frames and annotations.

Calibration: ``bench/sample_realism.py`` measures real LIVECell frames (37 frames
of all 8 types, 5 annotated: MCF7 ×2, BT474 ×2, Huh7; 1243 cells) beside the
sample.  Figures of the real frames that the drawing follows — numbers only, facts
about LIVECell; none of its pixels or outlines is used — and the seed-0 sample's
(generator v3) in brackets:

* cell areas, px² (p10 / p50 / p90): MCF7 137 / 240 / 438 [p50 239], BT474
  183 / 418 / 807 [373], Huh7 211 / 972 / 2233 [824]; real Huh7 cells reach 12,662.
  The other types have no annotations here: their sizes are estimated from isolated
  cells in sparse frames (texture-thresholded blobs, about half their area);
* coverage of the annotated frames 8-51 % [sample frames 5-79 %, per-type medians 14-31 %];
  LIVECell overall 8-95 %, mean 26-37 %; early time points sparse with round cells,
  late ones confluent, flat sheets of cells that meet without gaps;
* background: grey level 128 (median of every real frame) [128]; fine noise, std
  of the high-pass 1.0-1.3 (BV2 2.4) [1.5-2.3 with the sample's debris]; faint
  horizontal streaks; frame std 6.2-31, median 9.4 [per-type medians 5.0-12.9];
  frame percentiles p1 72-106, p99 148-187 [per-type medians 86-117, 144-169];
* cells are *not* darker than the background on average (mean inside the outlines
  minus background -0.2 to -0.4 [+1 to +3]); they differ by texture (local 5×5 std
  inside cells 6.5 Huh7, 12 BT474, 24 MCF7 [3.7, 16, 18] vs 1.0-1.4 in the
  background) and by their edge: the outline is drawn just outside a bright ring.
  Grey level minus background by distance to the outline, all annotated frames:
  +7.8 / +6.8 at 2 / 1 px inside [+7.5 / +7.2], +2.5 / +0.9 at 1 / 2 px outside
  [+2.7 / +0.4], a darker band -5 at 4-6 px inside [-4 at 3-4 px]; the ring is
  +15 for MCF7 (many round cells) [+8], +5.5 for BT474 [+6.4] and +1.7 for the flat,
  faint Huh7 [+2.1].
* borders shared by touching cells (generator v4; figures in brackets from the v4 sample):
  81-88 % of the cells touch another within 2 px [83-96 %]; 13-14 % of the 2-px band where
  MCF7 / BT474 cells meet is a background gap, 43 % for Huh7 [10-19 %]; grey minus background
  across the seam, band / 1 px / 2-6 px beside it: MCF7 +11 / -3 / -9 [+7 / -1 / -6 to -10],
  BT474 +1.3 / -2.3 / -2 [+5 / 0 / -1 to -3], Huh7 +2.1 / +0.4 / -1 [+2.2 / 0 / -0.4 to -2];
  the seam fades as a sheet fills up (MCF7: seam minus interior 35 at 8 % coverage, 5 at 51 %).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from livecell_kit.data import IMAGE_HEIGHT, IMAGE_WIDTH

#: Polygon vertices are snapped to this grid: exact in binary floating point,
#: short in JSON, and rasterised identically wherever the polygon is shifted.
_SNAP = 4.0
_MAX_CELLS = 1500
_Z_P90 = 1.2816  # standard normal quantile of 0.9
#: Packed cells stop this far short of the line they share: their rasterised outlines then
#: meet (as LIVECell's: 13-14 % of the 2-px band where MCF7 / BT474 cells meet is a background
#: gap) and overlap on well under 1 % of the pixels.
_SEAM_CLEARANCE_PX = 0.05


@dataclass(frozen=True)
class Morphology:
    """How one cell type looks; lengths in pixels, thicknesses in grey levels of contrast.

    area: 10th and 90th percentile of cell areas (log-normal between them).
    aspect: range of length/width ratios.
    wobble: amplitude of the outline's low harmonics (0 = ellipse).
    harmonics: highest harmonic of the outline's wobble.
    spindle: taper exponent of a spindle-shaped cell's ends (> 1 pointed; 0 = not a spindle).
    neurites: range of thin protrusions per cell; neurite_length in cell radii.
    cluster: probability that a new cell is placed against an earlier one.
    coverage: range of the frame share covered by cells (sparse .. confluent).
    rounded: share of round, thick cells in the sparsest frames (none when confluent).
    lamella: optical thickness of the flat, spread part of a cell (its edge contrast).
    body: extra thickness of the cell body over the nucleus (dark middle, shade-off around it).
    granules: share of a cell's pixels that hold a dark granule.
    texture: strength of the cytoplasm's mottle, in grey levels of thickness.
    granular_zone: width of the textured zone around the nucleus, in nucleus radii
        (the lamella beyond it is smooth).
    seam_cleft: share of the thickness lost in the cleft where two touching cells meet
        (1 = down to nothing: a bright line between them; 0 = no line).
    seam_shade: grey levels by which a spread cell is darker beside a border it shares.
    """

    area: tuple[float, float]
    aspect: tuple[float, float]
    wobble: float
    harmonics: int
    spindle: float = 0.0
    neurites: tuple[int, int] = (0, 0)
    neurite_length: float = 0.0
    cluster: float = 0.3
    coverage: tuple[float, float] = (0.05, 0.6)
    rounded: float = 0.2
    lamella: float = 14.0
    body: float = 20.0
    granules: float = 0.03
    texture: float = 12.0
    granular_zone: float = 1.5
    seam_cleft: float = 1.0
    seam_shade: float = 0.0


MORPHOLOGIES: dict[str, Morphology] = {
    # spread, irregular glioblastoma cells with broad protrusions; round when freshly seeded
    "A172": Morphology(area=(300, 2600), aspect=(1.2, 2.4), wobble=0.25, harmonics=6,
                       cluster=0.35, coverage=(0.08, 0.9), rounded=0.5, lamella=18, body=16,
                       granules=0.045, granular_zone=0.6,
                       seam_cleft=0.6, seam_shade=3),
    # compact breast-cancer cells growing in dense clusters
    "BT474": Morphology(area=(240, 1000), aspect=(1.0, 1.5), wobble=0.1, harmonics=5,
                        cluster=0.9, coverage=(0.08, 0.7), rounded=0.5, lamella=9, body=18,
                        granules=0.056, granular_zone=3.0,
                        seam_cleft=0.2, seam_shade=5),
    # small, round microglia with bright halos
    "BV2": Morphology(area=(150, 420), aspect=(1.0, 1.4), wobble=0.08, harmonics=4,
                      cluster=0.3, coverage=(0.06, 0.8), rounded=0.6, lamella=26, body=22,
                      granules=0.06, granular_zone=3.0,
                      seam_cleft=1.0, seam_shade=6),
    # large, very flat hepatoma cells: faint lamellae around a granular middle
    "Huh7": Morphology(area=(300, 3200), aspect=(1.0, 1.7), wobble=0.15, harmonics=6,
                       cluster=0.6, coverage=(0.08, 0.85), rounded=0.1, lamella=4, body=10,
                       granules=0.045, granular_zone=0.5,
                       seam_cleft=0.5, seam_shade=2),
    # epithelial breast-cancer cells in cobblestone sheets
    "MCF7": Morphology(area=(165, 520), aspect=(1.0, 1.5), wobble=0.1, harmonics=5,
                       cluster=0.85, coverage=(0.08, 0.8), rounded=0.5, lamella=14, body=16,
                       granules=0.056, granular_zone=3.0,
                       seam_cleft=1.0, seam_shade=11),
    # small neuroblastoma bodies with long thin neurites
    "SHSY5Y": Morphology(area=(150, 600), aspect=(1.2, 2.2), wobble=0.1, harmonics=3,
                         neurites=(1, 3), neurite_length=2.5, cluster=0.4,
                         coverage=(0.08, 0.75), rounded=0.2, lamella=20, body=20, granules=0.045,
                         granular_zone=2.0,
                         seam_cleft=0.6, seam_shade=3),
    # round-ish breast-cancer cells in loose grape-like clusters, some spread flat
    "SkBr3": Morphology(area=(200, 900), aspect=(1.0, 1.5), wobble=0.1, harmonics=4,
                        cluster=0.7, coverage=(0.08, 0.7), rounded=0.6, lamella=14, body=18,
                        granules=0.045, granular_zone=2.5,
                        seam_cleft=0.4, seam_shade=4),
    # elongated, spindle-shaped ovarian-cancer cells, flat and faint
    "SKOV3": Morphology(area=(400, 2000), aspect=(2.0, 4.5), wobble=0.1, harmonics=3,
                        spindle=1.4, cluster=0.35, coverage=(0.08, 0.8), rounded=0.2,
                        lamella=20, body=16, granules=0.037, granular_zone=0.6,
                        seam_cleft=0.8, seam_shade=2),
}


# --------------------------------------------------------------------------- shapes
_THETA = {n: np.linspace(0.0, 2 * np.pi, n, endpoint=False) for n in (48, 96)}


def cell_areas(rng: np.random.Generator, m: Morphology, k: int) -> np.ndarray:
    """``k`` cell areas in px², log-normal with ``m.area`` as 10th / 90th percentile, shape (k, 1)."""
    lo, hi = np.log(m.area)
    z = np.clip(rng.normal(0.0, 1.0, (k, 1)), -2.5, 2.5)
    return np.exp(0.5 * (lo + hi) + z * (hi - lo) / (2 * _Z_P90))


def outlines(rng: np.random.Generator, m: Morphology, k: int, rounded: bool = False) -> np.ndarray:
    """``k`` cell outlines centred on (0, 0): (k, n, 2) xy vertices, in angular order.

    rounded: cells rounded up (freshly seeded or dividing): near-circles, 0.6-0.7 times the area.
    Drawn in batches because a numpy call per cell would dominate the run time.
    """
    if rounded:
        m = Morphology(area=(m.area[0] * 0.7, m.area[1] * 0.6), aspect=(1.0, 1.15), wobble=0.03,
                       harmonics=3)
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
    target = cell_areas(rng, m, k)
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


# --------------------------------------------------------------------------- placement
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


class _Pool:
    """Outlines drawn 32 at a time (normal or rounded), handed out one by one."""

    def __init__(self, rng: np.random.Generator, m: Morphology):
        self.rng, self.m, self.stock = rng, m, {False: [], True: []}

    def take(self, rounded: bool) -> np.ndarray:
        if not self.stock[rounded]:
            self.stock[rounded] = list(outlines(self.rng, self.m, 32, rounded))
        return self.stock[rounded].pop()


def _seeds(rng: np.random.Generator, m: Morphology, coverage: float, rounded_share: float):
    """Cell centres (k, 2), outlines (k, n, 2) around them, rounded flags (k,).

    Cells are added until their outlines' areas sum to the target coverage: with
    probability ``m.cluster`` against a random earlier cell, else anywhere; a
    centre must keep 0.55 of both radii away from every earlier centre.
    """
    pool = _Pool(rng, m)
    target = 1.1 * coverage * IMAGE_HEIGHT * IMAGE_WIDTH  # packing trims ~10 %
    centres = np.zeros((_MAX_CELLS, 2))
    radii = np.zeros(_MAX_CELLS)
    shapes, flags = [], []
    total, failures = 0.0, 0
    while total < target and len(shapes) < _MAX_CELLS and failures < 60:
        rounded = bool(rng.random() < rounded_share)
        xy = pool.take(rounded)
        k = len(shapes)
        radius = float(np.sqrt(np.mean(np.sum(xy ** 2, axis=1))))
        if k and rng.random() < m.cluster:
            j = int(rng.integers(k))
            direction = rng.uniform(0, 2 * np.pi)
            reach = (radius + radii[j]) * rng.uniform(0.7, 0.9)
            centre = centres[j] + reach * np.array([np.cos(direction), np.sin(direction)])
        else:
            centre = rng.uniform(-0.5 * radius, _FRAME + 0.5 * radius)
        if k:
            dist = np.hypot(*(centres[:k] - centre).T)
            if np.any(dist < 0.55 * (radii[:k] + radius)):
                failures += 1
                continue
        if not (-radius < centre[0] < IMAGE_WIDTH + radius and -radius < centre[1] < IMAGE_HEIGHT + radius):
            failures += 1
            continue
        centres[k], radii[k] = centre, radius
        shapes.append(xy)
        flags.append(rounded)
        total += np.pi * radius ** 2
        failures = 0
    return centres[:len(shapes)], radii[:len(shapes)], shapes, np.array(flags, bool)


def _pack(centres: np.ndarray, radii: np.ndarray, shapes: list[np.ndarray], rounded: np.ndarray):
    """Trim each outline against its neighbours: crowded cells meet on straight lines.

    Along a ray u from centre p_i, the power bisector with neighbour j (weights
    w = radius²) lies at t = (|p_j - p_i|² + w_i - w_j) / (2 u·(p_j - p_i)).  The
    power cell is convex and holds p_i (when t > 0), so the trimmed polygon stays
    star-shaped and never crosses a neighbour's: touching, not overlapping, cells.
    A rounded cell keeps its round outline (trimmed by rounded neighbours only); a
    spread cell stops where its rays meet a rounded neighbour's circle, and is
    dropped (None) when its centre lies inside one.
    """
    out: list[np.ndarray | None] = []
    for i, xy in enumerate(shapes):
        offsets = centres - centres[i]
        d2 = np.sum(offsets ** 2, axis=1)
        near = (d2 > 0) & (d2 < (2.5 * (radii + radii[i])) ** 2)
        r = np.hypot(xy[:, 0], xy[:, 1])
        u = xy / np.maximum(r, 1e-9)[:, None]
        limit = np.full(r.shape, np.inf)
        bisect = np.flatnonzero(near & (rounded if rounded[i] else ~rounded))
        if bisect.size:
            proj = u @ offsets[bisect].T  # (n, k)
            t = (d2[bisect] + radii[i] ** 2 - radii[bisect] ** 2) / (2 * np.where(proj > 1e-9, proj, np.nan))
            limit = np.where(np.isfinite(t) & (t > 0), t, np.inf).min(axis=1)
        circles = np.flatnonzero(near & rounded) if not rounded[i] else np.zeros(0, int)
        if circles.size:
            if np.any(d2[circles] < radii[circles] ** 2):
                out.append(None)
                continue
            b = u @ offsets[circles].T
            disc = b ** 2 - (d2[circles] - radii[circles] ** 2)
            t = b - np.sqrt(np.maximum(disc, 0.0))
            limit = np.minimum(limit, np.where((disc > 0) & (b > 0), t, np.inf).min(axis=1))
        if not rounded[i]:
            # towards close neighbours a spread cell reaches out to meet them (sheets have
            # no gaps); elsewhere it keeps its outline.  Smoothed over angle: no steps.
            near_side = (limit < 1.8 * r).astype(float)
            facing = sum(np.roll(near_side, k) for k in range(-3, 4)) / 7  # circular mean over ±3 rays
            r = r * (1.0 + 0.5 * facing)
        out.append(u * np.maximum(np.minimum(r, limit - _SEAM_CLEARANCE_PX), 0.0)[:, None])
    return out


def place_cells(rng: np.random.Generator, m: Morphology, coverage: float, rounded_share: float = 0.0):
    """Place cells of type ``m`` until about ``coverage`` of the frame is covered.

    rounded_share: probability that a cell is rounded up (round, small, thick).
    Crowded cells are packed against their neighbours (no overlap, shared straight
    edges); lone ones keep their own outline.  Returns the instance label image
    int32 (H, W) (0 = background), per cell its polygon vertices (n, 2) in pixel xy,
    and per cell whether it is rounded, bool (cells,).
    """
    centres, radii, shapes, flags = _seeds(rng, m, coverage, rounded_share)
    labels = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH), np.int32)
    polygons: list[np.ndarray] = []
    rounded: list[bool] = []
    for (cx, cy), xy, flag in zip(centres, _pack(centres, radii, shapes, flags), flags):
        if xy is None:
            continue
        pts = _snap_and_clip(xy, cx, cy)
        raster = _rasterise(pts)
        if raster is None:
            continue
        (r0, c0), cell = raster
        window = labels[r0:r0 + cell.shape[0], c0:c0 + cell.shape[1]]
        free = cell & (window == 0)
        if np.count_nonzero(free) < 30:
            continue
        polygons.append(pts)
        rounded.append(bool(flag))
        window[free] = len(polygons)
    return labels, polygons, np.array(rounded, bool)
