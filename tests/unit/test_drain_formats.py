"""Drained nodes as the Slurm commands print them (no server): `scontrol show node` (State=
IDLE+DRAIN, Reason=... [user@time]), sinfo's states (drain, drng; drained, draining), its
grouping, `sinfo -R`, -t, %C, and the parsing of `scontrol update NodeName=... State=...`.
Reference: Slurm 22.05's src/api/node_info.c, src/sinfo/{opts,print,sinfo}.c,
src/common/slurm_protocol_defs.c (node_state_string*) and src/scontrol/update_node.c."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from conductor.cli import sinfo
from conductor.cli.common import UsageError
from conductor.cli.scontrol import format_node, layout
from conductor.cli.scontrol_nodes import is_node_key, parse_update
from conductor.cli.slurm_json import sinfo_document

DRAINED_AT = datetime(2026, 12, 7, 3, 20).astimezone()
STAMP = DRAINED_AT.strftime("%Y-%m-%dT%H:%M:%S")  # Slurm prints local time


def n(name: str, state: str = "IDLE", alloc: int = 0, cpus: int = 4, **extra: Any) -> dict[str, Any]:
    node = {"name": name, "state": state, "cpus": cpus, "alloc_cpus": alloc, "memory_mb": 1000,
            "alloc_memory_mb": 0, "partitions": ["debug"], "reason": None, "drained": False}
    node.update(extra)
    return node


def drained(name: str, state: str = "IDLE", alloc: int = 0, reason: str = "disk swap", **extra: Any) -> dict[str, Any]:
    return n(name, state, alloc, drained=True, drain_reason=reason, drain_user="root",
             drain_time=DRAINED_AT.isoformat(), **extra)


PARTITION = {"name": "debug", "default": True, "state": "UP", "max_time": None, "total_cpus": 20}


def rows(nodes: list[dict[str, Any]], fmt: str = sinfo.DEFAULT_FORMAT, **kw: Any) -> str:
    items = sinfo.parse_format(fmt)
    partitions = [dict(PARTITION, nodes=[x["name"] for x in nodes])]
    header = kw.pop("header", True)
    built = sinfo.build_rows(partitions, nodes, per_node=kw.pop("per_node", False), summarize=False,
                             fields=sinfo._codes(items), **kw)
    return sinfo.render(items, built, header=header)


# ---- scontrol show node ----------------------------------------------------------------------
@pytest.mark.parametrize(("state", "alloc", "shown"), [
    ("IDLE", 0, "IDLE+DRAIN"), ("MIXED", 2, "MIXED+DRAIN"), ("ALLOCATED", 4, "ALLOCATED+DRAIN"),
    ("DOWN", 0, "DOWN+DRAIN"),
])
def test_scontrol_show_node_state_and_reason(state: str, alloc: int, shown: str) -> None:
    lines = layout([format_node(drained("n1", state, alloc))], oneliner=False).splitlines()
    assert f"   State={shown} ThreadsPerCore=1 TmpDisk=0 Weight=1 Owner=N/A MCS_label=N/A" in lines
    assert lines[-2:] == [f"   Reason=disk swap [root@{STAMP}]", ""]  # the record's last line, as Slurm's


def test_scontrol_show_node_without_drain() -> None:
    idle = layout([format_node(n("n1"))], oneliner=False)
    assert "   State=IDLE ThreadsPerCore=1" in idle and "Reason=" not in idle
    down = layout([format_node(n("n2", "DOWN", reason="Not responding"))], oneliner=False).splitlines()
    assert down[-2] == "   Reason=Not responding"  # no user or time is kept for it
    one = layout([format_node(drained("n1"))], oneliner=True)
    assert one.count("\n") == 1 and f" Reason=disk swap [root@{STAMP}]\n" in one


def test_scontrol_prints_no_control_character_of_a_stored_reason() -> None:
    text = layout([format_node(drained("n1", reason="a\x1b]0;x\x07b"))], oneliner=False)
    assert "\x1b" not in text and "Reason=a?]0;x?b [root@" in text


# ---- sinfo's states and groups ---------------------------------------------------------------
def test_sinfo_groups_drained_and_draining_apart() -> None:
    nodes = [n("n1"), drained("n2"), drained("n3", "MIXED", 2), n("n4", "MIXED", 1), drained("n5")]
    assert rows(nodes).splitlines() == [
        "PARTITION AVAIL  TIMELIMIT  NODES  STATE NODELIST",
        "debug*       up   infinite      1   idle n1",
        "debug*       up   infinite      2  drain n[2,5]",
        "debug*       up   infinite      1   drng n3",
        "debug*       up   infinite      1    mix n4",
    ]
    assert rows(nodes, "%T %N", header=False).splitlines() == [
        "idle n1", "drained n[2,5]", "draining n3", "mixed n4",
    ]
    # A drained node whose worker is gone: not responding as well, as Slurm marks it.
    assert rows([drained("n1", "DOWN")], "%t %T", header=False) == "drain* drained*\n"


def test_sinfo_counts_drained_cpus_as_other() -> None:
    nodes = [n("n1", "MIXED", 1), drained("n2", "MIXED", 3), drained("n3"), n("n4", "DOWN")]
    # Allocated: what jobs hold anywhere; idle: only on nodes that take jobs; other: the rest.
    assert rows(nodes, "%C %F", header=False, reasons=True) == "4/3/9/16 2/0/2/4\n"


def test_sinfo_reason_fields() -> None:
    nodes = [drained("n1"), drained("n2", "ALLOCATED", 4), n("n3", "DOWN", reason="Not responding"), n("n4")]
    out = rows(nodes, "%N|%E|%u|%H|%t", header=False, per_node=True).splitlines()
    assert out == [
        f"n1|disk swap|root|{STAMP}|drain",
        f"n2|disk swap|root|{STAMP}|drng",
        "n3|Not responding|Unknown|Unknown|down",
        "n4|none|Unknown|Unknown|idle",
    ]


def test_sinfo_list_reasons_layout() -> None:
    nodes = [drained("n1"), drained("n2", "MIXED", 1), drained("n3", reason="fan"),
             n("n4", "DOWN", reason="Not responding")]
    out = rows(nodes, sinfo.REASONS_FORMAT, reasons=True)
    assert out.splitlines() == [
        "REASON               USER      TIMESTAMP           NODELIST",
        f"disk swap            root      {STAMP} n[1-2]",
        f"fan                  root      {STAMP} n3",
        "Not responding       Unknown   Unknown             n4",
    ]
    # -l: the user's uid and the compact state, which then groups too.
    long = rows(nodes, sinfo.LONG_REASONS_FORMAT, reasons=True, header=False).splitlines()
    assert [line.split()[-2:] for line in long] == [["drain", "n1"], ["drng", "n2"], ["drain", "n3"], ["down", "n4"]]
    assert long[0].startswith("disk swap            root")


def test_sinfo_list_reasons_spans_partitions() -> None:
    node = drained("n1")
    partitions = [dict(PARTITION, nodes=["n1"]), dict(PARTITION, name="gpu", default=False, nodes=["n1"])]
    items = sinfo.parse_format(sinfo.REASONS_FORMAT)
    built = sinfo.build_rows(partitions, [node], per_node=False, summarize=False, fields=sinfo._codes(items),
                             reasons=True)
    assert len(built) == 1 and [x["name"] for x in built[0]["nodes"]] == ["n1"]


@pytest.mark.parametrize(("text", "selected"), [
    ("drain", ["n2", "n3", "n4"]),
    ("drained", ["n2", "n4"]),
    ("draining", ["n3"]),
    ("drng", ["n3"]),
    ("drained,draining", ["n2", "n3", "n4"]),
    ("idle", ["n1", "n2"]),  # the base state: a drained idle node is idle too (sinfo.c, _filter_out)
    ("idle&drain", ["n2"]),
    ("down", ["n4"]),
    (sinfo.REASONS_STATES, ["n2", "n3", "n4"]),
])
def test_sinfo_states_select_drained_nodes(text: str, selected: list[str]) -> None:
    nodes = [n("n1"), drained("n2"), drained("n3", "MIXED", 1), drained("n4", "DOWN")]
    _, chosen = sinfo._select({}, [], nodes, None, sinfo.parse_states(text))
    assert [x["name"] for x in chosen] == selected


def test_sinfo_dead_and_responding() -> None:
    nodes = [n("n1"), drained("n2", "DOWN"), n("n3", "DOWN")]
    assert [x["name"] for x in sinfo._select({"dead": None}, [], nodes, None, None)[1]] == ["n2", "n3"]
    assert [x["name"] for x in sinfo._select({"responding": None}, [], nodes, None, None)[1]] == ["n1"]


def test_sinfo_json_states_and_reason() -> None:
    partition = dict(PARTITION, nodes=["n1", "n2"])
    doc = sinfo_document([partition], [drained("n1", "MIXED", 1), n("n2")], ["sinfo", "--json"])
    first, second = doc["sinfo"]
    assert first["node"]["state"] == ["MIXED", "DRAIN"] and second["node"]["state"] == ["IDLE"]
    assert first["reason"] == {"description": "disk swap", "time": int(DRAINED_AT.timestamp()), "user": "root"}
    assert first["cpus"] | {} == first["cpus"] and (first["cpus"]["allocated"], first["cpus"]["idle"],
                                                   first["cpus"]["other"]) == (1, 0, 3)
    assert (first["nodes"]["allocated"], first["nodes"]["idle"], first["nodes"]["other"]) == (1, 0, 0)


# ---- scontrol update NodeName= ----------------------------------------------------------------
def test_update_node_parsing() -> None:
    assert parse_update(["NodeName=n[1-2],gpu1", "State=DRAIN", 'Reason="disk swap"']) == (
        "n[1-2],gpu1", "DRAIN", "disk swap")
    assert parse_update(["node=n1", "state=dra", "r=fan"]) == ("n1", "DRAIN", "fan")
    assert parse_update(["NodeName=n1", "State=resume"]) == ("n1", "RESUME", None)
    assert parse_update(["NodeName=n1", "State=UND"]) == ("n1", "UNDRAIN", None)
    assert is_node_key("NodeName") and is_node_key("nod") and not is_node_key("no") and not is_node_key("State")


@pytest.mark.parametrize(("args", "message"), [
    (["NodeName=n1", "State=DRAIN"], "You must specify a reason when DOWNING or DRAINING a node. Request denied"),
    (["NodeName=n1", "State=DRAIN", 'Reason=""'],
     "You must specify a reason when DOWNING or DRAINING a node. Request denied"),
    (["NodeName=n1", "State=DOWN", "Reason=x"],
     "Invalid input: State=DOWN\nRequest aborted\nValid states are: DRAIN RESUME UNDRAIN\n"
     "Not all states are valid given a node's prior state"),
    (["NodeName=n1", "State=dr"], "Invalid input: State=dr\nRequest aborted"),
    (["NodeName=n1", "Weight=5"], "Update of this parameter is not supported: Weight=5\nRequest aborted"),
    (["NodeName=n1", "NodeAddr=x"], "Update of this parameter is not supported: NodeAddr=x\nRequest aborted"),
    (["NodeName=n1", "State"], "Invalid input: State  Request aborted"),
    (["NodeName=n1"], "No changes specified"),
    (["NodeName=", "State=RESUME"], "No node name given (NodeName=<name>)\nRequest aborted"),
])
def test_update_node_refusals(args: list[str], message: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_update(args)
    assert str(refused.value).startswith(message)
