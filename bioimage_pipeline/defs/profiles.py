"""Profile assets: ``cytomining_warehouse`` → ``joined_profiles``, with the join contract between them.

The contract check is computed by the warehouse step itself (it is what normalises and resolves the
profile tables) and is blocking: a table whose rows cannot name their images stops ``joined_profiles``.
"""

from collections.abc import Iterator

import dagster as dg
from dagster_duckdb import DuckDBResource

from bioimage_pipeline.catalog import load_table
from bioimage_pipeline.defs.metadata import column_schema, markdown_table, preview
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline.defs.stores import GROUP, chunk_index
from bioimage_pipeline.duck import connect_catalog, quote_identifier
from bioimage_pipeline.export import export_catalog, export_joined
from bioimage_pipeline.joins import IMAGE_MATCHED, PROFILE_TABLE, build_joined_profiles
from bioimage_pipeline.profiles.normalize import KEY_COLUMNS, ROW_ID
from bioimage_pipeline.profiles.pipeline import (
    PreparedProfiles,
    joinable_profile_tables,
    refresh_profiles,
)
from bioimage_pipeline.profiles.sources import discover_profile_sources
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
        f"{len(failing)} of {len(profiles)} profile tables cannot be linked to images: "
        + "; ".join(f"{p.catalog_name}: {'; '.join(p.contract.problems)}" for p in failing)
        if failing
        else f"{len(profiles)} profile tables resolve dataset_id and image_id"
    )
    return dg.AssetCheckResult(
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


@dg.asset(
    group_name=GROUP,
    deps=[chunk_index],
    description="Profile tables read from the profiles root, keys normalised and resolved to images, published "
    "to the catalog; then every table exported to the Cytomining Parquet warehouse.",
    kinds={"iceberg", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            CONTRACT_CHECK,
            asset="cytomining_warehouse",
            blocking=True,
            description="Microscopy join contract on every normalised profile table: dataset_id and image_id "
            "resolvable (ERROR, blocks joined_profiles); plate_id, well_id, site_id present (WARN).",
        )
    ],
)
def cytomining_warehouse(context: dg.AssetExecutionContext, bioimage: BioimageResource) -> Iterator:
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    sources = discover_profile_sources(cfg.profiles_dir)
    prepared, published = refresh_profiles(catalog, cfg.namespace, sources, cfg.profile_aliases)
    for _, error in prepared.failures:
        context.log.warning(error)
    for warning in prepared.warnings:
        context.log.info(warning)
    manifest, new_version = export_catalog(catalog, cfg.namespace, cfg.warehouse_dir, include_joined=False)
    tables = [
        {"table": t["table_name"], "role": t["role"], "rows": t["row_count"], "columns": len(t["columns"])}
        for t in manifest.get("tables", [])
    ]
    yield dg.Output(
        None,
        metadata={
            "warehouse": dg.MetadataValue.path(str(cfg.warehouse_dir)),
            "tables": dg.MetadataValue.md(markdown_table(tables, ["table", "role", "rows", "columns"])),
            "dagster/row_count": sum(t["rows"] for t in tables if t["role"] in ("profiles", "quality_control")),
            "profile_tables_written": published.written,
            "profile_tables_unchanged": len(published.unchanged),
            "profile_tables_dropped": published.dropped,
            "new_version_published": new_version,
            "profile_sources": len(sources),
        },
    )
    yield contract_check_result(prepared)


@dg.asset(
    group_name=GROUP,
    deps=[cytomining_warehouse],
    description="Every profile row exactly once, with the level-0 images it was measured on (image__* list "
    "columns) and image_matched; also exported as profiles.joined_profiles.",
    kinds={"iceberg", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            COVERAGE_CHECK,
            asset="joined_profiles",
            description="Share of profile rows linked to at least one image; rows that link nowhere are listed.",
        )
    ],
)
def joined_profiles(context: dg.AssetExecutionContext, bioimage: BioimageResource, duckdb: DuckDBResource) -> Iterator:
    cfg = bioimage.config()
    catalog = bioimage.catalog()
    tables = joinable_profile_tables(catalog, cfg.namespace)
    with duckdb.get_connection() as con:
        stats = build_joined_profiles(catalog, cfg.namespace, tables, con=con)
        connect_catalog(catalog, cfg.namespace, con, only=[JOINED_PROFILES])
        keys = ", ".join([PROFILE_TABLE, ROW_ID, *KEY_COLUMNS])
        unmatched = joined = None
        if stats.total_rows:
            unmatched = con.sql(
                f"SELECT {keys} FROM {JOINED_PROFILES} WHERE NOT {IMAGE_MATCHED} "
                f"ORDER BY {PROFILE_TABLE}, {ROW_ID} LIMIT 20"
            ).to_arrow_table()
            shown = ", ".join(
                quote_identifier(c)
                for c in (
                    PROFILE_TABLE,
                    ROW_ID,
                    *KEY_COLUMNS,
                    IMAGE_MATCHED,
                    f"{stats.prefix}count",
                    f"{stats.prefix}channel",
                )
            )
            # Only the columns the preview shows: a joined table can be thousands of columns wide.
            joined = con.sql(f"SELECT {shown} FROM {JOINED_PROFILES} LIMIT 10").to_arrow_table()
    export_joined(catalog, cfg.namespace, cfg.warehouse_dir)
    table = load_table(catalog, cfg.namespace, JOINED_PROFILES)
    schema = table.schema().as_arrow() if table is not None and stats.total_rows else None
    yield dg.Output(
        None,
        metadata={
            "dagster/row_count": stats.total_rows,
            "rows_matched": stats.total_matched,
            "profile_tables": len(tables),
            "image_column_prefix": stats.prefix,
            "snapshot_committed": stats.committed,
            **({"dagster/column_schema": column_schema(schema)} if schema is not None else {}),
            "preview": preview(
                joined,
                [
                    PROFILE_TABLE,
                    ROW_ID,
                    *KEY_COLUMNS,
                    IMAGE_MATCHED,
                    f"{stats.prefix}count",
                    f"{stats.prefix}channel",
                ],
            ),
        },
    )
    per_table = [
        {
            "table": t,
            "rows": stats.rows[t],
            "matched": stats.matched[t],
            "coverage": f"{stats.matched[t] / stats.rows[t]:.1%}" if stats.rows[t] else "-",
        }
        for t in tables
    ]
    yield dg.AssetCheckResult(
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
