"""Summaries for people: one store (``summarize``) and the whole catalog (``status``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyiceberg.catalog import Catalog

from bioimage_pipeline.catalog import catalog_properties, load_table, null_count, total_rows
from bioimage_pipeline.config import PipelineConfig
from bioimage_pipeline.export import exported_warehouse
from bioimage_pipeline.model import StoreScan
from bioimage_pipeline.profiles.kinds import published_joined_tables
from bioimage_pipeline.profiles.pipeline import joinable_profile_tables, published_profile_tables
from bioimage_pipeline.registry import read_registry
from bioimage_pipeline.tables import CHUNK_INDEX
from bioimage_pipeline.warehouse import read_manifest


@dataclass
class StoreSummary:
    dataset_id: str
    uri: str
    format: str
    image_count: int
    array_count: int
    chunked_array_count: int
    chunk_count: int
    chunks_stored: int
    stored_bytes: int
    storage_variants: list[str]
    ngff_versions: list[str]
    dtypes: list[str]
    level0_shapes: list[list[int]]
    axes: list[list[str]]
    channel_counts: list[int]
    plates: list[str]
    wells: int
    sites: int
    labels: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"{self.dataset_id}  ({self.format}, {', '.join(self.storage_variants)})",
            f"  uri           {self.uri}",
            f"  images        {self.image_count} ({self.labels} label images)"
            if self.labels
            else f"  images        {self.image_count}",
            f"  arrays        {self.array_count} ({self.chunked_array_count} chunked)",
            f"  chunks        {self.chunk_count:,} in the grid, {self.chunks_stored:,} stored "
            f"({_bytes(self.stored_bytes)})",
            f"  dtypes        {', '.join(self.dtypes)}",
            f"  level 0       {_shapes(self.level0_shapes, self.axes)}",
        ]
        if self.ngff_versions:
            lines.append(f"  OME-NGFF      {', '.join(self.ngff_versions)}")
        if self.plates:
            lines.append(f"  plate         {', '.join(self.plates)}: {self.wells} wells, {self.sites} fields")
        if self.warnings:
            lines.append(f"  warnings      {len(self.warnings)}")
            lines += [f"    - {w}" for w in self.warnings[:10]]
            if len(self.warnings) > 10:
                lines.append(f"    … and {len(self.warnings) - 10} more (--json lists all)")
        return "\n".join(lines)


def _shape(shape: list[int], axes: list[str] | None) -> str:
    if axes and len(axes) == len(shape):
        return ", ".join(f"{a}:{n}" for a, n in zip(axes, shape, strict=True))
    return ", ".join(str(n) for n in shape)


def _shapes(shapes: list[list[int]], axes: list[list[str]]) -> str:
    counts = Counter(_shape(s, a) for s, a in zip(shapes, axes, strict=False))
    parts = [f"{n} × ({text})" if n > 1 else f"({text})" for text, n in counts.most_common(4)]
    return "; ".join(parts) + (" …" if len(counts) > 4 else "")


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def summarize_scan(scan: StoreScan) -> StoreSummary:
    arrays = scan.arrays
    level0 = [a for a in arrays if a.level == 0 and a.kind == "image"] or [a for a in arrays if a.level == 0]
    wells = {(a.plate_id, a.well_id) for a in arrays if a.well_id}
    sites = {(a.plate_id, a.well_id, a.site_id) for a in arrays if a.well_id}
    return StoreSummary(
        dataset_id=scan.dataset_id,
        uri=scan.uri,
        format=scan.format,
        image_count=len({a.image_id for a in arrays if a.kind == "image"}),
        array_count=len(arrays),
        chunked_array_count=sum(1 for a in arrays if a.chunk_count),
        chunk_count=scan.chunk_count,
        chunks_stored=sum(a.chunks_stored for a in arrays),
        stored_bytes=sum(a.stored_bytes for a in arrays),
        storage_variants=sorted({a.storage_variant for a in arrays}),
        ngff_versions=sorted({a.ngff_version for a in arrays if a.ngff_version}),
        dtypes=[d for d, _ in Counter(a.dtype for a in arrays).most_common()],
        level0_shapes=[list(a.shape) for a in level0],
        axes=[list(a.axes or []) for a in level0],
        channel_counts=[len(a.channel_names) for a in level0 if a.channel_names],
        plates=sorted({a.plate_id for a in arrays if a.plate_id}),
        wells=len(wells),
        sites=len(sites),
        labels=len({a.image_id for a in arrays if a.kind == "label"}),
        warnings=list(scan.warnings),
    )


@dataclass
class CatalogStatus:
    catalog: str
    uri: str
    namespace: str
    #: Where the Iceberg tables' files are (the catalog's warehouse).
    iceberg_warehouse: str = ""
    stores: int = 0
    stores_ok: int = 0
    stores_failed: int = 0
    images: int = 0
    arrays: int = 0
    chunks: int = 0
    chunks_stored: int = 0
    profile_tables: int = 0
    profile_rows: int = 0
    joined_tables: int = 0
    joined_rows: int = 0
    joined_matched: int = 0
    warehouse: str = ""
    warehouse_tables: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"catalog    {self.catalog} ({self.uri}), namespace {self.namespace}",
            f"tables in  {self.iceberg_warehouse}",
            f"stores     {self.stores} ({self.stores_ok} ingested, {self.stores_failed} failed)",
            f"images     {self.images} in {self.arrays} arrays",
            f"chunks     {self.chunks:,} indexed, {self.chunks_stored:,} stored",
            f"profiles   {self.profile_tables} tables, {self.profile_rows:,} rows",
            f"joined     {self.joined_rows:,} profile rows joined in {self.joined_tables} "
            f"table{'s' if self.joined_tables != 1 else ''}, {self.joined_matched:,} linked to images",
            f"warehouse  {self.warehouse} ({self.warehouse_tables} tables)"
            if self.warehouse_tables
            else f"warehouse  {self.warehouse} (not written yet)",
        ]
        for f in self.failures:
            lines.append(f"  failed   {f['dataset_id']}: {f['error']}")
        return "\n".join(lines)


def _absolute(uri: str) -> str:
    """A SQLite URI with its path made absolute (SQLAlchemy reads a relative one from the working folder)."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        return prefix + str(Path(uri[len(prefix) :]).absolute())
    return uri


def catalog_status(config: PipelineConfig, catalog: Catalog) -> CatalogStatus:
    ns = config.namespace
    props = catalog_properties(config)
    # The warehouse the last export wrote, wherever that was; the configured one until anything was.
    written = exported_warehouse(catalog, ns)
    status = CatalogStatus(
        config.catalog_name,
        _absolute(props.get("uri", "")),
        ns,
        iceberg_warehouse=props.get("warehouse", ""),
        warehouse=written or str(config.warehouse_dir),
    )
    registry = read_registry(catalog, ns)
    status.stores = len(registry)
    status.stores_ok = sum(1 for r in registry.values() if r["status"] == "ok")
    status.stores_failed = status.stores - status.stores_ok
    status.failures = [
        {"dataset_id": d, "error": r["error"] or ""} for d, r in sorted(registry.items()) if r["status"] == "failed"
    ]
    # Everything below comes from the registry (a row per store), snapshot summaries and manifest statistics:
    # no data file of the big tables is read, so status costs the same at ten stores as at thousands of plates.
    ingested = [r for r in registry.values() if r.get("ingested_fingerprint")]
    status.images = sum(r.get("image_count") or 0 for r in ingested)
    status.arrays = sum(r.get("array_count") or 0 for r in ingested)
    chunks = load_table(catalog, ns, CHUNK_INDEX)
    status.chunks = total_rows(chunks)
    # byte_length is null exactly for chunks that are not stored.
    status.chunks_stored = status.chunks - null_count(chunks, "byte_length")
    tables = joinable_profile_tables(catalog, ns)
    status.profile_tables = len(published_profile_tables(catalog, ns))
    status.profile_rows = sum(total_rows(load_table(catalog, ns, t)) for t in tables)
    for name in published_joined_tables(catalog, ns):
        joined = load_table(catalog, ns, name)
        if joined is None:
            continue
        from bioimage_pipeline.joins import joined_counts  # DuckDB: imported only when there is a join

        counts = joined_counts(joined).values()
        status.joined_tables += 1
        status.joined_rows += sum(n for n, _ in counts)
        status.joined_matched += sum(m for _, m in counts)
    manifest = read_manifest(Path(status.warehouse)) if Path(status.warehouse).exists() else None
    status.warehouse_tables = len((manifest or {}).get("tables", []))
    return status
