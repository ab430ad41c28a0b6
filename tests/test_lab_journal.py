"""The lab's dhcpd.leases journal: last-wins round trips, dhcpd -T, crashes at every step."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dhcpfoctl.cli.main import app
from dhcpfoctl.errors import InputFileError, LocalError
from dhcpfoctl.lab.journal import LeaseJournal
from dhcpfoctl.leases import read_leases
from dhcpfoctl.leases.writer import format_failover, format_lease
from dhcpfoctl.model import (
    BindingState,
    FailoverPeerRecord,
    FailoverState,
    HardwareType,
    Lease,
    LeaseDB,
    LeaseExtras,
    int_to_address,
)
from tests.leases_helpers import REAL
from tests.test_leases_writer import _dhcpd_test, leases

Record = Lease | FailoverPeerRecord
#: Records of one commit() each; None stands for a rewrite of the whole database.
Step = list[Record] | None

_T0 = 1_795_000_000  # 2026-11-18, inside dhcpd's 32-bit horizon
_BASE = 0x0A63_0064  # 10.99.0.100: the first address of REAL's pool
_settings = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

failover_records = st.builds(
    FailoverPeerRecord,
    st.sampled_from(["lab", "other"]),
    st.sampled_from(list(FailoverState)),
    st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    st.sampled_from(list(FailoverState)),
    st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    st.one_of(st.none(), st.integers(0, 3600)),
)
# Few addresses, so that later records replace earlier ones.
any_records = st.one_of(st.integers(0, 7).flatmap(lambda n: leases(_BASE + n)), failover_records)
steps = st.lists(st.one_of(st.lists(any_records, min_size=1, max_size=5), st.none()), max_size=8)


def _apply(db: LeaseDB, records: list[Record]) -> None:
    """The journal semantics: the last record of each lease or relationship wins."""
    for record in records:
        if isinstance(record, Lease):
            db.leases.upsert(record)
        else:
            db.failover[record.name] = record


def _content(db: LeaseDB) -> tuple[object, ...]:
    return (list(db.leases), dict(sorted(db.failover.items())), db.hosts, db.others, db.server_duid)


def _run(journal: LeaseJournal, model: LeaseDB, plan: list[Step], now: float) -> None:
    for step in plan:
        now += 1
        if step is None:
            journal.rewrite(model, now)
            continue
        for record in step:
            if isinstance(record, Lease):
                journal.record_lease(record)
            else:
                journal.record_failover(record)
        journal.commit()
        _apply(model, step)


def _seed(path: Path) -> LeaseDB:
    """A file dhcpd wrote (hosts, server-duid and failover records included)."""
    shutil.copy(REAL / "secondary.leases", path)
    return read_leases(path)


@_settings
@given(plan=steps)
def test_the_file_reads_back_as_the_last_record_of_each_object(
    plan: list[Step], tmp_path: Path
) -> None:
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.leases"
    expected = _seed(path)
    journal, db = LeaseJournal.open(path, now=_T0)
    assert _content(db) == _content(expected)
    _run(journal, db, plan, _T0)
    again = read_leases(path)
    assert not again.stats.warnings
    assert _content(again) == _content(db)
    journal.close()
    reopened, db2 = LeaseJournal.open(path, now=_T0 + 100)
    reopened.close()
    assert _content(db2) == _content(db)


#: OMAPI-created objects as dhcpd writes them (a deleted host's rubout replaces it).
_OBJECTS = """host laptop {
  dynamic;
  hardware ethernet 00:11:22:33:44:55;
  fixed-address 10.99.0.5;
}
host laptop { dynamic; deleted; }
host printer {
  dynamic;
  hardware ethernet 00:11:22:33:44:66;
  uid "\\001\\000\\021\\"3Df";
}
group "lab-group" { dynamic; option domain-name "lab.example"; }
"""


def test_open_rewrites_like_dhcpd_and_keeps_the_previous_generation(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.leases"
    _seed(path)
    with path.open("a") as out:
        out.write(_OBJECTS)
    original = read_leases(path)
    assert set(original.hosts) == {"laptop", "printer"} and original.others
    before = path.read_bytes()
    journal, _ = LeaseJournal.open(path, now=_T0)
    journal.close()
    assert (tmp_path / "dhcpd.leases~").read_bytes() == before
    text = path.read_text()
    assert text.startswith(
        "# The format of this file is documented in the dhcpd.leases(5) manual page.\n"
        "# This lease file was written by dhcpfoctl "
    )
    assert "\n# authoring-byte-order entry is generated, DO NOT DELETE\n" in text
    assert 'failover peer "lab" state {\n  my state ' in text and "server-duid " in text
    assert text.count('failover peer "lab" state') == 1  # compacted: one record per object
    assert _content(read_leases(path)) == _content(original)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dhcpd.leases", "dhcpd.leases~"]
    conf = tmp_path / "dhcpd.conf"
    shutil.copy(REAL / "secondary.conf", conf)
    _dhcpd_test(conf, path, tmp_path)


def test_a_missing_file_starts_an_empty_journal_with_dhcpds_header(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.leases"
    journal, db = LeaseJournal.open(path, now=_T0)
    journal.record_lease(Lease("10.99.0.100", binding_state=BindingState.FREE))
    journal.close()
    assert len(db.leases) == 0
    assert "authoring-byte-order " in path.read_text()
    assert list(read_leases(path).leases) == [Lease("10.99.0.100", binding_state=BindingState.FREE)]
    assert not (tmp_path / "dhcpd.leases~").exists()


@pytest.mark.parametrize(
    "damage",
    [
        "lease 10.99.0.101 {\n  bogus statement;\n}\n",  # superseded by a later record
        'failover peer "lab" state {\n  peer state normal;\n}\n',
        "lease 10.99.0.300 {\n}\n",
    ],
)
def test_a_corrupt_file_is_a_file_line_error_and_nothing_is_touched(
    damage: str, tmp_path: Path
) -> None:
    path = tmp_path / "dhcpd.leases"
    lines = (REAL / "secondary.leases").read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:40]) + damage + "".join(lines[40:]))
    before = path.read_bytes()
    with pytest.raises(InputFileError) as raised:
        LeaseJournal.open(path, now=_T0)
    assert raised.value.location == f"{path}:41"
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["dhcpd.leases"]


@_settings
@given(
    committed=st.lists(any_records, min_size=1, max_size=6),
    cut=st.lists(any_records, min_size=1, max_size=1),
    fraction=st.floats(0.0, 0.999),
)
def test_a_cut_off_tail_is_read_up_to_the_last_complete_record(
    committed: list[Record], cut: list[Record], fraction: float, tmp_path: Path
) -> None:
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.leases"
    journal, model = LeaseJournal.open(path, now=_T0)
    _run(journal, model, [committed], _T0)
    journal.close()
    tail = _format(cut[0]).encode("utf-8", "surrogateescape")
    with path.open("ab") as out:  # "}" written: the record is whole, newline or not
        out.write(tail[: int((len(tail) - 1) * fraction)])
    reopened, db = LeaseJournal.open(path, now=_T0 + 10)
    reopened.close()
    assert _content(db) == _content(model)
    assert not read_leases(path).stats.warnings  # the rewrite dropped the cut record


def _format(record: Record) -> str:
    return format_lease(record) if isinstance(record, Lease) else format_failover(record)


# Crashes ---------------------------------------------------------------------------------


class _Crash(BaseException):
    """The process dies here: no exception handler of the journal runs (not an OSError)."""


_PATCHED = ("open", "write", "fsync", "unlink", "link", "rename", "close")


@contextmanager
def _crash_at(call: int | None) -> Iterator[list[int]]:
    """Count the journal's os calls; the ``call``-th dies (a write dies half done)."""
    counter = [0]
    originals = {name: getattr(os, name) for name in _PATCHED}

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def patched(*args: Any, **kwargs: Any) -> Any:
            counter[0] += 1
            if counter[0] == call:
                if name == "write" and len(args[1]) > 1:
                    real(args[0], args[1][: len(args[1]) // 2])
                raise _Crash(name)
            return real(*args, **kwargs)

        return patched

    with pytest.MonkeyPatch.context() as patch:
        for name, real in originals.items():
            patch.setattr(os, name, wrap(name, real))
        yield counter


_CRASH_PLAN: list[Step] = [
    [Lease("10.99.0.100", binding_state=BindingState.ACTIVE, ends=_T0 + 600)],
    [
        Lease(int_to_address(_BASE + n), binding_state=BindingState.BACKUP, tsfp=_T0)
        for n in range(1, 4)
    ],
    None,
    [
        FailoverPeerRecord("lab", FailoverState.PARTNER_DOWN, _T0, FailoverState.NORMAL, _T0),
        Lease(
            "10.99.0.101",
            starts=_T0,
            ends=_T0 + 600,
            binding_state=BindingState.ACTIVE,
            hardware_type=HardwareType.ETHERNET,
            hardware_address=b"\x02\x00\x00\x00\x00\x01",
            extras=LeaseExtras(uid=b"\x01\x02\x00\x00\x00\x00\x01", client_hostname="pc"),
        ),
    ],
    [Lease("10.99.0.100", binding_state=BindingState.RELEASED)],
    None,
    [Lease("10.99.0.102", binding_state=BindingState.FREE)],
]


def _crashing_run(path: Path, call: int | None) -> tuple[LeaseDB, list[Record], int]:
    """Run the plan until the ``call``-th os call dies; returns the committed model, the
    records in flight and the number of calls made."""
    model = read_leases(path)
    in_flight: list[Record] = []
    with _crash_at(call) as counter:
        try:
            journal, _ = LeaseJournal.open(path, now=_T0)
            for step in _CRASH_PLAN:
                if step is None:
                    journal.rewrite(model, _T0 + 5000)
                    continue
                in_flight = step
                for record in step:
                    if isinstance(record, Lease):
                        journal.record_lease(record)
                    else:
                        journal.record_failover(record)
                journal.commit()
                _apply(model, step)
                in_flight = []
            journal.close()
        except _Crash:
            pass
    return model, in_flight, counter[0]


def test_a_crash_at_any_step_loses_no_committed_record(tmp_path: Path) -> None:
    _, _, calls = _crashing_run(_seeded(tmp_path / "count"), None)
    assert calls > 20
    for call in range(1, calls + 1):
        path = _seeded(tmp_path / str(call))
        committed, in_flight, _ = _crashing_run(path, call)
        # What may be on disk: every committed record, then part of the batch in flight.
        possible = []
        for length in range(len(in_flight) + 1):
            candidate = LeaseDB()
            _apply(candidate, [*committed.leases, *committed.failover.values()])
            _apply(candidate, in_flight[:length])
            possible.append(_content(candidate)[:2])
        found = read_leases(path)
        assert _content(found)[:2] in possible, f"crash at os call {call}"
        journal, reopened = LeaseJournal.open(path, now=_T0 + 9000)
        journal.close()
        assert _content(reopened) == _content(found), f"crash at os call {call}"


def _seeded(directory: Path) -> Path:
    directory.mkdir()
    path = directory / "dhcpd.leases"
    _seed(path)
    return path


def test_a_failed_rewrite_leaves_the_old_file_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dhcpd.leases"
    journal, db = LeaseJournal.open(path, now=_T0)
    lease = Lease("10.99.0.100", binding_state=BindingState.ACTIVE)
    db.leases.upsert(lease)

    def refuse(*_: object) -> None:
        raise OSError(28, "No space left on device")

    journal.record_lease(lease)  # committed by the rewrite before it fails
    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", refuse)
        with pytest.raises(LocalError, match="cannot rewrite the lease file: No space left"):
            journal.rewrite(db, _T0 + 7200)
    later = Lease("10.99.0.101", binding_state=BindingState.BACKUP)
    journal.record_lease(later)
    journal.close()
    assert list(read_leases(path).leases) == [lease, later]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dhcpd.leases", "dhcpd.leases~"]


def test_a_failed_append_is_cut_off_and_retried_by_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dhcpd.leases"
    journal, _ = LeaseJournal.open(path, now=_T0)
    real_write = os.write

    def half_then_fail(fd: int, data: bytes) -> int:
        real_write(fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    lease = Lease("10.99.0.100", binding_state=BindingState.ACTIVE)
    journal.record_lease(lease)
    with monkeypatch.context() as patch:
        patch.setattr(os, "write", half_then_fail)
        with pytest.raises(LocalError, match="cannot append to the lease file"):
            journal.commit()
    assert not read_leases(path).stats.warnings  # no half record left behind
    journal.commit()
    journal.close()
    assert list(read_leases(path).leases) == [lease]


def test_a_rewrite_keeps_the_last_recorded_failover_state(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.leases"
    _seed(path)
    journal, db = LeaseJournal.open(path, now=_T0)
    stale = dict(db.failover)
    down = FailoverPeerRecord("lab", FailoverState.PARTNER_DOWN, _T0, FailoverState.NORMAL, _T0)
    journal.record_failover(down)
    journal.rewrite(db, _T0 + 4000)  # db.failover still holds the state read at open
    journal.close()
    assert db.failover == stale
    assert read_leases(path).failover == {"lab": down}


def test_a_rewrite_is_due_after_the_period_once_something_was_written(tmp_path: Path) -> None:
    journal, db = LeaseJournal.open(tmp_path / "dhcpd.leases", now=_T0, rewrite_period=60)
    assert not journal.rewrite_due(_T0 + 3600)  # nothing written since
    journal.record_lease(Lease("10.99.0.100", binding_state=BindingState.FREE))
    journal.commit()
    assert not journal.rewrite_due(_T0 + 60)
    assert journal.rewrite_due(_T0 + 61)
    journal.rewrite(db, _T0 + 61)
    assert not journal.rewrite_due(_T0 + 200)
    journal.close()
    default, _ = LeaseJournal.open(tmp_path / "other.leases", now=_T0)
    default.record_lease(Lease("10.99.0.100", binding_state=BindingState.FREE))
    default.commit()
    assert not default.rewrite_due(_T0 + 3600) and default.rewrite_due(_T0 + 3601)
    default.close()


def test_mode_and_owner_of_the_file_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.leases"
    _seed(path)
    path.chmod(0o640)
    # Root can give the file away (as dhcpd's -user does); others keep their own ids.
    owner = (4321, 4322) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    os.chown(path, *owner)
    journal, db = LeaseJournal.open(path, now=_T0)
    journal.rewrite(db, _T0 + 4000)
    journal.close()
    info = path.stat()
    assert (info.st_mode & 0o7777, info.st_uid, info.st_gid) == (0o640, *owner)


def test_leases_and_balance_read_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "dhcpd.leases"
    _seed(path)
    journal, _ = LeaseJournal.open(path, now=_T0)
    journal.record_lease(Lease("10.99.0.100", binding_state=BindingState.BACKUP, tsfp=_T0))
    journal.close()
    runner = CliRunner()
    listed = runner.invoke(app, ["leases", str(path), "--json"])
    assert listed.exit_code == 0, listed.stderr
    assert '"10.99.0.100"' in listed.stdout
    conf = REAL / "secondary.conf"
    balanced = runner.invoke(app, ["balance", "-c", str(conf), "-l", str(path), "--json"])
    assert balanced.exit_code == 0, balanced.stderr
    assert '"lab"' in balanced.stdout


# Real dhcpd ------------------------------------------------------------------------------

dhcpd_states = st.sampled_from(
    [s for s in BindingState if s not in (BindingState.RESERVED, BindingState.BOOTP)]
)
dhcpd_leases = st.builds(
    Lease,
    st.integers(0, 150).map(lambda n: int_to_address(_BASE + n)),
    starts=st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    ends=st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    tstp=st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    tsfp=st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    atsfp=st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    cltt=st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    binding_state=dhcpd_states,
    next_binding_state=st.one_of(st.none(), dhcpd_states),
    rewind_binding_state=st.one_of(st.none(), dhcpd_states),
    hardware_type=st.just(HardwareType.ETHERNET),
    hardware_address=st.binary(min_size=6, max_size=6),
    extras=st.builds(
        LeaseExtras,
        uid=st.one_of(st.none(), st.binary(min_size=1, max_size=20)),
        client_hostname=st.one_of(
            st.none(), st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
        ),
    ),
)
dhcpd_failover = st.builds(
    FailoverPeerRecord,
    st.just("lab"),
    st.sampled_from(list(FailoverState)),
    st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    st.sampled_from(list(FailoverState)),
    st.one_of(st.none(), st.integers(_T0, _T0 + 86_400)),
    st.one_of(st.none(), st.integers(1, 3600)),  # the secondary's learned MCLT
)
dhcpd_steps = st.lists(
    st.one_of(st.lists(st.one_of(dhcpd_leases, dhcpd_failover), min_size=1, max_size=5), st.none()),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(plan=dhcpd_steps)
def test_real_dhcpd_accepts_every_journal_and_every_rewrite(
    plan: list[Step], tmp_path: Path
) -> None:
    directory = tmp_path / str(len(list(tmp_path.iterdir())))
    directory.mkdir()
    path, conf = directory / "dhcpd.leases", directory / "dhcpd.conf"
    shutil.copy(REAL / "secondary.conf", conf)
    _seed(path)
    journal, db = LeaseJournal.open(path, now=_T0)
    _dhcpd_test(conf, path, directory)
    now = float(_T0)
    for step in plan:
        _run(journal, db, [step], now)
        now += 1
        _dhcpd_test(conf, path, directory)
    journal.close()
