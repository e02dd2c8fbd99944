"""`conductor token`: create, list and revoke API tokens, straight in the database.

    conductor token create --user NAME [--admin] [--comment TEXT]   prints the token, once
    conductor token list [--active]
    conductor token revoke ID

It opens the database the server uses (CONDUCTOR_DATABASE_URL, else the SQLite file under
CONDUCTOR_HOME), so whoever may run it already holds the keys to everything: there is no API
route to mint tokens. Only a SHA-256 of each token is stored. An SQLite file that does not exist
is refused, never created: it is not the server's, and a token made there is one the server has
never heard of (`conductor up` makes its own database, and its first token, without this command).

Every process that serves the API also makes sure its home holds a token of the local user
(conductor.services.tokens.ensure_local_token).
"""

from __future__ import annotations

import argparse
import pwd
import re
import sys
from typing import TYPE_CHECKING

from conductor.commands.runtime import StartupError, load_settings, open_store
from conductor.services.tokens import hash_token, new_token

if TYPE_CHECKING:
    from conductor.settings import Settings
    from conductor.store import Store


_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}", re.ASCII)  # fullmatch: `$` takes "bob\n"


# ---------------------------------------------------------------------------- command
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conductor token", description="Create, list and revoke API tokens.")
    parser.add_argument("--home", help="state directory (default: CONDUCTOR_HOME or ./.conductor)")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a token and print it (it is shown only this once)")
    create.add_argument("--user", required=True, help="the user the token acts as; jobs it submits run as this user")
    create.add_argument("--admin", action="store_true", help="may act on every user's jobs")
    create.add_argument("--comment", help="a note shown by 'conductor token list'")
    listing = sub.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--active", action="store_true", help="only tokens not revoked")
    revoke = sub.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id", type=int, help="the token's id, as 'conductor token list' shows it")
    return parser


def main(argv: list[str]) -> int:
    from conductor.commands.common import fail

    args = build_parser().parse_args(argv)
    if args.action == "create" and not _USER_NAME.fullmatch(args.user):
        # A mistake in the words is told first, wherever the command runs.
        return fail(f"--user: '{args.user[:64]}' is not a valid user name (letters, digits, '_', '.', '-', '@')")
    try:
        settings = load_settings(argparse.Namespace(home=args.home))
        _require_database(settings)
        store = open_store(settings, make_home=False)  # the server's database, never a new home
    except StartupError as exc:
        return fail(str(exc))
    try:
        if args.action == "create":
            return _create(store, args.user, args.admin, args.comment)
        if args.action == "list":
            return _list(store, active_only=args.active)
        return _revoke(store, args.id)
    finally:
        store.close()


def _require_database(settings: Settings) -> None:
    """Refuse an SQLite database that does not exist, as `conductor backup` does: opening it would
    create an empty one (and its home), whose tokens no running server knows. A PostgreSQL
    database is left to the driver, which says when it is missing."""
    from conductor.store.backup import sqlite_path

    path = sqlite_path(settings.resolved_database_url())
    if path is not None and not path.is_file():
        raise StartupError(
            f"token: no database at {path}; name the server's: 'conductor token --home DIR ...' "
            "(or CONDUCTOR_HOME=DIR) with the home of 'conductor up', or CONDUCTOR_DATABASE_URL with its database"
        )


def _create(store: Store, user: str, admin: bool, comment: str | None) -> int:
    try:
        pwd.getpwnam(user)
    except KeyError:
        sys.stderr.write(
            f"conductor token: warning: user '{user}' does not exist on this host; its submissions are refused "
            "by an API server that does not know the user either\n"
        )
    token = new_token()
    token_id = store.create_token(user, hash_token(token), admin=admin, comment=comment)
    sys.stdout.write(token + "\n")
    sys.stderr.write(
        f"token {token_id} for user {user}{' (admin)' if admin else ''}; it is shown only now, store it safely\n"
    )
    return 0


def _list(store: Store, *, active_only: bool) -> int:
    rows = store.list_tokens(include_revoked=not active_only)
    header = ("ID", "USER", "ADMIN", "CREATED", "REVOKED", "COMMENT")
    table = [header] + [
        (
            str(r.id),
            r.user_name,
            "yes" if r.admin else "no",
            r.created_at.strftime("%Y-%m-%dT%H:%M:%S") if r.created_at else "",
            r.revoked_at.strftime("%Y-%m-%dT%H:%M:%S") if r.revoked_at else "-",
            r.comment or "",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)))
        sys.stdout.write("  " + row[-1] + "\n")
    return 0


def _revoke(store: Store, token_id: int) -> int:
    from conductor.commands.common import fail

    if not store.revoke_token(token_id):
        return fail(f"no live token has id {token_id} (see 'conductor token list')")
    sys.stdout.write(f"token {token_id} revoked\n")
    return 0
