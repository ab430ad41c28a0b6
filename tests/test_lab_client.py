"""The lab's DHCP client machine: RFC 2131 §4.4 flows step by step, retransmission, and a
hypothesis run of random replies, drops and clock jumps against the table."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dhcpfoctl.lab.client import (
    TABLE,
    Bound,
    ClientConfig,
    Destination,
    DhcpClient,
    Expired,
    Nak,
    Offered,
    Outgoing,
    Rebound,
    Released,
    Renewed,
    State,
    TimedOut,
    Trigger,
)
from dhcpfoctl.lab.dhcp import (
    BOOTREQUEST,
    MessageType,
    Option,
    Packet,
    decode,
    encode,
    encode_address,
    encode_u32,
    reply,
)
from dhcpfoctl.lab.population import PopulationStats, client_macs, run_population

MAC = bytes.fromhex("020000000007")
SERVER = "10.0.0.2"
ADDRESS = "10.0.0.50"


def client(**overrides: object) -> DhcpClient:
    config = {"chaddr": MAC, "giaddr": "10.0.0.1", "secs": 0, "retransmit_initial": 1.0,
              "retransmit_max": 4.0, "max_attempts": 4} | overrides  # fmt: skip
    return DhcpClient(ClientConfig(**config), rng=random.Random(7))  # type: ignore[arg-type]


def one(machine: DhcpClient) -> Outgoing:
    out = machine.data_to_send()
    assert len(out) == 1
    # Whatever the machine sends survives the wire.
    assert decode(encode(out[0].packet)) == out[0].packet
    return out[0]


def answer(
    request: Packet, kind: MessageType, *, lease: int = 100, extra: dict[int, bytes] | None = None
) -> Packet:
    options = {Option.SERVER_IDENTIFIER: encode_address(SERVER)}
    if kind is not MessageType.NAK:
        options[Option.LEASE_TIME] = encode_u32(lease)
    options |= extra or {}
    yiaddr = "0.0.0.0" if kind is MessageType.NAK else ADDRESS
    return reply(request, kind, yiaddr=yiaddr, options=options)


def bind(machine: DhcpClient, now: float = 0.0, **kwargs: object) -> None:
    machine.start(now)
    discover = one(machine).packet
    machine.receive(answer(discover, MessageType.OFFER), now + 0.1)
    request = one(machine).packet
    machine.receive(answer(request, MessageType.ACK, **kwargs), now + 0.2)  # type: ignore[arg-type]
    assert machine.state is State.BOUND


def test_dora_in_relayed_mode() -> None:
    machine = client(client_id=b"\x01" + MAC)
    machine.start(10.0)
    assert machine.state is State.SELECTING
    sent = one(machine)
    discover = sent.packet
    assert sent.destination is Destination.ALL_SERVERS
    assert (discover.op, discover.message_type, discover.giaddr, discover.hops) == (
        BOOTREQUEST, MessageType.DISCOVER, "10.0.0.1", 1)  # fmt: skip
    assert discover.client_id == b"\x01" + MAC
    assert machine.next_deadline() == 11.0

    machine.receive(answer(discover, MessageType.OFFER), 10.5)
    assert machine.state is State.REQUESTING
    sent = one(machine)
    request = sent.packet
    assert sent.destination is Destination.ALL_SERVERS
    assert request.xid == discover.xid
    assert (request.message_type, request.requested_address, request.server_identifier) == (
        MessageType.REQUEST, ADDRESS, SERVER)  # fmt: skip
    assert request.ciaddr == "0.0.0.0"
    assert machine.next_deadline() == 11.5
    # A second OFFER while requesting is not in the table: ignored.
    machine.receive(answer(discover, MessageType.OFFER), 10.6)
    assert machine.data_to_send() == []

    machine.receive(answer(request, MessageType.ACK), 10.7)
    assert machine.state is State.BOUND
    assert machine.next_events() == [Offered(ADDRESS, SERVER), Bound(ADDRESS, 100, SERVER, 10.0)]
    # T1 is half the lease, counted from the DISCOVER that began the exchange.
    assert machine.next_deadline() == 60.0


def test_direct_mode_has_no_relay_fields_and_counts_secs() -> None:
    machine = client(giaddr=None, secs=None)
    machine.start(0.0)
    discover = one(machine).packet
    assert (discover.giaddr, discover.hops, discover.secs) == ("0.0.0.0", 0, 0)
    machine.handle_timer(1.0)
    assert one(machine).packet.secs == 1
    machine.handle_timer(3.5)
    assert one(machine).packet.secs == 3


def test_replies_for_someone_else_are_dropped() -> None:
    machine = client()
    machine.start(0.0)
    discover = one(machine).packet
    wrong_xid = answer(discover, MessageType.OFFER)
    wrong_xid.xid ^= 1
    wrong_mac = answer(discover, MessageType.OFFER)
    wrong_mac.chaddr = bytes(6)
    no_server_id = answer(discover, MessageType.OFFER)
    del no_server_id.options[Option.SERVER_IDENTIFIER]
    for packet in (wrong_xid, wrong_mac, no_server_id, discover):
        machine.receive(packet, 0.5)
    assert machine.state is State.SELECTING
    assert machine.data_to_send() == []
    assert machine.next_events() == []


def test_renew_at_t1_then_rebind_at_t2_then_expiry() -> None:
    machine = client()
    bind(machine, lease=100)
    machine.next_events()
    machine.handle_timer(49.0)
    assert machine.data_to_send() == []
    machine.handle_timer(50.0)
    assert machine.state is State.RENEWING
    sent = one(machine)
    renew = sent.packet
    assert (sent.destination, sent.server) == (Destination.SERVER, SERVER)
    assert (renew.ciaddr, renew.requested_address, renew.server_identifier) == (ADDRESS, None, None)
    assert renew.giaddr == "10.0.0.1"
    machine.receive(answer(renew, MessageType.ACK), 50.5)
    assert machine.next_events() == [Renewed(ADDRESS, 100, SERVER, 50.0)]
    assert machine.next_deadline() == 100.0

    machine.handle_timer(100.0)  # T1 again: renewing, unanswered until T2
    renew = one(machine).packet
    machine.handle_timer(137.5)  # T2 = 50 + 87.5
    assert machine.state is State.REBINDING
    sent = one(machine)
    assert sent.destination is Destination.ALL_SERVERS
    assert sent.packet.xid != renew.xid
    machine.receive(answer(sent.packet, MessageType.ACK), 138.0)
    assert machine.next_events() == [Rebound(ADDRESS, 100, SERVER, 100.0)]

    machine.handle_timer(150.0)
    machine.handle_timer(187.5)
    assert machine.state is State.REBINDING
    machine.data_to_send()
    machine.handle_timer(200.0)  # expiry: 100 + 100
    assert machine.state is State.SELECTING
    assert one(machine).packet.message_type is MessageType.DISCOVER
    assert machine.next_events() == [Expired(ADDRESS)]
    assert machine.lease is None


def test_t1_t2_come_from_options_58_59() -> None:
    machine = client()
    extra = {Option.RENEWAL_TIME: encode_u32(10), Option.REBINDING_TIME: encode_u32(20)}
    bind(machine, lease=100, extra=extra)
    assert machine.next_deadline() == 10.0
    machine.handle_timer(10.0)
    machine.data_to_send()
    # Renewal retransmissions (1 s, then 2 s …) come before T2.
    assert machine.next_deadline() == 11.0


def test_infinite_lease_has_no_deadline() -> None:
    machine = client()
    bind(machine, lease=0xFFFFFFFF)
    assert machine.next_deadline() is None


def test_clock_jump_past_expiry_while_bound_starts_over() -> None:
    machine = client()
    bind(machine)
    machine.next_events()
    machine.handle_timer(1000.0)
    assert machine.next_events() == [Expired(ADDRESS)]
    assert machine.state is State.SELECTING


@pytest.mark.parametrize("stage", ["requesting", "renewing", "rebinding"])
def test_nak_drops_the_address_and_discovers(stage: str) -> None:
    machine = client()
    if stage == "requesting":
        machine.start(0.0)
        machine.receive(answer(one(machine).packet, MessageType.OFFER), 0.1)
    else:
        bind(machine)
        machine.handle_timer(50.0 if stage == "renewing" else 87.5)
    request = one(machine).packet
    machine.next_events()
    machine.receive(answer(request, MessageType.NAK), 90.0)
    assert machine.state is State.SELECTING
    assert machine.next_events() == [Nak(SERVER)]
    assert one(machine).packet.message_type is MessageType.DISCOVER
    assert machine.lease is None


def test_retransmission_backs_off_to_the_cap_and_gives_up() -> None:
    machine = client()
    machine.start(0.0)
    first = one(machine).packet
    deadlines = []
    for _ in range(3):
        deadline = machine.next_deadline()
        assert deadline is not None
        deadlines.append(deadline)
        machine.handle_timer(deadline)
        assert one(machine).packet.xid == first.xid
    assert deadlines == [1.0, 3.0, 7.0]
    assert machine.next_deadline() == 11.0  # capped at 4 s
    machine.handle_timer(11.0)
    assert machine.next_events() == [TimedOut(State.SELECTING)]
    restarted = one(machine).packet
    assert restarted.message_type is MessageType.DISCOVER
    assert restarted.xid != first.xid


def test_init_reboot_asks_for_the_previous_address() -> None:
    machine = client()
    machine.start(0.0, reboot_address=ADDRESS)
    assert machine.state is State.REBOOTING
    sent = one(machine)
    request = sent.packet
    assert sent.destination is Destination.ALL_SERVERS
    assert (request.message_type, request.requested_address, request.server_identifier) == (
        MessageType.REQUEST, ADDRESS, None)  # fmt: skip
    machine.receive(answer(request, MessageType.ACK), 0.1)
    assert machine.next_events() == [Bound(ADDRESS, 100, SERVER, 0.0)]


def test_release_unicasts_to_the_lease_server_and_stops() -> None:
    machine = client(client_id=b"id")
    bind(machine)
    machine.next_events()
    machine.release(5.0)
    sent = one(machine)
    packet = sent.packet
    assert (sent.destination, sent.server) == (Destination.SERVER, SERVER)
    assert (packet.message_type, packet.ciaddr, packet.server_identifier, packet.client_id) == (
        MessageType.RELEASE, ADDRESS, SERVER, b"id")  # fmt: skip
    assert machine.next_events() == [Released(ADDRESS, SERVER)]
    assert machine.state is State.RELEASED
    assert machine.next_deadline() is None
    machine.handle_timer(1e9)
    assert machine.data_to_send() == []
    machine.start(6.0)
    assert one(machine).packet.message_type is MessageType.DISCOVER


def test_release_before_a_lease_just_stops() -> None:
    machine = client()
    machine.start(0.0)
    machine.data_to_send()
    machine.release(0.5)
    assert machine.state is State.RELEASED
    assert (machine.data_to_send(), machine.next_events(), machine.next_deadline()) == (
        [],
        [],
        None,
    )


def test_every_waiting_state_has_a_retransmission_and_a_way_out() -> None:
    for state in (State.SELECTING, State.REQUESTING, State.REBOOTING, State.RENEWING,
                  State.REBINDING):  # fmt: skip
        assert (state, Trigger.RETRANSMIT) in TABLE
        assert (state, Trigger.GIVE_UP) in TABLE
        assert (state, Trigger.RELEASE) in TABLE
    assert {state for state, _ in TABLE} == set(State)


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("reply"), st.sampled_from(list(MessageType)), st.integers(0, 4)),
        st.tuples(st.just("timer"), st.floats(0, 300), st.integers(0, 0)),
        st.tuples(st.just("release"), st.just(0.0), st.integers(0, 0)),
        st.tuples(st.just("start"), st.booleans(), st.integers(0, 0)),
    ),
    max_size=60,
)


@given(_steps, st.sampled_from([30, 100, 0xFFFFFFFF]))
@settings(max_examples=200, deadline=None)
def test_random_replies_drops_and_clock_follow_the_table(steps: list, lease: int) -> None:
    machine = client()
    now = 0.0
    machine.start(now)
    sent: list[Packet] = [o.packet for o in machine.data_to_send()]
    for kind, value, index in steps:
        before = machine.state
        if kind == "reply" and sent:
            request = sent[-1 - min(index, len(sent) - 1)]
            machine.receive(answer(request, value, lease=lease), now)
        elif kind == "timer":
            deadline = machine.next_deadline()
            now = max(now, deadline if deadline is not None and value < 150 else now + value)
            machine.handle_timer(now)
        elif kind == "release":
            machine.release(now)
        elif kind == "start":
            machine.start(now, reboot_address=ADDRESS if value else None)
        after = machine.state
        assert after is before or any(
            (before, trigger) in TABLE and TABLE[(before, trigger)].target is after
            for trigger in Trigger
        )
        assert (machine.lease is not None) == (after in (State.BOUND, State.RENEWING,
                                                          State.REBINDING))  # fmt: skip
        deadline = machine.next_deadline()
        if after is State.RELEASED or (after is State.BOUND and lease == 0xFFFFFFFF):
            assert deadline is None
        else:
            # A late ACK may bind a lease whose T1 has passed: the next timer call renews.
            assert deadline is not None
        for outgoing in machine.data_to_send():
            assert decode(encode(outgoing.packet)) == outgoing.packet
            assert (outgoing.server is not None) == (outgoing.destination is Destination.SERVER)
            sent.append(outgoing.packet)
        for event in machine.next_events():
            if isinstance(event, Bound | Renewed | Rebound):
                assert event.address == ADDRESS
                assert event.since <= now


class _ToyServer:
    """A loopback DHCP responder for the population: OFFER/ACK per MAC, answers the UDP
    source like the lab server, records RELEASEs. Its loop is bounded by ``stop``."""

    def __init__(self, lease: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.lease = lease
        self.addresses: dict[bytes, str] = {}
        self.released: set[str] = set()
        self.renewals = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        for _ in range(20 * 60 * 5):  # 5 minutes at most
            if self.stop.is_set():
                return
            try:
                data, source = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            request = decode(data)
            kind = request.message_type
            if kind is MessageType.RELEASE:
                self.released.add(request.ciaddr)
                continue
            address = self.addresses.setdefault(
                request.chaddr, f"10.0.0.{len(self.addresses) + 10}"
            )
            if kind is MessageType.REQUEST and request.ciaddr != "0.0.0.0":
                self.renewals += 1
            answer_kind = MessageType.OFFER if kind is MessageType.DISCOVER else MessageType.ACK
            options = {
                Option.SERVER_IDENTIFIER: encode_address("127.0.0.1"),
                Option.LEASE_TIME: encode_u32(self.lease),
            }
            self.sock.sendto(
                encode(reply(request, answer_kind, yiaddr=address, options=options)), source
            )


def test_population_binds_renews_and_releases_against_a_loopback_responder() -> None:
    server = _ToyServer(lease=1)
    server.thread.start()
    reports: list[int] = []
    try:
        stats = run_population(
            [server.sock.getsockname()],
            clients=5,
            rate=100.0,
            duration=2.5,
            giaddr="127.0.0.1",
            release_at_end=True,
            progress=lambda s: reports.append(s.acks),
            progress_interval=0.2,
        )
        # The releases are sent as the run ends: let the responder read them (bounded).
        for _ in range(200):
            if len(server.released) >= 5:
                break
            time.sleep(0.05)
    finally:
        server.stop.set()
        server.thread.join(5)
        server.sock.close()
    assert stats.started == stats.acks == stats.offers == stats.releases == 5
    assert stats.renewals >= 5  # T1 is 0.5 s into a 2.5 s run
    assert stats.renewals + stats.rebinds <= server.renewals
    assert (stats.naks, stats.malformed, stats.send_errors) == (0, 0, 0)
    assert server.released == set(server.addresses.values())
    assert len(server.addresses) == 5
    assert reports[-1] == 5
    assert 0 <= stats.latency_percentile(50) <= stats.latency_percentile(100)  # type: ignore[operator]


def test_population_until_ends_the_run_early_and_still_releases() -> None:
    server = _ToyServer(lease=60)
    server.thread.start()
    try:
        stats = run_population(
            [server.sock.getsockname()],
            clients=3,
            rate=100.0,
            duration=600.0,  # only `until` can end this run within the test
            giaddr="127.0.0.1",
            release_at_end=True,
            until=lambda: len(server.addresses) >= 3,
            progress_interval=0.1,
        )
    finally:
        server.stop.set()
        server.thread.join(5)
        server.sock.close()
    assert stats.elapsed < 600.0 and stats.started == 3
    assert stats.releases == stats.acks


def test_client_macs_are_distinct_local_unicast_and_seeded() -> None:
    macs = client_macs(1000, seed=3)
    assert len(set(macs)) == 1000
    assert all(len(mac) == 6 and mac[0] == 0x02 for mac in macs)
    assert client_macs(1000, seed=3) == macs != client_macs(1000, seed=4)


def test_latency_percentiles_by_nearest_rank() -> None:
    stats = PopulationStats(latencies=[0.4, 0.1, 0.3, 0.2])
    assert [stats.latency_percentile(p) for p in (0, 25, 50, 99, 100)] == [0.1, 0.1, 0.2, 0.4, 0.4]
    assert PopulationStats().latency_percentile(50) is None
