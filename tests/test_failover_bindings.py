"""bindings.granted_lease_time: dhcpd's MCLT cap on lease times (server/dhcp.c ack_lease)."""

from __future__ import annotations

from dhcpfoctl.failover.bindings import granted_lease_time

NOW = 1_800_000_000


def test_a_lease_within_mclt_is_granted_as_asked() -> None:
    assert granted_lease_time(60, tsfp=None, mclt=120, now=NOW) == 60
    assert granted_lease_time(120, tsfp=None, mclt=120, now=NOW) == 120


def test_nothing_acknowledged_caps_at_mclt() -> None:
    # Observed on 4.4.3: default-lease-time 600 with MCLT 120 granted 120 s.
    assert granted_lease_time(600, tsfp=None, mclt=120, now=NOW) == 120
    assert granted_lease_time(600, tsfp=NOW, mclt=120, now=NOW) == 120
    assert granted_lease_time(600, tsfp=NOW - 5, mclt=120, now=NOW) == 120


def test_an_acknowledged_time_allows_mclt_past_it() -> None:
    assert granted_lease_time(600, tsfp=NOW + 300, mclt=120, now=NOW) == 420
    assert granted_lease_time(600, tsfp=NOW + 1000, mclt=120, now=NOW) == 600
    assert granted_lease_time(600, tsfp=NOW + 1, mclt=120, now=NOW) == 121
