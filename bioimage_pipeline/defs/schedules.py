"""A daily full refresh: catches anything a sensor could not (a run that failed, a store fixed in place)."""

import dagster as dg

from bioimage_pipeline.defs.sensors import ALL_ASSETS

refresh_job = dg.define_asset_job(
    "refresh_everything",
    selection=ALL_ASSETS,
    description="Every store and profile table, rescanned where changed.",
)

nightly_refresh = dg.ScheduleDefinition(
    name="nightly_refresh",
    job=refresh_job,
    cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Re-runs the whole graph at 03:00; unchanged stores and profiles cost a fingerprint each.",
)
