"""Thermo Fisher Cellomics ArrayScan / CellInsight plate folders, read from file names.

``<plate>_<WELL>f<field>d<channel>.(tif|tiff|C01)``: field 0-based with 2–3 digits, channel (dye) one digit from 0
(``AS_09125_050116030001_D03f00d0.tif``). No index file: a folder is a plate when all its images follow the
pattern with one plate prefix, which is then the plate id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs._common import PlateBuilder, has_suffix, list_dir, well_from_name
from bioimage_pipeline.formats.hcs.model import PlateFile, PlateLayout

_SUFFIXES = (".tif", ".tiff", ".c01")
_NAME = re.compile(
    r"^(?P<plate>.+)_(?P<row>[A-Za-z]{1,2})(?P<col>\d{2})f(?P<field>\d{2,3})d(?P<channel>\d)\.(?:tiff?|c01)$",
    re.IGNORECASE,
)


@dataclass(frozen=True, kw_only=True)
class CellomicsName:
    plate: str
    well_id: str
    field: int
    channel: str


def parse_cellomics_name(name: str) -> CellomicsName | None:
    """``AS_09125_050116030001_D03f00d1.tif`` → plate ``AS_09125_050116030001``, D03, field 0, channel ``"1"``."""
    m = _NAME.match(name)
    if m is None:
        return None
    return CellomicsName(
        plate=m["plate"], well_id=well_from_name(m["row"], m["col"]), field=int(m["field"]), channel=m["channel"]
    )


def _images(folder: Path) -> list[str]:
    return [n for n in list_dir(folder).files if has_suffix(n, _SUFFIXES)]


def is_cellomics_folder(folder: Path) -> bool:
    """Every TIFF/C01 in the folder has an ArrayScan name, and they share one plate prefix."""
    plates: set[str] = set()
    for name in _images(folder):
        parsed = parse_cellomics_name(name)
        if parsed is None:
            return False
        plates.add(parsed.plate)
    return len(plates) == 1


def read_cellomics(folder: Path) -> PlateLayout:
    """A Cellomics plate folder, from its file names; images of another plate prefix are warnings."""
    names = _images(folder)
    if not names:
        raise StoreError(folder, "holds no Cellomics images")
    builder = PlateBuilder(layout="cellomics")
    plate_id: str | None = None
    for name in names:
        parsed = parse_cellomics_name(name)
        if parsed is None:
            builder.warn(name, "name does not follow the Cellomics pattern <plate>_<WELL>f<field>d<channel>")
            continue
        if plate_id is None:
            plate_id = parsed.plate
        elif parsed.plate != plate_id:
            builder.warn(name, f"belongs to plate {parsed.plate!r}, not {plate_id!r}; left out")
            continue
        builder.add(PlateFile(key=name, well_id=parsed.well_id, field=parsed.field, channel=parsed.channel))
    return builder.build(plate_id=plate_id)
