"""Table maintenance: snapshot expiry, unreferenced files (killed runs too) and compaction keep a catalog's
files within twice its live ones, from the CLI, the library and the scheduled Dagster job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from bioimage_pipeline import ingest
from bioimage_pipeline.catalog import live_files
from bioimage_pipeline.config import PipelineConfig
from bioimage_pipeline.definitions import build_definitions
from bioimage_pipeline.maintenance import Retention, maintain_catalog
from bioimage_pipeline.tables import CHUNK_INDEX
from bioimage_pipeline_tests.conftest import DATA, SCRIPT, copy_tree, run_main, zarray


def data_files(root: Path) -> int:
    return sum(1 for _ in root.rglob("*.parquet"))


def live(catalog, namespace: str) -> int:
    return sum(len(live_files(catalog.load_table(i))) for i in catalog.list_tables(namespace))


def test_forty_runs_stay_within_twice_the_live_files(env, tmp_path, capsys) -> None:
    stores = tmp_path / "stores"
    for name in ("demo_image.ome.zarr", "demo_sharded.zarr", "demo_pyramid.ome.tiff", "camera.ome.zarr"):
        copy_tree(DATA / "stores" / name, stores / name)
    for _ in range(40):
        assert run_main(capsys, "ingest", str(stores), "--force")[0] == 0  # every store replaced every run
    config = PipelineConfig.from_env()
    from bioimage_pipeline.catalog import load_catalog

    catalog = load_catalog(config)
    warehouse = tmp_path / "catalog" / "warehouse"
    assert data_files(warehouse) > 20 * live(catalog, config.namespace)  # what happens without maintenance
    # Within the retention (1 hour by default) nothing is expired yet ...
    report = maintain_catalog(catalog, config.namespace, Retention())
    assert sum(t.snapshots_expired for t in report.tables) == 0
    # ... an hour later, the scheduled maintenance brings the files down to the live ones.
    report = maintain_catalog(catalog, config.namespace, Retention(), now=datetime.now(UTC) + timedelta(hours=2))
    assert data_files(warehouse) <= 2 * live(catalog, config.namespace)
    assert report.files_on_disk == data_files(warehouse) and report.live_files == live(catalog, config.namespace)
    # The tables read as before.
    code, out, _ = run_main(capsys, "status", "--json")
    status = json.loads(out)
    assert (status["stores_ok"], status["arrays"]) == (4, 1 + 6 + 3 + 3)
    # And from the command line, with the retention given there.
    for _ in range(5):
        assert run_main(capsys, "ingest", str(stores), "--force")[0] == 0
    code, out, _ = run_main(capsys, "maintain", "--snapshot-age", "0s", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["files_on_disk"] <= 2 * result["live_files"] and data_files(warehouse) == result["files_on_disk"]


def unreferenced(catalog, namespace: str, root: Path) -> set[str]:
    """Data files on disk that no snapshot of any table references."""
    referenced = set()
    for identifier in catalog.list_tables(namespace):
        table = catalog.load_table(identifier)
        for snapshot in table.snapshots():
            referenced |= {
                t.file.file_path.removeprefix("file://")
                for t in table.scan(snapshot_id=snapshot.snapshot_id).plan_files()
            }
    return {str(p) for p in root.rglob("*.parquet")} - referenced


def test_files_a_killed_run_staged_are_removed_once_old_enough(env, tmp_path, capsys) -> None:
    store = zarray(tmp_path / "big.zarr", [4000, 5000], [1, 1])  # 20,000,000 chunk rows: seconds of staging
    assert (
        run_main(capsys, "register", str(copy_tree(DATA / "stores/demo_sharded.zarr", tmp_path / "small.zarr")))[0] == 0
    )
    warehouse = tmp_path / "catalog" / "warehouse"
    config = PipelineConfig.from_env()
    from bioimage_pipeline.catalog import load_catalog

    catalog = load_catalog(config)
    for delay in (3.0, 4.0, 2.5, 5.0, 6.0):
        process = subprocess.Popen([str(SCRIPT), "register", str(store)], env=env)
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        leftovers = unreferenced(catalog, config.namespace, warehouse)
        if leftovers:
            break  # killed while its chunk_index files were staged and not committed
    else:
        raise AssertionError("no kill landed while files were staged")
    # Young unreferenced files may be a concurrent writer's: kept ...
    report = maintain_catalog(catalog, config.namespace, Retention())
    assert sum(t.orphans_deleted for t in report.tables) == 0
    assert leftovers <= {str(p) for p in warehouse.rglob("*.parquet")}
    # ... and removed once older than the orphan retention (1 day by default).
    report = maintain_catalog(catalog, config.namespace, Retention(), now=datetime.now(UTC) + timedelta(days=2))
    assert sum(t.orphans_deleted for t in report.tables) >= len(leftovers)
    assert not leftovers & {str(p) for p in warehouse.rglob("*.parquet")}
    assert data_files(warehouse) == live(catalog, config.namespace)
    _, out, _ = run_main(
        capsys, "query", "SELECT count(*) AS n FROM chunk_index WHERE dataset_id = 'small.zarr'", "--json"
    )
    assert json.loads(out) == [{"n": 64}]


def test_small_files_of_a_store_are_compacted_into_one(config, catalog, tmp_path) -> None:
    # 600,000 chunk rows are written by two parallel writers: two files in the store's partition.
    zarray(config.stores_dir / "wide.zarr", [600, 1000], [1, 1])
    ingest.write_all(catalog, config.namespace, ingest.scan_root(config, catalog))
    table = catalog.load_table((config.namespace, CHUNK_INDEX))
    assert len(live_files(table)) == 2
    before = table.scan(selected_fields=("chunk_coords", "storage_key")).to_arrow().sort_by("storage_key")
    report = maintain_catalog(catalog, config.namespace, Retention(), now=datetime.now(UTC) + timedelta(days=2))
    table = table.refresh()
    [chunks] = [t for t in report.tables if t.table == CHUNK_INDEX]
    assert chunks.files_compacted == 2 and len(live_files(table)) == 1
    after = table.scan(selected_fields=("chunk_coords", "storage_key")).to_arrow().sort_by("storage_key")
    assert after.equals(before)


def test_the_scheduled_job_maintains_the_catalog(config, catalog, resource, add_store) -> None:
    add_store(DATA / "stores/demo_image.ome.zarr", "a.ome.zarr")
    for _ in range(3):
        ingest.write_all(
            catalog,
            config.namespace,
            ingest.scan_paths(config, catalog, [(config.stores_dir / "a.ome.zarr", None)], force=True),
        )
    defs = build_definitions(resource)
    assert {s.name: s.job_name for s in defs.schedules}["hourly_maintenance"] == "table_maintenance"
    job = defs.resolve_job_def("table_maintenance")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
    assert result.success
    [event] = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = event.event_specific_data.metadata
    assert metadata["live_data_files"].value > 0
    assert metadata["data_files_on_disk"].value >= metadata["live_data_files"].value
