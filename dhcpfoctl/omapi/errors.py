"""OMAPI failures as :class:`~dhcpfoctl.errors.RemoteError` subclasses, one per cause.

A STATUS reply carries an isc_result code; :func:`status_error` turns it into the named
subclass (``NoKeysError``, ``InvalidKeyError``, ``NotFoundError``, …) with a message that
tells the operator what to do. Every message names ``HOST:PORT`` and never key material.
"""

from __future__ import annotations

from dhcpfoctl.errors import RemoteError
from dhcpfoctl.model import WireEnum


class Result(WireEnum):
    """isc_result codes dhcpd puts in a STATUS reply (docs/omapi-protocol.md §5)."""

    SUCCESS = 0
    NOMEMORY = 1
    NOPERM = 6
    EXISTS = 18
    NOTFOUND = 23
    IOERROR = 26
    NOTIMPLEMENTED = 27
    INVALIDARG = 0x60003
    UNCHANGED = 0x60005
    MULTIPLE = 0x60006
    KEYCONFLICT = 0x60007
    BADPARSE = 0x60008
    NOKEYS = 0x60009
    KEY_UNKNOWN = 0x6000A
    INVALIDKEY = 0x6000B
    UNKNOWNATTRIBUTE = 0x60020


class OmapiError(RemoteError):
    """Any OMAPI failure; ``host`` is ``HOST:PORT``."""


class UnreachableError(OmapiError):
    """TCP connection refused, no route, or the name does not resolve."""


class ConnectionRefusedByHostError(UnreachableError):
    """The host answered with a TCP reset: it is up, but nothing listens on the port."""


class TimedOutError(OmapiError):
    """The server did not connect or answer within the timeout."""


class ProtocolError(OmapiError):
    """The peer closed the connection, or sent bytes that are not OMAPI."""


class BadSignatureError(ProtocolError):
    """A reply's HMAC did not verify with our key (tampering, or a wrong key in the path)."""


class StatusError(OmapiError):
    """The server answered a request with a non-zero STATUS ``result``."""

    result: Result

    def __init__(self, host: str, result: Result, message: str) -> None:
        super().__init__(host, message)
        self.result = result


class NoKeysError(StatusError):
    """NOKEYS: an unsigned message to a server with ``omapi-key``, or no lookup key."""


class InvalidKeyError(StatusError):
    """INVALIDKEY: the signature did not verify (wrong secret) or the key is not allowed."""


class KeyUnknownError(StatusError):
    """KEY_UNKNOWN: the server has no authenticator with our authid."""


class NotFoundError(StatusError):
    """NOTFOUND: no object matches the lookup (e.g. an unknown failover peer name)."""


class InvalidArgError(StatusError):
    """INVALIDARG: a value of the wrong length or type."""


class NoPermError(StatusError):
    """NOPERM: the attribute is read-only."""


class NotImplementedStatusError(StatusError):
    """NOTIMPLEMENTED: the object type cannot be searched, created or deleted."""


class OtherStatusError(StatusError):
    """Any other result code (named ``unknown-N`` when dhcpd adds one we do not know)."""


_STATUS_CLASSES: dict[Result, type[StatusError]] = {
    Result.NOKEYS: NoKeysError,
    Result.INVALIDKEY: InvalidKeyError,
    Result.KEY_UNKNOWN: KeyUnknownError,
    Result.NOTFOUND: NotFoundError,
    Result.INVALIDARG: InvalidArgError,
    Result.NOPERM: NoPermError,
    Result.NOTIMPLEMENTED: NotImplementedStatusError,
}

#: What the operator should do about each refusal (appended to the server's own text).
_ADVICE: dict[Result, str] = {
    # Also what a server says when the key we offered was unknown to it (name or algorithm)
    # and we fell back to unsigned.
    # Sources that keep the secret out of `ps` come first.
    Result.NOKEYS: "the server requires an OMAPI key it knows, with the name and algorithm of "
    "its omapi-key: give --key-file, a profile key, DHCPFOCTL_KEY or --key",
    Result.INVALIDKEY: "the server rejected our signature: wrong secret or algorithm for this key",
    Result.KEY_UNKNOWN: "the server does not know our authenticator; reconnect",
}


def status_error(host: str, code: int, text: str, what: str) -> StatusError:
    """The named error for STATUS ``code``; ``what`` says what we asked for."""
    result = Result(code)
    server_says = f": {text}" if text else ""
    message = f"{what} failed with {result.keyword.upper()}{server_says}"
    if advice := _ADVICE.get(result):
        message = f"{message} ({advice})"
    return _STATUS_CLASSES.get(result, OtherStatusError)(host, result, message)
