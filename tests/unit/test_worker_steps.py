"""Job steps as srun reports them: the records are the job user's, so nothing in them is trusted."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

from conductor.cli import srun
from conductor.cli.common import UsageError
from conductor.domain.usage import StepRecord, Usage, parse_step, parse_usage
from conductor.worker.spool import Spool
from conductor.worker.steps import StepRecords

GOOD = {"step_id": 0, "name": "hostname", "state": "COMPLETED", "exit_code": "0:0", "ntasks": 2,
        "start": 100.0, "end": 101.5, "user_cpu": 0.5, "system_cpu": 0.25, "max_rss": 4096}


def test_a_step_is_checked_field_by_field() -> None:
    step = parse_step(GOOD)
    assert step == StepRecord(0, "hostname", "COMPLETED", "0:0", 2, 100.0, 101.5, 0.5, 0.25, 4096)
    assert step is not None and step.total_cpu == 0.75
    for bad in ({"state": "RUNNING"}, {"exit_code": "x"}, {"end": 50.0}, {"ntasks": 0}, {"step_id": -1},
                {"start": "soon"}):
        assert parse_step({**GOOD, **bad}) is None
    assert parse_step([1, 2]) is None
    assert parse_step({k: v for k, v in GOOD.items() if k != "state"}) is None


def test_steps_travel_with_the_usage() -> None:
    usage = Usage(user_cpu=1.0, steps=(StepRecord(1, "a", "FAILED", "2:0", 1, 1.0, 2.0),))
    assert parse_usage(usage.to_json()) == usage
    assert json.loads(usage.to_json())["steps"][0]["exit_code"] == "2:0"


def test_records_are_read_once_and_only_from_the_jobs_user(tmp_path: Path) -> None:
    records = StepRecords(tmp_path)
    path = records.clear(7)
    Path(path).write_text('{"step_taken": 0}\n')
    records.clear(7)
    assert not os.path.exists(path)  # numbering starts again for each run

    with open(path, "w") as handle:
        handle.write(json.dumps(GOOD) + "\nnot json\n" + json.dumps({**GOOD, "step_id": 1, "state": "bogus"}) + "\n"
                     + '{"step_taken": 0}\n')
    assert [step.step_id for step in records.collect(7, os.geteuid())] == [0]
    assert not os.path.exists(path)  # read once

    with open(path, "w") as handle:
        handle.write(json.dumps(GOOD) + "\n")
    assert records.collect(7, os.geteuid() + 1) == ()  # another user's file: ignored

    target = tmp_path / "elsewhere"
    target.write_text(json.dumps(GOOD) + "\n")
    os.symlink(target, path)
    assert records.collect(7, os.geteuid()) == ()  # a link is not followed
    assert target.exists()


OTHER_UID = 65534  # nobody: the other user of the shared temporary directory


def test_the_node_makes_the_records_as_the_jobs_user_whatever_was_there(tmp_path: Path) -> None:
    records = StepRecords(tmp_path)
    path = records.path(8)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.symlink(victim, path)
    records.clear(8, os.geteuid() + 1000, os.getegid())
    info = os.lstat(path)
    assert stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() + 1000 and info.st_size == 0
    assert victim.read_text() == "precious\n"


def test_the_step_files_live_where_no_other_user_may_make_anything(tmp_path: Path) -> None:
    # In the shared temporary directory, under names anyone could work out, a directory planted
    # at a job's name made its launch fail (every job's, planted ahead), and a link there had the
    # job's srun write through it. The node's own directory lets nobody else in.
    spool = Spool(tmp_path / "home")
    spool.make_dirs()
    info = os.stat(spool.steps_dir)
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o711
    records = StepRecords(spool.steps_dir)
    assert os.path.dirname(records.path(9)) == str(spool.steps_dir)
    os.mkdir(records.path(9))  # whatever is there, the launch goes on without its records
    assert records.clear(9, os.geteuid(), os.getegid()) == records.path(9)


def test_a_signal_reads_only_what_the_sruns_wrote_since_the_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A job's records may hold megabytes of its own making: each signal for its steps read and
    # parsed them all on the worker's loop, and a few hundred signals held the node past its
    # heartbeats.
    records = StepRecords(tmp_path)
    path = records.clear(3)
    me = os.geteuid()
    with open(path, "a") as handle:
        handle.write('{"srun": 11, "ticks": 1}\n{"srun": 12, "ti')
    read: list[int] = []
    real_pread = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, at: read.append(n) or real_pread(fd, n, at))
    assert records.sruns(3, me) == [(11, 1)]
    with open(path, "a") as handle:
        handle.write('cks": 2}\n{"srun_ended": 11}\n')
    assert records.sruns(3, me) == [(12, 2)]
    assert records.sruns(3, me) == [(12, 2)]
    size = os.path.getsize(path)
    assert sum(read) == size  # each byte read once
    os.unlink(path)  # another file (shorter than what was read): read from its start
    with open(path, "w") as handle:
        handle.write('{"srun": 13, "ticks": 3}\n')
    assert records.sruns(3, me) == [(13, 3)]
    records.clear(3)  # the job's next run
    with open(path, "w") as handle:
        handle.write('{"srun": 14, "ticks": 4}\n')
    assert records.sruns(3, me) == [(14, 4)]


def test_srun_writes_only_to_a_regular_file_of_its_own_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    records = tmp_path / "steps.jsonl"
    shared = tmp_path / "shared"  # the system's temporary directory, for the fallback counter
    shared.mkdir()
    monkeypatch.setenv("TMPDIR", str(shared))
    monkeypatch.setattr(tempfile, "tempdir", None)
    fallback = shared / f"conductor-steps-{os.getuid()}-8"
    monkeypatch.setenv("CONDUCTOR_STEP_RECORDS", str(records))
    # Steps are numbered in the job's records, each srun taking the next.
    records.write_text('{"srun": 5, "ticks": 1}\n')
    assert [srun._next_step_id("8") for _ in range(3)] == [0, 1, 2]
    assert records.read_text().count('{"step_taken": ') == 3 and not fallback.exists()
    records.unlink()
    for bad in ("link", "another's", "fifo"):
        if bad == "link":
            os.symlink(victim, records)
        elif bad == "another's":
            records.write_text('{"step_taken": 0}\n')
            os.chown(records, OTHER_UID, OTHER_UID)
            os.chmod(records, 0o666)
        else:
            os.mkfifo(records)
        # Not the job's records, then: a counter of the user's own (numbered from 0).
        assert srun._next_step_id("8") == 0
        fallback.unlink()
        # And a fallback another user made first: no step runs.
        os.symlink(victim, fallback)
        with pytest.raises(UsageError, match="is not a regular file of yours"):
            srun._next_step_id("8")
        fallback.unlink()
        records.unlink()
    assert victim.read_text() == "precious\n"
    # The records: a registration goes to the user's own file only.
    records = tmp_path / "steps.jsonl"
    os.symlink(victim, records)
    srun._register_step()
    assert victim.read_text() == "precious\n"
    records.unlink()
    srun._register_step()
    assert json.loads(records.read_text())["srun"] == os.getpid()
