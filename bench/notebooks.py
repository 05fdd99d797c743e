"""Benchmark: run every notebook in a fresh kernel; print its wall time and its kernel's memory.

    python bench/notebooks.py [--fresh] [--keep-alive] [--per-cell] [--json FILE] [NOTEBOOK...]
    # --fresh: empty work folder first (all rebuilt); e.g. `--fresh --keep-alive 04_training 05_evaluation`

Each notebook runs through nbclient in a kernel of its own. Its memory is read from the kernel
process itself (Linux ``/proc/<pid>/status`` and ``smaps_rollup``): the peak resident set over the
notebook (``VmHWM``), and at the end the resident set, its own private memory (``RssAnon``) and
its proportional set (PSS: pages shared with other processes, TensorFlow's library code above
all, split among them). Binder restarts a session whose processes together pass 2 GB, and counts
a library that two kernels share once: ``--keep-alive`` keeps the kernels running, as students
leave them, and reports the largest PSS sum of the live kernels seen after any cell.
Targets: <= 1000 MB peak RSS per notebook; kernels kept alive <= 1850 MB together (the server
takes the rest of the 2 GB). The last column says whether TensorFlow got loaded.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
PEAK_TARGET_MB = 1000
# Binder's 2 GB for the whole session, less about 150 MB for the Jupyter server.
TOGETHER_TARGET_MB = 1850
TOTAL_TARGET_S = 300


def kernel_memory_mb(pid: int) -> dict:
    """Memory of process ``pid`` in MB (Linux /proc): ``peak`` (VmHWM, the peak resident set),
    ``now`` (VmRSS), ``private`` (RssAnon: its own heap, which no other process shares) and
    ``pss`` (proportional set: shared pages split among the processes mapping them, so the PSS of
    two kernels adds up to what they take together — TensorFlow's ~0.4 GB of library code once)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MB
    pss = next(int(line.split()[1]) / 1024 for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
               if line.startswith("Pss:"))
    return {"peak": fields["VmHWM"], "now": fields["VmRSS"], "private": fields["RssAnon"], "pss": pss}


def loads_tensorflow(pid: int) -> bool:
    """True when TensorFlow's native library is mapped into process ``pid``."""
    return "_pywrap_tensorflow" in Path(f"/proc/{pid}/maps").read_text()


def run_notebook(path: Path, timeout_s: int = 1800, per_cell: bool = False,
                 kept: contextlib.ExitStack | None = None, alive: list | None = None) -> dict:
    """Execute ``path`` in a new kernel (cwd: its folder); returns seconds, memory, errors.

    per_cell: also print each cell that raised the kernel's peak by 50 MB or more (what to shrink).
    kept, alive: keep the kernel running in ``kept`` after the notebook (as a student leaves it)
    and add its pid to ``alive``; ``together_peak_mb`` is then the largest PSS sum of this kernel
    and those already in ``alive``, read after every cell.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start, error, together = time.perf_counter(), None, 0.0
    with contextlib.ExitStack() as own:
        (kept if kept is not None else own).enter_context(client.setup_kernel())
        pid = client.km.provisioner.pid
        others = list(alive or [])
        try:
            for index, cell in enumerate(nb.cells):
                before = kernel_memory_mb(pid)["peak"]
                client.execute_cell(cell, index)
                grown = kernel_memory_mb(pid)["peak"] - before
                together = max(together, sum(kernel_memory_mb(p)["pss"] for p in [*others, pid]))
                if per_cell and grown >= 50:
                    first_line = next((ln for ln in cell.source.splitlines() if not ln.startswith("#")), "")
                    print(f"    cell {index:2d}: peak +{grown:5.0f} MB  {first_line[:70]}", flush=True)
        except Exception as exc:  # a failing cell: report it, still read the memory
            error = f"{type(exc).__name__}: {str(exc).splitlines()[-1] if str(exc) else ''}"
        seconds = time.perf_counter() - start
        memory, tensorflow = kernel_memory_mb(pid), loads_tensorflow(pid)
        if alive is not None:
            alive.append(pid)
    return {"notebook": path.stem, "seconds": seconds, "peak_rss_mb": memory["peak"],
            "end_rss_mb": memory["now"], "end_private_mb": memory["private"], "end_pss_mb": memory["pss"],
            "together_peak_mb": together, "tensorflow": tensorflow, "error": error}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="start from an empty work folder")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--per-cell", action="store_true", help="print the cells that raise the peak")
    parser.add_argument("--keep-alive", action="store_true",
                        help="keep every kernel running after its notebook, as a student leaves them, and "
                             "report what the live kernels hold together")
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
    print(f"{'notebook':16s} {'wall s':>7s} {'peak RSS':>9s} {'end RSS':>8s} {'end own':>8s} {'end PSS':>8s}"
          f"{'kept together':>14s} {'TensorFlow':>11s}   (MB)")
    reports = []
    with contextlib.ExitStack() as kept:
        alive: list = []
        for nb in notebooks:
            report = run_notebook(nb, per_cell=args.per_cell, kept=kept if args.keep_alive else None,
                                  alive=alive if args.keep_alive else None)
            reports.append(report)
            status = f"  FAILED: {report['error']}" if report["error"] else ""
            together = f"{report['together_peak_mb']:14.0f}" if args.keep_alive else f"{'-':>14s}"
            print(f"{nb.stem:16s} {report['seconds']:7.1f} {report['peak_rss_mb']:9.0f} {report['end_rss_mb']:8.0f} "
                  f"{report['end_private_mb']:8.0f} {report['end_pss_mb']:8.0f}{together} "
                  f"{'loaded' if report['tensorflow'] else 'no':>11s}{status}", flush=True)
    total = sum(r["seconds"] for r in reports)
    peak = max((r["peak_rss_mb"] for r in reports), default=0.0)
    print(f"{'total':16s} {total:7.1f} {peak:9.0f}  (peak = largest single notebook)")
    print(f"targets: total <= {TOTAL_TARGET_S} s -> {'ok' if total <= TOTAL_TARGET_S else 'MISSED'}; "
          f"peak RSS <= {PEAK_TARGET_MB} MB per notebook -> {'ok' if peak <= PEAK_TARGET_MB else 'MISSED'}")
    if args.keep_alive:
        together = max((r["together_peak_mb"] for r in reports), default=0.0)
        print(f"kernels kept alive together: peak PSS sum {together:.0f} MB (target <= {TOGETHER_TARGET_MB} "
              f"with the server) -> {'ok' if together <= TOGETHER_TARGET_MB else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1) + "\n")
    return 1 if any(r["error"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
