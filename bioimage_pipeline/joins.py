"""``joined_profiles``: every profile row exactly once, with the images it was measured on.

Rows keep all their profile columns and gain ``profile_table`` (the source table), ``image_matched`` and
per-image columns as lists aligned with each other (one entry per linked level-0 image: a site whose
channels are separate files has one entry per file). Image columns share a prefix no profile column
starts with, so they can never collide. The join runs in DuckDB over the catalog's files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from bioimage_pipeline.catalog import load_table, replace_table, snapshot_property
from bioimage_pipeline.duck import connect_catalog, register_table
from bioimage_pipeline.profiles.normalize import ROW_ID
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
    rows: dict[str, int] = field(default_factory=dict)
    matched: dict[str, int] = field(default_factory=dict)
    prefix: str = IMAGE_PREFIX
    committed: bool = False

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_matched(self) -> int:
        return sum(self.matched.values())


def _table_sql(con: duckdb.DuckDBPyConnection, name: str, prefix: str) -> str:
    columns = [r[0] for r in con.execute(f"DESCRIBE {quote_identifier(name)}").fetchall()]
    # Normalisation keeps these names free; a table published before it did is still never read wrongly.
    renames = [
        f"{quote_identifier(c)} AS {quote_identifier(c + '__profile')}"
        for c in columns
        if c.lower() in (PROFILE_TABLE, IMAGE_MATCHED)
    ]
    star = f"p.* RENAME ({', '.join(renames)})" if renames else "p.*"
    order = "ORDER BY l.rank, l.channel, l.dataset_id, l.image_id, i.array_path"
    # A link to a channel file says its channel; a link to a whole image gets the image's channel names.
    channel = "coalesce(l.channel, array_to_string(i.channel_names, ','))"
    sources = {"dataset_id": "l.dataset_id", "image_id": "l.image_id", "channel": channel}
    lists = ",\n".join(f"list({sources.get(f, 'i.' + f)} {order}) AS {f}" for f in IMAGE_FIELDS)
    image_cols = ",\n".join(f"agg.{f} AS {quote_identifier(prefix + f)}" for f in IMAGE_FIELDS)
    literal = quote_literal(name)
    return f"""
SELECT {literal} AS {PROFILE_TABLE}, {star},
       agg.n IS NOT NULL AS {IMAGE_MATCHED},
       coalesce(agg.n, 0)::INTEGER AS {quote_identifier(prefix + "count")},
       {image_cols}
FROM {quote_identifier(name)} p
LEFT JOIN (
    SELECT l.{ROW_ID}, count(*) AS n, {lists}
    FROM {LINKS_TABLE} l
    -- A link names one array of its image (a plate site's channel file) or, with array_path null, all of them.
    JOIN (SELECT * FROM {IMAGE_ASSETS} WHERE level = 0 AND kind = 'image') i
      ON i.dataset_id = l.dataset_id AND i.image_id = l.image_id
     AND (l.array_path IS NULL OR l.array_path = i.array_path)
    WHERE l.profile_table = {literal}
    GROUP BY l.{ROW_ID}
) agg USING ({ROW_ID})"""


def joined_fingerprint(catalog: Catalog, namespace: str, tables: Sequence[str]) -> str:
    parts = [LOGIC_VERSION]
    for name in [*sorted(tables), LINKS_TABLE]:
        parts.append(f"{name}={snapshot_property(load_table(catalog, namespace, name), FINGERPRINT_KEY)}")
    assets = load_table(catalog, namespace, IMAGE_ASSETS)
    snapshot = assets.current_snapshot() if assets is not None else None
    parts.append(f"{IMAGE_ASSETS}={snapshot.snapshot_id if snapshot else None}")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


PREFIX_KEY = "bioimage.image-prefix"
#: Snapshot property of joined_profiles: JSON ``{profile table: [rows, rows linked to an image]}``.
COUNTS_KEY = "bioimage.rows-per-table"


def joined_query(con: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> tuple[str, str]:
    """(SQL for the joined rows of ``tables``, image column prefix), over views named like the catalog
    tables (``image_assets``, ``profile_links`` and each profile table)."""
    all_columns: list[str] = []
    for name in tables:
        all_columns += [r[0] for r in con.execute(f"DESCRIBE {quote_identifier(name)}").fetchall()]
    prefix = image_prefix(all_columns)
    sql = "\nUNION ALL BY NAME\n".join(_table_sql(con, n, prefix) for n in tables)
    return f"SELECT * FROM ({sql}) ORDER BY {PROFILE_TABLE}, {ROW_ID}", prefix


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, tuple[int, int]]:
    rows = con.execute(
        f"SELECT {PROFILE_TABLE}, count(*), count(*) FILTER ({IMAGE_MATCHED}) FROM {relation} GROUP BY ALL"
    ).fetchall()
    return {str(table): (int(n), int(matched)) for table, n, matched in rows}


def joined_counts(table: Table, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, tuple[int, int]]:
    """(rows, rows linked to an image) per profile table of ``joined_profiles``: from its snapshot, where they
    were counted as it was written; counted from the data for a table written before that (``con`` then must
    have the table registered, or a connection of its own is made)."""
    counts = snapshot_property(table, COUNTS_KEY)
    if counts is not None:
        return {name: (int(n), int(matched)) for name, (n, matched) in json.loads(counts).items()}
    own = con is None
    con = con if con is not None else duckdb.connect()
    try:
        if own:
            register_table(con, JOINED_PROFILES, table)
        return _count(con, JOINED_PROFILES)
    finally:
        if own:
            con.close()


def build_joined_profiles(
    catalog: Catalog,
    namespace: str,
    tables: Sequence[str],
    batch_rows: int = 65_536,
    con: duckdb.DuckDBPyConnection | None = None,
) -> JoinStats:
    """Rebuild ``joined_profiles`` from the named profile tables; when none of its inputs changed since
    the last build, only count what is there."""
    stats = JoinStats()
    fingerprint = joined_fingerprint(catalog, namespace, tables)
    own = con is None
    con = con if con is not None else duckdb.connect()
    try:
        existing = load_table(catalog, namespace, JOINED_PROFILES)
        if snapshot_property(existing, FINGERPRINT_KEY) != fingerprint:
            connect_catalog(catalog, namespace, con, only=[IMAGE_ASSETS, LINKS_TABLE, *tables])
            if tables:
                sql, stats.prefix = joined_query(con, tables)
                reader = con.sql(sql).to_arrow_reader(batch_rows)
            else:
                reader = None
            try:
                stats.committed = _write(catalog, namespace, reader, fingerprint, stats.prefix)
            finally:
                # Not read at all when a concurrent run built the same table first: the open result must go
                # before the connection runs anything else.
                if reader is not None:
                    reader.close()
            existing = load_table(catalog, namespace, JOINED_PROFILES)
            if existing is not None:
                register_table(con, JOINED_PROFILES, existing)
        else:
            stats.prefix = snapshot_property(existing, PREFIX_KEY) or IMAGE_PREFIX
            if existing is not None:
                register_table(con, JOINED_PROFILES, existing)
        if existing is not None and tables:
            for table, (rows, matched) in joined_counts(existing, con).items():
                stats.rows[table], stats.matched[table] = rows, matched
            for name in tables:
                stats.rows.setdefault(name, 0)
                stats.matched.setdefault(name, 0)
    finally:
        if own:
            con.close()
    return stats


def join_prepared(image_assets: pa.Table, prepared: PreparedProfiles) -> tuple[pa.Table, JoinStats]:
    """``joined_profiles`` rows for profile tables prepared in memory (no catalog involved)."""
    stats = JoinStats()
    tables = [p for p in prepared.tables if p.table.role == "profiles"]
    con = duckdb.connect()
    try:
        con.register(IMAGE_ASSETS, image_assets)
        frames = [p.links.assign(profile_table=p.catalog_name) for p in tables if p.links is not None]
        con.register(LINKS_TABLE, links_table(frames))
        for p in tables:
            con.register(p.catalog_name, p.data)
        if not tables:
            return pa.table({}), stats
        sql, stats.prefix = joined_query(con, [p.catalog_name for p in tables])
        joined = con.sql(sql).to_arrow_table()
        con.register("__joined", joined)
        for name, (n, matched) in _count(con, "__joined").items():
            stats.rows[name], stats.matched[name] = n, matched
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
    catalog: Catalog, namespace: str, reader: pa.RecordBatchReader | None, fingerprint: str, prefix: str
) -> bool:
    existing = load_table(catalog, namespace, JOINED_PROFILES)
    if snapshot_property(existing, FINGERPRINT_KEY) == fingerprint:
        return False
    if reader is None:
        if existing is None:
            return False
        reader = pa.RecordBatchReader.from_batches(existing.schema().as_arrow(), [])
    summary = {FINGERPRINT_KEY: fingerprint, PREFIX_KEY: prefix, COUNTS_KEY: "{}"}
    replace_table(catalog, namespace, JOINED_PROFILES, _counting(reader, summary), summary=summary)
    return True
