"""OME-TIFF and plain TIFF: every series and pyramid level, with tiles or strips as chunks.

Only tags are read (tifffile parses the IFDs); offsets and byte counts of every tile or strip come from
the TIFF itself, so ``chunk_index`` locates each segment without decoding a pixel.

A multi-file OME-TIFF (files whose OME-XML ``TiffData/UUID`` elements name each other, optionally with a
``<name>.companion.ome`` holding the metadata) is one store. Its master is the companion when there is
one, else the first file in sorted order that carries the full OME-XML; :func:`tiff_store_master` and
:func:`tiff_store_members` tell discovery which file that is and which files belong to it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from bioimage_pipeline.chunks import ExplicitChunks
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.filenames import parse_file_name
from bioimage_pipeline.formats.omexml import OmeImage, OmeMetadata, ome_file_refs, parse_ome_xml, unit_name
from bioimage_pipeline.model import ArrayRecord, StoreScan

if TYPE_CHECKING:  # imported where used: scanning a Zarr or N5 store need not pay for tifffile
    import tifffile

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
#: The metadata file of a multi-file OME-TIFF whose TIFFs are ``BinaryOnly``.
COMPANION_SUFFIX = ".companion.ome"

_AXIS_TYPES = {"x": "space", "y": "space", "z": "space", "t": "time", "c": "channel", "s": "channel"}

#: ResolutionUnit tag value → micrometres per unit. Inch (2) is left out on purpose: microscopy writers
#: that do not calibrate leave the 72-dpi default there, and it is not a physical pixel size.
_RESOLUTION_UNIT_UM = {3: 1e4, 4: 1e3, 5: 1.0}

#: What tifffile logs when the IFD chain or the series metadata point past the data that is there. The
#: scan cannot be trusted then, so these become the store's error rather than warnings.
_CORRUPTION_MESSAGES = (
    "invalid page offset",
    "invalid offset to page",
    "corrupted tag list",
    "corrupted file",
    "corrupted IFD",
    # A tag whose value lies past the end of the file: typically the OME-XML of a file cut short, without
    # which a multi-series OME-TIFF reads as one plain image.
    "invalid value offset",
)

_MAX_WARNINGS = 20


# --- multi-file membership (cheap: one IFD entry list and one tag value per file) ---------------------


@dataclass(frozen=True)
class _OmeHead:
    """What a file's OME-XML says about the dataset it belongs to."""

    full: bool = False  # carries OME-XML describing images (not only BinaryOnly)
    binary_only: str | None = None  # BinaryOnly@MetadataFile
    others: tuple[str, ...] = ()  # other files of the dataset, as named in the XML


_PLAIN = _OmeHead()
_HEAD_CACHE: dict[str, tuple[int, int, _OmeHead]] = {}
_HEAD_CACHE_MAX = 65_536


def is_companion(path: Path | str) -> bool:
    """Whether ``path`` is named like the metadata file of a multi-file OME-TIFF."""
    return os.fspath(path).lower().endswith(COMPANION_SUFFIX)


def _norm(path: Path) -> Path:
    return Path(os.path.normpath(path))


def _first_description(path: Path) -> bytes | None:
    """The ImageDescription of the first IFD, read from the tag alone; None when absent or unreadable."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(16)
            order = {b"II": "<", b"MM": ">"}.get(header[:2])
            if order is None or len(header) < 8:
                return None
            version = struct.unpack(order + "H", header[2:4])[0]
            if version == 42:  # classic TIFF: 2-byte entry count, 12-byte entries, 4-byte values
                ifd = struct.unpack(order + "I", header[4:8])[0]
                count_fmt, entry_size, value_fmt, inline = "H", 12, "I", 4
            elif version == 43 and len(header) == 16:  # BigTIFF: 8-byte count, 20-byte entries, 8-byte values
                ifd = struct.unpack(order + "Q", header[8:16])[0]
                count_fmt, entry_size, value_fmt, inline = "Q", 20, "Q", 8
            else:
                return None
            fh.seek(ifd)
            raw = fh.read(struct.calcsize(count_fmt))
            if len(raw) != struct.calcsize(count_fmt):
                return None
            count = struct.unpack(order + count_fmt, raw)[0]
            if count > 4096:
                return None
            entries = fh.read(count * entry_size)
            for i in range(len(entries) // entry_size):
                base = i * entry_size
                tag, kind = struct.unpack_from(order + "HH", entries, base)
                if tag != 270:
                    continue
                if kind not in (1, 2, 7):  # BYTE, ASCII, UNDEFINED
                    return None
                n = struct.unpack_from(order + value_fmt, entries, base + 4)[0]
                if n > os.fstat(fh.fileno()).st_size:  # a corrupt count must not allocate gigabytes
                    return None
                start = base + 4 + inline
                if n <= inline:
                    data = entries[start : start + n]
                else:
                    fh.seek(struct.unpack_from(order + value_fmt, entries, start)[0])
                    data = fh.read(n)
                return data.rstrip(b"\0")
    except (OSError, struct.error, OverflowError, ValueError):
        return None
    return None


def _read_head(path: Path) -> _OmeHead:
    text: bytes | None
    if is_companion(path):
        try:
            text = path.read_bytes()
        except OSError:
            return _PLAIN
    else:
        text = _first_description(path)
        if not text or not text.rstrip().endswith(b"OME>"):
            return _PLAIN
    try:
        refs = ome_file_refs(text)
    except ValueError:
        return _PLAIN
    return _OmeHead(refs.has_images, refs.binary_only, tuple(refs.other_files(path.name)))


def _head(path: Path) -> _OmeHead:
    """The file's OME membership, cached until the file's size or modification time changes."""
    key = os.fspath(path)
    try:
        st = os.stat(key)
    except OSError:
        return _PLAIN
    cached = _HEAD_CACHE.get(key)
    if cached is not None and cached[0] == st.st_size and cached[1] == st.st_mtime_ns:
        return cached[2]
    head = _read_head(path)
    if len(_HEAD_CACHE) >= _HEAD_CACHE_MAX:
        _HEAD_CACHE.clear()
    _HEAD_CACHE[key] = (st.st_size, st.st_mtime_ns, head)
    return head


def _sorted_unique(paths: Sequence[Path]) -> list[Path]:
    return sorted({str(p): p for p in paths}.values(), key=str)


def tiff_store_members(path: Path) -> list[Path]:
    """Every file of the multi-file OME-TIFF that ``path`` belongs to (``[path]`` for a single TIFF).

    Read from the file's own OME-XML (or its companion's), sorted. Files the XML names but that do not
    exist (yet) are included, so a fingerprint over the members notices when they arrive.
    """
    head = _head(path)
    if not is_companion(path) and not head.binary_only and not head.others:
        return [path if isinstance(path, Path) else Path(path)]  # a single TIFF, the common case: no path arithmetic
    path = _norm(Path(path))
    if is_companion(path):
        return _sorted_unique([path, *(_norm(path.parent / n) for n in head.others)])
    if head.binary_only:
        meta = _norm(path.parent / head.binary_only)
        if meta != path and meta.is_file() and (is_companion(meta) or _head(meta).full):
            members = _sorted_unique([meta, *(_norm(meta.parent / n) for n in _head(meta).others)])
            if path in members:
                return members
        return [path]
    return _sorted_unique([path, *(_norm(path.parent / n) for n in head.others)])


def _full_master(members: list[Path]) -> Path | None:
    return next((m for m in members if is_companion(m) or _head(m).full), None)


def tiff_store_master(path: Path) -> Path:
    """The file that stands for the whole multi-file OME-TIFF ``path`` belongs to (``path`` itself if single).

    The companion when there is one, else the first member in sorted order that carries the full OME-XML.
    A file is only handed to another master that names it back, so no TIFF is left without a store.
    """
    if is_companion(path):
        return _norm(Path(path))
    head = _head(path)
    if not head.binary_only and not head.others:
        return path if isinstance(path, Path) else Path(path)
    path = _norm(Path(path))
    members = tiff_store_members(path)
    if len(members) == 1:
        return path
    if head.binary_only:
        meta = _norm(path.parent / head.binary_only)
        return meta if is_companion(meta) else (_full_master(members) or path)
    candidate = _full_master(members) or path
    if candidate == path:
        return path
    theirs = tiff_store_members(candidate)
    if path in theirs and _full_master(theirs) == candidate:
        return candidate
    return path


# --- tifffile's log, captured per scan --------------------------------------------------------------

_LOG_LOCK = threading.Lock()
_LOG_ACTIVE = 0
_LOG_PROPAGATE = True


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append((record.levelno, _clean_log(record.getMessage())))


def _clean_log(message: str) -> str:
    message = re.sub(r"<tifffile\.TiffFile '([^']*)'>\s*", r"\1: ", message)
    return " ".join(re.sub(r"<tifffile\.[^>]*>\s*", "", message).split())


@contextmanager
def _tifffile_log() -> Iterator[_Capture]:
    """tifffile's warnings for this thread's scan, kept out of the root logger: they become scan warnings."""
    global _LOG_ACTIVE, _LOG_PROPAGATE
    logger = logging.getLogger("tifffile")
    capture = _Capture()
    with _LOG_LOCK:
        if _LOG_ACTIVE == 0:
            _LOG_PROPAGATE = logger.propagate
            logger.propagate = False
        _LOG_ACTIVE += 1
    logger.addHandler(capture)
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
        with _LOG_LOCK:
            _LOG_ACTIVE -= 1
            if _LOG_ACTIVE == 0:
                logger.propagate = _LOG_PROPAGATE


# --- physical sizes ---------------------------------------------------------------------------------


def _downsampling(base: int, size: int) -> float:
    """The factor a level was reduced by: the power of two (else integer) whose floor or ceiling division
    of the base size gives the level's size, as pyramid writers round odd sizes either way."""
    if base <= 0 or size <= 0 or base == size:
        return 1.0
    ratio = base / size

    def fits(k: int) -> bool:
        return k >= 1 and (base // k == size or -(-base // k) == size)

    exp = math.log2(ratio)
    for k in sorted({2 ** math.floor(exp), 2 ** math.ceil(exp)}, key=lambda k: abs(k - ratio)):
        if fits(k):
            return float(k)
    for k in sorted({math.floor(ratio), math.ceil(ratio)}, key=lambda k: abs(k - ratio)):
        if fits(k):
            return float(k)
    return ratio


def _pixel_size(tag: Any) -> float | None:
    """Size of one pixel in the tag's unit, from an X/YResolution rational (pixels per unit)."""
    if tag is None:
        return None
    value = tag.value
    try:
        num, den = (value[0], value[1]) if isinstance(value, tuple | list) else (float(value), 1)
        return float(den) / float(num) if num and den and float(num) > 0 and float(den) > 0 else None
    except (TypeError, ValueError, IndexError):
        return None


def _ome_sizes(image: OmeImage | None) -> dict[str, tuple[float, str | None]]:
    if image is None:
        return {}
    return {k.lower(): (v, image.physical_units.get(k)) for k, v in image.physical_sizes.items()}


def _imagej_unit(value: Any) -> str | None:
    if not isinstance(value, str) or value.strip().lower() in ("", "pixel", "pixels"):
        return None
    return unit_name(value)


def _imagej_sizes(tif: tifffile.TiffFile) -> dict[str, tuple[float, str | None]]:
    """Pixel sizes of an ImageJ file: X/YResolution in the description's ``unit``, z from ``spacing``."""
    meta = tif.imagej_metadata or {}
    unit = _imagej_unit(meta.get("unit"))
    if unit is None:
        return {}
    page = tif.pages.first
    sizes: dict[str, tuple[float, str | None]] = {}
    x, y = _pixel_size(page.tags.get("XResolution")), _pixel_size(page.tags.get("YResolution"))
    if x:
        sizes["x"] = (x, unit)
    if y:
        sizes["y"] = (y, _imagej_unit(meta.get("yunit")) or unit)
    try:
        spacing = float(meta.get("spacing", 0) or 0)
    except (TypeError, ValueError):
        spacing = 0.0
    if spacing > 0:
        sizes["z"] = (spacing, _imagej_unit(meta.get("zunit")) or unit)
    return sizes


def _resolution_sizes(page: Any) -> dict[str, tuple[float, str | None]]:
    """Pixel sizes from X/YResolution when ResolutionUnit is metric (never from the inch default)."""
    unit_tag = page.tags.get("ResolutionUnit")
    factor = _RESOLUTION_UNIT_UM.get(int(unit_tag.value)) if unit_tag is not None else None
    if factor is None:
        return {}
    sizes: dict[str, tuple[float, str | None]] = {}
    for axis, name in (("x", "XResolution"), ("y", "YResolution")):
        value = _pixel_size(page.tags.get(name))
        if value:
            sizes[axis] = (value * factor, "micrometer")
    return sizes


def _scale(
    sizes: dict[str, tuple[float, str | None]], axes: list[str], shape: Sequence[int], base_shape: Sequence[int]
) -> tuple[list[float] | None, list[str | None] | None]:
    if not any(a in sizes for a in axes):
        return None, None
    scale: list[float] = []
    units: list[str | None] = []
    for name, n, base in zip(axes, shape, base_shape, strict=True):
        if name in sizes:
            value, unit = sizes[name]
            scale.append(value * _downsampling(int(base), int(n)))
            units.append(unit)
        else:
            scale.append(1.0)
            units.append(None)
    return scale, units


# --- pages, tiles and strips ------------------------------------------------------------------------


def _compression(page: Any, path: Path) -> tifffile.COMPRESSION:
    import tifffile

    try:
        return tifffile.COMPRESSION(int(page.compression))
    except ValueError as exc:
        raise StoreError(path, f"unknown TIFF compression {int(page.compression)}") from exc


def _codecs(keyframe: Any, path: Path) -> list[str]:
    import tifffile

    codecs = [_compression(keyframe, path).name.lower()]
    predictor = int(getattr(keyframe, "predictor", 1) or 1)
    if predictor > 1:
        try:
            codecs.append(f"predictor-{tifffile.PREDICTOR(predictor).name.lower()}")
        except ValueError:
            codecs.append(f"predictor-{predictor}")
    return codecs


def _page_layout(shape: tuple[int, ...], keyframe: Any) -> tuple[tuple[int, ...], tuple[int, ...], list[int]] | None:
    """(leading page-grid shape, per-page segment grid, segment shape) or None when the pages do not fit.

    tifffile reports a planar-separate page's segment shape without the sample axis, and a squeezed
    series can lack a page's length-1 axes: both are aligned here so the chunk grid has the array's rank.
    """
    page_shape = [int(s) for s in keyframe.shape]
    grid = [int(c) for c in keyframe.chunked]
    seg = [int(c) for c in keyframe.chunks]
    if len(grid) != len(page_shape):
        return None
    seg = [1] * (len(grid) - len(seg)) + seg
    if len(seg) != len(grid):
        return None
    keep = list(range(len(page_shape)))
    for _ in range(2):
        tail = [page_shape[i] for i in keep]
        if len(tail) <= len(shape) and list(shape[len(shape) - len(tail) :]) == tail:
            lead = tuple(shape[: len(shape) - len(tail)])
            return lead, tuple(grid[i] for i in keep), [seg[i] for i in keep]
        keep = [i for i in keep if page_shape[i] != 1]
    return None


def _level_pages(level: Any, n_pages: int, base_pages: list[Any] | None) -> list[Any]:
    """The level's pages in C order of its leading axes (None where a plane has no IFD)."""
    keyframe = level.keyframe
    if keyframe.is_subifd and n_pages > 1 and base_pages is not None and level.kind != "ome":
        # tifffile lists a contiguous SubIFD series by the top-level IFD chain, which holds the full
        # resolution planes; the level's own planes are the same SubIFD of every base-level page.
        pages = _subifd_pages(keyframe, base_pages)
        if pages is not None:
            return pages
    pages = list(level)
    if len(pages) < n_pages:
        pages += [None] * (n_pages - len(pages))
    return pages[:n_pages]


def _subifd_pages(keyframe: Any, base_pages: list[Any]) -> list[Any] | None:
    import tifffile

    first = next((p for p in base_pages if p is not None and p.subifds), None)
    if first is None or int(keyframe.offset) not in first.subifds:
        return None
    i = list(first.subifds).index(int(keyframe.offset))
    pages: list[Any] = []
    for page in base_pages:
        subifds = page.subifds if page is not None else None
        if not subifds or len(subifds) <= i or subifds[i] < 8:
            pages.append(None)
        elif subifds[i] == keyframe.offset:
            pages.append(keyframe)
        else:
            pages.append(tifffile.TiffFrame(page.parent, (page.index, i), offset=subifds[i], keyframe=keyframe))
    return pages


@dataclass
class _Files:
    """Storage keys of the files a level's pages live in, relative to the store's folder."""

    base_dir: Path
    keys: list[str]
    paths: list[Path]
    by_key: dict[str, int]
    by_parent: dict[int, int]
    sizes: dict[int, int]

    @classmethod
    def create(cls, base_dir: Path) -> _Files:
        return cls(base_dir, [], [], {}, {}, {})

    def size(self, k: int) -> int:
        if k not in self.sizes:
            self.sizes[k] = os.path.getsize(self.paths[k])
        return self.sizes[k]

    def index(self, owner: Path) -> int:
        owner = _norm(owner)
        try:
            key = Path(os.path.relpath(owner, self.base_dir)).as_posix()
        except ValueError:  # another drive on Windows
            key = str(owner)
        if key not in self.by_key:
            self.by_key[key] = len(self.keys)
            self.keys.append(key)
            self.paths.append(owner)
        return self.by_key[key]

    def of_page(self, page: Any) -> int:
        parent = page.parent
        found = self.by_parent.get(id(parent))
        if found is None:
            found = self.by_parent[id(parent)] = self.index(Path(parent.filehandle.path))
        return found


def _level_chunks(
    level: Any,
    files: _Files,
    default_file: Path,
    warnings: list[str],
    where: str,
    base_pages: list[Any] | None = None,
) -> tuple[ExplicitChunks | None, list[int] | None]:
    keyframe = level.keyframe
    shape = tuple(int(s) for s in level.shape)
    layout = _page_layout(shape, keyframe)
    if layout is None:
        warnings.append(
            f"{where}: pages of shape {tuple(keyframe.shape)} do not tile the array of shape {shape}; "
            "its tiles are not indexed"
        )
        return None, None
    lead, grid, seg_shape = layout
    n_pages, n_seg = math.prod(lead), math.prod(grid)
    offsets = np.zeros((n_pages, n_seg), np.int64)
    lengths = np.zeros((n_pages, n_seg), np.int64)
    file_index = np.full(n_pages, files.index(default_file), np.int32)

    truncated = n_pages > 1 and len(level) == 1 and getattr(level, "is_truncated", False)
    if truncated:
        # One IFD for a contiguous stack (ImageJ > 4 GB, tifffile ``truncate=True``): every further plane
        # follows the first one in the file, so its segments are the first page's shifted by a plane.
        if level.dataoffset is None or not keyframe.is_contiguous:
            warnings.append(f"{where}: only the first of {n_pages} planes has an IFD and the data is not contiguous")
            pages = [keyframe] + [None] * (n_pages - 1)
        else:
            first = np.asarray(keyframe.dataoffsets, np.int64)
            counts = np.asarray(keyframe.databytecounts, np.int64)
            stride = int(counts.sum())
            offsets[:] = first[None, :] + stride * np.arange(n_pages, dtype=np.int64)[:, None]
            lengths[:] = counts[None, :]
            file_index[:] = files.of_page(keyframe)
            pages = []
    else:
        pages = _level_pages(level, n_pages, base_pages)

    checked: set[int] = set()
    for p, page in enumerate(pages):
        if page is None:
            continue
        kf = page.keyframe if page.keyframe is not None else page
        if id(kf) not in checked:
            checked.add(id(kf))
            _compression(kf, Path(kf.parent.filehandle.path))
        page_offsets, page_counts = page.dataoffsets, page.databytecounts
        if len(page_offsets) != n_seg or len(page_counts) != n_seg:
            raise StoreError(
                page.parent.filehandle.path,
                f"corrupt or truncated TIFF: IFD {page.index} lists {len(page_offsets)} offsets and "
                f"{len(page_counts)} byte counts for {n_seg} tiles or strips",
            )
        offsets[p], lengths[p] = page_offsets, page_counts
        file_index[p] = files.of_page(page)

    flat_offsets, flat_lengths = offsets.reshape(-1), lengths.reshape(-1)
    chunk_files = np.repeat(file_index, n_seg)
    _check_extents(flat_offsets, flat_lengths, chunk_files, files)

    lead_coords = np.stack(np.unravel_index(np.arange(n_pages), lead), axis=1) if lead else np.zeros((n_pages, 0))
    seg_coords = np.stack(np.unravel_index(np.arange(n_seg), grid), axis=1)
    coords = np.concatenate([np.repeat(lead_coords, n_seg, axis=0), np.tile(seg_coords, (n_pages, 1))], axis=1).astype(
        np.int64
    )
    keys = pa.DictionaryArray.from_arrays(pa.array(chunk_files), pa.array(files.keys, pa.string())).cast(pa.string())
    chunk_shape = [1] * len(lead) + seg_shape
    return ExplicitChunks(coords, keys, flat_offsets, flat_lengths), chunk_shape


def _check_extents(offsets: np.ndarray, lengths: np.ndarray, chunk_files: np.ndarray, files: _Files) -> None:
    """Every stored tile or strip must lie inside its file: a TIFF cut short otherwise scans as if whole."""
    stored = lengths > 0
    if not stored.any():
        return
    bad = stored & (offsets < 8)
    if bad.any():
        i = int(np.argmax(bad))
        raise StoreError(files.paths[chunk_files[i]], f"corrupt TIFF: tile or strip at offset {int(offsets[i])}")
    ends = np.zeros(len(files.paths), np.int64)
    np.maximum.at(ends, chunk_files[stored], (offsets + lengths)[stored])
    for k, end in enumerate(ends):
        if end == 0:
            continue
        size = files.size(k)
        if end > size:
            raise StoreError(
                files.paths[k],
                f"truncated TIFF: tile or strip data ends at byte {int(end)} but the file has {size} bytes",
            )


# --- series, OME images and the scan ----------------------------------------------------------------


def _images(tif: tifffile.TiffFile) -> list[list[Any]]:
    """Series as lists of pyramid levels (largest first), with SubIFD series folded into their parent.

    tifffile only pyramidizes SubIFDs marked as reduced images whose axes match; otherwise it returns
    them as series of their own, which would count every level as another image.
    """
    images: list[list[Any]] = []
    parent_of: dict[int, int] = {}  # IFD offset of a SubIFD → image it belongs to
    for series in tif.series:
        keyframe = series.keyframe
        host = parent_of.get(int(keyframe.offset)) if keyframe.is_subifd else None
        if host is not None and _is_sublevel(images[host][0], series):
            images[host].extend(series.levels)
        else:
            host = len(images)
            images.append(list(series.levels))
        for level in series.levels:
            for offset in level.keyframe.subifds or ():
                parent_of.setdefault(int(offset), host)
    for levels in images:
        levels.sort(key=lambda lv: -math.prod(lv.shape))
    return images


def _is_sublevel(base: Any, series: Any) -> bool:
    return (
        len(base.shape) == len(series.shape)
        and base.dtype == series.dtype
        and all(s <= b for s, b in zip(series.shape, base.shape, strict=True))
    )


def _match_ome(images: list[list[Any]], ome: OmeMetadata | None) -> list[OmeImage | None]:
    """The OME Image each series came from. tifffile skips Images without readable planes, so position
    alone is not enough: series are matched in order on name and X/Y size."""
    if ome is None or not ome.images:
        return [None] * len(images)
    matched: list[OmeImage | None] = []
    start = 0
    for levels in images:
        base = levels[0]
        sizes = dict(zip(base.axes.upper(), base.shape, strict=True))
        found = None
        for k in range(start, len(ome.images)):
            image = ome.images[k]
            same_size = image.sizes.get("X") == sizes.get("X") and image.sizes.get("Y") == sizes.get("Y")
            if same_size and (not base.name or not image.name or base.name == image.name):
                found = k
                break
        if found is None:
            matched.append(None)
        else:
            matched.append(ome.images[found])
            start = found + 1
    return matched


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise StoreError(path, f"cannot read ({exc.strerror or exc})") from exc


def _entry(path: Path, warnings: list[str]) -> tuple[Path, str | None]:
    """The TIFF to open and the OME-XML to give tifffile when the file's own description is not it."""
    if is_companion(path):
        xml = _read_text(path)
        try:
            refs = ome_file_refs(xml)
        except ValueError as exc:
            raise StoreError(path, str(exc)) from exc
        names = list(dict.fromkeys(name for _, name in refs.files))
        existing = [_norm(path.parent / n) for n in names if (path.parent / n).is_file()]
        if not existing:
            raise StoreError(path, f"companion OME-XML names {len(names)} TIFF files and none of them exists")
        return existing[0], xml
    head = _head(path)
    if head.binary_only:
        meta = _norm(path.parent / head.binary_only)
        if meta.is_file() and is_companion(meta):
            return path, _read_text(meta)
        if meta.is_file() and _head(meta).full:
            return meta, None
        warnings.append(
            f"{path.name}: the OME-XML is BinaryOnly and its metadata file {head.binary_only!r} is missing; "
            "scanned as a plain TIFF"
        )
    return path, None


def _open(path: Path, omexml: str | None) -> tifffile.TiffFile:
    import tifffile

    try:
        return tifffile.TiffFile(path, omexml=omexml) if omexml else tifffile.TiffFile(path)
    except Exception as exc:  # tifffile raises TiffFileError, struct.error, ValueError... on bad headers
        raise StoreError(path, f"not a readable TIFF ({_describe(exc)})") from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, struct.error):
        return "the file ends inside the TIFF header or an IFD"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _missing_files(xml: str, entry: Path) -> list[str]:
    try:
        refs = ome_file_refs(xml)
    except ValueError:
        return []
    return [n for n in refs.other_files(entry.name) if not (entry.parent / n).is_file()]


def scan_tiff(path: Path, dataset_id: str) -> StoreScan:
    """Scan one TIFF, OME-TIFF or ``.companion.ome`` (with every file of a multi-file OME-TIFF it names)."""
    path = _norm(Path(path))
    warnings: list[str] = []
    with _tifffile_log() as log:
        try:
            scan = _scan(path, dataset_id, warnings)
        except StoreError:
            raise
        except Exception as exc:  # tifffile raises many types on malformed IFD chains
            corrupt = _corruption(log.records, path)
            problem = f"corrupt or truncated TIFF ({corrupt})" if corrupt else f"unreadable TIFF ({_describe(exc)})"
            raise StoreError(path, problem) from exc
    corrupt = _corruption(log.records, path)
    if corrupt:
        raise StoreError(path, f"corrupt or truncated TIFF ({corrupt})")
    for message in dict.fromkeys(m for _, m in log.records):
        scan.warnings.append(message)
    if len(scan.warnings) > _MAX_WARNINGS:
        extra = len(scan.warnings) - _MAX_WARNINGS
        scan.warnings[_MAX_WARNINGS:] = [f"... and {extra} more warnings"]
    return scan


def _corruption(records: list[tuple[int, str]], path: Path) -> str | None:
    found = next(
        (m for level, m in records if level >= logging.ERROR and any(c in m for c in _CORRUPTION_MESSAGES)), None
    )
    if found is None:
        return None
    found = found.removeprefix(f"{path.name}: ")
    if "invalid value offset" in found:
        return f"a tag's value lies past the end of the file: {found}"
    return found


def _scan(path: Path, dataset_id: str, warnings: list[str]) -> StoreScan:
    target, omexml = _entry(path, warnings)
    with _open(target, omexml) as tif:
        ome: OmeMetadata | None = None
        xml = tif.ome_metadata if tif.is_ome else None
        if xml:
            try:
                ome = parse_ome_xml(xml)
            except ValueError as exc:
                warnings.append(f"{target.name}: {exc}")
            for name in _missing_files(xml, target):
                warnings.append(f"{name}: named by the OME-XML but missing; its planes are listed as not stored")
        images = _images(tif)
        matches = _match_ome(images, ome)
        if ome is not None and ome.images:
            unmatched = len(ome.images) - sum(m is not None for m in matches)
            if unmatched:
                warnings.append(f"{unmatched} OME image(s) have no readable planes and are not listed")
        names = parse_file_name(path.name)
        files = _Files.create(path.parent)
        used: set[int] = set()
        arrays: list[ArrayRecord] = []
        for position, (levels, ome_image) in enumerate(zip(images, matches, strict=True)):
            index = ome_image.index if ome_image is not None and ome_image.index not in used else position
            while index in used:
                index += 1
            used.add(index)
            arrays.extend(_image_records(tif, path, target, index, levels, ome_image, ome, names, files, warnings))
        if not arrays:
            raise StoreError(path, "TIFF has no image series")
        fmt = "ome-tiff" if ome is not None and ome.images else "tiff"
        return StoreScan(dataset_id, str(path), fmt, arrays, warnings)


def _image_records(
    tif: tifffile.TiffFile,
    path: Path,
    target: Path,
    index: int,
    levels: list[Any],
    ome_image: OmeImage | None,
    ome: OmeMetadata | None,
    names: Any,
    files: _Files,
    warnings: list[str],
) -> list[ArrayRecord]:
    base = levels[0]
    base_axes = [a.lower() for a in base.axes]
    base_shape = tuple(int(s) for s in base.shape)
    sizes = _ome_sizes(ome_image)
    if not sizes and tif.is_imagej:
        sizes = _imagej_sizes(tif)
    if not sizes:
        sizes = _resolution_sizes(base.keyframe)
    channels = ome_image.channel_names if ome_image is not None and ome_image.channel_names else None
    sample = ome.well_samples.get(ome_image.index) if ome is not None and ome_image is not None else None
    records = []
    base_pages: list[Any] | None = None
    for level_index, level in enumerate(levels):
        where = f"{index}/{level_index}"
        kf = level.keyframe
        if kf.dtype is None:  # the series then reports numpy's default dtype, float64, which would be a lie
            raise StoreError(
                path, f"unsupported TIFF sample format {int(kf.sampleformat)} with {kf.bitspersample} bits per sample"
            )
        shape = tuple(int(s) for s in level.shape)
        # SubIFD levels folded in by _images carry tifffile's generic axes; the base level's are the real ones.
        axes = base_axes if len(shape) == len(base_axes) else [a.lower() for a in level.axes]
        if level_index > 0 and base_pages is None and level.keyframe.is_subifd:
            base_pages = list(base)
        chunks, chunk_shape = _level_chunks(level, files, target, warnings, where, base_pages)
        scale, units = _scale(sizes, axes, shape, base_shape) if len(shape) == len(base_shape) else (None, None)
        record = ArrayRecord(
            image_id=str(index),
            array_path=f"{index}/{level_index}",
            level=level_index,
            uri=str(path),
            storage_variant="tiff",
            shape=list(shape),
            dtype=np.dtype(level.dtype).name,
            chunk_shape=chunk_shape,
            axes=axes,
            axis_types=[_AXIS_TYPES.get(a) for a in axes],
            axis_units=units,
            scale=scale,
            channel_names=channels,
            codecs=_codecs(level.keyframe, path),
            chunk_key_encoding="tiff",
            chunks=chunks,
        )
        if sample is not None:
            record.plate_id, record.well_id, record.site_id = sample.plate_id, sample.well_id, sample.site_id
        elif names is not None:
            record.plate_id, record.well_id, record.site_id = names.plate_id, names.well_id, names.site_id
        records.append(record)
    return records
