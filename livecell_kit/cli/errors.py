"""What the ``livecell-kit`` command prints when a command fails, and its exit status.

A user sees one or a few lines on stderr, never a traceback:

* bad input (the kit's ``ValueError``/``OSError`` messages name the file and the fix): status 2,
  like argparse's usage errors;
* an operating-system error without such a message (``[Errno 28]`` from a full disk, a
  permission refused): the file or folder, what is wrong and what to do; status 2;
* Ctrl-C: one line saying what was kept and how to resume; status 130 (128 + SIGINT);
* anything else is a bug in the kit: its one-line message, and how to see the traceback; status 1.

``--debug`` (or env ``LIVECELL_KIT_DEBUG=1``) makes :mod:`livecell_kit.cli.commands` re-raise instead.
"""
from __future__ import annotations

import contextlib
import errno
import json
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

from livecell_kit import data, download, masks
from livecell_kit.download.cache import resolve_cache_dir

EXIT_BUG = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

DEBUG_ENV = "LIVECELL_KIT_DEBUG"

#: What Ctrl-C leaves behind, per command: every stage writes files atomically.
RESUME_HINTS = {
    "sample": "rerun the same command to finish the sample",
    "download": "files already fetched are kept; rerun the same command to resume",
    "masks": "the masks written so far are complete; rerun the same command to write them all",
    "train": "rerun the same command to resume from the last finished epoch",
    "evaluate": "no metrics were written; rerun the same command",
    "predict": "the predictions written so far are complete; rerun the same command",
    "measure": "frames measured so far are kept; rerun the same command to measure the rest",
    "student": "rerun the same command",
}

#: The fix for the operating-system errors a user can cause or cure, by errno.
_OS_FIXES = {
    errno.ENOENT: "check the path",
    errno.EACCES: "check its permissions, or choose another folder",
    errno.EPERM: "check its permissions, or choose another folder",
    errno.EROFS: "the file system is read-only: choose another folder",
    errno.EISDIR: "it is a folder: pass a file",
    errno.ENOTDIR: "part of the path is a file, not a folder: check the path",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.EEXIST: "remove it or choose another path",
}


@contextlib.contextmanager
def noting_ctrl_c() -> Iterator[list]:
    """Inside the block Ctrl-C raises KeyboardInterrupt as usual and is also noted in the yielded list.

    Some libraries turn a KeyboardInterrupt raised in their callbacks into another error (numpy
    converting a Pillow image gave ``TypeError: __array__() got an unexpected keyword argument
    'copy'``); the note lets the CLI still report "interrupted".
    """
    seen: list = []

    def note_and_raise(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, note_and_raise)
    except ValueError:  # not the main thread: Ctrl-C is not ours to handle
        yield seen
        return
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def interrupted_message(command: str) -> str:
    """The one line printed when Ctrl-C stops ``command``."""
    return f"livecell-kit {command}: interrupted; {RESUME_HINTS.get(command, 'rerun the same command')}"


def describe(err: BaseException, command: str, out=None) -> tuple[str, int]:
    """(message for stderr, exit status) for ``err`` raised by ``command``.

    out: the command's ``--out`` path, named when a full disk's error names no file.
    """
    prefix = f"livecell-kit {command}: error: "
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return prefix + _disk_full(err, out), EXIT_BAD_INPUT
    if isinstance(err, OSError) and err.errno is not None and err.strerror:
        return prefix + _os_error(err), EXIT_BAD_INPUT
    if isinstance(err, MemoryError):
        return (prefix + "out of memory; close other programs or use fewer or smaller images (train: a "
                "smaller --batch-size), and check the image sizes declared in the annotation JSON"), EXIT_BAD_INPUT
    name, text = _innermost_error(err)
    if isinstance(err, (ValueError, OSError)):
        return prefix + text, EXIT_BAD_INPUT
    if name in _INPUT_ERROR_NAMES:  # e.g. a bad image met inside TensorFlow's input pipeline
        return prefix + text, EXIT_BAD_INPUT
    return (f"livecell-kit {command}: internal error (a bug in livecell-kit): {name}: {text}\n"
            f"rerun with --debug (or {DEBUG_ENV}=1) to see the traceback, and please report it"), EXIT_BUG


def _os_error(err: OSError) -> str:
    """``[Errno 13] Permission denied: 'x'`` as ``x: permission denied; <fix>``."""
    where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    what = err.strerror[0].lower() + err.strerror[1:]
    fix = _OS_FIXES.get(err.errno, "check the path and rerun the same command")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and err.filename is not None:
        fix = _setting_fix(Path(err.filename)) or fix
    return f"{where}: {what}; {fix}" if where else f"{what}; {fix}"


def _setting_fix(path: Path) -> str | None:
    """For an unwritable folder the kit chose itself: the environment variable that moves it."""
    places = (("LIVECELL_KIT_WORKDIR", data.default_workdir(), "work folder (indexes, mask caches, sample)"),
              ("LIVECELL_KIT_DATA", resolve_cache_dir(), "download cache"))
    path = path.expanduser().absolute()
    for variable, folder, what in places:
        folder = folder.expanduser().absolute()
        if path == folder or folder in path.parents:
            return (f"it is in the kit's {what} {folder}: make that writable, or set {variable} "
                    f"to a folder you can write to and rerun")
    return None


def _disk_full(err: OSError, out) -> str:
    """Name the full disk's file, or else the folders the command writes to, with their free space."""
    if err.filename is not None:
        places = [Path(err.filename)]
    else:
        places = [Path(p) for p in (out, data.default_workdir()) if p is not None]
    named = ", ".join(f"{p} ({_free_space(p)})" for p in places)
    return (f"no space left on device writing {'under ' if err.filename is None else ''}{named}; "
            "free some space (or pass another --out, or set LIVECELL_KIT_WORKDIR to a bigger disk) "
            "and rerun the same command")


def _free_space(path: Path) -> str:
    """Free space on the disk holding ``path`` (or its nearest existing parent), e.g. "12.3 MB free"."""
    path = Path(path).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return f"{shutil.disk_usage(path).free / 1e6:.1f} MB free"
    except OSError:
        return "free space unknown"


#: The last "SomeError: message" line of a traceback embedded in a message (TensorFlow's
#: errors carry the Python traceback of the tf.data function that failed).
_LAST_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$", re.MULTILINE)
_TF_NODE_SUFFIX = re.compile(r"\s*\[\[\{\{node [^\]]*\}\}\]\].*$", re.DOTALL)


#: Errors of bad input, by name, as they appear inside another library's message.
_INPUT_ERROR_NAMES = {cls.__name__ for cls in (
    ValueError, OSError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
    json.JSONDecodeError, download.DownloadError, data.ImageReadError, data.AnnotationError, masks.MaskError)}


def _innermost_error(err: BaseException) -> tuple[str, str]:
    """(error name, message) of ``err``, or of the error at the end of a traceback in its message."""
    text = str(err) or type(err).__name__
    found = _LAST_ERROR_LINE.findall(text) if "Traceback (most recent call last)" in text else []
    if not found:
        return type(err).__name__, text
    name, message = found[-1]
    return name, _TF_NODE_SUFFIX.sub("", message).strip()
