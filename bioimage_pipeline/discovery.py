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

import errno
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from bioimage_pipeline.errors import BioimageError, StoreError
from bioimage_pipeline.formats import detect_format
from bioimage_pipeline.formats.hcs import is_loaddata_csv, read_loaddata
from bioimage_pipeline.formats.tiff import (
    COMPANION_SUFFIX,
    TIFF_SUFFIXES,
    is_companion,
    tiff_store_master,
    tiff_store_members,
)

#: Part of every fingerprint: bump it when scanning or validation changes what a store's rows would be, so
#: that stores catalogued by the previous logic are rescanned once.
SCAN_LOGIC_VERSION = "4"

#: The kind of an entry under a stores root that could not even be examined (a symbolic link loop, a
#: broken link, a folder that cannot be listed): it is reported as a failed store, never skipped.
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class StoreState:
    """What a store looks like now: its identity, where it is, and a fingerprint of its files.

    ``error`` says why the store cannot be scanned as it is (it could not be listed, its name is not
    UTF-8); the fingerprint of such a store is derived from the error, so the same fault is recorded once.
    """

    dataset_id: str
    path: Path
    kind: str
    fingerprint: str
    file_count: int
    total_bytes: int
    newest_mtime: float
    error: str | None = None


class StoreEntry(NamedTuple):
    """A store to scan by name: its path and, optionally, its dataset_id (default: the file name).

    ``listed``: found by listing a folder, so a store that vanished or cannot be read is that store's
    failure; a path the user typed that does not exist is a usage error instead."""

    path: Path
    dataset_id: str | None = None
    listed: bool = False


def os_problem(exc: OSError, path: str | os.PathLike[str]) -> str:
    """What went wrong with ``path``, in words: a link loop, a broken link, a permission, a vanished file."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (a link that points, through other links, back at itself)"
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return f"broken symbolic link to {os.readlink(path)}"
        return "does not exist (removed while it was being read?)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return exc.strerror or str(exc)


def printable_text(text: str) -> str:
    """Text that can be stored anywhere: the bytes of a file name that are not UTF-8 (which Python keeps as
    lone surrogates) shown as ``\\xff``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def printable(path: str | os.PathLike[str]) -> str:
    """A path as text that can be stored anywhere (see :func:`printable_text`)."""
    return printable_text(os.fspath(path))


def error_fingerprint(error: str) -> str:
    """Stands for a store that cannot be read: changes when the problem does."""
    return "error-" + hashlib.sha256(error.encode("utf-8", "backslashreplace")).hexdigest()[:26]


def dataset_id_for(path: Path, root: Path) -> str:
    """The store's path relative to the root, with POSIX separators."""
    return Path(os.path.relpath(path, root)).as_posix()


def iter_store_paths(root: Path) -> Iterator[tuple[Path, str]]:
    """Every store under ``root`` as (path, kind), in a stable order. Hidden entries are skipped; a store
    is never descended into, so arrays inside a Zarr hierarchy are not mistaken for stores. The files of a
    multi-file OME-TIFF are listed once, as their master. An entry that cannot be examined (a link loop,
    a broken link, a folder that cannot be listed) is yielded with kind :data:`UNREADABLE`: it may be a
    store, and skipping it would lose one silently."""
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
        except FileNotFoundError:
            continue  # removed since it was listed
        except OSError:
            if directory == root:
                raise
            yield directory, UNREADABLE
            continue
        subdirs = []
        for entry in entries:
            # Companions claim their TIFFs before any of them is met in sorted order.
            try:
                if not entry.name.startswith(".") and is_companion(entry.name) and entry.is_file():
                    companion = os.path.normpath(entry.path)
                    members = (os.path.normpath(m) for m in tiff_store_members(Path(entry.path)))
                    claimed.update(m for m in members if m != companion)
            except (OSError, BioimageError):
                continue  # met again below, and reported there
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                if not (entry.is_dir() or entry.is_file()):
                    if entry.is_symlink():
                        yield path, UNREADABLE  # a broken link: whatever it pointed at is gone
                    continue  # a socket or a pipe: not a store
                kind = detect_format(path)
                if kind == "tiff" and not _is_master(path, root, claimed):
                    continue
                is_dir = entry.is_dir()
            except (OSError, BioimageError):
                yield path, UNREADABLE
                continue
            if kind is not None:
                yield path, kind
            elif is_dir:
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
    """Every file of a store that ``path`` stands for — a multi-file OME-TIFF's members, a LoadData CSV and the
    images it names — or None for a store of one file."""
    lower = path.name.lower()
    if lower.endswith(".csv") and is_loaddata_csv(path):
        try:
            images = [Path(f.key) for f in read_loaddata(path).files]
        except BioimageError:
            return None  # a CSV that cannot be read: its own bytes are the fingerprint, the scan says why
        return [path, *images]
    if not lower.endswith((*TIFF_SUFFIXES, COMPANION_SUFFIX)):
        return None
    members = tiff_store_members(path)
    return members if len(members) > 1 or is_companion(path) else None


def fingerprint_store(path: Path) -> tuple[str, int, int, float]:
    """(fingerprint, file count, bytes of the files stat'ed, newest mtime) of a store directory or file.

    A directory's fingerprint covers every folder's name, mtime, change time (ctime) and file count, and the
    size and mtime of each file that is not bulk data (see :func:`is_bulk_file`): a listing of each folder and
    a stat per folder and per metadata file, whatever the number of chunks or image files.

    A multi-file OME-TIFF counts all its member files; one the OME-XML names but that is missing is
    hashed as missing, so the fingerprint changes when it arrives. Raises :class:`StoreError` naming the
    file or folder at fault (a link loop, a broken link, a folder that cannot be listed).
    """
    path = Path(path)
    digest = hashlib.sha256(f"{SCAN_LOGIC_VERSION}\0{path.absolute()}".encode(errors="surrogateescape"))
    count = total = 0
    newest = 0.0
    try:
        top = path.stat()
    except OSError as exc:
        raise StoreError(printable(path), os_problem(exc, path)) from exc
    if not path.is_dir():
        members = _multi_file_members(path)
        if members is None:
            digest.update(f"\0{top.st_size}\0{top.st_mtime_ns}".encode())
            return digest.hexdigest()[:32], 1, top.st_size, top.st_mtime
        lines = []
        for member in members:
            key = Path(os.path.relpath(member, path.parent)).as_posix()
            try:
                st = member.stat()
            except FileNotFoundError as exc:
                if os.path.islink(member):
                    raise StoreError(printable(member), os_problem(exc, member)) from exc
                lines.append(f"{key}\0missing")
                continue
            except OSError as exc:
                raise StoreError(printable(member), os_problem(exc, member)) from exc
            lines.append(f"{key}\0{st.st_size}\0{st.st_mtime_ns}")
            count += 1
            total += st.st_size
            newest = max(newest, st.st_mtime)
        digest.update("\n".join(sorted(lines)).encode(errors="surrogateescape"))
        return digest.hexdigest()[:32], count, total, newest
    lines = []
    stack = [("", path, top)]
    while stack:
        rel, directory, dir_stat = stack.pop()
        newest = max(newest, dir_stat.st_mtime)
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as exc:
            raise StoreError(printable(directory), f"cannot list ({os_problem(exc, directory)})") from exc
        files = 0
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    name = entry.name
                    key = f"{rel}/{name}" if rel else name
                    stack.append((key, Path(entry.path), entry.stat(follow_symlinks=False)))
                    continue
                files += 1
                name = entry.name
                if name.endswith(_BULK_CASED) or is_bulk_file(name):
                    continue
                key = f"{rel}/{name}" if rel else name
                st = entry.stat()
            except OSError as exc:
                raise StoreError(printable(entry.path), os_problem(exc, entry.path)) from exc
            lines.append(f"{key}\0{st.st_size}\0{st.st_mtime_ns}")
            total += st.st_size
            newest = max(newest, st.st_mtime)
        count += files
        # Bulk files are covered by their folder: adding, removing or renaming an entry (how copy tools,
        # instruments and Zarr writers publish a file) moves the folder's mtime and ctime, and setting the
        # mtime back (``cp -p``, ``rsync -t``) moves the ctime, which no tool can set.
        lines.append(f"{rel}/\0{dir_stat.st_mtime_ns}\0{dir_stat.st_ctime_ns}\0{files}")
    lines.sort()
    digest.update("\n".join(lines).encode(errors="surrogateescape"))
    return digest.hexdigest()[:32], count, total, newest


#: Image files of a plate folder: bulk, like chunk files.
_BULK_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".c01", ".dib", ".flex")
#: The same in lower and upper case, tested first without lower-casing the name (a plate has 17,280 names).
_BULK_CASED = _BULK_SUFFIXES + tuple(s.upper() for s in _BULK_SUFFIXES)


def is_bulk_file(name: str, _suffixes: tuple[str, ...] = _BULK_SUFFIXES) -> bool:
    """Whether a file of a directory store is bulk data (a chunk, a shard, a plate's image file), which a
    fingerprint covers by its folder's mtime and ctime instead of a stat of its own: a plate has 17,280 of
    them, and a stat of each is what fingerprinting 100 plates would cost (9 s here, against ~1 s listing).

    Metadata files (``.zarray``, ``zarr.json``, ``attributes.json``, index XML, ``.HTD``, CSV) are always
    stat'ed. The cost of the shortcut: a bulk file rewritten in place (same name, no rename, so its folder
    does not change) is not noticed until something else in its folder changes, or ``--force``."""
    if name[-1:].isdigit():
        # Chunk keys: "0", "0.1.2" (Zarr v2), digits under c/ (Zarr v3) or nested folders (N5, v2 "/").
        return all(part.isdigit() for part in name.split("."))
    return name.lower().endswith(_suffixes)


def store_state(path: Path, dataset_id: str, kind: str) -> StoreState:
    """A store's state now; a store that cannot be read gets its error, never an exception."""
    path = Path(path).absolute()
    try:
        dataset_id.encode("utf-8")
    except UnicodeEncodeError:
        error = f"{printable(path)}: the name is not valid UTF-8, so it cannot be catalogued; rename it"
        return StoreState(printable(dataset_id), path, kind, error_fingerprint(error), 0, 0, 0.0, error)
    try:
        fp, count, total, newest = fingerprint_store(path)
    except StoreError as exc:
        return StoreState(dataset_id, path, kind, error_fingerprint(str(exc)), 0, 0, 0.0, str(exc))
    return StoreState(dataset_id, path, kind, fp, count, total, newest)


def discover_stores(root: Path) -> list[StoreState]:
    """Every store under ``root`` with its current fingerprint, sorted by dataset_id.

    A store that cannot be read (or listed, or named) is still returned, with its error, so the caller
    records the failure rather than lose the store.
    """
    root = Path(root).absolute()
    states = [store_state(path, dataset_id_for(path, root), kind) for path, kind in iter_store_paths(root)]
    return sorted(states, key=lambda s: s.dataset_id)
