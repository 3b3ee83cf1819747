"""CellProfiler's column naming, and the names CytoTable and pycytominer expect in its place.

ExportToSpreadsheet and cytominer-database name an object table's columns without their object (``AreaShape_Area``
in ``Cells.csv``); CytoTable and pycytominer expect ``<Compartment>_<Measurement>``, image columns as
``Image_<...>``, and identifiers as ``Metadata_<...>``. These rules are shared by every CellProfiler reader,
so a plate exported either way gives the same column names.
"""

from __future__ import annotations

import re

#: CellProfiler tables that are not profiles (experiment-wide key/value records).
NOT_PROFILES = {"experiment", "per_experiment", "experiment_properties", "sqlite_sequence", "properties"}
#: Image-table columns that identify the image (its keys and where its files are).
IMAGE_KEY = re.compile(r"^(Image_)?(Metadata_|FileName_|PathName_|URL_|ObjectsFileName_|ObjectsPathName_)")
#: Columns CytoTable's pycytominer preset keeps as identifiers, with a ``Metadata_`` prefix, in its
#: single-cell table.
IDENTIFYING = frozenset(
    {
        "Parent_Cells",
        "Parent_Nuclei",
        "Cytoplasm_Parent_Cells",
        "Cytoplasm_Parent_Nuclei",
        "Cells_Number_Object_Number",
        "Nuclei_Number_Object_Number",
        "Cells_ObjectNumber",
        "Nuclei_ObjectNumber",
    }
)
_ID_NUMBER = re.compile(r"(ImageNumber|ObjectNumber|TableNumber|Number_Object_Number)$|(^|_)Parent_")


def is_identifier_number(name: str) -> bool:
    """Image, object and table numbers and parent links: numbers that identify, kept as numbers."""
    return bool(_ID_NUMBER.search(name))


def identifier_text(name: str) -> bool:
    """A metadata column kept as text whatever type it was stored or inferred as: plate ``001`` must not
    become 1."""
    bare = name[len("Image_") :] if name.startswith("Image_") else name
    return bare.startswith("Metadata_") and not is_identifier_number(name)


def compartment_column(name: str, compartment: str) -> str:
    """An object table's column under CytoTable's name: ``ImageNumber`` → ``Metadata_ImageNumber``,
    ``AreaShape_Area`` in Cells → ``Cells_AreaShape_Area``; prefixed and image-key names unchanged."""
    if name in ("ImageNumber", "ObjectNumber", "TableNumber"):
        return f"Metadata_{name}"
    if name.startswith(("Metadata_", f"{compartment}_")) or IMAGE_KEY.match(name):
        return name
    return f"{compartment}_{name}"


def image_column(name: str) -> str:
    """An image-table column as it appears beside object rows: prefixed ``Image_`` (as CytoTable does),
    the link columns unchanged."""
    return name if name.startswith("Image_") or name in ("ImageNumber", "TableNumber") else f"Image_{name}"


def cytotable_order(name: str) -> int:
    """Where CytoTable's ``cellprofiler_sqlite_pycytominer`` output puts a column: ids, metadata, then image,
    cytoplasm, cells and nuclei columns (sorted by name within each group)."""
    lower = name.lower()
    exact = ("tablenumber", "metadata_tablenumber", "imagenumber", "metadata_imagenumber", "objectnumber")
    if lower in exact:
        return exact.index(lower)
    if "metadata" in lower:
        return 6
    for i, prefix in enumerate(("image", "cytoplasm", "cells", "nuclei")):
        if lower.startswith(prefix):
            return 7 + i
    return 11
