"""Where the pipeline reads and writes, resolved once from the environment.

Every library entry point takes a :class:`PipelineConfig`; only :meth:`PipelineConfig.from_env` reads the
environment, so tests and the Dagster layer can pass explicit paths.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

STORES_DIR_ENV = "BIOIMAGE_STORES_DIR"
PROFILES_DIR_ENV = "BIOIMAGE_PROFILES_DIR"
WAREHOUSE_DIR_ENV = "BIOIMAGE_WAREHOUSE_DIR"
DATA_DIR_ENV = "BIOIMAGE_DATA_DIR"
NAMESPACE_ENV = "BIOIMAGE_NAMESPACE"
QUIET_SECONDS_ENV = "BIOIMAGE_QUIET_SECONDS"
PROFILE_ALIASES_ENV = "BIOIMAGE_PROFILE_ALIASES"
SENSOR_INTERVAL_ENV = "BIOIMAGE_SENSOR_INTERVAL_SECONDS"
MAX_CHUNK_ROWS_ENV = "BIOIMAGE_MAX_CHUNK_ROWS"
SNAPSHOT_RETENTION_ENV = "BIOIMAGE_SNAPSHOT_RETENTION"
ORPHAN_RETENTION_ENV = "BIOIMAGE_ORPHAN_RETENTION"

#: The PyIceberg catalog name: ``load_catalog("bioimage")`` with the usual PyIceberg configuration.
CATALOG_NAME = "bioimage"
DEFAULT_NAMESPACE = "bioimage"
DEFAULT_QUIET_SECONDS = 30.0
#: chunk_index rows one array may have. A larger grid is indexed by its stored chunks only (a sparse or
#: metadata-only array), or not at all when even those are more. Declared sizes are untrusted input: a
#: 200-byte ``.zarray`` can declare 10**12 chunks.
DEFAULT_MAX_CHUNK_ROWS = 100_000_000
#: Table maintenance keeps snapshots this long (time travel; readers planning against an older snapshot)...
DEFAULT_SNAPSHOT_RETENTION = timedelta(hours=1)
#: ... and leaves unreferenced files younger than this (a writer may not have committed them yet).
DEFAULT_ORPHAN_RETENTION = timedelta(days=1)


@dataclass(frozen=True)
class PipelineConfig:
    """Input roots, output locations and the Iceberg catalog the pipeline uses."""

    stores_dir: Path
    profiles_dir: Path
    warehouse_dir: Path
    #: Where the embedded SQLite catalog lives when PyIceberg has no configuration for ``catalog_name``.
    default_catalog_dir: Path
    catalog_name: str = CATALOG_NAME
    namespace: str = DEFAULT_NAMESPACE
    #: Seconds a store or profile table must stay unchanged before a sensor ingests it.
    quiet_seconds: float = DEFAULT_QUIET_SECONDS
    #: Extra PyIceberg catalog properties; they win over files and environment (used by tests).
    catalog_properties: dict[str, str] = field(default_factory=dict)
    #: Extra column names for the canonical profile keys, tried before the built-in aliases,
    #: e.g. ``{"plate_id": ["Metadata_Barcode"]}``.
    profile_aliases: dict[str, list[str]] = field(default_factory=dict)
    #: Bound on chunk_index rows per array (see DEFAULT_MAX_CHUNK_ROWS).
    max_chunk_rows: int = DEFAULT_MAX_CHUNK_ROWS
    snapshot_retention: timedelta = DEFAULT_SNAPSHOT_RETENTION
    orphan_retention: timedelta = DEFAULT_ORPHAN_RETENTION

    @classmethod
    def from_env(cls, base_dir: Path | None = None) -> PipelineConfig:
        """Resolve the configuration from ``BIOIMAGE_*`` variables, defaulting to ``data/`` under ``base_dir``.

        ``base_dir`` defaults to the working directory: `make` and `dagster` run from the project root.
        """
        env = os.environ
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        data_dir = _path(env.get(DATA_DIR_ENV), base / "data")
        quiet = env.get(QUIET_SECONDS_ENV)
        try:
            quiet_seconds = float(quiet) if quiet else DEFAULT_QUIET_SECONDS
        except ValueError as exc:
            raise ValueError(f"{QUIET_SECONDS_ENV}={quiet!r} is not a number of seconds") from exc
        return cls(
            max_chunk_rows=_count(env.get(MAX_CHUNK_ROWS_ENV), MAX_CHUNK_ROWS_ENV, DEFAULT_MAX_CHUNK_ROWS),
            snapshot_retention=_duration(
                env.get(SNAPSHOT_RETENTION_ENV), SNAPSHOT_RETENTION_ENV, DEFAULT_SNAPSHOT_RETENTION
            ),
            orphan_retention=_duration(env.get(ORPHAN_RETENTION_ENV), ORPHAN_RETENTION_ENV, DEFAULT_ORPHAN_RETENTION),
            profile_aliases=_aliases(env.get(PROFILE_ALIASES_ENV)),
            stores_dir=_path(env.get(STORES_DIR_ENV), data_dir / "stores"),
            profiles_dir=_path(env.get(PROFILES_DIR_ENV), data_dir / "profiles"),
            warehouse_dir=_path(env.get(WAREHOUSE_DIR_ENV), data_dir / "warehouse"),
            default_catalog_dir=data_dir / "catalog",
            namespace=env.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE,
            quiet_seconds=quiet_seconds,
        )

    @classmethod
    def for_root(cls, root: Path, **overrides: object) -> PipelineConfig:
        """Everything under one folder: ``root/stores``, ``root/profiles``, ``root/warehouse``, ``root/catalog``.

        The catalog is the embedded SQLite catalog in ``root/catalog`` whatever PyIceberg's own configuration
        says, which keeps tests and scratch runs away from a user's real catalog.
        """
        root = Path(root).absolute()
        catalog_dir = root / "catalog"
        config = cls(
            stores_dir=root / "stores",
            profiles_dir=root / "profiles",
            warehouse_dir=root / "warehouse",
            default_catalog_dir=catalog_dir,
            catalog_properties=embedded_catalog_properties(catalog_dir),
        )
        return replace(config, **overrides)  # type: ignore[arg-type]


def embedded_catalog_properties(catalog_dir: Path) -> dict[str, str]:
    """PyIceberg properties of the embedded SQLite catalog kept in ``catalog_dir``."""
    catalog_dir = Path(catalog_dir).absolute()
    return {
        "type": "sql",
        "uri": f"sqlite:///{catalog_dir / 'catalog.db'}",
        # Not Path.as_uri(): PyIceberg does not percent-decode, so a space must stay a space.
        "warehouse": f"file://{(catalog_dir / 'warehouse').as_posix()}",
    }


def sensor_interval_seconds(default: int = 30) -> int:
    """Seconds between sensor ticks. Read when the code location loads: Dagster fixes it per sensor."""
    value = os.environ.get(SENSOR_INTERVAL_ENV)
    try:
        return max(1, int(value)) if value else default
    except ValueError as exc:
        raise ValueError(f"{SENSOR_INTERVAL_ENV}={value!r} is not a whole number of seconds") from exc


def _aliases(value: str | None) -> dict[str, list[str]]:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
        if not isinstance(parsed, dict) or not all(isinstance(v, list) for v in parsed.values()):
            raise ValueError("expected an object of lists")
    except ValueError as exc:
        raise ValueError(
            f'{PROFILE_ALIASES_ENV} must be JSON like {{"plate_id": ["Metadata_Barcode"]}} ({exc})'
        ) from exc
    return {str(k): [str(x) for x in v] for k, v in parsed.items()}


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"2w"`` or a number of seconds; ValueError otherwise."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ValueError(f"{text!r} is not a duration (e.g. 90s, 15m, 1h, 7d)")
    return timedelta(seconds=seconds)


def _duration(value: str | None, name: str, default: timedelta) -> timedelta:
    if not value:
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def _count(value: str | None, name: str, default: int) -> int:
    if not value:
        return default
    try:
        count = int(value.replace("_", ""))
    except ValueError:
        count = -1
    if count < 0:
        raise ValueError(f"{name}={value!r} is not a whole number of rows (0 or more)")
    return count


def _path(value: str | None, default: Path) -> Path:
    return Path(value).expanduser().absolute() if value else default.absolute()
