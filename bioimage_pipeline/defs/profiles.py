"""Profile assets — the tables ``profile_tables`` (every published profile and QC table), ``profile_links``,
``joined_profiles``, and the ``cytomining_warehouse`` they are exported to — built in one step.

The step reads, normalises and resolves every profile table, publishes those that meet the join contract
and their links, joins them to their images, and exports the warehouse once, last. One step, because the
four depend on one reading of the sources; each still reports its own metadata. A table that fails the
contract costs only itself: it is not published (its last good version, if any, stays), the other tables
are published and joined, and the blocking contract check then fails the run, so ``dagster asset
materialize`` exits non-zero.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_duckdb import DuckDBResource
from pyiceberg.catalog import Catalog

from bioimage_pipeline.catalog import load_table, total_rows
from bioimage_pipeline.defs.metadata import column_schema, markdown_table, preview
from bioimage_pipeline.defs.resources import CATALOG_POOL, BioimageResource
from bioimage_pipeline.defs.stores import (
    CHUNK_INDEX_KEY,
    GROUP,
    IMAGE_ASSETS_KEY,
    STORE_REGISTRY_KEY,
    VALIDATION_ISSUES_KEY,
)
from bioimage_pipeline.export import export_catalog
from bioimage_pipeline.joins import IMAGE_MATCHED, PROFILE_TABLE, JoinStats, build_joined_profiles
from bioimage_pipeline.profiles.normalize import KEY_COLUMNS, ROW_ID
from bioimage_pipeline.profiles.options import options_path
from bioimage_pipeline.profiles.pipeline import (
    LINKS_TABLE,
    PreparedProfiles,
    PublishResult,
    joinable_profile_tables,
    published_profile_tables,
    refresh_profiles,
)
from bioimage_pipeline.profiles.sources import discover_profile_sources
from bioimage_pipeline.sql import quote_identifier
from bioimage_pipeline.tables import JOINED_PROFILES

CONTRACT_CHECK = "profile_join_contract"
COVERAGE_CHECK = "join_coverage"
PROFILE_TABLES_KEY = dg.AssetKey("profile_tables")
PROFILE_LINKS_KEY = dg.AssetKey(LINKS_TABLE)
JOINED_PROFILES_KEY = dg.AssetKey(JOINED_PROFILES)
WAREHOUSE_KEY = dg.AssetKey("cytomining_warehouse")
#: What the profile sensor requests: the one step that builds them.
PROFILE_KEYS = (PROFILE_TABLES_KEY, PROFILE_LINKS_KEY, JOINED_PROFILES_KEY, WAREHOUSE_KEY)


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
        asset_key=PROFILE_TABLES_KEY,
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


def _site_offset_hints(prepared: PreparedProfiles) -> dict[str, str]:
    """Per table whose rows would mostly link under another site numbering: what to set, and where."""
    return {
        p.catalog_name: f"site_offset = {p.coverage.site_offset_hint} in {options_path(Path(p.table.source))}"
        for p in prepared.tables
        if p.coverage.site_offset_hint is not None
    }


def _coverage_result(
    stats: JoinStats, tables: list[str], unmatched, hints: dict[str, str] | None = None
) -> dg.AssetCheckResult:
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
        asset_key=JOINED_PROFILES_KEY,
        check_name=COVERAGE_CHECK,
        passed=stats.total_matched == stats.total_rows,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{stats.total_matched} of {stats.total_rows} profile rows linked to an image"
        + "".join(
            f"; {t}: most unlinked rows link with {h} (sites counted from another number)"
            for t, h in (hints or {}).items()
        ),
        metadata={
            "coverage": dg.MetadataValue.float(stats.total_matched / stats.total_rows if stats.total_rows else 1.0),
            "tables": dg.MetadataValue.md(markdown_table(per_table, ["table", "rows", "matched", "coverage"])),
            "unmatched_rows": preview(unmatched, rows=20),
            **({"site_offset_hints": dg.MetadataValue.json(hints)} if hints else {}),
        },
    )


def _profile_tables_result(
    catalog: Catalog, namespace: str, prepared: PreparedProfiles, published: PublishResult
) -> dg.MaterializeResult:
    """Every published profile and QC table: its rows and columns now, and what this run did to it."""
    done = {
        **{n: "written" for n in published.written},
        **{n: "unchanged" for n in published.unchanged},
        **{n: "not published (contract)" for n in published.blocked},
    }
    sources = {p.catalog_name: p.table.source for p in prepared.tables}
    rows: list[dict[str, Any]] = []
    total = 0
    for name in published_profile_tables(catalog, namespace):
        table = load_table(catalog, namespace, name)
        total += total_rows(table)
        rows.append(
            {
                "table": name,
                "role": table.properties.get("bioimage.role", "") if table is not None else "",
                "rows": total_rows(table),
                "columns": len(table.schema().fields) if table is not None else 0,
                "this run": done.get(name, "kept (source unreadable)"),
                "source": sources.get(name, table.properties.get("bioimage.source", "") if table else ""),
            }
        )
    rows += [{"table": n, "this run": "dropped (source gone)"} for n in published.dropped]
    rows += [{"table": n, "this run": done[n]} for n in published.blocked if n not in {r["table"] for r in rows}]
    return dg.MaterializeResult(
        asset_key=PROFILE_TABLES_KEY,
        metadata={
            "dagster/row_count": total,
            "tables": dg.MetadataValue.md(
                markdown_table(rows, ["table", "role", "rows", "columns", "this run", "source"])
            ),
            "tables_written": [n for n in published.written if n != LINKS_TABLE],
            "tables_unchanged": len(published.unchanged),
            "tables_dropped": published.dropped,
            "tables_not_published": published.blocked,
            "unreadable_sources": [error for _, error in prepared.failures],
        },
    )


def _profile_links_result(
    catalog: Catalog, namespace: str, prepared: PreparedProfiles, published: PublishResult
) -> dg.MaterializeResult:
    """How each table's rows were linked (by image_id, file name, or plate/well/site), from this run's
    resolution; a table carried over unchanged keeps the counts it had."""
    coverage = [
        {
            "table": p.catalog_name,
            "rows": p.coverage.rows,
            "linked": p.coverage.matched_rows,
            **{f"by {method}": n for method, n in sorted(p.coverage.methods.items())},
        }
        for p in prepared.tables
        if not p.blocked
    ]
    methods = sorted({k for row in coverage for k in row if k.startswith("by ")})
    links = load_table(catalog, namespace, LINKS_TABLE)
    return dg.MaterializeResult(
        asset_key=PROFILE_LINKS_KEY,
        metadata={
            "dagster/row_count": total_rows(links),
            "snapshot_committed": LINKS_TABLE in published.written,
            "tables": dg.MetadataValue.md(markdown_table(coverage, ["table", "rows", "linked", *methods])),
            **({"dagster/column_schema": column_schema(links.schema().as_arrow())} if links is not None else {}),
        },
    )


@dg.multi_asset(
    pool=CATALOG_POOL,
    specs=[
        dg.AssetSpec(
            PROFILE_TABLES_KEY,
            group_name=GROUP,
            deps=[IMAGE_ASSETS_KEY],
            description="Profile and QC tables read from the profiles root, keys normalised and resolved to "
            "images; those that meet the join contract published to the catalog, one Iceberg table each "
            "(profile_<name>, qc_<name>).",
            kinds={"iceberg"},
        ),
        dg.AssetSpec(
            PROFILE_LINKS_KEY,
            group_name=GROUP,
            deps=[IMAGE_ASSETS_KEY, PROFILE_TABLES_KEY],
            description="One row per link from a profile row to an image, with how it was made (image_id, "
            "file_name or plate_well_site).",
            kinds={"iceberg"},
        ),
        dg.AssetSpec(
            JOINED_PROFILES_KEY,
            group_name=GROUP,
            deps=[IMAGE_ASSETS_KEY, PROFILE_LINKS_KEY, PROFILE_TABLES_KEY],
            description="Every profile row exactly once, with the level-0 images it was measured on (image__* "
            "list columns) and image_matched: one Iceberg table per object kind (joined_profiles for single "
            "cells, joined_profiles_<compartment or level> for the others).",
            kinds={"iceberg", "duckdb"},
        ),
        dg.AssetSpec(
            WAREHOUSE_KEY,
            group_name=GROUP,
            deps=[
                STORE_REGISTRY_KEY,
                VALIDATION_ISSUES_KEY,
                IMAGE_ASSETS_KEY,
                CHUNK_INDEX_KEY,
                PROFILE_TABLES_KEY,
                PROFILE_LINKS_KEY,
                JOINED_PROFILES_KEY,
            ],
            description="The Cytomining Parquet warehouse: every catalog table exported once per run and "
            "published all at once (profiles.joined_profiles among them).",
            kinds={"parquet"},
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            CONTRACT_CHECK,
            asset=PROFILE_TABLES_KEY,
            blocking=True,
            description="Microscopy join contract on every normalised profile table: at least one row links to a "
            "catalogued image (ERROR: the table is not published and the run fails; the other tables go "
            "through); plate_id, well_id, site_id present (WARN).",
        ),
        dg.AssetCheckSpec(
            COVERAGE_CHECK,
            asset=JOINED_PROFILES_KEY,
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
    yield _profile_tables_result(catalog, cfg.namespace, prepared, published)
    yield _profile_links_result(catalog, cfg.namespace, prepared, published)

    tables = joinable_profile_tables(catalog, cfg.namespace)
    with duckdb.get_connection() as con:
        stats = build_joined_profiles(catalog, cfg.namespace, tables, con=con)
        keys = ", ".join([PROFILE_TABLE, ROW_ID, *KEY_COLUMNS])
        unmatched = joined = None
        # The preview shows the single-cell table where there is one, else the first kind.
        shown_table = next(iter(stats.tables), None)
        if stats.total_rows and shown_table is not None:
            # No ORDER BY: a sample stops at the first rows found instead of sorting a plate's worth of cells.
            if stats.total_matched < stats.total_rows:
                unmatched = con.sql(
                    " UNION ALL ".join(
                        f"(SELECT {keys} FROM {quote_identifier(j)} WHERE NOT {IMAGE_MATCHED} LIMIT 20)"
                        for j in stats.tables
                    )
                    + " LIMIT 20"
                ).to_arrow_table()
            prefix = stats.prefix(shown_table)
            shown = ", ".join(quote_identifier(c) for c in (*_PREVIEW, f"{prefix}count", f"{prefix}channel"))
            # Only the columns the preview shows: a joined table can be thousands of columns wide.
            joined = con.sql(f"SELECT {shown} FROM {quote_identifier(shown_table)} LIMIT 10").to_arrow_table()
    kinds = [
        {
            "joined table": name,
            "profile tables": ", ".join(members),
            "rows": sum(stats.rows[m] for m in members),
            "linked": sum(stats.matched[m] for m in members),
            "columns": len(stats.schemas[name]),
            "this run": "written" if name in stats.committed else "unchanged",
        }
        for name, members in stats.tables.items()
        if name in stats.schemas
    ]
    schema = stats.schemas.get(shown_table) if shown_table is not None else None
    kinds += [{"joined table": name, "this run": "dropped (no profile table of its kind)"} for name in stats.dropped]
    prefix = stats.prefix(shown_table) if shown_table is not None else stats.prefix()
    yield dg.MaterializeResult(
        asset_key=JOINED_PROFILES_KEY,
        metadata={
            "dagster/row_count": stats.total_rows,
            "rows_matched": stats.total_matched,
            "profile_tables": len(tables),
            "joined_tables": dg.MetadataValue.md(
                markdown_table(kinds, ["joined table", "profile tables", "rows", "linked", "columns", "this run"])
            ),
            "image_column_prefix": prefix,
            "snapshot_committed": bool(stats.committed),
            "tables_committed": stats.committed,
            **({"dagster/column_schema": column_schema(schema)} if schema is not None and stats.total_rows else {}),
            "preview": preview(joined, [*_PREVIEW, f"{prefix}count", f"{prefix}channel"]),
        },
    )
    yield _coverage_result(stats, tables, unmatched, _site_offset_hints(prepared))

    # Last, once: the warehouse is every table above as this run left it.
    manifest, new_version = export_catalog(catalog, cfg.namespace, cfg.warehouse_dir)
    warehouse_tables = [
        {"table": t["table_name"], "role": t["role"], "rows": t["row_count"], "columns": len(t["columns"])}
        for t in manifest.get("tables", [])
    ]
    yield dg.MaterializeResult(
        asset_key=WAREHOUSE_KEY,
        metadata={
            "warehouse": dg.MetadataValue.path(str(cfg.warehouse_dir)),
            "tables": dg.MetadataValue.md(markdown_table(warehouse_tables, ["table", "role", "rows", "columns"])),
            "dagster/row_count": sum(
                t["rows"] for t in warehouse_tables if t["role"] in ("profiles", "quality_control")
            ),
            "new_version_published": new_version,
            "profile_sources": len(sources),
        },
    )
    # Last: a failing blocking check fails the step once everything above is recorded.
    yield contract_check_result(prepared)


_PREVIEW = (PROFILE_TABLE, ROW_ID, *KEY_COLUMNS, IMAGE_MATCHED)
