"""Sans-IO OMAPI client core: bytes in → messages out, requests → bytes.

Framing, the startup exchange and HMAC signing reuse pypureomapi's codec
(:class:`pypureomapi.OmapiMessage`, :class:`pypureomapi.InBuffer`); this module adds what
failover work needs (omapi-protocol.md §4, §8): every algorithm dhcpd accepts, reply
verification that tolerates the server's unsigned error STATUS, STATUS decoding into the
named errors of :mod:`dhcpfoctl.omapi.errors`, and exact 4-byte integers for attributes.

No sockets and no clock here; :mod:`dhcpfoctl.omapi.client` moves the bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pypureomapi import (
    InBuffer,
    OmapiAuthenticatorBase,
    OmapiError,
    OmapiMessage,
    OmapiStartupMessage,
)

from dhcpfoctl.keys import ALGORITHMS, OmapiKey
from dhcpfoctl.model import WireEnum
from dhcpfoctl.omapi.errors import (
    BadSignatureError,
    NotFoundError,
    ProtocolError,
    Result,
    status_error,
)

__all__ = [
    "ClientSession",
    "HmacAuthenticator",
    "OmapiObject",
    "Op",
    "u32",
]


class Op(WireEnum):
    """OMAPI opcodes (omapi-protocol.md §3.2)."""

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
    def key_name(self) -> str:
        return self._key.name

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


@dataclass(frozen=True, slots=True)
class OmapiObject:
    """An object as an UPDATE reply carries it: server handle and attributes in order."""

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


def _decode_pairs(pairs: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[str, bytes], ...]:
    return tuple((name.decode("ascii", "replace"), value) for name, value in pairs)


class ClientSession:
    """One OMAPI client connection's protocol state, without I/O.

    Use: send :data:`STARTUP_BYTES`, feed every received chunk to :meth:`receive_data`,
    and take complete replies from :meth:`next_message`. Requests are built by
    :meth:`open_request` / :meth:`refresh_request` / :meth:`update_request`, which return
    the message (to match its reply) and its bytes; :meth:`check_reply` verifies a reply
    and raises the named error for a failing STATUS.
    """

    def __init__(self, endpoint: str, key: OmapiKey | None = None, *, first_id: int = 1) -> None:
        self.endpoint = endpoint
        self.authenticator = HmacAuthenticator(key) if key is not None else None
        #: Our authid once the server accepted the authenticator; 0 = unsigned.
        self.authid = 0
        self.startup_received = False
        self._inbuffer = InBuffer()
        self._parser: Iterator[object] | None = self._inbuffer.parse_startup_message()
        # Sequential ids make the wire bytes reproducible (golden tests) and never repeat
        # within a connection, which is all OMAPI asks.
        self._ids = itertools.count(first_id)

    # -- receiving -------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the server; an empty chunk means the server closed."""
        if not data:
            raise ProtocolError(self.endpoint, "server closed the connection")
        try:
            self._inbuffer.feed(data)
        except OmapiError:  # pypureomapi's 64 KiB per-message bound
            raise ProtocolError(self.endpoint, "reply larger than 64 KiB: not OMAPI") from None

    def next_message(self) -> OmapiMessage | None:
        """The next complete message, or ``None`` until more bytes arrive.

        The server's startup message is consumed and checked here, never returned.
        """
        while True:
            if self._parser is None:
                self._parser = self._inbuffer.parse_message()
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

    def _check_startup(self, startup: OmapiStartupMessage) -> None:
        try:
            startup.validate()
        except OmapiError:
            raise ProtocolError(
                self.endpoint,
                f"not an OMAPI server (startup announced version {startup.protocol_version}, "
                f"header size {startup.header_size}; expected 100 and 24)",
            ) from None
        self.startup_received = True

    # -- requests --------------------------------------------------------------------

    def _finish(self, message: OmapiMessage, *, sign: bool = True) -> tuple[OmapiMessage, bytes]:
        message.tid = next(self._ids)
        if sign and self.authid:
            assert self.authenticator is not None
            message.sign(self.authenticator)
        return message, message.as_string()

    def authenticator_request(self) -> tuple[OmapiMessage, bytes]:
        """The unsigned OPEN of our key's authenticator object (omapi-protocol.md §4.2)."""
        assert self.authenticator is not None
        message = OmapiMessage(opcode=Op.OPEN, message=[(b"type", b"authenticator")])
        message.obj = list(self.authenticator.auth_object().items())
        return self._finish(message, sign=False)

    def accept_authenticator(self, request: OmapiMessage, reply: OmapiMessage) -> None:
        """Check the authenticator OPEN's reply and sign everything from now on."""
        assert self.authenticator is not None
        what = f"opening OMAPI key {self.authenticator.key_name!r}"
        try:
            self.check_reply(request, reply, what)
        except NotFoundError as exc:
            # dhcpd looks the key up by name and algorithm: either can be what differs.
            raise NotFoundError(
                exc.host,
                exc.result,
                f"{exc.message} (the server knows no key of that name with algorithm "
                f"{self.authenticator.key_algorithm}: compare with its omapi-key)",
            ) from None
        if reply.opcode != Op.UPDATE or reply.handle == 0:
            raise ProtocolError(self.endpoint, f"{what}: unexpected {_op_name(reply)} reply")
        self.authid = reply.handle
        self.authenticator.authid = reply.handle

    def open_request(
        self, object_type: str, lookup: Sequence[tuple[str, bytes]]
    ) -> tuple[OmapiMessage, bytes]:
        """OPEN an existing object of ``object_type`` found by the ``lookup`` attributes."""
        message = OmapiMessage(
            opcode=Op.OPEN,
            message=[(b"type", object_type.encode())],
            obj=[(name.encode(), value) for name, value in lookup],
        )
        return self._finish(message)

    def refresh_request(self, handle: int) -> tuple[OmapiMessage, bytes]:
        return self._finish(OmapiMessage(opcode=Op.REFRESH, handle=handle))

    def update_request(
        self, handle: int, attributes: Sequence[tuple[str, bytes]]
    ) -> tuple[OmapiMessage, bytes]:
        """Set ``attributes`` (already wire-encoded, see :func:`u32`) on object ``handle``."""
        message = OmapiMessage(
            opcode=Op.UPDATE,
            handle=handle,
            obj=[(name.encode(), value) for name, value in attributes],
        )
        return self._finish(message)

    # -- replies ---------------------------------------------------------------------

    def check_reply(self, request: OmapiMessage, reply: OmapiMessage, what: str) -> None:
        """Verify ``reply`` answers ``request``; raise the named error for a failed STATUS.

        The server signs replies with our authid; its one unsigned answer on a signed
        connection is the STATUS it sends when it could not verify *our* signature, which is
        accepted only to report that error.
        """
        if reply.rid != request.tid:
            raise ProtocolError(
                self.endpoint, f"{what}: reply id {reply.rid} does not match request {request.tid}"
            )
        if reply.authid != self.authid and not (reply.authid == 0 and reply.opcode == Op.STATUS):
            raise BadSignatureError(self.endpoint, f"{what}: reply signed with another key")
        if reply.authid:
            assert self.authenticator is not None
            expected = self.authenticator.sign(reply.as_string(forsigning=True))
            if not hmac.compare_digest(expected, reply.signature):
                raise BadSignatureError(self.endpoint, f"{what}: reply signature does not verify")
        if reply.opcode == Op.STATUS:
            code, text = decode_status(reply)
            if code < 0:
                raise ProtocolError(self.endpoint, f"{what}: malformed STATUS result")
            if code != Result.SUCCESS:
                raise status_error(self.endpoint, code, text, what)
            if reply.authid != self.authid:
                raise BadSignatureError(self.endpoint, f"{what}: unsigned success reply")
        elif reply.opcode != Op.UPDATE:
            raise ProtocolError(self.endpoint, f"{what}: unexpected {_op_name(reply)} reply")

    def reply_object(self, request: OmapiMessage, reply: OmapiMessage, what: str) -> OmapiObject:
        """The object of an UPDATE reply to OPEN/REFRESH (errors raised as for check_reply)."""
        self.check_reply(request, reply, what)
        if reply.opcode != Op.UPDATE:
            raise ProtocolError(self.endpoint, f"{what}: expected UPDATE, got {_op_name(reply)}")
        return OmapiObject(reply.handle, _decode_pairs(reply.obj))


def decode_status(message: OmapiMessage) -> tuple[int, str]:
    """``result`` code and ``message`` text of a STATUS (missing result reads as 0).

    A ``result`` that is not 4 bytes long gives code -1.
    """
    entries = dict(message.message)
    raw = entries.get(b"result", b"\0\0\0\0")
    code = int.from_bytes(raw, "big") if len(raw) == 4 else -1
    text = entries.get(b"message", b"").decode("utf-8", "replace")
    return code, text


def _op_name(message: OmapiMessage) -> str:
    return Op(message.opcode).keyword.upper()
