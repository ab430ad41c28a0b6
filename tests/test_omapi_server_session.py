"""The sans-IO OMAPI server session: dhcpd's protocol rules, checked message by message.

Driven in memory by dhcpfoctl's own client session and by hand-built messages, over the
lab's objects on a failover pair from tests/failover_harness.py; garbage and arbitrary
bytes only ever set ``close_reason``.
"""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypureomapi import OmapiMessage

from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.lab.objects import LabObjects
from dhcpfoctl.model import FailoverState, Role
from dhcpfoctl.omapi.client_session import ClientSession
from dhcpfoctl.omapi.codec import (
    STARTUP_BYTES,
    HmacAuthenticator,
    MessageReader,
    OmapiObject,
    Op,
    decode_status,
    signature_valid,
    u32,
)
from dhcpfoctl.omapi.errors import InvalidKeyError, NoKeysError, NotFoundError, Result
from dhcpfoctl.omapi.failover import FailoverInfo
from dhcpfoctl.omapi.server_session import HandleTable, ServerSession, StatusReply
from tests.failover_harness import fresh_pair

KEY = OmapiKey("lab-key", "hmac-md5", Secret(base64.b64decode("ZGhjcGZvY3RsLWxhYmtleQ==")))
OTHER = OmapiKey("other", "hmac-sha256", Secret(b"another secret"))


def new_lab() -> LabObjects:
    pair = fresh_pair()
    assert pair.settle_normal()
    return LabObjects(
        {"lab": pair.P}, pair.P.db, pair.primary_config.pools, on_shutdown=lambda now: None
    )


@pytest.fixture(scope="module")
def lab() -> LabObjects:
    """A primary in normal state; tests here do not change it."""
    return new_lab()


@pytest.fixture(scope="module")
def scratch() -> LabObjects:
    """A primary that random messages may change."""
    return new_lab()


def server(lab: LabObjects, *, required: str | None = None) -> ServerSession:
    return ServerSession(lab, keys={KEY.name: KEY, OTHER.name: OTHER}, required_key=required)


class Wire:
    """A client session and a server session joined in memory."""

    def __init__(self, session: ServerSession, key: OmapiKey | None = None) -> None:
        self.server = session
        self.client = ClientSession("lab:7911", key)
        self.client.receive_data(session.data_to_send())
        assert self.client.next_message() is None and self.client.startup_received
        session.receive_data(STARTUP_BYTES, 0.0)
        if key is not None:
            request, data = self.client.authenticator_request()
            self.client.accept_authenticator(request, self.exchange(data))

    def exchange(self, data: bytes) -> OmapiMessage:
        self.server.receive_data(data, 0.0)
        self.client.receive_data(self.server.data_to_send())
        reply = self.client.next_message()
        assert reply is not None
        return reply

    def open(self, type_: str, lookup: list[tuple[str, bytes]]) -> OmapiObject:
        request, data = self.client.open_request(type_, lookup)
        return self.client.reply_object(request, self.exchange(data), "open")

    def update(self, handle: int, values: list[tuple[str, bytes]]) -> None:
        request, data = self.client.update_request(handle, values)
        self.client.check_reply(request, self.exchange(data), "update")


def raw(session: ServerSession, message: OmapiMessage) -> OmapiMessage:
    """Send one hand-built message; the one reply."""
    session.receive_data(message.as_string(), 0.0)
    reader = MessageReader("server", "server")
    reader.feed(STARTUP_BYTES + session.data_to_send())
    reply = reader.next_message()
    assert reply is not None and reader.next_message() is None
    return reply


def started(lab: LabObjects, **kw: str | None) -> ServerSession:
    session = server(lab, **kw)
    assert session.data_to_send() == STARTUP_BYTES
    session.receive_data(STARTUP_BYTES, 0.0)
    return session


# -- through the client session ---------------------------------------------------------


def test_unsigned_client_reads_the_failover_state(lab: LabObjects) -> None:
    wire = Wire(server(lab))
    obj = wire.open("failover-state", [("name", b"lab")])
    info = FailoverInfo.from_object(obj, "lab")
    assert info.local_state is FailoverState.NORMAL and info.role is Role.PRIMARY
    assert obj.raw("partner-address") == bytes([10, 20, 1, 2])


def test_signed_client_reads_and_sets_and_replies_are_signed(lab: LabObjects) -> None:
    wire = Wire(server(lab, required="lab-key"), KEY)
    assert wire.client.authid == lab.handles.handle(("authenticator", "lab-key"))
    obj = wire.open("failover-state", [("name", b"lab")])
    wire.update(obj.handle, [("mclt", u32(5))])  # accepted and ignored, as dhcpd
    assert wire.open("failover-state", [("name", b"lab")]).integer("mclt") == 30


def test_required_key_refuses_unsigned_with_nokeys(lab: LabObjects) -> None:
    wire = Wire(server(lab, required="lab-key"))
    with pytest.raises(NoKeysError, match="No authenticator on message"):
        wire.open("failover-state", [("name", b"lab")])


def test_only_the_configured_key_is_accepted(lab: LabObjects) -> None:
    with pytest.raises(InvalidKeyError, match="can't select authenticator"):
        Wire(server(lab, required="lab-key"), OTHER)
    Wire(server(lab), OTHER)  # without omapi-key any defined key may sign


def test_unknown_key_is_not_found(lab: LabObjects) -> None:
    stranger = OmapiKey("stranger", "hmac-md5", Secret(b"x"))
    with pytest.raises(NotFoundError):
        Wire(server(lab), stranger)
    wrong_algorithm = dataclasses.replace(KEY, algorithm="hmac-sha1")
    with pytest.raises(NotFoundError):
        Wire(server(lab), wrong_algorithm)


def test_wrong_secret_gets_unsigned_invalidkey(lab: LabObjects) -> None:
    session = server(lab, required="lab-key")
    wire = Wire(session, KEY)
    bad = HmacAuthenticator(dataclasses.replace(KEY, secret=Secret(b"wrong")))
    bad.authid = wire.client.authid
    message = OmapiMessage(opcode=Op.OPEN, tid=7, message=[(b"type", b"failover-state")])
    message.obj = [(b"name", b"lab")]
    message.sign(bad)
    reply = raw(session, message)
    assert (reply.opcode, reply.authid, reply.rid) == (Op.STATUS, 0, 7)
    assert decode_status(reply) == (Result.INVALIDKEY, "")
    assert session.close_reason is None  # dhcpd keeps the connection


def test_unknown_authid_is_key_unknown(lab: LabObjects) -> None:
    message = OmapiMessage(authid=99, opcode=Op.REFRESH, handle=1, tid=3, signature=b"\0" * 16)
    reply = raw(started(lab), message)
    assert decode_status(reply) == (Result.KEY_UNKNOWN, "")


# -- dhcpd's answers to each operation ----------------------------------------------------


def status_of(session: ServerSession, message: OmapiMessage) -> tuple[int, str]:
    reply = raw(session, message)
    assert reply.opcode == Op.STATUS and reply.rid == message.tid
    return decode_status(reply)


def open_message(type_: bytes | None, obj: list[tuple[bytes, bytes]], **flags: int) -> OmapiMessage:
    section = [(b"type", type_)] if type_ is not None else []
    section += [(name.encode(), u32(value)) for name, value in flags.items()]
    return OmapiMessage(opcode=Op.OPEN, tid=11, message=section, obj=obj)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            open_message(b"failover-state", [(b"name", b"nope")]),
            (23, "no object matches specification"),
        ),
        (open_message(b"failover-state", []), (27, "can't create new object")),
        (open_message(b"pool", []), (27, "can't create new object")),
        (open_message(b"failover-link", []), (27, "unsearchable object type")),
        (open_message(None, [], create=1), (Result.INVALIDARG, "type required on create")),
        (
            open_message(b"failover-state", [(b"name", b"lab")], create=1, exclusive=1),
            (18, "specified object already exists"),
        ),
        (
            open_message(b"failover-state", [(b"name", b"lab"), (b"local-state", b"\4")], update=1),
            (Result.INVALIDARG, "can't update object"),
        ),
        (
            open_message(
                b"lease", [(b"ip-address", bytes([10, 20, 0, 10])), (b"starts", u32(1))], update=1
            ),
            (Result.NOPERM, "can't update object"),
        ),
        (OmapiMessage(opcode=Op.NOTIFY, tid=11), (27, "notify not implemented yet")),
        (OmapiMessage(opcode=Op.REFRESH, handle=999, tid=11), (23, "no matching handle")),
        (OmapiMessage(opcode=Op.UPDATE, handle=999, tid=11), (23, "no matching handle")),
    ],
    ids=lambda v: v[1] if isinstance(v, tuple) else "",
)
def test_refusals_as_dhcpd_words_them(lab: LabObjects, message: OmapiMessage, expected) -> None:
    assert status_of(started(lab), message) == expected


def test_unknown_type_refreshes_the_header_handle(lab: LabObjects) -> None:
    session = started(lab)
    handle = Wire(server(lab)).open("failover-state", [("name", b"lab")]).handle
    message = open_message(b"no-such-type", [])
    assert status_of(session, message) == (23, "no matching handle")
    message.handle = handle
    assert raw(session, message).handle == handle


def test_delete_and_notify(lab: LabObjects) -> None:
    session = started(lab)
    handle = Wire(server(lab)).open("failover-state", [("name", b"lab")]).handle
    assert status_of(session, OmapiMessage(opcode=Op.DELETE, handle=handle, tid=4))[0] == 27


def test_authenticator_handle_refreshes_and_refuses_changes(lab: LabObjects) -> None:
    wire = Wire(server(lab), KEY)
    handle = wire.client.authid
    request, data = wire.client.refresh_request(handle)
    obj = wire.client.reply_object(request, wire.exchange(data), "refresh")
    assert dict(obj.attributes) == {"name": b"lab-key", "algorithm": b"hmac-md5.SIG-ALG.REG.INT."}
    request, data = wire.client.update_request(handle, [("name", b"x")])
    reply = wire.exchange(data)
    # dhcpd reports its successful handle lookup as the result here.
    assert decode_status(reply) == (0, "cannot update authenticator")


def test_handles_are_global_and_stable(lab: LabObjects) -> None:
    first = Wire(server(lab)).open("failover-state", [("name", b"lab")]).handle
    assert Wire(server(lab)).open("failover-state", [("name", b"lab")]).handle == first
    table = HandleTable()
    assert [table.handle(k) for k in ("a", "b", "a")] == [1, 2, 1] and table.key(2) == "b"


def test_status_reply_carries_code_and_text() -> None:
    reply = StatusReply(Result.NOPERM, "x")
    assert (reply.result, reply.message) == (Result.NOPERM, "x")


# -- what dhcpd answers by closing ----------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        OmapiMessage(opcode=Op.OPEN, tid=1, rid=5, message=[(b"type", b"lease")]),
        OmapiMessage(opcode=Op.STATUS, tid=1, message=[(b"result", u32(0))]),
        OmapiMessage(opcode=9, tid=1),
        OmapiMessage(opcode=Op.OPEN, tid=1, message=[(b"op", u32(1))]),
    ],
    ids=["reply-id", "client-status", "unknown-op", "reserved-name"],
)
def test_closes_where_dhcpd_disconnects(lab: LabObjects, message: OmapiMessage) -> None:
    session = started(lab)
    session.receive_data(message.as_string(), 0.0)
    assert session.close_reason and session.data_to_send() == b""


@pytest.mark.parametrize(
    "startup", [b"\0\0\0\x63\0\0\0\x18", b"\0\0\0\x64\0\0\0\x17", b"GET / HTTP/1.1\r\n"]
)
def test_bad_startup_closes(lab: LabObjects, startup: bytes) -> None:
    session = server(lab)
    session.receive_data(startup, 0.0)
    assert session.close_reason is not None
    session.receive_data(STARTUP_BYTES, 0.0)  # nothing more is read once closing
    assert session.data_to_send() == STARTUP_BYTES


def test_pipelined_requests_in_one_large_read(lab: LabObjects) -> None:
    session = started(lab)
    message = open_message(b"failover-state", [(b"name", b"lab")])
    session.receive_data(message.as_string() * 2000, 0.0)  # ~130 KB at once
    assert session.close_reason is None
    reader = MessageReader("server", "server")
    reader.feed(STARTUP_BYTES)
    out = session.data_to_send()
    count = 0
    for start in range(0, len(out), 4096):
        reader.feed(out[start : start + 4096])
        while reader.next_message() is not None:
            count += 1
    assert count == 2000


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=400), chunk=st.integers(1, 64), startup=st.booleans())
def test_arbitrary_bytes_never_raise(
    lab: LabObjects, data: bytes, chunk: int, startup: bool
) -> None:
    session = server(lab)
    stream = (STARTUP_BYTES if startup else b"") + data
    for start in range(0, len(stream), chunk):
        session.receive_data(stream[start : start + chunk], 0.0)
    session.data_to_send()
    assert session.close_reason is None or isinstance(session.close_reason, str)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    op=st.integers(0, 8),
    handle=st.integers(0, 12),
    names=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    b"type",
                    b"name",
                    b"create",
                    b"update",
                    b"state",
                    b"ip-address",
                    b"local-state",
                    b"x",
                ]
            ),
            st.binary(max_size=6),
        ),
        max_size=4,
    ),
    signed=st.booleans(),
)
def test_arbitrary_messages_get_one_reply_or_close(
    scratch: LabObjects, op, handle, names, signed
) -> None:
    session = started(scratch)
    message = OmapiMessage(opcode=op, handle=handle, tid=9, message=names[:2], obj=names[2:])
    if signed:
        message.authid, message.signature = 1, b"\0" * 16
    session.receive_data(message.as_string(), 0.0)
    out = session.data_to_send()
    if session.close_reason is None:
        reader = MessageReader("server", "server")
        reader.feed(STARTUP_BYTES + out)
        reply = reader.next_message()
        assert reply is not None and reply.rid == 9 and reader.next_message() is None
        assert reply.opcode in (Op.UPDATE, Op.STATUS)


def test_a_larger_header_is_accepted_and_its_extra_bytes_skipped(lab: LabObjects) -> None:
    # dhcpd skips header bytes past the 24 it knows; they are not signed.
    session = server(lab, required="lab-key")
    session.receive_data(b"\0\0\0\x64\0\0\0\x1c", 0.0)  # header size 28

    opened = OmapiMessage(opcode=Op.OPEN, tid=1, message=[(b"type", b"authenticator")])
    opened.obj = [(b"name", b"lab-key"), (b"algorithm", b"HMAC-MD5.SIG-ALG.REG.INT.")]
    session.receive_data(opened.as_string()[:24] + b"XTRA" + opened.as_string()[24:], 0.0)
    signer = HmacAuthenticator(KEY)
    signer.authid = lab.handles.handle(("authenticator", "lab-key"))
    request = open_message(b"failover-state", [(b"name", b"lab")])
    request.sign(signer)
    data = request.as_string()
    session.receive_data(data[:24] + b"XTRA" + data[24:], 0.0)
    assert session.close_reason is None
    replies = MessageReader("server", "server")
    replies.feed(session.data_to_send())
    first, second = replies.next_message(), replies.next_message()
    assert first is not None and second is not None
    assert (first.opcode, first.handle) == (Op.UPDATE, signer.authid)
    assert second.opcode == Op.UPDATE and signature_valid(second, signer)
