"""The asset graph end to end: real Dagster runs over real stores into a real SQLite Iceberg catalog."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster_duckdb import DuckDBResource

from bioimage_pipeline.catalog import load_table
from bioimage_pipeline.definitions import ASSETS, CHECKS
from bioimage_pipeline.defs.profiles import CONTRACT_CHECK
from bioimage_pipeline.duck import connect_catalog
from bioimage_pipeline.profiles.kinds import published_joined_tables
from bioimage_pipeline.tables import CHUNK_INDEX, IMAGE_ASSETS, JOINED_PROFILES, STORE_REGISTRY
from bioimage_pipeline_tests.conftest import CORPUS, DATA

EXAMPLE_HUMAN = CORPUS / "cytomining+CytoTable/tests/data/cellprofiler/ExampleHuman"


def run(resource, instance, raise_on_error: bool = True, run_config=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ASSETS, *CHECKS],
        resources={"bioimage": resource, "duckdb": DuckDBResource(database=":memory:")},
        instance=instance,
        raise_on_error=raise_on_error,
        run_config=run_config,
    )


def sql(catalog, config, query: str) -> list[tuple]:
    con = connect_catalog(catalog, config.namespace)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def snapshots(catalog, config) -> dict[str, int]:
    return {i[-1]: len(catalog.load_table(i).snapshots()) for i in catalog.list_tables(config.namespace)}


@pytest.fixture
def world(add_store, add_profile) -> None:
    """A plate, a sharded volume, an OME-TIFF pyramid and ExampleHuman, with their profile tables."""
    add_store(DATA / "stores/screen/demo_plate.ome.zarr", "screen/demo_plate.ome.zarr")
    add_store(DATA / "stores/demo_sharded.zarr", "demo_sharded.zarr")
    add_store(DATA / "stores/demo_pyramid.ome.tiff", "demo_pyramid.ome.tiff")
    for name in (
        "AS_09125_050116030001_D03f00d0.tif",
        "AS_09125_050116030001_D03f00d1.tif",
        "AS_09125_050116030001_D03f00d2.tif",
    ):
        add_store(EXAMPLE_HUMAN / name, f"ExampleHuman/{name}")
    add_profile(DATA / "profiles/demo_plate_cells.csv", "demo_plate_cells.csv")
    for name in ("Image.csv", "Cells.csv", "Nuclei.csv"):
        add_profile(EXAMPLE_HUMAN / name, f"ExampleHuman/{name}")


def every_joined_row(catalog, config) -> str:
    """A relation of the key columns of every joined table's rows (one table per object kind)."""
    names = published_joined_tables(catalog, config.namespace)
    assert JOINED_PROFILES in names
    return "(" + " UNION ALL ".join(f"SELECT profile_table, profile_row, image_matched FROM {n}" for n in names) + ")"


def profile_rows(config) -> int:
    import pyarrow.csv as pacsv

    rows = pacsv.read_csv(config.profiles_dir / "demo_plate_cells.csv").num_rows
    for name in ("Image.csv", "Cells.csv", "Nuclei.csv"):
        rows += pacsv.read_csv(config.profiles_dir / "ExampleHuman" / name).num_rows
    return rows


def test_full_graph_ingests_every_store_and_joins_every_profile_row(world, resource, catalog, config) -> None:
    with dg.instance_for_test() as instance:
        result = run(resource, instance)
        assert result.success
        stores = {r[0] for r in sql(catalog, config, f"SELECT DISTINCT dataset_id FROM {IMAGE_ASSETS}")}
        assert stores == {
            "screen/demo_plate.ome.zarr",
            "demo_sharded.zarr",
            "demo_pyramid.ome.tiff",
            "ExampleHuman",  # a Cellomics plate folder: one store
        }
        chunked = sql(
            catalog,
            config,
            f"""
            SELECT a.dataset_id, a.array_path, a.chunk_count, count(c.storage_key)
            FROM {IMAGE_ASSETS} a LEFT JOIN {CHUNK_INDEX} c USING (dataset_id, array_path) GROUP BY ALL""",
        )
        assert chunked and all(n_index == n for _, _, n, n_index in chunked)
        assert all(n > 0 for _, _, n, _ in chunked)
        registry = sql(catalog, config, f"SELECT dataset_id, status FROM {STORE_REGISTRY}")
        assert sorted(s for _, s in registry) == ["ok"] * 4

        every = every_joined_row(catalog, config)
        joined = sql(catalog, config, f"SELECT count(*), count(*) FILTER (image_matched) FROM {every}")
        assert joined[0] == (profile_rows(config), profile_rows(config))
        per_row = sql(
            catalog,
            config,
            f"SELECT count(*) FROM {every} GROUP BY profile_table, profile_row HAVING count(*) > 1",
        )
        assert per_row == []

        manifest = json.loads((config.warehouse_dir / "warehouse_manifest.json").read_text())
        names = {t["table_name"] for t in manifest["tables"]}
        assert {
            "images.image_assets",
            "images.chunk_index",
            "profiles.joined_profiles",
            "profiles.demo_plate_cells",
        } <= names

        checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {
            "hierarchy_conformance": True,
            "image_assets_key_unique": True,
            "chunk_index_complete": False,
            CONTRACT_CHECK: True,
            "join_coverage": True,
        }  # the sharded volume has an unwritten corner


def test_rerun_over_unchanged_input_changes_nothing(world, resource, catalog, config) -> None:
    with dg.instance_for_test() as instance:
        run(resource, instance)
        before = snapshots(catalog, config)
        version = (config.warehouse_dir).resolve()
        result = run(resource, instance)
        assert result.success
        assert snapshots(catalog, config) == before
        assert config.warehouse_dir.resolve() == version


def warehouse_versions(config) -> list[Path]:
    """The published versions of the Cytomining warehouse (the last two are kept)."""
    versions = config.warehouse_dir.parent / f".{config.warehouse_dir.name}.versions"
    return sorted(p for p in versions.iterdir() if p.is_dir())


def test_one_snapshot_per_table_and_one_warehouse_per_run(world, resource, catalog, config, add_store) -> None:
    with dg.instance_for_test() as instance:
        run(resource, instance)
        before = snapshots(catalog, config)
        first = warehouse_versions(config)
        assert first == [config.warehouse_dir.resolve()]
        add_store(DATA / "stores/demo_image.ome.zarr", "demo_image.ome.zarr")
        shutil.rmtree(config.stores_dir / "demo_sharded.zarr")
        run(resource, instance)
        after = snapshots(catalog, config)
        for table in (STORE_REGISTRY, IMAGE_ASSETS, CHUNK_INDEX):
            assert after[table] == before[table] + 1, table
        # One more version: a second publish in the run would have pruned the first run's.
        assert warehouse_versions(config) == sorted([*first, config.warehouse_dir.resolve()])


def test_removed_store_loses_its_rows(world, resource, catalog, config) -> None:
    with dg.instance_for_test() as instance:
        run(resource, instance)
        shutil.rmtree(config.stores_dir / "demo_sharded.zarr")
        run(resource, instance)
    for table in (IMAGE_ASSETS, CHUNK_INDEX, STORE_REGISTRY):
        rows = sql(catalog, config, f"SELECT count(*) FROM {table} WHERE dataset_id = 'demo_sharded.zarr'")
        assert rows == [(0,)], table
    assert sql(catalog, config, f"SELECT count(DISTINCT dataset_id) FROM {IMAGE_ASSETS}") == [(3,)]


def test_corrupt_store_is_recorded_and_the_others_ingest(world, resource, catalog, config, add_store) -> None:
    broken = add_store(DATA / "stores/demo_image.ome.zarr", "broken.ome.zarr")
    (broken / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {')
    (config.stores_dir / "garbage.tif").write_bytes(b"II*\x00" + b"\x00" * 10)
    with dg.instance_for_test() as instance:
        assert run(resource, instance).success
    registry = dict(sql(catalog, config, f"SELECT dataset_id, status FROM {STORE_REGISTRY}"))
    assert registry.pop("broken.ome.zarr") == "failed"
    assert registry.pop("garbage.tif") == "failed"
    assert set(registry.values()) == {"ok"} and len(registry) == 4
    errors = dict(sql(catalog, config, f"SELECT dataset_id, error FROM {STORE_REGISTRY} WHERE status = 'failed'"))
    assert str(broken / "zarr.json") in errors["broken.ome.zarr"] and "invalid JSON" in errors["broken.ome.zarr"]
    assert "garbage.tif" in errors["garbage.tif"]
    assert all("\n" not in e for e in errors.values())
    assert sql(catalog, config, f"SELECT count(*) FROM {IMAGE_ASSETS} WHERE dataset_id = 'broken.ome.zarr'") == [(0,)]


def test_store_that_breaks_keeps_its_last_good_rows(world, resource, catalog, config) -> None:
    with dg.instance_for_test() as instance:
        run(resource, instance)
        good = sql(catalog, config, f"SELECT count(*) FROM {IMAGE_ASSETS} WHERE dataset_id = 'demo_sharded.zarr'")
        (config.stores_dir / "demo_sharded.zarr" / "volume" / "zarr.json").write_text("not json")
        assert run(resource, instance).success
    row = sql(catalog, config, f"SELECT status, error FROM {STORE_REGISTRY} WHERE dataset_id = 'demo_sharded.zarr'")
    assert row[0][0] == "failed" and "volume/zarr.json" in row[0][1]
    assert sql(catalog, config, f"SELECT count(*) FROM {IMAGE_ASSETS} WHERE dataset_id = 'demo_sharded.zarr'") == good


def test_a_table_failing_the_contract_costs_only_itself(world, resource, catalog, config) -> None:
    # Measurements with nothing that names an image: the contract cannot be met.
    (config.profiles_dir / "orphans.csv").write_text(
        "Cells_AreaShape_Area,Cells_Intensity_MeanIntensity_DNA\n120,0.5\n98,0.4\n"
    )
    with dg.instance_for_test() as instance:
        result = run(resource, instance, raise_on_error=False)
        # The blocking check fails the run (dagster asset materialize exits non-zero)...
        assert not result.success
        contract = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == CONTRACT_CHECK]
        assert len(contract) == 1 and not contract[0].passed
        assert contract[0].severity == dg.AssetCheckSeverity.ERROR
        assert contract[0].metadata["failing_tables"].value == ["profile_orphans"]
        assert "orphans.csv" in contract[0].description
        # ... after everything else went through: the other tables are published and joined.
        materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert {"profile_tables", "profile_links", "joined_profiles", "cytomining_warehouse"} <= materialized
        tables = next(
            e.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.asset_key.to_user_string() == "profile_tables"
        )
        assert tables["tables_not_published"].value == ["profile_orphans"]
        assert "| profile_orphans |  |  |  | not published (contract) |" in tables["tables"].value
    assert load_table(catalog, config.namespace, "profile_orphans") is None
    every = every_joined_row(catalog, config)
    tables = {r[0] for r in sql(catalog, config, f"SELECT DISTINCT profile_table FROM {every}")}
    assert tables == {
        "profile_demo_plate_cells",
        "profile_examplehuman_cells",
        "profile_examplehuman_image",
        "profile_examplehuman_nuclei",
    }
    assert sql(catalog, config, f"SELECT count(*) FROM {every}") == [(profile_rows(config),)]
    manifest = json.loads((config.warehouse_dir / "warehouse_manifest.json").read_text())
    names = {t["table_name"] for t in manifest["tables"]}
    assert "profiles.joined_profiles" in names and "profiles.orphans" not in names


def test_sensor_run_config_scans_only_the_named_stores(world, resource, catalog, config) -> None:
    with dg.instance_for_test() as instance:
        result = run(
            resource,
            instance,
            raise_on_error=False,
            run_config=dg.RunConfig(ops={"stores": {"config": {"dataset_ids": ["demo_pyramid.ome.tiff"]}}}),
        )
    stores = sql(catalog, config, f"SELECT DISTINCT dataset_id FROM {IMAGE_ASSETS}")
    assert stores == [("demo_pyramid.ome.tiff",)]
    # The profiles name plates and files not catalogued yet: the contract holds the join back until they are.
    assert not result.success
    contract = [e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == CONTRACT_CHECK]
    assert not contract[0].passed


def test_metadata_reports_rows_schema_preview_and_outcomes(world, resource) -> None:
    with dg.instance_for_test() as instance:
        result = run(resource, instance)
    meta = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert meta["image_assets"]["dagster/row_count"].value > 6
    columns = [c.name for c in meta["image_assets"]["dagster/column_schema"].value.columns]
    assert columns[:4] == ["dataset_id", "image_id", "array_path", "level"]
    assert "| dataset_id |" in meta["image_assets"]["preview"].value
    outcomes = meta["store_registry"]["outcomes"].value
    assert "demo_pyramid.ome.tiff | ingested" in outcomes
    assert meta["joined_profiles"]["dagster/row_count"].value == meta["joined_profiles"]["rows_matched"].value
    # Each profile asset reports its own table(s): the profile tables' rows add up to the joined rows, and
    # every joined row that is linked has at least one link.
    assert meta["profile_tables"]["dagster/row_count"].value >= meta["joined_profiles"]["dagster/row_count"].value
    assert "| profile_examplehuman_cells | profiles | 289 |" in meta["profile_tables"]["tables"].value
    assert meta["profile_links"]["dagster/row_count"].value >= meta["joined_profiles"]["rows_matched"].value
    assert meta["profile_links"]["snapshot_committed"].value is True
    assert [c.name for c in meta["profile_links"]["dagster/column_schema"].value.columns][:2] == [
        "profile_table",
        "profile_row",
    ]
    assert meta["cytomining_warehouse"]["new_version_published"].value is True


def test_store_listed_in_registry_by_cli_outside_root_is_not_removed(
    world, resource, catalog, config, tmp_path
) -> None:
    from bioimage_pipeline import ingest

    outside = shutil.copytree(DATA / "stores/demo_image.ome.zarr", tmp_path / "elsewhere" / "demo_image.ome.zarr")
    batch = ingest.scan_paths(config, catalog, [(Path(outside), None)])
    ingest.write_all(catalog, config.namespace, batch)
    with dg.instance_for_test() as instance:
        run(resource, instance)
    assert sql(
        catalog, config, f"SELECT count(*) > 0 FROM {IMAGE_ASSETS} WHERE dataset_id = 'demo_image.ome.zarr'"
    ) == [(True,)]


def test_hierarchy_conformance_is_recorded_per_store(world, resource, catalog, config, add_store) -> None:
    broken = add_store(DATA / "stores/demo_image.ome.zarr", "nonconforming.ome.zarr")
    labels = broken / "labels" / "zarr.json"
    doc = json.loads(labels.read_text())
    del doc["attributes"]["ome"]["version"]  # what ome-zarr 0.18 writes for an OME-Zarr 0.5 labels group
    labels.write_text(json.dumps(doc))
    with dg.instance_for_test() as instance:
        result = run(resource, instance)
    rows = sql(
        catalog, config, "SELECT dataset_id, node_path, rule, severity FROM validation_issues WHERE severity = 'error'"
    )
    assert rows == [("nonconforming.ome.zarr", "labels", "ngff.version.missing", "error")]
    check = next(e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == "hierarchy_conformance")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "nonconforming.ome.zarr" in check.metadata["stores"].value
    assert check.metadata["stores_with_problems"].value == 1


def test_conformance_of_a_container_whose_conventions_sit_below_its_root() -> None:
    from bioimage_pipeline.formats import scan_store
    from bioimage_pipeline.ingest import conformance

    n5 = CORPUS / "saalfeldlab+n5-universe/src/test/resources/test.n5"
    issues = conformance(n5, scan_store(n5))
    assert issues, "test.n5's multiscale groups break CellMap rules; they must be found below the root"
    # Node paths are relative to the store root, and name nodes that exist.
    assert all((n5 / i.path).is_dir() for i in issues if i.path != "/")
    assert ("cosem", "cellmap.cosem.pixel_resolution") in {(i.path, i.rule) for i in issues}
