import numpy as np
import pytest

from livecell_kit import checks
from livecell_kit.checks import NotYet


def test_rle_area_accepts_the_foreground_sum_and_explains_common_mistakes():
    rle = {"size": [4, 4], "counts": [3, 4, 5, 2, 2]}
    assert checks.check_rle_area(6, rle)
    with pytest.raises(NotYet, match="background runs"):
        checks.check_rle_area(10, rle)
    with pytest.raises(NotYet, match="every pixel"):
        checks.check_rle_area(16, rle)
    with pytest.raises(NotYet, match="single number"):
        checks.check_rle_area("6", rle)


def test_conv_params():
    assert checks.check_conv_params(160, kernel=3, in_channels=1, filters=16)
    with pytest.raises(NotYet, match="bias"):
        checks.check_conv_params(144, kernel=3, in_channels=1, filters=16)
    with pytest.raises(NotYet, match="too high"):
        checks.check_conv_params(1000)


def test_background_accuracy():
    masks = [np.array([[0, 1], [0, 0]], np.uint8), np.zeros((2, 2), np.uint8)]
    assert checks.check_background_accuracy(7 / 8, masks)
    with pytest.raises(NotYet, match="foreground fraction"):
        checks.check_background_accuracy(1 / 8, masks)
    with pytest.raises(NotYet, match="fraction between 0 and 1"):
        checks.check_background_accuracy(87.5, masks)


def test_iou_and_dice_confusion():
    truth = np.zeros((4, 4), np.uint8); truth[:2] = 1          # 8 px
    pred = np.zeros((4, 4), np.uint8); pred[1:3] = 1           # 8 px, 4 shared
    assert checks.check_iou(4 / 12, truth, pred)
    with pytest.raises(NotYet, match="Dice"):
        checks.check_iou(0.5, truth, pred)


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
    assert checks.check_cells_per_type({"A172": 3.0, "BV2": 9.0}, _FakeSplit())
    with pytest.raises(NotYet, match="missing"):
        checks.check_cells_per_type({"A172": 3.0}, _FakeSplit())
    with pytest.raises(NotYet, match="A172: 6.00 is too high"):
        checks.check_cells_per_type({"A172": 6, "BV2": 9}, _FakeSplit())
