"""CellProfiler SQLite databases read a batch at a time: each object table, and the single-cell table that
CytoTable's ``cellprofiler_sqlite_pycytominer`` preset makes — checked against CytoTable 1.2.6 itself."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bioimage_pipeline.catalog import read_table
from bioimage_pipeline.profiles import batches, sqlite
from bioimage_pipeline.profiles.options import SourceOptions
from bioimage_pipeline.profiles.pipeline import refresh_profiles
from bioimage_pipeline.profiles.sources import discover_profile_sources, read_profile_source, source_for_path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
CYTOTABLE = CORPUS / "cytomining+CytoTable/tests/data"
NF1 = CYTOTABLE / "cellprofiler/NF1_SchwannCell_data/all_cellprofiler.sqlite"
CELL_HEALTH = CYTOTABLE / "cytominer-database/Cell-Health/test-SQ00014613.sqlite"
KEYS = ["Metadata_ImageNumber", "Cytoplasm_Number_Object_Number"]


def tables(path: Path, **options: bool) -> dict[str, pa.Table]:
    contents = read_profile_source(source_for_path(path), SourceOptions(**options))
    assert not contents.errors
    return {t.name: t.data for t in contents.tables}


@pytest.fixture(scope="session")
def cytotable_python() -> Path:
    """CytoTable 1.2.6 in its own virtualenv (the benchmarks' one: created on first use, then reused)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import peer_env
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return peer_env.ensure_cytotable_python()


@pytest.mark.slow
def test_single_cell_table_is_what_cytotable_makes_of_the_same_file(cytotable_python, tmp_path) -> None:
    """Same columns in the same order, same types, same rows and every value equal (CytoTable's row order
    is its join's; ours is image then object, so both are compared in that order)."""
    dest = tmp_path / "cytotable.parquet"
    env = {**os.environ, "HOME": str(cytotable_python.parents[1] / "home")}
    driver = REPO / "benchmarks/drivers/cytotable_convert.py"
    done = subprocess.run(
        [str(cytotable_python), str(driver), str(NF1), str(dest)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = pq.read_table(json.loads(done.stdout.strip().splitlines()[-1])["output"])
    ours = tables(NF1)["all_cellprofiler_single_cell"]
    assert ours.column_names == theirs.column_names
    assert ours.schema.types == theirs.schema.types
    assert ours.num_rows == theirs.num_rows == 242
    assert ours.equals(ours.sort_by([(k, "ascending") for k in KEYS]))  # ours is in image, object order
    assert ours.equals(theirs.sort_by([(k, "ascending") for k in KEYS]))


def test_object_tables_stay_what_they_were_beside_the_single_cell_table() -> None:
    got = tables(NF1, compartments=True)
    assert sorted(got) == [f"all_cellprofiler_{t}" for t in ("cells", "cytoplasm", "image", "nuclei", "single_cell")]
    con = sqlite3.connect(NF1)
    for obj in ("Cells", "Cytoplasm", "Nuclei"):
        table = got[f"all_cellprofiler_{obj.lower()}"]
        rows = con.execute(f"SELECT ImageNumber, {obj}_Number_Object_Number FROM Per_{obj} ORDER BY rowid").fetchall()
        assert (
            list(
                zip(
                    table["Metadata_ImageNumber"].to_pylist(),
                    table[f"{obj}_Number_Object_Number"].to_pylist(),
                    strict=True,
                )
            )
            == rows
        )
        assert set(table["Image_Metadata_Plate"].to_pylist()) == {"001"}  # text, as the database has it


def test_single_cell_rows_carry_their_cell_and_nucleus_and_table_number() -> None:
    """cytominer-database's Cell-Health tables: ``TableNumber`` (a text hash) is part of every key, and kept."""
    merged = tables(CELL_HEALTH)["test_sq00014613_single_cell"]
    assert merged.column_names[:2] == ["Metadata_TableNumber", "Metadata_ImageNumber"]
    con = sqlite3.connect(CELL_HEALTH)
    expected = con.execute(
        """SELECT c.TableNumber, c.ImageNumber, c.ObjectNumber, ce.Cells_AreaShape_Area, n.Nuclei_AreaShape_Area,
                  i.Image_Metadata_Well
           FROM Cytoplasm c
           LEFT JOIN Cells ce ON ce.TableNumber = c.TableNumber AND ce.ImageNumber = c.ImageNumber
                AND ce.ObjectNumber = c.Cytoplasm_Parent_Cells
           LEFT JOIN Nuclei n ON n.TableNumber = c.TableNumber AND n.ImageNumber = c.ImageNumber
                AND n.ObjectNumber = c.Cytoplasm_Parent_Nuclei
           LEFT JOIN Image i ON i.TableNumber = c.TableNumber AND i.ImageNumber = c.ImageNumber
           ORDER BY c.TableNumber, c.ImageNumber, c.ObjectNumber"""
    ).fetchall()
    columns = [
        "Metadata_TableNumber",
        "Metadata_ImageNumber",
        "Cytoplasm_ObjectNumber",
        "Cells_AreaShape_Area",
        "Nuclei_AreaShape_Area",
        "Image_Metadata_Well",
    ]
    got = list(zip(*(merged[c].to_pylist() for c in columns), strict=True))
    assert got == [tuple(r) for r in expected] and len(got) == 12


def test_windows_of_a_few_rows_give_the_same_tables(monkeypatch) -> None:
    """Rows stream a window at a time, the cells and nuclei of each window's images read alongside: windows
    of 7 rows (driver batches of 5) give exactly the tables read in one window."""
    whole = tables(NF1, compartments=True)
    monkeypatch.setattr(batches, "BATCH_BYTES", 1)
    monkeypatch.setattr(batches, "MIN_BATCH_ROWS", 7)
    monkeypatch.setattr(sqlite, "DRIVER_BATCH_ROWS", 5)
    small = tables(NF1, compartments=True)
    assert small.keys() == whole.keys()
    for name, table in whole.items():
        assert small[name].equals(table), name


def _database(path: Path, rows: list[tuple[object, ...]], declared: str = "FLOAT") -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE Per_Image (ImageNumber INTEGER PRIMARY KEY, Image_Metadata_Well TEXT)")
    con.execute("INSERT INTO Per_Image VALUES (1, 'D03')")
    con.execute(f"CREATE TABLE Per_Cells (ImageNumber INTEGER, ObjectNumber INTEGER, Cells_Area {declared})")
    con.executemany("INSERT INTO Per_Cells VALUES (1, ?, ?)", [(i + 1, v) for i, (v,) in enumerate(rows)])
    con.commit()
    con.close()
    return path


def test_text_in_a_float_column_keeps_every_value_as_text(tmp_path, monkeypatch) -> None:
    """cytominer-database stores ``'nan'`` as text in FLOAT columns. Found past the first batch, the table is
    typed again from its stored values and read from the start: every value kept, as text (as the CSV
    readers keep a column of mixed values), none turned into a number or an empty cell."""
    monkeypatch.setattr(sqlite, "DRIVER_BATCH_ROWS", 4)
    db = _database(tmp_path / "nan.sqlite", [(1.5,)] * 10 + [("nan",), ("not measured",), (2.0,)])
    cells = tables(db)["nan_cells"]
    assert cells.schema.field("Cells_Area").type == pa.string()
    assert cells["Cells_Area"].to_pylist() == ["1.5"] * 10 + ["nan", "not measured", "2.0"]


def test_reals_in_an_integer_column_are_kept_as_reals(tmp_path) -> None:
    """A column declared BIGINT from the first CSV, holding the reals of later ones (the corpus' data_a)."""
    db = _database(tmp_path / "ints.sqlite", [(1,), (2,), (2.5,)], declared="BIGINT")
    cells = tables(db)["ints_cells"]
    assert cells["Cells_Area"].to_pylist() == [1.0, 2.0, 2.5]


def test_a_table_retyped_while_published_is_written_once_with_its_values(config, catalog, monkeypatch) -> None:
    """The text turns up while the table is being written: the write starts again with the corrected types,
    and the published table holds every value. (A quality-control table: published without images.)"""
    monkeypatch.setattr(sqlite, "DRIVER_BATCH_ROWS", 4)
    monkeypatch.setattr(batches, "BATCH_BYTES", 1)
    monkeypatch.setattr(batches, "MIN_BATCH_ROWS", 4)
    (config.profiles_dir / "quality_control").mkdir(parents=True, exist_ok=True)
    _database(config.profiles_dir / "quality_control/nan.sqlite", [(1.5,)] * 10 + [("nan",)])
    prepared, result = refresh_profiles(catalog, config.namespace, discover_profile_sources(config.profiles_dir))
    assert not prepared.failures and "qc_quality_control_nan_cells" in result.written
    published = read_table(catalog, config.namespace, "qc_quality_control_nan_cells")
    assert published is not None
    assert published["Cells_Area"].to_pylist() == ["1.5"] * 10 + ["nan"]


def test_duplicate_objects_fail_the_single_cell_table_alone(config, catalog, tmp_path) -> None:
    """Two cells with one number in one image: which one a cytoplasm belongs to would be a guess. The merged
    table fails with one line naming the file and table; the object tables still go through."""
    config.profiles_dir.mkdir(parents=True, exist_ok=True)
    db = config.profiles_dir / "dupes.sqlite"
    shutil.copy(NF1, db)
    con = sqlite3.connect(db)
    # The same table without its primary key, so that a cell can be there twice.
    con.execute("CREATE TABLE cells_copy AS SELECT * FROM Per_Cells")
    con.execute("DROP TABLE Per_Cells")
    con.execute("ALTER TABLE cells_copy RENAME TO Per_Cells")
    con.execute(
        "INSERT INTO Per_Cells SELECT * FROM Per_Cells WHERE ImageNumber = 2 AND Cells_Number_Object_Number = 1"
    )
    con.commit()
    con.close()
    (db.parent / "dupes.sqlite.toml").write_text("compartments = true\n")
    prepared, result = refresh_profiles(catalog, config.namespace, [source_for_path(db)])
    errors = [e for _, e in prepared.failures]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert errors[0].startswith(f"{db}: table Per_Cells has several rows for ImageNumber=")
    # Not linked (no images here), so held back by the contract; but read, checked and reported.
    others = {f"profile_dupes_{t}" for t in ("image", "cells", "cytoplasm", "nuclei")}
    assert others == {p.catalog_name for p in prepared.tables}
    assert others == set(result.blocked)
    assert "profile_dupes_single_cell" not in result.written
