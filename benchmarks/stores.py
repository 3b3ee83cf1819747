"""Generated benchmark stores: written fresh into a temporary directory on every run, never committed.

Both tools must be able to read them, so they are Zarr v2 (the peer's ``ZarrV2Adapter`` opens them with
``zarr.open``; it has no reader for N5 or Zarr v3 chunk data). Written with plain ``zarr`` and JSON so that
nothing here depends on either tool's own writers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr


@dataclass(frozen=True)
class StoreSet:
    """Stores of one scenario and what a correct catalog holds after ingesting all of them."""

    paths: list[Path]
    #: chunk_index rows expected (the full chunk grid of every array, stored or not).
    chunk_rows: int
    #: image_assets rows expected (one per array, for both tools).
    array_rows: int
    description: str


def metadata_only_array(path: Path, rows: int, cols: int) -> StoreSet:
    """A ``rows``×``cols`` uint8 Zarr v2 array with 1×1 chunks and no chunk files: ``rows*cols`` chunks.

    Only ``.zarray`` is written, so the cost measured is the catalog's, not the disk's. (Such a store is
    realistic: a freshly created array, or a sparse one whose chunks are all fill value.)
    """
    zarr.create_array(store=str(path), shape=(rows, cols), chunks=(1, 1), dtype="uint8", zarr_format=2)
    return StoreSet([path], rows * cols, 1, f"metadata-only Zarr v2 array {rows}x{cols}, chunks 1x1")


#: Shape of level 0 of each small image (c, y, x), its chunks, and its number of resolution levels.
SMALL_SHAPE = (2, 256, 256)
SMALL_CHUNKS = (1, 64, 64)
SMALL_LEVELS = 3


def _grid(shape: tuple[int, ...], chunks: tuple[int, ...]) -> int:
    return math.prod(-(-s // c) for s, c in zip(shape, chunks, strict=True))


def small_ome_zarr(path: Path, seed: int) -> tuple[int, int]:
    """One small OME-Zarr 0.4 image (Zarr v2): 2 channels, 3 levels, real uint16 chunk data.

    Returns (chunks, arrays). Pixel data is random so that compressed chunks have realistic sizes.
    """
    rng = np.random.default_rng(seed)
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    datasets = []
    chunks_total = 0
    for level in range(SMALL_LEVELS):
        c, y, x = SMALL_SHAPE
        shape = (c, y >> level, x >> level)
        chunks = (1, min(SMALL_CHUNKS[1], shape[1]), min(SMALL_CHUNKS[2], shape[2]))
        array = root.create_array(str(level), shape=shape, chunks=chunks, dtype="uint16")
        array[...] = rng.integers(0, 4096, size=shape, dtype=np.uint16)
        chunks_total += _grid(shape, chunks)
        factor = float(2**level)
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": [1.0, 0.65 * factor, 0.65 * factor]}],
            }
        )
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": path.name,
            # Recommended by the spec; the levels are independent random data, not a real downsampling.
            "type": "random",
            "metadata": {"description": "independent random levels written by benchmarks/stores.py"},
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": datasets,
        }
    ]
    return chunks_total, SMALL_LEVELS


def small_stores(root: Path, count: int) -> StoreSet:
    """``count`` small OME-Zarr images directly under ``root`` (``image_000.ome.zarr`` …)."""
    root.mkdir(parents=True, exist_ok=True)
    paths, chunk_rows, array_rows = [], 0, 0
    for i in range(count):
        path = root / f"image_{i:03d}.ome.zarr"
        chunks, arrays = small_ome_zarr(path, seed=i)
        paths.append(path)
        chunk_rows += chunks
        array_rows += arrays
    c, y, x = SMALL_SHAPE
    description = f"{count} OME-Zarr 0.4 images, {c}x{y}x{x} uint16, {SMALL_LEVELS} levels, chunks 1x64x64, random data"
    return StoreSet(paths, chunk_rows, array_rows, description)
