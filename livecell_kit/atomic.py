"""Atomic file writes, the one JSON writer and the one "done" stamp shared by every stage.

A file appears at its final path only once it is complete: writers fill a
temporary file in the same folder and rename it into place (``os.replace`` is
atomic on one file system). A crash, a full disk or Ctrl-C leaves the old file
or none — never half a file that a later run would take for a good one.

A *stamp* is a small JSON file written last, after everything it vouches for
(a mask cache, a sample, an extracted archive). A missing or unreadable stamp
means "not done", so an interrupted job is redone rather than trusted.

Temporary files and folders are created with the modes ``open()`` and ``mkdir``
use (0666 / 0777 less the user's umask), not ``tempfile``'s private 0600 / 0700:
they become the final files, which an instructor hands to students.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import stat
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

#: What flock / msvcrt.locking raise when another process holds the lock; anything else
#: means the file system offers no locks.
_HELD = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK)}
#: Errors of a folder the user cannot write into: reported with the folder's name, not a temp name.
_UNWRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
#: The names :func:`atomic_path` gives its temporary files: ``.<final name>.<8 hex>.tmp[.<ext>]``.
TEMP_FILE_NAME = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]{1,8})?$")
#: s: an unlocked temporary file younger than this may belong to a writer that has created it
#: but not yet locked it (microseconds), so it is left alone.
TEMP_GRACE_S = 10
#: s: where the file system has no locks, a temporary file this old was left by a killed writer
#: (the kit's writes into these folders take well under a minute).
STALE_TEMP_S = 3600


@contextlib.contextmanager
def atomic_path(path, suffix: str = "", hold_lock: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` when the block succeeds.

    suffix: ending of the temporary name, for writers that infer the format from it
        (``".keras"`` for Keras, ``".png"`` for Pillow). On any error the temporary file is removed.
    hold_lock: hold an operating-system lock on the temporary file during the block, which tells
        :func:`sweep_temp_files` that its writer is alive.  Only for writers that take no lock on
        the file themselves: HDF5 (Keras' .h5 and .keras files) locks its files, and would fail.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    claimed: list[Path] = []  # the temp name, known before it exists: Ctrl-C just after its creation still removes it
    try:
        tmp = _create_unique(path.parent, f".{path.name}.", ".tmp" + suffix, directory=False, claimed=claimed)
        # held while the temp file is written: :func:`sweep_temp_files` takes an unlocked one for
        # the leftover of a killed writer (the system drops the lock when its holder dies)
        with contextlib.ExitStack() as guard:
            if hold_lock and fcntl is not None:  # (Windows could not rename a file held open)
                _lock_quietly(guard.enter_context(open(tmp, "rb")))
            yield Path(tmp)
            os.replace(tmp, path)
    except BaseException:
        for leftover in claimed:
            with contextlib.suppress(OSError):  # not created, or the folder refuses: the error that matters is raised
                os.unlink(leftover)
        raise


def _lock_quietly(handle) -> bool:
    """Lock ``handle`` where the file system offers locks (no waiting); True when locked."""
    if fcntl is None:  # msvcrt locks would also block the writer's own writes
        return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def sweep_temp_files(folder) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder`` (not its subfolders).

    Only names :func:`atomic_path` gives (:data:`TEMP_FILE_NAME`), only plain files, and only
    those no live writer holds: unlocked and older than :data:`TEMP_GRACE_S` where the file
    system has locks, older than :data:`STALE_TEMP_S` where it has none.  Returns what was removed.
    For folders whose files are written by :func:`write_bytes` / :func:`write_json` (or
    ``atomic_path(..., hold_lock=True)``) only: other writers' temporary files carry no lock.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:  # missing or unreadable: nothing to sweep
        return removed
    for entry in entries:
        if not TEMP_FILE_NAME.match(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        with contextlib.suppress(OSError):  # gone already, or not ours to remove
            if _abandoned(entry):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _abandoned(entry: os.DirEntry) -> bool:
    """Whether no live writer holds the temporary file ``entry`` (see :func:`sweep_temp_files`)."""
    age = time.time() - entry.stat(follow_symlinks=False).st_mtime
    if fcntl is None:
        return age > STALE_TEMP_S
    if age <= TEMP_GRACE_S:
        return False
    with open(entry.path, "rb") as handle:
        return _lock_quietly(handle)


def file_crc32(path, block: int = 1 << 20) -> int:
    """CRC-32 of a file's bytes, read ``block`` bytes at a time."""
    crc = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            crc = zlib.crc32(chunk, crc)
    return crc


def part_records(folder, names) -> dict[str, list[int]]:
    """``{name: [size in bytes, CRC-32]}`` of the files ``names`` in ``folder``: what
    :func:`part_problem` checks them against later."""
    folder = Path(folder)
    return {name: [(folder / name).stat().st_size, file_crc32(folder / name)] for name in names}


def part_problem(folder, records, checksums: bool = True) -> str | None:
    """What is wrong with the files of ``folder`` that :func:`part_records` described, or None.

    Sizes are compared first (a stat each), then, when ``checksums``, the CRC-32 of every file.
    """
    folder = Path(folder)
    if not isinstance(records, dict) or not records:
        return "it has no record of its files (made by an older livecell-kit)"
    for name, (size, _) in records.items():
        try:
            st = os.stat(folder / name)
        except OSError:
            return f"{name} is missing"
        if not stat.S_ISREG(st.st_mode):
            return f"{name} is not a file"
        if st.st_size != size:
            return f"{name} is {st.st_size} bytes, not the {size} it was written with (truncated or replaced)"
    if checksums:
        for name, (_, crc) in records.items():
            try:
                if file_crc32(folder / name) != crc:
                    return f"{name} changed since it was written (checksum mismatch)"
            except OSError as exc:
                return f"{name} is unreadable ({exc.strerror or exc})"
    return None


def make_temp_dir(parent, prefix: str) -> Path:
    """Create and return a new empty folder ``parent/<prefix><random>`` (mode 0777 less the umask).

    For folders filled and then renamed into place, which ``tempfile.mkdtemp`` would leave
    readable by their owner only.
    """
    Path(parent).mkdir(parents=True, exist_ok=True)
    return _create_unique(Path(parent), prefix, "", directory=True)


def _create_unique(parent: Path, prefix: str, suffix: str, directory: bool, claimed: list | None = None) -> Path:
    """Create a file or folder under a fresh random name in ``parent``, exclusively (like mkstemp).

    The mode passed to the system call is the one ``open()`` / ``mkdir`` use, so the kernel
    applies the umask itself: no reading of the process-wide umask, which is not thread-safe.
    claimed: the name being created is put there first (and taken out when it was another's), so
    a caller interrupted in between knows what to remove.
    """
    claimed = [] if claimed is None else claimed
    for _ in range(100):
        candidate = parent / f"{prefix}{secrets.token_hex(4)}{suffix}"
        claimed.append(candidate)
        try:
            if directory:
                os.mkdir(candidate, 0o777)
            else:
                os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return candidate
        except FileExistsError:
            claimed.remove(candidate)
            continue
        except OSError as exc:
            if exc.errno in _UNWRITABLE:  # name the folder the user chose, not a hidden temp name
                raise type(exc)(exc.errno, f"{exc.strerror} (cannot write into this folder)",
                                str(parent)) from None
            raise
    raise FileExistsError(f"could not create a temporary name in {parent} after 100 tries; "
                          f"remove stale {prefix}* entries there")


def write_bytes(path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically; returns ``Path(path)``.

    The temporary file is locked while it is written (see :func:`sweep_temp_files`)."""
    with atomic_path(path, hold_lock=True) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def _plain(obj):
    """``obj`` with numpy scalars/arrays and paths made JSON types, and NaN/inf as None (JSON null)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(float(obj)) else None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path, obj, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict UTF-8 JSON (newline-terminated) to ``path`` atomically.

    numpy numbers and arrays become plain numbers and lists, paths become
    strings and NaN/inf become ``null`` (JSON has no NaN). ``indent=None``
    writes the compact form (no spaces), for large machine-read files.
    Returns ``Path(path)``.
    """
    separators = (",", ":") if indent is None else None
    try:  # numpy and paths converted as json meets them: the sample's COCO files 4.6 s -> 0.6 s
        text = json.dumps(obj, indent=indent, separators=separators, allow_nan=False, default=_json_type)
    except (TypeError, ValueError):  # NaN/inf (-> null) or numpy keys: the whole tree made plain first
        text = json.dumps(_plain(obj), indent=indent, separators=separators, allow_nan=False)
    return write_bytes(path, (text + "\n").encode("utf-8"))


def _json_type(obj):
    """``default`` of ``json.dumps``: a numpy value or a path as the JSON type it stands for."""
    if isinstance(obj, (np.ndarray, np.generic, Path)):
        return _plain(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_stamp(path) -> dict | None:
    """The stamp at ``path`` as a dict, or None when it is missing or unreadable (= not done)."""
    try:
        stamp = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def write_stamp(path, info: Mapping) -> Path:
    """Record that the job described by ``info`` is done; call it after the job's last write."""
    return write_json(path, dict(info), indent=1)


class LocksUnsupported(OSError):
    """The file system of a lock file offers no file locks (some network mounts)."""


def try_lock(handle, path) -> bool:
    """Take an exclusive operating-system lock on the open file ``handle`` (the file ``path``) without waiting.

    True when taken; False when another process holds it. The system drops the lock when
    its holder exits, even after kill -9, so a lock file left behind never blocks a rerun.
    Raises :class:`LocksUnsupported` where the file system has no locks: waiting would never
    end, and going on unlocked would let two runs write one file.
    """
    try:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return True
    except OSError as exc:
        if exc.errno in _HELD:
            return False
        raise LocksUnsupported(f"cannot lock {path} ({exc}): its file system offers no file locks; "
                               f"use a folder on a local disk") from None


def unlock(handle) -> None:
    """Release the lock :func:`try_lock` took on ``handle``."""
    if fcntl is not None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    else:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
