"""Tables that outlive a release: a catalog written with an earlier schema is evolved when opened, its
rows stay readable, and new rows land beside them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from bioimage_pipeline import ingest
from bioimage_pipeline.catalog import TABLE_PROPERTIES, ensure_per_store_table, live_files, load_catalog
from bioimage_pipeline.formats import scan_store
from bioimage_pipeline.tables import (
    CHUNK_INDEX,
    CHUNK_INDEX_SCHEMA,
    IMAGE_ASSETS,
    IMAGE_ASSETS_SCHEMA,
    STORE_REGISTRY,
    STORE_REGISTRY_SCHEMA,
    VALIDATION_ISSUES,
    VALIDATION_ISSUES_SCHEMA,
    chunk_index_batches,
    dataset_partition_spec,
    image_asset_rows,
)
from bioimage_pipeline_tests.conftest import DATA, copy_tree, run_main


def _first_release_schema(*columns: tuple[str, object, bool]) -> Schema:
    """A schema as the first release declared it: ids from column positions, a list's element id right
    after the list (PyIceberg renumbers them when the table is created, as it did then)."""
    ids = iter(range(1, 1000))
    fields = []
    for name, kind, required in columns:
        field_id = next(ids)
        field_type = ListType(next(ids), kind[0], element_required=False) if isinstance(kind, list) else kind
        fields.append(NestedField(field_id, name, field_type, required=required))
    return Schema(*fields)


_S, _L, _I, _D, _B, _T = StringType(), LongType(), IntegerType(), DoubleType(), BooleanType(), TimestamptzType()

#: The tables as the first release wrote them, frozen here: they must not follow later edits of tables.py.
# fmt: off
FIRST_RELEASE = {
    IMAGE_ASSETS: _first_release_schema(
        ("dataset_id", _S, True), ("image_id", _S, True), ("array_path", _S, True), ("level", _I, True),
        ("kind", _S, True), ("uri", _S, True), ("format", _S, True), ("storage_variant", _S, True),
        ("ngff_version", _S, False), ("shape", [_L], True), ("dtype", _S, True), ("chunk_shape", [_L], False),
        ("shard_shape", [_L], False), ("axes", [_S], False), ("axis_types", [_S], False),
        ("axis_units", [_S], False), ("scale", [_D], False), ("translation", [_D], False),
        ("channel_names", [_S], False), ("plate_id", _S, False), ("well_id", _S, False), ("site_id", _S, False),
        ("chunk_count", _L, True), ("chunks_stored", _L, True), ("stored_bytes", _L, True),
        ("codecs", [_S], False), ("chunk_key_encoding", _S, False), ("order", _S, False),
        ("fingerprint", _S, True), ("scanned_at", _T, True),
    ),
    CHUNK_INDEX: _first_release_schema(
        ("dataset_id", _S, True), ("array_path", _S, True), ("chunk_coords", [_L], True),
        ("storage_key", _S, True), ("stored", _B, True), ("byte_offset", _L, False), ("byte_length", _L, False),
        ("fingerprint", _S, True),
    ),
    STORE_REGISTRY: _first_release_schema(
        ("dataset_id", _S, True), ("uri", _S, True), ("format", _S, False), ("status", _S, True),
        ("error", _S, False), ("warnings", [_S], False), ("fingerprint", _S, True),
        ("ingested_fingerprint", _S, False), ("image_count", _I, False), ("array_count", _I, False),
        ("chunk_count", _L, False), ("stored_bytes", _L, False), ("scanned_at", _T, True),
        ("ingested_at", _T, False),
    ),
}
# fmt: on


def write_first_release_catalog(config, store) -> None:
    """A catalog as the first release left it: its tables, partitioning, properties and one store's rows."""
    catalog = load_catalog(config)
    catalog.create_namespace(config.namespace)
    tables = {}
    for name, schema in FIRST_RELEASE.items():
        spec = dataset_partition_spec(schema) if name != STORE_REGISTRY else None
        kwargs = {"partition_spec": spec} if spec is not None else {}
        tables[name] = catalog.create_table(
            (config.namespace, name), schema=schema, properties=TABLE_PROPERTIES, **kwargs
        )
    scan = scan_store(store, "old.ome.zarr")
    now = datetime.now(UTC)
    old_columns = [f.name for f in FIRST_RELEASE[IMAGE_ASSETS].fields]
    rows = [{k: r[k] for k in old_columns} for r in image_asset_rows(scan, "old-fp", now)]
    tables[IMAGE_ASSETS].append(pa.Table.from_pylist(rows, schema=tables[IMAGE_ASSETS].schema().as_arrow()))
    target = tables[CHUNK_INDEX].schema().as_arrow()
    batches = [b for a in scan.arrays for b in chunk_index_batches("old.ome.zarr", a, "old-fp", 1000)]
    tables[CHUNK_INDEX].append(pa.Table.from_batches([b.cast(target) for b in batches], schema=target))
    registry = {
        "dataset_id": "old.ome.zarr",
        "uri": str(store),
        "format": "ome-zarr",
        "status": "ok",
        "error": None,
        "warnings": None,
        "fingerprint": "old-fp",
        "ingested_fingerprint": "old-fp",
        "image_count": len(scan.image_ids),
        "array_count": len(scan.arrays),
        "chunk_count": scan.chunk_count,
        "stored_bytes": 0,
        "scanned_at": now,
        "ingested_at": now,
    }
    target = tables[STORE_REGISTRY].schema().as_arrow()
    tables[STORE_REGISTRY].append(pa.Table.from_pylist([registry], schema=target))


def arrays_by_store(capsys) -> list[dict[str, object]]:
    query = "SELECT dataset_id, count(*) AS arrays, max(chunks_indexed) AS indexed FROM image_assets GROUP BY ALL"
    code, out, err = run_main(capsys, "query", query + " ORDER BY 1", "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_first_release_catalog_is_evolved_and_keeps_its_rows(env, tmp_path, capsys, monkeypatch) -> None:
    from bioimage_pipeline.config import PipelineConfig

    old = copy_tree(DATA / "stores/demo_image.ome.zarr", tmp_path / "old.ome.zarr")
    new = copy_tree(DATA / "stores/demo_sharded.zarr", tmp_path / "new.zarr")
    config = PipelineConfig.from_env()
    write_first_release_catalog(config, old)
    # Read before anything evolves it (or after a run killed between creating a table and evolving it):
    # this release's columns are there, null.
    code, out, err = run_main(
        capsys,
        "query",
        "SELECT dataset_id, chunks_indexed FROM store_registry UNION ALL "
        "SELECT dataset_id, chunks_indexed FROM image_assets LIMIT 2",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out) == [{"dataset_id": "old.ome.zarr", "chunks_indexed": None}] * 2
    code, _, err = run_main(capsys, "register", str(new))
    assert code == 0, err
    catalog = load_catalog(config)
    assert "chunks_indexed" in catalog.load_table((config.namespace, IMAGE_ASSETS)).schema().column_names
    assert arrays_by_store(capsys) == [
        {"dataset_id": "new.zarr", "arrays": 1, "indexed": 64},
        {"dataset_id": "old.ome.zarr", "arrays": 6, "indexed": None},  # written before the column existed
    ]
    code, out, _ = run_main(capsys, "status", "--json")
    status = json.loads(out)
    assert (status["stores"], status["arrays"], status["chunks"]) == (2, 7, 64 + 12)
    # The partitioned per-store tables are now sorted instead; the old store's file kept its partition, and
    # replacing that store drops it like any file of one store.
    assets = catalog.load_table((config.namespace, IMAGE_ASSETS))
    assert not assets.spec().fields and not assets.sort_order().is_unsorted
    assert sorted(f.spec_id for f in live_files(assets)) == [0, 1]
    code, _, err = run_main(capsys, "register", str(old))
    assert code == 0, err
    assert arrays_by_store(capsys) == [
        {"dataset_id": "new.zarr", "arrays": 1, "indexed": 64},
        {"dataset_id": "old.ome.zarr", "arrays": 6, "indexed": 4},  # rescanned: one copy, the new one
    ]
    assets = catalog.load_table((config.namespace, IMAGE_ASSETS))
    assert sorted(f.spec_id for f in live_files(assets)) == [1, 1]


def test_a_column_added_in_a_later_release_evolves_existing_tables(config, catalog, add_store, monkeypatch) -> None:
    add_store(DATA / "stores/demo_image.ome.zarr", "a.ome.zarr")
    ingest.write_all(catalog, config.namespace, ingest.scan_root(config, catalog))
    # The next release adds an optional column with the next free field id.
    later = Schema(*IMAGE_ASSETS_SCHEMA.fields, NestedField(99, "acquired_by", StringType(), required=False))
    table = ensure_per_store_table(catalog, config.namespace, IMAGE_ASSETS, later)
    assert table.schema().find_field("acquired_by").required is False
    monkeypatch.setattr(ingest, "IMAGE_ASSETS_SCHEMA", later)
    add_store(DATA / "stores/demo_sharded.zarr", "b.zarr")
    ingest.write_all(catalog, config.namespace, ingest.scan_root(config, catalog))
    rows = catalog.load_table((config.namespace, IMAGE_ASSETS)).scan(selected_fields=("dataset_id", "acquired_by"))
    data = rows.to_arrow()
    assert sorted(set(data.column("dataset_id").to_pylist())) == ["a.ome.zarr", "b.zarr"]
    assert data.column("acquired_by").null_count == data.num_rows


def test_every_table_carries_the_literal_field_ids(config, catalog, add_store) -> None:
    add_store(DATA / "stores/demo_image.ome.zarr", "a.ome.zarr")
    ingest.write_all(catalog, config.namespace, ingest.scan_root(config, catalog))
    for name, schema in (
        (IMAGE_ASSETS, IMAGE_ASSETS_SCHEMA),
        (CHUNK_INDEX, CHUNK_INDEX_SCHEMA),
        (STORE_REGISTRY, STORE_REGISTRY_SCHEMA),
        (VALIDATION_ISSUES, VALIDATION_ISSUES_SCHEMA),
    ):
        assert catalog.load_table((config.namespace, name)).schema().fields == schema.fields, name
