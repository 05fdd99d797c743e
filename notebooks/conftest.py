"""nbval settings for the course notebooks (``make nbval``).

What native libraries print on stderr (TensorFlow's and oneDNN's C++ logs, e.g. "oneDNN
supports DT_UINT8 only on platforms with AVX-512") depends on the CPU and on which cell
first runs a kernel, so checked cells compare stdout and results, never stderr.

Checked cells that print metrics compare their numbers with a tolerance: a decimal number
(``0.800``, ``71.4%``) matches its stored value within ``ABS_TOLERANCE`` or ``REL_TOLERANCE``,
so a retrained model's small drift passes while a stored AP of 0.052 against a fresh 0.001
fails. Integers (counts, shapes, epochs) and all other text must match exactly, after the
sanitizers in ``tests/nbval_sanitize.cfg``. A regex sanitizer cannot do this: rounding by
truncation flips at every boundary (0.7999 -> 0.79, 0.8001 -> 0.80).
"""
from __future__ import annotations

import math
import re

from nbval.plugin import IPyNbCell

#: Decimal numbers only: integers must match exactly.
DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])")
ABS_TOLERANCE = 0.02  # metrics in [0, 1] (IoU, Dice, AP) printed with 2-4 decimals
REL_TOLERANCE = 0.05  # larger numbers (losses, percentages)
TEXT_FIELDS = ("text", "text/plain", "text/markdown", "text/html")


def within_tolerance(fresh: float, stored: float) -> bool:
    return math.isclose(fresh, stored, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE + 1e-12)


def align_numbers(fresh: str, stored: str) -> str:
    """``fresh`` with each decimal number written as in ``stored`` where the two agree within tolerance.

    Only when the texts are the same around their numbers (same words, same count of
    decimals); otherwise ``fresh`` is returned unchanged and nbval reports the difference.
    """
    if not isinstance(fresh, str) or not isinstance(stored, str):
        return fresh
    fresh_text, stored_text = DECIMAL.split(fresh), DECIMAL.split(stored)
    if fresh_text != stored_text:
        return fresh
    numbers = [s if within_tolerance(float(f), float(s)) else f
               for f, s in zip(DECIMAL.findall(fresh), DECIMAL.findall(stored))]
    return "".join(part for pair in zip(fresh_text, numbers + [""]) for part in pair)


def _align_output(fresh, stored):
    """A copy of output ``fresh`` (a NotebookNode) with its text aligned to ``stored``'s numbers."""
    if fresh.get("output_type") != stored.get("output_type") or fresh.get("name") != stored.get("name"):
        return fresh
    aligned = type(fresh)(fresh)
    if "text" in fresh and "text" in stored:
        aligned["text"] = align_numbers(fresh["text"], stored["text"])
    if isinstance(fresh.get("data"), dict) and isinstance(stored.get("data"), dict):
        aligned["data"] = type(fresh["data"])(
            {key: align_numbers(value, stored["data"][key]) if key in TEXT_FIELDS and key in stored["data"]
             else value for key, value in fresh["data"].items()})
    return aligned


_compare_exactly = IPyNbCell.compare_outputs


def _compare_with_tolerance(self, test, ref, skip_compare=None):
    """nbval's comparison after fresh numbers within tolerance of the stored ones are aligned."""
    test = [_align_output(fresh, stored) for fresh, stored in zip(test, ref)] + list(test[len(ref):])
    return _compare_exactly(self, test, ref, skip_compare)


IPyNbCell.compare_outputs = _compare_with_tolerance


def pytest_collection_modifyitems(items):
    for item in items:
        notebook = item.parent
        if hasattr(notebook, "skip_compare") and "stderr" not in notebook.skip_compare:
            notebook.skip_compare = (*notebook.skip_compare, "stderr")
