"""Routes of the cluster configuration: `scontrol reconfigure`, `scontrol update
PartitionName=X State=...`, and the partitions as the file and the nodes make them.

Both changes are an administrator's. Each is stored in the database (a new configuration
generation), and every API and scheduler process takes it within a second (config/live.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from conductor.api import models
from conductor.api.auth import CurrentPrincipal
from conductor.bus import SCHEDULER, Bus
from conductor.config.live import LiveConfig
from conductor.config.model import PARTITION_STATES
from conductor.domain.job import Job
from conductor.domain.jobfiles import CLUSTER_NAME
from conductor.errors import Forbidden, NotFound
from conductor.scheduler.limits import Limits, Usage
from conductor.scheduler.policy import PendingJob, order_key
from conductor.scheduler.priority import Multifactor
from conductor.services.principal import Principal
from conductor.services.requests import one_of
from conductor.settings import Settings
from conductor.store import Store


class AppContext(Protocol):
    """What these routes use of api.app.AppContext."""

    store: Store
    bus: Bus
    settings: Settings
    config: LiveConfig
    priorities: PriorityView

    def live_after(self) -> datetime: ...

router = APIRouter(tags=["cluster"])

_ERRORS = models.error_responses(400, 403, 404, 422)


class PartitionStateChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str = Field(description="UP, DOWN (nothing starts), DRAIN (no new jobs) or INACTIVE (neither).")

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        return one_of(value, PARTITION_STATES)


class ReconfigureResponse(BaseModel):
    generation: int = Field(description="The configuration generation now in force.")
    config: str | None = Field(description="The file read (None: no file; workers' partitions, QOS normal).")
    message: str


def _ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def _admin(principal: Principal, what: str) -> None:
    if not principal.admin:
        raise Forbidden(f"only an administrator may {what}")


class ClusterConfig(BaseModel):
    """What `scontrol show config` prints of the server's settings."""

    cluster_name: str
    kill_wait: float = Field(description="Seconds between SIGTERM and SIGKILL (CONDUCTOR_KILL_WAIT).")
    heartbeat_timeout: float = Field(description="Seconds of silence after which a node is declared dead.")
    max_array_tasks: int = Field(description="Tasks an array may have (CONDUCTOR_MAX_ARRAY_TASKS).")
    default_time_limit: int | None = Field(description="Seconds a job without a time limit gets; None: UNLIMITED.")
    priority_type: str = Field(description="priority/multifactor when weights are configured, else priority/basic.")
    config_file: str | None = Field(description="The configuration file read (CONDUCTOR_CONFIG); None: none.")
    generation: int = Field(description="The configuration generation in force.")


@router.get("/config", response_model=ClusterConfig, responses=_ERRORS)
def cluster_config(request: Request, principal: CurrentPrincipal) -> Any:
    """The server's settings, as `scontrol show config` shows them (tools read MinJobAge,
    MaxArraySize, KillWait there)."""
    ctx = _ctx(request)
    settings = ctx.settings
    path = ctx.config.path
    return ClusterConfig(
        cluster_name=CLUSTER_NAME,
        kill_wait=settings.kill_wait,
        heartbeat_timeout=settings.heartbeat_timeout,
        max_array_tasks=settings.max_array_tasks,
        default_time_limit=settings.default_time_limit(),
        priority_type="priority/multifactor" if ctx.config.priority() is not None else "priority/basic",
        config_file=str(path) if path is not None else None,
        generation=ctx.config.generation(),
    )


@router.post("/config/reconfigure", response_model=ReconfigureResponse, responses=_ERRORS)
def reconfigure(request: Request, principal: CurrentPrincipal) -> Any:
    """scontrol reconfigure: read the configuration file again, in every server. A file that
    breaks a rule is refused with its line and the rule, and the configuration in force stays."""
    _admin(principal, "reconfigure the cluster")
    ctx = _ctx(request)
    config = ctx.config.check_file()  # ConfigError (400) before anything changes
    ctx.store.bump_config_generation(keep_partition_states=config is not None and config.keeps_partition_states())
    ctx.config.refresh(force=True)
    ctx.bus.publish(SCHEDULER)
    path = ctx.config.path
    return ReconfigureResponse(
        generation=ctx.config.generation(),
        config=str(path) if path is not None else None,
        message="configuration reloaded" if path is not None else "no configuration file (CONDUCTOR_CONFIG unset)",
    )


@router.post("/partitions/{name}/state", response_model=models.Partition, responses=_ERRORS)
def set_partition_state(name: str, body: PartitionStateChange, request: Request, principal: CurrentPrincipal) -> Any:
    """scontrol update PartitionName=NAME State=UP|DOWN|DRAIN|INACTIVE."""
    _admin(principal, "change a partition's state")
    ctx = _ctx(request)
    if not any(p.name == name for p in partition_list(ctx)):
        raise NotFound(f"Invalid partition name specified: '{name[:64]}'", field="name")
    ctx.store.set_partition_state(name, body.state)
    ctx.config.refresh(force=True)
    ctx.bus.publish(SCHEDULER)
    return next(p for p in partition_list(ctx) if p.name == name)


def partition_list(ctx: AppContext) -> list[models.Partition]:
    """The file's partitions (every one, with or without nodes), else those the nodes declare."""
    ctx.config.refresh()
    effective = ctx.config.current
    config = effective.config
    found: dict[str, models.Partition] = {}
    default = ctx.settings.partition
    if config is not None and config.partitions:
        default = config.default_partition() or default
        for name, p in config.partitions.items():
            accounts = p.accounts()
            found[name] = models.Partition(
                name=name, default=name == default, state=effective.partition_state(name), max_time=p.max_time,
                nodes=[], total_cpus=0, default_time=p.default_time, priority_tier=p.priority_tier,
                max_cpus_per_node=p.max_cpus_per_node,
                allow_accounts=sorted(accounts) if accounts is not None else None,
            )
    for n in ctx.store.list_nodes(live_after=ctx.live_after()):
        for name in node_partitions(ctx, n.name, n.partitions):
            part = found.get(name)
            if part is None:
                if config is not None and config.partitions:
                    continue
                part = found[name] = models.Partition(
                    name=name, default=name == default, state=effective.partition_state(name), max_time=None,
                    nodes=[], total_cpus=0,
                )
            part.nodes.append(n.name)
            part.total_cpus += n.cpus
    return sorted(found.values(), key=lambda p: (not p.default, p.name))


def node_partitions(ctx: AppContext, node: str, declared: list[str]) -> list[str]:
    config = ctx.config.current.config
    if config is None or not config.partitions:
        return declared
    return sorted(config.node_partitions(node))


# ------------------------------------------------------------------ sprio
class PriorityView:
    """The multifactor priority as the scheduler computes it, for squeue (%Q, %p) and sprio:
    the stored decayed usage and the nodes' size, read at most once a
    second. None when no weight is configured."""

    def __init__(self, store: Store, config: LiveConfig) -> None:
        self.store = store
        self.config = config
        self._cached: tuple[float, object, Multifactor | None] = (0.0, None, None)

    def current(self) -> Multifactor | None:
        import time

        self.config.refresh()
        config = self.config.priority()
        read_at, cached_config, multifactor = self._cached
        now = time.monotonic()
        if config is cached_config and now - read_at < 1.0:
            return multifactor
        if config is None:
            multifactor = None
        else:
            nodes = self.store.node_shapes()
            usage = self.store.usage_snapshot(config.half_life) if config.weights.fairshare else {}
            multifactor = Multifactor(
                config, usage, cluster_cpus=sum(len(n.cpu_ids) for n in nodes), cluster_nodes=len(nodes)
            )
        self._cached = (now, config, multifactor)
        return multifactor

    def assign(self, jobs: list[PendingJob]) -> None:
        """Give a backlog its tiers, multifactor priorities and order (as the scheduler's loop does)."""
        import time

        tiers = self.config.tiers()
        if tiers is not None:
            for job in jobs:
                job.tier = tiers.get(job.partition, 0)
        multifactor = self.current()
        if multifactor is not None:
            multifactor.assign(jobs, time.time())
        if tiers is not None or multifactor is not None:
            jobs.sort(key=order_key)

    def limits(
        self,
    ) -> tuple[Limits | None, dict[tuple[str, str | None], Usage] | None, dict[tuple[str, str], Usage] | None]:
        limits = self.config.limits()
        if limits is None:
            return None, None, None
        by_qos, by_account = self.store.running_holdings()
        return limits, by_qos, by_account if limits.accounting is not None else None

    def of(self, jobs: list[Job]) -> dict[int, int]:
        """The multifactor priority of each pending job among `jobs` (none when not configured)."""
        return self.computed(jobs, self.current())

    @staticmethod
    def computed(jobs: list[Job], multifactor: Multifactor | None) -> dict[int, int]:
        """`of` by the weights `current` gave before (None: none configured, and the jobs'
        multifactor columns need not have been read)."""
        import time

        if multifactor is None:
            return {}
        pending = [j for j in jobs if j.state == "PENDING" and not j.held]
        if not pending:
            return {}
        views = [
            PendingJob(
                id=j.id, cpus=j.cpus_per_task * j.ntasks, partition=j.partition, user=j.user_name, qos=j.qos,
                nice=j.nice, explicit_priority=j.priority, eligible_time=_eligible(j), account=j.account,
            )
            for j in pending
        ]
        multifactor.assign(views, time.time())
        return {v.id: v.priority for v in views}


class PriorityWeightsBody(BaseModel):
    age: int
    fairshare: int
    job_size: int
    partition: int
    qos: int


class JobPriority(BaseModel):
    job_id: int
    partition: str
    user: str
    account: str | None = Field(default=None, description="The account charged (None: none).")
    qos: str
    priority: int = Field(description="What the scheduler orders by (an explicit --priority replaces the sum).")
    explicit: bool = Field(description="Whether an explicit priority replaces the multifactor sum.")
    age: float = Field(description="Normalised factors, in [0, 1]; the weighted ones are these times the weights.")
    fairshare: float
    job_size: float
    partition_factor: float
    qos_factor: float
    nice: int


class PriorityList(BaseModel):
    multifactor: bool = Field(description="False: no weight is configured; jobs go by explicit priority and age.")
    weights: PriorityWeightsBody | None
    jobs: list[JobPriority]


@router.get("/priority", response_model=PriorityList, responses=_ERRORS)
def job_priorities(
    request: Request, principal: CurrentPrincipal, jobs: str | None = None, users: str | None = None
) -> Any:
    """sprio: each pending job's priority factors (multifactor priority, the configuration's
    weights), computed as the scheduler computes them."""
    import time

    from conductor.errors import Invalid

    # Checked before anything else, whether or not priorities are configured: a malformed
    # question gets its 400 either way.
    for name, value in (("jobs", jobs), ("users", users)):
        if value is not None and not value.strip(", "):
            raise Invalid("give one or more values, comma separated, or leave it out", field=name)
    wanted_ids = _int_list(jobs, "jobs")
    if users:
        _no_control(users, "users")
    wanted_users = {u.strip(" ") for u in users.split(",") if u.strip(" ")} if users else None
    ctx = _ctx(request)
    multifactor = ctx.priorities.current()
    if multifactor is None:
        return PriorityList(multifactor=False, weights=None, jobs=[])
    config = multifactor.config
    _, backlog = ctx.store.pending_snapshot()
    pending = [
        j for j in backlog
        if (wanted_ids is None or j.id in wanted_ids) and (wanted_users is None or j.user in wanted_users)
    ]
    now = time.time()
    multifactor.assign(pending, now)
    w = config.weights
    out = []
    for job in sorted(pending, key=lambda j: j.id):
        f = multifactor.factors(job, now)
        out.append(JobPriority(
            job_id=job.id, partition=job.partition, user=job.user, account=job.account, qos=job.qos or config.default_qos,
            priority=job.priority, explicit=job.explicit_priority > 0, age=f.age, fairshare=f.fairshare,
            job_size=f.job_size, partition_factor=f.partition, qos_factor=f.qos, nice=job.nice,
        ))
    return PriorityList(
        multifactor=True,
        weights=PriorityWeightsBody(age=w.age, fairshare=w.fairshare, job_size=w.job_size, partition=w.partition,
                                    qos=w.qos),
        jobs=out,
    )


def _eligible(job: Job) -> float:
    since = job.eligible_time or job.submit_time
    return since.timestamp() if since is not None else 0.0


def _no_control(text: str, name: str) -> None:
    """A 400 naming `name` for a control character: a list's items lose only the spaces around
    them, so `jobs=1%0A` is not taken for job 1."""
    from conductor.domain.text import first_control_character
    from conductor.errors import Invalid

    index = first_control_character(text)
    if index is not None:
        raise Invalid(
            f"must not contain control characters (U+{ord(text[index]):04X} at position {index + 1})", field=name
        )


def _int_list(text: str | None, name: str) -> set[int] | None:
    from conductor.errors import Invalid

    if not text:
        return None
    _no_control(text, name)
    out = set()
    for item in text.split(","):
        item = item.strip(" ")
        if not item:
            continue
        if not (item.isascii() and item.isdigit()) or len(item) > 18:
            raise Invalid(f"'{item[:40]}' is not a job id (a positive integer)", field=name)
        out.add(int(item))
    return out


# ------------------------------------------------------------------ sshare
class ShareRowOut(BaseModel):
    account: str
    user: str = Field(description="Empty for an account's line.")
    depth: int = Field(description="0 for root; sshare indents an account's children by one space more.")
    raw_shares: int
    norm_shares: float
    raw_usage: int = Field(description="CPU-seconds decayed with PriorityDecayHalfLife.")
    norm_usage: float
    effective_usage: float
    fairshare: float


class ShareList(BaseModel):
    multifactor: bool
    total_usage: int
    rows: list[ShareRowOut] = Field(description="root, then each account before its users and sub-accounts.")


@router.get("/fairshare", response_model=ShareList, responses=_ERRORS)
def fair_shares(request: Request, principal: CurrentPrincipal) -> Any:
    """sshare: the classic fair-share tree: every account and association with its shares,
    decayed usage and factor; users charged to no association under root with one share (users
    with pending jobs and no usage included)."""
    from conductor.domain.accounting import ROOT, fair_share_tree

    ctx = _ctx(request)
    multifactor = ctx.priorities.current()
    if multifactor is None:
        return ShareList(multifactor=False, total_usage=0, rows=[])
    accounting = multifactor.config.accounting
    # Pending users without usage are shown too (as of now, not the view's second); factors
    # are the scheduler's, which counts users by their usage alone.
    rows = fair_share_tree(accounting, multifactor.usage, ctx.store.pending_users())
    out = []
    for r in rows:
        factor = r.fairshare
        if r.user:
            factor = multifactor.fairshare(r.user, None if r.account == ROOT else r.account)
        out.append(ShareRowOut(
            account=r.account, user=r.user, depth=r.depth, raw_shares=r.raw_shares, norm_shares=r.norm_shares,
            raw_usage=int(r.raw_usage), norm_usage=r.norm_usage, effective_usage=r.effective_usage,
            fairshare=factor,
        ))
    return ShareList(multifactor=True, total_usage=int(rows[0].raw_usage), rows=out)
