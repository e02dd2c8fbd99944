"""Job steps as srun reports them: the records are the job user's, so nothing in them is trusted."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from conductor.cli import srun
from conductor.cli.common import UsageError
from conductor.domain.usage import StepRecord, Usage, parse_step, parse_usage
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
    records = StepRecords("n1", tmp_path)
    path = records.clear(7)
    Path(path + ".next").write_text("3")
    records.clear(7)
    assert not os.path.exists(path + ".next")  # numbering starts again for each run

    with open(path, "w") as handle:
        handle.write(json.dumps(GOOD) + "\nnot json\n" + json.dumps({**GOOD, "step_id": 1, "state": "bogus"}) + "\n")
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


def test_the_node_makes_both_step_files_as_the_jobs_user_whatever_was_planted(tmp_path: Path) -> None:
    # Another user who links the job's step counter to a file of the job's user would have
    # the job's srun overwrite it; one who plants a file of his own would stop its sruns.
    records = StepRecords("n1", tmp_path)
    path = records.path(8)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.symlink(victim, path + ".next")
    Path(path).write_text("planted\n")
    os.chown(path, OTHER_UID, OTHER_UID)
    records.clear(8, os.geteuid() + 1000, os.getegid())
    for name in (path, path + ".next"):
        info = os.lstat(name)
        assert stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() + 1000 and info.st_size == 0
    assert victim.read_text() == "precious\n"


def test_srun_writes_only_to_a_regular_file_of_its_own_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    counter = tmp_path / "steps.jsonl.next"
    monkeypatch.setenv("CONDUCTOR_STEP_RECORDS", str(tmp_path / "steps.jsonl"))
    os.symlink(victim, counter)
    with pytest.raises(UsageError, match="is not a regular file of yours"):
        srun._next_step_id("8")
    assert victim.read_text() == "precious\n"
    counter.unlink()
    counter.write_text("5")
    os.chown(counter, OTHER_UID, OTHER_UID)
    os.chmod(counter, 0o666)
    with pytest.raises(UsageError, match="is not a regular file of yours"):
        srun._next_step_id("8")
    assert counter.read_text() == "5"  # another user's numbers are not taken
    counter.unlink()
    os.mkfifo(counter)
    with pytest.raises(UsageError, match="is not a regular file of yours"):
        srun._next_step_id("8")
    counter.unlink()
    assert [srun._next_step_id("8") for _ in range(3)] == [0, 1, 2]  # made, then counted
    # The records: a registration goes to the user's own file only.
    records = tmp_path / "steps.jsonl"
    os.symlink(victim, records)
    srun._register_step()
    assert victim.read_text() == "precious\n"
    records.unlink()
    srun._register_step()
    assert json.loads(records.read_text())["srun"] == os.getpid()
