"""API tokens: how they are made, stored (only a hash), looked up, and kept on the local host.

Tokens: `secrets.token_urlsafe(32)` (256 random bits) behind a recognisable prefix. The store
keeps only their SHA-256; a token is looked up by that hash, so no comparison ever runs over a
secret. A slow hash (bcrypt, argon2) adds nothing for secrets of this entropy and would cost
every request milliseconds.

Every process that serves the API also makes sure its home holds a token of the local user
(`ensure_local_token`), written to `$CONDUCTOR_HOME/token` with mode 0600: the CLI reads it
there, so a single-host installation needs no set-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import pwd
import secrets
import threading
import time
from pathlib import Path
from typing import Protocol

from conductor.services.principal import Principal
from conductor.store.records import Token

log = logging.getLogger("conductor.token")

TOKEN_PREFIX = "cond_"
TOKEN_FILE = "token"


class TokenStore(Protocol):
    """What tokens need from the store (conductor.store.Store provides it)."""

    def token_by_hash(self, token_hash: str) -> Token | None: ...

    def create_token(self, user_name: str, token_hash: str, *, admin: bool, comment: str | None = None) -> int: ...


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _TokenCache:
    """Token rows by hash for a second: a busy client would otherwise pay a database read on
    every request. A revoked token therefore stops working within TOKEN_CACHE_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[int, str], tuple[float, Token | None]] = {}

    def get(self, store: TokenStore, digest: str) -> Token | None:
        key = (id(store), digest)
        now = time.monotonic()
        with self._lock:
            hit = self._rows.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = store.token_by_hash(digest)
        with self._lock:
            if len(self._rows) >= 10_000:
                self._rows.clear()  # bounded: guessing tokens cannot grow it without end
            self._rows[key] = (now + TOKEN_CACHE_SECONDS, row)
        return row


TOKEN_CACHE_SECONDS = 1.0
_TOKEN_CACHE = _TokenCache()


def lookup(store: TokenStore, token: str) -> Principal | None:
    """The principal of a token, or None when it is unknown or revoked."""
    if not token or len(token) > 512 or not token.isascii():
        return None
    digest = hash_token(token)
    row = _TOKEN_CACHE.get(store, digest)
    # The database found the row by equality; comparing again in constant time costs nothing
    # and keeps a collation or index quirk from ever matching a different hash.
    if row is None or row.token_hash is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return Principal(user=row.user_name, admin=row.admin, token_id=row.id)


def local_user() -> str:
    """The name of the user this process runs as (its effective uid)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def read_token_file(path: Path) -> str | None:
    """The token in `path`, or None; a symbolic link there is not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        text = handle.read(4096).strip()
    return text or None


def write_token_file(path: Path, token: str) -> None:
    """Write `token` to `path` with mode 0600, atomically: readers see the old or the new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def ensure_local_token(store: TokenStore, home: Path, user: str | None = None) -> tuple[Path, bool]:
    """Make `home/token` hold a live admin token; returns (path, whether one was created).

    A token already there is kept while the database knows it (restarts change nothing); one
    that was revoked, or belongs to another database, is replaced.
    """
    path = home / TOKEN_FILE
    existing = read_token_file(path)
    if existing is not None and lookup(store, existing) is not None:
        return path, False
    owner = user or local_user()
    token = new_token()
    token_id = store.create_token(owner, hash_token(token), admin=True, comment=f"local admin token in {path}")
    write_token_file(path, token)
    log.info("created admin token %d for user %s in %s (mode 0600; the CLI reads it there)", token_id, owner, path)
    return path, True
