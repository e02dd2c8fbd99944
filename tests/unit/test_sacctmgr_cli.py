"""`conductor sacctmgr` without a server: words -> the requests it would make, the server's
answers -> the text it prints (headers and widths of Slurm 22.05's sacctmgr), the question
before a change, and the refusals of malformed input."""

from __future__ import annotations

import io
from typing import Any

import pytest

from conductor.cli import sacctmgr
from conductor.cli.client import ApiError
from conductor.cli.common import UsageError
from conductor.cli.sacctmgr import Call, Change, Show, columns, parse, render, rows


def change(*words: str) -> Change:
    found = parse(list(words))
    assert isinstance(found, Change)
    return found


def show(*words: str) -> Show:
    found = parse(list(words))
    assert isinstance(found, Show)
    return found


def refused(*words: str) -> str:
    with pytest.raises(UsageError) as caught:
        parse(list(words))
    return str(caught.value)


class FakeClient:
    """Records the requests; answers GETs from `answers`, or raises `error` on a change."""

    def __init__(self, answers: dict[str, Any] | None = None, error: ApiError | None = None) -> None:
        self.answers = answers or {}
        self.error = error
        self.calls: list[Call] = []
        self.closed = False

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        if method == "GET":
            return self.answers[path]
        self.calls.append(Call(method, path, body, query))
        if self.error is not None:
            raise self.error
        return {"message": "ok"}

    def close(self) -> None:
        self.closed = True


def run(argv: list[str], client: FakeClient, monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return sacctmgr.main(argv, client)


# ------------------------------------------------------------------ add
def test_add_account_sends_slurms_defaults_for_description_and_organization() -> None:
    c = change("add", "account", "Physics,chem")
    assert c.calls == [Call("POST", "/accounting/accounts", {"accounts": [
        {"name": "physics", "parent": "root", "description": "physics", "organization": "physics"},
        {"name": "chem", "parent": "root", "description": "chem", "organization": "chem"},
    ]})]
    assert c.summary == (
        " Adding Account(s)\n  physics\n  chem\n Settings\n"
        "  Description     = Account Name\n  Organization    = Parent/Account Name\n"
        " Associations\n  A = physics    C = conductor \n  A = chem       C = conductor \n"
    )


def test_add_sub_account_with_limits() -> None:
    c = change("create", "acct", "hep", "Parent=physics", "Description=High energy", "MaxJobs=4", "MaxSubmit=10",
               "GrpTRES=cpu=8,mem=65536", "MaxWall=1:00:00", "Fairshare=10")
    (call,) = c.calls
    assert call.body == {"accounts": [{
        "name": "hep", "parent": "physics", "description": "High energy", "organization": "physics",
        "max_jobs": 4, "max_submit_jobs": 10, "grp_tres": "cpu=8,mem=64G", "max_wall": "1:00:00", "fairshare": 10,
    }]}
    assert c.summary.endswith(
        " Settings\n  Fairshare     = 10\n  GrpTRES       = cpu=8,mem=64G\n  MaxJobs       = 4\n"
        "  MaxSubmitJobs = 10\n  MaxWall       = 01:00:00\n  Parent        = physics\n"
    )
    assert "  Description     = High energy\n" in c.summary


def test_add_user_with_two_accounts_and_a_default() -> None:
    c = change("add", "user", "alice", "Account=physics,hep", "DefaultAccount=hep", "MaxJobs=2")
    assert c.calls == [Call("POST", "/accounting/users", {
        "users": ["alice"], "accounts": ["physics", "hep"], "default_account": "hep", "max_jobs": 2})]
    assert c.summary == (
        " Adding User(s)\n  alice\n Settings =\n  Default Account = hep\n Associations =\n"
        "  U = alice     A = physics    C = conductor \n  U = alice     A = hep        C = conductor \n"
        " Non Default Settings\n  MaxJobs       = 2\n"
    )


def test_add_user_default_account_alone_names_the_account() -> None:
    (call,) = change("add", "user", "name=bob", "defaultaccount=chem").calls
    assert call.body == {"users": ["bob"], "accounts": ["chem"], "default_account": "chem"}


def test_add_qos() -> None:
    c = change("add", "qos", "high", "Priority=100", "MaxJobsPerUser=2", "MaxSubmitJobsPerUser=5",
               "MaxTRESPerUser=cpu=4,mem=1024", "GrpTRES=cpu=16", "MaxWall=2-00:00:00")
    assert c.calls == [Call("POST", "/accounting/qos", {"qos": [{
        "name": "high", "description": "high", "priority": 100, "max_jobs_per_user": 2,
        "max_submit_jobs_per_user": 5, "max_tres_per_user": "cpu=4,mem=1G", "grp_tres": "cpu=16",
        "max_wall": "2-00:00:00"}]})]
    assert "  MaxTRESPerUser           = cpu=4,mem=1G\n" in c.summary
    assert "  MaxWall                  = 2-00:00:00\n" in c.summary
    assert c.summary.startswith(" Adding QOS(s)\n  high\n Settings\n  Description    = QOS Name\n")


# ------------------------------------------------------------------ modify
def test_modify_account_both_forms_and_minus_one_clears() -> None:
    for words in (["modify", "account", "hep", "set", "MaxJobs=-1", "GrpTRES=-1", "MaxWall=-1"],
                  ["update", "account", "where", "name=hep", "set", "maxjobs=-1", "grptres=-1", "maxw=-1"]):
        c = change(*words)
        assert c.calls == [Call("PATCH", "/accounting/accounts/hep",
                                {"max_jobs": None, "grp_tres": None, "max_wall": None})]
        assert c.summary == " Modified account associations...\n  C = conductor  A = hep\n"


def test_modify_account_text_and_parent() -> None:
    c = change("modify", "account", "hep", "set", "Description=HEP", "parent=chem")
    assert c.calls == [Call("PATCH", "/accounting/accounts/hep", {"description": "HEP", "parent": "chem"})]
    assert c.summary.startswith(" Modified accounts...\n  hep\n")


def test_modify_user_in_one_account_or_all() -> None:
    c = change("modify", "user", "alice", "where", "Account=hep", "set", "MaxJobs=2", "DefaultAccount=hep")
    assert c.calls == [Call("PATCH", "/accounting/users/alice", {"max_jobs": 2, "default_account": "hep"},
                            {"account": "hep"})]
    assert c.summary == (" Modified users...\n  alice\n Modified user associations...\n"
                         "  C = conductor  A = hep                  U = alice    \n")
    (call,) = change("modify", "user", "where", "user=alice", "set", "maxsubmitjobs=3").calls
    assert call == Call("PATCH", "/accounting/users/alice", {"max_submit_jobs": 3})
    assert len(change("modify", "user", "alice,bob", "where", "account=a,b", "set", "fairshare=2").calls) == 4


def test_minus_one_in_an_add_is_no_limit() -> None:
    (call,) = change("add", "qos", "q", "Priority=-1", "MaxWall=-1", "GrpTRES=-1").calls
    assert call.body == {"qos": [{"name": "q", "description": "q", "priority": None, "max_wall": None,
                                  "grp_tres": None}]}
    c = change("add", "account", "a", "MaxJobs=-1")
    assert c.calls[0].body["accounts"][0]["max_jobs"] is None
    assert "  MaxJobs       = NONE\n" in c.summary


def test_modify_qos() -> None:
    (call,) = change("modify", "qos", "high", "set", "MaxJobsPU=-1", "Priority=5", "MaxWall=30").calls
    assert call == Call("PATCH", "/accounting/qos/high", {"max_jobs_per_user": None, "priority": 5, "max_wall": "30"})


# ------------------------------------------------------------------ delete
def test_delete_forms() -> None:
    assert change("delete", "account", "hep").calls == [Call("DELETE", "/accounting/accounts/hep")]
    expected = [Call("DELETE", "/accounting/users/alice", None, {"account": "physics"})]
    assert change("remove", "user", "alice", "where", "account=physics").calls == expected
    assert change("delete", "user", "name=alice", "account=physics").calls == expected
    assert change("delete", "user", "alice").calls == [Call("DELETE", "/accounting/users/alice")]
    assert change("delete", "qos", "high").calls == [Call("DELETE", "/accounting/qos/high")]
    assert change("delete", "user", "alice", "account=physics").summary == (
        " Deleting user associations...\n  C = conductor  A = physics    U = alice    \n")


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["add", "account", "physics", "Foo=1"], "Unknown option: Foo=1: use keyword 'where' to modify condition"),
        (["add", "account"], "Need name of account to add"),
        (["add", "user", "alice"], "Need name of account to add user to"),
        (["add", "user", "account=physics"], "Need name of user to add"),
        (["add", "qos"], "Need name of qos to add"),
        (["add", "account", "a", "MaxJobs=abc"], "Invalid value for MaxJobs (abc)"),
        (["add", "account", "a", "GrpTRES=gpu=2"], "Invalid TRES 'gpu=2' in GrpTRES=gpu=2: only cpu and mem"),
        (["add", "account", "a", "GrpTRES=cpu"], "Invalid TRES 'cpu' in GrpTRES=cpu"),
        (["add", "account", "a", "GrpTRES=mem=lots"], "Invalid TRES 'mem=lots'"),
        (["add", "account", "a", "MaxWall=soon"], "Bad MaxWallDurationPerJob time format: soon"),
        (["add", "account", "a", "GrpJobs=2"], "GrpJobs is not supported here"),
        (["add", "account", "a", "cluster=other"], "this scheduler has one cluster, 'conductor'"),
        (["modify", "account", "hep"], "You didn't give me anything to set"),
        (["modify", "account", "set", "maxjobs=1"], "You didn't set any conditions with 'WHERE'"),
        (["modify", "account", "hep", "set", "name=x"], "Can't modify the name of an account"),
        (["modify", "account", "hep", "Foo=1", "set", "maxjobs=1"], "Unknown condition: Foo=1: use keyword 'set'"),
        (["modify", "user", "alice", "set", "maxjobs"], "Bad format on maxjobs: End your option with an '=' sign"),
        (["modify", "user", "alice", "set", "parent=x"], "Unknown option: parent=x"),
        (["modify", "account", "root", "set", "maxjobs=1"], "account 'root'"),
        (["delete", "account"], "No conditions given to remove"),
        (["delete", "account", "root"], "You are not allowed to remove the root account"),
        (["add", "cluster", "x"], "No valid entity 'cluster' in add command"),
        (["show", "events"], "No valid entity 'events' in list command"),
        (["frobnicate", "account"], "Invalid keyword: frobnicate"),
        (["ad", "account", "x"], "Invalid keyword: ad"),  # sacctmgr needs three letters of 'add'
        (["dump", "cluster"], "'dump' is not supported here"),
        (["show", "assoc", "format=bogus"], "Unknown field 'bogus'"),
        (["show", "account", "where", "colour=red"], "Unknown condition: colour=red"),
        (["show", "account", "withcoord"], "withcoord is not supported here"),
    ],
)
def test_malformed_input_is_refused_with_the_keyword_and_the_rule(words: list[str], message: str) -> None:
    assert message in refused(*words)


def test_refusals_exit_1_with_one_line_on_stderr(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    client = FakeClient()
    assert run(["-i", "add", "account", "physics", "Foo=1"], client, monkeypatch) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == "sacctmgr: error: Unknown option: Foo=1: use keyword 'where' to modify condition\n"
    assert client.calls == []
    assert run(["--bogus"], client, monkeypatch) == 1
    assert "unrecognized option '--bogus'" in capsys.readouterr().err
    assert run([], client, monkeypatch) == 1
    assert "no command given" in capsys.readouterr().err


def test_server_refusal_prints_its_detail(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    client = FakeClient(error=ApiError(403, "only an administrator may add accounts (you are 'bob')"))
    assert run(["-i", "add", "account", "physics"], client, monkeypatch) == 1
    out, err = capsys.readouterr()
    assert out == ""  # nothing was added: no "Adding Account(s)"
    assert err == "sacctmgr: error: only an administrator may add accounts (you are 'bob')\n"


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["add", "user", "alice", "Account=physics,chemistry"], "account 'chemistry' does not exist"),
        (["modify", "qos", "normal", "set", "MaxJobsPerUser=2"], "no QOS 'normal'"),
    ],
)
def test_immediate_refusal_prints_no_success_text(
    words: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeClient(error=ApiError(400, message))
    assert run(["-i", *words], client, monkeypatch) == 1
    assert capsys.readouterr() == ("", f"sacctmgr: error: {message}\n")
    assert len(client.calls) == 1


@pytest.mark.parametrize(
    "words",
    [
        ["add", "user", "alice", "Account=physics,chemistry"],
        ["modify", "qos", "normal", "set", "MaxJobsPerUser=2"],
        ["delete", "account", "physics"],
    ],
)
def test_immediate_success_prints_the_summary_after_the_change(
    words: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    printed_before: list[str] = []

    class Watching(FakeClient):
        def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
            printed_before.append(capsys.readouterr().out)
            return super().request(method, path, body, query)

    client = Watching()
    assert run(["-i", *words], client, monkeypatch) == 0
    assert printed_before == [""] * len(client.calls)
    # The same bytes as the summary, only later.
    assert capsys.readouterr().out == change(*words).summary


# ------------------------------------------------------------------ the question
QUESTION = "Would you like to commit changes? (You have 30 seconds to decide)\n(N/y): "


@pytest.mark.parametrize("answer", ["n\n", "N\n", "\n", "", "x\n", " y\n"])
def test_a_change_is_discarded_unless_the_answer_is_y(
    answer: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeClient()
    assert run(["add", "account", "physics"], client, monkeypatch, stdin=answer) == 0
    out = capsys.readouterr().out
    assert out.startswith(" Adding Account(s)\n  physics\n")
    assert out.endswith(QUESTION + "\n Changes Discarded\n")
    assert client.calls == []


@pytest.mark.parametrize("answer", ["y\n", "Y\n", "yes\n"])
def test_y_commits(answer: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    client = FakeClient()
    assert run(["delete", "user", "alice", "where", "account=physics"], client, monkeypatch, stdin=answer) == 0
    out = capsys.readouterr().out
    assert out == " Deleting user associations...\n  C = conductor  A = physics    U = alice    \n" + QUESTION + "\n"
    assert client.calls == [Call("DELETE", "/accounting/users/alice", None, {"account": "physics"})]
    assert client.closed is False  # the caller's client: the caller closes it


def test_a_refusal_after_the_question_was_answered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeClient(error=ApiError(400, "account 'physics' does not exist"))
    assert run(["delete", "account", "physics"], client, monkeypatch, stdin="y\n") == 1
    out, err = capsys.readouterr()
    # The summary was the question's subject, asked before anything was sent.
    assert out == " Deleting accounts...\n  physics\n" + QUESTION + "\n"
    assert err == "sacctmgr: error: account 'physics' does not exist\n"


def test_immediate_asks_nothing_and_quiet_prints_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    client = FakeClient()
    assert run(["-i", "add", "qos", "high"], client, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "Would you like" not in out and out.startswith(" Adding QOS(s)\n")
    assert run(["--immediate", "-Q", "delete", "qos", "high"], client, monkeypatch) == 0
    assert capsys.readouterr().out == ""
    assert [c.method for c in client.calls] == ["POST", "DELETE"]


def test_readonly_refuses_changes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    client = FakeClient()
    assert run(["-r", "-i", "delete", "qos", "high"], client, monkeypatch) == 1
    assert "readonly mode" in capsys.readouterr().err and client.calls == []


# ------------------------------------------------------------------ show: columns
def _headers(entity: str) -> list[tuple[str, int]]:
    return [(header, width) for _, header, width, _ in show("show", entity).columns]


def test_default_columns_are_slurm_22_05s() -> None:
    assert _headers("account") == [("Account", 10), ("Descr", 20), ("Org", 20)]
    assert _headers("user") == [("User", 10), ("Def Acct", 10), ("Admin", 9)]
    assert _headers("assoc") == [
        ("Cluster", 10), ("Account", 10), ("User", 10), ("Partition", 10), ("Share", 9), ("Priority", 10),
        ("GrpJobs", 7), ("GrpTRES", 13), ("GrpSubmit", 9), ("GrpWall", 11), ("GrpTRESMins", 13), ("MaxJobs", 7),
        ("MaxTRES", 13), ("MaxTRESPerNode", 14), ("MaxSubmit", 9), ("MaxWall", 11), ("MaxTRESMins", 13),
        ("QOS", 20), ("Def QOS", 9), ("GrpTRESRunMins", 13),
    ]
    assert _headers("qos") == [
        ("Name", 10), ("Priority", 10), ("GraceTime", 10), ("Preempt", 10), ("PreemptExemptTime", 19),
        ("PreemptMode", 11), ("Flags", 40), ("UsageThres", 10), ("UsageFactor", 11), ("GrpTRES", 13),
        ("GrpTRESMins", 13), ("GrpTRESRunMins", 13), ("GrpJobs", 7), ("GrpSubmit", 9), ("GrpWall", 11),
        ("MaxTRES", 13), ("MaxTRESPerNode", 14), ("MaxTRESMins", 13), ("MaxWall", 11), ("MaxTRESPU", 13),
        ("MaxJobsPU", 9), ("MaxSubmitPU", 11), ("MaxTRESPA", 13), ("MaxJobsPA", 9), ("MaxSubmitPA", 11),
        ("MinTRES", 13),
    ]


def test_format_keywords_abbreviate_as_in_sacctmgr() -> None:
    got = [(key, header, width) for key, header, width, _ in columns("acc,acct,des,o,u,defaulta,ad,cl,part,s,fairshare,"
                                                                      "maxj,maxs,maxw,grptres,maxtrespu,maxjobspu,"
                                                                      "maxsubmitpu,prio,parentn,na,qos")]
    assert got == [
        ("account", "Account", 10), ("account", "Account", 10), ("description", "Descr", 20),
        ("organization", "Org", 20), ("user", "User", 10), ("default_account", "Def Acct", 10),
        ("admin", "Admin", 9), ("cluster", "Cluster", 10), ("partition", "Partition", 10), ("share", "Share", 9),
        ("share", "Share", 9), ("max_jobs", "MaxJobs", 7), ("max_submit", "MaxSubmit", 9),
        ("max_wall", "MaxWall", 11), ("grp_tres", "GrpTRES", 13), ("max_tres_pu", "MaxTRESPU", 13),
        ("max_jobs", "MaxJobsPU", 9), ("max_submit", "MaxSubmitPU", 11), ("priority", "Priority", 10),
        ("parent_name", "ParentName", 10), ("name", "Name", 10), ("qos", "QOS", 20),
    ]
    for too_short in ("a", "ac", "d", "def", "p", "pr", "grp", "max", "c"):
        with pytest.raises(UsageError):
            columns(too_short)
    assert columns("account%20,user%-5")[0][2] == 20 and columns("user%-5")[0][2] == -5
    assert columns("account", tree=True)[0][2] == -20


# ------------------------------------------------------------------ show: text
ASSOCIATIONS = {"enforced": True, "associations": [
    {"account": "root", "user": "", "parent": None, "depth": 0, "fairshare": 1, "default": False,
     "limits": {"max_jobs": None, "max_submit_jobs": None, "grp_cpus": None, "grp_memory_mb": None, "max_wall": None}},
    {"account": "physics", "user": "", "parent": "root", "depth": 1, "fairshare": 10, "default": False,
     "limits": {"max_jobs": 4, "max_submit_jobs": None, "grp_cpus": 8, "grp_memory_mb": 65536, "max_wall": 3600}},
    {"account": "physics", "user": "alice", "parent": None, "depth": 2, "fairshare": 1, "default": True,
     "limits": {"max_jobs": 2, "max_submit_jobs": 10, "grp_cpus": None, "grp_memory_mb": 500,
                "max_wall": 172800}},
    {"account": "hep", "user": "", "parent": "physics", "depth": 2, "fairshare": 1, "default": False,
     "limits": {"max_jobs": None, "max_submit_jobs": None, "grp_cpus": None, "grp_memory_mb": 1536,
                "max_wall": None}},
]}


def test_show_assoc_fixed_width() -> None:
    s = show("show", "assoc", "format=Cluster,Account,User,Share,GrpTRES,MaxJobs,MaxSubmit,MaxWall")
    assert render(s, rows(s, ASSOCIATIONS)) == (
        "   Cluster    Account       User     Share       GrpTRES MaxJobs MaxSubmit     MaxWall \n"
        "---------- ---------- ---------- --------- ------------- ------- --------- ----------- \n"
        " conductor       root                    1                                             \n"
        " conductor    physics                   10 cpu=8,mem=64G       4              01:00:00 \n"
        " conductor    physics      alice         1      mem=500M       2        10  2-00:00:00 \n"
        " conductor        hep                    1     mem=1536M                               \n"
    )


def test_show_assoc_parsable_noheader_and_filters() -> None:
    s = show("show", "assoc", "format=account,user,grptres,maxwall", "where", "user=alice")
    assert render(s, rows(s, ASSOCIATIONS), parsable="P") == "Account|User|GrpTRES|MaxWall\nphysics|alice|mem=500M|2-00:00:00\n"
    s = show("list", "associations", "account=physics", "format=account,user")
    assert render(s, rows(s, ASSOCIATIONS), parsable="p", header=False) == "physics||\nphysics|alice|\n"
    s = show("show", "assoc", "parent=physics", "format=acc")
    assert render(s, rows(s, ASSOCIATIONS), parsable="P", header=False) == "hep\n"
    s = show("show", "assoc", "cluster=elsewhere", "format=acc")
    assert rows(s, ASSOCIATIONS) == []


def test_show_assoc_default_columns_print_empty_what_is_not_kept() -> None:
    s = show("show", "assoc")
    text = render(s, rows(s, ASSOCIATIONS), parsable="P").splitlines()
    assert text[0] == ("Cluster|Account|User|Partition|Share|Priority|GrpJobs|GrpTRES|GrpSubmit|GrpWall|GrpTRESMins|"
                       "MaxJobs|MaxTRES|MaxTRESPerNode|MaxSubmit|MaxWall|MaxTRESMins|QOS|Def QOS|GrpTRESRunMins")
    assert text[2].split("|") == ["conductor", "physics", "", "", "10", "", "", "cpu=8,mem=64G", "", "", "", "4", "",
                                  "", "", "01:00:00", "", "", "", ""]
    fixed = render(s, rows(s, ASSOCIATIONS)).splitlines()
    # Headers are cut to the width, as sacctmgr cuts GrpTRESRunMins to 13 characters.
    assert fixed[0].endswith(" GrpTRESRunMin ")
    assert all(len(line) == len(fixed[0]) for line in fixed)


def test_show_assoc_tree() -> None:
    s = show("show", "assoc", "tree", "format=account,user,share")
    assert render(s, rows(s, ASSOCIATIONS)) == (
        "Account                    User     Share \n"
        "-------------------- ---------- --------- \n"
        "root                                    1 \n"
        " physics                               10 \n"
        "  physics                 alice         1 \n"
        "  hep                                   1 \n"
    )


def test_long_values_are_cut_with_a_plus_numbers_are_not() -> None:
    answer = {"accounts": [{"name": "averyveryverylongname", "parent": "root", "description": "d",
                            "organization": "o", "fairshare": 1, "limits": {}}]}
    s = show("show", "account", "format=account,descr%5")
    assert render(s, rows(s, answer), header=False) == "averyvery+     d \n"
    s = show("show", "account", "format=account%-12")
    assert render(s, rows(s, answer)) == "Account      \n------------ \naveryveryve+ \n"


def test_show_account_sorted_by_name_and_filtered() -> None:
    answer = {"accounts": [
        {"name": "root", "parent": None, "description": "default root account", "organization": "root"},
        {"name": "physics", "parent": "root", "description": "physics", "organization": "physics"},
        {"name": "chem", "parent": "root", "description": "Chemistry", "organization": "science"},
    ]}
    s = show("show", "account")
    assert render(s, rows(s, answer)) == (
        "   Account                Descr                  Org \n"
        "---------- -------------------- -------------------- \n"
        "      chem            Chemistry              science \n"
        "   physics              physics              physics \n"
        "      root default root account                 root \n"
    )
    s = show("show", "account", "where", "description=chemistry")
    assert render(s, rows(s, answer), parsable="P", header=False) == "chem|Chemistry|science\n"
    s = show("show", "account", "physics,root", "format=account")
    assert render(s, rows(s, answer), parsable="P", header=False) == "physics\nroot\n"


def test_show_user() -> None:
    answer = {"users": [{"name": "alice", "default_account": "hep", "accounts": ["hep", "physics"]},
                        {"name": "bob", "default_account": "chem", "accounts": ["chem"]}]}
    s = show("show", "user")
    assert render(s, rows(s, answer)) == (
        "      User   Def Acct     Admin \n"
        "---------- ---------- --------- \n"
        "     alice        hep           \n"
        "       bob       chem           \n"
    )
    s = show("show", "users", "where", "account=physics")
    assert render(s, rows(s, answer), parsable="P", header=False) == "alice|hep|\n"
    s = show("show", "user", "bob", "format=user,defaultaccount")
    assert render(s, rows(s, answer), parsable="p") == "User|Def Acct|\nbob|chem|\n"


def test_show_qos() -> None:
    answer = {"default": "normal", "qos": [
        {"name": "high", "source": "database", "description": "high", "priority": 100, "max_jobs_per_user": 2,
         "max_submit_jobs_per_user": 5, "max_cpus_per_user": 4, "max_memory_per_user": 1024, "grp_cpus": 16,
         "grp_memory_mb": None, "max_wall": 1800},
        {"name": "normal", "source": "default", "description": "", "priority": 0, "max_jobs_per_user": None,
         "max_submit_jobs_per_user": None, "max_cpus_per_user": None, "max_memory_per_user": None,
         "grp_cpus": None, "grp_memory_mb": None, "max_wall": None},
    ]}
    s = show("show", "qos", "format=name,priority,maxjobspu,maxsubmitpu,maxtrespu,grptres,maxwall,descr")
    assert render(s, rows(s, answer), parsable="P") == (
        "Name|Priority|MaxJobsPU|MaxSubmitPU|MaxTRESPU|GrpTRES|MaxWall|Descr\n"
        "high|100|2|5|cpu=4,mem=1G|cpu=16|00:30:00|high\n"
        "normal|0||||||\n"
    )
    s = show("show", "qos", "where", "name=normal")
    line = render(s, rows(s, answer), parsable="P", header=False)
    assert line == "normal|0" + "|" * 24 + "\n"
    fixed = render(s, rows(s, answer)).splitlines()
    assert fixed[0].startswith("      Name   Priority  GraceTime    Preempt   PreemptExemptTime PreemptMode ")
    assert fixed[2].startswith("    normal          0 ")


def test_main_show_uses_the_answer(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    client = FakeClient({"/accounting/associations": ASSOCIATIONS})
    assert run(["-nP", "show", "assoc", "format=account,user", "user=alice"], client, monkeypatch) == 0
    assert capsys.readouterr().out == "physics|alice\n"
    assert run(["show", "assoc", "format=account,user", "user=alice", "--parsable"], client, monkeypatch) == 0
    assert capsys.readouterr().out == "Account|User|\nphysics|alice|\n"


# ------------------------------------------------------------------ values
@pytest.mark.parametrize(("megabytes", "text"), [(500, "500M"), (1024, "1G"), (1536, "1536M"), (65536, "64G"),
                                                 (1048576, "1T"), (0, "0")])
def test_memory_as_slurm_prints_it(megabytes: int, text: str) -> None:
    assert sacctmgr.memory_text(megabytes) == text


def test_max_wall_as_slurm_prints_it() -> None:
    assert sacctmgr.wall_text(3600) == "01:00:00"
    assert sacctmgr.wall_text(172800) == "2-00:00:00"
    assert sacctmgr.wall_text(None) == ""


def test_the_cluster_is_the_one_jobs_are_told() -> None:
    from conductor.domain.jobfiles import CLUSTER_NAME

    assert sacctmgr.CLUSTER == CLUSTER_NAME


def test_help_version_usage(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    client = FakeClient()
    assert run(["-h"], client, monkeypatch) == 0
    text = capsys.readouterr().out
    for flag in ("--immediate", "--noheader", "--parsable2", "--parsable", "--readonly", "--quiet", "--version"):
        assert flag in text
    assert run(["-V"], client, monkeypatch) == 0
    assert capsys.readouterr().out.startswith("slurm ")
    assert run(["--usage"], client, monkeypatch) == 0
    assert capsys.readouterr().out.startswith("Usage: sacctmgr")


def test_modify_user_by_account_alone_says_to_name_the_users() -> None:
    # It said "You didn't set any conditions with 'WHERE'" though it had one.
    said = refused("modify", "user", "where", "account=physics", "set", "MaxJobs=3")
    assert "Name the users to modify" in said and "not supported here" in said


def test_associations_of_a_user_as_snakemake_asks_for_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """snakemake's SLURM executor checks an account with `sacctmgr -n -s list user NAME
    format=account%256` (-s: the user's associations); it was "invalid option -- 's'"."""
    client = FakeClient({"/accounting/associations": ASSOCIATIONS})
    assert run(["-n", "-s", "list", "user", "alice", "format=account%256"], client, monkeypatch) == 0
    assert capsys.readouterr().out == "physics".rjust(256) + " \n"
    assert run(["-nP", "show", "user", "alice", "WithAssoc", "format=account,user"], client, monkeypatch) == 0
    assert capsys.readouterr().out == "physics|alice\n"
    assert run(["-nPs", "show", "account", "hep", "format=account,parentname"], client, monkeypatch) == 0
    assert capsys.readouterr().out == "hep|physics\n"
    assert run(["-nPos", "show", "user", "nobody", "format=account"], client, monkeypatch) == 0
    assert capsys.readouterr().out == ""
    # Users' lines only, filtered by account as asked; a condition associations lack is refused.
    assert run(["-nPs", "show", "user", "where", "account=physics", "format=account,user"], client, monkeypatch) == 0
    assert capsys.readouterr().out == "physics|alice\n"
    with pytest.raises(UsageError, match="not a condition of associations"):
        parse(["show", "user", "where", "defaultaccount=physics"], with_assoc=True)
