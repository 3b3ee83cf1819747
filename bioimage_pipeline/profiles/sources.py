"""Profile sources under the profiles root, and readers that turn each into profile tables.

A source is a CSV or Parquet file, a CellProfiler SQLite database, or a CellProfiler ExportToSpreadsheet
folder (``Image.csv`` plus one CSV per compartment, possibly one folder per site). Every source yields one
table per biological object: image-level keys (``Metadata_*``, ``FileName_*``, ``PathName_*``) are merged
into each object table through ``ImageNumber`` so that its rows can be linked to images on their own.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bioimage_pipeline.errors import ProfileError
from bioimage_pipeline.profiles.columns import distinct_columns
from bioimage_pipeline.sql import quote_identifier

PROFILE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".sqlite", ".sqlite3", ".db")
QC_FOLDERS = ("quality_control", "qc")
#: CellProfiler tables that are not profiles (experiment-wide key/value records).
_NOT_PROFILES = {"experiment", "per_experiment", "experiment_properties", "sqlite_sequence", "properties"}
_IMAGE_KEY = re.compile(r"^(Image_)?(Metadata_|FileName_|PathName_|URL_|ObjectsFileName_|ObjectsPathName_)")
_LINK_COLUMNS = ("ImageNumber", "TableNumber")


@dataclass(frozen=True)
class ProfileSource:
    path: Path
    kind: str  # "csv", "parquet", "sqlite", "cellprofiler_csv"
    name: str  # slug of the path relative to the profiles root
    role: str  # "profiles" or "quality_control"
    fingerprint: str


@dataclass
class ProfileTable:
    """One profile table, read as is (before normalisation)."""

    name: str
    source: str
    role: str
    data: pa.Table
    compartment: str | None = None
    profile_level: str = "single_cell"
    warnings: list[str] = field(default_factory=list)


def slug(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^0-9a-zA-Z]+", "_", text)).strip("_").lower() or "profiles"


def _strip_suffix(name: str) -> str:
    for suffix in PROFILE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _file_kind(path: Path) -> str:
    lower = path.name.lower()
    if lower.endswith((".sqlite", ".sqlite3", ".db")):
        return "sqlite"
    return "parquet" if lower.endswith((".parquet", ".pq")) else "csv"


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256(str(path.absolute()).encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        st = f.stat()
        digest.update(f"{f.relative_to(path.parent)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def _is_cellprofiler_folder(path: Path) -> bool:
    return any(p.name.lower() == "image.csv" for p in path.iterdir() if p.is_file())


def _has_site_folders(path: Path) -> bool:
    """One CellProfiler export split into per-site folders (cytominer-database layout): at least two
    subfolders, every one a CellProfiler folder, and no profile files beside them."""
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    subdirs = [p for p in entries if p.is_dir()]
    loose = [p for p in entries if p.is_file() and p.name.lower().endswith(PROFILE_SUFFIXES)]
    return len(subdirs) >= 2 and not loose and all(_is_cellprofiler_folder(d) for d in subdirs)


def discover_profile_sources(root: Path) -> list[ProfileSource]:
    """Every profile source under ``root`` (hidden entries skipped), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        return []
    sources: list[ProfileSource] = []

    def role_of(path: Path) -> str:
        parts = {p.lower() for p in path.relative_to(root).parts[:-1]}
        return "quality_control" if parts & set(QC_FOLDERS) else "profiles"

    def visit(directory: Path) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue
            rel = entry.relative_to(root).as_posix()
            if entry.is_dir():
                if _is_cellprofiler_folder(entry) or _has_site_folders(entry):
                    sources.append(
                        ProfileSource(entry, "cellprofiler_csv", slug(rel), role_of(entry), _fingerprint(entry))
                    )
                else:
                    visit(entry)
            elif entry.name.lower().endswith(PROFILE_SUFFIXES):
                sources.append(
                    ProfileSource(
                        entry, _file_kind(entry), slug(_strip_suffix(rel)), role_of(entry), _fingerprint(entry)
                    )
                )

    visit(root)
    return sorted(sources, key=lambda s: s.name)


def sources_for_path(path: Path) -> list[ProfileSource]:
    """The profile sources a command-line path stands for: a file, a CellProfiler folder (possibly split
    per site), or a folder of such sources."""
    path = Path(path).absolute()
    if path.is_dir() and not (_is_cellprofiler_folder(path) or _has_site_folders(path)):
        return discover_profile_sources(path)
    return [source_for_path(path)]


def source_for_path(path: Path, root: Path | None = None) -> ProfileSource:
    """A profile source for a path given on the command line."""
    path = Path(path).absolute()
    if not path.exists():
        raise ProfileError(path, "does not exist")
    name = slug(_strip_suffix(path.relative_to(root).as_posix() if root else path.name))
    if path.is_dir():
        if not (_is_cellprofiler_folder(path) or _has_site_folders(path)):
            raise ProfileError(path, "folder holds no CellProfiler Image.csv (or per-site folders with one)")
        return ProfileSource(path, "cellprofiler_csv", name, "profiles", _fingerprint(path))
    lower = path.name.lower()
    if not lower.endswith(PROFILE_SUFFIXES):
        raise ProfileError(path, "not a profile table (expected .csv, .tsv, .parquet or CellProfiler .sqlite)")
    return ProfileSource(path, _file_kind(path), name, "profiles", _fingerprint(path))


# --- readers -----------------------------------------------------------------------------------------


def read_csv(path: Path, warnings: list[str]) -> pa.Table | None:
    """A CSV/TSV as Arrow; None (not an error) for an empty or header-only file. Column names are made
    distinct (see :func:`~bioimage_pipeline.profiles.columns.distinct_columns`), with ``warnings``."""
    if path.stat().st_size == 0:
        return None
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            # Identifiers such as plate "001" and well "B03" must stay text.
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return None
        raise ProfileError(path, f"not a readable CSV ({exc})") from exc
    if not table.num_rows:
        return None
    return _keep_identifier_text(distinct_columns(table, str(path), warnings))


def _keep_identifier_text(table: pa.Table) -> pa.Table:
    """CSV type inference turns plate ``001`` into 1; metadata columns are identifiers, keep them text."""
    for i, name in enumerate(table.column_names):
        bare = name[len("Image_") :] if name.startswith("Image_") else name
        if (
            bare.startswith("Metadata_")
            and not pa.types.is_string(table.schema.field(i).type)
            and not name.endswith(("ImageNumber", "ObjectNumber", "TableNumber"))
        ):
            table = table.set_column(i, name, pc.cast(table.column(i), pa.string()))
    return table


def read_parquet(path: Path, warnings: list[str]) -> pa.Table:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ProfileError(path, f"not a readable Parquet file ({exc})") from exc
    drop = [c for c in table.column_names if c.startswith("__index_level_")]
    return distinct_columns(table.drop_columns(drop) if drop else table, str(path), warnings)


def _unify(tables: list[pa.Table]) -> pa.Table:
    """Concatenate tables whose columns differ in presence or inferred type (conflicts become text)."""
    if len(tables) == 1:
        return tables[0]
    types: dict[str, pa.DataType] = {}
    for t in tables:
        for f in t.schema:
            if pa.types.is_null(f.type):
                types.setdefault(f.name, f.type)
                continue
            prev = types.get(f.name)
            if prev is None or pa.types.is_null(prev):
                types[f.name] = f.type
            elif prev != f.type:
                numeric = pa.types.is_integer(prev) or pa.types.is_floating(prev)
                both_numeric = numeric and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
                types[f.name] = pa.float64() if both_numeric else pa.string()
    schema = pa.schema([pa.field(n, t if not pa.types.is_null(t) else pa.string()) for n, t in types.items()])
    cast = []
    for t in tables:
        columns = []
        for f in schema:
            if f.name in t.column_names:
                columns.append(pc.cast(t.column(f.name), f.type))
            else:
                columns.append(pa.nulls(t.num_rows, f.type))
        cast.append(pa.Table.from_arrays(columns, schema=schema))
    return pa.concat_tables(cast)


def _prefix_compartment(table: pa.Table, compartment: str) -> pa.Table:
    """ExportToSpreadsheet names columns without their object; CytoTable and pycytominer expect
    ``<Compartment>_<Measurement>`` and ``Metadata_`` keys. Apply that convention."""
    names = []
    for name in table.column_names:
        if name in ("ImageNumber", "ObjectNumber", "TableNumber"):
            names.append(f"Metadata_{name}")
        elif name.startswith(("Metadata_", f"{compartment}_")) or _IMAGE_KEY.match(name):
            names.append(name)
        else:
            names.append(f"{compartment}_{name}")
    return table.rename_columns(names)


def _image_keys(image: pa.Table) -> pa.Table:
    """The columns of an Image table that identify the image, prefixed ``Image_`` as CytoTable does."""
    keep = [c for c in image.column_names if c in _LINK_COLUMNS or _IMAGE_KEY.match(c)]
    renamed = [c if c in _LINK_COLUMNS or c.startswith("Image_") else f"Image_{c}" for c in keep]
    return image.select(keep).rename_columns(renamed)


def _merge_image_keys(objects: pa.Table, image_keys: pa.Table, where: str, warnings: list[str]) -> pa.Table:
    on = [c for c in _LINK_COLUMNS if c in objects.column_names and c in image_keys.column_names]
    if "ImageNumber" not in on:
        warnings.append(f"{where}: no ImageNumber column; image keys not merged")
        return objects
    extra = [c for c in image_keys.column_names if c not in on and c not in objects.column_names]
    if not extra:
        return objects
    order = pa.array(range(objects.num_rows), pa.int64())
    left = objects.append_column("__row", order)
    merged = left.join(image_keys.select([*on, *extra]), keys=on, join_type="left outer")
    merged = merged.sort_by("__row").drop_columns(["__row"])
    return merged


def _cellprofiler_folder_tables(folder: Path, warnings: list[str], errors: list[str]) -> dict[str, pa.Table]:
    """Compartment → table for one ExportToSpreadsheet folder (object tables carry image keys)."""
    files = {p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv"}
    image_path = next((p for stem, p in files.items() if stem.lower() == "image"), None)
    try:
        image = read_csv(image_path, warnings) if image_path else None
    except ProfileError as exc:
        errors.append(str(exc))
        image = image_path = None
    if image_path is not None and image is None:
        warnings.append(f"{image_path}: empty or header-only Image.csv; its objects cannot be linked to images")
    out: dict[str, pa.Table] = {}
    if image is not None:
        out["Image"] = _prefix_compartment(image, "Image")
    keys = _image_keys(image) if image is not None else None
    for stem, path in sorted(files.items()):
        if stem.lower() in _NOT_PROFILES or stem.lower() == "image":
            continue
        try:
            table = read_csv(path, warnings)
        except ProfileError as exc:
            # One broken file of a site costs that file only; the rest of the export still reads.
            errors.append(str(exc))
            continue
        if table is None:
            warnings.append(f"{path}: {'empty file' if path.stat().st_size == 0 else 'header only, no rows'}; skipped")
            continue
        if keys is not None:
            table = _merge_image_keys(table, keys, str(path), warnings)
        out[stem] = _prefix_compartment(table, stem)
    return out


def _read_cellprofiler_csv(
    source: ProfileSource, warnings: list[str], errors: list[str]
) -> Iterator[tuple[str, pa.Table]]:
    folders = (
        [source.path]
        if _is_cellprofiler_folder(source.path)
        else sorted(p for p in source.path.iterdir() if p.is_dir() and not p.name.startswith("."))
    )
    by_compartment: dict[str, list[pa.Table]] = {}
    for folder in folders:
        for compartment, table in _cellprofiler_folder_tables(folder, warnings, errors).items():
            if len(folders) > 1:
                site = pa.repeat(pa.scalar(folder.name), table.num_rows)
                table = table.append_column("Metadata_SourceFolder", site)
            by_compartment.setdefault(compartment, []).append(table)
    for compartment, tables in sorted(by_compartment.items()):
        yield compartment, _unify(tables)


def _read_sqlite(source: ProfileSource, warnings: list[str], errors: list[str]) -> Iterator[tuple[str, pa.Table]]:
    if source.path.stat().st_size == 0:
        raise ProfileError(source.path, "empty file (0 bytes), not a SQLite database")
    try:
        # The path goes in as a URI: percent-encode what a URI would read as syntax.
        con = sqlite3.connect(f"file:{quote(str(source.path))}?mode=ro", uri=True)
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    except sqlite3.DatabaseError as exc:
        raise ProfileError(source.path, f"not a readable SQLite database ({exc})") from exc
    if not [n for n in names if not n.lower().startswith("sqlite_")]:
        con.close()
        raise ProfileError(source.path, "SQLite database holds no tables")

    def read(name: str) -> pa.Table:
        cur = con.execute(f"SELECT * FROM {quote_identifier(name)}")
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
        arrays = []
        for i in range(len(columns)):
            values = [r[i] for r in rows]
            try:
                arr = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arr = pa.array([None if v is None else str(v) for v in values], pa.string())
            arrays.append(arr)
        table = pa.Table.from_arrays(arrays, names=columns)
        return _keep_identifier_text(distinct_columns(table, f"{source.path}:{name}", warnings))

    try:
        image_name = next((n for n in names if n.lower() in ("per_image", "image")), None)
        image = read(image_name) if image_name else None
        keys = _image_keys(image) if image is not None else None
        for name in sorted(names):
            lower = name.lower()
            if lower in _NOT_PROFILES or lower.startswith(("sqlite_", "experiment")):
                continue
            compartment = name[4:] if lower.startswith("per_") else name
            table = image if name == image_name else read(name)
            if table is None or table.num_rows == 0:
                warnings.append(f"{source.path}: table {name} has no rows; skipped")
                continue
            if keys is not None and name != image_name:
                table = _merge_image_keys(table, keys, f"{source.path}:{name}", warnings)
            yield compartment, _prefix_compartment(table, compartment)
    finally:
        con.close()


def _level(compartment: str | None) -> str:
    return "image" if compartment and compartment.lower() == "image" else "single_cell"


@dataclass
class SourceContents:
    """What one source yields: its tables, what was skipped (warnings), and files that could not be read
    (one line each; the source's other files are still read)."""

    tables: list[ProfileTable] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_profile_source(source: ProfileSource) -> SourceContents:
    """The tables of one source. Raises ProfileError when the source as a whole is unreadable."""
    contents = SourceContents()
    warnings, tables, errors = contents.warnings, contents.tables, contents.errors
    if source.kind == "csv":
        data = read_csv(source.path, warnings)
        if data is None:
            size = source.path.stat().st_size
            warnings.append(f"{source.path}: {'empty file' if size == 0 else 'header only, no rows'}; skipped")
        else:
            tables.append(ProfileTable(source.name, str(source.path), source.role, data))
    elif source.kind == "parquet":
        data = read_parquet(source.path, warnings)
        if data.num_rows == 0:
            warnings.append(f"{source.path}: no rows; skipped")
        else:
            tables.append(ProfileTable(source.name, str(source.path), source.role, data))
    else:
        reader = _read_sqlite if source.kind == "sqlite" else _read_cellprofiler_csv
        for compartment, data in reader(source, warnings, errors):
            tables.append(
                ProfileTable(
                    f"{source.name}_{slug(compartment)}",
                    str(source.path),
                    source.role,
                    data,
                    compartment=compartment,
                    profile_level=_level(compartment),
                )
            )
    for t in tables:
        # Merging image keys and prefixing compartments can make names meet; they must stay distinct.
        t.data = distinct_columns(t.data, t.source, warnings)
        if t.role == "profiles" and _looks_like_qc(t.data):
            t.role = "quality_control"
    return contents


def _looks_like_qc(table: pa.Table) -> bool:
    names = [c for c in table.column_names if not c.startswith("Metadata_")]
    return bool(names) and all(c.startswith("cqc.") for c in names)
