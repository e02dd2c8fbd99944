"""Job steps as srun reports them: the records are the job user's, so nothing in them is trusted."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
