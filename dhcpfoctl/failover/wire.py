"""Sans-IO codec for dhcpd 4.4's failover messages: bytes ⇄ :class:`Message`, and the HBA.

Framing (docs/failover-protocol.md §2, ``server/failover.c``): every message starts with a
12-byte header — length (u16, *including* the header, 12..2048), type (u8, 1..12), payload
offset (u8, dhcpd sends 12), the sender's UNIX time (u32) and the xid (u32) — followed by
options as ``code (u16), length (u16), data`` up to the message length. Integers are
big-endian. TCP carries messages back to back, so :class:`FrameBuffer` splits a stream on
the length field and :func:`decode` reads one complete message.

:func:`decode` applies dhcpd's own receive rules (``do_a_failover_option`` in
``server/failover.c``, the tables in ``server/stables.c``): unknown codes and options the
message type does not read are skipped, while a duplicate, a wrong fixed size, an option
running past the end or a non-empty DDNS option is a protocol error on which dhcpd drops
the link. We refuse what dhcpd refuses, plus two header oddities it mishandles (see
:func:`decode`), so every frame we accept is one dhcpd accepts.

The decoder is *total*: the bytes come from the network, so any byte string yields a
:class:`Message` or a :class:`WireError` (a :class:`~dhcpfoctl.errors.RemoteError`,
reported like every other peer failure), never an ``IndexError``, ``struct.error`` or
``UnicodeError`` from deep inside. Every length is checked before it is used, and option
data stays ``bytes`` (dhcpd compares names byte for byte, and text is not NUL-terminated).
:func:`encode`, in contrast, raises :class:`EncodeError` (a ``ValueError``): a message we
cannot send is a bug on our side, not the peer's.

No sockets and no clock here; the caller supplies ``time`` and ``xid``.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from dhcpfoctl.errors import RemoteError
from dhcpfoctl.model import BindingState, FailoverState, WireEnum, address_to_int

__all__ = [
    "HBA_SIZE",
    "HEADER_SIZE",
    "MAX_MESSAGE_SIZE",
    "EncodeError",
    "FrameBuffer",
    "IpFlag",
    "Message",
    "MessageType",
    "OptionCode",
    "OptionValue",
    "RejectReason",
    "ServerFlag",
    "WireError",
    "decode",
    "encode",
    "hba_from_split",
    "hba_from_text",
    "load_balance_hash",
    "message",
    "ordered",
    "primary_serves",
]

HEADER_SIZE: Final = 12
#: DHCP_FAILOVER_MAX_MESSAGE_SIZE (``includes/failover.h``); larger lengths drop the link.
MAX_MESSAGE_SIZE: Final = 2048
#: The hash-bucket-assignment bitmap: 256 buckets, one bit each.
HBA_SIZE: Final = 32

_HEADER: Final = struct.Struct("!HBBII")
_TLV: Final = struct.Struct("!HH")
_U32_LIMIT: Final = 1 << 32
_MAX_CODE: Final = 29  # FTO_MAX

OptionValue = int | str | bytes


class MessageType(WireEnum):
    """Failover message types (FTM_* in ``includes/failover.h``)."""

    POOLREQ = 1
    POOLRESP = 2
    BNDUPD = 3
    BNDACK = 4
    CONNECT = 5
    CONNECTACK = 6
    UPDREQALL = 7
    UPDDONE = 8
    UPDREQ = 9
    STATE = 10
    CONTACT = 11
    DISCONNECT = 12


class OptionCode(WireEnum):
    """Option codes of draft 12 as dhcpd 4.4 numbers them (FTO_* in ``includes/failover.h``)."""

    ADDRESSES_TRANSFERRED = 1
    ASSIGNED_IP_ADDRESS = 2
    BINDING_STATUS = 3
    CLIENT_IDENTIFIER = 4
    CLIENT_HARDWARE_ADDRESS = 5
    CLIENT_LAST_TRANSACTION_TIME = 6
    CLIENT_REPLY_OPTIONS = 7
    CLIENT_REQUEST_OPTIONS = 8
    DDNS = 9
    DELAYED_SERVICE = 10
    HBA = 11
    IP_FLAGS = 12
    LEASE_EXPIRATION_TIME = 13
    MAX_UNACKED_BNDUPD = 14
    MCLT = 15
    MESSAGE = 16
    MESSAGE_DIGEST = 17
    POTENTIAL_EXPIRATION_TIME = 18
    RECEIVE_TIMER = 19
    PROTOCOL_VERSION = 20
    REJECT_REASON = 21
    RELATIONSHIP_NAME = 22
    SERVER_FLAGS = 23
    SERVER_STATE = 24
    START_TIME_OF_STATE = 25
    TLS_REPLY = 26
    TLS_REQUEST = 27
    VENDOR_CLASS = 28
    VENDOR_OPTIONS = 29


class RejectReason(WireEnum):
    """reject-reason values (FTR_* in ``includes/failover.h``); see :attr:`description`."""

    ILLEGAL_IP_ADDR = 1
    FATAL_CONFLICT = 2
    MISSING_BINDINFO = 3
    TIMEMISMATCH = 4
    INVALID_MCLT = 5
    MISC = 6
    DUPLICATE_CONNECTION = 7
    INVALID_PARTNER = 8
    TLS_UNSUPPORTED = 9
    TLS_UNCONFIGURED = 10
    TLS_REQUIRED = 11
    DIGEST_UNSUPPORTED = 12
    DIGEST_UNCONFIGURED = 13
    VERSION_MISMATCH = 14
    OUTDATED_BIND_INFO = 15
    LESS_CRIT_BIND_INFO = 16
    NO_TRAFFIC = 17
    HBA_CONFLICT = 18
    IP_NOT_RESERVED = 19
    IP_DIGEST_FAILURE = 20
    IP_MISSING_DIGEST = 21
    UNKNOWN = 254

    @property
    def description(self) -> str:
        """The text dhcpd logs for this reason (``dhcp_failover_reject_reason_print``)."""
        text = _REJECT_TEXT.get(self._value_)
        if text is None:
            return (
                f"Undefined-{self._value_}: This reason code is not defined in the "
                "protocol standard."
            )
        return text


# dhcpd's wording, so that our logs and dhcpd's read alike (server/failover.c).
_REJECT_TEXT: Final[dict[int, str]] = {
    1: "Illegal IP address (not part of any address pool).",
    2: "Fatal conflict exists: address in use by other client.",
    3: "Missing binding information.",
    4: "Connection rejected, time mismatch too great.",
    5: "Connection rejected, invalid MCLT.",
    6: "Connection rejected, unknown reason.",
    7: "Connection rejected, duplicate connection.",
    8: "Connection rejected, invalid failover partner.",
    9: "TLS not supported.",
    10: "TLS supported but not configured.",
    11: "TLS required but not supported by partner.",
    12: "Message digest not supported.",
    13: "Message digest not configured.",
    14: "Protocol version mismatch.",
    15: "Outdated binding information.",
    16: "Less critical binding information.",
    17: "No traffic within sufficient time.",
    18: "Hash bucket assignment conflict.",
    19: "IP not reserved on this server.",
    20: "Message digest failed to compare.",
    21: "Missing message digest.",
    254: "Unknown Error.",
}


class ServerFlag(enum.IntFlag):
    """server-flags bits: STARTUP = the sender is still in its startup phase."""

    STARTUP = 1


class IpFlag(enum.IntFlag):
    """IP-flags bits of a BNDUPD (``includes/failover.h``)."""

    RESERVED = 1
    BOOTP = 2


_O = OptionCode

#: Fixed-size options and their size in bytes; every other defined option is a byte
#: string. DDNS is declared fixed with element size 0 (``server/stables.c``), so only an
#: empty DDNS option passes dhcpd's size check.
_FIXED_SIZE: Final[dict[OptionCode, int]] = {
    _O.ADDRESSES_TRANSFERRED: 4,
    _O.ASSIGNED_IP_ADDRESS: 4,
    _O.BINDING_STATUS: 1,
    _O.CLIENT_LAST_TRANSACTION_TIME: 4,
    _O.DDNS: 0,
    _O.DELAYED_SERVICE: 1,
    _O.IP_FLAGS: 2,
    _O.LEASE_EXPIRATION_TIME: 4,
    _O.MAX_UNACKED_BNDUPD: 4,
    _O.MCLT: 4,
    _O.POTENTIAL_EXPIRATION_TIME: 4,
    _O.RECEIVE_TIMER: 4,
    _O.PROTOCOL_VERSION: 1,
    _O.REJECT_REASON: 1,
    _O.SERVER_FLAGS: 1,
    _O.SERVER_STATE: 1,
    _O.START_TIME_OF_STATE: 4,
    _O.TLS_REPLY: 1,
    _O.TLS_REQUEST: 1,  # draft 12 says 2 bytes; dhcpd 4.4 sends and requires 1 (stables.c)
}

#: Integer options decoded as an enum or flag type (all int subclasses).
_INT_TYPES: Final[dict[OptionCode, Callable[[int], int]]] = {
    _O.BINDING_STATUS: BindingState,
    _O.SERVER_STATE: FailoverState,
    _O.REJECT_REASON: RejectReason,
    _O.SERVER_FLAGS: ServerFlag,
    _O.IP_FLAGS: IpFlag,
}

#: Byte-string options that carry text, shown quoted by :meth:`Message.describe`.
_TEXT: Final = frozenset({_O.MESSAGE, _O.RELATIONSHIP_NAME, _O.VENDOR_CLASS})

_BNDUPD_ORDER: Final = (
    _O.ASSIGNED_IP_ADDRESS,
    _O.BINDING_STATUS,
    _O.CLIENT_IDENTIFIER,
    _O.CLIENT_HARDWARE_ADDRESS,
    _O.LEASE_EXPIRATION_TIME,
    _O.POTENTIAL_EXPIRATION_TIME,
    _O.START_TIME_OF_STATE,
    _O.CLIENT_LAST_TRANSACTION_TIME,
    _O.IP_FLAGS,
)

#: The order in which dhcpd's dhcp_failover_send_* functions put options
#: (``server/failover.c``); a BNDACK's lease options follow BNDUPD's order.
_ISC_ORDER: Final[dict[MessageType, tuple[OptionCode, ...]]] = {
    MessageType.POOLRESP: (_O.ADDRESSES_TRANSFERRED,),
    MessageType.BNDUPD: _BNDUPD_ORDER,
    MessageType.BNDACK: (*_BNDUPD_ORDER, _O.REJECT_REASON, _O.MESSAGE),
    MessageType.CONNECT: (
        _O.RELATIONSHIP_NAME,
        _O.MAX_UNACKED_BNDUPD,
        _O.RECEIVE_TIMER,
        _O.VENDOR_CLASS,
        _O.PROTOCOL_VERSION,
        _O.TLS_REQUEST,
        _O.MCLT,
        _O.HBA,
    ),
    MessageType.CONNECTACK: (
        _O.RELATIONSHIP_NAME,
        _O.MAX_UNACKED_BNDUPD,
        _O.RECEIVE_TIMER,
        _O.VENDOR_CLASS,
        _O.PROTOCOL_VERSION,
        _O.TLS_REPLY,
        _O.REJECT_REASON,
        _O.MESSAGE,
    ),
    MessageType.STATE: (_O.SERVER_STATE, _O.SERVER_FLAGS, _O.START_TIME_OF_STATE),
    MessageType.DISCONNECT: (_O.REJECT_REASON, _O.MESSAGE),
}

_LEASE_OPTIONS: Final = frozenset(
    {
        _O.ASSIGNED_IP_ADDRESS,
        _O.BINDING_STATUS,
        _O.CLIENT_IDENTIFIER,
        _O.CLIENT_HARDWARE_ADDRESS,
        _O.DDNS,
        _O.IP_FLAGS,
        _O.LEASE_EXPIRATION_TIME,
        _O.POTENTIAL_EXPIRATION_TIME,
        _O.START_TIME_OF_STATE,
        _O.CLIENT_LAST_TRANSACTION_TIME,
        _O.CLIENT_REQUEST_OPTIONS,
        _O.CLIENT_REPLY_OPTIONS,
    }
)

#: The options dhcpd reads in each message type (``fto_allowed`` in ``server/stables.c``);
#: any other option is skipped on receipt. message-digest is in none of them.
_ALLOWED: Final[dict[MessageType, frozenset[OptionCode]]] = {
    # dhcpd reads exactly the options it sends, except in BNDUPD/BNDACK (overridden below).
    **{mtype: frozenset(order) for mtype, order in _ISC_ORDER.items()},
    MessageType.BNDUPD: _LEASE_OPTIONS,
    MessageType.BNDACK: _LEASE_OPTIONS | {_O.REJECT_REASON, _O.MESSAGE},
    MessageType.POOLREQ: frozenset(),
    MessageType.UPDREQALL: frozenset(),
    MessageType.UPDDONE: frozenset(),
    MessageType.UPDREQ: frozenset(),
    MessageType.CONTACT: frozenset(),
}


class WireError(RemoteError):
    """The peer sent bytes dhcpd would drop the link for; the stream cannot continue.

    ``reason`` is a short machine word (``bad-length``, ``unknown-type``, ``bad-offset``,
    ``duplicate-option``, ``bad-option-size``, ``truncated-option``, ``ddns-option``).
    The codec does not know the peer's address; the connection layer re-raises with
    :meth:`with_host`.
    """

    def __init__(self, message: str, reason: str, host: str = "failover peer") -> None:
        super().__init__(host, message)
        self.reason = reason

    def with_host(self, host: str) -> WireError:
        """The same error naming ``host`` (``HOST:PORT``)."""
        return WireError(self.message, self.reason, host)


class EncodeError(ValueError):
    """A :class:`Message` that cannot or must not be sent: a bug in the caller."""


@dataclass(frozen=True, slots=True)
class Message:
    """One failover message. ``options`` keeps wire order; codes appear at most once.

    Values: ``int`` for u8/u16/u32 options (enum or flag members where one exists), a
    dotted-quad ``str`` for assigned-IP-address, ``bytes`` for everything else. chaddr
    keeps its leading hardware-type byte: dhcpd sends the lease's ``hardware_addr.hbuf``,
    type first (``dhcp_failover_send_bind_update`` in ``server/failover.c``).
    """

    type: MessageType
    xid: int
    time: int
    options: tuple[tuple[OptionCode, OptionValue], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", MessageType(self.type))
        object.__setattr__(
            self, "options", tuple((OptionCode(code), value) for code, value in self.options)
        )

    def get(self, code: OptionCode, default: OptionValue | None = None) -> OptionValue | None:
        for have, value in self.options:
            if have == code:
                return value
        return default

    def __contains__(self, code: object) -> bool:
        return any(have == code for have, _ in self.options)

    def describe(self) -> str:
        """One log line, e.g. ``BNDACK xid=4 assigned-ip-address=10.99.0.100 …``.

        Safe to log whatever the peer sent: text is quoted with non-printable bytes
        escaped, other byte strings are shown as hex.
        """
        words = [_type_word(self.type), f"xid={self.xid}"]
        words += [f"{code.keyword}={_show(code, value)}" for code, value in self.options]
        return " ".join(words)


def message(
    type: MessageType, xid: int, time: int, *options: tuple[OptionCode, OptionValue]
) -> Message:
    """A :class:`Message` with ``options`` in the order given."""
    return Message(type, xid, time, options)


def ordered(
    type: MessageType, xid: int, time: int, values: Mapping[OptionCode, OptionValue | None]
) -> Message:
    """A :class:`Message` with dhcpd's option order for ``type``; ``None`` values are left out.

    Options dhcpd never sends in this type come after, in code order (encode refuses
    those dhcpd would not read).
    """
    mtype = MessageType(type)
    present = {OptionCode(code): value for code, value in values.items() if value is not None}
    isc = _ISC_ORDER.get(mtype, ())
    codes = [code for code in isc if code in present]
    codes += sorted(code for code in present if code not in isc)
    return Message(mtype, xid, time, tuple((code, present[code]) for code in codes))


# -- encoding -----------------------------------------------------------------------------


def encode(message: Message) -> bytes:
    """The wire bytes of ``message``, options in its order; raises :class:`EncodeError`.

    Refused: unknown types and codes, options dhcpd does not read in this type (it would
    skip them), DDNS (dhcpd drops the link on any non-empty DDNS), duplicates, values that
    do not fit their option, xid/time outside u32, and more than 2048 bytes in all.
    """
    mtype = message.type
    allowed = _ALLOWED.get(mtype)
    if allowed is None:
        raise EncodeError(f"unknown message type {int(mtype)}")
    for field, number in (("xid", message.xid), ("time", message.time)):
        if not _is_int(number) or not 0 <= number < _U32_LIMIT:
            raise EncodeError(f"{mtype.name}: {field} {number!r} is not a 32-bit unsigned int")
    parts: list[bytes] = []
    seen: set[OptionCode] = set()
    for code, value in message.options:
        where = f"{mtype.name} {code.keyword}"
        if code == OptionCode.DDNS:
            raise EncodeError(f"{where}: dhcpd drops the link on a DDNS option; never send it")
        if code in seen:
            raise EncodeError(f"{where}: option given twice (dhcpd drops the link)")
        if code not in allowed:
            raise EncodeError(f"{where}: dhcpd does not read this option in {mtype.name}")
        seen.add(code)
        data = _encode_value(where, code, value)
        parts.append(_TLV.pack(code, len(data)) + data)
    length = HEADER_SIZE + sum(map(len, parts))
    if length > MAX_MESSAGE_SIZE:
        raise EncodeError(f"{mtype.name}: {length} bytes, over the {MAX_MESSAGE_SIZE} limit")
    return _HEADER.pack(length, mtype, HEADER_SIZE, message.time, message.xid) + b"".join(parts)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _encode_value(where: str, code: OptionCode, value: object) -> bytes:
    if code == OptionCode.ASSIGNED_IP_ADDRESS:
        if not isinstance(value, str):
            raise EncodeError(f"{where}: expected a dotted-quad str, got {value!r}")
        try:
            return address_to_int(value).to_bytes(4, "big")
        except ValueError:
            raise EncodeError(f"{where}: {value!r} is not an IPv4 address") from None
    size = _FIXED_SIZE.get(code)
    if size is not None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 256**size:
            raise EncodeError(f"{where}: {value!r} does not fit {size} unsigned byte(s)")
        return int(value).to_bytes(size, "big")
    if not isinstance(value, bytes | bytearray):
        raise EncodeError(f"{where}: expected bytes, got {type(value).__name__}")
    return bytes(value)


# -- decoding -----------------------------------------------------------------------------


def decode(frame: bytes) -> Message:
    """Decode one complete message; raises :class:`WireError` for anything dhcpd refuses.

    Stricter than dhcpd in two places (``server/failover.c``), both frames no dhcpd
    sends: dhcpd checks the type only when it reads an option, so it drops the link for
    a type above 12 with options but ignores one without, and ignores type 0; we refuse
    every type outside 1..12. A payload offset below 12 or past the end makes dhcpd lose
    its place in the stream; we refuse it.
    """
    frame = bytes(frame)
    size = len(frame)
    if size < HEADER_SIZE:
        raise WireError(f"{size}-byte frame is shorter than the message header", "bad-length")
    length, type_code, offset, time, xid = _HEADER.unpack_from(frame)
    if not HEADER_SIZE <= length <= MAX_MESSAGE_SIZE:
        raise WireError(
            f"message length {length} is outside {HEADER_SIZE}..{MAX_MESSAGE_SIZE}",
            "bad-length",
        )
    if length != size:
        raise WireError(f"message length {length} but a {size}-byte frame", "bad-length")
    mtype = MessageType(type_code)
    allowed = _ALLOWED.get(mtype)
    if allowed is None:
        raise WireError(f"unknown message type {type_code}", "unknown-type")
    if not HEADER_SIZE <= offset <= length:
        raise WireError(
            f"{mtype.name}: payload offset {offset} outside {HEADER_SIZE}..{length}", "bad-offset"
        )
    options: list[tuple[OptionCode, OptionValue]] = []
    seen: set[OptionCode] = set()
    pos = offset
    while pos < length:
        if pos + _TLV.size > length:
            raise WireError(
                f"{mtype.name}: {length - pos} stray byte(s) after the last option",
                "truncated-option",
            )
        code_value, option_len = _TLV.unpack_from(frame, pos)
        start = pos + _TLV.size
        pos = start + option_len
        if pos > length:
            raise WireError(
                f"{mtype.name}: option {code_value} of {option_len} bytes runs past the end",
                "truncated-option",
            )
        if not 1 <= code_value <= _MAX_CODE:
            continue  # code 0 is "unused", codes past 29 unknown: dhcpd skips them
        code = OptionCode(code_value)
        if code in seen:  # only options kept count: dhcpd sets the bit after the checks
            raise WireError(f"{mtype.name}: duplicate option {code.keyword}", "duplicate-option")
        if code not in allowed:
            continue
        fixed = _FIXED_SIZE.get(code)
        if fixed is not None and option_len != fixed:
            if code == OptionCode.DDNS:
                raise WireError(
                    f"{mtype.name}: DDNS option of {option_len} bytes "
                    "(dhcpd 4.4 accepts only an empty one)",
                    "ddns-option",
                )
            raise WireError(
                f"{mtype.name}: option {code.keyword} has {option_len} bytes, not {fixed}",
                "bad-option-size",
            )
        seen.add(code)
        options.append((code, _decode_value(code, frame[start:pos])))
    return Message(mtype, xid, time, tuple(options))


def _decode_value(code: OptionCode, data: bytes) -> OptionValue:
    if code == OptionCode.ASSIGNED_IP_ADDRESS:
        return ".".join(map(str, data))
    if code == OptionCode.DDNS or code not in _FIXED_SIZE:
        return data
    number = int.from_bytes(data, "big")
    wrap = _INT_TYPES.get(code)
    return number if wrap is None else wrap(number)


class FrameBuffer:
    """Split a TCP byte stream into messages.

    :meth:`feed` returns every message completed by the new bytes and keeps the rest.
    The length field is checked as soon as its two bytes arrive, so at most one partial
    message (< 2048 bytes) is ever buffered. After a :class:`WireError` the stream has
    lost its framing for good, as dhcpd's link does: every later :meth:`feed` raises the
    same error. Messages that arrived in the same chunk before the fault are dropped with
    the link; dhcpd re-sends whatever was not acknowledged on the next connection.
    """

    def __init__(self) -> None:
        self._tail = b""
        self._error: WireError | None = None

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message held back."""
        return len(self._tail)

    def feed(self, data: bytes) -> list[Message]:
        if self._error is not None:
            raise self._error
        buffer = self._tail + bytes(data)
        messages: list[Message] = []
        pos = 0
        try:
            while len(buffer) - pos >= 2:
                length = int.from_bytes(buffer[pos : pos + 2], "big")
                if not HEADER_SIZE <= length <= MAX_MESSAGE_SIZE:
                    raise WireError(
                        f"message length {length} is outside {HEADER_SIZE}..{MAX_MESSAGE_SIZE}",
                        "bad-length",
                    )
                if len(buffer) - pos < length:
                    break
                messages.append(decode(buffer[pos : pos + length]))
                pos += length
        except WireError as exc:
            self._error = exc
            self._tail = b""
            raise
        self._tail = buffer[pos:]
        return messages


# -- describe -----------------------------------------------------------------------------


def _type_word(mtype: MessageType) -> str:
    return mtype.name if mtype.name in MessageType.__members__ else mtype.keyword


def _show(code: OptionCode, value: OptionValue) -> str:
    if isinstance(value, bytes | bytearray):
        if code in _TEXT or not value:
            return f"'{_escape(bytes(value))}'"
        return value.hex(":") if len(value) <= 16 else value.hex()
    if isinstance(value, str):
        return _escape(value.encode("utf-8", "backslashreplace"))
    wrap = _INT_TYPES.get(code)
    if wrap is not None and _is_int(value):
        value = wrap(value)
    if isinstance(value, enum.IntFlag):
        return _flag_text(value)
    if isinstance(value, WireEnum):
        return value.keyword
    return str(value)


def _escape(data: bytes) -> str:
    return "".join(
        chr(byte) if 0x20 <= byte < 0x7F and byte not in b"\\'" else f"\\x{byte:02x}"
        for byte in data
    )


def _flag_text(flags: enum.IntFlag) -> str:
    known = [member for member in type(flags) if member & flags]
    rest = int(flags) & ~sum(int(member) for member in type(flags))
    words = [str(member.name).lower() for member in known]
    if rest:
        words.append(f"{rest:#x}")
    return "|".join(words) or "0"


# -- load balancing (docs/failover-protocol.md §9) ----------------------------------------

#: The Pearson mixing table of draft-ietf-dhc-loadb (``loadb_mx_tbl`` in server/failover.c).
_MIX: Final = bytes(
    (
        251,
        175,
        119,
        215,
        81,
        14,
        79,
        191,
        103,
        49,
        181,
        143,
        186,
        157,
        0,
        232,
        31,
        32,
        55,
        60,
        152,
        58,
        17,
        237,
        174,
        70,
        160,
        144,
        220,
        90,
        57,
        223,
        59,
        3,
        18,
        140,
        111,
        166,
        203,
        196,
        134,
        243,
        124,
        95,
        222,
        179,
        197,
        65,
        180,
        48,
        36,
        15,
        107,
        46,
        233,
        130,
        165,
        30,
        123,
        161,
        209,
        23,
        97,
        16,
        40,
        91,
        219,
        61,
        100,
        10,
        210,
        109,
        250,
        127,
        22,
        138,
        29,
        108,
        244,
        67,
        207,
        9,
        178,
        204,
        74,
        98,
        126,
        249,
        167,
        116,
        34,
        77,
        193,
        200,
        121,
        5,
        20,
        113,
        71,
        35,
        128,
        13,
        182,
        94,
        25,
        226,
        227,
        199,
        75,
        27,
        41,
        245,
        230,
        224,
        43,
        225,
        177,
        26,
        155,
        150,
        212,
        142,
        218,
        115,
        241,
        73,
        88,
        105,
        39,
        114,
        62,
        255,
        192,
        201,
        145,
        214,
        168,
        158,
        221,
        148,
        154,
        122,
        12,
        84,
        82,
        163,
        44,
        139,
        228,
        236,
        205,
        242,
        217,
        11,
        187,
        146,
        159,
        64,
        86,
        239,
        195,
        42,
        106,
        198,
        118,
        112,
        184,
        172,
        87,
        2,
        173,
        117,
        176,
        229,
        247,
        253,
        137,
        185,
        99,
        164,
        102,
        147,
        45,
        66,
        231,
        52,
        141,
        211,
        194,
        206,
        246,
        238,
        56,
        110,
        78,
        248,
        63,
        240,
        189,
        93,
        92,
        51,
        53,
        183,
        19,
        171,
        72,
        50,
        33,
        104,
        101,
        69,
        8,
        252,
        83,
        120,
        76,
        135,
        85,
        54,
        202,
        125,
        188,
        213,
        96,
        235,
        136,
        208,
        162,
        129,
        190,
        132,
        156,
        38,
        47,
        1,
        7,
        254,
        24,
        4,
        216,
        131,
        89,
        21,
        28,
        133,
        37,
        153,
        149,
        80,
        170,
        68,
        6,
        169,
        234,
        151,
    )
)

_HBA_BYTE: Final = re.compile(r"[0-9a-fA-F]{1,2}")


def hba_from_split(split: int) -> bytes:
    """The HBA dhcpd builds for ``split N;``: buckets 0..N-1 set (primary serves them)."""
    if not _is_int(split) or not 0 <= split <= 256:
        raise ValueError(f"split must be 0..256, not {split!r}")
    whole, bits = divmod(split, 8)
    partial = bytes([(1 << bits) - 1]) if bits else b""
    return (b"\xff" * whole + partial).ljust(HBA_SIZE, b"\x00")


def hba_from_text(text: str) -> bytes:
    """The HBA of ``hba xx:xx:…;`` (exactly 32 colon-separated hex bytes)."""
    parts = text.strip().split(":")
    if len(parts) != HBA_SIZE or not all(_HBA_BYTE.fullmatch(part) for part in parts):
        raise ValueError(f"an hba is {HBA_SIZE} colon-separated hex bytes, not {text!r}")
    return bytes(int(part, 16) for part in parts)


def load_balance_hash(key: bytes) -> int:
    """The hash bucket (0..255) of a client-identifier, or of chaddr without its type byte.

    Pearson hash: start from the key length mod 256, mix in the bytes last to first.
    """
    bucket = len(key) & 0xFF
    for byte in reversed(key):
        bucket = _MIX[bucket ^ byte]
    return bucket


def primary_serves(hba: bytes, bucket: int) -> bool:
    """Whether the primary answers clients in ``bucket``: bit ``bucket & 7`` of byte
    ``bucket >> 3`` is set (the secondary answers when it is clear)."""
    if len(hba) != HBA_SIZE:
        raise ValueError(f"an hba is {HBA_SIZE} bytes, not {len(hba)}")
    if not 0 <= bucket <= 0xFF:
        raise ValueError(f"bucket must be 0..255, not {bucket}")
    return bool(hba[bucket >> 3] & (1 << (bucket & 7)))
