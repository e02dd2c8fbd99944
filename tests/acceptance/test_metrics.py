"""GET /metrics: Prometheus's exposition format from the official client, with the job
counters, latency and pass-time histograms, per-node and per-queue figures, and the process's own."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support import Api, ConductorProcess

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _scrape(server: ConductorProcess, **headers: str) -> httpx.Response:
    return httpx.get(server.url + "/metrics", headers=headers, timeout=10)


def _wait_for(server: ConductorProcess, name: str, labels: dict[str, str], at_least: float) -> Samples:
    key = (name, tuple(sorted(labels.items())))
    deadline = time.monotonic() + 20
    found: Samples = {}
    while time.monotonic() < deadline:
        found = _samples(_scrape(server, **server.headers()).text)
        if found.get(key, 0) >= at_least:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{name}{labels} never reached {at_least}: {found.get(key)}")


def test_metrics_need_a_token_by_default(conductor_server: ConductorProcess) -> None:
    assert _scrape(conductor_server).status_code == 401


def test_metrics_cover_jobs_nodes_queues_and_the_process(conductor_server: ConductorProcess, api: Api) -> None:
    done = api.submit("#!/bin/bash\necho hi\n", name="quick")
    api.submit("#!/bin/bash\necho never\n", name="held", hold=True, partition="debug")
    api.wait_state(done, "COMPLETED")

    response = _scrape(conductor_server, **conductor_server.headers())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = _wait_for(conductor_server, "conductor_jobs_ended_total", {"state": "COMPLETED"}, 1)

    assert found[("conductor_jobs_submitted_total", ())] >= 2
    assert found[("conductor_job_submit_to_start_seconds_count", ())] >= 1
    assert found[("conductor_scheduler_pass_seconds_count", ())] >= 1
    node = next(labels for name, labels in found if name == "conductor_node_cpus")
    assert found[("conductor_node_cpus", node)] == 4
    assert ("conductor_node_memory_bytes", node) in found
    assert found[("conductor_node_cpus_used", node)] == 0
    assert found[("conductor_pending_jobs", (("reason", "JobHeldUser"),))] == 1
    assert found[("conductor_queue_depth", (("partition", "debug"), ("state", "PENDING")))] == 1
    assert found[("conductor_jobs", (("state", "PENDING"),))] == 1
    assert found[("process_resident_memory_bytes", ())] > 0
    assert found[("process_open_fds", ())] > 0


def test_metrics_public_when_the_setting_says_so(start_conductor: Callable[..., ConductorProcess]) -> None:
    server = start_conductor("--cpus", "2", env={"CONDUCTOR_METRICS_PUBLIC": "true"})
    response = _scrape(server)
    assert response.status_code == 200
    assert "conductor_cpus_total 2.0" in response.text
    # Only /metrics: the rest of the API still asks for a token.
    assert httpx.get(server.url + "/jobs", timeout=10).status_code == 401
