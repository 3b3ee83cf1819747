"""Time ``check`` on a 96-well plate's metadata (no chunk data). Target: the median run under 2 s.

    python benchmarks/bench_check_plate.py [--version 0.4|0.5] [--fields N] [--levels N] [--runs N]

The plate (8 rows × 12 columns, every well filled) is written to a temporary directory with the project's
builder: each field is a 2-channel image with ``--levels`` resolution levels and omero metadata, and a
label image of the same levels. Each run opens the store afresh (nothing is cached between runs). Exit
status is 1 when a median misses the target.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bioimage_pipeline.validation import check
from bioimage_pipeline.validation.build import ArrayStub, ngff_image, ngff_plate, ngff_well, to_zarr

TARGET_SECONDS = 2.0
ROWS = list("ABCDEFGH")
COLUMNS = [f"{c:02d}" for c in range(1, 13)]
OMERO = {
    "channels": [
        {"color": "0000FF", "label": "DAPI", "window": {"min": 0, "max": 65535, "start": 100, "end": 2000}},
        {"color": "00FF00", "label": "GFP", "window": {"min": 0, "max": 65535, "start": 100, "end": 4000}},
    ]
}


def _field(version: str, levels: int, offset: float | None = None) -> object:
    shapes = [(2, 2160 // 2**k, 2560 // 2**k) for k in range(levels)]
    translations = None if offset is None else [[0.0, offset, offset]] * levels
    scales = [[1.0, 0.65 * 2**k, 0.65 * 2**k] for k in range(levels)]
    units = [None, "micrometer", "micrometer"]
    label = ngff_image(
        [ArrayStub((1, *s[1:]), "uint32") for s in shapes],
        axes="cyx",
        units=units,
        scales=scales,
        translations=translations,
        version=version,
        name="nuclei",
        image_label={"colors": [{"label-value": 1, "rgba": [255, 255, 0, 255]}]},
    )
    return ngff_image(
        [ArrayStub(s, "uint16") for s in shapes],
        axes="cyx",
        units=units,
        scales=scales,
        translations=translations,
        version=version,
        omero=OMERO,
        labels={"nuclei": label},
    )


def build_plate(where: Path, *, version: str, fields: int, levels: int, distinct: bool = False) -> Path:
    """Write the plate's metadata under ``where`` and return the store path. With ``distinct``, every field
    gets its own stage position (a translation), so no two fields share a metadata document."""
    shared = _field(version, levels)
    wells = {}
    for r, row in enumerate(ROWS):
        for c, column in enumerate(COLUMNS):
            images = {
                str(f): _field(version, levels, float(((r * 12 + c) * fields + f) * 1000)) if distinct else shared
                for f in range(fields)
            }
            wells[f"{row}/{column}"] = ngff_well(images, version=version)  # type: ignore[arg-type]
    plate = ngff_plate(wells, rows=ROWS, columns=COLUMNS, name="benchmark plate", version=version)
    return to_zarr(plate, where / "plate.ome.zarr")


def time_check(store: Path, runs: int, crosscheck: bool = False) -> tuple[list[float], list[float], int, bool]:
    """Wall-clock and CPU seconds of each run (CPU time shows what a busy machine adds by waiting)."""
    wall, cpu, issues, valid = [], [], 0, True
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        report = check(store, crosscheck=crosscheck)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        issues, valid = len(report.issues), report.valid
    return wall, cpu, issues, valid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=["0.4", "0.5"], action="append", help="default: both")
    parser.add_argument("--fields", type=int, default=4, help="fields of view per well (default 4)")
    parser.add_argument("--levels", type=int, default=5, help="resolution levels per image (default 5)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs (default 7)")
    parser.add_argument(
        "--distinct", action="store_true", help="give every field its own translation (no shared documents)"
    )
    parser.add_argument("--crosscheck", action="store_true", help="also ask ome-zarr-models (slow, see check())")
    args = parser.parse_args(argv)
    ok = True
    for version in args.version or ["0.4", "0.5"]:
        with tempfile.TemporaryDirectory(prefix="bench-plate-") as tmp:
            store = build_plate(
                Path(tmp), version=version, fields=args.fields, levels=args.levels, distinct=args.distinct
            )
            documents = sum(1 for p in store.rglob("*") if p.is_file())
            wall, cpu, issues, valid = time_check(store, args.runs, args.crosscheck)
        median = statistics.median(wall)
        ok = ok and median < TARGET_SECONDS and valid
        print(
            f"OME-NGFF {version}: 96 wells x {args.fields} fields x {args.levels} levels (+ labels), "
            f"{documents} metadata documents{', every field distinct' if args.distinct else ''}"
            f"{', with ome-zarr-models' if args.crosscheck else ''}"
        )
        print(f"  runs: {', '.join(f'{t:.3f}' for t in wall)} s; valid={valid}, issues={issues}")
        verdict = "OK" if median < TARGET_SECONDS else "TOO SLOW"
        print(
            f"  median {median:.3f} s wall, {statistics.median(cpu):.3f} s CPU "
            f"(target < {TARGET_SECONDS:.1f} s): {verdict}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
