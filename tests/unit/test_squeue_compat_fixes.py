"""squeue's output and filters where they once differed from Slurm 22.05's squeue (src/squeue/
opts.c, print.c, sort.c): -O widths after ':', the fields printed whole, %p, %e, %all, the state
sorts, unknown users, -q and -w."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

import conductor.cli.squeue as squeue
from conductor.cli.squeue_format import (
    DEFAULT_FORMAT,
    FIELDS,
    LONG_FORMAT,
    default_sort,
    generic_line_maker,
    line_maker,
    parse_format,
    parse_long_format,
    render,
    sort_jobs,
)

NOW = float(int(time.time()))  # whole seconds: run times come out exact


def _iso(stamp: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(stamp, tz=UTC).isoformat()


def job(job_id: int, **fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "job_id": job_id, "array_job_id": None, "array_task_id": None, "array_max_running": None,
        "name": "wrap", "user": "nobody", "account": None, "qos": None, "partition": "debug", "state": "RUNNING",
        "reason": "None", "priority": 0, "nice": 0, "scheduling_priority": 10000, "node_list": "cn01",
        "submit_time": _iso(NOW - 7200), "start_time": _iso(NOW - 3600), "end_time": None, "elapsed": 0,
        "time_limit": 7200, "cpus_per_task": 1, "ntasks": 1,
    }
    record.update(fields)
    return record


def line(fmt: str, record: dict[str, Any], *, header: bool = False) -> str:
    return render(parse_format(fmt), [record], header=header, now=NOW).removesuffix("\n")


# ---- 1. -O: a width after ':' is what strtol reads there ---------------------------------------


def test_a_long_field_with_a_suffix_and_no_size_is_unpadded() -> None:
    """opts.c _parse_long_token: `State:|` has width strtol("|") = 0, suffix "|"; the default
    20 is for a name without ':' alone."""
    items = parse_long_format("JobID:|,State:|")
    assert render(items, [job(1)], header=True, now=NOW) == "JOBID|STATE|\n1|RUNNING|\n"
    assert render(parse_long_format("JobID:,State"), [job(1)], header=False, now=NOW) == f"1{'RUNNING':<20}\n"
    assert render(parse_long_format("JobID:.|,Name:.6"), [job(1)], header=False, now=NOW) == "1|  wrap\n"


# ---- 2. right-aligned times and node lists are printed whole -----------------------------------


def test_right_aligned_times_are_not_cut() -> None:
    """print.c: _print_secs(..., cut_output=false) for %l, %L and %M; their UNLIMITED is cut."""
    ten_days = job(1, time_limit=10 * 86400)
    assert line("%.5l|", ten_days) == "10-00:00:00|"
    assert line("%.3L|", ten_days) == "9-23:00:00|"
    assert line("%.2M|", ten_days) == "1:00:00|"
    assert line("%.12l|", ten_days) == " 10-00:00:00|"
    # Left-aligned, the precision of "%.Ws" cuts whatever is printed.
    assert line("%5l|%2M|", ten_days) == "10-00|1:|"
    unlimited = job(1, time_limit=None)
    assert line("%.3l|%.4L|", unlimited) == "UNL|UNLI|"
    # The times' headers are cut as any header is.
    assert line("%.3l|%.3L|%.3M|", ten_days, header=True).splitlines()[0] == "TIM|TIM|TIM|"
    # squeue -l's TIME_LIMIT (%.9l) of a ten-day job.
    assert render(parse_format(LONG_FORMAT), [ten_days], header=False, now=NOW).split()[6] == "10-00:00:00"
    # -O takes the same print functions.
    assert render(parse_long_format("TimeLimit:.5,TimeUsed:.2"), [ten_days], header=False, now=NOW) == (
        "10-00:00:001:00:00\n"
    )


def test_right_aligned_node_lists_are_not_cut() -> None:
    """print.c: _print_nodes(..., false) for %N and %R's nodes, _print_str(..., false) for %Y and
    those headers; %R's "(reason)" is cut."""
    running = job(1, node_list="node[001-099],other[1-3]")
    assert line("%.4N|%.4R|", running) == "node[001-099],other[1-3]|node[001-099],other[1-3]|"
    assert line("%.4N|%.4R|%.2Y|", running, header=True).splitlines()[0] == "NODELIST|NODELIST(REASON)|SCHEDNODES|"
    pending = job(2, state="PENDING", node_list=None, reason="Priority", sched_nodes="cn[01-09]")
    assert line("%.4R|%.2Y|", pending) == "(Pri|cn[01-09]|"
    assert line("%4N|%4R|", running) == "node|node|"
    assert render(parse_long_format("NodeList:.3,ResizeTime:.2"), [running], header=False, now=NOW) == (
        "node[001-099],other[1-3]N/A\n"
    )


def test_the_default_format_prints_a_long_run_time_whole() -> None:
    """squeue's default `%.10M`: a job running 100 days shows 100-00:00:00, not 100-00:00:0."""
    long_run = job(1, start_time=_iso(NOW - 100 * 86400))
    items = parse_format(DEFAULT_FORMAT)
    own = line_maker(items, NOW)
    assert own.__qualname__.startswith("_default_line_maker")
    assert own(long_run) == generic_line_maker(items, NOW)(long_run)
    assert own(long_run).split()[5] == "100-00:00:00"


# ---- 3. %p: "%16.14f" -------------------------------------------------------------------------


def test_priority_as_a_fraction_has_fourteen_decimals() -> None:
    """print.c _print_job_priority: sprintf("%16.14f", priority / 0xffffffff)."""
    assert line("%p", job(1)) == "0.00000232830644"
    assert render(parse_long_format("Priority"), [job(1)], header=False, now=NOW) == "0.00000232830644    \n"
    assert line("%.10p", job(1, scheduling_priority=4294967295)) == "1.00000000"


# ---- 4. %e of a live job without a time limit ---------------------------------------------------


def test_end_time_of_a_live_job_without_a_time_limit_is_none() -> None:
    """print.c _print_job_time_end: an INFINITE limit with an end still ahead prints NONE."""
    assert line("%e", job(1, time_limit=None)) == "NONE"
    assert line("%e", job(1, time_limit=None, state="SUSPENDED")) == "NONE"
    # No end at all (a pending job's) is N/A; a limit gives the end it sets.
    assert line("%e", job(1, time_limit=None, state="PENDING", start_time=None)) == "N/A"
    assert line("%e", job(1)) != "NONE"
    assert render(parse_long_format("EndTime:.6"), [job(1, time_limit=None)], header=False, now=NOW) == "  NONE\n"


# ---- 5. -o %all ---------------------------------------------------------------------------------


def test_all_is_every_field_separated_by_bars() -> None:
    """opts.c parse_format: %all (any case) is %a|%b|...|%z|%A|...|%Z, each field unpadded."""
    codes = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    out = render(parse_format("%all"), [job(1)], header=True, now=NOW).splitlines()
    assert out[0] == "|".join(FIELDS[code][0] for code in codes)
    assert out[1] == "|".join(FIELDS[code][1](job(1), NOW) for code in codes)
    assert render(parse_format("%ALL"), [job(1)], header=True, now=NOW).splitlines() == out


# ---- 6. -S t / -S T and the default order compare the state strings -----------------------------


def test_state_sorts_compare_the_state_strings_shown() -> None:
    """sort.c _sort_job_by_state_compact / _sort_job_by_state: xstrcmp of the %t / %T strings."""
    jobs = [job(n, state=state) for n, state in enumerate(("RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING"))]
    # %t: CF < CG < R < RQ; %T: COMPLETING < CONFIGURING < REQUEUED < RUNNING.
    assert [j["state"] for j in sort_jobs(jobs, "t")] == ["CONFIGURING", "COMPLETING", "RUNNING", "REQUEUED"]
    assert [j["state"] for j in sort_jobs(jobs, "T")] == ["COMPLETING", "CONFIGURING", "REQUEUED", "RUNNING"]
    assert [j["state"] for j in sort_jobs(jobs, "-t")] == ["REQUEUED", "RUNNING", "COMPLETING", "CONFIGURING"]


def test_the_default_order_puts_completing_before_pending() -> None:
    """The default "P,t,-p" sorts by %t's string: CG, then PD, then R, then S."""
    jobs = [
        job(1, state="SUSPENDED"), job(2, state="RUNNING"), job(3, state="PENDING"),
        job(4, state="COMPLETING"), job(5, state="PENDING", scheduling_priority=99999),
    ]
    assert [j["job_id"] for j in default_sort(jobs)] == [4, 5, 3, 2, 1]


# ---- 7, 8, 9: the command's filters --------------------------------------------------------------


class FakeClient:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def get(self, path: str, **query: object) -> dict[str, Any]:
        assert path == "/nodes"
        return {"nodes": [{"name": name} for name in ("cn01", "cn02", "cn03", socket.gethostname().split(".")[0])]}

    def close(self) -> None:
        pass


JOBS = [
    job(1, node_list="cn[01-02]"),
    job(2, node_list="cn03", qos="high"),
    job(3, state="PENDING", node_list=None, reason="Priority", start_time=None),
    job(4, user="root", node_list="cn01", qos="Normal"),
]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    asked: dict[str, Any] = {}

    def fetch_jobs(client: object, specs: object, **query: Any) -> list[dict[str, Any]]:
        asked.update(query, called=True)
        users = query.get("users")
        return [dict(j) for j in JOBS if not users or j["user"] in users]

    monkeypatch.setenv("CONDUCTOR_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("SQUEUE_USERS", raising=False)
    monkeypatch.setattr(squeue, "fetch_jobs", fetch_jobs)
    monkeypatch.setattr(squeue, "Client", FakeClient)

    def run(*argv: str) -> tuple[int, list[str], str, dict[str, Any]]:
        asked.clear()
        rc = squeue.main(["-h", "-o", "%i", "-S", "i", *argv])
        captured = capsys.readouterr()
        return rc, captured.out.split(), captured.err, dict(asked)

    return run


def test_a_user_this_host_does_not_know_goes_to_the_server_as_written(run: Any) -> None:
    """The commands may run on a host that does not share the server's users: a name that could
    be a user's is asked of the server (which has no job of it here), not reported."""
    rc, ids, err, _ = run("-u", "cdt-no-such-user")
    assert (rc, ids, err) == (0, [], "")
    rc, ids, err, _ = run("-u", "cdt-no-such-user,root")
    assert (rc, ids, err) == (0, ["4"], "")
    # A numeric uid names its user.
    rc, ids, err, _ = run("-u", "0")
    assert (rc, ids, err) == (0, ["4"], "")


def test_what_can_be_no_user_is_reported_and_selects_no_job(run: Any) -> None:
    """opts.c _build_user_list: error("Invalid user: %s\\n") (a blank line follows), the user left
    out of the list, the listing going on: exit 0, and no job when no user is left."""
    for name in ("4294967294", "a b", "-x"):
        rc, ids, err, _ = run("-u", name)
        assert (rc, ids, err) == (0, [], f"squeue: error: Invalid user: {name}\n\n"), name
    rc, ids, err, _ = run("-u", "a b,root")
    assert (rc, ids, err) == (0, ["4"], "squeue: error: Invalid user: a b\n\n")
    rc, ids, err, _ = run("-j", "1", "-u", "a b")
    assert (rc, ids) == (0, []) and "Invalid user: a b" in err


def test_qos_filter_matches_the_qos_shown(run: Any) -> None:
    """A job without a QOS shows "normal", and -q normal selects it; squeue compares without
    regard to case (print.c _filter_job: xstrcasecmp)."""
    assert run("-q", "normal")[1] == ["1", "3", "4"]
    assert run("-q", "NORMAL")[1] == ["1", "3", "4"]
    assert run("-q", "high")[1] == ["2"]
    assert run("-q", "nosuchqos")[1] == []


def test_nodelist_selects_the_jobs_on_those_nodes(run: Any) -> None:
    """print.c _filter_job: a job shows when its nodes intersect the -w host set; a job without
    nodes (pending) never does. The record's node list is asked for even when not shown."""
    rc, ids, _, asked = run("-w", "cn02")
    assert (rc, ids) == (0, ["1"]) and "node_list" in asked["fields"]
    assert run("-w", "cn[02-03]")[1] == ["1", "2"]
    assert run("--nodelist=cn01", "-t", "R")[1] == ["1", "4"]
    assert run("-w", "cn01", "-t", "PD")[1] == []
    assert run("-w", "localhost")[1] == []  # this host is a node the cluster has, running nothing
    assert run("-w", "")[1] == []  # an empty host set intersects nothing


def test_nodelist_refuses_unknown_nodes_and_bad_host_lists(run: Any) -> None:
    """opts.c: hostset_create failing is "'%s' invalid entry for --nodelist", _map_node_name not
    finding a node "Invalid node name %s"; both exit 1."""
    rc, ids, err, _ = run("-w", "nosuchnode", "-t", "R")
    assert (rc, ids, err) == (1, [], "squeue: error: Invalid node name nosuchnode\n")
    rc, ids, err, _ = run("-w", "cn[01-", "-t", "R")
    assert (rc, ids, err) == (1, [], "squeue: error: 'cn[01-' invalid entry for --nodelist\n")


def test_me_and_user_replace_each_other_the_last_winning(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """opts.c: --me and -u each free what the other set; ours added --me to the -u list."""
    monkeypatch.setattr(squeue, "current_user", lambda: "root")
    assert run("-u", "nobody", "--me")[1] == ["4"]
    assert run("--me", "-u", "nobody")[1] == ["1", "2", "3"]
    assert run("-u", "nobody", "--me", "-u", "root")[1] == ["4"]  # each -u replaces the one before
    assert run("--nodes", "cn03", "-t", "all")[1] == ["2"]  # -w's other long names
