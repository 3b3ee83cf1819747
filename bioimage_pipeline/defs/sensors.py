"""Sensors that ingest what lands in the stores and profiles roots, once it has stopped changing.

A store (or profile source) is *settled* when two looks at least ``quiet_seconds`` apart saw the same
fingerprint: a half-copied plate keeps changing and is left alone. A settled store whose fingerprint is
not the one the catalog last scanned is requested, in runs keyed by the fingerprints, so the same content
never triggers twice. Each tick fingerprints a bounded number of stores, resuming where the last stopped.

The store sensor's cursor remembers only stores that differ from the catalog (new, changed, or asked for
and not yet ingested), within a size budget, so it stays small whatever the number of stores: a store the
catalog already has at its current fingerprint needs no memory, and one beyond the budget is looked at
again on a later round, once earlier ones have been ingested.

The evaluation functions take the resource, the cursor and the time, so tests call them directly or
through ``build_sensor_context``.
"""

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from bioimage_pipeline.catalog import load_table
from bioimage_pipeline.config import sensor_interval_seconds
from bioimage_pipeline.defs.profiles import PROFILE_KEYS
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline.defs.stores import GROUP, ScanConfig
from bioimage_pipeline.discovery import dataset_id_for, iter_store_paths, printable, store_state
from bioimage_pipeline.ingest import is_under
from bioimage_pipeline.profiles.pipeline import SOURCE_FINGERPRINT_KEY, published_profile_tables
from bioimage_pipeline.profiles.sources import discover_profile_sources
from bioimage_pipeline.registry import read_registry

SENSOR_INTERVAL_SECONDS = sensor_interval_seconds()
#: Stores fingerprinted per tick (each costs a listing of its folders and a stat per metadata file).
MAX_FINGERPRINTS_PER_TICK = 500

# Selected by key, not by importing the asset objects: the defs folder is loaded module by module.
ALL_ASSETS = dg.AssetSelection.groups(GROUP)
PROFILE_ASSETS = dg.AssetSelection.assets(*PROFILE_KEYS)


def settle(
    observed: Mapping[str, str], previous: Mapping[str, Sequence[Any]], now: float, quiet_seconds: float
) -> tuple[dict[str, str], dict[str, list[Any]]]:
    """(settled id → fingerprint, new state). State keeps, per id, a fingerprint and when it was first seen."""
    state: dict[str, list[Any]] = {}
    settled: dict[str, str] = {}
    for key, fingerprint in observed.items():
        prev = previous.get(key)
        first_seen = float(prev[1]) if prev and prev[0] == fingerprint else now
        state[key] = [fingerprint, first_seen]
        if now - first_seen >= quiet_seconds:
            settled[key] = fingerprint
    return settled, state


def _key(prefix: str, items: Sequence[Any]) -> str:
    return f"{prefix}:{hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:20]}"


def _load_cursor(cursor: str | None) -> dict[str, Any]:
    try:
        data = json.loads(cursor) if cursor else {}
    except json.JSONDecodeError:
        data = {}
    return data if isinstance(data, dict) else {}


#: The store sensor's cursor stays under this many bytes (Dagster keeps a cursor per tick).
CURSOR_BUDGET = 90_000
#: Hex digits of a fingerprint the cursor keeps (of 32): plenty to tell one store's contents apart.
_FP = 12


def _entry_ok(entry: object) -> bool:
    """A cursor entry this release wrote: a damaged or older cursor is forgotten, never trusted."""
    return (
        isinstance(entry, list)
        and len(entry) == 3
        and isinstance(entry[0], str)
        and isinstance(entry[1], int | float)
        and entry[2] in (0, 1)
    )


def evaluate_store_sensor(
    bioimage: BioimageResource,
    cursor: str | None,
    now: float | None = None,
    max_fingerprints: int = MAX_FINGERPRINTS_PER_TICK,
    cursor_budget: int = CURSOR_BUDGET,
) -> dg.SensorResult:
    """One tick of the store sensor at time ``now``.

    The cursor is ``{"offset": n, "pending": {dataset_id: [fingerprint prefix, first seen, requested]}}``:
    where the next tick starts, and the stores that differ from the catalog — when their current content was
    first seen (it is requested once it has not changed for ``quiet_seconds``) and whether it was asked for.
    """
    now = time.time() if now is None else now
    cfg = bioimage.config()
    data = _load_cursor(cursor)
    root = cfg.stores_dir
    present = [(dataset_id_for(path, root), path, kind) for path, kind in iter_store_paths(root)]
    ids = {printable(d) for d, _, _ in present}
    start = data.get("offset")
    offset = start % len(present) if present and isinstance(start, int) else 0
    visit = (present[offset:] + present[:offset])[:max_fingerprints]
    registry = read_registry(bioimage.catalog(), cfg.namespace)
    pending: dict[str, list[Any]] = {k: v for k, v in (data.get("pending") or {}).items() if k in ids and _entry_ok(v)}
    size = len(json.dumps(pending))
    settled: dict[str, str] = {}
    waiting = deferred = 0
    for dataset_id, path, kind in visit:
        # A store that cannot be read is observed with its error, and ingested as a failure once settled.
        found = store_state(path, dataset_id, kind)
        key, fingerprint = found.dataset_id, found.fingerprint
        if (registry.get(key) or {}).get("fingerprint") == fingerprint:
            pending.pop(key, None)  # catalogued as it is now: nothing to remember
            continue
        prev = pending.get(key)
        if prev is None or prev[0] != fingerprint[:_FP]:
            entry: list[Any] = [fingerprint[:_FP], int(now), 0]
            cost = len(key) + 32
            if prev is None and size + cost > cursor_budget:
                deferred += 1  # over budget: seen again on a later round
                continue
            size += 0 if prev is not None else cost
            pending[key] = prev = entry
        if now - prev[1] >= cfg.quiet_seconds:
            if not prev[2]:
                settled[key] = fingerprint
                prev[2] = 1  # asked for this content (a run may still be queued): not again
        else:
            waiting += 1
    todo = sorted(settled)
    removed = sorted(d for d, row in registry.items() if d not in ids and is_under(row["uri"], root))
    requests = []
    for start in range(0, len(todo), bioimage.max_stores_per_run):
        group = todo[start : start + bioimage.max_stores_per_run]
        requests.append(
            dg.RunRequest(
                run_key=_key("stores", [[d, settled[d]] for d in group] + [["removed", removed]]),
                run_config=dg.RunConfig(ops={"stores": ScanConfig(dataset_ids=group)}),
                tags={"bioimage/trigger": "store_sensor", "bioimage/stores": str(len(group))},
            )
        )
    if removed and not requests:
        requests.append(
            dg.RunRequest(
                run_key=_key("stores-removed", removed),
                run_config=dg.RunConfig(ops={"stores": ScanConfig(dataset_ids=[])}),
                tags={"bioimage/trigger": "store_sensor", "bioimage/removed": str(len(removed))},
            )
        )
    new_cursor = json.dumps({"offset": offset + len(visit), "pending": pending}, sort_keys=True)
    skip = (
        None
        if requests
        else (
            f"{len(present)} stores: {waiting} still changing, {deferred} left for a later round, "
            "the rest already catalogued or requested"
            if present
            else f"no stores under {root}"
        )
    )
    return dg.SensorResult(run_requests=requests, cursor=new_cursor, skip_reason=skip)


def evaluate_profile_sensor(
    bioimage: BioimageResource, cursor: str | None, now: float | None = None
) -> dg.SensorResult:
    now = time.time() if now is None else now
    cfg = bioimage.config()
    data = _load_cursor(cursor)
    sources = discover_profile_sources(cfg.profiles_dir)
    observed = {s.name: s.fingerprint for s in sources}
    settled, state = settle(observed, data.get("sources") or {}, now, cfg.quiet_seconds)

    catalog = bioimage.catalog()
    published: dict[str, set[str]] = {}
    for name in published_profile_tables(catalog, cfg.namespace):
        table = load_table(catalog, cfg.namespace, name)
        if table is not None:
            props = table.properties
            published.setdefault(props.get("bioimage.source", ""), set()).add(props.get(SOURCE_FINGERPRINT_KEY, ""))
    by_name = {s.name: s for s in sources}
    todo = sorted(n for n, fp in settled.items() if fp not in published.get(str(by_name[n].path), set()))
    removed = sorted(src for src in published if src and not Path(src).exists())
    requests = []
    if todo or removed:
        requests.append(
            dg.RunRequest(
                run_key=_key("profiles", [[n, settled[n]] for n in todo] + [["removed", removed]]),
                tags={"bioimage/trigger": "profile_sensor", "bioimage/profile_sources": str(len(todo))},
            )
        )
    waiting = len([n for n in observed if n not in settled])
    skip = (
        None
        if requests
        else (
            f"{len(sources)} profile sources: {waiting} still changing, the rest already published"
            if sources
            else f"no profile tables under {cfg.profiles_dir}"
        )
    )
    return dg.SensorResult(
        run_requests=requests, cursor=json.dumps({"sources": state}, sort_keys=True), skip_reason=skip
    )


@dg.sensor(
    name="store_sensor",
    asset_selection=ALL_ASSETS,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Ingests stores that appear, change or disappear under the stores root, once settled.",
)
def store_sensor(context: dg.SensorEvaluationContext, bioimage: BioimageResource) -> dg.SensorResult:
    return evaluate_store_sensor(bioimage, context.cursor)


@dg.sensor(
    name="profile_sensor",
    asset_selection=PROFILE_ASSETS,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Refreshes the warehouse and the joins when profile tables appear, change or disappear.",
)
def profile_sensor(context: dg.SensorEvaluationContext, bioimage: BioimageResource) -> dg.SensorResult:
    return evaluate_profile_sensor(bioimage, context.cursor)
