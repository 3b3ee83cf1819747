"""Synthetic Opera Phenix plates laid out like a Harmony export, for ``bench_plate.py``.

    .venv/bin/python benchmarks/plates.py ROOT [--small] [--no-index] [--copies N]

A plate is ``<root>/<plate_id>/Images/`` holding one small uncompressed TIFF per well, field and channel,
named as Harmony names them (``r01c01f01p01-ch1sk1fk1fl1.tiff``), and optionally the HarmonyV5 index
``Index.idx.xml`` with one ``Image`` per TIFF (structure copied from a real Phenix export: ``Plates/Plate``,
``Wells/Well``, ``Images/Image``; the per-channel flat-field ``Maps`` are left out, nothing catalogues them).

Speed matters more than realism of the pixels: one template TIFF is written with tifffile, and every file is
that template with its first two pixels overwritten by the file's well and field/channel numbers (a patch of
the raw bytes of an uncompressed strip, so the file stays a valid TIFF). Pixel data is otherwise identical
across files. Further plates are made by hard-linking the TIFFs of the first (:func:`link_plates`); each gets
its own index with its own ``PlateID``.
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import tifffile

IMAGES_DIR = "Images"
INDEX_NAME = "Index.idx.xml"
HARMONY_NS = "http://www.perkinelmer.com/PEHH/HarmonyV5"
#: Metres per pixel, as a 20x water objective with 2x2 binning gives on a Phenix (the real sample's value).
PIXEL_SIZE_M = 5.979760809567617e-07


@dataclass(frozen=True)
class Channel:
    """One acquisition channel as the index describes it."""

    name: str
    excitation_nm: int
    emission_nm: int
    fluorescent: bool = True


CHANNELS = (
    Channel("HOECHST 33342", 375, 456),
    Channel("Alexa 488", 488, 522),
    Channel("Alexa 568", 561, 599),
    Channel("Alexa 647", 640, 706),
    Channel("Brightfield", 740, 740, fluorescent=False),
)


@dataclass(frozen=True)
class PlateSpec:
    """Size of a plate: wells (rows × columns), fields per well, channels per field, pixels per image."""

    rows: int = 16  # A–P
    columns: int = 24
    fields: int = 9
    channels: int = 5
    width: int = 48
    height: int = 40

    @property
    def files(self) -> int:
        return self.rows * self.columns * self.fields * self.channels

    def describe(self) -> str:
        return (
            f"{self.rows}x{self.columns} wells x {self.fields} fields x {self.channels} channels = "
            f"{self.files:,} TIFFs of {self.height}x{self.width} uint16"
        )


FULL = PlateSpec()
#: ``--small``: 2 rows × 3 columns × 2 fields × 5 channels = 60 files.
SMALL = PlateSpec(rows=2, columns=3, fields=2)


@dataclass(frozen=True)
class Site:
    """One image file of a plate: 1-based row, column, field and channel, as in the Harmony file name."""

    row: int
    col: int
    field: int
    channel: int

    @property
    def name(self) -> str:
        return f"r{self.row:02d}c{self.col:02d}f{self.field:02d}p01-ch{self.channel}sk1fk1fl1.tiff"


def plate_id(number: int) -> str:
    """``1`` → ``BR00000001`` (a Broad-style barcode)."""
    return f"BR{number:08d}"


def sites(spec: PlateSpec) -> Iterator[Site]:
    """Every file of the plate, in acquisition order (well by well, field by field, channel by channel)."""
    for row in range(1, spec.rows + 1):
        for col in range(1, spec.columns + 1):
            for field in range(1, spec.fields + 1):
                for channel in range(1, spec.channels + 1):
                    yield Site(row, col, field, channel)


def template_tiff(spec: PlateSpec) -> tuple[bytes, int]:
    """One uncompressed single-strip TIFF and the byte offset of its pixel data.

    Uncompressed so that patching pixel bytes in place keeps the file valid; single strip so that the
    pixels are one contiguous run at a known offset.
    """
    rng = np.random.default_rng(0)
    pixels = rng.integers(100, 4000, size=(spec.height, spec.width), dtype=np.uint16)
    buffer = io.BytesIO()
    # metadata=None: no tifffile "shaped" JSON description; a Phenix TIFF carries no such thing.
    tifffile.imwrite(
        buffer, pixels, photometric="minisblack", metadata=None, rowsperstrip=spec.height, software="plates.py"
    )
    data = buffer.getvalue()
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        (offset,) = tif.pages[0].dataoffsets
    return data, int(offset)


def _file_bytes(template: bytes, offset: int, site: Site) -> bytes:
    """The template with its first two pixels set from the site, so no two files of a plate are equal."""
    data = bytearray(template)
    struct.pack_into("<HH", data, offset, (site.row - 1) * 100 + site.col, site.field * 10 + site.channel)
    return bytes(data)


def write_plate(root: Path, number: int = 1, spec: PlateSpec = FULL, index: bool = True) -> Path:
    """Write plate ``BR{number:08d}`` under ``root``; return its folder (``<root>/<plate_id>``)."""
    plate = root / plate_id(number)
    images = plate / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    template, offset = template_tiff(spec)
    for site in sites(spec):
        (images / site.name).write_bytes(_file_bytes(template, offset, site))
    if index:
        write_index(images / INDEX_NAME, plate_id(number), spec)
    return plate


def link_plates(source: Path, root: Path, count: int, spec: PlateSpec = FULL, index: bool = True) -> list[Path]:
    """Plates ``BR00000001`` … ``BR{count:08d}`` under ``root`` whose TIFFs are hard links to ``source``'s.

    Each plate gets an index of its own (its own ``PlateID``), or none when ``index`` is false. A hard link
    costs one directory entry, so 100 plates of 17,280 files take seconds and no extra pixel bytes. Beware:
    the links share one inode, so touching a linked file changes every plate (see :func:`change_plate`).
    """
    source_images = source / IMAGES_DIR
    names = [site.name for site in sites(spec)]
    plates = []
    for number in range(1, count + 1):
        plate = root / plate_id(number)
        images = plate / IMAGES_DIR
        images.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.link(source_images / name, images / name)
        if index:
            write_index(images / INDEX_NAME, plate_id(number), spec)
        plates.append(plate)
    return plates


def change_plate(plate: Path, spec: PlateSpec = FULL) -> Path:
    """Rewrite one TIFF of ``plate`` with new pixels and a new mtime; return the file's path.

    Written to a new file and renamed over the old one, so the file gets a new inode: writing in place (or
    ``os.utime``) would change the hard-linked copy in every other plate as well.
    """
    site = Site(1, 1, 1, 1)
    path = plate / IMAGES_DIR / site.name
    data = bytearray(path.read_bytes())
    _, offset = template_tiff(spec)
    struct.pack_into("<H", data, offset + 4, 65535)  # the third pixel: differs from every generated file
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)
    return path


# --- Index.idx.xml -----------------------------------------------------------------------------------


def _image_id(site: Site) -> str:
    # Harmony's form: well RRCC, K<timepoint>, F<field>, P<plane>, R<channel>.
    return f"{site.row:02d}{site.col:02d}K1F{site.field}P1R{site.channel}"


def _image_xml(site: Site, spec: PlateSpec) -> str:
    channel = CHANNELS[(site.channel - 1) % len(CHANNELS)]
    kind = "Fluorescence" if channel.fluorescent else "Brightfield"
    illumination = "Epifluorescence" if channel.fluorescent else "Transmitted"
    # Fields on a 3x3 grid 300 µm apart, like a Phenix field layout.
    x = ((site.field - 1) % 3 - 1) * 3e-4
    y = ((site.field - 1) // 3 - 1) * 3e-4
    return f"""    <Image Version="1">
      <id>{_image_id(site)}</id>
      <State>Ok</State>
      <URL>{site.name}</URL>
      <Row>{site.row}</Row>
      <Col>{site.col}</Col>
      <FieldID>{site.field}</FieldID>
      <PlaneID>1</PlaneID>
      <TimepointID>0</TimepointID>
      <ChannelID>{site.channel}</ChannelID>
      <FlimID>1</FlimID>
      <ChannelName>{escape(channel.name)}</ChannelName>
      <ImageType>Signal</ImageType>
      <AcquisitionType>NonConfocal</AcquisitionType>
      <IlluminationType>{illumination}</IlluminationType>
      <ChannelType>{kind}</ChannelType>
      <ImageResolutionX Unit="m">{PIXEL_SIZE_M!r}</ImageResolutionX>
      <ImageResolutionY Unit="m">{PIXEL_SIZE_M!r}</ImageResolutionY>
      <ImageSizeX>{spec.width}</ImageSizeX>
      <ImageSizeY>{spec.height}</ImageSizeY>
      <BinningX>2</BinningX>
      <BinningY>2</BinningY>
      <MaxIntensity>65535</MaxIntensity>
      <CameraType>AndorZylaCam</CameraType>
      <PositionX Unit="m">{x:g}</PositionX>
      <PositionY Unit="m">{y:g}</PositionY>
      <PositionZ Unit="m">-5E-06</PositionZ>
      <AbsPositionZ Unit="m">0.134611905</AbsPositionZ>
      <MeasurementTimeOffset Unit="s">0</MeasurementTimeOffset>
      <AbsTime>2021-03-29T16:55:28.987-04:00</AbsTime>
      <MainExcitationWavelength Unit="nm">{channel.excitation_nm}</MainExcitationWavelength>
      <MainEmissionWavelength Unit="nm">{channel.emission_nm}</MainEmissionWavelength>
      <ObjectiveMagnification Unit="">20</ObjectiveMagnification>
      <ObjectiveNA Unit="">1</ObjectiveNA>
      <ExposureTime Unit="s">0.01</ExposureTime>
    </Image>
"""


def index_xml(plate: str, spec: PlateSpec) -> str:
    """A HarmonyV5 ``Index.idx.xml`` listing every file of the plate.

    Built as text, not with ElementTree: 17,280 images of ~35 elements each would take seconds as a tree.
    """
    wells = [(r, c) for r in range(1, spec.rows + 1) for c in range(1, spec.columns + 1)]
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<EvaluationInputData xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" Version="1" xmlns="{HARMONY_NS}">\n'
        "  <User>benchmark</User>\n  <InstrumentType>Phenix</InstrumentType>\n  <Plates>\n    <Plate>\n"
        f"      <PlateID>{escape(plate)}</PlateID>\n"
        "      <MeasurementID>00000000-0000-0000-0000-000000000000</MeasurementID>\n"
        "      <MeasurementStartTime>2021-03-29T16:51:44.6444882-04:00</MeasurementStartTime>\n"
        f"      <Name>{escape(plate)}</Name>\n"
        "      <PlateTypeName>384 PerkinElmer CellCarrier Ultra</PlateTypeName>\n"
        # The plate type's size, not the wells imaged: a --small plate is a corner of a 384-well plate.
        "      <PlateRows>16</PlateRows>\n      <PlateColumns>24</PlateColumns>\n"
    ]
    parts += [f'      <Well id="{r:02d}{c:02d}" />\n' for r, c in wells]
    parts.append("    </Plate>\n  </Plates>\n  <Wells>\n")
    for r, c in wells:
        parts.append(f"    <Well>\n      <id>{r:02d}{c:02d}</id>\n      <Row>{r}</Row>\n      <Col>{c}</Col>\n")
        for field in range(1, spec.fields + 1):
            for channel in range(1, spec.channels + 1):
                parts.append(f'      <Image id="{_image_id(Site(r, c, field, channel))}" />\n')
        parts.append("    </Well>\n")
    parts.append("  </Wells>\n  <Images>\n")
    parts += [_image_xml(site, spec) for site in sites(spec)]
    parts.append("  </Images>\n</EvaluationInputData>\n")
    return "".join(parts)


def write_index(path: Path, plate: str, spec: PlateSpec) -> None:
    path.write_text(index_xml(plate, spec), encoding="utf-8")


# --- command line: write plates and say how long it took ----------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="folder to write the plate(s) into (must not hold them yet)")
    parser.add_argument("--small", action="store_true", help=f"a {SMALL.describe()} plate")
    parser.add_argument("--no-index", action="store_true", help="no Index.idx.xml (file names only)")
    parser.add_argument("--copies", type=int, default=0, help="also make this many hard-linked plates in ROOT/linked")
    args = parser.parse_args(argv)
    spec = SMALL if args.small else FULL
    t = time.perf_counter()
    plate = write_plate(args.root, 1, spec, index=not args.no_index)
    print(f"wrote {plate} ({spec.describe()}) in {time.perf_counter() - t:.2f} s")
    if args.copies:
        t = time.perf_counter()
        link_plates(plate, args.root / "linked", args.copies, spec, index=not args.no_index)
        print(f"linked {args.copies} plates into {args.root / 'linked'} in {time.perf_counter() - t:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
