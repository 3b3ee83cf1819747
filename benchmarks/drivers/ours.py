"""Benchmark driver for this project: scan stores and write the catalog in this process, print JSON.

    python benchmarks/drivers/ours.py --catalog DIR STORE [STORE ...]

The same library calls as ``bioimage-pipeline register`` / ``ingest`` (``scan_paths`` then ``write_all``),
with each phase timed. One process per measured run: the harness measures its wall time and peak RSS from
outside; the phases here say where that time went. Runs with the project's virtualenv.
"""

# Only the standard library at module level: the heavy imports are timed inside main().
import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

CATALOG_NAME = "bioimage"


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--catalog", required=True, type=Path, help="folder of the SQLite catalog and warehouse")
    parser.add_argument("stores", nargs="+", type=Path)
    args = parser.parse_args(argv)

    catalog_dir = args.catalog.absolute()
    # The same configuration the console script reads (plain file:// + absolute path: PyIceberg does not
    # percent-decode).
    os.environ[f"PYICEBERG_CATALOG__{CATALOG_NAME.upper()}__URI"] = f"sqlite:///{catalog_dir / 'catalog.db'}"
    os.environ[f"PYICEBERG_CATALOG__{CATALOG_NAME.upper()}__WAREHOUSE"] = f"file://{catalog_dir / 'warehouse'}"

    phases: dict[str, float] = {}
    t = time.perf_counter()
    # Everything the CLI imports on this path, including SQLAlchemy (which pyiceberg's SqlCatalog
    # imports lazily), so that "imports" holds all the import cost and the other phases hold the work.
    import pyiceberg.catalog.sql  # noqa: F401

    from bioimage_pipeline import ingest
    from bioimage_pipeline.catalog import load_catalog
    from bioimage_pipeline.config import PipelineConfig

    phases["imports"] = time.perf_counter() - t
    t = time.perf_counter()
    config = PipelineConfig.from_env()
    catalog = load_catalog(config)
    phases["catalog"] = time.perf_counter() - t

    t = time.perf_counter()
    # dataset_id None: the store's file name, as `register PATH` does.
    batch = ingest.scan_paths(config, catalog, [(p.absolute(), None) for p in args.stores])
    phases["scan"] = time.perf_counter() - t
    if batch.failed:
        print("\n".join(str(o.error) for o in batch.failed), file=sys.stderr)
        return 2

    t = time.perf_counter()
    writes = ingest.write_all(catalog, config.namespace, batch)
    phases["write"] = time.perf_counter() - t
    total = time.perf_counter() - t0

    rows = {w.table: w.rows_written for w in writes}
    result = {
        "tool": "ours",
        "phases": phases,
        "total": total,
        "rows": {"image_assets": rows.get("image_assets", 0), "chunk_index": rows.get("chunk_index", 0)},
        "catalog": {
            "name": CATALOG_NAME,
            "image_assets": f"{config.namespace}.image_assets",
            "chunk_index": f"{config.namespace}.chunk_index",
        },
        "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "notes": [],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
