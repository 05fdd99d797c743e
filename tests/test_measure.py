"""livecell-kit measure: names, tables, growth curves, resume after a kill, semantic-only models."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile

from livecell_kit import cli
from livecell_kit.measure import frames as measure_frames_module
from livecell_kit.measure import measure_frames, name_reader, timestamp_hours
from livecell_kit.measure.record import RECORD_NAME
from livecell_kit.predict.inputs import PredictionError
from livecell_kit.measure.tables import FRAME_COLUMNS, WELL_COLUMNS

SIDE = 32


def _frame(cells: int) -> np.ndarray:
    """A dark 32 x 32 frame with ``cells`` separate bright 6 x 6 squares (36 px each)."""
    img = np.full((SIDE, SIDE), 20, np.uint8)
    for k in range(cells):
        y, x = 2 + 10 * (k // 3), 2 + 10 * (k % 3)
        img[y:y + 6, x:x + 6] = 230
    return img


def _folder(tmp_path, plan: dict) -> list:
    """Write LIVECell-named frames: plan maps (well, hours, location) -> cells."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for (well, hours, location), cells in plan.items():
        name = f"A172_Phase_{well}_{location}_{hours // 24:02d}d{hours % 24:02d}h00m_1.tif"
        tifffile.imwrite(folder / name, _frame(cells))
    return sorted(folder.iterdir())


PLAN = {("B2", 0, 1): 1, ("B2", 0, 2): 3, ("B2", 24, 1): 4, ("B2", 24, 2): 4, ("C7", 0, 1): 2}


def _csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- names

def test_livecell_names_give_well_location_crop_and_hours():
    name = name_reader().read("x/A172_Phase_C7_1_02d00h00m_4.tif")
    assert (name.cell_type, name.well, name.location, name.crop, name.time_h) == ("A172", "C7", "1", "4", 48.0)
    assert timestamp_hours("00d04h30m") == 4.5
    assert name_reader().read("SHSY5Y_Phase_A10_2_03d12h00m_1.tif").time_h == 84.0


def test_livecell_name_that_does_not_fit_names_the_file_and_the_flag():
    with pytest.raises(ValueError, match=r"plate_B3\.tif.*LIVECell.*--pattern"):
        name_reader().read("plate_B3.tif")


def test_pattern_reads_own_names_with_extra_groups():
    reader = name_reader(r"(?P<plate>P\d+)_(?P<well>[A-H]\d+)_t(?P<time>[\d.]+)h")
    name = reader.read("exp/P2_B3_t12.5h.tif")
    assert (name.well, name.time_h, name.cell_type, name.extra) == ("B3", 12.5, "", (("plate", "P2"),))
    assert reader.extra_groups == ("plate",)


def test_pattern_errors_name_the_file_and_the_pattern():
    with pytest.raises(ValueError, match=r"no named group time"):
        name_reader(r"(?P<well>[A-H]\d+)")
    with pytest.raises(ValueError, match=r"not a valid regular expression"):
        name_reader(r"(?P<well>[A-H")
    reader = name_reader(r"(?P<well>[A-H]\d+)_t(?P<time>\w+)h")
    with pytest.raises(ValueError, match=r"other\.tif.*does not match --pattern '\(\?P<well>"):
        reader.read("dir/other.tif")
    with pytest.raises(ValueError, match=r"B3_tnoonh\.tif.*'noon'.*not a number of hours"):
        reader.read("B3_tnoonh.tif")


# --------------------------------------------------------------------------- tables

def test_measure_writes_frames_wells_curves_and_labels(tmp_path, bright_cells_model):
    _folder(tmp_path, PLAN)
    result = measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", labels=True,
                            progress=False)
    rows = _csv(result.frames_csv)
    assert tuple(rows[0]) == FRAME_COLUMNS and len(rows) == 5 == result.frames
    by_key = {(r["well"], float(r["time_h"]), int(r["location"])): r for r in rows}
    for key, cells in PLAN.items():
        row = by_key[key]
        assert int(row["cells"]) == cells and row["method"] == "distance maps"
        assert float(row["confluence_pct"]) == pytest.approx(100 * 36 * cells / SIDE ** 2, abs=0.01)
        assert float(row["mean_area_px"]) == 36.0 == float(row["median_area_px"])
        labels = tifffile.imread(tmp_path / "out" / row["labels"])
        assert labels.shape == (SIDE, SIDE) and len(np.unique(labels)) == cells + 1
    wells = _csv(result.wells_csv)
    assert tuple(wells[0]) == WELL_COLUMNS
    assert [(w["well"], w["time_h"], w["n_frames"]) for w in wells] == [
        ("B2", "0.00", "2"), ("B2", "24.00", "2"), ("C7", "0.00", "1")]
    b2_0 = wells[0]
    assert float(b2_0["cells_mean"]) == 2.0 and float(b2_0["cells_std"]) == pytest.approx(np.std([1, 3], ddof=1), abs=0.05)
    assert float(b2_0["confluence_pct_mean"]) == pytest.approx(100 * 36 * 2 / SIDE ** 2, abs=0.01)
    assert wells[1]["cells_std"] == "0.0" and wells[2]["cells_std"] == ""  # one frame: no spread
    assert [p.name for p in result.figures] == ["growth_confluence.png", "growth_cells.png"]
    assert all(p.stat().st_size > 1000 for p in result.figures)


def test_measure_refuses_a_name_before_measuring_anything(tmp_path, bright_cells_model):
    _folder(tmp_path, PLAN)
    tifffile.imwrite(tmp_path / "frames" / "stray.tif", _frame(1))
    tifffile.imwrite(tmp_path / "frames" / "stray2.tif", _frame(1))
    with pytest.raises(ValueError, match=r"stray\.tif.*--pattern.*\(and 1 more files whose names do not fit\)"):
        measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / RECORD_NAME).exists()


def test_semantic_model_gives_confluence_only_and_says_so(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(1, 1, activation="sigmoid")])
    model.layers[-1].set_weights([np.array([[[[20.0]]]], np.float32), np.array([-10.0], np.float32)])
    _folder(tmp_path, PLAN)
    result = measure_frames(model, [tmp_path / "frames"], tmp_path / "out", labels=True, progress=False)
    out = capsys.readouterr().out
    assert out.count("cells not counted: the model has no instance head") == 1
    rows = _csv(result.frames_csv)
    assert all(r["cells"] == "" == r["mean_area_px"] == r["labels"] for r in rows)
    assert all(r["method"].startswith("watershed on the semantic mask") for r in rows)
    assert float(rows[0]["confluence_pct"]) > 0
    assert _csv(result.wells_csv)[0]["cells_mean"] == ""
    assert [p.name for p in result.figures] == ["growth_confluence.png"]


# --------------------------------------------------------------------------- resume

def test_interrupted_run_finishes_on_rerun_keeping_measured_frames(tmp_path, bright_cells_model, monkeypatch,
                                                                   capsys):
    _folder(tmp_path, PLAN)
    fresh = measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "fresh", progress=False)
    real, calls = measure_frames_module.frame_statistics, []

    def killed_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(measure_frames_module, "frame_statistics", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "frames.csv").exists()  # nothing half-written
    # a kill in the middle of a write leaves a torn last line
    with open(tmp_path / "out" / RECORD_NAME, "a", encoding="utf-8") as fh:
        fh.write('{"key": ["/x", 1')
    calls.clear()
    monkeypatch.setattr(measure_frames_module, "frame_statistics", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    result = measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False)
    assert (result.kept, result.measured, len(calls)) == (3, 2, 2)
    assert "its last line was cut off by an interrupted run" in capsys.readouterr().out
    assert _csv(result.frames_csv) == _csv(fresh.frames_csv)
    assert (tmp_path / "out" / "wells.csv").read_bytes() == fresh.wells_csv.read_bytes()
    calls.clear()  # everything measured: a third run measures nothing
    assert measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False).kept == 5
    assert not calls


def test_another_model_or_a_changed_file_is_measured_afresh(tmp_path, bright_cells_model, capsys):
    files = _folder(tmp_path, PLAN)
    measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False)
    tifffile.imwrite(files[0], _frame(5))  # the user replaced one frame
    result = measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False)
    assert (result.kept, result.measured) == (4, 1)
    assert _csv(result.frames_csv)[0]["cells"] == "5"
    weights = bright_cells_model.get_weights()
    bright_cells_model.set_weights([weights[0] * 1.01, weights[1]])
    capsys.readouterr()
    result = measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False)
    assert (result.kept, result.measured) == (0, 5)
    assert "made with other settings (model); measuring every frame afresh" in capsys.readouterr().out
    header = json.loads((tmp_path / "out" / RECORD_NAME).read_text().splitlines()[0])
    assert header["settings"]["threshold"] == 0.6


def test_unreadable_frame_is_listed_after_the_others_are_measured(tmp_path, bright_cells_model):
    _folder(tmp_path, PLAN)
    broken = tmp_path / "frames" / "A172_Phase_D1_1_00d00h00m_1.tif"
    broken.write_bytes(b"II*\x00" + b"\x00" * 10)
    with pytest.raises(PredictionError, match=r"(?s)1 of 6 image files could not be measured.*D1_1_00d00h00m_1\.tif"):
        measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False)
    assert len(_csv(tmp_path / "out" / "frames.csv")) == 5


def test_output_folder_inside_the_input_folder_is_not_measured(tmp_path, bright_cells_model):
    _folder(tmp_path, PLAN)
    for _ in range(2):  # the second run meets the first one's figures and label images
        result = measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "frames" / "out",
                                labels=True, progress=False)
    assert (result.frames, result.kept, result.measured) == (5, 5, 0)


# --------------------------------------------------------------------------- command line

def test_cli_bad_pattern_is_refused_before_the_model_loads(tmp_path, capsys):
    _folder(tmp_path, PLAN)
    status = cli.main(["measure", "--model", str(tmp_path / "no-model.keras"), "--out", str(tmp_path / "out"),
                       "--pattern", r"(?P<well>[A-H]\d+)", str(tmp_path / "frames")])
    err = capsys.readouterr().err
    assert status == 2 and "--pattern" in err and "time" in err and "no-model" not in err


def test_the_closing_line_names_the_folder_once_as_the_caller_shows_it(tmp_path, bright_cells_model, capsys):
    _folder(tmp_path, PLAN)
    result = measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False)
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == result.summary() and printed.count(str(tmp_path)) == 1
    assert f"frames.csv ({result.frames} frames)" in printed and "growth_confluence.png" in printed
    rerun = measure_frames(bright_cells_model, [tmp_path / "frames"], tmp_path / "out", progress=False, quiet=True)
    assert " into " not in capsys.readouterr().out and rerun.kept == result.measured
    assert rerun.summary(lambda p: "OUT").startswith(f"measured 0 files ({result.measured} kept from earlier runs) into OUT:")
