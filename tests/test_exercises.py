import re

import numpy as np
import pytest

from livecell_kit import exercises


def _assert_not_yet(pattern, verdict):
    assert verdict.status == "not yet" and re.search(pattern, verdict.message), verdict


_CELL_RLE = {"size": [4, 4], "counts": [3, 4, 5, 2, 2]}  # 6 cell pixels


def _rle_area(counts):
    return sum(counts[1::2])


def test_rle_area_accepts_a_genuine_function_and_shows_no_stored_answer():
    verdict = exercises.check_rle_area.verdict(_rle_area, _CELL_RLE, 6.0)
    assert verdict, verdict
    assert "6 px" in verdict.message and "area field" in verdict.message


def test_rle_area_rejects_the_stored_area_and_other_constants():
    stored = lambda counts: 6.0  # noqa: E731 - the annotation's area, right for this cell only
    _assert_not_yet("stored area", exercises.check_rle_area.verdict(stored, _CELL_RLE, 6.0))
    verdict = exercises.check_rle_area.verdict(stored, _CELL_RLE)
    _assert_not_yet("test mask", verdict)
    _assert_not_yet("should be a function", exercises.check_rle_area.verdict(6, _CELL_RLE))


def test_rle_area_explains_common_mistakes_without_the_answer():
    background = exercises.check_rle_area.verdict(lambda c: sum(c[0::2]), _CELL_RLE)
    _assert_not_yet("background runs", background)
    _assert_not_yet("every pixel", exercises.check_rle_area.verdict(sum, _CELL_RLE))
    _assert_not_yet("single number", exercises.check_rle_area.verdict(lambda c: str(sum(c[1::2])), _CELL_RLE))
    # the function must also be right when the first run is an empty background run (a cell at pixel 0)
    _assert_not_yet("too", exercises.check_rle_area.verdict(lambda c: sum(c[1::2]) - (c[0] == 0), _CELL_RLE))
    assert not re.search(r"\b6\b", background.message)  # the right area is never shown


def test_a_function_left_as_its_placeholder_gets_your_turn():
    def rle_area(counts):
        """Area in pixels."""
        ...  # your code: return the result

    assert exercises.check_rle_area.verdict(rle_area, _CELL_RLE).status == "your turn"

    def forgot_return(counts):
        sum(counts[1::2])

    _assert_not_yet("returned None", exercises.check_rle_area.verdict(forgot_return, _CELL_RLE))


def _conv_params(kernel, in_channels, filters):
    return kernel * kernel * in_channels * filters + filters


class _FakeConv:
    """What the checker reads from a Keras convolution layer."""

    def __init__(self, kernel, in_channels, filters, use_bias=True):
        self.kernel_size, self.filters, self.use_bias = (kernel, kernel), filters, use_bias
        self.input = type("Tensor", (), {"shape": (None, None, None, in_channels)})()
        self._n = kernel * kernel * in_channels * filters + (filters if use_bias else 0)

    def count_params(self):
        return self._n


class _FakeModel:
    name = "tiny"
    layers = [_FakeConv(3, 1, 4), object(), _FakeConv(3, 4, 4, use_bias=False), _FakeConv(1, 4, 1)]

    def count_params(self):
        return 4 * 9 + 4 + 9 * 16 + 5 + 999


def test_conv_params_accepts_a_genuine_function_on_fresh_cases_and_the_model():
    verdict = exercises.check_conv_params.verdict(_conv_params, _FakeModel())
    assert verdict, verdict
    assert "2 convolutions of tiny" in verdict.message  # the layer without a bias is not counted


def test_conv_params_rejects_the_number_from_the_summary_and_explains_mistakes():
    _assert_not_yet("should be a function", exercises.check_conv_params.verdict(160))
    _assert_not_yet("too", exercises.check_conv_params.verdict(lambda k, c, f: 160))
    _assert_not_yet("one bias", exercises.check_conv_params.verdict(lambda k, c, f: k * k * c * f))
    _assert_not_yet("per input channel", exercises.check_conv_params.verdict(lambda k, c, f: k * k * f + f))
    wrong_on_model = lambda k, c, f: _conv_params(k, c, f) + (c == 1)  # noqa: E731 - off on the 1-channel layer
    _assert_not_yet("in_channels=1", exercises.check_conv_params.verdict(wrong_on_model, _FakeModel()))


# ---------------------------------------------------------------- exercise 03a: the decoder block

def _decoder_blocks():
    """The right decoder block and its typical mistakes, as students write them in notebook 03."""
    from keras import layers

    def up(x, filters, **kw):
        return layers.Conv2DTranspose(filters, 2, strides=2, padding="same", **kw)(x)

    def conv(x, filters, kernel=3, **kw):
        return layers.Conv2D(filters, kernel, padding=kw.pop("padding", "same"), activation=kw.pop("activation", "relu"),
                             **kw)(x)

    def right(x, skip, filters):
        x = layers.Concatenate()([up(x, filters), skip])
        return conv(conv(x, filters), filters)

    def separate_relus(x, skip, filters):  # Conv2D + ReLU layers, as livecell_kit.model writes it: also right
        x = layers.Concatenate()([up(x, filters), skip])
        for _ in range(2):
            x = layers.ReLU()(layers.Conv2D(filters, 3, padding="same")(x))
        return x

    return {
        "right": right,
        "separate relus": separate_relus,
        "no concatenate": lambda x, skip, f: conv(conv(up(x, f), f), f),
        "concatenate first": lambda x, skip, f: conv(conv(up(layers.Concatenate()([x, skip]), f), f), f),
        "one convolution": lambda x, skip, f: conv(layers.Concatenate()([up(x, f), skip]), f),
        "hard-coded filters": lambda x, skip, f: conv(conv(layers.Concatenate()([up(x, f), skip]), 16), 16),
        "twice the filters": lambda x, skip, f: conv(conv(layers.Concatenate()([up(x, f), skip]), 2 * f), 2 * f),
        "skip first": lambda x, skip, f: conv(conv(layers.Concatenate()([skip, up(x, f)]), f), f),
        "no relu": lambda x, skip, f: conv(conv(layers.Concatenate()([up(x, f), skip]), f, activation=None), f),
        "no up-sampling": lambda x, skip, f: conv(conv(x, f), f),
        "bilinear": lambda x, skip, f: conv(conv(layers.Concatenate()([layers.UpSampling2D(2)(x), skip]), f), f),
        "valid padding": lambda x, skip, f: conv(conv(layers.Concatenate()([up(x, f), skip]), f, padding="valid"), f),
        "no bias": lambda x, skip, f: conv(conv(layers.Concatenate()([up(x, f), skip]), f, use_bias=False), f),
        "no return": lambda x, skip, f: None,
    }


def test_decoder_block_checker_accepts_the_seed_block_and_the_kits_own():
    blocks = _decoder_blocks()
    for name in ("right", "separate relus"):
        verdict = exercises.check_decoder_block.verdict(blocks[name])
        assert verdict, (name, verdict)
        assert "3 fresh blocks" in verdict.message
    assert exercises.check_decoder_block.verdict(exercises.kit_decoder_block)


def test_decoder_block_checker_names_each_typical_mistake():
    blocks = _decoder_blocks()
    expected = {"no concatenate": "never uses skip", "concatenate first": "Up-sample x first",
                "one convolution": "1 convolution after the concatenate; the U-Net's blocks have two",
                "hard-coded filters": "with filters=12, your first convolution has 16 filters",
                "twice the filters": "has 24 filters", "skip first": r"\[up-sampled x, skip\] in that order",
                "no relu": "followed by a ReLU", "no up-sampling": "does not up-sample",
                "bilinear": "not with UpSampling2D", "valid padding": 'padding="same"',
                "no bias": "keep its bias", "no return": "returned None"}
    for name, message in expected.items():
        _assert_not_yet(message, exercises.check_decoder_block.verdict(blocks[name]))
    _assert_not_yet("should be a function", exercises.check_decoder_block.verdict(64))
    _assert_not_yet("raised NameError", exercises.check_decoder_block.verdict(lambda x, skip, f: undefined_name))  # noqa: F821


def test_decoder_block_checker_says_your_turn_to_the_placeholder():
    def decoder_block(x, skip, filters):
        """Up-sample x, concatenate skip, two 3×3 convolutions."""
        ...  # your code: return the result

    assert exercises.check_decoder_block.verdict(decoder_block).status == "your turn"
    assert exercises.check_decoder_block.verdict(...).status == "your turn"


def test_background_accuracy():
    masks = [np.array([[0, 1], [0, 0]], np.uint8), np.zeros((2, 2), np.uint8)]
    assert exercises.check_background_accuracy.verdict(7 / 8, masks)
    _assert_not_yet("foreground fraction", exercises.check_background_accuracy.verdict(1 / 8, masks))
    _assert_not_yet("fraction between 0 and 1", exercises.check_background_accuracy.verdict(87.5, masks))


def _iou_dice(tp, fp, fn, tn):
    if tp + fp + fn == 0:
        return 1.0, 1.0
    return tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


def test_iou_dice_accepts_a_genuine_function_and_matches_the_kit():
    from livecell_kit.evaluate import confusion_metrics

    verdict = exercises.check_iou_dice.verdict(_iou_dice)
    assert verdict, verdict
    for counts in [(5, 3, 2, 90), (0, 0, 0, 10), (0, 4, 0, 6)]:  # the checker's rule is the kit's
        kit = confusion_metrics(*counts)
        assert np.allclose(_iou_dice(*counts), (kit["iou"], kit["dice"]))


def test_iou_dice_rejects_a_wrong_function_without_the_answer():
    half = exercises.check_iou_dice.verdict(lambda tp, fp, fn, tn: (tp / (tp + fp + fn + 1), 0.5))
    _assert_not_yet("too low", half)
    assert "0.8" not in half.message  # the expected IoU is never shown
    _assert_not_yet("two numbers", exercises.check_iou_dice.verdict(lambda tp, fp, fn, tn: tp / (tp + fp + fn)))
    _assert_not_yet("should be a function", exercises.check_iou_dice.verdict(0.83))


@pytest.mark.parametrize("mistake, pattern", [
    (lambda tp, fp, fn, tn: _iou_dice(tp, fp, fn, tn)[::-1], "swapped"),
    (lambda tp, fp, fn, tn: (tp / (tp + fp + fn + tn), 2 * tp / (2 * tp + fp + fn + tn)), "leave TN out"),
    (lambda tp, fp, fn, tn: ((tp + tn) / (tp + fp + fn + tn), _iou_dice(tp, fp, fn, tn)[1]), "leave TN out"),
    (lambda tp, fp, fn, tn: (tp / ((tp + fp) + (tp + fn)), _iou_dice(tp, fp, fn, tn)[1]), "overlap twice"),
    (lambda tp, fp, fn, tn: (tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)), "0 / 0"),
    (lambda tp, fp, fn, tn: (0.0, 0.0) if tp + fp + fn == 0 else _iou_dice(tp, fp, fn, tn), "1.0 for both"),
    (lambda tp, fp, fn, tn: (_iou_dice(tp, fp, fn, tn)[0], 2 * tp / (tp + fp + fn) if tp else 0.0), "Dice doubles"),
])
def test_iou_dice_names_each_typical_mistake(mistake, pattern):
    _assert_not_yet(pattern, exercises.check_iou_dice.verdict(mistake))


def test_iou_dice_placeholder_gets_your_turn():
    def iou_dice(tp, fp, fn, tn):
        """IoU and Dice of the cell class."""
        ...  # your code: return the result

    assert exercises.check_iou_dice.verdict(iou_dice).status == "your turn"


class _FakeSplit:
    images = [{"id": 1, "file_name": "A172_Phase_1.tif"}, {"id": 2, "file_name": "A172_Phase_2.tif"},
              {"id": 3, "file_name": "BV2_Phase_1.tif"}]
    _anns = {1: [{}] * 2, 2: [{}] * 4, 3: [{}] * 9}

    def annotations_for(self, image_id):
        return self._anns[image_id]

    def cell_counts(self):
        return np.array([len(self._anns[image["id"]]) for image in self.images])

    def cell_type(self, image):
        return image["file_name"].split("_Phase")[0]


def test_cells_per_type():
    assert exercises.check_cells_per_type.verdict({"A172": 3.0, "BV2": 9.0}, _FakeSplit())
    _assert_not_yet("missing", exercises.check_cells_per_type.verdict({"A172": 3.0}, _FakeSplit()))
    _assert_not_yet("A172: 7.00 is too high", exercises.check_cells_per_type.verdict({"A172": 7, "BV2": 9}, _FakeSplit()))
    _assert_not_yet("A172: that is the total", exercises.check_cells_per_type.verdict({"A172": 6.0, "BV2": 9}, _FakeSplit()))


def test_a_checker_shows_one_styled_message_and_returns_nothing(capsys):
    assert exercises.check_conv_params(_conv_params) is None
    assert capsys.readouterr().out.startswith("Correct!")
    assert exercises.check_conv_params(lambda k, c, f: k * k * c * f) is None
    out = capsys.readouterr().out
    assert out.startswith("Not yet:") and "Traceback" not in out and "return" not in out


def test_the_placeholder_gets_your_turn_and_html_is_styled():
    verdict = exercises.check_conv_params.verdict(...)
    assert verdict.status == "your turn" and not verdict
    assert "border-left" in exercises.check_conv_params.verdict(lambda k, c, f: 0)._repr_html_()


def test_call_student_reports_the_students_error_briefly():
    def broken(counts):
        return counts["nope"]

    with pytest.raises(exercises.NotYet, match="raised TypeError"):
        exercises.call_student(broken, [1, 2])
    with pytest.raises(exercises.NotYet, match="returned None"):
        exercises.call_student(lambda counts: None, [1])


def test_crops_seen_counts_epochs_batches_and_crops():
    assert exercises.check_crops_seen.verdict(5 * 30 * 8, epochs=5, steps_per_epoch=30, batch_size=8)
    _assert_not_yet("counts batches", exercises.check_crops_seen.verdict(150, 5, 30, 8))
    _assert_not_yet("one epoch", exercises.check_crops_seen.verdict(240, 5, 30, 8))
    _assert_not_yet("too low", exercises.check_crops_seen.verdict(100, 5, 30, 8))
    assert "1200" not in exercises.check_crops_seen.verdict(100, 5, 30, 8).message  # never the answer


def test_hit_fractions_at_the_two_iou_thresholds():
    ious = [0.9, 0.8, 0.75, 0.6, 0.5, 0.2]
    assert exercises.check_hit_fractions.verdict({0.5: 5 / 6, 0.75: 3 / 6}, ious)
    _assert_not_yet(r">=, not >", exercises.check_hit_fractions.verdict({0.5: 4 / 6, 0.75: 3 / 6}, ious))
    _assert_not_yet("not a count", exercises.check_hit_fractions.verdict({0.5: 5, 0.75: 3}, ious))
    _assert_not_yet("NOT found", exercises.check_hit_fractions.verdict({0.5: 1 / 6, 0.75: 3 / 6}, ious))
    _assert_not_yet("missing", exercises.check_hit_fractions.verdict({0.5: 5 / 6}, ious))
    text_keys = exercises.check_hit_fractions.verdict({"0.5": 5 / 6, "0.75": 3 / 6}, ious)
    _assert_not_yet("keys must be numbers", text_keys)
    assert "missing" not in text_keys.message
    assert exercises.check_hit_fractions.verdict(..., ious).status == "your turn"


# ---------------------------------------------------------------- exercise 06: the watershed's seeds

def _seeds(foreground, centre, boundary, splitting):
    return ((foreground >= splitting.foreground_threshold) & (centre < splitting.centre_threshold)
            & (boundary < splitting.boundary_threshold))


def test_seeds_checker_accepts_the_three_tests_on_fresh_frames():
    from livecell_kit import presets
    verdict = exercises.check_seeds.verdict(_seeds, presets.CELL_SPLITTING)
    assert verdict, verdict
    assert "fresh frames" in verdict.message and "seeds for" in verdict.message


def test_seeds_checker_names_each_typical_mistake():
    from livecell_kit import presets
    splitting = presets.CELL_SPLITTING
    no_foreground = lambda f, c, b, s: (c < s.centre_threshold) & (b < s.boundary_threshold)  # noqa: E731
    centre_reversed = lambda f, c, b, s: (f >= s.foreground_threshold) & (c > s.centre_threshold)  # noqa: E731
    centre_only = lambda f, c, b, s: (f >= s.foreground_threshold) & (c < s.centre_threshold)  # noqa: E731
    too_strict = lambda f, c, b, s: _seeds(f, c, b, s) & (c < 0.5 * s.centre_threshold)  # noqa: E731
    numbered = lambda f, c, b, s: _seeds(f, c, b, s).astype(int) * 7  # noqa: E731
    _assert_not_yet("outside the foreground", exercises.check_seeds.verdict(no_foreground, splitting))
    _assert_not_yet("below\\* splitting.centre_threshold", exercises.check_seeds.verdict(centre_reversed, splitting))
    _assert_not_yet("boundary_threshold", exercises.check_seeds.verdict(centre_only, splitting))
    _assert_not_yet("too few seed pixels", exercises.check_seeds.verdict(too_strict, splitting))
    _assert_not_yet("True/False mask", exercises.check_seeds.verdict(numbered, splitting))
    _assert_not_yet("shape", exercises.check_seeds.verdict(lambda f, c, b, s: _seeds(f, c, b, s)[1:], splitting))


def test_seeds_checker_says_your_turn_to_the_placeholder():
    from livecell_kit import presets

    def find_seeds(foreground, centre, boundary, splitting):
        """True where a pixel is a seed."""
        ...  # your code: return the result

    assert exercises.check_seeds.verdict(find_seeds, presets.CELL_SPLITTING).status == "your turn"


# ---------------------------------------------------------------- exercise 01: one image's outlines

class _PolygonSplit:
    """Two images of made-up cells, as the outline checker reads a split."""

    name = "fake"
    images = [{"id": 11, "file_name": "A172_Phase_1.tif"}, {"id": 12, "file_name": "A172_Phase_2.tif"},
              {"id": 13, "file_name": "BV2_Phase_1.tif"}]
    _anns = {11: [[[1.0, 2.0, 8.0, 2.0, 8.0, 9.0]]],
             12: [[[3.0, 1.0, 9.0, 4.0, 5.0, 7.5, 2.0, 6.0]], [[20.0, 21.0, 30.0, 22.0, 25.0, 33.0]]],
             13: [[[0.5, 0.5, 4.0, 1.0, 2.0, 5.0]], [[10.0, 12.0, 16.0, 12.0, 13.0, 18.0]],
                  [[40.0, 2.0, 44.0, 3.0, 41.0, 9.0]]]}

    def annotations_for(self, image_id):
        return [{"id": k, "image_id": image_id, "segmentation": seg} for k, seg in enumerate(self._anns[image_id])]


def _outlines(split, image_id):
    return [np.reshape(poly, (-1, 2)) for ann in split.annotations_for(image_id) for poly in ann["segmentation"]]


def test_outlines_checker_accepts_a_genuine_function_on_fresh_images():
    verdict = exercises.check_outlines.verdict(_outlines, _PolygonSplit())
    assert verdict, verdict
    assert "two polygons" in verdict.message and "without cells" in verdict.message
    as_lists = lambda split, i: [np.reshape(p, (-1, 2)).tolist() for p in _outlines(split, i)]  # noqa: E731
    assert exercises.check_outlines.verdict(as_lists, _PolygonSplit())


def test_outlines_checker_rejects_wrong_answers():
    _assert_not_yet("should be a function", exercises.check_outlines.verdict([], _PolygonSplit()))
    nothing = exercises.check_outlines.verdict(lambda s, i: [], _PolygonSplit())
    _assert_not_yet(r"polygon\(s\); that image has more", nothing)
    shifted = lambda s, i: [xy + 1 for xy in _outlines(s, i)]  # noqa: E731
    _assert_not_yet("a polygon differs", exercises.check_outlines.verdict(shifted, _PolygonSplit()))
    _assert_not_yet("got dict", exercises.check_outlines.verdict(lambda s, i: {"x": 1}, _PolygonSplit()))
    _assert_not_yet("returned None", exercises.check_outlines.verdict(lambda s, i: None, _PolygonSplit()))


def test_outlines_checker_names_the_typical_mistakes():
    split = _PolygonSplit()
    flat = lambda s, i: [p for a in s.annotations_for(i) for p in a["segmentation"]]  # noqa: E731
    swapped = lambda s, i: [xy[:, ::-1] for xy in _outlines(s, i)]  # noqa: E731
    columns = lambda s, i: [np.reshape(p, (2, -1)).T  # noqa: E731 - all x first, then all y
                            for a in s.annotations_for(i) for p in a["segmentation"]]
    transposed = lambda s, i: [xy.T for xy in _outlines(s, i)]  # noqa: E731
    first_only = lambda s, i: [np.reshape(a["segmentation"][0], (-1, 2)) for a in s.annotations_for(i)]  # noqa: E731
    records = lambda s, i: s.annotations_for(i)  # noqa: E731
    first_image = lambda s, i: _outlines(s, s.images[0]["id"])  # noqa: E731 - ignores image_id
    _assert_not_yet("flat list", exercises.check_outlines.verdict(flat, split))
    _assert_not_yet("x and y are swapped", exercises.check_outlines.verdict(swapped, split))
    _assert_not_yet(r"not \(2, -1\)", exercises.check_outlines.verdict(columns, split))
    _assert_not_yet(r"\(2, N\)", exercises.check_outlines.verdict(transposed, split))
    _assert_not_yet(r"not only segmentation\[0\]", exercises.check_outlines.verdict(first_only, split))
    _assert_not_yet("annotation dicts", exercises.check_outlines.verdict(records, split))
    _assert_not_yet("function's arguments", exercises.check_outlines.verdict(first_image, split))


def test_outlines_checker_says_your_turn_to_the_placeholder():
    def outlines(split, image_id):
        """Polygons of one image."""
        ...  # your code: return the result

    assert exercises.check_outlines.verdict(outlines, _PolygonSplit()).status == "your turn"
    assert exercises.check_outlines.verdict(..., _PolygonSplit()).status == "your turn"


# ---------------------------------------------------------------- exercise 02b: decoding an RLE

def _decode_rle(rle):
    height, width = rle["size"]
    runs = np.repeat(np.arange(len(rle["counts"])) % 2, rle["counts"])
    return runs.reshape((height, width), order="F").astype(np.uint8)


_NOTEBOOK_RLE = {"size": [3, 5], "counts": [0, 2, 4, 3, 6]}  # first pixel is a cell


def test_decode_rle_accepts_a_numpy_decoder_matching_pycocotools():
    verdict = exercises.check_decode_rle.verdict(_decode_rle, _NOTEBOOK_RLE)
    assert verdict, verdict
    assert "3×5" in verdict.message and "pycocotools" in verdict.message
    transposed_reshape = lambda r: _decode_rle(r).T.copy().reshape(r["size"][::-1]).T  # noqa: E731 - (W, H) then .T
    assert exercises.check_decode_rle.verdict(transposed_reshape, _NOTEBOOK_RLE)


def test_decode_rle_names_the_typical_mistakes():
    def row_major(rle):
        height, width = rle["size"]
        return np.repeat(np.arange(len(rle["counts"])) % 2, rle["counts"]).reshape(height, width).astype(np.uint8)

    def cell_first(rle):
        return 1 - _decode_rle(rle)

    def both(rle):
        return 1 - row_major(rle)

    _assert_not_yet("row by row", exercises.check_decode_rle.verdict(row_major, _NOTEBOOK_RLE))
    _assert_not_yet("first run is background", exercises.check_decode_rle.verdict(cell_first, _NOTEBOOK_RLE))
    _assert_not_yet("two things differ", exercises.check_decode_rle.verdict(both, _NOTEBOOK_RLE))
    _assert_not_yet(r"\(W, H\)", exercises.check_decode_rle.verdict(lambda r: _decode_rle(r).T, _NOTEBOOK_RLE))
    _assert_not_yet("flat", exercises.check_decode_rle.verdict(lambda r: _decode_rle(r).ravel(), _NOTEBOOK_RLE))
    _assert_not_yet("255", exercises.check_decode_rle.verdict(lambda r: 255 * _decode_rle(r), _NOTEBOOK_RLE))
    _assert_not_yet("uint8", exercises.check_decode_rle.verdict(lambda r: _decode_rle(r) > 0, _NOTEBOOK_RLE))


def test_decode_rle_rejects_wrong_answers_and_pycocotools_itself():
    from pycocotools import mask as mask_utils

    def borrowed(rle):
        return mask_utils.decode(mask_utils.frPyObjects(rle, *rle["size"]))

    _assert_not_yet("with numpy", exercises.check_decode_rle.verdict(borrowed, _NOTEBOOK_RLE))
    notebook_size = lambda r: np.zeros((3, 5), np.uint8)  # noqa: E731 - the cell's shape, hard-coded
    _assert_not_yet(r"not \(H, W\)", exercises.check_decode_rle.verdict(notebook_size, _NOTEBOOK_RLE))
    empty = lambda r: np.zeros(r["size"], np.uint8)  # noqa: E731
    _assert_not_yet("too few cell pixels", exercises.check_decode_rle.verdict(empty, _NOTEBOOK_RLE))
    positions = lambda r: np.isin(np.arange(np.prod(r["size"])), np.cumsum(r["counts"])).reshape(  # noqa: E731
        r["size"], order="F").astype(np.uint8)
    _assert_not_yet("length of a run", exercises.check_decode_rle.verdict(positions, _NOTEBOOK_RLE))
    _assert_not_yet("compressed", exercises.check_decode_rle.verdict(_decode_rle, {"size": [2, 2], "counts": "04"}))


def test_decode_rle_says_your_turn_to_the_placeholder():
    def decode_rle(rle):
        """The mask of an RLE."""
        ...  # your code: return the result

    assert exercises.check_decode_rle.verdict(decode_rle, _NOTEBOOK_RLE).status == "your turn"
# ---------------------------------------------------------------- exercise 04c: the Dice loss

def _dice_loss(y_true, y_pred, smooth=1.0, axes=(1, 2, 3), twice=2.0, top=None):
    import tensorflow as tf

    overlap = tf.reduce_sum(y_true * y_pred, axis=axes)
    total = tf.reduce_sum(y_true, axis=axes) + tf.reduce_sum(y_pred, axis=axes)
    return 1.0 - (twice * overlap + (smooth if top is None else top)) / (total + smooth)


def test_dice_loss_checkers_reference_is_the_kits_dice_loss():
    import numpy as np

    from livecell_kit import train
    from livecell_kit.exercises import training

    truth, prediction = training._dice_cases()
    np.testing.assert_allclose(1.0 - training._soft_dice(truth, prediction), train.dice_loss(truth, prediction),
                               rtol=1e-6)


def test_dice_loss_checker_accepts_a_per_image_soft_dice_loss():
    verdict = exercises.check_dice_loss.verdict(_dice_loss)
    assert verdict, verdict
    assert "fresh crops" in verdict.message and "empty" in verdict.message


def test_dice_loss_checker_names_each_typical_mistake():
    import numpy as np
    import tensorflow as tf

    check = exercises.check_dice_loss.verdict
    _assert_not_yet("nan or inf.*smoothing", check(lambda t, p: _dice_loss(t, p, smooth=0.0)))
    _assert_not_yet("Dice score.*1 − Dice", check(lambda t, p: 1.0 - _dice_loss(t, p)))
    _assert_not_yet("whole batch.*per image", check(lambda t, p: _dice_loss(t, p, axes=(0, 1, 2, 3))))
    _assert_not_yet("shape", check(lambda t, p: _dice_loss(t, p, axes=(1, 2))))  # (B, 1): channel kept
    _assert_not_yet("numerator", check(lambda t, p: _dice_loss(t, p, top=0.0)))
    _assert_not_yet("tiny epsilon", check(lambda t, p: _dice_loss(t, p, smooth=1e-7)))
    _assert_not_yet("twice", check(lambda t, p: _dice_loss(t, p, twice=1.0)))
    mean = lambda t, p: 1.0 - (2 * tf.reduce_mean(t * p, (1, 2, 3)) + 1) / (  # noqa: E731
        tf.reduce_mean(t, (1, 2, 3)) + tf.reduce_mean(p, (1, 2, 3)) + 1)
    _assert_not_yet("do not average", check(mean))
    _assert_not_yet("thresholded", check(lambda t, p: _dice_loss(t, tf.cast(p >= 0.5, tf.float32))))
    numpy_sums = lambda t, p: 1.0 - (2 * np.sum(t * p, axis=(1, 2, 3)) + 1) / (  # noqa: E731
        np.sum(t, axis=(1, 2, 3)) + np.sum(p, axis=(1, 2, 3)) + 1)
    _assert_not_yet("not NumPy", check(numpy_sums))
    _assert_not_yet("differs from the kit's on", check(lambda t, p: _dice_loss(t, p) + 0.1))
    _assert_not_yet("raised", check(lambda t, p: tf.reduce_sum(t, axis=4)))
    _assert_not_yet("returned None", check(lambda t, p: None))


def test_dice_loss_checker_says_your_turn_to_the_placeholder_and_never_shows_the_kits_values():
    def dice_loss(y_true, y_pred):
        """1 − soft Dice per image."""
        ...  # your code: return the result

    assert exercises.check_dice_loss.verdict(dice_loss).status == "your turn"
    wrong = exercises.check_dice_loss.verdict(lambda t, p: _dice_loss(t, p) + 0.1).message
    assert not re.search(r"\d\.\d{2}", wrong)  # no loss value, so no answer to copy
