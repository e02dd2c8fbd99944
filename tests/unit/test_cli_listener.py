"""Who listens at a local address (cli/listener.py): read from the kernel's socket tables."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from conductor.cli import listener
from conductor.cli.listener import listener_uids, table_uids, uid_min

HEADING = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def test_listeners_are_read_from_the_socket_tables(tmp_path: Path) -> None:
    tcp, tcp6 = tmp_path / "tcp", tmp_path / "tcp6"
    tcp.write_text(
        HEADING
        + "   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 1 1\n"
        # Connected, not listening; and listening on another port, or on another address.
        + "   1: 0100007F:1F40 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1002        0 2 1\n"
        + "   2: 0100007F:1F41 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1003        0 3 1\n"
        + "   3: 0200007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1004        0 4 1\n"
    )
    tcp6.write_text(
        HEADING
        + "   0: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A "
        "00000000:00000000 00:00000000 00000000   1005        0 5 1\n"
    )
    assert table_uids("127.0.0.1", 8000, (str(tcp), str(tcp6))) == {1001, 1005}
    assert table_uids("127.0.0.1", 8002, (str(tcp), str(tcp6))) == set()
    assert table_uids("127.0.0.1", 8000, (str(tmp_path / "none"),)) is None


def test_a_real_listener_is_found_whatever_address_it_is_bound_to() -> None:
    for family, address, asked in (
        (socket.AF_INET, "127.0.0.1", "127.0.0.1"),
        (socket.AF_INET, "0.0.0.0", "127.0.0.1"),
        (socket.AF_INET6, "::", "127.0.0.1"),
        (socket.AF_INET6, "::1", "::1"),
        (socket.AF_INET6, "::1", "localhost"),
        (socket.AF_INET, "127.0.0.1", "localhost"),
    ):
        with socket.socket(family) as sock:
            sock.bind((address, 0))
            port = sock.getsockname()[1]
            assert listener_uids(asked, port) == set() == table_uids(asked, port)  # bound, not listening yet
            sock.listen()
            # Asked of the kernel (sock_diag), and read from its tables: the same answer.
            assert listener_uids(asked, port) == {os.getuid()} == table_uids(asked, port), (address, asked)
    with socket.socket(socket.AF_INET6) as sock:  # ::1 alone is not 127.0.0.1
        sock.bind(("::1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert listener_uids("127.0.0.1", port) == set() == table_uids("127.0.0.1", port)


def test_the_first_login_uid_comes_from_login_defs(tmp_path: Path) -> None:
    defs = tmp_path / "login.defs"
    defs.write_text("# UID_MIN 5\nMAIL_DIR /var/mail\nUID_MIN\t\t\t 2000\n")
    assert uid_min(str(defs)) == 2000
    assert uid_min(str(tmp_path / "none")) == 1000


def test_without_sock_diag_the_tables_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(family: int) -> list[tuple[bytes, int, int]]:
        raise OSError("no netlink here")

    monkeypatch.setattr(listener, "_diag_listeners", refused)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert listener_uids("127.0.0.1", sock.getsockname()[1]) == {os.getuid()}
