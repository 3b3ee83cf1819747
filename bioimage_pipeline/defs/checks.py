"""Asset checks on the store tables, run as SQL over the catalog in DuckDB."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from bioimage_pipeline.defs.metadata import markdown_table
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline.defs.stores import chunk_index, image_assets
from bioimage_pipeline.duck import connect_catalog
from bioimage_pipeline.tables import CHUNK_INDEX, IMAGE_ASSETS


def _tables(con, names: list[str]) -> set[str]:
    found = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    return found & set(names)


@dg.asset_check(
    asset=image_assets,
    blocking=True,
    description="(dataset_id, array_path) identifies exactly one row of image_assets.",
)
def image_assets_key_unique(bioimage: BioimageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    cfg = bioimage.config()
    with duckdb.get_connection() as con:
        connect_catalog(bioimage.catalog(), cfg.namespace, con)
        if not _tables(con, [IMAGE_ASSETS]):
            return dg.AssetCheckResult(passed=True, description="image_assets is empty")
        rows = con.execute(
            f"SELECT dataset_id, array_path, count(*) AS copies FROM {IMAGE_ASSETS} "
            "GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT 50"
        ).fetchall()
        total = con.execute(f"SELECT count(*) FROM {IMAGE_ASSETS}").fetchone()[0]
    duplicates = [{"dataset_id": d, "array_path": a, "copies": c} for d, a, c in rows]
    return dg.AssetCheckResult(
        passed=not duplicates,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(duplicates)} duplicated keys among {total} rows"
        if duplicates
        else f"{total} rows, all keys unique",
        metadata={
            "rows": total,
            "duplicates": dg.MetadataValue.md(markdown_table(duplicates, ["dataset_id", "array_path", "copies"])),
        },
    )


@dg.asset_check(
    asset=chunk_index,
    description="chunk_index has exactly the chunks image_assets counts for every array, and lists "
    "the arrays with unwritten chunks (WARN: legal in Zarr, often a partial copy).",
)
def chunk_index_complete(bioimage: BioimageResource, duckdb: DuckDBResource) -> dg.AssetCheckResult:
    cfg = bioimage.config()
    with duckdb.get_connection() as con:
        connect_catalog(bioimage.catalog(), cfg.namespace, con)
        if len(_tables(con, [IMAGE_ASSETS, CHUNK_INDEX])) < 2:
            return dg.AssetCheckResult(passed=True, description="no chunked arrays catalogued yet")
        rows = con.execute(f"""
            WITH c AS (SELECT dataset_id, array_path, count(*) AS n, count(*) FILTER (stored) AS stored
                       FROM {CHUNK_INDEX} GROUP BY ALL)
            SELECT a.dataset_id, a.array_path, a.chunk_count, a.chunks_stored, coalesce(c.n, 0), coalesce(c.stored, 0)
            FROM {IMAGE_ASSETS} a LEFT JOIN c USING (dataset_id, array_path)
            WHERE a.chunk_count > 0""").fetchall()
    mismatched = [r for r in rows if (r[2], r[3]) != (r[4], r[5])]
    partial = [r for r in rows if r[3] < r[2]]
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
            "arrays": dg.MetadataValue.md(
                markdown_table(table, ["dataset_id", "array_path", "chunks", "stored", "indexed"])
            ),
        },
    )
