"""PurgeJobAfter values as slurmdbd.conf takes them (a bare number is months)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conductor.domain.retention import parse_retention
from conductor.errors import Invalid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", timedelta(days=360)),
        ("1month", timedelta(days=30)),
        ("6months", timedelta(days=180)),
        ("30days", timedelta(days=30)),
        ("1day", timedelta(days=1)),
        ("12hours", timedelta(hours=12)),
        ("12h", timedelta(hours=12)),
        ("90minutes", timedelta(minutes=90)),
        ("45seconds", timedelta(seconds=45)),
        ("2s", timedelta(seconds=2)),
        (" 7 DAYS ", timedelta(days=7)),
    ],
)
def test_values(text: str, expected: timedelta) -> None:
    assert parse_retention(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "not a number"), ("days", "not a number"), ("-1days", "not a number"), ("3weeks", "unknown unit 'weeks'"),
     ("0", "more than 0"), ("1.5days", "not a number")],
)
def test_refusals_name_the_field_and_the_rule(text: str, words: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_retention(text)
    assert caught.value.field == "purge_job_after"
    assert words in str(caught.value)
