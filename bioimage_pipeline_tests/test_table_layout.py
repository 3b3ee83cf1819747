"""The per-store tables' layout: data files bounded by size, not by the number of stores, and a store's rows
replaced without touching its neighbours'."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import tifffile

from bioimage_pipeline import catalog as catalog_module
from bioimage_pipeline import ingest
from bioimage_pipeline.catalog import dataset_span, datasets_in, live_files, load_table, pack_stores, set_properties
from bioimage_pipeline.maintenance import Retention, maintain_catalog
from bioimage_pipeline.tables import CHUNK_INDEX, IMAGE_ASSETS, STORE_REGISTRY

PER_STORE = (IMAGE_ASSETS, CHUNK_INDEX)


def loose_tiffs(folder: Path, count: int, shape: tuple[int, int] = (16, 16)) -> list[Path]:
    """``count`` unrelated TIFFs whose names follow no plate layout: one store each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"specimen_{i:03d}.tif"
        tifffile.imwrite(path, np.full(shape, i, dtype=np.uint8))
        paths.append(path)
    return paths


def run(config, catalog) -> ingest.ScanBatch:
    batch = ingest.scan_root(config, catalog)
    assert not batch.failed
    ingest.write_all(catalog, config.namespace, batch)
    return batch


def rows_by_store(catalog, namespace: str, name: str) -> dict[str, list[tuple]]:
    table = load_table(catalog, namespace, name)
    assert table is not None
    data = table.scan(selected_fields=("dataset_id", "array_path", "shape", "fingerprint")).to_arrow()
    out: dict[str, list[tuple]] = {}
    for row in data.to_pylist():
        out.setdefault(row["dataset_id"], []).append((row["array_path"], tuple(row["shape"]), row["fingerprint"]))
    return out


def test_many_small_stores_share_one_file_per_table(config, catalog) -> None:
    loose_tiffs(config.stores_dir / "loose", 40)
    batch = run(config, catalog)
    assert len(batch.ok) == 40
    for name in (*PER_STORE, STORE_REGISTRY):
        table = load_table(catalog, config.namespace, name)
        files = live_files(table)
        assert len(files) == 1, (name, len(files))
    assets = load_table(catalog, config.namespace, IMAGE_ASSETS)
    assert not assets.spec().fields and not assets.sort_order().is_unsorted
    (only,) = live_files(assets)
    assert dataset_span(assets, only) == ("loose/specimen_000.tif", "loose/specimen_039.tif")
    assert len(datasets_in(assets, [only])) == 40
    # Nothing changed: the shared files' fingerprints are read back and the run commits nothing.
    snapshots = {n: load_table(catalog, config.namespace, n).current_snapshot().snapshot_id for n in PER_STORE}
    again = ingest.scan_root(config, catalog)
    assert not again.outcomes and not again.removed
    assert {n: load_table(catalog, config.namespace, n).current_snapshot().snapshot_id for n in PER_STORE} == snapshots


def test_replacing_one_store_rewrites_only_the_file_it_shares(config, catalog) -> None:
    paths = loose_tiffs(config.stores_dir / "loose", 12)
    run(config, catalog)
    before = rows_by_store(catalog, config.namespace, IMAGE_ASSETS)
    chunks_before = load_table(catalog, config.namespace, CHUNK_INDEX).scan().to_arrow().num_rows
    tifffile.imwrite(paths[3], np.zeros((8, 8), dtype=np.uint8))  # changed
    paths[7].unlink()  # left the root
    batch = run(config, catalog)
    assert sorted(o.dataset_id for o in batch.outcomes) == ["loose/specimen_003.tif"]
    assert batch.removed == ["loose/specimen_007.tif"]
    after = rows_by_store(catalog, config.namespace, IMAGE_ASSETS)
    assert set(after) == set(before) - {"loose/specimen_007.tif"}
    assert [shape for _, shape, _ in after["loose/specimen_003.tif"]] == [(8, 8)]  # one copy, the new one
    unchanged = set(before) - {"loose/specimen_003.tif", "loose/specimen_007.tif"}
    assert {d: after[d] for d in unchanged} == {d: before[d] for d in unchanged}
    chunks = load_table(catalog, config.namespace, CHUNK_INDEX)
    assert chunks.scan().to_arrow().num_rows == chunks_before - 1  # one strip per TIFF; one store fewer
    # One commit per table: the shared file rewritten without the two stores, the new rows in a file of
    # their own (until compaction packs them).
    for name in PER_STORE:
        table = load_table(catalog, config.namespace, name)
        assert table.current_snapshot().summary["bioimage.stores-replaced"] == "2"
        assert len(live_files(table)) == 2


def test_a_file_of_other_stores_is_not_read_when_a_store_elsewhere_changes(config, catalog, monkeypatch) -> None:
    first = loose_tiffs(config.stores_dir / "a", 5)
    run(config, catalog)
    loose_tiffs(config.stores_dir / "b", 5)
    run(config, catalog)
    assets = load_table(catalog, config.namespace, IMAGE_ASSETS)
    spans = sorted(dataset_span(assets, f) for f in live_files(assets))
    assert spans == [("a/specimen_000.tif", "a/specimen_004.tif"), ("b/specimen_000.tif", "b/specimen_004.tif")]
    opened: list[tuple[str, str] | None] = []
    real = catalog_module._read_columns

    def spy(table, data_file, columns):
        opened.append(dataset_span(table, data_file))
        return real(table, data_file, columns)

    monkeypatch.setattr(catalog_module, "_read_columns", spy)
    tifffile.imwrite(first[1], np.zeros((4, 4), dtype=np.uint8))
    run(config, catalog)
    # To replace a/specimen_001.tif, only the "a" file of each table was read (its dataset_id column).
    assert opened == [("a/specimen_000.tif", "a/specimen_004.tif")] * 2


def test_compaction_packs_the_files_successive_runs_left(config, catalog) -> None:
    for i in range(4):
        loose_tiffs(config.stores_dir / f"run{i}", 3)
        run(config, catalog)
    assets = load_table(catalog, config.namespace, IMAGE_ASSETS)
    assert len(live_files(assets)) == 4
    before = rows_by_store(catalog, config.namespace, IMAGE_ASSETS)
    report = maintain_catalog(catalog, config.namespace, Retention(compact=True))
    compacted = {t.table: t.files_compacted for t in report.tables}
    assert compacted[IMAGE_ASSETS] == 4 and compacted[CHUNK_INDEX] == 4
    assets = load_table(catalog, config.namespace, IMAGE_ASSETS)
    (packed,) = live_files(assets)
    assert dataset_span(assets, packed) == ("run0/specimen_000.tif", "run3/specimen_002.tif")
    assert rows_by_store(catalog, config.namespace, IMAGE_ASSETS) == before
    # A store of the packed file changes: the file is rewritten without its old rows.
    tifffile.imwrite(config.stores_dir / "run2/specimen_001.tif", np.zeros((4, 4), dtype=np.uint8))
    run(config, catalog)
    after = rows_by_store(catalog, config.namespace, IMAGE_ASSETS)
    assert [s for _, s, _ in after["run2/specimen_001.tif"]] == [(4, 4)]
    assert {k: v for k, v in after.items() if k != "run2/specimen_001.tif"} == {
        k: v for k, v in before.items() if k != "run2/specimen_001.tif"
    }


def test_a_target_file_size_splits_a_run_into_several_files(config, catalog) -> None:
    loose_tiffs(config.stores_dir / "loose", 3)
    run(config, catalog)
    chunks = load_table(catalog, config.namespace, CHUNK_INDEX)
    set_properties(chunks, {"write.target-file-size-bytes": "1"})
    # 300,000 chunk rows: written in several coalesced batches, each past the 1-byte target.
    tifffile.imwrite(config.stores_dir / "big.tif", np.zeros((300_000, 4), dtype=np.uint8), rowsperstrip=1)
    run(config, catalog)
    chunks = load_table(catalog, config.namespace, CHUNK_INDEX)
    added = [f for f in live_files(chunks) if dataset_span(chunks, f) == ("big.tif", "big.tif")]
    assert len(added) > 1
    assert sum(f.record_count for f in added) == 300_000


def test_stores_are_packed_by_rows() -> None:
    sizes = [("a", 10), ("b", 70), ("c", 30), ("d", 5), ("e", 60), ("f", 1), ("g", 0)]
    # A store of half the shared limit or more alone; smaller neighbours together up to the limit.
    assert pack_stores(sizes, shared_rows=100) == [["a"], ["b"], ["c", "d"], ["e"], ["f", "g"]]
    assert pack_stores([("a", 40), ("b", 40), ("c", 40)], shared_rows=100) == [["a", "b"], ["c"]]
    assert pack_stores([], shared_rows=100) == []


def test_a_plate_sized_store_keeps_files_of_its_own(config, catalog, monkeypatch) -> None:
    # With a shared limit of 8 rows, a 4-strip TIFF is "large": its files are its own, and replacing it drops
    # them unread; the 1-strip TIFFs share one file.
    monkeypatch.setattr(catalog_module, "SHARED_ROWS", 8)
    loose_tiffs(config.stores_dir / "small", 3)
    big = config.stores_dir / "big.tif"
    tifffile.imwrite(big, np.zeros((4, 4), dtype=np.uint8), rowsperstrip=1)
    run(config, catalog)
    chunks = load_table(catalog, config.namespace, CHUNK_INDEX)
    spans = sorted(dataset_span(chunks, f) for f in live_files(chunks))
    assert spans == [("big.tif", "big.tif"), ("small/specimen_000.tif", "small/specimen_002.tif")]
    opened: list[object] = []
    real = catalog_module._read_columns
    monkeypatch.setattr(catalog_module, "_read_columns", lambda t, f, c: opened.append(f) or real(t, f, c))
    tifffile.imwrite(big, np.ones((4, 4), dtype=np.uint8), rowsperstrip=1)
    run(config, catalog)
    # chunk_index: dropped by its bounds, nothing read (in image_assets, its one row shares a file).
    assert [f for f in opened if "/chunk_index/" in f.file_path] == []
    chunks = load_table(catalog, config.namespace, CHUNK_INDEX)
    assert chunks.scan().to_arrow().num_rows == 3 + 4


def test_a_run_holds_the_scans_of_one_group_at_a_time(config, catalog, monkeypatch) -> None:
    for i in range(3):
        tifffile.imwrite(config.stores_dir / f"s{i}.tif", np.zeros((4, 4), dtype=np.uint8), rowsperstrip=1)
    monkeypatch.setattr(ingest, "GROUP_ROWS", 1)  # every store a group of its own
    alive: list[int] = []
    real = ingest.scan_one

    def counting(state, max_chunk_rows):
        alive.append(sum(o.scan is not None for o in batch.outcomes))
        return real(state, max_chunk_rows)

    monkeypatch.setattr(ingest, "scan_one", counting)
    batch = ingest.scan_root(config, catalog, lazy=True)
    assert [s.dataset_id for s in batch.pending] == ["s0.tif", "s1.tif", "s2.tif"] and not batch.outcomes
    writes = {w.table: w for w in ingest.write_all(catalog, config.namespace, batch)}
    # When each store was scanned, the previous one's rows were staged and its scan let go.
    assert alive == [0, 0, 0]
    assert all(o.scan is None for o in batch.outcomes) and not batch.pending
    assert writes[CHUNK_INDEX].rows_written == 12 and writes[IMAGE_ASSETS].rows_written == 3
    registry = {
        r["dataset_id"]: r for r in load_table(catalog, config.namespace, STORE_REGISTRY).scan().to_arrow().to_pylist()
    }
    assert {d: (r["array_count"], r["chunks_indexed"]) for d, r in registry.items()} == {
        f"s{i}.tif": (1, 4) for i in range(3)
    }
    # One commit per table for the three groups (a group's files are its own: packs do not span groups).
    assets = load_table(catalog, config.namespace, IMAGE_ASSETS)
    assert len(assets.metadata.snapshots) == 1 and len(live_files(assets)) == 3


def test_a_plate_fingerprint_follows_its_folders_and_metadata(tmp_path) -> None:
    from bioimage_pipeline.discovery import fingerprint_store

    plate = tmp_path / "BR1" / "Images"
    plate.mkdir(parents=True)
    for name in ("r01c01f01p01-ch1sk1fk1fl1.tiff", "r01c01f01p01-ch2sk1fk1fl1.tiff"):
        tifffile.imwrite(plate / name, np.zeros((4, 4), dtype=np.uint8))
    (plate / "Index.idx.xml").write_text("<EvaluationInputData/>")
    first = fingerprint_store(tmp_path / "BR1")[0]
    assert fingerprint_store(tmp_path / "BR1")[0] == first
    # A new image (its folder's mtime moves and its name appears).
    tifffile.imwrite(plate / "r01c01f02p01-ch1sk1fk1fl1.tiff", np.zeros((4, 4), dtype=np.uint8))
    second = fingerprint_store(tmp_path / "BR1")[0]
    assert second != first
    # An image replaced by a rename over it, as copy tools publish files.
    tifffile.imwrite(tmp_path / "new.tiff", np.ones((8, 8), dtype=np.uint8))
    os.utime(plate, ns=(0, 0))
    (tmp_path / "new.tiff").replace(plate / "r01c01f01p01-ch1sk1fk1fl1.tiff")
    third = fingerprint_store(tmp_path / "BR1")[0]
    assert third != second
    # An image renamed, its folder's mtime then set back (as ``rsync -t`` would): the folder's ctime moved.
    # The pause steps past the kernel's timestamp tick (a few ms), which the rename would otherwise share.
    time.sleep(0.05)
    before = plate.stat()
    (plate / "r01c01f02p01-ch1sk1fk1fl1.tiff").rename(plate / "r01c01f03p01-ch1sk1fk1fl1.tiff")
    os.utime(plate, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert plate.stat().st_mtime_ns == before.st_mtime_ns
    renamed = fingerprint_store(tmp_path / "BR1")[0]
    assert renamed != third
    third = renamed
    # The index rewritten in place: metadata files are stat'ed.
    (plate / "Index.idx.xml").write_text("<EvaluationInputData><Images/></EvaluationInputData>")
    assert fingerprint_store(tmp_path / "BR1")[0] != third
