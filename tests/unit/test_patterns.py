from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conductor.domain.patterns import NO_VAL, default_output_name, expand_output_pattern

JOB: dict[str, Any] = {"job_id": 42, "job_name": "train", "user": "alice", "node": "node7"}
ARRAY: dict[str, Any] = {**JOB, "job_id": 57, "array_job_id": 50, "array_task_id": 7}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("slurm-%j.out", "slurm-42.out"),
        ("%x-%j.log", "train-42.log"),
        ("%u/%N/%x", "alice/node7/train"),
        ("%%", "%"),
        ("100%%-%j", "100%-42"),
        ("%A", "42"),
        ("%a", str(NO_VAL)),
        ("%a", "4294967294"),
        ("%b", "4"),
        ("%J", "42"),  # the batch script's: slurmstepd adds ".stepid" for other steps only
        ("%s", "batch"),
        ("%t", "0"),
        ("%n", "0"),
        ("%4j", "0042"),
        ("%12j", "0000000042"),
        ("%1j", "42"),
        ("%5N", "node7"),
        ("%3u%3x", "alicetrain"),
        ("%4J", "0042"),
        ("plain.txt", "plain.txt"),
        ("", ""),
    ],
)
def test_plain_job(pattern: str, expected: str) -> None:
    assert expand_output_pattern(pattern, **JOB) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("slurm-%A_%a.out", "slurm-50_7.out"),
        ("%j", "57"),
        ("%3a", "007"),
        ("%b", "7"),
        ("%6A", "000050"),
    ],
)
def test_array_task(pattern: str, expected: str) -> None:
    assert expand_output_pattern(pattern, **ARRAY) == expected


def test_array_task_without_array_job_id_uses_job_id() -> None:
    assert expand_output_pattern("%A_%a", **JOB, array_task_id=3) == "42_3"


def test_array_task_modulo_ten() -> None:
    assert expand_output_pattern("%b", **JOB, array_task_id=123) == "3"


def test_a_width_of_any_length_is_capped() -> None:
    # int() refuses over 4,300 digits with an error of its own: capped as text first.
    wide = "%" + "9" * 5000
    assert expand_output_pattern(wide + "j", job_id=42, job_name="n", user="u", node="vm") == "0000000042"
    assert expand_output_pattern(wide + "z", job_id=42, job_name="n", user="u", node="vm") == "9z"


def test_step_and_task_ids() -> None:
    result = expand_output_pattern(
        "%J|%s|%3s|%t|%2t|%n|%2n", **JOB, step_id=3, task_id=5, node_index=1
    )
    assert result == "42.3|3|003|5|05|1|01"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("%z", "%z"),
        ("a%qb", "a%qb"),
        ("%5z", "5z"),
        ("%12z", "2z"),
        ("end%", "end%"),
        ("end%5", "end5"),
        ("%%j", "%j"),
        ("%%%j", "%42"),
        ("%5%j", "542"),
    ],
)
def test_unknown_escapes_follow_slurm(pattern: str, expected: str) -> None:
    assert expand_output_pattern(pattern, **JOB) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("\\%j.out", "%j.out"),
        ("out-%j\\", "out-%j"),
        ("a\\\\b-%j", "a\\b-%j"),
        ("\\slurm-%A_%a.out", "slurm-%A_%a.out"),
    ],
)
def test_backslash_disables_substitution(pattern: str, expected: str) -> None:
    assert expand_output_pattern(pattern, **ARRAY) == expected


def test_default_output_names() -> None:
    assert default_output_name(False) == "slurm-%j.out"
    assert default_output_name(True) == "slurm-%A_%a.out"
    assert expand_output_pattern(default_output_name(True), **ARRAY) == "slurm-50_7.out"
    assert expand_output_pattern(default_output_name(False), **JOB) == "slurm-42.out"


@given(st.text(alphabet=st.characters(blacklist_characters="%\\")))
def test_text_without_escapes_is_unchanged(text: str) -> None:
    assert expand_output_pattern(text, **JOB) == text


@given(st.integers(min_value=0, max_value=30), st.integers(min_value=1, max_value=10**9))
def test_zero_padding_width_is_capped_at_ten(width: int, job_id: int) -> None:
    result = expand_output_pattern(f"%{width}j", **{**JOB, "job_id": job_id})
    assert result == str(job_id).zfill(min(width, 10))
    assert int(result) == job_id


@given(st.integers(min_value=1, max_value=20))
def test_double_percent_collapses(count: int) -> None:
    assert expand_output_pattern("%%" * count, **JOB) == "%" * count
