"""Profiles end to end: read each source, normalise its keys, resolve its rows to images, check the
contract, and publish the normalised tables and their image links to the catalog.

Publishing is incremental: a profile table is rewritten only when its source or its links changed, so a
re-run over unchanged inputs commits nothing and adding one table writes only that table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
from pyiceberg.catalog import Catalog

from bioimage_pipeline.catalog import load_table, read_table, replace_table, snapshot_property
from bioimage_pipeline.errors import BioimageError
from bioimage_pipeline.profiles.contract import ContractResult, CoverageResult, check_contract, check_coverage
from bioimage_pipeline.profiles.normalize import ROW_ID, normalize
from bioimage_pipeline.profiles.resolve import LINK_COLUMNS, image_candidates, resolve
from bioimage_pipeline.profiles.sources import ProfileSource, ProfileTable, read_profile_source
from bioimage_pipeline.tables import IMAGE_ASSETS

PROFILE_PREFIX = "profile_"
QC_PREFIX = "qc_"
LINKS_TABLE = "profile_links"
FINGERPRINT_KEY = "bioimage.content-fingerprint"
SOURCE_FINGERPRINT_KEY = "bioimage.source-fingerprint"
#: Bump when normalisation or resolution changes what they produce, so tables are rebuilt.
LOGIC_VERSION = "1"


@dataclass
class PreparedProfile:
    """One normalised, resolved and checked profile table, ready to publish."""

    table: ProfileTable
    data: pa.Table
    links: pd.DataFrame
    contract: ContractResult
    coverage: CoverageResult
    fingerprint: str
    source_fingerprint: str

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def catalog_name(self) -> str:
        return catalog_table_name(self.table.name, self.table.role)


@dataclass
class PreparedProfiles:
    tables: list[PreparedProfile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Sources that could not be read at all: (source path, one-line error).
    failures: list[tuple[str, str]] = field(default_factory=list)


def catalog_table_name(name: str, role: str) -> str:
    return f"{QC_PREFIX if role == 'quality_control' else PROFILE_PREFIX}{name}"


def _links_hash(links: pd.DataFrame) -> str:
    if links.empty:
        return "0"
    return str(int(pd.util.hash_pandas_object(links[list(LINK_COLUMNS)].astype(str), index=False).sum()))


def prepare_profiles(
    sources: Sequence[ProfileSource],
    image_assets: pa.Table | None,
    aliases: Mapping[str, Sequence[str]] | None = None,
) -> PreparedProfiles:
    """Read, normalise, resolve and check every source. A source that cannot be read is recorded, never
    raised: the other tables still go through."""
    images = image_candidates(image_assets)
    out = PreparedProfiles()
    names: dict[str, str] = {}
    alias_key = json.dumps(aliases or {}, sort_keys=True)
    for source in sources:
        try:
            tables, warnings = read_profile_source(source)
        except BioimageError as exc:
            out.failures.append((str(source.path), str(exc)))
            continue
        except Exception as exc:  # an unforeseen file quirk: isolate it to this source
            out.failures.append((str(source.path), f"{source.path}: cannot be read ({type(exc).__name__}: {exc})"))
            continue
        out.warnings.extend(warnings)
        for table in tables:
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
            normalized = normalize(table.data, aliases)
            resolution = resolve(normalized, images)
            contract = check_contract(table.name, resolution, normalized.sources)
            coverage = check_coverage(table.name, resolution)
            digest = hashlib.sha256(
                "\0".join(
                    [LOGIC_VERSION, source.fingerprint, table.name, alias_key, _links_hash(resolution.links)]
                ).encode()
            ).hexdigest()[:32]
            out.tables.append(
                PreparedProfile(
                    table, resolution.data, resolution.links, contract, coverage, digest, source.fingerprint
                )
            )
    return out


@dataclass
class PublishResult:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    rows_written: int = 0


def _table_properties(p: PreparedProfile) -> dict[str, str]:
    return {
        SOURCE_FINGERPRINT_KEY: p.source_fingerprint,
        "bioimage.role": p.table.role,
        "bioimage.profile-level": p.table.profile_level,
        "bioimage.compartment": p.table.compartment or "",
        "bioimage.source": p.table.source,
        "bioimage.profile-name": p.table.name,
    }


def published_profile_tables(catalog: Catalog, namespace: str) -> list[str]:
    try:
        identifiers = catalog.list_tables(namespace)
    except Exception:
        return []
    return sorted(i[-1] for i in identifiers if i[-1].startswith((PROFILE_PREFIX, QC_PREFIX)) and i[-1] != LINKS_TABLE)


def publish_profiles(catalog: Catalog, namespace: str, prepared: PreparedProfiles) -> PublishResult:
    """Write changed profile tables and the link table; drop tables whose source disappeared."""
    result = PublishResult()
    keep = set()
    for p in prepared.tables:
        keep.add(p.catalog_name)
        existing = load_table(catalog, namespace, p.catalog_name)
        if snapshot_property(existing, FINGERPRINT_KEY) == p.fingerprint:
            result.unchanged.append(p.catalog_name)
            continue
        result.rows_written += replace_table(
            catalog,
            namespace,
            p.catalog_name,
            p.data,
            summary={FINGERPRINT_KEY: p.fingerprint},
            properties=_table_properties(p),
        )
        result.written.append(p.catalog_name)
    failed_sources = {path for path, _ in prepared.failures}
    for name in published_profile_tables(catalog, namespace):
        if name in keep:
            continue
        table = load_table(catalog, namespace, name)
        source = (table.properties.get("bioimage.source") if table is not None else None) or ""
        if any(source == f or source.startswith(f.rstrip("/") + "/") for f in failed_sources):
            keep.add(name)  # its source is there but unreadable now: keep the last good table
            continue
        catalog.drop_table((namespace, name))
        result.dropped.append(name)
    _publish_links(catalog, namespace, prepared, keep, result)
    return result


def _publish_links(
    catalog: Catalog, namespace: str, prepared: PreparedProfiles, keep: set[str], result: PublishResult
) -> None:
    frames = []
    fingerprints = []
    prepared_names = {p.catalog_name for p in prepared.tables}
    for p in prepared.tables:
        frames.append(p.links.assign(profile_table=p.catalog_name))
        fingerprints.append(p.fingerprint)
    existing = load_table(catalog, namespace, LINKS_TABLE)
    kept_links = None
    carried = sorted(keep - prepared_names)
    if carried and existing is not None:
        old = read_table(catalog, namespace, LINKS_TABLE)
        if old is not None:
            kept_links = old.to_pandas()
            kept_links = kept_links[kept_links["profile_table"].isin(carried)]
            frames.append(kept_links)
            fingerprints.append(f"carried:{','.join(carried)}")
    digest = hashlib.sha256("\0".join(sorted(fingerprints)).encode()).hexdigest()[:32]
    if snapshot_property(existing, FINGERPRINT_KEY) == digest:
        return
    columns = ["profile_table", *LINK_COLUMNS]
    links = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    schema = pa.schema(
        [
            ("profile_table", pa.string()),
            (ROW_ID, pa.int64()),
            ("dataset_id", pa.string()),
            ("image_id", pa.string()),
            ("channel", pa.string()),
            ("method", pa.string()),
            ("rank", pa.int64()),
        ]
    )
    data = pa.Table.from_pandas(links.astype({ROW_ID: "int64", "rank": "int64"}), schema=schema, preserve_index=False)
    replace_table(catalog, namespace, LINKS_TABLE, data, summary={FINGERPRINT_KEY: digest})
    result.written.append(LINKS_TABLE)


LINKS_SCHEMA = pa.schema(
    [
        ("profile_table", pa.string()),
        (ROW_ID, pa.int64()),
        ("dataset_id", pa.string()),
        ("image_id", pa.string()),
        ("channel", pa.string()),
        ("method", pa.string()),
        ("rank", pa.int64()),
    ]
)


def links_table(frames: Sequence[pd.DataFrame]) -> pa.Table:
    """The ``profile_links`` rows of several tables' link frames (each with a ``profile_table`` column)."""
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
