"""`conductor wait JOBID...` and `sbatch --wait`: Slurm's exit status, a line per ended job, and a
progress line only on a terminal, against a real `conductor up`."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ConductorProcess, clean_env, running_up


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    with running_up(tmp_path_factory.mktemp("wait") / "home", "--cpus", "4") as process:
        yield process


@pytest.fixture
def env(server: ConductorProcess) -> dict[str, str]:
    return clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token)


def _conductor(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conductor", *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=60, check=False,
    )


def _submit(env: dict[str, str], cwd: Path, *args: str) -> str:
    result = _conductor(env, cwd, "sbatch", "--parsable", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _on_a_terminal(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal: (exit status, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "conductor", *args], stdout=subprocess.PIPE, stderr=slave,
        stdin=subprocess.DEVNULL, env=env, cwd=cwd,
    )
    os.close(slave)
    shown = b""
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(master)
    assert process.stdout is not None
    return process.wait(timeout=30), process.stdout.read().decode(), shown.decode(errors="replace")


def test_wait_returns_the_highest_status_and_a_line_per_job(env: dict[str, str], tmp_path: Path) -> None:
    failing = _submit(env, tmp_path, "--wrap", "sleep 1; exit 4")
    array = _submit(env, tmp_path, "-a", "1-2", "--wrap", "true")
    result = _conductor(env, tmp_path, "wait", failing, array)
    assert result.returncode == 4, result.stderr
    assert result.stderr == ""  # no terminal: no progress line
    assert sorted(result.stdout.splitlines()) == sorted(
        [
            f"job {failing} FAILED exit code 4:0 (NonZeroExitCode)",
            f"job {array}_1 COMPLETED exit code 0:0",
            f"job {array}_2 COMPLETED exit code 0:0",
        ]
    )
    killed = _submit(env, tmp_path, "--wrap", "kill -9 $$")
    assert _conductor(env, tmp_path, "wait", killed).returncode == 128 + 9
    done = _submit(env, tmp_path, "--wrap", "true")
    quiet = _conductor(env, tmp_path, "wait", "-q", done)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")


def test_wait_for_an_unknown_job_is_an_error(env: dict[str, str], tmp_path: Path) -> None:
    result = _conductor(env, tmp_path, "wait", "999999")
    assert (result.returncode, result.stderr) == (1, "wait: error: Invalid job id specified: 999999\n")
    assert _conductor(env, tmp_path, "wait").returncode == 1


def test_a_terminal_gets_a_progress_line_and_stdout_keeps_the_results(env: dict[str, str], tmp_path: Path) -> None:
    job = _submit(env, tmp_path, "--wrap", "sleep 2")
    status, out, shown = _on_a_terminal(env, tmp_path, "wait", job)
    assert status == 0
    assert out == f"job {job} COMPLETED exit code 0:0\n"
    assert f"waiting for job {job}: running" in shown


def test_sbatch_wait_exits_with_the_jobs_status(env: dict[str, str], tmp_path: Path) -> None:
    status, out, shown = _on_a_terminal(env, tmp_path, "sbatch", "-W", "--wrap", "sleep 1; exit 3")
    assert status == 3
    match = re.fullmatch(r"Submitted batch job (\d+)\n", out)
    assert match is not None, out
    assert f"waiting for job {match.group(1)}" in shown
    plain = _conductor(env, tmp_path, "sbatch", "--wait", "--parsable", "--wrap", "exit 5")
    assert plain.returncode == 5 and re.fullmatch(r"\d+\n", plain.stdout) and plain.stderr == ""
