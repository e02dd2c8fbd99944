"""What a reviewer following the README met, against real servers: `conductor token` run where no
database is refuses instead of making one the server never reads; sacctmgr prints what it did
only once the server did it; seff answers --usage; and shims made without a URL follow the
profile, as the CLI does, when `conductor up` restarts on another port."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
from support import Api, ConductorProcess, PostgresCluster, clean_env


def _conductor(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conductor", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )


def _answers(url: str, token: str) -> int:
    return httpx.get(url + "/jobs", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


# ------------------------------------------------------------------------------- conductor token
def test_token_commands_refuse_a_database_that_does_not_exist(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    assert not (home / "conductor.db").exists()
    # `conductor up` makes its database and then its admin token: never refused.
    server = start_conductor("--cpus", "1", home=home)
    assert _answers(server.url, server.token) == 200

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env()  # no CONDUCTOR_HOME: the default home is ./.conductor, which has no database
    looked_for = elsewhere / ".conductor" / "conductor.db"
    for args in (["create", "--user", getpass.getuser()], ["list"], ["revoke", "1"]):
        refused = _conductor(elsewhere, env, "token", *args)
        assert refused.returncode == 1, (args, refused.stdout)
        assert refused.stdout == ""
        (line,) = refused.stderr.splitlines()
        assert f"no database at {looked_for}" in line, line
        assert "--home" in line and "CONDUCTOR_HOME" in line and "CONDUCTOR_DATABASE_URL" in line, line
    assert os.listdir(elsewhere) == []  # nothing made: no ./.conductor, no empty database

    missing = tmp_path / "nowhere" / "conductor.db"
    refused = _conductor(elsewhere, clean_env(CONDUCTOR_DATABASE_URL=str(missing)), "token", "list")
    assert refused.returncode == 1 and f"no database at {missing}" in refused.stderr
    assert not missing.parent.exists()

    # Named, the server's database gives a token the server knows.
    made = _conductor(elsewhere, env, "token", "--home", str(home), "create", "--user", getpass.getuser())
    assert made.returncode == 0, made.stderr
    assert _answers(server.url, made.stdout.strip()) == 200
    listed = _conductor(elsewhere, clean_env(CONDUCTOR_HOME=str(home)), "token", "list")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3, listed.stdout  # header, up's, ours


def test_token_commands_on_postgresql_make_no_home(pg_cluster: PostgresCluster, tmp_path: Path) -> None:
    url = pg_cluster.create_database(f"tokens_{uuid.uuid4().hex[:12]}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    made = _conductor(elsewhere, clean_env(CONDUCTOR_DATABASE_URL=url), "token", "create", "--user", getpass.getuser())
    assert made.returncode == 0, made.stderr
    listed = _conductor(elsewhere, clean_env(CONDUCTOR_DATABASE_URL=url), "token", "list")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 2, listed.stdout
    assert os.listdir(elsewhere) == []  # the database is PostgreSQL's: no ./.conductor made here


# ------------------------------------------------------------------------------------- sacctmgr
def test_sacctmgr_prints_no_success_text_for_a_refused_change(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    server = start_conductor("--cpus", "1")
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=server.token, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    assert _conductor(tmp_path, env, "sacctmgr", "-i", "add", "account", "physics").returncode == 0
    for words, message in [
        (["add", "user", "alice", "Account=physics,chemistry"], "account 'chemistry' does not exist"),
        (["modify", "qos", "nosuch", "set", "MaxJobsPerUser=2"], "nosuch"),
    ]:
        refused = _conductor(tmp_path, env, "sacctmgr", "-i", *words)
        assert refused.returncode == 1, words
        assert refused.stdout == "", (words, refused.stdout)
        assert refused.stderr.startswith("sacctmgr: error: ") and message in refused.stderr, refused.stderr
    added = _conductor(tmp_path, env, "sacctmgr", "-i", "add", "user", "alice", "Account=physics")
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith(" Adding User(s)\n  alice\n")


# ----------------------------------------------------------------------------------------- seff
def test_seff_usage_is_slurms_brief_usage(tmp_path: Path) -> None:
    usage = _conductor(tmp_path, clean_env(), "seff", "--usage")
    assert (usage.returncode, usage.stdout, usage.stderr) == (0, "Usage: seff [Options] <Jobid>\n", "")


# ---------------------------------------------------------------------------------------- shims
def _login_env(login: Path) -> dict[str, str]:
    """A login's environment: HOME, and nothing of conductor's (nor XDG_CONFIG_HOME)."""
    env = clean_env(HOME=str(login))
    env.pop("XDG_CONFIG_HOME", None)
    return env


def _wait_profile_url(login: Path, url: str) -> None:
    path = login / ".config" / "conductor" / "url"
    deadline = time.monotonic() + 10
    while not (path.exists() and path.read_text().strip() == url):
        assert time.monotonic() < deadline, f"the profile does not name {url}"
        time.sleep(0.05)


def test_shims_made_without_a_url_follow_the_profile_across_restarts(
    start_conductor: Callable[..., ConductorProcess], tmp_path: Path
) -> None:
    login = tmp_path / "login"
    login.mkdir()
    home = tmp_path / "home"
    profile_env = {"HOME": str(login), "XDG_CONFIG_HOME": ""}
    first = start_conductor("--cpus", "1", home=home, env=profile_env)
    _wait_profile_url(login, first.url)
    env = _login_env(login)
    shims = tmp_path / "shims"
    made = _conductor(tmp_path, env, "slurm-shims", str(shims))
    assert made.returncode == 0, made.stderr
    assert "CONDUCTOR_URL" not in (shims / "squeue").read_text()  # the profile's URL is not frozen in
    job_id = Api(first.url).submit("#!/bin/sh\ntrue\n", current_working_directory=str(tmp_path), hold=True)

    assert first.stop() == 0
    second = start_conductor("--cpus", "1", home=home, env=profile_env)
    assert second.port != first.port
    _wait_profile_url(login, second.url)
    env["PATH"] = f"{shims}:{env['PATH']}"
    shim = subprocess.run(["squeue", "-h", "-o", "%i"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert shim.returncode == 0, shim.stderr
    assert shim.stdout.split() == [str(job_id)]
    plain = _conductor(tmp_path, env, "squeue", "-h", "-o", "%i")
    assert plain.stdout == shim.stdout


def test_shims_remember_a_url_that_was_named(tmp_path: Path) -> None:
    named = _conductor(tmp_path, clean_env(), "slurm-shims", "--url", "http://127.0.0.1:8123/", str(tmp_path / "a"))
    assert named.returncode == 0, named.stderr
    assert 'CONDUCTOR_URL="${CONDUCTOR_URL:-http://127.0.0.1:8123}"' in (tmp_path / "a" / "sbatch").read_text()
    from_env = _conductor(tmp_path, clean_env(CONDUCTOR_URL="http://127.0.0.1:8124"), "slurm-shims", str(tmp_path / "b"))
    assert from_env.returncode == 0, from_env.stderr
    assert 'CONDUCTOR_URL="${CONDUCTOR_URL:-http://127.0.0.1:8124}"' in (tmp_path / "b" / "sbatch").read_text()
    bad = _conductor(tmp_path, clean_env(CONDUCTOR_URL="http://h:1/$(x)"), "slurm-shims", str(tmp_path / "c"))
    assert bad.returncode == 1 and "CONDUCTOR_URL: 'http://h:1/$(x)' may not contain" in bad.stderr
