"""Iceberg I/O: the catalog, its tables, and writes that make exactly one snapshot per table per run.

Per-store tables are unpartitioned and sorted by ``dataset_id``; a data file holds the rows of one store (up
to the table's target file size) or of several consecutive small ones (up to :data:`SHARED_ROWS` rows, see
:func:`pack_stores`). So the number of files grows with the rows, not with the number of stores: 17,280
one-TIFF stores make one file per table, not 17,280; a large Zarr store fills files of its own. The exact
``dataset_id`` bounds of each file (full metrics) say which stores it may hold.

A run streams the new rows of its changed stores into new data files under the table's location, then
commits one OVERWRITE snapshot: files holding only replaced stores are dropped (metadata only), files that
also hold other stores are rewritten without the replaced rows (copy-on-write, at most SHARED_ROWS rows
each), and the new files are added. Memory stays at one batch, and a run that changes
nothing commits nothing. Tables written by earlier releases, partitioned by ``dataset_id``, are evolved to
this layout on open; their files keep their partition value, which says the same as the bounds.
"""

from __future__ import annotations

import bisect
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
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
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestEntryStatus
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import IdentityTransform
from pyiceberg.utils.config import Config
from sqlalchemy.exc import IntegrityError, OperationalError

from bioimage_pipeline.config import PipelineConfig, embedded_catalog_properties
from bioimage_pipeline.tables import FIRST_RELEASE_LAST_ID, first_release

T = TypeVar("T")

#: Rows per Parquet data file before a writer rolls over to the next file.
FILE_ROWS = 8_000_000
#: Smaller batches than this are gathered before they are written (a row group each): up to this many rows
#: or this many bytes, whichever comes first, so a 4,000-column table's row groups stay ~64 MB.
COALESCE_ROWS = 65_536
COALESCE_BYTES = 64 * 2**20
#: A data file shared by several stores holds at most this many rows, so replacing one of them rewrites at
#: most this much (a fraction of a second), whatever the target size; a store with at least SHARED_ROWS / 2
#: rows fills files of its own, which a replacement drops unread.
SHARED_ROWS = 131_072
#: A writer starts a new data file once the current one reaches this many bytes (Iceberg's own table
#: property ``write.target-file-size-bytes`` overrides it per table). It bounds the files of one large store;
#: shared files are bounded by SHARED_ROWS first.
TARGET_FILE_BYTES = 64 * 2**20

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
    "write.target-file-size-bytes": str(TARGET_FILE_BYTES),
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
    per_store: bool = False,
    properties: dict[str, str] | None = None,
) -> Table:
    """Load the table, creating it on first use (``properties`` add to the defaults). A table written by an
    earlier release gains the columns ``schema`` has and it lacks (one schema update).

    A table of this release's explicit schemas is created with its first release's columns and then evolved
    (see :data:`~bioimage_pipeline.tables.FIRST_RELEASE_LAST_ID`), so its field ids are the literal ones
    whether it is new or old. A ``per_store`` table is sorted by ``dataset_id``; one an earlier release
    partitioned by it loses the partition field (its files keep theirs)."""
    identifier = (namespace, name)
    try:
        table = _add_missing_columns(catalog.load_table(identifier), schema)
        return _unpartition(table) if per_store else table
    except NoSuchTableError:
        pass
    ensure_namespace(catalog, namespace)
    create: Schema | pa.Schema = schema
    sort_order = SortOrder()
    if isinstance(schema, Schema):
        if name in FIRST_RELEASE_LAST_ID:
            create = first_release(schema, FIRST_RELEASE_LAST_ID[name])
        if per_store:
            sort_order = SortOrder(
                SortField(source_id=schema.find_field("dataset_id").field_id, transform=IdentityTransform())
            )
    try:
        # Our Parquet files carry the field ids of table.schema().as_arrow(), so no name mapping is needed.
        table = catalog.create_table(
            identifier,
            schema=create,
            partition_spec=UNPARTITIONED_PARTITION_SPEC,
            sort_order=sort_order,
            properties={**TABLE_PROPERTIES, **(properties or {})},
        )
    except TableAlreadyExistsError:
        table = catalog.load_table(identifier)
    return _add_missing_columns(table, schema)


def _unpartition(table: Table) -> Table:
    """A table an earlier release partitioned by ``dataset_id``, evolved to one unpartitioned spec sorted by
    it (one commit, retried on conflict); any other table as it is."""

    def attempt(n: int) -> Table:
        current = table if n == 0 else table.refresh()
        if not current.spec().fields:
            return current
        with current.transaction() as tx:
            with tx.update_spec() as update:
                for f in current.spec().fields:
                    update.remove_field(f.name)
            if current.sort_order().is_unsorted:
                with tx.update_sort_order() as order:
                    order.asc("dataset_id", IdentityTransform())
        return current.refresh()

    return retry_conflicts(attempt)


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


@dataclass(kw_only=True)
class StagedPart:
    """Files staged for a table, without the table itself: plain data (paths, Parquet footers, a row count)
    that a worker process hands to the one that commits, through any executor's storage."""

    paths: list[str] = field(default_factory=list)
    #: Per path: the footer and size the writer produced, so committing never re-reads a file.
    footers: dict[str, tuple[pq.FileMetaData, int]] = field(default_factory=dict)
    rows: int = 0


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

    def part(self) -> StagedPart:
        """What was staged, detached from the table (see :class:`StagedPart`)."""
        return StagedPart(paths=list(self.paths), footers=dict(self.footers), rows=self.rows)

    def add(self, part: StagedPart | StagedFiles) -> None:
        """Take over files staged elsewhere (another writer, another process) for this table."""
        self.paths += part.paths
        self.footers.update(part.footers)
        self.rows += part.rows


K = TypeVar("K")


def pack_stores(sizes: Iterable[tuple[K, int]], shared_rows: int | None = None) -> list[list[K]]:
    """Stores (in dataset_id order, with their row counts) grouped into the data files they are written to:
    a store of ``shared_rows / 2`` rows or more alone, runs of smaller neighbours together up to
    ``shared_rows`` rows (default :data:`SHARED_ROWS`)."""
    shared_rows = SHARED_ROWS if shared_rows is None else shared_rows
    groups: list[list[K]] = []
    pack: list[K] = []
    packed = 0
    for key, rows in sizes:
        alone = rows >= shared_rows // 2
        if pack and (alone or packed + rows > shared_rows):
            groups.append(pack)
            pack, packed = [], 0
        if alone:
            groups.append([key])
            continue
        pack.append(key)
        packed += rows
    if pack:
        groups.append(pack)
    return groups


def target_file_bytes(table: Table) -> int:
    """The size at which a writer of ``table`` starts a new data file."""
    try:
        return int(table.properties.get("write.target-file-size-bytes", TARGET_FILE_BYTES))
    except ValueError:
        return TARGET_FILE_BYTES


def write_batches(
    staged: StagedFiles,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema | None = None,
    writer_options: dict[str, Any] | None = None,
) -> int:
    """Stream batches into new Parquet data files of the staged table; returns the rows written.

    One call writes one group of :func:`pack_stores` (or a table that is not per store): a new file starts
    only when the current one reaches the table's target size or FILE_ROWS. Rows in ``dataset_id`` order keep
    each file's bounds narrow.
    ``writer_options`` go to :class:`pyarrow.parquet.ParquetWriter` (encodings, statistics)."""
    target = schema if schema is not None else staged.table.schema().as_arrow()
    location = staged.table.location().rstrip("/")
    target_bytes = target_file_bytes(staged.table)
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
        # The stream's position counts the row groups already flushed: the file ends near the target.
        if writer is None or rows_in_file >= FILE_ROWS or stream.tell() >= target_bytes:
            close()
            path = f"{location}/data/{uuid.uuid4().hex}.parquet"
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
    pending_rows = pending_bytes = 0
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            # By name: a table evolved from an earlier release may order or type its columns differently.
            pending.append(conform(batch, target))
            pending_rows += batch.num_rows
            pending_bytes += batch.nbytes
            if pending_rows >= COALESCE_ROWS or pending_bytes >= COALESCE_BYTES:
                write(pending[0] if len(pending) == 1 else pa.concat_batches(pending))
                pending, pending_rows, pending_bytes = [], 0, 0
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
    # Imported here: PyIceberg's Arrow module costs most of a second, which reading commands need not pay.
    from pyiceberg.io.pyarrow import compute_statistics_plan, parquet_path_to_id_mapping

    metadata = table.metadata
    schema = metadata.schema()
    plan = compute_statistics_plan(schema, metadata.properties)
    mapping = parquet_path_to_id_mapping(schema)
    return [_data_file(metadata, schema, plan, mapping, path, footer, size) for path, (footer, size) in footers.items()]


def _data_file(
    metadata: Any, schema: Schema, plan: Any, mapping: Any, path: str, footer: pq.FileMetaData, size: int
) -> DataFile:
    from pyiceberg.io.pyarrow import data_file_statistics_from_parquet_metadata

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
    """The DataFiles of the current snapshot; when ``dataset_ids`` are given, only those that may hold rows of
    them (a file holding several stores is listed when its ``dataset_id`` bounds span one of the ids).

    Picked from the manifests' bounds in Python: a filter expression with thousands of ids would be bound
    once per file and per id while planning."""
    if table.current_snapshot() is None:
        return []
    files = [task.file for task in table.scan().plan_files()]
    if dataset_ids is None:
        return files
    wanted = sorted(set(dataset_ids))
    if not wanted:
        return []
    field_id = table.schema().find_field("dataset_id").field_id
    out = []
    for data_file in files:
        span = dataset_span(table, data_file, field_id)
        if span is None:
            out.append(data_file)  # no bounds: it may hold anything
            continue
        i = bisect.bisect_left(wanted, span[0])
        if i < len(wanted) and wanted[i] <= span[1]:
            out.append(data_file)
    return out


def dataset_span(table: Table, data_file: DataFile, field_id: int | None = None) -> tuple[str, str] | None:
    """The lowest and highest ``dataset_id`` in a data file: its partition value in a file an earlier release
    partitioned by ``dataset_id``, else its exact column bounds; None when neither is known."""
    spec = table.specs().get(data_file.spec_id)
    if spec is not None and spec.fields:
        value = data_file.partition[0]
        return (value, value) if isinstance(value, str) else None
    if field_id is None:
        field_id = table.schema().find_field("dataset_id").field_id
    lower = (data_file.lower_bounds or {}).get(field_id)
    upper = (data_file.upper_bounds or {}).get(field_id)
    if lower is None or upper is None:
        return None
    return bytes(lower).decode("utf-8"), bytes(upper).decode("utf-8")


def _read_columns(table: Table, data_file: DataFile, columns: Sequence[str]) -> pa.Table:
    with table.io.new_input(data_file.file_path).open() as stream:
        return pq.read_table(stream, columns=list(columns))


def datasets_in(table: Table, files: Iterable[DataFile]) -> set[str]:
    """The dataset_ids the given data files hold: from the bounds where a file holds one store, else from
    its ``dataset_id`` column (one small dictionary-encoded column)."""
    field_id = table.schema().find_field("dataset_id").field_id
    out: set[str] = set()
    for data_file in files:
        span = dataset_span(table, data_file, field_id)
        if span is not None and span[0] == span[1]:
            out.add(span[0])
        else:
            out.update(pc.unique(_read_columns(table, data_file, ["dataset_id"]).column(0)).to_pylist())
    out.discard(None)
    return out


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
    staged: StagedFiles | Sequence[StagedFiles],
    summary: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
) -> None:
    """One OVERWRITE snapshot that removes ``doomed`` and adds the staged files (no retry: a conflict
    raises; see :func:`commit_replace` for the writer that re-plans)."""
    # Built against the table's metadata, not the transaction's: each read of tx.table_metadata re-applies
    # the pending updates to a deep copy, which is slow for wide schemas.
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    added: list[DataFile] = []
    for part in [staged] if isinstance(staged, StagedFiles) else staged:
        added += _data_files(table, {p: part.footers[p] for p in part.paths if p in part.footers})
        added += [parquet_file_to_data_file(table.io, table.metadata, p) for p in part.paths if p not in part.footers]
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
    """One commit, one snapshot: drop the rows of the ``replace`` datasets (all files when None), add
    the staged ones, and set table ``properties``. Returns False, committing nothing, when there is
    nothing to drop or add.

    A file holding only replaced stores is dropped; one that also holds other stores is rewritten without
    the replaced rows, in the same commit (see :func:`plan_replacement`).

    A conflict with a concurrent writer is retried: the files to drop are planned again on the refreshed
    table (so two writers replacing the same store leave exactly one copy, and writers of different stores
    both land). When the staged content itself depends on the table (``store_registry`` merges its rows
    with the current ones), ``restage`` writes it again from the refreshed table. On failure the staged
    files are removed; the table stays at its last snapshot.
    """
    replace_ids = None if replace is None else sorted(set(replace))
    current = staged
    rewritten = StagedFiles(staged.table)

    def attempt(n: int) -> bool:
        nonlocal current, rewritten
        table = current.table if n == 0 else current.table.refresh()
        if n and restage is not None:
            current.discard()
            current = restage(table)
        current.table = table
        rewritten.discard()
        if replace_ids is None:
            doomed, rewritten = live_files(table), StagedFiles(table)
        else:
            doomed, rewritten = plan_replacement(table, replace_ids)
        if not doomed and not current.paths:
            return False
        commit_files(table, doomed, [current, rewritten], summary, properties)
        return True

    try:
        committed = retry_conflicts(attempt)
    except BaseException:
        current.discard()
        rewritten.discard()
        raise
    staged.table = current.table
    current.paths.clear()
    staged.paths.clear()
    return committed


def plan_replacement(table: Table, dataset_ids: Sequence[str]) -> tuple[list[DataFile], StagedFiles]:
    """What replacing ``dataset_ids`` in a per-store table takes: the data files to drop, and the staged
    rewrites of those among them that also hold other stores (their rows without the replaced ones).

    Files of one store are known from their bounds and dropped unread; a shared file is read only when its
    bounds span a replaced id, first its ``dataset_id`` column, and rewritten only when it holds one."""
    doomed: list[DataFile] = []
    rewritten = StagedFiles(table)
    wanted = set(dataset_ids)
    if not wanted:
        return doomed, rewritten
    field_id = table.schema().find_field("dataset_id").field_id
    try:
        for data_file in live_files(table, dataset_ids):
            span = dataset_span(table, data_file, field_id)
            if span is not None and span[0] == span[1]:
                doomed.append(data_file)
                continue
            held = set(pc.unique(_read_columns(table, data_file, ["dataset_id"]).column(0)).to_pylist())
            if not held & wanted:
                continue
            doomed.append(data_file)
            if held - wanted:
                write_batches(rewritten, _batches_without(table, data_file, wanted))
    except BaseException:
        rewritten.discard()
        raise
    return doomed, rewritten


def _batches_without(table: Table, data_file: DataFile, dataset_ids: set[str]) -> Iterator[pa.RecordBatch]:
    drop = pa.array(sorted(dataset_ids), pa.string())
    with table.io.new_input(data_file.file_path).open() as stream:
        for batch in pq.ParquetFile(stream).iter_batches(batch_size=65_536):
            keep = pc.invert(pc.is_in(batch.column("dataset_id"), value_set=drop))
            yield batch.filter(keep)


def dataset_fingerprints(table: Table | None) -> dict[str, set[str]]:
    """dataset_id → fingerprints present in a per-store table: from manifest bounds for files of one store,
    from their two identity columns for files shared by several."""
    if table is None or table.current_snapshot() is None:
        return {}
    schema = table.schema()
    id_field = schema.find_field("dataset_id").field_id
    fp_field = schema.find_field("fingerprint").field_id
    out: dict[str, set[str]] = {}
    for data_file in live_files(table):
        span = dataset_span(table, data_file, id_field)
        if span is None or span[0] != span[1]:
            for dataset_id, fingerprint in _identity_pairs(table, data_file):
                out.setdefault(dataset_id, set()).add(fingerprint)
            continue
        values = out.setdefault(span[0], set())
        for bound in (data_file.lower_bounds.get(fp_field), data_file.upper_bounds.get(fp_field)):
            if bound is not None:
                values.add(bytes(bound).decode("utf-8"))
    return out


def _identity_pairs(table: Table, data_file: DataFile) -> set[tuple[str, str]]:
    """The distinct (dataset_id, fingerprint) pairs of a data file shared by several stores, from the two
    columns read dictionary-encoded: the cost is one small integer per row, never the strings per row.
    Only small stores share files (a store's rows past the target size fill files of their own), so what
    this reads grows with the rows of small stores, not with the big ones'."""
    with table.io.new_input(data_file.file_path).open() as stream:
        data = pq.read_table(
            stream, columns=["dataset_id", "fingerprint"], read_dictionary=["dataset_id", "fingerprint"]
        )
    pairs: set[tuple[str, str]] = set()
    for ids, fps in zip(data.column(0).chunks, data.column(1).chunks, strict=True):
        if not isinstance(ids, pa.DictionaryArray) or not isinstance(fps, pa.DictionaryArray):
            pairs.update(zip(ids.to_pylist(), fps.to_pylist(), strict=True))
            continue
        width = max(len(fps.dictionary), 1)
        codes = ids.indices.to_numpy(zero_copy_only=False).astype(np.int64) * width + fps.indices.to_numpy(
            zero_copy_only=False
        )
        id_names, fp_names = ids.dictionary.to_pylist(), fps.dictionary.to_pylist()
        pairs.update((id_names[c // width], fp_names[c % width]) for c in np.unique(codes).tolist())
    return {(d, f) for d, f in pairs if d is not None and f is not None}


def ensure_per_store_table(
    catalog: Catalog, namespace: str, name: str, schema: Schema, properties: dict[str, str] | None = None
) -> Table:
    return ensure_table(catalog, namespace, name, schema, per_store=True, properties=properties)


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
    return all(f.name in index and _widens(f.type, index[f.name]) for f in schema)


def _widens(source: pa.DataType, target: pa.DataType) -> bool:
    """Whether every value of ``source`` is the same value in ``target``: the type itself, or a wider integer
    or float. (Arrow casts text to numbers too, but that would change values, not store them.)"""
    if source == target or pa.types.is_null(source):
        return True
    if pa.types.is_integer(source) and pa.types.is_integer(target):
        return target.bit_width >= source.bit_width and pa.types.is_signed_integer(target)
    if pa.types.is_floating(source) and pa.types.is_floating(target):
        return target.bit_width >= source.bit_width
    return False


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


def profile_table_layout(key_columns: Sequence[str]) -> dict[str, str]:
    """Table properties for tables as wide as a plate's profiles (thousands of feature columns): statistics
    for the key columns only, and larger data files. Every data file's manifest entry carries statistics per
    column, so statistics on 4,000 columns would make each commit copy megabytes of manifest for bounds no
    query prunes on (see :func:`profile_writer_options` for the Parquet side)."""
    return {
        "write.metadata.metrics.default": "none",
        **{f"write.metadata.metrics.column.{c}": "full" for c in key_columns},
        "write.target-file-size-bytes": str(512 * 2**20),
    }


def profile_writer_options(schema: pa.Schema, key_columns: Sequence[str]) -> dict[str, Any]:
    """Parquet writer options to go with :func:`profile_table_layout`: column statistics for the keys only,
    and dictionary encoding for text and integers but not floats (a feature's floats rarely repeat, and
    trying a dictionary on each of 4,000 columns costs more than the write itself)."""
    return {
        "write_statistics": [c for c in key_columns if c in schema.names],
        "use_dictionary": [f.name for f in schema if not pa.types.is_floating(f.type)],
    }


def replace_table(
    catalog: Catalog,
    namespace: str,
    name: str,
    data: pa.Table | pa.RecordBatchReader,
    summary: dict[str, str] | None = None,
    properties: dict[str, str] | None = None,
    layout: Mapping[str, str] | None = None,
    writer_options: dict[str, Any] | None = None,
) -> int:
    """Replace a whole table's rows in one commit, its schema made ``data``'s (or the table recreated when a
    column's type changed incompatibly: these tables are derived data). Returns rows written. ``layout``:
    table properties that decide how the files are written (see :func:`profile_table_layout`), set before
    writing; ``properties`` are set with the commit; ``writer_options`` go to the Parquet writer."""
    schema = _plain_schema(data.schema)
    table = load_table(catalog, namespace, name)
    if table is not None:
        table = _reshape(catalog, namespace, name, table, schema)
    if table is None:
        table = ensure_table(catalog, namespace, name, schema, properties=dict(layout or {}))
    elif layout and any(table.properties.get(k) != v for k, v in layout.items()):
        table = set_properties(table, layout)
    target = table.schema().as_arrow()
    staged = StagedFiles(table)
    batches = data.to_batches() if isinstance(data, pa.Table) else data
    try:
        write_batches(
            staged,
            (conform(b.cast(_plain_schema(b.schema)) if b.num_rows else b, target) for b in batches),
            schema=target,
            writer_options=writer_options,
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
