"""Fetching LIVECell: pooch does the cache, hashes and retries; the kit adds what pooch lacks.

:func:`download_livecell` lays the official files out the way the kit reads them
(:mod:`livecell_kit.data.layout`); :func:`fetch` gets one file of the
:mod:`~livecell_kit.data.registry` into a cache through ``pooch``.  Two pieces are the
kit's own because pooch (1.9) cannot do them:

* :class:`ResumableDownloader` — pooch's HTTP downloader starts over after a cut
  transfer; for a 1.24 GB zip the kit resumes with an HTTP ``Range`` request.
* :func:`safe_extract_zip` — ``pooch.Unzip`` extracts in place and counts an archive as
  done when its member files exist, so a file half-written by an interrupted run passes;
  the kit extracts into a temp folder, moves the result into place and writes a stamp
  last.  It also refuses zip-slip members instead of silently rewriting their paths.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import pooch
import requests
from tqdm.auto import tqdm

from livecell_kit import atomic
from livecell_kit.data.layout import CELL_TYPES, SPLITS, annotation_path, split_image_dir
from livecell_kit.data.registry import (BASE_URL, RECORDED_HASHES, REGISTRY, REGISTRY_URLS,
                                        SINGLE_CELL_DIRS, SIZE_SPLITS, annotation_name,
                                        single_cell_name, size_split_name)

DOWNLOAD_PARTS = ("images", "annotations", "single_cells", "size_splits")


class DownloadError(OSError):
    """A download failed or a checksum did not match; the message says what to do."""


class _HTTPStatusError(DownloadError):
    """Non-retryable HTTP error (e.g. 404): subclasses neither ValueError nor
    RequestException, so pooch gives up at once instead of retrying."""


def _resolve_base_url(base_url=None) -> str | None:
    """A mirror's base URL (argument, else env ``LIVECELL_BASE_URL``) ending in "/"; None: official."""
    url = base_url or os.environ.get("LIVECELL_BASE_URL")
    if not url:
        return None
    return url if url.endswith("/") else url + "/"


def _resolve_cache_dir(cache_dir=None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("LIVECELL_KIT_DATA")
    return Path(env).expanduser() if env else Path(pooch.os_cache("livecell-kit"))


class ResumableDownloader:
    """pooch downloader that keeps partial data in ``<file>.part`` and resumes it.

    pooch calls ``downloader(url, output_file, pooch)`` with a temp file next to the
    final path and only moves it into place after the sha256 check, which keeps the
    final path atomic.  We stream into ``part_path`` instead, asking for the missing
    tail with an HTTP ``Range`` request when a previous attempt (this run's retry or an
    earlier, interrupted run) left bytes behind, and hand the finished file to pooch
    by renaming it onto ``output_file`` (same folder, so the rename is atomic).
    A cut transfer raises a ``requests`` exception so pooch's ``retry_if_failed``
    retries it — and the retry resumes.
    """

    def __init__(self, part_path, progressbar: bool = True, timeout: float = 60.0,
                 chunk_size: int = 1 << 16):
        self.part_path = Path(part_path)
        self.progressbar = progressbar
        self.timeout = timeout  # s, per network read
        self.chunk_size = chunk_size  # bytes

    def __call__(self, url, output_file, pooch_store=None, check_only=False):
        if check_only:
            response = requests.head(url, timeout=self.timeout, allow_redirects=True)
            return response.status_code == 200
        self.part_path.parent.mkdir(parents=True, exist_ok=True)
        have = self.part_path.stat().st_size if self.part_path.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if response.status_code == 416 and have:
                # Our partial file is not a prefix the server recognises: start over.
                self.part_path.unlink()
                return self(url, output_file, pooch_store)
            if response.status_code >= 400:
                if response.status_code >= 500 or response.status_code in (408, 429):
                    response.raise_for_status()  # RequestException: pooch retries
                raise _HTTPStatusError(f"HTTP {response.status_code} {response.reason} for {url}")
            if response.status_code == 206:
                start = _content_range_start(response.headers.get("Content-Range"))
                if start != have:
                    raise requests.exceptions.ContentDecodingError(
                        f"server resumed {url} at byte {start}, expected {have}")
            else:  # 200: server ignored the Range header; the whole file comes again
                have = 0
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length is not None else None
            # Let a short body end quietly instead of urllib3 raising mid-chunk and
            # dropping that chunk's bytes; the size check below turns it into an error.
            response.raw.enforce_content_length = False
            with open(self.part_path, "ab" if have else "wb") as f, \
                    tqdm(total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=self.part_path.name[:-5], disable=not self.progressbar) as bar:
                for chunk in response.iter_content(chunk_size=self.chunk_size):
                    f.write(chunk)
                    bar.update(len(chunk))
        got = self.part_path.stat().st_size
        if expected is not None and got != expected:
            raise requests.exceptions.ChunkedEncodingError(
                f"transfer of {url} ended at {got} of {expected} bytes")
        os.replace(self.part_path, output_file)


def _content_range_start(value) -> int | None:
    # "bytes 100-199/200" -> 100
    try:
        return int(value.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def _read_recorded(cache: Path) -> dict:
    """Hashes recorded at first download (trust on first use): name -> "sha256:<hex>"."""
    try:
        return json.loads((cache / RECORDED_HASHES).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _forget_recorded(cache: Path, name: str) -> None:
    recorded = _read_recorded(cache)
    if recorded.pop(name, None) is not None:
        atomic.write_json(cache / RECORDED_HASHES, recorded, indent=1)


def fetch(name: str, cache_dir=None, base_url=None, progressbar: bool = True,
          retries: int = 3) -> Path:
    """Download one registry file (path under the base URL) into the cache; return its path.

    A cached file whose sha256 matches (registry, else the hash recorded at its first
    download) is returned without touching the network.  Transfers are retried
    ``retries`` times, resume where they stopped, and only appear at the final path
    once complete and verified.  Cache: ``cache_dir``, else env ``LIVECELL_KIT_DATA``,
    else pooch's OS cache.  Base URL of a mirror: ``base_url``, else env
    ``LIVECELL_BASE_URL``, else the official server (:data:`REGISTRY_URLS`).
    """
    if name not in REGISTRY:
        raise KeyError(f"{name!r} is not a LIVECell file this kit knows; see data.REGISTRY")
    cache = _resolve_cache_dir(cache_dir)
    mirror = _resolve_base_url(base_url)
    url = mirror + name if mirror else REGISTRY_URLS[name]
    known = REGISTRY[name] or _read_recorded(cache).get(name)
    store = pooch.create(path=cache, base_url=mirror or BASE_URL, registry={name: known},
                         urls={name: url}, retry_if_failed=retries)
    final = cache / name
    downloader = ResumableDownloader(final.with_name(final.name + ".part"), progressbar=progressbar)
    try:
        path = Path(store.fetch(name, downloader=downloader))
    except _HTTPStatusError as exc:
        raise DownloadError(f"could not download {name}: {exc}. Check the base URL "
                            f"(--base-url / LIVECELL_BASE_URL, now {mirror or BASE_URL}) and your "
                            f"connection.") from None
    except ValueError as exc:  # pooch: hash mismatch after all retries
        raise DownloadError(
            f"{name} from {url} does not match its expected checksum ({exc}). The server's copy "
            f"differs from the one recorded earlier or the transfer was corrupted. Rerun to try "
            f"again; if the file changed upstream on purpose, delete the entry for {name!r} in "
            f"{cache / RECORDED_HASHES}.") from None
    except requests.exceptions.RequestException as exc:
        raise DownloadError(
            f"download of {name} from {url} failed after {retries + 1} attempt(s) ({exc}). "
            f"Rerun the same command: it resumes from {downloader.part_path}.") from None
    if known is None:
        recorded = _read_recorded(cache)
        recorded[name] = "sha256:" + pooch.file_hash(str(path), alg="sha256")
        atomic.write_json(cache / RECORDED_HASHES, recorded, indent=1)
    return path


def _check_member(name: str, zip_path) -> PurePosixPath:
    """Reject zip members that would land outside the target (zip-slip)."""
    norm = name.replace("\\", "/")
    member = PurePosixPath(norm)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in member.parts:
        raise ValueError(f"{zip_path} contains the unsafe member {name!r} (absolute path or '..'), "
                         f"which would be written outside the target folder; refusing to extract. "
                         f"Delete the archive and download it from a trusted source.")
    return member


def safe_extract_zip(zip_path, dest, delete_bad: bool = True) -> Path:
    """Extract ``zip_path`` into ``dest`` safely and at most once; return ``dest``.

    Members with absolute paths or ``..`` are refused (zip-slip).  Extraction goes to a
    temp folder inside ``dest`` whose top-level entries are then moved into place, so an
    interrupted run never leaves a half-extracted tree that looks done; a stamp file
    ``dest/.<zip name>.extracted`` (zip size and mtime) skips repeat runs.  A truncated or
    corrupt archive raises ``DownloadError`` and, with ``delete_bad``, deletes the archive
    so the next download fetches it again.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    stamp = dest / f".{zip_path.name}.extracted"
    st = zip_path.stat()
    signature = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if atomic.read_stamp(stamp) == signature:
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest, prefix=".extract-"))
    try:
        try:
            with zipfile.ZipFile(zip_path) as archive:
                members = archive.infolist()
                for info in members:
                    _check_member(info.filename, zip_path)
                for info in members:
                    archive.extract(info, tmp)  # raises BadZipFile on CRC errors
        except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
            if delete_bad:
                zip_path.unlink(missing_ok=True)
                fix = "it has been deleted; rerun the download to fetch it again"
            else:
                fix = "delete it and rerun the download"
            raise DownloadError(f"{zip_path} is not a complete zip archive ({exc}); {fix}.") from None
        _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    atomic.write_stamp(stamp, signature)
    return dest


def _move_into(src: Path, dst: Path) -> None:
    """Move ``src``'s children into existing ``dst``: folders merge, anything else is replaced."""
    for entry in sorted(src.iterdir()):
        target = dst / entry.name
        if entry.is_dir() and target.is_dir():
            _move_into(entry, target)
            continue
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)


def _place(cached: Path, target: Path) -> None:
    """Put a cached file at ``target`` atomically: hard link if possible (no second copy)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and os.path.samefile(cached, target):
        return
    tmp = target.with_name(f".{target.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(cached, tmp)
    except OSError:  # other file system, or links not allowed
        shutil.copyfile(cached, tmp)
    os.replace(tmp, target)


def download_livecell(dest, files=("images", "annotations"), base_url=None, cell_types=None,
                      cache_dir=None, progressbar: bool = True, retries: int = 3) -> Path:
    """Fetch LIVECell and lay it out under ``dest`` the way the whole kit reads it.

    files: any of ``"images"`` (images.zip, 1.24 GB, extracted to ``dest/images/``),
        ``"annotations"`` (``dest/annotations/livecell_coco_{train,val,test}.json``),
        ``"single_cells"`` (``dest/annotations/LIVECell_single_cells/<type>/{split}.json``)
        and ``"size_splits"`` (``dest/annotations/LIVECell_dataset_size_split/*.json``).
    cell_types: restrict ``single_cells`` to these types (e.g. ``["A172"]``); giving it
        implies ``"single_cells"``.
    base_url: mirror of ``LIVECell_dataset_2021/``; default env ``LIVECELL_BASE_URL``, else S3.
    cache_dir: where downloads are kept; default env ``LIVECELL_KIT_DATA``, else pooch's cache.
    Rerunning is cheap: cached files are reused and the zip is extracted only once.
    Returns ``Path(dest)``.
    """
    dest = Path(dest)
    parts = [files] if isinstance(files, str) else list(files)
    if cell_types and "single_cells" not in parts:
        parts.append("single_cells")
    unknown = [p for p in parts if p not in DOWNLOAD_PARTS]
    if unknown:
        raise ValueError(f"unknown download part(s) {unknown}; choose from {DOWNLOAD_PARTS}")
    types = [_canonical_type(t) for t in (cell_types or CELL_TYPES)]
    cache = _resolve_cache_dir(cache_dir)
    kw = dict(cache_dir=cache, base_url=base_url, progressbar=progressbar, retries=retries)

    if "annotations" in parts:
        for split in SPLITS:
            _place(fetch(annotation_name(split), **kw), annotation_path(dest, split))
    names = []
    if "single_cells" in parts:
        names += [single_cell_name(SINGLE_CELL_DIRS[t], s) for t in types for s in SPLITS]
    if "size_splits" in parts:
        names += [size_split_name(stem) for stem in SIZE_SPLITS]
    for name in names:  # laid out as on the server
        _place(fetch(name, **kw), dest / name)
    if "images" in parts:
        _download_images(dest, cache, kw)
    return dest


def _download_images(dest: Path, cache: Path, kw: dict) -> None:
    expected = [split_image_dir(dest, "train"), split_image_dir(dest, "test")]
    stamps = [dest / ".images.zip.extracted", dest / "images" / ".images.zip.extracted"]
    if any(s.exists() for s in stamps) and all(p.is_dir() for p in expected):
        return  # extracted before: no need to hash 1.24 GB or touch the network
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
        safe_extract_zip(zip_path, dest if nested else dest / "images")
    except DownloadError:
        _forget_recorded(cache, "images.zip")  # the recorded hash may be the bad file's
        raise
    missing = [str(p) for p in expected if not p.is_dir()]
    if missing:
        raise DownloadError(f"{zip_path} did not contain the expected folders {missing}; is the "
                            f"base URL a LIVECell mirror? Delete {zip_path} and rerun.")


def _canonical_type(name: str) -> str:
    key = str(name).lower().replace("-", "")
    for cell_type, sub in SINGLE_CELL_DIRS.items():
        if key in (cell_type.lower(), sub):
            return cell_type
    raise ValueError(f"unknown cell type {name!r}; choose from {CELL_TYPES}")
