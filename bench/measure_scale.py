"""``measure`` on thousands of frames: memory stays flat, and a killed run finishes on rerun.

    .venv/bin/python bench/measure_scale.py [--frames 5000] [--side 64] [--work DIR]

Writes ``--frames`` tiny synthetic LIVECell-named frames (2 cell types x 10 wells x 25 time
points x 5 locations x 2 crops for 5,000; bright squares, more of them later) and measures
them with a tiny "bright cells" model (3 channels, like the fixture in tests/conftest.py),
each run in its own process, printing:

1. peak RSS (``ru_maxrss``) of a fresh run over the first 1,000 frames and over all frames,
   and each run's RSS before measuring (the model and TensorFlow loaded) — flat memory means
   the two peaks match, not that they grow 5x;
2. a run killed (SIGKILL) once it has recorded some frames, then rerun: how many files the
   rerun kept and measured, and whether its frames.csv and wells.csv equal the fresh run's.

Not a test: the figures depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

CELL_TYPES, WELLS, HOURS, LOCATIONS, CROPS = ("A172", "BV2"), 10, 25, 5, 2


def _rss_mb() -> float:
    """Resident set size now, MB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_frames(folder: Path, count: int, side: int) -> None:
    """``count`` LIVECell-named frames of ``side`` x ``side`` pixels (skipped if already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.tif"))) == count:
        return
    rng = np.random.default_rng(0)
    n = 0
    for cell_type in CELL_TYPES:
        for well in range(1, WELLS + 1):
            for step in range(HOURS):
                for location in range(1, LOCATIONS + 1):
                    for crop in range(1, CROPS + 1):
                        if n == count:
                            return
                        hours = 4 * step
                        img = np.full((side, side), 20, np.uint8)
                        for _ in range(1 + step // 3 + int(rng.integers(0, 3))):
                            y, x = rng.integers(0, side - 8, 2)
                            img[y:y + 6, x:x + 6] = 230
                        name = (f"{cell_type}_Phase_B{well}_{location}_{hours // 24:02d}d{hours % 24:02d}h00m_"
                                f"{crop}.tif")
                        tifffile.imwrite(folder / name, img)
                        n += 1


def child(frames_dir: Path, out: Path, count: int) -> None:
    """Measure the first ``count`` frames into ``out``; print one JSON line of figures."""
    sys.path.insert(0, str(ROOT))
    import keras

    from livecell_kit.measure import measure_frames

    model = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(3, 1, activation="sigmoid")])
    model.layers[-1].set_weights([np.array([[[[20.0, -20.0, -20.0]]]], np.float32),
                                  np.array([-10.0, 10.0, 10.0], np.float32)])
    files = sorted(frames_dir.glob("*.tif"))[:count]
    start_rss, start = _rss_mb(), time.perf_counter()
    result = measure_frames(model, files, out, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": result.frames, "kept": result.kept, "measured": result.measured,
                      "rss_before_mb": round(start_rss), "peak_rss_mb": round(peak),
                      "seconds": round(time.perf_counter() - start, 1)}))


def _run(frames_dir: Path, out: Path, count: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", str(frames_dir), str(out), str(count)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _killed_run(frames_dir: Path, out: Path, count: int, after_files: int) -> int:
    """Start a run, SIGKILL it once its record holds ``after_files`` files; returns files recorded."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(frames_dir), str(out), str(count)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = out / "measured.jsonl"
    try:
        while proc.poll() is None:
            if record.is_file() and record.read_bytes().count(b"\n") - 1 >= after_files:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        proc.wait()
    return record.read_bytes().count(b"\n") - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--side", type=int, default=64, help="frame side in pixels")
    parser.add_argument("--work", type=Path, default=None, help="folder for frames and outputs (default: a temp folder)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(Path(args.child[0]), Path(args.child[1]), int(args.child[2]))
    work = args.work or Path(tempfile.mkdtemp(prefix="measure-scale-"))
    frames_dir = work / "frames"
    t0 = time.perf_counter()
    write_frames(frames_dir, args.frames, args.side)
    print(f"{args.frames} frames of {args.side}x{args.side} in {frames_dir} ({time.perf_counter() - t0:.0f} s)")
    for count in sorted({min(1000, args.frames), args.frames}):
        shutil.rmtree(work / f"out{count}", ignore_errors=True)
        r = _run(frames_dir, work / f"out{count}", count)
        print(f"{r['frames']:>5} frames: peak RSS {r['peak_rss_mb']} MB (RSS {r['rss_before_mb']} MB before "
              f"measuring), {r['seconds']} s = {r['frames'] / r['seconds']:.0f} frames/s")
    killed = work / "killed"
    shutil.rmtree(killed, ignore_errors=True)
    recorded = _killed_run(frames_dir, killed, args.frames, after_files=args.frames // 3)
    r = _run(frames_dir, killed, args.frames)
    same = all((killed / name).read_bytes() == (work / f"out{args.frames}" / name).read_bytes()
               for name in ("frames.csv", "wells.csv"))
    print(f"killed (SIGKILL) after {recorded} files recorded; rerun kept {r['kept']}, measured {r['measured']}: "
          f"frames.csv and wells.csv {'identical to' if same else 'DIFFER from'} the uninterrupted run's")
    if args.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
