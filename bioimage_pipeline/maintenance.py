"""Table maintenance: expire old snapshots, delete the files nobody references, compact small files.

Every run replaces the files of the stores that changed, so each snapshot leaves the previous version of
those files behind; without maintenance a catalog keeps every version of every store forever (after ~40
runs one catalog held 12,432 Parquet files for 601 live ones). Maintenance keeps a table's files within a
small multiple of its live ones:

- **Snapshot expiry**: snapshots older than ``snapshot_max_age`` are expired, except the newest
  ``retain_last`` (the current snapshot is never expired). The data files, manifests and manifest lists
  that only expired snapshots referenced are deleted at once: no retained snapshot can read them.
- **Orphan removal**: files under a table's location that no retained snapshot or metadata file references
  and that are older than ``orphan_min_age`` are deleted: what a killed run staged and never committed.
  The age protects files a concurrent writer has staged but not yet committed.
- **Compaction**: files smaller than ``small_file_bytes`` are rewritten as fewer, in ``dataset_id`` order and
  packed as a run packs stores (a file shared by several stores holds at most ``SHARED_ROWS`` rows), in one
  snapshot per table.

Each step is a commit of its own that retries on conflict like any writer, and each is safe to run while
the pipeline runs: nothing a current or retained snapshot references is ever deleted.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from bioimage_pipeline.catalog import (
    TABLE_PROPERTIES,
    StagedFiles,
    commit_files,
    dataset_span,
    is_conflict,
    live_files,
    pack_stores,
    retry_conflicts,
    set_properties,
    write_batches,
)
from bioimage_pipeline.config import PipelineConfig

#: Keep snapshots this long (time travel, and readers still planning against an older snapshot).
DEFAULT_SNAPSHOT_MAX_AGE = timedelta(hours=1)
#: Unreferenced files younger than this may belong to a writer that has not committed yet.
DEFAULT_ORPHAN_MIN_AGE = timedelta(days=1)
#: Files below this size are compacted with the table's other small files.
DEFAULT_SMALL_FILE_BYTES = 32 * 2**20

#: Old metadata.json files are deleted by the writer itself after each commit (tables created before this
#: release get the properties here).
METADATA_PROPERTIES = {
    k: v for k, v in TABLE_PROPERTIES.items() if k.startswith("write.metadata.") and "metrics" not in k
}


@dataclass(frozen=True, kw_only=True)
class Retention:
    """What maintenance keeps (see the module docstring for what each means)."""

    snapshot_max_age: timedelta = DEFAULT_SNAPSHOT_MAX_AGE
    retain_last: int = 1
    orphan_min_age: timedelta = DEFAULT_ORPHAN_MIN_AGE
    small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES
    compact: bool = True


def retention_of(config: PipelineConfig, **overrides: object) -> Retention:
    """The retention a configuration asks for (``BIOIMAGE_SNAPSHOT_RETENTION``, ``BIOIMAGE_ORPHAN_RETENTION``)."""
    values: dict[str, object] = {
        "snapshot_max_age": config.snapshot_retention,
        "orphan_min_age": config.orphan_retention,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Retention(**values)  # type: ignore[arg-type]


@dataclass(kw_only=True)
class TableMaintenance:
    """What maintenance did to one table."""

    table: str
    snapshots_expired: int = 0
    files_deleted: int = 0
    orphans_deleted: int = 0
    files_compacted: int = 0
    live_files: int = 0
    files_on_disk: int = 0
    skipped: str | None = None


@dataclass(kw_only=True)
class MaintenanceReport:
    tables: list[TableMaintenance] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "tables": [asdict(t) for t in self.tables],
            "files_on_disk": self.files_on_disk,
            "live_files": self.live_files,
        }

    @property
    def files_on_disk(self) -> int:
        return sum(t.files_on_disk for t in self.tables)

    @property
    def live_files(self) -> int:
        return sum(t.live_files for t in self.tables)


def maintain_catalog(
    catalog: Catalog, namespace: str, retention: Retention | None = None, now: datetime | None = None
) -> MaintenanceReport:
    """Maintain every table of ``namespace``. ``now`` is the clock (tests move it forward)."""
    retention = retention or Retention()
    now = now or datetime.now(UTC)
    report = MaintenanceReport()
    try:
        identifiers = sorted(catalog.list_tables(namespace))
    except Exception:  # no namespace yet: nothing to maintain
        return report
    for identifier in identifiers:
        report.tables.append(maintain_table(catalog.load_table(identifier), identifier[-1], retention, now))
    return report


def maintain_table(table: Table, name: str, retention: Retention, now: datetime) -> TableMaintenance:
    result = TableMaintenance(table=name)
    table = set_properties(table, METADATA_PROPERTIES)
    if retention.compact:
        table = _compact(table, retention.small_file_bytes, result)
    before = _reachable(table, table.metadata.snapshots)
    table = _expire(table, retention, now, result)
    after = _reachable(table, table.metadata.snapshots)
    for path in sorted(before - after):  # only expired snapshots could read these
        with contextlib.suppress(FileNotFoundError, OSError):
            table.io.delete(path)
            result.files_deleted += 1
    keep = after | _metadata_files(table)
    cutoff = now - retention.orphan_min_age
    for path, modified in _listing(table.location()):
        if path in keep:
            continue
        if modified < cutoff:
            with contextlib.suppress(FileNotFoundError, OSError):
                table.io.delete(path)
                result.orphans_deleted += 1
    live = live_files(table)
    result.live_files = len(live)
    result.files_on_disk = sum(1 for path, _ in _listing(table.location()) if path.endswith(".parquet"))
    return result


def _expire(table: Table, retention: Retention, now: datetime, result: TableMaintenance) -> Table:
    def attempt(n: int) -> Table:
        current = table if n == 0 else table.refresh()
        snapshots = sorted(current.metadata.snapshots, key=lambda s: s.timestamp_ms)
        head = current.current_snapshot()
        keep = {s.snapshot_id for s in snapshots[-max(retention.retain_last, 1) :]}
        if head is not None:
            keep.add(head.snapshot_id)
        cutoff_ms = int((now - retention.snapshot_max_age).timestamp() * 1000)
        doomed = [s.snapshot_id for s in snapshots if s.timestamp_ms < cutoff_ms and s.snapshot_id not in keep]
        if not doomed:
            return current
        current.maintenance.expire_snapshots().by_ids(doomed).commit()
        result.snapshots_expired = len(doomed)
        return current.refresh()

    return retry_conflicts(attempt)


def _reachable(table: Table, snapshots: Iterable[Snapshot]) -> set[str]:
    """Every manifest list, manifest and data file the given snapshots reference."""
    io: FileIO = table.io
    out: set[str] = set()
    seen_manifests: set[str] = set()
    for snapshot in snapshots:
        out.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(io):
            out.add(manifest.manifest_path)
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
                out.add(entry.data_file.file_path)
    return {_plain(p) for p in out}


def _metadata_files(table: Table) -> set[str]:
    files = {table.metadata_location, *(entry.metadata_file for entry in table.metadata.metadata_log)}
    return {_plain(p) for p in files}


def _plain(location: str) -> str:
    """A location as the file system lists it (``file:///a/b`` and ``/a/b`` are one file)."""
    parsed = urlparse(location)
    return parsed.path if parsed.scheme in ("", "file") else location


def _listing(location: str) -> Iterator[tuple[str, datetime]]:
    """(path, modification time) of every file under a table's location, on any pyarrow file system."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        fs: pafs.FileSystem = pafs.LocalFileSystem()
        base = parsed.path
        prefix = ""
    else:
        fs, base = pafs.FileSystem.from_uri(location)
        prefix = f"{parsed.scheme}://"
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
    except (FileNotFoundError, OSError):
        return
    for info in infos:
        if info.type == pafs.FileType.File:
            mtime = info.mtime or datetime.now(UTC)
            yield prefix + info.path, mtime if mtime.tzinfo else mtime.replace(tzinfo=UTC)


def _compact(table: Table, small_bytes: int, result: TableMaintenance) -> Table:
    """Rewrite the table's small files as fewer, in dataset_id order and packed as a run packs stores (see
    :func:`~bioimage_pipeline.catalog.pack_stores`: a shared file stays cheap to rewrite); one commit for the
    table. A concurrent write to the table makes the rewrite stale: it is dropped, and the next maintenance
    tries again."""
    small = [f for f in live_files(table) if f.file_size_in_bytes < small_bytes]
    if any(f.name == "dataset_id" for f in table.schema().fields):
        field_id = table.schema().find_field("dataset_id").field_id
        small.sort(key=lambda f: dataset_span(table, f, field_id) or ("", ""))
        # Files of one store are merged with each other (the result is still that store's alone); a store's
        # only small file, and files shared already, are packed with their neighbours'.
        by_store: dict[str, list[DataFile]] = defaultdict(list)
        rest: list[DataFile] = []
        for data_file in small:
            span = dataset_span(table, data_file, field_id)
            if span is not None and span[0] == span[1]:
                by_store[span[0]].append(data_file)
            else:
                rest.append(data_file)
        groups = [files for files in by_store.values() if len(files) > 1]
        rest += [files[0] for files in by_store.values() if len(files) == 1]
        rest.sort(key=lambda f: dataset_span(table, f, field_id) or ("", ""))
        groups += [g for g in pack_stores((f, f.record_count) for f in rest) if len(g) > 1]
    else:
        groups = [small] if len(small) > 1 else []
    if not groups:
        return table
    staged = StagedFiles(table)
    doomed = [f for group in groups for f in group]
    try:
        for group in groups:
            write_batches(staged, _read_batches(table, group))
        commit_files(table, doomed, staged, {"bioimage.stage": "compaction"})
    except Exception as exc:
        staged.discard()
        if is_conflict(exc):
            result.skipped = "compaction skipped: the table changed meanwhile"
            return table.refresh()
        raise
    result.files_compacted = len(doomed)
    return table.refresh()


def _read_batches(table: Table, files: Sequence[DataFile]) -> Iterator[pa.RecordBatch]:
    for data_file in files:
        with table.io.new_input(data_file.file_path).open() as stream:
            yield from pq.ParquetFile(stream).iter_batches(batch_size=65_536)
