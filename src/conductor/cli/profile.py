"""The per-user profile: which server this user's commands talk to, and with which token.

`conductor up` records its URL and its local admin token here when it starts listening, for the
user who started it, so `sbatch`, `squeue` and `conductor stats` work from any directory with
no variables set, whatever port the server chose. The profile is a directory of the user's own
configuration (`$XDG_CONFIG_HOME/conductor`, else `~/.config/conductor`, mode 0700) holding two
small files, `url` and `token` (mode 0600), written atomically.

Precedence, per value: CONDUCTOR_URL / CONDUCTOR_TOKEN (and CONDUCTOR_HOME's token file) first,
then the profile, then the legacy token files `./.conductor/token` and `~/.conductor/token`.
The profile's token is sent only to the profile's own URL: a CONDUCTOR_URL naming another
server must not receive the token of this one.

Like every token file, the profile is read only when it is the caller's alone (client.py's
ownership checks): its URL decides where the token goes, so a planted URL would be as bad as a
planted token.
"""

from __future__ import annotations

import os

PROFILE_URL = "url"
PROFILE_TOKEN = "token"


def profile_dir() -> str:
    """`$XDG_CONFIG_HOME/conductor` when that variable is an absolute path (as the XDG base
    directory specification requires), else `~/.config/conductor`."""
    base = os.environ.get("XDG_CONFIG_HOME", "").strip()
    if not base or not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "conductor")


def _write_private(directory: str, name: str, text: str) -> None:
    """Write `directory/name` with mode 0600, atomically (readers see the old or the new text)."""
    path = os.path.join(directory, name)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        os.unlink(temporary)
    except FileNotFoundError:
        pass
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)
    os.replace(temporary, path)


def record(url: str, token: str, directory: str | None = None) -> str:
    """Record `url` and `token` as this user's server; returns the directory.

    Raises OSError when the directory cannot be made or written (a read-only home): the caller
    decides whether that matters.
    """
    target = directory or profile_dir()
    os.makedirs(target, mode=0o700, exist_ok=True)
    # makedirs leaves an existing directory's mode alone; the token inside must not be listed
    # or reached by others, whatever umask made the directory.
    info = os.stat(target)
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        os.chmod(target, 0o700)
    _write_private(target, PROFILE_TOKEN, token)
    _write_private(target, PROFILE_URL, url.rstrip("/"))
    return target
