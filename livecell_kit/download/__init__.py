"""Fetching LIVECell and laying it out the way the kit reads it (:mod:`livecell_kit.data.layout`).

The package, one job per module: :mod:`~livecell_kit.download.registry` (the official files, their
URLs and hashes), :mod:`~livecell_kit.download.cache` (one file fetched, checked by
:mod:`~livecell_kit.download.checks`, kept), :mod:`~livecell_kit.download.remote_zip` (frames out of
images.zip by range requests, each answer checked by :mod:`~livecell_kit.download.ranges`),
:mod:`~livecell_kit.download.course_subset` (which frames ``--subset course`` takes),
:mod:`~livecell_kit.download.extract` (images.zip unpacked safely) and
:mod:`~livecell_kit.download.placed` (files copied into the data root); this module runs them.

:func:`download_livecell` is ``livecell-kit download``.  ``subset`` says how much:

* ``"full"`` — the three annotation JSONs (867 MiB) and all of ``images.zip`` (1.24 GB),
  downloaded to the cache (:mod:`~livecell_kit.download.cache`) and extracted;
* ``"seed"`` — the same JSONs and only the seed project's frames: the first 1024 / 256 / 512
  image records of train / val / test (:func:`~livecell_kit.data.subsets.select_subset`,
  rule ``"first"``), 1,792 frames, about a third of the image bytes, read out of
  ``images.zip`` with HTTP range requests (:mod:`~livecell_kit.download.remote_zip`);
* ``"course"`` — 4 / 2 / 2 frames per cell type and split and annotation JSONs restricted to
  them, cut from LIVECell's smaller files (:mod:`~livecell_kit.download.course_subset`), under
  400 MB in all.

A server that ignores or mishandles ``Range`` — from the first request or midway — gets the
full ``images.zip`` instead (one line says what it did).  The stamp of a subset records each
frame's size and CRC-32 from images.zip's listing; a rerun checks every frame against it and
refetches only the damaged ones (one line names them), as a rerun of ``full`` does against
the cached images.zip.  Temp files of writes a kill cut short are swept.
Two runs into the same folder take turns (a lock file); every file appears atomically and
only once checked, so an interrupted run is resumed by the next one.  Files reach the data
root as copies, and a rerun keeps any file changed since the kit wrote it
(:mod:`~livecell_kit.download.placed`).

:func:`safe_extract_zip` (:mod:`~livecell_kit.download.extract`) extracts the full images.zip
safely and at most once.
"""
from __future__ import annotations

import functools
import hashlib
import sys
import zipfile
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from livecell_kit import atomic
from livecell_kit.data.layout import (CELL_TYPES, FULL_STAMP, SPLITS, annotation_path, cell_type_of, frames_stamp,
                                      split_image_dir)
from livecell_kit.data.subsets import DEFAULT_SUBSET_SIZES, select_subset
from livecell_kit.download.cache import (ResumableDownloader, fetch, file_url, forget_recorded, known_hash,
                                     locked, resolve_base_url, resolve_cache_dir)
from livecell_kit.download.course_subset import COURSE_FRAMES, course_subset, file_names
from livecell_kit.download.checks import check_member_name
from livecell_kit.download.extract import clear_stale_extractions, safe_extract_zip
from livecell_kit.download.placed import damaged_files, place_copy, sweep_temp_files, write_file
from livecell_kit.download.registry import (BASE_URL, RECORDED_HASHES, REGISTRY, SINGLE_CELL_DIRS, SIZE_SPLITS,
                                            annotation_name, single_cell_name, size_split_name)
from livecell_kit.download.remote_zip import (WORKERS, DownloadError, RangeNotSupported, fetch_members,
                                              open_remote_zip)

__all__ = ["BASE_URL", "DOWNLOAD_PARTS", "DOWNLOAD_SUBSETS", "RECORDED_HASHES", "REGISTRY", "SIZE_SPLITS",
           "DownloadError", "ResumableDownloader", "download_livecell", "fetch", "safe_extract_zip"]

DOWNLOAD_PARTS = ("images", "annotations", "single_cells", "size_splits")
#: How much of LIVECell ``download_livecell`` fetches (module docstring); "full" is the default.
DOWNLOAD_SUBSETS = ("full", "seed", "course")
_IMAGE_FOLDERS = ("livecell_train_val_images", "livecell_test_images")


def _place(name: str, dest: Path, target: Path, kw: dict) -> None:
    """Fetch registry file ``name`` and put a copy at ``target`` (kept if the user changed it)."""
    cached = fetch(name, **kw)
    place_copy(cached, target, dest, known_hash(name, kw["cache_dir"]))


def download_livecell(dest, files=("images", "annotations"), base_url=None, cell_types=None,
                      cache_dir=None, progressbar: bool = True, retries: int = 3,
                      subset: str = "full", workers: int = WORKERS) -> Path:
    """Fetch LIVECell and lay it out under ``dest`` the way the whole kit reads it.

    files: any of ``"images"`` (frames under ``dest/images/livecell_*_images/``),
        ``"annotations"`` (``dest/annotations/livecell_coco_{train,val,test}.json``),
        ``"single_cells"`` (``dest/annotations/LIVECell_single_cells/<type>/{split}.json``)
        and ``"size_splits"`` (``dest/annotations/LIVECell_dataset_size_split/*.json``).
    subset: ``"full"`` (all of images.zip, 1.24 GB), ``"seed"`` (the seed project's 1,792
        frames by range requests; the full JSONs) or ``"course"`` (4 / 2 / 2 frames per cell
        type and annotation JSONs restricted to them); see the module docstring.  ``seed`` and
        ``course`` always write the annotations: they define which frames are fetched.
    cell_types: restrict ``single_cells`` to these types (e.g. ``["A172"]``); giving it
        implies ``"single_cells"``.
    base_url: mirror of ``LIVECell_dataset_2021/``; default env ``LIVECELL_BASE_URL``, else S3.
    cache_dir: where downloads are kept; default env ``LIVECELL_KIT_DATA``, else pooch's cache.
    workers: parallel range requests of ``seed`` and ``course``.
    Rerunning is cheap: cached files are reused and finished work is skipped.
    Returns ``Path(dest)``.
    """
    dest = Path(dest)
    parts = [files] if isinstance(files, str) else list(files)
    if cell_types and "single_cells" not in parts:
        parts.append("single_cells")
    unknown = [p for p in parts if p not in DOWNLOAD_PARTS]
    if unknown:
        raise ValueError(f"unknown download part(s) {unknown}; choose from {DOWNLOAD_PARTS}")
    if subset not in DOWNLOAD_SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; choose from {DOWNLOAD_SUBSETS}")
    types = [_canonical_type(t) for t in (cell_types or CELL_TYPES)]
    resolve_base_url(base_url)  # a bad URL fails here, before any work
    cache = resolve_cache_dir(cache_dir)
    kw = dict(cache_dir=cache, base_url=base_url, progressbar=progressbar, retries=retries)
    partial = subset != "full" and ("images" in parts or "annotations" in parts)

    with locked(dest / ".download.lock", "another livecell-kit download into this folder"):
        clear_stale_extractions(dest)
        if subset == "course" and partial:
            frames = _course_annotations(dest, kw)
        elif "annotations" in parts or partial:
            for split in SPLITS:
                _place(annotation_name(split), dest, annotation_path(dest, split), kw)
            if partial:  # the seed project's frames
                entries = select_subset(dest, DEFAULT_SUBSET_SIZES, rule="first")
                frames = [(e["split"], e["file_name"]) for e in entries]
        names = []
        if "single_cells" in parts:
            names += [single_cell_name(SINGLE_CELL_DIRS[t], s) for t in types for s in SPLITS]
        if "size_splits" in parts:
            names += [size_split_name(stem) for stem in SIZE_SPLITS]
        for name in names:  # laid out as on the server
            _place(name, dest, dest / name, kw)
        if "images" in parts and not partial:
            _download_images(dest, cache, kw)
        elif "images" in parts:
            _fetch_frames(dest, frames, subset, cache, kw, workers)
    return dest


def _download_images(dest: Path, cache: Path, kw: dict) -> None:
    expected = [split_image_dir(dest, "train"), split_image_dir(dest, "test")]
    stamps = [dest / FULL_STAMP, dest / "images" / FULL_STAMP]
    if any(s.exists() for s in stamps) and all(p.is_dir() for p in expected):
        _repair_extracted(dest, cache, kw)  # extracted before: no need to touch the network
        return
    zip_path = fetch("images.zip", **kw)
    try:
        with zipfile.ZipFile(zip_path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        names = []  # safe_extract_zip reports it (and cleans up) below
    # The official zip holds images/livecell_*; a mirror that zipped the two folders
    # without the top-level images/ is laid out the same way.
    nested = not names or any(n.replace("\\", "/").startswith("images/") for n in names)
    try:
        safe_extract_zip(zip_path, dest if nested else dest / "images", progressbar=kw["progressbar"])
    except (DownloadError, ValueError) as exc:  # a damaged or unsafe archive goes, its hash with it
        if isinstance(exc, ValueError):
            zip_path.unlink(missing_ok=True)
        if not zip_path.exists():  # (a full disk leaves the good archive where it is)
            forget_recorded(cache, "images.zip")
        raise
    missing = [str(p) for p in expected if not p.is_dir()]
    if missing:
        raise DownloadError(f"{zip_path} did not contain the expected folders {missing}; is the "
                            f"base URL a LIVECell mirror? Delete {zip_path} and rerun.")


def _repair_extracted(dest: Path, cache: Path, kw: dict) -> None:
    """Check every frame extracted from the cached images.zip against its listing (size and
    CRC-32) and extract the damaged ones again, with one line naming them.  Without a cached
    images.zip there is nothing to check against: the frames are kept as they are."""
    try:
        with zipfile.ZipFile(cache / "images.zip") as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
    except (OSError, zipfile.BadZipFile):
        return
    nested = any(i.filename.replace("\\", "/").startswith("images/") for i in infos)
    base = dest if nested else dest / "images"
    sweep_temp_files(dest / "images" / name for name in _IMAGE_FOLDERS)
    by_path = {check_member_name(i.filename, "images.zip").as_posix(): i for i in infos}
    damaged = damaged_files(base, [[rel, i.file_size, i.CRC] for rel, i in by_path.items()])
    if not damaged:
        return
    tqdm.write(f"livecell-kit: {_damage_note(base, damaged)}; extracting only those again from images.zip.",
               file=sys.stderr)
    with zipfile.ZipFile(fetch("images.zip", **kw)) as archive:  # hashed: a bad cached copy is fetched again
        for rel, _ in damaged:
            atomic.write_bytes(base / rel, archive.read(by_path[rel]))  # read() checks the CRC-32


def _damage_note(base: Path, damaged) -> str:
    shown = ", ".join(f"{rel}: {why}" for rel, why in damaged[:3]) + (", ..." if len(damaged) > 3 else "")
    return f"{len(damaged)} frame(s) under {base} no longer match images.zip ({shown})"


def _course_annotations(dest: Path, kw: dict) -> list[tuple[str, str]]:
    """Write the course's annotation JSONs (once) and return its frames as (split, file name)."""
    stamp = dest / "annotations" / ".course-subset.done"
    done = atomic.read_stamp(stamp) or {}
    if done.get("frames_per_cell_type") == COURSE_FRAMES and done.get("files") == _file_signatures(dest):
        return [tuple(frame) for frame in done["frames"]]  # the JSONs this stamp vouches for
    datasets, paths = {}, {}
    for split in ("val", "test"):
        paths[split] = fetch(annotation_name(split), **kw)
        datasets[split] = course_subset(paths[split], COURSE_FRAMES[split], source=annotation_name(split),
                                        progressbar=kw["progressbar"])
    val_names = file_names(paths["val"], kw["progressbar"])
    # The smallest file that has enough train frames of every type (course_subset module).
    sources = [size_split_name(stem) for stem in SIZE_SPLITS] + [annotation_name("train")]
    for name in sources:
        datasets["train"] = course_subset(fetch(name, **kw), COURSE_FRAMES["train"], val_names,
                                          require_all=name != sources[-1], source=name,
                                          progressbar=kw["progressbar"])
        if datasets["train"] is not None:
            break
        tqdm.write(f"{name} lacks {COURSE_FRAMES['train']} train frames of some cell type; "
                   f"trying the next file", file=sys.stderr)
    for split in SPLITS:  # a JSON the user changed is kept (placed module)
        write_file(dest, annotation_path(dest, split),
                   functools.partial(atomic.write_json, obj=datasets[split], indent=None),
                   same_as=known_hash(annotation_name(split), kw["cache_dir"]))
    frames = [(split, img["file_name"]) for split in SPLITS for img in datasets[split]["images"]]
    atomic.write_stamp(stamp, {"frames_per_cell_type": COURSE_FRAMES, "files": _file_signatures(dest),
                               "frames": frames})
    return frames


def _file_signatures(dest: Path) -> dict | None:
    """Size and mtime of each annotation JSON under ``dest`` (None if one is missing)."""
    try:
        return {s: [annotation_path(dest, s).stat().st_size, annotation_path(dest, s).stat().st_mtime_ns]
                for s in SPLITS}
    except FileNotFoundError:
        return None


def _frame_present(dest: Path, split: str, file_name: str) -> bool:
    folder, name = split_image_dir(dest, split), PurePosixPath(file_name).name
    return (folder / name).exists() or (folder / cell_type_of(name) / name).exists()


def _fetch_frames(dest: Path, frames, subset: str, cache: Path, kw: dict, workers: int) -> None:
    """Put the ``frames`` ((split, file name) pairs) under ``dest/images`` from images.zip's members.

    The stamp records each frame's size and CRC-32 from images.zip's listing; a rerun checks
    every frame against it (no network when all match) and fetches only the damaged ones.
    """
    sweep_temp_files(dest / "images" / name for name in _IMAGE_FOLDERS)
    listing = "\n".join(sorted({f"{split}/{name}" for split, name in frames}))
    frames_hash = hashlib.sha256(listing.encode()).hexdigest()
    stamp = dest / "images" / frames_stamp(subset)
    recorded = atomic.read_stamp(stamp) or {}
    damaged = None
    if recorded.get("frames") == frames_hash and isinstance(recorded.get("written"), list):
        damaged = damaged_files(dest / "images", recorded["written"])
        if not damaged:
            return  # every frame checked: no network
        tqdm.write(f"livecell-kit: {_damage_note(dest / 'images', damaged)}; fetching only those again.",
                   file=sys.stderr)
    elif any(p.exists() for p in (dest / FULL_STAMP, dest / "images" / FULL_STAMP)) and all(
            _frame_present(dest, s, n) for s, n in frames):
        return  # extracted from the whole images.zip, which checked every CRC-32
    url = file_url("images.zip", kw["base_url"])
    try:
        remote = open_remote_zip(url, retries=kw["retries"])
        all_targets = targets = _frame_targets(remote, dest, frames)
        if damaged is not None:
            again = {dest / "images" / rel for rel, _ in damaged}
            targets = {name: path for name, path in all_targets.items() if path in again}
        stats = fetch_members(remote, targets, workers=workers, retries=kw["retries"],
                              progressbar=kw["progressbar"])
    except RangeNotSupported as exc:
        kept = sum(_frame_present(dest, s, n) for s, n in frames)
        tqdm.write(f"livecell-kit: {exc}\nSo the {subset} frames cannot be fetched alone: downloading all "
                   f"of images.zip (1.24 GB) instead{f' (the {kept} frames fetched so far stay in place)' if kept else ''}.",
                   file=sys.stderr)
        _download_images(dest, cache, kw)
        return
    if kw["progressbar"]:
        tqdm.write(f"images.zip: {stats.fetched} frames fetched in {stats.requests} range requests, "
                   f"{stats.kept} already here; {(stats.bytes + remote.listing_bytes) / 1e6:.1f} MB "
                   f"transferred, listing included (all of images.zip: {remote.size / 1e6:.0f} MB)",
                   file=sys.stderr)
    written = [[path.relative_to(dest / "images").as_posix(), remote.members[name].info.file_size,
                remote.members[name].info.CRC] for name, path in sorted(all_targets.items())]
    atomic.write_stamp(stamp, {"frames": frames_hash, "count": len(frames), "written": written})


def _frame_targets(remote, dest: Path, frames) -> dict[str, Path]:
    """Member name -> path under ``dest/images`` for each frame, keeping the archive's folders."""
    index = {}
    for name in remote.members:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        folder = next((p for p in parts[:-1] if p in _IMAGE_FOLDERS), None)
        if folder and not name.endswith("/"):
            index.setdefault((folder, parts[-1]), (name, parts[parts.index(folder):]))
    targets, missing = {}, []
    for split, file_name in frames:
        found = index.get((split_image_dir(dest, split).name, PurePosixPath(file_name).name))
        if found is None:
            missing.append(f"{split}/{file_name}")
            continue
        name, rel = found
        check_member_name(name, remote.url)
        targets[name] = dest.joinpath("images", *rel)
    if missing:
        raise DownloadError(f"{remote.url} lacks {len(missing)} frame(s) that the annotations list, "
                            f"e.g. {missing[:3]}; is the base URL a LIVECell mirror?")
    return targets


def _canonical_type(name: str) -> str:
    key = str(name).lower().replace("-", "")
    for cell_type, sub in SINGLE_CELL_DIRS.items():
        if key in (cell_type.lower(), sub):
            return cell_type
    raise ValueError(f"unknown cell type {name!r}; choose from {CELL_TYPES}")
