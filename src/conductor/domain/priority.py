"""The priority a job is scheduled by, as squeue and scontrol show it.

A job's stored `priority` is its base (set by --priority or an administrator; 0 when not set)
and `nice` lowers it. The scheduler orders by base - nice; what users see is that plus an
offset so that it is never 0, which in Slurm means held (Slurm adds NICE_OFFSET the same way).
Priority factors (fair share, QOS) will add to the base here.
"""

from __future__ import annotations

# The largest nice accepted (10,000) leaves a job with no base priority at 1, never at 0.
NICE_OFFSET = 10_001


def scheduling_priority(priority: int, nice: int, held: bool) -> int:
    """What squeue's %Q shows: 0 for a held job (it will not be scheduled), else >= 1."""
    if held:
        return 0
    return max(priority - nice + NICE_OFFSET, 1)
