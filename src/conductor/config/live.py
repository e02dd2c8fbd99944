"""The configuration a process runs with, and its reload.

Every process (API server, scheduler; `conductor up` is both) holds a `LiveConfig`. The file is
read at start: a bad file stops the start with the line and the rule. Afterwards each process
compares, at most once per `check_every` seconds, the generation stored in the database with
the one it loaded; `scontrol reconfigure` checks the file and then bumps the generation, so
every process of the cluster rereads it within a second, whichever one served the request. A
reread that fails (the file broke in between) keeps the configuration the process has, logged.
The partition states `scontrol update PartitionName=...` sets travel the same way.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from conductor.config.loader import ConfigError, load_config
from conductor.config.model import ClusterConfig, Partition, Qos, Tres
from conductor.domain.accounting import Accounting, QosSpec
from conductor.domain.multifactor import Weights
from conductor.scheduler.limits import Limits, PartitionLimit, QosLimit
from conductor.scheduler.policy import Backfill, NodeView
from conductor.scheduler.priority import PriorityConfig

log = logging.getLogger("conductor.config")


class ConfigStateStore(Protocol):
    def config_state(self) -> tuple[int, dict[str, str]]: ...

    def file_generation(self) -> int: ...

    def accounting(self) -> Accounting: ...


@functools.lru_cache(maxsize=256)  # records are frozen: each converted once, not at every submission
def qos_from_record(q: QosSpec) -> Qos:
    """A QOS added with sacctmgr, as the file's QOS are modelled. MaxWall is stored in seconds:
    it goes in as it is, not through the file's time grammar (where a number is minutes)."""
    qos = Qos.model_validate({
        "Priority": q.priority, "MaxJobsPerUser": q.max_jobs_per_user, "MaxSubmitJobsPerUser": q.max_submit_jobs_per_user,
        "MaxTRESPerUser": Tres(cpu=q.max_cpus_per_user, mem=q.max_memory_per_user),
        "GrpTRES": Tres(cpu=q.grp_cpus, mem=q.grp_memory),
    })
    return qos.model_copy(update={"max_wall": q.max_wall})


@dataclass(frozen=True, slots=True)
class Effective:
    """One consistent view: the file's configuration (None: no file), the states set over it,
    and the accounts, associations and QOS of the database (sacctmgr)."""

    config: ClusterConfig | None = None
    states: Mapping[str, str] = field(default_factory=dict)
    generation: int = -1
    accounting: Accounting = field(default_factory=Accounting)

    @property
    def enforce_associations(self) -> bool:
        """AccountingStorageEnforce=associations (or limits, qos, safe): a job needs an association."""
        return self.config is not None and self.config.enforces_associations()

    def qos_table(self) -> dict[str, Qos]:
        """Every QOS: the file's and those added with sacctmgr (a name in both is the file's),
        and the default one, without limits unless either defines it."""
        table = dict(self.config.qos) if self.config is not None else {}
        for name, record in self.accounting.qos.items():
            table.setdefault(name, qos_from_record(record))
        table.setdefault(self.default_qos, Qos())
        return table

    @property
    def default_qos(self) -> str:
        return self.config.default_qos if self.config is not None else "normal"

    def partition(self, name: str) -> Partition | None:
        return self.config.partitions.get(name) if self.config is not None else None

    def partition_state(self, name: str) -> str:
        state = self.states.get(name)
        if state is not None:
            return state
        part = self.partition(name)
        return part.state if part is not None else "UP"

    def qos(self, name: str | None) -> tuple[str, Qos] | None:
        """The QOS a job of `name` (None: the default) runs under; None: no such QOS."""
        wanted = name or self.default_qos
        table = self.qos_table()
        return (wanted, table[wanted]) if wanted in table else None

    def limits(self) -> Limits | None:
        """The limits as data for the policy; None when there are none (no file, no states set)."""
        if self.config is None and not self.states and not self.accounting.active and not self.accounting.qos:
            return None
        partitions: dict[str, PartitionLimit] = {}
        names = set(self.states) | (set(self.config.partitions) if self.config is not None else set())
        for name in names:
            part = self.partition(name)
            partitions[name] = PartitionLimit(
                state=self.partition_state(name), max_time=part.max_time if part is not None else None,
                max_cpus_per_node=part.max_cpus_per_node if part is not None else None,
            )
        qos: dict[str, QosLimit] = {}
        if self.config is not None or self.accounting.qos:
            for name, q in self.qos_table().items():
                qos[name] = QosLimit(
                    max_jobs_per_user=q.max_jobs_per_user,
                    max_submit_jobs_per_user=q.max_submit_jobs_per_user,
                    max_cpus_per_user=q.max_tres_per_user.cpu,
                    max_memory_per_user=q.max_tres_per_user.mem,
                    max_wall=q.max_wall,
                    grp_cpus=q.grp_tres.cpu,
                    grp_memory=q.grp_tres.mem,
                )
        return Limits(
            partitions=partitions, qos=qos, default_qos=self.default_qos,
            accounting=self.accounting if self.accounting.active else None,
            # A file without partitions leaves them to the workers: none is then missing.
            declared_partitions=frozenset(self.config.partitions)
            if self.config is not None and self.config.partitions else None,
        )

    def priority(self) -> PriorityConfig | None:
        """The multifactor priority's configuration; None: no weight set (priority order as before)."""
        config = self.config
        if config is None:
            return None
        p = config.priority
        weights = Weights(
            age=p.age, fairshare=p.fairshare, job_size=p.job_size, partition=p.partition, qos=p.qos,
            max_age=p.max_age, favor_small=p.favor_small,
        )
        if not weights.active:
            return None
        top_part = max((x.priority_job_factor for x in config.partitions.values()), default=0)
        table = self.qos_table()
        top_qos = max((q.priority for q in table.values()), default=0)
        return PriorityConfig(
            weights=weights,
            half_life=p.decay_half_life,
            partitions={n: x.priority_job_factor / top_part for n, x in config.partitions.items()} if top_part else {},
            qos={n: q.priority / top_qos for n, q in table.items()} if top_qos else {},
            default_qos=config.default_qos,
            accounting=self.accounting,
        )

    def backfill(self, base: Backfill) -> Backfill:
        if self.config is None:
            return base
        b = self.config.backfill
        return Backfill(
            depth=b.depth if b.depth is not None else base.depth,
            max_job_test=b.max_job_test if b.max_job_test is not None else base.max_job_test,
            enabled=b.enabled if b.enabled is not None else base.enabled,
        )


class LiveConfig:
    """The process's configuration, reloaded when the cluster's generation changes."""

    def __init__(self, path: Path | None, store: ConfigStateStore | None = None, *, check_every: float = 1.0) -> None:
        self.path = path
        self.store = store
        self.check_every = check_every
        self._lock = threading.Lock()
        config = load_config(path) if path is not None else None  # ConfigError: the start fails
        generation, states = store.config_state() if store is not None else (0, {})
        accounting = store.accounting() if store is not None else Accounting()
        self._file_generation = store.file_generation() if store is not None else 0
        self.current = Effective(config, states, generation, accounting)
        self._checked = time.monotonic()
        self._node_partitions: dict[str, frozenset[str]] = {}
        self._limits: tuple[Effective, Limits | None] | None = None
        self._priority: tuple[Effective, PriorityConfig | None] | None = None

    def check_file(self) -> ClusterConfig | None:
        """The file as it is now, validated (ConfigError otherwise); nothing changes."""
        return load_config(self.path) if self.path is not None else None

    def refresh(self, *, force: bool = False) -> bool:
        """Take a new generation if there is one; True when the configuration changed."""
        now = time.monotonic()
        if self.store is None or (not force and now - self._checked < self.check_every):
            return False
        with self._lock:
            self._checked = now
            generation, states = self.store.config_state()
            current = self.current
            if generation == current.generation:
                return False
            accounting = self.store.accounting()
            config = current.config
            # The file is reread on a reconfigure only: a partition state or an account changed
            # must not bring in a file edited but not yet checked.
            file_generation = self.store.file_generation()
            if self.path is not None and file_generation != self._file_generation:
                self._file_generation = file_generation
                try:
                    config = load_config(self.path)
                except ConfigError as exc:
                    log.error("configuration not reloaded, the one loaded before stays in force: %s", exc)
            self.current = Effective(config, states, generation, accounting)
            self._node_partitions = {}
            log.info("configuration generation %d in force", generation)
            return True

    def generation(self) -> int:
        return self.current.generation

    def limits(self) -> Limits | None:
        current = self.current
        cached = self._limits
        if cached is None or cached[0] is not current:
            cached = self._limits = (current, current.limits())
        return cached[1]

    def backfill(self, base: Backfill) -> Backfill:
        return self.current.backfill(base)

    def tiers(self) -> dict[str, int] | None:
        """Each partition's PriorityTier, when they differ (None: they do not order anything)."""
        config = self.current.config
        if config is None:
            return None
        tiers = {name: p.priority_tier for name, p in config.partitions.items()}
        return tiers if len(set(tiers.values())) > 1 else None

    def priority(self) -> PriorityConfig | None:
        current = self.current
        cached = self._priority
        if cached is None or cached[0] is not current:
            cached = self._priority = (current, current.priority())
        return cached[1]

    def assign(self, nodes: list[NodeView]) -> list[NodeView]:
        """Nodes with the partitions the file gives them (without partitions in the file, the
        ones their workers declared)."""
        config = self.current.config
        if config is None or not config.partitions:
            return nodes
        cache = self._node_partitions
        for node in nodes:
            parts = cache.get(node.name)
            if parts is None:
                parts = cache[node.name] = config.node_partitions(node.name)
                if not parts:
                    # Else nothing says why its CPUs stay idle while jobs wait (reason Resources).
                    log.warning("node %s is in no partition of the configuration file (no partition's Nodes "
                                "names it): no job runs on it", node.name)
            node.partitions = parts
        return nodes
