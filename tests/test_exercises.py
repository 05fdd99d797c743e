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


def test_background_accuracy():
    masks = [np.array([[0, 1], [0, 0]], np.uint8), np.zeros((2, 2), np.uint8)]
    assert exercises.check_background_accuracy.verdict(7 / 8, masks)
    _assert_not_yet("foreground fraction", exercises.check_background_accuracy.verdict(1 / 8, masks))
    _assert_not_yet("fraction between 0 and 1", exercises.check_background_accuracy.verdict(87.5, masks))


def test_iou_and_dice_confusion():
    truth = np.zeros((4, 4), np.uint8); truth[:2] = 1          # 8 px
    pred = np.zeros((4, 4), np.uint8); pred[1:3] = 1           # 8 px, 4 shared
    assert exercises.check_iou.verdict(4 / 12, truth, pred)
    _assert_not_yet("Dice", exercises.check_iou.verdict(0.5, truth, pred))


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
