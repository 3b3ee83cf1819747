"""OME-TIFF and plain TIFF: every series and pyramid level, with tiles or strips as chunks.

Only tags are read (tifffile parses the IFDs); offsets and byte counts of every tile or strip come from
the TIFF itself, so ``chunk_index`` locates each segment without decoding a pixel.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import tifffile

from bioimage_pipeline.chunks import ExplicitChunks
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.filenames import parse_file_name
from bioimage_pipeline.formats.omexml import OmeMetadata, parse_ome_xml
from bioimage_pipeline.model import ArrayRecord, StoreScan

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")

_AXIS_TYPES = {"x": "space", "y": "space", "z": "space", "t": "time", "c": "channel", "s": "channel"}


def _axis_names(axes: str) -> list[str]:
    return [a.lower() for a in axes]


def _ome_scale(
    ome_image: Any, axes: list[str], shape: tuple[int, ...], base_shape: tuple[int, ...]
) -> tuple[list[float] | None, list[str | None] | None]:
    if ome_image is None or not ome_image.physical_sizes:
        return None, None
    scale: list[float] = []
    units: list[str | None] = []
    for name, size, base in zip(axes, shape, base_shape, strict=True):
        key = name.upper()
        if key in ome_image.physical_sizes:
            factor = base / size if size else 1.0
            scale.append(ome_image.physical_sizes[key] * factor)
            units.append(ome_image.physical_units.get(key))
        else:
            scale.append(1.0)
            units.append(None)
    return scale, units


def _imagej_scale(
    tif: tifffile.TiffFile, axes: list[str], shape: tuple[int, ...], base_shape: tuple[int, ...]
) -> tuple[list[float] | None, list[str | None] | None]:
    meta = tif.imagej_metadata or {}
    page = tif.pages.first
    unit = meta.get("unit")
    xres = page.tags.get("XResolution")
    yres = page.tags.get("YResolution")
    if not unit or xres is None or yres is None:
        return None, None
    unit_name = {
        "micron": "micrometer",
        "\\u00B5m": "micrometer",
        "µm": "micrometer",
        "um": "micrometer",
        "nm": "nanometer",
        "mm": "millimeter",
    }.get(unit)
    if unit_name is None:
        return None, None

    def size(res: Any) -> float | None:
        num, den = res.value
        return den / num if num else None

    sizes = {"x": size(xres), "y": size(yres), "z": meta.get("spacing")}
    scale: list[float] = []
    units: list[str | None] = []
    for name, n, base in zip(axes, shape, base_shape, strict=True):
        value = sizes.get(name)
        if value:
            scale.append(float(value) * (base / n if n else 1.0))
            units.append(unit_name)
        else:
            scale.append(1.0)
            units.append(None)
    return scale, units


def _compression(page: Any, path: Path) -> tifffile.COMPRESSION:
    try:
        return tifffile.COMPRESSION(int(page.compression))
    except ValueError as exc:
        raise StoreError(path, f"unknown TIFF compression {int(page.compression)}") from exc


def _level_chunks(level: Any, base_dir: Path, path: Path) -> tuple[ExplicitChunks, list[int]]:
    keyframe = level.keyframe
    page_shape = tuple(keyframe.shape)
    shape = tuple(level.shape)
    n_lead = len(shape) - len(page_shape)
    lead = shape[:n_lead] if n_lead >= 0 and shape[n_lead:] == page_shape else (len(level.pages),)
    per_page_grid = tuple(int(c) for c in keyframe.chunked)
    seg_shape = [int(c) for c in keyframe.chunks]
    n_seg = math.prod(per_page_grid)
    pages = list(level.pages)
    n_pages = math.prod(lead)
    if len(pages) < n_pages:
        pages += [None] * (n_pages - len(pages))
    pages = pages[:n_pages]
    offsets = np.zeros((n_pages, n_seg), np.int64)
    lengths = np.zeros((n_pages, n_seg), np.int64)
    files: list[str] = []
    file_index = np.zeros(n_pages, np.int32)
    file_ids: dict[str, int] = {}
    for p, page in enumerate(pages):
        if page is None:
            file_index[p] = file_ids.setdefault(path.name, len(file_ids))
            continue
        _compression(page.keyframe if getattr(page, "keyframe", None) is not None else page, path)
        page_offsets, page_lengths = page.dataoffsets, page.databytecounts
        if len(page_offsets) != n_seg:
            raise StoreError(path, f"page {p} has {len(page_offsets)} segments where {n_seg} were expected")
        offsets[p], lengths[p] = page_offsets, page_lengths
        owner = Path(page.parent.filehandle.path)
        try:
            key = str(owner.relative_to(base_dir).as_posix())
        except ValueError:
            key = str(owner)
        file_index[p] = file_ids.setdefault(key, len(file_ids))
    files = list(file_ids)
    lead_coords = np.stack(np.unravel_index(np.arange(n_pages), lead), axis=1) if lead else np.zeros((n_pages, 0))
    seg_coords = np.stack(np.unravel_index(np.arange(n_seg), per_page_grid), axis=1)
    coords = np.concatenate([np.repeat(lead_coords, n_seg, axis=0), np.tile(seg_coords, (n_pages, 1))], axis=1).astype(
        np.int64
    )
    keys = pa.DictionaryArray.from_arrays(pa.array(np.repeat(file_index, n_seg)), pa.array(files)).cast(pa.string())
    chunk_shape = [1] * len(lead) + seg_shape
    return ExplicitChunks(coords, keys, offsets.reshape(-1), lengths.reshape(-1)), chunk_shape


def _open(path: Path) -> tifffile.TiffFile:
    try:
        return tifffile.TiffFile(path)
    except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError) as exc:
        raise StoreError(path, f"not a readable TIFF ({exc})") from exc


def scan_tiff(path: Path, dataset_id: str) -> StoreScan:
    """Scan one TIFF file (and the files of a multi-file OME-TIFF series it references)."""
    path = Path(path)
    warnings: list[str] = []
    logger = logging.getLogger("tifffile")
    previous = logger.level
    logger.setLevel(logging.ERROR)  # tifffile logs recoverable quirks; we report our own warnings
    try:
        with _open(path) as tif:
            ome: OmeMetadata | None = None
            if tif.is_ome and tif.ome_metadata:
                try:
                    ome = parse_ome_xml(tif.ome_metadata)
                except ValueError as exc:
                    warnings.append(f"{path.name}: {exc}")
            try:
                series_list = list(tif.series)
            except Exception as exc:  # tifffile raises many types on malformed IFD chains
                raise StoreError(path, f"cannot read TIFF series ({exc})") from exc
            arrays = []
            names = parse_file_name(path.name)
            for s_index, series in enumerate(series_list):
                ome_image = ome.images[s_index] if ome and s_index < len(ome.images) else None
                sample = ome.well_samples.get(s_index) if ome else None
                base_shape = tuple(series.levels[0].shape)
                for level_index, level in enumerate(series.levels):
                    compression = _compression(level.keyframe, path)
                    axes = _axis_names(level.axes)
                    shape = tuple(int(s) for s in level.shape)
                    chunks, chunk_shape = _level_chunks(level, path.parent, path)
                    if ome_image is not None:
                        scale, units = _ome_scale(ome_image, axes, shape, base_shape)
                    else:
                        scale, units = _imagej_scale(tif, axes, shape, base_shape)
                    channels = ome_image.channel_names if ome_image and ome_image.channel_names else None
                    record = ArrayRecord(
                        image_id=str(s_index),
                        array_path=f"{s_index}/{level_index}",
                        level=level_index,
                        uri=str(path),
                        storage_variant="tiff",
                        shape=list(shape),
                        dtype=np.dtype(level.dtype).name,
                        chunk_shape=chunk_shape,
                        axes=axes,
                        axis_types=[_AXIS_TYPES.get(a) for a in axes],
                        axis_units=units,
                        scale=scale,
                        channel_names=channels,
                        codecs=[compression.name.lower()],
                        chunk_key_encoding="tiff",
                        chunks=chunks,
                    )
                    if sample is not None:
                        record.plate_id, record.well_id, record.site_id = (
                            sample.plate_id,
                            sample.well_id,
                            sample.site_id,
                        )
                    elif names is not None:
                        record.plate_id, record.well_id, record.site_id = (
                            names.plate_id,
                            names.well_id,
                            names.site_id,
                        )
                    arrays.append(record)
            if not arrays:
                raise StoreError(path, "TIFF has no image series")
            fmt = "ome-tiff" if ome is not None else "tiff"
            return StoreScan(dataset_id, str(path), fmt, arrays, warnings)
    finally:
        logger.setLevel(previous)
