"""Members of a zip archive on an HTTP server, fetched by range requests: only the bytes asked for.

LIVECell's ``images.zip`` (1.24 GB) holds 5,239 frames; the seed subset needs 1,792.
:func:`open_remote_zip` reads the archive's tail (end records and, for LIVECell, the whole
central directory) with one ``Range: bytes=-N`` request and lets :mod:`zipfile` parse it,
ZIP64 included, through :class:`_RangeReader`.  :func:`fetch_members` then fetches the
wanted members' local headers and data (neighbours coalesced into one request, a few
requests in parallel), inflates each, checks its CRC-32 and size, and writes it atomically,
so a cut or corrupted transfer never leaves a file that looks done.  A cut request resumes
at the byte where it stopped; files already on disk with the right size and CRC are kept.

Nothing a server says is taken on trust: every answer must be a 206 whose ``Content-Range``
(span and total) and ``Content-Length`` are exactly the range asked for, else
:class:`RangeNotSupported` at that first answer (200 with the whole file, a 416 inside the
file, a shifted, garbage or over-long answer, a wrong total; :mod:`~livecell_kit.download.ranges`)
— also midway, when a server
stops honouring ``Range`` after the listing; the caller then downloads the whole file.  The
listing's member offsets and sizes are checked against the central directory's position
before any member is asked for, so a forged directory is refused at once.

Own code because pooch and requests fetch whole files only, and :mod:`zipfile` reads members
through one seekable file under one lock, while here the members arrive in parallel as bytes.
"""
from __future__ import annotations

import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests
from tqdm.auto import tqdm

from livecell_kit import atomic
from livecell_kit.download.ranges import DownloadError, RangeNotSupported, check_partial, lie

#: The first request asks for the last MiB: end records plus LIVECell's whole central
#: directory (5,239 entries, about 0.5 MB), so listing the archive takes one request.
TAIL_BYTES = 1 << 20
#: Members closer than this are fetched in one request (the gap is downloaded and dropped).
#: Measured (600 frames of 227 KB, every third wanted, 30 ms per request, 25 MB/s per
#: connection): adjacent members share a request for free (a run of 70 frames: 1 request,
#: not 70), but bridging whole unwanted frames (512 KiB gap) sent 97 % of the archive
#: instead of 33 % — parallel requests win that time back (16.3 s -> 2.1 s with 8 workers)
#: without the bytes.  64 KiB is well under the smallest real frame seen (170 KB of 37).
MAX_GAP = 64 << 10
#: Upper bound of one request (bytes): long runs of wanted frames still spread over the
#: workers, and each worker holds at most this much in memory.
MAX_REQUEST = 8 << 20
WORKERS = 8
#: Largest member fetched (bytes, uncompressed): a LIVECell frame is under 1 MB; a member
#: declaring more is refused before any request, and inflating never goes past its declared size.
MAX_MEMBER_BYTES = 256 << 20
RETRY_WAIT_S = 1.0  # after a failed attempt that brought no bytes (times the failures so far)
_CHUNK = 1 << 16
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature ... name length, extra length
_IDENTITY = {"Accept-Encoding": "identity"}  # a compressed answer would break byte offsets


@dataclass(frozen=True)
class Member:
    """One member of a remote archive: its zip record and where its bytes lie.

    start: offset of its local header; end: offset of the next record (the next local
    header or the central directory) — ``[start, end)`` holds everything needed to read it.
    """

    info: zipfile.ZipInfo
    start: int
    end: int


@dataclass(frozen=True)
class RemoteZip:
    """The listing of a zip archive at ``url``: ``size`` bytes, ``members`` by name."""

    url: str
    size: int
    members: Mapping[str, Member]
    listing_bytes: int  # transferred to list it


@dataclass(frozen=True)
class FetchStats:
    """What :func:`fetch_members` did: members written and kept, requests and bytes transferred."""

    fetched: int
    kept: int
    requests: int
    bytes: int


_local = threading.local()


def _session() -> requests.Session:
    # One keep-alive connection per worker thread (requests' Session is not thread-safe).
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session



def fetch_range(url: str, start: int, end: int, size: int | None, retries: int = 3,
                timeout: float = 60.0, on_bytes: Callable[[int], None] | None = None,
                ) -> tuple[bytes, int, int]:
    """Bytes ``[start, end)`` of ``url``; with ``start < 0``, its last ``-start`` bytes.

    size: the file's size in bytes, checked against every answer (None: not known yet).
    A cut transfer is resumed at the byte where it stopped; an attempt that brings no bytes
    (connection refused, HTTP 5xx) is retried ``retries`` times.  Returns
    ``(data, offset of data[0], file size)``.  Raises :class:`RangeNotSupported` on the
    first answer that is not exactly the range asked for (its body is not read on) and :class:`DownloadError` when the retries are spent.
    """
    buf, failures, offset = bytearray(), 0, start
    want = end - start if start >= 0 else -start
    while len(buf) < want:
        first = offset + len(buf)
        spec = f"{first}-{end - 1}" if start >= 0 else str(start)
        got_before = len(buf)
        try:
            with _session().get(url, headers={"Range": f"bytes={spec}", **_IDENTITY}, stream=True,
                                timeout=timeout) as response:
                at, size = check_partial(response, url, first if start >= 0 else start, end - 1, size)
                if start < 0:  # a suffix request: now we know where it starts and ends
                    offset = at
                    want, start, end = size - offset, offset, size
                # A short body ends quietly instead of losing its last chunk to urllib3's
                # length check; the loop asks for the rest.
                response.raw.enforce_content_length = False
                for chunk in response.iter_content(_CHUNK):
                    if len(chunk) > want - len(buf):
                        raise lie(url, f"sent more than the {want - got_before} bytes its Content-Range "
                                        f"announced for bytes {first}-")
                    buf += chunk
                    if on_bytes:
                        on_bytes(len(chunk))
                    if len(buf) >= want:
                        break
        except requests.exceptions.RequestException as exc:
            error = exc
        else:
            error = "the server closed the connection early"
        if len(buf) >= want:
            break
        if len(buf) == got_before:
            failures += 1
            if failures > retries:
                what = f"the last {-start} bytes" if start < 0 else f"bytes {offset + len(buf)}-{end - 1}"
                raise DownloadError(f"could not fetch {what} of {url} "
                                    f"after {retries + 1} attempts ({error}). Check your connection "
                                    f"and rerun: files already written are kept.") from None
            time.sleep(RETRY_WAIT_S * failures)
    return bytes(buf), offset, size


class _RangeReader:
    """Read-only seekable file over HTTP for :class:`zipfile.ZipFile`: the tail is in memory,
    other reads (a central directory larger than the tail) are range requests."""

    def __init__(self, url, size, tail_start, tail, fetch):
        self.url, self.size, self.tail_start, self.tail = url, size, tail_start, tail
        self.fetch, self.pos, self.fetched = fetch, 0, 0

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=0):
        self.pos = {0: 0, 1: self.pos, 2: self.size}[whence] + offset
        return self.pos

    def read(self, n=-1):
        end = self.size if n is None or n < 0 else min(self.size, self.pos + n)
        data = b""
        if self.pos < min(end, self.tail_start):
            data = self.fetch(self.pos, min(end, self.tail_start))
            self.fetched += len(data)
        if end > self.tail_start:
            data += self.tail[max(self.pos, self.tail_start) - self.tail_start: end - self.tail_start]
        self.pos += len(data)
        return data


def open_remote_zip(url: str, retries: int = 3, timeout: float = 60.0) -> RemoteZip:
    """List the zip archive at ``url`` with range requests (usually one, of :data:`TAIL_BYTES`).

    Raises :class:`RangeNotSupported` when the server ignores or mishandles ``Range`` —
    detected on this first request, whose body is then left unread — and :class:`DownloadError`
    when the listing places a member where it cannot lie, or when the
    file is not a zip archive.
    """
    tail, tail_start, size = fetch_range(url, -TAIL_BYTES, 0, None, retries, timeout)

    def fetch(first, stop):
        return fetch_range(url, first, stop, size, retries, timeout)[0]

    reader = _RangeReader(url, size, tail_start, tail, fetch)
    try:
        with zipfile.ZipFile(reader) as archive:
            infos, directory = archive.infolist(), archive.start_dir
    except (zipfile.BadZipFile, ValueError, struct.error) as exc:
        raise DownloadError(f"{url} is not a readable zip archive ({exc}); is the base URL a "
                            f"LIVECell mirror?") from None
    ordered = sorted(infos, key=lambda i: i.header_offset)
    ends = [i.header_offset for i in ordered[1:]] + [directory]
    members = {i.filename: Member(i, i.header_offset, e) for i, e in zip(ordered, ends)}
    _check_layout(url, size, directory, members.values())
    return RemoteZip(url, size, members, len(tail) + reader.fetched)


def _check_layout(url: str, size: int, directory: int, members) -> None:
    """Raise :class:`DownloadError` unless every member's local header and data lie before the
    central directory (at byte ``directory``) and before the next member."""
    members = list(members)
    past = [(m, f"past the central directory at byte {directory:,}") for m in members
            if m.start + _LOCAL_HEADER.size + m.info.compress_size > directory]
    over = [(m, f"over the next member at byte {m.end:,}") for m in members
            if m.start + _LOCAL_HEADER.size + m.info.compress_size > m.end]
    if past or over:
        member, where = (past or over)[0]
        raise DownloadError(
            f"{url} is damaged or forged: its central directory places {member.info.filename} (a "
            f"{member.info.compress_size:,}-byte member) at byte {member.start:,}, which runs {where} "
            f"of the {size:,}-byte file. Nothing was fetched; try another mirror (--base-url).")


def read_member(member: Member, span: bytes) -> bytes:
    """The uncompressed bytes of ``member`` from ``span`` = the archive's bytes ``[start, end)``.

    Checks the local header, inflates (stored or deflated members) and compares CRC-32 and
    size with the central directory; raises :class:`zipfile.BadZipFile` on any mismatch.
    """
    info = member.info
    if len(span) < _LOCAL_HEADER.size:
        raise zipfile.BadZipFile(f"{info.filename}: only {len(span)} bytes arrived")
    sig, _, flags, _, _, _, _, _, _, name_len, extra_len = _LOCAL_HEADER.unpack_from(span)
    if sig != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"{info.filename}: no local header at byte {member.start}")
    if flags & 0x1:
        raise DownloadError(f"{info.filename} is encrypted; the kit reads plain archives only")
    first = _LOCAL_HEADER.size + name_len + extra_len
    data = span[first: first + info.compress_size]
    if len(data) != info.compress_size:
        raise zipfile.BadZipFile(f"{info.filename}: {len(data)} of {info.compress_size} bytes arrived")
    if info.compress_type == zipfile.ZIP_STORED:
        out = data
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        try:
            inflate = zlib.decompressobj(-15)  # raw deflate stream, as zip stores it
            out = inflate.decompress(data, info.file_size + 1)  # one byte more shows a lie
            if len(out) <= info.file_size:
                out += inflate.flush()
        except zlib.error as exc:
            raise zipfile.BadZipFile(f"{info.filename}: corrupt deflate data ({exc})") from None
    else:
        raise DownloadError(f"{info.filename} uses zip compression method {info.compress_type}, which "
                            f"a range download cannot read; use `--subset full`")
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        raise zipfile.BadZipFile(f"{info.filename}: CRC-32 {zlib.crc32(out):08x} / {len(out)} bytes, "
                                 f"expected {info.CRC:08x} / {info.file_size} bytes")
    return out


def plan_requests(members, max_gap: int = MAX_GAP, max_request: int = MAX_REQUEST) -> list[list[Member]]:
    """Group members by offset into requests: a member joins the previous request when the
    gap is at most ``max_gap`` bytes and the request stays within ``max_request`` bytes."""
    groups: list[list[Member]] = []
    for member in sorted(members, key=lambda m: m.start):
        last = groups[-1] if groups else None
        if last and member.start - last[-1].end <= max_gap and member.end - last[0].start <= max_request:
            last.append(member)
        else:
            groups.append([member])
    return groups


def _is_present(member: Member, path: Path) -> bool:
    """True when ``path`` holds exactly the member's bytes (size, then CRC-32)."""
    try:
        if path.stat().st_size != member.info.file_size:
            return False
        return zlib.crc32(path.read_bytes()) == member.info.CRC
    except OSError:
        return False


def fetch_members(remote: RemoteZip, targets: Mapping[str, Path], workers: int = WORKERS,
                  retries: int = 3, timeout: float = 60.0, max_gap: int = MAX_GAP,
                  max_request: int = MAX_REQUEST, progressbar: bool = True) -> FetchStats:
    """Write each member ``name`` of ``remote`` to ``targets[name]``, checked and atomically.

    Members larger than :data:`MAX_MEMBER_BYTES` are refused (``DownloadError``) before any
    request.  Files already at their target with the member's size and CRC-32 are kept.  The others
    are fetched in requests planned by :func:`plan_requests`, ``workers`` at a time; a member
    that fails its CRC-32 check is fetched again on its own, ``retries`` times.  Errors are
    raised after every other request has finished, so a rerun fetches only what is missing.
    """
    unknown = [n for n in targets if n not in remote.members]
    if unknown:
        raise KeyError(f"{remote.url} has no member(s) {unknown[:3]}")
    huge = [remote.members[n].info for n in targets if remote.members[n].info.file_size > MAX_MEMBER_BYTES]
    if huge:
        raise DownloadError(f"{huge[0].filename} in {remote.url} declares {huge[0].file_size:,} bytes, "
                            f"more than the {MAX_MEMBER_BYTES:,} any LIVECell frame needs; refusing it "
                            f"(a forged archive?). Try another mirror (--base-url).")
    check = tqdm(list(targets.items()), desc="checking files here", unit="file",
                 disable=not progressbar or len(targets) < 100, leave=False)
    missing = [remote.members[n] for n, path in check if not _is_present(remote.members[n], path)]
    groups = plan_requests(missing, max_gap, max_request)
    lock, counts, refused = threading.Lock(), {"requests": 0, "bytes": 0}, threading.Event()
    bar = tqdm(total=sum(g[-1].end - g[0].start for g in groups), unit="B", unit_scale=True,
               unit_divisor=1024, desc=Path(remote.url).name, disable=not progressbar)

    def on_bytes(n):
        with lock:
            counts["bytes"] += n
        bar.update(n)

    def get(first, stop):
        with lock:
            counts["requests"] += 1
        return fetch_range(remote.url, first, stop, remote.size, retries, timeout, on_bytes)[0]

    def checked(member, piece):
        for attempt in range(retries + 1):
            try:
                return read_member(member, piece)
            except zipfile.BadZipFile as exc:
                if attempt == retries:
                    raise DownloadError(
                        f"{member.info.filename} from {remote.url} failed its check {retries + 1} "
                        f"times ({exc}); the server's copy may be damaged: try a mirror "
                        f"(--base-url) or `--subset full`") from None
                piece = get(member.start, member.end)

    def run(group):
        if refused.is_set():  # the server stopped honouring Range: no more requests
            return
        try:
            span, failed = get(group[0].start, group[-1].end), []
            for member in group:  # one bad member does not cost the others
                try:
                    data = checked(member, span[member.start - group[0].start: member.end - group[0].start])
                except RangeNotSupported:
                    raise
                except DownloadError as exc:
                    failed.append(exc)
                    continue
                atomic.write_bytes(targets[member.info.filename], data)
        except RangeNotSupported:
            refused.set()
            raise
        if failed:
            raise failed[0]

    pool = ThreadPoolExecutor(max(1, workers))
    try:
        with bar:
            errors = [f.exception() for f in [pool.submit(run, g) for g in groups]]
    finally:  # on Ctrl-C: drop the requests not started yet, let the running ones end
        pool.shutdown(wait=True, cancel_futures=True)
    errors = sorted((e for e in errors if e is not None), key=lambda e: not isinstance(e, RangeNotSupported))
    if errors:  # a server that stopped honouring Range first: the caller falls back to the whole file
        raise errors[0]
    return FetchStats(fetched=len(missing), kept=len(targets) - len(missing),
                      requests=counts["requests"], bytes=counts["bytes"])
