"""The code location loads — as a dg project and as a module — and its graph is the one DESIGN.md draws."""

from __future__ import annotations

import json

import dagster as dg
import yaml

from bioimage_pipeline.definitions import ASSETS
from bioimage_pipeline.definitions import defs as location
from bioimage_pipeline.defs.resources import CATALOG_POOL
from bioimage_pipeline_tests.conftest import REPO, run_dg

PROJECT = REPO
defs = location()

#: Every table the catalog holds is an asset (``profile_tables`` is the set of published profile and QC
#: tables), and the warehouse they are all exported to is the last.
GRAPH = {
    "store_registry": [],
    "validation_issues": ["store_registry"],
    "image_assets": ["store_registry"],
    "chunk_index": ["image_assets"],
    "profile_tables": ["image_assets"],
    "profile_links": ["image_assets", "profile_tables"],
    "joined_profiles": ["image_assets", "profile_links", "profile_tables"],
    "cytomining_warehouse": [
        "chunk_index",
        "image_assets",
        "joined_profiles",
        "profile_links",
        "profile_tables",
        "store_registry",
        "validation_issues",
    ],
}
CHECKS = {
    ("validation_issues", "hierarchy_conformance"),
    ("image_assets", "image_assets_key_unique"),
    ("chunk_index", "chunk_index_complete"),
    ("profile_tables", "profile_join_contract"),
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
    # Steps in processes of their own, so a run's store scans fan out over the cores.
    assert job.executor_def.name == "bioimage_executor"
    step_keys = {node.name for node in job.graph.node_dict["stores"].definition.node_dict.values()}
    assert step_keys == {"plan_store_scans", "scan_store_batch", "commit_store_tables"}


def test_dg_loads_the_defs_folder() -> None:
    """``dg list defs`` (the dg CLI, from pyproject's [tool.dg]) finds the same graph, sensors and schedules."""
    listed = run_dg("list", "defs", "--json", timeout=300)
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert {a["asset_key"]: sorted(a["dependency_keys"]) for a in found["assets"]} == GRAPH
    assert {(c["asset_key"], c["name"]) for c in found["asset_checks"]} == CHECKS
    assert {s["name"] for s in found["sensors"]} == {"store_sensor", "profile_sensor"}
    assert {s["name"] for s in found["schedules"]} == {"nightly_refresh", "hourly_maintenance"}
    assert {j["name"] for j in found["jobs"]} >= {"refresh_everything", "table_maintenance"}


def test_catalog_writers_share_one_pool_limited_by_the_instance() -> None:
    """Concurrency through a pool, not a run queue: every step writing the catalog is in the pool, and the
    project's instance limits pools to one step at a time."""
    pools = {}
    for a in ASSETS:
        node = a.node_def
        for op in node.iterate_op_defs() if isinstance(node, dg.GraphDefinition) else [node]:
            pools[op.name] = op.pool
    # The scans themselves are not: they write only staged files, and run in parallel.
    assert pools == {
        "plan_store_scans": None,
        "scan_store_batch": None,
        "commit_store_tables": CATALOG_POOL,
        "profiles": CATALOG_POOL,
    }
    maintenance = defs.resolve_job_def("table_maintenance")
    assert {node.definition.pool for node in maintenance.graph.node_dict.values()} == {CATALOG_POOL}
    instance = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
    assert "run_queue" not in instance
    assert instance["concurrency"]["pools"]["default_limit"] == 1


def test_the_defs_folder_loads_without_the_project_file(monkeypatch) -> None:
    """Installed as a wheel there is no pyproject.toml: the folder is found through the package instead."""
    import bioimage_pipeline.definitions as definitions

    monkeypatch.setattr(definitions, "_project_root", lambda: None)
    loaded = definitions.load_defs_folder()
    keys = {k.to_user_string() for a in loaded.assets or [] for k in a.keys}
    assert keys == set(GRAPH)
    assert {s.name for s in loaded.sensors or []} == {"store_sensor", "profile_sensor"}


def test_the_project_file_is_found_only_when_it_declares_this_package() -> None:
    import bioimage_pipeline.definitions as definitions

    assert definitions._project_root() == REPO
