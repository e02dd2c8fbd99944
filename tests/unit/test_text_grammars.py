"""Grammars that used `^...$` with `match`, or `\\d` without ASCII: `$` also matches before a
final newline, and `\\d` takes every script's digits, which int() reads ('١٠' is ten). Found by
a fuzzing review; each is now refused with its field named."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conductor.domain.errors import MAX_VALUE_TEXT, SpecError
from conductor.domain.memory import parse_memory_mb
from conductor.domain.retention import parse_retention
from conductor.domain.signals import parse_signal, parse_signal_spec
from conductor.domain.timespec import parse_time_limit
from conductor.errors import Invalid
from conductor.services.accounting import check_name


@pytest.mark.parametrize("name", ["bob\n", "bob\r\n", "b\u0131b", "\u0661"])
def test_an_accounting_name_is_ascii_and_whole(name: str) -> None:
    with pytest.raises(Invalid) as caught:
        check_name(name, "user")
    assert caught.value.field == "user"
    assert check_name("bob.2_x-y", "user") == "bob.2_x-y"


@pytest.mark.parametrize("text", ["USR1@\u0661\u0660", "USR\u0661"])
def test_a_signal_spec_takes_ascii_digits(text: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_signal_spec(text)
    assert caught.value.field == "signal"


def test_a_signal_time_of_any_length_is_refused_by_its_rule() -> None:
    # int() refuses over 4,300 digits with its own ValueError (a traceback in the CLI).
    for text in ("USR1@" + "9" * 5000, "USR1@65536"):
        with pytest.raises(SpecError, match="above the maximum of 65535 seconds"):
            parse_signal_spec(text)
    assert parse_signal_spec("USR1@" + "0" * 5000 + "120").seconds == 120
    assert parse_signal_spec("B:USR1@65535").seconds == 65535


def test_a_retention_takes_ascii_digits() -> None:
    with pytest.raises(Invalid) as caught:
        parse_retention("\u0663days")
    assert caught.value.field == "purge_job_after"
    assert parse_retention("3days") == parse_retention("3 days")


def test_a_token_user_name_is_whole(tmp_path: Path) -> None:
    env = {**os.environ, "CONDUCTOR_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "conductor", "token", "create", "--user", "bob\n"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "--user: 'bob\n' is not a valid user name" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("parse", "field"), [(parse_time_limit, "time_limit"), (parse_memory_mb, "memory_per_node"), (parse_signal, "signal")]
)
def test_a_value_longer_than_any_real_one_is_refused_by_its_rule(parse: Callable[..., object], field: str) -> None:
    # Digits past int()'s own limit (4,300) were a ValueError: a 500, or a traceback in the CLI.
    for text in ("1" * 5000, "1" * (MAX_VALUE_TEXT + 1)):
        with pytest.raises(SpecError, match=f"longer than {MAX_VALUE_TEXT} characters") as caught:
            parse(text)
        assert caught.value.field == field
    assert parse_time_limit("365-00:00:00") == 365 * 86400


@pytest.mark.parametrize(
    ("name", "value"),
    [("CONDUCTOR_PARTITION", "a b\x01"), ("CONDUCTOR_PARTITION", "abc\n"), ("CONDUCTOR_MEMORY_MB", "9" * 20)],
)
def test_settings_follow_the_rules_of_what_they_name(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A default partition no `sbatch -p` could name; a memory no database column holds (`up`
    # died registering its node).
    from pydantic import ValidationError

    from conductor.settings import Settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert caught.value.errors()[0]["loc"] == (name.removeprefix("CONDUCTOR_").lower(),)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_interval_settings_are_finite_numbers(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # "inf" was told "less than or equal to 3600", which it is not the problem with.
    from pydantic import ValidationError

    from conductor.settings import Settings

    monkeypatch.setenv("CONDUCTOR_CHECK_INTERVAL", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    (error,) = caught.value.errors()
    assert error["loc"] == ("check_interval",) and error["msg"] == "Input should be a finite number"


def test_the_partition_setting_is_a_list_of_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from conductor.settings import Settings

    for value in ("debug", "debug,node-a", "debug, gpu"):
        monkeypatch.setenv("CONDUCTOR_PARTITION", value)
        assert Settings().partition == value


@pytest.mark.parametrize(
    ("text", "maximum", "expected"),
    [("0", 9, 0), ("007", 9, 7), ("255", 255, 255), ("256", 255, None), ("9" * 5000, 255, None),
     ("0" * 5000 + "3", 9, 3), ("\u0663", 9, None), ("\u00b2", 9, None), ("", 9, None), ("-1", 9, None),
     (" 1", 9, None), ("1_0", 99, None)],
)
def test_a_whole_number_is_ascii_digits_read_once_it_fits(text: str, maximum: int, expected: int | None) -> None:
    from conductor.domain.numbers import whole_number

    assert whole_number(text, maximum) == expected
