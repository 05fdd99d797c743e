"""The livecell-kit command line, end to end on a tiny sample."""
import json

import numpy as np
import pytest
from PIL import Image

from livecell_kit import cli, data


@pytest.fixture(scope="module")
def tiny_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    assert cli.main(["sample", "--out", str(out), "--seed", "3", "--train-per-type", "1",
                     "--val-per-type", "1", "--test-per-type", "1"]) == 0
    return out


def test_sample_command_writes_the_livecell_layout(tiny_sample):
    for split in data.SPLITS:
        assert data.annotation_path(tiny_sample, split).exists()
        assert len(data.load_split(tiny_sample, split).images) == len(data.CELL_TYPES)


def test_masks_command_writes_one_png_per_image_named_after_the_stem(tiny_sample, tmp_path):
    ann = data.annotation_path(tiny_sample, "val")
    assert cli.main(["masks", "--annotations", str(ann), "--out", str(tmp_path / "m")]) == 0
    split = data.load_split(tiny_sample, "val")
    for image in split.images:
        png = tmp_path / "m" / (image["file_name"].rsplit(".", 1)[0] + ".png")
        values = np.unique(np.asarray(Image.open(png)))
        assert set(values.tolist()) <= {0, 255} and 255 in values


def test_bad_input_gives_one_clear_error_and_exit_code_2(tmp_path, capsys):
    missing = tmp_path / "nowhere.json"
    assert cli.main(["masks", "--annotations", str(missing), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "nowhere.json" in err and "error" in err


def test_train_evaluate_predict_commands(tiny_sample, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "--data", str(tiny_sample), "--preset", "quick", "--out", str(run),
                     "--epochs", "1", "--precision", "float32"]) == 0
    assert (run / "model.keras").exists() and (run / "history.json").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["precision"] == "float32"

    metrics = tmp_path / "metrics.json"
    assert cli.main(["evaluate", "--model", str(run), "--data", str(tiny_sample), "--split", "test",
                     "--out", str(metrics)]) == 0
    results = json.loads(metrics.read_text())
    for key in ("pixel_accuracy", "bce", "iou", "dice", "precision", "recall", "threshold",
                "per_cell_type", "baselines", "instance", "seed_metrics"):
        assert key in results
    assert set(results["seed_metrics"]) == {"pixel_accuracy", "bce", "rule"}
    assert results["seed_metrics"]["bce"] == pytest.approx(results["bce"])  # BCE needs no threshold
    assert results["subset_rule"] == "stratified"  # the quick run's rule, read from its config.json
    out = capsys.readouterr().out
    assert "seed reported" in out and "92.19%" in out and "0.2043" in out
    assert set(results["baselines"]) == {"all_background", "otsu"}
    assert {"AP", "AP50", "AP75", "per_cell_type"} <= set(results["instance"])

    image = data.load_split(tiny_sample, "test").images[0]
    path = data.load_split(tiny_sample, "test").image_path(image)
    assert cli.main(["predict", "--model", str(run / "model.keras"), "--out", str(tmp_path / "pred"), str(path)]) == 0
    stem = path.stem
    assert {p.name for p in (tmp_path / "pred").iterdir()} >= {f"{stem}_mask.png", f"{stem}_labels.tif",
                                                               f"{stem}_overlay.png"}


def test_evaluate_picks_test_images_with_the_runs_subset_rule(tiny_sample, tmp_path, capsys):
    """A seed run is scored on the first N test images in file order, as the seed was."""
    run = tmp_path / "seed-run"
    assert cli.main(["train", "--data", str(tiny_sample), "--preset", "seed", "--out", str(run),
                     "--epochs", "1", "--batch-size", "2", "--precision", "float32"]) == 0
    metrics = tmp_path / "m.json"
    assert cli.main(["evaluate", "--model", str(run), "--data", str(tiny_sample), "--split", "test",
                     "--images", "3", "--no-instance", "--threshold", "0.5", "--out", str(metrics)]) == 0
    results = json.loads(metrics.read_text())
    assert results["subset_rule"] == "first" and results["n_images"] == 3
    first3 = {r["file_name"] for r in data.load_split(tiny_sample, "test").images[:3]}
    assert set(results["per_cell_type"]) == {data.cell_type_of(n) for n in first3}
    # evaluating the val split itself: the threshold is not tuned on the images scored
    assert cli.main(["evaluate", "--model", str(run), "--data", str(tiny_sample), "--split", "val",
                     "--no-instance", "--out", str(metrics)]) == 0
    assert json.loads(metrics.read_text())["threshold"] == 0.5
