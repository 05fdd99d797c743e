"""Training: input pipeline, losses, metrics, precision choice, bf16 numerics, run folders (kills: test_run_safety)."""
import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from livecell_kit import presets
from livecell_kit import train as T
from livecell_kit.masks import border_weight_map
from livecell_kit.model import build_unet
from livecell_kit.presets import ModelConfig
from livecell_kit.train import augment, pipeline

H, W = 32, 48


def _two_level_image(rng, h=H, w=W):
    """Grey values in [0, 40] or [215, 255]: jitter keeps every pixel on its side of 128."""
    high = rng.random((h // 4, w // 4)) < 0.5
    high = np.kron(high, np.ones((4, 4), bool))  # blobs, so crops are not all alike
    low_vals = rng.integers(0, 41, (h, w))
    high_vals = rng.integers(215, 256, (h, w))
    return np.where(high, high_vals, low_vals).astype(np.uint8)


@pytest.fixture
def pairs(tmp_path):
    """4 PNG images and masks derived from them (mask = image > 128), plus the arrays."""
    rng = np.random.default_rng(0)
    images, masks, arrays = [], [], []
    for i in range(4):
        img = _two_level_image(rng)
        ip, mp = tmp_path / f"img{i}.png", tmp_path / f"img{i}_mask.png"
        Image.fromarray(img).save(ip)
        Image.fromarray(((img > 128) * 255).astype(np.uint8)).save(mp)
        images.append(ip)
        masks.append(mp)
        arrays.append(img)
    return images, masks, arrays


def _first_batches(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


def test_training_crops_are_windows_of_the_images_and_aligned(pairs):
    images, masks, arrays = pairs
    ds = T.training_dataset(images, masks, batch_size=3, crop_size=16, augment=False, seed=1)
    for x, y in _first_batches(ds, 3):
        assert x.shape == (3, 16, 16, 1) and x.dtype == np.uint8
        assert y.shape == (3, 16, 16, 1) and y.dtype == np.float32
        assert set(np.unique(y)) <= {0.0, 1.0}
        np.testing.assert_array_equal(y[..., 0], (x[..., 0] > 128).astype(np.float32))
        for crop in x[..., 0]:
            found = any(np.array_equal(a[i:i + 16, j:j + 16], crop)
                        for a in arrays for i in range(H - 15) for j in range(W - 15))
            assert found, "a training crop is not a window of any training image"


def _agrees_away_from_edges(x, y, margin=2):
    """Crops of the two-level test images: away from the mask's edges, the image is bright
    exactly where the mask says cell (threshold: midway between the crop's two levels)."""
    from scipy import ndimage

    checked = 0
    for crop, mask in zip(x[..., 0], y[..., 0]):
        size = 2 * margin + 1
        inner = ndimage.minimum_filter(mask, size) == ndimage.maximum_filter(mask, size)
        if not (inner & (mask == 1)).any() or not (inner & (mask == 0)).any():
            continue
        mid = 0.5 * (crop[inner & (mask == 1)].mean() + crop[inner & (mask == 0)].mean())
        np.testing.assert_array_equal((crop[inner] > mid), mask[inner] == 1)
        checked += 1
    return checked


def test_augmentation_keeps_image_and_mask_aligned(pairs):
    images, masks, _ = pairs
    ds = T.training_dataset(images, masks, batch_size=4, crop_size=16, augment=True, seed=2)
    checked, changed = 0, False
    for x, y in _first_batches(ds, 4):
        assert x.shape == (4, 16, 16, 1) and y.shape == (4, 16, 16, 1)
        assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 255
        assert set(np.unique(y)) <= {0.0, 1.0}
        checked += _agrees_away_from_edges(x, y)
        changed |= not np.allclose(x, np.round(x))  # intensities varied
    assert checked >= 4 and changed


NEUTRAL = presets.Augmentation(scale=(1.0, 1.0), contrast=(1.0, 1.0), gamma=(1.0, 1.0), brightness=0.0,
                                sharpness=(0.0, 0.0), noise=0.0, gradient=0.0)


def _stack(rng, h=40, w=40):
    """Two-level image (blobs of 4 px) stacked with its mask and a weight-like channel."""
    img = _two_level_image(rng, h, w)
    mask = (img > 128).astype(np.float32)
    weights = 1.0 + rng.integers(0, 5, (h, w)).astype(np.float32)
    return tf.constant(np.stack([img.astype(np.float32), mask, weights], axis=-1))


def test_zoomed_crops_keep_masks_binary_aligned_and_weights_as_they_were():
    rng = np.random.default_rng(5)
    stack = _stack(rng)
    zoom = presets.Augmentation(scale=(0.6, 1.6))
    xs, ys, sizes = [], [], set()
    for i in range(12):
        seed = tf.constant([7, i], tf.int64)
        x, y = pipeline.crop_and_augment(stack, seed, crop_size=16, augment=True, settings=dataclasses.replace(
            NEUTRAL, scale=zoom.scale))
        x, y = x.numpy(), y.numpy()
        assert x.shape == (16, 16, 1) and y.shape == (16, 16, 2)
        assert set(np.unique(y[..., 0])) <= {0.0, 1.0}
        assert set(np.unique(y[..., 1])) <= set(np.unique(stack.numpy()[..., 2]))  # no new weight values
        xs.append(x)
        ys.append(y)
        # a zoomed window shows blobs (4 px in the image) at another size
        runs = np.diff(y[..., 0], axis=1) != 0
        sizes.add(int(runs.sum()))
    assert _agrees_away_from_edges(np.stack(xs), np.stack(ys), margin=1) >= 6
    assert len(sizes) > 3
    # the same seed gives the same crop
    again = pipeline.crop_and_augment(stack, tf.constant([7, 0], tf.int64), crop_size=16, augment=True,
                                      settings=dataclasses.replace(NEUTRAL, scale=zoom.scale))
    np.testing.assert_array_equal(again[0].numpy(), xs[0])
    np.testing.assert_array_equal(again[1].numpy(), ys[0])


def test_vary_intensity_is_seeded_bounded_and_neutral_when_its_ranges_are():
    rng = np.random.default_rng(6)
    x = tf.constant(_two_level_image(rng, 32, 32)[..., None].astype(np.float32))
    seed = tf.constant([3, 4], tf.int64)
    np.testing.assert_allclose(augment.vary_intensity(x, seed, NEUTRAL).numpy(), x.numpy(), atol=1e-3)
    a = augment.vary_intensity(x, seed).numpy()
    np.testing.assert_array_equal(a, augment.vary_intensity(x, seed).numpy())
    assert not np.array_equal(a, augment.vary_intensity(x, tf.constant([3, 5], tf.int64)).numpy())
    assert a.shape == (32, 32, 1) and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 255
    # each knob alone: noise roughens flat areas, blur smooths edges, a ramp tilts the crop
    flat = tf.fill([32, 32, 1], 128.0)
    noisy = augment.vary_intensity(flat, seed, dataclasses.replace(NEUTRAL, noise=4.0)).numpy()
    assert 0 < noisy.std() <= 4.5
    blurred = augment.vary_intensity(x, seed, dataclasses.replace(NEUTRAL, sharpness=(-1.0, -1.0))).numpy()
    assert np.abs(np.diff(blurred, axis=1)).mean() < 0.8 * np.abs(np.diff(x.numpy(), axis=1)).mean()
    tilted = augment.vary_intensity(flat, seed, dataclasses.replace(NEUTRAL, gradient=12.0)).numpy()
    assert 0 < np.ptp(tilted) <= 12.0 + 1e-3
    bright = augment.vary_intensity(flat, seed, dataclasses.replace(NEUTRAL, gamma=(0.5, 0.5))).numpy()
    np.testing.assert_allclose(bright, 255 * (128 / 255) ** 0.5, rtol=1e-5)


def test_cached_and_streamed_pipelines_agree(pairs):
    images, masks, _ = pairs
    kw = dict(batch_size=2, crop_size=8, augment=True, seed=3)
    a = _first_batches(T.training_dataset(images, masks, cache=True, **kw), 4)
    b = _first_batches(T.training_dataset(images, masks, cache=False, **kw), 4)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    # "auto" caches only under the byte limit; both settings still give the same data
    assert not pipeline._should_cache("auto", images, 1, limit=10)
    assert pipeline._should_cache("auto", images, 1, limit=10**6)


def test_validation_full_frames_in_order_and_two_channels(pairs):
    images, masks, arrays = pairs
    batches = _first_batches(T.validation_dataset(images, masks, batch_size=3), 10)
    assert [x.shape for x, _ in batches] == [(3, H, W, 1), (1, H, W, 1)]
    x = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(x[..., 0], np.stack(arrays))
    # two mask files per image -> two target channels, in the given order
    inverted = []
    for mp, a in zip(masks, arrays):
        p = mp.with_name(mp.stem + "_inv.png")
        Image.fromarray(((a <= 128) * 255).astype(np.uint8)).save(p)
        inverted.append(p)
    x, y = next(iter(T.validation_dataset(images, list(zip(masks, inverted)), batch_size=4)))
    assert y.shape == (4, H, W, 2)
    np.testing.assert_array_equal(y.numpy()[..., 1], 1.0 - y.numpy()[..., 0])


def test_mismatched_mask_size_names_the_files(pairs, tmp_path):
    images, masks, _ = pairs
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks[0])
    with pytest.raises(Exception, match="img0_mask.png"):
        next(iter(T.validation_dataset(images[:1], masks[:1], batch_size=1, cache=False)))


def _instance_label_files(masks, arrays):
    """16-bit instance-label PNGs (mask kind "instance") of the pairs' blobs."""
    from scipy import ndimage

    paths, labels = [], []
    for mp, a in zip(masks, arrays):
        lab, _ = ndimage.label(a > 128)
        p = mp.with_name(mp.stem + "_labels.png")
        Image.fromarray(lab.astype(np.uint16)).save(p)
        paths.append(p)
        labels.append(lab)
    return paths, labels


def test_border_weights_ride_as_the_last_channel_aligned_with_the_crop(pairs):
    images, masks, arrays = pairs
    label_paths, labels = _instance_label_files(masks, arrays)
    weights = [border_weight_map(lab, w0=10.0, sigma=5.0) for lab in labels]
    entries = list(zip(masks, label_paths))
    bw = T.BorderWeights(w0=10.0, sigma=5.0)
    ds = T.training_dataset(images, entries, batch_size=3, crop_size=16, augment=False, seed=1, border_weights=bw)
    for x, y in _first_batches(ds, 2):
        assert x.dtype == np.uint8 and y.shape == (3, 16, 16, 2)
        np.testing.assert_array_equal(y[..., 0], (x[..., 0] > 128).astype(np.float32))
        for crop, w_crop in zip(x[..., 0], y[..., 1]):
            # the weights of the window the crop came from, computed on the whole frame
            windows = [wt[i:i + 16, j:j + 16] for a, wt in zip(arrays, weights)
                       for i in range(H - 15) for j in range(W - 15) if np.array_equal(a[i:i + 16, j:j + 16], crop)]
            assert any(np.allclose(w_crop, w) for w in windows)
    x, y = next(iter(T.validation_dataset(images, entries, batch_size=4, border_weights=bw)))
    assert x.dtype == np.uint8
    np.testing.assert_allclose(y.numpy()[..., 1], np.stack(weights), rtol=1e-6)
    assert float(y.numpy()[..., 1].max()) > 5  # blobs touch: some gaps weigh much more
    # augmented: the weight channel moves with the masks (zoom, flips and turns keep blobs' gaps heavy)
    ds = T.training_dataset(images, entries, batch_size=4, crop_size=16, augment=True, seed=2, border_weights=bw)
    for x, y in _first_batches(ds, 2):
        _agrees_away_from_edges(x, y)
        assert y[..., 1].min() >= 1.0
    # semantic masks given where instance labels belong: a clear error
    with pytest.raises(Exception, match="not instance labels"):
        next(iter(T.validation_dataset(images[:1], [(masks[0], masks[0])], batch_size=1, border_weights=bw)))


def test_cell_targets_are_computed_on_the_whole_frame_and_cropped_zoomed_and_turned_with_the_image(pairs):
    from livecell_kit.masks import distance_targets

    images, masks, arrays = pairs
    label_paths, labels = _instance_label_files(masks, arrays)  # blobs as the "cells" label images
    targets = [distance_targets(lab) for lab in labels]
    levels = T.CELL_TARGET_LEVELS
    ds = T.training_dataset(images, label_paths, batch_size=3, crop_size=16, augment=False, seed=1,
                            cell_targets=True)
    for x, y in _first_batches(ds, 2):
        assert x.dtype == np.uint8 and y.dtype == np.float32 and y.shape == (3, 16, 16, 3)
        np.testing.assert_array_equal(y[..., 0], (x[..., 0] > 128).astype(np.float32))
        for crop, t_crop in zip(x[..., 0], y):
            # the targets of the window the crop came from, computed on the whole frame, to 1/255
            windows = [t[i:i + 16, j:j + 16] for a, t in zip(arrays, targets)
                       for i in range(H - 15) for j in range(W - 15) if np.array_equal(a[i:i + 16, j:j + 16], crop)]
            assert any(np.abs(t_crop - w).max() <= 0.5 / levels + 1e-6 for w in windows)
    x, y = next(iter(T.validation_dataset(images, label_paths, batch_size=4, cell_targets=True)))
    assert x.dtype == np.uint8 and y.shape == (4, H, W, 3)
    np.testing.assert_allclose(y.numpy(), np.stack(targets), atol=0.5 / levels + 1e-6)
    # augmented: zoom (nearest), flips and turns move the targets with the image; values stay
    # ones the frame had (per-cell normalised distances need no rescaling when zoomed)
    stored = {v for t in targets for v in np.unique(np.rint(t * levels))}
    ds = T.training_dataset(images, label_paths, batch_size=4, crop_size=16, augment=True, seed=2,
                            cell_targets=True)
    checked = 0
    for x, y in _first_batches(ds, 3):
        assert y.min() >= 0 and y.max() <= 1
        assert set(np.unique(np.rint(y * levels))) <= stored
        background = y[..., 0] == 0
        assert np.all(y[..., 1:][background] == 1.0)
        checked += _agrees_away_from_edges(x, y)
    assert checked >= 4
    # the RAM cache counts the 3 target channels of one label file
    frame = H * W * (1 + 3)
    assert pipeline._should_cache("auto", images, 3, limit=4 * frame)
    assert not pipeline._should_cache("auto", images, 3, limit=4 * frame - 1)
    # semantic 0/255 masks given where labels belong: a clear error
    with pytest.raises(Exception, match="not instance labels"):
        next(iter(T.validation_dataset(images[:1], masks[:1], batch_size=1, cell_targets=True)))


@pytest.mark.parametrize("requested,flags,gpus,expected", [
    ("auto", {"avx2", "avx512_bf16"}, [], "mixed_bfloat16"),
    ("auto", {"avx2", "amx_bf16", "amx_tile"}, [], "mixed_bfloat16"),
    ("auto", {"avx2", "fma"}, [], "float32"),
    ("auto", set(), [(8, 0)], "mixed_float16"),
    ("auto", {"avx512_bf16"}, [(8, 0), (7, 0)], "mixed_float16"),
    ("auto", set(), [(6, 1)], "float32"),  # Pascal: no tensor cores
    ("float32", {"amx_bf16"}, [(8, 0)], "float32"),
    ("bfloat16", set(), [], "mixed_bfloat16"),
    ("float16", set(), [], "mixed_float16"),
])
def test_choose_precision(requested, flags, gpus, expected):
    assert T.choose_precision(requested, cpu_flags=flags, gpus=gpus) == expected


def test_choose_precision_rejects_unknown_and_reads_cpuinfo(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        T.choose_precision("int8", cpu_flags=set(), gpus=[])
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16\n")
    assert "avx512_bf16" in T.read_cpu_flags(str(info))
    assert T.read_cpu_flags(str(tmp_path / "missing")) == set()


def test_bfloat16_training_numerics():
    """A few steps under mixed_bfloat16: the loss falls, outputs stay float32 probabilities."""
    rng = np.random.default_rng(0)
    x = np.stack([_two_level_image(rng, 16, 16) for _ in range(8)])[..., None]
    y = (x > 128).astype(np.float32)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        keras.utils.set_random_seed(0)
        model = build_unet(ModelConfig(depth=1, base_filters=4, batch_norm=True))
        model.compile(keras.optimizers.Adam(1e-2), loss=T.bce_dice)
        hist = model.fit(x, y, batch_size=8, epochs=15, verbose=0).history["loss"]
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.get_layer("enc0_conv1").compute_dtype == "bfloat16"
    assert hist[-1] < 0.7 * hist[0]
    p = model.predict(x, verbose=0)
    assert p.dtype == np.float32 and p.min() >= 0 and p.max() <= 1


TINY = dict(depth=1, base_filters=4, batch_size=2, crop_size=32, steps_per_epoch=2, precision="float32")


def test_borders_preset_trains_one_step_end_to_end(small_sample, tmp_path, monkeypatch):
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    root = small_sample
    out = tmp_path / "borders"
    result = T.train(root, preset="borders", out_dir=out, epochs=1, verbose=0,
                     **{**TINY, "steps_per_epoch": 1})
    config = json.loads((out / "config.json").read_text())
    assert config["finished"] and config["preset"]["train"]["loss"] == "weighted_bce"
    assert result.history["epoch"] == [0] and np.isfinite(result.history["val_loss"][0])
    assert T.load_model(out).loss is T.weighted_bce
    # the notebook's way to the same folder: open_run sees the finished run and finish_run loads it
    run = T.open_run(root, presets.resolve("borders", epochs=1, **{**TINY, "steps_per_epoch": 1}), out, verbose=0)
    assert run.finished and T.finish_run(run).history == result.history


def test_cells_preset_trains_one_epoch_end_to_end_and_loads(small_sample, tmp_path, monkeypatch):
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    root = small_sample
    out = tmp_path / "cells"
    settings = {**TINY, "steps_per_epoch": 1}
    result = T.train(root, preset="cells", out_dir=out, epochs=1, verbose=0, **settings)
    config = json.loads((out / "config.json").read_text())
    assert config["finished"] and config["preset"]["model"]["outputs"] == "cells"
    assert result.history["epoch"] == [0] and np.isfinite(result.history["val_loss"][0])
    assert {"val_dice", "val_iou"} <= set(result.history)
    loaded = T.load_model(out)
    assert loaded.loss is T.cells_loss and loaded.output.shape[-1] == 3
    frame = np.zeros((1, 64, 64, 1), np.uint8)
    assert loaded.predict(frame, verbose=0).shape == (1, 64, 64, 3)
    # rerunning the same call loads the finished run
    again = T.train(root, preset="cells", out_dir=out, epochs=1, verbose=0, **settings)
    assert again.history == result.history
    # a loss that does not fit the outputs is refused before anything is written
    with pytest.raises(ValueError, match="does not fit a model with outputs 'cells'"):
        T.train(root, preset="cells", out_dir=tmp_path / "bad", epochs=1, verbose=0, loss="bce_dice")
    assert not (tmp_path / "bad").exists()


def test_quick_run_says_when_it_trains(tmp_path, monkeypatch, capsys):
    from livecell_kit import course

    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    calls = []
    monkeypatch.setattr(T, "train", lambda root, **kw: calls.append(kw) or "result")
    root = tmp_path / "sample-seed0"
    assert course.quick_run(root) == "result"
    out_dir = calls[0]["out_dir"]
    assert out_dir == course.quick_run_dir(root) == tmp_path / "work" / "runs" / "quick-sample-seed0"
    assert "training preset 'quick' now, into runs/quick-sample-seed0 in the work folder" in capsys.readouterr().out
    out_dir.mkdir(parents=True)
    (out_dir / "config.json").write_text(json.dumps({"finished": True}))
    (out_dir / "model.keras").write_bytes(b"")
    course.quick_run(root)
    # a finished run is reused, in one line without the machine's path
    assert capsys.readouterr().out == ("runs/quick-sample-seed0 in the work folder: trained already "
                                       "(notebook 04); loading its model\n")
    assert calls[-1]["verbose"] == 0


# --------------------------------------------------------------------------- bad frames caught before tf.data

def _tiny_root(tmp_path, n=3):
    """train and val splits of n two-level frames (H x W) each, one square cell per frame."""
    import tifffile

    from livecell_kit import data

    root = tmp_path / "data"
    rng = np.random.default_rng(1)
    for split in ("train", "val"):
        images, anns = [], []
        for i in range(1, n + 1):
            name = f"A172_Phase_C7_1_00d0{i}h00m_{split}.tif"
            path = data.split_image_dir(root, split) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, _two_level_image(rng), compression="lzw")
            images.append({"id": i, "file_name": name, "width": W, "height": H})
            anns.append({"id": 100 + i, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "segmentation": [[4, 4, 20, 4, 20, 20, 4, 20]]})
        ann = data.annotation_path(root, split)
        ann.parent.mkdir(parents=True, exist_ok=True)
        ann.write_text(json.dumps({"images": images, "annotations": anns}))
    return root


@pytest.mark.parametrize("damage, words", [
    (lambda p: Image.fromarray(np.zeros((H + 8, W), np.uint8)).save(p, format="TIFF"), "declares 48 x 32"),
    (lambda p: p.write_bytes(p.read_bytes()[:-300]), "truncated"),
    (lambda p: p.unlink(), "does not exist"),
])
def test_a_bad_training_frame_is_named_before_masks_or_tf_data(tmp_path, monkeypatch, damage, words):
    from livecell_kit import data

    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    root = _tiny_root(tmp_path)
    split = data.load_split(root, "train")
    bad = split.image_path(split.images[1])
    damage(bad)
    monkeypatch.setattr(pipeline, "training_dataset", lambda *a, **k: pytest.fail("tf.data was built"))
    with pytest.raises(data.ImageCheckError, match=words) as err:
        pipeline.preset_datasets(root, presets.get_preset("quick"))
    assert str(bad) in str(err.value) and "cannot be used for training" in str(err.value)
    assert not (tmp_path / "work" / "masks").exists()  # checked before any mask was drawn


def test_cli_train_on_a_bad_frame_prints_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    from livecell_kit import cli, data

    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    root = _tiny_root(tmp_path)
    split = data.load_split(root, "val")
    bad = split.image_path(split.images[0])
    bad.write_bytes(bad.read_bytes()[:-300])
    assert cli.main(["train", "--data", str(root), "--preset", "quick", "--out", str(tmp_path / "run"),
                     "--epochs", "1"]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(bad) in err and "truncated" in err
    assert "rebuild the mask cache" not in err


def test_a_damaged_cached_mask_is_rebuilt_inside_tf_data(tmp_path, monkeypatch):
    from livecell_kit import masks

    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    root = _tiny_root(tmp_path)
    images, mask_paths = pipeline.split_files(root, "val")
    expected = [np.asarray(Image.open(p)) for p in mask_paths]
    mask_paths[1].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # damaged after the build's check
    with pytest.warns(UserWarning, match="rebuilt"):
        batches = [y for _, y in T.validation_dataset(images, mask_paths, batch_size=3, cache=False)]
    np.testing.assert_array_equal(batches[0].numpy()[..., 0], np.stack(expected) > 0)
    assert masks.mask_is_intact(mask_paths[1], H, W, "semantic")


def test_validation_batches_hold_no_more_pixels_than_a_training_batch():
    # Whole 520x704 frames: quick (8 crops of 128) validates one frame at a time, seed (whole frames) 32.
    assert pipeline.validation_batch_size(presets.get_preset("quick").train) == 1
    assert pipeline.validation_batch_size(presets.get_preset("seed").train) == 32
    assert pipeline.validation_batch_size(presets.get_preset("quick", crop_size=512, batch_size=8).train) == 5


def test_validation_metrics_do_not_depend_on_the_batch_size():
    rng = np.random.default_rng(0)
    y_true = (rng.random((6, 16, 16, 1)) > 0.5).astype("float32")
    y_pred = rng.random((6, 16, 16, 1)).astype("float32")
    results = []
    for batch in (1, 4, 6):
        metrics = T.make_metrics()
        for i in range(0, 6, batch):
            for m in metrics:
                m.update_state(y_true[i:i + batch], y_pred[i:i + batch])
        results.append([float(m.result()) for m in metrics])
    assert results[0] == results[1] == results[2]


# ---------------------------------------------------------------- the pipeline's steps, as notebook 04 assembles them

def test_read_frames_stacks_each_image_with_its_mask_in_file_order(pairs):
    images, masks, arrays = pairs
    stacks = list(T.read_frames(images, masks).as_numpy_iterator())
    assert [s.shape for s in stacks] == [(H, W, 2)] * 4 and stacks[0].dtype == np.uint8
    np.testing.assert_array_equal(np.stack([s[..., 0] for s in stacks]), np.stack(arrays))
    np.testing.assert_array_equal(np.stack([s[..., 1] for s in stacks]), (np.stack(arrays) > 128).astype(np.uint8))


def test_with_seeds_gives_each_element_its_own_seed_fixed_by_the_run_seed():
    def seeds(seed):
        return [s for _, s in T.with_seeds(tf.data.Dataset.range(5), seed).as_numpy_iterator()]

    first = seeds(3)
    assert all(s.shape == (2,) and s.dtype == np.int64 for s in first)
    assert len({tuple(s) for s in first}) == 5  # no two elements share a seed
    np.testing.assert_array_equal(first, seeds(3))
    assert not np.array_equal(first, seeds(4))


def test_the_steps_assembled_by_hand_give_training_datasets_batches(pairs):
    images, masks, _ = pairs
    frames = T.read_frames(images, masks).cache().shuffle(len(images), seed=5, reshuffle_each_iteration=True).repeat()
    crops = T.with_seeds(frames, 5).map(lambda stack, seed: T.crop_and_augment(stack, seed, 16, augment=True))
    by_hand = _first_batches(crops.batch(3, drop_remainder=True).prefetch(1), 5)
    kit = _first_batches(T.training_dataset(images, masks, batch_size=3, crop_size=16, augment=True, seed=5), 5)
    for (xa, ya), (xb, yb) in zip(by_hand, kit, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_preset_files_asks_split_files_for_the_presets_images(monkeypatch):
    calls = []
    monkeypatch.setattr(pipeline, "split_files", lambda root, split, **kw: calls.append((root, split, kw)) or ([], []))
    preset = presets.get_preset("borders")
    T.preset_files("data", preset, "val")
    (root, split, kw), = calls
    assert (root, split, kw["limit"], kw["subset_seed"], kw["subset_rule"]) == (
        "data", "val", preset.data.val_images, preset.data.subset_seed, preset.data.subset)
    assert kw["outputs"] == preset.model.outputs and kw["instance_labels"]  # weighted_bce needs the labels
