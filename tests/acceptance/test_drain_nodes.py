"""Draining a node before maintenance, end to end: a real `conductor up` (its worker in the same
process), the Slurm commands as subprocesses, the API over HTTP.

A drained node takes no new job, its running job goes on to its normal end, a job submitted
meanwhile waits (ReqNodeNotAvail: the only node that could run it is drained), the drain is
shown by `scontrol show node` and `sinfo -R`, and it outlives the worker's heartbeats and a
restart; RESUME starts the waiting job.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from support import Api, ConductorProcess, clean_env

NODE = "cn01"
USER = pwd.getpwuid(os.getuid()).pw_name
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


def cli(server: ConductorProcess, cwd: Path, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home), **({"CONDUCTOR_TOKEN": token} if token else {}))
    return subprocess.run([sys.executable, "-m", "conductor", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=60, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def node(api: Api) -> dict[str, Any]:
    response = api.http.get("/nodes")
    assert response.status_code == 200, response.text
    return next(n for n in response.json()["nodes"] if n["name"] == NODE)


def dashboard_nodes(server: ConductorProcess) -> str:
    """The dashboard's nodes page, signed in with the server's token."""
    with httpx.Client(base_url=server.url, timeout=10) as browser:
        assert browser.post("/ui/login", data={"token": server.token, "next": "/ui/nodes"}).status_code == 303
        page = browser.get("/ui/nodes")
        assert page.status_code == 200
        return page.text


def wait_for(what: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.1)


def test_drain_a_busy_node_then_restart_and_resume(start_conductor: Callable[..., ConductorProcess], tmp_path: Path) -> None:
    server = start_conductor("--cpus", "2", "--node-name", NODE, env={"CONDUCTOR_HEARTBEAT_INTERVAL": "0.5"})
    api = Api(server.url)
    work = tmp_path / "work"
    work.mkdir()
    try:
        running = api.submit("#!/bin/bash\nwhile [ ! -e go ]; do sleep 0.05; done\necho finished\n",
                             current_working_directory=str(work))
        api.wait_state(running, "RUNNING")

        assert ok(cli(server, work, "scontrol", "update", f"NodeName={NODE}", "State=DRAIN", 'Reason="disk swap"')) == ""
        waiting = api.submit("#!/bin/bash\necho resumed\n", current_working_directory=str(work))
        wait_for(lambda: api.job(waiting)["reason"] == "ReqNodeNotAvail")
        assert api.job(running)["state"] == "RUNNING"

        listed = node(api)
        assert (listed["state"], listed["drained"], listed["drain_reason"], listed["drain_user"]) == (
            "MIXED", True, "disk swap", USER)
        shown = ok(cli(server, work, "scontrol", "show", "node", NODE))
        assert "   State=MIXED+DRAIN ThreadsPerCore=1" in shown
        assert re.search(rf"^   Reason=disk swap \[{re.escape(USER)}@{STAMP}\]$", shown, re.M), shown
        assert ok(cli(server, work, "sinfo", "-h", "-o", "%t %T %N")) == f"drng draining {NODE}\n"
        reasons = ok(cli(server, work, "sinfo", "-R")).splitlines()
        assert reasons[0] == "REASON               USER      TIMESTAMP           NODELIST"
        assert re.fullmatch(rf"disk swap {{12}}{re.escape(USER[:9]).ljust(9)} {STAMP} {NODE}", reasons[1]), reasons
        assert ok(cli(server, work, "sinfo", "-h", "-t", "drain", "-o", "%N")) == f"{NODE}\n"
        assert ok(cli(server, work, "sinfo", "-h", "-t", "drained", "-o", "%N")) == ""
        # The node's free CPU is neither used nor available (sinfo's "other").
        assert api.stats() == {"total_cpus": 2, "used_cpus": 1, "available_cpus": 0, "running_jobs": 1,
                               "pending_jobs": 1}
        assert ok(cli(server, work, "sinfo", "-h", "-o", "%C")) == "1/0/1/2\n"
        page = dashboard_nodes(server)
        assert re.search(r'<span class="badge drained">DRAINING</span>\s*<span class="hint drain-reason">disk swap '
                         rf"\[{re.escape(USER)}@\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\]</span>", page), page
        # The views name the nodes that keep it waiting, as slurmctld's state_desc does.
        assert ok(cli(server, work, "squeue", "-h", "-j", str(waiting), "-o", "%R")) == (
            f"(ReqNodeNotAvail, UnavailableNodes:{NODE})\n")
        assert ok(cli(server, work, "squeue", "-h", "-j", str(waiting), "-o", "%.20r")).strip() == "ReqNodeNotAvail, Una"
        assert f"Reason=ReqNodeNotAvail,_UnavailableNodes:{NODE} " in ok(cli(server, work, "scontrol", "show", "job", str(waiting)))
        explained = ok(cli(server, work, "explain", str(waiting)))
        assert f"No node of partition debug takes new jobs: {NODE} (drained)." in explained, explained

        # The running job ends as it would have; the waiting one still waits.
        (work / "go").touch()
        assert api.wait_state(running, "COMPLETED")["exit_code"] == "0:0"
        assert (work / f"slurm-{running}.out").read_text() == "finished\n"
        time.sleep(1.5)  # passes and heartbeats go by
        assert api.job(waiting)["state"] == "PENDING"
        assert ok(cli(server, work, "sinfo", "-h", "-o", "%t %T")) == "drain drained\n"
        assert "   State=IDLE+DRAIN " in ok(cli(server, work, "scontrol", "show", "node", NODE))
        drained_at = node(api)["drain_time"]
        assert f'conductor_node_drained{{node="{NODE}"}} 1.0' in api.http.get("/metrics").text

        # The worker stops and registers again (its node row rewritten): the drain stays.
        server.stop()
        server.start()
        wait_for(lambda: node(api)["state"] == "IDLE")
        time.sleep(2)  # a few heartbeats of the new worker
        listed = node(api)
        assert (listed["drained"], listed["drain_reason"], listed["drain_time"]) == (True, "disk swap", drained_at)
        assert api.job(waiting)["state"] == "PENDING"

        assert ok(cli(server, work, "scontrol", "update", f"NodeName={NODE}", "State=RESUME")) == ""
        assert api.wait_state(waiting, "COMPLETED")["node_list"] == NODE
        assert (work / f"slurm-{waiting}.out").read_text() == "resumed\n"
        assert not node(api)["drained"]
        assert "Reason=" not in ok(cli(server, work, "scontrol", "show", "node", NODE))
        assert ok(cli(server, work, "sinfo", "-R", "-h")) == ""
        assert "drain-reason" not in dashboard_nodes(server)
        assert f'conductor_node_drained{{node="{NODE}"}} 0.0' in api.http.get("/metrics").text
    finally:
        api.close()


def test_who_may_drain_and_what_is_refused(start_conductor: Callable[..., ConductorProcess], tmp_path: Path) -> None:
    server = start_conductor("--cpus", "1", "--node-name", NODE)
    api = Api(server.url)
    made = server.run("token", "create", "--user", USER)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().split()[-1]
    user = Api(server.url, token=token)
    try:
        def post(client: Api, body: Any, name: str = NODE) -> Any:
            return client.http.post(f"/nodes/{name}/state", json=body)

        # Not an administrator: refused whatever the node, before its existence is told.
        for name in (NODE, "nosuch"):
            refused = post(user, {"state": "DRAIN", "reason": "x"}, name)
            assert refused.status_code == 403 and "only an administrator may" in refused.json()["detail"]
        denied = cli(server, tmp_path, "scontrol", "update", f"NodeName={NODE}", "State=DRAIN", "Reason=x", token=token)
        assert (denied.returncode, denied.stderr) == (1, "slurm_update error: Access/permission denied\n")

        missing = post(api, {"state": "DRAIN", "reason": "x"}, "nosuch")
        assert missing.status_code == 404 and missing.json()["detail"] == "Invalid node name specified: 'nosuch'"
        unknown = cli(server, tmp_path, "scontrol", "update", f"NodeName={NODE},nosuch", "State=DRAIN", "Reason=x")
        assert (unknown.returncode, unknown.stderr) == (1, "slurm_update error: Invalid node name specified\n")
        assert not node(api)["drained"]  # a list with an unknown name changes nothing

        for blank in ({"state": "DRAIN"}, {"state": "DRAIN", "reason": " \u00a0\u2003"}):
            no_reason = post(api, blank)
            assert no_reason.status_code == 400 and no_reason.json()["field"] == "reason", no_reason.text
        for body, field in (
            ({"state": "DOWN"}, "state"),
            ({}, "state"),
            ({"state": "DRAIN", "reason": "a\nb"}, "reason"),
            ({"state": "DRAIN", "reason": "x" * 257}, "reason"),
            ({"state": "DRAIN", "reason": 5}, "reason"),
            ({"state": "DRAIN", "reason": "x", "extra": 1}, "extra"),
        ):
            bad = post(api, body)
            assert bad.status_code == 422 and [e["field"] for e in bad.json()["errors"]] == [field], (body, bad.text)
        cli_refused = cli(server, tmp_path, "scontrol", "update", f"NodeName={NODE}", "State=DRAIN")
        assert cli_refused.returncode == 1
        assert "You must specify a reason when DOWNING or DRAINING a node. Request denied" in cli_refused.stderr

        # RESUME of a node neither drained nor down: Slurm's "Invalid node state specified".
        conflict = post(api, {"state": "RESUME"})
        assert conflict.status_code == 409 and "Invalid node state specified" in conflict.json()["detail"]
        again = cli(server, tmp_path, "scontrol", "update", f"NodeName={NODE}", "State=RESUME")
        assert (again.returncode, again.stderr) == (1, "slurm_update error: Invalid node state specified\n")
        assert post(api, {"state": "UNDRAIN"}).status_code == 200  # UNDRAIN: any node

        drained = post(api, {"state": "drain", "reason": "fan"})
        assert drained.status_code == 200
        assert {k: drained.json()[k] for k in ("name", "state", "drained", "drain_reason", "drain_user")} == {
            "name": NODE, "state": "IDLE", "drained": True, "drain_reason": "fan", "drain_user": USER}
        # Everyone sees it; only the drain's own route changes it.
        assert [n["drained"] for n in user.http.get("/nodes").json()["nodes"]] == [True]
        undrained = cli(server, tmp_path, "scontrol", "update", f"NodeName={NODE}", "State=UNDRAIN")
        assert undrained.returncode == 0 and not node(api)["drained"]
    finally:
        user.close()
        api.close()
