"""Hostile or broken input read by the parsers: a FILE:LINE problem and a documented exit
status, never a traceback, and the rest of a lenient read kept (issue 9)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from dhcpfoctl.conf import read_config
from dhcpfoctl.errors import InputFileError
from dhcpfoctl.leases import read_leases, read_leases6
from dhcpfoctl.model import HardwareType
from dhcpfoctl.quoting import parse_decimal
from dhcpfoctl.times import format_local_time, iso_utc

runner = CliRunner()
GOOD = "lease 10.0.0.6 {\n  starts epoch 1;\n  ends epoch 2;\n  binding state active;\n}\n"


def lease_with(line: str) -> str:
    return f"lease 10.0.0.5 {{\n  starts epoch 1;\n{line}\n  binding state active;\n}}\n"


BAD_LEASE_LINES = {
    "epoch beyond 64 bits": "  ends epoch 99999999999999999999999;",
    "epoch past the calendar": "  ends epoch 999999999999999;",
    "epoch past the digit limit": "  ends epoch " + "9" * 5000 + ";",
    "absurd positive offset": "  ends 4 2026/11/28 07:00:18 99999999999999999;",
    "absurd negative offset": "  ends 4 2026/11/28 07:00:18 -99999999999999;",
    "February 31": "  ends 2 2026/02/31 07:00:18;",
    "set number past the digit limit": "  set x = %" + "9" * 5000 + ";",
    "set number beyond 64 bits": "  set x = %18446744073709551616;",
    "hardware type above 255": "  hardware unknown-300 02:00:00:00:00:01;",
}


@pytest.mark.parametrize("line", BAD_LEASE_LINES.values(), ids=BAD_LEASE_LINES.keys())
@pytest.mark.parametrize("form", ["table", "--json", "--csv", "--summary"])
def test_bad_lease_line_is_a_file_line_warning_and_the_rest_is_read(
    tmp_path: Path, line: str, form: str
) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_text(lease_with(line) + GOOD)
    args = ["leases", str(path)] + ([] if form == "table" else [form])
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.stderr
    assert f"{path}:3: " in result.stderr and "record skipped" in result.stderr
    assert "10.0.0.6" in result.stdout or "active" in result.stdout
    assert "10.0.0.5" not in result.stdout


@pytest.mark.parametrize("line", BAD_LEASE_LINES.values(), ids=BAD_LEASE_LINES.keys())
def test_bad_lease_line_is_fatal_in_strict_mode(tmp_path: Path, line: str) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_text(lease_with(line) + GOOD)
    result = runner.invoke(app, ["leases", str(path), "--strict"])
    assert result.exit_code == 4
    assert f"{path}:3: " in result.stderr


def test_huge_mclt_in_a_lease_file_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_text(
        'failover peer "p" state {\n  my state normal;\n  partner state normal;\n'
        "  mclt " + "9" * 5000 + ";\n}\n" + GOOD
    )
    db = read_leases(path)
    assert [w.line for w in db.stats.warnings] == [4]
    assert len(db.leases) == 1


@given(st.integers())
def test_every_time_has_a_json_and_a_table_form(epoch: int) -> None:
    assert iso_utc(epoch)
    assert format_local_time(epoch, 0)


def test_a_time_past_the_calendar_is_shown_as_its_epoch() -> None:
    assert iso_utc(10**30) == f"@{10**30}"
    assert format_local_time(-(10**30), 0).startswith(f"@{-(10**30)} (")


@pytest.mark.parametrize("text", ["²", "\u0661\u0662", "12a", "", "-1", "9" * 5000, "4294967296"])
def test_parse_decimal_refuses_what_is_not_an_ascii_number_in_range(text: str) -> None:
    assert parse_decimal(text, 2**32 - 1) is None


def test_parse_decimal_reads_ascii_digits() -> None:
    assert parse_decimal("4294967295", 2**32 - 1) == 2**32 - 1
    assert parse_decimal(b"007", 10) == 7


@pytest.mark.parametrize("word", ["unknown-" + "9" * 5000, "unknown-²"])
def test_wire_code_keywords_refuse_odd_numbers_with_the_documented_value_error(word: str) -> None:
    with pytest.raises(ValueError):
        HardwareType.from_keyword(word)


PEER = """failover peer "fo" {{
  primary;
  address 127.0.0.1;
  peer address 127.0.0.2;
  mclt {mclt};
  split 128;{extra}
}}
subnet 10.0.0.0 netmask 255.255.255.0 {{
  pool {{ failover peer "fo"; range 10.0.0.10 10.0.0.20; }}
}}
"""


@pytest.mark.parametrize("mclt", ["²", "\u0663\u0666\u0660\u0660", "9" * 5000, "4294967296"])
def test_config_numbers_must_be_ascii_and_in_range(tmp_path: Path, mclt: str) -> None:
    path = tmp_path / "dhcpd.conf"
    path.write_text(PEER.format(mclt=mclt, extra=""))
    with pytest.raises(InputFileError) as caught:
        read_config(path)
    assert caught.value.location == f"{path}:5:8"
    assert "expecting a number" in str(caught.value)


def test_mclt_0_on_a_primary_is_refused_as_dhcpd_does(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.conf"
    path.write_text(PEER.format(mclt="0", extra=""))
    with pytest.raises(InputFileError, match="primary failover server must have mclt"):
        read_config(path)


def test_load_balance_max_seconds_absent_is_not_reported_as_0(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.conf"
    path.write_text(PEER.format(mclt="3600", extra=""))
    (absent,) = read_config(path).warnings
    assert "load balance max seconds is not set (default 0)" in absent
    path.write_text(PEER.format(mclt="3600", extra="\n  load balance max seconds 0;"))
    (zero,) = read_config(path).warnings
    assert "load balance max seconds is 0," in zero


def test_an_include_loop_is_reported_as_a_loop(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text('include "b.conf";\n')
    (tmp_path / "b.conf").write_text('\ninclude "a.conf";\n')
    os.chdir(tmp_path)
    with pytest.raises(InputFileError) as caught:
        read_config(tmp_path / "a.conf")
    assert caught.value.location == "b.conf:2:9"
    assert "include loop" in caught.value.message


def test_a_nul_in_an_include_name_is_a_file_line_error(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.conf"
    path.write_text('include "a\\000b";\n')
    with pytest.raises(InputFileError) as caught:
        read_config(path)
    assert caught.value.location == f"{path}:1:9"


def test_the_same_file_included_twice_is_no_loop(tmp_path: Path) -> None:
    (tmp_path / "empty.conf").write_text("# nothing\n")
    path = tmp_path / "dhcpd.conf"
    path.write_text(f'include "{tmp_path}/empty.conf";\ninclude "{tmp_path}/empty.conf";\n')
    assert read_config(path).files == [str(path), *[str(tmp_path / "empty.conf")] * 2]


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _in_a_thread(target: object) -> None:
    """Run ``target``; a read that blocked would leave the thread alive after the join."""
    worker = threading.Thread(target=target, daemon=True)  # type: ignore[arg-type]
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the read blocked"


@pytest.mark.parametrize("device", ["fifo", "/dev/zero", "directory"])
def test_lease_files_that_are_not_regular_files_are_refused(
    tmp_path: Path, fifo: Path, device: str
) -> None:
    path = {"fifo": str(fifo), "directory": str(tmp_path)}.get(device, device)
    outcomes: list[tuple[int, str]] = []

    def run() -> None:
        for flag in ([], ["-6"]):
            result = runner.invoke(app, ["leases", path, *flag])
            outcomes.append((result.exit_code, result.stderr))

    _in_a_thread(run)
    for status, err in outcomes:
        assert status == 4
        assert f"{path}: " in err and "not a regular file" in err


@pytest.mark.parametrize("device", ["fifo", "/dev/zero"])
def test_includes_that_are_not_regular_files_are_refused(
    tmp_path: Path, fifo: Path, device: str
) -> None:
    target = str(fifo) if device == "fifo" else device
    path = tmp_path / "dhcpd.conf"
    path.write_text(f'include "{target}";\n')
    errors: list[InputFileError] = []

    def run() -> None:
        try:
            read_config(path)
        except InputFileError as exc:
            errors.append(exc)

    _in_a_thread(run)
    (error,) = errors
    assert error.location == f"{path}:1:9" and "not a regular file" in error.message


V6_RECORD = """ia-na "\\001\\000\\000\\000\\000\\003\\000\\001RT\\000\\022\\064{n}" {{
  cltt 4 2026/11/28 07:00:18;
  iaaddr 2001:db8::{n} {{
    binding state active;
    preferred-life 375;
    max-life 600;
    ends {ends};
  }}
}}
"""


@pytest.mark.parametrize(
    "ends",
    [
        "epoch 99999999999999999999",
        "epoch " + "9" * 5000,
        "4 2026/02/31 07:10:18",
        "4 2026/11/28 07:10:18 999999999999999",
        "garbage",
    ],
)
def test_a_bad_v6_record_is_a_file_line_warning(tmp_path: Path, ends: str) -> None:
    path = tmp_path / "dhcpd6.leases"
    path.write_text(
        V6_RECORD.format(n=1, ends="4 2026/11/28 07:10:18") + V6_RECORD.format(n=2, ends=ends)
    )
    result = runner.invoke(app, ["leases", "-6", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    assert f"{path}:10: unreadable ia-na record" in result.stderr
    assert "\\\\" not in result.stderr and "b'" not in result.stderr  # no repr of raw bytes
    assert [lease["address"] for lease in json.loads(result.stdout)] == ["2001:db8::1"]
    problems: list[object] = []
    assert len(read_leases6(path, problems)) == 1 and len(problems) == 1


def test_the_stdin_lease_file_has_one_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["leases", "-"], input=lease_with("  ends epoch x;") + GOOD)
    assert result.exit_code == 0
    assert "<stdin>:3: " in result.stderr


def test_an_internal_error_exits_with_a_documented_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dhcpfoctl.cli.leases as leases_cli

    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("\x1b[31mfrom a file")

    monkeypatch.setattr(leases_cli, "render_table", broken)
    path = tmp_path / "dhcpd.leases"
    path.write_text(GOOD)
    result = runner.invoke(app, ["leases", str(path)])
    assert result.exit_code == 4
    assert "ZeroDivisionError: " in result.stderr and "Traceback" in result.stderr
    assert "\x1b" not in result.stderr


def test_status_exits_unknown_on_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import dhcpfoctl.profile

    def broken(**_: object) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(dhcpfoctl.profile, "resolve_targets", broken)
    result = runner.invoke(app, ["status", "--server", "127.0.0.1:7911"])
    assert result.exit_code == 3
    assert "ZeroDivisionError: " in result.stderr


KEY = 'key "k" {\n  algorithm hmac-foo;\n  secret "c2VjcmV0";\n};\n'


def test_a_key_file_with_an_unknown_algorithm_is_an_error_before_first_use(
    tmp_path: Path,
) -> None:
    path = tmp_path / "omapi.key"
    path.write_text(KEY)
    path.chmod(0o600)
    result = runner.invoke(
        app, ["status", "--server", "127.0.0.1:9", "--peer", "fo", "--key-file", str(path)]
    )
    assert result.exit_code == 3
    assert f"{path}: key: unknown algorithm" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_configs_omapi_key_with_an_unknown_algorithm_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.conf"
    path.write_text(KEY + "omapi-key k;\n" + PEER.format(mclt="3600", extra=""))
    path.chmod(0o600)
    result = runner.invoke(app, ["status", "--server", "127.0.0.1:9", "--config", str(path)])
    assert result.exit_code == 3
    assert f"{path} (omapi-key): key: unknown algorithm" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_deep_chain_of_distinct_includes_is_still_bounded(tmp_path: Path) -> None:
    for n in range(40):
        (tmp_path / f"{n}.conf").write_text(f'include "{tmp_path}/{n + 1}.conf";\n')
    (tmp_path / "40.conf").write_text("")
    with pytest.raises(InputFileError, match="nested too deeply"):
        read_config(tmp_path / "0.conf")


ENDS_BEFORE_STARTS = lease_with("  ends 4 2026/11/27 07:00:18;").replace(
    "starts epoch 1", "starts 4 2026/11/28 07:00:18"
)


@pytest.mark.parametrize("source", ["file", "stdin", "history", "strict"])
def test_ends_before_starts_is_warned_of_and_the_lease_kept(tmp_path: Path, source: str) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_text(GOOD + ENDS_BEFORE_STARTS)
    args = {
        "file": [str(path)],
        "stdin": ["-"],
        "history": [str(path), "--all-records"],
        "strict": [str(path), "--strict"],
    }[source]
    result = runner.invoke(app, ["leases", *args, "--csv"], input=path.read_bytes())
    assert result.exit_code == 0, result.stderr
    name = "<stdin>" if source == "stdin" else str(path)
    assert f"{name}:6: ends before starts; lease kept" in result.stderr
    assert "10.0.0.5,active" in result.stdout and "10.0.0.6,active" in result.stdout


def test_ends_before_starts_in_a_canonical_batch_is_found(tmp_path: Path) -> None:
    # Many canonical records: the reader's batch path, not the record-by-record one.
    records = "".join(
        f"lease 10.0.1.{n} {{\n  starts epoch 100;\n  ends epoch {50 if n == 7 else 200};\n"
        "  binding state active;\n}\n"
        for n in range(1, 200)
    )
    path = tmp_path / "dhcpd.leases"
    path.write_text(records)
    db = read_leases(path)
    assert [str(w) for w in db.stats.warnings] == [f"{path}:31: ends before starts; lease kept"]
    assert len(db.leases) == 199


@pytest.mark.parametrize(
    "option", ["@" + "9" * 5000, "@²", "-" + "9" * 5000 + "h", "-²h", "-\u0661h"]
)
def test_command_line_times_past_the_digit_limit_or_not_ascii_are_usage_errors(
    tmp_path: Path, option: str
) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_text(GOOD)
    result = runner.invoke(app, ["leases", str(path), "--expired-before", option])
    assert result.exit_code == 2  # click's usage error, as the README's table says
    assert "invalid" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("form", ["table", "--json", "--csv", "--all-records"])
def test_nul_bytes_in_lease_strings_are_read(tmp_path: Path, form: str) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_bytes(
        lease_with('  client-hostname "a\x00b\\000c";\n  uid "\x00\\000";').encode() + GOOD.encode()
    )
    result = runner.invoke(app, ["leases", str(path)] + ([] if form == "table" else [form]))
    assert result.exit_code == 0, result.stderr
    assert "10.0.0.5" in result.stdout and not result.stderr


def test_nul_bytes_in_config_strings_are_read(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.conf"
    path.write_bytes(PEER.format(mclt="3600", extra="").replace('"fo"', '"f\x00o"').encode())
    assert list(read_config(path).failover_peers) == ["f\x00o"]


def test_a_v6_file_on_standard_input_is_named_like_a_v4_one() -> None:
    text = V6_RECORD.format(n=1, ends="garbage")
    result = runner.invoke(app, ["leases", "-6", "-"], input=text)
    assert result.exit_code == 0
    assert "<stdin>:1: unreadable ia-na record" in result.stderr


def test_partner_down_and_balance_exit_4_on_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dhcpfoctl.checks.inputs
    import dhcpfoctl.profile

    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(dhcpfoctl.profile, "resolve_targets", broken)
    monkeypatch.setattr(dhcpfoctl.checks.inputs, "gather", broken)
    path = tmp_path / "dhcpd.leases"
    path.write_text(GOOD)
    for args in (
        ["partner-down", "--server", "127.0.0.1:9", "--peer", "fo", "--yes"],
        ["balance", "--config", str(path), "--leases", str(path)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 4, (args, result.stderr)
        assert "ZeroDivisionError: " in result.stderr


@pytest.mark.parametrize("strict", [[], ["--strict"]])
def test_an_unknown_hardware_keyword_read_forwards_is_a_file_line_problem(
    strict: list[str],
) -> None:
    text = lease_with("  hardware foo 02:00:00:00:00:01;") + GOOD
    result = runner.invoke(app, ["leases", "-", *strict], input=text)
    assert result.exit_code == (4 if strict else 0)
    assert "<stdin>:3: unknown hardware type 'foo'" in result.stderr
    assert "Traceback" not in result.stderr
