"""`conductor squeue`: list queued and running jobs in squeue's formats."""

from __future__ import annotations

import os
import re
import sys
import time

from conductor.cli.client import Client
from conductor.cli.common import (
    ACTIVE_STATES,
    CODE_STATES,
    SLURM_VERSION,
    STATE_CODES,
    UsageError,
    collect_options,
    current_user,
    run,
    split_list,
)
from conductor.cli.dependency_states import DependencyStates
from conductor.cli.getopt import Option, OptionTable, getopt_long
from conductor.cli.jobsel import check_min_job_age, fetch_jobs, min_job_age, parse_job_specs, still_held
from conductor.cli.squeue_format import (
    DEFAULT_FORMAT,
    LINE,
    LONG_FORMAT,
    SORT_KEY,
    START_FORMAT,
    Field,
    FormatError,
    collapse_pending_arrays,
    default_key,
    default_sort,
    line_maker,
    parse_format,
    parse_long_format,
    record_keys,
    render,
    sort_jobs,
)
from conductor.cli.unavailable import UnavailableNodes
from conductor.errors import ConductorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

PROG = "squeue"
MIN_JOB_AGE_SECONDS = min_job_age()

OPTIONS = OptionTable(
    [
        Option("account", ("account", "accounts"), "A", "required"),
        Option("all", ("all",), "a"),
        Option("array", ("array",), "r"),
        Option("noheader", ("noheader",), "h"),
        Option("help", ("help",), None),
        Option("hide", ("hide",), None),
        Option("iterate", ("iterate",), "i", "required"),
        Option("jobs", ("jobs", "job"), "j", "required"),
        Option("long", ("long",), "l"),
        Option("licenses", ("licenses",), "L", "required"),
        Option("clusters", ("clusters", "cluster"), "M", "required"),
        Option("me", ("me",), None),
        Option("name", ("name",), "n", "required"),
        Option("noconvert", ("noconvert",), None),
        Option("format", ("format",), "o", "required"),
        Option("Format", ("Format",), "O", "required"),
        Option("partition", ("partition",), "p", "required"),
        Option("priority", ("priority",), "P"),
        Option("qos", ("qos",), "q", "required"),
        Option("reservation", ("reservation",), "R", "required"),
        Option("steps", ("steps",), "s", "optional"),
        Option("sort", ("sort",), "S", "required"),
        Option("start", ("start",), None),
        Option("states", ("states", "state"), "t", "required"),
        Option("user", ("user", "users"), "u", "required"),
        Option("usage", ("usage",), None),
        Option("verbose", ("verbose",), "v"),
        Option("version", ("version",), "V"),
        Option("nodelist", ("nodelist", "nodes", "node"), "w", "required"),
        Option("json", ("json",), None, "optional"),
        Option("yaml", ("yaml",), None, "optional"),
    ]
)

USAGE = (
    "Usage: squeue [-A account] [--clusters names] [-i seconds] [--job jobid]\n"
    "              [-n name] [-o format] [-O fields] [-p partitions]\n"
    "              [--qos qos] [--reservation reservation] [--sort fields] [--start]\n"
    "              [--steps step_id] [-t states] [-u user_name] [--me] [--usage]\n"
    "              [-L licenses] [-w nodes] [--json=data_parser] [--yaml=data_parser]\n"
    "              [-ahlPrv]\n"
)


DESCRIBED: dict[str, tuple[str, str]] = {
    "account": ("account(s)", "comma separated list of accounts to view"),
    "all": ("", "display jobs in hidden partitions"),
    "array": ("", "display one job array element per line"),
    "clusters": ("names", "clusters to view (one cluster here)"),
    "Format": ("fields", "format specification by field name (e.g. JobID:10,State)"),
    "format": ("format", "format specification (e.g. \"%.18i %.9P %.8j %T\")"),
    "help": ("", "show this help message"),
    "hide": ("", "do not display jobs in hidden partitions"),
    "iterate": ("seconds", "specify an interation period"),
    "jobs": ("job(s)", "comma separated list of jobs IDs to view, default is all"),
    "json": ("v0.0.40", "dump the selected jobs as JSON (data_parser v0.0.40, as slurmrestd)"),
    "licenses": ("license(s)", "comma separated list of license names to view"),
    "long": ("", "long report"),
    "me": ("", "equivalent to --user=<current user>"),
    "name": ("job_name(s)", "comma separated list of job names to view"),
    "noconvert": ("", "don't convert units from their original type"),
    "noheader": ("", "no headers on output"),
    "nodelist": ("hostlist", "list of nodes to view, default is all nodes"),
    "partition": ("partition(s)", "comma separated list of partitions to view, default is all"),
    "priority": ("", "sort by priority (show a job once per partition)"),
    "qos": ("qos(s)", "comma separated list of qos's to view, default is all"),
    "reservation": ("name", "reservation to view, default is all"),
    "sort": ("fields", "comma separated list of fields to sort on (e.g. -t,i)"),
    "start": ("", "print expected start times of pending jobs"),
    "states": ("state(s)", "comma separated list of states to view, default is pending and running, "
               "'all' reports all states"),
    "steps": ("step(s)", "comma separated list of job steps to view (none are tracked here)"),
    "usage": ("", "display brief usage message"),
    "user": ("user_name(s)", "comma separated list of users to view"),
    "verbose": ("", "verbosity level"),
    "version": ("", "output version information and exit"),
    "yaml": ("data_parser", "Slurm's YAML output (not supported here)"),
}


def help_text() -> str:
    from conductor.cli.helptext import page

    return page(USAGE, OPTIONS, DESCRIBED)


def parse_states(text: str) -> list[str] | None:
    """-t values: names or compact codes, any case; 'all' means no filter (None)."""
    states: list[str] = []
    for item in split_list(text):
        upper = item.upper()
        if upper == "ALL":
            return None
        if upper in STATE_CODES:
            states.append(upper)
        elif upper in CODE_STATES:
            states.append(CODE_STATES[upper])
        else:
            raise UsageError(
                f"Invalid job state specified: {item}\n"
                f"{PROG}: error: Valid job states include: "
                + ",".join(sorted(STATE_CODES))
            )
    return states


def _user_name(text: str) -> str | None:
    """The user a name or numeric uid is in this host's user database (Slurm's uid_from_string:
    a name first, then a uid), as jobs record it; None for neither."""
    import pwd

    try:
        return pwd.getpwnam(text).pw_name
    except KeyError:
        pass
    if not (text.isascii() and text.isdigit()):
        return None
    try:
        return pwd.getpwuid(int(text)).pw_name
    except (KeyError, OverflowError):
        return None


def known_users(names: list[str]) -> list[str]:
    """-u/--user and SQUEUE_USERS: the users named, a uid as its user's name. squeue reports a
    name that is no user of this host and leaves it out (_build_user_list in opts.c); here the
    commands may run on a host that does not share the server's users, so a name that could be
    a user's goes to the server as written, which lists that user's jobs or none. Only what
    can be no user here or there (a uid this host does not know, a name no user may have) is
    reported, as squeue reports it (error("Invalid user: %s\n"): a blank line follows), and
    left out; the listing goes on, and a list left with no user shows no job."""
    users: list[str] = []
    for name in names:
        user = _user_name(name)
        if user is None and not name.isdigit() and _USER_NAME.fullmatch(name):
            user = name
        if user is None:
            sys.stderr.write(f"{PROG}: error: Invalid user: {name}\n\n")
        else:
            users.append(user)
    return users


# What a user name may be (as the server takes X-SLURM-USER-NAME): with fullmatch.
_USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}", re.ASCII)


def wanted_nodes(text: str, client: Client) -> frozenset[str]:
    """-w/--nodelist: the nodes of a host list, each one the cluster has (opts.c: hostset_create,
    then _filter_nodes maps each name, "localhost" being this host's short name). An empty
    list is no node: it selects no job, as squeue's empty hostset does."""
    import socket

    from conductor.domain.hostlist import expand_hostlist

    try:
        names = expand_hostlist(text, field="--nodelist")
    except ConductorError:
        raise UsageError(f"'{text}' invalid entry for --nodelist") from None
    if not names:
        return frozenset()
    known = {str(node.get("name")) for node in client.get("/nodes").get("nodes", [])}
    wanted: set[str] = set()
    for name in names:
        node = socket.gethostname().split(".")[0] if name.lower() == "localhost" else name
        if node not in known:
            raise UsageError(f"Invalid node name {name}")
        wanted.add(node)
    return frozenset(wanted)


def on_nodes(job: dict[str, Any], nodes: frozenset[str], expanded: dict[str, frozenset[str]]) -> bool:
    """Whether the job's node list shares a node with `nodes`: a job without nodes (a pending
    one) never does (print.c _filter_job: job->nodes NULL, or no hostset_intersects).
    `expanded` keeps the node lists already expanded (many jobs share one)."""
    from conductor.domain.hostlist import expand_hostlist

    node_list = job.get("node_list")
    if not node_list or not isinstance(node_list, str):
        return False
    if node_list not in expanded:
        try:
            expanded[node_list] = frozenset(expand_hostlist(node_list))
        except ConductorError:
            expanded[node_list] = frozenset({node_list})
    return not nodes.isdisjoint(expanded[node_list])


def _prerender(
    make: Callable[[dict[str, Any]], str],
    default_order: bool,
    describe: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Callable[[list[dict[str, Any]]], None]:
    """What makes the lines of a page of jobs (see squeue_format.LINE), and their places in the
    default order when the view sorts by it (SORT_KEY); `describe` first adds what the lines
    print of a job that the record does not hold (cli/unavailable.py)."""

    def prerender(batch: list[dict[str, Any]]) -> None:
        if describe is not None:
            describe(batch)
        for job in batch:
            job[LINE] = make(job)
            if default_order:
                job[SORT_KEY] = default_key(job)

    return prerender


def _describers(client: Client, dependencies: bool) -> Callable[[list[dict[str, Any]]], None]:
    """What a page's lines print that its records do not hold: the nodes a ReqNodeNotAvail job
    waits for, and (`dependencies`: the view shows them) how each dependency stands."""
    unavailable = UnavailableNodes(client).describe
    if not dependencies:
        return unavailable
    states = DependencyStates(client).describe

    def describe(batch: list[dict[str, Any]]) -> None:
        unavailable(batch)
        states(batch)

    return describe


def _iso(stamp: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(stamp, tz=UTC).isoformat()


def _columns(opts: dict[str, str | None], start: bool) -> list[str | Field]:
    """The view's layout: -O, else -o, else SQUEUE_FORMAT, else SQUEUE_FORMAT2, else the default.

    With both variables set SQUEUE_FORMAT wins, as in Slurm 22.05's squeue (src/squeue/opts.c
    reads it first and SQUEUE_FORMAT2 only without it). An option given empty (`-O "$FIELDS"`
    with the variable unset) is refused: it is a mistake, not a request for the default. The
    variables are read as the shell does: empty is unset."""
    if "Format" in opts:
        return parse_long_format(opts["Format"] or "", "-O/--Format")
    if "format" in opts:
        return parse_format(opts["format"] or "", "-o/--format")
    if os.environ.get("SQUEUE_FORMAT"):
        return parse_format(os.environ["SQUEUE_FORMAT"], "SQUEUE_FORMAT")
    if os.environ.get("SQUEUE_FORMAT2"):
        return parse_long_format(os.environ["SQUEUE_FORMAT2"], "SQUEUE_FORMAT2")
    return parse_format(START_FORMAT if start else LONG_FORMAT if "long" in opts else DEFAULT_FORMAT)


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:  # noqa: C901 - one branch per squeue option
    parsed, operands = getopt_long(argv, OPTIONS)
    opts, multi = collect_options(parsed)
    check_min_job_age()
    if "help" in opts:
        sys.stdout.write(help_text())
        return 0
    if "usage" in opts:
        sys.stdout.write(USAGE)
        return 0
    if "version" in opts:
        sys.stdout.write(SLURM_VERSION)
        return 0
    if "yaml" in opts:
        raise UsageError("--yaml is not supported; use --json or -o/-O")
    as_json = "json" in opts
    if as_json:
        from conductor.cli.slurm_json import check_parser

        check_parser(PROG, opts["json"])
    if "steps" in opts:
        # Jobs here have no separately tracked steps: the step list is empty.
        if "noheader" not in opts:
            sys.stdout.write(
                f"{'STEPID':>15} {'NAME':>8} {'PARTITION':>9} {'USER':>8} "
                f"{'TIME':>9} NODELIST\n"
            )
        return 0

    job_values = multi.get("jobs", [])
    if operands and "jobs" in opts:
        job_values += operands  # squeue -j takes a following operand as the job list
    elif operands:
        raise UsageError(f"Unrecognized option: {operands[0]}\n{USAGE.rstrip()}")
    specs = parse_job_specs(job_values, allow_empty=True) if job_values else None

    start = "start" in opts
    states_text = opts.get("states") or os.environ.get("SQUEUE_STATES")
    states: list[str] | None
    if states_text:
        states = parse_states(states_text)
    elif start:
        # --start: "--format=... --sort=S --states=PENDING", each overridable.
        states = ["PENDING"]
    else:
        # Pending, running, completing: also with -j, as squeue's _filter_job does (scripts
        # poll `squeue -h -j ID` until it prints nothing to learn that a job ended).
        states = list(ACTIVE_STATES)
    users: list[str] | None = None
    # --me and -u each replace what the other said, the last one given winning (opts.c).
    last = next((key for key, _ in reversed(parsed) if key in ("user", "me")), None)
    if last == "me":
        users = [current_user()]
    elif last == "user":  # each -u replaces the one before, as in opts.c
        users = known_users(split_list(multi["user"][-1]))
    elif os.environ.get("SQUEUE_USERS"):
        users = known_users(split_list(os.environ["SQUEUE_USERS"]))
    names = [n for v in multi.get("name", []) for n in split_list(v)] or None
    partitions_text = opts.get("partition") or os.environ.get("SQUEUE_PARTITION")
    partitions = split_list(partitions_text) if partitions_text else None
    accounts_text = opts.get("account") or os.environ.get("SQUEUE_ACCOUNT")
    # Accounts and QOS are matched as squeue matches them, without regard to case (print.c
    # _filter_job: xstrcasecmp).
    accounts = {a.lower() for a in split_list(accounts_text)} if accounts_text else None
    qos = {q.lower() for q in split_list(opts["qos"])} if opts.get("qos") else None
    nodelist = opts.get("nodelist")

    try:
        items = _columns(opts, start)
    except FormatError as exc:
        raise UsageError(str(exc)) from None
    sort_spec = opts.get("sort") or os.environ.get("SQUEUE_SORT") or ("S" if start else None)

    iterate = opts.get("iterate")
    period = 0.0
    if iterate is not None:
        try:
            period = float(iterate)
        except ValueError:
            raise UsageError(f"invalid --iterate value: {iterate}") from None
        if period <= 0:
            raise UsageError("--iterate must be positive")

    live_only = states is not None and set(states) <= set(ACTIVE_STATES)
    # The record keys this view reads: the server sends only those (--json prints whole records).
    # With -j, ended jobs come too (to tell ids nobody knows), and their end_time is read.
    filtered = [key for key, values in (("account", accounts), ("qos", qos), ("node_list", nodelist)) if values]
    fields = None if as_json else record_keys(items, sort_spec, live_only=live_only and not specs, filtered=filtered)
    client = Client()
    try:
        nodes = wanted_nodes(nodelist, client) if nodelist is not None else None
        expanded: dict[str, frozenset[str]] = {}
        while True:
            now = time.time()
            # Each page's lines are made as it arrives, while the server makes the next.
            prerender = (
                None if as_json
                else _prerender(
                    line_maker(items, now), not sort_spec, _describers(client, "dependency" in (fields or ()))
                )
            )

            if specs is not None:
                # Unfiltered by state, to tell ids nobody knows from jobs in other states.
                jobs = fetch_jobs(
                    client, specs, users=users or None, names=names, partitions=partitions, fields=fields,
                    each_page=prerender, completing=True,
                )
            elif users == []:
                jobs = []  # every user named is unknown: no job is any of theirs
            else:
                jobs = fetch_jobs(
                    client,
                    None,
                    states=states,
                    users=users or None,
                    names=names,
                    partitions=partitions,
                    # Only a view of ended jobs needs the bound: live jobs show however long
                    # ago they ended an earlier run (asking for it cost each page a look at
                    # every live job's row, to count them).
                    since=None if live_only else _iso(now - MIN_JOB_AGE_SECONDS),
                    fields=fields,
                    each_page=prerender,
                    completing=True,
                )
            # Ended jobs fade out after MinJobAge, as slurmctld purges them.
            known = [j for j in jobs if still_held(j, now, MIN_JOB_AGE_SECONDS)]
            if specs and not known:
                # squeue -j for ids slurmctld does not know (never existed, or purged).
                sys.stderr.write("slurm_load_jobs error: Invalid job id specified\n")
                return 1
            jobs = [j for j in known if states is None or j.get("state") in states]
            if users is not None:
                jobs = [j for j in jobs if j.get("user") in users]
            if accounts:
                jobs = [j for j in jobs if str(j.get("account") or "").lower() in accounts]
            if qos:
                # The QOS as %q shows it: a job without one is in "normal".
                jobs = [j for j in jobs if str(j.get("qos") or "normal").lower() in qos]
            if nodes is not None:
                jobs = [j for j in jobs if on_nodes(j, nodes, expanded)]
            if as_json:
                from conductor.cli.slurm_json import squeue_document, write

                write(squeue_document(client.get("/slurm/v0.0.40/jobs"), jobs, argv))
                return 0
            if "array" not in opts:
                jobs = collapse_pending_arrays(jobs)
            try:
                jobs = sort_jobs(jobs, sort_spec) if sort_spec else default_sort(jobs)
            except FormatError as exc:
                raise UsageError(str(exc)) from None
            out = []
            if "long" in opts or iterate is not None:
                out.append(time.strftime("%a %b %d %H:%M:%S %Y") + "\n")
            out.append(render(items, jobs, header="noheader" not in opts, now=now))
            sys.stdout.write("".join(out))
            sys.stdout.flush()
            if iterate is None:
                return 0
            sys.stdout.write("\n")
            time.sleep(period)
    finally:
        client.close()
