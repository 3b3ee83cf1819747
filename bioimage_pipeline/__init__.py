"""Catalog microscopy image stores into Apache Iceberg, validate them, and join profiles to images."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bioimage_pipeline.config import PipelineConfig
    from bioimage_pipeline.formats import scan_store
    from bioimage_pipeline.model import ArrayRecord, StoreScan

__all__ = ["ArrayRecord", "PipelineConfig", "StoreScan", "scan_store"]
__version__ = "0.1.0"

_EXPORTS = {
    "PipelineConfig": "bioimage_pipeline.config",
    "scan_store": "bioimage_pipeline.formats",
    "ArrayRecord": "bioimage_pipeline.model",
    "StoreScan": "bioimage_pipeline.model",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the command line and the Dagster code location import only what they need.
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bioimage_pipeline' has no attribute {name!r}")
