"""A plate's single-cell profiles through ours, CytoTable, and the floor, side by side on the same files.

    .venv/bin/python benchmarks/bench_profiles.py [--sizes tenth full] [--inputs parquet sqlite]
                                                  [--workdir DIR] [--no-cytotable] [--small] [--json]

The plate is ``cellprofiler_plate.py``'s: 384 wells × 9 sites, ~4,000 features over Per_Image and three
compartments, at full size (650,000 cells) and at a tenth (65,000), as a CellProfiler SQLite and as the
single-cell Parquet table CytoTable makes of it; its 17,280 TIFFs (``plates.py``) are catalogued first,
once (not measured). Then, each run its own process measured by ``launch.py`` (wall time, peak RSS):

* **ours**: ``bioimage-pipeline export-cytomining --profiles FILE`` on a copy of that catalog — read,
  normalise, link, publish the profile tables, join, export the warehouse;
* **CytoTable 1.2.6**: ``convert(..., preset="cellprofiler_sqlite_pycytominer")`` on the SQLite, with
  Parsl's thread pool (two threads), in its own virtualenv (``peer_env.ensure_cytotable_python``);
* **floor**: pyarrow reading every column of the Parquet once, a row group at a time.

After each run of ours the warehouse is read back: every source row exactly once in
``profiles.joined_profiles``, every row linked, column names and order kept, and a checksum per feature
column equal to the source's. A run whose memory passes ``--max-rss-mb`` (default 16,000) is killed and
reported as such. Generated files are kept in ``--workdir`` (default ``benchmarks/.profiles-data``, git-ignored;
the full size needs ~40 GB) and reused.

Targets (full size, the Parquet input): ours ≤ 300 s and ≤ 3 GB peak; our peak at full size within 20 % of
the tenth's. Exit status: 0 every target met, 1 a target missed, 2 a run failed or was wrong.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cellprofiler_plate as cp
import peer_env
import plates
from run import clean_env, run_process

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SIZES = {"full": 650_000, "tenth": 65_000}
GENERATED = ("profile_row", "dataset_id", "image_id", "plate_id", "well_id", "site_id", "profile_table")


@dataclass
class Result:
    tool: str
    input: str
    size: str
    cells: int
    wall: float = 0.0
    peak_mb: float = 0.0
    killed: bool = False
    returncode: int = 0
    rows: int | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.killed and self.returncode == 0 and self.error is None and all(self.checks.values())


@dataclass
class Bench:
    workdir: Path
    small: bool
    max_rss_mb: float
    results: list[Result] = field(default_factory=list)

    @property
    def catalog(self) -> Path:
        return self.workdir / "catalog"

    def env(self) -> dict[str, str]:
        env = clean_env(self.catalog, self.workdir / "pyiceberg-home")
        env["BENCH_MAX_RSS_MB"] = str(self.max_rss_mb)
        return env


def _progress(message: str) -> None:
    print(f"[bench_profiles] {message}", file=sys.stderr, flush=True)


def profile_spec(bench: Bench, cells: int) -> cp.ProfileSpec:
    if bench.small:
        s = plates.SMALL
        return cp.ProfileSpec(cells=cells, features=300, rows=s.rows, columns=s.columns, fields=s.fields)
    return cp.ProfileSpec(cells=cells)


def prepare_catalog(bench: Bench) -> None:
    """The plate's TIFFs, catalogued once; each run of ours starts from a copy at the same path (Iceberg
    metadata holds absolute paths)."""
    base = bench.workdir / "catalog.base"
    spec = plates.SMALL if bench.small else plates.FULL
    stores = bench.workdir / ("stores-small" if bench.small else "stores")
    marker = base / "plate.json"
    if marker.exists() and marker.read_text() == json.dumps(asdict(spec)):
        return
    shutil.rmtree(stores, ignore_errors=True)
    shutil.rmtree(bench.catalog, ignore_errors=True)
    _progress(f"writing the plate ({spec.describe()}) and cataloguing it")
    plates.write_plate(stores, 1, spec)
    (bench.catalog / "data").mkdir(parents=True)
    wall, _, code, _, err = run_process(
        [str(BIN / "bioimage-pipeline"), "ingest", str(stores)],
        bench.env(),
        bench.workdir,
        bench.workdir / "logs/ingest",
    )
    if code:
        raise SystemExit(f"ingest of the plate failed:\n{err[-2000:]}")
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(bench.catalog, base, symlinks=True)
    marker.write_text(json.dumps(asdict(spec)))
    _progress(f"plate catalogued in {wall:.0f} s")


def restore_catalog(bench: Bench) -> None:
    shutil.rmtree(bench.catalog, ignore_errors=True)
    shutil.copytree(bench.workdir / "catalog.base", bench.catalog, symlinks=True)


def measure(bench: Bench, result: Result, cmd: list[str], env: dict[str, str], cwd: Path) -> str:
    log = bench.workdir / "logs" / f"{result.tool}-{result.input}-{result.size}"
    _progress(f"{result.tool} on the {result.size} {result.input} ({result.cells:,} cells) ...")
    result.wall, result.peak_mb, result.returncode, out, err = run_process(cmd, env, cwd, log)
    result.killed = json.loads((log / "result.json").read_text()).get("killed", False)
    if result.killed:
        result.error = f"killed at {bench.max_rss_mb:,.0f} MB resident after {result.wall:.0f} s"
    elif result.returncode:
        result.error = f"exit {result.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''}"
    _progress(f"  {result.wall:.1f} s, {result.peak_mb:,.0f} MB{' (' + result.error + ')' if result.error else ''}")
    bench.results.append(result)
    return out


def _column_sums(con: Any, relation: str, columns: list[str], as_double: bool = False) -> list[int | None]:
    """A checksum per column: the sum of its values' hashes, exact and independent of row order (a float sum
    would depend on the order DuckDB's threads add in), and different if a value or its type changed."""
    sums: list[int | None] = []
    for start in range(0, len(columns), 500):
        part = columns[start : start + 500]
        values = [f'CAST("{c}" AS DOUBLE)' if as_double else f'"{c}"' for c in part]
        sql = "SELECT " + ", ".join(f"sum(hash({v}))" for v in values) + f" FROM {relation}"
        sums += list(con.execute(sql).fetchone())
    return sums


def check_ours(bench: Bench, result: Result, source: Path, warehouse: Path) -> None:
    """Every cell once in profiles.joined_profiles and linked; its profile table's columns in the source's
    order with equal checksums, in the profile table and in joined_profiles. From the SQLite, the cells are
    the single-cell table ours makes of it, checked against the plate's Parquet (the same cells in
    CytoTable's shape)."""
    import duckdb
    import pyarrow.parquet as pq

    name = cp.PLATE.lower() + ("" if result.input == "parquet" else "_single_cell")
    parquet = source.with_suffix(".parquet")
    table_files = sorted((warehouse / "profiles" / name).glob("*.parquet"))
    joined_files = sorted((warehouse / "profiles" / "joined_profiles").glob("*.parquet"))
    if not table_files or not joined_files:
        result.error = f"{warehouse}: no Parquet files for profiles.{name} or profiles.joined_profiles"
        return
    con = duckdb.connect()

    def files(paths: list[Path]) -> str:
        return "read_parquet([" + ", ".join(f"'{f}'" for f in paths) + "], union_by_name = true)"

    # The single cells alone: the image table (from the SQLite) is another kind, joined in a table of its own.
    kinds = con.execute(f"SELECT DISTINCT profile_table FROM {files(joined_files)}").fetchall()
    result.checks["only single cells in joined_profiles"] = kinds == [(f"profile_{name}",)]
    joined = f"(SELECT * FROM {files(joined_files)} WHERE profile_table = 'profile_{name}')"
    rows, distinct, linked = con.execute(
        f"SELECT count(*), count(DISTINCT profile_row), count(*) FILTER (image_matched) FROM {joined}"
    ).fetchone()
    result.rows = rows
    result.checks["every row once"] = rows == distinct == result.cells
    result.checks["every row linked"] = linked == result.cells
    source_columns = pq.ParquetFile(parquet).schema_arrow.names
    kept = [c for c in pq.ParquetFile(table_files[0]).schema_arrow.names if c not in GENERATED]
    result.checks["columns and order kept"] = kept == source_columns
    numeric = [f.name for f in pq.ParquetFile(parquet).schema_arrow if str(f.type) in ("float", "double", "int64")]
    # SQLite stores the Parquet's float32 features as doubles (exactly): compared as doubles there.
    widen = result.input != "parquet"
    expected = _column_sums(con, f"read_parquet('{parquet}')", numeric, widen)
    result.checks["column checksums equal"] = (
        _column_sums(con, files(table_files), numeric, widen) == expected == _column_sums(con, joined, numeric, widen)
    )


def run_ours(bench: Bench, size: str, kind: str, source: Path) -> None:
    restore_catalog(bench)
    warehouse = bench.workdir / "runs" / f"warehouse-{kind}-{size}"
    shutil.rmtree(warehouse, ignore_errors=True)
    result = Result(tool="ours", input=kind, size=size, cells=SIZES[size] if not bench.small else small_cells(size))
    cmd = [str(BIN / "bioimage-pipeline"), "export-cytomining", "--warehouse-root", str(warehouse)]
    measure(bench, result, [*cmd, "--profiles", str(source), "--json"], bench.env(), bench.workdir)
    if result.error is None:
        check_ours(bench, result, source, warehouse)


def run_cytotable(bench: Bench, size: str, source: Path, python: Path) -> None:
    runs = bench.workdir / "runs"
    dest = runs / f"cytotable-{size}.parquet"
    shutil.rmtree(dest, ignore_errors=True) if dest.is_dir() else dest.unlink(missing_ok=True)
    cwd = runs / "cytotable-cwd"  # Parsl writes runinfo/ where it runs
    cwd.mkdir(parents=True, exist_ok=True)
    env = {**bench.env(), "HOME": str(peer_env.cytotable_home())}
    result = Result(
        tool="CytoTable", input="sqlite", size=size, cells=SIZES[size] if not bench.small else small_cells(size)
    )
    out = measure(
        bench, result, [str(python), str(HERE / "drivers" / "cytotable_convert.py"), str(source), str(dest)], env, cwd
    )
    if result.error is None:
        report = json.loads(out.strip().splitlines()[-1])
        result.rows = report["rows"]
        result.checks["every row once"] = report["rows"] == result.cells
    if dest.is_file():
        dest.unlink()  # a full-size conversion is ~20 GB


def run_floor(bench: Bench, size: str, source: Path) -> None:
    result = Result(
        tool="floor", input="parquet", size=size, cells=SIZES[size] if not bench.small else small_cells(size)
    )
    out = measure(
        bench,
        result,
        [sys.executable, str(HERE / "drivers" / "read_parquet.py"), str(source)],
        bench.env(),
        bench.workdir,
    )
    if result.error is None:
        result.rows = json.loads(out)["rows"]
        result.checks["every row once"] = result.rows == result.cells


def small_cells(size: str) -> int:
    return 600 if size == "full" else 60


_COLUMNS = (("tool", 10), ("input", 7), ("size", 5), ("cells", 9), ("wall s", 8), ("peak MB", 8), ("rows", 9))


def _row(cells: list[str], last: str) -> str:
    padded = [c.ljust(w) if i < 3 else c.rjust(w) for i, (c, (_, w)) in enumerate(zip(cells, _COLUMNS, strict=True))]
    return "| " + " | ".join([*padded, last]) + " |"


def render(bench: Bench) -> str:
    lines = [_row([n for n, _ in _COLUMNS], "checks"), "|" + "|".join("-" * (w + 2) for _, w in _COLUMNS) + "|---|"]
    for r in bench.results:
        checks = "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in r.checks.items())
        checks = "; ".join(c for c in (checks, r.error or "") if c)
        rows = f"{r.rows:,}" if r.rows is not None else "-"
        cells = [r.tool, r.input, r.size, f"{r.cells:,}", f"{r.wall:.1f}", f"{r.peak_mb:,.0f}", rows]
        lines.append(_row(cells, checks))
    return "\n".join(lines)


def targets(bench: Bench) -> list[tuple[str, bool]]:
    def ours(size: str) -> Result | None:
        return next((r for r in bench.results if r.tool == "ours" and r.input == "parquet" and r.size == size), None)

    full, tenth = ours("full"), ours("tenth")
    out = []
    if full is not None:
        out.append((f"full plate through ours ≤ 300 s ({full.wall:.0f} s)", full.ok and full.wall <= 300))
        out.append((f"full plate through ours ≤ 3 GB peak ({full.peak_mb:,.0f} MB)", full.ok and full.peak_mb <= 3072))
        if tenth is not None and tenth.ok:
            ratio = full.peak_mb / tenth.peak_mb
            out.append((f"peak at full size within 20 % of the tenth's ({ratio:.2f}×)", full.ok and ratio <= 1.2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["tenth", "full"])
    parser.add_argument("--inputs", nargs="+", choices=["parquet", "sqlite"], default=["parquet", "sqlite"])
    parser.add_argument("--workdir", type=Path, default=HERE / ".profiles-data")
    parser.add_argument("--no-cytotable", action="store_true")
    parser.add_argument("--max-rss-mb", type=float, default=16_000)
    parser.add_argument("--small", action="store_true", help="a 6-well plate, 60 and 600 cells: checks the harness")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    bench = Bench(workdir=args.workdir.absolute(), small=args.small, max_rss_mb=args.max_rss_mb)
    bench.workdir.mkdir(parents=True, exist_ok=True)
    python = None if args.no_cytotable else peer_env.ensure_cytotable_python()
    prepare_catalog(bench)
    for size in args.sizes:
        cells = small_cells(size) if bench.small else SIZES[size]
        _progress(f"profiles of {cells:,} cells (generated once, then reused)")
        sqlite, parquet = cp.write_profiles(bench.workdir / f"profiles-{cells}", profile_spec(bench, cells))
        run_floor(bench, size, parquet)
        if "parquet" in args.inputs:
            run_ours(bench, size, "parquet", parquet)
        if "sqlite" in args.inputs:
            run_ours(bench, size, "sqlite", sqlite)
        if python is not None:
            run_cytotable(bench, size, sqlite, python)
    met = targets(bench)
    if args.json:
        print(json.dumps({"results": [asdict(r) | {"ok": r.ok} for r in bench.results], "targets": met}, indent=2))
    else:
        print(render(bench))
        for text, ok in met:
            print(f"{'met   ' if ok else 'MISSED'} {text}")
    if any(not r.ok for r in bench.results if r.tool != "ours" or r.input == "parquet"):
        return 2
    return 0 if all(ok for _, ok in met) else 1


if __name__ == "__main__":
    raise SystemExit(main())
