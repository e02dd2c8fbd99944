"""`conductor scancel`: cancel or signal jobs, array tasks or whole arrays, like scancel."""

from __future__ import annotations

import sys

from conductor.cli.client import ApiError, Client
from conductor.cli.common import (
    CODE_STATES,
    SLURM_VERSION,
    UsageError,
    current_user,
    job_display_id,
    run,
    split_list,
)
from conductor.cli.getopt import Option, OptionTable, getopt_long
from conductor.cli.jobsel import JobSpec, fetch_jobs, parse_job_specs
from conductor.domain.errors import SpecError
from conductor.domain.hostlist import expand_hostlist

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG = "scancel"
LIVE = ("PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING")

OPTIONS = OptionTable(
    [
        Option("account", ("account",), "A", "required"),
        Option("batch", ("batch",), "b"),
        Option("full", ("full",), "f"),
        Option("hurry", ("hurry",), "H"),
        Option("interactive", ("interactive",), "i"),
        Option("clusters", ("clusters", "cluster"), "M", "required"),
        Option("me", ("me",), None),
        Option("name", ("name", "jobname"), "n", "required"),
        Option("partition", ("partition",), "p", "required"),
        Option("qos", ("qos",), "q", "required"),
        Option("quiet", ("quiet",), "Q"),
        Option("reservation", ("reservation",), "R", "required"),
        Option("signal", ("signal",), "s", "required"),
        Option("state", ("state", "states"), "t", "required"),
        Option("user", ("user",), "u", "required"),
        Option("verbose", ("verbose",), "v"),
        Option("version", ("version",), "V"),
        Option("nodelist", ("nodelist",), "w", "required"),
        Option("wckey", ("wckey",), None, "required"),
        Option("help", ("help",), "h"),
        Option("usage", ("usage",), None),
    ]
)

USAGE = (
    "Usage: scancel [-A account] [--batch] [--full] [--interactive] [-n job_name]\n"
    "               [-p partition] [-Q] [-q qos] [-R reservation] [-s signal | integer]\n"
    "               [-t PENDING | RUNNING | SUSPENDED] [--usage] [-u user_name]\n"
    "               [--hurry] [-V] [-v] [-w hosts...] [--wckey=wckey] [--me] [job_id[_array_id][.step_id]]\n"
)


DESCRIBED: dict[str, tuple[str, str]] = {
    "account": ("account", "act only on jobs charging this account"),
    "batch": ("", "signal batch shell only"),
    "clusters": ("cluster_name", "cluster to issue commands to (one cluster here)"),
    "full": ("", "signal batch shell and all steps for specified job"),
    "help": ("", "show this help message"),
    "hurry": ("", "avoid burst buffer stage out"),
    "interactive": ("", "require response from user for each job"),
    "me": ("", "act only on jobs of the current user"),
    "name": ("job_name", "act only on jobs with this name"),
    "nodelist": ("hosts...", "act only on jobs on these nodes"),
    "partition": ("partition", "act only on jobs in this partition"),
    "qos": ("qos", "act only on jobs with this quality of service"),
    "quiet": ("", "disable warnings"),
    "reservation": ("reservation", "act only on jobs with this reservation"),
    "signal": ("name | integer", "signal to send to job, default is SIGKILL"),
    "state": ("states", "act only on jobs in this state: PENDING, RUNNING or SUSPENDED"),
    "usage": ("", "display brief usage message"),
    "user": ("user_name", "act only on jobs of this user"),
    "verbose": ("", "verbosity level"),
    "version": ("", "output version information and exit"),
    "wckey": ("wckey", "act only on jobs with this workload charactization key"),
}


def help_text() -> str:
    from conductor.cli.helptext import page

    return page(USAGE, OPTIONS, DESCRIBED)


def _normalize_signal(text: str | None) -> str:
    value = (text or "").strip().upper()
    value = value.removeprefix("SIG")
    if not value or not (value.isdigit() or value.isalnum()):
        raise UsageError(f"Invalid job signal: {text}")
    return value


def main(argv: list[str]) -> int:
    return run(PROG, lambda: _main(argv))


def _main(argv: list[str]) -> int:  # noqa: C901 - one branch per scancel option
    parsed, operands = getopt_long(argv, OPTIONS)
    opts: dict[str, str | None] = {}
    for key, value in parsed:
        opts[key] = value
    if "help" in opts:
        sys.stdout.write(help_text())
        return 0
    if "usage" in opts:
        sys.stdout.write(USAGE)
        return 0
    if "version" in opts:
        sys.stdout.write(SLURM_VERSION)
        return 0
    quiet = "quiet" in opts
    verbose = "verbose" in opts

    specs = parse_job_specs(operands) if operands else None
    users = split_list(opts["user"]) if opts.get("user") else None
    if "me" in opts:
        users = (users or []) + [current_user()]
    names = split_list(opts["name"]) if opts.get("name") else None
    partitions = split_list(opts["partition"]) if opts.get("partition") else None
    states: list[str] | None = None
    if opts.get("state"):
        states = []
        for item in split_list(opts["state"] or ""):
            upper = item.upper()
            upper = CODE_STATES.get(upper, upper)
            if upper not in ("PENDING", "RUNNING", "SUSPENDED"):
                raise UsageError(f"Invalid job state specified: {item}")
            states.append(upper)
    accounts = split_list(opts["account"]) if opts.get("account") else None
    qos = split_list(opts["qos"]) if opts.get("qos") else None
    hosts = _hosts(opts["nodelist"]) if "nodelist" in opts else None
    # Jobs here have neither a reservation nor a wckey: a job matches such a filter only by
    # having the one named, as in scancel's _filter_job_records, so these select no job.
    no_job_has = [name for name in ("reservation", "wckey") if name in opts]
    signal = (
        _normalize_signal(opts["signal"]) if opts.get("signal") is not None else None
    )
    batch_only = "batch" in opts
    # Whom a signal is for (scancel(1)): -f every process, -b the batch shell alone, else the
    # job's steps alone ("signals other than SIGKILL are not sent to the batch step").
    scope = "full" if "full" in opts else "batch" if batch_only else "steps"
    interactive = "interactive" in opts

    filtered = any((users, names, partitions, states, accounts, qos, hosts is not None, no_job_has))
    if specs is None and not filtered:
        raise UsageError("No job identification provided")
    # No option but ids (scancel's has_default_opt): each id is one kill request, and an id
    # that ended or that nobody knows is not an error (said with -v only), as scancel's
    # _cancel_job_id ignores ESLURM_ALREADY_DONE and ESLURM_INVALID_JOB_ID for SIGKILL.
    # With any option the named ids are checked against the live jobs first, and one that is
    # no live job is "Invalid job id specified", exit 1 (_verify_job_ids); then the filters
    # choose among them, leaving out what they do not select without a word
    # (_filter_job_records).
    plain = specs is not None and signal is None and not batch_only and not interactive and not filtered

    client = Client()
    try:
        rc = 0
        if plain:
            assert specs is not None
            specs, rc = _cancel_whole_arrays(client, specs, quiet, verbose)
            if not specs:
                return rc
        if specs is not None:  # every job the ids name, whatever the filters say
            jobs = fetch_jobs(client, specs)
        else:
            # Only live jobs can be cancelled: the server is asked for none of the history.
            jobs = fetch_jobs(client, None, states=list(LIVE), users=users, names=names, partitions=partitions)
        live = [j for j in jobs if j.get("state") in LIVE]
        if specs is not None:
            for spec in specs:
                if any(spec.matches(j) for j in live):
                    continue
                ended = any(spec.matches(j) for j in jobs)
                if plain:
                    if verbose:
                        why = "Job/step already completing or completed" if ended else "Invalid job id specified"
                        sys.stderr.write(f"{PROG}: error: Kill job error on job id {spec.text}: {why}\n")
                    continue
                if not quiet:
                    sys.stderr.write(f"{PROG}: error: Kill job error on job id {spec.text}: Invalid job id specified\n")
                rc = 1
        targets = [j for j in live if _selected(j, users, names, partitions, states, accounts, qos, hosts)]
        if no_job_has:
            targets = []
        # Pending jobs first, as scancel's _cancel_jobs: cancelling a running job first could
        # let a pending one that is about to be cancelled start on its CPUs.
        targets.sort(key=lambda j: (j.get("state") != "PENDING", int(j["job_id"])))
        if interactive:
            return rc | _cancel_confirmed(client, targets, signal, quiet, verbose, scope)
        # A whole array named by its id, with no filter narrowing it, is one request for
        # `<id>_*`: the server acts on all its live tasks (not 10,000 round trips for 10,000).
        whole_arrays = {s.base for s in specs if s.tasks is None} if specs is not None and not filtered else set()
        sent_arrays: set[int] = set()
        for job in targets:
            array_id = job.get("array_job_id")
            if array_id is not None and int(array_id) in whole_arrays:
                if int(array_id) not in sent_arrays:
                    sent_arrays.add(int(array_id))
                    # `123_*`: every task of array 123 (a plain 123 is its first task).
                    whole = {"job_id": int(array_id), "_path_id": f"{array_id}_*"}
                    rc |= _act(client, whole, signal, quiet, verbose, scope)
                continue
            rc |= _act(client, job, signal, quiet, verbose, scope)
        return rc
    finally:
        client.close()


def _selected(
    job: dict[str, Any],
    users: list[str] | None,
    names: list[str] | None,
    partitions: list[str] | None,
    states: list[str] | None,
    accounts: list[str] | None,
    qos: list[str] | None,
    hosts: set[str] | None,
) -> bool:
    """Whether the filters select a live job (each one given must)."""
    return (
        (users is None or job.get("user") in users)
        and (names is None or job.get("name") in names)
        and (partitions is None or job.get("partition") in partitions)
        and (states is None or job.get("state") in states)
        and (accounts is None or job.get("account") in accounts)
        and (qos is None or job.get("qos") in qos)
        # Running on one of them: a pending job has no node yet.
        and (hosts is None or bool(hosts.intersection(_job_hosts(job))))
    )


def _cancel_confirmed(
    client: Client, targets: list[dict[str, Any]], signal: str | None, quiet: bool, verbose: bool, scope: str
) -> int:
    """-i: one question per job, the pending tasks of an array being one job as scancel shows
    them (`12_[1-5]`), as its _confirmation asks; what is confirmed is acted on."""
    groups: list[list[dict[str, Any]]] = []
    pending_arrays: dict[int, list[dict[str, Any]]] = {}
    for job in targets:
        array_id = job.get("array_job_id")
        if array_id is not None and job.get("state") == "PENDING":
            if int(array_id) not in pending_arrays:
                pending_arrays[int(array_id)] = []
                groups.append(pending_arrays[int(array_id)])
            pending_arrays[int(array_id)].append(job)
        else:
            groups.append([job])
    rc = 0
    for group in groups:
        answer = _confirm(group)
        if answer is None:  # end of input: nothing more is confirmed
            break
        if answer:
            for job in group:
                rc |= _act(client, job, signal, quiet, verbose, scope)
    return rc


def _hosts(text: str | None) -> set[str]:
    try:
        return set(expand_hostlist(text or "", field="--nodelist"))
    except SpecError as exc:
        raise UsageError(f"Invalid node list: {exc.message}") from None


def _job_hosts(job: dict[str, Any]) -> list[str]:
    try:
        return expand_hostlist(str(job.get("node_list") or ""))
    except SpecError:
        return []


def _confirm(group: list[dict[str, Any]]) -> bool | None:
    """Ask about one job (or the pending tasks of one array), as scancel's _confirmation; None
    at the end of the input (scancel asks again forever there; we cancel nothing more)."""
    job = group[0]
    shown = job_display_id(job)
    if len(group) > 1:
        shown = f"{job['array_job_id']}_[{_task_ranges(sorted(int(j['array_task_id']) for j in group))}]"
    name = job.get("name") or "(null)"
    partition = job.get("partition") or "(null)"
    while True:
        sys.stdout.write(f"Cancel job_id={shown} name={name} partition={partition} [y/n]? ")
        sys.stdout.flush()
        line = sys.stdin.readline()
        if not line:
            sys.stdout.write("\n")
            return None
        if line[:1] in ("y", "Y"):
            return True
        if line[:1] in ("n", "N"):
            return False


def _task_ranges(tasks: list[int]) -> str:
    """1,2,3,5 -> 1-3,5."""
    parts: list[str] = []
    start = previous = tasks[0]
    for task in [*tasks[1:], None]:
        if task is not None and task == previous + 1:
            previous = task
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if task is not None:
            start = previous = task
    return ",".join(parts)


def _cancel_whole_arrays(
    client: Client, specs: list[JobSpec], quiet: bool, verbose: bool
) -> tuple[list[JobSpec], int]:
    """Cancel each array named by its id alone with one request for `<id>_*`, without reading
    its tasks first (50,000 of them took seconds to list); what is not an array is returned,
    for the ordinary path. And the exit status so far."""
    rest: list[JobSpec] = []
    rc = 0
    for spec in specs:
        if spec.tasks is not None:
            rest.append(spec)
            continue
        try:
            answer = client.post(f"/jobs/cancel/{spec.base}_*")
        except ApiError as exc:
            if exc.status == 404:
                rest.append(spec)  # no array of that id: a single job, or none
            else:
                if not quiet:
                    sys.stderr.write(f"{PROG}: error: Kill job error on job id {spec.text}: {exc.message}\n")
                rc = 1
            continue
        if isinstance(answer, dict) and answer.get("state") is None:
            if verbose:  # every task had ended: not an error (see _main)
                sys.stderr.write(
                    f"{PROG}: error: Kill job error on job id {spec.text}: Job/step already completing or completed\n"
                )
        elif verbose:
            sys.stderr.write(f"{PROG}: Terminating job {spec.text}\n")
    return rest, rc


def _act(
    client: Client,
    job: dict[str, Any],
    signal: str | None,
    quiet: bool,
    verbose: bool,
    scope: str = "steps",
) -> int:
    shown = job_display_id(job)
    job_id = job.get("_path_id") or int(job["job_id"])
    try:
        if signal is None:
            client.post(f"/jobs/cancel/{job_id}")
            if verbose:
                sys.stderr.write(f"{PROG}: Terminating job {shown}\n")
        else:
            # The server's worker sends it to the batch shell, to the steps (each srun passes it
            # to its tasks), or to every process, by `scope`.
            body: dict[str, Any] = {"signal": signal, "batch_only": scope == "batch"}
            if scope == "steps":  # only when asked: a server before steps_only refuses the field
                body["steps_only"] = True
            client.post(f"/jobs/{job_id}/signal", body)
            if verbose:
                sys.stderr.write(f"{PROG}: Signal {signal} to job {shown}\n")
    except ApiError as exc:
        if not quiet:
            what = "Kill job error" if signal is None else "Signal job error"
            sys.stderr.write(
                f"{PROG}: error: {what} on job id {shown}: {exc.message}\n"
            )
        return 1
    return 0
