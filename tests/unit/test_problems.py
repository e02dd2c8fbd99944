"""Validation errors as clients read them: a union's members are merged into one error on the
field (api/problems.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from conductor.api.problems import Problem, problems
from conductor.services.requests import JobDescription


def refused(**job: Any) -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        JobDescription(**job)
    return problems(caught.value.errors())


def test_a_value_of_no_member_is_one_error_on_the_field() -> None:
    assert refused(nodes=[1]) == [Problem("nodes", "expected an integer or a string")]
    assert refused(time_limit={"a": 1}) == [Problem("time_limit", "expected a string or an integer")]
    assert refused(environment="A=1") == [Problem("environment", "expected an object or a list")]


def test_a_value_of_a_members_shape_gets_that_members_errors() -> None:
    assert refused(environment=[1, "B=2"]) == [Problem("environment.0", "Input should be a valid string")]
    assert refused(environment={"A": 1}) == [Problem("environment.A", "Input should be a valid string")]


def test_other_errors_pass_through_without_the_value_error_prefix() -> None:
    found = refused(ntasks=0, mail_type="FOO")
    assert [p.field for p in found] == ["ntasks", "mail_type"]
    assert found[1].message.startswith("'FOO' is not a mail type")
