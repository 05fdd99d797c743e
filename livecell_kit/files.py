"""Atomic file writes shared by every stage.

A file appears at its final path only once it is complete: writers fill a
temporary file in the same folder and rename it into place (``os.replace`` is
atomic on one file system). A crash, a full disk or Ctrl-C leaves the old file
or none — never half a file that a later run would take for a good one.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` when the block succeeds.

    suffix: ending of the temporary name, for writers that infer the format from it
        (``".keras"`` for Keras, ``".png"`` for Pillow). On any error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically; returns ``Path(path)``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)
    return Path(path)


def write_json(path, obj, indent: int | None = 2, **dumps_options) -> Path:
    """Write ``obj`` as UTF-8 JSON (newline-terminated) to ``path`` atomically; returns ``Path(path)``."""
    text = json.dumps(obj, indent=indent, **dumps_options) + "\n"
    return write_bytes(path, text.encode("utf-8"))
