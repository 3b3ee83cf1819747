"""Profile readers, key normalisation and image resolution on real CellProfiler, CytoTable and IN Carta output."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import tifffile

from bioimage_pipeline.formats import scan_store
from bioimage_pipeline.profiles.normalize import normalize, normalize_site, normalize_wells
from bioimage_pipeline.profiles.options import SourceOptions
from bioimage_pipeline.profiles.pipeline import prepare_profiles
from bioimage_pipeline.profiles.resolve import image_candidates, resolve
from bioimage_pipeline.profiles.sources import (
    discover_profile_sources,
    read_profile_source,
    source_for_path,
    sources_for_path,
)
from bioimage_pipeline.tables import image_asset_rows, image_assets_table
from bioimage_pipeline_tests.conftest import CORPUS, copy_tree

CYTOTABLE = CORPUS / "cytomining+CytoTable/tests/data"
EXAMPLE_HUMAN = CYTOTABLE / "cellprofiler/ExampleHuman"
NF1 = CORPUS / "WayScience+coSMicQC/tests/data/cytotable/NF1_cellpainting_data_shrunken"


def tables_of(path: Path, options: SourceOptions | None = None) -> tuple[dict[str, pa.Table], list[str]]:
    contents = read_profile_source(source_for_path(path), options)
    return {t.name: t for t in contents.tables}, contents.warnings + contents.errors


def images_of(*paths: Path, root: Path | None = None) -> pa.Table:
    rows = []
    for path in paths:
        dataset_id = path.relative_to(root).as_posix() if root else path.name
        rows += image_asset_rows(scan_store(path, dataset_id), "fp", np.datetime64("2026-01-01", "us").item())
    return image_assets_table(rows)


# --- readers ------------------------------------------------------------------------------------------


def test_export_to_spreadsheet_folder_gives_one_table_per_object_with_image_keys() -> None:
    tables, warnings = tables_of(EXAMPLE_HUMAN)
    assert {n: t.data.num_rows for n, t in tables.items()} == {
        "examplehuman_cells": 289,
        "examplehuman_cytoplasm": 289,
        "examplehuman_image": 1,
        "examplehuman_nuclei": 289,
        "examplehuman_ph3": 22,
    }
    cells = tables["examplehuman_cells"]
    assert cells.compartment == "Cells" and cells.profile_level == "single_cell"
    assert tables["examplehuman_image"].profile_level == "image"
    names = cells.data.column_names
    # CytoTable / pycytominer conventions: compartment-prefixed features, Metadata_ keys, Image_ image keys.
    assert {
        "Metadata_ImageNumber",
        "Metadata_ObjectNumber",
        "Cells_AreaShape_Area",
        "Image_FileName_DNA",
        "Image_PathName_DNA",
    } <= set(names)
    assert cells.data.column("Image_FileName_PH3").to_pylist()[0] == "AS_09125_050116030001_D03f00d1.tif"
    assert warnings == []


def test_per_site_folders_are_combined_and_degenerate_files_reported(tmp_path: Path) -> None:
    data_b = copy_tree(CYTOTABLE / "cytominer-database/data_b", tmp_path / "data_b")
    for extra in data_b.glob("*.ini"):
        extra.unlink()  # config files of the original tool, not profiles
    tables, warnings = tables_of(data_b)
    expected_cells = sum(
        pacsv.read_csv(f).num_rows for f in data_b.glob("*/Cells.csv") if f.stat().st_size > 0 and "J21-2" not in str(f)
    )
    assert tables["data_b_cells"].data.num_rows == expected_cells
    assert set(tables["data_b_cells"].data.column("Metadata_SourceFolder").to_pylist()) == {
        "A01-1",
        "A01-2",
        "B01-1",
        "B01-2",
        "N23-5",
    }  # E17-4's Cells.csv is empty, J21-2's broken
    assert any("E17-4/Cells.csv: empty file" in w for w in warnings)
    assert any("N23-5/Image.csv" in w and "header-only" in w for w in warnings)
    # J21-2's Cells.csv has a row shorter than its header: that file alone is reported and left out.
    assert any("J21-2/Cells.csv: not a readable CSV" in w for w in warnings)
    # Image keys reached the objects of every site that has an Image row.
    wells = pc_unique(tables["data_b_cells"].data, "Image_Metadata_Well")
    assert {"A01", "B01"} <= wells and "E17" not in wells


def pc_unique(table: pa.Table, column: str) -> set:
    return {v for v in table.column(column).to_pylist() if v is not None}


def test_cellprofiler_sqlite_per_object_tables_keep_plate_text() -> None:
    db = CYTOTABLE / "cellprofiler/NF1_SchwannCell_data/all_cellprofiler.sqlite"
    tables, _ = tables_of(db, SourceOptions(compartments=True))
    con = sqlite3.connect(db)
    for obj in ("Cells", "Cytoplasm", "Nuclei", "Image"):
        expected = con.execute(f"SELECT count(*) FROM Per_{obj}").fetchone()[0]
        assert tables[f"all_cellprofiler_{obj.lower()}"].data.num_rows == expected
    cells = tables["all_cellprofiler_cells"].data
    assert set(cells.column("Image_Metadata_Plate").to_pylist()) == {"001"}  # not the number 1
    normalized = normalize(cells)
    assert set(normalized.data.column("well_id").to_pylist()) >= {"C06", "C07", "D06"}


def test_cytominer_database_sqlite_joins_images_by_table_number() -> None:
    path = CYTOTABLE / "cytominer-database/Cell-Health/test-SQ00014613.sqlite"
    tables, _ = tables_of(path, SourceOptions(compartments=True))
    cells = tables["test_sq00014613_cells"].data
    assert cells.num_rows == 12
    assert "Image_Metadata_Well" in cells.column_names or "Image_Metadata_well_position" in cells.column_names


def test_merge_suffixed_metadata_is_coalesced() -> None:
    tables, _ = tables_of(NF1 / "Plate_2_with_image_data_shrunken.parquet")
    table = next(iter(tables.values())).data
    normalized = normalize(table)
    assert normalized.sources["plate_id"] == ["Image_Metadata_Plate_x", "Image_Metadata_Plate_y"]
    assert normalized.data.column("plate_id").to_pylist() == ["Plate_2"] * 5
    assert normalized.data.column("well_id").to_pylist()[0] == "B07"


def test_in_carta_export_keys() -> None:
    path = next((CYTOTABLE / "in-carta/colas-lab").glob("*Day0*.csv"))
    tables, _ = tables_of(path)
    normalized = normalize(next(iter(tables.values())).data)
    assert normalized.sources["well_id"] == ["WELL LABEL"] and normalized.sources["site_id"] == ["FOV"]
    assert normalized.data.column("well_id").to_pylist()[0] == "C03"


def test_wide_cell_painting_gallery_tables() -> None:
    folder = CYTOTABLE / "cellprofiler/cpg0043-segmentation/BR00116991-A01-1"
    tables, _ = tables_of(folder)
    nuclei = tables["br00116991_a01_1_nuclei"].data
    assert nuclei.num_rows == 109 and nuclei.num_columns > 1900
    normalized = normalize(nuclei)
    keys = normalized.data.select(["plate_id", "well_id", "site_id"]).slice(0, 1).to_pylist()[0]
    assert keys == {"plate_id": "BR00116991", "well_id": "A01", "site_id": "1"}


def test_quality_control_tables_are_recognised() -> None:
    path = CORPUS / "WayScience+coSMicQC/tests/data/coSMicQC/output_data/test_identifier_outliers_output.parquet"
    tables, _ = tables_of(path)
    table = next(iter(tables.values()))
    assert table.role == "quality_control" and "__index_level_0__" not in table.data.column_names


def test_empty_and_header_only_files_are_reported_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("Metadata_Well,Cells_Area\n")
    (tmp_path / "ok.csv").write_text("Metadata_Well,Cells_Area\nB3,10\n")
    sources = discover_profile_sources(tmp_path)
    prepared = prepare_profiles(sources, None)
    assert [t.name for t in prepared.tables] == ["ok"]
    assert any("empty.csv: empty file" in w for w in prepared.warnings)
    assert any("header.csv: header only" in w for w in prepared.warnings)
    assert prepared.failures == []


def test_unreadable_source_is_isolated(tmp_path: Path) -> None:
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    (tmp_path / "ok.csv").write_text("Metadata_Well\nB3\n")
    prepared = prepare_profiles(discover_profile_sources(tmp_path), None)
    assert [t.name for t in prepared.tables] == ["ok"]
    assert len(prepared.failures) == 1 and "broken.parquet" in prepared.failures[0][1]
    assert "\n" not in prepared.failures[0][1]


def test_folder_of_sources_vs_one_cellprofiler_export(tmp_path: Path) -> None:
    copy_tree(EXAMPLE_HUMAN / "Image.csv", tmp_path / "run" / "ExampleHuman" / "Image.csv")
    copy_tree(EXAMPLE_HUMAN / "Cells.csv", tmp_path / "run" / "ExampleHuman" / "Cells.csv")
    copy_tree(NF1 / "Plate_2_with_image_data_shrunken.parquet", tmp_path / "run" / "nf1.parquet")
    names = sorted(s.name for s in sources_for_path(tmp_path / "run"))
    assert names == ["examplehuman", "nf1"]


# --- normalisation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("B3", "B03"),
        ("b03", "B03"),
        ("B-03", "B03"),
        ("C - 3", "C03"),
        ("AA12", "AA12"),
        ("B 7", "B07"),
        ("slide-1", "slide-1"),
        (None, None),
        ("nan", None),
    ],
)
def test_well_names(raw: str | None, expected: str | None) -> None:
    assert normalize_wells(pa.chunked_array([pa.array([raw], pa.string())])).to_pylist() == [expected]


def test_sites_and_merge_conflicts_and_user_aliases() -> None:
    assert normalize_site(pa.chunked_array([pa.array(["01", "0", "M10", None])])).to_pylist() == ["1", "0", "M10", None]
    assert normalize_site(pa.chunked_array([pa.array([1.0, 2.0, None])])).to_pylist() == ["1", "2", None]
    table = pa.table(
        {
            "Metadata_Well_x": ["B3", "B4"],
            "Metadata_Well_y": ["B3", "C4"],
            "Barcode": ["P1", "P1"],
            "Metadata_Row": ["B", "B"],
            "Metadata_Col": [3, 4],
        }
    )
    normalized = normalize(table, {"plate_id": ["Barcode"]})
    assert normalized.data.column("well_id").to_pylist() == ["B03", "B04"]
    assert any("disagree on 1 rows" in w for w in normalized.warnings)
    assert normalized.data.column("plate_id").to_pylist() == ["P1", "P1"]
    rows_cols = normalize(pa.table({"Metadata_Row": ["C"], "Metadata_Column": ["7"]}))
    assert rows_cols.data.column("well_id").to_pylist() == ["C07"]
    with pytest.raises(ValueError, match="unknown canonical key"):
        normalize(table, {"plate": ["Barcode"]})


# --- resolution ----------------------------------------------------------------------------------------


def write_tiff(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.zeros((16, 16), np.uint16))
    return path


def test_opera_phenix_file_names_link_by_well_and_field(tmp_path: Path) -> None:
    root = tmp_path / "stores"
    files = [
        write_tiff(root / "PlateA__2024" / "Images" / f"r03c03f0{f}p01-ch{c}sk1fk1fl1.tiff")
        for f in (1, 2)
        for c in (1, 2)
    ]
    # A second plate with the same well and field names, in its own folder: it must not be mixed in.
    others = [write_tiff(root / "PlateB__2024" / "Images" / f"r03c03f01p01-ch{c}sk1fk1fl1.tiff") for c in (1, 2)]
    images = image_candidates(images_of(*files, *others, root=root))
    profile = pa.table(
        {
            "Metadata_Plate": ["PlateA", "PlateA", "PlateC"],
            "Metadata_Well": ["C03", "C03", "C03"],
            "Metadata_Site": ["1", "2", "1"],
            "Cells_Area": [1.0, 2.0, 3.0],
        }
    )
    resolution = resolve(normalize(profile), images)
    linked = resolution.links.groupby("profile_row")["dataset_id"].apply(sorted).to_dict()
    assert linked[0] == [f"PlateA__2024/Images/r03c03f01p01-ch{c}sk1fk1fl1.tiff" for c in (1, 2)]
    assert linked[1] == [f"PlateA__2024/Images/r03c03f02p01-ch{c}sk1fk1fl1.tiff" for c in (1, 2)]
    assert 2 not in linked  # PlateC names neither folder, and two folders have C03 field 1: ambiguous
    assert any("several folders" in w for w in resolution.warnings)


def test_file_names_disambiguated_by_path_and_never_guessed(tmp_path: Path) -> None:
    root = tmp_path / "stores"
    a = write_tiff(root / "plate1" / "img.tif")
    b = write_tiff(root / "plate2" / "img.tif")
    images = image_candidates(images_of(a, b, root=root))
    profile = pa.table(
        {
            "FileName_DNA": ["img.tif", "img.tif", "img.tif"],
            "PathName_DNA": ["/analysis/plate2", "/analysis/plate1", "/elsewhere"],
        }
    )
    resolution = resolve(normalize(profile), images)
    linked = dict(zip(resolution.links["profile_row"], resolution.links["dataset_id"], strict=True))
    assert linked == {0: "plate2/img.tif", 1: "plate1/img.tif"}  # row 2 matches both equally: unlinked
    assert any("several images equally well" in w for w in resolution.warnings)


def test_a_site_split_into_channel_files_links_every_channel(tmp_path: Path) -> None:
    names = [f"AS_09125_050116030001_D03f00d{i}.tif" for i in range(3)]
    stores = [copy_tree(EXAMPLE_HUMAN / name, tmp_path / name) for name in names]
    tables, _ = tables_of(EXAMPLE_HUMAN)
    resolution = resolve(normalize(tables["examplehuman_cells"].data), image_candidates(images_of(*stores)))
    per_row = resolution.links.groupby("profile_row")["channel"].apply(list)
    assert len(per_row) == 289 and all(v == ["DNA", "PH3", "cellbody"] for v in per_row)
    assert resolution.coverage == 1.0


def test_well_without_plate_on_two_plates_is_ambiguous() -> None:
    images = pd_images([("p1.zarr", "B/03/0", "P1", "B03", "0"), ("p2.zarr", "B/03/0", "P2", "B03", "0")])
    resolution = resolve(normalize(pa.table({"Metadata_Well": ["B3"], "Metadata_Site": ["0"]})), images)
    assert resolution.matched_rows == 0
    resolution = resolve(
        normalize(pa.table({"Metadata_Plate": ["P2"], "Metadata_Well": ["B3"], "Metadata_Site": ["0"]})), images
    )
    assert resolution.links["dataset_id"].tolist() == ["p2.zarr"]


def pd_images(rows: list[tuple[str, str, str, str, str]]):
    table = pa.table(
        {
            "dataset_id": [r[0] for r in rows],
            "image_id": [r[1] for r in rows],
            "array_path": ["0"] * len(rows),
            "uri": [f"/x/{r[0]}" for r in rows],
            "plate_id": [r[2] for r in rows],
            "well_id": [r[3] for r in rows],
            "site_id": [r[4] for r in rows],
            "format": ["ome-zarr"] * len(rows),
            "level": [0] * len(rows),
            "kind": ["image"] * len(rows),
        }
    )
    return image_candidates(table)


def test_parquet_written_by_pycytominer_with_explicit_ids(tmp_path: Path) -> None:
    path = tmp_path / "profiles.parquet"
    pq.write_table(
        pa.table(
            {
                "Metadata_dataset_id": ["p1.zarr", "p1.zarr"],
                "Metadata_image_id": ["B/03/0", "zz"],
                "Cells_Area": [1.0, 2.0],
            }
        ),
        path,
    )
    images = pd_images([("p1.zarr", "B/03/0", "P1", "B03", "0")])
    tables, _ = tables_of(path)
    resolution = resolve(normalize(next(iter(tables.values())).data), images)
    assert resolution.methods == {"image_id": 1} and resolution.matched_rows == 1
    assert resolution.unmatched_sample[0]["image_id"] == "zz"
