"""``joined_profiles``: every profile row exactly once, with the images it was measured on.

Rows keep all their profile columns and gain ``profile_table`` (the source table), ``image_matched`` and
per-image columns as lists aligned with each other (one entry per linked level-0 image: a site whose
channels are separate files has one entry per file). Image columns share a prefix no profile column
starts with, so they can never collide. The join runs in DuckDB over the catalog's files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from pyiceberg.catalog import Catalog

from bioimage_pipeline.catalog import load_table, replace_table, snapshot_property
from bioimage_pipeline.duck import connect_catalog, quote_identifier
from bioimage_pipeline.profiles.normalize import ROW_ID
from bioimage_pipeline.profiles.pipeline import (
    FINGERPRINT_KEY,
    LINKS_TABLE,
    LOGIC_VERSION,
    PreparedProfiles,
    links_table,
)
from bioimage_pipeline.tables import IMAGE_ASSETS, JOINED_PROFILES

IMAGE_PREFIX = "image__"
PROFILE_TABLE = "profile_table"
IMAGE_MATCHED = "image_matched"
#: Image attributes carried into joined rows, as lists aligned by link.
IMAGE_FIELDS = ("dataset_id", "image_id", "channel", "uri", "format", "dtype", "shape", "axes")


def image_prefix(columns: Sequence[str]) -> str:
    """``image__``, or with more underscores until no profile column starts with it."""
    prefix = IMAGE_PREFIX
    while any(c.startswith(prefix) for c in columns):
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
    renames = [
        f"{quote_identifier(c)} AS {quote_identifier(c + '__profile')}"
        for c in (PROFILE_TABLE, IMAGE_MATCHED)
        if c in columns
    ]
    star = f"p.* RENAME ({', '.join(renames)})" if renames else "p.*"
    order = "ORDER BY l.rank, l.channel, l.dataset_id, l.image_id"
    lists = ",\n".join(
        f"list({'l' if f in ('dataset_id', 'image_id', 'channel') else 'i'}.{f} {order}) AS {f}" for f in IMAGE_FIELDS
    )
    image_cols = ",\n".join(f"agg.{f} AS {quote_identifier(prefix + f)}" for f in IMAGE_FIELDS)
    literal = "'" + name.replace("'", "''") + "'"
    return f"""
SELECT {literal} AS {PROFILE_TABLE}, {star},
       agg.n IS NOT NULL AS {IMAGE_MATCHED},
       coalesce(agg.n, 0)::INTEGER AS {quote_identifier(prefix + "count")},
       {image_cols}
FROM {quote_identifier(name)} p
LEFT JOIN (
    SELECT l.{ROW_ID}, count(*) AS n, {lists}
    FROM {LINKS_TABLE} l
    JOIN (SELECT * FROM {IMAGE_ASSETS} WHERE level = 0 AND kind = 'image') i USING (dataset_id, image_id)
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


def joined_query(con: duckdb.DuckDBPyConnection, tables: Sequence[str], stats: JoinStats) -> str:
    """SQL for the joined rows of ``tables`` over views named like the catalog tables (``image_assets``,
    ``profile_links`` and each profile table); fills ``stats`` with per-table row and match counts."""
    all_columns: list[str] = []
    for name in tables:
        all_columns += [r[0] for r in con.execute(f"DESCRIBE {quote_identifier(name)}").fetchall()]
    stats.prefix = image_prefix(all_columns)
    for name in tables:
        row = con.execute(
            f"SELECT count(*), count(*) FILTER ({IMAGE_MATCHED}) FROM ({_table_sql(con, name, stats.prefix)})"
        ).fetchone()
        stats.rows[name], stats.matched[name] = int(row[0]), int(row[1])
    sql = "\nUNION ALL BY NAME\n".join(_table_sql(con, n, stats.prefix) for n in tables)
    return f"SELECT * FROM ({sql}) ORDER BY {PROFILE_TABLE}, {ROW_ID}"


def build_joined_profiles(
    catalog: Catalog,
    namespace: str,
    tables: Sequence[str],
    batch_rows: int = 65_536,
    con: duckdb.DuckDBPyConnection | None = None,
) -> JoinStats:
    """Rebuild ``joined_profiles`` from the named profile tables (skipped when no input changed)."""
    stats = JoinStats()
    fingerprint = joined_fingerprint(catalog, namespace, tables)
    own = con is None
    con = connect_catalog(catalog, namespace, con)
    try:
        if not tables:
            stats.committed = _write(catalog, namespace, None, fingerprint)
            return stats
        sql = joined_query(con, tables, stats)
        if snapshot_property(load_table(catalog, namespace, JOINED_PROFILES), FINGERPRINT_KEY) == fingerprint:
            return stats
        stats.committed = _write(catalog, namespace, con.sql(sql).to_arrow_reader(batch_rows), fingerprint)
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
        con.register(LINKS_TABLE, links_table([p.links.assign(profile_table=p.catalog_name) for p in tables]))
        for p in tables:
            con.register(p.catalog_name, p.data)
        if not tables:
            return pa.table({}), stats
        return con.sql(joined_query(con, [p.catalog_name for p in tables], stats)).to_arrow_table(), stats
    finally:
        con.close()


def _write(catalog: Catalog, namespace: str, reader: pa.RecordBatchReader | None, fingerprint: str) -> bool:
    existing = load_table(catalog, namespace, JOINED_PROFILES)
    if snapshot_property(existing, FINGERPRINT_KEY) == fingerprint:
        return False
    if reader is None:
        if existing is None:
            return False
        reader = pa.RecordBatchReader.from_batches(existing.schema().as_arrow(), [])
    replace_table(catalog, namespace, JOINED_PROFILES, reader, summary={FINGERPRINT_KEY: fingerprint})
    return True
