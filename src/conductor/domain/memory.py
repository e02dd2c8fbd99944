"""Slurm's memory sizes: ``--mem`` parsing and sacct's ReqMem formatting.

Sources (Slurm source tree): ``str_to_mbytes`` in ``src/common/proc_args.c`` and
``convert_num_unit2`` in ``src/common/slurm_protocol_api.c`` (called by sacct with
``CONVERT_NUM_UNIT_EXACT``).
"""

from __future__ import annotations

import re

from conductor.domain.errors import SpecError, check_length

__all__ = ["MAX_MEMORY_MB", "format_memory_mb", "parse_memory_mb"]

# 1 PiB in MiB. No node we will ever schedule has more, and a bound keeps a typo such as
# "4000T" from reaching the scheduler as a request no node can meet.
MAX_MEMORY_MB = 1024**3

_MEMORY_FORMS = "a whole number of megabytes, optionally with a K, M, G or T suffix (e.g. 512M, 4G)"
# Slurm accepts exactly: digits, then optionally one unit letter, then optionally "B" after
# the unit. "B" alone ("512B") and fractions ("1.5G") are errors there too.
_MEMORY_RE = re.compile(r"(?P<n>\d+)(?:(?P<unit>[KMGT])B?)?", re.IGNORECASE | re.ASCII)
_UNIT_FACTOR_MB = {"M": 1, "G": 1024, "T": 1024 * 1024}


def parse_memory_mb(value: str | int, *, field: str = "memory_per_node") -> int:
    """Parse a Slurm ``--mem`` value into MiB ("megabytes" in Slurm's words).

    A bare number is megabytes. Suffixes ``K``, ``M``, ``G``, ``T`` (any case) scale by
    powers of 1024 and may be followed by ``B`` (``4GB``), as ``str_to_mbytes`` allows.
    Kilobytes round up to whole megabytes (``1K`` is 1 MB). ``0`` is valid and returned as
    ``0``: in Slurm ``--mem=0`` requests all the memory of each allocated node, and callers
    must give it that meaning rather than "no memory".
    """
    if isinstance(value, bool):
        raise SpecError(field, f"invalid memory size {value!r}; expected {_MEMORY_FORMS}")
    if isinstance(value, int):
        if value < 0:
            raise SpecError(field, f"invalid memory size {value}; it cannot be negative")
        return _check_memory(value, str(value), field)
    if not isinstance(value, str):
        raise SpecError(field, f"invalid memory size {value!r}; expected {_MEMORY_FORMS}")

    text = value.strip()
    if not text:
        raise SpecError(field, f"empty memory size; expected {_MEMORY_FORMS}")
    check_length(text, field, "memory size")
    match = _MEMORY_RE.fullmatch(text)
    if match is None:
        if text.startswith("-"):
            raise SpecError(field, f"invalid memory size {text!r}; it cannot be negative")
        raise SpecError(field, f"invalid memory size {text!r}; expected {_MEMORY_FORMS}")
    number = int(match.group("n"))
    unit = (match.group("unit") or "M").upper()
    # Kilobytes round up, as in str_to_mbytes: asking for 1K must not become 0 = "all memory".
    megabytes = (number + 1023) // 1024 if unit == "K" else number * _UNIT_FACTOR_MB[unit]
    return _check_memory(megabytes, text, field)


def _check_memory(megabytes: int, shown: str, field: str) -> int:
    if megabytes > MAX_MEMORY_MB:
        raise SpecError(
            field, f"memory size {shown!r} is more than the maximum of 1 PiB ({MAX_MEMORY_MB}M)"
        )
    return megabytes


def format_memory_mb(mb: int) -> str:
    """Format MiB as sacct's ReqMem column shows it (Slurm 21.08 and later).

    The value moves up a unit (M, G, T, P) while it is at least 1024 and a multiple of 512,
    so exact halves stay exact: ``1000M``, ``4G``, ``1.50G``, ``512M``, ``0``. Older Slurm
    appended ``n``/``c`` (per node / per CPU); current Slurm does not.
    """
    if mb < 0:
        raise ValueError(f"memory cannot be negative: {mb}")
    if mb == 0:
        return "0"
    units = "KMGTP"
    unit_index = 1
    # Float arithmetic on purpose: it reproduces convert_num_unit2's double maths, including
    # its "%.2f" output for values that stop being whole after a division.
    number = float(mb)
    while number >= 1024 and int(number) % 512 == 0 and unit_index < len(units) - 1:
        number /= 1024
        unit_index += 1
    whole = int(number)
    if float(whole) == number:
        return f"{whole}{units[unit_index]}"
    return f"{number:.2f}{units[unit_index]}"
