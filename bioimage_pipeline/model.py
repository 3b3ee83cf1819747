"""The canonical result of scanning one store: one :class:`ArrayRecord` per array (resolution level).

Scanners for every format produce these; ``image_assets`` rows and ``chunk_index`` batches are derived
from them in :mod:`bioimage_pipeline.tables`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import pyarrow as pa


class ChunkSource(Protocol):
    """Enumerates the chunks of one array as Arrow batches, in bounded memory.

    Batches have the columns of :func:`bioimage_pipeline.tables.chunk_batch_schema`; the writer adds the
    ``dataset_id`` and ``array_path`` columns.
    """

    @property
    def chunk_count(self) -> int:
        """Chunks in the grid (inner chunks for sharded arrays, tiles or strips for TIFF)."""
        ...

    @property
    def stored_count(self) -> int:
        """Chunks that are present in storage."""
        ...

    @property
    def stored_bytes(self) -> int:
        """Bytes of storage the array's chunks occupy (shard files count whole)."""
        ...

    def batches(self, max_rows: int, rows: range | None = None) -> Iterator[pa.RecordBatch]:
        """Batches of the chunks numbered by ``rows`` (all chunks when None), in grid order."""
        ...

    def stored_batches(self, max_rows: int, rows: range | None = None) -> Iterator[pa.RecordBatch]:
        """Batches of the stored chunks only, numbered by ``rows`` among them (all when None), in grid order:
        the index of an array whose declared grid is too large to list chunk by chunk."""
        ...


#: Which of an array's chunks get ``chunk_index`` rows: every chunk of the grid, only the stored ones (the
#: grid is larger than the configured bound), or none (even the stored chunks are more than the bound).
ChunkRows = Literal["all", "stored", "none"]


@dataclass
class ArrayRecord:
    """One array of one image: everything ``image_assets`` records about it."""

    image_id: str
    array_path: str
    level: int
    uri: str
    storage_variant: str  # "zarr-v2", "zarr-v3", "tiff" or "n5"
    shape: list[int]
    dtype: str
    kind: str = "image"  # "image" or "label"
    ngff_version: str | None = None
    chunk_shape: list[int] | None = None
    shard_shape: list[int] | None = None
    axes: list[str] | None = None
    axis_types: list[str | None] | None = None
    axis_units: list[str | None] | None = None
    scale: list[float] | None = None
    translation: list[float] | None = None
    channel_names: list[str] | None = None
    plate_id: str | None = None
    well_id: str | None = None
    site_id: str | None = None
    codecs: list[str] = field(default_factory=list)
    chunk_key_encoding: str | None = None
    order: str | None = None
    chunks: ChunkSource | None = field(default=None, repr=False, compare=False)
    chunk_rows: ChunkRows = "all"

    @property
    def chunk_count(self) -> int:
        return self.chunks.chunk_count if self.chunks is not None else 0

    @property
    def chunks_stored(self) -> int:
        return self.chunks.stored_count if self.chunks is not None else 0

    @property
    def stored_bytes(self) -> int:
        return self.chunks.stored_bytes if self.chunks is not None else 0

    @property
    def chunks_indexed(self) -> int:
        """Rows this array gets in ``chunk_index``."""
        if self.chunk_rows == "none":
            return 0
        return self.chunks_stored if self.chunk_rows == "stored" else self.chunk_count

    def limit_chunk_rows(self, bound: int) -> str | None:
        """Index only what fits in ``bound`` rows; returns the warning that says what was left out."""
        if self.chunk_count <= bound:
            self.chunk_rows = "all"
            return None
        if self.chunks_stored <= bound:
            self.chunk_rows = "stored"
            return (
                f"{self.array_path}: {self.chunk_count:,} chunks in the grid, more than the {bound:,} chunk_index "
                f"rows allowed per array; only its {self.chunks_stored:,} stored chunks are indexed"
            )
        self.chunk_rows = "none"
        return (
            f"{self.array_path}: {self.chunk_count:,} chunks in the grid and {self.chunks_stored:,} stored, more than "
            f"the {bound:,} chunk_index rows allowed per array; none are indexed (counts are kept)"
        )


@dataclass
class StoreScan:
    """Everything one scan of one store found. ``warnings`` never stop the store from ingesting."""

    dataset_id: str
    uri: str
    format: str  # "ome-zarr", "zarr", "ome-tiff", "tiff" or "n5"
    arrays: list[ArrayRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def image_ids(self) -> list[str]:
        return sorted({a.image_id for a in self.arrays})

    @property
    def chunk_count(self) -> int:
        return sum(a.chunk_count for a in self.arrays)

    @property
    def chunks_indexed(self) -> int:
        return sum(a.chunks_indexed for a in self.arrays)
