"""The model the package ships: checked against its card, loaded, and used when no --model is given."""
import json
import shutil

import numpy as np
import pytest
import tifffile

from livecell_kit import cli, pretrained, presets
from livecell_kit.train import check_segmentation_model


def test_the_shipped_model_matches_its_card_and_predicts_cells():
    card = pretrained.model_card()
    assert card["name"] == presets.PRETRAINED_MODEL in pretrained.available()
    assert "synthetic sample" in card["trained_on"] and "CC BY-NC" in card["licence"]
    for figures in (card["real_dev"], card["sample_test"]):
        assert 0 <= figures["AP"] <= 1 and 0 <= figures["dice"] <= 1 and figures["frames"] > 0
    model = pretrained.load_pretrained()
    check_segmentation_model(model, "pretrained")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}  # runs on any CPU
    out = model.predict(np.full((1, 64, 96, 1), 128, np.float32), verbose=0)
    assert out.shape == (1, 64, 96, 3) and np.isfinite(out).all()


@pytest.fixture
def copied_folder(tmp_path, monkeypatch):
    folder = tmp_path / "pretrained"
    shutil.copytree(pretrained.FOLDER, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(pretrained, "FOLDER", folder)
    return folder


def test_changed_bytes_are_refused_naming_the_file_and_the_fix(copied_folder):
    path = copied_folder / f"{presets.PRETRAINED_MODEL}.keras"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"cells-sample\.keras.*differ from its card.*reinstall"):
        pretrained.pretrained_path()
    path.unlink()
    with pytest.raises(FileNotFoundError, match="missing from this installation.*reinstall"):
        pretrained.pretrained_path()


def test_an_unknown_name_or_a_broken_card_says_what_there_is(copied_folder):
    with pytest.raises(FileNotFoundError, match="no pretrained model named 'nope'.*cells-sample"):
        pretrained.model_card("nope")
    card = copied_folder / f"{presets.PRETRAINED_MODEL}.json"
    card.write_bytes(b"\xef\xbb\xbf" + card.read_bytes())  # a BOM (an editor's save) is fine
    assert pretrained.model_card()["name"] == presets.PRETRAINED_MODEL
    card.write_text(card.read_text(encoding="utf-8-sig")[:50])
    with pytest.raises(ValueError, match="card is not valid JSON"):
        pretrained.model_card()


def test_predict_and_measure_without_model_use_the_shipped_one(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for name in ("A172_Phase_C7_1_00d00h00m_1.tif", "A172_Phase_C7_1_01d00h00m_1.tif"):
        tifffile.imwrite(frames / name, rng.integers(90, 140, (96, 128), dtype=np.uint8))
    assert cli.main(["predict", "--out", str(tmp_path / "pred"), str(frames)]) == 0
    assert cli.main(["measure", "--out", str(tmp_path / "measured"), str(frames)]) == 0
    out = capsys.readouterr().out
    assert out.count("no --model: using the pretrained model 'cells-sample'") == 2
    assert "trained on" not in out or "synthetic sample" in out
    assert (tmp_path / "pred" / "cells.csv").is_file()
    rows = (tmp_path / "measured" / "frames.csv").read_text().splitlines()
    assert len(rows) == 3 and "distance maps" in rows[1]
    json.dumps(pretrained.model_card())  # the card stays plain JSON
