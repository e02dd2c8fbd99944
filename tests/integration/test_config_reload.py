"""Reloading the cluster configuration through the database's generation, on each backend: a
process takes a new file when the generation moves, keeps the old one when the new file is bad,
and sees partition states set elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.config.live import LiveConfig
from conductor.config.loader import ConfigError
from conductor.store import Store

FILE = '[partitions.debug]\nNodes = "ALL"\nMaxTime = "{limit}"\n'


def test_a_new_generation_reloads_the_file_and_a_bad_file_keeps_the_old(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "cluster.toml"
    path.write_text(FILE.format(limit="1:00:00"))
    first = LiveConfig(path, store, check_every=0)
    other = LiveConfig(path, store, check_every=0)  # another server of the same cluster
    assert first.limits().partitions["debug"].max_time == 3600  # type: ignore[union-attr]

    path.write_text(FILE.format(limit="2:00:00"))
    assert not other.refresh()  # the file alone changes nothing until reconfigure
    store.bump_config_generation()
    assert other.refresh() and first.refresh()
    assert other.limits().partitions["debug"].max_time == 7200  # type: ignore[union-attr]

    path.write_text(FILE.format(limit="whenever"))
    with pytest.raises(ConfigError, match="line 3: partitions.debug.MaxTime"):
        first.check_file()
    store.bump_config_generation()  # as if another server had not checked it
    assert other.refresh()
    assert other.limits().partitions["debug"].max_time == 7200  # type: ignore[union-attr]


def test_partition_states_reach_every_process(store: Store) -> None:
    one, two = LiveConfig(None, store, check_every=0), LiveConfig(None, store, check_every=0)
    assert one.limits() is None
    generation = store.set_partition_state("debug", "DOWN")
    assert generation == one.generation() + 1
    assert two.refresh()
    assert two.current.partition_state("debug") == "DOWN"
    store.set_partition_state("debug", "UP")
    assert two.refresh() and two.current.partition_state("debug") == "UP"
    assert store.config_state() == (generation + 1, {"debug": "UP"})


def test_only_a_reconfigure_rereads_the_file_and_accounts_reach_every_process(store: Store, tmp_path: Path) -> None:
    from conductor.domain.accounting import Account, AssocLimits

    path = tmp_path / "cluster.toml"
    path.write_text(FILE.format(limit="1:00:00"))
    other = LiveConfig(path, store, check_every=0)
    path.write_text(FILE.format(limit="2:00:00"))  # edited, not yet reconfigured
    store.add_accounts([Account("physics", limits=AssocLimits(max_jobs=3))])
    store.set_partition_state("debug", "DRAIN")
    assert other.refresh()
    # The account and the state arrive; the edited file does not.
    assert other.current.accounting.accounts["physics"].limits.max_jobs == 3
    assert other.current.partition_state("debug") == "DRAIN"
    assert other.limits().partitions["debug"].max_time == 3600  # type: ignore[union-attr]
    store.bump_config_generation()
    assert other.refresh()
    assert other.limits().partitions["debug"].max_time == 7200  # type: ignore[union-attr]
    assert other.limits().accounting is not None  # type: ignore[union-attr]


def test_a_reconfigure_puts_the_files_partition_states_back_unless_told_to_keep_them(
    store: Store, tmp_path: Path
) -> None:
    # Slurm's scontrol reconfigure resets what scontrol update set, unless ReconfigFlags says
    # KeepPartState: else a State edited in the file would never take effect again.
    path = tmp_path / "cluster.toml"
    path.write_text('[partitions.debug]\nNodes = "ALL"\nState = "DOWN"\n')
    live = LiveConfig(path, store, check_every=0)
    store.set_partition_state("debug", "UP")
    assert live.refresh() and live.current.partition_state("debug") == "UP"
    store.bump_config_generation()
    assert live.refresh() and live.current.partition_state("debug") == "DOWN"
    assert store.config_state()[1] == {}
    store.set_partition_state("debug", "DRAIN")
    store.bump_config_generation(keep_partition_states=True)
    assert live.refresh() and live.current.partition_state("debug") == "DRAIN"
