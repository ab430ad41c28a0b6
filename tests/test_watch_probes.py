"""The watcher's probes, evidence counts, journal and hooks (no server needed)."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

from dhcpfoctl.failover.wire import hba_from_split, load_balance_hash
from dhcpfoctl.lab import dhcp
from dhcpfoctl.model import BindingState, Lease, LeaseDB
from dhcpfoctl.watch.history import Journal, read_journal, resume, spans
from dhcpfoctl.watch.policy import ProbeOutcome
from dhcpfoctl.watch.probes import (
    DhcpProbe,
    bound_before,
    count_unanswered,
    partner_buckets,
    probe_dhcp,
)
from dhcpfoctl.watch.service import run_hook


def udp_responder(stop: threading.Event) -> tuple[socket.socket, threading.Thread]:
    """A DHCP 'server' on loopback that ACKs every INFORM to its source (as the lab does)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)

    def serve() -> None:
        while not stop.is_set():
            try:
                data, source = sock.recvfrom(4096)
            except TimeoutError:
                continue
            request = dhcp.decode(data)
            assert request.message_type is dhcp.MessageType.INFORM
            assert request.giaddr == "127.0.0.1" and request.hops == 1
            sock.sendto(dhcp.encode(dhcp.reply(request, dhcp.MessageType.ACK, options={})), source)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


def test_dhcp_probe_answered_silent_and_error() -> None:
    stop = threading.Event()
    server, thread = udp_responder(stop)
    try:
        target = server.getsockname()
        probe = DhcpProbe(target=target, bind=("127.0.0.1", 0), ciaddr="127.0.0.1", timeout=1)
        result = probe_dhcp(probe)
        assert result.outcome is ProbeOutcome.ANSWERED and "DHCPACK" in result.detail
    finally:
        stop.set()
        thread.join(2)
        server.close()
    # nothing listens any more: silence after every retry
    probe = DhcpProbe(target, ("127.0.0.1", 0), "127.0.0.1", timeout=0.1, retries=2)
    result = probe_dhcp(probe)
    assert result.outcome is ProbeOutcome.SILENT and result.attempts == 2
    # the relay port taken: the probe cannot be made, which is doubt, not death
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        probe = DhcpProbe(target, taken.getsockname(), "127.0.0.1", timeout=0.1)
        result = probe_dhcp(probe)
    assert result.outcome is ProbeOutcome.ERROR and "cannot bind" in result.detail


def lease(address: str, mac: bytes, cltt: int, state: BindingState) -> Lease:
    return Lease(
        address=address,
        starts=cltt,
        ends=cltt + 600,
        cltt=cltt,
        binding_state=state,
        hardware_address=mac,
    )


def test_unanswered_counts_rebinding_and_new_clients_of_the_partner_only() -> None:
    hba = hba_from_split(128)
    buckets = partner_buckets(hba, local_is_primary=True)
    assert buckets == frozenset(range(128, 256))
    macs = [bytes([2, 0, 0, 0, 0, n]) for n in range(60)]
    theirs = [m for m in macs if load_balance_hash(m) in buckets]
    ours = [m for m in macs if load_balance_hash(m) not in buckets]
    active = BindingState.ACTIVE
    history = [
        lease("10.0.0.1", theirs[0], 900, active),  # bound before, renews after
        lease("10.0.0.2", theirs[1], 900, active),  # bound before, silent since
        lease("10.0.0.1", theirs[0], 1100, active),
        lease("10.0.0.3", theirs[2], 1200, active),  # new
        lease("10.0.0.4", ours[0], 1200, active),  # our own client: not evidence
        lease("10.0.0.5", theirs[3], 1300, BindingState.FREE),  # released: not bound
    ]
    db = LeaseDB()
    for record in history:
        db.leases.upsert(record)
    baseline = bound_before(history, 1000, buckets)
    assert set(baseline) == {0x0A000001, 0x0A000002}
    assert count_unanswered(db, 1000, buckets, baseline) == (1, 1)
    # as secondary, the partner's buckets are the primary's
    assert partner_buckets(hba, local_is_primary=False) == frozenset(range(128))


def test_journal_resume_skips_torn_lines_and_keeps_the_incident(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path) as journal:
        journal.append(
            {
                "t": 1,
                "kind": "transition",
                "relationship": "lab",
                "server": "a",
                "old": None,
                "new": "normal",
                "at": 1,
                "previous_duration": None,
            }
        )
        journal.append(
            {
                "t": 5,
                "kind": "transition",
                "relationship": "lab",
                "server": "a",
                "old": "normal",
                "new": "communications-interrupted",
                "at": 5,
                "previous_duration": 4,
            }
        )
        journal.append({"t": 6, "kind": "silent", "relationship": "lab", "since": 6})
        journal.append({"t": 9, "kind": "intent", "relationship": "lab", "incident": "a@5"})
    with path.open("a") as raw:
        raw.write('["not", "a", "record"]\n{"t": 10, "kind": "outco')
    assert path.stat().st_mode & 0o777 == 0o600
    memory = resume(read_journal(path))["lab"]
    assert memory.intent_pending and not memory.acted and memory.incident == "a@5"
    assert memory.states == {"a": ("communications-interrupted", 5)}
    assert memory.partner_silent_since == 6
    (first, second) = spans(read_journal(path))
    assert (first.state, first.duration) == ("normal", 4)
    assert (second.state, second.duration) == ("communications-interrupted", None)


def test_hooks_are_bounded_and_their_failures_reported() -> None:
    ok = run_hook([sys.executable, "-c", "import sys; print(sys.stdin.read())"], {"a": 1}, 5)
    assert ok["status"] == 0 and '{"a": 1}' in ok["output"]
    slow = run_hook([sys.executable, "-c", "import time; time.sleep(5)"], {}, 0.2)
    assert str(slow["status"]).startswith("killed after") and slow["seconds"] < 3
    missing = run_hook(["/nonexistent/hook"], {}, 1)
    assert str(missing["status"]).startswith("not run")
