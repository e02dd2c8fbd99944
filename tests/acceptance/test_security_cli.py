"""The CLI acts only as its caller: a token file someone else planted is never used.

The attack: another user leaves `.conductor/token` (their own token) in a shared directory; whoever
runs `sbatch` there would submit as them, and they would read the job's output and environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import Api, clean_env
from users import StartConductor, UnixUsers, make_token, user_server


def _plant(directory: Path, token: str, uid: int, gid: int, *, dir_mode: int = 0o700, file_mode: int = 0o600) -> None:
    home = directory / ".conductor"
    home.mkdir(parents=True)
    (home / "token").write_text(token + "\n")
    os.chown(home, uid, gid)
    os.chown(home / "token", uid, gid)
    os.chmod(home, dir_mode)
    os.chmod(home / "token", file_mode)


def _sbatch(url: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conductor", "sbatch", "--parsable", "--wrap", "true"],
        cwd=cwd,
        # No CONDUCTOR_TOKEN and no CONDUCTOR_HOME: the CLI looks for a token file by itself.
        env=clean_env(CONDUCTOR_URL=url, HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_never_uses_a_token_file_planted_by_another_user(
    start_conductor: StartConductor, unix_users: UnixUsers, tmp_path: Path
) -> None:
    server = user_server(start_conductor, unix_users)
    admin = Api(server.url)
    b = unix_users.b
    empty_home = tmp_path / "caller-home"
    empty_home.mkdir()

    # A shared, world-writable directory (as /tmp or a project space) where b planted a token.
    shared = unix_users.base / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    _plant(shared, make_token(server.home, b.name), b.uid, b.gid)
    result = _sbatch(server.url, shared, empty_home)
    assert result.returncode != 0, result.stdout
    assert "not using the token" in result.stderr and f"belongs to uid {b.uid}" in result.stderr, result.stderr
    assert not [j for j in admin.http.get("/jobs", params={"user": b.name}).json()["jobs"]], "submitted as b"

    # The caller's own token file in the current directory is used, as `conductor up` leaves it.
    mine = tmp_path / "project"
    _plant(mine, server.token, os.geteuid(), os.getegid())
    result = _sbatch(server.url, mine, empty_home)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().isdigit()

    # Its own, but writable by others (anyone could have replaced it): refused.
    os.chmod(mine / ".conductor" / "token", 0o666)
    result = _sbatch(server.url, mine, empty_home)
    assert result.returncode != 0 and "writable by others" in result.stderr, result.stderr
    os.chmod(mine / ".conductor" / "token", 0o600)
    # In a directory others may write to (they could swap the file): refused.
    os.chmod(mine / ".conductor", 0o777)
    result = _sbatch(server.url, mine, empty_home)
    assert result.returncode != 0 and "directory is writable by others" in result.stderr, result.stderr
    os.chmod(mine / ".conductor", 0o700)
    # A symbolic link at the token is not followed.
    (mine / ".conductor" / "token").rename(mine / ".conductor" / "real")
    (mine / ".conductor" / "token").symlink_to("real")
    result = _sbatch(server.url, mine, empty_home)
    assert result.returncode != 0, result.stdout

    # CONDUCTOR_HOME set: only that home is consulted, not the current directory's.
    (mine / ".conductor" / "token").unlink()
    (mine / ".conductor" / "real").rename(mine / ".conductor" / "token")
    result = subprocess.run(
        [sys.executable, "-m", "conductor", "sbatch", "--parsable", "--wrap", "true"],
        cwd=mine,
        env=clean_env(CONDUCTOR_URL=server.url, HOME=str(empty_home), CONDUCTOR_HOME=str(empty_home)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0, result.stdout
