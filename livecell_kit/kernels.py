"""Memory of a notebook session's kernels: the warning at setup and Binder's idle-kernel culling.

Binder gives a user 2 GB for everything the session runs, and every notebook opened keeps its
own kernel (one Python process) with its arrays and, from notebook 03 on, TensorFlow (~0.5 GB)
until it is shut down. :func:`other_kernels_mb` sums what the kernels started beside this one
hold, so ``course.setup()`` can say which notebooks to shut down before the new one needs room;
:func:`server_culling_config` is the Jupyter server setting (written by Binder's ``postBuild``)
that shuts kernels down by itself after they sat idle.

Standard library only (psutil when installed), so it costs nothing to import.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
from pathlib import Path

try:  # ipykernel depends on psutil, so a kernel has it; without it, /proc (Linux) is read instead
    import psutil
except ImportError:
    psutil = None

from livecell_kit import presets

#: Bytes per mebibyte; RSS is counted in MiB ("MB" in messages, as Binder's own meter).
MB = 1024 * 1024


def limit_malloc(arenas: int = presets.KERNEL_MALLOC_ARENAS,
                 mmap_threshold: int = presets.KERNEL_MALLOC_MMAP_THRESHOLD) -> bool:
    """Make glibc's malloc give freed memory back: at most ``arenas`` heaps, blocks of ``mmap_threshold``
    bytes or more mapped on their own (see ``presets.KERNEL_MALLOC_ARENAS``).

    Keeps a training kernel's peak lower (Binder restarts a session whose kernels pass 2 GB).
    Affects this process only, from now on. Returns False where malloc is not glibc's (macOS, Windows).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_arena_max, m_mmap_threshold = -8, -3  # mallopt's parameter numbers, from glibc's malloc.h
        return bool(libc.mallopt(m_arena_max, arenas)) and bool(libc.mallopt(m_mmap_threshold, mmap_threshold))
    except (OSError, AttributeError):  # no glibc
        return False


def give_back_freed_memory() -> bool:
    """Collect Python's garbage and hand the heap's free pages back to the system (glibc's
    ``malloc_trim``): a kernel's resident memory otherwise stays at its high-water mark after a
    training run. Returns False where malloc is not glibc's (macOS, Windows): only the collection ran."""
    gc.collect()
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def _is_kernel(cmdline: list[str]) -> bool:
    """True for an IPython kernel process (``python -m ipykernel_launcher -f kernel-….json``)."""
    return any("ipykernel" in part for part in cmdline)


def _siblings_proc(proc: Path, pid: int) -> list[tuple[int, list[str], int]]:
    """(pid, command line, RSS bytes) of the processes sharing ``pid``'s parent, read from ``/proc``."""

    def ppid(p: Path) -> int:
        # /proc/PID/stat: "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
        return int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])

    def rss(p: Path) -> int:
        for line in (p / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
        return 0  # a zombie has no VmRSS line

    parent, found = ppid(proc / str(pid)), []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == pid:
            continue
        try:  # a process may end while being read, or belong to another user
            if ppid(entry) == parent:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
                found.append((int(entry.name), cmdline, rss(entry)))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _siblings_psutil(pid: int) -> list[tuple[int, list[str], int]]:
    """The same as :func:`_siblings_proc` through psutil (which also works without ``/proc``)."""
    parent, found = psutil.Process(pid).parent(), []
    for child in parent.children() if parent else []:
        if child.pid == pid:
            continue
        try:
            found.append((child.pid, child.cmdline(), child.memory_info().rss))
        except (psutil.Error, OSError):  # ended meanwhile, or not ours to read
            continue
    return found


def other_kernels_mb(pid: int | None = None, proc: Path | str = "/proc") -> float | None:
    """MB of memory (resident set) held by the other kernels of ``pid``'s Jupyter session.

    "The session": kernels started by the same Jupyter server, i.e. the ipykernel processes that
    share this process's parent (other users' and other servers' kernels are not counted).
    pid: the kernel asking, default this process. Read through psutil when it is installed,
    else from ``proc`` (Linux's ``/proc``). Returns None when it cannot be told (neither
    works): the warning is a courtesy, never an error.
    """
    pid = os.getpid() if pid is None else pid
    try:
        siblings = _siblings_psutil(pid) if psutil is not None else _siblings_proc(Path(proc), pid)
    except Exception:  # psutil.Error, OSError, a malformed /proc entry: no warning rather than a failed setup
        return None
    return sum(rss for _, cmdline, rss in siblings if _is_kernel(cmdline)) / MB


def memory_warning(other_mb: float | None) -> str | None:
    """The line ``course.setup()`` prints when other kernels hold more than the preset's limit, else None."""
    if other_mb is None or other_mb <= presets.OTHER_KERNELS_WARN_MB:
        return None
    return (f"Other notebooks' kernels already hold {other_mb / 1024:.1f} GB. Binder restarts a session "
            f"above {presets.BINDER_MEMORY_MB / 1024:.0f} GB in all: shut down the notebooks you are not "
            f"using (Kernel → Shut Down Kernel, or the Running tab) before going on.")


def server_culling_config() -> dict:
    """Jupyter server settings that shut idle kernels down (``MappingKernelManager``), from the presets.

    A kernel counts as idle when no cell ran for ``KERNEL_CULL_IDLE_S`` seconds; busy kernels
    (training) are never culled, and kernels whose notebook is still open are culled too, since
    a forgotten tab holds memory like a closed one (each notebook rebuilds its state when rerun).
    """
    return {"MappingKernelManager": {"cull_idle_timeout": presets.KERNEL_CULL_IDLE_S,
                                     "cull_interval": presets.KERNEL_CULL_INTERVAL_S,
                                     "cull_connected": True, "cull_busy": False}}


def write_server_config(prefix: Path | str | None = None) -> Path:
    """Merge :func:`server_culling_config` into the Jupyter server config of the environment ``prefix``.

    prefix: the environment's root (default ``sys.prefix``); the file is
    ``etc/jupyter/jupyter_server_config.json`` there, which the server of that environment reads
    (its ``config.d`` folder only enables extensions). Settings already in the file are kept.
    Binder's ``postBuild`` calls this. Returns the file's path.
    """
    path = Path(prefix or sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    for section, values in server_culling_config().items():
        config.setdefault(section, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path
