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

``--leases SIZE`` (e.g. ``1m``; no root needed) measures instead what one ``status`` run in
communications-interrupted costs for the endurance of a server with a SIZE-address journal
(generated once into bench/data/ by bench/run.py's generator), in this process:

* before: the whole file read and the balance computed on every run;
* after, first run: no remembered state yet, the file is read in full (the baseline);
* after, each later run: ``--append`` journal records added (a minute of a busy server),
  then a fresh follower, as a new process would, loads the state and reads only those.

Python runs with bytecode caching (in a temporary ``PYTHONPYCACHEPREFIX``, so the work tree
is untouched) even when the caller's environment sets ``PYTHONDONTWRITEBYTECODE``: an
installed dhcpfoctl has its ``.pyc`` files, and compiling every module from source on each
run would add about 30 ms that no operator pays.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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


def measure_leases(size_text: str, repeat: int, append: int) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    import generate
    from run import ensure_journal, parse_size

    from dhcpfoctl.balance import compute_balance
    from dhcpfoctl.checks.history import LeaseFollower
    from dhcpfoctl.conf import read_config
    from dhcpfoctl.leases import read_leases

    size = parse_size(size_text)
    cached, conf_path = ensure_journal(size)
    config = read_config(conf_path)
    with tempfile.TemporaryDirectory(prefix="dhcpfoctl-bench-status-") as scratch:
        os.environ["XDG_STATE_HOME"] = scratch
        leases = Path(scratch) / "dhcpd.leases"
        shutil.copyfile(cached, leases)
        now = generate.BASE_TIME + 3600
        rows: list[tuple[str, list[float]]] = []

        def timed(work: Callable[[], object]) -> float:
            started = time.perf_counter()
            work()
            return time.perf_counter() - started

        before = [
            timed(lambda: compute_balance(config, read_leases(str(leases)), now))
            for _ in range(repeat)
        ]
        rows.append(("before: full read + balance, every run", before))
        first = timed(lambda: LeaseFollower().read(str(leases), config, now))
        rows.append(("after: first run (no state yet)", [first]))
        steady = []
        for n in range(max(repeat, 3)):
            generate.append_records(leases, size, append, seed=100 + n)
            now += 60
            steady.append(timed(lambda at=now: LeaseFollower().read(str(leases), config, at)))
        rows.append((f"after: later run, {append} records appended", steady))
        states = list((Path(scratch) / "dhcpfoctl").glob("leases-*.json"))
        state_size = sum(p.stat().st_size for p in states)
    print(f"{size_text} addresses, {cached.stat().st_size / 1e9:.2f} GB journal;"
          f" state file {state_size / 1e6:.1f} MB")  # fmt: skip
    print(f"{'status endurance, per run':44} {'median':>8} {'best':>8}")
    for name, times in rows:
        print(f"{name:44} {statistics.median(times):7.3f}s {min(times):7.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--leases", metavar="SIZE", help="Measure the endurance path instead.")
    parser.add_argument("--append", type=int, default=2000, help="Records per later run.")
    args = parser.parse_args()
    if args.leases:
        measure_leases(args.leases, args.repeat, args.append)
        return

    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="dhcpfoctl-bench-pyc-") as cache:
        env["PYTHONPYCACHEPREFIX"] = cache
        # What status remembers between runs goes there too, not into the caller's home.
        env["XDG_STATE_HOME"] = cache
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
