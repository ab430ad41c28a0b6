"""leases.transitions: new bindings are counted, renewals are not, and each is put down to
the server that made it (checked on the captured dhcpd 4.4.3 journals)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dhcpfoctl.leases.reader import read_lease_history
from dhcpfoctl.leases.transitions import (
    Holders,
    NewBinding,
    fingerprint,
    new_bindings,
    same_client,
    table_bindings,
)
from dhcpfoctl.model import (
    BindingState,
    HardwareType,
    Lease,
    LeaseExtras,
    LeaseTable,
    address_to_int,
)

REAL = Path(__file__).parent / "data" / "real-dhcpd-4.4.3"
T = 1_795_852_800
MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def rec(
    state: BindingState,
    mac: bytes | None = MAC_A,
    *,
    starts: int = T,
    cltt: int | None = T,
    rewind: BindingState | None = None,
    uid: bytes | None = None,
    address: str = "10.0.0.1",
) -> Lease:
    return Lease(
        address=address,
        starts=starts,
        cltt=cltt,
        binding_state=state,
        rewind_binding_state=rewind,
        hardware_type=HardwareType.ETHERNET if mac else None,
        hardware_address=mac,
        extras=LeaseExtras(uid=uid) if uid else LeaseExtras(),
    )


def test_renewals_by_the_holder_cost_nothing() -> None:
    holders = Holders()
    records = [rec(BindingState.FREE)] + [
        rec(BindingState.ACTIVE, starts=T + 60 * i, cltt=T + 60 * i) for i in range(10)
    ]
    assert list(new_bindings(records, holders)) == [NewBinding(address_to_int("10.0.0.1"), T, True)]


def test_each_way_into_a_new_binding() -> None:
    for before in (
        BindingState.FREE,
        BindingState.BACKUP,
        BindingState.EXPIRED,
        BindingState.RELEASED,
        BindingState.ABANDONED,
        BindingState.RESET,
    ):
        holders = Holders()
        found = list(new_bindings([rec(before), rec(BindingState.ACTIVE)], holders))
        assert len(found) == 1, before
    # Another client taking an active address directly, by hardware address or by uid.
    holders = Holders()
    other_mac = [rec(BindingState.ACTIVE), rec(BindingState.ACTIVE, MAC_B)]
    assert len(list(new_bindings(other_mac, holders))) == 2
    holders = Holders()
    other_uid = [rec(BindingState.ACTIVE, uid=b"\x01a"), rec(BindingState.ACTIVE, uid=b"\x01b")]
    assert len(list(new_bindings(other_uid, holders))) == 2
    # The same client seen once without its uid is still the same client.
    holders = Holders()
    partial = [rec(BindingState.ACTIVE, uid=b"\x01a"), rec(BindingState.ACTIVE)]
    assert len(list(new_bindings(partial, holders))) == 1


def test_who_made_it() -> None:
    holders = Holders()
    # This server's own, not yet acknowledged by the partner: the rewind state says so.
    own = rec(BindingState.ACTIVE, cltt=None, rewind=BindingState.FREE)
    # The partner's, from its BNDUPD: starts moved, this server's old cltt kept.
    theirs = rec(BindingState.ACTIVE, MAC_B, starts=T + 500, cltt=T, address="10.0.0.2")
    # Acknowledged own record: cltt = starts.
    acked = rec(BindingState.ACTIVE, starts=T + 9, cltt=T + 9, address="10.0.0.3")
    found = list(new_bindings([own, theirs, acked], holders))
    assert [b.local for b in found] == [True, False, True]


def test_captured_journals_attribute_bindings_to_the_server_whose_free_lease_went() -> None:
    """In the primary's file its own bindings consumed FREE leases and its partner's BACKUP
    ones; in the secondary's the other way round (an independent check of the rule: the
    consumed state is read from the previous record, not used by the rule)."""
    for name, own_state, partner_state in (
        ("primary", "FREE", "BACKUP"),
        ("secondary", "BACKUP", "FREE"),
    ):
        _, history = read_lease_history(REAL / f"{name}.leases")
        holders, previous = Holders(), {}
        seen: Counter[tuple[bool, str | None]] = Counter()
        for lease in history:
            for binding in new_bindings([lease], holders):
                before = previous.get(binding.address)
                seen[(binding.local, before.name if before else None)] += 1
            previous[address_to_int(lease.address)] = lease.binding_state
        known = {key: n for key, n in seen.items() if key[1] is not None}
        assert set(known) == {(True, own_state), (False, partner_state)}, (name, seen)
        assert sum(seen.values()) < sum(
            1 for x in history if x.binding_state == BindingState.ACTIVE
        )


def test_table_rows_continue_what_a_previous_read_saw() -> None:
    first = LeaseTable.from_leases(
        [rec(BindingState.ACTIVE), rec(BindingState.FREE, address="10.0.0.2")]
    )
    holders = Holders.from_table(first)  # the baseline: nothing in it is new
    assert len(holders) == 1
    appended = LeaseTable.from_leases(
        [
            rec(BindingState.ACTIVE, starts=T + 60, cltt=T + 60),  # renewal
            rec(BindingState.ACTIVE, MAC_B, starts=T + 70, cltt=T + 70, address="10.0.0.2"),
        ]
    )
    found = list(table_bindings(appended, holders))
    assert found == [NewBinding(address_to_int("10.0.0.2"), T + 70, True)]
    gone = LeaseTable.from_leases([rec(BindingState.EXPIRED)])
    assert list(table_bindings(gone, holders)) == []
    assert address_to_int("10.0.0.1") not in holders.clients


@given(st.dictionaries(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), max_size=200))
def test_holders_round_trip(clients: dict[int, int]) -> None:
    assert Holders.from_bytes(Holders(dict(clients)).to_bytes()).clients == clients


def test_holders_refuse_foreign_bytes() -> None:
    import zlib

    import pytest

    for blob in (b"", b"garbage", zlib.compress(b"\x00\x00\x00\x02abc")):
        with pytest.raises(ValueError):
            Holders.from_bytes(blob)


def test_fingerprints() -> None:
    a, b = fingerprint(MAC_A, None), fingerprint(MAC_B, None)
    assert a != b and not same_client(a, b)
    assert same_client(fingerprint(MAC_A, b"x"), a)
    assert same_client(0, a)
    assert fingerprint(None, None) == 0
