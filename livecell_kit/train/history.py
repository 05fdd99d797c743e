"""The per-epoch record of a run: history.json and history.csv, rewritten whole after each epoch.

Both files hold the same rows, one per finished epoch, in epoch order.  Each is
written to a temporary file and renamed (:mod:`livecell_kit.atomic`), so a kill
leaves the previous version, never half a file; CSV is rewritten from the rows
rather than appended to, so an epoch trained again after a resume replaces its
row instead of adding a second one.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from livecell_kit import atomic

HISTORY_JSON = "history.json"
HISTORY_CSV = "history.csv"


def read_history(out_dir) -> dict:
    """history.json of a run: {"epoch": [0, 1, ...], "loss": [...], "val_iou": [...], ...}.

    Raises ValueError naming the file when it is not a history (a damaged disk, a hand edit).
    """
    path = Path(out_dir) / HISTORY_JSON
    if not path.exists():
        return {"epoch": []}
    try:
        hist = json.loads(path.read_text(encoding="utf-8"))
        epochs = hist["epoch"]
        if not all(isinstance(v, list) and len(v) == len(epochs) for v in hist.values()):
            raise ValueError("its columns differ in length")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not a readable training history ({exc}). Delete it and {HISTORY_CSV} "
                         f"and rerun the same command: training resumes from the backup, but the record of "
                         f"the earlier epochs is lost") from None
    return hist


def history_rows(hist: dict) -> dict[int, dict]:
    """A history as {epoch: {metric: value}}."""
    return {int(e): {k: v[i] for k, v in hist.items() if k != "epoch"} for i, e in enumerate(hist["epoch"])}


def write_history(out_dir, rows: dict[int, dict]) -> dict:
    """Write ``rows`` ({epoch: {metric: value}}) as history.json and history.csv; returns the history dict.

    Missing values are NaN in the dict, null in JSON and empty in CSV.
    """
    out_dir = Path(out_dir)
    epochs = sorted(rows)
    keys = sorted({k for r in rows.values() for k in r})
    hist = {"epoch": epochs, **{k: [rows[e].get(k, float("nan")) for e in epochs] for k in keys}}
    atomic.write_json(out_dir / HISTORY_JSON, hist)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for e in epochs:
        writer.writerow([e, *(_csv_value(rows[e].get(k)) for k in keys)])
    atomic.write_bytes(out_dir / HISTORY_CSV, text.getvalue().encode("utf-8"))
    return hist


def _csv_value(value):
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def keep_epochs_before(out_dir, epoch: int) -> dict:
    """Drop the rows of epochs >= ``epoch`` (trained, but not committed by a backup); returns the history."""
    hist = read_history(out_dir)
    if all(e < epoch for e in hist["epoch"]):
        return hist
    return write_history(out_dir, {e: r for e, r in history_rows(hist).items() if e < epoch})


def best_val_loss(out_dir, before_epoch: int | None = None) -> float | None:
    """Lowest finite val_loss in history.json (of epochs < ``before_epoch`` if given), or None."""
    hist = read_history(out_dir)
    values = [v for e, v in zip(hist["epoch"], hist.get("val_loss", []))
              if (before_epoch is None or e < before_epoch) and isinstance(v, (int, float)) and math.isfinite(v)]
    return min(values, default=None)
