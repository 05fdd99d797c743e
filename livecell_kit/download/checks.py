"""What a downloaded file must be before the cache trusts it (records its hash) or the kit uses it.

LIVECell publishes no checksums, so the cache trusts a file's first download
(:mod:`~livecell_kit.download.registry`).  A mirror that answers 200 with an HTML error page, a
body cut short or a crafted archive would then be trusted for good; so every file is first
checked for being what its name says:

* the response's ``Content-Type`` may not be a web page (nor text, for an archive) —
  checked on the headers, before the body is read (:func:`check_content_type`);
* an annotation JSON must be one complete JSON object with a top-level ``"annotations"``
  (:func:`check_json`): streamed through ijson's C backend once, after its download,
  never loaded whole; a cached copy, whose
  hash is checked anyway, gets the quick form (first and last bytes);
* a zip archive's central directory must read, its members stay inside the target folder
  (zip-slip) and its declared sizes be plausible (:func:`check_zip`): the data lies inside
  the file, at most :data:`MAX_EXTRACT_BYTES` in all and at most :data:`MAX_RATIO` times the
  archive's size (a zip bomb expands about 1000-fold).
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path, PurePosixPath

import ijson
from tqdm.auto import tqdm

from livecell_kit.data.coco_stream import DepthGuard
from livecell_kit.download.ranges import DownloadError
from livecell_kit.data.validation import AnnotationError

#: Most bytes an archive may expand to.  LIVECell's images.zip (1.24 GB) holds well under this.
MAX_EXTRACT_BYTES = 8 << 30
#: Most an archive may expand relative to its own size; LIVECell's frames barely compress.
MAX_RATIO = 100
#: Archives expanding to less than this are never refused for their ratio (small text members).
RATIO_FLOOR_BYTES = 16 << 20
_SNIFF = 4096
_NO_SUCH_PREFIX = "\x00"  # ijson.items with a prefix no file has: a syntax check, all in C
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_WEB_TYPES = ("text/html", "application/xhtml+xml")
_NOT_AN_ARCHIVE = ("text/", "application/json")


class InvalidDownload(DownloadError):
    """A downloaded or cached file is not what its name says (a web page, cut short, unsafe)."""


class UnsafeArchive(InvalidDownload, ValueError):
    """A zip archive whose extraction would write outside its folder or fill the disk."""


def kind_of(name: str) -> str | None:
    """``"json"`` or ``"zip"`` from a registry name's ending; None for anything else."""
    suffix = PurePosixPath(name).suffix.lower()
    return {".json": "json", ".zip": "zip"}.get(suffix)


def check_content_type(value: str | None, kind: str | None) -> None:
    """Refuse a response whose ``Content-Type`` header cannot be a ``kind`` file."""
    media = (value or "").split(";")[0].strip().lower()
    if media in _WEB_TYPES:
        raise InvalidDownload(f"the server sent a web page (Content-Type {media}), not a {kind or 'data'} "
                              f"file: an error or login page answered with status 200")
    if kind == "zip" and media.startswith(_NOT_AN_ARCHIVE):
        raise InvalidDownload(f"the server sent {media}, not a zip archive")


def check_file(path, kind: str | None, thorough: bool = True, progressbar: bool = False,
               label=None) -> None:
    """Raise :class:`InvalidDownload` unless the file at ``path`` is a plausible ``kind`` file.

    thorough: parse all of a JSON (False: its first and last bytes only); archives are always
        checked in full (their central directory is small).
    label: how messages name the file (default: ``path``), e.g. the URL it came from.
    """
    if kind == "json":
        check_json(path, thorough, progressbar, label)
    elif kind == "zip":
        check_zip(path, label)


def _web_page(head: bytes) -> str | None:
    """A description of ``head`` when it starts an HTML/XML page, else None."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"<"):
        return None
    title = _TITLE.search(head)
    name = title.group(1).decode("utf-8", "replace").strip()[:80] if title else ""
    return f"an HTML page{f' titled {name!r}' if name else ''}"


def _ends(path: Path) -> tuple[bytes, bytes]:
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
        f.seek(max(0, path.stat().st_size - _SNIFF))
        return head, f.read()


def check_json(path, thorough: bool = True, progressbar: bool = False, label=None) -> None:
    """Raise :class:`InvalidDownload` unless ``path`` is a complete JSON object with ``"annotations"``.

    The quick form (``thorough=False``) checks that the file opens with ``{`` and ends with
    ``}``; the thorough form parses every byte, streaming.  label: as in :func:`check_file`.
    """
    path = Path(path)
    label = label or path
    head, tail = _ends(path)
    page = _web_page(head)
    if page:
        raise InvalidDownload(f"{label} is {page}, not a JSON annotation file")
    if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        what = "is empty" if not head.strip() else f"starts with {head.strip()[:20]!r}"
        raise InvalidDownload(f"{label} is not a JSON object (the file {what})")
    if not tail.rstrip().endswith(b"}"):
        raise InvalidDownload(f"{label} ends with {tail.rstrip()[-20:]!r}, not with '}}': cut short")
    if thorough:
        _parse_all(path, progressbar, label)
        _require_annotations(path, label)


class _Counted:
    """A binary file that advances a progress bar by the bytes read and checks their nesting depth.

    ijson's memory grows with the square of the nesting depth (the index's reader guards
    against it the same way), so a forged deep file is refused before ijson sees its blocks.
    """

    def __init__(self, f, bar, guard: DepthGuard):
        self.f, self.bar, self.guard = f, bar, guard

    def read(self, n: int) -> bytes:
        block = self.f.read(n)
        self.guard.feed(block)
        self.bar.update(len(block))
        return block


def _parse_all(path: Path, progressbar: bool, label) -> None:
    with open(path, "rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
                                     desc=f"validating {path.name}", disable=not progressbar,
                                     leave=False) as bar:
        try:
            for _ in ijson.items(_Counted(f, bar, DepthGuard(label)), _NO_SUCH_PREFIX, use_float=True):
                pass  # use_float: no Decimals, 2x faster
        except AnnotationError as exc:  # nested too deep
            raise InvalidDownload(str(exc)) from None
        except (ijson.JSONError, UnicodeDecodeError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # yajl adds a drawing
            raise InvalidDownload(f"{label} is not valid JSON ({reason}): cut short or corrupt") from None


def _require_annotations(path: Path, label) -> None:
    # Walks the events only up to the "annotations" key: LIVECell's files list their
    # images (a few thousand records) before it.
    with open(path, "rb") as f:
        for prefix, event, value in ijson.parse(f, use_float=True):
            if prefix == "" and event == "map_key" and value == "annotations":
                return
    raise InvalidDownload(f"{label} is JSON without a top-level 'annotations': not a COCO "
                          f"annotation file")


def check_member_name(name: str, zip_path) -> PurePosixPath:
    """``name`` as a relative path; :class:`UnsafeArchive` when it is absolute or has ``..`` (zip-slip)."""
    norm = name.replace("\\", "/")
    member = PurePosixPath(norm)
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":") or ".." in member.parts:
        raise UnsafeArchive(f"{zip_path} contains the unsafe member {name!r} (absolute path or '..'), "
                            f"which would be written outside the target folder; refusing to extract. "
                            f"Delete the archive and download it from a trusted source.")
    return member


def check_zip(path, label=None) -> int:
    """Check the zip archive at ``path`` (see the module docstring); return its expanded size in bytes.

    Raises :class:`UnsafeArchive` (a ``ValueError`` too) for zip-slip members or implausible
    sizes, :class:`InvalidDownload` when the central directory does not read.  label: as in
    :func:`check_file`.
    """
    path = Path(path)
    label = label or path
    size = path.stat().st_size
    page = _web_page(_ends(path)[0])
    if page:
        raise InvalidDownload(f"{label} is {page}, not a zip archive")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise InvalidDownload(f"{label} is not a complete zip archive ({exc})") from None
    for info in infos:
        check_member_name(info.filename, label)
    if any(info.header_offset + info.compress_size > size for info in infos):
        raise InvalidDownload(f"{label}: its directory places data past the end of the {size}-byte file; "
                              f"the archive is cut short or forged")
    total = sum(info.file_size for info in infos)
    if total > MAX_EXTRACT_BYTES:
        raise UnsafeArchive(f"{label} would expand to {total / 2**30:.1f} GiB, more than the "
                            f"{MAX_EXTRACT_BYTES / 2**30:.0f} GiB any LIVECell archive needs; refusing to "
                            f"extract it. Delete it and download it from a trusted source.")
    if total > RATIO_FLOOR_BYTES and total > MAX_RATIO * size:
        raise UnsafeArchive(f"{label} would expand {total / max(size, 1):.0f}-fold ({size / 2**20:.1f} MiB "
                            f"to {total / 2**30:.2f} GiB), more than the {MAX_RATIO}-fold of real data "
                            f"(a zip bomb?); refusing to extract it. Delete it and download it from a "
                            f"trusted source.")
    return total
