"""Real image/profile pairs through the whole graph, and the Cytomining warehouse it exports."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pycytominer
import pytest
from dagster_duckdb import DuckDBResource

from bioimage_pipeline import warehouse
from bioimage_pipeline.catalog import load_catalog
from bioimage_pipeline.config import PipelineConfig
from bioimage_pipeline.definitions import ASSETS, CHECKS
from bioimage_pipeline.duck import connect_catalog
from bioimage_pipeline_tests.conftest import CORPUS, copy_tree, resource_for

EXAMPLE_HUMAN = CORPUS / "cytomining+CytoTable/tests/data/cellprofiler/ExampleHuman"
NF1 = CORPUS / "WayScience+coSMicQC/tests/data/cytotable/NF1_cellpainting_data_shrunken"
FRACTAL_PLATE = CORPUS / "fractal-analytics-platform+fractal-tasks-core/tests/data/plate_ones.zarr"


def build_world(root: Path, only_example_human: bool = False) -> PipelineConfig:
    """ExampleHuman, NF1 Plate_2 and the Fractal plate, each with the profile tables measured on it."""
    config = PipelineConfig.for_root(root, quiet_seconds=0.0)
    for tif in EXAMPLE_HUMAN.glob("*.tif"):
        copy_tree(tif, config.stores_dir / "ExampleHuman" / tif.name)
    for name in ("Image.csv", "Cells.csv", "Nuclei.csv", "Experiment.csv"):
        copy_tree(EXAMPLE_HUMAN / name, config.profiles_dir / "ExampleHuman" / name)
    if only_example_human:
        return config
    copy_tree(NF1 / "Plate_2_images", config.stores_dir / "NF1" / "Plate_2_images")
    copy_tree(NF1 / "Plate_2_with_image_data_shrunken.parquet", config.profiles_dir / "nf1_plate_2.parquet")
    copy_tree(FRACTAL_PLATE, config.stores_dir / "fractal" / "plate_ones.zarr")
    # A CellProfiler-style table for the plate: keys spelled as CellProfiler writes them (well "B3").
    (config.profiles_dir / "plate_ones_cells.csv").write_text(
        "ImageNumber,ObjectNumber,Metadata_Plate,Metadata_Well,Metadata_Site,Cells_AreaShape_Area\n"
        + "".join(f"1,{i},plate_ones,B3,0,{100 + i}\n" for i in range(1, 8))
    )
    return config


def run(config: PipelineConfig, raise_on_error: bool = True) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [*ASSETS, *CHECKS],
            instance=instance,
            raise_on_error=raise_on_error,
            resources={"bioimage": resource_for(config), "duckdb": DuckDBResource(database=":memory:")},
        )


def sql(config: PipelineConfig, query: str) -> list[tuple]:
    con = connect_catalog(load_catalog(config), config.namespace)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PipelineConfig, dg.ExecuteInProcessResult]]:
    config = build_world(tmp_path_factory.mktemp("pairs") / "root")
    yield config, run(config)


def test_example_human_every_cell_once_linked_to_its_three_channel_images(world) -> None:
    config, result = world
    assert result.success
    rows = sql(
        config,
        """
        SELECT profile_row, image_matched, image__channel, image__dataset_id, image__image_id, image__uri
        FROM joined_profiles_cells WHERE profile_table = 'profile_examplehuman_cells' ORDER BY profile_row""",
    )
    assert len(rows) == pacsv.read_csv(EXAMPLE_HUMAN / "Cells.csv").num_rows == 289
    assert [r[0] for r in rows] == list(range(289))  # each cell exactly once
    for _, matched, channels, datasets, images, uris in rows:
        # The Cellomics folder is one plate store; its site D03/0 has one array per channel file.
        assert matched and channels == ["DNA", "PH3", "cellbody"]
        assert datasets == ["ExampleHuman"] * 3 and images == ["D03/0"] * 3
        assert [Path(u).name for u in uris] == [f"AS_09125_050116030001_D03f00d{i}.tif" for i in range(3)]


def test_nf1_every_row_linked_despite_merge_suffixed_keys(world) -> None:
    config, _ = world
    rows = sql(
        config,
        """
        SELECT plate_id, well_id, site_id, image_matched, len(image__dataset_id) FROM joined_profiles
        WHERE profile_table = 'profile_nf1_plate_2' ORDER BY profile_row""",
    )
    assert len(rows) == pq.read_metadata(NF1 / "Plate_2_with_image_data_shrunken.parquet").num_rows == 5
    assert all(matched and n == 3 for *_, matched, n in rows)
    assert rows[0][:3] == ("Plate_2", "B07", "3")


def test_fractal_plate_linked_by_plate_well_site(world) -> None:
    config, _ = world
    rows = sql(
        config,
        """
        SELECT image_matched, image__dataset_id, image__image_id FROM joined_profiles
        WHERE profile_table = 'profile_plate_ones_cells'""",
    )
    assert len(rows) == 7
    assert all(r == (True, ["fractal/plate_ones.zarr"], ["B/03/0"]) for r in rows)
    methods = sql(config, "SELECT DISTINCT method FROM profile_links WHERE profile_table = 'profile_plate_ones_cells'")
    assert methods == [("plate_well_site",)]


def test_contract_passes_on_every_real_pair(world) -> None:
    _, result = world
    contract = next(
        e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == "profile_join_contract"
    )
    coverage = next(e for e in result.get_asset_check_evaluations() if e.asset_check_key.name == "join_coverage")
    assert contract.passed and coverage.passed


def test_warehouse_manifest_matches_its_files_and_duckdb_reads_every_table(world) -> None:
    config, _ = world
    root = config.warehouse_dir
    report = warehouse.validate(root)
    assert report.valid, report.errors
    manifest = json.loads((root / "warehouse_manifest.json").read_text())
    assert manifest["warehouse_spec_version"] == warehouse.WAREHOUSE_SPEC_VERSION
    names = {t["table_name"]: t for t in manifest["tables"]}
    assert {
        "images.image_assets",
        "images.chunk_index",
        "profiles.joined_profiles",
        "profiles.examplehuman_cells",
        "profiles.nf1_plate_2",
        "profiles.plate_ones_cells",
    } <= set(names)
    assert names["profiles.examplehuman_cells"]["compartment"] == "Cells"
    assert names["profiles.examplehuman_image"]["profile_level"] == "image"
    # One joined table per object kind: single cells as the joined_profiles role, the others as profiles
    # tables of their kind.
    kinds = {n: (t["role"], t["profile_level"], t["compartment"]) for n, t in names.items() if ".joined_" in n}
    assert kinds == {
        "profiles.joined_profiles": ("joined_profiles", "single_cell", None),
        "profiles.joined_profiles_cells": ("profiles", "single_cell", "Cells"),
        "profiles.joined_profiles_nuclei": ("profiles", "single_cell", "Nuclei"),
        "profiles.joined_profiles_image": ("profiles", "image", "Image"),
    }
    con = duckdb.connect()
    for table in manifest["tables"]:
        assert table["role"] in warehouse.ROLES
        assert table["table_name"].split(".")[0] == warehouse.ROLE_NAMESPACES[table["role"]]
        path = root / table["path"]
        count = con.execute(f"SELECT count(*) FROM read_parquet('{path}/*.parquet')").fetchone()[0]
        assert count == table["row_count"], table["table_name"]
        columns = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}/*.parquet')").fetchall()]
        assert columns == table["columns"]
    joined = {n: t["row_count"] for n, t in names.items() if ".joined_" in n}
    # Every profile row once, in the table of its kind: NF1's and the plate's cells; cells; nuclei; the image.
    assert joined == {
        "profiles.joined_profiles": 5 + 7,
        "profiles.joined_profiles_cells": 289,
        "profiles.joined_profiles_nuclei": 289,
        "profiles.joined_profiles_image": 1,
    }
    # Tables of different kinds do not share a schema: the single cells have no column that only
    # ExampleHuman's compartments have.
    single = set(names["profiles.joined_profiles"]["columns"])
    only_example_human = set(names["profiles.examplehuman_nuclei"]["columns"]) - set(
        names["profiles.nf1_plate_2"]["columns"] + names["profiles.plate_ones_cells"]["columns"]
    )
    assert only_example_human and not only_example_human & single


def test_pycytominer_reads_the_warehouse_profile_tables(world) -> None:
    config, _ = world
    folder = config.warehouse_dir / "profiles" / "examplehuman_cells"
    profiles = pd.concat(pycytominer.cyto_utils.load_profiles(str(f)) for f in sorted(folder.glob("*.parquet")))
    features = pycytominer.cyto_utils.infer_cp_features(profiles, compartments=["Cells"])
    assert len(profiles) == 289 and "Cells_AreaShape_Area" in features
    normalized = pycytominer.normalize(
        profiles=profiles,
        features=features,
        meta_features=["dataset_id", "well_id"],
        samples="all",
        method="standardize",
    )
    assert len(normalized) == 289
    assert abs(float(normalized["Cells_AreaShape_Area"].mean())) < 1e-6  # standardised: mean 0
    nf1 = pycytominer.cyto_utils.load_profiles(
        str(next((config.warehouse_dir / "profiles" / "nf1_plate_2").glob("*.parquet")))
    )
    assert len(pycytominer.cyto_utils.infer_cp_features(nf1)) > 1000


def snapshot_state(config: PipelineConfig) -> dict[str, int]:
    catalog = load_catalog(config)
    return {i[-1]: len(catalog.load_table(i).snapshots()) for i in catalog.list_tables(config.namespace)}


def test_rerun_changes_nothing_and_a_new_table_adds_exactly_its_rows(tmp_path: Path) -> None:
    config = build_world(tmp_path / "root", only_example_human=True)
    run(config)
    snapshots = snapshot_state(config)
    manifest = json.loads((config.warehouse_dir / "warehouse_manifest.json").read_text())
    version = config.warehouse_dir.resolve()

    run(config)
    assert snapshot_state(config) == snapshots
    assert config.warehouse_dir.resolve() == version  # no new warehouse version either

    copy_tree(EXAMPLE_HUMAN / "Cytoplasm.csv", config.profiles_dir / "ExampleHuman" / "Cytoplasm.csv")
    run(config)
    after = json.loads((config.warehouse_dir / "warehouse_manifest.json").read_text())
    before_rows = {t["table_name"]: t["row_count"] for t in manifest["tables"]}
    after_rows = {t["table_name"]: t["row_count"] for t in after["tables"]}
    added = pacsv.read_csv(EXAMPLE_HUMAN / "Cytoplasm.csv").num_rows
    assert after_rows.pop("profiles.examplehuman_cytoplasm") == added
    # A new kind gets a joined table of its own; the other joined tables are not rewritten.
    assert after_rows.pop("profiles.joined_profiles_cytoplasm") == added
    assert after_rows == before_rows  # every other table unchanged
    changed = {k for k, v in snapshot_state(config).items() if snapshots.get(k) != v} - {"profile_links"}
    assert changed == {"profile_examplehuman_cytoplasm", "joined_profiles_cytoplasm"}
    counts = [
        sql(config, f"SELECT count(*) FROM joined_profiles_{kind}")[0][0]
        for kind in ("cells", "cytoplasm", "nuclei", "image")
    ]
    assert counts == [289, 289, 289, 1]
