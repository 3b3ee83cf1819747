"""`make ui`: the Dagster webserver and daemon (`dagster dev`), started and stopped cleanly.

- A port that is taken fails at once, with the way out (``UI_PORT``), instead of a daemon left running
  without a UI.
- If the webserver stops serving while the daemon lives on, everything is stopped.
- Ctrl-C (SIGINT) or SIGTERM stops the webserver, the daemon and their code servers within seconds:
  ``dagster dev`` runs in a session of its own, and the whole session is signalled, then killed if it
  lingers.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: Seconds the processes get to stop after SIGTERM before they are killed.
STOP_GRACE = 6.0
#: Seconds the webserver may take to start serving.
START_TIMEOUT = 180.0


def port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def serving(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to every process of the session, then SIGKILL to what is left after the grace period."""
    group = process.pid
    for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 2.0)):
        if not alive(group):
            break
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            process.poll()  # reap dagster dev itself, so it does not linger as a zombie of the group
            if not alive(group):
                break
            time.sleep(0.1)
    process.poll()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make ui", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("UI_PORT") or 3000))
    parser.add_argument("--workspace", default=str(Path(__file__).resolve().parents[1] / "workspace.yaml"))
    args = parser.parse_args(argv)
    if port_taken(args.host, args.port):
        print(
            f"make ui: {args.host}:{args.port} is already in use (another `make ui`?). Stop it, or choose another "
            f"port: make ui UI_PORT={args.port + 1}",
            file=sys.stderr,
        )
        return 1
    dagster = Path(sys.executable).parent / "dagster"
    command = [str(dagster), "dev", "-w", args.workspace, "-h", args.host, "-p", str(args.port)]
    process = subprocess.Popen(command, start_new_session=True)
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    up = False
    try:
        while not stopping:
            code = process.poll()
            if code is not None:
                return code
            if serving(args.host, args.port):
                if not up:
                    print(f"make ui: serving on http://{args.host}:{args.port} (Ctrl-C stops everything)", flush=True)
                up = True
            elif up:
                print("make ui: the webserver stopped serving; stopping the daemon too", file=sys.stderr)
                return 1
            elif time.monotonic() - started > START_TIMEOUT:
                print(
                    f"make ui: nothing served on {args.host}:{args.port} after {START_TIMEOUT:.0f} s", file=sys.stderr
                )
                return 1
            time.sleep(0.5)
        return 128 + stopping[0]
    finally:
        stop(process)


if __name__ == "__main__":
    sys.exit(main())
