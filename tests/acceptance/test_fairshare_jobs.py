"""Fair share with real jobs of two real users: the one who has used the cluster is ordered
after the one who has not, with equal submissions; sprio shows why. Needs root (real users)."""

from __future__ import annotations

import subprocess
import sys
import time

from support import Api, clean_env
from users import StartConductor, UnixUsers, make_token, user_server

CONFIG = """\
[partitions.debug]
Nodes = "ALL"
Default = true

[priority]
PriorityWeightFairshare = 10000
PriorityWeightAge = 100
PriorityWeightJobSize = 10
PriorityDecayHalfLife = "1:00:00"
"""


def test_the_heavy_user_waits_behind_the_light_one(start_conductor: StartConductor, unix_users: UnixUsers) -> None:
    config = unix_users.base / f"fairshare-{time.monotonic_ns()}.toml"
    config.write_text(CONFIG)
    server = user_server(start_conductor, unix_users, env={"CONDUCTOR_CONFIG": str(config), "CONDUCTOR_CHECK_INTERVAL": "0.5"})
    a, b = unix_users.a, unix_users.b
    heavy = Api(server.url, make_token(server.home, a.name))
    light = Api(server.url, make_token(server.home, b.name))
    admin = Api(server.url)

    def submit(api: Api, home: object, cpus: int, seconds: int) -> int:
        return api.submit(f"#!/bin/sh\nsleep {seconds}\n", cpus_per_task=cpus, current_working_directory=str(home),
                          standard_output="/dev/null", time_limit="10:00")

    used = submit(heavy, a.home, 2, 3)  # the node's two CPUs for 3 s
    assert heavy.wait_state(used, "COMPLETED", timeout=30)["state"] == "COMPLETED"
    filler = submit(heavy, a.home, 2, 300)
    heavy.wait_state(filler, "RUNNING")
    first = submit(heavy, a.home, 1, 1)  # submitted first...
    second = submit(light, b.home, 1, 1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if (heavy.job(first)["reason"], light.job(second)["reason"]) == ("Priority", "Resources"):
            break
        time.sleep(0.1)
    # ...but b has used nothing: b's job is first in line, a's waits behind it.
    assert (heavy.job(first)["reason"], light.job(second)["reason"]) == ("Priority", "Resources")

    env = clean_env(CONDUCTOR_URL=server.url, CONDUCTOR_HOME=str(server.home))
    out = subprocess.run([sys.executable, "-m", "conductor", "sprio", "-l"], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert out[0].split() == ["JOBID", "PARTITION", "USER", "ACCOUNT", "PRIORITY", "SITE", "AGE", "FAIRSHARE",
                              "JOBSIZE", "QOSNAME", "NICE"]
    rows = {int(line.split()[0]): line.split() for line in out[1:]}
    assert set(rows) == {first, second}
    assert rows[second][2] == b.name[:8] and rows[second][7] == "10000"  # fair share 1: no usage
    assert int(rows[first][7]) < 10000 and int(rows[first][4]) < int(rows[second][4])
    # explain plans with the same order: b's job is ahead of a's.
    told = subprocess.run([sys.executable, "-m", "conductor", "explain", str(first)], env=env, capture_output=True,
                          text=True, timeout=60, check=True).stdout
    assert "1 job(s) of higher priority wait ahead of it." in told, told
    # squeue shows the same priority the scheduler orders by.
    shown = subprocess.run([sys.executable, "-m", "conductor", "squeue", "-h", "-t", "PD", "-o", "%i %Q"], env=env,
                           capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    for job_id, row in rows.items():
        assert f"{job_id} {row[4]}" in shown
    norm = subprocess.run([sys.executable, "-m", "conductor", "sprio", "-n", f"-j{second}"], env=env,
                          capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert norm[0].split() == ["JOBID", "PARTITION", "PRIORITY", "SITE", "AGE", "FAIRSHARE", "JOBSIZE"]
    assert norm[1].split()[0] == str(second) and norm[1].split()[5] == "1.0000000"
    # -w: the weights alone (its man page: "Actual job data is suppressed").
    weights = subprocess.run([sys.executable, "-m", "conductor", "sprio", "-n", f"-j{second}", "-w"], env=env,
                             capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert weights[0] == norm[0] and len(weights) == 2
    assert weights[1].split() == ["Weights", "100", "10000", "10"]

    shares = subprocess.run([sys.executable, "-m", "conductor", "sshare", "-a", "-P"], env=env, capture_output=True,
                            text=True, timeout=60, check=True).stdout.splitlines()
    assert shares[0] == "Account|User|RawShares|NormShares|RawUsage|EffectvUsage|FairShare"
    by_user = {line.split("|")[1]: line.split("|") for line in shares[2:]}
    assert b.name in by_user, shares
    assert shares[1].startswith("root|||0.000000|") and shares[1].endswith("|1.000000|")
    assert float(by_user[b.name][6]) == 1.0 and float(by_user[a.name][6]) < 1.0
    assert int(by_user[a.name][4]) >= 5  # about 2 CPUs x 3 s, decayed a little
    plain = subprocess.run([sys.executable, "-m", "conductor", "sshare", "-u", b.name], env=env,
                           capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert plain[0].split() == ["Account", "User", "RawShares", "NormShares", "RawUsage", "EffectvUsage", "FairShare"]
    assert set(plain[1]) == {"-", " "} and len(plain) == 4

    admin.http.post(f"/jobs/cancel/{filler}")
    done = {j: admin.wait_state(j, "COMPLETED", timeout=30) for j in (first, second)}
    assert done[second]["start_time"] <= done[first]["start_time"]
    for api in (heavy, light, admin):
        api.close()
