"""The lab's OMAPI objects: dhcpd's lookups, attributes, updates and refusals.

The golden tests replay the client bytes of real dhcpd 4.4.3 OMAPI sessions (omshell
captures in tests/data/real-dhcpd-4.4.3/pcap) into a server session on LabObjects and
compare every reply with dhcpd's: opcode, handle, signing, STATUS words, and the attribute
names, order and value sizes (the address attributes are 4 bytes here, 8 pointer bytes
in dhcpd).
"""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypureomapi import OmapiMessage

from dhcpfoctl.failover.connection import StateChanged
from dhcpfoctl.failover.wire import MessageType
from dhcpfoctl.keys import OmapiKey, Secret
from dhcpfoctl.lab.objects import LabObjects
from dhcpfoctl.model import (
    BindingState,
    FailoverState,
    HardwareType,
    Lease,
    LeaseExtras,
    LeaseFlag,
)
from dhcpfoctl.omapi.codec import STARTUP_BYTES, MessageReader, OmapiObject, Op, u32
from dhcpfoctl.omapi.errors import Result
from dhcpfoctl.omapi.server_session import ServerSession, StatusReply
from tests.failover_harness import Pair, fresh_pair
from tests.fake_omapi import load_vector

S = FailoverState
KEY = OmapiKey("lab-key", "hmac-md5", Secret(base64.b64decode("ZGhjcGZvY3RsLWxhYmtleQ==")))
MAC = bytes.fromhex("029900010001")
UID = b"\x01" + MAC
ADDRESS = "10.20.0.11"
PACKED = bytes([10, 20, 0, 11])


def labs(pair: Pair, shutdowns: list[float] | None = None) -> tuple[LabObjects, LabObjects]:
    """(primary's objects, secondary's objects)."""

    def record(now: float) -> None:
        if shutdowns is not None:
            shutdowns.append(now)

    return (
        LabObjects({"lab": pair.P}, pair.P.db, pair.primary_config.pools, on_shutdown=record),
        LabObjects({"lab": pair.S}, pair.S.db, pair.secondary_config.pools, on_shutdown=record),
    )


@pytest.fixture
def pair() -> Pair:
    pair = fresh_pair()
    assert pair.settle_normal()
    return pair


def active(pair: Pair, address: str = ADDRESS, **kw: object) -> Lease:
    """An active lease of a client (stored on the primary as its engine would)."""
    lease = Lease(
        address,
        starts=int(pair.now),
        ends=int(pair.now) + 120,
        cltt=int(pair.now),
        binding_state=BindingState.ACTIVE,
        hardware_type=HardwareType.ETHERNET,
        hardware_address=MAC,
        extras=LeaseExtras(uid=UID, client_hostname="host-a"),
    )
    lease = dataclasses.replace(lease, **kw)
    pair.P.update_lease(lease, pair.now)
    assert pair.settle_normal()
    return lease


def open_(
    lab: LabObjects, type_: str, lookup: list[tuple[str, bytes]], **flags: bool
) -> OmapiObject:
    options = {"create": False, "update": False, "exclusive": False} | flags
    obj = lab.open(type_, lookup, now=0.0, **options)
    assert obj is not None
    return obj


def refused(call, *args, **kw) -> tuple[int, str]:
    with pytest.raises(StatusReply) as info:
        call(*args, **kw)
    return info.value.result, info.value.message


# -- golden: dhcpd's own sessions replayed ------------------------------------------------


def messages(stream: bytes) -> list[OmapiMessage]:
    reader = MessageReader("x", "server")
    reader.feed(STARTUP_BYTES + stream)
    found = []
    while (message := reader.next_message()) is not None:
        found.append(message)
    return found


def shape(message: OmapiMessage) -> tuple:
    def sizes(pairs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, int]]:
        # dhcpd 4.4.3 sends a pointer (8 bytes) where the lab sends the address (4).
        return [(n, 4 if n in (b"partner-address", b"local-address") else len(v)) for n, v in pairs]

    status = message.message if message.opcode == Op.STATUS else sizes(message.message)
    return (
        Op(message.opcode).keyword,
        message.authid,
        len(message.signature),
        message.handle,
        message.rid,
        status,
        sizes(message.obj),
    )


def replay(vector: str, session: ServerSession, *, rewrite: tuple[bytes, bytes] | None = None):
    """(our replies, dhcpd's replies) to the captured client bytes of ``vector``."""
    ours, theirs = b"", b""
    for side, data in load_vector(vector):
        if side == "client":
            if rewrite:
                data = data.replace(*rewrite)
            session.receive_data(data, 0.0)
            ours += session.data_to_send()
        else:
            theirs += data
    assert session.close_reason is None
    assert ours.startswith(STARTUP_BYTES) and theirs.startswith(STARTUP_BYTES)
    mine, real = messages(ours[8:]), messages(theirs[8:])
    assert [shape(m) for m in mine] == [shape(m) for m in real]
    return mine, real


def test_golden_md5_open_and_refresh(pair: Pair) -> None:
    _, secondary = labs(pair)
    session = ServerSession(secondary, keys={KEY.name: KEY}, required_key=KEY.name)
    mine, real = replay("omapi-md5-open", session)
    assert [m.handle for m in mine] == [1, 2, 2]  # authenticator first, as dhcpd
    failover = dict(mine[1].obj)
    assert failover[b"name"] == b"lab" and failover[b"hierarchy"] == u32(1)
    assert failover[b"local-address"] == bytes([10, 20, 1, 2])
    assert [n for n, _ in mine[1].obj] == [n for n, _ in real[1].obj]


def test_golden_unsigned_open_refresh_then_lease_lookup(pair: Pair) -> None:
    active(pair, extras=LeaseExtras())  # the captured lease had no uid and no hostname
    primary, _ = labs(pair)
    replay("omapi-noauth-open-refresh", ServerSession(primary, keys={}, required_key=None))
    # The capture looked up 10.99.0.175 on its pool; ours is 10.20.0.11.
    session = ServerSession(primary, keys={}, required_key=None)
    mine, _ = replay("omapi-lease-lookup", session, rewrite=(bytes([10, 99, 0, 175]), PACKED))
    lease = dict(mine[0].obj)
    assert (mine[0].handle, lease[b"subnet"], lease[b"pool"]) == (2, u32(3), u32(4))
    assert lease[b"hardware-address"] == MAC and lease[b"flags"] == b"\0"


@pytest.mark.parametrize(
    ("vector", "keyed"),
    [("omapi-noauth-set-partner-down", False), ("omapi-md5-set-partner-down", True)],
)
def test_golden_partner_down_from_communications_interrupted(
    pair: Pair, vector: str, keyed: bool
) -> None:
    pair.cut()
    assert pair.run_until(lambda p: p.states == (S.COMMUNICATIONS_INTERRUPTED,) * 2)
    primary, secondary = labs(pair)
    lab, endpoint = (secondary, pair.S) if keyed else (primary, pair.P)
    keys = {KEY.name: KEY} if keyed else {}
    replay(vector, ServerSession(lab, keys=keys, required_key=KEY.name if keyed else None))
    assert endpoint.state is S.PARTNER_DOWN
    assert endpoint.db.failover["lab"].my_state is S.PARTNER_DOWN


@pytest.mark.parametrize(
    ("vector", "keys", "required"),
    [
        ("omapi-failover-name-notfound", {}, None),
        ("omapi-key-to-unkeyed-server", {}, None),
        ("omapi-noauth-to-keyed-server", {KEY.name: KEY}, KEY.name),
        ("omapi-wrong-secret", {KEY.name: KEY}, KEY.name),
    ],
)
def test_golden_refusals(pair: Pair, vector: str, keys: dict, required: str | None) -> None:
    primary, _ = labs(pair)
    replay(vector, ServerSession(primary, keys=keys, required_key=required))


# -- failover-state ---------------------------------------------------------------------


def test_secondary_omits_the_hba_before_it_learnt_one() -> None:
    pair = Pair.fresh(auto_reconnect=False)
    _, secondary = labs(pair)
    names = [n for n, _ in open_(secondary, "failover-state", [("name", b"lab")]).attributes]
    assert "load-balance-hba" not in names and names[0] == "name" and len(names) == 18


@pytest.mark.parametrize("state", list(S), ids=lambda s: s.keyword)
def test_local_state_accepts_every_defined_state(pair: Pair, state: FailoverState) -> None:
    primary, _ = labs(pair)
    handle = open_(primary, "failover-state", [("name", b"lab")]).handle
    primary.update(handle, [("local-state", u32(int(state)))], pair.now)
    expected = S.RECOVER_DONE if state is S.RECOVER_WAIT else state  # MCLT long passed
    assert pair.P.state in (expected, state)
    moved = [e for e in pair.P.next_events() if isinstance(e, StateChanged)]
    assert state is S.NORMAL or moved
    reported = open_(primary, "failover-state", [("name", b"lab")]).integer("local-state")
    assert reported == int(pair.P.state)


@pytest.mark.parametrize(
    "value",
    [u32(12), u32(253), b"\x04", b""],
    ids=["undefined", "undefined-253", "1-byte", "empty"],
)
def test_local_state_refusals_leave_the_state(pair: Pair, value: bytes) -> None:
    primary, _ = labs(pair)
    handle = open_(primary, "failover-state", [("name", b"lab")]).handle
    assert refused(primary.update, handle, [("local-state", value)], pair.now) == (
        Result.INVALIDARG,
        "can't update object",
    )
    assert pair.P.state is S.NORMAL


def test_other_failover_attributes_are_ignored_unknown_ones_refused(pair: Pair) -> None:
    primary, _ = labs(pair)
    handle = open_(primary, "failover-state", [("name", b"lab")]).handle
    primary.update(handle, [("mclt", u32(1)), ("partner-state", u32(4))], pair.now)
    assert pair.P.mclt == 30 and pair.P.machine.partner is S.NORMAL
    assert refused(primary.update, handle, [("bogus", b"1")], pair.now)[0] == Result.NOTFOUND


def test_failover_lookup_by_handle_and_name(pair: Pair) -> None:
    primary, _ = labs(pair)
    handle = open_(primary, "failover-state", [("name", b"lab")]).handle
    assert open_(primary, "failover-state", [("handle", u32(handle))]).handle == handle
    lookup = [("handle", u32(handle)), ("name", b"lab")]
    assert open_(primary, "failover-state", lookup).handle == handle
    assert refused(open_, primary, "failover-state", [("name", b"la")])[0] == Result.NOTFOUND
    lease = open_(primary, "lease", [("ip-address", PACKED)]).handle
    bad = [("handle", u32(lease))]
    assert refused(open_, primary, "failover-state", bad) == (
        Result.INVALIDARG,
        "object lookup failed",
    )


# -- lease ------------------------------------------------------------------------------


def test_lease_attributes_in_dhcpds_order(pair: Pair) -> None:
    lease = active(pair, flags=LeaseFlag.RESERVED | LeaseFlag.BOOTP)
    primary, _ = labs(pair)
    obj = open_(primary, "lease", [("ip-address", PACKED)])
    assert [n for n, _ in obj.attributes] == [
        "state",
        "ip-address",
        "dhcp-client-identifier",
        "client-hostname",
        "subnet",
        "pool",
        "hardware-address",
        "hardware-type",
        "ends",
        "starts",
        "tstp",
        "tsfp",
        "atsfp",
        "cltt",
        "flags",
    ]
    assert obj.integer("state") == BindingState.ACTIVE and obj.raw("flags") == b"\x06"
    assert obj.integer("ends") == lease.ends and obj.raw("client-hostname") == b"host-a"


def test_lease_lookups_and_their_refusals(pair: Pair) -> None:
    active(pair)
    primary, _ = labs(pair)
    handle = open_(primary, "lease", [("ip-address", PACKED)]).handle
    for lookup in (
        [("hardware-address", MAC)],
        [("hardware-address", MAC), ("hardware-type", u32(1))],
        [("dhcp-client-identifier", UID)],
        [("handle", u32(handle))],
        [("ip-address", PACKED), ("hardware-address", MAC)],
    ):
        assert open_(primary, "lease", lookup).handle == handle
    other = [("ip-address", bytes([10, 20, 0, 12])), ("hardware-address", MAC)]
    assert refused(open_, primary, "lease", other)[0] == Result.KEYCONFLICT
    wrong_type = [("hardware-address", MAC), ("hardware-type", u32(6))]
    assert refused(open_, primary, "lease", wrong_type)[0] == Result.NOTFOUND
    outside = [("ip-address", bytes([10, 20, 0, 200]))]
    assert refused(open_, primary, "lease", outside) == (
        Result.NOTFOUND,
        "no object matches specification",
    )
    assert refused(open_, primary, "lease", []) == (
        Result.NOTIMPLEMENTED,
        "can't create new object",
    )
    active(pair, "10.20.0.12")
    assert refused(open_, primary, "lease", [("hardware-address", MAC)]) == (
        Result.MULTIPLE,
        "object lookup failed",
    )


def test_never_used_lease_reads_as_its_pool_state(pair: Pair) -> None:
    primary, secondary = labs(pair)
    states = {
        open_(lab, "lease", [("ip-address", bytes([10, 20, 0, n]))]).integer("state")
        for lab in (primary, secondary)
        for n in range(10, 40)
    }
    assert states <= {BindingState.FREE, BindingState.BACKUP}


def test_lease_state_update_goes_to_the_partner(pair: Pair) -> None:
    active(pair)
    primary, _ = labs(pair)
    handle = open_(primary, "lease", [("ip-address", PACKED)]).handle
    sent = pair.P.sent[MessageType.BNDUPD]
    primary.update(handle, [("state", u32(int(BindingState.RELEASED)))], pair.now)
    assert pair.P.sent[MessageType.BNDUPD] > sent
    assert pair.settle_normal()
    assert pair.S.lease(ADDRESS).binding_state in (BindingState.RELEASED, BindingState.FREE)
    stored = pair.P.lease(ADDRESS)
    assert dict(stored.extras.variables)["remote-handle"] == handle


def test_lease_settable_and_refused_attributes(pair: Pair) -> None:
    active(pair)
    primary, _ = labs(pair)
    handle = open_(primary, "lease", [("ip-address", PACKED)]).handle
    primary.update(
        handle,
        [("ends", u32(1_900_000_000)), ("flags", b"\x02"), ("hardware-address", b"\1" * 6)],
        pair.now,
    )
    lease = pair.P.lease(ADDRESS)
    assert lease.ends == 1_900_000_000 and lease.flags == LeaseFlag.BOOTP
    assert lease.hardware_address == MAC  # silently unchanged, as dhcpd
    primary.update(handle, [("flags", u32(4)), ("note", b"hello")], pair.now)
    lease = pair.P.lease(ADDRESS)
    assert lease.flags == LeaseFlag.RESERVED and dict(lease.extras.variables)["note"] == b"hello"
    obj = primary.refresh(handle, pair.now)
    assert obj.raw("note") == b"hello" and obj.raw("remote-handle") == u32(handle)
    for name, code in (
        ("ip-address", Result.NOPERM),
        ("starts", Result.NOPERM),
        ("pool", Result.NOPERM),
        ("subnet", Result.INVALIDARG),
    ):
        assert refused(primary.update, handle, [(name, u32(1))], pair.now) == (
            code,
            "can't update object",
        )
    for value in (u32(0), u32(8), b"\2"):
        assert refused(primary.update, handle, [("state", value)], pair.now)[0] == Result.INVALIDARG
    assert refused(primary.delete, handle, pair.now)[0] == Result.NOTIMPLEMENTED


# -- pool, subnet, control --------------------------------------------------------------


def test_pool_counts_and_empty_subnet_by_handle(pair: Pair) -> None:
    primary, secondary = labs(pair)
    for lab, endpoint in ((primary, pair.P), (secondary, pair.S)):
        lease = open_(lab, "lease", [("ip-address", PACKED)])
        pool = lab.refresh(lease.integer("pool") or 0, pair.now)
        counts = {n: int.from_bytes(v, "big") for n, v in pool.attributes}
        free = sum(
            endpoint.lease(a).binding_state is BindingState.FREE for a in endpoint.addresses()
        )
        backup = sum(
            endpoint.lease(a).binding_state is BindingState.BACKUP for a in endpoint.addresses()
        )
        assert counts == {"lease-count": 30, "free-leases": free, "backup-leases": backup}
        assert lab.refresh(lease.integer("subnet") or 0, pair.now).attributes == ()
    assert refused(open_, primary, "pool", []) == (Result.NOTIMPLEMENTED, "can't create new object")


def test_control_shutdown_and_refusals(pair: Pair) -> None:
    shutdowns: list[float] = []
    primary, _ = labs(pair, shutdowns)
    control = open_(primary, "control", [])
    assert control.attributes == (("state", u32(0)),)
    assert refused(primary.update, control.handle, [("state", u32(1))], 5.0)[0] == Result.INVALIDARG
    primary.update(control.handle, [("state", u32(2))], 5.0)
    assert shutdowns == [5.0]
    assert open_(primary, "control", [("handle", u32(control.handle))]).handle == control.handle
    assert refused(primary.delete, control.handle, 5.0) == (Result.NOPERM, "")


def test_types_without_instances_or_lookup(pair: Pair) -> None:
    primary, _ = labs(pair)
    assert refused(open_, primary, "host", [("name", b"x")])[0] == Result.NOTFOUND
    assert refused(open_, primary, "failover-listener", [])[0] == Result.NOTIMPLEMENTED
    assert primary.open("nothing", [], create=False, update=False, exclusive=False, now=0) is None
    assert refused(primary.refresh, 4242, 0.0) == (Result.NOTFOUND, "no matching handle")


@pytest.fixture(scope="module")
def settled() -> Pair:
    pair = fresh_pair()
    assert pair.settle_normal()
    return pair


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    type_=st.sampled_from(["lease", "failover-state", "control", "pool", "subnet", "host", "x"]),
    lookup=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "handle",
                    "name",
                    "ip-address",
                    "hardware-address",
                    "hardware-type",
                    "dhcp-client-identifier",
                    "state",
                    "ends",
                    "flags",
                    "local-state",
                    "other",
                ]
            ),
            st.binary(max_size=9),
        ),
        max_size=4,
    ),
    create=st.booleans(),
    update=st.booleans(),
)
def test_any_open_is_an_object_or_a_status(settled: Pair, type_, lookup, create, update) -> None:
    primary, _ = labs(settled)
    try:
        obj = primary.open(
            type_, lookup, create=create, update=update, exclusive=False, now=settled.now
        )
    except StatusReply as exc:
        assert isinstance(exc.result, int) and exc.result != Result.SUCCESS
    else:
        assert obj is None or obj.handle > 0
