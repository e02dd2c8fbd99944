"""Which containment a node's worker uses (see containment.py): chosen once, at its start."""

from __future__ import annotations

import logging
from pathlib import Path

from conductor.worker.cgroups import CgroupV1, CgroupV2, v1_usable, v2_usable
from conductor.worker.containment import Containment, ContainmentError
from conductor.worker.polling import Polling

log = logging.getLogger("conductor.worker")

MODES = ("auto", "cgroup-v2", "cgroup-v1", "none")


def detect(mode: str, root: Path, node: str, home: Path, kill_over_memory: bool = False) -> Containment:
    """The containment this machine allows (`mode` "auto"), or the one asked for; raises
    ContainmentError when that one cannot be had. `home`: the worker's, which tells its groups
    from those of another worker of the same node name on this machine."""
    if mode not in MODES:
        raise ContainmentError(f"containment: '{mode}' is not one of {', '.join(MODES)}")
    if mode in ("auto", "cgroup-v2"):
        why = v2_usable(root)
        if why is None:
            return CgroupV2(root, node, home)
        if mode == "cgroup-v2":
            raise ContainmentError(f"containment cgroup-v2: {why}")
        log.debug("no cgroup v2: %s", why)
    if mode in ("auto", "cgroup-v1"):
        why = v1_usable(root)
        if why is None:
            return CgroupV1(root, node, home)
        if mode == "cgroup-v1":
            raise ContainmentError(f"containment cgroup-v1: {why}")
        log.debug("no cgroup v1: %s", why)
    return Polling(kill_over_memory)
