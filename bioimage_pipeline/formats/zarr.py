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

from bioimage_pipeline.chunks import GridChunks, KeyEncoding, ShardedChunks, check_extent, grid_shape
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats import ngff
from bioimage_pipeline.formats.omexml import OmeMetadata, parse_ome_xml
from bioimage_pipeline.model import ArrayRecord, ChunkSource, StoreScan
from bioimage_pipeline.storage import StoreReader, join_key, read_json
from bioimage_pipeline.wells import well_id

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
                raise StoreError(store.uri(V3_META), _format_message(fmt))
            self.zarr_format = 3
            consolidated = root_v3.get("consolidated_metadata")
            metadata = consolidated.get("metadata") if isinstance(consolidated, dict) else None
            where = V3_META
        elif (
            store.exists(V2_GROUP) or store.exists(V2_ARRAY) or store.exists(V2_ATTRS) or store.exists(V2_CONSOLIDATED)
        ):
            self.zarr_format = 2
            zmeta = read_json(store, V2_CONSOLIDATED)
            metadata = zmeta.get("metadata") if zmeta is not None else None
            where = V2_CONSOLIDATED
        else:
            for draft in ("meta/root.group.json", "meta/root.array.json"):
                if store.exists(draft):
                    raise StoreError(store.uri(draft), _draft_message("the pre-final meta/root.*.json layout"))
            raise StoreError(store.location, "no Zarr metadata (.zgroup, .zarray or zarr.json) at the store root")
        if metadata is not None and (
            not isinstance(metadata, dict) or not all(isinstance(v, dict) for v in metadata.values())
        ):
            raise StoreError(store.uri(where), "consolidated metadata is not an object of metadata documents")
        self._consolidated: dict[str, dict[str, Any]] = metadata or {}

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
                raise StoreError(self.store.uri(join_key(path, V3_META)), _format_message(meta.get("zarr_format")))
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


def _format_message(fmt: Any) -> str:
    """Why a ``zarr.json`` whose ``zarr_format`` is not 3 cannot be read."""
    if isinstance(fmt, str) and "zarr/spec/protocol" in fmt:
        return _draft_message(fmt)
    return f"zarr.json declares zarr_format {fmt!r}; a zarr.json document must declare zarr_format 3"


# --- array documents ---------------------------------------------------------------------------------


def _v2_dtype(raw: Any, filters: list[str]) -> tuple[str, str | None]:
    if isinstance(raw, list):
        return "structured", None
    if not isinstance(raw, str):
        return str(raw), f"unknown dtype {raw!r}"
    try:
        dt = np.dtype(raw)
    except (TypeError, ValueError) as exc:
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


#: Names Zarr v3 data types go by (zarr-python 3 and the zarr-extensions registry) → our dtype names.
_V3_ALIASES = {
    "string": "string",
    "variable_length_utf8": "string",
    "bytes": "bytes",
    "variable_length_bytes": "bytes",
}


def _v3_dtype(raw: Any) -> tuple[str, str | None]:
    if isinstance(raw, str):
        if raw in _V3_NUMERIC:
            return raw, None
        if raw in _V3_ALIASES:
            return _V3_ALIASES[raw], None
        if raw.startswith("r") and raw[1:].isdigit() and int(raw[1:]) % 8 == 0:
            return f"V{int(raw[1:]) // 8}", None  # raw bits (Zarr v3 core): opaque bytes like numpy's void
        return raw, f"unknown data_type {raw!r}"
    if isinstance(raw, dict):
        name, conf = raw.get("name"), raw.get("configuration") or {}
        if not isinstance(conf, dict):
            return str(name), f"data_type {name!r} has a configuration that is not an object"
        size = conf.get("length_bytes")
        if name in ("numpy.datetime64", "numpy.timedelta64"):
            kind, unit, factor = name.split(".")[1], conf.get("unit"), conf.get("scale_factor", 1)
            if unit is None:
                return kind, None
            return f"{kind}[{'' if factor in (1, None) else factor}{unit}]", None
        if name in ("fixed_length_utf32", "null_terminated_bytes", "fixed_length_bytes", "raw_bytes"):
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                return str(name), f"data_type {name!r} has no valid length_bytes: {size!r}"
            if name == "fixed_length_utf32":
                return f"U{size // 4}", None
            return (f"V{size}" if name == "raw_bytes" else f"S{size}"), None
        if name == "structured":
            return "structured", None
        if name in _V3_ALIASES:
            return _V3_ALIASES[name], None
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


def _ints(value: Any, what: str, where: str, minimum: int = 0) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value
    ):
        kind = "positive" if minimum > 0 else "non-negative"
        raise StoreError(where, f"{what} is not a list of {kind} integers: {value!r}")
    return list(value)


def parse_array(node: Node, where: str) -> ArrayMeta:
    """Normalise a v2 ``.zarray`` or v3 ``zarr.json`` array document. Raises StoreError when malformed."""
    m = node.meta
    warnings: list[str] = []
    if node.zarr_format == 2:
        shape = _ints(m.get("shape"), "shape", where)
        check_extent(shape, where)
        chunks = _ints(m.get("chunks"), "chunks", where, minimum=1)
        if len(chunks) != len(shape):
            raise StoreError(where, f"chunks {chunks} do not match the {len(shape)}-D shape {shape}")
        if "dtype" not in m:
            raise StoreError(where, "the array document has no dtype")
        if not isinstance(m.get("filters") or [], list):
            raise StoreError(where, f"filters is not a list: {m.get('filters')!r}")
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
        order = m.get("order", "C")
        if order not in ("C", "F"):
            raise StoreError(where, f"order {order!r} is neither 'C' nor 'F'")
        if sep not in (".", "/"):
            raise StoreError(where, f"dimension_separator {sep!r} is neither '.' nor '/'")
        names = node.attrs.get("_ARRAY_DIMENSIONS")
        if isinstance(names, list) and len(names) != len(shape):
            warnings.append(f"{len(names)} _ARRAY_DIMENSIONS for a {len(shape)}-D array; ignored")
            names = None
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
    check_extent(shape, where)
    grid = m.get("chunk_grid") or {}
    if not isinstance(grid, dict) or grid.get("name") != "regular":
        raise StoreError(where, f"unsupported chunk_grid {grid.get('name') if isinstance(grid, dict) else grid!r}")
    chunks = _ints((grid.get("configuration") or {}).get("chunk_shape"), "chunk_grid chunk_shape", where, minimum=1)
    if len(chunks) != len(shape):
        raise StoreError(where, f"chunk_shape {chunks} does not match the {len(shape)}-D shape {shape}")
    if "data_type" not in m:
        raise StoreError(where, "the array document has no data_type")
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
    shard_at = next(
        (i for i, c in enumerate(raw_codecs) if isinstance(c, dict) and c.get("name") == "sharding_indexed"), None
    )
    if shard_at is not None:
        conf = raw_codecs[shard_at].get("configuration") or {}
        if not isinstance(conf, dict):
            raise StoreError(where, "the sharding_indexed configuration is not an object")
        inner = _ints(conf.get("chunk_shape"), "sharding chunk_shape", where, minimum=1)
        if len(inner) != len(shape) or any(c % i for c, i in zip(chunks, inner, strict=True)):
            raise StoreError(where, f"inner chunk_shape {inner} does not divide the shard shape {chunks}")
        for key in ("codecs", "index_codecs"):
            if not isinstance(conf.get(key) or [], list):
                raise StoreError(where, f"sharding {key} is not a list")
        shard_shape = chunks
        codecs = [
            *codecs[:shard_at],
            "sharding_indexed",
            *_v3_codec_names(conf.get("codecs") or []),
            *(f"index:{n}" for n in _v3_codec_names(conf.get("index_codecs") or [])),
            *codecs[shard_at + 1 :],
        ]
        if shard_at == 0 and shard_at == len(raw_codecs) - 1:
            sharding = conf
        else:
            # Array-to-array codecs (transpose) before the shard codec reorder its inner chunk grid; bytes-to-bytes
            # codecs after it encode whole shards, so the index cannot be read without decoding the pixels.
            others = [n for i, n in enumerate(_v3_codec_names(raw_codecs)) if i != shard_at]
            warnings.append(
                f"sharding_indexed combined with {', '.join(others)}: inner chunks cannot be located from the "
                "shard index; chunk_index lists whole shards"
            )
            inner = None
    for name in codecs:
        base = name.split(":", 1)[-1].split("/")[0]
        if base not in _V3_CODECS and not base.startswith("numcodecs."):
            warnings.append(f"unknown codec {base!r}")
    if m.get("storage_transformers"):
        warnings.append("storage_transformers are not supported: chunk keys may not be the storage keys")
    names = m.get("dimension_names")
    if isinstance(names, list) and len(names) != len(shape):
        warnings.append(f"{len(names)} dimension_names for a {len(shape)}-D array; ignored")
        names = None
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
        index = np.frombuffer(raw[: n_inner * 16], dtype).astype(np.uint64).reshape(n_inner, 2)
        empty = index == _EMPTY
        if (empty[:, 0] != empty[:, 1]).any():
            raise StoreError(store.uri(key), "corrupt shard index: an entry has only one of offset and length unset")
        return index

    return read


#: Offset and length of an inner chunk that is not in its shard.
_EMPTY = np.uint64(2**64 - 1)


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
        #: (URI of the document at fault, message) for everything that lost an image or a level; the first
        #: one becomes the store's error when nothing at all could be read.
        self.problems: list[tuple[str, str]] = []
        self.arrays: list[ArrayRecord] = []
        self.ome: OmeMetadata | None = None
        self.ngff = False

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path or '/'}: {message}")

    def problem(self, document: str, path: str, message: str) -> None:
        """A warning about data that could not be read, blamed on ``document`` (a key in the store)."""
        self.warn(path, message)
        self.problems.append((self.store.uri(document), message))

    def where(self, path: str) -> str:
        return self.store.uri(path)

    def attrs_doc(self, path: str) -> str:
        """The document holding a group's attributes (where its OME-NGFF metadata is or should be)."""
        return join_key(path, V3_META if self.h.zarr_format == 3 else V2_ATTRS)

    def array_doc(self, path: str) -> str:
        return join_key(path, V3_META if self.h.zarr_format == 3 else V2_ARRAY)

    def run(self) -> StoreScan:
        root = self.h.node("")
        if root is None:
            raise StoreError(self.store.location, "no Zarr metadata at the store root")
        if root.kind == "array":
            self.add_plain_array(root)
        else:
            self.visit_group(root, depth=0)
        if not self.arrays:
            if self.problems:
                uri, message = self.problems[0]
                more = len(self.problems) - 1
                suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
                raise StoreError(uri, f"no readable arrays: {message}{suffix}")
            raise StoreError(self.where(self.root_doc()), f"no arrays in this Zarr hierarchy: {self.describe(root)}")
        return StoreScan(
            self.dataset_id,
            self.store.location,
            "ome-zarr" if self.ngff else "zarr",
            self.arrays,
            self.warnings,
        )

    def root_doc(self) -> str:
        if self.h.zarr_format == 3:
            return V3_META
        return next((d for d in (V2_ATTRS, V2_GROUP, V2_CONSOLIDATED) if self.store.exists(d)), V2_GROUP)

    def describe(self, root: Node) -> str:
        """Why a hierarchy without problems still has no arrays: what its root group declares."""
        meta, _ = ngff.ngff_attrs(root.attrs)
        declared = [k for k in ("image-label", "labels", "omero", "well", "series") if k in meta]
        if declared:
            return (
                f"the root group has OME-NGFF {', '.join(declared)} metadata but no multiscales, plate, well or "
                "bioformats2raw series to follow, and no group below it holds an array"
            )
        return "the root group has no OME-NGFF metadata and no group below it holds an array"

    # groups

    def visit_group(self, node: Node, depth: int) -> None:
        attrs = node.attrs
        try:
            plate = ngff.parse_plate(attrs)
            multiscales = ngff.parse_multiscales(attrs) if plate is None else []
            layout = ngff.bioformats2raw_layout(attrs)
            well = ngff.parse_well(attrs) if plate is None and not multiscales else None
        except ValueError as exc:
            if depth == 0:
                raise StoreError(self.where(self.attrs_doc(node.path)), f"invalid OME-NGFF metadata: {exc}") from exc
            self.problem(self.attrs_doc(node.path), node.path, f"invalid OME-NGFF metadata, group skipped: {exc}")
            return
        if plate is not None:
            self.ngff = True
            self.visit_plate(node.path, plate)
        elif layout is not None and not multiscales:
            self.ngff = True
            self.visit_bioformats2raw(node)
        elif multiscales:
            self.ngff = True
            self.visit_image_group(node, multiscales, image_id=node.path or "/")
        elif well is not None:
            # A well on its own (not reached from a plate): its fields, without a plate or well name.
            self.ngff = True
            self.visit_well(node.path, well)
        else:
            if ngff.ngff_attrs(attrs)[0].get("multiscales") == []:
                self.problem(self.attrs_doc(node.path), node.path, "'multiscales' is an empty list: no image")
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
        if not plate.wells:
            self.problem(self.attrs_doc(path), path, "the plate lists no wells")
        for well_ref in plate.wells:
            # Wells are found through the plate's paths, never by listing: row groups often lack metadata.
            well_path = join_key(path, well_ref.path)
            well_node = self.h.node(well_path)
            if well_node is None:
                self.problem(self.attrs_doc(well_path), well_path, "well listed in the plate metadata has no group")
                continue
            try:
                well = ngff.parse_well(well_node.attrs)
            except ValueError as exc:
                self.problem(self.attrs_doc(well_path), well_path, f"invalid well metadata: {exc}")
                continue
            if well is None:
                self.problem(self.attrs_doc(well_path), well_path, "group has no 'well' metadata")
                continue
            self.visit_well(well_path, well, plate_id, well_id(well_ref.row, well_ref.column))

    def visit_well(
        self, well_path: str, well: ngff.Well, plate_id: str | None = None, well_id: str | None = None
    ) -> None:
        if not well.image_paths:
            self.problem(self.attrs_doc(well_path), well_path, "the well lists no images")
        for field_path in well.image_paths:
            image_path = join_key(well_path, field_path)
            node = self.h.node(image_path)
            if node is None:
                self.problem(self.attrs_doc(image_path), image_path, "field listed in the well metadata has no group")
                continue
            try:
                multiscales = ngff.parse_multiscales(node.attrs)
            except ValueError as exc:
                self.problem(self.attrs_doc(image_path), image_path, f"invalid multiscales metadata: {exc}")
                continue
            if not multiscales:
                self.problem(self.attrs_doc(image_path), image_path, "field group has no multiscales metadata")
                continue
            self.visit_image_group(
                node, multiscales, image_id=image_path, plate_id=plate_id, well_id=well_id, site_id=field_path
            )

    def visit_bioformats2raw(self, node: Node) -> None:
        ome_group = self.h.node(join_key(node.path, "OME"))
        series = ngff.series_paths(ome_group.attrs if ome_group else None)
        xml_key = join_key(node.path, "OME/METADATA.ome.xml")
        xml = self.store.read(xml_key)
        if xml is not None:
            try:
                self.ome = parse_ome_xml(xml)
            except ValueError as exc:
                self.warn(xml_key, str(exc))
        if series is None:
            # Without an explicit list, series are the groups 0, 1, 2, ... up to the first gap.
            series, index = [], 0
            while self.h.node(join_key(node.path, str(index))) is not None:
                series.append(str(index))
                index += 1
            if not series:
                self.problem(self.attrs_doc(join_key(node.path, "0")), node.path, "no bioformats2raw series group 0")
        for index, name in enumerate(series):
            path = join_key(node.path, name)
            child = self.h.node(path)
            if child is None:
                self.problem(self.attrs_doc(path), path, "series listed by bioformats2raw has no group")
                continue
            try:
                multiscales = ngff.parse_multiscales(child.attrs)
            except ValueError as exc:
                self.problem(self.attrs_doc(path), path, f"invalid multiscales metadata: {exc}")
                continue
            if not multiscales:
                self.problem(self.attrs_doc(path), path, "series group has no multiscales metadata")
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
                self.problem(self.attrs_doc(label_path), label_path, "label listed in labels metadata has no group")
                continue
            try:
                multiscales = ngff.parse_multiscales(label.attrs)
            except ValueError as exc:
                self.problem(self.attrs_doc(label_path), label_path, f"invalid multiscales metadata: {exc}")
                continue
            if not multiscales:
                self.problem(self.attrs_doc(label_path), label_path, "label group has no multiscales metadata")
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
        for level, ds in enumerate(ms.datasets):
            path = join_key(image.group, ds.path)
            node = self.h.node(path)
            if node is None or node.kind != "array":
                self.problem(
                    self.array_doc(path), path, f"level {level} of image {image.image_id} has no array metadata"
                )
                continue
            record = self.array_record(node, image.image_id, level)
            self.apply_ngff(record, path, ms, ds)
            record.ngff_version = ms.version
            record.kind = image.kind
            record.channel_names = image.channel_names
            record.plate_id, record.well_id, record.site_id = image.plate_id, image.well_id, image.site_id
            self.arrays.append(record)

    def apply_ngff(self, record: ArrayRecord, path: str, ms: ngff.Multiscale, ds: ngff.Dataset) -> None:
        """The multiscale's axes and the level's transforms, where they fit the array's dimensions."""
        ndim = len(record.shape)
        axes = ms.axes
        if not ms.axes_declared and axes and len(axes) != ndim and 0 < ndim < len(axes):
            # NGFF 0.1/0.2 arrays are always t, c, z, y, x; a writer that dropped leading dimensions means the
            # last ones (how ome-zarr-py reads such arrays).
            axes = axes[-ndim:]
            read_as = ", ".join(a.name for a in axes)
            self.warn(path, f"OME-NGFF {ms.version or '0.1'} arrays are 5-D, this one is {ndim}-D: read as {read_as}")
        if not axes:
            self.warn(path, "the multiscales metadata declares no axes")
        elif len(axes) != ndim:
            self.warn(path, f"{len(axes)} axes in the multiscales metadata but the array is {ndim}-D; axes ignored")
        else:
            names = [a.name for a in axes]
            if record.axes and [a.lower() for a in record.axes] != [a.lower() for a in names]:
                self.warn(path, f"dimension_names {record.axes} differ from the OME-NGFF axes {names}")
            record.axes = names
            record.axis_types = [a.type for a in axes]
            record.axis_units = [a.unit for a in axes]
        for what, values in (("scale", ds.scale), ("translation", ds.translation)):
            if values is not None and len(values) != ndim:
                self.warn(path, f"{len(values)}-element {what} for a {ndim}-D array; ignored")
                values = None
            setattr(record, what, values)

    def add_plain_array(self, node: Node) -> None:
        record = self.array_record(node, node.path or "/", 0)
        if record is not None:
            self.arrays.append(record)

    def array_record(self, node: Node, image_id: str, level: int) -> ArrayRecord:
        meta = parse_array(node, self.where(self.array_doc(node.path)))
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
