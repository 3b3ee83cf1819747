"""Sensors that ingest what lands in the stores and profiles roots, once it has stopped changing.

A store (or profile source) is *settled* when two looks at least ``quiet_seconds`` apart saw the same
fingerprint: a half-copied plate keeps changing and is left alone. A settled store whose fingerprint is
not the one the catalog last scanned is requested, in runs keyed by the fingerprints, so the same content
never triggers twice. Each tick fingerprints a bounded number of stores, resuming where the last stopped.

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
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline.defs.stores import GROUP, ScanConfig
from bioimage_pipeline.discovery import dataset_id_for, iter_store_paths, printable, store_state
from bioimage_pipeline.ingest import is_under
from bioimage_pipeline.profiles.pipeline import SOURCE_FINGERPRINT_KEY, published_profile_tables
from bioimage_pipeline.profiles.sources import discover_profile_sources
from bioimage_pipeline.registry import read_registry

SENSOR_INTERVAL_SECONDS = sensor_interval_seconds()
#: Stores fingerprinted per tick (each costs one stat per file in the store).
MAX_FINGERPRINTS_PER_TICK = 500

# Selected by key, not by importing the asset objects: the defs folder is loaded module by module.
ALL_ASSETS = dg.AssetSelection.groups(GROUP)
PROFILE_ASSETS = dg.AssetSelection.assets("cytomining_warehouse", "joined_profiles")


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


def evaluate_store_sensor(
    bioimage: BioimageResource,
    cursor: str | None,
    now: float | None = None,
    max_fingerprints: int = MAX_FINGERPRINTS_PER_TICK,
) -> dg.SensorResult:
    now = time.time() if now is None else now
    cfg = bioimage.config()
    data = _load_cursor(cursor)
    root = cfg.stores_dir
    present = [(dataset_id_for(path, root), path, kind) for path, kind in iter_store_paths(root)]
    ids = {printable(d) for d, _, _ in present}
    offset = int(data.get("offset", 0)) % len(present) if present else 0
    visit = (present[offset:] + present[:offset])[:max_fingerprints]
    observed: dict[str, str] = {}
    for dataset_id, path, kind in visit:
        # A store that cannot be read is observed with its error, and ingested as a failure once settled.
        found = store_state(path, dataset_id, kind)
        observed[found.dataset_id] = found.fingerprint
    previous = {k: v for k, v in (data.get("stores") or {}).items() if k in ids}
    settled, state = settle(observed, previous, now, cfg.quiet_seconds)
    state.update({k: v for k, v in previous.items() if k not in observed})

    registry = read_registry(bioimage.catalog(), cfg.namespace)
    # Already asked for this exact content (a run may still be queued): do not ask again.
    requested = {k: v for k, v in (data.get("requested") or {}).items() if k in ids}
    todo = sorted(
        d for d, fp in settled.items() if (registry.get(d) or {}).get("fingerprint") != fp and requested.get(d) != fp
    )
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
    requested.update({d: settled[d] for d in todo})
    new_cursor = json.dumps({"stores": state, "offset": offset + len(visit), "requested": requested}, sort_keys=True)
    waiting = len([d for d in observed if d not in settled])
    skip = (
        None
        if requests
        else (
            f"{len(present)} stores: {waiting} still changing, the rest already catalogued"
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
