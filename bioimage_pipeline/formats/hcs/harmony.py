"""Revvity (PerkinElmer) Harmony exports — Opera Phenix, Operetta CLS.

A measurement folder ``<PlateID>__<date>-Measurement <n>/`` holds ``Images/`` with the TIFFs
``r01c01f01p01-ch1sk1fk1fl1.tiff`` and the index ``Index.idx.xml`` (HarmonyV5/V6 schema), ``Index.xml``
(HarmonyV7) or ``Index.ref.xml``. The plate folder is the folder holding the index and images, or its parent when
that folder is named ``Images`` (keys then start with ``Images/``). Without an index the file names say well,
field, plane, channel and (``sk``) time point.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.hcs._common import (
    TIFF_SUFFIXES,
    Listing,
    PlateBuilder,
    clean_id,
    has_suffix,
    list_dir,
    local,
    parse_float,
    parse_int,
    plane_spacing_of,
    relative_key,
    single_pixel_size,
    to_micrometres,
    well_from_numbers,
)
from bioimage_pipeline.formats.hcs.model import PlateFile, PlateLayout

#: Index file names in order of preference (an export carrying two is read from the first).
INDEX_NAMES = ("Index.idx.xml", "Index.xml", "Index.ref.xml")
IMAGES_DIR = "Images"
_NAME = re.compile(
    r"^r(?P<row>\d{2,})c(?P<col>\d{2,})f(?P<field>\d{2,})p(?P<plane>\d{2,})"
    r"-ch(?P<channel>\d+)sk(?P<sk>\d+)fk(?P<fk>\d+)fl(?P<fl>\d+)\.tiff?$",
    re.IGNORECASE,
)


@dataclass(kw_only=True)
class _Images:
    """Where a plate folder keeps its images and index."""

    folder: Path
    prefix: str  # "" or "Images/"
    index_names: tuple[str, ...]
    known: Listing | None = None

    @functools.cached_property
    def listing(self) -> Listing:
        # Listed only to read the plate: telling a plate by its index takes a stat, not 17,280 entries.
        return self.known if self.known is not None else list_dir(self.folder)


@dataclass(frozen=True, kw_only=True)
class _Channel:
    name: str | None = None
    pixel_size: tuple[float, float] | None = None  # µm, (y, x)


def is_phenix_name(name: str) -> bool:
    return _NAME.match(name) is not None


def _indexes_in(folder: Path) -> tuple[str, ...]:
    return tuple(n for n in INDEX_NAMES if (folder / n).is_file())


def _all_phenix(listing: Listing) -> bool:
    images = [n for n in listing.files if has_suffix(n, TIFF_SUFFIXES)]
    return bool(images) and all(is_phenix_name(n) for n in images)


def _locate(folder: Path) -> _Images | None:
    """The folder holding the index (itself, else its ``Images/``), else the one whose TIFFs all have Phenix
    names."""
    sub = folder / IMAGES_DIR
    for where, prefix in ((folder, ""), (sub, f"{IMAGES_DIR}/")):
        names = _indexes_in(where)
        if names:
            return _Images(folder=where, prefix=prefix, index_names=names)
    top = list_dir(folder)
    if _all_phenix(top):
        return _Images(folder=folder, prefix="", index_names=(), known=top)
    if IMAGES_DIR in top.dirs:
        listing = list_dir(sub)
        if _all_phenix(listing):
            return _Images(folder=sub, prefix=f"{IMAGES_DIR}/", index_names=(), known=listing)
    return None


def is_harmony_folder(folder: Path) -> bool:
    """A folder holding a Harmony index or only Phenix-named TIFFs, itself or in its ``Images/``."""
    return _locate(folder) is not None


def plate_id_from_folder(folder: Path) -> str | None:
    """``BR00147003__2025-03-14T19_16_37-Measurement 1`` → ``BR00147003``; for ``<measurement>/Images`` the
    measurement folder's name is used."""
    name = folder.parent.name if folder.name == IMAGES_DIR else folder.name
    return clean_id(name.split("__", 1)[0])


def read_harmony(folder: Path) -> PlateLayout:
    """A Harmony plate folder, from its index when there is one, from the file names otherwise."""
    images = _locate(folder)
    if images is None:
        raise StoreError(folder, "is not a Harmony plate folder (no Index.idx.xml / Index.xml, no Phenix-named TIFFs)")
    if images.index_names:
        return _read_index(folder, images)
    return _read_names(folder, images)


def _read_names(folder: Path, images: _Images) -> PlateLayout:
    builder = PlateBuilder(layout="harmony")
    for name in images.listing.files:
        if not has_suffix(name, TIFF_SUFFIXES):
            continue
        key = images.prefix + name
        m = _NAME.match(name)
        if m is None:
            builder.warn(key, "name does not follow the Harmony pattern r01c01f01p01-ch1sk1fk1fl1.tiff")
            continue
        builder.add(
            PlateFile(
                key=key,
                well_id=well_from_numbers(int(m["row"]), int(m["col"]), where=key, what="file name"),
                field=int(m["field"]),
                plane=int(m["plane"]),
                # Without an index, sk (the kinetic step, 1-based) is the only time point there is.
                timepoint=int(m["sk"]),
                channel=str(int(m["channel"])),
            )
        )
    return builder.build(plate_id=plate_id_from_folder(folder))


#: The fields an index element is read for: name → (text, Unit attribute).
_Fields = dict[str, tuple[str | None, str | None]]
_IMAGE_FIELDS = frozenset(
    {"id", "URL", "Row", "Col", "FieldID", "PlaneID", "TimepointID", "ChannelID", "ChannelName", "PositionZ"}
)
_CHANNEL_FIELDS = frozenset({"ChannelName", "ImageResolutionX", "ImageResolutionY"})


def _fields(element: ET.Element, names: frozenset[str], tags: dict[str, str]) -> _Fields:
    """Only the named children's text and unit. ``tags`` caches each qualified tag's local name: an index
    has ~40 children per Image and 17,280 Images, and the tags repeat."""
    out: _Fields = {}
    for c in element:
        tag = c.tag
        name = tags.get(tag) if isinstance(tag, str) else ""
        if name is None:
            name = tags[tag] = local(tag)
        if name in names:
            out[name] = (c.text, c.get("Unit"))
    return out


@dataclass
class _Index:
    """What a streaming read of a Harmony index keeps: a plate id, channel descriptions and one record per Image
    (its children's elements by name); everything else is dropped as soon as it has been read."""

    plate_id: str | None = None
    channels: dict[int, _Channel] = field(default_factory=dict)
    images: list[_Fields] = field(default_factory=list)
    has_image_list: bool = False


def _stream_index(index: Path) -> _Index:
    """Read an index in one streaming pass. A plate's index lists every image with ~40 fields (26 MB for a
    384-well plate): building the whole tree costs hundreds of MB, and Python work per XML event costs seconds
    (1.2 M events), so only elements' ends are seen (the root is checked once the document is read), most
    are passed over on a suffix test of their tag, and
    each ``Image`` is reduced to a name → text map when it ends and then cleared."""
    out = _Index()
    described: list[tuple[int, _Fields]] = []  # per Image (HarmonyV5/V6), the first of each channel
    mapped: list[tuple[int, _Fields]] = []  # per channel, in Maps (HarmonyV7)
    seen: set[int] = set()
    tags: dict[str, str] = {}
    plate_fields = frozenset({"PlateID", "Name"})
    try:
        with open(index, "rb") as stream:
            events = ET.iterparse(stream, events=("end",))
            for _, element in events:
                tag = element.tag
                if not isinstance(tag, str):
                    continue
                if tag.endswith("Image"):
                    # <Images><Image> holds an image's fields; <Wells><Well><Image id=…/> only refers to one.
                    if len(element) and local(tag) == "Image":
                        fields = _fields(element, _IMAGE_FIELDS, tags)
                        out.images.append(fields)
                        channel = _int(fields, "ChannelID", index, "Image")
                        if channel not in seen:
                            seen.add(channel)
                            described.append((channel, _fields(element, _CHANNEL_FIELDS, tags)))
                        element.clear()
                elif tag.endswith("Images") and local(tag) == "Images":
                    out.has_image_list = True
                elif tag.endswith("Entry") and element.get("ChannelID") is not None and local(tag) == "Entry":
                    fields = _fields(element, _CHANNEL_FIELDS, tags)
                    if "ChannelName" in fields:
                        channel = parse_int(element.get("ChannelID"), where=index, what="Maps Entry ChannelID")
                        mapped.append((channel, fields))
                elif tag.endswith("Plate") and out.plate_id is None and local(tag) == "Plate" and len(element):
                    fields = _fields(element, plate_fields, tags)
                    out.plate_id = clean_id(_text(fields, "PlateID")) or clean_id(_text(fields, "Name"))
                elif tag.endswith("Well") and local(tag) == "Well":
                    element.clear()
            root = events.root  # type: ignore[attr-defined]  # set once the document has been read
    except ET.ParseError as exc:
        raise StoreError(index, f"is not well-formed XML ({exc})") from exc
    except OSError as exc:
        raise StoreError(index, f"cannot be read ({exc.strerror or exc})") from exc
    if local(root.tag) != "EvaluationInputData":
        raise StoreError(index, f"is not a Harmony index (root element <{local(root.tag)}>, not <EvaluationInputData>)")
    # HarmonyV7 describes channels once, in Maps (read first: it is the channel's own description); V5/V6 on
    # every Image. The first description of a channel wins.
    for channel_id, fields in [*mapped, *described]:
        if channel_id in out.channels or not (_CHANNEL_FIELDS & fields.keys()):
            continue
        what = f"channel {channel_id}"
        x = _length(fields, "ImageResolutionX", index, what)
        y = _length(fields, "ImageResolutionY", index, what)
        out.channels[channel_id] = _Channel(
            name=_text(fields, "ChannelName"), pixel_size=(y, x) if x is not None and y is not None else None
        )
    return out


def _read_index(folder: Path, images: _Images) -> PlateLayout:
    index_name = images.index_names[0]
    index = images.folder / index_name
    read = _stream_index(index)
    if not read.has_image_list:
        raise StoreError(index, "has no <Images> element")
    builder = PlateBuilder(layout="harmony")
    present = set(images.listing.files)
    listed: set[str] = set()
    stacks: dict[tuple[object, ...], dict[int, float]] = {}
    used_channels: list[int] = []
    for image in read.images:
        what = f"Image {_text(image, 'id') or '?'}"
        url = _text(image, "URL")
        if url is None:
            raise StoreError(index, f"{what} has no <URL>")
        relative = relative_key(url)
        listed.add(relative)
        channel = _int(image, "ChannelID", index, what)
        if channel not in used_channels:
            used_channels.append(channel)
        file = PlateFile(
            key=images.prefix + relative,
            well_id=well_from_numbers(
                _int(image, "Row", index, what), _int(image, "Col", index, what), where=index, what=what
            ),
            field=_int(image, "FieldID", index, what),
            plane=_int(image, "PlaneID", index, what),
            timepoint=_int(image, "TimepointID", index, what),
            channel=str(channel),
            channel_name=_text(image, "ChannelName") or read.channels.get(channel, _Channel()).name,
        )
        z = _length(image, "PositionZ", index, what)
        if z is not None and file.plane is not None:
            stacks.setdefault((file.well_id, file.field, file.timepoint, file.channel), {})[file.plane] = z
        exists = relative in present if "/" not in relative else (images.folder / relative).is_file()
        if not exists:
            builder.warn(file.key, f"listed in {index_name} but missing")
            continue
        builder.add(file)
    for name in sorted(present - listed):
        if has_suffix(name, TIFF_SUFFIXES):
            builder.warn(images.prefix + name, f"not listed in {index_name}")
    sizes = {
        str(ch): size
        for ch in sorted(used_channels)
        if (size := read.channels.get(ch, _Channel()).pixel_size) is not None
    }
    return builder.build(
        plate_id=read.plate_id or plate_id_from_folder(folder),
        index_files=[images.prefix + n for n in images.index_names],
        pixel_size=single_pixel_size(sizes, where=images.prefix + index_name, builder=builder),
        plane_spacing=plane_spacing_of(stacks),
    )


def _text(fields: _Fields, name: str) -> str | None:
    text = fields.get(name, (None, None))[0]
    return (text.strip() or None) if text is not None else None


def _int(fields: _Fields, name: str, index: Path, what: str) -> int:
    return parse_int(_text(fields, name), where=index, what=f"{what} <{name}>")


def _length(fields: _Fields, name: str, index: Path, what: str) -> float | None:
    """A length child (``<ImageResolutionX Unit="m">5.98E-07</…>``) in micrometres."""
    if name not in fields:
        return None
    text, unit = fields[name]
    value = parse_float(text, where=index, what=f"{what} <{name}>")
    if value is None:
        return None
    return to_micrometres(value, unit, where=index, what=f"{what} <{name}>")
