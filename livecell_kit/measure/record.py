"""The append-only record of frames measured so far: what lets an interrupted ``measure`` finish.

``<out>/measured.jsonl``: a first line with the run's settings (model fingerprint, threshold,
cell splitting, channel reading, name pattern), then one JSON line per image file with its
frames' measurements.  A file counts as measured when its line is complete and its key —
resolved path, size in bytes and modification time (ns) — still matches the file, so an
edited or replaced image is measured again.  A run killed mid-write leaves at most one torn
last line: it is cut off (with a note) and that file is measured again.  A record made with
other settings (another model, threshold, …) or one damaged elsewhere is started afresh with
a one-line note: it is the kit's derived file, the images are untouched.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from livecell_kit import atomic

RECORD_NAME = "measured.jsonl"
RECORD_KIND = "livecell-kit measure record"
RECORD_VERSION = 1


def model_fingerprint(model) -> str:
    """16 hex digits of SHA-256 over the model's weights (shapes, types, values): the same
    trained model gives the same fingerprint wherever it is loaded from."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        weight = np.ascontiguousarray(weight)
        digest.update(f"{weight.shape}{weight.dtype.str}".encode())
        digest.update(weight.tobytes())
    return digest.hexdigest()[:16]


def file_key(path) -> list:
    """``[resolved path, size, mtime_ns]``: changes when the file is replaced or edited."""
    path = Path(path)
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _header(settings: dict) -> str:
    return json.dumps({"kind": RECORD_KIND, "version": RECORD_VERSION, "settings": settings},
                      sort_keys=True) + "\n"


def _read_lines(path: Path) -> tuple[list[dict], str | None]:
    """Parsed lines of a record and why it cannot be resumed (None if it can); cuts a torn last line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], "new"
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: b"" after a final newline, else a torn write
    parsed = []
    for number, line in enumerate(complete, 1):
        try:
            parsed.append(json.loads(line))
        except ValueError:
            if number == len(complete) and not tail:  # a last line cut short by a full disk, say
                tail = line
                break
            return [], f"line {number} is not JSON (the file was changed outside the kit)"
    if tail:
        with open(path, "r+b") as fh:  # drop the torn line so appends start on a fresh line
            fh.truncate(len(raw) - len(tail) - (0 if raw.endswith(tail) else 1))
        print(f"{path}: its last line was cut off by an interrupted run; that file is measured again")
    if not parsed or parsed[0].get("kind") != RECORD_KIND:
        return [], "it is not a measure record"
    return parsed, None


def open_record(out_dir, settings: dict) -> tuple[dict[str, dict], Path]:
    """The lines measured earlier with these ``settings`` (by resolved path) and the record's path.

    Starts the record afresh (with a note saying why) when its settings differ or it is damaged.
    """
    path = Path(out_dir) / RECORD_NAME
    lines, problem = _read_lines(path)
    if problem is None and lines[0].get("settings") != json.loads(json.dumps(settings)):
        changed = sorted(k for k in set(settings) | set(lines[0].get("settings", {}))
                         if lines[0]["settings"].get(k) != json.loads(json.dumps(settings.get(k))))
        problem = f"it was made with other settings ({', '.join(changed)})"
    if problem is not None:
        if problem != "new":
            print(f"{path}: {problem}; measuring every frame afresh")
        atomic.write_bytes(path, _header(settings).encode("utf-8"))
        return {}, path
    return {line["key"][0]: line for line in lines[1:]}, path


def is_current(line: dict | None, key: list, want_labels: bool, out_dir) -> bool:
    """Whether a recorded ``line`` still holds for the file with ``key`` (and its label images,
    when they are wanted, exist)."""
    if line is None or line.get("key") != key:
        return False
    if want_labels and line.get("labels_possible", True):
        return all(row.get("labels") and (Path(out_dir) / row["labels"]).is_file() for row in line["rows"])
    return True


class RecordWriter:
    """Appends one line per measured file; each line reaches the file in one write and flush."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")

    def append(self, line: dict) -> None:
        self._fh.write(json.dumps(line, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

