"""Benchmark: run every notebook in a fresh kernel; print its wall time and its kernel's memory.

    python bench/notebooks.py [--fresh] [--json FILE]   # --fresh: empty work folder first (all rebuilt)

Each notebook runs through nbclient in a kernel of its own. Its memory is read from the
kernel process itself (Linux ``/proc/<pid>/status``): ``VmHWM``, the peak resident set over
the notebook, and ``VmRSS`` at the end — what the kernel keeps holding if the student leaves
it running. Binder restarts a session whose kernels together pass 2 GB; the target here is
<= 1200 MB peak per notebook, so one notebook plus the one before it, left open, still fit.
The last column says whether TensorFlow got loaded (its library mapped into the kernel).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
PEAK_TARGET_MB = 1200
TOTAL_TARGET_S = 300


def kernel_memory_mb(pid: int) -> dict:
    """``peak`` (VmHWM) and ``now`` (VmRSS) of process ``pid`` in MB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MB
    return {"peak": fields["VmHWM"], "now": fields["VmRSS"]}


def loads_tensorflow(pid: int) -> bool:
    """True when TensorFlow's native library is mapped into process ``pid``."""
    return "_pywrap_tensorflow" in Path(f"/proc/{pid}/maps").read_text()


def run_notebook(path: Path, timeout_s: int = 1800, per_cell: bool = False) -> dict:
    """Execute ``path`` in a new kernel (cwd: its folder); returns seconds, memory, errors.

    per_cell: also print each cell that raised the kernel's peak by 50 MB or more (what to shrink).
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start, error = time.perf_counter(), None
    with client.setup_kernel():
        pid = client.km.provisioner.pid
        try:
            for index, cell in enumerate(nb.cells):
                before = kernel_memory_mb(pid)["peak"]
                client.execute_cell(cell, index)
                grown = kernel_memory_mb(pid)["peak"] - before
                if per_cell and grown >= 50:
                    first_line = next((ln for ln in cell.source.splitlines() if not ln.startswith("#")), "")
                    print(f"    cell {index:2d}: peak +{grown:5.0f} MB  {first_line[:70]}", flush=True)
        except Exception as exc:  # a failing cell: report it, still read the memory
            error = f"{type(exc).__name__}: {str(exc).splitlines()[-1] if str(exc) else ''}"
        seconds = time.perf_counter() - start
        memory, tensorflow = kernel_memory_mb(pid), loads_tensorflow(pid)
    return {"notebook": path.stem, "seconds": seconds, "peak_rss_mb": memory["peak"],
            "end_rss_mb": memory["now"], "tensorflow": tensorflow, "error": error}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="start from an empty work folder")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--per-cell", action="store_true", help="print the cells that raise the peak")
    parser.add_argument("notebooks", nargs="*", help="notebook names (default: all), e.g. 04_training")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("LIVECELL_KIT_STATIC_PLOTS", "1")
    workdir = Path(os.environ.setdefault("LIVECELL_KIT_WORKDIR", str(ROOT / "build" / "work")))
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        notebooks = [nb for nb in notebooks if nb.stem in args.notebooks]
    print(f"work folder: {workdir} ({'fresh' if args.fresh else 'reused if present'})")
    print(f"{'notebook':16s} {'wall s':>8s} {'peak RSS MB':>12s} {'end RSS MB':>11s} {'TensorFlow':>11s}")
    reports = []
    for nb in notebooks:
        report = run_notebook(nb, per_cell=args.per_cell)
        reports.append(report)
        status = f"  FAILED: {report['error']}" if report["error"] else ""
        print(f"{nb.stem:16s} {report['seconds']:8.1f} {report['peak_rss_mb']:12.0f} {report['end_rss_mb']:11.0f} "
              f"{'loaded' if report['tensorflow'] else 'no':>11s}{status}", flush=True)
    total = sum(r["seconds"] for r in reports)
    peak = max((r["peak_rss_mb"] for r in reports), default=0.0)
    print(f"{'total':16s} {total:8.1f} {peak:12.0f}  (peak = largest single notebook)")
    print(f"targets: total <= {TOTAL_TARGET_S} s -> {'ok' if total <= TOTAL_TARGET_S else 'MISSED'}; "
          f"peak <= {PEAK_TARGET_MB} MB per notebook -> {'ok' if peak <= PEAK_TARGET_MB else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1) + "\n")
    return 1 if any(r["error"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
