from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.domain.arrays import ArraySpec, format_array_indices, parse_array_spec
from conductor.domain.errors import SpecError


@pytest.mark.parametrize(
    ("text", "indices", "max_running"),
    [
        ("7", (7,), None),
        ("0-3", (0, 1, 2, 3), None),
        ("1,3,5", (1, 3, 5), None),
        ("0-15:4", (0, 4, 8, 12), None),
        ("1-5,10,20-30:2", (1, 2, 3, 4, 5, 10, 20, 22, 24, 26, 28, 30), None),
        ("3,1,2,3,2", (1, 2, 3), None),
        ("0-15%4", tuple(range(16)), 4),
        ("1,3%1", (1, 3), 1),
        (" 1-3 ", (1, 2, 3), None),
        ("5-5", (5,), None),
        ("0-10:20", (0,), None),
        ("4000000", (4_000_000,), None),
    ],
)
def test_parse_valid(text: str, indices: tuple[int, ...], max_running: int | None) -> None:
    assert parse_array_spec(text) == ArraySpec(indices=indices, max_running=max_running)


def test_parse_zero_to_ninety_nine() -> None:
    spec = parse_array_spec("0-99")
    assert spec.indices == tuple(range(100))
    assert spec.max_running is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty array specification"),
        ("%4", "no indexes before %"),
        ("-1", "cannot be negative"),
        ("1--3", "cannot be negative"),
        ("5-1", "range '5-1' ends before it starts"),
        ("0-15:0", "step in '0-15:0' must be at least 1"),
        ("1,,2", "bad element ''"),
        ("1,", "bad element ''"),
        ("a", "bad element 'a'"),
        ("1-", "bad element '1-'"),
        ("1-5:", "bad element '1-5:'"),
        ("1:2", "bad element '1:2'"),
        ("1.5", "bad element '1.5'"),
        ("1-3%0", "%0 must be at least 1"),
        ("0-1%2147483648", "%N must be at most 2147483647"),
        ("0-1%99999999999999999999", "%N must be at most 2147483647"),
        ("0-1%" + "9" * 5000, "%N must be at most 2147483647"),  # past int()'s own digit limit
        ("1-3%x", "part after % must be a whole number"),
        ("1-3%", "part after % must be a whole number"),
        ("1-3%2%3", "part after % must be a whole number"),
        ("0-100000", "more than the maximum of 100000 tasks"),
        ("0-99999,100000", "more than the maximum of 100000 tasks"),
        ("4000001", "index 4000001 is above the maximum index 4000000"),
        ("0-99999999999", "above the maximum index"),
        ("\u0661", "bad element"),
    ],
)
def test_parse_errors(text: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_array_spec(text)
    assert info.value.field == "array"
    assert fragment in info.value.message
    assert str(info.value).startswith("array: ")


def test_the_running_limit_fits_every_database() -> None:
    assert parse_array_spec("0-1%2147483647").max_running == 2**31 - 1
    assert parse_array_spec("0-1%0002").max_running == 2
    assert parse_array_spec("0-1%" + "0" * 5000 + "3").max_running == 3


def test_custom_limits_and_field() -> None:
    assert parse_array_spec("0-9", max_tasks=10).indices == tuple(range(10))
    with pytest.raises(SpecError) as info:
        parse_array_spec("0-10", max_tasks=10, field="--array")
    assert str(info.value) == "--array: invalid array '0-10': more than the maximum of 10 tasks"
    with pytest.raises(SpecError) as info:
        parse_array_spec("1001", max_index=1000)
    assert "index 1001 is above the maximum index 1000" in info.value.message


def test_huge_range_fails_fast() -> None:
    # Would need gigabytes if materialised before the count check.
    with pytest.raises(SpecError, match="more than the maximum of 100000 tasks"):
        parse_array_spec("0-4000000")


@pytest.mark.parametrize(
    ("indices", "max_running", "text"),
    [
        ([0, 1, 2, 3, 5, 7, 8, 9], None, "0-3,5,7-9"),
        ([0, 1, 2, 3], 2, "0-3%2"),
        ([5], None, "5"),
        ([], None, ""),
        ([9, 1, 5, 1], None, "1,5,9"),
        ([0, 4, 8], None, "0,4,8"),
        ([0, 5, 10], None, "0,5,10"),
        ([0, 4, 8, 12], None, "0-12:4"),
        ([0, 4, 8, 12, 16], None, "0-16:4"),
        (list(range(0, 21, 2)), None, "0-20:2"),
        (list(range(0, 21, 2)), 3, "0-20:2%3"),
        (list(range(21)), None, "0-20"),
        ([0, 2, 4, 5, 20], None, "0,2,4-5,20"),
        ([0, 11], None, "0-11:11"),
        ([0, 10], None, "0,10"),
    ],
)
def test_format(indices: list[int], max_running: int | None, text: str) -> None:
    assert format_array_indices(indices, max_running=max_running) == text


def test_format_rejects_negative() -> None:
    with pytest.raises(ValueError):
        format_array_indices([-1, 2])


def test_spec_str_is_formatted() -> None:
    assert str(parse_array_spec("0-3,5,7-9%2")) == "0-3,5,7-9%2"


@given(
    st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=300),
    st.one_of(st.none(), st.integers(min_value=1, max_value=1000)),
)
def test_format_parse_round_trip(indices: list[int], max_running: int | None) -> None:
    text = format_array_indices(indices, max_running=max_running)
    spec = parse_array_spec(text)
    assert spec.indices == tuple(sorted(set(indices)))
    assert spec.max_running == max_running
    assert str(spec) == text


@given(
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=1, max_value=50),
)
def test_stepped_range(lo: int, span: int, step: int) -> None:
    hi = lo + span
    assert parse_array_spec(f"{lo}-{hi}:{step}").indices == tuple(range(lo, hi + 1, step))


@given(st.text(max_size=15))
def test_parse_only_raises_spec_error(text: str) -> None:
    try:
        spec = parse_array_spec(text)
    except SpecError as err:
        assert err.field == "array"
    else:
        assert list(spec.indices) == sorted(set(spec.indices))
        assert all(0 <= i <= 4_000_000 for i in spec.indices)
