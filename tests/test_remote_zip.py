"""Range downloads: download.remote_zip against a local HTTP server (with and without Range support),
and ``download --subset seed|course`` against a fake LIVECell server."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import tifffile

import livecell_kit
from livecell_kit import cli, data, download
from livecell_kit.download import remote_zip
from livecell_kit.download.registry import annotation_name, size_split_name

TYPES = data.CELL_TYPES
# The tiny JSONs hold fewer images than select_subset is asked for, and one test file twice.
pytestmark = [pytest.mark.filterwarnings("ignore:split .* has only:UserWarning"),
              pytest.mark.filterwarnings("ignore:.*appear in more than one image record:UserWarning")]
SEED_SIZES = {"train": 16, "val": 8, "test": 8}


@dataclass
class RangeServer:
    """Files over HTTP on 127.0.0.1; ``ranges=False`` answers every request with 200 and the whole file.

    Faults: ``cut[path]`` byte budgets for successive requests (a request stops after its
    budget and the connection closes); ``corrupt[offset] = n`` flips that byte in the next
    ``n`` answers covering it (-1: always); ``broken`` offsets answer 503 while covered.
    ``requests``: (path, Range header) per request; ``sent``: body bytes written per path.
    Lies (:data:`LIES`): ``lie`` answers every range request after the first ``lie_after`` so.
    """

    url: str = ""
    files: dict = field(default_factory=dict)
    ranges: bool = True
    cut: dict = field(default_factory=dict)
    corrupt: dict = field(default_factory=dict)
    broken: set = field(default_factory=set)
    delay_s: float = 0.0
    lie: str = ""
    lie_after: int = 0
    requests: list = field(default_factory=list)
    sent: Counter = field(default_factory=Counter)

    def ranges_for(self, path):
        return [r for p, r in self.requests if p == path]


def _span(header, size):
    """(first, stop) of a "bytes=..." header for a ``size``-byte file."""
    first, last = header[len("bytes="):].split("-")
    if not first:
        return max(0, size - int(last)), size
    return int(first), min(size, int(last) + 1) if last else size


#: How a lying server answers a range request for bytes first..stop-1 of an n-byte file:
#: (status, Content-Range or None, whole body instead of the range?).
LIES = {
    "ignore": lambda first, stop, n: (200, None, True),  # stops honouring Range
    "whole206": lambda first, stop, n: (206, f"bytes 0-{n - 1}/{n}", True),
    "whole_body": lambda first, stop, n: (206, f"bytes {first}-{stop - 1}/{n}", True),
    "shifted": lambda first, stop, n: (206, f"bytes {first + 16}-{stop + 15}/{n}", False),
    "garbage": lambda first, stop, n: (206, "bytes garbage", False),
    "total": lambda first, stop, n: (206, f"bytes {first}-{stop - 1}/{n + 4096}", False),
    "416": lambda first, stop, n: (416, f"bytes */{n}", False),
}


def _handler(state: RangeServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            path, header = self.path.lstrip("/"), self.headers.get("Range")
            state.requests.append((path, header))
            time.sleep(state.delay_s)
            body = state.files.get(path)
            if body is None:
                self.send_error(404, "Not Found")
                return
            first, stop = (0, len(body)) if not (header and state.ranges) else _span(header, len(body))
            if any(first <= b < stop for b in state.broken):
                self.send_error(503, "Service Unavailable")
                return
            payload = bytearray(body[first:stop])
            for offset, times in list(state.corrupt.items()):
                if first <= offset < stop and times:
                    payload[offset - first] ^= 0xFF
                    state.corrupt[offset] = times - 1
            status, content_range = 200, None
            if header and state.ranges:
                status, content_range = 206, f"bytes {first}-{stop - 1}/{len(body)}"
                ranged = sum(r is not None for p, r in state.requests if p == path)
                if state.lie and ranged > state.lie_after:
                    status, content_range, whole = LIES[state.lie](first, stop, len(body))
                    payload = bytearray(body) if whole else payload
            budgets = state.cut.get(path)
            budget = budgets.pop(0) if budgets else len(payload)
            self.send_response(status)
            if content_range:
                self.send_header("Content-Range", content_range)
            if status == 416:
                payload = b""
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                for i in range(0, min(budget, len(payload)), 1 << 16):
                    chunk = payload[i: min(i + (1 << 16), budget)]
                    self.wfile.write(chunk)
                    state.sent[path] += len(chunk)
            except OSError:  # the client hung up (e.g. on a 200 to its Range request)
                pass
            if budget < len(payload):
                self.close_connection = True

    return Handler


@pytest.fixture
def server(serve_http):
    state = RangeServer()
    state.url = serve_http(_handler(state))
    return state


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(remote_zip, "RETRY_WAIT_S", 0.0)


def _payload(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _zip(members, zip64=False, monkeypatch=None) -> bytes:
    """members: (name, bytes, compression); zip64 forces ZIP64 end records and directory entries."""
    if zip64:  # what >65,535 members or >4 GiB would do, on a few bytes
        monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)
        monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 64)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, payload, method in members:
            zf.writestr(zipfile.ZipInfo(name, (2021, 1, 1, 0, 0, 0)), payload, compress_type=method)
    if zip64:
        monkeypatch.undo()
    return buf.getvalue()


MEMBERS = [("images/a.bin", _payload(5000, 1), zipfile.ZIP_STORED),
           ("images/b.txt", b"cells " * 3000, zipfile.ZIP_DEFLATED),
           ("images/c.bin", _payload(7000, 2), zipfile.ZIP_DEFLATED),
           ("images/d/", b"", zipfile.ZIP_STORED)]


@pytest.mark.parametrize("zip64", [False, True])
@pytest.mark.parametrize("tail", [remote_zip.TAIL_BYTES, 100])
def test_members_are_read_by_range_requests(server, tmp_path, monkeypatch, zip64, tail):
    body = _zip(MEMBERS, zip64, monkeypatch)
    if zip64:
        assert b"PK\x06\x06" in body and b"\xff\xff\xff\xff" in body  # ZIP64 end record and fields
    server.files["z.zip"] = body
    monkeypatch.setattr(remote_zip, "TAIL_BYTES", tail)
    remote = remote_zip.open_remote_zip(server.url + "z.zip")
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert sorted(remote.members) == sorted(archive.namelist())
    assert len(server.requests) == (1 if tail > len(body) else 2)  # tail, then the directory
    targets = {n: tmp_path / n.replace("/", "_") for n in ("images/a.bin", "images/b.txt", "images/c.bin")}
    stats = remote_zip.fetch_members(remote, targets, progressbar=False)
    for name, payload, _ in MEMBERS[:3]:
        assert targets[name].read_bytes() == payload
    assert (stats.fetched, stats.kept, stats.requests) == (3, 0, 1)  # neighbours: one request
    # A rerun keeps what is there (size and CRC-32 match) and transfers nothing.
    seen = len(server.requests)
    assert remote_zip.fetch_members(remote, targets, progressbar=False).kept == 3
    assert len(server.requests) == seen


def test_plan_requests_merges_near_members_only():
    def member(start, end):
        return remote_zip.Member(zipfile.ZipInfo(f"m{start}"), start, end)

    ms = [member(0, 100), member(100, 200), member(250, 300), member(10_000, 10_100)]
    groups = remote_zip.plan_requests(ms, max_gap=60, max_request=1000)
    assert [[m.start for m in g] for g in groups] == [[0, 100, 250], [10_000]]
    assert len(remote_zip.plan_requests(ms, max_gap=0, max_request=1000)) == 3
    assert len(remote_zip.plan_requests(ms, max_gap=10**6, max_request=150)) == 4


def _serve_zip(server, members=MEMBERS):
    server.files["z.zip"] = _zip(members)
    return remote_zip.open_remote_zip(server.url + "z.zip")


def test_a_corrupted_member_is_caught_by_its_crc(server, tmp_path):
    remote = _serve_zip(server)
    member = remote.members["images/c.bin"]
    offset = member.end - 100  # inside c.bin's data
    targets = {n: tmp_path / n[-5:] for n in ("images/a.bin", "images/c.bin")}
    server.corrupt[offset] = 1  # the first answer only: the member is fetched again, alone
    remote_zip.fetch_members(remote, targets, progressbar=False)
    assert targets["images/c.bin"].read_bytes() == MEMBERS[2][1]
    assert server.ranges_for("z.zip")[-1] == f"bytes={member.start}-{member.end - 1}"
    targets["images/c.bin"].unlink()
    server.corrupt[offset] = -1  # a damaged copy on the server: refused, named, nothing written
    with pytest.raises(download.DownloadError, match="images/c.bin.*failed its check 4 times.*CRC"):
        remote_zip.fetch_members(remote, targets, progressbar=False, retries=3)
    assert not targets["images/c.bin"].exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]  # no temp files left


def test_a_dropped_connection_is_resumed_where_it_stopped(server, tmp_path):
    remote = _serve_zip(server)
    server.cut["z.zip"] = [3000]  # the first member request stops after 3000 bytes
    targets = {n: tmp_path / n[-5:] for n in ("images/a.bin", "images/b.txt", "images/c.bin")}
    stats = remote_zip.fetch_members(remote, targets, progressbar=False)
    start, end = remote.members["images/a.bin"].start, remote.members["images/c.bin"].end
    assert server.ranges_for("z.zip")[-2:] == [f"bytes={start}-{end - 1}", f"bytes={start + 3000}-{end - 1}"]
    assert stats.bytes == end - start  # nothing fetched twice
    assert all(targets[n].read_bytes() == p for n, p, _ in MEMBERS[:3])


def test_an_interrupted_run_is_finished_by_the_next(server, tmp_path):
    remote = _serve_zip(server)
    targets = {n: tmp_path / n[-5:] for n in ("images/a.bin", "images/c.bin")}
    bad = remote.members["images/c.bin"]
    server.broken.add(bad.start + 10)  # the server fails every request for c.bin
    with pytest.raises(download.DownloadError, match="after 2 attempts"):
        remote_zip.fetch_members(remote, targets, progressbar=False, retries=1, max_gap=0)
    assert targets["images/a.bin"].exists() and not targets["images/c.bin"].exists()
    # A truncated file from some other crash is not taken for a good one either.
    targets["images/a.bin"].write_bytes(MEMBERS[0][1][:100])
    server.broken.clear()
    seen = len(server.requests)
    assert remote_zip.fetch_members(remote, targets, progressbar=False, max_gap=0).fetched == 2
    assert all(targets[n].read_bytes() == p for n, p, _ in (MEMBERS[0], MEMBERS[2]))
    assert len(server.requests) == seen + 2


def test_a_server_without_range_support_is_detected_on_the_first_request(server):
    server.files["z.zip"] = _zip(MEMBERS)
    server.ranges = False
    with pytest.raises(remote_zip.RangeNotSupported, match="ignores HTTP Range"):
        remote_zip.open_remote_zip(server.url + "z.zip")
    assert len(server.requests) == 1


# --------------------------------------------------------------------------- a fake LIVECell server

def _frame(seed) -> bytes:
    # Noise does not compress: ~90 KB like a (smaller) real frame, so gaps between wanted
    # frames are whole frames, as in images.zip.
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.random.default_rng(seed).integers(0, 256, (300, 300), dtype=np.uint8))
    return buf.getvalue()


def _name(cell_type, i, split):
    return f"{cell_type}_Phase_{'T' if split == 'test' else 'A'}{i // 4}_1_0{i % 4}d00h00m_1.tif"


def _coco(records) -> bytes:
    """records: (image id, file name, number of cells)."""
    images, anns = [], []
    for image_id, file_name, cells in records:
        images.append({"id": image_id, "file_name": file_name, "width": 300, "height": 300})
        for c in range(cells):
            x = 10.0 + 20 * (c % 12)
            anns.append({"id": image_id * 1000 + c, "image_id": image_id, "category_id": 1, "iscrowd": 0,
                         "area": 100.0, "bbox": [x, 10.0, 10.0, 10.0],
                         "segmentation": [[x, 10.25, x + 10, 10.25, x + 10, 20.5, x, 20.5]]})
    return json.dumps({"info": {"year": "2021"}, "categories": [{"id": 1, "name": "cell"}],
                       "images": images, "annotations": anns}).encode()


@pytest.fixture(scope="module")
def livecell():
    """Files of a tiny LIVECell: 8 / 3 / 3 frames per type in train / val / test, 4 more per
    type and folder that no JSON lists.  Train frame 2 of each type has 3 cells (nearly
    unannotated); val also lists train's A172 frame 5 (issue #26); test lists a file twice;
    0_train2percent holds train frames 0-2 and 4-7 of each type."""
    zip_members, records, n = [], {"train": [], "val": [], "test": []}, 0
    for t in TYPES:
        for split, count, first in (("train", 8, 0), ("val", 3, 12), ("test", 3, 0)):
            for i in range(first, first + count + 4):
                name, n = _name(t, i, split), n + 1
                folder = "livecell_test_images" if split == "test" else "livecell_train_val_images"
                zip_members.append((f"images/{folder}/{name}", _frame(n), zipfile.ZIP_DEFLATED))
                if i < first + count:
                    records[split].append((n, name, 3 if split == "train" and i == 2 else 12))
    records["val"].append((9999, _name("A172", 5, "train"), 12))
    records["test"].append((9998, records["test"][0][1], 12))
    files = {"images.zip": _zip(sorted(zip_members))}
    for split, recs in records.items():
        files[annotation_name(split)] = _coco(recs)
    files[size_split_name("0_train2percent")] = _coco([r for r in records["train"] if "_A0_1_03d" not in r[1]])
    files[size_split_name("1_train4percent")] = _coco(records["train"])
    return files, records


@pytest.fixture
def fake_livecell(server, livecell, tmp_path, monkeypatch):
    server.files.update(livecell[0])
    monkeypatch.setattr(download, "DEFAULT_SUBSET_SIZES", SEED_SIZES)
    monkeypatch.setenv("LIVECELL_KIT_DATA", str(tmp_path / "cache"))
    return server


def _download(server, dest, subset, **kw):
    return download.download_livecell(dest, base_url=server.url, progressbar=False, subset=subset, **kw)


def _frames_on_disk(root):
    return sorted(p.relative_to(root).as_posix() for p in (root / "images").rglob("*.tif"))


def _readable(root, sizes=None):
    """Every frame of the subset (default: every image record) reads as a 300 x 300 image."""
    for img in data.select_subset(root, sizes or {s: 10**6 for s in data.SPLITS}, rule="first"):
        split = data.load_split(root, img["split"])
        assert data.read_image(split.image_path({"file_name": img["file_name"]})).shape == (300, 300)


def test_seed_fetches_only_its_frames(fake_livecell, tmp_path):
    server, zip_size = fake_livecell, len(fake_livecell.files["images.zip"])
    dest = _download(server, tmp_path / "seed", "seed")
    entries = data.select_subset(dest, SEED_SIZES, rule="first")
    assert len(_frames_on_disk(dest)) == len(entries) == 32
    _readable(dest, SEED_SIZES)
    seed_bytes = server.sent["images.zip"]
    # 32 of 208 frames (15 %) plus the listing request (the last MiB, a tiny part of a real zip)
    assert seed_bytes - remote_zip.TAIL_BYTES < 0.16 * zip_size
    # full: the whole archive, once
    _download(server, tmp_path / "full", "full")
    assert server.sent["images.zip"] - seed_bytes == zip_size
    # A rerun touches nothing.
    seen = len(server.requests)
    _download(server, dest, "seed")
    assert len(server.requests) == seen


def test_seed_falls_back_to_the_whole_zip_without_range_support(fake_livecell, tmp_path, capsys):
    fake_livecell.ranges = False
    dest = _download(fake_livecell, tmp_path / "d", "seed")
    assert "ignores HTTP Range requests" in capsys.readouterr().err
    assert fake_livecell.ranges_for("images.zip") == [f"bytes=-{remote_zip.TAIL_BYTES}", None]
    # The 200 answer to the range request is dropped unread (64 KiB went out when measured).
    assert fake_livecell.sent["images.zip"] < 1.5 * len(fake_livecell.files["images.zip"])
    assert len(_frames_on_disk(dest)) == 8 * 26  # everything, extracted
    _readable(dest)


def test_two_runs_into_one_folder_take_turns(fake_livecell, tmp_path):
    """Two processes, one data root and one cache: one waits for the other, then finds it done."""
    dest, root = tmp_path / "d", Path(livecell_kit.__file__).parents[1]
    fake_livecell.delay_s = 0.1  # each run takes a second or so: the two overlap
    script = (f"from livecell_kit import download; download.download_livecell({str(dest)!r}, "
              f"base_url={fake_livecell.url!r}, subset='seed', progressbar=False)")
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONWARNINGS": "ignore"}
    runs = [subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outcomes = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert [rc for rc, _ in outcomes] == [0, 0], outcomes
    assert sum("waiting for another livecell-kit download" in err for _, err in outcomes) == 1
    entries = data.select_subset(dest, rule="first")  # the seed's sizes: every record here
    assert len(_frames_on_disk(dest)) == len(entries) > 100
    _readable(dest)
    for split in data.SPLITS:  # each file crossed the network once
        assert len(fake_livecell.ranges_for(annotation_name(split))) == 1
    assert fake_livecell.ranges_for("images.zip").count(f"bytes=-{remote_zip.TAIL_BYTES}") == 1
    assert not [p for p in tmp_path.rglob("*.tmp")] and not [p for p in tmp_path.rglob("*.part")]


def test_course_takes_evenly_spaced_annotated_frames_from_small_files(fake_livecell, livecell, tmp_path):
    dest = _download(fake_livecell, tmp_path / "c", "course")
    assert annotation_name("train") not in [p for p, _ in fake_livecell.requests]
    assert fake_livecell.ranges_for(size_split_name("1_train4percent")) == []
    counts = {s: Counter(data.cell_type_of(i["file_name"]) for i in
                         json.loads(data.annotation_path(dest, s).read_text())["images"]) for s in data.SPLITS}
    assert counts == {s: {t: k for t in TYPES} for s, k in download.COURSE_FRAMES.items()}
    train = json.loads(data.annotation_path(dest, "train").read_text())
    assert train["kit_subset"]["source"] == size_split_name("0_train2percent")
    names = [i["file_name"] for i in train["images"]]
    # A172's candidates are frames 0 1 2 4 6 7 (3: not in the 2 % file, 5: in val); evenly
    # spaced slots start at 0 2 4 7; frame 2 is nearly unannotated, so its slot takes 4, the next 6.
    assert [n for n in names if n.startswith("A172")] == [_name("A172", i, "train") for i in (0, 4, 6, 7)]
    assert [n for n in names if n.startswith("BT474")] == [_name("BT474", i, "train") for i in (0, 4, 5, 7)]
    assert len({a["image_id"] for a in train["annotations"]}) == len(train["images"])
    test = json.loads(data.annotation_path(dest, "test").read_text())
    assert livecell[1]["test"][0][1] not in [i["file_name"] for i in test["images"]]  # listed twice
    assert len(_frames_on_disk(dest)) == 64
    _readable(dest)
    total = sum(fake_livecell.sent.values())
    json_bytes = sum(len(b) for p, b in fake_livecell.files.items() if p.endswith(".json")
                     and fake_livecell.ranges_for(p))
    assert total - json_bytes - remote_zip.TAIL_BYTES < 0.32 * len(fake_livecell.files["images.zip"])
    # A rerun touches nothing; after a seed run replaced the JSONs, a course run cuts them again.
    seen = len(fake_livecell.requests)
    _download(fake_livecell, dest, "course")
    assert len(fake_livecell.requests) == seen
    _download(fake_livecell, dest, "seed")
    assert "kit_subset" not in json.loads(data.annotation_path(dest, "val").read_text())
    _download(fake_livecell, dest, "course")
    assert json.loads(data.annotation_path(dest, "val").read_text())["kit_subset"]["subset"] == "course"


def test_course_tries_a_bigger_size_split_when_a_type_is_short(fake_livecell, livecell, tmp_path):
    records = livecell[1]["train"]
    fake_livecell.files[size_split_name("0_train2percent")] = _coco([r for r in records if "SKOV3" not in r[1]])
    dest = _download(fake_livecell, tmp_path / "c", "course", files=("annotations",))
    train = json.loads(data.annotation_path(dest, "train").read_text())
    assert train["kit_subset"]["source"] == size_split_name("1_train4percent")
    assert not (dest / "images").exists()


def test_cli_download_subset(fake_livecell, tmp_path, capsys):
    dest = tmp_path / "d"
    assert cli.main(["download", "--out", str(dest), "--base-url", fake_livecell.url,
                     "--subset", "seed"]) == 0
    assert len(_frames_on_disk(dest)) == 32
    assert "subset seed" in capsys.readouterr().out
    assert cli.main(["download", "--out", str(tmp_path / "a"), "--base-url", fake_livecell.url,
                     "--subset", "course", "--files", "annotations"]) == 0
    assert not (tmp_path / "a" / "images").exists()
    with pytest.raises(SystemExit):
        cli.main(["download", "--out", str(dest), "--subset", "most"])


def test_a_crc_error_in_a_frame_fails_the_download_and_a_rerun_repairs_it(fake_livecell, tmp_path):
    remote = remote_zip.open_remote_zip(fake_livecell.url + "images.zip")
    member = remote.members[f"images/livecell_train_val_images/{_name('A172', 0, 'train')}"]
    fake_livecell.corrupt[member.end - 10] = -1
    with pytest.raises(download.DownloadError, match=_name("A172", 0, "train")):
        _download(fake_livecell, tmp_path / "d", "seed")
    assert len(_frames_on_disk(tmp_path / "d")) == 31
    fake_livecell.corrupt.clear()
    _download(fake_livecell, tmp_path / "d", "seed")
    assert len(_frames_on_disk(tmp_path / "d")) == 32
    _readable(tmp_path / "d", SEED_SIZES)
    assert zlib.crc32((tmp_path / "d" / "images" / "livecell_train_val_images" / _name("A172", 0, "train"))
                      .read_bytes()) == member.info.CRC


def test_a_member_declaring_an_implausible_size_is_refused_before_any_request(server, tmp_path, monkeypatch):
    remote = _serve_zip(server)
    monkeypatch.setattr(remote_zip, "MAX_MEMBER_BYTES", 6000)  # b.txt holds 18,000 bytes
    seen = len(server.requests)
    with pytest.raises(download.DownloadError, match="images/b.txt .* declares"):
        remote_zip.fetch_members(remote, {"images/b.txt": tmp_path / "b"}, progressbar=False)
    assert len(server.requests) == seen and not (tmp_path / "b").exists()


def test_course_keeps_a_json_the_user_edited(fake_livecell, tmp_path, capsys):
    dest = _download(fake_livecell, tmp_path / "c", "course", files=("annotations",))
    val = data.annotation_path(dest, "val")
    mine = json.loads(val.read_text())
    mine["info"] = {"note": "my corrections"}
    val.write_text(json.dumps(mine))
    _download(fake_livecell, dest, "seed", files=("annotations",))  # would put the full JSONs here
    assert json.loads(val.read_text()) == mine
    assert f"kept {val}" in capsys.readouterr().err
    _download(fake_livecell, dest, "course", files=("annotations",))
    assert json.loads(val.read_text()) == mine
    assert "kit_subset" in json.loads(data.annotation_path(dest, "test").read_text())


# --------------------------------------------------------------------------- servers that lie, damaged frames

@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_lying_range_server_is_caught_at_its_first_answer(server, monkeypatch, lie):
    monkeypatch.setattr(remote_zip, "TAIL_BYTES", 100)  # the listing is a proper suffix of the file
    server.files["z.zip"], server.lie = _zip(MEMBERS), lie
    with pytest.raises(remote_zip.RangeNotSupported, match="--subset full"):
        remote_zip.open_remote_zip(server.url + "z.zip")
    assert len(server.requests) == 1


@pytest.mark.parametrize("lie", sorted(LIES))
def test_a_server_that_lies_after_the_listing_is_caught_at_its_first_lie(server, tmp_path, lie):
    server.files["z.zip"], server.lie, server.lie_after = _zip(MEMBERS), lie, 1
    remote = remote_zip.open_remote_zip(server.url + "z.zip")
    targets = {n: tmp_path / n[-5:] for n, _, _ in MEMBERS[:3]}
    with pytest.raises(remote_zip.RangeNotSupported, match="--subset full"):
        remote_zip.fetch_members(remote, targets, progressbar=False, max_gap=0, workers=1)
    assert len(server.requests) == 2 and not list(tmp_path.iterdir())  # no request after the lie


@pytest.mark.parametrize("field, value", [(42, 10**6), (42, 0), (20, 10**6)])
def test_a_forged_directory_is_refused_before_any_member_request(server, field, value):
    """field: offset in c.bin's central directory entry (42: its local header's offset, 20: its
    compressed size) given a 4-byte ``value`` that puts its bytes past the file or over a.bin."""
    body = bytearray(_zip(MEMBERS))
    entry = body.rfind(b"images/c.bin") - 46
    assert body[entry: entry + 4] == b"PK\x01\x02"
    struct.pack_into("<L", body, entry + field, value)
    server.files["z.zip"] = bytes(body)
    with pytest.raises(download.DownloadError, match=r"damaged or forged.*images/[ac].bin.*another mirror"):
        remote_zip.open_remote_zip(server.url + "z.zip")
    assert len(server.requests) == 1


@pytest.mark.parametrize("lie, after", [(lie, 0) for lie in sorted(LIES)] + [("ignore", 3), ("shifted", 2)])
def test_seed_falls_back_to_the_whole_zip_when_the_server_lies(fake_livecell, tmp_path, capsys, lie, after):
    fake_livecell.lie, fake_livecell.lie_after = lie, after
    dest = _download(fake_livecell, tmp_path / "d", "seed", workers=1)
    err = capsys.readouterr().err
    assert "--subset full" in err and "downloading all of images.zip" in err
    ranged = [r for r in fake_livecell.ranges_for("images.zip") if r is not None]
    assert len(ranged) == after + 1  # nothing asked after the first lie
    assert len(_frames_on_disk(dest)) == 8 * 26  # everything, extracted
    _readable(dest)


def _spoil(frames):
    """Cut the first frame to 1,000 bytes and flip a byte of the last; returns both paths."""
    cut, flipped = frames[0], frames[-1]
    cut.write_bytes(cut.read_bytes()[:1000])
    payload = bytearray(flipped.read_bytes())
    payload[-10] ^= 0xFF
    flipped.write_bytes(bytes(payload))
    return cut, flipped


@pytest.mark.parametrize("subset", ["seed", "course"])
def test_a_rerun_checks_every_frame_and_fetches_only_the_damaged(fake_livecell, tmp_path, capsys, subset):
    dest = _download(fake_livecell, tmp_path / "d", subset)
    frames = sorted((dest / "images").rglob("*.tif"))
    cut, flipped = _spoil(frames)
    untouched = frames[1].stat().st_mtime_ns
    stale = frames[1].with_name(f".{frames[1].name}.0123abcd.tmp")  # a write a kill cut short
    stale.write_bytes(b"half a frame")
    capsys.readouterr()
    before = len(fake_livecell.ranges_for("images.zip"))
    _download(fake_livecell, dest, subset)
    err = capsys.readouterr().err
    assert f"2 frame(s) under {dest / 'images'} no longer match images.zip" in err
    assert f"{cut.name}: 1,000 of " in err and f"{flipped.name}: CRC-32 differs" in err
    asked = fake_livecell.ranges_for("images.zip")[before:]
    remote = remote_zip.open_remote_zip(fake_livecell.url + "images.zip")
    spans = {f"bytes={m.start}-{m.end - 1}" for n, m in remote.members.items()
             if n.endswith((cut.name, flipped.name))}
    assert asked[0] == f"bytes=-{remote_zip.TAIL_BYTES}" and sorted(asked[1:]) == sorted(spans)
    for path in (cut, flipped):
        member = next(m for n, m in remote.members.items() if n.endswith(path.name))
        assert zlib.crc32(path.read_bytes()) == member.info.CRC
    assert frames[1].stat().st_mtime_ns == untouched and not stale.exists()
    seen = len(fake_livecell.requests)
    _download(fake_livecell, dest, subset)  # all checked and good: no network
    assert len(fake_livecell.requests) == seen


def test_a_damaged_frame_names_the_download_that_repairs_it(fake_livecell, tmp_path):
    for subset in ("seed", "course"):
        dest = _download(fake_livecell, tmp_path / subset, subset)
        frame = sorted((dest / "images").rglob("*.tif"))[0]
        frame.write_bytes(frame.read_bytes()[:1000])
        with pytest.raises(data.ImageReadError,
                           match=f"livecell-kit download --out {dest} --subset {subset}`"):
            data.read_image(frame)


def test_a_rerun_of_full_extracts_only_the_damaged_frames_again(fake_livecell, tmp_path, capsys):
    dest = _download(fake_livecell, tmp_path / "d", "full")
    frames = sorted((dest / "images").rglob("*.tif"))
    cut, flipped = _spoil(frames)
    untouched = frames[1].stat().st_mtime_ns
    capsys.readouterr()
    seen = len(fake_livecell.requests)
    _download(fake_livecell, dest, "full")
    err = capsys.readouterr().err
    assert "2 frame(s) under" in err and f"{cut.name}: 1,000 of " in err and "extracting only those" in err
    assert len(fake_livecell.requests) == seen  # from the cached images.zip
    with zipfile.ZipFile(io.BytesIO(fake_livecell.files["images.zip"])) as archive:
        for path in (cut, flipped):
            assert path.read_bytes() == archive.read(path.relative_to(dest).as_posix())
    assert frames[1].stat().st_mtime_ns == untouched
    with pytest.raises(data.ImageReadError, match=f"livecell-kit download --out {dest}`"):
        cut.write_bytes(cut.read_bytes()[:1000])
        data.read_image(cut)
