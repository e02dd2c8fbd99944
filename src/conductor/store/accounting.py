"""Accounts, associations, users' default accounts and QOS (sacctmgr's database).

Every change is one transaction that also bumps the configuration generation: each API and
scheduler process reads the accounting snapshot again when it sees the new generation
(config/live.py), as it rereads the configuration file, so a limit set by `sacctmgr` holds
everywhere within a second. Rules that need the rows (an unknown parent, a cycle, a default
account the user is not associated with) are checked inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import Connection, Row, Table, delete, func, insert, select, update

from conductor.domain.accounting import ROOT, Account, Accounting, Association, AssocLimits, QosSpec
from conductor.errors import Conflict, Invalid, NotFound
from conductor.store.config import ConfigQueries
from conductor.store.engine import utcnow
from conductor.store.schema import accounting_users, accounts, associations, jobs, qos_records
from conductor.store.transitions import PENDING, RUNNING

LIMIT_COLUMNS = ("max_jobs", "max_submit_jobs", "grp_cpus", "grp_memory_mb", "max_wall")
ACCOUNT_COLUMNS = frozenset(("parent", "description", "organization", "shares", *LIMIT_COLUMNS))
ASSOCIATION_COLUMNS = frozenset(("shares", *LIMIT_COLUMNS))
QOS_COLUMNS = frozenset((
    "description", "priority", "max_jobs_per_user", "max_submit_jobs_per_user", "max_cpus_per_user",
    "max_memory_per_user", "grp_cpus", "grp_memory_mb", "max_wall",
))


def _limits(row: Row) -> AssocLimits:  # type: ignore[type-arg]
    return AssocLimits(
        max_jobs=row.max_jobs, max_submit_jobs=row.max_submit_jobs, grp_cpus=row.grp_cpus,
        grp_memory_mb=row.grp_memory_mb, max_wall=row.max_wall,
    )


def _only(changes: Mapping[str, object], allowed: frozenset[str]) -> dict[str, object]:
    unknown = set(changes) - allowed
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}")
    return dict(changes)


class AccountingQueries(ConfigQueries):
    # ------------------------------------------------------------------ reading
    def accounting(self) -> Accounting:
        """Every account, association, default account and database QOS."""
        with self._read() as conn:
            return self._snapshot(conn)

    def _snapshot(self, conn: Connection) -> Accounting:
        accts = {
            r.name: Account(
                name=r.name, parent=r.parent, description=r.description, organization=r.organization,
                shares=r.shares, limits=_limits(r),
            )
            for r in conn.execute(select(accounts))
        }
        assocs = {
            (r.user_name, r.account): Association(user=r.user_name, account=r.account, shares=r.shares,
                                                  limits=_limits(r))
            for r in conn.execute(select(associations))
        }
        defaults = {r.name: r.default_account for r in conn.execute(select(accounting_users))}
        qos = {
            r.name: QosSpec(
                name=r.name, description=r.description, priority=r.priority, max_jobs_per_user=r.max_jobs_per_user,
                max_submit_jobs_per_user=r.max_submit_jobs_per_user, max_cpus_per_user=r.max_cpus_per_user,
                max_memory_per_user=r.max_memory_per_user, grp_cpus=r.grp_cpus, grp_memory=r.grp_memory_mb,
                max_wall=r.max_wall,
            )
            for r in conn.execute(select(qos_records))
        }
        return Accounting(accounts=accts, associations=assocs, default_accounts=defaults, qos=qos)

    # ------------------------------------------------------------------ accounts
    def add_accounts(self, records: Sequence[Account], now: datetime | None = None) -> int:
        """Add accounts (all or none); returns the new configuration generation."""
        now = now or utcnow()
        with self._write() as conn:
            # First: the generation's row lock serialises accounting changes (on PostgreSQL),
            # so the checks below see every change committed before this one.
            generation = self._bump(conn, now)
            known = set(conn.execute(select(accounts.c.name)).scalars())
            batch = {r.name: r.parent for r in records}
            for a in records:
                if a.name in known or a.name == ROOT:
                    raise Conflict(f"account '{a.name}' already exists", field="name")
                if a.parent != ROOT and a.parent not in known and a.parent not in batch:
                    raise NotFound(f"parent account '{a.parent}' does not exist", field="parent")
                # Parents named in the same request must lead to root, not round in a circle.
                seen = {a.name}
                walk = a.parent
                while walk in batch:
                    if walk in seen:
                        raise Invalid(f"account '{a.name}' cannot be its own parent or ancestor", field="parent")
                    seen.add(walk)
                    walk = batch[walk]
            for a in records:
                conn.execute(insert(accounts).values(
                    name=a.name, parent=a.parent, description=a.description, organization=a.organization,
                    shares=a.shares, created_at=now, **{c: getattr(a.limits, c) for c in LIMIT_COLUMNS},
                ))
            return generation

    def modify_accounts(self, names: Sequence[str], changes: Mapping[str, object], now: datetime | None = None) -> int:
        values = _only(changes, ACCOUNT_COLUMNS)
        now = now or utcnow()
        with self._write() as conn:
            # First: the generation's row lock serialises accounting changes (on PostgreSQL),
            # so the checks below see every change committed before this one.
            generation = self._bump(conn, now)
            tree = {r.name: r.parent for r in conn.execute(select(accounts.c.name, accounts.c.parent))}
            for name in names:
                if name not in tree:
                    raise NotFound(f"account '{name}' does not exist", field="name")
            parent = values.get("parent")
            if isinstance(parent, str):
                if parent != ROOT and parent not in tree:
                    raise NotFound(f"parent account '{parent}' does not exist", field="parent")
                for name in names:
                    # The new parent must not be the account itself or below it.
                    walk: str | None = parent
                    while walk and walk != ROOT:
                        if walk == name:
                            raise Invalid(f"account '{name}' cannot be its own parent or ancestor", field="parent")
                        walk = tree.get(walk)
            if values:
                conn.execute(update(accounts).where(accounts.c.name.in_(list(names))).values(**values))
            return generation

    def delete_accounts(self, names: Sequence[str], now: datetime | None = None) -> int:
        """Delete accounts and their users' associations. Refused while an account has
        sub-accounts, holds pending or running jobs, or is a user's default account while
        that user has other associations (Slurm's rules)."""
        now = now or utcnow()
        with self._write() as conn:
            # First: the generation's row lock serialises accounting changes (on PostgreSQL),
            # so the checks below see every change committed before this one.
            generation = self._bump(conn, now)
            tree = {r.name: r.parent for r in conn.execute(select(accounts.c.name, accounts.c.parent))}
            doomed = set(names)
            for name in names:
                if name not in tree:
                    raise NotFound(f"account '{name}' does not exist", field="name")
                children = sorted(n for n, p in tree.items() if p == name and n not in doomed)
                if children:
                    raise Conflict(f"account '{name}' has sub-accounts ({', '.join(children)}): delete them first")
            active = conn.execute(
                select(jobs.c.account, func.count()).where(
                    jobs.c.account.in_(list(doomed)), jobs.c.state.in_((PENDING, RUNNING))
                ).group_by(jobs.c.account)
            ).first()
            if active is not None:
                raise Conflict(f"account '{active[0]}' has {active[1]} pending or running jobs: they must end first")
            self._drop_defaults(conn, doomed)
            conn.execute(delete(associations).where(associations.c.account.in_(list(doomed))))
            conn.execute(delete(accounts).where(accounts.c.name.in_(list(doomed))))
            return generation

    # ------------------------------------------------------------------ users
    def add_associations(
        self, records: Sequence[Association], default_account: str | None, now: datetime | None = None
    ) -> int:
        """Associate users with accounts; a user's first association (or `default_account`)
        becomes their default account. Associations that exist already are left as they are
        (sacctmgr adds what is new); when every one exists, nothing is added: Conflict."""
        now = now or utcnow()
        with self._write() as conn:
            # First: the generation's row lock serialises accounting changes (on PostgreSQL),
            # so the checks below see every change committed before this one.
            generation = self._bump(conn, now)
            known = set(conn.execute(select(accounts.c.name)).scalars())
            existing = {(r.user_name, r.account) for r in conn.execute(select(associations.c.user_name, associations.c.account))}
            for a in records:
                if a.account not in known:
                    raise NotFound(f"account '{a.account}' does not exist", field="account")
            new = [a for a in records if (a.user, a.account) not in existing]
            if not new:
                a = records[0]
                raise Conflict(f"user '{a.user}' is already associated with account '{a.account}': nothing new added")
            for a in new:
                conn.execute(insert(associations).values(
                    user_name=a.user, account=a.account, shares=a.shares, created_at=now,
                    **{c: getattr(a.limits, c) for c in LIMIT_COLUMNS},
                ))
            defaults = {r.name: r.default_account for r in conn.execute(select(accounting_users))}
            for user in dict.fromkeys(a.user for a in records):
                mine = [a.account for a in records if a.user == user]
                wanted = default_account or (defaults.get(user) or mine[0])
                if wanted not in mine and (user, wanted) not in existing:
                    raise Invalid(f"default account '{wanted}' is not one of user '{user}''s accounts",
                                  field="default_account")
                self._set_default(conn, user, wanted, user in defaults)
            return generation

    def modify_associations(
        self, users: Sequence[str], account: str | None, changes: Mapping[str, object],
        default_account: str | None = None, now: datetime | None = None,
    ) -> int:
        """Change the associations of `users` (with `account` only, or all of theirs) and/or
        their default account."""
        values = _only(changes, ASSOCIATION_COLUMNS)
        now = now or utcnow()
        with self._write() as conn:
            # First: the generation's row lock serialises accounting changes (on PostgreSQL),
            # so the checks below see every change committed before this one.
            generation = self._bump(conn, now)
            mine = self._associations_of(conn, users, account)
            if default_account is not None:
                for user in users:
                    found = conn.execute(select(associations.c.account).where(
                        associations.c.user_name == user, associations.c.account == default_account
                    )).first()
                    if found is None:
                        raise Invalid(f"user '{user}' is not associated with account '{default_account}'",
                                      field="default_account")
                    self._set_default(conn, user, default_account, True)
            if values:
                for user, acct in mine:
                    conn.execute(update(associations).where(
                        associations.c.user_name == user, associations.c.account == acct
                    ).values(**values))
            return generation

    def delete_associations(self, users: Sequence[str], account: str | None, now: datetime | None = None) -> int:
        """Remove users' associations (with `account`, or all). A user keeps a default account
        while they keep an association: the removed default moves to a remaining one."""
        now = now or utcnow()
        with self._write() as conn:
            # First: the generation's row lock serialises accounting changes (on PostgreSQL),
            # so the checks below see every change committed before this one.
            generation = self._bump(conn, now)
            doomed = self._associations_of(conn, users, account)
            for user, acct in doomed:
                # Stored names are lower case; the jobs charged to one may be a login's with
                # capitals (Accounting.association_user).
                active = conn.execute(select(func.count()).select_from(jobs).where(
                    func.lower(jobs.c.user_name) == user, jobs.c.account == acct, jobs.c.state.in_((PENDING, RUNNING))
                )).scalar_one()
                if active:
                    raise Conflict(f"user '{user}' has {active} pending or running jobs in account '{acct}': "
                                   "they must end first")
                conn.execute(delete(associations).where(
                    associations.c.user_name == user, associations.c.account == acct
                ))
            for user in dict.fromkeys(u for u, _ in doomed):
                left = sorted(conn.execute(
                    select(associations.c.account).where(associations.c.user_name == user)
                ).scalars())
                current = conn.execute(
                    select(accounting_users.c.default_account).where(accounting_users.c.name == user)
                ).scalar()
                if not left:
                    conn.execute(delete(accounting_users).where(accounting_users.c.name == user))
                elif current not in left:
                    self._set_default(conn, user, left[0], True)
            return generation

    def _associations_of(self, conn: Connection, users: Sequence[str], account: str | None) -> list[tuple[str, str]]:
        query = select(associations.c.user_name, associations.c.account).where(
            associations.c.user_name.in_(list(users))
        )
        if account is not None:
            query = query.where(associations.c.account == account)
        found = [(r.user_name, r.account) for r in conn.execute(query)]
        have = {u for u, _ in found}
        missing = [u for u in users if u not in have]
        if missing:
            where = f" with account '{account}'" if account is not None else ""
            raise NotFound(f"no association of user '{missing[0]}'{where}", field="user")
        return found

    def _set_default(self, conn: Connection, user: str, account: str, exists: bool) -> None:
        if exists:
            conn.execute(update(accounting_users).where(accounting_users.c.name == user).values(default_account=account))
        else:
            conn.execute(insert(accounting_users).values(name=user, default_account=account))

    def _drop_defaults(self, conn: Connection, doomed: set[str]) -> None:
        """Users whose default account goes: their default moves to another of theirs (or the
        user goes, with their last association)."""
        for r in list(conn.execute(select(accounting_users).where(accounting_users.c.default_account.in_(list(doomed))))):
            left = sorted(conn.execute(select(associations.c.account).where(
                associations.c.user_name == r.name, associations.c.account.not_in(list(doomed))
            )).scalars())
            if left:
                self._set_default(conn, r.name, left[0], True)
            else:
                conn.execute(delete(accounting_users).where(accounting_users.c.name == r.name))

    # ------------------------------------------------------------------ QOS
    def add_qos(self, records: Sequence[QosSpec], now: datetime | None = None) -> int:
        now = now or utcnow()
        with self._write() as conn:
            # First: the generation's row lock serialises accounting changes (on PostgreSQL),
            # so the checks below see every change committed before this one.
            generation = self._bump(conn, now)
            known = set(conn.execute(select(qos_records.c.name)).scalars())
            for q in records:
                if q.name in known:
                    raise Conflict(f"QOS '{q.name}' already exists", field="name")
            for q in records:
                conn.execute(insert(qos_records).values(
                    name=q.name, description=q.description, priority=q.priority,
                    max_jobs_per_user=q.max_jobs_per_user, max_submit_jobs_per_user=q.max_submit_jobs_per_user,
                    max_cpus_per_user=q.max_cpus_per_user, max_memory_per_user=q.max_memory_per_user,
                    grp_cpus=q.grp_cpus, grp_memory_mb=q.grp_memory, max_wall=q.max_wall, created_at=now,
                ))
            return generation

    def modify_qos(self, names: Sequence[str], changes: Mapping[str, object], now: datetime | None = None) -> int:
        values = _only(changes, QOS_COLUMNS)
        now = now or utcnow()
        with self._write() as conn:
            # First: the generation's row lock serialises accounting changes (on PostgreSQL),
            # so the checks below see every change committed before this one.
            generation = self._bump(conn, now)
            self._exist(conn, qos_records, names, "QOS")
            if values:
                conn.execute(update(qos_records).where(qos_records.c.name.in_(list(names))).values(**values))
            return generation

    def delete_qos(self, names: Sequence[str], now: datetime | None = None) -> int:
        now = now or utcnow()
        with self._write() as conn:
            # First: the generation's row lock serialises accounting changes (on PostgreSQL),
            # so the checks below see every change committed before this one.
            generation = self._bump(conn, now)
            self._exist(conn, qos_records, names, "QOS")
            active = conn.execute(
                select(jobs.c.qos, func.count()).where(
                    jobs.c.qos.in_(list(names)), jobs.c.state.in_((PENDING, RUNNING))
                ).group_by(jobs.c.qos)
            ).first()
            if active is not None:
                raise Conflict(f"QOS '{active[0]}' has {active[1]} pending or running jobs: they must end first")
            conn.execute(delete(qos_records).where(qos_records.c.name.in_(list(names))))
            return generation

    def _exist(self, conn: Connection, table: Table, names: Sequence[str], what: str) -> None:
        known = set(conn.execute(select(table.c.name).where(table.c.name.in_(list(names)))).scalars())
        for name in names:
            if name not in known:
                raise NotFound(f"{what} '{name}' does not exist", field="name")

    # ------------------------------------------------------------------ counts for limits
    def count_active_in(self, user_name: str, account: str) -> int:
        """Pending and running jobs of one user charged to one account (MaxSubmitJobs)."""
        query = select(func.count()).select_from(jobs).where(
            jobs.c.user_name == user_name, jobs.c.account == account, jobs.c.state.in_((PENDING, RUNNING))
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())
