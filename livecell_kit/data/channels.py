"""How a file with colour channels becomes grey frames: blended, or one frame per channel.

A grey image saved as RGB (all three channels equal) is simply grey: read silently.  When the
channels differ, the file is ambiguous — a real colour image, or several grey frames (time
points, focal planes) stored as the channels of one image, as ``tifffile.imwrite`` does with a
(3, H, W) stack — and blending the frames of a stack into one grey frame would measure a
frame that never existed.  So the reading is chosen by ``--channels``
(:data:`CHANNEL_READINGS`) and always said (:attr:`~livecell_kit.data.images.ImageInfo.reading`):

* ``grey``: one frame, ITU-R 601 luma Y = 0.299 R + 0.587 G + 0.114 B (alpha dropped);
* ``separate``: each colour channel (alpha dropped) is its own frame, as pages of the file;
* ``auto`` (default): ``separate`` for a TIFF that stores its channels as separate planes
  (planar configuration SEPARATE: how a stack saved as RGB looks), else ``grey``.
:func:`pillow_array` turns a Pillow image of any mode into these raw samples.
"""
from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np

CHANNEL_READINGS = ("auto", "grey", "separate")
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601


def is_colour(raw: np.ndarray) -> bool:
    """A frame with three or four samples per pixel (RGB/RGBA), (H, W, S)."""
    return raw.ndim == 3 and raw.shape[-1] in (3, 4)


def channels_differ(raw: np.ndarray) -> bool:
    """Whether a colour frame's R, G and B differ anywhere (alpha not counted)."""
    return is_colour(raw) and not (np.array_equal(raw[..., 0], raw[..., 1])
                                   and np.array_equal(raw[..., 0], raw[..., 2]))


def choose_reading(first: np.ndarray, planar: bool, channels: str = "auto") -> tuple[str, str | None]:
    """``("grey" | "separate", note or None)`` for a file whose first raw frame is ``first``.

    planar: the TIFF stores each channel as its own plane.  The note (None for grey images
    and plain grey files) says what was assumed and the flag that reads it the other way.
    """
    if channels not in CHANNEL_READINGS:
        raise ValueError(f"channels must be one of {', '.join(CHANNEL_READINGS)}, got {channels!r}")
    if not channels_differ(first):
        return "grey", None
    kind = "planes" if planar else "colour channels"
    reading = channels if channels != "auto" else ("separate" if planar else "grey")
    if reading == "separate":
        return reading, (f"its 3 {kind} differ: read as 3 separate grey frames (pages)"
                         + ("; pass --channels grey to blend them into one grey frame" if channels == "auto" else ""))
    return reading, (f"its 3 {kind} differ: read as one grey frame (colour -> grey, luma "
                     f"0.299 R + 0.587 G + 0.114 B)"
                     + ("; pass --channels separate to read each as its own frame" if channels == "auto" else ""))


def to_frames(raw: np.ndarray, reading: str) -> list[np.ndarray]:
    """The grey (H, W) frames of one raw frame: one (luma, grey channel) or three (``separate``)."""
    if reading == "separate" and is_colour(raw):
        return [raw[..., c] for c in range(3)]
    return [to_grey(raw)]


def to_grey(raw: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, S) with S = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA -> grey (H, W), same type.

    Raises ValueError for other shapes (the reader adds the file's name).
    """
    if raw.ndim == 2:
        return raw
    if raw.ndim == 3 and raw.shape[-1] in (1, 2):
        return raw[..., 0]
    if is_colour(raw):
        y = raw[..., :3].astype(np.float64) @ LUMA
        # back to the source type, so to_uint8 applies the same rules as for grey files
        return (np.rint(y) if np.issubdtype(raw.dtype, np.integer) else y).astype(raw.dtype)
    raise ValueError(f"a frame of shape {raw.shape}")


def pillow_array(path: Path, im) -> np.ndarray:
    """A Pillow image's raw samples: (H, W) grey or (H, W, S); palette, CMYK and other colour
    modes become RGB(A), and 16-bit colour PNGs keep all their bits (through imagecodecs)."""
    if im.mode in ("P", "PA", "RGBa", "RGBX"):
        im = im.convert("RGBA")
    elif im.mode == "La":
        im = im.convert("LA")
    elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    if im.format == "PNG" and im.mode in ("RGB", "RGBA", "LA"):
        # Pillow keeps only the top 8 bits of 16-bit colour/LA PNGs; IHDR byte 24 is the bit depth
        with open(path, "rb") as fh:
            if fh.read(25)[24:25] == b"\x10":
                return imagecodecs.png_decode(path.read_bytes())
    return np.asarray(im)
