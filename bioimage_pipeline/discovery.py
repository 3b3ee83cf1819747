"""Find the stores under a root and fingerprint their content.

A store's fingerprint hashes the relative path, size and modification time of every file in it, plus its
location. It changes when anything is added, removed, rewritten or moved, and costs one ``stat`` per file
(no file is opened). Sensors compare fingerprints between ticks to tell when a copy has finished.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats import detect_format


@dataclass(frozen=True)
class StoreState:
    """What a store looks like now: its identity, where it is, and a fingerprint of its files."""

    dataset_id: str
    path: Path
    kind: str
    fingerprint: str
    file_count: int
    total_bytes: int
    newest_mtime: float


def dataset_id_for(path: Path, root: Path) -> str:
    """The store's path relative to the root, with POSIX separators."""
    return Path(os.path.relpath(path, root)).as_posix()


def iter_store_paths(root: Path) -> Iterator[tuple[Path, str]]:
    """Every store under ``root`` as (path, kind), in a stable order. Hidden entries are skipped; a store
    is never descended into, so arrays inside a Zarr hierarchy are not mistaken for stores."""
    root = Path(root)
    if not root.is_dir():
        return
    seen: set[str] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        real = os.path.realpath(directory)
        if real in seen:  # a symlink loop
            continue
        seen.add(real)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            kind = detect_format(path)
            if kind is not None:
                yield path, kind
            elif entry.is_dir():
                subdirs.append(path)
        stack.extend(reversed(subdirs))


def fingerprint_store(path: Path) -> tuple[str, int, int, float]:
    """(fingerprint, file count, total bytes, newest mtime) of a store directory or file."""
    path = Path(path)
    digest = hashlib.sha256(str(path.absolute()).encode())
    count = total = 0
    newest = 0.0
    try:
        if path.is_file():
            st = path.stat()
            digest.update(f"\0{st.st_size}\0{st.st_mtime_ns}".encode())
            return digest.hexdigest()[:32], 1, st.st_size, st.st_mtime
        lines = []
        stack = [("", path)]
        while stack:
            rel, directory = stack.pop()
            with os.scandir(directory) as it:
                for entry in it:
                    key = f"{rel}/{entry.name}" if rel else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((key, Path(entry.path)))
                        continue
                    st = entry.stat()
                    lines.append(f"{key}\0{st.st_size}\0{st.st_mtime_ns}")
                    count += 1
                    total += st.st_size
                    newest = max(newest, st.st_mtime)
    except OSError as exc:
        raise StoreError(path, f"cannot list ({exc.strerror or exc})") from exc
    lines.sort()
    digest.update("\n".join(lines).encode())
    return digest.hexdigest()[:32], count, total, newest


def discover_stores(root: Path) -> list[StoreState]:
    """Every store under ``root`` with its current fingerprint, sorted by dataset_id.

    A store that cannot even be listed is still returned, with an empty fingerprint, so the caller can
    record the failure rather than lose the store.
    """
    root = Path(root).absolute()
    states = []
    for path, kind in iter_store_paths(root):
        try:
            fp, count, total, newest = fingerprint_store(path)
        except StoreError:
            fp, count, total, newest = "", 0, 0, 0.0
        states.append(StoreState(dataset_id_for(path, root), path.absolute(), kind, fp, count, total, newest))
    return sorted(states, key=lambda s: s.dataset_id)
