"""`conductor sacctmgr` against a real server: accounts in a tree, users in two accounts, limits
set, shown and cleared, QOS added, changed and deleted, the question before a change, and the
refusals (a user who is no administrator, an account that does not exist). One server for the
module; each test works on accounts of its own."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ConductorProcess, clean_env, free_port
from users import make_token


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    home = tmp_path_factory.mktemp("sacctmgr") / "home"
    process = ConductorProcess(home, ["up", "--cpus", "2"], env={"CONDUCTOR_KILL_WAIT": "2"}, port=free_port())
    process.start()
    yield process
    process.kill()


class Sacctmgr:
    def __init__(self, server: ConductorProcess, token: str) -> None:
        self.env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_TOKEN=token, XDG_CONFIG_HOME=str(server.home / "xdg"))

    def __call__(self, *args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "conductor", "sacctmgr", *args], env=self.env, input=stdin,
                                capture_output=True, text=True, timeout=60, check=False)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
            assert result.stderr == "", (args, result.stderr)
        return result

    def lines(self, *args: str) -> list[str]:
        return self("-n", "-P", *args).stdout.splitlines()


@pytest.fixture(scope="module")
def sm(server: ConductorProcess) -> Sacctmgr:
    return Sacctmgr(server, server.token)


QUESTION = "Would you like to commit changes? (You have 30 seconds to decide)\n(N/y): "


def test_account_tree_and_a_user_in_two_accounts(sm: Sacctmgr) -> None:
    added = sm("add", "account", "physics", "Description=Physics department", "Organization=science", stdin="y\n")
    assert added.stdout.startswith(" Adding Account(s)\n  physics\n Settings\n  Description     = Physics department\n")
    assert added.stdout.endswith(QUESTION + "\n")
    sm("-i", "add", "account", "hep", "parent=physics")
    user = sm("-i", "add", "user", "alice", "Account=physics,hep", "DefaultAccount=hep")
    assert "  U = alice     A = physics    C = conductor \n  U = alice     A = hep        C = conductor \n" in user.stdout
    assert "Would you like" not in user.stdout

    accounts = sm("-P", "show", "account", "where", "name=physics,hep,root").stdout
    assert accounts == ("Account|Descr|Org\n"
                        "hep|hep|physics\n"
                        "physics|Physics department|science\n"
                        "root|default root account|root\n")
    fixed = sm("show", "account", "physics").stdout
    assert fixed == ("   Account                Descr                  Org \n"
                     "---------- -------------------- -------------------- \n"
                     "   physics   Physics department              science \n")
    assert sm("show", "user", "alice").stdout == ("      User   Def Acct     Admin \n"
                                                  "---------- ---------- --------- \n"
                                                  "     alice        hep           \n")
    assert sm.lines("show", "user", "alice") == ["alice|hep|"]

    header = sm("-P", "show", "assoc", "where", "account=physics,hep").stdout.splitlines()
    assert header[0] == ("Cluster|Account|User|Partition|Share|Priority|GrpJobs|GrpTRES|GrpSubmit|GrpWall|"
                         "GrpTRESMins|MaxJobs|MaxTRES|MaxTRESPerNode|MaxSubmit|MaxWall|MaxTRESMins|QOS|Def QOS|"
                         "GrpTRESRunMins")
    assert [line.split("|")[:5] for line in header[1:]] == [
        ["conductor", "physics", "", "", "1"], ["conductor", "physics", "alice", "", "1"],
        ["conductor", "hep", "", "", "1"], ["conductor", "hep", "alice", "", "1"],
    ]
    tree = sm("show", "assoc", "tree", "format=account,user,parentname").stdout.splitlines()
    assert tree[0] == "Account                    User ParentName "
    assert f"{'  hep':<20} {'':>10} {'physics':>10} " in tree
    assert f"{'   hep':<20} {'alice':>10} {'':>10} " in tree


def test_limits_are_set_shown_and_cleared(sm: Sacctmgr) -> None:
    sm("-i", "add", "account", "lim", "MaxJobs=3", "GrpTRES=cpu=8,mem=2048", "MaxWall=1:00:00", "Fairshare=5")
    sm("-i", "add", "user", "bob", "account=lim")
    fields = ["format=account,user,share,maxjobs,maxsubmit,grptres,maxwall", "where", "account=lim"]
    assert sm.lines("show", "assoc", *fields) == ["lim||5|3||cpu=8,mem=2G|01:00:00", "lim|bob|1||||"]

    changed = sm("-i", "modify", "user", "bob", "where", "account=lim", "set", "MaxJobs=1", "MaxWall=2-00:00:00",
                 "MaxSubmitJobs=4")
    assert " Modified user associations...\n" in changed.stdout
    sm("-i", "modify", "account", "where", "name=lim", "set", "GrpTRES=cpu=16,mem=2G", "MaxJobs=2")
    assert sm.lines("show", "assoc", *fields) == ["lim||5|2||cpu=16,mem=2G|01:00:00", "lim|bob|1|1|4||2-00:00:00"]
    fixed = sm("show", "assoc", "format=account,user,maxjobs,grptres,maxwall", "user=bob").stdout
    assert fixed == ("   Account       User MaxJobs       GrpTRES     MaxWall \n"
                     "---------- ---------- ------- ------------- ----------- \n"
                     "       lim        bob       1                2-00:00:00 \n")

    sm("-i", "modify", "user", "bob", "set", "MaxJobs=-1", "MaxWall=-1")
    sm("-i", "modify", "account", "lim", "set", "GrpTRES=-1", "MaxWall=-1", "MaxJobs=-1")
    assert sm.lines("show", "assoc", *fields) == ["lim||5||||", "lim|bob|1||4||"]


def test_a_declined_change_changes_nothing(sm: Sacctmgr) -> None:
    for answer in ("n\n", "\n", ""):
        result = sm("add", "account", "declined", stdin=answer)
        assert result.stdout.endswith(QUESTION + "\n Changes Discarded\n")
    assert sm.lines("show", "account", "declined") == []
    sm("-i", "add", "account", "kept")
    result = sm("delete", "account", "kept", stdin="N\n")
    assert result.stdout == " Deleting accounts...\n  kept\n" + QUESTION + "\n Changes Discarded\n"
    assert sm.lines("show", "account", "kept", "format=account") == ["kept"]


def test_delete_a_user_from_one_account_then_the_account(sm: Sacctmgr) -> None:
    sm("-i", "add", "account", "d1,d2")
    sm("-i", "add", "user", "dave", "account=d1,d2", "defaultaccount=d1")
    assert sm.lines("show", "assoc", "user=dave", "format=account,user") == ["d1|dave", "d2|dave"]
    sm("-i", "delete", "user", "dave", "where", "account=d2")
    assert sm.lines("show", "assoc", "user=dave", "format=account,user") == ["d1|dave"]
    sm("-i", "delete", "user", "name=dave", "account=d1")
    assert sm.lines("show", "user", "dave") == []
    sm("-i", "delete", "account", "d2")
    assert sm.lines("show", "account", "d1,d2", "format=account") == ["d1"]
    sm("-i", "remove", "account", "d1")
    assert sm.lines("show", "account", "d1,d2") == []


@pytest.fixture
def drop_qos(sm: Sacctmgr) -> Iterator[list[str]]:
    """QOS a test adds, deleted whatever the test found: a QOS left behind would change the
    other tests' server."""
    names: list[str] = []
    yield names
    for name in names:
        sm("-i", "delete", "qos", name, check=False)


def test_qos_added_modified_and_deleted(sm: Sacctmgr, drop_qos: list[str]) -> None:
    drop_qos.append("high")
    sm("-i", "add", "qos", "high", "Priority=100", "MaxJobsPerUser=2", "MaxSubmitJobsPerUser=5",
       "MaxTRESPerUser=cpu=4,mem=1024", "GrpTRES=cpu=16")
    fmt = "format=name,priority,maxjobspu,maxsubmitpu,maxtrespu,grptres,descr"
    assert sm.lines("show", "qos", "high", fmt) == ["high|100|2|5|cpu=4,mem=1G|cpu=16|high"]
    default = sm("show", "qos").stdout.splitlines()
    assert default[0].split() == ["Name", "Priority", "GraceTime", "Preempt", "PreemptExemptTime", "PreemptMode",
                                  "Flags", "UsageThres", "UsageFactor", "GrpTRES", "GrpTRESMins", "GrpTRESRunMin",
                                  "GrpJobs", "GrpSubmit", "GrpWall", "MaxTRES", "MaxTRESPerNode", "MaxTRESMins",
                                  "MaxWall", "MaxTRESPU", "MaxJobsPU", "MaxSubmitPU", "MaxTRESPA", "MaxJobsPA",
                                  "MaxSubmitPA", "MinTRES"]
    assert any(line.split()[:2] == ["high", "100"] for line in default[2:])
    sm("-i", "modify", "qos", "high", "set", "Priority=5", "MaxJobsPU=-1", "MaxTRESPU=-1")
    assert sm.lines("show", "qos", "high", fmt) == ["high|5||5||cpu=16|high"]
    sm("-i", "delete", "qos", "high")
    assert sm.lines("show", "qos", "high") == []


def test_qos_max_wall_is_in_minutes_as_in_slurm(sm: Sacctmgr, drop_qos: list[str]) -> None:
    """MaxWall=30 is 30 minutes (Slurm's time grammar; QosOut.max_wall is seconds)."""
    drop_qos.append("short")
    sm("-i", "add", "qos", "short", "MaxWall=30")
    assert sm.lines("show", "qos", "short", "format=name,maxwall") == ["short|00:30:00"]
    sm("-i", "modify", "qos", "short", "set", "MaxWall=2:00:00")
    assert sm.lines("show", "qos", "short", "format=name,maxwall") == ["short|02:00:00"]
    sm("-i", "delete", "qos", "short")


def test_only_an_administrator_changes(server: ConductorProcess, sm: Sacctmgr) -> None:
    user = Sacctmgr(server, make_token(Path(server.home), "mallory"))
    refused = user("-i", "add", "account", "mine", check=False)
    assert refused.returncode == 1
    assert refused.stderr == "sacctmgr: error: only an administrator may add accounts (you are 'mallory')\n"
    for args in (["modify", "account", "root", "set", "Description=x"], ["delete", "qos", "normal"]):
        assert user("-i", *args, check=False).returncode == 1
    assert "only an administrator may delete QOS" in user("-i", "delete", "qos", "normal", check=False).stderr
    assert sm.lines("show", "account", "mine") == []
    # Reading is everyone's.
    assert user("-n", "-P", "show", "account", "root", "format=account").stdout == "root\n"


def test_unknown_accounts_and_bad_input_are_errors(sm: Sacctmgr) -> None:
    for args, message in [
        (["add", "user", "carol", "account=nosuch"], "account 'nosuch' does not exist"),
        (["modify", "account", "nosuch", "set", "MaxJobs=1"], "account 'nosuch' does not exist"),
        (["delete", "account", "nosuch"], "account 'nosuch' does not exist"),
        (["add", "account", "child", "parent=nosuch"], "parent account 'nosuch' does not exist"),
        (["delete", "user", "nobody"], "no association of user 'nobody'"),
        (["add", "account", "x", "Bogus=1"], "Unknown option: Bogus=1"),
        (["modify", "user", "alice", "set", "MaxJobs=many"], "Invalid value for MaxJobs (many)"),
    ]:
        result = sm("-i", *args, check=False)
        assert result.returncode == 1, args
        assert result.stderr.startswith("sacctmgr: error: ") and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert sm.lines("show", "user", "carol") == []
