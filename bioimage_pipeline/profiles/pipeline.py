"""Profiles end to end: read each source, normalise its keys, resolve its rows to images, check the
contract, and publish the normalised tables and their image links to the catalog.

Publishing is incremental. A source is not even read again while its files, the aliases and the catalog's
images are what they were at the last run (its contract and coverage results are carried forward from
the catalog); a profile table is rewritten only when its rows or its links changed. A re-run over
unchanged inputs commits nothing, and adding one table writes only that table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from bioimage_pipeline.catalog import (
    load_table,
    profile_table_layout,
    profile_writer_options,
    read_table,
    replace_table,
    set_properties,
    snapshot_property,
)
from bioimage_pipeline.errors import BioimageError, ProfileError
from bioimage_pipeline.profiles.contract import ContractResult, CoverageResult, check_contract, check_coverage
from bioimage_pipeline.profiles.kinds import COMPARTMENT_PROPERTY, LEVEL_PROPERTY, is_joined_name
from bioimage_pipeline.profiles.normalize import KEY_COLUMNS, ROW_ID, key_columns, normalize, output_columns
from bioimage_pipeline.profiles.resolve import LINK_COLUMNS, image_candidates, resolve
from bioimage_pipeline.profiles.sources import (
    InMemory,
    ProfileSource,
    ProfileTable,
    TableContent,
    read_profile_source,
    source_fingerprint,
)
from bioimage_pipeline.profiles.sqlite import SchemaChanged
from bioimage_pipeline.tables import IMAGE_ASSETS

PROFILE_PREFIX = "profile_"
QC_PREFIX = "qc_"
LINKS_TABLE = "profile_links"
FINGERPRINT_KEY = "bioimage.content-fingerprint"
SOURCE_FINGERPRINT_KEY = "bioimage.source-fingerprint"
#: On the links table: per source and per table, what the last run read and concluded (JSON).
STATE_KEY = "bioimage.profile-state"
#: Bump when normalisation or resolution changes what they produce, so tables are rebuilt.
LOGIC_VERSION = "3"

if TYPE_CHECKING:  # imported where used: pandas costs half a second, which `status` need not pay
    import pandas as pd


@dataclass(frozen=True, kw_only=True)
class ProfileRows:
    """A normalised table's rows, streamed: its key columns (``profile_row`` and the canonical keys, held in
    memory: a few columns however wide the table) beside the source's other columns, read a batch at a time
    from the source and renamed as normalisation renames them."""

    keys: pa.Table
    content: TableContent
    source_columns: tuple[str, ...]
    names: tuple[str, ...]
    #: The source as its keys were read: streamed rows of a source changed since then are refused, so keys
    #: never go with another version's rows.
    source: ProfileSource | None = None

    @property
    def schema(self) -> pa.Schema:
        source = self.content.schema
        fields = [source.field(c).with_name(n) for c, n in zip(self.source_columns, self.names, strict=True)]
        return pa.schema([*self.keys.schema, *fields])

    @property
    def num_rows(self) -> int:
        return self.keys.num_rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Every row, a source batch at a time, in the source's order (the keys' order)."""
        self._check_unchanged()
        schema = self.schema
        offset = 0
        for batch in self.content.batches():
            keys = self.keys.slice(offset, batch.num_rows)
            columns = [*(c.combine_chunks() for c in keys.columns), *(batch.column(c) for c in self.source_columns)]
            offset += batch.num_rows
            yield pa.RecordBatch.from_arrays(columns, schema=schema)
        self._check_unchanged(offset)

    def _check_unchanged(self, rows: int | None = None) -> None:
        changed = rows is not None and rows != self.keys.num_rows
        if self.source is not None:
            changed = changed or source_fingerprint(self.source.path) != self.source.fingerprint
        if changed:
            where = self.source.path if self.source is not None else Path(str(getattr(self.content, "path", "")))
            raise ProfileError(where, "changed while it was read; read again on the next run")

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())


@dataclass
class PreparedProfile:
    """One normalised, resolved and checked profile table, ready to publish.

    ``rows`` and ``links`` are None for a table carried over unchanged from the last run: only its checks'
    results are known, and nothing about it is written again.
    """

    table: ProfileTable
    rows: ProfileRows | None
    links: pd.DataFrame | None
    contract: ContractResult
    coverage: CoverageResult
    fingerprint: str
    source_fingerprint: str
    #: Set when the table could not be written (its source changed or failed while it streamed): its last
    #: good version and links stay, and its source is read again on the next run.
    error: str | None = None

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def catalog_name(self) -> str:
        return catalog_table_name(self.table.name, self.table.role)

    @property
    def carried(self) -> bool:
        return self.rows is None

    @property
    def blocked(self) -> bool:
        """A profile table that fails the join contract: never published (its last good version stays)."""
        return self.table.role == "profiles" and not self.contract.passed

    def state(self) -> dict[str, Any]:
        t = self.table
        return {
            "name": t.name,
            "source": t.source,
            "role": t.role,
            "compartment": t.compartment,
            "profile_level": t.profile_level,
            "fingerprint": self.fingerprint,
            "source_fingerprint": self.source_fingerprint,
            "contract": self.contract.to_dict(),
            "coverage": self.coverage.to_dict(),
        }


@dataclass
class PreparedProfiles:
    tables: list[PreparedProfile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Sources that could not be read at all: (source path, one-line error).
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: What to remember for the next run (see STATE_KEY).
    state: dict[str, dict[str, Any]] = field(default_factory=lambda: {"sources": {}, "tables": {}})


def catalog_table_name(name: str, role: str) -> str:
    return f"{QC_PREFIX if role == 'quality_control' else PROFILE_PREFIX}{name}"


def _links_hash(links: pd.DataFrame) -> str:
    import pandas as pd

    if links.empty:
        return "0"
    # Hashed as they are (no copy as text: a plate has millions of links); nulls hash alike whatever the dtype.
    return str(int(pd.util.hash_pandas_object(links[list(LINK_COLUMNS)], index=False).sum()))


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _carried(entry: Mapping[str, Any]) -> PreparedProfile:
    table = ProfileTable(
        str(entry["name"]),
        str(entry["source"]),
        str(entry["role"]),
        InMemory(pa.table({})),
        compartment=entry.get("compartment"),
        profile_level=str(entry["profile_level"]),
    )
    return PreparedProfile(
        table,
        None,
        None,
        ContractResult(**entry["contract"]),
        CoverageResult(**entry["coverage"]),
        str(entry["fingerprint"]),
        str(entry["source_fingerprint"]),
    )


def prepare_profiles(
    sources: Sequence[ProfileSource],
    image_assets: pa.Table | Callable[[], pa.Table | None] | None,
    aliases: Mapping[str, Sequence[str]] | None = None,
    previous: Mapping[str, Mapping[str, Any]] | None = None,
    images_version: str = "",
) -> PreparedProfiles:
    """Read, normalise, resolve and check every source. A source that cannot be read is recorded, never
    raised: the other tables still go through.

    With ``previous`` (the state the last run left) and ``images_version`` (which catalog images it
    resolved against), a source whose inputs are unchanged is carried over without being read.
    ``image_assets`` may be a callable, so that a run where nothing needs resolving never loads them.
    """
    images: pd.DataFrame | None = None

    def candidates() -> pd.DataFrame:
        nonlocal images
        if images is None:
            images = image_candidates(image_assets() if callable(image_assets) else image_assets)
        return images

    out = PreparedProfiles()
    names: dict[str, str] = {}
    alias_key = json.dumps(aliases or {}, sort_keys=True)
    old_sources = (previous or {}).get("sources", {})
    old_tables = (previous or {}).get("tables", {})
    for source in sources:
        key = str(source.path)
        inputs = _digest(LOGIC_VERSION, source.fingerprint, alias_key, images_version)
        old = old_sources.get(key)
        if images_version and old and old.get("inputs") == inputs and all(t in old_tables for t in old["tables"]):
            carried = [_carried(old_tables[t]) for t in old["tables"]]
            if not any(p.name in names for p in carried):
                for p in carried:
                    names[p.name] = key
                    out.tables.append(p)
                    out.state["tables"][p.catalog_name] = dict(old_tables[p.catalog_name])
                out.warnings.extend(old.get("warnings", []))
                out.failures.extend((error.split(": ", 1)[0], error) for error in old.get("errors", []))
                out.state["sources"][key] = dict(old)
                continue
        try:
            contents = read_profile_source(source)
        except BioimageError as exc:
            out.failures.append((key, str(exc)))
            continue
        except Exception as exc:  # an unforeseen file quirk: isolate it to this source
            out.failures.append((key, f"{source.path}: cannot be read ({type(exc).__name__}: {exc})"))
            continue
        out.warnings.extend(contents.warnings)
        out.failures.extend((error.split(": ", 1)[0], error) for error in contents.errors)
        produced = []
        for table in contents.tables:
            if table.role == "profiles" and is_joined_name(table.name):
                # The warehouse puts both in the profiles namespace: one name, two tables.
                out.failures.append(
                    (
                        table.source,
                        f"{table.source}: profile table name {table.name!r} is reserved for the "
                        "joined tables (joined_profiles*); rename the source",
                    )
                )
                continue
            if table.name in names:
                out.failures.append(
                    (
                        table.source,
                        f"{table.source}: profile table name {table.name!r} is also "
                        f"used by {names[table.name]}; rename one of them",
                    )
                )
                continue
            names[table.name] = table.source
            # Only the key columns are read here; the rest stays in the source until it is published.
            source_columns, output_names, rename_warnings = output_columns(table.schema, aliases, table.source)
            try:
                keys = table.content.read(key_columns(table.schema.names, aliases))
            except ProfileError as exc:  # this table costs only itself; the source's other tables go on
                out.failures.append((table.source, str(exc)))
                continue
            normalized = normalize(keys, aliases, table.source)
            normalized.warnings[:0] = [w for w in rename_warnings if w not in normalized.warnings]
            resolution = resolve(normalized, candidates(), table.site_offset)
            rows = ProfileRows(
                keys=resolution.data.select([ROW_ID, *KEY_COLUMNS]),
                content=table.content,
                source_columns=tuple(source_columns),
                names=tuple(output_names),
                source=source,
            )
            contract = check_contract(table.name, resolution, normalized.sources)
            coverage = check_coverage(table.name, resolution)
            digest = _digest(LOGIC_VERSION, source.fingerprint, table.name, alias_key, _links_hash(resolution.links))
            prepared = PreparedProfile(table, rows, resolution.links, contract, coverage, digest, source.fingerprint)
            out.tables.append(prepared)
            out.state["tables"][prepared.catalog_name] = prepared.state()
            produced.append(prepared.catalog_name)
        out.state["sources"][key] = {
            "inputs": inputs,
            "tables": produced,
            "warnings": contents.warnings,
            "errors": contents.errors,
        }
    return out


@dataclass
class PublishResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    #: Profile tables that fail the join contract: not written (a previous good version is kept).
    blocked: list[str] = field(default_factory=list)
    #: Profile tables whose rows could not be read while writing them (one line each in the failures).
    failed: list[str] = field(default_factory=list)
    rows_written: int = 0


def _table_properties(p: PreparedProfile) -> dict[str, str]:
    return {
        SOURCE_FINGERPRINT_KEY: p.source_fingerprint,
        "bioimage.role": p.table.role,
        LEVEL_PROPERTY: p.table.profile_level,
        COMPARTMENT_PROPERTY: p.table.compartment or "",
        "bioimage.source": p.table.source,
        "bioimage.profile-name": p.table.name,
    }


def published_profile_tables(catalog: Catalog, namespace: str) -> list[str]:
    try:
        identifiers = catalog.list_tables(namespace)
    except Exception:
        return []
    return sorted(i[-1] for i in identifiers if i[-1].startswith((PROFILE_PREFIX, QC_PREFIX)) and i[-1] != LINKS_TABLE)


def previous_state(catalog: Catalog, namespace: str) -> dict[str, dict[str, Any]]:
    """What the last run left on the links table (empty before the first run)."""
    table = load_table(catalog, namespace, LINKS_TABLE)
    raw = table.properties.get(STATE_KEY) if table is not None else None
    try:
        state = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        state = {}
    return state if isinstance(state, dict) else {}


def images_version(catalog: Catalog, namespace: str) -> str:
    """Identifies the catalog's images: the current snapshot of image_assets."""
    table = load_table(catalog, namespace, IMAGE_ASSETS)
    snapshot = table.current_snapshot() if table is not None else None
    return str(snapshot.snapshot_id) if snapshot is not None else "none"


def refresh_profiles(
    catalog: Catalog,
    namespace: str,
    sources: Sequence[ProfileSource],
    aliases: Mapping[str, Sequence[str]] | None = None,
    complete: bool = True,
) -> tuple[PreparedProfiles, PublishResult]:
    """Prepare sources against the catalog's images and publish what changed.

    ``complete``: the sources are every profile source there is (the profiles root), so tables of sources
    that disappeared are dropped. Otherwise (tables named on the command line) other tables are left alone.
    """
    previous = previous_state(catalog, namespace)
    prepared = prepare_profiles(
        sources, lambda: load_image_assets(catalog, namespace), aliases, previous, images_version(catalog, namespace)
    )
    if not complete:
        for part in ("sources", "tables"):
            for key, value in previous.get(part, {}).items():
                prepared.state[part].setdefault(key, value)
    return prepared, publish_profiles(catalog, namespace, prepared, drop_missing=complete)


def publish_profiles(
    catalog: Catalog, namespace: str, prepared: PreparedProfiles, drop_missing: bool = True
) -> PublishResult:
    """Write changed profile tables and the link table; with ``drop_missing``, drop tables whose source
    is not among the prepared ones (it disappeared). Tables that fail the contract are not written."""
    result = PublishResult()
    keep = set()
    for p in prepared.tables:
        keep.add(p.catalog_name)
        if p.blocked:
            result.blocked.append(p.catalog_name)
            continue
        if p.rows is None:  # carried over unchanged
            result.unchanged.append(p.catalog_name)
            continue
        existing = load_table(catalog, namespace, p.catalog_name)
        if snapshot_property(existing, FINGERPRINT_KEY) == p.fingerprint:
            result.unchanged.append(p.catalog_name)
            continue
        try:
            result.rows_written += _write_profile_table(catalog, namespace, p)
        except ProfileError as exc:
            # This table costs only itself: nothing of it was committed, the others still go through.
            p.error = str(exc)
            prepared.failures.append((p.table.source, str(exc)))
            for source, entry in list(prepared.state["sources"].items()):
                if p.catalog_name in entry.get("tables", []):
                    del prepared.state["sources"][source]  # read again on the next run
            result.failed.append(p.catalog_name)
            continue
        result.written.append(p.catalog_name)
    failed_sources = {path for path, _ in prepared.failures}
    for name in published_profile_tables(catalog, namespace):
        if name in keep:
            continue
        table = load_table(catalog, namespace, name)
        source = (table.properties.get("bioimage.source") if table is not None else None) or ""
        if not drop_missing or any(source == f or source.startswith(f.rstrip("/") + "/") for f in failed_sources):
            keep.add(name)  # not ours to drop, or its source is there but unreadable now: keep the last good table
            continue
        with contextlib.suppress(NoSuchTableError):  # a concurrent run dropped it first
            catalog.drop_table((namespace, name))
        result.dropped.append(name)
    _publish_links(catalog, namespace, prepared, keep, result)
    return result


def _write_profile_table(catalog: Catalog, namespace: str, p: PreparedProfile) -> int:
    """Write one profile table; a source whose column types had to be corrected mid-read is read once more."""
    rows = p.rows
    assert rows is not None

    def write() -> int:
        return replace_table(
            catalog,
            namespace,
            p.catalog_name,
            rows.reader(),
            summary={FINGERPRINT_KEY: p.fingerprint},
            properties=_table_properties(p),
            layout=profile_table_layout([ROW_ID, *KEY_COLUMNS]),
            writer_options=profile_writer_options(rows.schema, [ROW_ID, *KEY_COLUMNS]),
        )

    try:
        return write()
    except SchemaChanged:  # the types are corrected now: once more from the start (a second failure raises)
        return write()


def _publish_links(
    catalog: Catalog, namespace: str, prepared: PreparedProfiles, keep: set[str], result: PublishResult
) -> None:
    """Rewrite profile_links when a table's links changed; always record the run's state."""
    fresh = [p for p in prepared.tables if not p.carried and not p.blocked and p.error is None]
    frames = [p.links.assign(profile_table=p.catalog_name) for p in fresh if p.links is not None]
    # A blocked table contributes the links of its last good version, which its fingerprint does not name.
    fingerprints = sorted(
        f"blocked:{p.catalog_name}" if p.blocked or p.error else f"{p.catalog_name}={p.fingerprint}"
        for p in prepared.tables
    )
    carried = sorted(keep - {p.catalog_name for p in fresh})
    existing = load_table(catalog, namespace, LINKS_TABLE)
    fingerprints += [f"kept:{name}" for name in carried if name not in {p.catalog_name for p in prepared.tables}]
    digest = _digest(*fingerprints)
    state = json.dumps(prepared.state, sort_keys=True)
    if snapshot_property(existing, FINGERPRINT_KEY) == digest:
        if existing is not None:
            set_properties(existing, {STATE_KEY: state})
        return
    if carried and existing is not None:
        old = read_table(catalog, namespace, LINKS_TABLE)
        if old is not None:
            kept_links = old.to_pandas()
            frames.append(kept_links[kept_links["profile_table"].isin(carried)])
    replace_table(
        catalog,
        namespace,
        LINKS_TABLE,
        links_table(frames),
        summary={FINGERPRINT_KEY: digest},
        properties={STATE_KEY: state},
    )
    result.written.append(LINKS_TABLE)


LINKS_SCHEMA = pa.schema(
    [
        ("profile_table", pa.string()),
        (ROW_ID, pa.int64()),
        ("dataset_id", pa.string()),
        ("image_id", pa.string()),
        ("array_path", pa.string()),
        ("channel", pa.string()),
        ("method", pa.string()),
        ("rank", pa.int64()),
    ]
)


def links_table(frames: Sequence[pd.DataFrame]) -> pa.Table:
    """The ``profile_links`` rows of several tables' link frames (each with a ``profile_table`` column)."""
    import pandas as pd

    columns = LINKS_SCHEMA.names
    links = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    return pa.Table.from_pandas(
        links.astype({ROW_ID: "int64", "rank": "int64"}), schema=LINKS_SCHEMA, preserve_index=False
    )


def load_image_assets(catalog: Catalog, namespace: str) -> pa.Table | None:
    return read_table(catalog, namespace, IMAGE_ASSETS)


def joinable_profile_tables(catalog: Catalog, namespace: str) -> list[str]:
    """Published profile tables (not QC tables): the ones ``joined_profiles`` is built from."""
    return [n for n in published_profile_tables(catalog, namespace) if n.startswith(PROFILE_PREFIX)]
