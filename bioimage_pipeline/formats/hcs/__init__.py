"""HCS plate folders — Harmony, MetaXpress, CellVoyager, Cellomics, NF1 — and CellProfiler LoadData CSVs, read
into one model (:class:`PlateLayout`) from their index files and file names. No image file is opened.

:func:`plate_layout_of` says cheaply which layout a folder is the plate folder of; :func:`read_plate` reads it.
Index-based layouts are tried before name-based ones, so a folder with an index is read from it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs import cellomics, cellvoyager, harmony, metaxpress, nf1
from bioimage_pipeline.formats.hcs.loaddata import is_loaddata_csv, read_loaddata
from bioimage_pipeline.formats.hcs.model import Layout, PlateFile, PlateLayout

__all__ = [
    "Layout",
    "PlateFile",
    "PlateLayout",
    "is_loaddata_csv",
    "plate_layout_of",
    "read_loaddata",
    "read_plate",
]

#: Detectors in order: index files first (Harmony's index, the mlf, the HTD or jdce), then names only
#: (Harmony names and MetaXpress GUID names inside their detectors, then Cellomics, then NF1).
_DETECTORS: tuple[tuple[Layout, Callable[[Path], bool]], ...] = (
    ("cellvoyager", cellvoyager.is_cellvoyager_folder),
    ("harmony", harmony.is_harmony_folder),
    ("metaxpress", metaxpress.is_metaxpress_folder),
    ("cellomics", cellomics.is_cellomics_folder),
    ("nf1", nf1.is_nf1_folder),
)

_READERS: dict[Layout, Callable[[Path], PlateLayout]] = {
    "harmony": harmony.read_harmony,
    "metaxpress": metaxpress.read_metaxpress,
    "cellvoyager": cellvoyager.read_cellvoyager,
    "cellomics": cellomics.read_cellomics,
    "nf1": nf1.read_nf1,
    "loaddata": read_loaddata,
}


def plate_layout_of(folder: Path) -> Layout | None:
    """Which HCS layout the folder is the plate folder of, or None.

    Cheap: lists the folder (and, where the layout puts images in known subfolders — Harmony's ``Images/``,
    MetaXpress ``TimePoint_N/`` and ``ZStep_N/``, HCS.ai ``timepoint<t>/``, CQ3000 ``Projection/`` — those), looks
    at names and the presence of index files; opens at most a header line of a CSV. A file that is a LoadData CSV
    is ``"loaddata"`` (it is its own store). A folder of images matching none of the layouts is None: the caller
    then treats each file as a store of its own.
    """
    folder = Path(folder)
    if folder.is_file():
        return "loaddata" if is_loaddata_csv(folder) else None
    if not folder.is_dir():
        return None
    for layout, detect in _DETECTORS:
        if detect(folder):
            return layout
    return None


def read_plate(folder: Path) -> PlateLayout:
    """The plate folder's files, from its index where there is one, from file names otherwise.

    Raises :class:`StoreError` naming the index file when the index is malformed (and naming the folder when it
    is no plate folder). Files the index lists but that are missing, and image files that match nothing, are
    warnings in ``PlateLayout.warnings`` (one line each, naming the file; at most 20, then one ``and N more``).
    """
    folder = Path(folder)
    layout = plate_layout_of(folder)
    if layout is None:
        raise StoreError(
            folder, "is not an HCS plate folder (no index file, and its image names follow no plate layout)"
        )
    return _READERS[layout](folder)
