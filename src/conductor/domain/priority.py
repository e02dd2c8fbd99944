"""The priority a job is scheduled by, as squeue and scontrol show it.

Slurm's model: a job's priority is computed (today a constant; priority factors such as fair
share and QOS will add to it) unless it was set explicitly (--priority, `scontrol update
Priority=`), which replaces it; `--nice` lowers either. The stored `priority` column holds the
explicit value, 0 when there is none. The result is never below 1: 0 means held, in Slurm.
"""

from __future__ import annotations

# A job without an explicit priority. Above the largest nice accepted (10,000), so a job at
# the largest nice still shows 1, never 0.
DEFAULT_PRIORITY = 10_001


def effective_priority(priority: int, nice: int) -> int:
    """The priority the scheduler orders by (higher first)."""
    base = priority if priority > 0 else DEFAULT_PRIORITY
    return max(base - nice, 1)


def scheduling_priority(priority: int, nice: int, held: bool) -> int:
    """What squeue's %Q and scontrol's Priority= show: 0 for a held job, else the effective one."""
    if held:
        return 0
    return effective_priority(priority, nice)
