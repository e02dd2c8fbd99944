"""Samples of the cluster's load (CPUs used and total, running and pending jobs), kept in the
database so that the dashboard's chart survives a restart and is the same on every API
process; the table is bounded by deleting samples older than the retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from conductor.store.records import Stats, UtilisationSample


class SampleStore(Protocol):
    def stats(self, *, live_after: datetime | None = None) -> Stats: ...

    def add_sample(self, sample: UtilisationSample, *, keep_after: datetime) -> None: ...


class Sampler:
    def __init__(self, store: SampleStore, *, interval: timedelta, keep: timedelta) -> None:
        self.store = store
        self.interval = interval
        self.keep = keep
        self._next: datetime | None = None

    def maybe_sample(self, now: datetime, live_after: datetime) -> UtilisationSample | None:
        """Take a sample when one is due; the sample taken, if any."""
        if self._next is not None and now < self._next:
            return None
        self._next = now + self.interval
        s = self.store.stats(live_after=live_after)
        sample = UtilisationSample(
            time=now, total_cpus=s.total_cpus, used_cpus=s.used_cpus, running_jobs=s.running_jobs, pending_jobs=s.pending_jobs
        )
        self.store.add_sample(sample, keep_after=now - self.keep)
        return sample
