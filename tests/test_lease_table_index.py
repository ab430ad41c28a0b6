"""LeaseTable's client index (rows by hardware address / client identifier) stays exactly
what a scan of the whole table would find, whatever order writes and queries come in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dhcpfoctl.leases import read_leases
from dhcpfoctl.model import (
    TIME_FIELDS,
    BindingState,
    HardwareType,
    Lease,
    LeaseExtras,
    LeaseTable,
)
from tests.leases_helpers import REAL

#: Few values of each key, so that writes collide: a long (InfiniBand-sized) address too.
HARDWARE = [None, b"\x00\x11\x22\x33\x44\x55", b"\x00\x11\x22\x33\x44\x66", bytes(range(20))]
UIDS = [None, b"\x01\x00\x11\x22\x33\x44\x55", b"client-a", b""]
ADDRESSES = [f"10.0.{block}.{low}" for block in (0, 1) for low in (0, 1, 2, 255)]

leases = st.builds(
    Lease,
    address=st.sampled_from(ADDRESSES),
    binding_state=st.sampled_from([None, BindingState.ACTIVE, BindingState.FREE]),
    hardware_type=st.sampled_from([None, HardwareType.ETHERNET]),
    hardware_address=st.sampled_from(HARDWARE),
    extras=st.builds(
        LeaseExtras,
        uid=st.sampled_from(UIDS),
        client_hostname=st.sampled_from([None, "host"]),
    ),
)
#: A write of one lease, a bulk load of several (which drops the index), or a query
#: (which builds it), in any order.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), leases),
        st.tuples(st.just("bulk"), st.lists(leases, min_size=1, max_size=4)),
        st.tuples(st.just("query"), st.sampled_from(HARDWARE[1:]), st.sampled_from(UIDS)),
    ),
    max_size=30,
)


def scanned(table: LeaseTable, hardware: bytes, uid: bytes | None) -> set[int]:
    return {
        row
        for row in range(len(table))
        if table.hardware_at(row) == hardware
        or (uid is not None and table.extras_at(row).uid == uid)
    }


def bulk(table: LeaseTable, batch: list[Lease]) -> None:
    """The reader's column path (put_columns), for leases with short hardware addresses."""
    other = LeaseTable.from_leases(
        lease for lease in batch if len(lease.hardware_address or b"") <= 8
    )
    table.put_columns(
        other._row_address,
        [getattr(other, name) for name in TIME_FIELDS],
        [other.state, other.next_state, other.rewind_state],
        other.flags,
        other._hw_type,
        other._hw_len,
        other._hw,
        other._extras,
    )


def assert_index_current(table: LeaseTable) -> None:
    for hardware in HARDWARE[1:]:
        for uid in UIDS:
            assert table.rows_of_client(hardware, uid) == scanned(table, hardware, uid)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_index_matches_a_scan_after_any_writes(ops: list[tuple]) -> None:
    table = LeaseTable()
    for op in ops:
        if op[0] == "upsert":
            table.upsert(op[1])
        elif op[0] == "bulk":
            bulk(table, op[1])
        else:
            assert table.rows_of_client(op[1], op[2]) == scanned(table, op[1], op[2])
    assert_index_current(table)


@settings(max_examples=50, deadline=None)
@given(st.lists(leases, max_size=10))
def test_index_over_a_read_file_with_raw_extras(writes: list[Lease]) -> None:
    """A table from the reader stores extras as raw text; the index decodes them."""
    table = read_leases(REAL / "primary.leases").leases
    client = next(lease for lease in table if lease.hardware_address and lease.uid)
    assert client.hardware_address is not None
    first = table.rows_of_client(client.hardware_address, client.uid)
    assert first == scanned(table, client.hardware_address, client.uid) != set()
    for lease in writes:
        table.upsert(lease)
    assert_index_current(table)
    assert table.rows_of_client(client.hardware_address, client.uid) == scanned(
        table, client.hardware_address, client.uid
    )
