"""Molecular Devices ImageXpress / MetaXpress plate folders, in their three forms.

- **Export** (a ``.HTD`` at the top): ``TimePoint_<t>/[ZStep_<z>/]<name>_<WELL>[_s<site>][_w<wave>].TIF``; a token
  is dropped when its dimension is unused (site then 1, channel ``"1"``); channel names from ``WaveName<n>``.
  The HTD has no plate id: the folder name is used. Copies of the HTD inside ``TimePoint_<t>/`` are index files.
- **Raw / database folder** (no HTD): ``[TimePoint_<t>/][ZStep_<z>/]<plate>_<WELL>_s<site>[_w<wave>][_thumb]<GUID>.tif``
  with a 36-character GUID appended without separator; top-level files are projections (plane None), ``ZStep_<z>``
  holds plane z; ``_thumb`` files are thumbnails and skipped. Plate id: the file-name prefix.
- **HCS.ai** (MetaXpress Acquire 2025+: ``<name>.jdce`` JSON + ``image_metadata_<n>.csv``):
  ``timepoint<t>/<project>_t<t>_<WELL>_s<site>_w<wave>_z<z>.tif``, every index 0-based. The CSV lists the files
  written; channel names from the jdce ``Wavelengths``, pixel size from ``ObjectiveCalibration``.

No pixel size for export and raw folders: it is only in each TIFF's MetaSeries XML, and these readers open no image.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs._common import (
    TIFF_SUFFIXES,
    FolderFiles,
    Listing,
    PlateBuilder,
    clean_id,
    has_suffix,
    list_dir,
    numbered_dirs,
    parse_int,
    read_text,
    relative_key,
    to_micrometres,
    well_from_name,
    well_from_numbers,
)
from bioimage_pipeline.formats.hcs.model import PlateFile, PlateLayout
from bioimage_pipeline.jsonvalues import is_number

_TIMEPOINT_DIR = re.compile(r"^TimePoint_(\d+)$", re.IGNORECASE)
_ZSTEP_DIR = re.compile(r"^ZStep_(\d+)$", re.IGNORECASE)
_HCSAI_TIMEPOINT_DIR = re.compile(r"^timepoint(\d+)$", re.IGNORECASE)
_GUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
_GUID_LENGTH = 36
# Anchored at both ends so a plate name holding well-like tokens (``exp_A01``) is parsed from the right.
_NAME = re.compile(
    r"^(?P<plate>.+?)_(?P<row>[A-Za-z]{1,2})(?P<col>\d{2})(?:_s(?P<site>\d+))?(?:_w(?P<wave>\d+))?(?P<thumb>_thumb)?$"
)
_HCSAI_NAME = re.compile(
    r"^(?P<project>.+)_t(?P<t>\d+)_(?P<row>[A-Za-z]{1,2})(?P<col>\d{2})_s(?P<site>\d+)_w(?P<wave>\d+)_z(?P<z>\d+)"
    r"\.tiff?$",
    re.IGNORECASE,
)
_HCSAI_COLUMNS = ("Row", "Column", "Field", "Wavelength", "Timepoint", "ZIndex", "ImageFileName")
_EXPORT_PATTERN = "<name>_<WELL>[_s<site>][_w<wave>].TIF"
_RAW_PATTERN = "<plate>_<WELL>_s<site>[_w<wave>]<GUID>.tif"


@dataclass(frozen=True, kw_only=True)
class ImageName:
    """A MetaXpress export or raw file name, taken apart."""

    plate: str
    well_id: str
    site: int | None
    wave: int | None
    thumbnail: bool
    guid: str | None


def parse_image_name(name: str) -> ImageName | None:
    """``Projection-Mix_E07_s1_w121C731DC-….tif`` → plate ``Projection-Mix``, E07, site 1, wave 1, that GUID.

    The GUID is cut off the end first: it follows the last token without a separator, so ``_w1`` + ``21C7…``
    would otherwise read as wave 121.
    """
    if not has_suffix(name, TIFF_SUFFIXES):
        return None
    stem = name.rsplit(".", 1)[0]
    guid = None
    if len(stem) > _GUID_LENGTH and _GUID.match(stem[-_GUID_LENGTH:]):
        guid, stem = stem[-_GUID_LENGTH:], stem[:-_GUID_LENGTH]
    m = _NAME.match(stem)
    if m is None:
        return None
    return ImageName(
        plate=m["plate"],
        well_id=well_from_name(m["row"], m["col"]),
        site=int(m["site"]) if m["site"] else None,
        wave=int(m["wave"]) if m["wave"] else None,
        thumbnail=m["thumb"] is not None,
        guid=guid,
    )


@dataclass(frozen=True, kw_only=True)
class _Found:
    """A file under a plate folder, with the time point and plane its folders give."""

    key: str
    name: str
    timepoint: int | None
    plane: int | None


def _walk(folder: Path, top: Listing) -> Iterator[_Found]:
    """The files at the top, in ``ZStep_<z>/``, ``TimePoint_<t>/`` and ``TimePoint_<t>/ZStep_<z>/``."""
    yield from (_Found(key=n, name=n, timepoint=None, plane=None) for n in top.files)
    for z, z_dir in numbered_dirs(top, _ZSTEP_DIR):
        for n in list_dir(folder / z_dir).files:
            yield _Found(key=f"{z_dir}/{n}", name=n, timepoint=None, plane=z)
    for t, t_dir in numbered_dirs(top, _TIMEPOINT_DIR):
        sub = list_dir(folder / t_dir)
        yield from (_Found(key=f"{t_dir}/{n}", name=n, timepoint=t, plane=None) for n in sub.files)
        for z, z_dir in numbered_dirs(sub, _ZSTEP_DIR):
            for n in list_dir(folder / t_dir / z_dir).files:
                yield _Found(key=f"{t_dir}/{z_dir}/{n}", name=n, timepoint=t, plane=z)


def _htd_names(listing: Listing) -> list[str]:
    return [n for n in listing.files if n.lower().endswith(".htd")]


def _jdce_names(listing: Listing) -> list[str]:
    return [n for n in listing.files if n.lower().endswith(".jdce")]


def is_metaxpress_folder(folder: Path) -> bool:
    """An export (HTD at the top), an HCS.ai folder (a ``.jdce``), or a raw folder whose TIFFs (top,
    ``ZStep_<z>/``, ``TimePoint_<t>/``) all carry a GUID-suffixed MetaXpress name with one plate prefix."""
    top = list_dir(folder)
    if _htd_names(top) or _jdce_names(top):
        return True
    return _is_raw(folder, top)


def _is_raw(folder: Path, top: Listing) -> bool:
    plates: set[str] = set()
    for found in _walk(folder, top):
        if not has_suffix(found.name, TIFF_SUFFIXES):
            continue
        parsed = parse_image_name(found.name)
        if parsed is None or parsed.guid is None:
            return False
        plates.add(parsed.plate)
    return len(plates) == 1


def read_metaxpress(folder: Path) -> PlateLayout:
    """A MetaXpress export, HCS.ai or raw plate folder (in that order of precedence)."""
    top = list_dir(folder)
    if _htd_names(top):
        return _read_export(folder, top)
    if _jdce_names(top):
        return _read_hcsai(folder, top)
    return _read_raw(folder, top)


# --- export with HTD -----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Htd:
    """An HTD plate description: its ``"Key", value…`` lines, and the wave names by wave number."""

    values: dict[str, list[str]]
    wave_names: dict[int, str]


_HTD_INTEGERS = ("TimePoints", "ZSteps", "XWells", "YWells", "XSites", "YSites", "NWavelengths")


def parse_htd(path: Path) -> Htd:
    """Read an HTD (CRLF text; its Description holds bytes that are not UTF-8, replaced here)."""
    lines = [line for line in re.split(r"\r\n|\r|\n", read_text(path)) if line.strip()]
    rows = [[cell.strip() for cell in row] for row in csv.reader(lines, skipinitialspace=True)]
    if not rows or rows[0][:1] != ["HTSInfoFile"]:
        raise StoreError(path, 'is not an HTD file (the first line is not "HTSInfoFile", …)')
    if rows[-1][:1] != ["EndFile"]:
        raise StoreError(path, 'has no "EndFile" line (truncated?)')
    values: dict[str, list[str]] = {}
    for number, row in enumerate(rows, start=1):
        if not row or not row[0]:
            raise StoreError(path, f'line {number} is not a "Key", value line')
        values.setdefault(row[0], row[1:])
    for key in _HTD_INTEGERS:
        if key in values:
            parse_int(values[key][0] if values[key] else None, where=path, what=f'"{key}"')
    wave_names: dict[int, str] = {}
    for key, cells in values.items():
        m = re.fullmatch(r"WaveName(\d+)", key)
        if m and cells and cells[0]:
            wave_names[int(m.group(1))] = cells[0]
    return Htd(values=values, wave_names=wave_names)


def _read_export(folder: Path, top: Listing) -> PlateLayout:
    builder = PlateBuilder(layout="metaxpress")
    htd_names = _htd_names(top)
    if len(htd_names) > 1:
        builder.warn(folder / htd_names[0], f"one of {len(htd_names)} HTD files at the plate's top; read this one")
    htd = parse_htd(folder / htd_names[0])
    index_files: list[str] = []
    for found in _walk(folder, top):
        if found.name.lower().endswith(".htd"):
            index_files.append(found.key)  # the copies MetaXpress leaves in each TimePoint_/ZStep_ folder
            continue
        if not has_suffix(found.name, TIFF_SUFFIXES):
            continue
        parsed = parse_image_name(found.name)
        if parsed is None:
            builder.warn(found.key, f"name does not follow the MetaXpress pattern {_EXPORT_PATTERN}")
            continue
        if parsed.thumbnail:
            continue
        wave = parsed.wave if parsed.wave is not None else 1
        builder.add(
            PlateFile(
                key=found.key,
                well_id=parsed.well_id,
                field=parsed.site if parsed.site is not None else 1,
                channel=str(wave),
                channel_name=htd.wave_names.get(wave),
                plane=found.plane,
                timepoint=found.timepoint,
            )
        )
    return builder.build(plate_id=clean_id(folder.name), index_files=index_files)


# --- raw / database folder -----------------------------------------------------------------------------------


def _read_raw(folder: Path, top: Listing) -> PlateLayout:
    builder = PlateBuilder(layout="metaxpress")
    plate_id: str | None = None
    for found in _walk(folder, top):
        if not has_suffix(found.name, TIFF_SUFFIXES):
            continue
        parsed = parse_image_name(found.name)
        if parsed is None or parsed.guid is None:
            builder.warn(found.key, f"name does not follow the MetaXpress pattern {_RAW_PATTERN}")
            continue
        if parsed.thumbnail:
            continue
        if plate_id is None:
            plate_id = parsed.plate
        elif parsed.plate != plate_id:
            builder.warn(found.key, f"belongs to plate {parsed.plate!r}, not {plate_id!r}; left out")
            continue
        builder.add(
            PlateFile(
                key=found.key,
                well_id=parsed.well_id,
                field=parsed.site if parsed.site is not None else 1,
                channel=str(parsed.wave if parsed.wave is not None else 1),
                plane=found.plane,  # None at the top: those are the projections
                timepoint=found.timepoint,
            )
        )
    return builder.build(plate_id=plate_id)


# --- HCS.ai (.jdce + image_metadata CSV) ---------------------------------------------------------------------


def _read_hcsai(folder: Path, top: Listing) -> PlateLayout:
    builder = PlateBuilder(layout="metaxpress")
    jdce_names = _jdce_names(top)
    if len(jdce_names) > 1:
        builder.warn(folder / jdce_names[0], f"one of {len(jdce_names)} .jdce files in the folder; read this one")
    jdce = folder / jdce_names[0]
    stack = _image_stack(jdce)
    protocol = _dict(stack.get("AutoLeadAcquisitionProtocol"))
    wave_names = _wave_names(protocol or stack)
    index_files = [jdce_names[0]]
    existing = FolderFiles(folder)
    listed: set[str] = set()
    for csv_name in _metadata_csvs(stack, top):
        if not (folder / csv_name).is_file():
            builder.warn(csv_name, f"listed in {jdce_names[0]} but missing")
            continue
        index_files.append(csv_name)
        for file in _csv_files(folder / csv_name, wave_names):
            listed.add(file.key)
            if not existing.exists(file.key):
                builder.warn(file.key, f"listed in {csv_name} but missing")
                continue
            builder.add(file)
    for t_dir in ["", *(d for _, d in numbered_dirs(top, _HCSAI_TIMEPOINT_DIR))]:
        for name in sorted(existing.names(t_dir)):
            key = relative_key(t_dir, name)
            if has_suffix(name, TIFF_SUFFIXES) and key not in listed:
                builder.warn(key, "not listed in any image_metadata CSV")
    return builder.build(
        plate_id=_hcsai_plate_id(stack) or clean_id(folder.name),
        index_files=index_files,
        pixel_size=_hcsai_pixel_size(protocol, jdce),
        plane_spacing=_hcsai_plane_spacing(protocol),
    )


def _image_stack(jdce: Path) -> dict[str, Any]:
    try:
        document = json.loads(read_text(jdce))
    except json.JSONDecodeError as exc:
        raise StoreError(jdce, f"is not valid JSON ({exc})") from exc
    stack = _dict(document.get("ImageStack")) if isinstance(document, dict) else None
    if stack is None:
        raise StoreError(jdce, 'has no "ImageStack" object')
    return stack


def _dict(value: Any) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _metadata_csvs(stack: dict[str, Any], top: Listing) -> list[str]:
    """The CSVs the jdce names (``ImageMetadataFiles``), else the ``image_metadata_<n>.csv`` beside it."""
    named = stack.get("ImageMetadataFiles")
    if isinstance(named, list) and named and all(isinstance(n, str) for n in named):
        return [relative_key(n) for n in named]
    return [n for n in top.files if re.fullmatch(r"image_metadata_\d+\.csv", n, re.IGNORECASE)]


def _wave_names(protocol: dict[str, Any]) -> dict[int, str]:
    names: dict[int, str] = {}
    waves = protocol.get("Wavelengths")
    for wave in waves if isinstance(waves, list) else []:
        if not isinstance(wave, dict) or not isinstance(wave.get("Index"), int):
            continue
        emission = _dict(wave.get("EmissionFilter")) or {}
        name = emission.get("Name")
        if isinstance(name, str) and name.strip():
            names[wave["Index"]] = name.strip()
    return names


def _csv_files(path: Path, wave_names: dict[int, str]) -> Iterator[PlateFile]:
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    missing = [c for c in _HCSAI_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise StoreError(path, f"is not an ImageXpress image_metadata CSV (no {', '.join(missing)} column)")
    for line, row in enumerate(reader, start=2):
        what = f"line {line}"
        name = (row.get("ImageFileName") or "").strip()
        if not name:
            raise StoreError(path, f"{what} has no ImageFileName")
        wave = _cell(row, "Wavelength", path, what)
        yield PlateFile(
            key=relative_key(row.get("ImageSubFolderPath") or "", name),
            well_id=well_from_numbers(
                _cell(row, "Row", path, what), _cell(row, "Column", path, what), where=path, what=what
            ),
            field=_cell(row, "Field", path, what),
            plane=_cell(row, "ZIndex", path, what),
            timepoint=_cell(row, "Timepoint", path, what),
            channel=str(wave),
            channel_name=wave_names.get(wave),
        )


def _cell(row: dict[str, str], column: str, path: Path, what: str) -> int:
    return parse_int(row.get(column), where=path, what=f"{what} {column}")


def _hcsai_plate_id(stack: dict[str, Any]) -> str | None:
    """The specimen holder's barcode when one was scanned or typed (``3500009044``), else ``PlateId`` (which
    without a barcode is the protocol name plus a time stamp). ``Plate.Name`` is the plate *type*, never used."""
    holder = _dict(stack.get("SpecimenHolder")) or {}
    for value in (holder.get("Barcode"), stack.get("PlateId")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _hcsai_pixel_size(protocol: dict[str, Any] | None, jdce: Path) -> tuple[float, float] | None:
    calibration = _dict((protocol or {}).get("ObjectiveCalibration"))
    if calibration is None:
        return None
    width, height = calibration.get("PixelWidth"), calibration.get("PixelHeight")
    if not (is_number(width) and is_number(height)) or width <= 0 or height <= 0:
        return None
    unit = calibration.get("Unit")
    unit_text = unit if isinstance(unit, str) else "µm"
    where = "ObjectiveCalibration"
    return (
        to_micrometres(float(height), unit_text, where=jdce, what=where),
        to_micrometres(float(width), unit_text, where=jdce, what=where),
    )


def _hcsai_plane_spacing(protocol: dict[str, Any] | None) -> float | None:
    plate_map = _dict((protocol or {}).get("PlateMap")) or {}
    z = _dict(plate_map.get("ZDimensionParameters")) or {}
    step = z.get("Step")
    if z.get("Enabled") is True and is_number(step) and step > 0:
        return float(step)
    return None
