"""Command-line options shared by several commands, declared once.

Each alias carries its flag names, metavar and help, so commands that take the same
option (the OMAPI connection options of ``status``, ``partner-down`` and ``set-state``)
spell it identically and cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any, get_type_hints

import typer

# typer's choice type is private (typer._types); the docs generator reads its ``choices``.
from typer._types import TyperChoice

Profile = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        metavar="NAME",
        help="Profile in ~/.config/dhcpfoctl/config.toml (or $DHCPFOCTL_CONFIG).",
    ),
]
Peers = Annotated[
    list[str] | None,
    typer.Option(
        "--peer",
        metavar="NAME",
        help='Failover relationship name (failover peer "NAME"); repeatable.',
    ),
]
ConfigFile = Annotated[
    str | None,
    typer.Option(
        "--config",
        "-c",
        metavar="FILE",
        help="dhcpd.conf to read relationship names, the omapi-key and pools from.",
    ),
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        metavar="[ALG:]NAME:SECRET",
        help="OMAPI key [ALGORITHM:]NAME:SECRET (base64 secret; default hmac-md5)."
        " Other users see it in ps: prefer --key-file or $DHCPFOCTL_KEY.",
    ),
]
KeyFile = Annotated[
    str | None,
    typer.Option(
        "--key-file",
        metavar="FILE",
        help="File with a `key NAME { algorithm …; secret …; }` stanza.",
    ),
]
NoState = Annotated[
    bool,
    typer.Option("--no-state", help="Remember nothing between runs (see README Monitoring)."),
]
StateMaxAge = Annotated[
    str,
    typer.Option("--state-max-age", metavar="DURATION", help="Ignore remembered data older."),
]
KeyName = Annotated[
    str | None,
    typer.Option(
        "--key-name", metavar="NAME", help="Which key of --key-file to use when it holds several."
    ),
]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        metavar="SECONDS",
        help="Seconds allowed for each connect and each answer.",
    ),
]


#: Old ``--format`` names still accepted (scripts use them) but no longer shown anywhere.
FORMAT_ALIASES = {"table": "human"}


class FormatChoice(TyperChoice):  # type: ignore[type-arg]
    """``--format``'s choices; an alias is accepted and converted, never listed."""

    def __init__(self, choices: type[StrEnum], aliases: Mapping[str, str]) -> None:
        super().__init__([member.value for member in choices])
        self.aliases = {old: new for old, new in aliases.items() if new in self.choices}

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        return super().convert(self.aliases.get(value, value), param, ctx)


class StatusFormat(StrEnum):
    """``status --format`` (``audit`` and ``balance`` declare theirs beside their commands)."""

    human = "human"
    nagios = "nagios"
    json = "json"


def format_option(choices: type[StrEnum], help_text: str) -> Any:
    """The ``--format/-f`` option of a command whose formats are ``choices`` (the first is
    the default; ``human`` is the name of the human format in every command)."""
    first = next(iter(choices))
    return typer.Option(
        first,
        "--format",
        "-f",
        click_type=FormatChoice(choices, FORMAT_ALIASES),
        help=help_text,
    )


def with_argument_fixed(
    command: Callable[..., None], name: str, value: object, *, doc: str
) -> Callable[..., None]:
    """``command`` with its parameter ``name`` fixed to ``value``, as a command of its own.

    ``partner-down`` is ``set-state partner-down`` with its own help: one definition of the
    options serves both (typer reads the signature and the resolved annotations).
    """
    signature = inspect.signature(command)
    hints = get_type_hints(command, include_extras=True)

    def fixed(**options: object) -> None:
        command(**{name: value}, **options)

    # Annotations resolved here: the signature would otherwise carry the strings of
    # ``from __future__ import annotations``, which typer cannot evaluate in this module.
    fixed.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(annotation=hints[p.name])
            for p in signature.parameters.values()
            if p.name != name
        ]
    )
    fixed.__annotations__ = {key: hint for key, hint in hints.items() if key != name}
    fixed.__doc__ = doc
    fixed.__name__ = fixed.__qualname__ = f"{command.__name__}_{name}_fixed"
    fixed.__module__ = command.__module__
    return fixed
