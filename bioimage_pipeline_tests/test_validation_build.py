"""The hierarchy builder: what it writes is read back by independent readers, and conforms."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import zarr

from bioimage_pipeline.formats import scan_store
from bioimage_pipeline.validation import check
from bioimage_pipeline.validation.build import (
    ArrayStub,
    complement_counts,
    default_chunks,
    from_arrays,
    ngff_image,
    ngff_plate,
    ngff_well,
    to_n5,
    to_zarr,
)


def pyramid(dtype: str = "uint16") -> list[np.ndarray]:
    base = np.arange(3 * 40 * 50, dtype=dtype).reshape(3, 40, 50)
    return [base, base[:, ::2, ::2].copy()]


@pytest.mark.parametrize(("version", "zarr_format"), [("0.4", 2), ("0.5", 3)])
def test_ngff_image_round_trips_through_zarr_python(tmp_path: Path, version: str, zarr_format: int) -> None:
    arrays = pyramid()
    spec = from_arrays(
        arrays,
        axes="cyx",
        units=[None, "micrometer", "micrometer"],
        scales=[[1, 0.2, 0.2], [1, 0.4, 0.4]],
        translations=[[0, 0, 0], [0, 0.1, 0.1]],
        version=version,
        chunks=(1, 16, 16),
    )
    store = to_zarr(spec, tmp_path / "image.zarr")
    group = zarr.open_group(str(store), mode="r")
    assert group.metadata.zarr_format == zarr_format
    for k, expected in enumerate(arrays):
        level = zarr.open_array(str(store / str(k)), mode="r")
        assert level.chunks == (1, 16, 16)
        np.testing.assert_array_equal(level[...], expected)
    # 0.4 levels use nested chunk keys, as the 0.4 layout shows.
    assert (store / "0" / "0" / "0" / "0").is_file() if zarr_format == 2 else (store / "0" / "c" / "0").is_dir()
    assert check(store).issues == []


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_models_accepts_what_the_builder_writes(tmp_path: Path, version: str) -> None:
    # ome-zarr-models opens the arrays through zarr-python: an independent reading of the same store.
    from ome_zarr_models import v04, v05

    models = v04 if version == "0.4" else v05
    image = ngff_image(
        [ArrayStub((2, 32, 32)), ArrayStub((2, 16, 16))],
        axes="cyx",
        units=[None, "micrometer", "micrometer"],
        scales=[[1, 1, 1], [1, 2, 2]],
        version=version,
    )
    wells = {"B/3": ngff_well({"0": image}, version=version)}
    store = to_zarr(
        ngff_plate(wells, rows=list("ABCDEFGH"), columns=[str(c) for c in range(1, 13)], name="p", version=version),
        tmp_path / "plate.zarr",
    )
    hcs = models.hcs.HCS.from_zarr(zarr.open_group(str(store), mode="r"))
    assert hcs.n_wells == 1
    assert check(store).issues == []


def test_metadata_only_arrays_write_no_chunks(tmp_path: Path) -> None:
    spec = ngff_image(
        [ArrayStub((2, 2160, 2560))],
        axes="cyx",
        scales=[[1, 0.65, 0.65]],
        units=[None, "micrometer", "micrometer"],
    )
    store = to_zarr(spec, tmp_path / "image.zarr")
    files = sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())
    assert files == ["0/zarr.json", "zarr.json"]
    assert json.loads((store / "0" / "zarr.json").read_text())["shape"] == [2, 2160, 2560]


def _read_n5_block(path: Path, dtype: str, compressed: bool) -> np.ndarray:
    raw = path.read_bytes()
    mode, ndim = struct.unpack(">HH", raw[:4])
    assert mode == 0
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    body = gzip.decompress(body) if compressed else body
    return np.frombuffer(body, dtype=np.dtype(dtype).newbyteorder(">")).reshape(dims[::-1])


@pytest.mark.parametrize("compression", ["raw", "gzip"])
def test_n5_blocks_decode_to_the_data(tmp_path: Path, compression: str) -> None:
    data = np.arange(5 * 7 * 9, dtype="int16").reshape(5, 7, 9) - 100
    spec = from_arrays(
        [data], model="cellmap.cosem", axes="zyx", units=["nm"] * 3, scales=[[3, 2, 2]], chunks=(4, 4, 4)
    )
    store = to_n5(spec, tmp_path / "raw.n5", compression=compression)
    attrs = json.loads((store / "s0" / "attributes.json").read_text())
    assert attrs["dimensions"] == [9, 7, 5] and attrs["blockSize"] == [4, 4, 4] and attrs["dataType"] == "int16"
    assert json.loads((store / "attributes.json").read_text())["n5"] == "4.0.0"
    rebuilt = np.zeros_like(data)
    blocks = [p for p in (store / "s0").rglob("*") if p.is_file() and p.name != "attributes.json"]
    assert len(blocks) == 2 * 2 * 3
    for block in blocks:
        x, y, z = (int(part) for part in block.relative_to(store / "s0").parts)  # N5 keys are fastest first
        values = _read_n5_block(block, "int16", compression == "gzip")
        rebuilt[z * 4 : z * 4 + values.shape[0], y * 4 : y * 4 + values.shape[1], x * 4 : x * 4 + values.shape[2]] = (
            values
        )
    np.testing.assert_array_equal(rebuilt, data)
    # The project's own N5 scanner reads the same container.
    scan = scan_store(store)
    assert [(a.array_path, a.shape, a.dtype) for a in scan.arrays] == [("s0", [5, 7, 9], "int16")]
    assert scan.arrays[0].scale == [3.0, 2.0, 2.0]
    assert check(store).issues == []


def test_from_arrays_refuses_what_it_cannot_write_correctly(tmp_path: Path) -> None:
    stub = [ArrayStub((4, 8, 8)), ArrayStub((2, 4, 4))]
    with pytest.raises(ValueError, match="whole multiple"):
        from_arrays(
            stub, model="cellmap.neuroglancer_n5", axes="zyx", units=["nm"] * 3, scales=[[1, 1, 1], [1.5, 2, 2]]
        )
    with pytest.raises(ValueError, match="one unit"):
        from_arrays(stub, model="cellmap.cosem", axes="zyx", units=["nm", "nm", "um"], scales=[[1, 1, 1], [2, 2, 2]])
    with pytest.raises(ValueError, match="no translations"):
        from_arrays(
            stub,
            model="cellmap.neuroglancer_n5",
            axes="zyx",
            units=["nm"] * 3,
            scales=[[1, 1, 1], [2, 2, 2]],
            translations=[[0, 0, 0], [0.5, 0.5, 0.5]],
        )
    with pytest.raises(ValueError, match="2 dimensions"):
        from_arrays([ArrayStub((8, 8))], axes="zyx", units=["nm"] * 3, scales=[[1, 1, 1]])
    with pytest.raises(ValueError, match="axis_types"):
        from_arrays(stub, axes=["z", "y", "angle"], units=["nm"] * 3, scales=[[1, 1, 1], [2, 2, 2]])
    with pytest.raises(ValueError, match=r"not 'ngff\.plate'"):
        from_arrays(stub, model="ngff.plate", axes="zyx", units=["nm"] * 3, scales=[[1, 1, 1], [2, 2, 2]])
    spec = from_arrays(stub, axes="zyx", units=["nanometer"] * 3, scales=[[1, 1, 1], [2, 2, 2]])
    to_zarr(spec, tmp_path / "once.zarr")
    with pytest.raises(FileExistsError):
        to_zarr(spec, tmp_path / "once.zarr")
    to_zarr(spec, tmp_path / "once.zarr", overwrite=True)


def test_complement_counts_follow_the_encoding() -> None:
    data = np.array([0, 0, 1, 255, 7])
    semantic = {"type": "semantic_segmentation", "encoding": {"absent": 0, "unknown": 255, "present": 1}}
    assert complement_counts(data, semantic) == {"unknown": 1, "absent": 2, "present": 2}
    instance = {"type": "instance_segmentation", "encoding": {"absent": 0}}
    assert complement_counts(data, instance) == {"absent": 2}
    assert complement_counts(ArrayStub((5,)), instance) is None


def test_default_chunks_tile_planes() -> None:
    assert default_chunks((3, 1000, 100)) == (1, 256, 100)
    assert default_chunks((10, 10)) == (10, 10)
