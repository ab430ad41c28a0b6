"""The socket driver on loopback: two dhcpfoctl endpoints that listen and connect at once.

Both sides connect out and accept, so the accept and the outgoing connect often complete in
the same select() round; the driver must keep exactly one link and reach normal/normal.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from failover_harness import configs, endpoint

from dhcpfoctl.failover.driver import EndpointDriver
from dhcpfoctl.model import FailoverState, Role

LOOPBACK = "127.0.0.1"


def _listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    sock.listen(4)
    return sock


@pytest.fixture
def drivers() -> Iterator[dict[Role, EndpointDriver]]:
    primary_config, secondary_config = configs()
    listeners = {Role.PRIMARY: _listener(), Role.SECONDARY: _listener()}
    ports = {role: sock.getsockname()[1] for role, sock in listeners.items()}
    now = time.time()
    made = {
        role: EndpointDriver(
            endpoint(config, now),
            listener=listeners[role],
            connect_to=(LOOPBACK, ports[role.other]),
            partner_address=LOOPBACK,
        )
        for role, config in ((Role.PRIMARY, primary_config), (Role.SECONDARY, secondary_config))
    }
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
