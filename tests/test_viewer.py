"""The notebook 05 viewer: it draws the first image at once and redraws on every control."""
import io

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from PIL import Image

from livecell_kit.figures import browse as viewer
from livecell_kit.masks import overlay

ipywidgets = pytest.importorskip("ipywidgets")

SHAPE = (20, 28)


def _examples():
    """Three frames, two cell types; each frame's cell sits somewhere else, so pictures differ."""
    images, truths, probs = [], [], []
    for k in range(3):
        yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
        images.append((100 + 40 * np.sin(xx / (2 + k)) + 10 * k).astype(np.uint8))
        truth = np.zeros(SHAPE, np.uint8)
        truth[3 + k:12 + k, 4 + 3 * k:14 + 3 * k] = 1
        truths.append(truth)
        # a prediction shifted by 2 px: found, false-positive and missed pixels in every frame
        probs.append(np.roll(truth, 2, axis=1).astype(np.float32) * 0.8 + 0.1)
    return images, truths, probs, ["a.tif", "b.tif", "c.tif"], ["A172", "BV2", "A172"]


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _build(threshold=0.5):
    images, truths, probs, names, types = _examples()
    return viewer._interactive(images, truths, probs, names, types, threshold, source="synthetic sample")


def test_the_first_image_is_drawn_at_once():
    shown = _build()
    assert shown.image.value == 0 and shown.cell_type.value == "all"
    assert shown.picture.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert _pixels(shown.picture.value).std() > 0  # a real picture, not a blank canvas


@pytest.mark.parametrize("control, value", [
    ("image", 2), ("threshold", 0.95), ("opacity", 1.0), ("cell_type", "BV2")])
def test_every_control_draws_a_new_picture(control, value):
    shown = _build()
    before = shown.picture.value
    getattr(shown, control).value = value
    assert shown.picture.value != before
    assert _pixels(shown.picture.value).shape == _pixels(before).shape


def test_each_outcome_toggle_redraws_and_its_colour_goes():
    shown = _build()
    blue = np.asarray(overlay.COLOURS["false_negative"]) * 255

    def bluish_pixels():
        rgb = _pixels(shown.picture.value).astype(float)
        return int((np.abs(rgb - blue).sum(axis=2) < 60).sum())

    with_missed = bluish_pixels()
    before = shown.picture.value
    shown.outcomes["false_negative"].value = False
    assert shown.picture.value != before
    assert bluish_pixels() < with_missed  # the legend keeps its blue patch; the image loses its blue


def test_choosing_a_cell_type_selects_and_draws_its_first_image():
    shown = _build()
    shown.cell_type.value = "BV2"
    assert [label for label, _ in shown.image.options] == ["b.tif"] and shown.image.value == 1
    shown.cell_type.value = "A172"
    assert [label for label, _ in shown.image.options] == ["a.tif", "c.tif"] and shown.image.value == 0
    shown.image.value = 2
    shown.cell_type.value = "all"  # the chosen image stays chosen
    assert shown.image.value == 2 and len(shown.image.options) == 3


def test_missed_cells_stay_blue_not_teal():
    truth = np.array([[1, 1, 0, 0]], np.uint8)
    pred = np.array([[1, 0, 1, 0]], bool)
    layers = overlay.outcome_layers(truth, pred)
    assert sum(m.astype(int) for m in layers.values()).max() == 1  # disjoint: no colour blends with another
    rgb = overlay.overlay(np.full((1, 4), 128, np.uint8), layers, alpha=1.0)
    assert np.allclose(rgb[0, 1], overlay.COLOURS["false_negative"])
    assert np.allclose(rgb[0, 0], overlay.COLOURS["true_positive"])


def test_static_viewer_has_one_panel_per_cell_type_and_a_legend():
    images, truths, probs, names, types = _examples()
    fig = viewer.viewer(images, truths, probs, names, types, static=True, source="synthetic sample")
    assert len([ax for ax in fig.axes if ax.images]) == 2
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == list(overlay.OUTCOME_LABELS.values())
    assert "synthetic sample" in fig._suptitle.get_text()


def test_viewer_rejects_lists_of_different_lengths():
    images, truths, probs, names, types = _examples()
    with pytest.raises(ValueError, match="same number"):
        viewer.viewer(images, truths[:2], probs, names, types, static=True)


def test_a_live_viewer_stores_a_hint_to_rerun_its_cell(monkeypatch):
    """A reopened notebook has lost the widget ("model not found"): its stored output says to rerun the cell."""
    shown_objects = []
    monkeypatch.setattr(viewer, "display", shown_objects.append)
    images, truths, probs, names, types = _examples()
    live = viewer.viewer(images, truths, probs, names, types, static=False)
    assert isinstance(live, viewer.Viewer) and shown_objects[0] is live
    bundle = live._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle  # still the interactive widget
    assert bundle["text/plain"] == viewer.RERUN_HINT  # what a page without the widget shows
    notes = [o for o in shown_objects[1:] if hasattr(o, "_repr_html_")]
    assert len(notes) == 1 and "Run this cell again" in notes[0]._repr_html_()
    assert "model not found" in notes[0]._repr_html_()


def test_static_plots_draw_a_figure_and_no_widget(monkeypatch):
    monkeypatch.setenv("LIVECELL_KIT_STATIC_PLOTS", "1")
    monkeypatch.setattr(viewer, "display", lambda *a: pytest.fail("a static viewer displays no widget"))
    images, truths, probs, names, types = _examples()
    fig = viewer.viewer(images, truths, probs, names, types)
    assert isinstance(fig, matplotlib.figure.Figure)
