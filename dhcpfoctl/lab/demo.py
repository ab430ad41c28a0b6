"""``dhcpfoctl lab demo``: the outage story of a failover pair, played on a lab pair.

The story is told with the commands an operator would type (``dhcpfoctl status``,
``dhcpfoctl partner-down``): the demo hands each one to its ``show`` callback, which runs it
and reports the exit status, so what the demo shows is exactly what those commands print
against dhcpd. Between the steps it waits, bounded, for the servers' states over OMAPI.

Two stories:

* outage (default): normal with clients → the failover link drops (the partner is alive):
  partner-down is refused → the partner dies: partner-down is accepted → the MCLT countdown
  → the partner returns, recovers → normal.
* partition: normal → the link is cut, both servers live and serve their own clients →
  partner-down is refused, and why it would be wrong → heal → normal.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from dhcpfoctl.conf import read_config
from dhcpfoctl.errors import DhcpfoctlError, ExitStatus, RemoteError
from dhcpfoctl.lab.cluster import HOST, KEY_NAME, RELATIONSHIP, ROLES, Lab, LabOptions, LabPorts
from dhcpfoctl.lab.population import PopulationStats
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.failover import FailoverInfo, read_failover

S = FailoverState

#: A lab that moves fast enough for a story under a minute: MCLT 10 s, a dead link noticed
#: in 3 s, leases short enough that renewals are seen.
DEMO_OPTIONS = LabOptions(
    pool=40,
    mclt=10,
    max_response_delay=3,
    default_lease_time=30,
    max_lease_time=60,
    min_balance=5,
    max_balance=30,
)
#: Bound on every wait of the story (a fresh pair reaches normal in a few seconds).
STEP_TIMEOUT = 60.0
POLL = 0.3


@dataclass(frozen=True, slots=True)
class Narration:
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Command:
    """A dhcpfoctl command line as the operator types it (without ``dhcpfoctl``)."""

    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Milestone:
    elapsed: float
    text: str


Shown = Narration | Command
#: Shows a narration (returns None) or runs a command (returns its exit status).
Show = Callable[[Shown], int | None]


class DemoFailed(RemoteError):
    """The lab did not reach a state the story needs within the bound."""

    def __init__(self, message: str) -> None:
        super().__init__("lab demo", message)


class Demo:
    def __init__(
        self,
        lab: Lab,
        show: Show,
        *,
        clients: int = 12,
        clock: Callable[[], float] = time.monotonic,
        started_at: float | None = None,
    ) -> None:
        self.lab = lab
        self.show = show
        self.clients = clients
        self._clock = clock
        #: Wall-clock start of the story (``started_at``: before the lab came up, so that
        #: the pair's own start-up is part of the summary); milestones count from it too.
        self._wall_start = time.time() if started_at is None else started_at
        self._start = clock() - (time.time() - self._wall_start)
        self.milestones: list[Milestone] = []
        self._stop_clients = threading.Event()
        self._clients_thread: threading.Thread | None = None
        self.client_stats: PopulationStats | None = None
        self._keys = {role: read_config(str(lab.conf(role))).keys[KEY_NAME] for role in ROLES}
        self._ports = LabPorts(lab.options().base_port)

    # -- what the story is made of -----------------------------------------------------
    def _mark(self, text: str) -> None:
        self.milestones.append(Milestone(self._clock() - self._start, text))

    def _say(self, title: str, text: str) -> None:
        self.show(Narration(title, text))

    def _run(self, *argv: str) -> int:
        status = self.show(Command(argv))
        return int(status or 0)

    def info(self, role: str) -> FailoverInfo | None:
        """``role``'s failover-state over OMAPI, ``None`` if it does not answer."""
        try:
            with OmapiClient(
                HOST, self._ports.omapi(role), self._keys[role], timeout=2.0
            ) as client:
                return read_failover(client, RELATIONSHIP)
        except DhcpfoctlError:
            return None

    def _wait(
        self, what: str, condition: Callable[[], bool], timeout: float = STEP_TIMEOUT
    ) -> None:
        deadline = self._clock() + timeout
        while not condition():
            if self._clock() > deadline:
                raise DemoFailed(f"gave up after {timeout:.0f} s waiting for {what}")
            time.sleep(POLL)

    def _states_are(self, primary: FailoverState | None, secondary: FailoverState | None) -> bool:
        for role, wanted in zip(ROLES, (primary, secondary), strict=True):
            if wanted is None:
                continue
            info = self.info(role)
            if info is None or info.local_state is not wanted:
                return False
        return True

    def _start_clients(self) -> None:
        def run() -> None:
            def keep(stats: PopulationStats) -> None:
                self.client_stats = replace(stats, latencies=[])

            self.lab.clients(
                self.clients,
                rate=10.0,
                duration=10 * STEP_TIMEOUT,
                release=True,
                progress=keep,
                until=self._stop_clients.is_set,
            )

        self._clients_thread = threading.Thread(target=run, name="lab-demo-clients", daemon=True)
        self._clients_thread.start()

    def close(self) -> None:
        """Stop the clients (their releases go out); idempotent."""
        self._stop_clients.set()
        if self._clients_thread is not None:
            self._clients_thread.join(10.0)

    def _bound(self) -> int:
        return self.client_stats.bound if self.client_stats else 0

    # -- the stories -------------------------------------------------------------------
    def opening(self) -> None:
        self._say(
            "A failover pair in normal state",
            "Two lab servers share one pool of 40 addresses; the failover link between them"
            " goes through a relay the lab can cut. MCLT is 10 s so that the story is short.",
        )
        self._wait("both servers in normal", lambda: self._states_are(S.NORMAL, S.NORMAL))
        self._mark("both servers normal")
        self._start_clients()
        self._wait(
            f"{self.clients} clients bound", lambda: self._bound() >= self.clients, STEP_TIMEOUT
        )
        self._mark(f"{self._bound()} clients bound (load-balanced across both servers)")
        self._run("status")

    def outage(self) -> None:
        self.opening()
        self._say(
            "The secondary hangs",
            "Its process stops (SIGSTOP): no more messages on the failover link, but its"
            " ports still accept connections. After max-response-delay (3 s) the primary"
            " enters communications-interrupted: it serves only its own free leases.",
        )
        hung = self.lab.pid("secondary")
        if hung is None:
            raise DemoFailed("the secondary is not running")
        os.kill(hung, signal.SIGSTOP)
        self._wait(
            "the primary in communications-interrupted",
            lambda: self._states_are(S.COMMUNICATIONS_INTERRUPTED, None),
        )
        self._mark("secondary hung: primary communications-interrupted")
        self._say(
            "partner-down, too early",
            "The secondary's failover port still accepts connections: something holds it."
            " A partner that may come back at any moment must not be declared down.",
        )
        refused = self._run("partner-down", "--server", "primary", "--yes")
        if refused != ExitStatus.REFUSED:
            raise DemoFailed(f"partner-down was not refused (exit {refused})")
        self._mark("partner-down refused: the partner's process still holds its ports")
        self._say(
            "The secondary dies",
            "It is killed (SIGKILL): nothing answers on its ports any more. Now partner-down"
            " is safe, and dhcpfoctl checks that before it acts.",
        )
        self.lab.kill("secondary", signal.SIGKILL)
        self._mark("secondary killed")
        accepted = self._run("partner-down", "--server", "primary", "--yes")
        if accepted != ExitStatus.OK:
            raise DemoFailed(f"partner-down failed (exit {accepted})")
        self._wait("the primary in partner-down", lambda: self._states_are(S.PARTNER_DOWN, None))
        self._mark("primary in partner-down")
        info = self.info("primary")
        mclt_ends = (info.local_stos + info.mclt) if info else 0
        self._say(
            "The MCLT countdown",
            "In partner-down the primary answers every client at once, but it may take the"
            " secondary's free leases only MCLT after it entered partner-down"
            " (local-stos + MCLT): the secondary may have promised them until then.",
        )
        self._run("status")
        self._wait("MCLT to pass", lambda: time.time() > mclt_ends + 1, STEP_TIMEOUT)
        self._mark("MCLT passed: the primary may allocate every free lease")
        self._say(
            "The secondary returns",
            "It restarts from its lease file, learns that its partner is in partner-down and"
            " resynchronises every lease with it, as dhcpd's failover rules say (its"
            " transitions are in the summary); both return to normal.",
        )
        self.lab.start("secondary")
        self._wait(
            "both servers back in normal",
            lambda: self._states_are(S.NORMAL, S.NORMAL),
            STEP_TIMEOUT + DEMO_OPTIONS.mclt,
        )
        self._mark("secondary recovered: both normal")
        self._run("status")
        self.close()

    def partition(self) -> None:
        self.opening()
        self._say(
            "A partition: the link between the servers is cut, both stay alive",
            "Packets on the link are silently dropped: only max-response-delay (3 s)"
            " notices. Each server keeps serving its own clients from its own free leases.",
        )
        self.lab.cut(drop=True)
        self._wait(
            "communications-interrupted on both",
            lambda: self._states_are(S.COMMUNICATIONS_INTERRUPTED, S.COMMUNICATIONS_INTERRUPTED),
        )
        self._mark("link silent: both communications-interrupted")
        self._run("status")
        self._say(
            "Why partner-down would be wrong here",
            "In partner-down the primary would, after MCLT, hand out the secondary's free"
            " leases while the secondary, alive, still hands them out too: the same address"
            " to two clients. dhcpfoctl sees the partner alive and refuses.",
        )
        refused = self._run("partner-down", "--server", "primary", "--yes")
        if refused != ExitStatus.REFUSED:
            raise DemoFailed(f"partner-down was not refused (exit {refused})")
        self._mark("partner-down refused: the partner is alive")
        self.lab.heal()
        self._wait("both servers back in normal", lambda: self._states_are(S.NORMAL, S.NORMAL))
        self._mark("link healed: both normal")
        self._run("status")
        self.close()

    def transitions(self) -> list[Milestone]:
        """Each server's own state changes during the story, from its log."""
        found: list[Milestone] = []
        for role in ROLES:
            try:
                lines = self.lab.log(role).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            for line in lines.splitlines():
                stamp, _, rest = line.partition(" ")
                marker = rest.find(": I move from ")
                if marker < 0:
                    continue
                try:
                    at = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
                except ValueError:
                    continue
                elapsed = at.timestamp() - self._wall_start
                if elapsed >= 0:  # lines of an earlier run of the same lab are not
                    move = rest[marker + len(": I move from ") :].replace(" to ", " -> ", 1)
                    found.append(Milestone(elapsed, f"  {role}: {move}"))
        return found

    def summary(self) -> str:
        """The story's milestones and the servers' transitions, in time order."""
        timeline = sorted([*self.milestones, *self.transitions()], key=lambda m: m.elapsed)
        return "\n".join(f"{m.elapsed:6.1f} s  {m.text}" for m in timeline)
