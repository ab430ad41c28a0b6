"""A real dhcpd 4.4 facing an endpoint of the test process instead of its partner's dhcpd.

``PairConfig(external=ROLE)`` builds the whole network but starts no dhcpd for ROLE; the
test makes sockets in ROLE's namespace (tests/integration/netns.py) where that dhcpd would
listen or connect from. This is where our own failover implementation will meet a real
partner; here the first message is decoded by hand with struct (no codec of ours):

* a real primary connects to the secondary's failover port (again every 5 s while refused),
  and on any connection, made or accepted, sends CONNECT first;
* a real secondary sends nothing on a connection, and drops it after the 15-s link startup
  timeout if no CONNECT came.

dhcpd 4.4 logs nothing when a failover connection is made or accepted; it logs a connection
from an address that is not its peer's ("failover: listener: no matching state") and the
startup timeout ("failover: link startup timeout").
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from dhcpfoctl.conf import read_config
from dhcpfoctl.model import FailoverState

from .netns import (
    NamespaceNotFound,
    namespace_path,
    socket_in_namespace,
    socket_namespace_inode,
)
from .realpair import ExternalRoleError, LabError, PairConfig, RealPair

integration = pytest.mark.integration

#: Not the default "lab": the CONNECT must carry the name the conf gives.
RELATIONSHIP = "ext-proof"
#: length (whole message), type, payload offset, time, xid: dhcpd's failover header.
HEADER = struct.Struct("!HBBII")
FTM_CONNECT = 5
FTO_RELATIONSHIP_NAME = 22
FTO_VENDOR_CLASS = 28
#: dhcpd retries a refused connection after 5 s; the link startup timeout is 15 s.
ACCEPT_TIMEOUT = 20.0
STARTUP_TIMEOUT_BOUND = 25.0


def _recv_exact(sock: socket.socket, count: int, deadline: float) -> bytes:
    data = b""
    for _ in range(count + 1):  # every round trip gets at least one byte or ends
        if len(data) == count:
            return data
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise AssertionError(f"peer closed after {len(data)} of {count} bytes")
        data += chunk
    raise AssertionError("unreachable")


def _read_message(sock: socket.socket, timeout: float = 5.0) -> tuple[int, int, bytes]:
    """(type, declared length, whole message) of the next failover message on ``sock``."""
    deadline = time.monotonic() + timeout
    header = _recv_exact(sock, HEADER.size, deadline)
    length, kind, payload_offset, _time, _xid = HEADER.unpack(header)
    assert HEADER.size <= payload_offset <= length
    return kind, length, header + _recv_exact(sock, length - HEADER.size, deadline)


def _options(message: bytes) -> dict[int, bytes]:
    """The options of a message: 2-byte code, 2-byte length, data (network order)."""
    offset = message[3]
    found: dict[int, bytes] = {}
    while offset < len(message):
        code, size = struct.unpack_from("!HH", message, offset)
        found[code] = message[offset + 4 : offset + 4 + size]
        offset += 4 + size
    assert offset == len(message), "options overrun the declared length"
    return found


def _assert_connect(message: tuple[int, int, bytes]) -> dict[int, bytes]:
    kind, length, whole = message
    assert kind == FTM_CONNECT
    assert length == len(whole)
    options = _options(whole)
    assert options[FTO_RELATIONSHIP_NAME] == RELATIONSHIP.encode()
    return options


def _silent_for(sock: socket.socket, seconds: float) -> bool:
    readable, _, _ = select.select([sock], [], [], seconds)
    return not readable


def _closed_by_peer_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the peer closes (EOF or reset) within ``seconds``, sending nothing."""
    sock.settimeout(seconds)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    assert data == b"", f"unexpected bytes from the peer: {data!r}"
    return True


def _in_namespace(sock: socket.socket, namespace: str) -> bool:
    inode = socket_namespace_inode(sock)
    assert inode is not None, "kernel does not tell a socket's namespace (SIOCGSKNS)"
    return inode == os.stat(namespace_path(namespace)).st_ino


def _leftovers(prefix: str) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    links = os.listdir("/sys/class/net")
    return [name for name in [*names, *links] if name.startswith(prefix)]


@integration
def test_real_primary_sends_connect_to_our_endpoint_in_the_secondary_namespace(
    require_real_dhcpd: None,
) -> None:
    sockets: list[socket.socket] = []
    with RealPair(PairConfig(relationship=RELATIONSHIP, external="secondary")) as pair:
        ours, real = pair.secondary, pair.primary
        assert pair.external is ours and ours.external and not real.external
        assert ours.pid is None and real.pid is not None
        # The harness refuses what needs a dhcpd on the external side, clearly.
        for attempt in (
            lambda: pair.omapi_states("secondary"),
            lambda: pair.wait_states(secondary=FailoverState.NORMAL, timeout=1),
            lambda: pair.start("secondary"),
            lambda: pair.restart("secondary"),
        ):
            with pytest.raises(ExternalRoleError, match="secondary is external"):
                attempt()
        # Our endpoint reads the same dhcpd.conf with dhcpfoctl's reader.
        peer = read_config(ours.conf_path).failover_peers[RELATIONSHIP]
        assert (peer.role, peer.address, peer.port) == (
            "secondary",
            ours.failover_address,
            ours.failover_port,
        )
        assert (peer.peer_address, peer.peer_port) == (real.failover_address, real.failover_port)

        try:
            # 1. Listen where the secondary's dhcpd would; the primary's retry comes to us.
            listener = pair.external_listener()
            sockets.append(listener)
            assert _in_namespace(listener, ours.namespace)
            listener.settimeout(ACCEPT_TIMEOUT)
            waited = time.monotonic()
            accepted, remote = listener.accept()
            sockets.append(accepted)
            waited = time.monotonic() - waited
            assert remote[0] == real.failover_address
            assert accepted.getsockname() == (ours.failover_address, ours.failover_port)
            options = _assert_connect(_read_message(accepted))
            assert options[FTO_VENDOR_CLASS].startswith(b"isc-4.4")
            print(f"primary connected to our listener after {waited:.1f}s")
            accepted.close()
            listener.close()

            # 2. Connect out from the secondary's namespace (connect() runs in this thread):
            # the source is the secondary's failover address, so dhcpd matches its peer.
            before = len(pair.log_lines("primary"))
            outgoing = pair.external_connect(timeout=5)
            sockets.append(outgoing)
            assert _in_namespace(outgoing, ours.namespace)
            assert outgoing.getsockname()[0] == ours.failover_address
            assert outgoing.getpeername() == (real.failover_address, real.failover_port)
            _assert_connect(_read_message(outgoing))
            outgoing.close()

            # 3. The same connect from the root namespace arrives from another address:
            # dhcpd finds no peer for it, says so and drops it. So (2) really went through
            # the secondary's namespace.
            stray = socket.create_connection((real.failover_address, real.failover_port), 5)
            sockets.append(stray)
            assert stray.getsockname()[0] != ours.failover_address
            assert _closed_by_peer_within(stray, 5)
            stray.close()
            pair.wait_for(
                lambda: any(
                    "failover: listener: no matching state" in line
                    for line in pair.log_lines("primary")[before:]
                ),
                5,
                what="the primary to log the stray connection",
            )
            # Neither in-namespace connection was logged as a stray one.
            strays = [line for line in pair.log_lines("primary") if "no matching state" in line]
            assert len(strays) == 1
        finally:
            for sock in sockets:
                sock.close()
        prefix = pair.prefix
    assert all(sock.fileno() == -1 for sock in sockets)
    assert _leftovers(prefix) == []


@integration
def test_real_secondary_waits_for_connect_and_drops_a_silent_peer(
    require_real_dhcpd: None, tmp_path: Path
) -> None:
    sockets: list[socket.socket] = []
    with RealPair(PairConfig(relationship=RELATIONSHIP, external="primary")) as pair:
        ours, real = pair.primary, pair.secondary
        assert ours.pid is None and real.pid is not None
        pair.stop("primary")  # nothing to stop: a no-op
        assert not pair.is_running("primary") and pair.is_running("secondary")
        snapshot = pair.snapshot(tmp_path)  # freezes the one dhcpd; copies both confs
        assert snapshot.files["primary"].conf.read_text() == ours.conf_path.read_text()
        assert read_config(snapshot.files["primary"].conf).failover_peers[RELATIONSHIP].is_primary
        with pytest.raises(ExternalRoleError, match="primary is external"):
            pair.omapi_states("primary")
        view = pair.omapi_states("secondary")  # the real one still answers OMAPI
        assert view is not None and view.local_state != FailoverState.NORMAL
        try:
            connection = pair.external_connect(timeout=5)
            sockets.append(connection)
            connected = time.monotonic()
            assert _in_namespace(connection, ours.namespace)
            assert connection.getsockname()[0] == ours.failover_address
            assert connection.getpeername() == (real.failover_address, real.failover_port)
            # The secondary never speaks first: it waits for the primary's CONNECT ...
            assert _silent_for(connection, 2.0)
            # ... for 15 s, then drops the link and logs it.
            assert _closed_by_peer_within(connection, STARTUP_TIMEOUT_BOUND)
            dropped_after = time.monotonic() - connected
            assert 13 <= dropped_after <= STARTUP_TIMEOUT_BOUND
            print(f"secondary dropped our silent connection after {dropped_after:.1f}s")
            pair.wait_for(
                lambda: any(
                    "failover: link startup timeout" in line for line in pair.log_lines("secondary")
                ),
                5,
                what="the secondary to log the link startup timeout",
            )
        finally:
            for sock in sockets:
                sock.close()
        prefix = pair.prefix
    assert all(sock.fileno() == -1 for sock in sockets)
    assert _leftovers(prefix) == []


@integration
def test_external_sockets_need_an_external_role(real_pair: RealPair) -> None:
    assert real_pair.external is None
    with pytest.raises(LabError, match="no external role"):
        real_pair.external_listener()


def test_a_missing_namespace_is_named_in_the_error() -> None:
    with pytest.raises(NamespaceNotFound, match="dfo-no-such-ns"):
        socket_in_namespace("dfo-no-such-ns")
    with pytest.raises(NamespaceNotFound):
        namespace_path("../etc")


def test_external_must_be_a_role() -> None:
    with pytest.raises(ValueError, match="external must be one of"):
        RealPair(PairConfig(external="tertiary"))  # type: ignore[arg-type]
