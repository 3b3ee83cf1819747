"""Incremental store ingestion: plan, scan each store in isolation, write each table once.

The same three steps serve the CLI (``register``, ``ingest``) and the Dagster assets (``store_registry``
→ ``image_assets`` → ``chunk_index``). A store is re-scanned only when its fingerprint differs from the
one its rows in ``image_assets`` and ``chunk_index`` carry; a store that fails keeps its last good rows and
is recorded as failed in ``store_registry``; a store that disappeared from the stores root loses its rows.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from bioimage_pipeline.catalog import (
    StagedFiles,
    StagedPart,
    commit_replace,
    dataset_fingerprints,
    ensure_per_store_table,
    ensure_table,
    load_table,
    pack_stores,
    write_batches,
)
from bioimage_pipeline.chunks import DEFAULT_BATCH_ROWS, ExplicitChunks, concat_explicit
from bioimage_pipeline.config import DEFAULT_MAX_CHUNK_ROWS, PipelineConfig
from bioimage_pipeline.discovery import (
    UNREADABLE,
    StoreEntry,
    StoreState,
    discover_stores,
    os_problem,
    printable,
    printable_text,
    store_state,
)
from bioimage_pipeline.errors import BioimageError, UsageError
from bioimage_pipeline.formats import default_dataset_id, detect_format, scan_store
from bioimage_pipeline.model import ArrayRecord, StoreScan
from bioimage_pipeline.registry import read_registry, registry_of
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
    #: The scan itself: released once the store's rows are staged (see :func:`write_all`); the counts below
    #: stay.
    scan: StoreScan | None = None
    #: Hierarchy conformance problems (OME-NGFF, CellMap); None when the store declares no convention.
    conformance: list[Issue] | None = None
    image_count: int = 0
    array_count: int = 0
    chunk_count: int = 0
    chunks_indexed: int = 0
    stored_bytes: int = 0

    @property
    def arrays(self) -> int:
        return self.array_count

    @property
    def chunks(self) -> int:
        return self.chunk_count


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
    #: Stores that failed before with the same content: not scanned again, reported from the registry.
    still_failed: list[StoreOutcome] = field(default_factory=list)
    #: Stores to scan, planned but not scanned yet: :func:`write_all` scans them a group at a time, so a run
    #: holds the scans of one group, not of every store (a plate's scan is tens of MB).
    pending: list[StoreState] = field(default_factory=list)
    max_chunk_rows: int = DEFAULT_MAX_CHUNK_ROWS

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
        return bool(self.outcomes or self.removed or self.pending)


def _now() -> datetime:
    return datetime.now(UTC)


def is_under(uri: str, root: Path) -> bool:
    """Whether a store location lies under a root (stores outside it are never removed by its runs)."""
    try:
        Path(uri).absolute().relative_to(root.absolute())
    except ValueError:
        return False
    return True


def registered_as(catalog: Catalog, namespace: str, path: Path, dataset_id: str | None = None) -> str:
    """The dataset_id the store at ``path`` is registered under (``dataset_id`` when given, which must be
    registered for this location). Raises UsageError when the store is not registered there."""
    registry = read_registry(catalog, namespace)
    uri = printable(Path(path).absolute())
    if dataset_id is not None:
        row = registry.get(dataset_id)
        if row is None:
            raise UsageError(f"{uri}: dataset_id {dataset_id!r} is not registered; register the store first")
        if row["uri"] != uri:
            raise UsageError(f"{uri}: dataset_id {dataset_id!r} is registered for {row['uri']}, not for this location")
        return dataset_id
    found = sorted(d for d, row in registry.items() if row["uri"] == uri)
    if not found:
        raise UsageError(f"{uri}: not registered in the catalog; register (or ingest) the store first")
    return found[0]


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
    # Rows written before chunks_indexed existed indexed every chunk.
    indexed = row.get("chunks_indexed")
    has_chunks = (row.get("chunk_count") if indexed is None else indexed) or 0
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


def scan_one(state: StoreState, max_chunk_rows: int = DEFAULT_MAX_CHUNK_ROWS) -> StoreOutcome:
    """Scan one store; any failure becomes a failed outcome with a one-line error, never an exception.

    An array whose chunk grid exceeds ``max_chunk_rows`` is indexed by its stored chunks only, or not at
    all when even those are more, with a warning saying so (see :meth:`ArrayRecord.limit_chunk_rows`)."""
    uri = printable(state.path)
    if state.error or not state.fingerprint:
        error = state.error or f"{uri}: cannot be listed"
        return StoreOutcome(state.dataset_id, uri, state.fingerprint, "failed", error=error)
    try:
        scan = scan_store(state.path, state.dataset_id)
    except BioimageError as exc:
        return StoreOutcome(state.dataset_id, uri, state.fingerprint, "failed", error=printable_text(str(exc)))
    except OSError as exc:  # the store changed under the scan (removed, permissions): that store's failure
        where = exc.filename if isinstance(exc.filename, str) else state.path
        error = f"{printable(where)}: {os_problem(exc, where)}"
        return StoreOutcome(state.dataset_id, uri, state.fingerprint, "failed", error=error)
    except Exception as exc:  # a bug or an unforeseen quirk: isolate it to this store, keep the trace
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        detail = f"{type(exc).__name__}: {exc} (at {Path(frame.filename).name}:{frame.lineno})"
        return StoreOutcome(
            state.dataset_id,
            uri,
            state.fingerprint,
            "failed",
            error=printable_text(f"{uri}: unexpected error while scanning: {' '.join(detail.split())}"),
        )
    for array in scan.arrays:
        warning = array.limit_chunk_rows(max_chunk_rows)
        if warning:
            scan.warnings.append(warning)
    return StoreOutcome(
        state.dataset_id,
        uri,
        state.fingerprint,
        "ok",
        format=scan.format,
        conformance=conformance(state.path, scan),
        warnings=[printable_text(w) for w in scan.warnings],
        scan=scan,
        image_count=len(scan.image_ids),
        array_count=len(scan.arrays),
        chunk_count=scan.chunk_count,
        chunks_indexed=scan.chunks_indexed,
        stored_bytes=sum(a.stored_bytes for a in scan.arrays),
    )


def scan_root(
    config: PipelineConfig,
    catalog: Catalog,
    only: Iterable[str] | None = None,
    states: list[StoreState] | None = None,
    lazy: bool = False,
) -> ScanBatch:
    """Plan and scan every store under the stores root (or only the selected dataset_ids). ``lazy``: plan
    only, leaving the scans to :func:`write_all` (``batch.pending``), which bounds the run's memory."""
    root = config.stores_dir
    states = discover_stores(root) if states is None else states
    registry = read_registry(catalog, config.namespace)
    assets, chunks = _ingested(catalog, config.namespace)
    selected = None if only is None else set(only)
    batch = ScanBatch(scanned_at=_now(), max_chunk_rows=config.max_chunk_rows)
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
        elif lazy:
            batch.pending.append(state)
        else:
            batch.outcomes.append(scan_one(state, config.max_chunk_rows))
    known = set(registry) | set(assets) | set(chunks)
    for dataset_id in sorted(known - present):
        row = registry.get(dataset_id)
        if row is None or is_under(row["uri"], root):
            batch.removed.append(dataset_id)
    return batch


def scan_paths(
    config: PipelineConfig,
    catalog: Catalog,
    paths: Iterable[StoreEntry | tuple[Path, str | None]],
    replace: bool = False,
    force: bool = False,
    prune: Sequence[Path] = (),
    lazy: bool = False,
) -> ScanBatch:
    """Plan and scan stores named on the command line or found in a folder (see :class:`StoreEntry`).

    A dataset_id registered for another location, or a location registered under another dataset_id,
    is refused unless ``replace`` (then the other registration's rows are removed): raised as a
    UsageError for a store named directly, recorded as refused for one found in a folder. ``prune``: folders
    whose registered stores are removed from the catalog when they are no longer in them. ``lazy``: as for
    :func:`scan_root`.
    """
    registry = read_registry(catalog, config.namespace)
    assets, chunks = _ingested(catalog, config.namespace)
    by_uri = {row["uri"]: dataset_id for dataset_id, row in registry.items()}
    batch = ScanBatch(scanned_at=_now(), max_chunk_rows=config.max_chunk_rows)
    seen: dict[str, Path] = {}
    for item in paths:
        entry = StoreEntry(*item)
        path = Path(entry.path).absolute()
        kind = detect_format(path)
        if kind is None and not entry.listed:
            if not path.exists() and not path.is_symlink():
                raise UsageError(f"{printable(path)}: does not exist")
            if path.is_dir() or path.is_file():
                raise UsageError(
                    f"{printable(path)}: not a recognised image store "
                    "(Zarr, OME-Zarr, N5, TIFF, a zipped Zarr or an HCS plate folder)"
                )
        dataset_id = entry.dataset_id or default_dataset_id(path)
        if dataset_id in seen and seen[dataset_id] != path:
            raise UsageError(
                f"dataset_id {dataset_id!r} given to both {seen[dataset_id]} and {path}; "
                "use distinct --dataset-id values"
            )
        seen[dataset_id] = path
        uri = printable(path)
        key = printable_text(dataset_id)  # how a name that is not UTF-8 is recorded
        row = registry.get(key)
        other = by_uri.get(uri)
        conflict = None
        if row is not None and row["uri"] != uri:
            conflict = (
                f"{uri}: dataset_id {dataset_id!r} is already registered for {row['uri']}; "
                "pass --replace to register this location under it instead"
            )
        elif other is not None and other != key:
            conflict = (
                f"{uri}: this location is already registered as {other!r}; pass --replace to register it as "
                f"{key!r} instead (the rows under {other!r} are removed)"
            )
        if conflict is not None and not replace:
            if not entry.listed:
                raise UsageError(conflict)
            batch.refused.append(StoreOutcome(key, uri, "", "failed", error=conflict))
            continue
        if other is not None and other != key and other not in batch.removed:
            batch.removed.append(other)
        state = store_state(path, dataset_id, kind or UNREADABLE)
        if not force and _up_to_date(state, registry, assets, chunks):
            if row is not None and row["status"] == "failed":
                # The same broken content as last time: reported again, not scanned or written again.
                batch.still_failed.append(StoreOutcome(key, uri, state.fingerprint, "failed", error=row["error"]))
            else:
                batch.unchanged.append(state.dataset_id)
        elif lazy:
            batch.pending.append(state)
        else:
            batch.outcomes.append(scan_one(state, config.max_chunk_rows))
    present = (
        {o.dataset_id for o in batch.outcomes}
        | {s.dataset_id for s in batch.pending}
        | set(batch.unchanged)
        | {o.dataset_id for o in batch.refused}
    )
    for folder in prune:
        for dataset_id, row in sorted(registry.items()):
            if dataset_id not in present and dataset_id not in batch.removed and is_under(row["uri"], folder):
                batch.removed.append(dataset_id)
    return batch


# --- writing -----------------------------------------------------------------------------------------
#
# Commit order is what keeps a killed run honest: the data tables first (chunk_index, image_assets,
# validation_issues), store_registry last, so the registry never says a store is ingested before its rows
# are there. A run killed in between leaves the registry at the previous state; the next run sees that the
# tables' fingerprints differ from the registry's and scans the store again.


@dataclass
class TableWrite:
    table: str
    rows_written: int
    datasets_replaced: int
    committed: bool
    snapshot_id: int | None = None


def stage_image_assets(staged: StagedFiles, outcomes: Sequence[StoreOutcome], scanned_at: datetime) -> None:
    """Write the image_assets rows of scanned stores into ``staged`` (no commit)."""

    def batches(group: list[StoreOutcome]) -> Iterator[pa.RecordBatch]:
        for outcome in group:
            assert outcome.scan is not None
            rows = image_asset_rows(outcome.scan, outcome.fingerprint, scanned_at)
            yield from image_assets_table(rows).to_batches()

    for group in pack_stores((o, o.arrays) for o in _in_dataset_order(outcomes)):
        write_batches(staged, batches(group))


def _in_dataset_order(outcomes: Iterable[StoreOutcome]) -> list[StoreOutcome]:
    """Stores in ``dataset_id`` order: the per-store tables' sort order, which keeps each shared data
    file's bounds to a narrow run of neighbouring stores."""
    return sorted(outcomes, key=lambda o: o.dataset_id)


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
    """The chunk_index rows of a store's arrays, in order, cut into at most ``parts`` groups of about equal
    size (never smaller than PARALLEL_MIN_ROWS): one group per writer, one data file (or more) per group."""
    chunked = [a for a in arrays if a.chunks is not None and a.chunks_indexed]
    total = sum(a.chunks_indexed for a in chunked)
    n = max(1, min(parts, total // PARALLEL_MIN_ROWS))
    per = -(-total // n) if total else 0
    groups: list[list[Segment]] = [[]]
    filled = 0
    for array in chunked:
        start = 0
        while start < array.chunks_indexed:
            take = min(per - filled, array.chunks_indexed - start)
            groups[-1].append((array, range(start, start + take)))
            start += take
            filled += take
            if filled >= per and len(groups) < n:
                groups.append([])
                filled = 0
    return [g for g in groups if g]


#: Arrays with fewer chunk rows than this are written together (see :func:`small_arrays_batches`).
SMALL_ARRAY_ROWS = 64


def small_arrays_batches(
    dataset_id: str, arrays: Sequence[ArrayRecord], fingerprint: str, max_rows: int
) -> Iterator[pa.RecordBatch]:
    """``chunk_index`` batches of many small arrays whose chunks are listed explicitly (every chunk indexed,
    one dimensionality): one set of Arrow kernels for all of them, where one per array would cost more than
    the rows (a plate has 17,280 channel files of one strip each)."""
    sources = [cast(ExplicitChunks, a.chunks) for a in arrays]
    merged = concat_explicit(sources)
    counts = np.fromiter((s.chunk_count for s in sources), np.int64, len(sources))
    where = pa.array(np.repeat(np.arange(len(arrays)), counts))
    paths = pc.take(pa.array([a.array_path for a in arrays], pa.string()), where)
    schema = arrow_schema(CHUNK_INDEX_SCHEMA)
    start = 0
    for batch in merged.batches(max_rows):
        n = batch.num_rows
        ids = [pa.repeat(pa.scalar(dataset_id, pa.string()), n), paths.slice(start, n)]
        fp = pa.repeat(pa.scalar(fingerprint, pa.string()), n)
        yield pa.RecordBatch.from_arrays([*ids, *batch.columns, fp], schema=schema)
        start += n


def is_small_explicit(array: ArrayRecord) -> bool:
    """Whether an array's rows go through :func:`small_arrays_batches`."""
    return (
        isinstance(array.chunks, ExplicitChunks)
        and array.chunk_rows == "all"
        and array.chunks.chunk_count < SMALL_ARRAY_ROWS
    )


def _segment_batches(outcome: StoreOutcome, segments: list[Segment], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The rows of a writer's segments: runs of whole small explicit arrays of one dimensionality together,
    every other array on its own."""
    run: list[ArrayRecord] = []
    for array, rows in segments:
        whole = rows.start == 0 and rows.stop == array.chunks_indexed
        if whole and is_small_explicit(array) and (not run or _ndim(run[0]) == _ndim(array)):
            run.append(array)
            continue
        if run:
            yield from small_arrays_batches(outcome.dataset_id, run, outcome.fingerprint, batch_rows)
            run = []
        if whole and is_small_explicit(array):
            run.append(array)
            continue
        yield from chunk_index_batches(outcome.dataset_id, array, outcome.fingerprint, batch_rows, rows)
    if run:
        yield from small_arrays_batches(outcome.dataset_id, run, outcome.fingerprint, batch_rows)


def _ndim(array: ArrayRecord) -> int:
    return int(cast(ExplicitChunks, array.chunks).coords.shape[1])


Task = list[tuple[StoreOutcome, list[Segment]]]


def _write_segments(table: Table, task: Task, batch_rows: int) -> StagedFiles:
    staged = StagedFiles(table)
    batches = (b for outcome, segments in task for b in _segment_batches(outcome, segments, batch_rows))
    try:
        write_batches(staged, batches, writer_options=CHUNK_WRITER_OPTIONS)
    except BaseException:
        staged.discard()
        raise
    return staged


def chunk_tasks(outcomes: Iterable[StoreOutcome], writers: int) -> list[Task]:
    """The writers' work, one data file (or more) per task: a large store's rows cut into segments of their
    own (written in parallel), smaller stores gathered by :func:`pack_stores`."""
    segments = {}
    for outcome in _in_dataset_order(outcomes):
        assert outcome.scan is not None
        segments[outcome.dataset_id] = (outcome, chunk_segments(outcome.scan.arrays, writers))
    sizes = [(d, sum(len(r) for g in groups for _, r in g)) for d, (_, groups) in segments.items()]
    tasks: list[Task] = []
    for group in pack_stores(sizes):
        if len(group) == 1:
            outcome, groups = segments[group[0]]
            tasks += [[(outcome, g)] for g in groups]
        else:
            tasks.append([(segments[d][0], segments[d][1][0]) for d in group if segments[d][1]])
    return tasks


def stage_chunk_index(
    staged: StagedFiles,
    outcomes: Sequence[StoreOutcome],
    batch_rows: int = DEFAULT_BATCH_ROWS,
    writers: int = WRITERS,
) -> None:
    """Write the chunk_index data files of scanned stores into ``staged`` (no commit; touches only the
    table's storage). On failure, the files this call wrote are removed.

    Small stores share files; a large store is cut into row segments written in parallel (Parquet encoding
    and the NumPy/Arrow kernels release the GIL).
    """
    tasks = chunk_tasks(outcomes, writers)
    table = staged.table
    written = StagedFiles(table)
    with ThreadPoolExecutor(max_workers=writers, thread_name_prefix="chunk-writer") as pool:
        futures = [pool.submit(_write_segments, table, task, batch_rows) for task in tasks]
        failure: BaseException | None = None
        for future in futures:
            try:
                part = future.result()
            except BaseException as exc:  # keep collecting so every written file can be removed
                failure = failure or exc
                continue
            written.add(part)
    if failure is not None:
        written.discard()
        raise failure
    staged.add(written)


def write_chunk_index(
    catalog: Catalog, namespace: str, batch: ScanBatch, batch_rows: int = DEFAULT_BATCH_ROWS
) -> TableWrite:
    """Only the chunk_index rows of an (eagerly scanned) batch: ``publish-chunks``."""
    staged = StagedFiles(chunk_index_table(catalog, namespace))
    stage_chunk_index(staged, batch.ok, batch_rows)
    return _commit(staged, CHUNK_INDEX, batch)


def _commit(staged: StagedFiles, name: str, batch: ScanBatch) -> TableWrite:
    replaced = batch.replaced
    summary = {"bioimage.stage": name, "bioimage.stores-replaced": str(len(replaced))}
    committed = commit_replace(staged, replaced, summary)
    snapshot = staged.table.refresh().current_snapshot()
    return TableWrite(name, staged.rows, len(replaced), committed, snapshot.snapshot_id if snapshot else None)


def registry_rows(previous: dict[str, dict[str, Any]], batch: ScanBatch) -> list[dict[str, Any]]:
    """The registry after this batch: ``previous`` rows, minus removed stores, with this batch's outcomes.

    ``previous`` is read just before committing (again after a conflict), so a concurrent writer's rows are
    kept; of two scans of one store, the later one's row wins."""
    rows = {k: dict(v) for k, v in previous.items() if k not in set(batch.removed)}
    for o in batch.outcomes:
        old = rows.get(o.dataset_id, {})
        if old.get("scanned_at") is not None and old["scanned_at"] > batch.scanned_at:
            continue  # a concurrent run scanned this store after us and committed first
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
            "chunks_indexed": old.get("chunks_indexed"),
            "stored_bytes": old.get("stored_bytes"),
        }
        if o.status == "ok":
            row.update(
                {
                    "ingested_fingerprint": o.fingerprint,
                    "ingested_at": batch.scanned_at,
                    "image_count": o.image_count,
                    "array_count": o.array_count,
                    "chunk_count": o.chunk_count,
                    "chunks_indexed": o.chunks_indexed,
                    "stored_bytes": o.stored_bytes,
                }
            )
        rows[o.dataset_id] = row
    return [rows[k] for k in sorted(rows)]


def write_registry(catalog: Catalog, namespace: str, batch: ScanBatch) -> TableWrite:
    """Rewrite ``store_registry`` (one small file) when this run scanned or removed anything. Committed
    after the data tables; merged with the rows a concurrent writer committed meanwhile."""
    table = ensure_table(catalog, namespace, STORE_REGISTRY, STORE_REGISTRY_SCHEMA)
    if not batch.changed:
        return TableWrite(STORE_REGISTRY, 0, 0, False)
    schema = arrow_schema(STORE_REGISTRY_SCHEMA)

    def stage(current: Table) -> StagedFiles:
        previous = {} if current.current_snapshot() is None else registry_of(current.scan().to_arrow())
        data = pa.Table.from_pylist(registry_rows(previous, batch), schema=schema)
        staged = StagedFiles(current)
        write_batches(staged, data.to_batches())
        return staged

    staged = stage(table)
    rows = staged.rows
    committed = commit_replace(staged, None, {"bioimage.stage": STORE_REGISTRY}, restage=stage)
    snapshot = staged.table.refresh().current_snapshot()
    return TableWrite(
        STORE_REGISTRY,
        rows,
        len(batch.outcomes) + len(batch.removed),
        committed,
        snapshot.snapshot_id if snapshot else None,
    )


def stage_validation_issues(catalog: Catalog, namespace: str, batch: ScanBatch) -> StagedFiles:
    """``validation_issues`` rows of the stores scanned in this run (and none for removed ones)."""
    table = ensure_per_store_table(catalog, namespace, VALIDATION_ISSUES, VALIDATION_ISSUES_SCHEMA)
    staged = StagedFiles(table)
    schema = arrow_schema(VALIDATION_ISSUES_SCHEMA)
    rows = []
    for outcome in _in_dataset_order(batch.ok):
        rows += [
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
    # Issues are few (a handful per store at most): one table, one file.
    if rows:
        write_batches(staged, pa.Table.from_pylist(rows, schema=schema).to_batches())
    return staged


#: A run scans and stages stores a group at a time; a group ends once its stores have this many rows
#: (image_assets and chunk_index together): about three plates of 17,280 files.
GROUP_ROWS = 100_000


def scanned_groups(batch: ScanBatch) -> Iterator[list[StoreOutcome]]:
    """The batch's scanned stores, a group at a time: those scanned already (``scan_root`` without
    ``lazy``) as one group, then the pending ones, each scanned as its turn comes and recorded in
    ``batch.outcomes``. Failed stores are recorded and not yielded."""
    ready = [o for o in batch.ok if o.scan is not None]
    if ready:
        yield ready
    group: list[StoreOutcome] = []
    rows = 0
    while batch.pending:
        outcome = scan_one(batch.pending.pop(0), batch.max_chunk_rows)
        batch.outcomes.append(outcome)
        if outcome.status != "ok":
            continue
        group.append(outcome)
        rows += outcome.array_count + outcome.chunks_indexed
        if rows >= GROUP_ROWS:
            yield group
            group, rows = [], 0
    if group:
        yield group


#: Rows of each kind a staged batch keeps for previews (the first stores' image rows, the first chunk rows).
PREVIEW_ROWS = 10


@dataclass(kw_only=True)
class StagedScan:
    """What scanning and staging a batch of stores leaves for the commit: the stores' outcomes (their scans
    released), the files staged per table, and a few rows to preview. Plain data, small whatever the stores'
    size, so a worker process can hand it on through an executor's storage."""

    outcomes: list[StoreOutcome]
    files: dict[str, StagedPart]
    image_preview: pa.Table | None = None
    chunk_preview: pa.Table | None = None


def _previews(outcomes: Sequence[StoreOutcome], scanned_at: datetime) -> tuple[pa.Table | None, pa.Table | None]:
    """The image_assets rows of the first stores and the first chunk_index rows, from the scans in memory
    (reading them back from the table would cost per data file)."""
    scans = [(o, o.scan) for o in outcomes if o.scan is not None]
    rows: list[dict[str, Any]] = []
    for outcome, scan in scans:
        rows += image_asset_rows(scan, outcome.fingerprint, scanned_at, limit=PREVIEW_ROWS - len(rows))
        if len(rows) >= PREVIEW_ROWS:
            break
    images = image_assets_table(rows) if rows else None
    for outcome, scan in scans:
        for array in scan.arrays:
            for batch in chunk_index_batches(outcome.dataset_id, array, outcome.fingerprint, PREVIEW_ROWS):
                return images, pa.Table.from_batches([batch])
    return images, None


@dataclass(kw_only=True)
class StoreBatch:
    """Stores one worker scans and stages, with what it needs of the run's plan."""

    stores: list[StoreState]
    scanned_at: datetime
    max_chunk_rows: int = DEFAULT_MAX_CHUNK_ROWS


def split_batches(plan: ScanBatch, *, most: int, min_files: int) -> list[StoreBatch]:
    """A plan's pending stores, cut into at most ``most`` batches that workers scan apart: runs of
    neighbours in ``dataset_id`` order (so each batch's shared data files cover a narrow span of stores) with
    about equal file counts, the scan's cost; no more batches than ``min_files`` files each fill (a batch
    costs a worker's start-up, which a few small stores do not repay)."""
    ordered = sorted(plan.pending, key=lambda s: s.dataset_id)
    if not ordered:
        return []
    weights = [max(1, s.file_count) for s in ordered]
    total = sum(weights)
    n = max(1, min(most, len(ordered), -(-total // max(1, min_files))))
    share = total / n
    parts: list[list[StoreState]] = [[] for _ in range(n)]
    before = 0
    for state, weight in zip(ordered, weights, strict=True):
        # By the store's middle: a store larger than a share lands in the batch it mostly falls in.
        parts[min(n - 1, int((before + weight / 2) / share))].append(state)
        before += weight
    return [
        StoreBatch(stores=part, scanned_at=plan.scanned_at, max_chunk_rows=plan.max_chunk_rows)
        for part in parts
        if part
    ]


def ensure_store_tables(catalog: Catalog, namespace: str) -> None:
    """Create (or evolve) the store tables once, before workers that only load them start."""
    ensure_per_store_table(catalog, namespace, IMAGE_ASSETS, IMAGE_ASSETS_SCHEMA)
    chunk_index_table(catalog, namespace)
    ensure_per_store_table(catalog, namespace, VALIDATION_ISSUES, VALIDATION_ISSUES_SCHEMA)
    ensure_table(catalog, namespace, STORE_REGISTRY, STORE_REGISTRY_SCHEMA)


def stage_stores(
    catalog: Catalog,
    namespace: str,
    states: Sequence[StoreState],
    *,
    scanned_at: datetime,
    max_chunk_rows: int = DEFAULT_MAX_CHUNK_ROWS,
    ready: Sequence[StoreOutcome] = (),
    chunk_batch_rows: int = DEFAULT_BATCH_ROWS,
    chunks: bool = True,
) -> StagedScan:
    """Scan ``states`` and stage their image_assets and chunk_index rows as data files of those tables,
    committing nothing (see :func:`commit_staged`). ``ready``: outcomes scanned already, staged first.

    Stores are scanned a group at a time (:func:`scanned_groups`); each group's rows are staged and its
    scans released, so memory holds one group whatever the number of stores. The chunk_index files (the
    bulk of the bytes) are written in a worker thread while the group's image rows are staged here; Parquet
    encoding releases the GIL, so the two overlap. On failure the files this call wrote are removed."""
    batch = ScanBatch(scanned_at=scanned_at, outcomes=list(ready), pending=list(states), max_chunk_rows=max_chunk_rows)
    staged: dict[str, StagedFiles] = {
        IMAGE_ASSETS: StagedFiles(ensure_per_store_table(catalog, namespace, IMAGE_ASSETS, IMAGE_ASSETS_SCHEMA))
    }
    if chunks:
        staged[CHUNK_INDEX] = StagedFiles(chunk_index_table(catalog, namespace))
    images: pa.Table | None = None
    sample: pa.Table | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chunk-index") as pool:
            for group in scanned_groups(batch):
                staging = (
                    pool.submit(stage_chunk_index, staged[CHUNK_INDEX], group, chunk_batch_rows) if chunks else None
                )
                try:
                    stage_image_assets(staged[IMAGE_ASSETS], group, batch.scanned_at)
                finally:
                    if staging is not None:
                        staging.result()
                if images is None:
                    images, sample = _previews(group, batch.scanned_at)
                for outcome in group:
                    outcome.scan = None
    except BaseException:
        for files in staged.values():
            files.discard()
        raise
    return StagedScan(
        outcomes=batch.outcomes,
        files={name: files.part() for name, files in staged.items()},
        image_preview=images,
        chunk_preview=sample,
    )


def discard_staged(catalog: Catalog, namespace: str, scans: Iterable[StagedScan]) -> None:
    """Remove the files of staged batches that will not be committed."""
    for scan in scans:
        for name, part in scan.files.items():
            table = load_table(catalog, namespace, name)
            if table is not None:
                files = StagedFiles(table)
                files.add(part)
                files.discard()


def commit_staged(catalog: Catalog, namespace: str, batch: ScanBatch, scans: Sequence[StagedScan]) -> list[TableWrite]:
    """Commit what :func:`stage_stores` staged for ``batch`` (its plan: stores unchanged, removed, refused),
    in one or many batches: every store table once at most, store_registry last. The batches' outcomes join
    ``batch.outcomes``. On failure no table moves past its last snapshot and the staged files are removed."""
    names = {name for scan in scans for name in scan.files}
    try:
        for scan in scans:
            batch.outcomes += scan.outcomes
        staged: dict[str, StagedFiles] = {}
        if IMAGE_ASSETS in names or not scans:
            staged[IMAGE_ASSETS] = StagedFiles(
                ensure_per_store_table(catalog, namespace, IMAGE_ASSETS, IMAGE_ASSETS_SCHEMA)
            )
        if CHUNK_INDEX in names or not scans:
            staged[CHUNK_INDEX] = StagedFiles(chunk_index_table(catalog, namespace))
        for scan in scans:
            for name, part in scan.files.items():
                staged[name].add(part)
        staged[VALIDATION_ISSUES] = stage_validation_issues(catalog, namespace, batch)
    except BaseException:
        discard_staged(catalog, namespace, scans)
        raise
    writes: dict[str, TableWrite] = {}
    try:
        for name in (CHUNK_INDEX, IMAGE_ASSETS, VALIDATION_ISSUES):
            if name in staged:
                writes[name] = _commit(staged[name], name, batch)
    except BaseException:
        for files in staged.values():
            files.discard()
        raise
    registry = write_registry(catalog, namespace, batch)
    return [registry, *(writes[name] for name in (VALIDATION_ISSUES, IMAGE_ASSETS, CHUNK_INDEX) if name in writes)]


def write_all(
    catalog: Catalog,
    namespace: str,
    batch: ScanBatch,
    chunk_batch_rows: int = DEFAULT_BATCH_ROWS,
    chunks: bool = True,
) -> list[TableWrite]:
    """Every store table for one batch, in this process: its pending stores scanned and staged
    (:func:`stage_stores`), then committed (:func:`commit_staged`)."""
    scan = stage_stores(
        catalog,
        namespace,
        batch.pending,
        scanned_at=batch.scanned_at,
        max_chunk_rows=batch.max_chunk_rows,
        ready=batch.outcomes,
        chunk_batch_rows=chunk_batch_rows,
        chunks=chunks,
    )
    batch.pending, batch.outcomes = [], []
    return commit_staged(catalog, namespace, batch, [scan])
