"""sacctmgr's use cases: add, modify and delete accounts, users' associations and QOS.

Only administrators change them; everyone may read them (as `sacctmgr show` lets every user).
Each change is stored with a new configuration generation, so every process holds it within a
second; the process that served it takes it at once, so the next submission here sees it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Protocol

from conductor.config.live import LiveConfig
from conductor.domain.accounting import ROOT, Account, Accounting, Association, AssocLimits, QosSpec
from conductor.errors import Conflict, Invalid
from conductor.services.principal import Principal, ensure_admin

# With fullmatch: `$` also matches before a final newline ("bob\n" was a user).
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", re.ASCII)
NAME_RULE = "1-64 letters, digits, '_', '.' or '-', not starting with '.' or '-'"


class AccountingStore(Protocol):
    def accounting(self) -> Accounting: ...

    def add_accounts(self, records: Sequence[Account]) -> int: ...

    def modify_accounts(self, names: Sequence[str], changes: Mapping[str, object]) -> int: ...

    def delete_accounts(self, names: Sequence[str]) -> int: ...

    def add_associations(self, records: Sequence[Association], default_account: str | None) -> int: ...

    def modify_associations(
        self, users: Sequence[str], account: str | None, changes: Mapping[str, object],
        default_account: str | None = None,
    ) -> int: ...

    def delete_associations(self, users: Sequence[str], account: str | None) -> int: ...

    def add_qos(self, records: Sequence[QosSpec]) -> int: ...

    def modify_qos(self, names: Sequence[str], changes: Mapping[str, object]) -> int: ...

    def delete_qos(self, names: Sequence[str]) -> int: ...


def check_name(value: str, field: str) -> str:
    """A new account's, user's or QOS's name. Lower case: sacctmgr lowercases every name it
    is given (as Slurm's does), so `ROOT` stored beside `root` could never be named again from
    the command line, and `sacctmgr delete user Alice` would act on `alice`."""
    if not NAME.fullmatch(value):
        raise Invalid(f"'{value[:64]}' is not a valid name: {NAME_RULE}", field=field)
    if value != value.lower():
        raise Invalid(
            f"'{value}' is not a valid name: names are lower case, as sacctmgr stores them (use '{value.lower()}'; "
            f"a user {value}'s jobs are charged to the associations of {value.lower()})",
            field=field,
        )
    return value


class AccountingService:
    def __init__(self, store: AccountingStore, config: LiveConfig) -> None:
        self.store = store
        self.config = config

    def snapshot(self) -> Accounting:
        """As stored now (not the cached view: `show` right after a change shows it)."""
        return self.store.accounting()

    def _changed(self) -> None:
        self.config.refresh(force=True)

    # ------------------------------------------------------------------ accounts
    def add_accounts(self, principal: Principal, records: Sequence[Account]) -> None:
        ensure_admin(principal, "add accounts")
        for a in records:
            check_name(a.name, "name")
            if a.name == ROOT:
                raise Conflict("account 'root' always exists", field="name")
            check_name(a.parent, "parent")
            if a.parent == a.name:
                raise Invalid(f"account '{a.name}' cannot be its own parent", field="parent")
        names = [a.name for a in records]
        if len(set(names)) != len(names):
            raise Invalid("an account is named twice", field="name")
        self.store.add_accounts(records)
        self._changed()

    def modify_accounts(self, principal: Principal, names: Sequence[str], changes: Mapping[str, object]) -> None:
        ensure_admin(principal, "modify accounts")
        if ROOT in names:
            raise Invalid("account 'root' has no settings to change here", field="name")
        parent = changes.get("parent")
        if isinstance(parent, str):
            check_name(parent, "parent")
        self.store.modify_accounts(names, changes)
        self._changed()

    def delete_accounts(self, principal: Principal, names: Sequence[str]) -> None:
        ensure_admin(principal, "delete accounts")
        if ROOT in names:
            raise Invalid("account 'root' cannot be deleted", field="name")
        self.store.delete_accounts(names)
        self._changed()

    # ------------------------------------------------------------------ users
    def add_users(
        self, principal: Principal, users: Sequence[str], accounts: Sequence[str], default_account: str | None,
        shares: int, limits: AssocLimits,
    ) -> None:
        ensure_admin(principal, "add users")
        if not users:
            raise Invalid("name at least one user", field="users")
        for u in users:
            check_name(u, "users")
        users = list(dict.fromkeys(users))  # a name given twice is one user
        accounts = list(dict.fromkeys(accounts))
        if not accounts and default_account:
            accounts = [default_account]
        if not accounts:
            raise Invalid("name the account(s) to associate the users with (Account=...)", field="accounts")
        records = [Association(user=u, account=a, shares=shares, limits=limits) for u in users for a in accounts]
        self.store.add_associations(records, default_account)
        self._changed()

    def modify_users(
        self, principal: Principal, users: Sequence[str], account: str | None, changes: Mapping[str, object],
        default_account: str | None,
    ) -> None:
        ensure_admin(principal, "modify users")
        self.store.modify_associations(users, account, changes, default_account)
        self._changed()

    def delete_users(self, principal: Principal, users: Sequence[str], account: str | None) -> None:
        ensure_admin(principal, "delete users")
        self.store.delete_associations(users, account)
        self._changed()

    # ------------------------------------------------------------------ QOS
    def _file_qos(self) -> set[str]:
        config = self.config.current.config
        return set(config.qos) if config is not None else set()

    def add_qos(self, principal: Principal, records: Sequence[QosSpec]) -> None:
        ensure_admin(principal, "add QOS")
        file_qos = self._file_qos()
        names = [q.name for q in records]
        if len(set(names)) != len(names):
            raise Invalid("a QOS is named twice", field="name")
        for q in records:
            check_name(q.name, "name")
            if q.name in file_qos:
                raise Conflict(f"QOS '{q.name}' is defined by the configuration file: change it there", field="name")
        self.store.add_qos(records)
        self._changed()

    def modify_qos(self, principal: Principal, names: Sequence[str], changes: Mapping[str, object]) -> None:
        ensure_admin(principal, "modify QOS")
        self._not_file(names)
        default = self.config.current.default_qos
        if default in names and default not in self.store.accounting().qos:
            # The default QOS exists without a record until its first change, as Slurm's
            # `normal` exists from the start: the change creates it.
            self.store.add_qos([QosSpec(name=default)])
        self.store.modify_qos(names, changes)
        self._changed()

    def delete_qos(self, principal: Principal, names: Sequence[str]) -> None:
        """Delete QOS of the database. One the file also defines (added before the file did)
        may go too: the file's stays in force, and its stale record no longer waits behind it."""
        ensure_admin(principal, "delete QOS")
        stored = self.store.accounting().qos
        for name in names:
            if name not in stored and name in self._file_qos():
                raise Conflict(f"QOS '{name}' is defined by the configuration file: change it there", field="name")
        self.store.delete_qos(names)
        self._changed()

    def _not_file(self, names: Sequence[str]) -> None:
        file_qos = self._file_qos()
        for name in names:
            if name in file_qos:
                raise Conflict(f"QOS '{name}' is defined by the configuration file: change it there", field="name")
