"""A JUMP-like plate's single-cell profiles, as CellProfiler and CytoTable write them, for ``bench_profiles.py``.

    .venv/bin/python benchmarks/cellprofiler_plate.py ROOT [--cells 650000] [--features 4000] [--small]

Writes, for plate ``BR00000001`` (the plate ``plates.py`` writes, whose 17,280 TIFFs the profiles name):

* ``ROOT/<cells>/BR00000001.sqlite``: CellProfiler ExportToDatabase's layout — ``Per_Image`` (one row per
  site: ``ImageNumber``, ``Image_Metadata_Plate/Well/Site``, ``Image_FileName_Orig*``, ``Image_PathName_Orig*``
  and image features) and ``Per_Cells``, ``Per_Cytoplasm``, ``Per_Nuclei`` (``ImageNumber``,
  ``<Object>_Number_Object_Number``,
  ``<Compartment>_<Feature>`` columns, the parent links ``Cytoplasm_Parent_Cells`` / ``_Parent_Nuclei``,
  ``Cells_Parent_Nuclei``), features split evenly over the three compartments;
* ``ROOT/<cells>/BR00000001.parquet``: the same cells as one single-cell table in the shape CytoTable's
  ``cellprofiler_sqlite_pycytominer`` preset gives (``Metadata_ImageNumber``, ``Metadata_Cells_Number_Object_
  Number``…, then every ``Image_*``, ``Cytoplasm_*``, ``Cells_*``, ``Nuclei_*`` column), features as float32
  (the values are float32-exact, so the SQLite's REAL columns hold exactly the same numbers).

Cells are spread evenly over the plate's 384 wells × 9 sites (650,000 cells: 188 or 189 a site; a tenth
keeps every site with a tenth of the cells). Values are seeded random numbers, written in batches of sites
so that memory stays flat whatever the size; a folder already holding a complete plate of the same size
(``plate.json``) is reused.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plates

from bioimage_pipeline.profiles.naming import cytotable_order

PLATE = plates.plate_id(1)
COMPARTMENTS = ("Cells", "Cytoplasm", "Nuclei")
#: JUMP's channel names, in the order of the plate's ``ch1`` … ``ch5`` files.
CHANNELS = ("DNA", "ER", "RNA", "AGP", "Mito")
IMAGE_FEATURES = 40
#: Sites whose cells are generated and written together: bounds memory (a batch of 96 sites at full size
#: is ~18,000 cells × 4,000 features, ~290 MB as float32).
SITES_PER_BATCH = 96
SPEC_FILE = "plate.json"
#: Bumped when the files written for a spec change, so that older ones are not reused.
FORMAT = 2


@dataclass(frozen=True, kw_only=True)
class ProfileSpec:
    """How big: cells over the plate, features over all compartments, the plate's wells and sites."""

    cells: int = 650_000
    features: int = 4_000
    rows: int = plates.FULL.rows
    columns: int = plates.FULL.columns
    fields: int = plates.FULL.fields
    seed: int = 0

    @property
    def sites(self) -> int:
        return self.rows * self.columns * self.fields

    @property
    def per_compartment(self) -> int:
        return (self.features - IMAGE_FEATURES) // len(COMPARTMENTS)


def _well(row: int, col: int) -> str:
    return f"{chr(ord('A') + row - 1)}{col:02d}"


def compartment_features(compartment: str, count: int) -> list[str]:
    """``count`` CellProfiler measurement names of one compartment, in the module order CellProfiler uses."""
    names = [
        "AreaShape_Area",
        "AreaShape_BoundingBoxArea",
        "AreaShape_BoundingBoxMaximum_X",
        "AreaShape_BoundingBoxMaximum_Y",
        "AreaShape_BoundingBoxMinimum_X",
        "AreaShape_BoundingBoxMinimum_Y",
        "AreaShape_Center_X",
        "AreaShape_Center_Y",
        "AreaShape_Compactness",
        "AreaShape_Eccentricity",
        "AreaShape_EquivalentDiameter",
        "AreaShape_EulerNumber",
        "AreaShape_Extent",
        "AreaShape_FormFactor",
        "AreaShape_MajorAxisLength",
        "AreaShape_MaxFeretDiameter",
        "AreaShape_MaximumRadius",
        "AreaShape_MeanRadius",
        "AreaShape_MedianRadius",
        "AreaShape_MinFeretDiameter",
        "AreaShape_MinorAxisLength",
        "AreaShape_Orientation",
        "AreaShape_Perimeter",
        "AreaShape_Solidity",
    ]
    names += [f"AreaShape_Zernike_{n}_{m}" for n in range(10) for m in range(n % 2, n + 1, 2)]
    for ch in CHANNELS:
        names += [
            f"Intensity_{m}_{ch}"
            for m in (
                "IntegratedIntensityEdge",
                "IntegratedIntensity",
                "LowerQuartileIntensity",
                "MADIntensity",
                "MassDisplacement",
                "MaxIntensityEdge",
                "MaxIntensity",
                "MeanIntensityEdge",
                "MeanIntensity",
                "MedianIntensity",
                "MinIntensityEdge",
                "MinIntensity",
                "StdIntensityEdge",
                "StdIntensity",
                "UpperQuartileIntensity",
            )
        ]
    names += [f"Location_Center_{a}" for a in "XYZ"]
    names += [f"Location_CenterMassIntensity_{a}_{ch}" for ch in CHANNELS for a in "XYZ"]
    names += [f"Granularity_{i}_{ch}" for ch in CHANNELS for i in range(1, 17)]
    names += [
        f"RadialDistribution_{m}_{ch}_{i}of4"
        for ch in CHANNELS
        for m in ("FracAtD", "MeanFrac", "RadialCV")
        for i in range(1, 5)
    ]
    pairs = [(a, b) for i, a in enumerate(CHANNELS) for b in CHANNELS[i + 1 :]]
    names += [f"Correlation_{m}_{a}_{b}" for a, b in pairs for m in ("Correlation", "Overlap", "Costes")]
    names += [f"Correlation_{m}_{a}_{b}" for a, b in pairs + [(b, a) for a, b in pairs] for m in ("K", "Manders")]
    texture = (
        "AngularSecondMoment",
        "Contrast",
        "Correlation",
        "DifferenceEntropy",
        "DifferenceVariance",
        "Entropy",
        "InfoMeas1",
        "InfoMeas2",
        "InverseDifferenceMoment",
        "SumAverage",
        "SumEntropy",
        "SumVariance",
        "Variance",
    )
    names += [
        f"Texture_{m}_{ch}_{scale}_{angle:02d}_256"
        for ch in CHANNELS
        for m in texture
        for scale in (3, 5, 10, 20)
        for angle in range(4)
    ]
    if count > len(names):
        names += [f"Texture_Extra_{i}" for i in range(count - len(names))]
    return [f"{compartment}_{n}" for n in names[:count]]


def image_columns(spec: ProfileSpec) -> list[str]:
    """``Per_Image`` columns after ``ImageNumber``: keys, file and path names, then image features."""
    keys = ["Image_Metadata_Plate", "Image_Metadata_Well", "Image_Metadata_Site"]
    files = [f"Image_FileName_Orig{ch}" for ch in CHANNELS] + [f"Image_PathName_Orig{ch}" for ch in CHANNELS]
    counts = [f"Image_Count_{c}" for c in COMPARTMENTS]
    features = [f"Image_Intensity_MeanIntensity_Orig{ch}_{i}" for i in range(IMAGE_FEATURES // 5) for ch in CHANNELS]
    return keys + files + counts + features[: IMAGE_FEATURES - len(counts)]


#: Integer-valued measurements: counts and pixel positions (CellProfiler writes them as FLOAT too).
_INTEGRAL = ("_Area", "_BoundingBox", "_EulerNumber", "_Number_Object_Number", "_Parent_", "_Children_")


@dataclass(frozen=True, kw_only=True)
class Site:
    number: int  # ImageNumber, from 1
    row: int
    col: int
    field: int

    @property
    def well(self) -> str:
        return _well(self.row, self.col)


def plate_sites(spec: ProfileSpec) -> list[Site]:
    sites = []
    for row in range(1, spec.rows + 1):
        for col in range(1, spec.columns + 1):
            for field in range(1, spec.fields + 1):
                sites.append(Site(number=len(sites) + 1, row=row, col=col, field=field))
    return sites


def cells_per_site(spec: ProfileSpec) -> list[int]:
    base, extra = divmod(spec.cells, spec.sites)
    return [base + (i < extra) for i in range(spec.sites)]


def file_name(site: Site, channel: int) -> str:
    return plates.Site(site.row, site.col, site.field, channel).name


@dataclass(frozen=True, kw_only=True)
class Batch:
    """The generated rows of a run of sites: image rows, and per compartment its object rows."""

    sites: list[Site]
    counts: list[int]
    image_number: np.ndarray  # per object
    object_number: np.ndarray  # per object
    image_features: np.ndarray  # sites × image features (float32)
    features: dict[str, np.ndarray]  # compartment → objects × features (float32)


def batches(spec: ProfileSpec) -> Iterator[Batch]:
    """The plate's rows in runs of ``SITES_PER_BATCH`` sites; the same spec always gives the same values."""
    rng = np.random.default_rng(spec.seed)
    sites = plate_sites(spec)
    counts = cells_per_site(spec)
    names = {c: compartment_features(c, spec.per_compartment) for c in COMPARTMENTS}
    image_names = image_columns(spec)[13:]
    integral = {c: np.array([any(k in n for k in _INTEGRAL) for n in names[c]]) for c in COMPARTMENTS}
    for start in range(0, len(sites), SITES_PER_BATCH):
        run = sites[start : start + SITES_PER_BATCH]
        run_counts = counts[start : start + SITES_PER_BATCH]
        total = sum(run_counts)
        image_number = np.repeat(np.array([s.number for s in run], dtype=np.int64), run_counts)
        object_number = np.concatenate([np.arange(1, n + 1, dtype=np.int64) for n in run_counts])
        features = {}
        for c in COMPARTMENTS:
            # float32 values, so that the SQLite's doubles and the Parquet's floats hold the same numbers.
            values = rng.standard_normal((total, len(names[c])), dtype=np.float32)
            values[:, integral[c]] = np.round(np.abs(values[:, integral[c]]) * 100)
            features[c] = values
        image_features = rng.standard_normal((len(run), len(image_names)), dtype=np.float32)
        image_features[:, : len(COMPARTMENTS)] = np.array(run_counts, dtype=np.float32)[:, None]
        yield Batch(
            sites=run,
            counts=run_counts,
            image_number=image_number,
            object_number=object_number,
            image_features=image_features,
            features=features,
        )


#: Per compartment, the object-relationship columns CellProfiler writes beside the measurements.
RELATIONSHIPS = {
    "Cells": ("Cells_Number_Object_Number", "Cells_Parent_Nuclei"),
    "Cytoplasm": ("Cytoplasm_Number_Object_Number", "Cytoplasm_Parent_Cells", "Cytoplasm_Parent_Nuclei"),
    "Nuclei": ("Nuclei_Number_Object_Number", "Nuclei_Children_Cells_Count", "Nuclei_Children_Cytoplasm_Count"),
}


def _relationship_values(name: str, object_number: np.ndarray) -> np.ndarray:
    # One nucleus, one cell and one cytoplasm per object: parents share the object's number.
    return np.ones_like(object_number) if "_Children_" in name else object_number


def _create_sqlite(con: sqlite3.Connection, spec: ProfileSpec) -> None:
    image = image_columns(spec)
    text = {
        c
        for c in image
        if c.startswith(("Image_Metadata_Plate", "Image_Metadata_Well", "Image_FileName", "Image_PathName"))
    }
    columns = ["ImageNumber INTEGER PRIMARY KEY"] + [
        f'"{c}" {"TEXT" if c in text else "INTEGER" if c.endswith("_Site") or "_Count_" in c else "FLOAT"}'
        for c in image
    ]
    con.execute(f"CREATE TABLE Per_Image ({', '.join(columns)})")
    for c in COMPARTMENTS:
        names = compartment_features(c, spec.per_compartment)
        # As ExportToDatabase: the object number is <Object>_Number_Object_Number, keyed with ImageNumber.
        columns = ["ImageNumber INTEGER"]
        columns += [f'"{n}" INTEGER' for n in RELATIONSHIPS[c]] + [f'"{n}" FLOAT' for n in names]
        key = f"PRIMARY KEY (ImageNumber, {c}_Number_Object_Number)"
        con.execute(f"CREATE TABLE Per_{c} ({', '.join(columns)}, {key})")


def _image_rows(batch: Batch) -> list[tuple]:
    rows = []
    for i, site in enumerate(batch.sites):
        files = [file_name(site, ch) for ch in range(1, len(CHANNELS) + 1)]
        paths = [f"/images/{PLATE}/Images"] * len(CHANNELS)
        rows.append(
            (
                site.number,
                PLATE,
                site.well,
                site.field,
                *files,
                *paths,
                *batch.image_features[i, : len(COMPARTMENTS)].astype(int).tolist(),
                *batch.image_features[i, len(COMPARTMENTS) :].astype(np.float64).tolist(),
            )
        )
    return rows


def write_sqlite(path: Path, spec: ProfileSpec) -> None:
    """The plate as CellProfiler's ExportToDatabase writes it (SQLite, one table per object)."""
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    con = sqlite3.connect(tmp)
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    _create_sqlite(con, spec)
    image_marks = ", ".join("?" * (1 + len(image_columns(spec))))
    for batch in batches(spec):
        con.executemany(f"INSERT INTO Per_Image VALUES ({image_marks})", _image_rows(batch))
        for c in COMPARTMENTS:
            values = batch.features[c]
            ids = [batch.image_number]
            ids += [_relationship_values(n, batch.object_number) for n in RELATIONSHIPS[c]]
            # Doubles throughout: SQLite stores the integral ones of INTEGER columns as integers.
            matrix = np.column_stack([np.column_stack(ids).astype(np.float64), values.astype(np.float64)])
            marks = ", ".join("?" * matrix.shape[1])
            con.executemany(f"INSERT INTO Per_{c} VALUES ({marks})", matrix.tolist())
        con.commit()
    con.close()
    tmp.replace(path)


def single_cell_schema(spec: ProfileSpec) -> pa.Schema:
    """The merged single-cell table's columns in CytoTable's order, features as float32."""
    fields = [pa.field("Metadata_ImageNumber", pa.int64())]
    fields += [pa.field(n, pa.string()) for n in ("Image_Metadata_Plate", "Image_Metadata_Well")]
    fields += [pa.field(f"Image_FileName_Orig{ch}", pa.string()) for ch in CHANNELS]
    ids = (
        "Cells_Number_Object_Number",
        "Nuclei_Number_Object_Number",
        "Cytoplasm_Parent_Cells",
        "Cytoplasm_Parent_Nuclei",
    )
    for c in COMPARTMENTS:
        for n in RELATIONSHIPS[c]:
            fields.append(pa.field(f"Metadata_{n}" if n in ids else n, pa.int64()))
        fields += [pa.field(n, pa.float32()) for n in compartment_features(c, spec.per_compartment)]
    ordered = sorted(sorted(fields, key=lambda f: f.name), key=lambda f: cytotable_order(f.name))
    return pa.schema(ordered)


def _single_cell_batch(batch: Batch, schema: pa.Schema) -> pa.RecordBatch:
    site_of = {s.number: s for s in batch.sites}
    per_object_site = [site_of[int(n)] for n in batch.image_number]
    columns: dict[str, pa.Array] = {
        "Metadata_ImageNumber": pa.array(batch.image_number),
        "Image_Metadata_Plate": pa.array([PLATE] * len(per_object_site)),
        "Image_Metadata_Well": pa.array([s.well for s in per_object_site]),
    }
    for ch, name in enumerate(CHANNELS, start=1):
        columns[f"Image_FileName_Orig{name}"] = pa.array([file_name(s, ch) for s in per_object_site])
    for c in COMPARTMENTS:
        for n in RELATIONSHIPS[c]:
            key = f"Metadata_{n}" if f"Metadata_{n}" in schema.names else n
            columns[key] = pa.array(_relationship_values(n, batch.object_number))
        for i, n in enumerate(compartment_features(c, batch.features[c].shape[1])):
            columns[n] = pa.array(batch.features[c][:, i])
    return pa.record_batch([columns[f.name] for f in schema], schema=schema)


def write_parquet(path: Path, spec: ProfileSpec) -> None:
    """The same cells as CytoTable's single-cell table (one row per cytoplasm object), a row group a batch."""
    tmp = path.with_name(path.name + ".partial")
    schema = single_cell_schema(spec)
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
        for batch in batches(spec):
            writer.write_batch(_single_cell_batch(batch, schema))
    tmp.replace(path)


def write_profiles(folder: Path, spec: ProfileSpec) -> tuple[Path, Path]:
    """``folder/BR00000001.sqlite`` and ``.parquet`` for ``spec``; reused when ``folder`` already holds them."""
    folder.mkdir(parents=True, exist_ok=True)
    sqlite_path, parquet_path = folder / f"{PLATE}.sqlite", folder / f"{PLATE}.parquet"
    marker = folder / SPEC_FILE
    wanted = json.dumps({**asdict(spec), "format": FORMAT}, sort_keys=True)
    if marker.exists() and marker.read_text() == wanted and sqlite_path.exists() and parquet_path.exists():
        return sqlite_path, parquet_path
    marker.unlink(missing_ok=True)
    write_sqlite(sqlite_path, spec)
    write_parquet(parquet_path, spec)
    marker.write_text(wanted)
    return sqlite_path, parquet_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--cells", type=int, default=ProfileSpec().cells)
    parser.add_argument("--features", type=int, default=ProfileSpec().features)
    parser.add_argument("--small", action="store_true", help="a 2x3-well plate of 2 sites, 600 cells, 300 features")
    args = parser.parse_args(argv)
    spec = (
        ProfileSpec(cells=600, features=300, rows=2, columns=3, fields=2)
        if args.small
        else ProfileSpec(cells=args.cells, features=args.features)
    )
    start = time.perf_counter()
    paths = write_profiles(args.root / f"cells-{spec.cells}", spec)
    for p in paths:
        print(f"{p}  {p.stat().st_size / 1e9:.2f} GB")
    print(f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
