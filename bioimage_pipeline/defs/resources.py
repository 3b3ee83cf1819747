"""The one resource the assets, checks and sensors share: where things are, and the catalog."""

from dataclasses import replace
from pathlib import Path

import dagster as dg
from pyiceberg.catalog import Catalog

from bioimage_pipeline.catalog import load_catalog
from bioimage_pipeline.config import PipelineConfig

#: The concurrency pool of every step that writes the catalog's tables (its limit is in ``dagster.yaml``:
#: ``concurrency.pools.default_limit``). One at a time across runs: concurrent commits are safe, but two
#: runs started together would scan the same changed stores twice.
CATALOG_POOL = "iceberg_catalog"


class BioimageResource(dg.ConfigurableResource):
    """Pipeline configuration. Unset fields come from ``BIOIMAGE_*`` variables and PyIceberg's own
    configuration when the resource is used, so the daemon, the webserver and ``dagster asset materialize``
    all read the environment they run in."""

    stores_dir: str | None = None
    profiles_dir: str | None = None
    warehouse_dir: str | None = None
    namespace: str | None = None
    quiet_seconds: float | None = None
    #: PyIceberg catalog properties that win over every other source (tests point these at a temp folder).
    catalog_properties: dict[str, str] = {}  # noqa: RUF012 - pydantic copies field defaults
    #: Rows per chunk_index batch (bounds memory while streaming).
    chunk_batch_rows: int = 262_144
    #: Most batches a run's changed stores are scanned in, each a step of its own that the executor runs
    #: in parallel (the multiprocess executor on this machine's cores; k8s, celery or docker across
    #: machines): set it to a few times the number of workers.
    scan_batches: int = 16
    #: Fewest files (the scan's cost) per batch: a step's start-up is not spent on a few small stores.
    scan_batch_files: int = 20_000
    #: Most stores a sensor run asks for; more settled stores mean more runs.
    max_stores_per_run: int = 200

    def config(self) -> PipelineConfig:
        base = PipelineConfig.from_env()
        overrides: dict[str, object] = {}
        for name in ("stores_dir", "profiles_dir", "warehouse_dir"):
            value = getattr(self, name)
            if value:
                overrides[name] = Path(value).absolute()
        if self.namespace:
            overrides["namespace"] = self.namespace
        if self.quiet_seconds is not None:
            overrides["quiet_seconds"] = self.quiet_seconds
        if self.catalog_properties:
            overrides["catalog_properties"] = dict(self.catalog_properties)
        return replace(base, **overrides)  # type: ignore[arg-type]

    def catalog(self) -> Catalog:
        return load_catalog(self.config())
