"""Side-by-side benchmark of this project and the peer ``iceberg-bioimage`` 0.1.0 on the same generated stores.

    .venv/bin/python benchmarks/run.py [--scenario NAME ...] [--repeat N] [--small] [--json]
                                       [--peer-python PATH] [--workdir DIR] [--keep]

Scenarios (default: register-1m ingest-50 register-100m):

* ``register-1m``   one metadata-only Zarr v2 array with 1,000,000 chunks: ``bioimage-pipeline register``
  (whole process) against the peer's ``register_store`` (scan + publish, whole process).
  Targets: peer/ours wall ≥ 10×, our peak RSS < 300 MB.
* ``register-10m``  the same at 10,000,000 chunks, both tools (opt-in: the peer needs several GB).
* ``register-100m`` the same at 100,000,000 chunks, ours only (the peer would need tens of GB), next to
  ours at 1,000,000. Target: peak RSS within 10 % of the 1M peak (and < 300 MB).
* ``ingest-50``     50 small OME-Zarr images with real chunk data: ``bioimage-pipeline ingest FOLDER``
  against the peer's ``ingest_stores_to_warehouse``. Target: peer/ours wall ≥ 5×.

Every measured run is its own process on a fresh SQLite catalog; wall time and peak RSS are taken from
outside by ``launch.py`` (``os.wait4``), the phases from the drivers' JSON. Runs of the tools are
interleaved, so machine noise hits both alike; medians are reported. After each run the catalog's tables
are read back and their row counts checked. ``--small`` shrinks every scenario (10,000 chunks for
register-1m) to check the harness in under a minute; its targets are informational.

Exit status: 0 when every run was correct and every target met; 1 when a target was missed (full size
only); 2 when a run failed or a catalog held the wrong number of rows.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import peer_env
import stores

HERE = Path(__file__).resolve().parent
OURS_DRIVER = HERE / "drivers" / "ours.py"
PEER_DRIVER = HERE / "drivers" / "peer.py"
LAUNCHER = HERE / "launch.py"
#: The catalog both tools write to (its name in PyIceberg) and our namespace.
CATALOG_NAME = "bioimage"
OURS_NAMESPACE = "bioimage"

OURS_CLI, OURS_DRIVER_TOOL, PEER_TOOL = "ours (CLI)", "ours (driver)", "peer"
#: One narrow column per tool read back from every data file to count chunk_index rows.
COUNT_COLUMN = {OURS_CLI: "stored", OURS_DRIVER_TOOL: "stored", PEER_TOOL: "byte_length"}

DEFAULT_SCENARIOS = ("register-1m", "ingest-50", "register-100m")


# --- measuring one process ---------------------------------------------------------------------------


@dataclass
class Run:
    """One measured process: whole-process figures, the driver's own report, and the read-back check."""

    tool: str
    label: str  # what was run, e.g. "1,000,000 chunks"
    wall: float
    peak_mb: float
    returncode: int
    report: dict[str, Any] | None = None  # the driver's JSON (None for the console script)
    expected_chunks: int = 0
    expected_arrays: int = 0
    chunk_rows_manifest: int | None = None
    chunk_rows_read: int | None = None
    image_rows_read: int | None = None
    error: str | None = None

    @property
    def correct(self) -> bool:
        return (
            self.error is None
            and self.returncode == 0
            and self.chunk_rows_manifest == self.expected_chunks
            and self.chunk_rows_read == self.expected_chunks
            and self.image_rows_read == self.expected_arrays
        )

    @property
    def total(self) -> float | None:
        return None if self.report is None else float(self.report["total"])

    def phase(self, name: str) -> float | None:
        return None if self.report is None else self.report["phases"].get(name)


def run_process(cmd: list[str], env: dict[str, str], cwd: Path, log_dir: Path) -> tuple[float, float, int, str, str]:
    """Run ``cmd`` to completion; return (wall seconds, peak RSS MB, exit code, stdout, stderr).

    Through ``launch.py``, never forked from here: a child's ru_maxrss starts at the high-water mark of
    the process that forked it, and this harness grows while it reads catalogs back.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    result, out, err = log_dir / "result.json", log_dir / "stdout", log_dir / "stderr"
    launcher = [sys.executable, "-S", str(LAUNCHER), str(result), str(out), str(err), str(cwd), "--"]
    subprocess.run([*launcher, *cmd], env=env, check=True)
    measured = json.loads(result.read_text())
    return measured["wall"], measured["peak_mb"], measured["returncode"], out.read_text(), err.read_text()


def clean_env(catalog_dir: Path, home: Path) -> dict[str, str]:
    """The environment of every measured process: the caller's, minus any catalog or pipeline settings,
    plus the catalog of this run (so that a user's ~/.pyiceberg.yaml or BIOIMAGE_* cannot leak in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYICEBERG_", "BIOIMAGE_"))}
    catalog_dir = catalog_dir.absolute()
    env.update(
        {
            "PYICEBERG_HOME": str(home),
            # Plain file:// + absolute path: PyIceberg does not percent-decode.
            f"PYICEBERG_CATALOG__{CATALOG_NAME.upper()}__URI": f"sqlite:///{catalog_dir / 'catalog.db'}",
            f"PYICEBERG_CATALOG__{CATALOG_NAME.upper()}__WAREHOUSE": f"file://{catalog_dir / 'warehouse'}",
            "BIOIMAGE_DATA_DIR": str(catalog_dir / "data"),
            "BIOIMAGE_NAMESPACE": OURS_NAMESPACE,
        }
    )
    return env


def verify(run: Run, catalog_dir: Path, image_table: str, chunk_table: str) -> None:
    """Read the catalog back: chunk_index rows from the manifests and from the data files themselves,
    image_assets rows from the data files."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog(
        CATALOG_NAME,
        uri=f"sqlite:///{catalog_dir / 'catalog.db'}",
        warehouse=f"file://{catalog_dir / 'warehouse'}",
    )
    chunks = catalog.load_table(chunk_table)
    run.chunk_rows_manifest = chunks.scan().count()
    # Streams one narrow column: decodes every data file without holding 100M rows at once.
    reader = chunks.scan(selected_fields=(COUNT_COLUMN[run.tool],)).to_arrow_batch_reader()
    run.chunk_rows_read = sum(batch.num_rows for batch in reader)
    run.image_rows_read = catalog.load_table(image_table).scan().to_arrow().num_rows
    catalog.engine.dispose()


@dataclass
class Tools:
    ours_python: Path
    ours_cli: Path
    peer_python: Path | None
    workdir: Path


def measure(tools: Tools, tool: str, argv: list[str], label: str, expected: stores.StoreSet, run_id: str) -> Run:
    """One measured run of ``tool`` (OURS_CLI, OURS_DRIVER_TOOL or PEER_TOOL) on a fresh catalog."""
    catalog_dir = tools.workdir / "catalogs" / run_id
    shutil.rmtree(catalog_dir, ignore_errors=True)
    catalog_dir.mkdir(parents=True)
    env = clean_env(catalog_dir, tools.workdir / "pyiceberg-home")
    if tool == OURS_CLI:
        cmd = [str(tools.ours_cli), *argv]
    elif tool == OURS_DRIVER_TOOL:
        cmd = [str(tools.ours_python), str(OURS_DRIVER), "--catalog", str(catalog_dir), *argv]
    else:
        assert tools.peer_python is not None
        cmd = [str(tools.peer_python), str(PEER_DRIVER), "--catalog", str(catalog_dir), *argv]
    wall, peak, code, out, err = run_process(cmd, env, catalog_dir, tools.workdir / "logs" / run_id)
    run = Run(tool, label, wall, peak, code, expected_chunks=expected.chunk_rows, expected_arrays=expected.array_rows)
    if code != 0:
        run.error = f"exit {code}: {' '.join(err.strip().splitlines()[-3:])[:500]}"
        return run
    if tool == OURS_CLI:
        image_table, chunk_table = f"{OURS_NAMESPACE}.image_assets", f"{OURS_NAMESPACE}.chunk_index"
    else:
        try:
            run.report = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            run.error = f"unreadable driver output ({exc}): {out[-300:]!r}"
            return run
        image_table, chunk_table = run.report["catalog"]["image_assets"], run.report["catalog"]["chunk_index"]
    try:
        verify(run, catalog_dir, image_table, chunk_table)
    except Exception as exc:  # a missing table is a failed run, not a crashed harness
        run.error = f"read-back failed: {type(exc).__name__}: {exc}"
    shutil.rmtree(catalog_dir, ignore_errors=True)  # the 100M catalog alone is ~160 MB
    return run


# --- scenarios ---------------------------------------------------------------------------------------


@dataclass
class Target:
    description: str
    passed: bool
    measured: str
    informational: bool = False  # --small: printed, never fails the run


@dataclass
class ScenarioResult:
    name: str
    description: str
    runs: list[Run] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _runs_of(result: ScenarioResult, tool: str, label: str | None = None) -> list[Run]:
    return [r for r in result.runs if r.tool == tool and (label is None or r.label == label)]


def median_of(runs: list[Run], value: Callable[[Run], float | None]) -> float:
    return _median([v for v in (value(r) for r in runs) if v is not None])


def work(run: Run) -> float | None:
    """In-process time spent after the imports."""
    total, imports = run.total, run.phase("imports")
    return None if total is None or imports is None else total - imports


def outside(run: Run) -> float | None:
    """Wall time the driver cannot see: interpreter start-up, standard-library imports, and teardown."""
    return None if run.total is None else run.wall - run.total


def interleaved(
    tools: Tools,
    result: ScenarioResult,
    plan: list[tuple[str, list[str], str, stores.StoreSet]],
    repeat: int,
) -> None:
    """Run every (tool, argv, label, stores) of ``plan`` ``repeat`` times, rotating the order each round."""
    for i in range(repeat):
        shift = i % len(plan)
        for tool, argv, label, expected in plan[shift:] + plan[:shift]:
            run_id = f"{result.name}-{tool.split()[0]}{'-driver' if 'driver' in tool else ''}-{label}-{i}"
            run_id = run_id.replace(",", "").replace(" ", "_")
            print(f"  [{result.name} {i + 1}/{repeat}] {tool} {label} ...", end="", file=sys.stderr, flush=True)
            run = measure(tools, tool, argv, label, expected, run_id)
            result.runs.append(run)
            status = "ok" if run.correct else f"WRONG ({run.error or 'row counts differ'})"
            print(f" {run.wall:.2f} s, {run.peak_mb:.0f} MB, {status}", file=sys.stderr, flush=True)


def _ratio_target(result: ScenarioResult, description: str, minimum: float, small: bool) -> None:
    ratio = result.ratios.get("wall")
    if ratio is None:
        return
    measured = f"{ratio:.1f}x" + ("" if ratio >= minimum else f" (short by {minimum / ratio:.1f}x)")
    result.targets.append(Target(description, ratio >= minimum, measured, informational=small))


def _compute_ratios(result: ScenarioResult, ours_label: str, peer_label: str) -> None:
    # Only runs that left a correct catalog count: a crashed run is fast and proves nothing.
    ours_cli = [r for r in _runs_of(result, OURS_CLI, ours_label) if r.correct]
    ours_drv = [r for r in _runs_of(result, OURS_DRIVER_TOOL, ours_label) if r.correct]
    peer = [r for r in _runs_of(result, PEER_TOOL, peer_label) if r.correct]
    if not ours_cli or not peer:
        return
    result.ratios["wall"] = median_of(peer, lambda r: r.wall) / median_of(ours_cli, lambda r: r.wall)
    # Side by side per round as well: the spread of per-round ratios shows how noisy the machine was.
    per_round = [p.wall / o.wall for p, o in zip(peer, ours_cli, strict=False)]
    result.ratios["wall_min"], result.ratios["wall_max"] = min(per_round), max(per_round)
    result.ratios["peak"] = median_of(peer, lambda r: r.peak_mb) / median_of(ours_cli, lambda r: r.peak_mb)
    if ours_drv:
        result.ratios["in_process"] = median_of(peer, lambda r: r.total) / median_of(ours_drv, lambda r: r.total)
        result.ratios["work"] = median_of(peer, work) / median_of(ours_drv, work)


def _peak_target(result: ScenarioResult, runs: list[Run], limit_mb: float, small: bool) -> None:
    if not runs:
        return
    peak = max(r.peak_mb for r in runs)
    result.targets.append(
        Target(f"{runs[0].tool} peak RSS < {limit_mb:.0f} MB", peak < limit_mb, f"{peak:.0f} MB (max)", small)
    )


def peer_notes(result: ScenarioResult) -> None:
    notes = {n for r in _runs_of(result, PEER_TOOL) if r.report for n in r.report.get("notes", [])}
    result.notes += sorted(notes)


def array_sides(chunks: int) -> tuple[int, int]:
    """A 2-D grid of exactly ``chunks`` 1×1 chunks (``chunks`` is a power of ten here)."""
    rows = 10 ** (len(str(chunks)) // 2)
    return rows, chunks // rows


def _array(tools: Tools, chunks: int) -> tuple[Path, stores.StoreSet]:
    path = tools.workdir / "stores" / f"array_{chunks}.zarr"
    if not path.exists():
        t = time.perf_counter()
        made = stores.metadata_only_array(path, *array_sides(chunks))
        print(f"  wrote {made.description} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    rows, cols = array_sides(chunks)
    description = f"metadata-only Zarr v2 array {rows}x{cols}, chunks 1x1 ({chunks:,} chunks)"
    return path, stores.StoreSet([path], chunks, 1, description)


def scenario_register(tools: Tools, name: str, chunks: int, repeat: int, small: bool) -> ScenarioResult:
    path, expected = _array(tools, chunks)
    label = f"{chunks:,} chunks"
    result = ScenarioResult(name, expected.description)
    plan = [
        (OURS_CLI, ["register", str(path), "--json"], label, expected),
        (OURS_DRIVER_TOOL, [str(path)], label, expected),
        (PEER_TOOL, ["--mode", "register", str(path)], label, expected),
    ]
    interleaved(tools, result, plan, repeat)
    _compute_ratios(result, label, label)
    if name == "register-1m":
        _ratio_target(result, "register-1m: peer/ours wall >= 10x", 10.0, small)
        _peak_target(result, _runs_of(result, OURS_CLI), 300.0, small)
    peer_notes(result)
    return result


def peer_fits(chunks: int, peer_mb_per_million: float) -> tuple[bool, str]:
    """Whether the peer can hold ``chunks`` rows in memory here (it builds a Python dict per chunk)."""
    need_gb = peer_mb_per_million * chunks / 1e6 / 1024
    available_gb = _available_memory_gb()
    why = f"the peer needs ~{need_gb:.0f} GB at {chunks:,} chunks (~{peer_mb_per_million:.0f} MB per million"
    why += f" chunks: one Python dict per chunk, then an Arrow copy); {available_gb:.0f} GB available"
    return need_gb < 0.7 * available_gb, why


def _available_memory_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) / 1024**3


#: Measured on a 2-core machine (register-1m): ~690 MB for 1M chunks. Used when register-1m did not run.
PEER_MB_PER_MILLION_DEFAULT = 690.0


def scenario_register_10m(
    tools: Tools, chunks: int, repeat: int, small: bool, peer_mb_per_million: float
) -> ScenarioResult:
    fits, why = peer_fits(chunks, peer_mb_per_million)
    if fits:
        return scenario_register(tools, "register-10m", chunks, repeat, small)
    path, expected = _array(tools, chunks)
    label = f"{chunks:,} chunks"
    result = ScenarioResult("register-10m", expected.description, notes=[f"peer skipped: {why}"])
    interleaved(
        tools,
        result,
        [
            (OURS_CLI, ["register", str(path), "--json"], label, expected),
            (OURS_DRIVER_TOOL, [str(path)], label, expected),
        ],
        repeat,
    )
    return result


def scenario_register_100m(
    tools: Tools, chunks: int, base_chunks: int, repeat: int, small: bool, peer_mb_per_million: float
) -> ScenarioResult:
    path, expected = _array(tools, chunks)
    base_path, base_expected = _array(tools, base_chunks)
    big, base = f"{chunks:,} chunks", f"{base_chunks:,} chunks"
    result = ScenarioResult("register-100m", f"{expected.description}; ours only, next to ours at {base}")
    _, why = peer_fits(chunks, peer_mb_per_million)
    result.notes.append(f"peer not run (this scenario measures our memory at scale): {why}")
    # The 1M baseline is cheap: run it as often as the default repeat so its peak is a median of several.
    plan_big = [
        (OURS_CLI, ["register", str(path), "--json"], big, expected),
        (OURS_DRIVER_TOOL, [str(path)], big, expected),
    ]
    plan_base = [(OURS_CLI, ["register", str(base_path), "--json"], base, base_expected)]
    interleaved(tools, result, plan_base, max(3, repeat))
    interleaved(tools, result, plan_big, repeat)
    big_peak = median_of(_runs_of(result, OURS_CLI, big), lambda r: r.peak_mb)
    base_peak = median_of(_runs_of(result, OURS_CLI, base), lambda r: r.peak_mb)
    growth = big_peak / base_peak
    result.ratios["peak_growth"] = growth
    result.targets.append(
        Target(
            f"ours (CLI) peak at {big} within 10% of the peak at {base}",
            growth <= 1.10,
            f"{big_peak:.0f} MB vs {base_peak:.0f} MB ({(growth - 1) * 100:+.1f}%)",
            small,
        )
    )
    _peak_target(result, _runs_of(result, OURS_CLI, big), 300.0, small)
    return result


def scenario_ingest(tools: Tools, count: int, repeat: int, small: bool) -> ScenarioResult:
    root = tools.workdir / "stores" / f"small_{count}"
    t = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    expected = stores.small_stores(root, count)
    print(f"  wrote {expected.description} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    label = f"{count} stores"
    result = ScenarioResult("ingest-50", expected.description)
    paths = [str(p) for p in expected.paths]
    plan = [
        # The console script is given the folder, as a user would; the drivers get the store paths.
        (OURS_CLI, ["ingest", str(root), "--json"], label, expected),
        (OURS_DRIVER_TOOL, paths, label, expected),
        (PEER_TOOL, ["--mode", "ingest", *paths], label, expected),
    ]
    interleaved(tools, result, plan, repeat)
    _compute_ratios(result, label, label)
    _ratio_target(result, "ingest-50: peer/ours wall >= 5x", 5.0, small)
    peer_notes(result)
    return result


# --- reporting ---------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def phase_summary(runs: list[Run]) -> str:
    if not runs or runs[0].report is None:
        return ""
    names = [n for n in runs[0].report["phases"] if n != "imports"]
    parts = [f"{n} {_fmt(median_of(runs, lambda r, n=n: r.phase(n)))}" for n in names]
    return ", ".join(parts)


def _row(cells: list[str], columns: list[tuple[str, int]]) -> str:
    """The first two columns (tool, input) left-aligned, the numbers right-aligned."""
    pairs = zip(cells, columns, strict=True)
    return " ".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, (_, w)) in enumerate(pairs))


def groups_of(result: ScenarioResult) -> dict[tuple[str, str], list[Run]]:
    """Runs by (tool, input), in the order they first ran."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in result.runs:
        groups.setdefault((r.tool, r.label), []).append(r)
    return groups


def summary(result: ScenarioResult) -> list[dict[str, Any]]:
    """Medians per (tool, input), for the JSON output."""
    out = []
    for (tool, label), runs in groups_of(result).items():
        phases = runs[0].report["phases"] if runs[0].report else {}
        out.append(
            {
                "tool": tool,
                "input": label,
                "runs": len(runs),
                "wall_median": _median([r.wall for r in runs]),
                "wall_min": min(r.wall for r in runs),
                "wall_max": max(r.wall for r in runs),
                "in_process_median": median_of(runs, lambda r: r.total) if runs[0].report else None,
                "outside_median": median_of(runs, outside) if runs[0].report else None,
                "phases_median": {n: median_of(runs, lambda r, n=n: r.phase(n)) for n in phases},
                "peak_mb_median": median_of(runs, lambda r: r.peak_mb),
                "peak_mb_max": max(r.peak_mb for r in runs),
                "chunk_rows_read": runs[0].chunk_rows_read,
                "correct": all(r.correct for r in runs),
            }
        )
    return out


def render(result: ScenarioResult, repeat_note: str) -> str:
    lines = [f"== {result.name}: {result.description} ({repeat_note})"]
    columns = [("tool", 15), ("input", 20), ("n", 2), ("wall s", 7), ("(min-max)", 13), ("in-proc s", 9)]
    columns += [("imports s", 9), ("work s", 7), ("outside s", 9), ("peak MB", 8), ("chunk rows", 12)]
    header = _row([name for name, _ in columns], columns)
    lines += [header + "  check", "-" * (len(header) + 7)]
    groups = groups_of(result)
    for (tool, label), runs in groups.items():
        walls = [r.wall for r in runs]
        rows = runs[0].chunk_rows_read
        cells = [
            tool,
            label,
            str(len(runs)),
            _fmt(_median(walls)),
            f"({min(walls):.2f}-{max(walls):.2f})",
            _fmt(median_of(runs, lambda r: r.total)),
            _fmt(median_of(runs, lambda r: r.phase("imports"))),
            _fmt(median_of(runs, work)),
            _fmt(median_of(runs, outside)),
            _fmt(median_of(runs, lambda r: r.peak_mb), 0),
            "-" if rows is None else f"{rows:,}",
        ]
        line = _row(cells, columns)
        wrong = [r.error or "row counts differ" for r in runs if not r.correct]
        lines.append(line + "  " + ("ok" if not wrong else "WRONG: " + "; ".join(wrong)))
    for (tool, label), runs in groups.items():
        if runs[0].report is not None:
            lines.append(f"  phases, median s — {tool} {label}: {phase_summary(runs)}")
    r = result.ratios
    if "wall" in r:
        lines.append(
            f"  peer/ours: wall {r['wall']:.1f}x (per round {r['wall_min']:.1f}-{r['wall_max']:.1f}x; "
            f"peer wall / ours CLI wall), in-process {_fmt(r.get('in_process'), 1)}x, "
            f"after imports {_fmt(r.get('work'), 1)}x (drivers), peak RSS {r['peak']:.1f}x"
        )
    for t in result.targets:
        state = ("PASS" if t.passed else "FAIL") + (" (informational, --small)" if t.informational else "")
        lines.append(f"  {state}  {t.description}: {t.measured}")
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)


def versions(tools: Tools) -> dict[str, dict[str, str]]:
    """Versions of the libraries each side imports. The two environments resolve their dependencies
    independently, so a difference in a shared library (pyiceberg, pyarrow, zarr) must be visible."""
    probe = (
        "import importlib.metadata as m, json; names = {!r}; out = {{}}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = '-'\n"
        "print(json.dumps(out))"
    )
    names = ["pyiceberg", "pyarrow", "zarr", "numpy", "sqlalchemy", "pandas"]
    out = {}
    for tool, python, extra in (
        ("ours", tools.ours_python, "bioimage-pipeline"),
        ("peer", tools.peer_python, "iceberg-bioimage"),
    ):
        if python is None:
            continue
        done = subprocess.run(
            [str(python), "-c", probe.format([extra, *names])], capture_output=True, text=True, check=True
        )
        out[tool] = json.loads(done.stdout)
    return out


def project_state() -> dict[str, Any]:
    """The commit of the project under test and a digest of its uncommitted changes (read-only git calls;
    ``--no-optional-locks`` keeps ``git status`` from refreshing the index). Results describe this code."""
    root = HERE.parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=root, capture_output=True, text=True, check=True
        )
        return done.stdout

    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        dirty = [line[3:] for line in git("status", "--porcelain", "--", "bioimage_pipeline").splitlines()]
        digest = hashlib.sha1(git("diff", "HEAD", "--", "bioimage_pipeline").encode()).hexdigest()[:12]
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit, "uncommitted_files": dirty, "diff_digest": digest}


def describe_state(state: dict[str, Any]) -> str:
    if not state:
        return "project: not a git checkout"
    dirty = state["uncommitted_files"]
    extra = f" + {len(dirty)} uncommitted file(s) in bioimage_pipeline/ (diff {state['diff_digest']})" if dirty else ""
    return f"project: commit {state['commit']}{extra}"


def warm_up(tools: Tools) -> None:
    """Import each side's modules once, unmeasured, so that the first measured run does not pay for a cold
    page cache that later runs would not."""
    subprocess.run(
        [str(tools.ours_python), "-c", "import pyiceberg.catalog.sql, bioimage_pipeline.ingest, bioimage_pipeline.cli"],
        check=True,
    )
    if tools.peer_python is not None:
        subprocess.run([str(tools.peer_python), "-c", "import pyiceberg.catalog.sql, iceberg_bioimage.api"], check=True)


# --- main --------------------------------------------------------------------------------------------

SCENARIOS = ("register-1m", "register-10m", "register-100m", "ingest-50")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario", nargs="+", choices=(*SCENARIOS, "all"), default=list(DEFAULT_SCENARIOS), metavar="NAME"
    )
    parser.add_argument("--repeat", type=int, help="runs per tool (default 3; 1 for register-10m/100m)")
    parser.add_argument("--small", action="store_true", help="tiny variants to check the harness (~1 minute)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--peer-python", type=Path, help="an interpreter with iceberg-bioimage 0.1.0 installed")
    parser.add_argument("--ours-cli", type=Path, help="the bioimage-pipeline console script (default: next to python)")
    parser.add_argument("--workdir", type=Path, help="where stores and catalogs are written (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (stores, logs)")
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if "all" in args.scenario else list(dict.fromkeys(args.scenario))

    # The console script sits next to the interpreter of the virtualenv the harness runs in.
    ours_python = Path(sys.executable)
    ours_cli = args.ours_cli or ours_python.parent / "bioimage-pipeline"
    if not ours_cli.exists():
        found = shutil.which("bioimage-pipeline")
        if found is None:
            parser.error("bioimage-pipeline console script not found; run with the project's .venv/bin/python")
        ours_cli = Path(found)
    peer_python = peer_env.check_peer_python(args.peer_python) if args.peer_python else peer_env.ensure_peer_python()
    workdir = (args.workdir or Path(tempfile.mkdtemp(prefix="bioimage-bench-"))).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "pyiceberg-home").mkdir(exist_ok=True)
    tools = Tools(ours_python, ours_cli, peer_python, workdir)

    size = {"1m": 1_000_000, "10m": 10_000_000, "100m": 100_000_000, "stores": 50}
    if args.small:
        size = {"1m": 10_000, "10m": 100_000, "100m": 1_000_000, "stores": 5}

    env_versions = versions(tools)
    state_before = project_state()
    print(f"work directory: {workdir}", file=sys.stderr)
    warm_up(tools)
    results: list[ScenarioResult] = []
    repeat_notes: dict[str, str] = {}
    peer_mb_per_million = PEER_MB_PER_MILLION_DEFAULT
    try:
        for name in names:
            big = name in ("register-10m", "register-100m")
            repeat = args.repeat or (1 if big else 3)
            print(f"{name}: {repeat} run(s) per tool", file=sys.stderr)
            if name == "register-1m":
                result = scenario_register(tools, name, size["1m"], repeat, args.small)
                peer_runs = _runs_of(result, PEER_TOOL)
                if peer_runs and not args.small:
                    peer_mb_per_million = median_of(peer_runs, lambda r: r.peak_mb) * 1e6 / size["1m"]
            elif name == "register-10m":
                result = scenario_register_10m(tools, size["10m"], repeat, args.small, peer_mb_per_million)
            elif name == "register-100m":
                result = scenario_register_100m(
                    tools, size["100m"], size["1m"], repeat, args.small, peer_mb_per_million
                )
            else:
                result = scenario_ingest(tools, size["stores"], repeat, args.small)
            results.append(result)
            repeat_notes[result.name] = f"{repeat} run(s) per tool, medians" + (", --small" if args.small else "")
            if not args.json:
                print(render(result, repeat_notes[result.name]), flush=True)
                print(flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    all_correct = all(r.correct for res in results for r in res.runs)
    state_after = project_state()
    changed = state_before != state_after
    missed = [t for res in results for t in res.targets if not t.passed and not t.informational]
    if args.json:
        print(
            json.dumps(
                {
                    "small": args.small,
                    "versions": env_versions,
                    "project": state_before,
                    "project_changed_during_run": changed,
                    "cpu_count": os.cpu_count(),
                    "scenarios": [{**asdict(r), "summary": summary(r)} for r in results],
                    "all_correct": all_correct,
                    "targets_missed": [t.description for t in missed],
                },
                indent=2,
            )
        )
    else:
        print(describe_state(state_before))
        if changed:
            print(f"WARNING: the project changed during the run; at the end: {describe_state(state_after)}")
        for tool, found in env_versions.items():
            print(f"{tool}: " + ", ".join(f"{k} {v}" for k, v in found.items()))
        verdict = "every catalog held the expected rows" if all_correct else "WRONG ROW COUNTS (see above)"
        print(f"correctness: {verdict}")
        if missed:
            print("targets missed: " + "; ".join(t.description for t in missed))
    if not all_correct:
        return 2
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
