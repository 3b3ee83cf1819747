"""Profile files that used to corrupt values or take the catalog down: each costs only itself now.

Every test runs the real console script (or the CLI in process) over a real catalog, real files and
real DuckDB views; the values are read back through `query`, `joined_profiles` and the warehouse.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from bioimage_pipeline_tests.conftest import DATA, cli, copy_tree, run_main
from bioimage_pipeline_tests.test_pipeline import run, sql

PLATE = DATA / "stores/screen/demo_plate.ome.zarr"


@pytest.fixture
def plate(env: dict[str, str], tmp_path: Path) -> Path:
    """The demo plate, ingested: image ``A/1/0`` of ``demo_plate.ome.zarr`` is there to link to."""
    store = copy_tree(PLATE, tmp_path / "stores" / "demo_plate.ome.zarr")
    assert cli(env, "ingest", str(tmp_path / "stores")).returncode == 0
    return store


def query(env: dict[str, str], sql: str) -> list[dict]:
    result = cli(env, "query", sql, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def export(env: dict[str, str], tmp_path: Path, *profiles: Path) -> tuple[int, str]:
    result = cli(
        env, "export-cytomining", "--warehouse-root", str(tmp_path / "warehouse"), "--profiles", *map(str, profiles)
    )
    return result.returncode, result.stderr


def test_names_that_differ_only_in_case_keep_their_own_values(env, tmp_path, plate) -> None:
    csv = tmp_path / "cased.csv"
    csv.write_text("dataset_id,image_id,Area,area,AREA\ndemo_plate.ome.zarr,A/1/0,1,2,3\n")
    code, err = export(env, tmp_path, csv)
    assert code == 0
    # Said once, naming the file and the new names.
    assert f"{csv}: column names that differ only in case" in err and "'area' as 'area_2'" in err
    rows = query(env, 'SELECT "Area", "area_2", "AREA_3" FROM profile_cased')
    assert rows == [{"Area": 1, "area_2": 2, "AREA_3": 3}]
    joined = query(env, 'SELECT "Area", area_2, "AREA_3" FROM joined_profiles WHERE profile_table = \'profile_cased\'')
    assert joined == [{"Area": 1, "area_2": 2, "AREA_3": 3}]
    # The warehouse file, read by DuckDB as a user would.
    con = duckdb.connect()
    parquet = str(tmp_path / "warehouse" / "profiles" / "joined_profiles" / "*.parquet")
    assert con.execute(f'SELECT "Area", area_2, "AREA_3" FROM read_parquet(\'{parquet}\')').fetchall() == [(1, 2, 3)]


def test_an_unnamed_column_never_breaks_the_catalog(env, tmp_path, plate) -> None:
    trailing = tmp_path / "trailing.csv"  # a trailing comma on every line: an empty, unnamed column
    trailing.write_text("dataset_id,image_id,x,\ndemo_plate.ome.zarr,A/1/0,1,\n")
    unnamed = tmp_path / "unnamed.csv"  # an unnamed column that holds values
    unnamed.write_text("dataset_id,image_id,,y\ndemo_plate.ome.zarr,A/1/0,5,6\n")
    result = cli(env, "validate-contract", str(trailing), str(unnamed))
    assert result.returncode == 0
    assert f"{trailing}: unnamed empty column 4 dropped" in result.stdout
    assert f"{unnamed}: column 3 has no name; kept as 'column_3'" in result.stdout
    code, _ = export(env, tmp_path, trailing, unnamed)
    assert code == 0
    assert cli(env, "status").returncode == 0
    assert query(env, "SELECT x FROM profile_trailing") == [{"x": 1}]
    assert query(env, "SELECT column_3, y FROM profile_unnamed") == [{"column_3": 5, "y": 6}]
    assert query(env, "SELECT count(*) AS n FROM joined_profiles") == [{"n": 2}]


def test_repeated_names_are_kept_apart_and_the_export_goes_through(env, tmp_path, plate) -> None:
    twice = tmp_path / "twice.csv"
    twice.write_text("dataset_id,image_id,Area,Area\ndemo_plate.ome.zarr,A/1/0,7,8\n")
    good = tmp_path / "good.csv"
    good.write_text("dataset_id,image_id,Area\ndemo_plate.ome.zarr,A/1/0,9\n")
    code, err = export(env, tmp_path, twice, good)
    assert code == 0 and f"{twice}:" in err
    assert query(env, 'SELECT "Area", "Area_2" FROM profile_twice') == [{"Area": 7, "Area_2": 8}]
    manifest = json.loads((tmp_path / "warehouse" / "warehouse_manifest.json").read_text())
    assert {"profiles.twice", "profiles.good", "profiles.joined_profiles"} <= {
        t["table_name"] for t in manifest["tables"]
    }


def test_a_users_profile_row_column_is_never_replaced(env, tmp_path, plate) -> None:
    csv = tmp_path / "own_ids.csv"
    csv.write_text(
        "profile_row,dataset_id,image_id,Area\n1001,demo_plate.ome.zarr,A/1/0,1\n1002,demo_plate.ome.zarr,A/1/0,2\n"
    )
    code, err = export(env, tmp_path, csv)
    assert code == 0 and "'profile_row' is a name the pipeline generates" in err and str(csv) in err
    rows = query(env, "SELECT profile_row, profile_row_source, Area FROM profile_own_ids ORDER BY profile_row")
    assert rows == [
        {"profile_row": 0, "profile_row_source": 1001, "Area": 1},
        {"profile_row": 1, "profile_row_source": 1002, "Area": 2},
    ]
    # Any case of a generated name: a key column the pipeline fills stays apart from the file's.
    upper = tmp_path / "upper.csv"
    upper.write_text("Dataset_ID,image_id,Well_ID\ndemo_plate.ome.zarr,A/1/0,A1\n")
    assert export(env, tmp_path, upper)[0] == 0
    assert query(env, "SELECT well_id, Well_ID_source, Dataset_ID_source FROM profile_upper") == [
        {"well_id": "A01", "Well_ID_source": "A1", "Dataset_ID_source": "demo_plate.ome.zarr"}
    ]


def cellprofiler_sqlite(path: Path, objects: str) -> Path:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE Per_Image (ImageNumber INTEGER, Image_Metadata_Plate TEXT, Image_Metadata_Well TEXT)")
    con.execute("INSERT INTO Per_Image VALUES (1, 'demo_plate', 'A01')")
    quoted = '"' + objects.replace('"', '""') + '"'
    con.execute(f"CREATE TABLE {quoted} (ImageNumber INTEGER, ObjectNumber INTEGER, Cells_Area REAL)")
    con.execute(f"INSERT INTO {quoted} VALUES (1, 1, 3.5)")
    con.commit()
    con.close()
    return path


def test_sqlite_table_names_are_quoted_and_an_empty_file_is_an_error(env, tmp_path, plate) -> None:
    db = cellprofiler_sqlite(tmp_path / "quoted.sqlite", 'Per_Ce"lls')
    result = cli(env, "validate-contract", str(db), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["valid"]
    assert {t["table"] for t in report["tables"]} == {"quoted_image", "quoted_ce_lls"}
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    result = cli(env, "validate-contract", str(empty))
    assert result.returncode == 1
    assert f"{empty}: empty file (0 bytes), not a SQLite database" in result.stderr
    # A readable database that holds no profile table is not silently "nothing to do" either.
    nothing = tmp_path / "no_tables.sqlite"
    con = sqlite3.connect(nothing)
    con.execute("PRAGMA user_version = 1")  # a valid, non-empty database file with no tables
    con.commit()
    con.close()
    result = cli(env, "validate-contract", str(nothing))
    assert result.returncode == 1 and f"{nothing}: SQLite database holds no tables" in result.stderr


def test_own_keys_that_match_no_image_fail_the_contract(env, tmp_path, plate) -> None:
    stray = tmp_path / "stray.csv"
    stray.write_text("dataset_id,image_id,Area\nnot_ingested.zarr,0,1\nnot_ingested.zarr,1,2\n")
    result = cli(env, "validate-contract", str(stray), "--json")
    report = json.loads(result.stdout)
    assert result.returncode == 1 and report["valid"] is False
    [table] = report["tables"]
    assert table["passed"] is False and table["resolved_rows"] == 0 and table["coverage"]["matched_rows"] == 0
    result = cli(env, "validate-contract", str(stray))
    assert result.returncode == 1 and "FAIL  stray" in result.stdout and "links to a catalogued image" in result.stdout


def test_export_publishes_the_tables_that_pass_and_exits_1(env, tmp_path, plate) -> None:
    good = tmp_path / "good.csv"
    good.write_text("dataset_id,image_id,Area\ndemo_plate.ome.zarr,A/1/0,9\n")
    stray = tmp_path / "stray.csv"
    stray.write_text("dataset_id,image_id,Area\nnot_ingested.zarr,0,1\n")
    keyless = tmp_path / "keyless.csv"
    keyless.write_text("AreaShape_Area\n1\n")
    code, err = export(env, tmp_path, good, stray, keyless)
    assert code == 1
    assert f"{stray}: profile_stray not published" in err and f"{keyless}: profile_keyless not published" in err
    tables = {r["name"] for r in query(env, "SELECT view_name AS name FROM duckdb_views() WHERE NOT internal")}
    assert "profile_good" in tables and not {"profile_stray", "profile_keyless"} & tables
    assert query(env, "SELECT DISTINCT profile_table FROM joined_profiles") == [{"profile_table": "profile_good"}]
    manifest = json.loads((tmp_path / "warehouse" / "warehouse_manifest.json").read_text())
    names = {t["table_name"] for t in manifest["tables"]}
    assert "profiles.good" in names and not {"profiles.stray", "profiles.keyless"} & names
    # A table that was good keeps its last good version when a broken file replaces it.
    good.write_text("dataset_id,image_id,Area\nnot_ingested.zarr,0,1\n")
    code, err = export(env, tmp_path, good)
    assert code == 1 and "profile_good not published" in err
    assert query(env, "SELECT dataset_id, Area FROM profile_good") == [{"dataset_id": "demo_plate.ome.zarr", "Area": 9}]


def test_validate_contract_text_shows_the_warnings_json_shows(capsys, env, tmp_path) -> None:
    stores = tmp_path / "stores"
    copy_tree(PLATE, stores / "demo_plate.ome.zarr")
    csv = tmp_path / "suffixed.csv"
    # Merge-suffixed copies that disagree: a warning the JSON has always carried.
    csv.write_text("Metadata_Plate_x,Metadata_Plate_y,Metadata_Well,Metadata_Site\ndemo_plate,other,A01,0\n")
    code, out, _ = run_main(capsys, "validate-contract", str(csv), "--stores", str(stores), "--json")
    warnings = json.loads(out)["tables"][0]["warnings"]
    assert warnings and code == 0
    code, out, _ = run_main(capsys, "validate-contract", str(csv), "--stores", str(stores))
    assert all(w in out for w in warnings)


def test_a_dagster_run_goes_through_files_that_used_to_stop_it(config, resource, catalog, add_store) -> None:
    add_store(PLATE, "demo_plate.ome.zarr")
    profiles = config.profiles_dir
    (profiles / "trailing.csv").write_text("dataset_id,image_id,x,\ndemo_plate.ome.zarr,A/1/0,1,\n")
    (profiles / "twice.csv").write_text("dataset_id,image_id,Area,Area\ndemo_plate.ome.zarr,A/1/0,7,8\n")
    (profiles / "cased.csv").write_text("dataset_id,image_id,Area,area,AREA\ndemo_plate.ome.zarr,A/1/0,1,2,3\n")
    with dg.instance_for_test() as instance:
        result = run(resource, instance)
    assert result.success
    assert sql(
        catalog, config, 'SELECT "Area", area_2, "AREA_3" FROM joined_profiles WHERE profile_table = \'profile_cased\''
    ) == [(1, 2, 3)]
    assert sql(catalog, config, 'SELECT "Area", "Area_2" FROM profile_twice') == [(7, 8)]
    assert sql(catalog, config, "SELECT count(*) FROM joined_profiles") == [(3,)]
    manifest = json.loads((config.warehouse_dir / "warehouse_manifest.json").read_text())
    assert {"profiles.trailing", "profiles.twice", "profiles.cased"} <= {t["table_name"] for t in manifest["tables"]}
