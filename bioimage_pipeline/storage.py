"""Read-only access to a store's keys, whether it is a directory or a zip file.

Scanners read metadata documents and list chunk files through this one interface, so every format works
the same over a folder and over a ``.zarr.zip``.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bioimage_pipeline.errors import StoreError


@dataclass(frozen=True)
class FileEntry:
    """One stored object: its key relative to the listed prefix and its stored size in bytes."""

    key: str
    size: int


class StoreReader(Protocol):
    """Keys are POSIX paths relative to the store root (``""`` is the root)."""

    @property
    def location(self) -> str:
        """The store's path, for messages and URIs."""
        ...

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        ...

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``; a negative offset counts from the end."""
        ...

    def exists(self, key: str) -> bool: ...

    def is_dir(self, key: str) -> bool: ...

    def list_dir(self, prefix: str) -> tuple[list[str], list[FileEntry]]:
        """Immediate children of ``prefix``: sub-directory names and files."""
        ...

    def walk_files(self, prefix: str) -> Iterator[FileEntry]:
        """Every file under ``prefix``, keys relative to ``prefix``."""
        ...

    def uri(self, key: str) -> str:
        """A URI (local path for directories) that names ``key`` for other tools."""
        ...


def join_key(*parts: str) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def read_json(store: StoreReader, key: str) -> dict[str, Any] | None:
    """Parse a JSON metadata document; None when absent, a StoreError naming the file when invalid."""
    raw = store.read(key)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(store.uri(key), f"invalid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise StoreError(store.uri(key), f"expected a JSON object, found {type(doc).__name__}")
    return doc


@dataclass(frozen=True)
class DirectoryStore:
    root: Path

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key if key else self.root

    def read(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except IsADirectoryError as exc:
            # Never "absent": a level whose document is a folder would vanish from the catalog unnoticed.
            raise StoreError(self._path(key), "is a folder where a file (a metadata document) should be") from exc
        except OSError as exc:
            raise StoreError(self._path(key), f"cannot read ({exc.strerror or exc})") from exc

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        path = self._path(key)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset, os.SEEK_END if offset < 0 else os.SEEK_SET)
                return fh.read(length)
        except OSError as exc:
            raise StoreError(path, f"cannot read ({exc.strerror or exc})") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def is_dir(self, key: str) -> bool:
        return self._path(key).is_dir()

    def list_dir(self, prefix: str) -> tuple[list[str], list[FileEntry]]:
        dirs: list[str] = []
        files: list[FileEntry] = []
        try:
            with os.scandir(self._path(prefix)) as it:
                for entry in it:
                    if entry.is_dir():
                        dirs.append(entry.name)
                    elif entry.is_file():
                        files.append(FileEntry(entry.name, entry.stat().st_size))
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            raise StoreError(self._path(prefix), f"cannot list ({exc.strerror or exc})") from exc
        return sorted(dirs), sorted(files, key=lambda f: f.key)

    def walk_files(self, prefix: str) -> Iterator[FileEntry]:
        base = self._path(prefix)
        stack = [("", base)]
        while stack:
            rel, path = stack.pop()
            try:
                with os.scandir(path) as it:
                    for entry in it:
                        key = f"{rel}/{entry.name}" if rel else entry.name
                        if entry.is_dir(follow_symlinks=False):
                            stack.append((key, Path(entry.path)))
                        elif entry.is_file():
                            yield FileEntry(key, entry.stat().st_size)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:
                raise StoreError(path, f"cannot list ({exc.strerror or exc})") from exc

    def uri(self, key: str) -> str:
        return str(self._path(key))


@dataclass
class ZipStore:
    """A zip archive read through its central directory; no member is decompressed except metadata."""

    path: Path
    _zip: zipfile.ZipFile = field(init=False, repr=False)
    _infos: dict[str, zipfile.ZipInfo] = field(init=False, repr=False)
    _dirs: set[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise StoreError(self.path, f"not a readable zip file ({exc})") from exc
        infos = [i for i in self._zip.infolist() if not i.is_dir()]
        names = [i.filename for i in infos]
        # Some writers put the whole store inside one top-level folder named like the archive.
        prefix = _common_store_prefix(names)
        self._infos = {i.filename[len(prefix) :]: i for i in infos}
        self._dirs = {""}
        for name in self._infos:
            parts = name.split("/")[:-1]
            for n in range(1, len(parts) + 1):
                self._dirs.add("/".join(parts[:n]))

    @property
    def location(self) -> str:
        return str(self.path)

    def read(self, key: str) -> bytes | None:
        info = self._infos.get(key)
        if info is None:
            if key and key in self._dirs:
                raise StoreError(self.uri(key), "is a folder where a file (a metadata document) should be")
            return None
        try:
            return self._zip.read(info)
        except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
            raise StoreError(self.uri(key), f"cannot read zip member ({exc})") from exc

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        data = self.read(key)
        if data is None:
            raise StoreError(self.uri(key), "missing zip member")
        start = len(data) + offset if offset < 0 else offset
        return data[start : start + length]

    def exists(self, key: str) -> bool:
        return key in self._infos or key in self._dirs

    def is_dir(self, key: str) -> bool:
        return key in self._dirs

    def list_dir(self, prefix: str) -> tuple[list[str], list[FileEntry]]:
        base = f"{prefix}/" if prefix else ""
        dirs = sorted(
            d[len(base) :] for d in self._dirs if d.startswith(base) and d != prefix and "/" not in d[len(base) :]
        )
        files = [
            FileEntry(name[len(base) :], info.file_size)
            for name, info in self._infos.items()
            if name.startswith(base) and "/" not in name[len(base) :]
        ]
        return dirs, sorted(files, key=lambda f: f.key)

    def walk_files(self, prefix: str) -> Iterator[FileEntry]:
        base = f"{prefix}/" if prefix else ""
        for name, info in self._infos.items():
            if name.startswith(base):
                yield FileEntry(name[len(base) :], info.file_size)

    def uri(self, key: str) -> str:
        return f"zip://{key}::{self.path}" if key else str(self.path)


_METADATA_NAMES = frozenset({".zgroup", ".zarray", ".zattrs", ".zmetadata", "zarr.json", "attributes.json"})


def _common_store_prefix(names: list[str]) -> str:
    if not names or any(n.split("/")[-1] in _METADATA_NAMES and "/" not in n for n in names):
        return ""
    first = names[0].split("/")[0]
    if all(n.startswith(first + "/") for n in names):
        return first + "/"
    return ""
