"""CellProfiler SQLite databases, read a batch at a time: each object table on its own, and the single-cell
table that CytoTable's ``cellprofiler_sqlite_pycytominer`` preset makes of them.

ExportToDatabase (and cytominer-database) write one image table (``Per_Image`` / ``Image``: a row per site,
with its plate, well, site and file names) and one table per object (``Per_Cells``, ``Per_Cytoplasm``,
``Per_Nuclei``…, keyed by ``ImageNumber`` + object number, and ``TableNumber`` where cytominer-database
merged several runs). Two shapes come out of one database:

* **Each object table** as its own profile table, rows in the database's order, the image keys of its site
  (``Image_Metadata_*``, ``Image_FileName_*``, ``Image_PathName_*``, ``Image_URL_*``) beside them.
* **The single-cell table**: one row per cytoplasm object with the cell and the nucleus it belongs to
  (``Cytoplasm_Parent_Cells`` / ``_Parent_Nuclei``), named and ordered as CytoTable names and orders its
  output, so a plate converted by CytoTable and a plate read from its SQLite here give the same table.
  Rows are ordered by ``TableNumber``, ``ImageNumber`` and the cytoplasm object number, so ``profile_row``
  is the same object from run to run. Unlike CytoTable, a cytoplasm object whose cell or nucleus is missing
  is kept (those columns empty), not dropped.

Nothing is held whole. Key columns are read alone (a few columns of every row); the rest streams through
ADBC's SQLite driver, which hands over Arrow batches (about three times the speed of the ``sqlite3``
module). Columns take their declared SQLite types (``FLOAT`` → float64, ``TEXT`` → string); integer
columns and columns declared without a type are typed from a scan of their stored values (a BIGINT column
may hold reals). A table found holding values its declarations do not allow (text in a FLOAT column) is
typed again from every column's stored values and read from the start: no value is converted behind the
user's back.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bioimage_pipeline.errors import ProfileError
from bioimage_pipeline.profiles.batches import batch_rows
from bioimage_pipeline.profiles.columns import distinct_names
from bioimage_pipeline.profiles.naming import (
    IDENTIFYING,
    IMAGE_KEY,
    NOT_PROFILES,
    compartment_column,
    cytotable_order,
    identifier_text,
    image_column,
)
from bioimage_pipeline.sql import quote_identifier

Affinity = Literal["integer", "text", "blob", "real", "numeric"]

#: Rows per batch handed over by the driver; the reader regroups them into batches of its own size.
DRIVER_BATCH_ROWS = 4096
#: Columns per query when stored types are scanned (SQLite returns at most 2,000 columns).
_SCAN_COLUMNS = 400


def affinity(declared: str) -> Affinity:
    """SQLite's type affinity of a declared column type (https://sqlite.org/datatype3.html, section 3.1)."""
    t = declared.upper()
    if "INT" in t:
        return "integer"
    if any(s in t for s in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if not t or "BLOB" in t:
        return "blob"
    if any(s in t for s in ("REAL", "FLOA", "DOUB")):
        return "real"
    return "numeric"


def connect_uri(path: Path) -> str:
    """A read-only SQLite URI for ``path`` (percent-encoded: a URI reads ``?`` and ``#`` as syntax)."""
    return f"file:{quote(str(path))}?mode=ro"


@dataclass(frozen=True, kw_only=True)
class TableInfo:
    """One SQLite table as declared: its columns, their Arrow types, and how to read its rows in order."""

    name: str
    columns: tuple[str, ...]
    types: tuple[pa.DataType, ...]
    #: SQL per column: the column itself, or a cast where stored values are of several kinds.
    expressions: tuple[str, ...]
    num_rows: int
    #: ORDER BY of a full read in the database's order: ``rowid``, or the primary key where there is none.
    natural_order: tuple[str, ...]

    @functools.cached_property
    def _types_by_name(self) -> dict[str, pa.DataType]:
        return dict(zip(self.columns, self.types, strict=True))

    def type_of(self, column: str) -> pa.DataType:
        # By name, not ``columns.index``: a 4,000-column schema asks for every column's type.
        return self._types_by_name[column]


def _scan_stored_types(con: object, table: str, columns: Sequence[str]) -> dict[str, set[str]]:
    """The storage classes present in each of ``columns`` (one scan per 400 columns)."""
    found: dict[str, set[str]] = {}
    kinds = ("integer", "real", "text", "blob")
    for start in range(0, len(columns), _SCAN_COLUMNS):
        part = columns[start : start + _SCAN_COLUMNS]
        terms = [f"max(typeof({quote_identifier(c)}) = '{k}')" for c in part for k in kinds]
        row = con.execute(f"SELECT {', '.join(terms)} FROM {quote_identifier(table)}").fetchone()  # type: ignore[attr-defined]
        for i, c in enumerate(part):
            found[c] = {k for j, k in enumerate(kinds) if row[i * len(kinds) + j]}
    return found


def inspect_table(con: object, path: Path, table: str, *, scan_all: bool = False) -> TableInfo:
    """Columns, Arrow types and row order of ``table`` (``con``: a ``sqlite3`` connection).

    Declared real and text columns are taken at their word (scanning 4,000 columns costs more than reading
    them); ``scan_all`` scans them too, for a table found to hold values its declarations do not allow.
    """
    q = quote_identifier(table)
    info = con.execute(f"PRAGMA table_info({q})").fetchall()  # type: ignore[attr-defined]
    columns = tuple(str(r[1]) for r in info)
    affinities = [affinity(str(r[2] or "")) for r in info]
    # Declared integers are scanned too: cytominer-database declares a column BIGINT from the first CSV it
    # reads and then stores the reals of later ones in it. Real and text columns hold what they declare.
    scanned = ("integer", "blob", "numeric", "real") if scan_all else ("integer", "blob", "numeric")
    loose = [c for c, a in zip(columns, affinities, strict=True) if a in scanned]
    stored = _scan_stored_types(con, table, loose) if loose else {}
    types: list[pa.DataType] = []
    expressions: list[str] = []
    for c, a in zip(columns, affinities, strict=True):
        expr = quote_identifier(c)
        if a == "real" and not scan_all:
            t = pa.float64()
        elif a == "text":
            t = pa.string()
        else:
            kinds = stored[c]
            if kinds == {"blob"}:
                t = pa.binary()
            elif "text" in kinds or "blob" in kinds:
                # Text beside numbers: the numbers are kept as their text (as CSV readers do), not lost.
                t, expr = pa.string(), f"CAST({expr} AS TEXT)"
            elif "real" in kinds:
                t, expr = pa.float64(), f"CAST({expr} AS REAL)"
            elif "integer" in kinds or a == "integer":
                t = pa.int64()
            else:
                t = pa.float64() if a == "numeric" else pa.string()
        types.append(t)
        expressions.append(expr)
    try:
        con.execute(f"SELECT rowid FROM {q} LIMIT 0")  # type: ignore[attr-defined]
        order: tuple[str, ...] = ("rowid",)
    except Exception:  # a WITHOUT ROWID table or a view: its primary key, else every column
        pk = sorted((int(r[5]), str(r[1])) for r in info if int(r[5]) > 0)
        order = tuple(quote_identifier(c) for _, c in pk) or tuple(quote_identifier(c) for c in columns)
    (rows,) = con.execute(f"SELECT count(*) FROM {q}").fetchone()  # type: ignore[attr-defined]
    return TableInfo(
        name=table,
        columns=columns,
        types=tuple(types),
        expressions=tuple(expressions),
        num_rows=int(rows),
        natural_order=order,
    )


def _literal(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "0"
    if pa.types.is_floating(t):
        return "0.5"
    return "x''" if pa.types.is_binary(t) else "''"


def _stream(path: Path, info: TableInfo, columns: Sequence[str], order: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """``columns`` of every row of ``info``'s table, ordered by ``order``, as the driver's batches.

    The driver types a column from the first batch it reads, so a first row of typed literals goes
    ahead of the rows (and is dropped): a column whose first thousands of values are empty still comes
    out as its declared type. A later value of another type fails the read instead of being converted.
    """
    import adbc_driver_sqlite.dbapi as adbc

    index = {c: i for i, c in enumerate(info.columns)}
    picked = [index[c] for c in columns]
    labels = [f"c{i}" for i in range(len(picked))]
    first = ", ".join(f"{_literal(info.types[i])} AS {n}" for i, n in zip(picked, labels, strict=True))
    rows = ", ".join(f"{info.expressions[i]} AS {n}" for i, n in zip(picked, labels, strict=True))
    sql = (
        f"SELECT {first} UNION ALL SELECT * FROM "
        f"(SELECT {rows} FROM {quote_identifier(info.name)} ORDER BY {', '.join(order)})"
    )
    schema = pa.schema([pa.field(columns[k], info.types[i]) for k, i in enumerate(picked)])
    try:
        with adbc.connect(connect_uri(path)) as con, con.cursor() as cur:
            cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(DRIVER_BATCH_ROWS)})
            cur.execute(sql)
            reader = cur.fetch_record_batch()
            skip = 1
            for batch in reader:
                if skip:
                    batch, skip = batch.slice(1), 0
                    if batch.schema.types != schema.types:  # text among a first batch's numbers
                        raise StoredTypes(path, f"table {info.name}: stored values do not fit declared types")
                if batch.num_rows:
                    yield pa.RecordBatch.from_arrays(batch.columns, schema=schema)
    except (adbc.Error, OSError) as exc:  # the driver reports a bad value as an OSError of the stream
        mismatch, message = _driver_message(exc, columns)
        raise (StoredTypes if mismatch else ProfileError)(path, f"table {info.name}: {message}") from exc


class StoredTypes(ProfileError):
    """A table holds values its declared column types do not allow (text in a FLOAT column)."""


class SchemaChanged(ProfileError):
    """Column types were corrected after rows had been handed out: read the table again from the start."""


def _driver_message(exc: Exception, columns: Sequence[str]) -> tuple[bool, str]:
    """(whether a value did not fit its column's type, a one-line message naming the column)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    found = re.search(r"column (\d+)", text)
    if found and "mismatch" in text.lower():
        k = int(found.group(1))
        name = columns[k] if 0 <= k < len(columns) else f"#{k}"
        return True, f"column {name!r} holds a value that does not fit its declared type ({text})"
    return False, f"cannot be read ({text})"


class _Window:
    """Rows of one ordered stream by position: ``take(lo, hi)`` returns rows ``lo..hi-1`` with ``lo`` never
    moving backwards, so only the rows from ``lo`` on are buffered."""

    def __init__(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
        self._batches = batches
        self._schema = schema
        self._buffer: list[pa.RecordBatch] = []
        self._start = 0  # position of the buffer's first row
        self._end = 0  # position after its last row

    def take(self, lo: int, hi: int) -> pa.Table:
        while self._end < hi:
            batch = next(self._batches, None)
            if batch is None:
                break
            self._buffer.append(batch)
            self._end += batch.num_rows
        drop = lo - self._start
        while self._buffer and drop >= self._buffer[0].num_rows:
            drop -= self._buffer[0].num_rows
            self._start += self._buffer[0].num_rows
            self._buffer.pop(0)
        if drop > 0:
            self._buffer[0] = self._buffer[0].slice(drop)
            self._start += drop
        table = pa.Table.from_batches(self._buffer, schema=self._schema)
        return table.slice(0, max(0, min(hi, self._end) - lo))


@dataclass(frozen=True, kw_only=True)
class Part:
    """One SQLite table that contributes columns: streamed in ``order`` (every row of the first part is an
    output row), or read whole and looked up (the image table)."""

    info: TableInfo
    order: tuple[str, ...]
    #: Key columns of the table to match on: (table/image number columns, object number column or None).
    keys: tuple[str, ...] = ()
    object_column: str | None = None


@dataclass(frozen=True, kw_only=True)
class Column:
    """One output column: ``source`` of ``part``, named ``name``."""

    part: int
    source: str
    name: str


@dataclass(frozen=True, kw_only=True)
class SqliteRows:
    """A profile table of a SQLite database, read a batch at a time.

    ``parts[0]`` is streamed and gives one output row per row. ``image`` (optional) is the image table's
    part, looked up per row by ``TableNumber``/``ImageNumber``. The other parts are object tables matched
    to each row by ``links``: (part, column of part 0 naming that part's object number).
    """

    path: Path
    parts: tuple[Part, ...]
    columns: tuple[Column, ...]
    image: int | None = None
    links: tuple[tuple[int, str], ...] = ()
    #: Which row of each part goes with each output row, worked out once from the key columns.
    _plan_cache: dict[str, object] = field(default_factory=dict, compare=False, repr=False)
    #: Tables found to hold values their declared types do not allow, typed from their stored values.
    _retyped: dict[str, TableInfo] = field(default_factory=dict, compare=False, repr=False)

    def _info(self, part: int) -> TableInfo:
        info = self.parts[part].info
        return self._retyped.get(info.name, info)

    def _type(self, c: Column) -> pa.DataType:
        return column_type(self._info(c.part), c.source, c.name)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, self._type(c)) for c in self.columns])

    @property
    def num_rows(self) -> int:
        return self.parts[0].info.num_rows

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        names = [c.name for c in self.columns] if columns is None else list(columns)
        try:
            batches = list(self._batches(names))
        except SchemaChanged:  # nothing was handed out of this call: read again with the corrected types
            batches = list(self._batches(names))
        schema = self.schema
        return pa.Table.from_batches(batches, schema=pa.schema([schema.field(n) for n in names]))

    def batches(self) -> Iterator[pa.RecordBatch]:
        return self._batches([c.name for c in self.columns])

    def _retype(self, error: StoredTypes) -> None:
        """Type the tables again from their stored values, once; a second failure is the table's error."""
        import sqlite3

        if self._retyped:
            raise ProfileError(self.path, str(error).split(": ", 1)[-1]) from error
        con = sqlite3.connect(connect_uri(self.path), uri=True)
        try:
            for p in self.parts:
                self._retyped[p.info.name] = inspect_table(con, self.path, p.info.name, scan_all=True)
        finally:
            con.close()
        self._plan_cache.clear()

    def _stream(self, part: int, columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
        return _stream(self.path, self._info(part), columns, self.parts[part].order)

    def _schema_of(self, part: int, columns: Sequence[str]) -> pa.Schema:
        info = self._info(part)
        return pa.schema([pa.field(c, info.type_of(c)) for c in columns])

    # --- the plan: which row of each part goes with which output row ---------------------------------

    def _keys(self, part: int, columns: Sequence[str]) -> pa.Table:
        return pa.Table.from_batches(list(self._stream(part, columns)), schema=self._schema_of(part, columns))

    def _plan(self) -> dict[str, object]:
        if not self._plan_cache:
            try:
                self._plan_cache.update(self._make_plan())
            except StoredTypes as exc:
                self._retype(exc)
                self._plan_cache.update(self._make_plan())
        return self._plan_cache

    def _make_plan(self) -> dict[str, object]:
        driver = self.parts[0]
        wanted = list(dict.fromkeys([*driver.keys, *(column for _, column in self.links)]))
        keys = self._keys(0, wanted).append_column("__pos", pa.array(np.arange(self.num_rows, dtype=np.int64)))
        plan: dict[str, object] = {}
        if self.image is not None:
            image = self.parts[self.image]
            used = [c.source for c in self.columns if c.part == self.image]
            whole = self._keys(self.image, list(dict.fromkeys([*image.keys, *used])))
            plan["image_rows"] = whole
            plan["image_index"] = _match(keys, list(driver.keys), whole, list(image.keys), self.path, image.info.name)
        for part, column in self.links:
            p = self.parts[part]
            assert p.object_column is not None
            theirs = self._keys(part, [*p.keys, p.object_column])
            plan[f"index:{part}"] = _match(
                keys, [*driver.keys, column], theirs, [*p.keys, p.object_column], self.path, p.info.name
            )
        return plan

    def _batches(self, names: Sequence[str]) -> Iterator[pa.RecordBatch]:
        handed_out = False
        try:
            for batch in self._generate(names):
                handed_out = True
                yield batch
        except StoredTypes as exc:
            self._retype(exc)
            if handed_out:
                # The reader already has batches of the declared types: it must start again.
                raise SchemaChanged(self.path, "column types corrected from stored values; read again") from exc
            yield from self._generate(names)

    def _generate(self, names: Sequence[str]) -> Iterator[pa.RecordBatch]:
        by_name = {c.name: c for c in self.columns}
        wanted = [by_name[n] for n in names]
        types = [self._type(c) for c in wanted]
        parts = sorted({c.part for c in wanted})
        plan = self._plan() if any(p != 0 for p in parts) else {}
        rows = batch_rows(types)
        streams: dict[int, _Window] = {}
        windows: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for part in parts:
            if part == self.image:
                continue
            columns = list(dict.fromkeys(c.source for c in wanted if c.part == part))
            streams[part] = _Window(self._stream(part, columns), self._schema_of(part, columns))
            if part != 0:
                windows[part] = _ranges(plan[f"index:{part}"], rows, self.num_rows)  # type: ignore[arg-type]
        image_rows = plan.get("image_rows") if self.image in parts else None
        image_index = plan.get("image_index")
        for k, start in enumerate(range(0, self.num_rows, rows)):
            stop = min(start + rows, self.num_rows)
            got: dict[int, pa.Table] = {}
            if 0 in streams:
                got[0] = streams[0].take(start, stop)
                if got[0].num_rows != stop - start:
                    name = self.parts[0].info.name
                    raise ProfileError(self.path, f"table {name} changed while it was read; read again on the next run")
            for part, (lo, hi, index) in windows.items():
                table = streams[part].take(int(lo[k]), int(hi[k]))
                local = index[start:stop]
                got[part] = table.take(pa.array(local - lo[k], mask=local < 0))
            if image_rows is not None and self.image is not None:
                local = image_index[start:stop]  # type: ignore[index]
                got[self.image] = image_rows.take(pa.array(local, mask=local < 0))  # type: ignore[attr-defined]
            arrays = [_cast(got[c.part].column(c.source), t) for c, t in zip(wanted, types, strict=True)]
            yield pa.RecordBatch.from_arrays([a.combine_chunks() for a in arrays], names=list(names))


def _cast(column: pa.ChunkedArray, t: pa.DataType) -> pa.ChunkedArray:
    return column if column.type == t else pc.cast(column, t)


def _ranges(index: np.ndarray, rows: int, total: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window of ``rows`` output rows: the first and past-the-last row of a part it needs. Starts are
    made non-decreasing (a suffix minimum), so the part streams forward only."""
    count = (total + rows - 1) // rows
    lo = np.zeros(count, dtype=np.int64)
    hi = np.zeros(count, dtype=np.int64)
    for k in range(count):
        used = index[k * rows : (k + 1) * rows]
        used = used[used >= 0]
        lo[k] = used.min() if used.size else -1
        hi[k] = used.max() + 1 if used.size else -1
    # Windows that need nothing take nothing at the running position.
    last = 0
    for k in range(count):
        if hi[k] < 0:
            lo[k] = hi[k] = last
        last = max(last, hi[k])
    lo = np.minimum.accumulate(lo[::-1])[::-1]
    hi = np.maximum(hi, lo)
    return lo, hi, index


def _match(
    left: pa.Table, left_keys: list[str], right: pa.Table, right_keys: list[str], path: Path, table: str
) -> np.ndarray:
    """For each row of ``left`` (``__pos`` order), the position of the row of ``right`` with equal keys, or -1.
    Two rows of ``right`` with the same keys are an error: the match would be a guess."""
    rhs = right.select(right_keys).append_column("__rpos", pa.array(np.arange(right.num_rows, dtype=np.int64)))
    complete = pc.is_valid(rhs[right_keys[0]])
    for k in right_keys[1:]:
        complete = pc.and_(complete, pc.is_valid(rhs[k]))
    rhs = rhs.filter(complete)  # a row without its keys matches nothing
    dupes = rhs.group_by(right_keys).aggregate([("__rpos", "count")])
    if dupes.num_rows != rhs.num_rows:
        many = dupes.filter(pc.greater(dupes["__rpos_count"], 1)).slice(0, 1).to_pylist()[0]
        shown = ", ".join(f"{k}={many[k]}" for k in right_keys)
        raise ProfileError(path, f"table {table} has several rows for {shown}; its rows cannot be matched")
    lhs = left.select([*left_keys, "__pos"])
    # Keys are matched by value, so both sides must agree on types (ImageNumber may be declared differently).
    for a, b in zip(left_keys, right_keys, strict=True):
        lt, rt = lhs.schema.field(a).type, rhs.schema.field(b).type
        if lt != rt:
            common = pa.string() if pa.string() in (lt, rt) else pa.float64()
            lhs = lhs.set_column(lhs.schema.get_field_index(a), a, pc.cast(lhs[a], common))
            rhs = rhs.set_column(rhs.schema.get_field_index(b), b, pc.cast(rhs[b], common))
    joined = lhs.join(rhs, keys=left_keys, right_keys=right_keys, join_type="left outer")
    out = np.full(left.num_rows, -1, dtype=np.int64)
    pos = joined["__pos"].to_numpy()
    rpos = joined["__rpos"].fill_null(-1).to_numpy()
    out[pos] = rpos
    return out


#: The object tables the single-cell table is made of.
MERGED = ("Cytoplasm", "Cells", "Nuclei")


# --- building the tables of one database ---------------------------------------------------------


def _object_column(info: TableInfo, compartment: str) -> str | None:
    for name in (f"{compartment}_Number_Object_Number", "ObjectNumber"):
        if name in info.columns:
            return name
    return None


@dataclass(frozen=True, kw_only=True)
class DatabaseTables:
    """What one database yields: (compartment, content) per table, and what was skipped."""

    tables: list[tuple[str, SqliteRows]]
    warnings: list[str]


def column_type(info: TableInfo, column: str, name: str) -> pa.DataType:
    """The Arrow type of ``column`` under ``name``: its stored type, or text for a metadata identifier."""
    t = info.type_of(column)
    return pa.string() if identifier_text(name) and not pa.types.is_string(t) else t


def _distinct(columns: list[Column], where: str, warnings: list[str]) -> list[Column]:
    kept = distinct_names([c.name for c in columns], lambda i: False, where, warnings)
    return [Column(part=columns[i].part, source=columns[i].source, name=n) for i, n in kept]


def read_database(path: Path, *, single_cell: bool = True, compartments: bool = False) -> DatabaseTables:
    """The profile tables of a CellProfiler SQLite database (nothing but its schema and keys is read here).

    ``single_cell``: Cells, Cytoplasm and Nuclei merged into one single-cell table (where the database has
    them, Cytoplasm with its parent cells and nuclei), given instead of those three tables unless
    ``compartments``. Every other table (the image table, other objects) is given on its own.
    """
    import sqlite3

    if path.stat().st_size == 0:
        raise ProfileError(path, "empty file (0 bytes), not a SQLite database")
    warnings: list[str] = []
    try:
        con = sqlite3.connect(connect_uri(path), uri=True)
        names = [str(r[0]) for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")]
    except sqlite3.DatabaseError as exc:
        raise ProfileError(path, f"not a readable SQLite database ({exc})") from exc
    try:
        if not [n for n in names if not n.lower().startswith("sqlite_")]:
            raise ProfileError(path, "SQLite database holds no tables")
        infos: dict[str, TableInfo] = {}
        for name in sorted(names):
            lower = name.lower()
            if lower in NOT_PROFILES or lower.startswith(("sqlite_", "experiment")):
                continue
            try:
                info = inspect_table(con, path, name)
            except sqlite3.DatabaseError as exc:
                raise ProfileError(path, f"table {name}: cannot be read ({exc})") from exc
            if info.num_rows == 0:
                warnings.append(f"{path}: table {name} has no rows; skipped")
                continue
            infos[name] = info
    finally:
        con.close()
    image_name = next((n for n in infos if n.lower() in ("per_image", "image")), None)
    out: list[tuple[str, SqliteRows]] = []
    by_compartment = {_compartment(n): info for n, info in infos.items()}
    image = infos.get(image_name) if image_name else None
    merged = _single_cell(path, by_compartment, image, warnings) if single_cell else None
    for name, info in infos.items():
        compartment = _compartment(name)
        if merged is not None and not compartments and compartment in MERGED:
            continue
        out.append(
            (compartment, _object_table(path, info, compartment, image if name != image_name else None, warnings))
        )
    if merged is not None:
        out.append(("single_cell", merged))
    return DatabaseTables(tables=out, warnings=warnings)


def _compartment(table: str) -> str:
    return table[4:] if table.lower().startswith("per_") else table


def _link_keys(info: TableInfo, image: TableInfo) -> tuple[str, ...]:
    return tuple(c for c in ("TableNumber", "ImageNumber") if c in info.columns and c in image.columns)


def _object_table(
    path: Path, info: TableInfo, compartment: str, image: TableInfo | None, warnings: list[str]
) -> SqliteRows:
    """One table with its own columns (prefixed by compartment) and, for an object table, its site's keys."""
    parts = [Part(info=info, order=info.natural_order)]
    columns = [Column(part=0, source=c, name=compartment_column(c, compartment)) for c in info.columns]
    image_part = None
    if image is not None:
        keys = _link_keys(info, image)
        if "ImageNumber" not in keys:
            warnings.append(f"{path}:{info.name}: no ImageNumber column; image keys not merged")
        else:
            present = {c.name for c in columns} | set(info.columns)
            extra = [
                c for c in image.columns if IMAGE_KEY.match(c) and c not in present and image_column(c) not in present
            ]
            if extra:
                image_part = 1
                parts.append(Part(info=image, order=image.natural_order, keys=keys))
                parts[0] = Part(info=info, order=info.natural_order, keys=keys)
                for c in extra:
                    name = image_column(c)
                    columns.append(Column(part=1, source=c, name=name))
    return SqliteRows(
        path=path,
        parts=tuple(parts),
        columns=tuple(_distinct(columns, f"{path}:{info.name}", warnings)),
        image=image_part,
    )


def _single_cell(
    path: Path, tables: dict[str, TableInfo], image: TableInfo | None, warnings: list[str]
) -> SqliteRows | None:
    cyto, cells, nuclei = (tables.get(k) for k in MERGED)
    if cyto is None or cells is None or nuclei is None:
        return None
    parent_cells, parent_nuclei = (
        next((c for c in (f"Cytoplasm_Parent_{t}", f"Parent_{t}") if c in cyto.columns), None)
        for t in ("Cells", "Nuclei")
    )
    cyto_object = _object_column(cyto, "Cytoplasm")
    cells_object, nuclei_object = _object_column(cells, "Cells"), _object_column(nuclei, "Nuclei")
    if (
        parent_cells is None
        or parent_nuclei is None
        or cyto_object is None
        or cells_object is None
        or nuclei_object is None
        or "ImageNumber" not in cyto.columns
    ):
        return None
    keys = tuple(c for c in ("TableNumber", "ImageNumber") if c in cyto.columns)
    if any(k not in t.columns for t in (cells, nuclei) for k in keys):
        return None

    def order(info: TableInfo, obj: str) -> tuple[str, ...]:
        rowid = ("rowid",) if info.natural_order == ("rowid",) else ()
        return tuple(quote_identifier(c) for c in (*keys, obj)) + rowid

    parts = [
        Part(info=cyto, order=order(cyto, cyto_object), keys=keys),
        Part(info=cells, order=order(cells, cells_object), keys=keys, object_column=cells_object),
        Part(info=nuclei, order=order(nuclei, nuclei_object), keys=keys, object_column=nuclei_object),
    ]
    columns: list[Column] = []

    def add(part: int, source: str, name: str) -> None:
        columns.append(Column(part=part, source=source, name=name))

    for k in keys:
        add(0, k, f"Metadata_{k}")
    for part, (compartment, info) in enumerate((("Cytoplasm", cyto), ("Cells", cells), ("Nuclei", nuclei))):
        for c in info.columns:
            if c in keys:
                continue
            name = compartment_column(c, compartment)
            if name.startswith("Metadata_") and c in ("ObjectNumber",):
                name = f"{compartment}_ObjectNumber"
            if name in IDENTIFYING:
                name = f"Metadata_{name}"
            add(part, c, name)
    image_part = None
    if image is not None and all(k in image.columns for k in keys):
        image_part = len(parts)
        parts.append(Part(info=image, order=image.natural_order, keys=keys))
        for c in image.columns:
            name = image_column(c)
            if name in ("Image_Metadata_Plate", "Image_Metadata_Well") or name.startswith("Image_FileName_"):
                add(image_part, c, name)
    ordered = sorted(sorted(columns, key=lambda c: c.name), key=lambda c: cytotable_order(c.name))
    return SqliteRows(
        path=path,
        parts=tuple(parts),
        columns=tuple(_distinct(ordered, f"{path}: single-cell table", warnings)),
        image=image_part,
        links=((1, parent_cells), (2, parent_nuclei)),
    )
