"""Accounts and associations (sacctmgr's routes) with real jobs on a 4-CPU node: the default
account, MaxSubmitJobs refused at submission with Slurm's message, AssocMaxJobsLimit,
AssocGrpCpuLimit of a parent account, AssocMaxWallDurationPerJobLimit, a change that lets a
waiting job start, AccountingStorageEnforce=associations, and changes only an admin may make."""

from __future__ import annotations

import getpass
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Api, ConductorProcess, clean_env, free_port

CONFIG = """\
{enforce}
[partitions.debug]
Nodes = "ALL"
Default = true

[priority]
PriorityWeightFairshare = 10000
PriorityDecayHalfLife = "1:00:00"
"""
ME = getpass.getuser()


def write_config(path: Path, enforce: bool = False, extra: str = "") -> None:
    path.write_text(CONFIG.format(enforce='AccountingStorageEnforce = "associations"' if enforce else "") + extra)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    home = tmp_path_factory.mktemp("accounts") / "home"
    home.mkdir()
    write_config(home / "cluster.toml")
    process = ConductorProcess(
        home, ["up", "--cpus", "4", "--node-name", "ac01"],
        env={"CONDUCTOR_KILL_WAIT": "2", "CONDUCTOR_CONFIG": str(home / "cluster.toml")}, port=free_port(),
    )
    process.start()
    try:
        yield process
    finally:
        process.kill()


@pytest.fixture
def api(server: ConductorProcess) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    live = client.jobs(state="PENDING,RUNNING")
    for job in live:
        client.http.post(f"/jobs/cancel/{job['job_id']}")
    client.wait_all([int(j["job_id"]) for j in live], timeout=30)
    write_config(server.home / "cluster.toml")
    assert cli(server, server.home, "scontrol", "reconfigure").returncode == 0
    # Leave no accounts behind: users first, then accounts from the leaves up.
    for user in client.http.get("/accounting/users").json()["users"]:
        assert client.http.delete(f"/accounting/users/{user['name']}").status_code == 200
    assocs = client.http.get("/accounting/associations").json()["associations"]
    for row in sorted((a for a in assocs if not a["user"] and a["account"] != "root"), key=lambda a: -a["depth"]):
        assert client.http.delete(f"/accounting/accounts/{row['account']}").status_code == 200
    client.close()


def cli(server: ConductorProcess, cwd: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home), **variables)
    return subprocess.run(
        [sys.executable, "-m", "conductor", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=60, check=False
    )


def submit(api: Api, tmp: Path, cpus: int = 1, **extra: object) -> int:
    extra.setdefault("time_limit", "10:00")
    return api.submit(
        "#!/bin/sh\nsleep 300\n", cpus_per_task=cpus, current_working_directory=str(tmp), standard_output="/dev/null",
        **extra,
    )


def wait_reason(api: Api, job_id: int, reason: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.job(job_id)
        if job["state"] == "PENDING" and job["reason"] == reason:
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id}: {api.job(job_id)['state']} {api.job(job_id)['reason']}, not {reason}")


def make_tree(api: Api) -> None:
    """science (GrpTRES cpu=3) -> physics, chemistry; ME in physics (MaxJobs=2, MaxSubmitJobs=4,
    the default) and chemistry."""
    response = api.http.post("/accounting/accounts", json={"accounts": [
        {"name": "science", "description": "all science", "organization": "uni", "grp_tres": "cpu=3"},
        {"name": "physics", "parent": "science", "fairshare": 2},
        {"name": "chemistry", "parent": "science"},
        {"name": "teaching", "max_wall": "5:00"},
    ]})
    assert response.status_code == 201, response.text
    response = api.http.post("/accounting/users", json={
        "users": [ME], "accounts": ["physics", "chemistry"], "default_account": "physics",
    })
    assert response.status_code == 201, response.text
    response = api.http.patch(f"/accounting/users/{ME}", params={"account": "physics"},
                              json={"max_jobs": 2, "max_submit_jobs": 4})
    assert response.status_code == 200, response.text


def test_account_limits_hold_jobs_with_slurms_reasons(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    make_tree(api)
    first, second, third = (submit(api, tmp_path) for _ in range(3))
    for job in (first, second):
        record = api.wait_state(job, "RUNNING")
        assert record["account"] == "physics"  # the user's default account
    wait_reason(api, third, "AssocMaxJobsLimit")
    told = cli(server, tmp_path, "explain", str(third)).stdout
    assert f"{ME}'s association with account physics allows 2 running jobs (MaxJobs); {ME} has 2 running" in told, told
    assert "fits now" not in told, told
    # MaxSubmitJobs=4: a fourth is taken, a fifth refused with Slurm's message.
    fourth = submit(api, tmp_path)
    response = api.http.post("/jobs/submit", json={"job": {"current_working_directory": str(tmp_path)},
                                                   "script": "#!/bin/sh\ntrue\n"})
    assert response.status_code == 429
    assert response.json()["detail"] == (
        "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits)"
    )
    done = cli(server, tmp_path, "sbatch", "-o", "/dev/null", "--wrap", "true")
    assert done.returncode == 1 and "Job violates accounting/QOS policy" in done.stderr
    # science allows 3 CPUs at once: physics holds 2, a 2-CPU job in chemistry waits for it.
    big = submit(api, tmp_path, cpus=2, account="chemistry")
    wait_reason(api, big, "AssocGrpCpuLimit")
    told = cli(server, tmp_path, "explain", str(big)).stdout
    assert "account science allows 3 CPUs at once (GrpTRES=cpu); its running jobs hold 2 and it needs 2" in told, told
    squeue = cli(server, tmp_path, "squeue", "-h", "-t", "PD", "-o", "%i %a %r").stdout.split("\n")
    sprio = cli(server, tmp_path, "sprio", "-h", "-o", "%i %o").stdout.split("\n")
    assert f"{third} physics" in sprio and f"{big} chemistry" in sprio
    # SPRIO_FORMAT stands for -o when none is given (sprio's opts.c).
    assert cli(server, tmp_path, "sprio", "-h", SPRIO_FORMAT="%i %o").stdout.split("\n") == sprio
    assert cli(server, tmp_path, "sprio", "-h", "-o", "%i %o", SPRIO_FORMAT="%o").stdout.split("\n") == sprio
    assert f"{third} physics AssocMaxJobsLimit" in squeue and f"{big} chemistry AssocGrpCpuLimit" in squeue
    # Filtered on account or QOS, in the default format (which shows neither, so the command
    # asks the server for them only to filter).
    physics = cli(server, tmp_path, "squeue", "-h", "-A", "physics").stdout
    chemistry = cli(server, tmp_path, "squeue", "-h", "--account=chemistry", "-t", "PD").stdout
    ids = {int(line.split()[0]) for line in physics.splitlines()}
    assert {first, second, third, fourth} <= ids and big not in ids, physics
    assert [int(line.split()[0]) for line in chemistry.splitlines()] == [big], chemistry
    # Without regard to case, as squeue's filter (xstrcasecmp).
    assert cli(server, tmp_path, "squeue", "-h", "-A", "CHEMistry", "-t", "PD").stdout == chemistry
    everyone = cli(server, tmp_path, "squeue", "-h", "--qos", "normal").stdout
    assert {first, second, third, fourth, big} <= {int(line.split()[0]) for line in everyone.splitlines()}, everyone
    assert cli(server, tmp_path, "squeue", "-h", "--qos", "nosuchqos").stdout == ""
    # Clearing MaxJobs (-1, as sacctmgr does) lets the third start: science then holds 3 of 3.
    response = api.http.patch(f"/accounting/users/{ME}", params={"account": "physics"}, json={"max_jobs": -1})
    assert response.status_code == 200, response.text
    api.wait_state(third, "RUNNING")
    assert api.job(fourth)["reason"] == "AssocGrpCpuLimit"
    # One ends: the fourth (1 CPU) fits science's 3, the 2-CPU one still does not.
    api.cancel(first)
    api.wait_state(fourth, "RUNNING")
    wait_reason(api, big, "AssocGrpCpuLimit")
    assocs = api.http.get("/accounting/associations").json()["associations"]
    mine = next(a for a in assocs if a["user"] == ME and a["account"] == "physics")
    assert mine["limits"]["max_jobs"] is None and mine["limits"]["max_submit_jobs"] == 4 and mine["default"]
    science = next(a for a in assocs if a["account"] == "science" and not a["user"])
    assert science["limits"]["grp_cpus"] == 3 and science["depth"] == 1


def test_max_wall_of_an_account_and_enforced_associations(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    make_tree(api)
    # Without AccountingStorageEnforce, a job charged to an account ME is not associated with
    # runs, unchecked, as in Slurm; teaching's MaxWall does not hold it.
    loose = submit(api, tmp_path, account="teaching", time_limit="30:00")
    record = api.wait_state(loose, "RUNNING")
    assert record["account"] == "teaching"
    api.cancel(loose)
    response = api.http.post("/accounting/users", json={"users": [ME], "accounts": ["teaching"]})
    assert response.status_code == 201, response.text
    long = submit(api, tmp_path, account="teaching", time_limit="30:00")
    wait_reason(api, long, "AssocMaxWallDurationPerJobLimit")
    short = submit(api, tmp_path, account="teaching", time_limit="4:00")
    api.wait_state(short, "RUNNING")
    # With AccountingStorageEnforce=associations, an account without an association is refused.
    write_config(server.home / "cluster.toml", enforce=True)
    assert cli(server, tmp_path, "scontrol", "reconfigure").returncode == 0
    assert api.http.post("/accounting/accounts", json={"accounts": [{"name": "other"}]}).status_code == 201
    response = api.http.post("/jobs/submit", json={
        "job": {"current_working_directory": str(tmp_path), "account": "other"}, "script": "#!/bin/sh\ntrue\n",
    })
    assert response.status_code == 403
    assert response.json()["detail"] == "Invalid account or account/partition combination specified"
    done = cli(server, tmp_path, "sbatch", "-A", "nosuch", "-o", "/dev/null", "--wrap", "true")
    assert done.returncode == 1 and "Invalid account or account/partition combination specified" in done.stderr
    ok = submit(api, tmp_path, account="chemistry")
    assert api.wait_state(ok, "RUNNING")["account"] == "chemistry"


def test_accounting_rules_and_who_may_change_it(server: ConductorProcess, api: Api) -> None:
    make_tree(api)
    made = server.run("token", "create", "--user", ME)
    assert made.returncode == 0, made.stderr
    user = Api(server.url, token=made.stdout.strip().split()[-1])
    try:
        # Everyone reads; only an administrator changes.
        assert user.http.get("/accounting/associations").status_code == 200
        for response in (
            user.http.post("/accounting/accounts", json={"accounts": [{"name": "mine"}]}),
            user.http.patch(f"/accounting/users/{ME}", json={"max_jobs": 100}),
            user.http.delete("/accounting/accounts/physics"),
            user.http.post("/accounting/qos", json={"qos": [{"name": "gold"}]}),
        ):
            assert response.status_code == 403 and "only an administrator may" in response.json()["detail"]
    finally:
        user.close()
    cases = [
        (api.http.post("/accounting/accounts", json={"accounts": [{"name": "physics"}]}), 409, "already exists"),
        (api.http.post("/accounting/accounts", json={"accounts": [{"name": "x", "parent": "nosuch"}]}), 404,
         "parent account 'nosuch' does not exist"),
        (api.http.post("/accounting/accounts", json={"accounts": [{"name": "bad name"}]}), 400, "not a valid name"),
        (api.http.patch("/accounting/accounts/science", json={"parent": "physics"}), 400, "its own parent or ancestor"),
        (api.http.delete("/accounting/accounts/science"), 409, "has sub-accounts (chemistry, physics)"),
        (api.http.patch("/accounting/accounts/physics", json={"grp_tres": "gpu=1"}), 400, "unknown TRES gpu"),
        (api.http.patch("/accounting/accounts/physics", json={"max_wall": "an hour"}), 400, "max_wall"),
        (api.http.patch("/accounting/accounts/physics", json={"max_jobs": -5}), 422, "-1 clears it"),
        (api.http.post("/accounting/users", json={"users": [ME], "accounts": ["nosuch"]}), 404,
         "account 'nosuch' does not exist"),
        (api.http.patch(f"/accounting/users/{ME}", json={"default_account": "teaching"}), 400,
         f"user '{ME}' is not associated with account 'teaching'"),
        (api.http.delete("/accounting/users/nobody"), 404, "no association of user 'nobody'"),
        (api.http.post("/accounting/accounts", json={"accounts": [{"name": "s", "parent": "s"}]}), 400,
         "cannot be its own parent"),
        (api.http.post("/accounting/qos", json={"qos": [{"name": "q9"}, {"name": "q9"}]}), 400, "named twice"),
        (api.http.patch("/accounting/accounts/physics", json={"grp_tres": "cpu=99999999999999999999"}), 400,
         "grp_tres"),
        (api.http.patch("/accounting/accounts/physics", json={"grp_tres": "cpu=1,cpu=2"}), 400, "given twice"),
        (api.http.patch("/accounting/accounts/physics", json={"max_wall": True}), 422, "max_wall"),
        (api.http.post("/accounting/qos", json={"qos": [{"name": "big", "max_tres_per_user": {"mem": 2**40}}]}),
         400, "max_tres_per_user"),
    ]
    for response, status, words in cases:
        assert response.status_code == status and words in response.text, (status, response.text)
    # A user's default moves when its account's association goes; an account with jobs stays.
    job = submit(api, Path("/tmp"))
    api.wait_state(job, "RUNNING")
    response = api.http.delete(f"/accounting/users/{ME}", params={"account": "physics"})
    assert response.status_code == 409 and "pending or running jobs in account 'physics'" in response.text
    api.cancel(job)
    api.wait_state(job, "CANCELLED")
    assert api.http.delete(f"/accounting/users/{ME}", params={"account": "physics"}).status_code == 200
    users = api.http.get("/accounting/users").json()["users"]
    assert users == [{"name": ME, "default_account": "chemistry", "accounts": ["chemistry"]}]
    # A user or account named twice in one request is one.
    response = api.http.post("/accounting/users", json={"users": ["ann", "ann"], "accounts": ["physics", "physics"]})
    assert response.status_code == 201, response.text
    assert ("physics", "ann") in {(a["account"], a["user"]) for a in
                                 api.http.get("/accounting/associations").json()["associations"]}


def test_sshare_shows_the_account_tree(server: ConductorProcess, api: Api, tmp_path: Path) -> None:
    make_tree(api)
    job = submit(api, tmp_path, cpus=2)
    api.wait_state(job, "RUNNING")
    time.sleep(1.5)  # some usage to decay; the scheduler brings it forward on its full passes
    api.cancel(job)
    api.wait_state(job, "CANCELLED")
    lines = cli(server, tmp_path, "sshare", "-a", "-P").stdout.splitlines()
    assert lines[0] == "Account|User|RawShares|NormShares|RawUsage|EffectvUsage|FairShare"
    rows = [line.split("|") for line in lines[1:]]
    accounts = [r[0] for r in rows]
    # root, then each account before its users and sub-accounts, indented by depth.
    assert accounts[0] == "root"
    assert accounts.index(" science") < accounts.index("  chemistry") < accounts.index("  physics")
    physics = rows[accounts.index("  physics")]
    assert physics[1] == "" and physics[2] == "2" and physics[6] == ""  # an account's line: no factor
    mine = next(r for r in rows if r[1] == ME and r[0] == "   physics")
    # physics holds 2 of science's 3 shares, ME the one share of physics' users.
    science = rows[accounts.index(" science")]
    assert float(physics[3]) == pytest.approx(float(science[3]) * 2 / 3, abs=1e-5)
    assert float(mine[3]) == pytest.approx(float(physics[3]), abs=1e-5)
    assert 0.0 < float(mine[6]) <= 1.0
    # What snakemake's SLURM executor runs to check an account: the user's associations, then
    # sshare's users' lines with a wide Account column (both were "invalid option").
    mine_assoc = cli(server, tmp_path, "sacctmgr", "-n", "-s", "list", "user", ME, "format=account%256").stdout
    assert "physics" in {line.strip() for line in mine_assoc.splitlines()}, mine_assoc
    users = cli(server, tmp_path, "sshare", "-U", "--format", "Account%256", "--noheader").stdout.splitlines()
    assert users and all(len(line) == 257 for line in users) and "physics" in {line.strip() for line in users}
    assert cli(server, tmp_path, "sshare", "-a", "-P", "-A", "chemistry", "-o", "account,user").stdout.splitlines()[1:] == [
        "  chemistry|"] + [f"   chemistry|{u}" for u in sorted(set(r[1] for r in rows if r[0] == "   chemistry"))]


def test_tres_changes_keep_what_they_do_not_name_and_database_qos_hold(
    server: ConductorProcess, api: Api, tmp_path: Path
) -> None:
    make_tree(api)

    def science() -> dict[str, object]:
        rows = api.http.get("/accounting/associations").json()["associations"]
        return dict(next(a for a in rows if a["account"] == "science" and not a["user"])["limits"])

    assert api.http.patch("/accounting/accounts/science", json={"grp_tres": "cpu=8,mem=2G"}).status_code == 200
    assert api.http.patch("/accounting/accounts/science", json={"grp_tres": "cpu=16"}).status_code == 200
    assert (science()["grp_cpus"], science()["grp_memory_mb"]) == (16, 2048)  # as Slurm, mem stays
    assert api.http.patch("/accounting/accounts/science", json={"grp_tres": "cpu=-1"}).status_code == 200
    assert (science()["grp_cpus"], science()["grp_memory_mb"]) == (None, 2048)
    assert api.http.patch("/accounting/accounts/science", json={"grp_tres": None}).status_code == 200
    assert (science()["grp_cpus"], science()["grp_memory_mb"]) == (None, None)
    # A QOS of the database, without MaxWall, then with one of 1 minute (a number is minutes).
    assert api.http.post("/accounting/qos", json={"qos": [{"name": "quick"}]}).status_code == 201
    listed = {q["name"]: q for q in api.http.get("/accounting/qos").json()["qos"]}
    assert listed["quick"]["source"] == "database" and listed["quick"]["max_wall"] is None
    assert api.http.patch("/accounting/qos/quick", json={"max_wall": 1, "max_jobs_per_user": 1}).status_code == 200
    listed = {q["name"]: q for q in api.http.get("/accounting/qos").json()["qos"]}
    assert listed["quick"]["max_wall"] == 60 and listed["quick"]["max_jobs_per_user"] == 1
    long = submit(api, tmp_path, qos="quick", time_limit="5:00")
    wait_reason(api, long, "QOSMaxWallDurationPerJobLimit")
    first = submit(api, tmp_path, qos="quick", time_limit="1:00")
    second = submit(api, tmp_path, qos="quick", time_limit="1:00")
    api.wait_state(first, "RUNNING")
    wait_reason(api, second, "QOSMaxJobsPerUserLimit")
    for job in (long, first, second):
        api.cancel(job)
    api.wait_all([long, first, second], timeout=30)
    # The file comes to define quick too: the file's is in force, and the stale record of the
    # database can still be deleted (not changed), so it does not come back when the file drops it.
    write_config(server.home / "cluster.toml", extra="\n[qos.normal]\n[qos.quick]\nPriority = 1\n")
    assert cli(server, tmp_path, "scontrol", "reconfigure").returncode == 0
    listed = {q["name"]: q for q in api.http.get("/accounting/qos").json()["qos"]}
    assert listed["quick"]["source"] == "file" and listed["quick"]["max_wall"] is None
    response = api.http.patch("/accounting/qos/quick", json={"priority": 3})
    assert response.status_code == 409 and "defined by the configuration file" in response.text
    assert api.http.delete("/accounting/qos/quick").status_code == 200
    write_config(server.home / "cluster.toml")
    assert cli(server, tmp_path, "scontrol", "reconfigure").returncode == 0
    assert "quick" not in {q["name"] for q in api.http.get("/accounting/qos").json()["qos"]}
