"""Validation errors as a client reads them: a field and what is wrong with it.

pydantic reports a value that fits no member of a union (`int | str`, `dict[str, str] |
list[str]`) once per member, each under a location naming the member's type:
`job.nodes.int: Input should be a valid integer; job.nodes.str: Input should be a valid string`.
Here those become one error on the field itself (`job.nodes: expected an integer or a string`),
or, when the value had a member's shape but not its contents (a list holding a number where
strings go), that member's errors on the field (`job.environment.0: Input should be a valid
string`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

# How pydantic names a union member in an error's location: its type.
_MEMBER = re.compile(r"(?:int|str|bool|float|bytes|none|(?:dict|list|tuple|set)\[.*\])", re.ASCII)
_KINDS = {"int": "an integer", "str": "a string", "bool": "a boolean", "float": "a number", "bytes": "a string"}


class Problem(NamedTuple):
    field: str
    message: str


def _kind(member: str) -> str:
    if member in _KINDS:
        return _KINDS[member]
    if member.startswith("dict["):
        return "an object"
    return "a list"


def problems(errors: Iterable[Mapping[str, Any]], *, drop: Sequence[str] = ("body",)) -> list[Problem]:
    """The errors of a pydantic ValidationError (`.errors()`), each as (field, message), union
    members merged as the module says; `drop`: location parts that name no field."""
    out: list[Problem] = []
    # Per field with union errors: the members tried, and the errors deeper than the member.
    unions: dict[str, tuple[list[str], list[Problem]]] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in drop]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        at = next((i for i, part in enumerate(loc) if _MEMBER.fullmatch(part)), None)
        if at is None or at == 0:
            out.append(Problem(".".join(loc), message))
            continue
        field = ".".join(loc[:at])
        members, deeper = unions.setdefault(field, ([], []))
        if loc[at] not in members:
            members.append(loc[at])
        if len(loc) > at + 1:
            deeper.append(Problem(".".join(loc[:at] + loc[at + 1 :]), message))
    for field, (members, deeper) in unions.items():
        if deeper:
            out.extend(deeper)
        else:
            out.append(Problem(field, "expected " + " or ".join(_kind(m) for m in members)))
    return out
