"""Store assets — the tables ``store_registry``, ``validation_issues``, ``image_assets``, ``chunk_index`` —
materialised by one step.

The step scans the stores that changed (incrementally, per store: see :mod:`bioimage_pipeline.ingest`)
and writes every store table once, in the order that keeps a killed run honest: chunk_index,
image_assets and validation_issues first, store_registry last. No
scan result is handed to another step through an IO manager: two runs at once never read each other's.
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema

from bioimage_pipeline import ingest
from bioimage_pipeline.catalog import load_table, total_rows
from bioimage_pipeline.defs.metadata import PREVIEW_ROWS, column_schema, preview, store_outcomes
from bioimage_pipeline.defs.resources import CATALOG_POOL, BioimageResource
from bioimage_pipeline.tables import (
    CHUNK_INDEX,
    CHUNK_INDEX_SCHEMA,
    IMAGE_ASSETS,
    IMAGE_ASSETS_SCHEMA,
    STORE_REGISTRY,
    VALIDATION_ISSUES,
    VALIDATION_ISSUES_SCHEMA,
    arrow_schema,
    chunk_index_batches,
    image_asset_rows,
    image_assets_table,
)

#: One group: the stages are one graph, and the UI draws one group as one graph.
GROUP = "bioimage"
STORE_REGISTRY_KEY = dg.AssetKey(STORE_REGISTRY)
VALIDATION_ISSUES_KEY = dg.AssetKey(VALIDATION_ISSUES)
IMAGE_ASSETS_KEY = dg.AssetKey(IMAGE_ASSETS)
CHUNK_INDEX_KEY = dg.AssetKey(CHUNK_INDEX)


class ScanConfig(dg.Config):
    """Which stores to (re)scan. The store sensor names the stores that have settled; left empty, every
    store under the stores root whose content changed is scanned."""

    dataset_ids: list[str] | None = None


def _total_rows(catalog: Catalog, namespace: str, name: str) -> int:
    return total_rows(load_table(catalog, namespace, name))


def _table_metadata(catalog: Catalog, namespace: str, write: ingest.TableWrite, schema: Schema) -> dict[str, Any]:
    """What every per-store table asset reports: its rows now, what this run wrote, its schema."""
    return {
        "dagster/row_count": _total_rows(catalog, namespace, write.table),
        "rows_written": write.rows_written,
        "stores_replaced": write.datasets_replaced,
        "snapshot_committed": write.committed,
        "dagster/column_schema": column_schema(arrow_schema(schema)),
    }


def _chunk_sample(batch: ingest.ScanBatch) -> pa.Table | None:
    """The first chunk rows this run wrote, from memory: reading them back would cost per data file."""
    for outcome in batch.ok:
        for array in outcome.scan.arrays if outcome.scan else []:
            for rows in chunk_index_batches(outcome.dataset_id, array, outcome.fingerprint, PREVIEW_ROWS):
                return pa.Table.from_batches([rows])
    return None


@dg.multi_asset(
    pool=CATALOG_POOL,
    name="stores",
    specs=[
        dg.AssetSpec(
            STORE_REGISTRY_KEY,
            group_name=GROUP,
            description="A row per store under the stores root: its fingerprint, format, status (ok, failed), "
            "error, counts. Every store is fingerprinted; changed stores are scanned (metadata only).",
            kinds={"iceberg", "python"},
        ),
        dg.AssetSpec(
            VALIDATION_ISSUES_KEY,
            group_name=GROUP,
            deps=[STORE_REGISTRY_KEY],
            description="OME-NGFF and CellMap problems of the scanned stores: a row per node and rule, with "
            "its severity and message.",
            kinds={"iceberg"},
        ),
        dg.AssetSpec(
            IMAGE_ASSETS_KEY,
            group_name=GROUP,
            deps=[STORE_REGISTRY_KEY],
            description="One row per array (resolution level) of every ingested store: shapes, dtypes, "
            "chunking, axes, physical scale, channels, plate/well/site.",
            kinds={"iceberg"},
        ),
        dg.AssetSpec(
            CHUNK_INDEX_KEY,
            group_name=GROUP,
            deps=[IMAGE_ASSETS_KEY],
            description="One row per chunk of every chunked array (Zarr chunks, shard inner chunks, TIFF tiles "
            "and strips): grid coordinates, storage key, stored or not, byte offset and length.",
            kinds={"iceberg"},
        ),
    ],
)
def stores(
    context: dg.AssetExecutionContext, config: ScanConfig, bioimage: BioimageResource
) -> Iterator[dg.MaterializeResult]:
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    # Planned here, scanned a group at a time while writing: memory holds one group's scans, and the
    # previews keep the first few.
    batch = ingest.scan_root(cfg, catalog, only=config.dataset_ids, lazy=True)
    writes = {
        w.table: w
        for w in ingest.write_all(catalog, cfg.namespace, batch, bioimage.chunk_batch_rows, keep_scans=PREVIEW_ROWS)
    }
    for o in batch.failed + batch.refused:
        context.log.warning(o.error)
    for o in batch.ok:
        for w in o.warnings:
            context.log.info(f"{o.dataset_id}: {w}")
    context.log.info(
        f"{len(batch.ok)} stores ingested, {len(batch.failed)} failed, {len(batch.removed)} removed; "
        f"chunk_index: {writes[CHUNK_INDEX].rows_written} rows written"
    )
    yield dg.MaterializeResult(
        asset_key=STORE_REGISTRY_KEY,
        metadata={
            "stores_root": dg.MetadataValue.path(str(cfg.stores_dir)),
            "stores": len(batch.outcomes) + len(batch.unchanged) + len(batch.deferred) + len(batch.refused),
            "scanned": len(batch.outcomes),
            "ingested": len(batch.ok),
            "failed": len(batch.failed),
            "unchanged": len(batch.unchanged),
            "removed": len(batch.removed),
            "outcomes": store_outcomes(batch),
            "dagster/row_count": _total_rows(catalog, cfg.namespace, STORE_REGISTRY),
            "snapshot_committed": writes[STORE_REGISTRY].committed,
        },
    )
    yield dg.MaterializeResult(
        asset_key=VALIDATION_ISSUES_KEY,
        metadata=_table_metadata(catalog, cfg.namespace, writes[VALIDATION_ISSUES], VALIDATION_ISSUES_SCHEMA),
    )
    image_rows = image_assets_table(
        [
            row
            for o in batch.ok[:PREVIEW_ROWS]
            if o.scan
            for row in image_asset_rows(o.scan, o.fingerprint, batch.scanned_at)
        ]
    )
    yield dg.MaterializeResult(
        asset_key=IMAGE_ASSETS_KEY,
        metadata={
            **_table_metadata(catalog, cfg.namespace, writes[IMAGE_ASSETS], IMAGE_ASSETS_SCHEMA),
            "preview": preview(
                image_rows,
                [
                    "dataset_id",
                    "image_id",
                    "array_path",
                    "level",
                    "shape",
                    "dtype",
                    "chunk_shape",
                    "axes",
                    "plate_id",
                    "well_id",
                    "site_id",
                ],
            ),
        },
    )
    sample = _chunk_sample(batch)
    yield dg.MaterializeResult(
        asset_key=CHUNK_INDEX_KEY,
        metadata={
            **_table_metadata(catalog, cfg.namespace, writes[CHUNK_INDEX], CHUNK_INDEX_SCHEMA),
            "preview": preview(
                sample,
                ["dataset_id", "array_path", "chunk_coords", "storage_key", "stored", "byte_offset", "byte_length"],
            ),
        },
    )
