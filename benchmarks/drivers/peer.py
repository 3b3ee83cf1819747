"""Benchmark driver for the peer, ``iceberg-bioimage`` 0.1.0: scan + publish in this process, print JSON.

    python benchmarks/drivers/peer.py --catalog DIR [--mode register|ingest] STORE [STORE ...]

``register`` calls the peer's ``api.register_store`` (one store: ``scan_store``, ``publish_image_assets``,
``publish_chunk_index``); ``ingest`` calls ``api.ingest_stores_to_warehouse`` (scan every store, then
publish each). Runs with the peer's own interpreter (``benchmarks/.peer-venv``), never this project's.

Workaround, applied here and reported in the output: the peer's ``publish_*`` append
``pa.Table.from_pylist(rows)``, whose inferred Arrow schema does not match the Iceberg table it created
(``array_path`` of a root array is all None, so it is inferred as ``null``; columns come in another order;
nullability differs), and PyIceberg's SqlCatalog rejects the append. The driver wraps the table the peer
loads so that ``append`` first selects and casts to ``table.schema().as_arrow()``. That is the smallest
change that makes it work against a real catalog; its cost is timed separately ("cast").

Phases are timed by wrapping the peer's module-level functions; nothing else of the peer is changed.
"""

# Only the standard library at module level: the heavy imports are timed inside main().
import argparse
import json
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

CATALOG_NAME = "bioimage"
#: The peer's conventional layout is ``<experiment>.cytotable``; naming it directly avoids its namespace
#: fallback (and the warning that comes with it).
NAMESPACE = ("bioimage", "cytotable")
WORKAROUND_NOTE = (
    "peer workaround: publish_image_assets/publish_chunk_index append pa.Table.from_pylist(rows), which a "
    "SqlCatalog table rejects (null-typed array_path, column order, nullability); the driver casts the Arrow "
    "table to table.schema().as_arrow() before append (timed as 'cast')"
)

# Seconds per phase, accumulated over every call (ingest publishes once per store and table).
TIMES: dict[str, float] = defaultdict(float)


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            TIMES[name] += time.perf_counter() - t

    return wrapper


class _CastingTable:
    """The peer's pyiceberg Table, except that ``append`` conforms the Arrow table to the table's schema."""

    def __init__(self, table: Any) -> None:
        self._table = table
        # publish_* call from_pylist between loading the table and appending: that gap is the Arrow build.
        self._loaded_at = time.perf_counter()

    def append(self, df: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        TIMES["arrow"] += t - self._loaded_at
        schema = self._table.schema().as_arrow()
        df = df.select(schema.names).cast(schema)
        t2 = time.perf_counter()
        TIMES["cast"] += t2 - t
        try:
            return self._table.append(df, *args, **kwargs)
        finally:
            TIMES["append"] += time.perf_counter() - t2

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def _install_hooks() -> None:
    from iceberg_bioimage import api
    from iceberg_bioimage.publishing import chunk_index, image_assets

    original_load = image_assets._load_or_create_table

    def load_or_create(*args: Any, **kwargs: Any) -> _CastingTable:
        return _CastingTable(original_load(*args, **kwargs))

    # chunk_index imported the name from image_assets: both module globals need the wrapper.
    image_assets._load_or_create_table = load_or_create
    chunk_index._load_or_create_table = load_or_create
    # Row building (Python dicts per chunk) happens inside publish_*; timing it shows the peer's main cost.
    image_assets.scan_result_to_rows = _timed("rows", image_assets.scan_result_to_rows)
    chunk_index.scan_result_to_chunk_rows = _timed("rows", chunk_index.scan_result_to_chunk_rows)
    # register_store and ingest_stores_to_warehouse look these up in api's globals.
    api.scan_store = _timed("scan", api.scan_store)
    api.publish_image_assets = _timed("publish", api.publish_image_assets)
    api.publish_chunk_index = _timed("publish", api.publish_chunk_index)


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True, type=Path, help="folder of the SQLite catalog and warehouse")
    parser.add_argument("--mode", choices=("register", "ingest"), default="register")
    parser.add_argument("stores", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.mode == "register" and len(args.stores) != 1:
        parser.error("--mode register takes exactly one store")

    t = time.perf_counter()
    from iceberg_bioimage import api
    from pyiceberg.catalog.sql import SqlCatalog

    imports = time.perf_counter() - t
    _install_hooks()

    t = time.perf_counter()
    catalog_dir = args.catalog.absolute()
    (catalog_dir / "warehouse").mkdir(parents=True, exist_ok=True)
    catalog = SqlCatalog(
        CATALOG_NAME, uri=f"sqlite:///{catalog_dir / 'catalog.db'}", warehouse=f"file://{catalog_dir / 'warehouse'}"
    )
    catalog_seconds = time.perf_counter() - t

    uris = [str(p.absolute()) for p in args.stores]
    if args.mode == "register":
        result = api.register_store(uris[0], catalog, NAMESPACE)
        image_rows, chunk_rows = result.image_assets_rows_published, result.chunk_rows_published
    else:
        result = api.ingest_stores_to_warehouse(uris, catalog, NAMESPACE)
        image_rows, chunk_rows = result.image_assets_rows_published, result.chunk_rows_published
    total = time.perf_counter() - t0

    publish = TIMES["publish"]
    phases = {
        "imports": imports,
        "catalog": catalog_seconds,
        "scan": TIMES["scan"],
        # publish = rows + arrow + cast + append + other (table load/create, the peer's validation)
        "publish": publish,
        "rows": TIMES["rows"],
        "arrow": TIMES["arrow"],
        "cast": TIMES["cast"],
        "append": TIMES["append"],
        "publish_other": publish - TIMES["rows"] - TIMES["arrow"] - TIMES["cast"] - TIMES["append"],
    }
    namespace = ".".join(NAMESPACE)
    out = {
        "tool": "peer",
        "phases": phases,
        "total": total,
        "rows": {"image_assets": image_rows, "chunk_index": chunk_rows},
        "catalog": {
            "name": CATALOG_NAME,
            "image_assets": f"{namespace}.image_assets",
            "chunk_index": f"{namespace}.chunk_index",
        },
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "notes": [WORKAROUND_NOTE],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
