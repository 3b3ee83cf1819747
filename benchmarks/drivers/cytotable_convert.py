"""CytoTable's conversion of a CellProfiler SQLite to one single-cell Parquet file, as ``bench_profiles.py``
runs it (in CytoTable's own virtualenv, ``peer_env.ensure_cytotable_python``).

    python drivers/cytotable_convert.py SOURCE.sqlite DEST.parquet [--chunk-size N] [--threads N]

The ``cellprofiler_sqlite_pycytominer`` preset (Per_Image, Per_Cells, Per_Cytoplasm, Per_Nuclei merged on
ImageNumber and the parent object numbers), with Parsl's thread pool: the whole conversion in this one
process, so the launcher's peak RSS is all of it (Parsl's default executor would run it in worker processes
the launcher does not see). Prints ``{"output", "seconds", "rows", "columns"}`` as JSON.
"""

import argparse
import json
import time

import parsl
import pyarrow.parquet as pq
from cytotable import convert


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("dest")
    parser.add_argument("--chunk-size", type=int, default=None, help="rows per chunk (default: the preset's)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    options = {"chunk_size": args.chunk_size} if args.chunk_size else {}
    start = time.perf_counter()
    output = convert(
        source_path=args.source,
        dest_path=args.dest,
        dest_datatype="parquet",
        preset="cellprofiler_sqlite_pycytominer",
        parsl_config=parsl.Config(executors=[parsl.executors.ThreadPoolExecutor(max_threads=args.threads)]),
        **options,
    )
    seconds = time.perf_counter() - start
    meta = pq.ParquetFile(output).metadata
    print(json.dumps({"output": str(output), "seconds": seconds, "rows": meta.num_rows, "columns": meta.num_columns}))


if __name__ == "__main__":
    main()
