"""Reading ``store_registry``, the table of every store's state: a row per store, read whole.

Its own module, free of the scanners, so that ``status`` and the sensors read it without importing them.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog

from bioimage_pipeline.catalog import read_table
from bioimage_pipeline.tables import STORE_REGISTRY


def read_registry(catalog: Catalog, namespace: str) -> dict[str, dict[str, Any]]:
    """Every registered store's row, by dataset_id (empty before the first run)."""
    table = read_table(catalog, namespace, STORE_REGISTRY)
    return {} if table is None else registry_of(table)


def registry_of(table: pa.Table) -> dict[str, dict[str, Any]]:
    """Rows of a ``store_registry`` Arrow table, by dataset_id."""
    return {row["dataset_id"]: row for row in table.to_pylist()}
