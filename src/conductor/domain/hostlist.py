"""Slurm host lists: ``node[01-03,7],login1`` <-> individual node names.

Follows the bracket syntax of Slurm's ``src/common/hostlist.c``: ranges keep the width of
their lower bound (``[01-10]`` pads to two digits), several bracket groups in one name form
their cartesian product (``rack[1-2]-n[1-2]``), and commas inside brackets separate ranges.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from conductor.domain.errors import SpecError

__all__ = ["compress_hostlist", "expand_hostlist", "hostlist_sort_key"]

_TRAILING_DIGITS_RE = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)$", re.DOTALL | re.ASCII)
_RANGE_RE = re.compile(r"(?P<lo>\d+)(?:-(?P<hi>\d+))?", re.ASCII)
_FORBIDDEN = frozenset(",[]")


def hostlist_sort_key(name: str) -> tuple[str, int, int, int]:
    """Order names as :func:`compress_hostlist` lists them: by prefix, then numerically.

    Plain string order would put ``node10`` before ``node2``; a host list cannot.
    """
    match = _TRAILING_DIGITS_RE.match(name)
    if match is None:
        return (name, 0, 0, 0)
    digits = match.group("digits")
    return (match.group("prefix"), 1, int(digits), len(digits))


def compress_hostlist(names: Iterable[str], *, field: str = "nodes") -> str:
    """Compress node names into Slurm's ranged form, e.g. ``node[1-3,5],login``.

    Duplicates collapse and the result is ordered by :func:`hostlist_sort_key`, so
    ``expand_hostlist(compress_hostlist(x)) == sorted(set(x), key=hostlist_sort_key)``.
    Zero padding is kept: ``node01,node02`` -> ``node[01-02]``; ``node1`` and ``node01``
    stay distinct.
    """
    unique: set[str] = set()
    for name in names:
        if not name or any(c in _FORBIDDEN or c.isspace() for c in name):
            raise SpecError(
                field,
                f"invalid node name {name!r}: it must be non-empty and contain no spaces, "
                "commas or brackets",
            )
        unique.add(name)

    groups: dict[str, list[str]] = {}
    plain: list[str] = []
    for name in unique:
        match = _TRAILING_DIGITS_RE.match(name)
        if match is None:
            plain.append(name)
        else:
            groups.setdefault(match.group("prefix"), []).append(match.group("digits"))

    # Each output item carries the sort key of its first host, so the concatenated expansion
    # comes out in hostlist_sort_key order.
    items: list[tuple[tuple[str, int, int, int], str]] = [
        (hostlist_sort_key(name), name) for name in plain
    ]
    for prefix, digit_strings in groups.items():
        digit_strings.sort(key=lambda d: (int(d), len(d)))
        ranges = _digit_ranges(digit_strings)
        if len(digit_strings) == 1:
            text = prefix + digit_strings[0]
        else:
            text = f"{prefix}[{','.join(ranges)}]"
        first = digit_strings[0]
        items.append(((prefix, 1, int(first), len(first)), text))
    items.sort(key=lambda item: item[0])
    return ",".join(text for _, text in items)


def _digit_ranges(digit_strings: list[str]) -> list[str]:
    """Group sorted digit strings into ``lo-hi`` runs that expand back to exactly them."""
    ranges: list[str] = []
    start = prev = digit_strings[0]
    width = len(start)
    for digits in digit_strings[1:]:
        # A run expands with the width of its lower bound, so it may only continue while the
        # next number prints identically at that width.
        if int(digits) == int(prev) + 1 and str(int(digits)).zfill(width) == digits:
            prev = digits
            continue
        ranges.append(start if start == prev else f"{start}-{prev}")
        start = prev = digits
        width = len(start)
    ranges.append(start if start == prev else f"{start}-{prev}")
    return ranges


def expand_hostlist(expr: str, *, field: str = "nodes", max_hosts: int = 100_000) -> list[str]:
    """Expand a Slurm host list into node names, in the order written.

    ``node[01-03],other`` -> ``["node01", "node02", "node03", "other"]``. An empty string is
    an empty list. ``max_hosts`` bounds the expansion so a hostile ``n[0-999999999]`` cannot
    exhaust memory.
    """
    if not isinstance(expr, str):
        raise SpecError(field, f"invalid host list {expr!r}; expected e.g. node[1-3,5],login")
    text = expr.strip()
    if not text:
        return []
    hosts: list[str] = []
    for raw_item in _split_top_level(text, field):
        item = raw_item.strip()
        if not item:
            raise SpecError(field, f"invalid host list {text!r}: empty name between commas")
        pieces = _parse_item(item, text, field, max_hosts - len(hosts), max_hosts)
        count = 1
        for choices in pieces:
            count *= len(choices)
        if len(hosts) + count > max_hosts:
            raise SpecError(
                field, f"invalid host list {text!r}: more than the maximum of {max_hosts} hosts"
            )
        hosts.extend("".join(combo) for combo in itertools.product(*pieces))
    return hosts


def _split_top_level(text: str, field: str) -> list[str]:
    items: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "[":
            if depth:
                raise SpecError(field, f"invalid host list {text!r}: brackets cannot nest")
            depth = 1
        elif char == "]":
            if not depth:
                raise SpecError(field, f"invalid host list {text!r}: ']' without '['")
            depth = 0
        elif char == "," and not depth:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    if depth:
        raise SpecError(field, f"invalid host list {text!r}: '[' without ']'")
    items.append("".join(current))
    return items


def _parse_item(item: str, text: str, field: str, room: int, max_hosts: int) -> list[list[str]]:
    """Turn ``rack[1-2]-n[01-02]`` into ``[["rack"], ["1","2"], ["-n"], ["01","02"]]``; the
    names its brackets multiply into may not pass `room` (what is left of `max_hosts`): each
    bracket is bounded by what the ones before it left."""
    pieces: list[list[str]] = []
    pos = 0
    while pos < len(item):
        open_at = item.find("[", pos)
        if open_at == -1:
            literal = item[pos:]
            _check_literal(literal, text, field)
            pieces.append([literal])
            break
        if open_at > pos:
            literal = item[pos:open_at]
            _check_literal(literal, text, field)
            pieces.append([literal])
        close_at = item.index("]", open_at)
        values = _expand_ranges(item[open_at + 1 : close_at], text, field, room, max_hosts)
        room //= len(values)  # x[1-99999] twenty times over must not be built before it is refused
        pieces.append(values)
        pos = close_at + 1
    return pieces


def _check_literal(literal: str, text: str, field: str) -> None:
    if any(c.isspace() for c in literal):
        raise SpecError(field, f"invalid host list {text!r}: node names cannot contain spaces")


# Digits of a number in brackets: int() refuses over 4,300 with an error of its own.
_MAX_DIGITS = 18


def _expand_ranges(inside: str, text: str, field: str, room: int, max_hosts: int) -> list[str]:
    # Counted before a range is expanded: a list of many large ranges (n[1-999999,1-999999,...])
    # must be refused, not built first.
    if not inside:
        raise SpecError(field, f"invalid host list {text!r}: empty brackets")
    values: list[str] = []
    for part in inside.split(","):
        match = _RANGE_RE.fullmatch(part)
        if match is None:
            raise SpecError(
                field,
                f"invalid host list {text!r}: bad range {part!r}; expected N or N-M with digits",
            )
        lo_text = match.group("lo")
        if len(lo_text) > _MAX_DIGITS or len(match.group("hi") or "") > _MAX_DIGITS:
            raise SpecError(field, f"invalid host list {text[:64]!r}: numbers have at most {_MAX_DIGITS} digits")
        lo = int(lo_text)
        hi = int(match.group("hi")) if match.group("hi") is not None else lo
        if hi < lo:
            raise SpecError(
                field, f"invalid host list {text!r}: range {part!r} ends before it starts"
            )
        if len(values) + hi - lo + 1 > room:
            raise SpecError(field, f"invalid host list {text[:64]!r}: more than the maximum of {max_hosts} hosts")
        width = len(lo_text)
        values.extend(str(n).zfill(width) for n in range(lo, hi + 1))
    return values
