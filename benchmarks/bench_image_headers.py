"""Time reading the headers of an HCS plate's worth of small single-image TIFFs.

    python benchmarks/bench_image_headers.py [--files N] [--runs N] [--workdir DIR]

Writes N (default 17,280: 384 wells × 9 sites × 5 channels) 64×64 uint16 TIFFs with tifffile into a
temporary folder: a quarter uncompressed in one strip, a quarter uncompressed in 16-row strips, a quarter
LZW in 16-row strips, a quarter deflate with the horizontal predictor in 16-row strips. (This tifffile has
no LZW encoder without imagecodecs: the LZW files are written by tifffile as pre-encoded strips, with a
valid literal-only LZW stream per strip, and their Compression tag then set to 5.) Then, over every file,
in this order in each run:

- floor: ``os.open`` + ``os.pread`` of the first 4 KiB + ``os.close``, nothing parsed;
- ours: :func:`bioimage_pipeline.formats.imagefile.read_image_file`;
- ours again with its layout cache emptied before every file (a folder where no two files share their tags,
  types or layout; informational, no target);
- tifffile: ``tifffile.TiffFile(path)`` and its first page's shape and strip offsets.

It prints the median of the runs for each, per file, and the ratios. Targets: ours within 3× of the
floor, tifffile at least 5× slower than ours. Exit status 1 when a target is missed. The files are in the
page cache when timed (they were just written): this is the cost of parsing, not of the disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from bioimage_pipeline.formats import imagefile
from bioimage_pipeline.formats.imagefile import read_image_file

FLOOR_BYTES = 4096
MAX_OF_FLOOR = 3.0
MIN_TIFFFILE_RATIO = 5.0


def lzw_literal(data: bytes) -> bytes:
    """A valid TIFF LZW stream of ``data`` that only emits literal codes: Clear, up to 250 literals, ...,
    EndOfInformation, all 9 bits wide (a Clear every 250 codes keeps the table below the 10-bit switch)."""
    raw = np.frombuffer(data, np.uint8).astype(np.uint16)
    n_blocks = -(-len(raw) // 250)
    codes = np.empty(len(raw) + n_blocks + 1, np.uint16)
    positions = np.arange(len(raw)) + np.arange(len(raw)) // 250 + 1
    codes[positions] = raw
    codes[np.arange(n_blocks) * 251] = 256  # Clear
    codes[-1] = 257  # EndOfInformation
    bits = ((codes[:, None] >> np.arange(8, -1, -1, dtype=np.uint16)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def write_files(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths: list[Path] = []
    for i in range(n):
        well, site, channel = i // 45, i // 5 % 9, i % 5
        path = folder / f"r{well // 24 + 1:02d}c{well % 24 + 1:02d}f{site + 1:02d}-ch{channel + 1}.tif"
        data = rng.integers(0, 4096, (64, 64), dtype=np.uint16)
        kind = i % 4
        if kind == 0:
            tifffile.imwrite(path, data, resolution=(1 / 0.65, 1 / 0.65), resolutionunit="MICROMETER")
        elif kind == 1:
            tifffile.imwrite(path, data, rowsperstrip=16)
        elif kind == 2:
            strips = [lzw_literal(data[r : r + 16].tobytes()) for r in range(0, 64, 16)]
            tifffile.imwrite(
                path, iter(strips), shape=data.shape, dtype=data.dtype, compression="zlib", rowsperstrip=16
            )
            with tifffile.TiffFile(path) as tif:
                at = tif.pages.first.tags["Compression"].valueoffset
            with open(path, "r+b") as fh:
                fh.seek(at)
                fh.write((5).to_bytes(2, "little"))
        else:
            tifffile.imwrite(path, data, compression="zlib", predictor=True, rowsperstrip=16)
        paths.append(path)
    return paths


def floor(paths: list[Path]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        os.pread(fd, FLOOR_BYTES, 0)
        os.close(fd)


def ours(paths: list[Path]) -> None:
    for p in paths:
        if read_image_file(p) is None:
            raise SystemExit(f"{p}: read_image_file returned None")


def ours_no_reuse(paths: list[Path]) -> None:
    """Every file as if it were the first of its kind: the layout cache emptied before each read."""
    plans, sizes = imagefile._PLANS, imagefile._SIZES
    for p in paths:
        plans.clear()
        sizes.clear()
        if read_image_file(p) is None:
            raise SystemExit(f"{p}: read_image_file returned None")


def with_tifffile(paths: list[Path]) -> None:
    for p in paths:
        with tifffile.TiffFile(p) as tif:
            page = tif.pages.first
            page.shape, page.dataoffsets  # noqa: B018


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=17_280)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="write the files here (kept) instead of a temporary folder")
    args = parser.parse_args(argv)

    folder = args.workdir or Path(tempfile.mkdtemp(prefix="bench-image-headers-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        paths = write_files(folder, args.files)
        print(f"wrote {len(paths):,} files in {time.perf_counter() - start:.1f} s ({folder})")
        checked = read_image_file(paths[2])
        assert checked is not None and checked.codecs == ["lzw"], checked
        methods: dict[str, Callable[[list[Path]], None]] = {
            "floor (4 KiB pread)": floor,
            "read_image_file": ours,
            "  (no layout reuse)": ours_no_reuse,
            "tifffile first page": with_tifffile,
        }
        times: dict[str, list[float]] = {name: [] for name in methods}
        for _ in range(args.runs):
            for name, func in methods.items():
                start = time.perf_counter()
                func(paths)
                times[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(t) for name, t in times.items()}
        base = medians["floor (4 KiB pread)"]
        print(f"\nmedian of {args.runs} runs over {len(paths):,} files")
        for name, m in medians.items():
            print(f"  {name:<22} {m:7.3f} s  {m / len(paths) * 1e6:6.1f} µs/file  {m / base:5.1f}× floor")
        ours_s, tiff_s = medians["read_image_file"], medians["tifffile first page"]
        ok_floor = ours_s <= MAX_OF_FLOOR * base
        ok_tiff = tiff_s >= MIN_TIFFFILE_RATIO * ours_s
        verdict = {True: "ok", False: "MISSED"}
        print(f"\nours / floor    {ours_s / base:5.2f}×  (target ≤ {MAX_OF_FLOOR:g}×)  {verdict[ok_floor]}")
        print(f"tifffile / ours {tiff_s / ours_s:5.2f}×  (target ≥ {MIN_TIFFFILE_RATIO:g}×)  {verdict[ok_tiff]}")
        return 0 if ok_floor and ok_tiff else 1
    finally:
        if args.workdir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
