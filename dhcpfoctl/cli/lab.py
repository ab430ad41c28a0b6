"""``dhcpfoctl lab``: a failover pair on loopback to practise on (rendering only; the work
is :mod:`dhcpfoctl.lab.cluster`'s).

JSON (``--json``) of ``up`` and ``status``::

    {"directory": "/home/op/.local/state/dhcpfoctl/lab", "base_port": 16700,
     "configured": true, "running": true,
     "processes": [{"name": "primary", "pid": 4242, "running": true,
                    "ports": {"dhcp": 16700, "omapi": 16704, "failover": 16706},
                    "listening": {"dhcp": true, "omapi": true, "failover": true}},
                   … "secondary" …,
                   {"name": "relay", "pid": 4240, "running": true,
                    "ports": {"to_primary": 16708, "to_secondary": 16709}, "listening": {…}}],
     "relay": {"mode": "pass", "links": 2, "accepted": 2, "refused": 0,  # null: not running
               "resets": 0, "closes": 0, "bytes_forwarded": 1234, "bytes_discarded": 0},
     "profile": "/home/op/.local/state/dhcpfoctl/lab/config.toml",
     "mode": "pair",                  # "mixed": one lab server, partner of a dhcpd
     "partner": null}                 # mixed: {"role": "secondary", "address": "H:P",
                                      #   "partner_address": "H:P", "partner_omapi": "H:P"}

Each process also has ``addresses`` (label -> bound address). A mixed lab (``up
--partner-address``) lists only its one server, and ``relay`` is null.

``down``: ``{"directory": …, "stopped": {"primary": "stopped" | "killed", …}}``;
``cut``/``heal``: the relay's answer (as ``relay`` above); ``kill``/``start``:
``{"server": "primary", "pid": 4242, "signal": "KILL"}`` (``signal`` for kill only);
``env``: ``{"DHCPFOCTL_CONFIG": "…/config.toml"}``; ``clients``: the population's counters
(:class:`~dhcpfoctl.lab.population.PopulationStats`) with ``latency_ms``
``{"p50": 1.2, "p90": …, "p99": …}`` (null before any ACK) instead of the latency list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from dhcpfoctl.lab.cluster import Lab, LabStatus
    from dhcpfoctl.lab.population import PopulationStats

#: Latency percentiles reported by ``lab clients``.
PERCENTILES = (50, 90, 99)

app = typer.Typer(
    help="A failover pair on loopback to practise on: up, cut, kill, down.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


class Server(StrEnum):
    primary = "primary"
    secondary = "secondary"


class Signal(StrEnum):
    TERM = "TERM"
    KILL = "KILL"


LabDir = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        metavar="DIR",
        help="Lab directory (default $XDG_STATE_HOME/dhcpfoctl/lab).",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (shape in the docs).")]
Timeout = Annotated[
    float,
    typer.Option("--timeout", min=0.1, metavar="SECONDS", help="Seconds allowed to start/stop."),
]
ServerArg = Annotated[Server, typer.Argument(metavar="SERVER", help="primary or secondary.")]


def _lab(directory: Path | None) -> Lab:
    from dhcpfoctl.lab.cluster import Lab, default_lab_dir

    return Lab(directory or default_lab_dir())


@app.command("up")
def up(
    pool: int = typer.Option(100, "--pool", min=1, metavar="SIZE", help="Addresses in the pool."),
    mclt: int = typer.Option(30, "--mclt", min=1, metavar="SECONDS", help="The primary's MCLT."),
    split: int = typer.Option(
        128, "--split", min=0, max=256, metavar="N", help="Buckets the primary serves (0-256)."
    ),
    max_response_delay: int = typer.Option(
        10, "--max-response-delay", min=1, metavar="SECONDS", help="Failover max-response-delay."
    ),
    max_unacked_updates: int = typer.Option(
        10, "--max-unacked-updates", min=1, metavar="N", help="Failover max-unacked-updates."
    ),
    load_balance_max_seconds: int = typer.Option(
        3, "--load-balance-max-seconds", min=0, metavar="SECONDS", help="load balance max seconds."
    ),
    min_balance: int = typer.Option(
        60, "--min-balance", min=0, metavar="SECONDS", help="Pool-balance min-balance."
    ),
    max_balance: int = typer.Option(
        3600, "--max-balance", min=0, metavar="SECONDS", help="Pool-balance max-balance."
    ),
    default_lease_time: int = typer.Option(
        300, "--default-lease-time", min=1, metavar="SECONDS", help="default-lease-time."
    ),
    max_lease_time: int = typer.Option(
        600, "--max-lease-time", min=1, metavar="SECONDS", help="max-lease-time."
    ),
    base_port: int = typer.Option(
        16700,
        "--base-port",
        metavar="PORT",
        help="First of the 10 loopback ports the lab uses (all derive from it).",
    ),
    partner_address: str | None = typer.Option(
        None,
        "--partner-address",
        metavar="HOST:PORT",
        help="Mixed pair: run one lab server as the partner of the dhcpd failing over here.",
    ),
    role: Server = typer.Option(
        Server.secondary, "--role", help="Mixed pair: our server's role (the dhcpd has the other)."
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        metavar="HOST:PORT",
        help="Mixed pair: our failover address and port, as the dhcpd's peer address/port"
        " name them (default 127.0.0.1 and the base failover port).",
    ),
    address_range: str | None = typer.Option(
        None,
        "--range",
        metavar="FIRST-LAST",
        help="Mixed pair: the failover pool, equal to the dhcpd's (default: --pool's).",
    ),
    subnet: str | None = typer.Option(
        None,
        "--subnet",
        metavar="CIDR",
        help="Mixed pair: the pool's subnet (default: the /24 of --range).",
    ),
    relationship: str = typer.Option(
        "lab",
        "--relationship",
        metavar="NAME",
        help="Mixed pair: the failover peer name, as in the dhcpd's config.",
    ),
    dhcp_address: str = typer.Option(
        "127.0.0.1", "--dhcp-address", metavar="ADDR", help="Mixed pair: where DHCP is served."
    ),
    omapi_address: str = typer.Option(
        "127.0.0.1", "--omapi-address", metavar="ADDR", help="Mixed pair: where OMAPI listens."
    ),
    partner_omapi: str | None = typer.Option(
        None,
        "--partner-omapi",
        metavar="HOST:PORT",
        help="Mixed pair: the dhcpd's OMAPI, for the profile (status shows both).",
    ),
    partner_key_file: Path | None = typer.Option(
        None,
        "--partner-key-file",
        metavar="FILE",
        help="Mixed pair: a `key NAME { … }` file for the dhcpd's OMAPI (into the profile).",
    ),
    directory: LabDir = None,
    timeout: Timeout = 20.0,
    json_output: Json = False,
) -> None:
    """Write both configs and start a primary, a secondary and the link relay.

    With --partner-address: write one config and start one server, the partner of an
    existing dhcpd (a mixed pair; no relay, so cut/heal do not apply).
    """
    from dhcpfoctl.cli.output import print_json, reported_errors
    from dhcpfoctl.lab.cluster import LabOptions

    options = LabOptions(
        pool=pool,
        mclt=mclt,
        split=split,
        max_response_delay=max_response_delay,
        max_unacked_updates=max_unacked_updates,
        load_balance_max_seconds=load_balance_max_seconds,
        min_balance=min_balance,
        max_balance=max_balance,
        default_lease_time=default_lease_time,
        max_lease_time=max_lease_time,
        base_port=base_port,
        partner_address=partner_address,
        role=role.value,
        address=address,
        address_range=address_range,
        subnet=subnet,
        relationship=relationship,
        dhcp_address=dhcp_address,
        omapi_address=omapi_address,
        partner_omapi=partner_omapi,
        partner_key_file=None if partner_key_file is None else str(partner_key_file),
    )
    with reported_errors():
        status = _lab(directory).up(options, timeout=timeout)
    if json_output:
        print_json(status.to_json())
        return
    _print_status(status)
    _print_profile_hint(status)


@app.command("down")
def down(directory: LabDir = None, timeout: Timeout = 10.0, json_output: Json = False) -> None:
    """Stop the lab's processes (TERM, then KILL after --timeout); keep its files."""
    from dhcpfoctl.cli.output import print_json, reported_errors, say

    lab = _lab(directory)
    with reported_errors():
        stopped = lab.down(timeout=timeout)
    if json_output:
        print_json({"directory": str(lab.directory), "stopped": stopped})
        return
    if not stopped:
        say(f"no lab running in {lab.directory}")
    for name, how in stopped.items():
        say(f"{name}: {how}")


@app.command("status")
def status(directory: LabDir = None, json_output: Json = False) -> None:
    """Show the lab's processes, ports and relay mode."""
    from dhcpfoctl.cli.output import print_json, reported_errors

    with reported_errors():
        report = _lab(directory).status()
    if json_output:
        print_json(report.to_json())
    else:
        _print_status(report)


@app.command("cut")
def cut(
    drop: bool = typer.Option(
        False,
        "--drop",
        help="Keep connections open but discard bytes (only max-response-delay notices).",
    ),
    directory: LabDir = None,
    json_output: Json = False,
) -> None:
    """Cut the failover link: connections refused and reset (or silently dropped)."""
    _relay_command(directory, json_output, "drop" if drop else "cut")


@app.command("heal")
def heal(directory: LabDir = None, json_output: Json = False) -> None:
    """Restore the failover link (links silenced by --drop are reset, peers reconnect)."""
    _relay_command(directory, json_output, "heal")


@app.command("clients")
def clients(
    count: int = typer.Argument(..., min=1, metavar="N", help="How many DHCP clients."),
    rate: float = typer.Option(
        50.0, "--rate", min=0.1, metavar="PER_SECOND", help="New clients started per second."
    ),
    duration: float = typer.Option(
        30.0, "--duration", min=0.1, metavar="SECONDS", help="How long the clients run."
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Do not release the leases at the end (they stay bound)."
    ),
    seed: int = typer.Option(
        0, "--seed", metavar="N", help="Seed of the client MACs: the same seed, the same clients."
    ),
    directory: LabDir = None,
    json_output: Json = False,
) -> None:
    """Run N DHCP clients against the lab (DORA, renew at T1, rebind at T2, release).

    Exits 5 when no client got a lease (the servers answered nobody).
    """
    from dhcpfoctl.cli.output import print_json, reported_errors
    from dhcpfoctl.errors import RemoteError

    with reported_errors():
        lab = _lab(directory)
        with _population_progress(count, enabled=not json_output) as progress:
            stats = lab.clients(
                count, rate=rate, duration=duration, release=not keep, seed=seed,
                progress=progress,
            )  # fmt: skip
        if json_output:
            print_json(_stats_json(stats))
        else:
            _print_stats(stats, count)
        if stats.acks == 0:
            raise RemoteError("lab", "no client got a lease")


@app.command("env")
def env(directory: LabDir = None, json_output: Json = False) -> None:
    """Print the shell line that points dhcpfoctl at the lab's profile file.

    Use as ``eval "$(dhcpfoctl lab env)"``; then ``dhcpfoctl status`` talks to the lab.
    """
    import shlex

    from dhcpfoctl.cli.output import echo, print_json
    from dhcpfoctl.profile import CONFIG_ENV

    profile = str(_lab(directory).profile)
    if json_output:
        print_json({CONFIG_ENV: profile})
    else:
        echo(f"export {CONFIG_ENV}={shlex.quote(profile)}")


@app.command("demo")
def demo(
    partition: bool = typer.Option(
        False, "--partition", help="The partition story: the link cut, both servers alive."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not pause between the steps."),
    keep: bool = typer.Option(False, "--keep", help="Leave the lab running at the end."),
    base_port: int = typer.Option(
        16720, "--base-port", metavar="PORT", help="First of the 10 loopback ports it uses."
    ),
    directory: Annotated[
        Path | None,
        typer.Option("--dir", metavar="DIR", help="Lab directory (default: a new temporary one)."),
    ] = None,
    json_output: Json = False,
) -> None:
    """Play the outage story of a failover pair on a lab pair, in under a minute.

    Normal with clients; the link drops and partner-down is refused; the partner dies and
    partner-down is accepted; the MCLT countdown; the partner returns and recovers. The
    commands it runs are the ones you would type; their output is theirs.
    """
    import dataclasses
    import shutil
    import tempfile
    import time

    from dhcpfoctl.cli.output import print_json, reported_errors, say
    from dhcpfoctl.lab.cluster import Lab
    from dhcpfoctl.lab.demo import DEMO_OPTIONS, Demo

    temporary = directory is None
    where = directory or Path(tempfile.mkdtemp(prefix="dhcpfoctl-demo-"))
    lab = Lab(where)
    commands: list[dict[str, object]] = []
    show = _demo_printer(lab, commands, pause=not yes, quiet=json_output)
    finished = False
    with reported_errors():
        try:
            if not json_output:
                say(f"starting a lab pair in {where} …", err=True)
            started_at = time.time()
            lab.up(dataclasses.replace(DEMO_OPTIONS, base_port=base_port))
            story = Demo(lab, show, started_at=started_at)
            try:
                story.partition() if partition else story.outage()
            finally:
                story.close()
            summary = story.summary()  # it reads the servers' logs: before they go
            finished = True
        finally:
            if not keep:
                lab.down()
            if temporary and finished and not keep:
                shutil.rmtree(where, ignore_errors=True)
            elif not finished:
                say(f"the lab's logs are in {where}", err=True)
    if json_output:
        print_json(
            {
                "story": "partition" if partition else "outage",
                "directory": None if temporary and not keep else str(where),
                "milestones": [
                    {"elapsed": round(m.elapsed, 1), "text": m.text} for m in story.milestones
                ],
                "commands": commands,
            }
        )
        return
    _print_summary(summary)


def _demo_printer(
    lab: Lab, commands: list[dict[str, object]], *, pause: bool, quiet: bool
) -> Callable[[object], int | None]:
    """The demo's ``show``: narrations as text, commands run as the operator would type
    them. ``quiet`` (``--json``): nothing printed, each command's output kept instead."""
    import os
    import subprocess
    import sys

    from dhcpfoctl.cli.output import lines, stdout_console, styled
    from dhcpfoctl.lab.demo import Command, Narration
    from dhcpfoctl.profile import CONFIG_ENV

    console = stdout_console()

    def show(item: object) -> int | None:
        if isinstance(item, Narration):
            if not quiet:
                console.print()
                console.print(styled((f"== {item.title}", "bold")))
                console.print(lines(*item.text.split("\n")))
                if pause and sys.stdin.isatty():
                    input("   (Enter to go on) ")
            return None
        assert isinstance(item, Command)
        if not quiet:
            console.print(styled((f"$ dhcpfoctl {' '.join(item.argv)}", "cyan")))
        # In human mode the command writes to the terminal itself, colour rules included.
        result = subprocess.run(
            [sys.executable, "-m", "dhcpfoctl", *item.argv],
            env={**os.environ, CONFIG_ENV: str(lab.profile)},
            stdin=subprocess.DEVNULL,
            capture_output=quiet,
            text=True,
            check=False,
            timeout=60,
        )
        record: dict[str, object] = {"argv": ["dhcpfoctl", *item.argv], "exit": result.returncode}
        if quiet:
            record["output"] = result.stdout
        commands.append(record)
        return result.returncode

    return show


def _print_summary(summary: str) -> None:
    from dhcpfoctl.cli.output import lines, stdout_console, styled

    console = stdout_console()
    console.print()
    console.print(styled(("== What happened", "bold")))
    console.print(lines(*summary.split("\n")))


def _relay_command(directory: Path | None, json_output: bool, command: str) -> None:
    from dhcpfoctl.cli.output import print_json, reported_errors, say

    with reported_errors():
        lab = _lab(directory)
        answer = lab.heal() if command == "heal" else lab.cut(drop=command == "drop")
    if json_output:
        print_json(answer)
        return
    say(f"failover link: {answer['mode']} ({answer['links']} open link(s))")


@app.command("kill")
def kill(
    server: ServerArg,
    signal_name: Signal = typer.Option(
        Signal.TERM, "--signal", help="TERM: clean shutdown; KILL: a crash (kill -9)."
    ),
    directory: LabDir = None,
    json_output: Json = False,
) -> None:
    """Stop one server with a signal (its files stay; `lab start` brings it back)."""
    import signal

    from dhcpfoctl.cli.output import print_json, reported_errors, say

    with reported_errors():
        pid = _lab(directory).kill(server.value, getattr(signal, f"SIG{signal_name.value}"))
    if json_output:
        print_json({"server": server.value, "pid": pid, "signal": signal_name.value})
    else:
        say(f"{server.value} (pid {pid}) stopped by SIG{signal_name.value}")


@app.command("start")
def start(
    server: ServerArg,
    directory: LabDir = None,
    timeout: Timeout = 20.0,
    json_output: Json = False,
) -> None:
    """Start one server of a lab that is up, from its config and lease file."""
    from dhcpfoctl.cli.output import print_json, reported_errors, say

    with reported_errors():
        pid = _lab(directory).start(server.value, timeout=timeout)
    if json_output:
        print_json({"server": server.value, "pid": pid})
    else:
        say(f"started {server.value} (pid {pid})")


def _print_status(report: LabStatus) -> None:
    from rich.table import Table

    from dhcpfoctl.cli.output import lines, say, stdout_console, styled

    console = stdout_console()
    say(f"lab in {report.directory}")
    if not report.configured:
        say("not set up: run `dhcpfoctl lab up`")
        return
    if report.partner is not None:
        mixed = report.partner
        line = (
            f"mixed pair: our {mixed['role']} (failover {mixed['address']}) with the dhcpd at"
            f" {mixed['partner_address']}; no relay"
        )
        say(line)
    table = Table(pad_edge=False, box=None)
    for column in ("process", "pid", "ports" if report.partner else "ports (127.0.0.1)"):
        table.add_column(column, no_wrap=True)
    for process in report.processes:
        # A line per port: a narrow terminal never parts a port from its name.
        ports = lines(
            *(
                f"{label} {_where(process.addresses.get(label), port, report.partner is not None)}"
                + ("" if process.listening.get(label) else " (closed)")
                for label, port in process.ports.items()
            )
        )
        state = str(process.pid) if process.running else "not running"
        table.add_row(process.name, styled((state, "" if process.running else "red")), ports)
    console.print(table)
    if report.relay is not None:
        relay = report.relay
        style = "green" if relay["mode"] == "pass" else "yellow"
        console.print(
            styled(
                "failover link: ",
                (str(relay["mode"]), style),
                f"  ({relay['links']} link(s), {relay['bytes_forwarded']} bytes passed,"
                f" {relay['bytes_discarded']} dropped, {relay['refused']} refused)",
            )
        )


def _where(address: str | None, port: int, mixed: bool) -> str:
    return f"{address}:{port}" if mixed and address else str(port)


def _print_profile_hint(report: LabStatus) -> None:
    import shlex

    from dhcpfoctl.cli.output import say

    # say() soft-wraps: the lines are to be copied, a path must not break across lines
    say("")
    say(f"profile written to {report.profile}; to use it:")
    say(f"  export DHCPFOCTL_CONFIG={shlex.quote(report.profile)}")
    say("  dhcpfoctl status --profile lab")
    say('(or: eval "$(dhcpfoctl lab env)")')


@contextmanager
def _population_progress(
    count: int, *, enabled: bool
) -> Iterator[Callable[[PopulationStats], None] | None]:
    """A progress callback redrawing one line on stderr, or None off a terminal."""
    from dhcpfoctl.cli.output import stderr_console

    console = stderr_console()
    if not enabled or not console.is_terminal:
        yield None
        return
    from rich.live import Live

    from dhcpfoctl.cli.output import styled

    with Live(console=console, transient=True, auto_refresh=False) as live:

        def update(stats: PopulationStats) -> None:
            live.update(
                styled(
                    f"{stats.elapsed:5.1f}s  bound {stats.bound}/{count}  acks {stats.acks}"
                    f"  renewals {stats.renewals}  rebinds {stats.rebinds}  naks {stats.naks}"
                    f"  timeouts {stats.timeouts}"
                ),
                refresh=True,
            )

        yield update


def _stats_json(stats: PopulationStats) -> dict[str, object]:
    from dataclasses import asdict

    data = asdict(stats)
    del data["latencies"]  # one number per exchange: the percentiles say it
    latency: dict[str, float | None] = {}
    for percent in PERCENTILES:
        value = stats.latency_percentile(percent)
        latency[f"p{percent}"] = None if value is None else round(value * 1000, 3)
    data["latency_ms"] = latency
    return data


def _print_stats(stats: PopulationStats, count: int) -> None:
    from rich.table import Table

    from dhcpfoctl.cli.output import say, stdout_console

    table = Table(pad_edge=False, box=None, show_header=False)
    table.add_column(justify="right")
    table.add_column()
    rows = [
        (f"{stats.started}/{count}", "clients started"),
        (str(stats.acks), "leases bound (DORA or INIT-REBOOT)"),
        (str(stats.renewals), "renewals"),
        (str(stats.rebinds), "rebinds"),
        (str(stats.releases), "releases"),
        (str(stats.naks), "NAKs"),
        (str(stats.timeouts), "timeouts"),
        (str(stats.expiries), "leases expired"),
        (str(stats.bound), "bound at the end"),
    ]
    for value, label in rows:
        table.add_row(value, label)
    say(f"{stats.elapsed:.1f}s of DHCP clients")
    stdout_console().print(table)
    latencies = [
        f"p{percent} {value * 1000:.1f} ms"
        for percent in PERCENTILES
        if (value := stats.latency_percentile(percent)) is not None
    ]
    if latencies:
        say("latency: " + ", ".join(latencies))
