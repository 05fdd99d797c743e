"""stream_cells: input order, the serial results, bounded memory, per-frame errors; tiles of 3-channel models."""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from livecell_kit import predict  # noqa: E402
from livecell_kit.predict import core as predict_core  # noqa: E402
from livecell_kit.instances import split_cells, split_cells_tiled  # noqa: E402
from livecell_kit.masks import distance_targets  # noqa: E402
from livecell_kit.masks.overlay import overlay_image  # noqa: E402
from livecell_kit.predict import _overlay_in_strips  # noqa: E402
from livecell_kit.presets import CELL_SPLITTING  # noqa: E402


def _cells_like_model(seed=0):
    """Random 3×3 convolutions to 3 sigmoid channels, the output shape of a "cells" model."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((None, None, 1)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(4, 3, padding="same", activation="tanh"),
                             keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")])


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(40, 56), (40, 56), (33, 47), (40, 56), (64, 24)]
    return [rng.integers(0, 256, shapes[i % len(shapes)], dtype=np.uint8) for i in range(n)]


def test_stream_yields_in_input_order_what_the_serial_path_gives():
    model = _cells_like_model()
    images = _images(9)
    keys = [f"frame{i}" for i in range(len(images))]
    frames = list(predict.stream_cells(model, zip(keys, images), batch_size=2, workers=3, pending=2))
    assert [f.key for f in frames] == keys
    for frame, image in zip(frames, images):
        assert frame.error is None
        output = predict.predict_image(model, image)
        np.testing.assert_allclose(frame.output, output, atol=1e-5)
        labels, scores = split_cells(output, CELL_SPLITTING)
        np.testing.assert_array_equal(frame.labels, labels)
        assert frame.scores.keys() == scores.keys()
    labels_only = list(predict.stream_cells(model, zip(keys, images), scores=False))
    assert all(f.scores == {} and np.array_equal(f.labels, g.labels) for f, g in zip(labels_only, frames))


def test_the_stream_runs_at_most_pending_frames_ahead_of_its_consumer():
    pulled = itertools.count()
    seen = []

    def endless():
        image = np.full((16, 16), 128, np.uint8)
        for i in itertools.count():
            seen.append(next(pulled))
            yield i, image

    pending, batch_size = 3, 2
    stream = predict.stream_cells(_cells_like_model(), endless(), batch_size=batch_size, pending=pending)
    first = [next(stream) for _ in range(2)]
    time.sleep(0.5)  # let the producer run as far ahead as it may (no timing is asserted)
    assert [f.key for f in first] == [0, 1]
    # consumed 2, in the queue at most `pending`, in the model at most one batch per concurrent pass
    assert len(seen) <= 2 + pending + batch_size * predict.concurrent_passes()
    stream.close()  # stops the producer thread
    pulled_at_close = len(seen)
    time.sleep(0.2)
    assert len(seen) == pulled_at_close
    # a pixel budget of one frame: the next frame waits until the caller is done with this one
    seen.clear()
    stream = predict.stream_cells(_cells_like_model(), endless(), pending=10, pending_pixels=16 * 16)
    first = [next(stream) for _ in range(2)]
    time.sleep(0.5)
    assert len(seen) <= 3  # consumed 2, one read and waiting for the budget
    stream.close()


def test_a_bad_image_is_that_frames_error_and_the_others_go_on():
    model = _cells_like_model()
    good = _images(2)
    items = [("a", good[0]), ("colour", np.zeros((8, 8, 3), np.uint8)),
             ("unreadable", OSError("x.tif cannot be read")), ("b", good[1])]
    frames = list(predict.stream_cells(model, items, batch_size=4))
    assert [f.key for f in frames] == ["a", "colour", "unreadable", "b"]
    assert [f.error is None for f in frames] == [True, False, False, True]
    assert "grey image" in str(frames[1].error) and "x.tif" in str(frames[2].error)
    assert frames[3].labels.shape == good[1].shape


def test_an_exception_of_the_input_iterable_itself_is_raised_after_the_frames_before_it():
    def broken():
        yield "a", _images(1)[0]
        raise RuntimeError("the input list broke")

    stream = predict.stream_cells(_cells_like_model(), broken())
    assert next(stream).key == "a"
    with pytest.raises(RuntimeError, match="input list broke"):
        next(stream)


def test_tiles_cover_every_pixel_of_a_3_channel_output(monkeypatch):
    model = _cells_like_model()
    image = np.random.default_rng(4).integers(0, 256, (90, 131), dtype=np.uint8)
    whole = predict.predict_image(model, image)
    tiled = predict.predict_image(model, image, tile=40, overlap=8, batch_size=3)
    assert tiled.shape == whole.shape == (90, 131, 3)
    assert np.isfinite(tiled).all()
    assert np.abs(tiled - whole).max() < 0.05 and np.abs(tiled - whole).mean() < 2e-3
    # the automatic tiling of big images, here made small, takes the same path in a stream
    monkeypatch.setattr(predict_core, "AUTO_TILE_PIXELS", 64 * 64)
    monkeypatch.setattr(predict_core, "AUTO_TILE", 48)
    (frame,) = predict.stream_cells(model, [("big", image)])
    assert frame.output.shape == (90, 131, 3) and np.isfinite(frame.output).all()
    assert np.abs(frame.output - whole).max() < 0.05


def _disc_cells(shape=(150, 170), radius=9, step=23):
    """Touching-free discs on a grid: labels int32 (H, W)."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx) in enumerate((y, x) for y in range(12, shape[0] - 8, step) for x in range(12, shape[1] - 8, step)):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = i + 1
    return labels


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = {(int(x), int(y)) for x, y in zip(a.ravel(), b.ravel())}
    return (len(pairs) == len({p[0] for p in pairs}) == len({p[1] for p in pairs})
            and all((x == 0) == (y == 0) for x, y in pairs))


def test_tiled_splitting_finds_the_cells_of_splitting_at_once():
    truth = _disc_cells()
    output = distance_targets(truth)  # what a perfect cells model outputs
    whole, whole_scores = split_cells(output, CELL_SPLITTING)
    assert whole.max() == truth.max()
    tiled, tiled_scores = split_cells_tiled(output, CELL_SPLITTING, tile=40, margin=24)
    assert tiled.dtype == np.int32 and _same_partition(tiled, whole)
    assert sorted(tiled_scores) == list(range(1, truth.max() + 1))
    labels_only, no_scores = split_cells_tiled(output, CELL_SPLITTING, tile=40, margin=24, scores=False)
    np.testing.assert_array_equal(labels_only, tiled)
    assert no_scores == {}
    # one tile (with its margins) is split_cells itself
    alone, _ = split_cells_tiled(output, CELL_SPLITTING, tile=170, margin=0)
    np.testing.assert_array_equal(alone, whole)


def test_a_big_frames_overlay_drawn_in_strips_is_the_whole_overlay():
    labels = _disc_cells((150, 170))
    image = (np.random.default_rng(5).integers(0, 120, labels.shape) + 100 * (labels > 0)).astype(np.uint8)
    whole = overlay_image(image, labels > 0, labels,
                          value_range=tuple(float(v) for v in np.percentile(image, [1, 99])))
    np.testing.assert_array_equal(_overlay_in_strips(image, labels > 0, labels, rows=16), whole)
