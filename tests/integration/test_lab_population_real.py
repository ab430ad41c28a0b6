"""The lab's DHCP codec and client population against a real dhcpd 4.4.3 (one server).

Topology (made per test, removed in ``finally``; ``P`` is a per-process prefix)::

    netns P-srv                                  netns P-cli
    v0 10.97.0.1/24   ======== veth ========     v0 10.97.0.2/24
    dhcpd -cf …  v0  (local-port 6767)               10.96.0.1/24  (the "relay", giaddr)
    route 10.96.0.0/24 via 10.97.0.2                 population socket 10.96.0.1:6767

How dhcpd addresses a relayed reply (``dhcp_reply`` in server/dhcp.c, 4.4.3): to
``giaddr`` on its own server port (``local-port``), except for a giaddr of 127.0.0.1,
which gets the client port (local-port + 1). So the population's socket must be bound to
giaddr:local-port, and giaddr must not be an address of dhcpd's namespace (dhcpd's own
socket holds that port there): it lives in a second namespace, which dhcpd reaches
through a route. dhcpd reads requests with a packet socket on the interface it was told
to serve (LPF), so they must arrive over the veth, not over the loopback of its own
namespace. The pool's subnet is the relay's (10.96.0.0/24), as for a real relay; the
interface's subnet is declared empty, which dhcpd needs to serve on it.

Two runs: plain (T1 from half the lease: renewals, unicast to the learned server address)
and with options 58 = 59 (T2 due with T1: rebinding REQUESTs to all servers). dhcpd's
replies go through our decoder, so ``malformed == 0`` also checks the codec on real bytes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dhcpfoctl.lab.population import client_macs, run_population
from dhcpfoctl.leases import read_leases
from dhcpfoctl.model import BindingState

from .netns import socket_in_namespace
from .realpair import DHCPD, perfdhcp_counts

pytestmark = pytest.mark.integration

SERVER_ADDRESS = "10.97.0.1"
CLIENT_SIDE = "10.97.0.2"
RELAY = "10.96.0.1"
PORT = 6767
LEASE_TIME = 6
CLIENTS = 20
SEED = 11
#: Bounded waits: dhcpd's start, and its lease file catching up with the releases.
START_TIMEOUT = 15.0
SETTLE_TIMEOUT = 20.0
POLL = 0.1

CONF = f"""\
authoritative;
ddns-update-style none;
ping-check false;
local-port {PORT};
default-lease-time {LEASE_TIME};
max-lease-time {LEASE_TIME};
subnet 10.97.0.0 netmask 255.255.255.0 {{
}}
subnet 10.96.0.0 netmask 255.255.255.0 {{
  range 10.96.0.100 10.96.0.199;
}}
"""
#: T1 = T2 (options 58/59): a client's renewal timer finds T2 due too, so it rebinds.
REBIND_NOW = """\
option dhcp-renewal-time 3;
option dhcp-rebinding-time 3;
"""


@dataclass
class Lab:
    server_ns: str
    client_ns: str
    leases_path: Path
    log_path: Path


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / POLL) + 1):
        if predicate():  # type: ignore[operator]
            return
        if time.monotonic() > deadline:
            break
        time.sleep(POLL)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def dhcpd_lab(
    require_real_dhcpd: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Lab]:
    prefix = f"dfl{os.getpid()}"
    lab = Lab(f"{prefix}-srv", f"{prefix}-cli", tmp_path / "dhcpd.leases", tmp_path / "dhcpd.log")
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(CONF + getattr(request, "param", ""))
    check = subprocess.run(
        [DHCPD, "-4", "-t", "-q", "-cf", str(conf)], capture_output=True, text=True, timeout=20
    )
    assert check.returncode == 0, check.stderr
    lab.leases_path.touch()
    process: subprocess.Popen[bytes] | None = None
    try:
        for namespace in (lab.server_ns, lab.client_ns):
            _ip("netns", "add", namespace)
            _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("link", "add", "v0", "netns", lab.server_ns, "type", "veth", "peer", "name", "v0",
            "netns", lab.client_ns)  # fmt: skip
        _ip("-n", lab.server_ns, "addr", "add", f"{SERVER_ADDRESS}/24", "dev", "v0")
        _ip("-n", lab.client_ns, "addr", "add", f"{CLIENT_SIDE}/24", "dev", "v0")
        _ip("-n", lab.client_ns, "addr", "add", f"{RELAY}/24", "dev", "v0")
        for namespace in (lab.server_ns, lab.client_ns):
            _ip("-n", namespace, "link", "set", "v0", "up")
        _ip("-n", lab.server_ns, "route", "add", "10.96.0.0/24", "via", CLIENT_SIDE)
        with lab.log_path.open("wb") as log:
            # `ip netns exec` execs dhcpd in place: the PID is dhcpd's own.
            process = subprocess.Popen(
                ["ip", "netns", "exec", lab.server_ns, DHCPD, "-4", "-f", "-d", "-cf", str(conf),
                 "-lf", str(lab.leases_path), "-pf", str(tmp_path / "dhcpd.pid"), "v0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip

        def started() -> bool:
            assert process is not None
            if process.poll() is not None:
                raise AssertionError(f"dhcpd exited at start:\n{lab.log_path.read_text()}")
            return "Server starting service" in lab.log_path.read_text()

        _wait(started, START_TIMEOUT, "dhcpd to start")
        yield lab
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for namespace in (lab.server_ns, lab.client_ns):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=20)


@pytest.mark.parametrize(
    ("dhcpd_lab", "way"), [("", "renew"), (REBIND_NOW, "rebind")], indirect=["dhcpd_lab"]
)
def test_population_binds_renews_and_releases_with_a_real_dhcpd(dhcpd_lab: Lab, way: str) -> None:
    sock = socket_in_namespace(dhcpd_lab.client_ns, socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((RELAY, PORT))
        stats = run_population(
            [(SERVER_ADDRESS, PORT)],
            clients=CLIENTS,
            rate=40.0,
            # T1 is 3 s (half the 6 s lease, or option 58): every client's comes within 8 s.
            duration=8.0,
            giaddr=RELAY,
            release_at_end=True,
            seed=SEED,
            sock=sock,
        )
    finally:
        sock.close()
    assert stats.acks == stats.started == CLIENTS, stats
    assert stats.offers >= CLIENTS
    if way == "renew":
        assert stats.renewals > 0, stats
    else:
        assert (stats.renewals, stats.rebinds > 0) == (0, True), stats
    assert stats.releases == CLIENTS
    assert (stats.naks, stats.malformed, stats.expiries) == (0, 0, 0), stats

    macs = set(client_macs(CLIENTS, SEED))

    def ours() -> list:
        db = read_leases(dhcpd_lab.leases_path)
        return [lease for lease in db.leases if lease.hardware_address in macs]

    def all_free() -> bool:
        leases = ours()
        return len(leases) == CLIENTS and all(
            lease.binding_state is BindingState.FREE for lease in leases
        )

    _wait(all_free, SETTLE_TIMEOUT, "dhcpd's lease file to show every lease released (free)")
    addresses = {lease.address for lease in ours()}
    assert len(addresses) == CLIENTS
    log = dhcpd_lab.log_path.read_text()
    assert log.count("DHCPRELEASE of ") == CLIENTS


@pytest.fixture
def perfdhcp() -> str:
    path = shutil.which("perfdhcp") or "/usr/sbin/perfdhcp"
    if not os.access(path, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail("perfdhcp (kea-admin) is not installed", pytrace=False)
        pytest.skip("perfdhcp (kea-admin) is not installed")
    return path


def test_perfdhcp_relayed_dora_against_a_real_dhcpd(dhcpd_lab: Lab, perfdhcp: str) -> None:
    """perfdhcp (Kea 2.2) as a relay agent on the giaddr, to dhcpd on a non-standard port.

    ``-l ADDRESS`` binds perfdhcp's socket to that address and puts it in giaddr (a unicast
    server makes perfdhcp act as a relay: hops=1); ``-L PORT`` is the port it binds and so
    the only one where it hears replies; ``-N PORT`` the server's port. dhcpd answers
    giaddr on its own ``local-port``, so ``-L`` must equal it here; without ``-L``/``-N``
    perfdhcp uses 67 for both. ``-R`` simulated clients, ``-r`` DORA/s for ``-p`` seconds
    (with ``-n`` it stops right after the last send and counts late answers as drops).
    """
    result = subprocess.run(
        ["ip", "netns", "exec", dhcpd_lab.client_ns, perfdhcp, "-4", "-l", RELAY, "-L",
         str(PORT), "-N", str(PORT), "-R", "20", "-r", "50", "-p", "3", SERVER_ADDRESS],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    output = result.stdout + result.stderr
    counts = perfdhcp_counts(output)
    assert counts["DISCOVER-OFFER"][0] > 0, output
    assert counts["DISCOVER-OFFER"][1] > 0, output
    assert counts["REQUEST-ACK"][1] > 0, output
    assert "Malformed packets: 0" in output, output
