"""The checks behind tests/acceptance/test_api_inputs.py, one input at a time."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from conductor.api.accounting import AccountChange, AccountSpec, QosBody, _tres_items
from conductor.api.control import JobUpdate, SignalRequest
from conductor.api.models import JobDescription
from conductor.api.slurmrestd import MAX_NODE_COUNT, to_job_description
from conductor.domain.errors import SpecError
from conductor.errors import Invalid
from conductor.services.jobs import WHOLE_ARRAY, parse_job_ref
from conductor.services.submission import _check_nodes, _environment


@pytest.mark.parametrize("value", ["abc", {"number": "2"}, [1], 1.5, True, -1, MAX_NODE_COUNT + 1, float("inf"), float("nan")])
def test_maximum_nodes_refuses_what_is_not_a_count(value: Any) -> None:
    with pytest.raises(SpecError) as caught:
        to_job_description({"maximum_nodes": value})
    assert caught.value.field == "maximum_nodes"


def test_maximum_nodes_takes_counts_and_wrapped_numbers() -> None:
    assert to_job_description({"maximum_nodes": 1}) == ({}, [])
    assert to_job_description({"maximum_nodes": 0, "minimum_nodes": 1}) == ({"nodes": 1}, [])  # 0: none
    assert to_job_description({"maximum_nodes": {"number": 3}})[0] == {"nodes": "1-3"}
    assert to_job_description({"maximum_nodes": {"infinite": True}})[0] == {}
    assert to_job_description({"maximum_nodes": 4, "minimum_nodes": 2})[0] == {"nodes": "2-4"}
    assert to_job_description({"nodes": "1-2", "maximum_nodes": 4})[0] == {"nodes": "1-2"}
    with pytest.raises(SpecError, match="1 is below the minimum node count 2"):
        to_job_description({"minimum_nodes": 2, "maximum_nodes": 1})


@pytest.mark.parametrize(
    ("value", "rule"),
    [(["bogus"], "unknown flag 'bogus'"), ("nonsense", "unknown flag"), (["FALSE", "USER"], "FALSE contradicts"), ([1], "list")],
)
def test_slurmrestd_exclusive_takes_its_flags_only(value: Any, rule: str) -> None:
    # Any value but ["false"] made the job take a whole node.
    with pytest.raises(SpecError, match=rule) as caught:
        to_job_description({"exclusive": value})
    assert caught.value.field == "exclusive"


def test_slurmrestd_exclusive_flags_and_open_mode() -> None:
    for flags, exclusive in (([], False), (["false"], False), (["FALSE", "false"], False), (["TRUE"], True),
                             (["user"], True), (["MCS", "TOPO"], True), ("true", True)):
        assert to_job_description({"exclusive": flags})[0] == {"exclusive": exclusive}, flags
    assert to_job_description({"open_mode": ["APPEND", "append"]})[0] == {"open_mode": "append"}
    with pytest.raises(SpecError, match="APPEND, TRUNCATE contradict") as caught:
        to_job_description({"open_mode": ["append", "truncate"]})
    assert caught.value.field == "open_mode"


@pytest.mark.parametrize("field", ["ntasks", "ntasks_per_node", "nodes", "cpus_per_task", "memory_per_node",
                                   "memory_per_cpu", "time_limit", "priority", "nice"])
def test_booleans_are_not_numbers_of_a_job(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        JobDescription.model_validate({field: True})
    assert caught.value.errors()[0]["loc"] == (field,)
    JobDescription.model_validate({field: 2})


def test_booleans_are_not_numbers_of_a_change() -> None:
    for body, model in (({"time_limit": False}, JobUpdate), ({"nice": True}, JobUpdate), ({"signal": True}, SignalRequest),
                        ({"fairshare": True}, AccountChange), ({"priority": True}, QosBody)):
        with pytest.raises(ValidationError) as caught:
            model.model_validate(body)
        assert caught.value.errors()[0]["loc"] == (next(iter(body)),)


def test_tres_objects_refuse_booleans_and_a_name_twice() -> None:
    with pytest.raises(Invalid, match="cpu: must be a count"):
        _tres_items({"cpu": True}, "grp_tres")
    with pytest.raises(Invalid, match="'cpu' is given twice"):
        _tres_items({"cpu": 1, "CPU": 2}, "grp_tres")
    assert _tres_items({"CPU": 1, "mem": -1}, "grp_tres") == {"cpu": 1, "mem": None}


@pytest.mark.parametrize("text", ["a\x00b", "\x1b[2J", "bell\x07", "line\n"])
def test_accounting_free_text_refuses_control_characters(text: str) -> None:
    for model, body in ((AccountSpec, {"name": "a", "description": text}), (AccountSpec, {"name": "a", "organization": text}),
                        (AccountChange, {"description": text}), (QosBody, {"description": text})):
        with pytest.raises(ValidationError, match="control characters"):
            model.model_validate(body)


@pytest.mark.parametrize("name", ["FOO\n", "\x1b]0;x\x07", "A\u0085", "", "A=B"])
def test_environment_names_are_what_execve_can_pass(name: str) -> None:
    with pytest.raises(SpecError, match="variable name") as caught:
        _environment({name: "x"}, 10_000)
    assert not any(c in str(caught.value) for c in "\n\x1b\x07\u0085")  # shown with '?'
    # Exported shell functions (how Lmod and Environment Modules give jobs `module`) and names
    # bash cannot expand pass, as in Slurm.
    names = ["A_1", "BASH_FUNC_module%%", "A-B", "F\u212a", "\u0661A"]
    assert _environment(dict.fromkeys(names, "x"), 10_000) == dict.fromkeys(names, "x")


@pytest.mark.parametrize("nodes", ["3-2", "\u0661", "1\n-2", "1" * 5000, "1-" + "2" * 10])
def test_node_counts(nodes: str) -> None:
    with pytest.raises(SpecError) as caught:
        _check_nodes(nodes)
    assert caught.value.field == "nodes"
    _check_nodes("1-1")
    _check_nodes(" 1-2 ")


@pytest.mark.parametrize("job_id", ["\u0661", "\uff11", "1\n", "1_\u0661", "1\t", "\u00b2", "1_2\n"])
def test_job_references_take_ascii_digits_only(job_id: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_job_ref(job_id)
    assert caught.value.field == "job_id"


def test_job_references() -> None:
    assert parse_job_ref(" 12 ") == (12, None)
    assert parse_job_ref("12_3") == (12, 3)
    assert parse_job_ref("12_*") == (12, WHOLE_ARRAY)


def test_the_environment_limit_counts_bytes() -> None:
    # Names may be any text now: a name of 2-byte characters counts twice its length.
    with pytest.raises(SpecError, match="limit is 10 bytes"):
        _environment({"\u00e9" * 4: "x"}, 10)  # 8 + 1 + 2 bytes; 7 characters
    assert _environment({"eee": "xxxxx"}, 10) == {"eee": "xxxxx"}
