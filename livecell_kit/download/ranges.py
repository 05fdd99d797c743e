"""What a server's answer to an HTTP ``Range`` request must be, and the errors of a download.

:func:`check_partial` holds every answer to exactly the range asked for: a 206 whose
``Content-Range`` (span and total) and ``Content-Length`` match, else
:class:`RangeNotSupported` (a 200 with the whole file, a 416 inside the file, a shifted,
garbage or over-long answer, a wrong total); :func:`lie` words that error for the other
checks of :mod:`~livecell_kit.download.remote_zip`.  :func:`parse_content_range` reads the header,
also for the resumed downloads of :mod:`~livecell_kit.download.cache`.
"""
from __future__ import annotations


class DownloadError(OSError):
    """A download failed or a checksum did not match; the message says what to do."""


#: How a range download's errors name the way round a server that mishandles ``Range``.
USE_FULL = "`--subset full` downloads the whole images.zip instead, without range requests"


class RangeNotSupported(DownloadError):
    """The server does not answer ``Range`` requests as a file server must: the whole file
    (HTTP 200), a 416 for bytes inside the file, or a 206 whose ``Content-Range`` or body
    is not the range asked for.  Raised at the first such answer; its body is left unread."""


def parse_content_range(value) -> tuple[int, int, int] | None:
    """``"bytes 100-199/200"`` -> ``(100, 199, 200)``; None if absent, malformed or of unknown length."""
    try:
        unit, spec = value.split()
        span, total = spec.split("/")
        first, last = span.split("-")
        return (int(first), int(last), int(total)) if unit == "bytes" else None
    except (AttributeError, ValueError):
        return None


def lie(url: str, what: str) -> RangeNotSupported:
    """The error for a server at ``url`` that answered a range request as ``what`` says."""
    return RangeNotSupported(f"{url} {what}: the server does not honour HTTP Range requests as a file "
                             f"server must (or the file changed on it while downloading); {USE_FULL}.")


def check_partial(response, url: str, first: int, last: int, size: int | None) -> tuple[int, int]:
    """Raise unless ``response`` is a 206 for bytes ``first..last`` of a ``size``-byte file.

    first < 0: a suffix request for the last ``-first`` bytes of a file of unknown ``size``
    (None).  Every answer is held to what was asked: the span and total of its
    ``Content-Range`` and its ``Content-Length``.  Returns ``(offset of the first byte, file size)``.
    """
    status = response.status_code
    asked = f"bytes={first}" if first < 0 else f"bytes={first}-{last}"
    if status == 200:
        raise RangeNotSupported(f"{url} ignores HTTP Range requests (answered {asked} with the whole "
                                f"file, HTTP 200); {USE_FULL}.")
    if status >= 500 or status in (408, 429):
        response.raise_for_status()  # a RequestException: retried
    if status == 416:  # only ever asked for bytes inside the file (or a suffix of it)
        raise lie(url, f"refused {asked} (HTTP 416), bytes that lie inside the file")
    if status != 206:
        raise DownloadError(f"HTTP {status} {response.reason} for bytes {max(first, 0)}- of {url}; check the "
                            f"base URL (--base-url / LIVECELL_BASE_URL) and your connection")
    header = response.headers.get("Content-Range")
    got = parse_content_range(header)
    if got is None:
        raise lie(url, f"answered {asked} with Content-Range {header!r}, which is no byte range")
    a, b, total = got
    if first < 0:  # the last -first bytes, or the whole file when it is smaller
        expected = (max(0, total + first), total - 1, total)
    else:
        known = size if size is not None else total
        expected = (first, min(last, known - 1), known)
    if total <= 0 or (a, b, total) != expected:
        of = f" of the {size}-byte file" if size is not None else ""
        raise lie(url, f"answered {asked}{of} with Content-Range {header!r}")
    length = response.headers.get("Content-Length")
    identity = response.headers.get("Content-Encoding", "identity").lower() == "identity"
    if length is not None and identity and length.strip().isdigit() and int(length) != b - a + 1:
        raise lie(url, f"answered {asked} with Content-Range {header!r} but a {length}-byte body")
    return a, total
