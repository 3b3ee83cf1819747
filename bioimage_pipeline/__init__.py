"""Catalog microscopy image stores into Apache Iceberg, validate them, and join profiles to images."""

from bioimage_pipeline.config import PipelineConfig
from bioimage_pipeline.formats import scan_store
from bioimage_pipeline.model import ArrayRecord, StoreScan

__all__ = ["ArrayRecord", "PipelineConfig", "StoreScan", "scan_store"]
__version__ = "0.1.0"
