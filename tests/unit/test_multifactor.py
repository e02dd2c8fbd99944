"""The multifactor priority's factors and the fair-share decay against Slurm's formulas."""

from __future__ import annotations

import math

import pytest

from conductor.domain.multifactor import (
    PRIORITY_MAX,
    Factors,
    Weights,
    accrued,
    age_factor,
    clamp_priority,
    decay,
    fairshare_factor,
    job_size_factor,
)

DAY = 86400.0


def test_age_grows_linearly_to_max_age() -> None:
    assert age_factor(0, 7 * DAY) == 0.0
    assert age_factor(3.5 * DAY, 7 * DAY) == 0.5
    assert age_factor(30 * DAY, 7 * DAY) == 1.0
    assert age_factor(10, None) == 0.0


def test_classic_fair_share_is_two_to_the_minus_usage_over_shares() -> None:
    # Slurm's multifactor page: F = 2^(-U/S). No usage: 1; usage equal to shares: 0.5.
    assert fairshare_factor(0, 100, 1, 4) == 1.0
    assert fairshare_factor(25, 100, 1, 4) == 0.5
    assert fairshare_factor(50, 100, 1, 4) == 0.25
    assert fairshare_factor(100, 100, 1, 4) == pytest.approx(2 ** -4)
    assert fairshare_factor(0, 0, 1, 2) == 1.0


def test_usage_halves_every_half_life() -> None:
    assert decay(1000.0, 7 * DAY, 7 * DAY) == pytest.approx(500.0)
    assert decay(1000.0, 14 * DAY, 7 * DAY) == pytest.approx(250.0)
    assert decay(1000.0, 5.0, None) == 1000.0


def test_accrued_usage_is_the_integral_of_the_decayed_cpu_seconds() -> None:
    h = 3600.0
    # 4 CPUs for an hour that ended now: 4 * H/ln2 * (1 - 1/2).
    assert accrued(4, 0.0, h, h, h) == pytest.approx(4 * h / math.log(2) * 0.5)
    # Split in two pieces, decayed separately, it is the same.
    whole = accrued(2, 100.0, 900.0, 1000.0, h)
    parts = decay(accrued(2, 100.0, 500.0, 500.0, h), 500.0, h) + accrued(2, 500.0, 900.0, 1000.0, h)
    assert whole == pytest.approx(parts)
    assert accrued(3, 10.0, 20.0, 30.0, None) == 30.0
    # A short interval counts nearly its CPU-seconds.
    assert accrued(1, 999.0, 1000.0, 1000.0, 7 * DAY) == pytest.approx(1.0, rel=1e-5)


def test_job_size_is_the_mean_of_node_and_cpu_fractions() -> None:
    assert job_size_factor(1, 64, 4, False) == pytest.approx(0.125)  # (1/4) / 2
    assert job_size_factor(16, 64, 4, False) == pytest.approx((0.25 + 0.25) / 2)
    assert job_size_factor(16, 64, 4, True) == pytest.approx((0.75 + 0.75) / 2)
    assert job_size_factor(1, 0, 0, False) == 0.0


def test_priority_is_the_weighted_sum_less_nice_never_below_one() -> None:
    w = Weights(age=1000, fairshare=10000, job_size=100, partition=1000, qos=2000)
    f = Factors(age=0.5, fairshare=0.25, job_size=0.125, partition=1.0, qos=0.5, nice=100)
    assert f.weighted(w) == (500.0, 2500.0, 12.5, 1000.0, 1000.0)
    assert f.priority(w) == 500 + 2500 + 12 + 1000 + 1000 - 100
    assert Factors(nice=50).priority(w) == 1
    assert not Weights().active and w.active


def test_priority_is_capped_at_slurms_uint32_maximum() -> None:
    # Each weight may be 2^32-1 (as in slurm.conf): their sum passed the 32-bit priority Slurm
    # has, which logs "priority exceeds 32 bits" and uses 0xffffffff.
    top = 2**32 - 1
    w = Weights(age=top, fairshare=top, job_size=top, partition=top, qos=top)
    assert PRIORITY_MAX == 4_294_967_295
    assert Factors(1.0, 1.0, 1.0, 1.0, 1.0).priority(w) == PRIORITY_MAX
    assert Factors(1.0, 1.0, 1.0, 1.0, 1.0, nice=-10_000).priority(w) == PRIORITY_MAX
    assert Factors(age=1.0, nice=-10_000).priority(Weights(age=top)) == PRIORITY_MAX
    assert Factors(1.0, 1.0, 0.0, 0.0, 0.0, nice=top).priority(w) == top  # 2*top - top
    assert [clamp_priority(v) for v in (-5.0, 0.0, 0.9, 1.5, top - 0.5, top + 0.5, 1e300)] == [1, 1, 1, 1, top - 1, top, top]


def test_the_backlog_pass_gives_each_job_the_sum_of_its_weighted_factors() -> None:
    import random

    from conductor.scheduler.policy import PendingJob
    from conductor.scheduler.priority import Multifactor, PriorityConfig

    rng = random.Random(2)
    now = 1e6
    config = PriorityConfig(
        weights=Weights(age=1000, fairshare=10000, job_size=500, partition=1000, qos=2000, max_age=DAY),
        partitions={"a": 1.0, "b": 0.3}, qos={"normal": 0.2, "high": 1.0},
    )
    multifactor = Multifactor(config, {("u1", ""): 5.0, ("u2", ""): 50.0}, cluster_cpus=64, cluster_nodes=4)
    jobs = [
        PendingJob(id=i, cpus=rng.choice((1, 3, 8)), partition=rng.choice("ab"), user=rng.choice(("u1", "u2", "u3")),
                   qos=rng.choice((None, "high")), nice=rng.choice((0, 7)), eligible_time=now - rng.uniform(-10, 2e5),
                   explicit_priority=rng.choice((0, 0, 0, 5000)))
        for i in range(2000)
    ]
    multifactor.assign(jobs, now)
    for job in jobs:
        if job.explicit_priority:
            assert job.priority == job.explicit_priority - job.nice
        else:
            assert job.priority == multifactor.factors(job, now).priority(config.weights)
    # One share per user with usage (u1, u2): u3 has none (factor 1), u2 ten times u1's.
    assert multifactor.fairshare("u3") == 1.0
    assert multifactor.fairshare("u1") == pytest.approx(2 ** (-(5 / 55) * 2))
    assert multifactor.fairshare("u2") == pytest.approx(2 ** (-(50 / 55) * 2))


def test_the_backlog_pass_caps_priorities_at_32_bits_as_the_factors_do() -> None:
    from conductor.scheduler.policy import PendingJob
    from conductor.scheduler.priority import Multifactor, PriorityConfig

    top = 2**32 - 1
    now = 1e6
    config = PriorityConfig(
        weights=Weights(age=top, fairshare=top, job_size=top, partition=top, qos=top, max_age=DAY),
        partitions={"a": 1.0}, qos={"normal": 1.0},
    )
    multifactor = Multifactor(config, {}, cluster_cpus=8, cluster_nodes=1)
    jobs = [PendingJob(id=1, cpus=8, partition="a", user="u", nice=-10_000, eligible_time=now - 2 * DAY),
            PendingJob(id=2, cpus=1, partition="a", user="u", nice=top, eligible_time=now)]
    multifactor.assign(jobs, now)
    assert jobs[0].priority == PRIORITY_MAX == multifactor.factors(jobs[0], now).priority(config.weights)
    assert jobs[1].priority == multifactor.factors(jobs[1], now).priority(config.weights)
