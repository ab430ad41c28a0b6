"""The DHCP server's lease engine, sans-IO: a DHCP message and ``now`` in, the reply out.

:class:`LeaseEngine` is the part of dhcpd 4.4 that answers clients (``server/dhcp.c``:
``dhcpdiscover``, ``dhcprequest``, ``dhcprelease``, ``dhcpdecline``, ``dhcpinform``,
``find_lease``, ``allocate_lease``, ``ack_lease``) and moves leases in time
(``server/mdb.c``: ``pool_timer``, ``release_lease``, ``abandon_lease``), on the one lease
model shared with the failover endpoints. Who may answer and which lease is whose follow
``server/failover.c`` (``dhcp_failover_set_service_state``, ``load_balance_mine``,
``lease_mine_to_reallocate``), reused from :mod:`dhcpfoctl.failover.bindings` and
:mod:`dhcpfoctl.failover.wire`; see docs/failover-protocol.md §8.1, §8.6 and §9.

A lease of a failover pool changes only through ``FailoverEndpoint.update_lease`` (which
stores it and sends the BNDUPD); a lease of another pool is stored here and handed out by
:meth:`LeaseEngine.next_changes` for the journal. An OFFER changes the lease in memory only,
as dhcpd's ``supersede_lease`` without commit does: it is neither journaled nor sent.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from dhcpfoctl.conf.model import Config, Parameters, Pool, SubnetConfig
from dhcpfoctl.failover.bindings import (
    granted_lease_time,
    may_allocate,
    never_used,
    own_free_state,
)
from dhcpfoctl.failover.connection import FailoverEndpoint
from dhcpfoctl.failover.wire import load_balance_hash, primary_serves
from dhcpfoctl.lab.dhcp import (
    BOOTREQUEST,
    MessageType,
    Option,
    Packet,
    encode_address,
    encode_u32,
    reply,
)
from dhcpfoctl.model import (
    NEVER,
    BindingState,
    FailoverState,
    HardwareType,
    Lease,
    LeaseDB,
    LeaseExtras,
    LeaseFlag,
    LeaseTable,
    Role,
    address_to_int,
    int_to_address,
)

__all__ = ["LeaseEngine", "Service", "service_state"]

B = BindingState
S = FailoverState

#: An offered lease is held for the client this long (dhcpdiscover: ``cur_time + 120``).
OFFER_HOLD: Final = 120
#: dhcpd's ``abandon-lease-time`` default: an abandoned lease returns to FREE after it.
ABANDON_LEASE_TIME: Final = 86400
#: The engine rereads every lease at least this often, so that leases the partner changed
#: (an ACTIVE lease granted by the secondary, which the primary expires) are timed too.
RESCAN_INTERVAL: Final = 5.0
#: db_printable's limit: a longer client hostname is not logged.
MAX_LOGGED_HOSTNAME: Final = 64
_UNPRINTABLE: Final = "Hostname Unsuitable for Printing"
_RETURNING: Final = frozenset({B.EXPIRED, B.RELEASED, B.RESET})
_FREE_STATES: Final = frozenset({B.FREE, B.BACKUP})
#: States that never change by time alone (their rows are skipped by the timer's scan).
_UNTIMED: Final = frozenset({0, B.FREE, B.BACKUP})
_FREE: Final = int(B.FREE)
_RESERVED: Final = int(LeaseFlag.RESERVED)
#: Most addresses whose subnet the engine remembers (giaddrs, requested addresses).
_SUBNET_MEMO: Final = 4096
#: A pool's queues are rebuilt when outdated entries may outnumber its addresses this much.
_QUEUE_SLACK: Final = 2


class Service(enum.Enum):
    """dhcpd's service state of a failover relationship (what its pools may do)."""

    COOPERATING = "cooperating"
    NOT_COOPERATING = "not cooperating"
    PARTNER_DOWN = "partner down"
    NOT_RESPONDING = "not responding"
    STARTUP = "startup"


#: dhcp_failover_set_service_state: own state → (service, the reason logged when silent).
_SERVICE: Final[dict[FailoverState, tuple[Service, str]]] = {
    S.UNKNOWN_STATE: (Service.NOT_RESPONDING, " (my state unknown)"),
    S.PARTNER_DOWN: (Service.PARTNER_DOWN, ""),
    S.NORMAL: (Service.COOPERATING, ""),
    S.COMMUNICATIONS_INTERRUPTED: (Service.NOT_COOPERATING, ""),
    S.RESOLUTION_INTERRUPTED: (Service.NOT_RESPONDING, " (resolving conflicts)"),
    S.POTENTIAL_CONFLICT: (Service.NOT_RESPONDING, " (resolving conflicts)"),
    S.CONFLICT_DONE: (Service.NOT_RESPONDING, " (resolving conflicts)"),
    S.RECOVER: (Service.NOT_RESPONDING, " (recovering)"),
    S.SHUTDOWN: (Service.NOT_RESPONDING, " (shut down)"),
    S.PAUSED: (Service.NOT_RESPONDING, " (paused)"),
    S.RECOVER_WAIT: (Service.NOT_RESPONDING, " (recover wait)"),
    S.RECOVER_DONE: (Service.NOT_RESPONDING, " (recover done)"),
    S.STARTUP: (Service.STARTUP, " (startup)"),
}
#: Partner states that silence a server whatever its own state says.
_PEER_DEMANDS: Final[dict[FailoverState, str]] = {
    S.PARTNER_DOWN: " (peer demands: recovering)",
    S.POTENTIAL_CONFLICT: " (peer demands: resolving conflicts)",
    S.CONFLICT_DONE: " (peer demands: resolving conflicts)",
    S.RESOLUTION_INTERRUPTED: " (peer demands: resolving conflicts)",
}


def service_state(endpoint: FailoverEndpoint) -> tuple[Service, str]:
    """(service state, not-responding reason) of a relationship, as dhcpd derives them."""
    service, reason = _SERVICE.get(endpoint.state, (Service.NOT_RESPONDING, " (my state unknown)"))
    if service is not Service.NOT_RESPONDING and endpoint.machine.partner in _PEER_DEMANDS:
        return Service.NOT_RESPONDING, _PEER_DEMANDS[endpoint.machine.partner]
    return service, reason


def _silent(service: Service) -> bool:
    return service in (Service.NOT_RESPONDING, Service.STARTUP)


@dataclass(frozen=True, slots=True)
class _PoolView:
    """A pool as the engine uses it: its ranges as integers and its relationship."""

    pool: Pool
    endpoint: FailoverEndpoint | None
    ranges: tuple[tuple[int, int], ...]

    def holds(self, address: int) -> bool:
        return any(first <= address <= last for first, last in self.ranges)


class _FreeQueues:
    """The head of each queue of one pool (dhcpd's free, backup, abandoned … lists): per
    binding state, the (ends, address) of the unreserved lease with the oldest ``ends``,
    an address without a record counting as a FREE lease ending at 0; a tie goes to the
    address met first in the pool's ranges.

    Kept as one heap per state of (ends, place in the ranges, address), fed by the lease
    table's :meth:`~LeaseTable.watch` with every change. An entry that no longer describes
    its address is dropped when it reaches the top; the heaps are rebuilt from a scan of
    the pool when such entries may have piled up, and after a bulk load.
    """

    __slots__ = ("_heaps", "_pushes", "_ranges", "_size", "_table")

    def __init__(self, table: LeaseTable, ranges: tuple[tuple[int, int], ...]) -> None:
        self._table = table
        self._ranges = ranges
        self._size = sum(last - first + 1 for first, last in ranges)
        self._heaps: dict[int, list[tuple[int, int, int]]] | None = None
        self._pushes = 0

    def changed(self, address: int | None) -> None:
        """The table changed ``address`` (None: anything)."""
        if self._heaps is None:
            return
        if address is None:
            self._heaps = None
            return
        place = 0
        for first, last in self._ranges:
            if first <= address <= last:
                current = self._current(address)
                if current is not None:
                    state, end = current
                    entry = (end, place + address - first, address)
                    heapq.heappush(self._heaps.setdefault(state, []), entry)
                    self._pushes += 1
                return
            place += last - first + 1

    def heads(self) -> dict[int, tuple[int, int]]:
        """Binding state → (ends, address) of its queue's head, for non-empty queues."""
        heaps = self._heaps
        if heaps is None or self._pushes > _QUEUE_SLACK * self._size:
            heaps = self._heaps = self._build()
            self._pushes = 0
        heads: dict[int, tuple[int, int]] = {}
        for state, heap in heaps.items():
            while heap:
                end, _, address = heap[0]
                if self._current(address) == (state, end):
                    heads[state] = (end, address)
                    break
                heapq.heappop(heap)
        return heads

    def _current(self, address: int) -> tuple[int, int] | None:
        """(state, ends) of ``address`` as its queue files it; None: reserved (no queue)."""
        table = self._table
        row = table.block(address >> 8)[address & 0xFF]
        if row < 0:
            return _FREE, 0  # never used
        if table.flags[row] & _RESERVED:
            return None
        return table.state[row] or _FREE, table.ends[row]

    def _build(self) -> dict[int, list[tuple[int, int, int]]]:
        heaps: dict[int, list[tuple[int, int, int]]] = {}
        place = 0
        for first, last in self._ranges:
            for address in range(first, last + 1):
                current = self._current(address)
                if current is not None:
                    state, end = current
                    heaps.setdefault(state, []).append((end, place + address - first, address))
            place += last - first + 1
        for heap in heaps.values():
            heapq.heapify(heap)
        return heaps


@dataclass(frozen=True, slots=True)
class _Client:
    """Who sent a message, as dhcpd identifies and logs it."""

    htype: int
    chaddr: bytes
    uid: bytes | None
    hostname: str | None
    via: str

    @property
    def label(self) -> str:
        """print_hw_addr: the hardware address without its type, or the uid."""
        if self.htype:
            return self.chaddr.hex(":")
        return self.uid.hex(":") if self.uid else "<no identifier>"

    def owns(self, lease: Lease) -> bool:
        """The lease is identified to this client (find_lease's same-client test)."""
        if lease.uid is not None:
            return self.uid == lease.uid
        return lease.hardware_address == self.chaddr and int(lease.hardware_type or 0) == self.htype


def _printable_hostname(name: str | None) -> str | None:
    """dhcpd logs a client hostname only if short and printable ASCII (db_printable)."""
    if name is None:
        return None
    if len(name) <= MAX_LOGGED_HOSTNAME and all(" " <= c <= "~" for c in name):
        return name
    return _UNPRINTABLE


class LeaseEngine:
    """The lease engine of one server (see the module docstring).

    ``endpoints`` maps failover relationship names to their endpoints; a pool whose peer
    has no endpoint here is served as a pool without failover. ``server_address`` is the
    server's own address: the subnet of a message without giaddr, and the server
    identifier unless the config sets ``server-identifier``.
    """

    def __init__(
        self,
        config: Config,
        db: LeaseDB,
        endpoints: dict[str, FailoverEndpoint],
        *,
        server_address: str,
        now: float,
    ) -> None:
        self.config = config
        self.db = db
        self.endpoints = endpoints
        self.server_address = server_address
        self.views = [
            _PoolView(
                pool,
                endpoints.get(pool.failover_peer) if pool.failover_peer else None,
                tuple((r.first, r.last) for r in pool.ranges),
            )
            for pool in config.pools
        ]
        self._free_queues = [_FreeQueues(db.leases, view.ranges) for view in self.views]
        db.leases.watch(self._lease_changed)
        self._subnets: dict[str, SubnetConfig | None] = {}
        self._changes: list[Lease] = []
        self._log: list[str] = []
        self._deadline: float | None = None
        self._rescan_at = now
        self.handle_timer(now)

    # -- the sans-IO interface ---------------------------------------------------------
    def handle(self, packet: Packet, now: float) -> Packet | None:
        """Process one client message; the reply, or None where dhcpd stays silent."""
        if packet.op != BOOTREQUEST:
            return None  # a server's reply, looped back or spoofed
        kind = packet.message_type
        if kind is MessageType.DISCOVER:
            return self._discover(packet, now)
        if kind is MessageType.REQUEST:
            return self._request(packet, now)
        if kind is MessageType.RELEASE:
            self._release(packet, now)
        elif kind is MessageType.DECLINE:
            self._decline(packet, now)
        elif kind is MessageType.INFORM:
            return self._inform(packet)
        return None

    def next_deadline(self) -> float | None:
        if self._deadline is None:
            return self._rescan_at
        return min(self._deadline, self._rescan_at)

    def handle_timer(self, now: float) -> None:
        """Move every lease whose time has come (pool_timer), and plan the next move."""
        deadline: float | None = None
        states = self.db.leases.state
        for view in self.views:
            for _, row in self._rows(view):
                if row < 0 or states[row] in _UNTIMED:
                    continue
                lease = self.db.leases.lease_at(row)
                due = self._timed(view, lease)
                if due is None:
                    continue
                at, state = due
                if at <= now:
                    self._expire(view, lease, state, now)
                elif deadline is None or at < deadline:
                    deadline = at
        self._deadline = deadline
        self._rescan_at = now + RESCAN_INTERVAL

    def next_changes(self) -> list[Lease]:
        """Leases changed outside failover pools since the last call (for the journal)."""
        changes, self._changes = self._changes, []
        return changes

    def next_log(self) -> list[str]:
        """dhcpd-style log lines since the last call (client text already made safe)."""
        lines, self._log = self._log, []
        return lines

    # -- where things are --------------------------------------------------------------
    def _client(self, packet: Packet) -> _Client:
        via = packet.giaddr if packet.giaddr != "0.0.0.0" else self.server_address
        return _Client(packet.htype, packet.chaddr, packet.client_id, packet.hostname, via)

    def _subnet_of(self, address: str) -> SubnetConfig | None:
        """find_subnet: the configured subnet holding ``address``. Memoised: every request
        asks it of its giaddr, and parsing an address dominated the lookup."""
        try:
            return self._subnets[address]
        except KeyError:
            pass
        ip = ipaddress.IPv4Address(address)
        found = next((subnet for subnet in self.config.subnets if ip in subnet.network), None)
        if len(self._subnets) >= _SUBNET_MEMO:  # addresses come from packets: bounded
            self._subnets.clear()
        self._subnets[address] = found
        return found

    def _share_of(self, address: str) -> str | None:
        """The shared network of the subnet holding ``address`` (find_subnet)."""
        subnet = self._subnet_of(address)
        return None if subnet is None else subnet.shared_network

    def _packet_share(self, packet: Packet) -> str | None:
        """locate_network: the giaddr's subnet, else the server's own."""
        giaddr = packet.giaddr
        return self._share_of(giaddr if giaddr != "0.0.0.0" else self.server_address)

    def _subnet_parameters(self, address: str) -> Parameters:
        subnet = self._subnet_of(address)
        return self.config.parameters if subnet is None else subnet.parameters

    def _view_of(self, address: int) -> _PoolView | None:
        for view in self.views:
            if view.holds(address):
                return view
        return None

    def _lease(self, address: int) -> Lease:
        return self.db.leases.get(address) or never_used(int_to_address(address))

    def _mine(self, view: _PoolView, lease: Lease, now: float) -> bool:
        """lease_mine_to_reallocate (a pool without failover: any lease not ACTIVE)."""
        ep = view.endpoint
        if ep is None:
            return (lease.binding_state or B.FREE) is not B.ACTIVE
        return may_allocate(
            lease,
            role=ep.role,
            own_state=ep.state,
            partner_down_since=ep.machine.stos,
            mclt=ep.mclt,
            now=now,
        )

    def _reusable(self, view: _PoolView, lease: Lease, now: float) -> bool:
        """The lease is, or was last, this client's, or is ours to give to anyone."""
        return (
            lease.binding_state is B.ACTIVE
            or lease.rewind_binding_state is B.ACTIVE
            or self._mine(view, lease, now)
        )

    def _store(self, view: _PoolView, lease: Lease, now: float) -> None:
        """A committed change: through the failover endpoint, or straight to the journal."""
        if view.endpoint is not None:
            view.endpoint.update_lease(lease, now)
        else:
            self.db.leases.upsert(lease)
            self._changes.append(lease)
        due = self._timed(view, lease)
        if due is not None and (self._deadline is None or due[0] < self._deadline):
            self._deadline = due[0]

    # -- lease lookup (find_lease) -----------------------------------------------------
    def _client_leases(
        self, client: _Client, share: str, now: float
    ) -> tuple[Lease | None, Lease | None]:
        """(uid lease, hardware lease) of the client in ``share``, as find_lease picks them."""
        uid_best: Lease | None = None
        hw_best: Lease | None = None
        table = self.db.leases
        for view, row in self._client_rows(client, share):
            hardware = table.hardware_at(row)
            uid = table.extras_at(row).uid if client.uid is not None else None
            by_uid = uid is not None and uid == client.uid
            by_hw = hardware == client.chaddr
            if not (by_uid or by_hw):
                continue
            lease = table.lease_at(row)
            state = lease.binding_state or B.FREE
            if not self._reusable(view, lease, now):
                continue  # "not active or not mine to allocate"
            if by_uid:
                uid_best = _preferred(uid_best, lease)
            if by_hw and int(lease.hardware_type or 0) == client.htype:
                if state not in _FREE_STATES and lease.uid is not None and lease.uid != client.uid:
                    continue  # "wrong client identifier"
                hw_best = _preferred(hw_best, lease)
        return uid_best, hw_best

    def _client_rows(self, client: _Client, share: str) -> list[tuple[_PoolView, int]]:
        """(pool, table row) of the leases filed under the client's hardware address or
        client identifier in ``share``, in the order a scan of the pools' ranges meets them."""
        table = self.db.leases
        found: list[tuple[int, int, int, _PoolView, int]] = []
        for row in table.rows_of_client(client.chaddr, client.uid):
            address = table.address_int(row)
            for position, view in enumerate(self.views):
                if view.pool.shared_network != share:
                    continue
                for order, (first, last) in enumerate(view.ranges):
                    if first <= address <= last:
                        found.append((position, order, address, view, row))
        found.sort(key=lambda item: item[:3])
        return [(view, row) for *_, view, row in found]

    def _find_lease(
        self, packet: Packet, client: _Client, share: str, cip: str | None, now: float
    ) -> tuple[Lease | None, bool]:
        """find_lease: the client's lease in ``share`` and whether ``cip`` is ours (NAK)."""
        request = packet.message_type is MessageType.REQUEST
        uid_lease, hw_lease = self._client_leases(client, share, now)
        ours = False
        ip_lease: Lease | None = None
        if cip is not None:
            view = self._view_of(address_to_int(cip))
            if view is not None:
                ours = True
                ip_lease = self._lease(address_to_int(cip))
                if view.pool.shared_network != share:
                    ip_lease = None  # "requested address on bad subnet"
                elif (
                    not client.owns(ip_lease)
                    and (ip_lease.binding_state or B.FREE) not in _FREE_STATES
                ):
                    if ip_lease.binding_state is not B.ACTIVE:
                        ours = False  # the peer may have it: do not NAK
                    ip_lease = None
                elif (
                    (uid_lease or hw_lease)
                    and not request
                    and ip_lease.binding_state is not B.ACTIVE
                    and ip_lease.rewind_binding_state is not B.ACTIVE
                    and not self._mine(view, ip_lease, now)
                ):
                    ip_lease = None  # "ip lease not active or not ours to offer"
        if request and ip_lease is None:
            return None, ours
        lease = ip_lease or uid_lease
        if lease is None and hw_lease is not None and hw_lease.uid in (None, client.uid):
            lease = hw_lease
        if lease is not None and lease.binding_state is B.ABANDONED:
            if lease is ip_lease and request:
                self._log.append(f"Reclaiming REQUESTed abandoned IP address {lease.address}.")
            else:
                return None, True
        return lease, ours

    # -- allocation (allocate_lease) ---------------------------------------------------
    def _rows(self, view: _PoolView) -> Iterator[tuple[int, int]]:
        """(address, table row) of every address of a pool; row -1: no record yet."""
        block_of = self.db.leases.block
        for first, last in view.ranges:
            address = first
            while address <= last:
                stop = min(last, address | 0xFF)
                low = address & 0xFF
                rows = block_of(address >> 8)[low : low + stop - address + 1]
                yield from zip(range(address, stop + 1), rows, strict=True)
                address = stop + 1

    def _lease_changed(self, address: int | None) -> None:
        for queues in self._free_queues:
            queues.changed(address)

    def _queues(self, share: str) -> list[tuple[_PoolView, dict[int, tuple[int, int]]]]:
        return [
            (view, queues.heads())
            for view, queues in zip(self.views, self._free_queues, strict=True)
            if view.pool.shared_network == share
        ]

    def _head(self, heads: dict[int, tuple[int, int]], state: BindingState) -> Lease | None:
        head = heads.get(state)
        return None if head is None else self._lease(head[1])

    def _allocate(
        self, queues: list[tuple[_PoolView, dict[int, tuple[int, int]]]], now: float
    ) -> tuple[tuple[_PoolView, Lease] | None, bool]:
        """(pool and lease to offer a new client or None, whether the peer holds free ones)."""
        chosen: tuple[_PoolView, Lease] | None = None
        peer_has_leases = False
        for view, heads in queues:
            ep = view.endpoint
            if ep is not None:
                candidate = self._head(heads, own_free_state(ep.role))
                theirs = self._head(heads, own_free_state(ep.role.other))
                if theirs is not None:
                    if (
                        candidate is None or (candidate.ends or 0) > (theirs.ends or 0)
                    ) and self._mine(view, theirs, now):
                        candidate = theirs
                    else:
                        peer_has_leases = True
                abandoned = self._head(heads, B.ABANDONED)
                if candidate is None and abandoned is not None and self._mine(view, abandoned, now):
                    candidate = abandoned
            else:
                candidate = self._head(heads, B.FREE) or self._head(heads, B.ABANDONED)
            if candidate is None or (
                candidate.binding_state is not B.ABANDONED and (candidate.ends or 0) > now
            ):
                continue  # every free lease is on offer to someone
            if chosen is None or _better_candidate(candidate, chosen[1]):
                chosen = (view, candidate)
        if chosen is not None and chosen[1].binding_state is B.ABANDONED:
            self._log.append(f"Reclaiming abandoned lease {chosen[1].address}.")
        return chosen, peer_has_leases

    @staticmethod
    def _peer_has_leases(queues: list[tuple[_PoolView, dict[int, tuple[int, int]]]]) -> bool:
        """find_lease's quick check: a failover pool here where the peer holds free leases."""
        return any(
            view.endpoint is not None and own_free_state(view.endpoint.role.other) in heads
            for view, heads in queues
        )

    def _load_balance_mine(self, packet: Packet, ep: FailoverEndpoint) -> bool:
        """load_balance_mine: the hash bucket's owner answers, unless ``secs`` is high."""
        max_seconds = ep.peer.load_balance_max_seconds
        if max_seconds == 0 or max_seconds < packet.secs:
            return True
        if ep.hba is None:
            return False
        primary = primary_serves(ep.hba, load_balance_hash(packet.hash_key))
        return primary is (ep.role is Role.PRIMARY)

    # -- messages ----------------------------------------------------------------------
    def _discover(self, packet: Packet, now: float) -> Packet | None:
        client = self._client(packet)
        share = self._packet_share(packet)
        msg = f"DHCPDISCOVER from {client.label} via {client.via}"
        if share is None:
            self._log.append(f"Packet from unknown subnet: {packet.giaddr}")
            return None
        queues = self._queues(share)
        peer_has_leases = self._peer_has_leases(queues)
        cip = packet.ciaddr if packet.ciaddr != "0.0.0.0" else packet.requested_address
        lease, _ = self._find_lease(packet, client, share, cip, now)
        msg = self._with_hostname(msg, lease)
        view = self._view_of(address_to_int(lease.address)) if lease else None
        if lease is not None and view is not None and not self._reusable(view, lease, now):
            lease = None
        if lease is None or view is None:
            found, peer_free = self._allocate(queues, now)
            peer_has_leases = peer_has_leases or peer_free
            if found is None:
                if peer_has_leases:
                    self._log.append(f"{msg}: peer holds all free leases")
                else:
                    self._log.append(f"{msg}: network {share}: no free leases")
                return None
            view, lease = found
        ep = view.endpoint
        if ep is not None:
            service, reason = service_state(ep)
            if _silent(service):
                self._log.append(f"{msg}: not responding{reason}")
                return None
            if service is Service.COOPERATING and not self._load_balance_mine(packet, ep):
                if peer_has_leases:
                    self._log.append(f"{msg}: load balance to peer {ep.peer.name}")
                    return None
                self._log.append(
                    f"{msg}: cancel load balance to peer {ep.peer.name} - no free leases"
                )
        self._log.append(msg)
        when = max(int(now) + OFFER_HOLD, lease.ends or 0)
        return self._ack(packet, client, view, lease, MessageType.OFFER, now, when=when)

    def _request(self, packet: Packet, now: float) -> Packet | None:
        client = self._client(packet)
        requested = packet.requested_address
        cip = requested if requested is not None else packet.ciaddr
        cip_share = self._share_of(cip)
        lease: Lease | None = None
        ours = False
        if cip_share is not None:
            lease, ours = self._find_lease(packet, client, cip_share, cip, now)
        sid = packet.server_identifier
        msg = f"DHCPREQUEST for {cip}{f' ({sid})' if sid else ''} from {client.label}"
        msg = self._with_hostname(msg, lease) + f" via {client.via}"
        view = self._view_of(address_to_int(lease.address)) if lease else None
        if lease is not None and view is not None and view.endpoint is not None:
            ep = view.endpoint
            service, reason = service_state(ep)
            if _silent(service):
                self._log.append(f"{msg}: not responding{reason}")
                return None
            state = lease.binding_state or B.FREE
            mine = self._mine(view, lease, now)
            if state in _FREE_STATES and not mine:
                self._log.append(f"{msg}: lease owned by peer")
                return None
            if (
                state in (B.RELEASED, B.EXPIRED)
                and lease.rewind_binding_state is not B.ACTIVE
                and not mine
            ):
                kind = "released" if state is B.RELEASED else "expired"
                self._log.append(f"{msg}: lease in transition state {kind}")
                return None
            if state is B.RESET and not mine:
                self._log.append(f"{msg}: lease reset by administrator")
                return self._nak(packet, client, cip)
        share = self._packet_share(packet)
        relayed_renewal = packet.ciaddr != "0.0.0.0" and packet.giaddr != "0.0.0.0"
        selecting = requested is not None and packet.ciaddr == "0.0.0.0"
        if share is None or relayed_renewal or selecting:
            if share is None:
                if cip_share is not None and self._authoritative(cip):
                    self._log.append(f"{msg}: wrong network.")
                    return self._nak(packet, client, cip)
                why = "not authoritative" if cip_share is not None else "unknown subnet"
                self._log.append(f"{msg}: ignored ({why}).")
                return None
            if cip_share != share:
                if self._authoritative(
                    packet.giaddr if packet.giaddr != "0.0.0.0" else self.server_address
                ):
                    self._log.append(f"{msg}: wrong network.")
                    return self._nak(packet, client, cip)
                self._log.append(f"{msg}: ignored (not authoritative).")
                return None
        if lease is None and ours:
            self._log.append(f"{msg}: lease {cip} unavailable.")
            return self._nak(packet, client, cip)
        if lease is None or view is None:
            self._log.append(f"{msg}: unknown lease {cip}.")
            return None
        self._log.append(msg)
        return self._ack(packet, client, view, lease, MessageType.ACK, now)

    def _release(self, packet: Packet, now: float) -> None:
        client = self._client(packet)
        lease: Lease | None = None
        view = self._view_of(address_to_int(packet.ciaddr))
        if view is not None:
            lease = self._lease(address_to_int(packet.ciaddr))
            if (
                lease.hardware_address != client.chaddr
                or int(lease.hardware_type or 0) != client.htype
            ):
                lease = None  # the hardware address must match
        msg = f"DHCPRELEASE of {packet.ciaddr} from {client.label}"
        msg = self._with_hostname(msg, lease)
        msg += f" via {client.via} ({'' if lease else 'not '}found)"
        if lease is None or view is None:
            self._log.append(msg)
            return
        ep = view.endpoint
        if ep is not None:
            service, reason = service_state(ep)
            if _silent(service):
                self._log.append(f"{ep.peer.name}: ignored{reason}")
                return
        state = lease.binding_state or B.FREE
        if (lease.ends or 0) > now and state not in _FREE_STATES | _RETURNING:
            # release_lease: ends and tstp now; RELEASED waits for the partner's ack.
            if ep is None:
                new_state = B.FREE
            elif service_state(ep)[
                0
            ] is Service.NOT_COOPERATING and lease.rewind_binding_state is own_free_state(ep.role):
                new_state = own_free_state(ep.role)
            else:
                new_state = B.RELEASED
            released = dataclasses.replace(
                lease, binding_state=new_state, ends=int(now), tstp=int(now)
            )
            self._store(view, released, now)
        self._log.append(msg)

    def _decline(self, packet: Packet, now: float) -> None:
        client = self._client(packet)
        cip = packet.requested_address
        if cip is None:
            return  # DHCPDECLINE must name the address
        view = self._view_of(address_to_int(cip))
        lease = self._lease(address_to_int(cip)) if view is not None else None
        msg = self._with_hostname(f"DHCPDECLINE of {cip} from {client.label}", lease)
        msg += f" via {client.via}"
        if lease is None or view is None:
            self._log.append(f"{msg}: not found")
            return
        ep = view.endpoint
        if ep is not None:
            service, reason = service_state(ep)
            if _silent(service):
                self._log.append(f"{ep.peer.name}: ignored{reason}")
                return
        # abandon_lease: no client, ends after abandon-lease-time.
        abandoned = dataclasses.replace(
            lease,
            binding_state=B.ABANDONED,
            ends=int(now) + ABANDON_LEASE_TIME,
            hardware_type=None,
            hardware_address=None,
            extras=LeaseExtras(),
        )
        self._log.append(f"Abandoning IP address {cip}: declined.")
        self._store(view, abandoned, now)
        self._log.append(f"{msg}: abandoned")

    def _inform(self, packet: Packet) -> Packet | None:
        client = self._client(packet)
        cip = packet.ciaddr
        self._log.append(f"DHCPINFORM from {cip} via {client.via}")
        if cip == "0.0.0.0" or self._share_of(cip) is None:
            self._log.append(
                f"DHCPINFORM from {cip} via {client.via}: unknown subnet for client address {cip}"
            )
            return None
        options = self._options(self._subnet_parameters(cip), cip)
        self._log.append(f"DHCPACK to {cip} ({client.label}) via {client.via}")
        return reply(packet, MessageType.ACK, options=options)

    # -- replies (ack_lease, nak_lease) ------------------------------------------------
    def _ack(
        self,
        packet: Packet,
        client: _Client,
        view: _PoolView,
        lease: Lease,
        kind: MessageType,
        now: float,
        *,
        when: int | None = None,
    ) -> Packet:
        """ack_lease for an OFFER (held ``when``) or an ACK (committed)."""
        default, maximum, minimum = view.pool.parameters.lease_times()
        wanted = packet.lease_time
        lease_time = default if wanted is None else wanted
        lease_time = min(lease_time, maximum)
        if lease_time < minimum:
            lease_time = minimum or default
        start = int(now)
        granted = lease_time
        tstp, tsfp = lease.tstp, lease.tsfp
        ep = view.endpoint
        if ep is not None:
            granted = granted_lease_time(lease_time, tsfp=tsfp, mclt=ep.mclt, now=start)
            if kind is MessageType.ACK:
                # The partner may extend the lease to tstp: desired time plus half the grant.
                tstp = min(start + lease_time + granted // 2, NEVER - 1)
                if tsfp is not None and tstp < tsfp:
                    tsfp = tstp
        ends = start + granted if when is None else when
        same_client = client.owns(lease)
        extras = lease.extras if same_client else LeaseExtras()
        extras = dataclasses.replace(extras, uid=client.uid, client_hostname=client.hostname)
        updated = dataclasses.replace(
            lease,
            binding_state=B.ACTIVE if kind is MessageType.ACK else lease.binding_state,
            starts=start,
            ends=ends,
            tstp=tstp,
            tsfp=tsfp,
            cltt=start,
            hardware_type=HardwareType(client.htype),
            hardware_address=client.chaddr,
            extras=extras,
        )
        if kind is MessageType.ACK:
            self._store(view, updated, now)
        else:
            self.db.leases.upsert(updated)  # a soft promise: not journaled, not sent
        name = _printable_hostname(client.hostname or lease.client_hostname)
        shown = f"({name}) " if name else ""
        self._log.append(
            f"DHCP{kind.name} on {lease.address} to {client.label} {shown}via {client.via}"
        )
        options = {
            Option.SERVER_IDENTIFIER.value: encode_address(
                self._server_identifier(view.pool.parameters)
            ),
            Option.LEASE_TIME.value: encode_u32(granted),
            Option.RENEWAL_TIME.value: encode_u32(granted // 2),
            Option.REBINDING_TIME.value: encode_u32(granted * 7 // 8),
        }
        options.update(self._options(view.pool.parameters, lease.address))
        return reply(packet, kind, yiaddr=lease.address, options=options)

    def _nak(self, packet: Packet, client: _Client, cip: str) -> Packet:
        """nak_lease: a DHCPNAK with our server identifier."""
        self._log.append(f"DHCPNAK on {cip} to {client.label} via {client.via}")
        params = self._subnet_parameters(cip)
        options = {
            Option.SERVER_IDENTIFIER.value: encode_address(self._server_identifier(params)),
            Option.MESSAGE.value: b"requested address not available",
        }
        return reply(packet, MessageType.NAK, options=options)

    def _server_identifier(self, params: Parameters) -> str:
        return str(params.value("server-identifier", self.server_address))

    def _authoritative(self, address: str) -> bool:
        return bool(self._subnet_parameters(address).value("authoritative", False))

    def _options(self, params: Parameters, address: str) -> dict[int, bytes]:
        """The configured options, innermost scope first; the subnet mask as dhcpd adds it."""
        options: dict[int, bytes] = {}
        mask = params.value("option subnet-mask")
        if mask is None and (subnet := self._subnet_of(address)) is not None:
            mask = str(subnet.network.netmask)
        if mask is not None:
            options[Option.SUBNET_MASK.value] = encode_address(str(mask))
        for name, code in (
            ("option routers", Option.ROUTERS),
            ("option domain-name-servers", Option.DOMAIN_NAME_SERVERS),
        ):
            value = params.value(name)
            if isinstance(value, tuple):
                options[code.value] = b"".join(encode_address(a) for a in value)
        domain = params.value("option domain-name")
        if isinstance(domain, str):
            options[Option.DOMAIN_NAME.value] = domain.encode("utf-8", "surrogateescape")
        return options

    @staticmethod
    def _with_hostname(msg: str, lease: Lease | None) -> str:
        """dhcpd's ``from MAC (hostname)``: the hostname the lease already records."""
        name = _printable_hostname(lease.client_hostname if lease else None)
        return f"{msg} ({name})" if name else msg

    # -- time (pool_timer) -------------------------------------------------------------
    def _timed(self, view: _PoolView, lease: Lease) -> tuple[float, BindingState] | None:
        """When ``lease`` changes by itself, and into what (None: it waits for an event)."""
        state = lease.binding_state or B.FREE
        ep = view.endpoint
        if state is B.ACTIVE:
            if lease.ends is None or lease.ends >= NEVER:
                return None
            if ep is None:
                return float(lease.ends), B.FREE
            if ep.role is Role.SECONDARY and ep.state is S.NORMAL:
                return None  # the primary drives expiry
            rewind = lease.rewind_binding_state
            if service_state(ep)[0] is Service.NOT_COOPERATING and rewind is own_free_state(
                ep.role
            ):
                return float(lease.ends), rewind
            return float(lease.ends), B.EXPIRED
        if state in _RETURNING:
            if ep is None:
                return 0.0, B.FREE
            if ep.state is not S.PARTNER_DOWN:
                return None  # FREE only through the partner's ack
            return float(max(lease.tsfp or 0, lease.ends or 0)), B.FREE
        if state is B.ABANDONED and lease.ends is not None and lease.ends < NEVER:
            return float(lease.ends), B.FREE
        return None

    def _expire(self, view: _PoolView, lease: Lease, state: BindingState, now: float) -> None:
        changed = dataclasses.replace(lease, binding_state=state)
        if state is B.EXPIRED:
            changed = dataclasses.replace(changed, tstp=lease.ends)
        elif lease.binding_state is B.ABANDONED:
            changed = dataclasses.replace(changed, ends=int(now))
        self._store(view, changed, now)


def _preferred(best: Lease | None, lease: Lease) -> Lease:
    """Of two leases of one client, the one dhcpd's uid/hw chains put first: ACTIVE, then
    the latest client transaction."""
    if best is None:
        return lease
    rank = (lease.binding_state is B.ACTIVE, lease.cltt or 0)
    return lease if rank > (best.binding_state is B.ACTIVE, best.cltt or 0) else best


def _better_candidate(candidate: Lease, chosen: Lease) -> bool:
    """allocate_lease's tiers across pools: free before abandoned, unused before used,
    then the oldest ``ends``."""
    if chosen.binding_state is B.ABANDONED:
        return candidate.binding_state is not B.ABANDONED or (candidate.ends or 0) < (
            chosen.ends or 0
        )
    if candidate.binding_state is B.ABANDONED:
        return False
    chosen_used = chosen.uid is not None or chosen.hardware_address is not None
    candidate_used = candidate.uid is not None or candidate.hardware_address is not None
    if chosen_used:
        return not candidate_used or (candidate.ends or 0) < (chosen.ends or 0)
    if candidate_used:
        return False
    return (candidate.ends or 0) < (chosen.ends or 0)
