"""Sensors evaluated for real: stores on disk, the catalog they compare against, Dagster's sensor context."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import numpy as np
import pytest
import tifffile
from dagster_duckdb import DuckDBResource

from bioimage_pipeline.definitions import ASSETS, CHECKS, build_definitions
from bioimage_pipeline.defs.sensors import (
    evaluate_profile_sensor,
    evaluate_store_sensor,
    profile_sensor,
    settle,
    store_sensor,
)
from bioimage_pipeline_tests.conftest import DATA


def quiet(resource, seconds: float):
    return resource.model_copy(update={"quiet_seconds": seconds})


def requested_ids(result: dg.SensorResult) -> list[list[str]]:
    return [r.run_config["ops"]["stores"]["config"]["dataset_ids"] for r in result.run_requests]


def test_settle_needs_the_same_fingerprint_for_the_quiet_period() -> None:
    settled, state = settle({"a": "f1"}, {}, now=100.0, quiet_seconds=30)
    assert settled == {} and state == {"a": ["f1", 100.0]}
    settled, state = settle({"a": "f1"}, state, now=129.0, quiet_seconds=30)
    assert settled == {}
    settled, state = settle({"a": "f1"}, state, now=130.0, quiet_seconds=30)
    assert settled == {"a": "f1"}
    settled, state = settle({"a": "f2"}, state, now=200.0, quiet_seconds=30)  # changed again: wait anew
    assert settled == {} and state["a"] == ["f2", 200.0]


def test_store_is_requested_only_after_it_stays_quiet(resource, add_store) -> None:
    add_store(DATA / "stores/demo_pyramid.ome.tiff", "demo_pyramid.ome.tiff")
    slow = quiet(resource, 60)
    first = evaluate_store_sensor(slow, None, now=1000.0)
    assert first.run_requests == [] and "still changing" in first.skip_reason.skip_message
    second = evaluate_store_sensor(slow, first.cursor, now=1061.0)
    assert requested_ids(second) == [["demo_pyramid.ome.tiff"]]
    fingerprint, first_seen, asked = json.loads(second.cursor)["pending"]["demo_pyramid.ome.tiff"]
    assert (first_seen, asked) == (1000, 1)
    assert second.run_requests[0].run_key.startswith("stores:")
    # Asked once for this content: the next tick does not ask again, even before the run has happened.
    again = evaluate_store_sensor(slow, second.cursor, now=1062.0)
    assert again.run_requests == []
    assert json.loads(again.cursor)["pending"] == {"demo_pyramid.ome.tiff": [fingerprint, 1000, 1]}
    # Without the cursor's memory, the same content yields the same run key, which Dagster deduplicates.
    fresh = evaluate_store_sensor(quiet(resource, 0), None, now=2000.0)
    assert fresh.run_requests[0].run_key == second.run_requests[0].run_key


def test_a_store_still_being_written_is_not_requested(resource, add_store, config) -> None:
    store = add_store(DATA / "stores/demo_image.ome.zarr", "demo_image.ome.zarr")
    slow = quiet(resource, 30)
    tick = evaluate_store_sensor(slow, None, now=0.0)
    for t in (20.0, 40.0, 60.0):  # a copy still in progress: a new chunk lands between every tick
        (store / "s0" / "c" / f"extra-{t}").write_bytes(b"x")
        tick = evaluate_store_sensor(slow, tick.cursor, now=t)
        assert tick.run_requests == []
    tick = evaluate_store_sensor(slow, tick.cursor, now=95.0)
    assert requested_ids(tick) == [["demo_image.ome.zarr"]]


def test_ingested_store_is_not_requested_again_and_removal_is(resource, add_store, config) -> None:
    add_store(DATA / "stores/demo_pyramid.ome.tiff", "demo_pyramid.ome.tiff")
    add_store(DATA / "stores/demo_sharded.zarr", "demo_sharded.zarr")
    with dg.instance_for_test() as instance:
        dg.materialize(
            [*ASSETS, *CHECKS],
            instance=instance,
            resources={"bioimage": resource, "duckdb": DuckDBResource(database=":memory:")},
        )
    tick = evaluate_store_sensor(resource, None, now=0.0)
    assert tick.run_requests == [] and "already catalogued" in tick.skip_reason.skip_message
    assert json.loads(tick.cursor)["pending"] == {}  # catalogued as they are: nothing remembered
    shutil.rmtree(config.stores_dir / "demo_sharded.zarr")
    tick = evaluate_store_sensor(resource, tick.cursor, now=1.0)
    assert requested_ids(tick) == [[]]  # nothing to scan; the run deletes the removed store's rows
    assert tick.run_requests[0].tags["bioimage/removed"] == "1"


def test_work_per_tick_is_bounded_and_resumes(resource, add_store) -> None:
    for i in range(5):
        add_store(DATA / "stores/demo_pyramid.ome.tiff", f"plate{i}.ome.tiff")
    tick = evaluate_store_sensor(resource, None, now=0.0, max_fingerprints=2)
    assert sorted(json.loads(tick.cursor)["pending"]) == ["plate0.ome.tiff", "plate1.ome.tiff"]
    assert requested_ids(tick) == [["plate0.ome.tiff", "plate1.ome.tiff"]]
    tick = evaluate_store_sensor(resource, tick.cursor, now=1.0, max_fingerprints=2)
    assert requested_ids(tick) == [["plate2.ome.tiff", "plate3.ome.tiff"]]
    tick = evaluate_store_sensor(resource, tick.cursor, now=2.0, max_fingerprints=2)
    # plate4, then plate0 again: plate0's content was already requested, so only plate4 is asked for.
    assert requested_ids(tick) == [["plate4.ome.tiff"]]
    assert len(json.loads(tick.cursor)["pending"]) == 5


def test_runs_are_split_to_bound_their_size(resource, add_store) -> None:
    for i in range(5):
        add_store(DATA / "stores/demo_pyramid.ome.tiff", f"plate{i}.ome.tiff")
    small = resource.model_copy(update={"max_stores_per_run": 2})
    tick = evaluate_store_sensor(small, None, now=0.0)
    assert [len(ids) for ids in requested_ids(tick)] == [2, 2, 1]
    assert len({r.run_key for r in tick.run_requests}) == 3


def test_sensors_through_dagster_context(resource, add_store, add_profile) -> None:
    add_store(DATA / "stores/demo_pyramid.ome.tiff", "demo_pyramid.ome.tiff")
    add_profile(DATA / "profiles/demo_plate_cells.csv", "demo_plate_cells.csv")
    defs = build_definitions(resource)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"bioimage": resource}, definitions=defs)
        result = store_sensor(context)
        assert requested_ids(result) == [["demo_pyramid.ome.tiff"]]
        context = dg.build_sensor_context(instance=instance, resources={"bioimage": resource}, definitions=defs)
        result = profile_sensor(context)
        assert len(result.run_requests) == 1 and result.run_requests[0].run_key.startswith("profiles:")


def test_profile_sensor_waits_then_requests_once_per_content(resource, add_profile, config) -> None:
    path = add_profile(DATA / "profiles/demo_plate_cells.csv", "demo_plate_cells.csv")
    slow = quiet(resource, 30)
    tick = evaluate_profile_sensor(slow, None, now=0.0)
    assert tick.run_requests == []
    tick = evaluate_profile_sensor(slow, tick.cursor, now=31.0)
    key = tick.run_requests[0].run_key
    path.write_text(path.read_text() + "")  # same bytes, new mtime: a new fingerprint
    tick2 = evaluate_profile_sensor(slow, tick.cursor, now=40.0)
    assert tick2.run_requests == []
    tick3 = evaluate_profile_sensor(slow, tick2.cursor, now=71.0)
    assert tick3.run_requests and tick3.run_requests[0].run_key != key


@pytest.mark.parametrize("sensor", [store_sensor, profile_sensor])
def test_sensors_are_running_by_default(sensor) -> None:
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_the_cursor_stays_within_its_budget_whatever_the_number_of_stores(resource, config) -> None:
    """3,000 new stores with long names: the cursor remembers what fits, the rest wait for a later round, and
    every store is still requested in the end."""
    folder = config.stores_dir / ("a-folder-name-as-long-as-an-instrument-export-makes-it-" * 2)
    folder.mkdir(parents=True)
    for i in range(3000):
        (folder / f"{i:05d}_{'x' * 40}.tif").write_bytes(b"II*\x00")
    seen: set[str] = set()
    tick, now = None, 0.0
    for _ in range(40):
        tick = evaluate_store_sensor(resource, tick.cursor if tick else None, now=now, max_fingerprints=5000)
        assert len(tick.cursor.encode()) < 100_000
        seen.update(d for ids in requested_ids(tick) for d in ids)
        # Stand in for the runs: what was requested is catalogued, so the cursor forgets it.
        for d in requested_ids(tick)[0] if tick.run_requests else []:
            (config.stores_dir / d).unlink()
        now += 1.0
        if len(seen) == 3000:
            break
    assert len(seen) == 3000


def test_a_plate_copied_in_over_ten_minutes_is_requested_once_after_it_settles(resource, config) -> None:
    """A plate's TIFFs arrive every 30 s for 10 minutes (the sensor's clock is the test's): every tick while
    they arrive sees it change; once it has been quiet for quiet_seconds it is requested, once."""
    slow = quiet(resource, 120)
    images = config.stores_dir / "BR00000001" / "Images"
    images.mkdir(parents=True)
    tick, requests = None, []
    for step in range(21):  # t = 0, 30, ..., 600 s: five channel files of one more site each time
        now = 30.0 * step
        for channel in range(1, 6):
            name = f"r01c{1 + step // 9:02d}f{1 + step % 9:02d}p01-ch{channel}sk1fk1fl1.tiff"
            tifffile.imwrite(images / name, np.zeros((8, 8), np.uint16))
        tick = evaluate_store_sensor(slow, tick.cursor if tick else None, now=now + 15.0)
        requests += tick.run_requests
    assert requests == []
    for now in (630.0, 690.0, 735.0, 800.0, 900.0):  # settled from 615 + 120 s on
        tick = evaluate_store_sensor(slow, tick.cursor, now=now)
        requests += tick.run_requests
    assert [r.run_config["ops"]["stores"]["config"]["dataset_ids"] for r in requests] == [["BR00000001"]]


def test_a_damaged_or_older_cursor_is_forgotten(resource, add_store) -> None:
    add_store(DATA / "stores/demo_pyramid.ome.tiff", "demo_pyramid.ome.tiff")
    old = json.dumps({"stores": {"demo_pyramid.ome.tiff": ["abc", 0.0]}, "requested": {}, "offset": 0})
    damaged = json.dumps({"pending": {"demo_pyramid.ome.tiff": ["abc", "yesterday", 1]}, "offset": "x"})
    for cursor in (old, damaged, "not json"):
        tick = evaluate_store_sensor(quiet(resource, 10), cursor, now=100.0)
        assert tick.run_requests == []  # seen for the first time: it must stay quiet first
        assert json.loads(tick.cursor)["pending"]["demo_pyramid.ome.tiff"][1:] == [100, 0]
