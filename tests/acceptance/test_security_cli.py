"""The CLI acts only as its caller: a token file someone else planted is never used, and the
caller's token goes to no other user's program listening at the default address.

The attack: another user leaves `.conductor/token` (their own token) in a shared directory; whoever
runs `sbatch` there would submit as them, and they would read the job's output and environment.
Or they listen at 127.0.0.1:8000, where the CLI sends its token when no server is named.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support import Api, clean_env
from users import PortablePython, StartConductor, UnixUsers, make_token, user_server

DEFAULT_PORT = 8000  # the CLI's default address is 127.0.0.1 at this port (cli/client.py)
# A listener that writes what its first client sends into the file it is given.
_CATCHER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[2])))
s.listen()
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(10)
with open(sys.argv[1], "wb") as out:
    out.write(c.recv(65536))
"""


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


def _catch(python: PortablePython, caught: Path, uid: int, gid: int) -> subprocess.Popen[str]:
    listener = subprocess.Popen(
        [python.argv[0], "-c", _CATCHER, str(caught), str(DEFAULT_PORT)],
        user=uid, group=gid, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert listener.stdout is not None
    if listener.stdout.readline().strip() != "ready":
        listener.kill()
        raise AssertionError(f"cannot listen at 127.0.0.1:{DEFAULT_PORT} (in use?): {listener.communicate()[1]}")
    return listener


def test_the_cli_sends_no_token_to_another_users_listener_at_the_default_address(
    unix_users: UnixUsers, portable_python: PortablePython
) -> None:
    a, b = unix_users.a, unix_users.b
    _plant(a.home, "a-secret-token", a.uid, a.gid)  # as `conductor up` leaves it in a's home

    def sbatch(**env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*portable_python.argv, "sbatch", "--wrap", "true"],
            cwd=a.home, user=a.uid, group=a.gid, capture_output=True, text=True, timeout=60, check=False,
            # No server named: the CLI goes to its profile's URL, else its default address.
            env=clean_env(HOME=str(a.home), XDG_CONFIG_HOME="", PYTHONPATH=portable_python.pythonpath, **env),
        )

    def refused(result: subprocess.CompletedProcess[str], caught: Path) -> None:
        assert result.returncode != 0, result.stdout
        assert "not sending your token" in result.stderr and f"user {b.name} (uid {b.uid})" in result.stderr, (
            result.stderr
        )
        assert not caught.exists(), "the token went to b's listener"

    caught = b.home / "caught"
    listener = _catch(portable_python, caught, b.uid, b.gid)
    try:
        refused(sbatch(), caught)
        # The profile `conductor up` wrote, its server down: b listening at its URL gets nothing.
        profile = a.home / ".config" / "conductor"
        profile.mkdir(parents=True)
        (profile / "url").write_text(f"http://localhost:{DEFAULT_PORT}\n")
        (profile / "token").write_text("a-profile-token\n")
        for path in (profile.parent, profile, profile / "url", profile / "token"):
            os.chown(path, a.uid, a.gid)
            os.chmod(path, 0o600 if path.is_file() else 0o700)
        refused(sbatch(), caught)
        # Named in CONDUCTOR_URL: the caller's choice, another user's server included.
        sbatch(CONDUCTOR_URL=f"http://localhost:{DEFAULT_PORT}")
        listener.wait(10)
    finally:
        listener.kill()
        listener.communicate()
    assert b"a-profile-token" in caught.read_bytes()

    # Root's listener (a service's, as the shipped unit's user is a system account): it is sent,
    # to the profile's URL as to the default address.
    for caught, token in ((unix_users.base / "by-root-profile", b"a-profile-token"),
                          (unix_users.base / "by-root-default", b"a-secret-token")):
        listener = _catch(portable_python, caught, 0, 0)
        try:
            sbatch()
            listener.wait(10)
        finally:
            listener.kill()
            listener.communicate()
        assert token in caught.read_bytes()
        for name in ("url", "token"):
            (profile / name).unlink(missing_ok=True)
