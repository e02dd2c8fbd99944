"""`conductor sshare`: users' shares, decayed usage and fair-share factors, as Slurm 22.05's
sshare prints them (`-a`, `-u`, `-l`, `-n`, `-P`, `-o`).

The tree is the accounts of `sacctmgr` with their users' associations; users charged to no
association are leaves of root with one share each (see the README).
"""

from __future__ import annotations

import sys

from conductor.cli.client import Client
from conductor.cli.common import SLURM_VERSION, UsageError, current_user, run, split_list
from conductor.cli.getopt import Option, OptionTable, getopt_long

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sshare"
CLUSTER = "conductor"  # as sacctmgr's: the name jobs are given (domain/jobfiles.CLUSTER_NAME)

OPTIONS = OptionTable(
    [
        Option("accounts", ("accounts", "account"), "A", "required"),
        Option("all", ("all",), "a"),
        Option("clusters", ("clusters", "cluster"), "M", "required"),
        Option("helpformat", ("helpformat",), "e"),
        Option("help", ("help",), None),
        Option("long", ("long",), "l"),
        Option("partition", ("partition",), "m"),
        Option("noheader", ("noheader",), "n"),
        Option("parsable", ("parsable",), "p"),
        Option("parsable2", ("parsable2",), "P"),
        Option("format", ("format",), "o", "required"),
        Option("users", ("users", "user"), "u", "required"),
        Option("users_only", ("Users",), "U"),
        Option("usage", ("usage",), None),
        Option("verbose", ("verbose",), "v"),
        Option("version", ("version",), "V"),
    ]
)

USAGE = """\
Usage: sshare [-A accounts] [-a] [-e] [-l] [-m] [-M cluster] [-n] [-p] [-P] [-o fields] [-u users] [-U] [-v]
  -A, --accounts      comma separated accounts to list (and their users' lines, as -a or -u selects them)
  -a, --all           list all users
  -e, --helpformat    list the fields -o takes
  -l, --long          long listing
  -m, --partition     print the partition of each association (none here: every association is
                      the cluster's)
  -M, --clusters      the cluster to ask (one here)
  -n, --noheader      omit the header
  -o, --format        comma separated fields to print (FIELD%WIDTH sets a width)
  -p, --parsable      '|' delimited output with a trailing '|'
  -P, --parsable2     '|' delimited output without a trailing '|'
  -u, --users         comma separated users to list
  -U, --Users         users' lines only, no account's
  -v, --verbose       more words (none here)
"""

# name -> (header, width, right-justified)
_FIELDS = {
    "account": ("Account", 20, False),
    "user": ("User", 10, True),
    "rawshares": ("RawShares", 10, True),
    "normshares": ("NormShares", 11, True),
    "rawusage": ("RawUsage", 11, True),
    "normusage": ("NormUsage", 11, True),
    "effectvusage": ("EffectvUsage", 13, True),
    "fairshare": ("FairShare", 10, True),
    "levelfs": ("LevelFS", 10, True),
}
DEFAULT = ["account", "user", "rawshares", "normshares", "rawusage", "effectvusage", "fairshare"]
LONG = ["account", "user", "rawshares", "normshares", "rawusage", "normusage", "effectvusage", "fairshare", "levelfs"]


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:
    parsed, words = getopt_long(argv, OPTIONS)
    opts = dict(parsed)
    if "help" in opts or "usage" in opts:
        sys.stdout.write(USAGE)
        return 0
    if "version" in opts:
        sys.stdout.write(SLURM_VERSION)
        return 0
    if words:
        raise UsageError(f"Unknown argument: {words[0]}")
    if "helpformat" in opts:
        sys.stdout.write(" ".join(header for header, _, _ in _FIELDS.values()) + "\n")
        return 0
    if opts.get("clusters") is not None:
        clusters = split_list(opts["clusters"] or "")
        if not clusters or any(c not in (CLUSTER, "all") for c in clusters):
            raise UsageError(f"Invalid cluster '{opts['clusters']}': the cluster here is {CLUSTER}")
    fields, widths = _fields(opts)
    client = Client()
    try:
        answer = client.get("/fairshare")
    finally:
        client.close()
    if not answer.get("multifactor"):
        sys.stderr.write("sshare: error: fair share needs the multifactor priority (PriorityWeight* in the "
                         "cluster configuration file)\n")
        return 1
    rows = _rows(answer["rows"], opts)
    parsable = "parsable" in opts or "parsable2" in opts
    out = []
    if "noheader" not in opts:
        out.append(_render([_FIELDS[f][0] for f in fields], fields, opts, widths))
        if not parsable:
            out.append(" ".join("-" * abs(widths.get(f, _FIELDS[f][1])) for f in fields) + " \n")
    out.extend(_render([_cell(row[f]) for f in fields], fields, opts, widths) for row in rows)
    sys.stdout.write("".join(out))
    return 0


def _rows(found: list[dict[str, Any]], opts: dict[str, str | None]) -> list[dict[str, Any]]:
    """The lines to print, from the server's rows, as -u, -a, -A and -U select them."""
    wanted = set(split_list(opts["users"])) if opts.get("users") else None
    if wanted is None and "all" not in opts:
        wanted = {current_user()}
    if wanted is not None:
        # Associations are stored under lower-case names (sshare lowercases -u, as sacctmgr
        # does); a user charged to none keeps a line under the login name as it is.
        wanted |= {name.lower() for name in wanted}
    accounts = set(split_list(opts["accounts"])) if opts.get("accounts") else None
    users_only = "users_only" in opts
    rows: list[dict[str, Any]] = []
    for r in found:
        user = r["user"]
        if user and wanted is not None and user not in wanted:
            continue
        if users_only and not user:
            continue
        if accounts is not None and r["account"] not in accounts:
            continue
        indent = " " * r["depth"]
        effective = float(r["effective_usage"])
        norm = float(r["norm_shares"])
        if r["depth"] == 0:  # root: its usage is everyone's; shares and factor are not its own
            rows.append({
                "account": "root", "user": "", "rawshares": "", "normshares": 0.0, "rawusage": r["raw_usage"],
                "normusage": 1.0, "effectvusage": 1.0, "fairshare": "", "levelfs": "",
            })
            continue
        rows.append({
            "account": indent + r["account"], "user": user, "rawshares": r["raw_shares"], "normshares": norm,
            "rawusage": r["raw_usage"], "normusage": float(r["norm_usage"]), "effectvusage": effective,
            # Classic fair share gives users a factor; an account's line leaves it blank.
            "fairshare": float(r["fairshare"]) if user else "",
            "levelfs": (norm / effective if effective > 0 else "inf") if user else "",
        })
    return rows


def _fields(opts: dict[str, str | None]) -> tuple[list[str], dict[str, int]]:
    """The fields to print (-l, -o), and the widths -o gives some (FIELD%WIDTH)."""
    if not opts.get("format"):
        return (LONG if "long" in opts else DEFAULT), {}
    fields: list[str] = []
    widths: dict[str, int] = {}
    for name in split_list(opts["format"] or ""):
        key, _, width = name.partition("%")
        key = key.lower()
        if key not in _FIELDS:
            raise UsageError(f"Invalid field requested: \"{name}\"")
        if width:
            digits = width[1:] if width.startswith("-") else width
            if not (digits.isascii() and digits.isdigit()) or len(digits) > 4:
                raise UsageError(f"Invalid width in \"{name}\": a whole number of characters (at most 9999)")
            widths[key] = int(width)
        fields.append(key)
    return fields, widths


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def _render(values: list[str], fields: list[str], opts: dict[str, str | None], widths: dict[str, int]) -> str:
    """A line; FIELD%WIDTH sets a field's width, a negative one left-justified (print_fields)."""
    if "parsable2" in opts:
        return "|".join(values) + "\n"
    if "parsable" in opts:
        return "|".join(values) + "|\n"
    cells = []
    for value, name in zip(values, fields, strict=True):
        _, width, right = _FIELDS[name]
        if name in widths:
            width, right = abs(widths[name]), widths[name] >= 0
        value = value[:width]
        cells.append(value.rjust(width) if right else value.ljust(width))
    return " ".join(cells) + " \n"
