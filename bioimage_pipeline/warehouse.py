"""A Cytomining warehouse: Parquet tables under ``<root>/<namespace>/<table>/`` and a manifest.

Writes are atomic for readers. ``<root>`` is a symbolic link to a complete version folder; a new version is
assembled beside it (Iceberg data files hard-linked rather than copied where the file system allows) and
published by replacing the link in one ``rename``; one publisher at a time holds the warehouse's lock.
A reader therefore sees the old warehouse or the new one, never a mix, and the manifest's row counts always
describe the files next to it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bioimage_pipeline import __version__
from bioimage_pipeline.errors import UsageError

WAREHOUSE_SPEC_VERSION = "1.0.0"
MANIFEST = "warehouse_manifest.json"
#: Roles of the draft specification's vocabulary.
ROLES = (
    "profiles",
    "image_assets",
    "chunk_index",
    "joined_profiles",
    "quality_control",
    "image_crops",
    "source_images",
    "embeddings",
    "annotations",
    "reports",
)
ROLE_NAMESPACES = {
    "profiles": "profiles",
    "joined_profiles": "profiles",
    "embeddings": "profiles",
    "image_assets": "images",
    "chunk_index": "images",
    "image_crops": "images",
    "source_images": "images",
    "quality_control": "quality_control",
}
CANONICAL_NAMES = {
    "joined_profiles": "profiles.joined_profiles",
    "image_assets": "images.image_assets",
    "chunk_index": "images.chunk_index",
    "image_crops": "images.image_crops",
    "source_images": "images.source_images",
}
KEEP_VERSIONS = 2
_NAME = re.compile(r"^[A-Za-z0-9_]+\.[A-Za-z0-9_]+$")


@dataclass
class TableEntry:
    """One manifest entry (the specification's required fields first)."""

    table_name: str
    role: str
    format: str
    join_keys: list[str]
    columns: list[str]
    row_count: int
    path: str
    profile_level: str | None = None
    compartment: str | None = None
    source_type: str | None = None
    source_ref: str | None = None


@dataclass
class WarehouseTable:
    """A table to publish: its data as Parquet files to link, or Arrow data to write."""

    table_name: str
    role: str
    join_keys: list[str]
    files: list[str] = field(default_factory=list)
    data: pa.Table | pa.RecordBatchReader | None = None
    profile_level: str | None = None
    compartment: str | None = None
    source_type: str | None = None
    source_ref: str | None = None

    def __post_init__(self) -> None:
        check_table_name(self.table_name, self.role)


def check_table_name(table_name: str, role: str) -> None:
    """Dotted ``namespace.table`` in the namespace the role requires; raises UsageError otherwise."""
    if role not in ROLES:
        raise UsageError(f"role {role!r} is not in the warehouse vocabulary ({', '.join(ROLES)})")
    if not _NAME.match(table_name):
        raise UsageError(f"table name {table_name!r} must be '<namespace>.<table>' (letters, digits, _)")
    namespace = table_name.split(".")[0]
    wanted = ROLE_NAMESPACES.get(role)
    if wanted is not None and namespace != wanted:
        raise UsageError(f"{table_name}: role {role!r} belongs in the {wanted!r} namespace")
    canonical = CANONICAL_NAMES.get(role)
    if canonical is not None and table_name != canonical:
        raise UsageError(f"{table_name}: a {role!r} table must be named {canonical}")


def _versions_dir(root: Path) -> Path:
    return root.parent / f".{root.name}.versions"


def _check_root(root: Path) -> None:
    if root.is_symlink() or not root.exists():
        return
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
        return
    raise UsageError(
        f"{root}: exists and is not a warehouse written by this tool (a link to a version "
        "folder); choose an empty or new folder"
    )


def read_manifest(root: Path) -> dict[str, Any] | None:
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _link_or_copy(src: str, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_data(data: pa.Table | pa.RecordBatchReader, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-00000.parquet"
    if isinstance(data, pa.Table):
        pq.write_table(data, path, compression="zstd")
        return
    with pq.ParquetWriter(path, data.schema, compression="zstd") as writer:
        for batch in data:
            writer.write_batch(batch)


def _describe(folder: Path) -> tuple[list[str], int]:
    files = sorted(folder.glob("*.parquet"))
    rows = 0
    columns: list[str] = []
    for f in files:
        meta = pq.read_metadata(f)
        rows += meta.num_rows
        if not columns:
            columns = meta.schema.to_arrow_schema().names
    return columns, rows


def publish(root: Path, tables: Sequence[WarehouseTable]) -> dict[str, Any]:
    """Publish a new warehouse version holding exactly ``tables``. Returns the manifest."""
    root = Path(root).absolute()
    _check_root(root)
    names = [t.table_name for t in tables]
    if len(set(names)) != len(names):
        raise UsageError(f"duplicate table names in one warehouse: {sorted({n for n in names if names.count(n) > 1})}")
    versions = _versions_dir(root)
    versions.mkdir(parents=True, exist_ok=True)
    # One publisher at a time per warehouse: a concurrent run's pruning must not remove the version this
    # one is assembling.
    with open(versions / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _publish_locked(root, versions, tables)


def _publish_locked(root: Path, versions: Path, tables: Sequence[WarehouseTable]) -> dict[str, Any]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    staging = versions / f"{stamp}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        entries: list[TableEntry] = []
        for t in tables:
            rel = t.table_name.replace(".", "/")
            folder = staging / rel
            folder.mkdir(parents=True, exist_ok=True)
            for i, src in enumerate(t.files):
                _link_or_copy(src, folder / f"part-{i:05d}.parquet")
            if t.data is not None:
                _write_data(t.data, folder)
            columns, rows = _describe(folder)
            entries.append(
                TableEntry(
                    t.table_name,
                    t.role,
                    "parquet",
                    list(t.join_keys),
                    columns,
                    rows,
                    rel,
                    t.profile_level,
                    t.compartment,
                    t.source_type,
                    t.source_ref,
                )
            )
        manifest = {
            "warehouse_spec_version": WAREHOUSE_SPEC_VERSION,
            "producer": {"name": "bioimage-pipeline", "version": __version__},
            "created_at": datetime.now(UTC).isoformat(),
            "tables": [asdict(e) for e in sorted(entries, key=lambda e: e.table_name)],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        link = versions / f".link-{uuid.uuid4().hex[:8]}"
        os.symlink(os.path.relpath(staging, root.parent), link)
        os.replace(link, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _prune(root, versions)
    return manifest


def _prune(root: Path, versions: Path) -> None:
    current = Path(os.path.realpath(root)).name
    folders = sorted((p for p in versions.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    for old in folders[:-KEEP_VERSIONS]:
        if old.name != current:
            shutil.rmtree(old, ignore_errors=True)


# --- validation --------------------------------------------------------------------------------------


@dataclass
class WarehouseReport:
    root: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "valid": self.valid, "errors": self.errors, "warnings": self.warnings}


_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_REQUIRED = ("table_name", "role", "format", "join_keys", "columns")


def validate(root: Path) -> WarehouseReport:
    """Check a warehouse against the draft specification and its own data files."""
    root = Path(root)
    report = WarehouseReport(str(root))
    try:
        manifest = read_manifest(root)
    except (OSError, json.JSONDecodeError) as exc:
        report.errors.append(f"{root / MANIFEST}: unreadable manifest ({exc})")
        return report
    if manifest is None:
        report.errors.append(f"{root / MANIFEST}: missing")
        return report
    version = str(manifest.get("warehouse_spec_version", ""))
    m = _SEMVER.match(version)
    if not m:
        report.errors.append(f"warehouse_spec_version {version!r} is not MAJOR.MINOR.PATCH")
    elif m.group(1) != WAREHOUSE_SPEC_VERSION.split(".")[0]:
        report.errors.append(f"warehouse_spec_version {version} has an unknown major version")
    seen: set[str] = set()
    for entry in manifest.get("tables", []):
        name = entry.get("table_name", "?")
        missing = [k for k in _REQUIRED if k not in entry]
        if missing:
            report.errors.append(f"{name}: manifest entry lacks {', '.join(missing)}")
            continue
        if name in seen:
            report.errors.append(f"{name}: listed twice")
        seen.add(name)
        try:
            check_table_name(name, entry["role"])
        except UsageError as exc:
            report.errors.append(str(exc))
        folder = root / name.replace(".", "/")
        if not folder.is_dir():
            report.errors.append(f"{name}: folder {folder} is missing")
            continue
        try:
            columns, rows = _describe(folder)
        except (OSError, pa.ArrowInvalid) as exc:
            report.errors.append(f"{name}: unreadable Parquet ({exc})")
            continue
        if entry.get("row_count") is not None and entry["row_count"] != rows:
            report.errors.append(f"{name}: manifest says {entry['row_count']} rows, the files hold {rows}")
        if columns and list(entry["columns"]) != columns:
            report.errors.append(f"{name}: manifest columns differ from the files' columns")
        for key in entry["join_keys"]:
            if columns and key not in columns:
                report.errors.append(f"{name}: join key {key!r} is not a column")
        if entry["role"] == "profiles" and not entry.get("profile_level"):
            report.warnings.append(f"{name}: no profile_level")
    return report
