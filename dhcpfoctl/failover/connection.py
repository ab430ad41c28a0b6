"""One failover relationship, sans-IO: bytes and ``now`` in; events, bytes and a deadline out.

In the style of h11 and aioquic, :class:`FailoverEndpoint` owns no socket and reads no
clock. Its driver (:mod:`dhcpfoctl.failover.driver`, or a test) tells it::

    endpoint.connection_made(now)         # a TCP link to the partner exists
    endpoint.receive_data(data, now)      # bytes arrived
    endpoint.connection_lost(now)         # the link is gone
    endpoint.handle_timer(now)            # when now >= endpoint.next_deadline()

and after each call sends ``endpoint.data_to_send()``, closes the socket when
``endpoint.close_requested`` is set, and reads ``endpoint.next_events()``. Operations of
the server itself (:meth:`~FailoverEndpoint.update_lease`,
:meth:`~FailoverEndpoint.request_pool_balance`, :meth:`~FailoverEndpoint.set_state`) queue
messages the same way.

What it implements (docs/failover-protocol.md; dhcpd 4.4.3 ``server/failover.c``): the
handshake checks in dhcpd's order with its reject reasons (§5), xids (§2), the 15 s link
start-up timeout, CONTACT every partner-receive-timer ÷ 3 seconds and the inactivity
timeout of our max-response-delay (§6), BNDUPD/BNDACK with the partner's unacked window and
dueling updates (§7.1-7.3), UPDREQ/UPDREQALL/UPDDONE (§7.4), POOLREQ/POOLRESP and the pool
balance run (§7.5, docs/pool-balance.md), and the state machine of
:mod:`dhcpfoctl.failover.states`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from dhcpfoctl import __version__
from dhcpfoctl.balance import BalanceView, compute_balance
from dhcpfoctl.conf.model import Config, FailoverPeerConfig, Pool
from dhcpfoctl.failover import wire
from dhcpfoctl.failover.bindings import (
    Refusal,
    apply_update,
    is_better_than_incoming,
    never_used,
    own_free_state,
    update_options,
)
from dhcpfoctl.failover.states import (
    OPERATOR_TRIGGERS,
    Action,
    StateMachine,
    Transition,
    Trigger,
)
from dhcpfoctl.failover.wire import Message, MessageType, OptionCode, RejectReason, ServerFlag
from dhcpfoctl.model import (
    BindingState,
    FailoverPeerRecord,
    FailoverState,
    Lease,
    LeaseDB,
    Role,
    address_to_int,
)

M = MessageType
O = OptionCode  # noqa: E741 -- short alias for the option codes in message builders
B = BindingState

#: dhcpd's link start-up timeout: CONNECT/CONNECTACK must complete within it (§1).
LINK_STARTUP_TIMEOUT: Final = 15.0
#: dhcpd's start-up phase: the partner's first STATE must come within it (§8.2).
STARTUP_PHASE: Final = 15.0
#: Largest |partner clock - ours| accepted in CONNECT/CONNECTACK (§2).
MAX_CLOCK_SKEW: Final = 60
#: Reconnect after an established link dropped / after a failed attempt (§1).
RECONNECT_AFTER_DROP: Final = 5.0
RECONNECT_AFTER_FAILURE: Final = 90.0
PROTOCOL_VERSION: Final = 1
VENDOR_CLASS: Final = f"dhcpfoctl-{__version__}".encode()
_RETURNING: Final = frozenset({B.EXPIRED, B.RELEASED, B.RESET})


# -- events ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LinkUp:
    """The handshake completed: the partner's parameters as it announced them."""

    partner_max_unacked: int
    partner_receive_timer: int
    mclt: int
    vendor_class: bytes


@dataclass(frozen=True, slots=True)
class LinkDown:
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectRefused:
    """A CONNECT/CONNECTACK was refused; ``by_us`` tells which side refused."""

    reason: RejectReason
    message: str
    by_us: bool


@dataclass(frozen=True, slots=True)
class StateChanged:
    transition: Transition


@dataclass(frozen=True, slots=True)
class PartnerStateChanged:
    state: FailoverState
    startup: bool


@dataclass(frozen=True, slots=True)
class LeaseUpdated:
    """The lease table changed; ``by_partner`` is set for an accepted BNDUPD."""

    lease: Lease
    by_partner: bool


@dataclass(frozen=True, slots=True)
class UpdateAcked:
    """The partner acknowledged our update: ``lease`` as it stands now (tsfp/atsfp set, an
    expired or released lease freed), for a server to persist as dhcpd writes it then."""

    address: str
    lease: Lease


@dataclass(frozen=True, slots=True)
class LeaseRetimed:
    """A lease's times changed with no update to the partner (tsfp = STOS + MCLT on entering
    partner-down): a server persists it, or a restart would reuse the lease too early."""

    lease: Lease


@dataclass(frozen=True, slots=True)
class UpdateRefused:
    """A BNDUPD was refused; ``by_us``: we refused the partner's, else it refused ours."""

    address: str
    reason: RejectReason
    message: str
    by_us: bool


@dataclass(frozen=True, slots=True)
class UpdatesDone:
    """The partner answered our UPDREQ/UPDREQALL completely (UPDDONE)."""


@dataclass(frozen=True, slots=True)
class PoolResponse:
    """The partner answered our POOLREQ: it queued ``count`` leases for us."""

    count: int


@dataclass(frozen=True, slots=True)
class PoolBalanced:
    """A balance run of ours moved ``moved`` leases to the partner (``poolreq``: asked)."""

    pool: str
    moved: int
    poolreq: bool


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    message: str


Event = (
    LinkUp
    | LinkDown
    | ConnectRefused
    | StateChanged
    | PartnerStateChanged
    | LeaseUpdated
    | LeaseRetimed
    | UpdateAcked
    | UpdateRefused
    | UpdatesDone
    | PoolResponse
    | PoolBalanced
    | ProtocolViolation
)


@dataclass(frozen=True, slots=True)
class _Outstanding:
    """A BNDUPD of ours waiting for its BNDACK."""

    xid: int
    state: BindingState
    cltt: int | None


class FailoverEndpoint:
    """Our side of one failover relationship (see the module docstring)."""

    def __init__(
        self,
        peer: FailoverPeerConfig,
        pools: list[Pool],
        db: LeaseDB,
        now: float,
        *,
        host: str = "failover peer",
    ) -> None:
        self.peer = peer
        self.role = Role(peer.role)
        self.host = host
        self.pools = [pool for pool in pools if pool.failover_peer == peer.name]
        self.db = db
        record = db.failover.get(peer.name)
        self.mclt = peer.mclt or (record.mclt if record else None) or 0
        self.hba: bytes | None = self._configured_hba()
        self.machine = StateMachine(
            role=self.role,
            mclt=self.mclt,
            own=record.my_state if record else FailoverState.RECOVER,
            stos=float(record.my_stos or now) if record else now,
            partner=record.partner_state if record else FailoverState.UNKNOWN_STATE,
            partner_stos=float(record.partner_stos or 0) if record else 0.0,
            auto_partner_down=peer.auto_partner_down,
        )
        self.machine.start(now)
        self.startup_deadline: float | None = now + STARTUP_PHASE
        self._events: list[Event] = []
        self._history_seen = 0
        #: Messages sent and received, by type, over every link (for status and tests).
        self.sent: Counter[MessageType] = Counter()
        self.received: Counter[MessageType] = Counter()
        self._outgoing = bytearray()
        self._new_link_state()
        self.linked = False
        self.reconnect_at: float | None = now
        self.last_balance: float | None = None
        self.balance_at: float | None = None
        self._persist_state()

    # -- link life cycle ---------------------------------------------------------------
    def _new_link_state(self) -> None:
        self._frames = wire.FrameBuffer()
        self._xid = 0
        self.tcp_up = False
        self.close_requested: str | None = None
        self.partner_max_unacked = 1
        self.partner_receive_timer = 0
        self._link_deadline: float | None = None
        self._contact_deadline: float | None = None
        self._inactivity_deadline: float | None = None
        self._update_queue: dict[str, None] = {}
        self._outstanding: dict[str, _Outstanding] = {}
        self._update_request_xid: int | None = None
        self._partner_vendor = b""

    def connection_made(self, now: float) -> None:
        """A TCP link to the partner exists (accepted or connected by us)."""
        self._new_link_state()
        self.tcp_up = True
        self.reconnect_at = None
        self._link_deadline = now + LINK_STARTUP_TIMEOUT
        if self.role is Role.PRIMARY:  # the primary always speaks first (§1)
            self._send_connect(now)

    def connection_lost(self, now: float, reason: str = "connection closed") -> None:
        """The TCP link is gone (closed, reset, or closed by us on request)."""
        if not self.tcp_up:
            return
        was_linked = self.linked
        self.tcp_up = False
        self.linked = False
        self._requeue_unacked()
        self._link_deadline = self._contact_deadline = self._inactivity_deadline = None
        self._emit(LinkDown(reason))
        if was_linked:
            self._run(self.machine.fire(Trigger.LINK_DOWN, now), now)
        self.reconnect_at = now + RECONNECT_AFTER_DROP
        self._outgoing.clear()

    def connect_failed(self, now: float) -> None:
        """An outgoing connect attempt failed; dhcpd retries in 90 s."""
        self.reconnect_at = now + RECONNECT_AFTER_FAILURE

    def wants_connect(self, now: float) -> bool:
        return not self.tcp_up and self.reconnect_at is not None and now >= self.reconnect_at

    # -- the sans-IO interface ---------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        if not self.tcp_up or self.close_requested:
            return
        try:
            messages = self._frames.feed(data)
        except wire.WireError as exc:
            self._violation(f"{self.host}: {exc.message}")
            return
        for message in messages:
            if self.close_requested:
                break
            self._receive(message, now)

    def data_to_send(self) -> bytes:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def next_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        candidates = [
            self._link_deadline,
            self._contact_deadline,
            self._inactivity_deadline,
            self.startup_deadline,
            self.machine.next_deadline(),
            self.balance_at,
            self.reconnect_at if not self.tcp_up else None,
        ]
        present = [c for c in candidates if c is not None]
        return min(present) if present else None

    def handle_timer(self, now: float) -> None:
        if self.startup_deadline is not None and now >= self.startup_deadline:
            self.startup_deadline = None
            if self.machine.in_startup:
                self._run(self.machine.fire(Trigger.LINK_DOWN, now), now)
        if self._link_deadline is not None and now >= self._link_deadline:
            self._request_close("link startup timeout")
        if self._inactivity_deadline is not None and now >= self._inactivity_deadline:
            self._request_close(f"timeout waiting for failover peer {self.peer.name}")
        if self._contact_deadline is not None and now >= self._contact_deadline:
            self._send(self._message(M.CONTACT, now), now)
        self._run(self.machine.handle_timer(now), now)
        if self.balance_at is not None and now >= self.balance_at:
            self.balance_at = None
            self._balance(now, timer=True)

    # -- operations of the server ------------------------------------------------------
    def set_state(self, state: FailoverState, now: float) -> None:
        """An operator's state change (OMAPI ``local-state``) to any defined state.

        dhcpd moves without validation (dhcp_failover_set_state); an undefined value, which
        crashes dhcpd, raises ``ValueError`` here.
        """
        trigger = OPERATOR_TRIGGERS.get(state)
        if trigger is None:
            raise ValueError(f"undefined failover state {int(state)}")
        self._run(self.machine.fire(trigger, now), now)
        # Entering (or re-entering) startup starts dhcpd's 15 s wait for the partner.
        self.startup_deadline = now + STARTUP_PHASE if self.machine.in_startup else None

    def update_lease(self, lease: Lease, now: float) -> None:
        """Store a lease changed by this server and send it to the partner (BNDUPD)."""
        self.db.leases.upsert(lease)
        self._emit(LeaseUpdated(lease, by_partner=False))
        self._queue_update(lease.address)
        self._flush_updates(now)

    def request_pool_balance(self, now: float) -> None:
        """Send POOLREQ (as dhcpd's timer run does when this server is short)."""
        if self.linked:
            self._send(self._message(M.POOLREQ, now), now)

    def lease(self, address: str) -> Lease:
        return self.db.leases.get(address) or never_used(address)

    def addresses(self) -> Iterator[str]:
        """Every address of this relationship's pools, in pool and range order."""
        for pool in self.pools:
            yield from pool.addresses()

    def in_pool(self, address: str) -> bool:
        value = address_to_int(address)
        return any(r.first <= value <= r.last for pool in self.pools for r in pool.ranges)

    @property
    def state(self) -> FailoverState:
        return self.machine.own

    @property
    def unacked(self) -> int:
        return len(self._outstanding)

    @property
    def queued(self) -> int:
        return len(self._update_queue)

    # -- receiving ---------------------------------------------------------------------
    def _receive(self, message: Message, now: float) -> None:
        self.received[message.type] += 1
        if self.linked:
            self._inactivity_deadline = now + self.peer.max_response_delay
        kind = message.type
        if kind is M.CONNECT:
            self._on_connect(message, now)
        elif kind is M.CONNECTACK:
            self._on_connectack(message, now)
        elif kind is M.DISCONNECT:
            reason = RejectReason(int(message.get(O.REJECT_REASON, 0) or 0))
            text = _text(message.get(O.MESSAGE))
            self._emit(ConnectRefused(reason, text or reason.description, by_us=False))
            self._request_close(f"partner disconnected: {text or reason.description}")
        elif not self.linked:
            self._violation(f"{kind.name} before the handshake completed")
        elif kind is M.STATE:
            self._on_state(message, now)
        elif kind is M.BNDUPD:
            self._on_bndupd(message, now)
        elif kind is M.BNDACK:
            self._on_bndack(message, now)
        elif kind in (M.UPDREQ, M.UPDREQALL):
            self._on_update_request(message, now)
        elif kind is M.UPDDONE:
            self._emit(UpdatesDone())
            self._run(self.machine.fire(Trigger.UPDDONE, now), now)
        elif kind is M.POOLREQ:
            self._balance(now, timer=False, answering=message.xid)
        elif kind is M.POOLRESP:
            self._emit(PoolResponse(int(message.get(O.ADDRESSES_TRANSFERRED, 0) or 0)))
        # CONTACT only re-arms the inactivity timer (done above).

    def _on_connect(self, message: Message, now: float) -> None:
        if self.role is Role.PRIMARY:
            self._violation("CONNECT received by the primary (two primaries configured?)")
            return
        name = message.get(O.RELATIONSHIP_NAME)
        ours = self.peer.name.encode()
        refusal: tuple[RejectReason, str] | None = None
        if not isinstance(name, bytes):
            refusal = (RejectReason.INVALID_PARTNER, "missing relationship-name")
        elif name != ours:
            refusal = (RejectReason.INVALID_PARTNER, "unknown failover relationship name")
        elif abs(int(message.time) - int(now)) > MAX_CLOCK_SKEW:
            refusal = (RejectReason.TIMEMISMATCH, "time offset too large")
        elif len(message.get(O.HBA) or b"") != wire.HBA_SIZE:
            refusal = (RejectReason.HBA_CONFLICT, "invalid HBA")
        elif self.linked:
            refusal = (RejectReason.DUPLICATE_CONNECTION, "already connected")
        elif O.MCLT not in message:
            refusal = (RejectReason.INVALID_MCLT, "no MCLT provided")
        values: dict[OptionCode, wire.OptionValue | None] = {
            O.RELATIONSHIP_NAME: name if refusal and isinstance(name, bytes) else ours,
            O.VENDOR_CLASS: VENDOR_CLASS,
            O.PROTOCOL_VERSION: PROTOCOL_VERSION,
            O.TLS_REPLY: 0 if O.TLS_REQUEST in message else None,
        }
        if refusal is None or refusal[1] != "unknown failover relationship name":
            values[O.MAX_UNACKED_BNDUPD] = self.peer.max_unacked_updates
            values[O.RECEIVE_TIMER] = self.peer.max_response_delay
        if refusal is not None:
            values[O.REJECT_REASON] = int(refusal[0])
            values[O.MESSAGE] = refusal[1].encode()
            self._send(self._message(M.CONNECTACK, now, values, xid=message.xid), now)
            self._emit(ConnectRefused(refusal[0], refusal[1], by_us=True))
            self._request_close(f"refused CONNECT: {refusal[1]}")
            return
        # The secondary adopts the primary's HBA and MCLT (dhcp_failover_link_... CONNECT).
        self.hba = bytes(message.get(O.HBA))  # type: ignore[arg-type]
        self._set_mclt(int(message.get(O.MCLT)))  # type: ignore[arg-type]
        self._partner_parameters(message)
        self._send(self._message(M.CONNECTACK, now, values, xid=message.xid), now)
        self._linked(message, now)

    def _on_connectack(self, message: Message, now: float) -> None:
        if self.role is Role.SECONDARY:
            self._violation("CONNECTACK received by the secondary (two secondaries?)")
            return
        self._link_deadline = None
        name = message.get(O.RELATIONSHIP_NAME)
        if not isinstance(name, bytes):
            self._disconnect(RejectReason.INVALID_PARTNER, "missing relationship name", now)
            return
        if O.REJECT_REASON in message:
            reason = RejectReason(int(message.get(O.REJECT_REASON)))  # type: ignore[arg-type]
            text = _text(message.get(O.MESSAGE)) or reason.description
            self._emit(ConnectRefused(reason, text, by_us=False))
            self._request_close(f"CONNECT rejected: {text}")
            return
        if name != self.peer.name.encode():
            shown = name.decode("ascii", "backslashreplace")
            self._disconnect(
                RejectReason.INVALID_PARTNER,
                f"remote failover relationship name {shown} does not match",
                now,
            )
            return
        if self.linked:
            self._disconnect(RejectReason.DUPLICATE_CONNECTION, "already connected", now)
            return
        if abs(int(message.time) - int(now)) > MAX_CLOCK_SKEW:
            self._disconnect(RejectReason.TIMEMISMATCH, "time offset too large", now)
            return
        self._partner_parameters(message)
        self._linked(message, now)

    def _partner_parameters(self, message: Message) -> None:
        self.partner_max_unacked = max(int(message.get(O.MAX_UNACKED_BNDUPD, 1) or 1), 1)
        self.partner_receive_timer = int(message.get(O.RECEIVE_TIMER, 0) or 0)
        self._partner_vendor = bytes(message.get(O.VENDOR_CLASS) or b"")  # type: ignore[arg-type]

    def _linked(self, message: Message, now: float) -> None:
        self.linked = True
        self._link_deadline = None
        self._inactivity_deadline = now + self.peer.max_response_delay
        self._emit(
            LinkUp(
                self.partner_max_unacked,
                self.partner_receive_timer,
                self.mclt,
                self._partner_vendor,
            )
        )
        self._send_state(now)

    def _on_state(self, message: Message, now: float) -> None:
        state = FailoverState(int(message.get(O.SERVER_STATE, 0) or 0))
        flags = ServerFlag(int(message.get(O.SERVER_FLAGS, 0) or 0))
        known = state in FailoverState.__members__.values()
        self._emit(PartnerStateChanged(state, bool(flags & ServerFlag.STARTUP)))
        if not known:
            # dhcpd moves itself to shutdown on a state value it does not know.
            self._violation(f"partner reported unknown state {int(state)}", close=False)
            if self.machine.in_startup:
                self.startup_deadline = None
            self._run(self.machine.fire(Trigger.PARTNER_STATE_INVALID, now), now)
            return
        was_startup = self.machine.in_startup
        actions = self.machine.partner_state(
            state, now, startup_flag=bool(flags & ServerFlag.STARTUP)
        )
        if was_startup and not self.machine.in_startup:
            self.startup_deadline = None
        self._run(actions, now)

    def _on_bndupd(self, message: Message, now: float) -> None:
        address = message.get(O.ASSIGNED_IP_ADDRESS)
        current = self.lease(address) if isinstance(address, str) else None
        outcome: Lease | Refusal
        if current is None:
            outcome = Refusal(
                RejectReason.MISSING_BINDINFO, "binding update lacks required options"
            )
        else:
            outcome = self._judge_update(current, message, now)
        if isinstance(outcome, Refusal):
            self._send_bndack(message, now, outcome)
            self._emit(UpdateRefused(str(address), outcome.reason, outcome.message, by_us=True))
            return
        self.db.leases.upsert(outcome)
        self._emit(LeaseUpdated(outcome, by_partner=True))
        self._send_bndack(message, now, None)
        self._flush_updates(now)  # a superseded update of ours may have opened the window

    def _judge_update(self, current: Lease, message: Message, now: float) -> Lease | Refusal:
        ours = self._outstanding.get(current.address)
        if ours is not None:
            if is_better_than_incoming(ours.state, ours.cltt, message, self.role):
                return Refusal(
                    RejectReason.LESS_CRIT_BIND_INFO,
                    "incoming update is less critical than outgoing update",
                )
            del self._outstanding[current.address]  # theirs wins: ignore our ack
        return apply_update(
            current,
            message,
            role=self.role,
            own_state=self.machine.own,
            now=int(now),
            in_pool=self.in_pool(current.address),
        )

    def _on_bndack(self, message: Message, now: float) -> None:
        address = message.get(O.ASSIGNED_IP_ADDRESS)
        ours = self._outstanding.get(str(address))
        if ours is None or ours.xid != message.xid:
            return  # a duplicate, or an update the partner's own update superseded
        del self._outstanding[str(address)]
        self._acknowledged(str(address), message)
        self._flush_updates(now)

    def _acknowledged(self, address: str, message: Message) -> None:
        if O.REJECT_REASON in message:
            reason = RejectReason(int(message.get(O.REJECT_REASON)))  # type: ignore[arg-type]
            text = _text(message.get(O.MESSAGE)) or reason.description
            self._emit(UpdateRefused(str(address), reason, text, by_us=False))
        else:
            lease = self.lease(str(address))
            # dhcpd sets tsfp/atsfp from its own tstp (the BNDACK carries no expiry).
            lease = dataclasses.replace(lease, tsfp=lease.tstp, atsfp=lease.tstp)
            if lease.binding_state in _RETURNING:
                free = B.BACKUP if lease.reserved and self.role is Role.SECONDARY else B.FREE
                lease = dataclasses.replace(lease, binding_state=free, rewind_binding_state=free)
            self.db.leases.upsert(lease)
            self._emit(UpdateAcked(str(address), lease))

    def _on_update_request(self, message: Message, now: float) -> None:
        # A new request replaces one still being answered (dhcpd: "still flying").
        self._update_request_xid = message.xid
        for address in self.addresses():
            if address in self._outstanding:
                # dhcp_failover_generate_update_queue skips leases already on the update or
                # ack queue (ON_QUEUE): one still waiting for its BNDACK is not sent again.
                continue
            lease = self.lease(address)
            if message.type is M.UPDREQALL or _unacknowledged(lease):
                self._queue_update(address)
        self._flush_updates(now)

    # -- sending -----------------------------------------------------------------------
    def _message(
        self,
        kind: MessageType,
        now: float,
        values: dict[OptionCode, wire.OptionValue | None] | None = None,
        *,
        xid: int | None = None,
    ) -> Message:
        if xid is None:
            xid = self._next_xid(skip_zero=kind is M.BNDUPD)
        present = {code: value for code, value in (values or {}).items() if value is not None}
        return wire.ordered(kind, xid, int(now) & 0xFFFF_FFFF, present)

    def _next_xid(self, *, skip_zero: bool) -> int:
        xid = self._xid
        if xid == 0 and skip_zero:
            xid = 1
        self._xid = (xid + 1) & 0xFFFF_FFFF
        return xid

    def _send(self, message: Message, now: float) -> None:
        self.sent[message.type] += 1
        self._outgoing += wire.encode(message)
        if self.linked and self.partner_receive_timer:
            self._contact_deadline = now + max(self.partner_receive_timer // 3, 1)

    def _send_connect(self, now: float) -> None:
        values: dict[OptionCode, wire.OptionValue | None] = {
            O.RELATIONSHIP_NAME: self.peer.name.encode(),
            O.MAX_UNACKED_BNDUPD: self.peer.max_unacked_updates,
            O.RECEIVE_TIMER: self.peer.max_response_delay,
            O.VENDOR_CLASS: VENDOR_CLASS,
            O.PROTOCOL_VERSION: PROTOCOL_VERSION,
            O.TLS_REQUEST: 0,
            O.MCLT: self.mclt,
            O.HBA: self.hba,
        }
        self._send(self._message(M.CONNECT, now, values), now)

    def _send_state(self, now: float) -> None:
        machine = self.machine
        machine.state_changed = False
        if not self.linked:
            return
        values: dict[OptionCode, wire.OptionValue | None] = {
            O.SERVER_STATE: int(machine.reported_state),
            O.SERVER_FLAGS: int(ServerFlag.STARTUP) if machine.in_startup else 0,
            O.START_TIME_OF_STATE: int(machine.stos) & 0xFFFF_FFFF,
        }
        self._send(self._message(M.STATE, now, values), now)

    def _send_bndack(self, update: Message, now: float, refusal: Refusal | None) -> None:
        values: dict[OptionCode, wire.OptionValue | None] = {
            O.ASSIGNED_IP_ADDRESS: update.get(O.ASSIGNED_IP_ADDRESS) or "0.0.0.0"
        }
        if refusal is not None:
            values[O.REJECT_REASON] = int(refusal.reason)
            values[O.MESSAGE] = refusal.message.encode()
        self._send(self._message(M.BNDACK, now, values, xid=update.xid), now)

    def _disconnect(self, reason: RejectReason, text: str, now: float) -> None:
        values: dict[OptionCode, wire.OptionValue | None] = {
            O.REJECT_REASON: int(reason),
            O.MESSAGE: text.encode(),
        }
        self._send(self._message(M.DISCONNECT, now, values), now)
        self._emit(ConnectRefused(reason, text, by_us=True))
        self._request_close(text)

    def _queue_update(self, address: str) -> None:
        self._update_queue[address] = None

    def _flush_updates(self, now: float) -> None:
        """Send queued BNDUPDs within the partner's unacked window; UPDDONE when done."""
        if not self.linked:
            return
        while self._update_queue and len(self._outstanding) < self.partner_max_unacked:
            address = next(iter(self._update_queue))
            del self._update_queue[address]
            if address in self._outstanding:
                continue  # re-queued while in flight: its ack will come
            lease = self.lease(address)
            state = lease.binding_state or B.FREE
            # The rewind state is what the partner is known to have been told (§7.1).
            lease = dataclasses.replace(lease, rewind_binding_state=state)
            self.db.leases.upsert(lease)
            message = self._message(M.BNDUPD, now, dict(update_options(lease, self.role)))
            self._outstanding[address] = _Outstanding(message.xid, state, lease.cltt)
            self._send(message, now)
        if (
            self._update_request_xid is not None
            and not self._update_queue
            and not self._outstanding
        ):
            self._send(self._message(M.UPDDONE, now, xid=self._update_request_xid), now)
            self._update_request_xid = None

    def _requeue_unacked(self) -> None:
        for address in list(self._outstanding):
            self._update_queue[address] = None
        self._outstanding.clear()

    # -- state machine actions ---------------------------------------------------------
    def _run(self, actions: list[Action], now: float) -> None:
        for transition in self.machine.history[self._history_seen :]:
            self._emit(StateChanged(transition))
        self._history_seen = len(self.machine.history)
        # The partner's state and STOS are persisted as well as ours (dhcpd records both).
        self._persist_state()
        if self.machine.state_changed:
            self._send_state(now)
        for action in actions:
            self._act(action, now)

    def _act(self, action: Action, now: float) -> None:
        if action in (Action.SEND_UPDREQALL, Action.SEND_UPDREQ):
            if self.linked and not self.machine.in_startup:
                kind = M.UPDREQALL if action is Action.SEND_UPDREQALL else M.UPDREQ
                self._send(self._message(kind, now), now)
        elif action is Action.SEND_PENDING_UPDATES:
            for address in self.addresses():
                # Not a lease still waiting for its BNDACK (generate_update_queue: ON_QUEUE).
                if address not in self._outstanding and _unacknowledged(self.lease(address)):
                    self._queue_update(address)
            self._flush_updates(now)
        elif action is Action.POOL_BALANCE:
            self._balance(now, timer=False)
        elif action is Action.REQUEUE_UNACKED:
            self._requeue_unacked()
        elif action is Action.EXPIRED_TSFP_MCLT:
            restart = int(self.machine.stos) + self.mclt
            for address in self.addresses():
                lease = self.lease(address)
                if lease.binding_state in _RETURNING:
                    retimed = dataclasses.replace(lease, tsfp=restart)
                    self.db.leases.upsert(retimed)
                    self._emit(LeaseRetimed(retimed))

    def _persist_state(self) -> None:
        machine = self.machine
        self.db.failover[self.peer.name] = FailoverPeerRecord(
            name=self.peer.name,
            my_state=machine.reported_state,
            my_stos=int(machine.stos),
            partner_state=machine.partner,
            partner_stos=int(machine.partner_stos),
            mclt=self.mclt if self.role is Role.SECONDARY else None,
        )

    def _set_mclt(self, mclt: int) -> None:
        self.mclt = mclt
        self.machine.mclt = mclt
        self._persist_state()

    def _configured_hba(self) -> bytes | None:
        if self.role is Role.SECONDARY:
            return None  # learned from the primary's CONNECT
        if self.peer.hba is not None:
            return self.peer.hba
        return wire.hba_from_split(self.peer.split if self.peer.split is not None else 128)

    # -- pool balance ------------------------------------------------------------------
    def _balance(self, now: float, *, timer: bool, answering: int | None = None) -> int:
        """dhcpd's balance run over every pool (docs/pool-balance.md §3); returns moves."""
        if self.machine.own is not FailoverState.NORMAL:
            if answering is not None:
                self._send_poolresp(answering, 0, now)
            return 0
        moved_total = 0
        short = False
        give = own_free_state(self.role.other)
        for pool, view in self._pool_views(now):
            short = short or view.poolreq
            leases = [self.lease(a) for a in pool.addresses()]
            moves = self._pick_moves(leases, view.lts, view.hold)
            for lease in moves:
                moved = dataclasses.replace(
                    lease,
                    binding_state=give,
                    tstp=int(now),
                    starts=int(now),
                    extras=dataclasses.replace(lease.extras, client_hostname=None),
                )
                self.db.leases.upsert(moved)
                self._emit(LeaseUpdated(moved, by_partner=False))
                self._queue_update(moved.address)
            moved_total += len(moves)
            self._emit(PoolBalanced(pool.shared_network, len(moves), timer and view.poolreq))
        self.last_balance = now
        if answering is not None:
            self._send_poolresp(answering, moved_total, now)
        self._flush_updates(now)
        if timer and short:
            self.request_pool_balance(now)
        self._schedule_balance(now)
        return moved_total

    def _pick_moves(self, leases: list[Lease], lts: int, hold: int) -> list[Lease]:
        """The two passes over this server's free queue, oldest ``ends`` first."""
        own = own_free_state(self.role)
        queue = sorted(
            (lease for lease in leases if lease.binding_state is own and not lease.reserved),
            key=lambda lease: lease.ends or 0,
        )
        picked: list[Lease] = []
        for lease in queue:  # pass 1: leases whose last client hashes to the partner
            if lts <= -hold:
                return picked
            if self._partner_wants(lease):
                picked.append(lease)
                lts -= 1
        chosen = {lease.address for lease in picked}
        for lease in queue:  # pass 2: any lease, never-used ones down to an even split
            if lease.address in chosen:
                continue
            used = bool(lease.ends)
            if (used and lts <= hold) or (not used and lts <= 0):
                break
            picked.append(lease)
            lts -= 1
        return picked

    def _partner_wants(self, lease: Lease) -> bool:
        key = lease.uid if lease.uid is not None else lease.hardware_address
        if key is None or self.hba is None:
            return False
        primary = wire.primary_serves(self.hba, wire.load_balance_hash(key))
        return primary is (self.role is Role.SECONDARY)

    def _send_poolresp(self, xid: int, count: int, now: float) -> None:
        values: dict[OptionCode, wire.OptionValue | None] = {O.ADDRESSES_TRANSFERRED: count}
        self._send(self._message(M.POOLRESP, now, values, xid=xid), now)

    def _pool_views(self, now: float) -> list[tuple[Pool, BalanceView]]:
        """The balance arithmetic of each pool, computed as ``dhcpfoctl balance`` does."""
        config = Config(path="", failover_peers={self.peer.name: self.peer}, pools=self.pools)
        report = compute_balance(config, self.db, int(now))
        views = [(pool.pool, pool.view(self.role)) for pool in report.pools]
        return [(pool, view) for pool, view in views if view is not None]

    def _schedule_balance(self, now: float) -> None:
        views = self._pool_views(now)
        if not views:
            return
        at = now + min(view.next_run_in for _, view in views)
        if self.last_balance is not None:
            at = max(at, self.last_balance + self.peer.min_balance)
        if self.balance_at is None or at < self.balance_at:
            self.balance_at = at

    # -- helpers -----------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _request_close(self, reason: str) -> None:
        if self.close_requested is None:
            self.close_requested = reason

    def _violation(self, message: str, *, close: bool = True) -> None:
        self._emit(ProtocolViolation(message))
        if close:
            self._request_close(message)


def _text(value: wire.OptionValue | None) -> str:
    """A text option for display: decoded leniently, never raising."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return "" if value is None else str(value)


def _unacknowledged(lease: Lease) -> bool:
    """The partner has not acknowledged this lease, or it waits for expiry (UPDREQ)."""
    return (lease.tstp or 0) > (lease.atsfp or 0) or lease.binding_state in _RETURNING
