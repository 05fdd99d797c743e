"""Extracting a downloaded zip archive safely and at most once (:func:`safe_extract_zip`).

The kit's own because ``pooch.Unzip`` extracts in place and counts an archive as done when
its member files exist, so a file half-written by an interrupted run passes; the kit
extracts into a temp folder, moves the result into place and writes a stamp last; the next
extraction removes a temp folder a kill left behind (:func:`clear_stale_extractions` does
that alone, before a download).  It also refuses zip-slip members instead of silently
rewriting their paths, and archives that would expand implausibly or beyond the free disk
space (:func:`~livecell_kit.download.checks.check_zip`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from tqdm.auto import tqdm

from livecell_kit import atomic
from livecell_kit.download.cache import locked
from livecell_kit.download.checks import InvalidDownload, check_zip
from livecell_kit.download.ranges import DownloadError


def _remove_stale_extractions(dest: Path) -> None:
    """Delete temp folders that a killed extraction left in ``dest`` (the caller holds its lock)."""
    for stale in dest.glob(".extract-*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


def clear_stale_extractions(dest: Path) -> None:
    """Remove what a killed extraction into ``dest`` or ``dest/images`` left (no extraction may follow)."""
    for folder in (dest, dest / "images"):
        if any(folder.glob(".extract-*")):
            with locked(folder / ".extract.lock", f"another extraction into {folder}"):
                _remove_stale_extractions(folder)


def _check_free_space(dest: Path, needed: int, zip_path: Path) -> None:
    free = shutil.disk_usage(dest).free
    if needed > free:
        raise DownloadError(f"extracting {zip_path} needs {needed / 1e9:.2f} GB in {dest}, which has "
                            f"{free / 1e9:.2f} GB free; free some space or choose another --out.")


def safe_extract_zip(zip_path, dest, delete_bad: bool = True, progressbar: bool = False) -> Path:
    """Extract ``zip_path`` into ``dest`` safely and at most once; return ``dest``.

    Members with absolute paths or ``..``, and archives that would expand implausibly
    (:func:`~livecell_kit.download.checks.check_zip`), are refused with
    ``UnsafeArchive`` (a ``ValueError``); one larger than the free space raises
    ``DownloadError`` and is kept.
    Extraction goes to a temp folder inside ``dest`` whose top-level entries are then moved
    into place, so an interrupted run never leaves a half-extracted tree that looks done, and
    the next call removes a temp folder a kill left behind; a stamp file
    ``dest/.<zip name>.extracted`` (zip size and mtime) skips repeat runs.  A truncated or
    corrupt archive raises ``DownloadError`` and, with ``delete_bad``, deletes the archive
    so the next download fetches it again.  ``progressbar`` shows the bytes extracted.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    stamp = dest / f".{zip_path.name}.extracted"
    st = zip_path.stat()
    signature = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if atomic.read_stamp(stamp) == signature:
        return dest
    try:
        total = check_zip(zip_path)  # UnsafeArchive (not damaged: its message says what to do) passes
        dest.mkdir(parents=True, exist_ok=True)
        with locked(dest / ".extract.lock", f"another extraction into {dest}"):
            _remove_stale_extractions(dest)
            _check_free_space(dest, total, zip_path)
            _extract(zip_path, dest, progressbar)
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, InvalidDownload) as exc:
        if isinstance(exc, ValueError):
            raise
        if delete_bad:
            zip_path.unlink(missing_ok=True)
            fix = "it has been deleted; rerun the download to fetch it again"
        else:
            fix = "delete it and rerun the download"
        reason = exc if isinstance(exc, InvalidDownload) else \
            f"{zip_path} is not a complete zip archive ({exc})"
        raise DownloadError(f"{reason}; {fix}.") from None
    atomic.write_stamp(stamp, signature)
    return dest


def _extract(zip_path: Path, dest: Path, progressbar: bool) -> None:
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".extract-"))
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            with tqdm(total=sum(i.file_size for i in members), unit="B", unit_scale=True,
                      unit_divisor=1024, desc=f"extracting {zip_path.name}",
                      disable=not progressbar) as bar:
                for info in members:
                    archive.extract(info, tmp)  # raises BadZipFile on CRC errors
                    bar.update(info.file_size)
        _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_into(src: Path, dst: Path) -> None:
    """Move ``src``'s children into existing ``dst``: folders merge, anything else is replaced."""
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and target.is_dir():
            _move_into(entry, target)
            continue
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
