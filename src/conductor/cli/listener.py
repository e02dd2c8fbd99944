"""Who listens at a local address: the CLI's token goes only to a server it may trust there.

Without CONDUCTOR_URL, the CLI sends its token to the profile's URL, where `conductor up`
listened, or to the default address, 127.0.0.1:8000. Any local user may listen there while the
server is down or runs elsewhere, and would be sent the token. So before it connects to an
address of this host, the CLI reads who owns the listening socket in the kernel's socket
tables (/proc/net/tcp and tcp6): root, a system account (the user a service runs as, below the
login users' UID_MIN) or the caller. Anyone else is refused, by name: a user who means another
user's server names it in CONDUCTOR_URL. Where the tables cannot be read (not Linux), nothing
is checked.
"""

from __future__ import annotations

import os
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

_LISTEN = "0A"  # TCP_LISTEN in the tables' `st` column
_ANY4 = "00000000"
_ANY6 = "0" * 32
LOGIN_DEFS = "/etc/login.defs"
_DEFAULT_UID_MIN = 1000  # login.defs' own default


def _hex4(address: str) -> str:
    # The kernel prints an address as the native-endian words of its network-order bytes.
    return f"{int.from_bytes(socket.inet_aton(address), sys.byteorder):08X}"


def _hex6(packed: bytes) -> str:
    return "".join(f"{int.from_bytes(packed[i : i + 4], sys.byteorder):08X}" for i in range(0, 16, 4))


def _addresses(host: str) -> set[str]:
    """How the tables write the addresses a connection to `host` may reach: its own, and any."""
    if host.lower() == "localhost":
        return _addresses("127.0.0.1") | _addresses("::1")
    if ":" in host:
        return {_hex6(socket.inet_pton(socket.AF_INET6, host)), _ANY6}
    return {_hex4(host), _ANY4, _hex6(bytes(10) + b"\xff\xff" + socket.inet_aton(host)), _ANY6}


def listener_uids(host: str, port: int, tables: Iterable[str] = ("/proc/net/tcp", "/proc/net/tcp6")) -> set[int] | None:
    """The owners of the sockets listening where a connection to `host`:`port` (an address of
    this host, or localhost) would go: bound to it or to any address. None when the tables
    cannot be read."""
    wanted = {f"{address}:{port:04X}" for address in _addresses(host)}
    owners: set[int] = set()
    read_any = False
    for table in tables:
        try:
            with open(table, encoding="ascii", errors="replace") as lines:
                next(lines, None)  # the heading
                read_any = True
                for line in lines:
                    fields = line.split()
                    # sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
                    if len(fields) > 7 and fields[3] == _LISTEN and fields[1] in wanted and fields[7].isdigit():
                        owners.add(int(fields[7]))
        except OSError:
            continue
    return owners if read_any else None


def uid_min(path: str = LOGIN_DEFS) -> int:
    """The first uid of login users (login.defs' UID_MIN): those below are root's and the
    system accounts services run as."""
    try:
        with open(path, encoding="utf-8", errors="replace") as defs:
            for line in defs:
                fields = line.split()
                if len(fields) >= 2 and fields[0] == "UID_MIN" and fields[1].isdigit():
                    return int(fields[1])
    except OSError:
        pass
    return _DEFAULT_UID_MIN


def untrusted_listener(host: str, port: int) -> str | None:
    """Whose listening socket at `host`:`port` the caller must not send a token to ("user NAME
    (uid N)"), or None: nobody listens, or only root, system accounts or the caller."""
    owners = listener_uids(host, port)
    if not owners:
        return None
    me, first_login = os.getuid(), uid_min()
    for uid in sorted(owners):
        if uid != me and uid >= first_login:
            import pwd

            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                return f"uid {uid}"
            return f"user {name} (uid {uid})"
    return None
