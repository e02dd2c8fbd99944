"""An online, consistent copy of an SQLite database, taken while the server writes to it.

SQLite's backup API copies the pages of one read transaction: in WAL mode (ours) a reader
holds a snapshot and writers go on beside it, so the copy is the database as it was at one
instant and submissions are never blocked by it. One step copies everything: a backup in many
steps restarts whenever a writer changes a page it has copied, which under steady load could
be forever. PostgreSQL has its own tool for this (pg_dump), which the README describes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from conductor.errors import ConductorError


class BackupError(ConductorError):
    """A backup that could not be taken; the text says why."""


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    jobs: int
    size: int
    seconds: float


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite database URL; None for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def backup_sqlite(source: Path, destination: Path, *, replace: bool = False) -> Backup:
    """Copy the database at `source` to `destination` (mode 0600: it holds every job's script and
    environment), check the copy's integrity, and only then put it in place."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if destination.exists() and not replace:
        raise BackupError(f"{destination} exists; give another path, or --force to replace it")
    if not destination.parent.is_dir():
        raise BackupError(f"{destination.parent} is not a directory")
    mode = destination.parent.stat().st_mode
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        # Anyone could swap the copy being written for a link, or for a file of their own.
        raise BackupError(f"{destination.parent} is writable by everyone and not sticky: choose another directory")
    started = time.monotonic()
    # A new file of a name nobody can guess, made here: in a shared directory (as /tmp) a name
    # made ahead by another user received the whole database, theirs to read.
    try:
        fd, partial_name = tempfile.mkstemp(prefix=f".{destination.name}.partial-", dir=destination.parent)
    except OSError as exc:
        raise BackupError(f"cannot write in {destination.parent}: {exc.strerror}") from None
    os.close(fd)
    partial = Path(partial_name)
    try:
        # Read-only: a backup must never be what changes the database it copies.
        with contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)) as reader:
            with contextlib.closing(sqlite3.connect(partial)) as copy:
                reader.backup(copy)
                verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
                if verdict != "ok":
                    raise BackupError(f"the copy failed its integrity check: {verdict}")
                # A copy that stands alone: no WAL file beside it to go missing.
                copy.execute("PRAGMA journal_mode=DELETE")
                (jobs,) = copy.execute("SELECT count(*) FROM jobs").fetchone()
        os.replace(partial, destination)
    except sqlite3.Error as exc:
        raise BackupError(f"backup of {source} failed: {exc}") from None
    except OSError as exc:
        raise BackupError(f"cannot put the backup at {destination}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
    return Backup(destination, int(jobs), destination.stat().st_size, time.monotonic() - started)
