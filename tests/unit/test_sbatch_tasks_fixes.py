"""Tasks per node without a task count, an empty --begin, and mail types checked on every path.

- `--ntasks-per-node=N` without `-n` is N tasks on each of the minimum number of nodes, as
  Slurm's sbatch (_opt_verify, src/sbatch/opt.c) and slurmctld (validate_job_create_req,
  src/slurmctld/job_mgr.c) decide; the server decides it, for sbatch, `POST /jobs/submit` and
  slurmrestd's `tasks_per_node` alike.
- `sbatch --begin=` is refused as `--time=` and `--mem=` are (Slurm: "Invalid --begin
  specification").
- `mail_type` is checked by the server against the list sbatch checks (domain/mail.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from conductor.api.slurmrestd import _parse_submit, to_job_description
from conductor.cli.sbatch_options import SbatchError, build_plan, first_pass
from conductor.domain.errors import SpecError
from conductor.domain.mail import MAIL_TYPE_ORDER, MAIL_TYPES, mail_type_problem
from conductor.errors import Unsatisfiable
from conductor.scheduler.policy import NodeView
from conductor.services.idempotency import request_digest
from conductor.services.requests import JobDescription, SubmitRequest
from conductor.services.submission import Limits, Submitter, build_rows

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
LIMITS = Limits(max_script_bytes=4096, max_environment_bytes=4096, max_array_tasks=50, default_partition="debug")
NODES = [
    NodeView(
        name="n1",
        cpu_ids=tuple(range(4)),
        free_cpu_ids=list(range(4)),
        memory_mb=16_000,
        free_memory_mb=16_000,
        partitions=frozenset({"debug"}),
    )
]
SUBMITTER = Submitter(user="alice", uid=1000, gid=1000, home="/home/alice", host="h")
SCRIPT = "#!/bin/sh\ntrue\n"
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/alice", "USER": "alice"}


def sbatch_job(argv: list[str], script: str = SCRIPT) -> dict[str, Any]:
    """The job object sbatch sends for `argv` (options only; the script is `script`)."""
    plan = build_plan(first_pass([*argv, "job.sh"]), script, script_path="job.sh", environ=ENV, cwd="/tmp")
    return plan.job


def row_for(job: dict[str, Any]) -> dict[str, Any]:
    """The stored row of a submission of `job` (as the server validates it)."""
    (row,) = build_rows(
        JobDescription.model_validate(job), SCRIPT, submitter=SUBMITTER, limits=LIMITS, nodes=NODES, now=NOW
    )
    return row


# ---- 1. ntasks from ntasks_per_node --------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--nodes=1", "--ntasks-per-node=2"],
        ["-N", "1", "--tasks-per-node", "2"],
        ["--ntasks-per-node=2"],  # Slurm's default minimum node count is 1
        ["--nodes=1-3", "--ntasks-per-node=2"],  # slurmctld: ntasks_per_node x the minimum
    ],
)
def test_sbatch_tasks_per_node_without_ntasks_is_that_many_tasks(argv: list[str]) -> None:
    row = row_for(sbatch_job(argv))
    assert (row["ntasks"], row["ntasks_per_node"], row["cpus_per_task"]) == (2, 2, 1)


def test_sbatch_directives_do_the_same() -> None:
    script = "#!/bin/sh\n#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=2\n#SBATCH -c 2\nsrun hostname\n"
    row = row_for(sbatch_job([], script))
    assert (row["ntasks"], row["ntasks_per_node"], row["cpus_per_task"]) == (2, 2, 2)


def test_a_given_task_count_is_kept() -> None:
    # -n wins over the product, in any order, as in Slurm (ntasks_set).
    assert row_for(sbatch_job(["-n", "1", "--ntasks-per-node=2"]))["ntasks"] == 1
    assert row_for(sbatch_job(["--ntasks-per-node=2", "-n", "2"]))["ntasks"] == 2
    assert row_for(sbatch_job(["-n", "3"]))["ntasks"] == 3
    assert row_for(sbatch_job([]))["ntasks"] == 1
    # Over HTTP an explicit 1 is kept too (it is the default value, but it was given).
    assert row_for({"ntasks": 1, "ntasks_per_node": 3})["ntasks"] == 1


def test_more_tasks_than_one_node_holds_are_refused_as_before() -> None:
    with pytest.raises(Unsatisfiable, match="3 tasks at 2 per node need more than one node"):
        row_for(sbatch_job(["-n", "3", "--ntasks-per-node=2"]))


def test_more_than_one_node_is_still_refused_for_its_node_count() -> None:
    with pytest.raises(Unsatisfiable, match="jobs run on a single node here, 2 nodes were requested"):
        row_for(sbatch_job(["--nodes=2", "--ntasks-per-node=2"]))
    with pytest.raises(Unsatisfiable, match="2 nodes were requested"):
        row_for({"nodes": "2-4", "ntasks_per_node": 1})
    with pytest.raises(SpecError) as caught:
        row_for({"nodes": "x", "ntasks_per_node": 2})
    assert caught.value.field == "nodes"


def test_the_cpus_are_counted_for_every_task() -> None:
    # 4 tasks x 1 CPU fit the 4-CPU node; 8 do not (they were 1 CPU before).
    assert row_for({"ntasks_per_node": 4})["ntasks"] == 4
    with pytest.raises(Unsatisfiable, match="8 CPUs requested"):
        row_for({"ntasks_per_node": 8})
    with pytest.raises(Unsatisfiable, match="6 CPUs requested"):
        row_for({"ntasks_per_node": 2, "cpus_per_task": 3})


def test_rest_and_slurmrestd_bodies_agree_with_sbatch() -> None:
    assert row_for({"ntasks_per_node": 2, "nodes": 1})["ntasks"] == 2
    described, ignored = to_job_description({"tasks_per_node": 2, "minimum_nodes": 1})
    assert ignored == []
    assert row_for(described)["ntasks"] == 2
    parsed = _parse_submit({"script": SCRIPT, "job": {"tasks_per_node": 2}})
    assert isinstance(parsed[0], SubmitRequest)
    assert parsed[0].job.ntasks == 2
    # slurmrestd's "tasks" is kept.
    assert row_for(to_job_description({"tasks": 1, "tasks_per_node": 2})[0])["ntasks"] == 1


def test_a_retry_tells_the_two_requests_apart() -> None:
    # `ntasks: 1` given and the same body without it are different jobs (1 task, 2 tasks).
    one = SubmitRequest.model_validate({"script": SCRIPT, "job": {"ntasks": 1, "ntasks_per_node": 2}})
    two = SubmitRequest.model_validate({"script": SCRIPT, "job": {"ntasks_per_node": 2}})
    assert request_digest(one) != request_digest(two)
    same = SubmitRequest.model_validate({"script": SCRIPT, "job": {"ntasks": 2, "ntasks_per_node": 2}})
    assert request_digest(same) == request_digest(two)


# ---- 2. an empty --begin -----------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--begin="], ["--begin", ""], ["-b", " "], ["--begin", "\t"]])
def test_sbatch_refuses_an_empty_begin(argv: list[str]) -> None:
    with pytest.raises(SbatchError) as caught:
        sbatch_job(argv)
    assert caught.value.message.startswith("Invalid --begin specification: the time is empty")


def test_sbatch_refuses_an_empty_begin_directive() -> None:
    with pytest.raises(SbatchError, match="Invalid --begin specification"):
        sbatch_job([], "#!/bin/sh\n#SBATCH --begin=\ntrue\n")
    # The command line still overrides a directive, as for every option.
    assert sbatch_job(["--begin=now+60"], "#!/bin/sh\n#SBATCH --begin=\ntrue\n")["begin_time"] == "now+60"


def test_sbatch_keeps_a_begin_time_as_written() -> None:
    assert sbatch_job(["--begin=now+60"])["begin_time"] == "now+60"
    assert "begin_time" not in sbatch_job([])


def test_the_server_refuses_an_empty_begin_time() -> None:
    for value in ("", "  "):
        with pytest.raises(SpecError) as caught:
            row_for({"begin_time": value})
        assert caught.value.field == "begin_time" and "empty time" in caught.value.message
    assert row_for({})["begin_time"] is None


# ---- 3. mail types -----------------------------------------------------------------------------


def test_one_list_of_mail_types() -> None:
    assert set(MAIL_TYPE_ORDER) == MAIL_TYPES and len(MAIL_TYPE_ORDER) == len(MAIL_TYPES)
    for word in MAIL_TYPE_ORDER:
        assert mail_type_problem(word.lower()) is None
        assert sbatch_job([f"--mail-type={word}"])["mail_type"] == word
        assert JobDescription(mail_type=word).mail_type == word


@pytest.mark.parametrize("value", ["FOO", "BEGIN,FOO", "FOO,BAR", "", "BEGIN,", ",END", "END FAIL"])
def test_the_server_refuses_what_sbatch_refuses(value: str) -> None:
    with pytest.raises(SbatchError) as refused:
        sbatch_job([f"--mail-type={value}"])
    assert refused.value.message.startswith(f"--mail-type={value} invalid: ")
    with pytest.raises(ValidationError) as caught:
        JobDescription(mail_type=value)
    (error,) = caught.value.errors()
    assert error["loc"] == ("mail_type",)
    assert "is not a mail type; expected a comma-separated list of NONE, BEGIN, END" in error["msg"]


def test_mail_types_in_any_case_and_with_blanks_pass_as_given() -> None:
    assert JobDescription(mail_type="begin, End").mail_type == "begin, End"
    assert row_for({"mail_type": "END,FAIL", "mail_user": "a@b"})["extra"].count("END,FAIL") == 1


def test_slurmrestd_mail_type_list_is_checked() -> None:
    parsed = _parse_submit({"script": SCRIPT, "job": {"mail_type": ["FOO", "BAR"]}})
    assert isinstance(parsed[0], str) and len(parsed) == 4
    message, source = parsed[0], parsed[3]
    assert source == "job.mail_type"
    assert message.startswith("mail_type: ") and "'FOO' is not a mail type" in message
    accepted = _parse_submit({"script": SCRIPT, "job": {"mail_type": ["BEGIN", "END"]}})
    assert isinstance(accepted[0], SubmitRequest) and accepted[0].job.mail_type == "BEGIN,END"
