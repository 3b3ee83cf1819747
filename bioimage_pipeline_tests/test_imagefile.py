"""The single-image header reader against the full TIFF scanner, on the corpus and on files written here.

For a TIFF, whatever :func:`read_image_file` returns must equal what :func:`scan_tiff` reports for the
same file (shape, axes, dtype, chunk shape and grid, codecs, pixel size, every segment's offset and byte
count); returning None is always allowed (the caller then uses the scanner) but must stay rare on real
files. PNG and Cellomics C01 files are checked against what their headers say, read independently here.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile

import bioimage_pipeline.formats.imagefile as imagefile
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats.imagefile import ImageFile, read_image_file
from bioimage_pipeline.formats.tiff import _first_description, scan_tiff
from bioimage_pipeline_tests.corpus import CORPUS

CORPUS_TIFFS = sorted({p for pattern in ("*.tif", "*.tiff", "*.TIF", "*.ome.tif") for p in CORPUS.rglob(pattern)})


def _single_image(path: Path) -> bool:
    with tifffile.TiffFile(path) as tif:
        return len(tif.pages) == 1 and not tif.pages.first.subifds


SINGLE_IMAGE_TIFFS = [p for p in CORPUS_TIFFS if p.is_file() and _single_image(p)]

# Corpus files the reader leaves to the full scanner, and why. All four are Leica Matrix Screener OME-TIFFs:
# each channel's file carries an OME-XML whose TiffData/UUID elements name the other channel's file, so
# the file is one member of a multi-file OME-TIFF (one image over two files), not a single image.
_LEICA = "plate-layouts/arve0+leicaexperiment/test/experiment--test/slide--S00/chamber--U00--V00"
EXPECTED_NONE = {
    f"{_LEICA}/field--X00--Y{y}/image--L00--S00--U00--V00--J20--E00--O00--X00--Y{y}--T00--Z00--C{c}.ome.tif"
    for y in ("00", "01")
    for c in ("00", "01")
}

PNG_DIR = CORPUS / "plate-layouts/fractal-analytics-platform+fractal-tasks-core/tests/data/png"
C01 = CORPUS / "plate-layouts/CellProfiler+CellProfiler/tests/core/data/modules/loadimages/iamac01file.c01"


# --- the comparison with the scanner ------------------------------------------------------------------


def assert_same_as_scanner(path: Path, image: ImageFile) -> None:
    scan = scan_tiff(path, "x")
    assert len(scan.arrays) == 1
    record = scan.arrays[0]
    assert image.variant == "tiff"
    assert list(image.shape) == record.shape
    assert list(image.axes) == record.axes
    assert image.dtype == record.dtype
    assert list(image.chunk_shape) == record.chunk_shape
    assert image.codecs == record.codecs
    assert image.description == _first_description(path)
    if record.scale is None:
        assert image.scale is None and image.unit is None
    else:
        y, x = record.axes.index("y"), record.axes.index("x")
        assert image.scale == (record.scale[y], record.scale[x])
        assert image.unit == record.axis_units[x] == record.axis_units[y]
        others = [k for k in range(len(record.axes)) if k not in (y, x)]
        assert all(record.scale[k] == 1.0 and record.axis_units[k] is None for k in others)

    assert record.chunks is not None
    table = pa.Table.from_batches(list(record.chunks.batches(1 << 20)))
    assert image.offsets.dtype == np.int64 and image.lengths.dtype == np.int64
    assert table.num_rows == len(image.offsets) == len(image.lengths) == math.prod(image.grid)
    coords = np.array(table.column("chunk_coords").to_pylist(), np.int64).reshape(table.num_rows, -1)
    expected_coords = np.stack(np.unravel_index(np.arange(math.prod(image.grid)), image.grid), axis=1)
    assert (coords == expected_coords).all()  # the grid and its C order are the scanner's
    stored = np.array(table.column("stored").to_pylist(), bool)
    assert (stored == (image.lengths > 0)).all()
    offsets = np.array(table.column("byte_offset").to_pylist(), dtype=object)[stored]
    lengths = np.array(table.column("byte_length").to_pylist(), dtype=object)[stored]
    assert offsets.tolist() == image.offsets[stored].tolist()
    assert lengths.tolist() == image.lengths[stored].tolist()


def read_and_compare(path: Path) -> ImageFile:
    image = read_image_file(path)
    assert image is not None, path
    assert_same_as_scanner(path, image)
    return image


# --- the corpus -----------------------------------------------------------------------------------------


def test_corpus_has_single_image_tiffs() -> None:
    assert len(SINGLE_IMAGE_TIFFS) >= 100


@pytest.mark.parametrize("path", SINGLE_IMAGE_TIFFS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_single_image_tiff_matches_the_scanner(path: Path) -> None:
    image = read_image_file(path)
    if image is None:
        assert path.relative_to(CORPUS).as_posix() in EXPECTED_NONE
    else:
        assert_same_as_scanner(path, image)


def test_corpus_files_left_to_the_scanner_are_few_and_known() -> None:
    left = {p.relative_to(CORPUS).as_posix() for p in SINGLE_IMAGE_TIFFS if read_image_file(p) is None}
    assert left <= EXPECTED_NONE
    assert len(left) < 0.1 * len(SINGLE_IMAGE_TIFFS)


def test_corpus_ifd_after_the_pixel_data_costs_one_more_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # CytoTable's ExampleHuman TIFFs were written by libtiff: strips first, the IFD at the end.
    path = CORPUS / "cytomining+CytoTable/tests/data/cellprofiler/ExampleHuman/AS_09125_050116030001_D03f00d0.tif"
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.offset > imagefile.HEAD_BYTES
    reads = count_reads(monkeypatch)
    image = read_image_file(path)
    assert image is not None and len(reads) == 2
    assert_same_as_scanner(path, image)


# --- files written here ----------------------------------------------------------------------------------


def count_reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    reads: list[tuple[int, int]] = []
    real = os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        reads.append((offset, n))
        return real(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread)
    return reads


def pixels(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return (np.arange(math.prod(shape)) % 251).astype(dtype).reshape(shape)


def test_plain_tiff_is_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, pixels((64, 64), "uint16"))
    reads = count_reads(monkeypatch)
    image = read_image_file(path)
    assert reads == [(0, imagefile.HEAD_BYTES)]
    assert image is not None
    assert (image.shape, image.axes, image.dtype, image.chunk_shape, image.grid) == (
        (64, 64),
        "yx",
        "uint16",
        (64, 64),
        (1, 1),
    )
    monkeypatch.undo()
    assert_same_as_scanner(path, image)


WRITES = {
    "strips": ((100, 70), "uint16", {"rowsperstrip": 16}),
    "bigtiff": ((64, 64), "uint16", {"bigtiff": True, "rowsperstrip": 8}),
    "big-endian": ((64, 64), "uint16", {"byteorder": ">", "rowsperstrip": 8}),
    "bigtiff-big-endian": ((64, 48), "float32", {"bigtiff": True, "byteorder": ">", "tile": (32, 32)}),
    "tiled": ((100, 70), "uint16", {"tile": (32, 32)}),
    "tiled-rgb": ((64, 80, 3), "uint8", {"tile": (32, 32), "photometric": "rgb"}),
    "rgb": ((64, 48, 3), "uint8", {"photometric": "rgb", "rowsperstrip": 10}),
    "planar-rgb": ((3, 64, 48), "uint8", {"photometric": "rgb", "planarconfig": "separate", "rowsperstrip": 10}),
    "planar-tiled": ((3, 64, 48), "uint16", {"photometric": "rgb", "planarconfig": "separate", "tile": (32, 16)}),
    "rgba": ((32, 32, 4), "uint8", {"photometric": "rgb", "extrasamples": ["unassalpha"]}),
    "deflate-predictor": ((64, 64), "uint16", {"compression": "zlib", "predictor": True, "rowsperstrip": 16}),
    "deflate-predictor-bigendian": ((64, 64), "int16", {"compression": "zlib", "predictor": True, "byteorder": ">"}),
    "lzma": ((64, 64), "uint8", {"compression": "lzma"}),
    "int8": ((16, 16), "int8", {}),
    "int32": ((16, 16), "int32", {}),
    "uint32": ((16, 16), "uint32", {}),
    "int64": ((16, 16), "int64", {}),
    "float16": ((16, 16), "float16", {}),
    "float64": ((16, 16), "float64", {"bigtiff": True}),
    "complex64": ((16, 16), "complex64", {}),
    "one-row": ((1, 64), "uint16", {}),
    "one-column": ((64, 1), "uint16", {}),
    "metric-resolution": ((32, 32), "uint16", {"resolution": (2.0, 4.0), "resolutionunit": "CENTIMETER"}),
    "micrometre-resolution": ((32, 32), "uint16", {"resolution": (1 / 0.65, 1 / 0.325), "resolutionunit": 5}),
    "inch-resolution": ((32, 32), "uint16", {"resolution": (72.0, 72.0), "resolutionunit": "INCH"}),
    "axes-yx": ((32, 32), "uint16", {"metadata": {"axes": "YX"}}),
    "no-description": ((32, 32), "uint16", {"metadata": None}),
    "own-description": ((32, 32), "uint16", {"description": "Plate 7, well B03", "metadata": None}),
    "imagej": ((32, 32), "uint16", {"imagej": True, "resolution": (2.0, 2.0), "metadata": {"unit": "um"}}),
    "imagej-rgb": ((32, 32, 3), "uint8", {"imagej": True, "resolution": (4.0, 4.0), "metadata": {"unit": "micron"}}),
    "imagej-uncalibrated": ((32, 32), "uint16", {"imagej": True, "resolution": (2.0, 2.0), "resolutionunit": 3}),
    "ome": ((32, 32), "uint16", {"ome": True, "metadata": {"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25}}),
    "ome-uncalibrated": ((32, 32), "uint8", {"ome": True}),
}


@pytest.mark.parametrize("name", WRITES)
def test_written_tiff_matches_the_scanner(tmp_path: Path, name: str) -> None:
    shape, dtype, kwargs = WRITES[name]
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, pixels(shape, dtype), **kwargs)
    image = read_and_compare(path)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert image.shape == page.shape
        assert image.dtype == page.dtype.name
        assert image.offsets.tolist() == list(page.dataoffsets)
        assert image.lengths.tolist() == list(page.databytecounts)


def test_written_layouts_are_tifffile_s(tmp_path: Path) -> None:
    cases = {
        "bigtiff": ((64, 64), "yx", (8, 64), (8, 1)),
        "tiled": ((100, 70), "yx", (32, 32), (4, 3)),
        "tiled-rgb": ((64, 80, 3), "yxs", (32, 32, 3), (2, 3, 1)),
        "rgb": ((64, 48, 3), "yxs", (10, 48, 3), (7, 1, 1)),
        "planar-rgb": ((3, 64, 48), "syx", (1, 10, 48), (3, 7, 1)),
        "planar-tiled": ((3, 64, 48), "syx", (1, 32, 16), (3, 2, 3)),
    }
    for name, expected in cases.items():
        shape, dtype, kwargs = WRITES[name]
        path = tmp_path / f"{name}.tif"
        tifffile.imwrite(path, pixels(shape, dtype), **kwargs)
        image = read_image_file(path)
        assert image is not None
        assert (image.shape, image.axes, image.chunk_shape, image.grid) == expected, name


def test_physical_sizes(tmp_path: Path) -> None:
    expected = {
        "metric-resolution": ((0.25 * 1e4, 0.5 * 1e4), "micrometer"),  # 4 and 2 pixels per centimetre
        "micrometre-resolution": ((0.325, 0.65), "micrometer"),
        "inch-resolution": (None, None),  # the 72 dpi default says nothing about the sample
        "imagej": ((0.5, 0.5), "micrometer"),
        "imagej-rgb": ((0.25, 0.25), "micrometer"),
        "ome": ((0.25, 0.5), "micrometer"),
        "ome-uncalibrated": (None, None),
    }
    for name, (scale, unit) in expected.items():
        shape, dtype, kwargs = WRITES[name]
        path = tmp_path / f"{name}.tif"
        tifffile.imwrite(path, pixels(shape, dtype), **kwargs)
        image = read_image_file(path)
        assert image is not None
        assert image.scale == (pytest.approx(scale) if scale else None), name
        assert image.unit == unit, name


def set_tag(path: Path, code: int, value: int) -> None:
    """Overwrite the inline SHORT value of one tag of the first IFD (header-only tests of codes tifffile
    cannot encode here)."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages.first.tags[code]
        assert tag.dtype == 3 and tag.count == 1
        at, order = tag.valueoffset, tif.byteorder
    with open(path, "r+b") as fh:
        fh.seek(at)
        fh.write(struct.pack(order + "H", value))


@pytest.mark.parametrize(
    ("code", "codec"),
    [(1, "none"), (5, "lzw"), (7, "jpeg"), (8, "adobe_deflate"), (32773, "packbits"), (32946, "deflate"),
     (34925, "lzma"), (50000, "zstd"), (34887, "lerc"), (34933, "png"), (50001, "webp"), (34712, "jpeg2000")],
)  # fmt: skip
def test_compression_names_are_the_scanner_s(tmp_path: Path, code: int, codec: str) -> None:
    path = tmp_path / "codec.tif"
    tifffile.imwrite(path, pixels((32, 32), "uint8"), rowsperstrip=8)
    set_tag(path, 259, code)
    image = read_and_compare(path)
    assert image.codecs == [codec]


@pytest.mark.parametrize(
    ("code", "codec"), [(2, "predictor-horizontal"), (3, "predictor-floatingpoint"), (7, "predictor-7")]
)
def test_predictor_is_a_codec(tmp_path: Path, code: int, codec: str) -> None:
    path = tmp_path / "predictor.tif"
    tifffile.imwrite(path, pixels((32, 32), "uint16"), compression="zlib", predictor=True, rowsperstrip=8)
    set_tag(path, 317, code)
    image = read_and_compare(path)
    assert image.codecs == ["adobe_deflate", codec]


def test_unknown_compression_is_left_to_the_scanner(tmp_path: Path) -> None:
    path = tmp_path / "unknown.tif"
    tifffile.imwrite(path, pixels((32, 32), "uint8"))
    set_tag(path, 259, 4242)
    assert read_image_file(path) is None
    with pytest.raises(StoreError, match="unknown TIFF compression 4242"):
        scan_tiff(path, "x")


def test_sparse_tiles_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "sparse.tif"
    shape, tile = (96, 128), (32, 32)
    n = (shape[0] // tile[0]) * (shape[1] // tile[1])
    written = {0, 5, n - 1}
    tiles = (np.full(tile, 9, np.uint8) if i in written else None for i in range(n))
    tifffile.imwrite(path, tiles, shape=shape, dtype=np.uint8, tile=tile, compression="zlib")
    image = read_and_compare(path)
    assert set(np.flatnonzero(image.lengths).tolist()) == written


def write_ifd_last(path: Path, data: np.ndarray, rows: int, order: str = "<") -> None:
    """A classic TIFF laid out as libtiff writes it: header, strips, the offset and count arrays, then the IFD."""
    height, width = data.shape
    strips = [data[r : r + rows].astype(f"{order}u2").tobytes() for r in range(0, height, rows)]
    out = bytearray((b"II*\x00" if order == "<" else b"MM\x00*") + bytes(4))
    offsets = []
    for strip in strips:
        offsets.append(len(out))
        out += strip
    offsets_at = len(out)
    out += struct.pack(f"{order}{len(strips)}I", *offsets)
    counts_at = len(out)
    out += struct.pack(f"{order}{len(strips)}I", *(len(s) for s in strips))
    ifd_at = len(out)
    entries = [
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, 1),
        (273, 4, len(strips), offsets_at), (277, 3, 1, 1), (278, 4, 1, rows), (279, 4, len(strips), counts_at),
    ]  # fmt: skip
    out += struct.pack(f"{order}H", len(entries))
    for tag, kind, count, value in entries:
        packed = struct.pack(f"{order}H", value) + bytes(2) if kind == 3 else struct.pack(f"{order}I", value)
        out += struct.pack(f"{order}HHI", tag, kind, count) + packed
    out += bytes(4)
    out[4:8] = struct.pack(f"{order}I", ifd_at)
    path.write_bytes(bytes(out))


@pytest.mark.parametrize("order", ["<", ">"])
def test_ifd_after_the_pixel_data_is_one_more_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    path = tmp_path / "ifd-last.tif"
    data = pixels((128, 96), "uint16")
    write_ifd_last(path, data, rows=20, order=order)
    with tifffile.TiffFile(path) as tif:  # a valid TIFF: tifffile reads the same pixels back
        assert tif.pages.first.offset > imagefile.HEAD_BYTES
        assert (tif.asarray() == data).all()
    reads = count_reads(monkeypatch)
    image = read_image_file(path)
    assert image is not None and len(reads) == 2  # the head, then the IFD with the arrays written next to it
    monkeypatch.undo()
    assert_same_as_scanner(path, image)
    assert (image.chunk_shape, image.grid) == ((20, 96), (7, 1))


def test_prefix_saves_the_first_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prefix.tif"
    tifffile.imwrite(path, pixels((64, 64), "uint16"), rowsperstrip=8)
    whole = read_image_file(path)
    head = path.read_bytes()[: imagefile.HEAD_BYTES]
    reads = count_reads(monkeypatch)
    assert repr(read_image_file(path, prefix=head)) == repr(whole)
    assert reads == []
    assert repr(read_image_file(path, prefix=head[:16])) == repr(whole)  # a short prefix: the rest is read
    assert len(reads) == 1


def test_files_sharing_a_layout_are_each_checked(tmp_path: Path) -> None:
    # Same entry table, so the second read hits the layout cache: its own segments are still checked.
    first, second = tmp_path / "a.tif", tmp_path / "b.tif"
    for path in (first, second):
        tifffile.imwrite(path, pixels((64, 64), "uint16"), rowsperstrip=8, resolution=(2.0, 2.0), resolutionunit=3)
    read_and_compare(first)
    read_and_compare(second)
    second.write_bytes(second.read_bytes()[: second.stat().st_size - 100])
    with pytest.raises(StoreError, match="truncated"):
        read_image_file(second)


def test_layouts_are_not_shared_through_values_outside_the_entries(tmp_path: Path) -> None:
    # Two RGB files alike but for their bit depth: BitsPerSample (three values) is stored out of line at
    # the same offset in both, so the entries that point at it are the same.
    paths = []
    for dtype in ("uint8", "uint16", "uint8"):
        path = tmp_path / f"rgb-{dtype}-{len(paths)}.tif"
        tifffile.imwrite(path, pixels((32, 32, 3), dtype), photometric="rgb", metadata=None)
        paths.append(path)
    with tifffile.TiffFile(paths[0]) as a, tifffile.TiffFile(paths[1]) as b:
        assert a.pages.first.tags[258].valueoffset == b.pages.first.tags[258].valueoffset
    assert [read_and_compare(p).dtype for p in paths] == ["uint8", "uint16", "uint8"]


# --- files this reader leaves to the scanner, files that are broken -------------------------------------


def test_two_pages_is_none(tmp_path: Path) -> None:
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, pixels((2, 32, 32), "uint16"))
    assert read_image_file(path) is None


def test_subifds_is_none(tmp_path: Path) -> None:
    path = tmp_path / "subifds.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(pixels((64, 64), "uint16"), subifds=1)
        tif.write(pixels((32, 32), "uint16"), subfiletype=1)
    with tifffile.TiffFile(path) as t:
        assert len(t.pages) == 1 and t.pages.first.subifds
    assert read_image_file(path) is None


@pytest.mark.parametrize(
    ("name", "shape", "dtype", "kwargs"),
    [
        ("leading-one", (1, 32, 32), "uint16", {}),  # tifffile's series is (1, 32, 32), not the page
        (
            "declared-axes",
            (3, 32, 32),
            "uint8",
            {"photometric": "minisblack", "planarconfig": "separate", "metadata": {"axes": "CYX"}},
        ),
        ("swapped-axes", (32, 32), "uint16", {"metadata": {"axes": "XY"}}),
        ("one-bit", (32, 32), "bool", {}),
        ("ome-rgb", (32, 32, 3), "uint8", {"ome": True, "photometric": "rgb"}),
    ],
)
def test_what_the_scanner_reads_differently_is_none(
    tmp_path: Path, name: str, shape: tuple[int, ...], dtype: str, kwargs: dict[str, object]
) -> None:
    path = tmp_path / f"{name}.tif"
    tifffile.imwrite(path, pixels(shape, dtype) if dtype != "bool" else np.ones(shape, bool), **kwargs)
    assert read_image_file(path) is None
    scan_tiff(path, "x")  # and the scanner reads it


def test_multi_file_ome_is_none(tmp_path: Path) -> None:
    path = tmp_path / "member.ome.tif"
    tifffile.imwrite(path, pixels((32, 32), "uint16"), ome=True)
    with tifffile.TiffFile(path) as tif:
        xml = tif.pages.first.description
    other = '<TiffData IFD="0" PlaneCount="1"><UUID FileName="other.ome.tif">urn:uuid:1</UUID></TiffData>'
    xml2 = xml.replace("</Pixels>", other + "</Pixels>", 1)
    assert xml2 != xml
    tifffile.imwrite(path, pixels((32, 32), "uint16"), description=xml2, metadata=None)
    assert read_image_file(path) is None


def test_truncated_strips_are_a_store_error_naming_the_file(tmp_path: Path) -> None:
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, pixels((64, 64), "uint16"), rowsperstrip=8)
    path = tmp_path / "cut.tif"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(StoreError, match="truncated TIFF: tile or strip data ends at byte") as info:
        read_image_file(path)
    assert info.value.path == str(path) and str(path) in str(info.value)
    with pytest.raises(StoreError, match="truncated"):
        scan_tiff(path, "x")  # the scanner says the same


def test_truncated_ifd_and_tag_values_are_store_errors(tmp_path: Path) -> None:
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, pixels((64, 64), "uint16"), rowsperstrip=8, description="x" * 300, metadata=None)
    data = whole.read_bytes()
    with tifffile.TiffFile(whole) as tif:
        ifd = tif.pages.first.offset
        description_at = tif.pages.first.tags["ImageDescription"].valueoffset
    cases = {
        "in-header.tif": (6, "header"),
        "in-ifd.tif": (ifd + 20, "IFD"),
        "in-description.tif": (description_at + 100, "tag 270"),
    }
    for name, (keep, problem) in cases.items():
        path = tmp_path / name
        path.write_bytes(data[:keep])
        with pytest.raises(StoreError, match=problem):
            read_image_file(path)
        with pytest.raises(StoreError):
            scan_tiff(path, "x")


def test_ifd_past_the_end_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.tif"
    path.write_bytes(b"II*\x00\xff\xff\xff\x7f" + bytes(100))
    with pytest.raises(StoreError, match="first IFD"):
        read_image_file(path)


@pytest.mark.parametrize("content", [b"", b"not an image at all, just text", b"\x00\x01\x02"])
def test_not_an_image_is_a_store_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not an image"):
        read_image_file(path)


def test_missing_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot read"):
        read_image_file(tmp_path / "missing.tif")


# --- PNG -------------------------------------------------------------------------------------------------


def write_png(path: Path, data: np.ndarray, colour: int) -> None:
    """A PNG written here from the specification: IHDR, one IDAT of unfiltered rows, IEND."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width = data.shape[:2]
    rows = data.astype(data.dtype.newbyteorder(">")).reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    header = struct.pack(">IIBBBBB", width, height, data.dtype.itemsize * 8, colour, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("shape", "dtype", "colour", "axes"),
    [((40, 50), "uint8", 0, "yx"), ((40, 50), "uint16", 0, "yx"), ((30, 20, 3), "uint8", 2, "yxs"),
     ((30, 20, 3), "uint16", 2, "yxs"), ((30, 20, 4), "uint8", 6, "yxs"), ((30, 20, 2), "uint16", 4, "yxs")],
)  # fmt: skip
def test_png(tmp_path: Path, shape: tuple[int, ...], dtype: str, colour: int, axes: str) -> None:
    path = tmp_path / "image.png"
    write_png(path, pixels(shape, dtype), colour)
    image = read_image_file(path)
    assert image is not None
    assert (image.variant, image.shape, image.axes, image.dtype) == ("png", shape, axes, dtype)
    assert image.chunk_shape == shape and image.grid == (1,) * len(shape)
    assert image.offsets.tolist() == [0] and image.lengths.tolist() == [path.stat().st_size]
    assert image.codecs == ["png"] and image.scale is None and image.description is None


def test_truncated_png_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    write_png(path, pixels((40, 50), "uint16"), 0)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(StoreError, match="truncated PNG"):
        read_image_file(path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(StoreError, match="truncated PNG"):
        read_image_file(path)


def test_yokogawa_pngs() -> None:
    # CellVoyager PNGs: 2560×2160 (width × height) 16-bit greyscale, as their IHDR says.
    pngs = sorted(PNG_DIR.glob("*.png"))
    assert len(pngs) == 4
    for path in pngs:
        image = read_image_file(path)
        assert image is not None
        assert (image.shape, image.axes, image.dtype, image.variant) == ((2160, 2560), "yx", "uint16", "png")
        assert image.lengths.tolist() == [path.stat().st_size]


# --- Cellomics C01 ---------------------------------------------------------------------------------------


def test_cellomics_c01() -> None:
    image = read_image_file(C01)
    assert image is not None
    assert (image.variant, image.shape, image.axes, image.dtype) == ("c01", (512, 512), "yx", "uint16")
    assert image.codecs == ["zlib"]
    assert image.offsets.tolist() == [0] and image.lengths.tolist() == [C01.stat().st_size]
    # Independently: the inflated stream is the 52-byte DIB header and 512×512 16-bit pixels.
    dib = zlib.decompress(C01.read_bytes()[4:])
    assert len(dib) == 52 + 512 * 512 * 2
    ppm_x, ppm_y = struct.unpack_from("<ii", dib, 24)
    assert image.scale == (1e6 / ppm_y, 1e6 / ppm_x) and image.unit == "micrometer"
    assert image.scale == pytest.approx((1.29, 1.29), abs=0.01)


def test_truncated_c01_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.c01"
    path.write_bytes(C01.read_bytes()[:12])
    with pytest.raises(StoreError, match="Cellomics"):
        read_image_file(path)


# --- the tables copied from tifffile stay tifffile's -----------------------------------------------------


def test_tables_agree_with_tifffile() -> None:
    for code, name in imagefile._COMPRESSION.items():
        assert tifffile.COMPRESSION(code).name.lower() == name
    for code, name in imagefile._PREDICTOR.items():
        assert tifffile.PREDICTOR(code).name.lower() == name
    for key, name in imagefile._DTYPES.items():
        assert np.dtype(tifffile.TIFF.SAMPLE_DTYPES[key]).name == name
    assert set(tifffile.TIFF.TAG_READERS) == imagefile._OFFSET_TAGS
    for kind, fmt in tifffile.TIFF.DATA_FORMATS.items():
        assert imagefile._TYPE_SIZE[kind] == struct.calcsize(fmt)
