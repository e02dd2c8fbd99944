"""The CLI from any directory, with no variables set: `conductor up` records its URL and token in
the profile of the user who started it, the commands and the shims find them there, and a user
without a token is told in one sentence how to get one."""

from __future__ import annotations

import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
from support import TERMINAL, Api, ConductorProcess, clean_env


def _user_env(home: Path) -> dict[str, str]:
    """A login's environment: HOME, PATH and nothing of conductor's (nor XDG_CONFIG_HOME)."""
    env = clean_env(HOME=str(home))
    env.pop("XDG_CONFIG_HOME", None)
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False)


def _conductor(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "conductor", *args], cwd, env)


def test_commands_work_from_any_directory_for_the_user_who_started_up(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    login = tmp_path / "login"
    login.mkdir()
    server = start_conductor("--cpus", "2", env={"HOME": str(login), "XDG_CONFIG_HOME": ""})
    # What the user is told, once the API listens.
    banner = server.log()
    assert f"conductor is up at {server.url}" in banner
    assert "conductor sbatch" in banner and "conductor slurm-shims" in banner
    hint = re.search(r"Other users need a token: conductor (token --home \S+ create --user) NAME", banner)
    assert hint is not None, banner
    profile = login / ".config" / "conductor"
    assert stat.S_IMODE(profile.stat().st_mode) == 0o700
    assert stat.S_IMODE((profile / "token").stat().st_mode) == 0o600
    assert (profile / "url").read_text().strip() == server.url

    env = _user_env(login)
    elsewhere = tmp_path / "projects" / "x"
    elsewhere.mkdir(parents=True)
    (elsewhere / "hello.sh").write_text("#!/bin/sh\necho hello from $SLURM_JOB_ID\n")
    out = _conductor(elsewhere, env, "sbatch", "hello.sh")
    assert out.returncode == 0, out.stderr
    job_id = int(re.fullmatch(r"Submitted batch job (\d+)\n", out.stdout).group(1))  # type: ignore[union-attr]
    api = Api(server.url)
    try:
        assert api.wait_state(job_id, TERMINAL)["state"] == "COMPLETED"
    finally:
        api.close()
    assert (elsewhere / f"slurm-{job_id}.out").read_text() == f"hello from {job_id}\n"
    squeue = _conductor(elsewhere, env, "squeue", "-h", "-t", "all", "-o", "%i %T")
    assert squeue.returncode == 0, squeue.stderr
    assert f"{job_id} COMPLETED" in squeue.stdout
    stats = _conductor(elsewhere, env, "stats", "--json")
    assert stats.returncode == 0 and '"total_cpus": 2' in stats.stdout, stats.stderr
    # The token command the banner shows works from any directory too: it names the home.
    made = _conductor(elsewhere, env, *shlex.split(hint.group(1)), "nobody")
    assert made.returncode == 0, made.stderr
    answer = httpx.get(f"{server.url}/jobs/stats", headers={"Authorization": f"Bearer {made.stdout.strip()}"})
    assert answer.status_code == 200, answer.text

    # Shims remember a server named when they were made (--url): they reach it without the
    # profile. (Made without one, they find it as the CLI does: the profile.)
    shims = tmp_path / "shims"
    assert _conductor(elsewhere, env, "slurm-shims", "--url", server.url, str(shims)).returncode == 0
    stranger = _user_env(tmp_path / "nobody-home")
    stranger["PATH"] = f"{shims}:{stranger['PATH']}"
    stranger["CONDUCTOR_TOKEN"] = server.token
    shim = _run(["squeue", "-h", "-t", "all", "-o", "%i"], elsewhere, stranger)
    assert shim.returncode == 0, shim.stderr
    assert str(job_id) in shim.stdout.split()

    # Another user (here: a login without the profile) gets one sentence: where to get a token.
    del stranger["CONDUCTOR_TOKEN"]
    refused = _run(["squeue"], elsewhere, stranger)
    assert refused.returncode == 1
    lines = refused.stderr.splitlines()
    assert len(lines) == 1, refused.stderr
    assert "conductor token create --user" in lines[0] and ".config/conductor/token" in lines[0]
