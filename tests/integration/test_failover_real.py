"""dhcpfoctl's failover endpoint as the partner of a real dhcpd 4.4.3-P1.

Each test builds a pair with one real dhcpd and, in the other server's network namespace,
our :class:`~dhcpfoctl.failover.connection.FailoverEndpoint` run by the socket driver of
:mod:`dhcpfoctl.failover.driver` (reading the dhcpd.conf the harness wrote for that side).
Everything is awaited by bounded polling; nothing asserts a transient value.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from dhcpfoctl.balance import BalanceReport, compute_balance
from dhcpfoctl.conf import Config, read_config
from dhcpfoctl.failover.connection import (
    FailoverEndpoint,
    LinkUp,
    PoolResponse,
    UpdateAcked,
    UpdateRefused,
)
from dhcpfoctl.failover.driver import EndpointDriver
from dhcpfoctl.failover.wire import MessageType, RejectReason
from dhcpfoctl.leases import read_leases
from dhcpfoctl.model import (
    BindingState,
    FailoverState,
    HardwareType,
    Lease,
    LeaseDB,
    LeaseExtras,
    Role,
)

from .netns import socket_in_namespace
from .realpair import PairConfig, RealPair

pytestmark = pytest.mark.integration

S = FailoverState
#: Fresh pair to normal/normal takes about a second; a cut is noticed after
#: max-response-delay (4 s); a heal reconnects within TCP's SYN retries.
SETTLE = 60.0


@dataclasses.dataclass
class OurPeer:
    """Our endpoint, running, beside one real dhcpd."""

    pair: RealPair
    role: Role
    driver: EndpointDriver

    @property
    def endpoint(self) -> FailoverEndpoint:
        return self.driver.endpoint

    @property
    def real(self) -> Role:
        return self.role.other

    def wait(self, predicate: Callable[[FailoverEndpoint], bool], what: str) -> None:
        assert self.driver.wait_for(predicate, SETTLE), (
            f"timed out waiting for {what}; our state {self.endpoint.state.keyword}, "
            f"history: {[t.describe() for t in self.endpoint.machine.history]}"
        )

    def wait_both(self, ours: FailoverState, real: FailoverState) -> None:
        self.wait(lambda e: e.state is ours, f"our endpoint in {ours.keyword}")
        self.pair.wait_states(**{self.real.value: real}, timeout=SETTLE)

    def events(self, kind: type) -> list:
        with self.driver._lock:
            return [event for _, event in self.driver.events if isinstance(event, kind)]

    def free_backups(self, keep: int) -> None:
        """Move all but ``keep`` BACKUP leases to FREE, in one step of our endpoint."""
        self.driver.call(lambda endpoint, now: self.give_backups(endpoint, now, keep=keep))

    @staticmethod
    def give_backups(endpoint: FailoverEndpoint, now: float, *, keep: int) -> None:
        backups = [
            endpoint.lease(a)
            for a in endpoint.addresses()
            if endpoint.lease(a).binding_state is BindingState.BACKUP
        ]
        for lease in backups[keep:]:
            endpoint.update_lease(dataclasses.replace(lease, binding_state=BindingState.FREE), now)

    @contextmanager
    def restarted(self, db: LeaseDB) -> Iterator[OurPeer]:
        """Our server started again on what it had persisted (``db``)."""
        driver = _driver(self.pair, self.role, db)
        try:
            yield OurPeer(self.pair, self.role, driver)
        finally:
            driver.stop()
            _record_exercised(driver)

    def pool_responses_logged(self) -> list[str]:
        """The real server's 'pool response: N leases' log lines, oldest first."""
        return [line for line in self.pair.log_lines(self.real.value) if "pool response:" in line]

    def real_leases(self) -> LeaseDB:
        return read_leases(self.pair.server(self.real.value).leases_path)

    def wait_synced(self) -> None:
        """Until every pool address has the same binding state on both sides."""
        deadline = time.monotonic() + SETTLE
        differ: list[str] = []
        while time.monotonic() < deadline:
            real = self.real_leases().leases
            with self.driver._lock:
                differ = [
                    address
                    for address in self.endpoint.addresses()
                    if (
                        real.get(address) or Lease(address, binding_state=BindingState.FREE)
                    ).binding_state
                    != self.endpoint.lease(address).binding_state
                ]
                quiet = not self.endpoint.unacked and not self.endpoint.queued
            if not differ and quiet:
                return
            time.sleep(0.5)
        raise AssertionError(f"lease states differ for {len(differ)} addresses: {differ[:5]}")


def _driver(pair: RealPair, ours: Role, db: LeaseDB, **peer_changes: int) -> EndpointDriver:
    server = pair.server(ours.value)
    partner = pair.partner(ours.value)
    config = read_config(server.conf_path)
    endpoint = FailoverEndpoint(
        dataclasses.replace(config.failover_peers[pair.relationship], **peer_changes),
        config.pools,
        db,
        time.time(),
        host=f"{partner.failover_address}:{partner.failover_port}",
    )
    driver = EndpointDriver(
        endpoint,
        listener=pair.external_listener(),
        connect_to=(partner.failover_address, partner.failover_port),
        partner_address=partner.failover_address,
        new_socket=lambda: socket_in_namespace(
            server.namespace, socket.AF_INET, socket.SOCK_STREAM
        ),
    )
    driver.start()
    return driver


@contextmanager
def our_peer(
    make_pair: Callable[[PairConfig], RealPair],
    ours: Role,
    failover_extra: str = "",
    **peer_changes: int,
) -> Iterator[OurPeer]:
    pair = make_pair(PairConfig(external=ours.value, failover_extra=failover_extra))
    driver = _driver(pair, ours, LeaseDB(), **peer_changes)
    try:
        yield OurPeer(pair, ours, driver)
    finally:
        driver.stop()
        _record_exercised(driver)


#: What the real dhcpd exchanged with us over this run (printed with ``-s``; the closing
#: note of the failover issue quotes it).
EXERCISED: dict[str, set[str]] = {"sent": set(), "received": set(), "states": set()}


def _record_exercised(driver: EndpointDriver) -> None:
    endpoint = driver.endpoint
    EXERCISED["sent"].update(t.name for t in endpoint.sent)
    EXERCISED["received"].update(t.name for t in endpoint.received)
    EXERCISED["states"].update(
        f"{t.old.keyword}->{t.new.keyword}" for t in endpoint.machine.history
    )


@pytest.fixture(scope="module", autouse=True)
def _report_exercised() -> Iterator[None]:
    yield
    print("\nfailover exercised against real dhcpd:", {k: sorted(v) for k, v in EXERCISED.items()})


@pytest.fixture
def with_our_peer(
    make_pair: Callable[[PairConfig], RealPair],
) -> Callable[[Role], contextmanager]:
    return lambda ours, *args, **kwargs: our_peer(make_pair, ours, *args, **kwargs)


@pytest.mark.parametrize("ours", [Role.SECONDARY, Role.PRIMARY])
def test_real_dhcpd_accepts_our_endpoint_and_both_reach_normal(with_our_peer, ours: Role):
    with with_our_peer(ours) as peer:
        peer.wait_both(S.NORMAL, S.NORMAL)
        view = peer.pair.omapi_states(peer.real.value)
        assert view is not None
        assert (view.local_state, view.partner_state) == (S.NORMAL, S.NORMAL)
        assert view.mclt == peer.endpoint.mclt
        # dhcpfoctl status, end to end, on the real server says the same.
        real = peer.pair.server(peer.real.value)
        status = subprocess.run(
            [
                sys.executable,
                "-m",
                "dhcpfoctl",
                "status",
                "--server",
                real.omapi_endpoint,
                "--peer",
                peer.pair.relationship,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        [shown] = json.loads(status.stdout)["views"]
        assert (shown["local_state"], shown["partner_state"]) == ("normal", "normal")
        assert shown["role"] == peer.real.value
        link = peer.events(LinkUp)[0]
        assert link.vendor_class.startswith(b"isc-4.4")  # the real dhcpd's vendor class
        # The real server's start-up updates were all acknowledged by us ...
        peer.pair.wait_for(
            lambda: peer.pair.omapi_states(peer.real.value).cur_unacked_updates == 0,
            timeout=SETTLE,
            what="the real server's unacked updates back to 0",
        )
        # ... and both sides hold the same lease states, the pool split as dhcpd splits it.
        peer.wait_synced()
        states = [peer.endpoint.lease(a).binding_state for a in peer.endpoint.addresses()]
        free, backup = states.count(BindingState.FREE), states.count(BindingState.BACKUP)
        assert abs(free - backup) <= 1 and free + backup == len(states)


def _client_lease(peer: OurPeer, address: str, now: int, mac: bytes) -> Lease:
    return Lease(
        address=address,
        starts=now,
        ends=now + 120,
        tstp=now + 180,
        cltt=now,
        binding_state=BindingState.ACTIVE,
        hardware_type=HardwareType.ETHERNET,
        hardware_address=mac,
        extras=LeaseExtras(uid=b"\x01" + mac),
    )


def test_our_bndupd_lands_in_the_real_lease_file_and_outside_the_pool_is_refused(
    with_our_peer,
):
    with with_our_peer(Role.SECONDARY) as peer:
        peer.wait_both(S.NORMAL, S.NORMAL)
        peer.wait_synced()
        # A lease our secondary may allocate: one of its BACKUP leases.
        with peer.driver._lock:
            address = next(
                a
                for a in peer.endpoint.addresses()
                if peer.endpoint.lease(a).binding_state is BindingState.BACKUP
            )
        now = int(time.time())
        mac = bytes.fromhex("02aabbcc0001")
        lease = _client_lease(peer, address, now, mac)
        peer.driver.call(lambda e, t: e.update_lease(lease, t))
        peer.wait(
            lambda e: any(a.address == address for a in peer.events(UpdateAcked)),
            f"BNDACK for {address}",
        )
        deadline = time.monotonic() + SETTLE
        real = None
        while time.monotonic() < deadline:
            real = peer.real_leases().leases.get(address)
            if real is not None and real.binding_state is BindingState.ACTIVE:
                break
            time.sleep(0.3)
        assert real is not None and real.binding_state is BindingState.ACTIVE
        assert (real.starts, real.ends) == (now, now + 120)
        assert real.cltt is None  # dhcpd uses a BNDUPD's CLTT for dueling only, never stores it
        assert real.hardware_address == mac and real.uid == b"\x01" + mac
        assert real.tsfp == now + 180  # potential-expiry becomes the receiver's tsfp

        outside = dataclasses.replace(lease, address="10.99.0.5")  # in the subnet, no pool
        peer.driver.call(lambda e, t: e.update_lease(outside, t))
        peer.wait(
            lambda e: any(r.address == "10.99.0.5" for r in peer.events(UpdateRefused)),
            "the refusal of a BNDUPD outside the pool",
        )
        [refusal] = [r for r in peer.events(UpdateRefused) if r.address == "10.99.0.5"]
        assert refusal.reason is RejectReason.ILLEGAL_IP_ADDR and not refusal.by_us


def test_poolreq_is_answered_as_dhcpfoctl_balance_predicts(with_our_peer):
    with with_our_peer(Role.SECONDARY) as peer:
        peer.wait_both(S.NORMAL, S.NORMAL)
        peer.wait_synced()
        # Misbalance the pool: our secondary gives most of its BACKUP leases back as FREE.
        peer.free_backups(keep=2)
        peer.wait_synced()
        primary = peer.pair.server("primary")
        db = read_leases(primary.leases_path)
        report = compute_balance(read_config(primary.conf_path), db, int(time.time()))
        [pool] = [p for p in report.pools if p.primary is not None]
        assert pool.primary is not None and pool.primary.exact
        predicted = pool.primary.next_min.moved
        assert predicted > 0
        peer.driver.call(lambda e, t: e.request_pool_balance(t))
        peer.wait(lambda e: bool(peer.events(PoolResponse)), "POOLRESP")
        [response] = peer.events(PoolResponse)
        assert response.count == predicted
        peer.wait_synced()
        with peer.driver._lock:
            states = [peer.endpoint.lease(a).binding_state for a in peer.endpoint.addresses()]
        assert states.count(BindingState.FREE) == pool.primary.next_min.free
        assert states.count(BindingState.BACKUP) == pool.primary.next_min.backup


def test_a_short_real_secondary_asks_us_and_we_answer_poolreq(with_our_peer):
    """Our primary empties the real secondary's BACKUP leases; its timer asks (POOLREQ)."""
    # The real server's balance timer runs every few seconds; ours is held back so that
    # the rebalance is the answer to the POOLREQ and not our own timer run.
    with with_our_peer(
        Role.PRIMARY, "max-balance 5; min-balance 2;", max_balance=3600, min_balance=3600
    ) as peer:
        peer.wait_both(S.NORMAL, S.NORMAL)
        peer.wait_synced()

        # BACKUP -> FREE and the prediction in one step of our endpoint: the real
        # secondary's timer asks (POOLREQ) within seconds, and its answer must not be
        # able to land between the move and the prediction.
        def give_and_predict(endpoint: FailoverEndpoint, now: float) -> BalanceReport:
            peer.give_backups(endpoint, now, keep=2)
            config = Config(
                path="", failover_peers={endpoint.peer.name: endpoint.peer}, pools=endpoint.pools
            )
            return compute_balance(config, endpoint.db, int(now))

        answered_before = len(peer.pool_responses_logged())
        report = peer.driver.call(give_and_predict)
        view = report.pools[0].primary
        assert view is not None and view.exact and view.next_min.moved > 0
        peer.wait(lambda e: e.received[MessageType.POOLREQ] > 0, "the real secondary's POOLREQ")
        peer.pair.wait_for(
            lambda: len(peer.pool_responses_logged()) > answered_before,
            timeout=SETTLE,
            what="the real secondary's 'pool response' log line",
        )
        logged = peer.pool_responses_logged()[answered_before]
        assert f"pool response: {view.next_min.moved} leases" in logged
        peer.wait_synced()


def test_cut_link_interrupts_both_and_heal_returns_to_normal(with_our_peer):
    with with_our_peer(Role.SECONDARY) as peer:
        peer.wait_both(S.NORMAL, S.NORMAL)
        peer.pair.cut_link()  # packets dropped silently: noticed by max-response-delay
        peer.wait_both(S.COMMUNICATIONS_INTERRUPTED, S.COMMUNICATIONS_INTERRUPTED)
        peer.pair.heal_link()
        peer.wait_both(S.NORMAL, S.NORMAL)
        peer.wait_synced()


def test_partner_down_while_cut_off_then_both_recover_to_normal(with_our_peer):
    with with_our_peer(Role.SECONDARY) as peer:
        peer.wait_both(S.NORMAL, S.NORMAL)
        peer.wait_synced()
        peer.pair.cut_link()
        peer.wait_both(S.COMMUNICATIONS_INTERRUPTED, S.COMMUNICATIONS_INTERRUPTED)
        peer.pair.omapi_set_local_state("primary", S.PARTNER_DOWN)
        peer.pair.wait_states(primary=S.PARTNER_DOWN, timeout=SETTLE)
        peer.pair.heal_link()
        peer.wait_both(S.NORMAL, S.NORMAL)
        ours = [(t.old, t.new) for t in peer.endpoint.machine.history]
        assert (S.COMMUNICATIONS_INTERRUPTED, S.POTENTIAL_CONFLICT) in ours
        assert (S.POTENTIAL_CONFLICT, S.NORMAL) in ours  # the secondary follows conflict-done
        # dhcpd's conflict resolution, as the real primary logged it.
        moves = [line for line in peer.pair.log_lines("primary") if "I move from" in line]
        expected = [
            "I move from partner-down to potential-conflict",
            "I move from potential-conflict to conflict-done",
            "I move from conflict-done to normal",
        ]
        assert [m for m in moves if any(m.endswith(e) for e in expected)] == [
            f"failover peer {peer.pair.relationship}: {e}" for e in expected
        ]
        peer.wait_synced()


def test_restart_into_a_partner_down_peer_recovers_through_recover_states(with_our_peer):
    """Our server "crashes" while normal; the real one takes over; ours restarts."""
    with with_our_peer(Role.SECONDARY) as peer:
        peer.wait_both(S.NORMAL, S.NORMAL)
        peer.wait_synced()
        peer.driver.stop()  # TCP closes: the real primary sees the link go at once
        peer.pair.wait_states(primary=S.COMMUNICATIONS_INTERRUPTED, timeout=SETTLE)
        peer.pair.omapi_set_local_state("primary", S.PARTNER_DOWN)
        peer.pair.wait_states(primary=S.PARTNER_DOWN, timeout=SETTLE)
        db = peer.endpoint.db
        assert db.failover[peer.pair.relationship].my_state is S.NORMAL  # what we persisted
        _record_exercised(peer.driver)
        with peer.restarted(db) as again:
            again.wait_both(S.NORMAL, S.NORMAL)
            ours = [(t.old, t.new) for t in again.endpoint.machine.history]
            # startup with saved normal meets a partner-down peer: recover, not conflict.
            assert (S.STARTUP, S.RECOVER) in ours
            assert (S.RECOVER_DONE, S.NORMAL) in ours
            assert {S.RECOVER_WAIT, S.RECOVER_DONE} & {new for _, new in ours}
            again.wait_synced()
