"""masks.cells on tiny hand-made cells with known answers: non-overlapping labels and instance targets."""
import numpy as np
import pytest

from livecell_kit import masks

H, W = 24, 32


def square(aid, x0, y0, x1, y1):
    """Square polygon covering columns x0..x1-1 and rows y0..y1-1 (pycocotools' convention)."""
    return {"id": aid, "image_id": 1, "category_id": 1,
            "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}


def outline(region: np.ndarray) -> np.ndarray:
    """Pixels of a bool region with a 4-neighbour outside it (the frame's edge counts as outside)."""
    padded = np.pad(region, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return region & ~inner


def test_two_touching_squares_are_two_cells_split_at_their_shared_border():
    # 7 x 7 squares side by side: rows 4..10, columns 2..8 and 9..15
    anns = [square(1, 2, 4, 9, 11), square(2, 9, 4, 16, 11)]
    labels = masks.cell_labels(anns, H, W)
    assert labels.dtype == np.int32 and labels.shape == (H, W)
    expected = np.zeros((H, W), np.int32)
    expected[4:11, 2:9], expected[4:11, 9:16] = 1, 2
    np.testing.assert_array_equal(labels, expected)

    t = masks.distance_targets(labels)
    assert t.dtype == np.float32 and t.shape == (H, W, 3)
    np.testing.assert_array_equal(t[..., 0], labels > 0)
    assert np.all(t[labels == 0, 1:] == 1)  # background is 1 in both distance channels
    for k, (row, col) in ((1, (7, 5)), (2, (7, 12))):
        cell = labels == k
        # centre and innermost pixel: the middle of the square, and only there
        assert t[row, col, 1] == 0 and t[row, col, 2] == 0
        assert np.count_nonzero(t[cell, 1] == 0) == 1 and np.count_nonzero(t[cell, 2] == 0) == 1
        assert t[cell, 1].max() == pytest.approx(1.0)  # the corners, farthest from the centre
        corner = (4, col - 3)
        assert t[corner + (1,)] == pytest.approx(1.0)
        # the outline, the shared border included, is at the cell's largest boundary value:
        # 1 - 1 / 4, the centre lying 4 px from the nearest pixel outside the cell
        ring = outline(cell)
        np.testing.assert_allclose(t[ring, 2], 0.75)
        assert np.all(t[cell & ~ring, 2] < 0.75)
    # the shared border separates them: both sides are outline, in both targets
    boundary = masks.boundary_target(labels)
    assert boundary.dtype == np.uint8
    np.testing.assert_array_equal(boundary, outline(labels == 1) | outline(labels == 2))
    assert np.all(boundary[4:11, 8:10] == 1)
    assert np.all(t[4:11, 8:10, 2] == pytest.approx(0.75))


def test_overlapped_pair_shares_pixels_by_nearest_centre_and_a_duplicate_is_dropped():
    big = square(1, 2, 2, 12, 12)        # 10 x 10, rows/columns 2..11
    right = square(2, 8, 2, 18, 12)      # 10 x 10, columns 8..17: overlaps big's columns 8..11
    labels = masks.cell_labels([big, right], H, W)
    np.testing.assert_array_equal(labels > 0, masks.semantic_mask([big, right], H, W) > 0)
    # centres (6, 6) and (6, 12): column 8 is nearer big's, 10 and 11 nearer right's;
    # column 9 is a tie, won by the cell taken first (equal areas: annotation order)
    assert np.all(labels[2:12, 2:10] == 1) and np.all(labels[2:12, 10:18] == 2)

    inner = square(3, 3, 3, 12, 12)      # 9 x 9 inside big: big is 81 % covered by it
    anns = [big, right, inner]
    labels = masks.cell_labels(anns, H, W)
    np.testing.assert_array_equal(labels > 0, masks.semantic_mask(anns, H, W) > 0)
    assert set(np.unique(labels)) == {0, 2, 3}  # big, the duplicate outline, is dropped
    # right is 36 % covered by inner, so kept; shared pixels to the nearest centre,
    # inner's (7, 7) or right's (6, 12)
    assert labels[7, 9] == 3 and labels[7, 11] == 2
    assert labels[2, 8] == 2  # covered by right (and the dropped big) only
    # pixels only the dropped outline covers go to the labelled cell nearest inside it
    assert np.all(labels[2, 2:8] == 3) and np.all(labels[2:12, 2] == 3)


def test_duplicate_rule_threshold_is_75_percent():
    a = square(1, 0, 0, 4, 4)            # 16 px
    b = square(2, 1, 0, 5, 4)            # 16 px, 12 of them (75 %) covered by a: dropped
    c = square(3, 10, 0, 14, 4)
    d = square(4, 12, 0, 16, 4)          # 16 px, 8 of them (50 %) covered by c: kept
    labels = masks.cell_labels([a, b, c, d], H, W)
    assert set(np.unique(labels)) == {0, 1, 3, 4}
    assert np.all(labels[0:4, 0:5] == 1)


def test_ring_shaped_cell_has_its_centre_on_the_ring_not_in_the_hole():
    yy, xx = np.mgrid[:H, :W]
    r = np.hypot(yy - 11.5, xx - 15.5)
    ring = (r < 9) & (r >= 4)
    ann = {"id": 7, "image_id": 1, "segmentation": masks.uncompressed_rle(ring.astype(np.uint8))}
    labels = masks.cell_labels([ann], H, W)
    np.testing.assert_array_equal(labels, ring.astype(np.int32))
    t = masks.distance_targets(labels)
    centre = np.argwhere(t[..., 1] == 0)
    assert len(centre) == 1 and ring[tuple(centre[0])]
    assert t[tuple(centre[0]) + (2,)] == 0
    hole = r < 4
    assert np.all(t[hole, 0] == 0) and np.all(t[hole, 1:] == 1)
    assert t[ring, 1].max() == pytest.approx(1.0)
    # the hole's edge is outline too
    np.testing.assert_array_equal(masks.boundary_target(labels), outline(ring))


def test_cell_at_the_frame_edge_has_its_outline_there_and_a_one_pixel_cell_is_zero():
    labels = np.zeros((H, W), np.int32)
    labels[0:5, 0:5] = 1      # touches the top and left edges
    labels[10, 20] = 2        # a single pixel
    t = masks.distance_targets(labels)
    np.testing.assert_allclose(t[0, 0:5, 2], t[4, 0:5, 2])  # frame edge = outline, like the far side
    assert t[2, 2, 2] == 0 and t[0, 0, 2] > 0
    assert t[10, 20, 1] == 0 and t[10, 20, 2] == 0
    assert np.all((t >= 0) & (t <= 1))


def test_no_cells_and_bad_input():
    assert masks.cell_labels([], H, W).sum() == 0
    t = masks.distance_targets(np.zeros((H, W), np.int32))
    assert np.all(t[..., 0] == 0) and np.all(t[..., 1:] == 1)
    with pytest.raises(ValueError, match="integer \\(H, W\\) label image"):
        masks.distance_targets(np.zeros((H, W, 1), np.int32))
    with pytest.raises(ValueError, match="integer \\(H, W\\) label image"):
        masks.boundary_target(np.zeros((H, W), np.float32))
