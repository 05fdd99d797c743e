"""Progress bars: live in a terminal or a notebook someone watches, none in stored outputs.

A notebook executed for storage (``make outputs``, nbval, nbconvert) keeps a bar's first
state, a frozen "0%". ``make`` sets ``TQDM_DISABLE=1`` for those runs; plain tqdm honours it,
but tqdm's notebook bar does not (it passes ``disable=False`` itself), so the kit's bars ask
here.
"""
from __future__ import annotations

import os

from tqdm.auto import tqdm

DISABLE_ENV = "TQDM_DISABLE"


def bars_disabled() -> bool:
    """True when ``$TQDM_DISABLE`` is set to anything but "", "0" or "false"."""
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false")


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """``tqdm.auto.tqdm(iterable, **kwargs)``, disabled as well when :func:`bars_disabled`."""
    kwargs["disable"] = bool(kwargs.get("disable")) or bars_disabled()
    return tqdm(iterable, **kwargs)
