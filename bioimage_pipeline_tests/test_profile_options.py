"""Per-source options (``<source>.toml``): the site numbering of a table, and the tables a SQLite database gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bioimage_pipeline import ingest
from bioimage_pipeline.catalog import read_table
from bioimage_pipeline.errors import ProfileError
from bioimage_pipeline.profiles.options import SourceOptions, options_path, read_options
from bioimage_pipeline.profiles.pipeline import prepare_profiles
from bioimage_pipeline.profiles.sources import read_profile_source, source_fingerprint, source_for_path

from .conftest import DATA, copy_tree

PLATE = DATA / "stores/screen/demo_plate.ome.zarr"
NF1 = Path(__file__).resolve().parents[2] / "shared/corpus/cytomining+CytoTable/tests/data/cellprofiler"
NF1 = NF1 / "NF1_SchwannCell_data/all_cellprofiler.sqlite"
# Sites counted from 1; the plate's fields are 0 and 1. Four rows name site 2 (field 1), one site 1 (field 0).
PROFILES = "Metadata_Plate,Metadata_Well,Metadata_Site,Cells_Area\n" + "".join(
    f"demo_plate,{well},{site},{area}\n"
    for well, site, area in [("A01", 2, 10), ("A02", 2, 11), ("B01", 2, 12), ("B02", 2, 13), ("A01", 1, 14)]
)


@pytest.fixture
def images(config, catalog):
    copy_tree(PLATE, config.stores_dir / "demo_plate.ome.zarr")
    ingest.write_all(catalog, config.namespace, ingest.scan_root(config, catalog))
    return read_table(catalog, config.namespace, "image_assets")


def _prepare(path: Path, images):
    prepared = prepare_profiles([source_for_path(path)], images)
    assert not prepared.failures, prepared.failures
    (table,) = prepared.tables
    return table


def test_sites_counted_from_another_number_are_reported_with_the_offset_that_links_them(config, images) -> None:
    csv = config.profiles_dir / "sites.csv"
    csv.write_text(PROFILES)
    table = _prepare(csv, images)
    assert table.coverage.matched_rows == 1  # site 1 meets field 1: the one row that links is the wrong one
    assert table.coverage.site_offset_hint == -1


def test_site_offset_links_every_row_to_its_own_field(config, images) -> None:
    csv = config.profiles_dir / "sites.csv"
    csv.write_text(PROFILES)
    before = source_fingerprint(csv)
    options_path(csv).write_text("site_offset = -1\n")
    assert source_fingerprint(csv) != before  # a changed option re-reads the source
    table = _prepare(csv, images)
    assert table.coverage.matched_rows == 5 and table.coverage.site_offset_hint is None
    links = table.links.sort_values("profile_row")
    assert links["image_id"].tolist() == ["A/1/1", "A/2/1", "B/1/1", "B/2/1", "A/1/0"]
    # The source's own column is kept as it was; only the matching used the offset.
    assert table.rows.keys["site_id"].to_pylist() == ["1", "1", "1", "1", "0"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("site_ofset = 1\n", "unknown option 'site_ofset' (known: compartments, single_cell, site_offset)"),
        ("site_offset = true\n", "option 'site_offset' must be an integer"),
        ("single_cell = 1\n", "option 'single_cell' must be true or false"),
        ("site_offset = \n", "not a readable TOML file"),
    ],
)
def test_a_bad_options_file_is_one_line_naming_it(tmp_path, text, problem) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text(PROFILES)
    options_path(csv).write_text(text)
    with pytest.raises(ProfileError) as error:
        read_options(csv)
    assert str(error.value).startswith(f"{options_path(csv)}: {problem}")
    assert "\n" not in str(error.value)


def test_a_database_gives_its_object_tables_too_when_asked(tmp_path) -> None:
    assert read_options(tmp_path / "none.sqlite") == SourceOptions()
    db = shutil.copy(NF1, tmp_path / "nf1.sqlite")
    names = {t.name for t in read_profile_source(source_for_path(Path(db))).tables}
    assert names == {"nf1_image", "nf1_single_cell"}
    options_path(Path(db)).write_text("compartments = true\n")
    names = {t.name for t in read_profile_source(source_for_path(Path(db))).tables}
    assert names == {"nf1_image", "nf1_cells", "nf1_cytoplasm", "nf1_nuclei", "nf1_single_cell"}
    options_path(Path(db)).write_text("compartments = true\nsingle_cell = false\n")
    names = {t.name for t in read_profile_source(source_for_path(Path(db))).tables}
    assert names == {"nf1_image", "nf1_cells", "nf1_cytoplasm", "nf1_nuclei"}
