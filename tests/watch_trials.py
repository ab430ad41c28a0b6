"""Acceptance trials of ``dhcpfoctl watch`` on a lab pair (loopback, no root).

One lab with short timers serves many trials; each trial starts a real watcher process
(``python -m dhcpfoctl watch --act``) on the lab's profile, with DHCP clients running, then:

* ``death``: kill -9 one server; the watcher must force partner-down on the other within
  T + 10 s of the kill;
* ``partition``: cut the failover link (both alive, both serving); the watcher must not
  act, and its stuck-link alert must fire;
* ``restart``: a death, with the watcher killed (-9) and restarted mid-incident before it
  acts and again after it acted: exactly one partner-down.

Used by ``tests/test_watch_lab.py`` (a few trials) and ``bench/bench_watch.py`` (many).
Every wait is a bounded poll; every process started here is stopped by its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dhcpfoctl.errors import DhcpfoctlError
from dhcpfoctl.lab.cluster import HOST, KEY_NAME, RELATIONSHIP, ROLES, Lab, LabOptions, LabPorts
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.failover import read_failover

S = FailoverState
#: T of the trials, and the lab's timers: short, so that a trial takes seconds.
T = 8
LAB = dict(mclt=10, max_response_delay=3, default_lease_time=20, max_lease_time=20, pool=80)


@dataclass
class Trial:
    kind: str
    killed: str | None = None
    acted: int = 0  # partner-down performed by the watcher(s)
    time_to_act: float | None = None  # seconds from the fault to the read-back
    stuck_alert: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def false_action(self) -> bool:
        return self.kind == "partition" and self.acted > 0

    @property
    def ok(self) -> bool:
        if self.kind == "partition":
            return self.acted == 0 and self.stuck_alert
        return self.acted == 1 and self.time_to_act is not None and self.time_to_act <= T + 10


def state(lab: Lab, role: str) -> FailoverState | None:
    from dhcpfoctl.conf import read_config

    key = read_config(str(lab.conf(role))).keys[KEY_NAME]
    port = LabPorts(lab.options().base_port).omapi(role)
    try:
        with OmapiClient(HOST, port, key, timeout=1.0) as client:
            return read_failover(client, RELATIONSHIP).local_state
    except DhcpfoctlError:
        return None


def wait_normal(lab: Lab, timeout: float = 90) -> None:
    """Heal, start what is down, and poll (bounded) until both servers are normal."""
    lab.heal()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for role in ROLES:
            if lab.pid(role) is None:
                lab.start(role)
        if all(state(lab, role) == S.NORMAL for role in ROLES):
            return
        time.sleep(0.3)
    raise AssertionError(f"not normal in {timeout} s: {[state(lab, r) for r in ROLES]}")


@contextmanager
def lab_pair(directory: Path, base_port: int) -> Iterator[Lab]:
    lab = Lab(directory)
    try:
        lab.up(LabOptions(base_port=base_port, **LAB))  # type: ignore[arg-type]
        wait_normal(lab)
        yield lab
    finally:
        lab.down(timeout=5)


@contextmanager
def clients(lab: Lab) -> Iterator[None]:
    """DHCP clients against both servers for the trial (renewing every 10 s)."""
    stop = threading.Event()
    thread = threading.Thread(
        target=lab.clients,
        args=(30,),
        kwargs={"rate": 20.0, "duration": 600.0, "release": False, "until": stop.is_set},
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


class WatcherProcess:
    """A ``dhcpfoctl watch --act`` process on the lab's profile, with its own journal."""

    def __init__(self, lab: Lab, journal: Path) -> None:
        self.lab, self.journal = lab, journal
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, DHCPFOCTL_CONFIG=str(self.lab.profile))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dhcpfoctl", "watch", "--act", "--interval", "1",
             "--interrupted-for", f"{T}s", "--silent-for", "2s", "--stuck-after", f"{T - 2}s",
             "--timeout", "1", "--dhcp-probe-from", f"{HOST}:0", "--dhcp-probe-timeout", "0.5",
             "--journal", str(self.journal), "--json"],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # ready once it has journalled its first poll (its transitions or a later record)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(r["kind"] == "transition" for r in self.records()) or self._polled():
                return
            time.sleep(0.1)
        raise AssertionError("the watcher did not poll in 20 s")

    def _polled(self) -> bool:
        starts = [i for i, r in enumerate(self.records()) if r["kind"] == "start"]
        return bool(starts) and len(self.records()) > starts[-1] + 1

    def records(self) -> list[dict]:
        from dhcpfoctl.watch.history import read_journal

        return list(read_journal(self.journal))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)
        self.process = None


def performed(records: list[dict]) -> list[dict]:
    return [r for r in records if r["kind"] == "outcome" and r["result"] == "performed"]


def run_trial(lab: Lab, kind: str, index: int, workdir: Path) -> Trial:
    trial = Trial(kind)
    wait_normal(lab)
    journal = workdir / f"watch-{kind}-{index}.jsonl"
    watcher = WatcherProcess(lab, journal)
    with clients(lab):
        time.sleep(2)  # clients bound before the fault
        watcher.start()
        try:
            if kind == "partition":
                lab.cut()
                fault = time.time()
                _wait(lambda: _stuck(watcher.records()), T + 10)
                time.sleep(max(0.0, fault + T + 6 - time.time()))  # past T: would it act?
                records = watcher.records()
                trial.stuck_alert = _stuck(records)
                trial.acted = len(performed(records))
            else:
                victim = ROLES[index % 2]
                trial.killed = victim
                lab.kill(victim, signal.SIGKILL)
                fault = time.time()
                if kind == "restart":
                    time.sleep(T / 2)
                    watcher.kill()
                    watcher.start()
                _wait(lambda: bool(performed(watcher.records())), T + 20)
                if kind == "restart" and performed(watcher.records()):
                    watcher.kill()
                    watcher.start()
                    time.sleep(3)  # a few polls: no second action
                records = watcher.records()
                done = performed(records)
                trial.acted = len(done)
                intents = [r for r in records if r["kind"] == "intent"]
                if len(intents) != trial.acted:
                    trial.notes.append(f"{len(intents)} intents, {trial.acted} performed")
                if done:
                    trial.time_to_act = round(done[0]["t"] - fault, 2)
        finally:
            watcher.kill(signal.SIGTERM)
            if kind == "partition":
                lab.heal()
    return trial


def _stuck(records: list[dict]) -> bool:
    return any(r["kind"] == "alert" and r["code"] == "stuck-link" for r in records)


def _wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def table(trials: list[Trial]) -> list[dict[str, object]]:
    """One row per kind: trials, acted, time to act min/median/max, false actions, ok."""
    rows = []
    for kind in ("death", "partition", "restart"):
        some = [t for t in trials if t.kind == kind]
        if not some:
            continue
        times = sorted(t.time_to_act for t in some if t.time_to_act is not None)
        rows.append(
            {
                "kind": kind,
                "trials": len(some),
                "acted": sum(1 for t in some if t.acted),
                "time_to_act_min": times[0] if times else None,
                "time_to_act_median": times[len(times) // 2] if times else None,
                "time_to_act_max": times[-1] if times else None,
                "false_actions": sum(1 for t in some if t.false_action),
                "double_actions": sum(1 for t in some if t.acted > 1),
                "ok": sum(1 for t in some if t.ok),
            }
        )
    return rows
