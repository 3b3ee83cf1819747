"""DuckDB over the catalog: each Iceberg table becomes a view with the table's name.

Views read the Parquet data files of the table's current snapshot directly (streaming, nothing loaded
up front). Tables on a non-local file system, or with delete files, are read through PyIceberg instead.
A view may also stand for some of a table's files only (:func:`register_files`): the checks look at
what the last commit added, never the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.types import IcebergType, ListType

from bioimage_pipeline.catalog import conform
from bioimage_pipeline.sql import quote_identifier, quote_literal
from bioimage_pipeline.tables import (
    CHUNK_INDEX,
    CHUNK_INDEX_SCHEMA,
    IMAGE_ASSETS,
    IMAGE_ASSETS_SCHEMA,
    STORE_REGISTRY,
    STORE_REGISTRY_SCHEMA,
    VALIDATION_ISSUES,
    VALIDATION_ISSUES_SCHEMA,
)

STANDARD_TABLES = {
    IMAGE_ASSETS: IMAGE_ASSETS_SCHEMA,
    CHUNK_INDEX: CHUNK_INDEX_SCHEMA,
    STORE_REGISTRY: STORE_REGISTRY_SCHEMA,
    VALIDATION_ISSUES: VALIDATION_ISSUES_SCHEMA,
}


def _local_path(uri: str) -> str | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return parsed.path if parsed.scheme else uri
    return None


def register_table(con: duckdb.DuckDBPyConnection, name: str, table: Table) -> None:
    """A view named ``name`` over the table's current snapshot."""
    snapshot = table.current_snapshot()
    tasks = list(table.scan().plan_files()) if snapshot is not None else []
    if any(t.delete_files for t in tasks):
        _register_arrow(con, name, table.scan().to_arrow())
        return
    register_files(con, name, table, [t.file for t in tasks])


def register_files(con: duckdb.DuckDBPyConnection, name: str, table: Table, files: Sequence[DataFile]) -> None:
    """A view named ``name`` over some of the table's data files (all of a snapshot's, or only those a commit
    added): read in place where they are local, through the table's file IO otherwise."""
    paths = [_local_path(f.file_path) for f in files]
    if not files:
        _register_arrow(con, name, table.schema().as_arrow().empty_table())
    elif all(p is not None for p in paths):
        listed = ", ".join(quote_literal(str(p)) for p in paths)
        columns = ", ".join([*(quote_identifier(f.name) for f in table.schema().fields), *_missing(name, table)])
        # hive_partitioning off: folder names of earlier releases' files (dataset_id=...) must not override
        # the stored column.
        con.execute(
            f"CREATE OR REPLACE VIEW {quote_identifier(name)} AS SELECT {columns} FROM read_parquet([{listed}], "
            "union_by_name = true, hive_partitioning = false)"
        )
    else:
        target = table.schema().as_arrow()
        parts = []
        for f in files:
            with table.io.new_input(f.file_path).open() as stream:
                parts.append(conform(pq.read_table(stream), target))
        _register_arrow(con, name, pa.concat_tables(parts))


def _missing(name: str, table: Table) -> list[str]:
    """Typed NULLs for the columns of a standard table that this table lacks: one an earlier release wrote,
    or one a killed run created and did not get to evolve. Queries see this release's columns either way."""
    standard = STANDARD_TABLES.get(name)
    if standard is None:
        return []
    have = {f.name for f in table.schema().fields}
    return [
        f"CAST(NULL AS {_duck_type(f.field_type)}) AS {quote_identifier(f.name)}"
        for f in standard.fields
        if f.name not in have
    ]


_DUCK_TYPES = {
    "string": "VARCHAR",
    "long": "BIGINT",
    "int": "INTEGER",
    "boolean": "BOOLEAN",
    "double": "DOUBLE",
    "float": "FLOAT",
    "timestamptz": "TIMESTAMPTZ",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}


def _duck_type(iceberg_type: IcebergType) -> str:
    if isinstance(iceberg_type, ListType):
        return f"{_duck_type(iceberg_type.element_type)}[]"
    return _DUCK_TYPES[str(iceberg_type)]


def _register_arrow(con: duckdb.DuckDBPyConnection, name: str, data: pa.Table) -> None:
    standard = STANDARD_TABLES.get(name)
    if standard is not None and set(standard.column_names) - set(data.schema.names):
        data = conform(data, standard.as_arrow())
    con.register(f"__arrow_{name}", data)
    con.execute(
        f"CREATE OR REPLACE VIEW {quote_identifier(name)} AS SELECT * FROM {quote_identifier('__arrow_' + name)}"
    )


def connect_catalog(
    catalog: Catalog,
    namespace: str,
    con: duckdb.DuckDBPyConnection | None = None,
    only: Iterable[str] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection where every table of ``namespace`` (or just those named in ``only``: loading a
    wide profile table's metadata is not free) is a view of the same name."""
    con = con if con is not None else duckdb.connect()
    try:
        identifiers = catalog.list_tables(namespace)
    except Exception:  # namespace not created yet: an empty catalog
        identifiers = []
    if only is not None:
        wanted = set(only)
        identifiers = [i for i in identifiers if i[-1] in wanted]
    present = set()
    for identifier in identifiers:
        register_table(con, identifier[-1], catalog.load_table(identifier))
        present.add(identifier[-1])
    # The store tables always exist as views, empty before the first ingest, so queries never depend on
    # whether anything was ingested yet.
    for name, schema in STANDARD_TABLES.items():
        if name not in present and (only is None or name in set(only)):
            con.register(f"__empty_{name}", schema.as_arrow().empty_table())
            con.execute(
                f"CREATE OR REPLACE VIEW {quote_identifier(name)} AS SELECT * FROM "
                f"{quote_identifier('__empty_' + name)}"
            )
    return con
