"""What the watcher learns about a partner from here: thin I/O around the checks.

* :func:`probe_omapi_and_failover`: the partner's OMAPI and failover port, through
  :func:`dhcpfoctl.checks.gather.probe_partner` (the probe ``partner-down`` makes), with
  bounded retries.
* :func:`probe_dhcp`: a DHCPINFORM to the partner's DHCP port, built with
  :mod:`dhcpfoctl.lab.dhcp`, relayed from the watcher's own address (giaddr = ciaddr, so
  that dhcpd finds the subnet). dhcpd 4.4.3 answers an INFORM at ``ciaddr`` on the client
  port 68 (RFC 2131 §4.3.5), relayed or not (the integration test checks it); the lab
  answers the request's source. Port 68 needs ``CAP_NET_BIND_SERVICE`` (the systemd unit
  grants it with ``AmbientCapabilities=``); a port that cannot be bound is an ERROR (doubt,
  no action), never a dead partner.
* :class:`UnansweredClients`: condition 3 from the local lease journal.

Why the lease journal, and what it can show (docs/failover-protocol.md §8.1): in normal
state dhcpd load-balances (``load_balance_mine``: a client of the partner's hash buckets is
answered only once its ``secs`` exceed ``load balance max seconds``), but in
communications-interrupted it is "not cooperating" and answers every client at once, so the
waiting is no longer visible in the server's answers. What the journal does show is who the
local server bound while cut off: every lease record it writes then (no BNDUPD arrives from
the partner) with a ``cltt`` after the interruption began, for a client whose hash bucket
(client identifier, else hardware address: :func:`dhcpfoctl.failover.wire.load_balance_hash`)
the HBA gives the partner, is a partner's client served here. Two kinds are counted apart:

* *rebinding*: the client held that very lease before the interruption (its last record
  before the interruption, read once per incident from the whole file) (a renewal goes by
  unicast to the server that granted it; arriving here means it gave up on that server and
  broadcast, at T2, or after a reboot): the strongest sign that its server did not answer;
* *new*: a partner's client bound here for the first time since the interruption; weaker,
  as in communications-interrupted both servers answer newcomers.

Neither proves the partner dead on its own (a client that reaches both servers is served by
the first to answer during a partition too): that is why this is one condition among four.
"""

from __future__ import annotations

import errno
import os
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from dhcpfoctl.checks.gather import probe_partner
from dhcpfoctl.errors import DhcpfoctlError
from dhcpfoctl.failover.wire import load_balance_hash, primary_serves
from dhcpfoctl.lab import dhcp
from dhcpfoctl.leases import ResumeState, read_leases_incremental
from dhcpfoctl.leases.reader import read_lease_history
from dhcpfoctl.model import BindingState, Lease, LeaseDB, address_to_int
from dhcpfoctl.omapi import format_endpoint
from dhcpfoctl.profile import ServerSpec
from dhcpfoctl.watch.policy import ProbeOutcome, ProbeResult, Unanswered

#: Default attempts of each probe before its failure counts.
RETRIES = 3


def probe_omapi_and_failover(
    partner: ServerSpec | None,
    failover: tuple[str, int] | None,
    relationship: str,
    timeout: float,
    retries: int = RETRIES,
) -> tuple[ProbeResult, ...]:
    """One result per probe that can be made (the partner's OMAPI, its failover port); a
    probe is retried until it answers or ``retries`` attempts failed."""
    results: dict[str, ProbeResult] = {}
    for attempt in range(1, retries + 1):
        try:
            probe = probe_partner(partner, failover, relationship, timeout)
        except DhcpfoctlError as exc:
            return tuple(
                ProbeResult(name, target, ProbeOutcome.ERROR, str(exc), attempt)
                for name, target in _targets(partner, failover)
            )
        found = {}
        if probe.omapi is not None:
            outcome = (
                ProbeOutcome.ANSWERED
                if probe.omapi_answers
                else ProbeOutcome.REFUSED
                if probe.omapi_refused
                else ProbeOutcome.SILENT
            )
            found["omapi"] = (probe.omapi, outcome)
        if probe.failover is not None:
            outcome = {
                True: ProbeOutcome.ANSWERED,
                False: ProbeOutcome.REFUSED,
                None: ProbeOutcome.SILENT,
            }[probe.failover_port_open]
            found["failover"] = (probe.failover, outcome)
        details = {name: line for name in found for line in probe.evidence if name in line.lower()}
        for name, (target, outcome) in found.items():
            if name in results and results[name].outcome is ProbeOutcome.ANSWERED:
                continue
            results[name] = ProbeResult(name, target, outcome, details.get(name, ""), attempt)
        if all(r.outcome is ProbeOutcome.ANSWERED for r in results.values()):
            break
    return tuple(results.values())


def _targets(partner: ServerSpec | None, failover: tuple[str, int] | None) -> list[tuple[str, str]]:
    targets = []
    if partner is not None:
        targets.append(("omapi", partner.endpoint))
    if failover is not None:
        targets.append(("failover", format_endpoint(*failover)))
    return targets


@dataclass(frozen=True, slots=True)
class DhcpProbe:
    """Where and how to send the DHCPINFORM."""

    target: tuple[str, int]  # the partner's DHCP address and server port
    #: The watcher's address (sent as giaddr) and the port replies come to (dhcpd: 68).
    bind: tuple[str, int]
    #: Where dhcpd sends its reply: the watcher's address, in a subnet the partner serves
    #: (dhcpd ignores an INFORM from elsewhere).
    ciaddr: str
    timeout: float = 1.0
    retries: int = RETRIES


def inform_packet(probe: DhcpProbe, xid: int) -> bytes:
    """A relayed DHCPINFORM from a made-up, locally administered hardware address."""
    packet = dhcp.Packet(
        op=dhcp.BOOTREQUEST,
        xid=xid,
        chaddr=b"\x02" + secrets.token_bytes(5),
        hops=1,
        ciaddr=probe.ciaddr,
        giaddr=probe.bind[0],
        options={dhcp.Option.MESSAGE_TYPE.value: bytes((dhcp.MessageType.INFORM,))},
    )
    return dhcp.encode(packet)


def probe_dhcp(probe: DhcpProbe, sock: socket.socket | None = None) -> ProbeResult:
    """ANSWERED on any DHCP reply with our xid; SILENT when every attempt timed out; ERROR
    when the probe cannot be made here (the relay port cannot be bound, no route out).
    ``sock``: an unbound UDP socket to use (e.g. one made in another network namespace);
    it is closed at the end, as the probe's own one is."""
    target = format_endpoint(*probe.target)
    try:
        sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError as exc:
        return ProbeResult("dhcp", target, ProbeOutcome.ERROR, f"no socket: {exc.strerror}")
    with sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(probe.bind)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if exc.errno == errno.EACCES:
                why += " (a port below 1024 needs CAP_NET_BIND_SERVICE)"
            bind = format_endpoint(*probe.bind)
            return ProbeResult("dhcp", target, ProbeOutcome.ERROR, f"cannot bind {bind}: {why}")
        for attempt in range(1, probe.retries + 1):
            xid = int.from_bytes(os.urandom(4), "big")
            try:
                sock.sendto(inform_packet(probe, xid), probe.target)
            except OSError as exc:
                if exc.errno in (errno.EHOSTUNREACH, errno.ECONNREFUSED):
                    outcome = (
                        ProbeOutcome.REFUSED
                        if exc.errno == errno.ECONNREFUSED
                        else ProbeOutcome.SILENT
                    )
                    return ProbeResult("dhcp", target, outcome, exc.strerror or "", attempt)
                why = f"cannot send: {exc.strerror or exc}"
                return ProbeResult("dhcp", target, ProbeOutcome.ERROR, why, attempt)
            if reply := _await_reply(sock, xid, time.monotonic() + probe.timeout):
                return ProbeResult("dhcp", target, ProbeOutcome.ANSWERED, reply, attempt)
        detail = f"no reply to {probe.retries} DHCPINFORM of {probe.timeout:g} s each"
        return ProbeResult("dhcp", target, ProbeOutcome.SILENT, detail, probe.retries)


def _await_reply(sock: socket.socket, xid: int, deadline: float) -> str | None:
    """A line describing the reply with ``xid`` received before ``deadline``, else None."""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, source = sock.recvfrom(4096)
        except TimeoutError:
            return None
        except OSError:
            continue  # an ICMP error queued for an earlier datagram: keep listening
        try:
            packet = dhcp.decode(data)
        except DhcpfoctlError:
            continue
        if packet.op == dhcp.BOOTREPLY and packet.xid == xid:
            kind = packet.message_type
            name = kind.name if kind is not None else "BOOTREPLY"
            return f"DHCP{name} from {format_endpoint(*source[:2])}"
    return None


# -- condition 3: unanswered clients ----------------------------------------------------


def partner_buckets(hba: bytes, local_is_primary: bool) -> frozenset[int]:
    """The hash buckets whose clients the partner answers in normal state."""
    return frozenset(
        bucket for bucket in range(256) if primary_serves(hba, bucket) != local_is_primary
    )


def count_unanswered(
    db: LeaseDB, since: float, buckets: frozenset[int], baseline: dict[int, bytes]
) -> tuple[int, int]:
    """(rebinding, new): leases bound here (active, ``cltt`` at or after ``since``) to
    clients in ``buckets``; rebinding when ``baseline`` (address → client key before the
    interruption) says the same client held the address already."""
    table = db.leases
    active = BindingState.ACTIVE.value
    rebinding = new = 0
    for row in range(len(table)):
        if table.cltt[row] < since or table.state[row] != active:
            continue
        key = _client_key(db, row)
        if key is None or load_balance_hash(key) not in buckets:
            continue
        if baseline.get(table.address_int(row)) == key:
            rebinding += 1
        else:
            new += 1
    return rebinding, new


def bound_before(
    history: Iterable[Lease], since: float, buckets: frozenset[int]
) -> dict[int, bytes]:
    """address → client key of the leases of ``buckets``' clients active before ``since``,
    from every record in file order (the last one before ``since`` counts): the baseline
    against which a later record is a rebinding."""
    baseline: dict[int, bytes] = {}
    for lease in history:
        if lease.cltt is None or lease.cltt >= since:
            continue
        address = address_to_int(lease.address)
        key = lease.uid or lease.hardware_address
        if lease.binding_state == BindingState.ACTIVE and key and load_balance_hash(key) in buckets:
            baseline[address] = key
        else:
            baseline.pop(address, None)
    return baseline


def _client_key(db: LeaseDB, row: int) -> bytes | None:
    # What dhcpd's load_balance_mine hashes: the client identifier, else chaddr.
    uid = db.leases.extras_at(row).uid
    return uid if uid else db.leases.hardware_at(row)


@dataclass(slots=True)
class UnansweredClients:
    """Follows one lease journal (incrementally) and counts the partner's clients served
    here since an interruption began (see the module docstring)."""

    path: str
    _db: LeaseDB | None = None
    _resume: ResumeState | None = None
    #: (since, buckets) → baseline, kept for the incident it was taken for.
    _baseline: tuple[float, frozenset[int], dict[int, bytes]] | None = field(default=None)

    def evidence(self, since: float, hba: bytes | None, local_is_primary: bool) -> Unanswered | str:
        """The counts, or one line saying why there are none."""
        if hba is None:
            return "the server reports no hash bucket assignment (HBA) yet"
        try:
            self._db, self._resume = read_leases_incremental(self.path, self._resume, self._db)
        except DhcpfoctlError as exc:
            return str(exc)
        buckets = partner_buckets(hba, local_is_primary)
        if self._baseline is None or self._baseline[:2] != (since, buckets):
            # Once per incident, every record of the file: who held what before ``since``
            # (the current table has already lost a lease renewed since). A file dhcpd
            # rewrote meanwhile has lost that history too: its renewals then count as new.
            try:
                _, history = read_lease_history(self.path)
            except DhcpfoctlError as exc:
                return str(exc)
            self._baseline = (since, buckets, bound_before(history, since, buckets))
        rebinding, new = count_unanswered(self._db, since, buckets, self._baseline[2])
        return Unanswered(rebinding, new, since, self.path)
