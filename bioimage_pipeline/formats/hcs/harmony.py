"""Revvity (PerkinElmer) Harmony exports — Opera Phenix, Operetta CLS.

A measurement folder ``<PlateID>__<date>-Measurement <n>/`` holds ``Images/`` with the TIFFs
``r01c01f01p01-ch1sk1fk1fl1.tiff`` and the index ``Index.idx.xml`` (HarmonyV5/V6 schema), ``Index.xml``
(HarmonyV7) or ``Index.ref.xml``. The plate folder is the folder holding the index and images, or its parent when
that folder is named ``Images`` (keys then start with ``Images/``). Without an index the file names say well,
field, plane, channel and (``sk``) time point.
"""

from __future__ import annotations

import functools
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

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
_CHANNEL_FIELDS = frozenset({"ChannelName", "ImageResolutionX", "ImageResolutionY"})
_IMAGE_FIELDS = frozenset(
    {"id", "URL", "Row", "Col", "FieldID", "PlaneID", "TimepointID", "ChannelID", "PositionZ"} | _CHANNEL_FIELDS
)


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
    """What a read of a Harmony index keeps: a plate id, channel descriptions and one record per Image (its
    children's text by name); everything else is dropped as soon as it has been read."""

    plate_id: str | None = None
    channels: dict[int, _Channel] = field(default_factory=dict)
    images: list[_Fields] = field(default_factory=list)
    has_image_list: bool = False


def _stream_index(index: Path) -> _Index:
    """Read an index: its ``<Images>`` list by :func:`_read_image_list` where that can, the rest (or, where it
    cannot, all of it) by :func:`_parse_index`.

    A 384-well plate's index is 26 MB, 17,280 Images of ~40 fields: ElementTree alone takes ~1.5 s on it doing
    nothing per element, the list read takes ~0.3 s. Both give the same records (tested on every corpus index)."""
    try:
        data = index.read_bytes()
    except OSError as exc:
        raise StoreError(index, f"cannot be read ({exc.strerror or exc})") from exc
    span = _image_list_span(data)
    images = _read_image_list(data[span.content_start : span.content_end]) if span is not None else None
    if span is None or images is None:
        return _parse_index(data, index)
    # The list read, the rest is small (plate, wells, channel maps): parsed with the list left empty.
    out, mapped = _parse_events(data[: span.start] + b"<Images />" + data[span.end :], index)
    out.images = images
    _describe_channels(out, mapped, index)
    return out


def _parse_index(data: bytes, index: Path) -> _Index:
    """Parse a whole index with ElementTree."""
    out, mapped = _parse_events(data, index)
    _describe_channels(out, mapped, index)
    return out


def _parse_events(data: bytes, index: Path) -> tuple[_Index, list[tuple[int, _Fields]]]:
    """An index's records and its Maps channel entries, in one streaming ElementTree pass. Building the whole
    tree costs hundreds of MB, and Python work per XML event costs seconds (1.2 M events), so only elements'
    ends are seen (the root is checked once the document is read), most are passed over on a suffix test of
    their tag, and each ``Image`` is reduced to a name → text map when it ends and then cleared."""
    out = _Index()
    mapped: list[tuple[int, _Fields]] = []  # per channel, in Maps (HarmonyV7)
    tags: dict[str, str] = {}
    plate_fields = frozenset({"PlateID", "Name"})
    try:
        events = ET.iterparse(io.BytesIO(data), events=("end",))
        for _, element in events:
            tag = element.tag
            if not isinstance(tag, str):
                continue
            if tag.endswith("Image"):
                # <Images><Image> holds an image's fields; <Wells><Well><Image id=…/> only refers to one.
                if len(element) and local(tag) == "Image":
                    out.images.append(_fields(element, _IMAGE_FIELDS, tags))
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
    if local(root.tag) != "EvaluationInputData":
        raise StoreError(index, f"is not a Harmony index (root element <{local(root.tag)}>, not <EvaluationInputData>)")
    return out, mapped


def _describe_channels(out: _Index, mapped: list[tuple[int, _Fields]], index: Path) -> None:
    """Channel names and pixel sizes. HarmonyV7 describes channels once, in Maps (read first: it is the
    channel's own description); V5/V6 on every Image. The first description of a channel wins."""
    described: list[tuple[int, _Fields]] = []  # per Image, the first of each channel
    seen: set[int] = set()
    for image in out.images:
        channel = _int(image, "ChannelID", index, "Image")
        if channel not in seen:
            seen.add(channel)
            described.append((channel, {k: v for k, v in image.items() if k in _CHANNEL_FIELDS}))
    for channel_id, fields in [*mapped, *described]:
        if channel_id in out.channels or not (_CHANNEL_FIELDS & fields.keys()):
            continue
        what = f"channel {channel_id}"
        x = _length(fields, "ImageResolutionX", index, what)
        y = _length(fields, "ImageResolutionY", index, what)
        out.channels[channel_id] = _Channel(
            name=_text(fields, "ChannelName"), pixel_size=(y, x) if x is not None and y is not None else None
        )


# --- the <Images> list without a parser --------------------------------------------------------------------
#
# Harmony writes every Image of the list alike: <Image Version="1"> holding one-line leaf children in a fixed
# order, <Name>text</Name> or <Name Unit="m">text</Name>, default namespace, no entities, comments or CDATA.
# Such a list is read with one regular expression per kind of Image (made from the first Image of that kind:
# its children's names in order), matched Image after Image from the list's start to its end, capturing only the
# fields read. Anything else — an Image that no such expression matches (nested children, an entity or comment, a
# field with other attributes or written twice), another encoding — gives None, and the whole index is parsed as
# XML instead: the list read never guesses.

_ENCODING = re.compile(rb"""^(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_UTF8 = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_LIST_OPEN = re.compile(rb"<Images\s*>")
_LIST_CLOSE = re.compile(rb"</Images\s*>")
_SPACE = re.compile(r"\s*")
_IMAGE_BODY = re.compile(r"<Image(?:\s[^<>]*)?>(.*?)</Image\s*>", re.DOTALL)
_CHILD_NAME = re.compile(r"<([A-Za-z_][\w.-]*)")


@dataclass(frozen=True, kw_only=True)
class _ImageForm:
    """One kind of Image: the expression matching it whole, and where each field read is among its groups."""

    pattern: re.Pattern[str]
    names: tuple[str, ...]  # the fields read, in order; the groups are (unit, text) for each


def _image_form(children: tuple[str, ...]) -> _ImageForm | None:
    if not children or len(set(children)) != len(children):
        return None  # an empty Image is no record to ElementTree; a repeated child keeps only its last
    parts = [r"\s*<Image(?:\s[^<>]*)?>"]
    names: list[str] = []
    for name in children:
        tag = re.escape(name)
        if name in _IMAGE_FIELDS:
            names.append(name)
            parts.append(rf'\s*<{tag}(?:\s+Unit="([^"<&]*)")?\s*>([^<&\r]*)</{tag}\s*>')
        else:
            parts.append(rf"\s*<{tag}(?:\s[^<>]*)?(?:/>|>[^<]*</{tag}\s*>)")
    parts.append(r"\s*</Image\s*>")
    return _ImageForm(pattern=re.compile("".join(parts)), names=tuple(names))


class _ListSpan(NamedTuple):
    start: int  # of <Images>
    end: int  # after </Images>
    content_start: int
    content_end: int


def _image_list_span(data: bytes) -> _ListSpan | None:
    """Where the one ``<Images>…</Images>`` of a UTF-8 index is, or None."""
    declared = _ENCODING.match(data)
    if declared is not None and declared[1].decode().lower() not in _UTF8:
        return None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16
        return None
    opens = list(_LIST_OPEN.finditer(data))
    closes = list(_LIST_CLOSE.finditer(data))
    if len(opens) != 1 or len(closes) != 1 or closes[0].start() < opens[0].end():
        return None
    return _ListSpan(opens[0].start(), closes[0].end(), opens[0].end(), closes[0].start())


def _read_image_list(content: bytes) -> list[_Fields] | None:
    """The records of an ``<Images>`` list's content written the plain way (see above), else None."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    forms: dict[tuple[str, ...], _ImageForm | None] = {}
    form: _ImageForm | None = None
    images: list[_Fields] = []
    pos, end = 0, len(text)
    while True:
        m = form.pattern.match(text, pos) if form is not None else None
        if m is None or form is None:  # the first Image, one of another kind, or the end
            pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]  # matches the empty string
            if pos == end:
                return images
            body = _IMAGE_BODY.match(text, pos)
            if body is None:
                return None
            children = tuple(_CHILD_NAME.findall(body[1]))
            if children not in forms:
                forms[children] = _image_form(children)
            form = forms[children]
            m = form.pattern.match(text, pos) if form is not None else None
            if m is None or form is None:
                return None
        g = m.groups()
        record = dict(zip(form.names, zip(g[1::2], g[0::2], strict=True), strict=True))
        if "" in g[1::2]:  # ElementTree's text of <Name></Name> is None
            record = {k: (t or None, u) for k, (t, u) in record.items()}
        images.append(record)
        pos = m.end()


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
    # The index's numbers and wells repeat (16 rows, 24 columns, 9 fields, 5 channels over 17,280 Images):
    # each distinct text is parsed once.
    numbers: dict[str, int] = {}
    wells: dict[tuple[int, int], str] = {}
    lengths: dict[tuple[str | None, str | None], float | None] = {}

    def number(image: _Fields, name: str) -> int:
        text = image.get(name, _ABSENT)[0]
        value = numbers.get(text) if text is not None else None
        if value is None:
            value = _int(image, name, index, _what(image))
            numbers[text] = value  # type: ignore[index]  # not None: _int raised otherwise
        return value

    for image in read.images:
        url = _text(image, "URL")
        if url is None:
            raise StoreError(index, f"{_what(image)} has no <URL>")
        relative = url if _plain_key(url) else relative_key(url)
        listed.add(relative)
        channel = number(image, "ChannelID")
        if channel not in used_channels:
            used_channels.append(channel)
        cell = (number(image, "Row"), number(image, "Col"))
        well = wells.get(cell)
        if well is None:
            well = wells[cell] = well_from_numbers(*cell, where=index, what=_what(image))
        file = PlateFile(
            key=images.prefix + relative,
            well_id=well,
            field=number(image, "FieldID"),
            plane=number(image, "PlaneID"),
            timepoint=number(image, "TimepointID"),
            channel=str(channel),
            channel_name=_text(image, "ChannelName") or read.channels.get(channel, _Channel()).name,
        )
        position = image.get("PositionZ", _ABSENT)
        if position not in lengths:
            lengths[position] = _length(image, "PositionZ", index, _what(image))
        z = lengths[position]
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


_ABSENT: tuple[None, None] = (None, None)


def _what(image: _Fields) -> str:
    return f"Image {_text(image, 'id') or '?'}"


def _plain_key(url: str) -> bool:
    """A URL that :func:`relative_key` would return as it is (a file name, ``sub/name``)."""
    return "\\" not in url and url[:1] not in ("/", ".") and url[-1:] != "/"


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
