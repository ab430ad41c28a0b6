"""The failover wire codec against every message two dhcpd 4.4.3 servers exchanged.

The captures (tests/data/real-dhcpd-4.4.3/pcap/failover-*.msgs.txt) give each message's
bytes on a ``hex:`` line after the capture tool's own decoding; we decode every one, compare
all decoded fields, and re-encode byte for byte. The receive rules, the per-type option
sets and the load-balance examples are transcribed here from docs/failover-protocol.md
independently of the module's tables, so a slip in either shows.
"""

from __future__ import annotations

import ast
import ipaddress
import itertools
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhcpfoctl.errors import ExitStatus, RemoteError
from dhcpfoctl.failover.wire import (
    HBA_SIZE,
    HEADER_SIZE,
    MAX_MESSAGE_SIZE,
    EncodeError,
    FrameBuffer,
    IpFlag,
    Message,
    MessageType,
    OptionCode,
    RejectReason,
    ServerFlag,
    WireError,
    decode,
    encode,
    hba_from_split,
    hba_from_text,
    load_balance_hash,
    message,
    ordered,
    primary_serves,
)
from dhcpfoctl.model import BindingState, FailoverState

CAPTURES = Path(__file__).parent / "data" / "real-dhcpd-4.4.3" / "pcap"
OC = OptionCode
M = MessageType
FUZZ = settings(max_examples=250, deadline=None)

# -- the captures -------------------------------------------------------------------------

_CAPTURE_FIELDS = {
    "relationship-name": OC.RELATIONSHIP_NAME,
    "max-unacked": OC.MAX_UNACKED_BNDUPD,
    "receive-timer": OC.RECEIVE_TIMER,
    "vendor-class": OC.VENDOR_CLASS,
    "protocol-version": OC.PROTOCOL_VERSION,
    "tls-request": OC.TLS_REQUEST,
    "tls-reply": OC.TLS_REPLY,
    "mclt": OC.MCLT,
    "hba": OC.HBA,
    "server-state": OC.SERVER_STATE,
    "server-flags": OC.SERVER_FLAGS,
    "stos": OC.START_TIME_OF_STATE,
    "assigned-ip-address": OC.ASSIGNED_IP_ADDRESS,
    "binding-status": OC.BINDING_STATUS,
    "client-id": OC.CLIENT_IDENTIFIER,
    "chaddr": OC.CLIENT_HARDWARE_ADDRESS,
    "lease-expiry": OC.LEASE_EXPIRATION_TIME,
    "potential-expiry": OC.POTENTIAL_EXPIRATION_TIME,
    "cltt": OC.CLIENT_LAST_TRANSACTION_TIME,
    "ip-flags": OC.IP_FLAGS,
    "reject-reason": OC.REJECT_REASON,
    "message": OC.MESSAGE,
    "addresses-transferred": OC.ADDRESSES_TRANSFERRED,
}
_FIELD = re.compile(r"([a-z-]+)=('(?:[^'\\]|\\.)*'|[^;]*)(?:;\s*|$)")
_ARRIVAL = re.compile(
    r"\[\+\s*[\d.]+s\] failover (\S+) -> (\S+) \(stream offset (\d+), (\d+) bytes\)"
)


@dataclass(frozen=True)
class Captured:
    where: str  # FILE:LINE of the hex line
    stream: tuple[str, str, str]  # file, source, destination
    offset: int
    type: str
    header: dict[str, int]
    fields: dict[OptionCode, object]  # the capture tool's decoding
    names: dict[OptionCode, str]  # "normal" of "server-state=2(normal)"
    frame: bytes


def _capture_value(code: OptionCode, text: str) -> object:
    if text.startswith("'"):
        return ast.literal_eval(text).encode("latin-1")
    if text.startswith("0x"):
        return bytes.fromhex(text[2:])
    if code == OC.ASSIGNED_IP_ADDRESS:
        return text
    if code in (OC.HBA, OC.CLIENT_HARDWARE_ADDRESS, OC.CLIENT_IDENTIFIER):
        return bytes.fromhex(text.replace(":", ""))
    return int(text.partition("(")[0])


def _load_captures() -> list[Captured]:
    found = []
    for path in sorted(CAPTURES.glob("failover-*.msgs.txt")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if not line.strip().startswith("hex:"):
                continue
            # Above the hex line: arrival line, "TYPE len=… xid=…", optionally the options.
            back = 2 if lines[number - 2].startswith("[") else 3
            arrival = _ARRIVAL.fullmatch(lines[number - back])
            assert arrival, f"{path.name}:{number + 1}: no arrival line"
            type_name, *header_words = lines[number - back + 1].split()
            header = {k: int(v) for k, v in (word.split("=") for word in header_words)}
            fields: dict[OptionCode, object] = {}
            names: dict[OptionCode, str] = {}
            if back == 3:
                for name, text in _FIELD.findall(lines[number - 1].strip()):
                    code = _CAPTURE_FIELDS[name]
                    fields[code] = _capture_value(code, text)
                    if (m := re.fullmatch(r"\d+\((.+)\)", text)) is not None:
                        names[code] = m.group(1)
            found.append(
                Captured(
                    where=f"{path.name}:{number + 1}",
                    stream=(path.name, arrival.group(1), arrival.group(2)),
                    offset=int(arrival.group(3)),
                    type=type_name,
                    header=header,
                    fields=fields,
                    names=names,
                    frame=bytes.fromhex(line.split(":", 1)[1].strip()),
                )
            )
            assert len(found[-1].frame) == int(arrival.group(4))
    return found


GOLDEN = _load_captures()
FRAMES = [captured.frame for captured in GOLDEN]


def _streams() -> dict[tuple[str, str, str], bytes]:
    """Each direction of each captured TCP connection, reassembled from its messages."""
    streams: dict[tuple[str, str, str], bytearray] = {}
    for captured in GOLDEN:
        stream = streams.setdefault(captured.stream, bytearray())
        assert captured.offset == len(stream), captured.where
        stream += captured.frame
    return {key: bytes(value) for key, value in streams.items()}


def first(type_: MessageType) -> bytes:
    return next(c.frame for c in GOLDEN if c.type == type_.name)


def test_every_captured_message_decodes_to_the_capture_fields_and_re_encodes_byte_exact() -> None:
    assert len(GOLDEN) > 1000  # 1572 when written; guards against a vacuous pass
    seen_types = set()
    for captured in GOLDEN:
        msg = decode(captured.frame)
        seen_types.add(msg.type)
        assert msg.type.name == captured.type, captured.where
        assert captured.header["len"] == len(captured.frame), captured.where
        assert captured.header["payload-offset"] == HEADER_SIZE, captured.where
        assert (msg.time, msg.xid) == (captured.header["time"], captured.header["xid"])
        assert dict(msg.options) == captured.fields, captured.where
        assert len(msg.options) == len(captured.fields), captured.where  # no duplicates
        for code, name in captured.names.items():
            assert msg.get(code).keyword == name, captured.where  # type: ignore[union-attr]
        assert encode(msg) == captured.frame, captured.where
    assert {c.type for c in GOLDEN} == {t.name for t in seen_types}
    assert seen_types >= {
        M.CONNECT,
        M.CONNECTACK,
        M.STATE,
        M.BNDUPD,
        M.BNDACK,
        M.UPDREQALL,
        M.UPDREQ,
        M.UPDDONE,
        M.CONTACT,
    }


def test_decoded_values_have_the_documented_types() -> None:
    connect = decode(first(M.CONNECT))
    assert connect.get(OC.RELATIONSHIP_NAME) == b"lab"
    assert connect.get(OC.HBA) == hba_from_split(128)
    state = decode(first(M.STATE))
    assert isinstance(state.get(OC.SERVER_STATE), FailoverState)
    assert isinstance(state.get(OC.SERVER_FLAGS), ServerFlag)
    bndupd = next(m for m in map(decode, FRAMES) if OC.CLIENT_HARDWARE_ADDRESS in m)
    assert isinstance(bndupd.get(OC.BINDING_STATUS), BindingState)
    assert bndupd.get(OC.CLIENT_HARDWARE_ADDRESS)[:1] == b"\x01"  # type: ignore[index]
    assert isinstance(bndupd.get(OC.ASSIGNED_IP_ADDRESS), str)
    refusal = next(m for m in map(decode, FRAMES) if OC.REJECT_REASON in m)
    assert refusal.get(OC.REJECT_REASON) is RejectReason.LESS_CRIT_BIND_INFO
    assert refusal.get(OC.MESSAGE) == b"incoming update is less critical than outgoing update"


def test_ordered_reproduces_dhcpds_option_order_for_every_captured_message() -> None:
    for captured in GOLDEN:
        msg = decode(captured.frame)
        rebuilt = ordered(msg.type, msg.xid, msg.time, dict(reversed(msg.options)))
        assert encode(rebuilt) == captured.frame, captured.where


def test_frame_buffer_splits_the_captured_tcp_streams() -> None:
    streams = _streams()
    assert len(streams) >= 8
    expected = {key: [decode(c.frame) for c in GOLDEN if c.stream == key] for key in streams}
    for key, data in streams.items():
        buffer = FrameBuffer()
        got = []
        for start in range(0, len(data), 7):
            got += buffer.feed(data[start : start + 7])
            assert buffer.pending < MAX_MESSAGE_SIZE
        assert got == expected[key]
        assert buffer.pending == 0
        assert FrameBuffer().feed(data) == expected[key]


# -- the examples of the reference ----------------------------------------------------------

CONNECT_5_1 = bytes.fromhex(
    "006c 05 0c 6b0a848e 00000000"
    "0016 0006 666f2d6c6162"
    "000e 0004 0000000a"
    "0013 0004 0000001e"
    "001c 000c 6973632d342e342e332d5031"
    "0014 0001 01"
    "001b 0001 00"
    "000f 0004 00000078"
    "000b 0020" + "ff" * 16 + "00" * 16
)
BNDUPD_7_1 = bytes.fromhex(
    "004f 03 0c 6b0a7c02 0000004c"
    "0002 0004 0a63001e"
    "0003 0001 02"
    "0004 0007 01020000000001"
    "0005 0007 01020000000001"
    "000d 0004 6b0a7c7a"
    "0012 0004 6b0a7e96"
    "0019 0004 6b0a7c02"
    "0006 0004 6b0a7c02"
)


def test_connect_example() -> None:
    msg = decode(CONNECT_5_1)
    assert len(CONNECT_5_1) == 108
    assert msg.type is M.CONNECT and msg.xid == 0 and msg.time == 0x6B0A848E
    assert msg.options == (
        (OC.RELATIONSHIP_NAME, b"fo-lab"),
        (OC.MAX_UNACKED_BNDUPD, 10),
        (OC.RECEIVE_TIMER, 30),
        (OC.VENDOR_CLASS, b"isc-4.4.3-P1"),
        (OC.PROTOCOL_VERSION, 1),
        (OC.TLS_REQUEST, 0),
        (OC.MCLT, 120),
        (OC.HBA, hba_from_split(128)),
    )
    values = {
        OC.MCLT: 120,
        OC.HBA: hba_from_split(128),
        OC.TLS_REQUEST: 0,
        OC.PROTOCOL_VERSION: 1,
        OC.VENDOR_CLASS: b"isc-4.4.3-P1",
        OC.RECEIVE_TIMER: 30,
        OC.MAX_UNACKED_BNDUPD: 10,
        OC.RELATIONSHIP_NAME: b"fo-lab",
    }
    assert encode(ordered(M.CONNECT, 0, 0x6B0A848E, values)) == CONNECT_5_1


def test_bndupd_example() -> None:
    msg = decode(BNDUPD_7_1)
    assert len(BNDUPD_7_1) == 79
    assert (msg.type, msg.xid) == (M.BNDUPD, 0x4C)
    assert msg.get(OC.ASSIGNED_IP_ADDRESS) == "10.99.0.30"
    assert msg.get(OC.BINDING_STATUS) is BindingState.ACTIVE
    assert msg.get(OC.CLIENT_IDENTIFIER) == bytes.fromhex("01020000000001")
    assert msg.get(OC.CLIENT_HARDWARE_ADDRESS) == bytes.fromhex("01020000000001")
    starts = msg.get(OC.START_TIME_OF_STATE)
    assert msg.get(OC.LEASE_EXPIRATION_TIME) == starts + 120  # type: ignore[operator]
    assert msg.get(OC.POTENTIAL_EXPIRATION_TIME) == starts + 660  # type: ignore[operator]
    assert msg.get(OC.CLIENT_LAST_TRANSACTION_TIME) == starts
    values = {
        OC.CLIENT_LAST_TRANSACTION_TIME: starts,
        OC.IP_FLAGS: None,
        OC.START_TIME_OF_STATE: starts,
        OC.POTENTIAL_EXPIRATION_TIME: starts + 660,  # type: ignore[operator]
        OC.LEASE_EXPIRATION_TIME: starts + 120,  # type: ignore[operator]
        OC.CLIENT_HARDWARE_ADDRESS: bytes.fromhex("01020000000001"),
        OC.CLIENT_IDENTIFIER: bytes.fromhex("01020000000001"),
        OC.BINDING_STATUS: BindingState.ACTIVE,
        OC.ASSIGNED_IP_ADDRESS: "10.99.0.30",
    }
    assert encode(ordered(M.BNDUPD, 0x4C, 0x6B0A7C02, values)) == BNDUPD_7_1


def test_describe_is_one_safe_line() -> None:
    assert decode(BNDUPD_7_1).describe() == (
        "BNDUPD xid=76 assigned-ip-address=10.99.0.30 binding-status=active"
        " client-identifier=01:02:00:00:00:00:01 client-hardware-address=01:02:00:00:00:00:01"
        " lease-expiration-time=1795849338 potential-expiration-time=1795849878"
        " start-time-of-state=1795849218 client-last-transaction-time=1795849218"
    )
    hostile = message(
        M.DISCONNECT, 7, 0, (OC.REJECT_REASON, 8), (OC.MESSAGE, b"bad\n'name'\x00\xff\\")
    )
    line = hostile.describe()
    assert line == (
        r"DISCONNECT xid=7 reject-reason=invalid-partner message='bad\x0a\x27name\x27\x00\xff\x5c'"
    )
    assert line.isprintable()
    state = message(M.STATE, 1, 0, (OC.SERVER_STATE, 254), (OC.SERVER_FLAGS, 0x81))
    assert state.describe() == "STATE xid=1 server-state=recover-wait server-flags=startup|0x80"


# -- receive rules, one at a time -----------------------------------------------------------


def tlv(code: int, data: bytes) -> bytes:
    return struct.pack("!HH", code, len(data)) + data


def raw(
    type_: int, *options: bytes, offset: int = 12, pad: bytes = b"", length: int | None = None
) -> bytes:
    """A message built by hand (not by the codec under test)."""
    body = pad + b"".join(options)
    size = HEADER_SIZE + len(body) if length is None else length
    return struct.pack("!HBBII", size, type_, offset, 1795851406, 9) + body


STATE_OPTIONS = (tlv(24, b"\x02"), tlv(23, b"\x00"), tlv(25, bytes(4)))


def refused(frame: bytes, reason: str) -> WireError:
    with pytest.raises(WireError) as info:
        decode(frame)
    assert info.value.reason == reason
    return info.value


def test_a_valid_hand_built_state() -> None:
    msg = decode(raw(10, *STATE_OPTIONS))
    options = ((OC.SERVER_STATE, 2), (OC.SERVER_FLAGS, 0), (OC.START_TIME_OF_STATE, 0))
    assert msg == Message(M.STATE, 9, 1795851406, options)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00\x0c\x0b",  # shorter than a header
        raw(11, length=11)[:11],  # length field below 12
        raw(11, length=13),  # says 13, is 12
        raw(10, *STATE_OPTIONS, length=29),  # says 29, is 30
        raw(6, tlv(16, bytes(2033))),  # 2049 > 2048
        raw(11, length=11),  # length field below 12
        raw(11, length=0xFFFF),
    ],
)
def test_bad_length(frame: bytes) -> None:
    error = refused(frame, "bad-length")
    assert isinstance(error, RemoteError) and error.exit_status == ExitStatus.REMOTE_ERROR


def test_the_largest_message_is_accepted() -> None:
    frame = raw(6, tlv(16, bytes(2048 - 16)))
    assert len(frame) == MAX_MESSAGE_SIZE
    assert decode(frame).get(OC.MESSAGE) == bytes(2032)


@pytest.mark.parametrize("type_", [0, 13, 200, 255])
def test_message_types_outside_1_to_12_are_refused(type_: int) -> None:
    refused(raw(type_), "unknown-type")
    refused(raw(type_, *STATE_OPTIONS), "unknown-type")


def test_bytes_between_header_and_payload_offset_are_skipped() -> None:
    msg = decode(raw(10, *STATE_OPTIONS, offset=16, pad=b"\xde\xad\xbe\xef"))
    assert msg.get(OC.SERVER_STATE) == FailoverState.NORMAL
    assert decode(raw(11, offset=16, pad=bytes(4))).options == ()  # offset == length


@pytest.mark.parametrize("offset", [0, 11, 31, 255])
def test_payload_offset_before_the_options_or_past_the_end_is_refused(offset: int) -> None:
    refused(raw(10, *STATE_OPTIONS, offset=offset), "bad-offset")


def test_code_0_and_codes_past_29_are_skipped_whatever_their_size() -> None:
    junk = (tlv(0, b"x"), tlv(30, bytes(9)), tlv(0xFFFF, b""))
    frame = raw(10, junk[0], STATE_OPTIONS[0], junk[1], junk[2], *STATE_OPTIONS[1:])
    assert [code for code, _ in decode(frame).options] == [24, 23, 25]
    # A skipped code is still counted once only: no duplicate error for repeats.
    assert decode(raw(11, tlv(0, b""), tlv(0, b""), tlv(99, b"a"), tlv(99, b"b"))).options == ()


# Per message type, the options dhcpd reads (docs/failover-protocol.md §3).
LEASE = {2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 18, 25}
ALLOWED = {
    M.POOLREQ: set(),
    M.POOLRESP: {1},
    M.BNDUPD: LEASE,
    M.BNDACK: LEASE | {21, 16},
    M.CONNECT: {22, 14, 19, 28, 20, 27, 15, 11},
    M.CONNECTACK: {22, 14, 19, 28, 20, 26, 21, 16},
    M.UPDREQALL: set(),
    M.UPDDONE: set(),
    M.UPDREQ: set(),
    M.STATE: {24, 23, 25},
    M.CONTACT: set(),
    M.DISCONNECT: {21, 16},
}
# Wire sizes of §4 (None = any length).
SIZES = {
    1: 4,
    2: 4,
    3: 1,
    4: None,
    5: None,
    6: 4,
    7: None,
    8: None,
    9: 0,
    10: 1,
    11: None,
    12: 2,
    13: 4,
    14: 4,
    15: 4,
    16: None,
    17: None,
    18: 4,
    19: 4,
    20: 1,
    21: 1,
    22: None,
    23: 1,
    24: 1,
    25: 4,
    26: 1,
    27: 1,
    28: None,
    29: None,
}


@pytest.mark.parametrize("type_", list(M))
def test_options_a_type_does_not_read_are_skipped_silently(type_: MessageType) -> None:
    for code, size in SIZES.items():
        good = bytes(range(1, 1 + (3 if size is None else size)))
        kept = decode(raw(type_, tlv(code, good))).options
        assert bool(kept) == (code in ALLOWED[type_]), (type_, code)
        if code not in ALLOWED[type_]:
            # Not read, so neither its size nor a repeat of it is checked.
            assert decode(raw(type_, tlv(code, bytes(7)), tlv(code, bytes(7)))).options == ()


def test_message_digest_is_ignored_everywhere() -> None:
    for type_ in M:
        assert OC.MESSAGE_DIGEST not in decode(raw(type_, tlv(17, bytes(16))))


def test_an_option_read_twice_is_refused() -> None:
    error = refused(raw(10, *STATE_OPTIONS, tlv(24, b"\x02")), "duplicate-option")
    assert "server-state" in str(error)
    refused(raw(4, tlv(16, b"a"), tlv(2, bytes(4)), tlv(16, b"b")), "duplicate-option")


@pytest.mark.parametrize(
    ("type_", "option"),
    [
        (10, tlv(24, b"\x00\x02")),  # server-state u8
        (5, tlv(27, b"\x00\x00")),  # the draft's 2-byte TLS-request
        (3, tlv(2, b"\x0a\x63\x00")),  # assigned-IP
        (3, tlv(12, b"\x01")),  # IP-flags u16
        (2, tlv(1, bytes(8))),  # addresses-transferred u32
        (6, tlv(19, b"")),
    ],
)
def test_a_fixed_size_option_of_another_size_is_refused(type_: int, option: bytes) -> None:
    refused(raw(type_, option), "bad-option-size")


@pytest.mark.parametrize(
    "frame",
    [
        raw(10, b"\x00\x18"),  # an option code without its length
        raw(10, struct.pack("!HH", 24, 5) + b"\x02"),  # data runs past the end
        raw(10, struct.pack("!HH", 99, 5) + b"\x02"),  # even for a code that is skipped
        raw(10, *STATE_OPTIONS, b"\x00"),  # stray bytes after the last option
        raw(10, *STATE_OPTIONS, b"\x00\x18\x00"),
    ],
)
def test_an_option_running_past_the_end_is_refused(frame: bytes) -> None:
    refused(frame, "truncated-option")


def test_ddns_quirk() -> None:
    # dhcpd declares DDNS fixed-size with element size 0: any data kills the link...
    refused(raw(3, tlv(2, bytes(4)), tlv(9, b"\x00\x00host")), "ddns-option")
    refused(raw(4, tlv(9, b"\x01")), "ddns-option")
    # ...an empty one is read (and counts for duplicates), and other types skip it.
    assert decode(raw(3, tlv(9, b""))).options == ((OC.DDNS, b""),)
    refused(raw(3, tlv(9, b""), tlv(9, b"")), "duplicate-option")
    assert decode(raw(5, tlv(9, b"\x00\x00host"))).options == ()
    with pytest.raises(EncodeError, match="DDNS"):
        encode(message(M.BNDUPD, 1, 0, (OC.DDNS, b"")))


def test_text_is_neither_nul_terminated_nor_nul_stripped() -> None:
    frame = encode(message(M.DISCONNECT, 1, 0, (OC.REJECT_REASON, 8), (OC.MESSAGE, b"abc")))
    assert frame.endswith(tlv(16, b"abc"))
    assert decode(raw(12, tlv(16, b"ab\x00c\x00"))).get(OC.MESSAGE) == b"ab\x00c\x00"
    assert decode(raw(5, tlv(22, b"\xfflab"))).get(OC.RELATIONSHIP_NAME) == b"\xfflab"


def test_hba_of_any_length_is_left_to_the_connection() -> None:
    assert decode(raw(5, tlv(11, bytes(5)))).get(OC.HBA) == bytes(5)
    assert decode(raw(5, tlv(11, b""))).get(OC.HBA) == b""


def test_unknown_enum_values_are_tolerated() -> None:
    assert MessageType(200).keyword == "unknown-200"
    assert RejectReason(77).keyword == "unknown-77"
    assert RejectReason(77).description == (
        "Undefined-77: This reason code is not defined in the protocol standard."
    )
    assert RejectReason(16).description == "Less critical binding information."
    assert RejectReason.UNKNOWN.description == "Unknown Error."
    assert all(reason.description for reason in RejectReason)
    msg = decode(raw(4, tlv(2, bytes(4)), tlv(21, b"\x4d"), tlv(3, b"\x63"), tlv(24, b"\x63")))
    assert msg.get(OC.REJECT_REASON) == 77 and msg.get(OC.BINDING_STATUS) == 99
    assert "reject-reason=unknown-77 binding-status=unknown-99" in msg.describe()
    state = decode(raw(10, tlv(24, b"\x63"), tlv(23, b"\x80")))
    assert state.get(OC.SERVER_STATE).keyword == "unknown-99"  # type: ignore[union-attr]
    assert state.get(OC.SERVER_FLAGS) == 0x80


def test_wire_error_is_a_remote_error_that_the_connection_names() -> None:
    error = refused(raw(13), "unknown-type")
    assert str(error) == "failover peer: unknown message type 13"
    named = error.with_host("10.99.1.2:647")
    assert (named.host, named.reason) == ("10.99.1.2:647", "unknown-type")
    assert named.message == error.message
    assert str(named) == "10.99.1.2:647: unknown message type 13"


# -- encoding -----------------------------------------------------------------------------


def test_message_keeps_the_order_given_and_normalises_codes() -> None:
    msg = message(3, 5, 6, (25, 0), (2, "10.0.0.1"))  # type: ignore[arg-type]
    assert msg.type is M.BNDUPD
    assert [code for code, _ in msg.options] == [OC.START_TIME_OF_STATE, OC.ASSIGNED_IP_ADDRESS]
    assert OC.ASSIGNED_IP_ADDRESS in msg and OC.MCLT not in msg
    assert msg.get(OC.MCLT, 7) == 7
    assert decode(encode(msg)) == msg


def test_ordered_drops_none_and_appends_what_dhcpd_never_sends_in_code_order() -> None:
    msg = ordered(
        M.BNDUPD,
        1,
        2,
        {
            OC.CLIENT_REQUEST_OPTIONS: b"r",
            OC.IP_FLAGS: IpFlag.RESERVED,
            OC.CLIENT_REPLY_OPTIONS: b"p",
            OC.CLIENT_IDENTIFIER: None,
            OC.BINDING_STATUS: BindingState.BACKUP,
            OC.ASSIGNED_IP_ADDRESS: "10.0.0.1",
        },
    )
    assert [code for code, _ in msg.options] == [2, 3, 12, 7, 8]
    refusal = {OC.MESSAGE: b"m", OC.REJECT_REASON: 16, OC.ASSIGNED_IP_ADDRESS: "10.0.0.1"}
    bndack = ordered(M.BNDACK, 1, 2, refusal)
    assert [code for code, _ in bndack.options] == [2, 21, 16]
    assert ordered(M.CONTACT, 1, 2, {}).options == ()


@pytest.mark.parametrize(
    ("msg", "words"),
    [
        (message(M.STATE, 1, 0, (OC.SERVER_STATE, 256)), "fit 1"),
        (message(M.STATE, 1, 0, (OC.START_TIME_OF_STATE, -1)), "fit 4"),
        (message(M.STATE, 1, 0, (OC.SERVER_FLAGS, True)), "fit 1"),
        (message(M.BNDUPD, 1, 0, (OC.IP_FLAGS, 1 << 16)), "fit 2"),
        (message(M.BNDUPD, 1, 0, (OC.BINDING_STATUS, "active")), "fit 1"),
        (message(M.BNDUPD, 1, 0, (OC.ASSIGNED_IP_ADDRESS, "10.0.0.256")), "not an IPv4"),
        (message(M.BNDUPD, 1, 0, (OC.ASSIGNED_IP_ADDRESS, bytes(4))), "dotted-quad"),
        (message(M.BNDUPD, 1, 0, (OC.ASSIGNED_IP_ADDRESS, "::1")), "not an IPv4"),
        (message(M.CONNECT, 1, 0, (OC.RELATIONSHIP_NAME, "lab")), "expected bytes"),
        (message(M.STATE, 1, 0, (OC.SERVER_STATE, 2), (OC.SERVER_STATE, 2)), "twice"),
        (message(M.STATE, 1, 0, (OC.HBA, bytes(32))), "does not read"),
        (message(M.CONNECTACK, 1, 0, (OC.MESSAGE_DIGEST, b"")), "does not read"),
        (message(M.CONNECTACK, 1, 0, (OC.VENDOR_CLASS, bytes(2033))), "over the 2048"),
        (message(M.CONTACT, 1 << 32, 0), "xid"),
        (message(M.CONTACT, 1, -1), "time"),
        (message(M(13), 1, 0), "unknown message type"),
    ],
)
def test_encode_refuses_what_must_not_be_sent(msg: Message, words: str) -> None:
    with pytest.raises(EncodeError, match=words):
        encode(msg)


def test_encode_reaches_exactly_the_size_limit() -> None:
    frame = encode(message(M.CONNECTACK, 1, 0, (OC.VENDOR_CLASS, bytes(2032))))
    assert len(frame) == MAX_MESSAGE_SIZE and decode(frame).get(OC.VENDOR_CLASS) == bytes(2032)


# -- FrameBuffer --------------------------------------------------------------------------


def test_frame_buffer_holds_a_partial_message_and_checks_the_length_at_once() -> None:
    buffer = FrameBuffer()
    big = raw(6, tlv(16, bytes(2032)))
    assert buffer.feed(big[:1]) == [] and buffer.pending == 1
    assert buffer.feed(big[1:-1]) == [] and buffer.pending == MAX_MESSAGE_SIZE - 1
    assert len(buffer.feed(big[-1:] + first(M.CONTACT)[:5])) == 1
    assert buffer.pending == 5

    broken = FrameBuffer()
    assert broken.feed(b"\x00") == []
    with pytest.raises(WireError) as info:
        broken.feed(b"\x05")  # length 5: refused before the rest arrives
    assert info.value.reason == "bad-length" and broken.pending == 0
    with pytest.raises(WireError) as again:
        broken.feed(first(M.CONTACT))
    assert again.value is info.value


def test_frame_buffer_stops_at_a_bad_message_in_the_middle() -> None:
    buffer = FrameBuffer()
    with pytest.raises(WireError, match="duplicate"):
        buffer.feed(first(M.CONTACT) + raw(10, *STATE_OPTIONS, tlv(24, b"\x02")) + FRAMES[0])
    with pytest.raises(WireError, match="duplicate"):
        buffer.feed(first(M.CONTACT))


# -- properties ---------------------------------------------------------------------------


def _values(code: int) -> st.SearchStrategy[object]:
    if code == OC.ASSIGNED_IP_ADDRESS:
        return st.ip_addresses(v=4).map(str)
    size = SIZES[code]
    if size is None:
        return st.binary(max_size=48)
    return st.integers(0, 256**size - 1)


@st.composite
def valid_messages(draw: st.DrawFn) -> Message:
    type_ = draw(st.sampled_from(list(M)))
    codes = draw(st.permutations(sorted(ALLOWED[type_] - {OC.DDNS})))
    codes = codes[: draw(st.integers(0, len(codes)))]
    u32 = st.integers(0, 2**32 - 1)
    options = tuple((OC(code), draw(_values(code))) for code in codes)
    return Message(type_, draw(u32), draw(u32), options)


@FUZZ
@given(valid_messages())
def test_valid_messages_round_trip(msg: Message) -> None:
    frame = encode(msg)
    assert decode(frame) == msg
    assert decode(frame).options == msg.options
    assert encode(decode(frame)) == frame
    isc_order = sorted(msg.options, key=lambda item: _isc_rank(msg.type, item[0]))
    rebuilt = ordered(msg.type, msg.xid, msg.time, dict(msg.options))
    assert rebuilt.options == tuple(isc_order)
    assert msg.describe().isprintable()
    if msg.get(OC.ASSIGNED_IP_ADDRESS) is not None:
        ipaddress.IPv4Address(msg.get(OC.ASSIGNED_IP_ADDRESS))


_ISC_ORDER = {
    M.POOLRESP: [1],
    M.BNDUPD: [2, 3, 4, 5, 13, 18, 25, 6, 12],
    M.BNDACK: [2, 3, 4, 5, 13, 18, 25, 6, 12, 21, 16],
    M.CONNECT: [22, 14, 19, 28, 20, 27, 15, 11],
    M.CONNECTACK: [22, 14, 19, 28, 20, 26, 21, 16],
    M.STATE: [24, 23, 25],
    M.DISCONNECT: [21, 16],
}


def _isc_rank(type_: MessageType, code: OptionCode) -> tuple[int, int]:
    order = _ISC_ORDER.get(type_, [])
    return (order.index(code), 0) if code in order else (len(order), code)


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=12)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _feed_all(chunks: list[bytes]) -> list[Message] | WireError:
    buffer = FrameBuffer()
    got: list[Message] = []
    for chunk in chunks:
        try:
            got += buffer.feed(chunk)
        except WireError as error:
            with pytest.raises(WireError) as again:
                buffer.feed(b"")
            assert again.value is error
            return error
        assert buffer.pending < MAX_MESSAGE_SIZE
    return got


@FUZZ
@given(st.data())
def test_frame_buffer_yields_the_same_messages_for_any_chunking(data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(FRAMES) - 1))
    frames = FRAMES[start : start + data.draw(st.integers(0, 40))]
    stream = b"".join(frames)
    assert _feed_all(data.draw(chunkings(stream))) == [decode(frame) for frame in frames]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(FRAMES)))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(frame)))
        if edit == "flip" and at < len(frame):
            frame[at] ^= draw(st.integers(1, 255))
        elif edit == "insert":
            frame[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del frame[at : at + draw(st.integers(1, 8))]
        else:
            del frame[at:]
    if draw(st.booleans()) and len(frame) >= 2:  # keep the length consistent: reach the options
        frame[:2] = min(len(frame), 0xFFFF).to_bytes(2, "big")
    return bytes(frame)


REASONS = {
    "bad-length",
    "unknown-type",
    "bad-offset",
    "duplicate-option",
    "bad-option-size",
    "truncated-option",
    "ddns-option",
}


def _decode_or_error(frame: bytes) -> Message | WireError:
    try:
        return decode(frame)
    except WireError as error:
        assert error.reason in REASONS
        return error


@FUZZ
@given(st.binary(max_size=300) | mutated_frames(), st.data())
def test_decode_and_frame_buffer_are_total(frame: bytes, data: st.DataObject) -> None:
    result = _decode_or_error(frame)
    streamed = _feed_all(data.draw(chunkings(frame)))
    if isinstance(result, Message):
        assert streamed == [result]
        assert result.describe().isprintable()
        if OC.DDNS not in result:
            assert decode(encode(result)) == result


@FUZZ
@given(st.binary(min_size=HEADER_SIZE - 4, max_size=60))
def test_random_bodies_behind_a_consistent_header_are_total(body: bytes) -> None:
    type_ = body[0] % 14 if body else 10
    _decode_or_error(raw(type_, body[1:]))


# -- load balancing -------------------------------------------------------------------------

MIX_TABLE_ROWS = """
251 175 119 215 81 14 79 191 103 49 181 143 186 157 0 232
31 32 55 60 152 58 17 237 174 70 160 144 220 90 57 223
59 3 18 140 111 166 203 196 134 243 124 95 222 179 197 65
180 48 36 15 107 46 233 130 165 30 123 161 209 23 97 16
40 91 219 61 100 10 210 109 250 127 22 138 29 108 244 67
207 9 178 204 74 98 126 249 167 116 34 77 193 200 121 5
20 113 71 35 128 13 182 94 25 226 227 199 75 27 41 245
230 224 43 225 177 26 155 150 212 142 218 115 241 73 88 105
39 114 62 255 192 201 145 214 168 158 221 148 154 122 12 84
82 163 44 139 228 236 205 242 217 11 187 146 159 64 86 239
195 42 106 198 118 112 184 172 87 2 173 117 176 229 247 253
137 185 99 164 102 147 45 66 231 52 141 211 194 206 246 238
56 110 78 248 63 240 189 93 92 51 53 183 19 171 72 50
33 104 101 69 8 252 83 120 76 135 85 54 202 125 188 213
96 235 136 208 162 129 190 132 156 38 47 1 7 254 24 4
216 131 89 21 28 133 37 153 149 80 170 68 6 169 234 151
"""
MIX_TABLE = [int(word) for word in MIX_TABLE_ROWS.split()]


def test_mixing_table_is_the_documented_permutation() -> None:
    assert sorted(MIX_TABLE) == list(range(256))
    # A one-byte key k hashes to T[1 ^ k]: read the module's table back through the hash.
    assert [load_balance_hash(bytes([1 ^ index])) for index in range(256)] == MIX_TABLE


@pytest.mark.parametrize(
    ("key", "bucket", "primary"),
    [
        (bytes.fromhex("01020000000001"), 14, True),  # client-id 01:02:00:00:00:00:01
        (b"abc", 170, False),
        (bytes.fromhex("020000000004"), 150, False),  # chaddr without the type byte
        (bytes.fromhex("020000000001"), 133, False),
        (b"", 0, True),
    ],
)
def test_worked_load_balance_examples(key: bytes, bucket: int, primary: bool) -> None:
    assert load_balance_hash(key) == bucket
    assert primary_serves(hba_from_split(128), bucket) is primary


def test_hash_starts_from_the_length_mod_256() -> None:
    h = 0
    for _ in range(256):
        h = MIX_TABLE[h]
    assert load_balance_hash(bytes(256)) == h


def test_hba_from_split() -> None:
    assert hba_from_split(128) == b"\xff" * 16 + b"\x00" * 16
    assert hba_from_split(0) == bytes(HBA_SIZE)
    assert hba_from_split(256) == b"\xff" * HBA_SIZE
    assert hba_from_split(3) == b"\x07" + bytes(31)
    assert hba_from_split(9) == b"\xff\x01" + bytes(30)
    for split in range(257):
        hba = hba_from_split(split)
        assert [primary_serves(hba, b) for b in range(256)] == [b < split for b in range(256)]
    for bad in (-1, 257):
        with pytest.raises(ValueError):
            hba_from_split(bad)


def test_hba_from_text() -> None:
    text = ":".join(["ff"] * 16 + ["0"] * 15 + ["A"])
    assert hba_from_text(text) == b"\xff" * 16 + bytes(15) + b"\x0a"
    for bad in ("ff:" * 31 + "ff:", ":".join(["ff"] * 31), ":".join(["fff"] * 32), "x"):
        with pytest.raises(ValueError):
            hba_from_text(bad)


def test_primary_serves_needs_a_whole_hba_and_a_byte_bucket() -> None:
    assert primary_serves(b"\x01" + bytes(31), 0) and not primary_serves(b"\x01" + bytes(31), 8)
    assert primary_serves(bytes(31) + b"\x80", 255)
    with pytest.raises(ValueError):
        primary_serves(bytes(31), 0)
    with pytest.raises(ValueError):
        primary_serves(bytes(32), 256)
