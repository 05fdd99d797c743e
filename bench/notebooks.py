"""Benchmark: execute every notebook from a fresh kernel; print wall time and peak RSS of each.

    python bench/notebooks.py [--fresh]      # --fresh: empty work folder first (sample, masks, run rebuilt)

Each notebook runs in its own `jupyter nbconvert --execute` process, wrapped so that the
peak resident memory of that process tree (kernel included) is read from getrusage —
the figure that matters on Binder, whose kernels restart above 2 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs one notebook as a child and reports the peak RSS of its whole (waited-for) process tree.
_WRAPPER = r"""
import json, resource, subprocess, sys, time
start = time.perf_counter()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="start from an empty work folder")
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    workdir = Path(env.setdefault("LIVECELL_KIT_WORKDIR", str(ROOT / "build" / "work")))
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    out_dir = Path(tempfile.mkdtemp(prefix="livecell-bench-"))
    total, peak, failed = 0.0, 0.0, []
    print(f"work folder: {workdir} ({'fresh' if args.fresh else 'reused if present'})")
    print(f"{'notebook':16s} {'wall s':>8s} {'peak RSS MB':>12s}")
    for nb in notebooks:
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
               "--ExecutePreprocessor.timeout=1800", "--output-dir", str(out_dir), str(nb)]
        report = json.loads(subprocess.check_output([sys.executable, "-c", _WRAPPER, *cmd], env=env, cwd=nb.parent))
        total += report["seconds"]
        peak = max(peak, report["peak_rss_mb"])
        status = "" if report["rc"] == 0 else "  FAILED"
        if report["rc"]:
            failed.append(nb.name)
        print(f"{nb.stem:16s} {report['seconds']:8.1f} {report['peak_rss_mb']:12.0f}{status}")
    print(f"{'total':16s} {total:8.1f} {peak:12.0f}  (peak = largest single notebook)")
    print(f"targets: total <= 300 s -> {'ok' if total <= 300 else 'MISSED'}; "
          f"peak <= 2048 MB -> {'ok' if peak <= 2048 else 'MISSED'}")
    shutil.rmtree(out_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
