"""Profile sources under the profiles root, and readers that turn each into profile tables.

A source is a CSV or Parquet file, a CellProfiler SQLite database, or a CellProfiler ExportToSpreadsheet
folder (``Image.csv`` plus one CSV per compartment, possibly one folder per site). Every source yields one
table per biological object: image-level keys (``Metadata_*``, ``FileName_*``, ``PathName_*``) are merged
into each object table through ``ImageNumber`` so that its rows can be linked to images on their own.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bioimage_pipeline.errors import ProfileError
from bioimage_pipeline.profiles.batches import batch_rows
from bioimage_pipeline.profiles.columns import distinct_columns, distinct_names
from bioimage_pipeline.profiles.naming import IMAGE_KEY, NOT_PROFILES, compartment_column, identifier_text, image_column
from bioimage_pipeline.profiles.options import SourceOptions, options_path, read_options
from bioimage_pipeline.profiles.sqlite import SqliteRows, read_database

PROFILE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".sqlite", ".sqlite3", ".db")
QC_FOLDERS = ("quality_control", "qc")
_LINK_COLUMNS = ("ImageNumber", "TableNumber")


@dataclass(frozen=True)
class ProfileSource:
    path: Path
    kind: str  # "csv", "parquet", "sqlite", "cellprofiler_csv"
    name: str  # slug of the path relative to the profiles root
    role: str  # "profiles" or "quality_control"
    fingerprint: str


@dataclass(frozen=True)
class InMemory:
    """A table already read (CSV, SQLite, CellProfiler folders)."""

    table: pa.Table

    @property
    def schema(self) -> pa.Schema:
        return self.table.schema

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        return self.table if columns is None else self.table.select(list(columns))

    def batches(self) -> Iterator[pa.RecordBatch]:
        return iter(self.table.to_batches(max_chunksize=batch_rows(self.table.schema)))


@dataclass(frozen=True)
class ParquetColumns:
    """Columns of a Parquet file, read only when asked for: the columns at ``positions`` of the file's
    schema, under ``names`` (made distinct, see :func:`distinct_names`). Keys can be read alone and the
    rest streamed a batch at a time, so a table of any size costs one batch of memory."""

    path: Path
    positions: tuple[int, ...]
    names: tuple[str, ...]
    num_rows: int
    #: The file's own schema and footer, parsed once: a plate's footer (4,000 columns × its row groups) takes
    #: seconds to parse.
    file_schema: pa.Schema
    metadata: pq.FileMetaData

    @property
    def schema(self) -> pa.Schema:
        fields = self.file_schema
        return pa.schema([fields.field(i).with_name(n) for i, n in zip(self.positions, self.names, strict=True)])

    def _plan(self, columns: Sequence[str] | None) -> tuple[list[int], list[str] | None]:
        index = dict(zip(self.names, self.positions, strict=True))
        positions = list(self.positions) if columns is None else [index[c] for c in columns]
        file_names = self.file_schema.names
        # By name when the file's names are distinct; otherwise every column is read and picked by position.
        unique = len(set(file_names)) == len(file_names)
        return positions, [file_names[i] for i in positions] if unique else None

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        names = list(self.names) if columns is None else list(columns)
        batches = list(self._batches(names))
        if not batches:
            return self.schema.empty_table().select(names)
        return pa.Table.from_batches(batches)

    def batches(self) -> Iterator[pa.RecordBatch]:
        return self._batches(list(self.names))

    def _batches(self, names: list[str]) -> Iterator[pa.RecordBatch]:
        positions, by_name = self._plan(names)
        rows = batch_rows(pa.schema([self.file_schema.field(i) for i in positions]))
        try:
            # buffer_size: column chunks are read through a buffered stream, not whole.
            file = pq.ParquetFile(self.path, buffer_size=8 * 2**20, metadata=self.metadata)
            # A row group at a time: one iterator over the whole file keeps the decoded pages of every row
            # group it has passed (measured: 1.4 GB of a 1.3 GB file, against ~100 MB this way).
            for group in range(file.num_row_groups):
                reader = file.iter_batches(
                    batch_size=rows, row_groups=[group], columns=by_name, use_pandas_metadata=False
                )
                for batch in reader:
                    if by_name is not None:
                        yield batch.rename_columns(names)
                    else:
                        yield pa.record_batch([batch.column(i) for i in positions], names=names)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ProfileError(self.path, f"not a readable Parquet file ({exc})") from exc


TableContent = InMemory | ParquetColumns | SqliteRows


@dataclass
class ProfileTable:
    """One profile table, as read (before normalisation): its rows stay in the source until asked for."""

    name: str
    source: str
    role: str
    content: TableContent
    compartment: str | None = None
    profile_level: str = "single_cell"
    warnings: list[str] = field(default_factory=list)
    #: Added to the rows' site numbers before they are matched to images (see ``options.SourceOptions``).
    site_offset: int = 0

    @property
    def schema(self) -> pa.Schema:
        return self.content.schema

    @property
    def num_rows(self) -> int:
        return self.content.num_rows

    @property
    def data(self) -> pa.Table:
        """Every row, read into memory (small tables and tests; the pipeline streams :attr:`content`)."""
        return self.content.read()


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


def source_fingerprint(path: Path) -> str:
    """What identifies a source's content: its files' names, sizes and modification times, and those of its
    options file."""
    digest = hashlib.sha256(str(path.absolute()).encode())
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    if options_path(path).is_file():
        files.append(options_path(path))
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
                        ProfileSource(entry, "cellprofiler_csv", slug(rel), role_of(entry), source_fingerprint(entry))
                    )
                else:
                    visit(entry)
            elif entry.name.lower().endswith(PROFILE_SUFFIXES):
                sources.append(
                    ProfileSource(
                        entry, _file_kind(entry), slug(_strip_suffix(rel)), role_of(entry), source_fingerprint(entry)
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
        return ProfileSource(path, "cellprofiler_csv", name, "profiles", source_fingerprint(path))
    lower = path.name.lower()
    if not lower.endswith(PROFILE_SUFFIXES):
        raise ProfileError(path, "not a profile table (expected .csv, .tsv, .parquet or CellProfiler .sqlite)")
    return ProfileSource(path, _file_kind(path), name, "profiles", source_fingerprint(path))


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
        if identifier_text(name) and not pa.types.is_string(table.schema.field(i).type):
            table = table.set_column(i, name, pc.cast(table.column(i), pa.string()))
    return table


def read_parquet(path: Path, warnings: list[str]) -> ParquetColumns:
    """A Parquet file's columns, named distinctly (pandas index columns left out); nothing is read but the
    footer, and an unnamed column's null count."""
    try:
        file = pq.ParquetFile(path)
        schema = file.schema_arrow
    except (pa.ArrowInvalid, OSError) as exc:
        raise ProfileError(path, f"not a readable Parquet file ({exc})") from exc
    positions = [i for i, n in enumerate(schema.names) if not n.startswith("__index_level_")]
    names = [schema.names[i] for i in positions]
    rows = file.metadata.num_rows

    def is_empty(k: int) -> bool:
        # From the footer's statistics (a flat schema's fields are its leaf columns); without them the
        # column is kept, never dropped unread.
        meta = file.metadata
        if meta.num_columns != len(schema):
            return False
        nulls = 0
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(positions[k]).statistics
            if stats is None or not stats.has_null_count:
                return False
            nulls += stats.null_count
        return nulls == rows

    kept = distinct_names(names, is_empty, str(path), warnings)
    return ParquetColumns(
        path=path,
        positions=tuple(positions[k] for k, _ in kept),
        names=tuple(n for _, n in kept),
        num_rows=rows,
        file_schema=schema,
        metadata=file.metadata,
    )


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
    return table.rename_columns([compartment_column(n, compartment) for n in table.column_names])


def _image_keys(image: pa.Table) -> pa.Table:
    """The columns of an Image table that identify the image, prefixed ``Image_`` as CytoTable does."""
    keep = [c for c in image.column_names if c in _LINK_COLUMNS or IMAGE_KEY.match(c)]
    renamed = [image_column(c) for c in keep]
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
        if stem.lower() in NOT_PROFILES or stem.lower() == "image":
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


def _level(compartment: str | None) -> str:
    return "image" if compartment and compartment.lower() == "image" else "single_cell"


@dataclass
class SourceContents:
    """What one source yields: its tables, what was skipped (warnings), and files that could not be read
    (one line each; the source's other files are still read)."""

    tables: list[ProfileTable] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_profile_source(source: ProfileSource, options: SourceOptions | None = None) -> SourceContents:
    """The tables of one source, read with ``options`` (default: its options file, see
    :mod:`~bioimage_pipeline.profiles.options`). Raises ProfileError when the source as a whole is unreadable."""
    contents = SourceContents()
    warnings, tables, errors = contents.warnings, contents.tables, contents.errors
    options = read_options(source.path) if options is None else options
    if source.kind == "csv":
        data = read_csv(source.path, warnings)
        if data is None:
            size = source.path.stat().st_size
            warnings.append(f"{source.path}: {'empty file' if size == 0 else 'header only, no rows'}; skipped")
        else:
            tables.append(ProfileTable(source.name, str(source.path), source.role, InMemory(data)))
    elif source.kind == "parquet":
        columns = read_parquet(source.path, warnings)
        if columns.num_rows == 0:
            warnings.append(f"{source.path}: no rows; skipped")
        else:
            tables.append(ProfileTable(source.name, str(source.path), source.role, columns))
    elif source.kind == "sqlite":
        database = read_database(source.path, single_cell=options.single_cell, compartments=options.compartments)
        warnings.extend(database.warnings)
        for compartment, rows in database.tables:
            tables.append(
                ProfileTable(
                    f"{source.name}_{slug(compartment)}",
                    str(source.path),
                    source.role,
                    rows,
                    compartment=None if compartment == "single_cell" else compartment,
                    profile_level=_level(compartment),
                )
            )
    else:
        for compartment, data in _read_cellprofiler_csv(source, warnings, errors):
            tables.append(
                ProfileTable(
                    f"{source.name}_{slug(compartment)}",
                    str(source.path),
                    source.role,
                    InMemory(data),
                    compartment=compartment,
                    profile_level=_level(compartment),
                )
            )
    for t in tables:
        t.site_offset = options.site_offset
        # Merging image keys and prefixing compartments can make names meet; they must stay distinct.
        if isinstance(t.content, InMemory):
            t.content = InMemory(distinct_columns(t.content.table, t.source, warnings))
        if t.role == "profiles" and _looks_like_qc(t.schema.names):
            t.role = "quality_control"
    return contents


def _looks_like_qc(columns: Sequence[str]) -> bool:
    names = [c for c in columns if not c.startswith("Metadata_")]
    return bool(names) and all(c.startswith("cqc.") for c in names)
