"""dhcpfoctl's lab server as the failover partner of a real dhcpd 4.4.3 (a mixed pair).

The lab server runs on the same dhcpd.conf, in the same namespace and on the same addresses
as the dhcpd it replaces (``PairConfig(lab=ROLE)``, realpair.py); the real server and
omshell are the judges: states are read with omshell from both, leases from both files.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from dhcpfoctl.leases import read_leases
from dhcpfoctl.model import BindingState, FailoverState, Role

from .realpair import LAB_KEY, ROLES, PairConfig, RealPair

pytestmark = pytest.mark.integration

S = FailoverState
#: A fresh pair syncs, balances and settles well within this on the 2-core machine.
SETTLE = 60.0


def _mixed(make_pair: Callable[[PairConfig], RealPair], lab: Role) -> RealPair:
    # The lab side keyed, the real side not: both OMAPI set-ups are exercised.
    keys = {f"{lab}_key": LAB_KEY}
    return make_pair(PairConfig(lab=lab, **keys))  # type: ignore[arg-type]


def _binding_states(pair: RealPair) -> dict[Role, dict[str, BindingState | None]]:
    return {
        role: {
            lease.address: lease.binding_state
            for lease in read_leases(str(pair.server(role).leases_path)).leases
        }
        for role in ROLES
    }


def _agree(pair: RealPair) -> bool:
    """Both files hold the same binding state for every pool address, FREE/BACKUP split."""
    states = _binding_states(pair)
    primary, secondary = states[Role.PRIMARY], states[Role.SECONDARY]
    if set(primary) != set(secondary) or not primary:
        return False
    if any(primary[a] is not secondary[a] for a in primary):
        return False
    backups = sum(state is BindingState.BACKUP for state in primary.values())
    return backups > 0  # the primary's balance run has given the secondary its share


@pytest.mark.parametrize("lab", [Role.SECONDARY, Role.PRIMARY])
def test_a_real_dhcpd_and_the_lab_reach_normal_and_agree_on_every_lease(make_pair, lab) -> None:
    pair = _mixed(make_pair, lab)  # start_pair waited for normal/normal, read by omshell
    pair.wait_for(lambda: _agree(pair), SETTLE, what="both lease files to agree")
    view = pair.omapi_states(lab)
    assert view is not None and view.hierarchy == (0 if lab is Role.PRIMARY else 1)
    assert view.mclt == pair.config.mclt


def test_cut_link_interrupts_both_and_heal_returns_to_normal(make_pair) -> None:
    pair = _mixed(make_pair, Role.SECONDARY)
    pair.cut_link()  # packets dropped silently: only max-response-delay notices
    pair.wait_states(
        primary=S.COMMUNICATIONS_INTERRUPTED,
        secondary=S.COMMUNICATIONS_INTERRUPTED,
        timeout=SETTLE,
    )
    pair.heal_link()
    pair.wait_states(primary=S.NORMAL, secondary=S.NORMAL, timeout=SETTLE)
    pair.wait_for(lambda: _agree(pair), SETTLE, what="both lease files to agree")


def test_killed_lab_server_partner_down_then_restart_recovers_to_normal(make_pair) -> None:
    pair = _mixed(make_pair, Role.SECONDARY)
    pair.wait_for(lambda: _agree(pair), SETTLE, what="both lease files to agree")
    pair.kill(Role.SECONDARY, signal.SIGKILL)
    pair.wait_states(primary=S.COMMUNICATIONS_INTERRUPTED, timeout=SETTLE)
    pair.omapi_set_local_state(Role.PRIMARY, S.PARTNER_DOWN)
    pair.wait_states(primary=S.PARTNER_DOWN, timeout=SETTLE)
    pair.start(Role.SECONDARY)  # from its own journal: it was normal when killed
    pair.wait_states(primary=S.NORMAL, secondary=S.NORMAL, timeout=3 * SETTLE)
    assert any("I move from recover" in line for line in pair.log_lines(Role.SECONDARY)), (
        "the restarted lab server recovered"
    )
    pair.wait_for(lambda: _agree(pair), SETTLE, what="both lease files to agree")


def test_lab_server_shutdown_hands_over_to_a_real_partner(make_pair) -> None:
    """SIGTERM as dhcpd handles it: shutdown, the partner goes partner-down, then recover."""
    pair = _mixed(make_pair, Role.SECONDARY)
    pair.stop(Role.SECONDARY, signal.SIGTERM)
    pair.wait_states(primary=S.PARTNER_DOWN, timeout=SETTLE)
    lines = pair.log_lines(Role.SECONDARY)
    assert any("I move from normal to shutdown" in line for line in lines)
    record = read_leases(str(pair.secondary.leases_path)).failover[pair.relationship]
    assert record.my_state is S.RECOVER
    pair.start(Role.SECONDARY)
    pair.wait_states(primary=S.NORMAL, secondary=S.NORMAL, timeout=3 * SETTLE)
