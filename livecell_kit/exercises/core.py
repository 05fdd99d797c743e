"""What every exercise checker shares: the verdict, its display, and the placeholder test.

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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from IPython import get_ipython  # ipywidgets, a runtime dependency, brings IPython
from IPython.display import display


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


def close(answer, expected, rel=1e-6, abs_=1e-9) -> bool:
    return math.isclose(float(answer), float(expected), rel_tol=rel, abs_tol=abs_)


def require_number(answer, what: str) -> float:
    if answer is None or isinstance(answer, (str, bytes)) or np.ndim(answer) != 0:
        raise NotYet(f"{what} should be a single number, got {type(answer).__name__}: {answer!r}")
    return float(answer)


def ok(message: str) -> str:
    return message
