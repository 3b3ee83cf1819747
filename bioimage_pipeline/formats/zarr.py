"""Zarr v2 and v3 hierarchies (directory or zip), with OME-NGFF images, plates, labels and bioformats2raw.

Metadata is read from the JSON documents themselves, never through an array library, so a store with
an unknown codec, an object dtype or a half-written level still yields everything that can be known about
it. OME-NGFF structure is followed through its metadata (plate → well → field, series, labels), not by
listing directories; plain Zarr hierarchies are walked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bioimage_pipeline.chunks import GridChunks, KeyEncoding, ShardedChunks, grid_shape
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats import ngff
from bioimage_pipeline.formats.omexml import OmeMetadata, parse_ome_xml
from bioimage_pipeline.model import ArrayRecord, ChunkSource, StoreScan
from bioimage_pipeline.storage import StoreReader, join_key, read_json

V2_ARRAY, V2_GROUP, V2_ATTRS, V2_CONSOLIDATED = ".zarray", ".zgroup", ".zattrs", ".zmetadata"
V3_META = "zarr.json"

# Codecs whose names we know; anything else is reported as a warning on that array.
_V3_CODECS = frozenset(
    {
        "bytes",
        "transpose",
        "gzip",
        "blosc",
        "zstd",
        "crc32c",
        "sharding_indexed",
        "vlen-utf8",
        "vlen-bytes",
        "packbits",
    }
)
_V2_CODECS = frozenset(
    {
        "blosc",
        "zlib",
        "gzip",
        "bz2",
        "lzma",
        "zstd",
        "lz4",
        "delta",
        "fixedscaleoffset",
        "quantize",
        "packbits",
        "categorize",
        "astype",
        "shuffle",
        "bitround",
        "crc32",
        "crc32c",
        "adler32",
        "fletcher32",
        "jenkins_lookup3",
        "vlen-utf8",
        "vlen-bytes",
        "vlen-array",
        "json2",
        "msgpack2",
        "pickle",
        "pcodec",
        "zfpy",
        "imagecodecs_jpeg2k",
    }
)
_V3_NUMERIC = frozenset(
    {
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
    }
)


@dataclass
class Node:
    path: str
    kind: str  # "array" or "group"
    zarr_format: int
    attrs: dict[str, Any]
    meta: dict[str, Any]


@dataclass
class ArrayMeta:
    """What the array document says, normalised across Zarr v2 and v3."""

    shape: list[int]
    dtype: str
    chunk_shape: list[int] | None
    shard_shape: list[int] | None
    inner_chunk_shape: list[int] | None
    encoding: KeyEncoding
    codecs: list[str]
    order: str
    dimension_names: list[str] | None
    sharding: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)


class Hierarchy:
    """Node metadata of one Zarr store, consolidated metadata used where a document is missing."""

    def __init__(self, store: StoreReader) -> None:
        self.store = store
        root_v3 = read_json(store, V3_META)
        if root_v3 is not None:
            fmt = root_v3.get("zarr_format")
            if fmt != 3:
                raise StoreError(store.uri(V3_META), _draft_message(fmt))
            self.zarr_format = 3
            consolidated = root_v3.get("consolidated_metadata")
            self._consolidated = (consolidated or {}).get("metadata") or {} if isinstance(consolidated, dict) else {}
        elif (
            store.exists(V2_GROUP) or store.exists(V2_ARRAY) or store.exists(V2_ATTRS) or store.exists(V2_CONSOLIDATED)
        ):
            self.zarr_format = 2
            zmeta = read_json(store, V2_CONSOLIDATED)
            self._consolidated = (zmeta or {}).get("metadata") or {}
        elif store.exists("meta/root.group.json") or store.exists("meta/root.array.json"):
            raise StoreError(store.uri(""), _draft_message("the pre-final meta/root.*.json layout"))
        else:
            raise StoreError(store.location, "no Zarr metadata (.zgroup, .zarray or zarr.json) at the store root")

    def _doc(self, key: str) -> dict[str, Any] | None:
        doc = read_json(self.store, key)
        if doc is None and self._consolidated:
            if self.zarr_format == 3:
                path = key[: -len(V3_META)].rstrip("/")
                doc = self._consolidated.get(path)
            else:
                doc = self._consolidated.get(key)
        return doc

    def node(self, path: str) -> Node | None:
        if self.zarr_format == 3:
            meta = self._doc(join_key(path, V3_META))
            if meta is None:
                return None
            if meta.get("zarr_format") != 3:
                raise StoreError(self.store.uri(join_key(path, V3_META)), _draft_message(meta.get("zarr_format")))
            kind = meta.get("node_type")
            if kind not in ("array", "group"):
                raise StoreError(self.store.uri(join_key(path, V3_META)), f"unknown node_type {kind!r}")
            attrs = meta.get("attributes") or {}
            return Node(path, kind, 3, attrs if isinstance(attrs, dict) else {}, meta)
        attrs = self._doc(join_key(path, V2_ATTRS)) or {}
        array = self._doc(join_key(path, V2_ARRAY))
        if array is not None:
            return Node(path, "array", 2, attrs, array)
        group = self._doc(join_key(path, V2_GROUP))
        if group is not None or attrs:
            # A group with attributes but no .zgroup is invalid v2, but common in the wild; read it.
            return Node(path, "group", 2, attrs, group or {})
        return None

    def child_names(self, path: str) -> list[str]:
        names = set(self.store.list_dir(path)[0])
        prefix = f"{path}/" if path else ""
        for key in self._consolidated:
            if key.startswith(prefix):
                rest = key[len(prefix) :].split("/")
                if len(rest) > 1 or (self.zarr_format == 3 and rest[0]):
                    names.add(rest[0])
        return sorted(n for n in names if n and not n.startswith("."))


def _draft_message(fmt: Any) -> str:
    return (
        f"pre-final Zarr v3 draft metadata (zarr_format {fmt!r}); only the final Zarr v3 specification is "
        "supported: re-save the store with zarr-python 3"
    )


# --- array documents ---------------------------------------------------------------------------------


def _v2_dtype(raw: Any, filters: list[str]) -> tuple[str, str | None]:
    if isinstance(raw, list):
        return "structured", None
    try:
        dt = np.dtype(raw)
    except TypeError as exc:
        return str(raw), f"unknown dtype {raw!r} ({exc})"
    if dt.kind == "O":
        if "vlen-utf8" in filters:
            return "string", None
        if "vlen-bytes" in filters:
            return "bytes", None
        return "object", "object dtype: values are Python objects, not a portable array type"
    if dt.kind in "US":
        return dt.str.lstrip("<>|="), None
    if dt.kind == "V":
        return f"V{dt.itemsize}", None
    return dt.name, None


def _v3_dtype(raw: Any) -> tuple[str, str | None]:
    if isinstance(raw, str):
        if raw in _V3_NUMERIC or raw in ("string", "bytes"):
            return raw, None
        if raw.startswith("r") and raw[1:].isdigit():
            return raw, None
        return raw, f"unknown data_type {raw!r}"
    if isinstance(raw, dict):
        name, conf = raw.get("name"), raw.get("configuration") or {}
        if name in ("numpy.datetime64", "numpy.timedelta64"):
            return f"{name.split('.')[1]}[{conf.get('unit', 'ns')}]", None
        if name == "fixed_length_utf32":
            return f"U{int(conf.get('length_bytes', 0)) // 4}", None
        if name in ("null_terminated_bytes", "fixed_length_bytes"):
            return f"S{int(conf.get('length_bytes', 0))}", None
        if name == "structured":
            return "structured", None
        return str(name), f"unknown data_type {name!r}"
    return str(raw), f"unknown data_type {raw!r}"


def _v2_codec_name(conf: Any) -> str:
    if not isinstance(conf, dict):
        return str(conf)
    cid = str(conf.get("id"))
    if cid == "blosc" and conf.get("cname"):
        return f"blosc/{conf['cname']}"
    return cid


def _v3_codec_names(codecs: list[Any]) -> list[str]:
    names = []
    for c in codecs:
        name = c.get("name") if isinstance(c, dict) else c
        conf = c.get("configuration") or {} if isinstance(c, dict) else {}
        if name == "blosc" and conf.get("cname"):
            names.append(f"blosc/{conf['cname']}")
        else:
            names.append(str(name))
    return names


def _ints(value: Any, what: str, where: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise StoreError(where, f"{what} is not a list of integers: {value!r}")
    return list(value)


def parse_array(node: Node, where: str) -> ArrayMeta:
    """Normalise a v2 ``.zarray`` or v3 ``zarr.json`` array document. Raises StoreError when malformed."""
    m = node.meta
    warnings: list[str] = []
    if node.zarr_format == 2:
        shape = _ints(m.get("shape"), "shape", where)
        chunks = _ints(m.get("chunks"), "chunks", where)
        if len(chunks) != len(shape):
            raise StoreError(where, f"chunks {chunks} do not match the {len(shape)}-D shape {shape}")
        filters = [_v2_codec_name(f) for f in (m.get("filters") or [])]
        dtype, warn = _v2_dtype(m.get("dtype"), filters)
        if warn:
            warnings.append(warn)
        compressor = [_v2_codec_name(m["compressor"])] if m.get("compressor") else []
        codecs = filters + compressor
        for name in codecs:
            if name.split("/")[0] not in _V2_CODECS:
                warnings.append(f"unknown codec {name!r}")
        sep = m.get("dimension_separator") or "."
        if sep not in (".", "/"):
            raise StoreError(where, f"dimension_separator {sep!r} is neither '.' nor '/'")
        order = str(m.get("order", "C"))
        names = node.attrs.get("_ARRAY_DIMENSIONS")
        return ArrayMeta(
            shape,
            dtype,
            chunks,
            None,
            None,
            KeyEncoding(node.path, sep),
            codecs,
            order,
            [str(n) for n in names] if isinstance(names, list) else None,
            None,
            warnings,
        )

    shape = _ints(m.get("shape"), "shape", where)
    grid = m.get("chunk_grid") or {}
    if not isinstance(grid, dict) or grid.get("name") != "regular":
        raise StoreError(where, f"unsupported chunk_grid {grid.get('name') if isinstance(grid, dict) else grid!r}")
    chunks = _ints((grid.get("configuration") or {}).get("chunk_shape"), "chunk_grid chunk_shape", where)
    if len(chunks) != len(shape):
        raise StoreError(where, f"chunk_shape {chunks} does not match the {len(shape)}-D shape {shape}")
    dtype, warn = _v3_dtype(m.get("data_type"))
    if warn:
        warnings.append(warn)
    cke = m.get("chunk_key_encoding") or {"name": "default"}
    cke_name = cke.get("name") if isinstance(cke, dict) else None
    sep = ((cke.get("configuration") or {}) if isinstance(cke, dict) else {}).get("separator")
    if cke_name == "default":
        encoding = KeyEncoding(node.path, sep or "/", chunk_prefix="c")
    elif cke_name == "v2":
        encoding = KeyEncoding(node.path, sep or ".")
    else:
        raise StoreError(where, f"unknown chunk_key_encoding {cke_name!r}")
    if encoding.separator not in (".", "/"):
        raise StoreError(where, f"chunk key separator {encoding.separator!r} is neither '.' nor '/'")
    raw_codecs = m.get("codecs") or []
    if not isinstance(raw_codecs, list):
        raise StoreError(where, "codecs is not a list")
    codecs = _v3_codec_names(raw_codecs)
    sharding = None
    shard_shape = inner = None
    if raw_codecs and isinstance(raw_codecs[0], dict) and raw_codecs[0].get("name") == "sharding_indexed":
        sharding = raw_codecs[0].get("configuration") or {}
        inner = _ints(sharding.get("chunk_shape"), "sharding chunk_shape", where)
        if len(inner) != len(shape) or any(c % i for c, i in zip(chunks, inner, strict=True)):
            raise StoreError(where, f"inner chunk_shape {inner} does not divide the shard shape {chunks}")
        shard_shape = chunks
        codecs = [
            "sharding_indexed",
            *_v3_codec_names(sharding.get("codecs") or []),
            *(f"index:{n}" for n in _v3_codec_names(sharding.get("index_codecs") or [])),
        ]
    for name in codecs:
        base = name.split(":", 1)[-1].split("/")[0]
        if base not in _V3_CODECS and not base.startswith("numcodecs."):
            warnings.append(f"unknown codec {base!r}")
    if m.get("storage_transformers"):
        warnings.append("storage_transformers are not supported: chunk keys may not be the storage keys")
    names = m.get("dimension_names")
    return ArrayMeta(
        shape,
        dtype,
        inner or chunks,
        shard_shape,
        inner,
        encoding,
        codecs,
        "C",
        [str(n) if n is not None else "" for n in names] if isinstance(names, list) else None,
        sharding,
        warnings,
    )


def chunk_source(store: StoreReader, meta: ArrayMeta, where: str, warnings: list[str]) -> ChunkSource:
    """List the array's stored chunks once and describe its grid."""
    if meta.sharding is None or meta.shard_shape is None or meta.inner_chunk_shape is None:
        assert meta.chunk_shape is not None
        return GridChunks.from_store(store, meta.shape, meta.chunk_shape, meta.encoding)
    shards = GridChunks.from_store(store, meta.shape, meta.shard_shape, meta.encoding)
    per_shard = math.prod(s // i for s, i in zip(meta.shard_shape, meta.inner_chunk_shape, strict=True))
    reader = _shard_index_reader(meta.sharding, per_shard)
    if reader is None:
        warnings.append(f"{where}: shard index codecs not supported; chunk_index lists whole shards")
        return shards
    index = np.empty((shards.stored_count, per_shard, 2), np.uint64)
    grid = grid_shape(meta.shape, meta.shard_shape)
    for row, linear in enumerate(shards.stored_linear):
        coords = np.unravel_index(int(linear), grid) if grid else ()
        key = meta.encoding.key([int(c) for c in coords])
        index[row] = reader(store, key)
    return ShardedChunks(
        tuple(meta.shape),
        tuple(meta.shard_shape),
        tuple(meta.inner_chunk_shape),
        meta.encoding,
        shards.stored_linear,
        shards.stored_sizes,
        index,
    )


def _shard_index_reader(conf: dict[str, Any], n_inner: int):
    codecs = conf.get("index_codecs") or [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "crc32c"},
    ]
    names = [c.get("name") if isinstance(c, dict) else c for c in codecs]
    if not names or names[0] != "bytes" or any(n != "crc32c" for n in names[1:]):
        return None
    endian = ((codecs[0].get("configuration") or {}) if isinstance(codecs[0], dict) else {}).get("endian", "little")
    dtype = np.dtype("<u8" if endian == "little" else ">u8")
    size = n_inner * 16 + 4 * (len(names) - 1)
    at_start = conf.get("index_location", "end") == "start"

    def read(store: StoreReader, key: str) -> np.ndarray:
        raw = store.read_range(key, 0 if at_start else -size, size)
        if len(raw) != size:
            raise StoreError(store.uri(key), f"shard is shorter than its {size}-byte index")
        return np.frombuffer(raw[: n_inner * 16], dtype).astype(np.uint64).reshape(n_inner, 2)

    return read


# --- the scan ----------------------------------------------------------------------------------------


@dataclass
class _Image:
    image_id: str
    group: str
    multiscale: ngff.Multiscale
    kind: str = "image"
    channel_names: list[str] | None = None
    plate_id: str | None = None
    well_id: str | None = None
    site_id: str | None = None


class _ZarrScan:
    def __init__(self, store: StoreReader, dataset_id: str, display_name: str) -> None:
        self.store = store
        self.h = Hierarchy(store)
        self.variant = f"zarr-v{self.h.zarr_format}"
        self.dataset_id = dataset_id
        self.display_name = display_name
        self.warnings: list[str] = []
        self.arrays: list[ArrayRecord] = []
        self.ome: OmeMetadata | None = None
        self.ngff = False

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path or '/'}: {message}")

    def where(self, path: str) -> str:
        return self.store.uri(path)

    def run(self) -> StoreScan:
        root = self.h.node("")
        if root is None:
            raise StoreError(self.store.location, "no Zarr metadata at the store root")
        if root.kind == "array":
            self.add_plain_array(root)
        else:
            self.visit_group(root, depth=0)
        if not self.arrays:
            raise StoreError(
                self.store.location,
                "no readable arrays" + (f" ({self.warnings[0]})" if self.warnings else ""),
            )
        return StoreScan(
            self.dataset_id,
            self.store.location,
            "ome-zarr" if self.ngff else "zarr",
            self.arrays,
            self.warnings,
        )

    # groups

    def visit_group(self, node: Node, depth: int) -> None:
        attrs = node.attrs
        try:
            plate = ngff.parse_plate(attrs)
            multiscales = ngff.parse_multiscales(attrs)
            layout = ngff.bioformats2raw_layout(attrs)
        except ValueError as exc:
            raise StoreError(
                self.where(join_key(node.path, V3_META if node.zarr_format == 3 else V2_ATTRS)),
                f"invalid OME-NGFF metadata: {exc}",
            ) from exc
        if plate is not None:
            self.ngff = True
            self.visit_plate(node.path, plate)
        elif layout is not None and not multiscales:
            self.ngff = True
            self.visit_bioformats2raw(node)
        elif multiscales:
            self.ngff = True
            self.visit_image_group(node, multiscales, image_id=node.path or "/")
        else:
            self.visit_plain_children(node.path, depth)

    def visit_plain_children(self, path: str, depth: int) -> None:
        if depth > 32:
            self.warn(path, "hierarchy deeper than 32 levels; not descended further")
            return
        for name in self.h.child_names(path):
            child_path = join_key(path, name)
            child = self.h.node(child_path)
            if child is None:
                # An implicit group (no metadata document): descend, arrays below it still count.
                if self.store.is_dir(child_path):
                    self.visit_plain_children(child_path, depth + 1)
                continue
            if child.kind == "array":
                self.add_plain_array(child)
            else:
                self.visit_group(child, depth + 1)

    def visit_plate(self, path: str, plate: ngff.Plate) -> None:
        plate_id = plate.name or self.display_name
        for well_ref in plate.wells:
            well_path = join_key(path, well_ref.path)
            well_node = self.h.node(well_path)
            if well_node is None:
                self.warn(well_path, "well listed in the plate metadata has no group")
                continue
            try:
                well = ngff.parse_well(well_node.attrs)
            except ValueError as exc:
                self.warn(well_path, f"invalid well metadata: {exc}")
                continue
            if well is None:
                self.warn(well_path, "group has no 'well' metadata")
                continue
            wid = ngff.well_id(well_ref.row, well_ref.column)
            for field_path in well.image_paths:
                image_path = join_key(well_path, field_path)
                node = self.h.node(image_path)
                if node is None:
                    self.warn(image_path, "field listed in the well metadata has no group")
                    continue
                try:
                    multiscales = ngff.parse_multiscales(node.attrs)
                except ValueError as exc:
                    self.warn(image_path, f"invalid multiscales metadata: {exc}")
                    continue
                if not multiscales:
                    self.warn(image_path, "field group has no multiscales metadata")
                    continue
                self.visit_image_group(
                    node, multiscales, image_id=image_path, plate_id=plate_id, well_id=wid, site_id=field_path
                )

    def visit_bioformats2raw(self, node: Node) -> None:
        ome_group = self.h.node(join_key(node.path, "OME"))
        series = ngff.series_paths(ome_group.attrs if ome_group else None)
        xml = self.store.read(join_key(node.path, "OME/METADATA.ome.xml"))
        if xml is not None:
            try:
                self.ome = parse_ome_xml(xml)
            except ValueError as exc:
                self.warn(join_key(node.path, "OME/METADATA.ome.xml"), str(exc))
        if series is None:
            # Without an explicit list, series are the groups 0, 1, 2, ... up to the first gap.
            series, index = [], 0
            while self.h.node(join_key(node.path, str(index))) is not None:
                series.append(str(index))
                index += 1
        for index, name in enumerate(series):
            path = join_key(node.path, name)
            child = self.h.node(path)
            if child is None:
                self.warn(path, "series listed by bioformats2raw has no group")
                continue
            try:
                multiscales = ngff.parse_multiscales(child.attrs)
            except ValueError as exc:
                self.warn(path, f"invalid multiscales metadata: {exc}")
                continue
            if not multiscales:
                self.warn(path, "series group has no multiscales metadata")
                continue
            sample = self.ome.well_samples.get(index) if self.ome else None
            self.visit_image_group(
                child,
                multiscales,
                image_id=path,
                series_index=index,
                plate_id=sample.plate_id if sample else None,
                well_id=sample.well_id if sample else None,
                site_id=sample.site_id if sample else None,
            )

    def visit_image_group(
        self,
        node: Node,
        multiscales: list[ngff.Multiscale],
        image_id: str,
        series_index: int | None = None,
        plate_id: str | None = None,
        well_id: str | None = None,
        site_id: str | None = None,
        kind: str | None = None,
    ) -> None:
        names = ngff.channel_names(node.attrs)
        if names is None and self.ome is not None and series_index is not None and series_index < len(self.ome.images):
            names = self.ome.images[series_index].channel_names or None
        if kind is None:
            kind = "label" if ngff.is_label_image(node.attrs) else "image"
        for k, ms in enumerate(multiscales):
            iid = image_id if k == 0 else f"{image_id}#{k}"
            image = _Image(iid, node.path, ms, kind, names, plate_id, well_id, site_id)
            self.add_multiscale(image)
        known = {ds.path.split("/")[0] for ms in multiscales for ds in ms.datasets}
        for name in self.h.child_names(node.path):
            if name in known:
                continue
            if name == "labels":
                self.visit_labels(join_key(node.path, "labels"), image_id, plate_id, well_id, site_id)
            elif name != "OME":
                self.warn(join_key(node.path, name), "skipped: not image data referenced by the OME-NGFF metadata")

    def visit_labels(
        self, path: str, image_id: str, plate_id: str | None, well_id: str | None, site_id: str | None
    ) -> None:
        node = self.h.node(path)
        if node is None:
            return
        for name in ngff.label_names(node.attrs):
            label_path = join_key(path, name)
            label = self.h.node(label_path)
            if label is None:
                self.warn(label_path, "label listed in labels metadata has no group")
                continue
            try:
                multiscales = ngff.parse_multiscales(label.attrs)
            except ValueError as exc:
                self.warn(label_path, f"invalid multiscales metadata: {exc}")
                continue
            if not multiscales:
                self.warn(label_path, "label group has no multiscales metadata")
                continue
            label_id = f"{image_id.rstrip('/')}/labels/{name}" if image_id != "/" else f"labels/{name}"
            self.visit_image_group(
                label,
                multiscales,
                image_id=label_id,
                plate_id=plate_id,
                well_id=well_id,
                site_id=site_id,
                kind="label",
            )

    # arrays

    def add_multiscale(self, image: _Image) -> None:
        ms = image.multiscale
        axes = [a.name for a in ms.axes]
        for level, ds in enumerate(ms.datasets):
            path = join_key(image.group, ds.path)
            node = self.h.node(path)
            if node is None or node.kind != "array":
                self.warn(path, f"level {level} of image {image.image_id} has no array metadata")
                continue
            record = self.array_record(node, image.image_id, level)
            if record is None:
                continue
            if len(axes) != len(record.shape):
                self.warn(
                    path,
                    f"{len(axes)} axes in the multiscales metadata but the array is {len(record.shape)}-D",
                )
            elif record.axes and [a.lower() for a in record.axes] != [a.lower() for a in axes]:
                self.warn(path, f"dimension_names {record.axes} differ from the OME-NGFF axes {axes}")
            record.axes = axes
            record.axis_types = [a.type for a in ms.axes]
            record.axis_units = [a.unit for a in ms.axes]
            record.scale, record.translation = ds.scale, ds.translation
            record.ngff_version = ms.version
            record.kind = image.kind
            record.channel_names = image.channel_names
            record.plate_id, record.well_id, record.site_id = image.plate_id, image.well_id, image.site_id
            self.arrays.append(record)

    def add_plain_array(self, node: Node) -> None:
        record = self.array_record(node, node.path or "/", 0)
        if record is not None:
            self.arrays.append(record)

    def array_record(self, node: Node, image_id: str, level: int) -> ArrayRecord | None:
        doc = join_key(node.path, V3_META if node.zarr_format == 3 else V2_ARRAY)
        meta = parse_array(node, self.where(doc))
        for w in meta.warnings:
            self.warn(node.path, w)
        chunks = chunk_source(self.store, meta, node.path or "/", self.warnings)
        return ArrayRecord(
            image_id=image_id,
            array_path=node.path or "/",
            level=level,
            uri=self.store.uri(node.path),
            storage_variant=self.variant,
            shape=meta.shape,
            dtype=meta.dtype,
            chunk_shape=meta.chunk_shape,
            shard_shape=meta.shard_shape,
            axes=meta.dimension_names,
            codecs=meta.codecs,
            chunk_key_encoding=meta.encoding.description,
            order=meta.order,
            chunks=chunks,
        )


def scan_zarr(store: StoreReader, dataset_id: str, display_name: str) -> StoreScan:
    """Scan a Zarr v2/v3 store (plain or OME-NGFF). ``display_name`` names a plate that has no name."""
    return _ZarrScan(store, dataset_id, display_name).run()
