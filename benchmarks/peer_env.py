"""An isolated interpreter for the peer, ``iceberg-bioimage`` 0.1.0, so that it never shares this project's
virtualenv (its dependency pins differ from ours, and a shared environment would blur whose imports cost what).

    python benchmarks/peer_env.py            # create benchmarks/.peer-venv if needed, print its python

The venv is git-ignored and reused; it is rebuilt only when the peer cannot be imported from it.
"""

from __future__ import annotations

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


def ensure_peer_python(venv: Path = DEFAULT_VENV, base_python: str = sys.executable) -> Path:
    """The python of ``venv``, created with the peer installed if it is not usable yet.

    ``base_python -m venv`` builds on that interpreter's base installation (not its packages), so running
    this from the project's virtualenv gives the peer the same CPython without any of our packages.
    """
    python = venv / "bin" / "python"
    if python.exists() and peer_version(python) == PEER_VERSION:
        return python
    print(f"creating the peer's virtualenv in {venv} ({', '.join(PEER_REQUIREMENTS)}) ...", file=sys.stderr)
    subprocess.run([base_python, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_REQUIREMENTS],
        check=True,
    )
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


if __name__ == "__main__":
    print(ensure_peer_python())
