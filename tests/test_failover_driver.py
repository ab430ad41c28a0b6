"""The socket driver on loopback: two dhcpfoctl endpoints that listen and connect at once.

Both sides connect out and accept, so the accept and the outgoing connect often complete in
the same select() round; the driver must keep exactly one link and reach normal/normal.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
from failover_harness import configs, endpoint

from dhcpfoctl.failover.connection import Event, LeaseUpdated
from dhcpfoctl.failover.driver import EndpointDriver
from dhcpfoctl.failover.wire import MessageType
from dhcpfoctl.model import FailoverState, Role

LOOPBACK = "127.0.0.1"


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    sock.listen(4)
    return sock


@pytest.fixture
def hooks() -> dict[Role, list[tuple[Event, int, int]]]:
    """What each side's ``before_send`` saw: each event, the partner's BNDACKs received by
    then, and the BNDUPDs this side had received by then."""
    return {Role.PRIMARY: [], Role.SECONDARY: []}


@pytest.fixture
def drivers(hooks) -> Iterator[dict[Role, EndpointDriver]]:
    primary_config, secondary_config = configs()
    made: dict[Role, EndpointDriver] = {}

    def before_send(role: Role) -> Callable[[float, list[Event]], None]:
        def persist(now: float, events: list[Event]) -> None:
            # Read without the partner's lock: a counter only grows, and a BNDACK that
            # left too early would already be counted there.
            acked = made[role.other].endpoint.received[MessageType.BNDACK]
            updates = made[role].endpoint.received[MessageType.BNDUPD]
            hooks[role].extend((event, acked, updates) for event in events)

        return persist

    listeners = {Role.PRIMARY: _listener(), Role.SECONDARY: _listener()}
    ports = {role: sock.getsockname()[1] for role, sock in listeners.items()}
    now = time.time()
    for role, config in ((Role.PRIMARY, primary_config), (Role.SECONDARY, secondary_config)):
        made[role] = EndpointDriver(
            endpoint(config, now),
            listener=listeners[role],
            connect_to=(LOOPBACK, ports[role.other]),
            partner_address=LOOPBACK,
            before_send=before_send(role),
        )
    for driver in made.values():
        driver.start()
    try:
        yield made
    finally:
        for driver in made.values():
            driver.stop()


def test_two_endpoints_on_loopback_reach_normal_over_one_link(drivers) -> None:
    for role, driver in drivers.items():
        assert driver.wait_for(lambda e: e.state is FailoverState.NORMAL, 30), role
    for driver in drivers.values():
        assert driver.wait_for(lambda e: not e.queued and not e.unacked, 30)
        assert driver._thread.is_alive()  # no exception ended the loop
    primary, secondary = (drivers[Role.PRIMARY].endpoint, drivers[Role.SECONDARY].endpoint)
    with drivers[Role.PRIMARY]._lock, drivers[Role.SECONDARY]._lock:
        for address in primary.addresses():
            assert primary.lease(address).binding_state is secondary.lease(address).binding_state


def test_before_send_sees_each_update_before_its_bndack_leaves(drivers, hooks) -> None:
    for driver in drivers.values():
        assert driver.wait_for(lambda e: e.state is FailoverState.NORMAL, 30)
        assert driver.wait_for(lambda e: not e.queued and not e.unacked, 30)
    received = [
        (acked, updates)
        for event, acked, updates in hooks[Role.SECONDARY]
        if isinstance(event, LeaseUpdated) and event.by_partner
    ]
    # The primary's balance run gives the secondary its BACKUP leases once both are normal.
    # When an update reaches the hook, the primary cannot yet hold the BNDACK for it: fewer
    # acknowledgements than updates received so far, the current one included.
    assert received
    assert all(acked < updates for acked, updates in received)
    assert [e for e, _, _ in hooks[Role.PRIMARY]] == [e for _, e in drivers[Role.PRIMARY].events]


def test_a_call_wakes_the_loop_only_when_it_has_work_before_its_planned_wake() -> None:
    """No loop thread here: the test plays the loop's side (when it would wake, if asleep)."""
    primary_config, _ = configs()
    now = time.time()
    linked = endpoint(primary_config, now)
    linked.connection_made(now)  # connected: it wants no connect, its deadlines are the link's
    driver = EndpointDriver(linked, listener=None, connect_to=None, clock=lambda: now)
    driver._wake_r.setblocking(False)
    deadline = linked.next_deadline()
    assert deadline is not None

    def woken() -> bool:
        try:
            return bool(driver._wake_r.recv(64))
        except BlockingIOError:
            return False

    try:
        # Awake (it plans again before sleeping); asleep until that deadline; asleep past it.
        for asleep_until, expected in ((None, False), (deadline, False), (deadline + 1, True)):
            driver._asleep_until = asleep_until
            driver.call(lambda _endpoint, _now: None)
            assert woken() is expected, asleep_until
    finally:
        for sock in (driver._wake_r, driver._wake_w):
            sock.close()
        driver._selector.close()
