"""`conductor sacct`: accounting view of jobs, including ended ones, in sacct's formats."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

from conductor.cli.client import Client
from conductor.cli.common import (
    CODE_STATES,
    SLURM_VERSION,
    STATE_CODES,
    UsageError,
    collect_options,
    current_user,
    empty_format,
    parse_iso,
    run,
    slurm_time,
    split_list,
    stop_at_end_request,
)
from conductor.cli.getopt import Option, OptionTable, getopt_long
from conductor.cli.jobsel import JobSpec, fetch_jobs, parse_job_specs
from conductor.cli.sacct_format import (
    BRIEF_FIELDS,
    DEFAULT_FIELDS,
    LONG_FIELDS,
    NO_CONVERT,
    WIDTHS,
    FieldError,
    expand_rows,
    parse_fields,
    render,
    unit_type,
)
from conductor.cli.squeue_format import collapse_pending_arrays

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "sacct"

OPTIONS = OptionTable(
    [
        Option("allusers", ("allusers",), "a"),
        Option("accounts", ("accounts", "account"), "A", "required"),
        Option("array", ("array",), None),
        # Ours: jobs purged from the database into the archive (Slurm reads its archive back
        # with `sacctmgr archive load` instead).
        Option("archived", ("archived",), None),
        Option("brief", ("brief",), "b"),
        Option("completion", ("completion",), "c"),
        Option("constraints", ("constraints",), "C", "required"),
        Option("delimiter", ("delimiter",), None, "required"),
        Option("duplicates", ("duplicates",), "D"),
        Option("helpformat", ("helpformat",), "e"),
        Option("endtime", ("endtime",), "E", "required"),
        Option("file", ("file",), "f", "required"),
        Option("flags", ("flags",), "F", "required"),
        Option("gid", ("gid", "group"), "g", "required"),
        Option("help", ("help",), "h"),
        Option("nnodes", ("nnodes",), "i", "required"),
        Option("ncpus", ("ncpus",), "I", "required"),
        Option("jobs", ("jobs",), "j", "required"),
        Option("timelimit_min", ("timelimit-min",), "k", "required"),
        Option("timelimit_max", ("timelimit-max",), "K", "required"),
        Option("long", ("long",), "l"),
        Option("allclusters", ("allclusters",), "L"),
        Option("clusters", ("clusters", "cluster"), "M", "required"),
        Option("noheader", ("noheader",), "n"),
        Option("nodelist", ("nodelist",), "N", "required"),
        Option("name", ("name",), None, "required"),
        Option("noconvert", ("noconvert",), None),
        Option("format", ("format", "fields"), "o", "required"),
        Option("parsable", ("parsable",), "p"),
        Option("parsable2", ("parsable2",), "P"),
        Option("qos", ("qos",), "q", "required"),
        Option("partition", ("partition",), "r", "required"),
        Option("state", ("state",), "s", "required"),
        Option("starttime", ("starttime",), "S", "required"),
        Option("truncate", ("truncate",), "T"),
        Option("user", ("user", "uid"), "u", "required"),
        Option("units", ("units",), None, "required"),
        Option("usage", ("usage",), "U"),
        Option("verbose", ("verbose",), "v"),
        Option("version", ("version",), "V"),
        Option("wckeys", ("wckeys",), "W", "required"),
        Option("associations", ("associations",), "x", "required"),
        Option("allocations", ("allocations",), "X"),
        Option("json", ("json",), None, "optional"),
        Option("yaml", ("yaml",), None, "optional"),
        Option("local", ("local",), None),
        Option("federation", ("federation",), None),
        Option("whole_hetjob", ("whole-hetjob",), None, "optional"),
        Option("expand_patterns", ("expand-patterns",), None),
    ]
)

USAGE = "Usage: sacct [options]\n\tUse --help for help\n"

DESCRIBED: dict[str, tuple[str, str]] = {
    "accounts": ("account_list", "only send data about these accounts"),
    "allclusters": ("", "display jobs ran on all clusters (one cluster here)"),
    "allocations": ("", "only show statistics relevant to the job allocation itself"),
    "allusers": ("", "display jobs for all users (default for root and administrators)"),
    "archived": ("", "include jobs purged from the database into the archive (not read here)"),
    "array": ("", "expand job arrays: one line per array task"),
    "associations": ("assoc_list", "only send data about these association ids (ignored here)"),
    "brief": ("", "equivalent to '--format=jobstep,state,exitcode'"),
    "clusters": ("cluster_list", "only send data about these clusters (one cluster here)"),
    "completion": ("", "use job completion data instead of job accounting"),
    "constraints": ("constraint_list", "only show jobs with these constraints"),
    "delimiter": ("characters", "first character is the delimiter of --parsable/--parsable2"),
    "duplicates": ("", "show all copies of a requeued job"),
    "endtime": ("time", "select jobs eligible before this time"),
    "expand_patterns": ("", "expand the %-patterns of StdOut/StdErr/StdIn paths"),
    "federation": ("", "report jobs from the federation (one cluster here)"),
    "file": ("file", "read data from the specified file (not supported here)"),
    "flags": ("flags", "filter flags (e.g. SkipSteps)"),
    "format": ("field_list", "comma separated list of fields (see --helpformat)"),
    "gid": ("gid_list", "only send data about these groups"),
    "help": ("", "show this help message"),
    "helpformat": ("", "print a list of fields that can be specified with --format"),
    "jobs": ("job(.step)", "comma separated list of jobs (array tasks as 12_3)"),
    "json": ("v0.0.40", "dump the selected jobs as JSON (data_parser v0.0.40, slurmdbd's job records)"),
    "local": ("", "report jobs of the local cluster only"),
    "long": ("", "equivalent to specifying a long list of fields"),
    "name": ("jobname_list", "only send data about jobs with these names"),
    "ncpus": ("N[-M]", "only show jobs with this many allocated CPUs"),
    "nnodes": ("N[-M]", "only show jobs with this many allocated nodes"),
    "noconvert": ("", "don't convert units from their original type"),
    "noheader": ("", "no headers on output"),
    "nodelist": ("node_list", "only show jobs which ran on these nodes"),
    "parsable": ("", "output '|' delimited, with a trailing '|'"),
    "parsable2": ("", "output '|' delimited, without a trailing '|'"),
    "partition": ("partition_list", "only send data about jobs in these partitions"),
    "qos": ("qos_list", "only send data about jobs of these qos"),
    "starttime": ("time", "select jobs eligible after this time (default: 00:00 today)"),
    "state": ("state_list", "only send data about jobs in these states (with -S/-E: during them)"),
    "timelimit_max": ("time", "only show jobs with a time limit at most this"),
    "timelimit_min": ("time", "only show jobs with a time limit at least this"),
    "truncate": ("", "truncate time: report only the part within --starttime/--endtime"),
    "units": ("[KMGTP]", "display values in the specified unit type"),
    "usage": ("", "display brief usage message"),
    "user": ("user_list", "only send data about these users"),
    "verbose": ("", "verbose mode"),
    "version": ("", "output version information and exit"),
    "wckeys": ("wckey_list", "only send data about these wckeys"),
    "whole_hetjob": ("yes|no", "show all components of a heterogeneous job (ignored here)"),
    "yaml": ("data_parser", "Slurm's YAML output (not supported here)"),
}


def help_text() -> str:
    from conductor.cli.helptext import page

    return page("Usage: sacct [options]\n", OPTIONS, DESCRIBED)


def parse_sacct_time(text: str, now: datetime, field: str = "--starttime") -> datetime:
    """-S/-E values, in Slurm's grammar, read as sacct reads them (`parse_time(optarg, 1)`,
    looking into the past): a date without a year is this year unless its month is later than
    now's (then last year's); a time of day without a date is today's."""
    from conductor.domain.errors import SpecError
    from conductor.domain.timespec import parse_begin_time

    value = text.strip()
    try:
        return parse_begin_time(value, now=now, field=field, past=True)
    except SpecError as exc:
        raise UsageError(
            f"Invalid time specification (pos=0): {value} ({exc.message})"
        ) from None


def _parse_states(text: str) -> list[str]:
    states: list[str] = []
    for item in split_list(text):
        upper = item.upper()
        if upper in STATE_CODES:
            states.append(upper)
        elif upper in CODE_STATES:
            states.append(CODE_STATES[upper])
        elif upper == "CA":
            states.append("CANCELLED")
        else:
            raise UsageError(f"Invalid state: {item}")
    return states


def in_window(
    job: dict[str, Any], start: float, end: float, states: list[str] | None
) -> bool:
    """Slurm's selection: eligible before the window ends and not ended before it starts."""
    eligible = parse_iso(job.get("eligible_time") or job.get("submit_time"))
    ended = parse_iso(job.get("end_time"))
    if states is not None and job.get("state") not in states:
        return False
    if eligible is not None and eligible.timestamp() >= end:
        return False
    return not (ended is not None and ended.timestamp() < start)


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, tz=UTC).isoformat()


def _named(row: dict[str, Any], specs: list[JobSpec]) -> bool:
    """Whether a line (a job's, or a step's: `_sacct_raw_id` 12.batch) is one `specs` name."""
    return _names_step(row, str(row.get("_sacct_raw_id") or "").partition(".")[2] or None, specs)


def _names_step(job: dict[str, Any], step: str | None, specs: list[JobSpec]) -> bool:
    """Whether `specs` name this step of the job (None: the job's own line)."""
    return any(spec.matches(job) and spec.step in (None, step) for spec in specs)


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:  # noqa: C901 - one branch per sacct option
    parsed, operands = getopt_long(argv, OPTIONS)
    opts, multi = collect_options(parsed)
    if operands:
        raise UsageError(f"Unknown arguments: {' '.join(operands)}")
    if "help" in opts:
        sys.stdout.write(help_text())
        return 0
    if "usage" in opts:
        sys.stdout.write(USAGE)
        return 0
    if "version" in opts:
        sys.stdout.write(SLURM_VERSION)
        return 0
    if "helpformat" in opts:
        field_names = list(WIDTHS)
        for i in range(0, len(field_names), 4):
            sys.stdout.write(
                "".join(f"{n:<20}" for n in field_names[i : i + 4]).rstrip() + "\n"
            )
        return 0
    if "yaml" in opts:
        raise UsageError("--yaml is not supported; use --json, or --parsable2 with --format")
    if "json" in opts:
        from conductor.cli.slurm_json import check_parser

        check_parser(PROG, opts["json"])

    field_spec = ",".join(multi.get("format", []))
    if "format" in opts and not split_list(field_spec):
        # `-o "$FIELDS"` with the variable unset: a mistake, not a request for the default.
        raise empty_format("-o/--format")
    option = "-o/--format"
    if "brief" in opts:
        field_spec = ",".join(filter(None, [field_spec, BRIEF_FIELDS]))
    if "long" in opts:
        field_spec = ",".join(filter(None, [field_spec, LONG_FIELDS]))
    if not field_spec:
        field_spec = os.environ.get("SACCT_FORMAT") or DEFAULT_FIELDS
        option = "SACCT_FORMAT"
    try:
        columns = parse_fields(field_spec, option)
    except FieldError as exc:
        raise UsageError(str(exc)) from None

    units: int | None = None
    if "units" in opts:  # over --noconvert, as convert_num_unit2 takes a unit over any flag
        try:
            units = unit_type(opts["units"] or "")
        except FieldError as exc:
            raise UsageError(str(exc)) from None
    elif "noconvert" in opts:
        units = NO_CONVERT

    specs = parse_job_specs(multi["jobs"], allow_empty=True) if "jobs" in multi else None
    states = _parse_states(",".join(multi["state"])) if "state" in multi else None
    # Whole seconds, as Slurm's time(NULL): "-E now" is then exactly now below.
    now_dt = datetime.now().astimezone().replace(microsecond=0)
    now = now_dt.timestamp()
    start: float
    if opts.get("starttime"):
        start = parse_sacct_time(opts["starttime"] or "", now_dt).timestamp()
    elif specs:
        start = 0.0
    elif states:
        start = now
    else:
        start = now_dt.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    if opts.get("endtime"):
        end = parse_sacct_time(opts["endtime"] or "", now_dt, "--endtime").timestamp()
    elif states and opts.get("starttime"):
        end = start
    else:
        end = now
    if end == start or end == now:
        end += 1  # the window is [S, E); include S itself, and the current second
    if end < start:
        # slurmdb_job_cond_def_start_end, then sacct's check (src/sacct/options.c).
        raise UsageError(
            f"Start time ({slurm_time(_iso(start))}) requested is after end time "
            f"({slurm_time(_iso(end))})."
        )

    users: list[str] | None = None
    if "user" in multi:
        users = [u for v in multi["user"] for u in split_list(v)]
        if users == ["-1"]:
            users = None
    elif not ("allusers" in opts or specs or "nodelist" in opts or os.getuid() == 0):
        users = [current_user()]
    names = [n for v in multi.get("name", []) for n in split_list(v)] or None
    partitions = [p for v in multi.get("partition", []) for p in split_list(v)] or None
    accounts = [a for v in multi.get("accounts", []) for a in split_list(v)] or None
    qos = [q.lower() for v in multi.get("qos", []) for q in split_list(v)] or None
    nodes = None
    if opts.get("nodelist"):
        from conductor.domain.hostlist import expand_hostlist

        nodes = set(expand_hostlist(opts["nodelist"] or "", field="-N/--nodelist"))

    client = Client()
    try:

        jobs = fetch_jobs(
            client,
            specs,
            users=users,
            names=names,
            partitions=partitions,
            since=_iso(start) if start > 0 else None,
            until=_iso(end),
            archived="archived" in opts,
        )
    finally:
        client.close()
    for job in jobs:
        # Cancelled or timed out from the request on, as slurmctld records the job then; its
        # batch step runs until the processes are gone (expand_rows).
        running_for = job.get("elapsed")
        if stop_at_end_request(job, str(job.get("ending_state"))):
            job["_step_running_for"] = running_for

    def keep(job: dict[str, Any]) -> bool:
        if not in_window(job, start, end, states):
            return False
        if accounts and job.get("account") not in accounts:
            return False
        # What sacct shows: a job without a QOS of its own runs under "normal", and Slurm
        # matches QOS names case-insensitively (str_2_slurmdb_qos).
        if qos and str(job.get("qos") or "normal").lower() not in qos:
            return False
        if nodes is not None:
            from conductor.domain.hostlist import expand_hostlist

            if not nodes.intersection(expand_hostlist(job.get("node_list") or "")):
                return False
        return True

    selected = [j for j in jobs if keep(j)]
    if "array" not in opts:
        selected = collapse_pending_arrays(selected)
    selected.sort(
        key=lambda j: (
            int(j.get("array_job_id") or j["job_id"]),
            int(j.get("array_task_id") or 0),
            int(j["job_id"]),
        )
    )
    if "json" in opts:
        from conductor.cli.slurm_json import sacct_document, write

        named = specs if specs and any(spec.step is not None for spec in specs) else None
        # `-j 12.0`: the job's record holds that step alone, as the text view shows it alone.
        write(sacct_document(selected, argv, (lambda job, step: _names_step(job, step, named)) if named else None))
        return 0
    rows = expand_rows(selected, with_steps="allocations" not in opts, units=units)
    if specs and any(spec.step is not None for spec in specs):
        # `-j 12.batch`, `-j 12.0`: that step of the job alone (nothing for a step it had not).
        rows = [row for row in rows if _named(row, specs)]
    parsable = (
        "no_ending"
        if "parsable2" in opts
        else ("ending" if "parsable" in opts else None)
    )
    sys.stdout.write(
        render(
            columns,
            rows,
            header="noheader" not in opts,
            parsable=parsable,
            delimiter=opts.get("delimiter") or "|",
        )
    )
    return 0
