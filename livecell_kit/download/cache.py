"""The download cache: one file of the :mod:`~livecell_kit.download.registry` fetched, checked, kept.

:func:`fetch` gets a file through ``pooch`` (cache folder, retries, atomic final rename)
with the kit's :class:`ResumableDownloader`, which pooch (1.9) lacks: pooch's HTTP
downloader starts over after a cut transfer; for a 1.24 GB zip the kit resumes with an
HTTP ``Range`` request.  Hashes are computed with a progress bar (pooch hashes silently,
seconds for images.zip).  :func:`locked` keeps two runs that share a cache or a data root
from writing the same file at once: the second waits, says so, and then finds the work done.

Nothing is trusted before :mod:`~livecell_kit.download.checks` passed it: a response
that is a web page is refused on its headers, a finished transfer is checked (a JSON parsed,
an archive's directory read) before it reaches its final path, and only then is its hash
recorded.  A cached file is used only while its sha256 is still the recorded one.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pooch
import requests
from tqdm.auto import tqdm

from livecell_kit import atomic
from livecell_kit.data.index import sha256
from livecell_kit.download.checks import InvalidDownload, check_content_type, check_file, kind_of
from livecell_kit.download.ranges import DownloadError, parse_content_range
from livecell_kit.download.registry import BASE_URL, RECORDED_HASHES, REGISTRY, REGISTRY_URLS

LOCK_DIR = ".locks"  # under the cache folder: one lock file per cached name
_URL_SCHEMES = ("http", "https")


class _HTTPStatusError(DownloadError):
    """Non-retryable HTTP error (e.g. 404): subclasses neither ValueError nor
    RequestException, so pooch gives up at once instead of retrying."""


def resolve_base_url(base_url=None) -> str | None:
    """A mirror's base URL (argument, else env ``LIVECELL_BASE_URL``) ending in "/"; None: official.

    Raises ``ValueError`` unless it is an ``http://`` or ``https://`` address with a host.
    """
    url = base_url or os.environ.get("LIVECELL_BASE_URL")
    if not url:
        return None
    parts = urlsplit(str(url))
    if parts.scheme.lower() not in _URL_SCHEMES or not parts.netloc:
        source = "--base-url" if base_url else "LIVECELL_BASE_URL"
        got = f"a URL of scheme {parts.scheme}://" if parts.scheme else "not a URL (no scheme)"
        raise ValueError(f"{source} {str(url)!r} is {got}; the kit downloads over http:// or https:// only. "
                         f"Give the web address of a LIVECell_dataset_2021/ mirror, e.g. "
                         f"https://mirror.example.org/LIVECell_dataset_2021/ (for files on this machine, "
                         f"serve their folder with `python -m http.server 8000` and pass "
                         f"http://127.0.0.1:8000/), or leave it unset for the official server.")
    return url if url.endswith("/") else url + "/"


def resolve_cache_dir(cache_dir=None) -> Path:
    """The cache folder: ``cache_dir``, else env ``LIVECELL_KIT_DATA``, else pooch's OS cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("LIVECELL_KIT_DATA")
    return Path(env).expanduser() if env else Path(pooch.os_cache("livecell-kit"))


def file_url(name: str, base_url=None) -> str:
    """URL of registry file ``name`` on the mirror ``base_url`` (see :func:`resolve_base_url`)."""
    mirror = resolve_base_url(base_url)
    return mirror + name if mirror else REGISTRY_URLS[name]


def _try_lock(handle, path: Path) -> bool:
    try:
        return atomic.try_lock(handle, path)
    except atomic.LocksUnsupported as exc:
        raise DownloadError(f"{exc}: set the cache (env LIVECELL_KIT_DATA) and the data set (--out) "
                            f"to local folders") from None


@contextlib.contextmanager
def locked(path, what: str = "another livecell-kit download"):
    """Hold an exclusive lock on the file ``path`` for the block, waiting while another holds it.

    The operating system drops the lock when its holder exits, even after a crash or
    Ctrl-C, so a lock file left behind never blocks a later run.  Waiting prints one line
    naming the lock file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        if not _try_lock(handle, path):
            tqdm.write(f"waiting for {what}, which holds {path} ...", file=sys.stderr)
            while not _try_lock(handle, path):
                time.sleep(0.2)
        try:
            yield
        finally:
            atomic.unlock(handle)


def _lock_path(cache: Path, name: str) -> Path:
    return cache / LOCK_DIR / (name.replace("/", "__") + ".lock")


class ResumableDownloader:
    """pooch downloader that keeps partial data in ``<file>.part`` and resumes it.

    pooch calls ``downloader(url, output_file, pooch)`` with a temp file next to the
    final path and only moves it into place after the sha256 check, which keeps the
    final path atomic.  We stream into ``part_path`` instead, asking for the missing
    tail with an HTTP ``Range`` request when a previous attempt (this run's retry or an
    earlier, interrupted run) left bytes behind, and hand the finished file to pooch
    by renaming it onto ``output_file`` (same folder, so the rename is atomic).
    A cut transfer raises a ``requests`` exception so pooch's ``retry_if_failed``
    retries it — and the retry resumes.  :func:`fetch` holds the file's lock, so no
    other run appends to the same ``.part``.

    kind: ``"json"``, ``"zip"`` or None (:func:`~livecell_kit.download.checks.kind_of`).
    A response that cannot be one (a web page) and a finished file that fails
    :func:`~livecell_kit.download.checks.check_file` raise ``InvalidDownload``,
    which pooch does not retry; a finished file that failed is deleted.
    """

    def __init__(self, part_path, progressbar: bool = True, timeout: float = 60.0,
                 chunk_size: int = 1 << 16, kind: str | None = None):
        self.part_path = Path(part_path)
        self.progressbar = progressbar
        self.timeout = timeout  # s, per network read
        self.chunk_size = chunk_size  # bytes
        self.kind = kind

    def __call__(self, url, output_file, pooch_store=None, check_only=False):
        if check_only:
            response = requests.head(url, timeout=self.timeout, allow_redirects=True)
            return response.status_code == 200
        self.part_path.parent.mkdir(parents=True, exist_ok=True)
        have = self.part_path.stat().st_size if self.part_path.exists() else 0
        # identity: Content-Length and Range then count the file's own bytes
        headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={have}-"} if have else {})}
        with requests.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
            if response.status_code == 416 and have:
                # Our partial file is not a prefix the server recognises: start over.
                self.part_path.unlink()
                return self(url, output_file, pooch_store)
            if response.status_code >= 400:
                if response.status_code >= 500 or response.status_code in (408, 429):
                    response.raise_for_status()  # RequestException: pooch retries
                raise _HTTPStatusError(f"HTTP {response.status_code} {response.reason} for {url}")
            check_content_type(response.headers.get("Content-Type"), self.kind)
            if response.status_code == 206:
                start = (parse_content_range(response.headers.get("Content-Range")) or (None,))[0]
                if start != have:
                    raise requests.exceptions.ContentDecodingError(
                        f"server resumed {url} at byte {start}, expected {have}")
            else:  # 200: server ignored the Range header; the whole file comes again
                have = 0
            length = response.headers.get("Content-Length")
            encoded = response.headers.get("Content-Encoding", "identity").lower() != "identity"
            expected = have + int(length) if length is not None and not encoded else None
            # Let a short body end quietly instead of urllib3 raising mid-chunk and
            # dropping that chunk's bytes; the size checks below turn it into an error.
            response.raw.enforce_content_length = False
            with open(self.part_path, "ab" if have else "wb") as f, \
                    tqdm(total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=self.part_path.name[:-5], disable=not self.progressbar) as bar:
                for chunk in response.iter_content(chunk_size=self.chunk_size):
                    f.write(chunk)
                    bar.update(len(chunk))
            arrived = response.raw.tell()  # bytes on the wire, before any decoding
        got = self.part_path.stat().st_size
        if length is not None and arrived != int(length):
            if encoded:  # decoded bytes: a Range request could not resume them
                self.part_path.unlink()
            raise requests.exceptions.ChunkedEncodingError(
                f"transfer of {url} ended at {have + arrived} of {have + int(length)} bytes")
        if expected is not None and got != expected:
            raise requests.exceptions.ChunkedEncodingError(
                f"transfer of {url} left {got} of {expected} bytes in {self.part_path}")
        try:
            check_file(self.part_path, self.kind, progressbar=self.progressbar, label=url)
        except InvalidDownload:
            self.part_path.unlink()  # complete but wrong: nothing to resume
            raise
        os.replace(self.part_path, output_file)


def _read_recorded(cache: Path) -> dict:
    """Hashes recorded at first download (trust on first use): name -> "sha256:<hex>"."""
    try:
        return json.loads((cache / RECORDED_HASHES).read_text(encoding="utf-8-sig"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _update_recorded(cache: Path, name: str, digest: str | None) -> None:
    """Record ``digest`` for ``name`` (None: forget it); locked, as runs may share the cache."""
    with locked(_lock_path(cache, RECORDED_HASHES)):
        recorded = _read_recorded(cache)
        if digest is None and recorded.pop(name, None) is None:
            return
        if digest is not None:
            recorded[name] = digest
        atomic.write_json(cache / RECORDED_HASHES, recorded, indent=1)


def forget_recorded(cache, name: str) -> None:
    """Drop the recorded hash of ``name`` (after the cached file proved bad)."""
    _update_recorded(Path(cache), name, None)


def known_hash(name: str, cache_dir=None) -> str | None:
    """The sha256 (``"sha256:<hex>"``) a cached ``name`` must have: the registry's, else the
    one recorded at its first download (which passed its checks); None before that."""
    return REGISTRY[name] or _read_recorded(resolve_cache_dir(cache_dir)).get(name)


def _cached_ok(final: Path, name: str, known: str | None, cache: Path, progressbar: bool) -> bool:
    """Whether the cached ``final`` may be used as is; a bad one is deleted (and its record dropped)."""
    kind = kind_of(name)
    if known:
        if sha256(final, progressbar) != known:
            return False  # pooch downloads it again and checks it against ``known``
        return True  # the registry's hash, or one recorded only after the file passed its checks
    else:  # there but never recorded (put there by hand, or a run ended before recording it)
        try:
            check_file(final, kind, thorough=True, progressbar=progressbar)
            _update_recorded(cache, name, sha256(final, progressbar))
            return True
        except InvalidDownload as exc:
            tqdm.write(f"livecell-kit: the cached {exc}; deleting it and downloading it again.",
                       file=sys.stderr)
    final.unlink()
    return False


def fetch(name: str, cache_dir=None, base_url=None, progressbar: bool = True,
          retries: int = 3) -> Path:
    """Download one registry file (path under the base URL) into the cache; return its path.

    A cached file whose sha256 matches (registry, else the hash recorded at its first
    download) and which passes a quick check of its kind is returned without touching the
    network.  Transfers are retried ``retries`` times, resume where they stopped, and only
    appear at the final path once complete and checked
    (:mod:`~livecell_kit.download.checks`); only then is a hash recorded.  Cache:
    ``cache_dir``, else env ``LIVECELL_KIT_DATA``, else pooch's OS cache.  Base URL of a
    mirror: ``base_url``, else env ``LIVECELL_BASE_URL``, else the official server
    (:data:`REGISTRY_URLS`); anything but http(s) raises ``ValueError``.
    """
    if name not in REGISTRY:
        raise KeyError(f"{name!r} is not a LIVECell file this kit knows; see download.REGISTRY")
    cache = resolve_cache_dir(cache_dir)
    mirror = resolve_base_url(base_url)
    url = file_url(name, base_url)
    final = cache / name
    where = f"--base-url / LIVECELL_BASE_URL, now {mirror or BASE_URL}"
    with locked(_lock_path(cache, name)):
        known = known_hash(name, cache)
        if final.exists():
            if _cached_ok(final, name, known, cache, progressbar):
                return final  # hashed with a progress bar; pooch would hash it again, silently
            known = known_hash(name, cache)  # a record the bad copy had is gone
        store = pooch.create(path=cache, base_url=mirror or BASE_URL, registry={name: known},
                             urls={name: url}, retry_if_failed=retries)
        downloader = ResumableDownloader(final.with_name(final.name + ".part"), progressbar=progressbar,
                                         kind=kind_of(name))
        try:
            path = Path(store.fetch(name, downloader=downloader))
        except _HTTPStatusError as exc:
            raise DownloadError(f"could not download {name}: {exc}. Check the base URL ({where}) and "
                                f"your connection.") from None
        except InvalidDownload as exc:
            raise type(exc)(f"could not download {name}: {exc}. Nothing was kept or recorded; check "
                            f"the base URL ({where}) and rerun.") from None
        except requests.exceptions.RequestException as exc:
            raise DownloadError(
                f"download of {name} from {url} failed after {retries + 1} attempt(s) ({exc}). "
                f"Rerun the same command: it resumes from {downloader.part_path}.") from None
        except ValueError as exc:  # pooch: hash mismatch after all retries
            raise DownloadError(
                f"{name} from {url} does not match its expected checksum ({exc}). The server's copy "
                f"differs from the one recorded earlier or the transfer was corrupted. Rerun to try "
                f"again; if the file changed upstream on purpose, delete the entry for {name!r} in "
                f"{cache / RECORDED_HASHES}.") from None
        if known is None:
            _update_recorded(cache, name, sha256(path, progressbar))
    return path
