"""Profile assets: ``cytomining_warehouse`` and ``joined_profiles``, built in one step.

The step reads, normalises and resolves every profile table, publishes those that meet the join contract,
joins them to their images and exports the warehouse once. A table that fails the contract costs only
itself: it is not published (its last good version, if any, stays), the other tables are published and
joined, and the blocking contract check then fails the run, so ``dagster asset materialize`` exits non-zero.
"""

from collections.abc import Iterator

import dagster as dg
from dagster_duckdb import DuckDBResource

from bioimage_pipeline.catalog import load_table
from bioimage_pipeline.defs.metadata import column_schema, markdown_table, preview
from bioimage_pipeline.defs.resources import CATALOG_POOL, BioimageResource
from bioimage_pipeline.defs.stores import CHUNK_INDEX_KEY, GROUP
from bioimage_pipeline.export import export_catalog
from bioimage_pipeline.joins import IMAGE_MATCHED, PROFILE_TABLE, JoinStats, build_joined_profiles
from bioimage_pipeline.profiles.normalize import KEY_COLUMNS, ROW_ID
from bioimage_pipeline.profiles.pipeline import (
    PreparedProfiles,
    joinable_profile_tables,
    refresh_profiles,
)
from bioimage_pipeline.profiles.sources import discover_profile_sources
from bioimage_pipeline.sql import quote_identifier
from bioimage_pipeline.tables import JOINED_PROFILES

CONTRACT_CHECK = "profile_join_contract"
COVERAGE_CHECK = "join_coverage"


def contract_check_result(prepared: PreparedProfiles) -> dg.AssetCheckResult:
    """ERROR when a profile table's rows cannot be linked to images at all; WARN when only the recommended
    plate/well/site keys are missing or a source could not be read."""
    profiles = [p for p in prepared.tables if p.table.role == "profiles"]
    failing = [p for p in profiles if not p.contract.passed]
    warn_keys = [p for p in profiles if p.contract.missing_recommended]
    rows = [
        {
            "table": p.catalog_name,
            "rows": p.contract.rows,
            "resolved": p.contract.resolved_rows,
            "contract": "fail" if not p.contract.passed else ("warn" if p.contract.missing_recommended else "pass"),
            "missing": ", ".join(p.contract.missing_required + p.contract.missing_recommended),
            "problem": "; ".join(p.contract.problems),
        }
        for p in profiles
    ]
    passed = not failing and not warn_keys and not prepared.failures
    severity = dg.AssetCheckSeverity.ERROR if failing else dg.AssetCheckSeverity.WARN
    description = (
        f"{len(failing)} of {len(profiles)} profile tables link no row to an image and were not published: "
        + "; ".join(f"{p.catalog_name} ({p.table.source}): {'; '.join(p.contract.problems)}" for p in failing)
        if failing
        else f"{len(profiles)} profile tables link their rows to images"
    )
    return dg.AssetCheckResult(
        asset_key="cytomining_warehouse",
        check_name=CONTRACT_CHECK,
        passed=passed,
        severity=severity,
        description=description,
        metadata={
            "tables": dg.MetadataValue.md(
                markdown_table(rows, ["table", "rows", "resolved", "contract", "missing", "problem"])
            ),
            "failing_tables": [p.catalog_name for p in failing],
            "tables_missing_recommended_keys": {p.catalog_name: p.contract.missing_recommended for p in warn_keys},
            "unreadable_sources": [error for _, error in prepared.failures],
        },
    )


def _coverage_result(stats: JoinStats, tables: list[str], unmatched) -> dg.AssetCheckResult:
    per_table = [
        {
            "table": t,
            "rows": stats.rows[t],
            "matched": stats.matched[t],
            "coverage": f"{stats.matched[t] / stats.rows[t]:.1%}" if stats.rows[t] else "-",
        }
        for t in tables
    ]
    return dg.AssetCheckResult(
        asset_key="joined_profiles",
        check_name=COVERAGE_CHECK,
        passed=stats.total_matched == stats.total_rows,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{stats.total_matched} of {stats.total_rows} profile rows linked to an image",
        metadata={
            "coverage": dg.MetadataValue.float(stats.total_matched / stats.total_rows if stats.total_rows else 1.0),
            "tables": dg.MetadataValue.md(markdown_table(per_table, ["table", "rows", "matched", "coverage"])),
            "unmatched_rows": preview(unmatched, rows=20),
        },
    )


@dg.multi_asset(
    pool=CATALOG_POOL,
    specs=[
        dg.AssetSpec(
            "cytomining_warehouse",
            group_name=GROUP,
            deps=[CHUNK_INDEX_KEY],
            description="Profile tables read from the profiles root, keys normalised and resolved to images, "
            "those that meet the join contract published to the catalog; every table exported to the "
            "Cytomining Parquet warehouse.",
            kinds={"iceberg", "parquet"},
        ),
        dg.AssetSpec(
            "joined_profiles",
            group_name=GROUP,
            deps=["cytomining_warehouse"],
            description="Every profile row exactly once, with the level-0 images it was measured on (image__* "
            "list columns) and image_matched; also exported as profiles.joined_profiles.",
            kinds={"iceberg", "duckdb"},
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CONTRACT_CHECK,
            asset="cytomining_warehouse",
            blocking=True,
            description="Microscopy join contract on every normalised profile table: at least one row links to a "
            "catalogued image (ERROR: the table is not published and the run fails; the other tables go "
            "through); plate_id, well_id, site_id present (WARN).",
        ),
        dg.AssetCheckSpec(
            COVERAGE_CHECK,
            asset="joined_profiles",
            description="Share of profile rows linked to at least one image; rows that link nowhere are listed.",
        ),
    ],
)
def profiles(context: dg.AssetExecutionContext, bioimage: BioimageResource, duckdb: DuckDBResource) -> Iterator:
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    sources = discover_profile_sources(cfg.profiles_dir)
    prepared, published = refresh_profiles(catalog, cfg.namespace, sources, cfg.profile_aliases)
    for _, error in prepared.failures:
        context.log.warning(error)
    for p in prepared.tables:
        for problem in p.contract.problems if p.table.role == "profiles" else []:
            context.log.warning(f"{p.table.source}: {p.catalog_name} not published: {problem}")
    for warning in [*prepared.warnings, *(w for p in prepared.tables for w in p.contract.warnings)]:
        context.log.warning(warning)

    tables = joinable_profile_tables(catalog, cfg.namespace)
    with duckdb.get_connection() as con:
        stats = build_joined_profiles(catalog, cfg.namespace, tables, con=con)
        keys = ", ".join([PROFILE_TABLE, ROW_ID, *KEY_COLUMNS])
        unmatched = joined = None
        if stats.total_rows:
            # No ORDER BY: a sample stops at the first rows found instead of sorting a plate's worth of cells.
            if stats.total_matched < stats.total_rows:
                unmatched = con.sql(
                    f"SELECT {keys} FROM {JOINED_PROFILES} WHERE NOT {IMAGE_MATCHED} LIMIT 20"
                ).to_arrow_table()
            shown = ", ".join(
                quote_identifier(c) for c in (*_PREVIEW, f"{stats.prefix}count", f"{stats.prefix}channel")
            )
            # Only the columns the preview shows: a joined table can be thousands of columns wide.
            joined = con.sql(f"SELECT {shown} FROM {JOINED_PROFILES} LIMIT 10").to_arrow_table()
    manifest, new_version = export_catalog(catalog, cfg.namespace, cfg.warehouse_dir)
    warehouse_tables = [
        {"table": t["table_name"], "role": t["role"], "rows": t["row_count"], "columns": len(t["columns"])}
        for t in manifest.get("tables", [])
    ]
    yield dg.MaterializeResult(
        asset_key="cytomining_warehouse",
        metadata={
            "warehouse": dg.MetadataValue.path(str(cfg.warehouse_dir)),
            "tables": dg.MetadataValue.md(markdown_table(warehouse_tables, ["table", "role", "rows", "columns"])),
            "dagster/row_count": sum(
                t["rows"] for t in warehouse_tables if t["role"] in ("profiles", "quality_control")
            ),
            "profile_tables_written": published.written,
            "profile_tables_unchanged": len(published.unchanged),
            "profile_tables_dropped": published.dropped,
            "profile_tables_not_published": published.blocked,
            "new_version_published": new_version,
            "profile_sources": len(sources),
        },
    )
    table = load_table(catalog, cfg.namespace, JOINED_PROFILES)
    schema = table.schema().as_arrow() if table is not None and stats.total_rows else None
    yield dg.MaterializeResult(
        asset_key="joined_profiles",
        metadata={
            "dagster/row_count": stats.total_rows,
            "rows_matched": stats.total_matched,
            "profile_tables": len(tables),
            "image_column_prefix": stats.prefix,
            "snapshot_committed": stats.committed,
            **({"dagster/column_schema": column_schema(schema)} if schema is not None else {}),
            "preview": preview(joined, [*_PREVIEW, f"{stats.prefix}count", f"{stats.prefix}channel"]),
        },
    )
    yield _coverage_result(stats, tables, unmatched)
    # Last: a failing blocking check fails the step once everything above is recorded.
    yield contract_check_result(prepared)


_PREVIEW = (PROFILE_TABLE, ROW_ID, *KEY_COLUMNS, IMAGE_MATCHED)
