"""Outside text reaches the terminal literally (issue 9, "Terminal and markup injection").

Two kinds of test: a lint of the command modules (every way out goes through cli/output.py,
so a new command cannot forget the escaping), and one regression test per class of the
issue, end to end through the CLI: rich markup, emoji codes, escape sequences, a newline
forging a line, bytes that are not UTF-8, and a key's secret echoed in a message.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dhcpfoctl.cli import output
from dhcpfoctl.cli.main import app
from dhcpfoctl.errors import ExitStatus, LocalError
from dhcpfoctl.keys import parse_key
from tests.fake_omapi import FakeFailover, FakeOmapiServer

CLI = Path(output.__file__).parent
DATA = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"
GOLDEN = Path(__file__).parent / "golden" / "balance"

#: What no output may contain: a control character other than the line break (ESC of an
#: ANSI sequence, CR, BEL, NUL, ...), a C1 control, a bidirectional override, a lone
#: surrogate (a byte that was not UTF-8, which a strict UTF-8 stream cannot write).
UNSAFE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)

#: Hostile text: markup that crashes rich ([/x]) or styles and links, an emoji code, an
#: escape sequence that clears the screen, a line forging a Nagios OK.
HOSTILE = "[/x][bold red]red[link=http://evil.example/]click[/link]:smile:\x1b[2J\nOK - fine"


def invoke(*args: str) -> tuple[int, str, str]:
    # Wide: a table cell holding a whole hostile value is not folded across lines.
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    return result.exit_code, result.stdout, result.stderr


def assert_safe(*texts: str) -> None:
    for text in texts:
        assert UNSAFE.search(text) is None, text
        assert "😄" not in text  # :smile: never becomes an emoji


@pytest.fixture(autouse=True)
def no_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DHCPFOCTL_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.delenv("DHCPFOCTL_KEY", raising=False)


# -- the lint: one way out ----------------------------------------------------------------

#: Calls that write to a terminal or file, or build rich text, without the escaping.
FORBIDDEN_CALLS = {
    "print",
    "typer.echo",
    "typer.secho",
    "typer.confirm",
    "typer.prompt",
    "click.echo",
    "sys.stdout.write",
    "sys.stderr.write",
    "traceback.print_exc",
    "json.dump",
    "json.dumps",
    "Console",
    "Text",
    "Text.assemble",
    "Text.from_markup",
    "Text.from_ansi",
}
#: Names whose import means building output outside the layer.
FORBIDDEN_IMPORTS = {("rich.text", "Text"), ("rich.console", "Console"), ("rich.markup", "*")}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in FORBIDDEN_CALLS or name.endswith((".write", ".writelines")):
                found.append(f"{where}: {name}()")
            for keyword in node.keywords:
                # The consoles decide: no call site may turn interpretation back on.
                if keyword.arg in ("markup", "emoji", "highlight", "highlighter"):
                    found.append(f"{where}: {keyword.arg}=")
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (node.module, alias.name) in FORBIDDEN_IMPORTS or (
                    node.module,
                    "*",
                ) in FORBIDDEN_IMPORTS:
                    found.append(f"{where}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            found += [f"{where}: import {a.name}" for a in node.names if a.name == "csv"]
    return found


def test_command_modules_print_only_through_the_output_layer() -> None:
    modules = sorted(p for p in CLI.glob("*.py") if p.name != "output.py")
    assert len(modules) >= 8  # the lint looks where the commands are
    violations = [v for path in modules for v in _violations(path)]
    assert violations == []


def test_the_lint_catches_each_way_around_the_layer(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import csv, sys, typer\n"
        "from rich.text import Text\n"
        "def f(console, name):\n"
        "    print(name)\n"
        "    typer.echo(name)\n"
        "    sys.stdout.write(name)\n"
        "    console.print(f'[bold]{name}', markup=True)\n"
        "    Text.from_markup(name)\n"
    )
    assert len(_violations(bad)) == 7


def test_a_caller_cannot_turn_markup_emoji_or_highlighting_back_on() -> None:
    console = output.text_console(200)
    console.print("[bold]x[/bold] :smile: 10.0.0.1 True", markup=True, emoji=True, highlight=True)
    assert console.file.getvalue() == "[bold]x[/bold] :smile: 10.0.0.1 True\n"  # type: ignore[attr-defined]


def test_text_built_outside_the_helpers_is_still_escaped_on_the_way_out() -> None:
    from rich.text import Text

    console = output.text_console(200)
    console.print(Text("a\x1b[2Jb\x00c\x9bd"))
    assert console.file.getvalue() == "a\\x1b[2Jb\\x00c\\x9bd\n"  # type: ignore[attr-defined]


def test_helpers_keep_each_part_on_its_line() -> None:
    console = output.text_console(200)
    console.print(output.lines("one", ("two\nforged", "bold")))
    console.print(output.styled("x\r", ("y", "red")))
    assert console.file.getvalue().splitlines() == ["one", "two\\nforged", "x\\ry"]  # type: ignore[attr-defined]


def test_non_utf8_bytes_are_shown_as_their_value() -> None:
    assert output.literal("caf\udce9") == "caf\\xe9"
    assert output.csv_text([["caf\udce9", "a\nb"]]) == "caf\\xe9,a\\nb\n"


# -- regression: lease file fields (client hostnames, peer names) -------------------------


def _hostile_leases(tmp_path: Path) -> Path:
    """A lease file whose client-hostnames and failover peer name are hostile."""
    quoted = (
        HOSTILE.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\x1b", "\\033")
        .replace("\n", "\\012")
    )
    path = tmp_path / "hostile.leases"
    path.write_bytes(
        (
            f'failover peer "{quoted}" state {{\n'
            "  my state normal at 6 2026/11/28 07:35:17;\n"
            "  partner state normal at 6 2026/11/28 07:35:17;\n"
            "}\n"
            "lease 10.0.0.1 {\n  starts 6 2026/11/28 07:00:00;\n  ends 6 2026/11/28 09:00:00;\n"
            "  binding state active;\n  hardware ethernet 00:11:22:33:44:55;\n"
            f'  client-hostname "{quoted}";\n}}\n'
            "lease 10.0.0.2 {\n  binding state active;\n"
        ).encode()
        + b'  client-hostname "caf\xe9\xff";\n}\n'
    )
    return path


@pytest.mark.parametrize("form", [(), ("--csv",), ("--summary",), ("--all-records",)])
def test_lease_fields_are_literal_in_every_form(tmp_path: Path, form: tuple[str, ...]) -> None:
    path = _hostile_leases(tmp_path)
    before = path.read_bytes()
    code, out, err = invoke("leases", str(path), *form)
    assert code == ExitStatus.OK, err
    assert_safe(out, err)
    flat = "".join(out.split())
    if "--summary" in form:
        assert "[/x][boldred]red[link=http://evil.example/]" in flat
    else:
        assert "[/x][boldred]red[link=http://evil.example/]click[/link]:smile:\\x1b[2J\\nOK" in flat
        assert "caf\\xe9\\xff" in flat
    assert not any(line.startswith("OK - fine") for line in out.splitlines())
    assert path.read_bytes() == before


def test_lease_json_escapes_everything_outside_ascii(tmp_path: Path) -> None:
    code, out, err = invoke("leases", str(_hostile_leases(tmp_path)), "--json")
    assert code == ExitStatus.OK, err
    assert_safe(out)
    assert out.isascii()
    assert json.loads(out)[0]["client_hostname"] == HOSTILE


def test_a_file_name_keeps_its_location_in_an_error(tmp_path: Path) -> None:
    # A file name that rich would read as markup and an emoji: the location stays.
    path = tmp_path / "x:smile:[bold]y[:x]\x1b[31m.leases"
    path.write_bytes(b"lease 10.0.0.1 {\n  binding state active;\n}\n" * 33 + b"lease {\n")
    code, out, err = invoke("leases", str(path), "--strict")
    assert code == ExitStatus.INPUT_ERROR
    assert_safe(out, err)
    assert "x:smile:[bold]y[:x]\\x1b[31m.leases:100" in err
    assert err.count("\n") == 1


# -- regression: config names in balance / audit (CSV, Prometheus, Nagios) ----------------


def _hostile_config(tmp_path: Path) -> Path:
    escaped = HOSTILE.replace("\x1b", "\\033").replace("\n", "\\n")
    text = (GOLDEN / "fixture.conf").read_text().replace('"fx"', f'"{escaped}|x"')
    path = tmp_path / "hostile.conf"
    path.write_text(text)
    return path


@pytest.mark.parametrize("form", ["table", "csv", "prometheus", "json"])
def test_config_names_are_literal_in_balance(tmp_path: Path, form: str) -> None:
    conf = _hostile_config(tmp_path)
    code, out, err = invoke(
        "balance", "-c", str(conf), "-l", str(GOLDEN / "warning.leases"), "--format", form,
        "--as-of", "2026-11-28T08:00:00Z",
    )  # fmt: skip
    assert code == ExitStatus.OK, err
    assert_safe(out, err)
    if form == "prometheus":
        samples = [line for line in out.splitlines() if not line.startswith("#")]
        # One sample per line, each NAME{LABELS} VALUE: no label forged a line.
        assert all(re.fullmatch(r"dhcpfoctl_\w+\{.*\} \S+", line) for line in samples)
        assert "\\\\x1b[2J\\\\nOK - fine|x" in out
    if form == "csv":
        assert all(line.count(",") >= 20 for line in out.splitlines())


def test_audit_nagios_line_is_one_line_whatever_the_input(tmp_path: Path) -> None:
    conf = tmp_path / "broken\nDHCPFOCTL OK - all fine | x=1.conf"
    conf.write_text("subnet {\n")
    code, out, err = invoke(
        "audit", "-c", str(conf), "-l", str(GOLDEN / "ok.leases"), "--format", "nagios"
    )
    assert code == ExitStatus.UNKNOWN
    assert_safe(out, err)
    assert out.count("\n") == 1 and out.startswith("DHCPFOCTL UNKNOWN - ")
    assert "|" not in out  # nothing the file name says can become perfdata


def test_audit_findings_quote_names_literally(tmp_path: Path) -> None:
    code, out, err = invoke(
        "audit", "-c", str(_hostile_config(tmp_path)), "-l", str(GOLDEN / "critical.leases"),
        "--as-of", "2026-11-28T08:00:00Z", "--format", "nagios",
    )  # fmt: skip
    assert code in (ExitStatus.WARNING, ExitStatus.CRITICAL), err
    assert_safe(out, err)
    assert out.count("\n") == 1


# -- regression: what an OMAPI server says -------------------------------------------------


class HostileServer(FakeOmapiServer):
    """A fake dhcpd whose STATUS messages forge a Nagios line and clear the screen."""

    def _status(self, code: int, text: str = "", authid: int = 0):  # type: ignore[no-untyped-def]
        # NOPERM: a code whose message is the server's own text.
        return super()._status(
            6 if code == 23 else code, HOSTILE + "\ndhcpfoctl: error: forged", authid
        )


@pytest.mark.parametrize("form", [(), ("--json",)])
def test_server_status_messages_are_literal(form: tuple[str, ...]) -> None:
    with HostileServer({"lab": FakeFailover()}) as server:
        code, out, err = invoke(
            "status", "--server", server.endpoint, "--peer", "other", "--timeout", "2", *form
        )
    assert code == ExitStatus.UNKNOWN
    assert_safe(out, err)
    lines = (out + err).splitlines()
    assert not any(line.startswith(("OK - fine", "dhcpfoctl: error: forged")) for line in lines)
    if not form:
        assert "\\x1b[2J\\nOK - fine\\ndhcpfoctl: error: forged" in out


def test_server_status_message_in_partner_down_error_is_one_line() -> None:
    with HostileServer({"lab": FakeFailover()}) as server:
        code, out, err = invoke(
            "partner-down", "--server", server.endpoint, "--peer", "other", "--timeout", "2",
            "--dry-run",
        )  # fmt: skip
    assert code == ExitStatus.REMOTE_ERROR
    assert_safe(out, err)
    assert err.count("\n") == 1 and "\\nOK - fine" in err


def test_raw_server_bytes_never_reach_the_terminal() -> None:
    """A server answering with escape sequences instead of OMAPI: a clean, literal error."""
    garbage = b"\x1b[2J\x1b]8;;http://e\x07\n OK\xff" * 4
    with FakeOmapiServer(behaviour="garbage", garbage=garbage) as server:
        code, out, err = invoke(
            "status", "--server", server.endpoint, "--peer", "lab", "--timeout", "2"
        )
    assert code == ExitStatus.UNKNOWN
    assert_safe(out, err)


# -- regression: command-line values -------------------------------------------------------


def test_usage_errors_quote_the_command_line_literally() -> None:
    code, out, err = invoke("leases", "--x\x1b[31m[bold]:smile:")
    assert code == ExitStatus.USAGE
    assert_safe(out, err)
    assert "--x\\x1b[31m[bold]:smile:" in err


def test_option_values_are_literal_in_messages(tmp_path: Path) -> None:
    code, out, err = invoke("status", "--server", "h\x1b[2J\nOK:1", "--peer", "[/x]", "--timeout",
                            "0.5")  # fmt: skip
    assert code == ExitStatus.UNKNOWN
    assert_safe(out, err)


# -- keys: the secret is never echoed ------------------------------------------------------

SECRET = "c2VjcmV0c2VjcmV0c2VjcmV0"


@pytest.mark.parametrize(
    "text",
    [
        f"{SECRET}:omapi_key",  # NAME:SECRET swapped (the name is not valid base64)
        f"{SECRET}:omapi_key:x",  # secret in the algorithm position
        f"hmac-md5:{SECRET}:not base64!",  # secret in the name position, bad secret
        f"{SECRET}",  # no separators at all
        f"{SECRET}:{SECRET}:{SECRET}:x",  # too many fields
    ],
)
def test_key_option_errors_never_echo_a_token(text: str) -> None:
    with pytest.raises(LocalError) as caught:
        parse_key(text)
    assert SECRET not in str(caught.value)
    assert "omapi_key" not in str(caught.value)


def test_a_secret_as_the_algorithm_is_not_echoed_in_the_warning(tmp_path: Path) -> None:
    from dhcpfoctl.conf import read_config

    path = tmp_path / "omapi.key"
    path.write_text(f"key k {{ algorithm {SECRET}; secret {SECRET}; }}\n")
    warnings = read_config(str(path)).warnings
    assert len(warnings) == 1 and warnings[0].startswith(f"{path}:1")
    assert SECRET.lower() not in warnings[0].lower()


@pytest.mark.parametrize(
    "stanza",
    [
        f'key "{SECRET}" {{ algorithm hmac-md5; }}',  # secret as the name, no secret
        f'key k {{ algorithm hmac-md5; secret {SECRET}; "{SECRET}"; }}',  # stray string
        f"key k {{ algorithm hmac-md5 {SECRET}; }}",  # a missing ';'
        f"key k {{ algorithm hmac-md5; secret {SECRET} }}",  # not terminated
        f"key k {{ {SECRET} }}",  # a word where a statement goes
        f'key k {{ algorithm "{SECRET}; secret {SECRET}; }}',  # an unterminated string
    ],
)
def test_key_stanza_errors_never_echo_a_token(tmp_path: Path, stanza: str) -> None:
    from dhcpfoctl.conf import load_key_file
    from dhcpfoctl.errors import InputFileError

    path = tmp_path / "omapi.key"
    path.write_text(stanza + "\n")
    with pytest.raises(InputFileError) as caught:
        load_key_file(str(path))
    said = str(caught.value)
    assert SECRET.lower() not in said.lower()
    assert said.startswith(f"{path}:1")  # says where, not what


def test_key_file_error_through_the_cli_names_the_place_only(tmp_path: Path) -> None:
    path = tmp_path / "omapi.key"
    path.write_text(f'key k {{ algorithm hmac-md5; secret {SECRET}; "{SECRET}"; }}\n')
    code, out, err = invoke(
        "status", "--server", "127.0.0.1:9", "--peer", "lab", "--key-file", str(path)
    )
    assert code == ExitStatus.UNKNOWN
    assert SECRET not in out + err
    assert f"{path}:1" in err


def test_key_option_error_through_the_cli_names_the_field_only() -> None:
    code, out, err = invoke("status", "--server", "127.0.0.1:9", "--key", f"{SECRET}:omapi_key")
    assert code == ExitStatus.UNKNOWN
    assert SECRET not in out + err and "the last field" in err


def test_a_crash_escaping_its_command_is_reported_literally(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dhcpfoctl import __main__ as entry
    from dhcpfoctl.cli import main

    def crash() -> None:
        raise ValueError(HOSTILE + "caf\udce9")

    monkeypatch.setattr(main, "app", crash)
    with pytest.raises(SystemExit) as stopped:
        entry.main()
    assert stopped.value.code == ExitStatus.INPUT_ERROR
    err = capsys.readouterr().err
    assert_safe(err)
    assert "ValueError: [/x][bold red]red" in err and "\\x1b[2J\\nOK - fine" in err
    assert "caf\\xe9" in err
