"""Run one command and report its wall time and peak RSS: a small process between the harness and the run.

    python -S benchmarks/launch.py RESULT.json STDOUT STDERR CWD -- COMMAND [ARG ...]

Why a separate process: on Linux a child's ``ru_maxrss`` starts from the high-water mark of the process
that forked it (``execve`` folds the old address space's peak into the child's), so a child measured by a
harness that has grown to 300 MB (reading a 100M-row table back, say) reports at least 300 MB whatever it
used. This launcher stays at ~10 MB (standard library only, run with ``-S``), so the peak it reports is
the command's own. The environment is inherited from the launcher.
"""

import json
import os
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 6 or argv[4] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    result_path, out_path, err_path, cwd = argv[:4]
    cmd = argv[5:]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd)
        # wait4: this child's own rusage (RUSAGE_CHILDREN is a maximum over every child ever waited for).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: Popen must not wait again
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak_mb = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    with open(result_path, "w") as f:
        json.dump({"wall": wall, "peak_mb": peak_mb, "returncode": proc.returncode}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
