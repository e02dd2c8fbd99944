"""How the views describe a ReqNodeNotAvail job (cli/unavailable.py): the nodes of its partition
that take no job, as slurmctld words its state_desc; the nodes asked for once."""

from __future__ import annotations

from typing import Any

from conductor.cli.common import job_reason
from conductor.cli.unavailable import UnavailableNodes


class Nodes:
    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes
        self.asked = 0

    def get(self, path: str, **params: Any) -> Any:
        assert path == "/nodes"
        self.asked += 1
        return {"nodes": self.nodes}


def node(name: str, state: str = "IDLE", drained: bool = False, partitions: tuple[str, ...] = ("debug",)) -> dict[str, Any]:
    return {"name": name, "state": state, "drained": drained, "partitions": list(partitions)}


def job(partition: str = "debug", reason: str = "ReqNodeNotAvail", state: str = "PENDING") -> dict[str, Any]:
    return {"job_id": 1, "state": state, "reason": reason, "partition": partition}


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
