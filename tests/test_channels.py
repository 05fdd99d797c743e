"""Ambiguous files: colour channels or planes that differ are never blended without a word."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile
from PIL import Image

from livecell_kit import predict
from livecell_kit.data import images
from livecell_kit.data.channels import LUMA
from livecell_kit.measure import measure_frames

H, W = 24, 32


def _planes() -> np.ndarray:
    """Three different grey frames (time points), (3, H, W) uint8."""
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, (3, H, W), dtype=np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return np.rint(rgb[..., :3].astype(np.float64) @ LUMA).astype(np.uint8)


def _stack_saved_as_rgb(path) -> np.ndarray:
    """A 3-plane stack written as tifffile does by default: RGB with separate planes."""
    planes = _planes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # tifffile: default changes in future
        tifffile.imwrite(path, planes)
    assert tifffile.TiffFile(path).series[0].keyframe.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    return planes


def test_grey_saved_as_rgb_stays_silent(tmp_path):
    grey = _planes()[0]
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "grey_rgb.png")
    tifffile.imwrite(tmp_path / "grey_rgb.tif", np.stack([grey] * 3), photometric="rgb", planarconfig="separate")
    for name in ("grey_rgb.png", "grey_rgb.tif"):
        frames = list(images.iter_pages(tmp_path / name, allow_pages=True))
        assert len(frames) == 1 and frames[0][1].reading is None, name
        np.testing.assert_array_equal(frames[0][0], grey)


def test_colour_image_is_read_as_grey_and_says_so(tmp_path):
    rgb = np.moveaxis(_planes(), 0, -1)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    got, info = images.read_image_info(tmp_path / "colour.png")
    np.testing.assert_array_equal(got, _luma(rgb))
    assert "colour channels differ: read as one grey frame" in info.reading
    assert "--channels separate" in info.reading
    separate = list(images.iter_pages(tmp_path / "colour.png", allow_pages=True, channels="separate"))
    assert [(i.page, i.pages) for _, i in separate] == [(0, 3), (1, 3), (2, 3)]
    for c, (frame, info) in enumerate(separate):
        np.testing.assert_array_equal(frame, rgb[..., c])
        assert "separate grey frames" in info.reading and "--channels" not in info.reading


def test_stack_saved_as_rgb_planes_is_read_as_separate_frames(tmp_path):
    planes = _stack_saved_as_rgb(tmp_path / "stack.tif")
    frames = list(images.iter_pages(tmp_path / "stack.tif", allow_pages=True))
    assert len(frames) == 3
    for (frame, info), plane in zip(frames, planes):
        np.testing.assert_array_equal(frame, plane)
        assert info.pages == 3 and "3 planes differ" in info.reading and "--channels grey" in info.reading
    with pytest.raises(images.ImageReadError, match=r"3 pages.*--channels grey") as err:
        images.read_image(tmp_path / "stack.tif")
    assert err.value.kind == "unsupported"
    (blended, info), = images.iter_pages(tmp_path / "stack.tif", channels="grey")
    np.testing.assert_array_equal(blended, _luma(np.moveaxis(planes, 0, -1)))
    assert "read as one grey frame" in info.reading


def test_channels_must_be_a_known_reading(tmp_path):
    _stack_saved_as_rgb(tmp_path / "stack.tif")
    with pytest.raises(ValueError, match=r"auto, grey, separate.*'rgb'"):
        list(images.iter_pages(tmp_path / "stack.tif", channels="rgb"))


def test_predict_says_which_reading_it_assumed(tmp_path, bright_cells_model, capsys):
    _stack_saved_as_rgb(tmp_path / "stack.tif")
    written = predict.predict_paths(bright_cells_model, tmp_path / "stack.tif", tmp_path / "out")
    assert [w["page"] for w in written] == [0, 1, 2]
    assert (tmp_path / "out" / "stack_p003_mask.png").is_file()
    out = capsys.readouterr().out
    assert out.count("stack.tif: its 3 planes differ: read as 3 separate grey frames") == 1
    written = predict.predict_paths(bright_cells_model, tmp_path / "stack.tif", tmp_path / "grey", channels="grey")
    assert len(written) == 1 and "read as one grey frame" in capsys.readouterr().out


def test_measure_measures_each_plane_as_a_frame(tmp_path, bright_cells_model, capsys):
    _stack_saved_as_rgb(tmp_path / "A172_Phase_B2_1_00d00h00m_1.tif")
    result = measure_frames(bright_cells_model, [tmp_path / "A172_Phase_B2_1_00d00h00m_1.tif"], tmp_path / "out",
                            progress=False)
    assert result.frames == 3
    assert "3 planes differ: read as 3 separate grey frames" in capsys.readouterr().out
    grey = measure_frames(bright_cells_model, [tmp_path / "A172_Phase_B2_1_00d00h00m_1.tif"], tmp_path / "out",
                          channels="grey", progress=False)
    assert grey.frames == 1 and grey.kept == 0  # other settings: measured afresh
