"""`conductor backup PATH`: a consistent copy of the SQLite database, taken while jobs run.

    conductor backup PATH [--home DIR] [--force]

It reads the database the server uses (CONDUCTOR_DATABASE_URL, else the SQLite file under
CONDUCTOR_HOME) and never writes to it; the server and its jobs go on. To restore: stop the
server, put the copy in place of the database file (removing the old file's `-wal` and `-shm`
beside it), start the server. With PostgreSQL, use pg_dump (see the README).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from conductor.commands.runtime import StartupError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conductor backup",
        description="Copy the SQLite database, consistently and without stopping anything, to PATH.",
    )
    parser.add_argument("path", metavar="PATH", help="where the copy goes (a new file)")
    parser.add_argument("--home", help="state directory (default: CONDUCTOR_HOME or ./.conductor)")
    parser.add_argument("--force", action="store_true", help="replace PATH if it exists")
    return parser


def main(argv: list[str]) -> int:
    from conductor.commands.common import fail
    from conductor.store.backup import BackupError, backup_sqlite, sqlite_path

    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(argparse.Namespace(home=args.home))
    except StartupError as exc:
        return fail(str(exc))
    source = sqlite_path(settings.resolved_database_url())
    if source is None:
        return fail(
            "backup: the database is PostgreSQL; back it up with pg_dump "
            "(pg_dump --format=custom --file=PATH DBNAME), as the README describes"
        )
    try:
        made = backup_sqlite(source, Path(args.path).expanduser().absolute(), replace=args.force)
    except BackupError as exc:
        return fail(f"backup: {exc}")
    print(f"backup of {made.jobs} jobs written to {made.path} ({made.size / 1e6:.1f} MB, {made.seconds:.2f} s)")
    return 0
