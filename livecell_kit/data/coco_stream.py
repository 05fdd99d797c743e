"""One streaming pass over a COCO annotation file: its small top-level parts, and its
annotations in batches.

``json.load`` turns LIVECell's 525 MiB train file into 56 M Python floats (4.2 GB).
Here ijson's C backend (yajl) reads it in 64 KiB blocks and hands the annotations over
in small batches, so memory holds a block and a batch.

ijson builds objects for one prefix per pass, so the pass has three parts:

* **head** — the members before ``"annotations"`` (info, licenses, categories, images in
  LIVECell's files), built from ijson's events; it also finds the byte where the
  annotations value starts;
* **body** — ``ijson.items(..., "annotations.item")`` (or ``kvitems`` for the Kaggle
  copies' dict keyed by id) over the whole file: all in C, the tokens before and after
  the annotations are skipped there;
* **tail** — members after the annotations (none in LIVECell's files): from the bytes
  kept since the block where the last annotation ended, at the first closing bracket
  after which the rest of the file parses as the end of an object.

Nesting depth: ijson gives every event its full prefix (``annotations.item.item...``), so
a file nested d levels deep costs O(d²) memory — 30 000 levels took 4.4 GB, 100 000 would
take ~50 GB.  Every block is therefore measured by :class:`DepthGuard` before ijson sees
it, and a file nested deeper than :data:`MAX_DEPTH` is refused (COCO files nest 5 deep).

Why not one pass over ijson's events: on a LIVECell-sized train file (537 MiB, 943 k
cells, 73.6 M events) iterating ``ijson.parse`` in Python takes 19.7 s before doing any
work, ``ijson.items(f, "annotations.item")`` 9.0 s (2-core test machine); ijson's push
interface (``items_coro``) took 30-40 s for the same pass, so the body pulls.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from itertools import islice
from typing import Callable

import ijson
import numpy as np

from livecell_kit.data.layout import FIX_DATA
from livecell_kit.data.validation import AnnotationError

#: Bytes read and parsed at a time.
BLOCK_SIZE = 1 << 16
#: Annotations handed over at a time.  Small batches keep the parser's fresh objects in the
#: CPU caches: the LIVECell-sized train file (943 k cells) parsed and stored in 12.7 s with
#: 128, 15.6 s with 256, 19.8 s with 1,024 (2-core test machine).
BATCH_SIZE = 128
_HEAD_PIECE = 1 << 16
_KEY_TEXT = re.compile(rb'"annotations"')
#: Deepest nesting of arrays and objects accepted.  A COCO file nests 5 deep (top level,
#: annotations, one annotation, its polygons, one polygon); extra keys may add a few.
MAX_DEPTH = 64
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_OPENERS, _CLOSERS = b"[{", b"]}"
_STEP = np.zeros(256, np.int64)
_STEP[list(_OPENERS)], _STEP[list(_CLOSERS)] = 1, -1
_TYPE_OF_EVENT = {"start_array": "list", "string": "str", "number": "number", "boolean": "bool",
                  "null": "null"}


@dataclass(frozen=True)
class TopLevel:
    """The file's top level apart from its annotations.

    members: every top-level key except ``"annotations"`` -> its value, as in the file.
    keys: all top-level keys in file order.  form: ``"list"`` (official files) or
    ``"dict"`` (annotations keyed by id, the Kaggle copies).
    """

    members: dict
    keys: list
    form: str


def stream_coco(path, on_batch: Callable[[list], None], on_bytes: Callable[[int], None] | None = None,
                block_size: int = BLOCK_SIZE) -> TopLevel:
    """Read the COCO file ``path`` once; pass its annotations to ``on_batch`` in file order.

    on_batch: called with lists of annotation dicts (numbers as int/float, as ``json.load``
        gives them); entries of a dict-form file that lack ``"id"`` get their key as id.
    on_bytes: called with the number of bytes read after each block (progress).
    Raises :class:`AnnotationError` naming the file when it is not valid JSON (truncated,
    corrupt) or not a COCO object with ``annotations``.
    """
    try:
        return _stream(path, on_batch, on_bytes or (lambda n: None), block_size)
    except (ijson.JSONError, UnicodeDecodeError) as exc:
        raise AnnotationError(json_error_message(path, exc)) from None


#: The fix for a file that is not valid JSON: never "delete it", since it may be the user's own work.
FIX_JSON = ("if you edited it, correct the JSON there (any editor that saves UTF-8 will do); a LIVECell "
            "or sample file can instead be fetched or drawn again into a new folder with "
            "`livecell-kit download --out DIR` or `livecell-kit sample --out DIR`")


def json_error_message(path, exc: Exception) -> str:
    """What is wrong with the JSON file ``path`` that ijson refused with ``exc``, and the fix."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # yajl adds a context drawing
    with contextlib.suppress(OSError), open(path, "rb") as f:
        if f.read(2) in _UTF16_BOMS:
            return (f"{path} is UTF-16 text, not UTF-8: save it again as UTF-8 (e.g. Notepad's Save as, "
                    f"Encoding UTF-8)")
    if "premature EOF" in reason:
        return (f"{path} is not valid JSON: it ends before its brackets close, so it is truncated "
                f"(an interrupted copy or download?); {FIX_JSON}")
    return f"{path} is not valid JSON ({reason}); {FIX_JSON}"


def open_json(path):
    """``path`` opened for binary reading past a UTF-8 byte-order mark (Windows Notepad writes one)."""
    f = open(path, "rb")
    if f.read(len(_UTF8_BOM)) != _UTF8_BOM:
        f.seek(0)
    return f


def _stream(path, on_batch, on_bytes, block_size) -> TopLevel:
    members, keys, form, value_start = _read_head(path)
    if form is None:
        raise AnnotationError(f"{path}: missing top-level key 'annotations' — not a COCO annotation "
                              f"file; {FIX_DATA}")
    if form not in ("start_array", "start_map"):
        raise AnnotationError(f"{path}: 'annotations' is a {_TYPE_OF_EVENT.get(form, form)}, expected a "
                              f"list or a dict keyed by id; {FIX_DATA}")
    form_name = "list" if form == "start_array" else "dict"
    with open_json(path) as f:
        reader = _Reader(f, on_bytes, path)
        if form_name == "list":
            annotations, convert = ijson.items(reader, "annotations.item", use_float=True, buf_size=block_size), None
        else:
            annotations, convert = ijson.kvitems(reader, "annotations", use_float=True, buf_size=block_size), \
                _keyed_by_id(path)
        window_start = -1
        while True:
            mark = reader.block_start()
            batch = list(islice(annotations, BATCH_SIZE))
            if not batch:
                break
            # every annotation of this batch ends at or after ``mark``: so does the last one
            window_start = mark
            reader.forget_before(mark)
            on_batch(convert(batch) if convert else batch)
    if window_start < 0:  # no annotations: the rest is small, read it whole
        with open_json(path) as f:
            members = {k: v for k, v in ijson.kvitems(f, "", use_float=True) if k != "annotations"}
        return TopLevel(members, keys + [k for k in members if k not in keys], form_name)
    tail = _tail_members(reader.bytes_from(window_start), max(0, value_start + 1 - window_start),
                         "]" if form_name == "list" else "}")
    members.update(tail)
    return TopLevel(members, keys + list(tail), form_name)


class DepthGuard:
    """Tracks the nesting depth of JSON text fed in consecutive blocks; raises past ``limit``.

    Brackets inside strings do not count.  Cost: numpy over each block, then over its
    few structural bytes; indexing a LIVECell-like file took about 10 % longer with the
    guard than without.  The rare blocks holding a backslash take an exact
    byte-by-byte path over their structural bytes.
    """

    def __init__(self, path, limit: int = MAX_DEPTH):
        self.path, self.limit = path, limit
        self.depth, self.offset = 0, 0
        self.in_string = self.escaped = False  # escaped: the next block's first byte is escaped

    def feed(self, block: bytes) -> None:
        b = np.frombuffer(block, np.uint8)
        folded = b | 0x20  # '[' -> '{', ']' -> '}'
        where = np.flatnonzero((folded == ord("{")) | (folded == ord("}")) | (b == _QUOTE) | (b == _BACKSLASH))
        chars = b[where]
        if self.escaped or np.any(chars == _BACKSLASH):
            self._exact(where.tolist(), chars.tolist(), len(block))
        elif where.size:
            quotes = np.cumsum(chars == _QUOTE)
            inside = (quotes + self.in_string) % 2 == 1  # quotes themselves step 0 either way
            depth = self.depth + np.cumsum(np.where(inside, 0, _STEP[chars]))
            if depth.max() > self.limit:
                self._refuse(int(where[np.argmax(depth > self.limit)]))
            self.depth = int(depth[-1])
            self.in_string = bool(inside[-1])
        self.offset += len(block)

    def _exact(self, where: list, chars: list, size: int) -> None:
        """Over the structural bytes one by one, honouring backslash escapes inside strings."""
        escaped_at = 0 if self.escaped else -1  # position of the byte a backslash escapes
        for pos, ch in zip(where, chars):
            if pos == escaped_at:
                continue
            if self.in_string:
                if ch == _BACKSLASH:
                    escaped_at = pos + 1
                elif ch == _QUOTE:
                    self.in_string = False
            elif ch == _QUOTE:
                self.in_string = True
            elif ch in _OPENERS:
                self.depth += 1
                if self.depth > self.limit:
                    self._refuse(pos)
            elif ch in _CLOSERS:
                self.depth -= 1
        self.escaped = escaped_at == size

    def _refuse(self, pos: int):
        raise AnnotationError(f"{self.path}: arrays/objects nested more than {self.limit} levels deep "
                              f"(at byte {self.offset + pos}); a COCO annotation file nests 5 levels, so "
                              f"this one is corrupt or not an annotation file: {FIX_DATA}")


class _Reader:
    """A binary file for ijson that reports progress, checks nesting depth and keeps the blocks
    it read since a mark."""

    def __init__(self, f, on_bytes, path):
        self.f, self.on_bytes = f, on_bytes
        self.guard = DepthGuard(path)
        self.blocks: list[tuple[int, bytes]] = []  # (offset, block), oldest first
        self.offset = 0

    def read(self, n: int) -> bytes:
        block = self.f.read(n)
        if block:
            self.guard.feed(block)
            self.blocks.append((self.offset, block))
            self.offset += len(block)
            self.on_bytes(self.offset)
        return block

    def block_start(self) -> int:
        """Offset of the block read last (where an annotation completed now has its end)."""
        return self.blocks[-1][0] if self.blocks else 0

    def forget_before(self, offset: int) -> None:
        self.blocks = [(o, b) for o, b in self.blocks if o >= offset]

    def bytes_from(self, offset: int) -> bytes:
        return b"".join(b for o, b in self.blocks if o >= offset)


def _keyed_by_id(path):
    def convert(pairs):
        return [value if not isinstance(value, dict) or "id" in value else {**value, "id": _int_key(key, path)}
                for key, value in pairs]
    return convert


def _int_key(key, path) -> int:
    try:
        return int(key)
    except ValueError:
        raise AnnotationError(f"{path}: annotation key {key!r} is not an integer id and the entry has "
                              f"no 'id'; fix or drop that entry, or replace the file: {FIX_DATA}") from None


def _read_head(path):
    """Members before ``"annotations"``, all top-level keys so far, the event that opens the
    annotations value (None when the file has none) and that value's byte offset."""
    events = ijson.sendable_list()
    coro = ijson.parse_coro(events, use_float=True)
    members, keys, head = {}, [], []
    builder, depth, key = None, 0, None
    guard = DepthGuard(path)
    with open_json(path) as f:
        for piece in iter(lambda: f.read(_HEAD_PIECE), b""):
            guard.feed(piece)  # before ijson: deep nesting costs it O(depth²) memory
            coro.send(piece)
            head.append(piece)
            for prefix, event, value in events:
                if builder is not None:  # inside a member's value
                    builder.event(event, value)
                    depth += (event in ("start_map", "start_array")) - (event in ("end_map", "end_array"))
                    if depth == 0:
                        members[key], builder = builder.value, None
                elif prefix == "" and event == "start_map":
                    continue
                elif prefix == "" and event == "map_key":
                    key = value
                    keys.append(key)
                elif prefix == "" and event == "end_map":
                    return members, keys, None, -1
                elif prefix == "":  # a scalar or a list at the top: not a COCO file
                    raise AnnotationError(f"{path}: top level is a {_TYPE_OF_EVENT.get(event, event)}, "
                                          f"expected a COCO object with 'images' and 'annotations'; {FIX_DATA}")
                elif key == "annotations":
                    return members, keys, event, _value_offset(b"".join(head))
                else:  # the first event of a member's value
                    builder, depth = ijson.ObjectBuilder(), 0
                    builder.event(event, value)
                    depth += (event in ("start_map", "start_array")) - (event in ("end_map", "end_array"))
                    if depth == 0:
                        members[key], builder = builder.value, None
            del events[:]
        coro.close()
    return members, keys, None, -1


def _value_offset(head: bytes) -> int:
    """Byte offset of the first character of the top-level ``"annotations"`` value in ``head``.

    A fresh parser is fed ``head`` up to each ``"annotations"`` text in the last pieces and
    then that text's closing quote alone: the byte at which it reports the top-level key is
    then known exactly (a key spelled with escapes is fed one byte at a time).
    """
    events = ijson.sendable_list()
    coro = ijson.parse_coro(events, use_float=True)
    fed = 0

    def feed(upto: int) -> bool:
        nonlocal fed
        if upto > fed:  # never an empty piece: ijson takes b"" for the end of the file
            coro.send(head[fed:upto])
            fed = upto
        found = any(e[:3] == ("", "map_key", "annotations") for e in events)
        del events[:]
        return found

    feed(max(0, len(head) - 2 * _HEAD_PIECE))  # the key ends in the last piece read
    for match in _KEY_TEXT.finditer(head, fed):
        feed(match.end() - 1)
        if feed(match.end()):
            break
    else:
        while not feed(fed + 1):
            pass
    colon = head.index(b":", fed)
    return colon + 1 + len(head[colon + 1:]) - len(head[colon + 1:].lstrip())


def _tail_members(data: bytes, search_from: int, closer: str) -> dict:
    """Top-level members after the annotations value, whose closing ``closer`` lies in ``data``.

    ``data`` starts inside the annotations value (at ``search_from`` or later).  The closing
    bracket is the first ``closer`` after which the rest of ``data`` completes an object:
    an earlier one closes something nested deeper, which leaves an unmatched bracket.
    """
    pattern = re.compile(re.escape(closer.encode()) + rb"(?=\s*[,}])")
    for match in pattern.finditer(data, search_from):
        rest = data[match.start() + 1:]
        found = ijson.sendable_list()
        coro = ijson.kvitems_coro(found, "", use_float=True)
        try:
            coro.send(b'{"": 0 ')
            for piece in (rest[:4096], rest[4096:]):  # a wrong bracket fails in its first bytes
                if piece:  # b"" would mean the end of the input
                    coro.send(piece)
            coro.close()
        except ijson.JSONError:
            continue
        return dict(found[1:])
    raise ijson.IncompleteJSONError("the end of 'annotations' was not found")
