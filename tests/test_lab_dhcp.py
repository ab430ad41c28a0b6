"""The lab's DHCPv4 codec: a hand-checked DISCOVER, RFC 3396 joins and splits, option
overload, accessors, the reply builder, and hypothesis for round trips and totality."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhcpfoctl.errors import RemoteError
from dhcpfoctl.lab.dhcp import (
    BOOTREPLY,
    BOOTREQUEST,
    BROADCAST_FLAG,
    DhcpDecodeError,
    MessageType,
    Option,
    Packet,
    decode,
    encode,
    encode_address,
    encode_u32,
    reply,
)

# A DISCOVER from 02:00:00:00:00:01, xid 0x12345678, secs 3, broadcast flag, relayed by
# 10.0.0.1 (hops 1), asking for 10.0.0.50 with host name "pc": written out field by field
# from RFC 2131 §2 figure 1 and RFC 2132, not by the encoder.
GOLDEN_DISCOVER = (
    bytes.fromhex(
        "01"  # op BOOTREQUEST
        "01"  # htype ethernet
        "06"  # hlen
        "01"  # hops
        "12345678"  # xid
        "0003"  # secs
        "8000"  # flags: broadcast
        "00000000"  # ciaddr
        "00000000"  # yiaddr
        "00000000"  # siaddr
        "0a000001"  # giaddr 10.0.0.1
        "020000000001" + "00" * 10  # chaddr, 16 bytes
    )
    + bytes(64)  # sname
    + bytes(128)  # file
    + bytes.fromhex(
        "63825363"  # magic cookie
        "350101"  # 53 message type: DISCOVER
        "32040a000032"  # 50 requested address 10.0.0.50
        "0c02"
        + b"pc".hex()  # 12 host name
        + "ff"  # END
    )
)


def discover() -> Packet:
    return Packet(
        op=BOOTREQUEST,
        xid=0x12345678,
        chaddr=bytes.fromhex("020000000001"),
        hops=1,
        secs=3,
        flags=BROADCAST_FLAG,
        giaddr="10.0.0.1",
        options={
            Option.MESSAGE_TYPE: bytes((MessageType.DISCOVER,)),
            Option.REQUESTED_ADDRESS: encode_address("10.0.0.50"),
            Option.HOST_NAME: b"pc",
        },
    )


def test_golden_discover_encodes_byte_for_byte_padded_to_300() -> None:
    assert len(GOLDEN_DISCOVER) == 236 + 4 + 3 + 6 + 4 + 1
    assert encode(discover()) == GOLDEN_DISCOVER.ljust(300, b"\0")


def test_golden_discover_decodes_with_its_accessors() -> None:
    packet = decode(GOLDEN_DISCOVER)
    assert packet == discover()
    assert packet.message_type is MessageType.DISCOVER
    assert packet.requested_address == "10.0.0.50"
    assert packet.hostname == "pc"
    assert packet.client_id is None
    assert packet.hash_key == bytes.fromhex("020000000001")
    assert packet.server_identifier is None
    assert packet.lease_time is None


def test_hash_key_is_the_client_identifier_when_present() -> None:
    packet = discover()
    packet.options[Option.CLIENT_IDENTIFIER] = b"\x01\x02\x00\x00\x00\x00\x01"
    assert packet.client_id == packet.hash_key == b"\x01\x02\x00\x00\x00\x00\x01"


def test_accessors_ignore_values_of_the_wrong_size() -> None:
    packet = Packet(
        op=BOOTREPLY,
        xid=1,
        chaddr=b"",
        options={
            Option.MESSAGE_TYPE: b"",
            Option.SERVER_IDENTIFIER: b"\x01\x02\x03",
            Option.LEASE_TIME: b"\x00\x00\x0e\x10\x00",
            Option.HOST_NAME: b"a\xffb",
        },
    )
    assert packet.message_type is None
    assert packet.server_identifier is None
    assert packet.lease_time is None
    assert packet.hostname == "a\\xffb"


def test_unknown_message_type_is_kept_as_a_wire_value() -> None:
    packet = Packet(op=BOOTREQUEST, xid=1, chaddr=b"", options={Option.MESSAGE_TYPE: b"\x63"})
    assert packet.message_type == 99
    assert packet.message_type.keyword == "unknown-99"


def test_value_builders() -> None:
    assert encode_address("192.0.2.1") == b"\xc0\x00\x02\x01"
    assert encode_u32(3600) == b"\x00\x00\x0e\x10"
    with pytest.raises(ValueError):
        encode_address("192.0.2")
    with pytest.raises(OverflowError):
        encode_u32(1 << 32)


def test_long_option_is_split_on_encode_and_joined_on_decode() -> None:
    packet = discover()
    packet.options[Option.VENDOR_CLASS] = bytes(range(256)) * 2 + b"x"  # 513 bytes
    data = encode(packet)
    # 255 + 255 + 3 bytes, three consecutive instances of option 60.
    start = data.index(b"\x3c\xff\x00\x01\x02")
    assert data[start + 257 : start + 259] == b"\x3c\xff"
    assert data[start + 514 : start + 516] == b"\x3c\x03"
    assert decode(data).options[Option.VENDOR_CLASS] == packet.options[Option.VENDOR_CLASS]


def _raw(options: bytes, *, sname: bytes = b"", file: bytes = b"") -> bytes:
    header = struct.pack("!BBBBIHH16s16s", 1, 1, 6, 0, 7, 0, 0, bytes(16), b"\x02" * 6)
    return header + sname.ljust(64, b"\0") + file.ljust(128, b"\0") + b"c\x82Sc" + options


def test_parts_of_an_option_are_joined_across_fields_options_file_sname() -> None:
    data = _raw(
        b"\x0c\x02ab\x34\x01\x03\x0c\x01c\xff",
        file=b"\x0c\x02de\xff",
        sname=b"\x0c\x01f\x0f\x03lab\xff",
    )
    packet = decode(data)
    assert packet.options == {Option.HOST_NAME: b"abcdef", Option.DOMAIN_NAME: b"lab"}
    assert packet.sname == packet.file == b""


def test_overload_of_file_only_keeps_sname_as_a_name() -> None:
    packet = decode(_raw(b"\x34\x01\x01\xff", sname=b"boot.example", file=b"\x33\x04\0\0\0\x3c"))
    assert packet.sname == b"boot.example"
    assert packet.file == b""
    assert packet.lease_time == 60
    assert Option.OVERLOAD not in packet.options


def test_without_overload_sname_and_file_are_names_not_options() -> None:
    packet = decode(_raw(b"\xff", sname=b"\x0c\x01x", file=b"pxelinux.0"))
    assert packet.sname == b"\x0c\x01x"
    assert packet.file == b"pxelinux.0"
    assert packet.options == {}


def test_pad_is_skipped_and_a_missing_end_is_tolerated() -> None:
    assert decode(_raw(b"\0\0\x35\x01\x05\0")).message_type is MessageType.ACK


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short"),
        (_raw(b"")[:-1], "short"),
        (_raw(b"")[:-4] + b"\x63\x82\x53\x64", "cookie"),
        (_raw(b"")[:2] + b"\x11" + _raw(b"")[3:], "hlen"),
        (_raw(b"\x35"), "truncated"),
        (_raw(b"\x0c\x05abc"), "truncated"),
        (_raw(b"\x34\x01\x04\xff"), "overload"),
        (_raw(b"\x34\x00\xff"), "overload"),
        (_raw(b"\x34\x01\x02\xff", sname=bytes(62) + b"\x0c\x09"), "truncated"),
    ],
)
def test_malformed_messages_raise_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DhcpDecodeError) as caught:
        decode(data)
    assert caught.value.reason == reason
    assert isinstance(caught.value, RemoteError)
    assert caught.value.message.startswith("not a DHCP message: ")


@pytest.mark.parametrize("code", [Option.PAD, Option.END])
def test_encode_refuses_pad_and_end_as_options(code: int) -> None:
    packet = discover()
    packet.options[code] = b""
    with pytest.raises(ValueError):
        encode(packet)


def test_encode_refuses_oversized_fields() -> None:
    packet = discover()
    packet.chaddr = bytes(17)
    with pytest.raises(ValueError):
        encode(packet)


def test_reply_copies_fields_as_rfc2131_table_3() -> None:
    request = Packet(
        op=BOOTREQUEST,
        xid=42,
        chaddr=b"\x02\x00\x00\x00\x00\x09",
        hops=1,
        secs=9,
        flags=BROADCAST_FLAG,
        ciaddr="10.0.0.9",
        giaddr="10.0.0.1",
        options={
            Option.MESSAGE_TYPE: bytes((MessageType.REQUEST,)),
            Option.RELAY_AGENT_INFORMATION: b"\x01\x02ab",
        },
    )
    extra = {
        Option.SERVER_IDENTIFIER: encode_address("10.0.0.2"),
        Option.LEASE_TIME: encode_u32(60),
    }
    ack = reply(request, MessageType.ACK, yiaddr="10.0.0.9", options=extra)
    assert (ack.op, ack.xid, ack.chaddr, ack.flags, ack.giaddr) == (
        BOOTREPLY,
        42,
        request.chaddr,
        BROADCAST_FLAG,
        "10.0.0.1",
    )
    assert (ack.hops, ack.secs, ack.siaddr, ack.ciaddr, ack.yiaddr) == (
        0,
        0,
        "0.0.0.0",
        "10.0.0.9",
        "10.0.0.9",
    )
    assert list(ack.options) == [53, 54, 51, 82]
    assert ack.message_type is MessageType.ACK
    assert ack.options[Option.RELAY_AGENT_INFORMATION] == b"\x01\x02ab"
    nak = reply(request, MessageType.NAK, options={Option.MESSAGE: b"no"})
    assert (nak.ciaddr, nak.yiaddr, list(nak.options)) == ("0.0.0.0", "0.0.0.0", [53, 56, 82])
    offer = reply(request, MessageType.OFFER, yiaddr="10.0.0.9", options={})
    assert offer.ciaddr == "0.0.0.0"
    assert decode(encode(offer)) == offer


_addresses = st.builds(
    lambda n: ".".join(str(b) for b in n.to_bytes(4, "big")), st.integers(0, 2**32 - 1)
)
_option_codes = st.integers(1, 254).filter(lambda code: code != Option.OVERLOAD)
_packets = st.builds(
    Packet,
    op=st.sampled_from([BOOTREQUEST, BOOTREPLY]),
    xid=st.integers(0, 2**32 - 1),
    chaddr=st.binary(max_size=16),
    htype=st.integers(0, 255),
    hops=st.integers(0, 255),
    secs=st.integers(0, 0xFFFF),
    flags=st.integers(0, 0xFFFF),
    ciaddr=_addresses,
    yiaddr=_addresses,
    siaddr=_addresses,
    giaddr=_addresses,
    # Header names are NUL-padded: a trailing NUL cannot survive, by design.
    sname=st.binary(max_size=64).filter(lambda b: not b.endswith(b"\0")),
    file=st.binary(max_size=128).filter(lambda b: not b.endswith(b"\0")),
    options=st.dictionaries(_option_codes, st.binary(max_size=600), max_size=8),
)


@given(_packets)
@settings(max_examples=300)
def test_encode_decode_round_trip(packet: Packet) -> None:
    data = encode(packet)
    assert len(data) >= 300
    assert decode(data) == packet


@given(st.binary(max_size=700))
@settings(max_examples=500)
def test_decode_of_arbitrary_bytes_raises_only_decode_error(data: bytes) -> None:
    try:
        packet = decode(data)
    except DhcpDecodeError as error:
        assert error.reason in {"short", "cookie", "hlen", "truncated", "overload"}
    else:
        assert len(packet.chaddr) <= 16


@given(st.binary(min_size=1, max_size=400), st.integers(0, 3))
@settings(max_examples=300)
def test_decode_of_valid_header_with_random_options_and_overload_is_total(
    tail: bytes, overload: int
) -> None:
    options = (b"\x34\x01" + bytes((overload,)) if overload else b"") + tail
    try:
        decode(_raw(options, sname=tail[:64], file=tail[::-1][:128]))
    except DhcpDecodeError as error:
        assert error.reason in {"truncated", "overload"}
