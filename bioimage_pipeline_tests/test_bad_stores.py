"""Store entries that used to stop every store: each is now that store's failure, named in store_registry,
and every other store goes in. Real files, real links, real permissions, a real catalog and Dagster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from bioimage_pipeline import ingest
from bioimage_pipeline.defs.sensors import evaluate_store_sensor
from bioimage_pipeline_tests.conftest import DATA, SCRIPT, cli, copy_tree, run_main, zarray
from bioimage_pipeline_tests.test_pipeline import run, sql

GOOD = DATA / "stores/demo_image.ome.zarr"
NOT_UTF8 = os.fsdecode(b"bad\xff.ome.zarr")


def huge_zarr(path: Path) -> Path:
    return zarray(path, [2**62, 2**62], [1, 1])


def plain_zarr_with_a_folder_for_a_document(path: Path) -> Path:
    """Two arrays; the second one's ``.zarray`` is a folder (a copy gone wrong)."""
    path.mkdir(parents=True)
    (path / ".zgroup").write_text('{"zarr_format": 2}')
    zarray(path / "a", [4, 4], [2, 2])
    zarray(path / "b", [4, 4], [2, 2])
    (path / "b" / ".zarray").unlink()
    (path / "b" / ".zarray").mkdir()
    return path


def bad_root(root: Path) -> dict[str, str]:
    """A stores root with one good store and one of each bad entry; returns dataset_id → the path its
    error must name."""
    copy_tree(GOOD, root / "good.ome.zarr")
    (root / "a.tif").symlink_to("b.tif")  # two links pointing at each other
    (root / "b.tif").symlink_to("a.tif")
    copy_tree(GOOD, root / NOT_UTF8)
    inside = copy_tree(DATA / "stores/demo_sharded.zarr", root / "dangling.zarr")
    (inside / "volume" / "c" / "gone").symlink_to(root / "nowhere")
    looped = copy_tree(DATA / "stores/demo_sharded.zarr", root / "looped.zarr")
    (looped / "volume" / "x").symlink_to("y")
    (looped / "volume" / "y").symlink_to("x")
    huge_zarr(root / "huge.zarr")
    plain_zarr_with_a_folder_for_a_document(root / "folder_doc.zarr")
    tiff = (DATA / "stores/multiseries.ome.tiff").read_bytes()
    (root / "half.ome.tiff").write_bytes(tiff[: len(tiff) // 2])
    return {
        "a.tif": f"{root / 'a.tif'}: symbolic link loop",
        "b.tif": f"{root / 'b.tif'}: symbolic link loop",
        "bad\\xff.ome.zarr": f"{root}/bad\\xff.ome.zarr: the name is not valid UTF-8",
        "dangling.zarr": f"{inside / 'volume' / 'c' / 'gone'}: broken symbolic link to {root / 'nowhere'}",
        "looped.zarr": f"{looped / 'volume'}/",
        "huge.zarr": f"{root / 'huge.zarr' / '.zarray'}: shape [4611686018427387904, 4611686018427387904]",
        "folder_doc.zarr": f"{root / 'folder_doc.zarr' / 'b' / '.zarray'}: is a folder where a file",
        "half.ome.tiff": f"{root / 'half.ome.tiff'}: corrupt or truncated TIFF",
    }


def registry(env: dict[str, str]) -> dict[str, dict]:
    result = cli(env, "query", "SELECT dataset_id, status, error FROM store_registry", "--json")
    assert result.returncode == 0, result.stderr
    return {r["dataset_id"]: r for r in json.loads(result.stdout)}


def test_ingest_records_each_bad_entry_and_ingests_the_rest(env, tmp_path) -> None:
    root = tmp_path / "stores"
    expected = bad_root(root)
    result = cli(env, "ingest", str(root))
    assert result.returncode == 1, result.stderr  # some failed; the rest committed
    rows = registry(env)
    assert rows["good.ome.zarr"]["status"] == "ok"
    for dataset_id, message in expected.items():
        assert rows[dataset_id]["status"] == "failed", dataset_id
        assert rows[dataset_id]["error"].startswith(message), (dataset_id, rows[dataset_id]["error"])
        assert len(rows[dataset_id]["error"].splitlines()) == 1
        assert f"{dataset_id}: FAILED" in result.stderr
    images = cli(env, "query", "SELECT DISTINCT dataset_id FROM image_assets", "--json")
    assert json.loads(images.stdout) == [{"dataset_id": "good.ome.zarr"}]
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    # The same broken content is recorded once and not scanned again; exit 1 says it is still there.
    again = cli(env, "ingest", str(root))
    assert again.returncode == 1 and "good.ome.zarr: unchanged" in again.stdout
    assert all(f"{d}: FAILED" in again.stderr for d in expected)
    assert "nothing to write" in again.stdout


def test_exit_codes_0_all_in_1_some_failed_2_usage(env, tmp_path) -> None:
    root = tmp_path / "stores"
    copy_tree(GOOD, root / "good.ome.zarr")
    assert cli(env, "ingest", str(root)).returncode == 0
    huge_zarr(root / "huge.zarr")
    some = cli(env, "ingest", str(root))
    assert some.returncode == 1 and "good.ome.zarr: unchanged" in some.stdout and "huge.zarr: FAILED" in some.stderr
    missing = cli(env, "ingest", str(root / "good.ome.zarr"), str(tmp_path / "typo.zarr"))
    assert missing.returncode == 2 and f"{tmp_path / 'typo.zarr'}: does not exist" in missing.stderr


def test_a_store_removed_while_the_run_scans_is_that_stores_failure(
    env, tmp_path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "stores"
    for name in ("a.ome.zarr", "b.ome.zarr", "c.ome.zarr"):
        copy_tree(GOOD, root / name)
    real_scan = ingest.scan_store

    def scan_and_delete(path, dataset_id=None):
        # While a.ome.zarr is scanned, the user deletes b.ome.zarr (listed, not scanned yet).
        if Path(path).name == "a.ome.zarr":
            shutil.rmtree(root / "b.ome.zarr")
        return real_scan(path, dataset_id)

    monkeypatch.setattr(ingest, "scan_store", scan_and_delete)
    code, _, err = run_main(capsys, "ingest", str(root))
    assert code == 1
    assert f"b.ome.zarr: FAILED {root / 'b.ome.zarr'}: does not exist" in err
    code, out, _ = run_main(capsys, "query", "SELECT DISTINCT dataset_id FROM image_assets ORDER BY 1", "--json")
    assert json.loads(out) == [{"dataset_id": "a.ome.zarr"}, {"dataset_id": "c.ome.zarr"}]


def test_a_folder_that_cannot_be_read_without_privileges(env, tmp_path) -> None:
    """CI runs as root, which reads anything: the scan runs with every capability dropped, as a user would."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to drop root's capabilities"
    root = tmp_path / "stores"
    copy_tree(GOOD, root / "good.ome.zarr")
    locked = copy_tree(DATA / "stores/demo_sharded.zarr", root / "locked.zarr") / "volume" / "c" / "0"
    locked.chmod(0)
    try:
        command = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all", "--"]
        result = subprocess.run(
            [*command, str(SCRIPT), "ingest", str(root)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        locked.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert f"locked.zarr: FAILED {locked}: cannot list (permission denied)" in result.stderr
    assert registry(env)["good.ome.zarr"]["status"] == "ok"


def test_the_sensor_and_a_dagster_run_go_past_bad_entries(tmp_path, config, resource, catalog) -> None:
    expected = bad_root(config.stores_dir)
    context = dg.build_sensor_context(cursor=None, resources={"bioimage": resource})
    result = evaluate_store_sensor(resource, context.cursor)
    [request] = result.run_requests
    selected = request.run_config["ops"]["stores"]["config"]["dataset_ids"]
    assert set(selected) == {*expected, "good.ome.zarr"}
    with dg.instance_for_test() as instance:
        outcome = run(resource, instance, run_config=request.run_config)
        assert outcome.success
    rows = {r[0]: (r[1], r[2]) for r in sql(catalog, config, "SELECT dataset_id, status, error FROM store_registry")}
    assert rows["good.ome.zarr"][0] == "ok"
    for dataset_id, message in expected.items():
        assert rows[dataset_id][0] == "failed" and rows[dataset_id][1].startswith(message)
    # The next tick asks for nothing: the faults are recorded, and they have not changed.
    again = evaluate_store_sensor(resource, result.cursor)
    assert not again.run_requests
