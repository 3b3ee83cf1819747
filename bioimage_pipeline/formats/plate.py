"""An HCS plate folder (or a CellProfiler LoadData CSV) scanned as one store.

The layout modules in :mod:`bioimage_pipeline.formats.hcs` say which file holds which site, plane, time point
and channel; this module reads each file's header (one small read for the usual single-image file, the full
TIFF scanner otherwise) and makes the catalog's rows: one image per site — ``image_id`` is ``<well>/<field>``,
plus ``/t<timepoint>`` and ``/z<plane>`` where those vary across the plate — whose channel files are its
arrays, with ``plate_id``, ``well_id``, ``site_id`` and the channel name filled in.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from bioimage_pipeline.chunks import ExplicitChunks
from bioimage_pipeline.errors import BioimageError, StoreError
from bioimage_pipeline.formats.hcs import read_loaddata, read_plate
from bioimage_pipeline.formats.hcs.model import PlateFile, PlateLayout
from bioimage_pipeline.formats.imagefile import ImageFile, read_image_file
from bioimage_pipeline.formats.tiff import scan_tiff
from bioimage_pipeline.model import ArrayRecord, StoreScan

#: Physical axis types of the axes a 2-D image file can have.
_AXIS_TYPES = {"y": "space", "x": "space", "s": "channel"}
#: Files whose headers are read at once; reading is I/O, and a plate is tens of thousands of small files.
_READERS = min(8, (os.cpu_count() or 1) * 4)
_MAX_WARNINGS = 20


def scan_plate_folder(folder: Path, dataset_id: str) -> StoreScan:
    """Scan an HCS plate folder (its layout from :func:`~bioimage_pipeline.formats.hcs.read_plate`)."""
    return scan_layout(folder, dataset_id, read_plate(folder), str(folder))


def scan_loaddata(csv: Path, dataset_id: str) -> StoreScan:
    """Scan the plate a CellProfiler LoadData CSV describes (its images may live anywhere)."""
    return scan_layout(csv.parent, dataset_id, read_loaddata(csv), str(csv))


def _image_id(f: PlateFile, vary_time: bool, vary_plane: bool) -> str:
    image_id = f"{f.well_id}/{f.field}"
    if vary_time:
        image_id += f"/t{f.timepoint}"
    if vary_plane:
        image_id += f"/z{f.plane}"
    return image_id


def _read(path: Path) -> ImageFile | StoreScan:
    """The file's header, or its full TIFF scan when it is not a single-image file."""
    header = read_image_file(path)
    return header if header is not None else scan_tiff(path, path.name)


def scan_layout(folder: Path, dataset_id: str, layout: PlateLayout, uri: str) -> StoreScan:
    """Catalog rows of a plate: one array per image file, grouped into site images."""
    if not layout.files:
        problem = layout.warnings[0] if layout.warnings else "no image files"
        raise StoreError(uri, f"{layout.layout} plate with no image files to catalogue ({problem})")
    vary_time = len({f.timepoint for f in layout.files}) > 1
    vary_plane = len({f.plane for f in layout.files}) > 1
    paths = [Path(f.key) if os.path.isabs(f.key) else folder / f.key for f in layout.files]
    headers = _read_all(paths)
    warnings = list(layout.warnings)
    arrays: list[ArrayRecord] = []
    failed: list[str] = []
    for f, path, header in zip(layout.files, paths, headers, strict=True):
        if isinstance(header, BioimageError):
            failed.append(str(header))
            continue
        image_id = _image_id(f, vary_time, vary_plane)
        records = _records(f, path, header, layout, image_id)
        arrays += records
    if failed:
        # A file that cannot be read is not a smaller plate: the store fails, naming the first bad file.
        more = f" (and {len(failed) - 1} more unreadable files)" if len(failed) > 1 else ""
        raise StoreError(uri, f"{failed[0]}{more}")
    if len(warnings) > _MAX_WARNINGS:
        warnings[_MAX_WARNINGS:] = [f"... and {len(warnings) - _MAX_WARNINGS} more warnings"]
    return StoreScan(dataset_id, uri, layout.layout, arrays, warnings)


def _read_all(paths: Sequence[Path]) -> list[ImageFile | StoreScan | BioimageError]:
    """Every file's header, read by a few threads each taking a slice (one task per file would cost more in
    scheduling than the reads: most plate files are a few KB)."""
    if len(paths) < 64:
        return [_read_or_error(p) for p in paths]
    step = -(-len(paths) // _READERS)
    slices = [paths[i : i + step] for i in range(0, len(paths), step)]
    with ThreadPoolExecutor(max_workers=len(slices), thread_name_prefix="plate-headers") as pool:
        parts = pool.map(lambda part: [_read_or_error(p) for p in part], slices)
        return [header for part in parts for header in part]


def _read_or_error(path: Path) -> ImageFile | StoreScan | BioimageError:
    try:
        return _read(path)
    except BioimageError as exc:
        return exc
    except OSError as exc:
        return StoreError(path, exc.strerror or str(exc))


def _records(
    f: PlateFile, path: Path, header: ImageFile | StoreScan, layout: PlateLayout, image_id: str
) -> list[ArrayRecord]:
    channel = f.channel_name or f.channel
    site_id = str(f.field)
    if isinstance(header, ImageFile):
        axes = list(header.axes)
        scale, units = _scale(axes, header, layout)
        coords = _grid_coords(header.grid)
        chunks = ExplicitChunks(
            coords=coords,
            keys=f.key,
            offsets=header.offsets,
            lengths=header.lengths,
        )
        return [
            ArrayRecord(
                array_path=f.key,
                level=0,
                storage_variant=header.variant,
                shape=list(header.shape),
                dtype=header.dtype,
                chunk_shape=list(header.chunk_shape),
                axes=axes,
                axis_types=[_AXIS_TYPES.get(a) for a in axes],
                axis_units=units,
                scale=scale,
                codecs=list(header.codecs),
                chunk_key_encoding=header.variant,
                chunks=chunks,
                image_id=image_id,
                uri=str(path),
                channel_names=[channel],
                plate_id=layout.plate_id,
                well_id=f.well_id,
                site_id=site_id,
            )
        ]
    # Not a single-image file (a z-stack in one TIFF, say): the full scanner's arrays, keyed by the file.
    records = []
    for record in header.arrays:
        suffix = "" if len(header.arrays) == 1 else f"#{record.array_path}"
        source = record.chunks
        if isinstance(source, ExplicitChunks):
            source = replace(source, keys=f.key)
        records.append(
            replace(
                record,
                array_path=f.key + suffix,
                chunks=source,
                image_id=image_id,
                uri=str(path),
                channel_names=[channel],
                plate_id=layout.plate_id,
                well_id=f.well_id,
                site_id=site_id,
            )
        )
    return records


@functools.lru_cache(maxsize=256)
def _grid_coords(grid: tuple[int, ...]) -> np.ndarray:
    """Segment coordinates of a grid, in C order. Cached: a plate's files share a handful of grids. Read-only,
    since the same array is handed to every file's chunk source."""
    coords = np.stack(np.unravel_index(np.arange(int(np.prod(grid)), dtype=np.int64), grid), axis=1)
    coords = coords.astype(np.int64)
    coords.flags.writeable = False
    return coords


def _scale(
    axes: Sequence[str], header: ImageFile, layout: PlateLayout
) -> tuple[list[float] | None, list[str | None] | None]:
    """Pixel size from the plate's index where it says, else from the file's resolution tags."""
    unit: str | None
    if layout.pixel_size is not None:
        yx, unit = layout.pixel_size, "micrometer"
    elif header.scale is not None:
        yx, unit = header.scale, header.unit
    else:
        return None, None
    by_axis = {"y": yx[0], "x": yx[1]}
    return [by_axis.get(a, 1.0) for a in axes], [unit if a in by_axis else None for a in axes]
