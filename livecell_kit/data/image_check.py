"""Image files checked against their annotation records before any work starts.

:func:`read_header` reads a file's frame size and page count from its header alone (TIFF
IFDs, PNG/JPEG headers) without decoding a pixel, and finds truncated files: TIFF strips
or tiles that run past the end of the file, a PNG without its closing IEND chunk.
:func:`check_image_files` applies it to every image of a split (or subset) and compares
each size with the record's ``width``/``height``: training and evaluation call it first,
so a missing, truncated, padded or cropped frame is named in one message before masks
are drawn or TensorFlow starts — not as a traceback from inside ``tf.data``, and not as
silently changed metrics (a frame padded to another size is scored against masks drawn
at the size the JSON declares).  Damage inside the compressed pixel data itself shows
only when the frame is decoded (:func:`~livecell_kit.data.images.read_image`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from livecell_kit.data.images import (ImageReadError, _check_extent, _check_file, _corrupt,
                                      _parse_tiff, _pillow_error)
from livecell_kit.data.layout import FIX_DATA

#: Problems listed one per line in a :class:`ImageCheckError`; the rest are counted.
MAX_LISTED = 10
#: The 12 bytes that end every PNG: the empty IEND chunk and its CRC.
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


class ImageCheckError(ValueError):
    """Image files disagree with their annotation records; the message lists each file,
    what is wrong with it and the fix.  ``problems``: one line per bad file."""

    def __init__(self, message: str, problems: tuple = ()):
        super().__init__(message)
        self.problems = tuple(problems)

    def __reduce__(self):
        return type(self), (str(self), self.problems)


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says: ``shape`` (H, W) of one frame in px, ``pages`` frames."""

    path: Path
    shape: tuple[int, int]
    pages: int


def read_header(path) -> ImageHeader:
    """Frame size and page count of an image file from its header; no pixel is decoded.

    Raises :class:`~livecell_kit.data.images.ImageReadError` (as ``read_image`` would)
    when the file is missing, not an image, has a broken TIFF structure, or is truncated.
    """
    path, kind = _check_file(path)
    if kind == "png" and not png_is_complete(path):
        raise _corrupt(path, "it ends before the PNG's final IEND chunk (truncated download or copy?)")
    if kind == "tiff":
        try:
            tif, series, layouts = _parse_tiff(path)
        except ImageReadError:
            raise
        except Exception:  # tifffile cannot parse it: Pillow (libtiff) may, as in read_image
            pass
        else:
            with tif:
                for s in series:
                    _check_extent(path, _data_end(s), tif.filehandle.size)
                dims = dict(zip(series[0].axes, series[0].shape))
                return ImageHeader(path, (int(dims.get("Y", 1)), int(dims.get("X", 1))),
                                   sum(n for n, _ in layouts))
    try:
        with Image.open(path) as im:
            width, height = im.size
            pages = getattr(im, "n_frames", 1) if im.format == "TIFF" else 1
    except Exception as exc:
        raise _pillow_error(path, exc) from exc
    return ImageHeader(path, (int(height), int(width)), int(pages))


def png_is_complete(path, tail: int = 4096) -> bool:
    """True when a PNG file's last ``tail`` bytes hold its IEND chunk (a few writers append
    bytes after it); a truncated PNG lacks it."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        fh.seek(max(0, fh.tell() - tail))
        return PNG_END in fh.read()


def _data_end(series) -> int:
    """Byte just past the image data of a tifffile series: the end of its last strip or tile."""
    pages = [p for p in series.pages if p is not None]
    if not pages and series.dataoffset is not None:
        return series.dataoffset + series.nbytes
    return max((o + c for p in pages for o, c in zip(p.dataoffsets, p.databytecounts) if c), default=0)


def image_file_problem(path, record: dict, source) -> str | None:
    """What is wrong with one image file for its annotation ``record``, as a sentence; None when fine.

    source: the annotation file, named in the message.
    """
    try:
        header = read_header(path)
    except ImageReadError as err:
        return str(err)
    if header.pages > 1:
        return (f"image {path} is a stack of {header.pages} pages, but an annotated frame is one "
                f"page; save the annotated page as its own file")
    height, width = int(record["height"]), int(record["width"])
    if header.shape != (height, width):
        return (f"image {path} is {header.shape[1]} x {header.shape[0]} px (width x height) but "
                f"{source} (image id {record['id']}) declares {width} x {height}: the file was "
                f"padded, cropped or replaced, or the record is wrong — restore the original frame "
                f"({FIX_DATA}) or correct the record's width/height")
    return None


def check_image_files(split, purpose: str = "use") -> None:
    """Check every image of ``split`` (a ``data.Split`` or subset) before ``purpose`` (e.g. "training").

    Each file must exist, have an intact header (see :func:`read_header`), hold one page
    and have the size its record declares.  Raises :class:`ImageCheckError` listing every
    bad file (the first :data:`MAX_LISTED` by name).  Cost: the headers only, a small
    fraction of decoding the frames.
    """
    problems = [p for p in (image_file_problem(split.image_path(r), r, split.annotation_file)
                            for r in split.images) if p]
    if not problems:
        return
    listed = "\n  ".join(problems[:MAX_LISTED])
    more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    raise ImageCheckError(f"{len(problems)} of {len(split.images)} {split.name} images under {split.root} "
                          f"cannot be used for {purpose}:\n  {listed}{more}", problems)
