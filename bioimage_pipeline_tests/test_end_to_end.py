"""Slow end-to-end tests: the real `dagster` commands in their own processes, and the UI in Chromium.

They use the same commands as the Makefile (`dagster asset materialize`, `dagster dev`), configured only
through the environment, with a fresh DAGSTER_HOME and every root in a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bioimage_pipeline.catalog import load_catalog
from bioimage_pipeline.config import PipelineConfig
from bioimage_pipeline.duck import connect_catalog
from bioimage_pipeline_tests.conftest import CORPUS, DATA, REPO, copy_tree, run_dg

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ASSET_NAMES = [
    "store_registry",
    "validation_issues",
    "image_assets",
    "chunk_index",
    "profile_tables",
    "profile_links",
    "joined_profiles",
    "cytomining_warehouse",
]
EXAMPLE_HUMAN = CORPUS / "cytomining+CytoTable/tests/data/cellprofiler/ExampleHuman"


def environment(tmp: Path, **extra: str) -> dict[str, str]:
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    values = {
        "DAGSTER_HOME": str(home),
        "BIOIMAGE_STORES_DIR": str(tmp / "stores"),
        "BIOIMAGE_PROFILES_DIR": str(tmp / "profiles"),
        "BIOIMAGE_WAREHOUSE_DIR": str(tmp / "warehouse"),
        "PYICEBERG_CATALOG__BIOIMAGE__URI": f"sqlite:///{tmp / 'catalog.db'}",
        "PYICEBERG_CATALOG__BIOIMAGE__WAREHOUSE": f"file://{tmp / 'iceberg'}",
        **extra,
    }
    (tmp / "stores").mkdir(exist_ok=True)
    (tmp / "profiles").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIOIMAGE_", "PYICEBERG_"))}
    return {**env, **values}


def config_for(env: dict[str, str]) -> PipelineConfig:
    return PipelineConfig(
        stores_dir=Path(env["BIOIMAGE_STORES_DIR"]),
        profiles_dir=Path(env["BIOIMAGE_PROFILES_DIR"]),
        warehouse_dir=Path(env["BIOIMAGE_WAREHOUSE_DIR"]),
        default_catalog_dir=Path(env["DAGSTER_HOME"]),
        catalog_properties={
            "type": "sql",
            "uri": env["PYICEBERG_CATALOG__BIOIMAGE__URI"],
            "warehouse": env["PYICEBERG_CATALOG__BIOIMAGE__WAREHOUSE"],
        },
    )


def query(env: dict[str, str], sql: str) -> list[tuple]:
    config = config_for(env)
    con = connect_catalog(load_catalog(config), config.namespace)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def materialize(env: dict[str, str], cwd: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "bioimage_pipeline.definitions", "--select", "*", *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_dagster_asset_materialize_on_empty_roots_from_the_environment(tmp_path: Path) -> None:
    env = environment(tmp_path)
    # Empty roots: nothing to ingest, and still a clean success.
    result = materialize(env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # Whatever lands there is ingested by the next run.
    copy_tree(DATA / "stores/demo_pyramid.ome.tiff", tmp_path / "stores/demo_pyramid.ome.tiff")
    for name in (
        "AS_09125_050116030001_D03f00d0.tif",
        "AS_09125_050116030001_D03f00d1.tif",
        "AS_09125_050116030001_D03f00d2.tif",
    ):
        copy_tree(EXAMPLE_HUMAN / name, tmp_path / "stores/ExampleHuman" / name)
    for name in ("Image.csv", "Cells.csv"):
        copy_tree(EXAMPLE_HUMAN / name, tmp_path / "profiles/ExampleHuman" / name)
    result = materialize(env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # The pyramid, and the three ExampleHuman channel files as one Cellomics plate.
    assert query(env, "SELECT count(DISTINCT dataset_id) FROM image_assets") == [(2,)]
    # ExportToSpreadsheet's Cells and Image tables are two object kinds: a joined table each.
    for kind, rows in (("cells", 289), ("image", 1)):
        sql = f"SELECT count(*), count(*) FILTER (image_matched) FROM joined_profiles_{kind}"
        assert query(env, sql) == [(rows, rows)]
    assert (tmp_path / "warehouse" / "warehouse_manifest.json").is_file()
    # Nothing was written under the project or the working directory's data/.
    assert not (tmp_path / "data").exists()


def test_dg_launch_materialises_every_asset_on_a_fresh_instance(tmp_path: Path) -> None:
    """The dg way: ``dg launch --assets '*'`` from the project folder, which [tool.dg] makes a dg project."""
    env = environment(tmp_path)
    copy_tree(DATA / "stores/demo_pyramid.ome.tiff", tmp_path / "stores/demo_pyramid.ome.tiff")
    result = run_dg("launch", "--assets", "*", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RUN_SUCCESS" in result.stderr
    assert query(env, "SELECT dataset_id FROM image_assets GROUP BY ALL") == [("demo_pyramid.ome.tiff",)]
    assert (tmp_path / "warehouse" / "warehouse_manifest.json").is_file()


STEP_LINE = re.compile(r" - (?P<pid>\d+) - (?P<step>[\w.\[\]]+) - (?P<event>STEP_START|STEP_SUCCESS) - ")


def test_store_scans_fan_out_over_worker_processes_and_commit_once(tmp_path: Path) -> None:
    """``dagster asset materialize`` with the multiprocess executor and two workers: the changed stores are
    scanned in batches by steps in processes of their own, two at a time, and each store table still gets
    exactly one snapshot from the run."""
    env = environment(tmp_path)
    for store in sorted((DATA / "stores").iterdir()):
        copy_tree(store, tmp_path / "stores" / store.name)
    run_config = tmp_path / "run.yaml"
    run_config.write_text(
        "execution: {config: {max_concurrent: 2}}\n"
        "resources: {bioimage: {config: {scan_batches: 4, scan_batch_files: 1}}}\n"
    )
    result = materialize(env, tmp_path, "-c", str(run_config))
    assert result.returncode == 0, result.stderr[-3000:]
    events = [m.groupdict() for m in STEP_LINE.finditer(result.stderr)]
    scans = [e for e in events if e["step"].startswith("stores.scan_store_batch[")]
    started = [e["step"] for e in scans if e["event"] == "STEP_START"]
    # At most the four batches asked for; fewer where one store outweighs a batch's share of the files.
    assert 2 <= len(started) <= 4, started
    # A process per step.
    assert len({e["pid"] for e in scans}) == len(started)
    # Two batches in flight at once: a second one started before the first finished.
    in_flight = peak = 0
    for e in scans:
        in_flight += 1 if e["event"] == "STEP_START" else -1
        peak = max(peak, in_flight)
    assert peak == 2
    stores = sorted(p.name for p in (tmp_path / "stores").iterdir())
    ingested = query(env, "SELECT DISTINCT split_part(dataset_id, '/', 1) FROM store_registry ORDER BY 1")
    assert [r[0] for r in ingested] == stores
    assert query(env, "SELECT count(*) FROM store_registry WHERE status <> 'ok'") == [(0,)]
    config = config_for(env)
    catalog = load_catalog(config)
    for name in ASSET_NAMES[:4]:
        table = catalog.load_table((config.namespace, name))
        assert len(table.snapshots()) == 1, name
    # The same stores again: nothing to scan, no batch, no new snapshot.
    again = materialize(env, tmp_path, "-c", str(run_config))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "scan_store_batch[" not in again.stderr
    for name in ASSET_NAMES[:4]:
        assert len(catalog.load_table((config.namespace, name)).snapshots()) == 1, name


def test_dagster_asset_materialize_exits_non_zero_when_the_contract_blocks(tmp_path: Path) -> None:
    env = environment(tmp_path)
    copy_tree(DATA / "stores/demo_pyramid.ome.tiff", tmp_path / "stores/demo_pyramid.ome.tiff")
    (tmp_path / "profiles" / "orphans.csv").write_text("AreaShape_Area\n10\n")
    result = materialize(env, tmp_path)
    assert result.returncode != 0
    assert "profile_join_contract" in result.stdout + result.stderr
    assert query(env, "SELECT count(*) FROM image_assets") == [(3,)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, text: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"]


def wait_for_webserver(port: int, process: subprocess.Popen, timeout: float = 180) -> bool:
    """Whether the Dagster webserver on ``port`` answers before ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
            return True
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(1)


@pytest.fixture
def dagster_dev(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """`dagster dev` (webserver and daemon) as `make ui` starts it, with short sensor intervals."""
    port = _free_port()
    env = environment(tmp_path, BIOIMAGE_SENSOR_INTERVAL_SECONDS="5", BIOIMAGE_QUIET_SECONDS="3")
    log = open(tmp_path / "dagster_dev.log", "w")  # noqa: SIM115 - closed in teardown
    process = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        if not wait_for_webserver(port, process):
            raise RuntimeError((tmp_path / "dagster_dev.log").read_text()[-3000:])
        yield port, env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def render(url: str, profile: Path) -> str:
    chromium = os.environ.get("BIOIMAGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the UI test (`make test` installs it: scripts/ensure-chromium)"
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            # Wide enough that the graph draws full nodes rather than zoomed-out, truncated labels.
            "--window-size=2400,1200",
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return result.stdout


def test_ui_graph_sensors_checks_and_hands_free_ingest(dagster_dev, tmp_path: Path) -> None:
    port, env = dagster_dev
    # The assets (the catalog's tables) are drawn as nodes of the lineage graph.
    names: set[str] = set()
    for attempt in range(3):
        dom = render(f"http://127.0.0.1:{port}/asset-groups", tmp_path / f"chromium-{attempt}")
        nodes = re.findall(r"<foreignObject.*?</foreignObject>", dom, re.S)  # the graph's nodes, in its SVG
        names = {re.sub(r"<[^>]+>", " ", node).split()[0] for node in nodes if re.sub(r"<[^>]+>", " ", node).split()}
        if names >= set(ASSET_NAMES):
            break
    assert set(ASSET_NAMES) <= names

    sensors = _graphql(
        port,
        '{ sensorsOrError(repositorySelector: {repositoryName: "__repository__", '
        'repositoryLocationName: "bioimage_pipeline"}) { ... on Sensors { results { name '
        "sensorState { status } } } } }",
    )
    states = {s["name"]: s["sensorState"]["status"] for s in sensors["sensorsOrError"]["results"]}
    assert states == {"store_sensor": "RUNNING", "profile_sensor": "RUNNING"}
    checks = _graphql(
        port, "{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }"
    )
    listed = {c["name"] for node in checks["assetNodes"] for c in node["assetChecksOrError"]["checks"]}
    assert listed == {
        "hierarchy_conformance",
        "image_assets_key_unique",
        "chunk_index_complete",
        "profile_join_contract",
        "join_coverage",
    }

    # A store copied into the root shows up in image_assets without anyone clicking.
    copy_tree(DATA / "stores/demo_sharded.zarr", Path(env["BIOIMAGE_STORES_DIR"]) / "demo_sharded.zarr")
    deadline = time.monotonic() + 180
    rows: list[tuple] = [(0,)]
    while time.monotonic() < deadline:
        rows = query(env, "SELECT count(*) FROM image_assets WHERE dataset_id = 'demo_sharded.zarr'")
        if rows != [(0,)]:
            break
        time.sleep(3)
    assert rows == [(1,)], (tmp_path / "dagster_dev.log").read_text()[-3000:]
