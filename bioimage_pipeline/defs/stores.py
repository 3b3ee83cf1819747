"""Store assets — the tables ``store_registry``, ``validation_issues``, ``image_assets``, ``chunk_index`` —
materialised by one graph of steps.

A planning step fingerprints every store and cuts the changed ones into batches; a step per batch scans
its stores and stages their rows as data files (the executor runs these in parallel: the multiprocess
executor over this machine's cores, or the k8s, celery and docker executors across machines); one last
step commits every table once, in the order that keeps a killed run honest (chunk_index, image_assets and
validation_issues first, store_registry last). Between steps pass only the plan, the staged files' manifests
and the stores' outcomes, never a scan. A run that fails before committing leaves its staged files
unreferenced; table maintenance removes them (``maintain_tables``, orphans older than a day).
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


def _first(scans: list[ingest.StagedScan], attribute: str) -> pa.Table | None:
    """The first rows the batches kept to preview, in batch order (each batch keeps a few)."""
    tables = [getattr(s, attribute) for s in scans if getattr(s, attribute) is not None]
    return pa.concat_tables(tables).slice(0, PREVIEW_ROWS) if tables else None


@dg.op(out={"plan": dg.Out(ingest.ScanBatch), "batches": dg.DynamicOut(ingest.StoreBatch)})
def plan_store_scans(context: dg.OpExecutionContext, config: ScanConfig, bioimage: BioimageResource) -> Iterator:
    """Fingerprint every store, and hand the ones to scan to workers in batches (see ``split_batches``)."""
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    plan = ingest.scan_root(cfg, catalog, only=config.dataset_ids, lazy=True)
    # Created here, before the workers start: they only load the tables.
    ingest.ensure_store_tables(catalog, cfg.namespace)
    batches = ingest.split_batches(plan, most=bioimage.scan_batches, min_files=bioimage.scan_batch_files)
    context.log.info(
        f"{len(plan.pending)} stores to scan in {len(batches)} batches; {len(plan.unchanged)} unchanged, "
        f"{len(plan.removed)} removed, {len(plan.deferred)} not selected"
    )
    plan.pending = []
    yield dg.Output(plan, "plan")
    for i, batch in enumerate(batches):
        yield dg.DynamicOutput(batch, output_name="batches", mapping_key=f"batch_{i:04d}")


@dg.op
def scan_store_batch(
    context: dg.OpExecutionContext, batch: ingest.StoreBatch, bioimage: BioimageResource
) -> ingest.StagedScan:
    """Scan one batch of stores and stage their rows as data files; commit nothing. What goes on is the files'
    manifest and the stores' outcomes, never the scans."""
    cfg = bioimage.config()
    staged = ingest.stage_stores(
        bioimage.catalog(),
        cfg.namespace,
        batch.stores,
        scanned_at=batch.scanned_at,
        max_chunk_rows=batch.max_chunk_rows,
        chunk_batch_rows=bioimage.chunk_batch_rows,
    )
    for o in staged.outcomes:
        if o.status != "ok":
            context.log.warning(o.error)
        for w in o.warnings:
            context.log.info(f"{o.dataset_id}: {w}")
    return staged


_STORE_OUTS = {
    STORE_REGISTRY: dg.Out(dagster_type=dg.Nothing),
    VALIDATION_ISSUES: dg.Out(dagster_type=dg.Nothing),
    IMAGE_ASSETS: dg.Out(dagster_type=dg.Nothing),
    CHUNK_INDEX: dg.Out(dagster_type=dg.Nothing),
}


@dg.op(pool=CATALOG_POOL, out=_STORE_OUTS)
def commit_store_tables(
    context: dg.OpExecutionContext,
    plan: ingest.ScanBatch,
    scans: list[ingest.StagedScan],
    bioimage: BioimageResource,
) -> Iterator[dg.Output]:
    """Commit every batch's staged files: each store table once, store_registry last."""
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    writes = {w.table: w for w in ingest.commit_staged(catalog, cfg.namespace, plan, scans)}
    for o in plan.refused:
        context.log.warning(o.error)
    context.log.info(
        f"{len(plan.ok)} stores ingested in {len(scans)} batches, {len(plan.failed)} failed, "
        f"{len(plan.removed)} removed; chunk_index: {writes[CHUNK_INDEX].rows_written} rows written"
    )
    yield dg.Output(
        None,
        STORE_REGISTRY,
        metadata={
            "stores_root": dg.MetadataValue.path(str(cfg.stores_dir)),
            "stores": len(plan.outcomes) + len(plan.unchanged) + len(plan.deferred) + len(plan.refused),
            "scanned": len(plan.outcomes),
            "ingested": len(plan.ok),
            "failed": len(plan.failed),
            "unchanged": len(plan.unchanged),
            "removed": len(plan.removed),
            "scan_batches": len(scans),
            "outcomes": store_outcomes(plan),
            "dagster/row_count": _total_rows(catalog, cfg.namespace, STORE_REGISTRY),
            "snapshot_committed": writes[STORE_REGISTRY].committed,
        },
    )
    yield dg.Output(
        None,
        VALIDATION_ISSUES,
        metadata=_table_metadata(catalog, cfg.namespace, writes[VALIDATION_ISSUES], VALIDATION_ISSUES_SCHEMA),
    )
    yield dg.Output(
        None,
        IMAGE_ASSETS,
        metadata={
            **_table_metadata(catalog, cfg.namespace, writes[IMAGE_ASSETS], IMAGE_ASSETS_SCHEMA),
            "preview": preview(
                _first(scans, "image_preview"),
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
    yield dg.Output(
        None,
        CHUNK_INDEX,
        metadata={
            **_table_metadata(catalog, cfg.namespace, writes[CHUNK_INDEX], CHUNK_INDEX_SCHEMA),
            "preview": preview(
                _first(scans, "chunk_preview"),
                ["dataset_id", "array_path", "chunk_coords", "storage_key", "stored", "byte_offset", "byte_length"],
            ),
        },
    )


@dg.config_mapping(config_schema={"dataset_ids": dg.Field(dg.Noneable([str]), is_required=False, default_value=None)})
def _scan_config(value: dict[str, Any]) -> dict[str, Any]:
    """``ops: {stores: {config: {dataset_ids: [...]}}}``, as a run of the one-step asset took it."""
    return {"plan_store_scans": {"config": value}}


@dg.graph(
    config=_scan_config,
    out={name: dg.GraphOut() for name in _STORE_OUTS},
)
def stores() -> dict[str, Any]:
    """Plan, scan in batches fanned out over the executor's workers, commit once."""
    plan, batches = plan_store_scans()
    scans = batches.map(scan_store_batch).collect()
    return dict(zip(_STORE_OUTS, commit_store_tables(plan, scans), strict=True))


_DESCRIPTIONS = {
    STORE_REGISTRY: "A row per store under the stores root: its fingerprint, format, status (ok, failed), "
    "error, counts. Every store is fingerprinted; changed stores are scanned (metadata only).",
    VALIDATION_ISSUES: "OME-NGFF and CellMap problems of the scanned stores: a row per node and rule, with "
    "its severity and message.",
    IMAGE_ASSETS: "One row per array (resolution level) of every ingested store: shapes, dtypes, "
    "chunking, axes, physical scale, channels, plate/well/site.",
    CHUNK_INDEX: "One row per chunk of every chunked array (Zarr chunks, shard inner chunks, TIFF tiles "
    "and strips): grid coordinates, storage key, stored or not, byte offset and length.",
}

#: The four store tables, written by one graph: a planning step, a scan step per batch of stores (run in
#: parallel by the multiprocess executor, or on other machines by the k8s, celery or docker executors), and
#: one committing step. Only file manifests and outcomes pass between steps.
store_tables = dg.AssetsDefinition.from_graph(
    stores,
    keys_by_output_name={name: dg.AssetKey(name) for name in _STORE_OUTS},
    internal_asset_deps={
        STORE_REGISTRY: set(),
        VALIDATION_ISSUES: {STORE_REGISTRY_KEY},
        IMAGE_ASSETS: {STORE_REGISTRY_KEY},
        CHUNK_INDEX: {IMAGE_ASSETS_KEY},
    },
    group_name=GROUP,
    descriptions_by_output_name=_DESCRIPTIONS,
    tags_by_output_name={
        name: {"dagster/kind/iceberg": "", **({"dagster/kind/python": ""} if name == STORE_REGISTRY else {})}
        for name in _STORE_OUTS
    },
)
