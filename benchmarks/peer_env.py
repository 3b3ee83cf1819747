"""Isolated interpreters for the reference tools — the peer, ``iceberg-bioimage`` 0.1.0, and CytoTable 1.2.6 —
so that they never share this project's virtualenv (their dependency pins differ from ours, and a shared
environment would blur whose imports cost what).

    python benchmarks/peer_env.py              # create benchmarks/.peer-venv if needed, print its python
    python benchmarks/peer_env.py cytotable    # the same for benchmarks/.cytotable-venv

The venvs are git-ignored and reused; one is rebuilt only when its tool cannot be imported from it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PEER_PACKAGE = "iceberg-bioimage"
PEER_VERSION = "0.1.0"
#: SQLAlchemy is not a dependency of the peer, but PyIceberg's SqlCatalog needs it.
PEER_REQUIREMENTS = (f"{PEER_PACKAGE}=={PEER_VERSION}", "sqlalchemy")
DEFAULT_VENV = Path(__file__).resolve().parent / ".peer-venv"

_PROBE = (
    "import importlib.metadata as m, sqlalchemy, iceberg_bioimage.api, pyiceberg.catalog.sql; "
    f"print(m.version({PEER_PACKAGE!r}))"
)


def peer_version(python: Path) -> str | None:
    """The peer's version importable by ``python``, or None if the peer (or SQLAlchemy) is missing."""
    try:
        done = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _create_venv(venv: Path, requirements: tuple[str, ...], whose: str, base_python: str) -> None:
    print(f"creating {whose} virtualenv in {venv} ({', '.join(requirements)}) ...", file=sys.stderr)
    subprocess.run([base_python, "-m", "venv", "--clear", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements], check=True
    )


def ensure_peer_python(venv: Path = DEFAULT_VENV, base_python: str = sys.executable) -> Path:
    """The python of ``venv``, created with the peer installed if it is not usable yet.

    ``base_python -m venv`` builds on that interpreter's base installation (not its packages), so running
    this from the project's virtualenv gives the peer the same CPython without any of our packages.
    """
    python = venv / "bin" / "python"
    if python.exists() and peer_version(python) == PEER_VERSION:
        return python
    _create_venv(venv, PEER_REQUIREMENTS, "the peer's", base_python)
    found = peer_version(python)
    if found != PEER_VERSION:
        raise RuntimeError(f"{python}: expected {PEER_PACKAGE} {PEER_VERSION} after install, found {found}")
    return python


def check_peer_python(python: Path) -> Path:
    """An interpreter given with ``--peer-python``: used as is, but it must import the expected peer."""
    found = peer_version(python)
    if found is None:
        raise RuntimeError(f"{python}: cannot import {PEER_PACKAGE}, sqlalchemy and pyiceberg's SqlCatalog")
    if found != PEER_VERSION:
        print(f"warning: {python} has {PEER_PACKAGE} {found}, the benchmark targets {PEER_VERSION}", file=sys.stderr)
    return python


# --- CytoTable -------------------------------------------------------------------------------------

CYTOTABLE_VERSION = "1.2.6"
#: CytoTable opens every DuckDB connection with ``INSTALL sqlite_scanner`` and ``INSTALL httpfs``, which
#: download from extensions.duckdb.org. Offline, the extensions come from PyPI instead; those wheels exist
#: up to DuckDB 1.5.5, so DuckDB is pinned there (CytoTable accepts any DuckDB >= 0.10.1).
CYTOTABLE_REQUIREMENTS = (
    f"cytotable=={CYTOTABLE_VERSION}",
    "duckdb==1.5.5",
    "duckdb-extension-sqlite-scanner==1.5.5",
    "duckdb-extension-httpfs==1.5.5",
)
DEFAULT_CYTOTABLE_VENV = Path(__file__).resolve().parent / ".cytotable-venv"
_CYTOTABLE_PROBE = (
    "import importlib.metadata as m, duckdb, cytotable; "
    "con = duckdb.connect(); con.execute('LOAD sqlite_scanner'); print(m.version('cytotable'))"
)


def cytotable_home(venv: Path = DEFAULT_CYTOTABLE_VENV) -> Path:
    """The HOME to run CytoTable with: DuckDB installs extensions under ``$HOME/.duckdb``, and this keeps
    them inside the venv instead of the user's home."""
    return venv / "home"


def _cytotable_version(python: Path, home: Path) -> str | None:
    env = {**os.environ, "HOME": str(home)}
    try:
        done = subprocess.run(
            [str(python), "-c", _CYTOTABLE_PROBE], capture_output=True, text=True, timeout=300, env=env
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 and done.stdout.strip() else None


_INSTALL_EXTENSIONS = """
import duckdb, pathlib, sys
site = pathlib.Path(sys.prefix)
for name in ("sqlite_scanner", "httpfs"):
    (path,) = site.glob(f"lib/python*/site-packages/duckdb_extension_*/**/{name}.duckdb_extension")
    duckdb.connect().execute(f"INSTALL '{path}'")
"""


def ensure_cytotable_python(venv: Path = DEFAULT_CYTOTABLE_VENV, base_python: str = sys.executable) -> Path:
    """The python of ``venv`` with CytoTable installed and DuckDB's SQLite extension loadable (run it with
    ``HOME=cytotable_home(venv)``)."""
    python, home = venv / "bin" / "python", cytotable_home(venv)
    if python.exists() and _cytotable_version(python, home) == CYTOTABLE_VERSION:
        return python
    _create_venv(venv, CYTOTABLE_REQUIREMENTS, "CytoTable's", base_python)
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(python), "-c", _INSTALL_EXTENSIONS], check=True, env={**os.environ, "HOME": str(home)})
    found = _cytotable_version(python, home)
    if found != CYTOTABLE_VERSION:
        raise RuntimeError(f"{python}: expected cytotable {CYTOTABLE_VERSION} after install, found {found}")
    return python


if __name__ == "__main__":
    print(ensure_cytotable_python() if sys.argv[1:] == ["cytotable"] else ensure_peer_python())
