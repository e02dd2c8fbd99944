"""Job array index specifications (``sbatch --array``) and their squeue display form.

Sources: ``sbatch(1)`` (``--array``) and ``_xlate_task_str`` in Slurm's
``src/api/job_info.c`` / ``src/sacct/print.c`` for the display form.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from conductor.domain.errors import SpecError
from conductor.domain.numbers import whole_number

__all__ = ["ArraySpec", "format_array_indices", "parse_array_spec"]

_ARRAY_FORMS = (
    "comma-separated indexes or ranges such as 0-99, 1,3,5, 0-15:4 or 1-5,10,20-30:2, "
    "optionally followed by %N to run at most N tasks at once"
)
_ELEMENT_RE = re.compile(r"(?P<lo>\d+)(?:-(?P<hi>\d+)(?::(?P<step>\d+))?)?", re.ASCII)
_NUMBER_RE = re.compile(r"\d+", re.ASCII)


class ArraySpec:
    """A parsed ``--array`` value: sorted unique task indices and the optional ``%N`` cap.

    A plain class, not a dataclass or a named tuple: squeue imports this module to show pending
    arrays, and importing dataclasses (inspect, ast and dis behind it) cost it 9 ms of its
    start, making a named tuple class 5 ms. Not frozen, but hashed by its values: never
    changed once made.
    """

    __slots__ = ("indices", "max_running")

    def __init__(self, indices: tuple[int, ...], max_running: int | None = None) -> None:
        self.indices = indices
        self.max_running = max_running

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ArraySpec):
            return NotImplemented
        return (self.indices, self.max_running) == (other.indices, other.max_running)

    def __hash__(self) -> int:
        return hash((self.indices, self.max_running))

    def __repr__(self) -> str:
        return f"ArraySpec(indices={self.indices!r}, max_running={self.max_running!r})"

    def __str__(self) -> str:
        return format_array_indices(self.indices, max_running=self.max_running)


# The most tasks `%N` may let run at once: what a 32-bit column holds (PostgreSQL's INTEGER).
MAX_RUNNING = 2**31 - 1


# The largest task index (Slurm's MaxArraySize - 1).
MAX_ARRAY_INDEX = 4_000_000


def parse_array_spec(
    value: str,
    *,
    field: str = "array",
    max_tasks: int = 100_000,
    max_index: int = MAX_ARRAY_INDEX,
) -> ArraySpec:
    """Parse an sbatch ``--array`` value.

    Grammar: elements separated by ``,``; an element is ``N``, ``A-B`` or ``A-B:S`` (every
    S-th index from A up to B); the whole list may end with ``%N``, the maximum number of
    tasks running at once. Duplicates collapse. ``max_index`` plays the part of Slurm's
    ``MaxArraySize - 1`` and ``max_tasks`` of ``max_array_tasks``.
    """
    if not isinstance(value, str):
        raise SpecError(field, f"invalid array {value!r}; expected {_ARRAY_FORMS}")
    text = value.strip()
    if not text:
        raise SpecError(field, f"empty array specification; expected {_ARRAY_FORMS}")

    body, percent, limit_text = text.partition("%")
    max_running: int | None = None
    if percent:
        max_running = _running_limit(text, limit_text, field)
    if not body:
        raise SpecError(field, f"invalid array {text!r}: no indexes before %")

    indices: set[int] = set()
    for element in body.split(","):
        match = _ELEMENT_RE.fullmatch(element)
        if match is None:
            if element.startswith("-") or "--" in element:
                raise SpecError(
                    field, f"invalid array {text!r}: index in {element!r} cannot be negative"
                )
            raise SpecError(
                field, f"invalid array {text!r}: bad element {element!r}; expected {_ARRAY_FORMS}"
            )
        lo = int(match.group("lo"))
        hi = int(match.group("hi")) if match.group("hi") is not None else lo
        step = int(match.group("step")) if match.group("step") is not None else 1
        if hi < lo:
            raise SpecError(
                field, f"invalid array {text!r}: range {element!r} ends before it starts"
            )
        if step == 0:
            raise SpecError(
                field, f"invalid array {text!r}: step in {element!r} must be at least 1"
            )
        if hi > max_index:
            raise SpecError(
                field,
                f"invalid array {text!r}: index {hi} is above the maximum index {max_index}",
            )
        # Count before materialising, so "0-4000000" fails fast instead of filling memory.
        if (hi - lo) // step + 1 > max_tasks:
            raise _too_many(field, text, max_tasks)
        indices.update(range(lo, hi + 1, step))
        if len(indices) > max_tasks:
            raise _too_many(field, text, max_tasks)
    return ArraySpec(indices=tuple(sorted(indices)), max_running=max_running)


def _running_limit(text: str, limit_text: str, field: str) -> int:
    """The N of `%N`: a whole number from 1 to MAX_RUNNING."""
    if _NUMBER_RE.fullmatch(limit_text) is None:
        raise SpecError(field, f"invalid array {text!r}: the part after % must be a whole number of tasks")
    max_running = whole_number(limit_text, MAX_RUNNING)
    if max_running is None:
        raise SpecError(field, f"invalid array {text!r}: %N must be at most {MAX_RUNNING}")
    if max_running < 1:
        raise SpecError(field, f"invalid array {text!r}: %{max_running} must be at least 1")
    return max_running


def _too_many(field: str, text: str, max_tasks: int) -> SpecError:
    return SpecError(field, f"invalid array {text!r}: more than the maximum of {max_tasks} tasks")


def format_array_indices(indices: Sequence[int], *, max_running: int | None = None) -> str:
    """Compact task indices as squeue shows them inside ``jobid_[...]``.

    Runs become ``a-b`` (``0-3,5,7-9``). Like Slurm's ``_xlate_task_str``, a set that spans
    more than ten and is an evenly spaced sequence with a gap after the first index prints as
    ``first-last:step`` (``0-15:4``). A ``max_running`` cap appends ``%N``.
    """
    ordered = sorted(set(indices))
    if any(i < 0 for i in ordered):
        raise ValueError("array indices cannot be negative")
    text = _format_sorted(ordered)
    if max_running is not None:
        text += f"%{max_running}"
    return text


def _format_sorted(ordered: list[int]) -> str:
    if not ordered:
        return ""
    first, last = ordered[0], ordered[-1]
    if last - first > 10 and ordered[1] != first + 1:
        step = ordered[1] - first
        if all(b - a == step for a, b in itertools.pairwise(ordered)):
            return f"{first}-{last}:{step}"
    parts: list[str] = []
    start = prev = ordered[0]
    for index in ordered[1:]:
        if index == prev + 1:
            prev = index
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = index
    parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(parts)
