"""How the views describe a ReqNodeNotAvail job (cli/unavailable.py): the nodes of its partition
that take no job, as slurmctld words its state_desc; the nodes asked for once."""

from __future__ import annotations

from typing import Any

from conductor.cli.common import job_reason
from conductor.cli.unavailable import UnavailableNodes


class Nodes:
    """The server's /nodes, and its /jobs for the nodes a job is kept to (`requests`)."""

    def __init__(self, nodes: list[dict[str, Any]], requests: dict[int, dict[str, Any]] | None = None) -> None:
        self.nodes = nodes
        self.requests = requests or {}
        self.asked = 0
        self.jobs_asked: list[dict[str, Any]] = []

    def get(self, path: str, **params: Any) -> Any:
        if path == "/jobs":
            self.jobs_asked.append(params)
            ids = [int(i) for i in params["job_id"].split(",")]
            return {"jobs": [{"job_id": i, "required_nodes": None, "excluded_nodes": None, **self.requests.get(i, {})}
                             for i in ids]}
        assert path == "/nodes"
        self.asked += 1
        return {"nodes": self.nodes}


def node(name: str, state: str = "IDLE", drained: bool = False, partitions: tuple[str, ...] = ("debug",)) -> dict[str, Any]:
    return {"name": name, "state": state, "drained": drained, "partitions": list(partitions)}


def job(
    partition: str = "debug", reason: str = "ReqNodeNotAvail", state: str = "PENDING", job_id: int = 1, **more: Any
) -> dict[str, Any]:
    return {"job_id": job_id, "state": state, "reason": reason, "partition": partition, **more}


def test_the_nodes_that_take_no_job_are_named_per_partition() -> None:
    source = Nodes([
        node("cn01", drained=True), node("cn02", "DOWN"), node("cn03", "MIXED"), node("cn04", "MIXED", drained=True),
        node("gpu1", "DOWN", partitions=("gpu",)), node("gpu2", partitions=("gpu",)),
    ])
    jobs = [job(), job("gpu"), job(reason="Resources"), job("gpu", state="RUNNING"), job("empty")]
    UnavailableNodes(source).describe(jobs[:3])
    UnavailableNodes(source).describe(jobs[3:])
    assert [job_reason(j) for j in jobs] == [
        "ReqNodeNotAvail, UnavailableNodes:cn[01-02,04]",
        "ReqNodeNotAvail, UnavailableNodes:gpu1",
        "Resources",
        "ReqNodeNotAvail",  # not pending: not described
        "ReqNodeNotAvail",  # no such node now (one came back since the pass): the bare reason
    ]


def test_the_nodes_are_asked_for_once_and_only_when_needed() -> None:
    source = Nodes([node("cn01", drained=True)])
    describer = UnavailableNodes(source)
    describer.describe([job(reason="Priority")])
    assert source.asked == 0
    describer.describe([job(), job()])
    describer.describe([job()])
    assert source.asked == 1


def test_a_job_kept_to_some_nodes_names_those_of_them_that_take_no_job() -> None:
    nodes = [node("cn01", drained=True), node("cn02", "DOWN"), node("cn03", drained=True)]
    # The records hold what it asked for (scontrol's, or squeue showing %n or %x)...
    shown = [job(job_id=1, required_nodes="cn02", excluded_nodes=None),
             job(job_id=2, required_nodes=None, excluded_nodes="cn[01,03]")]
    source = Nodes(nodes)
    UnavailableNodes(source).describe(shown)
    assert [job_reason(j) for j in shown] == ["ReqNodeNotAvail, UnavailableNodes:cn02"] * 2
    assert source.jobs_asked == []
    # ... or not (squeue asks for the fields it prints): asked for, once a page, those jobs alone.
    source = Nodes(nodes, {3: {"required_nodes": "cn03"}, 4: {"excluded_nodes": "cn[01-02]"}})
    bare = [job(job_id=3), job(job_id=4), job(job_id=5), job(job_id=6, reason="Priority")]
    UnavailableNodes(source).describe(bare)
    assert [job_reason(j) for j in bare] == [
        "ReqNodeNotAvail, UnavailableNodes:cn03",
        "ReqNodeNotAvail, UnavailableNodes:cn03",
        "ReqNodeNotAvail, UnavailableNodes:cn[01-03]",
        "Priority",
    ]
    assert [params["job_id"] for params in source.jobs_asked] == ["3,4,5"]
