import re

import numpy as np
import pytest

from livecell_kit import checks


def _assert_not_yet(pattern, verdict):
    assert verdict.status == "not yet" and re.search(pattern, verdict.message), verdict


def test_rle_area_accepts_the_foreground_sum_and_explains_common_mistakes():
    rle = {"size": [4, 4], "counts": [3, 4, 5, 2, 2]}
    assert checks.check_rle_area.verdict(6, rle)
    _assert_not_yet("background runs", checks.check_rle_area.verdict(10, rle))
    _assert_not_yet("every pixel", checks.check_rle_area.verdict(16, rle))
    _assert_not_yet("single number", checks.check_rle_area.verdict("6", rle))


def test_conv_params():
    assert checks.check_conv_params.verdict(160, kernel=3, in_channels=1, filters=16)
    _assert_not_yet("bias", checks.check_conv_params.verdict(144, kernel=3, in_channels=1, filters=16))
    _assert_not_yet("too high", checks.check_conv_params.verdict(1000))


def test_background_accuracy():
    masks = [np.array([[0, 1], [0, 0]], np.uint8), np.zeros((2, 2), np.uint8)]
    assert checks.check_background_accuracy.verdict(7 / 8, masks)
    _assert_not_yet("foreground fraction", checks.check_background_accuracy.verdict(1 / 8, masks))
    _assert_not_yet("fraction between 0 and 1", checks.check_background_accuracy.verdict(87.5, masks))


def test_iou_and_dice_confusion():
    truth = np.zeros((4, 4), np.uint8); truth[:2] = 1          # 8 px
    pred = np.zeros((4, 4), np.uint8); pred[1:3] = 1           # 8 px, 4 shared
    assert checks.check_iou.verdict(4 / 12, truth, pred)
    _assert_not_yet("Dice", checks.check_iou.verdict(0.5, truth, pred))


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
    assert checks.check_cells_per_type.verdict({"A172": 3.0, "BV2": 9.0}, _FakeSplit())
    _assert_not_yet("missing", checks.check_cells_per_type.verdict({"A172": 3.0}, _FakeSplit()))
    _assert_not_yet("A172: 6.00 is too high", checks.check_cells_per_type.verdict({"A172": 6, "BV2": 9}, _FakeSplit()))


def test_a_checker_shows_one_styled_message_and_returns_nothing(capsys):
    assert checks.check_conv_params(160) is None
    assert capsys.readouterr().out.startswith("Correct!")
    assert checks.check_conv_params(144) is None
    out = capsys.readouterr().out
    assert out.startswith("Not yet:") and "Traceback" not in out and "160" not in out


def test_the_placeholder_gets_your_turn_and_html_is_styled():
    verdict = checks.check_conv_params.verdict(...)
    assert verdict.status == "your turn" and not verdict
    assert "border-left" in checks.check_conv_params.verdict(144)._repr_html_()


def test_call_student_reports_the_students_error_briefly():
    def broken(counts):
        return counts["nope"]

    with pytest.raises(checks.NotYet, match="raised TypeError"):
        checks.call_student(broken, [1, 2])
    with pytest.raises(checks.NotYet, match="returned None"):
        checks.call_student(lambda counts: None, [1])


def test_crops_seen_counts_epochs_batches_and_crops():
    assert checks.check_crops_seen.verdict(5 * 30 * 8, epochs=5, steps_per_epoch=30, batch_size=8)
    _assert_not_yet("counts batches", checks.check_crops_seen.verdict(150, 5, 30, 8))
    _assert_not_yet("one epoch", checks.check_crops_seen.verdict(240, 5, 30, 8))
    _assert_not_yet("too low", checks.check_crops_seen.verdict(100, 5, 30, 8))
    assert "1200" not in checks.check_crops_seen.verdict(100, 5, 30, 8).message  # never the answer


def test_hit_fractions_at_the_two_iou_thresholds():
    ious = [0.9, 0.8, 0.75, 0.6, 0.5, 0.2]
    assert checks.check_hit_fractions.verdict({0.5: 5 / 6, 0.75: 3 / 6}, ious)
    _assert_not_yet(r">=, not >", checks.check_hit_fractions.verdict({0.5: 4 / 6, 0.75: 3 / 6}, ious))
    _assert_not_yet("not a count", checks.check_hit_fractions.verdict({0.5: 5, 0.75: 3}, ious))
    _assert_not_yet("NOT found", checks.check_hit_fractions.verdict({0.5: 1 / 6, 0.75: 3 / 6}, ious))
    _assert_not_yet("missing", checks.check_hit_fractions.verdict({0.5: 5 / 6}, ious))
    assert checks.check_hit_fractions.verdict(..., ious).status == "your turn"
