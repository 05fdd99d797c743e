"""Files the kit writes into a data root, and the record that keeps a rerun off the user's edits.

Downloads reach the data root as copies of the cached file — reflinks (shared blocks, copied
on write) where the file system has them (Btrfs, XFS), else plain copies — not hard links:
through a hard link, editing a file in the data root edits the cache, whose copy every later
download then hands out.

``<root>/.livecell-kit-written.json`` (:data:`WRITTEN`) records the size, mtime and sha256 of
each file the kit wrote.  A rerun replaces a file only while it is still what the kit wrote
(or missing); a file changed since is kept, with one line naming it and how to get the
original back.  Callers hold the data root's lock (:func:`~livecell_kit.download.cache.locked`).
"""
from __future__ import annotations

import json
import re
import shutil
import sys
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm.auto import tqdm

from livecell_kit import atomic
from livecell_kit.data.index import sha256

try:
    import fcntl
except ImportError:  # Windows: plain copies
    fcntl = None

WRITTEN = ".livecell-kit-written.json"
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}\.tmp")  # atomic.atomic_path's temp files
_FICLONE = 0x40049409  # Linux ioctl: make dst share all of src's blocks


def _records(root: Path) -> dict:
    try:
        records = json.loads((root / WRITTEN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _key(root: Path, target: Path) -> str:
    return target.relative_to(root).as_posix()


def _as_written(root: Path, target: Path) -> dict | None:
    """The record of ``target`` when the file there still has the recorded size and mtime."""
    record = _records(root).get(_key(root, target))
    try:
        st = target.stat()
    except FileNotFoundError:
        return None
    if isinstance(record, dict) and (record.get("size"), record.get("mtime_ns")) == (st.st_size,
                                                                                    st.st_mtime_ns):
        return record
    return None


def record_written(root, target, digest: str | None = None) -> None:
    """Note that the kit just wrote ``target`` (under ``root``); ``digest``: its sha256 if known."""
    root, target = Path(root), Path(target)
    st = target.stat()
    records = _records(root)
    records[_key(root, target)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                   "sha256": digest or sha256(target, progressbar=False)}
    atomic.write_json(root / WRITTEN, records, indent=1)


def _keep_users(target: Path) -> bool:
    tqdm.write(f"livecell-kit: kept {target}: it differs from the file the kit wrote there (edited "
               f"since?). To get LIVECell's version back, delete it (or move it away) and rerun "
               f"`livecell-kit download`.", file=sys.stderr)
    return False


def may_write(root, target, same_as: str | None = None) -> bool:
    """True when the kit may (re)write ``target``: it is missing, still what the kit wrote, or
    its sha256 is ``same_as``; otherwise one line says it is kept, and False."""
    root, target = Path(root), Path(target)
    if not target.exists() or _as_written(root, target):
        return True
    if same_as and sha256(target, progressbar=False) == same_as:
        return True
    return _keep_users(target)


def write_file(root, target, write: Callable[[Path], object], same_as: str | None = None) -> bool:
    """``write(target)`` and record it, if :func:`may_write`; returns whether it wrote."""
    if not may_write(root, target, same_as):
        return False
    write(Path(target))
    record_written(root, target)
    return True


def _copy(src: Path, dst: Path) -> None:
    if fcntl is not None:
        with open(src, "rb") as s, open(dst, "wb") as d:
            try:
                fcntl.ioctl(d.fileno(), _FICLONE, s.fileno())
                return
            except OSError:
                pass  # no reflinks here (ext4, tmpfs, across file systems)
    shutil.copyfile(src, dst)


def place_copy(cached, target, root, digest: str) -> bool:
    """Put a copy of the cached file (sha256 ``digest``) at ``target`` under ``root``, atomically.

    Nothing is copied when ``target`` already holds these bytes; a ``target`` changed since
    the kit wrote it is kept (see the module docstring).  Returns False when it kept one.
    """
    cached, target, root = Path(cached), Path(target), Path(root)
    if target.exists():
        record = _as_written(root, target)
        if record is None and sha256(target, progressbar=False) != digest:
            return _keep_users(target)
        if record is None:
            record_written(root, target, digest)  # the same bytes, put there by hand: the kit's now
            return True
        if record.get("sha256") == digest:
            return True
        # else: the kit's copy of an older download: replaced
    for stale in target.parent.glob(f".{target.name}.*.tmp"):  # a copy cut by a kill
        stale.unlink(missing_ok=True)
    with atomic.atomic_path(target) as tmp:
        _copy(cached, tmp)
    record_written(root, target, digest)
    return True


def damaged_files(base, written) -> list[tuple[str, str]]:
    """``(path, what is wrong)`` for each ``[path under base, size in bytes, CRC-32]`` of
    ``written`` whose file is missing or has another size or CRC-32.

    Costs a read of every file of the right size.
    """
    bad = []
    for rel, size, crc in written:
        path = Path(base) / rel
        try:
            have = path.stat().st_size
            if have != size:
                bad.append((rel, f"{have:,} of {size:,} bytes"))
            elif zlib.crc32(path.read_bytes()) != crc:
                bad.append((rel, "CRC-32 differs"))
        except OSError:
            bad.append((rel, "missing"))
    return bad


def sweep_temp_files(folders: Iterable[Path]) -> None:
    """Delete the temp files of atomic writes a kill cut short in ``folders`` and below
    (the caller holds the data root's lock, so no write of this kit is under way there)."""
    for folder in folders:
        if Path(folder).is_dir():
            for stale in Path(folder).rglob(".*.tmp"):
                if _TEMP_NAME.fullmatch(stale.name) and stale.is_file():
                    stale.unlink(missing_ok=True)
