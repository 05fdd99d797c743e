"""Benchmark: what the self-checks of the kit's derived files cost when they are opened.

    python bench/integrity_checks.py [--cells 200000] [--workdir build/integrity-checks]

* annotation index: a LIVECell-like annotation JSON of ``--cells`` cells (about 60 vertices
  each, two decimals, as LIVECell's) is indexed once; then :func:`data.index.index_problem`
  (sizes, then CRC-32 of every file) is timed on the finished folder — warm (files in the page
  cache) and after dropping this folder's pages (``posix_fadvise DONTNEED``: close to a cold
  open) — and given per MB of index and extrapolated to LIVECell's 525.6 MiB train JSON;
* mask cache: the CRC-32 check of one LIVECell-sized (704 x 520) semantic PNG read back;
* sample: :func:`atomic.part_problem` on the default sample (64 frames).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from livecell_kit import atomic, masks, sample  # noqa: E402
from livecell_kit.data import index as index_module  # noqa: E402

TRAIN_JSON_MIB = 525.6


def write_json(path: Path, cells: int, rng) -> None:
    """A LIVECell-like COCO file: 704 x 520 images of 300 cells, star polygons of 30 vertices."""
    per_image = 300
    with open(path, "w") as f:
        images = [{"id": i + 1, "file_name": f"A172_Phase_C7_1_00d00h00m_{i}.tif", "width": 704, "height": 520}
                  for i in range(-(-cells // per_image))]
        f.write('{"images": ' + __import__("json").dumps(images) + ', "annotations": [')
        for k in range(cells):
            cx, cy = rng.uniform(30, 670), rng.uniform(30, 490)
            t = np.linspace(0, 2 * np.pi, 30, endpoint=False)
            r = rng.uniform(8, 20) * (1 + 0.2 * np.sin(3 * t))
            xy = np.round(np.c_[cx + r * np.cos(t), cy + r * np.sin(t)].ravel(), 2)
            f.write(("," if k else "") + '{"segmentation": [[' + ",".join(f"{v:.2f}" for v in xy) + ']], '
                    f'"area": 700.5, "iscrowd": 0, "image_id": {k // per_image + 1}, '
                    f'"bbox": [{cx - 20:.2f}, {cy - 20:.2f}, 40.0, 40.0], "category_id": 1, "id": {k + 1}}}')
        f.write("]}")


def drop_pages(folder: Path) -> None:
    for p in folder.iterdir():
        with open(p, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def best_of(fn, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=200_000)
    ap.add_argument("--workdir", type=Path, default=Path("build/integrity-checks"))
    args = ap.parse_args(argv)
    os.environ["LIVECELL_KIT_WORKDIR"] = str(args.workdir / "work")
    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.workdir / f"ann-{args.cells}.json"
    if not source.exists():
        write_json(source, args.cells, np.random.default_rng(0))
    index = index_module.open_index(source, progress=False)
    folder, stamp = index.folder, index.meta
    expected = {"version": index_module.INDEX_VERSION, "sha256": stamp["sha256"]}
    index_mib = sum(size for size, _ in stamp["parts"].values()) / 2**20
    json_mib = source.stat().st_size / 2**20

    def check():
        index_module._VERIFIED.clear()
        assert index_module.index_problem(folder, expected) is None

    sizes_only = best_of(lambda: atomic.part_problem(folder, stamp["parts"], checksums=False))
    warm = best_of(check)
    cold = []
    for _ in range(3):
        drop_pages(folder)
        cold.append(best_of(check, 1))
    cold_s = min(cold)
    train_mib = index_mib / json_mib * TRAIN_JSON_MIB
    print(f"annotation index: {args.cells:,} cells, JSON {json_mib:.1f} MiB, index {index_mib:.1f} MiB "
          f"({len(stamp['parts'])} files)")
    print(f"  sizes only       {sizes_only * 1e3:7.2f} ms")
    print(f"  sizes + CRC-32   {warm * 1e3:7.1f} ms warm = {warm * 1e3 / index_mib:.2f} ms/MiB;  "
          f"{cold_s * 1e3:.1f} ms after dropping its pages = {cold_s * 1e3 / index_mib:.2f} ms/MiB")
    print(f"  LIVECell train (JSON {TRAIN_JSON_MIB} MiB -> index ~{train_mib:.0f} MiB): "
          f"~{warm * train_mib / index_mib:.2f} s warm, ~{cold_s * train_mib / index_mib:.2f} s cold "
          f"(once per process; later opens: sizes only)")

    png = args.workdir / "mask.png"
    rng = np.random.default_rng(1)
    mask = np.zeros((520, 704), np.uint8)
    for _ in range(150):
        y, x = rng.integers(0, 500), rng.integers(0, 680)
        mask[y:y + 20, x:x + 24] = 1
    masks.cache._save_atomic(mask, "semantic", png)
    per_mask = best_of(lambda: zlib.crc32(png.read_bytes()), 50)
    decode = best_of(lambda: masks.cache._decode_png(png), 50)
    print(f"mask cache: CRC-32 of a 704 x 520 semantic PNG ({png.stat().st_size / 1e3:.1f} kB) "
          f"{per_mask * 1e3:.3f} ms (decoding it: {decode * 1e3:.2f} ms)")

    out = sample.make_sample(args.workdir / "sample")
    parts = atomic.read_stamp(out / sample.STAMP_NAME)["parts"]
    mib = sum(size for size, _ in parts.values()) / 2**20
    t = best_of(lambda: atomic.part_problem(out, parts))
    print(f"sample: {len(parts)} files, {mib:.1f} MiB checked in {t * 1e3:.1f} ms ({t * 1e3 / mib:.2f} ms/MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
