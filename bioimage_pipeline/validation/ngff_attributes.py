"""OME-NGFF 0.4 and 0.5 rules on one group's attributes (no arrays, no children): what the suite tests.

Severities follow the specification: a MUST is an ``error``, a SHOULD a ``warning``. Where the prose and
the specification's own conformance suite disagree, the suite wins, and the rule says why in a comment.
Warnings about a recommended field being absent (the suite's ``strict_*`` schemas) carry rule ids ending
in ``.recommended``, so callers can tell "incomplete" apart from "questionable".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from bioimage_pipeline.jsonvalues import is_integral, is_number
from bioimage_pipeline.validation.detect import ngff_namespace
from bioimage_pipeline.validation.issues import Findings, Issue
from bioimage_pipeline.validation.ngff_models import ModelCrossCheck

SUPPORTED_VERSIONS = ("0.4", "0.5")
KINDS = ("image", "label", "plate", "well", "labels", "bioformats2raw", "series")

AXIS_TYPES = ("space", "time", "channel")
# The UDUNITS-2 names the specification lists (identical in 0.4 and 0.5).
SPACE_UNITS = frozenset(
    {
        "angstrom",
        "attometer",
        "centimeter",
        "decimeter",
        "exameter",
        "femtometer",
        "foot",
        "gigameter",
        "hectometer",
        "inch",
        "kilometer",
        "megameter",
        "meter",
        "micrometer",
        "mile",
        "millimeter",
        "nanometer",
        "parsec",
        "petameter",
        "picometer",
        "terameter",
        "yard",
        "yoctometer",
        "yottameter",
        "zeptometer",
        "zettameter",
    }
)
TIME_UNITS = frozenset(
    {
        "attosecond",
        "centisecond",
        "day",
        "decisecond",
        "exasecond",
        "femtosecond",
        "gigasecond",
        "hectosecond",
        "hour",
        "kilosecond",
        "megasecond",
        "microsecond",
        "millisecond",
        "minute",
        "nanosecond",
        "petasecond",
        "picosecond",
        "second",
        "terasecond",
        "yoctosecond",
        "yottasecond",
        "zeptosecond",
        "zettasecond",
    }
)
LABEL_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"})

ALNUM = re.compile(r"^[A-Za-z0-9]+$")
WELL_PATH = re.compile(r"^[A-Za-z0-9]+/[A-Za-z0-9]+$")
_HEX6 = re.compile(r"^[0-9A-Fa-f]{6}$")
_OLD_VERSIONS = ("0.1", "0.2", "0.3")
_SECTION = {
    "image": "multiscales",
    "label": "image-label",
    "plate": "plate",
    "well": "well",
    "labels": "labels",
    "bioformats2raw": "bioformats2raw.layout",
    "series": "series",
}


# --- small predicates --------------------------------------------------------------------------------


def _duplicates(values: list[Any]) -> list[Any]:
    """Values that occur more than once, compared as JSON compares them (objects regardless of key order)."""
    keys = [json.dumps(v, sort_keys=True, default=repr) for v in values]
    counts = Counter(keys)
    seen: set[str] = set()
    out = []
    for key, v in zip(keys, values, strict=True):
        if counts[key] > 1 and key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _quote(values: list[Any]) -> str:
    return ", ".join(repr(v) for v in values)


# --- version and namespace ---------------------------------------------------------------------------


def _section_versions(ngff: dict[str, Any], kind: str) -> list[tuple[str, Any]]:
    """Versions a 0.4-style document declares inside its sections, with where they were found."""
    if kind == "image":
        raw = ngff.get("multiscales")
        return [
            (f"multiscales[{i}]", ms["version"])
            for i, ms in enumerate(raw if isinstance(raw, list) else [])
            if isinstance(ms, dict) and "version" in ms
        ]
    key = _SECTION[kind]
    section = ngff.get(key)
    if kind in ("label", "plate", "well") and isinstance(section, dict) and "version" in section:
        return [(key, section["version"])]
    return []


_RECOMMENDED_VERSION_RULE = {
    "image": "ngff.multiscales.version.recommended",
    "label": "ngff.image_label.version.recommended",
    "plate": "ngff.plate.version.recommended",
    "well": "ngff.well.version.recommended",
}


def _resolve_version(
    attrs: dict[str, Any], kind: str, expected: str | None, path: str, out: Findings
) -> tuple[dict[str, Any], str | None]:
    """The NGFF dictionary and the version whose rules apply (None: a version this validator does not know,
    whose rules would only add noise). Version problems are reported."""
    before = len(out.issues)
    version: str | None
    if "ome" in attrs and not isinstance(attrs["ome"], dict):
        out.error(path, "ngff.version.namespace", f"'ome' must be an object, found {type(attrs['ome']).__name__}")
    ngff, namespaced = ngff_namespace(attrs)
    if namespaced:
        declared = ngff.get("version")
        if "version" not in ngff:
            out.error(path, "ngff.version.missing", "the 'ome' attributes have no 'version' (OME-Zarr 0.5 needs it)")
            version = "0.5"
        elif declared == "0.4":
            out.error(
                path,
                "ngff.version.namespace",
                "version 0.4 metadata belongs at the top level of the attributes, not under 'ome'",
            )
            version = "0.4"
        elif declared != "0.5":
            out.error(
                path,
                "ngff.version.unsupported",
                f"'ome.version' is {declared!r}; this validator knows OME-Zarr {' and '.join(SUPPORTED_VERSIONS)}",
            )
            return ngff, None
        else:
            version = "0.5"
        for where, inner in _section_versions(ngff, kind):
            if inner != version:
                out.error(
                    path, "ngff.version.consistent", f"{where}.version is {inner!r} but 'ome.version' is {version!r}"
                )
    else:
        version = "0.4"
        if expected == "0.5":
            out.error(
                path,
                "ngff.version.namespace",
                "OME-Zarr 0.5 metadata must sit under the 'ome' key of the attributes, with 'ome.version'",
            )
        declared_any = _section_versions(ngff, kind)
        for where, declared in declared_any:
            if declared == "0.4":
                continue
            if declared == "0.5":
                out.error(path, "ngff.version.namespace", f"{where}: version 0.5 metadata must sit under 'ome'")
            elif isinstance(declared, str) and declared in _OLD_VERSIONS:
                out.error(
                    path,
                    "ngff.version.unsupported",
                    f"{where}: version {declared} is older than this validator supports (0.4 and 0.5); "
                    "its other rules were not checked",
                )
                version = None
            else:
                out.error(path, "ngff.version.invalid", f"{where}: version {declared!r} is not an OME-NGFF version")
                version = None
        if not declared_any and kind in _RECOMMENDED_VERSION_RULE and _SECTION[kind] in ngff:
            out.warn(
                path,
                _RECOMMENDED_VERSION_RULE[kind],
                f"'{_SECTION[kind]}' declares no 'version'; it should (assuming 0.4)",
            )
    if expected is not None and version is not None and version != expected and len(out.issues) == before:
        out.error(
            path,
            "ngff.version.consistent",
            f"version {version} here but {expected} in the enclosing hierarchy; a hierarchy uses one version",
        )
    return ngff, version


# --- attribute rules, one function per section -------------------------------------------------------


def _check_axes(raw: Any, where: str, path: str, out: Findings) -> list[dict[str, Any]] | None:
    """Axis rules; returns the axes when they are a list (even with problems), so lengths can be checked."""
    if raw is None:
        out.error(path, "ngff.multiscales.axes.missing", f"{where} has no 'axes'")
        return None
    if not isinstance(raw, list):
        out.error(path, "ngff.multiscales.axes.type", f"{where}.axes must be a list, found {type(raw).__name__}")
        return None
    if not 2 <= len(raw) <= 5:
        out.error(path, "ngff.multiscales.axes.count", f"{where}.axes has {len(raw)} entries; an image has 2 to 5 axes")
    names: list[str] = []
    kinds: list[str | None] = []
    for j, axis in enumerate(raw):
        at = f"{where}.axes[{j}]"
        if not isinstance(axis, dict):
            out.error(path, "ngff.multiscales.axes.entry", f"{at} must be an object, found {axis!r}")
            kinds.append(None)
            continue
        name = axis.get("name")
        if not isinstance(name, str):
            problem = "has no 'name'" if name is None else f"has a 'name' that is not a string ({name!r})"
            out.error(path, "ngff.multiscales.axes.name", f"{at} {problem}")
        else:
            names.append(name)
        label = repr(name) if isinstance(name, str) else at
        kind = axis.get("type")
        if "type" not in axis or kind is None:
            out.warn(
                path,
                "ngff.multiscales.axes.type.recommended",
                f"axis {label} has no 'type'; it should be 'space', 'time' or 'channel'",
            )
            kind = None
        elif not isinstance(kind, str):
            out.error(path, "ngff.multiscales.axes.type.invalid", f"axis {label} has a non-string type {kind!r}")
            kind = None
        elif kind not in AXIS_TYPES:
            out.warn(
                path,
                "ngff.multiscales.axes.type.custom",
                f"axis {label} has the custom type {kind!r}; it should be 'space', 'time' or 'channel'",
            )
        kinds.append(kind)
        if "unit" in axis and axis["unit"] is not None:
            _check_unit(axis["unit"], kind, label, path, out)
    dupes = _duplicates(names)
    if dupes:
        out.error(path, "ngff.multiscales.axes.unique", f"{where}.axes names must be unique; repeated: {_quote(dupes)}")
    n_space = kinds.count("space")
    if not 2 <= n_space <= 3:
        out.error(
            path,
            "ngff.multiscales.axes.space_count",
            f"{where}.axes has {n_space} axes of type 'space'; an image has 2 or 3",
        )
    if kinds.count("time") > 1:
        out.error(path, "ngff.multiscales.axes.time_count", f"{where}.axes has more than one axis of type 'time'")
    others = [k for k in kinds if k not in ("space", "time")]
    if len(others) > 1:
        out.error(
            path,
            "ngff.multiscales.axes.channel_count",
            f"{where}.axes has {len(others)} channel, custom or untyped axes; at most one is allowed",
        )
    rank = [0 if k == "time" else 2 if k == "space" else 1 for k in kinds]
    if rank != sorted(rank):
        shown = [k or "untyped" for k in kinds]
        out.error(
            path,
            "ngff.multiscales.axes.order",
            f"{where}.axes must be ordered time, then channel or custom, then space; found {shown}",
        )
    return raw


def _check_unit(unit: Any, kind: str | None, label: str, path: str, out: Findings) -> None:
    if not isinstance(unit, str):
        out.error(path, "ngff.multiscales.axes.unit.invalid", f"axis {label} has a non-string unit {unit!r}")
        return
    if kind == "space":
        known, what = SPACE_UNITS, "space units (e.g. 'micrometer')"
    elif kind == "time":
        known, what = TIME_UNITS, "time units (e.g. 'second')"
    elif kind is None:
        known, what = SPACE_UNITS | TIME_UNITS, "space or time units (e.g. 'micrometer', 'second')"
    else:
        return  # channel and custom axes have no unit list
    if unit not in known:
        out.warn(
            path,
            "ngff.multiscales.axes.unit.unknown",
            f"axis {label} has the unit {unit!r}, which is not one of the UDUNITS-2 {what} the specification lists",
        )


def _check_transforms(raw: Any, where: str, ndim: int | None, path: str, out: Findings) -> list[float] | None:
    """Rules shared by dataset and multiscale-wide transformations; returns the scale vector when usable."""
    rule = "ngff.multiscales.transforms"
    if not isinstance(raw, list):
        out.error(path, f"{rule}.type", f"{where} must be a list of transformations, found {type(raw).__name__}")
        return None
    if not raw:
        out.error(path, f"{rule}.empty", f"{where} is empty; it must hold exactly one 'scale' transformation")
        return None
    kinds: list[str | None] = []
    scale: list[float] | None = None
    for k, item in enumerate(raw):
        at = f"{where}[{k}]"
        if not isinstance(item, dict) or "type" not in item:
            out.error(path, f"{rule}.entry", f"{at} must be an object with a 'type'")
            kinds.append(None)
            continue
        kind = item["type"]
        if kind not in ("scale", "translation"):
            out.error(path, f"{rule}.kind", f"{at} has type {kind!r}; only 'scale' and 'translation' are allowed here")
            kinds.append(None)
            continue
        kinds.append(kind)
        vector = item.get(kind)
        if vector is None:
            out.error(path, f"{rule}.vector", f"{at}: a {kind} transformation needs a '{kind}' list of numbers")
        elif not isinstance(vector, list) or not all(is_number(v) for v in vector):
            out.error(path, f"{rule}.values", f"{at}.{kind} must be a list of numbers, found {vector!r}")
        else:
            if ndim is not None and len(vector) != ndim:
                out.error(
                    path,
                    f"{rule}.length",
                    f"{at}.{kind} has {len(vector)} values but there are {ndim} axes; they must match",
                )
            if kind == "scale":
                scale = [float(v) for v in vector]
    n_scale, n_translation = kinds.count("scale"), kinds.count("translation")
    if n_scale != 1:
        out.error(
            path,
            f"{rule}.scale_count",
            f"{where} has {n_scale} 'scale' transformations; it must have exactly one",
        )
    if n_translation > 1:
        out.error(path, f"{rule}.translation_count", f"{where} has {n_translation} translations; at most one")
    if n_scale == 1 and n_translation == 1 and kinds.index("translation") < kinds.index("scale"):
        out.error(path, f"{rule}.order", f"{where}: the translation must come after the scale")
    return scale if n_scale == 1 else None


def _check_multiscales(ngff: dict[str, Any], version: str, path: str, out: Findings) -> None:
    raw = ngff.get("multiscales")
    if raw is None:
        out.error(path, "ngff.multiscales.missing", "no 'multiscales' metadata")
        return
    if not isinstance(raw, list):
        out.error(path, "ngff.multiscales.type", f"'multiscales' must be a list, found {type(raw).__name__}")
        return
    if not raw:
        out.error(path, "ngff.multiscales.empty", "'multiscales' is empty; it must describe at least one image")
    if _duplicates(raw):
        out.error(path, "ngff.multiscales.unique", "'multiscales' lists the same entry twice")
    for i, ms in enumerate(raw):
        where = f"multiscales[{i}]"
        if not isinstance(ms, dict):
            out.error(path, "ngff.multiscales.entry", f"{where} must be an object")
            continue
        axes = _check_axes(ms.get("axes"), where, path, out)
        ndim = len(axes) if axes is not None else None
        _check_datasets(ms.get("datasets"), where, ndim, path, out)
        if "coordinateTransformations" in ms:
            _check_transforms(ms["coordinateTransformations"], f"{where}.coordinateTransformations", ndim, path, out)
        if "name" not in ms:
            out.warn(path, "ngff.multiscales.name.recommended", f"{where} has no 'name'; it should")
        elif not isinstance(ms["name"], str):
            out.error(path, "ngff.multiscales.name.type", f"{where}.name must be a string, found {ms['name']!r}")
        if "type" not in ms:
            out.warn(path, "ngff.multiscales.type.recommended", f"{where} has no 'type' naming its downscaling method")
        if "metadata" not in ms:
            out.warn(
                path,
                "ngff.multiscales.metadata.recommended",
                f"{where} has no 'metadata' describing its downscaling method",
            )
        elif not isinstance(ms["metadata"], dict):
            out.warn(path, "ngff.multiscales.metadata.type", f"{where}.metadata should be an object")


def _check_datasets(raw: Any, where: str, ndim: int | None, path: str, out: Findings) -> None:
    if raw is None:
        out.error(path, "ngff.multiscales.datasets.missing", f"{where} has no 'datasets'")
        return
    if not isinstance(raw, list):
        out.error(path, "ngff.multiscales.datasets.type", f"{where}.datasets must be a list")
        return
    if not raw:
        out.error(path, "ngff.multiscales.datasets.empty", f"{where}.datasets is empty; it needs at least one level")
        return
    paths: list[str] = []
    scales: list[list[float] | None] = []
    for d, item in enumerate(raw):
        at = f"{where}.datasets[{d}]"
        if not isinstance(item, dict):
            out.error(path, "ngff.multiscales.datasets.entry", f"{at} must be an object")
            scales.append(None)
            continue
        ds_path = item.get("path")
        if ds_path is None:
            out.error(path, "ngff.multiscales.datasets.path", f"{at} has no 'path'")
        elif not isinstance(ds_path, str):
            out.error(path, "ngff.multiscales.datasets.path", f"{at}.path must be a string, found {ds_path!r}")
        else:
            paths.append(ds_path)
        if "coordinateTransformations" not in item:
            out.error(
                path,
                "ngff.multiscales.datasets.transforms.missing",
                f"{at} has no 'coordinateTransformations'; each level needs a scale",
            )
            scales.append(None)
        else:
            scales.append(
                _check_transforms(item["coordinateTransformations"], f"{at}.coordinateTransformations", ndim, path, out)
            )
    dupes = _duplicates(paths)
    if dupes:
        out.error(path, "ngff.multiscales.datasets.path.unique", f"{where}.datasets repeat the paths {_quote(dupes)}")
    for d in range(1, len(scales)):
        prev, cur = scales[d - 1], scales[d]
        if prev is None or cur is None or len(prev) != len(cur):
            continue
        finer = [j for j, (a, b) in enumerate(zip(prev, cur, strict=True)) if b < a]
        if finer:
            out.error(
                path,
                "ngff.multiscales.datasets.order",
                f"{where}.datasets must go from the highest resolution to the lowest, but level {d} has a "
                f"smaller scale than level {d - 1} along axis {finer[0]}",
            )


def _check_omero(ngff: dict[str, Any], path: str, out: Findings) -> None:
    if "omero" not in ngff:
        return
    omero = ngff["omero"]
    if not isinstance(omero, dict):
        out.error(path, "ngff.omero.type", f"'omero' must be an object, found {type(omero).__name__}")
        return
    channels = omero.get("channels")
    if channels is None:
        out.error(path, "ngff.omero.channels.missing", "'omero' has no 'channels' list")
        return
    if not isinstance(channels, list):
        out.error(path, "ngff.omero.channels.type", "'omero.channels' must be a list")
        return
    for k, ch in enumerate(channels):
        at = f"omero.channels[{k}]"
        if not isinstance(ch, dict):
            out.error(path, "ngff.omero.channels.entry", f"{at} must be an object")
            continue
        # The 0.5 schema stopped requiring color and window, but the 0.5 prose still says MUST.
        color = ch.get("color")
        if color is None:
            out.error(path, "ngff.omero.color.missing", f"{at} has no 'color' (six hexadecimal digits, RGB)")
        elif not isinstance(color, str) or not _HEX6.match(color):
            out.error(path, "ngff.omero.color.invalid", f"{at}.color is {color!r}; it must be six hexadecimal digits")
        window = ch.get("window")
        if window is None:
            out.error(path, "ngff.omero.window.missing", f"{at} has no 'window' (min, max, start, end)")
        elif not isinstance(window, dict):
            out.error(path, "ngff.omero.window.type", f"{at}.window must be an object")
        else:
            absent = [key for key in ("min", "max", "start", "end") if key not in window]
            if absent:
                out.error(path, "ngff.omero.window.fields", f"{at}.window lacks {_quote(absent)}")
            bad = [key for key in ("min", "max", "start", "end") if key in window and not is_number(window[key])]
            for key in bad:
                out.error(
                    path, "ngff.omero.window.values", f"{at}.window.{key} is {window[key]!r}; it must be a number"
                )
        for key, kind, name in (
            ("label", str, "a string"),
            ("family", str, "a string"),
            ("active", bool, "true/false"),
        ):
            if key in ch and not isinstance(ch[key], kind):
                out.error(path, f"ngff.omero.{key}.type", f"{at}.{key} must be {name}, found {ch[key]!r}")


def _check_label_values(raw: Any, key: str, path: str, out: Findings, *, rgba: bool) -> list[Any]:
    rule = f"ngff.image_label.{key}"
    if not isinstance(raw, list):
        out.error(path, f"{rule}.type", f"image-label.{key} must be a list")
        return []
    if not raw:
        out.error(path, f"{rule}.empty", f"image-label.{key} is empty; leave it out or list label values")
        return []
    values = []
    for k, item in enumerate(raw):
        at = f"image-label.{key}[{k}]"
        if not isinstance(item, dict):
            out.error(path, f"{rule}.entry", f"{at} must be an object")
            continue
        value = item.get("label-value")
        if value is None:
            out.error(path, f"{rule}.label_value", f"{at} has no 'label-value'")
        elif not is_integral(value):
            out.error(path, f"{rule}.label_value", f"{at}.label-value is {value!r}; it must be an integer")
        else:
            values.append(int(value))
        if rgba and "rgba" in item:
            color = item["rgba"]
            if not (
                isinstance(color, list)
                and len(color) == 4
                and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)
            ):
                out.error(path, f"{rule}.rgba", f"{at}.rgba is {color!r}; it must be four integers from 0 to 255")
    dupes = _duplicates(values)
    if dupes:
        out.error(path, f"{rule}.unique", f"image-label.{key} repeats the label values {_quote(dupes)}")
    return values


def _check_image_label(ngff: dict[str, Any], path: str, out: Findings) -> None:
    label = ngff.get("image-label")
    if label is None:
        out.error(path, "ngff.image_label.missing", "no 'image-label' metadata")
        return
    if not isinstance(label, dict):
        out.error(path, "ngff.image_label.type", "'image-label' must be an object")
        return
    if "colors" not in label:
        out.warn(path, "ngff.image_label.colors.recommended", "'image-label' has no 'colors'; it should")
    else:
        _check_label_values(label["colors"], "colors", path, out, rgba=True)
    if "properties" in label:
        _check_label_values(label["properties"], "properties", path, out, rgba=False)
    if "source" in label:
        source = label["source"]
        if not isinstance(source, dict):
            out.error(path, "ngff.image_label.source.type", "image-label.source must be an object")
        elif "image" in source and not isinstance(source["image"], str):
            out.error(path, "ngff.image_label.source.image", "image-label.source.image must be a string path")


def _check_names(plate: dict[str, Any], key: str, path: str, out: Findings) -> list[str | None] | None:
    """Row or column names by index (None where an entry has no usable name), or None without a list."""
    rule = f"ngff.plate.{key}"
    raw = plate.get(key)
    if raw is None:
        out.error(path, f"{rule}.missing", f"the plate has no '{key}' list")
        return None
    if not isinstance(raw, list):
        out.error(path, f"{rule}.type", f"plate.{key} must be a list")
        return None
    if not raw:
        out.error(path, f"{rule}.empty", f"plate.{key} is empty; every {key[:-1]} of the plate must be listed")
        return None
    names: list[str | None] = []
    for k, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            out.error(path, f"{rule}.name", f"plate.{key}[{k}] has no string 'name'")
            names.append(None)
            continue
        if not ALNUM.match(name):
            out.error(path, f"{rule}.name", f"plate.{key}[{k}].name {name!r} must contain only letters and digits")
        names.append(name)
    dupes = _duplicates([n for n in names if n is not None])
    if dupes:
        out.error(path, f"{rule}.unique", f"plate.{key} repeats {_quote(dupes)}")
    return names


def _check_plate(ngff: dict[str, Any], version: str, path: str, out: Findings) -> None:
    plate = ngff.get("plate")
    if plate is None:
        out.error(path, "ngff.plate.missing", "no 'plate' metadata")
        return
    if not isinstance(plate, dict):
        out.error(path, "ngff.plate.type", "'plate' must be an object")
        return
    rows = _check_names(plate, "rows", path, out)
    columns = _check_names(plate, "columns", path, out)
    _check_wells_in_plate(plate.get("wells"), rows, columns, path, out)
    _check_acquisitions(plate, path, out)
    if "field_count" in plate and not (is_integral(plate["field_count"]) and plate["field_count"] > 0):
        out.error(
            path, "ngff.plate.field_count.invalid", f"plate.field_count is {plate['field_count']!r}; it must be > 0"
        )
    # field_count is a SHOULD in the prose, yet the suite's strict_plate valid cases omit it: no warning.
    if "name" not in plate:
        out.warn(path, "ngff.plate.name.recommended", "the plate has no 'name'; it should")
    elif not isinstance(plate["name"], str):
        out.error(path, "ngff.plate.name.type", "plate.name must be a string")
    # 0.5 prose says the plate MUST carry 'version', but 0.5 moved versions to 'ome.version' and the suite's
    # valid 0.5 plates have none; 'ome.version' is accepted as the plate's version.


def _check_wells_in_plate(
    wells: Any, rows: list[str | None] | None, columns: list[str | None] | None, path: str, out: Findings
) -> None:
    if wells is None:
        out.error(path, "ngff.plate.wells.missing", "the plate has no 'wells' list")
        return
    if not isinstance(wells, list):
        out.error(path, "ngff.plate.wells.type", "plate.wells must be a list")
        return
    if not wells:
        out.error(path, "ngff.plate.wells.empty", "plate.wells is empty")
        return
    paths: list[str] = []
    for k, well in enumerate(wells):
        at = f"plate.wells[{k}]"
        if not isinstance(well, dict):
            out.error(path, "ngff.plate.wells.entry", f"{at} must be an object")
            continue
        indices: dict[str, int] = {}
        for key, names in (("rowIndex", rows), ("columnIndex", columns)):
            value = well.get(key)
            if value is None:
                out.error(path, "ngff.plate.wells.index.missing", f"{at} has no '{key}'")
            elif not is_integral(value) or value < 0:
                out.error(path, "ngff.plate.wells.index.type", f"{at}.{key} is {value!r}; it must be an integer >= 0")
            elif names is not None and value >= len(names):
                out.error(
                    path,
                    "ngff.plate.wells.index.range",
                    f"{at}.{key} {value} is past the end of the {len(names)} names",
                )
            else:
                indices[key] = int(value)
        well_path = well.get("path")
        if well_path is None:
            out.error(path, "ngff.plate.wells.path.missing", f"{at} has no 'path'")
            continue
        if not isinstance(well_path, str) or not WELL_PATH.match(well_path):
            out.error(
                path,
                "ngff.plate.wells.path.format",
                f"{at}.path {well_path!r} must be '<row>/<column>': two alphanumeric names and one '/'",
            )
            continue
        paths.append(well_path)
        if rows is None or columns is None:
            continue
        row, column = well_path.split("/")
        if row not in rows or column not in columns:
            swapped = row in columns and column in rows
            detail = (
                "it lists the column before the row"
                if swapped
                else (f"{row!r} is not a row name" if row not in rows else f"{column!r} is not a column name")
            )
            out.error(
                path,
                "ngff.plate.wells.path.names",
                f"{at}.path {well_path!r} must be '<row>/<column>' using the plate's names; {detail}",
            )
        elif (
            len(indices) == 2
            and rows[indices["rowIndex"]] is not None
            and columns[indices["columnIndex"]] is not None
            and (rows[indices["rowIndex"]] != row or columns[indices["columnIndex"]] != column)
        ):
            out.error(
                path,
                "ngff.plate.wells.index_mismatch",
                f"well {well_path!r}: rowIndex {indices['rowIndex']} ({rows[indices['rowIndex']]!r}) and "
                f"columnIndex {indices['columnIndex']} ({columns[indices['columnIndex']]!r}) must name the row "
                "and column of its path",
            )
    dupes = _duplicates(paths)
    if dupes:
        out.error(path, "ngff.plate.wells.unique", f"plate.wells lists {_quote(dupes)} more than once")


def _check_acquisitions(plate: dict[str, Any], path: str, out: Findings) -> None:
    if "acquisitions" not in plate:
        return
    raw = plate["acquisitions"]
    if not isinstance(raw, list):
        out.error(path, "ngff.plate.acquisitions.type", "plate.acquisitions must be a list")
        return
    ids = []
    for k, acq in enumerate(raw):
        at = f"plate.acquisitions[{k}]"
        if not isinstance(acq, dict):
            out.error(path, "ngff.plate.acquisitions.entry", f"{at} must be an object")
            continue
        if "id" not in acq:
            out.error(path, "ngff.plate.acquisitions.id.missing", f"{at} has no 'id'")
        elif not is_integral(acq["id"]) or acq["id"] < 0:
            out.error(
                path, "ngff.plate.acquisitions.id.invalid", f"{at}.id is {acq['id']!r}; it must be an integer >= 0"
            )
        else:
            ids.append(int(acq["id"]))
        if "maximumfieldcount" not in acq:
            out.warn(path, "ngff.plate.acquisitions.maximumfieldcount.recommended", f"{at} has no 'maximumfieldcount'")
        elif not is_integral(acq["maximumfieldcount"]) or acq["maximumfieldcount"] <= 0:
            out.error(
                path,
                "ngff.plate.acquisitions.maximumfieldcount.invalid",
                f"{at}.maximumfieldcount is {acq['maximumfieldcount']!r}; it must be an integer > 0",
            )
        if "name" not in acq:
            out.warn(path, "ngff.plate.acquisitions.name.recommended", f"{at} has no 'name'")
        elif not isinstance(acq["name"], str):
            out.error(path, "ngff.plate.acquisitions.name.type", f"{at}.name must be a string")
        if "description" in acq and not isinstance(acq["description"], str):
            out.error(path, "ngff.plate.acquisitions.description.type", f"{at}.description must be a string")
        for key in ("starttime", "endtime"):
            if key in acq and not (is_integral(acq[key]) and acq[key] >= 0):
                out.error(
                    path,
                    "ngff.plate.acquisitions.time.invalid",
                    f"{at}.{key} is {acq[key]!r}; it must be an integer epoch timestamp >= 0",
                )
    dupes = _duplicates(ids)
    if dupes:
        out.error(path, "ngff.plate.acquisitions.id.unique", f"acquisition ids {_quote(dupes)} are not unique")


def _check_well(ngff: dict[str, Any], version: str, path: str, out: Findings) -> None:
    well = ngff.get("well")
    if well is None:
        out.error(path, "ngff.well.missing", "no 'well' metadata")
        return
    if not isinstance(well, dict):
        out.error(path, "ngff.well.type", "'well' must be an object")
        return
    images = well.get("images")
    if images is None:
        out.error(path, "ngff.well.images.missing", "the well has no 'images' list")
        return
    if not isinstance(images, list):
        out.error(path, "ngff.well.images.type", "well.images must be a list")
        return
    if not images:
        out.error(path, "ngff.well.images.empty", "well.images is empty; a well group needs a field of view")
        return
    paths = []
    for k, image in enumerate(images):
        at = f"well.images[{k}]"
        if not isinstance(image, dict):
            out.error(path, "ngff.well.images.entry", f"{at} must be an object")
            continue
        image_path = image.get("path")
        if image_path is None:
            out.error(path, "ngff.well.images.path.missing", f"{at} has no 'path'")
        elif not isinstance(image_path, str) or not ALNUM.match(image_path):
            out.error(
                path, "ngff.well.images.path.format", f"{at}.path {image_path!r} must contain only letters and digits"
            )
        else:
            paths.append(image_path)
        if "acquisition" in image and not is_integral(image["acquisition"]):
            out.error(
                path,
                "ngff.well.images.acquisition.type",
                f"{at}.acquisition is {image['acquisition']!r}; it must be an integer acquisition id",
            )
    dupes = _duplicates(paths)
    if dupes:
        out.error(path, "ngff.well.images.unique", f"well.images repeats the paths {_quote(dupes)}")


def _check_labels_list(ngff: dict[str, Any], version: str, path: str, out: Findings) -> None:
    labels = ngff.get("labels")
    if labels is None:
        out.error(path, "ngff.labels.missing", "the labels group has no 'labels' list")
    elif not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        out.error(path, "ngff.labels.type", "'labels' must be a list of paths to label images")


def _check_bioformats2raw(ngff: dict[str, Any], version: str, path: str, out: Findings) -> None:
    layout = ngff.get("bioformats2raw.layout")
    if layout is None:
        out.error(path, "ngff.bioformats2raw.layout", "no 'bioformats2raw.layout' key")
    elif layout != 3 or isinstance(layout, bool):
        out.error(path, "ngff.bioformats2raw.layout", f"'bioformats2raw.layout' is {layout!r}; it must be 3")


def _check_series(ngff: dict[str, Any], version: str, path: str, out: Findings) -> None:
    series = ngff.get("series")
    if series is None:
        out.error(path, "ngff.bioformats2raw.series.missing", "the OME group has no 'series' list")
    elif not isinstance(series, list) or not all(isinstance(s, str) for s in series):
        out.error(path, "ngff.bioformats2raw.series.type", "'series' must be a list of image group paths")


def _check_image(ngff: dict[str, Any], version: str, path: str, out: Findings) -> None:
    _check_multiscales(ngff, version, path, out)
    _check_omero(ngff, path, out)


def _check_label(ngff: dict[str, Any], version: str, path: str, out: Findings) -> None:
    _check_image_label(ngff, path, out)


_RULES = {
    "image": _check_image,
    "label": _check_label,
    "plate": _check_plate,
    "well": _check_well,
    "labels": _check_labels_list,
    "bioformats2raw": _check_bioformats2raw,
    "series": _check_series,
}


def attribute_findings(
    attrs: dict[str, Any],
    kind: str,
    out: Findings,
    *,
    version: str | None = None,
    path: str = "",
    crosscheck: ModelCrossCheck | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Check one group's attributes as ``kind``; returns the NGFF dictionary and the version it was read as
    (None when it declares a version this validator does not know: then nothing else was checked)."""
    if kind not in _RULES:
        raise ValueError(f"unknown OME-NGFF attribute kind {kind!r}; expected one of {', '.join(KINDS)}")
    before = len(out.issues)
    ngff, resolved = _resolve_version(attrs, kind, version, path, out)
    if resolved is None:
        return ngff, None
    _RULES[kind](ngff, resolved, path, out)
    ours_failed = any(i.severity == "error" for i in out.issues[before:])
    if crosscheck is not None and not ours_failed:
        # ome-zarr-models as a second opinion: it only speaks when our own rules found nothing wrong.
        out.extend(crosscheck.issues(ngff, kind, resolved, path))
    return ngff, resolved


def check_attributes(
    attrs: dict[str, Any], kind: str, *, version: str | None = None, path: str = "", crosscheck: bool = True
) -> list[Issue]:
    """Issues of one attributes document read as ``kind`` (see :data:`KINDS`), without looking at arrays.

    ``attrs`` is the whole attributes object (``.zattrs`` for 0.4, the ``attributes`` of ``zarr.json`` for
    0.5); ``version`` is the version the enclosing hierarchy uses, when known.
    """
    out = Findings()
    models = ModelCrossCheck() if crosscheck else None
    attribute_findings(attrs, kind, out, version=version, path=path, crosscheck=models)
    return out.issues
