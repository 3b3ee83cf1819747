"""Explicit Iceberg schemas of the catalog tables, and conversion of scans into their Arrow rows."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from bioimage_pipeline.model import ArrayRecord, StoreScan

IMAGE_ASSETS = "image_assets"
CHUNK_INDEX = "chunk_index"
STORE_REGISTRY = "store_registry"
VALIDATION_ISSUES = "validation_issues"
JOINED_PROFILES = "joined_profiles"


def _list(field_id: int, element_id: int, name: str, element: IcebergType, required: bool = False) -> NestedField:
    return NestedField(field_id, name, ListType(element_id, element, element_required=False), required=required)


# Field ids are literal and never reused. PyIceberg numbers a new table's fields itself (top-level fields
# first, then list elements), so each table is created with its first release's fields, numbered here the
# way PyIceberg numbers them, and the columns added since are then added in id order (each the next free
# id, a list's element right after it): every table, new or evolved from an earlier release, carries
# exactly these ids. A column is only ever added (optional, at the end) or left alone.
IMAGE_ASSETS_SCHEMA = Schema(
    NestedField(1, "dataset_id", StringType(), required=True),
    NestedField(2, "image_id", StringType(), required=True),
    NestedField(3, "array_path", StringType(), required=True),
    NestedField(4, "level", IntegerType(), required=True),
    NestedField(5, "kind", StringType(), required=True),
    NestedField(6, "uri", StringType(), required=True),
    NestedField(7, "format", StringType(), required=True),
    NestedField(8, "storage_variant", StringType(), required=True),
    NestedField(9, "ngff_version", StringType(), required=False),
    _list(10, 31, "shape", LongType(), required=True),
    NestedField(11, "dtype", StringType(), required=True),
    _list(12, 32, "chunk_shape", LongType()),
    _list(13, 33, "shard_shape", LongType()),
    _list(14, 34, "axes", StringType()),
    _list(15, 35, "axis_types", StringType()),
    _list(16, 36, "axis_units", StringType()),
    _list(17, 37, "scale", DoubleType()),
    _list(18, 38, "translation", DoubleType()),
    _list(19, 39, "channel_names", StringType()),
    NestedField(20, "plate_id", StringType(), required=False),
    NestedField(21, "well_id", StringType(), required=False),
    NestedField(22, "site_id", StringType(), required=False),
    NestedField(23, "chunk_count", LongType(), required=True),
    NestedField(24, "chunks_stored", LongType(), required=True),
    NestedField(25, "stored_bytes", LongType(), required=True),
    _list(26, 40, "codecs", StringType()),
    NestedField(27, "chunk_key_encoding", StringType(), required=False),
    NestedField(28, "order", StringType(), required=False),
    NestedField(29, "fingerprint", StringType(), required=True),
    NestedField(30, "scanned_at", TimestamptzType(), required=True),
    # Added after the first release. Rows the array has in chunk_index (fewer than chunk_count when its grid
    # exceeds the bound on rows per array); null in rows written before, which indexed every chunk.
    NestedField(41, "chunks_indexed", LongType(), required=False),
)

CHUNK_INDEX_SCHEMA = Schema(
    NestedField(1, "dataset_id", StringType(), required=True),
    NestedField(2, "array_path", StringType(), required=True),
    _list(3, 9, "chunk_coords", LongType(), required=True),
    NestedField(4, "storage_key", StringType(), required=True),
    NestedField(5, "stored", BooleanType(), required=True),
    NestedField(6, "byte_offset", LongType(), required=False),
    NestedField(7, "byte_length", LongType(), required=False),
    NestedField(8, "fingerprint", StringType(), required=True),
)

STORE_REGISTRY_SCHEMA = Schema(
    NestedField(1, "dataset_id", StringType(), required=True),
    NestedField(2, "uri", StringType(), required=True),
    NestedField(3, "format", StringType(), required=False),
    NestedField(4, "status", StringType(), required=True),  # "ok" or "failed"
    NestedField(5, "error", StringType(), required=False),
    _list(6, 15, "warnings", StringType()),
    NestedField(7, "fingerprint", StringType(), required=True),  # of the last scan attempt
    NestedField(8, "ingested_fingerprint", StringType(), required=False),  # of the rows now in the tables
    NestedField(9, "image_count", IntegerType(), required=False),
    NestedField(10, "array_count", IntegerType(), required=False),
    NestedField(11, "chunk_count", LongType(), required=False),
    NestedField(12, "stored_bytes", LongType(), required=False),
    NestedField(13, "scanned_at", TimestamptzType(), required=True),
    NestedField(14, "ingested_at", TimestamptzType(), required=False),
    # Added after the first release: rows the store has in chunk_index.
    NestedField(16, "chunks_indexed", LongType(), required=False),
)

VALIDATION_ISSUES_SCHEMA = Schema(
    NestedField(1, "dataset_id", StringType(), required=True),
    NestedField(2, "node_path", StringType(), required=True),
    NestedField(3, "model", StringType(), required=True),
    NestedField(4, "rule", StringType(), required=True),
    NestedField(5, "severity", StringType(), required=True),
    NestedField(6, "message", StringType(), required=True),
    NestedField(7, "fingerprint", StringType(), required=True),
)

#: Highest field id of each table's first release: a table is created with the fields up to it, then
#: evolved to the rest (see above).
FIRST_RELEASE_LAST_ID = {
    IMAGE_ASSETS: 40,
    CHUNK_INDEX: 9,
    STORE_REGISTRY: 15,
    VALIDATION_ISSUES: 7,
}


def first_release(schema: Schema, last_id: int) -> Schema:
    """The fields of ``schema`` a table was first created with (ids up to ``last_id``)."""
    return Schema(*[f for f in schema.fields if f.field_id <= last_id])


def dataset_partition_spec(schema: Schema) -> PartitionSpec:
    """The spec per-store tables had before they were sorted instead (catalogs of earlier releases, which
    :func:`~bioimage_pipeline.catalog.ensure_table` evolves on open)."""
    source = schema.find_field("dataset_id")
    return PartitionSpec(
        PartitionField(source_id=source.field_id, field_id=1000, transform=IdentityTransform(), name="dataset_id")
    )


def arrow_schema(schema: Schema) -> pa.Schema:
    return schema.as_arrow()


@functools.cache
def chunk_batch_schema() -> pa.Schema:
    """Columns a chunk source yields; the writer prepends dataset_id and array_path. (Built on first use:
    PyIceberg's Arrow conversion costs most of a second to import.)"""
    return pa.schema(
        [f for f in arrow_schema(CHUNK_INDEX_SCHEMA) if f.name not in ("dataset_id", "array_path", "fingerprint")]
    )


IMAGE_ASSET_COLUMNS: tuple[str, ...] = tuple(f.name for f in IMAGE_ASSETS_SCHEMA.fields)


def image_asset_rows(
    scan: StoreScan, fingerprint: str, scanned_at: datetime, limit: int | None = None
) -> list[dict[str, Any]]:
    """The ``image_assets`` rows of one scan (its first ``limit`` arrays' only, when given), as plain dicts
    with the table's column names."""
    arrays = scan.arrays if limit is None else scan.arrays[:limit]
    return [_asset_row(scan, a, fingerprint, scanned_at) for a in arrays]


def _asset_row(scan: StoreScan, a: ArrayRecord, fingerprint: str, scanned_at: datetime) -> dict[str, Any]:
    return {
        "dataset_id": scan.dataset_id,
        "image_id": a.image_id,
        "array_path": a.array_path,
        "level": a.level,
        "kind": a.kind,
        "uri": a.uri,
        "format": scan.format,
        "storage_variant": a.storage_variant,
        "ngff_version": a.ngff_version,
        "shape": list(a.shape),
        "dtype": a.dtype,
        "chunk_shape": a.chunk_shape,
        "shard_shape": a.shard_shape,
        "axes": a.axes,
        "axis_types": a.axis_types,
        "axis_units": a.axis_units,
        "scale": a.scale,
        "translation": a.translation,
        "channel_names": a.channel_names,
        "plate_id": a.plate_id,
        "well_id": a.well_id,
        "site_id": a.site_id,
        "chunk_count": a.chunk_count,
        "chunks_stored": a.chunks_stored,
        "stored_bytes": a.stored_bytes,
        "codecs": a.codecs,
        "chunk_key_encoding": a.chunk_key_encoding,
        "order": a.order,
        "fingerprint": fingerprint,
        "scanned_at": scanned_at,
        "chunks_indexed": a.chunks_indexed,
    }


def image_assets_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=arrow_schema(IMAGE_ASSETS_SCHEMA))


def chunk_index_batches(
    dataset_id: str, array: ArrayRecord, fingerprint: str, max_rows: int, rows: range | None = None
) -> Iterator[pa.RecordBatch]:
    """``chunk_index`` batches of one array with the identity columns added."""
    if array.chunks is None or array.chunk_rows == "none":
        return
    schema = arrow_schema(CHUNK_INDEX_SCHEMA)
    source = array.chunks.stored_batches if array.chunk_rows == "stored" else array.chunks.batches
    for batch in source(max_rows, rows):
        n = batch.num_rows
        ids = [pa.repeat(pa.scalar(v, pa.string()), n) for v in (dataset_id, array.array_path)]
        fp = pa.repeat(pa.scalar(fingerprint, pa.string()), n)
        yield pa.RecordBatch.from_arrays([*ids, *batch.columns, fp], schema=schema)
