"""How long ended jobs are kept: Slurm's `PurgeJobAfter` values (slurmdbd.conf).

A bare number is months, as in Slurm; a unit may follow: `12hours`, `30days`, `6months`, and
(ours, for short-lived test systems) `minutes` and `seconds`. Singular and short forms count
too (`1day`, `12h`, `90s`).
"""

from __future__ import annotations

import re
from datetime import timedelta

from conductor.errors import Invalid

_UNITS = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 30 * 86400,  # slurmdbd counts calendar months; a retention needs no such precision
}
_ALIASES = {"s": "second", "sec": "second", "min": "minute", "m": "minute", "h": "hour", "d": "day"}
_PATTERN = re.compile(r"^\s*(\d{1,9})\s*([a-z]*)\s*$", re.ASCII)


def parse_retention(text: str, *, field: str = "purge_job_after") -> timedelta:
    match = _PATTERN.match(text.lower())
    if match is None:
        raise Invalid(f"'{text}' is not a number followed by an optional unit (e.g. 30days, 12hours, 6months)", field=field)
    number, unit = int(match.group(1)), match.group(2) or "month"
    unit = _ALIASES.get(unit, unit.removesuffix("s") if unit.endswith("s") and unit != "s" else unit)
    if unit not in _UNITS:
        raise Invalid(f"unknown unit '{match.group(2)}' (seconds, minutes, hours, days or months)", field=field)
    if number == 0:
        raise Invalid("must be more than 0 (leave it unset to keep every job)", field=field)
    return timedelta(seconds=number * _UNITS[unit])
