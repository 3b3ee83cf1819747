"""Build conforming hierarchies from arrays, scales, axes and units, and write them as Zarr v2/v3 or N5.

A hierarchy is first described in memory (:class:`GroupSpec` / :class:`ArraySpec`, with the metadata each
convention prescribes), then written by :func:`to_zarr` or :func:`to_n5`. Arrays can be NumPy arrays (their
chunks are written) or :class:`ArrayStub` (shape and dtype only: metadata without chunks, for fixtures
and benchmarks). Metadata documents are written directly; chunk data for Zarr goes through zarr-python,
N5 blocks are encoded here (raw or gzip).
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import shutil
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

#: The formats :func:`to_zarr` writes; N5 has :func:`to_n5`.
ZarrFormat = Literal[2, 3]
_N5_TYPES = frozenset({"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"})
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


@dataclass(frozen=True)
class ArrayStub:
    """An array known only by its shape and dtype: written as metadata with no chunks."""

    shape: tuple[int, ...]
    dtype: str = "uint16"


ArrayInput = np.ndarray | ArrayStub


@dataclass(frozen=True)
class ArraySpec:
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    attributes: dict[str, Any] = field(default_factory=dict)
    dimension_names: tuple[str, ...] | None = None
    data: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class GroupSpec:
    attributes: dict[str, Any] = field(default_factory=dict)
    members: dict[str, GroupSpec | ArraySpec] = field(default_factory=dict)


def array_spec(
    array: ArrayInput,
    *,
    chunks: Sequence[int] | None = None,
    attributes: Mapping[str, Any] | None = None,
    dimension_names: Sequence[str] | None = None,
) -> ArraySpec:
    shape = tuple(int(s) for s in array.shape)
    dtype = np.dtype(array.dtype).name
    chunk_shape = tuple(int(c) for c in chunks) if chunks is not None else default_chunks(shape)
    if len(chunk_shape) != len(shape) or any(c < 1 for c in chunk_shape):
        raise ValueError(f"chunks {chunk_shape} do not fit an array of shape {shape}")
    data = array if isinstance(array, np.ndarray) else None
    names = tuple(dimension_names) if dimension_names is not None else None
    return ArraySpec(shape, dtype, chunk_shape, dict(attributes or {}), names, data)


def default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Planes of up to 256×256: one chunk per leading index, the last two axes tiled."""
    lead = tuple(1 for _ in shape[:-2])
    return lead + tuple(max(1, min(s, 256)) for s in shape[-2:])


def _axis_types(axes: Sequence[str], axis_types: Sequence[str | None] | None) -> list[str | None]:
    if axis_types is not None:
        if len(axis_types) != len(axes):
            raise ValueError(f"{len(axis_types)} axis types for {len(axes)} axes")
        return list(axis_types)
    unknown = [a for a in axes if a.lower() not in _AXIS_TYPES]
    if unknown:
        raise ValueError(f"cannot tell the type of axes {unknown}; pass axis_types")
    return [_AXIS_TYPES[a.lower()] for a in axes]


def _per_level(values: Sequence[Sequence[float]] | None, levels: int, ndim: int, what: str) -> list[list[float]]:
    if values is None:
        return []
    if len(values) != levels:
        raise ValueError(f"{len(values)} {what} for {levels} arrays")
    out = []
    for v in values:
        if len(v) != ndim:
            raise ValueError(f"each of the {what} needs {ndim} values, got {list(v)}")
        out.append([float(x) for x in v])
    return out


def _chunks_for(chunks: Sequence[int] | Sequence[Sequence[int]] | None, levels: int) -> list[Sequence[int] | None]:
    if chunks is None:
        return [None] * levels
    if all(isinstance(c, int) for c in chunks):
        return [chunks] * levels  # type: ignore[list-item]
    if len(chunks) != levels:
        raise ValueError(f"{len(chunks)} chunk shapes for {levels} arrays")
    return list(chunks)  # type: ignore[arg-type]


def _check_arrays(arrays: Sequence[ArrayInput], ndim: int) -> None:
    if not arrays:
        raise ValueError("a multiscale image needs at least one array")
    for k, a in enumerate(arrays):
        if len(a.shape) != ndim:
            raise ValueError(f"array {k} has {len(a.shape)} dimensions, but there are {ndim} axes")


# --- OME-NGFF ----------------------------------------------------------------------------------------


def _ngff_attrs(ngff: dict[str, Any], version: str) -> dict[str, Any]:
    if version == "0.5":
        return {"ome": {"version": "0.5", **ngff}}
    if version == "0.4":
        return dict(ngff)
    raise ValueError(f"OME-NGFF version {version!r} cannot be written; use '0.4' or '0.5'")


def ngff_image(
    arrays: Sequence[ArrayInput],
    *,
    axes: Sequence[str],
    scales: Sequence[Sequence[float]],
    units: Sequence[str | None] | None = None,
    translations: Sequence[Sequence[float]] | None = None,
    axis_types: Sequence[str | None] | None = None,
    paths: Sequence[str] | None = None,
    name: str = "image",
    version: str = "0.5",
    chunks: Sequence[int] | Sequence[Sequence[int]] | None = None,
    omero: Mapping[str, Any] | None = None,
    image_label: Mapping[str, Any] | None = None,
    labels: Mapping[str, GroupSpec] | None = None,
    downscaling: str = "unknown",
    extra_attributes: Mapping[str, Any] | None = None,
    array_attributes: Sequence[Mapping[str, Any]] | None = None,
) -> GroupSpec:
    """An OME-NGFF multiscale image group; ``labels`` adds a ``labels`` group of label images."""
    ndim = len(axes)
    _check_arrays(arrays, ndim)
    levels = len(arrays)
    paths = list(paths) if paths is not None else [str(i) for i in range(levels)]
    if len(paths) != levels:
        raise ValueError(f"{len(paths)} paths for {levels} arrays")
    kinds = _axis_types(axes, axis_types)
    unit_list = list(units) if units is not None else [None] * ndim
    if len(unit_list) != ndim:
        raise ValueError(f"{len(unit_list)} units for {ndim} axes")
    scale_list = _per_level(scales, levels, ndim, "scales")
    translation_list = _per_level(translations, levels, ndim, "translations")
    axes_meta = []
    for axis, kind, unit in zip(axes, kinds, unit_list, strict=True):
        entry: dict[str, Any] = {"name": axis}
        if kind is not None:
            entry["type"] = kind
        if unit is not None:
            entry["unit"] = unit
        axes_meta.append(entry)
    datasets = []
    for k, path in enumerate(paths):
        transforms: list[dict[str, Any]] = [{"type": "scale", "scale": scale_list[k]}]
        if translation_list:
            transforms.append({"type": "translation", "translation": translation_list[k]})
        datasets.append({"path": path, "coordinateTransformations": transforms})
    multiscale: dict[str, Any] = {
        "name": name,
        "axes": axes_meta,
        "datasets": datasets,
        "type": downscaling,
        "metadata": {"description": "levels supplied by the caller to bioimage_pipeline.validation.build"},
    }
    if version == "0.4":
        multiscale = {"version": "0.4", **multiscale}
    ngff: dict[str, Any] = {"multiscales": [multiscale]}
    if omero is not None:
        ngff["omero"] = dict(omero)
    if image_label is not None:
        ngff["image-label"] = {"version": "0.4", **image_label} if version == "0.4" else dict(image_label)
    attrs = {**_ngff_attrs(ngff, version), **(extra_attributes or {})}
    names = tuple(axes) if version == "0.5" else None
    per_array = list(array_attributes) if array_attributes is not None else [{}] * levels
    members: dict[str, GroupSpec | ArraySpec] = {}
    for path, array, chunk, extra in zip(paths, arrays, _chunks_for(chunks, levels), per_array, strict=True):
        members[path] = array_spec(array, chunks=chunk, attributes=extra, dimension_names=names)
    if labels:
        label_members: dict[str, GroupSpec | ArraySpec] = dict(labels)
        members["labels"] = GroupSpec(_ngff_attrs({"labels": list(labels)}, version), label_members)
    return GroupSpec(attrs, members)


def ngff_well(
    fields: Mapping[str, GroupSpec], *, version: str = "0.5", acquisitions: Mapping[str, int] | None = None
) -> GroupSpec:
    """A well group holding its fields of view (``acquisitions`` maps a field path to its acquisition id)."""
    images = []
    for path in fields:
        entry: dict[str, Any] = {"path": path}
        if acquisitions is not None and path in acquisitions:
            entry["acquisition"] = acquisitions[path]
        images.append(entry)
    well: dict[str, Any] = {"images": images}
    if version == "0.4":
        well["version"] = "0.4"
    return GroupSpec(_ngff_attrs({"well": well}, version), dict(fields))


def ngff_plate(
    wells: Mapping[str, GroupSpec],
    *,
    rows: Sequence[str],
    columns: Sequence[str],
    name: str,
    version: str = "0.5",
    acquisitions: Sequence[Mapping[str, Any]] | None = None,
    field_count: int | None = None,
) -> GroupSpec:
    """A plate: ``wells`` maps ``"<row>/<column>"`` to well groups; row groups are created on the way."""
    well_meta = []
    row_members: dict[str, dict[str, GroupSpec | ArraySpec]] = {}
    for path, well in wells.items():
        row, column = path.split("/")
        if row not in rows or column not in columns:
            raise ValueError(f"well {path!r} is not in rows {list(rows)} and columns {list(columns)}")
        well_meta.append({"path": path, "rowIndex": list(rows).index(row), "columnIndex": list(columns).index(column)})
        row_members.setdefault(row, {})[column] = well
    if field_count is None:
        field_count = max((len(w.members) for w in wells.values()), default=0) or None
    plate: dict[str, Any] = {
        "name": name,
        "rows": [{"name": r} for r in rows],
        "columns": [{"name": c} for c in columns],
        "wells": well_meta,
    }
    if field_count is not None:
        plate["field_count"] = field_count
    if acquisitions is not None:
        plate["acquisitions"] = [dict(a) for a in acquisitions]
    if version in ("0.4", "0.5"):
        # 0.5 keeps the version in 'ome.version', but its prose still asks the plate for one: write both.
        plate["version"] = version
    members: dict[str, GroupSpec | ArraySpec] = {row: GroupSpec({}, cols) for row, cols in row_members.items()}
    return GroupSpec(_ngff_attrs({"plate": plate}, version), members)


# --- CellMap -----------------------------------------------------------------------------------------


def _ratios(scales: list[list[float]]) -> list[list[int]]:
    out = []
    for scale in scales:
        row = []
        for s, base in zip(scale, scales[0], strict=True):
            ratio = s / base
            if not math.isclose(ratio, round(ratio), rel_tol=1e-6) or round(ratio) < 1:
                raise ValueError(f"scale {scale} is not a whole multiple of the first level's {scales[0]}")
            row.append(round(ratio))
        out.append(row)
    return out


def _one_unit(units: Sequence[str]) -> str:
    if len(set(units)) != 1:
        raise ValueError(f"Neuroglancer's pixelResolution has one unit for all axes; got {list(units)}")
    return units[0]


def _neuroglancer_group_attrs(axes: Sequence[str], units: Sequence[str], scales: list[list[float]]) -> dict[str, Any]:
    unit = _one_unit(units)
    return {
        "axes": list(axes)[::-1],
        "units": list(units)[::-1],
        "scales": [r[::-1] for r in _ratios(scales)],
        "pixelResolution": {"dimensions": scales[0][::-1], "unit": unit},
    }


def neuroglancer_multiscale(
    arrays: Sequence[ArrayInput],
    *,
    axes: Sequence[str],
    units: Sequence[str],
    scales: Sequence[Sequence[float]],
    chunks: Sequence[int] | Sequence[Sequence[int]] | None = None,
) -> GroupSpec:
    """A Neuroglancer N5 multiscale group (levels ``s0``, ``s1``, ...). ``axes``, ``units`` and each scale
    are given in array (C) order; the metadata stores them reversed (F order), as Neuroglancer reads them."""
    ndim = len(axes)
    _check_arrays(arrays, ndim)
    scale_list = _per_level(scales, len(arrays), ndim, "scales")
    attrs = _neuroglancer_group_attrs(axes, units, scale_list)
    unit = attrs["pixelResolution"]["unit"]
    members: dict[str, GroupSpec | ArraySpec] = {}
    for k, (array, chunk) in enumerate(zip(arrays, _chunks_for(chunks, len(arrays)), strict=True)):
        resolution = {"pixelResolution": {"dimensions": scale_list[k][::-1], "unit": unit}}
        members[f"s{k}"] = array_spec(array, chunks=chunk, attributes=resolution)
    return GroupSpec(attrs, members)


def cosem_multiscale(
    arrays: Sequence[ArrayInput],
    *,
    axes: Sequence[str],
    units: Sequence[str],
    scales: Sequence[Sequence[float]],
    translations: Sequence[Sequence[float]] | None = None,
    name: str | None = None,
    chunks: Sequence[int] | Sequence[Sequence[int]] | None = None,
) -> GroupSpec:
    """A COSEM multiscale group: Neuroglancer's keys plus ``multiscales`` and a C-order ``transform`` per level."""
    ndim = len(axes)
    _check_arrays(arrays, ndim)
    scale_list = _per_level(scales, len(arrays), ndim, "scales")
    translation_list = _per_level(translations, len(arrays), ndim, "translations") or [[0.0] * ndim] * len(arrays)
    attrs = _neuroglancer_group_attrs(axes, units, scale_list)
    unit = attrs["pixelResolution"]["unit"]
    members: dict[str, GroupSpec | ArraySpec] = {}
    datasets = []
    for k, (array, chunk) in enumerate(zip(arrays, _chunks_for(chunks, len(arrays)), strict=True)):
        transform = {
            "axes": list(axes),
            "units": list(units),
            "translate": translation_list[k],
            "scale": scale_list[k],
            "order": "C",
        }
        datasets.append({"path": f"s{k}", "transform": transform})
        level_attrs = {"transform": transform, "pixelResolution": {"dimensions": scale_list[k][::-1], "unit": unit}}
        members[f"s{k}"] = array_spec(array, chunks=chunk, attributes=level_attrs)
    attrs["multiscales"] = [{"name": name, "datasets": datasets}]
    return GroupSpec(attrs, members)


def _cellmap(annotation: dict[str, Any]) -> dict[str, Any]:
    return {"cellmap": {"annotation": annotation}}


def complement_counts(array: ArrayInput, annotation_type: Mapping[str, Any]) -> dict[str, int] | None:
    """Counts of the non-positive possibilities (and ``present`` for semantic classes), from the data."""
    if not isinstance(array, np.ndarray):
        return None
    encoding = annotation_type["encoding"]
    counts = {key: int(np.count_nonzero(array == encoding[key])) for key in ("unknown", "absent") if key in encoding}
    if annotation_type["type"] == "semantic_segmentation" and "present" in encoding:
        counts["present"] = int(array.size - sum(counts.values()))
    return counts


def annotation_class(
    arrays: Sequence[ArrayInput],
    *,
    class_name: str,
    annotation_type: Mapping[str, Any],
    axes: Sequence[str],
    units: Sequence[str | None],
    scales: Sequence[Sequence[float]],
    translations: Sequence[Sequence[float]] | None = None,
    version: str = "0.4",
    chunks: Sequence[int] | Sequence[Sequence[int]] | None = None,
) -> GroupSpec:
    """One annotated class of a crop: an OME-NGFF multiscale image with CellMap annotation metadata."""
    kind = dict(annotation_type)
    per_array = [
        _cellmap({"class_name": class_name, "complement_counts": complement_counts(a, kind), "annotation_type": kind})
        for a in arrays
    ]
    return ngff_image(
        arrays,
        axes=axes,
        units=units,
        scales=scales,
        translations=translations,
        name=class_name,
        version=version,
        chunks=chunks,
        extra_attributes=_cellmap({"class_name": class_name, "annotation_type": kind}),
        array_attributes=per_array,
    )


def annotation_crop(
    classes: Mapping[str, GroupSpec],
    *,
    name: str | None = None,
    description: str | None = None,
    created_by: Sequence[str] = (),
    created_with: Sequence[str] = (),
    start_date: str | None = None,
    end_date: str | None = None,
    duration_days: int | None = None,
    protocol_uri: str | None = None,
) -> GroupSpec:
    """A crop group listing its annotated classes (each built by :func:`annotation_class`)."""
    attrs = _cellmap(
        {
            "version": "0.1.1",
            "name": name,
            "description": description,
            "created_by": list(created_by),
            "created_with": list(created_with),
            "start_date": start_date,
            "end_date": end_date,
            "duration_days": duration_days,
            "protocol_uri": protocol_uri,
            "class_names": list(classes),
        }
    )
    return GroupSpec(attrs, dict(classes))


def from_arrays(
    arrays: Sequence[ArrayInput],
    *,
    model: str = "ngff.image",
    axes: Sequence[str],
    units: Sequence[str],
    scales: Sequence[Sequence[float]],
    translations: Sequence[Sequence[float]] | None = None,
    name: str | None = None,
    version: str = "0.5",
    chunks: Sequence[int] | Sequence[Sequence[int]] | None = None,
) -> GroupSpec:
    """A multiscale group for ``model`` (``ngff``/``ngff.image``, ``cellmap.cosem`` or
    ``cellmap.neuroglancer_n5``) from its levels, largest first, with per-level scales (C order)."""
    if model in ("ngff", "ngff.image"):
        return ngff_image(
            arrays,
            axes=axes,
            units=units,
            scales=scales,
            translations=translations,
            name=name or "image",
            version=version,
            chunks=chunks,
        )
    if model == "cellmap.cosem":
        return cosem_multiscale(
            arrays, axes=axes, units=units, scales=scales, translations=translations, name=name, chunks=chunks
        )
    if model == "cellmap.neuroglancer_n5":
        if translations is not None:
            raise ValueError("the Neuroglancer N5 convention has no translations; use cellmap.cosem")
        return neuroglancer_multiscale(arrays, axes=axes, units=units, scales=scales, chunks=chunks)
    raise ValueError(f"from_arrays builds ngff.image, cellmap.cosem or cellmap.neuroglancer_n5, not {model!r}")


# --- writing -----------------------------------------------------------------------------------------


def _prepare(path: str | Path, overwrite: bool) -> Path:
    root = Path(path)
    if root.exists():
        if not overwrite:
            raise FileExistsError(f"{root} exists; pass overwrite=True to replace it")
        if root.is_dir():
            shutil.rmtree(root)
        else:
            root.unlink()
    root.mkdir(parents=True)
    return root


def _dump(path: Path, doc: dict[str, Any]) -> None:
    path.write_text(json.dumps(doc, indent=2, allow_nan=False), encoding="utf-8")


def _infer_format(spec: GroupSpec) -> ZarrFormat:
    return 3 if isinstance(spec.attributes.get("ome"), dict) else 2


def _fill_value(dtype: np.dtype) -> Any:
    return False if dtype.kind == "b" else 0.0 if dtype.kind in "fc" else 0


def to_zarr(
    spec: GroupSpec | ArraySpec, path: str | Path, *, zarr_format: ZarrFormat | None = None, overwrite: bool = False
) -> Path:
    """Write ``spec`` as a Zarr store at ``path`` (format 3 when the metadata is OME-Zarr 0.5, else 2 unless
    given). Chunks are zstd-compressed; v2 uses nested ('/') chunk keys as OME-NGFF 0.4 expects."""
    fmt = zarr_format or (_infer_format(spec) if isinstance(spec, GroupSpec) else 3)
    if fmt not in (2, 3):
        raise ValueError(f"zarr_format must be 2 or 3, not {fmt!r}")
    root = _prepare(path, overwrite)
    _write_zarr_node(spec, root, fmt)
    return root


def _write_zarr_node(spec: GroupSpec | ArraySpec, where: Path, fmt: ZarrFormat) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if isinstance(spec, GroupSpec):
        if fmt == 3:
            _dump(where / "zarr.json", {"zarr_format": 3, "node_type": "group", "attributes": spec.attributes})
        else:
            _dump(where / ".zgroup", {"zarr_format": 2})
            if spec.attributes:
                _dump(where / ".zattrs", spec.attributes)
        for name, member in spec.members.items():
            _write_zarr_node(member, where / name, fmt)
        return
    dtype = np.dtype(spec.dtype)
    if fmt == 3:
        doc: dict[str, Any] = {
            "zarr_format": 3,
            "node_type": "array",
            "shape": list(spec.shape),
            "data_type": dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(spec.chunks)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": _fill_value(dtype),
            "codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "zstd", "configuration": {"level": 3, "checksum": False}},
            ],
            "attributes": spec.attributes,
        }
        if spec.dimension_names is not None:
            doc["dimension_names"] = list(spec.dimension_names)
        _dump(where / "zarr.json", doc)
    else:
        _dump(
            where / ".zarray",
            {
                "zarr_format": 2,
                "shape": list(spec.shape),
                "chunks": list(spec.chunks),
                "dtype": dtype.str,
                "compressor": {"id": "zstd", "level": 3},
                "fill_value": _fill_value(dtype),
                "order": "C",
                "filters": None,
                "dimension_separator": "/",
            },
        )
        if spec.attributes:
            _dump(where / ".zattrs", spec.attributes)
    if spec.data is not None:
        import zarr  # only needed to encode chunks

        array = zarr.open_array(store=str(where), mode="r+", zarr_format=fmt)
        array[...] = spec.data


def to_n5(spec: GroupSpec | ArraySpec, path: str | Path, *, overwrite: bool = False, compression: str = "gzip") -> Path:
    """Write ``spec`` as an N5 container; blocks are ``raw`` or ``gzip`` encoded, dimensions fastest-first."""
    if compression not in ("raw", "gzip"):
        raise ValueError(f"N5 compression must be 'raw' or 'gzip', not {compression!r}")
    root = _prepare(path, overwrite)
    _write_n5_node(spec, root, compression, is_root=True)
    return root


def _write_n5_node(spec: GroupSpec | ArraySpec, where: Path, compression: str, *, is_root: bool = False) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if isinstance(spec, GroupSpec):
        attrs = {"n5": "4.0.0", **spec.attributes} if is_root else dict(spec.attributes)
        if attrs:
            _dump(where / "attributes.json", attrs)
        for name, member in spec.members.items():
            _write_n5_node(member, where / name, compression)
        return
    dtype = np.dtype(spec.dtype)
    if dtype.name not in _N5_TYPES:
        raise ValueError(f"N5 has no data type for {dtype.name}")
    doc = {
        "dimensions": list(spec.shape)[::-1],
        "blockSize": list(spec.chunks)[::-1],
        "dataType": dtype.name,
        "compression": {"type": "gzip", "level": -1} if compression == "gzip" else {"type": "raw"},
        **spec.attributes,
    }
    if is_root:
        doc["n5"] = "4.0.0"
    _dump(where / "attributes.json", doc)
    if spec.data is not None:
        _write_n5_blocks(spec, where, compression)


def _write_n5_blocks(spec: ArraySpec, where: Path, compression: str) -> None:
    assert spec.data is not None
    data = np.asarray(spec.data)
    big_endian = data.dtype.newbyteorder(">")
    grid = [range(math.ceil(s / c)) for s, c in zip(spec.shape, spec.chunks, strict=True)]
    for coords in itertools.product(*grid):
        index = tuple(
            slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(coords, spec.chunks, spec.shape, strict=True)
        )
        block = np.ascontiguousarray(data[index])
        # Header: mode 0 (default), number of dimensions, then the block's size per dimension, fastest first.
        header = struct.pack(">HH", 0, block.ndim) + struct.pack(f">{block.ndim}I", *block.shape[::-1])
        body = block.astype(big_endian).tobytes()  # C order of (…, y, x) is x-fastest: N5's order
        if compression == "gzip":
            body = gzip.compress(body)
        target = where.joinpath(*(str(c) for c in coords[::-1])) if coords else where / "0"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(header + body)
