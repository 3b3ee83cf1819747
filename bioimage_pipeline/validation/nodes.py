"""One view of Zarr v2, Zarr v3 and N5 nodes for the validators: attributes, kind, and array geometry.

Only metadata documents are read, never chunks. Shapes and chunk shapes are always in C order (slowest
axis first), whatever the format: N5's fastest-first ``dimensions`` are reversed once, here.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.zarr import (
    V2_ARRAY,
    V2_ATTRS,
    V2_CONSOLIDATED,
    V2_GROUP,
    V3_META,
    Hierarchy,
    parse_array,
)
from bioimage_pipeline.formats.zarr import Node as ZarrNode
from bioimage_pipeline.jsonvalues import int_list
from bioimage_pipeline.storage import DirectoryStore, StoreReader, ZipStore, join_key, read_json

Format = Literal["zarr2", "zarr3", "n5"]
N5_ATTRS = "attributes.json"
# Keys of an N5 attributes.json that describe the array itself rather than annotate it.
N5_ARRAY_KEYS = frozenset({"dimensions", "blockSize", "dataType", "compression", "compressionType"})

_V2_MARKERS = (V2_GROUP, V2_ARRAY, V2_ATTRS, V2_CONSOLIDATED)


@dataclass(frozen=True)
class NodeMeta:
    """A group or array as its metadata document describes it."""

    path: str
    kind: Literal["array", "group"]
    format: Format
    attrs: dict[str, Any]
    document: str
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    chunks: tuple[int, ...] | None = None
    dimension_names: tuple[str, ...] | None = None
    # A Zarr v2 group with .zattrs but no .zgroup, or an N5 directory without attributes.json.
    implicit: bool = False
    # Why the array document could not be interpreted (its geometry is then unknown).
    problems: tuple[str, ...] = ()

    @property
    def ndim(self) -> int | None:
        return None if self.shape is None else len(self.shape)


def _format_of(path: Path) -> Format | None:
    if (path / V3_META).is_file():
        return "zarr3"
    if any((path / m).is_file() for m in _V2_MARKERS):
        return "zarr2"
    if (path / N5_ATTRS).is_file():
        return "n5"
    return None


def _is_n5_root(path: Path) -> bool:
    if path.suffix.lower() == ".n5":
        return True
    doc = path / N5_ATTRS
    try:
        return doc.is_file() and '"n5"' in doc.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def local_path(url: str | Path) -> Path:
    """A filesystem path from a path or a ``file://`` URL; other schemes raise StoreError (not readable here)."""
    if isinstance(url, Path):
        return url
    text = str(url)
    if text.startswith("file:"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise StoreError(text, "only local file:// URLs are supported")
        return Path(unquote(parsed.path))
    if "://" in text:
        raise StoreError(text, "only local paths and file:// URLs are supported")
    return Path(text)


def _store_root(path: Path, fmt: Format) -> Path:
    """The top of the hierarchy that ``path`` belongs to, so issue paths are relative to the store."""
    if fmt == "n5":
        # N5 groups need no attributes.json, so climb to the container root (its attributes name "n5").
        for ancestor in [path, *path.parents]:
            if _is_n5_root(ancestor):
                return ancestor
    root = path
    while root.parent != root and _format_of(root.parent) == fmt:
        root = root.parent
    if fmt == "zarr2":
        # Zarr v2 writers sometimes skip .zgroup for intermediate groups (plate rows); a named store above wins.
        for ancestor in path.parents:
            if ancestor.suffix.lower() == ".zarr" and _format_of(ancestor) == fmt:
                return ancestor
    return root


class NodeReader:
    """Reads node metadata of one store, each document once."""

    def __init__(self, store: StoreReader, fmt: Format) -> None:
        self.store = store
        self.format: Format = fmt
        self._hierarchy = Hierarchy(store) if fmt != "n5" else None
        self._cache: dict[str, NodeMeta | None] = {}
        self._arrays: dict[str, NodeMeta] = {}

    @property
    def location(self) -> str:
        return self.store.location

    def uri(self, path: str) -> str:
        return self.store.uri(path)

    def node(self, path: str) -> NodeMeta | None:
        """The node at ``path`` or None when there is none; StoreError when its document is unreadable."""
        path = path.strip("/")
        if path not in self._cache:
            self._cache[path] = self._read_n5(path) if self._hierarchy is None else self._read_zarr(path)
        return self._cache[path]

    def children(self, path: str) -> list[str]:
        path = path.strip("/")
        if self._hierarchy is not None:
            return self._hierarchy.child_names(path)
        return [d for d in self.store.list_dir(path)[0] if not d.startswith(".")]

    def _read_zarr(self, path: str) -> NodeMeta | None:
        assert self._hierarchy is not None
        node = self._hierarchy.node(path)
        if node is None:
            return None
        fmt: Format = "zarr3" if node.zarr_format == 3 else "zarr2"
        if node.kind == "group":
            implicit = fmt == "zarr2" and not node.meta
            doc = join_key(path, V3_META if fmt == "zarr3" else (V2_GROUP if node.meta else V2_ATTRS))
            return NodeMeta(path, "group", fmt, node.attrs, doc, implicit=implicit)
        doc = join_key(path, V3_META if fmt == "zarr3" else V2_ARRAY)
        # Pyramids repeat the same array documents in every field of a plate: interpret each one once.
        key = json.dumps([node.meta, node.attrs.get("_ARRAY_DIMENSIONS")], sort_keys=True, default=repr)
        if key not in self._arrays:
            self._arrays[key] = _zarr_array(node, fmt, "", self.store.uri(doc))
        return replace(self._arrays[key], path=path, attrs=node.attrs, document=doc)

    def _read_n5(self, path: str) -> NodeMeta | None:
        doc = join_key(path, N5_ATTRS)
        attrs = read_json(self.store, doc)
        if attrs is None:
            if path and self.store.is_dir(path):
                return NodeMeta(path, "group", "n5", {}, doc, implicit=True)
            return None if path else NodeMeta(path, "group", "n5", {}, doc, implicit=True)
        if "dimensions" not in attrs or "dataType" not in attrs:
            return NodeMeta(path, "group", "n5", attrs, doc)
        dims, block = attrs.get("dimensions"), attrs.get("blockSize")
        problems = []
        shape = chunks = None
        if int_list(dims):
            shape = tuple(reversed(dims))
        else:
            problems.append(f"dimensions is not a list of non-negative integers: {dims!r}")
        if int_list(block) and shape is not None and len(block) == len(shape):
            chunks = tuple(reversed(block))
        else:
            problems.append(f"blockSize {block!r} is not a list of integers matching dimensions")
        user_attrs = {k: v for k, v in attrs.items() if k not in N5_ARRAY_KEYS}
        return NodeMeta(
            path, "array", "n5", user_attrs, doc, shape, str(attrs.get("dataType")), chunks, problems=tuple(problems)
        )


def _zarr_array(node: ZarrNode, fmt: Format, doc: str, where: str) -> NodeMeta:
    try:
        meta = parse_array(node, where)
    except StoreError as exc:
        return NodeMeta(node.path, "array", fmt, node.attrs, doc, problems=(exc.problem,))
    names = None
    if fmt == "zarr3" and isinstance(node.meta.get("dimension_names"), list):
        # parse_array turns a null name into ""; keep None so "no name" and "empty name" stay distinct.
        names = tuple(node.meta["dimension_names"])
    elif meta.dimension_names is not None:
        names = tuple(meta.dimension_names)
    return NodeMeta(
        node.path,
        "array",
        fmt,
        node.attrs,
        doc,
        tuple(meta.shape),
        meta.dtype,
        tuple(meta.chunk_shape) if meta.chunk_shape is not None else None,
        names,
        problems=tuple(meta.warnings),
    )


@dataclass(frozen=True)
class OpenedNode:
    reader: NodeReader
    path: str
    fmt: Format


def open_node(url: str | Path) -> OpenedNode:
    """The store holding ``url`` and the node's path inside it. StoreError when there is no readable node."""
    path = local_path(url).expanduser()
    path = Path(path).absolute()
    zipped = _zip_member(path)
    if zipped is not None:
        archive, inner = zipped
        store: StoreReader = ZipStore(archive)
        fmt = _store_format(store)
        reader = NodeReader(store, fmt)
        if reader.node(inner) is None:
            raise StoreError(store.uri(inner), "no Zarr or N5 node at this path inside the archive")
        return OpenedNode(reader, inner, fmt)
    if not path.exists():
        raise StoreError(path, "does not exist")
    if path.is_file() and path.name in (V3_META, V2_ATTRS, V2_GROUP, V2_ARRAY, N5_ATTRS):
        path = path.parent  # pointing at the metadata document means its node
    if not path.is_dir():
        raise StoreError(path, "is neither a directory nor a zip archive")
    fmt_found = _format_of(path)
    if fmt_found is None and any(_is_n5_root(a) for a in [path, *path.parents]):
        fmt_found = "n5"  # N5 groups need no attributes.json: a plain folder inside a container is a group
    if fmt_found is None:
        raise StoreError(path, "no Zarr or N5 metadata here (zarr.json, .zgroup, .zarray, .zattrs or attributes.json)")
    root = _store_root(path, fmt_found)
    reader = NodeReader(DirectoryStore(root), fmt_found)
    inner = path.relative_to(root).as_posix()
    inner = "" if inner == "." else inner
    if reader.node(inner) is None:
        raise StoreError(path, "no Zarr or N5 node here")
    return OpenedNode(reader, inner, fmt_found)


def _zip_member(path: Path) -> tuple[Path, str] | None:
    """``store.zarr.zip`` or ``store.zarr.zip/B/03/0``: the archive and the node path inside it."""
    for candidate in [path, *path.parents]:
        if candidate.is_file() and zipfile.is_zipfile(candidate):
            rel = path.relative_to(candidate).as_posix()
            return candidate, "" if rel == "." else rel
        if candidate.exists():
            return None
    return None


def _store_format(store: StoreReader) -> Format:
    if store.exists(V3_META):
        return "zarr3"
    if any(store.exists(m) for m in _V2_MARKERS):
        return "zarr2"
    if store.exists(N5_ATTRS):
        return "n5"
    raise StoreError(store.location, "no Zarr or N5 metadata at the archive root")
