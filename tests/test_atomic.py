"""Atomic writes: files and folders the kit writes get the user's umask, not tempfile's 0600/0700."""
from __future__ import annotations

import errno
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from livecell_kit import atomic, course, data
from livecell_kit.cli import errors as cli_errors


@pytest.fixture
def umask():
    """Set the process umask for one test (``umask(0o022)``) and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_(value: int) -> None:
        os.umask(value)

    yield set_
    os.umask(saved)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700),
                                                         (0o002, 0o664, 0o775)],
                         ids=["umask022", "umask077", "umask002"])
def test_written_files_and_folders_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    assert _mode(atomic.write_bytes(tmp_path / "a.bin", b"x")) == file_mode
    assert _mode(atomic.write_json(tmp_path / "b.json", {"x": 1})) == file_mode
    with atomic.atomic_path(tmp_path / "c.keras", suffix=".keras") as tmp:
        assert tmp.name.endswith(".tmp.keras") and tmp.exists()
        tmp.write_bytes(b"model")  # writers that open the path keep its mode
    assert _mode(tmp_path / "c.keras") == file_mode
    assert _mode(atomic.make_temp_dir(tmp_path, ".build.")) == dir_mode


def test_an_overwrite_keeps_the_new_files_mode_and_leaves_no_temp_files(tmp_path, umask):
    umask(0o022)
    target = atomic.write_bytes(tmp_path / "a.bin", b"old")
    os.chmod(target, 0o600)
    atomic.write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and _mode(target) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_temp_names_are_unique_under_threads(tmp_path):
    made: list = []
    threads = [threading.Thread(target=lambda: made.extend(atomic.make_temp_dir(tmp_path, "t.") for _ in range(50)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 200 == len(list(tmp_path.iterdir()))


def test_a_failed_block_removes_its_temp_file(tmp_path):
    with pytest.raises(RuntimeError), atomic.atomic_path(tmp_path / "x.json"):
        raise RuntimeError("writer failed")
    assert not list(tmp_path.iterdir())


def test_annotation_index_folder_is_readable_by_others(tmp_path, umask, monkeypatch):
    umask(0o022)
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "A172_Phase_C7_1_00d00h00m_1.tif",
                                            "width": data.IMAGE_WIDTH, "height": data.IMAGE_HEIGHT}],
                                "annotations": [], "categories": [{"id": 1, "name": "cell"}]}))
    data.open_index(path)
    folders = [p for p in (tmp_path / "work").rglob("*") if p.is_dir()]
    files = [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
    assert folders and files
    assert {_mode(p) for p in folders} == {0o755} and {_mode(p) for p in files} == {0o644}


def test_student_notebooks_are_readable_by_others(tmp_path, umask):
    umask(0o022)
    source = tmp_path / "src"
    source.mkdir()
    source.joinpath("01_x.ipynb").write_text(json.dumps(
        {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    written = course.make_student_notebooks(source, tmp_path / "student")
    assert [_mode(p) for p in written] == [0o644]


def test_sweep_removes_only_abandoned_temp_files_of_the_kit(tmp_path):
    old = os.stat(tmp_path).st_mtime - 60

    def aged(name, payload=b"x"):
        (tmp_path / name).write_bytes(payload)
        os.utime(tmp_path / name, (old, old))
        return tmp_path / name

    abandoned = [aged(".a.png.0123abcd.tmp"), aged(".model.keras.deadbeef.tmp.keras")]
    kept = [aged("a.png.0123abcd.tmp"), aged(".a.png.tmp"), aged(".a.png.XYZ12345.tmp"), aged("notes.txt")]
    (tmp_path / ".b.png.01234567.tmp").mkdir()  # a folder: not a temp file of atomic_path
    with atomic.atomic_path(tmp_path / "live.png", hold_lock=True) as live:  # a writer at work, its temp file old
        os.utime(live, (old, old))
        assert sorted(atomic.sweep_temp_files(tmp_path)) == sorted(abandoned)
        assert live.exists()
    assert not any(p.exists() for p in abandoned) and all(p.exists() for p in kept)
    assert (tmp_path / "live.png").exists() and (tmp_path / ".b.png.01234567.tmp").is_dir()


def _refuse_creating(monkeypatch, err):
    real_open = os.open

    def no_create(path, flags, *args):
        if flags & os.O_CREAT:
            if os.path.exists(path):  # as the system answers first
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path))
            raise PermissionError(err, os.strerror(err), str(path))
        return real_open(path, flags, *args)
    monkeypatch.setattr(os, "open", no_create)  # a read-only folder, also for root (who may write anywhere)
    monkeypatch.setattr(os, "mkdir", lambda path, *a: no_create(path, os.O_CREAT))


@pytest.mark.parametrize("err", [errno.EACCES, errno.EROFS])
def test_an_unwritable_work_folder_is_named_with_its_setting_not_a_temp_name(tmp_path, monkeypatch, err):
    work = tmp_path / "work"
    (work / "index").mkdir(parents=True)
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(work))
    source = tmp_path / "a.json"
    source.write_text(json.dumps({"images": [], "annotations": []}))
    _refuse_creating(monkeypatch, err)
    with pytest.raises(OSError) as caught:
        data.open_index(source)
    assert caught.value.filename == str(work / "index")
    message, status = cli_errors.describe(caught.value, "masks")
    assert status == 2 and ".tmp" not in message and ".a-" not in message
    assert f"{work / 'index'}: " in message and "set LIVECELL_KIT_WORKDIR to a folder you can write to" in message
    monkeypatch.setenv("LIVECELL_KIT_DATA", str(tmp_path / "downloads"))
    with pytest.raises(OSError) as caught:
        atomic.write_bytes(tmp_path / "downloads" / "x.zip", b"x")
    message, _ = cli_errors.describe(caught.value, "download")
    assert ".tmp" not in message and "set LIVECELL_KIT_DATA" in message


def test_ctrl_c_just_after_the_temp_file_is_created_leaves_nothing(tmp_path, monkeypatch):
    real_close = os.close

    def close_then_interrupt(fd):
        real_close(fd)
        monkeypatch.setattr(atomic.os, "close", real_close)
        raise KeyboardInterrupt  # as if Ctrl-C came between the file's creation and its name returning

    monkeypatch.setattr(atomic.os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(tmp_path / "mask.png") as tmp:
            tmp.write_bytes(b"never")
    assert list(tmp_path.iterdir()) == []


def test_write_json_makes_numpy_values_and_paths_plain_and_non_finite_numbers_null(tmp_path):
    import numpy as np

    plain = {"f": np.float32(1.5), "i": [np.int64(2), (1, 2)], "a": np.arange(3, dtype=np.uint8),
             "b": np.bool_(True), "p": Path("runs") / "quick"}
    written = json.loads(atomic.write_json(tmp_path / "plain.json", plain).read_text())
    assert written == {"f": 1.5, "i": [2, [1, 2]], "a": [0, 1, 2], "b": True, "p": "runs/quick"}
    awkward = {**plain, "nan": float("nan"), "inf": np.array([np.inf, 1.0]), np.int64(3): "numpy key"}
    written = json.loads(atomic.write_json(tmp_path / "awkward.json", awkward, indent=None).read_text())
    assert written == {**json.loads((tmp_path / "plain.json").read_text()), "nan": None, "inf": [None, 1.0],
                       "3": "numpy key"}
    with pytest.raises(TypeError, match="object"):
        atomic.write_json(tmp_path / "odd.json", {"x": object()})
    assert not (tmp_path / "odd.json").exists()
