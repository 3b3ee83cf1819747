"""N5 scanning on real containers: the n5-universe corpus, and containers with blocks written here byte by byte.

Expected values are read independently of the scanner: shapes, block sizes and codecs from the JSON with
``json.load``, physical placement from what n5-universe's own tests assert for the same containers
(``MetadataTests``, ``NgffTests``, ``AxisMetadataTests``), chunk keys and sizes from the files on disk.
"""

from __future__ import annotations

import gzip
import itertools
import json
import math
import os
import shutil
import stat
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from bioimage_pipeline.discovery import discover_stores
from bioimage_pipeline.errors import StoreError
from bioimage_pipeline.formats import detect_format, scan_store
from bioimage_pipeline.ingest import scan_one
from bioimage_pipeline.model import ArrayRecord, StoreScan
from bioimage_pipeline.tables import chunk_index_batches
from bioimage_pipeline_tests.corpus import CORPUS

RESOURCES = CORPUS / "saalfeldlab+n5-universe" / "src" / "test" / "resources"
NM, MM, UM = "nanometer", "millimeter", "micrometer"


# --- helpers: writing N5 by hand, reading it back independently -------------------------------------


def copy_writable(src: Path, dst: Path) -> Path:
    """Copy a corpus folder (read-only files) so the test can add to it."""
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dst


def write_attrs(directory: Path, attrs: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "attributes.json"
    path.write_text(json.dumps(attrs))
    return path


def write_array(directory: Path, dims_f: list[int], block_f: list[int], dtype: str = "uint16", **extra: Any) -> Path:
    return write_attrs(
        directory,
        {"dimensions": dims_f, "blockSize": block_f, "dataType": dtype, "compression": {"type": "gzip"}, **extra},
    )


def write_block(array_dir: Path, grid_f: tuple[int, ...], dims_f: list[int], block_f: list[int]) -> Path:
    """One N5 block file: big-endian header (mode, ndim, block dims) + gzip-compressed big-endian uint16."""
    actual = [min(b, d - g * b) for g, d, b in zip(grid_f, dims_f, block_f, strict=True)]
    header = struct.pack(">HH", 0, len(actual)) + struct.pack(f">{len(actual)}I", *actual)
    values = np.arange(math.prod(actual), dtype=">u2") * (sum(grid_f) + 1)
    path = array_dir.joinpath(*(str(g) for g in grid_f))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + gzip.compress(values.tobytes(), mtime=0))
    return path


def independent_arrays(container: Path) -> dict[str, dict[str, Any]]:
    """Every N5 array of a container straight from its attributes.json files: path → C-order facts."""
    found = {}
    for directory, _, files in os.walk(container):
        if "attributes.json" not in files:
            continue
        attrs = json.loads((Path(directory) / "attributes.json").read_text())
        if "dimensions" not in attrs or "dataType" not in attrs:
            continue
        rel = Path(directory).relative_to(container).as_posix()
        dims, block = attrs["dimensions"][::-1], attrs["blockSize"][::-1]
        found["/" if rel == "." else rel] = {
            "shape": dims,
            "chunk_shape": block,
            "dtype": attrs["dataType"],
            "codecs": [attrs["compression"]["type"]],
            "chunk_count": math.prod(-(-d // b) for d, b in zip(dims, block, strict=True)),
        }
    return found


def chunk_rows(scan: StoreScan, array: ArrayRecord, max_rows: int = 7) -> list[dict[str, Any]]:
    batches = list(chunk_index_batches(scan.dataset_id, array, "fp", max_rows))
    assert all(b.num_rows <= max_rows for b in batches)
    return pa.Table.from_batches(batches).to_pylist() if batches else []


def by_path(scan: StoreScan) -> dict[str, ArrayRecord]:
    return {a.array_path: a for a in scan.arrays}


# --- the corpus --------------------------------------------------------------------------------------

# (image_id, level, axes, scale, translation, units) per array, C order. Values are the ones n5-universe's
# tests assert (MetadataTests: cosem scale 64 / offset 28, n5v_pr-ds scale 3.0 / offset 0.75, n5v_ds 2.0 /
# 0.5, res 1.5, resOff offset 12.3; AxisMetadataTests: affine diagonal x=2, y=3, z=4 in µm), or the COSEM
# transform as written (already C order).
ZYX = ["z", "y", "x"]
EXPECTED_GEOMETRY: dict[str, dict[str, tuple]] = {
    "test.n5": {
        "c0/s0": ("c0", 0, ["x", "y", "z"], [7, 11, 13], [2, 3, 5], [MM] * 3),
        "c0/s1": ("c0", 1, ["x", "y", "z"], [14, 22, 26], [3, 4.5, 7.5], [MM] * 3),
        "cosem": ("cosem", 0, ZYX, [64] * 3, [28] * 3, [NM] * 3),
        "cosem_ms/s0": ("cosem_ms", 0, ZYX, [32] * 3, [21] * 3, [NM] * 3),
        "cosem_ms/s1": ("cosem_ms", 1, ZYX, [64] * 3, [28] * 3, [NM] * 3),
        "cosem_ms/s2": ("cosem_ms", 2, ZYX, [128] * 3, [35] * 3, [NM] * 3),
        "n5v_ds": ("n5v_ds", 0, ZYX, [2] * 3, [0.5] * 3, None),
        "n5v_pr": ("n5v_pr", 0, ZYX, [1.5] * 3, [0] * 3, [MM] * 3),
        "n5v_pr-ds": ("n5v_pr-ds", 0, ZYX, [3] * 3, [0.75] * 3, [MM] * 3),
        "n5v_pra": ("n5v_pra", 0, ZYX, [1.5] * 3, [0] * 3, None),
        "n5v_pra-ds": ("n5v_pra-ds", 0, ZYX, [3] * 3, [0.75] * 3, None),
        "others/res": ("others/res", 0, ZYX, [1.5] * 3, [0] * 3, None),
        "others/resOff": ("others/resOff", 0, ZYX, [1.5] * 3, [12.3] * 3, None),
    },
    "canonical.n5": {
        "affine": ("affine", 0, ZYX, [4, 3, 2], [0, 0, 0], [UM] * 3),
    },
    "root_dataset.n5": {
        "s0": ("/", 0, ZYX, [32] * 3, [21] * 3, [NM] * 3),
        "s1": ("/", 1, ZYX, [64] * 3, [28] * 3, [NM] * 3),
        "s2": ("/", 2, ZYX, [128] * 3, [35] * 3, [NM] * 3),
    },
    "translation_examples.n5": {
        f"scattered_multiscales/level{i}": (f"scattered_multiscales/level{i}", 0, ZYX, None, None, None)
        for i in range(3)
    },
}


@pytest.mark.parametrize("name", sorted(EXPECTED_GEOMETRY))
def test_corpus_container_matches_its_json(name: str) -> None:
    container = RESOURCES / name
    assert detect_format(container) == "n5"
    scan = scan_store(container, name)
    assert (scan.format, scan.dataset_id) == ("n5", name)
    truth = independent_arrays(container)
    arrays = by_path(scan)
    assert sorted(arrays) == sorted(truth) == sorted(EXPECTED_GEOMETRY[name])
    for path, facts in truth.items():
        a = arrays[path]
        assert a.shape == facts["shape"], path
        assert a.chunk_shape == facts["chunk_shape"], path
        assert a.dtype == facts["dtype"], path
        assert a.codecs == facts["codecs"], path
        assert a.chunk_count == facts["chunk_count"], path
        assert (a.chunks_stored, a.stored_bytes) == (0, 0), path  # metadata-only fixtures
        assert (a.storage_variant, a.chunk_key_encoding, a.order) == ("n5", "n5", "C")
        assert a.uri == str(container / path)
        assert (a.plate_id, a.well_id, a.site_id, a.channel_names, a.kind) == (None, None, None, None, "image")
        image_id, level, axes, scale, translation, units = EXPECTED_GEOMETRY[name][path]
        assert (a.image_id, a.level, a.axes) == (image_id, level, axes), path
        assert a.scale == (None if scale is None else pytest.approx(scale)), path
        assert a.translation == (None if translation is None else pytest.approx(translation)), path
        assert a.axis_units == units, path
        assert a.axis_types == ["space"] * 3
    # Levels of one image come out together, in pyramid order.
    runs = [image_id for image_id, _ in itertools.groupby(a.image_id for a in scan.arrays)]
    assert len(runs) == len(set(runs))
    for image_id in runs:
        levels = [a.level for a in scan.arrays if a.image_id == image_id]
        assert levels == sorted(levels)


def test_corpus_canonical_multiscale_naming_a_missing_dataset_is_a_warning() -> None:
    scan = scan_store(RESOURCES / "canonical.n5")
    assert scan.warnings == ["multiscaleAffine/a: level 0 of image multiscaleAffine is not an N5 array"]
    # Groups with metadata but no dataset header (axes/xyz nests it under "attributes") are not arrays.
    assert "axes/xyz" not in by_path(scan)


def test_corpus_metadata_only_container_without_arrays_is_a_one_line_error() -> None:
    container = RESOURCES / "ngff.n5"
    assert detect_format(container) == "n5"
    with pytest.raises(StoreError) as err:
        scan_store(container)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{container}: N5 container holds no arrays")
    assert "ngff_grpAttributes/s0: level 0 of image ngff_grpAttributes is not an N5 array" in message


def test_corpus_transform_snippets_are_not_a_store() -> None:
    folder = RESOURCES / "transforms"
    assert detect_format(folder) is None
    with pytest.raises(StoreError, match="not a recognised image store"):
        scan_store(folder)


def test_cellmap_group_metadata_places_levels_that_carry_none(tmp_path: Path) -> None:
    """ngff.n5's group (COSEM multiscales + neuroglancer axes/units/scales/pixelResolution) over real arrays."""
    container = tmp_path / "ngff.n5"
    copy_writable(RESOURCES / "ngff.n5", container)
    group = container / "ngff_grpAttributes"
    attrs = json.loads((group / "attributes.json").read_text())
    datasets = attrs["multiscales"][0]["datasets"]
    for i in range(6):
        write_array(group / f"s{i}", [64 >> i or 1, 48 >> i or 1, 20 >> i or 1], [8, 8, 8], "uint8")
    scan = scan_store(container)
    assert scan.warnings == []
    assert [(a.image_id, a.array_path, a.level) for a in scan.arrays] == [
        ("ngff_grpAttributes", f"ngff_grpAttributes/s{i}", i) for i in range(6)
    ]
    for a, ds in zip(scan.arrays, datasets, strict=True):
        assert a.axes == ds["transform"]["axes"] == ZYX
        assert a.scale == pytest.approx(ds["transform"]["scale"])
        assert a.translation == pytest.approx(ds["transform"]["translate"])
        assert a.axis_units == [NM] * 3
    # NgffTests.testNgffGroupAttributeParsing: the x scale doubles from 4 nm at s0.
    assert [a.scale[2] for a in scan.arrays] == [4.0 * 2**i for i in range(6)]


def test_scattered_multiscale_levels_are_one_image_in_metadata_order(tmp_path: Path) -> None:
    container = copy_writable(RESOURCES / "translation_examples.n5", tmp_path / "translation_examples.n5")
    paths = ["../scattered_multiscales/level0", "../scattered_multiscales/level1", "../nowhere"]
    paths.insert(2, "../scattered_multiscales/level2")
    write_attrs(
        container / "pyramid",
        {
            "multiscales": [
                {
                    "datasets": [
                        {
                            "path": p,
                            "transform": {
                                "axes": ZYX,
                                "scale": [2.0**i * 8, 2.0**i * 4, 2.0**i * 4],
                                "translate": [0.0, 0.0, 0.0],
                                "units": ["nm"] * 3,
                            },
                        }
                        for i, p in enumerate(paths)
                    ]
                }
            ]
        },
    )
    scan = scan_store(container)
    assert [(a.image_id, a.array_path, a.level) for a in scan.arrays] == [
        ("pyramid", f"scattered_multiscales/level{i}", i) for i in range(3)
    ]
    assert [a.scale for a in scan.arrays] == [[8.0, 4.0, 4.0], [16.0, 8.0, 8.0], [32.0, 16.0, 16.0]]
    assert [a.shape for a in scan.arrays] == [[129, 256, 256], [65, 128, 128], [33, 64, 64]]
    assert scan.warnings == ["nowhere: level 3 of image pyramid is not an N5 array"]


def test_multiscale_metadata_naming_only_missing_arrays_falls_back_to_level_names(tmp_path: Path) -> None:
    container = tmp_path / "renamed.n5"
    write_attrs(container, {"n5": "2.5.1"})
    write_attrs(container / "img", {"multiscales": [{"datasets": [{"path": "0"}, {"path": "1"}]}]})
    write_array(container / "img" / "s0", [16, 16], [8, 8], pixelResolution=[2, 3])
    write_array(container / "img" / "s1", [8, 8], [8, 8], pixelResolution=[2, 3], downsamplingFactors=[2, 2])
    scan = scan_store(container)
    assert [(a.image_id, a.array_path, a.level, a.scale) for a in scan.arrays] == [
        ("img", "img/s0", 0, [3.0, 2.0]),
        ("img", "img/s1", 1, [6.0, 4.0]),
    ]
    assert scan.warnings == [
        "img/0: level 0 of image img is not an N5 array",
        "img/1: level 1 of image img is not an N5 array",
    ]


# --- multiscale dialects written here ---------------------------------------------------------------


def test_n5_viewer_channels_use_root_resolution_and_their_own_overrides(tmp_path: Path) -> None:
    container = tmp_path / "n5v.n5"
    write_attrs(container, {"n5": "2.5.1", "pixelResolution": {"unit": "um", "dimensions": [0.1, 0.2, 0.5]}})
    factors = [[1, 1, 1], [2, 2, 1], [4, 4, 2]]
    for c in ("c0", "c1"):
        for level, f in enumerate(factors):
            extra = {} if level == 0 else {"downsamplingFactors": f}
            write_array(container / c / f"s{level}", [40 // f[0], 30 // f[1], 10 // f[2]], [16, 16, 8], **extra)
    write_attrs(container / "c1", {"pixelResolution": {"unit": "nm", "dimensions": [100, 200, 500]}})
    scan = scan_store(container)
    assert scan.warnings == []
    assert [(a.image_id, a.level) for a in scan.arrays] == [
        ("c0", 0),
        ("c0", 1),
        ("c0", 2),
        ("c1", 0),
        ("c1", 1),
        ("c1", 2),
    ]
    c0 = [a for a in scan.arrays if a.image_id == "c0"]
    assert [a.scale for a in c0] == [pytest.approx(s) for s in ([0.5, 0.2, 0.1], [0.5, 0.4, 0.2], [1.0, 0.8, 0.4])]
    assert [a.translation for a in c0] == [pytest.approx(t) for t in ([0, 0, 0], [0, 0.1, 0.05], [0.25, 0.3, 0.15])]
    assert {tuple(a.axis_units) for a in c0} == {(UM, UM, UM)}
    c1 = [a for a in scan.arrays if a.image_id == "c1"]
    assert c1[2].scale == pytest.approx([1000, 800, 400]) and c1[2].axis_units == [NM] * 3
    assert c0[1].shape == [10, 15, 20]


def test_neuroglancer_group_scales_resolution_units_and_coordinate_arrays(tmp_path: Path) -> None:
    container = tmp_path / "ng.n5"
    write_attrs(container, {"n5": "2.5.1"})
    write_attrs(
        container / "em",
        {
            "axes": ["x", "y", "z"],
            "units": ["nm", "nm", "nm"],
            "resolution": [4, 4, 40],
            "scales": [[1, 1, 1], [2, 2, 1], [4, 4, 1]],
        },
    )
    for i, f in enumerate([[1, 1, 1], [2, 2, 1], [4, 4, 1]]):
        write_array(container / "em" / f"s{i}", [64 // f[0], 64 // f[1], 16], [32, 32, 8], "uint8")
    write_array(
        container / "cells",
        [20, 10, 2],
        [20, 10, 1],
        "float32",
        axes=["x", "y", "c"],
        coordinateArrays={"c": ["DAPI", "GFP"]},
    )
    arrays = by_path(scan_store(container))
    em1 = arrays["em/s1"]
    assert (em1.image_id, em1.level, em1.axes) == ("em", 1, ZYX)
    assert em1.scale == pytest.approx([40, 8, 8])
    assert em1.translation == pytest.approx([0, 2, 2])
    assert em1.axis_units == [NM] * 3
    assert arrays["em/s2"].scale == pytest.approx([40, 16, 16])
    cells = arrays["cells"]
    assert cells.axes == ["c", "y", "x"]
    assert cells.axis_types == ["channel", "space", "space"]
    assert cells.channel_names == ["DAPI", "GFP"]
    assert (cells.shape, cells.chunk_shape, cells.dtype) == ([2, 10, 20], [1, 10, 20], "float32")
    assert cells.scale is None


def test_bigdataviewer_setup_factors_reach_the_timepoint_levels(tmp_path: Path) -> None:
    container = tmp_path / "bdv.n5"
    write_attrs(container, {"n5": "2.5.1"})
    write_attrs(container / "setup00", {"downsamplingFactors": [[1, 1, 1], [2, 2, 1]], "dataType": "uint16"})
    write_array(container / "setup00" / "timepoint00000" / "s0", [100, 80, 12], [32, 32, 4], compression=None)
    write_array(container / "setup00" / "timepoint00000" / "s1", [50, 40, 12], [32, 32, 4])
    scan = scan_store(container)
    assert [(a.image_id, a.level) for a in scan.arrays] == [
        ("setup00/timepoint00000", 0),
        ("setup00/timepoint00000", 1),
    ]
    s0, s1 = scan.arrays
    # No resolution in the N5 (it lives in BDV's XML): the scale counts full-resolution pixels.
    assert (s0.scale, s1.scale) == ([1.0, 1.0, 1.0], [1.0, 2.0, 2.0])
    assert s1.translation == [0.0, 0.5, 0.5]
    assert s1.axis_units is None
    assert s0.codecs == ["raw"]  # "compression": null reads as raw, as N5 1.x did


def test_levels_without_factors_or_resolution_are_not_guessed(tmp_path: Path) -> None:
    container = tmp_path / "guess.n5"
    write_attrs(container, {"n5": "2.5.1"})
    # A group resolution but no factors: s2's spacing is unknown, not the base resolution.
    write_attrs(container / "res", {"pixelResolution": {"unit": "nm", "dimensions": [4, 4, 4]}})
    write_array(container / "res" / "s0", [32, 32, 32], [16, 16, 16])
    write_array(container / "res" / "s2", [8, 8, 8], [16, 16, 16])
    # Relative factors and units but no resolution: the scale counts s0 pixels and has no unit.
    write_attrs(container / "rel", {"units": ["nm", "nm", "nm"], "scales": [[1, 1, 1], [2, 2, 2]]})
    write_array(container / "rel" / "s0", [32, 32, 32], [16, 16, 16])
    write_array(container / "rel" / "s1", [16, 16, 16], [16, 16, 16])
    scan = scan_store(container)
    arrays = by_path(scan)
    assert (arrays["res/s0"].scale, arrays["res/s0"].axis_units) == ([4.0] * 3, [NM] * 3)
    assert (arrays["res/s2"].level, arrays["res/s2"].scale, arrays["res/s2"].axis_units) == (2, None, None)
    assert (arrays["rel/s1"].scale, arrays["rel/s1"].translation) == ([2.0] * 3, [0.5] * 3)
    assert arrays["rel/s1"].axis_units is None
    assert scan.warnings == [
        "res: multiscale levels s1 of res are missing",
        "res/s2: resolution inherited from a group but no downsampling factors for this level; scale unknown",
    ]


def test_cosem_transform_declared_in_f_order_is_reversed(tmp_path: Path) -> None:
    container = tmp_path / "f.n5"
    write_attrs(container, {"n5": "2.5.1"})
    transform = {"order": "F", "axes": ["x", "y", "z"], "scale": [1, 2, 3], "translate": [4, 5, 6], "units": ["nm"] * 3}
    write_array(container / "raw", [30, 20, 10], [8, 8, 8], transform=transform)
    (a,) = scan_store(container).arrays
    assert (a.axes, a.scale, a.translation, a.shape) == (ZYX, [3.0, 2.0, 1.0], [6.0, 5.0, 4.0], [10, 20, 30])


def ngff_attrs(axes: list[dict[str, str]], scales: list[list[float]], **extra: Any) -> dict[str, Any]:
    return {
        "multiscales": [
            {
                "version": "0.4",
                "axes": axes,
                "datasets": [
                    {
                        "path": f"s{i}",
                        "coordinateTransformations": [
                            {"type": "scale", "scale": s},
                            {"type": "translation", "translation": [0.5 * v for v in s]},
                        ],
                    }
                    for i, s in enumerate(scales)
                ],
            }
        ],
        **extra,
    }


def test_ngff_in_n5_as_n5_universe_writes_it_is_f_order(tmp_path: Path) -> None:
    container = tmp_path / "ngff_f.n5"
    write_attrs(container, {"n5": "4.0.0"})
    axes = [{"name": n, "type": "space", "unit": "micrometer"} for n in ("x", "y", "z")]
    write_attrs(container / "img", ngff_attrs(axes, [[0.5, 0.5, 2.0], [1.0, 1.0, 2.0]]))
    write_array(container / "img" / "s0", [40, 30, 10], [16, 16, 16], "uint8")
    write_array(container / "img" / "s1", [20, 15, 10], [16, 16, 16], "uint8")
    scan = scan_store(container)
    assert scan.warnings == []
    s0, s1 = scan.arrays
    assert (s0.image_id, s0.level, s1.level, s0.ngff_version) == ("img", 0, 1, "0.4")
    assert s0.axes == ZYX and s0.shape == [10, 30, 40]
    assert (s0.scale, s1.scale) == ([2.0, 0.5, 0.5], [2.0, 1.0, 1.0])
    assert s1.translation == [1.0, 0.5, 0.5]
    assert s0.axis_units == [UM] * 3


def test_ngff_in_n5_written_in_spec_order_keeps_it_and_reads_omero_channels(tmp_path: Path) -> None:
    container = tmp_path / "ngff_c.n5"
    write_attrs(container, {"n5": "2.5.1"})
    axes = [{"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in ("z", "y", "x")
    ]
    omero = {"channels": [{"label": "DAPI"}, {"label": "GFP"}]}
    write_attrs(container / "img", ngff_attrs(axes, [[1, 2.0, 0.5, 0.5]], omero=omero))
    write_array(container / "img" / "s0", [40, 30, 10, 2], [16, 16, 16, 1], "uint16")
    (a,) = scan_store(container).arrays
    assert a.axes == ["c", "z", "y", "x"] and a.shape == [2, 10, 30, 40]
    assert a.axis_types == ["channel", "space", "space", "space"]
    assert a.axis_units == [None, UM, UM, UM]
    assert a.scale == [1.0, 2.0, 0.5, 0.5]
    assert a.channel_names == ["DAPI", "GFP"]


def test_invalid_ngff_metadata_names_the_group_file(tmp_path: Path) -> None:
    container = tmp_path / "bad_ngff.n5"
    write_attrs(container, {"n5": "2.5.1"})
    where = write_attrs(container / "img", {"multiscales": [{"version": "0.4", "axes": [], "datasets": []}]})
    with pytest.raises(StoreError) as err:
        scan_store(container)
    assert str(err.value).startswith(f"{where}: invalid OME-NGFF metadata")


# --- blocks on disk and the chunk index ----------------------------------------------------------------


def test_chunk_index_names_the_block_files_with_their_sizes(tmp_path: Path) -> None:
    container = tmp_path / "blocks.n5"
    write_attrs(container, {"n5": "2.5.1"})
    dims_f, block_f = [10, 7, 5], [4, 3, 2]  # x, y, z: 3 × 3 × 3 blocks, the last partial in every axis
    array_dir = container / "vol"
    write_array(array_dir, dims_f, block_f)
    written = [(0, 0, 0), (2, 2, 2), (1, 0, 2), (2, 1, 0)]
    for grid in written:
        write_block(array_dir, grid, dims_f, block_f)
    # Not blocks of this grid: outside it, a stray name, and a sub-group's blocks.
    write_block(array_dir, (9, 9, 9), [100, 100, 100], block_f)
    (array_dir / "0" / "notes.txt").write_text("x")
    scan = scan_store(container)
    (vol,) = scan.arrays
    assert (vol.shape, vol.chunk_shape, vol.axes) == ([5, 7, 10], [2, 3, 4], ZYX)
    rows = chunk_rows(scan, vol)
    assert len(rows) == vol.chunk_count == 27
    assert [r["chunk_coords"] for r in rows] == [[z, y, x] for z in range(3) for y in range(3) for x in range(3)]
    stored = {tuple(r["chunk_coords"]) for r in rows if r["stored"]}
    assert stored == {(z, y, x) for x, y, z in written}
    for r in rows:
        z, y, x = r["chunk_coords"]
        assert (r["dataset_id"], r["array_path"], r["fingerprint"]) == ("blocks.n5", "vol", "fp")
        assert r["storage_key"] == f"vol/{x}/{y}/{z}"
        file = container / r["storage_key"]
        assert r["stored"] == file.is_file()
        assert r["byte_length"] == (file.stat().st_size if r["stored"] else None)
        assert r["byte_offset"] is None
    assert vol.chunks_stored == 4
    assert vol.stored_bytes == sum((array_dir.joinpath(*map(str, g))).stat().st_size for g in written)
    # The partial corner block's header says 2 × 1 × 1 (x, y, z), as N5 writes edge blocks.
    corner = (array_dir / "2" / "2" / "2").read_bytes()
    assert struct.unpack(">HH3I", corner[:16]) == (0, 3, 2, 1, 1)


def test_root_array_and_default_axes_for_1d_2d_4d(tmp_path: Path) -> None:
    root_array = tmp_path / "root.n5"
    write_array(root_array, [5, 3], [2, 2], "int8", n5="2.5.1")
    write_block(root_array, (2, 1), [5, 3], [2, 2])
    scan = scan_store(root_array)
    (a,) = scan.arrays
    assert (a.image_id, a.array_path, a.level, a.axes, a.shape) == ("/", "/", 0, ["y", "x"], [3, 5])
    rows = chunk_rows(scan, a)
    assert [r["storage_key"] for r in rows if r["stored"]] == ["2/1"]
    assert len(rows) == 6

    nd = tmp_path / "nd.n5"
    write_attrs(nd, {"n5": "2.5.1"})
    write_array(nd / "line", [9], [4])
    write_array(nd / "hyper", [4, 3, 2, 5], [2, 2, 2, 2])
    write_block(nd / "line", (2,), [9], [4])
    write_block(nd / "hyper", (1, 0, 0, 2), [4, 3, 2, 5], [2, 2, 2, 2])
    scan = scan_store(nd)
    arrays = by_path(scan)
    assert arrays["line"].axes == ["d0"] and arrays["line"].axis_types == [None]
    assert arrays["hyper"].axes == ["d0", "d1", "d2", "d3"] and arrays["hyper"].shape == [5, 2, 3, 4]
    (line_key,) = [r["storage_key"] for r in chunk_rows(scan, arrays["line"]) if r["stored"]]
    hyper_rows = chunk_rows(scan, arrays["hyper"])
    assert line_key == "line/2"
    assert len(hyper_rows) == 3 * 1 * 2 * 2
    assert [(r["chunk_coords"], r["storage_key"]) for r in hyper_rows if r["stored"]] == [
        ([2, 0, 0, 1], "hyper/1/0/0/2")
    ]


def test_zipped_n5_with_a_top_level_folder(tmp_path: Path) -> None:
    container = tmp_path / "zipped.n5"
    write_attrs(container, {"n5": "2.5.1"})
    dims_f, block_f = [6, 4], [4, 4]
    write_array(
        container / "img" / "s0", dims_f, block_f, "uint16", pixelResolution={"unit": "nm", "dimensions": [5, 5]}
    )
    block = write_block(container / "img" / "s0", (1, 0), dims_f, block_f)  # block (0, 0) is never written
    archive = tmp_path / "zipped.n5.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(container.rglob("*")):
            if p.is_file():
                zf.write(p, f"zipped.n5/{p.relative_to(container).as_posix()}")
    scan = scan_store(archive)
    assert scan.format == "n5"
    (a,) = scan.arrays
    assert (a.image_id, a.level, a.shape, a.scale, a.axis_units) == ("img", 0, [4, 6], [5.0, 5.0], [NM, NM])
    rows = chunk_rows(scan, a)
    assert {r["storage_key"]: r["byte_length"] for r in rows if r["stored"]} == {"img/s0/1/0": block.stat().st_size}
    assert [r["storage_key"] for r in rows] == ["img/s0/0/0", "img/s0/1/0"]


def test_containers_without_version_or_suffix_are_still_n5(tmp_path: Path) -> None:
    plain = tmp_path / "volume"  # no .n5 suffix, and a root attributes.json without the "n5" version
    write_attrs(plain, {"pixelResolution": {"unit": "Micrometer", "dimensions": [1, 1]}})
    write_array(plain / "raw", [8, 8], [4, 4])
    assert detect_format(plain) == "n5"
    (a,) = scan_store(plain).arrays
    assert (a.array_path, a.scale, a.axis_units) == ("raw", [1.0, 1.0], [UM, UM])
    archive = tmp_path / "volume.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(plain.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(plain).as_posix())
    assert [a.array_path for a in scan_store(archive).arrays] == ["raw"]
    # canonical.n5 has no root attributes.json at all; zipped, it is still found to be N5.
    zipped = tmp_path / "canonical.n5.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for p in sorted((RESOURCES / "canonical.n5").rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(RESOURCES).as_posix())
    scan = scan_store(zipped)
    assert (scan.format, [a.array_path for a in scan.arrays]) == ("n5", ["affine"])
    assert scan.arrays[0].scale == [4.0, 3.0, 2.0]
    # A root attributes.json that cannot be parsed is still recognised, so the scan can name it.
    broken = tmp_path / "broken_root"
    broken.mkdir()
    (broken / "attributes.json").write_text("{")
    assert detect_format(broken) == "n5"
    with pytest.raises(StoreError, match="invalid JSON") as err:
        scan_store(broken)
    assert str(err.value).startswith(f"{broken / 'attributes.json'}: ")


# --- older and odd N5, broken N5 ----------------------------------------------------------------------


def test_older_n5_forms_and_unknown_types_are_read_with_warnings(tmp_path: Path) -> None:
    container = tmp_path / "old.n5"
    write_attrs(container, {"n5": "0.2.0"})
    write_attrs(
        container / "v0", {"dimensions": [8, 8], "blockSize": [4, 4], "dataType": "uint8", "compressionType": "bzip2"}
    )
    write_attrs(container / "bare", {"dimensions": [8, 6], "dataType": "float64"})
    write_attrs(
        container / "labels",
        {"dimensions": [8, 8], "blockSize": [8, 8], "dataType": "labelmultiset", "compression": {"type": "gzip"}},
    )
    write_attrs(
        container / "blosc",
        {"dimensions": [8], "blockSize": [8], "dataType": "UINT16", "compression": {"type": "blosc", "cname": "zstd"}},
    )
    write_attrs(
        container / "sharded",  # N5 4: a codec chain; each stored file is a shard on the blockSize grid
        {
            "dimensions": [64, 64],
            "blockSize": [32, 32],
            "dataType": "uint8",
            "codecs": [{"name": "sharding_indexed", "configuration": {"chunk_shape": [8, 8]}}],
        },
    )
    write_array(container / "jpeg", [8, 8], [8, 8], "uint8", compression={"type": "jpeg", "quality": 90})
    scan = scan_store(container)
    arrays = by_path(scan)
    assert arrays["v0"].codecs == ["bzip2"]
    assert (arrays["sharded"].codecs, arrays["sharded"].chunk_count) == (["sharding_indexed"], 4)
    assert arrays["jpeg"].codecs == ["jpeg"]
    assert (arrays["bare"].codecs, arrays["bare"].chunk_shape, arrays["bare"].chunk_count) == (["raw"], [6, 8], 1)
    assert arrays["labels"].dtype == "labelmultiset"
    assert (arrays["blosc"].dtype, arrays["blosc"].codecs) == ("uint16", ["blosc/zstd"])
    assert sorted(scan.warnings) == [
        "bare: no blockSize: read as one block, as N5 1.x does",
        "jpeg: unknown N5 compression 'jpeg'",
        "labels: unknown N5 dataType 'labelmultiset'; recorded as given",
        "sharded: sharded N5 dataset: chunk_index lists whole shards on the blockSize grid",
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"dimensions": [4, 4], "blockSize": [2, 2], "dataType": "uint8",', "invalid JSON"),
        ('{"dimensions": [4, 4, 4], "blockSize": [2, 2], "dataType": "uint8"}', "differ in length"),
        ('{"dimensions": [4, -1], "blockSize": [2, 2], "dataType": "uint8"}', "non-negative integers"),
        ('{"dimensions": [4, 4], "blockSize": [2, 0], "dataType": "uint8"}', "positive integers"),
        ('{"dimensions": [4, 4.5], "blockSize": [2, 2], "dataType": "uint8"}', "non-negative integers"),
        ('{"dimensions": [4, 4], "blockSize": [2, 2]}', "without a dataType"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_broken_array_metadata_is_one_line_naming_the_file(tmp_path: Path, content: str, problem: str) -> None:
    container = tmp_path / "broken.n5"
    write_attrs(container, {"n5": "2.5.1"})
    write_array(container / "good", [4], [4])
    bad = container / "group" / "bad" / "attributes.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    with pytest.raises(StoreError) as err:
        scan_store(container)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{bad}: ")
    assert problem in message


def test_missing_array_header_does_not_walk_its_blocks(tmp_path: Path) -> None:
    container = tmp_path / "half.n5"
    write_attrs(container, {"n5": "2.5.1"})
    write_array(container / "ok", [4], [4])
    write_array(container / ".trash" / "old", [4], [4])  # hidden folders are not part of the container
    for x in range(5):
        (container / "lost" / str(x) / "0").mkdir(parents=True)
        (container / "lost" / str(x) / "0" / "0").write_bytes(b"\0" * 12)
    scan = scan_store(container)
    assert [a.array_path for a in scan.arrays] == ["ok"]
    assert scan.warnings == [
        "lost: numbered directories without attributes.json (0, 1, 2, …) look like blocks; skipped"
    ]


def test_a_broken_container_fails_alone_and_the_corpus_still_ingests(tmp_path: Path) -> None:
    root = tmp_path / "stores"
    for name in [*EXPECTED_GEOMETRY, "ngff.n5"]:
        copy_writable(RESOURCES / name, root / name)
    broken = root / "broken.n5"
    write_attrs(broken, {"n5": "2.5.1"})
    (broken / "raw").mkdir()
    (broken / "raw" / "attributes.json").write_text("{not json")
    outcomes = {o.dataset_id: o for o in map(scan_one, discover_stores(root))}
    assert sorted(outcomes) == sorted([*EXPECTED_GEOMETRY, "ngff.n5", "broken.n5"])
    failed = {k: o.error for k, o in outcomes.items() if o.status == "failed"}
    assert sorted(failed) == ["broken.n5", "ngff.n5"]
    assert failed["broken.n5"].startswith(f"{broken / 'raw' / 'attributes.json'}: invalid JSON")
    assert all("\n" not in e for e in failed.values())
    for name, expected in EXPECTED_GEOMETRY.items():
        scan = outcomes[name].scan
        assert scan is not None and sorted(a.array_path for a in scan.arrays) == sorted(expected)
