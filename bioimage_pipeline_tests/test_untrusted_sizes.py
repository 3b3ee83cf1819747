"""Declared sizes are untrusted input: a bound on chunk_index rows per array, grids too large to list indexed
by what is stored, and a killed run that never leaves a store looking complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from bioimage_pipeline_tests.conftest import SCRIPT, cli, zarray


def query(env: dict[str, str], sql: str) -> list[dict]:
    result = cli(env, "query", sql, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_trillion_declared_chunks_are_counted_not_listed(env, tmp_path) -> None:
    store = zarray(tmp_path / "trillion.zarr", [10**6, 10**6], [1, 1])
    started = time.monotonic()
    result = cli(env, "register", str(store), "--json")
    assert time.monotonic() - started < 60  # not hours of Parquet: nothing but the count is written
    assert result.returncode == 0, result.stderr
    [outcome] = json.loads(result.stdout)["stores"]
    assert outcome["status"] == "ok"
    [warning] = outcome["warnings"]
    assert "1,000,000,000,000 chunks in the grid, more than the 100,000,000 chunk_index rows" in warning
    assert "only its 0 stored chunks are indexed" in warning
    assert query(env, "SELECT chunk_count, chunks_stored, chunks_indexed FROM image_assets") == [
        {"chunk_count": 10**12, "chunks_stored": 0, "chunks_indexed": 0}
    ]
    assert query(env, "SELECT count(*) AS n FROM chunk_index") == [{"n": 0}]


def test_a_sparse_grid_too_large_to_list_indexes_what_is_stored(env, tmp_path) -> None:
    # As large a grid as IDR 4007801.zarr declares (191,439,136 chunks), with three chunks written.
    stored = ["0/0/0/0/0", "0/0/0/5/7", "0/1/2/100/3"]
    store = zarray(tmp_path / "idr_like.zarr", [1, 2, 1451, 217 * 64, 304 * 64], [1, 1, 1, 64, 64], stored)
    result = cli(env, "register", str(store), "--json")
    assert result.returncode == 0, result.stderr
    [outcome] = json.loads(result.stdout)["stores"]
    assert "191,439,136 chunks in the grid" in outcome["warnings"][0]
    assert query(env, "SELECT chunk_count, chunks_stored, chunks_indexed FROM image_assets") == [
        {"chunk_count": 191_439_136, "chunks_stored": 3, "chunks_indexed": 3}
    ]
    rows = query(env, "SELECT chunk_coords, storage_key, stored, byte_length FROM chunk_index ORDER BY storage_key")
    assert rows == [
        {"chunk_coords": [0, 0, 0, 0, 0], "storage_key": "0/0/0/0/0", "stored": True, "byte_length": 7},
        {"chunk_coords": [0, 0, 0, 5, 7], "storage_key": "0/0/0/5/7", "stored": True, "byte_length": 7},
        {"chunk_coords": [0, 1, 2, 100, 3], "storage_key": "0/1/2/100/3", "stored": True, "byte_length": 7},
    ]


def test_the_bound_is_configurable(env, tmp_path) -> None:
    store = zarray(tmp_path / "small.zarr", [8, 8], [1, 1], [f"{i}/{i}" for i in range(8)])
    within = cli(env, "register", str(store), "--json")
    assert within.returncode == 0 and not json.loads(within.stdout)["stores"][0]["warnings"]
    assert query(env, "SELECT count(*) AS n FROM chunk_index") == [{"n": 64}]
    stored_only = cli({**env, "BIOIMAGE_MAX_CHUNK_ROWS": "10"}, "register", str(store), "--force")
    assert stored_only.returncode == 0
    assert query(env, "SELECT count(*) AS n, count(*) FILTER (stored) AS s FROM chunk_index") == [{"n": 8, "s": 8}]
    none = cli({**env, "BIOIMAGE_MAX_CHUNK_ROWS": "5"}, "register", str(store), "--force", "--json")
    [outcome] = json.loads(none.stdout)["stores"]
    assert "none are indexed (counts are kept)" in outcome["warnings"][0]
    assert query(env, "SELECT count(*) AS n FROM chunk_index") == [{"n": 0}]
    assert query(env, "SELECT chunk_count, chunks_stored, chunks_indexed FROM image_assets") == [
        {"chunk_count": 64, "chunks_stored": 8, "chunks_indexed": 0}
    ]
    bad = cli({**env, "BIOIMAGE_MAX_CHUNK_ROWS": "many"}, "register", str(store))
    assert bad.returncode == 2 and "BIOIMAGE_MAX_CHUNK_ROWS='many' is not a whole number" in bad.stderr


@pytest.mark.slow
def test_a_killed_register_never_leaves_a_store_looking_complete(env, tmp_path) -> None:
    store = zarray(tmp_path / "big.zarr", [2000, 2000], [1, 1])  # 4,000,000 chunk rows: seconds of writing
    for delay in (0.5, 1.5, 2.5, 3.5, 5.0):
        process = subprocess.Popen([str(SCRIPT), "register", str(store), "--force"], env=env)
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        registered = query(env, "SELECT status, ingested_fingerprint, chunks_indexed FROM store_registry")
        if not registered:
            continue  # killed before the registry's commit: nothing claims the store
        [row] = registered
        assert row["status"] == "ok"
        fingerprint = row["ingested_fingerprint"]
        # What the registry says is there, is there, in full.
        assert query(env, f"SELECT count(*) AS n FROM image_assets WHERE fingerprint = '{fingerprint}'") == [{"n": 1}]
        assert query(env, f"SELECT count(*) AS n FROM chunk_index WHERE fingerprint = '{fingerprint}'") == [
            {"n": row["chunks_indexed"]}
        ]
    result = cli(env, "register", str(store), "--json")
    assert result.returncode == 0
    assert query(env, "SELECT count(*) AS n FROM chunk_index") == [{"n": 4_000_000}]
    status = json.loads(cli(env, "status", "--json").stdout)
    assert (status["stores_ok"], status["chunks"]) == (1, 4_000_000)
