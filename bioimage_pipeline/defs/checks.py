"""Asset checks on the store tables, run as SQL in DuckDB over what the last run wrote."""

import dagster as dg
from dagster_duckdb import DuckDBResource
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from bioimage_pipeline.catalog import added_files, datasets_in, live_files, load_table, total_rows
from bioimage_pipeline.defs.metadata import markdown_table
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline.defs.stores import CHUNK_INDEX_KEY, IMAGE_ASSETS_KEY, VALIDATION_ISSUES_KEY
from bioimage_pipeline.duck import connect_catalog, register_files
from bioimage_pipeline.tables import CHUNK_INDEX, IMAGE_ASSETS, VALIDATION_ISSUES


def _last_written(bioimage: BioimageResource) -> tuple[Table | None, Table | None, list[DataFile]]:
    """(image_assets, chunk_index, the image_assets files the last commit added): the checks look at the stores
    the last run wrote, never the whole tables, so their cost follows the run, not the catalog."""
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    assets = load_table(catalog, cfg.namespace, IMAGE_ASSETS)
    return assets, load_table(catalog, cfg.namespace, CHUNK_INDEX), added_files(assets)


@dg.asset_check(
    asset=IMAGE_ASSETS_KEY,
    blocking=True,
    description="(dataset_id, array_path) identifies exactly one row of image_assets, in the stores the last "
    "run wrote (a store's rows are always replaced together, so no other rows can collide).",
)
def image_assets_key_unique(bioimage: BioimageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    assets, _, added = _last_written(bioimage)
    if assets is None or not added:
        return dg.AssetCheckResult(passed=True, description="no rows written yet")
    with duckdb.get_connection() as con:
        register_files(con, IMAGE_ASSETS, assets, added)
        rows = con.execute(
            f"SELECT dataset_id, array_path, count(*) AS copies FROM {IMAGE_ASSETS} "
            "GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT 50"
        ).fetchall()
    total = sum(f.record_count for f in added)
    duplicates = [{"dataset_id": d, "array_path": a, "copies": c} for d, a, c in rows]
    return dg.AssetCheckResult(
        passed=not duplicates,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(duplicates)} duplicated keys among the {total} rows last written"
        if duplicates
        else f"{total} rows last written, all keys unique",
        metadata={
            "rows_checked": total,
            "rows": total_rows(assets),
            "duplicates": dg.MetadataValue.md(markdown_table(duplicates, ["dataset_id", "array_path", "copies"])),
        },
    )


@dg.asset_check(
    asset=CHUNK_INDEX_KEY,
    description="For the stores the last run wrote, chunk_index has exactly the rows image_assets says each "
    "array has (every chunk of the grid, or only the stored ones where the grid exceeds the bound on rows per "
    "array), and lists the arrays with unwritten chunks (WARN: legal in Zarr, often a partial copy).",
)
def chunk_index_complete(bioimage: BioimageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    assets, chunks, added = _last_written(bioimage)
    if assets is None or chunks is None or not added:
        return dg.AssetCheckResult(passed=True, description="no chunked arrays catalogued yet")
    datasets = datasets_in(assets, added)
    with duckdb.get_connection() as con:
        register_files(con, IMAGE_ASSETS, assets, added)
        register_files(con, CHUNK_INDEX, chunks, live_files(chunks, datasets))
        # Rows written before chunks_indexed existed indexed the whole grid.
        rows = con.execute(f"""
            WITH c AS (SELECT dataset_id, array_path, count(*) AS n, count(*) FILTER (stored) AS stored
                       FROM {CHUNK_INDEX} GROUP BY ALL),
                 a AS (SELECT *, coalesce(chunks_indexed, chunk_count) AS indexed FROM {IMAGE_ASSETS})
            SELECT a.dataset_id, a.array_path, a.chunk_count, a.chunks_stored, coalesce(c.n, 0),
                   coalesce(c.stored, 0), a.indexed, CASE WHEN a.indexed > 0 THEN a.chunks_stored ELSE 0 END
            FROM a LEFT JOIN c USING (dataset_id, array_path)
            WHERE a.chunk_count > 0""").fetchall()
    mismatched = [r for r in rows if (r[6], r[7]) != (r[4], r[5])]
    partial = [r for r in rows if r[3] < r[2]]
    sparse = [r for r in rows if r[6] < r[2]]
    table = [
        {"dataset_id": r[0], "array_path": r[1], "chunks": r[2], "stored": r[3], "indexed": r[4]}
        for r in (mismatched or partial)[:50]
    ]
    if mismatched:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{len(mismatched)} arrays whose chunk_index rows differ from image_assets' counts",
            metadata={"arrays": dg.MetadataValue.md(markdown_table(table, list(table[0])))},
        )
    return dg.AssetCheckResult(
        passed=not partial,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(partial)} of {len(rows)} arrays have unwritten chunks"
            if partial
            else f"all {len(rows)} chunked arrays fully written"
        ),
        metadata={
            "arrays_checked": len(rows),
            "arrays_with_unwritten_chunks": len(partial),
            "arrays_indexed_by_stored_chunks_only": len(sparse),
            "arrays": dg.MetadataValue.md(
                markdown_table(table, ["dataset_id", "array_path", "chunks", "stored", "indexed"])
            ),
        },
    )


@dg.asset_check(
    asset=VALIDATION_ISSUES_KEY,
    description="OME-NGFF and CellMap hierarchy conformance of every store that declares one of those "
    "conventions (WARN). Problems are in the validation_issues table, one row per node and rule; "
    "SHOULD-level recommendations are counted but do not fail the check.",
)
def hierarchy_conformance(bioimage: BioimageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    cfg = bioimage.config()
    with duckdb.get_connection() as con:
        connect_catalog(bioimage.catalog(), cfg.namespace, con, only=[VALIDATION_ISSUES])
        per_store = con.execute(f"""
            SELECT dataset_id,
                   count(*) FILTER (severity = 'error') AS errors,
                   count(*) FILTER (severity = 'warning' AND NOT ends_with(rule, '.recommended')) AS warnings,
                   count(*) FILTER (ends_with(rule, '.recommended')) AS recommended,
                   arg_min(node_path || ': ' || message, CASE severity WHEN 'error' THEN 0 ELSE 1 END) AS first
            FROM {VALIDATION_ISSUES} GROUP BY ALL ORDER BY errors DESC, warnings DESC, dataset_id""").fetchall()
    rows = [
        dict(zip(("dataset_id", "errors", "warnings", "recommended", "first problem"), r, strict=True))
        for r in per_store
    ]
    failing = [r for r in rows if r["errors"] or r["warnings"]]
    errors = sum(r["errors"] for r in rows)
    warnings = sum(r["warnings"] for r in rows)
    return dg.AssetCheckResult(
        passed=not failing,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(failing)} stores break OME-NGFF/CellMap rules: {errors} errors, {warnings} warnings"
            if failing
            else "every store that declares a convention conforms to it"
        ),
        metadata={
            "stores_with_problems": len(failing),
            "errors": errors,
            "warnings": warnings,
            "recommendations": sum(r["recommended"] for r in rows),
            "stores": dg.MetadataValue.md(
                markdown_table(rows[:100], ["dataset_id", "errors", "warnings", "recommended", "first problem"])
            ),
        },
    )
