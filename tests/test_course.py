"""Notebooks on a real data root that annotates only some of LIVECell's splits."""
import json
import platform
import subprocess
import sys
from pathlib import Path

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


_MALLOC_PROBE = """
import ctypes, sys
from livecell_kit import course
if sys.argv[1] == "limited":
    assert course.limit_malloc()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
libc.free(libc.malloc(8 << 20))  # glibc would now keep blocks up to 8 MiB in its heap
blocks = [libc.malloc(3 << 20) for _ in range(40)]
for b in blocks:
    ctypes.memset(b, 1, 3 << 20)
pin = libc.malloc(256 << 10)  # a live block above them (no free space fits it): the heap cannot shrink
before = rss_mb()
for b in blocks:
    libc.free(b)
print(before - rss_mb())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists() or platform.libc_ver()[0] != "glibc",
                    reason="glibc on Linux only")
def test_limit_malloc_makes_freed_training_sized_blocks_go_back_to_the_system():
    def returned_mb(mode):
        out = subprocess.run([sys.executable, "-c", _MALLOC_PROBE, mode], capture_output=True, text=True, check=True)
        return float(out.stdout)

    assert returned_mb("default") < 20  # 120 MB freed, kept by malloc
    assert returned_mb("limited") > 100
