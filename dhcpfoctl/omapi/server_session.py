"""Sans-IO OMAPI server session: what dhcpd 4.4's ``omapip`` does with one connection.

Built on the codec the client uses (:mod:`dhcpfoctl.omapi.codec`): bytes in through
:meth:`ServerSession.receive_data`, reply bytes out through :meth:`ServerSession.data_to_send`,
and :attr:`ServerSession.close_reason` set when dhcpd would drop the connection. The
objects themselves live in an :class:`ObjectStore` (e.g. :class:`dhcpfoctl.lab.objects.LabObjects`);
this module does the protocol around them as ``omapip/protocol.c`` and
``omapip/message.c`` do (docs/omapi-protocol.md §2-§5, §9):

* the startup check (version 100, header size 24 or more: extra header bytes are skipped);
* authenticators: an unsigned OPEN of ``authenticator`` selects a key by name and
  algorithm (with ``omapi-key`` only that key); later messages signed with its handle are
  verified (INVALIDKEY, KEY_UNKNOWN), and with ``omapi-key`` every other message must be
  signed (NOKEYS "No authenticator on message");
* OPEN/REFRESH → UPDATE with every attribute, UPDATE/DELETE → STATUS, NOTIFY →
  NOTIMPLEMENTED; replies signed with the request's key;
* what dhcpd answers by closing: a reply id (rid) from a client, a client STATUS, an
  unknown opcode, reserved message-section names, bytes that are not OMAPI.

"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Mapping, Sequence
from typing import Final, Protocol

from pypureomapi import OmapiMessage

from dhcpfoctl.keys import OmapiKey
from dhcpfoctl.omapi.codec import (
    STARTUP_BYTES,
    HmacAuthenticator,
    MessageReader,
    OmapiObject,
    Op,
    decode_pairs,
    encode_pairs,
    signature_valid,
    u32,
)
from dhcpfoctl.omapi.errors import ProtocolError, Result

__all__ = ["HandleTable", "ObjectStore", "ServerSession", "StatusReply", "attribute_values"]

#: Message-section names dhcpd's message object takes for itself: a data value there is
#: INVALIDARG while reading, which closes the connection (omapi_message_set_value).
_RESERVED_MESSAGE_NAMES: Final = frozenset(
    {"object", "notify-object", "authid", "op", "handle", "id", "rid"}
)
#: Bytes fed to the framer at once: pypureomapi bounds what it buffers between messages
#: to 64 KiB, so a large read of many pipelined requests is fed in slices.
_FEED_SLICE: Final = 4096
AUTHENTICATOR: Final = "authenticator"


class StatusReply(Exception):
    """Raised by a store: the request is answered with STATUS ``result`` and ``message``."""

    def __init__(self, result: int, message: str = "") -> None:
        super().__init__(result, message)
        self.result = result
        self.message = message


class HandleTable:
    """dhcpd's object handles: server-global, allocated from 1 on first reference, stable."""

    def __init__(self) -> None:
        self._handles: dict[Hashable, int] = {}
        self._objects: dict[int, Hashable] = {}

    def handle(self, key: Hashable) -> int:
        handle = self._handles.get(key)
        if handle is None:
            handle = self._handles[key] = len(self._handles) + 1
            self._objects[handle] = key
        return handle

    def key(self, handle: int) -> Hashable | None:
        return self._objects.get(handle)


class ObjectStore(Protocol):
    """The objects a server exposes; every method may raise :class:`StatusReply`.

    ``handles`` is shared with the sessions (authenticators are objects too).
    """

    handles: HandleTable

    def open(
        self,
        type_: str,
        lookup: list[tuple[str, bytes]],
        *,
        create: bool,
        update: bool,
        exclusive: bool,
        now: float,
    ) -> OmapiObject | None:
        """The object found (or created/updated); ``None`` when ``type_`` is no object type
        (dhcpd then treats the OPEN as a REFRESH of the header handle)."""
        ...

    def refresh(self, handle: int, now: float) -> OmapiObject: ...

    def update(self, handle: int, values: list[tuple[str, bytes]], now: float) -> None: ...

    def delete(self, handle: int, now: float) -> None: ...


def attribute_values(pairs: Sequence[tuple[bytes, bytes]]) -> list[tuple[str, bytes]]:
    """A name/value section as dhcpd's generic object holds it: a repeated name replaces
    the earlier value in its place."""
    values: dict[str, bytes] = {}
    for name, value in decode_pairs(pairs):
        values[name] = value
    return list(values.items())


class _Close(Exception):
    """dhcpd drops the connection here."""


class ServerSession:
    """One accepted OMAPI connection (see the module docstring).

    ``keys`` are every key the server defines; ``required_key`` is its ``omapi-key``.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        keys: Mapping[str, OmapiKey],
        required_key: str | None,
        endpoint: str = "client",
    ) -> None:
        self.store = store
        self.keys = dict(keys)
        self.required_key = required_key
        self.close_reason: str | None = None
        self._reader = MessageReader(endpoint, "client", larger_header=True)
        self._outgoing = bytearray(STARTUP_BYTES)
        #: Authenticators this connection opened, by handle (dhcpd's remote_auth_list).
        self._auth: dict[int, HmacAuthenticator] = {}
        # dhcpd numbers its messages from a random start; a counter keeps tests reproducible.
        self._ids = itertools.count(1)

    # -- the sans-IO interface ---------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the client; ``b""`` means it closed the connection."""
        if self.close_reason is not None:
            return
        if not data:
            self.close_reason = "client closed the connection"
            return
        try:
            for start in range(0, len(data), _FEED_SLICE):
                self._reader.feed(data[start : start + _FEED_SLICE])
                while (message := self._reader.next_message()) is not None:
                    self._handle(message, now)
        except ProtocolError as exc:
            self.close_reason = exc.message
        except _Close as exc:
            self.close_reason = str(exc)

    def data_to_send(self) -> bytes:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    # -- one message -------------------------------------------------------------------
    def _handle(self, message: OmapiMessage, now: float) -> None:
        section = dict(decode_pairs(message.message))
        if reserved := _RESERVED_MESSAGE_NAMES.intersection(section):
            raise _Close(f"message section sets {sorted(reserved)[0]!r}")
        signer: HmacAuthenticator | None = None
        if message.authid:
            signer = self._auth.get(message.authid)
            if signer is None:
                self._status(message, None, Result.KEY_UNKNOWN)
                return
            if not signature_valid(message, signer):
                self._status(message, None, Result.INVALIDKEY)
                return
        if message.rid:
            raise _Close(f"message {message.tid} answers {message.rid}, which we never sent")
        type_ = section.get("type")
        if (
            self.required_key is not None
            and signer is None
            and (message.opcode != Op.OPEN or type_ != AUTHENTICATOR.encode())
        ):
            self._status(message, None, Result.NOKEYS, "No authenticator on message")
            return
        try:
            self._dispatch(message, section, signer, now)
        except StatusReply as reply:
            self._status(message, signer, reply.result, reply.message)

    def _dispatch(
        self,
        message: OmapiMessage,
        section: dict[str, bytes],
        signer: HmacAuthenticator | None,
        now: float,
    ) -> None:
        op = message.opcode
        if op == Op.OPEN:
            obj = self._open(message, section, now)
            self._update(message, signer, obj)
        elif op == Op.REFRESH:
            self._update(message, signer, self._refresh(message.handle, now))
        elif op == Op.UPDATE:
            if self._key_at(message.handle) is not None:
                # dhcpd answers with the (successful) handle lookup's result here.
                raise StatusReply(Result.SUCCESS, "cannot update authenticator")
            self.store.update(message.handle, attribute_values(message.obj), now)
            self._status(message, signer, Result.SUCCESS)
        elif op == Op.DELETE:
            if self._key_at(message.handle) is not None:
                raise StatusReply(Result.NOTIMPLEMENTED, "no remove method for object")
            self.store.delete(message.handle, now)
            self._status(message, signer, Result.SUCCESS)
        elif op == Op.NOTIFY:
            raise StatusReply(Result.NOTIMPLEMENTED, "notify not implemented yet")
        elif op == Op.STATUS:
            raise _Close("STATUS from a client")
        else:
            raise _Close(f"unknown opcode {op}")

    def _open(self, message: OmapiMessage, section: dict[str, bytes], now: float) -> OmapiObject:
        flags: dict[str, bool] = {}
        for flag in ("create", "update", "exclusive"):
            value = section.get(flag)
            if value is not None and len(value) != 4:
                raise StatusReply(Result.INVALIDARG, f"invalid {flag} flag value")
            flags[flag] = bool(value and int.from_bytes(value, "big"))
        raw_type = section.get("type")
        if not raw_type:
            if flags["create"]:
                raise StatusReply(Result.INVALIDARG, "type required on create")
            return self._refresh(message.handle, now)
        type_ = raw_type.decode("ascii", "replace")
        lookup = attribute_values(message.obj)
        if type_ == AUTHENTICATOR:
            return self._open_authenticator(lookup, **flags)
        obj = self.store.open(type_, lookup, now=now, **flags)
        return self._refresh(message.handle, now) if obj is None else obj

    def _open_authenticator(
        self, lookup: list[tuple[str, bytes]], *, create: bool, update: bool, exclusive: bool
    ) -> OmapiObject:
        # omapi_auth_key_lookup: by name, then the algorithm compared case-insensitively.
        values = dict(lookup)
        key = self.keys.get(values.get("name", b"").decode("utf-8", "replace"))
        algorithm = values.get("algorithm", b"").lower()
        found = key is not None and HmacAuthenticator(key).algorithm.lower() == algorithm
        if not found:
            if create:
                raise StatusReply(Result.NOTIMPLEMENTED, "can't create new object")
            raise StatusReply(Result.NOTFOUND, "no object matches specification")
        assert key is not None
        if create and exclusive:
            raise StatusReply(Result.EXISTS, "specified object already exists")
        if create or update:
            raise StatusReply(Result.SUCCESS, "can't update object")
        if self.required_key is not None and key.name != self.required_key:
            raise StatusReply(Result.INVALIDKEY, "can't select authenticator")
        handle = self.store.handles.handle((AUTHENTICATOR, key.name))
        authenticator = HmacAuthenticator(key)
        authenticator.authid = handle
        self._auth[handle] = authenticator
        return self._authenticator_object(handle, key)

    def _refresh(self, handle: int, now: float) -> OmapiObject:
        key = self._key_at(handle)
        if key is not None:
            return self._authenticator_object(handle, key)
        return self.store.refresh(handle, now)

    def _key_at(self, handle: int) -> OmapiKey | None:
        found = self.store.handles.key(handle)
        if isinstance(found, tuple) and found[:1] == (AUTHENTICATOR,):
            return self.keys.get(found[1])
        return None

    @staticmethod
    def _authenticator_object(handle: int, key: OmapiKey) -> OmapiObject:
        # The secret is never sent (omapi_auth_key_stuff_values).
        pairs = HmacAuthenticator(key).auth_object()
        return OmapiObject(handle, tuple((n.decode(), v) for n, v in pairs.items()))

    # -- replies -----------------------------------------------------------------------
    def _update(
        self, request: OmapiMessage, signer: HmacAuthenticator | None, obj: OmapiObject
    ) -> None:
        reply = OmapiMessage(opcode=Op.UPDATE, handle=obj.handle, obj=encode_pairs(obj.attributes))
        self._send(request, signer, reply)

    def _status(
        self,
        request: OmapiMessage,
        signer: HmacAuthenticator | None,
        result: int,
        text: str = "",
    ) -> None:
        section = [(b"result", u32(result))]
        if text:
            section.append((b"message", text.encode()))
        self._send(request, signer, OmapiMessage(opcode=Op.STATUS, message=section))

    def _send(
        self, request: OmapiMessage, signer: HmacAuthenticator | None, reply: OmapiMessage
    ) -> None:
        reply.tid = next(self._ids)
        reply.rid = request.tid
        if signer is not None:
            reply.sign(signer)
        self._outgoing += reply.as_string()
