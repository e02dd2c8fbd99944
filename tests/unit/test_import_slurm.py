"""`conductor config import-slurm`: slurm.conf files carried over into a configuration file that
the loader accepts, and what was not carried over, said line by line."""

from __future__ import annotations

import random
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from conductor.config.loader import ConfigError, load_config, parse_config
from conductor.config.slurmconf import _words, import_slurm_conf

HERE = Path(__file__).parent / "slurmconf"


def test_single_node_configuration() -> None:
    imported = import_slurm_conf((HERE / "anchor.conf").read_text())
    config = parse_config(imported.toml)
    assert list(config.partitions) == ["debug"]
    debug = config.partitions["debug"]
    assert debug.default and debug.max_time is None and debug.state == "UP" and debug.has_node("anchor01")
    assert config.nodes["anchor01"].cpus == 4 and config.nodes["anchor01"].real_memory == 7800
    assert (config.backfill.enabled, config.backfill.max_job_test, config.backfill.depth) == (True, 500, 500)
    assert config.enforce_part_limits == "NO"  # Slurm's default
    notes = {n.line: str(n) for n in imported.notes}
    assert "daemon setting" in notes[2] and notes[2].startswith("line 2: ClusterName=anchor")
    assert "plugin setting" in notes[28]
    assert "accounting setting" in notes[33]
    assert notes[38] == ("line 38: NodeName=anchor01 State=UNKNOWN: not carried over: a worker finds its node's "
                         "shape and state itself")
    assert 39 not in notes  # the PartitionName line is carried over whole


def test_a_sites_configuration() -> None:
    imported = import_slurm_conf((HERE / "site.conf").read_text())
    config = parse_config(imported.toml)
    assert list(config.partitions) == ["debug", "normal", "fat", "gpu", "long", "maint"]
    debug, normal, fat, gpu, long, maint = config.partitions.values()
    assert (debug.default, debug.max_time, debug.default_time, debug.priority_tier) == (True, 1800, 600, 10)
    assert normal.max_cpus_per_node == 32 and normal.max_time == 2 * 86400 and normal.default_time == 3600
    assert fat.accounts() == frozenset({"genomics", "climate"}) and fat.max_time == 7 * 86400
    assert gpu.priority_tier == 5
    assert long.state == "DRAIN" and long.max_time is None and long.priority_job_factor == 2
    assert long.has_node("thin012") and long.has_node("fat05") and not long.has_node("thin001")
    assert maint.state == "INACTIVE" and maint.has_node("gpu3")
    assert set(config.nodes) == {"thin[001-016]", "fat[01-08]", "gpu[1-4]", "dbg[1-2]"}
    assert config.nodes["fat[01-08]"].real_memory == 1_500_000 and config.nodes["thin[001-016]"].features == "thin,skylake"
    assert config.node_partitions("thin010") == {"normal", "long", "maint"}
    p = config.priority
    assert (p.age, p.fairshare, p.job_size, p.partition, p.qos) == (1000, 10000, 500, 1000, 2000)
    assert p.decay_half_life == 14 * 86400 and p.max_age == 7 * 86400 and not p.favor_small
    assert (config.backfill.max_job_test, config.backfill.depth) == (1000, 1000)
    assert config.enforce_part_limits == "ALL"
    assert config.accounting_storage_enforce == "associations,limits,qos" and config.enforces_associations()

    said = "\n".join(map(str, imported.notes))
    for expected in (
        "line 35: SchedulerParameters bf_window=10080: not carried over",
        "SchedulerParameters bf_continue: not carried over",
        "SchedulerParameters max_rpc_cnt=150",  # a continued line: reported at its first line
        "DefMemPerCPU=2000: not carried over: memory defaults",
        "PriorityWeightTRES=CPU=1000,Mem=2000,GRES/gpu=3000: not carried over: priority setting",
        "NodeName=gpu[1-4] Gres=gpu:a100:4: not carried over: a worker finds",
        "NodeName=spare[9-1]: not carried over:",
        "PartitionName=DEFAULT MaxNodes=4: not carried over: jobs run on one node here",
        "PartitionName=fat AllowGroups=fatusers: not carried over: access is limited by AllowAccounts",
        "Include /etc/slurm/site-extra.conf: not carried over: not a Key=Value line",
        "line 59: AccountingStorageHost=hydra-db: not carried over: accounting setting",
    ):
        assert expected in said, expected
    assert "PriorityWeightAge" not in said and "PartitionName=debug" not in said
    assert "line 60" not in said  # AccountingStorageEnforce is carried over whole
    toml = tomllib.loads(imported.toml)
    assert toml["partitions"]["fat"]["AllowAccounts"] == ["genomics", "climate"]


def test_a_configuration_that_breaks_a_rule_is_refused_with_it() -> None:
    with pytest.raises(ConfigError, match="DefaultTime must not exceed MaxTime"):
        import_slurm_conf("PartitionName=p Nodes=n1 MaxTime=10 DefaultTime=20\n")


def test_the_command_writes_the_file_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "cluster.toml"
    done = subprocess.run(
        [sys.executable, "-m", "conductor", "config", "import-slurm", str(HERE / "site.conf"), "-o", str(out)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("import-slurm: ") and "carried over, written to" in done.stderr
    assert "  line 5: ClusterName=hydra: not carried over: daemon setting" in done.stderr
    assert list(load_config(out).partitions)[0] == "debug"
    check = subprocess.run([sys.executable, "-m", "conductor", "config", "check", str(out)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0 and "OK (6 partition(s)" in check.stdout
    missing = subprocess.run([sys.executable, "-m", "conductor", "config", "import-slurm", str(tmp_path / "none")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 1 and "cannot read" in missing.stderr
    out.write_text("[partitions.x]\nMaxTime = 'never'\n")
    bad = subprocess.run([sys.executable, "-m", "conductor", "config", "check", str(out)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1 and "line 2: partitions.x.MaxTime" in bad.stderr


def test_numbers_it_cannot_read_are_carried_over_as_text_for_the_check_to_refuse() -> None:
    # isdigit() alone took '²' (int() refuses it: a traceback) and '٣' (read as 3), and int()
    # refuses over 4,300 digits.
    for value in ("9" * 5000, "\u00b2", "\u0663"):
        with pytest.raises(ConfigError, match="cannot be carried over as it is") as caught:
            import_slurm_conf(
                f"NodeName=a CPUs={value}\nPartitionName=p Nodes=a PriorityTier={value}\n"
                f"PriorityWeightAge={value}\nSchedulerParameters=bf_max_job_test=5\n"
            )
        assert "nodes.a.CPUs" in str(caught.value) and "partitions.p.PriorityTier" in str(caught.value)
    # A bf_max_job_test it cannot read is said, not carried over.
    imported = import_slurm_conf("NodeName=a CPUs=2\nPartitionName=p Nodes=a\nSchedulerParameters=bf_max_job_test=\u0663\n")
    assert parse_config(imported.toml).backfill.max_job_test == 500
    assert any("bf_max_job_test" in str(note) for note in imported.notes)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "slurm.conf"
    source.write_bytes(b"PartitionName=caf\xe9 Nodes=ALL\n")
    done = subprocess.run(
        [sys.executable, "-m", "conductor", "config", "import-slurm", str(source)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "is not UTF-8 text" in done.stderr and "Traceback" not in done.stderr


def test_a_line_of_a_megabyte_is_read_in_linear_time() -> None:
    # shlex.split took 16 s on such a line: it builds each word a character at a time. The time of
    # a line four times as long is compared with the short one's, interleaved and best of three so
    # that a loaded machine slows both: linear reading takes about four times as long, quadratic
    # sixteen. A fixed bound in seconds failed on a busy CI host while the reading was linear.
    def took(value: str) -> float:
        started = time.perf_counter()
        imported = import_slurm_conf(f"NodeName=n1 CPUs=2\nPartitionName=p Nodes=n1 AllowGroups={value}\n")
        assert "AllowGroups=" in str(imported.notes[0])
        return time.perf_counter() - started

    for unit, count in (("a", 1_000_000), ('a\\"', 300_000), ("\\a", 500_000), ("a=b ", 250_000)):
        quote = '"' if unit.endswith('"') else ""
        short, long = quote + unit * (count // 4) + quote, quote + unit * count + quote
        short_times, long_times = [], []
        for _ in range(3):
            short_times.append(took(short))
            long_times.append(took(long))
        assert min(long_times) < 8 * min(short_times) + 0.05, (unit, short_times, long_times)


def test_words_are_split_as_shlex_splits_them() -> None:
    pieces = ["a", "=", " ", "\t", '"', "'", "\\", "#", "\u00a0", "\u00e9", "\r", "\x0b", '\\"', "x y", ""]
    rng = random.Random(7)
    for _ in range(20_000):
        line = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        try:
            expected: list[str] | str = shlex.split(line)
        except ValueError:
            expected = "refused"
        try:
            got: list[str] | str = _words(line)
        except ValueError:
            got = "refused"
        assert got == expected, repr(line)


def test_a_node_line_without_a_name_is_not_carried_over() -> None:
    imported = import_slurm_conf('NodeName= CPUs=4\nNodeName="" CPUs=2\nNodeName=n1 CPUs=8\nPartitionName=p Nodes=n1\n')
    assert list(parse_config(imported.toml).nodes) == ["n1"]
    said = [str(n) for n in imported.notes]
    assert said == ["line 1: NodeName=: not carried over: the line names no node",
                    "line 2: NodeName=: not carried over: the line names no node"]
    assert imported.carried == 2


def test_a_partition_defined_again_keeps_its_first_line_and_says_so() -> None:
    # slurmctld stops on such a file; earlier versions ignored the later line: so is it here,
    # said, not silently replaced.
    imported = import_slurm_conf(
        "NodeName=n[1-4] CPUs=2\nPartitionName=p Nodes=n[1-2] MaxTime=10\nPartitionName=q Nodes=n3\n"
        "PartitionName=p Nodes=n[3-4] Default=YES\n"
    )
    config = parse_config(imported.toml)
    p = config.partitions["p"]
    assert (p.max_time, p.default, p.has_node("n1"), p.has_node("n4")) == (600, False, True, False)
    assert [str(n) for n in imported.notes] == [
        "line 4: PartitionName=p: not carried over: the partition is defined on an earlier line, which is kept "
        "(Slurm refuses a partition defined twice)"
    ]
    assert imported.carried == 3


def test_counts_beyond_their_bound_are_refused_with_it() -> None:
    with pytest.raises(ConfigError, match="partitions.p.MaxCPUsPerNode: Input should be less than or equal to "
                                          "2147483647") as caught:
        import_slurm_conf(f"NodeName=a RealMemory={2**41} Weight={2**32}\n"
                          f"PartitionName=p Nodes=a MaxCPUsPerNode={2**40}\n")
    assert "nodes.a.RealMemory: Input should be less than or equal to 1099511627776" in str(caught.value)
    assert "nodes.a.Weight: Input should be less than or equal to 2147483647" in str(caught.value)
