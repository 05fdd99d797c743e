"""livecell_kit.download and .registry, against a local HTTP server (tests/conftest.py)."""
from __future__ import annotations

import hashlib
import io
import json
import re
import types
import zipfile

import numpy as np
import pooch.core
import pytest
import tifffile

from livecell_kit import data, download
from livecell_kit.download import cache, registry

VAL = "annotations/LIVECell/livecell_coco_val.json"
EMPTY_COCO = b'{"images": [], "annotations": []}'


def _body(n=200_000, seed=0) -> bytes:
    """A COCO-like JSON of about ``n`` bytes, different for each seed.

    Big enough that "half" is a meaningful cut, small enough to be instant."""
    numbers = np.random.default_rng(seed).integers(0, 10**6, n // 7).tolist()
    return json.dumps({"images": [], "annotations": numbers}).encode()


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _leftovers(folder):
    """Files in the cache folder other than the final file and the hash record."""
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def no_retry_sleep(monkeypatch):
    # pooch waits 1 s before a retry; tests need not.
    monkeypatch.setattr(pooch.core, "time", types.SimpleNamespace(sleep=lambda s: None))


def test_fetch_records_hash_and_second_run_stays_offline(http_server, tmp_path):
    body = _body()
    http_server.files[VAL] = body
    path = download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False)
    assert path == tmp_path / VAL and path.read_bytes() == body
    assert _leftovers(path.parent) == ["livecell_coco_val.json"]
    recorded = json.loads((tmp_path / download.RECORDED_HASHES).read_text())
    assert recorded == {VAL: _sha(body)}
    seen = len(http_server.requests)
    assert download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False) == path
    assert len(http_server.requests) == seen == 1


def test_wrong_checksum_leaves_no_file(http_server, tmp_path, monkeypatch):
    http_server.files[VAL] = _body()
    monkeypatch.setitem(download.REGISTRY, VAL, "sha256:" + "0" * 64)
    with pytest.raises(download.DownloadError, match="checksum") as err:
        download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False, retries=0)
    assert VAL in str(err.value)
    folder = tmp_path / "annotations" / "LIVECell"
    assert not (tmp_path / VAL).exists()
    assert _leftovers(folder) == []  # neither a .part nor pooch's temp file survives


def test_http_404_fails_at_once_with_the_url(http_server, tmp_path):
    with pytest.raises(download.DownloadError, match="404") as err:
        download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False, retries=3)
    assert http_server.url in str(err.value)
    assert len(http_server.requests) == 1  # a missing file is not retried
    assert not (tmp_path / VAL).exists()


def test_truncated_body_never_reaches_the_final_path(http_server, tmp_path):
    body = _body()
    http_server.files[VAL] = body
    http_server.modes[VAL] = "truncate"
    with pytest.raises(download.DownloadError, match="Rerun") as err:
        download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False, retries=0)
    assert VAL in str(err.value)
    assert not (tmp_path / VAL).exists()
    part = tmp_path / (VAL + ".part")
    assert part.read_bytes() == body[: len(body) // 2]  # kept, to resume from
    assert not (tmp_path / download.RECORDED_HASHES).exists()


def test_cut_transfer_is_resumed_by_the_retry(http_server, tmp_path, no_retry_sleep):
    body = _body()
    http_server.files[VAL] = body
    http_server.modes[VAL] = "cut_once"
    path = download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False, retries=1)
    assert path.read_bytes() == body
    assert http_server.ranges_for(VAL) == [None, f"bytes={len(body) // 2}-"]
    assert json.loads((tmp_path / download.RECORDED_HASHES).read_text())[VAL] == _sha(body)
    assert _leftovers(path.parent) == ["livecell_coco_val.json"]


def test_interrupted_run_is_resumed_by_the_next_run(http_server, tmp_path):
    body = _body()
    http_server.files[VAL] = body
    http_server.modes[VAL] = "cut_once"
    with pytest.raises(download.DownloadError):
        download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False, retries=0)
    path = download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False, retries=0)
    assert path.read_bytes() == body
    assert http_server.ranges_for(VAL)[1] == f"bytes={len(body) // 2}-"


def test_a_part_file_the_server_rejects_is_started_over(http_server, tmp_path):
    body = _body()
    http_server.files[VAL] = body
    part = tmp_path / (VAL + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * (len(body) + 10))  # longer than the file: the server answers 416
    path = download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False)
    assert path.read_bytes() == body
    assert http_server.ranges_for(VAL) == [f"bytes={len(body) + 10}-", None]


class _Response:
    """What ``requests.get`` returns, for answers the test server cannot give."""

    def __init__(self, status, body, headers):
        self.status_code, self.reason, self.headers = status, "", headers
        self.raw, self._body = types.SimpleNamespace(tell=lambda: len(body)), body

    def iter_content(self, chunk_size):
        yield self._body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_server_that_ignores_range_sends_the_whole_file_again(tmp_path, monkeypatch):
    body = _body(1000)
    part = tmp_path / "f.part"
    part.write_bytes(body[:300])
    sent = []
    monkeypatch.setattr(cache.requests, "get", lambda url, headers, **kw: sent.append(headers)
                        or _Response(200, body, {"Content-Length": str(len(body))}))
    cache.ResumableDownloader(part, progressbar=False)("http://x/f", tmp_path / "f")
    assert sent == [{"Accept-Encoding": "identity", "Range": "bytes=300-"}]
    assert (tmp_path / "f").read_bytes() == body and not part.exists()


def test_a_resume_at_the_wrong_byte_is_refused(tmp_path, monkeypatch):
    part = tmp_path / "f.part"
    part.write_bytes(b"a" * 300)
    monkeypatch.setattr(cache.requests, "get", lambda url, headers, **kw: _Response(
        206, b"b" * 700, {"Content-Range": "bytes 200-899/900", "Content-Length": "700"}))
    with pytest.raises(cache.requests.exceptions.ContentDecodingError,
                       match="at byte 200, expected 300"):
        cache.ResumableDownloader(part, progressbar=False)("http://x/f", tmp_path / "f")
    assert part.read_bytes() == b"a" * 300 and not (tmp_path / "f").exists()


def test_recorded_hash_guards_later_downloads(http_server, tmp_path):
    body = _body()
    http_server.files[VAL] = body
    path = download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False)
    # Local corruption: detected against the recorded hash and repaired by a fresh download.
    path.write_bytes(b"garbage")
    assert download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url,
                      progressbar=False).read_bytes() == body
    assert len(http_server.requests) == 2
    # The server's copy changes: refused, and the good cached file is left alone.
    path.write_bytes(b"garbage")
    http_server.files[VAL] = _body(seed=1)
    with pytest.raises(download.DownloadError, match="registry-recorded.json"):
        download.fetch(VAL, cache_dir=tmp_path, base_url=http_server.url, progressbar=False, retries=0)


def test_base_url_and_cache_dir_from_environment(http_server, tmp_path, monkeypatch):
    http_server.files[VAL] = EMPTY_COCO
    monkeypatch.setenv("LIVECELL_BASE_URL", http_server.url.rstrip("/"))
    monkeypatch.setenv("LIVECELL_KIT_DATA", str(tmp_path / "cache"))
    assert download.fetch(VAL, progressbar=False) == tmp_path / "cache" / VAL
    assert http_server.requests == [(VAL, None)]


def test_without_a_mirror_the_registry_url_is_used(http_server, tmp_path, monkeypatch):
    monkeypatch.delenv("LIVECELL_BASE_URL", raising=False)
    http_server.files["official/" + VAL] = EMPTY_COCO
    monkeypatch.setitem(registry.REGISTRY_URLS, VAL, http_server.url + "official/" + VAL)
    assert download.fetch(VAL, cache_dir=tmp_path, progressbar=False).read_bytes() == EMPTY_COCO
    assert http_server.requests == [("official/" + VAL, None)]


def test_unknown_names_are_refused(tmp_path):
    with pytest.raises(KeyError, match="REGISTRY"):
        download.fetch("annotations/nope.json", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="single_cells"):
        download.download_livecell(tmp_path, files=("masks",))
    with pytest.raises(ValueError, match="unknown cell type"):
        download.download_livecell(tmp_path, files=(), cell_types=["HeLa"])


def test_registry_covers_the_published_files():
    names = set(download.REGISTRY)
    assert set(registry.REGISTRY_URLS) == names
    assert all(url == download.BASE_URL + name for name, url in registry.REGISTRY_URLS.items())
    assert all(h is None or re.fullmatch("sha256:[0-9a-f]{64}", h) for h in download.REGISTRY.values())
    assert "images.zip" in names
    assert {f"annotations/LIVECell/livecell_coco_{s}.json" for s in data.SPLITS} <= names
    assert "annotations/LIVECell_single_cells/shsy5y/test.json" in names
    assert "annotations/LIVECell_dataset_size_split/4_train50percent.json" in names
    assert len(names) == 1 + 3 + 8 * 3 + 5


# --------------------------------------------------------------------------- full layout

def _tif_bytes(value) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.full((8, 12), value, np.uint8))
    return buf.getvalue()


def _images_zip(prefix="images/") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{prefix}livecell_train_val_images/A172/A172_Phase_C7_1_00d00h00m_1.tif",
                    _tif_bytes(10))
        zf.writestr(f"{prefix}livecell_test_images/A172/A172_Phase_C7_1_00d00h00m_2.tif",
                    _tif_bytes(20))
    return buf.getvalue()


def _coco(image_id, file_name) -> bytes:
    dataset = {
        "categories": [{"id": 1, "name": "cell"}],
        "images": [{"id": image_id, "file_name": file_name, "width": 12, "height": 8}],
        "annotations": {str(image_id * 10): {"id": image_id * 10, "image_id": image_id,
                                             "category_id": 1, "iscrowd": 0,
                                             "segmentation": [[1, 1, 6, 1, 6, 5]]}},
    }
    return json.dumps(dataset).encode()


def _serve_livecell(server, zip_bytes):
    server.files["images.zip"] = zip_bytes
    # val lists another frame: a val file would be left out of train (LIVECell issue #26)
    names = {"train": "A172_Phase_C7_1_00d00h00m_1.tif", "val": "A172_Phase_C7_1_00d00h00m_3.tif",
             "test": "A172_Phase_C7_1_00d00h00m_2.tif"}
    for i, split in enumerate(data.SPLITS, start=1):
        server.files[f"annotations/LIVECell/livecell_coco_{split}.json"] = _coco(i, names[split])


@pytest.mark.parametrize("prefix", ["images/", ""])
def test_download_livecell_lays_out_the_kit_layout(http_server, tmp_path, prefix):
    _serve_livecell(http_server, _images_zip(prefix))
    dest, cache = tmp_path / "livecell", tmp_path / "cache"
    kw = dict(base_url=http_server.url, cache_dir=cache, progressbar=False)
    assert download.download_livecell(dest, **kw) == dest
    test = data.load_split(dest, "test")
    assert data.read_image(test.image_path(test.images[0]))[0, 0] == 20
    train = data.load_split(dest, "train")
    assert data.read_image(train.image_path(train.images[0]))[0, 0] == 10
    assert train.annotations_for(1)[0]["id"] == 10
    assert not [p for p in dest.rglob(".extract-*")]
    # Second run: cache and extraction stamp reused, the network never touched.
    seen = len(http_server.requests)
    download.download_livecell(dest, **kw)
    assert len(http_server.requests) == seen == 4


def test_download_single_cell_sets(http_server, tmp_path):
    for split in data.SPLITS:
        http_server.files[f"annotations/LIVECell_single_cells/a172/{split}.json"] = _coco(1, "x")
    download.download_livecell(tmp_path / "d", files=(), cell_types=["a172"], base_url=http_server.url,
                           cache_dir=tmp_path / "c", progressbar=False)
    got = sorted(p.name for p in (tmp_path / "d/annotations/LIVECell_single_cells/a172").iterdir())
    assert got == ["test.json", "train.json", "val.json"]


def test_truncated_zip_is_reported_and_removed_from_the_cache(http_server, tmp_path):
    good = _images_zip()
    _serve_livecell(http_server, good[: len(good) - 40])  # cut the central directory
    dest, cache = tmp_path / "livecell", tmp_path / "cache"
    kw = dict(base_url=http_server.url, cache_dir=cache, progressbar=False, files=("images",))
    with pytest.raises(download.DownloadError, match="not a complete zip") as err:
        download.download_livecell(dest, **kw)
    assert http_server.url + "images.zip" in str(err.value) and "rerun" in str(err.value)
    assert not (cache / "images.zip").exists() and not (cache / "images.zip.part").exists()
    assert not (cache / download.RECORDED_HASHES).exists()  # refused before its hash was recorded
    # Fixed upstream: the next run downloads again and succeeds.
    http_server.files["images.zip"] = good
    download.download_livecell(dest, **kw)
    assert len(http_server.ranges_for("images.zip")) == 2
    assert data.split_image_dir(dest, "test").joinpath("A172").is_dir()


# --------------------------------------------------------------------------- safe_extract_zip

@pytest.mark.parametrize("evil", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt",
                                  "C:/evil.txt", "..\\evil.txt"])
def test_zip_slip_is_rejected(tmp_path, evil):
    zpath = tmp_path / "bad.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr(evil, "pwned")
    dest = tmp_path / "out"
    with pytest.raises(ValueError, match="unsafe member") as err:
        download.safe_extract_zip(zpath, dest)
    assert str(zpath) in str(err.value)
    assert not (tmp_path / "evil.txt").exists()
    assert not dest.exists()  # refused before anything was written


def test_extraction_happens_once(tmp_path):
    zpath = tmp_path / "a.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("top/file.txt", "original")
    dest = tmp_path / "out"
    download.safe_extract_zip(zpath, dest)
    (dest / "top/file.txt").write_text("edited")
    download.safe_extract_zip(zpath, dest)  # stamp matches: untouched
    assert (dest / "top/file.txt").read_text() == "edited"
    with zipfile.ZipFile(zpath, "w") as zf:  # a new archive is extracted again
        zf.writestr("top/file.txt", "new")
    download.safe_extract_zip(zpath, dest)
    assert (dest / "top/file.txt").read_text() == "new"


def test_corrupt_member_is_reported(tmp_path):
    zpath = tmp_path / "crc.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("f.bin", b"A" * 1000)
    raw = bytearray(zpath.read_bytes())
    raw[raw.index(b"A" * 1000) + 500] = ord("B")  # flip one payload byte: CRC mismatch
    zpath.write_bytes(bytes(raw))
    with pytest.raises(download.DownloadError, match="crc.zip"):
        download.safe_extract_zip(zpath, tmp_path / "out", delete_bad=False)
    assert zpath.exists()
    assert [p.name for p in (tmp_path / "out").iterdir()] == [".extract.lock"]  # temp folder gone


def test_cli_download_uses_base_url_and_reports_a_404_clearly(http_server, tmp_path, monkeypatch, capsys):
    from livecell_kit import cli

    monkeypatch.setenv("LIVECELL_KIT_DATA", str(tmp_path / "cache"))
    _serve_livecell(http_server, _images_zip("images/"))
    dest = tmp_path / "livecell"
    assert cli.main(["download", "--out", str(dest), "--base-url", http_server.url]) == 0
    assert len(data.load_split(dest, "train").images) > 0
    # A mirror without the files (and an empty cache): exit code 2 and a message naming what failed.
    monkeypatch.setenv("LIVECELL_KIT_DATA", str(tmp_path / "empty-cache"))
    assert cli.main(["download", "--out", str(tmp_path / "x"), "--base-url", http_server.url + "missing/"]) == 2
    assert "404" in capsys.readouterr().err
