"""squeue's filters against a real `conductor up`, where they read what the server stores: a
job's QOS (none, shown as "normal"), its node list, and the cluster's nodes (for -w)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ConductorProcess, clean_env, running_up

NODE = "cn01"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("squeue-live") / "home", "--cpus", "2", "--node-name", NODE) as process:
        yield process


def _cli(server: ConductorProcess, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home))
    return subprocess.run(
        [sys.executable, "-m", "conductor", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60,
        check=False,
    )


def test_nodelist_qos_and_unknown_users_against_a_server(server: ConductorProcess, tmp_path: Path) -> None:
    def squeue(*args: str) -> subprocess.CompletedProcess[str]:
        return _cli(server, tmp_path, "squeue", *args)

    def submitted(*args: str) -> int:
        done = _cli(server, tmp_path, "sbatch", "--parsable", *args)
        assert re.fullmatch(r"\d+\n", done.stdout), (done.stdout, done.stderr)
        return int(done.stdout)

    running = submitted("--wrap", "sleep 120")
    held = submitted("-H", "--wrap", "true")
    try:
        deadline = time.monotonic() + 30
        while squeue("-h", "-j", str(running), "-o", "%T").stdout.strip() != "RUNNING":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)

        # -w: the jobs on those nodes; a pending job, without nodes, is never one of them.
        assert squeue("-h", "-o", "%i", "-w", NODE).stdout.split() == [str(running)]
        pending = squeue("-h", "-o", "%i", "-w", "cn[01-01]", "-t", "PD")
        assert (pending.returncode, pending.stdout) == (0, "")
        unknown = squeue("-h", "-w", "nosuchnode", "-t", "R")
        assert (unknown.returncode, unknown.stdout, unknown.stderr) == (
            1, "", "squeue: error: Invalid node name nosuchnode\n"
        )

        # -q: a job stored without a QOS shows, and is selected as, "normal".
        assert squeue("-h", "-o", "%i %q", "-j", str(running)).stdout == f"{running} normal\n"
        assert sorted(squeue("-h", "-o", "%i", "-q", "normal").stdout.split()) == sorted([str(running), str(held)])
        assert squeue("-h", "-o", "%i", "-q", "nosuchqos").stdout == ""

        # -u with a user this host does not know: asked of the server, which has no job of it.
        nobody = squeue("-o", "%i", "-u", "cdt-no-such-user")
        assert (nobody.returncode, nobody.stdout, nobody.stderr) == (0, "JOBID\n", "")
        # A uid nobody has: reported, and no job listed; squeue goes on (exit 0).
        no_uid = squeue("-o", "%i", "-u", "4294967294")
        assert (no_uid.returncode, no_uid.stdout, no_uid.stderr) == (
            0, "JOBID\n", "squeue: error: Invalid user: 4294967294\n\n"
        )
    finally:
        _cli(server, tmp_path, "scancel", str(running), str(held))
