"""Export the catalog's tables to a Cytomining warehouse (see :mod:`bioimage_pipeline.warehouse`)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from bioimage_pipeline import warehouse
from bioimage_pipeline.catalog import load_table, total_rows
from bioimage_pipeline.profiles.kinds import COMPARTMENT_PROPERTY, LEVEL_PROPERTY, published_joined_tables, table_kind
from bioimage_pipeline.profiles.normalize import KEY_COLUMNS, ROW_ID
from bioimage_pipeline.profiles.pipeline import PROFILE_PREFIX, QC_PREFIX, published_profile_tables
from bioimage_pipeline.tables import CHUNK_INDEX, IMAGE_ASSETS, JOINED_PROFILES

#: Namespace property: the warehouse the last export published, so `status` shows where it actually is.
WAREHOUSE_PROPERTY = "bioimage.warehouse"


def exported_warehouse(catalog: Catalog, namespace: str) -> str | None:
    try:
        return catalog.load_namespace_properties(namespace).get(WAREHOUSE_PROPERTY)
    except Exception:  # no namespace yet
        return None


def _record_warehouse(catalog: Catalog, namespace: str, root: Path) -> None:
    location = str(Path(root).absolute())
    if exported_warehouse(catalog, namespace) != location:
        with contextlib.suppress(Exception):  # a catalog that keeps no namespace properties: status guesses
            catalog.update_namespace_properties(namespace, updates={WAREHOUSE_PROPERTY: location})


def _source(table: Table, namespace: str, name: str) -> tuple[list[str], Any, str]:
    """(local data files to link, or Arrow data to write) and a reference naming the snapshot."""
    snapshot = table.current_snapshot()
    ref = f"{namespace}.{name}@{snapshot.snapshot_id if snapshot else 'empty'}"
    tasks = list(table.scan().plan_files()) if snapshot else []
    paths = []
    for task in tasks:
        parsed = urlparse(task.file.file_path)
        if parsed.scheme not in ("", "file") or task.delete_files:
            return [], table.scan().to_arrow(), ref
        paths.append(parsed.path if parsed.scheme else task.file.file_path)
    if not paths:
        return [], table.schema().as_arrow().empty_table(), ref
    return paths, None, ref


def _entry(
    table: Table, namespace: str, name: str, table_name: str, role: str, join_keys: list[str], **extra: Any
) -> warehouse.WarehouseTable:
    files, data, ref = _source(table, namespace, name)
    return warehouse.WarehouseTable(
        table_name, role, join_keys, files=files, data=data, source_type="iceberg", source_ref=ref, **extra
    )


def catalog_warehouse_tables(
    catalog: Catalog, namespace: str, include_chunks: bool = True
) -> list[warehouse.WarehouseTable]:
    """Image tables and every published profile / QC table, as warehouse tables."""
    out = []
    assets = load_table(catalog, namespace, IMAGE_ASSETS)
    if assets is not None:
        out.append(
            _entry(
                assets,
                namespace,
                IMAGE_ASSETS,
                "images.image_assets",
                "image_assets",
                ["dataset_id", "image_id", "array_path"],
            )
        )
    chunks = load_table(catalog, namespace, CHUNK_INDEX)
    # The specification wants chunk_index omitted (or empty) when there is no chunk metadata.
    if include_chunks and chunks is not None and total_rows(chunks) > 0:
        out.append(
            _entry(
                chunks,
                namespace,
                CHUNK_INDEX,
                "images.chunk_index",
                "chunk_index",
                ["dataset_id", "array_path"],
            )
        )
    for name in published_profile_tables(catalog, namespace):
        table = load_table(catalog, namespace, name)
        if table is None:
            continue
        props = table.properties
        role = props.get("bioimage.role", "profiles")
        short = name[len(QC_PREFIX) :] if name.startswith(QC_PREFIX) else name[len(PROFILE_PREFIX) :]
        out.append(
            _entry(
                table,
                namespace,
                name,
                f"{warehouse.ROLE_NAMESPACES[role]}.{short}",
                role,
                [ROW_ID, *KEY_COLUMNS],
                profile_level=props.get(LEVEL_PROPERTY) or None,
                compartment=props.get(COMPARTMENT_PROPERTY) or None,
            )
        )
    return out


def joined_warehouse_tables(catalog: Catalog, namespace: str) -> list[warehouse.WarehouseTable]:
    """The joined tables, one per object kind: ``profiles.joined_profiles`` (single cells) with the
    ``joined_profiles`` role, and ``profiles.joined_profiles_<kind>`` as profiles tables of their level and
    compartment (the specification names one table for the role, and a profiles table holds one kind)."""
    out = []
    for name in published_joined_tables(catalog, namespace):
        table = load_table(catalog, namespace, name)
        if table is None:
            continue
        level, compartment = table_kind(table)
        out.append(
            _entry(
                table,
                namespace,
                name,
                f"profiles.{name}",
                "joined_profiles" if name == JOINED_PROFILES else "profiles",
                ["profile_table", ROW_ID, *KEY_COLUMNS],
                profile_level=level,
                compartment=compartment,
            )
        )
    return out


def _unchanged(root: Path, tables: list[warehouse.WarehouseTable]) -> bool:
    """Whether the current version already holds exactly these tables at these snapshots."""
    current = warehouse.read_manifest(root) if root.exists() else None
    if current is None:
        return False
    old = {t["table_name"]: t.get("source_ref") for t in current["tables"]}
    return old == {t.table_name: t.source_ref for t in tables}


def export_catalog(
    catalog: Catalog, namespace: str, root: Path, include_chunks: bool = True
) -> tuple[dict[str, Any], bool]:
    """Publish every catalog table, the joined tables included, to the warehouse at ``root``. Returns
    (manifest, whether a new version was published); nothing is published when every table is at the
    snapshot already exported."""
    tables = catalog_warehouse_tables(catalog, namespace, include_chunks) + joined_warehouse_tables(catalog, namespace)
    root = Path(root)
    _record_warehouse(catalog, namespace, root)
    if _unchanged(root, tables):
        return warehouse.read_manifest(root) or {}, False
    return warehouse.publish(root, tables), True
