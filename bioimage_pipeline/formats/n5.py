"""N5 containers (read-only): arrays, groups and the multiscale metadata dialects found in real containers.

N5 lists dimensions fastest-axis first (F order), and so do ``blockSize``, N5-Viewer's ``pixelResolution``
and ``downsamplingFactors``, neuroglancer's ``resolution``/``units``/``axes``/``scales``, n5-universe's
canonical ``spatialTransform`` and (as n5-universe writes it) OME-NGFF metadata stored in N5.
:func:`_c_order` is the one place where such lists are reversed; everything this module returns is C order.
COSEM/CellMap ``transform`` metadata is C order already unless it says ``"order": "F"``.

An array's geometry comes from the most specific metadata present, in this order:

1. OME-NGFF ``multiscales`` on the image group (axes, ``coordinateTransformations``, omero channels);
2. the array's own COSEM ``transform``, then the one its group's COSEM ``multiscales`` entry gives;
3. the array's own canonical ``spatialTransform``, then its group's canonical ``multiscales`` entry;
4. N5-Viewer / neuroglancer / BigDataViewer: base resolution (``pixelResolution``, ``resolution`` or
   ``res``; inherited from ancestor groups as neuroglancer and N5-Viewer do) times the level's downsampling
   factors (its own ``downsamplingFactors`` or row ``N`` of a group's ``scales``/``downsamplingFactors``).
   Averaging-downsampled pixels are centred at ``resolution × (factor − 1) / 2``, which is the translation
   recorded (n5-universe's convention, and neuroglancer's corner-aligned grid in pixel-centre terms).

Multiscale images are either explicit (a group's ``multiscales`` lists its levels in order, possibly in
other groups: ``../other/level1``) or implicit (a group whose array children are named ``s0``, ``s1``, …).
Arrays in neither are images of their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from bioimage_pipeline.chunks import GridChunks, KeyEncoding, check_extent
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats import ngff
from bioimage_pipeline.jsonvalues import int_list, is_number
from bioimage_pipeline.model import ArrayRecord, StoreScan
from bioimage_pipeline.storage import StoreReader, join_key, read_json

ATTRS = "attributes.json"
_LEVEL = re.compile(r"^s(\d+)$")
_DIGITS = re.compile(r"^\d+$")
_MAX_DEPTH = 32
_NEWEST_N5_MAJOR = 4
_N5_TYPES = frozenset({"uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float32", "float64"})
_COMPRESSIONS = frozenset({"raw", "gzip", "zlib", "bzip2", "lz4", "xz", "blosc", "zstd", "zstandard"})
_ZARR_MARKERS = (".zgroup", ".zarray", ".zattrs", "zarr.json")
#: Keys that groups pass down to the arrays below them (neuroglancer merges every ancestor's attributes;
#: N5-Viewer uses the root's as defaults for every channel).
_INHERITED = ("pixelResolution", "resolution", "res", "units", "unit", "axes", "scales", "downsamplingFactors")
_UNITS = {
    "nm": "nanometer",
    "nanometers": "nanometer",
    "um": "micrometer",
    "\u00b5m": "micrometer",  # micro sign
    "\u03bcm": "micrometer",  # Greek small letter mu
    "micron": "micrometer",
    "microns": "micrometer",
    "micrometers": "micrometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "pm": "picometer",
    "\u00c5": "angstrom",
    "\u00e5": "angstrom",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "us": "microsecond",
    "\u00b5s": "microsecond",
    "ns": "nanosecond",
    "min": "minute",
    "h": "hour",
}
_UDUNITS = frozenset(_UNITS.values())
_NO_UNIT = frozenset({"", "pixel", "pixels", "px", "none", "null", "unitless", "unknown"})

T = TypeVar("T")


def _c_order(values: Sequence[T]) -> list[T]:
    """The one place where N5's fastest-axis-first (F order) lists become C order."""
    return list(reversed(values))


def _unit(value: Any) -> str | None:
    """A UDUNITS name ("nanometer") for the symbols N5 writers use ("nm", "um", "µm"); None for none."""
    if value is None:
        return None
    text = str(value).strip()
    lower = text.lower()
    if lower in _NO_UNIT:
        return None
    if lower in _UDUNITS:
        return lower
    return _UNITS.get(text, _UNITS.get(lower, text))


def _axis_type(name: str) -> str | None:
    lower = name.lower()
    if lower in ("x", "y", "z"):
        return "space"
    if lower in ("t", "time"):
        return "time"
    if lower in ("c", "ch", "channel", "channels"):
        return "channel"
    return None


def _default_axes(ndim: int) -> list[str]:
    if ndim == 3:
        return ["z", "y", "x"]
    if ndim == 2:
        return ["y", "x"]
    return [f"d{i}" for i in range(ndim)]


def _numbers(value: Any, n: int) -> list[float] | None:
    if not isinstance(value, list) or len(value) != n or not all(is_number(v) for v in value):
        return None
    return [float(v) for v in value]


def _names(value: Any, n: int) -> list[str] | None:
    if not isinstance(value, list) or len(value) != n or not all(isinstance(v, str) for v in value):
        return None
    return list(value)


def _is_table(value: Any) -> bool:
    """A list of per-level factor lists (``[[1,1,1],[2,2,1]]``), as opposed to one level's factors."""
    return isinstance(value, list) and bool(value) and all(isinstance(row, list) for row in value)


def _is_array(attrs: dict[str, Any]) -> bool:
    # N5 1.x read any node with dimensions and a dataType as a dataset; a blockSize beside dimensions is a
    # dataset header too, so a missing dataType is reported rather than the node silently becoming a group.
    return "dimensions" in attrs and ("dataType" in attrs or "blockSize" in attrs)


def _resolve(group: str, relative: str) -> str | None:
    """``relative`` (which may climb with ``..``) against ``group``; None when it leaves the container."""
    parts = [p for p in group.split("/") if p]
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def is_n5(store: StoreReader) -> bool:
    """Whether ``store`` is an N5 container: a root ``attributes.json`` that gives the N5 version or describes
    an array or, for containers that skip the version or the root document (groups need no attributes), no
    Zarr metadata at the root and an ``attributes.json`` one level down."""
    try:
        attrs = read_json(store, ATTRS)
    except StoreError:
        return True  # an attributes.json that cannot be parsed: let the scan name the file
    if attrs is not None and ("n5" in attrs or "dimensions" in attrs):
        return True
    if any(store.exists(marker) for marker in _ZARR_MARKERS):
        return False
    dirs, _ = store.list_dir("")
    return any(store.exists(join_key(d, ATTRS)) for d in dirs)


# --- array headers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ArrayMeta:
    shape: list[int]  # C order
    chunk_shape: list[int]  # C order
    dtype: str
    codecs: list[str]


def _codecs(attrs: dict[str, Any], warn: Callable[[str], None]) -> list[str]:
    codecs = attrs.get("codecs")
    if isinstance(codecs, list) and codecs:
        # N5 4 writes a codec chain; with sharding, blockSize is the shard and each stored file is a shard.
        names = [str(c.get("name") or c.get("type")) if isinstance(c, dict) else str(c) for c in codecs]
        if any("shard" in n.lower() for n in names):
            warn("sharded N5 dataset: chunk_index lists whole shards on the blockSize grid")
        return names
    compression = attrs.get("compression")
    if isinstance(compression, dict):
        kind = compression.get("type")
    elif isinstance(compression, str):
        kind = compression
    else:
        # N5 version 0 spelled it "compressionType"; with neither key N5 1.x read the blocks as raw.
        kind = attrs.get("compressionType") or "raw"
    name = str(kind) if kind else "unknown"
    if name.lower() not in _COMPRESSIONS:
        warn(f"unknown N5 compression {name!r}")
    if name == "blosc" and isinstance(compression, dict) and compression.get("cname"):
        return [f"blosc/{compression['cname']}"]
    return [name]


def _array_meta(attrs: dict[str, Any], where: str, warn: Callable[[str], None]) -> _ArrayMeta:
    dims = attrs.get("dimensions")
    if not int_list(dims, 0):
        raise StoreError(where, f"dimensions must be a list of non-negative integers, found {dims!r}")
    check_extent(dims, where)
    if "dataType" not in attrs:
        raise StoreError(where, "an array header (dimensions, blockSize) without a dataType")
    block = attrs.get("blockSize")
    if block is None:
        warn("no blockSize: read as one block, as N5 1.x does")
        block = [max(d, 1) for d in dims]
    elif not int_list(block, 1):
        raise StoreError(where, f"blockSize must be a list of positive integers, found {block!r}")
    if len(block) != len(dims):
        raise StoreError(
            where, f"dimensions {dims} ({len(dims)}-D) and blockSize {block} ({len(block)}-D) differ in length"
        )
    dtype = str(attrs["dataType"])
    if dtype.lower() in _N5_TYPES:
        dtype = dtype.lower()
    else:
        warn(f"unknown N5 dataType {dtype!r}; recorded as given")
    return _ArrayMeta(_c_order(dims), _c_order(block), dtype, _codecs(attrs, warn))


# --- geometry dialects -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    """Axes and physical placement, all lists in one order; ``axes=None`` means "not declared"."""

    axes: list[str] | None = None
    scale: list[float] | None = None
    translation: list[float] | None = None
    units: list[str | None] | None = None
    types: list[str | None] | None = None


def _flip(g: _Geometry) -> _Geometry:
    """A geometry read in N5's F order, in C order."""

    def rev(values: list[Any] | None) -> list[Any] | None:
        return None if values is None else _c_order(values)

    return _Geometry(rev(g.axes), rev(g.scale), rev(g.translation), rev(g.units), rev(g.types))


def _cosem(transform: Any, ndim: int, warn: Callable[[str], None]) -> _Geometry | None:
    """COSEM/CellMap ``transform``: axes, scale, translate and units, C order unless ``order`` is "F"."""
    if not isinstance(transform, dict) or "scale" not in transform:
        return None
    scale = _numbers(transform.get("scale"), ndim)
    if scale is None:
        warn(f"COSEM transform scale {transform.get('scale')!r} does not fit the {ndim}-D array; ignored")
        return None
    translate = _numbers(transform.get("translate"), ndim)
    if translate is None and "translate" in transform:
        warn(f"COSEM transform translate {transform.get('translate')!r} does not fit the {ndim}-D array")
    units = transform.get("units")
    geometry = _Geometry(
        _names(transform.get("axes"), ndim),
        scale,
        translate,
        [_unit(u) for u in units] if isinstance(units, list) and len(units) == ndim else None,
    )
    # cellmap-schemas calls the key "order", n5-universe "ordering"; both default to C.
    order = transform.get("order", transform.get("ordering"))
    return _flip(geometry) if str(order).upper() == "F" else geometry


def _diagonal_affine(values: Any, n: int, warn: Callable[[str], None]) -> tuple[list[float], list[float]] | None:
    flat = _numbers(values, n * (n + 1))
    if flat is None:
        warn(f"spatialTransform affine {values!r} is not {n} × {n + 1} numbers for the {n}-D array; ignored")
        return None
    rows = [flat[i * (n + 1) : (i + 1) * (n + 1)] for i in range(n)]
    if any(rows[i][j] != 0 for i in range(n) for j in range(n) if i != j):
        warn("spatialTransform affine rotates or shears; not representable as scale and translation")
        return None
    return [rows[i][i] for i in range(n)], [rows[i][n] for i in range(n)]


def _canonical(spatial: Any, ndim: int, warn: Callable[[str], None]) -> _Geometry | None:
    """n5-universe's canonical ``spatialTransform`` (F order): identity, scale, translation, scale_offset or a
    diagonal affine, with a ``unit`` or per-axis ``axes`` entries."""
    if not isinstance(spatial, dict) or not isinstance(spatial.get("transform"), dict):
        return None
    t = spatial["transform"]
    kind = t.get("type")
    ones, zeros = [1.0] * ndim, [0.0] * ndim
    params: tuple[list[float] | None, list[float] | None] | None
    if kind == "identity":
        params = ones, zeros
    elif kind == "scale":
        params = _numbers(t.get("scale"), ndim), zeros
    elif kind == "translation":
        params = ones, _numbers(t.get("translation"), ndim)
    elif kind == "scale_offset":
        params = _numbers(t.get("scale"), ndim), _numbers(t.get("offset"), ndim)
    elif kind == "affine":
        params = _diagonal_affine(t.get("affine"), ndim, warn)
        if params is None:
            return None
    else:
        warn(f"spatialTransform type {kind!r} not supported; ignored")
        return None
    scale, translation = params
    if scale is None or translation is None:
        warn(f"spatialTransform {kind} parameters do not fit the {ndim}-D array; ignored")
        return None
    axes = units = types = None
    raw_axes = spatial.get("axes")
    if isinstance(raw_axes, list) and len(raw_axes) == ndim and all(isinstance(a, dict) for a in raw_axes):
        axes = [str(a.get("label", a.get("name", ""))) for a in raw_axes]
        units = [_unit(a.get("unit")) for a in raw_axes]
        types = [str(a["type"]) if a.get("type") else None for a in raw_axes]
    if (units is None or not any(units)) and spatial.get("unit") is not None:
        units = [_unit(spatial["unit"])] * ndim
    return _flip(_Geometry(axes, scale, translation, units, types))


def _ngff_rank(axis: ngff.Axis) -> tuple[int, int]:
    kind = (axis.type or _axis_type(axis.name) or "").lower()
    if kind == "time":
        return 0, 0
    if kind == "space":
        return 2, {"z": 0, "y": 1, "x": 2}.get(axis.name.lower(), 1)
    return 1, 0


def _ngff_is_f_order(axes: list[ngff.Axis]) -> bool:
    """Whether OME-NGFF axes stored in N5 are listed like N5's dimensions (F order).

    n5-universe (the Fiji/N5 writer) stores them so, unreversed; a writer that followed the NGFF spec
    literally lists them in C order. The reading that gives the spec's t, c, z, y, x order wins; when both
    or neither do, N5's own order (n5-universe's convention) applies.
    """

    def canonical(seq: list[ngff.Axis]) -> bool:
        ranks = [_ngff_rank(a) for a in seq]
        return ranks == sorted(ranks)

    return not (canonical(axes) and not canonical(_c_order(axes)))


def _is_ngff(attrs: dict[str, Any]) -> bool:
    ome = attrs.get("ome")
    if isinstance(ome, dict) and "multiscales" in ome:
        return True
    raw = attrs.get("multiscales")
    if not isinstance(raw, list):
        return False
    for ms in raw:
        if not isinstance(ms, dict):
            continue
        if "axes" in ms or "version" in ms or "coordinateTransformations" in ms:
            return True
        datasets = ms.get("datasets")
        if isinstance(datasets, list) and any(
            isinstance(d, dict) and "coordinateTransformations" in d for d in datasets
        ):
            return True
    return False


# --- the scan --------------------------------------------------------------------------------------


@dataclass
class _Node:
    path: str
    attrs: dict[str, Any]
    array: _ArrayMeta | None = None
    children: list[str] = field(default_factory=list)


@dataclass
class _Level:
    index: int
    path: str
    geometry: _Geometry | None = None  # from OME-NGFF group metadata, already C order
    transform: Any = None  # COSEM transform of the group's multiscales entry
    spatial: Any = None  # canonical spatialTransform of the group's multiscales entry
    factors: list[Any] | None = None  # F order, from the group's scales / downsamplingFactors table


@dataclass
class _Image:
    image_id: str
    group: str
    levels: list[_Level]
    kind: str = "image"
    ngff_version: str | None = None
    channel_names: list[str] | None = None


class _N5Scan:
    def __init__(self, store: StoreReader, dataset_id: str) -> None:
        self.store = store
        self.dataset_id = dataset_id
        self.warnings: list[str] = []
        self.nodes: dict[str, _Node] = {}  # walk order
        self.claimed: dict[str, str] = {}  # array path -> image_id
        self.images: dict[str, list[_Image]] = {}  # group path -> images it declares

    def warn(self, path: str, message: str) -> None:
        self.warnings.append(f"{path or '/'}: {message}")

    def warner(self, path: str) -> Callable[[str], None]:
        return lambda message: self.warn(path, message)

    def where(self, path: str) -> str:
        return self.store.uri(join_key(path, ATTRS))

    # walking

    def visit(self, path: str, depth: int, attrs: dict[str, Any] | None) -> None:
        node = _Node(path, attrs or {})
        self.nodes[path] = node
        if _is_array(node.attrs):
            node.array = _array_meta(node.attrs, self.where(path), self.warner(path))
            return  # blocks are listed once, by the chunk source; never walked here
        node.children = [c for c in self.store.list_dir(path)[0] if not c.startswith(".")]
        if depth >= _MAX_DEPTH:
            if node.children:
                self.warn(path, f"hierarchy deeper than {_MAX_DEPTH} levels; not descended further")
            return
        strays = []
        for name in node.children:
            child = join_key(path, name)
            child_attrs = read_json(self.store, join_key(child, ATTRS))
            if child_attrs is None and _DIGITS.match(name):
                strays.append(name)
                continue
            self.visit(child, depth + 1, child_attrs)
        if strays:
            # Walking them would list every block of an array whose attributes.json is missing.
            shown = ", ".join(strays[:3]) + (", …" if len(strays) > 3 else "")
            self.warn(path, f"numbered directories without attributes.json ({shown}) look like blocks; skipped")

    def inherited(self, group: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        parts = [p for p in group.split("/") if p]
        for i in range(len(parts) + 1):
            node = self.nodes.get("/".join(parts[:i]))
            if node is not None and node.array is None:
                merged.update({k: node.attrs[k] for k in _INHERITED if k in node.attrs})
        return merged

    # multiscale images

    def explicit_images(self, node: _Node) -> list[_Image] | None:
        attrs = node.attrs
        ome = attrs.get("ome")
        if "multiscales" not in attrs and not (isinstance(ome, dict) and "multiscales" in ome):
            return None
        if _is_ngff(attrs):
            return self.ngff_images(node)
        raw = attrs["multiscales"]
        if isinstance(raw, dict):  # n5-universe's canonical form: one multiscale object
            raw = [raw]
        where = self.where(node.path)
        if not isinstance(raw, list):
            raise StoreError(where, "multiscales is neither a list nor an object")
        images = []
        for k, ms in enumerate(raw):
            datasets = ms.get("datasets") if isinstance(ms, dict) else None
            if not isinstance(datasets, list):
                raise StoreError(where, "a multiscales entry has no datasets list")
            levels = []
            for i, ds in enumerate(datasets):
                if not isinstance(ds, dict) or not isinstance(ds.get("path"), str):
                    raise StoreError(where, "a multiscales dataset has no path")
                levels.append(_Level(i, ds["path"], transform=ds.get("transform"), spatial=ds.get("spatialTransform")))
            images.append(_Image(self.image_id(node.path, k), node.path, levels))
        return images

    def ngff_images(self, node: _Node) -> list[_Image]:
        try:
            multiscales = ngff.parse_multiscales(node.attrs)
        except ValueError as exc:
            raise StoreError(self.where(node.path), f"invalid OME-NGFF metadata: {exc}") from exc
        names = ngff.channel_names(node.attrs)
        kind = "label" if ngff.is_label_image(node.attrs) else "image"
        images = []
        for k, ms in enumerate(multiscales):
            flip = _ngff_is_f_order(ms.axes)
            levels = []
            for i, ds in enumerate(ms.datasets):
                g = _Geometry(
                    [a.name for a in ms.axes],
                    ds.scale,
                    ds.translation,
                    [_unit(a.unit) for a in ms.axes],
                    [a.type for a in ms.axes],
                )
                levels.append(_Level(i, ds.path, geometry=_flip(g) if flip else g))
            images.append(_Image(self.image_id(node.path, k), node.path, levels, kind, ms.version, names))
        return images

    def implicit_image(self, node: _Node) -> _Image | None:
        found = []
        for name in node.children:
            m = _LEVEL.match(name)
            child = self.nodes.get(join_key(node.path, name))
            if m and child is not None and child.array is not None and child.path not in self.claimed:
                found.append((int(m.group(1)), child.path))
        if not found:
            return None
        found.sort()
        table = self.inherited(node.path)
        factors = next((table[k] for k in ("scales", "downsamplingFactors") if _is_table(table.get(k))), None)
        image_id = self.image_id(node.path, 0)
        missing = sorted(set(range(found[-1][0] + 1)) - {n for n, _ in found})
        if missing:
            self.warn(node.path, f"multiscale levels {', '.join(f's{n}' for n in missing)} of {image_id} are missing")
        levels = []
        for n, path in found:
            row = None
            if factors is not None:
                if n < len(factors):
                    row = factors[n]
                else:
                    self.warn(path, f"the group's scales list no downsampling factors for s{n}")
            self.claimed[path] = image_id
            levels.append(_Level(n, path, factors=row))
        return _Image(image_id, node.path, levels)

    def image_id(self, group: str, k: int) -> str:
        base = group or "/"
        return base if k == 0 else f"{base}#{k}"

    def claim(self, image: _Image) -> None:
        kept = []
        for level in image.levels:
            path = _resolve(image.group, level.path)
            target = self.nodes.get(path) if path is not None else None
            shown = path if path is not None else join_key(image.group, level.path)
            if target is None or target.array is None:
                self.warn(shown, f"level {level.index} of image {image.image_id} is not an N5 array")
                continue
            if target.path in self.claimed:
                self.warn(shown, f"already a level of image {self.claimed[target.path]}; not repeated")
                continue
            self.claimed[target.path] = image.image_id
            kept.append(replace(level, path=target.path))
        image.levels = kept

    # geometry

    def resolution(self, image: _Image, level: _Level, node: _Node, ndim: int) -> _Geometry | None:
        """N5-Viewer / neuroglancer / BigDataViewer: base resolution × downsampling factors (all F order)."""
        own, chain = node.attrs, self.inherited(image.group)
        warn = self.warner(node.path)

        def pick(key: str) -> tuple[Any, bool]:
            if key in own:
                return own[key], True
            return chain.get(key), False

        base, unit, own_base = None, None, False
        for key in ("pixelResolution", "resolution", "res"):
            value, is_own = pick(key)
            if value is None:
                continue
            dims = _numbers(value.get("dimensions") if isinstance(value, dict) else value, ndim)
            if dims is None:
                warn(f"{key} {value!r} does not fit the {ndim}-D array; ignored")
                continue
            base, own_base = dims, is_own
            unit = value.get("unit") if isinstance(value, dict) else None
            break
        factors = None
        if "downsamplingFactors" in own and not _is_table(own["downsamplingFactors"]):
            factors = _numbers(own["downsamplingFactors"], ndim)
            if factors is None:
                warn(f"downsamplingFactors {own['downsamplingFactors']!r} do not fit the {ndim}-D array; ignored")
        if factors is None and level.factors is not None:
            factors = _numbers(level.factors, ndim)
            if factors is None:
                warn(f"the group's downsampling factors {level.factors!r} do not fit the {ndim}-D array; ignored")
        axes = _names(pick("axes")[0], ndim)
        raw_units = pick("units")[0]
        units: list[str | None] | None = None
        if isinstance(raw_units, list) and len(raw_units) == ndim:
            units = [_unit(u) for u in raw_units]
        elif base is not None:
            one = unit if unit is not None else pick("unit")[0]
            units = [_unit(one)] * ndim if one is not None else None
        if base is None and factors is None:
            return _flip(_Geometry(axes)) if axes is not None else None
        if factors is None and not own_base and level.index > 0:
            warn("resolution inherited from a group but no downsampling factors for this level; scale unknown")
            return _flip(_Geometry(axes))
        res = base if base is not None else [1.0] * ndim
        f = factors if factors is not None else [1.0] * ndim
        offset = _numbers(own.get("offset", own.get("off")), ndim) or [0.0] * ndim
        return _flip(
            _Geometry(
                axes,
                [r * k for r, k in zip(res, f, strict=True)],
                [o + r * (k - 1) / 2 for o, r, k in zip(offset, res, f, strict=True)],
                # Without a base resolution the scale counts full-resolution pixels: no physical unit.
                units if base is not None else None,
            )
        )

    def geometry(self, image: _Image, level: _Level, node: _Node, ndim: int) -> _Geometry:
        warn = self.warner(node.path)
        attrs = node.attrs
        candidates: list[Callable[[], _Geometry | None]] = [
            lambda: level.geometry,
            lambda: _cosem(attrs.get("transform"), ndim, warn),
            lambda: _cosem(level.transform, ndim, warn),
            lambda: _canonical(attrs.get("spatialTransform"), ndim, warn),
            lambda: _canonical(level.spatial, ndim, warn),
            lambda: self.resolution(image, level, node, ndim),
        ]
        for make in candidates:
            g = make()
            if g is not None and (fitted := self.fit(g, ndim, node.path)) is not None:
                return fitted
        axes = _default_axes(ndim)
        return _Geometry(axes, types=[_axis_type(a) for a in axes])

    def fit(self, g: _Geometry, ndim: int, path: str) -> _Geometry | None:
        """``g`` with defaults filled in, or None when its axes do not match the array."""
        if g.axes is not None and len(g.axes) != ndim:
            self.warn(path, f"metadata describes {len(g.axes)} axes but the array is {ndim}-D; ignored")
            return None
        axes = g.axes if g.axes is not None else _default_axes(ndim)

        def sized(values: list[Any] | None, what: str) -> list[Any] | None:
            if values is not None and len(values) != ndim:
                self.warn(path, f"{what} {values} does not fit the {ndim}-D array; ignored")
                return None
            return values

        units = sized(g.units, "units")
        types = sized(g.types, "axis types")
        return _Geometry(
            axes,
            sized(g.scale, "scale"),
            sized(g.translation, "translation"),
            units if units is not None and any(u is not None for u in units) else None,
            types if types is not None else [_axis_type(a) for a in axes],
        )

    def channel_names(self, image: _Image, node: _Node, axes: list[str]) -> list[str] | None:
        if image.channel_names is not None:
            return image.channel_names
        # neuroglancer labels the positions of an axis with "coordinateArrays": {"c": ["DAPI", ...]}.
        arrays = node.attrs.get("coordinateArrays", self.inherited(image.group).get("coordinateArrays"))
        if not isinstance(arrays, dict):
            return None
        for name in axes:
            labels = arrays.get(name)
            if _axis_type(name) == "channel" and isinstance(labels, list):
                return [str(v) for v in labels]
        return None

    # records

    def record(self, image: _Image, level: _Level) -> ArrayRecord:
        node = self.nodes[level.path]
        meta = node.array
        assert meta is not None
        g = self.geometry(image, level, node, len(meta.shape))
        axes = g.axes or []
        encoding = KeyEncoding(level.path, "/", reverse=True)
        return ArrayRecord(
            image_id=image.image_id,
            array_path=level.path or "/",
            level=level.index,
            uri=self.store.uri(level.path),
            storage_variant="n5",
            shape=meta.shape,
            dtype=meta.dtype,
            kind=image.kind,
            ngff_version=image.ngff_version,
            chunk_shape=meta.chunk_shape,
            axes=axes,
            axis_types=g.types,
            axis_units=g.units,
            scale=g.scale,
            translation=g.translation,
            channel_names=self.channel_names(image, node, axes),
            codecs=meta.codecs,
            chunk_key_encoding=encoding.description,
            # Block data runs fastest along N5's first dimension: row-major in the reversed (C order) shape.
            order="C",
            chunks=GridChunks.from_store(self.store, meta.shape, meta.chunk_shape, encoding),
        )

    def check_version(self, root: dict[str, Any] | None) -> None:
        version = (root or {}).get("n5")
        major = str(version).split(".")[0] if version is not None else ""
        if major.isdigit() and int(major) > _NEWEST_N5_MAJOR:
            self.warn("", f"N5 version {version} is newer than the versions this scanner knows")

    def run(self) -> StoreScan:
        root = read_json(self.store, ATTRS)
        self.check_version(root)
        self.visit("", 0, root)
        groups = [n for n in self.nodes.values() if n.array is None]
        # Explicit metadata claims its levels first, wherever they live, so that an s0/s1 pair referenced
        # from elsewhere is not also read as a pyramid of its own.
        for node in groups:
            images = self.explicit_images(node)
            if images is not None:
                for image in images:
                    self.claim(image)
                # Metadata naming only missing arrays does not stop s0, s1, … from being read as levels.
                if any(image.levels for image in images):
                    self.images[node.path] = images
        for node in groups:
            if node.path not in self.images and (implicit := self.implicit_image(node)) is not None:
                self.images[node.path] = [implicit]
        arrays: list[ArrayRecord] = []
        for node in self.nodes.values():
            if node.array is None:
                for image in self.images.get(node.path, []):
                    arrays.extend(self.record(image, level) for level in image.levels)
            elif node.path not in self.claimed:
                lone = _Image(node.path or "/", _parent(node.path), [_Level(0, node.path)])
                arrays.append(self.record(lone, lone.levels[0]))
        if not arrays:
            detail = f" ({self.warnings[0]})" if self.warnings else ""
            raise StoreError(self.store.location, f"N5 container holds no arrays{detail}")
        return StoreScan(self.dataset_id, self.store.location, "n5", arrays, self.warnings)


def scan_n5(store: StoreReader, dataset_id: str) -> StoreScan:
    """Scan an N5 container (directory or zip): one record per array, grouped into multiscale images.

    Raises :class:`StoreError` naming the file for unreadable metadata (invalid JSON, a malformed array
    header) and when the container holds no array at all; anything merely odd becomes a warning.
    """
    return _N5Scan(store, dataset_id).run()
