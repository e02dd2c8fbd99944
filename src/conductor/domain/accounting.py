"""Accounts, users' associations and the QOS kept in the database: Slurm's accounting model.

Accounts form a tree under `root`. A user charges jobs to accounts they are associated with (an
association: user + account, with its shares and limits) and has one default account, which a
job without `--account` is charged to. Limits an association does not set itself (MaxJobs,
MaxSubmitJobs, MaxWall) are inherited from its account, then the account's parents; GrpTRES
holds at every level of the tree on its own. Pure: the store reads these records, the services
check submissions against them, the scheduler counts what runs against them.

Classic fair share over the tree (Slurm's `PriorityFlags=NO_FAIR_TREE` algorithm, its
classic_fair_share page): an association's normalised shares are the product, down its path, of
its shares over those of itself and its siblings; its normalised usage is the decayed usage of
its subtree over the cluster's; its effective usage is its normalised usage for a child of root,
else UE = U + (UE_parent - U) x shares / siblings' shares; its factor is 2^(-UE / S).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from conductor.domain.multifactor import fairshare_factor

ROOT = "root"
NO_ACCOUNT = ""  # the key of usage charged to no association


@dataclass(frozen=True, slots=True)
class AssocLimits:
    """An account's or a user association's limits; None: not set (inherited or unlimited)."""

    max_jobs: int | None = None
    max_submit_jobs: int | None = None
    grp_cpus: int | None = None
    grp_memory_mb: int | None = None
    max_wall: int | None = None  # seconds


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    parent: str = ROOT
    description: str = ""
    organization: str = ""
    shares: int = 1
    limits: AssocLimits = field(default_factory=AssocLimits)


@dataclass(frozen=True, slots=True)
class Association:
    """A user's right to charge an account, with the user's shares and limits in it."""

    user: str
    account: str
    shares: int = 1
    limits: AssocLimits = field(default_factory=AssocLimits)


@dataclass(frozen=True, slots=True)
class QosSpec:
    """A QOS added with sacctmgr (QOS of the configuration file are the file's)."""

    name: str
    description: str = ""
    priority: int = 0
    max_jobs_per_user: int | None = None
    max_submit_jobs_per_user: int | None = None
    max_cpus_per_user: int | None = None
    max_memory_per_user: int | None = None  # MB
    grp_cpus: int | None = None
    grp_memory: int | None = None  # MB
    max_wall: int | None = None  # seconds


@dataclass(frozen=True, slots=True)
class ResolvedLimits:
    """What holds one association's jobs: its own or inherited per-job and per-user limits, and
    every GrpTRES on its path as (scope, cpus, memory MB); a scope is (user, account) for the
    association itself and ("", account) for an account, whose count is its whole subtree's."""

    max_jobs: int | None = None
    max_submit_jobs: int | None = None
    max_wall: int | None = None
    groups: tuple[tuple[tuple[str, str], int | None, int | None], ...] = ()


@dataclass(frozen=True, slots=True)
class Accounting:
    """Every account, association and database QOS, as one snapshot."""

    accounts: Mapping[str, Account] = field(default_factory=dict)  # without root
    associations: Mapping[tuple[str, str], Association] = field(default_factory=dict)
    default_accounts: Mapping[str, str] = field(default_factory=dict)  # user -> account
    qos: Mapping[str, QosSpec] = field(default_factory=dict)
    root_limits: AssocLimits = field(default_factory=AssocLimits)

    @property
    def active(self) -> bool:
        """Whether any account exists: without one, jobs are charged to what they name, unchecked."""
        return bool(self.accounts)

    def default_account(self, user: str) -> str | None:
        found = self.default_accounts.get(user)
        return found if found is not None or user.islower() else self.default_accounts.get(user.lower())

    def association(self, user: str, account: str | None) -> Association | None:
        if not account:
            return None
        return self.associations.get((self.association_user(user, account), account))

    def association_user(self, user: str, account: str) -> str:
        """The user name `user`'s association with `account` is stored under.

        sacctmgr stores names in lower case (as Slurm's does), while a login name may have
        capitals (directory-backed sites): `JSmith`'s jobs are charged to the association of
        `jsmith`, where Slurm without PreserveCaseUser finds none for them.
        """
        if (user, account) in self.associations or user.islower():
            return user
        return user.lower()

    def path(self, account: str) -> list[Account]:
        """`account` and its parents up to (not including) root; [] for an unknown one."""
        out: list[Account] = []
        seen: set[str] = set()
        name = account
        while name and name != ROOT and name not in seen:
            seen.add(name)
            found = self.accounts.get(name)
            if found is None:
                break
            out.append(found)
            name = found.parent
        return out

    def children(self, account: str) -> list[str]:
        return sorted(a.name for a in self.accounts.values() if a.parent == account)

    def resolve(self, user: str, account: str) -> ResolvedLimits | None:
        """The limits over a job of `user` charged to `account` (None: no such association)."""
        assoc = self.association(user, account)
        if assoc is None:
            return None
        levels = [assoc.limits] + [a.limits for a in self.path(account)] + [self.root_limits]

        def first(name: str) -> int | None:
            for limits in levels:
                value = getattr(limits, name)
                if value is not None:
                    return int(value)
            return None

        groups: list[tuple[tuple[str, str], int | None, int | None]] = []
        if assoc.limits.grp_cpus is not None or assoc.limits.grp_memory_mb is not None:
            # Keyed by the association's user: logins of two spellings share its counts.
            groups.append(((self.association_user(user, account), account), assoc.limits.grp_cpus,
                           assoc.limits.grp_memory_mb))
        for a in self.path(account):
            if a.limits.grp_cpus is not None or a.limits.grp_memory_mb is not None:
                groups.append(((NO_ACCOUNT, a.name), a.limits.grp_cpus, a.limits.grp_memory_mb))
        return ResolvedLimits(
            max_jobs=first("max_jobs"), max_submit_jobs=first("max_submit_jobs"), max_wall=first("max_wall"),
            groups=tuple(groups),
        )

    def usage_key(self, user: str, account: str | None) -> tuple[str, str]:
        """Where a job's usage counts in the fair-share tree: its association, else the user
        alone under root (a job charged to no association, or no accounts at all)."""
        if account:
            assoc_user = self.association_user(user, account)
            if (assoc_user, account) in self.associations:
                return (assoc_user, account)
        return (user, NO_ACCOUNT)


# ------------------------------------------------------------------ fair share
@dataclass(frozen=True, slots=True)
class ShareRow:
    """One line of sshare: an account (user "") or a user's association, in tree order."""

    account: str
    user: str
    depth: int  # 0: root
    raw_shares: int
    norm_shares: float
    raw_usage: float
    norm_usage: float
    effective_usage: float
    fairshare: float


def fair_share_tree(
    accounting: Accounting, usage: Mapping[tuple[str, str], float], users: Iterable[str] = ()
) -> list[ShareRow]:
    """Every association's classic fair-share figures, root first, each account before its
    children (users, then sub-accounts, by name). `usage`: decayed CPU-seconds per `usage_key`;
    `users`: more users to show under root with one share (those with pending jobs)."""
    associated = {u for u, _ in accounting.associations}
    # A login with capitals whose lower-case name has associations is charged to them, not loose.
    loose = {u for (u, a) in usage if a == NO_ACCOUNT} | {
        u for u in users if u not in associated and u.lower() not in associated
    }
    # The tree's children: accounts under their parents, associations under their accounts,
    # and users charged to no association under root with one share each.
    kids: dict[str, list[tuple[str, str, int]]] = {}
    for a in accounting.accounts.values():
        parent = a.parent if a.parent in accounting.accounts else ROOT
        kids.setdefault(parent, []).append((a.name, "", a.shares))
    for (user, account), assoc in accounting.associations.items():
        if account in accounting.accounts:
            kids.setdefault(account, []).append((account, user, assoc.shares))
    for user in loose:
        kids.setdefault(ROOT, []).append((ROOT, user, 1))

    subtree: dict[str, float] = {}

    def total(account: str) -> float:
        found = subtree.get(account)
        if found is None:
            found = 0.0
            for name, user, _ in kids.get(account, []):
                found += usage.get((user, NO_ACCOUNT if account == ROOT else name), 0.0) if user else total(name)
            subtree[account] = found
        return found

    grand = total(ROOT)
    rows = [ShareRow(ROOT, "", 0, 1, 1.0, grand, 1.0 if grand > 0 else 0.0, 1.0, 1.0)]

    def walk(account: str, depth: int, norm: float, parent_efctv: float) -> None:
        # Users before sub-accounts, each by name, as Slurm lists an account's children.
        children = sorted(kids.get(account, []), key=lambda k: (not k[1], k[1] or k[0]))
        level = sum(max(s, 0) for _, _, s in children)
        for name, user, shares in children:
            raw = usage.get((user, NO_ACCOUNT if account == ROOT else name), 0.0) if user else total(name)
            u = min(raw / grand, 1.0) if grand > 0 else 0.0
            s = norm * shares / level if level > 0 else 0.0
            if account == ROOT:
                efctv = u
            elif level <= 0:
                efctv = parent_efctv
            else:
                efctv = u + (parent_efctv - u) * shares / level
            factor = fairshare_factor(efctv, 1.0, s, 1.0)  # 2^(-UE/S)
            rows.append(ShareRow(name, user, depth + 1, shares, s, raw, u, efctv, factor))
            if not user:
                walk(name, depth + 1, s, efctv)

    walk(ROOT, 0, 1.0, 1.0)
    return rows


def fair_share_factors(rows: Iterable[ShareRow]) -> dict[tuple[str, str], float]:
    """(user, account) -> factor, keyed as `Accounting.usage_key` keys usage."""
    return {(r.user, NO_ACCOUNT if r.account == ROOT else r.account): r.fairshare for r in rows if r.user}
