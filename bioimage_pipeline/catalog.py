"""Iceberg I/O: the catalog, its tables, and writes that make exactly one snapshot per table per run.

Per-store tables are partitioned by ``dataset_id``. A run streams the new rows of each changed store into
Parquet data files under the table's location, then commits one OVERWRITE snapshot that drops the data
files of changed and removed stores and adds the new ones. Nothing else is rewritten, memory stays at one
batch, and a run that changes nothing commits nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.catalog import load_catalog as _pyiceberg_load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import In, Reference
from pyiceberg.expressions.literals import literal
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_file_to_data_file,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestEntryStatus
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.utils.config import Config
from sqlalchemy.exc import IntegrityError, OperationalError

from bioimage_pipeline.config import PipelineConfig, embedded_catalog_properties
from bioimage_pipeline.tables import FIRST_RELEASE_LAST_ID, dataset_partition_spec, first_release

T = TypeVar("T")

#: Rows per Parquet data file before a writer rolls over to the next file.
FILE_ROWS = 8_000_000
#: Smaller batches than this are gathered before they are written.
COALESCE_ROWS = 65_536

TABLE_PROPERTIES = {
    # Sensor runs and CLI runs may commit concurrently; a conflicting commit is retried on fresh metadata.
    "commit.retry.num-retries": "10",
    "commit.retry.min-wait-ms": "100",
    "write.parquet.compression-codec": "zstd",
    # Exact per-file bounds for the identity columns, so freshness checks read manifests, not data.
    "write.metadata.metrics.column.dataset_id": "full",
    "write.metadata.metrics.column.fingerprint": "full",
    # Each commit writes a metadata.json; the writer deletes all but the last few.
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "10",
}


def catalog_properties(config: PipelineConfig) -> dict[str, str]:
    """The catalog's properties: PyIceberg's own configuration, then the embedded SQLite defaults for any
    key it leaves unset, then ``config.catalog_properties``."""
    configured: dict[str, Any] = dict(Config().get_catalog_config(config.catalog_name) or {})
    props = {k: str(v) for k, v in configured.items()}
    defaults = embedded_catalog_properties(config.default_catalog_dir)
    if "uri" not in props and "type" not in props:
        props.update(defaults)
    elif "warehouse" not in props and props.get("type", "sql") == "sql":
        props["warehouse"] = defaults["warehouse"]
    props.update(config.catalog_properties)
    return props


def load_catalog(config: PipelineConfig) -> Catalog:
    """``load_catalog("bioimage")`` with this project's defaults; creates the embedded catalog's folder."""
    props = catalog_properties(config)
    uri = props.get("uri", "")
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    warehouse = props.get("warehouse", "")
    if warehouse.startswith("file:"):
        Path(urlparse(warehouse).path).mkdir(parents=True, exist_ok=True)
    for attempt in range(5):
        try:
            return _pyiceberg_load_catalog(config.catalog_name, **props)
        except OperationalError as exc:
            # A new SQL catalog creates its own tables; a second process doing the same at the same moment
            # finds them made. They are there now: load again.
            if "already exists" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except (NamespaceAlreadyExistsError, IntegrityError):
        # A concurrent writer created it between the check and the insert (SQLite reports the latter).
        if not catalog.namespace_exists(namespace):
            raise


def ensure_table(
    catalog: Catalog,
    namespace: str,
    name: str,
    schema: Schema | pa.Schema,
    partition_by_dataset: bool = False,
    properties: dict[str, str] | None = None,
) -> Table:
    """Load the table, creating it on first use (``properties`` add to the defaults). A table written by an
    earlier release gains the columns ``schema`` has and it lacks (one schema update).

    A table of this release's explicit schemas is created with its first release's columns and then evolved
    (see :data:`~bioimage_pipeline.tables.FIRST_RELEASE_LAST_ID`), so its field ids are the literal ones
    whether it is new or old."""
    identifier = (namespace, name)
    try:
        return _add_missing_columns(catalog.load_table(identifier), schema)
    except NoSuchTableError:
        pass
    ensure_namespace(catalog, namespace)
    create: Schema | pa.Schema = schema
    if isinstance(schema, pa.Schema):
        spec: PartitionSpec = UNPARTITIONED_PARTITION_SPEC
    else:
        spec = dataset_partition_spec(schema) if partition_by_dataset else UNPARTITIONED_PARTITION_SPEC
        if name in FIRST_RELEASE_LAST_ID:
            create = first_release(schema, FIRST_RELEASE_LAST_ID[name])
    try:
        # Our Parquet files carry the field ids of table.schema().as_arrow(), so no name mapping is needed.
        table = catalog.create_table(
            identifier, schema=create, partition_spec=spec, properties={**TABLE_PROPERTIES, **(properties or {})}
        )
    except TableAlreadyExistsError:
        table = catalog.load_table(identifier)
    return _add_missing_columns(table, schema)


def _add_missing_columns(table: Table, schema: Schema | pa.Schema) -> Table:
    """``table`` with every column of ``schema`` (an explicit schema of this release) that it lacks added.

    Columns are matched by name and only ever added (optional) or promoted, never dropped or renamed, so
    files written before keep their meaning; two writers evolving at once is a conflict retried like any."""
    if not isinstance(schema, Schema):
        return table

    def attempt(n: int) -> Table:
        current = table if n == 0 else table.refresh()
        have = {f.name for f in current.schema().fields}
        if all(f.name in have for f in schema.fields):
            return current
        with current.update_schema() as update:
            update.union_by_name(schema)
        return current.refresh()

    return retry_conflicts(attempt)


def load_table(catalog: Catalog, namespace: str, name: str) -> Table | None:
    try:
        return catalog.load_table((namespace, name))
    except NoSuchTableError:
        return None


def read_table(
    catalog: Catalog, namespace: str, name: str, columns: tuple[str, ...] = ("*",), row_filter: Any = None
) -> pa.Table | None:
    table = load_table(catalog, namespace, name)
    if table is None:
        return None
    scan = (
        table.scan(selected_fields=columns)
        if row_filter is None
        else table.scan(row_filter=row_filter, selected_fields=columns)
    )
    return scan.to_arrow()


# --- writing -----------------------------------------------------------------------------------------


@dataclass
class StagedFiles:
    """Parquet files written for one table in this run, not yet committed."""

    table: Table
    paths: list[str] = field(default_factory=list)
    rows: int = 0
    #: Per path: the footer and size the writer produced, so committing never re-reads a file.
    footers: dict[str, tuple[pq.FileMetaData, int]] = field(default_factory=dict)

    def discard(self) -> None:
        for path in self.paths:
            with contextlib.suppress(OSError):
                self.table.io.delete(path)
        self.paths.clear()
        self.footers.clear()


def _partition_dir(dataset_id: str | None) -> str:
    # PyIceberg's file IO takes paths literally (no percent-decoding): keep folder names plain, and unique
    # by a hash since two dataset_ids may sanitise alike.
    if dataset_id is None:
        return "all"
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset_id)[:80]
    return f"dataset_id={plain}-{hashlib.sha256(dataset_id.encode()).hexdigest()[:8]}"


def write_batches(
    staged: StagedFiles,
    batches: Iterable[pa.RecordBatch],
    dataset_id: str | None = None,
    schema: pa.Schema | None = None,
    writer_options: dict[str, Any] | None = None,
) -> int:
    """Stream batches into new Parquet data files of the staged table; returns the rows written.

    ``writer_options`` go to :class:`pyarrow.parquet.ParquetWriter` (encodings, statistics)."""
    target = schema if schema is not None else staged.table.schema().as_arrow()
    location = staged.table.location().rstrip("/")
    written = 0
    writer: pq.ParquetWriter | None = None
    stream: Any = None
    pool = pa.default_memory_pool()
    footer: list[pq.FileMetaData] = []
    rows_in_file = 0

    def close() -> None:
        nonlocal writer, stream
        if writer is not None:
            writer.close()
            size = stream.tell()
            stream.close()
            staged.footers[staged.paths[-1]] = (footer[-1], size)
        writer = stream = None

    def write(batch: pa.RecordBatch) -> None:
        nonlocal writer, stream, rows_in_file, written
        if writer is None or rows_in_file >= FILE_ROWS:
            close()
            path = f"{location}/data/{_partition_dir(dataset_id)}/{uuid.uuid4().hex}.parquet"
            stream = staged.table.io.new_output(path).create(overwrite=False)
            writer = pq.ParquetWriter(
                stream, target, metadata_collector=footer, **{"compression": "zstd", **(writer_options or {})}
            )
            staged.paths.append(path)
            rows_in_file = 0
        writer.write_batch(batch)
        # mimalloc keeps freed pages for reuse; hand them back so peak memory stays one batch deep however
        # many batches a file takes.
        pool.release_unused()
        rows_in_file += batch.num_rows
        written += batch.num_rows

    # Small batches (a plate's 17,280 channel files give a few chunk rows each) are gathered into one
    # before writing: a Parquet row group per tiny batch would cost more than the rows.
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            # By name: a table evolved from an earlier release may order or type its columns differently.
            pending.append(conform(batch, target))
            pending_rows += batch.num_rows
            if pending_rows >= COALESCE_ROWS:
                write(pending[0] if len(pending) == 1 else pa.concat_batches(pending))
                pending, pending_rows = [], 0
        if pending:
            write(pending[0] if len(pending) == 1 else pa.concat_batches(pending))
    finally:
        close()
    staged.rows += written
    return written


def _data_files(table: Table, footers: Mapping[str, tuple[pq.FileMetaData, int]]) -> list[DataFile]:
    """The DataFiles of Parquet files we wrote with the table's own schema, from the footers their writers
    returned. PyIceberg's ``parquet_file_to_data_file`` would re-read each footer and re-derive the schema to
    check a compatibility that holds by construction; the statistics are computed the same way, with the
    statistics plan and column mapping worked out once for all files (per file they dominate for many
    small stores)."""
    metadata = table.metadata
    schema = metadata.schema()
    plan = compute_statistics_plan(schema, metadata.properties)
    mapping = parquet_path_to_id_mapping(schema)
    return [_data_file(metadata, schema, plan, mapping, path, footer, size) for path, (footer, size) in footers.items()]


def _data_file(
    metadata: Any, schema: Schema, plan: Any, mapping: Any, path: str, footer: pq.FileMetaData, size: int
) -> DataFile:
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=footer, stats_columns=plan, parquet_column_mapping=mapping
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=statistics.partition(metadata.spec(), schema),
        file_size_in_bytes=size,
        sort_order_id=None,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


def live_files(table: Table, dataset_ids: Iterable[str] | None = None) -> list[DataFile]:
    """The DataFiles of the current snapshot; only those of ``dataset_ids`` when given.

    Per-store tables are partitioned by dataset_id, so the files of some stores are picked by their partition
    value: a filter expression with thousands of ids would be bound once per file and per id while planning."""
    if table.current_snapshot() is None:
        return []
    if dataset_ids is not None and not _partitioned_by_dataset(table):
        wanted_list = list(dataset_ids)
        if not wanted_list:
            return []
        values = {literal(d) for d in wanted_list}
        return [
            task.file for task in table.scan(row_filter=In(term=Reference("dataset_id"), values=values)).plan_files()
        ]
    files = [task.file for task in table.scan().plan_files()]
    if dataset_ids is None:
        return files
    wanted = set(dataset_ids)
    return [f for f in files if f.partition[0] in wanted]


def _partitioned_by_dataset(table: Table) -> bool:
    spec = table.spec()
    if len(spec.fields) != 1:
        return False
    source = table.schema().find_field(spec.fields[0].source_id).name
    return source == "dataset_id" and str(spec.fields[0].transform) == "identity"


#: Failures that mean "another writer committed first": the commit is planned again against the table as it
#: now is. PyIceberg raises CommitFailedException when the catalog's pointer moved, ValidationException when
#: a concurrent snapshot touched what this one replaces; SQLite reports a concurrent write as a lock.
COMMIT_CONFLICTS: tuple[type[Exception], ...] = (CommitFailedException, ValidationException, OperationalError)
#: Attempts before giving up; with the backoff below, about a minute of contention.
COMMIT_ATTEMPTS = 40


def is_conflict(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError):
        return "locked" in str(exc) or "busy" in str(exc)
    return isinstance(exc, COMMIT_CONFLICTS)


def _pause(attempt: int) -> None:
    """Exponential backoff with jitter, so two writers that collided do not collide again in step."""
    time.sleep(min(0.05 * 2**attempt, 2.0) * random.uniform(0.5, 1.5))


def retry_conflicts(action: Callable[[int], T]) -> T:
    """``action(attempt)`` until it does not raise a commit conflict (at most COMMIT_ATTEMPTS times)."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return action(attempt)
        except Exception as exc:
            if not is_conflict(exc) or attempt == COMMIT_ATTEMPTS - 1:
                raise
            _pause(attempt)
    raise AssertionError("unreachable")


def set_properties(table: Table, properties: Mapping[str, str]) -> Table:
    """Set table properties in one commit (retried on conflict); nothing when they are already set."""

    def attempt(n: int) -> Table:
        current = table if n == 0 else table.refresh()
        if all(current.properties.get(k) == v for k, v in properties.items()):
            return current
        with current.transaction() as tx:
            tx.set_properties(dict(properties))
        return current.refresh()

    return retry_conflicts(attempt)


def commit_files(
    table: Table,
    doomed: Sequence[DataFile],
    staged: StagedFiles,
    summary: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
) -> None:
    """One OVERWRITE snapshot that removes ``doomed`` and adds the staged files (no retry: a conflict
    raises; see :func:`commit_replace` for the writer that re-plans)."""
    # Built against the table's metadata, not the transaction's: each read of tx.table_metadata re-applies
    # the pending updates to a deep copy, which is slow for wide schemas.
    added = _data_files(table, {p: staged.footers[p] for p in staged.paths if p in staged.footers}) + [
        parquet_file_to_data_file(table.io, table.metadata, p) for p in staged.paths if p not in staged.footers
    ]
    with table.transaction() as tx:
        if properties and any(table.properties.get(k) != v for k, v in properties.items()):
            tx.set_properties(dict(properties))
        with tx.update_snapshot(snapshot_properties=summary or {}).overwrite() as producer:
            for data_file in doomed:
                producer.delete_data_file(data_file)
            for data_file in added:
                producer.append_data_file(data_file)


def commit_replace(
    staged: StagedFiles,
    replace: Iterable[str] | None,
    summary: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
    restage: Callable[[Table], StagedFiles] | None = None,
) -> bool:
    """One commit, one snapshot: drop the live files of the ``replace`` datasets (all files when None), add
    the staged ones, and set table ``properties``. Returns False, committing nothing, when there is
    nothing to drop or add.

    A conflict with a concurrent writer is retried: the files to drop are planned again on the refreshed
    table (so two writers replacing the same store leave exactly one copy, and writers of different stores
    both land). When the staged content itself depends on the table (``store_registry`` merges its rows
    with the current ones), ``restage`` writes it again from the refreshed table. On failure the staged
    files are removed; the table stays at its last snapshot.
    """
    replace_ids = None if replace is None else sorted(set(replace))
    current = staged

    def attempt(n: int) -> bool:
        nonlocal current
        table = current.table if n == 0 else current.table.refresh()
        if n and restage is not None:
            current.discard()
            current = restage(table)
        current.table = table
        doomed = [] if replace_ids == [] else live_files(table, replace_ids)
        if not doomed and not current.paths:
            return False
        commit_files(table, doomed, current, summary, properties)
        return True

    try:
        committed = retry_conflicts(attempt)
    except BaseException:
        current.discard()
        raise
    staged.table = current.table
    current.paths.clear()
    staged.paths.clear()
    return committed


def dataset_fingerprints(table: Table | None) -> dict[str, set[str]]:
    """dataset_id → fingerprints present in a per-store table, read from manifest bounds only."""
    if table is None or table.current_snapshot() is None:
        return {}
    schema = table.schema()
    fp_field = schema.find_field("fingerprint").field_id
    out: dict[str, set[str]] = {}
    for data_file in live_files(table):
        dataset_id = data_file.partition[0]
        lower = data_file.lower_bounds.get(fp_field)
        upper = data_file.upper_bounds.get(fp_field)
        values = out.setdefault(dataset_id, set())
        for bound in (lower, upper):
            if bound is not None:
                values.add(bytes(bound).decode("utf-8"))
    return out


def ensure_per_store_table(
    catalog: Catalog, namespace: str, name: str, schema: Schema, properties: dict[str, str] | None = None
) -> Table:
    return ensure_table(catalog, namespace, name, schema, partition_by_dataset=True, properties=properties)


# --- tables whose schema follows their data (profile tables, joined_profiles) -------------------------


def conform(data: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.Table | pa.RecordBatch:
    """``data`` with exactly ``schema``'s columns: missing ones null, others cast (raises if impossible)."""
    if data.schema.equals(schema):
        return data
    index = {name: i for i, name in enumerate(data.schema.names)}
    columns = []
    for f in schema:
        i = index.get(f.name)
        if i is None:
            columns.append(pa.nulls(data.num_rows, f.type))
            continue
        column = data.column(i)
        columns.append(column if column.type == f.type else column.cast(f.type))
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(columns, schema=schema)
    return pa.Table.from_arrays(columns, schema=schema)


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    # Iceberg has no null type; an all-null column becomes text.
    if not any(pa.types.is_null(f.type) for f in schema):
        return schema
    return pa.schema([pa.field(f.name, pa.string() if pa.types.is_null(f.type) else f.type) for f in schema])


def _fits(table: Table, schema: pa.Schema) -> bool:
    """Whether rows of ``schema`` can be written to the table as it is (no new or retyped columns)."""
    current = table.schema().as_arrow()
    index = {f.name: f.type for f in current}
    for f in schema:
        if f.name not in index:
            return False
        try:
            pa.nulls(0, f.type).cast(index[f.name])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
    return True


def _reshape(catalog: Catalog, namespace: str, name: str, table: Table, schema: pa.Schema) -> Table | None:
    """The table with exactly ``schema``'s columns (new ones added, ones the data no longer has removed),
    or None after dropping it when a column changed type incompatibly. A concurrent writer's schema change
    is a conflict like any other: retried, never a reason to drop the table."""

    def attempt(n: int) -> Table | None:
        current = table if n == 0 else table.refresh()
        extra = [f.name for f in current.schema().as_arrow() if f.name not in set(schema.names)]
        if not extra and _fits(current, schema):
            return current
        try:
            with current.update_schema() as update:
                update.union_by_name(schema)
                for column in extra:
                    update.delete_column(column)
        except Exception as exc:
            if is_conflict(exc):
                raise
            return None  # not expressible as an evolution (a column's type changed)
        return current.refresh()

    reshaped = retry_conflicts(attempt)
    if reshaped is None or not _fits(reshaped, schema):
        with contextlib.suppress(NoSuchTableError):  # a concurrent writer dropped it first
            catalog.drop_table((namespace, name))
        return None
    return reshaped


def replace_table(
    catalog: Catalog,
    namespace: str,
    name: str,
    data: pa.Table | pa.RecordBatchReader,
    summary: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
) -> int:
    """Replace a whole table's rows in one commit, its schema made ``data``'s (or the table recreated when a
    column's type changed incompatibly: these tables are derived data). Returns rows written."""
    schema = _plain_schema(data.schema)
    table = load_table(catalog, namespace, name)
    if table is not None:
        table = _reshape(catalog, namespace, name, table, schema)
    if table is None:
        table = ensure_table(catalog, namespace, name, schema)
    target = table.schema().as_arrow()
    staged = StagedFiles(table)
    batches = data.to_batches() if isinstance(data, pa.Table) else data
    try:
        write_batches(
            staged,
            (conform(b.cast(_plain_schema(b.schema)) if b.num_rows else b, target) for b in batches),
            schema=target,
        )
        commit_replace(staged, None, summary, properties)
    except BaseException:
        staged.discard()
        raise
    return staged.rows


def added_files(table: Table | None) -> list[DataFile]:
    """The data files the current snapshot added: what the last commit wrote (read from its own manifests)."""
    snapshot = table.current_snapshot() if table is not None else None
    if table is None or snapshot is None:
        return []
    out = []
    for manifest in snapshot.manifests(table.io):
        if manifest.added_snapshot_id != snapshot.snapshot_id:
            continue
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            if entry.status == ManifestEntryStatus.ADDED and entry.snapshot_id == snapshot.snapshot_id:
                out.append(entry.data_file)
    return out


def total_rows(table: Table | None) -> int:
    """Rows in the table's current snapshot, from its summary (no file is read)."""
    value = snapshot_property(table, "total-records")
    return int(value) if value else 0


def null_count(table: Table | None, column: str) -> int:
    """Nulls in ``column`` over the current snapshot's files, from the manifests' statistics (no data file is
    read; the table must keep counts for the column, which Iceberg's default metrics do)."""
    if table is None or table.current_snapshot() is None:
        return 0
    field_id = table.schema().find_field(column).field_id
    return sum((f.null_value_counts or {}).get(field_id, 0) for f in live_files(table))


def snapshot_property(table: Table | None, key: str) -> str | None:
    snapshot = table.current_snapshot() if table is not None else None
    if snapshot is None:
        return None
    summary = snapshot.summary
    return summary.additional_properties.get(key) if summary is not None else None
