"""A node's free CPUs and memory from now on, as a step function of time.

Backfill plans with it: running jobs give their resources back when their time limits end,
jobs placed now and reservations take them over an interval. Pure and small, so the policy can
build one per node on every pass.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable

INF = math.inf

# A running job past its time limit is being killed: its resources come back "soon", never
# "now" (they are still held). Planning them at least a second ahead keeps every plan feasible;
# rounding that up to a step keeps the plan still from pass to pass while the kill takes its
# time, instead of moving every estimate that rests on it (and rewriting it) at each pass.
OVERDUE_GRACE = 1.0
OVERDUE_STEP = 30.0


def overdue_floor(now: float) -> float:
    """When resources held past their limit are planned to come back."""
    return math.ceil((now + OVERDUE_GRACE) / OVERDUE_STEP) * OVERDUE_STEP


class Timeline:
    """Free resources on one node: `cpus[i]` and `memory[i]` hold over [times[i], times[i+1]).

    The last step lasts for ever. Steps only appear where something changes, so a node with k
    running jobs has at most k + 1 steps plus two per reservation on it.
    """

    __slots__ = ("cpus", "memory", "times", "total_cpus")

    def __init__(
        self,
        now: float,
        free_cpus: int,
        free_memory: int,
        total_cpus: int,
        releases: Iterable[tuple[float, int, int]] = (),
    ) -> None:
        """`releases`: (end, cpus, memory) of running jobs; an infinite end never gives back."""
        self.total_cpus = total_cpus
        self.times = [now]
        self.cpus = [free_cpus]
        self.memory = [free_memory]
        soon, floor = now + OVERDUE_GRACE, overdue_floor(now)
        for end, cpus, memory in sorted((e if e >= soon else floor, c, m) for e, c, m in releases if e != INF):
            if end == self.times[-1]:
                self.cpus[-1] += cpus
                self.memory[-1] += memory
            else:
                self.times.append(end)
                self.cpus.append(self.cpus[-1] + cpus)
                self.memory.append(self.memory[-1] + memory)

    def fits(self, start: float, end: float, cpus: int, memory: int) -> bool:
        """Whether `cpus` and `memory` are free over the whole of [start, end)."""
        times, free, mem = self.times, self.cpus, self.memory
        i = max(bisect_right(times, start) - 1, 0)
        n = len(times)
        while i < n and times[i] < end:
            if free[i] < cpus or mem[i] < memory:
                return False
            i += 1
        return True

    def earliest(self, cpus: int, memory: int, duration: float, before: float = INF) -> float:
        """The earliest start, before `before`, of an interval of `duration` with the resources free.

        INF when there is none (the resources never come back, or not before `before`). Only
        step starts are candidates: the free resources change nowhere else.
        """
        times, free, mem = self.times, self.cpus, self.memory
        n = len(times)
        i = 0
        while i < n:
            start = times[i]
            if start >= before:
                return INF
            if free[i] < cpus or mem[i] < memory:
                i += 1
                continue
            end = start + duration
            j = i + 1
            while j < n and times[j] < end:
                if free[j] < cpus or mem[j] < memory:
                    break
                j += 1
            else:
                return start
            # Every start up to times[j] overlaps step j, which lacks room: try after it.
            i = j + 1
        return INF

    def free_until(self, start: float, cpus: int, memory: int) -> float:
        """How long from `start` on `cpus` and `memory` stay free: the first step after it that
        lacks them (INF: never), or `start` itself when they are not free then."""
        times, free, mem = self.times, self.cpus, self.memory
        i = max(bisect_right(times, start) - 1, 0)
        for k in range(i, len(times)):
            if free[k] < cpus or mem[k] < memory:
                return max(times[k], start)
        return INF

    def take(self, start: float, end: float, cpus: int, memory: int) -> None:
        """Hold `cpus` and `memory` over [start, end) (a placement, or a reservation)."""
        i = self._split(start)
        j = self._split(end) if end != INF else len(self.times)
        free, mem = self.cpus, self.memory
        for k in range(i, j):
            free[k] -= cpus
            mem[k] -= memory

    def _split(self, at: float) -> int:
        """The index of a step starting exactly at `at` (made if need be)."""
        times = self.times
        i = bisect_left(times, at)
        if i < len(times) and times[i] == at:
            return i
        if i == 0:  # before the first step: nothing is planned there, the first step covers it
            return 0
        times.insert(i, at)
        self.cpus.insert(i, self.cpus[i - 1])
        self.memory.insert(i, self.memory[i - 1])
        return i
