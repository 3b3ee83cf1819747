"""Scanning fanned out over batches: the plan cut into batches, each batch staged apart (as a worker
process would, handing on only plain data), and one commit per table for all of them."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from bioimage_pipeline import ingest
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline.discovery import StoreState
from bioimage_pipeline.tables import CHUNK_INDEX, IMAGE_ASSETS, STORE_REGISTRY, VALIDATION_ISSUES
from bioimage_pipeline_tests.conftest import DATA
from bioimage_pipeline_tests.test_pipeline import run, sql

STORE_TABLES = (STORE_REGISTRY, VALIDATION_ISSUES, IMAGE_ASSETS, CHUNK_INDEX)


def _state(name: str, files: int) -> StoreState:
    return StoreState(name, Path(name), "zarr", "fp", files, 0, 0.0)


def _plan(*stores: tuple[str, int]) -> ingest.ScanBatch:
    return ingest.ScanBatch(scanned_at=datetime.now(UTC), pending=[_state(n, f) for n, f in stores])


def test_batches_are_runs_of_neighbours_with_about_equal_files() -> None:
    plan = _plan(*((f"plate{i:02d}", 17_281) for i in reversed(range(10))))
    batches = ingest.split_batches(plan, most=4, min_files=20_000)
    names = [[s.dataset_id for s in b.stores] for b in batches]
    assert len(names) == 4
    # Every store once, in dataset_id order, each batch a contiguous run.
    assert [n for b in names for n in b] == [f"plate{i:02d}" for i in range(10)]
    assert sorted(len(b) for b in names) == [2, 2, 3, 3]
    assert all(b.scanned_at == plan.scanned_at for b in batches)


def test_small_stores_are_not_spread_over_batches_they_do_not_fill() -> None:
    plan = _plan(*((f"s{i}", 12) for i in range(50)))
    assert len(ingest.split_batches(plan, most=16, min_files=20_000)) == 1
    assert len(ingest.split_batches(plan, most=16, min_files=200)) == 3
    assert ingest.split_batches(_plan(), most=16, min_files=1) == []


def test_a_store_larger_than_a_share_gets_a_batch_and_none_is_empty() -> None:
    plan = _plan(("a", 10), ("b", 100_000), ("c", 10), ("d", 10))
    batches = ingest.split_batches(plan, most=4, min_files=1)
    assert [[s.dataset_id for s in b.stores] for b in batches] == [["a"], ["b"], ["c", "d"]]


def test_batches_staged_apart_commit_once_and_match_one_batch(add_store, catalog, config) -> None:
    for name in ("demo_sharded.zarr", "demo_pyramid.ome.tiff", "demo_image.ome.zarr", "cyx_uint8.zarr"):
        add_store(DATA / "stores" / name, name)
    add_store(DATA / "stores/screen/demo_plate.ome.zarr", "screen/demo_plate.ome.zarr")
    plan = ingest.scan_root(config, catalog, lazy=True)
    ingest.ensure_store_tables(catalog, config.namespace)
    batches = ingest.split_batches(plan, most=5, min_files=1)
    assert len(batches) >= 2
    plan.pending = []
    staged = []
    for batch in batches:
        scan = ingest.stage_stores(
            catalog, config.namespace, batch.stores, scanned_at=batch.scanned_at, max_chunk_rows=batch.max_chunk_rows
        )
        # What a worker hands on is plain data without the scans, and travels through pickle.
        assert all(o.scan is None for o in scan.outcomes)
        staged.append(pickle.loads(pickle.dumps(scan)))
    assert len(pickle.dumps(staged)) < 200_000
    # Nothing is visible before the commit.
    assert all(catalog.load_table((config.namespace, t)).current_snapshot() is None for t in STORE_TABLES)
    writes = {w.table: w for w in ingest.commit_staged(catalog, config.namespace, plan, staged)}
    assert all(writes[t].committed for t in STORE_TABLES)
    assert all(len(catalog.load_table((config.namespace, t)).snapshots()) == 1 for t in STORE_TABLES)
    assert len(plan.ok) == 5
    queries = {
        IMAGE_ASSETS: f"SELECT * EXCLUDE (scanned_at) FROM {IMAGE_ASSETS} ORDER BY ALL",
        CHUNK_INDEX: f"SELECT * FROM {CHUNK_INDEX} ORDER BY ALL",
        VALIDATION_ISSUES: f"SELECT * FROM {VALIDATION_ISSUES} ORDER BY ALL",
        STORE_REGISTRY: f"SELECT dataset_id, status, fingerprint, chunk_count FROM {STORE_REGISTRY} ORDER BY 1",
    }
    fanned = {t: sql(catalog, config, q) for t, q in queries.items()}
    assert len(fanned[CHUNK_INDEX]) > 100
    # The same stores written by one batch in one process give the same rows.
    for t in STORE_TABLES:
        catalog.drop_table((config.namespace, t))
    one = ingest.scan_root(config, catalog, lazy=True)
    ingest.write_all(catalog, config.namespace, one)
    for t, q in queries.items():
        assert sql(catalog, config, q) == fanned[t], t


def test_staged_files_of_batches_not_committed_are_removed(add_store, catalog, config) -> None:
    add_store(DATA / "stores/demo_sharded.zarr", "demo_sharded.zarr")
    plan = ingest.scan_root(config, catalog, lazy=True)
    ingest.ensure_store_tables(catalog, config.namespace)
    scan = ingest.stage_stores(catalog, config.namespace, plan.pending, scanned_at=plan.scanned_at)
    paths = [p for part in scan.files.values() for p in part.paths]
    assert paths and all(Path(p.removeprefix("file://")).is_file() for p in paths)
    ingest.discard_staged(catalog, config.namespace, [scan])
    assert not any(Path(p.removeprefix("file://")).exists() for p in paths)


@pytest.mark.parametrize("batches", [1, 4])
def test_the_store_graph_fans_out_and_reports_each_table(add_store, resource, catalog, config, batches) -> None:
    for name in ("demo_sharded.zarr", "demo_pyramid.ome.tiff", "demo_image.ome.zarr", "cyx_uint8.zarr"):
        add_store(DATA / "stores" / name, name)
    fanned = BioimageResource(**{**resource.model_dump(), "scan_batches": batches, "scan_batch_files": 1})
    planned = len(ingest.split_batches(ingest.scan_root(config, catalog, lazy=True), most=batches, min_files=1))
    assert planned == 1 if batches == 1 else planned > 1
    with dg.instance_for_test() as instance:
        result = run(fanned, instance)
        steps = {
            e.step_key
            for e in instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
            if e.step_key and "scan_store_batch" in e.step_key
        }
    assert len(steps) == planned
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta[STORE_REGISTRY]["scan_batches"].value == planned
    assert meta[STORE_REGISTRY]["ingested"].value == 4
    assert meta[IMAGE_ASSETS]["preview"].value.count("\n") == 1 + 10  # the header, its rule, ten rows
    assert "| dataset_id |" in meta[CHUNK_INDEX]["preview"].value
    for t in STORE_TABLES:
        assert meta[t]["snapshot_committed"].value is True
        assert len(catalog.load_table((config.namespace, t)).snapshots()) == 1
