"""The safe forced-transition executor: one code path for ``partner-down``, ``set-state``
and ``dhcpfoctl watch --act``.

The steps, in order: read the local server's state; refuse unless :data:`TRANSITIONS
<dhcpfoctl.checks.partner_down.TRANSITIONS>` allows the target from it; for partner-down,
probe the partner (its OMAPI and failover port) and refuse while it looks alive unless
forced; show the plan; ask (``confirm``); re-read the state on the write connection and
refuse if it moved; write ``local-state``; read it back on a new connection; show the
countdown. The judgements are :mod:`dhcpfoctl.checks.partner_down`'s; this module is their
I/O. It prints nothing itself: ``say``/``warn`` carry every line to the caller (a command
renders them, the watcher journals them), and ``confirm`` decides (a prompt, ``--yes``, or
the watcher recording its intent before the write).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dhcpfoctl.checks import partner_down as policy
from dhcpfoctl.checks.gather import connect, probe_partner
from dhcpfoctl.errors import RefusedError, RemoteError
from dhcpfoctl.model import FailoverState
from dhcpfoctl.omapi.failover import FailoverInfo, read_failover, write_local_state
from dhcpfoctl.profile import ServerSpec
from dhcpfoctl.times import format_local_time, iso_utc


@dataclass(frozen=True, slots=True)
class ForceRequest:
    """What to force where, and how to check the partner."""

    target: FailoverState
    local: ServerSpec
    relationship: str
    #: The partner's OMAPI and failover port, for the liveness probe (None: unknown).
    partner: ServerSpec | None
    partner_failover: tuple[str, int] | None
    timeout: float
    #: Go ahead although the partner looks alive (the command's ``--force``; never the
    #: watcher's).
    force: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class ForceCallbacks:
    """Where the executor's lines go and who says yes."""

    say: Callable[[str], None]
    warn: Callable[[str], None]
    #: Asked right before the write with a question; False = not confirmed (refused).
    confirm: Callable[[str], bool]


class ForcedTransition:
    """One forced transition: checks, plan, confirmation, write, read-back.

    :meth:`run` returns the result document (the ``--json`` of ``partner-down``, shape in
    ``dhcpfoctl/cli/partner_down.py``); on a refusal or failure after the state was read,
    :attr:`result` holds the document so far, for the caller to report.
    """

    def __init__(self, request: ForceRequest, callbacks: ForceCallbacks) -> None:
        self.request = request
        self.callbacks = callbacks
        #: The JSON document, once the server's state was read.
        self.result: dict[str, Any] | None = None
        #: Whether connect()'s notes (a key fallback) were already shown.
        self._noted = False

    def run(self) -> dict[str, Any]:
        request, say = self.request, self.callbacks.say
        target, local = request.target, request.local
        before = self._read()
        result: dict[str, Any] = {
            "action": target.keyword,
            "server": local.label,
            "endpoint": local.endpoint,
            "relationship": request.relationship,
            "role": before.role,
            "dry_run": request.dry_run,
            "forced": request.force,
            "performed": False,
            "before": {
                "local_state": before.local_state.keyword,
                "local_stos": before.local_stos,
                "partner_state": before.partner_state.keyword,
            },
            "after": None,
            "partner": None,
            "mclt": before.mclt,
            "peer_leases_usable_at": None,
            "peer_leases_usable_at_iso": None,
            "warnings": [],
            "error": None,
        }
        self.result = result
        if before.local_state == target:
            say(
                f"{local.label} is already {target.keyword} for {request.relationship!r}"
                f" (since {iso_utc(before.local_stos)}); nothing to do."
            )
            self._fill_countdown(result, before)
            return result
        policy.refuse_unless_allowed(
            local.endpoint, request.relationship, before.local_state, target
        )
        if target == FailoverState.PARTNER_DOWN:
            self._check_partner(result)
        for line in policy.plan(local, request.relationship, before, target, int(time.time())):
            say(line)
        if request.dry_run:
            say("dry run: nothing was changed.")
            return result
        if not self.callbacks.confirm(f"Set {target.keyword} on {local.label}?"):
            raise RefusedError("not confirmed; nothing was changed")
        self._write()
        result["performed"] = True
        after = self._read()
        result["after"] = {"local_state": after.local_state.keyword, "local_stos": after.local_stos}
        if after.local_state not in policy.reached(target):
            raise RemoteError(
                local.endpoint,
                f"the server accepted local-state={target.keyword} but reads back "
                f"{after.local_state.keyword}",
            )
        say(
            f"verified: {local.label} is now {after.local_state.keyword} for "
            f"{request.relationship!r} (read back on a new connection)."
        )
        self._fill_countdown(result, after)
        return result

    def _check_partner(self, result: dict[str, Any]) -> None:
        request = self.request
        probe = probe_partner(
            request.partner, request.partner_failover, request.relationship, request.timeout
        )
        result["partner"] = {
            "omapi": probe.omapi,
            "omapi_answers": probe.omapi_answers,
            "failover": probe.failover,
            "failover_port_open": probe.failover_port_open,
            "alive": probe.alive,
            "down_confirmed": probe.down_confirmed,
            "evidence": probe.evidence,
        }
        warning = policy.judge_partner(probe, force=request.force, endpoint=request.local.endpoint)
        if warning is None or not warning.forced:  # else the DANGER line quotes them
            for line in probe.evidence:
                self.callbacks.say(f"partner check: {line}")
        if warning is not None:
            result["warnings"].append(warning.text)
            self.callbacks.warn(f"{warning.label}: {warning.text}")

    def _fill_countdown(self, result: dict[str, Any], info: FailoverInfo) -> None:
        if info.local_state != FailoverState.PARTNER_DOWN:
            return
        usable = info.local_stos + info.mclt
        result["peer_leases_usable_at"] = usable
        result["peer_leases_usable_at_iso"] = iso_utc(usable)
        self.callbacks.say(
            f"countdown: the partner's free leases become usable "
            f"{format_local_time(usable, int(time.time()))} (local-stos + MCLT {info.mclt}s)."
        )

    def _read(self) -> FailoverInfo:
        client, notes = connect(self.request.local, self.request.timeout)
        # Said before any refusal that follows (e.g. NOKEYS after an unknown key).
        for note in notes if not self._noted else ():
            self.callbacks.warn(f"note: {self.request.local.label} {note}")
        self._noted = True
        with client:
            return read_failover(client, self.request.relationship)

    def _write(self) -> None:
        request = self.request
        client, _ = connect(request.local, request.timeout)
        with client:
            # Re-open on this connection: handles are per server, and the state may have
            # moved since the checks; refuse if it left the allowed states meanwhile.
            current = read_failover(client, request.relationship)
            policy.refuse_if_moved(request.local.endpoint, current.local_state, request.target)
            write_local_state(client, current, request.target)
