"""TIFF and OME-TIFF scanning against real files: the corpus in place, and files written with tifffile here.

Every expectation is read independently of the scanner: shapes and axes from tifffile's series, tile and
strip locations from the TileOffsets/StripOffsets and byte-count tags of each IFD (re-read from the file),
physical sizes and channel names from the OME-XML or ImageJ description, pyramid sizes from Bio-Formats'
PyramidResolution annotation.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import tifffile

from bioimage_pipeline.discovery import discover_stores, fingerprint_store, iter_store_paths
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats import detect_format, scan_store
from bioimage_pipeline.formats.tiff import scan_tiff, tiff_store_master, tiff_store_members
from bioimage_pipeline.ingest import scan_one
from bioimage_pipeline.model import ArrayRecord, StoreScan
from bioimage_pipeline_tests.corpus import CORPUS

GALAXY = CORPUS / "BMCV+galaxy-image-analysis" / "tools"
RES_PYRAMID = GALAXY / "bfconvert/test-data/res.ome.tiff"
MULTISERIES = GALAXY / "split_image/test-data/multiseries.ome.tiff"
ZCYX = GALAXY / "split_image/test-data/zcyx.tiff"
CALIBRATED = GALAXY / "bioformats2raw/test-data/xyz_8bit__mitotic_plate_calibrated.tiff"
CALIBRATED_OME_XML = (
    GALAXY / "bioformats2raw/test-data/xyz_8bit__mitotic_plate_calibrated.ome.zarr/OME/METADATA.ome.xml"
)
BBBC = GALAXY / "superdsm/test-data/BBBC033_C2_z28-lzw.tiff"
ARTIFICIAL = CORPUS / "WayScience+ome-arrow/tests/data/ome-artificial-5d-datasets"
EXAMPLE_HUMAN = CORPUS / "cytomining+CytoTable/tests/data/cellprofiler/ExampleHuman"

CORPUS_TIFFS = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix.lower() in (".tif", ".tiff"))
OME = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


# --- independent readings ---------------------------------------------------------------------------


def chunk_table(record: ArrayRecord) -> pa.Table:
    assert record.chunks is not None
    return pa.Table.from_batches(list(record.chunks.batches(1000)))


def ifd_segments(path: Path, ifd_offset: int) -> tuple[list[int], list[int]]:
    """Offsets and byte counts of one IFD, from its own tags (a fresh TiffPage parsed at that offset)."""
    with tifffile.TiffFile(path) as tif:
        tif.filehandle.seek(ifd_offset)
        page = tifffile.TiffPage(tif, 0)
        tags = page.tags
        if "TileOffsets" in tags:
            return list(tags["TileOffsets"].value), list(tags["TileByteCounts"].value)
        return list(tags["StripOffsets"].value), list(tags["StripByteCounts"].value)


def ifd_segment_shape(path: Path, ifd_offset: int) -> list[int]:
    """A tile or strip's shape from TileLength/TileWidth or RowsPerStrip, PlanarConfiguration and samples."""
    with tifffile.TiffFile(path) as tif:
        tif.filehandle.seek(ifd_offset)
        tags = tifffile.TiffPage(tif, 0).tags
        length, width = tags["ImageLength"].value, tags["ImageWidth"].value
        if "TileWidth" in tags:
            seg = [tags["TileLength"].value, tags["TileWidth"].value]
        else:
            rows = tags["RowsPerStrip"].value if "RowsPerStrip" in tags else length
            seg = [min(rows, length), width]
        spp = tags["SamplesPerPixel"].value if "SamplesPerPixel" in tags else 1
        planar = tags["PlanarConfiguration"].value if "PlanarConfiguration" in tags else 1
        if spp > 1:
            seg = [1, *seg] if planar == 2 else [*seg, spp]
        return seg


def assert_chunks_match_ifds(record: ArrayRecord, store_dir: Path, ifds: list[tuple[Path, int] | None]) -> None:
    """chunk_index rows of an array == the tags of its IFDs (one per plane, C order), keys exist, data inside."""
    table = chunk_table(record)
    grid = [math.ceil(s / c) for s, c in zip(record.shape, record.chunk_shape, strict=True)]
    assert table.num_rows == record.chunk_count == math.prod(grid)
    coords = np.array(table.column("chunk_coords").to_pylist(), np.int64).reshape(table.num_rows, len(grid))
    expected_coords = np.stack(np.unravel_index(np.arange(math.prod(grid)), grid), axis=1)
    assert (coords == expected_coords).all()

    offsets: list[int] = []
    counts: list[int] = []
    files: list[str] = []
    n_seg = table.num_rows // len(ifds)
    for ifd in ifds:
        if ifd is None:
            offsets += [0] * n_seg
            counts += [0] * n_seg
            files += [None] * n_seg
            continue
        o, c = ifd_segments(*ifd)
        assert len(o) == n_seg
        offsets += o
        counts += c
        files += [Path(os.path.relpath(ifd[0], store_dir)).as_posix()] * n_seg
    stored = np.array(table.column("stored").to_pylist())
    assert stored.tolist() == [c > 0 for c in counts]
    got_offsets = table.column("byte_offset").to_pylist()
    got_lengths = table.column("byte_length").to_pylist()
    keys = table.column("storage_key").to_pylist()
    for i in np.flatnonzero(stored):
        assert (got_offsets[i], got_lengths[i], keys[i]) == (offsets[i], counts[i], files[i])
        assert got_offsets[i] + got_lengths[i] <= (store_dir / keys[i]).stat().st_size
    assert record.chunks_stored == int(stored.sum())


def level_ifds(level: tifffile.TiffPageSeries) -> list[tuple[Path, int] | None]:
    return [None if p is None else (Path(p.parent.filehandle.path), p.offset) for p in level]


def ome_root(path: Path) -> ET.Element:
    with tifffile.TiffFile(path) as tif:
        return ET.fromstring(tif.pages.first.description)


def ome_pixels(root: ET.Element) -> list[ET.Element]:
    return [img.find(f"{{{OME}}}Pixels") for img in root.findall(f"{{{OME}}}Image")]


# --- the corpus -------------------------------------------------------------------------------------


def test_corpus_has_the_expected_tiffs() -> None:
    names = {p.name for p in CORPUS_TIFFS}
    assert len(CORPUS_TIFFS) >= 80
    for f in (RES_PYRAMID, MULTISERIES, ZCYX, CALIBRATED, BBBC):
        assert f.name in names


@pytest.mark.parametrize("path", CORPUS_TIFFS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_tiff_matches_tifffile(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    scan = scan_store(path)
    caplog.set_level(logging.WARNING, logger="tifffile")
    with tifffile.TiffFile(path) as tif:
        assert scan.format == ("ome-tiff" if tif.is_ome else "tiff")
        levels = [level for series in tif.series for level in series.levels]
        assert len(scan.arrays) == len(levels)
        for record, (s_index, series) in zip(
            scan.arrays, [(i, s) for i, s in enumerate(tif.series) for _ in s.levels], strict=True
        ):
            level = series.levels[record.level]
            assert record.image_id == str(s_index)
            assert record.array_path == f"{s_index}/{record.level}"
            assert record.shape == list(level.shape)
            assert record.dtype == level.dtype.name
            assert record.axes == [a.lower() for a in level.axes]
            assert record.uri == str(path)
            ifds = level_ifds(level)
            first = next(i for i in ifds if i is not None)
            page_rank = len(ifd_segment_shape(*first))
            assert record.chunk_shape == [1] * (len(record.shape) - page_rank) + ifd_segment_shape(*first)
            assert_chunks_match_ifds(record, path.parent, ifds)
    # Warnings exactly where tifffile itself complains about the file (Leica's per-channel OME-XML names
    # channels its SizeC does not have), each one saying what tifffile said.
    logged = [" ".join(r.getMessage().split()) for r in caplog.records if r.name == "tifffile"]
    assert bool(scan.warnings) == bool(logged)
    for warning in scan.warnings:
        assert any(warning.split(": ", 1)[-1] in message for message in logged), (warning, logged)


def test_ome_corpus_channels_and_physical_sizes_follow_the_xml() -> None:
    ome_files = [*sorted(ARTIFICIAL.glob("*.ome.tif*")), RES_PYRAMID, MULTISERIES]
    assert len(ome_files) == 9
    for path in ome_files:
        scan = scan_tiff(path, "x")
        pixels = ome_pixels(ome_root(path))
        assert sorted({a.image_id for a in scan.arrays}, key=int) == [str(i) for i in range(len(pixels))]
        for record in scan.arrays:
            px = pixels[int(record.image_id)]
            names = [c.get("Name") for c in px.findall(f"{{{OME}}}Channel")]
            assert record.channel_names == (names if any(names) else None)
            assert (record.plate_id, record.well_id, record.site_id) == (None, None, None)
            sizes = {a: px.get(f"PhysicalSize{a.upper()}") for a in "xyz"}
            if not any(sizes.values()):
                assert record.scale is None and record.axis_units is None
                continue
            for axis, value in sizes.items():
                if axis in record.axes and value is not None:
                    k = record.axes.index(axis)
                    assert record.scale[k] == pytest.approx(float(value) * 2**record.level)
                    assert record.axis_units[k] == "micrometer"


def test_multiseries_ome_tiff_lists_six_images_with_their_xml_sizes() -> None:
    scan = scan_tiff(MULTISERIES, "x")
    assert [a.array_path for a in scan.arrays] == [f"{i}/0" for i in range(6)]
    for record in scan.arrays:
        assert record.shape == [4, 5, 5] and record.axes == ["c", "y", "x"] and record.dtype == "uint16"
        assert record.scale == pytest.approx([1.0, 0.6499999761581421, 0.6499999761581421])
        assert record.axis_units == [None, "micrometer", "micrometer"]
        assert record.axis_types == ["channel", "space", "space"]


def test_bioformats_subifd_pyramid_levels_follow_the_pyramid_annotation() -> None:
    scan = scan_tiff(RES_PYRAMID, "x")
    root = ome_root(RES_PYRAMID)
    pixels = ome_pixels(root)[0]
    annotation = next(a for a in root.iter(f"{{{OME}}}MapAnnotation") if "PyramidResolution" in a.get("Namespace"))
    sizes = [(int(pixels.get("SizeX")), int(pixels.get("SizeY")))]
    sizes += [tuple(int(v) for v in m.text.split()) for m in annotation.iter(f"{{{OME}}}M")]
    assert [(a.shape[1], a.shape[0]) for a in scan.arrays] == sizes
    assert [a.array_path for a in scan.arrays] == ["0/0", "0/1", "0/2", "0/3"]
    assert all(a.axes == ["y", "x", "s"] and a.shape[2] == 4 for a in scan.arrays)


def test_imagej_calibration_matches_the_bioformats_conversion_of_the_same_image() -> None:
    record = scan_tiff(CALIBRATED, "x").arrays[0]
    pixels = ome_pixels(ET.parse(CALIBRATED_OME_XML).getroot())[0]
    assert record.axes == ["z", "y", "x"]
    expected = [
        float(pixels.get("PhysicalSizeZ")),
        float(pixels.get("PhysicalSizeY")),
        float(pixels.get("PhysicalSizeX")),
    ]
    assert record.scale == pytest.approx(expected)
    assert record.axis_units == ["micrometer"] * 3


def test_imagej_hyperstack_axes_and_spacing() -> None:
    record = scan_tiff(ZCYX, "x").arrays[0]
    with tifffile.TiffFile(ZCYX) as tif:
        meta = tif.imagej_metadata
        num, den = tif.pages.first.tags["XResolution"].value
    assert record.axes == ["z", "c", "y", "x"] and record.shape == [25, 2, 50, 50]
    assert record.scale == pytest.approx([meta["spacing"], 1.0, den / num, den / num])
    assert record.axis_units == ["micrometer", None, "micrometer", "micrometer"]


def test_uncalibrated_corpus_tiffs_get_no_invented_sizes() -> None:
    # ExampleHuman says 72 dpi (inch), BBBC033 has unit-less 1/1: neither is a pixel size.
    for path in [*sorted(EXAMPLE_HUMAN.glob("*.tif")), BBBC]:
        record = scan_tiff(path, "x").arrays[0]
        assert record.scale is None and record.axis_units is None
    with tifffile.TiffFile(EXAMPLE_HUMAN / "AS_09125_050116030001_D03f00d0.tif") as tif:
        assert tif.pages.first.tags["ResolutionUnit"].value == 2


def test_vendor_file_names_give_plate_well_and_site() -> None:
    record = scan_tiff(EXAMPLE_HUMAN / "AS_09125_050116030001_D03f00d1.tif", "x").arrays[0]
    assert (record.plate_id, record.well_id, record.site_id) == ("AS_09125_050116030001", "D03", "0")


# --- layouts written with tifffile --------------------------------------------------------------------


LAYOUTS = {
    "tiled-gray": (dict(tile=(64, 64)), (300, 200), "yx"),
    "stripped-gray": (dict(rowsperstrip=50), (300, 200), "yx"),
    "tiled-rgb-contig": (dict(tile=(64, 64), photometric="rgb"), (300, 200, 3), "yxs"),
    "stripped-rgb-contig": (dict(rowsperstrip=32, photometric="rgb"), (300, 200, 3), "yxs"),
    "tiled-rgb-separate": (dict(tile=(64, 64), photometric="rgb", planarconfig="separate"), (3, 300, 200), "syx"),
    "stripped-rgb-separate": (dict(rowsperstrip=50, photometric="rgb", planarconfig="separate"), (3, 300, 200), "syx"),
    "tiled-stack-zlib": (
        dict(tile=(128, 128), compression="zlib", photometric="minisblack", metadata={"axes": "TZYX"}),
        (2, 3, 300, 200),
        "tzyx",
    ),
    "bigtiff-tiled": (dict(tile=(64, 64), bigtiff=True, compression="zlib"), (300, 200), "yx"),
}


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_tiles_and_strips_are_the_chunks(tmp_path: Path, name: str) -> None:
    kwargs, shape, axes = LAYOUTS[name]
    path = tmp_path / f"{name}.tif"
    data = (np.arange(math.prod(shape), dtype=np.uint16) % 251).reshape(shape)
    tifffile.imwrite(path, data, **kwargs)
    scan = scan_store(path)
    assert scan.format == "tiff" and len(scan.arrays) == 1
    record = scan.arrays[0]
    assert record.shape == list(shape) and record.axes == list(axes) and record.dtype == "uint16"
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff == ("bigtiff" in name)
        series = tif.series[0]
        ifds = level_ifds(series)
    lead = len(shape) - len(ifd_segment_shape(*ifds[0]))
    assert record.chunk_shape == [1] * lead + ifd_segment_shape(*ifds[0])
    assert_chunks_match_ifds(record, tmp_path, ifds)
    assert record.codecs[0] == ("adobe_deflate" if kwargs.get("compression") == "zlib" else "none")


def test_sparse_tiles_are_listed_but_not_stored(tmp_path: Path) -> None:
    path = tmp_path / "sparse.tif"
    shape, tile = (256, 320), (32, 32)
    n = (shape[0] // tile[0]) * (shape[1] // tile[1])
    written = {0, 7, n - 1}
    tiles = (np.full(tile, 9, np.uint8) if i in written else None for i in range(n))
    tifffile.imwrite(path, tiles, shape=shape, dtype=np.uint8, tile=tile, compression="zlib")
    record = scan_tiff(path, "x").arrays[0]
    with tifffile.TiffFile(path) as tif:
        _, counts = ifd_segments(path, tif.pages.first.offset)
        ifds = level_ifds(tif.series[0])
    assert {i for i, c in enumerate(counts) if c > 0} == written
    assert record.chunk_count == n and record.chunks_stored == len(written)
    assert_chunks_match_ifds(record, tmp_path, ifds)


def subifd_ifds(path: Path, level: int) -> list[tuple[Path, int]]:
    """The IFDs of pyramid level ``level``: that SubIFD of every top-level page, from the SubIFDs tags."""
    with tifffile.TiffFile(path) as tif:
        return [(path, page.tags["SubIFDs"].value[level - 1]) for page in tif.pages]


@pytest.mark.parametrize("axes_metadata", [True, False])
@pytest.mark.parametrize("width", [512, 384])  # 512: whole tiles, so every level's data is contiguous
def test_subifd_pyramid_is_one_image_with_levels(tmp_path: Path, axes_metadata: bool, width: int) -> None:
    path = tmp_path / "pyramid.tif"
    metadata = {"axes": "CYX"} if axes_metadata else {}
    with tifffile.TiffWriter(path) as tw:
        tw.write(np.zeros((2, 512, width), np.uint8), tile=(128, 128), subifds=2, metadata=metadata)
        tw.write(np.zeros((2, 256, width // 2), np.uint8), tile=(128, 128), subfiletype=1)
        tw.write(np.zeros((2, 128, width // 4), np.uint8), tile=(128, 128), subfiletype=1)
    scan = scan_tiff(path, "x")
    assert [a.array_path for a in scan.arrays] == ["0/0", "0/1", "0/2"]
    assert [a.shape for a in scan.arrays] == [[2, 512, width], [2, 256, width // 2], [2, 128, width // 4]]
    axes = ["c", "y", "x"] if axes_metadata else ["q", "y", "x"]
    assert all(a.axes == axes for a in scan.arrays)
    with tifffile.TiffFile(path) as tif:
        assert_chunks_match_ifds(scan.arrays[0], tmp_path, level_ifds(tif.series[0]))
    for level in (1, 2):
        assert_chunks_match_ifds(scan.arrays[level], tmp_path, subifd_ifds(path, level))


def test_subifds_without_the_reduced_flag_are_still_levels(tmp_path: Path) -> None:
    path = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(np.zeros((512, 512), np.uint16), tile=(128, 128), subifds=1)
        tw.write(np.zeros((256, 256), np.uint16), tile=(128, 128))
    scan = scan_tiff(path, "x")
    assert [(a.array_path, a.shape) for a in scan.arrays] == [("0/0", [512, 512]), ("0/1", [256, 256])]
    assert_chunks_match_ifds(scan.arrays[1], tmp_path, subifd_ifds(path, 1))


def test_multipage_reduced_pyramid(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(np.zeros((512, 512), np.uint8), tile=(64, 64), resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
        tw.write(np.zeros((256, 256), np.uint8), tile=(64, 64), subfiletype=1)
        tw.write(np.zeros((128, 128), np.uint8), tile=(64, 64), subfiletype=1)
    scan = scan_tiff(path, "x")
    assert [a.shape for a in scan.arrays] == [[512, 512], [256, 256], [128, 128]]
    with tifffile.TiffFile(path) as tif:
        offsets = [p.offset for p in tif.pages]
    for level, record in enumerate(scan.arrays):
        assert record.level == level
        assert record.scale == pytest.approx([0.5 * 2**level] * 2)  # 2e4 px/cm = 0.5 µm
        assert_chunks_match_ifds(record, tmp_path, [(path, offsets[level])])


def test_ome_pyramid_physical_sizes_scale_per_level(tmp_path: Path) -> None:
    path = tmp_path / "pyr.ome.tif"
    meta = {"axes": "CYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.4, "Channel": {"Name": ["DAPI", "GFP"]}}
    with tifffile.TiffWriter(path) as tw:
        tw.write(np.zeros((2, 515, 301), np.uint16), tile=(64, 64), subifds=2, metadata=meta)
        tw.write(np.zeros((2, 257, 150), np.uint16), tile=(64, 64), subfiletype=1)
        tw.write(np.zeros((2, 128, 75), np.uint16), tile=(64, 64), subfiletype=1)
    scan = scan_tiff(path, "x")
    assert scan.format == "ome-tiff"
    for level, record in enumerate(scan.arrays):
        assert record.channel_names == ["DAPI", "GFP"]
        assert record.scale == pytest.approx([1.0, 0.4 * 2**level, 0.25 * 2**level])
        assert record.axis_units == [None, "micrometer", "micrometer"]
    for level in (1, 2):
        assert_chunks_match_ifds(scan.arrays[level], tmp_path, subifd_ifds(path, level))


def test_imagej_hyperstack_with_calibration(tmp_path: Path) -> None:
    path = tmp_path / "ij.tif"
    data = np.zeros((3, 4, 2, 40, 50), np.uint8)  # TZCYX
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.325, 1 / 0.325),
        metadata={"axes": "TZCYX", "spacing": 1.5, "unit": "um"},
    )
    record = scan_tiff(path, "x").arrays[0]
    assert record.axes == ["t", "z", "c", "y", "x"] and record.shape == [3, 4, 2, 40, 50]
    assert record.scale == pytest.approx([1.0, 1.5, 1.0, 0.325, 0.325])
    assert record.axis_units == [None, "micrometer", None, "micrometer", "micrometer"]
    assert record.chunk_shape == [1, 1, 1, 40, 50]
    with tifffile.TiffFile(path) as tif:
        assert_chunks_match_ifds(record, tmp_path, level_ifds(tif.series[0]))


@pytest.mark.parametrize(
    ("unit", "resolution", "expected"),
    [("CENTIMETER", 40000.0, 0.25), ("MILLIMETER", 2.0, 500.0), ("INCH", 72.0, None), ("NONE", 3.0, None)],
)
def test_resolution_unit_gives_a_size_only_when_metric(
    tmp_path: Path, unit: str, resolution: float, expected: float | None
) -> None:
    path = tmp_path / "res.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), resolution=(resolution, resolution), resolutionunit=unit)
    record = scan_tiff(path, "x").arrays[0]
    if expected is None:
        assert record.scale is None
    else:
        assert record.scale == pytest.approx([expected, expected])
        assert record.axis_units == ["micrometer", "micrometer"]


def test_truncated_contiguous_stack_lists_every_plane(tmp_path: Path) -> None:
    # One IFD for the whole stack (tifffile truncate=True, like ImageJ stacks over 4 GB).
    path = tmp_path / "trunc.tif"
    tifffile.imwrite(path, np.zeros((5, 32, 48), np.uint16), truncate=True, metadata={"axes": "ZYX"})
    record = scan_tiff(path, "x").arrays[0]
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1
        first, counts = ifd_segments(path, tif.pages.first.offset)
    table = chunk_table(record)
    assert record.chunk_count == 5 and record.chunks_stored == 5
    assert table.column("byte_offset").to_pylist() == [first[0] + k * 32 * 48 * 2 for k in range(5)]
    assert table.column("byte_length").to_pylist() == counts * 5
    assert first[0] + 5 * 32 * 48 * 2 == path.stat().st_size


def test_no_per_tile_python_work_for_a_large_grid(tmp_path: Path) -> None:
    path = tmp_path / "big.tif"
    shape, tile = (2048, 4096), (16, 16)
    n = (shape[0] // 16) * (shape[1] // 16)
    tiles = (np.ones(tile, np.uint8) if i == 0 else None for i in range(n))
    tifffile.imwrite(path, tiles, shape=shape, dtype=np.uint8, tile=tile)
    record = scan_tiff(path, "x").arrays[0]
    assert record.chunk_count == n == 32768 and record.chunks_stored == 1
    assert isinstance(record.chunks.offsets, np.ndarray) and record.chunks.offsets.dtype == np.int64


# --- OME-XML written by hand: plates and multi-file sets --------------------------------------------


UA, UB, UC = "urn:uuid:0000-aaaa", "urn:uuid:0000-bbbb", "urn:uuid:0000-cccc"


def tiff_data(file: str, uuid: str, ifd: int, z: int, count: int) -> str:
    return (
        f'<TiffData IFD="{ifd}" FirstZ="{z}" FirstC="0" FirstT="0" PlaneCount="{count}">'
        f'<UUID FileName="{file}">{uuid}</UUID></TiffData>'
    )


def image_xml(index: int, name: str, size: tuple[int, int, int, int], tds: list[str], extra: str = "") -> str:
    x, y, z, c = size
    names = [f' Name="ch{k}"' if index == 0 else "" for k in range(c)]  # only image 0 names its channels
    channels = "".join(f'<Channel ID="Channel:{index}:{k}" SamplesPerPixel="1"{names[k]}/>' for k in range(c))
    return (
        f'<Image ID="Image:{index}" Name="{name}"><Pixels ID="Pixels:{index}" DimensionOrder="XYCZT" '
        f'Type="uint16" SizeX="{x}" SizeY="{y}" SizeZ="{z}" SizeC="{c}" SizeT="1" {extra}>'
        f"{channels}{''.join(tds)}</Pixels></Image>"
    )


def plate_xml(wells: dict[tuple[int, int], list[int]]) -> str:
    """A plate named "HCS plate 7" whose wells (0-based row, column) hold the given images, in order."""
    body = ""
    for w, ((row, column), images) in enumerate(wells.items()):
        samples = "".join(
            f'<WellSample ID="WellSample:{w}:{k}" Index="{10 * w + k}"><ImageRef ID="Image:{i}"/></WellSample>'
            for k, i in enumerate(images)
        )
        body += f'<Well ID="Well:{w}" Row="{row}" Column="{column}">{samples}</Well>'
    return f'<Plate ID="Plate:1" Name="HCS plate 7" Rows="8" Columns="12">{body}</Plate>'


def ome_doc(uuid: str, body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="{OME}" UUID="{uuid}">{body}</OME>'


def write_pages(path: Path, description: str, stacks: list[np.ndarray]) -> None:
    with tifffile.TiffWriter(path) as tw:
        for k, stack in enumerate(stacks):
            tw.write(
                stack,
                description=description if k == 0 else None,
                metadata=None,
                photometric="minisblack",
                tile=(16, 16),
            )


def test_ome_plate_gives_plate_well_and_site(tmp_path: Path) -> None:
    path = tmp_path / "plate.ome.tif"
    f = path.name
    body = "".join(
        image_xml(i, f"field {i}", (32, 16, 1, 2), [tiff_data(f, UA, 2 * i, 0, 2)], 'PhysicalSizeX="0.5"')
        for i in range(3)
    )
    plate = plate_xml({(1, 2): [0, 1], (7, 11): [2]})
    write_pages(path, ome_doc(UA, body + plate), [np.zeros((2, 16, 32), np.uint16)] * 3)
    scan = scan_tiff(path, "x")
    assert scan.format == "ome-tiff"
    assert [(a.image_id, a.plate_id, a.well_id, a.site_id) for a in scan.arrays] == [
        ("0", "HCS plate 7", "B03", "0"),
        ("1", "HCS plate 7", "B03", "1"),
        ("2", "HCS plate 7", "H12", "0"),
    ]
    assert scan.arrays[0].channel_names == ["ch0", "ch1"] and scan.arrays[1].channel_names is None
    assert scan.arrays[2].scale == [1.0, 1.0, 0.5] and scan.arrays[2].axis_units == [None, None, "micrometer"]
    with tifffile.TiffFile(path) as tif:
        for record, series in zip(scan.arrays, tif.series, strict=True):
            assert_chunks_match_ifds(record, tmp_path, level_ifds(series))


def write_multifile(folder: Path, companion: bool) -> dict[str, Path]:
    """Image 0 (Z=3, C=2) spread over a.ome.tif (z 0-1) and b.ome.tif (z 2); image 1 in b.ome.tif only."""
    folder.mkdir(parents=True, exist_ok=True)
    a, b = "set_a.ome.tif", "set_b.ome.tif"
    body = (
        image_xml(
            0,
            "stack",
            (32, 24, 3, 2),
            [tiff_data(a, UA, 0, 0, 4), tiff_data(b, UB, 0, 2, 2)],
            'PhysicalSizeX="0.5" PhysicalSizeY="0.5" PhysicalSizeZ="2" PhysicalSizeZUnit="&#181;m"',
        )
        + image_xml(1, "small", (16, 16, 1, 1), [tiff_data(b, UB, 2, 0, 1)])
        + plate_xml({(1, 2): [0, 1]})
    )
    stack_a = np.arange(4 * 24 * 32, dtype=np.uint16).reshape(4, 24, 32)
    stack_b = [np.ones((2, 24, 32), np.uint16), np.ones((16, 16), np.uint16)]
    paths = {"a": folder / a, "b": folder / b}
    if companion:
        paths["companion"] = folder / "set.companion.ome"
        paths["companion"].write_text(ome_doc(UC, body), encoding="utf-8")
        only = '<BinaryOnly MetadataFile="set.companion.ome" UUID="' + UC + '"/>'
        write_pages(paths["a"], ome_doc(UA, only), [stack_a])
        write_pages(paths["b"], ome_doc(UB, only), stack_b)
    else:
        write_pages(paths["a"], ome_doc(UA, body), [stack_a])
        write_pages(paths["b"], ome_doc(UB, body), stack_b)
    return paths


def ome_planes(path: Path, image: int) -> list[tuple[Path, int] | None]:
    """IFDs of an image's planes, from its TiffData elements (file + IFD index), in plane order."""
    root = ET.parse(path).getroot() if path.suffix == ".ome" else ome_root(path)
    pixels = ome_pixels(root)[image]
    n = int(pixels.get("SizeZ")) * int(pixels.get("SizeC")) * int(pixels.get("SizeT"))
    planes: list[tuple[Path, int] | None] = [None] * n
    for td in pixels.findall(f"{{{OME}}}TiffData"):
        file = path.parent / td.find(f"{{{OME}}}UUID").get("FileName")
        first = int(td.get("FirstZ")) * int(pixels.get("SizeC")) + int(td.get("FirstC"))
        if not file.exists():
            continue
        with tifffile.TiffFile(file) as tif:
            for k in range(int(td.get("PlaneCount"))):
                planes[first + k] = (file, tif.pages[int(td.get("IFD")) + k].offset)
    return planes


def assert_multifile_scan(scan: StoreScan, store: Path, xml_source: Path) -> None:
    assert scan.format == "ome-tiff"
    assert [(a.array_path, a.shape) for a in scan.arrays] == [("0/0", [3, 2, 24, 32]), ("1/0", [16, 16])]
    stack, small = scan.arrays
    assert stack.axes == ["z", "c", "y", "x"]
    assert stack.channel_names == ["ch0", "ch1"]
    assert stack.scale == pytest.approx([2.0, 1.0, 0.5, 0.5])
    assert stack.axis_units == ["micrometer", None, "micrometer", "micrometer"]
    assert [(a.plate_id, a.well_id, a.site_id) for a in scan.arrays] == [
        ("HCS plate 7", "B03", "0"),
        ("HCS plate 7", "B03", "1"),
    ]
    assert set(chunk_table(stack).column("storage_key").to_pylist()) == {"set_a.ome.tif", "set_b.ome.tif"}
    assert_chunks_match_ifds(stack, store.parent, ome_planes(xml_source, 0))
    assert_chunks_match_ifds(small, store.parent, ome_planes(xml_source, 1))


def test_multifile_ome_tiff_without_companion_is_one_store(tmp_path: Path) -> None:
    paths = write_multifile(tmp_path / "plates" / "run1", companion=False)
    a, b = paths["a"], paths["b"]
    assert tiff_store_members(a) == tiff_store_members(b) == [a, b]
    assert tiff_store_master(a) == tiff_store_master(b) == a
    assert list(iter_store_paths(tmp_path)) == [(a, "tiff")]
    assert_multifile_scan(scan_store(a), a, a)
    # The other file names the same set: scanned directly it gives the same images, keyed by file.
    assert_multifile_scan(scan_store(b), b, b)

    fingerprint, count, total, _ = fingerprint_store(a)
    assert (count, total) == (2, a.stat().st_size + b.stat().st_size)
    os.utime(b, ns=(b.stat().st_atime_ns, b.stat().st_mtime_ns + 10**9))
    assert fingerprint_store(a)[0] != fingerprint
    [state] = discover_stores(tmp_path)
    assert state.dataset_id == "plates/run1/set_a.ome.tif" and state.file_count == 2


def test_multifile_ome_tiff_with_companion(tmp_path: Path) -> None:
    paths = write_multifile(tmp_path / "run2", companion=True)
    companion, a, b = paths["companion"], paths["a"], paths["b"]
    assert detect_format(companion) == "tiff"
    for member in (companion, a, b):
        assert tiff_store_master(member) == companion
        assert tiff_store_members(member) == [companion, a, b]
    assert list(iter_store_paths(tmp_path)) == [(companion, "tiff")]
    assert fingerprint_store(companion)[1] == 3
    assert_multifile_scan(scan_store(companion), companion, companion)
    # A BinaryOnly member scanned on its own reads its metadata from the companion it points to.
    assert_multifile_scan(scan_tiff(b, "b"), b, companion)


def test_missing_member_planes_are_not_stored_and_noticed(tmp_path: Path) -> None:
    paths = write_multifile(tmp_path / "run3", companion=True)
    companion, b = paths["companion"], paths["b"]
    saved = b.read_bytes()
    b.unlink()
    assert list(iter_store_paths(tmp_path)) == [(companion, "tiff")]
    before = fingerprint_store(companion)
    scan = scan_store(companion)
    stack = scan.arrays[0]
    assert stack.chunk_count == 24 and stack.chunks_stored == 16
    assert [a.array_path for a in scan.arrays] == ["0/0"]
    assert any("set_b.ome.tif" in w and "missing" in w for w in scan.warnings)
    assert_chunks_match_ifds(stack, companion.parent, ome_planes(companion, 0))
    b.write_bytes(saved)
    after = fingerprint_store(companion)
    assert after[0] != before[0] and (before[1], after[1]) == (2, 3)


def test_member_whose_master_is_not_discoverable_stays_a_store(tmp_path: Path) -> None:
    paths = write_multifile(tmp_path / "set", companion=False)
    root = tmp_path / "only_b"
    root.mkdir()
    moved = root / paths["b"].name
    shutil.move(paths["b"], moved)
    # set_b names set_a, which sorts first and carries the full XML, but lies outside this root.
    assert list(iter_store_paths(root)) == [(moved, "tiff")]
    scan = scan_store(moved)
    assert [a.array_path for a in scan.arrays] == ["0/0", "1/0"]
    assert scan.arrays[0].chunks_stored == 8


# --- broken files ---------------------------------------------------------------------------------------


def tiled(path: Path) -> Path:
    tifffile.imwrite(
        path,
        np.arange(4 * 64 * 64, dtype=np.uint16).reshape(4, 64, 64),
        tile=(32, 32),
        compression="zlib",
        photometric="minisblack",
    )
    return path


def assert_one_line_error(path: Path, *fragments: str) -> str:
    with pytest.raises(StoreError) as info:
        scan_store(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_unknown_compression_is_a_store_error(tmp_path: Path) -> None:
    path = tiled(tmp_path / "odd.tif")
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages.first.tags["Compression"]
        assert tag.value == 8
        where = tag.valueoffset
    data = bytearray(path.read_bytes())
    data[where : where + 2] = (34999).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    assert_one_line_error(path, "unknown TIFF compression 34999")


def test_unsupported_sample_format_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    with tifffile.TiffFile(path) as tif:
        where = tif.pages.first.tags["BitsPerSample"].valueoffset
    data = bytearray(path.read_bytes())
    data[where : where + 2] = (48).to_bytes(2, "little")  # 48-bit unsigned integers: no numpy dtype
    path.write_bytes(bytes(data))
    assert_one_line_error(path, "unsupported TIFF sample format 1 with 48 bits per sample")


@pytest.mark.parametrize("keep", [3, 6, 40, 300, -20])
def test_truncated_tiff_is_a_store_error(tmp_path: Path, keep: int) -> None:
    data = tiled(tmp_path / "whole.tif").read_bytes()
    path = tmp_path / "cut.tif"
    path.write_bytes(data[:keep])
    assert_one_line_error(path)


def test_truncated_imagej_stack_is_a_store_error(tmp_path: Path) -> None:
    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, np.zeros((4, 64, 64), np.uint8), imagej=True)
    with tifffile.TiffFile(whole) as tif:
        last_ifd = tif.pages[3].offset
    for name, keep in (("in_ifd.tif", last_ifd + 10), ("in_data.tif", 1000)):
        path = tmp_path / name
        path.write_bytes(whole.read_bytes()[:keep])
        assert_one_line_error(path, "truncated")


@pytest.mark.parametrize("content", [b"", b"not a tiff at all", b"II*\x00\xff\xff\xff\xff"])
def test_unreadable_file_is_a_store_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    assert_one_line_error(path)


def test_broken_companion_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "x.companion.ome"
    path.write_text("<OME><Image", encoding="utf-8")
    assert_one_line_error(path, "invalid OME-XML")
    path.write_text(ome_doc(UC, image_xml(0, "i", (8, 8, 1, 1), [tiff_data("gone.ome.tif", UA, 0, 0, 1)])))
    assert_one_line_error(path, "none of them exists")


def test_broken_tiffs_fail_alone(tmp_path: Path) -> None:
    shutil.copyfile(ZCYX, tmp_path / "good.tif")
    tiled(tmp_path / "also_good.tif")
    (tmp_path / "bad_header.tif").write_bytes(b"MM\x00*\x00")
    (tmp_path / "cut.tif").write_bytes(tiled(tmp_path / "src.tif").read_bytes()[:500])
    (tmp_path / "src.tif").unlink()
    outcomes = {s.dataset_id: scan_one(s) for s in discover_stores(tmp_path)}
    assert sorted(outcomes) == ["also_good.tif", "bad_header.tif", "cut.tif", "good.tif"]
    for name in ("good.tif", "also_good.tif"):
        assert outcomes[name].status == "ok" and outcomes[name].error is None
    for name in ("bad_header.tif", "cut.tif"):
        error = outcomes[name].error
        assert outcomes[name].status == "failed" and "unexpected" not in error and "\n" not in error
        assert error.startswith(str(tmp_path / name))
