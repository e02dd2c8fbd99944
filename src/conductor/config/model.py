"""The configuration file's schema: typed pydantic models, every value checked by its rule.

Keys are Slurm's names (`MaxTime`, `PriorityTier`, `MaxTRESPerUser`...), so a site reads the
file as it reads its slurm.conf. Times use Slurm's time grammar, memory its size grammar.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from conductor.domain.hostlist import expand_hostlist
from conductor.domain.memory import parse_memory_mb
from conductor.domain.numbers import whole_number
from conductor.domain.timespec import parse_time_limit
from conductor.errors import Invalid

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PARTITION_STATES = ("UP", "DOWN", "DRAIN", "INACTIVE")
RECONFIG_WORDS = ("keeppartstate", "keeppartinfo")
ENFORCE_WORDS = ("associations", "limits", "qos", "safe", "wckeys", "nojobs", "nosteps", "all")
# Upper bounds. A count may be stored (sacctmgr's QOS, the jobs' columns) in a 32-bit INTEGER
# column of PostgreSQL; a node's memory in MB is bounded as CONDUCTOR_MEMORY_MB is (1 EiB).
MAX_COUNT = 2**31 - 1
MAX_NODE_MEMORY_MB = 2**40


def _time(value: object) -> int | None:
    """Slurm time grammar -> seconds (None: UNLIMITED); a bare integer is minutes, as in Slurm."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("must be a Slurm time such as 1:00:00, 2-00:00:00, a number of minutes, or UNLIMITED")
    try:
        return parse_time_limit(value, field="time")
    except Invalid as exc:
        raise ValueError(exc.message) from None


def _yes_no(value: object) -> object:
    if isinstance(value, str) and value.strip().upper() in ("YES", "NO"):
        return value.strip().upper() == "YES"
    return value


Time = Annotated[int | None, BeforeValidator(_time)]
YesNo = Annotated[bool, BeforeValidator(_yes_no)]


class _Strict(BaseModel):
    # strict: pydantic's lax mode read `true` as 1, "1_000" as 1000 and 8.0 as 8. A number must be
    # a TOML integer; what the file may write as text (times, memory sizes, YES/NO, states) is
    # converted by the `before` validators, each with its own rule.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, strict=True)


class Tres(_Strict):
    """A TRES limit: CPUs and memory (MB); unset means no limit."""

    cpu: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    mem: int | None = Field(default=None, ge=0, le=MAX_COUNT, description="MB (Slurm's size grammar: 64G, 500M, 1T).")

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: object) -> object:
        # Slurm writes TRES as "cpu=16,mem=64G"; a TOML table {cpu = 16, mem = "64G"} works too.
        if isinstance(value, str):
            pairs: dict[str, str] = {}
            for item in value.split(","):
                name, eq, amount = item.strip().partition("=")
                if not eq or not name:
                    raise ValueError(f"'{item.strip()}' is not NAME=COUNT (e.g. cpu=16,mem=64G)")
                pairs[name.strip().lower()] = amount.strip()
            value = _cpu_count(pairs)
        if isinstance(value, dict):
            unknown = set(value) - {"cpu", "mem"}
            if unknown:
                raise ValueError(f"unknown TRES {', '.join(sorted(unknown))}: only cpu and mem are limited here")
            out = dict(value)
            if isinstance(out.get("mem"), str):
                try:
                    out["mem"] = parse_memory_mb(out["mem"], field="mem")
                except Invalid as exc:
                    raise ValueError(exc.message) from None
            return out
        return value


def tres_cpu(text: str) -> int:
    """A CPU count written as text (`cpu=16`), as a number: the strict model takes no digits in
    a string. ValueError naming the rule."""
    count = whole_number(text, MAX_COUNT)
    if count is None:
        raise ValueError(f"cpu={text[:40]} must be a whole number from 0 to {MAX_COUNT}")
    return count


def _cpu_count(pairs: dict[str, str]) -> dict[str, object]:
    """The text form's pairs, its cpu count as a number."""
    out: dict[str, object] = dict(pairs)
    if "cpu" in pairs:
        out["cpu"] = tres_cpu(pairs["cpu"])
    return out


# A partition's node list names at most this many hosts (the host list parser's own bound).
MAX_HOSTS = 100_000


@dataclass(frozen=True, slots=True)
class _Members:
    """A partition's node list, made ready for membership tests."""

    source: object  # the `nodes` value it was made from
    every: bool  # ALL
    patterns: tuple[str, ...]
    hosts: frozenset[str]

    @classmethod
    def of(cls, nodes: str | list[str]) -> _Members:
        items = [nodes] if isinstance(nodes, str) else nodes
        patterns = tuple(item for item in items if any(c in item for c in "*?"))
        hosts = frozenset(
            host for item in items if item.upper() != "ALL" and item not in patterns
            for host in expand_hostlist(item, field="Nodes")
        )
        return cls(nodes, any(item.upper() == "ALL" for item in items), patterns, hosts)

    def has(self, name: str) -> bool:
        return self.every or name in self.hosts or any(fnmatch.fnmatchcase(name, p) for p in self.patterns)


class Partition(_Strict):
    nodes: str | list[str] = Field(
        default="ALL", alias="Nodes",
        description="Node names: ALL, a host list (node[01-16]), glob patterns (gpu*), or a list of them.",
    )
    default: YesNo = Field(default=False, alias="Default")
    max_time: Time = Field(default=None, alias="MaxTime")
    default_time: Time = Field(default=None, alias="DefaultTime")
    priority_tier: int = Field(default=1, ge=0, le=65533, alias="PriorityTier")
    priority_job_factor: int = Field(default=1, ge=0, le=65533, alias="PriorityJobFactor",
                                     description="The partition factor of the multifactor priority.")
    max_cpus_per_node: int | None = Field(default=None, ge=1, le=MAX_COUNT, alias="MaxCPUsPerNode")
    allow_accounts: str | list[str] = Field(default="ALL", alias="AllowAccounts")
    state: Literal["UP", "DOWN", "DRAIN", "INACTIVE"] = Field(default="UP", alias="State")

    @field_validator("state", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("nodes")
    @classmethod
    def _nodes(cls, value: str | list[str]) -> str | list[str]:
        total = 0  # over the whole list: 30 items of 100,000 hosts each would be 3,000,000
        for item in [value] if isinstance(value, str) else value:
            if item.upper() == "ALL" or any(c in item for c in "*?"):
                continue
            try:
                total += len(expand_hostlist(item, field="Nodes", max_hosts=MAX_HOSTS))
            except Invalid as exc:
                raise ValueError(exc.message) from None
            if total > MAX_HOSTS:
                raise ValueError(f"the list names more than the maximum of {MAX_HOSTS} hosts in all")
        return value

    @model_validator(mode="after")
    def _times(self) -> Partition:
        if self.default_time is not None and self.max_time is not None and self.default_time > self.max_time:
            raise ValueError("DefaultTime must not exceed MaxTime")
        return self

    def accounts(self) -> frozenset[str] | None:
        """The accounts allowed (None: all)."""
        items = [self.allow_accounts] if isinstance(self.allow_accounts, str) else self.allow_accounts
        names = {a.strip() for item in items for a in item.split(",") if a.strip()}
        return None if not names or "ALL" in {n.upper() for n in names} else frozenset(names)

    def has_node(self, name: str) -> bool:
        return self._members().has(name)

    def _members(self) -> _Members:
        # The host lists are expanded once per instance, not at every call. The result is kept
        # in the instance's __dict__, as functools.cached_property keeps its value: a frozen model
        # allows that, and pydantic's ==, hash and dumps read the fields alone (a PrivateAttr
        # would take part in ==). It is kept with the `nodes` it was made from, because
        # model_copy(update=...) copies __dict__ and would otherwise carry it over stale.
        members = self.__dict__.get("_node_members")
        if not isinstance(members, _Members) or members.source is not self.nodes:
            members = self.__dict__["_node_members"] = _Members.of(self.nodes)
        return members


class NodeSpec(_Strict):
    """Nodes as slurm.conf declared them (import-slurm keeps them): for reference and for the
    partitions' node lists; a worker still declares its own CPUs and memory when it joins."""

    cpus: int | None = Field(default=None, ge=1, le=100_000, alias="CPUs")
    real_memory: int | None = Field(default=None, ge=1, le=MAX_NODE_MEMORY_MB, alias="RealMemory", description="MB")
    features: str | list[str] | None = Field(default=None, alias="Features")
    weight: int | None = Field(default=None, ge=0, le=MAX_COUNT, alias="Weight")


class Qos(_Strict):
    priority: int = Field(default=0, ge=0, le=MAX_COUNT, alias="Priority")
    max_jobs_per_user: int | None = Field(default=None, ge=0, le=MAX_COUNT, alias="MaxJobsPerUser")
    max_submit_jobs_per_user: int | None = Field(default=None, ge=0, le=MAX_COUNT, alias="MaxSubmitJobsPerUser")
    max_tres_per_user: Tres = Field(default_factory=Tres, alias="MaxTRESPerUser")
    grp_tres: Tres = Field(default_factory=Tres, alias="GrpTRES")
    max_wall: Time = Field(default=None, alias="MaxWall")


class PriorityWeights(_Strict):
    """Slurm's priority/multifactor settings (weights are integers, as in slurm.conf)."""

    age: int = Field(default=0, ge=0, le=2**32 - 1, alias="PriorityWeightAge")
    fairshare: int = Field(default=0, ge=0, le=2**32 - 1, alias="PriorityWeightFairshare")
    job_size: int = Field(default=0, ge=0, le=2**32 - 1, alias="PriorityWeightJobSize")
    partition: int = Field(default=0, ge=0, le=2**32 - 1, alias="PriorityWeightPartition")
    qos: int = Field(default=0, ge=0, le=2**32 - 1, alias="PriorityWeightQOS")
    max_age: Time = Field(default=7 * 86400, alias="PriorityMaxAge")
    decay_half_life: Time = Field(default=7 * 86400, alias="PriorityDecayHalfLife")
    favor_small: YesNo = Field(default=False, alias="PriorityFavorSmall")


class BackfillSettings(_Strict):
    """The backfill scheduler: these replace CONDUCTOR_BACKFILL_* when the file gives them."""

    enabled: bool | None = Field(default=None, alias="Enabled", description="False: strict priority order.")
    depth: int | None = Field(default=None, ge=0, le=100_000, alias="Depth")
    max_job_test: int | None = Field(default=None, ge=1, le=1_000_000, alias="MaxJobTest")


class ClusterConfig(_Strict):
    default_qos: str = Field(default="normal", alias="DefaultQOS", pattern=_NAME)
    enforce_part_limits: Literal["ALL", "ANY", "YES", "NO"] = Field(
        default="ALL", alias="EnforcePartLimits",
        description="ALL/ANY/YES: a job over its partition's MaxTime is refused at submission; NO: it waits "
        "with reason PartitionTimeLimit.",
    )
    reconfig_flags: str = Field(
        default="", alias="ReconfigFlags",
        description="Slurm's: KeepPartState keeps the partition states `scontrol update` set across "
        "`scontrol reconfigure`; without it a reconfigure puts the file's states back in force.",
    )
    accounting_storage_enforce: str = Field(
        default="", alias="AccountingStorageEnforce",
        description="Slurm's: associations (or limits, qos, safe, all) refuses jobs of users without an "
        "association with the account; empty: such jobs run, unchecked against accounts.",
    )
    nodes: dict[str, NodeSpec] = Field(default_factory=dict, description="Keys: host lists (cn[001-016]).")
    partitions: dict[str, Partition] = Field(default_factory=dict)
    qos: dict[str, Qos] = Field(default_factory=dict)
    priority: PriorityWeights = Field(default_factory=PriorityWeights)
    backfill: BackfillSettings = Field(default_factory=BackfillSettings)

    @field_validator("enforce_part_limits", mode="before")
    @classmethod
    def _enforce(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("reconfig_flags")
    @classmethod
    def _reconfig_flags(cls, value: str) -> str:
        words = [w.strip() for w in value.split(",") if w.strip()]
        for word in words:
            if word.lower() not in RECONFIG_WORDS:
                raise ValueError(f"unknown flag '{word[:40]}': use KeepPartState, or KeepPartInfo (which keeps the "
                                 "states too: the other partition settings are the file's alone here)")
        return ",".join(words)

    def keeps_partition_states(self) -> bool:
        return any(w.lower() in RECONFIG_WORDS for w in self.reconfig_flags.split(",") if w)

    @field_validator("accounting_storage_enforce")
    @classmethod
    def _enforce_words(cls, value: str) -> str:
        words = [w.strip().lower() for w in value.split(",") if w.strip()]
        unknown = [w for w in words if w not in ENFORCE_WORDS]
        if unknown:
            raise ValueError(f"unknown value '{unknown[0][:40]}': use a comma list of {', '.join(ENFORCE_WORDS)}")
        return ",".join(words)

    @field_validator("partitions", "qos")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        import re

        for name in value:
            if not re.fullmatch(_NAME, name):  # fullmatch: `$` alone also takes "abc\n"
                raise ValueError(f"name '{name[:64]}' must be 1-64 letters, digits, '_', '.' or '-'")
        return value

    @field_validator("nodes")
    @classmethod
    def _node_lists(cls, value: dict[str, NodeSpec]) -> dict[str, NodeSpec]:
        for hosts in value:
            try:
                names = expand_hostlist(hosts, field="nodes")
            except Invalid as exc:
                raise ValueError(exc.message) from None
            if not names:  # [nodes.""]: a node line that names no node
                raise ValueError("a [nodes.*] table needs a host list as its name (e.g. cn[001-016])")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClusterConfig:
        defaults = [name for name, p in self.partitions.items() if p.default]
        if len(defaults) > 1:
            raise ValueError(f"only one partition may be Default; {', '.join(defaults)} all are")
        if self.qos and self.default_qos not in self.qos:
            raise ValueError(f"DefaultQOS '{self.default_qos}' is not one of the [qos.*] tables")
        return self

    # ---------------------------------------------------------------- reading it
    def enforces_associations(self) -> bool:
        """Slurm: associations, limits, qos and safe each imply associations."""
        return bool(set(self.accounting_storage_enforce.split(",")) & {"associations", "limits", "qos", "safe", "all"})

    def qos_table(self) -> dict[str, Qos]:
        """The QOS: those of the file, or the one default `normal` without limits."""
        return dict(self.qos) if self.qos else {self.default_qos: Qos()}

    def default_partition(self) -> str | None:
        for name, p in self.partitions.items():
            if p.default:
                return name
        return next(iter(self.partitions), None)

    def node_partitions(self, node: str) -> frozenset[str]:
        return frozenset(name for name, p in self.partitions.items() if p.has_node(node))


EMPTY = ClusterConfig()
