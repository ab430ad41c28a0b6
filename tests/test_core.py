"""The shared core: wire enums tolerant of unknown values, the error→exit mapping,
command-line time/duration parsing, and the columnar lease table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dhcpfoctl.errors import (
    ExitStatus,
    InputFileError,
    LocalError,
    RefusedError,
    RemoteError,
    exit_status_for,
)
from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.model import (
    NEVER,
    BindingState,
    FailoverState,
    HardwareType,
    Lease,
    LeaseExtras,
    LeaseFlag,
    LeaseTable,
    OnBlock,
)
from dhcpfoctl.times import (
    format_duration,
    format_relative,
    iso_utc,
    parse_duration,
    parse_time,
)


@given(st.integers(min_value=0, max_value=2**31 - 1))
def test_wire_enums_accept_any_value_and_round_trip_keywords(value: int) -> None:
    for enum_type in (BindingState, FailoverState, HardwareType):
        member = enum_type(value)
        assert int(member) == value
        assert enum_type.from_keyword(member.keyword) == member


def test_known_keywords_match_dhcpd_spelling() -> None:
    assert FailoverState(254).keyword == "recover-wait"
    assert FailoverState.COMMUNICATIONS_INTERRUPTED.keyword == "communications-interrupted"
    assert FailoverState.from_keyword("Partner-Down") is FailoverState.PARTNER_DOWN
    assert FailoverState(99).keyword == "unknown-99"
    assert FailoverState(0).keyword == "unknown-state"
    assert BindingState.from_keyword("backup") == 7
    assert HardwareType(32).keyword == "infiniband"
    with pytest.raises(ValueError):
        BindingState.from_keyword("bogus")


@pytest.mark.parametrize(
    ("exc", "monitoring", "expected"),
    [
        (InputFileError("f:3", "bad"), False, ExitStatus.INPUT_ERROR),
        (InputFileError("f:3", "bad"), True, ExitStatus.UNKNOWN),
        (RemoteError("h:7911", "refused"), False, ExitStatus.REMOTE_ERROR),
        (RemoteError("h:7911", "refused"), True, ExitStatus.UNKNOWN),
        (RefusedError("partner alive"), False, ExitStatus.REFUSED),
        (RefusedError("partner alive"), True, ExitStatus.REFUSED),
        (LocalError("x"), False, ExitStatus.INPUT_ERROR),
        (KeyboardInterrupt(), True, ExitStatus.INTERRUPTED),
        (RuntimeError("bug"), True, ExitStatus.UNKNOWN),
    ],
)
def test_exit_status_mapping(exc: BaseException, monitoring: bool, expected: ExitStatus) -> None:
    assert exit_status_for(exc, monitoring=monitoring) == expected


def test_error_messages_name_the_place() -> None:
    assert str(InputFileError("dhcpd.leases:12", "unterminated string")) == (
        "dhcpd.leases:12: unterminated string"
    )
    assert str(RemoteError("10.0.0.1:7911", "timed out")) == "10.0.0.1:7911: timed out"


def test_secret_never_shows_in_repr() -> None:
    key = OmapiKey("omapi_key", "hmac-md5", Secret(b"topsecret"))
    assert "topsecret" not in repr(key)
    assert "topsecret" not in str(key.secret)
    assert key.secret.reveal() == b"topsecret"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1h 30m", "-5m", "1.5h"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(LocalError):
        parse_duration(text)


def test_parse_time_forms() -> None:
    now = 1_764_313_218
    assert parse_time("now", now) == now
    assert parse_time("@1700000000", now) == 1_700_000_000
    assert parse_time("-2h", now) == now - 7200
    assert parse_time("+30m", now) == now + 1800
    assert parse_time("2026-11-28T07:00:18Z", now) == 1_795_849_218
    assert parse_time("2026-11-28T07:00:18+01:00", now) == 1_795_849_218 - 3600
    with pytest.raises(LocalError):
        parse_time("yesterday-ish", now)


def test_duration_and_time_formatting() -> None:
    assert format_duration(45) == "45s"
    assert format_duration(12 * 60) == "12m"
    assert format_duration(3 * 3600 + 5 * 60) == "3h05m"
    assert format_duration(2 * 86400 + 4 * 3600) == "2d04h"
    assert format_relative(1000, 1000) == "now"
    assert format_relative(1000 + 600, 1000) == "in 10m"
    assert format_relative(1000 - 600, 1000) == "10m ago"
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(NEVER) == "never"
    assert iso_utc(None) is None


def _lease(address: str, **fields: object) -> Lease:
    return Lease(address=address, **fields)  # type: ignore[arg-type]


def test_lease_table_last_record_wins_as_full_snapshot() -> None:
    table = LeaseTable()
    first = _lease(
        "10.0.0.5",
        starts=100,
        ends=200,
        binding_state=BindingState.ACTIVE,
        hardware_type=HardwareType.ETHERNET,
        hardware_address=bytes.fromhex("020000000001"),
        extras=LeaseExtras(uid=b"\x01\x02", client_hostname="pc"),
    )
    second = _lease("10.0.0.5", binding_state=BindingState.FREE, tsfp=300)
    assert table.upsert(first) is False
    assert table.upsert(second) is True
    assert len(table) == 1
    # Nothing of the first record survives: a later record is a full snapshot.
    assert table.get("10.0.0.5") == second


def test_lease_table_iterates_in_address_order_and_compares_by_content() -> None:
    leases = [
        _lease("10.0.0.20", binding_state=BindingState.BACKUP),
        _lease("10.0.0.3", ends=NEVER, flags=LeaseFlag.RESERVED),
        _lease(
            "10.0.0.100",
            extras=LeaseExtras(
                variables=(("ddns-fwd-name", b"h.example."), ("n", 5), ("flag", True)),
                options=(("agent.circuit-id", b"abc"),),
                on_blocks=(OnBlock("expiry", ' set z = "1"; '),),
            ),
        ),
    ]
    table = LeaseTable.from_leases(leases)
    assert [lease.address for lease in table] == ["10.0.0.3", "10.0.0.20", "10.0.0.100"]
    assert table == LeaseTable.from_leases(reversed(leases))
    assert table.get("10.0.0.3").ends == NEVER
    assert table.get("10.0.0.9") is None


@pytest.mark.parametrize(
    ("lease", "now", "failover", "expected"),
    [
        (_lease("10.0.0.1", binding_state=BindingState.BOOTP), 0, True, BindingState.ACTIVE),
        (_lease("10.0.0.1", ends=200), 100, True, BindingState.ACTIVE),
        (_lease("10.0.0.1", ends=200), 300, True, BindingState.EXPIRED),
        (_lease("10.0.0.1", ends=200), 300, False, BindingState.FREE),
        (_lease("10.0.0.1", flags=LeaseFlag.ABANDONED), 0, True, BindingState.ABANDONED),
        (
            _lease("10.0.0.1", extras=LeaseExtras(on_blocks=(OnBlock("expiry", ""),))),
            300,
            True,
            BindingState.ACTIVE,
        ),
    ],
)
def test_effective_state_defaults(
    lease: Lease, now: int, failover: bool, expected: BindingState
) -> None:
    assert lease.effective_state(now, failover=failover) == expected
