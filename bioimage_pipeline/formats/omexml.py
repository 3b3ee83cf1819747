"""OME-XML: the images, their pixel geometry, channels, physical sizes and HCS plate layout.

Shared by OME-TIFF and bioformats2raw (``OME/METADATA.ome.xml``). Namespaces differ between schema
releases (2008–2016), so elements are matched by local name.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from bioimage_pipeline.wells import well_id

_UNIT_ALIASES = {
    "µm": "micrometer",  # MICRO SIGN, what the OME schema uses
    "μm": "micrometer",  # GREEK SMALL LETTER MU, what some writers type instead
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "\\u00b5m": "micrometer",  # ImageJ writes the escape sequence literally into its description
    "nm": "nanometer",
    "mm": "millimeter",
    "m": "meter",
    "cm": "centimeter",
    "km": "kilometer",
    "Å": "angstrom",
    "pm": "picometer",
    "in": "inch",
    "inch": "inch",
    "inches": "inch",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "µs": "microsecond",
    "ns": "nanosecond",
    "min": "minute",
    "h": "hour",
}


def unit_name(symbol: str | None) -> str | None:
    """OME and ImageJ unit symbols (``µm``, ``micron``) as the UDUNITS names OME-NGFF uses (``micrometer``).

    Symbols that are not known are returned as given rather than guessed.
    """
    if symbol is None:
        return None
    text = symbol.strip()
    return _UNIT_ALIASES.get(text, _UNIT_ALIASES.get(text.lower(), text))


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
    #: ``Channel@Name`` of every channel; empty when no channel is named (IDs are not names).
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
    #: ``BinaryOnly@MetadataFile``: the pixels are here, the metadata in that file (a companion or master TIFF).
    binary_only: str | None = None


@dataclass(frozen=True)
class OmeFileRefs:
    """What an OME-XML document says about the files of its dataset, without building the full model."""

    uuid: str | None
    #: ``BinaryOnly@MetadataFile`` when this document only points at the real metadata.
    binary_only: str | None
    #: (UUID text, FileName) of every ``TiffData/UUID`` element, in document order.
    files: tuple[tuple[str | None, str], ...]
    #: Whether the document describes at least one Image.
    has_images: bool

    def other_files(self, own_name: str) -> list[str]:
        """File names of the dataset's other files, as written in the XML.

        A ``UUID`` equal to the document's own UUID is this file whatever its ``FileName`` says: files are
        often renamed after writing (the UUID is what readers match on).
        """
        names: list[str] = []
        for uuid, name in self.files:
            if self.uuid and uuid and uuid == self.uuid:
                continue
            if (not self.uuid or not uuid) and name.lower() == own_name.lower():
                continue
            if name not in names:
                names.append(name)
        return names


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


def _root(text: str | bytes) -> ET.Element:
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"invalid OME-XML ({exc})") from exc


def ome_file_refs(text: str | bytes) -> OmeFileRefs:
    """The dataset's files as one OME-XML document names them; raises ``ValueError`` when malformed."""
    root = _root(text)
    binary = next((el for el in root if _local(el.tag) == "BinaryOnly"), None)
    files: list[tuple[str | None, str]] = []
    has_images = False
    for image in _children(root, "Image"):
        has_images = True
        for pixels in _children(image, "Pixels"):
            for td in _children(pixels, "TiffData"):
                for uuid_el in _children(td, "UUID"):
                    name = uuid_el.get("FileName")
                    if name:
                        files.append(((uuid_el.text or "").strip() or None, name))
    return OmeFileRefs(
        uuid=root.get("UUID"),
        binary_only=binary.get("MetadataFile") if binary is not None else None,
        files=tuple(files),
        has_images=has_images,
    )


def parse_ome_xml(text: str | bytes) -> OmeMetadata:
    """Parse an OME-XML document; raises ``ValueError`` with the parser's message when malformed."""
    root = _root(text)
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
            if value is not None and value > 0:
                physical[d] = value
                # µm is the schema's default unit when the attribute is absent.
                units[d] = unit_name(pixels.get(f"PhysicalSize{d}Unit") or "µm") or "micrometer"
        channel_elements = _children(pixels, "Channel")
        named = [c.get("Name") for c in channel_elements]
        channels = (
            [name if name else f"Channel {k}" for k, name in enumerate(named)] if any(named) else []
        )  # a channel ID ("Channel:0:0") is an identifier, not a name
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
    for plate in (el for el in root.iter() if _local(el.tag) == "Plate"):
        plate_name = plate.get("Name") or plate.get("ID") or "plate"
        for well in _children(plate, "Well"):
            # Row and Column are 0-based indices whatever the plate's naming convention says.
            wid = well_id(_int(well.get("Row")) + 1, _int(well.get("Column")) + 1)
            for k, sample in enumerate(_children(well, "WellSample")):
                ref = next(iter(_children(sample, "ImageRef")), None)
                if ref is None or ref.get("ID") not in image_index:
                    continue
                # WellSample@Index is unique across the plate; the site is the sample's position in its well.
                samples[image_index[ref.get("ID", "")]] = WellSample(plate_name, wid, str(k))
    binary = next((el for el in root if _local(el.tag) == "BinaryOnly"), None)
    return OmeMetadata(
        images,
        samples,
        root.get("UUID"),
        binary_only=binary.get("MetadataFile") if binary is not None else None,
    )
