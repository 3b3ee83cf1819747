"""Find the stores under a root and fingerprint their content.

A store's fingerprint hashes the relative path, size and modification time of every file in it, plus its
location. It changes when anything is added, removed, rewritten or moved, and costs one ``stat`` per file
(no file is opened). Sensors compare fingerprints between ticks to tell when a copy has finished.

A multi-file OME-TIFF is one store: its master (the ``.companion.ome``, else the first file in sorted
order carrying the full OME-XML) stands for it, its other files are not stores of their own, and its
fingerprint covers every member. Telling members apart reads the first IFD's description of a TIFF once
per change of the file (see :func:`~bioimage_pipeline.formats.tiff.tiff_store_master`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats import detect_format
from bioimage_pipeline.formats.tiff import (
    COMPANION_SUFFIX,
    TIFF_SUFFIXES,
    is_companion,
    tiff_store_master,
    tiff_store_members,
)

#: Part of every fingerprint: bump it when scanning or validation changes what a store's rows would be, so
#: that stores catalogued by the previous logic are rescanned once.
SCAN_LOGIC_VERSION = "1"


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
    is never descended into, so arrays inside a Zarr hierarchy are not mistaken for stores. The files of a
    multi-file OME-TIFF are listed once, as their master."""
    root = Path(root)
    if not root.is_dir():
        return
    seen: set[str] = set()
    claimed: set[str] = set()  # files of a multi-file OME-TIFF whose master was (or will be) yielded
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
            # Companions claim their TIFFs before any of them is met in sorted order.
            if not entry.name.startswith(".") and is_companion(entry.name) and entry.is_file():
                companion = os.path.normpath(entry.path)
                members = (os.path.normpath(m) for m in tiff_store_members(Path(entry.path)))
                claimed.update(m for m in members if m != companion)
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            kind = detect_format(path)
            if kind == "tiff" and not _is_master(path, root, claimed):
                continue
            if kind is not None:
                yield path, kind
            elif entry.is_dir():
                subdirs.append(path)
        stack.extend(reversed(subdirs))


def _is_master(path: Path, root: Path, claimed: set[str]) -> bool:
    """Whether a TIFF or companion is a store: not a member of a multi-file OME-TIFF found elsewhere.

    A member whose master would not be discovered (outside ``root``, hidden, not named like a TIFF) stays a
    store of its own, so no file is left unscanned.
    """
    key = os.path.normpath(path)
    if key in claimed:
        return False
    if is_companion(path):
        return True
    master = tiff_store_master(path)
    if master is path or os.path.normpath(master) == key:
        members = tiff_store_members(path)
        if len(members) > 1:
            claimed.update(os.path.normpath(m) for m in members if os.path.normpath(m) != key)
        return True
    try:
        rel = Path(os.path.relpath(master, root))
    except ValueError:  # another drive
        return True
    discoverable = (
        not rel.is_absolute()
        and rel.parts[:1] != ("..",)
        and not any(part.startswith(".") for part in rel.parts)
        and detect_format(master) == "tiff"
    )
    return not discoverable


def _multi_file_members(path: Path) -> list[Path] | None:
    """Every file of a multi-file OME-TIFF whose master is ``path``; None for a store of one file."""
    if not path.name.lower().endswith((*TIFF_SUFFIXES, COMPANION_SUFFIX)):
        return None
    members = tiff_store_members(path)
    return members if len(members) > 1 or is_companion(path) else None


def fingerprint_store(path: Path) -> tuple[str, int, int, float]:
    """(fingerprint, file count, total bytes, newest mtime) of a store directory or file.

    A multi-file OME-TIFF counts all its member files; one the OME-XML names but that is missing is
    hashed as missing, so the fingerprint changes when it arrives.
    """
    path = Path(path)
    digest = hashlib.sha256(f"{SCAN_LOGIC_VERSION}\0{path.absolute()}".encode())
    count = total = 0
    newest = 0.0
    try:
        if path.is_file():
            members = _multi_file_members(path)
            if members is None:
                st = path.stat()
                digest.update(f"\0{st.st_size}\0{st.st_mtime_ns}".encode())
                return digest.hexdigest()[:32], 1, st.st_size, st.st_mtime
            path.stat()  # the master itself must be readable
            lines = []
            for member in members:
                key = Path(os.path.relpath(member, path.parent)).as_posix()
                try:
                    st = member.stat()
                except FileNotFoundError:
                    lines.append(f"{key}\0missing")
                    continue
                lines.append(f"{key}\0{st.st_size}\0{st.st_mtime_ns}")
                count += 1
                total += st.st_size
                newest = max(newest, st.st_mtime)
            digest.update("\n".join(sorted(lines)).encode())
            return digest.hexdigest()[:32], count, total, newest
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
