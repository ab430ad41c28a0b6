"""Sans-IO OMAPI client session: requests → bytes, bytes → verified replies.

Built on the shared :mod:`dhcpfoctl.omapi.codec`; this module adds what only a client does:
the authenticator OPEN, request ids, and reply verification that tolerates the server's
unsigned error STATUS, raising the named errors of :mod:`dhcpfoctl.omapi.errors`.

No sockets and no clock here; :mod:`dhcpfoctl.omapi.client` moves the bytes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from pypureomapi import OmapiMessage

from dhcpfoctl.keys import ALGORITHMS, OmapiKey
from dhcpfoctl.omapi.codec import (
    HmacAuthenticator,
    MessageReader,
    OmapiObject,
    Op,
    decode_pairs,
    decode_status,
    encode_pairs,
    op_name,
    signature_valid,
)
from dhcpfoctl.omapi.errors import (
    BadSignatureError,
    NotFoundError,
    ProtocolError,
    Result,
    status_error,
)


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
        self._reader = MessageReader(endpoint, "server")
        # Sequential ids make the wire bytes reproducible (golden tests) and never repeat
        # within a connection, which is all OMAPI asks.
        self._ids = itertools.count(first_id)

    # -- receiving -------------------------------------------------------------------

    @property
    def startup_received(self) -> bool:
        return self._reader.startup_received

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the server; an empty chunk means the server closed."""
        if not data:
            raise ProtocolError(self.endpoint, "server closed the connection")
        self._reader.feed(data)

    def next_message(self) -> OmapiMessage | None:
        """The next complete reply, or ``None`` until more bytes arrive.

        The server's startup message is consumed and checked here, never returned.
        """
        return self._reader.next_message()

    # -- requests --------------------------------------------------------------------

    def _finish(self, message: OmapiMessage, *, sign: bool = True) -> tuple[OmapiMessage, bytes]:
        message.tid = next(self._ids)
        if sign and self.authid:
            assert self.authenticator is not None
            message.sign(self.authenticator)
        return message, message.as_string()

    def authenticator_request(self) -> tuple[OmapiMessage, bytes]:
        """The unsigned OPEN of our key's authenticator object (docs/omapi-protocol.md §4.2)."""
        assert self.authenticator is not None
        message = OmapiMessage(opcode=Op.OPEN, message=[(b"type", b"authenticator")])
        message.obj = list(self.authenticator.auth_object().items())
        return self._finish(message, sign=False)

    def accept_authenticator(self, request: OmapiMessage, reply: OmapiMessage) -> None:
        """Check the authenticator OPEN's reply and sign everything from now on."""
        assert self.authenticator is not None
        # Not named: a key whose secret was given in the name position would print it.
        what = "opening the OMAPI key"
        try:
            self.check_reply(request, reply, what)
        except NotFoundError as exc:
            # dhcpd looks the key up by name and algorithm: either can be what differs.
            algorithm = self.authenticator.key_algorithm
            if algorithm not in ALGORITHMS:
                algorithm = "(not shown: not an algorithm, it may be the secret)"
            raise NotFoundError(
                exc.host,
                exc.result,
                f"{exc.message} (the server knows no key of that name with algorithm "
                f"{algorithm}: compare with its omapi-key)",
            ) from None
        if reply.opcode != Op.UPDATE or reply.handle == 0:
            raise ProtocolError(self.endpoint, f"{what}: unexpected {op_name(reply)} reply")
        self.authid = reply.handle
        self.authenticator.authid = reply.handle

    def open_request(
        self, object_type: str, lookup: Sequence[tuple[str, bytes]]
    ) -> tuple[OmapiMessage, bytes]:
        """OPEN an existing object of ``object_type`` found by the ``lookup`` attributes."""
        message = OmapiMessage(
            opcode=Op.OPEN,
            message=[(b"type", object_type.encode())],
            obj=encode_pairs(lookup),
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
            obj=encode_pairs(attributes),
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
            if not signature_valid(reply, self.authenticator):
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
            raise ProtocolError(self.endpoint, f"{what}: unexpected {op_name(reply)} reply")

    def reply_object(self, request: OmapiMessage, reply: OmapiMessage, what: str) -> OmapiObject:
        """The object of an UPDATE reply to OPEN/REFRESH (errors raised as for check_reply)."""
        self.check_reply(request, reply, what)
        if reply.opcode != Op.UPDATE:
            raise ProtocolError(self.endpoint, f"{what}: expected UPDATE, got {op_name(reply)}")
        return OmapiObject(reply.handle, decode_pairs(reply.obj))
