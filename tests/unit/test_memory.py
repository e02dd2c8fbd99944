from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.domain.errors import SpecError
from conductor.domain.memory import MAX_MEMORY_MB, format_memory_mb, parse_memory_mb


@pytest.mark.parametrize(
    ("value", "mb"),
    [
        ("512", 512),
        (512, 512),
        ("512M", 512),
        ("512m", 512),
        ("512MB", 512),
        ("512mb", 512),
        ("4G", 4096),
        ("4g", 4096),
        ("4GB", 4096),
        ("4Gb", 4096),
        ("1T", 1048576),
        ("1tb", 1048576),
        ("1K", 1),
        ("1024K", 1),
        ("1025K", 2),
        ("2048KB", 2),
        ("0", 0),
        (0, 0),
        ("0G", 0),
        (" 4G ", 4096),
        ("1024T", MAX_MEMORY_MB),
        (MAX_MEMORY_MB, MAX_MEMORY_MB),
    ],
)
def test_parse_memory_valid(value: str | int, mb: int) -> None:
    assert parse_memory_mb(value) == mb


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty memory size"),
        ("   ", "empty memory size"),
        ("abc", "expected a whole number of megabytes, optionally with a K, M, G or T suffix"),
        ("1.5G", "expected a whole number of megabytes"),
        ("4X", "expected a whole number"),
        ("4P", "expected a whole number"),
        ("512B", "expected a whole number"),
        ("G", "expected a whole number"),
        ("4 G", "expected a whole number"),
        ("4GBB", "expected a whole number"),
        ("4\u212a", "expected a whole number"),  # KELVIN SIGN folds to "k" in Unicode regexes
        ("-1", "cannot be negative"),
        ("-4G", "cannot be negative"),
        (-1, "cannot be negative"),
        ("1025T", "more than the maximum of 1 PiB"),
        (MAX_MEMORY_MB + 1, "more than the maximum of 1 PiB"),
        (True, "invalid memory size True"),
    ],
)
def test_parse_memory_errors(value: str | int, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_memory_mb(value)
    assert info.value.field == "memory_per_node"
    assert fragment in info.value.message
    assert str(info.value).startswith("memory_per_node: ")


def test_parse_memory_uses_caller_field() -> None:
    with pytest.raises(SpecError) as info:
        parse_memory_mb("lots", field="--mem")
    assert str(info.value) == (
        "--mem: invalid memory size 'lots'; expected a whole number of megabytes, "
        "optionally with a K, M, G or T suffix (e.g. 512M, 4G)"
    )


@pytest.mark.parametrize(
    ("mb", "text"),
    [
        (0, "0"),
        (1, "1M"),
        (512, "512M"),
        (1000, "1000M"),
        (1023, "1023M"),
        (1024, "1G"),
        (1536, "1.50G"),
        (2560, "2.50G"),
        (4096, "4G"),
        (4000, "4000M"),
        (1025, "1025M"),
        (1048576, "1T"),
        (1572864, "1.50T"),
        (MAX_MEMORY_MB, "1P"),
    ],
)
def test_format_memory_like_sacct_reqmem(mb: int, text: str) -> None:
    assert format_memory_mb(mb) == text


def test_format_memory_rejects_negative() -> None:
    with pytest.raises(ValueError):
        format_memory_mb(-1)


@given(st.integers(min_value=0, max_value=MAX_MEMORY_MB))
def test_whole_formats_parse_back(mb: int) -> None:
    text = format_memory_mb(mb)
    if text == "0":
        assert mb == 0
        return
    number, unit = float(text[:-1]), text[-1]
    assert number * 1024 ** "MGTP".index(unit) == mb
    if "." in text:
        # Only exact halves print with decimals.
        assert mb % 512 == 0
    elif unit != "P":
        # --mem has no P suffix, so only M/G/T texts can be fed back to the parser.
        assert parse_memory_mb(text) == mb


@given(st.integers(min_value=0, max_value=1024), st.sampled_from(["M", "G", "T"]), st.booleans())
def test_units_scale_by_1024(number: int, unit: str, lower: bool) -> None:
    text = f"{number}{unit.lower() if lower else unit}"
    assert parse_memory_mb(text) == number * {"M": 1, "G": 1024, "T": 1024**2}[unit]


@given(st.integers(min_value=0, max_value=10**9))
def test_kilobytes_round_up(kb: int) -> None:
    assert parse_memory_mb(f"{kb}K") == -(-kb // 1024)


@given(st.text(max_size=12))
def test_parse_memory_only_raises_spec_error(text: str) -> None:
    try:
        result = parse_memory_mb(text)
    except SpecError as err:
        assert err.field == "memory_per_node"
    else:
        assert 0 <= result <= MAX_MEMORY_MB
