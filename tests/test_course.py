"""Notebook setup: real data roots that annotate only some of LIVECell's splits, the one setup
call and what it returns, the warning about other kernels' memory, Binder's idle-kernel culling."""
import json
import platform
import subprocess
import sys
import time
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


# ---------------------------------------------------------------------------- setup(): one start per notebook

def test_setup_returns_what_a_notebook_needs_from_the_look_ups(tmp_path, monkeypatch, capsys):
    import dataclasses

    from livecell_kit import kernels, presets

    root = _root_with(tmp_path, ["val"])  # real frames to score, no train split: 04 trains on the sample
    sample_root = _root_with(tmp_path / "s", data.SPLITS)
    monkeypatch.setenv(course.REAL_DATA_ENV, str(root))
    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path / "work"))
    monkeypatch.setattr(course, "sample_root", lambda *a, **k: sample_root)
    monkeypatch.setattr(kernels, "other_kernels_mb", lambda: 0.0)
    kit = course.setup(tensorflow=False)
    assert (kit.root, kit.label, kit.split, kit.eval_split) == (root, "real LIVECell", "val", "val")
    assert kit.train_root == sample_root and kit.preset == presets.get_preset("quick")
    assert kit.run_dir == course.quick_run_dir(sample_root) == tmp_path / "work" / "runs" / "quick-real"
    assert (kit.device, kit.colab, kit.use_pretrained) == (None, False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        kit.root = tmp_path
    line = str(kit)
    assert "\n" not in line and line.startswith("data: real LIVECell") and "no TensorFlow" in line
    assert "other notebooks" not in capsys.readouterr().out.lower()
    assert course.setup(tensorflow=False, preset="borders").run_dir.name == "borders-real"


def test_06_loads_the_shipped_model_when_asked_and_only_for_the_sample_it_was_trained_on(tmp_path, monkeypatch):
    import types

    monkeypatch.setenv("LIVECELL_KIT_WORKDIR", str(tmp_path))
    trained_on = tmp_path / "sample-seed0"
    monkeypatch.delenv(course.USE_PRETRAINED_ENV, raising=False)
    assert not course.use_pretrained(trained_on)  # by default the notebook trains
    monkeypatch.setenv(course.USE_PRETRAINED_ENV, "1")
    assert course.use_pretrained(trained_on)
    assert not course.use_pretrained(tmp_path / "sample-seed1")  # another sample: the shipped model is not its run
    assert not course.use_pretrained(tmp_path / "livecell")      # real LIVECell with a train split
    monkeypatch.setenv(course.USE_PRETRAINED_ENV, "0")
    assert not course.use_pretrained(trained_on)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert course.use_pretrained(trained_on)  # Colab: each notebook starts on a machine without 04's or 06's run


def test_setup_warns_when_other_kernels_hold_memory(tmp_path, monkeypatch, capsys):
    from livecell_kit import kernels, presets

    monkeypatch.setenv(course.REAL_DATA_ENV, str(_root_with(tmp_path, data.SPLITS)))
    monkeypatch.setattr(kernels, "other_kernels_mb", lambda: presets.OTHER_KERNELS_WARN_MB + 1000.0)
    course.setup(tensorflow=False)
    out = capsys.readouterr().out
    assert "Other notebooks' kernels already hold" in out and "shut down the notebooks you are not using" in out
    assert f"{(presets.OTHER_KERNELS_WARN_MB + 1000) / 1024:.1f} GB" in out


def test_the_memory_warning_speaks_only_above_the_preset_limit():
    from livecell_kit import kernels, presets

    assert kernels.memory_warning(None) is None  # memory could not be read: no warning, no error
    assert kernels.memory_warning(presets.OTHER_KERNELS_WARN_MB) is None
    assert "Kernel → Shut Down Kernel" in kernels.memory_warning(presets.OTHER_KERNELS_WARN_MB + 1)


def _fake_process(proc, pid, ppid, cmdline, rss_kb, comm="python3"):
    entry = proc / str(pid)
    entry.mkdir(parents=True)
    (entry / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1\n")
    (entry / "cmdline").write_bytes("\0".join(cmdline).encode() + b"\0")
    (entry / "status").write_text(f"Name:\t{comm}\nVmRSS:\t{rss_kb} kB\n" if rss_kb is not None else "Name:\tz\n")


def test_other_kernels_are_the_ipykernels_started_beside_this_one(tmp_path, monkeypatch):
    """From /proc: siblings (same Jupyter server) that are kernels count; the rest do not."""
    from livecell_kit import kernels

    monkeypatch.setattr(kernels, "psutil", None)
    proc = tmp_path / "proc"
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "/run/kernel-1.json"]
    _fake_process(proc, 100, 10, kernel, 150_000)                           # this kernel: not counted
    _fake_process(proc, 101, 10, kernel, 400_000, comm="python (x) y")      # a sibling kernel
    _fake_process(proc, 102, 10, kernel, 300_000)                           # another one
    _fake_process(proc, 103, 10, ["node", "language-server"], 900_000)      # the server's other child
    _fake_process(proc, 104, 11, kernel, 800_000)                           # another server's kernel
    _fake_process(proc, 105, 10, kernel, None)                              # a zombie: no VmRSS
    (proc / "self").mkdir()
    assert kernels.other_kernels_mb(pid=100, proc=proc) == pytest.approx((400_000 + 300_000) / 1024)
    assert kernels.other_kernels_mb(pid=104, proc=proc) == 0
    assert kernels.other_kernels_mb(pid=999, proc=proc) is None  # unreadable: no warning, no error


def test_psutil_and_proc_agree_on_real_processes(monkeypatch):
    from livecell_kit import kernels

    if kernels.psutil is None or not Path("/proc/self/stat").exists():
        pytest.skip("needs both psutil and /proc")
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    fake_kernel = subprocess.Popen(sleep + ["ipykernel_launcher"])  # argv names ipykernel like a kernel
    asking = subprocess.Popen(sleep)
    try:
        time.sleep(0.5)
        with_psutil = kernels.other_kernels_mb(pid=asking.pid)
        monkeypatch.setattr(kernels, "psutil", None)
        from_proc = kernels.other_kernels_mb(pid=asking.pid)
    finally:
        fake_kernel.kill(), asking.kill()
        fake_kernel.wait(), asking.wait()
    assert with_psutil > 1 and from_proc == pytest.approx(with_psutil, rel=0.2)


def test_binder_culls_idle_kernels_with_the_presets_settings(tmp_path):
    from livecell_kit import kernels, presets

    config = tmp_path / "etc" / "jupyter" / "jupyter_server_config.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"ServerApp": {"root_dir": "/srv"}, "MappingKernelManager": {"x": 1}}))
    assert kernels.write_server_config(tmp_path) == config
    written = json.loads(config.read_text())
    assert written["ServerApp"] == {"root_dir": "/srv"}  # what was there stays
    assert written["MappingKernelManager"] == {"x": 1, "cull_idle_timeout": presets.KERNEL_CULL_IDLE_S,
                                               "cull_interval": presets.KERNEL_CULL_INTERVAL_S,
                                               "cull_connected": True, "cull_busy": False}
    post_build = (Path(__file__).resolve().parents[1] / "postBuild").read_text()
    assert "kernels.write_server_config()" in post_build


_MALLOC_PROBE = """
import ctypes, sys
from livecell_kit import kernels
if sys.argv[1] == "limited":
    assert kernels.limit_malloc()
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
