"""Identities stay one-to-one: one location is one dataset_id, and chunks are published only under the id
their store is registered as."""

from __future__ import annotations

import json

from bioimage_pipeline_tests.conftest import DATA, copy_tree, run_main


def query(capsys, sql: str) -> list[dict]:
    code, out, err = run_main(capsys, "query", sql, "--json")
    assert code == 0, err
    return json.loads(out)


def test_one_location_is_never_two_dataset_ids(env, tmp_path, capsys) -> None:
    root = tmp_path / "stores"
    tonsil = copy_tree(DATA / "stores/demo_image.ome.zarr", root / "idr" / "Tonsil1.zarr")
    copy_tree(DATA / "stores/demo_sharded.zarr", root / "demo_sharded.zarr")
    assert run_main(capsys, "register", str(tonsil))[0] == 0  # dataset_id "Tonsil1.zarr"
    # The folder would call the same location idr/Tonsil1.zarr: refused, with the way out, the rest goes in.
    code, _, err = run_main(capsys, "ingest", str(root))
    assert code == 1
    assert "idr/Tonsil1.zarr: FAILED" in err and "already registered as 'Tonsil1.zarr'" in err and "--replace" in err
    ids = query(capsys, "SELECT DISTINCT dataset_id FROM image_assets ORDER BY 1")
    assert ids == [{"dataset_id": "Tonsil1.zarr"}, {"dataset_id": "demo_sharded.zarr"}]
    # ingest accepts the --replace it suggests, and moves the store to its folder identity.
    code, _, err = run_main(capsys, "ingest", str(root), "--replace")
    assert code == 0, err
    ids = query(capsys, "SELECT DISTINCT dataset_id FROM image_assets ORDER BY 1")
    assert ids == [{"dataset_id": "demo_sharded.zarr"}, {"dataset_id": "idr/Tonsil1.zarr"}]
    registry = query(capsys, "SELECT dataset_id FROM store_registry ORDER BY 1")
    assert registry == [{"dataset_id": "demo_sharded.zarr"}, {"dataset_id": "idr/Tonsil1.zarr"}]
    # A profile row keyed by the store links to exactly one image.
    profile = tmp_path / "cells.csv"
    profile.write_text("dataset_id,image_id,Area\nidr/Tonsil1.zarr,/,5\n")
    code, out, _ = run_main(capsys, "validate-contract", str(profile), "--json")
    assert code == 0 and json.loads(out)["tables"][0]["coverage"]["matched_rows"] == 1


def test_publish_chunks_keeps_to_the_registered_location(env, tmp_path, capsys) -> None:
    a = copy_tree(DATA / "stores/demo_sharded.zarr", tmp_path / "a" / "vol.zarr")
    b = copy_tree(DATA / "stores/demo_sharded.zarr", tmp_path / "b" / "vol.zarr")
    assert run_main(capsys, "register", str(a), "--dataset-id", "vol")[0] == 0
    before = query(capsys, "SELECT count(*) AS n FROM chunk_index")
    # Another store's chunks under a dataset_id registered for a: refused, nothing written.
    code, _, err = run_main(capsys, "publish-chunks", str(b), "--dataset-id", "vol")
    assert code == 2 and f"dataset_id 'vol' is registered for {a}" in err
    # A store that was never registered: refused too.
    code, _, err = run_main(capsys, "publish-chunks", str(b))
    assert code == 2 and f"{b}: not registered" in err
    assert query(capsys, "SELECT count(*) AS n FROM chunk_index") == before
    assert query(capsys, "SELECT DISTINCT dataset_id FROM chunk_index") == [{"dataset_id": "vol"}]
    # The registered store itself, by path alone: its registered id is found.
    code, out, _ = run_main(capsys, "publish-chunks", str(a), "--json")
    assert code == 0 and json.loads(out)["stores"][0]["dataset_id"] == "vol"
