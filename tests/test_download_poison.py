"""The download cache cannot be poisoned (issue 16): what a server sends is checked before the
cache trusts it, the data root gets copies the kit will not overwrite once edited, archives are
bounded, bad base URLs are refused.  Local HTTP servers on 127.0.0.1 only."""
from __future__ import annotations

import errno
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
import types
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

import livecell_kit
from livecell_kit import atomic, cli, data, download
from livecell_kit.download import cache, extract, placed
from livecell_kit.download import checks as download_checks
from livecell_kit.download.registry import annotation_name

VAL = annotation_name("val")
ROOT = Path(livecell_kit.__file__).parents[1]


def _coco(tag: str, n: int = 2000) -> bytes:
    """A small valid COCO file; ``tag`` tells versions apart."""
    return json.dumps({"info": {"tag": tag}, "images": [], "annotations": list(range(n))}).encode()


@dataclass
class Route:
    """One answer: body, Content-Type, and how to misbehave."""

    body: bytes
    content_type: str = "application/json"
    length: bool = True  # send Content-Length (else the body ends when the connection closes)
    send: int | None = None  # bytes of the body actually sent (None: all)
    gzip: bool = False
    delay_s: float = 0.0  # after each 64 KiB


@dataclass
class Server:
    url: str = ""
    routes: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)


def _handler(state: Server):
    class Handler(BaseHTTPRequestHandler):  # HTTP/1.0: a body without length ends at close
        def log_message(self, *args):
            pass

        def do_GET(self):
            path = self.path.lstrip("/")
            state.requests.append(path)
            route = state.routes.get(path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            body = gzip.compress(route.body) if route.gzip else route.body
            self.send_response(200)
            self.send_header("Content-Type", route.content_type)
            if route.gzip:
                self.send_header("Content-Encoding", "gzip")
            if route.length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            sent = body[: route.send]
            for i in range(0, len(sent), 1 << 16):
                self.wfile.write(sent[i: i + (1 << 16)])
                time.sleep(route.delay_s)

    return Handler


@pytest.fixture
def server(serve_http):
    state = Server()
    state.url = serve_http(_handler(state))
    return state


def _fetch(server, cache_dir, name=VAL, **kw):
    return download.fetch(name, cache_dir=cache_dir, base_url=server.url, progressbar=False, retries=0, **kw)


def _nothing_trusted(cache_dir, name=VAL):
    """Neither the file, its partial download nor a recorded hash is in the cache."""
    assert not (cache_dir / name).exists() and not (cache_dir / (name + ".part")).exists()
    recorded = cache_dir / download.RECORDED_HASHES
    assert not recorded.exists() or name not in json.loads(recorded.read_text())


HTML = b"<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head><body>busy</body></html>"


@pytest.mark.parametrize("content_type, message", [
    ("text/html; charset=utf-8", "web page"),
    ("application/json", "HTML page titled '503 Service Unavailable'"),  # a lying header: the bytes tell
])
def test_an_html_page_sent_with_status_200_is_refused_and_not_recorded(server, tmp_path, content_type,
                                                                       message):
    server.routes[VAL] = Route(HTML, content_type)
    with pytest.raises(download.DownloadError, match=message) as err:
        _fetch(server, tmp_path)
    assert VAL in str(err.value) and "base URL" in str(err.value)
    _nothing_trusted(tmp_path)
    server.routes[VAL] = Route(_coco("good"))  # the mirror recovers: the next run just works
    assert _fetch(server, tmp_path).read_bytes() == _coco("good")


@pytest.mark.parametrize("route", [Route(_coco("x"), length=False, send=5000),  # cut, length unknown
                                   Route(_coco("x")[:-1]),  # a whole body that is not whole JSON
                                   Route(b'{"images": [], "annotations": [1, 2}')])  # corrupt
def test_json_that_does_not_parse_is_refused_and_not_recorded(server, tmp_path, route):
    server.routes[VAL] = route
    with pytest.raises(download.DownloadError, match="cut short|not valid JSON"):
        _fetch(server, tmp_path)
    _nothing_trusted(tmp_path)


def test_json_that_is_not_a_coco_file_is_refused(server, tmp_path):
    server.routes[VAL] = Route(b'{"error": "quota exceeded"}')
    with pytest.raises(download.DownloadError, match="without a top-level 'annotations'"):
        _fetch(server, tmp_path)
    _nothing_trusted(tmp_path)


def test_json_nested_too_deep_is_refused_before_the_parser_sees_it(server, tmp_path):
    deep = 200  # far past any COCO file's 5 levels; ijson's memory grows with depth squared
    server.routes[VAL] = Route(b'{"annotations": ' + b"[" * deep + b"]" * deep + b"}")
    with pytest.raises(download.DownloadError, match="nested more than"):
        _fetch(server, tmp_path)
    _nothing_trusted(tmp_path)


def test_a_body_shorter_than_its_content_length_is_not_recorded(server, tmp_path):
    server.routes[VAL] = Route(_coco("x"), send=3000)
    with pytest.raises(download.DownloadError, match="ended at 3000 of"):
        _fetch(server, tmp_path)
    assert not (tmp_path / VAL).exists() and not (tmp_path / download.RECORDED_HASHES).exists()


def test_a_compressed_answer_is_measured_on_the_wire(server, tmp_path):
    server.routes[VAL] = Route(_coco("z"), gzip=True)  # Content-Length counts the gzip bytes
    assert _fetch(server, tmp_path).read_bytes() == _coco("z")


def _serve_annotations(server, tag="good"):
    for split in data.SPLITS:
        server.routes[annotation_name(split)] = Route(_coco(f"{tag}-{split}"))


def _download(server, dest, cache_dir, files=("annotations",)):
    return download.download_livecell(dest, files=files, base_url=server.url, cache_dir=cache_dir,
                                  progressbar=False, retries=0)


def test_the_data_root_gets_copies_that_a_rerun_does_not_overwrite_once_edited(server, tmp_path, capsys):
    cache_dir, dest = tmp_path / "cache", tmp_path / "d"
    _serve_annotations(server)
    _download(server, dest, cache_dir)
    val = data.annotation_path(dest, "val")
    assert not os.path.samefile(val, cache_dir / VAL)  # a copy: editing it leaves the cache alone
    with open(val, "r+b") as f:  # an edit in place
        f.write(b'{"info": {"tag": "mine"}')
    edited = val.read_bytes()
    assert (cache_dir / VAL).read_bytes() == _coco("good-val")
    seen = len(server.requests)
    _download(server, dest, cache_dir)
    assert val.read_bytes() == edited  # kept, and said so
    err = capsys.readouterr().err
    assert f"kept {val}" in err and "delete it" in err
    val.unlink()  # as the message says: the original comes back, from the cache
    _download(server, dest, cache_dir)
    assert val.read_bytes() == _coco("good-val") and len(server.requests) == seen
    assert "kept" not in capsys.readouterr().err


@pytest.mark.parametrize("url", ["file:///data/LIVECell_dataset_2021/", "/data/LIVECell_dataset_2021",
                                 "ftp://mirror.example.org/LIVECell/", "mirror.example.org/LIVECell",
                                 "http://"])
def test_a_base_url_that_is_not_http_is_refused_clearly(tmp_path, url, capsys, monkeypatch):
    with pytest.raises(ValueError, match=r"--base-url .* http:// or https:// only"):
        download.download_livecell(tmp_path / "d", base_url=url, cache_dir=tmp_path / "c", progressbar=False)
    monkeypatch.setenv("LIVECELL_BASE_URL", url)
    with pytest.raises(ValueError, match="LIVECELL_BASE_URL"):
        download.fetch(VAL, cache_dir=tmp_path / "c")
    assert cli.main(["download", "--out", str(tmp_path / "d"), "--base-url", url]) == 2
    assert "http:// or https://" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


# --------------------------------------------------------------------------- archives

def _zip(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members:
            zf.writestr(name, payload)
    return buf.getvalue()


GOOD_ZIP = [("images/livecell_train_val_images/A172_Phase_A1_1_00d00h00m_1.tif", os.urandom(3000)),
            ("images/livecell_test_images/A172_Phase_A1_1_00d00h00m_2.tif", os.urandom(3000))]


def test_a_refused_zip_slip_archive_is_not_recorded_and_a_good_mirror_then_works(server, tmp_path):
    cache_dir, dest = tmp_path / "cache", tmp_path / "d"
    server.routes["images.zip"] = Route(_zip(GOOD_ZIP + [("../evil.txt", b"x")]), "application/zip")
    with pytest.raises(ValueError, match="unsafe member '../evil.txt'"):
        _download(server, dest, cache_dir, files=("images",))
    _nothing_trusted(cache_dir, "images.zip")
    assert not (tmp_path / "evil.txt").exists()
    server.routes["images.zip"] = Route(_zip(GOOD_ZIP), "application/zip")  # no checksum error now
    _download(server, dest, cache_dir, files=("images",))
    frame = data.split_image_dir(dest, "test") / GOOD_ZIP[1][0].rsplit("/", 1)[1]
    assert frame.read_bytes() == GOOD_ZIP[1][1]


def test_a_zip_bomb_is_refused_before_extraction(server, tmp_path, monkeypatch):
    bomb = _zip([("images/livecell_test_images/zeros.tif", bytes(32 << 20))])  # 32 MiB in ~32 KB
    (tmp_path / "bomb.zip").write_bytes(bomb)
    with pytest.raises(ValueError, match=r"would expand \d{3,}-fold"):
        download.safe_extract_zip(tmp_path / "bomb.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    server.routes["images.zip"] = Route(bomb, "application/zip")  # ... and is never cached
    with pytest.raises(ValueError, match="zip bomb"):
        _fetch(server, tmp_path / "cache", "images.zip")
    _nothing_trusted(tmp_path / "cache", "images.zip")
    monkeypatch.setattr(download_checks, "MAX_EXTRACT_BYTES", 4000)  # the absolute cap
    (tmp_path / "big.zip").write_bytes(_zip(GOOD_ZIP))
    with pytest.raises(ValueError, match=r"would expand to 0\.0 GiB, more than"):
        download.safe_extract_zip(tmp_path / "big.zip", tmp_path / "out")


def test_an_archive_larger_than_the_free_space_is_not_extracted_nor_deleted(tmp_path, monkeypatch):
    (tmp_path / "a.zip").write_bytes(_zip(GOOD_ZIP))
    monkeypatch.setattr(extract.shutil, "disk_usage", lambda path: types.SimpleNamespace(free=1000))
    with pytest.raises(download.DownloadError, match="needs 0.00 GB .* free some space"):
        download.safe_extract_zip(tmp_path / "a.zip", tmp_path / "out")
    assert (tmp_path / "a.zip").exists() and not list((tmp_path / "out").glob(".extract-*"))


_SLOW_EXTRACT = """
import sys, time, zipfile
from livecell_kit import download
extract = zipfile.ZipFile.extract
def slow(self, member, path=None, pwd=None):
    out = extract(self, member, path, pwd)
    print("extracted", flush=True)
    time.sleep(60)
    return out
zipfile.ZipFile.extract = slow
download.safe_extract_zip(sys.argv[1], sys.argv[2])
"""


def test_a_kill_during_extraction_leaves_no_temp_folder_after_the_next_run(tmp_path):
    (tmp_path / "a.zip").write_bytes(_zip(GOOD_ZIP))
    dest = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-c", _SLOW_EXTRACT, str(tmp_path / "a.zip"), str(dest)],
                           stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.stdout.readline().strip() == "extracted"
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert len(list(dest.glob(".extract-*"))) == 1  # what the kill left
    download.safe_extract_zip(tmp_path / "a.zip", dest)
    assert not list(dest.glob(".extract-*"))
    assert (dest / GOOD_ZIP[0][0]).read_bytes() == GOOD_ZIP[0][1]


def test_a_download_clears_stale_temp_folders_even_without_extracting(server, tmp_path):
    dest = tmp_path / "d"
    (dest / ".extract-abc123" / "images").mkdir(parents=True)
    (dest / "images" / ".extract-def456").mkdir(parents=True)
    _serve_annotations(server)
    _download(server, dest, tmp_path / "cache")
    assert not list(dest.rglob(".extract-*"))


# --------------------------------------------------------------------------- two runs at once

_FETCH = ("import sys; from livecell_kit import download; download.fetch(sys.argv[1], cache_dir=sys.argv[2], "
          "base_url=sys.argv[3], progressbar=False)")


def test_two_runs_sharing_a_cache_take_turns_on_one_file(server, tmp_path):
    """Two processes (say, into two data roots) fetch one file into one cache at once."""
    body = _coco("big", 200_000)  # ~1.3 MB at 64 KiB per 20 ms: about half a second
    server.routes[VAL] = Route(body, delay_s=0.02)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    runs = [subprocess.Popen([sys.executable, "-c", _FETCH, VAL, str(tmp_path), server.url], env=env,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(run.wait(timeout=120), run.stderr.read()) for run in runs]
    assert [rc for rc, _ in outcomes] == [0, 0], outcomes
    assert sum("waiting for another livecell-kit download" in err for _, err in outcomes) == 1
    assert server.requests == [VAL]  # one transfer; the second run found it done
    assert (tmp_path / VAL).read_bytes() == body and not list(tmp_path.rglob("*.part"))


def test_a_file_system_without_locks_fails_at_once_instead_of_waiting(tmp_path, monkeypatch):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(atomic.fcntl, "flock", no_locks)
    with pytest.raises(download.DownloadError, match="offers no file locks.*LIVECELL_KIT_DATA"):
        with cache.locked(tmp_path / "x.lock"):
            pass
