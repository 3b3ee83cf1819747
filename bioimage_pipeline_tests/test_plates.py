"""HCS plate folders catalogued as one store each: discovery, scanning, the catalog rows, chunk rows from
the files' own headers, and profiles joined to the sites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import tifffile

from bioimage_pipeline import ingest
from bioimage_pipeline.chunks import ExplicitChunks, concat_explicit
from bioimage_pipeline.discovery import iter_store_paths
from bioimage_pipeline.formats import detect_format, scan_store
from bioimage_pipeline.tables import image_asset_rows, image_assets_table
from bioimage_pipeline_tests.conftest import CORPUS, DATA, copy_tree, run_main

LAYOUTS = CORPUS / "plate-layouts"
EXAMPLE_HUMAN = CORPUS / "cytomining+CytoTable/tests/data/cellprofiler/ExampleHuman"
NF1 = CORPUS / "WayScience+coSMicQC/tests/data/cytotable/NF1_cellpainting_data_shrunken"


def phenix_plate(root: Path, plate: str = "BR00000001", rows: int = 2, columns: int = 3, fields: int = 2) -> Path:
    """A Harmony export without an index: ``<plate>/Images/r..c..f..p01-ch<c>sk1fk1fl1.tiff``, 3 channels."""
    images = root / plate / "Images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for r in range(1, rows + 1):
        for c in range(1, columns + 1):
            for f in range(1, fields + 1):
                for ch in (1, 2, 3):
                    data = rng.integers(0, 4096, (20, 24), dtype=np.uint16)
                    tifffile.imwrite(images / f"r{r:02d}c{c:02d}f{f:02d}p01-ch{ch}sk1fk1fl1.tiff", data)
    return root / plate


def test_a_phenix_export_is_one_store_of_sites_with_channel_files(tmp_path: Path) -> None:
    plate = phenix_plate(tmp_path / "stores")
    assert detect_format(plate) == "plate"
    assert list(iter_store_paths(tmp_path / "stores")) == [(plate, "plate")]
    scan = scan_store(plate, "BR00000001")
    assert scan.format == "harmony" and len(scan.arrays) == 2 * 3 * 2 * 3
    assert len(scan.image_ids) == 2 * 3 * 2  # one image per site
    a = next(a for a in scan.arrays if a.array_path == "Images/r02c03f02p01-ch2sk1fk1fl1.tiff")
    assert (a.image_id, a.plate_id, a.well_id, a.site_id) == ("B03/2", "BR00000001", "B03", "2")
    assert a.shape == [20, 24] and a.dtype == "uint16" and a.axes == ["y", "x"]
    assert a.uri == str(plate / a.array_path) and a.storage_variant == "tiff"
    batch = next(iter(a.chunks.batches(100)))
    assert set(batch.column("storage_key").to_pylist()) == {a.array_path}
    with tifffile.TiffFile(plate / a.array_path) as tif:
        page = tif.pages.first
        assert batch.column("byte_offset").to_pylist() == list(page.dataoffsets)
        assert batch.column("byte_length").to_pylist() == list(page.databytecounts)


def test_ingest_catalogs_a_plate_as_one_dataset(env, tmp_path: Path, capsys) -> None:
    phenix_plate(tmp_path / "stores")
    code, out, err = run_main(capsys, "ingest", str(tmp_path / "stores"), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert [s["dataset_id"] for s in result["stores"]] == ["BR00000001"]
    code, out, _ = run_main(
        capsys,
        "query",
        "SELECT count(*) AS arrays, count(DISTINCT image_id) AS sites, count(DISTINCT well_id) AS wells, "
        "min(plate_id) AS plate FROM image_assets",
        "--json",
    )
    assert json.loads(out) == [{"arrays": 36, "sites": 12, "wells": 6, "plate": "BR00000001"}]
    code, out, _ = run_main(capsys, "status", "--json")
    status = json.loads(out)
    assert (status["stores"], status["images"], status["arrays"]) == (1, 12, 36)


def test_corpus_plates_keep_their_identities(tmp_path: Path) -> None:
    cases = {
        EXAMPLE_HUMAN: ("cellomics", {"D03/0"}, 3),
        NF1 / "Plate_2_images": ("nf1", None, 15),
        LAYOUTS / "fmi-faim+faim-ipa/resources/ImageXpress_exported/9987_Plate_3435": ("metaxpress", None, 16),
        LAYOUTS / "fractal-analytics-platform+fractal-tasks-core/tests/data/png": ("cellvoyager", None, 4),
    }
    for folder, (layout, image_ids, arrays) in cases.items():
        assert detect_format(folder) == "plate", folder
        scan = scan_store(folder, folder.name)
        assert scan.format == layout and len(scan.arrays) == arrays, (folder, scan.format, len(scan.arrays))
        if image_ids is not None:
            assert set(scan.image_ids) == image_ids
        assert all(a.well_id and a.site_id is not None and a.channel_names for a in scan.arrays)


def test_profiles_link_to_each_channel_file_of_a_site(tmp_path: Path) -> None:
    from bioimage_pipeline.joins import join_prepared
    from bioimage_pipeline.profiles.pipeline import prepare_profiles
    from bioimage_pipeline.profiles.sources import sources_for_path

    store = copy_tree(EXAMPLE_HUMAN, tmp_path / "stores" / "ExampleHuman")
    for extra in store.glob("*.csv"):
        extra.unlink()
    scan = scan_store(store, "ExampleHuman")
    images = image_assets_table(image_asset_rows(scan, "fp", np.datetime64("2026-01-01", "us").item()))
    profiles = tmp_path / "profiles"
    for name in ("Image.csv", "Cells.csv"):
        copy_tree(EXAMPLE_HUMAN / name, profiles / name)
    prepared = prepare_profiles(sources_for_path(profiles), images)
    joined, stats = join_prepared(images, prepared)
    assert stats.total_rows == stats.total_matched == 290
    assert stats.tables == {
        "joined_profiles_cells": ["profile_profiles_cells"],
        "joined_profiles_image": ["profile_profiles_image"],
    }
    cells = joined["joined_profiles_cells"]
    first = cells.slice(0, 1).to_pylist()[0]
    # Three links, one per channel file, each to its own array: never 3 × 3.
    assert first["image__channel"] == ["DNA", "PH3", "cellbody"]
    assert first["image__image_id"] == ["D03/0"] * 3
    assert sorted(Path(u).name for u in first["image__uri"]) == sorted(
        f"AS_09125_050116030001_D03f00d{i}.tif" for i in range(3)
    )


def test_the_sample_data_joins_unchanged(config, catalog, add_store, add_profile) -> None:
    for path in sorted((DATA / "stores").iterdir()):
        add_store(path, path.name)
    for path in sorted((DATA / "profiles").iterdir()):
        add_profile(path, path.name)
    batch = ingest.scan_root(config, catalog)
    assert not batch.failed
    ingest.write_all(catalog, config.namespace, batch)
    from bioimage_pipeline.joins import build_joined_profiles
    from bioimage_pipeline.profiles.pipeline import joinable_profile_tables, refresh_profiles
    from bioimage_pipeline.profiles.sources import discover_profile_sources

    refresh_profiles(catalog, config.namespace, discover_profile_sources(config.profiles_dir))
    stats = build_joined_profiles(catalog, config.namespace, joinable_profile_tables(catalog, config.namespace))
    assert stats.total_rows == stats.total_matched == 939
    # The demo plate's cells are single cells; each ExampleHuman compartment and its image are kinds of their own.
    assert list(stats.tables) == [
        "joined_profiles",
        "joined_profiles_cells",
        "joined_profiles_cytoplasm",
        "joined_profiles_image",
        "joined_profiles_nuclei",
        "joined_profiles_ph3",
    ]


def test_chunks_keyed_by_one_file_give_the_rows_of_a_key_array() -> None:
    """A plate's channel files give their chunk sources one key (the file) instead of an array of it; the rows,
    one source or many concatenated, are those of the array."""
    coords = np.array([[0, 0], [1, 0], [2, 0]], np.int64)
    offsets = np.array([8, 100, 200], np.int64)
    lengths = np.array([92, 0, 50], np.int64)
    one = ExplicitChunks(coords=coords, keys="a.tif", offsets=offsets, lengths=lengths)
    listed = ExplicitChunks(coords=coords, keys=pa.array(["a.tif"] * 3), offsets=offsets, lengths=lengths)
    for rows in (None, range(1, 3)):
        assert [b.to_pylist() for b in one.batches(2, rows)] == [b.to_pylist() for b in listed.batches(2, rows)]
    assert [b.to_pylist() for b in one.stored_batches(1)] == [b.to_pylist() for b in listed.stored_batches(1)]
    other = ExplicitChunks(coords=coords[:2], keys="b.tif", offsets=offsets[:2], lengths=lengths[:2])
    mixed = ExplicitChunks(coords=coords[:1], keys=pa.array(["c.tif"]), offsets=offsets[:1], lengths=lengths[:1])
    assert concat_explicit([one, other]).key_array().to_pylist() == ["a.tif"] * 3 + ["b.tif"] * 2
    assert concat_explicit([one, mixed]).key_array().to_pylist() == ["a.tif"] * 3 + ["c.tif"]
    assert concat_explicit([]).chunk_count == 0
