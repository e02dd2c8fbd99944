"""Who listens at a local address: the CLI's token goes only to a server it may trust there.

Without CONDUCTOR_URL, the CLI sends its token to the profile's URL, where `conductor up`
listened, or to the default address, 127.0.0.1:8000. Any local user may listen there while the
server is down or runs elsewhere, and would be sent the token. So before it connects to an
address of this host, the CLI asks the kernel who owns the listening socket (sock_diag over
netlink, as `ss -l` does: a third of a millisecond, where reading /proc/net/tcp took 13 ms on a
small virtual machine; the tables remain the fallback): root, a system account (the user a
service runs as, below the login users' UID_MIN) or the caller. Anyone else is refused, by
name: a user who means another user's server names it in CONDUCTOR_URL. Where neither can be
read (not Linux), nothing is checked.
"""

from __future__ import annotations

import _socket
import os
import struct
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
    # The tables print an address as the native-endian words of its network-order bytes.
    return f"{int.from_bytes(_socket.inet_aton(address), sys.byteorder):08X}"


def _hex6(packed: bytes) -> str:
    return "".join(f"{int.from_bytes(packed[i : i + 4], sys.byteorder):08X}" for i in range(0, 16, 4))


def _addresses(host: str) -> set[str]:
    """How the tables write the addresses a connection to `host` may reach: its own, and any."""
    if host.lower() == "localhost":
        return _addresses("127.0.0.1") | _addresses("::1")
    if ":" in host:
        return {_hex6(_socket.inet_pton(_socket.AF_INET6, host)), _ANY6}
    return {_hex4(host), _ANY4, _hex6(bytes(10) + b"\xff\xff" + _socket.inet_aton(host)), _ANY6}


def _network_order(address: str) -> bytes:
    """An address as the tables write it, as the bytes sock_diag gives (network order)."""
    return b"".join(int(address[i : i + 8], 16).to_bytes(4, sys.byteorder) for i in range(0, len(address), 8))


def listener_uids(host: str, port: int) -> set[int] | None:
    """The owners of the sockets listening where a connection to `host`:`port` (an address of
    this host, or localhost) would go: bound to it or to any address. None when the kernel
    cannot be asked."""
    wanted = {_network_order(address) for address in _addresses(host)}
    try:
        found = _diag_listeners(_socket.AF_INET) + _diag_listeners(_socket.AF_INET6)
    except OSError:
        return table_uids(host, port)
    return {uid for bound, listening, uid in found if listening == port and bound in wanted}


# sock_diag (linux/sock_diag.h, linux/inet_diag.h): a dump of the TCP sockets in state LISTEN.
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_DUMP_REQUEST = 0x301  # NLM_F_REQUEST | NLM_F_DUMP
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
# inet_diag_msg: family, state, timer, retrans (4 bytes); its socket's id: source port (2),
# destination port (2), source address (16), ... (48 bytes in all); expires and two queue
# lengths (12 bytes); then the owner's uid.
_DIAG_PORT, _DIAG_ADDRESS, _DIAG_UID = 4, 8, 64


def _diag_listeners(family: int) -> list[tuple[bytes, int, int]]:
    """(bound address in network order, port, owner's uid) of each listening TCP socket."""
    request = struct.pack("=BBBBI", family, 6, 0, 0, 1 << _TCP_LISTEN) + bytes(48)  # IPPROTO_TCP, any socket
    size = 4 if family == _socket.AF_INET else 16
    sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    try:
        sock.settimeout(2.0)
        header = _HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_DUMP_REQUEST, 1, 0)
        sock.sendto(header + request, (0, 0))
        found: list[tuple[bytes, int, int]] = []
        while data := sock.recv(1 << 16):
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind = _HEADER.unpack_from(data, offset)[:2]
                if kind == _NLMSG_DONE:
                    return found
                if kind == _NLMSG_ERROR or length < _HEADER.size:
                    raise OSError("sock_diag refused the dump")
                at = offset + _HEADER.size
                if length >= _HEADER.size + _DIAG_UID + 4 and data[at + 1] == _TCP_LISTEN:
                    port = int.from_bytes(data[at + _DIAG_PORT : at + _DIAG_PORT + 2], "big")
                    bound = data[at + _DIAG_ADDRESS : at + _DIAG_ADDRESS + size]
                    uid = int.from_bytes(data[at + _DIAG_UID : at + _DIAG_UID + 4], sys.byteorder)
                    found.append((bound, port, uid))
                offset += (length + 3) & ~3
        return found
    finally:
        sock.close()


def table_uids(host: str, port: int, tables: Iterable[str] = ("/proc/net/tcp", "/proc/net/tcp6")) -> set[int] | None:
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
