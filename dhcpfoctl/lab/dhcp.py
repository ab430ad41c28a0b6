"""DHCPv4 messages (RFC 2131/2132) as the lab's server and clients exchange them: sans-IO.

A :class:`Packet` is the BOOTP header plus its options in arrival order; ``decode`` and
``encode`` are the only conversions between it and bytes. Option values stay raw bytes:
the accessors below interpret the few options the lab server and clients act on.

:func:`decode` is total: the bytes come from the network, so anything malformed raises
:class:`DhcpDecodeError` (a :class:`~dhcpfoctl.errors.RemoteError`) and nothing else. It
joins the parts of a long option (RFC 3396: options field, then ``file``, then ``sname``)
and reads options from ``sname``/``file`` when option 52 says they are overloaded; the
overload option itself is consumed, and an overloaded field decodes as empty.
:func:`encode` never overloads: it splits a value longer than 255 bytes into consecutive
parts (RFC 3396) and raises ``ValueError`` on a field out of range (our bug, not a peer's).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from dhcpfoctl.errors import RemoteError
from dhcpfoctl.model import WireEnum, address_to_int

__all__ = [
    "BOOTREPLY",
    "BOOTREQUEST",
    "BROADCAST_FLAG",
    "DhcpDecodeError",
    "MessageType",
    "Option",
    "Packet",
    "decode",
    "encode",
    "encode_address",
    "encode_u32",
    "reply",
]

BOOTREQUEST: Final = 1
BOOTREPLY: Final = 2
#: The ``flags`` bit a client sets to ask for a broadcast reply.
BROADCAST_FLAG: Final = 0x8000
#: RFC 2131 §3: the four bytes that start the options field.
MAGIC_COOKIE: Final = b"\x63\x82\x53\x63"
#: RFC 951's BOOTP message size, the minimum relays and old clients accept.
MIN_PACKET_SIZE: Final = 300

# op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr chaddr sname file
_HEADER: Final = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_OPTIONS_START: Final = _HEADER.size + len(MAGIC_COOKIE)
_MAX_PART: Final = 255
# Option 52's values: which header fields carry options (RFC 2132 §9.3).
_OVERLOAD_FILE: Final = 1
_OVERLOAD_SNAME: Final = 2


class MessageType(WireEnum):
    """Option 53 values."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(WireEnum):
    """The option codes the lab reads or writes (RFC 2132)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTERS = 3
    DOMAIN_NAME_SERVERS = 6
    HOST_NAME = 12
    DOMAIN_NAME = 15
    BROADCAST_ADDRESS = 28
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_IDENTIFIER = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS = 60
    CLIENT_IDENTIFIER = 61
    RELAY_AGENT_INFORMATION = 82
    END = 255


class DhcpDecodeError(RemoteError):
    """Bytes that are not a DHCP message; ``reason`` is a stable keyword for counting.

    ``reason`` is one of ``short``, ``cookie``, ``hlen``, ``truncated``, ``overload``. The
    codec does not know the sender; the I/O layer that does passes ``host``.
    """

    def __init__(self, reason: str, detail: str, host: str = "DHCP peer") -> None:
        super().__init__(host, f"not a DHCP message: {detail}")
        self.reason = reason


@dataclass(slots=True)
class Packet:
    """One DHCP message. Addresses are dotted quads; ``chaddr`` holds ``hlen`` bytes."""

    op: int
    xid: int
    chaddr: bytes
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: str = "0.0.0.0"
    yiaddr: str = "0.0.0.0"
    siaddr: str = "0.0.0.0"
    giaddr: str = "0.0.0.0"
    sname: bytes = b""
    file: bytes = b""
    #: Options other than PAD/END, in order; a code appears once (RFC 3396 parts joined).
    options: dict[int, bytes] = field(default_factory=dict)

    @property
    def message_type(self) -> MessageType | None:
        value = self.options.get(Option.MESSAGE_TYPE)
        return MessageType(value[0]) if value is not None and len(value) == 1 else None

    @property
    def client_id(self) -> bytes | None:
        return self.options.get(Option.CLIENT_IDENTIFIER)

    @property
    def hash_key(self) -> bytes:
        """What dhcpd's ``load_balance_mine`` hashes: option 61 if present, else chaddr."""
        client_id = self.client_id
        return self.chaddr if client_id is None else client_id

    @property
    def requested_address(self) -> str | None:
        return self.option_address(Option.REQUESTED_ADDRESS)

    @property
    def server_identifier(self) -> str | None:
        return self.option_address(Option.SERVER_IDENTIFIER)

    @property
    def lease_time(self) -> int | None:
        return self.option_u32(Option.LEASE_TIME)

    @property
    def hostname(self) -> str | None:
        """Option 12 as text; undecodable bytes become ``\\xNN`` (still untrusted text)."""
        value = self.options.get(Option.HOST_NAME)
        return None if value is None else value.decode("utf-8", "backslashreplace")

    def option_address(self, code: int) -> str | None:
        """A one-address option as a dotted quad; None if absent or not 4 bytes long."""
        value = self.options.get(code)
        return _address(value) if value is not None and len(value) == 4 else None

    def option_u32(self, code: int) -> int | None:
        """A 32-bit unsigned option; None if absent or not 4 bytes long."""
        value = self.options.get(code)
        return int.from_bytes(value, "big") if value is not None and len(value) == 4 else None


def encode_address(address: str) -> bytes:
    """A dotted quad as an option value; ``ValueError`` if it is not one."""
    return address_to_int(address).to_bytes(4, "big")


def encode_u32(value: int) -> bytes:
    """An unsigned 32-bit option value; ``OverflowError`` outside 0..2**32-1."""
    return value.to_bytes(4, "big")


def _address(raw: bytes) -> str:
    return ".".join(str(byte) for byte in raw)


def decode(data: bytes) -> Packet:
    """One UDP payload as a :class:`Packet`; :class:`DhcpDecodeError` if it is not one."""
    if len(data) < _OPTIONS_START:
        raise DhcpDecodeError("short", f"{len(data)} bytes, fewer than {_OPTIONS_START}")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     file) = _HEADER.unpack_from(data)  # fmt: skip
    if hlen > len(chaddr):
        raise DhcpDecodeError("hlen", f"hardware address length {hlen} exceeds 16")
    if data[_HEADER.size : _OPTIONS_START] != MAGIC_COOKIE:
        raise DhcpDecodeError("cookie", "no DHCP magic cookie")
    parts: dict[int, list[bytes]] = {}
    _read_options(data, _OPTIONS_START, "options", parts)
    overload = parts.pop(Option.OVERLOAD, None)
    if overload is not None:
        value = b"".join(overload)
        if len(value) != 1 or not 1 <= value[0] <= 3:
            raise DhcpDecodeError("overload", f"option overload value {value.hex()} not 1..3")
        # RFC 3396 §7 joins parts in this order: options field, file, sname.
        if value[0] & _OVERLOAD_FILE:
            _read_options(file, 0, "file", parts)
            file = b""
        if value[0] & _OVERLOAD_SNAME:
            _read_options(sname, 0, "sname", parts)
            sname = b""
        # A 52 inside an overloaded field is meaningless (RFC 2131 §4.1): dropped.
        parts.pop(Option.OVERLOAD, None)
    return Packet(
        op=op,
        xid=xid,
        chaddr=chaddr[:hlen],
        htype=htype,
        hops=hops,
        secs=secs,
        flags=flags,
        ciaddr=_address(ciaddr),
        yiaddr=_address(yiaddr),
        siaddr=_address(siaddr),
        giaddr=_address(giaddr),
        sname=sname.rstrip(b"\0"),
        file=file.rstrip(b"\0"),
        options={code: b"".join(values) for code, values in parts.items()},
    )


def _read_options(buffer: bytes, offset: int, where: str, parts: dict[int, list[bytes]]) -> None:
    """Appends each option of ``buffer[offset:]`` to ``parts``, up to END or the end."""
    while offset < len(buffer):
        code = buffer[offset]
        if code == Option.END:
            return
        if code == Option.PAD:
            offset += 1
            continue
        if offset + 2 > len(buffer) or offset + 2 + buffer[offset + 1] > len(buffer):
            raise DhcpDecodeError("truncated", f"option {code} runs past the end of {where}")
        length = buffer[offset + 1]
        parts.setdefault(code, []).append(buffer[offset + 2 : offset + 2 + length])
        offset += 2 + length


def encode(packet: Packet) -> bytes:
    """The packet's bytes: header, cookie, options in dict order, END, padded to 300."""
    options = bytearray()
    for code, value in packet.options.items():
        if not Option.PAD < code < Option.END:
            raise ValueError(f"option code {code} cannot carry a value")
        # An empty value is one empty part; a long one is split (RFC 3396 §5).
        for start in range(0, max(len(value), 1), _MAX_PART):
            part = value[start : start + _MAX_PART]
            options += bytes((code, len(part))) + part
    options.append(Option.END)
    if len(packet.chaddr) > 16 or len(packet.sname) > 64 or len(packet.file) > 128:
        raise ValueError("chaddr, sname or file longer than its field")
    header = _HEADER.pack(
        packet.op,
        packet.htype,
        len(packet.chaddr),
        packet.hops,
        packet.xid,
        packet.secs,
        packet.flags,
        encode_address(packet.ciaddr),
        encode_address(packet.yiaddr),
        encode_address(packet.siaddr),
        encode_address(packet.giaddr),
        packet.chaddr,
        packet.sname,
        packet.file,
    )
    data = header + MAGIC_COOKIE + options
    return data.ljust(MIN_PACKET_SIZE, b"\0")


def reply(
    request: Packet,
    message_type: MessageType,
    *,
    yiaddr: str = "0.0.0.0",
    options: dict[int, bytes],
) -> Packet:
    """A server's reply to ``request``, its fields as RFC 2131 §4.3.1 table 3 says.

    xid, htype, chaddr, flags and giaddr come from the request; ciaddr only in an ACK
    (the client's address in a renewal or an INFORM), and hops, secs and siaddr are 0. The
    options are the message type, then ``options``, then the request's relay agent
    information, which a server echoes last (RFC 3046 §2.2).
    """
    reply_options = {Option.MESSAGE_TYPE.value: bytes((message_type,))}
    reply_options.update(
        (code, value) for code, value in options.items() if code != Option.MESSAGE_TYPE
    )
    relay_info = request.options.get(Option.RELAY_AGENT_INFORMATION)
    if relay_info is not None:
        reply_options.pop(Option.RELAY_AGENT_INFORMATION, None)
        reply_options[Option.RELAY_AGENT_INFORMATION.value] = relay_info
    return Packet(
        op=BOOTREPLY,
        xid=request.xid,
        chaddr=request.chaddr,
        htype=request.htype,
        flags=request.flags,
        ciaddr=request.ciaddr if message_type == MessageType.ACK else "0.0.0.0",
        yiaddr=yiaddr,
        giaddr=request.giaddr,
        options=reply_options,
    )
