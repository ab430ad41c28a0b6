"""The DHCPv4 lease-file reader: golden files, both reading directions, chunk boundaries,
errors, gzip/stdin and incremental resume."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from bench.generate import append_records, write_leases
from dhcpfoctl.errors import InputFileError
from dhcpfoctl.leases import (
    ResumeState,
    read_leases,
    read_leases_incremental,
)
from dhcpfoctl.leases import reader as reader_module
from dhcpfoctl.leases.reader import read_lease_history
from dhcpfoctl.leases.syntax import parse_date
from dhcpfoctl.model import NEVER, BindingState, HardwareType, LeaseFlag, OnBlock, address_to_int
from dhcpfoctl.quoting import unescape
from tests.leases_helpers import GOLDEN, REAL, check_golden, db_document

EDGE = GOLDEN / "edge-cases.leases"


@pytest.mark.parametrize("name", ["primary", "secondary"])
def test_real_dhcpd_files_match_golden(name: str) -> None:
    db = read_leases(REAL / f"{name}.leases")
    assert not db.stats.warnings
    check_golden(db_document(db, name=f"{name}.leases"), f"{name}.json")


def test_edge_cases_match_golden() -> None:
    db = read_leases(EDGE)
    check_golden(db_document(db, name="edge-cases.leases"), "edge-cases.json")


def test_edge_cases_every_statement_decoded() -> None:
    db = read_leases(EDGE)
    full = db.leases.get("10.0.0.10")
    assert full is not None
    assert full.binding_state is BindingState.ACTIVE
    assert full.next_binding_state is BindingState.EXPIRED
    assert full.rewind_binding_state is BindingState.FREE
    assert full.flags == LeaseFlag.RESERVED | LeaseFlag.BOOTP
    assert full.hardware_type is HardwareType.ETHERNET
    assert full.mac == "02:00:00:00:00:01"
    assert full.uid == bytes.fromhex("01020000000001")
    assert full.extras.billing == 'class "gold"'
    assert full.extras.variables == (
        ("ddns-fwd-name", b"host.example."),
        ("counter", 42),
        ("flag", True),
        ("off", False),
        ("blob", b"\x01\x02\xff"),
    )
    assert full.extras.options == (
        ("agent.circuit-id", b"port 7"),
        ("agent.remote-id", bytes(range(6))),
    )
    assert full.client_hostname == "labhost"
    assert full.extras.on_blocks == (
        OnBlock("expiry", '\n    set z = "1";\n  '),
        OnBlock("release", ' log (info, "released"); '),
    )
    escapes = db.leases.get("10.0.0.11")
    assert escapes is not None
    assert escapes.starts == 1795849218
    assert escapes.ends == NEVER
    assert escapes.uid == b'a"b\\c\td\neAA\x00'
    assert escapes.client_hostname == 'x"y'
    legacy = db.leases.get("10.0.0.12")
    assert legacy is not None
    assert legacy.binding_state is BindingState.ACTIVE  # "bootp" folded into active + flag
    assert legacy.flags == LeaseFlag.BOOTP
    abandoned = db.leases.get("10.0.0.15")
    assert abandoned is not None
    assert abandoned.binding_state is None and abandoned.abandoned
    assert legacy.starts == parse_date(b"6 2026/11/28 07:00:18")
    assert legacy.ends == parse_date(b"6 2026/11/28 07:00:18") - 3600
    assert legacy.mac == "02:00:00:00:00:0a"
    assert legacy.client_hostname == "bare-name"
    assert legacy.extras.variables == (("ddns-fwd-name", b"legacy.example."),)
    assert legacy.extras.other == ('class "ignored-class"',)
    # Duplicates: the later record is a full snapshot.
    replaced = db.leases.get("10.0.0.20")
    assert replaced is not None
    assert (replaced.binding_state, replaced.mac, replaced.client_hostname) == (
        BindingState.FREE,
        None,
        None,
    )
    infiniband = db.leases.get("10.0.0.21")
    assert infiniband is not None
    assert infiniband.ends == NEVER  # years from 2038 read as never, as dhcpd does
    assert infiniband.hardware_address == bytes(range(20))
    assert db.leases.get("10.0.0.40") is None  # the truncated tail
    assert db.hosts["laptop"].deleted and not db.hosts["printer"].deleted
    assert db.failover["primary-role"].my_stos is None
    assert db.failover["secondary-role"].mclt == 3600


def test_bad_records_are_reported_with_lines_and_skipped() -> None:
    db = read_leases(EDGE)
    lines = [(w.line, w.message.split(";")[0]) for w in db.stats.warnings]
    assert lines == [
        (76, "ends before starts"),  # hand-made (dhcpd keeps it): a warning, the lease kept
        (117, "starts: bad date (expected 'W YYYY/MM/DD HH:MM:SS', 'epoch N' or 'never')"),
        (121, "unknown binding state 'sleeping'"),
        (124, "'bootp"),
        (126, "bad IPv4 address '10.0.0.300'"),
        (129, "'abandoned"),
        (134, "set blob: expected a quoted string, %N (N up to 2^64-1), true or false"),
        (139, "unknown statement 'bogus-statement'"),
        (142, "truncated record at end of file (dhcpd may have been writing it)"),
    ]
    # Only the cut-off tail is marked as such: checks treat it as dhcpd mid-write.
    assert [w.truncated_tail for w in db.stats.warnings] == [False] * 8 + [True]
    assert EDGE.read_text().splitlines()[116].strip().startswith("starts 6 2026/13/45")
    # The good records around the bad ones are kept.
    assert {"10.0.0.33", "10.0.0.34"} <= {lease.address for lease in db.leases}
    assert not {"10.0.0.35", "10.0.0.36"} & {lease.address for lease in db.leases}


def test_strict_mode_stops_at_the_first_problem_with_file_and_line() -> None:
    with pytest.raises(InputFileError) as caught:
        read_leases(EDGE, strict=True)
    assert caught.value.location == f"{EDGE}:117"
    assert "bad date" in str(caught.value)


def test_missing_file_is_an_input_error() -> None:
    with pytest.raises(InputFileError, match="No such file"):
        read_leases("/nonexistent/dhcpd.leases")


def _same(a: object, b: object) -> None:
    assert db_document(a, name="x") == db_document(b, name="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("source", [EDGE, REAL / "primary.leases", REAL / "secondary.leases"])
def test_stdin_gzip_and_file_read_alike(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_file = read_leases(source)  # a regular file is read backwards
    packed = tmp_path / "leases.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    from_gzip = read_leases(packed)  # gzip is read forwards
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(source.read_bytes())))
    from_stdin = read_leases("-")
    _same(from_file, from_gzip)
    _same(from_file, from_stdin)


@pytest.mark.parametrize("chunk", [97, 1024, 4096])
def test_chunk_boundaries_do_not_change_the_result(
    chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal.leases"
    write_leases(journal, 600)
    text = journal.read_bytes()
    # Add the hand-made edge cases (minus the truncated tail) in the middle of the journal,
    # at addresses the journal does not use, so that their problems are all reported.
    edge = EDGE.read_bytes().replace(b"10.0.0.", b"10.200.0.")
    middle = text.index(b"\nlease ", len(text) // 2) + 1
    journal.write_bytes(text[:middle] + edge[: edge.index(b"# a truncated tail")] + text[middle:])
    expected = read_leases(journal)
    monkeypatch.setattr(reader_module, "CHUNK_SIZE", chunk)
    _same(read_leases(journal), expected)
    packed = tmp_path / "journal.gz"
    packed.write_bytes(gzip.compress(journal.read_bytes()))
    _same(read_leases(packed), expected)


def test_superseded_corrupt_records_are_judged_only_by_strict_reads(tmp_path: Path) -> None:
    journal = tmp_path / "dhcpd.leases"
    journal.write_bytes(
        b"lease 10.0.0.1 {\n  starts 6 2026/13/45 00:00:00;\n  binding state active;\n}\n"
        b"lease 10.0.0.1 {\n  binding state free;\n}\n"
    )
    # The fast read parses only the records that decide the result: the later one here.
    db = read_leases(journal)
    assert db.leases.get("10.0.0.1").binding_state is BindingState.FREE  # type: ignore[union-attr]
    assert not db.stats.warnings
    with pytest.raises(InputFileError, match=r"dhcpd.leases:2: starts: bad date"):
        read_leases(journal, strict=True)


def test_memory_holds_one_row_per_address(tmp_path: Path) -> None:
    journal = tmp_path / "journal.leases"
    write_leases(journal, 500)
    db = read_leases(journal)
    assert len(db.leases) == 500
    assert db.stats.records == 1500
    assert db.stats.superseded == 1000
    assert len(db.leases.starts) == 500  # columns hold current leases only


def test_history_lists_every_record_in_file_order() -> None:
    db, history = read_lease_history(REAL / "primary.leases")
    assert len(history) == db.stats.records == 951
    last = {lease.address: lease for lease in history}
    assert list(db.leases) == sorted(last.values(), key=lambda lease: address_to_int(lease.address))


def test_unescape_and_dates() -> None:
    assert unescape(rb"\101\x42\t\\\"\q") == b'AB\t\\"q'
    assert parse_date(b"0 2026/11/29 00:00:00") == 1795910400
    assert parse_date(b"never") == NEVER
    assert parse_date(b"epoch 12") == 12
    # dhcpd counts February 30 on into March; it is no date dhcpd writes: refused (issue 9).
    assert parse_date(b"6 2026/02/30 00:00:00") is None
    assert parse_date(b"0 2028/02/29 00:00:00") is not None
    for bad in (b"6 2026/13/01 00:00:00", b"6 2026/11/28 25:00:00", b"soon", b"epoch x"):
        assert parse_date(bad) is None


# Incremental ----------------------------------------------------------------------------


def test_incremental_reads_only_appended_bytes(tmp_path: Path) -> None:
    journal = tmp_path / "dhcpd.leases"
    write_leases(journal, 400)
    db, state = read_leases_incremental(journal, None, None)
    size = journal.stat().st_size
    assert state.offset == size
    append_records(journal, 400, 50)
    db, state = read_leases_incremental(journal, state, db)
    assert db.stats.bytes_read == journal.stat().st_size  # cold bytes + appended bytes only
    assert state.offset == journal.stat().st_size
    _same_leases(db, read_leases(journal))
    # Nothing new: nothing read.
    before = db.stats.bytes_read
    db, state = read_leases_incremental(journal, state, db)
    assert db.stats.bytes_read == before


def _same_leases(a: object, b: object) -> None:
    assert list(a.leases) == list(b.leases)  # type: ignore[attr-defined]
    assert a.failover == b.failover  # type: ignore[attr-defined]


def test_incremental_state_survives_json(tmp_path: Path) -> None:
    journal = tmp_path / "dhcpd.leases"
    write_leases(journal, 50)
    _, state = read_leases_incremental(journal, None, None)
    restored = ResumeState.from_json(json.loads(json.dumps(state.to_json())))
    assert restored == state
    with pytest.raises(ValueError, match="resume state"):
        ResumeState.from_json({"inode": 1})


def test_incremental_rereads_a_rewritten_or_shrunk_file(tmp_path: Path) -> None:
    journal = tmp_path / "dhcpd.leases"
    write_leases(journal, 100)
    db, state = read_leases_incremental(journal, None, None)
    # dhcpd's rewrite: a new file renamed over the old one (new inode).
    replacement = tmp_path / "dhcpd.leases.new"
    shutil.copy(REAL / "primary.leases", replacement)
    os.replace(replacement, journal)
    db, state = read_leases_incremental(journal, state, db)
    _same_leases(db, read_leases(REAL / "primary.leases"))
    # Shrunk in place (same inode): read again from the start.
    journal.write_bytes((REAL / "secondary.leases").read_bytes())
    db, state = read_leases_incremental(journal, state, db)
    _same_leases(db, read_leases(REAL / "secondary.leases"))


def test_incremental_detects_in_place_rewrite_of_same_size(tmp_path: Path) -> None:
    journal = tmp_path / "dhcpd.leases"
    journal.write_bytes(b"lease 10.0.0.1 {\n  binding state free;\n}\n")
    db, state = read_leases_incremental(journal, None, None)
    journal.write_bytes(b"lease 10.0.0.2 {\n  binding state free;\n}\n")
    db, state = read_leases_incremental(journal, state, db)
    assert [lease.address for lease in db.leases] == ["10.0.0.2"]


def test_incremental_picks_up_a_record_completed_after_truncation(tmp_path: Path) -> None:
    journal = tmp_path / "dhcpd.leases"
    head = b"lease 10.0.0.1 {\n  binding state free;\n}\n"
    journal.write_bytes(head + b"lease 10.0.0.2 {\n  binding st")
    db, state = read_leases_incremental(journal, None, None)
    assert state.offset == len(head)
    assert [w.line for w in db.stats.warnings] == [4]
    with journal.open("ab") as out:
        out.write(b"ate backup;\n}\n")
    db, state = read_leases_incremental(journal, state, db)
    assert db.leases.get("10.0.0.2").binding_state is BindingState.BACKUP  # type: ignore[union-attr]
    assert state.offset == journal.stat().st_size


def test_incremental_refuses_stdin() -> None:
    with pytest.raises(InputFileError, match="standard input"):
        read_leases_incremental("-", None, None)


def test_two_processes_read_like_one(tmp_path: Path) -> None:
    journal = tmp_path / "journal.leases"
    write_leases(journal, 3000)
    text = journal.read_bytes()
    edge = EDGE.read_bytes().replace(b"10.0.0.", b"10.200.0.")
    middle = text.index(b"\nlease ", len(text) // 2) + 1
    journal.write_bytes(text[:middle] + edge + text[middle:])
    alone = read_leases(journal, processes=1)
    shared = read_leases(journal, processes=2)
    _same(alone, shared)
    assert len({row for row in shared.leases.rows_by_address()}) == len(shared.leases)


def test_absorb_refuses_overlapping_tables() -> None:
    first = read_leases(REAL / "primary.leases")
    with pytest.raises(ValueError, match="disjoint"):
        first.leases.absorb_parts(read_leases(REAL / "primary.leases").leases.export_parts())


@pytest.mark.parametrize(
    "transform",
    [
        lambda data: data.replace(b"\n", b"\r\n"),  # edited on Windows
        lambda data: data.rstrip(b"\n"),  # no final newline
    ],
    ids=["crlf", "no-final-newline"],
)
def test_unusual_layouts_read_alike(transform: object, tmp_path: Path) -> None:
    odd = tmp_path / "odd.leases"
    odd.write_bytes(transform((REAL / "primary.leases").read_bytes()))  # type: ignore[operator]
    _same_leases(read_leases(odd), read_leases(REAL / "primary.leases"))


def test_empty_and_comment_only_files_hold_nothing(tmp_path: Path) -> None:
    for data in (b"", b"# only a comment, no newline"):
        path = tmp_path / "dhcpd.leases"
        path.write_bytes(data)
        db = read_leases(path)
        assert len(db.leases) == 0 and not db.stats.warnings


def test_stray_text_is_located_exactly_in_both_directions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = b"lease 10.0.0.%d {\n  binding state free;\n}\n"
    data = record % 1 + record % 2 + b"}\n" + record % 3
    path = tmp_path / "dhcpd.leases"
    path.write_bytes(data)
    backward = read_leases(path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    forward = read_leases("-")
    for db in (backward, forward):
        assert [(w.line, w.message.split(";")[0]) for w in db.stats.warnings] == [
            (7, "expected a lease-file statement, found '}'")
        ]
        assert db.stats.records == 3 and len(db.leases) == 3


def test_packed_lease_bodies_decode_like_raw_ones() -> None:
    from dhcpfoctl.leases.syntax import decode_lease_body, pack_lease_bodies

    bodies = [
        b'  uid "\\001\\002";\n  set vendor-class-identifier = "MSFT 5.0";\n'
        b'  option agent.circuit-id "ge-0/0/1:7";\n  option agent.remote-id 0:1b;\n'
        b'  client-hostname "pc-1";\n',
        b"",
        b'  client-hostname "only";\n',
    ]
    packed = pack_lease_bodies(bodies)
    assert len(packed[0]) < len(bodies[0]) - 50 and packed[1] == b""
    assert [decode_lease_body(body) for body in packed if body] == [
        decode_lease_body(body) for body in bodies if body
    ]
    # A body already holding a control byte (hand-made file) is stored as it is.
    odd = [b'  client-hostname "a\x01b";\n']
    assert pack_lease_bodies(odd) == odd
    # Nor is a batch holding a NUL (the separator while packing).
    nul = [b'  client-hostname "a\x00b";\n', b'  uid "x";\n']
    assert pack_lease_bodies(nul) == nul
    assert decode_lease_body(odd[0]).client_hostname == "a\x01b"


def test_a_failing_second_process_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "journal.leases"
    write_leases(journal, 200)
    original = reader_module._BackwardReader.read

    def read_or_fail(self: reader_module._BackwardReader, size: int, progress: object) -> None:
        if self.share == (1, 2):
            raise MemoryError  # the child dies; the parent must not hang or half-merge
        original(self, size, progress)  # type: ignore[arg-type]

    monkeypatch.setattr(reader_module._BackwardReader, "read", read_or_fail)
    with pytest.raises(InputFileError, match="second reading process failed"):
        read_leases(journal, processes=2)
