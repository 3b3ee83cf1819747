"""Store assets: ``scanned_stores`` → ``image_assets`` → ``chunk_index``.

Each is unpartitioned; the work inside is incremental per store (see :mod:`bioimage_pipeline.ingest`).
The scan result travels between the three steps, so every store is scanned once per run.
"""

import dagster as dg
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog

from bioimage_pipeline import ingest
from bioimage_pipeline.catalog import load_table
from bioimage_pipeline.defs.metadata import PREVIEW_ROWS, column_schema, preview, store_outcomes
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline.duck import connect_catalog
from bioimage_pipeline.sql import quote_literal
from bioimage_pipeline.tables import (
    CHUNK_INDEX,
    CHUNK_INDEX_SCHEMA,
    IMAGE_ASSETS,
    IMAGE_ASSETS_SCHEMA,
    arrow_schema,
    image_asset_rows,
    image_assets_table,
)

#: One group: the five stages are one chain, and the UI draws one group as one graph.
GROUP = "bioimage"


class ScanConfig(dg.Config):
    """Which stores to (re)scan. The store sensor names the stores that have settled; left empty, every
    store under the stores root whose content changed is scanned."""

    dataset_ids: list[str] | None = None


def _total_rows(catalog: Catalog, namespace: str, name: str) -> int:
    table = load_table(catalog, namespace, name)
    snapshot = table.current_snapshot() if table is not None else None
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.additional_properties.get("total-records", "0"))


@dg.asset(
    group_name=GROUP,
    description="Every store under the stores root, fingerprinted; changed stores scanned (metadata only). "
    "Outcomes per store are recorded in the store_registry table.",
    kinds={"iceberg", "python"},
)
def scanned_stores(
    context: dg.AssetExecutionContext, config: ScanConfig, bioimage: BioimageResource
) -> dg.Output[ingest.ScanBatch]:
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    batch = ingest.scan_root(cfg, catalog, only=config.dataset_ids)
    for o in batch.failed + batch.refused:
        context.log.warning(o.error)
    for o in batch.ok:
        for w in o.warnings:
            context.log.info(f"{o.dataset_id}: {w}")
    issues = ingest.write_validation_issues(catalog, cfg.namespace, batch)
    return dg.Output(
        batch,
        metadata={
            "stores_root": dg.MetadataValue.path(str(cfg.stores_dir)),
            "stores": len(batch.outcomes) + len(batch.unchanged) + len(batch.deferred) + len(batch.refused),
            "scanned": len(batch.outcomes),
            "ingested": len(batch.ok),
            "failed": len(batch.failed),
            "unchanged": len(batch.unchanged),
            "removed": len(batch.removed),
            "outcomes": store_outcomes(batch),
            "validation_issues_committed": issues.committed,
        },
    )


@dg.asset(
    group_name=GROUP,
    description="One row per array (resolution level) of every ingested store: shapes, dtypes, chunking, "
    "axes, physical scale, channels, plate/well/site.",
    kinds={"iceberg"},
)
def image_assets(
    context: dg.AssetExecutionContext, scanned_stores: ingest.ScanBatch, bioimage: BioimageResource
) -> dg.Output[ingest.ScanBatch]:
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    write = ingest.write_image_assets(catalog, cfg.namespace, scanned_stores)
    context.log.info(
        f"image_assets: {write.rows_written} rows written for {len(scanned_stores.ok)} stores, "
        f"{len(scanned_stores.removed)} removed"
    )
    # The preview comes from the rows just written, in memory: reading them back would cost per store.
    rows = image_assets_table(
        [
            r
            for o in scanned_stores.ok[:PREVIEW_ROWS]
            if o.scan
            for r in image_asset_rows(o.scan, o.fingerprint, scanned_stores.scanned_at)
        ]
    )
    return dg.Output(
        scanned_stores,
        metadata={
            "dagster/row_count": _total_rows(catalog, cfg.namespace, IMAGE_ASSETS),
            "rows_written": write.rows_written,
            "stores_replaced": write.datasets_replaced,
            "snapshot_committed": write.committed,
            "dagster/column_schema": column_schema(arrow_schema(IMAGE_ASSETS_SCHEMA)),
            "preview": preview(
                rows,
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


@dg.asset(
    group_name=GROUP,
    description="One row per chunk of every chunked array (Zarr chunks, shard inner chunks, TIFF tiles and "
    "strips): grid coordinates, storage key, stored or not, byte offset and length.",
    kinds={"iceberg"},
)
def chunk_index(
    context: dg.AssetExecutionContext, image_assets: ingest.ScanBatch, bioimage: BioimageResource
) -> dg.MaterializeResult:
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    write = ingest.write_chunk_index(catalog, cfg.namespace, image_assets, bioimage.chunk_batch_rows)
    context.log.info(f"chunk_index: {write.rows_written} rows written")
    # Last, once the stores' rows are in every table: the registry never runs ahead of the data.
    registry = ingest.write_registry(catalog, cfg.namespace, image_assets)
    sample = None
    if image_assets.ok:
        con = connect_catalog(catalog, cfg.namespace, only=[CHUNK_INDEX])
        try:
            first = quote_literal(image_assets.ok[0].dataset_id)
            sample = con.sql(f"SELECT * FROM {CHUNK_INDEX} WHERE dataset_id = {first} LIMIT 10").to_arrow_table()
        finally:
            con.close()
    stored = None
    if sample is not None and sample.num_rows:
        stored = int(pc.sum(sample.column("stored")).as_py() or 0)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": _total_rows(catalog, cfg.namespace, CHUNK_INDEX),
            "rows_written": write.rows_written,
            "registry_snapshot_committed": registry.committed,
            "stores_replaced": write.datasets_replaced,
            "snapshot_committed": write.committed,
            "dagster/column_schema": column_schema(arrow_schema(CHUNK_INDEX_SCHEMA)),
            "preview": preview(
                sample,
                [
                    "dataset_id",
                    "array_path",
                    "chunk_coords",
                    "storage_key",
                    "stored",
                    "byte_offset",
                    "byte_length",
                ],
            ),
            **({"preview_stored_chunks": stored} if stored is not None else {}),
        }
    )
