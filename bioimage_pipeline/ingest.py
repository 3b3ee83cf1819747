"""Incremental store ingestion: plan, scan each store in isolation, write each table once.

The same three steps serve the CLI (``register``, ``ingest``) and the Dagster assets (``scanned_stores``
→ ``image_assets`` → ``chunk_index``). A store is re-scanned only when its fingerprint differs from the
one its rows in ``image_assets`` and ``chunk_index`` carry; a store that fails keeps its last good rows and
is recorded as failed in ``store_registry``; a store that disappeared from the stores root loses its rows.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import traceback
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from bioimage_pipeline.catalog import (
    StagedFiles,
    commit_replace,
    dataset_fingerprints,
    ensure_per_store_table,
    ensure_table,
    load_table,
    read_table,
    write_batches,
)
from bioimage_pipeline.chunks import DEFAULT_BATCH_ROWS
from bioimage_pipeline.config import PipelineConfig
from bioimage_pipeline.discovery import StoreState, discover_stores, fingerprint_store
from bioimage_pipeline.errors import BioimageError, StoreError, UsageError
from bioimage_pipeline.formats import default_dataset_id, detect_format, scan_store
from bioimage_pipeline.model import ArrayRecord, StoreScan
from bioimage_pipeline.tables import (
    CHUNK_INDEX,
    CHUNK_INDEX_SCHEMA,
    IMAGE_ASSETS,
    IMAGE_ASSETS_SCHEMA,
    STORE_REGISTRY,
    STORE_REGISTRY_SCHEMA,
    VALIDATION_ISSUES,
    VALIDATION_ISSUES_SCHEMA,
    arrow_schema,
    chunk_index_batches,
    image_asset_rows,
    image_assets_table,
)

if TYPE_CHECKING:
    from bioimage_pipeline.validation import Issue


@dataclass
class StoreOutcome:
    """The result of scanning one store in this run."""

    dataset_id: str
    uri: str
    fingerprint: str
    status: str  # "ok" or "failed"
    format: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    scan: StoreScan | None = None
    #: Hierarchy conformance problems (OME-NGFF, CellMap); None when the store declares no convention.
    conformance: list[Issue] | None = None

    @property
    def arrays(self) -> int:
        return len(self.scan.arrays) if self.scan else 0

    @property
    def chunks(self) -> int:
        return self.scan.chunk_count if self.scan else 0


@dataclass
class ScanBatch:
    """What one run scanned, left alone, and removed; handed from stage to stage."""

    scanned_at: datetime
    outcomes: list[StoreOutcome] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: Stores present but not selected this run (a sensor's run asks only for the settled ones).
    deferred: list[str] = field(default_factory=list)
    #: Stores refused before scanning (identity conflicts); never written anywhere.
    refused: list[StoreOutcome] = field(default_factory=list)

    @property
    def ok(self) -> list[StoreOutcome]:
        return [o for o in self.outcomes if o.status == "ok"]

    @property
    def failed(self) -> list[StoreOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def replaced(self) -> list[str]:
        """Datasets whose rows this run replaces or deletes."""
        return sorted({o.dataset_id for o in self.ok} | set(self.removed))

    @property
    def changed(self) -> bool:
        return bool(self.outcomes or self.removed)


def _now() -> datetime:
    return datetime.now(UTC)


def is_under(uri: str, root: Path) -> bool:
    """Whether a store location lies under a root (stores outside it are never removed by its runs)."""
    try:
        Path(uri).absolute().relative_to(root.absolute())
    except ValueError:
        return False
    return True


def read_registry(catalog: Catalog, namespace: str) -> dict[str, dict[str, Any]]:
    table = read_table(catalog, namespace, STORE_REGISTRY)
    return {} if table is None else {row["dataset_id"]: row for row in table.to_pylist()}


def _ingested(catalog: Catalog, namespace: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    assets = dataset_fingerprints(load_table(catalog, namespace, IMAGE_ASSETS))
    chunks = dataset_fingerprints(load_table(catalog, namespace, CHUNK_INDEX))
    return assets, chunks


def _up_to_date(
    state: StoreState,
    registry: dict[str, dict[str, Any]],
    assets: dict[str, set[str]],
    chunks: dict[str, set[str]],
) -> bool:
    row = registry.get(state.dataset_id)
    if row is None or row["fingerprint"] != state.fingerprint or not state.fingerprint:
        return False
    if row["status"] == "failed":
        return True  # the same broken content: do not retry until it changes
    if assets.get(state.dataset_id) != {state.fingerprint}:
        return False
    has_chunks = (row.get("chunk_count") or 0) > 0
    return chunks.get(state.dataset_id) == {state.fingerprint} if has_chunks else state.dataset_id not in chunks


def conformance(path: Path, scan: StoreScan) -> list[Issue] | None:
    """Every OME-NGFF / CellMap problem of a store that declares one of those conventions: at its root,
    or else at each image group the scan found (an N5 container of COSEM multiscales, say)."""
    if scan.format not in ("ome-zarr", "n5"):
        return None
    # Imported here: only stores that declare a convention need the validator.
    from bioimage_pipeline.validation import Issue
    from bioimage_pipeline.validation import check as validate

    try:
        report = validate(path)
        if report.models:
            return report.issues
        issues: list[Issue] = []
        checked = False
        for image_id in scan.image_ids:
            if image_id == "/" or "#" in image_id:
                continue
            sub = validate(path / image_id)
            checked = checked or bool(sub.models)
            if sub.models:
                issues += sub.issues  # node paths are relative to the store root already
    except BioimageError as exc:
        return [Issue("/", "store.unreadable", "error", str(exc))]
    return issues if checked else None


def scan_one(state: StoreState) -> StoreOutcome:
    """Scan one store; any failure becomes a failed outcome with a one-line error, never an exception."""
    if not state.fingerprint:
        return StoreOutcome(
            state.dataset_id,
            str(state.path),
            state.fingerprint,
            "failed",
            error=f"{state.path}: cannot be listed",
        )
    try:
        scan = scan_store(state.path, state.dataset_id)
    except BioimageError as exc:
        return StoreOutcome(state.dataset_id, str(state.path), state.fingerprint, "failed", error=str(exc))
    except Exception as exc:  # a bug or an unforeseen quirk: isolate it to this store, keep the trace
        where = traceback.extract_tb(exc.__traceback__)[-1]
        detail = f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"
        return StoreOutcome(
            state.dataset_id,
            str(state.path),
            state.fingerprint,
            "failed",
            error=f"{state.path}: unexpected error while scanning: {' '.join(detail.split())}",
        )
    return StoreOutcome(
        state.dataset_id,
        str(state.path),
        state.fingerprint,
        "ok",
        format=scan.format,
        conformance=conformance(state.path, scan),
        warnings=list(scan.warnings),
        scan=scan,
    )


def scan_root(
    config: PipelineConfig,
    catalog: Catalog,
    only: Iterable[str] | None = None,
    states: list[StoreState] | None = None,
) -> ScanBatch:
    """Plan and scan every store under the stores root (or only the selected dataset_ids)."""
    root = config.stores_dir
    states = discover_stores(root) if states is None else states
    registry = read_registry(catalog, config.namespace)
    assets, chunks = _ingested(catalog, config.namespace)
    selected = None if only is None else set(only)
    batch = ScanBatch(scanned_at=_now())
    present = {s.dataset_id for s in states}
    for state in states:
        row = registry.get(state.dataset_id)
        if row is not None and not is_under(row["uri"], root) and Path(row["uri"]) != state.path:
            batch.refused.append(
                StoreOutcome(
                    state.dataset_id,
                    str(state.path),
                    state.fingerprint,
                    "failed",
                    error=f"{state.path}: dataset_id {state.dataset_id!r} is already registered for {row['uri']}",
                )
            )
            continue
        if _up_to_date(state, registry, assets, chunks):
            batch.unchanged.append(state.dataset_id)
        elif selected is not None and state.dataset_id not in selected:
            batch.deferred.append(state.dataset_id)
        else:
            batch.outcomes.append(scan_one(state))
    known = set(registry) | set(assets) | set(chunks)
    for dataset_id in sorted(known - present):
        row = registry.get(dataset_id)
        if row is None or is_under(row["uri"], root):
            batch.removed.append(dataset_id)
    return batch


def scan_paths(
    config: PipelineConfig,
    catalog: Catalog,
    paths: Iterable[tuple[Path, str | None]],
    replace: bool = False,
    force: bool = False,
) -> ScanBatch:
    """Plan and scan stores named on the command line: (path, dataset_id or None for the file name)."""
    registry = read_registry(catalog, config.namespace)
    assets, chunks = _ingested(catalog, config.namespace)
    batch = ScanBatch(scanned_at=_now())
    seen: dict[str, Path] = {}
    for raw_path, explicit_id in paths:
        path = Path(raw_path).absolute()
        if detect_format(path) is None:
            if not path.exists():
                raise UsageError(f"{path}: does not exist")
            raise UsageError(f"{path}: not a recognised image store (Zarr, OME-Zarr, N5, TIFF or a zipped Zarr)")
        dataset_id = explicit_id or default_dataset_id(path)
        if dataset_id in seen and seen[dataset_id] != path:
            raise UsageError(
                f"dataset_id {dataset_id!r} given to both {seen[dataset_id]} and {path}; "
                "use distinct --dataset-id values"
            )
        seen[dataset_id] = path
        row = registry.get(dataset_id)
        if row is not None and Path(row["uri"]) != path and not replace:
            raise UsageError(
                f"dataset_id {dataset_id!r} is already registered for {row['uri']}; "
                "pass --replace to register {path} under it instead".replace("{path}", str(path))
            )
        try:
            fp, count, total, newest = fingerprint_store(path)
        except StoreError as exc:
            raise UsageError(str(exc)) from exc
        state = StoreState(dataset_id, path, detect_format(path) or "", fp, count, total, newest)
        if not force and _up_to_date(state, registry, assets, chunks) and (row or {}).get("status") == "ok":
            batch.unchanged.append(dataset_id)
        else:
            batch.outcomes.append(scan_one(state))
    return batch


# --- writing -----------------------------------------------------------------------------------------


@dataclass
class TableWrite:
    table: str
    rows_written: int
    datasets_replaced: int
    committed: bool
    snapshot_id: int | None = None


def write_image_assets(catalog: Catalog, namespace: str, batch: ScanBatch) -> TableWrite:
    table = ensure_per_store_table(catalog, namespace, IMAGE_ASSETS, IMAGE_ASSETS_SCHEMA)
    staged = StagedFiles(table)
    for outcome in batch.ok:
        assert outcome.scan is not None
        rows = image_asset_rows(outcome.scan, outcome.fingerprint, batch.scanned_at)
        write_batches(staged, image_assets_table(rows).to_batches(), outcome.dataset_id)
    return _commit(staged, IMAGE_ASSETS, batch)


#: chunk_index has millions of rows of unique keys: dictionary-encode only the per-store constants, skip
#: statistics nobody prunes on, and compress lightly. About twice as fast as the defaults.
CHUNK_WRITER_OPTIONS = {
    "compression_level": 1,
    "use_dictionary": ["dataset_id", "array_path", "fingerprint"],
    "write_statistics": ["dataset_id", "array_path", "fingerprint", "stored", "byte_offset", "byte_length"],
}


#: No column metrics where the writer keeps no statistics (and nothing prunes on them).
CHUNK_TABLE_PROPERTIES = {
    "write.metadata.metrics.column.chunk_coords.element": "none",
    "write.metadata.metrics.column.storage_key": "none",
}


def chunk_index_table(catalog: Catalog, namespace: str) -> Table:
    return ensure_per_store_table(catalog, namespace, CHUNK_INDEX, CHUNK_INDEX_SCHEMA, CHUNK_TABLE_PROPERTIES)


#: A store's chunk rows are split across parallel writers only beyond this many rows per writer.
PARALLEL_MIN_ROWS = 262_144
WRITERS = max(1, min(4, os.cpu_count() or 1))

Segment = tuple[ArrayRecord, range]


def chunk_segments(arrays: Sequence[ArrayRecord], parts: int) -> list[list[Segment]]:
    """The chunk rows of a store's arrays, in order, cut into at most ``parts`` groups of about equal size
    (never smaller than PARALLEL_MIN_ROWS): one group per writer, one data file (or more) per group."""
    chunked = [a for a in arrays if a.chunks is not None and a.chunk_count]
    total = sum(a.chunk_count for a in chunked)
    n = max(1, min(parts, total // PARALLEL_MIN_ROWS))
    per = -(-total // n) if total else 0
    groups: list[list[Segment]] = [[]]
    filled = 0
    for array in chunked:
        start = 0
        while start < array.chunk_count:
            take = min(per - filled, array.chunk_count - start)
            groups[-1].append((array, range(start, start + take)))
            start += take
            filled += take
            if filled >= per and len(groups) < n:
                groups.append([])
                filled = 0
    return [g for g in groups if g]


def _write_segments(table: Table, outcome: StoreOutcome, segments: list[Segment], batch_rows: int) -> StagedFiles:
    staged = StagedFiles(table)
    batches = itertools.chain.from_iterable(
        chunk_index_batches(outcome.dataset_id, array, outcome.fingerprint, batch_rows, rows)
        for array, rows in segments
    )
    try:
        write_batches(staged, batches, outcome.dataset_id, writer_options=CHUNK_WRITER_OPTIONS)
    except BaseException:
        staged.discard()
        raise
    return staged


def stage_chunk_index(
    table: Table, batch: ScanBatch, batch_rows: int = DEFAULT_BATCH_ROWS, writers: int = WRITERS
) -> StagedFiles:
    """Write the chunk_index data files of a batch (no commit; touches only the table's storage).

    Each store streams into its own file(s); a large store is cut into row segments written in parallel
    (Parquet encoding and the NumPy/Arrow kernels release the GIL).
    """
    tasks = []
    for outcome in batch.ok:
        assert outcome.scan is not None
        tasks += [(outcome, group) for group in chunk_segments(outcome.scan.arrays, writers)]
    staged = StagedFiles(table)
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="chunk-writer") as pool:
        futures = [pool.submit(_write_segments, table, outcome, group, batch_rows) for outcome, group in tasks]
        failure: BaseException | None = None
        for future in futures:
            try:
                part = future.result()
            except BaseException as exc:  # keep collecting so every written file can be removed
                failure = failure or exc
                continue
            staged.paths += part.paths
            staged.footers.update(part.footers)
            staged.rows += part.rows
    if failure is not None:
        staged.discard()
        raise failure
    return staged


def write_chunk_index(
    catalog: Catalog, namespace: str, batch: ScanBatch, batch_rows: int = DEFAULT_BATCH_ROWS
) -> TableWrite:
    return _commit(stage_chunk_index(chunk_index_table(catalog, namespace), batch, batch_rows), CHUNK_INDEX, batch)


def _commit(staged: StagedFiles, name: str, batch: ScanBatch) -> TableWrite:
    replaced = batch.replaced
    summary = {"bioimage.stage": name, "bioimage.stores-replaced": str(len(replaced))}
    committed = commit_replace(staged, replaced, summary)
    snapshot = staged.table.refresh().current_snapshot()
    return TableWrite(name, staged.rows, len(replaced), committed, snapshot.snapshot_id if snapshot else None)


def registry_rows(previous: dict[str, dict[str, Any]], batch: ScanBatch) -> list[dict[str, Any]]:
    rows = {k: dict(v) for k, v in previous.items() if k not in set(batch.removed)}
    for o in batch.outcomes:
        old = rows.get(o.dataset_id, {})
        row = {
            "dataset_id": o.dataset_id,
            "uri": o.uri,
            "format": o.format or old.get("format"),
            "status": o.status,
            "error": o.error,
            "warnings": o.warnings or None,
            "fingerprint": o.fingerprint,
            "scanned_at": batch.scanned_at,
            "ingested_fingerprint": old.get("ingested_fingerprint"),
            "ingested_at": old.get("ingested_at"),
            "image_count": old.get("image_count"),
            "array_count": old.get("array_count"),
            "chunk_count": old.get("chunk_count"),
            "stored_bytes": old.get("stored_bytes"),
        }
        if o.status == "ok" and o.scan is not None:
            row.update(
                {
                    "ingested_fingerprint": o.fingerprint,
                    "ingested_at": batch.scanned_at,
                    "image_count": len(o.scan.image_ids),
                    "array_count": len(o.scan.arrays),
                    "chunk_count": o.scan.chunk_count,
                    "stored_bytes": sum(a.stored_bytes for a in o.scan.arrays),
                }
            )
        rows[o.dataset_id] = row
    return [rows[k] for k in sorted(rows)]


def write_registry(catalog: Catalog, namespace: str, batch: ScanBatch) -> TableWrite:
    """Rewrite ``store_registry`` (one small file) when this run scanned or removed anything."""
    table = ensure_table(catalog, namespace, STORE_REGISTRY, STORE_REGISTRY_SCHEMA)
    staged = StagedFiles(table)
    if not batch.changed:
        return TableWrite(STORE_REGISTRY, 0, 0, False)
    rows = registry_rows(read_registry(catalog, namespace), batch)
    data = pa.Table.from_pylist(rows, schema=arrow_schema(STORE_REGISTRY_SCHEMA))
    write_batches(staged, data.to_batches())
    committed = commit_replace(staged, None, {"bioimage.stage": STORE_REGISTRY})
    snapshot = table.refresh().current_snapshot()
    return TableWrite(
        STORE_REGISTRY,
        data.num_rows,
        len(batch.outcomes) + len(batch.removed),
        committed,
        snapshot.snapshot_id if snapshot else None,
    )


def write_validation_issues(catalog: Catalog, namespace: str, batch: ScanBatch) -> TableWrite:
    """``validation_issues`` rows of the stores scanned in this run (and none for removed ones)."""
    table = ensure_per_store_table(catalog, namespace, VALIDATION_ISSUES, VALIDATION_ISSUES_SCHEMA)
    staged = StagedFiles(table)
    schema = arrow_schema(VALIDATION_ISSUES_SCHEMA)
    for outcome in batch.ok:
        rows = [
            {
                "dataset_id": outcome.dataset_id,
                "node_path": i.path,
                "model": i.rule.split(".")[0],
                "rule": i.rule,
                "severity": i.severity,
                "message": i.message,
                "fingerprint": outcome.fingerprint,
            }
            for i in outcome.conformance or []
        ]
        if rows:
            write_batches(staged, pa.Table.from_pylist(rows, schema=schema).to_batches(), outcome.dataset_id)
    return _commit(staged, VALIDATION_ISSUES, batch)


def write_all(
    catalog: Catalog,
    namespace: str,
    batch: ScanBatch,
    chunk_batch_rows: int = DEFAULT_BATCH_ROWS,
    chunks: bool = True,
) -> list[TableWrite]:
    """Registry, image_assets and chunk_index for one batch: one snapshot each at most.

    The chunk_index files (the bulk of the bytes) are written in a worker thread while the small tables
    are committed here; Parquet encoding releases the GIL, so the two overlap. Commits stay on this thread.
    """
    if not chunks:
        return [
            write_registry(catalog, namespace, batch),
            write_validation_issues(catalog, namespace, batch),
            write_image_assets(catalog, namespace, batch),
        ]
    table = chunk_index_table(catalog, namespace)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-index") as pool:
        staging = pool.submit(stage_chunk_index, table, batch, chunk_batch_rows)
        try:
            writes = [
                write_registry(catalog, namespace, batch),
                write_validation_issues(catalog, namespace, batch),
                write_image_assets(catalog, namespace, batch),
            ]
        except BaseException:
            with contextlib.suppress(Exception):
                staging.result().discard()
            raise
        staged = staging.result()
    return [*writes, _commit(staged, CHUNK_INDEX, batch)]
