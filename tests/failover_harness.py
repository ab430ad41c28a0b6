"""Two failover endpoints talking in memory: no sockets, an injected clock, bounded loops.

:class:`Pair` owns a primary and a secondary :class:`FailoverEndpoint` built from a small
dhcpd.conf (:func:`configs`), and plays the network and the socket driver between them:

* the *link* is ``up`` (bytes flow), ``cut`` (a partition: bytes vanish silently, the
  endpoints only notice through their timers, new connects fail) or ``down`` (both sockets
  closed; ``connection_lost`` was called on both);
* delivery is per message: what an endpoint sends is split into messages that wait in a
  per-direction queue; :meth:`Pair.pump` delivers them one at a time, optionally dropping or
  swapping whole messages (``drop``/``reorder`` probabilities with a seeded ``rng``);
* an endpoint's ``close_requested`` closes its socket as the driver does: what it still
  had to send is delivered first (when the link is up), then both sides see
  ``connection_lost`` (only the closing side when the link is cut);
* a side whose reconnect time has come reconnects while the network is not partitioned
  (:attr:`Pair.auto_reconnect`), otherwise its connect attempt fails (retry in 90 s);
* :meth:`Pair.advance` moves the clock to the next deadline of either endpoint.

Every message sent is kept in :attr:`Pair.wire` (with whether it was delivered), every event
in :attr:`Pair.events`, both with the clock time.
"""

from __future__ import annotations

import random
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dhcpfoctl.conf import read_config
from dhcpfoctl.conf.model import Config
from dhcpfoctl.failover import wire
from dhcpfoctl.failover.connection import Event, FailoverEndpoint, StateChanged
from dhcpfoctl.failover.wire import Message, MessageType
from dhcpfoctl.model import FailoverState, LeaseDB, LeaseTable, Role

T0 = 1_800_000_000.0
NAME = "lab"
POOL_FIRST, POOL_LAST = "10.20.0.10", "10.20.0.39"  # 30 addresses
#: Upper bounds of every loop of the harness (a runaway protocol fails instead of hanging).
MAX_DELIVERIES = 20_000
MAX_TIMER_STEPS = 2_000

S = FailoverState
M = MessageType


def conf_text(
    role: Role,
    *,
    name: str = NAME,
    first: str = POOL_FIRST,
    last: str = POOL_LAST,
    mclt: int = 30,
    max_response_delay: int = 10,
    max_unacked: int = 10,
    split: int = 128,
    extra: str = "",
) -> str:
    """A small dhcpd.conf for ``role`` of relationship ``name`` (one pool, one range)."""
    own, peer = ("10.20.1.1", "10.20.1.2") if role is Role.PRIMARY else ("10.20.1.2", "10.20.1.1")
    primary_only = f"mclt {mclt}; split {split};" if role is Role.PRIMARY else ""
    return f"""
authoritative;
default-lease-time 120;
max-lease-time 120;
failover peer "{name}" {{
  {role.value};
  address {own};
  port 647;
  peer address {peer};
  peer port 647;
  max-response-delay {max_response_delay};
  max-unacked-updates {max_unacked};
  load balance max seconds 3;
  {primary_only}
  {extra}
}}
subnet 10.20.0.0 netmask 255.255.255.0 {{
  pool {{
    failover peer "{name}";
    range {first} {last};
  }}
}}
"""


def read_conf_text(text: str, directory: str | Path | None = None) -> Config:
    """Write ``text`` to a dhcpd.conf in ``directory`` (a fresh temporary one) and read it."""
    if directory is not None:
        path = Path(directory) / f"dhcpd-{abs(hash(text))}.conf"
        path.write_text(text)
        return read_config(path)
    with tempfile.TemporaryDirectory(prefix="fo-harness-") as tmp:
        path = Path(tmp) / "dhcpd.conf"
        path.write_text(text)
        return read_config(path)


def configs(
    directory: str | Path | None = None, *, secondary: dict | None = None, **kw: object
) -> tuple[Config, Config]:
    """(primary config, secondary config) of one relationship.

    ``kw``: :func:`conf_text` parameters for both (mclt/split only reach the primary);
    ``secondary``: overrides for the secondary's config only.
    """
    secondary_kw = {k: v for k, v in kw.items() if k not in ("mclt", "split")}
    secondary_kw.update(secondary or {})
    return (
        read_conf_text(conf_text(Role.PRIMARY, **kw), directory),  # type: ignore[arg-type]
        read_conf_text(conf_text(Role.SECONDARY, **secondary_kw), directory),  # type: ignore[arg-type]
    )


def endpoint(config: Config, now: float, db: LeaseDB | None = None) -> FailoverEndpoint:
    """The endpoint of ``config``'s (only) failover relationship."""
    (peer,) = config.failover_peers.values()
    return FailoverEndpoint(peer, config.pools, db or LeaseDB(), now, host=peer.role)


def split_frames(data: bytes) -> list[bytes]:
    """Whole messages of a sender's output (the endpoint only emits whole messages)."""
    frames, pos = [], 0
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 2], "big")
        assert wire.HEADER_SIZE <= length <= wire.MAX_MESSAGE_SIZE, data[pos:].hex()
        frames.append(data[pos : pos + length])
        pos += length
    assert pos == len(data), "an endpoint emitted a partial message"
    return frames


@dataclass
class Sent:
    """One message an endpoint sent, as the harness saw it."""

    time: float
    sender: Role
    message: Message
    raw: bytes
    delivered: bool = False
    dropped: bool = False

    @property
    def type(self) -> MessageType:
        return self.message.type


_PAIR_FIELDS = ("now", "primary_db", "secondary_db", "rng", "drop", "reorder", "auto_reconnect")


@dataclass
class Pair:
    """A primary and a secondary endpoint and the network between them (module docstring)."""

    primary_config: Config
    secondary_config: Config
    now: float = T0
    primary_db: LeaseDB | None = None
    secondary_db: LeaseDB | None = None
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    #: Probability of dropping / swapping a whole message on delivery.
    drop: float = 0.0
    reorder: float = 0.0
    #: Reconnect when an endpoint's reconnect time comes (unless the network is cut).
    auto_reconnect: bool = True
    #: Called after every delivery and timer step (invariant checks).
    observer: Callable[[Pair], None] | None = None

    def __post_init__(self) -> None:
        self.P = endpoint(self.primary_config, self.now, self.primary_db)
        self.S = endpoint(self.secondary_config, self.now, self.secondary_db)
        self.link = "down"
        self.partitioned = False
        self.queues: dict[Role, deque[Sent]] = {Role.PRIMARY: deque(), Role.SECONDARY: deque()}
        self.wire: list[Sent] = []
        self.events: list[tuple[float, Role, Event]] = []
        self._collect()

    # -- access ------------------------------------------------------------------------
    @classmethod
    def fresh(cls, directory: str | Path | None = None, **kw: object) -> Pair:
        pair_kw = {k: kw.pop(k) for k in list(kw) if k in _PAIR_FIELDS}
        primary, secondary = configs(directory, **kw)
        return cls(primary, secondary, **pair_kw)  # type: ignore[arg-type]

    def endpoints(self) -> tuple[FailoverEndpoint, FailoverEndpoint]:
        return self.P, self.S

    def of(self, role: Role) -> FailoverEndpoint:
        return self.P if role is Role.PRIMARY else self.S

    def other(self, role: Role) -> FailoverEndpoint:
        return self.of(role.other)

    @property
    def states(self) -> tuple[FailoverState, FailoverState]:
        return self.P.state, self.S.state

    def sent(self, role: Role | None = None, *types: MessageType) -> list[Sent]:
        return [
            s
            for s in self.wire
            if (role is None or s.sender is role) and (not types or s.type in types)
        ]

    def events_of(self, role: Role, kind: type | tuple[type, ...] = object) -> list[Event]:
        return [e for _, r, e in self.events if r is role and isinstance(e, kind)]

    def transitions(self, role: Role | None = None) -> list[tuple[FailoverState, FailoverState]]:
        return [
            (e.transition.old, e.transition.new)
            for _, r, e in self.events
            if isinstance(e, StateChanged)
            and e.transition.error is None
            and (role is None or r is role)
        ]

    def quiet(self) -> bool:
        return not any(self.queues.values()) and all(
            not e.queued and not e.unacked for e in self.endpoints()
        )

    # -- the network -------------------------------------------------------------------
    def connect(self) -> None:
        """Both endpoints get a TCP link (closing a stale one first)."""
        for ep in self.endpoints():
            if ep.tcp_up:
                ep.connection_lost(self.now, "replaced by a new connection")
        self._clear_queues()
        self.partitioned = False
        self.link = "up"
        # dhcpd: either side may have opened the TCP connection; the primary speaks first.
        self.S.connection_made(self.now)
        self.P.connection_made(self.now)
        self._collect()

    def cut(self) -> None:
        """Partition the network: bytes in flight and sent from now on vanish silently."""
        self.partitioned = True
        if self.link == "up":
            self.link = "cut"
        for sent in self._drain_queues():
            sent.dropped = True

    def close(self) -> None:
        """Both sockets close (connection_lost on both); reconnects follow if allowed."""
        self._clear_queues()
        self.link = "down"
        for ep in self.endpoints():
            ep.connection_lost(self.now, "closed by the test")
        self._collect()

    def heal(self) -> None:
        """End a partition and reconnect at once (stale sockets are reset first)."""
        self.partitioned = False
        self.connect()

    def restart(self, role: Role) -> None:
        """Restart one server on its lease database (its persisted failover state)."""
        self._clear_queues()
        other = self.other(role)
        if other.tcp_up and self.link == "up":
            other.connection_lost(self.now, "connection closed by the partner")
        self.link = "down" if not other.tcp_up else self.link
        config = self.primary_config if role is Role.PRIMARY else self.secondary_config
        new = endpoint(config, self.now, self.of(role).db)
        if role is Role.PRIMARY:
            self.P = new
        else:
            self.S = new
        self._collect()

    def _clear_queues(self) -> None:
        for sent in self._drain_queues():
            sent.dropped = True

    def _drain_queues(self) -> Iterable[Sent]:
        for queue in self.queues.values():
            while queue:
                yield queue.popleft()

    # -- moving bytes and events -------------------------------------------------------
    def _collect(self) -> None:
        """Take every endpoint's output and events; honour close requests and reconnects."""
        for _ in range(10):
            changed = False
            for role, ep in ((Role.PRIMARY, self.P), (Role.SECONDARY, self.S)):
                data = ep.data_to_send()
                for raw in split_frames(data):
                    sent = Sent(self.now, role, wire.decode(raw), raw)
                    self.wire.append(sent)
                    if self.link == "up" and ep.tcp_up:
                        self.queues[role].append(sent)
                    else:
                        sent.dropped = True
                self.events += [(self.now, role, e) for e in ep.next_events()]
            for role, ep in ((Role.PRIMARY, self.P), (Role.SECONDARY, self.S)):
                if ep.close_requested and ep.tcp_up:
                    changed = True
                    self._close_from(role)
            changed = self._reconnect() or changed
            if not changed:
                return
        raise AssertionError("close/reconnect did not settle")

    def _close_from(self, role: Role) -> None:
        ep, other = self.of(role), self.other(role)
        if self.link == "up":
            # The driver sends what the endpoint queued before closing (a refusal arrives).
            for _ in range(MAX_DELIVERIES):
                if not self.queues[role]:
                    break
                self._deliver(self.queues[role].popleft())
            self.queues[role.other].clear()
        reason = ep.close_requested or "closed"
        ep.connection_lost(self.now, reason)
        if self.link == "up" and other.tcp_up:
            other.connection_lost(self.now, "connection closed by the partner")
        if self.link == "up" or not (self.P.tcp_up or self.S.tcp_up):
            self.link = "down"
        for r, e in ((Role.PRIMARY, self.P), (Role.SECONDARY, self.S)):
            for raw in split_frames(e.data_to_send()):
                self.wire.append(Sent(self.now, r, wire.decode(raw), raw, dropped=True))
            self.events += [(self.now, r, ev) for ev in e.next_events()]

    def _reconnect(self) -> bool:
        wanting = [ep for ep in self.endpoints() if ep.wants_connect(self.now)]
        if not wanting:
            return False
        if self.partitioned or not self.auto_reconnect or any(e.tcp_up for e in self.endpoints()):
            for ep in wanting:
                ep.connect_failed(self.now)
            return False
        self.connect()
        return True

    def inject(self, sender: Role, message: Message) -> Sent:
        """Queue ``message`` as if ``sender`` had sent it (a crafted or replayed message)."""
        raw = wire.encode(message)
        sent = Sent(self.now, sender, message, raw)
        self.wire.append(sent)
        self.queues[sender].append(sent)
        return sent

    def _deliver(self, sent: Sent) -> None:
        receiver = self.other(sent.sender)
        sent.delivered = True
        receiver.receive_data(sent.raw, self.now)

    def pump(self, max_deliveries: int = MAX_DELIVERIES) -> int:
        """Deliver queued messages (one at a time, both directions) until none is left."""
        delivered = 0
        for _ in range(max_deliveries):
            self._collect()
            roles = [r for r in (Role.PRIMARY, Role.SECONDARY) if self.queues[r]]
            if not roles or self.link != "up":
                return delivered
            role = self.rng.choice(roles) if (self.drop or self.reorder) else roles[0]
            queue = self.queues[role]
            if self.reorder and len(queue) > 1 and self.rng.random() < self.reorder:
                queue[0], queue[1] = queue[1], queue[0]
            sent = queue.popleft()
            if self.drop and self.rng.random() < self.drop:
                sent.dropped = True
            else:
                self._deliver(sent)
                delivered += 1
            self._collect()
            if self.observer:
                self.observer(self)
        raise AssertionError(f"pump did not settle after {max_deliveries} deliveries")

    # -- the clock ---------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        deadlines = [d for d in (ep.next_deadline() for ep in self.endpoints()) if d is not None]
        return min(deadlines) if deadlines else None

    def advance(self, limit: float | None = None) -> bool:
        """Move the clock to the next deadline (not past ``limit``) and fire the timers.

        Returns False when there is no deadline before ``limit`` (the clock then moves to
        ``limit`` if given).
        """
        self.pump()
        deadline = self.next_deadline()
        if deadline is None or (limit is not None and deadline > limit):
            if limit is not None:
                self.now = max(self.now, limit)
            return False
        self.now = max(self.now, deadline)
        for ep in self.endpoints():
            due = ep.next_deadline()
            if due is not None and due <= self.now:
                ep.handle_timer(self.now)
                self._collect()
        self.pump()
        if self.observer:
            self.observer(self)
        stale = self.next_deadline()
        assert stale is None or stale > self.now or self._has_work(), (
            f"a deadline stays in the past after handle_timer: {stale} <= {self.now}"
        )
        return True

    def _has_work(self) -> bool:
        return any(self.queues.values())

    def run_for(self, seconds: float, max_steps: int = MAX_TIMER_STEPS) -> None:
        """Deliver and fire timers until ``seconds`` of clock time have passed."""
        end = self.now + seconds
        for _ in range(max_steps):
            if not self.advance(limit=end):
                return
        raise AssertionError(f"more than {max_steps} timer steps in {seconds} s")

    def run_until(
        self,
        predicate: Callable[[Pair], bool],
        max_seconds: float = 600,
        max_steps: int = MAX_TIMER_STEPS,
    ) -> bool:
        """Run until ``predicate(pair)`` (checked after each step); False on the bounds."""
        end = self.now + max_seconds
        for _ in range(max_steps):
            self.pump()
            if predicate(self):
                return True
            if not self.advance(limit=end):
                return predicate(self)
        return predicate(self)

    def settle_normal(self, max_seconds: float = 600) -> bool:
        """Run until both are normal and nothing is queued or unacknowledged."""
        return self.run_until(lambda p: p.states == (S.NORMAL, S.NORMAL) and p.quiet(), max_seconds)


def copy_db(db: LeaseDB) -> LeaseDB:
    """An independent copy of a lease database (leases and failover records)."""
    return LeaseDB(leases=LeaseTable.from_leases(list(db.leases)), failover=dict(db.failover))


def fresh_pair(**kw: object) -> Pair:
    """A fresh pair (no lease records, no persisted state), already connected."""
    pair = Pair.fresh(**kw)
    if pair.link != "up":  # auto_reconnect already connected it at construction
        pair.connect()
    return pair
