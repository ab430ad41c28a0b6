"""``dhcpfoctl watch --act`` on a real dhcpd 4.4.3 pair: one true death, one partition.

The watcher is the real command in a subprocess on the pair's profile (OMAPI, failover
ports, the survivor's lease file); DHCP clients are the lab population relayed on the
pair's LAN, so that the survivor serves the dead partner's clients (condition 3). The DHCP
probe is off in the watcher (it runs outside the LAN's namespaces); the same probe is made
from a host on the LAN, before the kill (answered) and after it (silent).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dhcpfoctl.lab.population import run_population
from dhcpfoctl.model import FailoverState
from dhcpfoctl.watch.history import read_journal
from dhcpfoctl.watch.policy import ProbeOutcome, ProbeResult
from dhcpfoctl.watch.probes import DhcpProbe, probe_dhcp

from .conftest import restore_normal
from .netns import socket_in_namespace
from .realpair import LAB_KEY, LAN_NETWORK, PairConfig, RealPair
from .test_lab_clients_real import RELAY, _relay_socket, _servers

pytestmark = pytest.mark.integration

S = FailoverState
T = 5
#: A relay host of the LAN for the DHCP probe (the clients' relay is RELAY).
PROBER = str(LAN_NETWORK[4])


@pytest.fixture(scope="module")
def own_pair(
    require_real_dhcpd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealPair]:
    """A pair of this module's own: its servers' logs (which other modules read) and lease
    files take the partner-down and the clients of these tests, not the shared pair's."""
    config = PairConfig(secondary_key=LAB_KEY)
    with RealPair(config, workdir=tmp_path_factory.mktemp("watch-pair")) as pair:
        yield pair


@contextmanager
def clients(pair: RealPair) -> Iterator[None]:
    """New clients arriving all along (a few per second), relayed to both servers."""
    sock = _relay_socket(pair)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_population,
        args=(_servers(pair),),
        kwargs={"clients": 100, "rate": 5.0, "duration": 60.0, "giaddr": RELAY,
                "release_at_end": False, "seed": 11, "sock": sock, "until": stop.is_set},
        daemon=True,
    )  # fmt: skip
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(20)
        sock.close()


@contextmanager
def watcher(pair: RealPair, tmp_path: Path) -> Iterator[Path]:
    profile = pair.write_profile(tmp_path / "config.toml", name="pair")
    journal = tmp_path / "watch.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "dhcpfoctl", "watch", "--act", "--interval", "1",
         "--interrupted-for", f"{T}s", "--silent-for", "1s", "--stuck-after", "3s",
         "--timeout", "1", "--retries", "2", "--no-dhcp-probe", "--journal", str(journal)],
        env=dict(os.environ, DHCPFOCTL_CONFIG=str(profile)),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        pair.wait_for(
            lambda: any(r["kind"] == "transition" for r in read_journal(journal)),
            15,
            what="the watcher's first poll",
        )
        yield journal
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=15)
        assert process.returncode == 0, err
        assert any(r["kind"] == "stop" for r in read_journal(journal))


def dhcp_probe(pair: RealPair, role: str) -> ProbeResult:
    """The watcher's DHCP probe of ``role``'s dhcpd from a relay host of the pair's LAN
    (dhcpd answers an INFORM at ciaddr, port 68, relayed or not)."""
    namespace = f"{pair.prefix}-prober"
    if (
        namespace
        not in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    ):
        pair.add_lan_host("prober", address=f"{PROBER}/{LAN_NETWORK.prefixlen}")
    sock = socket_in_namespace(namespace, socket.AF_INET, socket.SOCK_DGRAM)
    target = (pair.server(role).lan_address, 67)
    return probe_dhcp(DhcpProbe(target, (PROBER, 68), PROBER, timeout=1, retries=2), sock)


def performed(journal: Path) -> list[dict]:
    return [
        r for r in read_journal(journal) if r["kind"] == "outcome" and r["result"] == "performed"
    ]


def test_a_killed_dhcpd_is_taken_over_within_t_plus_10_s(
    own_pair: RealPair, tmp_path: Path
) -> None:
    pair = own_pair
    restore_normal(pair)
    try:
        with clients(pair), watcher(pair, tmp_path) as journal:
            time.sleep(2)  # clients of both servers bound
            assert dhcp_probe(pair, "secondary").outcome is ProbeOutcome.ANSWERED
            killed = time.time()
            pair.kill("secondary", signal.SIGKILL)
            pair.wait_for(lambda: bool(performed(journal)), T + 15, what="partner-down")
            (done,) = performed(journal)
            print(f"time to act after kill -9: {done['t'] - killed:.2f} s (T = {T} s)")
            assert done["t"] - killed <= T + 10
            decision = next(r for r in read_journal(journal) if r["kind"] == "decision")
            assert decision["decision"] == "act" and decision["unanswered"]["total"] >= 1
            assert {p["outcome"] for p in decision["probes"]} <= {"refused", "silent"}
            assert dhcp_probe(pair, "secondary").outcome is ProbeOutcome.SILENT
        view = pair.omapi_states("primary")
        assert view is not None and view.local_state == S.PARTNER_DOWN  # read independently
        assert any("to partner-down" in line for line in pair.log_lines("primary"))
    finally:
        restore_normal(pair)


def test_a_cut_link_gets_a_stuck_link_alert_and_no_partner_down(
    own_pair: RealPair, tmp_path: Path
) -> None:
    pair = own_pair
    restore_normal(pair)
    try:
        with clients(pair), watcher(pair, tmp_path) as journal:
            pair.cut_link()
            cut = time.time()
            pair.wait_for(
                lambda: any(r["kind"] == "alert" and r["code"] == "stuck-link"
                            for r in read_journal(journal)),
                T + 15,
                what="the stuck-link alert",
            )  # fmt: skip
            time.sleep(max(0.0, cut + T + 3 - time.time()))  # past T: it must still not act
            assert performed(journal) == []
            assert not any(r["kind"] == "intent" for r in read_journal(journal))
        for role in ("primary", "secondary"):
            view = pair.omapi_states(role)
            assert view is not None and view.local_state == S.COMMUNICATIONS_INTERRUPTED
    finally:
        restore_normal(pair)
