"""A lease file's own journal as new-binding history: :func:`journal_bindings`, its compiled
and pure-Python readers (equal to each other and to the full parser), a first run seeded from
it, and the stateless runs (``balance``, ``audit --as-of``) that take their rate from it."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz import LEASE_SOURCES
from test_scanner import DIFFERENTIAL, _mutations, both  # noqa: F401 (the fixture)
from typer.testing import CliRunner

from dhcpfoctl.balance import FROM_JOURNAL, Role
from dhcpfoctl.checks.history import LeaseFollower
from dhcpfoctl.cli.main import app
from dhcpfoctl.conf import read_config
from dhcpfoctl.leases import reader
from dhcpfoctl.leases.reader import read_lease_history, read_lease_journal
from dhcpfoctl.leases.transitions import (
    Holders,
    Journal,
    NewBinding,
    fingerprint,
    journal_bindings,
    window_bindings,
)
from dhcpfoctl.leases.writer import format_lease
from dhcpfoctl.model import BindingState, HardwareType, Lease

TESTS = Path(__file__).parent
EXAMPLES = TESTS.parent / "dhcpfoctl" / "examples"
sys.path.insert(0, str(TESTS.parent / "bench"))
from generate import append_records, write_leases  # noqa: E402

LEASE_FILES = sorted(p for p in TESTS.rglob("*.leases") if p.is_file())
T = 1_795_852_800
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
A, B = "10.99.0.101", "10.99.0.102"


def rec(
    address: str,
    state: BindingState,
    mac: bytes | None = MAC_A,
    *,
    starts: int = T,
    cltt: int | None = None,
    rewind: BindingState | None = None,
) -> str:
    """One record as dhcpd writes it (``cltt`` defaults to ``starts``: this server's own)."""
    return format_lease(
        Lease(
            address=address,
            starts=starts,
            ends=starts + 600,
            cltt=starts if cltt is None else cltt,
            binding_state=state,
            rewind_binding_state=rewind,
            hardware_type=HardwareType.ETHERNET if mac else None,
            hardware_address=mac,
        )
    )


def judged(tmp_path: Path, *records: str) -> Any:
    path = tmp_path / "dhcpd.leases"
    path.write_text("".join(records))
    return journal_bindings(read_lease_journal(path)[1])


def test_the_snapshot_primes_and_counts_nothing(tmp_path: Path) -> None:
    found = judged(
        tmp_path, rec(A, BindingState.ACTIVE), rec(B, BindingState.FREE, None, starts=T - 99)
    )
    assert (found.bindings, found.since, found.records, found.appended) == ([], None, 2, 0)
    assert found.holders.clients == {_int(A): fingerprint(MAC_A, None)}


def test_a_renewal_by_the_holder_costs_nothing_but_starts_the_history(tmp_path: Path) -> None:
    renewals = [rec(A, BindingState.ACTIVE, starts=T + 60 * i) for i in (1, 2, 3)]
    found = judged(tmp_path, rec(A, BindingState.ACTIVE), *renewals)
    assert (found.bindings, found.since, found.appended) == ([], T + 60, 3)


def test_new_clients_count_and_the_history_starts_at_the_first_appended_binding(
    tmp_path: Path,
) -> None:
    found = judged(
        tmp_path,
        rec(A, BindingState.ACTIVE),
        rec(B, BindingState.FREE, None),
        # Expiry records carry the old binding's times: they do not start the history.
        rec(A, BindingState.EXPIRED, None, starts=T - 5000),
        rec(B, BindingState.ACTIVE, MAC_B, starts=T + 100),  # free -> active
        rec(A, BindingState.ACTIVE, MAC_B, starts=T + 200),  # expired -> active
        rec(B, BindingState.ACTIVE, MAC_A, starts=T + 300),  # another client
        rec(B, BindingState.ACTIVE, MAC_A, starts=T + 400),  # its renewal
    )
    assert [(b.address, b.at) for b in found.bindings] == [
        (_int(B), T + 100),
        (_int(A), T + 200),
        (_int(B), T + 300),
    ]
    assert found.since == T + 100


def test_each_binding_is_put_down_to_the_server_that_made_it(tmp_path: Path) -> None:
    found = judged(
        tmp_path,
        rec(A, BindingState.FREE, None),
        rec(B, BindingState.BACKUP, None),
        # This server's answer: cltt = starts, the partner still knows the lease free.
        rec(A, BindingState.ACTIVE, starts=T + 10, rewind=BindingState.FREE),
        # The partner's update: this server's old cltt, no rewind state.
        rec(B, BindingState.ACTIVE, MAC_B, starts=T + 20, cltt=T - 3600),
    )
    assert found.bindings == [
        NewBinding(_int(A), T + 10, local=True),
        NewBinding(_int(B), T + 20, local=False),
    ]


def test_given_holders_are_judged_against(tmp_path: Path) -> None:
    holders = Holders({_int(A): fingerprint(MAC_B, None)})
    path = tmp_path / "dhcpd.leases"
    path.write_text(rec(A, BindingState.ACTIVE) + rec(A, BindingState.ACTIVE, starts=T + 60))
    found = journal_bindings(read_lease_journal(path)[1], holders)
    assert found.bindings == [] and holders.clients == {_int(A): fingerprint(MAC_A, None)}


def test_the_bundled_journal_agrees_with_the_full_parser() -> None:
    """The journal's columns are the history reader's records, and the bindings what the
    existing rules make of them record by record."""
    path = EXAMPLES / "primary.leases"
    journal = read_lease_journal(path)[1]
    assert _columns(journal) == _columns(_oracle(path))
    found = journal_bindings(journal)
    assert len(found.bindings) == 80 and found.appended == 800 and found.records == 951


# -- the compiled scanner's journal mode against the pure-Python path -------------------


def _columns(journal: Journal) -> list[tuple[Any, ...]]:
    return list(
        zip(
            journal.address,
            _effective(journal),
            journal.starts,
            journal.ends,
            journal.cltt,
            journal.rewind,
            journal.client,
            strict=True,
        )
    )


def _effective(journal: Journal) -> list[int]:
    active, expired = int(BindingState.ACTIVE), int(BindingState.EXPIRED)
    return [
        state or (active if ends > starts else expired)
        for state, starts, ends in zip(journal.state, journal.starts, journal.ends, strict=True)
    ]


def _oracle(path: Path) -> Journal:
    """The journal through the full parser (``read_lease_history``)."""
    journal = Journal()
    for lease in read_lease_history(path)[1]:
        starts = lease.starts or 0
        journal.address.append(_int(lease.address))
        journal.state.append(int(lease.effective_state(starts)))
        journal.starts.append(starts)
        journal.ends.append(lease.ends or 0)
        journal.cltt.append(lease.cltt or 0)
        journal.rewind.append(int(lease.rewind_binding_state or 0))
        journal.client.append(fingerprint(lease.hardware_address, None))
    return journal


def _outcome(path: Path) -> tuple[Any, ...]:
    db, journal = read_lease_journal(path)
    found = journal_bindings(journal)
    return (
        _columns(journal),
        found.bindings,
        found.since,
        found.holders.clients,
        db.stats.records,
        [str(w) for w in db.stats.warnings],
    )


def _check(both: Callable[..., tuple[Any, Any]], path: Path) -> tuple[Any, ...]:  # noqa: F811
    compiled, pure = both(lambda: _outcome(path))
    assert compiled == pure
    return compiled


@pytest.mark.parametrize("path", LEASE_FILES, ids=lambda p: str(p.relative_to(TESTS)))
def test_compiled_and_pure_agree_on_every_lease_file(both, path: Path) -> None:  # noqa: F811
    outcome = _check(both, path)
    if not outcome[5]:  # no unreadable record: the full parser reads the same
        assert outcome[0] == _columns(_oracle(path))


def test_compiled_and_pure_agree_on_a_generated_journal(
    both,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "journal.leases"
    write_leases(path, 1000)
    append_records(path, 1000, 300)
    for chunk in (reader.CHUNK_SIZE, 700):
        monkeypatch.setattr(reader, "CHUNK_SIZE", chunk)
        columns, bindings, since, *_ = _check(both, path)
        assert len(columns) == 3300 and bindings and since is not None
    assert columns == _columns(_oracle(path))


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    return _mutations(draw, draw(st.sampled_from(sorted(LEASE_SOURCES.items())))[1])


@DIFFERENTIAL
@given(data=_mutated())
def test_compiled_and_pure_agree_on_mutated_files(
    both,  # noqa: F811
    tmp_path: Path,
    data: bytes,
) -> None:
    path = tmp_path / "mutated.leases"
    path.write_bytes(data)
    _check(both, path)


# -- where the history is used ----------------------------------------------------------


def test_a_first_run_is_seeded_from_the_journal_and_a_rewrite_counts_nothing_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    config = read_config(EXAMPLES / "primary.conf")
    addresses = [f"10.99.0.{n}" for n in range(100, 130)]
    snapshot = [rec(a, BindingState.FREE, None, starts=T - 7200) for a in addresses]
    bindings = [
        rec(a, BindingState.ACTIVE, bytes([2, 0, 0, 0, 0, n]), starts=T + 60 * n)
        for n, a in enumerate(addresses)
    ]
    path = tmp_path / "dhcpd.leases"
    path.write_text("".join(snapshot + bindings))
    now = T + 3600
    followed = LeaseFollower().read(str(path), config, now)
    assert (followed.new_bindings, followed.source) == (30, FROM_JOURNAL)
    assert followed.history.since == T  # the first appended binding
    rate = followed.history.rate([p.label for p in config.pools], 86400, now)
    assert (rate.bindings, rate.span) == (30, 3600)
    # dhcpd's rewrite: the compacted file (the last record of each address) renamed over.
    compacted = tmp_path / "dhcpd.leases.new"
    compacted.write_text("".join(bindings))
    os.replace(compacted, path)
    again = LeaseFollower().read(str(path), config, now + 60)
    assert again.new_bindings == 0 and again.source != FROM_JOURNAL
    assert again.history.rate([p.label for p in config.pools], 86400, now + 60).bindings == 30


def _balance(*extra: str) -> Any:
    import json

    result = CliRunner().invoke(
        app,
        [
            "balance",
            "-c",
            str(EXAMPLES / "primary.conf"),
            "-l",
            str(EXAMPLES / "primary.leases"),
            "--json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_stateless_as_of_takes_the_journal_up_to_then() -> None:
    later = _balance("--as-of", "2026-11-28T07:50Z")
    assert later["history_source"] == FROM_JOURNAL
    endurance = later["relationships"][0]["endurance"][Role.PRIMARY]
    # 80 new bindings since the first appended one (07:35:18): 14m42s.
    assert (later["history"], endurance["bindings"]) == (882, 80)
    assert endurance["bindings_by_server"] == {"primary": 43, "secondary": 37}
    assert endurance["interrupted"] is not None
    # Before the journal's history starts there is none: no estimate, and it says why.
    earlier = _balance("--as-of", "2026-11-28T07:30Z")
    endurance = earlier["relationships"][0]["endurance"][Role.PRIMARY]
    assert (earlier["history"], endurance["bindings"], endurance["interrupted"]) == (0, 0, None)
    assert endurance["reason"].startswith("not enough history")


def _int(address: str) -> int:
    from dhcpfoctl.model import address_to_int

    return address_to_int(address)


@pytest.mark.parametrize("as_of", [T - 60, T + 150, T + 1200, T + 86400])
def test_judging_only_the_window_gives_the_same_rate(tmp_path: Path, as_of: int) -> None:
    """``after`` (bulk holders before the window) changes nothing a rate can see."""
    from dhcpfoctl.balance import BUCKET, journal_history

    config = read_config(EXAMPLES / "primary.conf")
    path = tmp_path / "dhcpd.leases"
    addresses = [f"10.99.0.{n}" for n in range(100, 140)]
    records = [rec(a, BindingState.FREE, None, starts=T - 7200) for a in addresses]
    for step in range(120):  # bindings, renewals, expiries and rebinding, 10 s apart
        address = addresses[step * 7 % 40]
        state = BindingState.EXPIRED if step % 5 == 4 else BindingState.ACTIVE
        mac = bytes([2, 0, 0, 0, 0, step % 3]) if state is BindingState.ACTIVE else None
        records.append(rec(address, state, mac, starts=T + 10 * step))
    path.write_text("".join(records))
    journal = read_lease_journal(path)[1]
    pools = [p.label for p in config.pools]
    window = 600
    whole, _ = journal_history(config, journal_bindings(journal), as_of, window)
    cut = journal_bindings(journal, after=as_of - window - BUCKET)
    windowed, _ = journal_history(config, cut, as_of, window)
    rate = whole.rate(pools, window, as_of)
    assert windowed.rate(pools, window, as_of) == rate
    assert rate.bindings > 0 or as_of in (T - 60, T + 86400)
    assert cut.holders.clients == journal_bindings(journal).holders.clients
    # What a stateless run keeps (window_bindings, the one-pass read's) counts the same.
    kept, _ = journal_history(
        config, window_bindings(journal, as_of - window - BUCKET), as_of, window
    )
    assert kept.to_json() == windowed.to_json()
    lean = journal_bindings(journal, after=as_of - window - BUCKET, keep_holders=False)
    assert (lean.bindings, lean.since, lean.records, lean.appended) == (
        cut.bindings,
        cut.since,
        cut.records,
        cut.appended,
    )


_STEP = st.tuples(
    st.sampled_from([A, B]),
    st.sampled_from([BindingState.ACTIVE, BindingState.ACTIVE, BindingState.FREE]),
    st.sampled_from([None, MAC_A, MAC_B]),
    st.integers(-3, 3).map(lambda n: T + 300 * n),
    st.booleans(),
)


@given(
    steps=st.lists(_STEP, min_size=1, max_size=30),
    as_of=st.integers(-2, 4).map(lambda n: T + 600 * n),
    window=st.sampled_from([60, 600, 3600]),
)
def test_what_a_stateless_run_keeps_counts_as_every_binding_does(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[str, BindingState, bytes | None, int, bool]],
    as_of: int,
    window: int,
) -> None:
    """window_bindings (what the one-pass read keeps) gives the history journal_bindings
    gives, whatever the window."""
    from dhcpfoctl.balance import BUCKET, journal_history

    config = read_config(EXAMPLES / "primary.conf")
    path = tmp_path_factory.mktemp("journal") / "dhcpd.leases"
    path.write_text(
        "".join(
            rec(address, state, mac, starts=starts, cltt=None if own else T - 7200)
            for address, state, mac, starts, own in steps
        )
    )
    journal = read_lease_journal(path)[1]
    after = as_of - window - BUCKET
    every, every_count = journal_history(
        config, journal_bindings(journal, after=after), as_of, window
    )
    kept, kept_count = journal_history(config, window_bindings(journal, after), as_of, window)
    assert (kept.to_json(), kept_count) == (every.to_json(), every_count)


def test_a_full_incremental_read_gathers_the_journal_and_a_resumed_one_leaves_it(
    tmp_path: Path,
) -> None:
    """The follower's first run takes its journal from its one full read."""
    from dhcpfoctl.leases import read_leases_incremental

    path = tmp_path / "dhcpd.leases"
    path.write_bytes((EXAMPLES / "primary.leases").read_bytes())
    journal = Journal()
    db, resume = read_leases_incremental(path, None, None, journal=journal)
    assert journal == read_lease_journal(path)[1] and len(journal) == 951
    with path.open("a") as out:
        out.write(rec(A, BindingState.ACTIVE, starts=T + 1))
    db, resume = read_leases_incremental(path, resume, db, journal=journal)
    assert len(journal) == 951 and resume.offset == path.stat().st_size


def test_binding_columns_are_the_bindings_they_hold() -> None:
    """The compiled judge's columns read, compare and iterate as the list of tuples the
    pure path gives."""
    from array import array

    from dhcpfoctl.leases.transitions import BindingColumns, NewBinding

    columns = BindingColumns(array("I", [10, 20]), array("q", [0, T]), b"\x01\x00")
    expected = [NewBinding(10, 0, True), NewBinding(20, T, False)]
    assert len(columns) == 2 and list(columns) == expected
    assert columns[1] == expected[1] and columns[-1] == expected[1]
    assert columns == expected and expected == columns
    assert columns != expected[:1] and columns != [expected[1], expected[0]]
    assert columns != "not bindings"
