"""Per-job control groups, v1 and v2 (see containment.py for the contract).

Layout: `<hierarchy>/conductor/<node>.<home>/job_<id>`, where <home> tells apart two workers of
the same node name on one machine (their jobs must never be taken for each other's leftovers).

Costs on a job's start (measured, v1 as root on a 2-core VM): the directories and limits about
0.15 ms in the worker, the launcher's pid writes a few tens of microseconds; at the end reading
the figures and removing the directories about 0.1 ms.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import signal
from dataclasses import dataclass, replace
from pathlib import Path

from conductor.domain.usage import Usage
from conductor.worker import protocol
from conductor.worker.containment import (
    ContainmentError,
    Limits,
    Sample,
    job_of,
    read_int,
    read_keyed,
    read_pids,
    read_text,
    write_text,
)

log = logging.getLogger("conductor.worker")

V2_CONTROLLERS = ("memory", "cpu", "cpuset", "pids")
V1_REQUIRED = ("memory", "cpuacct", "freezer")
# A v1 job's groups in these are kept for a later job when it ends clean (renamed, its figures
# reset): making and removing groups costs about 0.2 ms per job, renaming 0.01 ms per group.
# A memory group is kept only if its last job left at most SPARE_CHARGE bytes charged to it
# (kernel objects its processes left, mostly freed soon after: measured 0.3-0.5 MB after `true`),
# which the next job's high-water mark may include. Emptying it (memory.force_empty) would cost
# 0.4 ms and more: a group that holds more is removed instead.
RECYCLED = ("memory", "cpuacct", "freezer")
SPARE_CHARGE = 1024 * 1024
MAX_SPARES = 256


def node_dir_name(node: str, home: Path | None = None) -> str:
    where = os.fsencode(str((home or Path.cwd()).resolve()))
    return f"{node}.{hashlib.sha1(where).hexdigest()[:8]}"


def v2_usable(root: Path) -> str | None:
    """None when `root` is a writable cgroup v2 hierarchy with the memory controller; else why not."""
    controllers = read_text(str(root / "cgroup.controllers"))
    if controllers is None:
        return f"{root} is not a cgroup v2 hierarchy"
    if "memory" not in controllers.split():
        return f"{root} offers no memory controller (cgroup.controllers: '{controllers.strip()}')"
    if not os.access(root, os.W_OK):
        return f"{root} is not writable by this user"
    return None


def v1_usable(root: Path) -> str | None:
    """None when `root` holds writable cgroup v1 memory, cpuacct and freezer hierarchies."""
    if not (root / "memory" / "memory.limit_in_bytes").exists():
        return f"no cgroup v1 memory hierarchy under {root}"
    for controller in V1_REQUIRED:
        if not (root / controller / "cgroup.procs").exists():
            return f"no cgroup v1 {controller} hierarchy under {root}"
        if not os.access(root / controller, os.W_OK):
            return f"{root / controller} is not writable by this user"
    return None


@dataclass(slots=True)
class _Tally:
    samples: int = 0
    max_rss: int = 0
    max_vmsize: int | None = None


class _Groups:
    """What both versions share: the samples, and removal of groups that still had processes."""

    mode = ""

    def __init__(self) -> None:
        self._tallies: dict[int, _Tally] = {}
        self._unremoved: set[int] = set()

    def started(self, job_id: int, pid: int, ticks: int, limits: Limits) -> None:
        self._tallies[job_id] = _Tally()

    def _record(self, job_id: int, rss: int, vmsize: int | None, so_far: Usage | None = None) -> Sample:
        tally = self._tallies.setdefault(job_id, _Tally())
        tally.samples += 1
        tally.max_rss = max(tally.max_rss, rss)
        if vmsize is not None:
            tally.max_vmsize = max(tally.max_vmsize or 0, vmsize)
        if so_far is not None:
            so_far = replace(so_far, max_vmsize=tally.max_vmsize)
        return Sample(rss, vmsize, usage=so_far)

    def _sampled(self, job_id: int) -> _Tally | None:
        return self._tallies.pop(job_id, None)

    def due(self) -> None:
        return None  # removals are retried at the next tick, whenever it comes

    def tidy(self) -> None:
        for job_id in list(self._unremoved):
            if self._remove(job_id):
                self._unremoved.discard(job_id)

    def _remove(self, job_id: int) -> bool:
        raise NotImplementedError

    def _kill(self, procs: str) -> None:
        for pid in read_pids(procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def _release(self, job_id: int) -> None:
        if not self._remove(job_id):
            self._unremoved.add(job_id)


def _vmsize(pids: list[int]) -> int | None:
    total = 0
    for pid in pids:
        fields = protocol.proc_stat(pid)
        if fields is not None and len(fields) > 20:
            total += int(fields[20])
    return total if pids else None


def _cpu_split(total: int | None, user: int | None, system: int | None) -> tuple[float | None, float | None]:
    """User and system seconds from cpuacct.usage (the scheduler's exact run time, ns), split as
    cpuacct.stat's user and system ticks are (sampled at ticks: measured, their sum strays 5-15%
    from the exact figure under load; usage_user and usage_sys are the same samples)."""
    if total is None:
        return None, None
    if not user and not system:
        return total / 1e9, 0.0
    user_share = (user or 0) / ((user or 0) + (system or 0))
    return total * user_share / 1e9, total * (1 - user_share) / 1e9


def _rmdir(path: str) -> bool:
    """Removed, or nothing to remove; False while processes remain in it (EBUSY)."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return False
        # Not a kernel cgroup (a tree laid out as one): nothing more to do.
        log.debug("cannot remove %s: %s", path, exc)
    return True


class CgroupV2(_Groups):
    """cgroup v2: memory.max and memory.swap.max (swap does not help a job past its limit),
    cpuset.cpus, pids.max; memory.peak, memory.events and cpu.stat for the figures; cgroup.kill."""

    mode = "cgroup-v2"

    def __init__(self, root: Path, node: str, home: Path | None = None) -> None:
        super().__init__()
        self.root = root
        available = set((read_text(str(root / "cgroup.controllers")) or "").split())
        self.controllers = [c for c in V2_CONTROLLERS if c in available]
        self.base = root / "conductor" / node_dir_name(node, home)
        self._path = str(self.base)
        try:
            self.base.mkdir(parents=True, exist_ok=True)
            # Controllers reach a group only through every ancestor's subtree_control.
            enable = " ".join(f"+{c}" for c in self.controllers)
            for level in (root, root / "conductor", self.base):
                write_text(str(level / "cgroup.subtree_control"), enable, create=True)
        except OSError as exc:
            raise ContainmentError(f"cannot set up cgroup v2 under {self.base}: {exc}") from None

    def describe(self) -> str:
        return f"cgroup v2 at {self.base} (controllers: {' '.join(self.controllers)})"

    def _dir(self, job_id: int) -> str:
        return f"{self._path}/job_{job_id}"

    def create(self, job_id: int, limits: Limits) -> list[str]:
        path = self._dir(job_id)
        try:
            os.mkdir(path)
        except FileExistsError:
            self._kill_group(path)  # a leftover of an earlier run of this job: it must not share it
        if limits.memory_bytes is not None:
            write_text(path + "/memory.max", str(limits.memory_bytes), create=True)
            with contextlib.suppress(OSError):  # no swap accounting: no swap file either
                write_text(path + "/memory.swap.max", "0", create=True)
        if limits.cpus is not None and "cpuset" in self.controllers:
            write_text(path + "/cpuset.cpus", ",".join(map(str, sorted(limits.cpus))), create=True)
        if limits.max_pids is not None and "pids" in self.controllers:
            write_text(path + "/pids.max", str(limits.max_pids), create=True)
        return [path + "/cgroup.procs"]

    def sample(self, job_ids: list[int]) -> dict[int, Sample]:
        out = {}
        for job_id in job_ids:
            path = self._dir(job_id)
            stat = read_keyed(path + "/memory.stat")
            if not stat and not os.path.isdir(path):
                continue
            rss = stat.get("anon", 0) + stat.get("file_mapped", 0)
            cpu = read_keyed(path + "/cpu.stat")
            peak = read_int(path + "/memory.peak")
            so_far = Usage(
                user_cpu=cpu["user_usec"] / 1e6 if "user_usec" in cpu else None,
                system_cpu=cpu["system_usec"] / 1e6 if "system_usec" in cpu else None,
                max_rss=peak,
                ave_rss=peak,
                source=self.mode,
            )
            out[job_id] = self._record(job_id, rss, _vmsize(read_pids(path + "/cgroup.procs")), so_far)
        return out

    def signal(self, job_id: int, sig: int) -> None:
        for pid in read_pids(self._dir(job_id) + "/cgroup.procs"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def finish(self, job_id: int) -> Usage:
        path = self._dir(job_id)
        cpu = read_keyed(path + "/cpu.stat")
        events = read_keyed(path + "/memory.events")
        peak = read_int(path + "/memory.peak")
        tally = self._sampled(job_id)
        usage = Usage(
            user_cpu=cpu["user_usec"] / 1e6 if "user_usec" in cpu else None,
            system_cpu=cpu["system_usec"] / 1e6 if "system_usec" in cpu else None,
            max_rss=peak if peak is not None else (tally.max_rss if tally and tally.samples else None),
            # Slurm's AveRSS is the mean over a step's tasks of their largest: a batch step is one.
            ave_rss=peak if peak is not None else (tally.max_rss if tally and tally.samples else None),
            max_vmsize=tally.max_vmsize if tally else None,
            oom_kills=events.get("oom_kill", 0),
            source=self.mode,
        )
        self._kill_group(path)
        self._release(job_id)
        return usage

    def _kill_group(self, path: str) -> None:
        if not read_pids(path + "/cgroup.procs"):
            return
        try:
            write_text(path + "/cgroup.kill", "1", create=True)  # kernel 5.14+: every process, at once
        except OSError:
            self._kill(path + "/cgroup.procs")

    def _remove(self, job_id: int) -> bool:
        return _rmdir(self._dir(job_id))

    def leftovers(self) -> list[int]:
        try:
            names = os.listdir(self.base)
        except OSError:
            return []
        return sorted(job for job in map(job_of, names) if job is not None)

    def launcher_group(self) -> str | None:
        path = f"{self._path}/launcher"
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        return path + "/cgroup.procs"

    def close(self) -> None:
        self.tidy()
        _rmdir(f"{self._path}/launcher")  # once the launcher, which outlives the worker, is gone
        _rmdir(self._path)  # only when no job's group is left in it


@dataclass(slots=True)
class _Spare:
    name: str
    limited: bool  # its memory limit is still the last job's
    oom_kills: int  # its memory.oom_control count so far


class CgroupV1(_Groups):
    """cgroup v1: memory (limit_in_bytes, and memsw.limit_in_bytes so swap does not help;
    max_usage_in_bytes, oom_control's oom_kill), cpuacct (usage, stat), freezer (to
    kill a group that forks meanwhile), cpuset and pids where mounted."""

    mode = "cgroup-v1"

    def __init__(self, root: Path, node: str, home: Path | None = None) -> None:
        super().__init__()
        self.root = root
        name = node_dir_name(node, home)
        self.bases: dict[str, Path] = {}
        for controller in ("memory", "cpuacct", "freezer", "cpuset", "pids"):
            hierarchy = root / controller
            if not (hierarchy / "cgroup.procs").exists():
                continue
            base = hierarchy / "conductor" / name
            try:
                base.mkdir(parents=True, exist_ok=True)
                if controller == "cpuset":
                    # A new cpuset has no CPUs nor memory nodes: nothing could join it.
                    for level in (hierarchy / "conductor", base):
                        for knob in ("cpuset.cpus", "cpuset.mems"):
                            if not (read_text(str(level / knob)) or "").strip():
                                write_text(str(level / knob), (read_text(str(level.parent / knob)) or "").strip())
            except OSError as exc:
                if controller in V1_REQUIRED:
                    raise ContainmentError(f"cannot set up cgroup v1 under {base}: {exc}") from None
                log.warning("cgroup v1 %s not used: %s", controller, exc)
                continue
            self.bases[controller] = base
        self.memsw = (self.bases["memory"] / "memory.memsw.limit_in_bytes").exists()
        self._limited: set[int] = set()  # jobs whose memory group has a limit
        self._paths = {controller: str(base) for controller, base in self.bases.items()}
        self._spares: list[_Spare] = []
        self._spare_names = 0
        self._oom_base: dict[int, int] = {}  # a recycled group's oom kills before its job
        self._made: dict[int, tuple[str, ...]] = {}  # a job's groups beyond RECYCLED (create)
        for controller in RECYCLED:  # a previous worker's spares: empty, and not worth knowing
            for name in os.listdir(self._paths[controller]):
                if name.startswith("spare_"):
                    _rmdir(f"{self._paths[controller]}/{name}")
        self.mems = (read_text(str(self.bases["cpuset"] / "cpuset.mems")) or "").strip() if "cpuset" in self.bases else ""

    def describe(self) -> str:
        swap = "memory+swap limited" if self.memsw else "swap not accounted (memsw absent)"
        return f"cgroup v1 ({', '.join(self.bases)}; {swap}) under {self.bases['memory'].parent}"

    def _dir(self, controller: str, job_id: int) -> str:
        return f"{self._paths[controller]}/job_{job_id}"

    def create(self, job_id: int, limits: Limits) -> list[str]:
        controllers = ["memory", "cpuacct", "freezer"]
        if limits.cpus is not None and "cpuset" in self.bases:
            controllers.append("cpuset")
        if limits.max_pids is not None and "pids" in self.bases:
            controllers.append("pids")
        spare = self._take_spare(job_id)
        # The groups it gets beyond the recycled ones: only these are removed at its end (a
        # removal of what was never made is a failed system call and an exception, per job).
        self._made[job_id] = tuple(c for c in controllers if c not in RECYCLED)
        procs = []
        for controller in controllers:
            path = self._dir(controller, job_id)
            fresh = spare is None or controller not in RECYCLED
            if fresh:
                try:
                    os.mkdir(path)
                except FileExistsError:
                    fresh = False
                    if controller == "freezer":
                        self._kill_frozen(path)
            if controller == "memory" and limits.memory_bytes is not None:
                self._limited.add(job_id)
                limit = str(limits.memory_bytes)
                if not fresh and self.memsw:
                    write_text(path + "/memory.memsw.limit_in_bytes", "-1")  # never below the new limit
                write_text(path + "/memory.limit_in_bytes", limit)
                if self.memsw:
                    write_text(path + "/memory.memsw.limit_in_bytes", limit)
            elif controller == "memory" and (spare is None or spare.limited) and not fresh:
                if self.memsw:
                    write_text(path + "/memory.memsw.limit_in_bytes", "-1")
                write_text(path + "/memory.limit_in_bytes", "-1")
            elif controller == "cpuset" and limits.cpus is not None:
                write_text(path + "/cpuset.cpus", ",".join(map(str, sorted(limits.cpus))))
                write_text(path + "/cpuset.mems", self.mems)
            elif controller == "pids":
                write_text(path + "/pids.max", str(limits.max_pids))
            procs.append(path + "/cgroup.procs")
        return procs

    def sample(self, job_ids: list[int]) -> dict[int, Sample]:
        out = {}
        for job_id in job_ids:
            path = self._dir("memory", job_id)
            stat = read_keyed(path + "/memory.stat")
            if not stat:
                continue
            rss = stat.get("total_rss", stat.get("rss", 0)) + stat.get("total_mapped_file", stat.get("mapped_file", 0))
            cpuacct = self._dir("cpuacct", job_id)
            ticks = read_keyed(cpuacct + "/cpuacct.stat")
            user, system = _cpu_split(read_int(cpuacct + "/cpuacct.usage"), ticks.get("user"), ticks.get("system"))
            peak = read_int(path + "/memory.max_usage_in_bytes")
            so_far = Usage(user_cpu=user, system_cpu=system, max_rss=peak, ave_rss=peak, source=self.mode)
            out[job_id] = self._record(job_id, rss, _vmsize(read_pids(path + "/cgroup.procs")), so_far)
        return out

    def signal(self, job_id: int, sig: int) -> None:
        for pid in read_pids(self._dir("freezer", job_id) + "/cgroup.procs"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def finish(self, job_id: int) -> Usage:
        memory = self._dir("memory", job_id)
        cpuacct = self._dir("cpuacct", job_id)
        ticks = read_keyed(cpuacct + "/cpuacct.stat")
        user, system = _cpu_split(read_int(cpuacct + "/cpuacct.usage"), ticks.get("user"), ticks.get("system"))
        peak = read_int(memory + "/memory.max_usage_in_bytes")
        # Only a limited group has its own out-of-memory kills to count (a read less per job).
        limited = job_id in self._limited
        self._limited.discard(job_id)
        base = self._oom_base.pop(job_id, 0)
        oom = read_keyed(memory + "/memory.oom_control").get("oom_kill", 0) if limited else base
        tally = self._sampled(job_id)
        usage = Usage(
            user_cpu=user,
            system_cpu=system,
            max_rss=peak,
            ave_rss=peak,  # one task (see CgroupV2.finish)
            max_vmsize=tally.max_vmsize if tally else None,
            oom_kills=oom - base,
            source=self.mode,
        )
        if self._kill_frozen(self._dir("freezer", job_id)) or not self._keep_spare(job_id, limited, oom):
            self._release(job_id)
        return usage

    def _take_spare(self, job_id: int) -> _Spare | None:
        """A kept group, renamed to the job's in RECYCLED (None: none, or it could not be)."""
        while self._spares:
            spare = self._spares.pop()
            renamed = []
            try:
                for controller in RECYCLED:
                    os.rename(f"{self._paths[controller]}/{spare.name}", self._dir(controller, job_id))
                    renamed.append(controller)
            except OSError as exc:
                log.debug("spare group %s not reused: %s", spare.name, exc)
                for controller in RECYCLED:
                    _rmdir(self._dir(controller, job_id) if controller in renamed else f"{self._paths[controller]}/{spare.name}")
                continue
            # The high-water mark starts again from what is charged now (as late as can be: what
            # the last job's processes left is freed meanwhile).
            try:
                write_text(self._dir("memory", job_id) + "/memory.max_usage_in_bytes", "0")
            except OSError as exc:
                log.debug("spare group %s not reused: %s", spare.name, exc)
                for controller in RECYCLED:
                    _rmdir(self._dir(controller, job_id))
                continue
            self._oom_base[job_id] = spare.oom_kills
            return spare
        return None

    def _keep_spare(self, job_id: int, limited: bool, oom_kills: int) -> bool:
        """Keep an ended job's (empty) groups for a later job; False: remove them instead."""
        if len(self._spares) >= MAX_SPARES:
            return False
        memory = self._dir("memory", job_id)
        self._spare_names += 1
        name = f"spare_{self._spare_names}"
        renamed: list[str] = []
        try:
            charged = read_int(memory + "/memory.usage_in_bytes")
            if charged is None or charged > SPARE_CHARGE:
                return False
            write_text(self._dir("cpuacct", job_id) + "/cpuacct.usage", "0")  # every counter
            for controller in RECYCLED:
                os.rename(self._dir(controller, job_id), f"{self._paths[controller]}/{name}")
                renamed.append(controller)
        except OSError as exc:
            log.debug("groups of job %s not kept: %s", job_id, exc)
            for controller in renamed:
                with contextlib.suppress(OSError):
                    os.rename(f"{self._paths[controller]}/{name}", self._dir(controller, job_id))
            return False
        made = self._made.pop(job_id, None)  # None: adopted, made by an earlier worker
        for controller in made if made is not None else (c for c in self.bases if c not in RECYCLED):
            _rmdir(self._dir(controller, job_id))  # cpuset, pids: empty, as the rest
        self._spares.append(_Spare(name, limited, oom_kills))
        return True

    def _kill_frozen(self, path: str) -> bool:
        """Kill every process of a freezer group: frozen first, so none forks in between.
        Whether it had any."""
        procs = path + "/cgroup.procs"
        if not read_pids(procs):
            return False
        try:
            write_text(path + "/freezer.state", "FROZEN")
        except OSError:
            pass
        self._kill(procs)
        with contextlib.suppress(OSError):
            write_text(path + "/freezer.state", "THAWED")  # a frozen process cannot die
        return True

    def _remove(self, job_id: int) -> bool:
        self._made.pop(job_id, None)
        done = True
        for controller in self.bases:
            done = _rmdir(self._dir(controller, job_id)) and done
        return done

    def launcher_group(self) -> str | None:
        # The freezer's: a group without limits or accounting (the lock is the same for all).
        path = f"{self._paths['freezer']}/launcher"
        with contextlib.suppress(FileExistsError):
            os.mkdir(path)
        return path + "/cgroup.procs"

    def close(self) -> None:
        self.tidy()
        _rmdir(f"{self._paths['freezer']}/launcher")  # once the launcher, which outlives the worker, is gone
        for spare in self._spares:
            for controller in RECYCLED:
                _rmdir(f"{self._paths[controller]}/{spare.name}")
        self._spares = []
        for path in self._paths.values():
            _rmdir(path)  # only when no job's group is left in it

    def leftovers(self) -> list[int]:
        found: set[int] = set()
        for base in self.bases.values():
            try:
                names = os.listdir(base)
            except OSError:
                continue
            found.update(job for job in map(job_of, names) if job is not None)
        return sorted(found)
