"""``dhcpfoctl status`` end to end against a real dhcpd 4.4 failover pair.

The pair (conftest ``real_pair``): primary OMAPI without a key, secondary keyed with
``LAB_KEY``; the command runs as a subprocess with a profile describing both. States are
cross-checked with omshell through the harness, never with dhcpfoctl's own client.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dhcpfoctl.errors import ExitStatus
from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi.errors import NotFoundError
from dhcpfoctl.times import format_duration

from .realpair import LAB_KEY, ROLES, PairConfig, RealPair, RunCli

pytestmark = pytest.mark.integration

COMMS_INTERRUPTED = FailoverState.COMMUNICATIONS_INTERRUPTED


def status_json(run_cli: RunCli, *args: str, profile: bool = True) -> tuple[int, dict[str, Any]]:
    code, document = run_cli.json("status", *args, profile=profile)
    assert isinstance(document, dict)
    return code, document


def views_by_server(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {view["server"]: view for view in document["views"]}


def test_status_shows_both_servers_normal(normal_pair: RealPair, run_cli: RunCli) -> None:
    code, document = status_json(run_cli)
    assert (code, document["health"], document["exit_status"]) == (0, "ok", 0)
    assert document["relationships"] == [normal_pair.relationship]
    assert document["findings"] == []
    views = views_by_server(document)
    config = normal_pair.config
    for role in ROLES:
        server, view = normal_pair.server(role), views[role]
        assert view["endpoint"] == server.omapi_endpoint
        assert view["role"] == role  # from the server's hierarchy attribute
        assert (view["local_state"], view["partner_state"]) == ("normal", "normal")
        assert view["mclt"] == config.mclt
        assert view["max_response_delay"] == config.max_response_delay
        assert view["load_balance_max_seconds"] == config.load_balance_max_seconds
        assert view["load_balance_primary_buckets"] == config.split
        omshell_view = normal_pair.omapi_states(role)
        assert omshell_view is not None
        assert view["local_stos"] == omshell_view.local_stos
        assert view["time_in_state"] == document["now"] - omshell_view.local_stos
        assert view["unacked_updates"] == omshell_view.cur_unacked_updates
        assert view["max_unacked_updates"] == config.max_unacked_updates
        # Pool counts through a lease of the profile's dhcpd.conf: the one pool, whole.
        ((first, last),) = config.pool_ranges
        (pool,) = view["pools"]
        assert pool["address"] == first
        size = int(ipaddress.IPv4Address(last)) - int(ipaddress.IPv4Address(first)) + 1
        assert pool["lease_count"] == size
        assert pool["free_leases"] + pool["backup_leases"] <= size
    signed = {entry["label"]: entry["signed"] for entry in document["servers"]}
    assert signed == {"primary": False, "secondary": True}

    human = run_cli("status")
    assert human.returncode == ExitStatus.OK, human.stderr
    assert human.stdout.count("normal") >= 4  # both servers, local and partner


def test_status_reports_a_cut_link_with_its_duration_and_follows_the_heal(
    normal_pair: RealPair, run_cli: RunCli
) -> None:
    normal_pair.cut_link()
    seen = normal_pair.wait_states(
        primary=COMMS_INTERRUPTED, secondary=COMMS_INTERRUPTED, timeout=30
    )
    stos = {role: view.local_stos for role, view in seen.items() if view is not None}
    normal_pair.wait_for(lambda: time.time() >= max(stos.values()) + 2, 5, what="2 s to pass")

    code, document = status_json(run_cli)
    assert (code, document["health"]) == (ExitStatus.WARNING, "warning")
    views = views_by_server(document)
    messages = {f["server"]: f["message"] for f in document["findings"]}
    for role in ROLES:
        view = views[role]
        assert view["local_state"] == "communications-interrupted"
        assert view["local_stos"] == stos[role]
        duration = document["now"] - stos[role]
        assert duration >= 2
        assert view["communications_interrupted_for"] == duration
        assert f"communications-interrupted for {format_duration(duration)}" in messages[role]
    codes = {(f["server"], f["code"]) for f in document["findings"]}
    assert {(role, "communications-interrupted") for role in ROLES} <= codes

    human = run_cli("status")
    assert human.returncode == ExitStatus.WARNING
    assert "communications-interrupted" in human.stdout

    normal_pair.heal_link()

    # The command itself, not the harness, follows the pair back to normal.
    normal_pair.wait_for(run_cli.status_says_normal, 60, interval=0.5, what="status: normal")


def test_wrong_or_missing_key_is_one_clear_line_and_unknown(
    normal_pair: RealPair, run_cli: RunCli
) -> None:
    secondary = normal_pair.secondary.omapi_endpoint
    wrong_secret = base64.b64encode(b"not-the-lab-secret").decode()
    lab_secret = base64.b64encode(LAB_KEY.secret.reveal()).decode()
    target = ("--server", secondary, "--peer", normal_pair.relationship)

    cases = {
        "--key": ("--key", f"{LAB_KEY.name}:{wrong_secret}"),  # right name, wrong secret
        "no key": (),
    }
    for case, key_args in cases.items():
        code, document = status_json(run_cli, *target, *key_args, profile=False)
        assert (code, document["health"]) == (ExitStatus.UNKNOWN, "unknown"), case
        (finding,) = document["findings"]
        assert finding["health"] == "unknown"
        assert secondary in finding["message"]
        assert "\n" not in finding["message"]
        expected = "INVALIDKEY" if key_args else "requires an OMAPI key"
        assert expected in finding["message"], case

        human = run_cli("status", *target, *key_args, profile=False)
        assert human.returncode == ExitStatus.UNKNOWN
        everything = human.stdout + human.stderr + json.dumps(document)
        assert wrong_secret not in everything and lab_secret not in everything
        assert "Traceback" not in everything

    # A command that is not a check reports the same as a remote error, on one line.
    result = run_cli("set-state", "partner-down", *target, *cases["--key"], "--yes", profile=False)
    assert result.returncode == ExitStatus.REMOTE_ERROR
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("dhcpfoctl: error: ") and secondary in line and "INVALIDKEY" in line
    assert wrong_secret not in result.stdout + result.stderr

    view = normal_pair.omapi_states("secondary")
    assert view is not None and view.local_state == FailoverState.NORMAL


def test_unknown_relationship_is_a_clear_error(normal_pair: RealPair, run_cli: RunCli) -> None:
    code, document = status_json(run_cli, "--peer", "no-such-peer")
    assert (code, document["health"]) == (ExitStatus.UNKNOWN, "unknown")
    for view in document["views"]:
        assert view["reachable"] is True or view["error"]
        assert "no-such-peer" in view["error"]
    assert document["findings"]
    assert all(f["health"] == "unknown" for f in document["findings"])

    human = run_cli("status", "--peer", "no-such-peer")
    assert human.returncode == ExitStatus.UNKNOWN
    assert "no-such-peer" in human.stdout

    # Not a check: the server's NOTFOUND is a remote error, on one line naming both.
    primary = normal_pair.primary.omapi_endpoint
    result = run_cli("partner-down", "--server", primary, "--peer", "no-such-peer", "--yes")
    assert result.returncode == NotFoundError.exit_status == ExitStatus.REMOTE_ERROR
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("dhcpfoctl: error: ")
    assert primary in line and "no-such-peer" in line


def test_sha256_and_sha512_keys_sign_against_real_dhcpd(
    make_pair: Callable[[PairConfig], RealPair], tmp_path: Path
) -> None:
    # The fake OMAPI server signs with dhcpfoctl's own code; only dhcpd can show that the
    # non-MD5 algorithms are spelt and computed the way it expects.
    pair = make_pair(
        PairConfig(
            primary_key=OmapiKey(
                "sha256-key", "hmac-sha256", Secret(b"a 32-byte sha256 test secret...")
            ),
            secondary_key=OmapiKey("sha512-key", "hmac-sha512", Secret(b"a sha512 test secret")),
        )
    )
    run_cli = RunCli(pair.write_profile(tmp_path / "config.toml"), tmp_path / "absent.toml")
    code, document = status_json(run_cli)
    assert code == ExitStatus.OK, document["findings"]
    assert [server["signed"] for server in document["servers"]] == [True, True]
    assert {(v["local_state"], v["partner_state"]) for v in document["views"]} == {
        ("normal", "normal")
    }
