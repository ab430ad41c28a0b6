"""The lab's lease engine on an in-memory failover pair (no sockets, an injected clock).

Two :class:`LeaseEngine` s sit on the endpoints of :class:`failover_harness.Pair`; DHCP
messages are handed to them directly and their failover traffic flows through the pair.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from failover_harness import NAME, Pair, fresh_pair, read_conf_text
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dhcpfoctl.failover.wire import hba_from_split, load_balance_hash, primary_serves
from dhcpfoctl.lab.dhcp import Packet, encode_address, encode_u32
from dhcpfoctl.lab.engine import LeaseEngine
from dhcpfoctl.model import BindingState, FailoverState, Lease, LeaseDB, Role

B = BindingState
S = FailoverState
HBA = hba_from_split(128)
ADDRESS = {Role.PRIMARY: "10.20.0.1", Role.SECONDARY: "10.20.0.2"}
MCLT = 30
DISCOVER, REQUEST, DECLINE, RELEASE, INFORM = 1, 3, 4, 7, 8


def mac(n: int) -> bytes:
    return bytes([2, 0, 0, 0, n >> 8, n & 0xFF])


def served_by(role: Role, count: int, start: int = 1) -> list[bytes]:
    """``count`` hardware addresses whose load-balance bucket ``role`` serves."""
    found = []
    for n in itertools.count(start):
        chaddr = mac(n)
        if primary_serves(HBA, load_balance_hash(chaddr)) is (role is Role.PRIMARY):
            found.append(chaddr)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


_xids = itertools.count(1)


def packet(
    kind: int,
    chaddr: bytes,
    *,
    requested: str | None = None,
    server_id: str | None = None,
    ciaddr: str = "0.0.0.0",
    giaddr: str = "0.0.0.0",
    secs: int = 0,
    hostname: bytes | None = None,
    lease_time: int | None = None,
) -> Packet:
    options = {53: bytes([kind])}
    if requested is not None:
        options[50] = encode_address(requested)
    if server_id is not None:
        options[54] = encode_address(server_id)
    if hostname is not None:
        options[12] = hostname
    if lease_time is not None:
        options[51] = encode_u32(lease_time)
    return Packet(
        op=1, xid=next(_xids), chaddr=chaddr, ciaddr=ciaddr, giaddr=giaddr, secs=secs,
        options=options,
    )  # fmt: skip


@dataclass
class Lab:
    """A failover pair with a lease engine on each side."""

    pair: Pair
    engines: dict[Role, LeaseEngine] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for role, config in (
            (Role.PRIMARY, self.pair.primary_config),
            (Role.SECONDARY, self.pair.secondary_config),
        ):
            ep = self.pair.of(role)
            self.engines[role] = LeaseEngine(
                config, ep.db, {NAME: ep}, server_address=ADDRESS[role], now=self.pair.now
            )

    def send(self, role: Role, message: Packet) -> Packet | None:
        answer = self.engines[role].handle(message, self.pair.now)
        self.pair.pump()
        return answer

    def tick(self, seconds: float) -> None:
        """Let ``seconds`` pass in steps no longer than the engines' next deadlines."""
        end = self.pair.now + seconds
        for _ in range(10_000):
            due = [e.next_deadline() for e in self.engines.values()]
            step = min([d for d in due if d is not None] + [end])
            self.pair.run_for(max(step - self.pair.now, 0))
            for engine in self.engines.values():
                deadline = engine.next_deadline()
                if deadline is not None and deadline <= self.pair.now:
                    engine.handle_timer(self.pair.now)
            self.pair.pump()
            if self.pair.now >= end:
                return
        raise AssertionError("tick did not reach its end")

    def lease(self, role: Role, address: str) -> Lease:
        return self.pair.of(role).lease(address)

    def log(self, role: Role) -> list[str]:
        return self.engines[role].next_log()

    def dora(self, role: Role, chaddr: bytes, **kw: object) -> Packet | None:
        offer = self.send(role, packet(DISCOVER, chaddr, **kw))  # type: ignore[arg-type]
        if offer is None:
            return None
        return self.send(
            role,
            packet(REQUEST, chaddr, requested=offer.yiaddr, server_id=ADDRESS[role], **kw),  # type: ignore[arg-type]
        )


def normal_lab(**kw: object) -> Lab:
    pair = fresh_pair(mclt=MCLT, **kw)
    assert pair.settle_normal()
    lab = Lab(pair)
    # The primary's first balance run gives the secondary half the free leases.
    assert pair.run_until(lambda p: any(lease.binding_state is B.BACKUP for lease in p.S.db.leases))
    return lab


def msg_type(answer: Packet | None) -> int | None:
    return None if answer is None else answer.options[53][0]


def lease_time(answer: Packet) -> int:
    return int.from_bytes(answer.options[51], "big")


# -- DORA and load balancing ------------------------------------------------------------


def test_dora_on_each_side_by_hash_bucket() -> None:
    lab = normal_lab()
    for role in (Role.PRIMARY, Role.SECONDARY):
        (chaddr,) = served_by(role, 1)
        other = role.other
        assert lab.send(other, packet(DISCOVER, chaddr)) is None
        assert any("load balance to peer lab" in line for line in lab.log(other))
        offer = lab.send(role, packet(DISCOVER, chaddr))
        assert msg_type(offer) == 2 and offer is not None
        own = B.FREE if role is Role.PRIMARY else B.BACKUP
        assert lab.lease(role, offer.yiaddr).binding_state is own
        # The selecting REQUEST is broadcast: only the offering server answers.
        request = packet(REQUEST, chaddr, requested=offer.yiaddr, server_id=ADDRESS[role])
        assert lab.send(other, request) is None
        assert any("lease owned by peer" in line for line in lab.log(other))
        ack = lab.send(role, request)
        assert msg_type(ack) == 5 and ack is not None and ack.yiaddr == offer.yiaddr
        assert lease_time(ack) == MCLT  # nothing acknowledged yet: the MCLT cap
        assert lab.pair.quiet()
        for side in (role, other):
            lease = lab.lease(side, ack.yiaddr)
            assert lease.binding_state is B.ACTIVE and lease.hardware_address == chaddr
        ours = lab.lease(role, ack.yiaddr)
        assert ours.tstp == ours.cltt + 120 + MCLT // 2  # now + desired + granted/2
        assert ours.tsfp == ours.tstp  # set from the BNDACK
        log = lab.log(role)
        assert f"DHCPOFFER on {offer.yiaddr} to {chaddr.hex(':')} via {ADDRESS[role]}" in log


def test_affinity_same_client_same_address_and_renewal_beyond_mclt() -> None:
    lab = normal_lab()
    (chaddr,) = served_by(Role.PRIMARY, 1)
    first = lab.send(Role.PRIMARY, packet(DISCOVER, chaddr))
    again = lab.send(Role.PRIMARY, packet(DISCOVER, chaddr))
    assert first is not None and again is not None and first.yiaddr == again.yiaddr
    ack = lab.dora(Role.PRIMARY, chaddr)
    assert ack is not None and ack.yiaddr == first.yiaddr
    lab.tick(10)
    renew = lab.send(Role.PRIMARY, packet(REQUEST, chaddr, ciaddr=ack.yiaddr))
    assert msg_type(renew) == 5 and renew is not None and renew.yiaddr == ack.yiaddr
    assert lease_time(renew) == 120  # the acknowledged tstp now allows the desired time
    other = served_by(Role.PRIMARY, 1, start=int.from_bytes(chaddr[4:], "big") + 1)[0]
    assert lab.send(Role.PRIMARY, packet(DISCOVER, other)).yiaddr != ack.yiaddr  # type: ignore[union-attr]


def test_secondary_answers_primary_bucket_after_max_seconds() -> None:
    lab = normal_lab()
    (chaddr,) = served_by(Role.PRIMARY, 1)
    assert lab.send(Role.SECONDARY, packet(DISCOVER, chaddr, secs=3)) is None
    offer = lab.send(Role.SECONDARY, packet(DISCOVER, chaddr, secs=4))
    assert msg_type(offer) == 2 and offer is not None
    assert lab.lease(Role.SECONDARY, offer.yiaddr).binding_state is B.BACKUP


def test_not_responding_in_startup() -> None:
    pair = Pair.fresh(mclt=MCLT)
    lab = Lab(pair)
    chaddr = served_by(Role.PRIMARY, 1)[0]
    assert lab.engines[Role.PRIMARY].handle(packet(DISCOVER, chaddr), pair.now) is None
    assert any(line.endswith(": not responding (startup)") for line in lab.log(Role.PRIMARY))


# -- communications-interrupted and partner-down -----------------------------------------


def interrupted_lab() -> Lab:
    lab = normal_lab()
    lab.pair.cut()
    assert lab.pair.run_until(
        lambda p: p.states == (S.COMMUNICATIONS_INTERRUPTED, S.COMMUNICATIONS_INTERRUPTED)
    )
    return lab


def test_communications_interrupted_serves_own_free_leases_without_balancing() -> None:
    lab = normal_lab()
    (renewing,) = served_by(Role.PRIMARY, 1)
    bound = lab.dora(Role.PRIMARY, renewing)
    assert bound is not None
    lab.pair.cut()
    assert lab.pair.run_until(
        lambda p: p.states == (S.COMMUNICATIONS_INTERRUPTED, S.COMMUNICATIONS_INTERRUPTED)
    )
    # No load balancing: the secondary answers a primary-bucket client, from BACKUP.
    (chaddr,) = served_by(Role.PRIMARY, 1, start=500)
    offer = lab.send(Role.SECONDARY, packet(DISCOVER, chaddr))
    assert offer is not None
    assert lab.lease(Role.SECONDARY, offer.yiaddr).binding_state is B.BACKUP
    ack = lab.dora(Role.SECONDARY, chaddr)
    assert ack is not None and lease_time(ack) == MCLT
    # A renewal is served, capped at MCLT past what the partner acknowledged.
    renew = lab.send(Role.PRIMARY, packet(REQUEST, renewing, ciaddr=bound.yiaddr))
    assert renew is not None and msg_type(renew) == 5
    tsfp = lab.lease(Role.PRIMARY, bound.yiaddr).tsfp
    assert tsfp is not None and lease_time(renew) <= tsfp + MCLT - int(lab.pair.now)


def test_partner_down_takes_peer_leases_only_after_mclt() -> None:
    lab = interrupted_lab()
    lab.pair.P.set_state(S.PARTNER_DOWN, lab.pair.now)
    lab.pair.pump()
    assert lab.pair.P.state is S.PARTNER_DOWN
    clients = iter(served_by(Role.PRIMARY, 200, start=1000))
    # Exhaust the primary's own free leases.
    for _ in range(40):
        if lab.dora(Role.PRIMARY, next(clients)) is None:
            break
    assert any("peer holds all free leases" in line for line in lab.log(Role.PRIMARY))
    entered = lab.pair.P.machine.stos
    lab.tick(entered + MCLT + 1 - lab.pair.now)
    ack = lab.dora(Role.PRIMARY, next(clients))
    assert ack is not None and msg_type(ack) == 5
    lease = lab.lease(Role.PRIMARY, ack.yiaddr)
    assert lease.binding_state is B.ACTIVE and lease.rewind_binding_state is B.BACKUP


# -- time, release, decline --------------------------------------------------------------


def test_expiry_on_the_primary_frees_through_the_secondarys_ack() -> None:
    lab = normal_lab()
    (chaddr,) = served_by(Role.SECONDARY, 1)
    ack = lab.dora(Role.SECONDARY, chaddr)
    assert ack is not None
    lab.tick(MCLT - 1)
    assert lab.lease(Role.PRIMARY, ack.yiaddr).binding_state is B.ACTIVE
    lab.tick(MCLT)  # the secondary in normal does not expire; the primary does
    for role in Role:
        assert lab.lease(role, ack.yiaddr).binding_state is B.FREE
    # The expired lease keeps its client: the same client gets it back.
    assert lab.lease(Role.PRIMARY, ack.yiaddr).hardware_address == chaddr


def test_release_and_decline() -> None:
    lab = normal_lab()
    one, two = served_by(Role.PRIMARY, 2)
    ack = lab.dora(Role.PRIMARY, one)
    assert ack is not None
    assert lab.send(Role.PRIMARY, packet(RELEASE, one, ciaddr=ack.yiaddr)) is None
    assert lab.lease(Role.PRIMARY, ack.yiaddr).binding_state is B.FREE  # acked by the partner
    assert lab.lease(Role.SECONDARY, ack.yiaddr).binding_state is B.FREE
    assert any("DHCPRELEASE of" in line and "(found)" in line for line in lab.log(Role.PRIMARY))
    ack = lab.dora(Role.PRIMARY, two)
    assert ack is not None
    assert lab.send(Role.PRIMARY, packet(DECLINE, two, requested=ack.yiaddr)) is None
    for role in Role:
        lease = lab.lease(role, ack.yiaddr)
        assert lease.binding_state is B.ABANDONED and lease.hardware_address is None
    assert f"Abandoning IP address {ack.yiaddr}: declined." in lab.log(Role.PRIMARY)


def test_release_by_another_client_is_not_found() -> None:
    lab = normal_lab()
    one, two = served_by(Role.PRIMARY, 2)
    ack = lab.dora(Role.PRIMARY, one)
    assert ack is not None
    lab.send(Role.PRIMARY, packet(RELEASE, two, ciaddr=ack.yiaddr))
    assert lab.lease(Role.PRIMARY, ack.yiaddr).binding_state is B.ACTIVE
    assert any("(not found)" in line for line in lab.log(Role.PRIMARY))


# -- NAKs and silence -------------------------------------------------------------------


def test_naks() -> None:
    lab = normal_lab()
    one, two = served_by(Role.PRIMARY, 2)
    ack = lab.dora(Role.PRIMARY, one)
    assert ack is not None
    # init-reboot for an address bound to another client
    nak = lab.send(Role.PRIMARY, packet(REQUEST, two, requested=ack.yiaddr))
    assert msg_type(nak) == 6 and nak is not None and nak.yiaddr == "0.0.0.0"
    assert nak.options[54] == encode_address(ADDRESS[Role.PRIMARY])
    # an address on another network (authoritative)
    nak = lab.send(Role.PRIMARY, packet(REQUEST, two, requested="10.30.0.5"))
    assert msg_type(nak) == 6
    assert any("wrong network" in line for line in lab.log(Role.PRIMARY))


def test_rebinding_on_the_secondary_is_acked_and_shared() -> None:
    lab = normal_lab()
    (chaddr,) = served_by(Role.PRIMARY, 1)
    ack = lab.dora(Role.PRIMARY, chaddr)
    assert ack is not None
    lab.tick(20)
    rebind = lab.send(Role.SECONDARY, packet(REQUEST, chaddr, ciaddr=ack.yiaddr))
    assert msg_type(rebind) == 5 and rebind is not None and rebind.yiaddr == ack.yiaddr
    # The receiver keeps its own cltt (as dhcpd does); the update carries the new start.
    assert lab.lease(Role.PRIMARY, ack.yiaddr).starts == int(lab.pair.now)


def test_expired_lease_waiting_for_the_partner_is_nobody_elses() -> None:
    lab = normal_lab()
    one, two = served_by(Role.PRIMARY, 2)
    ack = lab.dora(Role.PRIMARY, one)
    assert ack is not None
    lab.pair.cut()
    lab.tick(MCLT + 1)  # expired on the primary; the secondary cannot acknowledge it
    assert lab.lease(Role.PRIMARY, ack.yiaddr).binding_state is B.EXPIRED
    assert lab.send(Role.PRIMARY, packet(REQUEST, two, requested=ack.yiaddr)) is None
    assert any("unknown lease" in line for line in lab.log(Role.PRIMARY))
    offer = lab.send(Role.PRIMARY, packet(DISCOVER, two))
    assert offer is not None and offer.yiaddr != ack.yiaddr
    # Its own client may have it back (it was last ACTIVE with that client).
    again = lab.send(Role.PRIMARY, packet(REQUEST, one, requested=ack.yiaddr))
    assert msg_type(again) == 5


def test_relayed_from_unknown_network_is_silent() -> None:
    lab = normal_lab()
    (chaddr,) = served_by(Role.PRIMARY, 1)
    assert lab.send(Role.PRIMARY, packet(DISCOVER, chaddr, giaddr="192.0.2.1")) is None
    assert "Packet from unknown subnet: 192.0.2.1" in lab.log(Role.PRIMARY)


def test_relayed_discover_uses_giaddr_subnet() -> None:
    lab = normal_lab()
    (chaddr,) = served_by(Role.PRIMARY, 1)
    offer = lab.send(Role.PRIMARY, packet(DISCOVER, chaddr, giaddr="10.20.0.254"))
    assert offer is not None and offer.giaddr == "10.20.0.254"
    assert any(line.endswith("via 10.20.0.254") for line in lab.log(Role.PRIMARY))


def test_hostname_unsuitable_for_printing() -> None:
    lab = normal_lab()
    (chaddr,) = served_by(Role.PRIMARY, 1)
    lab.send(Role.PRIMARY, packet(DISCOVER, chaddr, hostname=b"evil\x1b[2Jname"))
    log = lab.log(Role.PRIMARY)
    assert any("(Hostname Unsuitable for Printing)" in line for line in log)
    assert not any("\x1b" in line for line in log)


def test_replies_and_unknown_messages_are_ignored() -> None:
    lab = normal_lab()
    (chaddr,) = served_by(Role.PRIMARY, 1)
    looped = packet(DISCOVER, chaddr)
    looped.op = 2
    assert lab.send(Role.PRIMARY, looped) is None
    assert lab.send(Role.PRIMARY, packet(42, chaddr)) is None
    assert lab.log(Role.PRIMARY) == []


def test_inform_acks_without_address_or_lease_time() -> None:
    lab = normal_lab()
    answer = lab.send(Role.PRIMARY, packet(INFORM, mac(7), ciaddr="10.20.0.200"))
    assert msg_type(answer) == 5 and answer is not None
    assert answer.yiaddr == "0.0.0.0" and answer.ciaddr == "10.20.0.200"
    assert 51 not in answer.options and answer.options[1] == encode_address("255.255.255.0")


# -- a pool without failover -------------------------------------------------------------

PLAIN = """
authoritative;
default-lease-time 600;
max-lease-time 900;
option domain-name "lab.test";
subnet 10.40.0.0 netmask 255.255.255.0 {
  option routers 10.40.0.1;
  range 10.40.0.10 10.40.0.11;
}
"""


def test_pool_without_failover_goes_to_the_journal(tmp_path: Path) -> None:
    config = read_conf_text(PLAIN, tmp_path)
    db = LeaseDB()
    engine = LeaseEngine(config, db, {}, server_address="10.40.0.1", now=1000.0)
    offer = engine.handle(packet(DISCOVER, mac(1), lease_time=5000), 1000.0)
    assert offer is not None and offer.yiaddr == "10.40.0.10"
    assert engine.next_changes() == []  # an offer is not committed
    ack = engine.handle(packet(REQUEST, mac(1), requested=offer.yiaddr, lease_time=5000), 1001.0)
    assert ack is not None and lease_time(ack) == 900  # capped at max-lease-time
    assert ack.options[3] == encode_address("10.40.0.1") and ack.options[15] == b"lab.test"
    (changed,) = engine.next_changes()
    assert changed.binding_state is B.ACTIVE and changed.ends == 1901
    assert engine.handle(packet(DISCOVER, mac(2)), 1002.0).yiaddr == "10.40.0.11"  # type: ignore[union-attr]
    engine.handle(packet(REQUEST, mac(2), requested="10.40.0.11"), 1002.0)
    assert engine.handle(packet(DISCOVER, mac(3)), 1003.0) is None
    assert any("network 10.40.0.0/24: no free leases" in line for line in engine.next_log())
    assert engine.next_deadline() is not None
    engine.handle_timer(1901.0)
    assert [lease.binding_state for lease in engine.next_changes()][-1] is B.FREE
    assert db.leases.get("10.40.0.10").binding_state is B.FREE  # type: ignore[union-attr]


# -- the safety property -----------------------------------------------------------------

_DORA = st.tuples(st.just("dora"), st.sampled_from(list(Role)), st.integers(0, 11), st.booleans())
ACTION = st.one_of(
    _DORA,
    _DORA,
    _DORA,
    st.tuples(st.just("renew"), st.sampled_from(list(Role)), st.integers(0, 11), st.booleans()),
    st.tuples(st.just("release"), st.sampled_from(list(Role)), st.integers(0, 11), st.booleans()),
    st.tuples(st.just("decline"), st.sampled_from(list(Role)), st.integers(0, 11), st.booleans()),
    st.tuples(st.just("tick"), st.just(Role.PRIMARY), st.integers(1, 40), st.booleans()),
    st.tuples(st.just("cut"), st.just(Role.PRIMARY), st.just(0), st.booleans()),
    st.tuples(st.just("heal"), st.just(Role.PRIMARY), st.just(0), st.booleans()),
    st.tuples(st.just("partner-down"), st.sampled_from(list(Role)), st.just(0), st.booleans()),
)


P, SEC = Role.PRIMARY, Role.SECONDARY
#: A lease granted while the link is cut, then partner-down on the other side: only the
#: MCLT cap (and the MCLT wait) keep the survivor from giving the address away too early.
_PARTITION_THEN_PARTNER_DOWN = [
    ("cut", P, 0, False),
    ("dora", P, 0, True),
    ("tick", P, 25, False),
    ("partner-down", SEC, 0, False),
    ("tick", P, 35, False),
    *(("dora", SEC, i, False) for i in range(1, 12)),
]
#: The same without waiting for MCLT after partner-down: the survivor must refuse.
_TOO_EARLY = [
    ("tick", P, 1, False) if step == ("tick", P, 35, False) else step
    for step in _PARTITION_THEN_PARTNER_DOWN
]
_MIRRORED = [
    (kind, role.other if kind in ("dora", "partner-down") else role, value, late)
    for kind, role, value, late in _PARTITION_THEN_PARTNER_DOWN
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(ACTION, max_size=40))
@example(actions=_PARTITION_THEN_PARTNER_DOWN)
@example(actions=_MIRRORED)
@example(actions=_TOO_EARLY)
def test_no_address_bound_to_two_clients(actions: list[tuple[str, Role, int, bool]]) -> None:
    """Clients act on either server while the link comes and goes: every ACK gives an
    address no other client holds an unexpired lease on."""
    pair = fresh_pair(mclt=MCLT, first="10.20.0.10", last="10.20.0.17")
    assert pair.settle_normal()
    lab = Lab(pair)
    clients = [mac(n) for n in range(1, 13)]
    held: dict[bytes, tuple[str, float, Role]] = {}  # client → (address, expiry, server)

    def bound(answer: Packet | None, client: bytes, role: Role) -> None:
        if answer is None:
            return
        if msg_type(answer) == 6:
            held.pop(client, None)
            return
        now = lab.pair.now
        for other, (address, expiry, _) in held.items():
            if other != client and address == answer.yiaddr and expiry > now:
                raise AssertionError(f"{address} bound to {other.hex()} and {client.hex()}")
        held[client] = (answer.yiaddr, now + lease_time(answer), role)

    for kind, role, value, late in actions:
        secs = 10 if late else 0
        if kind in ("dora", "renew", "release", "decline") and role not in lab.engines:
            continue  # the muted server's clients wait
        if kind == "dora":
            client = clients[value]
            bound(lab.dora(role, client, secs=secs), client, role)
        elif kind == "renew" and clients[value] in held:
            client = clients[value]
            address, expiry, server = held[client]
            if expiry > lab.pair.now:
                target = server if late else role  # renewing (unicast) or rebinding
                if target in lab.engines:
                    request = packet(REQUEST, client, ciaddr=address)
                    bound(lab.send(target, request), client, target)
        elif kind in ("release", "decline") and clients[value] in held:
            client = clients[value]
            address, expiry, server = held.pop(client)
            if server not in lab.engines:
                continue
            if kind == "release":
                lab.send(server, packet(RELEASE, client, ciaddr=address))
            else:
                lab.send(server, packet(DECLINE, client, requested=address))
        elif kind == "tick":
            lab.tick(value)
        elif kind == "cut":
            pair.cut()
        elif kind == "heal" and pair.partitioned:
            pair.heal()
            pair.pump()
        elif kind == "partner-down":
            ep = pair.of(role)
            # An operator declares partner-down only when the partner cannot serve; here
            # the partner is muted from then on (its clients go to the survivor).
            if ep.state is S.COMMUNICATIONS_INTERRUPTED and pair.partitioned:
                ep.set_state(S.PARTNER_DOWN, pair.now)
                pair.pump()
                lab.engines.pop(role.other, None)
                for client, (address, expiry, server) in list(held.items()):
                    if server is role.other:
                        held[client] = (address, expiry, role)
