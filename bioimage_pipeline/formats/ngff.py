"""OME-NGFF 0.1–0.5 metadata, read from group attributes into small typed records.

Pure functions over the attribute dictionaries: no I/O, so the scanner and the validator share them.
Versions 0.1–0.4 keep the keys at the top of the attributes; 0.5 nests them under ``"ome"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: NGFF 0.1/0.2 had no axes metadata: the arrays are always 5-D in this order.
IMPLICIT_AXES = ("t", "c", "z", "y", "x")

_SPATIAL = {"x", "y", "z"}


def ngff_attrs(attrs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The NGFF part of a group's attributes and the version it declares (``ome.version`` for 0.5)."""
    ome = attrs.get("ome")
    if isinstance(ome, dict) and (
        "multiscales" in ome
        or "plate" in ome
        or "well" in ome
        or "version" in ome
        or "labels" in ome
        or "image-label" in ome
        or "bioformats2raw.layout" in ome
    ):
        return ome, _str(ome.get("version"))
    return attrs, None


@dataclass(frozen=True)
class Axis:
    name: str
    type: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Dataset:
    path: str
    scale: list[float] | None = None
    translation: list[float] | None = None


@dataclass(frozen=True)
class Multiscale:
    version: str | None
    name: str | None
    #: Empty when a version that requires axes (0.3+) declares none.
    axes: list[Axis]
    datasets: list[Dataset]
    #: False when the axes are not in the metadata (implicit t, c, z, y, x of 0.1/0.2, or missing).
    axes_declared: bool = True


@dataclass(frozen=True)
class WellRef:
    path: str
    row: str
    column: str


@dataclass(frozen=True)
class Plate:
    version: str | None
    name: str | None
    wells: list[WellRef]
    field_count: int | None = None


@dataclass(frozen=True)
class Well:
    version: str | None
    image_paths: list[str] = field(default_factory=list)


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


#: Versions whose multiscales have no ``axes``: the arrays are 5-D, ``t, c, z, y, x``.
IMPLICIT_AXES_VERSIONS = frozenset({"0.1", "0.2"})


def parse_axes(raw: Any, version: str | None) -> tuple[list[Axis], bool]:
    """Axes as records; ``declared`` is False when they are not in the metadata.

    NGFF 0.1/0.2 (or no version at all) have implicit ``t, c, z, y, x`` axes. From 0.3 on the axes must be
    declared: when they are missing, no axes are returned (an empty list) rather than guessed.
    """
    if raw is None:
        if version is None or version in IMPLICIT_AXES_VERSIONS:
            return [Axis(n, "channel" if n == "c" else "time" if n == "t" else "space") for n in IMPLICIT_AXES], False
        return [], False
    if not isinstance(raw, list):
        raise ValueError(f"'axes' is not a list: {raw!r}")
    axes = []
    for item in raw:
        if isinstance(item, str):  # NGFF 0.3: a list of names
            lower = item.lower()
            kind = "space" if lower in _SPATIAL else "time" if lower == "t" else "channel" if lower == "c" else None
            axes.append(Axis(item, kind))
        elif isinstance(item, dict):
            axes.append(Axis(str(item.get("name", "")), _str(item.get("type")), _str(item.get("unit"))))
        else:
            raise ValueError(f"axis entry {item!r} is neither a name nor an object")
    return axes, True


def _coordinate_system_axes(ms: dict[str, Any]) -> Any:
    """NGFF 0.6 moves the axes into named ``coordinateSystems``: those the datasets' transforms map to."""
    systems = ms.get("coordinateSystems")
    if not isinstance(systems, list) or not systems:
        return None
    wanted = None
    for ds in ms.get("datasets") or []:
        transforms = ds.get("coordinateTransformations") if isinstance(ds, dict) else None
        if isinstance(transforms, list) and transforms and isinstance(transforms[-1], dict):
            wanted = transforms[-1].get("output")
            break
    for system in systems:
        if isinstance(system, dict) and (wanted is None or system.get("name") == wanted):
            return system.get("axes")
    return None


def _numbers(value: Any, what: str) -> list[float]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    ):
        raise ValueError(f"{what} is not a list of numbers: {value!r}")
    return [float(v) for v in value]


def _transforms(raw: Any, where: str) -> tuple[list[float] | None, list[float] | None]:
    """Scale and translation of a list of transforms applied in order (``x' = x * scale + translation``).

    NGFF 0.4 allows one scale optionally followed by one translation; other sequences (two scales, a
    translation before a scale) are composed in list order, as n5-universe reads them. ``identity`` is a
    no-op; other types (affine, path-based) are not interpreted. Either result is None when the list has
    no transform of that kind.
    """
    if raw is None:
        return None, None
    if not isinstance(raw, list):
        raise ValueError(f"{where} coordinateTransformations is not a list")
    scale: list[float] | None = None
    translation: list[float] | None = None
    for t in raw:
        if not isinstance(t, dict):
            raise ValueError(f"{where} has a coordinate transformation that is not an object: {t!r}")
        kind = t.get("type")
        if kind == "scale" and "scale" in t:
            values = _numbers(t["scale"], f"the scale of {where}")
            if scale is not None and len(scale) != len(values):
                raise ValueError(f"{where} has scales of different lengths")
            if translation is not None and len(translation) != len(values):
                raise ValueError(f"{where} has a scale and a translation of different lengths")
            scale = values if scale is None else [a * b for a, b in zip(scale, values, strict=True)]
            if translation is not None:
                translation = [a * b for a, b in zip(translation, values, strict=True)]
        elif kind == "translation" and "translation" in t:
            values = _numbers(t["translation"], f"the translation of {where}")
            n = len(translation) if translation is not None else len(scale) if scale is not None else len(values)
            if n != len(values):
                raise ValueError(f"{where} has transformations of different lengths")
            translation = values if translation is None else [a + b for a, b in zip(translation, values, strict=True)]
    return scale, translation


def _compose(
    inner: tuple[list[float] | None, list[float] | None],
    outer: tuple[list[float] | None, list[float] | None],
) -> tuple[list[float] | None, list[float] | None]:
    """Dataset transforms followed by the multiscale-wide ones (NGFF 0.4+)."""
    s_in, t_in = inner
    s_out, t_out = outer
    if s_out is None and t_out is None:
        return s_in, t_in
    lengths = {len(v) for v in (s_in, t_in, s_out, t_out) if v is not None}
    if len(lengths) != 1:
        raise ValueError("the dataset and multiscale coordinateTransformations have different lengths")
    ndim = lengths.pop()
    ones, zeros = [1.0] * ndim, [0.0] * ndim
    s_i, t_i = s_in or ones, t_in or zeros
    s_o, t_o = s_out or ones, t_out or zeros
    scale = [a * b for a, b in zip(s_i, s_o, strict=True)] if (s_in is not None or s_out is not None) else None
    translation = [a * so + to for a, so, to in zip(t_i, s_o, t_o, strict=True)]
    return scale, translation if (t_in is not None or t_out is not None) else None


def parse_multiscales(attrs: dict[str, Any]) -> list[Multiscale]:
    """Every multiscale image declared by a group (usually one)."""
    ngff, ome_version = ngff_attrs(attrs)
    raw = ngff.get("multiscales")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("'multiscales' is not a list")
    out = []
    for ms in raw:
        if not isinstance(ms, dict):
            raise ValueError("a 'multiscales' entry is not an object")
        version = ome_version or _str(ms.get("version"))
        raw_axes = ms.get("axes")
        if raw_axes is None:
            raw_axes = _coordinate_system_axes(ms)
        axes, declared = parse_axes(raw_axes, version)
        outer = _transforms(ms.get("coordinateTransformations"), "the multiscale")
        raw_datasets = ms.get("datasets")
        if raw_datasets is not None and not isinstance(raw_datasets, list):
            raise ValueError("'datasets' is not a list")
        datasets = []
        for ds in raw_datasets or []:
            if not isinstance(ds, dict) or "path" not in ds:
                raise ValueError("a multiscales dataset has no 'path'")
            where = f"dataset {ds['path']!r}"
            scale, translation = _compose(_transforms(ds.get("coordinateTransformations"), where), outer)
            datasets.append(Dataset(str(ds["path"]), scale, translation))
        if not datasets:
            raise ValueError("a multiscales entry lists no datasets")
        out.append(Multiscale(version, _str(ms.get("name")), axes, datasets, declared))
    return out


def parse_plate(attrs: dict[str, Any]) -> Plate | None:
    ngff, ome_version = ngff_attrs(attrs)
    raw = ngff.get("plate")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("'plate' is not an object")
    rows = [str(r.get("name")) for r in raw.get("rows") or [] if isinstance(r, dict)]
    cols = [str(c.get("name")) for c in raw.get("columns") or [] if isinstance(c, dict)]
    wells = []
    for w in raw.get("wells") or []:
        if not isinstance(w, dict) or "path" not in w:
            raise ValueError("a plate well has no 'path'")
        path = str(w["path"])
        parts = path.split("/")
        # The path is where the well's data is; the indices only point into rows/columns. When the path
        # names a declared row and column, it wins (some writers get the indices wrong); the indices are
        # the fallback for paths that are not <row>/<column> (NGFF 0.1-0.3 plates, odd layouts).
        if len(parts) == 2 and parts[0] in rows and parts[1] in cols:
            row, col = parts
        else:
            row_index, col_index = w.get("rowIndex"), w.get("columnIndex")
            row = rows[row_index] if isinstance(row_index, int) and 0 <= row_index < len(rows) else parts[0]
            col = cols[col_index] if isinstance(col_index, int) and 0 <= col_index < len(cols) else parts[-1]
        wells.append(WellRef(path, row, col))
    field_count = raw.get("field_count")
    return Plate(
        ome_version or _str(raw.get("version")),
        _str(raw.get("name")),
        wells,
        field_count if isinstance(field_count, int) else None,
    )


def parse_well(attrs: dict[str, Any]) -> Well | None:
    ngff, ome_version = ngff_attrs(attrs)
    raw = ngff.get("well")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("'well' is not an object")
    paths = []
    for img in raw.get("images") or []:
        if not isinstance(img, dict) or "path" not in img:
            raise ValueError("a well image has no 'path'")
        paths.append(str(img["path"]))
    return Well(ome_version or _str(raw.get("version")), paths)


def channel_names(attrs: dict[str, Any]) -> list[str] | None:
    ngff, _ = ngff_attrs(attrs)
    omero = ngff.get("omero") if "omero" in ngff else attrs.get("omero")
    if not isinstance(omero, dict) or not isinstance(omero.get("channels"), list):
        return None
    names = []
    for i, ch in enumerate(omero["channels"]):
        label = ch.get("label") if isinstance(ch, dict) else None
        names.append(str(label) if label not in (None, "") else f"Channel {i}")
    return names


def label_names(attrs: dict[str, Any]) -> list[str]:
    ngff, _ = ngff_attrs(attrs)
    raw = ngff.get("labels")
    return [str(x) for x in raw] if isinstance(raw, list) else []


def is_label_image(attrs: dict[str, Any]) -> bool:
    ngff, _ = ngff_attrs(attrs)
    return "image-label" in ngff


def bioformats2raw_layout(attrs: dict[str, Any]) -> int | None:
    ngff, _ = ngff_attrs(attrs)
    value = ngff.get("bioformats2raw.layout", attrs.get("bioformats2raw.layout"))
    return value if isinstance(value, int) else None


def series_paths(attrs: dict[str, Any] | None) -> list[str] | None:
    """The ``series`` list of a bioformats2raw ``OME`` group, when given."""
    if not attrs:
        return None
    ngff, _ = ngff_attrs(attrs)
    raw = ngff.get("series", attrs.get("series"))
    return [str(s) for s in raw] if isinstance(raw, list) else None
