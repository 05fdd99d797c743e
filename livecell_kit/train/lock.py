"""One ``train`` at a time per run folder: an operating-system lock on ``out_dir/.train.lock``.

A second ``train`` into a busy folder stops at once with a message naming the folder
and the process that holds it, rather than waiting: a run takes minutes to hours, the
second one could only repeat the first one's work (or, with other settings, fail after
the wait), and a command that silently waits that long looks hung.  The lock dies
with its holder — even after kill -9 — so a lock file left behind never blocks a rerun.
"""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from livecell_kit import atomic

LOCK_NAME = ".train.lock"


class RunFolderBusy(BlockingIOError):
    """Another process is training into the same run folder."""


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError):  # Windows: the locked byte cannot be read
        return path.read_text(encoding="utf-8").strip()
    return ""


@contextlib.contextmanager
def run_lock(out_dir) -> Iterator[Path]:
    """Hold the run folder ``out_dir``'s lock for the block (creating the folder); yields the lock file.

    Raises :class:`RunFolderBusy` (an OSError) when another process holds it.
    """
    path = Path(out_dir).resolve() / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        if not atomic.try_lock(handle, path):
            holder = _holder(path) or "another process"
            raise RunFolderBusy(f"{path.parent} is in use by another `train` ({holder}, lock file {path}). "
                                f"Wait for it to finish or stop it, then rerun the same command; or train "
                                f"into another --out folder")
        handle.truncate(0)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield path
        finally:
            atomic.unlock(handle)
