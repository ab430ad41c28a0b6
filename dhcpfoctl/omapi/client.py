"""Blocking-socket transport for :class:`~dhcpfoctl.omapi.client_session.ClientSession`.

Every call is bounded: the connect by ``timeout``, each request/reply exchange by one
deadline of ``timeout`` seconds however the reply is split into segments. Socket errors
become :mod:`dhcpfoctl.omapi.errors` exceptions naming ``HOST:PORT``.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Sequence
from types import TracebackType

from pypureomapi import OmapiMessage

from dhcpfoctl.keys import OmapiKey
from dhcpfoctl.omapi import OMAPI_PORT, OMAPI_TIMEOUT, format_endpoint
from dhcpfoctl.omapi.client_session import ClientSession
from dhcpfoctl.omapi.codec import STARTUP_BYTES, OmapiObject
from dhcpfoctl.omapi.errors import (
    ConnectionRefusedByHostError,
    ProtocolError,
    TimedOutError,
    UnreachableError,
)

_RECV_CHUNK = 65536


class OmapiClient:
    """One OMAPI connection. Use as a context manager so the socket is always closed.

    ``key`` ``None`` means unsigned; otherwise the authenticator is opened on connect.
    """

    def __init__(
        self,
        host: str,
        port: int = OMAPI_PORT,
        key: OmapiKey | None = None,
        *,
        timeout: float = OMAPI_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.endpoint = format_endpoint(host, port)
        self.timeout = timeout
        self._session = ClientSession(self.endpoint, key)
        self._sock: socket.socket | None = None
        self._key = key

    def __enter__(self) -> OmapiClient:
        if self._sock is None:
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def signed(self) -> bool:
        return self._session.authid != 0

    def connect(self) -> None:
        """Connect, exchange startup messages and, with a key, open the authenticator."""
        if self._sock is not None:
            raise RuntimeError(f"{self.endpoint}: already connected")
        try:
            self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except TimeoutError:
            raise TimedOutError(
                self.endpoint, f"no TCP connection within {self.timeout:g}s"
            ) from None
        except ConnectionRefusedError as exc:
            raise ConnectionRefusedByHostError(
                self.endpoint, f"cannot connect: {_reason(exc)}"
            ) from None
        except OSError as exc:
            raise UnreachableError(self.endpoint, f"cannot connect: {_reason(exc)}") from None
        try:
            self._send(STARTUP_BYTES)
            deadline = time.monotonic() + self.timeout
            while not self._session.startup_received:
                self._receive(deadline, "OMAPI startup")
                # A server never sends a message before our first request; anything
                # complete here is garbage.
                if self._session.next_message() is not None:
                    raise ProtocolError(self.endpoint, "message before startup completed")
            if self._key is not None:
                request, data = self._session.authenticator_request()
                self._send(data)
                reply = self._await_reply(request, "opening the OMAPI key")
                self._session.accept_authenticator(request, reply)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            sock, self._sock = self._sock, None
            # The peer may already have reset the connection: nothing left to flush then.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    # -- operations ------------------------------------------------------------------

    def open_object(self, object_type: str, lookup: Sequence[tuple[str, bytes]]) -> OmapiObject:
        request, data = self._session.open_request(object_type, lookup)
        what = f"opening {object_type} " + ", ".join(
            f"{name}={_show(value)}" for name, value in lookup
        )
        return self._exchange_object(request, data, what)

    def refresh(self, handle: int, what: str = "") -> OmapiObject:
        request, data = self._session.refresh_request(handle)
        return self._exchange_object(request, data, what or f"refreshing handle {handle}")

    def update(self, handle: int, attributes: Sequence[tuple[str, bytes]], what: str) -> None:
        """Set attributes; returns once the server's STATUS says success."""
        request, data = self._session.update_request(handle, attributes)
        self._send(data)
        reply = self._await_reply(request, what)
        self._session.check_reply(request, reply, what)

    # -- plumbing --------------------------------------------------------------------

    def _exchange_object(self, request: OmapiMessage, data: bytes, what: str) -> OmapiObject:
        self._send(data)
        reply = self._await_reply(request, what)
        return self._session.reply_object(request, reply, what)

    def _await_reply(self, request: OmapiMessage, what: str) -> OmapiMessage:
        deadline = time.monotonic() + self.timeout
        while (message := self._session.next_message()) is None:
            self._receive(deadline, what)
        return message

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise ProtocolError(self.endpoint, "connection is closed")
        try:
            self._sock.sendall(data)
        except TimeoutError:
            raise TimedOutError(self.endpoint, "sending timed out") from None
        except OSError as exc:
            raise ProtocolError(self.endpoint, f"sending failed: {_reason(exc)}") from None

    def _receive(self, deadline: float, what: str) -> None:
        if self._sock is None:
            raise ProtocolError(self.endpoint, "connection is closed")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimedOutError(self.endpoint, f"{what}: no answer within {self.timeout:g}s")
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(_RECV_CHUNK)
        except TimeoutError:
            raise TimedOutError(
                self.endpoint, f"{what}: no answer within {self.timeout:g}s"
            ) from None
        except OSError as exc:
            raise ProtocolError(self.endpoint, f"{what}: {_reason(exc)}") from None
        if not data:
            raise ProtocolError(self.endpoint, f"{what}: server closed the connection")
        self._session.receive_data(data)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _show(value: bytes) -> str:
    """A lookup value for messages: text when printable, else colon hex."""
    if value.isascii() and value.decode("ascii").isprintable():
        return repr(value.decode("ascii"))
    return value.hex(":")
