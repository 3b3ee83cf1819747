"""Two writers at once, as two OS processes on one catalog: every commit conflict is retried, both succeed,
the tables hold the union exactly once, and store_registry never describes rows that are not there."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bioimage_pipeline_tests.conftest import DATA, SCRIPT, cli, copy_tree
from bioimage_pipeline_tests.test_end_to_end import environment

STORE = DATA / "stores/demo_image.ome.zarr"  # 6 arrays, 12 stored chunks


def folder(root: Path, prefix: str, n: int) -> Path:
    for i in range(n):
        copy_tree(STORE, root / f"{prefix}{i:02d}.ome.zarr")
    return root


def at_once(*commands: list[str], env: dict[str, str], cwd: Path | None = None) -> list[tuple[int, str, float, float]]:
    """Start every command together; (exit code, stderr, start, end) of each."""
    started = []
    for command in commands:
        started.append(
            (
                subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
                time.monotonic(),
            )
        )
    results = []
    for process, start in started:
        _, err = process.communicate(timeout=600)
        results.append((process.returncode, err, start, time.monotonic()))
    return results


def overlapped(results: list[tuple[int, str, float, float]]) -> bool:
    (_, _, a0, a1), (_, _, b0, b1) = results
    return a0 < b1 and b0 < a1


def query(env: dict[str, str], sql: str) -> list[dict]:
    result = cli(env, "query", sql, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_union_once(env: dict[str, str], stores: int) -> None:
    counts = query(
        env,
        "SELECT (SELECT count(*) FROM image_assets) AS arrays, "
        "(SELECT count(DISTINCT (dataset_id, array_path)) FROM image_assets) AS distinct_arrays, "
        "(SELECT count(*) FROM chunk_index) AS chunks, "
        "(SELECT count(DISTINCT (dataset_id, array_path, storage_key)) FROM chunk_index) AS distinct_chunks, "
        "(SELECT count(*) FILTER (status = 'ok') FROM store_registry) AS ok",
    )
    assert counts == [
        {
            "arrays": 6 * stores,
            "distinct_arrays": 6 * stores,
            "chunks": 12 * stores,
            "distinct_chunks": 12 * stores,
            "ok": stores,
        }
    ]
    # Every store the registry calls ingested has exactly its rows, at the fingerprint it records.
    behind = query(
        env,
        "SELECT r.dataset_id FROM store_registry r WHERE r.status = 'ok' AND ("
        "(SELECT count(*) FROM image_assets a WHERE a.dataset_id = r.dataset_id "
        " AND a.fingerprint = r.ingested_fingerprint) <> r.array_count OR "
        "(SELECT count(*) FROM chunk_index c WHERE c.dataset_id = r.dataset_id "
        " AND c.fingerprint = r.ingested_fingerprint) <> r.chunks_indexed)",
    )
    assert behind == []


@pytest.mark.slow
def test_two_ingests_of_disjoint_halves(env, tmp_path) -> None:
    a, b = folder(tmp_path / "a", "a", 15), folder(tmp_path / "b", "b", 15)
    for force in ([], ["--force"]):  # into a new catalog, then both replacing what is there
        results = at_once([str(SCRIPT), "ingest", str(a), *force], [str(SCRIPT), "ingest", str(b), *force], env=env)
        assert [r[0] for r in results] == [0, 0], [r[1][-2000:] for r in results]
        assert overlapped(results)
        assert_union_once(env, 30)


@pytest.mark.slow
def test_two_ingests_of_the_same_stores(env, tmp_path) -> None:
    a = folder(tmp_path / "a", "s", 15)
    for force in ([], ["--force"]):
        results = at_once([str(SCRIPT), "ingest", str(a), *force], [str(SCRIPT), "ingest", str(a), *force], env=env)
        assert [r[0] for r in results] == [0, 0], [r[1][-2000:] for r in results]
        assert overlapped(results)
        assert_union_once(env, 15)


@pytest.mark.slow
def test_two_dagster_runs_at_once(tmp_path) -> None:
    env = environment(tmp_path)
    folder(tmp_path / "stores", "s", 12)
    copy_tree(DATA / "profiles/demo_plate_cells.csv", tmp_path / "profiles" / "demo_plate_cells.csv")
    copy_tree(DATA / "stores/screen/demo_plate.ome.zarr", tmp_path / "stores" / "screen" / "demo_plate.ome.zarr")
    # The Dagster instance exists, as it does where runs are launched (its own storage is Dagster's business).
    subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "instance", "migrate"], env=env, check=True, capture_output=True
    )
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "bioimage_pipeline.definitions",
        "--select",
        "*",
    ]
    results = at_once(command, command, env=env, cwd=tmp_path)
    failures = [line for r in results for line in r[1].splitlines() if "STEP_FAILURE" in line or "Error" in line]
    assert [r[0] for r in results] == [0, 0], failures[:20] + [r[1][-6000:] for r in results if r[0]]
    assert overlapped(results)
    stores = query(env, "SELECT count(DISTINCT dataset_id) AS n, count(*) AS arrays FROM image_assets")
    assert stores == [{"n": 13, "arrays": 6 * 12 + 16}]
    assert query(env, "SELECT count(*) AS n, count(*) FILTER (image_matched) AS m FROM joined_profiles") == [
        {"n": 49, "m": 49}
    ]
    result = cli(env, "validate-warehouse", str(tmp_path / "warehouse"))
    assert result.returncode == 0, result.stdout
