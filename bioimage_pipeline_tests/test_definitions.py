"""The code location loads, and its graph is the one DESIGN.md draws."""

from __future__ import annotations

import dagster as dg

from bioimage_pipeline.definitions import defs

GRAPH = {
    "scanned_stores": [],
    "image_assets": ["scanned_stores"],
    "chunk_index": ["image_assets"],
    "cytomining_warehouse": ["chunk_index"],
    "joined_profiles": ["cytomining_warehouse"],
}
CHECKS = {
    ("scanned_stores", "hierarchy_conformance"),
    ("image_assets", "image_assets_key_unique"),
    ("chunk_index", "chunk_index_complete"),
    ("cytomining_warehouse", "profile_join_contract"),
    ("joined_profiles", "join_coverage"),
}


def test_definitions_load_and_validate() -> None:
    dg.Definitions.validate_loadable(defs)


def test_asset_graph_snapshot() -> None:
    graph = defs.resolve_asset_graph()
    snapshot = {
        key.to_user_string(): sorted(p.to_user_string() for p in graph.get(key).parent_keys)
        for key in graph.get_all_asset_keys()
    }
    assert snapshot == GRAPH
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert checks == CHECKS
    blocking = {k.name for k in graph.asset_check_keys if graph.get_check_spec(k).blocking}
    assert blocking == {"image_assets_key_unique", "profile_join_contract"}


def test_sensors_schedule_and_executor() -> None:
    assert {s.name for s in defs.sensors} == {"store_sensor", "profile_sensor"}
    assert {s.name for s in defs.schedules} == {"nightly_refresh", "hourly_maintenance"}
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == "in_process"
