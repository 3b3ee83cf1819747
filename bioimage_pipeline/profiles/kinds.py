"""Object kinds of profile tables, and the joined table each kind goes to.

A profile table holds one kind of object — single cells, one compartment's objects, images, well
aggregates — which its table properties record (:data:`LEVEL_PROPERTY`, :data:`COMPARTMENT_PROPERTY`). The
warehouse specification forbids mixing kinds in one ``profiles`` table, and a union of differently shaped
tables is as wide as all of them put together, so each kind gets a joined table of its own
(:func:`joined_table_name`).
"""

from __future__ import annotations

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from bioimage_pipeline.profiles.sources import slug
from bioimage_pipeline.tables import JOINED_PROFILES

#: Table properties naming a profile table's object kind.
LEVEL_PROPERTY = "bioimage.profile-level"
COMPARTMENT_PROPERTY = "bioimage.compartment"
SINGLE_CELL = "single_cell"


def joined_table_name(profile_level: str | None, compartment: str | None) -> str:
    """``joined_profiles`` for single cells (a CytoTable or pycytominer single-cell table, CellProfiler's
    merged compartments, a plain per-cell CSV); ``joined_profiles_<compartment>`` for a compartment published
    on its own; ``joined_profiles_<level>`` for another level (``image``, ``well``)."""
    if compartment:
        return f"{JOINED_PROFILES}_{slug(compartment)}"
    if not profile_level or profile_level == SINGLE_CELL:
        return JOINED_PROFILES
    return f"{JOINED_PROFILES}_{slug(profile_level)}"


def is_joined_name(name: str) -> bool:
    """Whether ``name`` is one of the joined tables' (``joined_profiles``, ``joined_profiles_<kind>``)."""
    return name == JOINED_PROFILES or name.startswith(JOINED_PROFILES + "_")


def joined_order(name: str) -> tuple[bool, str]:
    """Sort key of joined tables: ``joined_profiles`` first, then by name."""
    return name != JOINED_PROFILES, name


def table_kind(table: Table) -> tuple[str, str | None]:
    """(profile level, compartment) a profile or joined table was written with."""
    props = table.properties
    return props.get(LEVEL_PROPERTY) or SINGLE_CELL, props.get(COMPARTMENT_PROPERTY) or None


def published_joined_tables(catalog: Catalog, namespace: str) -> list[str]:
    """The joined tables in the catalog, ``joined_profiles`` first."""
    try:
        names = [i[-1] for i in catalog.list_tables(namespace)]
    except Exception:  # namespace not created yet
        return []
    return sorted((n for n in names if is_joined_name(n)), key=joined_order)
