"""The cluster configuration file: its schema, each rule's refusal with the line, and the
node patterns that make partitions."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import pytest
from pydantic import BaseModel, BeforeValidator

from conductor.config import model
from conductor.config.live import Effective
from conductor.config.loader import (
    MAX_CONFIG_BYTES,
    ConfigError,
    config_setting,
    key_lines,
    load_config,
    parse_config,
)
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
        (("MaxJobsPerUser = 4", 'MaxJobsPerUser = "four"'), 19,
         "qos.normal.MaxJobsPerUser: must be a whole number written as a TOML integer"),
        (("MaxCPUsPerNode = 8", "MaxCPUsPerNode = true"), 10,
         "partitions.debug.MaxCPUsPerNode: must be a whole number written as a TOML integer (e.g. 1000 or 1_000, "
         "without quotes), not true"),
        (("MaxCPUsPerNode = 8", "MaxCPUsPerNode = 18446744073709551616"), 10,
         "partitions.debug.MaxCPUsPerNode: Input should be less than or equal to 2147483647"),
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


def test_a_job_whose_partition_or_qos_a_reload_removed_waits_with_its_reason_and_is_told_why() -> None:
    from worker_fakes import job_record

    from conductor.scheduler.limits import PARTITION_INVALID, QOS_INVALID, LimitTracker
    from conductor.services.sharing import explain_limit

    effective = Effective(parse_config(GOOD))
    limits = effective.limits()
    assert limits is not None and limits.declared_partitions == frozenset({"debug", "gpu"})
    tracker = LimitTracker(limits, {})
    assert tracker.check("gone", "u", "normal", 1, 0, 60.0) == PARTITION_INVALID
    assert tracker.check("debug", "u", "gone", 1, 0, 60.0) == QOS_INVALID
    assert tracker.check("debug", "u", "normal", 1, 0, 60.0) is None
    job = job_record(7, reason=PARTITION_INVALID, partition="gone")
    assert "Partition gone is no longer in the cluster's configuration" in explain_limit(job, effective, {}, 1)[0]
    job = job_record(8, reason=QOS_INVALID, qos="gone")
    assert explain_limit(job, effective, {}, 1)[0].startswith("Its QOS gone is no longer defined")
    # A file without partitions leaves them to the workers: no name is missing.
    bare = Effective(parse_config("[qos.normal]\n")).limits()
    assert bare is not None and bare.declared_partitions is None
    assert LimitTracker(bare, {}).check("anything", "u", "normal", 1, 0, 60.0) is None


# Every integer of the file, as (table, key): each must be a TOML integer and has an upper bound.
INTEGERS = [
    ("partitions.p", "PriorityTier"), ("partitions.p", "PriorityJobFactor"), ("partitions.p", "MaxCPUsPerNode"),
    ('nodes."n1"', "CPUs"), ('nodes."n1"', "RealMemory"), ('nodes."n1"', "Weight"),
    ("qos.normal", "Priority"), ("qos.normal", "MaxJobsPerUser"), ("qos.normal", "MaxSubmitJobsPerUser"),
    ("qos.normal.MaxTRESPerUser", "cpu"), ("qos.normal.GrpTRES", "mem"),
    ("priority", "PriorityWeightAge"), ("priority", "PriorityWeightFairshare"), ("priority", "PriorityWeightJobSize"),
    ("priority", "PriorityWeightPartition"), ("priority", "PriorityWeightQOS"),
    ("backfill", "Depth"), ("backfill", "MaxJobTest"),
]
MODELS = (model.Tres, model.Partition, model.NodeSpec, model.Qos, model.PriorityWeights, model.BackfillSettings)


def _integers(schema: type[BaseModel]) -> list[str]:
    """The integer fields of `schema` read as numbers (times go through their grammar, which has its
    own type check and bound: 365 days)."""
    return [
        info.alias or name for name, info in schema.model_fields.items()
        if info.annotation in (int, int | None) and not any(isinstance(m, BeforeValidator) for m in info.metadata)
    ]


def test_the_list_of_integers_is_every_integer_of_the_models() -> None:
    listed = {key for _, key in INTEGERS}
    for schema in MODELS:
        assert set(_integers(schema)) <= listed, schema.__name__


@pytest.mark.parametrize(("table", "key"), INTEGERS)
@pytest.mark.parametrize(("value", "said"), [
    ("true", "not true"), ("false", "not false"), ('"1_000"', "not the string '1_000'"), ('"8"', "not the string '8'"),
    ("8.0", "not the float 8.0"),
])
def test_an_integer_must_be_a_toml_integer_not_a_bool_a_string_or_a_float(
    table: str, key: str, value: str, said: str
) -> None:
    # pydantic's lax mode read `true` as 1 and "1_000" as 1000: a value nobody wrote.
    text = f"[{table}]\n{key} = {value}\n"
    if key == "mem" and value.startswith('"'):  # a TRES memory is a size ("64G", "8" MB) on purpose
        if value == '"8"':
            assert parse_config(text).qos["normal"].grp_tres.mem == 8
        else:
            with pytest.raises(ConfigError, match=r"GrpTRES: invalid memory size '1_000'"):
                parse_config(text)
        return
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "cluster.toml")
    where = ".".join(part.strip('"') for part in table.split("."))
    assert f"cluster.toml: line 2: {where}.{key}: must be a whole number written as a TOML integer" in str(caught.value)
    assert str(caught.value).endswith(said)
    # The TOML integer itself is taken, underscores and all.
    parse_config(f"[{table}]\n{key} = 1_0\n")


def test_what_is_written_as_text_on_purpose_is_still_read() -> None:
    config = parse_config(
        'EnforcePartLimits = "any"\n[partitions.p]\nDefault = "yes"\nMaxTime = "1:00:00"\nDefaultTime = 10\n'
        'State = "down"\n[qos.normal]\nMaxTRESPerUser = "cpu=0016,mem=64G"\nGrpTRES = { mem = "1T" }\n'
        '[priority]\nPriorityFavorSmall = "NO"\nPriorityMaxAge = "1-0"\n'
    )
    p, q = config.partitions["p"], config.qos["normal"]
    assert (config.enforce_part_limits, p.default, p.max_time, p.default_time, p.state) == ("ANY", True, 3600, 600, "DOWN")
    assert (q.max_tres_per_user.cpu, q.max_tres_per_user.mem, q.grp_tres.mem) == (16, 65536, 1024 * 1024)
    assert config.priority.favor_small is False and config.priority.max_age == 86400


@pytest.mark.parametrize(("text", "says"), [
    ('MaxTRESPerUser = "cpu=1_000"', "qos.normal.MaxTRESPerUser: cpu=1_000 must be a whole number from 0 to 2147483647"),
    ('MaxTRESPerUser = "cpu=2147483648"', "cpu=2147483648 must be a whole number from 0 to 2147483647"),
    ('MaxTRESPerUser = "cpu=\u0663"', "must be a whole number from 0"),
    ('GrpTRES = { cpu = true }', "qos.normal.GrpTRES.cpu: must be a whole number written as a TOML integer"),
    ("[backfill]\nEnabled = 'yes'", "backfill.Enabled: must be a TOML boolean (true or false, without quotes), "
                                    "not the string 'yes'"),
    ("[partitions.p]\nDefault = 1", "partitions.p.Default: must be a TOML boolean"),
])
def test_tres_counts_and_booleans_are_checked_as_strictly(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[qos.normal]\n" + text + "\n")
    assert says in str(caught.value)


# Each bound: counts fit the database's 32-bit INTEGER columns, memory (MB) is bounded as
# CONDUCTOR_MEMORY_MB, Slurm's own narrower ranges (PriorityTier, weights) stay.
BOUNDS = [
    ("partitions.p", "MaxCPUsPerNode", 2**31 - 1), ("partitions.p", "PriorityTier", 65533),
    ("partitions.p", "PriorityJobFactor", 65533),
    ('nodes."n1"', "CPUs", 100_000), ('nodes."n1"', "RealMemory", 2**40), ('nodes."n1"', "Weight", 2**31 - 1),
    ("qos.normal", "Priority", 2**31 - 1), ("qos.normal", "MaxJobsPerUser", 2**31 - 1),
    ("qos.normal", "MaxSubmitJobsPerUser", 2**31 - 1), ("qos.normal.MaxTRESPerUser", "cpu", 2**31 - 1),
    ("qos.normal.GrpTRES", "mem", 2**31 - 1), ("priority", "PriorityWeightAge", 2**32 - 1),
    ("priority", "PriorityWeightQOS", 2**32 - 1), ("backfill", "Depth", 100_000), ("backfill", "MaxJobTest", 1_000_000),
]


@pytest.mark.parametrize(("table", "key", "bound"), BOUNDS)
def test_every_count_has_an_upper_bound(table: str, key: str, bound: int) -> None:
    parse_config(f"[{table}]\n{key} = {bound}\n")
    for value in (bound + 1, 2**64):
        with pytest.raises(ConfigError, match=rf"line 2: .*{key}: Input should be less than or equal to {bound}$"):
            parse_config(f"[{table}]\n{key} = {value}\n")


def test_the_list_of_bounds_is_every_integer() -> None:
    assert {key for _, key, _ in BOUNDS} >= {key for _, key in INTEGERS} - {
        "PriorityWeightFairshare", "PriorityWeightJobSize", "PriorityWeightPartition"  # as PriorityWeightAge
    }
    for schema in MODELS:
        for name in _integers(schema):
            info = next(i for n, i in schema.model_fields.items() if (i.alias or n) == name)
            assert any(hasattr(m, "le") for m in info.metadata), f"{schema.__name__}.{name} has no upper bound"


def test_a_node_table_must_name_nodes() -> None:
    with pytest.raises(ConfigError, match=r"nodes: a \[nodes\.\*\] table needs a host list as its name"):
        parse_config('[nodes.""]\nCPUs = 2\n')


def _has_node_as_before(nodes: str | list[str], name: str) -> bool:
    """Partition.has_node as it was, expanding at every call."""
    from conductor.domain.hostlist import expand_hostlist

    for item in [nodes] if isinstance(nodes, str) else nodes:
        if item.upper() == "ALL":
            return True
        if any(c in item for c in "*?"):
            if fnmatch.fnmatchcase(name, item):
                return True
        elif name in expand_hostlist(item, field="Nodes"):
            return True
    return False


def test_a_partition_expands_its_host_lists_once(monkeypatch: pytest.MonkeyPatch) -> None:
    partition = model.Partition.model_validate({"Nodes": ["node[001-500]", "gpu*", "x,y"]})
    calls: list[str] = []
    expand = model.expand_hostlist

    def counted(expr: str, *, field: str = "nodes", max_hosts: int = 100_000) -> list[str]:
        calls.append(expr)
        return expand(expr, field=field, max_hosts=max_hosts)

    monkeypatch.setattr(model, "expand_hostlist", counted)
    for n in range(1000):
        partition.has_node(f"node{n:03d}")
    assert sorted(calls) == ["node[001-500]", "x,y"]


@pytest.mark.parametrize("nodes", [
    "ALL", "all", "node[01-04]", ["gpu*", "node05"], ["n[1-3]", "g?", "ALL"], "", ["a,b", "c[1-2]"], ["*"],
])
def test_has_node_answers_as_before_and_equality_ignores_the_cache(nodes: str | list[str]) -> None:
    partition = model.Partition.model_validate({"Nodes": nodes})
    fresh = model.Partition.model_validate({"Nodes": nodes})
    for name in ("node01", "node05", "node5", "gpu1", "g7", "n2", "a", "c2", "ALL", "all", ""):
        assert partition.has_node(name) == _has_node_as_before(nodes, name), name
    assert partition == fresh and partition.model_dump() == fresh.model_dump()
    # A copy with other nodes answers for its own nodes, not from the copied cache.
    other = partition.model_copy(update={"nodes": "zz1"})
    assert other.has_node("zz1") and (not other.has_node("node01"))


def test_an_empty_conductor_config_is_said_to_be_empty() -> None:
    # Path("") is ".": the setting read as the current directory, "not a regular file".
    with pytest.raises(ConfigError, match="^CONDUCTOR_CONFIG is set but empty: give the configuration file's path"):
        config_setting("")
    assert config_setting(None) is None
    assert config_setting("/etc/conductor/cluster.toml") == Path("/etc/conductor/cluster.toml")


def test_a_node_in_no_partition_of_the_file_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from conductor.config.live import LiveConfig
    from conductor.scheduler.policy import NodeView

    path = tmp_path / "cluster.toml"
    path.write_text('[partitions.debug]\nNodes = "cn[001-016]"\n')
    live = LiveConfig(path)

    def views() -> list[NodeView]:
        return [NodeView(name, (0,), [0], 100, 100, frozenset({"mine"})) for name in ("cn001", "vm")]

    with caplog.at_level("WARNING", logger="conductor.config"):
        first = live.assign(views())
        live.assign(views())
    assert [n.partitions for n in first] == [frozenset({"debug"}), frozenset()]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["node vm is in no partition of the configuration file (no partition's Nodes names it): "
                        "no job runs on it"]


def test_reconfig_flags_take_slurms_words() -> None:
    assert not parse_config("").keeps_partition_states()
    assert parse_config('ReconfigFlags = "KeepPartState"\n').keeps_partition_states()
    assert parse_config('ReconfigFlags = "keeppartinfo"\n').keeps_partition_states()
    with pytest.raises(ConfigError, match="line 1: ReconfigFlags: unknown flag 'KeepNodes'"):
        parse_config('ReconfigFlags = "KeepNodes"\n')


def test_a_list_of_host_lists_is_bounded_in_all() -> None:
    """Each item was bounded alone: 30 items of 100,000 hosts passed, and the first
    membership test built 3,000,000 names."""
    many = [f"n{i}x[1-60000]" for i in range(2)]
    with pytest.raises(ValueError, match="more than the maximum of 100000 hosts in all"):
        model.Partition.model_validate({"Nodes": many})
    assert model.Partition.model_validate({"Nodes": ["a[1-50000]", "b[1-50000]"]}).has_node("b50000")
