"""`conductor backup` into a shared directory: the copy of the database (every job's script and
environment) is written to a file of a name nobody could make ahead, and never where anyone
else may swap it."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from conductor.store.backup import BackupError, backup_sqlite


def _database(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, environment TEXT)")
        conn.execute("INSERT INTO jobs (environment) VALUES ('{\"SECRET\": \"s\"}')")
    return path


def test_names_planted_in_a_shared_directory_receive_nothing(tmp_path: Path) -> None:
    source = _database(tmp_path / "conductor.db")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # as /tmp
    # Another user's files at every name the copy used to be written to (its pid's).
    planted = [shared / f".nightly.db.partial-{pid}" for pid in (os.getpid(), *range(1, 64))]
    for path in planted:
        path.write_bytes(b"")
        os.chown(path, 65534, 65534)
        os.chmod(path, 0o666)
    done = backup_sqlite(source, shared / "nightly.db")
    assert done.jobs == 1
    info = os.stat(shared / "nightly.db")
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o600
    assert all(path.read_bytes() == b"" for path in planted)
    assert sorted(p.name for p in shared.iterdir() if not p.name.startswith(".nightly.db.partial-")) == ["nightly.db"]
    assert len(list(shared.iterdir())) == len(planted) + 1  # no copy left behind


def test_a_directory_anyone_may_swap_files_in_is_refused(tmp_path: Path) -> None:
    source = _database(tmp_path / "conductor.db")
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    with pytest.raises(BackupError, match="writable by everyone and not sticky"):
        backup_sqlite(source, open_dir / "nightly.db")
    assert list(open_dir.iterdir()) == []
