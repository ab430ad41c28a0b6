"""Counts per range and per shared network equal dhcpd-pools 2.29's on the same files.

dhcpd-pools' columns map to ours as: ``max`` = total, ``cur`` = active, ``touch`` = recorded
free + expired + released + abandoned (ours counts never-recorded addresses as free too,
hence the ``unrecorded`` correction), ``bu`` = backup. Its "Sum of all ranges" ``bu`` is
not compared: it double-counts ranges outside shared networks (see README).
"""

from __future__ import annotations

import csv
import random
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dhcpfoctl.balance import Counts, compute_balance
from dhcpfoctl.conf import read_config
from dhcpfoctl.leases import read_leases
from dhcpfoctl.model import int_to_address

pytestmark = pytest.mark.integration

REAL = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"
NOW = 1_795_852_800
DHCPD_POOLS = shutil.which("dhcpd-pools") or "/usr/bin/dhcpd-pools"
#: ``reset`` is left out: dhcpd-pools ignores that state (see test_reset_is_a_known_difference).
_STATES = ("free", "backup", "active", "expired", "released", "abandoned")


def dhcpd_pools(conf: Path, leases: Path) -> tuple[dict[tuple[str, str], dict], dict[str, dict]]:
    """dhcpd-pools' CSV: per range (first, last) and per shared network, as ints."""
    result = subprocess.run(
        [DHCPD_POOLS, "-c", str(conf), "-l", str(leases), "-f", "c"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    ranges: dict[tuple[str, str], dict] = {}
    networks: dict[str, dict] = {}
    section = None
    header: list[str] = []
    for row in csv.reader(result.stdout.splitlines()):
        if not row:
            continue
        if len(row) == 1 and row[0].endswith(":"):
            section, header = row[0], []
            continue
        if not header:
            header = row
            continue
        values = dict(zip(header, row, strict=False))
        numbers = {k: int(values.get(k) or 0) for k in ("max", "cur", "touch", "bu")}
        if section == "Ranges:":
            ranges[(values["first ip"], values["last ip"])] = numbers
        elif section == "Shared networks:":
            networks[values["name"]] = numbers
    return ranges, networks


def as_dhcpd_pools(counts: Counts) -> dict[str, int]:
    touch = counts.free - counts.unrecorded + counts.expired + counts.released + counts.abandoned
    return {"max": counts.total, "cur": counts.active, "touch": touch, "bu": counts.backup}


def assert_same_counts(conf: Path, leases: Path) -> int:
    """Compare every range and named shared network; returns the number of ranges."""
    theirs_ranges, theirs_networks = dhcpd_pools(conf, leases)
    report = compute_balance(read_config(conf), read_leases(leases), NOW)
    ours_ranges = {}
    for pool in report.pools:
        for rng, (_, counts) in zip(pool.pool.ranges, pool.ranges, strict=True):
            key = (int_to_address(rng.first), int_to_address(rng.last))
            ours_ranges[key] = as_dhcpd_pools(counts)
    assert ours_ranges == theirs_ranges
    named = {
        net.name: as_dhcpd_pools(net.counts)
        for net in report.shared_networks
        if "/" not in net.name  # a lone subnet's implicit network: "All networks" there
    }
    assert named == theirs_networks
    return len(ours_ranges)


# -- generated journals ----------------------------------------------------------------


def _date(epoch: int) -> str:
    return time.strftime("%w %Y/%m/%d %H:%M:%S", time.gmtime(epoch))


def _records(rng: random.Random, address: str, versions: int) -> Iterator[str]:
    """``versions`` successive records for one address, as dhcpd appends them."""
    for _ in range(versions):
        state = rng.choice(_STATES)
        starts = NOW - rng.randrange(1, 86400)
        lines = [f"lease {address} {{"]
        if state != "free" or rng.random() < 0.5:
            lines += [f"  starts {_date(starts)};", f"  ends {_date(starts + 600)};"]
        if state in ("active", "expired", "released"):
            lines.append(f"  cltt {_date(starts)};")
        lines.append(f"  binding state {state};")
        if state == "active":
            lines.append("  next binding state expired;")
            mac = ":".join(f"{rng.randrange(256):02x}" for _ in range(6))
            lines.append(f"  hardware ethernet {mac};")
        lines.append("}")
        yield "\n".join(lines) + "\n"


SHAPES = {
    # Lone subnets (dhcpd-pools' "All networks"), several ranges, single-address range.
    "lone-subnets": """
failover peer "p" { primary; peer address 10.255.0.2; mclt 60; split 128;
  load balance max seconds 3; }
subnet 10.1.0.0 netmask 255.255.255.0 {
  pool { failover peer "p"; range 10.1.0.10 10.1.0.99; range 10.1.0.120; }
}
subnet 10.2.0.0 netmask 255.255.254.0 {
  pool { failover peer "p"; range 10.2.0.200 10.2.1.40; }
}
""",
    # Shared networks, implicit pools, a non-failover dynamic-bootp range.
    "shared-networks": """
failover peer "p" { primary; peer address 10.255.0.2; mclt 60; split 128;
  load balance max seconds 3; }
shared-network left {
  subnet 10.3.0.0 netmask 255.255.255.0 {
    pool { failover peer "p"; range 10.3.0.5 10.3.0.60; }
    pool { range dynamic-bootp 10.3.0.100 10.3.0.130; }
  }
  subnet 10.3.1.0 netmask 255.255.255.0 { range 10.3.1.1 10.3.1.30; }
}
shared-network right {
  subnet 10.4.0.0 netmask 255.255.255.0 {
    pool { failover peer "p"; range 10.4.0.1 10.4.0.200; }
  }
}
subnet 10.5.0.0 netmask 255.255.255.0 { range 10.5.0.1 10.5.0.20; }
""",
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize(
    ("coverage", "versions", "outside"), [(1.0, 3, 0), (0.3, 1, 25)], ids=["dense", "sparse"]
)
def test_generated_journal(
    tmp_path: Path, shape: str, coverage: float, versions: int, outside: int
) -> None:
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(SHAPES[shape])
    rng = random.Random(f"{shape}-{coverage}")
    config = read_config(conf)
    addresses = [
        int_to_address(a)
        for pool in config.pools
        for r in pool.ranges
        for a in range(r.first, r.last + 1)
        if rng.random() < coverage
    ]
    addresses += [f"10.200.0.{i}" for i in range(1, outside + 1)]  # in no range
    order = [a for a in addresses for _ in range(versions)]
    rng.shuffle(order)  # a journal: an address's records interleave with others'
    leases = tmp_path / "dhcpd.leases"
    with leases.open("w") as out:
        out.write(
            'failover peer "p" state {\n  my state normal at 6 2026/11/28 07:35:18;\n'
            "  partner state normal at 6 2026/11/28 07:35:18;\n}\n"
        )
        for address in order:
            out.writelines(_records(rng, address, 1))
    assert assert_same_counts(conf, leases) >= 3


@pytest.mark.parametrize("side", ["primary", "secondary"])
def test_real_dhcpd_files(side: str) -> None:
    assert assert_same_counts(REAL / f"{side}.conf", REAL / f"{side}.leases") == 1


def test_reset_is_a_known_difference(tmp_path: Path) -> None:
    """dhcpd-pools skips ``binding state reset``: the address keeps its earlier state there.

    dhcpd itself reads the last record (reset); we follow dhcpd.
    """
    conf = tmp_path / "dhcpd.conf"
    conf.write_text("subnet 10.0.0.0 netmask 255.255.255.0 { range 10.0.0.1 10.0.0.2; }\n")
    leases = tmp_path / "dhcpd.leases"
    leases.write_text(
        "lease 10.0.0.1 {\n  binding state active;\n}\n"
        "lease 10.0.0.1 {\n  binding state reset;\n}\n"
    )
    theirs, _ = dhcpd_pools(conf, leases)
    assert theirs[("10.0.0.1", "10.0.0.2")]["cur"] == 1
    (pool,) = compute_balance(read_config(conf), read_leases(leases), NOW).pools
    assert (pool.counts.active, pool.counts.reset) == (0, 1)
