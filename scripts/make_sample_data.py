"""Write the synthetic part of ``data/``: the stores and profiles the walkthrough uses.

Run with ``make sample-data``. The output is committed (a few MB); re-running rewrites it byte-for-byte
except for timestamps inside TIFF descriptions. Images are smooth synthetic nuclei (deterministic seed),
so they compress well and look like something.

The corpus copies in ``data/`` (see ``data/README.md``) are not written here: they are other people's
files, copied unchanged.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image, write_multiscale_labels, write_plate_metadata, write_well_metadata

ROOT = Path(__file__).resolve().parents[1] / "data"
STORES = ROOT / "stores"
PROFILES = ROOT / "profiles"
RNG_SEED = 20261121

PLATE_NAME = "demo_plate"
PLATE_ROWS = ["A", "B"]
PLATE_COLUMNS = ["1", "2"]
FIELDS = 2
CHANNELS = ["DNA", "Actin"]


def nuclei(
    rng: np.random.Generator, shape: tuple[int, int], count: int
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    """A uint16 image of Gaussian blobs, its label image, and (label, y, x) centres."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 100.0)
    labels = np.zeros(shape, np.uint16)
    centres = []
    for label in range(1, count + 1):
        y, x = rng.integers(8, shape[0] - 8), rng.integers(8, shape[1] - 8)
        r = rng.uniform(3, 6)
        d2 = (yy - y) ** 2 + (xx - x) ** 2
        image += 3000 * np.exp(-d2 / (2 * r * r))
        labels[(d2 <= r * r) & (labels == 0)] = label
        centres.append((label, int(y), int(x)))
    return image.astype(np.uint16), labels, centres


def write_plate(rng: np.random.Generator) -> list[dict[str, object]]:
    """An OME-Zarr 0.4 HCS plate (2×2 wells, 2 fields, 2 channels, 2 levels) and CellProfiler-style rows."""
    path = STORES / "screen" / f"{PLATE_NAME}.ome.zarr"
    shutil.rmtree(path, ignore_errors=True)
    fmt = FormatV04()
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    wells = [f"{r}/{c}" for r in PLATE_ROWS for c in PLATE_COLUMNS]
    write_plate_metadata(root, PLATE_ROWS, PLATE_COLUMNS, wells, fmt=fmt, field_count=FIELDS, name=PLATE_NAME)
    rows = []
    for well in wells:
        row, col = well.split("/")
        well_group = root.require_group(row).require_group(col)
        write_well_metadata(well_group, [str(f) for f in range(FIELDS)], fmt=fmt)
        for field_index in range(FIELDS):
            dna, labels, centres = nuclei(rng, (128, 128), int(rng.integers(4, 9)))
            actin = (dna // 3 + rng.integers(0, 50, dna.shape)).astype(np.uint16)
            data = np.stack([dna, actin])[:, None]  # c, z, y, x
            field = well_group.require_group(str(field_index))
            write_image(
                data,
                field,
                scale_factors=[2],
                fmt=fmt,
                axes="czyx",
                scale={"z": 1.0, "y": 0.65, "x": 0.65},
                axes_units={"z": "micrometer", "y": "micrometer", "x": "micrometer"},
                storage_options={"chunks": (1, 1, 64, 64)},
                omero={
                    "channels": [
                        {"label": c, "color": col_, "window": {"start": 0, "end": 4000, "min": 0, "max": 65535}}
                        for c, col_ in zip(CHANNELS, ["0000FF", "00FF00"], strict=True)
                    ]
                },
            )
            for label, y, x in centres:
                area = int((labels == label).sum())
                rows.append(
                    {
                        "ImageNumber": len({(r["Metadata_Well"], r["Metadata_Site"]) for r in rows}) + 1,
                        "ObjectNumber": label,
                        "Metadata_Plate": PLATE_NAME,
                        "Metadata_Well": f"{row}{int(col):02d}",
                        "Metadata_Site": str(field_index),
                        "Cells_AreaShape_Area": area,
                        "Cells_AreaShape_Center_X": x,
                        "Cells_AreaShape_Center_Y": y,
                        "Cells_Intensity_MeanIntensity_DNA": round(float(dna[labels == label].mean()) / 65535, 6),
                        "Cells_Intensity_MeanIntensity_Actin": round(float(actin[labels == label].mean()) / 65535, 6),
                    }
                )
    return rows


def write_ngff_05_image(rng: np.random.Generator) -> None:
    """An OME-Zarr 0.5 (Zarr v3) image with three levels and a label image."""
    path = STORES / "demo_image.ome.zarr"
    shutil.rmtree(path, ignore_errors=True)
    fmt = FormatV05()
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    dna, labels, _ = nuclei(rng, (256, 256), 25)
    write_image(
        dna[None],
        root,
        scale_factors=[2, 4],
        fmt=fmt,
        axes="cyx",
        scale={"y": 0.325, "x": 0.325},
        axes_units={"y": "micrometer", "x": "micrometer"},
        storage_options={"chunks": (1, 128, 128)},
        omero={
            "channels": [
                {"label": "DNA", "color": "FFFFFF", "window": {"start": 0, "end": 4000, "min": 0, "max": 65535}}
            ]
        },
    )
    # The label pyramid is written level by level so it has exactly the image's three levels (ome-zarr's
    # write_labels builds its own, deeper pyramid); nearest-neighbour subsampling keeps label values.
    pyramid = [labels[None, ::f, ::f] for f in (1, 2, 4)]
    write_multiscale_labels(
        pyramid,
        root,
        name="nuclei",
        fmt=fmt,
        axes="cyx",
        coordinate_transformations=[[{"type": "scale", "scale": [1.0, 0.325 * f, 0.325 * f]}] for f in (1, 2, 4)],
        storage_options={"chunks": (1, 128, 128)},
        label_metadata={"colors": [{"label-value": i, "rgba": [255, 0, 0, 255]} for i in range(1, 26)]},
    )
    # ome-zarr 0.18 writes the 0.5 `labels` group without `ome.version` and the label arrays without
    # `dimension_names`, both of which the 0.5 specification requires (`bioimage-pipeline check`
    # reports them); add them so the sample is conforming.
    _patch_json(path / "labels" / "zarr.json", lambda doc: doc["attributes"]["ome"].update(version="0.5"))
    for level in ("s0", "s1", "s2"):
        _patch_json(
            path / "labels" / "nuclei" / level / "zarr.json", lambda doc: doc.update(dimension_names=["c", "y", "x"])
        )


def _patch_json(path: Path, change: Callable[[dict], object]) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def write_sharded(rng: np.random.Generator) -> None:
    """A plain Zarr v3 volume stored in shards (2×2×2 inner chunks per shard), one shard left unwritten."""
    path = STORES / "demo_sharded.zarr"
    shutil.rmtree(path, ignore_errors=True)
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    volume = root.create_array(
        "volume",
        shape=(32, 64, 64),
        chunks=(8, 16, 16),
        shards=(16, 32, 32),
        dtype="uint16",
        dimension_names=["z", "y", "x"],
        fill_value=0,
    )
    data = rng.integers(0, 1000, (32, 64, 64), dtype=np.uint16)
    volume[:16] = data[:16]
    volume[16:, :32, :32] = data[16:, :32, :32]


def write_ome_tiff(rng: np.random.Generator) -> None:
    """A tiled OME-TIFF with a 3-level SubIFD pyramid and physical pixel sizes."""
    path = STORES / "demo_pyramid.ome.tiff"
    channels = [nuclei(rng, (512, 512), 40)[0] for _ in range(2)]
    data = np.stack(channels)  # c, y, x
    metadata = {
        "axes": "CYX",
        "Channel": {"Name": ["DNA", "Mito"]},
        "PhysicalSizeX": 0.5,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": 0.5,
        "PhysicalSizeYUnit": "µm",
    }
    with tifffile.TiffWriter(path, ome=True) as tif:
        options = {"tile": (128, 128), "compression": "zlib", "photometric": "minisblack"}
        tif.write(data, subifds=2, metadata=metadata, **options)
        for factor in (2, 4):
            tif.write(data[:, ::factor, ::factor], subfiletype=1, metadata=None, **options)


def write_profiles(plate_rows: list[dict[str, object]]) -> None:
    path = PROFILES / f"{PLATE_NAME}_cells.csv"
    PROFILES.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(plate_rows[0]))
        writer.writeheader()
        writer.writerows(plate_rows)


def main() -> None:
    rng = np.random.default_rng(RNG_SEED)
    STORES.mkdir(parents=True, exist_ok=True)
    write_profiles(write_plate(rng))
    write_ngff_05_image(rng)
    write_sharded(rng)
    write_ome_tiff(rng)
    print(f"sample data written under {ROOT}")


if __name__ == "__main__":
    main()
