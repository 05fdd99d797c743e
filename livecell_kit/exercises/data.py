"""Notebook 01's exercises: one image's outlines, and cells per image and cell type."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from livecell_kit.data import cell_outlines
from livecell_kit.exercises.core import NotYet, call_student, close, exercise, ok, require_number


class _FixtureSplit:
    """A tiny made-up split the outline checker also tries (duck-typed like a Split).

    Not on the student's screen: image 7 holds a cell drawn as **two** polygons (COCO allows
    several per cell; LIVECell's have one), image 3 a triangle, image 5 no cell at all.
    """

    name = "the checker's test split"
    _cells = {7: [[[10.5, 4.0, 30.0, 4.0, 30.0, 20.5, 10.5, 20.5]],
                  [[40.0, 40.0, 52.0, 44.0, 47.5, 58.0], [60.0, 41.0, 70.0, 41.0, 65.0, 50.0, 61.0, 49.0]]],
              3: [[[2.0, 9.0, 14.0, 3.0, 11.5, 16.0]]],
              5: []}
    images = [{"id": i, "file_name": f"BV2_Phase_X{i}_1_00d00h00m_1.tif", "height": 64, "width": 80} for i in _cells]

    def annotations_for(self, image_id):
        image_id = image_id["id"] if isinstance(image_id, Mapping) else image_id
        return [{"id": 100 * image_id + k, "image_id": image_id, "segmentation": seg}
                for k, seg in enumerate(self._cells.get(image_id, []))]


def _outline_cases(split) -> list[tuple[object, object, str]]:
    """(split, image id, where) the outline checker tries: some images of ``split`` other than
    the first (the one the notebook draws), then every image of :class:`_FixtureSplit`."""
    ids = [img["id"] for img in split.images]
    picked = list(dict.fromkeys(ids[k] for k in (len(ids) // 2, -1, 1) if len(ids) > 1)) or ids[:1]
    fixture = _FixtureSplit()
    return ([(split, i, f"image {i} of {getattr(split, 'name', 'the split')}") for i in picked]
            + [(fixture, img["id"], f"image {img['id']} of {fixture.name}") for img in fixture.images])


def _outline_problem(got, expected: list[np.ndarray], split, image_id, where: str) -> str | None:
    """Why ``got`` (what the student's function returned) differs from ``expected``, or None."""
    if isinstance(got, (Mapping, str, bytes, np.ndarray)) or not isinstance(got, Sequence):
        return f"return a list with one (N, 2) array per polygon; got {type(got).__name__}"
    if any(isinstance(item, Mapping) for item in got):
        return ("your list holds annotation dicts: take each annotation's \"segmentation\", "
                "a list of polygons, and return the polygons as (N, 2) arrays")
    try:
        arrays = [np.asarray(item, dtype=np.float64) for item in got]
    except (TypeError, ValueError) as error:
        return f"each polygon should be an (N, 2) array of numbers ({error})"
    flats = [np.asarray(p, np.float64) for ann in split.annotations_for(image_id)
             if not isinstance(ann["segmentation"], Mapping) for p in ann["segmentation"]]
    firsts = [np.asarray(ann["segmentation"][0], np.float64) for ann in split.annotations_for(image_id)
              if not isinstance(ann["segmentation"], Mapping) and ann["segmentation"]]
    if len(arrays) != len(expected):
        if len(arrays) == len(firsts) and all(a.size == f.size for a, f in zip(arrays, firsts)):
            return (f"on {where} one cell has two polygons: a segmentation is a *list* of polygons, "
                    "so take all of them, not only segmentation[0]")
        more_or_fewer = "more" if len(arrays) < len(expected) else "fewer"
        return (f"on {where} you return {len(arrays)} polygon(s); that image has {more_or_fewer}. Use the "
                "function's arguments: one array per polygon of split.annotations_for(image_id)")
    for array, want, flat in zip(arrays, expected, flats):
        if array.shape == want.shape and np.allclose(array, want):
            continue
        if array.ndim == 1 and array.size == want.size:
            return ("each polygon is still the flat list [x0, y0, x1, y1, ...]: reshape it to one row "
                    "per point, shape (N, 2), e.g. np.reshape(polygon, (-1, 2))")
        if array.shape == want.T.shape and np.allclose(array, want.T):
            return "your arrays are (2, N); the drawing wants one row per point: shape (N, 2)"
        if array.shape == want.shape and np.allclose(array, want[:, ::-1]):
            return "x and y are swapped: each row is (x, y) — x is the column, y the row — as in the file"
        if array.shape == want.shape and np.allclose(array, flat.reshape(2, -1).T):
            return ("the flat list alternates x, y, x, y: reshape it with (-1, 2) (rows of x, y), "
                    "not (2, -1) (all x first)")
        return (f"on {where} a polygon differs from the annotation's: its points, in order, are the "
                "segmentation's numbers taken two by two (x, y)")
    return None


@exercise
def check_outlines(outlines, split) -> str:
    """Exercise 01: ``outlines(split, image_id)`` returns an image's cell polygons as (N, 2) x/y arrays.

    Tried on a few images of ``split`` (not the one the notebook draws) and on a small made-up
    split (:class:`_FixtureSplit`), against :func:`livecell_kit.data.cell_outlines`; polygons
    must come in the annotations' order.
    """
    n_polygons = 0
    cases = _outline_cases(split)
    for case_split, image_id, where in cases:
        got = call_student(outlines, case_split, image_id, what="outlines(split, image_id)")
        expected = cell_outlines(case_split, image_id)
        problem = _outline_problem(got, expected, case_split, image_id, where)
        if problem:
            raise NotYet(problem)
        n_polygons += len(expected)
    return ok(f"right on {len(cases)} images ({n_polygons} polygons), among them a made-up cell drawn "
               "as two polygons and an image without cells: each polygon is an (N, 2) array of x, y.")


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

