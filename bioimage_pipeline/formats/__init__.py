"""Recognise a store's format and scan it into a :class:`~bioimage_pipeline.model.StoreScan`."""

from __future__ import annotations

import zipfile
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs import is_loaddata_csv, plate_layout_of
from bioimage_pipeline.formats.n5 import is_n5, scan_n5
from bioimage_pipeline.formats.plate import scan_loaddata, scan_plate_folder
from bioimage_pipeline.formats.tiff import COMPANION_SUFFIX, TIFF_SUFFIXES, scan_tiff
from bioimage_pipeline.formats.zarr import scan_zarr
from bioimage_pipeline.model import StoreScan
from bioimage_pipeline.storage import DirectoryStore, ZipStore

_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def detect_format(path: Path) -> str | None:
    """``"zarr"``, ``"n5"``, ``"tiff"``, ``"zarr-zip"``, ``"plate"`` (an HCS plate folder) or ``"loaddata"`` (a
    CellProfiler LoadData CSV) for something that is a store, else None."""
    path = Path(path)
    if path.is_dir():
        if any((path / m).is_file() for m in _ZARR_MARKERS):
            return "zarr"
        if (path / "attributes.json").is_file() and (path.suffix == ".n5" or is_n5(DirectoryStore(path))):
            return "n5"
        if path.suffix in (".zarr", ".n5"):
            return "zarr" if path.suffix == ".zarr" else "n5"
        if plate_layout_of(path) is not None:
            return "plate"
        return None
    if not path.is_file():
        return None
    name = path.name.lower()
    if name.endswith(TIFF_SUFFIXES) or name.endswith(COMPANION_SUFFIX):
        # A .companion.ome is the metadata of a multi-file OME-TIFF: the store its TIFFs belong to.
        return "tiff"
    if name.endswith(".zip") and zipfile.is_zipfile(path):
        return "zarr-zip"
    if name.endswith(".csv") and is_loaddata_csv(path):
        return "loaddata"
    return None


def default_dataset_id(path: Path) -> str:
    return Path(path).name


def scan_store(path: str | Path, dataset_id: str | None = None) -> StoreScan:
    """Scan one store (metadata only, never pixels). Raises :class:`StoreError` naming the file on failure."""
    path = Path(path).absolute()
    dataset_id = dataset_id or default_dataset_id(path)
    kind = detect_format(path)
    if kind is None:
        if not path.exists():
            raise StoreError(path, "does not exist")
        raise StoreError(
            path, "not a recognised image store (Zarr, OME-Zarr, N5, TIFF, a zipped Zarr or an HCS plate folder)"
        )
    if kind == "tiff":
        return scan_tiff(path, dataset_id)
    if kind == "plate":
        return scan_plate_folder(path, dataset_id)
    if kind == "loaddata":
        return scan_loaddata(path, dataset_id)
    store = ZipStore(path) if kind == "zarr-zip" else DirectoryStore(path)
    if kind == "n5" or (kind == "zarr-zip" and (path.name.lower().endswith(".n5.zip") or is_n5(store))):
        return scan_n5(store, dataset_id)
    return scan_zarr(store, dataset_id, display_name=plate_name_from_path(path))


def plate_name_from_path(path: Path) -> str:
    """``screen/plate1.ome.zarr`` → ``plate1``: the name a plate without a ``name`` is known by."""
    name = Path(path).name
    for suffix in (".ome.zarr.zip", ".zarr.zip", ".ome.zarr", ".zarr", ".n5.zip", ".n5", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
