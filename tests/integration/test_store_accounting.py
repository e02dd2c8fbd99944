"""The accounting store on SQLite and PostgreSQL: accounts, associations, default accounts and
QOS, the rules checked inside each transaction, and the generation each change bumps."""

from __future__ import annotations

from typing import Any

import pytest

from conductor.domain.accounting import ROOT, Account, Association, AssocLimits, QosSpec
from conductor.errors import Conflict, Invalid, NotFound
from conductor.store import Store, utcnow


def job_row(user: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": "job", "user_name": user, "partition": "debug", "cpus_per_task": 1, "work_dir": "/tmp",
        "script": "#!/bin/bash\ntrue\n", "environment": "{}", "submit_time": utcnow(), "time_limit": 600,
    }
    row.update(values)
    return row


def test_accounts_users_and_qos_round_trip_and_each_change_bumps_the_generation(store: Store) -> None:
    start, _ = store.config_state()
    store.add_accounts([
        Account("science", ROOT, "all science", "uni", 3, AssocLimits(grp_cpus=8, grp_memory_mb=4096)),
        Account("physics", "science", shares=2, limits=AssocLimits(max_wall=3600)),
    ])
    store.add_associations([Association("ann", "physics", 1, AssocLimits(max_jobs=2, max_submit_jobs=5))], None)
    store.add_qos([QosSpec("long", "long jobs", 10, max_jobs_per_user=2, max_cpus_per_user=4, max_wall=86400)])
    a = store.accounting()
    assert a.accounts["science"] == Account("science", ROOT, "all science", "uni", 3,
                                            AssocLimits(grp_cpus=8, grp_memory_mb=4096))
    assert a.associations[("ann", "physics")].limits == AssocLimits(max_jobs=2, max_submit_jobs=5)
    assert a.default_accounts == {"ann": "physics"}  # the first association is the default
    assert a.qos["long"].max_cpus_per_user == 4 and a.qos["long"].description == "long jobs"
    assert store.config_state()[0] == start + 3

    store.modify_accounts(["physics"], {"shares": 5, "max_wall": None})
    store.modify_associations(["ann"], "physics", {"max_jobs": None})
    store.modify_qos(["long"], {"priority": 20, "max_wall": None})
    a = store.accounting()
    assert a.accounts["physics"].shares == 5 and a.accounts["physics"].limits.max_wall is None
    assert a.associations[("ann", "physics")].limits.max_jobs is None
    assert a.qos["long"].priority == 20 and a.qos["long"].max_wall is None

    store.add_accounts([Account("chemistry", "science")])
    store.add_associations([Association("ann", "chemistry")], "chemistry")
    assert store.accounting().default_accounts == {"ann": "chemistry"}
    store.delete_associations(["ann"], "chemistry")  # the default moves to what is left
    assert store.accounting().default_accounts == {"ann": "physics"}
    store.delete_qos(["long"])
    assert store.accounting().qos == {}


def test_the_rules_are_checked_inside_the_transaction(store: Store) -> None:
    store.add_accounts([Account("science"), Account("physics", "science")])
    with pytest.raises(Conflict, match="already exists"):
        store.add_accounts([Account("science")])
    with pytest.raises(NotFound, match="parent account 'nosuch'"):
        store.add_accounts([Account("x", "nosuch")])
    with pytest.raises(Invalid, match="own parent or ancestor"):
        store.modify_accounts(["science"], {"parent": "physics"})
    with pytest.raises(Conflict, match=r"sub-accounts \(physics\)"):
        store.delete_accounts(["science"])
    with pytest.raises(Invalid, match="cannot change"):
        store.modify_accounts(["science"], {"name": "other"})
    with pytest.raises(NotFound, match="account 'nosuch' does not exist"):
        store.add_associations([Association("ann", "nosuch")], None)
    store.add_associations([Association("ann", "physics")], None)
    with pytest.raises(Conflict, match="already associated"):
        store.add_associations([Association("ann", "physics")], None)
    with pytest.raises(Invalid, match="not associated with account 'science'"):
        store.modify_associations(["ann"], None, {}, default_account="science")
    # An account (or association) with a pending job stays.
    store.submit([job_row("ann", account="physics")])
    with pytest.raises(Conflict, match="pending or running jobs"):
        store.delete_accounts(["physics"])
    with pytest.raises(Conflict, match="pending or running jobs in account 'physics'"):
        store.delete_associations(["ann"], None)
    # The jobs of a login with capitals count for the lower-case association they are charged to.
    store.add_associations([Association("bea", "physics")], None)
    store.submit([job_row("Bea", account="physics")])
    with pytest.raises(Conflict, match="user 'bea' has 1 pending or running jobs in account 'physics'"):
        store.delete_associations(["bea"], None)
    assert store.count_active_in("ann", "physics") == 1 and store.count_active_in("ann", "science") == 0
    # Nothing of the refused changes was stored.
    a = store.accounting()
    assert set(a.accounts) == {"science", "physics"} and a.accounts["science"].parent == ROOT
    assert sorted(a.associations) == [("ann", "physics"), ("bea", "physics")]


def test_deleting_accounts_takes_their_associations_and_moves_defaults(store: Store) -> None:
    store.add_accounts([Account("a"), Account("b"), Account("c", "b")])
    store.add_associations([Association("ann", "b"), Association("ann", "a")], "b")
    store.add_associations([Association("bob", "c")], None)
    store.delete_accounts(["b", "c"])  # a subtree at once
    a = store.accounting()
    assert set(a.accounts) == {"a"} and list(a.associations) == [("ann", "a")]
    assert a.default_accounts == {"ann": "a"}  # bob had no other: he is gone


def test_parents_named_in_one_request_must_lead_to_root(store: Store) -> None:
    with pytest.raises(Invalid, match="own parent or ancestor"):
        store.add_accounts([Account("cyca", "cycb"), Account("cycb", "cyca")])
    store.add_accounts([Account("top"), Account("mid", "top"), Account("leaf", "mid")])  # any order
    assert store.accounting().path("leaf")[-1].name == "top"
    assert "cyca" not in store.accounting().accounts


def test_adding_associations_adds_what_is_new(store: Store) -> None:
    store.add_accounts([Account("a"), Account("b")])
    store.add_associations([Association("ann", "a")], None)
    store.add_associations([Association("ann", "a", shares=9), Association("ann", "b")], "b")
    a = store.accounting()
    assert a.associations[("ann", "a")].shares == 1  # the existing one is left as it was
    assert ("ann", "b") in a.associations and a.default_accounts == {"ann": "b"}
