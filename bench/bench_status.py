"""Benchmark ``dhcpfoctl --version`` and ``dhcpfoctl status`` next to omshell, in one run.

    python bench/bench_status.py [--repeat 15]        # as root: builds a real dhcpd pair

Starts a real dhcpd 4.4 failover pair with tests/integration/realpair.py (network
namespaces; the primary unkeyed, the secondary keyed), then times, as fresh processes:

* ``dhcpfoctl --version``;
* ``dhcpfoctl status`` for both servers (profile written by the harness);
* the omshell equivalent: one omshell per server (key for the secondary), opening the
  failover-state object, one after the other, as an operator's script would.

Wall time per command: median and best of ``--repeat`` runs, after one warm-up run.
Targets: ``--version`` at most 0.12 s, ``status`` at most 0.25 s on the reference machine.

Python runs with bytecode caching (in a temporary ``PYTHONPYCACHEPREFIX``, so the work tree
is untouched) even when the caller's environment sets ``PYTHONDONTWRITEBYTECODE``: an
installed dhcpfoctl has its ``.pyc`` files, and compiling every module from source on each
run would add about 30 ms that no operator pays.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.integration.realpair import LAB_KEY, PairConfig, RealPair, Server  # noqa: E402

TARGETS = {"dhcpfoctl --version": 0.12, "dhcpfoctl status (both servers)": 0.25}
DHCPFOCTL = str(Path(sys.executable).with_name("dhcpfoctl"))


def wall_times(
    argv: Sequence[str], repeat: int, env: dict[str, str], stdin: str = ""
) -> list[float]:
    times = []
    for attempt in range(repeat + 1):
        started = time.perf_counter()
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=env, timeout=30, check=False
        )
        if attempt:  # the first run fills the bytecode cache
            times.append(time.perf_counter() - started)
        if result.returncode not in (0, 1):
            raise SystemExit(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
    return times


def omshell_script(server: Server, relationship: str) -> str:
    lines = [f"server {server.omapi_host}", f"port {server.omapi_port}"]
    if server.key is not None:
        secret = base64.b64encode(server.key.secret.reveal()).decode()
        lines.append(f"key {server.key.name} {secret}")
    lines += ["connect", "new failover-state", f'set name = "{relationship}"', "open", ""]
    return "\n".join(lines)


def omshell_both(pair: RealPair, repeat: int, env: dict[str, str]) -> list[float]:
    scripts = [
        omshell_script(server, pair.relationship) for server in (pair.primary, pair.secondary)
    ]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for script in scripts:
            result = subprocess.run(
                ["omshell"], input=script, capture_output=True, text=True, env=env, timeout=30
            )
            if "local-state" not in result.stdout:
                raise SystemExit(f"omshell did not read the failover state: {result.stdout!r}")
        times.append(time.perf_counter() - started)
    return times


def measure(repeat: int, env: dict[str, str]) -> list[tuple[str, list[float]]]:
    rows: list[tuple[str, list[float]]] = []
    rows.append(("dhcpfoctl --version", wall_times([DHCPFOCTL, "--version"], repeat, env)))
    rows.append(("python3 -c pass (interpreter floor)",
                 wall_times([sys.executable, "-c", "pass"], repeat, env)))  # fmt: skip
    with RealPair(PairConfig(secondary_key=LAB_KEY)) as pair:
        profile = pair.write_profile(pair.workdir / "config.toml")
        env["DHCPFOCTL_CONFIG"] = str(profile)
        status = [DHCPFOCTL, "status"]
        rows.append(("dhcpfoctl status (both servers)", wall_times(status, repeat, env)))
        rows.append(("dhcpfoctl status --json", wall_times([*status, "--json"], repeat, env)))
        rows.append(("omshell, both servers (2 processes)", omshell_both(pair, repeat, env)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="dhcpfoctl-bench-pyc-") as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        rows = measure(args.repeat, env)
    print(f"{'command':40} {'median':>8} {'best':>8}  target")
    for name, times in rows:
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"<= {target:.2f} s " + (
                "ok" if statistics.median(times) <= target else "MISSED"
            )
        print(f"{name:40} {statistics.median(times):7.3f}s {min(times):7.3f}s  {verdict}")


if __name__ == "__main__":
    main()
