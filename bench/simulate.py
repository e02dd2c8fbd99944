"""Trace replay: the scheduler's pure policy on a simulated clock, over a workload in the
Standard Workload Format (SWF, the Parallel Workloads Archive's format).

    python bench/simulate.py                       # generate a trace, replay it, print the table
    python bench/simulate.py --jobs 5000 --load 0.95 --seed 7
    python bench/simulate.py --write trace.swf     # only write the generated trace
    python bench/simulate.py --trace trace.swf     # replay an existing SWF file

Each policy replays the same jobs on the same cluster: FIFO (strict priority order), first fit
without reservations (the policy before backfill), EASY backfill (one reservation) and
conservative backfill (a reservation for every job tested). The scheduler decides at every
arrival and every end, as the real loop does; a job runs for its trace run time and is
planned with its requested time (its time limit). Printed: utilisation, mean and maximum wait,
mean bounded slowdown (threshold 10 s), and the maximum wait of the whole-node jobs (no job
may starve).

The synthetic traces follow what the archive's logs show: arrivals in a daily cycle, sizes
mostly small and powers of two, run times spread over orders of magnitude, and requested times
that overestimate the run time (users round up, and some jobs end at their limit).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from conductor.scheduler.policy import (
    EASY,
    FIFO,
    Backfill,
    NodeView,
    PendingJob,
    Release,
    schedule,
)

# Requested times users pick: round values, as the archive's logs show.
LIMITS = (300, 600, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 24 * 3600)


@dataclass(slots=True)
class TraceJob:
    id: int
    submit: float
    run: float  # seconds it actually runs
    cpus: int
    requested: float  # its time limit


# ------------------------------------------------------------------------- SWF
def generate(jobs: int, nodes: int, cpus_per_node: int, load: float, seed: int) -> list[TraceJob]:
    """A synthetic workload whose offered load (CPU-seconds asked per CPU-second) is `load`."""
    rng = random.Random(seed)
    sizes = [1, 2, 4, 8, 16, 32, 64]
    sizes = [s for s in sizes if s <= cpus_per_node]
    if sizes[-1] != cpus_per_node:
        sizes.append(cpus_per_node)
    # Small jobs dominate; whole-node jobs are a few percent but a large share of the work.
    weights = [0.35, 0.15, 0.15, 0.12, 0.1, 0.08, 0.05][: len(sizes) - 1] + [0.05]
    out: list[TraceJob] = []
    for i in range(jobs):
        cpus = rng.choices(sizes, weights)[0]
        run = math.exp(rng.uniform(math.log(30), math.log(6 * 3600)))  # 30 s .. 6 h, log-uniform
        if rng.random() < 0.15:
            requested = float(next((limit for limit in LIMITS if limit >= run), LIMITS[-1]))
            run = requested  # it ran into its limit
        else:
            guess = run * rng.uniform(1.0, 4.0)
            requested = float(next((limit for limit in LIMITS if limit >= guess), LIMITS[-1]))
        out.append(TraceJob(i + 1, 0.0, round(run), cpus, requested))
    # Arrivals: a Poisson process scaled to the load, thinned by a daily cycle (busy afternoons).
    work = sum(j.run * j.cpus for j in out)
    span = work / (load * nodes * cpus_per_node)
    rate = len(out) / span
    clock = 0.0
    for job in out:
        while True:
            clock += rng.expovariate(rate / 0.55)  # 0.55: the mean acceptance of the cycle below
            hour = (clock / 3600) % 24
            if rng.random() < 0.55 + 0.45 * math.sin((hour - 8) / 24 * 2 * math.pi):
                break
        job.submit = round(clock)
    return out


def write_swf(path: Path, trace: list[TraceJob], nodes: int, cpus_per_node: int) -> None:
    lines = [
        "; Version: 2.2",
        "; Computer: synthetic (bench/simulate.py)",
        f"; MaxNodes: {nodes}",
        f"; MaxProcs: {nodes * cpus_per_node}",
        "; Note: single-node jobs; field 5 and 8 are CPUs, field 9 the time limit",
    ]
    for j in trace:
        fields = [j.id, int(j.submit), -1, int(j.run), j.cpus, -1, -1, j.cpus, int(j.requested), -1, 1, 1, 1, -1, 1, 1, -1, -1]
        lines.append(" ".join(str(f) for f in fields))
    path.write_text("\n".join(lines) + "\n")


def read_swf(path: Path) -> list[TraceJob]:
    """Jobs of an SWF file: submit (2), run time (4), processors (8, else 5), requested time (9)."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        f = line.split()
        run, cpus, requested = float(f[3]), int(f[7]) if int(f[7]) > 0 else int(f[4]), float(f[8])
        if run < 0 or cpus <= 0:
            continue  # cancelled before it ran: nothing to replay
        out.append(TraceJob(int(f[0]), float(f[1]), run, cpus, requested if requested > 0 else run))
    return out


# ---------------------------------------------------------------------- replay
@dataclass(slots=True)
class Outcome:
    waits: list[float]
    slowdowns: list[float]
    utilisation: float
    whole_node_max_wait: float
    passes: int
    pass_ms: float


def replay(trace: list[TraceJob], nodes: int, cpus_per_node: int, backfill: Backfill) -> Outcome:
    """Run the policy at every arrival and end; start what it places, at that instant."""
    by_id = {j.id: j for j in trace}
    arrivals = sorted(trace, key=lambda j: (j.submit, j.id))
    free = {f"n{k:02d}": list(range(cpus_per_node)) for k in range(nodes)}
    running: dict[str, dict[int, tuple[float, int, tuple[int, ...]]]] = {name: {} for name in free}
    ends: list[tuple[float, int, str]] = []  # (end, job, node)
    pending: list[PendingJob] = []
    started: dict[int, float] = {}
    next_arrival = 0
    passes = 0
    pass_time = 0.0
    now = 0.0
    while next_arrival < len(arrivals) or ends or pending:
        upcoming = arrivals[next_arrival].submit if next_arrival < len(arrivals) else math.inf
        if ends and ends[0][0] <= upcoming:
            now = ends[0][0]
        elif upcoming != math.inf:
            now = upcoming
        else:
            raise RuntimeError(f"{len(pending)} jobs can never start")  # nothing left to wait for
        while ends and ends[0][0] <= now:
            _, job_id, node = heapq.heappop(ends)
            _, _, cpu_ids = running[node].pop(job_id)
            free[node].extend(cpu_ids)
            free[node].sort()
        while next_arrival < len(arrivals) and arrivals[next_arrival].submit <= now:
            j = arrivals[next_arrival]
            pending.append(PendingJob(id=j.id, cpus=j.cpus, submit_time=j.submit, time_limit=j.requested))
            next_arrival += 1
        views = [
            NodeView(
                name=name,
                cpu_ids=tuple(range(cpus_per_node)),
                free_cpu_ids=list(free[name]),
                memory_mb=1,
                free_memory_mb=1,
                partitions=frozenset({"debug"}),
                running_jobs=len(running[name]),
                releases=[Release(job_id, len(ids), 0, limit_end) for job_id, (limit_end, _, ids) in running[name].items()],
            )
            for name in free
        ]
        t0 = time.perf_counter()
        decision = schedule(pending, views, now, presorted=True, backfill=backfill)
        pass_time += time.perf_counter() - t0
        passes += 1
        placed = set()
        for p in decision.placements:
            job = by_id[p.job_id]
            free[p.node] = [c for c in free[p.node] if c not in p.cpu_ids]
            running[p.node][job.id] = (now + job.requested, job.cpus, p.cpu_ids)
            heapq.heappush(ends, (now + min(job.run, job.requested), job.id, p.node))
            started[job.id] = now
            placed.add(job.id)
        if placed:
            pending = [j for j in pending if j.id not in placed]
        for j in pending:
            j.reason = decision.reasons.get(j.id, j.reason)
    first = min(j.submit for j in trace)
    last = max(started[j.id] + min(j.run, j.requested) for j in trace)
    work = sum(min(j.run, j.requested) * j.cpus for j in trace)
    waits = [started[j.id] - j.submit for j in trace]
    slowdowns = [
        max((started[j.id] - j.submit + j.run) / max(j.run, 10.0), 1.0) for j in trace
    ]
    whole = [started[j.id] - j.submit for j in trace if j.cpus == cpus_per_node]
    return Outcome(
        waits,
        slowdowns,
        work / ((last - first) * nodes * cpus_per_node),
        max(whole, default=0.0),
        passes,
        pass_time / max(passes, 1) * 1000,
    )


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--cpus", type=int, default=32, help="CPUs per node")
    parser.add_argument("--load", type=float, default=0.9, help="offered load of the generated trace")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trace", type=Path, help="replay this SWF file instead of generating one")
    parser.add_argument("--write", type=Path, help="write the generated trace as SWF and stop")
    parser.add_argument("--max-job-test", type=int, default=500)
    args = parser.parse_args(argv)
    trace = read_swf(args.trace) if args.trace else generate(args.jobs, args.nodes, args.cpus, args.load, args.seed)
    if args.write:
        write_swf(args.write, trace, args.nodes, args.cpus)
        print(f"wrote {len(trace)} jobs to {args.write}")
        return 0
    policies = [
        ("FIFO", FIFO),
        ("first fit, no reservation", Backfill(depth=0, max_job_test=args.max_job_test)),
        ("EASY backfill", Backfill(depth=EASY.depth, max_job_test=args.max_job_test)),
        ("conservative backfill", Backfill(depth=args.max_job_test, max_job_test=args.max_job_test)),
    ]
    source = args.trace or f"synthetic, seed {args.seed}, offered load {args.load}"
    print(f"{len(trace)} jobs ({source}) on {args.nodes} nodes x {args.cpus} CPUs; bf_max_job_test {args.max_job_test}")
    print()
    print("| policy | utilisation | mean wait | max wait | mean bounded slowdown | max wait, whole-node jobs | pass (mean) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, backfill in policies:
        out = replay(trace, args.nodes, args.cpus, backfill)
        print(
            f"| {label} | {out.utilisation * 100:.1f} % | {_hours(statistics.mean(out.waits))} | "
            f"{_hours(max(out.waits))} | {statistics.mean(out.slowdowns):.1f} | {_hours(out.whole_node_max_wait)} | "
            f"{out.pass_ms:.2f} ms |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
