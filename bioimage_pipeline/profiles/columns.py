"""Column names a profile table may keep: non-empty, distinct without regard to case, never a name the
pipeline generates.

DuckDB, SQL engines in general and pycytominer's DuckDB paths bind column names case-insensitively, so
``Area``, ``area`` and ``AREA`` in one table read back as three copies of the first; an empty name cannot be
written in SQL at all. Such names are renamed when a file is read, with a warning naming the file, so no
value is ever read under another column's name and no table can break the catalog's SQL views.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import pyarrow as pa

#: Suffix of a source column whose name the pipeline generates (``profile_row`` → ``profile_row_source``).
SOURCE_SUFFIX = "_source"


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_2``, ``name_3``… : the first that no taken name equals without regard to case."""
    if name.lower() not in taken:
        return name
    k = 2
    while f"{name}_{k}".lower() in taken:
        k += 1
    return f"{name}_{k}"


def distinct_names(
    names: Sequence[str], is_empty: Callable[[int], bool], where: str, warnings: list[str]
) -> list[tuple[int, str]]:
    """(position, name) of the columns to keep, every name non-empty and distinct without regard to case.

    An unnamed column that holds nothing (``is_empty(position)``: a trailing delimiter on every line) is
    dropped; an unnamed column with values becomes ``column_<position>``. Of names that differ only in case
    (or repeat), the first keeps its name and the others get ``_2``, ``_3``… Each change is one warning naming
    ``where``. Only names are looked at (and ``is_empty`` for unnamed columns), so a streamed table is
    renamed without being read.
    """
    lowered = [n.strip().lower() for n in names]
    if all(lowered) and len(set(lowered)) == len(lowered):
        return list(enumerate(names))
    empty = [i for i, n in enumerate(lowered) if not n and is_empty(i)]
    if empty:
        what = "column" if len(empty) == 1 else "columns"
        positions = ", ".join(str(i + 1) for i in empty)
        warnings.append(f"{where}: unnamed empty {what} {positions} dropped (a trailing delimiter?)")
    kept = [i for i in range(len(names)) if i not in set(empty)]
    # Every name already present is taken, so a rename never lands on another column's own name.
    taken = {lowered[i] for i in kept if lowered[i]}
    first: dict[str, str] = {}
    out: list[tuple[int, str]] = []
    renamed: dict[str, list[str]] = {}
    for i in kept:
        name = names[i]
        if not lowered[i]:
            new = _unique(f"column_{i + 1}", taken)
            warnings.append(f"{where}: column {i + 1} has no name; kept as {new!r}")
        elif lowered[i] in first:
            new = _unique(name, taken)
            renamed.setdefault(lowered[i], []).append(f"{name!r} as {new!r}")
        else:
            first[lowered[i]] = new = name
        taken.add(new.lower())
        out.append((i, new))
    for key, kept_as in renamed.items():
        warnings.append(
            f"{where}: column names that differ only in case (or repeat) cannot be told apart in SQL: "
            f"{first[key]!r} kept, {', '.join(kept_as)}"
        )
    return out


def distinct_columns(table: pa.Table, where: str, warnings: list[str]) -> pa.Table:
    """``table`` with every column name non-empty and distinct without regard to case (see
    :func:`distinct_names`)."""
    kept = distinct_names(table.column_names, lambda i: table.column(i).null_count == table.num_rows, where, warnings)
    if [n for _, n in kept] == table.column_names:
        return table
    return pa.Table.from_arrays([table.column(i) for i, _ in kept], names=[n for _, n in kept])


def free_generated_names(table: pa.Table, generated: Collection[str], where: str, warnings: list[str]) -> pa.Table:
    """Rename source columns that would take a generated column's name (compared without case): a source
    ``profile_row`` is kept as ``profile_row_source``, so a generated column never replaces a user's."""
    wanted = {g.lower() for g in generated}
    clash = [n for n in table.column_names if n.lower() in wanted]
    if not clash:
        return table
    taken = {n.lower() for n in table.column_names} | wanted
    names = []
    for name in table.column_names:
        if name in clash:
            new = _unique(f"{name}{SOURCE_SUFFIX}", taken)
            taken.add(new.lower())
            warnings.append(f"{where}: column {name!r} is a name the pipeline generates; the file's is kept as {new!r}")
            names.append(new)
        else:
            names.append(name)
    return table.rename_columns(names)
