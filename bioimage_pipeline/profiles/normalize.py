"""Canonical join keys (``dataset_id``, ``image_id``, ``plate_id``, ``well_id``, ``site_id``) from the many
names profile tables give them.

A column matches an alias case-insensitively, with or without a pandas merge suffix (``_x``/``_y``).
When both suffixed copies exist they are coalesced, and rows where they disagree are counted in a warning.
Values are normalised: wells to ``B03`` form, numeric sites without leading zeros or ``.0``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from bioimage_pipeline.profiles.columns import free_generated_names
from bioimage_pipeline.wells import normalize_well, row_label

KEY_COLUMNS = ("dataset_id", "image_id", "plate_id", "well_id", "site_id")
REQUIRED_KEYS = ("dataset_id", "image_id")
RECOMMENDED_KEYS = ("plate_id", "well_id", "site_id")
ROW_ID = "profile_row"
#: Columns the pipeline adds to profile rows (here and in ``joined_profiles``); a source column never keeps
#: one of these names, whatever its case.
GENERATED_COLUMNS = (ROW_ID, *KEY_COLUMNS, "profile_table", "image_matched")

#: Alias names per canonical key, most specific first (compared case-insensitively).
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "dataset_id": ("dataset_id", "Metadata_dataset_id", "Metadata_DatasetID", "Image_Metadata_dataset_id"),
    "image_id": ("image_id", "Metadata_image_id", "Image_Metadata_image_id"),
    "plate_id": (
        "plate_id",
        "Metadata_Plate",
        "Image_Metadata_Plate",
        "Metadata_PlateName",
        "Metadata_Barcode",
        "Image_Metadata_Barcode",
        "Plate",
    ),
    "well_id": (
        "well_id",
        "Metadata_Well",
        "Image_Metadata_Well",
        "Metadata_WellName",
        "Metadata_Well_Position",
        "Image_Metadata_Well_Position",
        "Well",
        "WELL LABEL",  # Molecular Devices IN Carta
    ),
    "site_id": (
        "site_id",
        "Metadata_Site",
        "Image_Metadata_Site",
        "Metadata_Field",
        "Image_Metadata_Field",
        "Metadata_FieldID",
        "Image_Metadata_FieldID",
        "Metadata_Fov",
        "Image_Metadata_Fov",
        "Site",
        "Field",
        "FOV",
    ),
}
_ROW_ALIASES = ("Metadata_Row", "Image_Metadata_Row", "Row")
_COL_ALIASES = (
    "Metadata_Col",
    "Metadata_Column",
    "Image_Metadata_Col",
    "Image_Metadata_Column",
    "Column",
    "Col",
)
_SUFFIX = re.compile(r"^(.*)_(x|y)$")


@dataclass
class Normalized:
    """A profile table with the canonical key columns first, and where each key came from."""

    data: pa.Table
    sources: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def merge_aliases(extra: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """Default aliases with user aliases tried first."""
    aliases = dict(DEFAULT_ALIASES)
    for key, names in (extra or {}).items():
        if key not in aliases:
            raise ValueError(
                f"unknown canonical key {key!r} in profile aliases (expected one of {', '.join(KEY_COLUMNS)})"
            )
        aliases[key] = tuple(names) + tuple(n for n in aliases[key] if n not in names)
    return aliases


def _find(columns: Sequence[str], names: Sequence[str]) -> list[str]:
    """Columns matching the first alias that matches anything (its _x/_y copies included)."""
    by_lower: dict[str, list[str]] = {}
    for c in columns:
        by_lower.setdefault(c.lower(), []).append(c)
        m = _SUFFIX.match(c)
        if m:
            by_lower.setdefault(m.group(1).lower(), []).append(c)
    for name in names:
        found = by_lower.get(name.lower())
        if found:
            return sorted(set(found), key=columns.index)
    return []


def _text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    if pa.types.is_floating(column.type):
        # 1.0 → "1": integer-valued floats come from CSV columns with missing values.
        as_int = pc.cast(column, pa.int64(), safe=False)
        exact = pc.equal(pc.cast(as_int, column.type), column)
        text = pc.if_else(exact, pc.cast(as_int, pa.string()), pc.cast(column, pa.string()))
    else:
        text = pc.cast(column, pa.string())
    text = pc.utf8_trim_whitespace(text)
    empty = pc.or_kleene(pc.equal(text, ""), pc.is_in(pc.utf8_lower(text), pa.array(["nan", "none", "null"])))
    return pc.if_else(empty, pa.scalar(None, pa.string()), text)


def normalize_site(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Numeric sites lose leading zeros (``"01"`` → ``"1"``); other values are kept as text."""
    text = _text(column)
    digits = pc.match_substring_regex(text, r"^\d+$")
    stripped = pc.utf8_ltrim(text, characters="0")
    stripped = pc.if_else(pc.equal(stripped, ""), pa.scalar("0"), stripped)
    return pc.if_else(digits, stripped, text)


def normalize_wells(column: pa.ChunkedArray) -> pa.ChunkedArray:
    text = _text(column)
    # Wells are few and repeat across rows: normalise the distinct values only.
    unique = pc.unique(text)
    mapped = pa.array([normalize_well(v) for v in unique.to_pylist()], pa.string())
    return pc.take(mapped, pc.index_in(text, unique))


def _coalesce(table: pa.Table, columns: list[str], key: str, warnings: list[str]) -> pa.ChunkedArray:
    values = [_text(table.column(c)) for c in columns]
    if len(values) > 1:
        first = values[0]
        for other, name in zip(values[1:], columns[1:], strict=True):
            both = pc.and_(pc.is_valid(first), pc.is_valid(other))
            differ = pc.sum(pc.and_(both, pc.not_equal(first, other))).as_py() or 0
            if differ:
                warnings.append(f"{key}: {columns[0]} and {name} disagree on {differ} rows; {columns[0]} used")
    return pc.coalesce(*values) if len(values) > 1 else values[0]


def normalize(table: pa.Table, aliases: Mapping[str, Sequence[str]] | None = None, where: str = "") -> Normalized:
    """Add the canonical key columns (text, null where unknown) and a ``profile_row`` id in front.

    A column named exactly like a canonical key is read as that key and replaced by its normalised value;
    any other column whose name a generated column would take (``profile_row``, ``Plate_ID``…) is kept
    under a ``_source`` name, with a warning naming ``where`` (the table's source)."""
    aliases = merge_aliases(aliases)
    out = Normalized(table)
    keys: dict[str, pa.ChunkedArray] = {}
    columns = [c for c in table.column_names if c not in KEY_COLUMNS or c in aliases]
    for key in KEY_COLUMNS:
        found = _find(columns, aliases[key])
        if not found:
            keys[key] = pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
            continue
        out.sources[key] = found
        value = _coalesce(table, found, key, out.warnings)
        if key == "well_id":
            value = normalize_wells(value)
        elif key == "site_id":
            value = normalize_site(value)
        keys[key] = value
    if "well_id" not in out.sources:
        rows, cols = _find(columns, _ROW_ALIASES), _find(columns, _COL_ALIASES)
        if rows and cols:
            out.sources["well_id"] = [rows[0], cols[0]]
            row_values = _text(table.column(rows[0])).to_pylist()
            col_values = _text(table.column(cols[0])).to_pylist()
            wells = [
                None if r is None or c is None else normalize_well(f"{row_label(r)}{c}")
                for r, c in zip(row_values, col_values, strict=True)
            ]
            keys["well_id"] = pa.chunked_array([pa.array(wells, pa.string())])
    rest = table.drop_columns([c for c in KEY_COLUMNS if c in table.column_names])
    rest = free_generated_names(rest, GENERATED_COLUMNS, where or "profile table", out.warnings)
    row_ids = pa.chunked_array([pa.array(range(table.num_rows), pa.int64())])
    data = pa.Table.from_arrays(
        [row_ids, *keys.values(), *rest.columns], names=[ROW_ID, *keys.keys(), *rest.column_names]
    )
    out.data = data
    return out


_IMAGE_REFERENCE = re.compile(r"^(Image_)?(FileName|URL|PathName)_", re.IGNORECASE)


def key_columns(columns: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """The columns :func:`normalize` and resolution read, in table order: every alias of a canonical key
    (``_x``/``_y`` copies too), plate row and column aliases, and image references (``FileName_*``,
    ``PathName_*``, ``URL_*``). Normalising these alone gives the same keys as normalising the whole table,
    so the other columns — the features — never need to be in memory at once."""
    merged = merge_aliases(aliases)
    wanted = {n.lower() for names in merged.values() for n in names}
    wanted |= {n.lower() for n in (*_ROW_ALIASES, *_COL_ALIASES, *KEY_COLUMNS)}
    out = []
    for c in columns:
        m = _SUFFIX.match(c)
        if c.lower() in wanted or (m and m.group(1).lower() in wanted) or _IMAGE_REFERENCE.match(c):
            out.append(c)
    return out


def output_columns(
    schema: pa.Schema, aliases: Mapping[str, Sequence[str]] | None = None, where: str = ""
) -> tuple[list[str], list[str], list[str]]:
    """(source columns kept beside the keys, their names in the normalised table, warnings about renames):
    what :func:`normalize` does to a table's columns, worked out from its schema alone."""
    warnings: list[str] = []
    empty = normalize(schema.empty_table(), aliases, where)
    warnings += [w for w in empty.warnings if w not in warnings]
    kept = [c for c in schema.names if c not in KEY_COLUMNS]
    return kept, empty.data.column_names[1 + len(KEY_COLUMNS) :], warnings


def file_name_columns(columns: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """(channel, FileName column, PathName column or None) for CellProfiler image references."""
    out = []
    lower = {c.lower(): c for c in columns}
    for c in columns:
        m = re.match(r"^(Image_)?(FileName|URL)_(.+)$", c)
        if not m:
            continue
        channel = m.group(3)
        prefix = m.group(1) or ""
        path_col = lower.get(f"{prefix}PathName_{channel}".lower()) if m.group(2) == "FileName" else None
        if m.group(2) == "URL" and lower.get(f"{prefix}FileName_{channel}".lower()):
            continue  # FileName_X is the same reference, with PathName_X beside it
        out.append((channel, c, path_col))
    return out
