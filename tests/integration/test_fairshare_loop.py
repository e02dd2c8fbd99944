"""Multifactor priority in the scheduler loop, against a real store (SQLite and PostgreSQL): a
user who has used the cluster heavily is ordered after one who has not, with equal submissions;
usage decays and accrues incrementally."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from conductor.bus import Bus
from conductor.config.live import LiveConfig
from conductor.scheduler.loop import Scheduler
from conductor.store import Store, utcnow

WEIGHTS = """\
[priority]
PriorityWeightFairshare = 10000
PriorityWeightAge = {age}
PriorityDecayHalfLife = "1:00:00"
"""


def job_row(user: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": "job", "user_name": user, "partition": "debug", "cpus_per_task": 1, "work_dir": "/tmp",
        "script": "#!/bin/bash\ntrue\n", "environment": "{}", "submit_time": utcnow(), "time_limit": 600,
    }
    row.update(values)
    return row


def busy_cluster(store: Store, tmp_path: Path, text: str | None) -> tuple[Scheduler, int]:
    """One 4-CPU node, filled by a job of ann's that started now."""
    store.register_node(
        name="n1", cpus=4, cpu_ids=[0, 1, 2, 3], cpu_binding=False, memory_mb=4000, partitions=["debug"],
        instance="test:n1", hostname="test-host", stale_before=utcnow() - timedelta(seconds=30),
    )
    path = None
    if text is not None:
        path = tmp_path / "cluster.toml"
        path.write_text(text)
    scheduler = Scheduler(store, Bus(), heartbeat_timeout=3600, config=LiveConfig(path, store))
    [filler] = store.submit([job_row("ann", cpus_per_task=4)])
    assert [p.job_id for p in scheduler.run_pass().placements] == [filler]
    return scheduler, filler


@pytest.mark.parametrize("weights", [False, True])
def test_the_heavy_user_waits_behind_the_light_one(store: Store, tmp_path: Path, weights: bool) -> None:
    scheduler, _ = busy_cluster(store, tmp_path, WEIGHTS.format(age=0) if weights else None)
    # An hour later (as the usage sees it), ann has used 4 CPU-hours; bob nothing.
    usage = store.refresh_usage(3600.0, now=utcnow() + timedelta(hours=1))
    assert usage[("ann", "")] == pytest.approx(4 * 3600 / 2 / 0.6931471805599453, rel=1e-3)
    [ann] = store.submit([job_row("ann")])
    [bob] = store.submit([job_row("bob")])
    scheduler.invalidate()
    scheduler.run_pass()
    reasons = {j: store.get_job(j).reason for j in (ann, bob)}  # type: ignore[union-attr]
    if weights:
        # Fair share 2^(-U/S): ann U=1, S=1 (the one user with usage) -> 0.5; bob, no usage, 1.
        # Bob's job goes first.
        assert reasons == {ann: "Priority", bob: "Resources"}
        order = [j.id for j in scheduler._ordered]
        assert order.index(bob) < order.index(ann)
        priorities = {j.id: j.priority for j in scheduler._ordered}
        assert (priorities[bob], priorities[ann]) == (10000, 5000)
    else:
        assert reasons == {ann: "Resources", bob: "Priority"}  # submission order


def test_usage_decays_and_accrues_incrementally(store: Store, tmp_path: Path) -> None:
    busy_cluster(store, tmp_path, WEIGHTS.format(age=0))
    start = utcnow()
    one = store.refresh_usage(3600.0, now=start + timedelta(hours=1))[("ann", "")]
    two = store.refresh_usage(3600.0, now=start + timedelta(hours=2))[("ann", "")]
    # All at once from the start gives the same as in two steps.
    assert two == pytest.approx(one / 2 + one, rel=1e-3)
    assert store.usage_snapshot(3600.0, now=start + timedelta(hours=3))[("ann", "")] == pytest.approx(two / 2, rel=1e-3)


def test_a_new_job_gets_its_priority_on_arrival(store: Store, tmp_path: Path) -> None:
    scheduler, _ = busy_cluster(store, tmp_path, WEIGHTS.format(age=1000))
    scheduler.invalidate()
    scheduler.run_pass()
    [late] = store.submit([job_row("carl", nice=100)])
    scheduler.run_pass()  # a pass over the new job alone
    [job] = [j for j in scheduler._ordered if j.id == late]
    assert job.priority == 10000 - 100  # fair share 1 (no usage), age 0, less nice
    [explicit] = store.submit([job_row("dora", priority=50_000)])
    scheduler.run_pass()
    assert scheduler._ordered[0].id == explicit and scheduler._ordered[0].priority == 50_000


def test_partition_tiers_order_before_priority(store: Store, tmp_path: Path) -> None:
    text = ('[partitions.debug]\nNodes = "ALL"\nDefault = true\nPriorityTier = 1\n'
            '[partitions.urgent]\nNodes = "ALL"\nPriorityTier = 5\n')
    scheduler, _ = busy_cluster(store, tmp_path, text)
    [first] = store.submit([job_row("ann", priority=90_000)])
    [urgent] = store.submit([job_row("bob", partition="urgent")])
    scheduler.invalidate()
    scheduler.run_pass()
    assert [j.id for j in scheduler._ordered][:2] == [urgent, first]
    assert store.get_job(urgent).reason == "Resources"  # type: ignore[union-attr]
    [later] = store.submit([job_row("carl", partition="urgent")])
    scheduler.run_pass()  # new jobs only: inserted in tier order too
    assert [j.id for j in scheduler._ordered][:3] == [urgent, later, first]
