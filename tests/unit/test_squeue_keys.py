"""squeue asks the server for the record keys its fields read (`GET /jobs?fields=`), not for
whole records. Each field's declared keys must be all it reads: rendered from a whole record
and from the record cut to those keys, every field, sort key and the array collapsing give
the same. The records hold a distinct, non-default value in every key, so a key read but not
declared changes the output."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conductor.api.models import JobRecord
from conductor.cli.common import STATE_CODES
from conductor.cli.squeue_format import (
    _SORT_KEYS,
    BASE_KEYS,
    DEFAULT_FORMAT,
    EXTRA_LONG_FIELDS,
    FIELDS,
    KEYS,
    LINE,
    LONG_FIELDS,
    LONG_FORMAT,
    LONG_KEYS,
    SORT_KEY,
    SORT_KEYS,
    collapse_pending_arrays,
    default_key,
    default_sort,
    generic_line_maker,
    line_maker,
    parse_format,
    parse_long_format,
    record_keys,
    render,
)
from tests.startup import heavy_imports

NOW = time.time()


def _record(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "job_id": 57, "array_job_id": 50, "array_task_id": 7, "array_max_running": 3, "array_spec": "1-9%3",
        "name": "a-name", "user": "root", "account": "physics", "partition": "debug", "state": "RUNNING",
        "reason": "Resources", "priority": 77, "nice": 5, "cpus_per_task": 3, "ntasks": 2, "ntasks_per_node": 2,
        "memory_per_node_mb": 2048, "memory_per_cpu_mb": 700, "allocated_cpus": 6, "cpu_ids": "0-5",
        "node_list": "node7", "submit_time": "2026-01-02T03:04:05+00:00", "eligible_time": "2026-01-02T03:05:05+00:00",
        "start_time": "2026-01-02T04:00:00+00:00", "end_time": "2026-01-02T05:30:00+00:00", "elapsed": 4321,
        "time_limit": 9000, "exit_code": "3:0", "error_msg": "the node died", "work_dir": "/w/d",
        "standard_output": "/w/o.out", "standard_error": "/w/e.err", "standard_input": "/w/i.in",
        "dependency": "afterok:12", "hold": True, "begin_time": "2026-01-02T03:06:00+00:00", "requeue": True,
        "restart_count": 2, "comment": "a comment", "qos": "high", "exclusive": True, "cancel_requested": True,
        "scheduling_priority": 4242, "expected_start_time": "2026-01-03T00:00:00+00:00", "sched_nodes": "node9",
        "command": "/w/run.sh", "cancelled_by": "someone", "required_nodes": "node7",
        "excluded_nodes": "node[1-2]", "ending_state": "CANCELLED",
        "ending_time": "2026-01-02T05:00:00+00:00", "usage": None,
    }
    assert set(base) == set(JobRecord.model_fields)  # every key of the API's record, and no other
    return {**base, **changes}


RECORDS = [
    _record(),
    _record(state="PENDING", start_time=None, end_time=None, elapsed=0, node_list=None),
    _record(state="PENDING", _task_str="7-9%3", job_id=50),
    _record(state="FAILED", reason="NonZeroExitCode"),
    _record(state="COMPLETED", array_job_id=None, array_task_id=None, array_max_running=None, error_msg=None),
    _record(state="TIMEOUT", time_limit=None, hold=False, scheduling_priority=None),
]


def _cut(record: dict[str, Any], keys: tuple[str, ...] | list[str]) -> dict[str, Any]:
    # `_task_str` is made by the client (array collapsing), not a key the server sends.
    return {k: v for k, v in record.items() if k in keys or k == "_task_str"}


def test_every_field_declares_what_it_reads() -> None:
    assert set(KEYS) == set(FIELDS)
    assert set(LONG_KEYS) <= set(EXTRA_LONG_FIELDS)
    assert set(SORT_KEYS) == set(_SORT_KEYS)
    assert set(LONG_FIELDS.values()) <= set(KEYS)


@pytest.mark.parametrize("code", sorted(FIELDS))
def test_a_code_reads_only_its_keys(code: str) -> None:
    getter = FIELDS[code][1]
    for record in RECORDS:
        assert getter(_cut(record, KEYS[code]), NOW) == getter(record, NOW), record


@pytest.mark.parametrize("name", sorted(EXTRA_LONG_FIELDS))
def test_a_long_name_reads_only_its_keys(name: str) -> None:
    getter = EXTRA_LONG_FIELDS[name][1]
    for record in RECORDS:
        assert getter(_cut(record, LONG_KEYS.get(name, ())), NOW) == getter(record, NOW), record


@pytest.mark.parametrize("code", sorted(_SORT_KEYS))
def test_a_sort_key_reads_only_its_keys(code: str) -> None:
    for record in RECORDS:
        assert _SORT_KEYS[code](_cut(record, SORT_KEYS[code])) == _SORT_KEYS[code](record)


def test_collapsing_and_the_default_order_read_only_the_base_keys() -> None:
    tasks = [
        _record(state="PENDING", job_id=50 + t, array_task_id=t, reason="Priority" if t > 1 else "Resources")
        for t in range(1, 6)
    ]
    mixed = [*tasks, *RECORDS[:2], RECORDS[3]]

    def shown(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(j["job_id"], j.get("_task_str")) for j in default_sort(collapse_pending_arrays(records))]

    assert shown([_cut(r, BASE_KEYS) for r in mixed]) == shown(mixed)
    # The order's priority is the server's scheduling_priority, which every record holds.
    assert not {"priority", "nice", "hold", "account", "qos", "end_time"} & set(BASE_KEYS)
    assert any(task for _, task in shown(mixed))  # the tasks did collapse


def test_a_view_asks_for_its_fields_keys_the_base_and_its_sort_keys() -> None:
    keys = record_keys(parse_format(DEFAULT_FORMAT), None)
    assert set(BASE_KEYS) <= set(keys)
    assert {"node_list", "elapsed", "start_time", "error_msg"} <= set(keys)
    assert "work_dir" not in keys and "standard_output" not in keys
    assert "work_dir" in record_keys(parse_format("%Z"), None)
    assert "standard_output" in record_keys(parse_long_format("stdout"), None)
    assert "submit_time" in record_keys(parse_format("%i"), "-V,i")


def test_every_format_renders_the_same_from_the_keys_it_asks_for() -> None:
    every = parse_format(" ".join(f"%{code}" for code in sorted(FIELDS)))
    long = parse_long_format(",".join(sorted(EXTRA_LONG_FIELDS)))
    for items in (every, long, parse_format(DEFAULT_FORMAT)):
        keys = record_keys(items, None)
        assert render(items, [_cut(r, keys) for r in RECORDS], header=True, now=NOW) == render(
            items, RECORDS, header=True, now=NOW
        )


def test_a_view_of_live_jobs_asks_for_what_it_shows_of_them() -> None:
    """Pending and running jobs alone: neither the fading of ended jobs (end_time) nor an ended
    job's explanation (error_msg) is read; account and qos only when filtered on."""
    live = [r for r in RECORDS if r["state"] in ("PENDING", "RUNNING")]
    assert len(live) == 3
    for items in (parse_format(DEFAULT_FORMAT), parse_format(LONG_FORMAT), parse_format("%i %r %a %q")):
        keys = record_keys(items, None, live_only=True)
        assert "error_msg" not in keys
        assert render(items, [_cut(r, keys) for r in live], header=True, now=NOW) == render(
            items, live, header=True, now=NOW
        )
    default = record_keys(parse_format(DEFAULT_FORMAT), None, live_only=True)
    assert not {"end_time", "error_msg", "account", "qos"} & set(default)
    assert {"account", "qos"} <= set(record_keys(parse_format(DEFAULT_FORMAT), None, filtered=["account", "qos"]))
    assert {"end_time", "error_msg"} <= set(record_keys(parse_format(DEFAULT_FORMAT), None))
    # A format that shows the end time still asks for it.
    assert "end_time" in record_keys(parse_format("%e"), None, live_only=True)


def test_lines_made_page_by_page_are_the_lines_render_makes() -> None:
    """squeue makes each page's lines as the page arrives (LINE); a collapsed array's line is
    its own, never its first task's."""
    items = parse_format(DEFAULT_FORMAT)
    tasks = [
        _record(state="PENDING", job_id=50 + t, array_task_id=t, reason="Priority" if t > 1 else "Resources")
        for t in range(1, 6)
    ]
    records = [*tasks, *RECORDS]
    expected = render(items, default_sort(collapse_pending_arrays([dict(r) for r in records])), header=True, now=NOW)
    make = line_maker(items, NOW)
    made = [dict(r) for r in records]
    for job in made:
        job[LINE] = make(job)
    assert render(items, default_sort(collapse_pending_arrays(made)), header=True, now=NOW) == expected
    assert "50_[1-5,7%3]" in expected  # the collapsed tasks: RECORDS hold a task 7 of array 50


# Records of every shape the default format's own maker takes a path for: every state, array
# tasks and collapsed arrays, missing and non-text values, a reason or an explanation, run
# times under a minute and over a day, and text that is not printable or wider than its column.
SHAPES = [
    *RECORDS,
    *(_record(state=state) for state in (*STATE_CODES, "SOMETHING_NEW")),
    *(_record(state=state, error_msg=None) for state in ("FAILED", "PENDING", "TIMEOUT", "DEADLINE")),
    _record(state=None), _record(state=7), _record(state=[]), _record(state={"a": 1}),
    _record(state="PENDING", reason=None, error_msg=None),
    _record(partition=None, name=None, user=None, node_list=None, array_job_id=None),
    _record(partition="", name="", user="", node_list="", state="COMPLETING"),
    _record(partition=3, name=4.5, user=True, node_list=0, job_id=None, array_job_id=None),
    _record(array_task_id=None), _record(array_job_id=None, array_task_id=0, job_id=9),
    _record(state="RUNNING", start_time=None, elapsed=None), _record(state="SUSPENDED", start_time="not a time"),
    _record(state="RUNNING", start_time="2020-01-01T00:00:00"), _record(state="COMPLETED", elapsed=3 * 86400 + 5),
    _record(state="PENDING", _task_str="1-100000:7%9", array_job_id=123456789012345678901),
    _record(name="a-name-much-longer-than-eight", user="someone-long", partition="a-long-partition"),
    _record(node_list="node[001-099],other[1-3]", job_id=10**20, array_job_id=None, array_task_id=None),
    _record(name="tab\there", user="r\x07t", partition="p\x9bq", state="PENDING", reason="Bad\nReason"),
    _record(state="FAILED", error_msg="cannot open output file '/w/\x1b[2Jx': Permission denied"),
    _record(name="héllo wörld", node_list="nœud1"),
]


def test_the_default_formats_own_maker_makes_the_generic_makers_lines() -> None:
    items = parse_format(DEFAULT_FORMAT)
    own = line_maker(items, NOW)
    assert own.__qualname__.startswith("_default_line_maker")  # else this compares generic with itself
    generic = generic_line_maker(items, NOW)
    for record in SHAPES:
        assert own(record) == generic(record), record
    # The same format written out by a user is the default one; any other takes the generic path.
    assert line_maker(parse_format("%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R"), NOW).__qualname__ == own.__qualname__
    assert line_maker(parse_format("%.18i %.9P %.8j %.8u %.2t %.10M %.6D %N"), NOW).__qualname__ != own.__qualname__


def test_a_key_worked_out_as_its_page_arrives_sorts_as_the_default_order() -> None:
    tasks = [_record(state="PENDING", job_id=50 + t, array_task_id=t, scheduling_priority=t) for t in range(1, 4)]
    records = [*tasks, *RECORDS, _record(partition="a", job_id=3, array_job_id=None, array_task_id=None)]
    expected = [job["job_id"] for job in default_sort(collapse_pending_arrays([dict(r) for r in records]))]
    keyed = [dict(r) for r in records]
    for job in keyed:
        job[SORT_KEY] = default_key(job)
    collapsed = collapse_pending_arrays(keyed)
    assert [job["job_id"] for job in default_sort(collapsed)] == expected
    # A collapsed array's key is worked out again, not taken from the task it was made from.
    assert [SORT_KEY in job for job in collapsed if job.get("_task_str")] == [False]
    # A key worked out earlier is taken as it is, whatever the record holds now.
    planted = [dict(job, **{SORT_KEY: ("", 0, 0, -n, 0)}) for n, job in enumerate(collapsed)]
    assert [job["job_id"] for job in default_sort(planted)] == [job["job_id"] for job in reversed(collapsed)]


def test_squeue_orders_jobs_by_what_they_were_when_their_page_arrived(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The default order's key is worked out with the line, as each page arrives: a job shows,
    and sits, as it was then (both made later would disagree with each other)."""
    import conductor.cli.squeue as squeue

    def fetch_jobs(client: object, specs: object, **query: Any) -> list[dict[str, Any]]:
        page = [_record(job_id=n, array_job_id=None, array_task_id=None, partition=f"p{n}") for n in (1, 2, 3)]
        query["each_page"](page)
        for job in page:
            job["partition"] = f"p{9 - job['job_id']}"  # the other way round, after the page's lines
        return page

    monkeypatch.setenv("CONDUCTOR_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(squeue, "fetch_jobs", fetch_jobs)
    assert squeue.main(["-h"]) == 0
    assert [line.split()[:2] for line in capsys.readouterr().out.splitlines()] == [["1", "p1"], ["2", "p2"], ["3", "p3"]]


def test_squeue_makes_each_pages_lines_as_the_page_arrives(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command hands fetch_jobs a per-page hook that makes the lines then (a line made
    later would show what changed since), and asks a live view for its keys alone."""
    import conductor.cli.squeue as squeue

    asked: dict[str, Any] = {}

    def fetch_jobs(client: object, specs: object, **query: Any) -> list[dict[str, Any]]:
        asked.update(query)
        pages = [[_record(job_id=n, array_job_id=None, array_task_id=None, name=f"job{n}") for n in (1, 2)],
                 [_record(job_id=3, array_job_id=None, array_task_id=None, name="job3")]]
        for page in pages:
            query["each_page"](page)
            for job in page:
                job["name"] = "changed"  # after its page's lines were made
        return [job for page in pages for job in page]

    monkeypatch.setenv("CONDUCTOR_URL", "http://127.0.0.1:9")
    monkeypatch.setattr(squeue, "fetch_jobs", fetch_jobs)
    assert squeue.main(["-h", "-o", "%i %j"]) == 0
    assert capsys.readouterr().out.split("\n") == ["1 job1", "2 job2", "3 job3", ""]
    assert not {"end_time", "error_msg", "account", "qos"} & set(asked["fields"])


def test_control_characters_are_shown_as_question_marks_and_widths_kept() -> None:
    items = parse_format("%.6j|%4u|%P")
    record = _record(name="a\x1b[2Jb", user="r\x07t", partition="p\x9bq")
    assert render(items, [record], header=False, now=NOW) == "a?[2Jb|r?t |p?q\n"
    assert render(items, [_record(name="héllo wörld")], header=False, now=NOW) == "héllo |root|debug\n"


def test_squeue_and_its_array_lines_import_nothing_heavy() -> None:
    """squeue collapses pending arrays with the array module's formatting: neither the command
    nor that module may import dataclasses (which with inspect, ast and dis behind it cost 9 ms
    of squeue's start) or typing (2.5 ms). Checked in a fresh interpreter."""
    code = (
        "import conductor.cli.squeue\n"
        "from conductor.cli.squeue_format import collapse_pending_arrays\n"
        "jobs = [{'job_id': 5 + t, 'array_job_id': 5, 'array_task_id': t, 'state': 'PENDING', 'reason': 'Priority'}\n"
        "        for t in range(3)]\n"
        "assert collapse_pending_arrays(jobs)[0]['_task_str'] == '0-2'\n"
    )
    assert heavy_imports(code, {"dataclasses", "inspect", "typing"}) == []
