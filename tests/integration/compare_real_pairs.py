"""Write the real dhcpd 4.4.3 golden pairs of ``tests/test_compare.py`` (run as root, once).

``python -m tests.integration.compare_real_pairs`` runs three stories on a real pair in
network namespaces (tests/integration/realpair.py) and keeps both servers' files as they
were at one instant, in ``tests/data/compare/real-NAME/`` with that instant in ``as_of``:

* ``normal``: clients served by a normal pair;
* ``cut-heal``: clients, the failover link cut (both communications-interrupted) and more
  clients on each side, the link healed and the pair normal again;
* ``partner-down-recover``: clients, the secondary killed, the primary put in partner-down
  serving more clients, the secondary restarted through recover to normal.

``compare`` must find nothing on them but updates in flight.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from dhcpfoctl.leases import read_leases
from dhcpfoctl.model import BindingState, FailoverState

from .realpair import LAN_NETWORK, PairConfig, RealPair

DATA = Path(__file__).parent.parent / "data" / "compare"
NORMAL = FailoverState.NORMAL
CONFIG = PairConfig(mclt=10)


def clients(pair: RealPair, name: str, host: int, base: int, count: int = 15) -> None:
    """``count`` DORAs broadcast on the LAN through a relay address (both servers hear them)."""
    namespace = pair.add_lan_host(name, address=f"{LAN_NETWORK[host]}/{LAN_NETWORK.prefixlen}")
    tool = shutil.which("perfdhcp") or "/usr/sbin/perfdhcp"
    subprocess.run(
        ["ip", "netns", "exec", namespace, tool, "-4", "-l", "eth0", "-b",
         f"mac=02:99:{base:02x}:00:00:00", "-R", str(count), "-r", "10", "-n", str(count),
         "-p", "4", "-W", "1000000", "all"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def agreeing(pair: RealPair) -> bool:
    """Both files hold the same active bindings (the updates have been exchanged)."""
    views = []
    for server in (pair.primary, pair.secondary):
        db = read_leases(server.leases_path)
        views.append(
            {
                (lease.address, lease.hardware_address)
                for lease in db.leases
                if lease.binding_state is BindingState.ACTIVE
            }
        )
    return views[0] == views[1]


def keep(pair: RealPair, name: str) -> None:
    pair.wait_for(lambda: agreeing(pair), 30, what="both files to agree")
    folder = DATA / f"real-{name}"
    with tempfile.TemporaryDirectory() as scratch:
        snapshot = pair.snapshot(Path(scratch))
        folder.mkdir(parents=True, exist_ok=True)
        for role, files in snapshot.files.items():
            shutil.copyfile(files.leases, folder / f"{role}.leases")
            shutil.copyfile(files.conf, folder / f"{role}.conf")
        (folder / "as_of").write_text(f"{int(snapshot.taken_at)}\n")
    print(folder)


def normal(pair: RealPair) -> None:
    clients(pair, "c1", 5, 0x21)


def cut_heal(pair: RealPair) -> None:
    clients(pair, "c1", 5, 0x31)
    pair.cut_link()
    interrupted = FailoverState.COMMUNICATIONS_INTERRUPTED
    pair.wait_states(primary=interrupted, secondary=interrupted, timeout=30)
    clients(pair, "c2", 6, 0x32)
    pair.heal_link()
    pair.wait_states(primary=NORMAL, secondary=NORMAL, timeout=60)


def partner_down_recover(pair: RealPair) -> None:
    clients(pair, "c1", 5, 0x41)
    pair.kill("secondary")
    pair.wait_states(primary=FailoverState.COMMUNICATIONS_INTERRUPTED, timeout=30)
    pair.omapi_set_local_state("primary", FailoverState.PARTNER_DOWN)
    pair.wait_states(primary=FailoverState.PARTNER_DOWN, timeout=10)
    clients(pair, "c2", 6, 0x42)
    pair.start("secondary")
    pair.wait_states(primary=NORMAL, secondary=NORMAL, timeout=90)


STORIES: dict[str, Callable[[RealPair], None]] = {
    "normal": normal,
    "cut-heal": cut_heal,
    "partner-down-recover": partner_down_recover,
}


def main() -> None:
    for name, story in STORIES.items():
        with RealPair(CONFIG) as pair:
            story(pair)
            keep(pair, name)


if __name__ == "__main__":
    main()
