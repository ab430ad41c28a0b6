"""Start-up cost (issue 12): what a command imports, pinned by module, not by time.

``dhcpfoctl balance --json`` runs in a fresh process in a few tenths of a second, most of
it Python and typer starting: what it must not do is import what it does not use (rich,
the other commands' modules, OpenSSL through hashlib). The output layer writes a line
off a terminal without rich: the differential test below holds that equal to rich's.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from hypothesis import given
from hypothesis import strategies as st

from dhcpfoctl.cli import main, output

EXAMPLES = Path(__file__).resolve().parent.parent / "dhcpfoctl" / "examples"
COMMAND_MODULES = {f"dhcpfoctl.cli.{module}" for module, _, _ in main.COMMANDS.values()}
#: Imported only where they are used: a terminal table, a state store, a file written.
NOT_FOR_JSON = ("rich", "hashlib", "_hashlib", "tempfile")


def imported_by(*args: str) -> tuple[set[str], str]:
    """The modules a fresh ``dhcpfoctl ARGS`` process has imported when it ends, and its
    stdout."""
    code = (
        "import sys\n"
        "from dhcpfoctl.__main__ import main\n"
        f"sys.argv = ['dhcpfoctl', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('\\n' + ' '.join(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    out, _, modules = result.stdout.rstrip("\n").rpartition("\n")
    return set(modules.split()), out


def loaded(modules: set[str], names: tuple[str, ...] | set[str]) -> list[str]:
    return sorted(m for m in modules if m in names or m.split(".")[0] in names)


BALANCE = (
    "balance",
    "-c",
    str(EXAMPLES / "primary.conf"),
    "-l",
    str(EXAMPLES / "primary.leases"),
    "--as-of",
    "2026-11-28T07:50Z",
)


def test_balance_json_imports_only_its_own_command_and_no_rich() -> None:
    modules, out = imported_by(*BALANCE, "--json")
    assert json.loads(out)["pools"]  # it did run
    assert loaded(modules, COMMAND_MODULES) == ["dhcpfoctl.cli.balance"]
    assert loaded(modules, NOT_FOR_JSON) == []
    # A balance remembers nothing between runs: the follower and the state store stay out.
    assert {"dhcpfoctl.checks.history", "dhcpfoctl.state"}.isdisjoint(modules)


@pytest.mark.parametrize(
    "output", [("--csv",), ("--format", "prometheus"), ("--format", "prometheus", "-o", "FILE")]
)
def test_balance_documents_need_no_rich(output: tuple[str, ...], tmp_path: Path) -> None:
    target = tmp_path / "balance.prom"
    modules, _ = imported_by(*BALANCE, *(str(target) if o == "FILE" else o for o in output))
    assert loaded(modules, ("rich", "hashlib")) == []
    assert target.exists() == ("FILE" in output)


def test_a_warning_and_an_error_off_a_terminal_need_no_rich() -> None:
    # --as-of before the file: a warning on stderr; then a file that cannot be read.
    conf, leases = str(EXAMPLES / "primary.conf"), str(EXAMPLES / "primary.leases")
    modules, _ = imported_by("balance", "-c", conf, "-l", leases, "--as-of", "@0", "--csv")
    assert loaded(modules, NOT_FOR_JSON) == []
    modules, _ = imported_by("balance", "-c", conf, "-l", "/nonexistent", "--json")
    assert loaded(modules, NOT_FOR_JSON) == []


def test_version_imports_no_command_module_and_no_reader() -> None:
    modules, out = imported_by("--version")
    assert out.startswith("dhcpfoctl ")
    assert loaded(modules, COMMAND_MODULES) == []
    assert loaded(modules, ("rich", "hashlib", "dhcpfoctl.leases.reader", "dhcpfoctl.conf")) == []


def test_every_command_is_listed_and_built_with_its_class() -> None:
    root = typer.main.get_command(main.app)
    ctx = root.context_class(root, info_name="dhcpfoctl")
    assert root.list_commands(ctx) == list(main.COMMANDS)
    for name, (_, _, cls) in main.COMMANDS.items():
        command = root.get_command(ctx, name)
        assert type(command) is cls and command.name == name
    assert root.get_command(ctx, "no-such-command") is None


TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from("\x1b\n\r\t\udce9 [/]:"))


@given(message=TEXT, style=st.sampled_from([None, "bold red", "dim"]), err=st.booleans())
def test_a_line_said_off_a_terminal_is_what_rich_prints(
    message: str, style: str | None, err: bool
) -> None:
    def said(*, rich: bool) -> str:
        stream = io.StringIO()
        real = sys.stderr if err else sys.stdout
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "stderr" if err else "stdout", stream)
            if rich:  # rich's own answer: no terminal, but it is asked (not known without it)
                patch.setenv("TTY_COMPATIBLE", "0")
            else:
                patch.delenv("TTY_COMPATIBLE", raising=False)
                patch.delenv("FORCE_COLOR", raising=False)
            output.stdout_console.cache_clear()
            output.stderr_console.cache_clear()
            output.say(message, style=style, err=err)
        assert (sys.stderr if err else sys.stdout) is real
        return stream.getvalue()

    assert said(rich=False) == said(rich=True)


def test_the_process_skips_the_final_collections() -> None:
    # atexit runs handlers last-registered first: this check runs after the entry point's.
    code = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "from dhcpfoctl.__main__ import main\n"
        "sys.argv = ['dhcpfoctl', '--version']\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "frozen True"


@pytest.mark.parametrize("asked_rich", [False, True])
def test_a_line_said_on_a_stream_closed_at_start_is_dropped(
    asked_rich: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Started with 2>&-, Python has no sys.stderr: a warning must not end the command.
    monkeypatch.setattr(sys, "stderr", None)
    if asked_rich:
        monkeypatch.setenv("TTY_COMPATIBLE", "0")
    output.say("dhcpfoctl: warning: dropped", err=True)
