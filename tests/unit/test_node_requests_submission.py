"""sbatch --nodelist and --exclude from the command line to the stored row: sbatch and
slurmrestd send them, the server checks them against the cluster's nodes as slurmctld does
(names it knows, one node at most, some node left) and stores the names."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from conductor.api.slurmrestd import to_job_description
from conductor.cli.sbatch_options import SbatchError, build_plan, first_pass
from conductor.domain.errors import SpecError
from conductor.errors import InvalidNodeName, Unsatisfiable
from conductor.scheduler.policy import NodeView
from conductor.services.requests import JobDescription
from conductor.services.submission import Limits, Submitter, build_rows

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
LIMITS = Limits(max_script_bytes=4096, max_environment_bytes=4096, max_array_tasks=50, default_partition="debug")
SUBMITTER = Submitter(user="alice", uid=1000, gid=1000, home="/home/alice", host="h")
SCRIPT = "#!/bin/sh\ntrue\n"


def _node(name: str, cpus: int, partitions: str = "debug") -> NodeView:
    return NodeView(
        name=name, cpu_ids=tuple(range(cpus)), free_cpu_ids=[], memory_mb=8000, free_memory_mb=0,
        partitions=frozenset(partitions.split(",")),
    )


NODES = [_node("cn1", 2), _node("cn2", 8), _node("cn3", 2), _node("gpu1", 4, "gpu")]


def row(nodes: list[NodeView] = NODES, **job: Any) -> dict[str, Any]:
    (stored,) = build_rows(
        JobDescription.model_validate({"current_working_directory": "/tmp", **job}), SCRIPT,
        submitter=SUBMITTER, limits=LIMITS, nodes=nodes, now=NOW,
    )
    return stored


def test_the_names_are_stored_expanded_sorted_and_once() -> None:
    stored = row(required_nodes="cn2", excluded_nodes="cn[3,1],cn1")
    assert (stored["req_nodes"], stored["exc_nodes"]) == ("cn2", "cn1,cn3")
    # slurmrestd's lists, and none at all.
    assert row(excluded_nodes=["cn1", "cn3"])["exc_nodes"] == "cn1,cn3"
    plain = row()
    assert (plain["req_nodes"], plain["exc_nodes"]) == (None, None)


@pytest.mark.parametrize(
    ("job", "kind", "words"),
    [
        ({"required_nodes": "cn9"}, InvalidNodeName, "required_nodes: Invalid node name specified: 'cn9'"),
        ({"excluded_nodes": "cn[1-2],nope"}, InvalidNodeName, "excluded_nodes: Invalid node name specified: 'nope'"),
        ({"required_nodes": "cn[1-2]"}, Unsatisfiable, "jobs run on a single node here, required_nodes names 2"),
        ({"required_nodes": "cn1", "excluded_nodes": "cn1"}, SpecError, "node 'cn1' is both required and excluded"),
        ({"required_nodes": "gpu1"}, Unsatisfiable, "Requested nodes not in this partition: node 'gpu1' is not in 'debug'"),
        ({"excluded_nodes": "cn[1-3]"}, Unsatisfiable, "every node of partition 'debug' is excluded"),
        # The size check counts the nodes it may use: cn2 alone has 8 CPUs.
        ({"excluded_nodes": "cn2", "cpus_per_task": 4}, Unsatisfiable,
         "4 CPUs requested, the largest node of partition 'debug' it may use has 2"),
        ({"required_nodes": "cn[1-"}, SpecError, "required_nodes"),
    ],
)
def test_what_slurmctld_refuses_is_refused_naming_the_field(job: dict[str, Any], kind: type, words: str) -> None:
    with pytest.raises(kind) as refused:
        row(**job)
    assert words in str(refused.value)


def test_names_are_not_checked_before_any_node_registered() -> None:
    assert row([], required_nodes="later")["req_nodes"] == "later"


def test_a_body_that_is_no_host_list_is_refused() -> None:
    for bad in ({"required_nodes": 5}, {"excluded_nodes": ["cn1", 2]}, {"excluded_nodes": "cn1\ncn2"},
                {"excluded_nodes": ["cn1"] * 2000}):
        with pytest.raises(ValidationError):
            JobDescription.model_validate(bad)


def test_sbatch_sends_nodelist_and_exclude(tmp_path: Path) -> None:
    def job(*argv: str) -> dict[str, Any]:
        environ = {"PATH": "/usr/bin:/bin"}
        plan = build_plan(first_pass([*argv, "job.sh"]), SCRIPT, script_path="job.sh", environ=environ, cwd="/tmp")
        assert not [w for w in plan.warnings if "nodelist" in w or "exclude" in w], plan.warnings
        return plan.job

    sent = job("-w", "cn2", "-x", "cn[1,3]")
    assert (sent["required_nodes"], sent["excluded_nodes"]) == ("cn2", "cn[1,3]")
    assert job("--nodelist=cn2", "--exclude=cn1")["excluded_nodes"] == "cn1"
    listed = tmp_path / "nodes"
    listed.write_text("cn1  # the first\n# none here\ncn3,cn4\n\n")
    assert job(f"--exclude={listed}")["excluded_nodes"] == "cn1,cn3,cn4"  # a path: the file it names
    assert job(f"--nodefile={listed}")["required_nodes"] == "cn1,cn3,cn4"  # refused by the server: 3 nodes
    assert job(f"--nodefile={listed}", "-w", "cn2")["required_nodes"] == "cn1,cn3,cn4"  # the file wins
    with pytest.raises(SbatchError, match="cannot read the node list file"):
        job(f"--nodelist={tmp_path}/missing")
    directive = "#!/bin/sh\n#SBATCH --nodelist=cn2\ntrue\n"
    plan = build_plan(first_pass(["job.sh"]), directive, script_path="job.sh", environ={}, cwd="/tmp")
    assert plan.job["required_nodes"] == "cn2"


def test_slurmrestd_fields_map_onto_ours() -> None:
    out, ignored = to_job_description({"required_nodes": ["cn2"], "excluded_nodes": ["cn1", "cn3"]})
    assert out == {"required_nodes": ["cn2"], "excluded_nodes": ["cn1", "cn3"]} and ignored == []
    assert row(**out)["exc_nodes"] == "cn1,cn3"


def test_slurmrestd_answers_an_unknown_node_with_slurms_error_number() -> None:
    from conductor.api.slurmrestd import ESLURM_INVALID_NODE_NAME, slurm_errno

    with pytest.raises(InvalidNodeName) as refused:
        row(**to_job_description({"excluded_nodes": ["nope"]})[0])
    assert slurm_errno(refused.value) == ESLURM_INVALID_NODE_NAME
