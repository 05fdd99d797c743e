"""Answer checkers for the notebooks' exercises.

Each public ``check_*`` function recomputes the right answer from the same inputs and shows
the student a short styled message: **Correct!** with what the answer means, **Not yet**
with what differs and where to look, or **Your turn** while the exercise still holds the
student copy's ``...`` placeholder. Checkers never raise at the student and never print a
traceback, so neither the checker's source nor the answer appears on screen; a wrong answer
says "too high"/"too low" and why, never the number.

Inside, a checker is a plain function that returns the success text or raises
:class:`NotYet`; :func:`exercise` turns it into the public, displaying checker and keeps
the verdict itself available as ``check_x.verdict(...)`` (for tests and instructors).
"""
from __future__ import annotations

import ast
import functools
import html
import inspect
import math
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from IPython import get_ipython  # ipywidgets, a runtime dependency, brings IPython
from IPython.display import display
from skimage import measure

from livecell_kit import instances
from livecell_kit.masks import distance_targets, uncompressed_rle


class NotYet(AssertionError):
    """The answer is not right yet; the message says why."""


@dataclass(frozen=True)
class Verdict:
    """What a checker concluded: ``status`` is "correct", "not yet" or "your turn"."""

    status: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == "correct"

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        return f"{_TITLES[self.status]} {self.message}"

    __repr__ = __str__  # the text/plain form a notebook stores and a terminal shows

    def _repr_html_(self) -> str:
        colour, background = _COLOURS[self.status]
        return (f'<div style="border-left:5px solid {colour};background:{background};color:#1b1b1b;'
                f'padding:6px 12px;margin:4px 0;border-radius:3px;font-family:sans-serif">'
                f'<b>{html.escape(_TITLES[self.status])}</b> {html.escape(self.message)}</div>')


_TITLES = {"correct": "Correct!", "not yet": "Not yet:", "your turn": "Your turn:"}
_COLOURS = {"correct": ("#2e7d32", "#e8f5e9"), "not yet": ("#e65100", "#fff3e0"),
            "your turn": ("#1565c0", "#e3f2fd")}
_YOUR_TURN = "replace each ... marked \"# your code\" in this cell with your code, then run the cell again."


def show(verdict: Verdict) -> None:
    """Display ``verdict``: a coloured box in Jupyter, one plain line in a terminal."""
    if get_ipython() is None:  # plain Python, a script or the CLI
        print(verdict)
    else:
        display(verdict)


def exercise(check: Callable[..., str]) -> Callable[..., None]:
    """Make ``check`` (returns the success text, raises :class:`NotYet`) a displaying checker.

    The public function returns None, so a correct answer prints no stray ``True``;
    ``public.verdict(*args)`` returns the :class:`Verdict` without displaying it.
    An argument still ``...`` (the student copy's placeholder), or a function whose body is
    still only ``...``, gives "Your turn".
    """

    @functools.wraps(check)
    def verdict(*args, **kwargs) -> Verdict:
        if any(_is_placeholder(value) for value in (*args, *kwargs.values())):
            return Verdict("your turn", _YOUR_TURN)
        try:
            return Verdict("correct", check(*args, **kwargs))
        except NotYet as reason:
            return Verdict("not yet", str(reason))

    @functools.wraps(check)
    def public(*args, **kwargs) -> None:
        show(verdict(*args, **kwargs))

    public.verdict = verdict
    return public


def _is_placeholder(value) -> bool:
    """True for ``...`` and for a function whose body is only ``...`` (after an optional docstring)."""
    if value is Ellipsis:
        return True
    if not inspect.isfunction(value):
        return False
    try:  # IPython keeps each cell's source, so this works for functions defined in a notebook
        tree = ast.parse(textwrap.dedent(inspect.getsource(value)))
    except (OSError, TypeError, SyntaxError):
        return False
    definition = tree.body[0] if tree.body else None
    if not isinstance(definition, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = definition.body[1:] if ast.get_docstring(definition, clean=False) is not None else definition.body
    return (len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and body[0].value.value is Ellipsis)


def call_student(function, *args, what: str = "your function"):
    """``function(*args)`` for a student's function; its exception becomes a :class:`NotYet`."""
    if not callable(function):
        raise NotYet(f"{what} should be a function (def ...), got {type(function).__name__}")
    try:
        result = function(*args)
    except Exception as error:  # the student's code: report it briefly instead of a traceback
        raise NotYet(f"{what} raised {type(error).__name__}: {error}") from None
    if result is None:
        raise NotYet(f"{what} returned None: end it with return ...")
    return result


def _close(answer, expected, rel=1e-6, abs_=1e-9) -> bool:
    return math.isclose(float(answer), float(expected), rel_tol=rel, abs_tol=abs_)


def _require_number(answer, what: str) -> float:
    if answer is None or isinstance(answer, (str, bytes)) or np.ndim(answer) != 0:
        raise NotYet(f"{what} should be a single number, got {type(answer).__name__}: {answer!r}")
    return float(answer)


def _ok(message: str) -> str:
    return message


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
        got = _require_number(answer[cell_type], f"answer[{cell_type!r}]")
        if not _close(got, value, rel=1e-3):
            if _close(got, sum(counts[cell_type]), rel=1e-3):
                raise NotYet(f"{cell_type}: that is the total over its images; divide by how many images it has")
            hint = "too high" if got > value else "too low"
            raise NotYet(f"{cell_type}: {got:.2f} is {hint}. Count annotations per image "
                         f"(split.annotations_for(image['id'])) and average over that type's images.")
    crowded = max(expected, key=expected.get)
    return _ok(f"{crowded} is the most crowded type here ({expected[crowded]:.1f} cells per image).")


#: Masks the RLE checker builds (rows, columns, seed, cell fraction): not on the student's screen,
#: one starting with a cell pixel (counts[0] == 0), one without any cell.
_RLE_CASES = ((4, 5, 1, 0.4), (7, 3, 2, 0.6), (9, 11, 3, 0.3), (6, 6, 4, 0.0))


def _fresh_rles() -> list[dict]:
    """Uncompressed RLEs of small random masks, plus one whose first pixel is a cell."""
    rles = []
    for rows, cols, seed, fraction in _RLE_CASES:
        mask = np.random.default_rng(seed).random((rows, cols)) < fraction
        rles.append(uncompressed_rle(mask.astype(np.uint8)))
    starts_with_cell = np.zeros((5, 4), np.uint8)
    starts_with_cell[:3, 0] = starts_with_cell[2:, 2] = 1
    rles.append(uncompressed_rle(starts_with_cell))
    return rles


@exercise
def check_rle_area(rle_area, rle: Mapping, stored_area: float | None = None) -> str:
    """Exercise 02: ``rle_area(counts)`` returns a mask's area in pixels from its run lengths.

    ``rle`` is the notebook cell's uncompressed RLE ``{"size": [h, w], "counts": [c0, c1, ...]}``:
    runs alternate background, foreground, background, … starting with background, in
    column-major order. The student's function is tested on that cell and on small RLEs built
    here, so returning the annotation's stored ``area`` (or any constant) cannot pass.
    ``stored_area``: the annotation's ``area`` field, only quoted in the success message.
    """
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        raise NotYet("this RLE is compressed; use the uncompressed counts list shown in the notebook")
    cases = [*_fresh_rles(), dict(rle)]
    for case in cases:
        runs = list(case["counts"])
        got = _require_number(call_student(rle_area, list(runs), what="rle_area(counts)"),
                              "what rle_area(counts) returns")
        expected = sum(runs[1::2])
        if _close(got, expected):
            continue
        where = "the notebook's cell" if case is cases[-1] else f"a {case['size'][0]}×{case['size'][1]} test mask"
        if len(runs) > 1 and _close(got, sum(runs[0::2])):
            raise NotYet(f"on {where} your function sums the background runs: counts start with a background run")
        if _close(got, sum(runs)):
            raise NotYet(f"on {where} your function counts every pixel: only every second run is cell")
        if case is not cases[-1] and stored_area is not None and _close(got, stored_area):
            raise NotYet("your function returns the annotation's stored area: compute it from counts, "
                         "the function's argument, so it works for any RLE")
        raise NotYet(f"on {where} the result is {'too high' if got > expected else 'too low'}: "
                     "add up the foreground runs of counts (runs alternate background, cell, background, …)")
    area = int(sum(counts[1::2]))
    note = ""
    if stored_area is not None:
        note = (" — the same as the annotation's area field." if _close(area, stored_area)
                else f"; the annotation's area field says {float(stored_area):g} px (the polygon's area, "
                     "not its rasterised pixels).")
    return _ok(f"right on {len(cases) - 1} test RLEs (one starts with a cell pixel, one has no cell) "
               f"and on this cell: {area} px{note}")


#: (kernel, in_channels, filters) the convolution checker tries, none of them the exercise's example.
_CONV_CASES = ((5, 3, 7), (3, 16, 16), (1, 16, 1), (2, 128, 64), (3, 64, 128))


def _convolutions(model) -> list:
    """The layers of a Keras ``model`` that are square convolutions with a bias (duck-typed)."""
    found = []
    for layer in getattr(model, "layers", []):
        kernel = getattr(layer, "kernel_size", None)
        if getattr(layer, "filters", None) and kernel and len(set(kernel)) == 1 and getattr(layer, "use_bias", False):
            found.append(layer)
    return found


@exercise
def check_conv_params(conv_params, model=None) -> str:
    """Exercise 03: ``conv_params(kernel, in_channels, filters)`` counts a convolution's weights and biases.

    Tried on several (kernel, in_channels, filters) cases and, given a Keras ``model``, on
    each of its square convolutions with a bias (their ``count_params()``), so the answer
    shown by ``model.summary()`` for one layer is not enough.
    """
    cases = [(k, c, f, k * k * c * f + f) for k, c, f in _CONV_CASES]
    layers = _convolutions(model) if model is not None else []
    cases += [(layer.kernel_size[0], int(layer.input.shape[-1]), layer.filters, layer.count_params())
              for layer in layers]
    for kernel, in_channels, filters, expected in cases:
        what = f"conv_params(kernel={kernel}, in_channels={in_channels}, filters={filters})"
        got = _require_number(call_student(conv_params, kernel, in_channels, filters, what="conv_params"), what)
        if _close(got, expected):
            continue
        if _close(got, expected - filters):
            raise NotYet(f"{what}: close — each filter also has one bias")
        if _close(got, kernel * kernel * filters + filters):
            raise NotYet(f"{what}: each filter has one {kernel}×{kernel} kernel slice per input channel")
        raise NotYet(f"{what} is {'too high' if got > expected else 'too low'}: each of the filters has a "
                     "kernel×kernel slice of weights per input channel, plus one bias")
    message = f"right on {len(_CONV_CASES)} test convolutions"
    if layers:
        total = sum(layer.count_params() for layer in layers)
        message += (f" and on all {len(layers)} convolutions of {model.name}: together {total:,} "
                    f"of its {model.count_params():,} parameters")
    return _ok(message + ".")


@exercise
def check_background_accuracy(answer, masks: Sequence[np.ndarray]) -> str:
    """Exercise 04: pixel accuracy of a model that predicts "no cell" everywhere, on ``masks`` (0/1)."""
    got = _require_number(answer, "answer")
    total = sum(int(np.asarray(m).size) for m in masks)
    background = sum(int(np.count_nonzero(np.asarray(m) == 0)) for m in masks)
    expected = background / total
    if not 0.0 <= got <= 1.0:
        raise NotYet("give accuracy as a fraction between 0 and 1, not a percentage")
    if _close(got, expected, rel=1e-3):
        return _ok(f"{expected:.1%} accuracy without finding a single cell — "
                   "that is why the kit reports IoU and Dice next to accuracy.")
    if _close(got, 1 - expected, rel=1e-3):
        raise NotYet("that is the foreground fraction: the all-background model is right on background pixels")
    raise NotYet(f"{got:.4f} is {'too high' if got > expected else 'too low'}: "
                 "count background pixels (mask == 0) over all pixels of all masks")


@exercise
def check_iou(answer, truth: np.ndarray, prediction: np.ndarray) -> str:
    """Exercise 05: foreground intersection over union of two 0/1 masks of the same shape."""
    truth, prediction = np.asarray(truth).astype(bool), np.asarray(prediction).astype(bool)
    got = _require_number(answer, "answer")
    inter = np.count_nonzero(truth & prediction)
    union = np.count_nonzero(truth | prediction)
    expected = 1.0 if union == 0 else inter / union
    if _close(got, expected, rel=1e-4):
        return _ok(f"IoU = TP / (TP + FP + FN) = {inter} / {union} = {expected:.4f}.")
    dice = 2 * inter / max(1, np.count_nonzero(truth) + np.count_nonzero(prediction))
    if _close(got, dice, rel=1e-4):
        raise NotYet("that is the Dice coefficient (2·TP / (2·TP + FP + FN)); IoU divides by the union")
    raise NotYet(f"{got:.4f} is {'too high' if got > expected else 'too low'}: "
                 "divide the pixels both masks mark by the pixels either mask marks")


# ---------------------------------------------------------------- notebooks 04 and 05, further exercises

@exercise
def check_crops_seen(answer, epochs: int, steps_per_epoch: int, batch_size: int) -> str:
    """Exercise 04b: training crops the network sees in a run of ``epochs`` × ``steps_per_epoch`` batches."""
    got = _require_number(answer, "answer")
    updates = epochs * steps_per_epoch
    expected = updates * batch_size
    if _close(got, expected):
        return _ok(f"{updates} weight updates (one per batch) × {batch_size} crops per batch: "
                   f"every crop is drawn afresh, so no two of them are quite the same.")
    if _close(got, updates):
        raise NotYet("that counts batches (weight updates); each batch holds several crops")
    if _close(got, steps_per_epoch * batch_size):
        raise NotYet("that is one epoch; the run trains for several")
    raise NotYet(f"{got:g} is {'too high' if got > expected else 'too low'}: "
                 "multiply epochs, batches per epoch and crops per batch")


@exercise
def check_hit_fractions(answer: Mapping[float, float], best_ious: Sequence[float]) -> str:
    """Exercise 05b: share of predicted cells that count as found at each IoU threshold.

    ``best_ious``: for every predicted cell, its IoU with the best-matching annotated cell.
    ``answer``: ``{0.5: share, 0.75: share}``, shares between 0 and 1.
    """
    ious = np.asarray(best_ious, dtype=float)
    if not isinstance(answer, Mapping):
        raise NotYet(f"answer should be a dict {{0.5: share, 0.75: share}}, got {type(answer).__name__}")
    missing = [q for q in (0.5, 0.75) if q not in answer]
    if missing:
        raise NotYet(f"thresholds missing from your dict: {missing}")
    for q in (0.5, 0.75):
        got = _require_number(answer[q], f"answer[{q}]")
        expected = float(np.mean(ious >= q)) if ious.size else 0.0
        if _close(got, expected, abs_=1e-6):
            continue
        if got > 1:
            raise NotYet(f"answer[{q}]: give a share between 0 and 1, not a count or a percentage")
        if _close(got, float(np.mean(ious > q)) if ious.size else 0.0, abs_=1e-6):
            raise NotYet(f"answer[{q}]: a cell with IoU exactly {q} counts as found (>=, not >)")
        if _close(got, 1 - expected, abs_=1e-6):
            raise NotYet(f"answer[{q}]: that is the share NOT found; count the cells with IoU >= {q}")
        raise NotYet(f"answer[{q}] is {'too high' if got > expected else 'too low'}: the share of "
                     f"best_ious that are >= {q}")
    drop = float(np.mean(ious >= 0.5) - np.mean(ious >= 0.75)) if ious.size else 0.0
    return _ok(f"a stricter IoU threshold keeps fewer cells as found (here {100 * drop:.0f} percentage "
               "points fewer at 0.75 than at 0.5): "
               "that is why AP75 is lower than AP50.")


# ---------------------------------------------------------------- notebook 06


def _touching_cells(seed: int, size: int = 48) -> np.ndarray:
    """A small label image (size × size) of random discs that touch, as a crowded sheet does."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((size, size), np.int32)
    for label in range(1, 6):
        cy, cx = rng.uniform(8, size - 8, 2)
        radius = rng.uniform(6, 11)
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2) & (labels == 0)] = label
    return labels


def _seed_cases(splitting) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(number of cells, foreground, centre, boundary) maps the seed checker tries: perfect targets of random
    touching cells, each with a patch of debris where the distances look like a cell's
    centre but the foreground says background."""
    cases = []
    for seed in (11, 12, 13):
        labels = _touching_cells(seed)
        targets = distance_targets(labels)
        foreground, centre, boundary = (targets[..., c].copy() for c in range(3))
        debris = (slice(0, 4), slice(0, 4))
        foreground[debris] = 0.0
        centre[debris] = boundary[debris] = 0.5 * min(splitting.centre_threshold, splitting.boundary_threshold)
        cases.append((len(np.unique(labels[labels > 0])), foreground, centre, boundary))
    return cases


@exercise
def check_seeds(find_seeds, splitting) -> str:
    """Exercise 06: ``find_seeds(foreground, centre, boundary, splitting)`` marks the watershed's seeds.

    Tried on fresh maps of random touching cells (:func:`_seed_cases`) against
    :func:`livecell_kit.instances.distance_seeds` with the same ``splitting`` thresholds.
    """
    cases = _seed_cases(splitting)
    n_seeds = n_cells = 0
    for cells, foreground, centre, boundary in cases:
        got = np.asarray(call_student(find_seeds, foreground, centre, boundary, splitting,
                                      what="find_seeds(...)"))
        expected = instances.distance_seeds(foreground, centre, boundary, splitting)
        if got.shape != expected.shape:
            raise NotYet(f"find_seeds should return one True/False value per pixel, shape {expected.shape}; "
                         f"got shape {got.shape}")
        if got.dtype != bool and not np.isin(got, (0, 1)).all():
            raise NotYet("return a True/False mask of seed pixels; numbering the seeds comes next (measure.label)")
        got = got.astype(bool)
        if np.array_equal(got, expected):
            n_seeds += int(measure.label(expected).max())
            n_cells += cells
            continue
        if (got & ~(foreground >= splitting.foreground_threshold)).any():
            raise NotYet("some of your seeds lie outside the foreground (debris looks like a cell's centre "
                         "in the distance maps): also require foreground >= splitting.foreground_threshold")
        if (got & (centre >= splitting.centre_threshold)).any():
            raise NotYet("some of your seeds are far from their cell's centre: the centre distance is 0 at the "
                         "centre and 1 at the cell's edge, so keep pixels *below* splitting.centre_threshold")
        if (got & (boundary >= splitting.boundary_threshold)).any():
            raise NotYet("some of your seeds lie near a cell's outline: the (inverted) boundary distance is 0 "
                         "deep inside a cell and 1 at its outline, so keep pixels *below* "
                         "splitting.boundary_threshold")
        raise NotYet("too few seed pixels: a pixel is a seed when all three tests pass — check each "
                     "comparison against its threshold in splitting")
    return _ok(f"your seeds match the kit's on {len(cases)} fresh frames of touching cells: "
               f"{n_seeds} seeds for {n_cells} cells, one per cell where the maps are right.")
