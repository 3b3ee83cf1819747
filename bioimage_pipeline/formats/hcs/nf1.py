"""WayScience NF1 Cell Painting plate folders, read from file names.

``<WELL>_<nn>_<channel>_<site>_<stain>_<nnn>.tif`` (``B7_01_1_3_DAPI_001.tif``: well B07, site 3, channel 1
named DAPI). The two fixed counters (``01``, ``001``) are not dimensions of these plates and are not read. The plate
id is the folder name without a trailing ``_images`` (``Plate_2_images`` → ``Plate_2``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs._common import (
    TIFF_SUFFIXES,
    PlateBuilder,
    clean_id,
    has_suffix,
    list_dir,
    well_from_name,
)
from bioimage_pipeline.formats.hcs.model import PlateFile, PlateLayout

_NAME = re.compile(
    r"^(?P<row>[A-Za-z]{1,2})(?P<col>\d{1,2})_\d{2}_(?P<channel>\d+)_(?P<site>\d+)_(?P<stain>[A-Za-z0-9-]+)_\d{3}"
    r"\.tiff?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, kw_only=True)
class Nf1Name:
    well_id: str
    site: int
    channel: str
    stain: str


def parse_nf1_name(name: str) -> Nf1Name | None:
    m = _NAME.match(name)
    if m is None:
        return None
    return Nf1Name(
        well_id=well_from_name(m["row"], m["col"]),
        site=int(m["site"]),
        channel=str(int(m["channel"])),
        stain=m["stain"],
    )


def _images(folder: Path) -> list[str]:
    return [n for n in list_dir(folder).files if has_suffix(n, TIFF_SUFFIXES)]


def is_nf1_folder(folder: Path) -> bool:
    """Every TIFF in the folder has an NF1 name."""
    names = _images(folder)
    return bool(names) and all(parse_nf1_name(n) is not None for n in names)


def plate_id_from_folder(folder: Path) -> str | None:
    name = folder.name
    if name.lower().endswith("_images") and len(name) > len("_images"):
        name = name[: -len("_images")]
    return clean_id(name)


def read_nf1(folder: Path) -> PlateLayout:
    """An NF1 plate folder: channel = the channel digit, channel name = the stain, field = the site."""
    builder = PlateBuilder(layout="nf1")
    names = _images(folder)
    if not names:
        raise StoreError(folder, "holds no NF1 images")
    for name in names:
        parsed = parse_nf1_name(name)
        if parsed is None:
            builder.warn(name, "name does not follow the NF1 pattern <WELL>_<nn>_<channel>_<site>_<stain>_<nnn>.tif")
            continue
        builder.add(
            PlateFile(
                key=name, well_id=parsed.well_id, field=parsed.site, channel=parsed.channel, channel_name=parsed.stain
            )
        )
    return builder.build(plate_id=plate_id_from_folder(folder))
