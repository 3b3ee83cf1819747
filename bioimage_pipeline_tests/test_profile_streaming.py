"""Profile tables streamed from their sources: only key columns are held to link rows, the rest is read a
batch at a time into the catalog, and what lands there is exactly the source's."""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bioimage_pipeline import ingest
from bioimage_pipeline.catalog import load_table
from bioimage_pipeline.profiles.normalize import KEY_COLUMNS, ROW_ID, key_columns, normalize, output_columns
from bioimage_pipeline.profiles.pipeline import refresh_profiles
from bioimage_pipeline.profiles.sources import ParquetColumns, read_profile_source, source_for_path
from bioimage_pipeline_tests.conftest import CORPUS, copy_tree

NF1 = CORPUS / "WayScience+coSMicQC/tests/data/cytotable/NF1_cellpainting_data_shrunken"
NF1_TABLE = NF1 / "Plate_2_with_image_data_shrunken.parquet"
EXAMPLE_HUMAN = CORPUS / "cytomining+CytoTable/tests/data/cellprofiler/ExampleHuman"


def _wide_plate(path: Path, rows: int = 3_000, features: int = 600, row_group: int = 500) -> pa.Table:
    """A single-cell table shaped like a plate's: CytoTable's key columns (file names of ExampleHuman's
    three sites, so that every row links once those are catalogued) and many float32 features."""
    rng = np.random.default_rng(7)
    sites = np.arange(rows) // 50
    table = pa.table(
        {
            "Metadata_ImageNumber": pa.array(sites + 1, pa.int64()),
            "Image_Metadata_Plate": pa.array(["P1"] * rows),
            "Image_Metadata_Well": pa.array(["D03"] * rows),
            "Image_FileName_DNA": pa.array([f"AS_09125_050116030001_D03f00d{s % 3}.tif" for s in sites]),
            **{f"Cells_F{i}": pa.array(rng.standard_normal(rows, dtype=np.float32)) for i in range(features)},
        }
    )
    pq.write_table(table, path, row_group_size=row_group)
    return table


def test_a_parquet_table_is_read_lazily_and_streamed_a_row_group_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "plate.parquet"
    written = _wide_plate(path)
    (table,) = read_profile_source(source_for_path(path)).tables
    content = table.content
    assert isinstance(content, ParquetColumns)
    assert table.num_rows == 3_000 and table.schema.names == written.column_names
    keys = content.read(key_columns(table.schema.names))
    assert keys.column_names == ["Image_Metadata_Plate", "Image_Metadata_Well", "Image_FileName_DNA"]
    batches = list(content.batches())
    # Never more than a row group per batch, and every value back in order.
    assert len(batches) >= 6 and max(b.num_rows for b in batches) <= 500
    assert pa.Table.from_batches(batches).equals(written)


def test_normalising_the_key_columns_alone_gives_the_whole_tables_keys() -> None:
    """What lets the features stay in the source: the keys normalised from the key columns are the keys
    normalised from every column, on real CytoTable and CellProfiler output."""
    for path in (NF1_TABLE, EXAMPLE_HUMAN):
        for table in read_profile_source(source_for_path(path)).tables:
            whole = normalize(table.data, where=table.source)
            keys = normalize(table.content.read(key_columns(table.schema.names)), where=table.source)
            columns = [ROW_ID, *KEY_COLUMNS]
            assert keys.data.select(columns).equals(whole.data.select(columns)), table.name
            assert keys.sources == whole.sources
            kept, names, _ = output_columns(table.schema, where=table.source)
            assert names == whole.data.column_names[1 + len(KEY_COLUMNS) :]
            assert len(kept) == len(names)


def test_renames_are_worked_out_from_the_schema(tmp_path: Path) -> None:
    """Names that clash in SQL or with generated columns are renamed from the footer alone, and the values
    stream under the new names."""
    path = tmp_path / "clashing.parquet"
    data = pa.Table.from_arrays(
        [pa.array(["B03", "B04"]), pa.array([1.0, 2.0]), pa.array([3.0, 4.0]), pa.array([7, 8])],
        names=["Metadata_Well", "Area", "AREA", "profile_row"],
    )
    pq.write_table(data, path)
    contents = read_profile_source(source_for_path(path))
    (table,) = contents.tables
    assert table.schema.names == ["Metadata_Well", "Area", "AREA_2", "profile_row"]
    kept, names, warnings = output_columns(table.schema, where=table.source)
    assert names == ["Metadata_Well", "Area", "AREA_2", "profile_row_source"]
    assert any("profile_row" in w and "clashing.parquet" in w for w in warnings)
    assert pa.Table.from_batches(list(table.content.batches())).column("AREA_2").to_pylist() == [3.0, 4.0]
    assert kept == ["Metadata_Well", "Area", "AREA_2", "profile_row"]


def test_published_profile_tables_equal_their_source_and_keep_small_manifests(config, catalog, tmp_path) -> None:
    """Streamed into the catalog: every value of every column equal to the source's, in the source's order,
    behind the canonical keys; statistics kept for the key columns only, so a wide table's manifest does not
    carry bounds for thousands of features."""
    for tif in EXAMPLE_HUMAN.glob("*.tif"):
        copy_tree(tif, config.stores_dir / "ExampleHuman" / tif.name)
    ingest.write_all(catalog, config.namespace, ingest.scan_root(config, catalog))
    source = _wide_plate(tmp_path / "plate.parquet")
    profiles = config.profiles_dir / "plate.parquet"
    copy_tree(tmp_path / "plate.parquet", profiles)
    prepared, published = refresh_profiles(catalog, config.namespace, [source_for_path(profiles)])
    assert published.written == ["profile_plate", "profile_links"]
    assert prepared.tables[0].coverage.matched_rows == source.num_rows
    table = load_table(catalog, config.namespace, "profile_plate")
    assert table is not None
    stored = table.scan().to_arrow()
    assert stored.column_names == [ROW_ID, *KEY_COLUMNS, *source.column_names]
    assert stored.column(ROW_ID).to_pylist() == list(range(source.num_rows))
    kept = stored.select(source.column_names)
    # The same values and types (PyIceberg reads text back as large_string).
    assert kept.equals(source.cast(kept.schema))
    assert [f.type for f in kept.schema][4:] == [f.type for f in source.schema][4:]
    assert set(stored.column("dataset_id").to_pylist()) == {"ExampleHuman"}
    assert table.properties["write.metadata.metrics.default"] == "none"
    files = list(table.scan().plan_files())
    assert files
    field_ids = {table.schema().find_field(name).field_id: name for name in stored.column_names}
    bounded = {field_ids[i] for f in files for i in f.file.lower_bounds}
    assert ROW_ID in bounded and "well_id" in bounded
    assert bounded <= {ROW_ID, *KEY_COLUMNS}
    footer = pq.ParquetFile(files[0].file.file_path.removeprefix("file://")).metadata
    features = [i for i, name in enumerate(stored.column_names) if name.startswith("Cells_F")]
    assert footer.row_group(0).column(features[0]).statistics is None


def test_a_source_changed_while_it_is_read_is_an_error_naming_it(tmp_path: Path) -> None:
    """Keys and features come from two reads of the file: rows that differ in number between them must not
    pair keys with the wrong rows."""
    from bioimage_pipeline.errors import ProfileError
    from bioimage_pipeline.profiles.pipeline import ProfileRows

    path = tmp_path / "plate.parquet"
    _wide_plate(path, rows=100, features=3, row_group=50)
    (table,) = read_profile_source(source_for_path(path)).tables
    # Keys read when the file had two more rows than it has now.
    keys = pa.table({ROW_ID: pa.array(range(102), pa.int64())})
    rows = ProfileRows(keys=keys, content=table.content, source_columns=("Cells_F0",), names=("Cells_F0",))
    with pytest.raises(ProfileError, match=r"plate\.parquet: changed while it was read"):
        list(rows.batches())


def test_a_source_rewritten_between_its_two_reads_is_not_published(config, catalog, tmp_path) -> None:
    """Same row count, other values: the keys were read from the old file, so its rows must not be written
    behind them. The table fails alone with a one-line error naming the file; nothing is committed (the table
    keeps no snapshot), the staged files are removed, and the source is read again on the next run."""
    from bioimage_pipeline.profiles.pipeline import prepare_profiles, publish_profiles

    for tif in EXAMPLE_HUMAN.glob("*.tif"):
        copy_tree(tif, config.stores_dir / "ExampleHuman" / tif.name)
    ingest.write_all(catalog, config.namespace, ingest.scan_root(config, catalog))
    path = config.profiles_dir / "plate.parquet"
    _wide_plate(path, rows=100, features=3, row_group=50)
    prepared = prepare_profiles(
        [source_for_path(path)], lambda: catalog.load_table((config.namespace, "image_assets")).scan().to_arrow()
    )
    rewritten = pq.read_table(path)
    pq.write_table(rewritten.set_column(4, "Cells_F0", pa.array(np.zeros(100, np.float32))), path)
    os.utime(path, ns=(1, 1))  # a different modification time, whatever the clock's resolution
    result = publish_profiles(catalog, config.namespace, prepared)
    assert result.failed == ["profile_plate"] and "profile_plate" not in result.written
    (error,) = [e for _, e in prepared.failures]
    assert re.fullmatch(r".*plate\.parquet: changed while it was read; read again on the next run", error)
    assert str(path) not in prepared.state["sources"]
    table = load_table(catalog, config.namespace, "profile_plate")
    assert table is None or table.current_snapshot() is None
    data = Path(table.location().removeprefix("file://")) / "data" if table is not None else None
    assert data is None or not list(data.glob("*.parquet"))


def test_joined_rows_are_the_same_whatever_the_window_of_links_held(config, catalog, tmp_path, monkeypatch) -> None:
    """The image lists are gathered a window of rows at a time, so memory does not grow with the rows: a window
    of 7 rows gives the same joined table as one window for all, every row once and linked."""
    from bioimage_pipeline import joins
    from bioimage_pipeline.duck import connect_catalog
    from bioimage_pipeline.profiles.pipeline import LINKS_TABLE
    from bioimage_pipeline.tables import IMAGE_ASSETS

    for tif in EXAMPLE_HUMAN.glob("*.tif"):
        copy_tree(tif, config.stores_dir / "ExampleHuman" / tif.name)
    ingest.write_all(catalog, config.namespace, ingest.scan_root(config, catalog))
    _wide_plate(config.profiles_dir / "plate.parquet", rows=200, features=5, row_group=30)
    refresh_profiles(catalog, config.namespace, [source_for_path(config.profiles_dir / "plate.parquet")])

    def joined() -> pa.Table:
        con = duckdb.connect()
        connect_catalog(catalog, config.namespace, con, only=[IMAGE_ASSETS, LINKS_TABLE])
        reader, _ = joins.streamed_join(con, joins.catalog_join_inputs(catalog, config.namespace, ["profile_plate"]))
        return reader.read_all()

    whole = joined()
    monkeypatch.setattr(joins, "LINK_WINDOW_ROWS", 7)
    windowed = joined()
    assert windowed.equals(whole)
    assert whole.column(ROW_ID).to_pylist() == list(range(200))
    assert all(whole.column("image_matched").to_pylist())
    assert whole.column("image__dataset_id").to_pylist()[0] == ["ExampleHuman"]
