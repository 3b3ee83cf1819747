"""Explicit Iceberg schemas of the catalog tables, and conversion of scans into their Arrow rows."""

from __future__ import annotations

import itertools
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


def _build_schema(*columns: tuple[str, Any, bool]) -> Schema:
    """Columns as (name, type or ``[element type]`` for a list, required)."""
    ids = itertools.count(1)
    fields = []
    for name, kind, required in columns:
        field_id = next(ids)
        field_type: IcebergType
        if isinstance(kind, list):
            field_type = ListType(element_id=next(ids), element_type=kind[0], element_required=False)
        else:
            field_type = kind
        fields.append(NestedField(field_id=field_id, name=name, field_type=field_type, required=required))
    return Schema(*fields)


_S, _L, _I, _D, _B, _T = (
    StringType(),
    LongType(),
    IntegerType(),
    DoubleType(),
    BooleanType(),
    TimestamptzType(),
)

IMAGE_ASSETS_SCHEMA = _build_schema(
    ("dataset_id", _S, True),
    ("image_id", _S, True),
    ("array_path", _S, True),
    ("level", _I, True),
    ("kind", _S, True),
    ("uri", _S, True),
    ("format", _S, True),
    ("storage_variant", _S, True),
    ("ngff_version", _S, False),
    ("shape", [_L], True),
    ("dtype", _S, True),
    ("chunk_shape", [_L], False),
    ("shard_shape", [_L], False),
    ("axes", [_S], False),
    ("axis_types", [_S], False),
    ("axis_units", [_S], False),
    ("scale", [_D], False),
    ("translation", [_D], False),
    ("channel_names", [_S], False),
    ("plate_id", _S, False),
    ("well_id", _S, False),
    ("site_id", _S, False),
    ("chunk_count", _L, True),
    ("chunks_stored", _L, True),
    ("stored_bytes", _L, True),
    ("codecs", [_S], False),
    ("chunk_key_encoding", _S, False),
    ("order", _S, False),
    ("fingerprint", _S, True),
    ("scanned_at", _T, True),
)

CHUNK_INDEX_SCHEMA = _build_schema(
    ("dataset_id", _S, True),
    ("array_path", _S, True),
    ("chunk_coords", [_L], True),
    ("storage_key", _S, True),
    ("stored", _B, True),
    ("byte_offset", _L, False),
    ("byte_length", _L, False),
    ("fingerprint", _S, True),
)

STORE_REGISTRY_SCHEMA = _build_schema(
    ("dataset_id", _S, True),
    ("uri", _S, True),
    ("format", _S, False),
    ("status", _S, True),  # "ok" or "failed"
    ("error", _S, False),
    ("warnings", [_S], False),
    ("fingerprint", _S, True),  # of the last scan attempt
    ("ingested_fingerprint", _S, False),  # of the rows now in image_assets / chunk_index
    ("image_count", _I, False),
    ("array_count", _I, False),
    ("chunk_count", _L, False),
    ("stored_bytes", _L, False),
    ("scanned_at", _T, True),
    ("ingested_at", _T, False),
)

VALIDATION_ISSUES_SCHEMA = _build_schema(
    ("dataset_id", _S, True),
    ("node_path", _S, True),
    ("model", _S, True),
    ("rule", _S, True),
    ("severity", _S, True),
    ("message", _S, True),
    ("fingerprint", _S, True),
)


def dataset_partition_spec(schema: Schema) -> PartitionSpec:
    source = schema.find_field("dataset_id")
    return PartitionSpec(
        PartitionField(source_id=source.field_id, field_id=1000, transform=IdentityTransform(), name="dataset_id")
    )


def arrow_schema(schema: Schema) -> pa.Schema:
    return schema.as_arrow()


#: Columns a chunk source yields; the writer prepends dataset_id and array_path.
CHUNK_BATCH_SCHEMA = pa.schema(
    [f for f in arrow_schema(CHUNK_INDEX_SCHEMA) if f.name not in ("dataset_id", "array_path", "fingerprint")]
)

IMAGE_ASSET_COLUMNS: tuple[str, ...] = tuple(f.name for f in IMAGE_ASSETS_SCHEMA.fields)


def image_asset_rows(scan: StoreScan, fingerprint: str, scanned_at: datetime) -> list[dict[str, Any]]:
    """The ``image_assets`` rows of one scan, as plain dicts with the table's column names."""
    return [_asset_row(scan, a, fingerprint, scanned_at) for a in scan.arrays]


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
    }


def image_assets_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=arrow_schema(IMAGE_ASSETS_SCHEMA))


def chunk_index_batches(
    dataset_id: str, array: ArrayRecord, fingerprint: str, max_rows: int, rows: range | None = None
) -> Iterator[pa.RecordBatch]:
    """``chunk_index`` batches of one array with the identity columns added."""
    if array.chunks is None:
        return
    schema = arrow_schema(CHUNK_INDEX_SCHEMA)
    for batch in array.chunks.batches(max_rows, rows):
        n = batch.num_rows
        ids = [pa.repeat(pa.scalar(v, pa.string()), n) for v in (dataset_id, array.array_path)]
        fp = pa.repeat(pa.scalar(fingerprint, pa.string()), n)
        yield pa.RecordBatch.from_arrays([*ids, *batch.columns, fp], schema=schema)
