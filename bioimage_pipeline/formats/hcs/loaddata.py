"""CellProfiler LoadData CSVs (Cell Painting Gallery / JUMP, pe2loaddata): a CSV that is its own store.

One row per image set (one site of one well): ``FileName_<Name>`` + ``PathName_<Name>`` per channel and
``Metadata_Plate`` / ``Metadata_Well`` / ``Metadata_Site`` (optional ``Metadata_Plane``/``Metadata_PlaneID``,
``Metadata_Timepoint``). ``Illum*`` channels are illumination functions, not images, and are skipped. The images
live elsewhere, so the keys are absolute paths: a relative ``PathName`` is resolved against the CSV's folder, then
each of its ancestors (pe2loaddata writes repo-relative paths), and the first place the file exists wins. Only files
that exist are listed; the others are warnings.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs._common import (
    PlateBuilder,
    clean_id,
    list_dir,
    optional_int,
    parse_float,
    parse_int,
    read_text,
    well_from_numbers,
)
from bioimage_pipeline.formats.hcs.model import PlateFile, PlateLayout
from bioimage_pipeline.wells import normalize_well

#: Column prefixes LoadData reads; any other column (``ImageNumber``, ``Count_Cells``…) is a measurement and makes
#: the CSV a CellProfiler output table instead.
_LOADDATA_PREFIXES = (
    "FileName_",
    "PathName_",
    "URL_",
    "Frame_",
    "Series_",
    "Metadata_",
    "ObjectsFileName_",
    "ObjectsPathName_",
    "ObjectsURL_",
    "ObjectsFrame_",
    "ObjectsSeries_",
)
_HEADER_LIMIT = 1 << 20  # bytes read to find the header line
_PLANE_COLUMNS = ("Metadata_Plane", "Metadata_PlaneID")
_TIMEPOINT_COLUMNS = ("Metadata_Timepoint", "Metadata_TimepointID", "Metadata_TimePoint")
_SITE_COLUMNS = ("Metadata_Site", "Metadata_FieldID", "Metadata_Field")
#: Below this a pixel size is in metres (pe2loaddata copies Harmony's ImageResolutionX, metres per pixel): no light
#: microscope has 1 nm pixels, so the two readings cannot be confused.
_METRES_BELOW = 1e-3


def _header(path: Path) -> list[str] | None:
    try:
        with path.open("rb") as handle:
            first = handle.readline(_HEADER_LIMIT)
    except OSError:
        return None
    text = first.decode("utf-8-sig", errors="replace").strip("\r\n")
    if not text:
        return None
    return next(csv.reader([text]), None)


def _channels(header: list[str]) -> list[str]:
    """``<Name>`` of every ``FileName_<Name>`` that has its ``PathName_<Name>``."""
    columns = set(header)
    return [
        c[len("FileName_") :]
        for c in header
        if c.startswith("FileName_") and f"PathName_{c[len('FileName_') :]}" in columns
    ]


def is_loaddata_csv(path: Path) -> bool:
    """A CellProfiler LoadData CSV, from its header only: ``FileName_*``/``PathName_*`` pairs and ``Metadata_*``
    columns, no measurement columns. A leading unnamed column (a pandas index) is tolerated."""
    if not path.name.lower().endswith(".csv") or not path.is_file():
        return False
    header = _header(path)
    if not header:
        return False
    if header[0].strip() in ("", "Unnamed: 0"):
        header = header[1:]
    if not all(c.startswith(_LOADDATA_PREFIXES) for c in header):
        return False
    names = _channels(header)
    paired = {f"FileName_{n}" for n in names} | {f"PathName_{n}" for n in names}
    unpaired = [c for c in header if c.startswith(("FileName_", "PathName_")) and c not in paired]
    return bool(names) and not unpaired


@dataclass
class _Resolver:
    """Finds the file a ``PathName``/``FileName`` pair names, listing each candidate folder once."""

    csv_folder: Path
    _folders: dict[str, list[Path]] = field(default_factory=dict)
    _names: dict[Path, frozenset[str]] = field(default_factory=dict)

    def candidates(self, path_name: str) -> list[Path]:
        if path_name not in self._folders:
            written = Path(path_name.strip()) if path_name.strip() else Path(".")
            bases = (
                [written]
                if written.is_absolute()
                else [b / written for b in (self.csv_folder, *self.csv_folder.parents)]
            )
            self._folders[path_name] = [Path(os.path.normpath(b)) for b in bases]
        return self._folders[path_name]

    def _listing(self, folder: Path) -> frozenset[str]:
        if folder not in self._names:
            self._names[folder] = frozenset(list_dir(folder).files)
        return self._names[folder]

    def _existing(self, path_name: str) -> list[Path]:
        return [f for f in self.candidates(path_name) if self._listing(f) or f.is_dir()]

    def resolve(self, path_name: str, file_name: str) -> Path | None:
        """The first candidate that exists, or None."""
        for folder in self._existing(path_name):
            if ("/" in file_name and (folder / file_name).is_file()) or file_name in self._listing(folder):
                return Path(os.path.normpath(folder / file_name))
        return None

    def guess(self, path_name: str, file_name: str) -> Path:
        """Where a missing file should be, for the warning: in the first candidate folder that exists, else in
        the first candidate."""
        folders = self._existing(path_name) or self.candidates(path_name)
        return Path(os.path.normpath(folders[0] / file_name))


def read_loaddata(path: Path) -> PlateLayout:
    """A LoadData CSV: one PlateFile per existing image it names, keyed by absolute path. Channel = the image
    name without a leading ``Orig`` (``OrigDNA`` → ``DNA``), also used as the channel name."""
    path = Path(os.path.abspath(path))
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = list(reader.fieldnames or [])
    names = [n for n in _channels(header) if not n.startswith("Illum")]
    if "Metadata_Well" not in header and not {"Metadata_Row", "Metadata_Col"} <= set(header):
        raise StoreError(path, "is not a LoadData CSV with wells (no Metadata_Well, nor Metadata_Row and Metadata_Col)")
    builder = PlateBuilder(layout="loaddata")
    resolver = _Resolver(csv_folder=path.parent)
    plates: list[str] = []
    missing: list[Path] = []
    named = 0
    pixel_size: tuple[float, float] | None = None
    for line, row in enumerate(reader, start=2):
        what = f"line {line}"
        plate = clean_id(row.get("Metadata_Plate")) or ""
        if plate and plate not in plates:
            plates.append(plate)
        well = _well(row, path, what)
        site = _first_int(row, _SITE_COLUMNS, path, what)
        plane = _first_int(row, _PLANE_COLUMNS, path, what)
        timepoint = _first_int(row, _TIMEPOINT_COLUMNS, path, what)
        if pixel_size is None:
            pixel_size = _pixel_size(row, path, what)
        for name in names:
            file_name = (row.get(f"FileName_{name}") or "").strip()
            if not file_name:
                continue  # this image set has no image for that channel
            named += 1
            path_name = row.get(f"PathName_{name}") or ""
            found = resolver.resolve(path_name, file_name)
            if found is None:
                missing.append(resolver.guess(path_name, file_name))
                continue
            channel = name[len("Orig") :] if name.startswith("Orig") and len(name) > len("Orig") else name
            file = PlateFile(
                key=found.as_posix(),
                well_id=well,
                field=site if site is not None else 1,
                channel=channel,
                channel_name=channel,
                plane=plane,
                timepoint=timepoint,
            )
            builder.add(file, scope=plate)
    _warn_missing(builder, path, missing, named)
    if len(plates) > 1:
        builder.warn(path, f"names {len(plates)} plates ({', '.join(plates[:5])}{', …' if len(plates) > 5 else ''})")
    return builder.build(
        plate_id=plates[0] if len(plates) == 1 else None, index_files=[path.as_posix()], pixel_size=pixel_size
    )


def _warn_missing(builder: PlateBuilder, path: Path, missing: list[Path], named: int) -> None:
    if named == 0:
        builder.warn(path, "names no images")
    elif len(missing) == named:
        # One line, not thousands: a LoadData CSV copied from the machine that acquired the plate names paths
        # that exist only there.
        builder.warn(path, f"none of the {named} images it names exists (the first: {missing[0].as_posix()})")
    else:
        for guess in missing:
            builder.warn(guess.as_posix(), f"named in {path.name} but missing")


def _well(row: dict[str, str], path: Path, what: str) -> str:
    well = normalize_well(row.get("Metadata_Well"))
    if well is not None:
        return well
    if clean_id(row.get("Metadata_Row")) and clean_id(row.get("Metadata_Col")):
        return well_from_numbers(
            parse_int(row.get("Metadata_Row"), where=path, what=f"{what} Metadata_Row"),
            parse_int(row.get("Metadata_Col"), where=path, what=f"{what} Metadata_Col"),
            where=path,
            what=what,
        )
    raise StoreError(path, f"{what} has no well (Metadata_Well is empty)")


def _first_int(row: dict[str, str], columns: tuple[str, ...], path: Path, what: str) -> int | None:
    for column in columns:
        value = optional_int(row.get(column), where=path, what=f"{what} {column}")
        if value is not None:
            return value
    return None


def _pixel_size(row: dict[str, str], path: Path, what: str) -> tuple[float, float] | None:
    """``Metadata_ImageResolutionY/X`` (pe2loaddata) in µm; metres when implausibly small for micrometres."""
    x = parse_float(row.get("Metadata_ImageResolutionX"), where=path, what=f"{what} Metadata_ImageResolutionX")
    y = parse_float(row.get("Metadata_ImageResolutionY"), where=path, what=f"{what} Metadata_ImageResolutionY")
    if x is None or y is None or x <= 0 or y <= 0:
        return None
    return (y * 1e6 if y < _METRES_BELOW else y, x * 1e6 if x < _METRES_BELOW else x)
