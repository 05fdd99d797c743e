"""livecell_kit.data.images: every format, codec, dtype, layout and failure on tiny files made here."""
from __future__ import annotations

import importlib
import pickle

import numpy as np
import pytest
import tifffile
from PIL import Image

from livecell_kit import data
from livecell_kit.predict import inputs as predict_inputs
from livecell_kit.data import images, intensity

H, W = 40, 56


def _frame(seed=0) -> np.ndarray:
    """A smooth gradient with a little noise: compresses, and every codec has work to do."""
    yy, xx = np.mgrid[:H, :W]
    noise = np.random.default_rng(seed).integers(0, 8, (H, W))
    return ((yy * 3 + xx * 2 + noise) % 256).astype(np.uint8)


def _luma(rgb) -> np.ndarray:
    return np.rint(rgb[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114])


@pytest.fixture
def no_imagecodecs(monkeypatch):
    """tifffile as it behaves without imagecodecs: only its pure-Python codecs (no LZW, no JPEG)."""
    tt = importlib.import_module("tifffile.tifffile")
    monkeypatch.setattr(tt, "imagecodecs", importlib.import_module("tifffile._imagecodecs"))
    monkeypatch.setattr(tifffile.TIFF, "DECOMPRESSORS", tt.CompressionCodec(encode=False))
    monkeypatch.setattr(tifffile.TIFF, "UNPREDICTORS", tt.PredictorCodec(encode=False))


# --------------------------------------------------------------------------- codecs

@pytest.mark.parametrize("compression, kwargs, expect", [
    (None, {}, "none"),
    ("lzw", {"predictor": True}, "lzw+horizontal"),   # what LIVECell ships
    ("lzw", {}, "lzw"),
    ("zlib", {}, "adobe_deflate"),
    ("packbits", {}, "packbits"),
])
def test_lossless_tiff_codecs_read_exactly(tmp_path, compression, kwargs, expect):
    frame = _frame()
    tifffile.imwrite(tmp_path / "a.tif", frame, compression=compression, **kwargs)
    got, info = images.read_image_info(tmp_path / "a.tif")
    assert got.dtype == np.uint8 and got.shape == (H, W)
    np.testing.assert_array_equal(got, frame)
    assert info.compression == expect and info.pages == 1 and info.page == 0
    assert info.source_dtype == "uint8" and info.scaling is None
    assert data.read_image is images.read_image and data.ImageReadError is images.ImageReadError


def test_jpeg_in_tiff_and_plain_jpeg_png(tmp_path):
    frame = _frame()
    tifffile.imwrite(tmp_path / "j.tif", frame, compression="jpeg", compressionargs={"level": 95})
    Image.fromarray(frame).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(frame).save(tmp_path / "a.jpeg", quality=95)
    Image.fromarray(frame).save(tmp_path / "a.png")
    for name in ("j.tif", "a.jpg", "a.jpeg"):  # lossy: close, not equal
        got = images.read_image(tmp_path / name)
        assert got.shape == (H, W) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - frame).mean() < 3, name
    np.testing.assert_array_equal(images.read_image(tmp_path / "a.png"), frame)
    assert images.read_image_info(tmp_path / "a.jpg")[1].compression == "jpeg"


def test_file_type_follows_content_not_name(tmp_path):
    frame = _frame()
    Image.fromarray(frame).save(tmp_path / "really_png.tif", format="PNG")
    np.testing.assert_array_equal(images.read_image(tmp_path / "really_png.tif"), frame)


# --------------------------------------------------------------------------- intensities

def test_uint16_is_stretched_by_the_percentile_rule(tmp_path):
    x = (np.arange(1001) * 60).astype(np.uint16).reshape(7, 143)  # 0.1/99.9 pct = 60 / 59940
    tifffile.imwrite(tmp_path / "u16.tif", x, compression="lzw", predictor=True)
    got, info = images.read_image_info(tmp_path / "u16.tif")
    lo, hi = np.percentile(x, [0.1, 99.9])
    assert lo == pytest.approx(60) and hi == pytest.approx(59940)
    expected = np.rint(np.clip((x.astype(np.float64) - lo) * 255 / (hi - lo), 0, 255))
    np.testing.assert_array_equal(got, expected.astype(np.uint8))
    assert got.flat[0] == 0 and got.flat[1] == 0 and got.flat[-2] == 255 and got.flat[-1] == 255
    assert got.flat[250] == 64  # 15000 -> (15000 - 60) / 59880 * 255 = 63.6
    assert info.source_dtype == "uint16"
    assert "0.1" in info.scaling and "99.9" in info.scaling and "60..59940" in info.scaling


def test_uint16_within_0_255_is_kept(tmp_path):
    frame = _frame()
    tifffile.imwrite(tmp_path / "u16.tif", frame.astype(np.uint16))
    Image.fromarray(frame.astype(np.uint16)).save(tmp_path / "u16.png")
    for name in ("u16.tif", "u16.png"):
        got, info = images.read_image_info(tmp_path / name)
        np.testing.assert_array_equal(got, frame)
        assert info.scaling is None and info.source_dtype == "uint16"


def test_float32_stretch_and_nan_is_low(tmp_path):
    x = np.linspace(-1.0, 1.0, H * W, dtype=np.float32).reshape(H, W)
    x[0, :3] = np.nan
    tifffile.imwrite(tmp_path / "f.tif", x, compression="zlib")
    got, info = images.read_image_info(tmp_path / "f.tif")
    assert info.source_dtype == "float32" and "float32" in info.scaling
    assert (got[0, :3] == 0).all()
    assert got[-1, -1] == 255 and got[0, 3] == 0
    finite = x[np.isfinite(x)].astype(np.float64)
    lo, hi = np.percentile(finite, [0.1, 99.9])
    expected = np.rint(np.clip((x[1:].astype(np.float64) - lo) * 255 / (hi - lo), 0, 255))
    np.testing.assert_array_equal(got[1:], expected)


def test_to_uint8_edge_cases():
    flat = np.full((3, 4), 1000, np.uint16)
    assert (intensity.to_uint8(flat)[0] == 0).all()
    assert intensity.to_uint8(np.array([[np.nan, np.inf, -np.inf]]))[0].tolist() == [[0, 0, 0]]
    assert intensity.to_uint8(np.array([[True, False]]))[0].tolist() == [[255, 0]]
    assert intensity.to_uint8(np.array([[-5, 0, 5]], np.int16))[1] is not None  # negative: stretched


# --------------------------------------------------------------------------- colour and layout

def test_colour_becomes_luma(tmp_path):
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgba[..., :3], photometric="rgb", compression="lzw")
    Image.fromarray(rgba[..., :3]).save(tmp_path / "rgb.png")
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    for name in ("rgb.tif", "rgb.png", "rgba.png"):
        np.testing.assert_array_equal(images.read_image(tmp_path / name), _luma(rgba), err_msg=name)
    # grey + alpha: the grey stays, alpha is dropped
    Image.fromarray(rgba[..., :2], mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(images.read_image(tmp_path / "la.png"), rgba[..., 0])


def test_16bit_rgb_is_luma_then_stretched(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 65536, (H, W, 3)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb, photometric="rgb")
    got, info = images.read_image_info(tmp_path / "rgb16.tif")
    expected, _ = intensity.to_uint8(_luma(rgb).astype(np.uint16))
    np.testing.assert_array_equal(got, expected)
    assert info.source_dtype == "uint16" and info.scaling.startswith("uint16")


def test_multi_page_stack_is_refused_by_read_image_and_read_by_read_pages(tmp_path):
    stack = np.stack([_frame(i) for i in range(3)])
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack", compression="lzw")
    with pytest.raises(images.ImageReadError, match=r"stack.tif.*3 pages.*read_pages") as err:
        images.read_image(tmp_path / "stack.tif")
    assert err.value.kind == "unsupported" and "corrupt" not in str(err.value)
    pages = images.read_pages(tmp_path / "stack.tif")
    assert len(pages) == 3
    for got, want in zip(pages, stack):
        np.testing.assert_array_equal(got, want)
    infos = [info for _, info in images.iter_pages(tmp_path / "stack.tif", allow_pages=True)]
    assert [(i.page, i.pages) for i in infos] == [(0, 3), (1, 3), (2, 3)]


def test_imagej_hyperstack_planes_are_pages_in_order(tmp_path):
    hyper = np.stack([_frame(i) for i in range(6)]).reshape(2, 3, H, W).astype(np.uint16) * 200
    tifffile.imwrite(tmp_path / "hyper.tif", hyper, imagej=True, metadata={"axes": "ZCYX"})
    pages = images.read_pages(tmp_path / "hyper.tif")
    assert len(pages) == 6
    for got, want in zip(pages, hyper.reshape(6, H, W)):
        np.testing.assert_array_equal(got, intensity.to_uint8(want)[0])


def test_five_samples_per_pixel_is_unsupported_not_corrupt(tmp_path):
    tifffile.imwrite(tmp_path / "s5.tif", np.zeros((H, W, 5), np.uint8),
                     photometric="minisblack", planarconfig="contig")
    with pytest.raises(images.ImageReadError, match=r"s5.tif.*5 samples per pixel") as err:
        images.read_image(tmp_path / "s5.tif")
    assert err.value.kind == "unsupported" and "corrupt" not in str(err.value)


# --------------------------------------------------------------------------- failures

def test_truncated_lzw_tiff_is_reported_truncated(tmp_path):
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.random.default_rng(3).integers(0, 256, (H * 4, W * 4), np.uint8),
                     compression="lzw", predictor=True)
    payload = good.read_bytes()
    (tmp_path / "cut.tif").write_bytes(payload[:len(payload) // 2])
    with pytest.raises(images.ImageReadError, match=r"cut.tif is corrupt or truncated.*truncated") as err:
        images.read_image(tmp_path / "cut.tif")
    assert err.value.kind == "corrupt" and "re-download" in str(err.value)
    assert "delete" not in str(err.value)


def test_truncated_multi_page_tiff_is_not_silently_shorter(tmp_path):
    stack = np.random.default_rng(4).integers(0, 256, (5, H, W), np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack", compression="lzw")
    payload = (tmp_path / "s.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(payload[:len(payload) // 2])
    with pytest.raises(images.ImageReadError, match="corrupt or truncated") as err:
        images.read_pages(tmp_path / "cut.tif")
    assert err.value.kind == "corrupt"


def test_garbage_empty_and_misnamed_files(tmp_path):
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(images.ImageReadError, match="bad.tif is corrupt"):
        images.read_image(tmp_path / "bad.tif")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(images.ImageReadError, match="empty.png is corrupt.*0 bytes"):
        images.read_image(tmp_path / "empty.png")
    (tmp_path / "page.jpg").write_bytes(b"<!DOCTYPE html><html>not found</html>")
    with pytest.raises(images.ImageReadError, match="page.jpg is corrupt.*does not start like"):
        images.read_image(tmp_path / "page.jpg")
    png = tmp_path / "cut.png"
    Image.fromarray(_frame()).save(png)
    png.write_bytes(png.read_bytes()[:60])
    with pytest.raises(images.ImageReadError, match="cut.png is corrupt or truncated"):
        images.read_image(png)


def test_missing_file_folder_and_unsupported_type(tmp_path):
    with pytest.raises(images.ImageReadError, match="missing.tif does not exist") as err:
        images.read_image(tmp_path / "missing.tif")
    assert err.value.kind == "missing"
    with pytest.raises(images.ImageReadError, match="is a folder"):
        images.read_image(tmp_path)
    Image.fromarray(_frame()).save(tmp_path / "a.bmp")
    with pytest.raises(images.ImageReadError, match=r"a.bmp.*'\.bmp' is not supported") as err:
        images.read_image(tmp_path / "a.bmp")
    assert err.value.kind == "unsupported" and "corrupt" not in str(err.value)
    Image.fromarray(_frame()).save(tmp_path / "bmp.png", format="BMP")
    with pytest.raises(images.ImageReadError, match="bmp.png is a BMP file") as err:
        images.read_image(tmp_path / "bmp.png")
    assert err.value.kind == "unsupported"


def test_without_imagecodecs_pillow_reads_lzw(tmp_path, no_imagecodecs):
    frame = _frame()
    tifffile.imwrite(tmp_path / "lzw.tif", frame, compression="lzw", predictor=True)
    got, info = images.read_image_info(tmp_path / "lzw.tif")
    np.testing.assert_array_equal(got, frame)
    assert "Pillow" in info.compression


def test_without_any_decoder_the_error_names_imagecodecs(tmp_path, no_imagecodecs, monkeypatch):
    frame = _frame()
    tifffile.imwrite(tmp_path / "lzw.tif", frame, compression="lzw", predictor=True)

    def no_libtiff(*args, **kwargs):
        raise OSError("decoder tiff_lzw not available")

    monkeypatch.setattr(images.Image, "open", no_libtiff)
    with pytest.raises(images.ImageReadError) as err:
        images.read_image(tmp_path / "lzw.tif")
    message = str(err.value)
    assert "lzw.tif" in message and "LZW" in message and "pip install imagecodecs" in message
    assert "corrupt" not in message.lower() and "delete" not in message.lower()
    assert err.value.kind == "unsupported"


def test_error_keeps_its_kind_through_pickling():
    err = pickle.loads(pickle.dumps(images.ImageReadError("x.tif is odd", "unsupported")))
    assert err.kind == "unsupported" and str(err) == "x.tif is odd"
    assert isinstance(err, OSError)


def test_predict_finds_jpeg_files_in_folders(tmp_path):
    Image.fromarray(_frame()).save(tmp_path / "a.jpg")
    Image.fromarray(_frame()).save(tmp_path / "b.JPEG")
    (tmp_path / "notes.txt").write_text("not an image")
    assert [f.name for f, _ in predict_inputs.expand_inputs(tmp_path, None)[0]] == ["a.jpg", "b.JPEG"]


def test_palette_and_miniswhite_tiffs(tmp_path):
    idx = (_frame() // 64).astype(np.uint8)  # indices 0..3
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :4] = np.array([[0, 100, 200, 255]] * 3) * 257  # a grey palette, 16-bit entries
    tifffile.imwrite(tmp_path / "pal.tif", idx, photometric="palette", colormap=cmap)
    np.testing.assert_array_equal(images.read_image(tmp_path / "pal.tif"),
                                  np.array([0, 100, 200, 255], np.uint8)[idx])
    frame = _frame()
    tifffile.imwrite(tmp_path / "white.tif", frame, photometric="miniswhite")
    np.testing.assert_array_equal(images.read_image(tmp_path / "white.tif"), 255 - frame)
