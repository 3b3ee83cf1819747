"""Benchmark of one Opera Phenix plate (17,280 TIFFs) as one store, and of a catalog of 100 such plates.

    .venv/bin/python benchmarks/bench_plate.py [--small] [--repeat N] [--plates N] [--peer-files N]
                                               [--peer-python PATH] [--workdir DIR] [--keep]

Printed side by side, in one run, on plates written by ``plates.py`` (a Harmony export: 384 wells × 9 fields
× 5 channels of small TIFFs):

* **floor**: list and stat the plate's files, then also read the first 4 KiB of each (in-process, median of
  3): what any tool must at least pay to look at every file once;
* **peer**: ``iceberg-bioimage`` ingesting a spread sample of the plate's TIFFs (it treats each TIFF as a
  store), whole process, with the wall time extrapolated to the whole plate, labelled as such;
* **ours**: ``bioimage-pipeline ingest ROOT`` on the plate with and without ``Index.idx.xml``, whole process,
  fresh catalog each run: wall, peak RSS, datasets in ``store_registry``, ``image_assets`` rows and the
  live Parquet data files per table for the plate;
* **100 plates** (TIFFs hard-linked from the first plate, an index each): ingest them all (time reported,
  no target), then ``status`` and a ``count(DISTINCT dataset_id)`` query (median of 3), then re-ingest the
  root after one plate changed.

Targets (full size only; ``--small`` prints them as informational): one plate ingested in ≤ 8 s and
≤ 400 MB peak with ≤ 10 data files per table; on 100 plates ``status`` < 2 s and the query < 2 s;
re-ingesting one changed plate ≤ 10 s. Exit status: 0 every target met, 1 a target missed, 2 a run failed
or a check of the catalog failed (each plate one dataset named after it, 17,280 image_assets rows each).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import peer_env
import plates
import run as harness  # run.py: measured processes (through launch.py), environments, versions, git state

QUERY = "SELECT count(*), count(DISTINCT dataset_id) FROM image_assets"
PEER_NAMESPACE = ("bioimage", "cytotable")  # where drivers/peer.py publishes
FLOOR_RUNS = 3
CLI_RUNS = 3  # status and query, each


# --- results -----------------------------------------------------------------------------------------


@dataclass
class Check:
    """Something the catalog (or a run) must get right; a failed check makes the exit status 2."""

    description: str
    ok: bool
    detail: str = ""


@dataclass
class Target:
    description: str
    passed: bool
    measured: str
    informational: bool = False  # --small: printed, never fails the run


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    small: bool = False

    def check(self, description: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(description, ok, detail))
        if not ok:
            print(f"  CHECK FAILED: {description}: {detail}", file=sys.stderr, flush=True)
        return ok

    def target(self, description: str, passed: bool, measured: str) -> None:
        self.targets.append(Target(description, passed, measured, informational=self.small))


@dataclass
class Measured:
    """One whole process run through launch.py."""

    label: str
    wall: float
    peak_mb: float
    returncode: int
    stdout: str
    stderr: str

    def failure(self) -> str:
        return f"exit {self.returncode}: {' '.join(self.stderr.strip().splitlines()[-3:])[:500]}"


@dataclass
class Context:
    tools: harness.Tools
    report: Report
    spec: plates.PlateSpec

    @property
    def workdir(self) -> Path:
        return self.tools.workdir


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- running processes -------------------------------------------------------------------------------


def fresh_catalog(ctx: Context, name: str) -> Path:
    path = ctx.workdir / "catalogs" / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def measure(ctx: Context, label: str, cmd: list[str], catalog_dir: Path) -> Measured:
    """Run ``cmd`` as its own process against ``catalog_dir`` (run.py's environment and launcher)."""
    env = harness.clean_env(catalog_dir, ctx.workdir / "pyiceberg-home")
    log_dir = ctx.workdir / "logs" / label.replace(" ", "_")
    _progress(f"  {label} ...")
    wall, peak, code, out, err = harness.run_process(cmd, env, catalog_dir, log_dir)
    _progress(f"    {wall:.2f} s, {peak:.0f} MB, exit {code}")
    return Measured(label, wall, peak, code, out, err)


def ours(ctx: Context, label: str, argv: list[str], catalog_dir: Path) -> Measured:
    return measure(ctx, label, [str(ctx.tools.ours_cli), *argv], catalog_dir)


def printed_json(run: Measured) -> Any:
    """The JSON document a ``--json`` command printed (its whole stdout)."""
    return json.loads(run.stdout)


# --- reading a catalog back --------------------------------------------------------------------------


def belongs(dataset_id: str, plate: str) -> bool:
    """A dataset of ``plate``: the plate itself, or (when a tool catalogues each TIFF) a file inside it."""
    return dataset_id == plate or dataset_id.startswith(plate + "/")


@dataclass
class CatalogFacts:
    """What a catalog holds, read with PyIceberg in this process after the measured run ended."""

    registry: dict[str, str]  # dataset_id -> status
    image_rows: Counter[str]  # image_assets rows per dataset_id
    #: live data files per table, per (lowest, highest) dataset_id a file holds (None: not known)
    files: dict[str, Counter[tuple[str, str] | None]]

    def datasets(self, plate: str) -> list[str]:
        return sorted(d for d in self.registry if belongs(d, plate))

    def plate_rows(self, plate: str) -> int:
        return sum(n for d, n in self.image_rows.items() if belongs(d, plate))

    def plate_files(self, plate: str) -> dict[str, int]:
        """Data files per table that may hold the plate's rows (their dataset_id range meets the plate's);
        a file whose range is not known counts."""
        last = plate + "/\uffff"
        return {
            table: sum(n for span, n in per.items() if span is None or (span[0] <= last and span[1] >= plate))
            for table, per in sorted(self.files.items())
        }


def open_catalog(catalog_dir: Path) -> Any:
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        harness.CATALOG_NAME,
        uri=f"sqlite:///{catalog_dir / 'catalog.db'}",
        warehouse=f"file://{catalog_dir / 'warehouse'}",
    )


def _data_files(table: Any) -> Counter[tuple[str, str] | None]:
    """Live data files of the current snapshot, by the range of dataset_ids each holds: its partition value
    where the table is partitioned by dataset_id (the peer's, earlier releases of ours), else the file's
    column bounds."""
    names = [f.name for f in table.spec().fields]
    position = names.index("dataset_id") if "dataset_id" in names else None
    column = next((f.field_id for f in table.schema().fields if f.name == "dataset_id"), None)
    counts: Counter[tuple[str, str] | None] = Counter()
    for task in table.scan().plan_files():
        data_file = task.file
        span: tuple[str, str] | None = None
        if position is not None:
            span = (data_file.partition[position], data_file.partition[position])
        elif (
            column is not None and column in (data_file.lower_bounds or {}) and column in (data_file.upper_bounds or {})
        ):
            span = (bytes(data_file.lower_bounds[column]).decode(), bytes(data_file.upper_bounds[column]).decode())
        counts[span] += 1
    return counts


def _column_counts(table: Any, column: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for batch in table.scan(selected_fields=(column,)).to_arrow_batch_reader():
        counts.update(batch.column(0).to_pylist())
    return counts


def inspect_catalog(catalog_dir: Path, namespace: tuple[str, ...], image_table: str = "image_assets") -> CatalogFacts:
    catalog = open_catalog(catalog_dir)
    try:
        tables = {ident[-1]: catalog.load_table(ident) for ident in catalog.list_tables(namespace)}
        registry: dict[str, str] = {}
        if "store_registry" in tables:
            rows = tables["store_registry"].scan(selected_fields=("dataset_id", "status")).to_arrow().to_pylist()
            registry = {r["dataset_id"]: r["status"] for r in rows}
        image_rows = _column_counts(tables[image_table], "dataset_id") if image_table in tables else Counter()
        files = {name: _data_files(table) for name, table in tables.items()}
    finally:
        catalog.engine.dispose()
    return CatalogFacts(registry, image_rows, files)


def check_plate(ctx: Context, facts: CatalogFacts, plate: str, what: str) -> bool:
    """The plate is one dataset named after it, ingested, with one image_assets row per TIFF."""
    datasets = facts.datasets(plate)
    shown = ", ".join(datasets[:3]) + (f" ... ({len(datasets):,} in all)" if len(datasets) > 3 else "")
    one = ctx.report.check(f"{what}: {plate} is one dataset named {plate}", datasets == [plate], shown or "none")
    ok = one and ctx.report.check(f"{what}: {plate} ingested", facts.registry[plate] == "ok", facts.registry[plate])
    rows = facts.plate_rows(plate)
    counted = ctx.report.check(
        f"{what}: image_assets holds {ctx.spec.files:,} rows for {plate}", rows == ctx.spec.files, f"{rows:,}"
    )
    return ok and counted


# --- floor -------------------------------------------------------------------------------------------


def _list_stat(folder: Path) -> list[str]:
    paths = []
    with os.scandir(folder) as entries:
        for entry in entries:
            entry.stat()
            paths.append(entry.path)
    return paths


def _read_heads(paths: list[str]) -> None:
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            f.read(4096)


def floor(images: Path) -> tuple[float, float, int]:
    """(list + stat seconds, list + stat + read 4 KiB seconds, files), medians of FLOOR_RUNS.

    The page cache is warm (the plate was just written): so are the tools' runs, which this bounds.
    """
    listing, reading, count = [], [], 0
    for _ in range(FLOOR_RUNS):
        t = time.perf_counter()
        paths = _list_stat(images)
        listing.append(time.perf_counter() - t)
        _read_heads(paths)
        reading.append(time.perf_counter() - t)
        count = len(paths)
    return _median(listing), _median(reading), count


# --- the peer ----------------------------------------------------------------------------------------


def spread_sample(images: Path, count: int) -> list[Path]:
    """``count`` TIFFs spread evenly over the plate (every well row, not just the first wells)."""
    tiffs = sorted(p for p in images.iterdir() if p.suffix == ".tiff")
    count = min(count, len(tiffs))
    return [tiffs[i * len(tiffs) // count] for i in range(count)]


@dataclass
class PeerResult:
    run: Measured
    files: int
    report: dict[str, Any] | None
    facts: CatalogFacts | None


def run_peer(ctx: Context, images: Path, count: int) -> PeerResult | None:
    """drivers/peer.py ``--mode ingest`` on a sample: the peer scans and commits each TIFF as a store."""
    python = ctx.tools.peer_python
    if python is None:
        return None
    sample = spread_sample(images, count)
    catalog_dir = fresh_catalog(ctx, "peer")
    cmd = [str(python), str(harness.PEER_DRIVER), "--catalog", str(catalog_dir), "--mode", "ingest"]
    run = measure(ctx, f"peer ingest {len(sample)} TIFFs", [*cmd, *map(str, sample)], catalog_dir)
    if not ctx.report.check("peer run exits 0", run.returncode == 0, run.failure()):
        return PeerResult(run, len(sample), None, None)
    report = json.loads(run.stdout.strip().splitlines()[-1])
    facts = inspect_catalog(catalog_dir, PEER_NAMESPACE)
    rows = sum(facts.image_rows.values())
    ctx.report.check(f"peer: image_assets holds {len(sample)} rows", rows == len(sample), f"{rows:,}")
    return PeerResult(run, len(sample), report, facts)


# --- ours: one plate ---------------------------------------------------------------------------------


@dataclass
class PlateRuns:
    label: str
    runs: list[Measured]
    facts: CatalogFacts | None

    @property
    def ok(self) -> list[Measured]:
        """The runs that exited 0: a crashed run is fast and proves nothing."""
        return [r for r in self.runs if r.returncode == 0]

    @property
    def wall(self) -> float:
        return _median([r.wall for r in self.ok])

    @property
    def peak(self) -> float:
        return max((r.peak_mb for r in self.ok), default=float("nan"))


def ingest_one_plate(ctx: Context, root: Path, plate: str, label: str, repeat: int) -> PlateRuns:
    """``ingest ROOT`` ``repeat`` times, each on a fresh catalog; every catalog is checked."""
    result = PlateRuns(label, [], None)
    for i in range(repeat):
        catalog_dir = fresh_catalog(ctx, f"one-{label}-{i}")
        run = ours(ctx, f"ours ingest {label} {i + 1}/{repeat}", ["ingest", str(root), "--json"], catalog_dir)
        result.runs.append(run)
        if not ctx.report.check(f"ours ingest ({label}) exits 0", run.returncode == 0, run.failure()):
            continue
        result.facts = inspect_catalog(catalog_dir, (harness.OURS_NAMESPACE,))
        check_plate(ctx, result.facts, plate, f"ingest ({label})")
        shutil.rmtree(catalog_dir, ignore_errors=True)
    return result


def plate_targets(ctx: Context, runs: PlateRuns, plate: str) -> None:
    if not runs.ok:
        return  # the failed runs are failed checks already
    ctx.report.target(f"one plate ({runs.label}): ingest <= 8 s", runs.wall <= 8.0, f"{runs.wall:.2f} s (median)")
    ctx.report.target(f"one plate ({runs.label}): peak RSS <= 400 MB", runs.peak <= 400, f"{runs.peak:.0f} MB (max)")
    if runs.facts is not None:
        files = runs.facts.plate_files(plate)
        most = max(files.values(), default=0)
        ctx.report.target(f"one plate ({runs.label}): <= 10 data files per table", most <= 10, f"max {most:,}")


# --- ours: 100 plates --------------------------------------------------------------------------------


@dataclass
class ManyPlates:
    count: int
    build: Measured
    facts: CatalogFacts | None = None
    status: list[Measured] = field(default_factory=list)
    query: list[Measured] = field(default_factory=list)
    changed: str = ""
    reingest: Measured | None = None
    rescanned: list[str] = field(default_factory=list)
    unchanged: int = 0
    sensor: Measured | None = None
    ticks: list[dict[str, Any]] = field(default_factory=list)


def build_many(ctx: Context, root: Path, count: int) -> tuple[ManyPlates, Path]:
    catalog_dir = fresh_catalog(ctx, f"plates-{count}")
    run = ours(ctx, f"ours ingest {count} plates", ["ingest", str(root), "--json"], catalog_dir)
    many = ManyPlates(count, run)
    if ctx.report.check(f"ingest of {count} plates exits 0", run.returncode == 0, run.failure()):
        many.facts = inspect_catalog(catalog_dir, (harness.OURS_NAMESPACE,))
        check_many(ctx, many.facts, count, f"{count} plates")
    return many, catalog_dir


def check_many(ctx: Context, facts: CatalogFacts, count: int, what: str) -> None:
    ids = [plates.plate_id(n) for n in range(1, count + 1)]
    wrong = [p for p in ids if facts.datasets(p) != [p] or facts.registry.get(p) != "ok"]
    ctx.report.check(
        f"{what}: every plate one ingested dataset named after it",
        not wrong and len(facts.registry) == count,
        f"{len(facts.registry):,} datasets; wrong: {', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}",
    )
    rows = sum(facts.image_rows.values())
    expected = count * ctx.spec.files
    ctx.report.check(f"{what}: image_assets holds {expected:,} rows", rows == expected, f"{rows:,}")


def time_commands(ctx: Context, many: ManyPlates, catalog_dir: Path) -> None:
    """``status`` and the query, CLI_RUNS times each, interleaved; the query's answer is checked."""
    expected = [{"count_star()": many.count * ctx.spec.files, "count(DISTINCT dataset_id)": many.count}]
    for i in range(CLI_RUNS):
        status = ours(ctx, f"ours status {i + 1}/{CLI_RUNS}", ["status"], catalog_dir)
        many.status.append(status)
        ctx.report.check("status exits 0", status.returncode == 0, status.failure())
        # --json: the answer is checked; the text table would cost the same and could not be.
        query = ours(ctx, f"ours query {i + 1}/{CLI_RUNS}", ["query", QUERY, "--json"], catalog_dir)
        many.query.append(query)
        if ctx.report.check("query exits 0", query.returncode == 0, query.failure()):
            answer = printed_json(query)
            ctx.report.check(f"query answers {expected}", answer == expected, str(answer))


def reingest_changed(ctx: Context, many: ManyPlates, root: Path, catalog_dir: Path) -> None:
    """Change one plate (one TIFF rewritten, new inode and mtime), then ingest the whole root again."""
    many.changed = plates.plate_id(many.count // 2 + 1)
    changed_file = plates.change_plate(root / many.changed, ctx.spec)
    _progress(f"  changed {changed_file.relative_to(root)}")
    run = ours(ctx, "ours re-ingest, one plate changed", ["ingest", str(root), "--json"], catalog_dir)
    many.reingest = run
    if not ctx.report.check("re-ingest exits 0", run.returncode == 0, run.failure()):
        return
    result = printed_json(run)
    many.rescanned = [s["dataset_id"] for s in result["stores"]]
    many.unchanged = len(result["unchanged"])
    ctx.report.check(
        f"re-ingest rescans {many.changed} only",
        bool(many.rescanned) and all(belongs(d, many.changed) for d in many.rescanned) and result["failed"] == 0,
        f"rescanned {', '.join(many.rescanned[:3])}{' ...' if len(many.rescanned) > 3 else ''}; "
        f"{many.unchanged:,} unchanged; {result['failed']} failed",
    )
    check_many(ctx, inspect_catalog(catalog_dir, (harness.OURS_NAMESPACE,)), many.count, "after re-ingest")


def sensor_ticks(ctx: Context, many: ManyPlates, root: Path, catalog_dir: Path) -> None:
    """Three ticks of the store sensor over the catalogued root (drivers/sensor_tick.py): nothing to ask."""
    driver = Path(__file__).parent / "drivers" / "sensor_tick.py"
    run = measure(ctx, "ours sensor ticks", [str(ctx.tools.ours_python), str(driver), str(root)], catalog_dir)
    many.sensor = run
    if ctx.report.check("sensor ticks exit 0", run.returncode == 0, run.failure()):
        many.ticks = printed_json(run)["ticks"]
        asked = [t["run_requests"] for t in many.ticks]
        ctx.report.check("sensor asks for nothing over a catalogued root", not any(asked), str(asked))


def many_targets(ctx: Context, many: ManyPlates) -> None:
    n = many.count
    for name, runs in (("status", many.status), ("query", many.query)):
        ok = [r.wall for r in runs if r.returncode == 0]
        if ok:
            wall = _median(ok)
            ctx.report.target(f"{n} plates: {name} < 2 s", wall < 2.0, f"{wall:.2f} s (median of {len(ok)})")
    if many.reingest is not None and many.reingest.returncode == 0:
        wall = many.reingest.wall
        ctx.report.target(f"{n} plates: re-ingest one changed plate <= 10 s", wall <= 10.0, f"{wall:.2f} s")
    if many.ticks:
        tick = _median([t["seconds"] for t in many.ticks])
        size = max(t["cursor_bytes"] for t in many.ticks)
        ctx.report.target(f"{n} plates: a sensor tick < 5 s", tick < 5.0, f"{tick:.2f} s (median of {len(many.ticks)})")
        ctx.report.target(f"{n} plates: sensor cursor < 100 KB", size < 100_000, f"{size:,} bytes (max)")


# --- rendering ---------------------------------------------------------------------------------------


def _files_text(files: dict[str, int]) -> str:
    return ", ".join(f"{table} {n:,}" for table, n in files.items()) or "-"


def _line(what: str, wall: str, peak: str, datasets: str, rows: str, files: str) -> str:
    return f"{what:<40} {wall:>17} {peak:>8} {datasets:>9} {rows:>11}  {files}"


def _walls(runs: list[Measured]) -> str:
    """Median wall, with the range when there are several runs."""
    walls = [r.wall for r in runs]
    if not walls:
        return "-"
    return f"{_median(walls):.2f}" + (f" ({min(walls):.2f}-{max(walls):.2f})" if len(walls) > 1 else "")


HEADER = ("run", "wall s (min-max)", "peak MB", "datasets", "image rows")


def render_one_plate(
    ctx: Context, plate: str, floor_times: tuple[float, float, int], peer: PeerResult | None, mine: list[PlateRuns]
) -> str:
    spec = ctx.spec
    lines = [
        f"== one plate: {spec.describe()}; ours: median of {len(mine[0].runs)} run(s), each on a fresh catalog",
        _line(*HEADER, "data files per table (for the plate)"),
    ]
    listing, reading, count = floor_times
    note = f"in-process, median of {FLOOR_RUNS}, warm page cache"
    lines.append(_line(f"floor: list + stat {count:,} entries", f"{listing:.4f}", "", "", "", note))
    lines.append(_line("floor: same + read first 4 KiB of each", f"{reading:.4f}", "", "", "", note))
    if peer is not None:
        lines += _peer_lines(peer, spec)
    for runs in mine:
        lines.append(_ours_line(runs, plate))
    return "\n".join(lines)


def _peer_lines(peer: PeerResult, spec: plates.PlateSpec) -> list[str]:
    run, facts = peer.run, peer.facts
    datasets = rows = files = "-"
    if facts is not None:
        rows = f"{sum(facts.image_rows.values()):,}"
        datasets = f"{len(facts.image_rows):,}"
        files = _files_text({t: sum(c.values()) for t, c in sorted(facts.files.items())}) + " (a store per TIFF)"
    sample = f"peer ingest, {peer.files:,}-file sample"
    lines = [_line(sample, f"{run.wall:.2f}", f"{run.peak_mb:.0f}", datasets, rows, files)]
    factor = spec.files / peer.files
    lines.append(
        _line(
            f"peer, whole plate: EXTRAPOLATED x{factor:.2f}",
            f"~{run.wall * factor:.0f} (extrap.)",
            "",
            "",
            "",
            "linear; a lower bound: the peer's per-file commit slows as its table grows",
        )
    )
    if peer.report is not None:
        phases = peer.report["phases"]
        parts = ", ".join(f"{k} {phases[k]:.2f}" for k in ("imports", "scan", "publish", "append"))
        lines.append(f"  peer phases, s: {parts}; chunk_index rows {peer.report['rows']['chunk_index']:,}")
    return lines


def _ours_line(runs: PlateRuns, plate: str) -> str:
    failed = len(runs.runs) - len(runs.ok)
    datasets = rows = "-"
    files = f"{failed} run(s) FAILED (see checks)" if failed else "-"
    if not runs.ok:
        return _line(f"ours ingest, {runs.label}", "-", "-", datasets, rows, files)
    if runs.facts is not None:
        datasets = f"{len(runs.facts.datasets(plate)):,}"
        rows = f"{runs.facts.plate_rows(plate):,}"
        files = _files_text(runs.facts.plate_files(plate)) + (f"; {files}" if failed else "")
    return _line(f"ours ingest, {runs.label}", _walls(runs.ok), f"{runs.peak:.0f}", datasets, rows, files)


def render_many(ctx: Context, many: ManyPlates, build_seconds: float) -> str:
    n = many.count
    how = f"TIFFs hard-linked from the first, an Index.idx.xml each; written in {build_seconds:.1f} s"
    lines = [f"== {n} plates ({how})"]
    lines.append(_line(*HEADER, "data files per table"))
    build, facts = many.build, many.facts
    datasets = rows = "-"
    files = "FAILED (see checks)" if build.returncode != 0 else "-"
    if facts is not None:
        datasets, rows = f"{len(facts.registry):,}", f"{sum(facts.image_rows.values()):,}"
        first = facts.plate_files(plates.plate_id(1))
        total = {t: sum(c.values()) for t, c in sorted(facts.files.items())}
        files = f"all: {_files_text(total)}; {plates.plate_id(1)}: {_files_text(first)}"
    label = f"ours ingest, {n} plates (no target)"
    lines.append(_line(label, f"{build.wall:.2f}", f"{build.peak_mb:.0f}", datasets, rows, files))
    for name, runs, note in (("status", many.status, ""), ("query", many.query, QUERY)):
        if runs:
            peak = f"{_median([r.peak_mb for r in runs]):.0f}"
            lines.append(_line(f"ours {name}, median of {len(runs)}", _walls(runs), peak, "", "", note))
    if many.reingest is not None:
        r = many.reingest
        what = f"rescanned {len(many.rescanned):,} dataset(s), {many.unchanged:,} unchanged"
        label = f"ours re-ingest, {many.changed} changed"
        lines.append(_line(label, f"{r.wall:.2f}", f"{r.peak_mb:.0f}", "", "", what))
    if many.ticks:
        walls = " ".join(f"{t['seconds']:.2f}" for t in many.ticks)
        size = max(t["cursor_bytes"] for t in many.ticks)
        label = f"ours sensor tick, median of {len(many.ticks)}"
        note = f"in-process ticks {walls} s; cursor {size:,} bytes"
        peak = f"{many.sensor.peak_mb:.0f}" if many.sensor is not None else ""
        lines.append(_line(label, f"{_median([t['seconds'] for t in many.ticks]):.2f}", peak, "", "", note))
    return "\n".join(lines)


def render_verdict(report: Report) -> str:
    lines = ["== targets"]
    for t in report.targets:
        state = ("PASS" if t.passed else "FAIL") + (" (informational, --small)" if t.informational else "")
        lines.append(f"  {state}  {t.description}: {t.measured}")
    failed = [c for c in report.checks if not c.ok]
    lines.append(f"== checks: {len(report.checks) - len(failed)} of {len(report.checks)} passed")
    lines += [f"  FAILED  {c.description}: {c.detail}" for c in failed]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------------


def timed(what: str, func: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    value = func()
    seconds = time.perf_counter() - t
    _progress(f"  {what} in {seconds:.1f} s")
    return value, seconds


def make_tools(args: argparse.Namespace, parser: argparse.ArgumentParser) -> harness.Tools:
    ours_python = Path(sys.executable)
    ours_cli = args.ours_cli or ours_python.parent / "bioimage-pipeline"
    if not ours_cli.exists():
        parser.error("bioimage-pipeline console script not found; run with the project's .venv/bin/python")
    if args.no_peer:
        peer_python = None
    elif args.peer_python:
        peer_python = peer_env.check_peer_python(args.peer_python)
    else:
        peer_python = peer_env.ensure_peer_python()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bioimage-plate-bench-"))).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pyiceberg-home").mkdir(exist_ok=True)
    return harness.Tools(ours_python, ours_cli, peer_python, workdir)


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, argparse.ArgumentParser]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help=f"{plates.SMALL.describe()}, 5 plates, 20-file sample")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each one-plate ingest (default 3)")
    parser.add_argument("--plates", type=int, help="plates in the catalog (default 100; 5 with --small)")
    parser.add_argument("--peer-files", type=int, help="TIFFs the peer ingests (default 500; 20 with --small)")
    parser.add_argument("--no-peer", action="store_true", help="do not run the peer")
    parser.add_argument("--peer-python", type=Path, help="an interpreter with iceberg-bioimage 0.1.0 installed")
    parser.add_argument("--ours-cli", type=Path, help="the bioimage-pipeline console script (default: next to python)")
    parser.add_argument("--workdir", type=Path, help="where plates and catalogs are written (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (plates, catalogs, logs)")
    return parser.parse_args(argv), parser


def main(argv: list[str] | None = None) -> int:
    args, parser = parse_args(argv)
    spec = plates.SMALL if args.small else plates.FULL
    count = args.plates or (5 if args.small else 100)
    peer_files = args.peer_files or (20 if args.small else 500)
    tools = make_tools(args, parser)
    ctx = Context(tools, Report(small=args.small), spec)
    env_versions = harness.versions(tools)
    state_before = harness.project_state()
    _progress(f"work directory: {tools.workdir}")
    harness.warm_up(tools)
    plate = plates.plate_id(1)
    try:
        # The same plate three ways: with its index, without (hard links to the same TIFFs), and 100 times.
        with_index, without_index, many_root = (tools.workdir / d for d in ("one-index", "one-names", "plates"))
        source, _ = timed(f"wrote {spec.describe()}", lambda: plates.write_plate(with_index, 1, spec))
        timed("linked it without Index.idx.xml", lambda: plates.link_plates(source, without_index, 1, spec, False))
        images = source / plates.IMAGES_DIR
        floor_times = floor(images)
        peer = run_peer(ctx, images, peer_files)
        mine = [
            ingest_one_plate(ctx, with_index, plate, "with Index.idx.xml", args.repeat),
            ingest_one_plate(ctx, without_index, plate, "file names only", args.repeat),
        ]
        for runs in mine:
            plate_targets(ctx, runs, plate)
        print(render_one_plate(ctx, plate, floor_times, peer, mine) + "\n", flush=True)

        _, build_seconds = timed(f"linked {count} plates", lambda: plates.link_plates(source, many_root, count, spec))
        many, catalog_dir = build_many(ctx, many_root, count)
        if many.facts is not None:
            time_commands(ctx, many, catalog_dir)
            reingest_changed(ctx, many, many_root, catalog_dir)
            sensor_ticks(ctx, many, many_root, catalog_dir)
        many_targets(ctx, many)
        print(render_many(ctx, many, build_seconds) + "\n", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(tools.workdir, ignore_errors=True)

    print(render_verdict(ctx.report))
    state_after = harness.project_state()
    print(harness.describe_state(state_before))
    if state_after != state_before:
        print(f"WARNING: the project changed during the run; at the end: {harness.describe_state(state_after)}")
    for tool, found in env_versions.items():
        print(f"{tool}: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    if args.keep:
        print(f"work directory kept: {tools.workdir}")
    if not all(c.ok for c in ctx.report.checks):
        return 2
    return 1 if any(not t.passed and not t.informational for t in ctx.report.targets) else 0


if __name__ == "__main__":
    sys.exit(main())
