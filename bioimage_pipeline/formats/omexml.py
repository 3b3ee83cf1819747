"""OME-XML: the images, their pixel geometry, channels, physical sizes and HCS plate layout.

Shared by OME-TIFF and bioformats2raw (``OME/METADATA.ome.xml``). Namespaces differ between schema
releases (2008–2016), so elements are matched by local name.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from bioimage_pipeline.formats.ngff import well_id

_UNIT_ALIASES = {
    "µm": "micrometer",
    "um": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "m": "meter",
    "cm": "centimeter",
    "Å": "angstrom",
    "pm": "picometer",
    "s": "second",
    "ms": "millisecond",
}


def unit_name(symbol: str | None) -> str | None:
    """OME unit symbols (``µm``) as the UDUNITS names OME-NGFF uses (``micrometer``)."""
    if symbol is None:
        return None
    return _UNIT_ALIASES.get(symbol, symbol)


@dataclass
class TiffData:
    ifd: int = 0
    first_z: int = 0
    first_t: int = 0
    first_c: int = 0
    plane_count: int | None = None
    file_name: str | None = None
    uuid: str | None = None


@dataclass
class OmeImage:
    index: int
    id: str
    name: str | None
    dimension_order: str
    sizes: dict[str, int]  # X Y Z C T
    pixel_type: str | None
    physical_sizes: dict[str, float] = field(default_factory=dict)  # X Y Z
    physical_units: dict[str, str] = field(default_factory=dict)
    channel_names: list[str] = field(default_factory=list)
    tiff_data: list[TiffData] = field(default_factory=list)


@dataclass(frozen=True)
class WellSample:
    plate_id: str
    well_id: str
    site_id: str


@dataclass
class OmeMetadata:
    images: list[OmeImage]
    #: Image index → where it was acquired, from Plate/Well/WellSample/ImageRef.
    well_samples: dict[int, WellSample] = field(default_factory=dict)
    uuid: str | None = None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def parse_ome_xml(text: str | bytes) -> OmeMetadata:
    """Parse an OME-XML document; raises ``ValueError`` with the parser's message when malformed."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"invalid OME-XML ({exc})") from exc
    images: list[OmeImage] = []
    image_index: dict[str, int] = {}
    for i, img in enumerate(_children(root, "Image")):
        image_index[img.get("ID", f"Image:{i}")] = i
        pixels = next(iter(_children(img, "Pixels")), None)
        if pixels is None:
            continue
        sizes = {d: _int(pixels.get(f"Size{d}"), 1) for d in "XYZCT"}
        physical, units = {}, {}
        for d in "XYZ":
            value = _float(pixels.get(f"PhysicalSize{d}"))
            if value is not None:
                physical[d] = value
                units[d] = unit_name(pixels.get(f"PhysicalSize{d}Unit") or "µm") or "micrometer"
        channels = [c.get("Name") or c.get("ID") or f"Channel {k}" for k, c in enumerate(_children(pixels, "Channel"))]
        tiff_data = []
        for td in _children(pixels, "TiffData"):
            uuid_el = next(iter(_children(td, "UUID")), None)
            tiff_data.append(
                TiffData(
                    ifd=_int(td.get("IFD")),
                    first_z=_int(td.get("FirstZ")),
                    first_t=_int(td.get("FirstT")),
                    first_c=_int(td.get("FirstC")),
                    plane_count=_int(td.get("PlaneCount")) if td.get("PlaneCount") is not None else None,
                    file_name=uuid_el.get("FileName") if uuid_el is not None else None,
                    uuid=uuid_el.text.strip() if uuid_el is not None and uuid_el.text else None,
                )
            )
        images.append(
            OmeImage(
                index=i,
                id=img.get("ID", f"Image:{i}"),
                name=img.get("Name"),
                dimension_order=pixels.get("DimensionOrder", "XYZCT"),
                sizes=sizes,
                pixel_type=pixels.get("Type"),
                physical_sizes=physical,
                physical_units=units,
                channel_names=channels,
                tiff_data=tiff_data,
            )
        )
    samples: dict[int, WellSample] = {}
    for plate in _children(root, "Plate"):
        plate_name = plate.get("Name") or plate.get("ID") or "plate"
        row_naming = plate.get("RowNamingConvention", "letter")
        for well in _children(plate, "Well"):
            row, col = _int(well.get("Row")), _int(well.get("Column"))
            row_text = str(row + 1) if row_naming.lower() == "number" else _letters(row)
            wid = well_id(row_text if not row_text.isdigit() else _letters(row), col + 1)
            for k, sample in enumerate(_children(well, "WellSample")):
                ref = next(iter(_children(sample, "ImageRef")), None)
                if ref is None or ref.get("ID") not in image_index:
                    continue
                # WellSample@Index is unique across the plate; the site is the sample's position in its well.
                samples[image_index[ref.get("ID", "")]] = WellSample(plate_name, wid, str(k))
    return OmeMetadata(images, samples, root.get("UUID"))


def _letters(index0: int) -> str:
    n, letters = index0 + 1, ""
    while n > 0:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
