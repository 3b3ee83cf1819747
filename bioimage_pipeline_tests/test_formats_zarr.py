"""Zarr v2/v3 and OME-NGFF scanning on real stores: every Zarr store of the shared corpus, and stores written
here with zarr-python, ome-zarr and numcodecs.

Expected values never come from the scanner. Array geometry is read from the JSON documents with the small
readers below and cross-checked with zarr-python wherever it can open the array; OME-NGFF axes, transforms,
channels and the plate → well → field layout come from the group attributes; stored chunks and their sizes
from the files on disk (or the zip's members); shard indexes are decoded here from the shard files' bytes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pyarrow as pa
import pytest
import tifffile
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image, write_labels, write_plate_metadata, write_well_metadata
from ome_zarr_models import open_ome_zarr
from zarr.codecs import BytesCodec, ShardingCodec, TransposeCodec, ZstdCodec

from bioimage_pipeline.discovery import discover_stores, iter_store_paths
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats import scan_store
from bioimage_pipeline.ingest import scan_one
from bioimage_pipeline.model import ArrayRecord, StoreScan
from bioimage_pipeline.tables import CHUNK_INDEX_SCHEMA, arrow_schema, chunk_index_batches
from bioimage_pipeline_tests.corpus import CORPUS

EMPTY = 2**64 - 1  # offset and length of an inner chunk that is not in its shard
V2_META = (".zarray", ".zgroup", ".zattrs")


# --- reading a store's files, independently of bioimage_pipeline.storage -----------------------------------


class Files:
    """A store directory or zip archive: every file's key (relative to the store root) → size, and contents.

    Sizes are what a reader of the object gets: the file size, or a zip member's uncompressed size.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        self.prefix = ""
        if path.is_dir():
            self.sizes = {p.relative_to(path).as_posix(): p.stat().st_size for p in path.rglob("*") if p.is_file()}
            return
        self.zip = zipfile.ZipFile(path)
        infos = [i for i in self.zip.infolist() if not i.is_dir()]
        top = {i.filename.split("/")[0] for i in infos}
        at_root = any("/" not in i.filename and i.filename in (*V2_META, ".zmetadata", "zarr.json") for i in infos)
        if len(top) == 1 and not at_root:  # zipped from outside: every member under the store's folder name
            self.prefix = f"{top.pop()}/"
        self.sizes = {i.filename[len(self.prefix) :]: i.file_size for i in infos}

    def read(self, key: str) -> bytes | None:
        if key not in self.sizes:
            return None
        if self.zip is not None:
            return self.zip.read(self.prefix + key)
        return (self.path / key).read_bytes()

    def json(self, key: str) -> Any:
        raw = self.read(key)
        return None if raw is None else json.loads(raw)


def join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


# --- arrays as their JSON documents describe them --------------------------------------------------------


@dataclass
class JsonArray:
    path: str  # key of the array in the store; "" for a root array
    zarr_format: int
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]  # the read/write chunk (inner chunk of a shard)
    shards: tuple[int, ...] | None
    dimension_names: list[str] | None
    order: str
    codecs: list[str]
    separator: str
    c_prefix: bool  # Zarr v3 default chunk key encoding: keys start with "c"
    doc: dict[str, Any]

    @property
    def record_path(self) -> str:
        return self.path or "/"

    @property
    def grid(self) -> tuple[int, ...]:
        """The grid of stored objects: shards for a sharded array, else chunks."""
        unit = self.shards or self.chunks
        return tuple(-(-s // c) for s, c in zip(self.shape, unit, strict=True))

    @property
    def inner_grid(self) -> tuple[int, ...]:
        return tuple(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))

    def key(self, coords: tuple[int, ...] | list[int]) -> str:
        if not len(coords):
            return join(self.path, "c" if self.c_prefix else "0")
        body = self.separator.join(str(int(c)) for c in coords)
        return join(self.path, f"c{self.separator}{body}" if self.c_prefix else body)


def v2_dtype(raw: Any, filters: list[dict[str, Any]]) -> str:
    if isinstance(raw, list):
        return "structured"
    try:
        dt = np.dtype(raw)
    except TypeError:
        return str(raw)
    if dt.kind == "O":
        ids = {f.get("id") for f in filters}
        return "string" if "vlen-utf8" in ids else "bytes" if "vlen-bytes" in ids else "object"
    if dt.kind in "USV":
        return f"{dt.kind}{dt.itemsize // 4 if dt.kind == 'U' else dt.itemsize}"
    return dt.name


def v3_dtype(raw: Any) -> str:
    if isinstance(raw, str):
        return {"variable_length_bytes": "bytes", "variable_length_utf8": "string"}.get(raw, raw)
    size = raw.get("configuration", {}).get("length_bytes")
    if raw["name"] == "fixed_length_utf32":
        return f"U{size // 4}"
    if raw["name"] == "null_terminated_bytes":
        return f"S{size}"
    if raw["name"] == "raw_bytes":
        return f"V{size}"
    if raw["name"] in ("numpy.datetime64", "numpy.timedelta64"):
        return f"{raw['name'][6:]}[{raw['configuration']['unit']}]"
    return raw["name"]


def v2_array(path: str, doc: dict[str, Any], attrs: dict[str, Any]) -> JsonArray:
    filters = doc.get("filters") or []
    codecs = [f["id"] for f in filters] + ([doc["compressor"]["id"]] if doc.get("compressor") else [])
    names = attrs.get("_ARRAY_DIMENSIONS")
    return JsonArray(
        path,
        2,
        tuple(doc["shape"]),
        v2_dtype(doc["dtype"], filters),
        tuple(doc["chunks"]),
        None,
        names if isinstance(names, list) and len(names) == len(doc["shape"]) else None,
        doc.get("order", "C"),
        codecs,
        doc.get("dimension_separator") or ".",
        False,
        doc,
    )


def v3_array(path: str, doc: dict[str, Any]) -> JsonArray:
    chunks = tuple(doc["chunk_grid"]["configuration"]["chunk_shape"])
    codecs = doc["codecs"]
    names = [c["name"] for c in codecs]
    shards = None
    if names == ["sharding_indexed"]:
        conf = codecs[0]["configuration"]
        shards, chunks = chunks, tuple(conf["chunk_shape"])
        names = [
            "sharding_indexed",
            *(c["name"] for c in conf["codecs"]),
            *(f"index:{c['name']}" for c in conf.get("index_codecs", [])),
        ]
    encoding = doc.get("chunk_key_encoding", {"name": "default"})
    default = encoding["name"] == "default"
    separator = encoding.get("configuration", {}).get("separator", "/" if default else ".")
    dims = doc.get("dimension_names")
    return JsonArray(
        path,
        3,
        tuple(doc["shape"]),
        v3_dtype(doc["data_type"]),
        chunks,
        shards,
        [d if d is not None else "" for d in dims] if isinstance(dims, list) else None,
        "C",
        names,
        separator,
        default,
        doc,
    )


def json_arrays(files: Files) -> dict[str, JsonArray]:
    """Every array of the store, from its .zarray / zarr.json, or from consolidated metadata when that is all
    there is."""
    arrays: dict[str, JsonArray] = {}
    for key in files.sizes:
        path, _, name = key.rpartition("/")
        if name == ".zarray":
            arrays[path] = v2_array(path, files.json(key), files.json(join(path, ".zattrs")) or {})
        elif name == "zarr.json":
            doc = files.json(key)
            if doc.get("node_type") == "array":
                arrays[path] = v3_array(path, doc)
    zmeta = files.json(".zmetadata") if ".zmetadata" in files.sizes else None
    for key, doc in ((zmeta or {}).get("metadata") or {}).items():
        path, _, name = key.rpartition("/")
        if name == ".zarray" and path not in arrays:
            arrays[path] = v2_array(path, doc, zmeta["metadata"].get(join(path, ".zattrs"), {}))
    root = files.json("zarr.json") if "zarr.json" in files.sizes else None
    consolidated = (root or {}).get("consolidated_metadata") or {}
    for path, doc in (consolidated.get("metadata") or {}).items():
        if doc.get("node_type") == "array" and path not in arrays:
            arrays[path] = v3_array(path, doc)
    return arrays


def stored_objects(arr: JsonArray, files: Files) -> dict[tuple[int, ...], tuple[str, int]]:
    """Grid coordinates → (key, size) of the chunk (or shard) files of an array, found by matching file names."""
    grid = arr.grid
    prefix = f"{arr.path}/" if arr.path else ""
    found = {}
    for key, size in files.sizes.items():
        if not key.startswith(prefix):
            continue
        rel = key[len(prefix) :]
        if not grid:
            if rel == ("c" if arr.c_prefix else "0"):
                found[()] = (key, size)
            continue
        if arr.c_prefix:
            if not rel.startswith("c" + arr.separator):
                continue
            rel = rel[2:]
        parts = rel.split(arr.separator)
        if len(parts) != len(grid) or not all(p.isdigit() for p in parts):
            continue
        coords = tuple(int(p) for p in parts)
        if all(c < g for c, g in zip(coords, grid, strict=True)):
            found[coords] = (key, size)
    return found


def open_with_zarr(files: Files, arr: JsonArray) -> Any:
    """The array opened by zarr-python (through consolidated metadata when its own document is absent)."""
    if files.zip is not None:
        store: Any = zarr.storage.ZipStore(files.path, mode="r")
        base = files.prefix.rstrip("/")
    else:
        store, base = zarr.storage.LocalStore(files.path, read_only=True), ""
    doc = ".zarray" if arr.zarr_format == 2 else "zarr.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if join(arr.path, doc) in files.sizes:
            return zarr.open_array(store, path=join(base, arr.path), mode="r", zarr_format=arr.zarr_format)
        group = zarr.open_group(store, path=base, mode="r", zarr_format=arr.zarr_format, use_consolidated=True)
        return group[arr.path]


def check_with_zarr(files: Files, arr: JsonArray, record: ArrayRecord) -> None:
    z = open_with_zarr(files, arr)
    assert list(z.shape) == record.shape
    assert list(z.chunks) == record.chunk_shape
    assert (list(z.shards) if z.shards is not None else None) == record.shard_shape
    if arr.zarr_format == 3:
        names = z.metadata.dimension_names
        assert ([n if n is not None else "" for n in names] if names is not None else None) == arr.dimension_names
    else:
        assert z.metadata.order == record.order
    native = np.dtype(z.dtype) if not isinstance(z.dtype, np.dtypes.StringDType) else None
    if native is not None and native.kind in "biufcmM":
        assert native.name == record.dtype
    elif native is not None and native.kind in "USV":
        assert record.dtype == f"{native.kind}{native.itemsize // (4 if native.kind == 'U' else 1)}"
    else:
        assert record.dtype in ("string", "bytes", "object")


# --- OME-NGFF metadata as the group attributes describe it -----------------------------------------------


@dataclass
class Expected:
    """What image_assets should say about one array, beyond its geometry."""

    image_id: str
    level: int
    kind: str = "image"
    axes: list[str] | None = None
    axis_types: list[str | None] | None = None
    axis_units: list[str | None] | None = None
    axes_checked: bool = True  # False where the JSON alone does not say (NGFF 0.3 axis names: types implied)
    scale: list[float] | None = None
    translation: list[float] | None = None
    channel_names: list[str] | None = None
    plate_id: str | None = None
    well_id: str | None = None
    site_id: str | None = None
    ngff_version: str | None = None


def compose(transforms: list[dict[str, Any]]) -> tuple[list[float] | None, list[float] | None]:
    """Apply scale and translation transforms in list order: x → x * s + t."""
    scale = translation = None
    for t in transforms:
        if t.get("type") == "scale":
            s = np.asarray(t["scale"], float)
            scale = s if scale is None else scale * s
            translation = None if translation is None else translation * s
        elif t.get("type") == "translation":
            v = np.asarray(t["translation"], float)
            translation = v if translation is None else translation + v
    return (
        None if scale is None else scale.tolist(),
        None if translation is None else translation.tolist(),
    )


class NgffReader:
    """Walks a store the way OME-NGFF says to: plate → wells → fields, bioformats2raw series, images and labels;
    plain groups are listed. Yields the expected record of every array that exists."""

    def __init__(self, files: Files, arrays: dict[str, JsonArray], display_name: str) -> None:
        self.files = files
        self.arrays = arrays
        self.display_name = display_name
        self.fmt = 3 if "zarr.json" in files.sizes else 2
        self.expected: dict[str, Expected] = {}
        self.xml_channels: list[list[str]] = []
        self.xml_samples: dict[str, tuple[str, str, str]] = {}  # Image ID → (plate, well, site)

    def attrs(self, path: str) -> dict[str, Any] | None:
        if self.fmt == 3:
            doc = self.files.json(join(path, "zarr.json"))
            return None if doc is None else doc.get("attributes", {})
        found = self.files.json(join(path, ".zattrs"))
        if found is None and ".zmetadata" in self.files.sizes:
            found = self.files.json(".zmetadata")["metadata"].get(join(path, ".zattrs"))
        return found

    @staticmethod
    def ome(attrs: dict[str, Any]) -> dict[str, Any]:
        return attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs

    def child_dirs(self, path: str) -> list[str]:
        prefix = f"{path}/" if path else ""
        names = {
            k[len(prefix) :].split("/")[0] for k in self.files.sizes if k.startswith(prefix) and "/" in k[len(prefix) :]
        }
        for key in self.arrays:
            if key.startswith(prefix) and key != path:
                names.add(key[len(prefix) :].split("/")[0])
        return sorted(n for n in names if not n.startswith("."))

    def walk(self, path: str = "") -> dict[str, Expected]:
        if path in self.arrays:
            arr = self.arrays[path]
            self.expected[arr.record_path] = Expected(arr.record_path, 0, axes=arr.dimension_names)
            return self.expected
        ome = self.ome(self.attrs(path) or {})
        if "plate" in ome:
            self.plate(path, ome["plate"])
        elif "bioformats2raw.layout" in ome and not ome.get("multiscales"):
            self.bioformats2raw(path)
        elif ome.get("multiscales"):
            self.image(path, path or "/")
        elif "well" in ome:
            self.well(path, ome["well"], None, None)
        else:
            for name in self.child_dirs(path):
                self.walk(join(path, name))
        return self.expected

    def plate(self, path: str, plate: dict[str, Any]) -> None:
        rows = [r["name"] for r in plate.get("rows", [])]
        columns = [c["name"] for c in plate.get("columns", [])]
        for w in plate["wells"]:
            parts = w["path"].split("/")
            if len(parts) == 2 and parts[0] in rows and parts[1] in columns:
                row, column = parts
            else:
                row, column = rows[w["rowIndex"]], columns[w["columnIndex"]]
            well_id = row.upper() + (f"{int(column):02d}" if column.isdigit() else column)
            well_attrs = self.attrs(join(path, w["path"]))
            if well_attrs is not None:
                well = self.ome(well_attrs)["well"]
                self.well(join(path, w["path"]), well, plate.get("name") or self.display_name, well_id)

    def well(self, path: str, well: dict[str, Any], plate_id: str | None, well_id: str | None) -> None:
        for img in well["images"]:
            self.image(join(path, img["path"]), join(path, img["path"]), plate_id, well_id, img["path"])

    def bioformats2raw(self, path: str) -> None:
        xml = self.files.read(join(path, "OME/METADATA.ome.xml"))
        image_ids = []
        if xml is not None:
            root = ET.fromstring(xml)
            for image in (e for e in root.iter() if e.tag.split("}")[-1] == "Image"):
                channels = [c for c in image.iter() if c.tag.split("}")[-1] == "Channel"]
                self.xml_channels.append([c.get("Name") for c in channels if c.get("Name")])
                image_ids.append(image.get("ID"))
            for plate in (e for e in root.iter() if e.tag.split("}")[-1] == "Plate"):
                for well in (e for e in plate if e.tag.split("}")[-1] == "Well"):
                    well_id = chr(ord("A") + int(well.get("Row"))) + f"{int(well.get('Column')) + 1:02d}"
                    for site, sample in enumerate(e for e in well if e.tag.split("}")[-1] == "WellSample"):
                        ref = next(e for e in sample if e.tag.split("}")[-1] == "ImageRef")
                        self.xml_samples[ref.get("ID")] = (plate.get("Name"), well_id, str(site))
        series = (self.attrs(join(path, "OME")) or {}).get("series")
        if series is None:
            series = []
            while self.attrs(join(path, str(len(series)))) is not None:
                series.append(str(len(series)))
        for index, name in enumerate(series):
            names = self.xml_channels[index] if index < len(self.xml_channels) else None
            sample = self.xml_samples.get(image_ids[index]) if index < len(image_ids) else None
            plate_id, well_id, site_id = sample or (None, None, None)
            self.image(join(path, name), join(path, name), plate_id, well_id, site_id, series_channels=names or None)

    def image(
        self,
        group: str,
        image_id: str,
        plate_id: str | None = None,
        well_id: str | None = None,
        site_id: str | None = None,
        kind: str = "image",
        series_channels: list[str] | None = None,
    ) -> None:
        attrs = self.attrs(group) or {}
        ome = self.ome(attrs)
        omero = ome.get("omero", attrs.get("omero"))
        channels = None
        if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
            channels = [
                str(c["label"]) if c.get("label") not in (None, "") else f"Channel {i}"
                for i, c in enumerate(omero["channels"])
            ]
        channels = channels or series_channels
        if "image-label" in ome:
            kind = "label"
        for k, ms in enumerate(ome["multiscales"]):
            version = attrs["ome"].get("version") if isinstance(attrs.get("ome"), dict) else ms.get("version")
            iid = image_id if k == 0 else f"{image_id}#{k}"
            raw_axes = ms.get("axes")
            for level, ds in enumerate(ms["datasets"]):
                arr = self.arrays.get(join(group, ds["path"]))
                if arr is None:
                    continue
                ndim = len(arr.shape)
                names: list[str] | None
                types: list[str | None] | None = None
                units: list[str | None] | None = None
                checked = True
                if raw_axes is None:  # NGFF 0.1/0.2: the last dimensions of t, c, z, y, x
                    names = ["t", "c", "z", "y", "x"][5 - ndim :] if 0 < ndim <= 5 else None
                    kinds = {"t": "time", "c": "channel"}
                    types = [kinds.get(n, "space") for n in names] if names else None
                    units = [None] * ndim
                else:
                    names = [a["name"] if isinstance(a, dict) else a for a in raw_axes]
                    checked = all(isinstance(a, dict) for a in raw_axes)  # NGFF 0.3 names carry no type
                    types = [a.get("type") for a in raw_axes] if checked else None
                    units = [a.get("unit") for a in raw_axes] if checked else None
                if names is None or len(names) != ndim:
                    names, types, units, checked = arr.dimension_names, None, None, True
                scale, translation = compose(
                    (ds.get("coordinateTransformations") or []) + (ms.get("coordinateTransformations") or [])
                )
                self.expected[arr.record_path] = Expected(
                    iid,
                    level,
                    kind,
                    names,
                    types,
                    units,
                    checked,
                    scale if scale is None or len(scale) == ndim else None,
                    translation if translation is None or len(translation) == ndim else None,
                    channels,
                    plate_id,
                    well_id,
                    site_id,
                    version,
                )
        labels = self.attrs(join(group, "labels"))
        for name in self.ome(labels).get("labels", []) if labels else []:
            label_id = f"{image_id}/labels/{name}" if image_id != "/" else f"labels/{name}"
            if self.attrs(join(group, "labels", name)) is not None:
                self.image(join(group, "labels", name), label_id, plate_id, well_id, site_id, kind="label")


def display_name(path: Path) -> str:
    """The name a plate without a ``name`` goes by: the store's, without .zip, .ome.zarr or .zarr."""
    name = path.name.removesuffix(".zip")
    for suffix in (".ome.zarr", ".zarr"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# --- comparing a scan with all of the above --------------------------------------------------------------


def check_scan(path: Path, scan: StoreScan, zarr_unreadable: frozenset[str] = frozenset(), max_rows: int = 7) -> None:
    """Every array the metadata reaches is reported with the geometry, NGFF metadata and chunks read here."""
    files = Files(path)
    arrays = json_arrays(files)
    expected = NgffReader(files, arrays, display_name(path)).walk()
    got = {r.array_path: r for r in scan.arrays}
    assert len(got) == len(scan.arrays), "an array is reported twice"
    assert sorted(got) == sorted(expected)
    for array_path, record in got.items():
        arr = arrays["" if array_path == "/" else array_path]
        want = expected[array_path]
        assert record.shape == list(arr.shape)
        assert record.dtype == arr.dtype
        assert record.chunk_shape == list(arr.chunks)
        assert record.shard_shape == (list(arr.shards) if arr.shards else None)
        assert record.order == arr.order
        assert record.storage_variant == f"zarr-v{arr.zarr_format}"
        assert [c.split("/")[0] for c in record.codecs] == arr.codecs
        assert (record.image_id, record.level, record.kind) == (want.image_id, want.level, want.kind)
        assert record.axes == want.axes
        if want.axes_checked:
            assert (record.axis_types, record.axis_units) == (want.axis_types, want.axis_units)
        assert record.scale == (pytest.approx(want.scale) if want.scale is not None else None)
        assert record.translation == (pytest.approx(want.translation) if want.translation is not None else None)
        assert record.channel_names == want.channel_names
        assert (record.plate_id, record.well_id, record.site_id) == (want.plate_id, want.well_id, want.site_id)
        assert record.ngff_version == want.ngff_version
        if arr.path in zarr_unreadable:
            with pytest.raises(Exception):  # noqa: B017 - whatever zarr-python raises for it
                open_with_zarr(files, arr)
        else:
            check_with_zarr(files, arr, record)
        if arr.shards:
            check_sharded_index(files, arr, record, max_rows)
        else:
            check_chunk_index(files, arr, record, max_rows)
    assert scan.format == ("zarr" if all(e.ngff_version is None for e in expected.values()) else "ome-zarr")


def chunk_table(record: ArrayRecord, max_rows: int) -> pa.Table:
    batches = list(chunk_index_batches("ds", record, "fp", max_rows))
    assert all(0 < b.num_rows <= max_rows for b in batches)
    table = pa.Table.from_batches(batches) if batches else arrow_schema(CHUNK_INDEX_SCHEMA).empty_table()
    if batches:
        assert set(table["dataset_id"].to_pylist()) == {"ds"}
        assert set(table["array_path"].to_pylist()) == {record.array_path}
        assert set(table["fingerprint"].to_pylist()) == {"fp"}
    return table


def grid_coords(grid: tuple[int, ...]) -> np.ndarray:
    n = math.prod(grid)
    if not grid:
        return np.zeros((n, 0), np.int64)
    return np.stack(np.unravel_index(np.arange(n), grid), axis=1)


def check_coords(table: pa.Table, grid: tuple[int, ...]) -> np.ndarray:
    """Rows come in C order over the grid, one per chunk."""
    n = math.prod(grid)
    assert table.num_rows == n
    expect = grid_coords(grid)
    got = np.asarray(table["chunk_coords"].combine_chunks().flatten(), np.int64).reshape(n, len(grid))
    np.testing.assert_array_equal(got, expect)
    return expect


def check_chunk_index(files: Files, arr: JsonArray, record: ArrayRecord, max_rows: int) -> None:
    """Whole-file chunks: stored rows name files of that size, unstored rows name files that do not exist."""
    grid = arr.grid
    n = math.prod(grid)
    found = stored_objects(arr, files)
    assert (record.chunk_count, record.chunks_stored) == (n, len(found))
    assert record.stored_bytes == sum(size for _, size in found.values())
    table = chunk_table(record, max_rows if n < 5_000 else 65_536)
    coords = check_coords(table, grid)
    keys = table["storage_key"].to_pylist() if n else []
    stored = np.asarray(table["stored"].to_pylist() if n else [], bool)
    lengths = table["byte_length"].to_pylist() if n else []
    # Keys named by the encoding (every row for small grids, a spread of rows for huge metadata-only ones).
    rows = range(n) if n <= 100_000 else sorted({*range(0, n, 997), n - 1})
    assert [keys[i] for i in rows] == [arr.key(coords[i]) for i in rows]
    exists = np.fromiter((k in files.sizes for k in keys), bool, n)
    np.testing.assert_array_equal(stored, exists)
    assert all(lengths[i] == files.sizes[keys[i]] for i in np.flatnonzero(stored))
    assert all(lengths[i] is None for i in np.flatnonzero(~stored))
    assert table["byte_offset"].null_count == n


def decode_shard_index(data: bytes, n_inner: int, location: str) -> np.ndarray:
    """(n_inner, 2) offsets and lengths from a shard's index: little-endian uint64 pairs followed by a CRC32C,
    verified with numcodecs."""
    size = n_inner * 16 + 4
    raw = data[:size] if location == "start" else data[-size:]
    checked = numcodecs.CRC32C().decode(raw)  # raises when the checksum does not match
    return np.frombuffer(bytes(checked), "<u8").reshape(n_inner, 2)


def check_sharded_index(files: Files, arr: JsonArray, record: ArrayRecord, max_rows: int) -> None:
    """One row per inner chunk, keyed by its shard file, located by the shard's own index."""
    assert arr.shards is not None
    per = tuple(s // c for s, c in zip(arr.shards, arr.chunks, strict=True))
    location = arr.doc["codecs"][0]["configuration"].get("index_location", "end")
    shards = stored_objects(arr, files)
    indexes = {
        c: decode_shard_index(files.read(key) or b"", math.prod(per), location) for c, (key, _) in shards.items()
    }
    table = chunk_table(record, max_rows)
    coords = check_coords(table, arr.inner_grid)
    rows = table.to_pylist()
    n_stored = 0
    for inner, row in zip(coords, rows, strict=True):
        shard = tuple(int(c) // p for c, p in zip(inner, per, strict=True))
        assert row["storage_key"] == arr.key(shard)
        local = int(np.ravel_multi_index(tuple(int(c) % p for c, p in zip(inner, per, strict=True)), per))
        entry = indexes[shard][local] if shard in indexes else None
        if entry is None or int(entry[0]) == EMPTY:
            assert (row["stored"], row["byte_offset"], row["byte_length"]) == (False, None, None)
            continue
        n_stored += 1
        assert (row["stored"], row["byte_offset"], row["byte_length"]) == (True, int(entry[0]), int(entry[1]))
        assert row["byte_offset"] + row["byte_length"] <= files.sizes[row["storage_key"]]
    assert (record.chunk_count, record.chunks_stored) == (math.prod(arr.inner_grid), n_stored)
    assert record.stored_bytes == sum(size for _, size in shards.values())


def single_line_error(exc: StoreError, file: Path | str) -> None:
    """A store error is one line that starts with the offending file."""
    text = str(exc)
    assert "\n" not in text
    assert text.startswith(f"{file}: ")
    assert exc.path == str(file)


# --- the corpus: every Zarr store, accepted or rejected for a stated reason ------------------------------

EXAMPLES = "BioImageTools+ome-zarr-examples/data"
VIZARR = "hms-dbmi+vizarr/_exploded_from_fixtures_json"
CONFORMANCE = "ngff-conformance/0.6rc0/tests/zarr"

#: Corpus stores the scanner must reject: store → (the file the error names, relative to the store; what
#: the message says). Stores under CONFORMANCE are handled by conformance_rejection() below.
REJECTED = {
    # Made invalid on purpose (ome-zarr-examples' create_example_data.py): an empty attributes document and no
    # arrays at all; "multiscales": []; a multiscales whose dataset "0" was never written.
    f"{EXAMPLES}/invalid/image-01.zarr": (".zattrs", "no arrays in this Zarr hierarchy"),
    f"{EXAMPLES}/invalid/image-02.zarr": (".zattrs", "'multiscales' is an empty list"),
    f"{EXAMPLES}/invalid/image-03.zarr": ("0/.zarray", "level 0 of image / has no array metadata"),
    # vizarr's fixture keeps the plate, well and field groups of 2 wells of these IDR plates, but no array of
    # any field (nor any group of the 94 and 382 other wells the plate lists).
    f"{VIZARR}/v0.1/idr0001-plate": ("A/7/0/0/.zarray", "level 0 of image A/7/0 has no array metadata"),
    f"{VIZARR}/v0.1/idr0033-plate": ("P/8/0/0/.zarray", "level 0 of image P/8/0 has no array metadata"),
}

#: OME-NGFF 0.6rc0 conformance cases whose root metadata cannot be interpreted at all (the rest fail because
#: these one-document hierarchies have no arrays, see conformance_rejection()).
CONFORMANCE_BAD_METADATA = {
    "image/invalid_multiscales_transformations": "the scale of the multiscale is not a list of numbers",
    "image/missing_datasets": "a multiscales entry lists no datasets",
    "image/no_datasets": "a multiscales entry lists no datasets",
    "image/missing_path": "a multiscales dataset has no 'path'",
    "plate/missing_well_path": "a plate well has no 'path'",
}


def conformance_rejection(store: Path) -> tuple[str, str]:
    """Why a 0.6rc0 conformance hierarchy (one zarr.json, no arrays) is rejected: the file and the words."""
    case = f"{store.parent.name}/{store.name.removesuffix('.ome.zarr')}"
    try:
        attrs = json.loads((store / "zarr.json").read_text())["attributes"]
    except json.JSONDecodeError:  # two upstream files with an unterminated string (see the corpus README)
        return "zarr.json", "invalid JSON"
    ome = attrs.get("ome", attrs)  # some cases keep 0.4-style keys at the top of the attributes
    if case in CONFORMANCE_BAD_METADATA:
        return "zarr.json", f"invalid OME-NGFF metadata: {CONFORMANCE_BAD_METADATA[case]}"
    if ome.get("multiscales") == []:
        return "zarr.json", "'multiscales' is an empty list"
    if "multiscales" in ome:  # the first level is named, but no array was ever written there
        return f"{ome['multiscales'][0]['datasets'][0]['path']}/zarr.json", "level 0 of image / has no array"
    if "plate" in ome:
        wells = ome["plate"].get("wells") or []
        if not wells:
            return "zarr.json", "the plate lists no wells"
        return f"{wells[0]['path']}/zarr.json", "well listed in the plate metadata has no group"
    if "well" in ome:
        images = ome["well"].get("images") or []
        if not images:
            return "zarr.json", "the well lists no images"
        return f"{images[0]['path']}/zarr.json", "field listed in the well metadata has no group"
    return "zarr.json", "no arrays in this Zarr hierarchy"  # label-only hierarchies


def corpus_zarr_stores() -> list[Any]:
    stores = [p for p, kind in iter_store_paths(CORPUS) if kind in ("zarr", "zarr-zip")]
    return [pytest.param(p, id=p.relative_to(CORPUS).as_posix()) for p in stores]


def test_the_corpus_zarr_stores_are_all_found() -> None:
    found = {p.values[0].relative_to(CORPUS).as_posix() for p in corpus_zarr_stores()}
    assert set(REJECTED) <= found
    assert len([s for s in found if s.startswith(CONFORMANCE)]) == 85
    assert len([s for s in found if not s.startswith(CONFORMANCE)]) == 41
    assert {
        "fractal-analytics-platform+fractal-tasks-core/tests/data/plate_ones.zarr",
        "saalfeldlab+n5-universe/src/test/resources/metadata.zarr",
        "zarr-developers+zarr-python/fixture",
        f"{VIZARR}/v0.5/idr0047-multiscale",
    } <= found


@pytest.mark.parametrize("store", corpus_zarr_stores())
def test_corpus_store(store: Path) -> None:
    rel = store.relative_to(CORPUS).as_posix()
    rejection = conformance_rejection(store) if rel.startswith(CONFORMANCE) else REJECTED.get(rel)
    if rejection is not None:
        file, words = rejection
        with pytest.raises(StoreError) as info:
            scan_store(store)
        single_line_error(info.value, store / file)
        assert words in info.value.problem
        return
    scan = scan_store(store)
    assert scan.arrays
    check_scan(store, scan)


# --- corpus stores: values that other tools state for them -----------------------------------------------


def test_n5_universe_transform_sequences_compose_as_n5_universe_reads_them() -> None:
    """metadata.zarr's coordTforms groups list two transforms per level in every order; n5-universe's
    CoordinateTransformParsingTest expects these (scale, translation) pairs."""
    scan = scan_store(CORPUS / "saalfeldlab+n5-universe/src/test/resources/metadata.zarr")
    by_path = {r.array_path: r for r in scan.arrays}
    expected = {"ss": ([4, 4], [0, 0]), "st": ([2, 2], [10, 10]), "ts": ([2, 2], [20, 20]), "tt": ([1, 1], [20, 20])}
    for name, (scale, translation) in expected.items():
        record = by_path[f"coordTforms/{name}/s0"]
        assert (record.scale or [1.0, 1.0]) == scale
        assert (record.translation or [0.0, 0.0]) == translation
    # C- and F-order arrays of the same image: the order is recorded, the axes stay as declared.
    assert (by_path["cOrder/1"].order, by_path["fOrder/1"].order) == ("C", "F")
    assert by_path["fOrder/1"].axes == ["c", "x", "y", "z"]
    assert by_path["fOrder/1"].axis_units == [None, "nanometer", "nanometer", "nanometer"]


def test_bioformats2raw_output_matches_its_source_tiff() -> None:
    """The Galaxy bioformats2raw test converts an ImageJ hyperstack: same pixels grid, type and voxel size."""
    data = CORPUS / "BMCV+galaxy-image-analysis/tools/bioformats2raw/test-data"
    scan = scan_store(data / "xyz_8bit__mitotic_plate_calibrated.ome.zarr")
    level0 = next(r for r in scan.arrays if r.level == 0)
    with tifffile.TiffFile(data / "xyz_8bit__mitotic_plate_calibrated.tiff") as tif:
        series = tif.series[0]
        ij = tif.imagej_metadata
        x_res = tif.pages[0].tags["XResolution"].value
    assert series.axes == "ZYX"
    assert level0.image_id == "0" and level0.axes == ["t", "c", "z", "y", "x"]
    assert level0.shape == [1, 1, *series.shape]
    assert level0.dtype == series.dtype.name
    assert level0.scale is not None
    assert level0.scale[2] == pytest.approx(ij["spacing"])
    assert level0.scale[3] == pytest.approx(x_res[1] / x_res[0]) == level0.scale[4]
    assert level0.axis_units == ["second", None, "micrometer", "micrometer", "micrometer"]
    # The bioformats2raw store has no plate: nothing is invented.
    assert (level0.plate_id, level0.well_id, level0.site_id) == (None, None, None)


@pytest.mark.parametrize(
    "store",
    [
        "BioImageTools+ome-zarr-models-py/tests/v04/data/hcs_example.ome.zarr",
        "fractal-analytics-platform+fractal-tasks-core/tests/data/plate_ones.zarr",
        f"{EXAMPLES}/valid/plate-01.zarr",
    ],
)
def test_corpus_plates_agree_with_ome_zarr_models(store: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hcs = open_ome_zarr(zarr.open_group(CORPUS / store, mode="r"))
    plate = hcs.attributes.plate
    rows = [r.name for r in plate.rows]
    expected = {}
    for i, ref in enumerate(plate.wells):
        well = hcs.get_well_group(i)
        for j, image_ref in enumerate(well.attributes.well.images):
            image = well.get_image(j)
            ms = image.attributes.multiscales[0]
            channels = [c.label for c in image.attributes.omero.channels] if image.attributes.omero else None
            row, column = ref.path.split("/")
            assert row in rows
            for level, ds in enumerate(ms.datasets):
                expected[f"{ref.path}/{image_ref.path}/{ds.path}"] = (
                    f"{ref.path}/{image_ref.path}",
                    level,
                    [a.name for a in ms.axes],
                    list(ds.coordinateTransformations[0].scale),
                    channels,
                    plate.name or display_name(CORPUS / store),
                    f"{row}{int(column):02d}",
                    image_ref.path,
                )
    scan = scan_store(CORPUS / store)
    got = {
        r.array_path: (r.image_id, r.level, r.axes, r.scale, r.channel_names, r.plate_id, r.well_id, r.site_id)
        for r in scan.arrays
    }
    assert got == expected


def test_fractal_plate_skips_the_anndata_tables_in_its_field() -> None:
    store = CORPUS / "fractal-analytics-platform+fractal-tasks-core/tests/data/plate_ones.zarr"
    scan = scan_store(store)
    assert {r.array_path for r in scan.arrays} == {f"B/03/0/{level}" for level in range(5)}
    assert "B/03/0/tables: skipped: not image data referenced by the OME-NGFF metadata" in scan.warnings
    # All chunks of the five levels exist and are indexed with their real sizes (checked in test_corpus_store).
    assert [r.chunks_stored for r in scan.arrays] == [r.chunk_count for r in scan.arrays] == [8, 4, 4, 4, 4]


def test_ngff_axes_that_do_not_fit_the_array_are_not_applied() -> None:
    """invalid/image-04 has a 2-D level under 3 axes; vizarr's plain-yx is NGFF 0.1 (implicit 5-D axes) on
    2-D arrays: the former keeps no NGFF axes or scale, the latter reads them as the last axes."""
    scan = scan_store(CORPUS / EXAMPLES / "invalid/image-04.zarr")
    level1 = next(r for r in scan.arrays if r.level == 1)
    assert (level1.shape, level1.axes, level1.scale) == ([32, 32], None, None)
    assert "1: 3 axes in the multiscales metadata but the array is 2-D; axes ignored" in scan.warnings
    scan = scan_store(CORPUS / VIZARR / "generated/plain-yx")
    assert [r.axes for r in scan.arrays] == [["y", "x"], ["y", "x"]]
    assert [r.axis_types for r in scan.arrays] == [["space", "space"]] * 2


# --- written here: Zarr v2 -------------------------------------------------------------------------------


def fill_some(a: Any) -> None:
    """Write some chunks, leave others unwritten (zarr skips chunks equal to the fill value)."""
    values = np.arange(math.prod(a.shape), dtype=a.dtype).reshape(a.shape) % 7 + 1
    index = tuple(slice(0, max(1, s // 2)) for s in a.shape)
    a[index] = values[index]


@pytest.mark.parametrize("separator", [".", "/"])
@pytest.mark.parametrize("order", ["C", "F"])
def test_v2_flat_and_nested_chunk_keys_in_c_and_f_order(tmp_path: Path, separator: str, order: str) -> None:
    store = tmp_path / "v2.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=2)
    encoding = {"name": "v2", "separator": separator}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, shape, chunks in [("a", (9, 10, 11), (4, 3, 5)), ("deep/b", (6,), (4,)), ("c", (5, 5), (8, 8))]:
            a = group.create_array(
                name, shape=shape, chunks=chunks, dtype="int16", order=order, chunk_key_encoding=encoding
            )
            fill_some(a)
    assert json.loads((store / "a/.zarray").read_text())["dimension_separator"] == separator
    scan = scan_store(store)
    check_scan(store, scan)
    a = next(r for r in scan.arrays if r.array_path == "a")
    assert (a.order, a.chunk_key_encoding, a.chunk_count) == (order, f"v2/{separator}", 3 * 4 * 3)
    key = next(b for b in chunk_index_batches("ds", a, "fp", 100)).to_pylist()[0]["storage_key"]
    assert key == f"a/0{separator}0{separator}0"
    assert 0 < a.chunks_stored < a.chunk_count
    zarr_count = zarr.open_array(store / "a", mode="r").nchunks_initialized
    assert a.chunks_stored == zarr_count


def test_v2_without_dimension_separator_means_flat_keys(tmp_path: Path) -> None:
    """Older writers omit dimension_separator: keys are flat, and nested files are not chunks."""
    store = tmp_path / "old.zarr"
    (store / "a/1").mkdir(parents=True)
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    doc = {
        "zarr_format": 2,
        "shape": [4, 4],
        "chunks": [2, 2],
        "dtype": "|u1",
        "compressor": None,
        "fill_value": 0,
        "filters": None,
        "order": "C",
    }
    (store / "a/.zarray").write_text(json.dumps(doc))
    (store / "a/0.1").write_bytes(bytes(4))
    (store / "a/1/0").write_bytes(bytes(4))  # not a chunk of a flat-key array
    scan = scan_store(store)
    check_scan(store, scan)
    assert (scan.arrays[0].chunks_stored, scan.arrays[0].stored_bytes) == (1, 4)
    assert zarr.open_array(store / "a", mode="r").nchunks_initialized == 1


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_consolidated_metadata_is_enough(tmp_path: Path, zarr_format: int) -> None:
    """Arrays whose own documents are gone are still found through the consolidated metadata."""
    store = tmp_path / "consolidated.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=zarr_format)
    group.create_group("sub").attrs["note"] = "ü"
    a = group.create_array("sub/arr", shape=(6, 4), chunks=(4, 4), dtype="float32")
    a[:4] = 1.5
    group.create_array("other", shape=(3,), chunks=(2,), dtype="u1")[:] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(store)
    for doc in [".zarray", ".zattrs"] if zarr_format == 2 else ["zarr.json"]:
        (store / "sub/arr" / doc).unlink(missing_ok=True)
    if zarr_format == 2:
        (store / "sub/.zgroup").unlink()
    scan = scan_store(store)
    check_scan(store, scan)
    assert sorted(r.array_path for r in scan.arrays) == ["other", "sub/arr"]
    arr = next(r for r in scan.arrays if r.array_path == "sub/arr")
    assert (arr.shape, arr.chunks_stored) == ([6, 4], 1)


NUMERIC = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_every_numeric_dtype_and_bool(tmp_path: Path, zarr_format: int) -> None:
    store = tmp_path / "dtypes.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=zarr_format)
    for name in NUMERIC:
        a = group.create_array(name, shape=(5, 3), chunks=(2, 2), dtype=name)
        a[:2] = np.ones((2, 3), dtype=name)
    big_endian = group.create_array("be", shape=(4,), chunks=(4,), dtype=">u2" if zarr_format == 2 else "uint16")
    big_endian[:] = 258
    scan = scan_store(store)
    check_scan(store, scan)
    dtypes = {r.array_path: r.dtype for r in scan.arrays}
    assert dtypes == {**{n: n for n in NUMERIC}, "be": "uint16"}
    assert scan.warnings == []


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_string_and_bytes_dtypes(tmp_path: Path, zarr_format: int) -> None:
    store = tmp_path / "strings.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=zarr_format)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group.create_array("fixed_u", shape=(3,), chunks=(2,), dtype="U10")[:] = ["a", "bé", "c"]
        group.create_array("fixed_s", shape=(3,), chunks=(2,), dtype="S5")[:] = [b"a", b"b", b"c"]
        group.create_array("raw", shape=(3,), chunks=(2,), dtype="V4")
        group.create_array("vlen", shape=(3,), chunks=(2,), dtype=str)[:] = ["x", "yy", "zzz"]
        group.create_array("vbytes", shape=(3,), chunks=(2,), dtype=zarr.dtype.VariableLengthBytes())
        group.create_array("when", shape=(2,), chunks=(2,), dtype="datetime64[ms]")
    scan = scan_store(store)
    check_scan(store, scan)
    dtypes = {r.array_path: r.dtype for r in scan.arrays}
    assert dtypes == {
        "fixed_u": "U10",
        "fixed_s": "S5",
        "raw": "V4",
        "vlen": "string",
        "vbytes": "bytes",
        "when": "datetime64[ms]",
    }
    assert scan.warnings == []
    vlen = next(r for r in scan.arrays if r.array_path == "vlen")
    assert vlen.codecs[0] == "vlen-utf8"


def write_v2_array(directory: Path, dtype: str, compressor: dict[str, Any] | None, filters: Any = None) -> None:
    directory.mkdir(parents=True)
    doc = {
        "zarr_format": 2,
        "shape": [3],
        "chunks": [3],
        "dtype": dtype,
        "compressor": compressor,
        "fill_value": 0,
        "filters": filters,
        "order": "C",
    }
    (directory / ".zarray").write_text(json.dumps(doc))


def test_object_dtype_and_unknown_codecs_are_warnings_for_their_array(tmp_path: Path) -> None:
    store = tmp_path / "odd.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=2)
    group.create_array("good", shape=(4,), chunks=(2,), dtype="i1")[:] = 1
    write_v2_array(store / "pickled", "|O", None, [{"id": "pickle", "protocol": 5}])
    (store / "pickled/0").write_bytes(numcodecs.Pickle().encode(np.array([1, "a", None], dtype=object)))
    write_v2_array(store / "mystery", "<i2", {"id": "no_such_codec", "level": 3})
    (store / "mystery/0").write_bytes(b"\x00" * 5)
    write_v2_array(store / "odd_dtype", "<x9", None)
    scan = scan_store(store)
    # zarr-python 3 opens none of these: an unknown codec and dtype, and object arrays other than vlen strings.
    check_scan(store, scan, zarr_unreadable=frozenset({"mystery", "odd_dtype", "pickled"}))
    by_path = {r.array_path: r for r in scan.arrays}
    assert (by_path["pickled"].dtype, by_path["pickled"].codecs, by_path["pickled"].chunks_stored) == (
        "object",
        ["pickle"],
        1,
    )
    assert by_path["mystery"].codecs == ["no_such_codec"]
    assert by_path["good"].dtype == "int8"
    warned = sorted(w.split(":")[0] for w in scan.warnings)
    assert warned == ["mystery", "odd_dtype", "pickled"]
    assert any("unknown codec 'no_such_codec'" in w for w in scan.warnings)
    assert any(w.startswith("pickled: object dtype") for w in scan.warnings)


def test_v3_unknown_codec_and_data_type_are_warnings(tmp_path: Path) -> None:
    store = tmp_path / "odd3.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=3)
    group.create_array("good", shape=(4,), chunks=(2,), dtype="u2")[:] = 3
    doc = json.loads((store / "good/zarr.json").read_text())
    for name, change in [
        ("codec", {"codecs": [{"name": "bytes"}, {"name": "my.codec"}]}),
        ("dtype", {"data_type": "float8_e4m3"}),
    ]:
        (store / name).mkdir()
        (store / name / "zarr.json").write_text(json.dumps({**doc, **change}))
    shutil.copytree(store / "good/c", store / "codec/c")
    scan = scan_store(store)
    check_scan(store, scan, zarr_unreadable=frozenset({"codec", "dtype"}))
    assert sorted(scan.warnings) == ["codec: unknown codec 'my.codec'", "dtype: unknown data_type 'float8_e4m3'"]
    codec = next(r for r in scan.arrays if r.array_path == "codec")
    assert (codec.codecs, codec.chunks_stored) == (["bytes", "my.codec"], 2)


def test_zero_dimensional_empty_and_oversized_chunk_arrays(tmp_path: Path) -> None:
    for zarr_format in (2, 3):
        store = tmp_path / f"edge{zarr_format}.zarr"
        group = zarr.open_group(store, mode="w", zarr_format=zarr_format)
        group.create_array("scalar", shape=(), dtype="f4")[()] = 3.0
        group.create_array("empty", shape=(0, 5), chunks=(2, 2), dtype="u1")
        group.create_array("big_chunk", shape=(3, 4), chunks=(10, 10), dtype="u1")[:] = 1
        scan = scan_store(store)
        check_scan(store, scan, max_rows=1)
        counts = {r.array_path: (r.chunk_count, r.chunks_stored) for r in scan.arrays}
        assert counts == {"scalar": (1, 1), "empty": (0, 0), "big_chunk": (1, 1)}


# --- written here: Zarr v3 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "separator", "first_key"),
    [
        ("default", "/", "img/c/0/0/0"),
        ("default", ".", "img/c.0.0.0"),
        ("v2", ".", "img/0.0.0"),
        ("v2", "/", "img/0/0/0"),
    ],
)
def test_v3_chunk_key_encodings_and_dimension_names(tmp_path: Path, name: str, separator: str, first_key: str) -> None:
    store = tmp_path / "v3.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=3)
    a = group.create_array(
        "img",
        shape=(3, 10, 7),
        chunks=(1, 4, 4),
        dtype="uint16",
        chunk_key_encoding={"name": name, "separator": separator},
        dimension_names=["z", "y", None],
    )
    fill_some(a)
    scan = scan_store(store)
    check_scan(store, scan)
    record = scan.arrays[0]
    assert record.axes == ["z", "y", ""]
    assert record.chunk_key_encoding == f"{name}/{separator}"
    assert next(chunk_index_batches("ds", record, "fp", 3)).to_pylist()[0]["storage_key"] == first_key
    assert record.chunks_stored == zarr.open_array(store / "img", mode="r").nchunks_initialized


@pytest.mark.parametrize("index_location", ["end", "start"])
def test_sharded_array_indexes_inner_chunks_from_the_shard_index(tmp_path: Path, index_location: str) -> None:
    """Shards (4, 6) of inner chunks (2, 3) over (10, 13): one shard row never written, inner chunks left
    empty in the written shards. Every row is checked against the index decoded here, and every stored
    inner chunk decodes to the array's values at its place."""
    store = tmp_path / "sharded.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=3)
    serializer = ShardingCodec(chunk_shape=(2, 3), codecs=[BytesCodec(), ZstdCodec()], index_location=index_location)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = group.create_array(
            "s",
            shape=(10, 13),
            chunks=(4, 6),
            serializer=serializer,
            compressors=None,
            dtype="uint16",
            dimension_names=["y", "x"],
        )
    values = np.arange(130, dtype="uint16").reshape(10, 13) + 1
    a[0:2, 0:13] = values[0:2]  # the first row of inner chunks of every shard in shard row 0
    a[4:6, 6:9] = values[4:6, 6:9]  # one inner chunk of shard (1, 1)
    scan = scan_store(store)
    check_scan(store, scan, max_rows=5)
    record = scan.arrays[0]
    assert (record.chunk_shape, record.shard_shape) == ([2, 3], [4, 6])
    assert record.codecs == ["sharding_indexed", "bytes", "zstd", "index:bytes", "index:crc32c"]
    shard_files = sorted(p.relative_to(store).as_posix() for p in (store / "s/c").rglob("*") if p.is_file())
    assert shard_files == ["s/c/0/0", "s/c/0/1", "s/c/0/2", "s/c/1/1"]
    assert (record.chunk_count, record.chunks_stored) == (5 * 5, 5 + 1)
    # The located bytes are the inner chunks: decode them and compare with the array.
    zstd = numcodecs.Zstd()
    rows = [r for b in chunk_index_batches("ds", record, "fp", 1000) for r in b.to_pylist() if r["stored"]]
    for row in rows:
        data = (store / row["storage_key"]).read_bytes()[row["byte_offset"] : row["byte_offset"] + row["byte_length"]]
        y, x = row["chunk_coords"]
        block = np.frombuffer(zstd.decode(data), "<u2").reshape(2, 3)
        expect = np.zeros((2, 3), "uint16")  # a chunk past the array's edge is padded with the fill value
        written = a[y * 2 : y * 2 + 2, x * 3 : x * 3 + 3]
        expect[: written.shape[0], : written.shape[1]] = written
        np.testing.assert_array_equal(block, expect)
    assert {tuple(r["chunk_coords"]) for r in rows} == {(0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (2, 2)}


def test_sharding_that_hides_its_index_lists_whole_shards(tmp_path: Path) -> None:
    """A bytes-to-bytes codec after the shard codec compresses whole shards (index included), and a transpose
    before it reorders the inner grid: inner chunks cannot be located without decoding pixels, so the shards
    are indexed whole and a warning says so."""
    store = tmp_path / "hidden.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outer = group.create_array(
            "outer",
            shape=(10,),
            chunks=(4,),
            serializer=ShardingCodec(chunk_shape=(2,)),
            compressors=ZstdCodec(),
            dtype="u1",
        )
        outer[:3] = 1
        transposed = group.create_array(
            "transposed",
            shape=(4, 6),
            chunks=(4, 6),
            filters=[TransposeCodec(order=(1, 0))],
            serializer=ShardingCodec(chunk_shape=(2, 3)),
            compressors=None,
            dtype="u1",
        )
        transposed[:] = 1
    scan = scan_store(store)
    by_path = {r.array_path: r for r in scan.arrays}
    assert (by_path["outer"].chunk_shape, by_path["outer"].shard_shape) == ([4], [4])
    assert (by_path["outer"].chunk_count, by_path["outer"].chunks_stored) == (3, 1)
    assert by_path["outer"].codecs == ["sharding_indexed", "bytes", "index:bytes", "index:crc32c", "zstd"]
    assert (by_path["transposed"].chunk_count, by_path["transposed"].chunks_stored) == (1, 1)
    assert by_path["transposed"].codecs[:2] == ["transpose", "sharding_indexed"]
    assert sorted(w.split(":")[0] for w in scan.warnings) == ["outer", "transposed"]
    rows = next(chunk_index_batches("ds", by_path["outer"], "fp", 10)).to_pylist()
    assert rows[0]["storage_key"] == "outer/c/0" and rows[0]["byte_length"] == (store / "outer/c/0").stat().st_size
    assert rows[0]["byte_offset"] is None


# --- written here: OME-NGFF ------------------------------------------------------------------------------


def write_ngff_image(group: Any, fmt: Any, channels: list[str] | None = None, labels: bool = True) -> np.ndarray:
    data = (np.arange(2 * 16 * 20, dtype="uint16").reshape(2, 16, 20) % 251).astype("uint16")
    window = {"min": 0, "max": 255, "start": 0, "end": 255}
    extra = (
        {"omero": {"channels": [{"label": c, "color": "FFFFFF", "window": window} for c in channels]}}
        if channels
        else {}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_image(
            data,
            group,
            axes=["c", "y", "x"],
            fmt=fmt,
            scale_factors=[2],
            scale={"y": 0.5, "x": 0.25},
            axes_units={"y": "micrometer", "x": "micrometer"},
            storage_options={"chunks": (1, 8, 8)},
            **extra,
        )
        if labels:
            write_labels(
                (data[:1] > 100).astype("uint8"), group, name="nuclei", fmt=fmt, axes=["c", "y", "x"], scale_factors=[2]
            )
    return data


@pytest.mark.parametrize("fmt", [FormatV04(), FormatV05()], ids=["0.4", "0.5"])
def test_ngff_image_with_labels_and_omero(tmp_path: Path, fmt: Any) -> None:
    store = tmp_path / "image.ome.zarr"
    write_ngff_image(zarr.open_group(store, mode="w", zarr_format=fmt.zarr_format), fmt, ["DAPI", "GFP"])
    scan = scan_store(store)
    check_scan(store, scan)
    assert scan.format == "ome-zarr"
    image = [r for r in scan.arrays if r.kind == "image"]
    assert [(r.image_id, r.array_path, r.level) for r in image] == [("/", "s0", 0), ("/", "s1", 1)]
    assert all(r.channel_names == ["DAPI", "GFP"] and r.ngff_version == fmt.version for r in image)
    assert image[0].scale == [1.0, 0.5, 0.25] and image[1].scale == [1.0, 1.0, 0.5]
    assert image[0].axis_units == [None, "micrometer", "micrometer"]
    assert image[0].axis_types == ["channel", "space", "space"]
    labels = [r for r in scan.arrays if r.kind == "label"]
    assert {r.image_id for r in labels} == {"labels/nuclei"}
    assert [r.level for r in labels] == list(range(len(labels))) and len(labels) >= 2
    assert all(r.channel_names is None for r in labels)


@pytest.mark.parametrize("version", ["0.2", "0.3"])
def test_ngff_before_axes_objects(tmp_path: Path, version: str) -> None:
    """0.2 has no axes (5-D t, c, z, y, x); 0.3 lists axis names as strings. ome-zarr no longer writes either,
    so the metadata is written here as those versions' specifications show it."""
    store = tmp_path / "old.ome.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=2)
    shapes = [(1, 2, 3, 8, 8), (1, 2, 3, 4, 4)] if version == "0.2" else [(3, 8, 8), (3, 4, 4)]
    for level, shape in enumerate(shapes):
        group.create_array(str(level), shape=shape, chunks=shape, dtype="uint8")[:] = 1
    multiscale: dict[str, Any] = {"version": version, "datasets": [{"path": "0"}, {"path": "1"}]}
    if version == "0.3":
        multiscale["axes"] = ["z", "y", "x"]
    group.attrs["multiscales"] = [multiscale]
    scan = scan_store(store)
    check_scan(store, scan)
    axes = ["t", "c", "z", "y", "x"] if version == "0.2" else ["z", "y", "x"]
    assert [(r.axes, r.ngff_version, r.chunks_stored) for r in scan.arrays] == [(axes, version, 1)] * 2
    types = ["time", "channel", "space", "space", "space"] if version == "0.2" else ["space"] * 3
    assert scan.arrays[-1].axis_types == types
    assert scan.warnings == []


def write_plate(
    store: Path, fmt: Any, name: str | None, wells: list[str], fields: tuple[str, ...] = ("0", "1")
) -> None:
    root = zarr.open_group(store, mode="w", zarr_format=fmt.zarr_format)
    rows = sorted({w.split("/")[0] for w in wells})
    columns = sorted({w.split("/")[1] for w in wells}, key=int)
    write_plate_metadata(root, rows, columns, wells, fmt=fmt, name=name)
    for well in wells:
        well_group = root.require_group(well)
        write_well_metadata(well_group, [{"path": f} for f in fields], fmt=fmt)
        for f in fields:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write_image(np.ones((8, 8), "uint8"), well_group.require_group(f), axes="yx", fmt=fmt, scale_factors=[])


@pytest.mark.parametrize("fmt", [FormatV04(), FormatV05()], ids=["0.4", "0.5"])
@pytest.mark.parametrize("name", ["screen-1", None])
def test_plate_well_field_traversal(tmp_path: Path, fmt: Any, name: str | None) -> None:
    store = tmp_path / "my_plate.ome.zarr"
    write_plate(store, fmt, name, ["A/1", "B/3", "B/12"])
    scan = scan_store(store)
    check_scan(store, scan)
    sites = sorted((r.plate_id, r.well_id, r.site_id, r.image_id) for r in scan.arrays)
    plate = name or "my_plate"
    assert sites == sorted(
        (plate, w, f, f"{p}/{f}") for w, p in [("A01", "A/1"), ("B03", "B/3"), ("B12", "B/12")] for f in ("0", "1")
    )


@pytest.mark.parametrize("fmt", [FormatV04(), FormatV05()], ids=["0.4", "0.5"])
def test_plate_rows_without_metadata_are_followed_through_the_plate(tmp_path: Path, fmt: Any) -> None:
    """Row groups without .zgroup / zarr.json (as vizarr's IDR fixtures have): wells are found by their paths
    in the plate metadata; a well-like group the plate does not list is not scanned."""
    store = tmp_path / "rows.ome.zarr"
    write_plate(store, fmt, "p", ["A/1", "C/2"], fields=("0",))
    stray = zarr.open_group(store / "D/4", mode="w", zarr_format=fmt.zarr_format)
    write_well_metadata(stray, [{"path": "0"}], fmt=fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_image(np.ones((8, 8), "uint8"), stray.require_group("0"), axes="yx", fmt=fmt, scale_factors=[])
    for row in "ACD":
        for doc in (".zgroup", ".zattrs", "zarr.json"):
            (store / row / doc).unlink(missing_ok=True)
    assert zarr.open_group(store, mode="r").attrs  # the plate itself is intact
    scan = scan_store(store)
    check_scan(store, scan)
    assert sorted((r.well_id, r.image_id) for r in scan.arrays) == [("A01", "A/1/0"), ("C02", "C/2/0")]


OME_XML = """<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
  <Plate ID="Plate:0" Name="xml-plate">
    <Well ID="Well:0" Row="1" Column="2">
      <WellSample ID="WellSample:0" Index="0"><ImageRef ID="Image:0"/></WellSample>
      <WellSample ID="WellSample:1" Index="1"><ImageRef ID="Image:1"/></WellSample>
    </Well>
  </Plate>
  <Image ID="Image:0" Name="first">
    <Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="20" SizeY="16" SizeZ="1" SizeC="2" SizeT="1">
      <Channel ID="Channel:0:0" Name="Hoechst"/><Channel ID="Channel:0:1" Name="Phalloidin"/>
    </Pixels>
  </Image>
  <Image ID="Image:1" Name="second">
    <Pixels ID="Pixels:1" DimensionOrder="XYZCT" Type="uint16" SizeX="20" SizeY="16" SizeZ="1" SizeC="2" SizeT="1">
      <Channel ID="Channel:1:0" Name="DNA"/><Channel ID="Channel:1:1" Name="Actin"/>
    </Pixels>
  </Image>
</OME>
"""


@pytest.mark.parametrize("series_listed", [True, False])
def test_bioformats2raw_layout_with_ome_xml(tmp_path: Path, series_listed: bool) -> None:
    """Series groups 0 and 1 (no omero metadata): channel names and the acquisition's plate, well and site
    come from OME/METADATA.ome.xml."""
    store = tmp_path / "converted.ome.zarr"
    root = zarr.open_group(store, mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    ome = root.create_group("OME")
    if series_listed:
        ome.attrs["series"] = ["0", "1"]
    (store / "OME/METADATA.ome.xml").write_text(OME_XML)
    for series in ("0", "1"):
        write_ngff_image(root.create_group(series), FormatV04(), labels=False)
    scan = scan_store(store)
    check_scan(store, scan)
    got = sorted({(r.image_id, tuple(r.channel_names or ()), r.plate_id, r.well_id, r.site_id) for r in scan.arrays})
    # Row 1 and Column 2 are 0-based in OME-XML: well B03.
    assert got == [
        ("0", ("Hoechst", "Phalloidin"), "xml-plate", "B03", "0"),
        ("1", ("DNA", "Actin"), "xml-plate", "B03", "1"),
    ]
    assert scan.warnings == []


# --- written here: stores assembled from the OME-NGFF specification's own examples ----------------------

SPEC = CORPUS / "ngff-conformance"


def spec_attrs(version: str, example: str) -> dict[str, Any]:
    """An example's attributes (0.4 examples are attributes, 0.5 ones whole zarr.json documents); lines that
    start with // are comments, as the specification's test runner reads them."""
    text = (SPEC / version / "examples" / f"{example}.json").read_text()
    doc = json.loads("\n".join(line for line in text.splitlines() if not line.strip().startswith("//")))
    return doc["attributes"] if version == "0.5" else doc


def write_group_doc(store: Path, path: str, attrs: dict[str, Any], zarr_format: int) -> None:
    directory = store / path if path else store
    directory.mkdir(parents=True, exist_ok=True)
    if zarr_format == 3:
        (directory / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs}))
    else:
        (directory / ".zgroup").write_text('{"zarr_format": 2}')
        (directory / ".zattrs").write_text(json.dumps(attrs))


def write_levels(store: Path, group: str, attrs: dict[str, Any], zarr_format: int) -> None:
    """Arrays for every level an example multiscales names, halving y and x (and z) per level."""
    ms = NgffReader.ome(attrs)["multiscales"][0]
    names = [a["name"] for a in ms["axes"]]
    root = zarr.open_group(store, mode="a", zarr_format=zarr_format)
    for level, ds in enumerate(ms["datasets"]):
        shape = tuple(max(1, 8 >> level) if n in "zyx" else 2 if n == "c" else 1 for n in names)
        extra = {"dimension_names": names} if zarr_format == 3 else {}
        root.create_array(join(group, ds["path"]), shape=shape, chunks=shape, dtype="uint16", **extra)[...] = 1


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_specification_examples_assembled_into_a_plate(tmp_path: Path, version: str) -> None:
    """plate_6wells → well_2fields in every well → multiscales_example in every field, as the specification
    writes them. Multiscale-wide transforms compose with each level's: t is 0.1 ms at every level."""
    store = tmp_path / "spec_plate.ome.zarr"
    zarr_format = 3 if version == "0.5" else 2
    plate, well, image = (
        spec_attrs(version, e)
        for e in ("plate_strict/plate_6wells", "well_strict/well_2fields", "multiscales_strict/multiscales_example")
    )
    for ref in NgffReader.ome(plate)["plate"]["wells"]:
        for field in NgffReader.ome(well)["well"]["images"]:
            write_levels(store, join(ref["path"], field["path"]), image, zarr_format)
            write_group_doc(store, join(ref["path"], field["path"]), image, zarr_format)
        write_group_doc(store, ref["path"], well, zarr_format)
    write_group_doc(store, "", plate, zarr_format)
    scan = scan_store(store)
    check_scan(store, scan)
    assert len(scan.arrays) == 6 * 2 * 3
    assert {(r.plate_id, r.well_id) for r in scan.arrays} == {
        ("test", f"{row}{column:02d}") for row in "AB" for column in (1, 2, 3)
    }
    assert {r.site_id for r in scan.arrays} == {"0", "1"}
    scales = {r.level: r.scale for r in scan.arrays}
    assert scales == {0: [0.1, 1.0, 0.5, 0.5, 0.5], 1: [0.1, 1.0, 1.0, 1.0, 1.0], 2: [0.1, 1.0, 2.0, 2.0, 2.0]}
    assert {tuple(r.axis_units or ()) for r in scan.arrays} == {
        ("millisecond", None, "micrometer", "micrometer", "micrometer")
    }


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_specification_bioformats2raw_example_with_two_series(tmp_path: Path, version: str) -> None:
    """bf2raw/image at the root, ome/series-2 in OME, multiscales_transformations in series 0 and 1."""
    store = tmp_path / "spec_series.ome.zarr"
    zarr_format = 3 if version == "0.5" else 2
    image = spec_attrs(version, "multiscales_strict/multiscales_transformations")
    for series in ("0", "1"):
        write_levels(store, series, image, zarr_format)
        write_group_doc(store, series, image, zarr_format)
    write_group_doc(store, "OME", spec_attrs(version, "ome/series-2"), zarr_format)
    write_group_doc(store, "", spec_attrs(version, "bf2raw/image"), zarr_format)
    scan = scan_store(store)
    check_scan(store, scan)
    assert [(r.image_id, r.array_path, r.scale) for r in scan.arrays] == [
        ("0", "0/0", [10.0, 10.0]),
        ("1", "1/0", [10.0, 10.0]),
    ]


def test_ngff_0_6_axes_come_from_the_coordinate_system_the_levels_map_to(tmp_path: Path) -> None:
    """0.6 (rc0) drops multiscales.axes for named coordinateSystems: the conformance example, given arrays."""
    store = tmp_path / "rc.ome.zarr"
    example = SPEC / "0.6rc0/tests/zarr/strict/valid/image/multiscales_example.ome.zarr/zarr.json"
    attrs = json.loads(example.read_text())["attributes"]
    ms = attrs["ome"]["multiscales"][0]
    target = ms["datasets"][0]["coordinateTransformations"][-1]["output"]
    system = next(cs for cs in ms["coordinateSystems"] if cs["name"] == target)
    write_levels(store, "", {"ome": {"multiscales": [{**ms, "axes": system["axes"]}]}}, 3)
    (store / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": attrs}))
    scan = scan_store(store)
    assert len(scan.arrays) == len(ms["datasets"]) == 3
    for record, ds in zip(scan.arrays, ms["datasets"], strict=True):
        assert record.axes == [a["name"] for a in system["axes"]]
        assert record.axis_types == [a["type"] for a in system["axes"]]
        assert record.axis_units == [a.get("unit") for a in system["axes"]]
        assert record.ngff_version == "0.6rc0"
        assert record.scale == compose(ds["coordinateTransformations"] + ms.get("coordinateTransformations", []))[0]


# --- written here: zipped stores -------------------------------------------------------------------------


def zip_store(directory: Path, archive: Path, how: str) -> Path:
    """``folder``: what ``zip -r archive store.zarr`` makes (folder entries, every member under the store's
    name; ``folder+deflate`` compresses them as zip does by default). ``root``: members at the archive's root,
    stored uncompressed (what zarr-python's ZipStore writes)."""
    compression = zipfile.ZIP_DEFLATED if how.endswith("deflate") else zipfile.ZIP_STORED
    with zipfile.ZipFile(archive, "w", compression) as zf:
        for path in sorted([directory, *directory.rglob("*")]):
            name = path.relative_to(directory.parent if how.startswith("folder") else directory).as_posix()
            if path.is_file():
                zf.write(path, name)
            elif how.startswith("folder"):
                zf.write(path, f"{name}/")
    return archive


@pytest.mark.parametrize("how", ["folder", "root"])
@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zipped_store_scans_like_its_directory(tmp_path: Path, zarr_format: int, how: str) -> None:
    directory = tmp_path / "image.ome.zarr"
    fmt = FormatV04() if zarr_format == 2 else FormatV05()
    write_ngff_image(zarr.open_group(directory, mode="w", zarr_format=zarr_format), fmt, ["a", "b"])
    archive = zip_store(directory, tmp_path / "image.ome.zarr.zip", how)
    scan = scan_store(archive)
    check_scan(archive, scan)
    assert scan.dataset_id == "image.ome.zarr.zip"
    plain = scan_store(directory)

    def facts(s: StoreScan) -> list[tuple[Any, ...]]:
        return [
            (r.image_id, r.array_path, r.shape, r.dtype, r.axes, r.scale, r.channel_names, r.chunks_stored)
            for r in s.arrays
        ]

    assert facts(scan) == facts(plain)


def test_zipped_plate_is_named_after_the_archive(tmp_path: Path) -> None:
    """A plate without a name in ``screen.ome.zarr.zip`` is plate ``screen``, as it is unzipped. Needs
    formats.plate_name_from_path to strip ".ome.zarr.zip" as a whole."""
    directory = tmp_path / "screen.ome.zarr"
    write_plate(directory, FormatV05(), None, ["B/3"], fields=("0",))
    archive = zip_store(directory, tmp_path / "screen.ome.zarr.zip", "root")
    assert {r.plate_id for r in scan_store(directory).arrays} == {"screen"}
    assert {(r.plate_id, r.well_id, r.site_id) for r in scan_store(archive).arrays} == {("screen", "B03", "0")}


def test_zipped_chunk_lengths_are_the_chunk_sizes_not_the_compressed_member_sizes(tmp_path: Path) -> None:
    """Chunks zipped with deflate (``zip -r``): a chunk is the member's content, so its length is the member's
    uncompressed size (what a reader gets). Needs storage.ZipStore to list ZipInfo.file_size."""
    directory = tmp_path / "raw.zarr"
    a = zarr.create_array(directory, shape=(64,), chunks=(32,), dtype="u2", zarr_format=2, compressors=None)
    a[:32] = 5
    archive = zip_store(directory, tmp_path / "raw.zarr.zip", "folder+deflate")
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("raw.zarr/0")
    assert info.compress_size < info.file_size == 64  # the precondition: deflate did shrink the chunk
    record = scan_store(archive).arrays[0]
    row = next(chunk_index_batches("ds", record, "fp", 10)).to_pylist()[0]
    assert (row["storage_key"], row["byte_length"], record.stored_bytes) == ("0", 64, 64)


# --- broken stores: one clear error for that store, nothing else fails -----------------------------------


def broken_stores(root: Path) -> dict[str, tuple[Path, str]]:
    """Stores broken in the ways found upstream → (the file the error must name, words of the message)."""
    out = {}
    store = root / "bad_json_v2.zarr"
    zarr.open_group(store, mode="w", zarr_format=2).create_array("a/b", shape=(2,), chunks=(2,), dtype="u1")
    (store / "a/b/.zarray").write_text('{"zarr_format": 2, "shape": [2], ')
    out[store.name] = (store / "a/b/.zarray", "invalid JSON")

    store = root / "bad_json_v3.ome.zarr"
    write_ngff_image(zarr.open_group(store, mode="w", zarr_format=3), FormatV05(), labels=True)
    (store / "labels/nuclei/s1/zarr.json").write_text('{"zarr_format": 3, "node_type": "array", "shape": [1,]}')
    out[store.name] = (store / "labels/nuclei/s1/zarr.json", "invalid JSON")

    store = root / "draft_v3.zarr"  # written by zarr-python 2.x with ZARR_V3_EXPERIMENTAL_API
    (store / "meta/root/img").mkdir(parents=True)
    entry = {
        "zarr_format": "https://purl.org/zarr/spec/protocol/core/3.0",
        "metadata_encoding": "https://purl.org/zarr/spec/protocol/core/3.0",
        "metadata_key_suffix": ".json",
        "extensions": [],
    }
    (store / "zarr.json").write_text(json.dumps(entry))
    (store / "meta/root.group.json").write_text('{"attributes": {}}')
    (store / "meta/root/img.array.json").write_text('{"shape": [4], "chunk_grid": {"chunk_shape": [2]}}')
    out[store.name] = (store / "zarr.json", "pre-final Zarr v3 draft")

    store = root / "draft_layout_only.zarr"  # the draft layout without its entry point document
    (store / "meta").mkdir(parents=True)
    (store / "meta/root.group.json").write_text('{"attributes": {}}')
    out[store.name] = (store / "meta/root.group.json", "pre-final Zarr v3 draft")

    for zarr_format in (2, 3):
        store = root / f"mismatch_v{zarr_format}.zarr"
        group = zarr.open_group(store, mode="w", zarr_format=zarr_format)
        group.create_array("fine", shape=(4,), chunks=(2,), dtype="u1")
        group.create_array("bad", shape=(4, 4), chunks=(2, 2), dtype="u1")
        doc_path = store / "bad" / (".zarray" if zarr_format == 2 else "zarr.json")
        doc = json.loads(doc_path.read_text())
        if zarr_format == 2:
            doc["chunks"] = [2, 2, 2]
        else:
            doc["chunk_grid"]["configuration"]["chunk_shape"] = [2]
        doc_path.write_text(json.dumps(doc))
        out[store.name] = (doc_path, "match the 2-D shape [4, 4]")
    return out


def test_broken_stores_give_one_line_naming_the_file(tmp_path: Path) -> None:
    for name, (file, words) in broken_stores(tmp_path).items():
        with pytest.raises(StoreError) as info:
            scan_store(tmp_path / name)
        single_line_error(info.value, file)
        assert words in info.value.problem, name


def test_broken_stores_fail_alone(tmp_path: Path) -> None:
    """Scanned together, each broken store fails with its one-line error and every good store ingests."""
    broken = broken_stores(tmp_path)
    good = tmp_path / "good.ome.zarr"
    write_ngff_image(zarr.open_group(good, mode="w", zarr_format=3), FormatV05(), ["x", "y"])
    write_plate(tmp_path / "plate.ome.zarr", FormatV04(), None, ["B/3"])
    outcomes = {o.dataset_id: o for o in (scan_one(s) for s in discover_stores(tmp_path))}
    assert set(outcomes) == {*broken, "good.ome.zarr", "plate.ome.zarr"}
    for name, (file, _) in broken.items():
        assert outcomes[name].status == "failed"
        assert outcomes[name].error.startswith(f"{file}: ") and "\n" not in outcomes[name].error
    for name in ("good.ome.zarr", "plate.ome.zarr"):
        assert outcomes[name].status == "ok", outcomes[name].error
        check_scan(tmp_path / name, outcomes[name].scan)


def test_a_truncated_shard_names_the_shard(tmp_path: Path) -> None:
    store = tmp_path / "cut.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        group.create_array("s", shape=(8,), chunks=(4,), shards=(8,), dtype="u1")[:] = 1
    (store / "s/c/0").write_bytes(b"\x01\x02")
    with pytest.raises(StoreError) as info:
        scan_store(store)
    single_line_error(info.value, store / "s/c/0")


# --- chunk_index in bounded batches ----------------------------------------------------------------------


def test_chunk_index_batches_are_bounded_and_cover_row_ranges(tmp_path: Path) -> None:
    store = tmp_path / "many.zarr"
    a = zarr.create_array(store, shape=(37, 41), chunks=(2, 3), dtype="u1", zarr_format=3)
    fill_some(a)
    record = scan_store(store).arrays[0]
    n = 19 * 14
    whole = pa.Table.from_batches(list(chunk_index_batches("ds", record, "fp", 50)))
    assert whole.num_rows == record.chunk_count == n
    parts = [range(0, 100), range(100, 200), range(200, n)]
    pieces = [pa.Table.from_batches(list(chunk_index_batches("ds", record, "fp", 30, rows))) for rows in parts]
    assert pa.concat_tables(pieces).equals(whole)
    assert [t.num_rows for t in pieces] == [100, 100, n - 200]


def test_an_empty_row_range_yields_no_rows(tmp_path: Path) -> None:
    """``rows`` numbers the chunks wanted (all of them only when None): an empty range wants none. Needs
    chunks.py to test ``rows is None`` rather than the range's truth value in every ``batches``."""
    store = tmp_path / "few.zarr"
    zarr.create_array(store, shape=(6,), chunks=(2,), dtype="u1", zarr_format=2)[:] = 1
    record = scan_store(store).arrays[0]
    assert sum(b.num_rows for b in chunk_index_batches("ds", record, "fp", 10, range(2, 3))) == 1
    assert sum(b.num_rows for b in chunk_index_batches("ds", record, "fp", 10, range(0))) == 0


def iter_rows(record: ArrayRecord) -> Iterator[dict[str, Any]]:
    for batch in chunk_index_batches("ds", record, "fp", 64):
        yield from batch.to_pylist()


def test_chunk_listing_is_one_walk_not_per_chunk_probes(tmp_path: Path) -> None:
    """A grid of 10**8 chunks with 3 stored: enumerating its first rows stays cheap (no probe per chunk)."""
    store = tmp_path / "huge.zarr"
    a = zarr.create_array(store, shape=(10**4, 10**4), chunks=(1, 1), dtype="u1", zarr_format=2)
    for i in range(3):
        a[i, i] = 1
    record = scan_store(store).arrays[0]
    assert (record.chunk_count, record.chunks_stored) == (10**8, 3)
    first = [r for _, r in zip(range(10**4 + 2), iter_rows(record), strict=False)]
    assert [r["stored"] for r in first].count(True) == 2  # (0, 0) and (1, 1) are in the first 10001 rows
    assert first[10**4 + 1]["storage_key"] == "1.1" and first[10**4 + 1]["byte_length"] == os.path.getsize(
        store / "1.1"
    )
