"""Prediction on any image size, tiling, and the files predict_paths writes — with tiny Keras models."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from livecell_kit import predict, presets  # noqa: E402


def _brightness_model(rescale: bool = True):
    """prob = sigmoid(20 * (x/255 - 0.5)): bright pixels are 'cells'. Pointwise, so easy to check."""
    layers = [keras.Input((None, None, 1))]
    if rescale:
        layers.append(keras.layers.Rescaling(1 / 255))
    layers.append(keras.layers.Conv2D(1, 1, activation="sigmoid"))
    model = keras.Sequential(layers)
    model.layers[-1].set_weights([np.array([[[[20.0]]]], np.float32), np.array([-10.0], np.float32)])
    return model


def _conv_model(seed=0, channels=1):
    """Two random 3×3 convolutions, no pooling: translation-equivariant away from the zero padding."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((None, None, 1)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(4, 3, padding="same", activation="tanh"),
                             keras.layers.Conv2D(channels, 3, padding="same", activation="sigmoid")])


def _mini_unet(depth=3):
    """Pooling + skip concatenation: fails on sizes that are not multiples of 2**depth unless padded."""
    inp = keras.Input((None, None, 1))
    x = keras.layers.Rescaling(1 / 255)(inp)
    skips = []
    for _ in range(depth):
        x = keras.layers.Conv2D(2, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D(2)(x)
    for s in reversed(skips):
        x = keras.layers.UpSampling2D(2)(x)
        x = keras.layers.Concatenate()([x, s])
    out = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(inp, out)


def test_model_introspection():
    assert predict.size_multiple(_mini_unet(3)) == 8
    assert predict.size_multiple(_conv_model()) == 1
    assert predict.input_scale(_brightness_model(rescale=True)) == 1.0
    assert predict.input_scale(_brightness_model(rescale=False)) == pytest.approx(1 / 255)


def test_odd_sizes_are_padded_and_cropped_back():
    model = _mini_unet(3)
    img = np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8)
    prob = predict.predict_image(model, img)
    assert prob.shape == (37, 53) and prob.dtype == np.float32
    assert np.all((prob >= 0) & (prob <= 1))
    batch = predict.predict_batch(model, [img, img[::-1]])
    assert batch.shape == (2, 37, 53)
    np.testing.assert_allclose(batch[0], prob, atol=1e-6)


def test_input_scaling_is_applied_exactly_once():
    img = np.array([[0, 64, 128, 200, 255]], np.uint8).repeat(4, axis=0)
    expected = 1 / (1 + np.exp(-(20 * (img / 255.0) - 10)))
    for rescale in (True, False):  # model rescales itself / predict divides by 255
        prob = predict.predict_image(_brightness_model(rescale), img)
        np.testing.assert_allclose(prob, expected, atol=1e-5)
    # float input in 0–255 units is the same image; 0–1 floats are refused with a hint
    np.testing.assert_allclose(predict.predict_image(_brightness_model(), img.astype(np.float32)),
                               expected, atol=1e-5)
    with pytest.raises(ValueError, match="0–1"):
        predict.predict_image(_brightness_model(), img / 255.0)
    with pytest.raises(ValueError, match="grey image"):
        predict.predict_image(_brightness_model(), np.zeros((4, 5, 3), np.uint8))


def test_tiled_prediction_matches_whole_image():
    model = _conv_model()
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (100, 130), dtype=np.uint8)
    whole = predict.predict_image(model, img)
    tiled = predict.predict_image(model, img, tile=48, overlap=16, batch_size=3)
    assert tiled.shape == whole.shape
    # only pixels within the 2-px receptive-field radius of a tile edge differ, and the
    # raised-cosine window gives those almost no weight
    assert np.abs(tiled - whole).max() < 0.02
    assert np.abs(tiled - whole).mean() < 1e-3
    # without blending (overlap 0) the seams would be the raw edge errors
    hard = predict.predict_image(model, img, tile=48, overlap=0)
    assert np.abs(hard - whole).max() > np.abs(tiled - whole).max()


def test_tiles_larger_than_image_and_multichannel_output():
    model = _conv_model(channels=2)
    img = np.random.default_rng(2).integers(0, 256, (30, 20), dtype=np.uint8)
    out = predict.predict_image(model, img, tile=64)
    assert out.shape == (30, 20, 2)
    np.testing.assert_allclose(out, predict.predict_image(model, img), atol=1e-6)


def test_jit_compiled_predict_agrees():
    model = _brightness_model()
    img = np.random.default_rng(3).integers(0, 256, (16, 24), dtype=np.uint8)
    np.testing.assert_allclose(predict.predict_image(model, img, jit_compile=True),
                               predict.predict_image(model, img), atol=1e-5)


def test_batches_predicted_at_once_come_back_in_order(monkeypatch):
    monkeypatch.setattr(predict.core, "concurrent_passes", lambda: 3)
    model = _conv_model()
    images = np.random.default_rng(4).integers(0, 256, (7, 12, 16), dtype=np.uint8)
    out = predict.predict_batch(model, images, batch_size=2)  # 4 chunks, 3 at a time
    for image, prediction in zip(images, out):
        np.testing.assert_allclose(prediction, predict.predict_image(model, image), atol=1e-6)


def _bn_unet():
    """Conv → BatchNorm → ReLU blocks (with and without conv bias), one conv with two consumers, a BN
    after a pooling layer: what the fold must merge, and what it must leave alone."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((None, None, 1))
    a = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(keras.layers.Rescaling(1 / 255)(inp))
    a = keras.layers.ReLU()(keras.layers.BatchNormalization()(a))
    b = keras.layers.Conv2D(4, 3, padding="same")(a)  # used twice: not folded
    c = keras.layers.BatchNormalization(scale=False)(b)
    d = keras.layers.BatchNormalization(center=False)(keras.layers.MaxPooling2D()(b))  # not after a conv
    d = keras.layers.UpSampling2D()(d)
    e = keras.layers.Conv2D(3, 1, padding="same")(keras.layers.Concatenate()([c, d]))
    e = keras.layers.BatchNormalization()(e)
    model = keras.Model(inp, keras.layers.Conv2D(1, 1, activation="sigmoid")(e))
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial running statistics, as after training
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.5, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.2, 3, layer.moving_variance.shape))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 2, layer.gamma.shape))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.5, layer.beta.shape))
    return model


def test_batch_norm_folding_keeps_the_function_and_follows_later_training():
    from livecell_kit.predict.fold import fold_batch_norm

    model = _bn_unet()
    folded = fold_batch_norm(model)
    kinds = [type(layer).__name__ for layer in folded.layers]
    assert kinds.count("FoldedConv2D") == 2 and kinds.count("BatchNormalization") == 2
    x = np.random.default_rng(1).uniform(0, 255, (2, 24, 32, 1)).astype(np.float32)
    np.testing.assert_allclose(folded(x, training=False), model(x, training=False), atol=1e-5)
    img = x[0, ..., 0].astype(np.uint8)
    np.testing.assert_allclose(predict.predict_image(model, img), model(img[None, ..., None].astype(np.float32),
                               training=False)[0, ..., 0], atol=1e-5)
    # the folded model shares the weights: changed later (more training), the prediction follows
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(layer.moving_mean + 0.3)
    np.testing.assert_allclose(predict.predict_image(model, img), model(img[None, ..., None].astype(np.float32),
                               training=False)[0, ..., 0], atol=1e-5)
    for plain in (_conv_model(), _mini_unet()):  # no conv → batch norm pair: the model itself
        assert fold_batch_norm(plain) is plain
    inp = keras.Input((None, None, 1))  # the conv's output is also a model output: left as it is
    conv = keras.layers.Conv2D(2, 3, padding="same")(inp)
    two_outputs = keras.Model(inp, [conv, keras.layers.BatchNormalization()(conv)])
    assert fold_batch_norm(two_outputs) is two_outputs


def test_the_kits_unet_folds_every_batch_norm():
    from livecell_kit.model import build_unet
    from livecell_kit.predict.fold import fold_batch_norm

    model = build_unet(presets.PRESETS["quick"].model)
    folded = fold_batch_norm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    x = np.random.default_rng(2).uniform(0, 1, (1, 32, 48, 1)).astype(np.float32)
    np.testing.assert_allclose(folded(x, training=False), model(x, training=False), atol=1e-5)


def _bright_discs(shape=(48, 64)):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    img = np.full(shape, 40, np.uint8)
    img[(yy - 14) ** 2 + (xx - 16) ** 2 < 64] = 220
    img[(yy - 32) ** 2 + (xx - 46) ** 2 < 100] = 220
    return img


def test_predict_paths_writes_three_files_per_image(tmp_path):
    import tifffile
    from PIL import Image

    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    img = _bright_discs()
    tifffile.imwrite(src / "A172_Phase_1.tif", img)
    Image.fromarray(img[::-1]).save(src / "sub" / "cells.png")
    written = predict.predict_paths(_brightness_model(), src, tmp_path / "out")
    assert [w["image"].name for w in written] == ["A172_Phase_1.tif", "cells.png"]
    for w, source in zip(written, (img, img[::-1])):
        mask = np.asarray(Image.open(w["mask"]))
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
        np.testing.assert_array_equal(mask == 255, source > 128)
        labels = tifffile.imread(w["labels"])
        assert labels.dtype == np.uint16 and labels.shape == source.shape
        assert sorted(np.unique(labels)) == [0, 1, 2]
        np.testing.assert_array_equal(labels > 0, source > 128)
        overlay = np.asarray(Image.open(w["overlay"]))
        assert overlay.shape == source.shape + (3,) and overlay.dtype == np.uint8
        assert not np.array_equal(overlay[..., 0], overlay[..., 2])  # coloured where cells are
    out = tmp_path / "out"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.*")) == sorted(["cells.csv"] + [  # mirrored
        f"{s}_{k}" for s in ("A172_Phase_1", "sub/cells") for k in ("labels.tif", "mask.png", "overlay.png")])


def test_predict_array_in_memory(tmp_path):
    pred = predict.predict_array(_brightness_model(), _bright_discs(), threshold=0.5)
    assert pred.prob.shape == (48, 64) and pred.mask.dtype == np.uint8 and pred.labels.max() == 2
    assert pred.border is None
    paths = predict.write_prediction(pred, _bright_discs(), tmp_path, "x")
    assert all(p.exists() for p in paths.values())


def _table(out):
    import csv

    with open(out / "cells.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cells_csv_counts_the_cells_of_every_frame(tmp_path, capsys):
    import tifffile

    src = tmp_path / "in"
    img = _bright_discs()
    a, b = _tif(src / "a.tif", img), _tif(src / "b.tif", np.hstack([img, img]))
    written = predict.predict_paths(_brightness_model(), src, tmp_path / "out")
    rows = _table(tmp_path / "out")
    assert list(rows[0]) == ["file", "page", "labels", "cells", "confluence_pct", "mean_area_px",
                             "median_area_px", "method", "threshold", "predicted_at"]
    assert [(r["file"], r["labels"], r["cells"]) for r in rows] == [
        (str(a), "a_labels.tif", "2"), (str(b), "b_labels.tif", "4")]
    labels = tifffile.imread(written[0]["labels"])
    areas = np.bincount(labels.ravel())[1:]
    assert float(rows[0]["confluence_pct"]) == pytest.approx(100 * (img > 128).mean(), abs=0.01)
    assert float(rows[0]["mean_area_px"]) == pytest.approx(areas.mean(), abs=0.05)
    assert float(rows[0]["median_area_px"]) == pytest.approx(np.median(areas), abs=0.05)
    assert {r["method"] for r in rows} == {"watershed on the semantic mask (no instance head)"}
    assert float(rows[0]["threshold"]) == presets.CELL_SPLITTING.foreground_threshold and rows[0]["page"] == ""
    out = capsys.readouterr().out
    assert "cells per frame: " in out and "(2 frames of this run)" in out
    assert out.count("the model has no instance head") == 1


def test_a_cells_model_writes_16_bit_labels_from_its_distance_maps(tmp_path, capsys, bright_cells_model):
    import tifffile

    img = _bright_discs()
    pred = predict.predict_array(bright_cells_model, img)
    assert pred.method == "distance maps" and pred.border is None and pred.prob.shape == img.shape
    written = predict.predict_paths(bright_cells_model, _tif(tmp_path / "x.tif", img), tmp_path / "out")
    labels = tifffile.imread(written[0]["labels"])
    assert labels.dtype == np.uint16 and np.array_equal(labels, pred.labels) and labels.max() == 2
    assert _table(tmp_path / "out")[0]["method"] == "distance maps"
    assert "no instance head" not in capsys.readouterr().out


def test_a_rerun_into_the_same_folder_updates_its_rows_and_keeps_the_others(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    img = _bright_discs()
    _tif(src / "a.tif", img), _tif(src / "b.tif", img)
    predict.predict_paths(_brightness_model(), src, out)
    _tif(src / "a.tif", np.hstack([img, img]))  # a changed, c new: predicted without b into the same folder
    new = _tif(src / "c.tif", img)
    predict.predict_paths(_brightness_model(), [src / "a.tif", new], out)
    assert [(r["labels"], r["cells"]) for r in _table(out)] == [
        ("a_labels.tif", "4"), ("b_labels.tif", "2"), ("c_labels.tif", "2")]
    assert "and 1 kept from earlier runs" in capsys.readouterr().out
    (out / "b_labels.tif").unlink()  # outputs removed by hand: their row goes at the next run
    predict.predict_paths(_brightness_model(), new, out)
    assert [r["labels"] for r in _table(out)] == ["a_labels.tif", "c_labels.tif"]
    (out / "cells.csv").write_text("well,count\nA1,3\n")  # a table of other columns is replaced
    predict.predict_paths(_brightness_model(), new, out)
    assert "its columns are not predict's" in capsys.readouterr().out
    assert [r["labels"] for r in _table(out)] == ["c_labels.tif"]
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_unreadable_and_missing_files_are_named(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(predict.PredictionError, match="broken.tif") as err:
        predict.predict_paths(_brightness_model(), [bad], tmp_path / "out")
    assert err.value.written == [] and [f for f, _ in err.value.failed] == [bad]
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        predict.predict_paths(_brightness_model(), tmp_path / "nothing_here", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .tif"):
        predict.predict_paths(_brightness_model(), tmp_path / "empty", tmp_path / "out")


def test_predict_paths_reads_stacks_16bit_rgb_and_jpeg(tmp_path, capsys):
    import tifffile
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    img = _bright_discs()
    stack = np.stack([img, img[::-1], img[:, ::-1]])
    tifffile.imwrite(src / "stack.tif", stack, photometric="minisblack", compression="lzw")
    tifffile.imwrite(src / "u16.tif", img.astype(np.uint16) * 257)  # 40..220 -> stretched to 0..255
    Image.fromarray(np.stack([img] * 3, -1)).save(src / "rgb.png")
    Image.fromarray(img).save(src / "cells.jpg", quality=95)
    written = predict.predict_paths(_brightness_model(), src, tmp_path / "out")
    names = [(w["image"].name, w["page"]) for w in written]
    assert names == [("cells.jpg", 0), ("rgb.png", 0), ("stack.tif", 0), ("stack.tif", 1),
                     ("stack.tif", 2), ("u16.tif", 0)]
    assert [w["mask"].name for w in written[2:5]] == [f"stack_p00{i}_mask.png" for i in (1, 2, 3)]
    sources = [img, img, *stack, img]
    for w, source in zip(written, sources):
        labels = tifffile.imread(w["labels"])
        assert labels.shape == source.shape and labels.max() == 2, w["mask"].name
        if w["image"].suffix != ".jpg":  # lossy JPEG may move edge pixels
            np.testing.assert_array_equal(labels > 0, source > 128)
    assert [w["scaling"] is not None for w in written] == [False] * 5 + [True]
    out = capsys.readouterr().out
    assert "u16.tif: uint16 -> uint8: linear stretch" in out and "stack.tif" not in out


def _tif(path, img):
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, img)
    return path


def _outputs(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*_mask.png"))


def test_inputs_sharing_a_stem_get_their_own_outputs(tmp_path):
    """plate1/A1.tif + plate2/A1.tif, and a.tif + a.tiff, used to overwrite each other."""
    img = _bright_discs()
    src = tmp_path / "in"
    plates = [_tif(src / "plate1" / "A1.tif", img), _tif(src / "plate2" / "A1.tif", img[::-1])]
    twins = [_tif(src / "a.tif", img), _tif(src / "a.tiff", img[:, ::-1])]
    written = predict.predict_paths(_brightness_model(), src, tmp_path / "out")
    assert _outputs(tmp_path / "out") == ["a.tif_mask.png", "a.tiff_mask.png", "plate1/A1_mask.png",
                                          "plate2/A1_mask.png"]
    by_input = {w["image"]: w for w in written}
    for f, source in zip(plates + twins, (img, img[::-1], img, img[:, ::-1])):  # each holds its own image
        np.testing.assert_array_equal(np.asarray(Image.open(by_input[f]["mask"])) > 0, source > 128)
    # files given one by one from two folders: mirrored from the folder they share
    out2 = tmp_path / "out2"
    predict.predict_paths(_brightness_model(), plates + plates[:1], out2)  # a file given twice: once
    assert _outputs(out2) == ["plate1/A1_mask.png", "plate2/A1_mask.png"]


def test_collisions_that_remain_are_refused_before_writing(tmp_path):
    img = _bright_discs()
    a, b = _tif(tmp_path / "x" / "A1.tif", img), _tif(tmp_path / "x" / "a1.TIF", img)
    with pytest.raises(ValueError, match="would both write"):  # one file on Windows and macOS
        predict.predict_paths(_brightness_model(), tmp_path / "x", tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before writing anything
    # a stack's page outputs never overwrite another input's
    stack = np.stack([img, img[::-1]])
    _tif(tmp_path / "z" / "s.tif", stack)
    _tif(tmp_path / "z" / "s_p001.tif", img)
    with pytest.raises(predict.PredictionError, match="would overwrite") as err:
        predict.predict_paths(_brightness_model(), tmp_path / "z", tmp_path / "out")
    assert len(err.value.written) == 2 and len(err.value.failed) == 1


def test_a_rerun_with_out_inside_the_input_folder_skips_its_own_outputs(tmp_path, capsys):
    src = tmp_path / "in"
    _tif(src / "A1.tif", _bright_discs())
    first = predict.predict_paths(_brightness_model(), src, src / "pred")
    again = predict.predict_paths(_brightness_model(), src, src / "pred")
    assert [w["image"].name for w in again] == [w["image"].name for w in first] == ["A1.tif"]
    assert "skipped 3 earlier predict outputs" in capsys.readouterr().out
    # into the input folder itself: outputs lie beside the inputs, still skipped
    predict.predict_paths(_brightness_model(), src, src)
    assert [w["image"].name for w in predict.predict_paths(_brightness_model(), src, src)] == ["A1.tif"]


def test_a_bad_file_does_not_stop_the_batch_and_is_reported_at_the_end(tmp_path):
    src = tmp_path / "in"
    good = [_tif(src / "a.tif", _bright_discs()), _tif(src / "c.tif", _bright_discs())]
    (src / "b.tif").write_bytes(b"II*\x00 truncated")
    (src / "d.png").write_bytes(b"")
    with pytest.raises(predict.PredictionError) as err:
        predict.predict_paths(_brightness_model(), src, tmp_path / "out")
    assert [w["image"] for w in err.value.written] == good
    assert [f.name for f, _ in err.value.failed] == ["b.tif", "d.png"]
    text = str(err.value)
    assert text.startswith("2 of 4 input files could not be predicted") and "b.tif" in text and "d.png" in text
    assert all(Path(w["mask"]).exists() for w in err.value.written)


def test_cli_predict_exits_non_zero_after_predicting_the_good_files(tmp_path, capsys):
    from livecell_kit import cli

    model_path = tmp_path / "model.keras"
    _brightness_model().save(model_path)
    src = tmp_path / "in"
    _tif(src / "a.tif", _bright_discs())
    (src / "b.tif").write_bytes(b"not a tiff")
    assert cli.main(["predict", "--model", str(model_path), "--out", str(tmp_path / "out"), str(src)]) != 0
    captured = capsys.readouterr()
    assert "wrote predictions for 1 images" in captured.out
    assert "1 of 2 input files could not be predicted" in captured.err and "b.tif" in captured.err
    assert "Traceback" not in captured.err
    assert (tmp_path / "out" / "a_mask.png").exists()


def test_importing_predict_loads_neither_pyplot_nor_tensorflow():
    """`livecell-kit predict` writes overlays with numpy (livecell_kit.masks.overlay), not matplotlib.

    (Loading a model still imports pyplot: Keras itself does, in keras.src.visualization.)
    """
    code = ("import sys, livecell_kit.predict; "
            "print(sorted(m for m in ('matplotlib.pyplot', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_complex_valued_tiff_is_a_per_file_error_and_the_folder_goes_on(tmp_path):
    src = tmp_path / "in"
    good = _tif(src / "a.tif", _bright_discs())
    _tif(src / "b.tif", _bright_discs().astype(np.complex64) * (1 + 1j))
    good_after = _tif(src / "c.tif", _bright_discs())
    with pytest.raises(predict.PredictionError) as err:
        predict.predict_paths(_brightness_model(), src, tmp_path / "out")
    assert [w["image"] for w in err.value.written] == [good, good_after]
    [(failed, message)] = err.value.failed
    assert failed.name == "b.tif"
    assert "b.tif" in message and "complex64" in message and "8- or 16-bit grey" in message
