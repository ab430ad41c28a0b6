"""The blocking OMAPI client against the fake server: success, every error path, timeouts."""

from __future__ import annotations

import socket
import time

import pytest

from dhcpfoctl.checks.gather import connect, query_server, tcp_port_open
from dhcpfoctl.errors import ExitStatus, RemoteError
from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.errors import (
    InvalidKeyError,
    NoKeysError,
    NotFoundError,
    ProtocolError,
    TimedOutError,
    UnreachableError,
)
from dhcpfoctl.omapi.failover import (
    FailoverInfo,
    read_failover,
    read_pool_counts,
    write_local_state,
)
from dhcpfoctl.profile import ServerSpec
from tests.fake_omapi import LAB_KEY_SECRET, FakeFailover, FakeOmapiServer, FakePool

KEY = OmapiKey("lab-key", "hmac-md5", Secret(LAB_KEY_SECRET))
SHA_KEY = OmapiKey("sha-key", "hmac-sha256", Secret(b"0123456789abcdef0123456789abcdef"))


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("key", [None, KEY, SHA_KEY], ids=["unsigned", "md5", "sha256"])
def test_read_refresh_write_and_pool_counts(key: OmapiKey | None) -> None:
    fake = FakeOmapiServer(
        {"lab": FakeFailover(local_state=3)},
        key=key,
        pools={"10.99.0.100": FakePool(151, 70, 71)},
    )
    with fake, OmapiClient("127.0.0.1", fake.port, key, timeout=2) as client:
        assert client.signed == (key is not None)
        info = read_failover(client, "lab")
        assert info.local_state == FailoverState.COMMUNICATIONS_INTERRUPTED
        write_local_state(client, info, FailoverState.PARTNER_DOWN)
        refreshed = client.refresh(info.handle, "re-reading failover-state")
        assert refreshed.handle == info.handle
        after = FailoverInfo.from_object(refreshed, client.endpoint)
        assert after.local_state == FailoverState.PARTNER_DOWN
        counts = read_pool_counts(client, "10.99.0.100")
        assert (counts.lease_count, counts.free_leases, counts.backup_leases) == (151, 70, 71)
    written = [m for m in fake.received if m.opcode == 3]
    assert written[0].obj == [(b"local-state", b"\x00\x00\x00\x04")]


def test_undefined_state_is_never_written() -> None:
    fake = FakeOmapiServer({"lab": FakeFailover(local_state=3)})
    with fake, OmapiClient("127.0.0.1", fake.port, timeout=2) as client:
        info = read_failover(client, "lab")
        with pytest.raises(ValueError, match="undefined failover state 12"):
            write_local_state(client, info, FailoverState(12))
    assert not [m for m in fake.received if m.opcode == 3]


def test_unknown_peer_name_is_not_found_naming_it() -> None:
    with (
        FakeOmapiServer({"lab": FakeFailover()}) as fake,
        OmapiClient("127.0.0.1", fake.port, timeout=2) as client,
        pytest.raises(NotFoundError, match="no failover relationship named 'nope'"),
    ):
        read_failover(client, "nope")


def test_unsigned_to_keyed_server_is_nokeys() -> None:
    with (
        FakeOmapiServer({"lab": FakeFailover()}, key=KEY) as fake,
        OmapiClient("127.0.0.1", fake.port, timeout=2) as client,
        pytest.raises(NoKeysError, match="requires an OMAPI key"),
    ):
        read_failover(client, "lab")


def test_wrong_secret_is_invalid_key_without_the_secret() -> None:
    wrong = OmapiKey("lab-key", "hmac-md5", Secret(b"wrong-secret-xyz"))
    with (
        FakeOmapiServer({"lab": FakeFailover()}, key=KEY) as fake,
        OmapiClient("127.0.0.1", fake.port, wrong, timeout=2) as client,
        pytest.raises(InvalidKeyError) as caught,
    ):
        read_failover(client, "lab")
    assert caught.value.host == client.endpoint
    assert "wrong-secret" not in str(caught.value) and caught.value.exit_status == 5


def test_refused_connection_is_unreachable() -> None:
    port = closed_port()
    with pytest.raises(UnreachableError, match=f"127.0.0.1:{port}: cannot connect"):
        OmapiClient("127.0.0.1", port, timeout=1).connect()


@pytest.mark.parametrize(
    ("behaviour", "error", "match"),
    [
        ("silent", TimedOutError, "OMAPI startup: no answer within 0.3s"),
        ("close", ProtocolError, "OMAPI startup: (server closed|Connection reset)"),
        ("bad-startup", ProtocolError, "not an OMAPI server"),
        ("garbage", ProtocolError, "not an OMAPI server"),
    ],
)
def test_misbehaving_servers_fail_fast_and_cleanly(
    behaviour: str, error: type[RemoteError], match: str
) -> None:
    with FakeOmapiServer(behaviour=behaviour) as fake:
        started = time.monotonic()
        with pytest.raises(error, match=match):
            OmapiClient("127.0.0.1", fake.port, timeout=0.3).connect()
        assert time.monotonic() - started < 2


def test_mute_server_times_out_on_the_request() -> None:
    with (
        FakeOmapiServer({"lab": FakeFailover()}, behaviour="mute") as fake,
        OmapiClient("127.0.0.1", fake.port, timeout=0.3) as client,
        pytest.raises(TimedOutError, match="opening failover-state name='lab': no answer"),
    ):
        read_failover(client, "lab")


def test_shared_key_unknown_to_server_falls_back_to_unsigned() -> None:
    with FakeOmapiServer({"lab": FakeFailover()}) as fake:
        spec = ServerSpec("p", "127.0.0.1", fake.port, KEY, "--key", key_shared=True)
        client, notes = connect(spec, 2)
        with client:
            assert not client.signed
            assert read_failover(client, "lab").local_state == FailoverState.NORMAL
        assert notes == ("does not know the key from --key; queried unsigned",)
        # A key configured for this very server is never silently dropped.
        with pytest.raises(NotFoundError, match="opening the OMAPI key"):
            connect(ServerSpec("p", "127.0.0.1", fake.port, key=KEY), 2)


def test_query_server_turns_failures_into_answer_errors() -> None:
    port = closed_port()
    answer = query_server(ServerSpec("x", "127.0.0.1", port), ["lab"], {}, 1)
    assert answer.error is not None and answer.error.startswith(f"127.0.0.1:{port}: ")
    with FakeOmapiServer({"lab": FakeFailover()}) as fake:
        spec = ServerSpec("p", "127.0.0.1", fake.port)
        answer = query_server(spec, ["lab", "other"], {"lab": ["10.0.0.1"]}, 2)
    assert answer.error is None and set(answer.failover) == {"lab"}
    assert "other" in answer.relationship_errors
    assert answer.pools == {"lab": ()}  # the address is in no pool of this server


def test_tcp_port_probe() -> None:
    assert tcp_port_open("127.0.0.1", closed_port(), 1) is False
    with FakeOmapiServer() as fake:
        assert tcp_port_open("127.0.0.1", fake.port, 1) is True


def test_remote_errors_map_to_exit_status_5() -> None:
    assert UnreachableError("h:1", "x").exit_status == ExitStatus.REMOTE_ERROR
