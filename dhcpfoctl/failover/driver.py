"""Thin socket glue for :class:`~dhcpfoctl.failover.connection.FailoverEndpoint`.

One thread runs a ``selectors`` loop: it listens on our failover address (accepting only
the partner's address, as dhcpd does), connects out when the endpoint wants a link, moves
bytes, and fires the endpoint's timers. Everything else, the protocol included, is in the
sans-IO endpoint; other threads reach it only through :meth:`EndpointDriver.call`, which
runs a function on the loop thread's side of a lock and wakes the loop.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from dhcpfoctl.failover.connection import Event, FailoverEndpoint

T = TypeVar("T")

#: Longest sleep of the loop, so that stop() and clock jumps are noticed promptly.
MAX_WAIT = 0.5
_RECV_SIZE = 65536


class EndpointDriver:
    """Runs one endpoint over TCP until :meth:`stop`.

    ``listener``: a bound, listening socket (or ``None`` to only connect out);
    ``connect_to``: the partner's failover ``(address, port)`` (or ``None`` to only accept);
    ``new_socket``: makes the socket for each outgoing attempt (tests create it inside a
    network namespace); ``clock``: seconds since the epoch. ``before_send(now, events)`` runs
    on the loop thread with each batch of new events before the bytes that follow from them
    leave: a server persists there, so a BNDACK never acknowledges what a crash would lose.
    ``record_events``: keep every event in :attr:`events` (tests); a long-running server
    turns it off and uses ``before_send``.
    """

    def __init__(
        self,
        endpoint: FailoverEndpoint,
        *,
        listener: socket.socket | None,
        connect_to: tuple[str, int] | None,
        partner_address: str | None = None,
        new_socket: Callable[[], socket.socket] | None = None,
        clock: Callable[[], float] = time.time,
        before_send: Callable[[float, list[Event]], None] | None = None,
        record_events: bool = True,
    ) -> None:
        self.endpoint = endpoint
        self._listener = listener
        self._connect_to = connect_to
        self._partner_address = partner_address
        self._new_socket = new_socket or (lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        self._clock = clock
        self._before_send = before_send
        self._record_events = record_events
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._conn: socket.socket | None = None
        self._connecting: socket.socket | None = None
        self._stopping = False
        #: When the loop's select() times out (None: it is awake and will plan again).
        self._asleep_until: float | None = None
        self._thread = threading.Thread(target=self._loop, name="failover-endpoint", daemon=True)
        #: Every event with the time it was seen, in order (tests and the lab read it).
        self.events: list[tuple[float, Event]] = []

    # -- control from other threads ----------------------------------------------------
    def start(self) -> None:
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        if self._listener is not None:
            self._listener.setblocking(False)
            self._selector.register(self._listener, selectors.EVENT_READ, "accept")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and close every socket (idempotent)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._wake()
        self._thread.join(timeout)
        for sock in (self._conn, self._connecting, self._listener, self._wake_r, self._wake_w):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._selector.close()

    def call(self, function: Callable[[FailoverEndpoint, float], T]) -> T:
        """Run ``function(endpoint, now)`` under the loop's lock and send what it produced;
        wake the loop only if it now has something to do before it would wake anyway (a
        wake per call, i.e. per DHCP burst, was a thread switch and a pass for nothing)."""
        with self._lock:
            now = self._clock()
            result = function(self.endpoint, now)
            self._collect()
            asleep_until = self._asleep_until
            deadline = self.endpoint.next_deadline()
            wake = asleep_until is not None and (
                (deadline is not None and deadline < asleep_until)
                or self.endpoint.wants_connect(now)
            )
        if wake:
            self._wake()
        return result

    def wait_for(self, predicate: Callable[[FailoverEndpoint], bool], timeout: float) -> bool:
        """Wait (bounded) until ``predicate(endpoint)`` holds; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.endpoint):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, MAX_WAIT))
        return True

    # -- the loop ----------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                now = self._clock()
                deadline = self.endpoint.next_deadline()
                wait = MAX_WAIT if deadline is None else min(max(deadline - now, 0.0), MAX_WAIT)
                self._asleep_until = now + wait
            ready = self._selector.select(wait)
            with self._lock:
                self._asleep_until = None
                now = self._clock()
                for key, _ in ready:
                    self._ready(key.data, key.fileobj, now)  # type: ignore[arg-type]
                deadline = self.endpoint.next_deadline()
                if deadline is not None and now >= deadline:
                    self.endpoint.handle_timer(now)
                if self.endpoint.wants_connect(now) and self._connecting is None:
                    self._start_connect(now)
                self._collect()

    def _ready(self, what: str, sock: socket.socket, now: float) -> None:
        if what == "wake":
            with contextlib.suppress(OSError):
                sock.recv(4096)
        elif what == "accept":
            self._accept(now)
        # One select() can report a socket that an earlier key of the same batch already
        # closed (an accepted link abandons our pending connect): only current sockets count.
        elif what == "connecting" and sock is self._connecting:
            self._finish_connect(now)
        elif what == "conn" and sock is self._conn:
            self._read(now)

    def _accept(self, now: float) -> None:
        assert self._listener is not None
        try:
            conn, (address, _port) = self._listener.accept()
        except OSError:
            return
        # dhcpd keeps only a connection from the partner's address, and only one link.
        if (self._partner_address and address != self._partner_address) or self._conn:
            conn.close()
            return
        self._abandon_connect()
        self._adopt(conn, now)

    def _start_connect(self, now: float) -> None:
        if self._connect_to is None:
            self.endpoint.connect_failed(now)
            return
        sock = self._new_socket()
        sock.setblocking(False)
        code = sock.connect_ex(self._connect_to)
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.endpoint.connect_failed(now)
            return
        self._connecting = sock
        self._selector.register(sock, selectors.EVENT_WRITE, "connecting")

    def _finish_connect(self, now: float) -> None:
        sock = self._connecting
        assert sock is not None
        self._selector.unregister(sock)
        self._connecting = None
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0 or self._conn is not None:
            sock.close()
            if self._conn is None:
                self.endpoint.connect_failed(now)
            return
        self._adopt(sock, now)

    def _abandon_connect(self) -> None:
        if self._connecting is not None:
            self._selector.unregister(self._connecting)
            self._connecting.close()
            self._connecting = None

    def _adopt(self, sock: socket.socket, now: float) -> None:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = sock
        self._selector.register(sock, selectors.EVENT_READ, "conn")
        self.endpoint.connection_made(now)

    def _read(self, now: float) -> None:
        assert self._conn is not None
        try:
            data = self._conn.recv(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._drop(now, f"connection error: {exc.strerror or exc}")
            return
        if not data:
            self._drop(now, "connection closed by the partner")
            return
        self.endpoint.receive_data(data, now)

    def _drop(self, now: float, reason: str) -> None:
        if self._conn is not None:
            self._selector.unregister(self._conn)
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
        self.endpoint.connection_lost(now, reason)

    def _collect(self) -> None:
        """Hand new events over, then send what the endpoint produced, honour a close request."""
        endpoint = self.endpoint
        self._take_events()
        data = endpoint.data_to_send()
        if data and self._conn is not None:
            try:
                # Failover messages are small and the partner reads promptly; a blocking
                # send with a bound keeps the glue simple.
                self._conn.setblocking(True)
                self._conn.settimeout(5.0)
                self._conn.sendall(data)
                self._conn.setblocking(False)
            except OSError as exc:
                self._drop(self._clock(), f"send failed: {exc}")
        if endpoint.close_requested and self._conn is not None:
            self._drop(self._clock(), endpoint.close_requested)
        self._take_events()  # those of a drop
        self._changed.notify_all()

    def _take_events(self) -> None:
        new = self.endpoint.next_events()
        if not new:
            return
        now = self._clock()
        if self._record_events:
            self.events.extend((now, event) for event in new)
        if self._before_send is not None:
            self._before_send(now, new)
