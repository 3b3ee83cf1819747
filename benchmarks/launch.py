"""Run one command and report its wall time and peak RSS: a small process between the harness and the run.

    python -S benchmarks/launch.py RESULT.json STDOUT STDERR CWD -- COMMAND [ARG ...]

Why a separate process: on Linux a child's ``ru_maxrss`` starts from the high-water mark of the process
that forked it (``execve`` folds the old address space's peak into the child's), so a child measured by a
harness that has grown to 300 MB (reading a 100M-row table back, say) reports at least 300 MB whatever it
used. This launcher stays at ~10 MB (standard library only, run with ``-S``), so the peak it reports is
the command's own. The environment is inherited from the launcher.

With ``BENCH_MAX_RSS_MB`` set, a command whose resident memory passes that many MB is killed (and reported
``"killed": true``) instead of driving the machine into swap: how a tool that does not fit is measured.
"""

import json
import os
import subprocess
import sys
import time


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main(argv: list[str]) -> int:
    if len(argv) < 6 or argv[4] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    result_path, out_path, err_path, cwd = argv[:4]
    cmd = argv[5:]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd)
        limit_mb = float(os.environ.get("BENCH_MAX_RSS_MB") or 0)
        killed = False
        # wait4: this child's own rusage (RUSAGE_CHILDREN is a maximum over every child ever waited for).
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if limit_mb else 0)
            if pid:
                break
            if not killed and _rss_mb(proc.pid) > limit_mb:
                proc.kill()
                killed = True
            time.sleep(0.2)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped: Popen must not wait again
    # ru_maxrss is KiB on Linux, bytes on macOS.
    peak_mb = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    with open(result_path, "w") as f:
        json.dump({"wall": wall, "peak_mb": peak_mb, "returncode": proc.returncode, "killed": killed}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
