"""The node agent (`conductor worker`): runs the jobs placed on its node, each as its own process.

- agent.py: the `Worker` (registration, heartbeats, wake-ups, the run loop, launching placed jobs
  and following them to their end).
- launcher.py: the launcher, a stdlib-only fork server, parent of every job; protocol.py: what it
  and the worker say to each other and write in status files; launcher_client.py: the worker's side.
- outcome.py: how an ended job is recorded (a pure decision).
- enforcement.py: time limits, kills and signals; adoption.py: re-adoption after a restart, orphans.
- spool.py: scripts and status files; identity.py: process identity and signalling job groups.
- accounts.py: whom a job runs as; config.py: the node's configuration; ports.py: what the
  worker needs of the store.
"""

from conductor.worker.agent import Worker, run_in_thread
from conductor.worker.config import NodeConfig, machine_memory_mb, plan_cpus
from conductor.worker.identity import ProcessInfo, group_is_the_jobs, signal_group
from conductor.worker.launcher_client import LAUNCHER, Launcher, LaunchRequest, RunAs, Started, launch_frame
from conductor.worker.outcome import NO_EXIT_STATUS
from conductor.worker.running import RunningJob
from conductor.worker.spool import read_status

__all__ = [
    "LAUNCHER",
    "NO_EXIT_STATUS",
    "LaunchRequest",
    "Launcher",
    "NodeConfig",
    "ProcessInfo",
    "RunAs",
    "RunningJob",
    "Started",
    "Worker",
    "group_is_the_jobs",
    "launch_frame",
    "machine_memory_mb",
    "plan_cpus",
    "read_status",
    "run_in_thread",
    "signal_group",
]
