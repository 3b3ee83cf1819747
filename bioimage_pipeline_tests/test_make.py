"""The commands a new user meets first: `make test` finding (or naming) Chromium, and `make ui` on a taken
port and under Ctrl-C. Real make, real processes, real ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from bioimage_pipeline_tests.conftest import REPO
from bioimage_pipeline_tests.test_end_to_end import _free_port, environment, wait_for_webserver

ENSURE = REPO / "scripts" / "ensure-chromium"


def test_ensure_chromium_finds_it_or_says_exactly_what_to_install(tmp_path) -> None:
    assert subprocess.run(["sh", str(ENSURE)], capture_output=True).returncode == 0  # on PATH (CI installs it)
    # A machine without it, where installing is not possible: the message says what to do.
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("id",):
        (bare / tool).symlink_to(shutil.which(tool))
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) runs the check as an unprivileged user"
    env = {"PATH": str(bare)}
    as_user = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", shutil.which("sh"), str(ENSURE)]
    result = subprocess.run(as_user, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "needs Chromium" in result.stderr and "sudo apt-get install chromium" in result.stderr
    assert "BIOIMAGE_CHROMIUM" in result.stderr
    # Root, but no apt-get to install with: the same message.
    result = subprocess.run([shutil.which("sh"), str(ENSURE)], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "sudo apt-get install chromium" in result.stderr
    # An explicit binary is used, and checked.
    result = subprocess.run(
        [shutil.which("sh"), str(ENSURE)],
        env={**env, "BIOIMAGE_CHROMIUM": str(tmp_path / "nope")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "is not an executable file" in result.stderr


def make_ui(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = environment(tmp_path, BIOIMAGE_SENSOR_INTERVAL_SECONDS="3600")
    return subprocess.Popen(
        ["make", "-C", str(REPO), "ui", f"UI_PORT={port}", f"DAGSTER_HOME={env['DAGSTER_HOME']}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: signalled below as a terminal signals its foreground
    )


@pytest.mark.slow
def test_make_ui_fails_fast_on_a_taken_port(tmp_path) -> None:
    port = _free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        process = make_ui(tmp_path, port)
        _, err = process.communicate(timeout=60)
    assert process.returncode != 0 and time.monotonic() - started < 30
    assert f"127.0.0.1:{port} is already in use" in err and f"make ui UI_PORT={port + 1}" in err


def descendants(pid: int) -> set[int]:
    children: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, set()).add(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@pytest.mark.slow
def test_make_ui_serves_then_stops_everything_on_ctrl_c(tmp_path) -> None:
    port = _free_port()
    process = make_ui(tmp_path, port)
    try:
        assert wait_for_webserver(port, process), process.communicate()[1][-3000:]
        family = descendants(process.pid)
        assert len(family) >= 4  # the launcher, dagster dev, its webserver and daemon (and code servers)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground process group
        stopped = time.monotonic()
        process.wait(timeout=10)
        while running(family) and time.monotonic() - stopped < 10:
            time.sleep(0.2)
        assert not running(family), f"still running after 10 s: {running(family)}"
        assert time.monotonic() - stopped < 10
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0  # nothing serves the port any more
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
