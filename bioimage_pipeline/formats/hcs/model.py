"""What an HCS plate folder holds, whoever wrote it: one record per image file, with its site, plane, time
point and channel, and what the plate says about itself.

Each layout module (``harmony``, ``metaxpress``, ``cellvoyager``, ``cellomics``, ``loaddata``, ``nf1``) reads its
index files and file names into a :class:`PlateLayout`; :mod:`bioimage_pipeline.formats.plate` turns that into
catalog rows. Nothing here opens an image file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: The layouts recognised, named after what wrote them.
Layout = Literal["harmony", "metaxpress", "cellvoyager", "cellomics", "loaddata", "nf1"]


@dataclass(frozen=True, kw_only=True)
class PlateFile:
    """One image file of a plate.

    ``key`` is the file's path relative to the plate folder, POSIX separators (for a LoadData CSV, whose images
    live elsewhere, the absolute path the CSV names). ``field``, ``plane`` and ``timepoint`` are numbered as the
    layout numbers them (Harmony, MetaXpress and Yokogawa from 1, ImageXpress HCS.ai and Cellomics from 0);
    ``plane`` and ``timepoint`` are None where the layout has no such dimension.
    """

    key: str
    well_id: str  # row letter(s) + two-digit column: "B03", "AF48"
    field: int
    channel: str  # the channel as the layout identifies it ("1" for ch1/w1/C01, "DAPI" for LoadData)
    channel_name: str | None = None  # what the instrument calls it, where it says ("HOECHST 33342")
    plane: int | None = None
    timepoint: int | None = None


@dataclass(kw_only=True)
class PlateLayout:
    """A plate folder read from its index files and file names."""

    layout: Layout
    plate_id: str | None
    files: list[PlateFile] = field(default_factory=list)
    #: Micrometres per pixel along (y, x), where the index says.
    pixel_size: tuple[float, float] | None = None
    #: Micrometres between planes, where the index says.
    plane_spacing: float | None = None
    #: Keys of the metadata documents read (index XML, HTD, mlf/mrf, CSV): part of the store, not images.
    index_files: list[str] = field(default_factory=list)
    #: Things the reader noticed that do not stop the plate from being catalogued (files the index lists
    #: but that are missing, names that match nothing): one line each, naming the file.
    warnings: list[str] = field(default_factory=list)
