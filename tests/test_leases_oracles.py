"""Differential tests: dhcpfoctl's reader against dhcpd-pools 2.29 and isc-dhcp-leases."""

from __future__ import annotations

import calendar
import ipaddress
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from bench import generate
from dhcpfoctl.leases import read_leases
from dhcpfoctl.model import BindingState, address_to_int
from dhcpfoctl.quoting import unescape

#: dhcpd-pools 2.29's columns: cur = active, touch = free/expired/released/abandoned,
#: bu = backup (per range; its "Sum of all ranges" bu double-counts, see README).
_TOUCHED = {BindingState.FREE, BindingState.EXPIRED, BindingState.RELEASED, BindingState.ABANDONED}


#: A "Ranges:" row: first - last, max, cur, percent, touch, t+c, t+c perc, bu.
_RANGE_LINE = re.compile(
    r"(\d+\.\d+\.\d+\.\d+)\s+-\s+(\d+\.\d+\.\d+\.\d+)\s+(\d+)\s+(\d+)\s+\S+\s+(\d+)"
    r"\s+\d+\s+\S+\s+(\d+)"
)


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("journal")
    conf, leases = directory / "dhcpd.conf", directory / "dhcpd.leases"
    saved = generate.RANGE_SIZE
    generate.RANGE_SIZE = 700  # several ranges, stand-alone and in shared networks
    try:
        generate.write_conf(conf, 4000)
        generate.write_leases(leases, 4000, seed=7)
    finally:
        generate.RANGE_SIZE = saved
    return conf, leases


@pytest.mark.skipif(shutil.which("dhcpd-pools") is None, reason="needs dhcpd-pools")
def test_counts_per_range_agree_with_dhcpd_pools(journal: tuple[Path, Path]) -> None:
    conf, leases = journal
    output = subprocess.run(
        ["dhcpd-pools", "-c", str(conf), "-l", str(leases)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    ranges = []
    for match in _RANGE_LINE.finditer(output):
        first, last, _, cur, touch, backup = match.groups()
        ranges.append(
            (address_to_int(first), address_to_int(last), int(cur), int(touch), int(backup))
        )
    assert len(ranges) == 6
    db = read_leases(leases)
    for first, last, cur, touch, backup in ranges:
        counts: Counter[str] = Counter()
        for lease in db.leases:
            if first <= address_to_int(lease.address) <= last:
                state = lease.binding_state
                counts["cur"] += state is BindingState.ACTIVE
                counts["touch"] += state in _TOUCHED
                counts["bu"] += state is BindingState.BACKUP
        assert (counts["cur"], counts["touch"], counts["bu"]) == (cur, touch, backup)


def test_fields_agree_with_isc_dhcp_leases(journal: tuple[Path, Path]) -> None:
    from isc_dhcp_leases import IscDhcpLeases

    _, leases = journal
    # isc-dhcp-leases keeps every record; its user applies "last record wins" per address.
    theirs = {lease.ip: lease for lease in IscDhcpLeases(str(leases)).get(include_backups=True)}
    db = read_leases(leases)
    assert sorted(theirs, key=lambda ip: int(ipaddress.IPv4Address(ip))) == [
        lease.address for lease in db.leases
    ]
    compared = Counter()
    for ours in db.leases:
        other = theirs[ours.address]
        assert ours.binding_state is not None
        assert ours.binding_state.keyword == other.binding_state
        assert ours.starts == (calendar.timegm(other.start.utctimetuple()) if other.start else None)
        assert ours.ends == (calendar.timegm(other.end.utctimetuple()) if other.end else None)
        assert ours.mac == getattr(other, "ethernet", None)
        assert ours.client_hostname == (other.hostname or None)
        if "uid" in other.data:
            assert ours.uid == unescape(other.data["uid"].strip('"').encode("latin-1"))
            compared["uid"] += 1
        for name, value in other.sets.items():
            assert dict(ours.extras.variables)[name] == value.encode()
            compared["sets"] += 1
        for name, value in other.options.items():
            ours_value = dict(ours.extras.options)[name]
            if value.startswith('"'):
                assert ours_value == value.strip('"').encode()
            else:
                assert ours_value == bytes(int(part, 16) for part in value.split(":"))
            compared["options"] += 1
        for field in ("tstp", "tsfp", "atsfp", "cltt"):
            raw = other.data.get(field)
            expected = None
            if raw is not None:
                date, clock = raw.split()[1:]
                parts = [int(x) for x in date.split("/") + clock.split(":")]
                expected = calendar.timegm(tuple(parts))
            assert getattr(ours, field) == expected
        compared["leases"] += 1
    assert compared["leases"] == 4000 and min(compared.values()) > 100
