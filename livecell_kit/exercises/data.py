"""Notebook 01's exercise: cells per image and cell type."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from livecell_kit.exercises.core import NotYet, close, exercise, ok, require_number


@exercise
def check_cells_per_type(answer: Mapping[str, float], split) -> str:
    """Exercise 01: mean number of annotated cells per image, for each cell type of ``split``."""
    counts: dict[str, list[int]] = {}
    for image, n_cells in zip(split.images, split.cell_counts()):
        counts.setdefault(split.cell_type(image), []).append(int(n_cells))
    expected = {t: float(np.mean(c)) for t, c in counts.items()}
    if not isinstance(answer, Mapping):
        raise NotYet(f"answer should be a dict {{cell type: mean cells per image}}, got {type(answer).__name__}")
    missing = sorted(set(expected) - set(answer))
    if missing:
        raise NotYet(f"cell types missing from your dict: {missing}")
    for cell_type, value in expected.items():
        got = require_number(answer[cell_type], f"answer[{cell_type!r}]")
        if not close(got, value, rel=1e-3):
            if close(got, sum(counts[cell_type]), rel=1e-3):
                raise NotYet(f"{cell_type}: that is the total over its images; divide by how many images it has")
            hint = "too high" if got > value else "too low"
            raise NotYet(f"{cell_type}: {got:.2f} is {hint}. Count annotations per image "
                         f"(split.annotations_for(image['id'])) and average over that type's images.")
    crowded = max(expected, key=expected.get)
    return ok(f"{crowded} is the most crowded type here ({expected[crowded]:.1f} cells per image).")


#: Masks the RLE checker builds (rows, columns, seed, cell fraction): not on the student's screen,
#: one starting with a cell pixel (counts[0] == 0), one without any cell.
