"""Phase-contrast optics for the synthetic sample: cells' optical thickness → a uint8 frame.

A phase-contrast microscope turns the specimen's optical path difference φ into
grey levels roughly as a band-pass filter: the frame is the background minus
(φ blurred by the objective's point-spread function − φ blurred over the phase
ring's halo scale).  That one rule gives the look of LIVECell's frames: a thick
object is dark just inside its edge and surrounded by a bright halo; the middle
of a wide, flat region returns to the background grey ("shade-off"); a small
dense granule is a dark dot with a bright rim.  :func:`render_frame` builds φ
for the labelled cells (flat lamella, thicker body over the nucleus, nucleoli,
granules; round cells as thick domes), adds debris and out-of-focus blobs that
are not cells, applies the optics, then adds the camera's noise and faint
horizontal streaks.  LIVECell's annotators drew each outline just outside the
bright halo, so the physical edge of a drawn cell lies ``inset`` pixels inside
its polygon.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from livecell_kit.masks.borders import touching_border_mask
from livecell_kit.sample.cells import Morphology


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to unit standard deviation, float32.

    Uniform white noise is 4x cheaper to draw than normal noise and is just as
    Gaussian once filtered.
    """
    n = ndimage.gaussian_filter(rng.random(shape, np.float32) - 0.5, sigma, truncate=3.0)
    return n / (n.std() + 1e-6)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _octagonal_distance(mask: np.ndarray) -> np.ndarray:
    """Distance of each pixel of ``mask`` to the nearest pixel outside it, float32 px.

    The mean of the chamfer taxicab and chessboard distances (an octagonal metric,
    within 6 % of Euclidean) is 2.5x faster than the exact Euclidean transform.
    """
    out = ndimage.distance_transform_cdt(mask, metric="taxicab").astype(np.float32)
    out += ndimage.distance_transform_cdt(mask, metric="chessboard")
    return out * 0.5


@dataclass(frozen=True)
class _Depths:
    """Per pixel (H, W), for the cells of a label image, all distances in px (octagonal metric).

    depth: float32, distance to the cell's own outline (1 on it, 0.5 on a shared border, 0
        outside cells); shared: bool, that nearest outline is a border with a touching cell
        rather than with background; seam_depth: float32, distance below the nearest shared
        border (0.5 on it; large in a cell that touches none); open_depth: float32, distance
        to the nearest background pixel, through touching cells; gap: bool, background pixels
        of a 1-px gap between two cells (where their rasterised outlines miss each other),
        which count as part of the border the cells share, not as background.
    """

    depth: np.ndarray
    shared: np.ndarray
    seam_depth: np.ndarray
    open_depth: np.ndarray
    gap: np.ndarray


def _depths(labels: np.ndarray) -> _Depths:
    """The :class:`_Depths` of int (H, W) ``labels`` (0 = background)."""
    cells = labels > 0
    gap = ~cells & touching_border_mask(labels, 2).view(bool)
    between = cells & ndimage.binary_dilation(gap)
    edge = (labels[1:, :] != labels[:-1, :]) & cells[1:, :] & cells[:-1, :]
    between[1:, :] |= edge
    between[:-1, :] |= edge
    edge = (labels[:, 1:] != labels[:, :-1]) & cells[:, 1:] & cells[:, :-1]
    between[:, 1:] |= edge
    between[:, :-1] |= edge
    depth = _octagonal_distance(cells & ~between)
    depth[between] = 0.5
    open_depth = _octagonal_distance(cells | gap)
    seam_depth = _octagonal_distance(~between) if between.any() else np.full(cells.shape, 1e3, np.float32)
    seam_depth[between] = 0.5
    return _Depths(depth, depth < open_depth, seam_depth, open_depth, gap)


def cell_thickness(rng: np.random.Generator, m: Morphology, labels: np.ndarray, rounded: np.ndarray,
                   crowding: float, scene_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Optical thickness φ (H, W) float32 of the labelled cells, in grey levels of contrast, and
    the grey-level shade (H, W) float32 (<= 0) of spread cells beside the borders they share.

    rounded: bool (cells,), which cells are round thick domes.
    crowding: 0 (sparse frame) .. 1 (confluent); crowded cells are flatter and fainter.
    scene_rng: the random numbers of the seams between touching cells.
    """
    h, w = labels.shape
    n = int(labels.max())
    phi = np.zeros((h, w), np.float32)
    shade = np.zeros((h, w), np.float32)
    if n == 0:
        return phi, shade
    geometry = _depths(labels)
    inside = np.flatnonzero(labels)
    lab = labels.ravel()[inside]
    d = geometry.depth.ravel()[inside]
    shared = geometry.shared.ravel()[inside]
    rows, cols = np.divmod(inside, w)
    # per cell, indexed by label (index 0 = background, unused)
    area = np.bincount(lab, minlength=n + 1).astype(np.float32)
    safe = np.maximum(area, 1.0)
    cy = np.bincount(lab, rows, n + 1) / safe
    cx = np.bincount(lab, cols, n + 1) / safe
    radius = np.sqrt(safe / np.pi)
    deepest = np.ones(n + 1, np.float32)
    np.maximum.at(deepest, lab, d)
    round_ = np.r_[False, rounded[:n]]
    inset = rng.uniform(1.0, 2.0, n + 1).astype(np.float32)
    flatten = 1.25 - 0.5 * crowding
    # seams fade as a sheet fills up (LIVECell's MCF7: seam minus interior 35 grey levels at 8 %
    # coverage, 5 at 51 %)
    seam_strength = 1.4 - 1.0 * crowding
    cleft = min(m.seam_cleft * seam_strength, 1.0)
    lamella = m.lamella * flatten * rng.uniform(0.6, 1.4, n + 1)
    body = m.body * flatten * rng.uniform(0.5, 1.5, n + 1)
    dome = rng.uniform(80.0, 140.0, n + 1) * (1.1 - 0.3 * crowding)
    # nucleus: an oval off the centre, a third of the cell's radius
    offset = rng.uniform(0.0, 0.3, n + 1) * radius
    turn = rng.uniform(0, 2 * np.pi, n + 1)
    ny, nx = cy + offset * np.sin(turn), cx + offset * np.cos(turn)
    nr = radius * rng.uniform(0.25, 0.38, n + 1)
    nucleus_step = rng.uniform(3.0, 9.0, n + 1)

    # depth below the physical edge: a bright halo's width inside an outline on background
    # (where LIVECell's annotators drew it), half a pixel inside a touching neighbour (the
    # cleft between two cells is the 2-px band where their outlines meet)
    open_phys = geometry.open_depth.ravel()[inside] - inset[lab]
    seam_phys = d - rng.uniform(0.2, 0.6)
    phys = np.where(shared, np.minimum(seam_phys, open_phys), open_phys)
    # where two cells meet the thickness dips by ``cleft`` of its value, not to zero; it never
    # exceeds what the distance to the background allows (no thick corners at a seam's end)
    edge = _smoothstep(open_phys / 1.5)
    edge = np.where(shared, np.minimum(1.0 - cleft * (1.0 - _smoothstep(seam_phys)), edge), edge)
    # round cells keep a wider cleft: they touch their neighbours only where their domes bulge
    dome_edge = _smoothstep(open_phys / 2.0)
    dome_seam = 1.0 - cleft * (1.0 - _smoothstep((d - scene_rng.uniform(0.3, 1.3)) / 2.0))
    dome_edge = np.where(shared, np.minimum(dome_seam, dome_edge), dome_edge)
    dn = np.hypot(rows - ny[lab], cols - nx[lab]) / nr[lab]
    # spread cells: a flat lamella, a broad thicker body around the nucleus, the nucleus' own rim
    value = lamella[lab] * edge + body[lab] * edge * np.exp(-0.5 * (dn / 1.6) ** 2)
    value += nucleus_step[lab] * _smoothstep((1.0 - dn) * nr[lab] / 1.2) * edge
    # round cells: thick, with a steep edge and a flat top (which the optics shade off)
    value = np.where(round_[lab], dome[lab] * dome_edge, value)
    # texture: a mottle that follows the thickness, and dense granules, most around the nucleus
    near_nucleus = np.exp(-0.5 * (np.maximum(dn - 1.0, 0.0) / m.granular_zone) ** 2)
    mottle = _smooth_noise(rng, (h, w), 0.6).ravel()[inside]
    value += m.texture * rng.uniform(0.5, 1.5, n + 1)[lab] * mottle * edge * (0.1 + near_nucleus)
    grain = rng.random(inside.size, np.float32) < 3 * m.granules * (0.05 + 1.5 * near_nucleus) * (phys > 0.5)
    strength = rng.exponential(50.0, inside.size).astype(np.float32)
    strength[rng.random(inside.size) < 0.3] *= -0.7  # some light vesicles among the dark granules
    # nucleoli: one to three dark dots in each nucleus (of spread cells)
    nucleoli = (dn < 0.55) & (rng.random(inside.size, np.float32) < 0.03) & ~round_[lab]
    grains = np.zeros((h, w), np.float32)
    grains.ravel()[inside] = grain * strength + nucleoli * rng.uniform(50.0, 100.0, inside.size)
    phi.ravel()[inside] = value
    if geometry.gap.any():
        # a gap pixel between two touching cells is the bottom of their cleft: as thin as the
        # cell pixels beside it (0 for a full cleft), so a 1-px miss of two outlines is no
        # brighter than the rest of the seam
        cells = (labels > 0).astype(np.float32)
        beside_gap = ndimage.uniform_filter(phi, 3) / np.maximum(ndimage.uniform_filter(cells, 3), 1e-3)
        phi[geometry.gap] = (1.0 - cleft) * beside_gap[geometry.gap]
    # beside a shared border, spread cells are darker from 1 px in (LIVECell's MCF7: -9 grey
    # levels at 2-6 px), fading deep inside and towards their outline on background
    sd = geometry.seam_depth.ravel()[inside]
    beside = _smoothstep((sd - 0.5) / 1.5) * np.exp(-np.maximum(sd - 6.0, 0.0) / 6.0)
    beside *= _smoothstep((geometry.open_depth.ravel()[inside] - 1.0) / 3.0) * ~round_[lab]
    shade.ravel()[inside] = -m.seam_shade * seam_strength * scene_rng.uniform(0.6, 1.4, n + 1)[lab] * beside
    # granules span 1-3 px, a little more than the optics' blur
    return phi + ndimage.gaussian_filter(grains, 0.5, truncate=2.5), shade


def debris(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Optical thickness (H, W) of things that are not cells: specks, granular clumps, blobs.

    As dark as a cell's granules, so that granules without a cell around them do not
    make a cell; from a few to several hundred per frame, as in the real frames.
    """
    h, w = shape
    out = np.zeros(shape, np.float32)
    # single specks, and clumps of granular debris (2-40 granules within a few px)
    specks = int(rng.poisson(np.exp(rng.uniform(np.log(10), np.log(300)))))
    clumps = int(rng.poisson(np.exp(rng.uniform(np.log(3), np.log(400)))))
    sizes = np.minimum(rng.geometric(1 / 10, clumps) + 1, 40)
    spread = np.repeat(rng.uniform(1.0, 6.0, clumps), sizes)
    ys = np.r_[rng.uniform(0, h, specks), np.repeat(rng.uniform(0, h, clumps), sizes) + rng.normal(0, spread)]
    xs = np.r_[rng.uniform(0, w, specks), np.repeat(rng.uniform(0, w, clumps), sizes) + rng.normal(0, spread)]
    ys, xs = ys.astype(int), xs.astype(int)
    keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    ys, xs = ys[keep], xs[keep]
    amp = rng.exponential(110.0, ys.size) * np.where(rng.random(ys.size) < 0.3, -0.6, 1.0)
    np.add.at(out, (ys, xs), amp.astype(np.float32))
    # blobs: small in-focus ones (sharp discs) and out-of-focus ones (soft-edged, faint after
    # the optics), drawn in their own windows: no full-frame filter for a handful of blobs
    for _ in range(int(rng.poisson(6))):
        r = rng.uniform(2, 12)
        y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
        in_focus = r < 5 and rng.random() < 0.5
        reach = r + (1 if in_focus else 6)
        sl = (slice(max(int(y0 - reach), 0), min(int(y0 + reach) + 1, h)),
              slice(max(int(x0 - reach), 0), min(int(x0 + reach) + 1, w)))
        yy, xx = np.ogrid[sl]
        dist = np.sqrt((yy - y0) ** 2 + (xx - x0) ** 2)
        if in_focus:
            out[sl] += rng.uniform(15, 60) * (dist <= r)
        else:
            out[sl] += rng.uniform(-20, 20) * _smoothstep((r - dist) / 5.0 + 0.5)
    return ndimage.gaussian_filter(out, 0.7, truncate=2.5)


def background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Background grey (H, W) float32: level 128, slow drift, camera noise, horizontal streaks."""
    h, w = shape
    yy = np.cos(np.pi * np.arange(3)[None, :] * (np.arange(h)[:, None] + 0.5) / h)
    xx = np.cos(np.pi * np.arange(3)[:, None] * (np.arange(w)[None, :] + 0.5) / w)
    modes = rng.normal(0.0, 0.4, (3, 3))
    out = (128.0 + yy @ modes @ xx).astype(np.float32)
    # streaks: noise stretched along the rows (the real frames' faint horizontal banding),
    # drawn at a quarter of the columns: 4x cheaper, and as smooth along a row
    streaks = _smooth_noise(rng, (h, -(-w // 4)), (0.8, rng.uniform(1.5, 4)))
    out += rng.uniform(0.2, 0.6) * np.repeat(streaks, 4, axis=1)[:, :w]
    # camera noise, slightly correlated between neighbours as in the real frames
    out += rng.uniform(0.9, 1.3) * _smooth_noise(rng, shape, 0.4)
    return out


def render_frame(rng: np.random.Generator, m: Morphology, labels: np.ndarray, rounded: np.ndarray,
                 crowding: float = 0.5, scene_rng: np.random.Generator | None = None) -> np.ndarray:
    """Phase-contrast uint8 (H, W) frame of the cells in ``labels`` (int32 (H, W), 0 = background).

    rounded: bool (cells,), which cells are rounded up; crowding: 0 sparse .. 1 confluent;
    scene_rng: random numbers of the seams between cells, the debris, the optics and the
    background (default: ``rng``): a stream of their own keeps them where they are when the
    cells change (the cells draw as many numbers as they have pixels).
    """
    scene_rng = rng if scene_rng is None else scene_rng
    # the scene's fixed-size draws first, the seams' (one per cell) last
    not_cells = debris(scene_rng, labels.shape)
    psf, halo, gain = scene_rng.uniform((0.9, 0.45, 1.6), (1.3, 0.65, 2.4))
    grey = background(scene_rng, labels.shape)
    phi, shade = cell_thickness(rng, m, labels, rounded, crowding, scene_rng)
    phi += not_cells
    # the optics: a band-pass, the point-spread function minus the halo's wider blur
    image = ndimage.gaussian_filter(phi, psf, truncate=3.0) - ndimage.gaussian_filter(phi, halo)
    # halos are brighter than bodies are dark (round cells in LIVECell: +28 vs -19 grey levels)
    image *= np.where(image > 0, 1.4, 0.9) * gain
    image += shade + grey
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
