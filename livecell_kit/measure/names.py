"""Frame metadata from file names: cell type, well, location, crop and elapsed time (hours).

LIVECell (and the kit's sample) name frames ``<CellType>_Phase_<Well>_<Location>_<Timestamp>_<Crop>.tif``,
e.g. ``A172_Phase_C7_1_02d00h00m_4.tif``: cell type A172, well C7, location 1, 2 days 0 h
= 48.0 h after the start, crop 4 (:data:`LIVECELL_NAME`).  Other names are read with a
user's regular expression (``--pattern``): named groups ``well`` and ``time`` (a number,
in hours) are required; ``cell_type``, ``location``, ``crop`` and any other named groups
are optional and become columns of ``frames.csv``.  A pattern is searched in the file's
name (not its folder), so ``(?P<well>[A-H]\\d+)_t(?P<time>[\\d.]+)h`` matches ``B3_t12.5h.tif``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: LIVECell's file names; ``timestamp`` is ``DDdHHhMMm``.
LIVECELL_NAME = re.compile(r"^(?P<cell_type>[A-Za-z0-9-]+)_Phase_(?P<well>[A-Za-z]+\d+)_(?P<location>\d+)_"
                           r"(?P<timestamp>\d+d\d+h\d+m)_(?P<crop>\d+)$")
_TIMESTAMP = re.compile(r"^(\d+)d(\d+)h(\d+)m$")
#: Named groups a --pattern must have, and the optional ones with their own columns.
REQUIRED_GROUPS = ("well", "time")
KNOWN_GROUPS = ("cell_type", "well", "location", "crop", "time")


@dataclass(frozen=True)
class FrameName:
    """What a file's name says: ``time_h`` elapsed hours; ``extra``: other named groups of a
    ``--pattern``, as ``((name, value), ...)``; empty strings where the name says nothing."""

    cell_type: str
    well: str
    location: str
    crop: str
    time_h: float
    extra: tuple = ()


@dataclass(frozen=True)
class NameReader:
    """Reads :class:`FrameName` from file names: LIVECell's scheme (``pattern`` None) or a
    user's regular expression (:func:`name_reader` checks it)."""

    pattern: re.Pattern | None = None

    @property
    def extra_groups(self) -> tuple[str, ...]:
        """Named groups of the pattern beyond :data:`KNOWN_GROUPS`, in pattern order."""
        if self.pattern is None:
            return ()
        return tuple(g for g in self.pattern.groupindex if g not in KNOWN_GROUPS)

    def describe(self) -> str:
        return f"--pattern {self.pattern.pattern!r}" if self.pattern else "LIVECell names"

    def read(self, path) -> FrameName:
        """The metadata in ``path``'s name; ValueError naming the file when it does not fit."""
        path = Path(path)
        return _livecell(path) if self.pattern is None else _user(path, self.pattern)


def name_reader(pattern: str | None = None) -> NameReader:
    """A :class:`NameReader`; ``pattern`` (a regular expression) is checked here, before any
    frame is measured: it must compile and name the groups ``well`` and ``time``."""
    if pattern is None:
        return NameReader()
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"--pattern {pattern!r} is not a valid regular expression ({err})") from None
    missing = [g for g in REQUIRED_GROUPS if g not in compiled.groupindex]
    if missing:
        raise ValueError(f"--pattern {pattern!r} has no named group {' or '.join(missing)}: name them "
                         f"with (?P<well>...) and (?P<time>...) (time in hours), e.g. "
                         r"'(?P<well>[A-H]\d+)_t(?P<time>[\d.]+)h'")
    return NameReader(compiled)


def timestamp_hours(text: str) -> float:
    """LIVECell's ``DDdHHhMMm`` as hours: ``02d00h00m`` -> 48.0, ``00d04h30m`` -> 4.5."""
    match = _TIMESTAMP.match(text)
    if match is None:
        raise ValueError(f"timestamp {text!r} is not DDdHHhMMm (e.g. 02d00h00m)")
    days, hours, minutes = map(int, match.groups())
    return 24.0 * days + hours + minutes / 60.0


def _livecell(path: Path) -> FrameName:
    match = LIVECELL_NAME.match(path.stem)
    if match is None:
        raise ValueError(f"{path}: its name is not LIVECell's <CellType>_Phase_<Well>_<Location>_"
                         f"<DDdHHhMMm>_<Crop> (e.g. A172_Phase_C7_1_02d00h00m_4.tif); rename it, or pass "
                         r"--pattern with named groups well and time in hours, e.g. "
                         r"--pattern '(?P<well>[A-H]\d+)_t(?P<time>[\d.]+)h'")
    g = match.groupdict()
    return FrameName(g["cell_type"], g["well"], g["location"], g["crop"], timestamp_hours(g["timestamp"]))


def _user(path: Path, pattern: re.Pattern) -> FrameName:
    match = pattern.search(path.name)
    if match is None:
        raise ValueError(f"{path}: its name {path.name!r} does not match --pattern {pattern.pattern!r}; "
                         f"fix the pattern (it is searched in the file name, not the folder) or leave "
                         f"the file out")
    g = {k: (v or "") for k, v in match.groupdict().items()}
    try:
        time_h = float(g["time"])
    except ValueError:
        raise ValueError(f"{path}: --pattern {pattern.pattern!r} reads time {g['time']!r}, which is "
                         f"not a number of hours; make the time group match digits only, e.g. "
                         r"(?P<time>[\d.]+)") from None
    extra = tuple((k, g[k]) for k in pattern.groupindex if k not in KNOWN_GROUPS)
    return FrameName(g.get("cell_type", ""), g["well"], g.get("location", ""), g.get("crop", ""),
                     time_h, extra)
