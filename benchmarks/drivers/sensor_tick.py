"""Benchmark driver: ticks of the store sensor over a stores root and its catalog, in this process, as JSON.

    python benchmarks/drivers/sensor_tick.py ROOT [--ticks 3]

The catalog comes from the environment (the harness sets it, as for every measured process). Each tick is
``evaluate_store_sensor`` as the Dagster daemon calls it, given the previous tick's cursor; a tick is timed
from the call to its return (the daemon's process is long-lived: imports are not part of a tick).
"""

import argparse
import json
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("--ticks", type=int, default=3)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    from bioimage_pipeline.defs.resources import BioimageResource
    from bioimage_pipeline.defs.sensors import evaluate_store_sensor

    imports = time.perf_counter() - t0
    resource = BioimageResource(stores_dir=str(args.root.absolute()), quiet_seconds=0)
    cursor = None
    ticks = []
    for i in range(args.ticks):
        start = time.perf_counter()
        result = evaluate_store_sensor(resource, cursor, now=float(i))
        seconds = time.perf_counter() - start
        cursor = result.cursor
        ticks.append(
            {
                "seconds": round(seconds, 3),
                "cursor_bytes": len((cursor or "").encode()),
                "run_requests": len(result.run_requests),
            }
        )
    print(json.dumps({"imports_seconds": round(imports, 3), "ticks": ticks}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
