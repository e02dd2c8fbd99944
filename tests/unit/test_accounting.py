"""Accounts and associations: inherited limits, the limits' reasons in a pass, and classic fair
share over an account tree against the formulas of Slurm's classic_fair_share page."""

from __future__ import annotations

import pytest

from conductor.domain.accounting import (
    NO_ACCOUNT,
    ROOT,
    Account,
    Accounting,
    Association,
    AssocLimits,
    fair_share_factors,
    fair_share_tree,
)
from conductor.domain.multifactor import Weights
from conductor.scheduler.limits import (
    ASSOC_GRP_CPU,
    ASSOC_MAX_JOBS,
    ASSOC_MAX_SUBMIT,
    ASSOC_MAX_WALL,
    QOS_MAX_JOBS_PER_USER,
    Limits,
    LimitTracker,
    QosLimit,
    Usage,
)
from conductor.scheduler.policy import NodeView, PendingJob, schedule
from conductor.scheduler.priority import Multifactor, PriorityConfig


def tree() -> Accounting:
    """root -> science (3 shares) -> physics (2), chemistry (1); root -> admin (1).
    alice and bob in physics (1 share each), carol in chemistry (1), dave in admin (1)."""
    accounts = {
        "science": Account("science", ROOT, shares=3, limits=AssocLimits(max_jobs=5, grp_cpus=6)),
        "physics": Account("physics", "science", shares=2, limits=AssocLimits(max_wall=3600)),
        "chemistry": Account("chemistry", "science", shares=1),
        "admin": Account("admin", ROOT, shares=1),
    }
    assocs = {
        ("alice", "physics"): Association("alice", "physics", limits=AssocLimits(max_jobs=2)),
        ("bob", "physics"): Association("bob", "physics", limits=AssocLimits(grp_cpus=2)),
        ("carol", "chemistry"): Association("carol", "chemistry"),
        ("dave", "admin"): Association("dave", "admin", limits=AssocLimits(max_submit_jobs=1)),
    }
    return Accounting(accounts=accounts, associations=assocs,
                      default_accounts={"alice": "physics", "bob": "physics", "carol": "chemistry", "dave": "admin"})


def test_limits_are_inherited_from_the_account_path_and_group_limits_hold_at_every_level() -> None:
    a = tree()
    alice = a.resolve("alice", "physics")
    assert alice is not None
    assert (alice.max_jobs, alice.max_wall, alice.max_submit_jobs) == (2, 3600, None)  # own, physics', unset
    assert alice.groups == (((NO_ACCOUNT, "science"), 6, None),)
    bob = a.resolve("bob", "physics")
    assert bob is not None and bob.max_jobs == 5  # from science
    assert bob.groups == ((("bob", "physics"), 2, None), ((NO_ACCOUNT, "science"), 6, None))
    assert a.resolve("alice", "chemistry") is None  # no such association
    assert [x.name for x in a.path("physics")] == ["physics", "science"]
    assert a.usage_key("alice", "physics") == ("alice", "physics")
    assert a.usage_key("alice", "admin") == ("alice", NO_ACCOUNT)  # not hers: counted for her alone


def test_the_tracker_gives_slurms_association_reasons() -> None:
    a = tree()
    limits = Limits(qos={"normal": QosLimit()}, accounting=a)
    running = {("alice", "physics"): Usage(jobs=2, cpus=2), ("carol", "chemistry"): Usage(jobs=1, cpus=3)}
    t = LimitTracker(limits, {}, running)
    assert t.check("p", "alice", None, 1, 0, 60, "physics") == ASSOC_MAX_JOBS  # 2 running, MaxJobs=2
    assert t.check("p", "alice", None, 1, 0, 7200, "physics") == ASSOC_MAX_WALL  # physics' MaxWall 1 h
    # science's GrpTRES cpu=6: 5 CPUs held under it; bob asks 1 -> fits, 2 -> over.
    assert t.check("p", "bob", None, 2, 0, 60, "physics") == ASSOC_GRP_CPU
    assert t.check("p", "bob", None, 1, 0, 60, "physics") is None
    t.started("bob", None, 1, 0, "physics")
    assert t.check("p", "carol", None, 1, 0, 60, "chemistry") == ASSOC_GRP_CPU  # science full now
    # dave: MaxSubmitJobs=1 counts the jobs the pass sees, in priority order.
    assert t.check("p", "dave", None, 1, 0, 60, "admin") is None
    assert t.check("p", "dave", None, 1, 0, 60, "admin") == ASSOC_MAX_SUBMIT
    # No association (an account not hers): no account limit counts the job.
    assert t.check("p", "alice", None, 1, 0, 60, "admin") is None
    # The QOS' reason comes first, as Slurm checks the QOS before the association.
    q = LimitTracker(Limits(qos={"normal": QosLimit(max_jobs_per_user=1)}, accounting=a),
                     {("alice", None): Usage(jobs=2, cpus=2)}, running)
    assert q.check("p", "alice", None, 1, 0, 60, "physics") == QOS_MAX_JOBS_PER_USER


def test_a_pass_starts_jobs_up_to_the_accounts_limit_and_explains_the_rest() -> None:
    a = tree()
    jobs = [PendingJob(id=i, cpus=1, partition="p", user="alice", account="physics", submit_time=i,
                       time_limit=60) for i in range(4)]
    node = NodeView(name="n", cpu_ids=tuple(range(8)), free_cpu_ids=list(range(8)), memory_mb=8000, free_memory_mb=8000,
                    partitions=frozenset({"p"}))
    decision = schedule(jobs, [node], 100.0, limits=Limits(accounting=a), usage={}, account_usage={})
    assert [p.job_id for p in decision.placements] == [0, 1]
    assert decision.reasons[2] == decision.reasons[3] == ASSOC_MAX_JOBS


def test_classic_fair_share_over_a_tree_follows_slurms_formulas() -> None:
    a = tree()
    usage = {("alice", "physics"): 600.0, ("bob", "physics"): 200.0, ("carol", "chemistry"): 200.0,
             ("dave", "admin"): 0.0, ("erin", NO_ACCOUNT): 1000.0}
    rows = {(r.account, r.user): r for r in fair_share_tree(a, usage)}
    total = 2000.0
    assert rows[(ROOT, "")].raw_usage == total
    # Root's children: science 3, admin 1, erin (charged to no association) 1 share.
    science = rows[("science", "")]
    assert science.norm_shares == pytest.approx(3 / 5)
    assert science.raw_usage == 1000.0 and science.norm_usage == pytest.approx(0.5)
    assert science.effective_usage == pytest.approx(0.5)  # a child of root: its own usage
    physics = rows[("physics", "")]
    assert physics.norm_shares == pytest.approx(3 / 5 * 2 / 3)
    # UE = U + (UE_parent - U) * S_self / S_siblings
    physics_ue = 0.4 + (0.5 - 0.4) * 2 / 3
    assert physics.effective_usage == pytest.approx(physics_ue)
    alice = rows[("physics", "alice")]
    assert alice.norm_shares == pytest.approx(3 / 5 * 2 / 3 * 1 / 2)
    alice_ue = 0.3 + (physics_ue - 0.3) * 1 / 2
    assert alice.effective_usage == pytest.approx(alice_ue)
    assert alice.fairshare == pytest.approx(2 ** (-alice_ue / (3 / 5 * 2 / 3 * 1 / 2)))
    erin = rows[(ROOT, "erin")]
    assert erin.norm_shares == pytest.approx(1 / 5) and erin.fairshare == pytest.approx(2 ** (-0.5 / 0.2))
    # dave has used nothing, but his account's effective usage is its own (none): factor 1.
    assert rows[("admin", "dave")].fairshare == pytest.approx(1.0)
    # Tree order: root, then each account with its users before its sub-accounts (sshare's).
    order = [(r.account, r.user) for r in fair_share_tree(a, usage)]
    assert order.index(("science", "")) < order.index(("physics", "")) < order.index(("physics", "alice"))
    factors = fair_share_factors(fair_share_tree(a, usage))
    assert factors[("alice", "physics")] == pytest.approx(alice.fairshare)
    assert factors[("erin", NO_ACCOUNT)] == pytest.approx(erin.fairshare)


def test_without_accounts_every_user_holds_one_share_under_root() -> None:
    usage = {("u1", NO_ACCOUNT): 5.0, ("u2", NO_ACCOUNT): 50.0}
    factors = fair_share_factors(fair_share_tree(Accounting(), usage))
    assert factors[("u1", NO_ACCOUNT)] == pytest.approx(2 ** (-(5 / 55) * 2))
    assert factors[("u2", NO_ACCOUNT)] == pytest.approx(2 ** (-(50 / 55) * 2))


def test_the_heavier_account_orders_after_the_lighter_one() -> None:
    a = tree()
    config = PriorityConfig(weights=Weights(fairshare=10000), accounting=a)
    # Same user shape in two accounts: science used a lot, admin nothing.
    multifactor = Multifactor(config, {("carol", "chemistry"): 5000.0, ("dave", "admin"): 10.0},
                              cluster_cpus=8, cluster_nodes=1)
    carol = PendingJob(id=1, cpus=1, user="carol", account="chemistry")
    dave = PendingJob(id=2, cpus=1, user="dave", account="admin")
    multifactor.assign([carol, dave], 0.0)
    assert dave.priority > carol.priority
    # A job charged to an account the user has no association with counts as the user's alone.
    assert multifactor.fairshare("carol", "admin") == 1.0


def test_a_job_charged_to_no_association_of_its_user_counts_against_no_account() -> None:
    from conductor.scheduler.limits import AssociationCounts

    counts = AssociationCounts(tree(), {("eve", "science"): Usage(jobs=4, cpus=6), ("bob", "physics"): Usage(1, 1)})
    assert ("", "science") in counts.held and counts.held[("", "science")].cpus == 1  # bob's alone
    assert ("eve", "science") not in counts.held
    assert counts.check("eve", "science", 64, 0, 60.0) is None  # and nothing holds eve's job


class _Active:
    def __init__(self, active: int = 0) -> None:
        self.active = active

    def count_active(self, user_name: str, qos: str | None) -> int:
        return 0

    def count_active_in(self, user_name: str, account: str) -> int:
        return self.active



def test_the_default_account_is_charged_before_allow_accounts_judges_it() -> None:
    from conductor.config.live import Effective
    from conductor.config.loader import parse_config
    from conductor.errors import Forbidden, LimitExceeded
    from conductor.services.sharing import check_rows

    config = parse_config('[partitions.main]\nNodes = "ALL"\nDefault = true\nAllowAccounts = ["physics"]\n')
    effective = Effective(config=config, accounting=tree())
    rows = [{"user_name": "alice", "account": None, "partition": "main", "cpus_per_task": 1, "ntasks": 1,
             "time_limit": 60, "qos": None}]
    check_rows(effective, rows, _Active())
    assert rows[0]["account"] == "physics"
    carol = [dict(rows[0], user_name="carol", account=None)]  # her default, chemistry, is not allowed
    with pytest.raises(Forbidden, match="Invalid account or account/partition combination specified"):
        check_rows(effective, carol, _Active())
    # dave's MaxSubmitJobs=1: with one active job, a second is refused with Slurm's message.
    dave = [dict(rows[0], user_name="dave", account="admin", partition="main")]
    open_config = Effective(config=parse_config('[partitions.main]\nNodes = "ALL"\n'), accounting=tree())
    check_rows(open_config, dave, _Active(0))
    with pytest.raises(LimitExceeded, match="Job violates accounting/QOS policy"):
        check_rows(open_config, [dict(dave[0])], _Active(1))


def test_a_job_without_a_time_limit_gets_the_smallest_wall_of_its_limits() -> None:
    from conductor.config.live import Effective
    from conductor.config.loader import parse_config
    from conductor.services.sharing import default_time

    config = parse_config('[partitions.p]\nNodes = "ALL"\nDefaultTime = "2:00:00"\n'
                          '[partitions.q]\nNodes = "ALL"\n[qos.normal]\n[qos.short]\nMaxWall = "30:00"\n')
    effective = Effective(config=config, accounting=tree())
    # alice's physics association inherits physics' MaxWall of 1 hour.
    assert default_time(effective, "p", None, 600, "alice", None) == 3600  # her default account
    assert default_time(effective, "p", "short", 600, "alice", "physics") == 1800
    assert default_time(effective, "q", None, None, "carol", "chemistry") is None  # nothing limits it
    assert default_time(effective, "q", None, 600, "carol", "chemistry") == 600
    assert default_time(effective, "q", None, None, "alice", "physics") == 3600
    assert default_time(effective, "p", None, None, "carol", None) == 7200


def test_a_login_name_with_capitals_is_charged_to_its_lower_case_association() -> None:
    """sacctmgr stores `jsmith`; the jobs of the login `JSmith` are charged to it, held to its
    limits and counted in its fair share (Slurm without PreserveCaseUser finds no association)."""
    from conductor.config.live import Effective
    from conductor.config.loader import parse_config
    from conductor.errors import Forbidden
    from conductor.services.sharing import check_rows

    base = tree()
    a = Accounting(
        accounts=base.accounts,
        associations={**base.associations,
                      ("jsmith", "admin"): Association("jsmith", "admin", limits=AssocLimits(max_jobs=1))},
        default_accounts={**base.default_accounts, "jsmith": "admin"},
    )
    assert a.default_account("JSmith") == "admin"
    assert a.association("JSmith", "admin") is a.associations[("jsmith", "admin")]
    resolved = a.resolve("JSmith", "admin")
    assert resolved is not None and resolved.max_jobs == 1
    assert a.usage_key("JSmith", "admin") == ("jsmith", "admin")
    assert a.association("JSmith", "physics") is None and a.usage_key("JSmith", "physics") == ("JSmith", NO_ACCOUNT)
    # Enforced associations: JSmith submits, charged to jsmith's default account.
    enforce = Effective(config=parse_config('AccountingStorageEnforce = "associations"\n'
                                            '[partitions.main]\nNodes = "ALL"\nDefault = true\n'), accounting=a)
    rows = [{"user_name": "JSmith", "account": None, "partition": "main", "cpus_per_task": 1, "ntasks": 1,
             "time_limit": 60, "qos": None}]
    check_rows(enforce, rows, _Active())
    assert rows[0]["account"] == "admin"
    with pytest.raises(Forbidden, match="Invalid account"):
        check_rows(enforce, [dict(rows[0], user_name="JDoe", account=None)], _Active())
    # The association's MaxJobs holds the job of JSmith in a pass, whichever spelling runs.
    limits = Limits(qos={"normal": QosLimit()}, accounting=a)
    tracker = LimitTracker(limits, {}, {("JSmith", "admin"): Usage(jobs=1, cpus=1)})
    assert tracker.check("p", "JSmith", None, 1, 0, 60, "admin") == ASSOC_MAX_JOBS
    assert LimitTracker(limits, {}, {("jsmith", "admin"): Usage(jobs=1, cpus=1)}).check(
        "p", "JSmith", None, 1, 0, 60, "admin") == ASSOC_MAX_JOBS
    spelled = LimitTracker(limits, {}, {})
    assert spelled.check("p", "jsmith", None, 1, 0, 60, "admin") is None
    spelled.started("jsmith", None, 1, 0, "admin")
    assert spelled.check("p", "JSmith", None, 1, 0, 60, "admin") == ASSOC_MAX_JOBS
    # Its usage counts in the association's fair share, not for a user of its own under root.
    multifactor = Multifactor(PriorityConfig(weights=Weights(fairshare=10000), accounting=a),
                              {("JSmith", "admin"): 500.0, ("dave", "admin"): 0.0}, cluster_cpus=8, cluster_nodes=1)
    rows_by = {(r.account, r.user): r for r in fair_share_tree(a, multifactor.usage)}
    assert rows_by[("admin", "jsmith")].raw_usage == 500.0 and (ROOT, "JSmith") not in rows_by
    assert multifactor.fairshare("JSmith", "admin") == pytest.approx(rows_by[("admin", "jsmith")].fairshare)
    # Pending, JSmith is no user of their own under root either (sshare would show two lines).
    shown = {(r.account, r.user) for r in fair_share_tree(a, multifactor.usage, ["JSmith", "JDoe"])}
    assert (ROOT, "JSmith") not in shown and (ROOT, "JDoe") in shown


def test_sshare_finds_the_lower_case_association_of_a_login_with_capitals(monkeypatch: pytest.MonkeyPatch) -> None:
    from conductor.cli import sshare

    row = {"depth": 1, "account": "admin", "user": "", "raw_shares": 1, "norm_shares": 1.0, "raw_usage": 5,
           "norm_usage": 1.0, "effective_usage": 1.0, "fairshare": 1.0, "level_fs": 1.0}
    found = [row, dict(row, depth=2, user="jsmith"), dict(row, depth=2, user="dave"),
             dict(row, depth=1, account="root", user="JDoe")]
    monkeypatch.setattr(sshare, "current_user", lambda: "JSmith")
    assert [r["user"] for r in sshare._rows(found, {})] == ["", "jsmith"]
    assert [r["user"] for r in sshare._rows(found, {"users": "JSmith,JDoe"})] == ["", "jsmith", "JDoe"]
