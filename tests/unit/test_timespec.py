from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.domain.errors import SpecError
from conductor.domain.timespec import (
    MAX_TIME_LIMIT_SECONDS,
    format_duration,
    format_elapsed,
    format_time_limit,
    parse_begin_time,
    parse_time_limit,
)

# --- parse_time_limit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1", 60),
        ("90", 5400),
        ("5:00", 300),
        ("0:30", 30),
        ("90:30", 5430),
        ("1:00:00", 3600),
        ("36:00:00", 129600),
        ("01:02:03", 3723),
        ("1:2:3", 3723),
        ("1-0", 86400),
        ("2-12", 2 * 86400 + 12 * 3600),
        ("1-02:03", 86400 + 2 * 3600 + 3 * 60),
        ("2-03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("365-00:00:00", 365 * 86400),
        ("525600", 365 * 86400),
        ("  10  ", 600),
    ],
)
def test_parse_time_limit_valid_forms(text: str, seconds: int) -> None:
    assert parse_time_limit(text) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "UNLIMITED",
        "unlimited",
        "Infinite",
        "INFINITE",
        "0",
        "0:00",
        "0-0",
        "00:00:00",
        "-1",
        0,
        -1,
        None,
    ],
)
def test_parse_time_limit_unlimited(value: str | int | None) -> None:
    assert parse_time_limit(value) is None


@pytest.mark.parametrize(("minutes", "seconds"), [(1, 60), (30, 1800), (1440, 86400)])
def test_parse_time_limit_int_is_minutes(minutes: int, seconds: int) -> None:
    assert parse_time_limit(minutes) == seconds


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty time"),
        ("   ", "empty time"),
        ("abc", "expected minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED"),
        ("1:2:3:4", "invalid time '1:2:3:4'; expected minutes, MM:SS"),
        ("1-2-3", "expected minutes"),
        ("1.5", "expected minutes"),
        ("1:", "expected minutes"),
        (":5", "expected minutes"),
        ("1-", "expected minutes"),
        ("5m", "expected minutes"),
        ("\u0661\u0660", "expected minutes"),  # Arabic-Indic digits are not Slurm digits
        ("+5", "expected minutes"),
        ("1:75:00", "minutes field is 75, must be 0-59"),
        ("10:60", "seconds field is 60, must be 0-59"),
        ("1:00:60", "seconds field is 60"),
        ("1-24", "hours field is 24, must be 0-23"),
        ("1-0:60", "minutes field is 60"),
        ("-5", "cannot be negative"),
        ("-1:00", "cannot be negative"),
        ("365-00:00:01", "longer than the maximum of 365 days"),
        ("366-0", "longer than the maximum of 365 days"),
        ("525601", "longer than the maximum of 365 days"),
    ],
)
def test_parse_time_limit_errors(value: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_time_limit(value)
    assert info.value.field == "time_limit"
    assert fragment in info.value.message
    assert str(info.value).startswith("time_limit: ")


def test_parse_time_limit_error_message_matches_contract() -> None:
    with pytest.raises(SpecError) as info:
        parse_time_limit("1:2:3:4")
    assert str(info.value) == (
        "time_limit: invalid time '1:2:3:4'; expected minutes, MM:SS, HH:MM:SS, D-HH, "
        "D-HH:MM, D-HH:MM:SS or UNLIMITED"
    )


@pytest.mark.parametrize("value", [-5, 525601, True, 1.5, [1]])
def test_parse_time_limit_bad_non_strings(value: object) -> None:
    with pytest.raises(SpecError) as info:
        parse_time_limit(value)  # type: ignore[arg-type]
    assert info.value.field == "time_limit"


def test_parse_time_limit_uses_caller_field_name() -> None:
    with pytest.raises(SpecError) as info:
        parse_time_limit("soon", field="--time")
    assert info.value.field == "--time"
    assert str(info.value).startswith("--time: invalid time 'soon'")


@given(st.integers(min_value=1, max_value=MAX_TIME_LIMIT_SECONDS))
def test_format_duration_round_trips_through_parse(seconds: int) -> None:
    assert parse_time_limit(format_duration(seconds)) == seconds


@given(st.integers(min_value=1, max_value=MAX_TIME_LIMIT_SECONDS))
def test_format_elapsed_round_trips_through_parse(seconds: int) -> None:
    assert parse_time_limit(format_elapsed(seconds)) == seconds


@given(st.integers(min_value=1, max_value=MAX_TIME_LIMIT_SECONDS // 60))
def test_int_and_string_minutes_agree(minutes: int) -> None:
    assert parse_time_limit(minutes) == parse_time_limit(str(minutes)) == minutes * 60


@given(
    st.integers(0, 364),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)
def test_days_hours_minutes_seconds(d: int, h: int, m: int, s: int) -> None:
    expected = d * 86400 + h * 3600 + m * 60 + s
    result = parse_time_limit(f"{d}-{h:02d}:{m:02d}:{s:02d}")
    assert result == (expected or None)


@given(st.text(max_size=20))
def test_parse_time_limit_only_raises_spec_error(text: str) -> None:
    try:
        result = parse_time_limit(text)
    except SpecError as err:
        assert err.field == "time_limit"
    else:
        assert result is None or 0 < result <= MAX_TIME_LIMIT_SECONDS


# --- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00"),
        (5, "0:05"),
        (59, "0:59"),
        (60, "1:00"),
        (300, "5:00"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (3723, "1:02:03"),
        (86399, "23:59:59"),
        (86400, "1-00:00:00"),
        (2 * 86400 + 3 * 3600 + 4 * 60 + 5, "2-03:04:05"),
        (MAX_TIME_LIMIT_SECONDS, "365-00:00:00"),
        (MAX_TIME_LIMIT_SECONDS + 1, "INVALID"),
        (-1, "INVALID"),
    ],
)
def test_format_duration_like_squeue(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "00:00:00"),
        (5, "00:00:05"),
        (3723, "01:02:03"),
        (86400, "1-00:00:00"),
        (400 * 86400 + 1, "400-00:00:01"),
        (-1, "INVALID"),
    ],
)
def test_format_elapsed_like_sacct(seconds: int, text: str) -> None:
    assert format_elapsed(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "squeue", "sacct"),
    [
        (None, "UNLIMITED", "UNLIMITED"),
        (300, "5:00", "00:05:00"),
        (3600, "1:00:00", "01:00:00"),
        (86400, "1-00:00:00", "1-00:00:00"),
    ],
)
def test_format_time_limit(seconds: int | None, squeue: str, sacct: str) -> None:
    assert format_time_limit(seconds) == squeue
    assert format_time_limit(seconds, style="sacct") == sacct


# --- parse_begin_time ------------------------------------------------------------------------

NOW = datetime(2024, 5, 10, 10, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("now+60", NOW + timedelta(seconds=60)),
        ("now+60seconds", NOW + timedelta(seconds=60)),
        ("now+1second", NOW + timedelta(seconds=1)),
        ("now+10minutes", NOW + timedelta(minutes=10)),
        ("now+1minute", NOW + timedelta(minutes=1)),
        ("now + 10 Minutes", NOW + timedelta(minutes=10)),
        ("now+2hours", NOW + timedelta(hours=2)),
        ("now+1hour", NOW + timedelta(hours=1)),
        ("now+3days", NOW + timedelta(days=3)),
        ("now+1day", NOW + timedelta(days=1)),
        ("now+2weeks", NOW + timedelta(weeks=2)),
        ("now+1WEEK", NOW + timedelta(weeks=1)),
        ("now-1hour", NOW - timedelta(hours=1)),
        ("10:31", datetime(2024, 5, 10, 10, 31, tzinfo=UTC)),
        ("23:59:30", datetime(2024, 5, 10, 23, 59, 30, tzinfo=UTC)),
        ("10:30", datetime(2024, 5, 11, 10, 30, tzinfo=UTC)),
        ("09:00", datetime(2024, 5, 11, 9, 0, tzinfo=UTC)),
        ("3:00 PM", datetime(2024, 5, 10, 15, 0, tzinfo=UTC)),
        ("3:00pm", datetime(2024, 5, 10, 15, 0, tzinfo=UTC)),
        ("12:00 PM", datetime(2024, 5, 10, 12, 0, tzinfo=UTC)),
        ("12:00 AM", datetime(2024, 5, 11, 0, 0, tzinfo=UTC)),
        ("11:00 am", datetime(2024, 5, 10, 11, 0, tzinfo=UTC)),
        ("midnight", datetime(2024, 5, 11, 0, 0, tzinfo=UTC)),
        ("noon", datetime(2024, 5, 10, 12, 0, tzinfo=UTC)),
        ("elevenses", datetime(2024, 5, 10, 11, 0, tzinfo=UTC)),
        ("fika", datetime(2024, 5, 10, 15, 0, tzinfo=UTC)),
        ("teatime", datetime(2024, 5, 10, 16, 0, tzinfo=UTC)),
        ("TeaTime", datetime(2024, 5, 10, 16, 0, tzinfo=UTC)),
        ("Today", datetime(2024, 5, 10, 0, 0, tzinfo=UTC)),
        ("TOMORROW", datetime(2024, 5, 11, 0, 0, tzinfo=UTC)),
        ("today", datetime(2024, 5, 10, 0, 0, tzinfo=UTC)),
        ("tomorrow", datetime(2024, 5, 11, 0, 0, tzinfo=UTC)),
        ("tomorrow noon", datetime(2024, 5, 11, 12, 0, tzinfo=UTC)),
        ("noon tomorrow", datetime(2024, 5, 11, 12, 0, tzinfo=UTC)),
        ("today 09:00", datetime(2024, 5, 10, 9, 0, tzinfo=UTC)),
        ("2024-06-01", datetime(2024, 6, 1, 0, 0, tzinfo=UTC)),
        ("2024-06-01T08:00", datetime(2024, 6, 1, 8, 0, tzinfo=UTC)),
        ("2024-06-01T08:00:30", datetime(2024, 6, 1, 8, 0, 30, tzinfo=UTC)),
        ("2023-01-01", datetime(2023, 1, 1, 0, 0, tzinfo=UTC)),
        ("06/01", datetime(2024, 6, 1, 0, 0, tzinfo=UTC)),
        ("05/11", datetime(2024, 5, 11, 0, 0, tzinfo=UTC)),
        ("05/10", datetime(2025, 5, 10, 0, 0, tzinfo=UTC)),
        ("05/09", datetime(2025, 5, 9, 0, 0, tzinfo=UTC)),
        ("01/15/25", datetime(2025, 1, 15, 0, 0, tzinfo=UTC)),
        ("05.11", datetime(2024, 5, 11, 0, 0, tzinfo=UTC)),
        ("0601", datetime(2024, 6, 1, 0, 0, tzinfo=UTC)),
        ("060125", datetime(2025, 6, 1, 0, 0, tzinfo=UTC)),
        ("05/11-10:00", datetime(2024, 5, 11, 10, 0, tzinfo=UTC)),
        ("05/10-11:00", datetime(2024, 5, 10, 11, 0, tzinfo=UTC)),
        ("05/10-10:00", datetime(2025, 5, 10, 10, 0, tzinfo=UTC)),
        ("uts1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
    ],
)
def test_parse_begin_time_forms(text: str, expected: datetime) -> None:
    assert parse_begin_time(text, now=NOW) == expected


def test_parse_begin_time_keeps_the_timezone_of_now() -> None:
    tz = timezone(timedelta(hours=2))
    now = datetime(2024, 5, 10, 23, 0, tzinfo=tz)
    result = parse_begin_time("teatime", now=now)
    assert result == datetime(2024, 5, 11, 16, 0, tzinfo=tz)
    assert result.utcoffset() == timedelta(hours=2)
    assert parse_begin_time("tomorrow", now=now) == datetime(2024, 5, 11, 0, 0, tzinfo=tz)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty time"),
        ("later", "expected now[+count"),
        ("now+", "expected now[+count"),
        ("now+5fortnights", "unknown unit 'fortnights'"),
        ("now+5min", "unknown unit 'min'"),
        ("25:00", "hour must be 0-23"),
        ("10:60", "minute and second 0-59"),
        ("10:00:61", "minute and second 0-59"),
        ("13:00 PM", "13 PM is not an hour"),
        ("13:00 AM", "13 AM is not an hour"),
        ("2024-13-01", "month must be 1-12"),
        ("2024-02-30", "2024-02 has no day 30"),
        ("13/01", "month must be 1-12"),
        ("10:30 11:00", "more than one time of day"),
        ("today tomorrow", "more than one date"),
        ("2024-01-01 2024-01-02", "more than one date"),
        ("uts12", "epoch seconds >= 1000000"),
        ("2024-01-011", "expected now[+count"),
        ("now+1000000weeks", "more than 100 years"),
    ],
)
def test_parse_begin_time_errors(text: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_begin_time(text, now=NOW)
    assert info.value.field == "begin"
    assert fragment in info.value.message
    assert str(info.value).startswith("begin: ")


def test_parse_begin_time_custom_field() -> None:
    with pytest.raises(SpecError) as info:
        parse_begin_time("whenever", now=NOW, field="--begin")
    assert str(info.value).startswith("--begin: invalid time 'whenever'")


def test_parse_begin_time_requires_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_begin_time("now", now=datetime(2024, 1, 1))


@given(st.integers(min_value=0, max_value=10**7))
def test_now_plus_seconds(offset: int) -> None:
    assert parse_begin_time(f"now+{offset}", now=NOW) == NOW + timedelta(seconds=offset)


@given(
    st.integers(0, 23),
    st.integers(0, 59),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
    ),
)
def test_clock_time_is_next_occurrence(hour: int, minute: int, now: datetime) -> None:
    result = parse_begin_time(f"{hour:02d}:{minute:02d}", now=now)
    assert (result.hour, result.minute, result.second) == (hour, minute, 0)
    assert now < result <= now + timedelta(days=1)


@given(st.text(max_size=25))
def test_parse_begin_time_only_raises_spec_error(text: str) -> None:
    try:
        result = parse_begin_time(text, now=NOW)
    except SpecError as err:
        assert err.field == "begin"
    else:
        assert result.tzinfo is UTC


@pytest.mark.parametrize("text", ["tomorrow", "now+1day", "01:00"])
def test_parse_begin_time_out_of_range_is_a_spec_error(text: str) -> None:
    edge = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    with pytest.raises(SpecError, match="date out of range"):
        parse_begin_time(text, now=edge)
