"""Benchmark the lab pair against a real dhcpd 4.4.3 pair with perfdhcp, in one run.

    sudo .venv/bin/python bench/bench_lab.py [--rate 5000] [--seconds 10] [--clients 140]
                                             [--only lab|real] [--json FILE]

Both pairs get the same dhcpd.conf parameters (tests/integration/realpair.py's
:class:`PairConfig` defaults: one failover pool of 151 addresses, split 128, lease time
120 s, mclt 10, max-unacked-updates 10) and the same perfdhcp load: ``-R CLIENTS`` simulated
clients, ``-r RATE`` DORA/s asked for ``-p SECONDS``, as a relay agent broadcasting on the
pool's LAN (``-B``), so both servers of a pair see every request and load balancing splits
them, as on a real LAN.

* real pair: :class:`RealPair` (each dhcpd in its namespace, LAN on a bridge); perfdhcp runs
  in a namespace of this script's own whose veth joins that bridge (giaddr 10.99.0.3);
* lab pair: both ``python -m dhcpfoctl.lab.server`` processes and perfdhcp in one namespace
  of this script's own, LAN addresses on a veth whose other end is alone in a second
  namespace (a broadcast reaches both servers' sockets, which share port 67, once);
  failover link and OMAPI on that namespace's loopback.

Figures per pair:

* ``DORA/s acked``: perfdhcp's completed DORAs divided by the time from perfdhcp's start
  until both servers' OMAPI ``cur-unacked-updates`` read 0 after perfdhcp ended (polled with
  omshell every 50 ms): every BNDUPD of the run was acknowledged, so written and fsynced by
  the partner (each server fsyncs before its BNDACK);
* then both lease files are compared: active bindings, and how many the two files give
  another client or another end time (a refused BNDUPD leaves the partner's older record);
* perfdhcp's own rate line (4-way exchanges/s while it sent) and drops;
* ``CPU ms/DORA``: CPU time (user + system) both servers used over that span, per completed
  DORA: the cost of a DORA, less sensitive than DORA/s to other work on the machine;
* latency percentiles of the DISCOVER-OFFER and REQUEST-ACK round trips, computed from
  perfdhcp's per-exchange timers (``-x t``).

Needs root (network namespaces), ``/usr/sbin/dhcpd`` and ``perfdhcp`` (Debian kea-admin).
All traffic stays inside the namespaces this script and the harness create; both are
removed at the end, and every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dhcpfoctl.leases import read_leases  # noqa: E402
from dhcpfoctl.model import BindingState  # noqa: E402
from tests.integration.realpair import (  # noqa: E402
    DHCPD,
    LAN_NETWORK,
    PairConfig,
    RealPair,
    perfdhcp_counts,
)

PERFDHCP = "/usr/sbin/perfdhcp"
#: The pair's LAN addresses: .1 and .2 the servers (as in realpair.py), .3 perfdhcp.
LOAD_ADDRESS = str(LAN_NETWORK[3])
#: The lab pair's failover and OMAPI ports, on its namespace's loopback.
LAB_PORTS = {"primary": (647, 7911), "secondary": (847, 7912)}
#: perfdhcp's port on the lab side (the lab answers a relay's UDP source).
LAB_LOAD_PORT = 16800
START_TIMEOUT = 30.0
ACK_TIMEOUT = 60.0
POLL = 0.05


@dataclass
class Result:
    pair: str
    rate_asked: int
    seconds: int
    clients: int
    doras: int
    discovers_sent: int
    offers: int
    requests_sent: int
    acks: int
    perfdhcp_rate: float
    sent_to_acked_s: float
    dora_per_s_acked: float
    offer_ms: dict[str, float]
    ack_ms: dict[str, float]
    #: CPU time both servers used from perfdhcp's start until acked, per completed DORA
    #: (less sensitive than DORA/s to other work on the machine).
    cpu_ms_per_dora: float
    active_bindings: int
    #: Active bindings of the primary's file that the secondary's file gives another
    #: client, or the same client with another end time, once every BNDUPD was acked.
    other_client: int
    other_end: int


def _run(*args: str, timeout: float = 20) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


# -- perfdhcp ----------------------------------------------------------------------------
def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes used so far (/proc/PID/stat fields 14, 15)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def perfdhcp(namespace: str, args: argparse.Namespace, extra: list[str]) -> tuple[str, float]:
    """Run perfdhcp in ``namespace``; its output and its start time (epoch seconds)."""
    command = ["ip", "netns", "exec", namespace, PERFDHCP, "-4", "-B", "-x", "t",
               "-R", str(args.clients), "-r", str(args.rate), "-p", str(args.seconds),
               *extra]  # fmt: skip
    started = time.time()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=args.seconds + 60, check=False
    )
    if done.returncode not in (0, 3):  # 3: some packets were dropped
        raise SystemExit(f"perfdhcp exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout + done.stderr, started


def _percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(cuts[49], 3),
        "p95": round(cuts[94], 3),
        "p99": round(cuts[98], 3),
        "max": round(max(values), 3),
    }


_TIMER = re.compile(r"^sent / received: (\d+\.\d+) / (\d+\.\d+)$")


def _exchange_delays(output: str) -> dict[str, list[float]]:
    """Round trips in ms per exchange from ``-x t``: "sent / received" times in seconds."""
    delays: dict[str, list[float]] = {}
    section = ""
    for line in output.splitlines():
        if line.startswith("***Timestamps for packets: "):
            section = line.removeprefix("***Timestamps for packets: ").strip("*")
            delays[section] = []
        elif section and (match := _TIMER.match(line)):
            delays[section].append((float(match[2]) - float(match[1])) * 1000)
    return delays


# -- "every BNDUPD acknowledged" --------------------------------------------------------
def omshell_unacked(prefix: list[str], host: str, port: int, relationship: str) -> int | None:
    """The failover-state's cur-unacked-updates read with omshell (``None``: no answer)."""
    script = f"server {host}\nport {port}\nconnect\nnew failover-state\n"
    script += f'set name = "{relationship}"\nopen\n'
    try:
        done = subprocess.run(
            [*prefix, "omshell"], input=script, capture_output=True, text=True, timeout=5
        )
    except subprocess.TimeoutExpired:
        return None
    match = re.search(r"^cur-unacked-updates = ((?:[0-9a-f]{2}:){3}[0-9a-f]{2})$",
                      done.stdout, re.M)  # fmt: skip
    return int(match[1].replace(":", ""), 16) if match else None


def wait_acked(unacked: Callable[[str], int | None]) -> float:
    """Poll both servers (after perfdhcp ended: no new lease changes) until neither has a
    BNDUPD awaiting its BNDACK; the epoch time of the poll that saw it."""
    deadline = time.monotonic() + ACK_TIMEOUT
    for _ in range(int(ACK_TIMEOUT / POLL) + 1):
        seen = time.time()
        if all(unacked(role) == 0 for role in ("primary", "secondary")):
            return seen
        if time.monotonic() > deadline:
            break
        time.sleep(POLL)
    raise SystemExit(f"BNDUPDs still unacknowledged after {ACK_TIMEOUT} s")


def _bindings(path: Path) -> dict[str, tuple[bytes | None, int | None]]:
    return {
        lease.address: (lease.hardware_address, lease.ends)
        for lease in read_leases(path).leases
        if lease.binding_state is BindingState.ACTIVE
    }


def compare_files(primary: Path, secondary: Path) -> tuple[int, int, int]:
    """Active bindings in the primary's file; how many of them the secondary's file gives
    another client, and another end time."""
    left, right = _bindings(primary), _bindings(secondary)
    addresses = left.keys() | right.keys()
    clients = sum(
        1 for a in addresses if (left.get(a) or (None,))[0] != (right.get(a) or (None,))[0]
    )
    ends = sum(1 for a in addresses if left.get(a) != right.get(a)) - clients
    return len(left), clients, ends


def summarise(
    pair: str,
    args: argparse.Namespace,
    output: str,
    started: float,
    acked: float,
    files: tuple[int, int, int],
    cpu: float,
) -> Result:
    counts = perfdhcp_counts(output)
    offers = counts.get("DISCOVER-OFFER", (0, 0))
    acks = counts.get("REQUEST-ACK", (0, 0))
    rate = re.search(r"^Rate: ([0-9.]+)", output, re.M)
    delays = _exchange_delays(output)
    took = acked - started
    return Result(
        pair=pair,
        rate_asked=args.rate,
        seconds=args.seconds,
        clients=args.clients,
        doras=acks[1],
        discovers_sent=offers[0],
        offers=offers[1],
        requests_sent=acks[0],
        acks=acks[1],
        perfdhcp_rate=float(rate[1]) if rate else 0.0,
        sent_to_acked_s=round(took, 3),
        dora_per_s_acked=round(acks[1] / took, 1),
        offer_ms=_percentiles(delays.get("DISCOVER-OFFER", [])),
        ack_ms=_percentiles(delays.get("REQUEST-ACK", [])),
        cpu_ms_per_dora=round(cpu * 1000 / max(acks[1], 1), 3),
        active_bindings=files[0],
        other_client=files[1],
        other_end=files[2],
    )


# -- the real pair -----------------------------------------------------------------------
@contextlib.contextmanager
def load_namespace_on(pair: RealPair) -> Iterator[str]:
    """A namespace of ours with eth0 (LOAD_ADDRESS) on the pair's LAN bridge."""
    namespace = f"{pair.prefix}-load"
    _run("ip", "netns", "add", namespace)
    try:
        _run("ip", "-n", namespace, "link", "set", "lo", "up")
        _run("ip", "link", "add", "l-lan", "netns", pair.lan_namespace, "type", "veth",
             "peer", "name", "eth0", "netns", namespace)  # fmt: skip
        _run("ip", "-n", pair.lan_namespace, "link", "set", "l-lan", "master", "br0", "up")
        _run("ip", "-n", namespace, "addr", "add", f"{LOAD_ADDRESS}/24", "dev", "eth0")
        _run("ip", "-n", namespace, "link", "set", "eth0", "up")
        yield namespace
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=20)


def bench_real(args: argparse.Namespace) -> Result:
    with RealPair(PairConfig()) as pair, load_namespace_on(pair) as namespace:
        pids = [pair.primary.pid or 0, pair.secondary.pid or 0]
        cpu = cpu_seconds(pids)
        output, started = perfdhcp(namespace, args, ["-l", "eth0"])

        def unacked(role: str) -> int | None:
            server = pair.server(role)  # type: ignore[arg-type]
            return omshell_unacked([], server.omapi_host, server.omapi_port, pair.relationship)

        acked = wait_acked(unacked)
        cpu = cpu_seconds(pids) - cpu
        files = compare_files(pair.primary.leases_path, pair.secondary.leases_path)
        return summarise("real dhcpd 4.4.3 pair", args, output, started, acked, files, cpu)


# -- the lab pair ------------------------------------------------------------------------
def lab_conf(role: str, config: PairConfig) -> str:
    """realpair.py's dhcpd.conf parameters with the lab's loopback addresses and ports."""
    peer = "secondary" if role == "primary" else "primary"
    lines = [
        "authoritative;",
        "ddns-update-style none;",
        "ping-check false;",
        f"default-lease-time {config.default_lease_time};",
        f"max-lease-time {config.max_lease_time};",
        f"omapi-port {LAB_PORTS[role][1]};",
        f"server-identifier {LAN_NETWORK[1 if role == 'primary' else 2]};",
        "",
        f'failover peer "{config.relationship}" {{',
        f"  {role};",
        "  address 127.0.0.1;",
        f"  port {LAB_PORTS[role][0]};",
        "  peer address 127.0.0.1;",
        f"  peer port {LAB_PORTS[peer][0]};",
        f"  max-response-delay {config.max_response_delay};",
        f"  max-unacked-updates {config.max_unacked_updates};",
        f"  load balance max seconds {config.load_balance_max_seconds};",
    ]
    if role == "primary":
        lines += [f"  mclt {config.mclt};", f"  split {config.split};"]
    lines += [
        "}",
        "",
        f"subnet {LAN_NETWORK.network_address} netmask {LAN_NETWORK.netmask} {{",
        f"  option subnet-mask {LAN_NETWORK.netmask};",
        "  pool {",
        f'    failover peer "{config.relationship}";',
        *(f"    range {first} {last};" for first, last in config.pool_ranges),
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def lab_pair(workdir: Path) -> Iterator[tuple[str, list[int]]]:
    """Both lab servers in a namespace of ours, normal/normal; the namespace and PIDs."""
    namespace, wire = f"dflb{os.getpid()}", f"dflb{os.getpid()}-wire"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for created in (namespace, wire):
            _run("ip", "netns", "add", created)
            _run("ip", "-n", created, "link", "set", "lo", "up")
        # The LAN is a veth whose other end sits alone in a second namespace: a broadcast
        # sent on eth0 is delivered to the sockets of this namespace once, as on a LAN.
        _run("ip", "-n", namespace, "link", "add", "eth0", "type", "veth",
             "peer", "name", "eth0", "netns", wire)  # fmt: skip
        _run("ip", "-n", wire, "link", "set", "eth0", "up")
        for host in (1, 2, 3):
            _run("ip", "-n", namespace, "addr", "add", f"{LAN_NETWORK[host]}/24", "dev", "eth0")
        _run("ip", "-n", namespace, "link", "set", "eth0", "up")
        for role in ("primary", "secondary"):
            conf = workdir / f"{role}.conf"
            conf.write_text(lab_conf(role, PairConfig()))
            _run(DHCPD, "-4", "-t", "-q", "-cf", str(conf))
            (workdir / f"{role}.leases").touch()
            # `ip netns exec` execs the server in place: the PID is the server's.
            command = ["ip", "netns", "exec", namespace, sys.executable, "-m",
                       "dhcpfoctl.lab.server", "--config", str(conf),
                       "--leases", str(workdir / f"{role}.leases"),
                       "--dhcp-address", "0.0.0.0", "--dhcp-port", "67",
                       "--log", str(workdir / f"{role}.log"), "--name", role]  # fmt: skip
            processes.append(
                subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + START_TIMEOUT
        for _ in range(int(START_TIMEOUT / POLL) + 1):
            logs = [(workdir / f"{r}.log") for r in ("primary", "secondary")]
            texts = [log.read_text() if log.exists() else "" for log in logs]
            if all(" to normal" in text for text in texts):
                break
            if any(process.poll() is not None for process in processes):
                raise SystemExit("a lab server exited at start:\n" + "\n".join(texts))
            if time.monotonic() > deadline:
                raise SystemExit("the lab pair did not reach normal:\n" + "\n".join(texts))
            time.sleep(POLL)
        yield namespace, [process.pid for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for created in (namespace, wire):
            subprocess.run(["ip", "netns", "del", created], capture_output=True, timeout=20)


def bench_lab(args: argparse.Namespace) -> Result:
    with tempfile.TemporaryDirectory(prefix="dhcpfoctl-bench-lab-") as name:
        workdir = Path(name)
        with lab_pair(workdir) as (namespace, pids):
            cpu = cpu_seconds(pids)
            output, started = perfdhcp(
                namespace, args, ["-l", LOAD_ADDRESS, "-L", str(LAB_LOAD_PORT), "255.255.255.255"]
            )
            prefix = ["ip", "netns", "exec", namespace]
            relationship = PairConfig().relationship
            acked = wait_acked(
                lambda role: omshell_unacked(prefix, "127.0.0.1", LAB_PORTS[role][1], relationship)
            )
            cpu = cpu_seconds(pids) - cpu
            files = compare_files(workdir / "primary.leases", workdir / "secondary.leases")
            if args.keep:
                (args.keep / "perfdhcp.out").write_text(output)
                for item in workdir.iterdir():
                    (args.keep / item.name).write_bytes(item.read_bytes())
            return summarise("lab pair", args, output, started, acked, files, cpu)


def _row(result: Result) -> str:
    def ms(values: dict[str, float]) -> str:
        return "/".join(f"{values.get(k, float('nan')):.2f}" for k in ("p50", "p95", "p99"))

    return (
        f"| {result.pair} | {result.dora_per_s_acked:.0f} | {result.perfdhcp_rate:.0f} |"
        f" {result.acks}/{result.discovers_sent} | {result.sent_to_acked_s:.2f} s |"
        f" {ms(result.offer_ms)} | {ms(result.ack_ms)} | {result.cpu_ms_per_dora:.3f} |"
        f" {result.active_bindings}"
        f" ({result.other_client} client, {result.other_end} end) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000, help="DORA/s asked of perfdhcp")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=140)
    parser.add_argument("--only", choices=("lab", "real"))
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--keep", type=Path, help="copy the lab pair's files here")
    args = parser.parse_args()
    results = []
    if args.only != "lab":
        results.append(bench_real(args))
    if args.only != "real":
        results.append(bench_lab(args))
    print(
        f"perfdhcp -R {args.clients} -r {args.rate} -p {args.seconds}; latency in ms"
        " (p50/p95/p99)\n"
        "| pair | DORA/s acked | perfdhcp rate | ACKs/DISCOVERs | start to acked |"
        " DISCOVER-OFFER | REQUEST-ACK | CPU ms/DORA | active (differ) |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    for result in results:
        print(_row(result))
    if len(results) == 2:
        real, lab = results
        print(f"ratio lab/real (DORA/s acked): {lab.dora_per_s_acked / real.dora_per_s_acked:.2f}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


if __name__ == "__main__":
    main()
