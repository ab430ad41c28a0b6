"""``dhcpfoctl compare`` on a real dhcpd 4.4.3 pair in split brain, and after it healed.

The mistake the command exists to catch: the failover link is cut and BOTH servers are put
in partner-down. Clients on each side (perfdhcp, relayed to one server each, with its own
list of MACs) take leases; once MCLT has passed, each server also hands out the leases it
believes its partner can no longer use. Which addresses went to two clients is taken from
the servers' own journals (the leases each granted itself, with its times) and checked
against their logs (their DHCPACK lines), never from ``compare``; ``compare`` on the
snapshot of both files must name exactly those, and find nothing but the split brain and
updates queued behind the cut. After the heal, dhcpd's conflict resolution makes the files
agree; ``compare`` then reports each of those addresses as unhealed (the losing client
still holds it), from the superseded records both journals keep.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from dhcpfoctl.leases.reader import read_lease_history
from dhcpfoctl.model import BindingState, FailoverState

from .realpair import CLI, LAN_NETWORK, PairConfig, RealPair, Snapshot, perfdhcp_counts

pytestmark = pytest.mark.integration

PARTNER_DOWN = FailoverState.PARTNER_DOWN
INTERRUPTED = FailoverState.COMMUNICATIONS_INTERRUPTED
#: 20 addresses, 10 free on each side after the start-up balance; each side's perfdhcp
#: picks among 20 MACs at random for 40 exchanges (about 17 clients): more than its server
#: owns, so each server also hands out its partner's leases.
CONFIG = PairConfig(pool_ranges=(("10.99.0.100", "10.99.0.119"),), mclt=5)
CLIENTS = 20
EXCHANGES = 40
ACK = re.compile(r"DHCPACK on (\S+) to (\S+)")


def acks(pair: RealPair, role: str) -> dict[str, set[str]]:
    """Address → MACs the server's own log says it acknowledged."""
    found: dict[str, set[str]] = {}
    for line in pair.log_lines(role):  # type: ignore[arg-type]
        match = ACK.search(line)
        if match:
            found.setdefault(match[1], set()).add(match[2])
    return found


def own_leases(path: Path) -> dict[str, list[tuple[str, int, int]]]:
    """Address → (MAC, starts, ends) of every lease the server granted itself, from its own
    journal: an active record with a ``cltt`` (dhcpd keeps no CLTT of a partner's update)."""
    granted: dict[str, list[tuple[str, int, int]]] = {}
    for lease in read_lease_history(path)[1]:
        if lease.binding_state is BindingState.ACTIVE and lease.cltt is not None:
            assert lease.mac and lease.starts is not None and lease.ends is not None
            granted.setdefault(lease.address, []).append((lease.mac, lease.starts, lease.ends))
    return granted


def handed_out_twice(snapshot: Snapshot) -> set[str]:
    """Addresses both servers granted to different clients at overlapping times."""
    primary = own_leases(snapshot.files["primary"].leases)
    secondary = own_leases(snapshot.files["secondary"].leases)
    return {
        address
        for address in set(primary) & set(secondary)
        for mac, starts, ends in primary[address]
        for other, other_starts, other_ends in secondary[address]
        if mac != other and starts < other_ends and other_starts < ends
    }


def perfdhcp(pair: RealPair, name: str, host: int, server: str, macs: list[str], tmp: Path) -> None:
    """DORAs relayed to one server only (unicast, giaddr = the host)."""
    namespace = pair.add_lan_host(name, address=f"{LAN_NETWORK[host]}/{LAN_NETWORK.prefixlen}")
    mac_file = tmp / f"{name}.macs"
    mac_file.write_text("\n".join(macs) + "\n")
    tool = shutil.which("perfdhcp") or "/usr/sbin/perfdhcp"
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, tool, "-4", "-l", "eth0", "-M", str(mac_file),
         "-R", str(CLIENTS), "-r", "20", "-n", str(EXCHANGES), "-p", "4", "-W", "1000000", server],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    output = result.stdout + result.stderr
    _, received = perfdhcp_counts(output).get("REQUEST-ACK", (0, 0))
    assert received > 0, output


def compare(snapshot: Snapshot) -> dict:
    files = snapshot.files
    result = subprocess.run(
        [*CLI, "compare", str(files["primary"].leases), str(files["secondary"].leases),
         "--primary-config", str(files["primary"].conf),
         "--secondary-config", str(files["secondary"].conf),
         "--as-of", f"@{int(snapshot.taken_at)}", "--no-state", "--json"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    document = json.loads(result.stdout)
    assert result.returncode == document["exit_status"], result.stderr
    return document


def by_kind(document: dict) -> dict[str, set[str | None]]:
    kinds: dict[str, set[str | None]] = {}
    for finding in document["findings"]:
        kinds.setdefault(finding["kind"], set()).add(finding["address"])
    return kinds


def test_both_partner_down_duplicates_found_then_unhealed_after_recovery(
    make_pair, tmp_path: Path
) -> None:
    pair = make_pair(CONFIG)
    pair.cut_link()
    pair.wait_states(primary=INTERRUPTED, secondary=INTERRUPTED, timeout=20)
    for role in ("primary", "secondary"):
        pair.omapi_set_local_state(role, PARTNER_DOWN)
    pair.wait_states(primary=PARTNER_DOWN, secondary=PARTNER_DOWN, timeout=10)
    # Past MCLT each side may allocate the other's free leases: the split brain's damage.
    # (A wait for the clock, not for an event: nothing to poll.)
    time.sleep(CONFIG.mclt + 1)
    perfdhcp(pair, "cp", 5, str(pair.primary.lan_address),
             [f"02:99:0a:00:00:{n:02x}" for n in range(1, CLIENTS + 1)], tmp_path)  # fmt: skip
    perfdhcp(pair, "cs", 6, str(pair.secondary.lan_address),
             [f"02:99:0b:00:00:{n:02x}" for n in range(1, CLIENTS + 1)], tmp_path)  # fmt: skip
    split = pair.snapshot(tmp_path / "split")

    # The truth, from each server's own journal (the leases it granted), and its log.
    twice = handed_out_twice(split)
    assert twice, "no address was handed out twice at once"
    primary_acks, secondary_acks = acks(pair, "primary"), acks(pair, "secondary")
    for address in twice:
        assert primary_acks[address] != secondary_acks[address], address

    document = compare(split)
    kinds = by_kind(document)
    assert document["status"] == "critical"
    assert kinds.get("split-brain") == {None}
    assert kinds.get("duplicate", set()) | kinds.get("unhealed", set()) == twice
    assert set(kinds) <= {"split-brain", "duplicate", "unhealed", "in-flight"}, kinds
    for finding in document["findings"]:
        if finding["kind"] == "duplicate":
            macs = {record["client"]["hardware"] for record in finding["records"]}
            assert len(macs) == 2
            assert macs <= primary_acks[finding["address"]] | secondary_acks[finding["address"]]

    # Heal: potential-conflict, conflict resolution, normal. What did dhcpd leave?
    pair.heal_link()
    pair.wait_states(primary=FailoverState.NORMAL, secondary=FailoverState.NORMAL, timeout=30)
    healed = compare(pair.snapshot(tmp_path / "healed"))
    after = by_kind(healed)
    print("after recovery:", {kind: sorted(map(str, found)) for kind, found in after.items()})
    assert "split-brain" in after  # the episode, from both journals' state records
    assert after.get("duplicate", set()) | after.get("unhealed", set()) == twice
    assert set(after) <= {"split-brain", "duplicate", "unhealed", "in-flight"}, after
