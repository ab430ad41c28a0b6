"""A population of DHCP clients on one UDP socket: the lab's built-in load (``lab clients``).

Each simulated machine is a :class:`~dhcpfoctl.lab.client.DhcpClient`; this module is only
their I/O: one socket, one clock, one loop. Machines start at ``rate`` per second with
MACs ``02:…`` derived from ``seed`` (the same seed gives the same machines, so a rerun
meets its old leases), go through DORA, renew at T1, rebind at T2 and, if asked, release
when ``duration`` is over.

Relayed mode (``giaddr``): every client acts as its own relay agent, so each message goes
to every server address (``ALL_SERVERS``) or to the lease's server (``SERVER``) and the
answers come back to the relay. The lab server answers the UDP source of a relayed
request (on loopback it must never send to giaddr), so the default socket, bound to
127.0.0.1:0, hears them. A real dhcpd answers ``giaddr`` on its own server port: against
one, pass a ``sock`` bound to giaddr:server-port (tests/integration/
test_lab_population_real.py does this in a network namespace).

A renewal goes to the address the lease's server answered from (learned from the replies,
keyed by server identifier); until one is known, to every server.

Every loop is bounded: the run ends at ``duration`` after the first start, plus one
bounded pass that sends the releases; each wake-up reads at most a fixed number of
datagrams.
"""

from __future__ import annotations

import heapq
import math
import random
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from dhcpfoctl.lab.client import (
    Bound,
    ClientConfig,
    Destination,
    DhcpClient,
    Event,
    Expired,
    Nak,
    Offered,
    Rebound,
    Released,
    Renewed,
    TimedOut,
)
from dhcpfoctl.lab.dhcp import DhcpDecodeError, decode, encode

__all__ = ["PopulationStats", "client_macs", "run_population"]

#: Datagrams read per wake-up before timers get their turn.
_READ_BATCH: Final = 256
#: Longest single wait, so that progress reports and the end are never late by more.
_MAX_WAIT: Final = 0.2
_BUFFER: Final = 4096


@dataclass
class PopulationStats:
    """What the population saw. ``acks`` counts bindings (DORA or INIT-REBOOT completed);
    renewals and rebinds are counted apart. ``latencies`` are seconds from an exchange's
    first message to its ACK. ``bound`` (clients holding a lease) and ``elapsed`` are set
    for each progress report and at the end."""

    started: int = 0
    sent: int = 0
    send_errors: int = 0
    received: int = 0
    malformed: int = 0
    offers: int = 0
    acks: int = 0
    naks: int = 0
    renewals: int = 0
    rebinds: int = 0
    releases: int = 0
    timeouts: int = 0
    expiries: int = 0
    bound: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def latency_percentile(self, percent: float) -> float | None:
        """The ``percent``-th latency percentile (0..100), None before any ACK."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        # Nearest rank: the smallest latency with at least ``percent`` % at or below it.
        rank = max(1, math.ceil(percent / 100 * len(ordered)))
        return ordered[min(rank, len(ordered)) - 1]

    def count(self, event: Event, now: float) -> None:
        match event:
            case Offered():
                self.offers += 1
            case Bound():
                self.acks += 1
                self.latencies.append(now - event.since)
            case Renewed():
                self.renewals += 1
                self.latencies.append(now - event.since)
            case Rebound():
                self.rebinds += 1
                self.latencies.append(now - event.since)
            case Nak():
                self.naks += 1
            case Released():
                self.releases += 1
            case TimedOut():
                self.timeouts += 1
            case Expired():
                self.expiries += 1


def client_macs(count: int, seed: int) -> list[bytes]:
    """``count`` distinct locally administered unicast MACs (02:…), the same for a seed."""
    base = random.Random(seed).getrandbits(40)
    return [b"\x02" + ((base + index) % (1 << 40)).to_bytes(5, "big") for index in range(count)]


def run_population(
    servers: list[tuple[str, int]],
    *,
    clients: int,
    rate: float,
    duration: float,
    giaddr: str | None,
    release_at_end: bool,
    now: Callable[[], float] = time.time,
    seed: int = 0,
    secs: int | None = None,
    retransmit_initial: float = 1.0,
    retransmit_max: float = 8.0,
    sock: socket.socket | None = None,
    progress: Callable[[PopulationStats], None] | None = None,
    progress_interval: float = 0.5,
    until: Callable[[], bool] | None = None,
) -> PopulationStats:
    """Run ``clients`` machines against ``servers`` for ``duration`` seconds; their stats.

    ``sock`` (a UDP socket, bound or not) replaces the default one on 127.0.0.1:0; it is
    the caller's to close. ``progress`` is called with the running stats about every
    ``progress_interval`` seconds and once at the end. ``until`` ends the run early when it
    returns true (checked at least every ``progress_interval``; releases still go out).
    """
    if not servers:
        raise ValueError("a population needs at least one server address")
    own_socket = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
    try:
        sock.setblocking(False)
        runner = _Runner(servers, sock, now)
        rng = random.Random(seed)
        machines = [
            DhcpClient(
                ClientConfig(
                    chaddr=mac,
                    giaddr=giaddr,
                    secs=secs,
                    retransmit_initial=retransmit_initial,
                    retransmit_max=retransmit_max,
                ),
                rng=random.Random(rng.getrandbits(64)),
            )
            for mac in client_macs(clients, seed)
        ]
        return runner.run(
            machines, rate, duration, release_at_end, progress, progress_interval, until
        )
    finally:
        if own_socket:
            sock.close()


class _Runner:
    def __init__(
        self, servers: list[tuple[str, int]], sock: socket.socket, now: Callable[[], float]
    ) -> None:
        self.servers = servers
        self.sock = sock
        self.now = now
        self.stats = PopulationStats()
        #: Server identifier → the address its replies came from.
        self.server_addresses: dict[str, tuple[str, int]] = {}
        self.by_mac: dict[bytes, DhcpClient] = {}
        #: (deadline, sequence, client): stale entries are skipped when popped.
        self.timers: list[tuple[float, int, DhcpClient]] = []
        self.sequence = 0
        self.scheduled: dict[bytes, float] = {}

    def run(
        self,
        machines: list[DhcpClient],
        rate: float,
        duration: float,
        release_at_end: bool,
        progress: Callable[[PopulationStats], None] | None,
        interval: float,
        until: Callable[[], bool] | None = None,
    ) -> PopulationStats:
        start = self.now()
        end = start + duration
        spacing = 1.0 / rate if rate > 0 else 0.0
        next_report = start + interval
        waiting = list(reversed(machines))
        t = start
        while t < end and not (until is not None and until()):
            while waiting and start + self.stats.started * spacing <= t:
                machine = waiting.pop()
                self.by_mac[machine.config.chaddr] = machine
                self.stats.started += 1
                machine.start(t)
                self._flush(machine, t)
            self._fire_timers(t)
            wake = min(
                end,
                t + _MAX_WAIT,
                self.timers[0][0] if self.timers else end,
                start + self.stats.started * spacing if waiting else end,
            )
            self._receive(max(0.0, wake - t))
            t = self.now()
            if progress is not None and t >= next_report:
                self._report(progress, t - start)
                next_report = t + interval
        if release_at_end:
            for machine in self.by_mac.values():
                machine.release(t)
                self._flush(machine, t)
        self.stats.elapsed = self.now() - start
        if progress is not None:
            self._report(progress, self.stats.elapsed)
        return self.stats

    def _report(self, progress: Callable[[PopulationStats], None], elapsed: float) -> None:
        self.stats.elapsed = elapsed
        self.stats.bound = sum(1 for machine in self.by_mac.values() if machine.lease)
        progress(self.stats)

    def _fire_timers(self, t: float) -> None:
        # Each client is re-queued only with a deadline it reports, so this ends.
        due: list[DhcpClient] = []
        while self.timers and self.timers[0][0] <= t:
            deadline, _, machine = heapq.heappop(self.timers)
            if self.scheduled.get(machine.config.chaddr) == deadline:
                del self.scheduled[machine.config.chaddr]
                due.append(machine)
        for machine in due:
            machine.handle_timer(t)
            self._flush(machine, t)

    def _receive(self, timeout: float) -> None:
        readable, _, _ = select.select([self.sock], [], [], timeout)
        if not readable:
            return
        for _ in range(_READ_BATCH):
            try:
                data, source = self.sock.recvfrom(_BUFFER)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # An ICMP error queued on the socket (a server not listening): lost packet.
                self.stats.send_errors += 1
                continue
            self.stats.received += 1
            try:
                packet = decode(data)
            except DhcpDecodeError:
                self.stats.malformed += 1
                continue
            server = packet.server_identifier
            if server is not None:
                self.server_addresses[server] = source
            machine = self.by_mac.get(packet.chaddr)
            if machine is not None:
                t = self.now()
                machine.receive(packet, t)
                self._flush(machine, t)

    def _flush(self, machine: DhcpClient, t: float) -> None:
        for outgoing in machine.data_to_send():
            data = encode(outgoing.packet)
            targets = self.servers
            if outgoing.destination is Destination.SERVER and outgoing.server is not None:
                known = self.server_addresses.get(outgoing.server)
                targets = [known] if known is not None else self.servers
            for target in targets:
                try:
                    self.sock.sendto(data, target)
                    self.stats.sent += 1
                except OSError:
                    # A full buffer or an unreachable server: the client retransmits.
                    self.stats.send_errors += 1
        for event in machine.next_events():
            self.stats.count(event, t)
        deadline = machine.next_deadline()
        # One heap entry per new deadline; older entries are skipped when popped.
        if deadline is not None and self.scheduled.get(machine.config.chaddr) != deadline:
            self.scheduled[machine.config.chaddr] = deadline
            self.sequence += 1
            heapq.heappush(self.timers, (deadline, self.sequence, machine))
