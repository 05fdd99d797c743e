"""Image files checked against their JSON records from their headers: sizes, truncation, pages."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from livecell_kit import data
from livecell_kit.data import image_check

H, W = 24, 32


@pytest.fixture(autouse=True)
def _own_workdir(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))


def _frame(shape=(H, W), seed=0):
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


def _root(tmp_path, n=3):
    """A val split of n LZW TIFF frames of H x W px, as LIVECell ships them; returns (root, paths)."""
    root = tmp_path / "data"
    images, paths = [], []
    for i in range(1, n + 1):
        name = f"A172_Phase_C7_1_00d00h00m_{i}.tif"
        path = data.split_image_dir(root, "val") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, _frame(seed=i), compression="lzw", predictor=True)
        images.append({"id": i, "file_name": name, "width": W, "height": H})
        paths.append(path)
    ann = data.annotation_path(root, "val")
    ann.parent.mkdir(parents=True)
    ann.write_text(json.dumps({"images": images, "annotations": []}))
    return root, paths


def test_read_header_gives_shape_and_pages_without_decoding(tmp_path, monkeypatch):
    lzw = tmp_path / "a.tif"
    tifffile.imwrite(lzw, _frame(), compression="lzw", predictor=True)
    stack = tmp_path / "s.tif"
    tifffile.imwrite(stack, np.stack([_frame()] * 3), photometric="minisblack")
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.stack([_frame()] * 3, -1)).save(rgb)
    jpg = tmp_path / "c.jpg"
    Image.fromarray(_frame()).save(jpg)

    def no_decoding(*args, **kwargs):
        raise AssertionError("read_header decoded pixels")

    monkeypatch.setattr(tifffile.TiffPage, "asarray", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)
    assert [(h.shape, h.pages) for h in map(data.read_header, (lzw, stack, rgb, jpg))] == [
        ((H, W), 1), ((H, W), 3), ((H, W), 1), ((H, W), 1)]


def test_read_header_finds_truncated_and_broken_files(tmp_path):
    tif = tmp_path / "cut.tif"
    tifffile.imwrite(tif, _frame((64, 64)))
    tif.write_bytes(tif.read_bytes()[:-500])
    png = tmp_path / "cut.png"
    Image.fromarray(_frame()).save(png)
    png.write_bytes(png.read_bytes()[:-20])
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    for path, words in ((tif, "truncated"), (png, "IEND"), (empty, "empty"),
                        (tmp_path / "gone.tif", "does not exist")):
        with pytest.raises(data.ImageReadError, match=words) as err:
            data.read_header(path)
        assert str(path) in str(err.value)
    ok = tmp_path / "ok.png"
    Image.fromarray(_frame()).save(ok)
    ok.write_bytes(ok.read_bytes() + b"\0" * 8)  # a few bytes after IEND are tolerated
    assert data.read_header(ok).shape == (H, W)


def test_check_image_files_lists_every_bad_frame_with_its_fix(tmp_path):
    root, paths = _root(tmp_path, n=4)
    split = data.load_split(root, "val")
    data.check_image_files(split, "training")  # all fine
    padded = np.pad(_frame(seed=1), ((0, 8), (0, 0)))  # padded to another size
    tifffile.imwrite(paths[0], padded, compression="lzw")
    paths[1].write_bytes(paths[1].read_bytes()[:-200])  # truncated
    paths[2].unlink()  # missing
    with pytest.raises(data.ImageCheckError) as err:
        data.check_image_files(split, "training")
    text = str(err.value)
    assert text.startswith(f"3 of 4 val images under {root} cannot be used for training")
    assert len(err.value.problems) == 3
    size, cut, gone = err.value.problems
    assert str(paths[0]) in size and f"is {W} x {H + 8} px" in size and f"declares {W} x {H}" in size
    assert "livecell-kit download" in size and "width/height" in size
    assert str(paths[1]) in cut and "truncated" in cut
    assert str(paths[2]) in gone and "does not exist" in gone
    assert str(paths[3]) not in text


def test_the_list_is_cut_after_max_listed(tmp_path, monkeypatch):
    root, paths = _root(tmp_path, n=4)
    monkeypatch.setattr(image_check, "MAX_LISTED", 2)
    for p in paths[:3]:
        p.unlink()
    with pytest.raises(data.ImageCheckError, match=r"\.\.\. and 1 more") as err:
        data.check_image_files(data.load_split(root, "val"))
    assert len(err.value.problems) == 3


def test_a_stack_where_a_frame_belongs_is_named(tmp_path):
    root, paths = _root(tmp_path, n=1)
    tifffile.imwrite(paths[0], np.stack([_frame()] * 2), photometric="minisblack")
    with pytest.raises(data.ImageCheckError, match="stack of 2 pages"):
        data.check_image_files(data.load_split(root, "val"))
