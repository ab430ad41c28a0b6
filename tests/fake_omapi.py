"""A fake dhcpd OMAPI server on loopback for error paths and CLI tests, plus vector loading.

The fake speaks the real framing (pypureomapi's codec), the authenticator exchange and
HMAC signing, answers ``failover-state`` OPEN/REFRESH/UPDATE and ``lease`` → pool REFRESH
as dhcpd 4.4.3 does (including the 8 pointer bytes in partner-address), and can misbehave
on purpose: stay silent, close at once, send garbage or a wrong startup. It serves on
127.0.0.1 only, in one daemon thread, and every socket operation has a timeout.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pypureomapi import InBuffer, OmapiMessage

from dhcpfoctl.keys import OmapiKey
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi.codec import STARTUP_BYTES, HmacAuthenticator, Op, u32

VECTORS = Path(__file__).parent / "data" / "real-dhcpd-4.4.3" / "pcap"

_HEADER = re.compile(r"^\[\+\s*[\d.]+s\] omapi (\S+) -> (\S+) ")


def load_vector(name: str) -> list[tuple[str, bytes]]:
    """The messages of a captured session as (``client``/``server``, bytes), in order."""
    messages: list[tuple[str, bytes]] = []
    side = ""
    for line in (VECTORS / f"{name}.msgs.txt").read_text().splitlines():
        if match := _HEADER.match(line):
            side = "server" if match.group(1).endswith(":7911") else "client"
        elif line.strip().startswith("hex: "):
            messages.append((side, bytes.fromhex(line.strip()[5:])))
    return messages


LAB_KEY_SECRET = b"dhcpfoctl-labkey"  # base64 ZGhjcGZvY3RsLWxhYmtleQ== from secondary.conf


@dataclass
class FakeFailover:
    """The failover-state attributes the fake reports, mutable by tests and by UPDATE."""

    name: str = "lab"
    local_state: int = int(FailoverState.NORMAL)
    partner_state: int = int(FailoverState.NORMAL)
    local_stos: int = 1_795_849_498
    partner_stos: int = 1_795_849_498
    hierarchy: int = 0
    mclt: int = 3600
    max_response_delay: int = 60
    cur_unacked_updates: int = 0
    hba: bytes | None = b"\xff" * 16 + b"\x00" * 16
    #: When False the server answers STATUS success to a local-state write but does not
    #: change state (to test verification by read-back).
    accept_writes: bool = True
    handle: int = 0

    def attributes(self) -> list[tuple[bytes, bytes]]:
        pointer = b"\x90\x20\x75\x72\x0b\x56\x00\x00"  # what 4.4.3 really sends
        attrs = [
            (b"name", self.name.encode()),
            (b"partner-address", pointer),
            (b"partner-port", u32(647)),
            (b"local-address", pointer),
            (b"local-port", u32(847)),
            (b"max-outstanding-updates", u32(10)),
            (b"mclt", u32(self.mclt)),
            (b"load-balance-max-secs", u32(3)),
        ]
        if self.hba is not None:
            attrs.append((b"load-balance-hba", self.hba))
        attrs += [
            (b"partner-state", u32(self.partner_state)),
            (b"local-state", u32(self.local_state)),
            (b"partner-stos", u32(self.partner_stos)),
            (b"local-stos", u32(self.local_stos)),
            (b"hierarchy", u32(self.hierarchy)),
            (b"last-packet-sent", u32(0)),
            (b"last-timestamp-received", u32(0)),
            (b"skew", u32(0)),
            (b"max-response-delay", u32(self.max_response_delay)),
            (b"cur-unacked-updates", u32(self.cur_unacked_updates)),
        ]
        return attrs


@dataclass
class FakePool:
    lease_count: int
    free_leases: int
    backup_leases: int
    handle: int = 0


@dataclass
class FakeOmapiServer:
    """Context manager; ``endpoint`` is ``127.0.0.1:PORT`` once entered.

    ``behaviour``: ``dhcpd`` (default), ``silent`` (accepts, never sends), ``close``
    (closes at once), ``garbage`` (sends ``garbage`` instead of a startup), ``bad-startup``
    (version 99), ``mute`` (startup, then never answers).
    """

    relationships: dict[str, FakeFailover] = field(default_factory=dict)
    key: OmapiKey | None = None
    behaviour: str = "dhcpd"
    garbage: bytes = b"\xde\xad\xbe\xef" * 16
    #: address → pool of that lease.
    pools: dict[str, FakePool] = field(default_factory=dict)
    received: list[OmapiMessage] = field(default_factory=list)
    connections: int = 0
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _next_handle: int = 2

    port: int = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> FakeOmapiServer:
        for failover in self.relationships.values():
            failover.handle = self._new_handle()
        for pool in self.pools.values():
            pool.handle = self._new_handle()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None and self._sock is not None
        self._thread.join(timeout=10)
        self._sock.close()

    def _new_handle(self) -> int:
        handle, self._next_handle = self._next_handle, self._next_handle + 1
        return handle

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            # A client that goes away mid-exchange ends only its own connection.
            with conn, contextlib.suppress(OSError):
                conn.settimeout(0.2)
                self._handle(conn)

    def _recv(self, conn: socket.socket) -> bytes | None:
        """Bytes from the client, ``None`` when it closed or the server is stopping."""
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except TimeoutError:
                continue
            return data or None
        return None

    def _handle(self, conn: socket.socket) -> None:
        if self.behaviour == "close":
            return
        if self.behaviour != "dhcpd" and self.behaviour != "mute":
            conn.sendall(
                {"silent": b"", "garbage": self.garbage, "bad-startup": struct.pack("!II", 99, 24)}[
                    self.behaviour
                ]
            )
            while self._recv(conn) is not None:
                pass  # swallow whatever the client sends until it gives up
            return
        conn.sendall(STARTUP_BYTES)
        inbuffer = InBuffer()
        parser = inbuffer.parse_startup_message()
        auth: HmacAuthenticator | None = None
        while (data := self._recv(conn)) is not None:
            inbuffer.feed(data)
            while (result := next(parser)) is not None:
                parser = inbuffer.parse_message()
                inbuffer.resetsize()
                if not isinstance(result, OmapiMessage):
                    continue  # the client's startup
                self.received.append(result)
                if self.behaviour == "mute":
                    continue
                reply, auth = self._answer(result, auth)
                reply.rid = result.tid
                reply.tid = 1000 + len(self.received)
                if auth is not None and reply.authid:
                    reply.sign(auth)
                conn.sendall(reply.as_string())

    def _status(self, code: int, text: str = "", authid: int = 0) -> OmapiMessage:
        message = [(b"result", u32(code))]
        if text:
            message.append((b"message", text.encode()))
        return OmapiMessage(authid=authid, opcode=Op.STATUS, message=message)

    def _answer(
        self, request: OmapiMessage, auth: HmacAuthenticator | None
    ) -> tuple[OmapiMessage, HmacAuthenticator | None]:
        kind = dict(request.message).get(b"type", b"").decode()
        obj = dict(request.obj)
        if request.opcode == Op.OPEN and kind == "authenticator":
            name = obj.get(b"name", b"").decode()
            if self.key is None or name != self.key.name:
                return self._status(23, "no object matches specification"), auth
            auth = HmacAuthenticator(self.key)
            auth.authid = 1
            return OmapiMessage(opcode=Op.UPDATE, handle=1, obj=list(obj.items())), auth
        authid = auth.authid if auth is not None else 0
        if self.key is not None:
            if auth is None or request.authid != auth.authid:
                return self._status(0x60009, "No authenticator on message"), auth
            if not request.verify({auth.authid: auth}):
                return self._status(0x6000B), auth
        if request.opcode == Op.OPEN and kind == "failover-state":
            failover = self.relationships.get(obj.get(b"name", b"").decode())
            if failover is None:
                return self._status(23, "no object matches specification", authid), auth
            return self._update(failover.handle, failover.attributes(), authid), auth
        if request.opcode == Op.OPEN and kind == "lease":
            address = socket.inet_ntoa(obj.get(b"ip-address", b"\0\0\0\0"))
            pool = self.pools.get(address)
            if pool is None:
                return self._status(23, "no object matches specification", authid), auth
            attrs = [(b"state", u32(2)), (b"ip-address", obj[b"ip-address"])]
            attrs += [(b"subnet", u32(99)), (b"pool", u32(pool.handle))]
            return self._update(500, attrs, authid), auth
        if request.opcode == Op.REFRESH:
            for failover in self.relationships.values():
                if failover.handle == request.handle:
                    return self._update(request.handle, failover.attributes(), authid), auth
            for pool in self.pools.values():
                if pool.handle == request.handle:
                    counts = [
                        (b"lease-count", u32(pool.lease_count)),
                        (b"free-leases", u32(pool.free_leases)),
                        (b"backup-leases", u32(pool.backup_leases)),
                    ]
                    return self._update(request.handle, counts, authid), auth
            return self._status(23, "no matching handle", authid), auth
        if request.opcode == Op.UPDATE:
            return self._update_failover(request, authid), auth
        return self._status(27, "not implemented in the fake", authid), auth

    def _update(self, handle: int, attrs: list[tuple[bytes, bytes]], authid: int) -> OmapiMessage:
        return OmapiMessage(authid=authid, opcode=Op.UPDATE, handle=handle, obj=attrs)

    def _update_failover(self, request: OmapiMessage, authid: int) -> OmapiMessage:
        target = next((f for f in self.relationships.values() if f.handle == request.handle), None)
        if target is None:
            return self._status(23, "no matching handle", authid)
        for name, value in request.obj:
            if name != b"local-state":
                continue
            if len(value) != 4:
                return self._status(0x60003, "can't update object", authid)
            if target.accept_writes:
                target.local_state = struct.unpack("!I", value)[0]
                target.local_stos += 1
        return self._status(0, authid=authid)
