"""The ``bioimage_pipeline`` code location."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from bioimage_pipeline.defs.checks import chunk_index_complete, hierarchy_conformance, image_assets_key_unique
from bioimage_pipeline.defs.maintenance import hourly_maintenance, table_maintenance
from bioimage_pipeline.defs.profiles import profiles
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline.defs.schedules import nightly_refresh, refresh_job
from bioimage_pipeline.defs.sensors import profile_sensor, store_sensor
from bioimage_pipeline.defs.stores import stores

ASSETS = [stores, profiles]
CHECKS = [hierarchy_conformance, image_assets_key_unique, chunk_index_complete]


def build_definitions(bioimage: BioimageResource | None = None) -> dg.Definitions:
    """Definitions with the given configuration (tests pass temporary roots and catalog)."""
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=CHECKS,
        sensors=[store_sensor, profile_sensor],
        schedules=[nightly_refresh, hourly_maintenance],
        jobs=[refresh_job, table_maintenance],
        resources={
            "bioimage": bioimage or BioimageResource(),
            "duckdb": DuckDBResource(database=":memory:"),
        },
        # Every run writes the same tables in sequence; a process per step buys nothing and costs seconds.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
