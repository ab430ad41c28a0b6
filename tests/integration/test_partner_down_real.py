"""``dhcpfoctl partner-down`` / ``set-state`` end to end against a real dhcpd 4.4 pair.

Every state the command claims is read back independently with omshell (the harness), and
dhcpd's own log must show the transition.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from dhcpfoctl.errors import ExitStatus
from dhcpfoctl.model import FailoverState

from .realpair import LAB_KEY, FailoverView, PairConfig, RealPair, Role, RunCli

pytestmark = pytest.mark.integration

COMMS_INTERRUPTED = FailoverState.COMMUNICATIONS_INTERRUPTED


def omshell_state(pair: RealPair, role: Role) -> FailoverView:
    view = pair.omapi_states(role)
    assert view is not None, f"{role} does not answer omshell"
    return view


def test_refused_while_the_pair_is_normal(normal_pair: RealPair, run_cli: RunCli) -> None:
    primary = normal_pair.primary.omapi_endpoint
    result = run_cli("partner-down", "--server", primary, "--yes")
    assert result.returncode == ExitStatus.REFUSED
    (line,) = result.stderr.strip().splitlines()
    assert primary in line and "communications-interrupted" in line
    assert omshell_state(normal_pair, "primary").local_state == FailoverState.NORMAL


def test_refused_while_the_partner_answers_after_a_link_cut(
    normal_pair: RealPair, run_cli: RunCli
) -> None:
    normal_pair.cut_link()
    normal_pair.wait_states(primary=COMMS_INTERRUPTED, secondary=COMMS_INTERRUPTED, timeout=30)
    primary, secondary = normal_pair.primary, normal_pair.secondary
    for extra in ((), ("--dry-run",)):
        result = run_cli("partner-down", "--server", primary.omapi_endpoint, "--yes", *extra)
        assert result.returncode == ExitStatus.REFUSED, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert "refusing partner-down" in line
        # the evidence names both ways the partner was seen alive
        assert secondary.omapi_endpoint in line
        assert f"{secondary.failover_address}:{secondary.failover_port}" in line
    assert omshell_state(normal_pair, "primary").local_state == COMMS_INTERRUPTED
    assert not any("to partner-down" in line for line in normal_pair.log_lines("primary"))


def test_refused_when_only_the_failover_port_shows_the_partner_alive(
    normal_pair: RealPair, run_cli: RunCli
) -> None:
    primary, secondary = normal_pair.primary, normal_pair.secondary
    normal_pair.cut_link()
    normal_pair.silence_omapi("secondary")
    normal_pair.wait_states(primary=COMMS_INTERRUPTED, timeout=30)
    assert normal_pair.omapi_states("secondary", timeout=1) is None  # silent from here

    result = run_cli("partner-down", "--server", primary.omapi_endpoint, "--yes", "--timeout", "1")
    assert result.returncode == ExitStatus.REFUSED, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"{secondary.failover_address}:{secondary.failover_port} accepts" in line
    assert f"{secondary.omapi_endpoint} answers" not in line
    assert omshell_state(normal_pair, "primary").local_state == COMMS_INTERRUPTED


def test_succeeds_with_a_caution_when_the_partner_is_unreachable(
    normal_pair: RealPair, run_cli: RunCli
) -> None:
    """Silence (no reset) on both probes: maybe dead, maybe only cut off from here."""
    normal_pair.cut_link()
    normal_pair.isolate("secondary")
    normal_pair.wait_states(primary=COMMS_INTERRUPTED, timeout=30)
    primary = normal_pair.primary.omapi_endpoint

    result = run_cli("partner-down", "--server", primary, "--yes", "--timeout", "1", "--json")
    assert result.returncode == ExitStatus.OK, result.stderr
    report = json.loads(result.stdout)
    assert report["partner"]["omapi_answers"] is False
    assert report["partner"]["failover_port_open"] is None  # silence, not a refusal
    assert report["warnings"], "silence must come with a caution"
    assert omshell_state(normal_pair, "primary").local_state == FailoverState.PARTNER_DOWN

    # The partner was alive all along: once reachable again the pair resolves the
    # conflict (potential-conflict, conflict-done) and status follows it to normal.
    normal_pair.heal_all()
    normal_pair.wait_for(run_cli.status_says_normal, 60, interval=0.5, what="status: normal")


@pytest.mark.parametrize("survivor", ["primary", "secondary"])
def test_succeeds_and_reads_back_once_the_partner_is_down(
    normal_pair: RealPair, run_cli: RunCli, survivor: Role
) -> None:
    """On the unkeyed primary and on the keyed secondary (signed UPDATE)."""
    server, partner = normal_pair.server(survivor), normal_pair.partner(survivor)
    normal_pair.kill(partner.role)
    wanted = {survivor: COMMS_INTERRUPTED}
    normal_pair.wait_states(**wanted, timeout=30)
    before = omshell_state(normal_pair, survivor)
    command = ("partner-down", "--server", server.omapi_endpoint, "--yes", "--json")

    dry = run_cli(*command, "--dry-run")
    assert dry.returncode == ExitStatus.OK, dry.stderr
    assert json.loads(dry.stdout)["performed"] is False
    assert omshell_state(normal_pair, survivor).local_state == COMMS_INTERRUPTED

    result = run_cli(*command)
    assert result.returncode == ExitStatus.OK, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    after = omshell_state(normal_pair, survivor)  # independent read-back
    assert after.local_state == FailoverState.PARTNER_DOWN
    assert report["performed"] is True and report["role"] == survivor
    assert report["before"]["local_state"] == "communications-interrupted"
    assert report["before"]["local_stos"] == before.local_stos
    assert report["after"] == {"local_state": "partner-down", "local_stos": after.local_stos}
    assert report["peer_leases_usable_at"] == after.local_stos + normal_pair.config.mclt
    assert report["partner"]["alive"] is False
    assert report["partner"]["failover"] == f"{partner.failover_address}:{partner.failover_port}"
    assert "verified" in result.stderr
    moved = f"failover peer {normal_pair.relationship}: I move from {before.local_state.keyword}"
    assert f"{moved} to partner-down" in normal_pair.log_lines(survivor)
    if survivor == "secondary":
        assert server.key == LAB_KEY  # the signed path really was exercised

    # Already there: nothing to write, still exit 0, state unchanged.
    again = run_cli(*command)
    assert again.returncode == ExitStatus.OK
    assert json.loads(again.stdout)["performed"] is False
    assert omshell_state(normal_pair, survivor).local_stos == after.local_stos

    # The partner comes back (recover, recover-wait within MCLT, recover-done):
    # status follows the pair back to normal by itself.
    normal_pair.start(partner.role)
    normal_pair.wait_for(run_cli.status_says_normal, 60, interval=0.5, what="status: normal")


def test_set_state_refuses_states_an_operator_may_not_force(
    normal_pair: RealPair, run_cli: RunCli
) -> None:
    primary = normal_pair.primary.omapi_endpoint
    for state in ("normal", "conflict-done", "startup", "12"):  # never written
        result = run_cli("set-state", state, "--server", primary, "--yes")
        assert result.returncode == ExitStatus.INPUT_ERROR, state
        (line,) = result.stderr.strip().splitlines()
        assert "partner-down" in line and "shutdown" in line
    # recover is the way out of shutdown only
    result = run_cli("set-state", "recover", "--server", primary, "--yes")
    assert result.returncode == ExitStatus.REFUSED
    (line,) = result.stderr.strip().splitlines()
    assert primary in line and "shutdown" in line
    assert omshell_state(normal_pair, "primary").local_state == FailoverState.NORMAL


def test_set_state_shutdown_hands_the_pool_to_the_partner(
    make_pair: Callable[[PairConfig], RealPair], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # shutdown sticks (see below), so it gets a pair of its own
    pair = make_pair(PairConfig(secondary_key=LAB_KEY))
    profile = pair.write_profile(tmp_path_factory.mktemp("shutdown") / "config.toml")
    run = RunCli(profile, profile.with_name("absent.toml"))
    result = run(
        "set-state", "shutdown", "--server", pair.secondary.omapi_endpoint, "--yes", "--json"
    )
    assert result.returncode == ExitStatus.OK, result.stderr
    report = json.loads(result.stdout)
    assert report["after"]["local_state"] == "shutdown"
    assert omshell_state(pair, "secondary").local_state == FailoverState.SHUTDOWN
    pair.wait_states(primary=FailoverState.PARTNER_DOWN, timeout=30)

    # What an operator must know (dhcpd 4.4.3): shutdown is written to the lease file and
    # survives a restart; only forcing recover brings the server back.
    logged = len(pair.log_lines("secondary"))
    pair.restart("secondary")
    back_in_shutdown = f"failover peer {pair.relationship}: I move from startup to shutdown"
    pair.wait_for(
        lambda: back_in_shutdown in pair.log_lines("secondary")[logged:],
        30,
        what="the restarted secondary to return to shutdown",
    )
    assert omshell_state(pair, "secondary").local_state == FailoverState.SHUTDOWN

    result = run("set-state", "recover", "--server", pair.secondary.omapi_endpoint, "--yes")
    assert result.returncode == ExitStatus.OK, result.stderr
    pair.wait_states(primary=FailoverState.NORMAL, secondary=FailoverState.NORMAL, timeout=30)
    pair.wait_for(run.status_says_normal, 30, interval=0.5, what="status: normal")
