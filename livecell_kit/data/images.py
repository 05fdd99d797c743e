"""Reading image files into one uint8 (H, W) grey frame: formats, colour, pages, errors.

Formats (chosen by the file's first bytes; the name must end in one of :data:`SUFFIXES`):

* TIFF through tifffile, with imagecodecs for compressed data: uncompressed, LZW (with
  or without the horizontal predictor — what LIVECell ships), Deflate/zlib, PackBits,
  JPEG.  If tifffile has no decoder for a file's compression (imagecodecs missing or
  too old), Pillow (libtiff) tries.
* PNG and JPEG through Pillow (16-bit RGB PNGs through imagecodecs: Pillow keeps only
  their top 8 bits).

Shapes: every frame comes back as uint8 (H, W) = (rows, columns); LIVECell is
520 x 704.  Colour (RGB/RGBA, 8 or 16 bit) whose channels are equal is grey; when they
differ, ``channels`` chooses luma or one frame per channel and :attr:`ImageInfo.reading`
says which was assumed (:mod:`livecell_kit.data.channels`).  Alpha is dropped (grey+alpha
keeps the grey).  Palette TIFFs go through their colour map; MINISWHITE TIFFs are inverted.

Intensities: :func:`livecell_kit.data.intensity.to_uint8`, decided per frame; the rule
applied is returned as :attr:`ImageInfo.scaling` (None when values were kept).

Pages: a file holds ``pages`` frames.  TIFF stacks and ImageJ/OME hyperstacks
(T, Z, C, ... planes) count every 2-D plane as a page, leading axes first.
:func:`read_image` refuses files with more than one page (the error says how
many); :func:`read_pages` / :func:`iter_pages` return them all, each scaled on its own.
Every failure is an :class:`ImageReadError` that says which of four kinds it is.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from livecell_kit.data.channels import choose_reading, pillow_array, to_frames, to_grey
from livecell_kit.data.intensity import to_uint8
from livecell_kit.data.layout import download_command

SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
#: numpy dtype kinds with grey values: bool, signed and unsigned integers, floats.
PIXEL_KINDS = "biuf"

_MAGIC = {b"II*\x00": "tiff", b"MM\x00*": "tiff", b"II+\x00": "tiff", b"MM\x00+": "tiff",
          b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg"}
_CODEC_FIX = ("pip install imagecodecs (conda: conda install -c conda-forge imagecodecs), "
              "or re-save the file as an uncompressed TIFF")
# tifffile logs (does not raise) when IFDs or an ImageJ stack run past the end of the file
_BROKEN_CHAIN = re.compile(r"page offset|offset to page|next page|corrupted tag list|missing data|"
                           r"ImageJ series metadata invalid")


class ImageReadError(OSError):
    """An image file cannot be read; the message names the file, the problem and the fix.

    kind: ``"missing"`` (no such file), ``"access"`` (cannot open it), ``"unsupported"``
    (a valid file the kit cannot read: file type, codec, pages, layout — never call these
    corrupt) or ``"corrupt"`` (broken or truncated data: re-download or re-export it).
    """

    def __init__(self, message: str, kind: str = "corrupt"):
        super().__init__(message)
        self.kind = kind

    def __reduce__(self):  # keep ``kind`` through pickling (worker processes)
        return type(self), (str(self), self.kind)


@dataclass(frozen=True)
class ImageInfo:
    """Where a frame came from and what was done to it.

    page: 0-based index of this frame; pages: frames in the file.
    source_dtype: pixel type in the file (e.g. ``"uint16"``); compression: e.g.
    ``"lzw+horizontal"``, ``"none"``, ``"png"``.  scaling: the intensity rule
    applied to reach uint8, or None when the values were kept.  reading: how colour
    channels that differ were read (``data.channels.choose_reading``), None for grey files.
    """

    path: Path
    page: int
    pages: int
    source_dtype: str
    compression: str
    scaling: str | None
    reading: str | None = None


# --------------------------------------------------------------------------- public API

def read_image(path) -> np.ndarray:
    """One single-page image file as uint8 (H, W); see the module docstring for the rules."""
    return read_image_info(path)[0]


def read_image_info(path) -> tuple[np.ndarray, ImageInfo]:
    """Like :func:`read_image`, also returning the :class:`ImageInfo` (scaling rule applied)."""
    with contextlib.closing(iter_pages(path)) as pages:
        return next(pages)


def read_pages(path) -> list[np.ndarray]:
    """Every page of a (multi-page) file as uint8 (H, W) arrays, in file order."""
    return [frame for frame, _ in iter_pages(path, allow_pages=True)]


def iter_pages(path, allow_pages: bool = False, channels: str = "auto") -> Iterator[tuple[np.ndarray, ImageInfo]]:
    """Yield ``(uint8 (H, W) frame, ImageInfo)`` per page, decoding one page at a time.

    allow_pages: False (what :func:`read_image` uses) raises ImageReadError for
        files with more than one page before decoding any but the first.
    channels: how colour channels that differ are read, ``"auto"``, ``"grey"`` or
        ``"separate"`` (each channel a page; see :mod:`livecell_kit.data.channels`).
    """
    path, kind = _check_file(path)
    opener = _tiff if kind == "tiff" else _pillow
    with opener(path) as (n_pages, compression, raws, planar):
        if n_pages == 0:
            raise _corrupt(path, "it holds no image")
        raws = iter(raws)
        first = next(raws)
        reading, note = choose_reading(first, planar, channels)
        n_pages *= 3 if reading == "separate" and note else 1
        if n_pages > 1 and not allow_pages:
            raise ImageReadError(
                f"image {path} is a stack of {n_pages} pages, but read_image reads one frame; "
                "use livecell_kit.data.images.read_pages(path) (or iter_pages) for all pages, "
                "`livecell-kit predict`, which predicts page by page, or save the page you "
                "want as its own file" + (f" ({note})" if note else ""),
                "unsupported")
        page = 0
        for raw in itertools.chain([first], raws):
            _check_pixel_type(path, raw)
            for plane in to_frames(raw, reading if note else "grey"):
                frame, scaling = to_uint8(_grey(path, plane))
                yield frame, ImageInfo(path, page, n_pages, str(raw.dtype), compression, scaling, note)
                page += 1


# --------------------------------------------------------------------------- helpers

def _corrupt(path: Path, what: str) -> ImageReadError:
    # The download that wrote a LIVECell frame checks its frames and refetches damaged ones.
    return ImageReadError(f"image {path} is corrupt or truncated: {what}; re-download it (LIVECell: "
                          f"`{download_command(path)}`) or export it again from the original", "corrupt")


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _check_file(path) -> tuple[Path, str]:
    """Existence, name and first bytes; returns (path, "tiff" | "png" | "jpeg")."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"image {path} does not exist; check the path (or the data root), "
                             "or fetch the data with `livecell-kit download --out DIR`", "missing")
    if path.is_dir():
        raise ImageReadError(f"image {path} is a folder, not an image file; pass the files "
                             "inside it (`livecell-kit predict` searches folders)", "unsupported")
    if path.suffix.lower() not in SUFFIXES:
        raise ImageReadError(f"image {path}: file type {path.suffix or '(none)'!r} is not "
                             f"supported; the kit reads {'/'.join(SUFFIXES)} — convert it, e.g. "
                             "in Fiji: File > Save As > Tiff", "unsupported")
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise ImageReadError(f"image {path} cannot be opened ({_why(exc)}); check its "
                             "permissions", "access") from exc
    if not head:
        raise _corrupt(path, "the file is empty (0 bytes)")
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return path, kind
    try:  # a valid image of another format, misnamed?
        with Image.open(path) as im:
            fmt = im.format
    except Exception:
        fmt = None
    if fmt:
        raise ImageReadError(f"image {path} is a {fmt} file despite its {path.suffix} name; the "
                             "kit reads TIFF, PNG and JPEG — convert it", "unsupported")
    raise _corrupt(path, f"it does not start like a TIFF, PNG or JPEG file (first bytes {head[:8]!r})")


def _check_pixel_type(path: Path, raw: np.ndarray) -> None:
    """Refuse pixels that have no grey value (complex, text, records): an "unsupported" file."""
    if raw.dtype.kind in PIXEL_KINDS:
        return
    what = "complex numbers" if raw.dtype.kind == "c" else f"kind {raw.dtype.kind!r}"
    raise ImageReadError(f"image {path} has pixels of type {raw.dtype} ({what}), which have no grey value; "
                         "the kit reads 1-bit, 8/16/32-bit integer and floating-point pixels — save the image "
                         "as 8- or 16-bit grey (for complex data, its magnitude; Fiji: Image > Type > 16-bit)",
                         "unsupported")


def _grey(path: Path, raw: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, S) -> grey (H, W): :func:`livecell_kit.data.channels.to_grey`."""
    try:
        return to_grey(raw)
    except ValueError:
        pass
    raise ImageReadError(f"image {path} has a frame of shape {raw.shape}; the kit reads grey, "
                         "grey+alpha, RGB or RGBA planes — save one channel as its own file "
                         "(Fiji: Image > Color > Split Channels)", "unsupported")


class _ThreadLog(logging.Handler):
    """Collects tifffile's ERROR records from this thread only (tf.data reads in parallel)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.thread, self.messages = threading.get_ident(), []

    def emit(self, record):
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


# --------------------------------------------------------------------------- TIFF

_COLOUR = (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)  # tifffile decodes YCbCr to RGB


def _tiff_layout(path: Path, series) -> tuple[int, str]:
    """Planes in one series and the sample handling ("grey", "colour", "palette", "invert")."""
    kf = series.keyframe
    photometric, samples = kf.photometric, kf.samplesperpixel
    if photometric in _COLOUR:
        mode = "colour"
    elif photometric == tifffile.PHOTOMETRIC.PALETTE and samples == 1:
        mode = "palette"
    elif photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE) and (
            samples == 1 or (samples == 2 and kf.extrasamples)):
        mode = "invert" if photometric == tifffile.PHOTOMETRIC.MINISWHITE else "grey"
    else:
        raise ImageReadError(
            f"image {path} has {samples} samples per pixel with photometric "
            f"{_name(tifffile.PHOTOMETRIC, photometric)}; the kit reads grey, grey+alpha, palette, "
            "RGB or RGBA TIFFs — save one channel or an RGB/grey copy", "unsupported")
    return _planes_per(series.shape, series.axes), mode


def _name(enum, value) -> str:
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def _predicted(kf) -> bool:  # tifffile ignores the predictor of JPEG-like codecs
    return kf.predictor != 1 and kf.compression not in tifffile.TIFF.IMAGE_COMPRESSIONS


def _missing_decoder(kf) -> str | None:
    """Name of the compression/predictor tifffile cannot decode for this page, else None."""
    if kf.compression != 1 and kf.compression not in tifffile.TIFF.DECOMPRESSORS:
        return f"{_name(tifffile.COMPRESSION, kf.compression)} compression"
    if _predicted(kf) and kf.predictor not in tifffile.TIFF.UNPREDICTORS:
        return f"{_name(tifffile.PREDICTOR, kf.predictor)} predictor"
    return None


def _compression_name(kf) -> str:
    name = _name(tifffile.COMPRESSION, kf.compression).lower()
    return name + "+" + _name(tifffile.PREDICTOR, kf.predictor).lower() if _predicted(kf) else name


def _planes(arr: np.ndarray, axes: str, mode: str, kf) -> np.ndarray:
    """Array with tifffile ``axes`` -> (N, H, W) or (N, H, W, S): leading axes become pages."""
    keep = [a for a in "YXS" if a in axes]
    order = [i for i, a in enumerate(axes) if a not in keep] + [axes.index(a) for a in keep]
    arr = arr.transpose(order).reshape((-1,) + tuple(arr.shape[axes.index(a)] for a in keep))
    if mode == "palette":  # colormap is (3, 2**bits) of 16-bit (sometimes 8-bit) values
        cmap = np.asarray(kf.colormap)
        rgb = np.moveaxis(cmap[:, arr], 0, -1)
        arr = (rgb // 257 if cmap.max() > 255 else rgb).astype(np.uint8)
    elif mode == "invert":  # MINISWHITE: 0 is white
        arr = ~arr if arr.dtype == np.bool_ else (
            np.iinfo(arr.dtype).max - arr if np.issubdtype(arr.dtype, np.integer) else -arr)
    return arr


def _check_extent(path: Path, end: int, size: int) -> None:
    """Raise if image data ending at byte ``end`` runs past the file's ``size`` (truncated download)."""
    if end > size:
        raise _corrupt(path, f"the file has {size} bytes but its image data runs to byte "
                             f"{end} (truncated download or copy?)")


def _parse_tiff(path: Path):
    """Open with tifffile and walk its IFDs; returns (TiffFile, series, layouts)."""
    log, tiff_log = _ThreadLog(), logging.getLogger("tifffile")
    tiff_log.addHandler(log)
    tif = None
    try:
        tif = tifffile.TiffFile(path)
        series = [s for s in tif.series if not s.keyframe.subfiletype & 1] or tif.series[:1]
        layouts = [_tiff_layout(path, s) for s in series]
        broken = [m for m in log.messages if _BROKEN_CHAIN.search(m)]
        if broken or not series:
            raise _corrupt(path, f"tifffile reports {broken[0][:200]!r}" if broken
                           else "it holds no image")
        return tif, series, layouts
    except BaseException:
        if tif is not None:
            tif.close()
        raise
    finally:
        tiff_log.removeHandler(log)


@contextlib.contextmanager
def _tiff(path: Path):
    """Yield ``(pages, compression, raw frames, planar)``; raw frames are (H, W[, S]) arrays;
    planar: colour stored as separate planes (a stack saved as RGB, say)."""
    try:
        tif, series, layouts = _parse_tiff(path)
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile cannot parse the structure: let libtiff try
        fallback = _corrupt(path, f"its TIFF structure cannot be parsed ({_why(exc)})")
    else:
        missing = next(filter(None, (_missing_decoder(s.keyframe) for s in series)), None)
        if not missing:
            planar = any(mode == "colour" and s.keyframe.planarconfig == tifffile.PLANARCONFIG.SEPARATE
                         for s, (_, mode) in zip(series, layouts))
            with tif:
                yield (sum(n for n, _ in layouts), _compression_name(series[0].keyframe),
                       _tiff_frames(path, tif, series, layouts), planar)
            return
        tif.close()
        fallback = ImageReadError(f"image {path} is a valid TIFF that needs the {missing} "
                                  f"decoder, which tifffile lacks here: {_CODEC_FIX}", "unsupported")
    with _pillow(path, fallback) as src:  # libtiff may read what tifffile cannot
        yield src


def _planes_per(shape, axes) -> int:
    return int(np.prod([n for n, a in zip(shape, axes) if a not in "YXS"]))


def _tiff_frames(path: Path, tif, series, layouts) -> Iterator[np.ndarray]:
    size = tif.filehandle.size
    for s, (n, mode) in zip(series, layouts):
        kf, ifds = s.keyframe, list(s.pages)
        if any(p is None for p in ifds) or len(ifds) * _planes_per(kf.shape, kf.axes) != n:
            # e.g. ImageJ files over 4 GB: one IFD, then all planes contiguous
            if s.dataoffset is not None:
                _check_extent(path, s.dataoffset + s.nbytes, size)
            chunks = [(s, s.axes)]
        else:
            chunks = [(p, kf.axes) for p in ifds]
        for src, axes in chunks:
            if src is not s:  # this page's strips/tiles
                _check_extent(path, max((o + c for o, c in zip(src.dataoffsets, src.databytecounts)
                                         if c), default=0), size)
            try:
                planes = _planes(src.asarray(), axes, mode, kf)
            except Exception as exc:
                raise _corrupt(path, f"its image data cannot be decoded ({_why(exc)})") from exc
            yield from planes


# --------------------------------------------------------------------------- Pillow

def _pillow_error(path: Path, exc: Exception) -> ImageReadError:
    """Classify a Pillow failure on a PNG/JPEG."""
    if isinstance(exc, Image.DecompressionBombError):
        return ImageReadError(f"image {path} is larger than Pillow's safety limit ({exc}); if you "
                              "trust it, set PIL.Image.MAX_IMAGE_PIXELS = None", "unsupported")
    if "not available" in str(exc):  # e.g. "decoder jpeg not available" in a stripped Pillow
        return ImageReadError(f"image {path} needs a decoder this Pillow lacks ({_why(exc)}); "
                              "reinstall pillow from PyPI or conda-forge", "unsupported")
    return _corrupt(path, f"Pillow cannot decode it ({_why(exc)})")


@contextlib.contextmanager
def _pillow(path: Path, error: ImageReadError | None = None):
    """Yield ``(pages, compression, raw frames, planar=False)`` via Pillow; ``error`` replaces Pillow's failures.

    Only TIFFs count frames; a PNG/JPEG is one frame (ignores APNG/MPO extras).
    """
    def fail(exc: Exception) -> ImageReadError:
        return error if error is not None else _pillow_error(path, exc)

    try:
        im = Image.open(path)
    except Exception as exc:
        raise fail(exc) from exc
    with im:
        def decode(page: int) -> np.ndarray:
            try:
                im.seek(page)
                return pillow_array(path, im)
            except Exception as exc:
                raise fail(exc) from exc

        first = decode(0)  # decode now: Image.open is lazy
        n = getattr(im, "n_frames", 1) if im.format == "TIFF" else 1
        compression = (str(im.info.get("compression", "tiff")) + " (read by Pillow)"
                       if im.format == "TIFF" else im.format.lower())
        yield n, compression, itertools.chain([first], map(decode, range(1, n))), False
