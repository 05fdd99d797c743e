"""Notebooks on a real data root that annotates only some of LIVECell's splits."""
import json

import pytest

from livecell_kit import course, data


def _root_with(tmp_path, splits):
    root = tmp_path / "real"
    for split in splits:
        path = data.annotation_path(root, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"images": [], "annotations": []}))
    return root


def test_evaluation_frames_only_train_on_the_sample(tmp_path, monkeypatch, capsys):
    root = _root_with(tmp_path, ["val"])  # like ../shared/livecell-real-dev
    monkeypatch.setenv(course.REAL_DATA_ENV, str(root))
    monkeypatch.setattr(course, "sample_root", lambda *a, **k: tmp_path / "sample")
    assert course.data_root() == root
    assert course.explored_split(root) == "val"
    assert course.training_root() == tmp_path / "sample"
    assert course.evaluation_split(root) == "val"
    out = capsys.readouterr().out
    assert "no train annotations: exploring the val split" in out
    assert "no train annotations: training on the synthetic sample" in out


def test_a_full_real_root_is_used_for_everything(tmp_path, monkeypatch):
    root = _root_with(tmp_path, data.SPLITS)
    monkeypatch.setenv(course.REAL_DATA_ENV, str(root))
    assert course.explored_split(root) == "train"
    assert course.training_root() == root
    assert course.evaluation_split(root) == "test"


def test_a_root_without_annotations_says_what_to_do(tmp_path):
    (tmp_path / "annotations").mkdir()
    with pytest.raises(FileNotFoundError, match="livecell-kit download"):
        course.explored_split(tmp_path)


def test_figures_say_synthetic_sample_unless_real_data_is_configured(tmp_path, monkeypatch):
    monkeypatch.delenv(course.REAL_DATA_ENV, raising=False)
    assert course.data_label() == "synthetic sample"
    monkeypatch.setenv(course.REAL_DATA_ENV, str(tmp_path))
    assert course.data_label() == "real LIVECell"


def test_figures_call_the_sample_synthetic_and_a_real_root_livecell(tmp_path):
    from livecell_kit import sample

    real = _root_with(tmp_path, ["val"])
    assert course.data_label(real) == "real LIVECell"
    (real / sample.STAMP_NAME).write_text("{}")  # what make_sample leaves in its folder
    assert course.data_label(real) == "synthetic sample"
