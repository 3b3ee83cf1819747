"""Per-source options: a TOML file beside a profile source, named after it with ``.toml`` added.

    plate1/BR00116991.sqlite        the source
    plate1/BR00116991.sqlite.toml   its options

    site_offset = -1        # profiles count sites from 1, the images from 0: image site = profile site - 1
    single_cell = true      # CellProfiler SQLite: merge Cells, Cytoplasm and Nuclei into one single-cell table
    compartments = false    # CellProfiler SQLite: also publish those three tables on their own

The file is part of the source: changing it re-reads the source on the next run. An unknown option or a value
of the wrong type is an error naming the file, never ignored.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from bioimage_pipeline.errors import ProfileError

SUFFIX = ".toml"


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    #: Added to a profile row's site number before it is matched to the images' sites.
    site_offset: int = 0
    #: CellProfiler SQLite: the single-cell table (CytoTable's ``cellprofiler_sqlite_pycytominer`` shape).
    single_cell: bool = True
    #: CellProfiler SQLite: the merged object tables on their own too.
    compartments: bool = False


def options_path(source: Path) -> Path:
    """Where the options of ``source`` (a file or a CellProfiler folder) are kept."""
    return source.with_name(source.name + SUFFIX)


def read_options(source: Path) -> SourceOptions:
    """The options of ``source``; the defaults when it has no options file."""
    path = options_path(source)
    if not path.is_file():
        return SourceOptions()
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(path, f"not a readable TOML file ({exc})") from exc
    known = {f.name: f for f in fields(SourceOptions)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ProfileError(path, f"unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for name, value in values.items():
        wanted = int if name == "site_offset" else bool
        # bool is an int in Python; a site offset of `true` is a mistake, not 1.
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise ProfileError(path, f"option {name!r} must be {'an integer' if wanted is int else 'true or false'}")
    return SourceOptions(**values)
