"""The ``bioimage-pipeline`` command: output shapes, exit codes, one-line errors, identities."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq

from bioimage_pipeline.tables import IMAGE_ASSET_COLUMNS
from bioimage_pipeline_tests.conftest import CORPUS, DATA, cli, copy_tree, run_main

EXAMPLE_HUMAN = CORPUS / "cytomining+CytoTable/tests/data/cellprofiler/ExampleHuman"


def test_scan_json_has_the_design_shape(capsys) -> None:
    code, out, _ = run_main(capsys, "scan", str(DATA / "stores/screen/demo_plate.ome.zarr"), "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"dataset_id", "uri", "format", "image_assets", "warnings"}
    assert doc["dataset_id"] == "demo_plate.ome.zarr" and doc["format"] == "ome-zarr"
    assert len(doc["image_assets"]) == 16
    assert all(list(row) == list(IMAGE_ASSET_COLUMNS) for row in doc["image_assets"])
    first = doc["image_assets"][0]
    assert (first["plate_id"], first["well_id"], first["site_id"]) == ("demo_plate", "A01", "0")
    assert first["shape"] == [2, 1, 128, 128] and first["channel_names"] == ["DNA", "Actin"]


def test_summarize(capsys) -> None:
    code, out, _ = run_main(capsys, "summarize", str(DATA / "stores/demo_pyramid.ome.tiff"), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["array_count"] == 3 and summary["format"] == "ome-tiff"
    code, out, _ = run_main(capsys, "summarize", str(DATA / "stores/demo_pyramid.ome.tiff"))
    assert "ome-tiff" in out and "arrays        3" in out


def test_errors_are_one_line_without_traceback(env, tmp_path) -> None:
    missing = cli(env, "scan", str(tmp_path / "nope.zarr"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"bioimage-pipeline: error: {tmp_path / 'nope.zarr'}: does not exist"
    broken = copy_tree(DATA / "stores/demo_image.ome.zarr", tmp_path / "broken.ome.zarr")
    (broken / "zarr.json").write_text("{not json")
    result = cli(env, "scan", str(broken))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert str(broken / "zarr.json") in result.stderr and "invalid JSON" in result.stderr
    assert "Traceback" not in result.stderr
    usage = cli(env, "scan")
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1


def test_register_refuses_a_second_uri_under_one_dataset_id(env, tmp_path, capsys) -> None:
    a = copy_tree(DATA / "stores/demo_pyramid.ome.tiff", tmp_path / "a" / "img.ome.tiff")
    b = copy_tree(DATA / "stores/demo_pyramid.ome.tiff", tmp_path / "b" / "img.ome.tiff")
    code, out, _ = run_main(capsys, "register", str(a), "--json")
    assert code == 0 and json.loads(out)["tables"]["image_assets"]["rows_written"] == 3
    code, _, err = run_main(capsys, "register", str(b))
    assert code == 2 and "already registered" in err and "--replace" in err
    code, out, _ = run_main(capsys, "register", str(b), "--replace", "--json")
    assert code == 0
    code, out, _ = run_main(capsys, "query", "SELECT DISTINCT uri FROM image_assets", "--json")
    assert json.loads(out) == [{"uri": str(b)}]
    # One location, one identity: registering b again under another dataset_id is refused...
    code, _, err = run_main(capsys, "register", str(b), "--dataset-id", "copy-b")
    assert code == 2 and "already registered as 'img.ome.tiff'" in err and "--replace" in err
    # ... or, with --replace, moves it: the rows under the old id go.
    code, out, _ = run_main(capsys, "register", str(b), "--dataset-id", "copy-b", "--replace", "--json")
    assert code == 0 and json.loads(out)["stores"][0]["dataset_id"] == "copy-b"
    code, out, _ = run_main(capsys, "query", "SELECT DISTINCT dataset_id FROM image_assets", "--json")
    assert json.loads(out) == [{"dataset_id": "copy-b"}]


def test_ingest_many_stores_in_one_run_then_query(env, tmp_path, capsys) -> None:
    folder = tmp_path / "incoming"
    copy_tree(DATA / "stores/demo_sharded.zarr", folder / "demo_sharded.zarr")
    copy_tree(DATA / "stores/demo_pyramid.ome.tiff", folder / "nested" / "demo_pyramid.ome.tiff")
    code, out, _ = run_main(capsys, "ingest", str(folder), "--json")
    result = json.loads(out)
    assert code == 0 and sorted(s["dataset_id"] for s in result["stores"]) == [
        "demo_sharded.zarr",
        "nested/demo_pyramid.ome.tiff",
    ]
    assert all(result["tables"][t]["committed"] for t in ("store_registry", "image_assets", "chunk_index"))
    assert not result["tables"]["validation_issues"]["committed"]  # plain Zarr and TIFF: nothing to validate
    code, out, _ = run_main(
        capsys, "query", "SELECT dataset_id, count(*) AS n FROM chunk_index GROUP BY ALL ORDER BY dataset_id", "--json"
    )
    assert json.loads(out) == [
        {"dataset_id": "demo_sharded.zarr", "n": 64},
        {"dataset_id": "nested/demo_pyramid.ome.tiff", "n": 42},
    ]
    code, out, _ = run_main(capsys, "ingest", str(folder), "--json")
    assert json.loads(out)["unchanged"] == ["demo_sharded.zarr", "nested/demo_pyramid.ome.tiff"]
    code, out, _ = run_main(capsys, "status", "--json")
    assert json.loads(out)["stores"] == 2 and json.loads(out)["chunks"] == 106


def test_query_error_is_a_usage_error(env, capsys) -> None:
    code, out, _ = run_main(capsys, "query", "SELECT count(*) AS n FROM image_assets", "--json")
    assert code == 0 and json.loads(out) == [{"n": 0}]  # the store tables exist before any ingest
    code, _, err = run_main(capsys, "query", "SELECT * FROM no_such_table")
    assert code == 2 and "no_such_table" in err


def test_validate_contract_exit_codes(env, tmp_path, capsys) -> None:
    stores = tmp_path / "eh"
    for name in (
        "AS_09125_050116030001_D03f00d0.tif",
        "AS_09125_050116030001_D03f00d1.tif",
        "AS_09125_050116030001_D03f00d2.tif",
    ):
        copy_tree(EXAMPLE_HUMAN / name, stores / name)
    profiles = tmp_path / "ExampleHuman"
    for name in ("Image.csv", "Cells.csv"):
        copy_tree(EXAMPLE_HUMAN / name, profiles / name)
    code, out, _ = run_main(capsys, "validate-contract", str(profiles), "--stores", str(stores), "--json")
    report = json.loads(out)
    assert (
        code == 0
        and report["valid"]
        and {t["table"] for t in report["tables"]} == {"examplehuman_cells", "examplehuman_image"}
    )
    keyless = tmp_path / "keyless.csv"
    keyless.write_text("AreaShape_Area\n1\n2\n")
    code, out, _ = run_main(capsys, "validate-contract", str(keyless), "--stores", str(stores))
    assert code == 1 and "FAIL  keyless" in out


def test_console_script_is_installed(env) -> None:
    result = cli(env, "--help")
    assert result.returncode == 0 and "query" in result.stdout and "register" in result.stdout


def test_check_exit_codes_and_json(env, tmp_path, capsys) -> None:
    good = DATA / "stores/demo_image.ome.zarr"
    code, out, _ = run_main(capsys, "check", str(good), "--json")
    report = json.loads(out)
    assert code == 0 and report["valid"] is True and report["models"] == ["ngff.image"]
    assert {"valid", "issues"} <= set(report)
    assert all(set(i) == {"path", "rule", "severity", "message"} for i in report["issues"])

    broken = copy_tree(good, tmp_path / "broken.ome.zarr")
    doc = json.loads((broken / "zarr.json").read_text())
    doc["attributes"]["ome"]["multiscales"][0]["axes"] = doc["attributes"]["ome"]["multiscales"][0]["axes"][:2]
    (broken / "zarr.json").write_text(json.dumps(doc))
    code, out, _ = run_main(capsys, "check", str(broken))
    assert code == 1 and "INVALID" in out and "error" in out
    # The same node against an explicit model it does not declare is invalid too, never a silent pass.
    code, out, _ = run_main(capsys, "check", str(good), "ngff.plate", "--json")
    assert code == 1 and json.loads(out)["valid"] is False

    result = cli(env, "check", str(tmp_path / "missing.zarr"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    result = cli(env, "check", str(good), "ngff.nonsense")
    assert result.returncode == 2 and "ngff.plate" in result.stderr


def test_check_cellmap_on_n5(capsys) -> None:
    n5 = CORPUS / "saalfeldlab+n5-universe/src/test/resources/test.n5"
    code, out, _ = run_main(capsys, "check", str(n5 / "cosem_ms"), "cellmap.cosem", "--json")
    report = json.loads(out)
    assert report["models"] == ["cellmap.cosem"] and code == (0 if report["valid"] else 1)


def test_inspect_lists_nodes_and_conventions(capsys) -> None:
    code, out, _ = run_main(capsys, "inspect", str(DATA / "stores/screen/demo_plate.ome.zarr"))
    assert code == 0
    assert "OME-NGFF 0.4 plate" in out and "OME-NGFF 0.4 well" in out and "2×1×128×128" in out
    code, out, _ = run_main(capsys, "inspect", str(DATA / "stores/demo_image.ome.zarr"), "--json")
    assert code == 0 and isinstance(json.loads(out), dict)


def test_join_profiles_writes_one_row_per_profile_row(env, tmp_path, capsys) -> None:
    stores = tmp_path / "eh"
    for i in range(3):
        name = f"AS_09125_050116030001_D03f00d{i}.tif"
        copy_tree(EXAMPLE_HUMAN / name, stores / name)
    profiles = tmp_path / "ExampleHuman"
    for name in ("Image.csv", "Cells.csv"):
        copy_tree(EXAMPLE_HUMAN / name, profiles / name)
    output = tmp_path / "out" / "joined.parquet"
    code, out, _ = run_main(capsys, "join-profiles", str(stores), str(profiles), "--output", str(output), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["rows"] == summary["matched"] == 290
    # One file per object kind: the cells (the first kind: there are no merged single cells) at OUTPUT, the
    # image row beside it.
    assert summary["outputs"] == {
        "joined_profiles_cells": str(output),
        "joined_profiles_image": str(output.with_name("joined_image.parquet")),
    }
    cells = pq.read_table(output)
    assert cells.num_rows == 289
    assert set(cells.column("profile_table").to_pylist()) == {"profile_examplehuman_cells"}
    assert cells.column("image__channel").to_pylist()[0] == ["DNA", "PH3", "cellbody"]
    image = pq.read_table(output.with_name("joined_image.parquet"))
    assert image.num_rows == 1 and image.column("image_matched").to_pylist() == [True]
    assert not any(c.startswith("Cells_") for c in image.column_names)
    keyless = tmp_path / "keyless.csv"
    keyless.write_text("AreaShape_Area\n1\n")
    code, _, err = run_main(capsys, "join-profiles", str(stores), str(keyless), "--output", str(tmp_path / "x.parquet"))
    assert code == 1 and "contract failed" in err and not (tmp_path / "x.parquet").exists()


def test_export_cytomining_adds_tables_without_dropping_others(env, tmp_path, capsys) -> None:
    stores = tmp_path / "eh"
    for i in range(3):
        name = f"AS_09125_050116030001_D03f00d{i}.tif"
        copy_tree(EXAMPLE_HUMAN / name, stores / name)
    assert run_main(capsys, "ingest", str(stores))[0] == 0
    first, second = tmp_path / "p1" / "ExampleHuman", tmp_path / "p2" / "ExampleHuman"
    for name in ("Image.csv", "Cells.csv"):
        copy_tree(EXAMPLE_HUMAN / name, first / name)
    copy_tree(EXAMPLE_HUMAN / "Image.csv", second / "Image.csv")
    copy_tree(EXAMPLE_HUMAN / "Nuclei.csv", second / "Nuclei.csv")
    root = tmp_path / "warehouse"
    code, out, _ = run_main(
        capsys, "export-cytomining", "--warehouse-root", str(root), "--profiles", str(first.parent), "--json"
    )
    assert code == 0 and json.loads(out)["validation"]["valid"]
    # A second export with other tables keeps the first ones (the catalog keeps every table it was given).
    code, out, _ = run_main(
        capsys, "export-cytomining", "--warehouse-root", str(root), "--profiles", str(second.parent), "--json"
    )
    names = {t["table_name"]: t["row_count"] for t in json.loads(out)["manifest"]["tables"]}
    assert code == 0
    # Names come from the path under the folder given: both exports name theirs examplehuman_*, and the
    # second Image table replaces the first under the same name.
    assert names["profiles.examplehuman_cells"] == 289 and names["profiles.examplehuman_nuclei"] == 289
    # Each kind joined in a table of its own; no single cells, so no profiles.joined_profiles.
    joined = {n: rows for n, rows in names.items() if ".joined_" in n}
    assert joined == {
        "profiles.joined_profiles_cells": 289,
        "profiles.joined_profiles_nuclei": 289,
        "profiles.joined_profiles_image": 1,
    }
    code, out, _ = run_main(capsys, "validate-warehouse", str(root), "--json")
    assert code == 0 and json.loads(out)["valid"]
    (root / "images" / "image_assets" / "part-00000.parquet").unlink()
    code, out, _ = run_main(capsys, "validate-warehouse", str(root))
    assert code == 1 and "images.image_assets" in out


def test_publish_chunks_rewrites_only_chunk_index(env, tmp_path, capsys) -> None:
    store = copy_tree(DATA / "stores/demo_sharded.zarr", tmp_path / "demo_sharded.zarr")
    # Only a registered store's chunks can be published.
    code, _, err = run_main(capsys, "publish-chunks", str(store))
    assert code == 2 and "not registered" in err
    assert run_main(capsys, "register", str(store), "--skip-chunks")[0] == 0
    code, out, _ = run_main(capsys, "publish-chunks", str(store), "--json")
    assert code == 0 and list(json.loads(out)["tables"]) == ["chunk_index"]
    code, out, _ = run_main(
        capsys,
        "query",
        "SELECT count(*) AS n, count(*) FILTER (stored) AS s FROM chunk_index WHERE dataset_id = 'demo_sharded.zarr'",
        "--json",
    )
    assert json.loads(out) == [{"n": 64, "s": 40}]
    code, out, _ = run_main(capsys, "query", "SELECT count(*) AS n FROM image_assets", "--json")
    assert json.loads(out) == [{"n": 1}]


def test_query_json_prints_numbers_as_numbers(env, tmp_path, capsys) -> None:
    copy_tree(DATA / "stores/demo_sharded.zarr", tmp_path / "in" / "demo_sharded.zarr")
    assert run_main(capsys, "ingest", str(tmp_path / "in"))[0] == 0
    code, out, _ = run_main(
        capsys,
        "query",
        "SELECT sum(chunk_count) AS total, avg(level)::DECIMAL(6, 3) AS mean, 2.50::DECIMAL(4, 2) AS d "
        "FROM image_assets",
        "--json",
    )
    assert code == 0 and out.count('"') == 6  # the keys only: every value is a JSON number
    assert json.loads(out) == [{"total": 64, "mean": 0.0, "d": 2.5}]


def test_status_shows_where_things_actually_are(env, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # paths under the working folder are shown whole, not relative to it
    copy_tree(DATA / "stores/demo_sharded.zarr", tmp_path / "in" / "demo_sharded.zarr")
    assert run_main(capsys, "ingest", str(tmp_path / "in"))[0] == 0
    elsewhere = tmp_path / "exports" / "wh"
    assert run_main(capsys, "export-cytomining", "--warehouse-root", str(elsewhere))[0] == 0
    code, out, _ = run_main(capsys, "status")
    assert code == 0
    assert f"(sqlite:///{tmp_path / 'catalog' / 'catalog.db'})" in out
    assert f"tables in  file://{tmp_path / 'catalog' / 'warehouse'}" in out
    assert f"warehouse  {elsewhere} (2 tables)" in out  # not the configured BIOIMAGE_WAREHOUSE_DIR
    # A relative catalog URI is shown as the absolute file it opens.
    relative = {**env, "PYICEBERG_CATALOG__BIOIMAGE__URI": "sqlite:///catalog/catalog.db"}
    result = cli(relative, "status", "--json", cwd=tmp_path)
    assert json.loads(result.stdout)["uri"] == f"sqlite:///{tmp_path / 'catalog' / 'catalog.db'}"


def test_ingest_prune_removes_stores_that_left_the_folder(env, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    copy_tree(DATA / "stores/demo_sharded.zarr", folder / "a.zarr")
    copy_tree(DATA / "stores/demo_sharded.zarr", folder / "b.zarr")
    outside = copy_tree(DATA / "stores/demo_pyramid.ome.tiff", tmp_path / "elsewhere" / "c.ome.tiff")
    assert run_main(capsys, "ingest", str(folder))[0] == 0
    assert run_main(capsys, "register", str(outside))[0] == 0
    shutil.rmtree(folder / "b.zarr")
    # Without --prune a folder ingest only adds: b.zarr stays catalogued.
    assert run_main(capsys, "ingest", str(folder))[0] == 0
    code, out, _ = run_main(capsys, "query", "SELECT DISTINCT dataset_id FROM image_assets ORDER BY 1", "--json")
    assert [r["dataset_id"] for r in json.loads(out)] == ["a.zarr", "b.zarr", "c.ome.tiff"]
    code, out, _ = run_main(capsys, "ingest", str(folder), "--prune")
    assert code == 0 and "b.zarr: removed" in out
    for table in ("image_assets", "chunk_index", "store_registry"):
        code, out, _ = run_main(capsys, "query", f"SELECT DISTINCT dataset_id FROM {table} ORDER BY 1", "--json")
        assert [r["dataset_id"] for r in json.loads(out)] == ["a.zarr", "c.ome.tiff"], table


def test_debug_shows_the_traceback_of_every_error(env, tmp_path) -> None:
    # A ValueError from the environment and a store error: one line normally, the traceback with BIOIMAGE_DEBUG.
    bad = {**env, "BIOIMAGE_QUIET_SECONDS": "soon"}
    plain = cli(bad, "status")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and len(plain.stderr.splitlines()) == 1
    debug = cli({**bad, "BIOIMAGE_DEBUG": "1"}, "status")
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == plain.stderr.strip()
    missing = cli({**env, "BIOIMAGE_DEBUG": "1"}, "scan", str(tmp_path / "nope.zarr"))
    assert missing.returncode == 2 and "Traceback" in missing.stderr
