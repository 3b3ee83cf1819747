"""``joined_profiles``: every profile row exactly once, with the images it was measured on.

Rows keep all their profile columns and gain ``profile_table`` (the source table), ``image_matched`` and
per-image columns as lists aligned with each other (one entry per linked level-0 image: a site whose
channels are separate files has one entry per file). Image columns share a prefix no profile column
starts with, so they can never collide. The links are gathered into lists in DuckDB (narrow: a few columns
per link); the profile rows, however wide, stream past them a batch at a time (see :func:`streamed_join`).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from bioimage_pipeline.catalog import (
    conform,
    live_files,
    load_table,
    profile_table_layout,
    profile_writer_options,
    replace_table,
    snapshot_property,
)
from bioimage_pipeline.duck import connect_catalog, register_table
from bioimage_pipeline.profiles.kinds import (
    COMPARTMENT_PROPERTY,
    LEVEL_PROPERTY,
    joined_order,
    joined_table_name,
    published_joined_tables,
    table_kind,
)
from bioimage_pipeline.profiles.normalize import KEY_COLUMNS, ROW_ID
from bioimage_pipeline.profiles.pipeline import (
    FINGERPRINT_KEY,
    LINKS_TABLE,
    LOGIC_VERSION,
    PreparedProfiles,
    links_table,
)
from bioimage_pipeline.sql import quote_identifier, quote_literal
from bioimage_pipeline.tables import IMAGE_ASSETS, JOINED_PROFILES

IMAGE_PREFIX = "image__"
PROFILE_TABLE = "profile_table"
IMAGE_MATCHED = "image_matched"
#: Image attributes carried into joined rows, as lists aligned by link.
IMAGE_FIELDS = ("dataset_id", "image_id", "channel", "uri", "format", "dtype", "shape", "axes")


def image_prefix(columns: Sequence[str]) -> str:
    """``image__``, or with more underscores until no profile column starts with it (compared without case,
    as SQL compares names)."""
    prefix = IMAGE_PREFIX
    lowered = [c.lower() for c in columns]
    while any(c.startswith(prefix) for c in lowered):
        prefix += "_"
    return prefix


@dataclass
class JoinStats:
    """What a build of the joined tables found and did."""

    #: Rows, and rows linked to an image, per profile table.
    rows: dict[str, int] = field(default_factory=dict)
    matched: dict[str, int] = field(default_factory=dict)
    #: Joined table → the profile tables it holds (``joined_profiles`` first).
    tables: dict[str, list[str]] = field(default_factory=dict)
    #: Joined table → the prefix of its image columns.
    prefixes: dict[str, str] = field(default_factory=dict)
    #: Joined table → its schema as it stands after the build.
    schemas: dict[str, pa.Schema] = field(default_factory=dict)
    #: Joined tables this build committed, and those it dropped (their kind has no profile table any more).
    committed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_matched(self) -> int:
        return sum(self.matched.values())

    def prefix(self, joined: str = JOINED_PROFILES) -> str:
        return self.prefixes.get(joined, IMAGE_PREFIX)

    def joined_of(self, table: str) -> str | None:
        """The joined table holding profile table ``table``."""
        return next((j for j, members in self.tables.items() if table in members), None)


def _profile_renames(columns: Sequence[str]) -> dict[str, str]:
    # Normalisation keeps these names free; a table published before it did is still never read wrongly.
    return {c: c + "__profile" for c in columns if c.lower() in (PROFILE_TABLE, IMAGE_MATCHED)}


# A plate's profile table is thousands of columns by hundreds of thousands of rows. Joined in SQL (a join,
# eight ordered list aggregates and an ORDER BY over every column) DuckDB holds or spills all of it; instead
# only the narrow side — each linked row's image lists — is computed, with one sort of the links, and the wide
# side streams past it a batch at a time, each row finding its images by ``profile_row`` (which numbers a
# table's rows from 0).


#: Profile rows whose image lists are gathered at a time: a plate's rows link ~5 channel files each, so a
#: window holds ~300,000 links, whatever the table's size.
LINK_WINDOW_ROWS = 65_536


def _link_lists(con: duckdb.DuckDBPyConnection, name: str, start: int = 0, stop: int | None = None) -> pa.Table:
    """Per linked row of profile table ``name`` (rows ``start`` up to ``stop``): ``profile_row``, its link
    count ``n`` and the image columns as lists aligned by link (ordered by rank, channel, image and array).
    ``con`` has ``image_assets`` and ``profile_links``."""
    window = f"AND l.{ROW_ID} >= {int(start)}" + (f" AND l.{ROW_ID} < {int(stop)}" if stop is not None else "")
    # A link to a channel file says its channel; a link to a whole image gets the image's channel names.
    channel = "coalesce(l.channel, array_to_string(i.channel_names, ','))"
    sources = {"dataset_id": "l.dataset_id", "image_id": "l.image_id", "channel": channel}
    fields = ", ".join(f"{sources.get(f, 'i.' + f)} AS {f}" for f in IMAGE_FIELDS)
    rows = _arrow(
        con,
        f"""
        SELECT l.{ROW_ID}, {fields}
        FROM {LINKS_TABLE} l
        -- A link names one array of its image (a plate site's channel file) or, with array_path null, all.
        JOIN (SELECT * FROM {IMAGE_ASSETS} WHERE level = 0 AND kind = 'image') i
          ON i.dataset_id = l.dataset_id AND i.image_id = l.image_id
         AND (l.array_path IS NULL OR l.array_path = i.array_path)
        WHERE l.profile_table = {quote_literal(name)} {window}
        ORDER BY l.{ROW_ID}, l.rank, l.channel, l.dataset_id, l.image_id, i.array_path""",
    )
    ids = rows.column(ROW_ID).to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], dtype=np.int64)
    offsets = pa.array(np.r_[starts, len(ids)], pa.int32())
    columns = {ROW_ID: pa.array(ids[starts], pa.int64()), "n": pa.array(np.diff(offsets.to_numpy()), pa.int32())}
    for f in IMAGE_FIELDS:
        columns[f] = pa.ListArray.from_arrays(offsets, rows.column(f).combine_chunks())
    return pa.table(columns)


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    result = con.sql(sql).to_arrow_table()
    assert result is not None  # a query always has a result, possibly empty
    return result


def _output_schema(schema: pa.Schema, lists: pa.Schema, prefix: str) -> pa.Schema:
    renames = _profile_renames(schema.names)
    fields = [pa.field(PROFILE_TABLE, pa.string())]
    fields += [f.with_name(renames.get(f.name, f.name)) for f in schema]
    fields += [pa.field(IMAGE_MATCHED, pa.bool_()), pa.field(prefix + "count", pa.int32())]
    fields += [lists.field(f).with_name(prefix + f) for f in IMAGE_FIELDS]
    return pa.schema(fields)


def _joined_batches(
    name: str, batches: Iterable[pa.RecordBatch], lists: Callable[[int, int], pa.Table], prefix: str
) -> Iterator[pa.RecordBatch]:
    """Profile table ``name``'s batches with ``profile_table``, ``image_matched`` and the image lists, which
    ``lists(start, stop)`` gives for a window of rows (batches come in row order, so each window is fetched
    once)."""
    start = stop = 0
    window = position = image = counts = None
    renames: dict[str, str] | None = None
    for batch in batches:
        renames = _profile_renames(batch.schema.names) if renames is None else renames
        ids = batch.column(ROW_ID).to_numpy()
        if window is None or (len(ids) and (ids.min() < start or ids.max() >= stop)):
            start = int(ids.min()) if len(ids) else 0
            stop = max(start + LINK_WINDOW_ROWS, int(ids.max()) + 1 if len(ids) else 0)
            window = lists(start, stop)
            # A dense index over the window finds each row's links without a hash join.
            position = np.full(stop - start, -1, dtype=np.int64)
            position[window.column(ROW_ID).to_numpy() - start] = np.arange(window.num_rows)
            image, counts = window.select(list(IMAGE_FIELDS)), window.column("n")
        assert position is not None and image is not None and counts is not None
        found = position[ids - start]
        matched = found >= 0
        take = pa.array(found, mask=~matched)
        picked = image.take(take)
        columns = {
            PROFILE_TABLE: pa.array([name] * batch.num_rows, pa.string()),
            **{renames.get(c, c): batch.column(c) for c in batch.schema.names},
            IMAGE_MATCHED: pa.array(matched),
            prefix + "count": pc.fill_null(counts.take(take), 0).combine_chunks(),
            **{prefix + f: picked.column(f).combine_chunks() for f in IMAGE_FIELDS},
        }
        yield pa.RecordBatch.from_pydict(columns)


def _ordered_files(table: Table) -> list[DataFile]:
    """The table's live data files in ``profile_row`` order (their lower bounds: each file's rows were
    written in order)."""
    from pyiceberg.conversions import from_bytes
    from pyiceberg.types import LongType

    field_id = table.schema().find_field(ROW_ID).field_id

    def start(f: DataFile) -> int:
        bound = (f.lower_bounds or {}).get(field_id)
        return int(from_bytes(LongType(), bound)) if bound is not None else 0

    return sorted(live_files(table), key=start)


def _table_batches(table: Table) -> Iterator[pa.RecordBatch]:
    """Every row of a profile table, a row group at a time (conformed to the table's schema)."""
    from bioimage_pipeline.profiles.batches import batch_rows

    schema = table.schema().as_arrow()
    rows = batch_rows(schema)
    for data_file in _ordered_files(table):
        with table.io.new_input(data_file.file_path).open() as stream:
            file = pq.ParquetFile(stream)
            for group in range(file.num_row_groups):
                for batch in file.iter_batches(batch_size=rows, row_groups=[group], use_pandas_metadata=False):
                    yield conform(batch, schema)


@dataclass(frozen=True, kw_only=True)
class JoinInput:
    """One profile table to join: its name, schema, and a way to stream its rows (in ``profile_row`` order)."""

    name: str
    schema: pa.Schema
    batches: Callable[[], Iterable[pa.RecordBatch]]


def _common_type(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The type two tables' columns of one name share in the union, as SQL's UNION finds it: integers widen,
    integers and floats meet as doubles, anything else as text."""
    if a == b or pa.types.is_null(b):
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.int64()
    if (pa.types.is_integer(a) or pa.types.is_floating(a)) and (pa.types.is_integer(b) or pa.types.is_floating(b)):
        return pa.float64()
    return pa.string()


def _union_schema(schemas: Sequence[pa.Schema]) -> pa.Schema:
    """Columns of every table by name, in order of first appearance (as UNION ALL BY NAME orders them)."""
    types: dict[str, pa.DataType] = {}
    for schema in schemas:
        for f in schema:
            types[f.name] = _common_type(types[f.name], f.type) if f.name in types else f.type
    return pa.schema([pa.field(name, t) for name, t in types.items()])


def streamed_join(con: duckdb.DuckDBPyConnection, inputs: Sequence[JoinInput]) -> tuple[pa.RecordBatchReader, str]:
    """``joined_profiles`` rows of ``inputs``, in table and row order, a batch at a time; and the image
    column prefix. ``con`` must have ``image_assets`` and ``profile_links``. One table's link lists are held
    at a time (narrow: a few list columns per linked row)."""
    prefix = image_prefix([c for i in inputs for c in i.schema.names])
    # The lists' types, from the links of no table (the same for every table).
    types = _link_lists(con, "\x00").schema
    schema = _union_schema([_output_schema(i.schema, types, prefix) for i in inputs])

    def batches() -> Iterator[pa.RecordBatch]:
        for i in inputs:
            lists = functools.partial(_link_lists, con, i.name)
            for batch in _joined_batches(i.name, i.batches(), lists, prefix):
                yield conform(batch, schema)

    return pa.RecordBatchReader.from_batches(schema, batches()), prefix


def _join_inputs(tables: Mapping[str, Table]) -> list[JoinInput]:
    return [
        JoinInput(name=name, schema=table.schema().as_arrow(), batches=functools.partial(_table_batches, table))
        for name, table in tables.items()
    ]


def catalog_join_inputs(catalog: Catalog, namespace: str, tables: Sequence[str]) -> list[JoinInput]:
    loaded = {name: load_table(catalog, namespace, name) for name in tables}
    return _join_inputs({name: t for name, t in loaded.items() if t is not None})


def joined_fingerprint(tables: Mapping[str, Table], assets: Table | None) -> str:
    """What one joined table is made of: its profile tables' contents (each fingerprint covers the table's
    rows and its links) and the image_assets snapshot the image columns come from."""
    parts = [LOGIC_VERSION]
    for name in sorted(tables):
        parts.append(f"{name}={snapshot_property(tables[name], FINGERPRINT_KEY)}")
    snapshot = assets.current_snapshot() if assets is not None else None
    parts.append(f"{IMAGE_ASSETS}={snapshot.snapshot_id if snapshot else None}")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


PREFIX_KEY = "bioimage.image-prefix"
#: Snapshot property of a joined table: JSON ``{profile table: [rows, rows linked to an image]}``.
COUNTS_KEY = "bioimage.rows-per-table"


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, tuple[int, int]]:
    rows = con.execute(
        f"SELECT {PROFILE_TABLE}, count(*), count(*) FILTER ({IMAGE_MATCHED}) FROM {relation} GROUP BY ALL"
    ).fetchall()
    return {str(table): (int(n), int(matched)) for table, n, matched in rows}


def joined_counts(table: Table, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, tuple[int, int]]:
    """(rows, rows linked to an image) per profile table of a joined table: from its snapshot, where they
    were counted as it was written; counted from the data for a table written before that (``con`` then must
    have the table registered, or a connection of its own is made)."""
    counts = snapshot_property(table, COUNTS_KEY)
    if counts is not None:
        return {name: (int(n), int(matched)) for name, (n, matched) in json.loads(counts).items()}
    own = con is None
    con = con if con is not None else duckdb.connect()
    relation = table.name()[-1]
    try:
        if own:
            register_table(con, relation, table)
        return _count(con, quote_identifier(relation))
    finally:
        if own:
            con.close()


def group_by_kind(tables: Mapping[str, Table]) -> dict[str, dict[str, Table]]:
    """Profile tables by the joined table their object kind goes to (``joined_profiles`` first)."""
    groups: dict[str, dict[str, Table]] = {}
    for name, table in tables.items():
        groups.setdefault(joined_table_name(*table_kind(table)), {})[name] = table
    return dict(sorted(groups.items(), key=lambda item: joined_order(item[0])))


def build_joined_profiles(
    catalog: Catalog,
    namespace: str,
    tables: Sequence[str],
    con: duckdb.DuckDBPyConnection | None = None,
) -> JoinStats:
    """Rebuild the joined tables (one per object kind, see :func:`joined_table_name`) from the named profile
    tables: each joined table only when one of its inputs changed since it was built (one commit each), and
    joined tables whose kind has no table any more are dropped. ``con`` ends with a view of each joined table."""
    stats = JoinStats()
    loaded = {name: t for name in tables if (t := load_table(catalog, namespace, name)) is not None}
    groups = group_by_kind(loaded)
    assets = load_table(catalog, namespace, IMAGE_ASSETS)
    own = con is None
    con = con if con is not None else duckdb.connect()
    try:
        connected = False
        for joined, members in groups.items():
            stats.tables[joined] = list(members)
            fingerprint = joined_fingerprint(members, assets)
            existing = load_table(catalog, namespace, joined)
            if snapshot_property(existing, FINGERPRINT_KEY) != fingerprint:
                if not connected:
                    # Only the narrow tables go to DuckDB; the profile tables stream past (see streamed_join).
                    connect_catalog(catalog, namespace, con, only=[IMAGE_ASSETS, LINKS_TABLE])
                    connected = True
                reader, prefix = streamed_join(con, _join_inputs(members))
                try:
                    if _write(catalog, namespace, joined, reader, fingerprint, prefix, members):
                        stats.committed.append(joined)
                finally:
                    # Not read at all when a concurrent run built the same table first: the open result must go
                    # before the connection runs anything else.
                    reader.close()
                existing = load_table(catalog, namespace, joined)
            if existing is None:
                continue
            stats.prefixes[joined] = snapshot_property(existing, PREFIX_KEY) or IMAGE_PREFIX
            stats.schemas[joined] = existing.schema().as_arrow()
            register_table(con, joined, existing)
            for table, (rows, matched) in joined_counts(existing, con).items():
                stats.rows[table], stats.matched[table] = rows, matched
        for name in loaded:
            stats.rows.setdefault(name, 0)
            stats.matched.setdefault(name, 0)
        for stale in published_joined_tables(catalog, namespace):
            if stale not in groups and _drop(catalog, namespace, stale):
                stats.dropped.append(stale)
    finally:
        if own:
            con.close()
    return stats


def _drop(catalog: Catalog, namespace: str, name: str) -> bool:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        catalog.drop_table((namespace, name))
    except NoSuchTableError:  # a concurrent run dropped it first
        return False
    return True


def join_prepared(image_assets: pa.Table, prepared: PreparedProfiles) -> tuple[dict[str, pa.Table], JoinStats]:
    """The joined tables (one per object kind, see :func:`joined_table_name`) for profile tables prepared in
    memory (no catalog involved)."""
    stats = JoinStats()
    tables = [p for p in prepared.tables if p.table.role == "profiles" and p.rows is not None]
    groups: dict[str, list[JoinInput]] = {}
    for p in tables:
        assert p.rows is not None  # filtered above
        inputs = groups.setdefault(joined_table_name(p.table.profile_level, p.table.compartment), [])
        inputs.append(JoinInput(name=p.catalog_name, schema=p.rows.schema, batches=p.rows.batches))
    joined: dict[str, pa.Table] = {}
    con = duckdb.connect()
    try:
        con.register(IMAGE_ASSETS, image_assets)
        frames = [p.links.assign(profile_table=p.catalog_name) for p in tables if p.links is not None]
        con.register(LINKS_TABLE, links_table(frames))
        for name in sorted(groups, key=joined_order):
            reader, stats.prefixes[name] = streamed_join(con, groups[name])
            joined[name] = reader.read_all()
            stats.tables[name] = [i.name for i in groups[name]]
            con.register("__joined", joined[name])
            for table, (n, matched) in _count(con, "__joined").items():
                stats.rows[table], stats.matched[table] = n, matched
            con.unregister("__joined")
        return joined, stats
    finally:
        con.close()


def _counting(reader: pa.RecordBatchReader, summary: dict[str, str]) -> pa.RecordBatchReader:
    """``reader``'s batches, counting rows and linked rows per profile table as they stream past; once the last
    batch has gone, the counts are put in ``summary`` (the commit that follows records them with the table,
    so status and the coverage check never count the table again)."""
    counts: dict[str, list[int]] = {}

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            grouped = (
                pa.Table.from_batches([batch])
                .group_by(PROFILE_TABLE)
                .aggregate([(IMAGE_MATCHED, "count"), (IMAGE_MATCHED, "sum")])
            )
            for table, rows, matched in zip(*(grouped.column(i).to_pylist() for i in range(3)), strict=True):
                total = counts.setdefault(table, [0, 0])
                total[0] += rows
                total[1] += matched or 0
            yield batch
        summary[COUNTS_KEY] = json.dumps(counts, sort_keys=True)

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _write(
    catalog: Catalog,
    namespace: str,
    name: str,
    reader: pa.RecordBatchReader,
    fingerprint: str,
    prefix: str,
    members: Mapping[str, Table],
) -> bool:
    existing = load_table(catalog, namespace, name)
    if snapshot_property(existing, FINGERPRINT_KEY) == fingerprint:
        return False
    summary = {FINGERPRINT_KEY: fingerprint, PREFIX_KEY: prefix, COUNTS_KEY: "{}"}
    level, compartment = table_kind(next(iter(members.values())))
    # Keyed and laid out like the profile tables it is made of: as wide as they are.
    keys = [PROFILE_TABLE, ROW_ID, *KEY_COLUMNS, IMAGE_MATCHED]
    replace_table(
        catalog,
        namespace,
        name,
        _counting(reader, summary),
        summary=summary,
        properties={LEVEL_PROPERTY: level, COMPARTMENT_PROPERTY: compartment or ""},
        layout=profile_table_layout(keys),
        writer_options=profile_writer_options(reader.schema, keys),
    )
    return True
