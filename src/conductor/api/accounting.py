"""Routes of sacctmgr: accounts, users' associations and QOS, under /accounting.

Reads are everyone's; changes are an administrator's (services/accounting.py). Limits take
Slurm's grammar: a time for MaxWall (`1:00:00`, minutes as a number), TRES as `cpu=8,mem=64G`
or an object; -1 (or null, in a change) clears a limit, as `sacctmgr ... set MaxJobs=-1` does.
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conductor.api import models
from conductor.api.auth import CurrentPrincipal
from conductor.bus import SCHEDULER, Bus
from conductor.config.live import LiveConfig
from conductor.config.model import Tres, tres_cpu
from conductor.domain.accounting import ROOT, Account, Accounting, AssocLimits, QosSpec
from conductor.domain.timespec import parse_time_limit
from conductor.errors import Invalid
from conductor.services.accounting import AccountingService, check_name
from conductor.store import Store


class AppContext(Protocol):
    store: Store
    bus: Bus
    config: LiveConfig


router = APIRouter(tags=["accounting"])

_ERRORS = models.error_responses(400, 403, 404, 409, 422)


def _service(request: Request) -> AccountingService:
    ctx: AppContext = request.app.state.ctx
    return AccountingService(ctx.store, ctx.config)


def _wake(request: Request) -> None:
    ctx: AppContext = request.app.state.ctx
    ctx.bus.publish(SCHEDULER)  # limits changed: waiting jobs decide again


# ------------------------------------------------------------------ bodies
def _count(value: object, name: str) -> int | None:
    """A limit's count: None or -1 clear it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number (-1 clears it)")
    if value == -1:
        return None
    if value < 0 or value > 2**31 - 1:
        raise ValueError(f"{name} must be between 0 and {2**31 - 1} (-1 clears it)")
    return value


_WALL = "a Slurm time such as 1:00:00, or a number of minutes"


def _free_text(value: str | None) -> str | None:
    # Printed by `sacctmgr show` to everyone's terminal (domain/text.py), and PostgreSQL refuses
    # NUL in text: refused here with the field's name, not by the database with a 500.
    return None if value is None else models.no_control_characters(value)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LimitsBody(_Body):
    """Association limits. In a change, a field given as null or -1 clears the limit."""

    fairshare: int | None = Field(default=None, ge=0, le=2**31 - 1, description="Shares (Fairshare=); default 1.")
    max_jobs: int | None = Field(default=None, description="Running jobs at once (MaxJobs).")
    max_submit_jobs: int | None = Field(default=None, description="Pending and running jobs (MaxSubmitJobs).")
    grp_tres: str | dict[str, Any] | None = Field(
        default=None, description="CPUs and memory for all the association's jobs at once (GrpTRES=cpu=8,mem=64G)."
    )
    max_wall: str | int | None = Field(default=None, description="Longest time limit (MaxWall), Slurm's time grammar.")

    @field_validator("max_jobs", "max_submit_jobs", mode="before")
    @classmethod
    def _counts(cls, value: object, info: Any) -> int | None:
        return _count(value, info.field_name)

    @field_validator("max_wall", mode="before")
    @classmethod
    def _wall_type(cls, value: object) -> object:
        return models.not_bool(value, _WALL)

    @field_validator("fairshare", mode="before")
    @classmethod
    def _shares(cls, value: object) -> object:
        return models.not_bool(value)  # true would be 1 share

    def changes(self) -> dict[str, object]:
        """The columns this body changes (only the fields it names)."""
        out: dict[str, object] = {}
        given = self.model_fields_set
        if "fairshare" in given:
            if self.fairshare is None:
                raise Invalid("must be a number of shares", field="fairshare")
            out["shares"] = self.fairshare
        for name in ("max_jobs", "max_submit_jobs"):
            if name in given:
                out[name] = getattr(self, name)
        if "grp_tres" in given:
            out.update(_tres_change(self.grp_tres, "grp_tres", "grp_cpus", "grp_memory_mb"))
        if "max_wall" in given:
            out["max_wall"] = _wall(self.max_wall)
        return out

    def limits(self) -> AssocLimits:
        cpus, memory = _tres(self.grp_tres, "grp_tres")
        return AssocLimits(
            max_jobs=self.max_jobs, max_submit_jobs=self.max_submit_jobs, grp_cpus=cpus, grp_memory_mb=memory,
            max_wall=_wall(self.max_wall),
        )


def _tres_items(value: str | dict[str, Any], field: str) -> dict[str, object]:
    """TRES as given, by name; -1 (Slurm's way to clear one) as None."""
    if isinstance(value, str):
        items: dict[str, object] = {}
        for item in value.split(","):
            name, eq, amount = item.strip().partition("=")
            if not eq or not name.strip():
                raise Invalid(f"'{item.strip()[:40]}' is not NAME=COUNT (e.g. cpu=16,mem=64G)", field=field)
            key = name.strip().lower()
            if key in items:
                raise Invalid(f"'{key}' is given twice", field=field)
            items[key] = amount.strip()
    else:
        items = {}
        for name, amount in value.items():
            # Names are case-blind ("CPU" is cpu): two spellings of one would keep one silently.
            key = str(name).lower()
            if key in items:
                raise Invalid(f"'{key}' is given twice", field=field)
            if isinstance(amount, bool):  # the model's lax integers would take true as 1
                raise Invalid(f"{key}: must be a count or a size such as 64G, not true or false", field=field)
            items[key] = amount
    return {k: None if v in (-1, "-1", None) else v for k, v in items.items()}


def _tres(value: str | dict[str, Any] | None, field: str) -> tuple[int | None, int | None]:
    """A whole TRES limit (cpu, memory MB); unnamed ones are unset."""
    if value is None or value == "":
        return None, None
    items = {k: v for k, v in _tres_items(value, field).items() if v is not None}
    cpu = items.get("cpu")
    if isinstance(cpu, str):  # "cpu=16" as text: the model takes TOML's integers only
        try:
            items["cpu"] = tres_cpu(cpu)
        except ValueError as exc:
            raise Invalid(str(exc), field=field) from None
    try:
        tres = Tres.model_validate(items)
    except ValidationError as exc:
        found = exc.errors()
        message = str(found[0].get("msg", exc)) if found else str(exc)
        raise Invalid(message.removeprefix("Value error, "), field=field) from None
    return tres.cpu, tres.mem


def _tres_change(value: str | dict[str, Any] | None, field: str, cpu_column: str, mem_column: str) -> dict[str, object]:
    """The columns a TRES change sets: only the TRES it names, as Slurm keeps the others
    (`GrpTRES=cpu=16` leaves mem alone; `cpu=-1` clears cpu alone); null or "" clears both."""
    if value is None or value == "":
        return {cpu_column: None, mem_column: None}
    named = _tres_items(value, field)
    cpus, memory = _tres({k: v for k, v in named.items() if v is not None}, field)
    columns = {"cpu": (cpu_column, cpus), "mem": (mem_column, memory)}
    unknown = sorted(set(named) - set(columns))
    if unknown:
        raise Invalid(f"unknown TRES {', '.join(unknown)}: only cpu and mem are limited here", field=field)
    return {columns[name][0]: columns[name][1] for name in named}


def _wall(value: str | int | None) -> int | None:
    if value is None or value == -1 or value == "-1" or value == "":
        return None
    seconds = parse_time_limit(value, field="max_wall")
    return seconds


class AccountSpec(LimitsBody):
    name: str = Field(max_length=64)
    parent: str = Field(default=ROOT, max_length=64)
    description: str = Field(default="", max_length=256)
    organization: str = Field(default="", max_length=256)

    @field_validator("description", "organization")
    @classmethod
    def _text(cls, value: str) -> str:
        return models.no_control_characters(value)


class AccountsAdd(_Body):
    accounts: list[AccountSpec] = Field(min_length=1, max_length=1000)


class AccountChange(LimitsBody):
    parent: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=256)
    organization: str | None = Field(default=None, max_length=256)

    @field_validator("description", "organization")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _free_text(value)

    def all_changes(self) -> dict[str, object]:
        out = self.changes()
        for name in ("parent", "description", "organization"):
            if name in self.model_fields_set:
                value = getattr(self, name)
                if value is None:
                    raise Invalid("must be text", field=name)
                out[name] = value
        return out


class UsersAdd(LimitsBody):
    users: list[str] = Field(min_length=1, max_length=1000)
    accounts: list[str] = Field(default_factory=list, max_length=1000)
    default_account: str | None = Field(default=None, max_length=64)


class UserChange(LimitsBody):
    default_account: str | None = Field(default=None, max_length=64)


class QosBody(_Body):
    description: str | None = Field(default=None, max_length=256)
    priority: int | None = Field(default=None, ge=0, le=2**31 - 1)
    max_jobs_per_user: int | None = None
    max_submit_jobs_per_user: int | None = None
    max_tres_per_user: str | dict[str, Any] | None = None
    grp_tres: str | dict[str, Any] | None = None
    max_wall: str | int | None = None

    @field_validator("max_jobs_per_user", "max_submit_jobs_per_user", mode="before")
    @classmethod
    def _counts(cls, value: object, info: Any) -> int | None:
        return _count(value, info.field_name)

    @field_validator("max_wall", mode="before")
    @classmethod
    def _wall_type(cls, value: object) -> object:
        return models.not_bool(value, _WALL)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: object) -> object:
        return models.not_bool(value)

    @field_validator("description")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return _free_text(value)

    def changes(self) -> dict[str, object]:
        out: dict[str, object] = {}
        given = self.model_fields_set
        for name in ("description", "priority"):
            if name in given:
                value = getattr(self, name)
                out[name] = value if value is not None else ("" if name == "description" else 0)
        for name in ("max_jobs_per_user", "max_submit_jobs_per_user"):
            if name in given:
                out[name] = getattr(self, name)
        if "max_tres_per_user" in given:
            out.update(_tres_change(self.max_tres_per_user, "max_tres_per_user", "max_cpus_per_user",
                                    "max_memory_per_user"))
        if "grp_tres" in given:
            out.update(_tres_change(self.grp_tres, "grp_tres", "grp_cpus", "grp_memory_mb"))
        if "max_wall" in given:
            out["max_wall"] = _wall(self.max_wall)
        return out


class QosSpecBody(QosBody):
    name: str = Field(max_length=64)

    def record(self) -> QosSpec:
        cpus, memory = _tres(self.max_tres_per_user, "max_tres_per_user")
        grp_cpus, grp_memory = _tres(self.grp_tres, "grp_tres")
        return QosSpec(
            name=self.name, description=self.description or "", priority=self.priority or 0,
            max_jobs_per_user=self.max_jobs_per_user, max_submit_jobs_per_user=self.max_submit_jobs_per_user,
            max_cpus_per_user=cpus, max_memory_per_user=memory, grp_cpus=grp_cpus, grp_memory=grp_memory,
            max_wall=_wall(self.max_wall),
        )


class QosAdd(_Body):
    qos: list[QosSpecBody] = Field(min_length=1, max_length=1000)


# ------------------------------------------------------------------ answers
class LimitsOut(BaseModel):
    max_jobs: int | None
    max_submit_jobs: int | None
    grp_cpus: int | None
    grp_memory_mb: int | None
    max_wall: int | None = Field(description="Seconds.")


def _limits_out(limits: AssocLimits) -> LimitsOut:
    return LimitsOut(
        max_jobs=limits.max_jobs, max_submit_jobs=limits.max_submit_jobs, grp_cpus=limits.grp_cpus,
        grp_memory_mb=limits.grp_memory_mb, max_wall=limits.max_wall,
    )


class AccountOut(BaseModel):
    name: str
    parent: str | None = Field(description="None for root.")
    description: str
    organization: str
    fairshare: int
    limits: LimitsOut


class AccountList(BaseModel):
    accounts: list[AccountOut]


class AssociationOut(BaseModel):
    account: str
    user: str = Field(description="Empty for an account's own association.")
    parent: str | None = Field(description="The parent account of an account's association.")
    depth: int = Field(description="0 for root; an account's users are one below it.")
    fairshare: int
    limits: LimitsOut
    default: bool = Field(description="Whether this account is the user's default account.")


class AssociationList(BaseModel):
    associations: list[AssociationOut]
    enforced: bool = Field(description="AccountingStorageEnforce=associations: a job needs an association.")


class UserOut(BaseModel):
    name: str
    default_account: str
    accounts: list[str]


class UserList(BaseModel):
    users: list[UserOut]


class QosOut(BaseModel):
    name: str
    source: str = Field(description="'file' (the configuration file), 'database' (sacctmgr) or 'default'.")
    description: str
    priority: int
    max_jobs_per_user: int | None
    max_submit_jobs_per_user: int | None
    max_cpus_per_user: int | None
    max_memory_per_user: int | None
    grp_cpus: int | None
    grp_memory_mb: int | None
    max_wall: int | None = Field(description="Seconds.")


class QosList(BaseModel):
    qos: list[QosOut]
    default: str


class Changed(BaseModel):
    message: str


def _account_out(accounting: Accounting, name: str) -> AccountOut:
    if name == ROOT:
        return AccountOut(name=ROOT, parent=None, description="default root account", organization="root",
                          fairshare=1, limits=_limits_out(accounting.root_limits))
    a = accounting.accounts[name]
    return AccountOut(name=a.name, parent=a.parent, description=a.description, organization=a.organization,
                      fairshare=a.shares, limits=_limits_out(a.limits))


def tree_order(accounting: Accounting) -> list[tuple[str, str, int]]:
    """(account, user, depth) of every association, root first, each account followed by its
    users and then its sub-accounts, by name (sacctmgr's `show assoc tree` order)."""
    out: list[tuple[str, str, int]] = []
    users: dict[str, list[str]] = {}
    for user, account in accounting.associations:
        users.setdefault(account, []).append(user)

    def walk(account: str, depth: int) -> None:
        out.append((account, "", depth))
        for user in sorted(users.get(account, [])):
            out.append((account, user, depth + 1))
        for child in accounting.children(account):
            walk(child, depth + 1)

    walk(ROOT, 0)
    return out


# ------------------------------------------------------------------ accounts
@router.get("/accounting/accounts", response_model=AccountList, responses=_ERRORS)
def list_accounts(request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr show account: root and every account."""
    accounting = _service(request).snapshot()
    names = [ROOT, *sorted(accounting.accounts)]
    return AccountList(accounts=[_account_out(accounting, n) for n in names])


@router.post("/accounting/accounts", response_model=Changed, status_code=201, responses=_ERRORS)
def add_accounts(body: AccountsAdd, request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr add account: one or more accounts (all or none), under root or a parent."""
    records = [
        Account(name=a.name, parent=a.parent, description=a.description, organization=a.organization,
                shares=a.fairshare if a.fairshare is not None else 1, limits=a.limits())
        for a in body.accounts
    ]
    _service(request).add_accounts(principal, records)
    _wake(request)
    return Changed(message=f"added account(s) {', '.join(a.name for a in records)}")


@router.patch("/accounting/accounts/{name}", response_model=Changed, responses=_ERRORS)
def modify_account(name: str, body: AccountChange, request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr modify account NAME set ...: only the fields given change."""
    check_name(name, "name")
    _service(request).modify_accounts(principal, [name], body.all_changes())
    _wake(request)
    return Changed(message=f"modified account {name}")


@router.delete("/accounting/accounts/{name}", response_model=Changed, responses=_ERRORS)
def delete_account(name: str, request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr delete account NAME: with its users' associations; refused while it has
    sub-accounts or pending or running jobs."""
    check_name(name, "name")
    _service(request).delete_accounts(principal, [name])
    _wake(request)
    return Changed(message=f"deleted account {name}")


# ------------------------------------------------------------------ users
@router.get("/accounting/users", response_model=UserList, responses=_ERRORS)
def list_users(request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr show user: every user with an association, their default account and accounts."""
    accounting = _service(request).snapshot()
    mine: dict[str, list[str]] = {}
    for user, account in accounting.associations:
        mine.setdefault(user, []).append(account)
    return UserList(users=[
        UserOut(name=u, default_account=accounting.default_accounts.get(u, ""), accounts=sorted(mine[u]))
        for u in sorted(mine)
    ])


@router.post("/accounting/users", response_model=Changed, status_code=201, responses=_ERRORS)
def add_users(body: UsersAdd, request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr add user NAME Account=A[,B] [DefaultAccount=A] [limits]: an association of each
    user with each account; a user's first becomes their default account."""
    for u in body.users:
        check_name(u, "users")
    for a in body.accounts:
        check_name(a, "accounts")
    if body.default_account is not None:
        check_name(body.default_account, "default_account")
    _service(request).add_users(
        principal, body.users, body.accounts, body.default_account,
        body.fairshare if body.fairshare is not None else 1, body.limits(),
    )
    _wake(request)
    # A name given twice is one user, as sacctmgr takes `add user bob,bob` (the service keeps
    # each once): the answer names each once too.
    return Changed(message=f"added user(s) {', '.join(dict.fromkeys(body.users))}")


@router.patch("/accounting/users/{name}", response_model=Changed, responses=_ERRORS)
def modify_user(
    name: str, body: UserChange, request: Request, principal: CurrentPrincipal, account: str | None = None
) -> Any:
    """sacctmgr modify user NAME [where Account=A] set ...: the user's associations (with one
    account, or all) and/or their default account."""
    check_name(name, "name")
    if account is not None:
        check_name(account, "account")
    default = body.default_account
    if default is not None:
        check_name(default, "default_account")
    _service(request).modify_users(principal, [name], account, body.changes(), default)
    _wake(request)
    return Changed(message=f"modified user {name}")


@router.delete("/accounting/users/{name}", response_model=Changed, responses=_ERRORS)
def delete_user(name: str, request: Request, principal: CurrentPrincipal, account: str | None = None) -> Any:
    """sacctmgr delete user NAME [where Account=A]: the user's associations (with one account, or all)."""
    check_name(name, "name")
    if account is not None:
        check_name(account, "account")
    _service(request).delete_users(principal, [name], account)
    _wake(request)
    return Changed(message=f"deleted user {name}" + (f" from account {account}" if account else ""))


# ------------------------------------------------------------------ associations
@router.get("/accounting/associations", response_model=AssociationList, responses=_ERRORS)
def list_associations(request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr show assoc: every account's association and every user's, in tree order."""
    ctx: AppContext = request.app.state.ctx
    accounting = _service(request).snapshot()
    out = []
    for account, user, depth in tree_order(accounting):
        if user:
            assoc = accounting.associations[(user, account)]
            out.append(AssociationOut(
                account=account, user=user, parent=None, depth=depth, fairshare=assoc.shares,
                limits=_limits_out(assoc.limits), default=accounting.default_accounts.get(user) == account,
            ))
        else:
            a = _account_out(accounting, account)
            out.append(AssociationOut(account=account, user="", parent=a.parent, depth=depth, fairshare=a.fairshare,
                                      limits=a.limits, default=False))
    return AssociationList(associations=out, enforced=ctx.config.current.enforce_associations)


# ------------------------------------------------------------------ QOS
@router.get("/accounting/qos", response_model=QosList, responses=_ERRORS)
def list_qos(request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr show qos: the configuration file's QOS, those added with sacctmgr and the default."""
    ctx: AppContext = request.app.state.ctx
    ctx.config.refresh()
    effective = ctx.config.current
    stored = _service(request).snapshot().qos
    file_qos = set(effective.config.qos) if effective.config is not None else set()
    out = []
    for name, q in sorted(effective.qos_table().items()):
        record = stored.get(name)
        out.append(QosOut(
            name=name,
            source="file" if name in file_qos else "database" if record is not None else "default",
            description=record.description if record is not None and name not in file_qos else "",
            priority=q.priority, max_jobs_per_user=q.max_jobs_per_user,
            max_submit_jobs_per_user=q.max_submit_jobs_per_user, max_cpus_per_user=q.max_tres_per_user.cpu,
            max_memory_per_user=q.max_tres_per_user.mem, grp_cpus=q.grp_tres.cpu, grp_memory_mb=q.grp_tres.mem,
            max_wall=q.max_wall,
        ))
    return QosList(qos=out, default=effective.default_qos)


@router.post("/accounting/qos", response_model=Changed, status_code=201, responses=_ERRORS)
def add_qos(body: QosAdd, request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr add qos NAME [settings]."""
    records = [q.record() for q in body.qos]
    _service(request).add_qos(principal, records)
    _wake(request)
    return Changed(message=f"added QOS {', '.join(q.name for q in records)}")


@router.patch("/accounting/qos/{name}", response_model=Changed, responses=_ERRORS)
def modify_qos(name: str, body: QosBody, request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr modify qos NAME set ...: only the fields given change."""
    check_name(name, "name")
    _service(request).modify_qos(principal, [name], body.changes())
    _wake(request)
    return Changed(message=f"modified QOS {name}")


@router.delete("/accounting/qos/{name}", response_model=Changed, responses=_ERRORS)
def delete_qos(name: str, request: Request, principal: CurrentPrincipal) -> Any:
    """sacctmgr delete qos NAME: refused while jobs pending or running use it."""
    check_name(name, "name")
    _service(request).delete_qos(principal, [name])
    _wake(request)
    return Changed(message=f"deleted QOS {name}")
