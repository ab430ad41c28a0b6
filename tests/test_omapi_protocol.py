"""Golden-byte tests of the sans-IO OMAPI core against sessions captured from dhcpd 4.4.3."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypureomapi import InBuffer, OmapiMessage

from dhcpfoctl.keys import ALGORITHMS, OmapiKey, Secret
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi.client_session import ClientSession
from dhcpfoctl.omapi.codec import STARTUP_BYTES, HmacAuthenticator, Op, u32
from dhcpfoctl.omapi.errors import (
    BadSignatureError,
    InvalidKeyError,
    NoKeysError,
    NotFoundError,
    OmapiError,
    ProtocolError,
    Result,
)
from dhcpfoctl.omapi.failover import FailoverInfo
from tests.fake_omapi import LAB_KEY_SECRET, load_vector

LAB_KEY = OmapiKey("lab-key", "hmac-md5", Secret(LAB_KEY_SECRET))
#: omshell's first transaction id in every captured session.
FIRST_ID = 1804289383


def session_after_startup(vector: list[tuple[str, bytes]], key: OmapiKey | None) -> ClientSession:
    """A session that has sent and received the captured startup messages."""
    assert [data for _, data in vector[:2]] == [STARTUP_BYTES, STARTUP_BYTES]
    session = ClientSession("10.98.0.6:7911", key, first_id=FIRST_ID)
    session.receive_data(vector[0][1] if vector[0][0] == "server" else vector[1][1])
    assert session.next_message() is None
    assert session.startup_received
    return session


def feed(session: ClientSession, data: bytes) -> OmapiMessage:
    session.receive_data(data)
    message = session.next_message()
    assert message is not None
    return message


def authenticate(session: ClientSession, vector: list[tuple[str, bytes]]) -> None:
    request, data = session.authenticator_request()
    assert vector[2] == ("client", data)
    session.accept_authenticator(request, feed(session, vector[3][1]))
    assert session.authid == 1


def test_md5_open_and_refresh_match_capture_byte_for_byte() -> None:
    vector = load_vector("omapi-md5-open")
    session = session_after_startup(vector, LAB_KEY)
    authenticate(session, vector)

    request, data = session.open_request("failover-state", [("name", b"lab")])
    assert vector[4] == ("client", data)  # signed with HMAC-MD5 exactly as omshell did
    obj = session.reply_object(request, feed(session, vector[5][1]), "open")
    info = FailoverInfo.from_object(obj, session.endpoint)
    assert (info.local_state, info.partner_state) == (FailoverState.NORMAL, FailoverState.NORMAL)
    assert (info.role, info.mclt, info.max_response_delay) == ("secondary", 30, 10)
    assert info.local_stos == 1795849498
    assert info.primary_buckets == 128
    assert (info.local_port, info.partner_port) == (847, 647)

    request, data = session.refresh_request(obj.handle)
    assert vector[6] == ("client", data)
    refreshed = session.reply_object(request, feed(session, vector[7][1]), "refresh")
    assert refreshed == obj


def test_md5_set_partner_down_sends_four_byte_state() -> None:
    vector = load_vector("omapi-md5-set-partner-down")
    session = session_after_startup(vector, LAB_KEY)
    authenticate(session, vector)
    request, data = session.open_request("failover-state", [("name", b"lab")])
    assert vector[4] == ("client", data)
    obj = session.reply_object(request, feed(session, vector[5][1]), "open")
    assert obj.integer("local-state") == FailoverState.COMMUNICATIONS_INTERRUPTED

    request, data = session.update_request(obj.handle, [("local-state", u32(4))])
    assert vector[6] == ("client", data)
    session.check_reply(request, feed(session, vector[7][1]), "update")  # STATUS 0


@pytest.mark.parametrize("name", ["omapi-noauth-open-refresh", "omapi-noauth-set-partner-down"])
def test_unsigned_sessions_match_capture(name: str) -> None:
    vector = load_vector(name)
    session = session_after_startup(vector, None)
    request, data = session.open_request("failover-state", [("name", b"lab")])
    assert vector[2] == ("client", data)
    obj = session.reply_object(request, feed(session, vector[3][1]), "open")
    info = FailoverInfo.from_object(obj, session.endpoint)
    assert info.role == "primary"
    if name.endswith("refresh"):
        request, data = session.refresh_request(obj.handle)
    else:
        request, data = session.update_request(obj.handle, [("local-state", u32(4))])
    assert vector[4] == ("client", data)
    reply = feed(session, vector[5][1])
    session.check_reply(request, reply, "second request")


def test_lease_lookup_gives_pool_handle() -> None:
    vector = load_vector("omapi-lease-lookup")
    session = session_after_startup(vector, None)
    request, data = session.open_request("lease", [("ip-address", bytes([10, 99, 0, 175]))])
    assert vector[2] == ("client", data)
    lease = session.reply_object(request, feed(session, vector[3][1]), "open lease")
    assert (lease.integer("pool"), lease.integer("state")) == (4, 2)
    assert lease.raw("flags") == b"\x00"  # the one 1-byte attribute dhcpd sends
    assert lease.integer("flags") is None


@pytest.mark.parametrize(
    ("name", "key", "error", "result"),
    [
        ("omapi-failover-name-notfound", None, NotFoundError, Result.NOTFOUND),
        ("omapi-noauth-to-keyed-server", None, NoKeysError, Result.NOKEYS),
    ],
)
def test_open_errors_are_named(
    name: str, key: OmapiKey | None, error: type[Exception], result: Result
) -> None:
    vector = load_vector(name)
    session = session_after_startup(vector, key)
    peer = b"nope" if "notfound" in name else b"lab"
    request, data = session.open_request("failover-state", [("name", peer)])
    assert vector[2] == ("client", data)
    with pytest.raises(error) as caught:
        session.reply_object(request, feed(session, vector[3][1]), "opening failover-state")
    assert caught.value.result == result  # type: ignore[attr-defined]
    assert str(caught.value).startswith("10.98.0.6:7911: opening failover-state failed with ")


def test_key_unknown_to_server_is_not_found_on_authenticator() -> None:
    vector = load_vector("omapi-key-to-unkeyed-server")
    session = session_after_startup(vector, LAB_KEY)
    request, data = session.authenticator_request()
    assert vector[2] == ("client", data)
    with pytest.raises(NotFoundError, match="opening the OMAPI key failed with NOTFOUND") as caught:
        session.accept_authenticator(request, feed(session, vector[3][1]))
    assert "no key of that name with algorithm hmac-md5" in str(caught.value)


def test_wrong_secret_gives_invalid_key_and_never_shows_the_secret() -> None:
    vector = load_vector("omapi-wrong-secret")
    wrong = OmapiKey("lab-key", "hmac-md5", Secret(b"not-the-secret!!"))
    session = session_after_startup(vector, wrong)
    authenticate(session, vector)
    request, data = session.open_request("failover-state", [("name", b"lab")])
    # Same bytes up to the signature, which differs because the secret differs.
    assert data[:-16] == vector[4][1][:-16] and data[-16:] != vector[4][1][-16:]
    with pytest.raises(InvalidKeyError) as caught:
        session.reply_object(request, feed(session, vector[5][1]), "opening failover-state")
    assert "wrong secret" in str(caught.value)
    assert "not-the-secret" not in repr(caught.value) + str(caught.value)


def test_tampered_reply_is_rejected() -> None:
    vector = load_vector("omapi-md5-open")
    session = session_after_startup(vector, LAB_KEY)
    authenticate(session, vector)
    request, _ = session.open_request("failover-state", [("name", b"lab")])
    reply = bytearray(vector[5][1])
    reply[-100] ^= 0x01  # flip a bit inside the object section
    with pytest.raises(BadSignatureError):
        session.reply_object(request, feed(session, bytes(reply)), "open")


def test_reply_to_another_request_is_a_protocol_error() -> None:
    vector = load_vector("omapi-noauth-open-refresh")
    session = session_after_startup(vector, None)
    session.open_request("failover-state", [("name", b"lab")])
    request, _ = session.open_request("failover-state", [("name", b"lab")])
    with pytest.raises(ProtocolError, match="does not match request"):
        session.reply_object(request, feed(session, vector[3][1]), "open")


def test_wrong_startup_is_a_protocol_error() -> None:
    session = ClientSession("h:1")
    session.receive_data(b"\x00\x00\x00\x63\x00\x00\x00\x18")
    with pytest.raises(ProtocolError, match="not an OMAPI server"):
        session.next_message()


def test_closed_connection_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="closed"):
        ClientSession("h:1").receive_data(b"")


def test_authenticator_repr_hides_secret() -> None:
    auth = HmacAuthenticator(LAB_KEY)
    assert "dhcpfoctl-labkey" not in repr(auth) and "lab-key" in repr(auth)


@given(
    algorithm=st.sampled_from(ALGORITHMS),
    secret=st.binary(min_size=1, max_size=64),
    attrs=st.lists(
        st.tuples(st.text("abcdefghij-", min_size=1, max_size=12), st.binary(max_size=40)),
        max_size=6,
    ),
    cut=st.integers(min_value=0, max_value=400),
)
def test_signed_messages_round_trip_in_any_chunking(
    algorithm: str, secret: bytes, attrs: list[tuple[str, bytes]], cut: int
) -> None:
    key = OmapiKey("k", algorithm, Secret(secret))
    client = ClientSession("h:1", key)
    client.authid = client.authenticator.authid = 7  # type: ignore[union-attr]
    request, data = client.update_request(3, attrs)
    assert len(request.signature) == client.authenticator.authlen  # type: ignore[union-attr]

    # The "server" side: same key, our bytes split at an arbitrary point.
    inbuffer = InBuffer()
    parser = inbuffer.parse_message()
    inbuffer.feed(data[:cut])
    if cut < len(data):
        assert next(parser) is None
        inbuffer.feed(data[cut:])
    parsed = next(parser)
    assert isinstance(parsed, OmapiMessage) and parsed.opcode == Op.UPDATE
    assert parsed.obj == [(n.encode(), v) for n, v in attrs]
    server_auth = HmacAuthenticator(key)
    server_auth.authid = 7
    assert parsed.verify({7: server_auth})

    # And a signed STATUS success back is accepted.
    status = OmapiMessage(opcode=Op.STATUS, rid=request.tid, message=[(b"result", u32(0))])
    status.sign(server_auth)
    client.receive_data(STARTUP_BYTES + status.as_string())
    client.check_reply(request, client.next_message(), "update")  # type: ignore[arg-type]


@given(garbage=st.binary(max_size=300), chunk=st.integers(min_value=1, max_value=64))
def test_garbage_only_ever_raises_omapi_errors(garbage: bytes, chunk: int) -> None:
    session = ClientSession("h:1", LAB_KEY)
    session.authid = 1
    request, _ = session.open_request("failover-state", [("name", b"lab")])
    stream = STARTUP_BYTES + garbage
    try:
        for start in range(0, len(stream), chunk):
            session.receive_data(stream[start : start + chunk])
            while (message := session.next_message()) is not None:
                session.reply_object(request, message, "open")
    except OmapiError as exc:  # protocol error, or an (unsigned) error STATUS it spelled
        assert str(exc).startswith("h:1: ")
    except Exception as exc:
        raise AssertionError(f"garbage escaped as {type(exc).__name__}: {exc}") from exc
