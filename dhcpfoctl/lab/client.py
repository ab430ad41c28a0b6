"""A DHCP client's state machine (RFC 2131 §4.4), sans-IO, as ONE table.

The lab's client population runs one :class:`DhcpClient` per simulated machine. The
machine takes received packets (:meth:`DhcpClient.receive`), the clock
(:meth:`DhcpClient.handle_timer`) and the operator's :meth:`DhcpClient.release`; it gives
back packets to send (:meth:`DhcpClient.data_to_send`, each with a :class:`Destination`),
what happened (:meth:`DhcpClient.next_events`) and when it next needs the clock
(:meth:`DhcpClient.next_deadline`). It owns no socket and reads no clock.

:data:`TABLE` maps ``(state, trigger)`` to a :class:`Rule`: the action and the next state.
A pair that is not in the table is ignored (a late OFFER while REQUESTING, a duplicate
ACK while BOUND), as RFC 2131 clients discard what they do not expect. INIT and
INIT-REBOOT are the states where a client decides what to send; as sending is immediate
here, their rows (START and REBOOT from INIT, or from RELEASED to start again) lead
straight to SELECTING or REBOOTING.

Retransmission is bounded exponential backoff (RFC 2131 §4.1: 4 s doubling to 64 s,
shortened by tests): after ``max_attempts`` sends without an answer, a DISCOVER, a
selecting REQUEST or an INIT-REBOOT REQUEST gives up and starts over with a new DISCOVER
(:class:`TimedOut`); a renewal or rebinding REQUEST keeps trying until T2 or the lease
expiry moves the machine on.

Relayed mode (``giaddr`` set): the client acts as its own relay agent, so every message
carries ``giaddr`` and ``hops=1`` and servers answer the relay address, renewals included.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field, replace
from typing import Final

from dhcpfoctl.lab.dhcp import (
    BOOTREPLY,
    BOOTREQUEST,
    MessageType,
    Option,
    Packet,
    encode_address,
)

__all__ = [
    "TABLE",
    "Action",
    "Bound",
    "ClientConfig",
    "ClientLease",
    "Destination",
    "DhcpClient",
    "Event",
    "Expired",
    "Nak",
    "Offered",
    "Outgoing",
    "Rebound",
    "Released",
    "Renewed",
    "Rule",
    "State",
    "TimedOut",
    "Trigger",
]

#: A lease time of all ones never expires (RFC 2132 §9.2).
INFINITE_LEASE: Final = 0xFFFFFFFF
#: What the client asks for (option 55): mask, routers, DNS, lease time, server id, T1, T2.
_PARAMETERS: Final = bytes(
    (
        Option.SUBNET_MASK,
        Option.ROUTERS,
        Option.DOMAIN_NAME_SERVERS,
        Option.LEASE_TIME,
        Option.SERVER_IDENTIFIER,
        Option.RENEWAL_TIME,
        Option.REBINDING_TIME,
    )
)


class State(enum.Enum):
    INIT = "init"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    REBOOTING = "rebooting"
    RELEASED = "released"


class Trigger(enum.Enum):
    START = "start"
    REBOOT = "reboot"
    OFFER = "offer"
    ACK = "ack"
    NAK = "nak"
    RETRANSMIT = "retransmit"
    GIVE_UP = "give-up"
    T1 = "t1"
    T2 = "t2"
    EXPIRY = "expiry"
    RELEASE = "release"


class Action(enum.Enum):
    DISCOVER = "send DISCOVER"
    REQUEST_OFFER = "send REQUEST for the offer"
    REQUEST_REBOOT = "send REQUEST for the previous address"
    RENEW = "unicast REQUEST to the lease's server"
    REBIND = "send REQUEST to all servers"
    RETRANSMIT = "send the pending message again"
    BIND = "bind the acknowledged lease"
    NAK = "drop the address and DISCOVER"
    GIVE_UP = "report a timeout and DISCOVER"
    EXPIRE = "drop the expired lease and DISCOVER"
    RELEASE = "send RELEASE to the lease's server"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    target: State


_S = State
_T = Trigger
_A = Action
_RESTART_STATES: Final = (_S.INIT, _S.RELEASED)
_HOLDING: Final = (_S.BOUND, _S.RENEWING, _S.REBINDING)

#: THE table: ``(state, trigger)`` → :class:`Rule` (RFC 2131 §4.4, figure 5).
TABLE: Final[dict[tuple[State, Trigger], Rule]] = {
    **{(state, _T.START): Rule(_A.DISCOVER, _S.SELECTING) for state in _RESTART_STATES},
    **{(state, _T.REBOOT): Rule(_A.REQUEST_REBOOT, _S.REBOOTING) for state in _RESTART_STATES},
    # -- selecting: the first usable OFFER wins ------------------------------------------
    (_S.SELECTING, _T.OFFER): Rule(_A.REQUEST_OFFER, _S.REQUESTING),
    (_S.SELECTING, _T.RETRANSMIT): Rule(_A.RETRANSMIT, _S.SELECTING),
    (_S.SELECTING, _T.GIVE_UP): Rule(_A.GIVE_UP, _S.SELECTING),
    (_S.SELECTING, _T.RELEASE): Rule(_A.STOP, _S.RELEASED),
    # -- requesting ------------------------------------------------------------------------
    (_S.REQUESTING, _T.ACK): Rule(_A.BIND, _S.BOUND),
    (_S.REQUESTING, _T.NAK): Rule(_A.NAK, _S.SELECTING),
    (_S.REQUESTING, _T.RETRANSMIT): Rule(_A.RETRANSMIT, _S.REQUESTING),
    (_S.REQUESTING, _T.GIVE_UP): Rule(_A.GIVE_UP, _S.SELECTING),
    (_S.REQUESTING, _T.RELEASE): Rule(_A.STOP, _S.RELEASED),
    # -- rebooting (INIT-REBOOT's REQUEST is out) ------------------------------------------
    (_S.REBOOTING, _T.ACK): Rule(_A.BIND, _S.BOUND),
    (_S.REBOOTING, _T.NAK): Rule(_A.NAK, _S.SELECTING),
    (_S.REBOOTING, _T.RETRANSMIT): Rule(_A.RETRANSMIT, _S.REBOOTING),
    (_S.REBOOTING, _T.GIVE_UP): Rule(_A.GIVE_UP, _S.SELECTING),
    (_S.REBOOTING, _T.RELEASE): Rule(_A.STOP, _S.RELEASED),
    # -- bound -----------------------------------------------------------------------------
    (_S.BOUND, _T.T1): Rule(_A.RENEW, _S.RENEWING),
    # A clock that jumped past T2 or the expiry skips the steps between.
    (_S.BOUND, _T.T2): Rule(_A.REBIND, _S.REBINDING),
    (_S.BOUND, _T.EXPIRY): Rule(_A.EXPIRE, _S.SELECTING),
    (_S.BOUND, _T.RELEASE): Rule(_A.RELEASE, _S.RELEASED),
    # -- renewing: unicast to the lease's server until T2 ----------------------------------
    (_S.RENEWING, _T.ACK): Rule(_A.BIND, _S.BOUND),
    (_S.RENEWING, _T.NAK): Rule(_A.NAK, _S.SELECTING),
    (_S.RENEWING, _T.RETRANSMIT): Rule(_A.RETRANSMIT, _S.RENEWING),
    (_S.RENEWING, _T.GIVE_UP): Rule(_A.RETRANSMIT, _S.RENEWING),
    (_S.RENEWING, _T.T2): Rule(_A.REBIND, _S.REBINDING),
    (_S.RENEWING, _T.EXPIRY): Rule(_A.EXPIRE, _S.SELECTING),
    (_S.RENEWING, _T.RELEASE): Rule(_A.RELEASE, _S.RELEASED),
    # -- rebinding: to every server until the lease expires --------------------------------
    (_S.REBINDING, _T.ACK): Rule(_A.BIND, _S.BOUND),
    (_S.REBINDING, _T.NAK): Rule(_A.NAK, _S.SELECTING),
    (_S.REBINDING, _T.RETRANSMIT): Rule(_A.RETRANSMIT, _S.REBINDING),
    (_S.REBINDING, _T.GIVE_UP): Rule(_A.RETRANSMIT, _S.REBINDING),
    (_S.REBINDING, _T.EXPIRY): Rule(_A.EXPIRE, _S.SELECTING),
    (_S.REBINDING, _T.RELEASE): Rule(_A.RELEASE, _S.RELEASED),
}


class Destination(enum.Enum):
    """Where a packet goes: every configured server, or the server of the lease."""

    ALL_SERVERS = "all-servers"
    SERVER = "server"


@dataclass(frozen=True, slots=True)
class Outgoing:
    packet: Packet
    destination: Destination
    #: The server identifier (option 54) the packet is for, when ``destination`` is SERVER.
    server: str | None = None


@dataclass(frozen=True, slots=True)
class Offered:
    address: str
    server: str


@dataclass(frozen=True, slots=True)
class Bound:
    address: str
    lease_time: int
    server: str
    #: When this exchange's first message went out, for latency.
    since: float


@dataclass(frozen=True, slots=True)
class Renewed:
    address: str
    lease_time: int
    server: str
    since: float


@dataclass(frozen=True, slots=True)
class Rebound:
    address: str
    lease_time: int
    server: str
    since: float


@dataclass(frozen=True, slots=True)
class Nak:
    server: str | None


@dataclass(frozen=True, slots=True)
class Released:
    address: str
    server: str


@dataclass(frozen=True, slots=True)
class Expired:
    address: str


@dataclass(frozen=True, slots=True)
class TimedOut:
    """``max_attempts`` sends in ``state`` went unanswered; the client starts over."""

    state: State


Event = Offered | Bound | Renewed | Rebound | Nak | Released | Expired | TimedOut

#: What an ACK is, by the state it arrives in.
_BIND_EVENTS: Final[dict[State, type[Bound | Renewed | Rebound]]] = {
    _S.REQUESTING: Bound,
    _S.REBOOTING: Bound,
    _S.RENEWING: Renewed,
    _S.REBINDING: Rebound,
}


@dataclass(frozen=True, slots=True)
class ClientConfig:
    chaddr: bytes
    client_id: bytes | None = None
    #: Relayed mode: the relay address the client puts in every message (hops=1).
    giaddr: str | None = None
    #: A fixed ``secs`` field; None sends the seconds since the exchange began.
    secs: int | None = None
    htype: int = 1
    retransmit_initial: float = 4.0
    retransmit_max: float = 64.0
    max_attempts: int = 5


@dataclass(slots=True)
class ClientLease:
    """The lease a client holds; the times are absolute (None: an infinite lease)."""

    address: str
    server: str
    t1: float | None
    t2: float | None
    expiry: float | None


@dataclass(slots=True)
class _Pending:
    """The message awaiting an answer, and its retransmission schedule."""

    outgoing: Outgoing
    since: float
    attempts: int
    due: float


@dataclass
class DhcpClient:
    """One client machine; ``rng`` draws its xids (seed it for a repeatable run)."""

    config: ClientConfig
    rng: random.Random = field(default_factory=random.Random)
    state: State = field(default=State.INIT, init=False)
    lease: ClientLease | None = field(default=None, init=False)
    _xid: int = field(default=0, init=False)
    _pending: _Pending | None = field(default=None, init=False)
    _out: list[Outgoing] = field(default_factory=list, init=False)
    _events: list[Event] = field(default_factory=list, init=False)

    # -- inputs ------------------------------------------------------------------------
    def start(self, now: float, *, reboot_address: str | None = None) -> None:
        """Begin in INIT (DISCOVER) or, knowing an earlier address, INIT-REBOOT."""
        self._fire(_T.START if reboot_address is None else _T.REBOOT, now, reboot_address)

    def receive(self, packet: Packet, now: float) -> None:
        """A packet from a server; anything not an answer to our pending message is dropped."""
        if packet.op != BOOTREPLY or packet.xid != self._xid or packet.chaddr != self.config.chaddr:
            return
        kind = packet.message_type
        if kind is MessageType.OFFER and packet.server_identifier and packet.yiaddr != "0.0.0.0":
            self._fire(_T.OFFER, now, packet)
        elif (
            kind is MessageType.ACK and packet.lease_time is not None and packet.yiaddr != "0.0.0.0"
        ):
            self._fire(_T.ACK, now, packet)
        elif kind is MessageType.NAK:
            self._fire(_T.NAK, now, packet)

    def handle_timer(self, now: float) -> None:
        """Fire whatever is due at ``now``: the furthest lease timer, else a retransmission."""
        lease = self.lease
        if lease is not None and self.state in _HOLDING:
            for trigger, at in ((_T.EXPIRY, lease.expiry), (_T.T2, lease.t2), (_T.T1, lease.t1)):
                if at is not None and now >= at and (self.state, trigger) in TABLE:
                    self._fire(trigger, now)
                    return
        pending = self._pending
        if pending is not None and now >= pending.due:
            exhausted = pending.attempts >= self.config.max_attempts
            self._fire(_T.GIVE_UP if exhausted else _T.RETRANSMIT, now)

    def release(self, now: float) -> None:
        """Give the lease back (RELEASE to its server) and stop."""
        self._fire(_T.RELEASE, now)

    # -- outputs -----------------------------------------------------------------------
    def data_to_send(self) -> list[Outgoing]:
        out, self._out = self._out, []
        return out

    def next_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        deadlines = [self._pending.due] if self._pending is not None else []
        lease = self.lease
        if lease is not None and self.state in _HOLDING:
            for trigger, at in ((_T.T1, lease.t1), (_T.T2, lease.t2), (_T.EXPIRY, lease.expiry)):
                if at is not None and (self.state, trigger) in TABLE:
                    deadlines.append(at)
        return min(deadlines, default=None)

    # -- the machine -------------------------------------------------------------------
    def _fire(self, trigger: Trigger, now: float, arg: Packet | str | None = None) -> None:
        rule = TABLE.get((self.state, trigger))
        if rule is None:
            return
        before, self.state = self.state, rule.target
        match rule.action:
            case _A.DISCOVER:
                self._discover(now)
            case _A.REQUEST_OFFER:
                assert isinstance(arg, Packet)
                self._events.append(Offered(arg.yiaddr, arg.server_identifier or ""))
                self._request_offer(arg, now)
            case _A.REQUEST_REBOOT:
                assert isinstance(arg, str)
                self._new_exchange()
                options = {Option.REQUESTED_ADDRESS: encode_address(arg)}
                self._send(MessageType.REQUEST, options, Destination.ALL_SERVERS, now, now)
            case _A.RENEW | _A.REBIND:
                assert self.lease is not None
                # Rebinding keeps the renewal's start: the latency of its eventual answer.
                since = self._pending.since if self._pending is not None else now
                self._new_exchange()
                destination = (
                    Destination.SERVER if rule.action is _A.RENEW else Destination.ALL_SERVERS
                )
                self._send(
                    MessageType.REQUEST, {}, destination, now, since, ciaddr=self.lease.address
                )
            case _A.RETRANSMIT:
                self._retransmit(now)
            case _A.BIND:
                assert isinstance(arg, Packet)
                self._bind(arg, before, now)
            case _A.NAK:
                assert isinstance(arg, Packet)
                self._events.append(Nak(arg.server_identifier))
                self._discover(now)
            case _A.GIVE_UP:
                self._events.append(TimedOut(before))
                self._discover(now)
            case _A.EXPIRE:
                assert self.lease is not None
                self._events.append(Expired(self.lease.address))
                self._discover(now)
            case _A.RELEASE:
                assert self.lease is not None
                lease, self.lease = self.lease, None
                self._pending = None
                # A fresh xid: no answer is expected and none to an old exchange applies.
                self._xid = self.rng.getrandbits(32)
                options = {Option.SERVER_IDENTIFIER: encode_address(lease.server)}
                packet = self._packet(MessageType.RELEASE, options, 0.0, ciaddr=lease.address)
                self._out.append(Outgoing(packet, Destination.SERVER, lease.server))
                self._events.append(Released(lease.address, lease.server))
            case _A.STOP:
                self._pending = None

    def _new_exchange(self) -> None:
        self._xid = self.rng.getrandbits(32)
        self._pending = None

    def _discover(self, now: float) -> None:
        self.lease = None
        self._new_exchange()
        self._send(MessageType.DISCOVER, {}, Destination.ALL_SERVERS, now, now)

    def _request_offer(self, offer: Packet, now: float) -> None:
        # The REQUEST keeps the DISCOVER's xid and its start (RFC 2131 §4.4.1).
        since = self._pending.since if self._pending is not None else now
        options = {
            Option.REQUESTED_ADDRESS: encode_address(offer.yiaddr),
            Option.SERVER_IDENTIFIER: encode_address(offer.server_identifier or "0.0.0.0"),
        }
        self._send(MessageType.REQUEST, options, Destination.ALL_SERVERS, now, since)

    def _send(
        self,
        kind: MessageType,
        options: dict[int, bytes],
        destination: Destination,
        now: float,
        since: float,
        *,
        ciaddr: str = "0.0.0.0",
    ) -> None:
        """Send a new message; ``since`` is when its exchange began (secs, latency)."""
        server = self.lease.server if destination is Destination.SERVER and self.lease else None
        packet = self._packet(kind, options, now - since, ciaddr=ciaddr)
        outgoing = Outgoing(packet, destination, server)
        self._out.append(outgoing)
        self._pending = _Pending(outgoing, since, 1, now + self.config.retransmit_initial)

    def _retransmit(self, now: float) -> None:
        pending = self._pending
        assert pending is not None
        packet = pending.outgoing.packet
        if self.config.secs is None:
            packet = replace(packet, secs=_secs(now - pending.since))
        outgoing = replace(pending.outgoing, packet=packet)
        self._out.append(outgoing)
        delay = min(
            self.config.retransmit_initial * 2**pending.attempts, self.config.retransmit_max
        )
        self._pending = _Pending(outgoing, pending.since, pending.attempts + 1, now + delay)

    def _packet(
        self, kind: MessageType, options: dict[int, bytes], elapsed: float, *, ciaddr: str
    ) -> Packet:
        config = self.config
        all_options: dict[int, bytes] = {Option.MESSAGE_TYPE: bytes((kind,))}
        if config.client_id is not None:
            all_options[Option.CLIENT_IDENTIFIER] = config.client_id
        all_options.update(options)
        if kind is not MessageType.RELEASE:
            all_options[Option.PARAMETER_REQUEST_LIST] = _PARAMETERS
        return Packet(
            op=BOOTREQUEST,
            xid=self._xid,
            chaddr=config.chaddr,
            htype=config.htype,
            hops=1 if config.giaddr else 0,
            secs=config.secs if config.secs is not None else _secs(elapsed),
            ciaddr=ciaddr,
            giaddr=config.giaddr or "0.0.0.0",
            options=all_options,
        )

    def _bind(self, ack: Packet, before: State, now: float) -> None:
        pending = self._pending
        # Lease times count from when the request went out (RFC 2131 §4.4.1).
        start = pending.since if pending is not None else now
        lease_time = ack.lease_time
        assert lease_time is not None
        server = ack.server_identifier or (self.lease.server if self.lease else "0.0.0.0")
        if lease_time == INFINITE_LEASE:
            t1 = t2 = expiry = None
        else:
            t1_option = ack.option_u32(Option.RENEWAL_TIME)
            t2_option = ack.option_u32(Option.REBINDING_TIME)
            t1 = start + (t1_option if t1_option is not None else lease_time * 0.5)
            t2 = start + (t2_option if t2_option is not None else lease_time * 0.875)
            expiry = start + lease_time
        self.lease = ClientLease(ack.yiaddr, server, t1, t2, expiry)
        self._pending = None
        event = _BIND_EVENTS[before]
        self._events.append(event(ack.yiaddr, lease_time, server, start))


def _secs(elapsed: float) -> int:
    return max(0, min(int(elapsed), 0xFFFF))
