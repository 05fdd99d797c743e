"""Benchmark: the kit on a LIVECell-sized copy — wall time and peak memory of each first-contact step.

    python bench/livecell_scale.py [--scale 1] [--workdir build/livecell-scale] [--only index,notebooks,train,download]
                                   [--json OUT]

Builds (once, cached with a stamp) a LIVECell-sized copy of the kit's synthetic sample —
3,253 / 570 / 1,564 image records, 1.7 M cells, JSONs of 525.6 / 92.8 / 248.7 MiB, images.zip of
~1.2 GB (see ``bench/livecell_scale_copy.py``) — and runs each step in its own child process:

* ``index``: ``data.load_split(root, split)`` for val, test and train in a fresh process (its
  first call; a second call in the same process is in the note), then once more in a new process
  (reuse of whatever the first one left on disk);
* ``notebooks``: notebooks 01 and 02 executed by ``jupyter nbconvert --execute`` with
  ``LIVECELL_KIT_DATA_ROOT`` set to the copy (02 after 01, in the same work folder);
* ``train``: ``train.train(root, "seed", callbacks=[...])`` — the call behind ``livecell-kit train
  --preset seed`` — stopped by a Keras callback when the first batch begins: everything up to the
  first step (subsets, mask caches, tf.data, model); "after" = the RSS still held at that moment;
* ``download``: ``livecell-kit download --out DIR [--subset seed|course|full]`` from a local
  Range-capable HTTP server on 127.0.0.1 serving the copy in the official layout; bytes counted by
  the server.  A subset the CLI does not offer yet is reported "not available in this version".

Each group starts cold: its own empty work, cache and XDG cache folders, and any file an earlier
step left under the copy's data root (an index kept beside the data) removed.  Logs of every
child are in ``<workdir>/scale-<scale>/run/<group>/logs``.

Memory: "tree" is the largest sum of RSS over the step's process and all its descendants, sampled
every 0.1 s (psutil, else /proc); "proc" is the exact peak RSS of the largest single process of the
tree (getrusage(RUSAGE_CHILDREN).ru_maxrss in a small launcher that runs only that step).
The targets (issue 13) are for the full-size copy (``--scale 1``); a verdict at a smaller scale
carries a "*", except the download shares, which hold at any scale.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from livecell_scale_copy import build_copy
from livecell_scale_harness import MIB, RangeServer, Row, disk_bytes, psutil, run_child

from livecell_kit import atomic, data

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("index", "notebooks", "train", "download")
NOTEBOOK_PEAK_MIB = TRAIN_PEAK_MIB = 1536  # 1.5 GB: under Binder's 2 GB with room for the kernel's own
INDEX_TRAIN_S, REUSE_TRAIN_S = 15.0, 1.0
SEED_IMAGE_SHARE, COURSE_TOTAL_BYTES = 0.40, 400e6

INDEX_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from livecell_kit import data
t1 = time.perf_counter()
split = data.load_split(sys.argv[1], sys.argv[2])
t2 = time.perf_counter()
data.load_split(sys.argv[1], sys.argv[2])
t3 = time.perf_counter()
rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
print(json.dumps({"import_s": t1 - t0, "step_s": t2 - t1, "second_s": t3 - t2, "images": len(split.images),
                  "rss_after_mib": rss / 2**20}))
"""

TRAIN_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from livecell_kit import course
course.import_tensorflow_quietly()
import keras
from livecell_kit import train

class FirstStep(Exception):
    pass

class StopAtFirstStep(keras.callbacks.Callback):
    def on_train_batch_begin(self, batch, logs=None):
        raise FirstStep

t1 = time.perf_counter()
try:
    train.train(sys.argv[1], preset="seed", out_dir=sys.argv[2], callbacks=[StopAtFirstStep()])
except FirstStep:
    rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    print(json.dumps({"import_s": t1 - t0, "step_s": time.perf_counter() - t1, "rss_after_mib": rss / 2**20}))
    sys.stdout.flush()
    os._exit(0)  # skip tf.data's thread teardown
sys.exit("train() returned without starting a step")
"""


# --------------------------------------------------------------------------- rows

def _fresh(*paths: Path) -> None:
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)
        p.mkdir(parents=True)


def _env(run: Path, **extra) -> dict:
    """The children's environment: this checkout's kit first, own work, cache and XDG folders."""
    env = {k: v for k, v in os.environ.items() if k not in ("LIVECELL_BASE_URL", "LIVECELL_KIT_DATA_ROOT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(TF_CPP_MIN_LOG_LEVEL="2", LIVECELL_KIT_STATIC_PLOTS="1", MPLBACKEND="Agg",
               LIVECELL_KIT_WORKDIR=str(run / "work"), LIVECELL_KIT_DATA=str(run / "cache"),
               XDG_CACHE_HOME=str(run / "xdg"), **extra)
    return env


def _judge(row: Row, value, limit, text: str) -> None:
    row.target = text
    if row.status == "ok" and value is not None:
        row.verdict = "ok" if value <= limit else "MISSED"


def _stray_files(root: Path, expected: set) -> list[Path]:
    """Files under the data root that the build did not write (an index kept beside the data?)."""
    return [p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in expected]


def remove_strays(root: Path, expected: set) -> None:
    """Start a group cold: whatever an earlier step left under the root goes."""
    strays = _stray_files(root, expected)
    for p in strays:
        p.unlink()
    if strays:
        print(f"removed {len(strays)} files an earlier step left under {root}: {strays[0].name} ...")


def index_rows(root: Path, run: Path, expected: set) -> list[Row]:
    _fresh(run)
    env, rows = _env(run), []
    for split in ("val", "test", "train"):
        cmd = [sys.executable, "-c", INDEX_CHILD, str(root), split]
        cold, report = run_child(f"index {split}", cmd, env, run / "logs")
        cold.step = f"index {split}: load_split, 1st call"
        written = sum(p.stat().st_size for p in _stray_files(root, expected)) + disk_bytes(run / "work", run / "cache",
                                                                                   run / "xdg")
        cold.disk_mib = written / MIB
        if report:
            cold.note = f"{report['images']} images; 2nd call in-process {report['second_s']:.2f} s"
        reuse, report = run_child(f"reuse {split}", cmd, env, run / "logs")
        reuse.step = f"index {split}: new process (reuse)"
        if split == "train":
            _judge(cold, cold.step_s, INDEX_TRAIN_S, f"<= {INDEX_TRAIN_S:g} s")
            _judge(reuse, reuse.step_s, REUSE_TRAIN_S, f"<= {REUSE_TRAIN_S:g} s")
            cold.note += " (train also reads val: train/val overlap)"
        rows += [cold, reuse]
    return rows


def notebook_rows(root: Path, run: Path) -> list[Row]:
    _fresh(run)
    env, rows = _env(run, LIVECELL_KIT_DATA_ROOT=str(root)), []
    for number in ("01", "02"):
        notebook = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
               "--ExecutePreprocessor.timeout=7200", "--output-dir", str(run / "out"), str(notebook)]
        row, _ = run_child(f"notebook {notebook.stem}", cmd, env, run / "logs", cwd=notebook.parent)
        _judge(row, max(row.tree_mib, row.proc_mib), NOTEBOOK_PEAK_MIB, f"peak <= {NOTEBOOK_PEAK_MIB} MiB")
        rows.append(row)
    return rows


def train_rows(root: Path, run: Path) -> list[Row]:
    _fresh(run)
    cmd = [sys.executable, "-c", TRAIN_CHILD, str(root), str(run / "run")]
    row, _ = run_child("train --preset seed: data phase to 1st step", cmd, _env(run), run / "logs")
    row.disk_mib = disk_bytes(run / "work") / MIB
    row.note = "disk = mask caches; after = RSS held when the first batch begins"
    _judge(row, max(row.tree_mib, row.proc_mib), TRAIN_PEAK_MIB, f"peak <= {TRAIN_PEAK_MIB} MiB")
    return [row]


def download_subsets() -> tuple[str, ...]:
    """The ``--subset`` choices of this kit's ``download`` command; () when it has none."""
    text = subprocess.run([sys.executable, "-m", "livecell_kit.cli", "download", "--help"], capture_output=True,
                          text=True, env=_env(Path("/nonexistent"))).stdout
    match = re.search(r"--subset \{([^}]*)\}", text)
    if match:
        return tuple(match.group(1).split(","))
    return ("seed", "course", "full") if "--subset" in text else ()


def download_rows(server_dir: Path, run: Path) -> list[Row]:
    subsets, rows = download_subsets(), []
    zip_bytes = (server_dir / "images.zip").stat().st_size
    with RangeServer(server_dir) as server:
        for subset in ("seed", "course", "full"):
            step = f"download --subset {subset}"
            if subset not in subsets and not (subset == "full" and not subsets):
                rows.append(Row(step, status="not available in this version"))
                continue
            out = run / subset
            _fresh(out)
            cmd = [sys.executable, "-m", "livecell_kit.cli", "download", "--out", str(out / "data"),
                   "--base-url", server.url] + (["--subset", subset] if subsets else [])
            server.reset()
            row, _ = run_child(step if subsets else "download (no --subset: everything)", cmd, _env(out), out / "logs")
            images = server.sent.get("images.zip", 0)
            total = sum(server.sent.values())
            row.moved_mib, row.disk_mib = total / MIB, disk_bytes(out / "data", out / "cache", out / "work") / MIB
            row.note = (f"images.zip {images / MIB:.1f} MiB ({images / zip_bytes:.0%}), JSON "
                        f"{(total - images) / MIB:.1f} MiB; {server.requests} requests, {server.ranged} ranged")
            if subset == "seed":
                _judge(row, images / zip_bytes, SEED_IMAGE_SHARE, f"images <= {SEED_IMAGE_SHARE:.0%} of images.zip")
            elif subset == "course":
                _judge(row, total, COURSE_TOTAL_BYTES, f"<= {COURSE_TOTAL_BYTES / 1e6:.0f} MB in all")
            rows.append(row)
            if row.status == "ok":
                shutil.rmtree(out, ignore_errors=True)  # GBs at full scale; the figures are kept
    return rows


# --------------------------------------------------------------------------- table

def _cell(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_table(rows: list[Row]) -> None:
    header = (f"{'step':44s} {'step s':>8s} {'proc s':>8s} {'tree MiB':>9s} {'proc MiB':>9s} {'after MiB':>9s} "
              f"{'sent MiB':>9s} {'disk MiB':>9s}  {'target':32s} verdict")
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.status not in ("ok", "failed"):
            print(f"{r.step:44s} {r.status}")
            continue
        print(f"{r.step:44s} {_cell(r.step_s, 2):>8s} {_cell(r.process_s, 1):>8s} {_cell(r.tree_mib):>9s} "
              f"{_cell(r.proc_mib):>9s} {_cell(r.after_mib):>9s} {_cell(r.moved_mib, 1):>9s} "
              f"{_cell(r.disk_mib, 1):>9s}  {r.target:32s} {r.verdict or ('FAILED' if r.status == 'failed' else '')}")
        if r.note:
            print(f"{'':46s}{r.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "livecell-scale",
                        help="where the copy (cached, one folder per scale) and the runs' files go")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of LIVECell's records, cells and JSON bytes (e.g. 0.01 for a quick run)")
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"comma-separated groups to run, of {','.join(GROUPS)} (default: all)")
    parser.add_argument("--json", type=Path, default=None, help="write all figures to this JSON file")
    args = parser.parse_args(argv)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown or not 0 < args.scale <= 1:
        parser.error(f"--only takes {GROUPS} (got {unknown}); --scale must be in (0, 1]")
    work = args.workdir / f"scale-{args.scale:g}"
    stamp = build_copy(work, args.scale)
    figures = stamp["figures"]
    print("copy: " + "; ".join(f"{s} {f['records']} records, {f['cells']:,} cells, {f['mib']} MiB, "
                               f"{f['mean_vertices']} vertices/cell" for s, f in figures.items() if s in data.SPLITS)
          + f"; {figures['images']['train_val_files'] + figures['images']['test_files']} frames, images.zip "
          f"{figures['images']['zip_mib']} MiB; built in {stamp['seconds']:.0f} s")
    root, run = work / "root", work / "run"
    expected = {f[len("root/"):] for f in stamp["files"]}
    rows: list[Row] = []
    for group in GROUPS:
        if group not in groups:
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {group} ...", flush=True)
        if group != "download":
            remove_strays(root, expected)
        if group == "index":
            rows += index_rows(root, run / "index", expected)
        elif group == "notebooks":
            rows += notebook_rows(root, run / "notebooks")
        elif group == "train":
            rows += train_rows(root, run / "train")
        else:
            rows += download_rows(work / "server", run / "download")
    if args.scale < 1:  # time and memory targets are for the full size; the download shares hold at any
        for r in rows:
            if r.verdict and not r.step.startswith("download"):
                r.verdict += "*"
    print_table(rows)
    if args.scale < 1:
        print(f"* the target is for --scale 1; this run is at --scale {args.scale:g}")
    if args.json:
        atomic.write_json(args.json, {"scale": args.scale, "workdir": work, "build_seconds": stamp["seconds"],
                                      "copy": figures, "psutil": psutil is not None,
                                      "rows": [asdict(r) for r in rows]})
    return 1 if any(r.status == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
