"""The OMAPI codec both ends of a connection share: bytes ↔ messages, signing, STATUS.

Framing, the startup message and HMAC signing reuse pypureomapi's codec
(:class:`pypureomapi.OmapiMessage`, :class:`pypureomapi.InBuffer`); this module adds what
failover work needs (docs/omapi-protocol.md §4, §8): every algorithm dhcpd accepts, signature
checks, STATUS decoding, and exact 4-byte integers for attributes.

No sockets, no clock and no role: :mod:`dhcpfoctl.omapi.client_session` builds a client on
it, and a server session is to use the same pieces.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pypureomapi import (
    InBuffer,
    OmapiAuthenticatorBase,
    OmapiError,
    OmapiMessage,
    OmapiStartupMessage,
    parse_chain,
    parse_map,
)

from dhcpfoctl.keys import ALGORITHMS, OmapiKey
from dhcpfoctl.model import WireEnum
from dhcpfoctl.omapi.errors import ProtocolError

__all__ = [
    "STARTUP_BYTES",
    "HmacAuthenticator",
    "MessageReader",
    "OmapiObject",
    "Op",
    "decode_pairs",
    "decode_status",
    "encode_pairs",
    "op_name",
    "signature_valid",
    "u32",
]


class Op(WireEnum):
    """OMAPI opcodes (docs/omapi-protocol.md §3.2)."""

    OPEN = 1
    REFRESH = 2
    UPDATE = 3
    NOTIFY = 4
    STATUS = 5
    DELETE = 6


#: The 8 bytes both sides send first: protocol version 100, header size 24.
STARTUP_BYTES = OmapiStartupMessage().as_string()


def u32(value: int) -> bytes:
    """An OMAPI integer: dhcpd accepts exactly 4 big-endian bytes (1 byte → INVALIDARG)."""
    return struct.pack("!I", value)


class HmacAuthenticator(OmapiAuthenticatorBase):
    """HMAC signing for any algorithm in :data:`~dhcpfoctl.keys.ALGORITHMS`.

    The secret stays inside the :class:`~dhcpfoctl.keys.Secret` until each signature.
    """

    def __init__(self, key: OmapiKey) -> None:
        super().__init__()
        if key.algorithm not in ALGORITHMS:
            raise ValueError(f"unsupported OMAPI key algorithm {key.algorithm!r}")
        self._key = key
        self._digest = key.algorithm.removeprefix("hmac-")
        self.authlen = hashlib.new(self._digest).digest_size
        # dhcpd names algorithms in DNS form and compares case-insensitively.
        self.algorithm = f"{key.algorithm}.SIG-ALG.REG.INT.".encode()
        self.authid = 0

    @property
    def key_algorithm(self) -> str:
        return self._key.algorithm

    def auth_object(self) -> dict[bytes, bytes]:
        assert self.algorithm is not None
        return {b"name": self._key.name.encode(), b"algorithm": self.algorithm}

    def sign(self, message: bytes) -> bytes:
        return hmac.new(self._key.secret.reveal(), message, self._digest).digest()

    def __repr__(self) -> str:
        return f"HmacAuthenticator({self._key.name!r}, {self._key.algorithm!r})"


def signature_valid(message: OmapiMessage, authenticator: HmacAuthenticator) -> bool:
    """Whether ``message``'s signature is ``authenticator``'s (compared in constant time)."""
    expected = authenticator.sign(message.as_string(forsigning=True))
    return hmac.compare_digest(expected, message.signature)


@dataclass(frozen=True, slots=True)
class OmapiObject:
    """An object as a message carries it: handle and attributes in order."""

    handle: int
    attributes: tuple[tuple[str, bytes], ...]
    _index: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", dict(self.attributes))

    def raw(self, name: str) -> bytes | None:
        return self._index.get(name)

    def integer(self, name: str) -> int | None:
        """A 4-byte attribute as an int; ``None`` when absent or not 4 bytes long."""
        value = self._index.get(name)
        if value is None or len(value) != 4:
            return None
        return int.from_bytes(value, "big")

    def text(self, name: str) -> str | None:
        value = self._index.get(name)
        return None if value is None else value.decode("utf-8", "replace")


def encode_pairs(pairs: Sequence[tuple[str, bytes]]) -> list[tuple[bytes, bytes]]:
    """Attributes as a message carries them (values already wire-encoded, see :func:`u32`)."""
    return [(name.encode(), value) for name, value in pairs]


def decode_pairs(pairs: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[str, bytes], ...]:
    return tuple((name.decode("ascii", "replace"), value) for name, value in pairs)


def decode_status(message: OmapiMessage) -> tuple[int, str]:
    """``result`` code and ``message`` text of a STATUS (missing result reads as 0).

    A ``result`` that is not 4 bytes long gives code -1.
    """
    entries = dict(message.message)
    raw = entries.get(b"result", b"\0\0\0\0")
    code = int.from_bytes(raw, "big") if len(raw) == 4 else -1
    text = entries.get(b"message", b"").decode("utf-8", "replace")
    return code, text


def op_name(message: OmapiMessage) -> str:
    return Op(message.opcode).keyword.upper()


class MessageReader:
    """Framing of what the other side of a connection sends: its startup message (checked
    here, never returned), then complete messages.

    ``endpoint`` (its ``HOST:PORT``) and ``peer`` (``"server"`` or ``"client"``: what it
    should be) name the errors.
    """

    def __init__(self, endpoint: str, peer: str, *, larger_header: bool = False) -> None:
        self.endpoint = endpoint
        self.peer = peer
        self.startup_received = False
        #: Accept a header size above 24 and skip the extra bytes of every message header
        #: (dhcpd's server does; they are not signed).
        self.larger_header = larger_header
        self._extra_header = 0
        self._inbuffer = InBuffer()
        self._parser: Iterator[object] | None = self._inbuffer.parse_startup_message()

    def feed(self, data: bytes) -> None:
        try:
            self._inbuffer.feed(data)
        except OmapiError:  # pypureomapi's 64 KiB per-message bound
            noun = "reply" if self.peer == "server" else "request"
            raise ProtocolError(self.endpoint, f"{noun} larger than 64 KiB: not OMAPI") from None

    def next_message(self) -> OmapiMessage | None:
        """The next complete message, or ``None`` until more bytes arrive."""
        while True:
            if self._parser is None:
                self._parser = self._parse_message()
            result = next(self._parser)
            if result is None:
                return None
            self._parser = None
            self._inbuffer.resetsize()
            if isinstance(result, OmapiStartupMessage):
                self._check_startup(result)
                continue
            assert isinstance(result, OmapiMessage)
            return result

    def _parse_message(self) -> Iterator[OmapiMessage | None]:
        if not self._extra_header:
            return self._inbuffer.parse_message()
        buffer, extra = self._inbuffer, self._extra_header
        # pypureomapi's message parser with the extra header bytes read and dropped.
        parser = parse_chain(
            buffer.parse_net32int,  # authid
            *[lambda *_: buffer.parse_net32int()] * 5,  # authlen, opcode, handle, tid, rid
            lambda *_: buffer.parse_fixedbuffer(extra),
            lambda *_: buffer.parse_bindict(),  # message
            lambda *_: buffer.parse_bindict(),  # object
            lambda *args: buffer.parse_fixedbuffer(args[1]),  # signature
        )
        return parse_map(lambda args: OmapiMessage(args[0], *args[2:6], *args[7:]), parser)

    def _check_startup(self, startup: OmapiStartupMessage) -> None:
        larger = startup.header_size > OmapiStartupMessage.implemented_header_size
        if self.larger_header and larger and startup.protocol_version == 100:
            self._extra_header = startup.header_size - OmapiStartupMessage.implemented_header_size
            self.startup_received = True
            return
        try:
            startup.validate()
        except OmapiError:
            raise ProtocolError(
                self.endpoint,
                f"not an OMAPI {self.peer} (startup announced version "
                f"{startup.protocol_version}, header size {startup.header_size}; "
                f"expected 100 and {'at least ' if self.larger_header else ''}24)",
            ) from None
        self.startup_received = True
