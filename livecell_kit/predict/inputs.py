"""Which files ``predict`` reads and the names it writes their outputs under.

:func:`expand_inputs` turns files and folders into image files, leaving out predict's own
earlier outputs in the output folder; :func:`output_stems` gives every input its own
output name, mirroring sub-folders, and refuses — before anything is written — inputs
that would still share one.  No model is needed here (see :mod:`livecell_kit.predict`).
"""
from __future__ import annotations

import os
from pathlib import Path

from livecell_kit.data.images import SUFFIXES as IMAGE_SUFFIXES

#: Endings of the three files predict writes per image (``predict.write_prediction``).
OUTPUT_SUFFIXES = ("_mask.png", "_labels.tif", "_overlay.png")


def _is_own_output(f: Path, out_dir: Path | None) -> bool:
    """A file predict wrote earlier: in ``out_dir`` (or below it), named like its outputs."""
    if out_dir is None or not f.name.endswith(OUTPUT_SUFFIXES):
        return False
    return f.resolve().is_relative_to(out_dir.resolve())


def expand_inputs(paths, out_dir: Path | None) -> tuple[list[tuple[Path, Path]], int]:
    """(file, folder its name is taken relative to) per image, and how many own outputs were skipped."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[tuple[Path, Path]] = []
    skipped = 0
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            own = {f for f in files if _is_own_output(f, out_dir)}
            skipped += len(own)
            files = [f for f in files if f not in own]
            if not files:
                why = f" (besides {len(own)} earlier outputs of predict)" if own else ""
                raise FileNotFoundError(f"{p}: folder has no {'/'.join(IMAGE_SUFFIXES)} images{why}")
            found.extend((f, p) for f in files)
        elif p.is_file():
            found.append((p, p.parent))
        else:
            raise FileNotFoundError(f"{p}: no such image file or folder; check the path")
    return found, skipped


def output_stems(files: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """``(file, output stem relative to the output folder)`` per distinct input file.

    files: ``(file, folder)`` pairs; each file's name is taken relative to its folder
    (a folder argument, or a file argument's own folder) and all those folders are then
    taken relative to the folder they share, so sub-folders are mirrored:
    ``plate1/A1.tif`` and ``plate2/A1.tif`` give ``plate1/A1`` and ``plate2/A1``.  Files of
    one folder that share a stem (``a.tif`` and ``a.tiff``) keep their whole name
    (``a.tif``, ``a.tiff``).  A file listed twice is predicted once.  Raises ValueError,
    before anything is written, if two inputs would still write the same files (names
    differing only in case collide on Windows and macOS).
    """
    unique: dict[Path, tuple[Path, Path]] = {}
    for f, folder in files:
        unique.setdefault(f.resolve(), (f, folder))
    pairs = list(unique.values())
    folders = [os.path.abspath(folder) for _, folder in pairs]
    try:
        shared = Path(os.path.commonpath(folders)) if folders else Path()
    except ValueError:  # folders on different drives (Windows): no shared folder
        shared = None
    rels = [Path(os.path.abspath(f)).relative_to(shared) if shared is not None else Path(f.name)
            for f, _ in pairs]
    by_stem: dict[str, int] = {}
    for rel in rels:
        key = str(rel.with_suffix("")).casefold()
        by_stem[key] = by_stem.get(key, 0) + 1
    stems = [rel if by_stem[str(rel.with_suffix("")).casefold()] > 1 else rel.with_suffix("") for rel in rels]
    owner: dict[str, Path] = {}
    for (f, _), stem in zip(pairs, stems):
        key = str(stem).casefold()
        if key in owner:
            raise ValueError(f"inputs {owner[key]} and {f} would both write {stem}_mask.png (and "
                             f"_labels.tif, _overlay.png); rename one of them or predict them into "
                             f"different --out folders")
        owner[key] = f
    return [(f, stem) for (f, _), stem in zip(pairs, stems)]


class PredictionError(ValueError):
    """Some inputs could not be predicted; the others were.  The message lists each failed
    file and why.  ``written``: the outputs made (as ``predict.predict_paths`` returns them);
    ``failed``: ``(file, message)`` per input that failed."""

    def __init__(self, message: str, written=(), failed=()):
        super().__init__(message)
        self.written, self.failed = list(written), list(failed)
