"""Whom a job runs as: the job's user, looked up in this node's passwd and group databases."""

from __future__ import annotations

import os
import pwd
import time

from conductor.domain.job import Job
from conductor.worker.config import NodeConfig
from conductor.worker.launcher_client import RunAs

# How long a user's passwd entry and groups are used before they are looked up again (Slurm
# caches group lists for ten minutes).
USER_CACHE_SECONDS = 10.0


class Accounts:
    def __init__(self, is_root: bool, config: NodeConfig) -> None:
        self._is_root = is_root
        # Read at each launch: `conductor up` decides whether root may run jobs after it is made.
        self._config = config
        # User name -> (until when, passwd entry or None, groups as the launcher takes them).
        self._users: dict[str, tuple[float, pwd.struct_passwd | None, list[int], str]] = {}
        self._me: tuple[float, RunAs] | None = None

    def run_as(self, row: Job) -> RunAs:
        """Whom the job runs as: its user when the worker is root, else the worker's own user.

        The user is found by name in this node's passwd database; a job whose user the node
        does not know, or knows under another uid than the submitting host did, fails here
        rather than run as anyone else. Entries are looked up again after USER_CACHE_SECONDS.
        """
        now = time.monotonic()
        if not self._is_root:
            if self._me is None or self._me[0] < now:
                try:
                    me = pwd.getpwuid(os.geteuid())
                    run_as = RunAs("", "", "", me.pw_dir, me.pw_name)
                except KeyError:
                    run_as = RunAs("", "", "", None, str(os.geteuid()))
                self._me = (now + USER_CACHE_SECONDS, run_as)
            return self._me[1]
        name = str(row.user_name)
        cached = self._users.get(name)
        if cached is None or cached[0] < now:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                entry = None
            groups = os.getgrouplist(name, entry.pw_gid) if entry is not None else []
            cached = (now + USER_CACHE_SECONDS, entry, groups, ",".join(map(str, groups)))
            self._users[name] = cached
        _, entry, groups, groups_text = cached
        if entry is None:
            raise RuntimeError(f"user '{name}' does not exist on node {self._config.name}")
        if row.uid is not None and int(row.uid) != entry.pw_uid:
            raise RuntimeError(
                f"user '{name}' has uid {entry.pw_uid} on node {self._config.name} but uid {row.uid} "
                "where the job was submitted"
            )
        if entry.pw_uid == 0 and not self._config.allow_root_jobs:
            raise RuntimeError(
                f"jobs as root are not allowed on node {self._config.name} (CONDUCTOR_ALLOW_ROOT_JOBS is off)"
            )
        gid = int(row.gid) if row.gid is not None and int(row.gid) in groups else entry.pw_gid
        return RunAs(str(entry.pw_uid), str(gid), groups_text, entry.pw_dir, name)
