"""The per-user profile (cli/profile.py) and the order in which the CLI picks its URL and token."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from conductor.cli import client, profile


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CONDUCTOR_URL", "CONDUCTOR_TOKEN", "CONDUCTOR_HOME"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # no ./.conductor here
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # nor a ~/.conductor
    return config


def test_record_writes_private_files_in_a_private_directory(xdg: Path) -> None:
    os.umask(0o022)
    directory = profile.record("http://127.0.0.1:8123/", "cond_secret")
    assert directory == str(xdg / "conductor")
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for name, text in (("url", "http://127.0.0.1:8123"), ("token", "cond_secret")):
        path = xdg / "conductor" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert path.read_text() == text + "\n"


def test_record_closes_an_existing_open_directory(xdg: Path) -> None:
    (xdg / "conductor").mkdir(parents=True, mode=0o755)
    os.chmod(xdg / "conductor", 0o755)
    profile.record("http://127.0.0.1:1", "cond_x")
    assert stat.S_IMODE(os.stat(xdg / "conductor").st_mode) == 0o700


def test_the_profile_gives_url_and_token(xdg: Path) -> None:
    assert client.base_url() == client.DEFAULT_URL
    assert client.read_token() is None
    profile.record("http://127.0.0.1:8123", "cond_mine")
    assert client.base_url() == "http://127.0.0.1:8123"
    assert client.read_token() == "cond_mine"
    assert client.Client()._token == "cond_mine"


def test_environment_wins_over_the_profile(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile.record("http://127.0.0.1:8123", "cond_mine")
    monkeypatch.setenv("CONDUCTOR_URL", "http://127.0.0.1:9999")
    assert client.base_url() == "http://127.0.0.1:9999"
    monkeypatch.setenv("CONDUCTOR_TOKEN", "cond_env")
    assert client.read_token() == "cond_env"


def test_the_profile_token_goes_only_to_the_profile_server(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile.record("http://127.0.0.1:8123", "cond_mine")
    monkeypatch.setenv("CONDUCTOR_URL", "http://elsewhere.example:8123")
    assert client.read_token() is None
    # The legacy ./.conductor/token still serves such a URL.
    legacy = Path(".conductor")
    legacy.mkdir(mode=0o700)
    (legacy / "token").write_text("cond_legacy\n")
    os.chmod(legacy / "token", 0o600)
    assert client.read_token() == "cond_legacy"
    monkeypatch.setenv("CONDUCTOR_URL", "http://127.0.0.1:8123/")
    assert client.read_token() == "cond_mine"  # the profile comes before the legacy file


def test_a_token_saved_by_hand_without_url_serves_any_server(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (xdg / "conductor").mkdir(parents=True, mode=0o700)
    (xdg / "conductor" / "token").write_text("cond_given\n")
    os.chmod(xdg / "conductor" / "token", 0o600)
    monkeypatch.setenv("CONDUCTOR_URL", "http://cluster.example:8000")
    assert client.read_token() == "cond_given"


def test_a_profile_writable_by_others_is_skipped(xdg: Path, capfd: pytest.CaptureFixture[str]) -> None:
    profile.record("http://127.0.0.1:8123", "cond_mine")
    os.chmod(xdg / "conductor" / "url", 0o666)
    assert client.base_url() == client.DEFAULT_URL
    assert "not using the url in" in capfd.readouterr().err


def test_a_relative_xdg_config_home_is_ignored(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    assert profile.profile_dir() == os.path.join(os.path.expanduser("~"), ".config", "conductor")


def test_the_message_without_token_says_where_to_get_and_put_one(xdg: Path) -> None:
    message = client.no_token_message("http://127.0.0.1:8123")
    assert "conductor token create --user" in message
    assert str(xdg / "conductor" / "token") in message and "CONDUCTOR_TOKEN" in message
    assert "\n" not in message
