"""Plate, well, site and channel from vendor file names, for images whose metadata does not say.

Each pattern is a named regular expression over the file name; the first that matches wins. Add a
pattern here (with a test) rather than special-casing a vendor elsewhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bioimage_pipeline.wells import well_id


@dataclass(frozen=True)
class FileNameKeys:
    convention: str
    well_id: str
    site_id: str | None = None
    channel: str | None = None
    plate_id: str | None = None
    plane: str | None = None


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # PerkinElmer Opera Phenix / Operetta: r03c03f03p01-ch1sk1fk1fl1.tiff
    (
        "opera-phenix",
        re.compile(
            r"^r(?P<row>\d{1,2})c(?P<col>\d{1,2})f(?P<site>\d{1,3})p(?P<plane>\d{1,3})-ch(?P<channel>\d{1,2})"
            r"sk\d+fk\d+fl\d+\.tiff?$",
            re.IGNORECASE,
        ),
    ),
    # Thermo Cellomics ArrayScan: <plate>_D03f00d0.tif
    (
        "arrayscan",
        re.compile(
            r"^(?P<plate>.+?)_(?P<row>[A-Pa-p])(?P<col>\d{2})f(?P<site>\d{2,3})d(?P<channel>\d)\.(?:c01|tiff?)$",
            re.IGNORECASE,
        ),
    ),
    # Molecular Devices ImageXpress / MetaXpress: <plate>_B03_s1_w1<uuid>.tif
    (
        "imagexpress",
        re.compile(
            r"^(?P<plate>.+?)_(?P<row>[A-Pa-p])(?P<col>\d{2})(?:_s(?P<site>\d{1,3}))?(?:_w(?P<channel>\d))?"
            r"[0-9A-Fa-f-]*\.tiff?$",
            re.IGNORECASE,
        ),
    ),
]


def parse_file_name(name: str) -> FileNameKeys | None:
    """Keys from a vendor file name, or None when no known convention matches."""
    for convention, pattern in _PATTERNS:
        m = pattern.match(name)
        if not m:
            continue
        groups = m.groupdict()
        row = groups["row"]
        row_value: str | int = int(row) if row.isdigit() else row.upper()
        site = groups.get("site")
        return FileNameKeys(
            convention=convention,
            well_id=well_id(row_value, int(groups["col"])),
            site_id=str(int(site)) if site is not None else None,
            channel=groups.get("channel"),
            plate_id=groups.get("plate"),
            plane=groups.get("plane"),
        )
    return None
