"""The header of a file that holds exactly one 2-D image: a single-IFD TIFF, a PNG, a Cellomics ``.C01``.

An HCS plate is tens of thousands of such files, one per site and channel. :func:`read_image_file` reads
one of them with one ``open`` and one 8 KiB read in the common case (a second read only when the IFD or
the tag values lie further in, as libtiff writes them after the pixel data), unpacks the TIFF IFD's
entries with one ``struct`` call, and returns the geometry and the byte ranges of its strips or tiles.
The files of a plate share their tags, types and layout whatever their descriptions or offsets, so what
those decide (where each entry is, shape, dtype, codecs, segment layout) is computed once and kept, keyed
by the entries it was computed from; each file's own values (every out-of-line value's extent, the
description, the resolution, the segments) are still read and checked.

For a TIFF the result equals what :func:`~bioimage_pipeline.formats.tiff.scan_tiff` reports for the same
file (shape, axes, dtype, chunk shape, codecs, pixel size, segment offsets and byte counts). Anything
this reader cannot vouch for is not guessed: it returns None and the caller uses the full scanner. That
covers a second IFD, SubIFDs, an OME-XML that names other files, an ImageJ hyperstack, a tifffile
description whose shape is not the page's, unusual bit depths, JPEG tables, old-style JPEG, and the
private tags through which tifffile recognises other formats (LSM, MetaMorph STK, FluoView, NIH,
Micro-Manager, SIS, NDPI, ...).
"""

from __future__ import annotations

import json
import operator
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal, cast

import numpy as np

from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.omexml import OmeFileRefs, parse_ome_xml
from bioimage_pipeline.formats.tiff import (
    _RESOLUTION_UNIT_UM,
    _check_extents,
    _Files,
    _imagej_sizes,
    _ome_sizes,
    _resolution_sizes,
)

#: Bytes read from the start of a file, and the size of any further read.
HEAD_BYTES = 8192


@dataclass(frozen=True, kw_only=True)
class ImageFile:
    """The geometry and storage layout of a file that holds exactly one 2-D image (one TIFF IFD, a PNG, a
    Cellomics .C01)."""

    #: As tifffile's ``page.shape``: (y, x), (y, x, samples) for contiguous samples, (samples, y, x) planar.
    shape: tuple[int, ...]
    axes: str  # "yx", "yxs" or "syx"
    dtype: str  # numpy dtype name
    #: One strip or tile, in the axes of ``shape``.
    chunk_shape: tuple[int, ...]
    #: Segments per axis.
    grid: tuple[int, ...]
    #: int64 byte offset of every segment, C order over ``grid``.
    offsets: np.ndarray
    #: int64 byte count of every segment; 0 for a segment never written (sparse TIFF).
    lengths: np.ndarray
    codecs: list[str]
    #: (y, x) physical pixel size in ``unit``, where the file says.
    scale: tuple[float, float] | None
    unit: str | None
    #: ImageDescription of the IFD, undecoded (trailing NULs removed, as the TIFF scanner reads it).
    description: bytes | None
    variant: Literal["tiff", "png", "c01"]


# --- reading -----------------------------------------------------------------------------------------


class _Source:
    """A file read in a few windows: its first bytes and, on demand, one window around any later offset."""

    __slots__ = ("fd", "head", "path", "size", "windows")

    def __init__(self, path: str | Path, fd: int, size: int, head: bytes) -> None:
        self.path, self.fd, self.size, self.head = path, fd, size, head
        self.windows: list[tuple[int, bytes]] = []

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def locate(self, offset: int, n: int) -> tuple[bytes, int]:
        """A buffer holding bytes ``offset:offset + n`` of the file and where they start in it.

        The caller has checked that the range lies inside the file. A range outside what was read so far
        costs one read of the range plus up to 4 KiB either side, so the tag values a writer puts next to
        the IFD come with it.
        """
        end = offset + n
        if end <= len(self.head):
            return self.head, offset
        for start, data in self.windows:
            if start <= offset and end <= start + len(data):
                return data, offset - start
        start = max(offset - 4096, 0)
        if offset >= len(self.head):
            start = max(start, len(self.head))
        stop = min(self.size, end + 4096)
        try:
            if self.fd < 0:
                self.fd = os.open(self.path, _O_RDONLY)
            data = os.pread(self.fd, stop - start, start)
        except OSError as exc:
            raise StoreError(self.path, f"cannot read ({exc.strerror or exc})") from exc
        if len(data) < end - start:
            raise StoreError(self.path, f"truncated file: cannot read bytes {offset}–{end} of {self.size}")
        self.windows.append((start, data))
        return data, offset - start


_O_RDONLY = os.O_RDONLY | getattr(os, "O_BINARY", 0)
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def read_image_file(path: str | Path, prefix: bytes | None = None) -> ImageFile | None:
    """The one image of a single-image TIFF, PNG or Cellomics .C01 file, from its header alone.

    None when the file is not a simple single-image file this reader handles (a second IFD, SubIFDs,
    OME-XML naming other files, an unusual tag such as JPEG tables, an ImageJ hyperstack, a bit depth
    other than 8/16/32/64, ...): the caller then uses the full TIFF scanner. Raises
    :class:`~bioimage_pipeline.errors.StoreError` for a file that is truncated (segments, IFD or tag
    values past its end) or is not an image at all. ``prefix`` is bytes the caller already read from the
    start of the file (any length; more are read when needed).
    """
    fd = -1
    try:
        if prefix is None:
            fd = os.open(path, _O_RDONLY)
            size = os.fstat(fd).st_size
            head = os.pread(fd, HEAD_BYTES, 0)
        else:
            size = os.stat(path).st_size
            head = bytes(prefix[:size])
            if len(head) < min(HEAD_BYTES, size):
                fd = os.open(path, _O_RDONLY)
                head = os.pread(fd, HEAD_BYTES, 0)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        raise StoreError(path, f"cannot read ({exc.strerror or exc})") from exc
    src = _Source(path, fd, size, head)
    try:
        if head[:4] in _TIFF_MAGIC:
            return _read_tiff(src)
        if head[:2] in (b"II", b"MM") and len(head) >= 4:
            return None  # a TIFF variant (ORF, RW2, ...) only tifffile knows
        if head[:8] == _PNG_SIGNATURE:
            return _read_png(src)
        if len(head) > 6 and head[4] == 0x78 and ((head[4] << 8) | head[5]) % 31 == 0:
            return _read_c01(src)
        if size == 0:
            raise StoreError(path, "not an image: the file is empty")
        raise StoreError(path, "not an image: neither a TIFF, a PNG nor a Cellomics C01 file")
    finally:
        src.close()


# --- TIFF ---------------------------------------------------------------------------------------------

#: Bytes per value of each TIFF data type, by type code (0: not a type tifffile reads).
_TYPE_SIZE = (0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4, 0, 0, 8, 8, 8)
#: struct codes of the numeric types (a rational is two of them per value) and of the integer ones.
_TYPE_FMT = {
    1: "B", 3: "H", 4: "I", 5: "I", 6: "b", 8: "h", 9: "i", 10: "i", 11: "f", 12: "d", 13: "I",
    16: "Q", 17: "q", 18: "Q",
}  # fmt: skip
_TYPE_MULT = {5: 2, 10: 2}
_INT_FMT = {1: "B", 3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}

#: Tags whose value tifffile always reads through the value offset (``TIFF.TAG_READERS``), so that an
#: offset past the end of the file makes the full scan fail even when the value would fit inline.
_OFFSET_TAGS = frozenset(
    (301, 320, 33471, 33560, 33628, 33629, 33630, 33631, 33723, 33923, 34118, 34361, 34362, 34363, 34386,
     34412, 34665, 34680, 34682, 34853, 37706, 37724, 40100, 40965, 43314, 50288, 50296, 50839, 51123, 65426,
     65432, 65439, 65459)
)  # fmt: skip

#: Tags this reader leaves to the full scanner: other IFDs (SubIFDs), JPEG tables and old-style JPEG,
#: volumetric SGI images, and the private tags by which tifffile recognises a format with series of its
#: own (MetaMorph STK, Olympus SIS, Zeiss LSM, FluoView, MD Gel, NIH Image, Micro-Manager, Argos AVS,
#: EER, Hamamatsu NDPI).
_DEFER_TAGS = frozenset(
    (330, 347, 513, 514, 32997, 32998, 33445, 33471, 33560, 33628, 33629, 33630, 33631, 34361, 34362, 34363,
     34412, 37701, 43314, 51123, 65000, 65001, 65420)
)  # fmt: skip

#: Software tag prefixes of formats tifffile reads as series of their own (ScanImage, PerkinElmer QPI,
#: Philips, Ventana, Indica Labs).
_DEFER_SOFTWARE = (b"SI.", b"PerkinElmer-QPI", b"Philips DP", b"Ventana", b"ScanOutputManager", b"IndicaLabs")

#: (SampleFormat, BitsPerSample) → NumPy dtype name, as tifffile maps them (``TIFF.SAMPLE_DTYPES``),
#: limited to whole-byte depths.
_DTYPES = {
    (1, 8): "uint8", (1, 16): "uint16", (1, 32): "uint32", (1, 64): "uint64",
    (2, 8): "int8", (2, 16): "int16", (2, 32): "int32", (2, 64): "int64",
    (3, 16): "float16", (3, 32): "float32", (3, 64): "float64",
    (4, 8): "uint8", (4, 16): "uint16", (4, 32): "uint32", (4, 64): "uint64",
    (6, 64): "complex64", (6, 128): "complex128",
}  # fmt: skip

#: Compression codes → the names the TIFF scanner reports (tifffile's ``COMPRESSION`` names, lower case).
#: Codes not listed are looked up in tifffile itself.
_COMPRESSION = {
    1: "none", 5: "lzw", 7: "jpeg", 8: "adobe_deflate", 32773: "packbits", 32946: "deflate",
    33003: "aperio_jp2000_ycbc", 33004: "jpeg_2000_lossy", 33005: "aperio_jp2000_rgb", 33007: "alt_jpeg",
    34712: "jpeg2000", 34887: "lerc", 34892: "jpeg_lossy", 34925: "lzma", 34926: "zstd_deprecated",
    34927: "webp_deprecated", 34933: "png", 34934: "jpegxr", 48124: "jetraw", 50000: "zstd", 50001: "webp",
    50002: "jpegxl",
}  # fmt: skip
#: Predictor codes → names (tifffile's ``PREDICTOR``).
_PREDICTOR = {
    2: "horizontal", 3: "floatingpoint", 34892: "horizontalx2", 34893: "horizontalx4", 34894: "floatingpointx2",
    34895: "floatingpointx4",
}  # fmt: skip

#: Segment arrays up to this long are checked as tuples; longer ones with NumPy.
_SMALL = 256

_ENTRY_STRUCTS: dict[tuple[str, bool, int], struct.Struct] = {}


def _entry_struct(bo: str, big: bool, n: int) -> struct.Struct:
    """The IFD's n entries (tag, type, count, value or offset) and the next-IFD offset, in one unpack."""
    key = (bo, big, n)
    found = _ENTRY_STRUCTS.get(key)
    if found is None:
        found = struct.Struct(bo + ("HHQQ" if big else "HHII") * n + ("Q" if big else "I"))
        if n <= 256:  # kept for the tag counts real files have
            _ENTRY_STRUCTS[key] = found
    return found


def _compression_name(code: int) -> str | None:
    name = _COMPRESSION.get(code)
    if name is None:
        import tifffile

        try:
            name = tifffile.COMPRESSION(code).name.lower()
        except ValueError:
            return None  # the full scanner reports the unknown compression
    return name


def _predictor_name(code: int) -> str:
    name = _PREDICTOR.get(code)
    if name is None:
        import tifffile

        try:
            name = tifffile.PREDICTOR(code).name.lower()
        except ValueError:
            return f"predictor-{code}"
    return f"predictor-{name}"


class _Ifd:
    """One IFD's entries as a flat tuple (tag, type, count, value, tag, ...) and a tag → entry index.

    Values are read when asked for: an inline integer straight from the entry's value field, anything
    else with one ``struct`` unpack from the buffer that holds it.
    """

    __slots__ = ("at", "big", "bo", "buf", "flat", "index", "inline", "le", "src")

    def __init__(
        self, src: _Source, bo: str, big: bool, flat: tuple[int, ...], buf: bytes, at: int, index: dict[int, int]
    ) -> None:
        self.src, self.bo, self.big, self.flat, self.buf, self.at, self.index = src, bo, big, flat, buf, at, index
        self.le = bo == "<"
        self.inline = 8 if big else 4

    def value_at(self, k: int) -> tuple[bytes, int]:
        """The buffer holding entry k's value and where it starts in it."""
        flat = self.flat
        typ, count = flat[4 * k + 1], flat[4 * k + 2]
        nbytes = count * _TYPE_SIZE[typ]
        if nbytes <= self.inline:
            return self.buf, self.at + k * (20 if self.big else 12) + (12 if self.big else 8)
        return self.src.locate(flat[4 * k + 3], nbytes)

    def number(self, tag: int, default: int) -> int | None:
        """The first value of an integer tag (``default`` when absent); None when not an integer."""
        k = self.index.get(tag)
        if k is None:
            return default
        flat, big = self.flat, self.big
        typ, count, value = flat[4 * k + 1], flat[4 * k + 2], flat[4 * k + 3]
        if count < 1:
            return None
        if typ == 3:
            if count <= (4 if big else 2):
                return value & 0xFFFF if self.le else value >> (48 if big else 16)
        elif typ == 4 or typ == 13:
            if count <= (2 if big else 1):
                return value & 0xFFFFFFFF if self.le else (value >> 32 if big else value)
        elif typ == 16 or typ == 18:
            if big and count == 1:
                return value
        elif typ == 1:
            if count <= (8 if big else 4):
                return value & 0xFF if self.le else value >> (56 if big else 24)
        else:
            return None
        buf, at = self.src.locate(value, _TYPE_SIZE[typ])  # the first value of an array stored out of line
        return int(struct.unpack_from(self.bo + _INT_FMT[typ], buf, at)[0])

    def ints(self, tag: int) -> tuple[int, ...] | None:
        """All values of an integer tag; None when absent or not integers."""
        k = self.index.get(tag)
        if k is None:
            return None
        fmt = _INT_FMT.get(self.flat[4 * k + 1])
        if fmt is None:
            return None
        buf, at = self.value_at(k)
        return struct.unpack_from(f"{self.bo}{self.flat[4 * k + 2]}{fmt}", buf, at)

    def array(self, tag: int) -> np.ndarray | None:
        """All values of an integer tag as int64 (a BigTIFF value above 2**63 wraps negative)."""
        k = self.index.get(tag)
        if k is None:
            return None
        fmt = _INT_FMT.get(self.flat[4 * k + 1])
        if fmt is None:
            return None
        buf, at = self.value_at(k)
        return np.frombuffer(buf, self.bo + fmt, self.flat[4 * k + 2], at).astype(np.int64)

    def numbers(self, tag: int) -> tuple[Any, ...] | None:
        """A numeric tag's values as tifffile gives them for a tuple tag (a rational as numerator, denominator)."""
        k = self.index.get(tag)
        if k is None:
            return None
        typ = self.flat[4 * k + 1]
        fmt = _TYPE_FMT.get(typ)
        if fmt is None:
            return None
        buf, at = self.value_at(k)
        return struct.unpack_from(f"{self.bo}{self.flat[4 * k + 2] * _TYPE_MULT.get(typ, 1)}{fmt}", buf, at)

    def same(self, tag: int, default: int) -> int | None:
        """A per-sample tag (BitsPerSample, SampleFormat) when every sample has the same value, else None."""
        k = self.index.get(tag)
        if k is None or self.flat[4 * k + 2] == 1:
            return self.number(tag, default)
        values = self.ints(tag)
        if not values or any(v != values[0] for v in values):
            return None
        return values[0]

    def raw(self, tag: int) -> bytes | None:
        k = self.index.get(tag)
        if k is None:
            return None
        buf, at = self.value_at(k)
        return buf[at : at + self.flat[4 * k + 2] * _TYPE_SIZE[self.flat[4 * k + 1]]]


class _Tag(SimpleNamespace):
    """What tiff.py's helpers read from a tifffile tag: its ``value``."""

    value: Any


@dataclass(frozen=True, slots=True)
class _Layout:
    """What an IFD's entries decide, file contents aside: geometry, dtype, codecs, the segment tags."""

    shape: tuple[int, ...]
    axes: str
    dtype: str
    chunk_shape: tuple[int, ...]
    grid: tuple[int, ...]
    n_seg: int
    codecs: list[str]
    offsets_tag: int
    lengths_tag: int
    #: How to unpack the offsets and the byte counts (None: a single one, or too many for a tuple).
    offsets_struct: struct.Struct | None = None
    lengths_struct: struct.Struct | None = None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an IFD's tags and their types decide: where each entry is, each value's size per count, and
    which entry fields the layout depends on.

    Files written by one instrument share their tags and types (and usually their layout) whatever their
    descriptions or offsets, so both are computed once: plans by (byte order, TIFF flavour, tags, types),
    layouts per plan by the counts and inline values of the layout's tags. Every file's own values are
    still checked against its size and read.
    """

    #: tag → entry position; None: files like this are left to the full scanner.
    index: dict[int, int] | None
    type_sizes: tuple[int, ...] = ()
    #: Entries tifffile reads through their value offset whatever their size.
    offset_entries: tuple[int, ...] = ()
    #: The flat-tuple fields (counts, inline values) of the tags the layout is computed from.
    layout_key: Callable[[tuple[int, ...]], Any] = operator.itemgetter(0, 0)
    #: The entries of those tags: a layout is kept only when all their values lie in the entries (their
    #: counts are part of the key, so that depends on the key alone).
    layout_entries: tuple[int, ...] = ()
    layouts: dict[Any, _Layout | None] = field(default_factory=dict)


#: (flavour, tags, types) → plan. Bounded: cleared when full (as is each plan's layouts).
_PLANS: dict[tuple[Any, ...], _Plan] = {}
_CACHE_MAX = 1024
_UNSEEN = object()
#: Tags a layout is computed from, and the tags listing the segments (only their counts matter to it).
_LAYOUT_TAGS = (256, 257, 258, 259, 262, 277, 278, 284, 317, 322, 323, 339)
_SEGMENT_TAGS = (273, 279, 324, 325)


def _read_tiff(src: _Source) -> ImageFile | None:
    path, size, head = src.path, src.size, src.head
    bo = "<" if head[0] == 0x49 else ">"
    big = head[2] == 43 or head[3] == 43
    if big:
        if len(head) < 16:
            raise StoreError(path, f"truncated TIFF: the file ends inside the BigTIFF header ({size} bytes)")
        if struct.unpack_from(bo + "HH", head, 4) != (8, 0):
            return None
        ifd = struct.unpack_from(bo + "Q", head, 8)[0]
        count_fmt, count_size, entry_size, inline = "Q", 8, 20, 8
    else:
        if len(head) < 8:
            raise StoreError(path, f"truncated TIFF: the file ends inside the TIFF header ({size} bytes)")
        ifd = struct.unpack_from(bo + "I", head, 4)[0]
        count_fmt, count_size, entry_size, inline = "H", 2, 12, 4
    if ifd < 8 or ifd + count_size > size:
        raise StoreError(path, f"corrupt or truncated TIFF: the first IFD is at byte {ifd} of a {size}-byte file")
    buf, at = (head, ifd) if ifd + count_size <= len(head) else src.locate(ifd, count_size)
    n = struct.unpack_from(bo + count_fmt, buf, at)[0]
    if n == 0 or n > 4096:
        return None  # no tags, or a count tifffile rejects: the full scanner says what is wrong
    table_end = ifd + count_size + n * entry_size + inline
    if table_end > size:
        raise StoreError(
            path, f"truncated TIFF: the IFD at byte {ifd} ({n} entries) ends past the end of the file ({size} bytes)"
        )
    if table_end > len(buf) - at + ifd:  # the entries run past the window that holds the count
        buf, at = src.locate(ifd + count_size, table_end - ifd - count_size)
    else:
        at += count_size
    flat = _entry_struct(bo, big, n).unpack_from(buf, at)
    if flat[-1]:
        return None  # a next IFD: a multi-page file

    plan_key = (2 * (bo == "<") + big, flat[0:-1:4], flat[1:-1:4])
    plan = _PLANS.get(plan_key)
    if plan is None:
        plan = _plan(flat, n)
        if len(_PLANS) >= _CACHE_MAX:
            _PLANS.clear()
        _PLANS[plan_key] = plan
    if plan.index is None:
        return None
    _check_values(flat, plan, inline, path, size)
    entries = _Ifd(src, bo, big, flat, buf, at, plan.index)
    layout_key = plan.layout_key(flat)
    found = plan.layouts.get(layout_key, _UNSEEN)
    if found is _UNSEEN:
        layout = _image_layout(entries)
        types = plan.type_sizes
        if all(flat[4 * k + 2] * types[k] <= inline for k in plan.layout_entries):
            if len(plan.layouts) >= _CACHE_MAX:
                plan.layouts.clear()
            plan.layouts[layout_key] = layout
    else:
        layout = cast(_Layout | None, found)
    return None if layout is None else _finish(layout, entries, path, size)


def _plan(flat: tuple[int, ...], n: int) -> _Plan:
    """The plan of an IFD with these tags and types (None index: left to the full scanner)."""
    tags, types = flat[0:-1:4], flat[1:-1:4]
    index = dict(zip(tags, range(n), strict=True))
    if len(index) != n:
        return _Plan(None)  # a tag twice (a second ImageDescription): tifffile's reading of it decides
    if not _DEFER_TAGS.isdisjoint(index):
        return _Plan(None)
    try:
        type_sizes = tuple(_TYPE_SIZE[t] for t in types)
    except IndexError:
        return _Plan(None)  # a data type tifffile does not read
    if 0 in type_sizes:
        return _Plan(None)
    offset_entries = tuple(index[tag] for tag in _OFFSET_TAGS.intersection(index))
    layout_ks = [index[tag] for tag in _LAYOUT_TAGS if tag in index]
    fields = [f for k in layout_ks for f in (4 * k + 2, 4 * k + 3)]
    fields += [4 * index[tag] + 2 for tag in _SEGMENT_TAGS if tag in index]
    fields += [0, 0]  # so that itemgetter always returns a tuple
    return _Plan(index, type_sizes, offset_entries, operator.itemgetter(*fields), tuple(layout_ks))


def _check_values(flat: tuple[int, ...], plan: _Plan, inline: int, path: str | Path, size: int) -> None:
    """Every value stored out of line, and every value tifffile reads through its offset, inside the file
    (tifffile reports a tag value past the end as a corrupt file, and the TIFF scanner fails on it)."""
    nbytes = list(map(operator.mul, flat[2:-1:4], plan.type_sizes))
    starts = flat[3:-1:4]
    # The common case in two passes: every value field plus its size inside the file (an inline value
    # read as an offset only makes this stricter), and no out-of-line value starting in the header.
    if (
        not plan.offset_entries
        and max(map(operator.add, starts, nbytes)) <= size
        and min(compress(starts, map(inline.__lt__, nbytes)), default=8) >= 8
    ):
        return
    outside = list(map(inline.__lt__, nbytes))
    for k in plan.offset_entries:
        outside[k] = True
    if True not in outside:
        return
    out_starts = list(compress(starts, outside))
    if min(out_starts) >= 8 and max(map(operator.add, out_starts, compress(nbytes, outside))) <= size:
        return
    k = next(k for k, out in enumerate(outside) if out and (starts[k] < 8 or starts[k] + nbytes[k] > size))
    raise StoreError(
        path,
        f"corrupt or truncated TIFF: the value of tag {flat[4 * k]} ({nbytes[k]} bytes at byte {starts[k]}) "
        f"lies past the end of the file ({size} bytes)",
    )


def _image_layout(ifd: _Ifd) -> _Layout | None:
    """Shape, axes, dtype, chunk shape, grid, segment count, codecs and the tags listing the segments, as
    tifffile's TiffPage computes them (``shape``, ``chunks``, ``chunked``); None for what it special-cases."""
    index, number = ifd.index, ifd.number
    width, length = number(256, 0), number(257, 0)
    spp, planar = number(277, 1), number(284, 1)
    photometric, compression, predictor = number(262, 0), number(259, 1), number(317, 1)
    bits, sample_format = ifd.same(258, 1), ifd.same(339, 1)
    if (
        not width
        or not length
        or not spp
        or planar not in (1, 2)
        or photometric is None
        or compression is None
        or predictor is None
        or bits is None
        or sample_format is None
    ):
        return None
    dtype = _DTYPES.get((sample_format, bits))
    if dtype is None:
        return None  # 1-bit, 12-bit, 24-bit float, ...: tifffile unpacks those
    if compression == 6 or (photometric == 6 and compression not in (7, 34892, 33007)):
        return None  # old-style JPEG, subsampled YCbCr: tifffile patches tags for those
    if photometric == 2 and spp == 1:
        return None  # an RGB photometric with one sample: tifffile's shape and chunks disagree
    if 270 in index and ifd.flat[4 * index[270] + 1] != 2:
        return None  # a description that is not ASCII: tifffile ignores it, and so would its series logic
    codec = _compression_name(compression)
    if codec is None:
        return None
    codecs = [codec] if predictor <= 1 else [codec, _predictor_name(predictor)]

    separate = planar == 2 and spp > 1
    if 322 in index:
        tile_w, tile_l = number(322, 0), number(323, 0)
        if not tile_w or not tile_l or 324 not in index or 325 not in index:
            return None
        seg: tuple[int, int] = (tile_l, tile_w)
        seg_grid = (-(-length // tile_l), -(-width // tile_w))
        offsets_tag, lengths_tag = 324, 325
    else:
        if 324 in index or 273 not in index or 279 not in index:
            return None
        k = index.get(278)  # tifffile: no RowsPerStrip, or one per strip, is one strip for the whole image
        rows = length if k is None or ifd.flat[4 * k + 2] > 1 else number(278, length)
        if not rows:
            return None
        rows = min(rows, length)
        seg, seg_grid = (rows, width), (-(-length // rows), 1)
        offsets_tag, lengths_tag = 273, 279
    shape: tuple[int, ...]
    chunk_shape: tuple[int, ...]
    grid: tuple[int, ...]
    if spp == 1:
        shape, axes, chunk_shape, grid = (length, width), "yx", seg, seg_grid
        n_seg = seg_grid[0] * seg_grid[1]
    elif separate:
        shape, axes, chunk_shape, grid = (spp, length, width), "syx", (1, *seg), (spp, *seg_grid)
        n_seg = spp * seg_grid[0] * seg_grid[1]
    else:
        shape, axes, chunk_shape, grid = (length, width, spp), "yxs", (*seg, spp), (*seg_grid, 1)
        n_seg = seg_grid[0] * seg_grid[1]
    flat = ifd.flat
    if flat[4 * index[offsets_tag] + 2] != n_seg or flat[4 * index[lengths_tag] + 2] != n_seg:
        return None  # tifffile trims extra strips; the scanner reports missing ones
    structs: list[struct.Struct | None] = [None, None]
    if 1 < n_seg <= _SMALL:
        for j, tag in enumerate((offsets_tag, lengths_tag)):
            fmt = _INT_FMT.get(flat[4 * index[tag] + 1])
            if fmt is None:
                return None  # offsets or counts that are not integers
            structs[j] = struct.Struct(f"{ifd.bo}{n_seg}{fmt}")
    return _Layout(shape, axes, dtype, chunk_shape, grid, n_seg, codecs, offsets_tag, lengths_tag, *structs)


def _finish(layout: _Layout, ifd: _Ifd, path: str | Path, size: int) -> ImageFile | None:
    """What the values outside the entry table say: Software, ImageDescription (the series tifffile would
    build), pixel size, and the segments themselves."""
    index = ifd.index
    k = index.get(305)
    if k is not None:  # compared in place: the Software tag is copied only when it starts with white space
        buf, at = ifd.value_at(k)
        if buf.startswith(_DEFER_SOFTWARE, at) or (buf[at : at + 1].isspace() and _deferred_software(ifd)):
            return None
    description: bytes | None = None
    if 270 in index:
        raw = ifd.raw(270)
        description = raw.rstrip(b"\0") if raw is not None else None

    # the series tifffile would build: shaped (its own JSON), OME, ImageJ, else the page as it is
    shape, axes = layout.shape, layout.axes
    sizes: dict[str, tuple[float, str | None]] = {}
    imagej_meta: dict[str, Any] | None = None
    text = description.strip() if description else b""
    if not text:
        pass
    elif b'"mibi.' not in text and ((text[:1] == b"{" and b'"shape":' in text) or text[:6] == b"shape="):
        if not _shaped_matches(text, shape, axes):
            return None
    elif text[-10:].strip().endswith(b"OME>"):
        ome_sizes = _ome_single(text, path, shape)
        if ome_sizes is None:
            return None
        sizes = ome_sizes
    elif text[:7] in (b"ImageJ=", b"SCIFIO="):
        imagej_meta = _imagej_single(text)
        if imagej_meta is None:
            return None
    elif (
        text[:7] == b"Aperio "
        or text[:6] == b"state."
        or b"scanimage.SI" in text[-256:]
        or text.endswith(b"</scn>")
        or (700 in index and text in (b"Label Image", b"Label_Image", b"Probability_Image"))
    ):
        return None  # Aperio SVS, ScanImage, Leica SCN, Ventana BIF: tifffile's own series

    # physical pixel size, where the TIFF scanner looks: OME, ImageJ, then metric resolution tags
    if not sizes and imagej_meta is not None:
        page = SimpleNamespace(tags=_resolution_tags(ifd, with_unit=False))
        tif = SimpleNamespace(imagej_metadata=imagej_meta, pages=SimpleNamespace(first=page))
        sizes = _imagej_sizes(tif)  # type: ignore[arg-type]
    if not sizes and 296 in index:
        unit_code = ifd.number(296, 2)
        if unit_code is None:
            return None
        if unit_code in _RESOLUTION_UNIT_UM:  # else not a physical size: no need to read the resolutions
            sizes = _metric_sizes(ifd, unit_code)
    scale: tuple[float, float] | None = None
    unit: str | None = None
    if sizes:
        x, y = sizes.get("x"), sizes.get("y")
        if x is not None and y is not None and x[1] == y[1]:
            scale, unit = (y[0], x[0]), x[1]
        elif x is not None or y is not None:
            return None  # one axis calibrated, or two units: the scanner's per-axis lists say that

    offsets, lengths = _segments(ifd, layout, path, size)
    if offsets is None or lengths is None:
        return None
    return ImageFile(
        shape=shape,
        axes=axes,
        dtype=layout.dtype,
        chunk_shape=layout.chunk_shape,
        grid=layout.grid,
        offsets=offsets,
        lengths=lengths,
        codecs=list(layout.codecs),
        scale=scale,
        unit=unit,
        description=description,
        variant="tiff",
    )


#: (byte order, unit, X/YResolution types and bytes) → pixel sizes: one plate, one calibration.
_SIZES: dict[tuple[Any, ...], dict[str, tuple[float, str | None]]] = {}


def _metric_sizes(ifd: _Ifd, unit_code: int) -> dict[str, tuple[float, str | None]]:
    """Pixel sizes from X/YResolution in a metric ResolutionUnit, as the TIFF scanner computes them."""
    index, flat = ifd.index, ifd.flat
    kx, ky = index.get(282), index.get(283)
    key = (
        ifd.bo,
        unit_code,
        None if kx is None else flat[4 * kx + 1],
        ifd.raw(282),
        None if ky is None else flat[4 * ky + 1],
        ifd.raw(283),
    )
    sizes = _SIZES.get(key)
    if sizes is None:
        sizes = _resolution_sizes(SimpleNamespace(tags=_resolution_tags(ifd, with_unit=True)))
        if len(_SIZES) >= _CACHE_MAX:
            _SIZES.clear()
        _SIZES[key] = sizes
    return sizes


def _resolution_tags(ifd: _Ifd, *, with_unit: bool) -> dict[str, _Tag]:
    """X/YResolution (and ResolutionUnit) as the tifffile tags tiff.py's helpers read."""
    tags: dict[str, _Tag] = {}
    for tag, name in ((282, "XResolution"), (283, "YResolution")):
        value = ifd.numbers(tag)
        if value is not None:
            tags[name] = _Tag(value=value)
    if with_unit:
        tags["ResolutionUnit"] = _Tag(value=ifd.number(296, 2))
    return tags


def _segments(ifd: _Ifd, layout: _Layout, path: str | Path, size: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Offsets and byte counts as int64 arrays, every stored segment checked to lie inside the file."""
    offsets_tag, lengths_tag = layout.offsets_tag, layout.lengths_tag
    if layout.n_seg == 1:
        offset, length = ifd.number(offsets_tag, 0), ifd.number(lengths_tag, 0)
        if offset is None or length is None:
            return None, None
        if length > 0 and offset >= 8 and offset + length <= size:
            return np.array((offset,), np.int64), np.array((length,), np.int64)
    elif layout.offsets_struct is not None and layout.lengths_struct is not None:
        index = ifd.index
        buf, at = ifd.value_at(index[offsets_tag])
        offs = layout.offsets_struct.unpack_from(buf, at)
        buf, at = ifd.value_at(index[lengths_tag])
        lens = layout.lengths_struct.unpack_from(buf, at)
        if min(lens) > 0 and min(offs) >= 8 and max(map(operator.add, offs, lens)) <= size:
            return np.array(offs, np.int64), np.array(lens, np.int64)  # the common case: all stored, inside
    offsets, lengths = ifd.array(offsets_tag), ifd.array(lengths_tag)
    if offsets is None or lengths is None:
        return None, None
    if (lengths < 0).any():  # a BigTIFF count above 2**63
        raise StoreError(path, "corrupt TIFF: a tile or strip has a negative byte count")
    files = _Files(Path(path).parent, [Path(path).name], [Path(path)], {}, {}, {0: size})
    _check_extents(offsets, lengths, np.zeros(len(offsets), np.int64), files)
    return offsets, lengths


_SHAPED_2D = b'{"shape": [%d, %d]}'
_SHAPED_3D = b'{"shape": [%d, %d, %d]}'


def _deferred_software(ifd: _Ifd) -> bool:
    software = ifd.raw(305)
    return software is not None and software.rstrip(b"\0").strip().startswith(_DEFER_SOFTWARE)


def _shaped_matches(text: bytes, shape: tuple[int, ...], axes: str) -> bool:
    """Whether tifffile's "shaped" series of this one page is the page itself (not a reshaped stack)."""
    if text == (_SHAPED_2D if len(shape) == 2 else _SHAPED_3D) % shape:
        return True  # what tifffile writes for an array of the page's shape
    try:
        if text[:6] == b"shape=":
            meta: Any = {"shape": tuple(int(i) for i in text[7:-1].split(b","))}
        else:
            meta = json.loads(text)
        declared = tuple(int(s) for s in meta["shape"])
    except (ValueError, TypeError, KeyError):
        return False
    if declared != shape:
        return False
    declared_axes = meta.get("axes") if isinstance(meta, dict) else None
    return declared_axes is None or (isinstance(declared_axes, str) and declared_axes.lower() == axes)


def _ome_single(text: bytes, path: str | Path, shape: tuple[int, ...]) -> dict[str, tuple[float, str | None]] | None:
    """Physical sizes from an OME-XML that describes this one plane and no other file; None otherwise."""
    if len(shape) != 2:
        return None  # samples: tifffile's OME series may name them channels
    try:
        meta = parse_ome_xml(text)
    except ValueError:
        return None
    refs = OmeFileRefs(
        uuid=meta.uuid,
        binary_only=meta.binary_only,
        files=tuple((td.uuid, td.file_name) for im in meta.images for td in im.tiff_data if td.file_name),
        has_images=bool(meta.images),
    )
    if refs.binary_only or refs.other_files(os.path.basename(path)) or len(meta.images) != 1:
        return None
    image = meta.images[0]
    planes = image.sizes.get("Z", 1) * image.sizes.get("C", 1) * image.sizes.get("T", 1)
    if planes != 1 or (image.sizes.get("Y"), image.sizes.get("X")) != shape:
        return None
    sizes = _ome_sizes(image)
    return sizes if sizes else {}


def _imagej_single(text: bytes) -> dict[str, Any] | None:
    """The ImageJ description of a single plane as tifffile parses it; None for a hyperstack or a stack."""
    from tifffile.tifffile import imagej_description_metadata

    try:
        meta = imagej_description_metadata(text.decode("utf-8", errors="replace"))
    except Exception:  # tifffile raises ValueError and more on a malformed description
        return None
    for key in ("images", "channels", "slices", "frames"):
        value = meta.get(key, 1)
        if not isinstance(value, int) or value != 1:
            return None
    return meta


# --- PNG ----------------------------------------------------------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
#: PNG colour type → samples per pixel (3 is a palette: one index per pixel).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _read_png(src: _Source) -> ImageFile | None:
    """A PNG as one segment: the whole file (offset 0, the file's size), decoded by any PNG reader.

    The IDAT chunks are not located: they need not be contiguous, and walking the chunk list of a large
    file costs reads this header-only pass avoids. ``pHYs`` is not read: PNG writers fill it with a screen
    resolution (100 dpi in the corpus), never a microscope calibration; plate indexes give pixel sizes.
    """
    path, head, size = src.path, src.head, src.size
    if len(head) < 33:
        raise StoreError(path, f"truncated PNG: the file ends inside the IHDR chunk ({size} bytes)")
    if head[12:16] != b"IHDR":
        raise StoreError(path, "corrupt PNG: the first chunk is not IHDR")
    width, height, depth, colour, method, _filter, interlace = struct.unpack_from(">IIBBBBB", head, 16)
    samples = _PNG_SAMPLES.get(colour)
    if samples is None or method != 0 or interlace not in (0, 1) or not width or not height:
        raise StoreError(path, f"corrupt PNG: colour type {colour}, compression method {method}, size {width}×{height}")
    if depth not in (8, 16) or (colour == 3 and depth != 8):
        return None  # 1, 2 or 4 bits per sample
    if size < 33 + len(_PNG_END):
        raise StoreError(path, f"truncated PNG: {size} bytes")
    buf, at = src.locate(size - len(_PNG_END), len(_PNG_END))
    if buf[at : at + len(_PNG_END)] != _PNG_END:
        raise StoreError(path, "truncated PNG: the file does not end with an IEND chunk")
    shape = (height, width) if samples == 1 else (height, width, samples)
    return ImageFile(
        shape=shape,
        axes="yx" if samples == 1 else "yxs",
        dtype="uint8" if depth == 8 else "uint16",
        chunk_shape=shape,
        grid=(1,) * len(shape),
        offsets=np.zeros(1, np.int64),
        lengths=np.full(1, size, np.int64),
        codecs=["png"],
        scale=None,
        unit=None,
        description=None,
        variant="png",
    )


# --- Cellomics C01 -----------------------------------------------------------------------------------


def _read_c01(src: _Source) -> ImageFile | None:
    """A Cellomics .C01: a 4-byte header, then a zlib stream holding a Windows DIB (BITMAPINFOHEADER, 12
    bytes of colour masks, the pixels). Only the first 64 bytes of the stream are inflated.

    One segment, the whole file (offset 0, the file's size), codecs ``["zlib"]``: a reader skips the 4-byte
    header, inflates the rest and finds the pixels 52 bytes in. Pixel data cut short is not detected here
    (that needs inflating all of it). XPelsPerMeter/YPelsPerMeter give the pixel size when set.
    """
    path, head = src.path, src.head
    try:
        dib = zlib.decompressobj().decompress(head[4:], 64)
    except zlib.error as exc:
        raise StoreError(path, f"not an image: neither a TIFF, a PNG nor a Cellomics C01 file ({exc})") from exc
    if len(dib) < 40:
        raise StoreError(path, f"truncated Cellomics C01: the image header ends after {len(dib)} bytes")
    header_size, width, height, planes, bits, compression, _image_size, ppm_x, ppm_y = struct.unpack_from(
        "<IiiHHIIii", dib
    )
    if header_size != 40 or width <= 0 or height == 0:
        raise StoreError(path, f"corrupt Cellomics C01: header of {header_size} bytes, {width}×{height} pixels")
    if planes != 1 or compression != 0 or bits not in (8, 16, 32):
        return None  # a stack of planes, compressed or palette pixels: not one plain image
    height = abs(height)  # negative: rows stored top-down
    scale = (1e6 / ppm_y, 1e6 / ppm_x) if ppm_x > 0 and ppm_y > 0 else None
    return ImageFile(
        shape=(height, width),
        axes="yx",
        dtype=f"uint{bits}",
        chunk_shape=(height, width),
        grid=(1, 1),
        offsets=np.zeros(1, np.int64),
        lengths=np.full(1, src.size, np.int64),
        codecs=["zlib"],
        scale=scale,
        unit="micrometer" if scale is not None else None,
        description=None,
        variant="c01",
    )
