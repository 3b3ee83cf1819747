"""Table maintenance as a scheduled job: snapshot expiry, removal of unreferenced files, compaction.

Not an asset: it changes no table's content, only how many files hold it. It runs alongside the
pipeline's own runs; every step is a retried commit that never deletes what a retained snapshot reads.
"""

import dagster as dg

from bioimage_pipeline.defs.metadata import markdown_table
from bioimage_pipeline.defs.resources import CATALOG_POOL, BioimageResource
from bioimage_pipeline.maintenance import maintain_catalog, retention_of


@dg.op(
    pool=CATALOG_POOL,
    description="Expire snapshots past the retention, delete unreferenced files, compact small files.",
)
def maintain_tables(context: dg.OpExecutionContext, bioimage: BioimageResource) -> dg.Output[None]:
    cfg = bioimage.config()
    report = maintain_catalog(bioimage.catalog(), cfg.namespace, retention_of(cfg))
    rows = [
        {
            "table": t.table,
            "snapshots expired": t.snapshots_expired,
            "files deleted": t.files_deleted,
            "orphans deleted": t.orphans_deleted,
            "files compacted": t.files_compacted,
            "data files": t.files_on_disk,
            "live": t.live_files,
        }
        for t in report.tables
    ]
    for t in report.tables:
        if t.skipped:
            context.log.info(f"{t.table}: {t.skipped}")
    return dg.Output(
        None,
        metadata={
            "data_files_on_disk": report.files_on_disk,
            "live_data_files": report.live_files,
            "tables": dg.MetadataValue.md(markdown_table(rows, list(rows[0]) if rows else ["table"])),
        },
    )


@dg.job(description="Keeps the catalog's files within a small multiple of its live ones.")
def table_maintenance() -> None:
    maintain_tables()


hourly_maintenance = dg.ScheduleDefinition(
    name="hourly_maintenance",
    job=table_maintenance,
    cron_schedule="30 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Table maintenance every hour (BIOIMAGE_SNAPSHOT_RETENTION, BIOIMAGE_ORPHAN_RETENTION).",
)
