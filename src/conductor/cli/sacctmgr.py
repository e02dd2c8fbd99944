"""`conductor sacctmgr`: accounts, users' associations and QOS, as Slurm 22.05's sacctmgr edits
and shows them (`add`, `modify`, `delete`, `show` of `account`, `user`, `qos` and `association`).

The words after the command follow sacctmgr's grammar: keywords are case-insensitive and may be
shortened as far as sacctmgr allows (`MaxW` for MaxWallDurationPerJob), names are words without
`=`, `where` introduces the associations a change applies to and `set` the settings it makes.
Every change goes through the server's /accounting routes (api/accounting.py), which only
administrators may use; without `-i` the command first prints what it will do and asks, as
sacctmgr does, and with `-i` it prints what it did once the server has done it. `show` prints
sacctmgr's columns with its widths (src/sacctmgr/common.c); the columns this scheduler keeps
nothing for are printed empty, as sacctmgr prints unset values.
"""

from __future__ import annotations

import sys

from conductor.cli.client import quote
from conductor.cli.common import SLURM_VERSION, UsageError, empty_format, field_width, run, split_list
from conductor.cli.getopt import Option, OptionTable, getopt_long

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Requester(Protocol):
        def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any: ...

        def close(self) -> None: ...


PROG = "sacctmgr"
# The cluster every association belongs to: the name jobs are given (SLURM_CLUSTER_NAME, sacct's
# Cluster), conductor.domain.jobfiles.CLUSTER_NAME; not imported, to keep the command fast.
CLUSTER = "conductor"
ROOT = "root"

OPTIONS = OptionTable(
    [
        Option("associations", ("associations",), "s"),
        Option("help", ("help",), "h"),
        Option("immediate", ("immediate",), "i"),
        Option("noheader", ("noheader",), "n"),
        Option("oneliner", ("oneliner",), "o"),
        Option("parsable", ("parsable",), "p"),
        Option("parsable2", ("parsable2",), "P"),
        Option("quiet", ("quiet",), "Q"),
        Option("readonly", ("readonly",), "r"),
        Option("usage", ("usage",), None),
        Option("version", ("version",), "V"),
    ]
)

DESCRIBED: dict[str, tuple[str, str]] = {
    "associations": ("", "with show user or show account: list their associations"),
    "help": ("", "show this help message"),
    "oneliner": ("", "one line per record (every record here is one line)"),
    "immediate": ("", "commit changes immediately, without asking"),
    "noheader": ("", "no header on output"),
    "parsable": ("", "output '|' delimited, with a trailing '|'"),
    "parsable2": ("", "output '|' delimited, without a trailing '|'"),
    "quiet": ("", "print no summary of the changes before making them"),
    "readonly": ("", "refuse every change: only show"),
    "usage": ("", "display brief usage message"),
    "version": ("", "output version information and exit"),
}

USAGE = "Usage: sacctmgr [-hinopPQrsV] COMMAND ENTITY [NAME...] [where SPECS...] [set SPECS...]\n"

COMMANDS_HELP = """\
Commands (add = create, modify = update, delete = remove, show = list):
  add account NAME[,NAME] [Description=] [Organization=] [Parent=] [limits]
  add user NAME[,NAME] Account=A[,B] [DefaultAccount=A] [limits]
  add qos NAME[,NAME] [Description=] [Priority=N] [qos limits]
  modify account NAME [where Name=NAME] set [Description=] [Organization=] [Parent=] [limits]
  modify user NAME [where Account=A] set [DefaultAccount=A] [limits]
  modify qos NAME set [Description=] [Priority=N] [qos limits]
  delete account NAME | delete user NAME [where Account=A] | delete qos NAME
  show account|user|qos|association [where Name=|Account=|User=|Parent=] [format=F1,F2%W,...] [tree]

Limits of accounts and users: Fairshare=N MaxJobs=N MaxSubmitJobs=N GrpTRES=cpu=N,mem=SIZE
MaxWall=TIME. QOS limits: MaxJobsPerUser=N MaxSubmitJobsPerUser=N MaxTRESPerUser=cpu=N,mem=SIZE
GrpTRES=cpu=N,mem=SIZE MaxWall=TIME. A limit of -1 clears it. Only administrators change these.
"""


def help_text() -> str:
    from conductor.cli.helptext import page

    return page(USAGE, OPTIONS, DESCRIBED, epilog=COMMANDS_HELP)


# ------------------------------------------------------------------ words
def _is(word: str, keyword: str, least: int) -> bool:
    """sacctmgr's keyword test: `word` is a prefix of `keyword` at least `least` long, any case."""
    return len(word) >= least and keyword.lower().startswith(word.lower())


def _split(word: str) -> tuple[str, str | None]:
    """KEY=VALUE -> (KEY, VALUE); a word without '=' -> (word, None). `+=`/`-=` keep their sign
    in the key (sacctmgr's list edits), so no keyword matches them here."""
    key, eq, value = word.partition("=")
    if not eq:
        return word, None
    return key, _unquote(value)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _names(value: str) -> list[str]:
    """A comma-separated list of names, lower-cased as sacctmgr stores names."""
    return [name.lower() for name in split_list(_unquote(value))]


# ------------------------------------------------------------------ values
def _count(key: str, value: str) -> int:
    """A whole number; a negative one clears the limit (-1), as sacctmgr's get_uint does."""
    text = value.strip()
    try:
        number = int(text)
    except ValueError:
        raise UsageError(f"Invalid value for {key} ({value}): a whole number, or -1 to clear it") from None
    if number < 0:
        return -1
    if number > 2**31 - 1:
        raise UsageError(f"Invalid value for {key} ({value}): at most {2**31 - 1}")
    return number


def _shares(key: str, value: str) -> int:
    if value.strip().lower().startswith("parent"):
        raise UsageError(f"{key}={value}: shares of 'parent' are not supported here; give a number of shares")
    number = _count(key, value)
    if number < 0:
        raise UsageError(f"Invalid value for {key} ({value}): a number of shares (0 or more)")
    return number


def _wall(key: str, value: str) -> str | int:
    """A time in Slurm's grammar (minutes, [D-]H:M:S, UNLIMITED); -1 clears the limit."""
    text = value.strip()
    if text == "-1":
        return -1
    from conductor.domain.errors import SpecError
    from conductor.domain.timespec import parse_time_limit

    try:
        parse_time_limit(text, field=key)
    except SpecError as exc:
        raise UsageError(f"Bad {key} time format: {value} ({exc.message})") from None
    return text


def _tres(key: str, value: str) -> str | None:
    """TRES as sacctmgr takes them: cpu=N,mem=SIZE (here only cpu and mem); NAME=-1 clears one,
    -1 alone clears them all (None). The text sent is as sacctmgr prints it (mem=1024 -> mem=1G)."""
    text = value.strip()
    if text == "-1":
        return None
    from conductor.domain.errors import SpecError
    from conductor.domain.memory import parse_memory_mb

    out: dict[str, str] = {}
    for item in split_list(text):
        name, eq, amount = item.partition("=")
        name = name.strip().lower()
        amount = amount.strip()
        if not eq or not name or not amount:
            raise UsageError(f"Invalid TRES '{item}' in {key}={value}: NAME=COUNT, e.g. {key}=cpu=8,mem=64G")
        if name not in ("cpu", "mem"):
            raise UsageError(f"Invalid TRES '{item}' in {key}={value}: only cpu and mem are limited here")
        if amount != "-1":
            try:
                if name == "cpu":
                    if not amount.isdigit():
                        raise SpecError(key, f"'{amount}' is not a number of CPUs")
                    amount = str(int(amount))
                else:
                    amount = memory_text(parse_memory_mb(amount, field=key))
            except SpecError as exc:
                raise UsageError(f"Invalid TRES '{item}' in {key}={value}: {exc.message}") from None
        out[name] = amount
    if not out:
        raise UsageError(f"{key} needs a value: {key}=cpu=N,mem=SIZE (or -1 to clear it)")
    return ",".join(f"{name}={out[name]}" for name in ("cpu", "mem") if name in out)


def tres_text(cpus: int | None, memory_mb: int | None) -> str:
    """sacctmgr's TRES column: `cpu=8,mem=64G`, memory in the largest exact unit."""
    parts = []
    if cpus is not None:
        parts.append(f"cpu={cpus}")
    if memory_mb is not None:
        parts.append(f"mem={memory_text(memory_mb)}")
    return ",".join(parts)


def memory_text(megabytes: int) -> str:
    """Megabytes as Slurm prints them exactly: 500 -> 500M, 1024 -> 1G, 1536 -> 1536M."""
    if megabytes == 0:
        return "0"
    value, units = megabytes, "MGTP"
    unit = 0
    while value % 1024 == 0 and unit < len(units) - 1:
        value //= 1024
        unit += 1
    return f"{value}{units[unit]}"


def wall_text(seconds: int | None) -> str:
    """MaxWall as sacctmgr prints it (mins2time_str): 01:00:00, 2-00:00:00."""
    if seconds is None:
        return ""
    from conductor.domain.timespec import format_time_limit

    return format_time_limit(seconds, style="sacct")


def _shown(value: object, kind: str) -> str:
    """A setting as the summary before a change prints it; -1 and cleared values are NONE."""
    if value is None or value == -1:
        return "NONE"
    if kind == "wall":
        from conductor.domain.timespec import parse_time_limit

        seconds = parse_time_limit(str(value))
        return wall_text(seconds) if seconds is not None else "NONE"
    if kind == "tres":
        return ",".join(p if not p.endswith("=-1") else p[:-2] + "NONE" for p in str(value).split(","))
    return str(value)


# ------------------------------------------------------------------ settings tables
# Each: (keyword, shortest prefix, body field, kind), in the order sacctmgr tries them; a body
# field of None is a keyword of sacctmgr this scheduler keeps nothing for.
Setting = tuple[str, int, str | None, str]

_ASSOC_SET: list[Setting] = [
    ("DefaultQOS", 8, None, ""),
    ("FairShare", 1, "fairshare", "shares"),
    ("Shares", 1, "fairshare", "shares"),
    ("GrpCPUMins", 7, None, ""),
    ("GrpCPURunMins", 7, None, ""),
    ("GrpCpus", 7, None, ""),
    ("GrpJobs", 4, None, ""),
    ("GrpJobsAccrue", 8, None, ""),
    ("GrpMemory", 4, None, ""),
    ("GrpNodes", 4, None, ""),
    ("GrpSubmitJobs", 4, None, ""),
    ("GrpTRES", 7, "grp_tres", "tres"),
    ("GrpTRESMins", 8, None, ""),
    ("GrpTRESRunMins", 8, None, ""),
    ("GrpWall", 4, None, ""),
    ("MaxCPUMinsPerJob", 7, None, ""),
    ("MaxCPURunMins", 7, None, ""),
    ("MaxCpusPerJob", 7, None, ""),
    ("MaxJobs", 4, "max_jobs", "count"),
    ("MaxJobsAccrue", 8, None, ""),
    ("MaxNodesPerJob", 4, None, ""),
    ("MinPrioThresh", 4, None, ""),
    ("MaxSubmitJobs", 4, "max_submit_jobs", "count"),
    ("MaxTRESPerJob", 7, None, ""),
    ("MaxTRESPerNode", 11, None, ""),
    ("MaxTRESMinsPerJob", 8, None, ""),
    ("MaxTRESRunMins", 8, None, ""),
    ("MaxWallDurationPerJob", 4, "max_wall", "wall"),
    ("Parent", 2, "parent", "name"),
    ("Priority", 2, None, ""),
    ("QosLevel", 1, None, ""),
]

_QOS_SET: list[Setting] = [
    ("Description", 1, "description", "text"),
    ("Flags", 2, None, ""),
    ("GraceTime", 3, None, ""),
    ("GrpCPUMins", 7, None, ""),
    ("GrpCPURunMins", 7, None, ""),
    ("GrpCPUs", 7, None, ""),
    ("GrpJobs", 4, None, ""),
    ("GrpJobsAccrue", 8, None, ""),
    ("GrpMemory", 4, None, ""),
    ("GrpNodes", 4, None, ""),
    ("GrpSubmitJobs", 4, None, ""),
    ("GrpTRES", 7, "grp_tres", "tres"),
    ("GrpTRESMins", 8, None, ""),
    ("GrpTRESRunMins", 8, None, ""),
    ("GrpWall", 4, None, ""),
    ("LimitFactor", 6, None, ""),
    ("MaxCPUMinsPerJob", 7, None, ""),
    ("MaxCPUsPerJob", 7, None, ""),
    ("MaxCPUsPerUser", 11, None, ""),
    ("MaxCPUsPU", 9, None, ""),
    ("MaxJobsAccruePerAccount", 17, None, ""),
    ("MaxJobsAccruePA", 15, None, ""),
    ("MaxJobsAccruePerUser", 17, None, ""),
    ("MaxJobsAccruePU", 15, None, ""),
    ("MaxJobsPerAccount", 11, None, ""),
    ("MaxJobsPA", 9, None, ""),
    ("MaxJobsPerUser", 4, "max_jobs_per_user", "count"),
    ("MaxJobsPU", 4, "max_jobs_per_user", "count"),
    ("MaxNodesPerJob", 4, None, ""),
    ("MaxNodesPerUser", 8, None, ""),
    ("MaxNodesPU", 8, None, ""),
    ("MaxSubmitJobsPerAccount", 17, None, ""),
    ("MaxSubmitJobsPA", 15, None, ""),
    ("MaxSubmitJobsPerUser", 4, "max_submit_jobs_per_user", "count"),
    ("MaxSubmitJobsPU", 4, "max_submit_jobs_per_user", "count"),
    ("MaxTRESPerAccount", 11, None, ""),
    ("MaxTRESPA", 9, None, ""),
    ("MaxTRESPerJob", 7, None, ""),
    ("MaxTRESPerNode", 11, None, ""),
    ("MaxTRESPerUser", 11, "max_tres_per_user", "tres"),
    ("MaxTRESPU", 9, "max_tres_per_user", "tres"),
    ("MaxTRESMinsPerJob", 8, None, ""),
    ("MaxTRESRunMinsPA", 16, None, ""),
    ("MaxTRESRunMinsPU", 8, None, ""),
    ("MaxWallDurationPerJob", 4, "max_wall", "wall"),
    ("MinCPUsPerJob", 7, None, ""),
    ("MinPrioThresh", 4, None, ""),
    ("MinTRESPerJob", 7, None, ""),
    ("PreemptMode", 8, None, ""),
    ("Preempt", 7, None, ""),
    ("PreemptExemptTime", 8, None, ""),
    ("Priority", 3, "priority", "count"),
    ("RawUsage", 7, None, ""),
    ("UsageFactor", 6, None, ""),
    ("UsageThreshold", 6, None, ""),
]

# What the summary before a change calls each body field, in sacctmgr's order
# (sacctmgr_print_assoc_limits, sacctmgr_print_qos_limits).
_ASSOC_LABELS = [
    ("fairshare", "  Fairshare     = ", "count"),
    ("grp_tres", "  GrpTRES       = ", "tres"),
    ("max_jobs", "  MaxJobs       = ", "count"),
    ("max_submit_jobs", "  MaxSubmitJobs = ", "count"),
    ("max_wall", "  MaxWall       = ", "wall"),
    ("parent", "  Parent        = ", "text"),
]
_QOS_LABELS = [
    ("grp_tres", "  GrpTRES                  = ", "tres"),
    ("max_jobs_per_user", "  MaxJobsPerUser           = ", "count"),
    ("max_submit_jobs_per_user", "  MaxSubmitJobsPerUser     = ", "count"),
    ("max_tres_per_user", "  MaxTRESPerUser           = ", "tres"),
    ("max_wall", "  MaxWall                  = ", "wall"),
    ("priority", "  Priority                 = ", "count"),
]


def _setting(table: list[Setting], key: str, value: str) -> tuple[str, object] | None:
    """(body field, value) for KEY=VALUE, None when no keyword of `table` is KEY."""
    for keyword, least, field, kind in table:
        if not _is(key, keyword, least):
            continue
        if field is None:
            raise UsageError(f"{keyword} is not supported here: this scheduler keeps no {keyword} limit")
        return field, _convert(keyword, kind, value)
    return None


def _convert(keyword: str, kind: str, value: str) -> object:
    if kind == "count":
        return _count(keyword, value)
    if kind == "shares":
        return _shares(keyword, value)
    if kind == "wall":
        return _wall(keyword, value)
    if kind == "tres":
        return _tres(keyword, value)
    if kind == "name":
        names = _names(value)
        if len(names) != 1:
            raise UsageError(f"{keyword}={value}: name one account")
        return names[0]
    return value


def _unknown_option(word: str) -> UsageError:
    return UsageError(f"Unknown option: {word}: use keyword 'where' to modify condition")


def _unknown_condition(word: str) -> UsageError:
    return UsageError(f"Unknown condition: {word}: use keyword 'set' to modify value")


# ------------------------------------------------------------------ plans
class Call:
    """One request to the server."""

    __slots__ = ("body", "method", "path", "query")

    def __init__(self, method: str, path: str, body: Any = None, query: dict[str, str] | None = None) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.query = query or {}

    def __repr__(self) -> str:
        return f"Call({self.method!r}, {self.path!r}, {self.body!r}, {self.query!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Call) and (self.method, self.path, self.body, self.query) == (
            other.method, other.path, other.body, other.query)

    __hash__ = None  # type: ignore[assignment]


class Change:
    """A change: what sacctmgr prints before asking, and the requests that make it."""

    __slots__ = ("calls", "summary")

    def __init__(self, summary: str, calls: list[Call]) -> None:
        self.summary = summary
        self.calls = calls


class Show:
    """A listing: the entity, its columns ((field, header, width, cut)) and its filters."""

    __slots__ = ("columns", "entity", "filters", "tree")

    def __init__(self, entity: str, columns: list[Column], filters: dict[str, list[str]], tree: bool) -> None:
        self.entity = entity
        self.columns = columns
        self.filters = filters
        self.tree = tree


def parse(words: list[str], *, with_assoc: bool = False) -> Change | Show:
    """The command line after the options -> what to do (no request is made). `with_assoc`
    (-s/--associations): a show of users or accounts lists their associations."""
    command, entity, rest = words[0], words[1] if len(words) > 1 else "", words[2:]
    size = len(command)
    if _is(command, "add", 3) or _is(command, "create", 3):
        kind = _entity(entity, "add", ("account", "qos", "user"))
        return {"account": _add_account, "user": _add_user, "qos": _add_qos}[kind](rest)
    if _is(command, "modify", 1) or _is(command, "update", 1):
        kind = _entity(entity, "modify", ("account", "qos", "user"))
        return {"account": _modify_account, "user": _modify_user, "qos": _modify_qos}[kind](rest)
    if _is(command, "delete", 3) or _is(command, "remove", 3):
        kind = _entity(entity, "delete", ("account", "qos", "user"))
        return {"account": _delete_account, "user": _delete_user, "qos": _delete_qos}[kind](rest)
    if _is(command, "show", 3) or _is(command, "list", 3):
        kind = _entity(entity, "list", ("account", "association", "qos", "user"))
        return _show(kind, rest, with_assoc)
    if size and any(_is(command, w, 2) for w in ("archive", "clear", "dump", "load", "reconfigure", "rollup",
                                                   "shutdown", "exit", "quit", "help", "version")):
        raise UsageError(f"'{command}' is not supported here: use add, modify, delete or show")
    raise UsageError(f"Invalid keyword: {command}: use add, modify, delete or show")


_ENTITY_WORDS = {
    "account": (("Accounts", 2), ("Acct", 4)),
    "association": (("Associations", 2), ("Assoc", 5)),
    "qos": (("QOS", 1),),
    "user": (("Users", 1),),
}


def _entity(word: str, command: str, allowed: tuple[str, ...]) -> str:
    for kind in allowed:
        if any(_is(word, keyword, least) for keyword, least in _ENTITY_WORDS[kind]):
            return kind
    names = ", ".join(f'"{k.capitalize() if k != "qos" else "QOS"}"' for k in allowed)
    shown = f" '{word}'" if word else ""
    raise UsageError(f"No valid entity{shown} in {command} command: input line must include {names}")


def _after_command(rest: list[str]) -> list[tuple[str, str, str | None, str]]:
    """Each word with its part: ('where' | 'set', word, key, value)."""
    out: list[tuple[str, str, str | None, str]] = []
    part = "where"
    for word in rest:
        key, value = _split(word)
        if value is None and _is(word, "where", 5):
            part = "where"
            continue
        if value is None and _is(word, "set", 3):
            part = "set"
            continue
        out.append((part, word, value, key))
    return out


# -- accounts
def _add_account(rest: list[str]) -> Change:
    names: list[str] = []
    spec: dict[str, Any] = {}
    for _, word, value, key in _after_command(rest):
        if value is None or _is(key, "Accounts", 1) or _is(key, "Names", 1) or _is(key, "Acct", 4):
            names += _names(word if value is None else value)
        elif _is(key, "Clusters", 1):
            _our_cluster(word, value)
        elif _is(key, "Description", 1):
            spec["description"] = value
        elif _is(key, "Organization", 1):
            spec["organization"] = value
        elif (found := _setting(_ASSOC_SET, key, value)) is not None:
            spec[found[0]] = found[1]
        else:
            raise _unknown_option(word)
    if not names:
        raise UsageError("Need name of account to add")
    _no_blank(names)
    parent = spec.get("parent", ROOT)
    accounts = []
    for name in names:
        body: dict[str, Any] = {"name": name, "parent": parent}
        # sacctmgr's defaults: the account's name, and its parent's name (or its own under root).
        body["description"] = spec.get("description", name)
        body["organization"] = spec.get("organization", parent if parent != ROOT else name)
        body.update({k: v for k, v in _clears(spec).items() if k not in ("description", "organization", "parent")})
        accounts.append(body)
    lines = [" Adding Account(s)\n", *(f"  {n}\n" for n in names), " Settings\n"]
    lines.append(f"  Description     = {spec.get('description', 'Account Name')}\n")
    lines.append(f"  Organization    = {spec.get('organization', 'Parent/Account Name')}\n")
    lines.append(" Associations\n")
    lines += [f"  A = {n[:10]:<10} C = {CLUSTER[:10]:<10}\n" for n in names]
    limits = {k: v for k, v in spec.items() if k not in ("description", "organization")}
    if limits:
        lines.append(" Settings\n")
        lines += _labels(_ASSOC_LABELS, dict(limits, parent=parent))
    return Change("".join(lines), [Call("POST", "/accounting/accounts", {"accounts": accounts})])


def _modify_account(rest: list[str]) -> Change:
    names: list[str] = []
    changes: dict[str, Any] = {}
    for part, word, value, key in _after_command(rest):
        if part == "where":
            if value is None or _is(key, "Names", 1) or _is(key, "Accounts", 1) or _is(key, "Acct", 4):
                names += _names(word if value is None else value)
            elif _is(key, "Clusters", 1):
                _our_cluster(word, value)
            else:
                raise _unknown_condition(word)
            continue
        if value is None or _is(key, "Accounts", 1) or _is(key, "Names", 1) or _is(key, "Acct", 4):
            raise UsageError(f"Can't modify the name of an account ({word})")
        if _is(key, "Clusters", 1):
            raise UsageError(f"Can't modify the cluster of an account ({word})")
        if _is(key, "Description", 1):
            changes["description"] = value
        elif _is(key, "Organization", 1):
            changes["organization"] = value
        elif (found := _setting(_ASSOC_SET, key, value)) is not None:
            changes[found[0]] = found[1]
        else:
            raise _unknown_option(word)
    if not changes:
        raise UsageError("You didn't give me anything to set: modify account NAME set KEY=VALUE ...")
    _need_names(names, "account", "modify")
    if ROOT in names:
        raise UsageError("account 'root' has no settings to change here")
    body = _clears(changes)
    lines = []
    if "description" in changes or "organization" in changes:
        lines += [" Modified accounts...\n", *(f"  {n}\n" for n in names)]
    if set(changes) - {"description", "organization"}:
        lines += [" Modified account associations...\n", *(f"  C = {CLUSTER:<10} A = {n}\n" for n in names)]
    calls = [Call("PATCH", f"/accounting/accounts/{quote(n)}", body) for n in names]
    return Change("".join(lines), calls)


def _delete_account(rest: list[str]) -> Change:
    names: list[str] = []
    for part, word, value, key in _after_command(rest):
        if part == "set":
            raise UsageError(f"Unknown condition: {word}: delete takes no 'set'")
        if value is None or _is(key, "Names", 1) or _is(key, "Accounts", 1) or _is(key, "Acct", 4):
            names += _names(word if value is None else value)
        elif _is(key, "Clusters", 1):
            _our_cluster(word, value)
        else:
            raise _unknown_condition(word)
    if not names:
        raise UsageError("No conditions given to remove, not executing: delete account NAME")
    if ROOT in names:
        raise UsageError("You are not allowed to remove the root account")
    lines = [" Deleting accounts...\n", *(f"  {n}\n" for n in names)]
    return Change("".join(lines), [Call("DELETE", f"/accounting/accounts/{quote(n)}") for n in names])


# -- users
def _add_user(rest: list[str]) -> Change:
    users: list[str] = []
    accounts: list[str] = []
    default: str | None = None
    limits: dict[str, Any] = {}
    for _, word, value, key in _after_command(rest):
        if value is None or _is(key, "Names", 1) or _is(key, "Users", 1):
            users += _names(word if value is None else value)
        elif _is(key, "DefaultAccount", 8):
            if default is not None:
                raise UsageError(f"Already listed DefaultAccount {default}")
            default = _one_account(word, value)
        elif (found_set := _user_setting(word, key, value)) is not None:
            limits[found_set[0]] = found_set[1]
        elif _is(key, "Accounts", 2) or _is(key, "Acct", 4):
            accounts += _names(value)
        elif _is(key, "Clusters", 1):
            _our_cluster(word, value)
        else:
            raise _unknown_option(word)
    if not users:
        raise UsageError("Need name of user to add")
    _no_blank(users)
    if default is not None and default not in accounts:
        accounts.append(default)
    if not accounts:
        raise UsageError("Need name of account to add user to: add user NAME Account=A[,B]")
    body: dict[str, Any] = {"users": users, "accounts": accounts, **_clears(limits)}
    if default is not None:
        body["default_account"] = default
    lines = [" Adding User(s)\n", *(f"  {u}\n" for u in users)]
    if default is not None:
        lines += [" Settings =\n", f"  Default Account = {default}\n"]
    lines.append(" Associations =\n")
    lines += [f"  U = {u[:9]:<9} A = {a[:10]:<10} C = {CLUSTER[:10]:<10}\n" for u in users for a in accounts]
    if limits:
        lines.append(" Non Default Settings\n")
        lines += _labels(_ASSOC_LABELS, limits)
    return Change("".join(lines), [Call("POST", "/accounting/users", body)])


def _user_setting(word: str, key: str, value: str) -> tuple[str, object] | None:
    """A limit of a user's associations (sacctmgr's association settings, without Parent)."""
    if _is(key, "AdminLevel", 2) or _is(key, "DefaultWCKey", 8) or _is(key, "WCKeys", 1):
        raise UsageError(f"{word}: administrator levels and WCKeys are not kept here")
    found = _setting(_ASSOC_SET, key, value)
    if found is not None and found[0] == "parent":
        raise _unknown_option(word)
    return found


def _user_where(part: str, word: str, value: str | None, key: str, users: list[str], accounts: list[str]) -> None:
    if value is None or _is(key, "Names", 1) or _is(key, "Users", 1):
        users += _names(word if value is None else value)
    elif _is(key, "Accounts", 2) or _is(key, "Acct", 4):
        accounts += _names(value)
    elif _is(key, "Clusters", 1):
        _our_cluster(word, value)
    else:
        raise _unknown_condition(word)


def _modify_user(rest: list[str]) -> Change:
    users: list[str] = []
    accounts: list[str] = []
    changes: dict[str, Any] = {}
    default: str | None = None
    for part, word, value, key in _after_command(rest):
        if part == "where":
            _user_where(part, word, value, key, users, accounts)
            continue
        if value is None:
            raise UsageError(f"Bad format on {word}: End your option with an '=' sign")
        if _is(key, "DefaultAccount", 8):
            default = _one_account(word, value)
        elif _is(key, "NewName", 1):
            raise UsageError(f"{word}: renaming users is not supported here")
        elif (found_set := _user_setting(word, key, value)) is not None:
            changes[found_set[0]] = found_set[1]
        else:
            raise _unknown_option(word)
    if not changes and default is None:
        raise UsageError("You didn't give me anything to set: modify user NAME set KEY=VALUE ...")
    if not users and accounts:
        raise UsageError("Name the users to modify: modify user NAME where Account=A set ... "
                         "(every user of an account at once is not supported here)")
    _need_names(users, "user", "modify")
    body = _clears(changes)
    if default is not None:
        body["default_account"] = default
    lines = []
    if default is not None:
        lines += [" Modified users...\n", *(f"  {u}\n" for u in users)]
    if changes:
        lines.append(" Modified user associations...\n")
        lines += [f"  C = {CLUSTER:<10} A = {a or '(every account)':<20} U = {u:<9}\n"
                  for u in users for a in (accounts or [""])]
    calls = [Call("PATCH", f"/accounting/users/{quote(u)}", body, {"account": a} if a else None)
             for u in users for a in (accounts or [""])]
    return Change("".join(lines), calls)


def _delete_user(rest: list[str]) -> Change:
    users: list[str] = []
    accounts: list[str] = []
    for part, word, value, key in _after_command(rest):
        if part == "set":
            raise UsageError(f"Unknown condition: {word}: delete takes no 'set'")
        _user_where(part, word, value, key, users, accounts)
    if not users:
        raise UsageError("No conditions given to remove, not executing: delete user NAME [where Account=A]")
    if accounts:
        lines = [" Deleting user associations...\n"]
        lines += [f"  C = {CLUSTER:<10} A = {a:<10} U = {u:<9}\n" for u in users for a in accounts]
    else:
        lines = [" Deleting users...\n", *(f"  {u}\n" for u in users)]
    calls = [Call("DELETE", f"/accounting/users/{quote(u)}", None, {"account": a} if a else None)
             for u in users for a in (accounts or [""])]
    return Change("".join(lines), calls)


# -- QOS
def _add_qos(rest: list[str]) -> Change:
    names: list[str] = []
    spec: dict[str, Any] = {}
    for _, word, value, key in _after_command(rest):
        if value is None or _is(key, "Names", 1):
            names += _names(word if value is None else value)
        elif _is(key, "Clusters", 1):
            _our_cluster(word, value)
        elif (found := _setting(_QOS_SET, key, value)) is not None:
            spec[found[0]] = found[1]
        else:
            raise _unknown_option(word)
    if not names:
        raise UsageError("Need name of qos to add")
    _no_blank(names)
    qos = [{"name": n, "description": spec.get("description", n),
            **{k: v for k, v in _clears(spec).items() if k != "description"}} for n in names]
    lines = [" Adding QOS(s)\n", *(f"  {n}\n" for n in names), " Settings\n"]
    lines.append(f"  Description    = {spec.get('description', 'QOS Name')}\n")
    lines += _labels(_QOS_LABELS, spec)
    return Change("".join(lines), [Call("POST", "/accounting/qos", {"qos": qos})])


def _modify_qos(rest: list[str]) -> Change:
    names: list[str] = []
    changes: dict[str, Any] = {}
    for part, word, value, key in _after_command(rest):
        if part == "where":
            if value is None or _is(key, "Names", 1) or _is(key, "QOSLevel", 1):
                names += _names(word if value is None else value)
            elif _is(key, "Clusters", 1):
                _our_cluster(word, value)
            else:
                raise _unknown_condition(word)
            continue
        if value is None or _is(key, "Name", 1):
            raise UsageError(f"Can't modify the name of a QOS ({word})")
        found = _setting(_QOS_SET, key, value)
        if found is None:
            raise _unknown_option(word)
        changes[found[0]] = found[1]
    if not changes:
        raise UsageError("You didn't give me anything to set: modify qos NAME set KEY=VALUE ...")
    _need_names(names, "qos", "modify")
    body = _clears(changes)
    lines = [" Modified qos...\n", *(f"  {n}\n" for n in names)]
    return Change("".join(lines), [Call("PATCH", f"/accounting/qos/{quote(n)}", body) for n in names])


def _delete_qos(rest: list[str]) -> Change:
    names: list[str] = []
    for part, word, value, key in _after_command(rest):
        if part == "set":
            raise UsageError(f"Unknown condition: {word}: delete takes no 'set'")
        if value is None or _is(key, "Names", 1) or _is(key, "QOSLevel", 1):
            names += _names(word if value is None else value)
        elif _is(key, "Clusters", 1):
            _our_cluster(word, value)
        else:
            raise _unknown_condition(word)
    if not names:
        raise UsageError("No conditions given to remove, not executing: delete qos NAME")
    lines = [" Deleting QOS(s)...\n", *(f"  {n}\n" for n in names)]
    return Change("".join(lines), [Call("DELETE", f"/accounting/qos/{quote(n)}") for n in names])


# -- helpers of the changes
def _our_cluster(word: str, value: str | None) -> None:
    clusters = _names(value or "")
    if clusters != [CLUSTER]:
        raise UsageError(f"{word}: this scheduler has one cluster, '{CLUSTER}'")


def _one_account(word: str, value: str) -> str:
    found = _names(value)
    if len(found) != 1:
        raise UsageError(f"{word}: name one default account")
    return found[0]


def _no_blank(names: list[str]) -> None:
    if any(not n for n in names):
        raise UsageError("No blank names are allowed when adding")


def _need_names(names: list[str], entity: str, command: str) -> None:
    if not names:
        raise UsageError(f"You didn't set any conditions with 'WHERE': {command} {entity} NAME set ... "
                         f"(or {command} {entity} where name=NAME set ...)")


def _clears(changes: dict[str, Any]) -> dict[str, Any]:
    """A body: -1 (a limit cleared, or none) as the API takes it, null; a cleared TRES is null already."""
    return {k: (None if v == -1 else v) for k, v in changes.items()}


def _labels(labels: list[tuple[str, str, str]], values: dict[str, Any]) -> list[str]:
    return [f"{label}{_shown(values[field], kind)}\n" for field, label, kind in labels if field in values]


# ------------------------------------------------------------------ show
# Format fields, in the order sacctmgr tries them (src/sacctmgr/common.c, _get_print_field):
# (keyword, shortest prefix, header, width, the row key it prints, cut with '+' when too long).
Column = tuple[str, str, int, bool]

_FORMAT_FIELDS: list[tuple[str, int, str, int, str, bool]] = [
    ("Account", 3, "Account", 10, "account", True),
    ("Acct", 4, "Account", 10, "account", True),
    ("AdminLevel", 2, "Admin", 9, "admin", True),
    ("Clusters", 2, "Cluster", 10, "cluster", True),
    ("DefaultAccount", 8, "Def Acct", 10, "default_account", True),
    ("DefaultQOS", 8, "Def QOS", 9, "default_qos", True),
    ("Description", 3, "Descr", 20, "description", True),
    ("Flags", 2, "Flags", 20, "flags", True),
    ("GraceTime", 3, "GraceTime", 10, "grace_time", False),
    ("GrpCPUs", 6, "GrpCPUs", 8, "grp_cpus", False),
    ("GrpTRES", 7, "GrpTRES", 13, "grp_tres", True),
    ("GrpTRESMins", 7, "GrpTRESMins", 13, "grp_tres_mins", True),
    ("GrpTRESRunMins", 7, "GrpTRESRunMins", 13, "grp_tres_run_mins", True),
    ("GrpJobs", 4, "GrpJobs", 7, "grp_jobs", False),
    ("GrpJobsAccrue", 8, "GrpJobsAccrue", 13, "grp_jobs_accrue", False),
    ("GrpMemory", 4, "GrpMem", 7, "grp_mem", False),
    ("GrpNodes", 4, "GrpNodes", 8, "grp_nodes", False),
    ("GrpSubmitJobs", 4, "GrpSubmit", 9, "grp_submit", False),
    ("GrpWall", 4, "GrpWall", 11, "grp_wall", False),
    ("MaxTRES", 7, "MaxTRES", 13, "max_tres", True),
    ("MaxTRESPerJob", 11, "MaxTRES", 13, "max_tres", True),
    ("MaxTRESPerNode", 11, "MaxTRESPerNode", 14, "max_tres_per_node", True),
    ("MaxTRESMinsPerJob", 8, "MaxTRESMins", 13, "max_tres_mins", True),
    ("MaxTRESPerAccount", 11, "MaxTRESPA", 13, "max_tres_pa", True),
    ("MaxTRESPerAcct", 11, "MaxTRESPA", 13, "max_tres_pa", True),
    ("MaxTRESPA", 9, "MaxTRESPA", 13, "max_tres_pa", True),
    ("MaxTRESPerUser", 11, "MaxTRESPU", 13, "max_tres_pu", True),
    ("MaxTRESPU", 9, "MaxTRESPU", 13, "max_tres_pu", True),
    ("MaxJobs", 4, "MaxJobs", 7, "max_jobs", False),
    ("MaxJobsAccrue", 4, "MaxJobsAccrue", 13, "max_jobs_accrue", False),
    ("MaxJobsPerAccount", 11, "MaxJobsPA", 9, "max_jobs_pa", False),
    ("MaxJobsPerAcct", 11, "MaxJobsPA", 9, "max_jobs_pa", False),
    ("MaxJobsPA", 9, "MaxJobsPA", 9, "max_jobs_pa", False),
    # sacctmgr prints MaxJobsPU and MaxSubmitPU as MaxJobs and MaxSubmit: a QOS's per-user
    # values, an association's own.
    ("MaxJobsPerUser", 11, "MaxJobsPU", 9, "max_jobs", False),
    ("MaxJobsPU", 9, "MaxJobsPU", 9, "max_jobs", False),
    ("MaxSubmitJobs", 4, "MaxSubmit", 9, "max_submit", False),
    ("MaxSubmitJobsPerAccount", 17, "MaxSubmitPA", 11, "max_submit_pa", False),
    ("MaxSubmitJobsPerAcct", 17, "MaxSubmitPA", 11, "max_submit_pa", False),
    ("MaxSubmitJobsPA", 15, "MaxSubmitPA", 11, "max_submit_pa", False),
    ("MaxSubmitPA", 11, "MaxSubmitPA", 11, "max_submit_pa", False),
    ("MaxSubmitJobsPerUser", 10, "MaxSubmitPU", 11, "max_submit", False),
    ("MaxSubmitJobsPU", 10, "MaxSubmitPU", 11, "max_submit", False),
    ("MaxSubmitPU", 6, "MaxSubmitPU", 11, "max_submit", False),
    ("MaxWallDurationPerJob", 4, "MaxWall", 11, "max_wall", False),
    ("MinTRESPerJob", 7, "MinTRES", 13, "min_tres", True),
    ("Name", 2, "Name", 10, "name", True),
    ("Organization", 1, "Org", 20, "organization", True),
    ("ParentName", 7, "ParentName", 10, "parent_name", True),
    ("Partition", 4, "Partition", 10, "partition", True),
    ("PreemptMode", 8, "PreemptMode", 11, "preempt_mode", True),
    ("Preempt", 7, "Preempt", 10, "preempt", True),
    ("PreemptExemptTime", 8, "PreemptExemptTime", 19, "preempt_exempt_time", False),
    ("Priority", 3, "Priority", 10, "priority", False),
    ("QOSLevel", 3, "QOS", 20, "qos", True),
    ("Share", 1, "Share", 9, "share", False),
    ("FairShare", 2, "Share", 9, "share", False),
    ("UsageFactor", 6, "UsageFactor", 11, "usage_factor", False),
    ("UsageThreshold", 6, "UsageThres", 10, "usage_threshold", False),
    ("LimitFactor", 6, "LimitFactor", 11, "limit_factor", False),
    ("User", 1, "User", 10, "user", True),
]

# The default formats of sacctmgr 22.05 (account_functions.c, user_functions.c,
# association_functions.c, qos_functions.c), resolved by the same table.
DEFAULT_FORMATS = {
    "account": "Acc,Des,O",
    "user": "U,DefaultA,Ad",
    "association": "Cluster,Account,User,Part,Share,Priority,GrpJ,GrpTRES,GrpS,GrpWall,GrpTRESMins,MaxJ,"
    "MaxTRES,MaxTRESPerN,MaxS,MaxW,MaxTRESMins,QOS,DefaultQOS,GrpTRESRunMins",
    "qos": "Name,Prio,GraceT,Preempt,PreemptE,PreemptM,Flags%40,UsageThres,UsageFactor,GrpTRES,GrpTRESMins,"
    "GrpTRESRunMins,GrpJ,GrpS,GrpW,MaxTRES,MaxTRESPerN,MaxTRESMins,MaxW,MaxTRESPerUser,MaxJobsPerUser,"
    "MaxSubmitJobsPerUser,MaxTRESPerAcct,MaxJobsPerAcct,MaxSubmitJobsPerAcct,MinTRES",
}


def columns(format_text: str, tree: bool = False) -> list[Column]:
    """format=F1,F2%20,... -> (row key, header, width, cut) of each; a negative width
    left-justifies, as in sacctmgr; Account is left-justified and 20 wide in a tree."""
    out: list[Column] = []
    for item in split_list(format_text):
        name, percent, width_text = item.partition("%")
        width = 0
        if percent:
            digits = width_text.strip()
            sign = -1 if digits.startswith("-") else 1
            digits = digits.lstrip("+-")
            number = ""
            for c in digits:
                if not c.isdecimal():  # isdigit() takes '²', which int() refuses
                    break
                number += c
            width = sign * field_width(number, "format") if number else 0
        for keyword, least, header, default_width, key, cut in _FORMAT_FIELDS:
            if _is(name, keyword, least):
                if key == "account" and tree:
                    default_width = -20
                out.append((key, header, width or default_width, cut))
                break
        else:
            raise UsageError(f"Unknown field '{name}'")
    if not out:
        raise empty_format("format")
    return out


_SHOW_CONDITIONS: dict[str, list[tuple[str, int, str]]] = {
    "account": [("Names", 1, "account"), ("Accounts", 1, "account"), ("Acct", 4, "account"),
                ("Descriptions", 1, "description"), ("Organizations", 1, "organization"),
                ("Clusters", 1, "cluster")],
    "user": [("Names", 1, "user"), ("Users", 1, "user"), ("Clusters", 1, "cluster"),
             ("DefaultAccount", 8, "default_account"), ("Accounts", 2, "accounts"), ("Acct", 4, "accounts")],
    "association": [("Accounts", 2, "account"), ("Acct", 4, "account"), ("Clusters", 1, "cluster"),
                    ("Parents", 4, "parent_name"), ("Partitions", 3, "partition"), ("Users", 1, "user")],
    "qos": [("Names", 1, "name"), ("QOSLevel", 1, "name"), ("Clusters", 1, "cluster"),
            ("Descriptions", 1, "description")],
}


def _show(entity: str, rest: list[str], with_assoc: bool = False) -> Show:
    formats: list[str] = []
    filters: dict[str, list[str]] = {}
    tree = False
    for part, word, value, key in _after_command(rest):
        if part == "set":
            raise UsageError(f"Unknown condition: {word}: show takes no 'set'")
        if value is not None and _is(key, "Format", 1):
            formats.append(value)
            continue
        if entity == "association" and value is None and _is(word, "Tree", 4):
            tree = True
            continue
        if value is None and _is(word, "WithAssoc", 5):
            with_assoc = True
            continue
        if value is None and any(_is(word, w, n) for w, n in (("WithCoordinators", 5),
                                                              ("WithDeleted", 5), ("WOPLimits", 4))):
            raise UsageError(f"{word} is not supported here")
        if value is None and entity != "association":
            filters.setdefault(_SHOW_CONDITIONS[entity][0][2], []).extend(_names(word))
            continue
        for keyword, least, field in _SHOW_CONDITIONS[entity]:
            if value is not None and _is(key, keyword, least):
                values = split_list(value) if field in ("description", "organization") else _names(value)
                filters.setdefault(field, []).extend(values)
                break
        else:
            raise UsageError(f"Unknown condition: {word}")
    if with_assoc and entity in ("user", "account"):
        # A user's or an account's associations (sacctmgr -s, WithAssoc): the associations of
        # those named, a line each, in the association's columns; a user's are users' lines.
        entity, filters = "association", _association_filters(entity, filters)
    format_text = ",".join(formats) if formats else DEFAULT_FORMATS[entity]
    return Show(entity, columns(format_text, tree), filters, tree)


# With -s: what a show of users or accounts filters by, as the association's filter.
_AS_ASSOCIATION = {"user": "user", "accounts": "account", "account": "account", "cluster": "cluster"}


def _association_filters(entity: str, filters: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"_user_rows": []} if entity == "user" else {}
    for field, values in filters.items():
        if field not in _AS_ASSOCIATION:
            raise UsageError(f"{field} is not a condition of associations: with -s/WithAssoc, name users, "
                             "accounts or the cluster")
        out.setdefault(_AS_ASSOCIATION[field], []).extend(values)
    return out


_SHOW_PATHS = {
    "account": "/accounting/accounts",
    "user": "/accounting/users",
    "association": "/accounting/associations",
    "qos": "/accounting/qos",
}


def _limits_row(limits: dict[str, Any]) -> dict[str, str]:
    return {
        "grp_tres": tres_text(limits.get("grp_cpus"), limits.get("grp_memory_mb")),
        "grp_cpus": _num(limits.get("grp_cpus")),
        "grp_mem": _num(limits.get("grp_memory_mb")),
        "max_jobs": _num(limits.get("max_jobs")),
        "max_submit": _num(limits.get("max_submit_jobs")),
        "max_wall": wall_text(limits.get("max_wall")),
    }


def _num(value: object) -> str:
    return "" if value is None else str(value)


def rows(show: Show, answer: Any) -> list[dict[str, str]]:
    """The server's answer -> one dict per line (row key -> text), filtered as asked."""
    out: list[dict[str, str]] = []
    if show.entity == "account":
        for a in sorted(answer.get("accounts", []), key=lambda a: str(a["name"])):
            out.append({"account": a["name"], "description": a["description"], "organization": a["organization"],
                        "cluster": CLUSTER})
    elif show.entity == "user":
        for u in answer.get("users", []):
            out.append({"user": u["name"], "default_account": u["default_account"], "cluster": CLUSTER,
                        "accounts": ",".join(u.get("accounts", []))})
    elif show.entity == "association":
        for a in answer.get("associations", []):
            account = a["account"]
            row = {"cluster": CLUSTER, "account": (" " * a.get("depth", 0) + account) if show.tree else account,
                   "_account": account, "user": a["user"], "parent_name": a.get("parent") or "",
                   "share": _num(a.get("fairshare")), **_limits_row(a.get("limits") or {})}
            out.append(row)
    else:
        for q in answer.get("qos", []):
            out.append({
                "name": q["name"], "description": q.get("description", ""), "priority": _num(q.get("priority")),
                "cluster": CLUSTER, "max_jobs": _num(q.get("max_jobs_per_user")),
                "max_submit": _num(q.get("max_submit_jobs_per_user")),
                "max_tres_pu": tres_text(q.get("max_cpus_per_user"), q.get("max_memory_per_user")),
                "grp_tres": tres_text(q.get("grp_cpus"), q.get("grp_memory_mb")),
                "max_wall": wall_text(q.get("max_wall")),
            })
    return [r for r in out if _matches(show, r)]


def _matches(show: Show, row: dict[str, str]) -> bool:
    for field, wanted in show.filters.items():
        if field == "_user_rows":  # a user's associations: not the accounts' own lines
            if not row.get("user"):
                return False
            continue
        if field == "accounts":  # a user's accounts
            if not set(row.get("accounts", "").split(",")) & set(wanted):
                return False
            continue
        key = "_account" if field == "account" and "_account" in row else field
        value = row.get(key, "")
        if field in ("description", "organization"):
            if value.lower() not in {w.lower() for w in wanted}:
                return False
        elif value not in wanted:
            return False
    return True


def render(show: Show, table: list[dict[str, str]], *, header: bool = True, parsable: str = "") -> str:
    """sacctmgr's print_fields: fixed width (right-justified, or left with a negative width;
    header, then dashes), or '|'-separated: parsable='p' ends each line with '|', 'P' does not."""
    lines = []
    if header:
        lines.append(_line([c[1] for c in show.columns], show.columns, parsable, header=True))
        if not parsable:
            lines.append(" ".join("-" * abs(c[2]) for c in show.columns) + " \n")
    for row in table:
        lines.append(_line([row.get(c[0], "") for c in show.columns], show.columns, parsable, header=False))
    return "".join(lines)


def _line(values: list[str], cols: list[Column], parsable: str, *, header: bool) -> str:
    if parsable == "P":
        return "|".join(values) + "\n"
    if parsable == "p":
        return "".join(v + "|" for v in values) + "\n"
    cells = []
    for value, (_, _, width, cut) in zip(values, cols, strict=True):
        size = abs(width)
        if header:
            value = value[:size]
        elif cut and len(value) > size:
            value = value[: size - 1] + "+"
        cells.append(value.rjust(size) if width > 0 else value.ljust(size))
    return "".join(c + " " for c in cells) + "\n"


# ------------------------------------------------------------------ main
def confirm() -> bool:
    """sacctmgr's commit_check: ask on stdout, read the answer from stdin within 30 seconds."""
    sys.stdout.write("Would you like to commit changes? (You have 30 seconds to decide)\n(N/y): ")
    sys.stdout.flush()
    answer = _read_answer(30.0)
    if answer is None:
        sys.stdout.write("timeout\n")
        return False
    sys.stdout.write("\n")
    return answer[:1] in ("y", "Y")


def _read_answer(timeout: float) -> str | None:
    stdin = sys.stdin
    if stdin is None:
        return ""
    try:
        fd = stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd >= 0:
        import select

        try:
            ready, _, _ = select.select([fd], [], [], timeout)
        except (OSError, ValueError):
            ready = [fd]
        if not ready:
            return None
    return stdin.readline()


def main(argv: list[str], client: Requester | None = None) -> int:
    return run(PROG, lambda: _main(argv, client))


def _main(argv: list[str], client: Requester | None) -> int:
    parsed, words = getopt_long(argv, OPTIONS)
    opts = dict(parsed)
    if "help" in opts:
        sys.stdout.write(help_text())
        return 0
    if "usage" in opts:
        sys.stdout.write(USAGE)
        return 0
    if "version" in opts:
        sys.stdout.write(SLURM_VERSION)
        return 0
    if not words:
        raise UsageError("no command given (sacctmgr's interactive mode is not supported): " + USAGE.strip())
    what = parse(words, with_assoc="associations" in opts)
    if isinstance(what, Change) and "readonly" in opts:
        raise UsageError("Can't run this command in readonly mode")
    own = client is None
    if client is None:
        from conductor.cli.client import Client

        client = Client()
    try:
        if isinstance(what, Show):
            answer = client.request("GET", _SHOW_PATHS[what.entity])
            parsable = "P" if "parsable2" in opts else "p" if "parsable" in opts else ""
            sys.stdout.write(render(what, rows(what, answer), header="noheader" not in opts, parsable=parsable))
            return 0
        return _change(what, client, immediate="immediate" in opts, quiet="quiet" in opts)
    finally:
        if own:
            client.close()


def _change(what: Change, client: Requester, *, immediate: bool, quiet: bool) -> int:
    """Make the change. Asked first, the summary comes before the question: it is what the
    question is about. With -i it comes once the server has accepted every request, as it says
    what was done (a refusal prints the error alone, not the change it refused)."""
    summary = "" if quiet else what.summary
    if not immediate:
        sys.stdout.write(summary)
        if not confirm():
            sys.stdout.write(" Changes Discarded\n")
            return 0
    for call in what.calls:
        client.request(call.method, call.path, body=call.body, query=call.query or None)
    if immediate:
        sys.stdout.write(summary)
    return 0
