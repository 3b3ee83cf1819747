"""Shared fixtures: a throw-away pipeline root with a real SQLite catalog, and copies of real stores."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from bioimage_pipeline.catalog import load_catalog
from bioimage_pipeline.cli import main
from bioimage_pipeline.config import PipelineConfig
from bioimage_pipeline.defs.resources import BioimageResource
from bioimage_pipeline_tests.corpus import CORPUS

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
SCRIPT = Path(sys.executable).parent / "bioimage-pipeline"


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


def zarray(path: Path, shape: list[int], chunks: list[int], stored: Sequence[str] = ()) -> Path:
    """A Zarr v2 array: 200 bytes of JSON declaring any size, and only the chunk files named in ``stored``."""
    path.mkdir(parents=True)
    doc = {
        "zarr_format": 2,
        "shape": shape,
        "chunks": chunks,
        "dtype": "|u1",
        "compressor": None,
        "fill_value": 0,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }
    (path / ".zarray").write_text(json.dumps(doc))
    for key in stored:
        (path / key).parent.mkdir(parents=True, exist_ok=True)
        (path / key).write_bytes(b"\0" * 7)
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Everything the CLI reads, pointed at a temporary root, set both here and for subprocesses."""
    values = {
        "BIOIMAGE_STORES_DIR": str(tmp_path / "stores"),
        "BIOIMAGE_PROFILES_DIR": str(tmp_path / "profiles"),
        "BIOIMAGE_WAREHOUSE_DIR": str(tmp_path / "warehouse"),
        "PYICEBERG_CATALOG__BIOIMAGE__URI": f"sqlite:///{tmp_path / 'catalog' / 'catalog.db'}",
        "PYICEBERG_CATALOG__BIOIMAGE__WAREHOUSE": f"file://{tmp_path / 'catalog' / 'warehouse'}",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **values}


def cli(
    env: dict[str, str], *args: str, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it."""
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in this process (faster than a subprocess where the process boundary does not matter)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


__all__ = ["CORPUS", "DATA", "REPO", "SCRIPT", "cli", "copy_tree", "resource_for", "run_main", "zarray"]


def run_dg(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The project's ``dg`` CLI, run from the project folder (a dg project through [tool.dg]) with this test
    environment's virtualenv as the active one, so dg runs the project as it is installed here."""
    bin_dir = Path(sys.executable).parent
    env = {**(os.environ if env is None else env)}
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [str(bin_dir / "dg"), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
