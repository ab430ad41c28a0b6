"""One lab server process: DHCP over UDP, OMAPI over TCP and one failover relationship.

Thin I/O glue around the sans-IO parts. The failover link runs in its
:class:`~dhcpfoctl.failover.driver.EndpointDriver` thread; this module's loop (the main
thread) serves DHCP and OMAPI. Everything that touches the lease database, the endpoint or
the engine runs through :meth:`EndpointDriver.call`, under the one lock, so the two threads
never see half a change.

Persistence follows dhcpd's rule: a lease change is in the journal, fsynced, before the
DHCPACK or BNDACK that depends on it leaves (the driver's ``before_send`` hook and
:meth:`LabServer._step` both commit before any bytes go out).

Run as ``python -m dhcpfoctl.lab.server --config CONF --leases FILE [--log FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from dhcpfoctl.conf import Config, FailoverPeerConfig, read_config
from dhcpfoctl.errors import DhcpfoctlError, LocalError
from dhcpfoctl.failover.bindings import never_used
from dhcpfoctl.failover.connection import (
    ConnectRefused,
    Event,
    FailoverEndpoint,
    LeaseRetimed,
    LeaseUpdated,
    LinkDown,
    LinkUp,
    PartnerStateChanged,
    PoolBalanced,
    PoolResponse,
    ProtocolViolation,
    StateChanged,
    UpdateAcked,
    UpdateRefused,
    UpdatesDone,
)
from dhcpfoctl.failover.driver import EndpointDriver
from dhcpfoctl.failover.wire import MessageType
from dhcpfoctl.lab.dhcp import DhcpDecodeError, Packet, decode, encode
from dhcpfoctl.lab.engine import LeaseEngine
from dhcpfoctl.lab.journal import LeaseJournal
from dhcpfoctl.lab.objects import LabObjects
from dhcpfoctl.model import FailoverPeerRecord, FailoverState
from dhcpfoctl.omapi.server_session import ServerSession
from dhcpfoctl.quoting import printable

T = TypeVar("T")

#: Longest sleep of the main loop: lease timers and a stop request are seen this promptly.
MAX_WAIT = 0.5
#: dhcpd waits about 5 s for a partner to acknowledge shutdown with partner-down (§8.7).
SHUTDOWN_WAIT = 5.0
#: How long the link must carry no BNDUPD before a shutting-down server leaves.
UPDATES_QUIET = 1.0
#: DHCP clients listen here; a reply to a client without an address is broadcast to it.
CLIENT_PORT = 68
_DATAGRAM = 4096
#: struct in_pktinfo {int ipi_ifindex; in_addr ipi_spec_dst, ipi_addr} (Linux ip(7)).
_PKTINFO = struct.Struct("=i4s4s")
#: Linux's IP_PKTINFO (<linux/in.h>); this Python's socket module does not name it.
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


@dataclass(frozen=True, slots=True)
class ServerOptions:
    config: Path
    leases: Path
    #: Where DHCP is served; the port defaults to the config's ``local-port``, else 67.
    dhcp_address: str = "127.0.0.1"
    dhcp_port: int | None = None
    #: dhcpd binds OMAPI to every address; the lab keeps it on loopback unless told.
    omapi_address: str = "127.0.0.1"
    log: Path | None = None


class EventLog:
    """One line per event in dhcpd's wording. In a log file each line starts with an ISO
    time and the server's name; on stderr a line is the bare message, as ``dhcpd -d``
    prints it (whatever supervises the process stamps it)."""

    def __init__(
        self, name: str, stream: TextIO, clock: Callable[[], float], *, stamped: bool = True
    ) -> None:
        self.name = name
        self._stream = stream
        self._clock = clock
        self._stamped = stamped

    def line(self, text: str) -> None:
        self.lines([text])

    def lines(self, texts: list[str]) -> None:
        """Write ``texts`` with one time stamp and one flush: a busy server logs several
        lines per request, and a flush per line was a system call each."""
        if not texts:
            return
        if not self._stamped:
            self._stream.write("".join(f"{printable(t)}\n" for t in texts))
            self._stream.flush()
            return
        now = self._clock()
        # Milliseconds: the demo and the tests order the two servers' lines by them.
        second = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        stamp = f"{second}.{int(now % 1 * 1000):03d}Z"
        self._stream.write("".join(f"{stamp} {self.name} {printable(t)}\n" for t in texts))
        self._stream.flush()


def describe(event: Event, peer: str, partner_was: FailoverState | None) -> str | None:
    """dhcpd's log line for a failover event (``None`` for events dhcpd does not log)."""
    prefix = f"failover peer {peer}:"
    match event:
        case StateChanged(transition=move) if move.error is None:
            return f"{prefix} I move from {move.old.keyword} to {move.new.keyword}"
        case StateChanged(transition=move):
            return f"{prefix} {move.describe()}"
        case PartnerStateChanged(state=state):
            old = partner_was.keyword if partner_was is not None else "unknown-state"
            return f"{prefix} peer moves from {old} to {state.keyword}"
        case LinkUp(mclt=mclt, vendor_class=vendor):
            partner = vendor.decode("ascii", "backslashreplace")
            return f"{prefix} link up (partner {partner}, mclt {mclt})"
        case LinkDown(reason=reason):
            return f"{prefix} disconnected: {reason}"
        case ConnectRefused(message=message, by_us=by_us):
            who = "we refused the partner" if by_us else "the partner refused us"
            return f"{prefix} {who}: {message}"
        case UpdateRefused(address=address, message=message):
            return f"bind update on {address} refused: {message}"
        case UpdatesDone():
            return f"{prefix} peer update completed."
        case PoolResponse(count=count):
            return f"pool response: {count} leases"
        case PoolBalanced(pool=pool, moved=moved) if moved:
            return f"balancing pool {pool} {peer}: moved {moved} leases"
        case ProtocolViolation(message=message):
            return f"{prefix} {message}"
    return None


def _listen(kind: int, address: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((address, port))
    except OSError as exc:
        sock.close()
        raise LocalError(f"{what} {address}:{port}: {exc.strerror or exc}") from None
    if kind == socket.SOCK_STREAM:
        sock.listen(16)
    return sock


class LabServer:
    """The sockets, the loop and the wiring of one lab server (see the module docstring)."""

    def __init__(
        self, options: ServerOptions, *, log: EventLog, clock: Callable[[], float] = time.time
    ) -> None:
        self.options = options
        self.log = log
        self._clock = clock
        now = clock()
        self.config = read_config(str(options.config))
        self.peer = self._the_peer(self.config)
        if self.config.server_identifier is None and options.dhcp_address == "0.0.0.0":
            # dhcpd takes its identifier from the interface a request came in on; the lab
            # has one address per server and cannot guess it from 0.0.0.0.
            raise LocalError(
                f"{options.config}: serving DHCP on 0.0.0.0 needs a `server-identifier`"
                " statement (this server's address on the clients' network)"
            )
        self.journal, self.db = LeaseJournal.open(options.leases, now=now)
        # dhcpd makes a lease for every address of every range when it reads its config,
        # and its start-up rewrite writes them all: so does the lab.
        for pool in self.config.pools:
            for address in pool.addresses():
                if self.db.leases.get(address) is None:
                    self.db.leases.upsert(never_used(address))
        self.endpoint = FailoverEndpoint(
            self.peer, self.config.pools, self.db, now, host=f"failover peer {self.peer.name}"
        )
        self.engine = LeaseEngine(
            self.config,
            self.db,
            {self.peer.name: self.endpoint},
            server_address=self.config.server_identifier or options.dhcp_address,
            now=now,
        )
        self.objects = LabObjects(
            {self.peer.name: self.endpoint},
            self.db,
            self.config.pools,
            on_shutdown=self._request_stop,
        )
        self._journaled_state: FailoverPeerRecord | None = None
        self._partner_state: FailoverState | None = self.endpoint.machine.partner
        self._stopping = False
        self._sockets: list[socket.socket] = []
        self._selector = selectors.DefaultSelector()
        self._sessions: dict[socket.socket, ServerSession] = {}
        self.driver = self._bind_everything()

    # -- set-up ------------------------------------------------------------------------
    @staticmethod
    def _the_peer(config: Config) -> FailoverPeerConfig:
        if len(config.failover_peers) != 1:
            raise LocalError(
                f"{config.path}: the lab serves exactly one failover relationship"
                f" (found {len(config.failover_peers)})"
            )
        return next(iter(config.failover_peers.values()))

    def _bind_everything(self) -> EndpointDriver:
        peer, options = self.peer, self.options
        failover = _listen(
            socket.SOCK_STREAM, peer.address or "127.0.0.1", peer.port, "failover port"
        )
        self._sockets.append(failover)
        if self.config.omapi_port is not None:
            omapi = _listen(
                socket.SOCK_STREAM, options.omapi_address, self.config.omapi_port, "OMAPI port"
            )
            self._sockets.append(omapi)
            omapi.setblocking(False)
            self._selector.register(omapi, selectors.EVENT_READ, "omapi-accept")
        port = options.dhcp_port or self.config.local_port or 67
        self.dhcp = _listen(socket.SOCK_DGRAM, options.dhcp_address, port, "DHCP port")
        self.dhcp.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        # The arrival interface of each request (see _serve_dhcp's broadcast).
        self.dhcp.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        self._sockets.append(self.dhcp)
        self.dhcp.setblocking(False)
        self._selector.register(self.dhcp, selectors.EVENT_READ, "dhcp")
        partner = peer.peer_address or "127.0.0.1"
        return EndpointDriver(
            self.endpoint,
            listener=failover,
            connect_to=(partner, peer.peer_port),
            partner_address=partner,
            clock=self._clock,
            before_send=self._persist,
            record_events=False,
        )

    # -- persistence and the log (on whichever thread holds the driver's lock) ----------
    def _persist(self, now: float, events: list[Event]) -> None:
        lines = []
        for event in events:
            if isinstance(event, LeaseUpdated | LeaseRetimed | UpdateAcked):
                self.journal.record_lease(event.lease)
            line = describe(event, self.peer.name, self._partner_state)
            if isinstance(event, PartnerStateChanged):
                self._partner_state = event.state
            if line:
                lines.append(line)
        self.log.lines(lines)
        self._commit()

    def _commit(self) -> None:
        """The engine's changes and our failover state into the journal, then fsync."""
        self._journal_engine()
        self._journal_state()
        self.journal.commit()

    def _journal_engine(self) -> None:
        for lease in self.engine.next_changes():
            self.journal.record_lease(lease)
        self.log.lines(self.engine.next_log())

    def _journal_state(self) -> None:
        record = self.db.failover.get(self.peer.name)
        if record is not None and record != self._journaled_state:
            self.journal.record_failover(record)
            self._journaled_state = record

    def _step(self, work: Callable[[float], T]) -> T:
        """Run ``work(now)`` under the lock; persist what it changed before returning."""

        def run(_endpoint: FailoverEndpoint, now: float) -> T:
            result = work(now)
            self._commit()
            return result

        return self.driver.call(run)

    # -- the loop ----------------------------------------------------------------------
    def serve(self) -> None:
        """Serve until SIGTERM/SIGINT or an OMAPI shutdown, then stop as dhcpd does."""
        wake_r, wake_w = socket.socketpair()
        wake_r.setblocking(False)
        wake_w.setblocking(False)
        self._selector.register(wake_r, selectors.EVENT_READ, "wake")
        previous = signal.set_wakeup_fd(wake_w.fileno())
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._request_stop(self._clock()))
        self.driver.start()
        self._step(lambda now: self.journal.rewrite(self.db, now))
        self.log.line(f"ready: {self._where()}")
        try:
            # Each round's timer step also reads the next deadline: one pass through the
            # driver (lock, send, wake of its thread) fewer per round.
            deadline = self._step(lambda now: self.engine.next_deadline())
            while not self._stopping:
                deadline = self._once(deadline)
            self._shutdown()
        finally:
            signal.set_wakeup_fd(previous)
            self.close()
            wake_r.close()
            wake_w.close()

    def _where(self) -> str:
        host, port = self.dhcp.getsockname()
        dhcp = f"{host}:{port}"
        omapi = f"{self.options.omapi_address}:{self.config.omapi_port}"
        return f"dhcp {dhcp} omapi {omapi} failover {self.peer.address}:{self.peer.port}"

    def _once(self, deadline: float | None) -> float | None:
        """One round: wait for sockets until ``deadline`` (bounded), serve them, run the
        timers; returns the next deadline."""
        now = self._clock()
        wait = MAX_WAIT if deadline is None else min(max(deadline - now, 0.0), MAX_WAIT)
        for key, _ in self._selector.select(wait):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data == "dhcp":
                self._serve_dhcp()
            elif key.data == "omapi-accept":
                self._accept_omapi(sock)
            elif key.data == "omapi" and sock in self._sessions:
                self._serve_omapi(sock)
            elif key.data == "wake":
                with contextlib.suppress(OSError):
                    sock.recv(512)
        return self._step(self._timers)

    def _timers(self, now: float) -> float | None:
        deadline = self.engine.next_deadline()
        if deadline is not None and now >= deadline:
            self.engine.handle_timer(now)
        if self.journal.rewrite_due(now):
            self.journal.rewrite(self.db, now)
        return self.engine.next_deadline()

    def _serve_dhcp(self) -> None:
        # A burst at most per round, so OMAPI is never starved; the burst is handled under
        # one lock and one journal commit (one fsync), then its replies leave.
        requests = []
        for _ in range(64):
            try:
                data, ancillary, _flags, (address, port) = self.dhcp.recvmsg(
                    _DATAGRAM, socket.CMSG_SPACE(_PKTINFO.size)
                )
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.log.line(f"DHCP socket error: {exc}")
                break
            try:
                requests.append((decode(data), address, port, ancillary))
            except DhcpDecodeError as exc:
                self.log.line(f"dropped a packet from {address}:{port}: {exc.message}")
        if not requests:
            return

        def handle_all(now: float) -> list[Packet | None]:
            return [self.engine.handle(request, now) for request, _, _, _ in requests]

        replies = self._step(handle_all)
        for reply, (_, address, port, ancillary) in zip(replies, requests, strict=True):
            if reply is None:
                continue
            # On loopback a relayed request's reply goes back to its sender (a relay sends
            # from its server port, so that is where a real relay listens too); a client
            # with no address yet is reached by broadcast, as dhcpd does without raw sockets.
            target = (address, port) if address != "0.0.0.0" else ("255.255.255.255", CLIENT_PORT)
            # A broadcast must leave by the interface the request came in on: without
            # that, 255.255.255.255 follows the routing table and a host with no default
            # route (a namespace) gets ENETUNREACH. IP_PKTINFO names the interface.
            pktinfo = [
                (level, kind, _PKTINFO.pack(_PKTINFO.unpack(value)[0], bytes(4), bytes(4)))
                for level, kind, value in ancillary
                if address == "0.0.0.0" and (level, kind) == (socket.IPPROTO_IP, _IP_PKTINFO)
            ]
            try:
                self.dhcp.sendmsg([encode(reply)], pktinfo, 0, target)
            except OSError as exc:
                self.log.line(f"DHCP reply to {target[0]}:{target[1]} failed: {exc}")

    def _accept_omapi(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        session = ServerSession(
            self.objects, keys=self.config.keys, required_key=self.config.omapi_key
        )
        self._sessions[conn] = session
        self._selector.register(conn, selectors.EVENT_READ, "omapi")
        self._send_omapi(conn, session)

    def _serve_omapi(self, conn: socket.socket) -> None:
        session = self._sessions[conn]
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._close_omapi(conn)
            return
        self._step(lambda now: session.receive_data(data, now))
        self._send_omapi(conn, session)

    def _send_omapi(self, conn: socket.socket, session: ServerSession) -> None:
        out = session.data_to_send()
        try:
            if out:
                conn.settimeout(5.0)  # a client that stops reading is dropped, not waited on
                conn.sendall(out)
        except OSError:
            self._close_omapi(conn)
            return
        if session.close_reason:
            self._close_omapi(conn)

    def _close_omapi(self, conn: socket.socket) -> None:
        self._sessions.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        conn.close()

    # -- stopping ----------------------------------------------------------------------
    def _request_stop(self, _now: float) -> None:
        self._stopping = True

    def _shutdown(self) -> None:
        """dhcpd's exit (§8.7): a normal relationship goes to shutdown and waits, bounded,
        for partner-down; it is then persisted as recover so the next start recovers."""
        self.log.line("shutting down")
        was_normal = self._step(lambda now: self.endpoint.state is FailoverState.NORMAL)
        if was_normal:
            self._step(lambda now: self.endpoint.set_state(FailoverState.SHUTDOWN, now))
            self.driver.wait_for(
                lambda e: e.machine.partner is FailoverState.PARTNER_DOWN, SHUTDOWN_WAIT
            )
            self._let_updates_settle()

            def as_recover(now: float) -> None:
                record = self.db.failover.get(self.peer.name)
                if record is None or record.my_state is not FailoverState.SHUTDOWN:
                    return
                released = (
                    record.partner_state is FailoverState.PARTNER_DOWN and not self.endpoint.queued
                )
                # With the partner in partner-down and nothing queued, the next start need
                # not wait MCLT (dhcpd back-dates STOS by MCLT).
                stos = int(now - self.endpoint.mclt) if released else int(now)
                recover = dataclasses.replace(record, my_state=FailoverState.RECOVER, my_stos=stos)
                self.journal.record_failover(recover)
                self.log.line(f"failover peer {self.peer.name}: I move from shutdown to recover")

            self._step(as_recover)
        self.driver.stop()

    def _let_updates_settle(self) -> None:
        """Stay on the link until the partner's updates stop (bounded): a partner entering
        partner-down sends BNDUPDs, and one we leave unacknowledged stays on its ack queue
        across the reconnect, so it never sends the UPDDONE our next start waits for."""
        deadline = time.monotonic() + SHUTDOWN_WAIT
        seen = -1
        while time.monotonic() < deadline:
            received = self._step(lambda now: self.endpoint.received[MessageType.BNDUPD])
            if received == seen:
                return
            seen = received
            time.sleep(UPDATES_QUIET)

    def close(self) -> None:
        self.driver.stop()
        for conn in list(self._sessions):
            self._close_omapi(conn)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
        self._selector.close()
        self.journal.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dhcpfoctl.lab.server", description=__doc__)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--leases", type=Path, required=True)
    parser.add_argument("--dhcp-address", default="127.0.0.1")
    parser.add_argument("--dhcp-port", type=int)
    parser.add_argument("--omapi-address", default="127.0.0.1")
    parser.add_argument("--log", type=Path)
    parser.add_argument("--name", default="lab", help="the server's name in log lines")
    args = parser.parse_args(argv)
    options = ServerOptions(
        config=args.config,
        leases=args.leases,
        dhcp_address=args.dhcp_address,
        dhcp_port=args.dhcp_port,
        omapi_address=args.omapi_address,
        log=args.log,
    )
    stream = args.log.open("a", encoding="utf-8") if args.log else sys.stderr
    log = EventLog(args.name, stream, time.time, stamped=args.log is not None)
    try:
        server = LabServer(options, log=log)
    except DhcpfoctlError as exc:
        if args.log is not None:  # on stderr the one line below says it
            log.line(f"cannot start: {exc}")
        print(f"dhcpfoctl lab server: {printable(str(exc))}", file=sys.stderr)
        return int(exc.exit_status)
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
