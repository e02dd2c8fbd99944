"""The cluster configuration file: its schema, each rule's refusal with the line, and the
node patterns that make partitions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conductor.config.live import Effective
from conductor.config.loader import MAX_CONFIG_BYTES, ConfigError, key_lines, load_config, parse_config
from conductor.scheduler.limits import PartitionLimit

GOOD = """\
DefaultQOS = "normal"
EnforcePartLimits = "ALL"

[partitions.debug]
Nodes = "node[01-04]"
Default = "YES"
MaxTime = "1:00:00"
DefaultTime = 10
PriorityTier = 2
MaxCPUsPerNode = 8
AllowAccounts = ["physics", "chem"]

[partitions.gpu]
Nodes = ["gpu*", "node05"]
MaxTime = "2-00:00:00"
State = "drain"

[qos.normal]
MaxJobsPerUser = 4
MaxSubmitJobsPerUser = 10
MaxTRESPerUser = "cpu=8,mem=16G"
GrpTRES = { cpu = 64 }
MaxWall = "12:00:00"

[qos.high]
Priority = 1000

[priority]
PriorityWeightAge = 1000
PriorityWeightFairshare = 10000
PriorityDecayHalfLife = "7-0"

[backfill]
Depth = 4
MaxJobTest = 200
"""


def test_a_good_file_reads_into_typed_values() -> None:
    config = parse_config(GOOD)
    debug, gpu = config.partitions["debug"], config.partitions["gpu"]
    assert (debug.default, debug.max_time, debug.default_time, debug.priority_tier) == (True, 3600, 600, 2)
    assert debug.accounts() == frozenset({"physics", "chem"}) and gpu.accounts() is None
    assert gpu.state == "DRAIN"
    normal = config.qos["normal"]
    assert (normal.max_tres_per_user.cpu, normal.max_tres_per_user.mem, normal.grp_tres.cpu) == (8, 16384, 64)
    assert normal.max_wall == 12 * 3600
    assert config.priority.fairshare == 10000 and config.priority.decay_half_life == 7 * 86400
    assert config.default_partition() == "debug"
    assert config.node_partitions("node03") == {"debug"}
    assert config.node_partitions("gpu17") == {"gpu"} and config.node_partitions("node05") == {"gpu"}
    assert config.node_partitions("login1") == frozenset()


@pytest.mark.parametrize(
    ("change", "line", "says"),
    [
        (('MaxTime = "1:00:00"', 'MaxTime = "soon"'), 7, "partitions.debug.MaxTime: invalid time 'soon'"),
        (("DefaultTime = 10", 'DefaultTime = "2:00:00"'), 4, "DefaultTime must not exceed MaxTime"),
        (("PriorityTier = 2", "PriorityTier = -1"), 9, "PriorityTier: Input should be greater than or equal to 0"),
        (('State = "drain"', 'State = "asleep"'), 16, "partitions.gpu.State: Input should be 'UP', 'DOWN'"),
        (('Nodes = "node[01-04]"', 'Nodes = "node[04-01]"'), 5, "partitions.debug.Nodes:"),
        (("MaxJobsPerUser = 4", 'MaxJobsPerUser = "four"'), 19, "qos.normal.MaxJobsPerUser: Input should be a valid integer"),
        (('"cpu=8,mem=16G"', '"cpu=8,gpu=2"'), 21, "unknown TRES gpu"),
        (('"cpu=8,mem=16G"', '"cpu=8,mem=lots"'), 21, "qos.normal.MaxTRESPerUser"),
        (("Depth = 4", "Depht = 4"), 34, "backfill.Depht: unknown key"),
        (('DefaultQOS = "normal"', 'DefaultQOS = "gold"'), None, "DefaultQOS 'gold' is not one of the [qos.*] tables"),
        (('State = "drain"', 'Default = true'), None, "only one partition may be Default"),
        (('EnforcePartLimits = "ALL"', 'AccountingStorageEnforce = "associations,everything"'), 2,
         "AccountingStorageEnforce: unknown value 'everything': use a comma list of associations"),
    ],
)
def test_a_bad_file_is_refused_with_the_line_the_key_and_the_rule(
    change: tuple[str, str], line: int | None, says: str
) -> None:
    text = GOOD.replace(*change, 1)
    assert text != GOOD
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cluster.toml")
    message = str(caught.value)
    assert says in message
    if line is not None:
        assert f"cluster.toml: line {line}: " in message


def test_toml_syntax_errors_name_the_line() -> None:
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 2"):
        parse_config('[partitions.debug]\nMaxTime = "1:00\n')


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(tmp_path / "missing.toml")


def test_only_a_regular_file_of_bounded_size_is_read(tmp_path: Path) -> None:
    # A reload reads the file while requests wait for the configuration: a FIFO blocked it for
    # good (and the server with it), /dev/zero filled memory.
    fifo = tmp_path / "cluster.toml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero"), tmp_path):
        with pytest.raises(ConfigError, match="not a regular file"):
            load_config(path)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than 16 MiB"):
        load_config(big)


def test_nesting_too_deep_for_the_parser_is_a_syntax_error() -> None:
    for text in ("a = " + "[" * 3000 + "]" * 3000, "a = " + "{b = " * 3000 + "1" + "}" * 3000):
        with pytest.raises(ConfigError, match="nested too deeply"):
            parse_config(text)


def test_a_name_with_a_final_newline_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be 1-64 letters"):
        parse_config('[partitions."abc\\n"]\nNodes = "ALL"\n')  # the TOML escape: "abc" and a newline


def test_key_lines_follow_tables_and_quoted_keys() -> None:
    lines = key_lines('a = 1\n[partitions."x.y"]\nMaxTime = 5 # c\n\n[[list]]\nb=2\n')
    assert lines[("a",)] == 1
    assert lines[("partitions", "x.y")] == 2
    assert lines[("partitions", "x.y", "MaxTime")] == 3
    assert lines[("list", "b")] == 6


def test_without_a_file_there_is_one_qos_normal_and_no_limits() -> None:
    effective = Effective()
    assert effective.limits() is None
    assert effective.qos(None) is not None and effective.qos("normal") is not None
    assert effective.partition_state("debug") == "UP"


def test_states_set_by_scontrol_override_the_file() -> None:
    effective = Effective(parse_config(GOOD), {"debug": "DOWN"}, 3)
    limits = effective.limits()
    assert limits is not None
    assert limits.partitions["debug"] == PartitionLimit(state="DOWN", max_time=3600, max_cpus_per_node=8)
    assert limits.partitions["gpu"].state == "DRAIN"
    assert limits.qos["normal"].max_cpus_per_user == 8 and limits.qos["high"].max_jobs_per_user is None
    # A state set over no file still applies to the workers' partitions.
    bare = Effective(None, {"debug": "DOWN"}, 1).limits()
    assert bare is not None and bare.partitions["debug"].state == "DOWN"
