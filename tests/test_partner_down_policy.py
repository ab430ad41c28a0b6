"""checks/partner_down.py: the pure safety policy of forced transitions, pinned exactly
(every message and every branch: tools/mutate leaves no surviving mutant here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dhcpfoctl.checks.partner_down import (
    TRANSITIONS,
    PartnerProbe,
    PartnerWarning,
    danger,
    judge_partner,
    partner_failover,
    pick_servers,
    plan,
    reached,
    refuse_if_moved,
    refuse_unless_allowed,
    target_state,
)
from dhcpfoctl.conf import read_config
from dhcpfoctl.errors import LocalError, RefusedError
from dhcpfoctl.model import FailoverState as S
from dhcpfoctl.omapi.failover import FailoverInfo
from dhcpfoctl.profile import ServerSpec, Targets
from dhcpfoctl.times import format_local_time

NOW = 1_795_852_800
DHCP1 = ServerSpec("dhcp1", "10.0.0.1", 7911)
DHCP2 = ServerSpec("dhcp2", "10.0.0.2", 7912, failover_address="10.1.0.2", failover_port=848)


def test_the_transitions_an_operator_may_force() -> None:
    assert {
        S.PARTNER_DOWN: {S.COMMUNICATIONS_INTERRUPTED, S.RESOLUTION_INTERRUPTED},
        S.SHUTDOWN: {S.NORMAL},
        S.RECOVER: {S.SHUTDOWN},
    } == TRANSITIONS


@pytest.mark.parametrize("name", ["partner-down", "shutdown", "recover"])
def test_target_state_accepts_the_forceable_states(name: str) -> None:
    assert target_state(name) == S.from_keyword(name)


@pytest.mark.parametrize("name", ["normal", "startup", "nonsense", ""])
def test_target_state_refuses_everything_else(name: str) -> None:
    with pytest.raises(LocalError) as raised:
        target_state(name)
    assert str(raised.value) == (
        f"cannot force state {name!r}: only partner-down, shutdown, recover may be set"
    )


def test_refuse_unless_allowed() -> None:
    refuse_unless_allowed("e:1", "lab", S.COMMUNICATIONS_INTERRUPTED, S.PARTNER_DOWN)
    refuse_unless_allowed("e:1", "lab", S.RESOLUTION_INTERRUPTED, S.PARTNER_DOWN)
    with pytest.raises(RefusedError) as raised:
        refuse_unless_allowed("e:1", "lab", S.NORMAL, S.PARTNER_DOWN)
    assert str(raised.value) == (
        "e:1: 'lab' is normal; partner-down may only be forced from"
        " communications-interrupted or resolution-interrupted"
    )


def test_refuse_if_moved() -> None:
    refuse_if_moved("e:1", S.COMMUNICATIONS_INTERRUPTED, S.PARTNER_DOWN)
    with pytest.raises(RefusedError) as raised:
        refuse_if_moved("e:1", S.NORMAL, S.PARTNER_DOWN)
    assert str(raised.value) == "e:1: state changed to normal while checking; nothing written"


def test_reached() -> None:
    assert reached(S.PARTNER_DOWN) == {S.PARTNER_DOWN}
    assert reached(S.SHUTDOWN) == {S.SHUTDOWN}
    assert reached(S.RECOVER) == {S.RECOVER, S.RECOVER_WAIT, S.RECOVER_DONE, S.NORMAL}


# -- the partner -------------------------------------------------------------------------


def targets(*servers: ServerSpec, profile: tuple[ServerSpec, ...] = (), config=None) -> Targets:  # type: ignore[no-untyped-def]
    return Targets(servers, ("lab",), profile_servers=profile, config=config)


def test_pick_servers_one_local_and_its_partner() -> None:
    assert pick_servers(targets(DHCP1), 1, None) == (DHCP1, None)
    assert pick_servers(targets(DHCP1, profile=(DHCP1, DHCP2)), 0, None) == (DHCP1, DHCP2)
    # Three in the profile: which one is the partner is not known.
    third = ServerSpec("dhcp3", "10.0.0.3")
    assert pick_servers(targets(DHCP1, profile=(DHCP1, DHCP2, third)), 0, None) == (DHCP1, None)
    assert pick_servers(targets(DHCP1), 1, "10.0.0.9") == (
        DHCP1,
        ServerSpec("10.0.0.9:7911", "10.0.0.9", 7911),
    )
    _, partner = pick_servers(targets(DHCP1), 1, "10.0.0.9:7000")
    assert partner == ServerSpec("10.0.0.9:7000", "10.0.0.9", 7000)


def test_pick_servers_refusals() -> None:
    with pytest.raises(LocalError) as raised:
        pick_servers(targets(DHCP1), 2, None)
    assert str(raised.value) == "give exactly one --server (the server to change)"
    with pytest.raises(LocalError) as raised:
        pick_servers(targets(DHCP1, DHCP2), 0, None)
    assert str(raised.value) == "which server should change? give --server (one of: dhcp1, dhcp2)"
    with pytest.raises(LocalError) as raised:
        pick_servers(targets(DHCP1), 1, "10.0.0.9:x")
    assert str(raised.value) == "--partner: invalid port in '10.0.0.9:x'"


def test_partner_failover_sources_in_order(tmp_path: Path) -> None:
    conf = tmp_path / "dhcpd.conf"
    conf.write_text(
        'failover peer "lab" { primary; address 10.0.0.1; peer address 10.9.9.9;'
        " peer port 999; mclt 30; split 128; load balance max seconds 3; }\n"
        'subnet 10.0.0.0 netmask 255.255.255.0 { pool { failover peer "lab";'
        " range 10.0.0.10 10.0.0.20; } }\n"
    )
    config = read_config(conf)
    plain = targets(DHCP1)
    assert partner_failover("10.5.5.5", DHCP2, DHCP1, plain, "lab") == ("10.5.5.5", 647)
    assert partner_failover("10.5.5.5:1", DHCP2, DHCP1, plain, "lab") == ("10.5.5.5", 1)
    with pytest.raises(LocalError) as raised:
        partner_failover("10.5.5.5:x", None, DHCP1, plain, "lab")
    assert str(raised.value) == "--partner-failover: invalid port in '10.5.5.5:x'"
    assert partner_failover(None, DHCP2, DHCP1, plain, "lab") == ("10.1.0.2", 848)
    portless = ServerSpec("dhcp2", "10.0.0.2", failover_address="10.1.0.2")
    assert partner_failover(None, portless, DHCP1, plain, "lab") == ("10.1.0.2", 647)
    # The targets' config, else the local server's own dhcpd.conf.
    assert partner_failover(None, None, DHCP1, targets(DHCP1, config=config), "lab") == (
        "10.9.9.9",
        999,
    )
    own = ServerSpec("dhcp1", "10.0.0.1", config=str(conf))
    assert partner_failover(None, None, own, plain, "lab") == ("10.9.9.9", 999)
    assert partner_failover(None, None, own, plain, "other") is None
    assert partner_failover(None, None, DHCP1, plain, "lab") is None


def test_partner_failover_without_peer_address() -> None:
    # dhcpd.conf requires one; a config object without it (as a library caller may build)
    # gives no address rather than a wrong one.
    from types import SimpleNamespace

    from dhcpfoctl.conf import FailoverPeerConfig
    from dhcpfoctl.model import Role

    config = SimpleNamespace(
        failover_peers={"lab": FailoverPeerConfig("lab", Role.SECONDARY, "10.0.0.2", None)}
    )
    assert partner_failover(None, None, DHCP1, targets(DHCP1, config=config), "lab") is None


def probe(**kw: object) -> PartnerProbe:
    return PartnerProbe(**kw)  # type: ignore[arg-type]


def test_probe_properties() -> None:
    assert not probe().checked and not probe().alive and not probe().down_confirmed
    assert probe(omapi="o:1").checked and probe(failover="f:1").checked
    assert probe(omapi_answers=True).alive and probe(failover_port_open=True).alive
    assert not probe(omapi_answers=False, failover_port_open=None).alive
    assert probe(omapi_refused=True).down_confirmed
    assert probe(failover_port_open=False).down_confirmed
    assert not probe(failover_port_open=None).down_confirmed


def test_danger_messages() -> None:
    assert danger(probe()) == (
        "the partner's liveness cannot be checked (give --partner HOST[:PORT] and/or "
        "--partner-failover HOST[:PORT], a profile, or --config with `peer address`)"
    )
    alive = probe(
        omapi="o:1",
        omapi_answers=True,
        failover="f:1",
        failover_port_open=True,
        evidence=["partner OMAPI o:1 answers", "x does not", "port f:1 accepts TCP connections"],
    )
    assert danger(alive) == (
        "the partner looks alive (partner OMAPI o:1 answers; port f:1 accepts TCP"
        " connections): a partner cut off from this server may still be serving clients,"
        " and both would then hand out the same addresses (split brain)"
    )
    assert danger(probe(omapi="o:1", omapi_answers=False)) is None


def test_judge_partner() -> None:
    alive = probe(omapi="o:1", omapi_answers=True, evidence=["partner OMAPI o:1 answers"])
    with pytest.raises(RefusedError) as raised:
        judge_partner(alive, force=False, endpoint="e:1")
    assert str(raised.value) == f"e:1: refusing partner-down: {danger(alive)}"
    forced = judge_partner(alive, force=True, endpoint="e:1")
    assert forced == PartnerWarning(f"--force given although {danger(alive)}", forced=True)
    assert forced.label == "DANGER"
    silent = judge_partner(probe(omapi="o:1", omapi_answers=False), force=False, endpoint="e")
    assert silent == PartnerWarning(
        "the partner did not answer at all from here (no connection refused): make sure it"
        " is down, not only cut off from this host, or it may still serve clients",
        forced=False,
    )
    assert silent.label == "caution" and silent.forced is False
    refused = probe(omapi="o:1", omapi_answers=False, omapi_refused=True)
    assert judge_partner(refused, force=False, endpoint="e") is None
    assert judge_partner(refused, force=True, endpoint="e") is None


# -- the plan ---------------------------------------------------------------------------


def info(state: S, hierarchy: int = 0) -> FailoverInfo:
    return FailoverInfo(
        name="lab", handle=1, local_state=state, partner_state=S.NORMAL, local_stos=NOW - 60,
        partner_stos=NOW - 60, hierarchy=hierarchy, mclt=30, max_response_delay=10,
        max_outstanding_updates=10, cur_unacked_updates=0, load_balance_max_secs=3,
        load_balance_hba=None, local_port=647, partner_port=847,
    )  # fmt: skip


def test_plan_partner_down() -> None:
    assert plan(DHCP1, "lab", info(S.COMMUNICATIONS_INTERRUPTED), S.PARTNER_DOWN, NOW) == [
        "dhcp1 (10.0.0.1:7911, primary), relationship 'lab': communications-interrupted"
        " -> partner-down",
        "it will answer every client and renew the partner's clients at once;",
        f"from {format_local_time(NOW + 30, NOW)} (now + MCLT 30s) it also hands out the"
        " partner's free leases and every expired or released one;",
        "a lease the partner granted is reusable once it ends: at the latest MCLT after the"
        " end this server last heard of (the partner never extends one further).",
        "Make sure the partner really is down (or cut off from every client) until it"
        " returns and recovers: otherwise both hand out the same addresses.",
    ]
    assert format_local_time(NOW + 30, NOW).endswith("(in 30s)")


def test_plan_shutdown_and_recover() -> None:
    # A --server label is the endpoint itself: not repeated.
    local = ServerSpec("10.0.0.1:7911", "10.0.0.1", 7911)
    assert plan(local, "lab", info(S.NORMAL, hierarchy=1), S.SHUTDOWN, NOW) == [
        "10.0.0.1:7911 (secondary), relationship 'lab': normal -> shutdown",
        "it will stop serving DHCP; its partner, on hearing shutdown, moves to partner-down"
        " and serves everyone.",
        "It stays in shutdown, even across a dhcpd restart, until `dhcpfoctl set-state"
        " recover` brings it back.",
    ]
    assert plan(DHCP1, "lab", info(S.SHUTDOWN), S.RECOVER, NOW) == [
        "dhcp1 (10.0.0.1:7911, primary), relationship 'lab': shutdown -> recover",
        "it will resynchronise with its partner (recover, recover-wait up to MCLT 30s,"
        " recover-done) and serve again once both are normal.",
    ]
