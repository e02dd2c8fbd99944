"""The fuzzed server, shared by the fuzz tests, and a summary of how many cases they generated.

The fuzzed server is `conductor server` on SQLite with one node that a `conductor worker`
registered and then left (DOWN): submissions are validated against a real node, as always,
but no generated script ever runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import Api, ConductorProcess, free_port


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConductorProcess]:
    home = tmp_path_factory.mktemp("fuzz")
    env = {
        "CONDUCTOR_DATABASE_URL": str(home / "conductor.db"),
        "CONDUCTOR_ALLOW_ROOT_JOBS": "true",  # the token is the test runner's; nothing runs anyway
        "CONDUCTOR_MAX_ARRAY_TASKS": "50",
        "CONDUCTOR_HEARTBEAT_TIMEOUT": "1",
        "CONDUCTOR_CHECK_INTERVAL": "0.5",
    }
    worker = ConductorProcess(home, ["worker", "--cpus", "4", "--memory", "8G", "--node-name", "fuzz1"], env=env)
    worker.start(wait=False)
    server = ConductorProcess(home, ["server"], env=env, port=free_port()).start()
    try:
        deadline = time.monotonic() + 30
        while not httpx.get(server.url + "/nodes", headers=server.headers()).json()["nodes"]:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
        assert worker.stop() == 0, worker.log()
        # Jobs with small ids, so that generated ids find some: a job, an array, a held one.
        api = Api(server.url)
        for job in ({}, {"array": "0-2"}, {"hold": True, "name": "held"}):
            api.submit("#!/bin/sh\ntrue\n", current_working_directory=str(home), **job)
        yield server
    finally:
        worker.kill()
        server.kill()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for line in getattr(config, "conductor_fuzz_summary", []):
        terminalreporter.write_line(line)
