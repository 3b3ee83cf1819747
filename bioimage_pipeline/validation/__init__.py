"""Validation of image hierarchies against OME-NGFF 0.4/0.5 and CellMap conventions, and a builder for them.

``check(url, model)`` reports every problem of a node and of the nodes its convention implies;
``inspect_node(url)`` summarises a hierarchy; :mod:`~bioimage_pipeline.validation.build` writes conforming ones.

The names below load on first use: the validators pull in the array libraries, which commands that only
need :data:`MODELS` (the command line's choices) should not pay for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bioimage_pipeline.validation.models import MODELS

if TYPE_CHECKING:
    from bioimage_pipeline.validation.check import check
    from bioimage_pipeline.validation.inspect import InspectReport, inspect_node
    from bioimage_pipeline.validation.issues import Issue, ValidationReport
    from bioimage_pipeline.validation.ngff_attributes import check_attributes

_LAZY = {
    "check": "bioimage_pipeline.validation.check",
    "InspectReport": "bioimage_pipeline.validation.inspect",
    "inspect_node": "bioimage_pipeline.validation.inspect",
    "Issue": "bioimage_pipeline.validation.issues",
    "ValidationReport": "bioimage_pipeline.validation.issues",
    "check_attributes": "bioimage_pipeline.validation.ngff_attributes",
}

__all__ = ["MODELS", "InspectReport", "Issue", "ValidationReport", "check", "check_attributes", "inspect_node"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
