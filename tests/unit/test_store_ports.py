"""Each consumer names what it needs from the store in a small Protocol; `Store` must keep
serving every one of them (the same method names, taking at least the parameters asked)."""

from __future__ import annotations

import inspect

import pytest

from conductor.bus.postgres import NotifyStore
from conductor.scheduler.dependencies import DependencyStore
from conductor.scheduler.leader import LockStore
from conductor.scheduler.loop import SchedulerStore
from conductor.services.forecast import PlanStore
from conductor.services.ports import JobStore
from conductor.services.tokens import TokenStore
from conductor.store import Store
from conductor.worker.ports import NodeStore

PORTS = [SchedulerStore, NodeStore, JobStore, DependencyStore, TokenStore, LockStore, NotifyStore, PlanStore]


def _members(port: type) -> dict[str, object]:
    names = set()
    for klass in port.__mro__:
        if klass is object or klass.__name__ in ("Protocol", "Generic"):
            continue
        names |= {n for n in vars(klass) if not n.startswith("_")} | set(getattr(klass, "__annotations__", {}))
    return {n: inspect.getattr_static(port, n, None) for n in names}


@pytest.mark.parametrize("port", PORTS, ids=lambda p: p.__name__)
def test_the_store_serves_the_port(port: type) -> None:
    for name, member in _members(port).items():
        provided = inspect.getattr_static(Store, name, None)
        if provided is None:
            assert name in ("dialect",), f"Store lacks {port.__name__}.{name}"
            continue
        if inspect.isfunction(member):
            assert inspect.isfunction(provided), name
            asked = inspect.signature(member).parameters
            given = inspect.signature(provided).parameters
            for parameter in asked.values():
                assert parameter.name in given, f"Store.{name} takes no {parameter.name!r} ({port.__name__})"
                assert given[parameter.name].kind == parameter.kind, f"Store.{name}({parameter.name})"


def test_the_store_has_a_dialect(tmp_path: object) -> None:
    store = Store(f"sqlite:///{tmp_path}/ports.db")
    try:
        assert store.dialect == "sqlite" and store.database == f"{tmp_path}/ports.db"
    finally:
        store.close()
