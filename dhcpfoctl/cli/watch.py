"""``dhcpfoctl watch``: watch a failover pair, keep its history, and force partner-down only
on evidence (``--act``; a dry run by default, saying what it would do).

Servers, keys and relationships as ``status`` takes them. Each poll prints what changed:
transitions, alerts, vetoes and decisions (``--json``: one journal record per line, the
shapes in ``dhcpfoctl/watch/history.py``). ``--once`` polls once and exits with the health
(0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN), for cron. ``--show`` prints the journal's history
and exits; its JSON::

    {"journal": "/var/lib/dhcpfoctl/watch-campus.jsonl",
     "states": [{"relationship": "lab", "server": "primary", "state": "normal",
                 "start": 1795851300, "start_iso": "…", "duration": 65,   # null: current
                 "current": false}],
     "decisions": [{"t": …, "kind": "decision", "decision": "would-act", …},
                   {"t": …, "kind": "outcome", "result": "performed", …}]}
"""

from __future__ import annotations

import hashlib
import re
import shlex
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from dhcpfoctl.cli.options import ConfigFile, Key, KeyFile, KeyName, Peers, Profile, Timeout

if TYPE_CHECKING:
    from dhcpfoctl.profile import Targets
    from dhcpfoctl.watch.service import WatchSettings

SERVER_HELP = "OMAPI server HOST[:PORT]; give both servers of the pair (or a profile)."


def watch(
    server: list[str] | None = typer.Option(
        None, "--server", "-s", metavar="HOST[:PORT]", help=SERVER_HELP
    ),
    profile: Profile = None,
    peer: Peers = None,
    config: ConfigFile = None,
    key: Key = None,
    key_file: KeyFile = None,
    key_name: KeyName = None,
    timeout: Timeout = 2.0,
    act: bool = typer.Option(
        False, "--act", help="Force partner-down when every condition holds (default: dry run)."
    ),
    interrupted_for: str = typer.Option(
        "5m",
        "--interrupted-for",
        metavar="DURATION",
        help="T: how long a server must be communications-interrupted before acting.",
    ),
    silent_for: str | None = typer.Option(
        None,
        "--silent-for",
        metavar="DURATION",
        help="How long the partner must have answered no probe (default: T/2, at most 60s).",
    ),
    stuck_after: str | None = typer.Option(
        None,
        "--stuck-after",
        metavar="DURATION",
        help="Alert when interrupted this long while the partner answers"
        " (default: 3 max-response-delays).",
    ),
    min_clients: int = typer.Option(
        1,
        "--min-clients",
        min=1,
        metavar="N",
        help="Partner's clients served here since the interruption needed to act.",
    ),
    interval: float = typer.Option(
        2.0, "--interval", min=0.2, metavar="SECONDS", help="Seconds between polls."
    ),
    retries: int = typer.Option(
        3, "--retries", min=1, max=10, metavar="N", help="Attempts of each probe."
    ),
    dhcp_probe: bool = typer.Option(
        True,
        "--dhcp-probe/--no-dhcp-probe",
        help="Probe the partner with a DHCPINFORM (replies come to port 68).",
    ),
    dhcp_probe_from: str = typer.Option(
        "0.0.0.0:68",
        "--dhcp-probe-from",
        metavar="ADDRESS:PORT",
        help="This host's address and port for the DHCP probe's replies; 68 needs"
        " CAP_NET_BIND_SERVICE (0.0.0.0: the address on the route to the partner).",
    ),
    dhcp_probe_timeout: float = typer.Option(
        1.0,
        "--dhcp-probe-timeout",
        min=0.1,
        metavar="SECONDS",
        help="Wait for each DHCPINFORM's reply (--retries of them).",
    ),
    dhcp_probe_ciaddr: str | None = typer.Option(
        None,
        "--dhcp-probe-ciaddr",
        metavar="ADDRESS",
        help="ciaddr of the DHCPINFORM, in a subnet the partner serves (default: giaddr).",
    ),
    journal: Path | None = typer.Option(
        None,
        "--journal",
        metavar="FILE",
        help="JSON-lines journal (default: in $XDG_STATE_HOME/dhcpfoctl).",
    ),
    on_transition: str | None = typer.Option(
        None, "--on-transition", metavar="COMMAND", help="Run on each state change (JSON on stdin)."
    ),
    on_alert: str | None = typer.Option(
        None, "--on-alert", metavar="COMMAND", help="Run on each alert and veto (JSON on stdin)."
    ),
    on_action: str | None = typer.Option(
        None, "--on-action", metavar="COMMAND", help="Run after each forced partner-down."
    ),
    hook_timeout: float = typer.Option(
        10.0, "--hook-timeout", min=0.1, metavar="SECONDS", help="A hook is killed after this."
    ),
    witness: list[str] | None = typer.Option(
        None, "--witness", metavar="URL", help="etcd endpoint shared by the watchers; repeatable."
    ),
    quorum: int = typer.Option(
        1,
        "--quorum",
        min=1,
        metavar="N",
        help="Watchers that must agree the partner is dead.",
    ),
    witness_prefix: str = typer.Option(
        "/dhcpfoctl/watch",
        "--witness-prefix",
        metavar="KEY",
        help="etcd key prefix shared by the watchers of the same pairs.",
    ),
    watcher_id: str | None = typer.Option(
        None,
        "--watcher-id",
        metavar="NAME",
        help="This watcher's name among witnesses (default: host name).",
    ),
    metrics_listen: str | None = typer.Option(
        None, "--metrics-listen", metavar="HOST:PORT", help="Serve Prometheus metrics there."
    ),
    textfile: Path | None = typer.Option(
        None,
        "--textfile",
        metavar="FILE",
        help="Write metrics for node_exporter's textfile collector.",
    ),
    once: bool = typer.Option(False, "--once", help="Poll once and exit with the health (cron)."),
    show: bool = typer.Option(False, "--show", help="Print the journal's history and exit."),
    json_output: bool = typer.Option(False, "--json", help="JSON lines (shapes in the docs)."),
) -> None:
    """Watch a pair: history, stuck-link alerts, partner-down only on evidence."""
    from dhcpfoctl.cli.output import exit_with, reported_errors, warn
    from dhcpfoctl.profile import KeyOptions, resolve_targets

    monitoring = once
    with reported_errors(monitoring=monitoring):
        keys = KeyOptions(key, key_file, key_name)

        def targets() -> Targets:
            return resolve_targets(
                servers=server or [],
                profile_name=profile,
                peers=peer or [],
                config_path=config,
                keys=keys,
            )

        if show and journal is not None:  # no server needed to read a journal
            _show(journal, json_output)
            return
        first = targets()
        for message in first.warnings:
            warn(message)
        path = journal or _default_journal(first)
        if show:
            _show(path, json_output)
            return
        settings = _settings(locals())
        health = _run(first, targets, settings, path, locals())
        if once:
            exit_with(health, monitoring=True)


def _settings(options: dict[str, Any]) -> WatchSettings:
    from dhcpfoctl.errors import LocalError
    from dhcpfoctl.times import parse_duration
    from dhcpfoctl.watch.policy import Thresholds
    from dhcpfoctl.watch.service import DhcpProbeSettings, Hooks, WatchSettings

    def duration(name: str, flag: str) -> float | None:
        text = options[name]
        if text is None:
            return None
        try:
            return float(parse_duration(text))
        except (ValueError, LocalError) as exc:
            raise LocalError(f"{flag}: {exc}") from None

    t = duration("interrupted_for", "--interrupted-for")
    assert t is not None
    silent = duration("silent_for", "--silent-for")
    if silent is None:
        silent = min(t / 2, 60.0)
    limits = Thresholds(
        interrupted_for=t,
        stuck_after=duration("stuck_after", "--stuck-after"),
        alive_window=silent,
        min_unanswered=options["min_clients"],
        witnesses=bool(options["witness"]),
    )
    dhcp = None
    if options["dhcp_probe"]:
        host, port = _host_port(options["dhcp_probe_from"], "--dhcp-probe-from", 68)
        dhcp = DhcpProbeSettings(
            bind=(host, port),
            ciaddr=options["dhcp_probe_ciaddr"],
            timeout=options["dhcp_probe_timeout"],
        )
    hooks = Hooks(
        transition=_argv(options["on_transition"], "--on-transition"),
        alert=_argv(options["on_alert"], "--on-alert"),
        action=_argv(options["on_action"], "--on-action"),
        timeout=options["hook_timeout"],
    )
    witness = None
    if options["witness"]:
        import socket

        from dhcpfoctl.watch.service import WitnessSettings
        from dhcpfoctl.watch.witness import WitnessBoard

        name = options["watcher_id"] or socket.gethostname()
        ttl = max(10, int(options["interval"] * 5))
        board = WitnessBoard(
            options["witness"],
            prefix=options["witness_prefix"],
            watcher_id=name,
            ttl=ttl,
            timeout=options["timeout"],
        )
        witness = WitnessSettings(board=board, quorum=options["quorum"], window=max(t, silent))
    return WatchSettings(
        limits=limits,
        interval=options["interval"],
        timeout=options["timeout"],
        act=options["act"],
        retries=options["retries"],
        dhcp=dhcp,
        hooks=hooks,
        witness=witness,
    )


def _argv(command: str | None, flag: str) -> tuple[str, ...] | None:
    """A hook's argv: split as a shell would, run without a shell."""
    from dhcpfoctl.errors import LocalError

    if command is None:
        return None
    try:
        argv = tuple(shlex.split(command))
    except ValueError as exc:
        raise LocalError(f"{flag}: {exc}") from None
    if not argv:
        raise LocalError(f"{flag}: empty command")
    return argv


def _host_port(text: str, flag: str, default_port: int) -> tuple[str, int]:
    """``ADDRESS[:PORT]``, port 0 allowed (any free port: the DHCP probe on a lab)."""
    import ipaddress

    from dhcpfoctl.errors import LocalError

    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    try:
        ipaddress.IPv4Address(host)
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise LocalError(f"{flag}: {text!r} is not IPv4-ADDRESS[:PORT]")
    return host, number


def _default_journal(targets: Targets) -> Path:
    from dhcpfoctl.state import state_dir

    name = targets.profile
    if name is None or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
        key = ",".join(sorted(s.endpoint for s in targets.servers))
        name = hashlib.sha256(key.encode()).hexdigest()[:16]
    return state_dir() / f"watch-{name}.jsonl"


def _run(
    first: Targets,
    targets: Any,
    settings: WatchSettings,
    path: Path,
    options: dict[str, Any],
) -> Any:
    from dhcpfoctl.watch.history import Journal, read_journal, resume
    from dhcpfoctl.watch.service import Watcher

    json_output = options["json_output"]
    loaded = [first]

    def factory() -> Targets:
        # The first resolution is reused once; a reload resolves again (SIGHUP).
        return loaded.pop() if loaded else targets()

    metrics = None
    server = None
    if options["metrics_listen"] or options["textfile"]:
        from dhcpfoctl.watch.metrics import Metrics

        metrics = Metrics()
        if options["metrics_listen"]:
            host, port = _host_port(options["metrics_listen"], "--metrics-listen", 9167)
            server = metrics.serve(host, port)
    resumed = resume(read_journal(path))
    with Journal(path) as opened:
        watcher = Watcher(
            factory,
            settings,
            opened,
            lambda record: _emit(record, json_output),
            resumed=resumed,
            metrics=metrics,
            textfile=options["textfile"],
        )
        previous = {
            signal.SIGHUP: signal.signal(signal.SIGHUP, lambda *_: watcher.reload_event.set()),
            signal.SIGTERM: signal.signal(signal.SIGTERM, lambda *_: watcher.stop_event.set()),
            signal.SIGINT: signal.signal(signal.SIGINT, lambda *_: watcher.stop_event.set()),
        }
        try:
            return watcher.run(once=options["once"])
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if server is not None:
                server.shutdown()


# -- rendering --------------------------------------------------------------------------


def _emit(record: dict[str, Any], json_output: bool) -> None:
    from dhcpfoctl.cli.output import print_json, say

    if json_output:
        print_json(record, indent=None)
        return
    line = describe(record)
    if line is not None:
        loud = (
            record["kind"] in ("alert", "decision", "outcome") and record.get("decision") != "act"
        )
        say(line, style="bold red" if loud and record["kind"] == "alert" else None)


def describe(record: dict[str, Any]) -> str | None:
    """One line for a journal record (None: not worth a line on the terminal)."""
    from dhcpfoctl.times import format_duration, iso_utc

    kind = record["kind"]
    when = iso_utc(int(record["t"]))
    rel = record.get("relationship", "")
    if kind == "transition":
        lasted = record.get("previous_duration")
        old = record.get("old") or "(first seen)"
        tail = f" ({old} lasted {format_duration(int(lasted))})" if lasted is not None else ""
        return f"{when} {rel}: {record['server']} {old} -> {record['new']}{tail}"
    if kind in ("alert", "alert-cleared"):
        label = "ALERT" if kind == "alert" else "cleared"
        return f"{when} {rel}: {label} {record['code']}: {record['message']}"
    if kind == "decision":
        decision = record["decision"]
        reasons = "; ".join(record.get("reasons", []))
        if decision == "veto":
            return f"{when} {rel}: no partner-down ({record['incident']}): {reasons}"
        verb = "partner-down on" if decision == "act" else "would force partner-down on"
        return f"{when} {rel}: {verb} {record['local']}: {reasons}"
    if kind == "outcome":
        return f"{when} {rel}: partner-down {record['result']}: {record.get('detail', '')}"
    if kind == "resolved":
        what = "reached" if record.get("reached") else "not reached"
        return f"{when} {rel}: the interrupted action {what}: {record.get('detail', '')}"
    if kind == "incident-over":
        return f"{when} {rel}: incident {record['incident']} over"
    if kind == "hook":
        return f"{when} hook {record['event']}: {record['command'][0]} -> {record['status']}"
    if kind in ("witness-error", "metrics-error"):
        return f"{when} {kind}: {record.get('error')}"
    if kind == "reload":
        return f"{when} reloaded" + (f" (error: {record['error']})" if record.get("error") else "")
    return None


def _show(path: Path, json_output: bool) -> None:
    from dhcpfoctl.cli.output import emit_text, print_json, say
    from dhcpfoctl.times import format_duration, iso_utc
    from dhcpfoctl.watch.history import read_journal, spans

    records = list(read_journal(path))
    now = time.time()
    states = spans(records)
    decisions = [r for r in records if r["kind"] in ("decision", "outcome", "resolved")]
    if json_output:
        print_json(
            {
                "journal": str(path),
                "states": [
                    {
                        "relationship": s.relationship,
                        "server": s.server,
                        "state": s.state,
                        "start": s.start,
                        "start_iso": iso_utc(int(s.start)),
                        "duration": s.duration,
                        "current": s.duration is None,
                    }
                    for s in states
                ],
                "decisions": decisions,
            }
        )
        return
    if not records:
        say(f"{path}: no history yet")
        return
    lines = [f"history from {path}:"]
    for span in states:
        lasted = span.duration if span.duration is not None else now - span.start
        current = " (current)" if span.duration is None else ""
        lines.append(
            f"  {iso_utc(int(span.start))}  {span.relationship}  {span.server:<12} "
            f"{span.state:<28} {format_duration(int(lasted))}{current}"
        )
    for record in decisions:
        if (line := describe(record)) is not None:
            lines.append("  " + line)
    emit_text("\n".join(lines) + "\n")
