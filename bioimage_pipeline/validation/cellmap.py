"""CellMap conventions: ``neuroglancer_n5`` and ``cosem`` multiscale groups and arrays, ``annotation`` crops.

The rules are those of the ``cellmap-schemas`` models, checked on metadata documents so they hold over N5,
Zarr v2 and Zarr v3 alike. Neuroglancer's N5 keys (``axes``, ``units``, ``scales``,
``pixelResolution.dimensions``) list dimensions fastest-first (F order); array shapes here are C order, so
they are compared reversed. A COSEM ``transform`` is C order unless its ``order`` says ``"F"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from bioimage_pipeline.jsonvalues import is_int, is_number, str_list
from bioimage_pipeline.storage import join_key
from bioimage_pipeline.validation.detect import annotation_attrs, is_cosem_multiscales, ngff_kind
from bioimage_pipeline.validation.issues import Findings
from bioimage_pipeline.validation.ngff import NgffChecker
from bioimage_pipeline.validation.nodes import NodeMeta, NodeReader

NG = "cellmap.neuroglancer_n5"
COSEM = "cellmap.cosem"
ANNOTATION = "cellmap.annotation"
ANNOTATION_VERSION = "0.1.1"
SEMANTIC_KEYS = frozenset({"unknown", "absent", "present"})
INSTANCE_KEYS = frozenset({"unknown", "absent"})
_LEVEL = re.compile(r"^s(\d+)$")
_CROP_FIELDS = (
    "name",
    "description",
    "created_by",
    "created_with",
    "start_date",
    "end_date",
    "duration_days",
    "protocol_uri",
    "class_names",
)


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class PixelResolution:
    dimensions: tuple[float, ...]
    unit: str


@dataclass(frozen=True)
class STTransform:
    axes: tuple[str, ...]
    units: tuple[str, ...]
    translate: tuple[float, ...]
    scale: tuple[float, ...]
    order: str

    def f_order(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        """``values`` (one per axis of this transform) in F order, to compare with Neuroglancer keys."""
        return values[::-1] if self.order == "C" else values


@dataclass(frozen=True)
class NgGroup:
    axes: tuple[str, ...] | None
    scales: tuple[tuple[int, ...], ...] | None
    resolution: PixelResolution | None


def _pixel_resolution(raw: Any, where: str, rule: str, path: str, out: Findings) -> PixelResolution | None:
    if raw is None:
        out.error(path, rule, f"{where} has no 'pixelResolution' ({{'dimensions': [...], 'unit': ...}})")
        return None
    if isinstance(raw, list):
        out.error(
            path,
            rule,
            f"{where}.pixelResolution is a bare list (the old N5 Viewer form); Neuroglancer and CellMap need "
            "an object {'dimensions': [...], 'unit': ...}",
        )
        return None
    if not isinstance(raw, dict):
        out.error(path, rule, f"{where}.pixelResolution must be an object, found {raw!r}")
        return None
    dims, unit = raw.get("dimensions"), raw.get("unit")
    numbers = isinstance(dims, list) and all(is_number(d) for d in dims)
    if not numbers:
        out.error(path, rule, f"{where}.pixelResolution.dimensions must be a list of numbers, found {dims!r}")
    if not isinstance(unit, str):
        out.error(path, rule, f"{where}.pixelResolution.unit must be a string, found {unit!r}")
        return None
    return PixelResolution(tuple(float(d) for d in dims), unit) if numbers and isinstance(dims, list) else None


def _transform(raw: Any, where: str, path: str, out: Findings) -> STTransform | None:
    rule = f"{COSEM}.transform"
    if raw is None:
        out.error(path, rule, f"{where} has no 'transform' (axes, units, translate, scale)")
        return None
    if not isinstance(raw, dict):
        out.error(path, rule, f"{where}.transform must be an object")
        return None
    ok = True
    for key, check, what in (
        ("axes", str_list, "a list of strings"),
        ("units", str_list, "a list of strings"),
        ("translate", lambda v: isinstance(v, list) and all(is_number(x) for x in v), "a list of numbers"),
        ("scale", lambda v: isinstance(v, list) and all(is_number(x) for x in v), "a list of numbers"),
    ):
        if key not in raw:
            out.error(path, rule, f"{where}.transform has no '{key}'")
            ok = False
        elif not check(raw[key]):
            out.error(path, rule, f"{where}.transform.{key} must be {what}, found {raw[key]!r}")
            ok = False
    order = raw.get("order", "C")
    if order is None:
        order = "C"  # the convention reads a missing or null order as C
    if order not in ("C", "F"):
        out.error(path, rule, f"{where}.transform.order is {order!r}; it must be 'C' or 'F'")
        ok = False
    if not ok:
        return None
    lengths = {k: len(raw[k]) for k in ("axes", "units", "translate", "scale")}
    if len(set(lengths.values())) != 1:
        shown = ", ".join(f"{k} {n}" for k, n in lengths.items())
        out.error(path, rule, f"{where}.transform lists must have one entry per axis; lengths are {shown}")
        return None
    return STTransform(
        tuple(raw["axes"]),
        tuple(raw["units"]),
        tuple(float(v) for v in raw["translate"]),
        tuple(float(v) for v in raw["scale"]),
        order,
    )


def _ng_group_attrs(attrs: dict[str, Any], path: str, out: Findings) -> NgGroup:
    """Neuroglancer's multiscale group keys (which COSEM groups carry too)."""
    axes = attrs.get("axes")
    if not str_list(axes):
        out.error(path, f"{NG}.axes", f"'axes' must be a list of axis names (F order), found {axes!r}")
        axes = None
    units = attrs.get("units")
    if not str_list(units):
        out.error(path, f"{NG}.units", f"'units' must be a list of unit names (F order), found {units!r}")
        units = None
    elif axes is not None and len(units) != len(axes):
        out.error(path, f"{NG}.units", f"'units' has {len(units)} entries for {len(axes)} axes")
    scales = _ng_scales(attrs.get("scales"), axes, path, out)
    resolution = _pixel_resolution(attrs.get("pixelResolution"), "the group", f"{NG}.pixel_resolution", path, out)
    if resolution is not None and axes is not None and len(resolution.dimensions) != len(axes):
        out.error(
            path,
            f"{NG}.pixel_resolution",
            f"pixelResolution.dimensions has {len(resolution.dimensions)} entries for {len(axes)} axes",
        )
    if resolution is not None and units is not None:
        odd = sorted({u for u in units if u != resolution.unit})
        if odd:
            out.error(
                path,
                f"{NG}.units.consistent",
                f"every entry of 'units' must equal pixelResolution.unit {resolution.unit!r}; found {_quote(odd)}",
            )
    return NgGroup(tuple(axes) if axes is not None else None, scales, resolution)


def _quote(values: Sequence[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def _ng_scales(raw: Any, axes: list[str] | None, path: str, out: Findings) -> tuple[tuple[int, ...], ...] | None:
    rule = f"{NG}.scales"
    if raw is None:
        out.error(path, rule, "no 'scales' (the downsampling factors of each level, F order)")
        return None
    if (
        not isinstance(raw, list)
        or not raw
        or not all(isinstance(s, list) and all(is_int(f) and f > 0 for f in s) for s in raw)
    ):
        out.error(path, rule, f"'scales' must be a non-empty list of lists of positive integers, found {raw!r}")
        return None
    scales = tuple(tuple(s) for s in raw)
    if any(f != 1 for f in scales[0]):
        out.error(path, rule, f"the first entry of 'scales' must be all 1s, found {list(scales[0])}")
    if axes is not None:
        for i, s in enumerate(scales):
            if len(s) != len(axes):
                out.error(path, rule, f"scales[{i}] has {len(s)} factors for {len(axes)} axes")
    return scales


class CellmapChecker:
    """Checks CellMap groups and arrays and the members their metadata implies."""

    def __init__(self, reader: NodeReader, out: Findings, *, crosscheck: bool = False) -> None:
        self.reader = reader
        self.out = out
        self.ngff = NgffChecker(reader, out, crosscheck=crosscheck)

    def node(self, path: str) -> NodeMeta | None:
        return self.ngff.node(path)

    def _level_children(self, path: str) -> list[str]:
        names = [n for n in self.ngff.children(path) if _LEVEL.match(n)]
        return sorted(names, key=lambda n: int(n[1:]))

    def _array(self, path: str, what: str) -> NodeMeta | None:
        node = self.node(path)
        if node is None:
            self.ngff.absent(path, "cellmap.multiscale.array.missing", f"{what} has no array here")
            return None
        if node.kind != "array":
            self.out.error(path, "cellmap.multiscale.array.kind", f"{what} is a group, not an array")
            return None
        if node.shape is None:
            for problem in node.problems:
                self.out.error(path, "cellmap.array.metadata", problem)
        return node

    # neuroglancer_n5

    def neuroglancer_array(self, node: NodeMeta) -> PixelResolution | None:
        if node.kind != "array":
            self.out.error(node.path, f"{NG}.node.kind", "expected an array with a pixelResolution")
            return None
        resolution = _pixel_resolution(
            node.attrs.get("pixelResolution"), "the array", f"{NG}.pixel_resolution", node.path, self.out
        )
        if resolution is not None and node.shape is not None and len(resolution.dimensions) != len(node.shape):
            self.out.error(
                node.path,
                f"{NG}.pixel_resolution",
                f"pixelResolution.dimensions has {len(resolution.dimensions)} entries for a "
                f"{len(node.shape)}-dimensional array",
            )
        return resolution

    def neuroglancer_group(self, node: NodeMeta, *, cosem: bool = False) -> None:
        if node.kind != "group":
            self.out.error(node.path, f"{NG}.node.kind", "a Neuroglancer multiscale must be a group of s0, s1, ...")
            return
        meta = _ng_group_attrs(node.attrs, node.path, self.out)
        levels = [f"s{i}" for i in range(len(meta.scales))] if meta.scales else self._level_children(node.path)
        arrays: list[NodeMeta | None] = []
        for name in levels:
            array = self._array(join_key(node.path, name), f"level {name!r}")
            arrays.append(array)
            if array is None:
                continue
            if cosem:
                self.cosem_array(array)
            else:
                self.neuroglancer_array(array)
        self._ng_levels(node, meta, arrays)

    def _ng_levels(self, node: NodeMeta, meta: NgGroup, arrays: list[NodeMeta | None]) -> None:
        base = arrays[0] if arrays else None
        for i, array in enumerate(arrays):
            if array is None or array.shape is None:
                continue
            if meta.axes is not None and len(array.shape) != len(meta.axes):
                self.out.error(
                    array.path,
                    f"{NG}.level.ndim",
                    f"the array has {len(array.shape)} dimensions but the group lists {len(meta.axes)} axes",
                )
                continue
            if meta.scales is None or i >= len(meta.scales) or len(meta.scales[i]) != len(array.shape):
                continue
            factors = meta.scales[i][::-1]  # F order -> C order
            if base is not None and base.shape is not None and len(base.shape) == len(array.shape):
                expected = [(s // f, -(-s // f)) for s, f in zip(base.shape, factors, strict=True)]
                if any(not lo <= n <= hi for n, (lo, hi) in zip(array.shape, expected, strict=True)):
                    self.out.warn(
                        array.path,
                        f"{NG}.level.shape",
                        f"level s{i} has shape {list(array.shape)}, but s0 {list(base.shape)} downsampled by "
                        f"{list(factors)} gives {[lo if lo == hi else f'{lo}-{hi}' for lo, hi in expected]}",
                    )
            level_res = array.attrs.get("pixelResolution")
            if meta.resolution is not None and isinstance(level_res, dict):
                dims = level_res.get("dimensions")
                want = [r * f for r, f in zip(meta.resolution.dimensions, meta.scales[i], strict=False)]
                if isinstance(dims, list) and all(is_number(d) for d in dims) and not _close(dims, want):
                    self.out.warn(
                        array.path,
                        f"{NG}.level.resolution",
                        f"pixelResolution.dimensions {dims} should be the group's {list(meta.resolution.dimensions)} "
                        f"times scales[{i}] = {want}",
                    )

    # cosem

    def cosem_array(self, node: NodeMeta) -> STTransform | None:
        if node.kind != "array":
            self.out.error(node.path, f"{COSEM}.node.kind", "expected an array with a COSEM transform")
            return None
        transform = _transform(node.attrs.get("transform"), "the array", node.path, self.out)
        resolution = _pixel_resolution(
            node.attrs.get("pixelResolution"), "the array", f"{COSEM}.pixel_resolution", node.path, self.out
        )
        if transform is not None and node.shape is not None and len(transform.axes) != len(node.shape):
            self.out.error(
                node.path,
                f"{COSEM}.transform.ndim",
                f"transform describes {len(transform.axes)} axes but the array has {len(node.shape)} dimensions",
            )
        if transform is not None and resolution is not None:
            odd = sorted({u for u in transform.units if u != resolution.unit})
            if odd:
                self.out.error(
                    node.path,
                    f"{COSEM}.pixel_resolution.consistent",
                    f"pixelResolution.unit {resolution.unit!r} differs from transform.units {_quote(odd)}",
                )
            wanted = transform.f_order(transform.scale)
            if not _close(resolution.dimensions, wanted):
                self.out.error(
                    node.path,
                    f"{COSEM}.pixel_resolution.consistent",
                    f"pixelResolution.dimensions {list(resolution.dimensions)} must be transform.scale in F order "
                    f"({list(wanted)})",
                )
        return transform

    def cosem_group(self, node: NodeMeta) -> None:
        if node.kind != "group":
            self.out.error(node.path, f"{COSEM}.node.kind", "a COSEM multiscale must be a group of arrays")
            return
        meta = _ng_group_attrs(node.attrs, node.path, self.out)
        datasets = self._cosem_multiscales(node)
        listed = {path for path, _ in datasets}
        seen: dict[str, NodeMeta | None] = {}
        for ds_path, declared in datasets:
            array = self._array(join_key(node.path, ds_path), f"dataset {ds_path!r}")
            seen[ds_path] = array
            if array is None:
                continue
            actual = self.cosem_array(array)
            if declared is not None and actual is not None and actual != declared:
                self.out.error(
                    array.path,
                    f"{COSEM}.dataset.transform",
                    "the array's transform differs from the one the group's multiscales lists for it",
                )
            if declared is not None and meta.axes is not None and declared.f_order(declared.axes) != meta.axes:
                self.out.error(
                    array.path,
                    f"{COSEM}.axes.consistent",
                    f"transform axes {list(declared.axes)} (order {declared.order}) do not match the group's "
                    f"axes {list(meta.axes)} (F order)",
                )
        # Neuroglancer levels not listed in multiscales (or every s<N> child when the group says nothing).
        levels = [f"s{i}" for i in range(len(meta.scales))] if meta.scales else self._level_children(node.path)
        for name in levels:
            if name in listed:
                continue
            array = self._array(join_key(node.path, name), f"level {name!r}")
            seen[name] = array
            if array is not None:
                self.cosem_array(array)
        if meta.scales:
            self._ng_levels(node, meta, [seen.get(f"s{i}") for i in range(len(meta.scales))])

    def _cosem_multiscales(self, node: NodeMeta) -> list[tuple[str, STTransform | None]]:
        rule = f"{COSEM}.multiscales"
        raw = node.attrs.get("multiscales")
        if raw is None:
            self.out.error(node.path, rule, "no 'multiscales' (one entry listing each level's path and transform)")
            return []
        if not isinstance(raw, list) or len(raw) != 1 or not isinstance(raw[0], dict):
            self.out.error(node.path, rule, "'multiscales' must be a list holding exactly one object")
            return []
        entry = raw[0]
        if "name" in entry and entry["name"] is not None and not isinstance(entry["name"], str):
            self.out.error(node.path, rule, "multiscales[0].name must be a string or null")
        datasets = entry.get("datasets")
        if not isinstance(datasets, list) or not datasets:
            self.out.error(node.path, rule, "multiscales[0].datasets must be a non-empty list")
            return []
        found = []
        for k, item in enumerate(datasets):
            at = f"multiscales[0].datasets[{k}]"
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                self.out.error(node.path, rule, f"{at} must be an object with a string 'path'")
                continue
            found.append((item["path"], _transform(item.get("transform"), at, node.path, self.out)))
        return found

    # annotation

    def annotation(self, node: NodeMeta) -> None:
        attrs = annotation_attrs(node.attrs)
        if attrs is None:
            self.out.error(node.path, f"{ANNOTATION}.missing", "no 'cellmap': {'annotation': ...} metadata")
        elif node.kind == "array":
            self.annotation_array(node, None)
        elif "class_names" in attrs:
            self.crop(node)
        else:
            self.annotation_class(node, None)

    def crop(self, node: NodeMeta) -> None:
        rule = f"{ANNOTATION}.crop"
        attrs = annotation_attrs(node.attrs) or {}
        version = attrs.get("version", ANNOTATION_VERSION)
        if version != ANNOTATION_VERSION:
            self.out.error(
                node.path, f"{rule}.version", f"crop version is {version!r}; this convention is {ANNOTATION_VERSION!r}"
            )
        absent = [key for key in _CROP_FIELDS if key not in attrs]
        if absent:
            self.out.error(node.path, f"{rule}.fields", f"the crop metadata lacks {_quote(absent)} (null is allowed)")
        for key in ("name", "description", "protocol_uri"):
            if attrs.get(key) is not None and not isinstance(attrs[key], str):
                self.out.error(node.path, f"{rule}.fields", f"{key} must be a string or null")
        for key in ("created_by", "created_with"):
            if key in attrs and not str_list(attrs[key]):
                self.out.error(node.path, f"{rule}.fields", f"{key} must be a list of strings (empty when unknown)")
        for key in ("start_date", "end_date"):
            if attrs.get(key) is not None and not _iso_date(attrs[key]):
                self.out.error(node.path, f"{rule}.dates", f"{key} {attrs[key]!r} is not a YYYY-MM-DD date")
        if attrs.get("duration_days") is not None and not is_int(attrs["duration_days"]):
            self.out.error(node.path, f"{rule}.fields", "duration_days must be an integer or null")
        names = attrs.get("class_names")
        if not str_list(names):
            if "class_names" in attrs:
                self.out.error(node.path, f"{rule}.class_names", "class_names must be a list of class names")
            return
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            self.out.error(node.path, f"{rule}.class_names", f"class_names repeats {_quote(repeated)}")
        for name in dict.fromkeys(names):
            target = join_key(node.path, name)
            member = self.node(target)
            if member is None:
                self.ngff.absent(target, f"{ANNOTATION}.class.missing", f"class {name!r} is listed but has no group")
            elif member.kind != "group":
                self.out.error(target, f"{ANNOTATION}.class.kind", f"class {name!r} must be a group of arrays")
            else:
                self.annotation_class(member, name)

    def annotation_class(self, node: NodeMeta, listed_as: str | None) -> None:
        rule = f"{ANNOTATION}.class"
        attrs = annotation_attrs(node.attrs)
        class_name = None
        annotation_type = None
        if attrs is None:
            self.out.error(node.path, f"{rule}.attributes", "the class group has no 'cellmap': {'annotation': ...}")
        else:
            class_name = attrs.get("class_name")
            if not isinstance(class_name, str):
                self.out.error(node.path, f"{rule}.attributes", "class_name must be a string")
                class_name = None
            elif listed_as is not None and class_name != listed_as:
                self.out.warn(
                    node.path,
                    f"{rule}.name",
                    f"the group is listed as {listed_as!r} but its class_name is {class_name!r}",
                )
            annotation_type = _annotation_type(attrs.get("annotation_type"), node.path, self.out)
            extra = sorted(set(attrs) - {"class_name", "annotation_type"})
            if extra:
                self.out.error(node.path, f"{rule}.attributes", f"unexpected annotation keys {_quote(extra)}")
        arrays = self._class_arrays(node)
        for array in arrays:
            self.annotation_array(array, (class_name, annotation_type))

    def _class_arrays(self, node: NodeMeta) -> list[NodeMeta]:
        """The class's multiscale levels: checked as an OME-NGFF image when it is one, as the seed prescribes."""
        if ngff_kind(node.attrs) == "image":
            self.ngff.image(node, None)
        else:
            self.out.warn(
                node.path,
                f"{ANNOTATION}.class.multiscales",
                "an annotation class should be an OME-NGFF multiscale image (no 'multiscales' found)",
            )
        arrays = []
        for name in self.ngff.children(node.path):
            child = self.node(join_key(node.path, name))
            if child is None:
                continue
            if child.kind == "array":
                arrays.append(child)
            elif name != "labels":
                self.out.error(
                    child.path, f"{ANNOTATION}.class.member", "members of an annotation class must be arrays"
                )
        return arrays

    def annotation_array(self, node: NodeMeta, group: tuple[str | None, dict[str, Any] | None] | None) -> None:
        rule = f"{ANNOTATION}.array"
        attrs = annotation_attrs(node.attrs)
        if attrs is None:
            self.out.error(node.path, f"{rule}.attributes", "the array has no 'cellmap': {'annotation': ...}")
            return
        class_name = attrs.get("class_name")
        if not isinstance(class_name, str):
            self.out.error(node.path, f"{rule}.attributes", "class_name must be a string")
        elif group is not None and group[0] is not None and class_name != group[0]:
            self.out.warn(
                node.path, f"{rule}.class_name", f"class_name {class_name!r} differs from its group's {group[0]!r}"
            )
        if "annotation_type" not in attrs:
            self.out.error(node.path, f"{rule}.attributes", "the array has no annotation_type")
            annotation_type = None
        else:
            annotation_type = _annotation_type(attrs["annotation_type"], node.path, self.out)
        if annotation_type is not None and group is not None and group[1] is not None and annotation_type != group[1]:
            self.out.warn(
                node.path, f"{rule}.annotation_type", "annotation_type differs from the one its class group declares"
            )
        if "complement_counts" not in attrs:
            self.out.error(node.path, f"{rule}.attributes", "the array has no complement_counts (null is allowed)")
        else:
            self._complement_counts(node, attrs["complement_counts"], annotation_type)
        if node.dtype is not None and not _integer_dtype(node.dtype):
            self.out.warn(
                node.path, f"{rule}.dtype", f"annotations are integer label values, but this array is {node.dtype}"
            )

    def _complement_counts(self, node: NodeMeta, counts: Any, annotation_type: dict[str, Any] | None) -> None:
        rule = f"{ANNOTATION}.array.complement_counts"
        if counts is None:
            return
        if not isinstance(counts, dict) or not all(is_int(v) and v >= 0 for v in counts.values()):
            self.out.error(node.path, rule, f"complement_counts must map possibilities to counts >= 0: {counts!r}")
            return
        if annotation_type is not None:
            semantic = annotation_type["type"] == "semantic_segmentation"
            allowed = set(annotation_type["encoding"]) if semantic else INSTANCE_KEYS
            odd = sorted(set(counts) - allowed)
            if odd:
                what = "keys of annotation_type.encoding" if semantic else "'unknown' and 'absent'"
                self.out.error(node.path, rule, f"complement_counts keys {_quote(odd)} must be among the {what}")
        if node.shape is not None and sum(counts.values()) > math.prod(node.shape):
            self.out.error(
                node.path,
                rule,
                f"complement_counts add up to {sum(counts.values())}, more than the array's "
                f"{math.prod(node.shape)} elements",
            )


def _iso_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _integer_dtype(dtype: str) -> bool:
    try:
        return np.dtype(dtype).kind in "iu"
    except TypeError:
        return False


def _annotation_type(raw: Any, path: str, out: Findings) -> dict[str, Any] | None:
    rule = f"{ANNOTATION}.annotation_type"
    if not isinstance(raw, dict):
        out.error(path, rule, f"annotation_type must be an object with 'type' and 'encoding', found {raw!r}")
        return None
    kind = raw.get("type")
    if kind not in ("semantic_segmentation", "instance_segmentation"):
        out.error(path, rule, f"annotation_type.type is {kind!r}; expected semantic_ or instance_segmentation")
        return None
    extra = sorted(set(raw) - {"type", "encoding"})
    if extra:
        out.error(path, rule, f"annotation_type has unexpected keys {_quote(extra)}")
    encoding = raw.get("encoding")
    allowed = SEMANTIC_KEYS if kind == "semantic_segmentation" else INSTANCE_KEYS
    if not isinstance(encoding, dict) or not all(is_int(v) for v in encoding.values()):
        out.error(path, rule, "annotation_type.encoding must map possibilities to integer values")
        return None
    odd = sorted(set(encoding) - allowed)
    if odd:
        out.error(path, rule, f"{kind} encoding keys must be among {sorted(allowed)}; found {_quote(odd)}")
        return None
    return {"type": kind, "encoding": dict(encoding)}


def check_cellmap(reader: NodeReader, node: NodeMeta, model: str, out: Findings, *, crosscheck: bool = False) -> None:
    """Check ``node`` against one CellMap model, descending into the members the model implies."""
    checker = CellmapChecker(reader, out, crosscheck=crosscheck)
    if model == COSEM:
        if node.kind == "group":
            checker.cosem_group(node)
        else:
            checker.cosem_array(node)
    elif model == NG:
        if node.kind == "group":
            # A COSEM group is also a Neuroglancer group; its levels then carry COSEM arrays.
            checker.neuroglancer_group(node, cosem=is_cosem_multiscales(node.attrs))
        else:
            checker.neuroglancer_array(node)
    elif model == ANNOTATION:
        checker.annotation(node)
    else:
        raise ValueError(f"not a CellMap model: {model!r}")
