"""Screen-scale Dagster runs: N synthetic plates through ``dagster asset materialize --select '*'`` on a fresh
instance and catalog, with the multiprocess executor at one worker and at two.

Prints, side by side from one run: the floor (listing and stat-ing every file, what any scan must do), the
one-process reference (``bioimage-pipeline ingest`` of the same root), and the Dagster runs, with each store
table's snapshot count (the target is one per run) and the ratio of one worker's time to two's.

    .venv/bin/python benchmarks/bench_fanout.py --workdir /tmp/fanout           # 100 plates (~25 min)
    .venv/bin/python benchmarks/bench_fanout.py --workdir /tmp/fanout --plates 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import plates
import run as harness

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STORE_TABLES = ("store_registry", "validation_issues", "image_assets", "chunk_index")
#: Issue targets.
MAX_SECONDS = 15 * 60
MIN_SPEEDUP = 1.6


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build_root(workdir: Path, count: int) -> Path:
    """``count`` plates of 17,280 TIFFs (hard links to one written plate), reused when already there."""
    root = workdir / f"plates-{count}"
    marker = root / ".complete"
    if marker.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    source = plates.write_plate(workdir / "source", 1)
    plates.link_plates(source, root, count)
    marker.write_text("")
    return root


def floor(root: Path) -> float:
    start = time.perf_counter()
    for folder, _, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(folder, name))
    return time.perf_counter() - start


def open_catalog(catalog_dir: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    uri, warehouse = f"sqlite:///{catalog_dir / 'catalog.db'}", f"file://{catalog_dir / 'warehouse'}"
    return SqlCatalog(harness.CATALOG_NAME, uri=uri, warehouse=warehouse)


def snapshots(catalog_dir: Path) -> dict[str, int]:
    catalog = open_catalog(catalog_dir)
    return {t: len(catalog.load_table((harness.OURS_NAMESPACE, t)).snapshots()) for t in STORE_TABLES}


def registry_ok(catalog_dir: Path) -> int:
    rows = open_catalog(catalog_dir).load_table((harness.OURS_NAMESPACE, "store_registry")).scan().to_arrow()
    return sum(1 for s in rows.column("status").to_pylist() if s == "ok")


def dagster_run(workdir: Path, root: Path, workers: int) -> tuple[float, float, int, dict[str, int], int]:
    """A fresh instance and catalog; ``dagster asset materialize --select '*'`` with ``workers`` workers."""
    base = workdir / f"dagster-{workers}"
    shutil.rmtree(base, ignore_errors=True)
    home, catalog_dir, profiles = base / "home", base / "catalog", base / "profiles"
    for folder in (home, catalog_dir, profiles):
        folder.mkdir(parents=True)
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text().replace(".dagster/", f"{home}/"))
    config = base / "run.yaml"
    config.write_text(f"execution: {{config: {{max_concurrent: {workers}}}}}\n")
    env = harness.clean_env(catalog_dir, base / "pyiceberg-home")
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "BIOIMAGE_STORES_DIR": str(root),
            "BIOIMAGE_PROFILES_DIR": str(profiles),
            "BIOIMAGE_WAREHOUSE_DIR": str(base / "warehouse"),
        }
    )
    cmd = [
        str(BIN / "dagster"),
        "asset",
        "materialize",
        "-m",
        "bioimage_pipeline.definitions",
        "--select",
        "*",
        "-c",
        str(config),
    ]
    _progress(f"  dagster asset materialize, {workers} worker(s) ...")
    wall, peak, code, _, err = harness.run_process(cmd, env, REPO, base / "logs")
    _progress(f"    {wall:.1f} s, {peak:.0f} MB, exit {code}")
    if code != 0:
        _progress(err[-3000:])
    return wall, peak, code, snapshots(catalog_dir), registry_ok(catalog_dir)


def reference(workdir: Path, root: Path) -> tuple[float, float, int]:
    base = workdir / "reference"
    shutil.rmtree(base, ignore_errors=True)
    (base / "catalog").mkdir(parents=True)
    env = harness.clean_env(base / "catalog", base / "pyiceberg-home")
    _progress("  bioimage-pipeline ingest (one process) ...")
    wall, peak, code, _, _ = harness.run_process(
        [str(BIN / "bioimage-pipeline"), "ingest", str(root)], env, base, base / "logs"
    )
    _progress(f"    {wall:.1f} s, {peak:.0f} MB, exit {code}")
    return wall, peak, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True, help="where plates, catalogs and instances go")
    parser.add_argument("--plates", type=int, default=100)
    parser.add_argument("--no-reference", action="store_true", help="skip the one-process ingest")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    _progress(f"building {args.plates} plates ...")
    root = build_root(args.workdir.absolute(), args.plates)
    floor_s = floor(root)
    ref = None if args.no_reference else reference(args.workdir.absolute(), root)
    runs = {w: dagster_run(args.workdir.absolute(), root, w) for w in (1, 2)}
    files = args.plates * plates.FULL.files
    print(f"{args.plates} plates, {files:,} TIFFs: dagster asset materialize --select '*' on a fresh instance")
    # Peak: the largest process the launcher waited for (the run's own; steps are forked by Dagster's forkserver).
    print(f"{'what':<44} {'wall s':>8} {'peak MB':>8}  snapshots per store table")
    print(f"{'floor: walk and stat every file':<44} {floor_s:>8.1f} {'-':>8}")
    if ref is not None:
        print(f"{'reference: bioimage-pipeline ingest':<44} {ref[0]:>8.1f} {ref[1]:>8.0f}  exit {ref[2]}")
    ok = True
    for workers, (wall, peak, code, snaps, stores) in runs.items():
        print(f"{f'dagster, {workers} worker(s)':<44} {wall:>8.1f} {peak:>8.0f}  {snaps} ({stores} plates ok)")
        # One snapshot per table, or none where the run had nothing for it (no validation issues).
        ok &= code == 0 and all(n <= 1 for n in snaps.values()) and snaps["chunk_index"] == 1
        ok &= stores == args.plates
    speedup = runs[1][0] / runs[2][0]
    print(f"speed-up, 2 workers over 1: {speedup:.2f}x (target >= {MIN_SPEEDUP}x)")
    print(f"2 workers within {MAX_SECONDS} s: {runs[2][0] <= MAX_SECONDS}")
    ok &= speedup >= MIN_SPEEDUP and runs[2][0] <= MAX_SECONDS
    print("all targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
