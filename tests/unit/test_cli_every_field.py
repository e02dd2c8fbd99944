"""Every format field the Slurm 22.05 man pages of squeue, sinfo and sacct document is accepted
and printed: squeue's -o letters and -O names (with squeue's headers), sinfo's -o letters and -O
names, sacct's --format names. The lists are Slurm 22.05's own (src/squeue/opts.c,
src/sinfo/opts.c, src/sacct/sacct.c)."""

from __future__ import annotations

import string
from typing import Any

import pytest

from conductor.cli import sacct_format, sinfo, squeue_format

# squeue -O name -> the header squeue 22.05 prints for it.
SQUEUE_LONG: dict[str, str] = {
    "account": "ACCOUNT",
    "container": "CONTAINER",
    "jobid": "JOBID",
    "batchhost": "EXEC_HOST",
    "burstbuffer": "BURST_BUFFER",
    "burstbufferstate": "BURST_BUFFER_STATE",
    "cluster": "CLUSTER",
    "delayboot": "DELAY_BOOT",
    "mincpus": "MIN_CPUS",
    "numcpus": "CPUS",
    "mintmpdisk": "MIN_TMP_DISK",
    "numnodes": "NODES",
    "endtime": "END_TIME",
    "dependency": "DEPENDENCY",
    "feature": "FEATURES",
    "clusterfeature": "CLUSTER_FEATURES",
    "prefer": "PREFER",
    "arrayjobid": "ARRAY_JOB_ID",
    "groupname": "GROUP",
    "groupid": "GROUP",
    "shared": "OVER_SUBSCRIBE",
    "sockets": "SOCKETS_PER_NODE",
    "jobarrayid": "JOBID",
    "cores": "CORES_PER_SOCKET",
    "name": "NAME",
    "threads": "THREADS_PER_CORE",
    "admin_comment": "ADMIN_COMMENT",
    "system_comment": "SYSTEM_COMMENT",
    "comment": "COMMENT",
    "arraytaskid": "ARRAY_TASK_ID",
    "timelimit": "TIME_LIMIT",
    "timeleft": "TIME_LEFT",
    "minmemory": "MIN_MEMORY",
    "timeused": "TIME",
    "reqnodes": "REQ_NODES",
    "nodelist": "NODELIST",
    "command": "COMMAND",
    "contiguous": "CONTIGUOUS",
    "priority": "PRIORITY",
    "partition": "PARTITION",
    "qos": "QOS",
    "prioritylong": "PRIORITY",
    "reason": "REASON",
    "reasonlist": "NODELIST(REASON)",
    "starttime": "START_TIME",
    "lastschedeval": "LAST_SCHED_EVAL",
    "statecompact": "ST",
    "state": "STATE",
    "userid": "UID",
    "username": "USER",
    "reservation": "RESERVATION",
    "submittime": "SUBMIT_TIME",
    "pendingtime": "PENDING_TIME",
    "wckey": "WCKEY",
    "licenses": "LICENSES",
    "corespec": "CORE_SPEC",
    "nice": "NICE",
    "schednodes": "SCHEDNODES",
    "sct": "S:C:T",
    "workdir": "WORK_DIR",
    "accruetime": "ACCRUE_TIME",
    "allocnodes": "ALLOC_NODES",
    "allocsid": "ALLOC_SID",
    "associd": "ASSOC_ID",
    "batchflag": "BATCH_FLAG",
    "boardspernode": "BOARDS_PER_NODE",
    "cpus-per-task": "CPUS_PER_TASK",
    "derivedec": "DERIVED_EC",
    "eligibletime": "ELIGIBLE_TIME",
    "exit_code": "EXIT_CODE",
    "origin": "ORIGIN",
    "originraw": "ORIGIN_RAW",
    "siblingsactive": "ACTIVE_SIBLINGS",
    "siblingsactiveraw": "ACTIVE_SIBLINGS_RAW",
    "siblingsviable": "VIABLE_SIBLINGS",
    "siblingsviableraw": "VIALBLE_SIBLINGS_RAW",
    "maxcpus": "MAX_CPUS",
    "maxnodes": "MAX_NODES",
    "network": "NETWORK",
    "ntpercore": "NTASKS_PER_CORE",
    "ntpernode": "NTASKS_PER_NODE",
    "ntpersocket": "NTASKS_PER_SOCKET",
    "ntperboard": "NTASKS_PER_BOARD",
    "preempttime": "PREEMPT_TIME",
    "profile": "PROFILE",
    "reboot": "REBOOT",
    "reqswitch": "REQ_SWITCH",
    "requeue": "REQUEUE",
    "resizetime": "RESIZE_TIME",
    "restartcnt": "RESTART_COUNT",
    "sperboard": "SOCKETS_PER_BOARD",
    "stderr": "STDERR",
    "stdin": "STDIN",
    "stdout": "STDOUT",
    "mintime": "TIME_MIN",
    "wait4switch": "WAIT4SWITCH",
    "cpus-per-tres": "CPUS_PER_TRES",
    "mem-per-tres": "MEM_PER_TRES",
    "tres-alloc": "TRES_ALLOC",
    "tres-bind": "TRES_BIND",
    "tres-freq": "TRES_FREQ",
    "tres-per-job": "TRES_PER_JOB",
    "tres-per-node": "TRES_PER_NODE",
    "tres-per-socket": "TRES_PER_SOCKET",
    "tres-per-task": "TRES_PER_TASK",
    "mcslabel": "MCSLABEL",
    "deadline": "DEADLINE",
    "hetjobid": "HET_JOB_ID",
    "hetjoboffset": "HET_JOB_OFFSET",
    "hetjobidset": "HET_JOB_ID_SET",
}
SQUEUE_ALIASES = ("shared", "cpuspertask", "gres", "packjobid", "packjoboffset", "packjobidset", "batchhost")
SINFO_LETTERS = "aAbBcCdDeEfFgGhHIlLmMnNoOpPrRsStTuUvVwXYZz"
SINFO_LONG = (
    "allocmem allocnodes available cluster comment cpus cpusload freemem cpusstate cores defaulttime disk extra "
    "features features_act groups gres gresused maxcpuspernode memory nodes nodeaddr nodeai nodeaiot nodehost "
    "nodelist oversubscribe partition partitionname port preemptmode priorityjobfactor prioritytier reason root "
    "share size statecompact statecomplete statelong sockets socketcorethread time timestamp threads user "
    "userlong version weight"
).split()
SACCT = """Account AdminComment AllocCPUS AllocNodes AllocTRES AssocID AveCPU AveCPUFreq AveDiskRead AveDiskWrite AvePages AveRSS AveVMSize BlockID Cluster Comment Constraints ConsumedEnergy ConsumedEnergyRaw Container CPUTime CPUTimeRAW DBIndex DerivedExitCode Elapsed ElapsedRaw Eligible End ExitCode Flags GID Group JobID JobIDRaw JobName Layout MaxDiskRead MaxDiskReadNode MaxDiskReadTask MaxDiskWrite MaxDiskWriteNode MaxDiskWriteTask MaxPages MaxPagesNode MaxPagesTask MaxRSS MaxRSSNode MaxRSSTask MaxVMSize MaxVMSizeNode MaxVMSizeTask McsLabel MinCPU MinCPUNode MinCPUTask NCPUS NNodes NodeList NTasks Partition Priority QOS QOSRAW Reason ReqCPUFreq ReqCPUFreqGov ReqCPUFreqMax ReqCPUFreqMin ReqCPUS ReqMem ReqNodes ReqTRES Reservation ReservationId Reserved ResvCPU ResvCPURAW Start State Submit SubmitLine Suspended SystemComment SystemCPU Timelimit TimelimitRaw TotalCPU TRESUsageInAve TRESUsageInMax TRESUsageInMaxNode TRESUsageInMaxTask TRESUsageInMin TRESUsageInMinNode TRESUsageInMinTask TRESUsageInTot TRESUsageOutAve TRESUsageOutMax TRESUsageOutMaxNode TRESUsageOutMaxTask TRESUsageOutMin TRESUsageOutMinNode TRESUsageOutMinTask TRESUsageOutTot UID User UserCPU WCKey WCKeyID WorkDir""".split()

NOW = 1_800_000_000.0
PENDING: dict[str, Any] = {
    "job_id": 7, "state": "PENDING", "name": "p", "user": "root", "partition": "debug", "reason": "Resources",
    "submit_time": "2026-12-05T07:00:00+00:00", "eligible_time": "2026-12-05T07:00:00+00:00",
    "ntasks": 1, "cpus_per_task": 2, "time_limit": 600,
}
RUNNING: dict[str, Any] = dict(
    PENDING, job_id=8, state="RUNNING", reason="None", start_time="2026-12-05T07:01:00+00:00",
    node_list="n1", allocated_cpus=2, memory_per_node_mb=512,
)


def test_every_squeue_letter_prints() -> None:
    letters = "".join(sorted(string.ascii_letters))
    items = squeue_format.parse_format(" ".join(f"%{c}" for c in letters))
    lines = squeue_format.render(items, [PENDING, RUNNING], header=True, now=NOW).splitlines()
    assert len(lines) == 3


@pytest.mark.parametrize("name", [*SQUEUE_LONG, *SQUEUE_ALIASES])
def test_every_squeue_long_name_prints_with_squeues_header(name: str) -> None:
    items = squeue_format.parse_long_format(f"{name}:40")
    header, *rows = squeue_format.render(items, [PENDING, RUNNING], header=True, now=NOW).splitlines()
    if name in SQUEUE_LONG:
        assert header.strip() == SQUEUE_LONG[name]
    assert len(rows) == 2 and all(len(row) >= 40 for row in rows), rows  # (a pending job's node list is empty)


def test_squeue_names_match_case_insensitively() -> None:
    assert squeue_format.parse_long_format("PendingTime,TRES-ALLOC")


def _node_rows() -> list[dict[str, Any]]:
    partitions = [{"name": "debug", "default": True, "state": "UP", "max_time": None, "nodes": ["n1"], "total_cpus": 4}]
    nodes = [{"name": "n1", "state": "MIXED", "cpus": 4, "alloc_cpus": 2, "memory_mb": 1000, "alloc_memory_mb": 100}]
    return sinfo.build_rows(partitions, nodes, per_node=True, summarize=False)


@pytest.mark.parametrize("letter", list(SINFO_LETTERS))
def test_every_sinfo_letter_prints(letter: str) -> None:
    out = sinfo.render(sinfo.parse_format(f"%{letter}"), _node_rows(), header=True).splitlines()
    assert len(out) == 2 and out[1].strip()


@pytest.mark.parametrize("name", SINFO_LONG)
def test_every_sinfo_long_name_prints(name: str) -> None:
    out = sinfo.render(sinfo.parse_long_format(name), _node_rows(), header=True).splitlines()
    assert len(out) == 2 and out[1].strip()
    assert len(out[0]) == sinfo.LONG_DEFAULT_WIDTH  # -O's default width, padding included


def test_sinfo_all_is_every_letter_between_bars() -> None:
    header, row = sinfo.render(sinfo.parse_format("%all"), _node_rows(), header=True).splitlines()
    assert header.count("|") == row.count("|") == len(SINFO_LETTERS) - 1
    assert sinfo.render(sinfo.parse_long_format("all"), _node_rows(), header=True).splitlines()[0] == header


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(squeue_format.FormatError):
        squeue_format.parse_long_format("nosuchfield")
    with pytest.raises(sinfo.UsageError):
        sinfo.parse_long_format("nosuchfield")
    with pytest.raises(sacct_format.FieldError):
        sacct_format.parse_fields("nosuchfield")


@pytest.mark.parametrize("name", SACCT)
def test_every_sacct_field_prints(name: str) -> None:
    columns = sacct_format.parse_fields(name)
    assert [c.name for c in columns] == [name]
    out = sacct_format.render(columns, [RUNNING], header=True, parsable="no_ending", delimiter="|").splitlines()
    assert out[0] == name and len(out) == 2
