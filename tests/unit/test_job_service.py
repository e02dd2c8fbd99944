"""The job services against small fakes of their ports: the rules every entry point shares.

No database and no processes: the store is a dictionary that follows the same contract as the
real one for the calls exercised here (tests/integration holds the real store to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from worker_fakes import job_record

from conductor.api.fastpath import SubmitFastPath
from conductor.api.models import JobDescription, SubmitRequest
from conductor.domain.errors import SpecError
from conductor.domain.job import Job, JobSummary
from conductor.errors import (
    AlreadyDone,
    Conflict,
    DependencyProblem,
    Forbidden,
    LimitExceeded,
    NotFound,
    UnknownUser,
    Unsatisfiable,
)
from conductor.scheduler.policy import NodeView
from conductor.services.jobs import JobChanges, JobService, Submitted, WouldSubmit
from conductor.services.principal import Principal
from conductor.services.submission import Limits
from conductor.services.tokens import hash_token
from conductor.store import CancelOutcome, ControlOutcome, KeyedSubmission, SubmissionKey, SubmitKeyTaken
from conductor.store.records import Token

USER = "nobody"  # a user every Debian host has
ALICE = Principal(user=USER, admin=False, token_id=1)
OTHER = Principal(user="someone-else", admin=False, token_id=2)
ADMIN = Principal(user="root", admin=True, token_id=3)
LIMITS = Limits(max_script_bytes=1 << 20, max_environment_bytes=1 << 16, max_array_tasks=1000, default_partition="debug")
NODE = NodeView("n1", (0, 1, 2, 3), [0, 1, 2, 3], 4096, 4096, frozenset({"debug"}))


class FakeStore:
    """The store's contract for the services, in memory."""

    def __init__(self) -> None:
        self.jobs: dict[int, dict[str, Any]] = {}
        self.tokens: dict[str, Token] = {}
        self.next_id = 1

    # submission
    def batched_writes(self) -> contextlib.AbstractContextManager[bool]:
        return contextlib.nullcontext(False)

    def submit(self, rows: Sequence[dict[str, Any]], *, key: SubmissionKey | None = None) -> list[int]:
        if key is not None and self.submitted_with(rows[0]["user_name"], key.key) is not None:
            raise SubmitKeyTaken("taken")  # as the unique index on (user_name, submit_key) would
        ids = []
        first = self.next_id
        for row in rows:
            job_id = self.next_id
            self.next_id += 1
            array_job_id = first if row.get("array_task_id") is not None else None
            self.jobs[job_id] = {**row, "id": job_id, "state": "PENDING", "array_job_id": array_job_id, "node_list": None}
            ids.append(job_id)
        if key is not None:
            self.jobs[ids[0]].update(submit_key=key.key, submit_digest=key.digest)
        return ids

    def submitted_with(self, user_name: str, key: str) -> KeyedSubmission | None:
        for job_id, job in self.jobs.items():
            if job.get("submit_key") == key and job["user_name"] == user_name:
                array = job["array_job_id"] is not None
                return KeyedSubmission(job["submit_digest"], self.array_task_ids(job_id) if array else [job_id], array)
        return None

    def count_pending(self, user_name: str) -> int:
        return sum(1 for j in self.jobs.values() if j["user_name"] == user_name and j["state"] == "PENDING")

    def node_shapes(self) -> list[NodeView]:
        return [NODE]

    def job_summaries(self, ids: Iterable[int]) -> dict[int, JobSummary]:
        wanted = set(ids)
        fields = JobSummary.__dataclass_fields__
        return {
            i: JobSummary(**{name: j.get(name) for name in fields})
            for i, j in self.jobs.items()
            if i in wanted or j.get("array_job_id") in wanted
        }

    # reads
    def get_job(self, job_id: int) -> Job | None:
        row = self.jobs.get(job_id)
        if row is None:
            return None
        fields = {k: v for k, v in row.items() if k in Job.__dataclass_fields__}
        return job_record(job_id, **fields)

    def list_jobs(
        self,
        *,
        states: Sequence[str] | None = None,
        job_ids: Sequence[int] | None = None,
        limit: int = 1000,
        count: bool = True,
        columns: Collection[str] | None = None,
    ) -> tuple[list[Job], int]:
        found = [
            job for job_id in sorted(self.jobs)
            if (job_ids is None or job_id in job_ids) and (states is None or self.jobs[job_id]["state"] in states)
            and (job := self.get_job(job_id)) is not None
        ]
        return found[:limit], len(found) if count else -1

    def resolve_task(self, array_job_id: int, task_id: int) -> int | None:
        return next(
            (i for i, j in self.jobs.items() if j.get("array_job_id") == array_job_id and j["array_task_id"] == task_id),
            None,
        )

    def array_task_ids(self, job_id: int) -> list[int]:
        return sorted(i for i, j in self.jobs.items() if j.get("array_job_id") == job_id)

    # actions
    def cancel(self, job_id: int, *, by: str | None = None) -> CancelOutcome:
        job = self.jobs.get(job_id)
        if job is None:
            return CancelOutcome(job_id, found=False, message=f"Invalid job id specified: {job_id}")
        if job["state"] == "PENDING":
            job["state"] = "CANCELLED"
            job["cancelled_by"] = by
            return CancelOutcome(job_id, True, "CANCELLED", "cancelled while pending")
        return CancelOutcome(job_id, True, job["state"], f"Job has already finished ({job['state']})")

    def _apply(self, ids: Sequence[int], allowed: set[str], change: Mapping[str, Any]) -> ControlOutcome:
        outcome = ControlOutcome()
        for job_id in ids:
            job = self.jobs[job_id]
            outcome.found.add(job_id)
            if job["state"] in allowed:
                job.update(change)
                outcome.changed.append(job_id)
            else:
                outcome.skipped[job_id] = job["state"]
        return outcome

    def cancel_jobs(self, ids: Sequence[int], *, by: str | None = None) -> ControlOutcome:
        return self._apply(ids, {"PENDING"}, {"state": "CANCELLED", "cancelled_by": by})

    def hold_jobs(self, ids: Sequence[int], held: bool) -> ControlOutcome:
        return self._apply(ids, {"PENDING"}, {"held": held})

    def requeue_jobs(self, ids: Sequence[int], *, hold: bool = False) -> ControlOutcome:
        return self._apply(ids, {"RUNNING", "COMPLETED", "FAILED"}, {"state": "PENDING", "held": hold})

    def update_jobs(self, ids: Sequence[int], changes: Mapping[str, Any]) -> ControlOutcome:
        return self._apply(ids, {"PENDING", "RUNNING"}, changes)

    def queue_signal(self, ids: Sequence[int], entry: str) -> ControlOutcome:
        return self._apply(ids, {"RUNNING"}, {"pending_signal": entry})

    # tokens, for the fast path
    def token_by_hash(self, token_hash: str) -> Token | None:
        return self.tokens.get(token_hash)


class FakeBus:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.published: list[str] = []

    def publish(self, topic: str) -> None:
        self.published.append(topic)
        if self.fail:
            raise RuntimeError("the bus is down")


def service(store: FakeStore | None = None, bus: FakeBus | None = None, **kw: Any) -> JobService:
    return JobService(
        store=store or FakeStore(),
        bus=bus or FakeBus(),
        limits=kw.pop("limits", LIMITS),
        max_pending_per_user=kw.pop("max_pending_per_user", 100),
        hostname="testhost",
        **kw,
    )


def request(**job: Any) -> SubmitRequest:
    return SubmitRequest(job=JobDescription(**{"current_working_directory": "/tmp", **job}), script="#!/bin/sh\ntrue\n")


# ------------------------------------------------------------------ submit
def test_submit_stores_and_wakes_the_scheduler() -> None:
    store, bus = FakeStore(), FakeBus()
    result = service(store, bus).submit(ALICE, request(name="one"))
    assert isinstance(result, Submitted) and result.job_ids == [1] and not result.array
    assert store.jobs[1]["user_name"] == USER and store.jobs[1]["name"] == "one"
    assert bus.published == ["scheduler"]


def test_jobs_without_a_time_limit_get_the_default_time() -> None:
    store = FakeStore()
    jobs = service(store, limits=replace(LIMITS, default_time_limit=3600))
    jobs.submit(ALICE, request(name="plain"))
    jobs.submit(ALICE, request(name="given", time_limit="5"))
    jobs.submit(ALICE, request(name="unlimited", time_limit="UNLIMITED"))
    assert [j["time_limit"] for j in store.jobs.values()] == [3600, 300, None]
    service(store).submit(ALICE, request(name="no default"))
    assert store.jobs[4]["time_limit"] is None


def test_default_time_setting_is_validated() -> None:
    from pydantic import ValidationError

    from conductor.settings import Settings

    assert Settings(default_time="1:00:00").default_time_limit() == 3600
    assert Settings().default_time_limit() is None
    with pytest.raises(ValidationError, match="default_time"):
        Settings(default_time="soon")


def test_a_failure_after_the_commit_never_loses_or_repeats_the_job() -> None:
    store = FakeStore()
    result = service(store, FakeBus(fail=True)).submit(ALICE, request())
    assert isinstance(result, Submitted) and result.job_ids == [1]
    assert list(store.jobs) == [1]


def test_refusals_come_before_anything_is_stored() -> None:
    store = FakeStore()
    jobs = service(store, max_pending_per_user=2)
    with pytest.raises(DependencyProblem):
        jobs.submit(ALICE, request(dependency="afterok:424242"))
    with pytest.raises(Unsatisfiable):
        jobs.submit(ALICE, request(cpus_per_task=64))
    with pytest.raises(UnknownUser):
        jobs.submit(Principal(user="no-such-user-here", admin=False, token_id=9), request())
    with pytest.raises(Forbidden):
        jobs.submit(ADMIN, request())  # root's jobs are off unless allowed
    with pytest.raises(LimitExceeded):
        jobs.submit(ALICE, request(array="1-3"))
    assert store.jobs == {}
    assert isinstance(jobs.submit(ALICE, request(test_only=True)), WouldSubmit) and store.jobs == {}


def test_an_array_is_stored_as_its_tasks() -> None:
    store = FakeStore()
    result = service(store).submit(ALICE, request(array="0-2"))
    assert isinstance(result, Submitted) and result.array and result.job_ids == [1, 2, 3]


# ------------------------------------------------------------------ control
def test_cancel_owner_rules_and_words() -> None:
    store = FakeStore()
    jobs = service(store)
    (job_id,) = service(store).submit(ALICE, request()).job_ids  # type: ignore[union-attr]
    with pytest.raises(Forbidden, match="only its owner or an administrator may cancel it"):
        jobs.cancel(OTHER, str(job_id))
    with pytest.raises(NotFound, match="Invalid job id specified: 99"):
        jobs.cancel(ALICE, "99")
    result = jobs.cancel(ALICE, str(job_id))
    assert (result.state, result.message) == ("CANCELLED", "cancelled while pending")
    assert store.jobs[job_id]["cancelled_by"] == ALICE.user  # sacct's "CANCELLED by UID"
    again = jobs.cancel(ADMIN, str(job_id))  # an ended job is no error for the seed's cancel
    assert again.state == "CANCELLED" and "already finished" in again.message


def test_what_an_array_stores_in_all_is_bounded() -> None:
    # Each task holds the script and environment: one request of a large script and many tasks
    # filled the database's disk.
    store = FakeStore()
    limits = dataclasses.replace(LIMITS, max_array_bytes=100_000)
    jobs = service(store, limits=limits)
    script = "#!/bin/bash\n#" + "x" * 9_000 + "\ntrue\n"
    with pytest.raises(SpecError, match=r"array: 20 tasks of \d+ bytes each .* the limit is 100000 bytes"):
        jobs.submit(ALICE, SubmitRequest(job=JobDescription(current_working_directory="/tmp", array="1-20"), script=script))
    assert store.jobs == {}
    jobs.submit(ALICE, SubmitRequest(job=JobDescription(current_working_directory="/tmp", array="1-10"), script=script))
    assert len(store.jobs) == 10
    # Node names count too (stored unchecked before any node registered): 20 tasks of 9 KB of them.
    store = FakeStore()
    excluded = "node[00000-00899]"
    with pytest.raises(SpecError, match=r"array: 20 tasks of \d+ bytes each \(script, environment, nodes\)"):
        service(store, limits=limits).submit(
            ALICE, SubmitRequest(job=JobDescription(current_working_directory="/tmp", array="1-20",
                                                    excluded_nodes=excluded), script="#!/bin/bash\ntrue\n"),
        )


def test_a_change_to_an_array_is_checked_against_each_task_it_changes() -> None:
    # PATCH N_* was checked against the first task alone: with the first task's limit raised
    # by an administrator, its owner lifted every task to it.
    store = FakeStore()
    jobs = service(store)
    ids = service(store).submit(ALICE, request(array="0-3", time_limit="10")).job_ids  # type: ignore[union-attr]
    assert jobs.update(ADMIN, str(ids[0]), JobChanges({"time_limit": 60_000})).job_ids == [ids[0]]
    with pytest.raises(Forbidden, match="only an administrator may raise"):
        jobs.update(ALICE, f"{ids[0]}_*", JobChanges({"time_limit": 60_000}))
    assert [store.jobs[i]["time_limit"] for i in ids] == [60_000, 600, 600, 600]
    store.jobs[ids[1]]["state"] = "COMPLETED"  # an ended task is not changed: not checked either
    store.jobs[ids[1]]["time_limit"] = 60
    assert jobs.update(ALICE, f"{ids[0]}_*", JobChanges({"time_limit": 300})).job_ids == [ids[0], ids[2], ids[3]]
    store.jobs[ids[0]]["state"] = "COMPLETED"  # the first task too, ended at a shorter limit
    store.jobs[ids[0]]["time_limit"] = 60
    assert jobs.update(ALICE, f"{ids[0]}_*", JobChanges({"time_limit": 240})).job_ids == [ids[2], ids[3]]


def test_actions_refuse_by_kind() -> None:
    store = FakeStore()
    jobs = service(store)
    ids = service(store).submit(ALICE, request(array="1-2")).job_ids  # type: ignore[union-attr]
    store.jobs[ids[0]]["state"] = "RUNNING"
    with pytest.raises(Conflict) as pending:
        jobs.signal(ALICE, str(ids[1]), 10)
    assert not isinstance(pending.value, AlreadyDone) and "only a running job can be signalled" in str(pending.value)
    store.jobs[ids[1]]["state"] = "COMPLETED"
    with pytest.raises(AlreadyDone, match="has already finished"):
        jobs.hold(ALICE, str(ids[1]))
    # The whole array: the running task is signalled, the ended one skipped.
    result = jobs.signal(ALICE, f"{ids[0]}_*", 10)
    assert result.job_ids == [ids[0]] and "1 skipped" in result.message
    # Priorities compare as the scheduler orders them: a stored 0 is the default, 10,001.
    assert jobs.update(ADMIN, str(ids[0]), JobChanges({"priority": 10})).job_ids == [ids[0]]
    store.jobs[ids[0]]["priority"] = 10
    for higher in (20, 0):  # 0 would put it back to the default: a raise
        with pytest.raises(Forbidden, match="raise a job's priority"):
            jobs.update(ALICE, str(ids[0]), JobChanges({"priority": higher}))
    assert jobs.update(ALICE, str(ids[0]), JobChanges({"priority": 5})).job_ids == [ids[0]]
    store.jobs[ids[0]]["priority"] = 0
    assert jobs.update(ALICE, str(ids[0]), JobChanges({"priority": 100})).job_ids == [ids[0]]  # below the default


# ------------------------------------------------------------------ fast path
def _call(app: Any, body: bytes, token: str) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/jobs/submit",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {token}".encode()), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
    }
    asyncio.run(app(scope, receive, send))
    return sent


def test_fast_path_never_hands_a_stored_job_on_to_be_submitted_again() -> None:
    store = FakeStore()
    store.tokens[hash_token("tok")] = Token(1, USER, False, token_hash=hash_token("tok"))
    handed_on: list[bytes] = []

    async def downstream(scope: Any, receive: Any, send: Any) -> None:
        handed_on.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    class Breaks(JobService):
        def submit(self, *args: Any, **kwargs: Any) -> Submitted | WouldSubmit:
            super().submit(*args, **kwargs)
            raise RuntimeError("failed after the commit")

        def submit_many(self, *args: Any, **kwargs: Any) -> list[Submitted | WouldSubmit | Exception]:
            super().submit_many(*args, **kwargs)
            raise RuntimeError("failed after the commit")

    jobs = Breaks(store=store, bus=FakeBus(), limits=LIMITS, max_pending_per_user=100, hostname="h")
    fast = SubmitFastPath(downstream, store=store, jobs=jobs, in_thread=False)
    body = json.dumps({"job": {"current_working_directory": "/tmp"}, "script": "#!/bin/sh\ntrue\n"}).encode()
    with pytest.raises(RuntimeError, match="after the commit"):
        _call(fast, body, "tok")
    assert handed_on == [] and len(store.jobs) == 1

    # A refusal, decided before anything is stored, is handed on for FastAPI to word.
    refused = json.dumps({"job": {"current_working_directory": "/tmp", "cpus_per_task": 64}, "script": "#!/bin/sh\n"})
    good = JobService(store=store, bus=FakeBus(), limits=LIMITS, max_pending_per_user=100, hostname="h")
    sent = _call(SubmitFastPath(downstream, store=store, jobs=good, in_thread=False), refused.encode(), "tok")
    assert handed_on == [refused.encode()] and sent[0]["status"] == 400 and len(store.jobs) == 1
    sent = _call(SubmitFastPath(downstream, store=store, jobs=good, in_thread=False), body, "tok")
    assert sent[0]["status"] == 201 and json.loads(sent[1]["body"])["job_id"] == "2" and len(store.jobs) == 2


def test_the_submitters_passwd_entry_is_read_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    from conductor.services import submission

    class Entry:
        pw_uid, pw_gid, pw_dir = 4242, 4343, "/home/cached"

    lookups: list[str] = []

    def getpwnam(name: str) -> Entry:
        lookups.append(name)
        if name == "nobody-here":
            raise KeyError(name)
        return Entry()

    clock = [1000.0]
    monkeypatch.setattr(submission.pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(submission.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(submission, "_passwd", {})
    first = submission.submitter_for("alice", "h1")
    second = submission.submitter_for("alice", "h2")
    assert (first.uid, first.gid, first.home, second.host) == (4242, 4343, "/home/cached", "h2")
    assert submission.submitter_for("nobody-here", "h").uid is None
    assert submission.submitter_for("nobody-here", "h").uid is None
    assert lookups == ["alice", "nobody-here"]
    # An entry changed in the passwd database is seen once the interval has passed.
    clock[0] += submission.PASSWD_CACHE_SECONDS + 1
    submission.submitter_for("alice", "h")
    assert lookups == ["alice", "nobody-here", "alice"]


def test_the_submit_host_of_a_local_client_is_this_hosts_name() -> None:
    from conductor.services.submission import submit_host

    assert submit_host("127.0.0.1", "vm") == "vm"
    assert submit_host("::1", "vm") == "vm"
    assert submit_host(None, "vm") == "vm"
    assert submit_host("10.1.2.3", "vm") == "10.1.2.3"
    assert submit_host("testclient", "vm") == "testclient"
