"""The engine's pool queue heads (_FreeQueues) stay exactly what a scan of the pool finds,
whatever order lease changes, bulk loads and queries come in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dhcpfoctl.lab.engine import _FreeQueues
from dhcpfoctl.model import (
    BindingState,
    Lease,
    LeaseFlag,
    LeaseTable,
    address_to_int,
    int_to_address,
)

BASE = address_to_int("10.0.0.250")
#: Ranges across a /24 boundary, listed out of address order, as a config may.
RANGES = ((BASE + 8, BASE + 11), (BASE, BASE + 5))
ADDRESSES = [BASE + offset for offset in range(13)]  # some outside the pool

leases = st.builds(
    lambda address, state, ends, reserved: Lease(
        int_to_address(address),
        binding_state=state,
        ends=ends,
        flags=LeaseFlag.RESERVED if reserved else LeaseFlag(0),
    ),
    st.sampled_from(ADDRESSES),
    st.sampled_from([None, *BindingState]),
    st.sampled_from([None, 1, 2, 3]),  # few values: ties between addresses
    st.booleans(),
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), leases),
        st.tuples(st.just("bulk"), st.lists(leases, max_size=3)),
        st.tuples(st.just("query")),
    ),
    max_size=60,
)


def scanned(table: LeaseTable) -> dict[int, tuple[int, int]]:
    """The queue heads by a scan of the ranges in order, the first of equal ``ends`` kept."""
    heads: dict[int, tuple[int, int]] = {}
    for first, last in RANGES:
        for address in range(first, last + 1):
            row = table.row_of(address)
            if row is None:
                state, end = int(BindingState.FREE), 0
            elif table.flags[row] & LeaseFlag.RESERVED:
                continue
            else:
                state, end = table.state[row] or int(BindingState.FREE), table.ends[row]
            if state not in heads or end < heads[state][0]:
                heads[state] = (end, address)
    return heads


def bulk(table: LeaseTable, batch: list[Lease]) -> None:
    """The reader's column path (put_columns)."""
    other = LeaseTable.from_leases(batch)
    table.put_columns(
        other._row_address,
        [other.starts, other.ends, other.tstp, other.tsfp, other.atsfp, other.cltt],
        [other.state, other.next_state, other.rewind_state],
        other.flags,
        other._hw_type,
        other._hw_len,
        other._hw,
        other._extras,
    )


@settings(max_examples=300, deadline=None)
@given(operations)
def test_queue_heads_match_a_scan_after_any_changes(ops: list[tuple]) -> None:
    table = LeaseTable()
    queues = _FreeQueues(table, RANGES)
    table.watch(queues.changed)
    for op in ops:
        if op[0] == "upsert":
            table.upsert(op[1])
        elif op[0] == "bulk":
            bulk(table, op[1])
        else:
            assert queues.heads() == scanned(table)
    assert queues.heads() == scanned(table)
