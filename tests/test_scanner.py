"""The compiled lease scanner against the pure-Python reader (its oracle), issue 12.

Every input is read through both paths and must give the same model (every lease, every
column, the failover/host/other records), the same statistics and warnings (FILE:LINE), the
same error, and the same incremental resumes. Inputs: every lease file of tests/, generated
journals (bench/generate.py), and hypothesis mutations of real files, read with the normal
1 MiB chunks and with small chunks (so records straddle chunk boundaries).
"""

from __future__ import annotations

import gzip
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz import LEASE_SOURCES, STRUCTURAL, mutated

from dhcpfoctl import leases
from dhcpfoctl.errors import InputFileError
from dhcpfoctl.leases import read_leases, read_leases_incremental, reader
from dhcpfoctl.leases.reader import read_lease_history, read_lease_journal
from dhcpfoctl.leases.transitions import Journal, WindowRequest, window_bindings
from dhcpfoctl.model import BindingState, LeaseDB

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS.parent / "bench"))
from generate import append_records, write_leases  # noqa: E402

LEASE_FILES = sorted(p for p in TESTS.rglob("*.leases") if p.is_file())
#: Cases per hypothesis test; `make sanitize` runs more under AddressSanitizer.
EXAMPLES = int(os.environ.get("DHCPFOCTL_SCANNER_EXAMPLES", "60"))
DIFFERENTIAL = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="DHCPFOCTL_SCANNER_EXAMPLES" not in os.environ,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
#: Text aimed at the scanner's own decisions: where it must take a record or hand it over.
SCANNER_TOKENS = [
    b"\n}\n",
    b"}\n",
    b"\n}x",
    b"lease 10.0.0.1 {\n}\n",
    b"lease 300.0.0.1 {\n",
    b"lease 10.0.0.256 {\n",
    b"lease 10.0.0.099 {\n",
    b"  starts 3 0099/11/28 07:00:00;\n",
    b"  starts 3 2038/01/19 03:14:08;\n",
    b"  ends 0 2024/02/29 23:59:60;\n",
    b"  ends 0 2023/02/29 00:00:00;\n",
    b"  ends 3 2025/11/28 06:59:59;\n",
    b"  ends 3 2025/11/28 07:00:00;\n",
    b"  starts 3 2025/11/28 07:00:01;\n",
    b"  tstp epoch 000000000000000000001;\n",
    b"  cltt epoch 253402214399;\n",
    b"  cltt epoch 253402214400;\n",
    b"  atsfp never; # x;\n",
    b"  starts 3 2025/11/28 07:00:00; # comment\n",
    b"  binding state reserved;\n",
    b"  binding state bootp;\n",
    b"  next binding state unknown-6;\n",
    b"  hardware ethernet 00:11:22:33:44:55:66:77:88;\n",
    b"  hardware ethernet 0A:0b:0c;\n",
    b"  hardware unknown-6 00:11;\n",
    b"  hardware token-ring 00:11;\n",
    b'  uid "\\001\\002\\\\\\"";\n',
    b"  uid 1:2:ab;\n",
    b"  uid 1:2:abc;\n",
    b'  client-hostname "\x01\x02\x03\x04";\n',
    b'  client-hostname "a\x00b";\n',
    b"  set x = %1234567890123456789;\n",
    b"  set x = %12345678901234567890;\n",
    b"  set x = true;\n",
    b"  option agent.circuit-id 0:1:2;\n",
    b'  option agent.remote-id "r";\n',
    b"  reserved;\n",
    b"  dynamic-bootp;\n",
    b"  on expiry {\n    set x = true;\n  }\n",
]


def _snapshot(db: LeaseDB) -> dict[str, Any]:
    """Everything a LeaseDB holds, comparable with ==."""
    return {
        "leases": list(db.leases),
        "failover": db.failover,
        "hosts": db.hosts,
        "others": db.others,
        "server_duid": db.server_duid,
        "byte_order": db.byte_order,
        "stats": db.stats,
    }


def _outcome(read: Callable[[], LeaseDB]) -> tuple[Any, ...]:
    try:
        return ("ok", _snapshot(read()))
    except InputFileError as exc:
        return ("error", str(exc))


def journal_columns(journal: Journal) -> list[tuple[int, ...]]:
    """A journal's records, comparable with == (a record without a ``binding state`` line
    as dhcpd reads it: the full parser stores that reading, the batches 0)."""
    active, expired = int(BindingState.ACTIVE), int(BindingState.EXPIRED)
    states = [
        state or (active if ends > starts else expired)
        for state, starts, ends in zip(journal.state, journal.starts, journal.ends, strict=True)
    ]
    return list(
        zip(
            journal.address,
            states,
            journal.rewind,
            journal.starts,
            journal.ends,
            journal.cltt,
            journal.client,
            strict=True,
        )
    )


def _one_pass(path: Path) -> tuple[Any, ...]:
    """The table and the journal that one read gives (``read_leases(journal=...)``)."""
    journal = Journal()
    try:
        db = read_leases(path, journal=journal)
    except InputFileError as exc:
        return ("error", str(exc))
    return ("ok", _snapshot(db), journal_columns(journal))


def _window(path: Path, after: int) -> tuple[Any, ...]:
    """What ``read_leases(window=...)`` finds (the compiled scanner: its Judge)."""
    request = WindowRequest(after)
    db = read_leases(path, window=request)
    found = request.found
    assert found is not None
    return _snapshot(db), found.bindings, found.since, found.records, found.appended


def _afters(journal: Journal) -> list[int]:
    """Window starts around a journal's own times (and before and after all of them)."""
    starts = sorted(set(journal.starts)) or [0]
    return sorted({-1, 0, starts[0] - 1, starts[len(starts) // 2], starts[-1], starts[-1] + 1})


def _check_one_pass(
    both: Callable[[Callable[[], Any]], tuple[Any, Any]], path: Path, afters: tuple[int, ...] = ()
) -> None:
    """The one-pass read gives, both ways, the table of a plain read and the journal of
    the forward journal read (its oracle); and with a window (``afters`` and some around
    the journal's times), the new bindings that :func:`window_bindings` finds in that
    journal."""
    compiled, pure = both(lambda: _one_pass(path))
    assert compiled == pure
    if compiled[0] != "ok":
        return
    oracle = read_lease_journal(path)[1]
    assert compiled[1] == _snapshot(read_leases(path))
    assert compiled[2] == journal_columns(oracle)
    for after in sorted({*afters, *_afters(oracle)}):
        judged, pure_window = both(lambda after=after: _window(path, after))
        expected = window_bindings(oracle, after)
        assert judged == pure_window, after
        assert judged[0] == compiled[1]
        assert judged[1:] == (
            expected.bindings,
            expected.since,
            expected.records,
            expected.appended,
        ), after


@pytest.fixture
def both(monkeypatch: pytest.MonkeyPatch) -> Callable[[Callable[[], Any]], tuple[Any, Any]]:
    """Run a read with the compiled scanner, then with the pure-Python path."""
    if leases.active_reader() != "compiled scanner":
        if os.environ.get("CI") == "true":
            pytest.fail(f"the compiled scanner is not active: {leases.active_reader()}")
        pytest.skip(leases.active_reader())
    expected = os.environ.get("DHCPFOCTL_SCANNER_EXPECT")  # `make sanitize`: its build
    module = leases.compiled_scanner()
    assert module is not None
    assert expected is None or str(module.__file__).startswith(expected), module.__file__

    def run(read: Callable[[], Any]) -> tuple[Any, Any]:
        monkeypatch.delenv(leases.PURE_PYTHON_ENV, raising=False)
        compiled = read()
        monkeypatch.setenv(leases.PURE_PYTHON_ENV, "1")
        try:
            pure = read()
        finally:
            monkeypatch.delenv(leases.PURE_PYTHON_ENV)
        return compiled, pure

    return run


@pytest.fixture(params=[reader.CHUNK_SIZE, 300], ids=["1MiB-chunks", "300B-chunks"])
def chunk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(reader, "CHUNK_SIZE", request.param)
    return request.param


def _incremental_steps(path: Path, data: bytes, cuts: list[int]) -> list[tuple[Any, ...]]:
    """Write ``data`` in pieces, reading incrementally after each; every step's outcome."""
    path.write_bytes(b"")
    state = db = None
    steps = []
    done = 0
    for cut in [*sorted(cuts), len(data)]:
        with path.open("ab") as out:
            out.write(data[done:cut])
        done = max(done, cut)
        try:
            db, state = read_leases_incremental(path, state, db)
        except InputFileError as exc:
            steps.append(("error", str(exc)))
            state = db = None
            continue
        resume = (state.size, state.offset, state.line, state.tail)
        # The line at the offset: counted as the file was read, never read again.
        assert state.offset < 0 or state.line == 1 + data[: state.offset].count(b"\n")
        steps.append(("ok", _snapshot(db), resume))
    return steps


def _check_all_ways(
    both: Callable[[Callable[[], Any]], tuple[Any, Any]],
    tmp_path: Path,
    data: bytes,
    cuts: list[int],
) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_bytes(data)
    for strict in (False, True):
        compiled, pure = both(
            lambda strict=strict: _outcome(lambda: read_leases(path, strict=strict))
        )
        assert compiled == pure, f"strict={strict}"
    _check_one_pass(both, path)
    compiled, pure = both(lambda: _incremental_steps(tmp_path / "appended.leases", data, cuts))
    assert compiled == pure


@pytest.mark.parametrize("path", LEASE_FILES, ids=lambda p: str(p.relative_to(TESTS)))
def test_every_lease_file_of_the_tests(both, chunk, tmp_path: Path, path: Path) -> None:
    data = path.read_bytes()
    _check_all_ways(both, tmp_path, data, [len(data) // 3, len(data) // 2, len(data) - 5])


def test_history_and_gzip_reads_forward_identically(both, tmp_path: Path) -> None:
    source = TESTS / "data" / "real-dhcpd-4.4.3" / "primary.leases"
    packed = tmp_path / "primary.leases.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    compiled, pure = both(lambda: _outcome(lambda: read_leases(packed)))
    assert compiled == pure
    assert compiled[0] == "ok" and compiled[1]["leases"]
    compiled, pure = both(lambda: read_lease_history(source))
    assert _snapshot(compiled[0]) == _snapshot(pure[0]) and compiled[1] == pure[1]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated failover journal: 2,000 addresses, 3 records each, then 1% appended."""
    path = tmp_path_factory.mktemp("journal") / "journal.leases"
    write_leases(path, 2000)
    append_records(path, 2000, 60)
    return path


def test_generated_journal(both, chunk, tmp_path: Path, journal: Path) -> None:
    data = journal.read_bytes()
    compiled, pure = both(lambda: _snapshot(read_leases(journal)))
    assert compiled == pure
    assert len(compiled["leases"]) == 2000 and compiled["stats"].records == 6060
    compiled, pure = both(lambda: _snapshot(read_leases(journal, processes=2)))
    assert compiled == pure
    _check_all_ways(both, tmp_path, data, [len(data) // 2, len(data) - 1000])


def test_incremental_resume_after_appended_records(both, tmp_path: Path, journal: Path) -> None:
    def run() -> list[Any]:
        path = tmp_path / "grows.leases"
        path.write_bytes(journal.read_bytes())
        db, state = read_leases_incremental(path, None, None)
        results = [(_snapshot(db), state)]
        for seed in (3, 4):
            append_records(path, 2000, 20, seed=seed)
            db, state = read_leases_incremental(path, state, db)
            results.append((_snapshot(db), state.offset, state.line, state.tail))
        return results[1:]

    compiled, pure = both(run)
    assert compiled == pure


def _mutations(draw: st.DrawFn, source: bytes) -> bytes:
    data = bytearray(draw(mutated(source)))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.sampled_from(SCANNER_TOKENS + STRUCTURAL))
    return bytes(data)


@st.composite
def mutated_case(draw: st.DrawFn) -> tuple[bytes, list[int], int]:
    data = _mutations(draw, draw(st.sampled_from(sorted(LEASE_SOURCES.items())))[1])
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=3))
    return data, cuts, draw(st.sampled_from([reader.CHUNK_SIZE, 200, 1000]))


@DIFFERENTIAL
@given(case=mutated_case())
def test_mutated_real_files(
    both, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: tuple[bytes, list[int], int]
) -> None:
    data, cuts, chunk_size = case
    monkeypatch.setattr(reader, "CHUNK_SIZE", chunk_size)
    _check_all_ways(both, tmp_path, data, cuts)


DATES = [
    b"3 2025/11/28 07:00:00",
    b"3 2025/11/28 07:00:01",
    b"3 2025/11/28 06:59:59",
    b"never",
    b"epoch 1764313200",
]
EDGE_DATES = [
    b"4 2024/02/29 23:59:60",
    b"0 2023/02/29 00:00:00",
    b"0 2023/13/01 00:00:00",
    b"0 2023/12/01 24:00:00",
    b"1 0099/11/28 07:00:00",
    b"2 2038/01/19 03:14:08",
    b"2 9999/12/31 23:59:59",
    b"2 1970/01/01 00:00:00",
    b"3  2025/1/28 07:00:05",
    b"3 2025/11/28 07:00:00 +3600",
    b"epoch 0",
    b"epoch 000000000000000000001",
    b"epoch 253402214399",
    b"epoch 253402214400",
    b"epoch 99999999999999999999",
]
DATE_ENDS = [b";\n", b"; # a comment\n"]
EDGE_DATE_ENDS = [b"; #;\n", b";x\n", b" ;\n", b";"]
STATES = [b"free", b"active", b"backup", b"expired", b"released", b"abandoned", b"reset"]
BODY_LINES = [
    b'  uid "\\001\\002\\003";\n',
    b'  client-hostname "host-1";\n',
    b'  set vendor-class-identifier = "PXEClient";\n',
    b"  option agent.circuit-id 0:1:2;\n",
    b'  option agent.remote-id "r";\n',
]
NORMAL_HARDWARE = [b"ethernet 02:00:5e:10:00:01", b"infiniband 00:11"]
EDGE_STATES = [b"reserved", b"bootp", b"unknown-6", b"ACTIVE", b""]
EDGE_HARDWARE = [
    b"ethernet 00:11:22:33:44:55:66:77",
    b"ethernet 00:11:22:33:44:55:66:77:88",
    b"infiniband 00:11",
    b"token-ring 0a:0b",
    b"",
    b"fddi 0A:0b",
    b"ethernet 0:1",
    b"unknown-6 00:11",
    b"ethernet",
]


@st.composite
def record(draw: st.DrawFn) -> bytes:
    """A lease record in dhcpd's layout whose every field may hold an edge case."""

    def pick(normal: list[bytes], edge: list[bytes]) -> bytes:
        return draw(st.sampled_from(edge if draw(st.integers(0, 7)) == 0 else normal))

    low = pick([b"0", b"1", b"2", b"255"], [b"01", b"256", b"099", b"1000"])
    middle = pick([b"0", b"1"], [b"300", b"00"])
    lines = [b"lease 10.0.%s.%s {\n" % (middle, low)]
    for name in (b"starts", b"ends", b"tstp", b"tsfp", b"atsfp", b"cltt"):
        if draw(st.booleans()):
            date = pick(DATES, EDGE_DATES)
            lines.append(b"  %s %s%s" % (name, date, pick(DATE_ENDS, EDGE_DATE_ENDS)))
    for name in (b"binding", b"next binding", b"rewind binding"):
        if draw(st.booleans()):
            lines.append(b"  %s state %s;\n" % (name, pick(STATES, EDGE_STATES)))
    for flag in (b"  reserved;\n", b"  dynamic-bootp;\n"):
        if draw(st.booleans()):
            lines.append(flag)
    if draw(st.booleans()):
        lines.append(b"  hardware %s;\n" % pick(NORMAL_HARDWARE, EDGE_HARDWARE))
    for _ in range(draw(st.integers(0, 3))):
        lines.append(pick(BODY_LINES, SCANNER_TOKENS))
    if draw(st.integers(0, 7)) == 0 and len(lines) > 2:  # a line out of dhcpd's order
        lines.insert(1, lines.pop())
    return b"".join(lines) + pick([b"}\n"], [b"}", b"} \n", b"}}\n"])


@DIFFERENTIAL
@given(records=st.lists(record(), min_size=1, max_size=10))
def test_records_with_edge_cases_in_every_field(both, tmp_path: Path, records: list[bytes]) -> None:
    data = b"".join(records)
    _check_all_ways(both, tmp_path, data, [len(data) // 2])


def test_pure_python_switch_and_reader_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(leases.PURE_PYTHON_ENV, "1")
    assert leases.active_reader() == f"pure Python ({leases.PURE_PYTHON_ENV} is set)"
    assert reader._Reader(LeaseDB(), "x", strict=False).scanner is None
    monkeypatch.setenv(leases.PURE_PYTHON_ENV, "0")
    assert leases.active_reader() in (
        "compiled scanner",
        "pure Python (the compiled scanner is not built)",
    )


def _int64s(*values: int) -> bytes:
    return b"".join(value.to_bytes(8, sys.byteorder) for value in values)


def test_scanner_refuses_bounds_outside_the_buffer(both) -> None:
    del both  # only for its check that the scanner is built
    scanner = reader._Reader(LeaseDB(), "x", strict=False).scanner
    assert scanner is not None
    buf = b"lease 10.0.0.1 {\n}\n"
    bounds, marks = scanner.split(buf, 0, len(buf))
    assert (bounds, marks) == (_int64s(0, 0, len(buf)), [])
    with pytest.raises(ValueError):
        scanner.split(buf, 0, len(buf) + 1)
    with pytest.raises(IndexError):
        scanner.forward(buf, bounds, 0, 2)
    bad = _int64s(0, 5, 99)
    with pytest.raises(ValueError):
        scanner.forward(buf, bad, 0, 1)
    with pytest.raises(ValueError):
        scanner.backward(buf, bad, 0, 1)


def test_scatter_writes_only_rows_inside_each_column(both) -> None:
    del both  # only for its check that the scanner is built
    from array import array

    scatter = leases.compiled_scanner().scatter  # type: ignore[union-attr]
    times, states, extras = array("q", [0] * 4), bytearray(4), [None] * 4
    scatter([3, 1], (times, states, extras), (array("q", [7, 9]), b"\x02\x05", [b"a", b"b"]))
    assert (list(times), list(states), extras) == (
        [0, 9, 0, 7],
        [0, 5, 0, 2],
        [None, b"b", None, b"a"],
    )
    scatter([0], (times,), ([11],))  # values that are not a buffer: item by item
    scatter([2], (times,), (array("i", [12]),))  # another item format: item by item
    assert list(times) == [11, 9, 12, 7]
    for rows in ([4], [-1]):
        for column in (times, extras):
            with pytest.raises(IndexError):
                scatter(rows, (column,), ([0],) if column is extras else (array("q", [0]),))
    with pytest.raises(ValueError):
        scatter([0, 1], (extras,), ([1],))


@st.composite
def journal_record(draw: st.DrawFn) -> bytes:
    """A record of a short journal over few addresses: what the Judge's chains turn on
    (states, clients with and without a hardware address, starts absent or around one
    time, cltt and rewind states that say which server bound)."""
    lines = [b"lease 10.0.0.%d {\n" % draw(st.integers(1, 3))]
    starts = draw(st.sampled_from([None, 1764313100, 1764313200, 1764313300]))
    if starts is not None:
        lines.append(b"  starts epoch %d;\n" % starts)
    if draw(st.booleans()):
        lines.append(b"  ends epoch %d;\n" % draw(st.sampled_from([1764313150, 1764399999])))
    if draw(st.booleans()):
        cltt = starts if starts is not None and draw(st.booleans()) else 1764300000
        lines.append(b"  cltt epoch %d;\n" % cltt)
    state = draw(st.sampled_from([None, b"active", b"active", b"free", b"expired", b"backup"]))
    if state is not None:
        lines.append(b"  binding state %s;\n" % state)
    if draw(st.integers(0, 3)) == 0:
        lines.append(b"  rewind binding state %s;\n" % draw(st.sampled_from([b"free", b"active"])))
    hardware = draw(st.sampled_from([None, b"02:00:00:00:00:01", b"02:00:00:00:00:02"]))
    if hardware is not None:
        lines.append(b"  hardware ethernet %s;\n" % hardware)
    if draw(st.integers(0, 9)) == 0:  # now and then one the full parser must read
        lines.append(b"  on expiry {\n    set x = true;\n  }\n")
    return b"".join(lines) + b"}\n"


@DIFFERENTIAL
@given(records=st.lists(journal_record(), min_size=1, max_size=40))
def test_short_journals_judged_while_reading(both, tmp_path: Path, records: list[bytes]) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_bytes(b"".join(records))
    _check_one_pass(both, path)


def _journal_text(*records: tuple[int, str | None, int | None, int | None]) -> bytes:
    """Records (address 10.0.0.N, binding state, hardware address 02:00:00:00:00:0M,
    starts) in dhcpd's layout."""
    text = b""
    for address, state, mac, starts in records:
        text += b"lease 10.0.0.%d {\n" % address
        if starts is not None:
            text += b"  starts epoch %d;\n" % starts
        if state is not None:
            text += b"  binding state %s;\n" % state.encode()
        if mac is not None:
            text += b"  hardware ethernet 02:00:00:00:00:%02x;\n" % mac
        text += b"}\n"
    return text


T = 1764313200
FREE = [(1, "free", None, T - 100), (2, "free", None, T - 100)]


@pytest.mark.parametrize(
    ("records", "after", "bindings"),
    [
        # An active record without a hardware address keeps the holder: B is new after it.
        ([(1, "active", 1, T), (1, "active", None, T + 1), (1, "active", 2, T + 2)], T, 1),
        # ... and a renewal by A after it is none.
        ([(1, "active", 1, T), (1, "active", None, T + 1), (1, "active", 1, T + 2)], T, 0),
        # No holder before it: it makes the holder "unknown", which matches anyone.
        ([*FREE, (1, "active", None, T + 1), (1, "active", 2, T + 2)], T, 1),
        # A binding with no start counts only from the cut (the first appended binding or
        # renewal after the window's start) on: the first is before it, the second after.
        (
            [
                *FREE,
                (1, "active", 1, None),
                (2, "active", 2, T + 100),
                (1, "free", None, T),
                (1, "active", 2, None),
            ],
            T,
            2,
        ),
        # A start equal to the window's start does not make the cut.
        ([*FREE, (1, "active", 1, T), (2, "active", 2, None), (1, "active", 2, T + 100)], T, 1),
        # A window that starts before 1970: a binding with no start can be the cut itself.
        ([(1, "free", None, T), (1, "active", 1, None)], -1, 1),
        # The snapshot record is never judged; with no hardware address it holds "unknown".
        ([(1, "active", None, T + 5), (1, "active", 2, T + 6), (1, "active", None, T + 7)], T, 0),
    ],
)
def test_the_judge_on_each_rule(
    both,
    tmp_path: Path,
    records: list[tuple[int, str | None, int | None, int | None]],
    after: int,
    bindings: int,
) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_bytes(_journal_text(*records))
    _check_one_pass(both, path, (-1, T - 1, T, T + 1))
    assert len(window_bindings(read_lease_journal(path)[1], after).bindings) == bindings


@pytest.mark.parametrize(
    ("tail", "forward_reads"),
    [
        (b"lease 10.0.0.9 {\n  starts epoch 1764313300;\n", 0),  # cut off by the end
        (b"junk here;\nlease 10.0.0.2 {\n}\n", 1),  # a gap with a problem to resync after
    ],
)
def test_one_pass_falls_back_to_a_forward_read_only_after_a_resync(
    both, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tail: bytes, forward_reads: int
) -> None:
    path = tmp_path / "dhcpd.leases"
    path.write_bytes(
        _journal_text((1, "free", None, T), (1, "active", 1, T + 1)) + b"# note\n" + tail
    )
    _check_one_pass(both, path)
    calls: list[str] = []
    forward = reader.read_lease_journal
    monkeypatch.setattr(
        reader, "read_lease_journal", lambda name: calls.append(name) or forward(name)
    )
    for request in (Journal(), WindowRequest(T)):
        calls.clear()
        if isinstance(request, Journal):
            read_leases(path, journal=request)
        else:
            read_leases(path, window=request)
        assert len(calls) == forward_reads


def test_build_without_a_compiler_gives_the_pure_reader(tmp_path: Path) -> None:
    """A machine without a compiler still builds (and so installs) the package: the
    extension is optional, the build is pure Python, and the built package says which
    reader runs. (setuptools' build, which ``pip install .`` runs; no wheel or network.)"""
    import shutil
    import subprocess

    source = tmp_path / "source"
    root = TESTS.parent
    shutil.copytree(
        root / "dhcpfoctl",
        source / "dhcpfoctl",
        ignore=shutil.ignore_patterns("__pycache__", "*.so"),
    )
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    built = subprocess.run(
        [sys.executable, "setup.py", "-q", "build", "--build-lib", str(tmp_path / "lib")],
        cwd=source,
        env={**os.environ, "CC": str(tmp_path / "no-compiler" / "gcc")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    lib = tmp_path / "lib"
    assert (lib / "dhcpfoctl" / "leases" / "reader.py").is_file()
    assert not list(lib.rglob("*.so"))
    show = "from dhcpfoctl.leases import active_reader; print(active_reader())"
    ran = subprocess.run(
        [sys.executable, "-c", show],
        env={**os.environ, "PYTHONPATH": str(lib)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ran.stdout.strip() == "pure Python (the compiled scanner is not built)"
