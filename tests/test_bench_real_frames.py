"""bench/real_frames.py end to end on a tiny data root: failures reported, metrics and files written."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tifffile = pytest.importorskip("tifffile")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "real_frames.py"


@pytest.fixture(scope="module")
def bench():
    saved = dict(os.environ)  # the script sets defaults (work folder...) on import: keep them out of other tests
    try:
        spec = importlib.util.spec_from_file_location("bench_real_frames", BENCH)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One work folder for the module (mask caches of the threshold's sample)."""
    return tmp_path_factory.mktemp("work")


@pytest.fixture(scope="module")
def threshold_sample(small_samples, workdir):
    """The small sample stands in for the whole one (~15 s to draw) where the threshold is chosen."""
    return small_samples(0, workdir / "small-sample")


def _root(tmp_path: Path, corrupt: bool) -> Path:
    """A data root: one LZW TIFF frame with a bright square cell annotated in a val JSON."""
    root = tmp_path / "root"
    images = root / "images" / "livecell_train_val_images"
    images.mkdir(parents=True)
    frame = np.full((64, 96), 60, np.uint8)
    frame[16:40, 24:56] = 220
    tifffile.imwrite(images / "A172_Phase_A7_1_00d00h00m_1.tif", frame, compression="lzw")
    if corrupt:
        (images / "A172_Phase_A7_1_00d00h00m_2.tif").write_bytes(b"II*\x00broken")
    (root / "annotations").mkdir()
    coco = {"images": [{"id": 1, "file_name": "A172_Phase_A7_1_00d00h00m_1.tif", "width": 96, "height": 64}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                             "segmentation": [[24, 16, 56, 16, 56, 40, 24, 40]]}],
            "categories": [{"id": 1, "name": "cell"}]}
    (root / "annotations" / "livecell_coco_val.json").write_text(json.dumps(coco))
    return root


def _brightness_model(path: Path) -> Path:
    """prob = sigmoid(20 * (x/255 - 0.5)): bright pixels are cells."""
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(1, 1, activation="sigmoid")])
    model.layers[-1].set_weights([np.array([[[[20.0]]]], np.float32), np.array([-10.0], np.float32)])
    model.save(path)
    return path


@pytest.mark.parametrize("corrupt", [False, True])
def test_real_frames_end_to_end(bench, workdir, threshold_sample, tmp_path, monkeypatch, corrupt):
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(workdir))
    monkeypatch.setattr(bench.course, "sample_root", lambda *args, **kwargs: threshold_sample)
    model = _brightness_model(tmp_path / "model.keras")
    out_json, figure = tmp_path / "out" / "r.json", tmp_path / "out" / "r.png"
    rc = bench.main(["--data", str(_root(tmp_path, corrupt)), "--model", str(model),
                     "--json", str(out_json), "--figure", str(figure)])
    report = json.loads(out_json.read_text())
    assert rc == (1 if corrupt else 0)
    assert report["read"]["n_files"] == (2 if corrupt else 1)
    assert len(report["read"]["failed"]) == int(corrupt)
    assert figure.is_file()
    assert 0.5 in report["thresholds"]
    pooled = report["pooled"]["t=0.5"]
    assert pooled["n_images"] == 1 and pooled["dice"] > 0.95  # the bright square is the cell
    frame = report["frames"][0]
    assert frame["cell_type"] == "A172" and frame["truth_cover"] == pytest.approx(32 * 24 / (64 * 96))


def test_no_data_root(bench, tmp_path):
    assert bench.main(["--data", str(tmp_path / "missing")]) == 2
