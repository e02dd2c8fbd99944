"""Whom a job runs as, from this machine's passwd database (root's entry is always there)."""

from __future__ import annotations

from pathlib import Path

import pytest
from worker_fakes import job_record

from conductor.worker.accounts import Accounts
from conductor.worker.config import NodeConfig


def node(allow_root_jobs: bool) -> NodeConfig:
    return NodeConfig("n1", 1, 100, ["debug"], Path("/nonexistent"), allow_root_jobs=allow_root_jobs)


def test_a_worker_that_is_not_root_runs_jobs_as_itself() -> None:
    run_as = Accounts(False, node(False)).run_as(job_record(1, user_name="someone-else", uid=4321))
    assert (run_as.uid, run_as.gid, run_as.groups) == ("", "", "")


def test_the_jobs_user_with_its_uid_and_groups() -> None:
    run_as = Accounts(True, node(True)).run_as(job_record(1, user_name="root", uid=0, gid=None))
    assert (run_as.uid, run_as.gid, run_as.user) == ("0", "0", "root")
    assert "0" in run_as.groups.split(",")
    # A gid the user is not a member of is not taken.
    assert Accounts(True, node(True)).run_as(job_record(1, user_name="root", uid=0, gid=987654)).gid == "0"


def test_refusals_name_the_node_and_the_rule() -> None:
    with pytest.raises(RuntimeError, match="user 'no-such-user-here' does not exist on node n1"):
        Accounts(True, node(True)).run_as(job_record(1, user_name="no-such-user-here", uid=None))
    with pytest.raises(RuntimeError, match="has uid 0 on node n1 but uid 5 where the job was submitted"):
        Accounts(True, node(True)).run_as(job_record(1, user_name="root", uid=5))
    with pytest.raises(RuntimeError, match="jobs as root are not allowed on node n1"):
        Accounts(True, node(False)).run_as(job_record(1, user_name="root", uid=0))


def test_root_jobs_follow_the_configuration_as_it_is_at_launch() -> None:
    config = node(False)
    accounts = Accounts(True, config)
    config.allow_root_jobs = True  # as `conductor up` run by root does, once the worker is made
    assert accounts.run_as(job_record(1, user_name="root", uid=0)).uid == "0"
