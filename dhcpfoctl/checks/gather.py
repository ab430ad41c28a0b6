"""Query the servers of a pair over OMAPI (in parallel) into :class:`ServerAnswer` values.

The I/O step of the checks: :func:`dhcpfoctl.checks.health.evaluate` judges the result;
:func:`probe_partner` asks whether a partner lives, for :mod:`dhcpfoctl.checks.partner_down`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dhcpfoctl.checks.health import (
    UNACKED_FOR,
    EnduranceEstimate,
    ServerAnswer,
    StatusReport,
    evaluate,
    track_unacked,
)
from dhcpfoctl.checks.partner_down import PartnerProbe
from dhcpfoctl.errors import DhcpfoctlError
from dhcpfoctl.model import FailoverState, int_to_address
from dhcpfoctl.omapi import format_endpoint
from dhcpfoctl.omapi.client import OmapiClient
from dhcpfoctl.omapi.errors import (
    ConnectionRefusedByHostError,
    NotFoundError,
    OmapiError,
    StatusError,
    TimedOutError,
    UnreachableError,
)
from dhcpfoctl.omapi.failover import FailoverInfo, PoolCounts, read_failover, read_pool_counts
from dhcpfoctl.profile import ServerSpec, Targets

if TYPE_CHECKING:  # imported when a lease file is followed: it costs start-up time
    from dhcpfoctl.checks.history import Followed, LeaseFollower


def connect(spec: ServerSpec, timeout: float) -> tuple[OmapiClient, tuple[str, ...]]:
    """An open client for ``spec`` and notes on how it authenticated.

    A key offered to every server (``key_shared``) that this server does not know is
    dropped and the server retried unsigned: a pair may have one keyed, one unkeyed server.
    A key configured for this very server is never dropped.
    """
    client = OmapiClient(spec.host, spec.port, spec.key, timeout=timeout)
    try:
        client.connect()
    except NotFoundError:
        if spec.key is None or not spec.key_shared:
            raise
        client = OmapiClient(spec.host, spec.port, None, timeout=timeout)
        client.connect()
        # The key is named by where it came from: its name may be a misplaced secret.
        note = f"does not know the key from {spec.key_origin}; queried unsigned"
        return client, (note,)
    return client, ()


def _silence(exc: DhcpfoctlError) -> bool:
    """The error is the server saying nothing, rather than saying something wrong."""
    return isinstance(exc, UnreachableError | TimedOutError)


def query_server(
    spec: ServerSpec,
    relationships: Sequence[str],
    pool_addresses: dict[str, Sequence[str]],
    timeout: float,
) -> ServerAnswer:
    """Everything ``status`` reads from one server; failures become ``error`` lines."""
    answer = ServerAnswer(label=spec.label, endpoint=spec.endpoint)
    try:
        client, notes = connect(spec, timeout)
    except DhcpfoctlError as exc:
        return replace(answer, error=str(exc), silent=_silence(exc))
    failover: dict[str, FailoverInfo] = {}
    pools: dict[str, tuple[PoolCounts, ...]] = {}
    errors: dict[str, str] = {}
    with client:
        try:
            for name in relationships:
                try:
                    failover[name] = read_failover(client, name)
                except NotFoundError as exc:
                    errors[name] = str(exc)
                    continue
                counts = []
                for address in pool_addresses.get(name, ()):
                    try:
                        counts.append(read_pool_counts(client, address))
                    except StatusError:
                        continue  # e.g. no lease for that address here: counts unavailable
                pools[name] = tuple(counts)
        except OmapiError as exc:
            return replace(answer, error=str(exc), silent=_silence(exc), notes=notes)
        signed = client.signed
    return replace(
        answer,
        failover=failover,
        pools=pools,
        relationship_errors=errors,
        signed=signed,
        notes=notes,
    )


def query_all(
    specs: Sequence[ServerSpec],
    relationships: Sequence[str],
    pool_addresses: dict[str, Sequence[str]],
    timeout: float,
) -> list[ServerAnswer]:
    """:func:`query_server` for every server at once, so one dead server costs one timeout."""
    if len(specs) == 1:
        return [query_server(specs[0], relationships, pool_addresses, timeout)]
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        futures = [
            pool.submit(query_server, spec, relationships, pool_addresses, timeout)
            for spec in specs
        ]
        return [future.result() for future in futures]


def tcp_port_open(host: str, port: int, timeout: float) -> bool | None:
    """True when ``host:port`` accepts a TCP connection, False when refused, None when no
    answer arrived in time (filtered or unreachable: nothing can be concluded)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return False
    except OSError:
        return None


def add_endurance(
    answers: Sequence[ServerAnswer],
    specs: Sequence[ServerSpec],
    shared_config: Any,
    now: int,
    follower: LeaseFollower,
) -> list[ServerAnswer]:
    """Follow each server's lease file for new bindings and, for servers in
    communications-interrupted, attach the endurance of their own free leases.

    Only for servers whose lease file (and dhcpd.conf, its own or ``shared_config``) the
    profile names and this host can read. The file is followed on every run, not only during
    an interruption: the rate that matters then is the one from before it. ``follower``
    reads only what dhcpd appended since the last run or poll.
    """
    result = []
    for spec, answer in zip(specs, answers, strict=True):
        if spec.leases and answer.error is None:
            answer = _follow(spec.leases, spec.config, shared_config, answer, now, follower)
        result.append(answer)
    return result


def _follow(
    leases: str,
    config_path: str | None,
    shared_config: Any,
    answer: ServerAnswer,
    now: int,
    follower: LeaseFollower,
) -> ServerAnswer:
    from dhcpfoctl.conf import read_config

    cut_off = [
        name
        for name, info in answer.failover.items()
        if info.local_state == FailoverState.COMMUNICATIONS_INTERRUPTED
    ]

    def unknown(reason: str) -> ServerAnswer:
        return replace(
            answer,
            endurance={name: EnduranceEstimate(None, None, 0, leases, reason) for name in cut_off},
        )

    try:
        config = read_config(config_path) if config_path else shared_config
        if config is None:
            return unknown("no dhcpd.conf for its pools: set `config` in the profile")
        followed = follower.read(leases, config, now)
    except DhcpfoctlError as exc:
        return unknown(str(exc))
    notes = answer.notes + tuple(followed.notes)
    if not cut_off:
        return replace(answer, notes=notes)
    try:
        estimates = {
            name: _endurance(name, config, answer, followed, follower, leases, now)
            for name in cut_off
        }
    except DhcpfoctlError as exc:
        return replace(unknown(str(exc)), notes=notes)
    return replace(answer, endurance=estimates, notes=notes)


def _endurance(
    name: str,
    config: Any,
    answer: ServerAnswer,
    followed: Followed,
    follower: LeaseFollower,
    leases: str,
    now: int,
) -> EnduranceEstimate:
    """One relationship's endurance: the rate from the followed history, the server's own
    free leases from its OMAPI pool counts (live and free to ask), or else from the file."""
    from dhcpfoctl.balance import DEFAULT_WINDOW, Counts, compute_balance, endurance

    role = answer.failover[name].role
    pools = [pool for pool in config.pools_of(name) if pool.ranges]
    counted = answer.pools.get(name, ())
    if pools and len(counted) == len(pools):
        rate = followed.history.rate((p.label for p in pools), DEFAULT_WINDOW, now)
        counts = Counts(
            free=sum(p.free_leases for p in counted), backup=sum(p.backup_leases for p in counted)
        )
        found = endurance(counts, role, rate)
    else:
        db = follower.whole(leases)
        report = compute_balance(config, db, now, history=followed.history)
        relationship = next((r for r in report.relationships if r.name == name), None)
        if relationship is None:
            return EnduranceEstimate(None, None, 0, leases, f"no pool of {name!r} in dhcpd.conf")
        found = relationship.endurance[role]
    return EnduranceEstimate(
        found.interrupted, found.rate_per_hour, found.window, leases, found.reason
    )


def gather_report(
    targets: Targets,
    timeout: float,
    follower: LeaseFollower | None = None,
    unacked: dict[str, int] | None = None,
    *,
    unacked_for: int = UNACKED_FOR,
) -> StatusReport:
    """Query every server of ``targets`` and judge the answers at the current time.

    ``follower`` keeps the lease files' new-binding history (a fresh in-memory one by
    default); ``unacked`` is the unacked-updates memory (:func:`track_unacked`), updated in
    place, so that a window full in one sample only is a note, not a warning.
    """
    answers = query_all(targets.servers, targets.relationships, pool_addresses(targets), timeout)
    now = int(time.time())
    if any(spec.leases for spec in targets.servers):
        if follower is None:
            from dhcpfoctl.checks.history import LeaseFollower

            follower = LeaseFollower(use_state=False)
        answers = add_endurance(answers, targets.servers, targets.config, now, follower)
    since = track_unacked(answers, unacked or {}, now)
    if unacked is not None:
        unacked.clear()
        unacked.update(since)
    return evaluate(
        answers, targets.relationships, now, unacked_since=since, unacked_for=unacked_for
    )


def pool_addresses(targets: Targets) -> dict[str, list[str]]:
    """One address per failover pool of each relationship (OMAPI counts pools via a lease)."""
    if targets.config is None:
        return {}
    return {
        name: [
            int_to_address(pool.ranges[0].first)
            for pool in targets.config.pools_of(name)
            if pool.ranges
        ]
        for name in targets.relationships
    }


def probe_partner(
    partner: ServerSpec | None,
    failover: tuple[str, int] | None,
    relationship: str,
    timeout: float,
) -> PartnerProbe:
    """Ask the partner's OMAPI and failover port (those known) whether it is alive."""
    probe = PartnerProbe()
    if partner is not None:
        probe.omapi = partner.endpoint
        try:
            # The startup exchange alone proves a dhcpd runs there; no key needed.
            with OmapiClient(partner.host, partner.port, None, timeout=timeout):
                pass
        except (UnreachableError, TimedOutError) as exc:
            probe.omapi_answers = False
            probe.omapi_refused = isinstance(exc, ConnectionRefusedByHostError)
            probe.evidence.append(f"partner OMAPI {probe.omapi} does not answer ({exc.message})")
        except DhcpfoctlError as exc:
            probe.omapi_answers = True
            probe.evidence.append(f"partner OMAPI {probe.omapi} answers (but: {exc.message})")
        else:
            probe.omapi_answers = True
            try:  # its state, for the operator; with its own key when the profile has one
                client, _ = connect(partner, timeout)
                with client:
                    probe.omapi_state = read_failover(client, relationship).local_state.keyword
                probe.evidence.append(
                    f"partner OMAPI {probe.omapi} answers: it is {probe.omapi_state}"
                )
            except DhcpfoctlError:
                probe.evidence.append(f"partner OMAPI {probe.omapi} answers")
    if failover is not None:
        host, port = failover
        probe.failover = format_endpoint(host, port)
        probe.failover_port_open = tcp_port_open(host, port, timeout)
        verdict = {
            True: "accepts TCP connections: its dhcpd is running",
            False: "refuses connections: no dhcpd listening there",
            None: "does not answer from here",
        }[probe.failover_port_open]
        probe.evidence.append(f"partner failover port {probe.failover} {verdict}")
    return probe
