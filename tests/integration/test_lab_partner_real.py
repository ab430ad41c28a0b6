"""``dhcpfoctl lab up --partner-address``: one lab server as the secondary of a real dhcpd.

The harness runs only the real primary (``PairConfig(external="secondary")``); the
operator's command line starts the lab server inside the secondary's namespace, on the
failover address and port the primary's ``peer address``/``peer port`` name. The judges
are independent of the code under test where possible: omshell reads both failover
states, and both lease files are compared record by record.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from dhcpfoctl.conf import read_config
from dhcpfoctl.leases import read_leases
from dhcpfoctl.model import BindingState, FailoverState

from .realpair import OMAPI_PORT, PairConfig, RealPair

pytestmark = pytest.mark.integration

S = FailoverState
#: A fresh pair connects, syncs and balances well within this on the 2-core machine.
SETTLE = 60.0
#: The lab's base port: OMAPI of a secondary is base+5, DHCP base+2.
BASE_PORT = 16700


class MixedLab:
    """The lab directory and the commands an operator types in the secondary's namespace."""

    def __init__(self, pair: RealPair, directory: Path) -> None:
        self.pair = pair
        self.directory = directory
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("DHCPFOCTL_")}
        self._env.update(NO_COLOR="1", COLUMNS="200", TERM="dumb")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        namespace = self.pair.secondary.namespace
        return subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-m", "dhcpfoctl", *args],
            env={**self._env, "DHCPFOCTL_CONFIG": str(self.directory / "config.toml")},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    def lab(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("lab", *args, "--dir", str(self.directory))

    def up_command(self) -> list[str]:
        pair, config = self.pair, self.pair.config
        primary, secondary = pair.primary, pair.secondary
        first, last = config.pool_ranges[0]
        return [
            "up",
            "--partner-address", f"{primary.failover_address}:{primary.failover_port}",
            "--address", f"{secondary.failover_address}:{secondary.failover_port}",
            "--range", f"{first}-{last}",
            "--subnet", "10.99.0.0/24",
            "--relationship", pair.relationship,
            "--dhcp-address", secondary.lan_address,
            "--omapi-address", "0.0.0.0",
            # dhcpd binds OMAPI on every address: reachable over the failover veth too
            "--partner-omapi", f"{primary.failover_address}:{OMAPI_PORT}",
            "--max-response-delay", str(config.max_response_delay),
            "--max-unacked-updates", str(config.max_unacked_updates),
            "--load-balance-max-seconds", str(config.load_balance_max_seconds),
            "--default-lease-time", str(config.default_lease_time),
            "--max-lease-time", str(config.max_lease_time),
            "--base-port", str(BASE_PORT),
        ]  # fmt: skip

    def omshell_state(self) -> S | None:
        """The lab server's local-state read with omshell from the root namespace (through
        the secondary's management address), or None while it does not answer."""
        key = read_config(str(self.directory / "secondary.conf")).keys["lab-key"]
        secret = base64.b64encode(key.secret.reveal()).decode()
        script = [
            f"server {self.pair.secondary.omapi_host}",
            f"port {BASE_PORT + 5}",
            f"key-algorithm {key.algorithm}",
            f"key {key.name} {secret}",
            "connect",
            "new failover-state",
            f'set name = "{self.pair.relationship}"',
            "open",
        ]
        try:
            result = subprocess.run(
                ["omshell"],
                input="\n".join(script) + "\n",
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return None
        match = re.search(r"^local-state = ((?:[0-9a-f]{2}:){3}[0-9a-f]{2})$", result.stdout, re.M)
        return None if match is None else S(int(match[1].replace(":", ""), 16))


def _binding_states(path: Path) -> dict[str, BindingState | None]:
    return {lease.address: lease.binding_state for lease in read_leases(str(path)).leases}


def _agree(pair: RealPair, lab: MixedLab) -> bool:
    """Both files hold the same binding state for every pool address, FREE/BACKUP split."""
    primary = _binding_states(pair.primary.leases_path)
    secondary = _binding_states(lab.directory / "secondary.leases")
    if set(primary) != set(secondary) or not primary:
        return False
    if any(primary[address] is not secondary[address] for address in primary):
        return False
    return any(state is BindingState.BACKUP for state in primary.values())


def _both_normal(pair: RealPair, lab: MixedLab) -> Callable[[], bool]:
    def normal() -> bool:
        view = pair.omapi_states("primary")
        return (
            view is not None
            and view.local_state is S.NORMAL
            and view.partner_state is S.NORMAL
            and lab.omshell_state() is S.NORMAL
        )

    return normal


def test_lab_up_partner_address_pairs_with_a_real_primary(make_pair, tmp_path: Path) -> None:
    pair = make_pair(PairConfig(external="secondary"))  # only the real primary runs
    lab = MixedLab(pair, tmp_path / "lab")
    namespace = pair.secondary.namespace
    try:
        up = lab.lab(*lab.up_command(), "--json")
        assert up.returncode == 0, up.stderr
        status = json.loads(up.stdout)
        assert status["mode"] == "mixed" and status["relay"] is None
        assert [process["name"] for process in status["processes"]] == ["secondary"]
        assert json.loads((lab.directory / "lab.json").read_text())["mode"] == "mixed"

        pair.wait_for(_both_normal(pair, lab), SETTLE, what="primary and lab both normal")
        pair.wait_for(lambda: _agree(pair, lab), SETTLE, what="both lease files to agree")

        # The profile the lab wrote shows both servers, the real one included.
        shown = lab.run("status", "--profile", "lab", "--json")
        views = json.loads(shown.stdout)["views"]
        assert shown.returncode == 0, shown.stderr
        assert len(views) == 2
        assert {(v["local_state"], v["partner_state"]) for v in views} == {("normal", "normal")}

        refused = lab.lab("cut")
        assert refused.returncode != 0
        assert refused.stderr.count("\n") == 1 and "a mixed lab has no relay" in refused.stderr

        # A crash of the lab server and a restart from its own lease file: back to normal.
        killed = lab.lab("kill", "secondary", "--signal", "KILL")
        assert killed.returncode == 0, killed.stderr
        pair.wait_states(primary=S.COMMUNICATIONS_INTERRUPTED, timeout=SETTLE)
        started = lab.lab("start", "secondary")
        assert started.returncode == 0, started.stderr
        pair.wait_for(_both_normal(pair, lab), SETTLE, what="normal again after the restart")
        pair.wait_for(lambda: _agree(pair, lab), SETTLE, what="both lease files to agree")
    finally:
        down = lab.lab("down")
    assert down.returncode == 0, down.stderr
    assert "secondary: stopped" in down.stdout
    left = subprocess.run(
        ["ip", "netns", "pids", namespace], capture_output=True, text=True, timeout=10, check=True
    )
    assert left.stdout.split() == []  # nothing of the lab is left in the namespace
