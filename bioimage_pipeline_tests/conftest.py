"""Shared fixtures: a throw-away pipeline root with a real SQLite catalog, and copies of real stores."""

from __future__ import annotations

import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from bioimage_pipeline.catalog import load_catalog
from bioimage_pipeline.config import PipelineConfig
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline_tests.corpus import CORPUS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


def copy_tree(src: Path, dst: Path) -> Path:
    """Copy a file or folder and make the copy writable (corpus files are read-only)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst)
        for p in [dst, *dst.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
    else:
        shutil.copyfile(src, dst)
        dst.chmod(dst.stat().st_mode | stat.S_IWUSR)
    return dst


@pytest.fixture
def config(tmp_path: Path) -> PipelineConfig:
    """Stores, profiles, warehouse and an embedded SQLite catalog, all under ``tmp_path``."""
    cfg = PipelineConfig.for_root(tmp_path / "root", quiet_seconds=0.0)
    cfg.stores_dir.mkdir(parents=True)
    cfg.profiles_dir.mkdir(parents=True)
    return cfg


@pytest.fixture
def catalog(config: PipelineConfig):
    return load_catalog(config)


def resource_for(config: PipelineConfig) -> BioimageResource:
    """The Dagster resource pointing at a test configuration's roots and catalog."""
    return BioimageResource(
        stores_dir=str(config.stores_dir),
        profiles_dir=str(config.profiles_dir),
        warehouse_dir=str(config.warehouse_dir),
        quiet_seconds=config.quiet_seconds,
        catalog_properties=dict(config.catalog_properties),
    )


@pytest.fixture
def resource(config: PipelineConfig) -> BioimageResource:
    return resource_for(config)


@pytest.fixture
def add_store(config: PipelineConfig) -> Callable[[Path, str], Path]:
    """Copy a store (corpus or data/) into the stores root under a relative name."""

    def add(src: Path, name: str) -> Path:
        return copy_tree(src, config.stores_dir / name)

    return add


@pytest.fixture
def add_profile(config: PipelineConfig) -> Callable[[Path, str], Path]:
    def add(src: Path, name: str) -> Path:
        return copy_tree(src, config.profiles_dir / name)

    return add


__all__ = ["CORPUS", "DATA", "REPO", "copy_tree", "resource_for"]
