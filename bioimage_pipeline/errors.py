"""Errors the library raises on purpose. Their ``str()`` is the one line a user sees."""

from __future__ import annotations

from pathlib import Path


class BioimageError(Exception):
    """Base class: an expected failure with a one-line, user-facing message."""


class PathError(BioimageError):
    """A problem with one file or folder. The message is ``<path>: <problem>`` on one line."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")


class StoreError(PathError):
    """A store (or one file in it) cannot be read."""


class UsageError(BioimageError):
    """The caller asked for something impossible (bad argument, conflicting identity, missing input)."""


class ProfileError(PathError):
    """A profile table cannot be read or normalised."""
