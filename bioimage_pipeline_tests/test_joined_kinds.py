"""One joined table per object kind: single cells in ``joined_profiles``, every other kind in a table of its own,
each rebuilt only when its own inputs change, dropped when its kind is gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioimage_pipeline import ingest
from bioimage_pipeline.catalog import load_table, total_rows
from bioimage_pipeline.export import export_catalog
from bioimage_pipeline.joins import build_joined_profiles
from bioimage_pipeline.profiles.kinds import joined_table_name, published_joined_tables
from bioimage_pipeline.profiles.pipeline import joinable_profile_tables, refresh_profiles
from bioimage_pipeline.profiles.sources import discover_profile_sources
from bioimage_pipeline.warehouse import read_manifest, validate
from bioimage_pipeline_tests.conftest import DATA

EXAMPLE_HUMAN = DATA / "profiles" / "ExampleHuman"
#: A plain per-cell table linked by file name: single cells, no compartment.
SINGLE_CELLS = (
    "FileName_DNA,Cells_AreaShape_Area\nAS_09125_050116030001_D03f00d0.tif,1\nAS_09125_050116030001_D03f00d0.tif,2\n"
)


@pytest.mark.parametrize(
    ("level", "compartment", "name"),
    [
        ("single_cell", None, "joined_profiles"),
        (None, None, "joined_profiles"),
        ("single_cell", "Cells", "joined_profiles_cells"),
        ("image", "Image", "joined_profiles_image"),
        ("well", None, "joined_profiles_well"),
        ("single_cell", "Nuclei Masks", "joined_profiles_nuclei_masks"),
    ],
)
def test_each_kind_has_its_own_joined_table(level, compartment, name) -> None:
    assert joined_table_name(level, compartment) == name


def _run(config, catalog):
    batch = ingest.scan_root(config, catalog)
    ingest.write_all(catalog, config.namespace, batch)
    prepared, _ = refresh_profiles(catalog, config.namespace, discover_profile_sources(config.profiles_dir))
    stats = build_joined_profiles(catalog, config.namespace, joinable_profile_tables(catalog, config.namespace))
    return prepared, stats


def test_a_kind_that_goes_is_dropped_and_the_others_are_not_rewritten(config, catalog, add_store) -> None:
    add_store(DATA / "stores" / "ExampleHuman", "ExampleHuman")
    folder = config.profiles_dir / "ExampleHuman"
    folder.mkdir()
    for name in ("Image.csv", "Cells.csv"):
        (folder / name).write_bytes((EXAMPLE_HUMAN / name).read_bytes())
    (config.profiles_dir / "cells.csv").write_text(SINGLE_CELLS)
    _, stats = _run(config, catalog)
    assert stats.tables == {
        "joined_profiles": ["profile_cells"],
        "joined_profiles_cells": ["profile_examplehuman_cells"],
        "joined_profiles_image": ["profile_examplehuman_image"],
    }
    assert stats.total_rows == stats.total_matched == 2 + 289 + 1
    assert sorted(stats.committed) == sorted(stats.tables)
    image = load_table(catalog, config.namespace, "joined_profiles_image")
    assert image is not None and image.properties["bioimage.profile-level"] == "image"
    before = {n: t.current_snapshot() for n in stats.tables if (t := load_table(catalog, config.namespace, n))}

    # The Cells table goes: its joined table goes with it. The image table comes from the same folder, which
    # is read again as a whole, so its joined table is written again; the single cells of another source
    # keep their snapshot.
    (folder / "Cells.csv").unlink()
    _, stats = _run(config, catalog)
    assert stats.dropped == ["joined_profiles_cells"] and stats.committed == ["joined_profiles_image"]
    assert published_joined_tables(catalog, config.namespace) == ["joined_profiles", "joined_profiles_image"]
    table = load_table(catalog, config.namespace, "joined_profiles")
    assert table is not None and table.current_snapshot().snapshot_id == before["joined_profiles"].snapshot_id
    manifest, _ = export_catalog(catalog, config.namespace, config.warehouse_dir)
    names = {t["table_name"]: t for t in manifest["tables"]}
    assert "profiles.joined_profiles_cells" not in names
    assert names["profiles.joined_profiles"]["role"] == "joined_profiles"
    assert names["profiles.joined_profiles_image"]["role"] == "profiles"
    assert names["profiles.joined_profiles_image"]["row_count"] == 1
    assert validate(config.warehouse_dir).valid

    # No single cells left: joined_profiles goes too, and the warehouse no longer lists it.
    (config.profiles_dir / "cells.csv").unlink()
    _, stats = _run(config, catalog)
    assert stats.dropped == ["joined_profiles"]
    export_catalog(catalog, config.namespace, config.warehouse_dir)
    manifest = read_manifest(Path(config.warehouse_dir)) or {}
    assert [t["table_name"] for t in manifest["tables"] if ".joined_" in t["table_name"]] == [
        "profiles.joined_profiles_image"
    ]


def test_a_source_named_like_a_joined_table_costs_only_itself(config, catalog, add_store) -> None:
    add_store(DATA / "stores" / "ExampleHuman", "ExampleHuman")
    (config.profiles_dir / "joined_profiles_cells.csv").write_text(SINGLE_CELLS)
    (config.profiles_dir / "cells.csv").write_text(SINGLE_CELLS)
    prepared, stats = _run(config, catalog)
    errors = [error for _, error in prepared.failures]
    assert len(errors) == 1
    assert "joined_profiles_cells.csv" in errors[0] and "reserved for the joined tables" in errors[0]
    assert load_table(catalog, config.namespace, "profile_joined_profiles_cells") is None
    assert stats.tables == {"joined_profiles": ["profile_cells"]}
    assert total_rows(load_table(catalog, config.namespace, "joined_profiles")) == 2
