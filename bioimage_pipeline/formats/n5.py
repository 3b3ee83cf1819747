"""N5 containers (read-only): arrays, groups and the common multiscale metadata dialects.

N5 lists dimensions fastest-axis first (F order). Everything is converted to C order here, once:
shapes, block sizes, resolutions and chunk coordinates alike.
"""

from __future__ import annotations

import re
from typing import Any

from bioimage_pipeline.chunks import GridChunks, KeyEncoding
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.model import ArrayRecord, StoreScan
from bioimage_pipeline.storage import StoreReader, join_key, read_json

ATTRS = "attributes.json"
_LEVEL = re.compile(r"^s(\d+)$")
_UNITS = {"nm": "nanometer", "um": "micrometer", "µm": "micrometer", "mm": "millimeter", "m": "meter"}
_N5_TYPES = frozenset({"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"})


def is_n5(store: StoreReader) -> bool:
    attrs = read_json(store, ATTRS)
    return attrs is not None and ("n5" in attrs or "dimensions" in attrs)


def _is_array(attrs: dict[str, Any]) -> bool:
    return "dimensions" in attrs and "dataType" in attrs


def _c_order(values: Any, ndim: int) -> list[float] | None:
    if isinstance(values, dict):
        values = values.get("dimensions")
    if not isinstance(values, list) or len(values) != ndim:
        return None
    try:
        return [float(v) for v in reversed(values)]
    except (TypeError, ValueError):
        return None


def _default_axes(ndim: int) -> list[str]:
    return ["z", "y", "x"][-ndim:] if ndim <= 3 else [f"d{i}" for i in range(ndim)]


def _geometry(
    attrs: dict[str, Any], group_attrs: dict[str, Any], ndim: int
) -> tuple[list[str], list[float] | None, list[float] | None, list[str | None] | None]:
    """Axes, scale, translation and units in C order from the COSEM, N5-Viewer or neuroglancer keys."""
    transform = attrs.get("transform")
    if isinstance(transform, dict) and isinstance(transform.get("scale"), list):
        # COSEM / CellMap: already C order.
        axes = [str(a) for a in transform.get("axes") or _default_axes(ndim)]
        units = [_UNITS.get(str(u), str(u)) for u in transform.get("units") or []] or None
        return (
            axes,
            [float(v) for v in transform["scale"]],
            [float(v) for v in transform.get("translate") or []] or None,
            units,
        )
    axes_attr = attrs.get("axes") or group_attrs.get("axes")
    axes = (
        [str(a) for a in reversed(axes_attr)]
        if isinstance(axes_attr, list) and len(axes_attr) == ndim
        else _default_axes(ndim)
    )
    resolution = attrs.get("pixelResolution") or attrs.get("resolution") or attrs.get("res")
    scale = _c_order(resolution, ndim)
    if scale is not None:
        factors = _c_order(attrs.get("downsamplingFactors"), ndim)
        if factors is not None and "pixelResolution" in attrs:
            scale = [s * f for s, f in zip(scale, factors, strict=True)]
        unit = resolution.get("unit") if isinstance(resolution, dict) else attrs.get("unit") or group_attrs.get("unit")
        units = [_UNITS.get(str(unit), str(unit))] * ndim if unit else None
        return axes, scale, _c_order(attrs.get("off") or attrs.get("offset"), ndim), units
    return axes, None, None, None


def _record(
    store: StoreReader,
    path: str,
    attrs: dict[str, Any],
    image_id: str,
    level: int,
    group_attrs: dict[str, Any],
    warnings: list[str],
) -> ArrayRecord:
    where = store.uri(join_key(path, ATTRS))
    dims, block = attrs.get("dimensions"), attrs.get("blockSize")
    if not (
        isinstance(dims, list)
        and isinstance(block, list)
        and len(dims) == len(block)
        and all(isinstance(v, int) for v in dims + block)
    ):
        raise StoreError(where, "dimensions and blockSize must be integer lists of equal length")
    shape, chunk_shape = list(reversed(dims)), list(reversed(block))
    dtype = str(attrs.get("dataType"))
    if dtype not in _N5_TYPES:
        warnings.append(f"{path}: unknown N5 dataType {dtype!r}")
    compression = attrs.get("compression")
    codec = (compression.get("type") if isinstance(compression, dict) else attrs.get("compressionType")) or "raw"
    axes, scale, translation, units = _geometry(attrs, group_attrs, len(shape))
    encoding = KeyEncoding(path, "/", reverse=True)
    return ArrayRecord(
        image_id=image_id,
        array_path=path or "/",
        level=level,
        uri=store.uri(path),
        storage_variant="n5",
        shape=shape,
        dtype=dtype,
        chunk_shape=chunk_shape,
        axes=axes,
        axis_types=["space" if a.lower() in ("x", "y", "z") else None for a in axes],
        axis_units=units,
        scale=scale,
        translation=translation,
        codecs=[str(codec)],
        chunk_key_encoding="n5",
        chunks=GridChunks.from_store(store, shape, chunk_shape, encoding),
    )


def scan_n5(store: StoreReader, dataset_id: str) -> StoreScan:
    warnings: list[str] = []
    arrays: list[ArrayRecord] = []

    def visit(path: str, depth: int) -> None:
        attrs = read_json(store, join_key(path, ATTRS)) or {}
        if _is_array(attrs):
            arrays.append(_record(store, path, attrs, path or "/", 0, {}, warnings))
            return
        children = store.list_dir(path)[0]
        levels = sorted((int(m.group(1)), name) for name in children if (m := _LEVEL.match(name)))
        level_attrs = {name: read_json(store, join_key(path, name, ATTRS)) or {} for _, name in levels}
        if levels and all(_is_array(a) for a in level_attrs.values()):
            for level, (_, name) in enumerate(levels):
                arrays.append(
                    _record(store, join_key(path, name), level_attrs[name], path or "/", level, attrs, warnings)
                )
            rest = [c for c in children if c not in level_attrs]
        else:
            rest = children
        if depth > 32:
            warnings.append(f"{path}: hierarchy deeper than 32 levels; not descended further")
            return
        for name in rest:
            visit(join_key(path, name), depth + 1)

    visit("", 0)
    if not arrays:
        raise StoreError(store.location, "N5 container holds no arrays")
    return StoreScan(dataset_id, store.location, "n5", arrays, warnings)
