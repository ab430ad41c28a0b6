"""Endurance from new bindings on a real dhcpd 4.4.3 pair (issue 10).

A stable population renewing often adds no new binding, so no endurance finding; N new
clients add N. The stable clients bind before the primary's (start-up) rewrite, so the
follower's first run, which starts from the journal dhcpd appended since, holds none of them.
The judge is what ``audit`` does between two cron runs, in process: the
primary's lease file followed by :class:`dhcpfoctl.checks.history.LeaseFollower` (only what
dhcpd appended is read), judged by :func:`dhcpfoctl.checks.audit.evaluate`.

Time is compressed, and the test says where:

* leases last ``LEASE_TIME`` = 6 s, so every client renews every 3 s (T1): the ~16 s of
  the stable phase hold what "renewing every minute for several minutes" means for a real
  network (each client renews about 5 times);
* the follower's clock runs ``DILATION`` times faster than the wall clock from the first
  read: an endurance estimate needs 10 minutes of history (balance.MIN_SPAN), which those
  16 s then span, so the estimate is made and judged rather than skipped for want of
  history. The lease records keep their real times.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dhcpfoctl.balance import compute_balance
from dhcpfoctl.checks.audit import Thresholds, evaluate
from dhcpfoctl.checks.history import LeaseFollower
from dhcpfoctl.checks.inputs import Inputs
from dhcpfoctl.conf import read_config
from dhcpfoctl.lab.population import run_population
from dhcpfoctl.model import FailoverState, Role

from .netns import socket_in_namespace
from .realpair import LAN_NETWORK, ROLES, PairConfig, RealPair

pytestmark = pytest.mark.integration

LEASE_TIME = 6
DILATION = 50  # 16 s of renewals = 13 min of history for the estimate
STABLE = 30
NEW = 20
SERVER_PORT = 67
SETTLE = 20.0
#: The populations run until the test stops them; this only bounds them. The stable one
#: must outlive every wait of the test (a slow start and restart on a loaded machine took
#: it past an earlier 60 s bound, after which its leases expired and nothing renewed them).
POPULATION_MAX = 300.0


def _relay(pair: RealPair, name: str, host: int) -> tuple[socket.socket, str]:
    address = str(LAN_NETWORK[host])
    namespace = pair.add_lan_host(name, address=f"{address}/{LAN_NETWORK.prefixlen}")
    sock = socket_in_namespace(namespace, socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, SERVER_PORT))
    return sock, address


def _population(
    pair: RealPair, sock: socket.socket, relay: str, clients: int, seed: int, stop: threading.Event
) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    servers = [(pair.server(role).lan_address, SERVER_PORT) for role in ROLES]

    def run() -> None:
        try:
            result["stats"] = run_population(
                servers, clients=clients, rate=float(clients), duration=POPULATION_MAX,
                giaddr=relay,
                release_at_end=False, seed=seed, sock=sock, until=stop.is_set,
            )  # fmt: skip
        except BaseException as exc:  # reported by the test thread
            result["error"] = exc

    thread = threading.Thread(target=run, name=f"population-{seed}", daemon=True)
    thread.start()
    return thread, result


def test_renewals_are_no_new_bindings_and_new_clients_are_counted(
    make_pair: Callable[[PairConfig], RealPair],
) -> None:
    pair = make_pair(PairConfig(default_lease_time=LEASE_TIME, max_lease_time=LEASE_TIME))
    config = read_config(pair.primary.conf_path)
    leases = str(pair.primary.leases_path)
    follower = LeaseFollower(use_state=False)
    started = time.time()

    def now() -> int:
        return int(started + (time.time() - started) * DILATION)

    def audit() -> tuple[int, Any]:
        """One cron run on the primary's file: new bindings so far, the audit's result."""
        at = now()
        followed = follower.read(leases, config, at)
        report = compute_balance(config, follower.whole(leases), at, history=followed.history)
        result = evaluate(Inputs(config, follower.whole(leases), report), Thresholds())
        rate = followed.history.rate([p.label for p in config.pools], 86400, at)
        return rate.bindings, (report, result)

    stop = threading.Event()
    stable_sock, stable_relay = _relay(pair, "stable", 3)
    new_sock, new_relay = _relay(pair, "arrive", 4)
    threads = []
    try:
        thread, stable = _population(pair, stable_sock, stable_relay, STABLE, 21, stop)
        threads.append(thread)

        def bound_and_unacked() -> tuple[int, list[int | None]]:
            """Active leases in the primary's file, and each server's unacked updates."""
            assert "error" not in stable, stable.get("error")
            views = [pair.omapi_states(role) for role in ROLES]
            active = sum(
                1
                for lease in follower_probe(leases)
                if lease.binding_state is not None and lease.binding_state.keyword == "active"
            )
            return active, [v.cur_unacked_updates if v is not None else None for v in views]

        def all_bound_and_acked() -> bool:
            active, unacked = bound_and_unacked()
            return unacked == [0, 0] and active >= STABLE

        def seen() -> str:
            active, unacked = bound_and_unacked()
            return f"{active} active of {STABLE}, unacked updates {unacked}"

        pair.wait_for(
            all_bound_and_acked,
            SETTLE,
            interval=0.5,
            what="the stable clients bound",
            describe=seen,
        )
        # A population that bound before dhcpd's last rewrite, as on a network that has run
        # for a while: the first run takes the journal appended since then as its history,
        # and the primary's start-up rewrite makes these bindings its snapshot.
        pair.restart("primary")
        pair.wait_states(primary=FailoverState.NORMAL, secondary=FailoverState.NORMAL)
        pair.wait_for(
            all_bound_and_acked,
            2 * SETTLE,  # the restarted primary first catches up with its partner
            interval=0.5,
            what="the stable clients again",
            describe=seen,
        )
        baseline, _ = audit()  # the first run: renewals since the rewrite are no bindings
        assert baseline == 0
        # The stable phase: about 16 s of renewals (every client every 3 s), a run each 2 s.
        for _ in range(8):
            time.sleep(2)
            renewed, (report, result) = audit()
        assert renewed <= 1, "renewals by the same clients counted as new bindings"
        (rel,) = report.relationships
        primary = rel.endurance[Role.PRIMARY]
        assert primary.enough_history, primary.reason
        assert primary.interrupted is None  # no drain: does not run out
        assert [f for f in result.findings if f.code == "endurance"] == []

        # NEW clients arrive.
        thread, arriving = _population(pair, new_sock, new_relay, NEW, 22, stop)
        threads.append(thread)

        def arrived() -> int | None:
            assert "error" not in arriving, arriving.get("error")
            count, _ = audit()
            return count if count - renewed >= NEW * 0.9 else None

        pair.wait_for(arrived, SETTLE, interval=1.0, what=f"{NEW} new bindings counted")
        time.sleep(1.5)  # renewals of everyone meanwhile: nothing more may be counted
        total, _ = audit()
        assert abs((total - renewed) - NEW) <= NEW * 0.1, (total, renewed)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        stable_sock.close()
        new_sock.close()
    assert stable["stats"].acks == STABLE and arriving["stats"].acks == NEW
    assert pair.omapi_states("primary").local_state == FailoverState.NORMAL  # type: ignore[union-attr]


def follower_probe(path: str) -> Any:
    """The file's current leases (read apart from the follower, for the set-up wait)."""
    from dhcpfoctl.leases import read_leases

    return read_leases(path).leases
