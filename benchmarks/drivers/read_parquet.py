"""The floor of ``bench_profiles.py``: pyarrow reading every column of a Parquet file once, a row group at a
time (what any tool must at least do to carry every value of the table somewhere else).

    python drivers/read_parquet.py TABLE.parquet

Prints ``{"rows", "columns", "bytes", "seconds"}`` as JSON.
"""

import json
import sys
import time

import pyarrow.parquet as pq


def main() -> None:
    start = time.perf_counter()
    file = pq.ParquetFile(sys.argv[1])
    rows = size = 0
    for i in range(file.num_row_groups):
        group = file.read_row_group(i)
        rows += group.num_rows
        size += group.nbytes
    seconds = time.perf_counter() - start
    print(json.dumps({"rows": rows, "columns": file.metadata.num_columns, "bytes": size, "seconds": seconds}))


if __name__ == "__main__":
    main()
