"""bench/livecell_scale.py at a tiny scale: the copy is LIVECell-like, the cheap rows run, the server ranges."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from livecell_kit import data

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCALE = 0.002


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """One run of the script (copy built from scratch, index and download rows); its JSON and output."""
    tmp = tmp_path_factory.mktemp("scale")
    out = tmp / "figures.json"
    proc = subprocess.run([sys.executable, str(BENCH / "livecell_scale.py"), "--scale", str(SCALE),
                           "--workdir", str(tmp / "work"), "--only", "index,download", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text()), proc.stdout


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the bench's modules import each other as siblings
    import livecell_scale_copy
    import livecell_scale_harness
    return livecell_scale_copy, livecell_scale_harness


def test_rows_and_figures(bench_run):
    report, stdout = bench_run
    rows = {r["step"]: r for r in report["rows"]}
    for split in data.SPLITS:
        cold, reuse = rows[f"index {split}: load_split, 1st call"], rows[f"index {split}: new process (reuse)"]
        assert cold["status"] == reuse["status"] == "ok"
        assert cold["step_s"] > 0 and cold["tree_mib"] > 20 and cold["proc_mib"] > 20
    assert rows["index train: load_split, 1st call"]["target"] == "<= 15 s"
    downloads = [r for r in report["rows"] if r["step"].startswith("download")]
    assert len(downloads) == 3
    zip_mib = report["copy"]["images"]["zip_mib"]
    for row in downloads:
        if row["status"] == "ok" and "seed" not in row["step"] and "course" not in row["step"]:
            assert row["moved_mib"] >= zip_mib  # the full download sends the whole images.zip
        else:
            assert row["status"] in ("ok", "not available in this version")
    assert "built in" in stdout and "index train: load_split" in stdout


def test_copy_is_livecell_like(bench_run, bench_modules):
    report, _ = bench_run
    copy, _ = bench_modules
    root = Path(report["workdir"]) / "root"
    for split in data.SPLITS:
        figures = report["copy"][split]
        target_mib = copy.FILE_MIB[split] * figures["records"] / copy.RECORDS[split]
        assert figures["mib"] == pytest.approx(target_mib, rel=0.05)
        assert 15 < figures["mean_vertices"] < 35
    text = data.annotation_path(root, "train").read_text()
    assert text.startswith('{"info": {') and '"segmentation": [[' in text  # one line, official separators
    raw = json.loads(text)
    cell = raw["annotations"][0]
    assert list(cell) == ["id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd"]
    assert cell["id"] == raw["images"][0]["id"] + 1  # ids of an image's cells follow its own, as LIVECell's
    assert all(round(v, 2) == v for v in cell["segmentation"][0])
    with pytest.warns(UserWarning, match="more than one image record"):
        train = data.load_split(root, "train")
    assert train.val_overlap_dropped >= 1  # a train name also in val
    image = data.read_image(train.image_path(train.images[0]))
    assert image.shape == (data.IMAGE_HEIGHT, data.IMAGE_WIDTH)
    # reused, not rebuilt, with the same settings
    stamp = copy.build_copy(Path(report["workdir"]), SCALE, log=lambda _: None)
    assert stamp["figures"] == report["copy"]


def test_plan_is_deterministic(bench_modules):
    copy, _ = bench_modules
    first, second = copy.plan_records(0.01), copy.plan_records(0.01)
    assert first == second
    names = [r.file_name for r in first["train"]]
    assert len(names) - len(set(names)) == round(copy.TRAIN_REPEATED_NAMES * 0.01)
    share = {s: copy.FILE_MIB[s] / sum(copy.FILE_MIB.values()) for s in data.SPLITS}
    for split, records in first.items():  # cells in proportion to records (at least 8 records per split)
        expected = copy.TOTAL_CELLS * share[split] * len(records) / copy.RECORDS[split]
        assert sum(r.cells for r in records) == pytest.approx(expected, abs=1)


def test_range_server(bench_modules, tmp_path):
    _, harness = bench_modules
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.bin").write_bytes(bytes(range(100)))
    (tmp_path.parent / "secret.bin").write_bytes(b"x")
    with harness.RangeServer(tmp_path) as server:
        url = server.url + "sub/f.bin"
        assert requests.get(url).content == bytes(range(100))
        part = requests.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == bytes(range(10, 20))
        assert part.headers["Content-Range"] == "bytes 10-19/100"
        assert requests.get(url, headers={"Range": "bytes=-5"}).content == bytes(range(95, 100))
        assert requests.get(url, headers={"Range": "bytes=90-"}).content == bytes(range(90, 100))
        assert requests.get(url, headers={"Range": "bytes=100-"}).status_code == 416
        assert requests.get(server.url + "missing").status_code == 404
        assert requests.get(server.url + "..%2Fsecret.bin").status_code == 404
        assert server.sent == {"sub/f.bin": 100 + 10 + 5 + 10} and server.ranged == 3
