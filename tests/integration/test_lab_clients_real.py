"""Real DHCP clients against the lab pair: dhclient, perfdhcp, a mixed pair, a kill -9.

Pairs from realpair.py: ``PairConfig(lab="both")`` runs both roles as lab servers,
``lab=Role.SECONDARY`` pairs a lab server with a real dhcpd 4.4.3. Clients live in extra
namespaces on the pair's LAN bridge (:meth:`RealPair.add_lan_host`):

* a bare host per ``dhclient`` (Debian isc-dhcp-client), broadcasting from 0.0.0.0:68
  with its own lease, pid and script files (the script only touches its namespace);
* a "relay" host at ``RELAY``: the population's socket (or perfdhcp's) is bound there and
  names it as giaddr; both servers answer giaddr on their server port 67, as dhcpd does.

The judges are the servers' own lease files (``dhcpfoctl.leases.read_leases``), their
logs (dhcpd's wording), ``dhcpd -T`` and, for the kill test, every DHCPACK the clients
received (recorded by a socket that decodes what the population reads).
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dhcpfoctl.lab.dhcp import DhcpDecodeError, MessageType, decode
from dhcpfoctl.lab.population import client_macs, run_population
from dhcpfoctl.leases import read_leases
from dhcpfoctl.model import BindingState, FailoverState, Lease, Role

from .netns import socket_in_namespace
from .realpair import CLI, DHCPD, LAN_NETWORK, ROLES, PairConfig, RealPair, perfdhcp_counts

pytestmark = pytest.mark.integration

S = FailoverState
B = BindingState
RELAY = str(LAN_NETWORK[3])
SERVER_PORT = 67
#: Bounded waits; a fresh pair syncs and balances well within these on the 2-core VM.
SETTLE = 30.0
RECOVER = 90.0
DHCLIENT = "/sbin/dhclient"
#: dhclient-script for a client namespace: logs each event and sets the address on the
#: namespace's own interface only (never resolv.conf, routes or the hostname). dhclient
#: scrubs the environment, so the log path comes with ``-e LAB_CLIENT_LOG=...``.
DHCLIENT_SCRIPT = """\
#!/bin/sh
echo "$interface $reason ip=${new_ip_address:-}" >>"$LAB_CLIENT_LOG"
case "$reason" in
  PREINIT) ip link set dev "$interface" up ;;
  BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr replace "$new_ip_address/${new_subnet_mask:-255.255.255.0}" dev "$interface" ;;
  EXPIRE|FAIL|RELEASE|STOP) ip -4 addr flush dev "$interface" ;;
esac
exit 0
"""
DHCLIENT_CONF = """\
timeout 30;
retry 5;
initial-interval 1;
backoff-cutoff 2;
request subnet-mask, dhcp-lease-time, dhcp-server-identifier,
        dhcp-renewal-time, dhcp-rebinding-time;
"""


def _mac(raw: bytes) -> str:
    return ":".join(f"{byte:02x}" for byte in raw)


def _leases(path: Path) -> dict[str, Lease]:
    return {lease.address: lease for lease in read_leases(str(path)).leases}


def _bindings(leases: dict[str, Lease]) -> dict[str, tuple[BindingState | None, bytes | None]]:
    return {a: (lease.binding_state, lease.hardware_address) for a, lease in leases.items()}


def _disagreement(pair: RealPair) -> list[str]:
    """Addresses whose (binding state, client) differ between the two files."""
    files = {role: _bindings(_leases(pair.server(role).leases_path)) for role in ROLES}
    primary, secondary = files["primary"], files["secondary"]
    return [
        f"{address}: primary {primary.get(address)} secondary {secondary.get(address)}"
        for address in sorted(set(primary) | set(secondary))
        if primary.get(address) != secondary.get(address)
    ][:10]


def _server_of(pair: RealPair) -> dict[str, Role]:
    return {pair.server(role).lan_address: Role(role) for role in ROLES}


@dataclass(frozen=True)
class Ack:
    at: float  # when the client read it (the server had fsynced its journal before)
    address: str
    mac: bytes
    lease_time: int
    server: str  # the server identifier: whose ACK


class AckRecorder(socket.socket):
    """A UDP socket that also records every DHCPACK read through it (any thread)."""

    acks: list[Ack]

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        data, source = super().recvfrom(bufsize, flags)
        try:
            packet = decode(data)
        except DhcpDecodeError:
            return data, source
        if packet.message_type is MessageType.ACK and packet.yiaddr != "0.0.0.0":
            lease_time = packet.lease_time or 0
            server = packet.server_identifier or ""
            self.acks.append(Ack(time.time(), packet.yiaddr, packet.chaddr, lease_time, server))
        return data, source


def _relay_socket(pair: RealPair) -> AckRecorder:
    """The population's socket at the relay host: RELAY:67, recording ACKs."""
    namespace = f"{pair.prefix}-relay"
    if namespace not in _run_out("ip", "netns", "list"):
        pair.add_lan_host("relay", address=f"{RELAY}/{LAN_NETWORK.prefixlen}")
    plain = socket_in_namespace(namespace, socket.AF_INET, socket.SOCK_DGRAM)
    sock = AckRecorder(plain.family, plain.type, plain.proto, fileno=plain.detach())
    sock.acks = []
    sock.bind((RELAY, SERVER_PORT))
    return sock


def _run_out(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=20, check=True).stdout


def _servers(pair: RealPair) -> list[tuple[str, int]]:
    return [(pair.server(role).lan_address, SERVER_PORT) for role in ROLES]


def _dhcpd_accepts(leases: Path, conf: Path) -> None:
    check = subprocess.run(
        [DHCPD, "-4", "-T", "-q", "-cf", str(conf), "-lf", str(leases)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert check.returncode == 0, f"dhcpd -T rejects {leases}:\n{check.stderr}"


@pytest.fixture(scope="module")
def lab_pair(
    require_real_dhcpd: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RealPair]:
    """A lab-lab pair: first leases are MCLT (10 s) long, so dhclient renews within 5 s."""
    config = PairConfig(lab="both", default_lease_time=60, max_lease_time=60)
    with RealPair(config, workdir=tmp_path_factory.mktemp("lab-lab")) as pair:
        yield pair


def _has_backups(pair: RealPair) -> bool:
    leases = _leases(pair.secondary.leases_path)
    return any(lease.binding_state is B.BACKUP for lease in leases.values())


# ---- 2. dhclient -------------------------------------------------------------------------


def test_dhclient_gets_renews_and_releases_a_lease_from_the_lab_pair(
    lab_pair: RealPair, tmp_path: Path
) -> None:
    pair = lab_pair
    pair.wait_for(lambda: _has_backups(pair), SETTLE, what="the first pool balance")
    mac = "02:99:00:01:00:01"
    namespace = pair.add_lan_host("c1", mac=mac)
    (tmp_path / "dhclient.conf").write_text(DHCLIENT_CONF)
    script = tmp_path / "dhclient-script"
    script.write_text(DHCLIENT_SCRIPT)
    script.chmod(0o755)
    files = {name: tmp_path / name for name in ("lease", "pid", "script.log", "out")}
    base = [
        "ip", "netns", "exec", namespace, DHCLIENT, "-4", "-cf", str(tmp_path / "dhclient.conf"),
        "-sf", str(script), "-e", f"LAB_CLIENT_LOG={files['script.log']}",
        "-lf", str(files["lease"]), "-pf", str(files["pid"]),
    ]  # fmt: skip
    with files["out"].open("wb") as out:
        # -d: stays in the foreground, so the PID is ours (`ip netns exec` execs in place).
        client = subprocess.Popen(
            [*base, "-d", "eth0"], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True,
        )  # fmt: skip
    try:

        def script_saw(reason: str) -> bool:
            if client.poll() is not None:
                raise AssertionError(f"dhclient exited:\n{files['out'].read_text()}")
            log = files["script.log"].read_text() if files["script.log"].exists() else ""
            return f" {reason} " in log

        pair.wait_for(lambda: script_saw("BOUND"), SETTLE, what="dhclient BOUND")
        # The first lease is capped at MCLT (10 s): T1 comes 5 s later, unicast to the server.
        pair.wait_for(lambda: script_saw("RENEW"), SETTLE, what="dhclient RENEW")
        lease_text = files["lease"].read_text()
        address = lease_text.rsplit("fixed-address ", 1)[1].split(";")[0]
        server_id = lease_text.rsplit("dhcp-server-identifier ", 1)[1].split(";")[0]
        server = _server_of(pair)[server_id]
        raw_mac = bytes.fromhex(mac.replace(":", ""))

        def both_files_bind_it() -> bool:
            return all(
                _bindings(_leases(pair.server(role).leases_path)).get(address)
                == (B.ACTIVE, raw_mac)
                for role in ROLES
            )

        pair.wait_for(both_files_bind_it, SETTLE, what=f"{address} active for {mac} in both files")
        release = subprocess.run(
            [*base, "-r", "eth0"], capture_output=True, text=True, timeout=30
        )  # -r: DHCPRELEASE, and stops the running dhclient named by the pid file
        assert release.returncode == 0, release.stderr
        client.wait(10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(5)

    def released_everywhere() -> bool:
        return all(
            _leases(pair.server(role).leases_path)[address].binding_state
            in (B.FREE, B.BACKUP, B.RELEASED)
            for role in ROLES
        )

    pair.wait_for(released_everywhere, SETTLE, what=f"{address} released in both files")
    log = pair.log_lines(server)
    via = pair.server(server).lan_address
    for expected in (
        f"DHCPDISCOVER from {mac} via {via}",
        f"DHCPOFFER on {address} to {mac} via {via}",
        f"DHCPREQUEST for {address} ({server_id}) from {mac} via {via}",
        f"DHCPRELEASE of {address} from {mac} via {via}",
    ):
        assert any(expected in line for line in log), expected
    acks = [line for line in log if f"DHCPACK on {address} to {mac}" in line]
    assert len(acks) >= 2, "the first ACK and the renewal's"
    renewals = [line for line in log if f"DHCPREQUEST for {address} from {mac}" in line]
    assert renewals, "a RENEWING request carries no server identifier nor option 50"


# ---- 3. perfdhcp -------------------------------------------------------------------------


@pytest.fixture
def perfdhcp() -> str:
    path = shutil.which("perfdhcp") or "/usr/sbin/perfdhcp"
    assert Path(path).exists(), "perfdhcp (kea-admin) is not installed"
    return path


def test_perfdhcp_dora_load_against_the_lab_pair_is_answered_in_full(
    lab_pair: RealPair, perfdhcp: str
) -> None:
    """perfdhcp broadcasts from the LAN (``-l eth0``) and names its address as giaddr:
    both lab servers hear every packet, the load-balance hash picks the one that answers,
    and the answer goes back to perfdhcp's address. 20 DORA/s from 30 clients is a tenth
    of what the lab serves on the 2-core VM. Duplicate ACKs (the other server's, for a
    client it already knows: dhcpd does not check the server identifier either) count as
    perfdhcp "orphans", not drops."""
    pair = lab_pair
    namespace = pair.add_lan_host("perf", address=f"{LAN_NETWORK[4]}/{LAN_NETWORK.prefixlen}")
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, perfdhcp, "-4", "-l", "eth0", "-R", "30", "-r", "20",
         "-p", "4", "-W", "2000000", "all"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = perfdhcp_counts(output)
    sent, received = counts["DISCOVER-OFFER"]
    assert sent > 0 and received == sent, output
    sent, received = counts["REQUEST-ACK"]
    assert sent > 0 and received == sent, output
    assert "Malformed packets: 0" in output, output
    for role in ROLES:
        assert any("DHCPACK on" in line for line in pair.log_lines(role)), f"{role} served"


# ---- 5. kill -9 under load ---------------------------------------------------------------


def test_kill_9_under_client_load_loses_no_acknowledged_lease(
    lab_pair: RealPair, tmp_path: Path
) -> None:
    pair = lab_pair
    victim = Role.SECONDARY
    victim_id = pair.server(victim).lan_address
    sock = _relay_socket(pair)
    stop = threading.Event()
    result: dict[str, Any] = {}

    def load() -> None:
        try:
            result["stats"] = run_population(
                _servers(pair), clients=40, rate=40.0, duration=60.0, giaddr=RELAY,
                release_at_end=False, seed=5, sock=sock, until=stop.is_set,
            )  # fmt: skip
        except BaseException as exc:  # reported by the test thread
            result["error"] = exc

    thread = threading.Thread(target=load, name="population", daemon=True)
    thread.start()
    try:

        def victim_acked() -> int:
            return sum(ack.server == victim_id for ack in sock.acks) >= 10

        pair.wait_for(victim_acked, SETTLE, what="the secondary to ACK under load")
        pair.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        pair.wait_for(lambda: len(sock.acks) >= 60, SETTLE, what="load during the outage")
    finally:
        stop.set()
        thread.join(30)
        sock.close()
    assert "error" not in result, result.get("error")
    acked = [ack for ack in sock.acks if ack.server == victim_id and ack.at <= killed_at]
    survived = _leases(pair.server(victim).leases_path)  # as the kill left it
    _check_acks_kept(acked, survived, "after kill -9")
    pair.start(victim)  # reads and rewrites its journal
    _check_acks_kept(acked, _leases(pair.server(victim).leases_path), "after restart")
    pair.wait_states(primary=S.NORMAL, secondary=S.NORMAL, timeout=RECOVER)

    # One instant of both files (servers stopped for the copy): an address active in both
    # is bound to the same client in both.
    snapshot = pair.snapshot(tmp_path / "after")
    files = {role: _leases(snapshot.files[role].leases) for role in ROLES}
    for address, lease in files["primary"].items():
        other = files["secondary"].get(address)
        if lease.binding_state is B.ACTIVE and other and other.binding_state is B.ACTIVE:
            assert lease.hardware_address == other.hardware_address, f"{address} bound twice"
    _check_no_overlap(sock.acks)
    for role in ROLES:
        _dhcpd_accepts(pair.server(role).leases_path, pair.server(role).conf_path)


def _check_acks_kept(acked: list[Ack], leases: dict[str, Lease], when: str) -> None:
    """The last ACK of each address is in the file: same client, ending no earlier."""
    last: dict[str, Ack] = {}
    for ack in acked:
        last[ack.address] = ack
    assert last, "the victim acknowledged leases before it was killed"
    for address, ack in last.items():
        lease = leases.get(address)
        assert lease is not None, f"{when}: {address} is gone"
        assert lease.hardware_address == ack.mac, f"{when}: {address} lost {_mac(ack.mac)}"
        # Still bound, unless it has simply run out since (it keeps its client when it does).
        if lease.ends is not None and lease.ends > time.time() + 1:
            assert lease.binding_state is B.ACTIVE, f"{when}: {address} {lease.binding_state}"
        # ends = the server's now + lease time; the client read the ACK after that now.
        assert lease.ends is not None and lease.ends >= int(ack.at) - 1 + ack.lease_time - 2, (
            f"{when}: {address} ends {lease.ends}, ACKed at {ack.at:.1f} for {ack.lease_time}s"
        )


def _check_no_overlap(acks: list[Ack]) -> None:
    """No address was ever ACKed to two clients for overlapping times."""
    by_address: dict[str, list[Ack]] = {}
    for ack in acks:
        by_address.setdefault(ack.address, []).append(ack)
    for address, seen in by_address.items():
        for first in seen:
            for other in seen:
                if other.mac != first.mac and first.at <= other.at:
                    assert other.at >= first.at + first.lease_time, (
                        f"{address}: {_mac(first.mac)} and {_mac(other.mac)} overlap"
                    )


# ---- 4. mixed pair -----------------------------------------------------------------------


def test_mixed_pair_serves_a_relayed_population_from_both_servers_and_agrees(
    make_pair: Callable[[PairConfig], RealPair],
) -> None:
    pair = make_pair(PairConfig(lab=Role.SECONDARY))  # dhcpd primary, lab secondary
    pair.wait_for(lambda: _has_backups(pair), SETTLE, what="the primary's first pool balance")
    clients = 30
    sock = _relay_socket(pair)
    try:
        # 8 s: every client binds (first lease MCLT = 10 s) and renews at T1 = 5 s into a
        # full-length lease, so nothing expires while the files settle.
        stats = run_population(
            _servers(pair), clients=clients, rate=30.0, duration=8.0, giaddr=RELAY,
            release_at_end=False, seed=3, sock=sock,
        )  # fmt: skip
    finally:
        sock.close()
    assert stats.acks == clients, stats
    assert (stats.naks, stats.malformed) == (0, 0), stats
    served = {_server_of(pair)[ack.server] for ack in sock.acks}
    assert served == set(ROLES), f"both servers ACK their hash buckets: {served}"
    macs = set(client_macs(clients, 3))

    def agree() -> bool:
        files = {role: _leases(pair.server(role).leases_path) for role in ROLES}
        if _bindings(files["primary"]) != _bindings(files["secondary"]):
            return False
        active = [
            lease
            for lease in files["primary"].values()
            if lease.binding_state is B.ACTIVE and lease.hardware_address in macs
        ]
        return len(active) == clients

    pair.wait_for(agree, SETTLE, what="both files to agree on every lease")


# ---- 6. dhcpd -T and balance -------------------------------------------------------------


def test_lab_files_pass_dhcpd_and_balance_predicts_the_next_move(
    make_pair: Callable[[PairConfig], RealPair], tmp_path: Path
) -> None:
    """Clients take leases from the primary only; ``balance --json`` on a snapshot of each
    server's files predicts the next balance run, compared with its ``moved N`` line.

    mclt 60 makes every lease of the run 60 s long (nothing expires meanwhile) and
    min-balance 15 keeps the next run well after the snapshot."""
    config = PairConfig(
        lab="both",
        mclt=60,
        default_lease_time=120,
        max_lease_time=120,
        failover_extra="min-balance 15; max-balance 20;",
    )
    pair = make_pair(config)
    pair.wait_for(lambda: _has_backups(pair), SETTLE, what="the first pool balance")
    clients = 40
    sock = _relay_socket(pair)
    try:
        # To the primary alone: it answers its own hash buckets, so its free leases drain.
        stats = run_population(
            [(pair.primary.lan_address, SERVER_PORT)], clients=clients, rate=40.0,
            duration=4.0, giaddr=RELAY, release_at_end=False, seed=9, sock=sock,
        )  # fmt: skip
    finally:
        sock.close()
    assert stats.acks > 0 and (stats.naks, stats.malformed) == (0, 0), stats

    def synced() -> bool:
        files = {role: _bindings(_leases(pair.server(role).leases_path)) for role in ROLES}
        return files["primary"] == files["secondary"]

    pair.wait_for(synced, SETTLE, what="both files to hold the new leases")
    snapshot = pair.snapshot(tmp_path / "snap")
    predicted: dict[Role, tuple[int, int]] = {}
    for role in ROLES:
        files = snapshot.files[role]
        _dhcpd_accepts(files.leases, files.conf)
        document = _balance_json(files.conf, files.leases, snapshot.taken_at)
        (pool,) = document["pools"]
        run = pool["balance"]["next_run"]
        predicted[Role(role)] = (run["min"]["moved"], run["max"]["moved"])
    movers = [role for role, (_low, high) in predicted.items() if high > 0]
    assert movers, f"the drained primary leaves an imbalance to correct: {predicted}"

    def moved_lines() -> dict[Role, int]:
        found = {}
        for role in movers:
            for line in pair.log_entries(role):
                if line.at > snapshot.taken_at and "balancing pool" in line.text:
                    found[role] = int(line.text.split(": moved ")[1].split()[0])
                    break
        return found if len(found) == len(movers) else {}

    moved = pair.wait_for(moved_lines, 40, what="the next balance run's 'moved N' line")
    for role, count in moved.items():
        low, high = predicted[role]
        assert low <= count <= high, f"{role} moved {count}, balance predicted {low}..{high}"


def _balance_json(conf: Path, leases: Path, as_of: float) -> dict[str, Any]:
    result = subprocess.run(
        [*CLI, "balance", "-c", str(conf), "-l", str(leases), "--as-of", f"@{int(as_of)}",
         "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


# ---- expiry through the partner's acknowledgement ------------------------------------------


def test_expired_leases_end_in_the_same_state_in_both_files(
    make_pair: Callable[[PairConfig], RealPair],
) -> None:
    pair = make_pair(PairConfig(lab="both"))
    pair.wait_for(lambda: _has_backups(pair), SETTLE, what="the first pool balance")
    sock = _relay_socket(pair)
    try:
        # 10 s leases (MCLT), never renewed: they all expire about 12 s from now.
        stats = run_population(
            _servers(pair), clients=10, rate=20.0, duration=2.0, giaddr=RELAY,
            release_at_end=False, seed=5, sock=sock,
        )  # fmt: skip
    finally:
        sock.close()
    assert stats.acks == 10, stats
    acked = {ack.address for ack in sock.acks}

    def expired_and_agree() -> bool:
        files = {role: _bindings(_leases(pair.server(role).leases_path)) for role in ROLES}
        settled = all(
            files[role][address][0] in (B.FREE, B.BACKUP) for role in ROLES for address in acked
        )
        return settled and files["primary"] == files["secondary"]

    def unsettled() -> object:
        files = {role: _bindings(_leases(pair.server(role).leases_path)) for role in ROLES}
        states = {a: [files[role][a][0].keyword for role in ROLES] for a in sorted(acked)}
        return {"disagree": _disagreement(pair), "acked leases (primary, secondary)": states}

    # Expiry at `ends` (about 12 s), the primary's update, the secondary's ack: bounded well
    # above that for a loaded machine.
    pair.wait_for(
        expired_and_agree, 60, what="the expired leases to agree in both files",
        describe=unsettled,
    )  # fmt: skip
